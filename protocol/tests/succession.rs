//! Membership change (`docs/protocol.md` §22.7) in whole networks of engines: an epoch co-signs
//! its succession by a new roster and key (whose DKG ran among the new members), stops deciding
//! at the handover period, and the chain verifies from the genesis bundle; a Byzantine signer
//! cannot stop it, an approval short of t lapses and the old epoch keeps deciding, and a
//! restarted member keeps its lock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use accord_protocol::engine::{RefreshStartError, SuccessionError};
use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::{MemberIndex, Period};
use accord_protocol::succession::{Chain, Succession, SuccessionProposal};
use accord_protocol::verify::TrustBundle;
use accord_testkit::{Behaviour, Cluster, ClusterSpec};

/// The new epoch: `n` members that ran their DKG (seeded apart from the old epoch's).
fn new_epoch(n: usize, seed: u64) -> Cluster {
    successor(n, seed, None)
}

/// As [`new_epoch`], its engines configured to decide from `start` on once they hold the
/// succession.
fn successor(n: usize, seed: u64, start: Option<u64>) -> Cluster {
    let mut spec = ClusterSpec::new(n, 1);
    spec.dkg = true;
    spec.epoch_start = start.map(Period);
    spec.seed = seed;
    spec.testnet.name = format!("accord-epoch-{seed}");
    let mut c = Cluster::new(spec);
    c.start_dkg(1);
    let members = c.net.n();
    let ok = c.run_until_condition(c.now.saturating_add(Duration::from_secs(60)), |c| {
        c.checker.dkg_complete.len() == members
    });
    assert!(ok, "the new epoch's DKG completes");
    c
}

fn old_epoch(n: usize, behaviours: Vec<Behaviour>) -> Cluster {
    let mut spec = ClusterSpec::new(n, 1);
    spec.behaviours = behaviours;
    spec.seed = 11;
    Cluster::new(spec)
}

/// The proposal handing `old` over to `new` at `first`.
fn proposal(old: &Cluster, new: &Cluster, first: u64) -> SuccessionProposal {
    let engine = new.engine(MemberIndex(0));
    let group_key = engine.group_key().expect("the new key");
    SuccessionProposal {
        succession: Succession::new(old.net.id(), Period(first), &new.net, group_key),
        roster: new.net.roster().clone(),
        confirmations: engine.key_confirmations().expect("confirmed").to_vec(),
    }
}

fn genesis(c: &Cluster) -> TrustBundle {
    TrustBundle::new(&c.net, c.nodes[0].key.as_ref().unwrap().group_key())
}

/// Runs `c` through periods `range` with every lab compliant, checking each is decided.
fn decide(c: &mut Cluster, range: std::ops::Range<u64>) {
    for p in range.clone() {
        let at = c.net.schedule().start(Period(p));
        c.run_until(at.saturating_add(Duration::from_millis(1000)));
        c.submit_period(Period(p), |_| LabConduct::Compliant);
    }
    c.assert_live(range, 60_000);
}

fn handed_over_everywhere(c: &Cluster) -> bool {
    c.nodes
        .iter()
        .filter_map(|n| n.engine.as_ref())
        .all(|e| e.succession().is_some())
}

fn decided_periods(c: &Cluster, m: MemberIndex) -> Vec<u64> {
    let mut p: Vec<u64> = c.engine(m).decided().map(|d| d.unit.period().0).collect();
    p.dedup();
    p
}

