//! The invariants of the design brief, checked as the run goes.
//!
//! Invariants 3, 4 and 5 are checked by the harnesses' own [`InvariantChecker::check`], reused
//! as is (it returns the violation it finds): the simulator keeps one `InvariantChecker` per
//! period (a slot belongs to exactly one period, so every statement a check compares lives in
//! the same checker) and re-runs a period's check whenever a new valid co-signed unit for it
//! appears. Nothing else can turn a passing check into a failing one (evidence bodies and
//! honest admissions only grow), so this is the same as checking after every event, at a cost
//! that does not grow with the length of the run.
//!
//! Invariant 1 (no forgery) is checked by counting, for every valid co-signed message, the
//! honest members that persisted a share for a proposal with that message (known from the
//! accepts they sent, and a coordinator's own proposal): together with the Byzantine members
//! they must reach t. Invariant 6 (nonces) is checked on what honest members persist and send,
//! by the harnesses' shared [`NonceChecks`]. Invariant 7 is checked by
//! [`accord_testkit::Member::restart`] at every restart, invariant 2 after the heal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use accord_protocol::crypto::{Digest, PublicKey};
use accord_protocol::dkg::DkgOffence;
use accord_protocol::engine::{Event, Offence, Record};
use accord_protocol::evidence::Evidence;
use accord_protocol::message::{Message, ProposalId};
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::statement::{CoSigned, signing_message};
use accord_testkit::{InvariantChecker, NonceChecks};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::net::Micros;
use crate::scenario::ViolationKind;

/// A detected violation.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// What was violated.
    pub kind: ViolationKind,
    /// Virtual time (µs since the simulation start).
    pub at_us: Micros,
    /// Details.
    pub detail: String,
}

/// A culprit named by an honest member.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Accusation {
    /// The honest member that named it.
    pub by: u16,
    /// The member named.
    pub culprit: u16,
    /// What it did.
    pub offence: String,
    /// The epoch both belong to (0: the genesis roster).
    #[serde(skip_serializing_if = "is_zero")]
    pub epoch: u16,
}

fn is_zero(x: &u16) -> bool {
    *x == 0
}

/// Invariant state.
pub struct Checker {
    net: Arc<Network>,
    group_key: Option<PublicKey>,
    honest: Vec<bool>,
    byzantine: usize,
    per_period: BTreeMap<Period, InvariantChecker>,
    dirty: BTreeSet<Period>,
    cosigned_seen: BTreeSet<[u8; 32]>,
    new_cosigned: Vec<Arc<CoSigned>>,
    nonces: NonceChecks,
    accepted: BTreeMap<(MemberIndex, ProposalId), Digest>,
    proposal_message: BTreeMap<Digest, [u8; 32]>,
    signers: BTreeMap<[u8; 32], BTreeSet<MemberIndex>>,
    /// Every evidence body seen anywhere (what a Byzantine member could know).
    pub bodies: BTreeMap<Digest, Arc<Evidence>>,
    /// Culprits named by honest members.
    pub accusations: BTreeSet<Accusation>,
    /// Group keys honest members completed a DKG with.
    pub dkg_keys: BTreeMap<u16, PublicKey>,
    /// Aborted ceremonies at honest members: (member, ceremony, culprits).
    pub dkg_aborts: Vec<(u16, u32, Vec<u16>)>,
    /// Violations found, in order.
    pub violations: Vec<Violation>,
    /// Valid co-signed units seen (distinct messages).
    pub cosigned_count: usize,
}

