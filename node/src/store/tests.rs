//! The store's unit tests: locking, record order, network and schema checks, the superset rule,
//! compaction, and the observers' JSON built from canonical records.
#![allow(clippy::unwrap_used)]

use accord_observer::export::StatementExport;
use accord_protocol::SignedStatement;
use accord_protocol::crypto::{PublicKey, Signature};
use accord_protocol::policy::Verdict;
use accord_protocol::roster::Period;
use accord_protocol::statement::{BatchProof, Slot, Statement};
use accord_protocol::succession::SignedSuccession;

use super::*;

#[test]
fn second_open_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let id = Digest([1; 32]);
    let _first = Store::open(dir.path(), &id).unwrap();
    let err = Store::open(dir.path(), &id).unwrap_err();
    assert!(matches!(err, StorageError::Locked(_)), "{err}");
    assert!(err.to_string().contains("in use by another accord process"));
}

#[test]
fn records_survive_reopen_in_order_and_network_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let id = Digest([1; 32]);
    {
        let s = Store::open(dir.path(), &id).unwrap();
        s.commit(&[Record::DkgStarted { ceremony: 1 }], &[], &[])
            .unwrap();
        s.commit(
            &[
                Record::DkgStarted { ceremony: 2 },
                Record::DkgStarted { ceremony: 3 },
            ],
            &[],
            &[],
        )
        .unwrap();
    }
    let s = Store::open(dir.path(), &id).unwrap();
    assert_eq!(
        s.records().unwrap(),
        vec![
            Record::DkgStarted { ceremony: 1 },
            Record::DkgStarted { ceremony: 2 },
            Record::DkgStarted { ceremony: 3 }
        ]
    );
    drop(s);
    assert!(matches!(
        Store::open(dir.path(), &Digest([2; 32])),
        Err(StorageError::WrongNetwork { .. })
    ));
}

/// A statement of `lab-000` in period 0 over evidence digests `[b; 32]` for each `b`.
fn stored(evidence: &[u8]) -> StoredStatement {
    let statement = Statement {
        network_id: Digest([1; 32]),
        policy_hash: Digest([2; 32]),
        slot: Slot {
            lab: "lab-000".into(),
            period: Period(0),
        },
        evidence: evidence.iter().map(|b| Digest([*b; 32])).collect(),
        verdict: Verdict::Compliant,
    };
    StoredStatement {
        group_key: PublicKey([4; 32]),
        signed: SignedStatement {
            statement,
            signature: Signature([3; 64]),
            batch: None,
        },
    }
}

#[test]
fn a_stored_statement_is_only_replaced_by_a_superset() {
    // Review finding 12: a replayed older, smaller co-signed statement overwrote the stored
    // one, so every node served the smaller verdict.
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &Digest([1; 32])).unwrap();
    let (small, large, other) = (stored(&[5]), stored(&[5, 6]), stored(&[7]));
    assert_eq!(
        s.commit(&[], std::slice::from_ref(&small), &[])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.commit(&[], std::slice::from_ref(&large), &[])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.commit(&[], &[small], &[]).unwrap().len(), 0, "a replay");
    assert_eq!(
        s.commit(&[], &[other], &[]).unwrap().len(),
        0,
        "incomparable"
    );
    assert_eq!(
        s.commit(&[], std::slice::from_ref(&large), &[])
            .unwrap()
            .len(),
        0,
        "equal"
    );
    assert_eq!(s.statement(0, "lab-000").unwrap(), Some(large));
    assert_eq!(
        s.log_head().unwrap().0,
        2,
        "only stored statements are logged"
    );
}

#[test]
fn the_superset_rule_survives_a_reopen() {
    // The rule reads the held row back from disk: a restarted node must not take a replay.
    let dir = tempfile::tempdir().unwrap();
    let id = Digest([1; 32]);
    {
        let s = Store::open(dir.path(), &id).unwrap();
        s.commit(&[], &[stored(&[5, 6])], &[]).unwrap();
    }
    let s = Store::open(dir.path(), &id).unwrap();
    assert!(s.commit(&[], &[stored(&[5])], &[]).unwrap().is_empty());
    assert!(s.commit(&[], &[stored(&[6, 7])], &[]).unwrap().is_empty());
    assert_eq!(s.commit(&[], &[stored(&[5, 6, 7])], &[]).unwrap().len(), 1);
    assert_eq!(
        s.statement(0, "lab-000")
            .unwrap()
            .unwrap()
            .signed
            .statement
            .evidence
            .len(),
        3
    );
}