#[test]
fn an_epoch_hands_over_and_the_chain_assigns_every_period_once() {
    let mut old = old_epoch(4, vec![]);
    decide(&mut old, 0..2);
    let first = old.engine(MemberIndex(0)).status().next_close.0 + 2;
    let mut new = successor(5, 21, Some(first));
    let p = proposal(&old, &new, first);
    // t = 3 of 4 approve; the fourth learns the result.
    for m in 0..3 {
        old.approve_succession(MemberIndex(m), p.clone()).unwrap();
    }
    let ok = old.run_until_condition(old.now.saturating_add(Duration::from_secs(10)), |c| {
        handed_over_everywhere(c)
    });
    assert!(ok, "the succession is co-signed and reaches every member");
    let signed = old.engine(MemberIndex(3)).succession().unwrap().clone();
    // Observers: the chain from the genesis bundle puts `first` and later in the new epoch.
    let chain = Chain::follow(genesis(&old), &[(*signed).clone()]).unwrap();
    assert_eq!(chain.epoch_for(Period(first - 1)).index, 0);
    assert_eq!(chain.epoch_for(Period(first)).index, 1);
    assert_eq!(
        chain.epoch_for(Period(first)).bundle.group_key,
        new.engine(MemberIndex(0)).group_key().unwrap()
    );
    // The old epoch keeps deciding the periods before `first` and none after.
    decide(&mut old, 2..first);
    let end = old.net.schedule().close(Period(first + 3));
    old.run_until(end);
    for m in old.net.members() {
        let e = old.engine(m);
        assert_eq!(
            e.status().next_close,
            Period(first),
            "{m} closes nothing from P on"
        );
        assert!(
            decided_periods(&old, m).iter().all(|p| *p < first),
            "{m} decided a period the new epoch owns"
        );
    }
    // An old-epoch statement verifies on the chain only for its own periods.
    let statement = old
        .engine(MemberIndex(0))
        .decided()
        .find(|c| c.unit.period() == Period(first - 1))
        .unwrap()
        .export(old.net.id())
        .remove(0);
    chain.verify_statement(&statement).unwrap();

    // The new epoch decided nothing while it lacked the succession, even past P's close.
    new.run_until(new.net.schedule().close(Period(first + 1)));
    for m in new.net.members() {
        assert_eq!(
            new.engine(m).decided().count(),
            0,
            "{m} waits for its succession"
        );
    }
    // A succession checked against the wrong previous bundle is refused.
    assert!(matches!(
        new.adopt_succession(MemberIndex(0), (*signed).clone(), &chain.last().bundle),
        Err(SuccessionError::NotOurs(_))
    ));
    for m in new.net.members() {
        new.adopt_succession(m, (*signed).clone(), &genesis(&old))
            .unwrap();
    }
    decide(&mut new, first..first + 2);
    for m in new.net.members() {
        assert!(decided_periods(&new, m).iter().all(|p| *p >= first));
    }
    // Every statement of both epochs verifies on the chain, each under its own epoch.
    for (c, m) in [(&old, MemberIndex(0)), (&new, MemberIndex(0))] {
        for cosigned in c.engine(m).decided() {
            for s in cosigned.export(c.net.id()) {
                chain.verify_statement(&s).unwrap();
            }
        }
    }
    // A new-epoch statement presented for a period the old epoch owns is refused.
    let mut moved = new
        .engine(MemberIndex(0))
        .decided()
        .next()
        .unwrap()
        .export(new.net.id())
        .remove(0);
    moved.statement.slot.period = Period(first - 1);
    assert!(matches!(
        chain.verify_statement(&moved),
        Err(accord_protocol::succession::ChainError::NotItsPeriod {
            owner: 0,
            signer: 1,
            ..
        })
    ));
}

#[test]
fn a_garbage_share_is_named_and_the_succession_still_completes() {
    let mut old = old_epoch(4, vec![Behaviour::GarbageShares]);
    decide(&mut old, 0..1);
    let new = new_epoch(4, 22);
    let first = old.engine(MemberIndex(1)).status().next_close.0 + 2;
    let p = proposal(&old, &new, first);
    // The Byzantine member approves first, so it coordinates and is in the first session.
    for m in 0..4 {
        old.approve_succession(MemberIndex(m), p.clone()).unwrap();
    }
    let ok = old.run_until_condition(old.now.saturating_add(Duration::from_secs(20)), |c| {
        (1..4).all(|m| c.engine(MemberIndex(m)).succession().is_some())
    });
    assert!(
        ok,
        "three honest signers co-sign despite the garbage shares"
    );
    assert!(
        old.checker
            .culprits
            .iter()
            .any(|(_, culprit, _)| *culprit == MemberIndex(0)),
        "the garbage signer is named: {:?}",
        old.checker.culprits
    );
    let signed = old.engine(MemberIndex(1)).succession().unwrap().clone();
    Chain::follow(genesis(&old), &[(*signed).clone()]).unwrap();
}

