//! The member's transparency log, a child of the store: tables in the node's redb database.
//!
//! An append-only RFC 9162 Merkle log of the co-signed statements this member accepted and the
//! succession links it holds (leaves are [`accord_protocol::transparency::LogLeaf`] bytes: this
//! module stores bytes and does not look at their kind). Hashing and proofs are `tlog_tiles`'
//! (a port of Go's sumdb/tlog); this module only stores its "stored hashes" in a table.
//!
//! Tables:
//! - `log_entries`: leaf index → entry bytes.
//! - `log_hashes`: tlog stored-hash index → 32-byte hash (every complete subtree, so the root of
//!   any earlier size and every proof come from stored hashes).
//! - `log_leaves`: leaf hash → leaf index (deduplication, lookup by statement).
//!
//! What witnesses say about this log, and what this member witnessed of the others' logs, is in
//! [`super::witness`].
//!
//! Appends happen inside the caller's write transaction (the one that stores the statements), so
//! a SIGKILL leaves either the whole append or none of it: redb commits atomically. Readers take
//! a read transaction ([`super::Store::read`]), so one answer (a head and a proof) comes from
//! one state of the log.

use accord_protocol::crypto::Digest;
use accord_protocol::transparency::leaf_hash;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use tlog_tiles::{Hash, HashReader};

use super::error::{StorageError, db};

/// Leaf index → entry bytes.
pub const LOG_ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("log_entries");
/// Stored-hash index → hash.
pub const LOG_HASHES: TableDefinition<u64, &[u8]> = TableDefinition::new("log_hashes");
/// Leaf hash → leaf index.
pub const LOG_LEAVES: TableDefinition<&[u8], u64> = TableDefinition::new("log_leaves");

/// Most entries returned by one read.
pub const MAX_ENTRIES_PER_READ: u64 = 1000;

/// Reads stored hashes from a `log_hashes` table (read or write transaction).
pub struct Hashes<'a, T: ReadableTable<u64, &'static [u8]>>(pub &'a T);

impl<T: ReadableTable<u64, &'static [u8]>> HashReader for Hashes<'_, T> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                let v = self
                    .0
                    .get(*i)
                    .map_err(|_| tlog_tiles::Error::IndexesNotInTree)?
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)?;
                let bytes: [u8; 32] = v
                    .value()
                    .try_into()
                    .map_err(|_| tlog_tiles::Error::MalformedHash)?;
                Ok(Hash(bytes))
            })
            .collect()
    }
}

