//! The storage error, shared by the store and its tables (a leaf module, so the tables never
//! import the store that composes them).

use std::path::PathBuf;

use accord_protocol::codec::CodecError;
use thiserror::Error;

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
    /// The database was written with another storage schema than this build reads.
    #[error(
        "the data directory {dir} holds a database of {}, but this accord reads storage schema {expected}; it is refused rather than misread: run the accord version that wrote it, or start this one on a fresh --data-dir",
        describe_schema(*.found)
    )]
    Schema {
        /// The directory.
        dir: PathBuf,
        /// The schema version stored in it (`None`: written before versions were recorded).
        found: Option<u32>,
        /// The version this build reads and writes.
        expected: u32,
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

fn describe_schema(found: Option<u32>) -> String {
    match found {
        Some(v) => format!("storage schema {v}"),
        None => "storage schema 1 (an older accord, which stored statements as JSON)".to_string(),
    }
}

/// Wraps a redb (or any other) error as [`StorageError::Db`].
pub(crate) fn db<E: std::fmt::Display>(e: E) -> StorageError {
    StorageError::Db(e.to_string())
}
