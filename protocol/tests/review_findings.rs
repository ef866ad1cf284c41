//! The attacks of the auditor-style review (issue 9), one test each, at the protocol level: in
//! each, one Byzantine member (or a coordinator) tries to suppress a verdict, exhaust memory or
//! disk, or roll a verdict back. Each test failed on the code before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use accord_protocol::crypto::{Digest, Signature};
use accord_protocol::engine::{Delivery, Event, Offence, Output, ProposalFault, Record};
use accord_protocol::evidence::{Evidence, Place};
use accord_protocol::fixtures::{LabConduct, inspection, lab_submissions};
use accord_protocol::limits::{Limits, MAX_REVISIONS};
use accord_protocol::message::{
    Bodies, Message, Missing, Observation, Proposal, ProposalId, SignedObservation, SlotItems,
};
use accord_protocol::policy;
use accord_protocol::roster::{LabIndex, MemberIndex, Period};
use accord_protocol::statement::{Slot, Statement, Unit};
use accord_testkit::{Behaviour, Cluster, ClusterSpec};
use common::{members, messages, observation_of, outputs, pump, secs};

fn ms(m: u64) -> core::time::Duration {
    core::time::Duration::from_millis(m)
}

/// The statement for `lab` of period 0 over `items`, with the policy's verdict.
fn statement_over(c: &Cluster, lab: u16, items: &[&Evidence]) -> Statement {
    let mut evidence: Vec<Digest> = items.iter().map(|e| e.digest()).collect();
    evidence.sort();
    let with: Vec<(Digest, &Evidence)> = items.iter().map(|e| (e.digest(), *e)).collect();
    Statement {
        network_id: *c.net.id(),
        policy_hash: *c.net.policy_hash(),
        slot: Slot {
            lab: c.net.lab_id(LabIndex(lab)).to_string(),
            period: Period(0),
        },
        evidence,
        verdict: policy::evaluate(&c.net.roster().policy, &with),
    }
}

/// Member `m`'s own observation of `period`, as it persisted it.
fn own_observation(c: &Cluster, m: u16, period: Period) -> Arc<SignedObservation> {
    c.nodes[usize::from(m)]
        .records
        .iter()
        .find_map(|r| match r {
            Record::Observation(o) if o.observation.period == period => Some(o.clone()),
            _ => None,
        })
        .expect("the member closed the period")
}

/// An observation that claims `member` listed `items`, with a signature that does not verify.
fn forged(member: u16, items: &[&Evidence]) -> Arc<SignedObservation> {
    let places: Vec<(LabIndex, Place, Digest)> = items
        .iter()
        .map(|e| (LabIndex(0), e.place(), e.digest()))
        .collect();
    Arc::new(SignedObservation {
        observation: accord_testkit::adversary::with_items(
            &Observation {
                member: MemberIndex(member),
                period: Period(0),
                slots: vec![],
            },
            &places,
        ),
        signature: Signature([7; 64]),
    })
}

fn culprits(c: &Cluster) -> Vec<(MemberIndex, MemberIndex, String)> {
    c.checker.culprits.clone()
}

