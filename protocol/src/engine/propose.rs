//! Proposal building, the coordinator's side of `docs/protocol.md` §11–12: who coordinates
//! which attempt, the statements over every item f + 1 members vouch for in place, the
//! observations that prove it, and re-proposals after `Missing` replies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::crypto::Digest;
use crate::evidence::{Evidence, Place};
use crate::limits::MAX_REVISIONS;
use crate::message::{Fetch, Message, Missing, Proposal, ProposalId, SignedObservation};
use crate::policy;
use crate::roster::{LabIndex, MemberIndex, Period};
use crate::statement::{Statement, Unit, signing_message};

use super::observation::vouch_count;
use super::roast::Coordinator;
use super::{Delivery, Engine, Event, Malformed, MessageError, Offence, Output};

impl Engine {
    /// The first coordinator need not sit out the observation wait once every member's
    /// observation is in: nothing more can arrive that would change its proposal.
    pub(super) fn start_early(&mut self, period: Period) {
        let complete = self
            .book
            .periods
            .get(&period)
            .is_some_and(|p| p.closed && p.observations.len() == self.net.n());
        if !complete || self.keygen.keys.is_none() {
            return;
        }
        for unit in Unit::all_for(&self.net, period) {
            if self.coordinator_of(&unit, 0) != self.me || self.decided.contains_key(&unit) {
                continue;
            }
            let state = self.units.entry(unit).or_default();
            if state.attempt.is_none() {
                state.attempt = Some(0);
                state.coordinator = Some(Coordinator::new(0));
                self.try_propose(unit);
            }
        }
    }

    pub(super) fn coordinator_of(&self, unit: &Unit, attempt: u32) -> MemberIndex {
        let base = match unit {
            Unit::Slot { period, lab } => period.0.wrapping_add(u64::from(lab.0)),
            Unit::Period(period) => period.0,
        };
        MemberIndex((base.wrapping_add(u64::from(attempt)) % self.net.n() as u64) as u16)
    }

    /// Builds (or rebuilds) this coordinator's proposal for `unit` and sends it if it changed.
    pub(super) fn try_propose(&mut self, unit: Unit) {
        let Some(coord) = self.units.get(&unit).and_then(|s| s.coordinator.as_ref()) else {
            return;
        };
        let (attempt, revision, had) = (coord.attempt, coord.revision, coord.proposal.clone());
        if had.is_some() && revision >= MAX_REVISIONS {
            return;
        }
        let Some((statements, observations)) = self.build_proposal(unit) else {
            return;
        };
        if let Some((old, _, _)) = &had
            && old.statements == statements
        {
            return;
        }
        let revision = if had.is_some() { revision + 1 } else { 0 };
        let proposal = Arc::new(Proposal {
            id: ProposalId {
                unit,
                attempt,
                revision,
            },
            statements,
            observations,
        });
        let digest = proposal.digest();
        let message = Arc::new(signing_message(self.net.id(), &unit, &proposal.statements));
        let coord = self.coordinator_mut(&unit).expect("checked above");
        coord.revision = revision;
        coord.proposal = Some((proposal.clone(), digest, message));
        coord.ready.clear();
        coord.busy.clear();
        coord.sessions.clear();
        coord.missing_from.clear();
        self.event(Event::Proposed { id: proposal.id });
        self.outputs
            .push_back(Output::Broadcast(Message::Proposal(proposal.clone())));
        self.loopback.push_back(Message::Proposal(proposal));
    }

