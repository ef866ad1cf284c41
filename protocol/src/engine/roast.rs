//! ROAST signing sessions, the coordinator's side of `docs/protocol.md` §15: start a FROST
//! session whenever t accepting signers are ready, collect shares, name and exclude cheaters
//! (`aggregate_custom` with every cheater), and add a spare session when one stalls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frost_ed25519 as frost;

use crate::crypto::{Digest, Frost};
use crate::message::{Accept, Message, Proposal, Share, SignRequest};
use crate::roster::MemberIndex;
use crate::statement::{CoSigned, Unit};
use crate::time::Instant;

use super::{Delivery, Engine, Event, Offence, Output};

/// One FROST signing session of a proposal.
pub(super) struct Session {
    pub(super) package: frost::SigningPackage,
    pub(super) started: Instant,
    pub(super) signers: BTreeSet<MemberIndex>,
    pub(super) shares: BTreeMap<frost::Identifier, frost::round2::SignatureShare>,
}

/// This member's coordinator state for one unit and attempt.
pub(super) struct Coordinator {
    pub(super) attempt: u32,
    pub(super) revision: u16,
    /// The current proposal, its digest and its signing message.
    pub(super) proposal: Option<(Arc<Proposal>, Digest, Arc<Vec<u8>>)>,
    /// Signers that accepted the current proposal, each with one unused commitment.
    pub(super) ready: BTreeMap<MemberIndex, frost::round1::SigningCommitments>,
    /// Signers in an open session.
    pub(super) busy: BTreeSet<MemberIndex>,
    /// Signers named as cheaters in this attempt.
    pub(super) excluded: BTreeSet<MemberIndex>,
    pub(super) sessions: BTreeMap<u32, Session>,
    pub(super) next_session: u32,
    /// Members whose `Missing` reply to the current revision was handled.
    pub(super) missing_from: BTreeSet<MemberIndex>,
    /// Digests fetched from members that reported them missing, not yet received.
    pub(super) wanted: BTreeSet<Digest>,
}

impl Coordinator {
    pub(super) fn new(attempt: u32) -> Self {
        Self {
            attempt,
            revision: 0,
            proposal: None,
            ready: BTreeMap::new(),
            busy: BTreeSet::new(),
            excluded: BTreeSet::new(),
            sessions: BTreeMap::new(),
            next_session: 0,
            missing_from: BTreeSet::new(),
            wanted: BTreeSet::new(),
        }
    }

    /// ROAST starts a session whenever t signers are ready. We add a spare session next to open
    /// ones only once the oldest open session has been open for `patience`: a healthy network
    /// signs once, and from then on every ready set starts a session at once, as in ROAST. Each
    /// open session holds its signers (a busy member's accepts are ignored), so f withholders
    /// stall at most f sessions and session f + 1 completes (the bound a throttle measured from
    /// the latest start would break: withholders joining each spare in turn stall them all).
    pub(super) fn may_start(&self, now: Instant, patience: core::time::Duration) -> bool {
        self.oldest_open()
            .is_none_or(|s| now >= s.saturating_add(patience))
    }

    pub(super) fn oldest_open(&self) -> Option<Instant> {
        self.sessions.values().map(|s| s.started).min()
    }

    /// When a spare session may start, if one is wanted.
    pub(super) fn spare_session_due(
        &self,
        t: usize,
        patience: core::time::Duration,
    ) -> Option<Instant> {
        if self.proposal.is_none() || self.sessions.is_empty() || self.ready.len() < t {
            return None;
        }
        self.oldest_open().map(|s| s.saturating_add(patience))
    }
}

impl Engine {
    /// This member's coordinator state for `unit`, if it coordinates the current attempt.
    pub(super) fn coordinator_mut(&mut self, unit: &Unit) -> Option<&mut Coordinator> {
        self.units.get_mut(unit)?.coordinator.as_mut()
    }

    pub(super) fn session_patience(&self) -> core::time::Duration {
        core::time::Duration::from_millis(self.net.schedule().attempt_timeout_ms / 4)
    }

