//! The proposal rule, the member's side of `docs/protocol.md` §13: which proposals a member
//! accepts (and so may sign), the lock that makes it refuse anything smaller afterwards, and the
//! `Missing` answer that tells a coordinator what it left out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{Digest, Frost};
use crate::evidence::Place;
use crate::limits::MAX_REVISIONS;
use crate::message::{Accept, Fetch, Message, Missing, Proposal, SignedObservation};
use crate::policy;
use crate::roster::MemberIndex;
use crate::time::Instant;

use super::observation::vouch_count;
use super::record::AcceptedRecord;
use super::{Delivery, Engine, Malformed, MessageError, Offence, Output, ProposalFault, Record};

/// A proposal that passed every check that needs no evidence body, waiting for the bodies this
/// member lacks (asked of its coordinator).
pub(super) struct PendingProposal {
    pub(super) proposal: Arc<Proposal>,
    pub(super) digest: Digest,
    pub(super) from: MemberIndex,
    pub(super) missing: BTreeSet<Digest>,
}

/// Why the second part of the rule does not accept.
pub(super) enum ProposalCheck {
    /// The proposal breaks the rule: the coordinator is at fault.
    Invalid(ProposalFault),
    /// It leaves out items this member knows are vouched (or locked): answer `Missing`.
    Missing(Vec<Digest>, Vec<Arc<SignedObservation>>),
}

impl Engine {
    pub(super) fn on_proposal(
        &mut self,
        now: Instant,
        from: MemberIndex,
        proposal: Arc<Proposal>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let id = proposal.id;
        let unit = id.unit;
        if !unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        if from != self.coordinator_of(&unit, id.attempt) {
            return Delivery::Rejected(MessageError::NotCoordinator);
        }
        if self.keygen.keys.is_none() || self.handed_over(unit.period()) {
            // The handover rule (§22.7): a period the next epoch may decide is not ours.
            return Delivery::Ignored;
        }
        if let Some(decided) = self.decided.get(&unit).cloned() {
            // The coordinator missed the decision (every copy of the gossip lost or garbled on
            // its way): tell it, once per member and attempt, or it would keep proposing a
            // decided unit and never hold the verdict.
            let state = self.units.entry(unit).or_default();
            if state.told.insert((from, id.attempt)) {
                self.send(from, Message::CoSigned(decided));
            }
            return Delivery::Ignored;
        }
        let schedule = self.net.schedule();
        let skew = core::time::Duration::from_millis(schedule.max_clock_skew_ms);
        if now.saturating_add(skew) < schedule.close(unit.period()) {
            return Delivery::Ignored;
        }
        let current = self.units.get(&unit).and_then(|s| s.attempt).unwrap_or(0);
        if id.attempt.saturating_add(1) < current || id.attempt > current.saturating_add(1) {
            return Delivery::Ignored;
        }
        // Revisions are bounded, so one coordinator costs at most MAX_REVISIONS + 1 checks and
        // accepts per attempt.
        if id.revision > MAX_REVISIONS {
            let fault = ProposalFault::Revision;
            self.culprit(from, Offence::InvalidProposal(fault));
            return Delivery::Rejected(fault.into());
        }
        let digest = proposal.digest();
        let state = self.units.entry(unit).or_default();
        match state.seen.get(&id) {
            Some(d) if *d == digest => return Delivery::Duplicate,
            Some(_) => {
                self.culprit(from, Offence::EquivocatingProposal);
                return Delivery::Rejected(MessageError::Equivocation);
            }
            None => {}
        }
        state.seen.insert(id, digest);
        let missing = match self.check_without_bodies(&proposal) {
            Ok(missing) => missing,
            Err(fault) => {
                self.culprit(from, Offence::InvalidProposal(fault));
                return Delivery::Rejected(fault.into());
            }
        };
        if missing.is_empty() {
            return self.finish_proposal(from, &proposal, digest, rng);
        }
        // Ask the coordinator for the bodies this member lacks; the check resumes when they
        // arrive (`on_bodies`). A later proposal of the unit replaces this one.
        let digests: Vec<Digest> = missing.iter().copied().collect();
        if let Some(state) = self.units.get_mut(&unit) {
            state.pending = Some(PendingProposal {
                proposal,
                digest,
                from,
                missing,
            });
        }
        self.send(from, Message::Fetch(Fetch { unit, digests }));
        Delivery::Accepted
    }

