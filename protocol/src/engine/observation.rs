//! Observations (`docs/protocol.md` §10): closing a period with this member's signed list of
//! what it admitted before the close, receiving and storing others', checking them under the
//! batchable signature rule, and counting who vouches for which item in which place.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::crypto::Digest;
use crate::evidence::Place;
use crate::message::{Message, Observation, SignedObservation, SlotItems};
use crate::roster::{LabIndex, MemberIndex, Period};
use crate::statement::Unit;
use crate::time::Instant;

use super::{Delivery, Engine, Event, MessageError, Offence, Output, Record};

/// A stored observation.
pub(super) struct ObservationEntry {
    pub(super) signed: Arc<SignedObservation>,
    /// Its signature passed the batchable rule here (author-sent observations are checked
    /// lazily, relayed ones before they are stored).
    pub(super) verified: bool,
    /// Persisted as a [`Record::Vouch`] (or as this member's own observation).
    pub(super) persisted: bool,
}

/// What this member holds about one period's observations.
#[derive(Default)]
pub(super) struct PeriodState {
    /// At most two per member (two valid ones prove equivocation).
    pub(super) observations: BTreeMap<MemberIndex, Vec<ObservationEntry>>,
    /// This member closed the period (signed its own observation).
    pub(super) closed: bool,
}

/// The observations of the periods this member keeps.
#[derive(Default)]
pub(super) struct ObservationBook {
    pub(super) periods: BTreeMap<Period, PeriodState>,
}

/// `(lab, place, digest)` → the members that list it there.
pub(super) type Listings = BTreeMap<(LabIndex, Place, Digest), BTreeSet<MemberIndex>>;

/// How many members list `item` at `place` in `lab`'s slot.
pub(super) fn vouch_count(
    listings: &Listings,
    lab: LabIndex,
    place: Place,
    item: &Digest,
) -> usize {
    listings.get(&(lab, place, *item)).map_or(0, BTreeSet::len)
}

impl Engine {
    pub(super) fn is_closed(&self, period: Period) -> bool {
        self.book.periods.get(&period).is_some_and(|p| p.closed)
    }

    /// Closes `period`: signs and broadcasts the observation of what was admitted before it.
    pub(super) fn observe(&mut self, period: Period) {
        let state = self.book.periods.entry(period).or_default();
        if state.closed {
            return;
        }
        state.closed = true;
        let mut slots = Vec::new();
        for lab in self.net.labs() {
            let mut attestations = Vec::new();
            let mut reports = Vec::new();
            for d in self.ledger.slots.get(&(period, lab)).into_iter().flatten() {
                let Some(e) = self.ledger.items.get(d).filter(|e| e.admitted_at.is_some()) else {
                    continue;
                };
                match e.place {
                    Place::Attestation => attestations.push(*d),
                    Place::Report(inspector) => reports.push((inspector, *d)),
                }
            }
            // `slots` iterates digests in order; reports go by inspector (one each, admit()).
            reports.sort();
            if !attestations.is_empty() || !reports.is_empty() {
                slots.push(SlotItems {
                    lab,
                    attestations,
                    reports,
                });
            }
        }
        let observation = Observation {
            member: self.me,
            period,
            slots,
        };
        debug_assert_eq!(observation.check(&self.net), Ok(()));
        let signature = self
            .identity
            .sign(&observation.signing_bytes(self.net.id()));
        let signed = Arc::new(SignedObservation {
            observation,
            signature,
        });
        let count = signed.observation.len();
        self.insert_observation(signed.clone(), true, true);
        self.outputs
            .push_back(Output::Persist(Record::Observation(signed.clone())));
        self.outputs
            .push_back(Output::Broadcast(Message::Observation(signed)));
        self.event(Event::Observed {
            period,
            items: count,
        });
        for unit in Unit::all_for(&self.net, period) {
            if !self.decided.contains_key(&unit) {
                self.units.entry(unit).or_default();
            }
        }
        self.start_early(period);
    }