#[test]
fn compaction_replaces_the_records_and_keeps_evidence_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &Digest([1; 32])).unwrap();
    let records: Vec<Record> = (0..50)
        .map(|c| Record::DkgStarted { ceremony: c })
        .collect();
    s.commit(&records, &[], &[]).unwrap();
    s.compact(&[Record::DkgStarted { ceremony: 49 }]).unwrap();
    s.commit(&[Record::DkgStarted { ceremony: 50 }], &[], &[])
        .unwrap();
    drop(s);
    let s = Store::open(dir.path(), &Digest([1; 32])).unwrap();
    assert_eq!(
        s.records().unwrap(),
        vec![
            Record::DkgStarted { ceremony: 49 },
            Record::DkgStarted { ceremony: 50 }
        ]
    );
    assert_eq!(s.record_count().unwrap(), 2);
}

/// A period-batch statement (with a checkpoint, an inclusion proof and therefore the
/// `statement_bytes` and `checkpoint_note` fields), as the node stores it.
fn batched() -> StoredStatement {
    let mut s = stored(&[5, 6]);
    s.signed.batch = Some(BatchProof {
        checkpoint: format!(
            "accord/{}/period/0\n2\nq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n",
            Digest([1; 32]).to_hex()
        ),
        index: 1,
        proof: vec![Digest([9; 32])],
    });
    s
}

#[test]
fn statements_are_stored_canonically_and_served_as_the_same_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &Digest([1; 32])).unwrap();
    let s = batched();
    store.commit(&[], std::slice::from_ref(&s), &[]).unwrap();
    // On disk: the protocol codec's bytes, not JSON.
    let raw = {
        let rx = store.read().unwrap();
        let t = rx.open_table(statements::STATEMENTS).unwrap();
        t.get((0, "lab-000")).unwrap().unwrap().value().to_vec()
    };
    assert_eq!(raw, codec::encode(&s).unwrap());
    assert!(serde_json::from_slice::<serde_json::Value>(&raw).is_err());
    // Served: byte for byte the JSON the node served when it stored that JSON (schema 1
    // stored `to_vec(export)` and answered with the export parsed back from it).
    let export = StatementExport::new(&s.signed, s.group_key);
    let schema_1_row = serde_json::to_vec(&export).unwrap();
    let schema_1_served =
        serde_json::to_vec(&serde_json::from_slice::<StatementExport>(&schema_1_row).unwrap())
            .unwrap();
    let held = store.statement(0, "lab-000").unwrap().unwrap();
    assert_eq!(serde_json::to_vec(&held.export()).unwrap(), schema_1_served);
    let listed = store.statements(Some(0), Some("lab-000"), 10).unwrap();
    assert_eq!(
        serde_json::to_vec(&listed[0].export()).unwrap(),
        schema_1_served
    );
    assert!(export.statement_bytes.is_some() && export.checkpoint_note.is_some());
}

