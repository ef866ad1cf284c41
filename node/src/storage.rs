//! The node's durable state in one redb database under the data directory.
//!
//! Tables:
//! - `records`: the engine's persisted [`Record`]s in write order (key: sequence number), encoded
//!   with the protocol codec; replaying them into `Engine::restore` rebuilds the member after a
//!   crash. This includes the verdict-protection records (`Record::Signed`) and accepted
//!   proposals, so a share never leaves before what it commits to is on disk.
//!   The engine compacts its log from time to time ([`Store::compact`]: the records are replaced
//!   by the engine's snapshot in one transaction), so the table stays bounded by what the engine
//!   still keeps.
//! - `statements`: the exported co-signed statement per slot, key `(period, lab)`, as JSON. A
//!   stored statement is only ever replaced by one whose evidence is a superset (invariant 3's
//!   order), so a replayed older, smaller statement never displaces the authoritative one.
//! - `evidence_bodies`: evidence digest → the item (protocol codec), every item this member
//!   ever stored, for `GET /v1/evidence/{digest}`; it outlives the record log's compaction.
//! - `protection`: the verdict-protection index, nonce commitment digest → (proposal id, signing
//!   package digest) of every signature share this member released (the same facts as the
//!   `Record::Signed` records, indexed for audits; written in the same transaction).
//! - `meta`: small settings, e.g. the network id the directory belongs to.
//! - the transparency log's tables (see [`crate::tlog`]): every statement committed here is also
//!   appended to the member's log in the same transaction.
//!
//! Every commit uses `Durability::Immediate` (fsync before `commit` returns). redb holds an
//! exclusive file lock, so a second process on the same data directory is refused.

use std::path::{Path, PathBuf};

use accord_protocol::codec::{self, CodecError, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::Digest;
use accord_protocol::evidence::Evidence;
use accord_protocol::{Record, SignedStatement};
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use thiserror::Error;

use crate::tlog;
use accord_observer::export::StatementExport;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const STATEMENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("statements");
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence_bodies");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PROTECTION: TableDefinition<&[u8], &[u8]> = TableDefinition::new("protection");

/// The database file name inside the data directory.
pub const DB_FILE: &str = "accord.redb";

/// A storage failure.
#[derive(Debug, Error)]
pub enum StorageError {
    /// Another process holds the data directory.
    #[error(
        "the data directory {0} is in use by another accord process (the database is locked); stop that node first or use another --data-dir"
    )]
    Locked(PathBuf),
    /// The directory belongs to another network.
    #[error(
        "the data directory {dir} belongs to network {found}, not {expected}; use a fresh --data-dir for this roster"
    )]
    WrongNetwork {
        /// The directory.
        dir: PathBuf,
        /// This roster's network id.
        expected: String,
        /// The id stored in the directory.
        found: String,
    },
    /// A record could not be decoded.
    #[error("stored record {seq} is corrupt: {source}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// The decoding error.
        source: CodecError,
    },
    /// A database error.
    #[error("database: {0}")]
    Db(String),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn db<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Db(e.to_string())
}

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    network_id: Digest,
    next_seq: std::sync::atomic::AtomicU64,
}