    /// Stores an observation; at most two different ones per member and period are kept (two
    /// are proof of equivocation once both verify). Two copies of one observation (the same
    /// content) are one entry: a verified copy replaces an unverified one. Returns whether it
    /// was new.
    pub(super) fn insert_observation(
        &mut self,
        signed: Arc<SignedObservation>,
        verified: bool,
        persisted: bool,
    ) -> bool {
        let period = signed.observation.period;
        let member = signed.observation.member;
        let entries = self
            .book
            .periods
            .entry(period)
            .or_default()
            .observations
            .entry(member)
            .or_default();
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.signed.observation == signed.observation)
        {
            e.persisted |= persisted;
            if verified && !e.verified {
                e.signed = signed;
                e.verified = true;
            }
            return false;
        }
        if entries.len() >= 2 {
            return false;
        }
        entries.push(ObservationEntry {
            signed,
            verified,
            persisted,
        });
        true
    }

    /// Stores an observation relayed by others (in a proposal or reply), already verified
    /// here; if another one is held for that member and period and it verifies too, the member
    /// equivocated.
    pub(super) fn note_observation(&mut self, signed: Arc<SignedObservation>) {
        let member = signed.observation.member;
        let period = signed.observation.period;
        let others: Vec<Arc<SignedObservation>> = self
            .book
            .periods
            .get(&period)
            .and_then(|p| p.observations.get(&member))
            .map(|v| {
                v.iter()
                    .filter(|e| e.signed.observation != signed.observation)
                    .map(|e| e.signed.clone())
                    .collect()
            })
            .unwrap_or_default();
        let fresh = self.insert_observation(signed, true, false);
        if fresh && others.iter().any(|o| self.verify_observation(o)) {
            self.culprit(member, Offence::EquivocatingObservation);
        }
    }

    /// A period this member still keeps state for, so stored observations stay bounded by
    /// (retained periods) × n × 2.
    pub(super) fn observation_period_kept(&self, period: Period) -> bool {
        let oldest = self
            .next_close
            .0
            .saturating_sub(self.config.retain_periods.saturating_add(1));
        period.0 <= self.next_close.0.saturating_add(2) && period.0 >= oldest
    }

    pub(super) fn verify_observation(&self, signed: &SignedObservation) -> bool {
        self.net
            .member_key(signed.observation.member)
            .is_some_and(|k| {
                self.config
                    .verifier
                    .member(
                        k,
                        &signed.observation.signing_bytes(self.net.id()),
                        &signed.signature,
                    )
                    .is_ok()
            })
    }

    pub(super) fn on_observation(
        &mut self,
        now: Instant,
        from: MemberIndex,
        signed: Arc<SignedObservation>,
    ) -> Delivery {
        let _ = now;
        if signed.observation.member != from {
            return Delivery::Rejected(MessageError::WrongSender);
        }
        if let Err(fault) = signed.observation.check(&self.net) {
            return Delivery::Rejected(fault.into());
        }
        let period = signed.observation.period;
        if !self.observation_period_kept(period) {
            return Delivery::Ignored;
        }
        let existing: Vec<Arc<SignedObservation>> = self
            .book
            .periods
            .get(&period)
            .and_then(|p| p.observations.get(&from))
            .map(|v| v.iter().map(|e| e.signed.clone()).collect())
            .unwrap_or_default();
        if existing.iter().any(|e| e.observation == signed.observation) {
            return Delivery::Duplicate;
        }
        // Observations from their author are verified lazily (when they are used), except when
        // a second one from the same member arrives: then both are checked, and two valid ones
        // convict.
        let mut verified = false;
        if let Some(first) = existing.first() {
            if !self.verify_observation(&signed) {
                return Delivery::Rejected(MessageError::BadSignature);
            }
            verified = true;
            if self.verify_observation(first) {
                self.culprit(from, Offence::EquivocatingObservation);
            }
        }
        if !self.insert_observation(signed, verified, false) {
            return Delivery::Ignored;
        }
        self.start_early(period);
        let units: Vec<Unit> = self
            .units
            .iter()
            .filter(|(u, s)| {
                u.period() == period && s.coordinator.as_ref().is_some_and(|c| c.proposal.is_none())
            })
            .map(|(u, _)| *u)
            .collect();
        for unit in units {
            self.try_propose(unit);
        }
        Delivery::Accepted
    }

    /// Verifies every unverified stored observation of `period` that `filter` selects, dropping
    /// bad ones and naming their authors: unverified observations come only from their authors
    /// (relayed ones are verified before they are stored). Returns whether any was dropped.
    pub(super) fn verify_stored(
        &mut self,
        period: Period,
        filter: impl Fn(&SignedObservation) -> bool,
    ) -> bool {
        let Some(state) = self.book.periods.get(&period) else {
            return false;
        };
        let candidates: Vec<Arc<SignedObservation>> = state
            .observations
            .values()
            .flatten()
            .filter(|e| !e.verified && filter(&e.signed))
            .map(|e| e.signed.clone())
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let bad: BTreeSet<usize> = self.batch_check(&candidates).into_iter().collect();
        let state = self.book.periods.get_mut(&period).expect("checked above");
        for (i, signed) in candidates.iter().enumerate() {
            let member = signed.observation.member;
            if let Some(entries) = state.observations.get_mut(&member) {
                if bad.contains(&i) {
                    entries.retain(|e| !Arc::ptr_eq(&e.signed, signed));
                } else if let Some(e) = entries.iter_mut().find(|e| Arc::ptr_eq(&e.signed, signed))
                {
                    e.verified = true;
                }
            }
        }
        let dropped: Vec<MemberIndex> = bad
            .iter()
            .map(|i| candidates[*i].observation.member)
            .collect();
        for member in &dropped {
            self.culprit(*member, Offence::BadObservation);
        }
        !dropped.is_empty()
    }

    /// Who lists which item in which place, over `observations`, for the slots of `labs`
    /// (sorted): `(lab, place, digest)` → members. A digest listed in another place than its
    /// body's vouches for nothing. Built once per use, in time linear in what is listed.
    pub(super) fn listings<'a>(
        labs: &[LabIndex],
        observations: impl IntoIterator<Item = &'a SignedObservation>,
    ) -> Listings {
        let mut out = Listings::new();
        for o in observations {
            let member = o.observation.member;
            for slot in &o.observation.slots {
                if labs.binary_search(&slot.lab).is_err() {
                    continue;
                }
                for d in &slot.attestations {
                    out.entry((slot.lab, Place::Attestation, *d))
                        .or_default()
                        .insert(member);
                }
                for (inspector, d) in &slot.reports {
                    out.entry((slot.lab, Place::Report(*inspector), *d))
                        .or_default()
                        .insert(member);
                }
            }
        }
        out
    }

    /// The stored observations of `period`.
    pub(super) fn stored_observations(
        &self,
        period: Period,
    ) -> impl Iterator<Item = &SignedObservation> {
        self.book
            .periods
            .get(&period)
            .into_iter()
            .flat_map(|p| p.observations.values().flatten())
            .map(|e| &*e.signed)
    }

    /// The distinct members that mention `item` anywhere among the stored observations of
    /// `period` (before its body, and so its place, is known).
    pub(super) fn mentioned_by(&self, period: Period, item: &Digest) -> usize {
        self.stored_observations(period)
            .filter(|o| o.observation.mentions(item))
            .map(|o| o.observation.member)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Verifies observations under the batchable rule, as one batch; returns the indexes of
    /// those that fail (an author outside the roster fails).
    pub(super) fn batch_check(&self, observations: &[Arc<SignedObservation>]) -> Vec<usize> {
        let messages: Vec<Vec<u8>> = observations
            .iter()
            .map(|o| o.observation.signing_bytes(self.net.id()))
            .collect();
        let mut items = Vec::with_capacity(observations.len());
        let mut index = Vec::with_capacity(observations.len());
        let mut bad = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            match self.net.member_key(o.observation.member) {
                Some(k) => {
                    items.push((k, messages[i].as_slice(), &o.signature));
                    index.push(i);
                }
                None => bad.push(i),
            }
        }
        bad.extend(
            self.config
                .verifier
                .many(&items)
                .into_iter()
                .map(|j| index[j]),
        );
        bad.sort_unstable();
        bad
    }

    /// Whether this member holds `signed` (same content and signature) already verified.
    pub(super) fn holds_verified(&self, signed: &SignedObservation) -> bool {
        self.book
            .periods
            .get(&signed.observation.period)
            .and_then(|p| p.observations.get(&signed.observation.member))
            .is_some_and(|v| v.iter().any(|e| e.verified && *e.signed == *signed))
    }

    /// Checks relayed observations for `period`: the period, the syntax rules, and the
    /// signatures of those not already held verified (one batch). Returns the indexes of the
    /// bad ones.
    pub(super) fn check_relayed(
        &self,
        period: Period,
        observations: &[Arc<SignedObservation>],
    ) -> Vec<usize> {
        let mut bad = Vec::new();
        let mut to_verify = Vec::new();
        let mut index = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            if o.observation.period != period || o.observation.check(&self.net).is_err() {
                bad.push(i);
            } else if !self.holds_verified(o) {
                to_verify.push(o.clone());
                index.push(i);
            }
        }
        bad.extend(self.batch_check(&to_verify).into_iter().map(|j| index[j]));
        bad.sort_unstable();
        bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_vouched_only_where_it_is_listed() {
        let d = Digest([7; 32]);
        let listing =
            |member: u16, attestations: Vec<Digest>, reports: Vec<(MemberIndex, Digest)>| {
                SignedObservation {
                    observation: Observation {
                        member: MemberIndex(member),
                        period: Period(0),
                        slots: vec![SlotItems {
                            lab: LabIndex(1),
                            attestations,
                            reports,
                        }],
                    },
                    signature: crate::crypto::Signature([0; 64]),
                }
            };
        let observations = [
            listing(0, vec![d], vec![]),
            listing(1, vec![d], vec![]),
            // Listed as member 3's report: vouches for nothing as an attestation.
            listing(2, vec![], vec![(MemberIndex(3), d)]),
            listing(1, vec![d], vec![]),
        ];
        let l = Engine::listings(&[LabIndex(1)], observations.iter());
        assert_eq!(vouch_count(&l, LabIndex(1), Place::Attestation, &d), 2);
        assert_eq!(
            vouch_count(&l, LabIndex(1), Place::Report(MemberIndex(3)), &d),
            1
        );
        assert_eq!(vouch_count(&l, LabIndex(0), Place::Attestation, &d), 0);
        // Labs outside the unit are not counted at all.
        let none = Engine::listings(&[LabIndex(0)], observations.iter());
        assert!(none.is_empty());
    }
}
