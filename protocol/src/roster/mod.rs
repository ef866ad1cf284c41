//! The roster (genesis) of a network, and the validated [`Network`] built from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec;
use crate::crypto::{Digest, PublicKey};
use crate::time::Instant;

pub mod limits;
mod params;

use limits::Limits;
pub use params::{POLICY_VERSION, PolicyParams};

/// Most members a network may have (FROST identifiers are `u16`; 193 nations fit with room).
pub const MAX_MEMBERS: usize = 256;
/// Most labs a network may have.
pub const MAX_LABS: usize = 1024;
/// Longest name, id or address string in a roster, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest encoded roster accepted, in bytes.
pub const MAX_ROSTER_BYTES: usize = 1024 * 1024;

/// A member's position in the roster, from 0. Its FROST identifier is `index + 1`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberIndex(pub u16);

impl MemberIndex {
    /// The member's FROST identifier (`index + 1`, never zero).
    pub fn identifier(self) -> frost_ed25519::Identifier {
        frost_ed25519::Identifier::try_from(self.0 + 1)
            .expect("index + 1 is a non-zero u16 for rosters of at most 256")
    }

    /// The member whose FROST identifier is `id`, if it is in `1..=n`.
    pub fn from_identifier(id: &frost_ed25519::Identifier, n: usize) -> Option<Self> {
        // An identifier made from a u16 is that scalar: little-endian, zero beyond two bytes.
        let bytes = id.serialize();
        let (low, high) = bytes.split_at(2);
        if high.iter().any(|b| *b != 0) {
            return None;
        }
        let value = u16::from_le_bytes([low[0], low[1]]);
        let index = value.checked_sub(1)?;
        (usize::from(index) < n).then_some(MemberIndex(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_map_back_to_members() {
        for i in 0..256u16 {
            assert_eq!(
                MemberIndex::from_identifier(&MemberIndex(i).identifier(), 256),
                Some(MemberIndex(i))
            );
        }
        assert_eq!(
            MemberIndex::from_identifier(&MemberIndex(10).identifier(), 10),
            None
        );
        let derived = frost_ed25519::Identifier::derive(b"not a small number").unwrap();
        assert_eq!(MemberIndex::from_identifier(&derived, 256), None);
    }
}

impl core::fmt::Display for MemberIndex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "member#{}", self.0)
    }
}

/// A lab's position in the roster, from 0.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct LabIndex(pub u16);

/// A reporting period, numbered from 0 at genesis.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Period(pub u64);

impl core::fmt::Display for Period {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One participating monitoring body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Human-readable name, e.g. the nation.
    pub name: String,
    /// The member's libp2p peer id (the node checks it matches `key`).
    pub peer_id: String,
    /// Ed25519 key that signs the member's observations, reports and DKG messages.
    pub key: PublicKey,
    /// Multiaddresses where the member's node listens.
    pub addresses: Vec<String>,
}

/// A lab that reports to the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// Stable identifier, e.g. `lab-frontier-1`.
    pub id: String,
    /// Ed25519 key that signs the lab's attestations.
    pub key: PublicKey,
}

/// What one group signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SigningMode {
    /// One signing session per slot; the message is the statement's canonical bytes.
    PerSlot,
    /// One signing session per period; the message is a C2SP checkpoint over an RFC 9162 Merkle
    /// tree of every slot's statement, and each statement carries its inclusion proof.
    PerPeriod,
}

/// Calendar and timeouts, shared by every member (so they are bound into the network id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Start of period 0, in ms since the Unix epoch.
    pub genesis_ms: u64,
    /// Length of a period.
    pub period_ms: u64,
    /// How long after a period ends evidence for it is still admitted.
    pub grace_ms: u64,
    /// How long after a slot closes the first coordinator waits for observations.
    pub observation_wait_ms: u64,
    /// How long each coordinator attempt lasts before the next member takes over.
    pub attempt_timeout_ms: u64,
    /// The largest clock difference between honest members the protocol tolerates.
    pub max_clock_skew_ms: u64,
    /// How long each DKG phase waits for every member before the ceremony aborts.
    pub dkg_phase_timeout_ms: u64,
}