    pub(super) fn on_accept(
        &mut self,
        now: Instant,
        from: MemberIndex,
        accept: Accept,
    ) -> Delivery {
        let unit = accept.id.unit;
        let t = self.net.t();
        let Some(coord) = self.coordinator_mut(&unit) else {
            return Delivery::Ignored;
        };
        let Some((proposal, digest, _)) = &coord.proposal else {
            return Delivery::Ignored;
        };
        if proposal.id != accept.id || *digest != accept.proposal {
            return Delivery::Ignored;
        }
        if coord.excluded.contains(&from) || coord.busy.contains(&from) {
            return Delivery::Ignored;
        }
        coord.ready.insert(from, accept.commitments.into_inner());
        if coord.ready.len() >= t {
            self.start_sessions(unit, now);
        }
        Delivery::Accepted
    }

    /// ROAST: whenever t signers are ready (each with one unused commitment), start a session.
    pub(super) fn start_sessions(&mut self, unit: Unit, now: Instant) {
        let t = self.net.t();
        let patience = self.session_patience();
        let mut requests = Vec::new();
        let mut started = Vec::new();
        {
            let Some(coord) = self.coordinator_mut(&unit) else {
                return;
            };
            let Some((proposal, _, message)) = coord.proposal.clone() else {
                return;
            };
            while coord.ready.len() >= t && coord.may_start(now, patience) {
                let signers: Vec<MemberIndex> = coord.ready.keys().take(t).copied().collect();
                let mut commitments = BTreeMap::new();
                for s in &signers {
                    let c = coord.ready.remove(s).expect("taken from ready");
                    commitments.insert(s.identifier(), c);
                    coord.busy.insert(*s);
                }
                // Serialized once here; every request shares the bytes.
                let package = Frost::new(frost::SigningPackage::new(commitments, &message));
                let session = coord.next_session;
                coord.next_session += 1;
                for s in &signers {
                    requests.push((
                        *s,
                        SignRequest {
                            id: proposal.id,
                            session,
                            package: package.clone(),
                        },
                    ));
                }
                coord.sessions.insert(
                    session,
                    Session {
                        package: package.into_inner(),
                        started: now,
                        signers: signers.iter().copied().collect(),
                        shares: BTreeMap::new(),
                    },
                );
                started.push(Event::SessionStarted {
                    id: proposal.id,
                    session,
                    signers,
                });
            }
        }
        for e in started {
            self.event(e);
        }
        for (to, req) in requests {
            self.send(to, Message::SignRequest(req));
        }
    }