#[test]
fn forged_vouchers_cannot_lock_an_honest_member() {
    // Finding 1. Member 2 alone admitted x. Coordinator 0 (Byzantine) proposes x vouched by
    // member 2's genuine observation and a forged one "from" member 1. The check skipped the
    // signatures of observations vouching only for items the checker admitted itself, so member
    // 2 accepted, locked x, and refused every honest proposal (which cannot include x) for
    // good: with n = 4 and t = 3 nothing was decided. It also stored the forged observations and
    // later blamed member 1, and two forged observations of member 3 took both of 3's slots.
    let mut spec = ClusterSpec::new(4, 1);
    spec.behaviours = vec![Behaviour::Silent];
    spec.seed = 21;
    let mut c = Cluster::new(spec);
    fn evidence(m: &Message) -> bool {
        matches!(m, Message::Evidence(_))
    }
    for m in [0u16, 1, 3] {
        c.deaf.insert(MemberIndex(m), evidence);
    }
    c.run_until(c.net.schedule().start(Period(0)).saturating_add(secs(1)));
    let x = lab_submissions(
        c.net.id(),
        c.net.lab_id(LabIndex(0)),
        &c.lab_keys[0],
        Period(0),
        &c.net.roster().policy,
        LabConduct::Compliant,
        c.now,
        &mut accord_testkit::child_rng(21, "x", 0, 0),
    )
    .remove(0);
    c.submit(MemberIndex(2), x.clone()).unwrap();
    let close = c.net.schedule().close(Period(0));
    c.run_until(close.saturating_add(ms(100)));
    let genuine = own_observation(&c, 2, Period(0));
    let proposal = Proposal {
        id: ProposalId {
            unit: Unit::Period(Period(0)),
            attempt: 0,
            revision: 0,
        },
        statements: vec![statement_over(&c, 0, &[&x])],
        observations: vec![genuine, forged(1, &[&x]), forged(3, &[&x]), {
            let mut f = (*forged(3, &[&x])).clone();
            f.signature = Signature([8; 64]);
            Arc::new(f)
        }],
    };
    c.inject(
        MemberIndex(0),
        MemberIndex(2),
        Message::Proposal(Arc::new(proposal)),
    );
    c.deaf.clear();
    c.assert_live(0..1, 60_000);
    let honest = c.honest();
    assert!(
        c.checker.honest_blamed(&honest).is_empty(),
        "{:?}",
        culprits(&c)
    );
    assert!(
        culprits(&c)
            .iter()
            .any(|(by, who, what)| *by == MemberIndex(2)
                && *who == MemberIndex(0)
                && what.contains("badly signed")),
        "the coordinator that relayed the forgeries is named: {:?}",
        culprits(&c)
    );
}

#[test]
fn an_observation_over_the_roster_bounds_is_refused_and_proposals_fit() {
    // Finding 2. Observations had no size bound: member 1, among the first f + 1 vouchers,
    // gossiped one with 400 000 digests, the honest coordinator carried it, and the proposal
    // (over the frame limit) never left: no slot with evidence was decided. Now the observation
    // is refused at admission by the roster's bounds, and what honest members persist stays
    // within the roster-derived record sizes.
    let mut c = Cluster::new(ClusterSpec::new(4, 2));
    c.run_until(c.net.schedule().start(Period(0)).saturating_add(secs(1)));
    c.submit_period(Period(0), |_| LabConduct::Compliant);
    let close = c.net.schedule().close(Period(0));
    c.run_until(close.saturating_sub(ms(1)));
    // As many digests as fit in one observation message, so that any proposal carrying it is
    // over the frame limit.
    let empty = Message::Observation(Arc::new(SignedObservation {
        observation: Observation {
            member: MemberIndex(1),
            period: Period(0),
            slots: vec![SlotItems {
                lab: LabIndex(0),
                attestations: vec![],
                reports: vec![],
            }],
        },
        signature: Signature([0; 64]),
    }));
    let room = accord_protocol::codec::MAX_MESSAGE_BYTES - empty.encode().unwrap().len();
    let mut attestations: Vec<Digest> = (0..(room / 32) as u32)
        .map(|i| Digest::tagged("junk", &[&i.to_le_bytes()]))
        .collect();
    attestations.sort();
    let observation = Observation {
        member: MemberIndex(1),
        period: Period(0),
        slots: vec![SlotItems {
            lab: LabIndex(0),
            attestations,
            reports: vec![],
        }],
    };
    assert!(observation.check(&c.net).is_err());
    let signature = c.identities[1].sign(&observation.signing_bytes(c.net.id()));
    let bloated = Arc::new(SignedObservation {
        observation,
        signature,
    });
    for to in [0u16, 2, 3] {
        c.inject(
            MemberIndex(1),
            MemberIndex(to),
            Message::Observation(bloated.clone()),
        );
    }
    c.assert_live(0..1, 60_000);
    assert_eq!(
        c.oversized, 0,
        "no honest message went over the frame limit"
    );
    let decided = c.checker.decided_at[&Unit::Period(Period(0))];
    assert!(
        decided < c.net.schedule().attempt_start(Period(0), 1),
        "the honest first coordinator's attempt decided"
    );
    let limits = c.net.limits().clone();
    let largest = limits
        .observation_bytes()
        .max(limits.statements_bytes(2) + 64);
    for m in c.honest() {
        for r in &c.nodes[usize::from(m.0)].records {
            let len = accord_protocol::codec::encode(r).unwrap().len();
            assert!(len <= largest, "{m} persisted a {len}-byte record");
        }
    }
}

