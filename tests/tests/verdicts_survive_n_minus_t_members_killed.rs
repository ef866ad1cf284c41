//! FAULTS 26 (first half), issue 3: with n = 5 and t = 4, SIGKILL one member mid-period (the
//! period's first coordinator): every slot is still co-signed by the other four.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn killing_one_member_mid_period_does_not_stop_verdicts() {
    let mut c = Cluster::new(5, 3, 10, true);
    c.start_all();
    c.wait_connected();
    let period = c.open_period(5_000);
    c.submit_period(
        period,
        &[
            LabConduct::Compliant,
            LabConduct::DoubleSigns,
            LabConduct::Silent,
        ],
    );
    // The first coordinator of a period unit is member `period mod n`: kill that one.
    let victim = (period.0 % 5) as usize;
    std::thread::sleep(Duration::from_millis(500));
    c.nodes[victim].kill9();

    let survivors: Vec<usize> = (0..5).filter(|i| *i != victim).collect();
    let reference = c.wait_statements(survivors[0], period, Duration::from_secs(30));
    assert_eq!(reference.len(), 3);
    for &i in &survivors[1..] {
        assert_eq!(
            c.wait_statements(i, period, Duration::from_secs(10)),
            reference
        );
    }
    let s = c.nodes[survivors[0]].status().unwrap();
    assert!(
        s.ready,
        "4 of 5 reachable with t = 4 is ready: {:?}",
        s.reason
    );
    assert_eq!(s.reachable, 4);
}
