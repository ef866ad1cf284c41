//! The invariant checker: the safety invariants of the design brief, checked from what members
//! persist and send and from the valid co-signed units seen on the wire. The protocol's harness
//! checks after every step; the simulator runs one per period.
//!
//! Invariants checked here: 3 (no conflicting verdicts), 4 (verdicts follow evidence), 5 (no late
//! injection), 6 (nonces are never reused), and the record of who blamed whom (no honest member
//! blamed). Invariant 7 is checked at every restart ([`crate::Member::restart`]), 2 by the
//! harnesses' liveness checks, 1 by the simulator's signer count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use accord_protocol::crypto::{Digest, Frost, PublicKey};
use accord_protocol::engine::{Event, Record};
use accord_protocol::evidence::Evidence;
use accord_protocol::message::Message;
use accord_protocol::policy;
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::statement::{CoSigned, Unit};
use accord_protocol::time::Instant;
use frost_ed25519 as frost;

/// Checks the safety invariants after every step, from what it sees on the wire and in outputs.
#[derive(Default)]
pub struct InvariantChecker {
    /// Every valid co-signed unit seen, by message.
    pub cosigned: BTreeMap<Vec<u8>, Arc<CoSigned>>,
    /// Evidence bodies seen anywhere.
    pub bodies: BTreeMap<Digest, Arc<Evidence>>,
    /// Items honest members admitted before the close.
    pub honest_admitted: BTreeSet<Digest>,
    /// Invariant 6.
    pub nonces: NonceChecks,
    /// Culprits named by honest members.
    pub culprits: Vec<(MemberIndex, MemberIndex, String)>,
    /// DKG outcomes per honest member.
    pub dkg_complete: BTreeMap<MemberIndex, PublicKey>,
    /// DKG aborts per honest member, with the culprits named.
    pub dkg_aborted: BTreeMap<MemberIndex, Vec<MemberIndex>>,
    /// Refresh ceremonies completed per honest member (the last one).
    pub refresh_complete: BTreeMap<MemberIndex, u32>,
    /// Refresh aborts per honest member, with the culprits named.
    pub refresh_aborted: BTreeMap<MemberIndex, Vec<MemberIndex>>,
    /// Repairs completed, and failed (with the reason), per honest member.
    pub repaired: BTreeMap<MemberIndex, PublicKey>,
    /// Failed repairs per honest member.
    pub repair_failed: BTreeMap<MemberIndex, &'static str>,
    /// First time each unit was decided at an honest member.
    pub decided_at: BTreeMap<Unit, Instant>,
    /// Late items a colluding lab handed to late injectors.
    pub late_items: BTreeSet<Digest>,
}

/// A broken invariant, as the [`InvariantChecker`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// Which invariant of the design brief (1 to 7).
    pub invariant: u8,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invariant {}: {}", self.invariant, self.detail)
    }
}

fn violated(invariant: u8, detail: impl Into<String>) -> Result<(), InvariantViolation> {
    Err(InvariantViolation {
        invariant,
        detail: detail.into(),
    })
}

impl InvariantChecker {
    /// A record an honest member persisted.
    ///
    /// # Errors
    /// Invariant 6, when a commitment is bound to a second package.
    pub fn on_record(&mut self, m: MemberIndex, record: &Record) -> Result<(), InvariantViolation> {
        self.nonces.on_record(m, record)?;
        if let Record::Evidence {
            evidence,
            admitted_at: Some(_),
        } = record
        {
            let d = evidence.digest();
            self.honest_admitted.insert(d);
            self.bodies.entry(d).or_insert_with(|| evidence.clone());
        }
        Ok(())
    }

    /// A message honest member `m` sent.
    ///
    /// # Errors
    /// Invariant 6, when two members issue the same nonce commitment.
    pub fn on_sent(&mut self, m: MemberIndex, message: &Message) -> Result<(), InvariantViolation> {
        self.nonces.on_sent(m, message)
    }

    /// An event of honest member `m`.
    pub fn on_event(&mut self, m: MemberIndex, e: &Event, now: Instant) {
        match e {
            Event::Culprit { member, offence } => {
                self.culprits.push((m, *member, offence.to_string()))
            }
            Event::DkgComplete { group_key } => {
                self.dkg_complete.insert(m, *group_key);
            }
            Event::DkgAborted(f) => {
                self.dkg_aborted
                    .insert(m, f.culprits.iter().map(|(c, _)| *c).collect());
            }
            Event::RefreshComplete { ceremony, .. } => {
                self.refresh_complete.insert(m, *ceremony);
            }
            Event::RefreshAborted(f) => {
                self.refresh_aborted
                    .insert(m, f.culprits.iter().map(|(c, _)| *c).collect());
            }
            Event::Repaired { group_key } => {
                self.repaired.insert(m, *group_key);
            }
            Event::RepairFailed { reason } => {
                self.repair_failed.insert(m, reason);
            }
            Event::Decided(c) => {
                self.decided_at.entry(c.unit).or_insert(now);
            }
            _ => {}
        }
    }