impl Store {
    /// Opens (or creates) the database in `dir`, for the network `network_id`.
    ///
    /// # Errors
    /// [`StorageError::Locked`] when another process has it open, a network mismatch, or I/O.
    pub fn open(dir: &Path, network_id: &Digest) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let database = match Database::create(&path) {
            Ok(d) => d,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StorageError::Locked(dir.to_path_buf()));
            }
            Err(e) => return Err(db(e)),
        };
        let tx = database.begin_write().map_err(db)?;
        {
            tx.open_table(RECORDS).map_err(db)?;
            tx.open_table(STATEMENTS).map_err(db)?;
            tx.open_table(EVIDENCE).map_err(db)?;
            tx.open_table(PROTECTION).map_err(db)?;
            tx.open_table(tlog::LOG_ENTRIES).map_err(db)?;
            tx.open_table(tlog::LOG_HASHES).map_err(db)?;
            tx.open_table(tlog::LOG_LEAVES).map_err(db)?;
            tx.open_table(tlog::LOG_COSIGNATURES).map_err(db)?;
            tx.open_table(tlog::WITNESSED).map_err(db)?;
            tx.open_table(tlog::WITNESS_FORKS).map_err(db)?;
            let mut meta = tx.open_table(META).map_err(db)?;
            let stored = meta
                .get("network_id")
                .map_err(db)?
                .map(|v| v.value().to_vec());
            match stored {
                Some(found) if found != network_id.0 => {
                    return Err(StorageError::WrongNetwork {
                        dir: dir.to_path_buf(),
                        expected: network_id.to_hex(),
                        found: hex::encode(found),
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("network_id", network_id.0.as_slice())
                        .map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)?;
        migrate_evidence_bodies(&database)?;
        let next = {
            let rx = database.begin_read().map_err(db)?;
            let t = rx.open_table(RECORDS).map_err(db)?;
            t.last().map_err(db)?.map_or(0, |(k, _)| k.value() + 1)
        };
        Ok(Self {
            db: database,
            network_id: *network_id,
            next_seq: std::sync::atomic::AtomicU64::new(next),
        })
    }

    /// Every record in write order.
    ///
    /// # Errors
    /// Database errors or a corrupt record.
    pub fn records(&self) -> Result<Vec<Record>, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(RECORDS).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let record =
                codec::decode::<Record>(v.value(), MAX_MESSAGE_BYTES).map_err(|source| {
                    StorageError::Corrupt {
                        seq: k.value(),
                        source,
                    }
                })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Appends `records` and stores `statements` in one transaction, durable when this returns.
    /// A statement replaces the one stored for its slot only if its evidence is a superset of
    /// the stored one's; the statements stored (and logged) are returned, the others (equal, or
    /// smaller: a replay) are not.
    ///
    /// # Errors
    /// Any database failure (disk full, fsync error): nothing may be sent after it.
    pub fn commit(
        &self,
        records: &[Record],
        statements: &[StatementExport],
    ) -> Result<Vec<StatementExport>, StorageError> {
        use std::sync::atomic::Ordering;
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        let mut seq = self.next_seq.load(Ordering::SeqCst);
        let mut stored = Vec::new();
        {
            let mut rt = tx.open_table(RECORDS).map_err(db)?;
            let mut et = tx.open_table(EVIDENCE).map_err(db)?;
            let mut pt = tx.open_table(PROTECTION).map_err(db)?;
            for r in records {
                let bytes = codec::encode(r).map_err(db)?;
                rt.insert(seq, bytes.as_slice()).map_err(db)?;
                match r {
                    Record::Evidence { evidence, .. } => {
                        let key = evidence.digest();
                        if et.get(key.0.as_slice()).map_err(db)?.is_none() {
                            let body = codec::encode(&**evidence).map_err(db)?;
                            et.insert(key.0.as_slice(), body.as_slice()).map_err(db)?;
                        }
                    }
                    Record::Signed(s) => {
                        let value = codec::encode(&(s.id, s.package)).map_err(db)?;
                        pt.insert(s.commitment.0.as_slice(), value.as_slice())
                            .map_err(db)?;
                    }
                    _ => {}
                }
                seq += 1;
            }
            let mut st = tx.open_table(STATEMENTS).map_err(db)?;
            for s in statements {
                let held: Option<StatementExport> = st
                    .get((s.period, s.lab.as_str()))
                    .map_err(db)?
                    .map(|v| serde_json::from_slice(v.value()))
                    .transpose()
                    .map_err(db)?;
                let replaces = held.as_ref().is_none_or(|h| {
                    h.evidence != s.evidence
                        && h.evidence
                            .iter()
                            .all(|d| s.evidence.binary_search(d).is_ok())
                });
                if !replaces {
                    continue;
                }
                let json = serde_json::to_vec(s).map_err(db)?;
                st.insert((s.period, s.lab.as_str()), json.as_slice())
                    .map_err(db)?;
                stored.push(s.clone());
            }
        }
        // The transparency log: same transaction, so a statement is stored and logged or neither.
        for s in &stored {
            let entry = accord_protocol::transparency::log_entry(&self.network_id, &s.to_signed());
            tlog::append(&tx, &entry)?;
        }
        tx.commit().map_err(db)?;
        self.next_seq.store(seq, Ordering::SeqCst);
        Ok(stored)
    }

    /// Replaces every record by `snapshot` (the engine's compaction) in one durable
    /// transaction: a crash leaves either the old log or the snapshot, never a mix.
    ///
    /// # Errors
    /// Any database failure.
    pub fn compact(&self, snapshot: &[Record]) -> Result<(), StorageError> {
        use std::sync::atomic::Ordering;
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        let mut seq = self.next_seq.load(Ordering::SeqCst);
        tx.delete_table(RECORDS).map_err(db)?;
        {
            let mut rt = tx.open_table(RECORDS).map_err(db)?;
            for r in snapshot {
                let bytes = codec::encode(r).map_err(db)?;
                rt.insert(seq, bytes.as_slice()).map_err(db)?;
                seq += 1;
            }
        }
        tx.commit().map_err(db)?;
        self.next_seq.store(seq, Ordering::SeqCst);
        Ok(())
    }

    /// Number of records in the log (for metrics and tests).
    ///
    /// # Errors
    /// Database errors.
    pub fn record_count(&self) -> Result<u64, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(RECORDS).map_err(db)?;
        t.len().map_err(db)
    }

    /// Exported statements, optionally for one period and/or lab, in (period, lab) order; at most
    /// `limit`.
    ///
    /// # Errors
    /// Database errors.
    pub fn statements(
        &self,
        period: Option<u64>,
        lab: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StatementExport>, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(STATEMENTS).map_err(db)?;
        let mut out = Vec::new();
        let iter = match period {
            Some(p) => t.range((p, "")..(p.saturating_add(1), "")).map_err(db)?,
            None => t.iter().map_err(db)?,
        };
        for row in iter {
            let (k, v) = row.map_err(db)?;
            if lab.is_some_and(|l| l != k.value().1) {
                continue;
            }
            let s: StatementExport = serde_json::from_slice(v.value()).map_err(db)?;
            out.push(s);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The exported statement for one slot.
    ///
    /// # Errors
    /// Database errors.
    pub fn statement(
        &self,
        period: u64,
        lab: &str,
    ) -> Result<Option<StatementExport>, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(STATEMENTS).map_err(db)?;
        let Some(v) = t.get((period, lab)).map_err(db)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(v.value()).map_err(db)?))
    }

    /// An evidence item by digest.
    ///
    /// # Errors
    /// Database errors or a corrupt row.
    pub fn evidence(&self, digest: &Digest) -> Result<Option<Evidence>, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(EVIDENCE).map_err(db)?;
        let Some(v) = t.get(digest.0.as_slice()).map_err(db)? else {
            return Ok(None);
        };
        codec::decode::<Evidence>(v.value(), MAX_MESSAGE_BYTES)
            .map(Some)
            .map_err(|source| StorageError::Corrupt { seq: 0, source })
    }

    /// The verdict-protection index: (commitment digest, proposal, package digest) for every
    /// share this member released.
    ///
    /// # Errors
    /// Database errors or a corrupt row.
    pub fn protection(
        &self,
    ) -> Result<Vec<(Digest, accord_protocol::message::ProposalId, Digest)>, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(PROTECTION).map_err(db)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let commitment = Digest(k.value().try_into().map_err(db)?);
            let (id, package) = codec::decode(v.value(), MAX_MESSAGE_BYTES)
                .map_err(|source| StorageError::Corrupt { seq: 0, source })?;
            out.push((commitment, id, package));
        }
        Ok(out)
    }

    /// A setting from the `meta` table.
    ///
    /// # Errors
    /// Database errors.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let rx = self.db.begin_read().map_err(db)?;
        let t = rx.open_table(META).map_err(db)?;
        Ok(t.get(key).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// Stores a setting in the `meta` table (durably).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        tx.open_table(META)
            .map_err(db)?
            .insert(key, value)
            .map_err(db)?;
        tx.commit().map_err(db)
    }
}