#[test]
fn inspectors_filing_on_every_lab_cannot_grow_proposals_past_the_bound() {
    // Finding 3. A member could file a report on every lab every period, and so could every
    // Byzantine member, so per-period proposals (which carried every body) grew with f times the
    // labs and went over the frame limit for large networks. Reports per inspector and period are
    // now bounded by the roster, proposals carry digests (bodies are fetched), and every honest
    // message provably fits (Limits, docs/protocol.md §23.4).
    let mut spec = ClusterSpec::new(7, 12);
    spec.seed = 5;
    let mut c = Cluster::new(spec);
    let r = c.net.limits().reports_per_inspector;
    assert!(
        (1..12).contains(&r),
        "the roster bounds reports per inspector ({r})"
    );
    c.run_until(c.net.schedule().start(Period(0)).saturating_add(secs(1)));
    c.submit_period(Period(0), |_| LabConduct::Compliant);
    // Members 5 and 6 each file a report on every lab.
    let attestations: Vec<Evidence> = c.checker.bodies.values().map(|e| (**e).clone()).collect();
    let mut refused = 0;
    for inspector in [5u16, 6] {
        for a in &attestations {
            let Evidence::Attestation { attestation, .. } = a else {
                continue;
            };
            let report = inspection(
                c.net.id(),
                MemberIndex(inspector),
                &c.identities[usize::from(inspector)],
                attestation,
                100,
                c.now,
            );
            if c.submit(MemberIndex(inspector), report).is_err() {
                refused += 1;
            }
        }
    }
    assert_eq!(
        refused,
        2 * (12 - r),
        "each inspector's reports beyond R are refused"
    );
    c.assert_live(0..1, 60_000);
    assert_eq!(c.oversized, 0);
    let decided = c
        .engine(MemberIndex(0))
        .decided()
        .next()
        .expect("decided")
        .clone();
    let reports: usize = decided
        .statements
        .iter()
        .flat_map(|s| &s.evidence)
        .filter(|d| matches!(c.checker.bodies[*d].place(), Place::Report(_)))
        .count();
    assert_eq!(reports, 2 * r, "the admitted reports are in the verdict");
    let limits: &Limits = c.net.limits();
    let msg = Message::CoSigned(decided).encode().unwrap();
    assert!(msg.len() <= limits.cosigned_bytes(12));
}

#[test]
fn revisions_are_bounded_and_a_replay_cannot_evict_another_attempts_signer() {
    // Finding 4. Any revision was accepted, so a coordinator could force 65 536 checks and
    // persisted accepts per attempt; and signer states were kept per proposal id, four per unit,
    // the oldest evicted: coordinator 1 re-sending attempt 0's honest content under its own
    // attempt and a few revisions evicted attempt 0's signer state, so attempt 0's signing
    // request was refused and a Byzantine coordinator cost two attempts.
    let mut m = members(4, 1, 31, "revisions", "m");
    let now = m.net.schedule().start(Period(0)).saturating_add(secs(1));
    let x = lab_submissions(
        m.net.id(),
        m.net.lab_id(LabIndex(0)),
        &m.tn.labs[0],
        Period(0),
        &m.net.roster().policy,
        LabConduct::Compliant,
        now,
        &mut m.rng,
    )
    .remove(0);
    for e in m.engines.iter_mut() {
        e.submit(now, x.clone()).unwrap();
        outputs(e);
    }
    let close = m.net.schedule().close(Period(0));
    let mut queue = Vec::new();
    for (i, e) in m.engines.iter_mut().enumerate() {
        e.handle_timeout(close, &mut m.rngs[i]);
        queue.extend(messages(i, 4, outputs(e)));
    }
    // Observations spread; coordinator 0 proposes early (all four are in). Hold back every
    // signing request so the sessions stay open.
    let out = pump(&mut m.engines, &mut m.rngs, close, queue, &|_, _, m| {
        matches!(m, Message::SignRequest(_))
    });
    let honest = out
        .iter()
        .find_map(|(from, o)| match o {
            Output::Send {
                message: Message::Proposal(p),
                ..
            } if *from == 0 => Some(p.clone()),
            _ => None,
        })
        .expect("coordinator 0 proposed");
    let request = out
        .iter()
        .find_map(|(from, o)| match o {
            Output::Send {
                to: MemberIndex(2),
                message: Message::SignRequest(r),
            } if *from == 0 => Some(r.clone()),
            _ => None,
        })
        .expect("coordinator 0 asks member 2 to sign (held back)");
    // Coordinator 1 (its attempt starts) replays the same content under attempt 1, revisions
    // 0..=4, and once under a revision above the limit.
    let at = m.net.schedule().attempt_start(Period(0), 1);
    for revision in 0..=4u16 {
        let mut replay = (*honest).clone();
        replay.id = ProposalId {
            attempt: 1,
            revision,
            ..honest.id
        };
        let d = m.engines[2].handle_message(
            at,
            MemberIndex(1),
            Message::Proposal(Arc::new(replay)),
            &mut m.rngs[2],
        );
        assert_eq!(d, Delivery::Accepted, "revision {revision}");
    }
    let mut over = (*honest).clone();
    over.id = ProposalId {
        attempt: 1,
        revision: MAX_REVISIONS + 1,
        ..honest.id
    };
    let d = m.engines[2].handle_message(
        at,
        MemberIndex(1),
        Message::Proposal(Arc::new(over)),
        &mut m.rngs[2],
    );
    assert_eq!(
        d,
        Delivery::Rejected(ProposalFault::Revision.into()),
        "a revision above the limit is refused unchecked"
    );
    let replays = outputs(&mut m.engines[2]);
    let accepted_records = replays
        .iter()
        .filter(|o| matches!(o, Output::Persist(Record::Accepted(_))))
        .count();
    assert_eq!(
        accepted_records, 0,
        "replays of accepted content persist nothing new"
    );
    // Attempt 0's signer state survived: member 2 signs coordinator 0's request.
    let d = m.engines[2].handle_message(
        at,
        MemberIndex(0),
        Message::SignRequest(request),
        &mut m.rngs[2],
    );
    assert_eq!(d, Delivery::Accepted);
    assert!(
        outputs(&mut m.engines[2]).iter().any(|o| matches!(
            o,
            Output::Send {
                message: Message::Share(_),
                ..
            }
        )),
        "member 2 answers attempt 0's signing request"
    );
}