/// A database as a schema-1 node left it: the network id in `meta`, no schema version, and a
/// statement stored as JSON.
fn schema_1_database(dir: &Path, network_id: &Digest) {
    let database = Database::create(dir.join(DB_FILE)).unwrap();
    let tx = database.begin_write().unwrap();
    {
        let mut meta = tx.open_table(META).unwrap();
        meta.insert("network_id", network_id.0.as_slice()).unwrap();
        let json = serde_json::to_vec(&batched().export()).unwrap();
        tx.open_table(statements::STATEMENTS)
            .unwrap()
            .insert((0, "lab-000"), json.as_slice())
            .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn an_old_data_dir_is_refused_with_a_clear_error_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let id = Digest([1; 32]);
    schema_1_database(dir.path(), &id);
    let err = Store::open(dir.path(), &id).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Schema {
                found: None,
                expected: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("storage schema 1"), "{message}");
    assert!(message.contains("reads storage schema 2"), "{message}");
    assert!(message.contains("fresh --data-dir"), "{message}");
    // Nothing was written: the schema key is still absent and the JSON row still there.
    let database = Database::create(dir.path().join(DB_FILE)).unwrap();
    let rx = database.begin_read().unwrap();
    assert!(
        rx.open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .is_none()
    );
    let row = rx
        .open_table(statements::STATEMENTS)
        .unwrap()
        .get((0, "lab-000"))
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    assert!(serde_json::from_slice::<StatementExport>(&row).is_ok());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = Digest([1; 32]);
    drop(Store::open(dir.path(), &id).unwrap());
    {
        let database = Database::create(dir.path().join(DB_FILE)).unwrap();
        let tx = database.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, 3u32.to_le_bytes().as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let err = Store::open(dir.path(), &id).unwrap_err();
    assert!(
        matches!(err, StorageError::Schema { found: Some(3), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("storage schema 3"), "{err}");
}

#[test]
fn a_new_database_records_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &Digest([1; 32])).unwrap();
    assert_eq!(
        s.meta(SCHEMA_KEY).unwrap(),
        Some(SCHEMA_VERSION.to_le_bytes().to_vec())
    );
}

/// A succession from network `[1; 32]` to network `[n; 32]` (shape and signature unchecked: the
/// store logs what the engine accepted).
fn link(n: u8) -> SignedSuccession {
    use accord_protocol::Succession;
    SignedSuccession {
        succession: Succession {
            previous: Digest([1; 32]),
            first_period: Period(u64::from(n)),
            group_key: PublicKey([n; 32]),
            network_id: Digest([n; 32]),
            policy_hash: Digest([2; 32]),
            threshold: 3,
            members: 4,
            signing_mode: accord_protocol::roster::SigningMode::PerPeriod,
            network_name: format!("epoch-{n}"),
            logs: Vec::new(),
        },
        signature: Signature([n; 64]),
    }
}

/// The log's leaves, decoded by kind.
fn leaves(s: &Store) -> Vec<accord_protocol::transparency::LogLeaf> {
    let (size, _) = s.log_head().unwrap();
    log::entries(&s.read().unwrap(), 0, size)
        .unwrap()
        .into_iter()
        .map(|(_, e)| accord_protocol::transparency::decode_log_leaf(&Digest([1; 32]), &e).unwrap())
        .collect()
}

#[test]
fn succession_links_are_logged_with_their_records_once() {
    use accord_protocol::transparency::LogLeaf;
    let dir = tempfile::tempdir().unwrap();
    let id = Digest([1; 32]);
    {
        let s = Store::open(dir.path(), &id).unwrap();
        let (a, b) = (link(7), link(8));
        let records = [Record::Predecessor(std::sync::Arc::new(b.clone()))];
        s.commit(&records, &[stored(&[5])], &[a.clone(), b.clone()])
            .unwrap();
        assert_eq!(
            leaves(&s),
            vec![
                LogLeaf::Statement(stored(&[5]).signed),
                LogLeaf::Succession(a.clone()),
                LogLeaf::Succession(b.clone()),
            ]
        );
        // The same links again (a repeated adoption, a restart's check) add nothing.
        s.commit(&[], &[], std::slice::from_ref(&b)).unwrap();
        assert_eq!(s.log_successions(&[a.clone(), b.clone()]).unwrap(), 0);
        assert_eq!(s.log_head().unwrap().0, 3);
    }
    // After a reopen too; a link held from before logging is added once.
    let s = Store::open(dir.path(), &id).unwrap();
    assert_eq!(s.log_successions(&[link(7), link(9)]).unwrap(), 1);
    assert_eq!(s.log_successions(&[link(9)]).unwrap(), 0);
    assert_eq!(leaves(&s).last(), Some(&LogLeaf::Succession(link(9))));
    assert_eq!(s.log_head().unwrap().0, 4);
}