impl Store {
    /// A read transaction (for the transparency log's readers in [`crate::tlog`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn read(&self) -> Result<redb::ReadTransaction, StorageError> {
        self.db.begin_read().map_err(db)
    }

    /// The transparency log's size and root.
    ///
    /// # Errors
    /// Database errors or a corrupt log.
    pub fn log_head(&self) -> Result<(u64, Digest), StorageError> {
        tlog::head(&self.read()?)
    }

    fn put(
        &self,
        table: TableDefinition<u16, &[u8]>,
        key: u16,
        value: &[u8],
    ) -> Result<(), StorageError> {
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        tx.open_table(table)
            .map_err(db)?
            .insert(key, value)
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Stores a witness's cosignature of our log (durably).
    ///
    /// # Errors
    /// Database errors.
    pub fn set_cosignature(&self, witness: u16, c: &tlog::Cosignature) -> Result<(), StorageError> {
        self.put(
            tlog::LOG_COSIGNATURES,
            witness,
            &codec::encode(c).map_err(db)?,
        )
    }

    /// Stores, durably and before any cosignature leaves, the checkpoint of `log`'s log this node
    /// is about to cosign as a witness.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_witnessed(
        &self,
        log: u16,
        w: &accord_protocol::transparency::WitnessedLog,
    ) -> Result<(), StorageError> {
        self.put(tlog::WITNESSED, log, &codec::encode(w).map_err(db)?)
    }

    /// What this node holds as a witness of `log`'s log.
    ///
    /// # Errors
    /// Database errors or a corrupt row.
    pub fn witnessed(
        &self,
        log: u16,
    ) -> Result<Option<accord_protocol::transparency::WitnessedLog>, StorageError> {
        let rx = self.read()?;
        let t = rx.open_table(tlog::WITNESSED).map_err(db)?;
        let Some(v) = t.get(log).map_err(db)? else {
            return Ok(None);
        };
        Ok(Some(codec::decode(v.value(), MAX_MESSAGE_BYTES).map_err(
            |source| StorageError::Corrupt { seq: 0, source },
        )?))
    }

    /// Records a conflicting signed checkpoint of `log`'s log (proof of a fork), durably.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_fork(&self, log: u16, note: &str) -> Result<(), StorageError> {
        self.put(tlog::WITNESS_FORKS, log, note.as_bytes())
    }
}

