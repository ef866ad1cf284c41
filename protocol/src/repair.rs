//! Share repair (`docs/protocol.md` §22.6): a member that lost its key share, but kept its
//! identity key, recovers it with the help of t other members, none of whom learns it
//! (frost `keys::repairable`, the Repairable Threshold Scheme of eprint 2017/1155).
//!
//! 1. The member signs a [`RepairRequest`] with its roster identity key, naming exactly t
//!    helpers, and sends it to each of them. Only the member itself can sign one, and what the
//!    helpers compute goes only to the member named in it: nobody can ask for someone else's
//!    share.
//! 2. Each helper splits its Lagrange-weighted share into t random deltas
//!    (`repair_share_part1`) and sends each other helper its delta, with the signed request
//!    (so a helper that has not yet seen the request can check it).
//! 3. Each helper sums the t deltas it holds (`repair_share_part2`) and sends the sum (sigma) to
//!    the member, with its public key package.
//! 4. The member adds the t sigmas (`repair_share_part3`) and keeps the share only if every
//!    helper sent the same public key package, it has this network's group key (when the member
//!    still knows it) and the share's verifying share is the package's for the member — frost
//!    does not check that.

use std::fmt;

use frost_ed25519::keys::PublicKeyPackage;
use frost_ed25519::keys::repairable::{Delta, Sigma};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::crypto::{Digest, Frost, SecretKey, Signature, signing_bytes, verify_strict};
use crate::roster::{MemberIndex, Network};
use crate::time::Instant;

const REPAIR_TAG: &str = "accord/repair-request";

/// A member's signed request to have its share repaired by `helpers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRequest {
    /// The member whose share is lost (the signer, and the only recipient of the result).
    pub member: MemberIndex,
    /// Exactly t other members, strictly ascending.
    pub helpers: Vec<MemberIndex>,
    /// When the member issued it (helpers refuse requests far from their clock).
    pub issued_at: Instant,
    /// Random: tells two requests issued at the same time apart.
    pub nonce: Digest,
    /// The member's Ed25519 signature over the fields above.
    pub signature: Signature,
}

/// Why a repair request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFault {
    /// Not a member, or helpers not exactly t distinct other members in ascending order.
    Shape,
    /// The member's signature does not verify.
    Signature,
}

impl RepairRequest {
    fn signed_bytes(
        net: &Network,
        member: MemberIndex,
        helpers: &[MemberIndex],
        issued_at: Instant,
        nonce: &Digest,
    ) -> Vec<u8> {
        signing_bytes(
            REPAIR_TAG,
            net.id(),
            &codec::encode_bounded(&(member, helpers, issued_at, nonce)),
        )
    }

    /// Builds and signs a request as `member` with its identity key.
    pub fn new(
        net: &Network,
        identity: &SecretKey,
        member: MemberIndex,
        helpers: Vec<MemberIndex>,
        issued_at: Instant,
        nonce: Digest,
    ) -> Self {
        let signature = identity.sign(&Self::signed_bytes(
            net, member, &helpers, issued_at, &nonce,
        ));
        Self {
            member,
            helpers,
            issued_at,
            nonce,
            signature,
        }
    }

    /// Whether the helper set is well formed: exactly t distinct members in ascending order,
    /// the requester not among them (checked before the signature, so a hostile request costs
    /// no verification).
    pub fn well_formed(&self, net: &Network) -> bool {
        net.is_member(self.member)
            && self.helpers.len() == net.t()
            && self.helpers.windows(2).all(|w| w[0] < w[1])
            && self
                .helpers
                .iter()
                .all(|h| net.is_member(*h) && *h != self.member)
    }

    /// Checks the shape and the member's signature.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn check(&self, net: &Network) -> Result<(), RequestFault> {
        if !self.well_formed(net) {
            return Err(RequestFault::Shape);
        }
        let key = net.member_key(self.member).ok_or(RequestFault::Shape)?;
        let bytes =
            Self::signed_bytes(net, self.member, &self.helpers, self.issued_at, &self.nonce);
        verify_strict(key, &bytes, &self.signature).map_err(|_| RequestFault::Signature)
    }

    /// Content hash; the deltas and sigmas of this request name it.
    pub fn digest(&self) -> Digest {
        Digest::tagged(
            "accord/repair-request-digest/v1",
            &[&codec::encode_bounded(self)],
        )
    }
}

/// A message of a repair.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RepairMessage {
    /// The member's request (member → each helper, direct).
    Request(RepairRequest),
    /// A helper's delta for another helper (direct, secret), with the request it answers.
    Delta {
        /// The request.
        request: RepairRequest,
        /// Digest of the sending helper's public key package (all helpers must hold one).
        public_package: Digest,
        /// The delta for the recipient.
        delta: Frost<Delta>,
    },
    /// A helper's sum of deltas for the member (direct, secret).
    Sigma {
        /// Digest of the request.
        request: Digest,
        /// The helper's sigma.
        sigma: Frost<Sigma>,
        /// The helper's public key package (the member may have lost its own).
        public: Frost<PublicKeyPackage>,
    },
}

impl fmt::Debug for RepairMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepairMessage::Request(r) => write!(
                f,
                "RepairMessage::Request(member={}, helpers={:?})",
                r.member, r.helpers
            ),
            RepairMessage::Delta { request, .. } => {
                write!(
                    f,
                    "RepairMessage::Delta(member={}, redacted)",
                    request.member
                )
            }
            RepairMessage::Sigma { .. } => write!(f, "RepairMessage::Sigma(redacted)"),
        }
    }
}

/// Whether `public` fits `net`: one verifying share per member and the roster's threshold.
pub fn fits(net: &Network, public: &PublicKeyPackage) -> bool {
    public.verifying_shares().len() == net.n()
        && net
            .members()
            .all(|m| public.verifying_shares().contains_key(&m.identifier()))
        && public
            .min_signers()
            .is_some_and(|t| usize::from(t) == net.t())
}
