//! Why the node could not start or had to stop (a leaf module: every part of the daemon
//! returns it, none of them is imported by it).

use accord_protocol::crypto::PublicKey;
use thiserror::Error;

use crate::config::ConfigError;
use crate::keyfile::SecretFileError;
use crate::store::StorageError;

/// Why the node could not start or had to stop.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The roster file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The roster is valid for the protocol but unusable by the node.
    #[error("roster {path}: {message}")]
    Roster {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A secret file problem (permissions, passphrase).
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// The identity is not a member of the roster.
    #[error(
        "this node's identity (key {0}) is not a member of the roster; check --identity and --roster"
    )]
    NotAMember(PublicKey),
    /// The roster's peer id for this member does not match its key.
    #[error("the roster lists peer id {listed} for this member, but its key gives {derived}")]
    PeerIdMismatch {
        /// In the roster.
        listed: String,
        /// Derived from the identity key.
        derived: String,
    },
    /// The key share file does not decode.
    #[error("key share {path}: {message}")]
    KeyShare {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The network layer failed to start.
    #[error("network: {0}")]
    Network(String),
    /// The HTTP API could not bind.
    #[error("HTTP API on {addr}: {source}")]
    Api {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}