/// Fills the evidence table from the record log if it is empty (data directories written before
/// the table existed indexed evidence by record number).
fn migrate_evidence_bodies(database: &Database) -> Result<(), StorageError> {
    let tx = database.begin_write().map_err(db)?;
    {
        let rt = tx.open_table(RECORDS).map_err(db)?;
        let mut et = tx.open_table(EVIDENCE).map_err(db)?;
        if !et.is_empty().map_err(db)? {
            return Ok(());
        }
        for row in rt.iter().map_err(db)? {
            let (k, v) = row.map_err(db)?;
            let record =
                codec::decode::<Record>(v.value(), MAX_MESSAGE_BYTES).map_err(|source| {
                    StorageError::Corrupt {
                        seq: k.value(),
                        source,
                    }
                })?;
            if let Record::Evidence { evidence, .. } = record {
                let body = codec::encode(&*evidence).map_err(db)?;
                et.insert(evidence.digest().0.as_slice(), body.as_slice())
                    .map_err(db)?;
            }
        }
    }
    tx.commit().map_err(db)
}

/// Exports every statement of a co-signed unit under `group_key`.
pub fn exports_of(
    signed: &[SignedStatement],
    group_key: accord_protocol::crypto::PublicKey,
) -> Vec<StatementExport> {
    signed
        .iter()
        .map(|s| StatementExport::new(s, group_key))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
            s.commit(&[Record::DkgStarted { ceremony: 1 }], &[])
                .unwrap();
            s.commit(
                &[
                    Record::DkgStarted { ceremony: 2 },
                    Record::DkgStarted { ceremony: 3 },
                ],
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod replace_tests {
    use accord_protocol::crypto::{PublicKey, Signature};
    use accord_protocol::policy::Verdict;
    use accord_protocol::roster::Period;
    use accord_protocol::statement::{Slot, Statement};

    use super::*;

    fn export(evidence: &[u8]) -> StatementExport {
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
        StatementExport::new(
            &SignedStatement {
                statement,
                signature: Signature([3; 64]),
                batch: None,
            },
            PublicKey([4; 32]),
        )
    }

    #[test]
    fn a_stored_statement_is_only_replaced_by_a_superset() {
        // Review finding 12: a replayed older, smaller co-signed statement overwrote the stored
        // one, so every node served the smaller verdict.
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &Digest([1; 32])).unwrap();
        let (small, large, other) = (export(&[5]), export(&[5, 6]), export(&[7]));
        assert_eq!(
            s.commit(&[], std::slice::from_ref(&small)).unwrap().len(),
            1
        );
        assert_eq!(
            s.commit(&[], std::slice::from_ref(&large)).unwrap().len(),
            1
        );
        assert_eq!(s.commit(&[], &[small]).unwrap().len(), 0, "a replay");
        assert_eq!(s.commit(&[], &[other]).unwrap().len(), 0, "incomparable");
        assert_eq!(
            s.commit(&[], std::slice::from_ref(&large)).unwrap().len(),
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
    fn compaction_replaces_the_records_and_keeps_evidence_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &Digest([1; 32])).unwrap();
        let records: Vec<Record> = (0..50)
            .map(|c| Record::DkgStarted { ceremony: c })
            .collect();
        s.commit(&records, &[]).unwrap();
        s.compact(&[Record::DkgStarted { ceremony: 49 }]).unwrap();
        s.commit(&[Record::DkgStarted { ceremony: 50 }], &[])
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
}
