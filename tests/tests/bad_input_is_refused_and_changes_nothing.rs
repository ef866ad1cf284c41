//! Issue 3: malformed or oversize JSON, bad signatures, the wrong network id, an unknown lab,
//! evidence for a closed or future period: HTTP 4xx with a message, `accord submit` exits
//! non-zero with a message, and nothing is stored.
#![allow(clippy::unwrap_used)]

mod common;

use accord_node::clock::now;
use accord_protocol::crypto::Digest;
use accord_protocol::evidence::Evidence;
use accord_protocol::fixtures::{LabConduct, attestation};
use accord_protocol::roster::Period;
use common::*;

fn post(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    })
}

#[test]
fn every_kind_of_bad_submission_gets_a_4xx_and_is_not_stored() {
    // Genesis 100 periods ago, so closed periods exist.
    let genesis = (now().as_millis() - 100 * 10_000).to_string();
    let mut c = Cluster::with_args(3, 1, 10, true, &["--genesis-ms", &genesis]);
    c.nodes[0].start();
    c.nodes[0].wait_up();
    let url = format!("{}/v1/evidence", c.nodes[0].api);
    let period = c.open_period(5_000);
    let lab = c.layout.labs[0].id.clone();
    let key = c.lab_key(0);
    let policy = c.net.roster().policy.clone();
    let att = |p: Period| {
        attestation(
            &lab,
            p,
            &policy,
            LabConduct::Compliant,
            now(),
            &mut rand::rngs::OsRng,
        )
    };
    let good = att(period).sign(c.net.id(), &key);

    let mut cases: Vec<(&str, Vec<u8>, u16, &str)> = Vec::new();
    cases.push((
        "malformed JSON",
        b"{not json".to_vec(),
        400,
        "malformed-json",
    ));
    cases.push((
        "missing fields",
        br#"{"Attestation": {}}"#.to_vec(),
        422,
        "malformed-json",
    ));
    cases.push(("oversize body", vec![b' '; 300 * 1024], 413, "too-large"));
    let mut bad_sig = good.clone();
    if let Evidence::Attestation { signature, .. } = &mut bad_sig {
        signature.0[3] ^= 1;
    }
    cases.push((
        "bad signature",
        serde_json::to_vec(&bad_sig).unwrap(),
        422,
        "bad-signature",
    ));
    let other_network = att(period).sign(&Digest([7; 32]), &key);
    cases.push((
        "wrong network id",
        serde_json::to_vec(&other_network).unwrap(),
        422,
        "bad-signature",
    ));
    let mut unknown = att(period);
    unknown.lab = "lab-unknown".into();
    cases.push((
        "unknown lab",
        serde_json::to_vec(&unknown.sign(c.net.id(), &key)).unwrap(),
        422,
        "unknown-lab",
    ));
    let closed = att(Period(period.0 - 3)).sign(c.net.id(), &key);
    cases.push((
        "closed period",
        serde_json::to_vec(&closed).unwrap(),
        422,
        "period-closed",
    ));
    let future = att(Period(period.0 + 5)).sign(c.net.id(), &key);
    cases.push((
        "future period",
        serde_json::to_vec(&future).unwrap(),
        422,
        "period-not-started",
    ));
    let mut late_clock = att(period);
    late_clock.issued_at = accord_protocol::Instant::from_millis(now().as_millis() + 3_600_000);
    cases.push((
        "issued in the future",
        serde_json::to_vec(&late_clock.sign(c.net.id(), &key)).unwrap(),
        422,
        "issued-in-future",
    ));

    for (what, body, status, code) in cases {
        let (got, body) = post(&url, body);
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(
            !body["message"].as_str().unwrap_or("").is_empty(),
            "{what} has a message"
        );
    }
    let s = c.nodes[0].status().unwrap();
    assert_eq!(s.evidence_items, 0, "nothing was stored");
    assert!(
        c.nodes[0]
            .metrics()
            .contains("accord_submissions_total{reason=\"refused\"} 6")
    );

    // The CLI: non-zero exit with the node's message.
    let f = c.dir.path().join("bad.json");
    std::fs::write(&f, serde_json::to_vec(&bad_sig).unwrap()).unwrap();
    let out = accord(&["submit", "--api", &c.nodes[0].api, f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-signature") && err.contains("bad signature"),
        "{err}"
    );
    std::fs::write(&f, b"[1, 2").unwrap();
    let out = accord(&["submit", "--api", &c.nodes[0].api, f.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not evidence JSON"));

    // And a good one still goes through, via the CLI.
    std::fs::write(&f, serde_json::to_vec(&good).unwrap()).unwrap();
    let out = accord(&["submit", "--api", &c.nodes[0].api, f.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.nodes[0].status().unwrap().evidence_items, 1);
}