    /// The statements for `unit` over every held item that f + 1 members list in its place,
    /// and a set of observations that proves the vouching (`docs/protocol.md` §12). `None`
    /// until observations from t members are in.
    pub(super) fn build_proposal(
        &mut self,
        unit: Unit,
    ) -> Option<(Vec<Statement>, Vec<Arc<SignedObservation>>)> {
        let period = unit.period();
        let have = self
            .book
            .periods
            .get(&period)
            .map_or(0, |p| p.observations.len());
        if have < self.net.t() {
            return None;
        }
        let labs = unit.labs(&self.net);
        let quorum = self.net.vouch_quorum();
        let most_observations = self.net.limits().observations_per_proposal;
        loop {
            let state = self.book.periods.get(&period)?;
            // Step 2-3: held items of the unit's slots with their vouchers, in place.
            let listed = Self::listings(&labs, self.stored_observations(period));
            let mut vouched: BTreeMap<Digest, (LabIndex, Place, BTreeSet<MemberIndex>)> =
                BTreeMap::new();
            for lab in &labs {
                for d in self.ledger.slots.get(&(period, *lab)).into_iter().flatten() {
                    let Some(e) = self.ledger.items.get(d) else {
                        continue;
                    };
                    if let Some(members) = listed.get(&(*lab, e.place, *d))
                        && members.len() >= quorum
                    {
                        vouched.insert(*d, (*lab, e.place, members.clone()));
                    }
                }
            }
            // Step 4: observations, in member order, until every item has q vouchers among
            // them; a member counts once per item, whichever of its observations lists it.
            let mut need: BTreeMap<Digest, usize> = vouched.keys().map(|d| (*d, quorum)).collect();
            let mut picked: Vec<Arc<SignedObservation>> = Vec::new();
            for (member, entries) in &state.observations {
                let helps: Vec<Digest> = vouched
                    .iter()
                    .filter(|(d, (_, _, m))| m.contains(member) && need[*d] > 0)
                    .map(|(d, _)| *d)
                    .collect();
                if helps.is_empty() {
                    continue;
                }
                if picked.len() + entries.len() > most_observations {
                    // More than f members equivocated: beyond the fault model. Stay within the
                    // bound; items left short are dropped below.
                    break;
                }
                for d in helps {
                    if let Some(n) = need.get_mut(&d) {
                        *n -= 1;
                    }
                }
                picked.extend(entries.iter().map(|e| e.signed.clone()));
            }
            // Step 5: the picked observations must verify (each is checked once; bad ones are
            // dropped, their authors named, and the construction restarts).
            if self.verify_stored(period, |o| picked.iter().any(|c| std::ptr::eq(&**c, o))) {
                continue;
            }
            // Step 6: statements, with the items vouched among the picked observations, within
            // the roster's per-slot bounds (only exceeded beyond the fault model).
            let mut statements = Vec::with_capacity(labs.len());
            let mut per_inspector: BTreeMap<MemberIndex, usize> = BTreeMap::new();
            let limits = self.net.limits().clone();
            let carried = Self::listings(&labs, picked.iter().map(|o| &**o));
            for lab in &labs {
                let mut digests: Vec<Digest> = Vec::new();
                let mut attestations = 0;
                let mut in_slot: BTreeMap<MemberIndex, usize> = BTreeMap::new();
                for (d, (l, place, _)) in vouched.iter().filter(|(_, (l, _, _))| l == lab) {
                    if vouch_count(&carried, *l, *place, d) < quorum {
                        continue;
                    }
                    match place {
                        Place::Attestation => {
                            if attestations >= limits.vouched_attestations_per_slot {
                                continue;
                            }
                            attestations += 1;
                        }
                        Place::Report(i) => {
                            let slot = in_slot.entry(*i).or_default();
                            let unit_total = per_inspector.entry(*i).or_default();
                            if *slot >= limits.vouched_reports_per_inspector_slot
                                || *unit_total >= limits.vouched_reports_per_inspector
                            {
                                continue;
                            }
                            *slot += 1;
                            *unit_total += 1;
                        }
                    }
                    digests.push(*d);
                }
                let items: Vec<(Digest, &Evidence)> = digests
                    .iter()
                    .map(|d| (*d, &*self.ledger.items[d].evidence))
                    .collect();
                let verdict = policy::evaluate(&self.net.roster().policy, &items);
                statements.push(self.statement(*lab, period, digests, verdict));
            }
            return Some((statements, picked));
        }
    }

