//! Why a message is refused, and what a member did wrong. Every variant has a stable
//! `code()` (metrics and logs use it); none carries text a peer chose. "The sender misbehaved"
//! ([`MessageError::is_misbehaviour`]) is kept apart from "this member cannot help"
//! ([`CannotHelp`]), as rustls keeps `PeerMisbehaved` apart from `PeerIncompatible`.

use thiserror::Error;

use crate::dkg::DkgOffence;
use crate::evidence::EvidenceError;
use crate::message::ObservationFault;

use super::MAX_CEREMONY_JUMP;

/// What a member did wrong. [`Offence::code`] is a stable label (metrics, logs): no variant
/// carries text a peer chose.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Offence {
    /// A signature share that failed FROST verification.
    #[error("invalid signature share")]
    InvalidShare,
    /// Two different signed observations for one period.
    #[error("equivocating observations")]
    EquivocatingObservation,
    /// Two different proposals under one proposal id.
    #[error("equivocating proposals")]
    EquivocatingProposal,
    /// A proposal that breaks the proposal rule.
    #[error("invalid proposal: {0}")]
    InvalidProposal(ProposalFault),
    /// Its own observation did not verify or broke the syntax rules.
    #[error("badly signed or malformed observation")]
    BadObservation,
    /// It relayed (in a proposal or a reply) an observation that does not verify or breaks the
    /// syntax rules; an honest member relays only observations it verified.
    #[error("relayed a badly signed or malformed observation")]
    RelayedBadObservation,
    /// It sent evidence that does not validate (an honest member sends only what it validated).
    #[error("sent invalid evidence")]
    BadEvidence,
    /// Misbehaviour in key generation.
    #[error("DKG: {0}")]
    Dkg(DkgOffence),
}

impl Offence {
    /// A stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            Offence::InvalidShare => "invalid-share",
            Offence::EquivocatingObservation => "equivocating-observation",
            Offence::EquivocatingProposal => "equivocating-proposal",
            Offence::InvalidProposal(_) => "invalid-proposal",
            Offence::BadObservation => "bad-observation",
            Offence::RelayedBadObservation => "relayed-bad-observation",
            Offence::BadEvidence => "bad-evidence",
            Offence::Dkg(d) => d.code(),
        }
    }
}

/// Which rule of the proposal rule (`docs/protocol.md` §13) a proposal breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProposalFault {
    /// The revision is above [`MAX_REVISIONS`](crate::limits::MAX_REVISIONS).
    #[error("revision above the limit")]
    Revision,
    /// Not one statement per lab of the unit.
    #[error("wrong number of statements")]
    StatementCount,
    /// A statement for another network or policy.
    #[error("wrong network or policy")]
    WrongNetwork,
    /// A statement for another slot than its position.
    #[error("statement for another slot")]
    WrongSlot,
    /// Evidence digests not sorted and distinct.
    #[error("evidence not sorted and distinct")]
    EvidenceOrder,
    /// More items in a slot or the unit than any honest proposal names.
    #[error("more items than vouching allows")]
    TooManyItems,
    /// More observations than the limit, or more than two from one member.
    #[error("too many observations")]
    TooManyObservations,
    /// An observation for another period or breaking the syntax rules.
    #[error("observation for another period or malformed")]
    MalformedObservation,
    /// An observation whose signature does not verify.
    #[error("badly signed observation")]
    BadlySignedObservation,
    /// An item of another slot or period than its statement's.
    #[error("item of another slot")]
    ItemOfAnotherSlot,
    /// An item not vouched by f + 1 members, in its place, among the proposal's observations.
    #[error("item not vouched by f + 1 observations")]
    NotVouched,
    /// A verdict that is not the policy's on the statement's items.
    #[error("verdict is not the policy's")]
    WrongVerdict,
}

impl ProposalFault {
    /// A stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            ProposalFault::Revision => "revision",
            ProposalFault::StatementCount => "statement-count",
            ProposalFault::WrongNetwork => "wrong-network",
            ProposalFault::WrongSlot => "wrong-slot",
            ProposalFault::EvidenceOrder => "evidence-order",
            ProposalFault::TooManyItems => "too-many-items",
            ProposalFault::TooManyObservations => "too-many-observations",
            ProposalFault::MalformedObservation => "malformed-observation",
            ProposalFault::BadlySignedObservation => "badly-signed-observation",
            ProposalFault::ItemOfAnotherSlot => "item-of-another-slot",
            ProposalFault::NotVouched => "not-vouched",
            ProposalFault::WrongVerdict => "wrong-verdict",
        }
    }
}

