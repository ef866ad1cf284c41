//! Issue 13: `accord inspect` names and pretty-prints each kind of Accord file — a co-signed
//! statement (and catches an edited one), a trust bundle, an evidence item, a roster, a wire
//! message — and shows only metadata of key files, never a secret byte.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use accord_protocol::codec;
use accord_protocol::fixtures::LabConduct;
use accord_protocol::message::Message;
use common::*;

fn inspect(path: &std::path::Path) -> (bool, String) {
    let out = accord(&["inspect", path.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_kind_of_file_is_explained_and_no_secret_is_shown() {
    let mut c = Cluster::new(4, 1, 6, true);
    let dir = c.dir.path().to_path_buf();

    // Key files: metadata, the identity's public key, and not one byte of a secret.
    let identity = &c.layout.members[0]
        .config
        .parent()
        .unwrap()
        .join("identity.key");
    let (ok, text) = inspect(identity);
    assert!(ok, "{text}");
    let key = c.member_key(0);
    assert!(text.contains("secret file (metadata only"), "{text}");
    assert!(text.contains(&key.public().to_hex()), "{text}");
    assert!(text.contains("permissions: 600"), "{text}");
    assert!(
        !text.contains(&hex::encode(*key.seed())),
        "the seed was shown"
    );
    let share = c.layout.members[0].data_dir.join("share.key");
    let share_bytes = std::fs::read(&share).unwrap();
    let (ok, text) = inspect(&share);
    assert!(ok && text.contains("a key share?"), "{text}");
    let body = &share_bytes[share_bytes.iter().position(|b| *b == b'\n').unwrap() + 1..];
    assert!(
        !text.contains(&hex::encode(&body[..16])),
        "share bytes were shown"
    );

    // The roster and its network id.
    let (ok, text) = inspect(&c.layout.roster);
    assert!(ok && text.contains(&c.net.id().to_hex()), "{text}");

    // An evidence item, a statement, the trust bundle, from a live network.
    c.start_all();
    c.wait_connected();
    let period = c.open_period(3_000);
    let ev = c.evidence(0, period, LabConduct::Compliant).remove(0);
    let ev_path = dir.join("evidence.json");
    std::fs::write(&ev_path, serde_json::to_string(&ev).unwrap()).unwrap();
    let (ok, text) = inspect(&ev_path);
    assert!(ok && text.contains(&ev.digest().to_hex()), "{text}");
    block_on(c.nodes[0].client.submit(&ev)).unwrap();
    let statement = c
        .wait_statements(0, period, Duration::from_secs(40))
        .remove(0);
    let st_path = dir.join("statement.json");
    std::fs::write(&st_path, serde_json::to_string(&statement).unwrap()).unwrap();
    let (ok, text) = inspect(&st_path);
    assert!(ok, "{text}");
    assert!(
        text.contains("the exact bytes the decoded fields sign"),
        "{text}"
    );
    assert!(
        text.contains(&format!("lab {} period {}", statement.lab, period.0)),
        "{text}"
    );
    let mut edited = serde_json::to_value(&statement).unwrap();
    edited["lab"] = "lab-999".into();
    std::fs::write(&st_path, edited.to_string()).unwrap();
    let (_, text) = inspect(&st_path);
    assert!(text.contains("DOES NOT match"), "{text}");
    let bundle_path = dir.join("bundle.json");
    std::fs::write(&bundle_path, c.trust_bundle_json(0)).unwrap();
    let (ok, text) = inspect(&bundle_path);
    assert!(
        ok && text.contains("trust bundle of") && text.contains("3 of 4"),
        "{text}"
    );

    // A wire message, as raw bytes and as hex.
    let bytes = codec::encode(&Message::Evidence(Arc::new(ev))).unwrap();
    let raw = dir.join("message.bin");
    std::fs::write(&raw, &bytes).unwrap();
    let (ok, text) = inspect(&raw);
    assert!(
        ok && text.starts_with("wire message") && text.contains("Evidence"),
        "{text}"
    );
    std::fs::write(&raw, hex::encode(&bytes)).unwrap();
    let (ok, text) = inspect(&raw);
    assert!(ok && text.starts_with("wire message"), "{text}");

    // Anything else is refused with a reason.
    std::fs::write(&raw, b"\x01\x02garbage").unwrap();
    let (ok, text) = inspect(&raw);
    assert!(!ok && text.contains("not an Accord record"), "{text}");
    std::fs::write(&raw, b"{\"hello\": 1}").unwrap();
    let (ok, text) = inspect(&raw);
    assert!(!ok && text.contains("not a statement"), "{text}");
}