    pub(super) fn statement(
        &self,
        lab: LabIndex,
        period: Period,
        evidence: Vec<Digest>,
        verdict: policy::Verdict,
    ) -> Statement {
        Statement {
            network_id: *self.net.id(),
            policy_hash: *self.net.policy_hash(),
            slot: crate::statement::Slot {
                lab: self.net.lab_id(lab).to_string(),
                period,
            },
            evidence,
            verdict,
        }
    }

    pub(super) fn on_missing(&mut self, from: MemberIndex, missing: &Missing) -> Delivery {
        let unit = missing.id.unit;
        let period = unit.period();
        let labs = unit.labs(&self.net).len();
        let limits = self.net.limits();
        if missing.items.len() > limits.items_per_unit(labs)
            || missing.observations.len() > limits.observations_per_proposal
        {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
        }
        let Some(coord) = self.units.get(&unit).and_then(|s| s.coordinator.as_ref()) else {
            return Delivery::Ignored;
        };
        // One reply per member to the current revision: a member that refuses the same proposal
        // again cannot make this member verify and fetch again.
        let current = coord.proposal.as_ref().map(|(p, _, _)| p.id);
        if current != Some(missing.id) || coord.missing_from.contains(&from) {
            return Delivery::Ignored;
        }
        // A bad observation proves nothing about the member it names, and an honest member
        // relays only observations it verified: the sender is at fault. Drop it and keep the
        // rest of the reply.
        let bad = self.check_relayed(period, &missing.observations);
        if !bad.is_empty() {
            self.culprit(from, Offence::RelayedBadObservation);
        }
        for (i, o) in missing.observations.iter().enumerate() {
            if !bad.contains(&i) {
                self.note_observation(o.clone());
            }
        }
        // Fetch the bodies this coordinator lacks of items now mentioned by f + 1 members; an
        // item enters the next revision only once its body is held and it is vouched in place.
        let quorum = self.net.vouch_quorum();
        let fetch: Vec<Digest> = missing
            .items
            .iter()
            .filter(|d| {
                !self.ledger.items.contains_key(*d) && self.mentioned_by(period, d) >= quorum
            })
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Some(coord) = self.coordinator_mut(&unit) {
            coord.missing_from.insert(from);
            for d in &fetch {
                coord.wanted.insert(*d);
            }
        }
        if !fetch.is_empty() {
            self.send(
                from,
                Message::Fetch(Fetch {
                    unit,
                    digests: fetch,
                }),
            );
        }
        self.try_propose(unit);
        Delivery::Accepted
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::engine::test_support::Small;
    use crate::engine::{Engine, EngineConfig};
    use crate::roster::{LabIndex, MemberIndex, Period};
    use crate::statement::Unit;

    #[test]
    fn coordinators_rotate_through_every_member_by_attempt_and_slot() {
        let s = Small::new(5, 3);
        let e = Engine::new(
            s.net.clone(),
            MemberIndex(0),
            s.identity(0),
            None,
            EngineConfig::default(),
        );
        let unit = Unit::Slot {
            period: Period(7),
            lab: LabIndex(2),
        };
        let coordinators: Vec<MemberIndex> = (0..5).map(|a| e.coordinator_of(&unit, a)).collect();
        let distinct: BTreeSet<_> = coordinators.iter().collect();
        assert_eq!(distinct.len(), 5, "n attempts reach every member once");
        assert_eq!(e.coordinator_of(&unit, 5), coordinators[0]);
        // The next lab's slot starts one member later: slots of a period spread the work.
        let next = Unit::Slot {
            period: Period(7),
            lab: LabIndex(1),
        };
        assert_eq!(
            e.coordinator_of(&unit, 0).0,
            (e.coordinator_of(&next, 0).0 + 1) % 5
        );
    }
}