/// Why a signing request gets no share because the request itself is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SigningFault {
    /// Fewer than t commitments.
    #[error("fewer than t commitments")]
    TooFewCommitments,
    /// A commitment under an identifier that is not a member's.
    #[error("commitment from a non-member")]
    NonMember,
    /// This member's commitment is not in the package.
    #[error("our commitment is not in the package")]
    NoCommitmentOfOurs,
    /// The commitment already signed a different package.
    #[error("commitment already used for a different package")]
    CommitmentReused,
    /// The package's message is not the accepted proposal's.
    #[error("package message differs from the accepted proposal")]
    WrongMessage,
    /// The package carries a commitment of ours that is not the current one.
    #[error("package carries a commitment that is not our current one")]
    StaleCommitment,
}

/// Why this member cannot help, through no fault of the sender (rustls keeps
/// `PeerIncompatible` apart from `PeerMisbehaved` in the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CannotHelp {
    /// No key share yet.
    #[error("this member has no key share yet")]
    NoKey,
    /// No signer state for the proposal: not accepted in this process lifetime (nonces never
    /// survive a restart), or already replaced.
    #[error("no accepted proposal for this id (nonces do not survive a restart)")]
    NoNonces,
    /// The nonces were consumed by an earlier failed signing attempt.
    #[error("nonces already used")]
    NoncesUsed,
    /// frost refused to produce a share.
    #[error("frost refused to sign")]
    FrostRefused,
}

