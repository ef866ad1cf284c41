//! Wire messages between members, and their envelope.
//!
//! The sender of a message is never taken from its body: the driver passes the member behind the
//! authenticated connection (or the gossip source) to the engine as `from`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec::{self, CodecError};
use crate::crypto::{Digest, Frost, Signature, signing_bytes};
use crate::dkg::DkgMessage;
use crate::evidence::{Evidence, Place};
use crate::repair::RepairMessage;
use crate::roster::{LabIndex, MemberIndex, Network, Period};
use crate::statement::{CoSigned, Statement, Unit};
use crate::succession::{SignedSuccession, SuccessionProposal};

/// Version byte at the front of every encoded message.
pub const WIRE_VERSION: u8 = 1;

const OBSERVATION_TAG: &str = "accord/observation";

/// What a member admitted for one slot before the close.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotItems {
    /// The slot's lab.
    pub lab: LabIndex,
    /// Digests of its attestations, ascending, at most
    /// [`crate::limits::MAX_ATTESTATIONS_PER_SLOT`].
    pub attestations: Vec<Digest>,
    /// `(inspector, digest)` of its inspection reports, one per inspector, by inspector.
    pub reports: Vec<(MemberIndex, Digest)>,
}

/// The items a member admitted for a period before its slots closed, slot by slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The observing member.
    pub member: MemberIndex,
    /// The period.
    pub period: Period,
    /// One entry per slot with admitted items, in lab order (slots without items are left out).
    pub slots: Vec<SlotItems>,
}

/// Why an observation breaks the syntax rules (`Observation::check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ObservationFault {
    /// The observing member is not in the roster.
    #[error("observer is not a member")]
    NotAMember,
    /// Labs not strictly ascending, unknown, or an empty entry.
    #[error("slots not in lab order, unknown or empty")]
    Slots,
    /// More attestations of a slot than a member admits, or not strictly ascending.
    #[error("attestations not ascending or over the per-slot limit")]
    Attestations,
    /// Reports not strictly ascending by inspector, or by a non-member.
    #[error("reports not one per inspector in order, or by a non-member")]
    Reports,
    /// More reports by one inspector than the roster allows per period.
    #[error("more reports by one inspector than the roster allows")]
    ReportsPerInspector,
}

impl ObservationFault {
    /// A stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            ObservationFault::NotAMember => "observer-not-a-member",
            ObservationFault::Slots => "observation-slots",
            ObservationFault::Attestations => "observation-attestations",
            ObservationFault::Reports => "observation-reports",
            ObservationFault::ReportsPerInspector => "observation-reports-per-inspector",
        }
    }
}

impl Observation {
    /// The bytes the member signs.
    pub fn signing_bytes(&self, network_id: &Digest) -> Vec<u8> {
        signing_bytes(OBSERVATION_TAG, network_id, &codec::encode_bounded(self))
    }

    /// Whether the observation lists `item`, of slot `lab`, at `place`.
    pub fn lists(&self, lab: LabIndex, place: Place, item: &Digest) -> bool {
        let Ok(i) = self.slots.binary_search_by_key(&lab, |s| s.lab) else {
            return false;
        };
        let slot = &self.slots[i];
        match place {
            Place::Attestation => slot.attestations.binary_search(item).is_ok(),
            Place::Report(inspector) => slot
                .reports
                .binary_search_by_key(&inspector, |(m, _)| *m)
                .is_ok_and(|j| slot.reports[j].1 == *item),
        }
    }

    /// Whether `item` appears anywhere in the observation (its place unknown).
    pub fn mentions(&self, item: &Digest) -> bool {
        self.digests().any(|d| d == item)
    }

    /// Every digest listed.
    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        self.slots.iter().flat_map(|s| {
            s.attestations
                .iter()
                .chain(s.reports.iter().map(|(_, d)| d))
        })
    }

    /// Number of digests listed.
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.attestations.len() + s.reports.len())
            .sum()
    }

    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The syntax rules: a member; slots in strictly ascending lab order, each a lab of the
    /// roster and non-empty; per slot at most [`crate::limits::MAX_ATTESTATIONS_PER_SLOT`]
    /// attestations, strictly ascending, and reports strictly ascending by inspector (one per
    /// inspector), each by a member; per inspector at most the roster's reports per period. An
    /// honest member's observation always passes, whatever it admitted, so the rules bound what
    /// any observation can list.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(&self, net: &Network) -> Result<(), ObservationFault> {
        if !net.is_member(self.member) {
            return Err(ObservationFault::NotAMember);
        }
        let labs = net.roster().labs.len();
        if !self.slots.windows(2).all(|w| w[0].lab < w[1].lab)
            || self.slots.iter().any(|s| {
                usize::from(s.lab.0) >= labs || (s.attestations.is_empty() && s.reports.is_empty())
            })
        {
            return Err(ObservationFault::Slots);
        }
        let mut per_inspector = vec![0usize; net.n()];
        for slot in &self.slots {
            if slot.attestations.len() > crate::limits::MAX_ATTESTATIONS_PER_SLOT
                || !slot.attestations.windows(2).all(|w| w[0] < w[1])
            {
                return Err(ObservationFault::Attestations);
            }
            if !slot.reports.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err(ObservationFault::Reports);
            }
            for (inspector, _) in &slot.reports {
                let Some(c) = per_inspector.get_mut(usize::from(inspector.0)) else {
                    return Err(ObservationFault::Reports);
                };
                *c += 1;
                if *c > net.limits().reports_per_inspector {
                    return Err(ObservationFault::ReportsPerInspector);
                }
            }
        }
        Ok(())
    }
}

