//! Decided units and catch-up (`docs/protocol.md` §17–18): verifying co-signed units, keeping
//! the largest per unit (invariant 3's order; a smaller replay never replaces it), answering
//! sync requests, and pruning what left the retention window (with the record log's compaction).

use std::sync::Arc;

use crate::message::{Message, SignedObservation, SyncRequest};
use crate::roster::{MemberIndex, Period};
use crate::statement::{CoSigned, Unit};

use super::{Delivery, Engine, Event, MAX_SYNC_UNITS, Malformed, MessageError, Output, Record};

impl Engine {
    pub(super) fn on_cosigned(&mut self, cosigned: Arc<CoSigned>) -> Delivery {
        let Some(keys) = &self.keygen.keys else {
            return Delivery::Ignored;
        };
        if !cosigned.unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        // Below the floor this member no longer holds what it decided, so it could not tell a
        // replayed smaller statement from news: ignore it (invariant 3's order is kept only by
        // comparing with what is held).
        if cosigned.unit.period() < self.decided_floor() {
            return Delivery::Ignored;
        }
        if let Some(existing) = self.decided.get(&cosigned.unit)
            && existing.statements == cosigned.statements
        {
            return Delivery::Duplicate;
        }
        let labs = cosigned.unit.labs(&self.net);
        let shaped = cosigned.statements.len() == labs.len()
            && cosigned.statements.iter().zip(&labs).all(|(s, l)| {
                s.network_id == *self.net.id()
                    && s.policy_hash == *self.net.policy_hash()
                    && s.slot.period == cosigned.unit.period()
                    && s.slot.lab == self.net.lab_id(*l)
            });
        if !shaped {
            return Delivery::Rejected(MessageError::Malformed(Malformed::CoSignedShape));
        }
        if cosigned.verify(self.net.id(), &keys.group_key()).is_err() {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        if self.accept_cosigned(cosigned) {
            Delivery::Accepted
        } else {
            Delivery::Duplicate
        }
    }

    /// Records a verified co-signed unit; returns whether it is new and at least as large as
    /// what was held.
    pub(super) fn accept_cosigned(&mut self, cosigned: Arc<CoSigned>) -> bool {
        if !self.record_decided(cosigned.clone()) {
            let conflicting = self.decided.get(&cosigned.unit).is_some_and(|held| {
                cosigned
                    .statements
                    .iter()
                    .zip(&held.statements)
                    .any(|(a, b)| !a.includes(b) && !b.includes(a))
            });
            if conflicting {
                // Only possible with more than f faulty members: say so loudly.
                self.event(Event::Conflict(cosigned));
            }
            return false;
        }
        self.outputs
            .push_back(Output::Persist(Record::CoSigned(cosigned.clone())));
        self.event(Event::Decided(cosigned.clone()));
        if let Some(state) = self.units.get_mut(&cosigned.unit) {
            state.signer.clear();
            state.coordinator = None;
            state.pending = None;
        }
        true
    }

    pub(super) fn record_decided(&mut self, cosigned: Arc<CoSigned>) -> bool {
        match self.decided.get(&cosigned.unit) {
            Some(existing) if existing.statements == cosigned.statements => false,
            Some(existing) => {
                // Keep the largest (invariant 3 makes co-signed statements a chain).
                let larger = cosigned
                    .statements
                    .iter()
                    .zip(&existing.statements)
                    .all(|(new, old)| new.includes(old));
                if larger {
                    self.decided.insert(cosigned.unit, cosigned);
                }
                larger
            }
            None => {
                self.decided.insert(cosigned.unit, cosigned);
                true
            }
        }
    }

    pub(super) fn on_sync_request(&mut self, from: MemberIndex, req: &SyncRequest) -> Delivery {
        let units: Vec<Arc<CoSigned>> = self
            .decided
            .iter()
            .filter(|(u, _)| u.period() >= req.from)
            .take(MAX_SYNC_UNITS)
            .map(|(_, c)| c.clone())
            .collect();
        for c in units {
            self.send(from, Message::CoSigned(c));
        }
        let own: Vec<Arc<SignedObservation>> = self
            .book
            .periods
            .range(req.from..)
            .filter_map(|(_, p)| {
                p.observations
                    .get(&self.me)
                    .and_then(|v| v.first())
                    .map(|e| e.signed.clone())
            })
            .take(MAX_SYNC_UNITS)
            .collect();
        for o in own {
            self.send(from, Message::Observation(o));
        }
        if req.key_unconfirmed
            && let Some(confirmations) = self.keygen.confirmations.clone()
        {
            for c in confirmations.iter() {
                self.send(from, Message::Dkg(c.clone()));
            }
        }
        if req.key_unconfirmed {
            for c in self.refresh_confirmations() {
                self.send(from, Message::Refresh(c));
            }
        }
        Delivery::Accepted
    }

    /// What to ask a peer for: results from the oldest undecided period on, and the DKG
    /// confirmations if this member holds a key it has not seen confirmed.
    pub(super) fn sync_request(&self) -> SyncRequest {
        let from = self
            .units
            .keys()
            .filter(|u| !self.decided.contains_key(u))
            .map(Unit::period)
            .min()
            .unwrap_or(self.next_close)
            .min(self.next_close);
        SyncRequest {
            from,
            key_unconfirmed: self.keygen.unconfirmed.is_some() || self.refresh.pending.is_some(),
        }
    }

    /// Whether `period` is within the retention window (the last `retain_periods` before the
    /// next close), whose state and evidence are kept even once decided. The harness and the
    /// simulator check that nothing acknowledged in it is lost across a restart.
    pub fn retains(&self, period: Period) -> bool {
        period.0.saturating_add(self.config.retain_periods) >= self.next_close.0
    }

    /// The first period whose state is kept in memory (`next_close − retain_periods`).
    pub(super) fn horizon(&self) -> Option<Period> {
        self.next_close
            .0
            .checked_sub(self.config.retain_periods)
            .map(Period)
    }

    /// The first period whose co-signed units are kept in memory; older ones are in storage
    /// only, and replays of them are ignored.
    pub(super) fn decided_floor(&self) -> Period {
        let keep = self.config.retain_periods;
        Period(
            self.horizon()
                .map_or(0, |h| h.0.saturating_sub(keep.saturating_mul(16))),
        )
    }

    pub(super) fn prune(&mut self) {
        let Some(horizon) = self.horizon() else {
            return;
        };
        let done = |engine: &Self, p: Period| {
            Unit::all_for(&engine.net, p)
                .iter()
                .all(|u| engine.decided.contains_key(u))
        };
        let old: Vec<Period> = self
            .book
            .periods
            .range(..horizon)
            .map(|(p, _)| *p)
            .filter(|p| done(self, *p))
            .collect();
        if old.is_empty() {
            return;
        }
        for p in old {
            self.book.periods.remove(&p);
            let gone: Vec<Unit> = self
                .units
                .keys()
                .filter(|u| u.period() == p)
                .copied()
                .collect();
            for unit in gone {
                self.units.remove(&unit);
                self.rearm(unit);
            }
            self.ledger.drop_period(p);
        }
        let floor = self.decided_floor();
        self.decided.retain(|u, _| u.period() >= floor);
        // Nonces of those periods are long gone (and never survive a restart): their bindings
        // are not needed any more.
        self.protection.retain(|_, (_, p)| *p >= floor);
        // Compact the record log to what is still kept.
        let snapshot = self.snapshot();
        self.outputs.push_back(Output::Snapshot(snapshot));
    }
}