impl Schedule {
    /// Start of `period`.
    pub fn start(&self, period: Period) -> Instant {
        Instant::from_millis(
            self.genesis_ms
                .saturating_add(period.0.saturating_mul(self.period_ms)),
        )
    }

    /// End of `period` (the start of the next).
    pub fn end(&self, period: Period) -> Instant {
        self.start(Period(period.0.saturating_add(1)))
    }

    /// When the slots of `period` close: the end plus the grace.
    pub fn close(&self, period: Period) -> Instant {
        Instant::from_millis(self.end(period).as_millis().saturating_add(self.grace_ms))
    }

    /// The period containing `now`, if genesis has passed.
    pub fn period_at(&self, now: Instant) -> Option<Period> {
        let since = now.as_millis().checked_sub(self.genesis_ms)?;
        Some(Period(since / self.period_ms.max(1)))
    }

    /// Start of coordinator attempt `attempt` for slots of `period`.
    pub fn attempt_start(&self, period: Period, attempt: u32) -> Instant {
        Instant::from_millis(
            self.close(period)
                .as_millis()
                .saturating_add(self.observation_wait_ms)
                .saturating_add(u64::from(attempt).saturating_mul(self.attempt_timeout_ms)),
        )
    }

    /// The attempt in progress at `now` for slots of `period` (0 before the first starts).
    pub fn attempt_at(&self, period: Period, now: Instant) -> u32 {
        let first = self.attempt_start(period, 0).as_millis();
        let since = now.as_millis().saturating_sub(first);
        u32::try_from(since / self.attempt_timeout_ms.max(1)).unwrap_or(u32::MAX)
    }
}

/// The genesis document of a network. Its canonical hash is the network id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// Network name, e.g. `accord-mainnet`.
    pub name: String,
    /// Members in order; a member's index is its position.
    pub members: Vec<Member>,
    /// Labs in order.
    pub labs: Vec<Lab>,
    /// Signatures needed for a verdict (t).
    pub threshold: u16,
    /// The treaty policy.
    pub policy: PolicyParams,
    /// Calendar and timeouts.
    pub schedule: Schedule,
    /// What one group signature covers.
    pub signing_mode: SigningMode,
    /// Most inspection reports one member files per period, over all labs (one per slot at
    /// most). It bounds what an observation lists, and so the size of every proposal.
    pub max_reports_per_inspector: u16,
}

/// Why a roster is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RosterError {
    /// Too few or too many members.
    #[error("a network needs 2 to {MAX_MEMBERS} members, this roster has {0}")]
    MemberCount(usize),
    /// Too many labs.
    #[error("a network has at most {MAX_LABS} labs, this roster has {0}")]
    LabCount(usize),
    /// The threshold does not give the invariants of the protocol.
    #[error(
        "threshold {t} of {n} is not allowed: it needs 3t > 2n (so t > (n + f) / 2 with f = n - t) and t <= n; the default is {default}"
    )]
    Threshold {
        /// The threshold asked for.
        t: u16,
        /// Number of members.
        n: usize,
        /// The default threshold ⌊2n/3⌋ + 1.
        default: u16,
    },
    /// Two members or labs share a name, peer id or key.
    #[error("duplicate {what}: {value}")]
    Duplicate {
        /// What is duplicated.
        what: &'static str,
        /// The duplicated value.
        value: String,
    },
    /// A key is not a valid Ed25519 public key.
    #[error("{who} has an invalid or weak Ed25519 key")]
    BadKey {
        /// Whose key.
        who: String,
    },
    /// A name or id is empty or too long.
    #[error("{what} must be 1 to {MAX_NAME_BYTES} bytes: {value:?}")]
    BadName {
        /// Which field.
        what: &'static str,
        /// The value (truncated).
        value: String,
    },
    /// The schedule has a zero or inconsistent duration.
    #[error("bad schedule: {0}")]
    Schedule(&'static str),
    /// The policy parameters are out of range.
    #[error("bad policy: {0}")]
    Policy(&'static str),
    /// A message of this network could grow past the frame limit.
    #[error(
        "with {members} members, {labs} labs and {reports} reports per inspector, a {mode} message could reach {bytes} bytes, over the {limit}-byte frame limit; lower max_reports_per_inspector (at most {fits:?} fits), use fewer labs, or sign per slot"
    )]
    TooLarge {
        /// n.
        members: usize,
        /// L.
        labs: usize,
        /// The roster's reports per inspector.
        reports: u16,
        /// The signing mode.
        mode: &'static str,
        /// The worst-case message size.
        bytes: usize,
        /// The limit.
        limit: usize,
        /// The largest reports per inspector that fits, if any.
        fits: Option<usize>,
    },
}