/// An observation with its member's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedObservation {
    /// The observation.
    pub observation: Observation,
    /// The member's Ed25519 signature over [`Observation::signing_bytes`], under the batchable
    /// rule ([`crate::crypto::verify_member`]).
    pub signature: Signature,
}

impl SignedObservation {
    /// Content hash (distinguishes two different observations by one member).
    pub fn digest(&self) -> Digest {
        Digest::tagged(
            "accord/observation-digest/v1",
            &[&codec::encode_bounded(self)],
        )
    }
}

/// Identifies one proposal: the unit, the coordinator attempt, and the revision within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// What is being signed.
    pub unit: Unit,
    /// The coordinator attempt (the coordinator rotates with it).
    pub attempt: u32,
    /// Re-proposals within an attempt, each over a larger evidence set (at most
    /// [`crate::limits::MAX_REVISIONS`]).
    pub revision: u16,
}

/// A coordinator's proposal: the statements to sign and the observations that justify them.
/// Evidence bodies travel separately: a member that lacks some asks the coordinator
/// ([`Fetch`]), so a proposal's size depends only on digests (`docs/protocol.md` §23.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Which proposal this is.
    pub id: ProposalId,
    /// One statement per slot of the unit, in roster lab order.
    pub statements: Vec<Statement>,
    /// Signed observations that vouch, f + 1 times, for every item.
    pub observations: Vec<Arc<SignedObservation>>,
}

impl Proposal {
    /// Content hash; accepts and sessions refer to it.
    pub fn digest(&self) -> Digest {
        Digest::tagged("accord/proposal-digest/v1", &[&codec::encode_bounded(self)])
    }

    /// Every digest the statements name.
    pub fn items(&self) -> impl Iterator<Item = &Digest> {
        self.statements.iter().flat_map(|s| s.evidence.iter())
    }
}

/// A member accepts a proposal and commits to a fresh nonce for signing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    /// The proposal accepted.
    pub id: ProposalId,
    /// Its digest.
    pub proposal: Digest,
    /// The member's fresh round-1 commitments.
    pub commitments: Frost<frost_ed25519::round1::SigningCommitments>,
}

/// A member refuses a proposal because it lacks items the member knows are vouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// The proposal refused.
    pub id: ProposalId,
    /// Digests of the missing items (the coordinator fetches bodies it lacks).
    pub items: Vec<Digest>,
    /// Observations that vouch for them.
    pub observations: Vec<Arc<SignedObservation>>,
}

/// Asks a member for evidence bodies of a unit's slots that it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// The unit whose items are wanted.
    pub unit: Unit,
    /// Their digests.
    pub digests: Vec<Digest>,
}

/// Evidence bodies of a unit's slots, in answer to a [`Fetch`] (at most
/// [`crate::limits::BODIES_CHUNK_BYTES`] of evidence plus one item per message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bodies {
    /// The unit.
    pub unit: Unit,
    /// The bodies.
    pub evidence: Vec<Arc<Evidence>>,
}

/// The coordinator asks a signer for its share in one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// The proposal.
    pub id: ProposalId,
    /// The session within the proposal.
    pub session: u32,
    /// The FROST signing package (message and the session's commitments).
    pub package: Frost<frost_ed25519::SigningPackage>,
}

/// A signer's share, with a fresh commitment for the next session (ROAST).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// The proposal.
    pub id: ProposalId,
    /// The session.
    pub session: u32,
    /// The signature share.
    pub share: Frost<frost_ed25519::round2::SignatureShare>,
    /// Fresh commitments for a later session.
    pub next: Frost<frost_ed25519::round1::SigningCommitments>,
}

/// A restarted or reconnected member asks what was decided from `from` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The first period of interest.
    pub from: Period,
    /// The asker holds a key share whose ceremony it did not see confirmed by every member; it
    /// wants the signed confirmations.
    pub key_unconfirmed: bool,
}