    /// The rest of the proposal rule, once every body is held; accepts, or answers `Missing`.
    pub(super) fn finish_proposal(
        &mut self,
        from: MemberIndex,
        proposal: &Arc<Proposal>,
        digest: Digest,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let id = proposal.id;
        match self.check_with_bodies(proposal) {
            Ok(()) => {}
            Err(ProposalCheck::Invalid(fault)) => {
                self.culprit(from, Offence::InvalidProposal(fault));
                return Delivery::Rejected(fault.into());
            }
            Err(ProposalCheck::Missing(items, observations)) => {
                self.send(
                    from,
                    Message::Missing(Arc::new(Missing {
                        id,
                        items,
                        observations,
                    })),
                );
                return Delivery::Accepted;
            }
        }
        let Some(keys) = self.keygen.keys.clone() else {
            return Delivery::Ignored;
        };
        // Accept: remember what we accepted and why (the superset rule must survive a
        // restart), then commit to a fresh nonce. The observations were verified above.
        for o in &proposal.observations {
            self.note_observation(o.clone());
            self.persist_vouch(o);
        }
        let unit = id.unit;
        let state = self.units.entry(unit).or_default();
        let grows = proposal.items().any(|d| !state.locked.contains(d));
        if grows {
            let record = Arc::new(AcceptedRecord {
                id,
                proposal: digest,
                statements: proposal.statements.clone(),
            });
            state.locked.extend(proposal.items().copied());
            state.accepted.push(record.clone());
            self.outputs
                .push_back(Output::Persist(Record::Accepted(record)));
        }
        let commitments = self.arm_signer(id, &proposal.statements, &keys, rng);
        self.send(
            from,
            Message::Accept(Accept {
                id,
                proposal: digest,
                commitments: Frost::new(commitments),
            }),
        );
        Delivery::Accepted
    }

    /// Persists `signed` as a vouch record once (it justifies a locked item after a restart).
    pub(super) fn persist_vouch(&mut self, signed: &Arc<SignedObservation>) {
        let Some(entry) = self
            .book
            .periods
            .get_mut(&signed.observation.period)
            .and_then(|p| p.observations.get_mut(&signed.observation.member))
            .and_then(|v| {
                v.iter_mut()
                    .find(|e| e.signed.observation == signed.observation)
            })
        else {
            return;
        };
        if entry.persisted {
            return;
        }
        entry.persisted = true;
        let record = entry.signed.clone();
        self.outputs
            .push_back(Output::Persist(Record::Vouch(record)));
    }

    /// The proposal rule, part 1 (`docs/protocol.md` §13, rules 1-5): everything that needs no
    /// evidence body. Returns the named items whose bodies this member lacks.
    pub(super) fn check_without_bodies(
        &self,
        p: &Proposal,
    ) -> Result<BTreeSet<Digest>, ProposalFault> {
        let unit = p.id.unit;
        let period = unit.period();
        let labs = unit.labs(&self.net);
        let limits = self.net.limits();
        // 1. One statement per lab of the unit, for this network, policy and slot, with sorted
        //    distinct evidence, and no more items than vouching allows.
        if p.statements.len() != labs.len() {
            return Err(ProposalFault::StatementCount);
        }
        for (statement, lab) in p.statements.iter().zip(&labs) {
            if statement.network_id != *self.net.id()
                || statement.policy_hash != *self.net.policy_hash()
            {
                return Err(ProposalFault::WrongNetwork);
            }
            if statement.slot.period != period || statement.slot.lab != self.net.lab_id(*lab) {
                return Err(ProposalFault::WrongSlot);
            }
            if !statement.evidence_is_canonical() {
                return Err(ProposalFault::EvidenceOrder);
            }
            if statement.evidence.len() > limits.items_per_unit(1) {
                return Err(ProposalFault::TooManyItems);
            }
        }
        if p.items().count() > limits.items_per_unit(labs.len()) {
            return Err(ProposalFault::TooManyItems);
        }
        // 2. At most n + f observations, at most two per member, each for this period and
        //    within the syntax rules.
        if p.observations.len() > limits.observations_per_proposal {
            return Err(ProposalFault::TooManyObservations);
        }
        let mut per_member: BTreeMap<MemberIndex, usize> = BTreeMap::new();
        for o in &p.observations {
            if o.observation.period != period || o.observation.check(&self.net).is_err() {
                return Err(ProposalFault::MalformedObservation);
            }
            let c = per_member.entry(o.observation.member).or_default();
            *c += 1;
            if *c > 2 {
                return Err(ProposalFault::TooManyObservations);
            }
        }
        // 3. Every observation verifies (one batch; those already held verified are not checked
        //    again). All of them: a forged voucher must never count, even for an item this
        //    member admitted itself.
        if !self.check_relayed(period, &p.observations).is_empty() {
            return Err(ProposalFault::BadlySignedObservation);
        }
        // 4. Every item is mentioned by f + 1 distinct members (its place is checked once its
        //    body is held).
        let quorum = self.net.vouch_quorum();
        let named: BTreeSet<&Digest> = p.items().collect();
        let mut mentioned: BTreeMap<&Digest, BTreeSet<MemberIndex>> = BTreeMap::new();
        for o in &p.observations {
            for d in o.observation.digests() {
                if named.contains(d) {
                    mentioned.entry(d).or_default().insert(o.observation.member);
                }
            }
        }
        if named
            .iter()
            .any(|d| mentioned.get(d).map_or(0, BTreeSet::len) < quorum)
        {
            return Err(ProposalFault::NotVouched);
        }
        // 5. The bodies to fetch.
        Ok(p.items()
            .filter(|d| !self.ledger.items.contains_key(*d))
            .copied()
            .collect())
    }