#[test]
fn a_flood_of_missing_replies_persists_nothing_unvouched() {
    // Finding 5. `Missing` replies were handled without a cap, and every evidence body in them
    // was persisted: a member could file a validly signed report on any slot in every reply, and
    // the coordinator stored them all. Now a coordinator handles one reply per member and
    // revision, and stores only bodies of items f + 1 members vouch for, fetched from the member
    // that named them.
    let mut m = members(4, 1, 41, "missing", "m");
    let now = m.net.schedule().start(Period(0)).saturating_add(secs(1));
    let x = lab_submissions(
        m.net.id(),
        m.net.lab_id(LabIndex(0)),
        &m.tn.labs[0],
        Period(0),
        &m.net.roster().policy,
        LabConduct::Compliant,
        now,
        &mut m.rng,
    )
    .remove(0);
    for e in m.engines.iter_mut() {
        e.submit(now, x.clone()).unwrap();
        outputs(e);
    }
    let close = m.net.schedule().close(Period(0));
    let mut queue = Vec::new();
    for (i, e) in m.engines.iter_mut().enumerate() {
        e.handle_timeout(close, &mut m.rngs[i]);
        queue.extend(messages(i, 4, outputs(e)));
    }
    // Observations spread and coordinator 0 proposes early; signing requests are held back so
    // the unit stays open.
    let out = pump(&mut m.engines, &mut m.rngs, close, queue, &|_, _, m| {
        matches!(m, Message::SignRequest(_))
    });
    let proposal = out
        .iter()
        .find_map(|(from, o)| match o {
            Output::Send {
                message: Message::Proposal(p),
                ..
            } if *from == 0 => Some(p.clone()),
            _ => None,
        })
        .expect("coordinator 0 proposes");
    // Member 1 answers `Missing` 50 times, each naming as many reports (signed by itself:
    // valid,
    // but vouched by nobody), and pushes their bodies.
    let Evidence::Attestation { attestation, .. } = &x else {
        unreachable!()
    };
    let most = m.net.limits().items_per_unit(1) as u64;
    let reports: Vec<Evidence> = (0..most)
        .map(|i| {
            inspection(
                m.net.id(),
                MemberIndex(1),
                &m.tn.members[1],
                attestation,
                90 + i % 10,
                now.saturating_add(ms(i)),
            )
        })
        .collect();
    outputs(&mut m.engines[0]);
    let mut persisted = 0;
    let mut fetches = 0;
    for round in 0..50 {
        let missing = Missing {
            id: proposal.id,
            items: reports.iter().map(Evidence::digest).collect(),
            observations: vec![observation_of(&m.tn, &m.net, 1, &[&x])],
        };
        let d = m.engines[0].handle_message(
            close,
            MemberIndex(1),
            Message::Missing(Arc::new(missing)),
            &mut m.rngs[0],
        );
        if round > 0 {
            assert_eq!(d, Delivery::Ignored, "one reply per member and revision");
        }
        m.engines[0].handle_message(
            close,
            MemberIndex(1),
            Message::Bodies(Arc::new(Bodies {
                unit: proposal.id.unit,
                evidence: reports.iter().cloned().map(Arc::new).collect(),
            })),
            &mut m.rngs[0],
        );
        for o in outputs(&mut m.engines[0]) {
            match o {
                Output::Persist(Record::Evidence { .. }) => persisted += 1,
                Output::Send {
                    message: Message::Fetch(_),
                    ..
                } => fetches += 1,
                _ => {}
            }
        }
    }
    assert_eq!(persisted, 0, "no unvouched body was stored");
    assert_eq!(
        fetches, 0,
        "nothing vouched was missing, so nothing was fetched"
    );
}