/// The default threshold for `n` members: ⌊2n/3⌋ + 1.
pub fn default_threshold(n: usize) -> u16 {
    u16::try_from(2 * n / 3 + 1).unwrap_or(u16::MAX)
}

/// A validated roster with everything derived from it: network id, parsed keys, f.
#[derive(Debug)]
pub struct Network {
    roster: Roster,
    id: Digest,
    policy_hash: Digest,
    member_keys: Vec<ed25519_dalek::VerifyingKey>,
    lab_keys: Vec<ed25519_dalek::VerifyingKey>,
    labs_by_id: BTreeMap<String, LabIndex>,
    limits: Limits,
}

impl Network {
    /// Validates `roster` and derives the network.
    ///
    /// # Errors
    /// The first rule the roster breaks.
    pub fn new(roster: Roster) -> Result<Arc<Self>, RosterError> {
        let n = roster.members.len();
        if !(2..=MAX_MEMBERS).contains(&n) {
            return Err(RosterError::MemberCount(n));
        }
        if roster.labs.len() > MAX_LABS {
            return Err(RosterError::LabCount(roster.labs.len()));
        }
        let t = roster.threshold;
        if usize::from(t) > n || 3 * usize::from(t) <= 2 * n {
            return Err(RosterError::Threshold {
                t,
                n,
                default: default_threshold(n),
            });
        }
        check_name("network name", &roster.name)?;
        let mut seen = BTreeMap::new();
        let mut member_keys = Vec::with_capacity(n);
        for m in &roster.members {
            check_name("member name", &m.name)?;
            check_name("peer id", &m.peer_id)?;
            for a in &m.addresses {
                check_name("address", a)?;
            }
            for (what, value) in [
                ("member name", m.name.clone()),
                ("peer id", m.peer_id.clone()),
                ("key", m.key.to_hex()),
            ] {
                if seen.insert((what, value.clone()), ()).is_some() {
                    return Err(RosterError::Duplicate { what, value });
                }
            }
            member_keys.push(m.key.verifying_key().map_err(|_| RosterError::BadKey {
                who: m.name.clone(),
            })?);
        }
        let mut labs_by_id = BTreeMap::new();
        let mut lab_keys = Vec::with_capacity(roster.labs.len());
        for (i, lab) in roster.labs.iter().enumerate() {
            check_name("lab id", &lab.id)?;
            let index =
                LabIndex(u16::try_from(i).map_err(|_| RosterError::LabCount(roster.labs.len()))?);
            if labs_by_id.insert(lab.id.clone(), index).is_some() {
                return Err(RosterError::Duplicate {
                    what: "lab id",
                    value: lab.id.clone(),
                });
            }
            lab_keys.push(lab.key.verifying_key().map_err(|_| RosterError::BadKey {
                who: lab.id.clone(),
            })?);
        }
        let s = &roster.schedule;
        if s.period_ms == 0 || s.attempt_timeout_ms == 0 || s.dkg_phase_timeout_ms == 0 {
            return Err(RosterError::Schedule(
                "period, attempt timeout and DKG phase timeout must be positive",
            ));
        }
        if s.max_clock_skew_ms >= s.attempt_timeout_ms {
            return Err(RosterError::Schedule(
                "the attempt timeout must exceed the maximum clock skew",
            ));
        }
        if s.max_clock_skew_ms >= s.observation_wait_ms.max(1) {
            return Err(RosterError::Schedule(
                "the observation wait must exceed the maximum clock skew",
            ));
        }
        roster.policy.validate().map_err(RosterError::Policy)?;
        let limits = Limits::new(
            n,
            usize::from(t),
            roster.labs.len(),
            usize::from(roster.max_reports_per_inspector),
        );
        let largest = limits.largest_message_bytes(roster.signing_mode);
        if largest > codec::MAX_MESSAGE_BYTES {
            return Err(RosterError::TooLarge {
                members: n,
                labs: roster.labs.len(),
                reports: roster.max_reports_per_inspector,
                mode: match roster.signing_mode {
                    SigningMode::PerSlot => "per-slot",
                    SigningMode::PerPeriod => "per-period",
                },
                bytes: largest,
                limit: codec::MAX_MESSAGE_BYTES,
                fits: Limits::fitting_reports(
                    n,
                    usize::from(t),
                    roster.labs.len(),
                    roster.signing_mode,
                    usize::from(roster.max_reports_per_inspector),
                ),
            });
        }
        let bytes =
            codec::encode(&roster).map_err(|_| RosterError::Schedule("roster too large"))?;
        if bytes.len() > MAX_ROSTER_BYTES {
            return Err(RosterError::Schedule("roster too large"));
        }
        let id = Digest::tagged("accord/network-id/v1", &[&bytes]);
        let policy_hash = roster.policy.hash();
        Ok(Arc::new(Self {
            roster,
            id,
            policy_hash,
            member_keys,
            lab_keys,
            labs_by_id,
            limits,
        }))
    }

