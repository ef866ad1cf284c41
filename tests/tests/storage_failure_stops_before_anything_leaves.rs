//! FAULTS 22: when the node's storage fails (here a real EFBIG from the kernel: the file size
//! limit of the running process is lowered under the database), nothing is acknowledged and
//! nothing leaves the process after the failed commit: the node stops with a clear error instead
//! of risking a message whose record is not durable. Restarted with working storage, it resumes.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn a_failed_commit_stops_the_node_and_nothing_is_gossiped() {
    let mut c = Cluster::new(4, 1, 30, true);
    c.start_all();
    c.wait_connected();
    let period = c.open_period(8_000);
    let victim = 1;
    let pid = c.nodes[victim].pid().to_string();
    let out = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=4096:4096"])
        .output()
        .expect("prlimit (util-linux) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ev = c.evidence(0, period, LabConduct::Compliant).remove(0);
    let digest = ev.digest();
    let answer = block_on(c.nodes[victim].client.submit(&ev));
    match &answer {
        Err(accord_observer::client::ClientError::Api { status, code, .. }) => {
            assert_eq!((*status, code.as_str()), (503, "storage-failed"));
        }
        // The node may already be gone when the answer would be written.
        Err(accord_observer::client::ClientError::Unreachable { .. }) => {}
        other => panic!("a submission must not be acknowledged when storage fails: {other:?}"),
    }
    let status = wait_for(Duration::from_secs(10), "the node stops", || {
        c.nodes[victim].exited()
    });
    assert!(!status.success());
    let log = c.nodes[victim].log_text();
    assert!(log.contains("storage commit failed"), "{log}");

    // The item was never gossiped: its broadcast comes after the failed Persist.
    std::thread::sleep(Duration::from_secs(1));
    for i in [0, 2, 3] {
        let url = format!("{}/v1/evidence/{}", c.nodes[i].api, digest);
        assert_eq!(block_on(reqwest::get(url)).unwrap().status().as_u16(), 404);
        assert_eq!(c.nodes[i].status().unwrap().evidence_items, 0);
    }

    // With working storage the node restarts from its records and takes submissions again.
    c.nodes[victim].start();
    c.nodes[victim].wait_up();
    let receipt = block_on(c.nodes[victim].client.submit(&ev)).unwrap();
    assert_eq!(receipt.digest, digest);
}