    pub(super) fn on_share(&mut self, now: Instant, from: MemberIndex, share: Share) -> Delivery {
        let unit = share.id.unit;
        let Some(keys) = self.keygen.keys.clone() else {
            return Delivery::Ignored;
        };
        let Some(coord) = self.coordinator_mut(&unit) else {
            return Delivery::Ignored;
        };
        let Some((proposal, _, _)) = &coord.proposal else {
            return Delivery::Ignored;
        };
        if proposal.id != share.id {
            return Delivery::Ignored;
        }
        let proposal = proposal.clone();
        let Some(session) = coord.sessions.get_mut(&share.session) else {
            return Delivery::Ignored;
        };
        // Blame follows the authenticated connection: the share is `from`'s, whatever it claims.
        if !session.signers.contains(&from) || session.shares.contains_key(&from.identifier()) {
            return Delivery::Ignored;
        }
        session
            .shares
            .insert(from.identifier(), share.share.into_inner());
        coord.busy.remove(&from);
        if !coord.excluded.contains(&from) {
            coord.ready.insert(from, share.next.into_inner());
        }
        if session.shares.len() < session.signers.len() {
            // ROAST: a signer that answered is ready again with its fresh commitment; whenever t
            // are ready, start another session, so one that stalls on a silent signer does not
            // hold up the unit.
            if coord.ready.len() >= self.net.t() {
                self.start_sessions(unit, now);
            }
            return Delivery::Accepted;
        }
        let session = coord.sessions.remove(&share.session).expect("present");
        let detect = |public: &frost::keys::PublicKeyPackage| {
            frost::aggregate_custom(
                &session.package,
                &session.shares,
                public,
                frost::CheaterDetection::AllCheaters,
            )
        };
        let mut outcome = detect(&keys.public);
        // Around a share refresh (§22.5) a signer may still hold the other epoch's share: all
        // of a session's shares from that epoch still make a valid group signature, and a
        // share valid under the other epoch's package is no offence.
        let mut honest_elsewhere: Option<Vec<frost::Identifier>> = None;
        if let Err(frost::Error::InvalidSignatureShare { .. }) = &outcome {
            for other in self.other_epoch_packages() {
                match detect(&other) {
                    Ok(signature) => {
                        outcome = Ok(signature);
                        break;
                    }
                    Err(frost::Error::InvalidSignatureShare { culprits }) => {
                        let valid = session
                            .shares
                            .keys()
                            .filter(|id| !culprits.contains(id))
                            .copied();
                        honest_elsewhere.get_or_insert_with(Vec::new).extend(valid);
                    }
                    Err(_) => {}
                }
            }
        }
        match outcome {
            Ok(signature) => {
                let bytes = signature
                    .serialize()
                    .expect("an aggregated signature serializes");
                let signature = crate::crypto::Signature(
                    bytes.try_into().expect("an Ed25519 signature is 64 bytes"),
                );
                let cosigned = Arc::new(CoSigned {
                    unit,
                    statements: proposal.statements.clone(),
                    signature,
                });
                // Persisted (inside `accept_cosigned`) before it is broadcast.
                if self.accept_cosigned(cosigned.clone()) {
                    self.outputs
                        .push_back(Output::Broadcast(Message::CoSigned(cosigned)));
                }
            }
            Err(frost::Error::InvalidSignatureShare { culprits }) => {
                let n = self.net.n();
                let elsewhere = honest_elsewhere.unwrap_or_default();
                let mut blamed = Vec::new();
                if let Some(coord) = self.coordinator_mut(&unit) {
                    for id in &culprits {
                        let Some(c) = MemberIndex::from_identifier(id, n) else {
                            continue;
                        };
                        // A signer of the other epoch sits out this attempt, unblamed.
                        coord.ready.remove(&c);
                        if !elsewhere.contains(id) {
                            coord.excluded.insert(c);
                            blamed.push(c);
                        }
                    }
                }
                for c in blamed {
                    self.culprit(c, Offence::InvalidShare);
                }
                self.start_sessions(unit, now);
            }
            Err(_) => self.start_sessions(unit, now),
        }
        Delivery::Accepted
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;
    use crate::engine::test_support::Small;

    #[test]
    fn a_spare_session_waits_for_the_oldest_open_one_to_be_patient() {
        let mut s = Small::new(4, 1);
        let patience = Duration::from_millis(100);
        let at = Instant::from_millis;
        let mut c = Coordinator::new(0);
        assert!(
            c.may_start(at(0), patience),
            "no session open: start at once"
        );
        assert_eq!(
            c.spare_session_due(3, patience),
            None,
            "nothing proposed yet"
        );
        // Three ready signers and one open session started at t = 1 000.
        let share = *s.keys[0].key_package.signing_share();
        for m in 0..3u16 {
            let (_, commitments) = frost::round1::commit(&share, &mut s.rng);
            c.ready.insert(MemberIndex(m), commitments);
        }
        let message = Arc::new(b"m".to_vec());
        let package = frost::SigningPackage::new(BTreeMap::new(), &message);
        c.sessions.insert(
            0,
            Session {
                package,
                started: at(1_000),
                signers: BTreeSet::new(),
                shares: BTreeMap::new(),
            },
        );
        assert_eq!(
            c.spare_session_due(3, patience),
            None,
            "no proposal: nothing to sign"
        );
        let proposal = Arc::new(Proposal {
            id: crate::message::ProposalId {
                unit: crate::statement::Unit::Period(crate::roster::Period(0)),
                attempt: 0,
                revision: 0,
            },
            statements: vec![],
            observations: vec![],
        });
        let digest = proposal.digest();
        c.proposal = Some((proposal, digest, message));
        assert_eq!(c.spare_session_due(3, patience), Some(at(1_100)));
        assert_eq!(c.spare_session_due(4, patience), None, "fewer than t ready");
        assert!(!c.may_start(at(1_099), patience));
        assert!(c.may_start(at(1_100), patience));
    }
}
