//! Issue 3: the optional QUIC transport (cargo feature `quic`). Four members whose roster
//! addresses are QUIC-only co-sign every slot of a period, and a stranger is still refused.
//!
//! `cargo test -p accord-tests --features quic --test quic_transport_signs_verdicts`
#![cfg(feature = "quic")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn members_on_quic_co_sign_every_slot() {
    let mut c = Cluster::with_args(4, 2, 10, true, &["--quic"]);
    assert!(
        c.layout.members.iter().all(|m| m.p2p.ends_with("/quic-v1")),
        "the testnet advertises QUIC addresses only"
    );
    c.start_all();
    c.wait_connected();
    let period = c.open_period(5_000);
    c.submit_period(period, &[LabConduct::Compliant, LabConduct::OverCompute]);
    let reference = c.wait_statements(0, period, Duration::from_secs(40));
    assert_eq!(reference.len(), 2);
    for i in 1..4 {
        assert_eq!(
            c.wait_statements(i, period, Duration::from_secs(10)),
            reference
        );
    }
    assert!(c.nodes[0].log_text().contains("quic-v1"));
}
