//! Whole networks of engines in virtual time: DKG, verdicts for every slot, faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::{MemberIndex, Period, SigningMode};
use accord_testkit::{Behaviour, Cluster, ClusterSpec};

fn conduct(i: usize) -> LabConduct {
    [
        LabConduct::Compliant,
        LabConduct::OverCompute,
        LabConduct::Silent,
        LabConduct::DoubleSigns,
        LabConduct::OverCluster,
    ][i % 5]
}

fn run(spec: ClusterSpec, periods: u64) -> Cluster {
    let mut c = Cluster::new(spec);
    for p in 0..periods {
        let start = c.net.schedule().start(Period(p));
        c.run_until(start.saturating_add(core::time::Duration::from_millis(1000)));
        c.submit_period(Period(p), conduct);
    }
    c.assert_live(0..periods, 60_000);
    c
}

#[test]
fn four_members_sign_every_slot_per_period() {
    let c = run(ClusterSpec::new(4, 5), 2);
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
    eprintln!("steps {}", c.steps);
}

#[test]
fn four_members_sign_every_slot_per_slot() {
    let mut spec = ClusterSpec::new(4, 5);
    spec.testnet.mode = SigningMode::PerSlot;
    let c = run(spec, 1);
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
}

#[test]
fn silent_minority_does_not_suppress() {
    let mut spec = ClusterSpec::new(7, 5);
    spec.behaviours = vec![Behaviour::Silent, Behaviour::Honest, Behaviour::Silent];
    let c = run(spec, 2);
    let _ = MemberIndex(0);
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
}

fn byzantine(n: usize, who: &[(usize, Behaviour)], periods: u64) -> Cluster {
    let mut spec = ClusterSpec::new(n, 5);
    spec.behaviours = vec![Behaviour::Honest; n];
    for (i, b) in who {
        spec.behaviours[*i] = *b;
    }
    let c = run(spec, periods);
    let blamed = c.checker.honest_blamed(&c.honest());
    assert!(blamed.is_empty(), "honest members blamed: {blamed:?}");
    c
}

fn named(c: &Cluster, who: usize) -> bool {
    c.checker
        .culprits
        .iter()
        .any(|(_, m, _)| m.0 as usize == who)
}

#[test]
fn garbage_shares_are_named_and_excluded() {
    let c = byzantine(
        7,
        &[(0, Behaviour::GarbageShares), (3, Behaviour::GarbageShares)],
        3,
    );
    assert!(
        named(&c, 0) && named(&c, 3),
        "culprits: {:?}",
        c.checker.culprits
    );
}

#[test]
fn wrong_commitments_do_not_stall_signing() {
    // A signer whose commitment does not match its nonces cannot produce a share for it; ROAST
    // leaves it busy in its stalled session and completes with the signers that answer.
    byzantine(
        7,
        &[
            (1, Behaviour::WrongCommitments),
            (2, Behaviour::WrongCommitments),
        ],
        3,
    );
}

#[test]
fn equivocating_observations_are_named() {
    let c = byzantine(7, &[(4, Behaviour::EquivocatingObservations)], 2);
    assert!(named(&c, 4), "culprits: {:?}", c.checker.culprits);
}

#[test]
fn equivocating_proposals_do_not_split_verdicts() {
    // Member 0 coordinates period 0 first, member 1 period 1.
    byzantine(
        7,
        &[
            (0, Behaviour::EquivocatingProposals),
            (1, Behaviour::EquivocatingProposals),
        ],
        3,
    );
}

#[test]
fn split_view_packages_abort_without_blaming_honest_members() {
    byzantine(
        7,
        &[
            (0, Behaviour::SplitViewPackages),
            (1, Behaviour::SplitViewPackages),
        ],
        3,
    );
}

