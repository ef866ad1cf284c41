//! What a run must show (liveness, culprits, verdicts, quiet periods, the DKG outcome), the
//! violations it can detect, and the simulator's own limits.

use serde::{Deserialize, Serialize};

use super::{At, Millis};

/// What can go wrong, named as in the design brief.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// Invariant 1: a valid group signature without t signers.
    NoForgery,
    /// Invariant 2: a slot not co-signed within the budget after the heal.
    Suppression,
    /// Invariant 3: two co-signed statements for a slot not ordered by inclusion.
    ConflictingVerdicts,
    /// Invariant 4: a verdict that does not follow its evidence.
    VerdictFollowsEvidence,
    /// Invariant 5: an item no honest member admitted before the close in a statement.
    LateInjection,
    /// Invariant 6: a nonce commitment bound to two packages or issued twice.
    NonceReuse,
    /// Invariant 7: an acknowledged item lost across a restart.
    AcknowledgedLost,
    /// An honest member named as a culprit by an honest member.
    HonestBlamed,
    /// Honest members completed the DKG with different group keys.
    DkgDisagreement,
    /// The simulator's own limits (event budget) were exceeded: a livelock.
    Stalled,
    /// Invariant 3 across epochs: a member co-signed a period its epoch does not decide.
    EpochOverlap,
    /// A membership change did not go through: an honest approval or adoption was refused,
    /// or the succession chain does not verify.
    Succession,
}

impl ViolationKind {
    /// A one-line description.
    pub fn describe(self) -> &'static str {
        match self {
            ViolationKind::NoForgery => "invariant 1 (no forgery)",
            ViolationKind::Suppression => "invariant 2 (no suppression)",
            ViolationKind::ConflictingVerdicts => "invariant 3 (no conflicting verdicts)",
            ViolationKind::VerdictFollowsEvidence => "invariant 4 (verdicts follow evidence)",
            ViolationKind::LateInjection => "invariant 5 (no late injection)",
            ViolationKind::NonceReuse => "invariant 6 (nonces never reused)",
            ViolationKind::AcknowledgedLost => "invariant 7 (nothing acknowledged lost)",
            ViolationKind::HonestBlamed => "honest member blamed",
            ViolationKind::DkgDisagreement => "DKG: honest members disagree on the group key",
            ViolationKind::Stalled => "simulator event budget exceeded",
            ViolationKind::EpochOverlap => "invariant 3 across epochs (one epoch per period)",
            ViolationKind::Succession => "membership change",
        }
    }
}

/// An expected verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictExpect {
    /// The lab.
    pub lab: u16,
    /// The period.
    pub period: u64,
    /// `compliant`, `violation` or `no-attestation`.
    pub verdict: String,
}

/// No unit of `period` co-signed before `until`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiet {
    /// The period.
    pub period: u64,
    /// The earliest time a unit of it may be co-signed.
    pub until: At,
}

/// Expected DKG outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkgExpect {
    /// The first ceremony completes.
    Complete,
    /// A ceremony aborts, and a later one completes.
    AbortThenComplete,
    /// Every ceremony aborts.
    Abort,
}

/// What a run must show; any mismatch fails the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Liveness must hold after the heal (false when the adversary exceeds what the protocol
    /// tolerates and suppression is the expected outcome).
    pub live: bool,
    /// The violation the run must detect (for scenarios beyond the protocol's assumptions).
    pub violation: Option<ViolationKind>,
    /// Members that honest members must name as culprits.
    pub culprits: Vec<u16>,
    /// Verdicts that must be co-signed.
    pub verdicts: Vec<VerdictExpect>,
    /// Every late submission must be refused by every honest member.
    pub late_refused: bool,
    /// Periods whose units may not be co-signed before a given time (a partition or crash
    /// keeps fewer than t members together until then).
    pub quiet: Vec<Quiet>,
    /// Key ceremony outcome.
    pub dkg: Option<DkgExpect>,
    /// Members that must be named by the aborted ceremony.
    pub dkg_culprits: Vec<u16>,
    /// Every lab's verdict must match its conduct (when its evidence reached the network).
    pub verdicts_match_conduct: bool,
    /// The pause bound: every slot co-signed at every running honest member within this time of
    /// its close (across handovers too).
    pub max_time_to_verdict: Option<Millis>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            live: true,
            violation: None,
            culprits: Vec::new(),
            verdicts: Vec::new(),
            late_refused: false,
            quiet: Vec::new(),
            dkg: None,
            dkg_culprits: Vec::new(),
            verdicts_match_conduct: false,
            max_time_to_verdict: None,
        }
    }
}

/// Limits of the simulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most events one run may process.
    pub max_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 200_000_000,
        }
    }
}
