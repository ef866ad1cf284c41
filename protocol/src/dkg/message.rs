//! DKG and refresh wire messages: signed by the sender's roster key under a tag that names the
//! ceremony kind, so a message of one kind never verifies as the other.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec;
use crate::crypto::{Digest, Frost, PublicKey, SecretKey, Signature, signing_bytes, verify_strict};
use crate::roster::{MemberIndex, Network};
use frost_ed25519::keys::dkg;

use super::KeyMaterial;

const DKG_TAG: &str = "accord/dkg";
const REFRESH_TAG: &str = "accord/refresh";

/// Which kind of ceremony a [`DkgMessage`] belongs to. The kind is not encoded in the message:
/// it selects the signing tag (and the wire variant, `Message::Dkg` or `Message::Refresh`), so a
/// DKG message never verifies as a refresh message nor the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ceremony {
    /// Distributed key generation: a new group key.
    Dkg,
    /// Proactive share refresh: the same group key, new shares (`docs/protocol.md` §22.5).
    Refresh,
}

impl Ceremony {
    fn tag(self) -> &'static str {
        match self {
            Ceremony::Dkg => DKG_TAG,
            Ceremony::Refresh => REFRESH_TAG,
        }
    }
}

/// The content of a DKG message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DkgBody {
    /// Round-1 package (broadcast; may be relayed by others as proof).
    Round1(Frost<dkg::round1::Package>),
    /// Digest of each member's signed round-1 message, in roster order (broadcast).
    Echo(Vec<Digest>),
    /// Round-2 package for `recipient` (direct, secret).
    Round2(Frost<dkg::round2::Package>),
    /// The accused's signed round-2 message to the complainer, revealed (broadcast).
    Complaint(Box<RevealedShare>),
    /// The resulting group key and public key package digest (broadcast).
    Confirm {
        /// The group key.
        group_key: PublicKey,
        /// Digest of the public key package.
        public_package: Digest,
    },
    /// Refresh only: the sender holds no refreshed share of this ceremony and will never
    /// confirm it, so the ceremony cannot complete (broadcast; relayable). Appended last, so
    /// the encodings of the variants above are unchanged.
    Withdraw,
}

/// The signed round-2 message an accused member sent the complainer, as a complaint reveals it.
/// It is not a [`DkgMessage`] (whose body could be another complaint), so a complaint cannot
/// nest: decoding depth stays fixed whatever the input.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedShare {
    /// The accused (the round-2 message's sender).
    pub sender: MemberIndex,
    /// The share it sent the complainer.
    pub share: Frost<dkg::round2::Package>,
    /// The accused's signature over that round-2 message.
    pub signature: Signature,
}

impl fmt::Debug for RevealedShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RevealedShare(sender={}, redacted)", self.sender)
    }
}

impl RevealedShare {
    /// Reveals `msg`, a round-2 message to the complainer.
    pub fn of(msg: &DkgMessage) -> Option<Self> {
        match &msg.body {
            DkgBody::Round2(share) => Some(Self {
                sender: msg.sender,
                share: share.clone(),
                signature: msg.signature,
            }),
            _ => None,
        }
    }

    /// The round-2 message as the accused signed it, sent to `complainer` in `ceremony`.
    pub fn message(&self, ceremony: u32, complainer: MemberIndex) -> DkgMessage {
        DkgMessage {
            ceremony,
            sender: self.sender,
            recipient: Some(complainer),
            body: DkgBody::Round2(self.share.clone()),
            signature: self.signature,
        }
    }
}

/// A DKG message, signed by its sender's roster key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkgMessage {
    /// Ceremony number; a fresh ceremony uses a higher one.
    pub ceremony: u32,
    /// Author.
    pub sender: MemberIndex,
    /// Addressee of a direct message.
    pub recipient: Option<MemberIndex>,
    /// Content.
    pub body: DkgBody,
    /// The sender's Ed25519 signature over the fields above.
    pub signature: Signature,
}

impl fmt::Debug for DkgMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.body {
            DkgBody::Round1(_) => "round1",
            DkgBody::Echo(_) => "echo",
            DkgBody::Round2(_) => "round2(redacted)",
            DkgBody::Complaint(_) => "complaint",
            DkgBody::Confirm { .. } => "confirm",
            DkgBody::Withdraw => "withdraw",
        };
        write!(
            f,
            "DkgMessage(ceremony={}, sender={}, {kind})",
            self.ceremony, self.sender
        )
    }
}

impl DkgMessage {
    fn signed_bytes(
        kind: Ceremony,
        net_id: &Digest,
        ceremony: u32,
        sender: MemberIndex,
        recipient: Option<MemberIndex>,
        body: &DkgBody,
    ) -> Vec<u8> {
        signing_bytes(
            kind.tag(),
            net_id,
            &codec::encode_bounded(&(ceremony, sender, recipient, body)),
        )
    }

    /// Builds and signs a DKG message as member `sender` with its identity key.
    pub fn new(
        net: &Network,
        key: &SecretKey,
        ceremony: u32,
        sender: MemberIndex,
        recipient: Option<MemberIndex>,
        body: DkgBody,
    ) -> Self {
        Self::new_as(Ceremony::Dkg, net, key, ceremony, sender, recipient, body)
    }

