//! FAULTS 20: the same evidence submitted again, to the same or another member, is recognised
//! by its content hash; the statement names it once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn the_same_attestation_twice_is_one_item() {
    let mut c = Cluster::new(4, 1, 8, true);
    c.start_all();
    c.wait_connected();
    let period = c.open_period(4_000);
    let ev = c.evidence(0, period, LabConduct::Compliant).remove(0);
    let first = block_on(c.nodes[0].client.submit(&ev)).unwrap();
    assert!(!first.duplicate);
    let again = block_on(c.nodes[0].client.submit(&ev)).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.digest, first.digest);
    // Gossip brings it to member 1, which then also sees a resubmission as a duplicate.
    wait_for(Duration::from_secs(5), "gossip reaches member 1", || {
        let url = format!("{}/v1/evidence/{}", c.nodes[1].api, first.digest);
        (block_on(reqwest::get(url)).unwrap().status().as_u16() == 200).then_some(())
    });
    let elsewhere = block_on(c.nodes[1].client.submit(&ev)).unwrap();
    assert!(elsewhere.duplicate);

    let statements = c.wait_statements(2, period, Duration::from_secs(30));
    assert_eq!(statements[0].evidence, vec![first.digest]);
    assert_eq!(statements[0].verdict_kind, "compliant");
    for i in 0..4 {
        assert_eq!(c.nodes[i].status().unwrap().evidence_items, 1);
    }
    assert!(
        c.nodes[0]
            .metrics()
            .contains("accord_submissions_total{reason=\"duplicate\"} 1")
    );
}