/// Number of leaves in a `log_entries` table.
///
/// # Errors
/// Database errors.
pub fn size_of(entries: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StorageError> {
    Ok(entries
        .last()
        .map_err(db)?
        .map_or(0, |(k, _)| k.value() + 1))
}

/// Appends one entry inside `tx` unless an identical entry is already in the log; returns its
/// index and whether it was new.
///
/// # Errors
/// Database errors, or a log whose stored hashes are missing (corrupt).
pub fn append(tx: &WriteTransaction, entry: &[u8]) -> Result<(u64, bool), StorageError> {
    let leaf = leaf_hash(entry);
    let mut leaves = tx.open_table(LOG_LEAVES).map_err(db)?;
    if let Some(i) = leaves.get(leaf.0.as_slice()).map_err(db)? {
        return Ok((i.value(), false));
    }
    let mut entries = tx.open_table(LOG_ENTRIES).map_err(db)?;
    let mut hashes = tx.open_table(LOG_HASHES).map_err(db)?;
    let n = size_of(&entries)?;
    let new = tlog_tiles::stored_hashes(n, entry, &Hashes(&hashes))
        .map_err(|e| StorageError::Db(format!("transparency log is corrupt: {e}")))?;
    let base = tlog_tiles::stored_hash_count(n);
    for (i, h) in new.iter().enumerate() {
        hashes.insert(base + i as u64, h.0.as_slice()).map_err(db)?;
    }
    entries.insert(n, entry).map_err(db)?;
    leaves.insert(leaf.0.as_slice(), n).map_err(db)?;
    Ok((n, true))
}

/// The log's current size and root, read in one transaction.
///
/// # Errors
/// Database errors or a corrupt log.
pub fn head(rx: &redb::ReadTransaction) -> Result<(u64, Digest), StorageError> {
    let entries = rx.open_table(LOG_ENTRIES).map_err(db)?;
    let hashes = rx.open_table(LOG_HASHES).map_err(db)?;
    let n = size_of(&entries)?;
    let root = tlog_tiles::tree_hash(n, &Hashes(&hashes)).map_err(corrupt)?;
    Ok((n, Digest(root.0)))
}

fn corrupt(e: tlog_tiles::Error) -> StorageError {
    StorageError::Db(format!("transparency log is corrupt: {e}"))
}

/// Why a proof request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The request names sizes or indexes outside the log.
    #[error("{0}")]
    OutOfRange(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The root of the tree of the first `size` leaves.
///
/// # Errors
/// `size` beyond the log, or storage errors.
pub fn root_at(rx: &redb::ReadTransaction, size: u64) -> Result<Digest, ProofError> {
    let entries = rx.open_table(LOG_ENTRIES).map_err(db)?;
    let hashes = rx.open_table(LOG_HASHES).map_err(db)?;
    let n = size_of(&entries)?;
    if size > n {
        return Err(ProofError::OutOfRange(format!(
            "size {size} is beyond the log's {n} entries"
        )));
    }
    Ok(Digest(
        tlog_tiles::tree_hash(size, &Hashes(&hashes))
            .map_err(corrupt)?
            .0,
    ))
}

/// Inclusion proof of leaf `index` in the tree of size `size`.
///
/// # Errors
/// Out-of-range arguments, or storage errors.
pub fn inclusion(
    rx: &redb::ReadTransaction,
    index: u64,
    size: u64,
) -> Result<Vec<Digest>, ProofError> {
    let entries = rx.open_table(LOG_ENTRIES).map_err(db)?;
    let hashes = rx.open_table(LOG_HASHES).map_err(db)?;
    let n = size_of(&entries)?;
    if index >= size || size > n {
        return Err(ProofError::OutOfRange(format!(
            "need index < size <= {n}, got index {index} size {size}"
        )));
    }
    let proof = tlog_tiles::prove_record(size, index, &Hashes(&hashes)).map_err(corrupt)?;
    Ok(proof.into_iter().map(|h| Digest(h.0)).collect())
}

/// Consistency proof from the tree of size `old` to the tree of size `size`.
///
/// # Errors
/// Out-of-range arguments, or storage errors.
pub fn consistency(
    rx: &redb::ReadTransaction,
    old: u64,
    size: u64,
) -> Result<Vec<Digest>, ProofError> {
    let entries = rx.open_table(LOG_ENTRIES).map_err(db)?;
    let hashes = rx.open_table(LOG_HASHES).map_err(db)?;
    let n = size_of(&entries)?;
    if old > size || size > n {
        return Err(ProofError::OutOfRange(format!(
            "need old <= size <= {n}, got old {old} size {size}"
        )));
    }
    if old == 0 {
        return Ok(Vec::new());
    }
    let proof = tlog_tiles::prove_tree(size, old, &Hashes(&hashes)).map_err(corrupt)?;
    Ok(proof.into_iter().map(|h| Digest(h.0)).collect())
}

/// Entries `start..start + limit` (at most [`MAX_ENTRIES_PER_READ`]).
///
/// # Errors
/// Storage errors.
pub fn entries(
    rx: &redb::ReadTransaction,
    start: u64,
    limit: u64,
) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
    let t = rx.open_table(LOG_ENTRIES).map_err(db)?;
    let end = start.saturating_add(limit.min(MAX_ENTRIES_PER_READ));
    let mut out = Vec::new();
    for row in t.range(start..end).map_err(db)? {
        let (k, v) = row.map_err(db)?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// The index of the leaf with hash `leaf`, if it is in the log.
///
/// # Errors
/// Storage errors.
pub fn index_of(rx: &redb::ReadTransaction, leaf: &Digest) -> Result<Option<u64>, StorageError> {
    let t = rx.open_table(LOG_LEAVES).map_err(db)?;
    Ok(t.get(leaf.0.as_slice()).map_err(db)?.map(|v| v.value()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use accord_protocol::transparency::{check_consistency, check_inclusion};
    use redb::{Database, ReadableDatabase as _};
    use sha2::{Digest as _, Sha256};

    /// RFC 9162 section 2.1.1 MTH, straight from the definition (independent of tlog_tiles).
    fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => Sha256::new()
                .chain_update([0u8])
                .chain_update(&leaves[0])
                .finalize()
                .into(),
            n => {
                let k = n.next_power_of_two() / 2;
                Sha256::new()
                    .chain_update([1u8])
                    .chain_update(mth(&leaves[..k]))
                    .chain_update(mth(&leaves[k..]))
                    .finalize()
                    .into()
            }
        }
    }

    fn node(l: [u8; 32], r: [u8; 32]) -> [u8; 32] {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(l)
            .chain_update(r)
            .finalize()
            .into()
    }

    /// RFC 9162 section 2.1.3.2: verifying an inclusion proof, transcribed step by step.
    fn rfc_verify_inclusion(
        leaf_index: u64,
        tree_size: u64,
        leaf: [u8; 32],
        path: &[[u8; 32]],
        root: [u8; 32],
    ) -> bool {
        // 1. If leaf_index is greater than or equal to tree_size, then fail.
        if leaf_index >= tree_size {
            return false;
        }
        // 2. Set fn to leaf_index and sn to tree_size - 1.
        let (mut f, mut s) = (leaf_index, tree_size - 1);
        // 3. Set r to hash.
        let mut r = leaf;
        // 4. For each value p in the inclusion_path array:
        for p in path {
            // a. If sn is 0, then stop the iteration and fail the proof verification.
            if s == 0 {
                return false;
            }
            // b. If LSB(fn) is set, or if fn is equal to sn, then:
            if f & 1 == 1 || f == s {
                r = node(*p, r);
                // If LSB(fn) is not set, then right-shift both fn and sn equally until
                // either LSB(fn) is set or fn is 0.
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                r = node(r, *p);
            }
            // c. Finally, right-shift both fn and sn one time.
            f >>= 1;
            s >>= 1;
        }
        // 5. Compare sn to 0. Compare r against the root_hash.
        s == 0 && r == root
    }

    /// RFC 9162 section 2.1.4.2: verifying a consistency proof, transcribed step by step.
    fn rfc_verify_consistency(
        first: u64,
        second: u64,
        first_hash: [u8; 32],
        second_hash: [u8; 32],
        path: &[[u8; 32]],
    ) -> bool {
        if first == second {
            return path.is_empty() && first_hash == second_hash;
        }
        // 1. If consistency_path is an empty array, stop and fail the proof verification.
        if path.is_empty() {
            return false;
        }
        // 2. If first is an exact power of 2, then prepend first_hash to the path.
        let mut path = path.to_vec();
        if first.is_power_of_two() {
            path.insert(0, first_hash);
        }
        // 3. Set fn to first - 1 and sn to second - 1.
        let (mut f, mut s) = (first - 1, second - 1);
        // 4. If LSB(fn) is set, right-shift both fn and sn equally until LSB(fn) is not set.
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        // 5. Set both fr and sr to the first value in the consistency_path array.
        let (mut fr, mut sr) = (path[0], path[0]);
        // 6. For each subsequent value c in the consistency_path array:
        for c in &path[1..] {
            // a. If sn is 0, then stop the iteration and fail the proof verification.
            if s == 0 {
                return false;
            }
            // b. If LSB(fn) is set, or if fn is equal to sn, then:
            if f & 1 == 1 || f == s {
                fr = node(*c, fr);
                sr = node(*c, sr);
                if f & 1 == 0 {
                    while f & 1 == 0 && f != 0 {
                        f >>= 1;
                        s >>= 1;
                    }
                }
            } else {
                sr = node(sr, *c);
            }
            // c. Finally, right-shift both fn and sn one time.
            f >>= 1;
            s >>= 1;
        }
        // 7. Verify fr == first_hash, sr == second_hash and sn == 0.
        fr == first_hash && sr == second_hash && s == 0
    }

    fn open() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("log.redb")).unwrap();
        (dir, db)
    }

    fn push(db: &Database, entry: &[u8]) -> (u64, bool) {
        let tx = db.begin_write().unwrap();
        let r = append(&tx, entry).unwrap();
        tx.commit().unwrap();
        r
    }

    fn raw(p: &[Digest]) -> Vec<[u8; 32]> {
        p.iter().map(|d| d.0).collect()
    }

    #[test]
    fn roots_match_the_rfc_6962_test_vectors() {
        // The leaves and roots of certificate-transparency's RFC 6962 reference test data
        // (also used by Go's sumdb/tlog and Trillian): tree sizes 1 to 8.
        let leaves: Vec<Vec<u8>> = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let (_dir, db) = open();
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(push(&db, leaf), (i as u64, true));
            let rx = db.begin_read().unwrap();
            let (size, root) = head(&rx).unwrap();
            assert_eq!(size, i as u64 + 1);
            assert_eq!(root.to_hex(), roots[i], "size {size}");
            assert_eq!(root.0, mth(&leaves[..=i]));
        }
    }

    #[test]
    fn proofs_check_under_the_rfc_algorithms_against_independent_roots() {
        let (_dir, db) = open();
        let leaves: Vec<Vec<u8>> = (0..37u32)
            .map(|i| format!("statement {i}").into_bytes())
            .collect();
        for l in &leaves {
            push(&db, l);
        }
        // An identical entry is not appended twice.
        assert_eq!(push(&db, &leaves[3]), (3, false));
        let rx = db.begin_read().unwrap();
        for size in 1..=leaves.len() as u64 {
            let root = mth(&leaves[..size as usize]);
            assert_eq!(root_at(&rx, size).unwrap().0, root);
            for index in 0..size {
                let proof = inclusion(&rx, index, size).unwrap();
                let leaf = leaf_hash(&leaves[index as usize]);
                assert!(rfc_verify_inclusion(
                    index,
                    size,
                    leaf.0,
                    &raw(&proof),
                    root
                ));
                check_inclusion(&proof, size, &Digest(root), index, &leaf).unwrap();
                // The wrong leaf, index or root fails.
                let other = leaf_hash(b"not in the log");
                assert!(!rfc_verify_inclusion(
                    index,
                    size,
                    other.0,
                    &raw(&proof),
                    root
                ));
                assert!(check_inclusion(&proof, size, &Digest(root), index, &other).is_err());
                if size > 1 {
                    let wrong = (index + 1) % size;
                    assert!(check_inclusion(&proof, size, &Digest(root), wrong, &leaf).is_err());
                }
            }
            for old in 1..=size {
                let old_root = mth(&leaves[..old as usize]);
                let proof = consistency(&rx, old, size).unwrap();
                assert!(
                    rfc_verify_consistency(old, size, old_root, root, &raw(&proof)),
                    "{old} -> {size}"
                );
                check_consistency(&proof, old, &Digest(old_root), size, &Digest(root)).unwrap();
                // A forked old tree (one leaf changed) is not consistent with the new one.
                let mut forked = leaves[..old as usize].to_vec();
                forked[0] = b"rewritten".to_vec();
                let forked_root = mth(&forked);
                assert!(!rfc_verify_consistency(
                    old,
                    size,
                    forked_root,
                    root,
                    &raw(&proof)
                ));
                assert!(
                    check_consistency(&proof, old, &Digest(forked_root), size, &Digest(root))
                        .is_err()
                );
            }
        }
        assert!(inclusion(&rx, 5, 38).is_err());
        assert!(consistency(&rx, 6, 5).is_err());
        assert!(root_at(&rx, 38).is_err());
        let page = entries(&rx, 30, 100).unwrap();
        assert_eq!(page.len(), 7);
        assert_eq!(page[0], (30, leaves[30].clone()));
        assert_eq!(index_of(&rx, &leaf_hash(&leaves[20])).unwrap(), Some(20));
    }

    #[test]
    fn an_append_interrupted_before_commit_leaves_no_trace() {
        let (_dir, db) = open();
        push(&db, b"a");
        {
            let tx = db.begin_write().unwrap();
            append(&tx, b"b").unwrap();
            // Dropped without commit: redb aborts the transaction.
        }
        let rx = db.begin_read().unwrap();
        assert_eq!(head(&rx).unwrap().0, 1);
        drop(rx);
        assert_eq!(push(&db, b"b"), (1, true));
        let rx = db.begin_read().unwrap();
        assert_eq!(head(&rx).unwrap().1.0, mth(&[b"a".to_vec(), b"b".to_vec()]));
    }
}