    /// A co-signed unit seen on the wire; kept if its signature is valid under `group_key`.
    /// Returns whether it is new.
    pub fn on_cosigned(&mut self, c: Arc<CoSigned>, net: &Network, group_key: &PublicKey) -> bool {
        c.verify(net.id(), group_key).is_ok()
            && self.cosigned.insert(c.message(net.id()), c).is_none()
    }

    /// Invariants 3, 4 and 5 over every valid co-signed statement seen so far.
    ///
    /// # Errors
    /// The first violation found.
    pub fn check(&self, net: &Network) -> Result<(), InvariantViolation> {
        let mut by_slot: BTreeMap<(String, Period), Vec<&accord_protocol::statement::Statement>> =
            BTreeMap::new();
        for c in self.cosigned.values() {
            for s in &c.statements {
                by_slot
                    .entry((s.slot.lab.clone(), s.slot.period))
                    .or_default()
                    .push(s);
                // Invariant 4: the verdict is the policy's on validly signed evidence of the slot.
                let mut items: Vec<(Digest, &Evidence)> = Vec::with_capacity(s.evidence.len());
                for d in &s.evidence {
                    let Some(e) = self.bodies.get(d) else {
                        return violated(4, format!("co-signed item {d:?} has no known body"));
                    };
                    match e.validate(net) {
                        Ok(lab) if net.lab_id(lab) == s.slot.lab && e.period() == s.slot.period => {
                        }
                        Ok(_) => {
                            return violated(
                                4,
                                format!("item {d:?} belongs to another slot than {:?}", s.slot),
                            );
                        }
                        Err(err) => {
                            return violated(
                                4,
                                format!("co-signed item {d:?} is not validly signed: {err}"),
                            );
                        }
                    }
                    // Invariant 5: only items some honest member admitted before the close.
                    if !self.honest_admitted.contains(d) {
                        return violated(
                            5,
                            format!(
                                "late or unvouched item {d:?} in a co-signed statement for {:?}",
                                s.slot
                            ),
                        );
                    }
                    items.push((*d, &**e));
                }
                if policy::evaluate(&net.roster().policy, &items) != s.verdict {
                    return violated(
                        4,
                        format!("the verdict for {:?} does not follow its evidence", s.slot),
                    );
                }
            }
        }
        // Invariant 3: the statements of a slot form a chain under inclusion.
        for (slot, statements) in by_slot {
            for a in &statements {
                for b in &statements {
                    if !a.includes(b) && !b.includes(a) {
                        return violated(
                            3,
                            format!("conflicting co-signed statements for {slot:?}"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Culprits named by honest members that are themselves honest (must stay empty).
    pub fn honest_blamed(&self, honest: &[MemberIndex]) -> Vec<(MemberIndex, MemberIndex, String)> {
        self.culprits
            .iter()
            .filter(|(by, who, _)| honest.contains(by) && honest.contains(who))
            .cloned()
            .collect()
    }
}

/// Invariant 6 (nonces are never reused) over what honest members persist and send: a
/// commitment is bound to one package forever, and issued by one member only.
#[derive(Default)]
pub struct NonceChecks {
    /// Commitment digest → package digest, over shares honest members released.
    bindings: BTreeMap<Digest, Digest>,
    /// Commitment digest → the honest member that issued it.
    issuers: BTreeMap<Digest, MemberIndex>,
}

impl NonceChecks {
    /// A record honest member `m` persisted.
    ///
    /// # Errors
    /// A commitment bound to a second package.
    pub fn on_record(&mut self, m: MemberIndex, record: &Record) -> Result<(), InvariantViolation> {
        if let Record::Signed(s) = record
            && let Some(prev) = self.bindings.insert(s.commitment, s.package)
            && prev != s.package
        {
            return violated(
                6,
                format!("{m} signed two packages with commitment {:?}", s.commitment),
            );
        }
        Ok(())
    }

    /// A message honest member `m` sent.
    ///
    /// # Errors
    /// Two members issuing the same commitment.
    pub fn on_sent(&mut self, m: MemberIndex, message: &Message) -> Result<(), InvariantViolation> {
        let fresh = |c: &Frost<frost::round1::SigningCommitments>| c.digest("accord/commitment/v1");
        let issued = match message {
            Message::Accept(a) => fresh(&a.commitments),
            Message::Share(s) => fresh(&s.next),
            Message::Succession(accord_protocol::message::SuccessionMessage::Ready {
                commitments,
                ..
            }) => fresh(commitments),
            Message::Succession(accord_protocol::message::SuccessionMessage::Share {
                next,
                ..
            }) => fresh(next),
            _ => return Ok(()),
        };
        // A member may repeat its current commitment when it answers a repeated request
        // idempotently; two members never share one.
        let first = *self.issuers.entry(issued).or_insert(m);
        if first != m {
            return violated(
                6,
                format!("{m} and {first} issued the same nonce commitment"),
            );
        }
        Ok(())
    }
}