fn kind_of(invariant: u8) -> ViolationKind {
    match invariant {
        1 => ViolationKind::NoForgery,
        3 => ViolationKind::ConflictingVerdicts,
        5 => ViolationKind::LateInjection,
        6 => ViolationKind::NonceReuse,
        7 => ViolationKind::AcknowledgedLost,
        _ => ViolationKind::VerdictFollowsEvidence,
    }
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Checker {
    /// A checker for `net`; `honest[i]` tells whether member `i` follows the protocol.
    pub fn new(net: Arc<Network>, honest: Vec<bool>, group_key: Option<PublicKey>) -> Self {
        let byzantine = honest.iter().filter(|h| !**h).count();
        Self {
            net,
            group_key,
            honest,
            byzantine,
            per_period: BTreeMap::new(),
            dirty: BTreeSet::new(),
            cosigned_seen: BTreeSet::new(),
            new_cosigned: Vec::new(),
            nonces: NonceChecks::default(),
            accepted: BTreeMap::new(),
            proposal_message: BTreeMap::new(),
            signers: BTreeMap::new(),
            bodies: BTreeMap::new(),
            accusations: BTreeSet::new(),
            dkg_keys: BTreeMap::new(),
            dkg_aborts: Vec::new(),
            violations: Vec::new(),
            cosigned_count: 0,
        }
    }

    /// The group key, once known (dealt, or from the first completed DKG).
    pub fn group_key(&self) -> Option<PublicKey> {
        self.group_key
    }

    fn violation(&mut self, kind: ViolationKind, at_us: Micros, detail: String) {
        self.violations.push(Violation {
            kind,
            at_us,
            detail,
        });
    }

    /// Records an evidence body (submitted, gossiped, proposed, or handed to colluders).
    pub fn add_body(&mut self, evidence: &Arc<Evidence>) {
        self.bodies
            .entry(evidence.digest())
            .or_insert_with(|| evidence.clone());
        self.per_period
            .entry(evidence.period())
            .or_default()
            .bodies
            .entry(evidence.digest())
            .or_insert_with(|| evidence.clone());
    }

    /// Something an honest member persisted.
    pub fn on_record(&mut self, m: MemberIndex, record: &Record, now: Micros) {
        match record {
            Record::Signed(s) => {
                if let Err(v) = self.nonces.on_record(m, record) {
                    self.violation(ViolationKind::NonceReuse, now, v.detail);
                }
                if let Some(h) = self
                    .accepted
                    .get(&(m, s.id))
                    .and_then(|p| self.proposal_message.get(p))
                {
                    self.signers.entry(*h).or_default().insert(m);
                }
            }
            Record::Evidence {
                evidence,
                admitted_at: Some(_),
            } => {
                let obs = self.per_period.entry(evidence.period()).or_default();
                let d = evidence.digest();
                obs.honest_admitted.insert(d);
                obs.bodies.entry(d).or_insert_with(|| evidence.clone());
            }
            _ => {}
        }
    }

    /// Something an honest member sent (invariant 6: a commitment is issued by one member only).
    pub fn on_sent(&mut self, m: MemberIndex, message: &Message, now: Micros) {
        // Which proposal an honest member accepted (its shares for that id sign its message); a
        // coordinator accepts its own proposal by loopback, so its broadcast stands for that.
        match message {
            Message::Accept(a) => {
                self.accepted.insert((m, a.id), a.proposal);
            }
            Message::Proposal(p) => {
                self.accepted.insert((m, p.id), p.digest());
            }
            _ => {}
        }
        if let Err(v) = self.nonces.on_sent(m, message) {
            self.violation(ViolationKind::NonceReuse, now, v.detail);
        }
    }

    /// An event at an honest member.
    pub fn on_event(&mut self, m: MemberIndex, event: &Event, now: Micros) {
        match event {
            Event::Culprit { member, offence } => {
                self.accusations.insert(Accusation {
                    by: m.0,
                    culprit: member.0,
                    offence: offence.to_string(),
                    epoch: 0,
                });
                let absence = matches!(offence, Offence::Dkg(DkgOffence::Timeout));
                if self.honest.get(usize::from(member.0)).copied() == Some(true) && !absence {
                    self.violation(
                        ViolationKind::HonestBlamed,
                        now,
                        format!("{m} named honest {member}: {offence}"),
                    );
                }
            }
            Event::DkgComplete { group_key } => {
                if let Some((other, k)) = self.dkg_keys.iter().find(|(_, k)| *k != group_key) {
                    let detail = format!("{m} completed with {group_key}, member#{other} with {k}");
                    self.violation(ViolationKind::DkgDisagreement, now, detail);
                }
                self.dkg_keys.insert(m.0, *group_key);
                if self.group_key.is_none() {
                    self.group_key = Some(*group_key);
                }
            }
            Event::DkgAborted(f) => self.dkg_aborts.push((
                m.0,
                f.ceremony,
                f.culprits.iter().map(|(c, _)| c.0).collect(),
            )),
            _ => {}
        }
    }

    /// A message put on the wire (by anyone), with the digest of its encoding: records evidence
    /// bodies and valid co-signed units.
    pub fn on_packet(&mut self, message: &Message, content: &[u8; 32]) {
        match message {
            Message::Evidence(e) => self.add_body(e),
            Message::Bodies(b) => {
                for e in &b.evidence {
                    self.add_body(e);
                }
            }
            Message::Proposal(p) => {
                let digest = p.digest();
                if !self.proposal_message.contains_key(&digest) {
                    let msg = signing_message(self.net.id(), &p.id.unit, &p.statements);
                    self.proposal_message.insert(digest, sha(&msg));
                }
            }
            Message::CoSigned(c) => {
                if !self.cosigned_seen.insert(*content) {
                    return;
                }
                let Some(key) = self.group_key else {
                    return;
                };
                if c.verify(self.net.id(), &key).is_ok() {
                    let obs = self.per_period.entry(c.unit.period()).or_default();
                    if obs
                        .cosigned
                        .insert(c.message(self.net.id()), c.clone())
                        .is_none()
                    {
                        self.cosigned_count += 1;
                        self.dirty.insert(c.unit.period());
                        self.new_cosigned.push(c.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether a check is due (a new valid co-signed unit appeared).
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Runs the checks that new co-signed units call for.
    pub fn check(&mut self, now: Micros) {
        for c in std::mem::take(&mut self.new_cosigned) {
            let h = sha(&c.message(self.net.id()));
            let honest = self.signers.get(&h).map_or(0, BTreeSet::len);
            if honest + self.byzantine < self.net.t() {
                self.violation(
                    ViolationKind::NoForgery,
                    now,
                    format!(
                        "a valid group signature on {:?} with only {honest} honest signers and {} Byzantine members (t = {})",
                        c.unit,
                        self.byzantine,
                        self.net.t()
                    ),
                );
            }
        }
        for period in std::mem::take(&mut self.dirty) {
            let Some(obs) = self.per_period.get(&period) else {
                continue;
            };
            if let Err(v) = obs.check(&self.net) {
                self.violation(kind_of(v.invariant), now, format!("period {period}: {v}"));
            }
        }
    }

    /// Honest members named as culprits by honest members (excluding DKG timeouts).
    pub fn honest_blamed(&self) -> Vec<&Accusation> {
        self.accusations
            .iter()
            .filter(|a| {
                self.honest.get(usize::from(a.culprit)).copied() == Some(true)
                    && !a.offence.contains("timed out")
            })
            .collect()
    }

    /// Members named by at least one honest member.
    pub fn named(&self) -> BTreeSet<u16> {
        self.accusations.iter().map(|a| a.culprit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_invariants_map_to_violation_kinds() {
        assert_eq!(kind_of(3), ViolationKind::ConflictingVerdicts);
        assert_eq!(kind_of(5), ViolationKind::LateInjection);
        assert_eq!(kind_of(4), ViolationKind::VerdictFollowsEvidence);
        assert_eq!(kind_of(1), ViolationKind::NoForgery);
    }
}