    /// The proposal rule, part 2 (rules 6-8 and the superset rule), with every body held.
    pub(super) fn check_with_bodies(&mut self, p: &Proposal) -> Result<(), ProposalCheck> {
        let unit = p.id.unit;
        let period = unit.period();
        let labs = unit.labs(&self.net);
        let limits = self.net.limits().clone();
        let quorum = self.net.vouch_quorum();
        let invalid = |f: ProposalFault| Err(ProposalCheck::Invalid(f));
        let carried = Self::listings(&labs, p.observations.iter().map(|o| &**o));
        let mut per_inspector: BTreeMap<MemberIndex, usize> = BTreeMap::new();
        for (statement, lab) in p.statements.iter().zip(&labs) {
            let mut items = Vec::with_capacity(statement.evidence.len());
            let mut attestations = 0;
            let mut in_slot: BTreeMap<MemberIndex, usize> = BTreeMap::new();
            for d in &statement.evidence {
                // 6. Each item is one of this slot's (bodies are validated when stored).
                let Some(e) = self.ledger.items.get(d) else {
                    return invalid(ProposalFault::ItemOfAnotherSlot);
                };
                if e.period != period || e.lab != *lab {
                    return invalid(ProposalFault::ItemOfAnotherSlot);
                }
                // 7. Vouched in place by f + 1 distinct members among the proposal's
                //    observations, and within the per-slot bounds vouching implies.
                if vouch_count(&carried, *lab, e.place, d) < quorum {
                    return invalid(ProposalFault::NotVouched);
                }
                let over = match e.place {
                    Place::Attestation => {
                        attestations += 1;
                        attestations > limits.vouched_attestations_per_slot
                    }
                    Place::Report(i) => {
                        let slot = in_slot.entry(i).or_default();
                        let total = per_inspector.entry(i).or_default();
                        *slot += 1;
                        *total += 1;
                        *slot > limits.vouched_reports_per_inspector_slot
                            || *total > limits.vouched_reports_per_inspector
                    }
                };
                if over {
                    return invalid(ProposalFault::TooManyItems);
                }
                items.push((*d, &*e.evidence));
            }
            // 8. The verdict is the policy's.
            if policy::evaluate(&self.net.roster().policy, &items) != statement.verdict {
                return invalid(ProposalFault::WrongVerdict);
            }
        }
        // Superset: everything this member knows is vouched, or already accepted, must be in.
        // Only items held for the unit's slots (or locked) but left out can be missing; in the
        // common case there are none and nothing needs counting.
        let included: BTreeSet<Digest> = p.items().copied().collect();
        let locked: BTreeSet<Digest> = self
            .units
            .get(&unit)
            .map(|s| s.locked.clone())
            .unwrap_or_default();
        let outside: BTreeSet<Digest> = labs
            .iter()
            .filter_map(|l| self.ledger.slots.get(&(period, *l)))
            .flatten()
            .chain(locked.iter())
            .filter(|d| !included.contains(*d) && self.ledger.items.contains_key(*d))
            .copied()
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        let candidates = |engine: &Self| -> Vec<Digest> {
            let known = Self::listings(
                &labs,
                p.observations
                    .iter()
                    .map(|o| &**o)
                    .chain(engine.stored_observations(period)),
            );
            outside
                .iter()
                .filter(|d| {
                    let e = &engine.ledger.items[*d];
                    locked.contains(*d) || vouch_count(&known, e.lab, e.place, d) >= quorum
                })
                .copied()
                .collect()
        };
        let first = candidates(self);
        if first.is_empty() {
            return Ok(());
        }
        // Before claiming items are missing, check the observations that vouch for them.
        let wanted: BTreeSet<Digest> = first.into_iter().collect();
        self.verify_stored(period, |o| wanted.iter().any(|d| o.observation.mentions(d)));
        let missing = candidates(self);
        if missing.is_empty() {
            return Ok(());
        }
        let mut observations: Vec<Arc<SignedObservation>> = self
            .book
            .periods
            .get(&period)
            .map(|s| {
                s.observations
                    .values()
                    .flatten()
                    .filter(|e| {
                        e.verified
                            && missing.iter().any(|d| {
                                let x = &self.ledger.items[d];
                                e.signed.observation.lists(x.lab, x.place, d)
                            })
                    })
                    .map(|e| e.signed.clone())
                    .collect()
            })
            .unwrap_or_default();
        observations.truncate(limits.observations_per_proposal);
        let mut items = missing;
        items.truncate(limits.items_per_unit(labs.len()));
        Err(ProposalCheck::Missing(items, observations))
    }
}