#[test]
fn an_equivocated_confirmation_cannot_keep_a_recovering_member_keyless() {
    // Finding 9. A member recovering its key collects every member's signed confirmation; a
    // later confirmation from the same sender overwrote the pending one, and the dedup set then
    // dropped honest relays of the first: Byzantine member 1, sending a second confirmation of
    // another key, kept member 2 from ever activating its key. Now only a confirmation of the
    // member's own key counts, and the pair of two different ones names the sender.
    fn confirm(m: &Message) -> bool {
        matches!(m, Message::Dkg(d) if matches!(d.body, accord_protocol::dkg::DkgBody::Confirm { .. }))
    }
    let mut spec = ClusterSpec::new(4, 1);
    spec.dkg = true;
    let mut c = Cluster::new(spec);
    c.deaf.insert(MemberIndex(2), confirm);
    c.start_dkg(1);
    let split = c.run_until_condition(c.now.saturating_add(secs(120)), |c| {
        c.checker.dkg_aborted.contains_key(&MemberIndex(2))
    });
    assert!(split, "member 2 times out in the Confirm phase");
    c.deaf.clear();
    // Member 1 sends member 2 its genuine confirmation, then a validly signed one of another
    // key, before any honest relay arrives.
    let genuine = c.nodes[0]
        .records
        .iter()
        .find_map(|r| match r {
            Record::DkgComplete { confirmations, .. } => confirmations
                .iter()
                .find(|m| m.sender == MemberIndex(1))
                .cloned(),
            _ => None,
        })
        .expect("member 0 holds member 1's confirmation");
    let other = accord_protocol::dkg::DkgMessage::new(
        &c.net,
        &c.identities[1],
        1,
        MemberIndex(1),
        None,
        accord_protocol::dkg::DkgBody::Confirm {
            group_key: accord_protocol::crypto::PublicKey([9; 32]),
            public_package: Digest([9; 32]),
        },
    );
    c.inject(MemberIndex(1), MemberIndex(2), Message::Dkg(genuine));
    c.inject(MemberIndex(1), MemberIndex(2), Message::Dkg(other));
    let ok = c.run_until_condition(c.now.saturating_add(secs(10)), |c| {
        c.engine(MemberIndex(2)).group_key().is_some()
    });
    assert!(ok, "member 2 activated its key from the honest relays");
    assert!(
        culprits(&c)
            .iter()
            .any(|(by, who, what)| *by == MemberIndex(2)
                && *who == MemberIndex(1)
                && what.contains("two different confirmations")),
        "the equivocating confirmer is named: {:?}",
        culprits(&c)
    );
}

