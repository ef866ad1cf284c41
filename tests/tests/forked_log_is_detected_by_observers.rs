//! FAULTS 32: a node serving a rewritten or forked log, or hiding a statement the other nodes
//! have, is detected by `accord observe`.
//!
//! 4 members (t = 3) co-sign a period; every member's log is cosigned by the 3 others and
//! `accord observe` passes (and `accord verify --log-url` verifies a node's whole log). Then one
//! member is stopped and its redb log file rewritten the way a dishonest operator would (the
//! node itself has no switch for this): first the last two entries swapped (same statements,
//! same size, another root: a fork), then the last entry dropped and its statement deleted
//! (hiding a verdict). The observer must report a rewritten log against its saved state, a split
//! view against what the witnesses cosigned, and the missing slot; the honest members alone
//! still pass.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use accord_node::store::log;
use accord_protocol::fixtures::LabConduct;
use accord_protocol::transparency::{decode_log_entry, verify_checkpoint};
use common::*;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

const STATEMENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("statements");

/// Rewrites the stopped node's log: `keep` of the current entries, in the given order.
fn rewrite_log(data_dir: &Path, order: impl FnOnce(Vec<Vec<u8>>) -> Vec<Vec<u8>>) -> Vec<u8> {
    let db = redb::Database::open(data_dir.join(accord_node::store::DB_FILE)).unwrap();
    let old: Vec<Vec<u8>> = {
        let rx = db.begin_read().unwrap();
        let t = rx.open_table(log::LOG_ENTRIES).unwrap();
        t.iter()
            .unwrap()
            .map(|r| r.unwrap().1.value().to_vec())
            .collect()
    };
    let last = old.last().unwrap().clone();
    let new = order(old);
    let tx = db.begin_write().unwrap();
    tx.delete_table(log::LOG_ENTRIES).unwrap();
    tx.delete_table(log::LOG_HASHES).unwrap();
    tx.delete_table(log::LOG_LEAVES).unwrap();
    for e in &new {
        log::append(&tx, e).unwrap();
    }
    tx.commit().unwrap();
    last
}

fn observe(c: &Cluster, nodes: &[usize], bundle: &Path, state: &Path) -> (bool, String) {
    let urls: Vec<String> = nodes.iter().map(|&i| c.nodes[i].api.clone()).collect();
    let out = accord(&[
        "observe",
        "--trust",
        bundle.to_str().unwrap(),
        "--nodes",
        &urls.join(","),
        "--state",
        state.to_str().unwrap(),
        "--witnesses",
        "2",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_forked_rewritten_or_hiding_log_is_reported_and_honest_logs_pass() {
    let mut c = Cluster::new(4, 3, 10, true);
    c.start_all();
    c.wait_connected();
    let period = c.open_period(5_000);
    c.submit_period(
        period,
        &[
            LabConduct::Compliant,
            LabConduct::OverCompute,
            LabConduct::Silent,
        ],
    );
    for i in 0..4 {
        assert_eq!(
            c.wait_statements(i, period, Duration::from_secs(30)).len(),
            3
        );
    }
    let bundle_json = c.trust_bundle_json(0);
    let bundle: accord_protocol::TrustBundle = serde_json::from_str(&bundle_json).unwrap();
    let bundle_path = c.dir.path().join("trust-bundle.json");
    std::fs::write(&bundle_path, &bundle_json).unwrap();

    // Every member's checkpoint gets cosigned by the three other members.
    wait_for(
        Duration::from_secs(30),
        "every log cosigned by 3 witnesses",
        || {
            c.nodes
                .iter()
                .all(|n| {
                    let note = block_on(n.client.get_text("/v1/log/checkpoint", 65536)).unwrap();
                    let cp = verify_checkpoint(note.as_bytes(), &bundle.logs).unwrap();
                    cp.size == 3 && cp.cosigners.len() == 3
                })
                .then_some(())
        },
    );

    let state = c.dir.path().join("observer.json");
    let (ok, text) = observe(&c, &[0, 1, 2, 3], &bundle_path, &state);
    assert!(ok, "honest network: {text}");
    assert_eq!(text.matches("log   ").count(), 4, "{text}");
    assert!(!text.contains("FINDING"), "{text}");

    let out = accord(&[
        "verify",
        "--trust",
        bundle_path.to_str().unwrap(),
        "--log-url",
        &c.nodes[1].api,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("OK ").count(),
        3
    );

    // Fork: member 3's operator swaps its last two entries (same size, same statements, another
    // root) and restarts it.
    let victim = 3;
    c.nodes[victim].term();
    rewrite_log(&c.nodes[victim].data_dir, |mut e| {
        let n = e.len();
        e.swap(n - 1, n - 2);
        e
    });
    c.nodes[victim].start();
    c.nodes[victim].wait_up();
    let (ok, text) = observe(&c, &[0, 1, 2, 3], &bundle_path, &state);
    assert!(!ok, "a forked log must be reported: {text}");
    assert!(text.contains("REWRITTEN LOG"), "{text}");
    assert!(text.contains("SPLIT VIEW"), "{text}");
    assert!(
        !text.contains("MISSING SLOT"),
        "the same statements: {text}"
    );
    // The honest members' witnesses refuse the forked checkpoint and keep it as evidence.
    wait_for(
        Duration::from_secs(20),
        "a witness records the fork",
        || {
            let w: accord_observer::wire::WitnessState =
                block_on(c.nodes[0].client.get("/v1/witness")).unwrap();
            w.forks.iter().any(|f| f.member == 3).then_some(())
        },
    );

    // Hiding: drop the last entry and its statement, restart.
    c.nodes[victim].term();
    let hidden = rewrite_log(&c.nodes[victim].data_dir, |mut e| {
        e.pop();
        e
    });
    let hidden = decode_log_entry(&bundle.network_id, &hidden).unwrap();
    {
        let db = redb::Database::open(c.nodes[victim].data_dir.join(accord_node::store::DB_FILE))
            .unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(STATEMENTS)
            .unwrap()
            .remove((
                hidden.statement.slot.period.0,
                hidden.statement.slot.lab.as_str(),
            ))
            .unwrap();
        tx.commit().unwrap();
    }
    c.nodes[victim].start();
    c.nodes[victim].wait_up();
    let (ok, text) = observe(&c, &[0, 1, 2, 3], &bundle_path, &state);
    assert!(!ok, "a hiding log must be reported: {text}");
    assert!(text.contains("MISSING SLOT"), "{text}");
    assert!(
        text.contains(&format!("lab {}", hidden.statement.slot.lab)),
        "{text}"
    );
    assert!(text.contains("REWRITTEN LOG"), "{text}");

    // The honest members on their own are consistent (findings name only the culprit).
    let fresh = c.dir.path().join("observer-honest.json");
    let (ok, text) = observe(&c, &[0, 1, 2], &bundle_path, &fresh);
    assert!(ok, "honest members alone: {text}");
}
