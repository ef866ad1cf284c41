//! Whole networks of engines in virtual time: DKG, verdicts for every slot, faults.

use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::{MemberIndex, Period, SigningMode};
use accord_protocol::testkit::{Behaviour, Cluster, ClusterSpec};

fn conduct(i: usize) -> LabConduct {
    [LabConduct::Compliant, LabConduct::OverCompute, LabConduct::Silent, LabConduct::DoubleSigns, LabConduct::OverCluster][i % 5]
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
    assert!(c.observer.honest_blamed(&c.honest()).is_empty());
    eprintln!("steps {}", c.steps);
}

#[test]
fn four_members_sign_every_slot_per_slot() {
    let mut spec = ClusterSpec::new(4, 5);
    spec.testnet.mode = SigningMode::PerSlot;
    let c = run(spec, 1);
    assert!(c.observer.honest_blamed(&c.honest()).is_empty());
}

#[test]
fn silent_minority_does_not_suppress() {
    let mut spec = ClusterSpec::new(7, 5);
    spec.behaviours = vec![Behaviour::Silent, Behaviour::Honest, Behaviour::Silent];
    let c = run(spec, 2);
    let _ = MemberIndex(0);
    assert!(c.observer.honest_blamed(&c.honest()).is_empty());
}

#[test]
fn debug_print() {
    let c = run(ClusterSpec::new(4, 5), 2);
    for d in c.engine(MemberIndex(1)).decided() {
        for s in &d.statements {
            eprintln!("{:?} {} {} items {:?}", d.unit, s.slot.lab, s.verdict.kind(), s.evidence.len());
        }
    }
    eprintln!("cosigned seen {} decided_at {:?} now {:?}", c.observer.cosigned.len(), c.observer.decided_at, c.now);
}
