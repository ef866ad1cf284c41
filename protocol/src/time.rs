//! Logical time. The protocol never reads a clock: the caller passes `now` in.

use core::fmt;
use core::time::Duration;
use serde::{Deserialize, Serialize};

/// A point in time, in milliseconds since the Unix epoch, as told to the protocol by its driver.
///
/// The node converts the wall clock into an `Instant`; the simulator uses virtual time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(millis(d)))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(millis(d)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}ms", self.0)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Whole milliseconds of `d`, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(10);
        assert_eq!(
            t.saturating_sub(Duration::from_secs(1)),
            Instant::from_millis(0)
        );
        assert_eq!(
            Instant::from_millis(u64::MAX)
                .saturating_add(Duration::from_millis(5))
                .as_millis(),
            u64::MAX
        );
        assert_eq!(
            t.saturating_duration_since(Instant::from_millis(20)),
            Duration::ZERO
        );
        assert_eq!(
            Instant::from_millis(25).saturating_duration_since(t),
            Duration::from_millis(15)
        );
    }
}