#[test]
fn a_replayed_smaller_statement_never_replaces_the_held_one() {
    // Finding 12. Once a decided unit was pruned from memory, a replay of an earlier, smaller
    // co-signed statement of it was taken as new (`Decided` again), and the node stored it over
    // the larger one: one member gossiping old statements rolled back every node's verdict. The
    // engine now ignores co-signed units below the periods whose decisions it holds.
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    c.run_until(c.net.schedule().start(Period(0)).saturating_add(secs(1)));
    c.submit_period(Period(0), |_| LabConduct::DoubleSigns);
    c.assert_live(0..1, 60_000);
    let held = c
        .engine(MemberIndex(0))
        .decided()
        .find(|u| u.unit.period() == Period(0))
        .expect("decided")
        .clone();
    assert_eq!(held.statements[0].evidence.len(), 2);
    // A validly co-signed smaller statement of the same slot (one of the two attestations),
    // signed with the dealt shares as t members would.
    let keys: Vec<_> = (0..3).map(|i| c.nodes[i].key.clone().unwrap()).collect();
    let one = c.checker.bodies[&held.statements[0].evidence[0]].clone();
    let smaller_statement = statement_over(&c, 0, &[&one]);
    let smaller = accord_testkit::co_sign(
        &c.net,
        &keys,
        Unit::Period(Period(0)),
        vec![smaller_statement],
    );
    // Run many periods: period 0 leaves every member's memory.
    let keep = 4 * 17 + 2;
    for p in 1..keep {
        c.run_until(c.net.schedule().start(Period(p)).saturating_add(secs(1)));
        c.submit_period(Period(p), |_| LabConduct::Compliant);
        c.assert_live(p..p + 1, 60_000);
    }
    assert!(
        c.engine(MemberIndex(1))
            .decided()
            .all(|u| u.unit.period() > Period(0)),
        "period 0 left memory"
    );
    for to in 1..4u16 {
        c.inject(
            MemberIndex(0),
            MemberIndex(to),
            Message::CoSigned(smaller.clone()),
        );
    }
    c.run_until(c.now.saturating_add(secs(1)));
    for m in 1..4u16 {
        let redecided = c.nodes[usize::from(m)]
            .records
            .iter()
            .rev()
            .take(20)
            .any(|r| matches!(r, Record::CoSigned(x) if x.unit == Unit::Period(Period(0))));
        assert!(!redecided, "member {m} recorded the replayed statement");
    }
}

#[test]
fn offence_and_refusal_codes_are_a_fixed_set() {
    // Finding 7. The culprit metric was labelled with the offence's text, which carried
    // attacker-chosen strings (an evidence error naming a lab id), so one member could mint
    // unbounded metric series. Labels are now `code()`s: static strings from a fixed set.
    let offences = [
        Offence::InvalidShare,
        Offence::EquivocatingObservation,
        Offence::EquivocatingProposal,
        Offence::InvalidProposal(ProposalFault::WrongVerdict),
        Offence::BadObservation,
        Offence::RelayedBadObservation,
        Offence::BadEvidence,
        Offence::Dkg(accord_protocol::dkg::DkgOffence::Timeout),
    ];
    for o in offences {
        let code = o.code();
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{code}"
        );
    }
    let e = accord_protocol::engine::MessageError::Evidence(
        accord_protocol::evidence::EvidenceError::UnknownLab("x".repeat(200)),
    );
    assert_eq!(e.code(), "unknown-lab");
    assert!(!matches!(
        Event::Culprit {
            member: MemberIndex(0),
            offence: Offence::BadEvidence
        },
        Event::Refused { .. }
    ));
}

#[test]
fn the_record_log_is_compacted_and_a_member_restarts_from_it() {
    // Finding 10 (second half). The record log was never compacted and `restore` replayed the
    // whole history, so disk and restart time grew with every period of a years-long treaty.
    // The engine now replaces its log by a snapshot of what it keeps whenever it prunes a
    // period; restarting from it gives the same member.
    let mut c = Cluster::new(ClusterSpec::new(4, 2));
    let mut sizes = Vec::new();
    for p in 0..30u64 {
        c.run_until(c.net.schedule().start(Period(p)).saturating_add(secs(1)));
        c.submit_period(Period(p), |i| {
            if i == 0 {
                LabConduct::DoubleSigns
            } else {
                LabConduct::Compliant
            }
        });
        c.assert_live(p..p + 1, 60_000);
        if p % 7 == 3 {
            let m = MemberIndex(1);
            let before = c.engine(m).status();
            c.crash(m);
            c.restart(m);
            let after = c.engine(m).status();
            assert_eq!(before, after, "period {p}: the member restarted as it was");
        }
        sizes.push(c.nodes[1].records.len());
    }
    // The log stops growing once pruning starts: it holds the kept periods' records and the
    // co-signed units of the last 16 × 4 periods, not the history.
    let (early, late) = (sizes[10], sizes[29]);
    assert!(
        late < early + 20 * 3,
        "the log grew from {early} to {late} records in 19 periods"
    );
    let evidence = c.nodes[1]
        .records
        .iter()
        .filter(|r| matches!(r, Record::Evidence { .. }))
        .count();
    assert!(evidence <= 5 * 3, "{evidence} evidence records kept");
}
