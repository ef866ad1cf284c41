//! Fetching evidence bodies (`docs/protocol.md` §7, §13): proposals and `Missing` replies carry
//! digests only, and a member asks the sender for the bodies it lacks (`Fetch`), answered in
//! chunks (`Bodies`), at most [`FETCH_ANSWERS_PER_ATTEMPT`] times per member and attempt.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::Digest;
use crate::limits::{BODIES_CHUNK_BYTES, MAX_REVISIONS};
use crate::message::{Bodies, Fetch, Message};
use crate::roster::MemberIndex;

use super::ledger::codec_len;
use super::{Delivery, Engine, Event, Malformed, MessageError, Offence};

/// Bodies answers one member gets per unit and attempt (one per revision, and one spare).
pub(super) const FETCH_ANSWERS_PER_ATTEMPT: u32 = MAX_REVISIONS as u32 + 2;

impl Engine {
    /// A member asks for bodies of a unit's items: answer with those held, in chunks, at most
    /// [`FETCH_ANSWERS_PER_ATTEMPT`] times per member and attempt (a request of 32 bytes per
    /// item could otherwise draw up to 64 KiB per item again and again).
    pub(super) fn on_fetch(&mut self, from: MemberIndex, fetch: &Fetch) -> Delivery {
        let unit = fetch.unit;
        if !unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        let labs = unit.labs(&self.net);
        if fetch.digests.len() > self.net.limits().items_per_unit(labs.len()) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
        }
        let Some(state) = self.units.get_mut(&unit) else {
            return Delivery::Ignored;
        };
        let answers = state.fetch_answers.entry(from).or_default();
        if *answers >= FETCH_ANSWERS_PER_ATTEMPT {
            return Delivery::Ignored;
        }
        *answers += 1;
        let wanted: BTreeSet<&Digest> = fetch.digests.iter().collect();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let mut chunks = Vec::new();
        for d in wanted {
            let Some(e) = self.ledger.items.get(d) else {
                continue;
            };
            if e.period != unit.period() || !labs.contains(&e.lab) {
                continue;
            }
            bytes += codec_len(&*e.evidence);
            chunk.push(e.evidence.clone());
            if bytes >= BODIES_CHUNK_BYTES {
                chunks.push(std::mem::take(&mut chunk));
                bytes = 0;
            }
        }
        // Always answer, if only with nothing: the asker learns that this member lacks them.
        if !chunk.is_empty() || chunks.is_empty() {
            chunks.push(chunk);
        }
        for evidence in chunks {
            self.send(from, Message::Bodies(Arc::new(Bodies { unit, evidence })));
        }
        Delivery::Accepted
    }

    /// Bodies this member asked for: of a proposal waiting for them (from its coordinator), or,
    /// as coordinator, of items a member reported missing (from that member). Anything not asked
    /// for, or from another member, is ignored.
    pub(super) fn on_bodies(
        &mut self,
        from: MemberIndex,
        bodies: &Bodies,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let unit = bodies.unit;
        if !unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        let labs = unit.labs(&self.net);
        if bodies.evidence.len() > self.net.limits().items_per_unit(labs.len()) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
        }
        let Some(state) = self.units.get(&unit) else {
            return Delivery::Ignored;
        };
        let pending: BTreeSet<Digest> = state
            .pending
            .as_ref()
            .filter(|p| p.from == from)
            .map(|p| p.missing.clone())
            .unwrap_or_default();
        let coordinating = state.coordinator.as_ref().map(|c| c.wanted.clone());
        let mut used = false;
        let mut learned_wanted = false;
        for ev in &bodies.evidence {
            let d = ev.digest();
            let for_pending = pending.contains(&d);
            let for_coordinator = coordinating.as_ref().is_some_and(|w| w.contains(&d));
            if !for_pending && !for_coordinator {
                continue;
            }
            // An honest member sends only bodies it validated for the unit's slots.
            let lab = match ev.validate_with(&self.net, &self.config.verifier) {
                Ok(lab)
                    if ev.period() == unit.period()
                        && labs.contains(&lab)
                        && codec_len(&**ev) <= crate::evidence::MAX_EVIDENCE_BYTES =>
                {
                    lab
                }
                Ok(_) => {
                    self.culprit(from, Offence::BadEvidence);
                    return Delivery::Rejected(MessageError::Malformed(Malformed::OtherSlot));
                }
                Err(e) => {
                    self.culprit(from, Offence::BadEvidence);
                    return Delivery::Rejected(e.into());
                }
            };
            self.learn_evidence(ev, lab);
            used = true;
            if let Some(state) = self.units.get_mut(&unit) {
                if for_pending && let Some(p) = state.pending.as_mut() {
                    p.missing.remove(&d);
                }
                if for_coordinator && let Some(c) = state.coordinator.as_mut() {
                    c.wanted.remove(&d);
                    learned_wanted = true;
                }
            }
        }
        if !used {
            return Delivery::Ignored;
        }
        let complete = self
            .units
            .get(&unit)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|p| p.missing.is_empty());
        if complete
            && let Some(p) = self.units.get_mut(&unit).and_then(|s| s.pending.take())
            && !self.decided.contains_key(&unit)
        {
            let delivery = self.finish_proposal(p.from, &p.proposal, p.digest, rng);
            if let Delivery::Rejected(reason) = delivery {
                self.event(Event::Refused {
                    from: p.from,
                    reason,
                });
            }
        }
        if learned_wanted {
            self.try_propose(unit);
        }
        Delivery::Accepted
    }
}
