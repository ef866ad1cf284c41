//! Fault injection for the process-level tests, from the `ACCORD_FAILPOINT` environment
//! variable. Compiled in only with the `failpoints` cargo feature (the process tests build the
//! binary with it); a production build ignores the variable.

use std::time::Duration;

use tracing::warn;

/// The fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failpoint {
    /// No fault.
    None,
    /// After sending the first `Accept` (a fresh nonce commitment), ignore signing requests and
    /// SIGKILL this process 300 ms later: a crash between commit and sign (FAULTS 2).
    CrashAfterAccept,
}

impl Failpoint {
    /// The failpoint named by `ACCORD_FAILPOINT`, in a build with failpoints.
    pub(super) fn from_env() -> Self {
        let Ok(value) = std::env::var("ACCORD_FAILPOINT") else {
            return Self::None;
        };
        if !cfg!(feature = "failpoints") {
            warn!(%value, "ACCORD_FAILPOINT ignored: this build has no failpoints");
            return Self::None;
        }
        match value.as_str() {
            "crash-after-accept" => {
                warn!("failpoint crash-after-accept is set (tests only)");
                Self::CrashAfterAccept
            }
            other => {
                warn!(value = %other, "unknown ACCORD_FAILPOINT ignored");
                Self::None
            }
        }
    }
}

/// The armed failpoint and, once triggered, when the process kills itself.
#[derive(Debug)]
pub(super) struct Faults {
    failpoint: Failpoint,
    crash_at: Option<tokio::time::Instant>,
}

impl Faults {
    /// The faults `ACCORD_FAILPOINT` asks for.
    pub(super) fn from_env() -> Self {
        Self {
            failpoint: Failpoint::from_env(),
            crash_at: None,
        }
    }

    /// An `Accept` (a fresh nonce commitment) was just sent: `crash-after-accept` schedules the
    /// SIGKILL 300 ms from now, once.
    pub(super) fn accept_sent(&mut self) {
        if self.failpoint == Failpoint::CrashAfterAccept && self.crash_at.is_none() {
            self.crash_at = Some(tokio::time::Instant::now() + Duration::from_millis(300));
        }
    }

    /// Whether the crash is scheduled (signing requests are then ignored).
    pub(super) fn crashing(&self) -> bool {
        self.crash_at.is_some()
    }

    /// When the process is due to kill itself, if a crash is scheduled.
    pub(super) fn crash_at(&self) -> Option<tokio::time::Instant> {
        self.crash_at
    }

    /// Kills this process with SIGKILL (the failpoint's crash).
    pub(super) fn crash_now() {
        tracing::error!("failpoint: SIGKILL now");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Completes at `at` (never, for `None`): the crash timer of the event loop.
pub(super) async fn crash_timer(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