#[test]
fn late_injection_through_colluding_coordinator_fails() {
    use accord_protocol::fixtures::{LabConduct, lab_submissions};
    // f = 2 of 7 collude with lab 0: they vouch for its late attestation and, as coordinators,
    // slip it into proposals. Honest members never admitted it, so it lacks f + 1 vouchers.
    let mut spec = ClusterSpec::new(7, 5);
    spec.behaviours = vec![Behaviour::LateInjector, Behaviour::LateInjector];
    let mut c = Cluster::new(spec);
    c.run_until(
        c.net
            .schedule()
            .start(Period(0))
            .saturating_add(core::time::Duration::from_millis(1000)),
    );
    c.submit_period(Period(0), |i| {
        if i == 0 {
            LabConduct::Silent
        } else {
            LabConduct::Compliant
        }
    });
    let close = c.net.schedule().close(Period(0));
    c.run_until(close.saturating_sub(core::time::Duration::from_millis(20)));
    let mut rng = accord_testkit::child_rng(1, "late", 0, 0);
    let late = lab_submissions(
        c.net.id(),
        "lab-000",
        &c.lab_keys[0],
        Period(0),
        &c.net.roster().policy,
        LabConduct::Compliant,
        c.now,
        &mut rng,
    )
    .remove(0);
    // The lab hands it to the colluders only; they will vouch for it at the close.
    c.inject_late(late.clone());
    c.run_until(close.saturating_add(core::time::Duration::from_millis(1)));
    // Honest members refuse it now: the slot is closed.
    assert!(matches!(
        c.submit(MemberIndex(3), late),
        Err(accord_protocol::evidence::EvidenceError::Closed { .. })
    ));
    c.assert_live(0..1, 60_000);
    let refused = c
        .checker
        .culprits
        .iter()
        .filter(|(_, m, why)| m.0 < 2 && why.contains("vouched"))
        .count();
    assert!(
        refused > 0,
        "honest members refused the colluders' proposals: {:?}",
        c.checker.culprits
    );
    for d in c.engine(MemberIndex(3)).decided() {
        assert_eq!(
            d.statements[0].verdict,
            accord_protocol::policy::Verdict::NoAttestation
        );
    }
}

#[test]
fn crash_and_restart_catch_up() {
    let mut spec = ClusterSpec::new(7, 5);
    spec.seed = 11;
    let mut c = Cluster::new(spec);
    let start = c
        .net
        .schedule()
        .start(Period(0))
        .saturating_add(core::time::Duration::from_millis(1000));
    c.run_until(start);
    c.submit_period(Period(0), conduct);
    // Two members (f = 2) crash just before the close; the rest still sign.
    let close = c.net.schedule().close(Period(0));
    c.run_until(close.saturating_sub(core::time::Duration::from_millis(10)));
    c.crash(MemberIndex(0));
    c.crash(MemberIndex(5));
    c.assert_live(0..1, 60_000);
    c.restart(MemberIndex(0));
    c.restart(MemberIndex(5));
    let ok = c.run_until_condition(
        c.now.saturating_add(core::time::Duration::from_secs(5)),
        |c| c.all_decided([Period(0)]),
    );
    assert!(ok, "restarted members caught up on period 0");
    let next = c
        .net
        .schedule()
        .start(Period(1))
        .saturating_add(core::time::Duration::from_millis(1000));
    c.run_until(next);
    c.submit_period(Period(1), conduct);
    c.assert_live(1..2, 60_000);
}

#[test]
fn more_than_f_crashed_blocks_until_restart() {
    let mut c = Cluster::new(ClusterSpec::new(4, 3));
    c.run_until(
        c.net
            .schedule()
            .start(Period(0))
            .saturating_add(core::time::Duration::from_millis(1000)),
    );
    c.submit_period(Period(0), conduct);
    c.crash(MemberIndex(1));
    c.crash(MemberIndex(2));
    let close = c.net.schedule().close(Period(0));
    c.run_until(close.saturating_add(core::time::Duration::from_secs(30)));
    assert!(
        c.checker.cosigned.is_empty(),
        "fewer than t members cannot sign"
    );
    c.restart(MemberIndex(1));
    c.restart(MemberIndex(2));
    c.assert_live(0..1, 120_000);
}

#[test]
fn dkg_over_the_network_then_verdicts() {
    for (n, seed) in [(4, 1), (7, 2), (10, 3)] {
        let mut spec = ClusterSpec::new(n, 4);
        spec.dkg = true;
        spec.seed = seed;
        let mut c = Cluster::new(spec);
        c.start_dkg(1);
        let honest = c.honest();
        let ok = c.run_until_condition(
            c.now.saturating_add(core::time::Duration::from_secs(30)),
            |c| c.checker.dkg_complete.len() == honest.len(),
        );
        assert!(
            ok,
            "DKG did not complete for n={n}: {:?}",
            c.checker.dkg_aborted
        );
        let keys: std::collections::BTreeSet<_> = c.checker.dkg_complete.values().collect();
        assert_eq!(keys.len(), 1, "every member holds the same group key");
        for p in 0..2 {
            c.run_until(
                c.net
                    .schedule()
                    .start(Period(p))
                    .saturating_add(core::time::Duration::from_millis(1000)),
            );
            c.submit_period(Period(p), conduct);
        }
        c.assert_live(0..2, 60_000);
    }
}