    /// Builds and signs a message of ceremony kind `kind` as member `sender`.
    pub fn new_as(
        kind: Ceremony,
        net: &Network,
        key: &SecretKey,
        ceremony: u32,
        sender: MemberIndex,
        recipient: Option<MemberIndex>,
        body: DkgBody,
    ) -> Self {
        let signature = key.sign(&Self::signed_bytes(
            kind,
            net.id(),
            ceremony,
            sender,
            recipient,
            &body,
        ));
        Self {
            ceremony,
            sender,
            recipient,
            body,
            signature,
        }
    }

    /// Whether the sender's signature verifies as a DKG message.
    pub fn verify(&self, net: &Network) -> bool {
        self.verify_as(Ceremony::Dkg, net)
    }

    /// Whether the sender's signature verifies as a message of ceremony kind `kind`.
    pub fn verify_as(&self, kind: Ceremony, net: &Network) -> bool {
        let Some(key) = net.member_key(self.sender) else {
            return false;
        };
        verify_strict(
            key,
            &Self::signed_bytes(
                kind,
                net.id(),
                self.ceremony,
                self.sender,
                self.recipient,
                &self.body,
            ),
            &self.signature,
        )
        .is_ok()
    }

    /// Content hash (dedup and echo).
    pub fn digest(&self) -> Digest {
        Digest::tagged("accord/dkg-message/v1", &[&codec::encode_bounded(self)])
    }
}

/// What a member did wrong in a ceremony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum DkgOffence {
    /// Two different signed round-1 packages.
    #[error("sent different round-1 packages to different members")]
    Equivocation,
    /// Commitment vector of the wrong length.
    #[error("round-1 commitment has the wrong number of coefficients")]
    WrongCommitmentLength,
    /// Bad proof of knowledge of its secret.
    #[error("invalid proof of knowledge")]
    InvalidProofOfKnowledge,
    /// A share that does not match its commitment.
    #[error("sent a secret share that does not match its commitment")]
    InvalidShare,
    /// A complaint about a share that was in fact valid.
    #[error("complained about a valid share")]
    FalseComplaint,
    /// An echo claiming a package it could not produce.
    #[error("echoed a round-1 digest that it could not back")]
    UnbackedEcho,
    /// A confirmation with a different key.
    #[error("confirmed a different group key")]
    ConfirmMismatch,
    /// Two different signed confirmations in one ceremony.
    #[error("signed two different confirmations")]
    EquivocatingConfirmation,
    /// Missing when the phase timed out.
    #[error("did not answer before the phase timed out")]
    Timeout,
    /// A malformed or wrongly signed message.
    #[error("sent a malformed or badly signed message")]
    Malformed,
}

impl DkgOffence {
    /// A stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            DkgOffence::Equivocation => "dkg-equivocation",
            DkgOffence::WrongCommitmentLength => "dkg-commitment-length",
            DkgOffence::InvalidProofOfKnowledge => "dkg-proof-of-knowledge",
            DkgOffence::InvalidShare => "dkg-invalid-share",
            DkgOffence::FalseComplaint => "dkg-false-complaint",
            DkgOffence::UnbackedEcho => "dkg-unbacked-echo",
            DkgOffence::ConfirmMismatch => "dkg-confirm-mismatch",
            DkgOffence::EquivocatingConfirmation => "dkg-equivocating-confirmation",
            DkgOffence::Timeout => "dkg-timeout",
            DkgOffence::Malformed => "dkg-malformed",
        }
    }
}

/// Why a ceremony ended without a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkgFailure {
    /// The ceremony.
    pub ceremony: u32,
    /// The members held responsible, with what they did; empty when we failed locally.
    pub culprits: Vec<(MemberIndex, DkgOffence)>,
}

/// The group key and public key package digest a confirmation names, if it is one.
pub fn confirmed(msg: &DkgMessage) -> Option<(PublicKey, Digest)> {
    match &msg.body {
        DkgBody::Confirm {
            group_key,
            public_package,
        } => Some((*group_key, *public_package)),
        _ => None,
    }
}

/// Whether `msg` is a broadcast confirmation of `key` (its group key and public key package) in
/// `ceremony` (the signature is not checked here).
pub fn confirms(msg: &DkgMessage, key: &KeyMaterial, ceremony: u32) -> bool {
    msg.ceremony == ceremony
        && msg.recipient.is_none()
        && confirmed(msg) == Some((key.group_key(), key.public_digest()))
}

/// Whether `confirmations` prove that every member of `net` confirmed `key` in `ceremony`: one
/// validly signed confirmation from each member, all naming this key's group key and public
/// key package.
pub fn confirmations_prove(
    net: &Network,
    key: &KeyMaterial,
    ceremony: u32,
    confirmations: &[DkgMessage],
) -> bool {
    confirmations_prove_as(Ceremony::Dkg, net, key, ceremony, confirmations)
}

/// As [`confirmations_prove`], for confirmations of ceremony kind `kind`.
pub fn confirmations_prove_as(
    kind: Ceremony,
    net: &Network,
    key: &KeyMaterial,
    ceremony: u32,
    confirmations: &[DkgMessage],
) -> bool {
    let want = Some((key.group_key(), key.public_digest()));
    let mut seen = std::collections::BTreeSet::new();
    for c in confirmations {
        if c.ceremony != ceremony
            || c.recipient.is_some()
            || confirmed(c) != want
            || !c.verify_as(kind, net)
        {
            return false;
        }
        seen.insert(c.sender);
    }
    seen.len() == net.n()
}
