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
//! - `statements` ([`statements`]): the co-signed statement per slot as a canonical record; the
//!   observers' JSON is built from it when served. A stored statement is only ever replaced by
//!   one whose evidence is a superset.
//! - `evidence_bodies`: evidence digest → the item (protocol codec), every item this member
//!   ever stored, for `GET /v1/evidence/{digest}`; it outlives the record log's compaction.
//! - `protection`: the verdict-protection index, nonce commitment digest → (proposal id, signing
//!   package digest) of every signature share this member released (the same facts as the
//!   `Record::Signed` records, indexed for audits; written in the same transaction).
//! - `meta`: small settings: the network id the directory belongs to, the storage schema
//!   version ([`SCHEMA_VERSION`]), the first period.
//! - the transparency log's tables ([`log`]): every statement stored here is also appended to
//!   the member's log in the same transaction, and so is every succession link the node commits
//!   with its records (the handing epoch's co-signed succession, a successor's adopted chain);
//!   and the witnessing tables ([`witness`]).
//!
//! Every commit uses `Durability::Immediate` (fsync before `commit` returns). redb holds an
//! exclusive file lock, so a second process on the same data directory is refused. A database of
//! another network or another storage schema is refused at open, before anything is read.
//!
//! The tables are child modules of free functions over redb transactions; only this module
//! composes them, so they never import the store.

mod error;
pub mod log;
pub mod statements;
pub mod witness;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use accord_protocol::Record;
use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::Digest;
use accord_protocol::evidence::Evidence;
use accord_protocol::message::ProposalId;
use accord_protocol::succession::SignedSuccession;
use accord_protocol::transparency::{WitnessedLog, succession_log_entry};
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};

pub use self::error::StorageError;
use self::error::db;
pub use self::statements::StoredStatement;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence_bodies");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PROTECTION: TableDefinition<&[u8], &[u8]> = TableDefinition::new("protection");

/// The database file name inside the data directory.
pub const DB_FILE: &str = "accord.redb";

/// The storage schema this build reads and writes (`meta` key `schema_version`, u32
/// little-endian). Version 1, never recorded, stored the observers' JSON in `statements`;
/// version 2 stores canonical records there.
pub const SCHEMA_VERSION: u32 = 2;
const SCHEMA_KEY: &str = "schema_version";

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    network_id: Digest,
    next_seq: AtomicU64,
}

