//! FAULTS 23, issue 3: a key share readable by others, a missing passphrase and a wrong
//! passphrase each stop `accord run` at start-up with a clear error; the right passphrase starts.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::*;

fn start_and_expect_failure(node: &mut NodeProc, needle: &str) {
    // The log file is appended to across starts: look only at what this start wrote.
    let before = node.log_text().len();
    node.start();
    let status = wait_for(Duration::from_secs(20), "node exits", || node.exited());
    assert!(!status.success());
    let log = node.log_text();
    let this_start = log.get(before..).unwrap_or_default();
    assert!(
        this_start.contains(needle),
        "expected {needle:?} in:\n{this_start}"
    );
}

#[test]
fn unsafe_permissions_and_bad_passphrases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pass_file = dir.path().join("pass");
    std::fs::write(&pass_file, "correct horse battery staple\n").unwrap();
    std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong_file = dir.path().join("wrong");
    std::fs::write(&wrong_file, "not the passphrase\n").unwrap();
    std::fs::set_permissions(&wrong_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let mut c = Cluster::new(3, 1, 60, false);
    // Re-create member 0's secrets sealed with the passphrase, with a dealt key share.
    let net_dir = dir.path().join("sealed");
    let out = accord(&[
        "testnet",
        "--dir",
        net_dir.to_str().unwrap(),
        "--members",
        "3",
        "--labs",
        "1",
        "--dealer",
        "--passphrase-file",
        pass_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layout = accord_node::testnet::Layout::load(&net_dir).unwrap();
    let node = &mut c.nodes[0];
    node.config = layout.members[0].config.clone();
    node.client = accord_observer::client::Client::new(&layout.members[0].api);
    node.api = layout.members[0].api.clone();
    let share = layout.members[0].data_dir.join("share.key");
    let identity = layout.members[0]
        .config
        .parent()
        .unwrap()
        .join("identity.key");
    assert!(
        accord_node::keyfile::is_sealed(&share).unwrap(),
        "the key share is sealed with the passphrase"
    );

    // No passphrase.
    start_and_expect_failure(node, "is encrypted with a passphrase");
    // Wrong passphrase.
    node.env = vec![(
        "ACCORD_PASSPHRASE_FILE".into(),
        wrong_file.display().to_string(),
    )];
    start_and_expect_failure(node, "wrong passphrase");
    // Right passphrase, but the key share is readable by others.
    node.env = vec![(
        "ACCORD_PASSPHRASE_FILE".into(),
        pass_file.display().to_string(),
    )];
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o644)).unwrap();
    start_and_expect_failure(node, "must not be accessible by group or others");
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The identity file too.
    std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o640)).unwrap();
    start_and_expect_failure(node, "chmod 600");
    std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Everything right: it starts, with its dealt key.
    node.start();
    let s = wait_for(Duration::from_secs(20), "node up", || node.status());
    assert!(s.group_key.is_some());
    // The passphrase itself never reaches the log.
    assert!(!node.log_text().contains("correct horse"));
}
