//! FAULTS 2: a member is SIGKILLed after it accepted a proposal with a fresh nonce commitment
//! and before it signed (the `crash-after-accept` failpoint ignores the signing request and
//! kills the process). After a restart the commitments it issued before the crash are never
//! used: none of its protection records (every share it ever released) names one of them. The
//! period is still co-signed, and the restarted member catches up.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use accord_protocol::Record;
use accord_protocol::fixtures::LabConduct;
use common::*;

fn accepted_commitments(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains("accept sent with a fresh nonce commitment"))
        .filter_map(|l| l.split("commitment=").nth(1))
        .map(|rest| rest.chars().take(64).collect())
        .collect()
}

#[test]
fn nonces_committed_before_a_crash_are_never_used() {
    let mut c = Cluster::new(5, 2, 8, true);
    let period = c.open_period(6_000);
    // Not the period's first coordinator, so it is a plain signer.
    let victim = ((period.0 + 2) % 5) as usize;
    c.nodes[victim].env = vec![("ACCORD_FAILPOINT".into(), "crash-after-accept".into())];
    c.start_all();
    c.wait_connected();
    let period = c.open_period(3_000);
    c.submit_period(period, &[LabConduct::Compliant, LabConduct::OverCluster]);

    let status = wait_for(
        Duration::from_secs(40),
        "the victim crashes after accepting",
        || c.nodes[victim].exited(),
    );
    assert!(!status.success());
    let before = accepted_commitments(&c.nodes[victim].log_text());
    assert!(!before.is_empty(), "the victim accepted before crashing");

    let others: Vec<usize> = (0..5).filter(|i| *i != victim).collect();
    let reference = c.wait_statements(others[0], period, Duration::from_secs(30));
    c.nodes[victim].env.clear();
    c.nodes[victim].start();
    assert_eq!(
        c.wait_statements(victim, period, Duration::from_secs(30)),
        reference,
        "the restarted member catches up"
    );
    // Let it take part in the next period's signing too, then inspect its records.
    let next = c.open_period(4_000);
    c.submit_period(next, &[LabConduct::Compliant, LabConduct::Silent]);
    c.wait_statements(victim, next, Duration::from_secs(30));
    assert!(c.nodes[victim].term().success());

    let store = accord_node::store::Store::open(&c.nodes[victim].data_dir, c.net.id()).unwrap();
    let signed: Vec<String> = store
        .records()
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Signed(s) => Some(s.commitment.to_hex()),
            _ => None,
        })
        .collect();
    for commitment in &signed {
        assert!(
            !before.contains(commitment),
            "commitment {commitment} issued before the crash was used after it"
        );
    }
    // The protection index agrees with the records: one package per commitment.
    let protection = store.protection().unwrap();
    assert_eq!(protection.len(), signed.len());
    for (commitment, _, _) in &protection {
        assert!(!before.contains(&commitment.to_hex()));
    }
    let after = accepted_commitments(&c.nodes[victim].log_text());
    assert!(
        after.len() > before.len(),
        "the member accepted again after the restart"
    );
}