impl Store {
    /// Opens (or creates) the database in `dir`, for the network `network_id`.
    ///
    /// # Errors
    /// [`StorageError::Locked`] when another process has it open, [`StorageError::Schema`] for
    /// a database of another storage schema, a network mismatch, or I/O.
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
        // An error below drops the transaction uncommitted: a refused directory is left as is.
        let tx = database.begin_write().map_err(db)?;
        {
            let mut meta = tx.open_table(META).map_err(db)?;
            let stored_network = meta
                .get("network_id")
                .map_err(db)?
                .map(|v| v.value().to_vec());
            let stored_schema = meta
                .get(SCHEMA_KEY)
                .map_err(db)?
                .map(|v| <[u8; 4]>::try_from(v.value()).map(u32::from_le_bytes));
            match (&stored_network, stored_schema) {
                // A new database.
                (None, None) => {
                    meta.insert("network_id", network_id.0.as_slice())
                        .map_err(db)?;
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())
                        .map_err(db)?;
                }
                (Some(_), Some(Ok(SCHEMA_VERSION))) => {}
                (_, found) => {
                    return Err(StorageError::Schema {
                        dir: dir.to_path_buf(),
                        // Unreadable version bytes are reported as version 0.
                        found: found.map(|v| v.unwrap_or(0)),
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            if let Some(found) = stored_network.filter(|f| *f != network_id.0) {
                return Err(StorageError::WrongNetwork {
                    dir: dir.to_path_buf(),
                    expected: network_id.to_hex(),
                    found: hex::encode(found),
                });
            }
            tx.open_table(RECORDS).map_err(db)?;
            tx.open_table(statements::STATEMENTS).map_err(db)?;
            tx.open_table(EVIDENCE).map_err(db)?;
            tx.open_table(PROTECTION).map_err(db)?;
            tx.open_table(log::LOG_ENTRIES).map_err(db)?;
            tx.open_table(log::LOG_HASHES).map_err(db)?;
            tx.open_table(log::LOG_LEAVES).map_err(db)?;
            tx.open_table(witness::LOG_COSIGNATURES).map_err(db)?;
            tx.open_table(witness::WITNESSED).map_err(db)?;
            tx.open_table(witness::WITNESS_FORKS).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        let next = {
            let rx = database.begin_read().map_err(db)?;
            let t = rx.open_table(RECORDS).map_err(db)?;
            t.last().map_err(db)?.map_or(0, |(k, _)| k.value() + 1)
        };
        Ok(Self {
            db: database,
            network_id: *network_id,
            next_seq: AtomicU64::new(next),
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

    /// Appends `records`, stores `statements` and logs `links` (succession links, in chain
    /// order) in one transaction, durable when this returns.
    /// A statement replaces the one stored for its slot only if its evidence is a superset of
    /// the stored one's ([`statements::replaces`]); the statements stored (and logged) are
    /// returned, the others (equal, or smaller: a replay) are not. A link already in the log is
    /// not appended again.
    ///
    /// # Errors
    /// Any database failure (disk full, fsync error): nothing may be sent after it.
    pub fn commit(
        &self,
        records: &[Record],
        statements: &[StoredStatement],
        links: &[SignedSuccession],
    ) -> Result<Vec<StoredStatement>, StorageError> {
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
            let mut st = tx.open_table(statements::STATEMENTS).map_err(db)?;
            for s in statements {
                if statements::put(&mut st, s)? {
                    stored.push(s.clone());
                }
            }
        }
        // The transparency log: same transaction, so a statement is stored and logged or neither.
        for s in &stored {
            let entry = accord_protocol::transparency::log_entry(&self.network_id, &s.signed);
            log::append(&tx, &entry)?;
        }
        for link in links {
            log::append(&tx, &succession_log_entry(&self.network_id, link))?;
        }
        tx.commit().map_err(db)?;
        self.next_seq.store(seq, Ordering::SeqCst);
        Ok(stored)
    }

    /// Appends to the transparency log, in one durable transaction, each of `links` (in order)
    /// that is not in it yet; returns how many were new. For links the node holds from before
    /// they were logged (a data directory of an older build).
    ///
    /// # Errors
    /// Any database failure.
    pub fn log_successions(&self, links: &[SignedSuccession]) -> Result<usize, StorageError> {
        let entries: Vec<Vec<u8>> = links
            .iter()
            .map(|l| succession_log_entry(&self.network_id, l))
            .collect();
        {
            let rx = self.read()?;
            let mut missing = false;
            for e in &entries {
                missing |=
                    log::index_of(&rx, &accord_protocol::transparency::leaf_hash(e))?.is_none();
            }
            if !missing {
                return Ok(0);
            }
        }
        let mut tx = self.db.begin_write().map_err(db)?;
        tx.set_durability(Durability::Immediate).map_err(db)?;
        let mut added = 0;
        for e in &entries {
            added += usize::from(log::append(&tx, e)?.1);
        }
        tx.commit().map_err(db)?;
        Ok(added)
    }

    /// Replaces every record by `snapshot` (the engine's compaction) in one durable
    /// transaction: a crash leaves either the old log or the snapshot, never a mix.
    ///
    /// # Errors
    /// Any database failure.
    pub fn compact(&self, snapshot: &[Record]) -> Result<(), StorageError> {
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

    /// Co-signed statements, optionally for one period and/or lab, in (period, lab) order; at
    /// most `limit`.
    ///
    /// # Errors
    /// Database errors or a corrupt row.
    pub fn statements(
        &self,
        period: Option<u64>,
        lab: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredStatement>, StorageError> {
        statements::list(&self.read()?, period, lab, limit)
    }

    /// The co-signed statement held for one slot.
    ///
    /// # Errors
    /// Database errors or a corrupt row.
    pub fn statement(
        &self,
        period: u64,
        lab: &str,
    ) -> Result<Option<StoredStatement>, StorageError> {
        statements::get(&self.read()?, period, lab)
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
    pub fn protection(&self) -> Result<Vec<(Digest, ProposalId, Digest)>, StorageError> {
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

    /// A read transaction, for the readers of [`log`] and [`witness`] (one answer from one
    /// state of the database).
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
        log::head(&self.read()?)
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
    pub fn set_cosignature(
        &self,
        witness: u16,
        c: &witness::Cosignature,
    ) -> Result<(), StorageError> {
        self.put(
            witness::LOG_COSIGNATURES,
            witness,
            &codec::encode(c).map_err(db)?,
        )
    }

    /// Stores, durably and before any cosignature leaves, the checkpoint of `log`'s log this node
    /// is about to cosign as a witness.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_witnessed(&self, log: u16, w: &WitnessedLog) -> Result<(), StorageError> {
        self.put(witness::WITNESSED, log, &codec::encode(w).map_err(db)?)
    }

    /// What this node holds as a witness of `log`'s log.
    ///
    /// # Errors
    /// Database errors or a corrupt row.
    pub fn witnessed(&self, log: u16) -> Result<Option<WitnessedLog>, StorageError> {
        witness::witnessed_of(&self.read()?, log)
    }

    /// Records a conflicting signed checkpoint of `log`'s log (proof of a fork), durably.
    ///
    /// # Errors
    /// Database errors.
    pub fn set_fork(&self, log: u16, note: &str) -> Result<(), StorageError> {
        self.put(witness::WITNESS_FORKS, log, note.as_bytes())
    }
}

#[cfg(test)]
mod tests;
