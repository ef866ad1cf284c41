//! Wire messages between members, and their envelope.
//!
//! The sender of a message is never taken from its body: the driver passes the member behind the
//! authenticated connection (or the gossip source) to the engine as `from`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::crypto::{Digest, Frost, Signature, signing_bytes};
use crate::dkg::DkgMessage;
use crate::evidence::Evidence;
use crate::roster::{MemberIndex, Period};
use crate::statement::{CoSigned, Statement, Unit};

/// Version byte at the front of every encoded message.
pub const WIRE_VERSION: u8 = 1;

const OBSERVATION_TAG: &str = "accord/observation";

/// The digests a member admitted for a period before its slots closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The observing member.
    pub member: MemberIndex,
    /// The period.
    pub period: Period,
    /// Digests of the evidence admitted before the close, sorted and distinct.
    pub items: Vec<Digest>,
}

impl Observation {
    /// The bytes the member signs.
    pub fn signing_bytes(&self, network_id: &Digest) -> Vec<u8> {
        signing_bytes(OBSERVATION_TAG, network_id, &codec::encode_bounded(self))
    }
}

/// An observation with its member's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedObservation {
    /// The observation.
    pub observation: Observation,
    /// The member's Ed25519 signature over [`Observation::signing_bytes`].
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

    /// Whether the observation lists `item`.
    pub fn vouches(&self, item: &Digest) -> bool {
        self.observation.items.binary_search(item).is_ok()
    }
}

/// Identifies one proposal: the unit, the coordinator attempt, and the revision within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// What is being signed.
    pub unit: Unit,
    /// The coordinator attempt (the coordinator rotates with it).
    pub attempt: u32,
    /// Re-proposals within an attempt, each over a larger evidence set.
    pub revision: u16,
}

/// A coordinator's proposal: the statements to sign and what justifies them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Which proposal this is.
    pub id: ProposalId,
    /// One statement per slot of the unit, in roster lab order.
    pub statements: Vec<Statement>,
    /// The body of every item the statements name.
    pub evidence: Vec<Arc<Evidence>>,
    /// Signed observations that vouch, f + 1 times, for every item.
    pub observations: Vec<Arc<SignedObservation>>,
}

impl Proposal {
    /// Content hash; accepts and sessions refer to it.
    pub fn digest(&self) -> Digest {
        Digest::tagged("accord/proposal-digest/v1", &[&codec::encode_bounded(self)])
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
    /// The missing items.
    pub evidence: Vec<Arc<Evidence>>,
    /// Observations that vouch for them.
    pub observations: Vec<Arc<SignedObservation>>,
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
            Message::Dkg(d) => d.recipient.is_none(),
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
