//! Share repair glue (`docs/protocol.md` §22.6): this member asking for its lost share
//! ([`Engine::request_repair`]), or helping another member recover its own
//! ([`crate::repair`] has the messages and the steps).
//!
//! State is bounded: one request of this member's own, and one helping state per other member
//! (a newer request of that member replaces it). Nothing here is persisted: a helper that
//! restarts mid-repair forgets it and the member asks again; a member that restarts before its
//! share is stored asks again with a fresh request.

use std::collections::BTreeMap;
use std::sync::Arc;

use frost_ed25519::keys::repairable;
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

use crate::crypto::{Digest, Frost, PublicKey};
use crate::dkg::KeyMaterial;
use crate::message::Message;
use crate::repair::{self, RepairMessage, RepairRequest, RequestFault};
use crate::roster::MemberIndex;
use crate::time::Instant;

use super::{Delivery, Engine, Event, Malformed, MessageError, Output};

/// This member's repairs, as the member that lost its share or as a helper.
#[derive(Default)]
pub(super) struct Repair {
    /// The group key this member knew before it lost its share (from its records), which a
    /// repaired share must have.
    pub(super) known_group_key: Option<PublicKey>,
    /// This member's own outstanding request.
    asking: Option<Asking>,
    /// Helping other members, one request each.
    helping: BTreeMap<MemberIndex, Helping>,
}

struct Asking {
    request: RepairRequest,
    digest: Digest,
    sigmas: BTreeMap<
        MemberIndex,
        (
            Frost<repairable::Sigma>,
            Frost<frost_ed25519::keys::PublicKeyPackage>,
        ),
    >,
}

struct Helping {
    request: RepairRequest,
    digest: Digest,
    /// Deltas received (this helper's own included), by helper.
    deltas: BTreeMap<MemberIndex, Frost<repairable::Delta>>,
    /// The sigma went out.
    answered: bool,
}

/// Why a repair cannot be requested.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RepairError {
    /// The helpers are not exactly t distinct other members.
    #[error("a repair needs exactly t distinct helpers other than this member")]
    Helpers,
}

/// How long a request stays acceptable to helpers, either side of their clock, in DKG phase
/// timeouts.
const REQUEST_WINDOW_PHASES: u64 = 4;

/// This member's own outstanding repair request, for its operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairProgress {
    /// The helpers asked.
    pub helpers: Vec<MemberIndex>,
    /// The helpers whose answer (sigma) has arrived.
    pub answered: Vec<MemberIndex>,
}

impl Engine {
    /// The group key this member's records name although it holds no share (its key file was
    /// lost): a repaired share must have it. `None` with a share in use, or without the records
    /// of a completed DKG (dealt keys).
    pub fn known_group_key(&self) -> Option<PublicKey> {
        self.repair
            .known_group_key
            .filter(|_| self.keygen.keys.is_none())
    }

    /// This member's own repair request while it waits for answers.
    pub fn repair_progress(&self) -> Option<RepairProgress> {
        self.repair.asking.as_ref().map(|a| RepairProgress {
            helpers: a.request.helpers.clone(),
            answered: a.sigmas.keys().copied().collect(),
        })
    }

    /// Asks `helpers` (exactly t other members; by default the t lowest-numbered) to repair
    /// this member's share: the operator's `repair` command after a lost key file. The
    /// repaired share replaces the key once it checks out ([`Event::Repaired`]).
    ///
    /// # Errors
    /// A helper set that is not exactly t distinct other members.
    pub fn request_repair(
        &mut self,
        now: Instant,
        helpers: Option<Vec<MemberIndex>>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), RepairError> {
        self.advance(now);
        let me = self.me;
        let helpers = helpers.unwrap_or_else(|| {
            self.net
                .members()
                .filter(|m| *m != me)
                .take(self.net.t())
                .collect()
        });
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let request =
            RepairRequest::new(&self.net, &self.identity, me, helpers, now, Digest(nonce));
        if !request.well_formed(&self.net) {
            return Err(RepairError::Helpers);
        }
        for h in request.helpers.clone() {
            self.send(h, Message::Repair(RepairMessage::Request(request.clone())));
        }
        self.repair.asking = Some(Asking {
            digest: request.digest(),
            request,
            sigmas: BTreeMap::new(),
        });
        self.event(Event::RepairRequested);
        Ok(())
    }

