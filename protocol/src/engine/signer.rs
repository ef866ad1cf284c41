//! The signer, the member's side of `docs/protocol.md` §16: single-use nonces committed to when
//! a proposal is accepted, and the verdict-protection table that binds each commitment to the one
//! package it signed, persisted before the share leaves (invariant 6).

use std::collections::BTreeMap;
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_core::{CryptoRng, RngCore};

use crate::crypto::{Digest, Frost};
use crate::dkg::KeyMaterial;
use crate::message::{Message, ProposalId, Share, SignRequest};
use crate::roster::{MemberIndex, Period};
use crate::statement::{Statement, signing_message};

use super::record::SignedRecord;
use super::{CannotHelp, Delivery, Engine, MessageError, Output, Record, SigningFault};

/// Nonces that can be used exactly once: `sign` consumes them.
pub(super) struct SingleUseNonces(pub(super) frost::round1::SigningNonces);

impl SingleUseNonces {
    pub(super) fn sign(
        self,
        package: &frost::SigningPackage,
        key: &frost::keys::KeyPackage,
    ) -> Result<frost::round2::SignatureShare, frost::Error> {
        frost::round2::sign(package, &self.0, key)
        // `self` drops here; frost's nonces zeroize on drop.
    }
}

/// This member's signer state for one attempt of a unit: the accepted revision's signing
/// message and one unused commitment.
pub(super) struct SignerSlot {
    pub(super) id: ProposalId,
    pub(super) message: Arc<Vec<u8>>,
    pub(super) nonces: Option<SingleUseNonces>,
    pub(super) commitments: frost::round1::SigningCommitments,
}

/// Commitment digest → the share it released and the period it was for.
pub(super) type Protection = BTreeMap<Digest, (SignedRecord, Period)>;

impl Engine {
    /// Commits to a fresh nonce for an accepted proposal (`docs/protocol.md` §13, accept): the
    /// attempt's signer state now holds the proposal's signing message and the nonces, and
    /// only a package over that message can ever use them.
    pub(super) fn arm_signer(
        &mut self,
        id: ProposalId,
        statements: &[Statement],
        keys: &KeyMaterial,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> frost::round1::SigningCommitments {
        let (nonces, commitments) = frost::round1::commit(keys.key_package.signing_share(), rng);
        let message = Arc::new(signing_message(self.net.id(), &id.unit, statements));
        let state = self.units.entry(id.unit).or_default();
        // One signer state per attempt: a newer revision of the attempt replaces the older one
        // (its sessions are over), and no attempt's state can evict another's.
        state.signer.insert(
            id.attempt,
            SignerSlot {
                id,
                message,
                nonces: Some(SingleUseNonces(nonces)),
                commitments,
            },
        );
        commitments
    }

    pub(super) fn on_sign_request(
        &mut self,
        from: MemberIndex,
        req: SignRequest,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let refuse = |why: SigningFault| Delivery::Rejected(MessageError::Signing(why));
        let unable = |why: CannotHelp| Delivery::Rejected(MessageError::CannotHelp(why));
        let unit = req.id.unit;
        if from != self.coordinator_of(&unit, req.id.attempt) {
            return Delivery::Rejected(MessageError::NotCoordinator);
        }
        if self.decided.contains_key(&unit) {
            // A spare session's request arriving after the unit was co-signed.
            return Delivery::Ignored;
        }
        let Some(keys) = self.keygen.keys.clone() else {
            return unable(CannotHelp::NoKey);
        };
        let package = &*req.package;
        let t = self.net.t();
        let n = self.net.n();
        // FAULTS 8: fewer than t commitments, unknown identifiers, or none of ours: no share.
        if package.signing_commitments().len() < t {
            return refuse(SigningFault::TooFewCommitments);
        }
        if package
            .signing_commitments()
            .keys()
            .any(|id| MemberIndex::from_identifier(id, n).is_none())
        {
            return refuse(SigningFault::NonMember);
        }
        let Some(mine) = package.signing_commitment(&self.me.identifier()) else {
            return refuse(SigningFault::NoCommitmentOfOurs);
        };
        let commitment_digest = Frost::new(mine).digest("accord/commitment/v1");
        let package_digest = req.package.digest("accord/signing-package/v1");
        // FAULTS 1: a commitment bound to one package never signs another, before or after a
        // restart (the binding is persisted before the share leaves).
        let bound = self
            .protection
            .get(&commitment_digest)
            .map(|(r, _)| (r.package, r.share.clone()));
        if bound.as_ref().is_some_and(|(p, _)| *p != package_digest) {
            return refuse(SigningFault::CommitmentReused);
        }
        let Some(slot) = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.signer.get_mut(&req.id.attempt))
            .filter(|s| s.id == req.id)
        else {
            return unable(CannotHelp::NoNonces);
        };
        // FAULTS 10: the message must be the statement we validated; we are never an oracle.
        if package.message() != slot.message.as_slice() {
            return refuse(SigningFault::WrongMessage);
        }
        // FAULTS 3: the same package again gets the same share again, never a new one.
        if let Some((_, share)) = bound {
            let next = slot.commitments;
            self.send_share(from, &req, share, next);
            return Delivery::Duplicate;
        }
        if mine != slot.commitments {
            return refuse(SigningFault::StaleCommitment);
        }
        let Some(nonces) = slot.nonces.take() else {
            return unable(CannotHelp::NoncesUsed);
        };
        let share = match nonces.sign(package, &keys.key_package) {
            Ok(s) => Frost::new(s),
            Err(_) => return unable(CannotHelp::FrostRefused),
        };
        let (next_nonces, next) = frost::round1::commit(keys.key_package.signing_share(), rng);
        slot.nonces = Some(SingleUseNonces(next_nonces));
        slot.commitments = next;
        let record = SignedRecord {
            id: req.id,
            commitment: commitment_digest,
            package: package_digest,
            share: share.clone(),
        };
        self.protection
            .insert(commitment_digest, (record.clone(), unit.period()));
        // Protection record first: the share may leave only once it is durable.
        self.outputs
            .push_back(Output::Persist(Record::Signed(record)));
        self.send_share(from, &req, share, next);
        Delivery::Accepted
    }

    /// Answers `req` with `share` and this member's next commitment (ROAST: a signer that
    /// answered is ready again).
    fn send_share(
        &mut self,
        to: MemberIndex,
        req: &SignRequest,
        share: Frost<frost::round2::SignatureShare>,
        next: frost::round1::SigningCommitments,
    ) {
        let share = Share {
            id: req.id,
            session: req.session,
            share,
            next: Frost::new(next),
        };
        self.send(to, Message::Share(share));
    }
}
