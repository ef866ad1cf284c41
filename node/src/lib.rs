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
//! Where things are (no two modules import each other: the daemon starts the API, the API uses
//! the handle and the store, and none of them imports back):
//! - [`daemon`]: [`daemon::run`], the node from start-up to shutdown (with an injectable shutdown
//!   future): the event loop that owns the swarm and the engine, the engine's effects, swarm
//!   events, peers, witnessing, reporting.
//! - [`api`]: the HTTP API, one file per resource, over a [`handle::Handle`] and the store.
//! - [`handle`]: the typed way into the running node (its commands are crate-private).
//! - [`store`]: the redb database: records, statements (canonical records), evidence, and the
//!   member's transparency log ([`store::log`]) and witnessing tables ([`store::witness`]).
//! - [`p2p`]: the libp2p behaviour, wire codecs and gossip scoring.
//! - [`config`] (the roster and the TOML config), [`keyfile`] and [`auth`] (secrets and the
//!   operator token), [`metrics`], [`clock`], [`testnet`] (local networks).
//!
//! The observers' side (the API's wire types and client, the statement JSON, `verify`, `observe`)
//! is the `accord-observer` crate, which builds without libp2p, redb or axum. The command-line
//! interface lives in the `accord` binary (`src/cmd/`, one file per subcommand).

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
