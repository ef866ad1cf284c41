//! FAULTS 25, invariant 7, issue 3: an attestation acknowledged to its submitter is durable: a
//! SIGKILL right after the acknowledgement loses nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn sigkill_right_after_the_receipt_loses_nothing() {
    let mut c = Cluster::new(3, 4, 60, true);
    c.nodes[0].start();
    c.nodes[0].wait_up();
    let period = c.open_period(15_000);
    let mut acknowledged = Vec::new();
    for lab in 0..4 {
        let ev = c.evidence(lab, period, LabConduct::Compliant).remove(0);
        let receipt = block_on(c.nodes[0].client.submit(&ev)).unwrap();
        assert!(!receipt.duplicate);
        // SIGKILL immediately after the acknowledgement: no shutdown code runs.
        c.nodes[0].kill9();
        acknowledged.push((receipt.digest, ev));
        c.nodes[0].start();
        c.nodes[0].wait_up();
    }
    for (digest, ev) in &acknowledged {
        let url = format!("{}/v1/evidence/{}", c.nodes[0].api, digest);
        let resp = block_on(reqwest::get(url)).unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "acknowledged item {digest} lost"
        );
        let stored: accord_protocol::evidence::Evidence = block_on(resp.json()).unwrap();
        assert_eq!(&stored, ev);
        // The restored engine holds it too: resubmitting is a duplicate, not a new item.
        let again = block_on(c.nodes[0].client.submit(ev)).unwrap();
        assert!(
            again.duplicate,
            "the engine lost {digest} across the restart"
        );
    }
    let s = wait_for(Duration::from_secs(5), "status", || c.nodes[0].status());
    assert_eq!(s.evidence_items, 4);
}
