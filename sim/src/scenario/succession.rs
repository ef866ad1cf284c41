//! Membership change (`docs/protocol.md` §22.7): the epochs a run goes through after its genesis
//! roster. Each `[[succession]]` row starts a new epoch's members and their DKG at `propose`,
//! has the current epoch's members approve and co-sign the succession once that DKG completes,
//! and hands over every period from `first_period` on.

use serde::{Deserialize, Serialize};

use super::{AdversarySpec, At};

/// One membership change.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessionSpec {
    /// The first period the new epoch decides (P).
    pub first_period: u64,
    /// When the new epoch's members start and run their DKG; the current epoch's members
    /// approve the succession as soon as it completes. Default: the start of period P − 2.
    #[serde(default)]
    pub propose: Option<At>,
    /// Members of the current epoch that withdraw (their indices in that epoch).
    #[serde(default)]
    pub leave: Vec<u16>,
    /// New members (accessions), appended after the continuing members.
    #[serde(default)]
    pub join: usize,
    /// The new threshold; default ⌊2n/3⌋ + 1 of the new roster.
    #[serde(default)]
    pub threshold: Option<u16>,
    /// Byzantine members of the new epoch (indices in the new roster). A continuing member's
    /// behaviour does not carry over: its new node is configured here.
    #[serde(default)]
    pub adversary: Vec<AdversarySpec>,
}

impl SuccessionSpec {
    /// Members of the new epoch, given the current epoch's `n`.
    pub fn members_after(&self, n: usize) -> usize {
        n.saturating_sub(self.leave.len()) + self.join
    }
}