    pub(super) fn on_repair(
        &mut self,
        now: Instant,
        from: MemberIndex,
        msg: RepairMessage,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        match msg {
            RepairMessage::Request(request) => {
                // Over the requester's own connection only (the signature also says who).
                if from != request.member {
                    return Delivery::Rejected(MessageError::WrongSender);
                }
                self.help(now, request, None, rng)
            }
            RepairMessage::Delta {
                request,
                public_package,
                delta,
            } => {
                if !request.helpers.contains(&from) {
                    return Delivery::Rejected(MessageError::WrongSender);
                }
                self.help(now, request, Some((from, public_package, delta)), rng)
            }
            RepairMessage::Sigma {
                request,
                sigma,
                public,
            } => self.on_sigma(from, request, sigma, public),
        }
    }

    /// A request (and maybe a delta from helper `from`) for another member's repair.
    fn help(
        &mut self,
        now: Instant,
        request: RepairRequest,
        delta: Option<(MemberIndex, Digest, Frost<repairable::Delta>)>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let Some(keys) = self.keygen.keys.clone() else {
            return Delivery::Ignored;
        };
        let member = request.member;
        if member == self.me || !request.helpers.contains(&self.me) {
            return Delivery::Ignored;
        }
        let digest = request.digest();
        let known = self.repair.helping.get(&member);
        if known.is_some_and(|h| h.digest != digest && h.request.issued_at >= request.issued_at) {
            return Delivery::Ignored;
        }
        if known.is_none_or(|h| h.digest != digest) {
            let window = core::time::Duration::from_millis(
                self.net
                    .schedule()
                    .dkg_phase_timeout_ms
                    .saturating_mul(REQUEST_WINDOW_PHASES),
            );
            if request.issued_at.saturating_add(window) < now
                || now.saturating_add(window) < request.issued_at
            {
                return Delivery::Ignored;
            }
            match request.check(&self.net) {
                Ok(()) => {}
                Err(RequestFault::Shape) => {
                    return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
                }
                Err(RequestFault::Signature) => {
                    return Delivery::Rejected(MessageError::BadSignature);
                }
            }
            self.start_helping(request, digest, &keys, rng);
        }
        let Some(state) = self.repair.helping.get_mut(&member) else {
            return Delivery::Ignored;
        };
        if let Some((helper, public_package, delta)) = delta {
            // Every helper must repair from the same public key package (a helper that
            // refreshed while another did not would make a share that fails the check).
            if public_package != keys.public_digest() {
                self.repair.helping.remove(&member);
                return Delivery::Ignored;
            }
            if state.answered || state.deltas.contains_key(&helper) {
                return Delivery::Duplicate;
            }
            state.deltas.insert(helper, delta);
        }
        self.answer_if_complete(member, &keys);
        Delivery::Accepted
    }

    /// Step 2: split this helper's weighted share into t deltas, one per helper.
    fn start_helping(
        &mut self,
        request: RepairRequest,
        digest: Digest,
        keys: &Arc<KeyMaterial>,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        let member = request.member;
        let ids: Vec<_> = request.helpers.iter().map(|h| h.identifier()).collect();
        let Ok(deltas) = repairable::repair_share_part1::<frost_ed25519::Ed25519Sha512, _>(
            &ids,
            &keys.key_package,
            rng,
            member.identifier(),
        ) else {
            return;
        };
        let mut state = Helping {
            request: request.clone(),
            digest,
            deltas: BTreeMap::new(),
            answered: false,
        };
        for h in &request.helpers {
            let Some(delta) = deltas.get(&h.identifier()) else {
                continue;
            };
            let delta = Frost::new(*delta);
            if *h == self.me {
                state.deltas.insert(*h, delta);
            } else {
                self.send(
                    *h,
                    Message::Repair(RepairMessage::Delta {
                        request: request.clone(),
                        public_package: keys.public_digest(),
                        delta,
                    }),
                );
            }
        }
        self.repair.helping.insert(member, state);
        self.event(Event::RepairHelped { member });
    }

