//! FAULTS 39 (and 27 with real processes): members in their own network namespaces, joined by
//! a user-space switch (`common/netns.rs`). Partitioned into sides smaller than t, nothing is
//! signed, and after healing every slot is; a member cut off for several periods catches up;
//! with frames lost and delayed on every link, every slot is still decided. In every case all
//! members end with the same statements, each verifies under the trust bundle, and no member
//! is blamed for the network's faults.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::time::Duration;

use accord_node::clock::now;
use accord_observer::export::StatementExport;
use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::Period;
use accord_protocol::verify::TrustBundle;
use common::*;
use netns::{FaultNet, Faults};

const CONDUCT: [LabConduct; 2] = [LabConduct::Compliant, LabConduct::DoubleSigns];

/// Submits every lab's evidence for `period` round robin over `members` only.
fn submit_to(c: &Cluster, members: &[usize], period: Period) {
    let mut k = 0;
    for lab in 0..c.layout.labs.len() {
        for ev in c.evidence(lab, period, CONDUCT[lab % CONDUCT.len()]) {
            let node = &c.nodes[members[k % members.len()]];
            k += 1;
            block_on(node.client.submit(&ev)).unwrap();
        }
    }
}

/// Every member in `members` holds the same statements for `period` (waiting up to `limit`),
/// each verifies, and the verdicts are the ones the evidence calls for (so every item, from
/// whichever side it was submitted on, is in them).
fn agreed(c: &Cluster, members: &[usize], period: Period, limit: Duration) -> Vec<StatementExport> {
    let reference = c.wait_statements(members[0], period, limit);
    for &i in &members[1..] {
        assert_eq!(
            c.wait_statements(i, period, limit),
            reference,
            "{} and {} hold different statements for period {}",
            c.nodes[members[0]].name,
            c.nodes[i].name,
            period.0
        );
    }
    let bundle: TrustBundle = serde_json::from_str(&c.trust_bundle_json(members[0])).unwrap();
    for s in &reference {
        s.verify(&bundle).unwrap();
        let lab = c.layout.labs.iter().position(|l| l.id == s.lab).unwrap();
        let want = match CONDUCT[lab % CONDUCT.len()] {
            LabConduct::Compliant => "compliant",
            _ => "violation",
        };
        assert_eq!(s.verdict_kind, want, "period {} lab {}", period.0, s.lab);
    }
    reference
}

/// No member counted a culprit: the network's faults are nobody's offence.
fn nobody_blamed(c: &Cluster) {
    for n in &c.nodes {
        for line in n.metrics().lines() {
            if line.starts_with("accord_culprits_total{") {
                assert!(
                    line.trim_end().ends_with(" 0"),
                    "{} blamed someone: {line}",
                    n.name
                );
            }
        }
    }
}

#[test]
fn sides_smaller_than_t_sign_nothing_and_every_slot_is_decided_after_healing() {
    // n = 4, t = 3: sides of two cannot sign.
    let fnet = FaultNet::new(
        4,
        &[0, 1],
        Faults {
            delay_ms: 2,
            ..Faults::default()
        },
    );
    let mut c = fnet.cluster(2, 10);
    c.start_all();
    c.wait_connected();
    let period = c.open_period(6_000);
    fnet.partition();
    // Each lab's items are spread over both sides (the double-signer's two attestations land
    // on different sides), so only a verdict over the healed network sees them all.
    submit_to(&c, &[0, 2, 1, 3], period);
    c.sleep_past_close(period, Duration::from_secs(10));
    for i in 0..4 {
        assert!(
            c.statements(i, period).is_empty(),
            "{} holds a statement signed by fewer than t members",
            c.nodes[i].name
        );
    }
    fnet.heal();
    agreed(&c, &[0, 1, 2, 3], period, Duration::from_secs(90));
    nobody_blamed(&c);
    let (forwarded, _) = fnet.counters();
    assert!(
        forwarded > 0,
        "the members' traffic went through the switch"
    );
}

#[test]
fn a_member_cut_off_for_several_periods_catches_up() {
    let fnet = FaultNet::new(
        4,
        &[],
        Faults {
            delay_ms: 2,
            ..Faults::default()
        },
    );
    let mut c = fnet.cluster(2, 8);
    c.start_all();
    c.wait_connected();
    let first = c.open_period(5_000);
    fnet.cut(3);
    let periods: Vec<Period> = (0..3).map(|k| Period(first.0 + k)).collect();
    let mut decided = Vec::new();
    for &p in &periods {
        if p != first {
            let wait = c.net.schedule().start(p).saturating_duration_since(now());
            std::thread::sleep(wait + Duration::from_millis(100));
        }
        submit_to(&c, &[0, 1, 2], p);
    }
    for &p in &periods {
        // The three connected members are exactly t: all of them sign.
        decided.push(agreed(&c, &[0, 1, 2], p, Duration::from_secs(60)));
    }
    for &p in &periods {
        assert!(
            c.statements(3, p).is_empty(),
            "the cut-off member saw period {}",
            p.0
        );
    }
    fnet.restore(3);
    for (k, &p) in periods.iter().enumerate() {
        assert_eq!(
            c.wait_statements(3, p, Duration::from_secs(90)),
            decided[k],
            "the member that was cut off holds other statements for period {}",
            p.0
        );
    }
    nobody_blamed(&c);
}

#[test]
fn loss_and_delay_on_every_link_still_yield_every_verdict() {
    let fnet = FaultNet::new(
        4,
        &[],
        Faults {
            loss: 0.1,
            delay_ms: 20,
            jitter_ms: 10,
        },
    );
    let mut c = fnet.cluster(2, 10);
    c.start_all();
    c.wait_connected();
    let first = c.open_period(6_000);
    for k in 0..2 {
        let p = Period(first.0 + k);
        if k > 0 {
            let wait = c.net.schedule().start(p).saturating_duration_since(now());
            std::thread::sleep(wait + Duration::from_millis(100));
        }
        submit_to(&c, &[0, 1, 2, 3], p);
    }
    for k in 0..2 {
        agreed(
            &c,
            &[0, 1, 2, 3],
            Period(first.0 + k),
            Duration::from_secs(90),
        );
    }
    nobody_blamed(&c);
    let (forwarded, lost) = fnet.counters();
    let rate = lost as f64 / (forwarded + lost).max(1) as f64;
    assert!(
        forwarded > 1_000 && (0.05..0.15).contains(&rate),
        "the switch lost {lost} of {} frames",
        forwarded + lost
    );
}