/// Every message members exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// An evidence item (gossip).
    Evidence(Arc<Evidence>),
    /// A signed observation (gossip).
    Observation(Arc<SignedObservation>),
    /// A coordinator's proposal (gossip).
    Proposal(Arc<Proposal>),
    /// Acceptance with commitments (to the coordinator).
    Accept(Accept),
    /// Refusal listing missing vouched items (to the coordinator).
    Missing(Arc<Missing>),
    /// Request for a signature share (to one signer).
    SignRequest(SignRequest),
    /// A signature share (to the coordinator).
    Share(Share),
    /// A co-signed unit (gossip).
    CoSigned(Arc<CoSigned>),
    /// Catch-up request (to one member).
    SyncRequest(SyncRequest),
    /// Key generation.
    Dkg(DkgMessage),
    /// Request for evidence bodies (to one member).
    Fetch(Fetch),
    /// Evidence bodies (to one member).
    Bodies(Arc<Bodies>),
    /// Share refresh: DKG-shaped messages signed under the refresh tag (`docs/protocol.md`
    /// §22.5). Appended last, so the encodings of the variants above are unchanged.
    Refresh(DkgMessage),
    /// Share repair (`docs/protocol.md` §22.6; direct messages only).
    Repair(RepairMessage),
    /// Membership change: co-signing a succession (`docs/protocol.md` §22.7; direct messages
    /// only). Appended last, so the encodings of the variants above are unchanged.
    Succession(SuccessionMessage),
}

/// Co-signing a succession among the members of the epoch that hands over (ROAST-style, with
/// its own single-use nonces; `docs/protocol.md` §22.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SuccessionMessage {
    /// A coordinator offers a succession and asks the members that approved it for
    /// commitments.
    Propose(Arc<SuccessionProposal>),
    /// An approving member's fresh commitment, for the coordinator it is sent to only.
    Ready {
        /// The succession's digest.
        succession: Digest,
        /// The commitment.
        commitments: Frost<frost_ed25519::round1::SigningCommitments>,
    },
    /// The coordinator's signing package for one session.
    SignRequest {
        /// The succession's digest.
        succession: Digest,
        /// The package (the succession's signing bytes and the session's commitments).
        package: Frost<frost_ed25519::SigningPackage>,
    },
    /// A signer's share, to the coordinator, with a fresh commitment for a later session
    /// (ROAST: only a signer that answered is ready again).
    Share {
        /// The succession's digest.
        succession: Digest,
        /// Digest of the package signed.
        package: Digest,
        /// The share.
        share: Frost<frost_ed25519::round2::SignatureShare>,
        /// The signer's next commitment.
        next: Frost<frost_ed25519::round1::SigningCommitments>,
    },
    /// The co-signed succession.
    Done(Arc<SignedSuccession>),
}

impl Message {
    /// Whether the message travels by gossip (a broadcast every member validates and relays),
    /// as opposed to a direct request to one member. The node, the harness and the simulator
    /// all route by it.
    pub fn is_gossip(&self) -> bool {
        match self {
            Message::Evidence(_)
            | Message::Observation(_)
            | Message::Proposal(_)
            | Message::CoSigned(_) => true,
            Message::Dkg(d) | Message::Refresh(d) => d.recipient.is_none(),
            _ => false,
        }
    }

    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Evidence(_) => "evidence",
            Message::Observation(_) => "observation",
            Message::Proposal(_) => "proposal",
            Message::Accept(_) => "accept",
            Message::Missing(_) => "missing",
            Message::SignRequest(_) => "sign-request",
            Message::Share(_) => "share",
            Message::CoSigned(_) => "co-signed",
            Message::SyncRequest(_) => "sync-request",
            Message::Dkg(_) => "dkg",
            Message::Fetch(_) => "fetch",
            Message::Bodies(_) => "bodies",
            Message::Refresh(_) => "refresh",
            Message::Repair(_) => "repair",
            Message::Succession(_) => "succession",
        }
    }

    /// Encodes as `version ‖ bincode(message)`.
    ///
    /// # Errors
    /// Only when the message is over [`codec::MAX_MESSAGE_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let body = codec::encode(self)?;
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(WIRE_VERSION);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a message of at most `limit` bytes; rejects other versions, trailing bytes and
    /// non-canonical encodings.
    ///
    /// # Errors
    /// A typed [`CodecError`].
    pub fn decode(bytes: &[u8], limit: usize) -> Result<Self, CodecError> {
        if bytes.len() > limit {
            return Err(CodecError::TooLarge {
                len: bytes.len(),
                limit,
            });
        }
        let (&version, body) = bytes
            .split_first()
            .ok_or_else(|| CodecError::Truncated("empty message".into()))?;
        if version != WIRE_VERSION {
            return Err(CodecError::UnsupportedVersion {
                found: version,
                supported: WIRE_VERSION,
            });
        }
        codec::decode_canonical(body, limit)
    }
}
