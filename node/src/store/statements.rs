//! The co-signed statements this member holds, one per slot, stored as canonical records.
//!
//! Table `statements`: key `(period, lab)`, value a [`StoredStatement`] in the protocol codec
//! (the protocol's signed statement and the group key it verifies under). The observers' JSON
//! ([`StatementExport`]) is built from it when served, so the JSON contract (`docs/api.md`) and
//! the database schema change independently.
//!
//! A stored statement is only ever replaced by one whose evidence is a strict superset
//! (invariant 3's order), so a replayed older, smaller statement never displaces the
//! authoritative one ([`replaces`]).

use accord_observer::export::StatementExport;
use accord_protocol::SignedStatement;
use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::PublicKey;
use accord_protocol::statement::Statement;
use redb::{ReadableTable as _, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use super::error::{StorageError, db};

/// `(period, lab)` → [`StoredStatement`] (protocol codec).
pub const STATEMENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("statements");

/// A co-signed statement as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStatement {
    /// The group key the signature verifies under (one per data directory in practice; kept
    /// with each statement so a row is self-contained).
    pub group_key: PublicKey,
    /// The protocol's signed statement: statement, group signature, batch proof.
    pub signed: SignedStatement,
}

impl StoredStatement {
    /// The observers' JSON for this statement.
    pub fn export(&self) -> StatementExport {
        StatementExport::new(&self.signed, self.group_key)
    }

    fn encode(&self) -> Result<Vec<u8>, StorageError> {
        codec::encode(self).map_err(db)
    }

    fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        codec::decode_canonical(bytes, MAX_MESSAGE_BYTES)
            .map_err(|source| StorageError::Corrupt { seq: 0, source })
    }
}

/// Whether `new` may replace `held` as the statement of their slot: its evidence is a strict
/// superset of the held one's. Equal sets (nothing new) and incomparable ones (more than f
/// faulty members) keep what is held.
pub fn replaces(held: &Statement, new: &Statement) -> bool {
    held.evidence != new.evidence
        && held
            .evidence
            .iter()
            .all(|d| new.evidence.binary_search(d).is_ok())
}

/// Stores `s` inside the caller's write transaction unless the statement held for its slot is
/// not replaced by it ([`replaces`]); returns whether it was stored.
///
/// # Errors
/// Database errors or a corrupt held row.
pub fn put(
    table: &mut Table<'_, (u64, &'static str), &'static [u8]>,
    s: &StoredStatement,
) -> Result<bool, StorageError> {
    let slot = &s.signed.statement.slot;
    let key = (slot.period.0, slot.lab.as_str());
    let held = table
        .get(key)
        .map_err(db)?
        .map(|v| StoredStatement::decode(v.value()))
        .transpose()?;
    if held
        .as_ref()
        .is_some_and(|h| !replaces(&h.signed.statement, &s.signed.statement))
    {
        return Ok(false);
    }
    table.insert(key, s.encode()?.as_slice()).map_err(db)?;
    Ok(true)
}

/// Statements in (period, lab) order, optionally for one period and/or lab; at most `limit`.
///
/// # Errors
/// Database errors or a corrupt row.
pub fn list(
    rx: &redb::ReadTransaction,
    period: Option<u64>,
    lab: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredStatement>, StorageError> {
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
        out.push(StoredStatement::decode(v.value())?);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The statement held for one slot.
///
/// # Errors
/// Database errors or a corrupt row.
pub fn get(
    rx: &redb::ReadTransaction,
    period: u64,
    lab: &str,
) -> Result<Option<StoredStatement>, StorageError> {
    let t = rx.open_table(STATEMENTS).map_err(db)?;
    let Some(v) = t.get((period, lab)).map_err(db)? else {
        return Ok(None);
    };
    Ok(Some(StoredStatement::decode(v.value())?))
}
