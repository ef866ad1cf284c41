//! Issue 13: the page a node serves, in headless Chromium (tests/browser/status_page.py): it
//! loads and shows the node ready, shows the verdicts and their evidence digests when a period
//! is co-signed (without a reload), verifies a genuine statement in the browser (green) and
//! refuses tampered ones (red, with the reason), with WebCrypto and again with WebCrypto taken
//! away (the vendored TweetNaCl and js-sha256 verify then). Screenshots go to
//! `target/test-artefacts/status-page/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

#[test]
fn the_page_shows_status_verdicts_and_verifies_statements() {
    let python = venv_tool("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/status_page.py");
    let out_dir = artefact_dir("status-page");

    let mut c = Cluster::new(4, 2, 10, true);
    c.start_all();
    c.wait_connected();
    // Evidence goes in early in a period, so the browser is up before the period closes.
    let period = c.open_period(8_000);
    let receipts = c.submit_period(period, &[LabConduct::Compliant, LabConduct::OverCompute]);

    let mut cmd = Command::new(&python);
    cmd.arg(&script).arg(&c.nodes[0].api).arg(&out_dir);
    for r in &receipts {
        cmd.arg(digest_hex(&r.digest));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the page test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK:"), "{stdout}");
    for shot in [
        "page-before-verdicts.png",
        "page-status.png",
        "page-verify-genuine.png",
        "page-verify-tampered.png",
    ] {
        let len = std::fs::metadata(out_dir.join(shot)).unwrap().len();
        assert!(len > 10_000, "{shot} is only {len} bytes");
    }
    // The statements the page showed are the ones the network co-signed.
    assert_eq!(
        c.wait_statements(0, period, Duration::from_secs(5)).len(),
        2
    );
}