/// Why a message was not accepted: the sender misbehaved, or this member cannot help.
/// [`MessageError::code`] is a stable label.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The sender is not in the roster.
    #[error("sender is not a member")]
    NotAMember,
    /// The message names another author than the connection it came from.
    #[error("message author does not match the authenticated sender")]
    WrongSender,
    /// The evidence is invalid.
    #[error("evidence: {0}")]
    Evidence(#[from] EvidenceError),
    /// A signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// An observation breaks the syntax rules.
    #[error("observation: {0}")]
    Observation(#[from] ObservationFault),
    /// Structurally invalid content.
    #[error("malformed: {0}")]
    Malformed(Malformed),
    /// Only the attempt's coordinator may send this.
    #[error("sender is not the coordinator of this attempt")]
    NotCoordinator,
    /// A proposal that breaks the proposal rule.
    #[error("proposal refused: {0}")]
    Proposal(#[from] ProposalFault),
    /// A second, different message under an id that names one (a proposal id).
    #[error("a different message under the same id")]
    Equivocation,
    /// A signing request that no member may answer.
    #[error("signing refused: {0}")]
    Signing(#[from] SigningFault),
    /// Not the sender's fault.
    #[error("{0}")]
    CannotHelp(#[from] CannotHelp),
}

/// What is structurally wrong with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Malformed {
    /// A unit that does not fit the roster's signing mode or labs.
    #[error("unit does not fit the network")]
    Unit,
    /// Co-signed statements that do not fit their unit.
    #[error("co-signed statements do not fit the unit")]
    CoSignedShape,
    /// A collection larger than the roster allows.
    #[error("collection over the roster's bound")]
    Oversized,
    /// An item of another period or slot than the message's unit.
    #[error("item of another slot")]
    OtherSlot,
    /// A DKG ceremony number too far ahead.
    #[error("ceremony number too far ahead")]
    Ceremony,
    /// A succession proposal, signing package or co-signed succession that does not check
    /// out (`docs/protocol.md` §22.7).
    #[error("succession does not check out")]
    Succession,
}

impl MessageError {
    /// Whether the sender is at fault (gossipsub rejects and scores down); otherwise this member
    /// cannot help and the message is only ignored.
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(self, MessageError::CannotHelp(_))
    }

    /// A stable short code (metrics, logs).
    pub fn code(&self) -> &'static str {
        match self {
            MessageError::NotAMember => "not-a-member",
            MessageError::WrongSender => "wrong-sender",
            MessageError::Evidence(e) => e.code(),
            MessageError::BadSignature => "bad-signature",
            MessageError::Observation(o) => o.code(),
            MessageError::Malformed(m) => match m {
                Malformed::Unit => "malformed-unit",
                Malformed::CoSignedShape => "malformed-cosigned",
                Malformed::Oversized => "oversized",
                Malformed::OtherSlot => "other-slot",
                Malformed::Ceremony => "ceremony-too-far",
                Malformed::Succession => "malformed-succession",
            },
            MessageError::NotCoordinator => "not-coordinator",
            MessageError::Proposal(p) => p.code(),
            MessageError::Equivocation => "equivocation",
            MessageError::Signing(s) => match s {
                SigningFault::TooFewCommitments => "signing-too-few-commitments",
                SigningFault::NonMember => "signing-non-member",
                SigningFault::NoCommitmentOfOurs => "signing-no-commitment-of-ours",
                SigningFault::CommitmentReused => "signing-commitment-reused",
                SigningFault::WrongMessage => "signing-wrong-message",
                SigningFault::StaleCommitment => "signing-stale-commitment",
            },
            MessageError::CannotHelp(c) => match c {
                CannotHelp::NoKey => "no-key",
                CannotHelp::NoNonces => "no-nonces",
                CannotHelp::NoncesUsed => "nonces-used",
                CannotHelp::FrostRefused => "frost-refused",
            },
        }
    }
}

/// Why a DKG ceremony cannot start here.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DkgStartError {
    /// This member already has a confirmed key.
    #[error("this member already has a group key")]
    HaveKey,
    /// The ceremony number was used before.
    #[error(
        "ceremony {ceremony} is not newer than the last one here ({last}); use a higher number"
    )]
    CeremonyUsed {
        /// Asked for.
        ceremony: u32,
        /// Last used here.
        last: u32,
    },
    /// The ceremony number is further ahead of the last one than members follow.
    #[error(
        "ceremony {ceremony} is too far ahead of the last one here; use at most {most} (members join ceremonies at most {MAX_CEREMONY_JUMP} ahead)"
    )]
    TooFarAhead {
        /// Asked for.
        ceremony: u32,
        /// The highest allowed now.
        most: u32,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_message_error_code_is_distinct_and_kebab_case() {
        let proposal = [
            ProposalFault::Revision,
            ProposalFault::StatementCount,
            ProposalFault::WrongNetwork,
            ProposalFault::WrongSlot,
            ProposalFault::EvidenceOrder,
            ProposalFault::TooManyItems,
            ProposalFault::TooManyObservations,
            ProposalFault::MalformedObservation,
            ProposalFault::BadlySignedObservation,
            ProposalFault::ItemOfAnotherSlot,
            ProposalFault::NotVouched,
            ProposalFault::WrongVerdict,
        ];
        let signing = [
            SigningFault::TooFewCommitments,
            SigningFault::NonMember,
            SigningFault::NoCommitmentOfOurs,
            SigningFault::CommitmentReused,
            SigningFault::WrongMessage,
            SigningFault::StaleCommitment,
        ];
        let unable = [
            CannotHelp::NoKey,
            CannotHelp::NoNonces,
            CannotHelp::NoncesUsed,
            CannotHelp::FrostRefused,
        ];
        let malformed = [
            Malformed::Unit,
            Malformed::CoSignedShape,
            Malformed::Oversized,
            Malformed::OtherSlot,
            Malformed::Ceremony,
        ];
        let mut all: Vec<MessageError> = vec![
            MessageError::NotAMember,
            MessageError::WrongSender,
            MessageError::BadSignature,
            MessageError::NotCoordinator,
            MessageError::Equivocation,
        ];
        all.extend(proposal.map(MessageError::Proposal));
        all.extend(signing.map(MessageError::Signing));
        all.extend(unable.map(MessageError::CannotHelp));
        all.extend(malformed.map(MessageError::Malformed));
        let codes: BTreeSet<&str> = all.iter().map(MessageError::code).collect();
        assert_eq!(codes.len(), all.len(), "two errors share a code");
        for c in &codes {
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{c}"
            );
        }
        // Only "cannot help" is not the sender's fault.
        for e in &all {
            assert_eq!(
                e.is_misbehaviour(),
                !matches!(e, MessageError::CannotHelp(_)),
                "{e:?}"
            );
        }
    }
}