#[test]
fn a_signer_that_answers_only_with_fresh_commitments_cannot_stall_the_succession() {
    // Member 1 approves, is put in member 0's sessions, and answers each with a new commitment
    // but never a share: it must not be ready again until it answers.
    let mut old = old_epoch(4, vec![Behaviour::Honest, Behaviour::AcceptThenSilent]);
    decide(&mut old, 0..1);
    let new = new_epoch(4, 28);
    let first = old.engine(MemberIndex(1)).status().next_close.0 + 3;
    let p = proposal(&old, &new, first);
    for m in 0..4 {
        old.approve_succession(MemberIndex(m), p.clone()).unwrap();
    }
    let ok = old.run_until_condition(old.now.saturating_add(Duration::from_secs(20)), |c| {
        [0, 2, 3]
            .iter()
            .all(|m| c.engine(MemberIndex(*m)).succession().is_some())
    });
    assert!(ok, "three honest signers co-sign without the silent one");
    assert!(old.engine(MemberIndex(0)).succession().is_some());
}

#[test]
fn a_silent_coordinator_is_replaced() {
    // Member 0 approves first (it coordinates), then goes silent: the others take over.
    let mut old = old_epoch(4, vec![]);
    decide(&mut old, 0..1);
    let new = new_epoch(4, 23);
    let first = old.engine(MemberIndex(1)).status().next_close.0 + 3;
    let p = proposal(&old, &new, first);
    old.approve_succession(MemberIndex(0), p.clone()).unwrap();
    old.run_until(old.now.saturating_add(Duration::from_millis(50)));
    old.crash(MemberIndex(0));
    for m in 1..4 {
        old.approve_succession(MemberIndex(m), p.clone()).unwrap();
    }
    let ok = old.run_until_condition(old.now.saturating_add(Duration::from_secs(30)), |c| {
        (1..4).all(|m| c.engine(MemberIndex(m)).succession().is_some())
    });
    assert!(ok, "a fallback coordinator completes the succession");
}

#[test]
fn approvals_short_of_t_lapse_and_the_old_epoch_keeps_deciding() {
    let mut old = old_epoch(4, vec![]);
    decide(&mut old, 0..1);
    let new = new_epoch(4, 24);
    let first = old.engine(MemberIndex(0)).status().next_close.0 + 1;
    let p = proposal(&old, &new, first);
    for m in 0..2 {
        old.approve_succession(MemberIndex(m), p.clone()).unwrap();
        assert!(
            old.engine(MemberIndex(m))
                .succession_status()
                .approved
                .is_some()
        );
    }
    // Two approvals of t = 3: no session, no share, so at P's close both lapse and the
    // old epoch decides P and after.
    decide(&mut old, 1..first + 2);
    for m in old.net.members() {
        let e = old.engine(m);
        assert!(e.succession().is_none());
        assert!(e.succession_status().approved.is_none(), "{m} lapsed");
    }
    assert_eq!(
        old.approve_succession(MemberIndex(0), p),
        Err(SuccessionError::Lapsed)
    );
}

#[test]
fn a_handing_member_starts_no_refresh_but_joins_one_others_start() {
    let mut old = old_epoch(4, vec![]);
    decide(&mut old, 0..1);
    let new = new_epoch(4, 26);
    let first = old.engine(MemberIndex(0)).status().next_close.0 + 2;
    old.approve_succession(MemberIndex(0), proposal(&old, &new, first))
        .unwrap();
    // A refresh never spans a handover: the approver starts none, by hand or on schedule.
    assert_eq!(
        old.start_refresh(MemberIndex(0), 1),
        Err(RefreshStartError::HandingOver)
    );
    // One started by a member that did not approve still completes with the approver in it
    // (the ceremony needs every member), and nobody is blamed.
    old.start_refresh(MemberIndex(1), 1).unwrap();
    let limit = old.now.saturating_add(Duration::from_secs(30));
    assert!(old.run_until_condition(limit, |c| c.checker.refresh_complete.len() == 4));
    assert!(old.checker.honest_blamed(&old.honest()).is_empty());
}

