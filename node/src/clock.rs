//! The wall clock, converted once into the protocol's time: the engine never reads a clock
//! itself (it is sans-IO), the node reads this one and passes the value in.

use std::time::{SystemTime, UNIX_EPOCH};

use accord_protocol::Instant;

/// The wall clock as the protocol's [`Instant`] (milliseconds since the Unix epoch).
pub fn now() -> Instant {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::from_millis(ms)
}

/// The wall clock in POSIX seconds (witness cosignature timestamps).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
