//! # accord-observer
//!
//! What an observer of the Accord network needs, and nothing of the node: no libp2p, no redb,
//! no HTTP server. The `accord` binary's `verify`, `observe` and `statements` subcommands are
//! thin shells over this crate, and the node serves exactly the types defined here.
//!
//! - [`wire`]: the HTTP API's JSON bodies (`docs/api.md`).
//! - [`client`]: a client for a node's HTTP API, with size caps on every answer.
//! - [`export`]: the observers' contract, a co-signed statement as JSON
//!   ([`export::StatementExport`]), built from the protocol's [`accord_protocol::SignedStatement`].
//! - [`verify`]: offline verification of exported statements against a trust bundle, batched,
//!   optionally against the evidence (`accord verify`).
//! - [`observe`]: the transparency-log observer (`accord observe`): signatures, witnesses,
//!   consistency over time and between nodes, and missing verdicts.
//!
//! What this crate guarantees: everything read from a node or a file is treated as hostile
//! (size-capped, parsed into typed errors, never a panic), and a statement verifies only if its
//! redundant JSON fields agree with the signed bytes (`docs/observers.md`).

pub mod chain;
pub mod client;
pub mod export;
pub mod observe;
pub mod verify;
pub mod wire;
