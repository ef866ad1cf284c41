//! The evidence ledger: every item this member holds, by digest and by slot, and the admission
//! rule (`docs/protocol.md` §8) that decides which items enter this member's observation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::crypto::Digest;
use crate::evidence::{Evidence, EvidenceError, Place};
use crate::limits::MAX_ATTESTATIONS_PER_SLOT;
use crate::roster::{LabIndex, Period};
use crate::time::Instant;

use super::{Engine, Event, Output, Record};

/// One held item.
pub(super) struct StoredEvidence {
    pub(super) evidence: Arc<Evidence>,
    pub(super) lab: LabIndex,
    pub(super) period: Period,
    pub(super) place: Place,
    /// When this member admitted it before the close (`None`: learned after the close).
    pub(super) admitted_at: Option<Instant>,
}

/// The items this member holds, by digest and by slot.
#[derive(Default)]
pub(super) struct Ledger {
    pub(super) items: BTreeMap<Digest, StoredEvidence>,
    pub(super) slots: BTreeMap<(Period, LabIndex), BTreeSet<Digest>>,
}

impl Ledger {
    /// Stores an item of `lab`'s slot of its period; the first copy of a digest stays.
    pub(super) fn store(
        &mut self,
        digest: Digest,
        evidence: Arc<Evidence>,
        lab: LabIndex,
        admitted_at: Option<Instant>,
    ) {
        let period = evidence.period();
        self.slots.entry((period, lab)).or_default().insert(digest);
        let place = evidence.place();
        self.items.entry(digest).or_insert(StoredEvidence {
            evidence,
            lab,
            period,
            place,
            admitted_at,
        });
    }

    /// Forgets every item of `period`.
    pub(super) fn drop_period(&mut self, period: Period) {
        let digests: Vec<Digest> = self
            .slots
            .range((period, LabIndex(0))..=(period, LabIndex(u16::MAX)))
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        for d in digests {
            self.items.remove(&d);
        }
        self.slots.retain(|(p, _), _| *p != period);
    }
}

/// The encoded size of `v` (`usize::MAX` if it does not encode).
pub(super) fn codec_len<T: Serialize>(v: &T) -> usize {
    crate::codec::encode(v).map_or(usize::MAX, |b| b.len())
}

impl Engine {
    /// Validates and stores an item received before its slot closed. Returns (digest, is new).
    pub(super) fn admit(
        &mut self,
        now: Instant,
        evidence: Arc<Evidence>,
    ) -> Result<(Digest, bool), EvidenceError> {
        let digest = evidence.digest();
        if self.ledger.items.contains_key(&digest) {
            return Ok((digest, false));
        }
        let schedule = self.net.schedule();
        let period = evidence.period();
        let skew = core::time::Duration::from_millis(schedule.max_clock_skew_ms);
        let close = schedule.close(period);
        if now >= close || self.is_closed(period) {
            return Err(EvidenceError::Closed {
                period,
                closed_at: close,
            });
        }
        let start = schedule.start(period);
        if now.saturating_add(skew) < start {
            return Err(EvidenceError::Future {
                period,
                starts_at: start,
            });
        }
        if evidence.issued_at() > now.saturating_add(skew) {
            return Err(EvidenceError::IssuedInFuture {
                issued_at: evidence.issued_at(),
            });
        }
        if codec_len(&*evidence) > crate::evidence::MAX_EVIDENCE_BYTES {
            return Err(EvidenceError::TooLarge);
        }
        let lab = evidence.validate_with(&self.net, &self.config.verifier)?;
        // The admission caps (docs/protocol.md §8): what a member admits is what its observation
        // lists, and `Observation::check` holds every observation to the same caps.
        let admitted = |d: &Digest| self.ledger.items.get(d).filter(|e| e.admitted_at.is_some());
        let in_slot = |pred: &dyn Fn(&StoredEvidence) -> bool| {
            self.ledger.slots.get(&(period, lab)).map_or(0, |s| {
                s.iter().filter_map(&admitted).filter(|e| pred(e)).count()
            })
        };
        match evidence.place() {
            Place::Attestation => {
                let n = in_slot(&|e| e.place == Place::Attestation);
                if n >= MAX_ATTESTATIONS_PER_SLOT {
                    return Err(EvidenceError::SlotFull(n));
                }
            }
            Place::Report(inspector) => {
                if in_slot(&|e| e.place == Place::Report(inspector)) > 0 {
                    return Err(EvidenceError::InspectorFull(1));
                }
                let cap = self.net.limits().reports_per_inspector;
                let filed = self
                    .ledger
                    .slots
                    .range((period, LabIndex(0))..=(period, LabIndex(u16::MAX)))
                    .flat_map(|(_, s)| s.iter())
                    .filter_map(admitted)
                    .filter(|e| e.place == Place::Report(inspector))
                    .count();
                if filed >= cap {
                    return Err(EvidenceError::InspectorFull(cap));
                }
            }
        }
        self.ledger.store(digest, evidence.clone(), lab, Some(now));
        self.outputs.push_back(Output::Persist(Record::Evidence {
            evidence,
            admitted_at: Some(now),
        }));
        self.event(Event::Admitted {
            digest,
            period,
            lab,
        });
        Ok((digest, true))
    }

    /// Stores an item learned after the close (already validated for a slot of its period).
    pub(super) fn learn_evidence(&mut self, evidence: &Arc<Evidence>, lab: LabIndex) {
        let digest = evidence.digest();
        if !self.ledger.items.contains_key(&digest) {
            self.ledger.store(digest, evidence.clone(), lab, None);
            self.outputs.push_back(Output::Persist(Record::Evidence {
                evidence: evidence.clone(),
                admitted_at: None,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::test_support::Small;
    use crate::fixtures::LabConduct;

    #[test]
    fn the_first_copy_stays_and_a_period_is_dropped_whole() {
        let mut s = Small::new(4, 2);
        let mut ledger = Ledger::default();
        let p0 = s.items(0, Period(0), LabConduct::DoubleSigns);
        let p1 = s.items(1, Period(1), LabConduct::Compliant);
        for e in &p0 {
            ledger.store(e.digest(), Arc::new(e.clone()), LabIndex(0), None);
        }
        let first = p0[0].digest();
        let at = Instant::from_millis(5);
        ledger.store(first, Arc::new(p0[0].clone()), LabIndex(0), Some(at));
        assert_eq!(
            ledger.items[&first].admitted_at, None,
            "the first copy stays"
        );
        for e in &p1 {
            ledger.store(e.digest(), Arc::new(e.clone()), LabIndex(1), Some(at));
        }
        assert_eq!(ledger.slots[&(Period(0), LabIndex(0))].len(), p0.len());
        assert_eq!(ledger.items[&p1[0].digest()].place, Place::Attestation);
        ledger.drop_period(Period(0));
        assert!(p0.iter().all(|e| !ledger.items.contains_key(&e.digest())));
        assert!(p1.iter().all(|e| ledger.items.contains_key(&e.digest())));
        assert_eq!(ledger.slots.len(), 1);
    }

    #[test]
    fn encoded_sizes_are_the_codecs() {
        let mut s = Small::new(4, 1);
        let e = s.items(0, Period(0), LabConduct::Compliant).remove(0);
        let bytes = crate::codec::encode(&e).expect("encodes");
        assert_eq!(codec_len(&e), bytes.len());
    }
}
