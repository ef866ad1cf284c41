//! The wall clock, converted once into the protocol's time: the engine never reads a clock
//! itself (it is sans-IO), the node reads this one and passes the value in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use accord_protocol::Instant;

/// The latest time [`now`] returned, in milliseconds since the Unix epoch.
static LATEST: AtomicU64 = AtomicU64::new(0);

/// The wall clock as the protocol's [`Instant`] (milliseconds since the Unix epoch), never
/// earlier than a value it returned before: the engine refuses time that goes backwards, and an
/// NTP step back must stall the node's clock for a moment, not stop the node.
pub fn now() -> Instant {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::from_millis(never_earlier(&LATEST, wall))
}

/// `wall`, or the latest value returned through `latest` if that is later.
fn never_earlier(latest: &AtomicU64, wall: u64) -> u64 {
    wall.max(latest.fetch_max(wall, Ordering::Relaxed))
}

/// The wall clock in POSIX seconds (witness cosignature timestamps).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_never_goes_backwards_even_when_the_wall_clock_does() {
        let latest = AtomicU64::new(0);
        assert_eq!(never_earlier(&latest, 5_000), 5_000);
        // The wall clock steps back an hour: the node's clock holds until it catches up.
        assert_eq!(never_earlier(&latest, 1_000), 5_000);
        assert_eq!(never_earlier(&latest, 4_999), 5_000);
        assert_eq!(never_earlier(&latest, 5_001), 5_001);
        assert!(now() <= now());
    }
}