    /// Step 3: with every helper's delta, send the member its sigma.
    fn answer_if_complete(&mut self, member: MemberIndex, keys: &Arc<KeyMaterial>) {
        let Some(state) = self.repair.helping.get_mut(&member) else {
            return;
        };
        if state.answered || state.deltas.len() != state.request.helpers.len() {
            return;
        }
        let deltas: Vec<repairable::Delta> = state.deltas.values().map(|d| **d).collect();
        let sigma = repairable::repair_share_part2(&deltas);
        state.answered = true;
        state.deltas.clear();
        let request = state.digest;
        self.send(
            member,
            Message::Repair(RepairMessage::Sigma {
                request,
                sigma: Frost::new(sigma),
                public: Frost::new(keys.public.clone()),
            }),
        );
    }

    /// Step 4, at the member: collect the t sigmas, rebuild and check the share.
    fn on_sigma(
        &mut self,
        from: MemberIndex,
        request: Digest,
        sigma: Frost<repairable::Sigma>,
        public: Frost<frost_ed25519::keys::PublicKeyPackage>,
    ) -> Delivery {
        let Some(asking) = self.repair.asking.as_mut() else {
            return Delivery::Ignored;
        };
        if asking.digest != request || !asking.request.helpers.contains(&from) {
            return Delivery::Ignored;
        }
        if asking.sigmas.contains_key(&from) {
            return Delivery::Duplicate;
        }
        asking.sigmas.insert(from, (sigma, public));
        if asking.sigmas.len() < asking.request.helpers.len() {
            return Delivery::Accepted;
        }
        let Some(asking) = self.repair.asking.take() else {
            return Delivery::Accepted;
        };
        match self.rebuild(&asking) {
            Ok(key) => {
                let group_key = key.group_key();
                self.outputs
                    .push_back(Output::StoreKey(Box::new((*key).clone())));
                self.keygen.keys = Some(key);
                self.keygen.unconfirmed = None;
                self.event(Event::Repaired { group_key });
            }
            Err(reason) => self.event(Event::RepairFailed { reason }),
        }
        Delivery::Accepted
    }

    fn rebuild(&self, asking: &Asking) -> Result<Arc<KeyMaterial>, &'static str> {
        let mut packages = asking.sigmas.values().map(|(_, p)| p);
        let public = packages.next().ok_or("no answers")?;
        if packages.any(|p| p != public) {
            return Err("helpers sent different public key packages");
        }
        if !repair::fits(&self.net, public) {
            return Err("the public key package does not fit the roster");
        }
        let sigmas: Vec<repairable::Sigma> = asking.sigmas.values().map(|(s, _)| **s).collect();
        let key_package = repairable::repair_share_part3(&sigmas, self.me.identifier(), public)
            .map_err(|_| "frost could not rebuild the share")?;
        // frost does not check the result: the share must be this member's in the package.
        if public.verifying_shares().get(&self.me.identifier())
            != Some(key_package.verifying_share())
        {
            return Err("the repaired share is not this member's (a helper sent a wrong sigma)");
        }
        let key = KeyMaterial {
            key_package,
            public: (**public).clone(),
        };
        if self
            .repair
            .known_group_key
            .is_some_and(|g| g != key.group_key())
        {
            return Err("the repaired share is for another group key");
        }
        Ok(Arc::new(key))
    }
}
