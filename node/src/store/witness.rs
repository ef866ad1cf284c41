//! Witnessing, in both directions, stored in the node's redb database.
//!
//! Tables:
//! - `log_cosignatures`: witness member → the cosignature line it returned for this member's log
//!   and the checkpoint (size, root) it covers.
//! - `witnessed`: log member → the largest checkpoint of that member's log this node cosigned as
//!   its witness (written durably before the cosignature leaves).
//! - `witness_forks`: log member → a signed checkpoint that conflicted with `witnessed` (proof
//!   of a forked or rewritten log).
//!
//! Values are in the protocol codec, except the forks, which are the signed notes as received.

use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::Digest;
use accord_protocol::transparency::WitnessedLog;
use redb::{ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use super::error::{StorageError, db};

/// Witness member → [`Cosignature`].
pub const LOG_COSIGNATURES: TableDefinition<u16, &[u8]> = TableDefinition::new("log_cosignatures");
/// Log member → [`WitnessedLog`].
pub const WITNESSED: TableDefinition<u16, &[u8]> = TableDefinition::new("witnessed");
/// Log member → conflicting signed note.
pub const WITNESS_FORKS: TableDefinition<u16, &[u8]> = TableDefinition::new("witness_forks");

/// A witness's cosignature of one of our checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// Checkpoint size.
    pub size: u64,
    /// Checkpoint root.
    pub root: Digest,
    /// The signature line.
    pub line: String,
}

/// Every stored cosignature of our checkpoints, by witness member.
///
/// # Errors
/// Storage errors or a corrupt row.
pub fn cosignatures(rx: &redb::ReadTransaction) -> Result<Vec<(u16, Cosignature)>, StorageError> {
    decoded_rows(rx, LOG_COSIGNATURES)
}

/// What this node holds as a witness for each other member's log.
///
/// # Errors
/// Storage errors or a corrupt row.
pub fn witnessed(rx: &redb::ReadTransaction) -> Result<Vec<(u16, WitnessedLog)>, StorageError> {
    decoded_rows(rx, WITNESSED)
}

/// Every row of a member-keyed table of canonically encoded values.
fn decoded_rows<T: serde::de::DeserializeOwned>(
    rx: &redb::ReadTransaction,
    table: TableDefinition<u16, &[u8]>,
) -> Result<Vec<(u16, T)>, StorageError> {
    let t = rx.open_table(table).map_err(db)?;
    let mut out = Vec::new();
    for row in t.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        out.push((
            k.value(),
            codec::decode(v.value(), MAX_MESSAGE_BYTES)
                .map_err(|source| StorageError::Corrupt { seq: 0, source })?,
        ));
    }
    Ok(out)
}

/// Conflicting checkpoints this node refused as a witness, by log member.
///
/// # Errors
/// Storage errors.
pub fn forks(rx: &redb::ReadTransaction) -> Result<Vec<(u16, String)>, StorageError> {
    let t = rx.open_table(WITNESS_FORKS).map_err(db)?;
    let mut out = Vec::new();
    for row in t.iter().map_err(db)? {
        let (k, v) = row.map_err(db)?;
        out.push((k.value(), String::from_utf8_lossy(v.value()).into_owned()));
    }
    Ok(out)
}

/// What this node holds as a witness of `log`'s log.
///
/// # Errors
/// Storage errors or a corrupt row.
pub fn witnessed_of(
    rx: &redb::ReadTransaction,
    log: u16,
) -> Result<Option<WitnessedLog>, StorageError> {
    let t = rx.open_table(WITNESSED).map_err(db)?;
    let Some(v) = t.get(log).map_err(db)? else {
        return Ok(None);
    };
    Ok(Some(codec::decode(v.value(), MAX_MESSAGE_BYTES).map_err(
        |source| StorageError::Corrupt { seq: 0, source },
    )?))
}
