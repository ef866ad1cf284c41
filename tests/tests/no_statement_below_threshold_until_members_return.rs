//! FAULTS 26 (second half), issue 3: with n = 5 and t = 4, SIGKILL two members: no statement is
//! co-signed, and `status` and `/readyz` say "fewer than t members reachable"; restarting them
//! brings the statements, and the restarted members catch up on the slots they missed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn two_killed_members_block_verdicts_until_they_return() {
    let mut c = Cluster::new(5, 3, 10, true);
    c.start_all();
    c.wait_connected();
    c.nodes[3].kill9();
    c.nodes[4].kill9();

    let period = c.open_period(4_000);
    c.submit_period(
        period,
        &[
            LabConduct::Compliant,
            LabConduct::OverCompute,
            LabConduct::Silent,
        ],
    );
    c.sleep_past_close(period, Duration::from_secs(4));
    for i in 0..3 {
        assert!(
            c.statements(i, period).is_empty(),
            "three members out of five cannot co-sign with t = 4"
        );
        let s = c.nodes[i].status().unwrap();
        assert!(!s.ready);
        let reason = s.reason.unwrap();
        assert!(
            reason.contains("fewer than t members reachable"),
            "{reason}"
        );
        assert!(s.pending_units >= 1, "the period's unit is pending");
    }
    let resp = block_on(reqwest::get(format!("{}/readyz", c.nodes[0].api))).unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = block_on(resp.json()).unwrap();
    assert_eq!(body["ready"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("fewer than t members reachable")
    );

    c.nodes[3].start();
    c.nodes[4].start();
    let reference = c.wait_statements(0, period, Duration::from_secs(45));
    assert_eq!(reference.len(), 3);
    for i in 1..5 {
        assert_eq!(
            c.wait_statements(i, period, Duration::from_secs(20)),
            reference,
            "member {i} (restarted: {}) holds the same statements",
            i >= 3
        );
    }
    let resp = block_on(reqwest::get(format!("{}/readyz", c.nodes[4].api))).unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}