#[test]
fn a_member_refuses_a_succession_it_cannot_keep() {
    let mut old = old_epoch(4, vec![]);
    decide(&mut old, 0..2);
    let new = new_epoch(4, 25);
    let next = old.engine(MemberIndex(0)).status().next_close.0;
    // A period it already closed.
    assert!(matches!(
        old.approve_succession(MemberIndex(0), proposal(&old, &new, next - 1)),
        Err(SuccessionError::TooLate { .. })
    ));
    // A proposal whose confirmations do not prove the key (one dropped).
    let mut p = proposal(&old, &new, next + 1);
    p.confirmations.pop();
    assert!(matches!(
        old.approve_succession(MemberIndex(0), p),
        Err(SuccessionError::Invalid(_))
    ));
    // A key nobody confirmed: the succession names another key than the DKG's.
    let other = new_epoch(4, 26);
    let mut p = proposal(&old, &new, next + 1);
    p.succession.group_key = other.engine(MemberIndex(0)).group_key().unwrap();
    assert!(matches!(
        old.approve_succession(MemberIndex(0), p),
        Err(SuccessionError::Invalid(_))
    ));
    // One approval only: a second, different succession is refused.
    old.approve_succession(MemberIndex(0), proposal(&old, &new, next + 1))
        .unwrap();
    assert!(matches!(
        old.approve_succession(MemberIndex(0), proposal(&old, &other, next + 1)),
        Err(SuccessionError::AlreadyApproved(_))
    ));
}

#[test]
fn a_restarted_member_keeps_its_lock_and_the_handover() {
    let mut old = old_epoch(4, vec![]);
    decide(&mut old, 0..1);
    let new = new_epoch(4, 27);
    let first = old.engine(MemberIndex(0)).status().next_close.0 + 2;
    let p = proposal(&old, &new, first);
    old.approve_succession(MemberIndex(1), p.clone()).unwrap();
    old.crash(MemberIndex(1));
    old.restart(MemberIndex(1));
    let status = old.engine(MemberIndex(1)).succession_status();
    assert_eq!(status.approved.map(|a| a.1), Some(Period(first)));
    for m in [0, 2] {
        old.approve_succession(MemberIndex(m), p.clone()).unwrap();
    }
    let ok = old.run_until_condition(old.now.saturating_add(Duration::from_secs(30)), |c| {
        handed_over_everywhere(c)
    });
    assert!(ok);
    for m in 0..4 {
        old.crash(MemberIndex(m));
        old.restart(MemberIndex(m));
    }
    old.run_until(old.net.schedule().close(Period(first + 2)));
    for m in old.net.members() {
        let e = old.engine(m);
        assert!(e.succession().is_some(), "{m} remembers the handover");
        assert!(e.status().next_close <= Period(first));
    }
}

#[test]
fn a_member_checks_a_bounded_number_of_offers_from_one_coordinator() {
    use accord_protocol::Delivery;
    use accord_protocol::message::{Message, SuccessionMessage};
    let mut old = old_epoch(4, vec![]);
    let new = new_epoch(4, 29);
    let mut offered = Vec::new();
    for first in 100..110 {
        // Each offer differs, and each fails its check (a confirmation dropped).
        let mut p = proposal(&old, &new, first);
        p.confirmations.pop();
        let message = Message::Succession(SuccessionMessage::Propose(std::sync::Arc::new(p)));
        offered.push(old.deliver_now(MemberIndex(1), MemberIndex(0), message));
    }
    let checked = offered
        .iter()
        .filter(|d| matches!(d, Delivery::Rejected(_)))
        .count();
    assert_eq!(checked, 8, "{offered:?}");
    assert!(offered[8..].iter().all(|d| *d == Delivery::Ignored));
    // Another coordinator still gets its offers checked.
    let mut p = proposal(&old, &new, 100);
    p.confirmations.pop();
    let message = Message::Succession(SuccessionMessage::Propose(std::sync::Arc::new(p)));
    assert!(matches!(
        old.deliver_now(MemberIndex(2), MemberIndex(0), message),
        Delivery::Rejected(_)
    ));
}
