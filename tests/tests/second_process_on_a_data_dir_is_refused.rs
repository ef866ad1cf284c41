//! FAULTS 24, issue 3: a second `accord run` on a data directory in use is refused with a clear
//! error, and the first node keeps running.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn second_node_on_the_same_data_dir_exits_with_a_clear_error() {
    let mut c = Cluster::new(3, 1, 60, true);
    c.nodes[0].start();
    c.nodes[0].wait_up();

    let out = accord(&[
        "run",
        "--config",
        c.nodes[0].config.to_str().unwrap(),
        // Different ports, so only the data directory is shared.
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--api",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another accord process"),
        "unclear error: {err}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        c.nodes[0].exited().is_none(),
        "the first node must keep running"
    );
    assert!(c.nodes[0].status().is_some());
}