    /// The roster this network was built from.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The network id: the hash of the canonical roster.
    pub fn id(&self) -> &Digest {
        &self.id
    }

    /// Hash of the policy parameters.
    pub fn policy_hash(&self) -> &Digest {
        &self.policy_hash
    }

    /// Number of members.
    pub fn n(&self) -> usize {
        self.roster.members.len()
    }

    /// Threshold t.
    pub fn t(&self) -> usize {
        usize::from(self.roster.threshold)
    }

    /// The number of faulty members tolerated, f = n − t.
    pub fn f(&self) -> usize {
        self.n() - self.t()
    }

    /// Observations needed to vouch for an item: f + 1.
    pub fn vouch_quorum(&self) -> usize {
        self.f() + 1
    }

    /// All member indexes.
    pub fn members(&self) -> impl Iterator<Item = MemberIndex> + use<> {
        (0..self.n() as u16).map(MemberIndex)
    }

    /// All lab indexes.
    pub fn labs(&self) -> impl Iterator<Item = LabIndex> + use<> {
        (0..self.roster.labs.len() as u16).map(LabIndex)
    }

    /// Whether `m` is a member.
    pub fn is_member(&self, m: MemberIndex) -> bool {
        usize::from(m.0) < self.n()
    }

    /// The Ed25519 key of member `m`.
    pub fn member_key(&self, m: MemberIndex) -> Option<&ed25519_dalek::VerifyingKey> {
        self.member_keys.get(usize::from(m.0))
    }

    /// The Ed25519 key of lab `l`.
    pub fn lab_key(&self, l: LabIndex) -> Option<&ed25519_dalek::VerifyingKey> {
        self.lab_keys.get(usize::from(l.0))
    }

    /// The lab with id `id`.
    pub fn lab_by_id(&self, id: &str) -> Option<LabIndex> {
        self.labs_by_id.get(id).copied()
    }

    /// The id of lab `l`.
    pub fn lab_id(&self, l: LabIndex) -> &str {
        self.roster
            .labs
            .get(usize::from(l.0))
            .map_or("", |lab| lab.id.as_str())
    }

    /// The member whose roster key is `key`.
    pub fn member_by_key(&self, key: &PublicKey) -> Option<MemberIndex> {
        self.roster
            .members
            .iter()
            .position(|m| &m.key == key)
            .map(|i| MemberIndex(i as u16))
    }

    /// The member with libp2p peer id `peer_id`.
    pub fn member_by_peer_id(&self, peer_id: &str) -> Option<MemberIndex> {
        self.roster
            .members
            .iter()
            .position(|m| m.peer_id == peer_id)
            .map(|i| MemberIndex(i as u16))
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.roster.schedule
    }

    /// The bounds every message and record of this network respects.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), RosterError> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(RosterError::BadName {
            what,
            value: value.chars().take(40).collect(),
        });
    }
    Ok(())
}
