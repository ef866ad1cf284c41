//! # accord-node
//!
//! The `accord` daemon and command-line tool: a tokio + libp2p shell around the sans-IO protocol
//! engine of `accord-protocol`.
//!
//! What this crate guarantees on top of the engine's invariants:
//! - **Order of effects.** The event loop performs the engine's outputs in order; every
//!   `Persist` and `StoreKey` is committed (redb `Durability::Immediate`, or an fsynced key file)
//!   before any later message leaves the process, and a submission is acknowledged only after its
//!   record is durable. If storage fails the node stops instead of risking a share without its
//!   protection record.
//! - **Authenticated senders.** The member passed to the engine comes from the Noise-authenticated
//!   connection (request-response) or from gossipsub's signed `source`, never from a message body;
//!   only roster peers may connect.
//! - **Bounded resources.** Bounded channels, size limits on every frame before allocation,
//!   connection limits, HTTP body and concurrency limits.
//! - **Secrets.** Identity and key share live in files created 0600 (refused when readable by
//!   others), optionally sealed with a passphrase (Argon2id + XChaCha20-Poly1305), zeroized in
//!   memory and never logged.
//!
//! Entry points: [`node::run`] (the daemon, with an injectable shutdown future), [`testnet`]
//! (local networks), [`store`] (the database, with the member's transparency log in [`store::log`]). The observers' side (the API's
//! wire types and client, the statement JSON, `verify`, `observe`) is the `accord-observer`
//! crate. The command-line interface lives in the `accord` binary.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod handle;
pub mod keyfile;
pub mod metrics;
pub mod p2p;
pub mod store;
pub mod testnet;
