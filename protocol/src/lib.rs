//! # accord-protocol
//!
//! The sans-IO core of Accord, a multi-party attestation network for a verifiable pause on
//! frontier AI development. Members (national monitoring bodies) admit signed evidence from labs
//! and inspectors, close each reporting period with signed observations, and co-sign the treaty
//! policy's verdict on every (lab, period) slot with a t-of-n FROST threshold signature over
//! Ed25519. Observers check a verdict with the group key and any RFC 8032 verifier.
//!
//! What this crate guarantees (see `docs/protocol.md` for the arguments):
//! - no forgery with fewer than t members, no suppression while t honest members are connected,
//!   no two conflicting co-signed statements for a slot (they are ordered by evidence inclusion),
//!   verdicts that follow the evidence, no late injection, no nonce reuse, nothing acknowledged
//!   lost (when the driver honours [`engine::Output::Persist`] before later outputs);
//! - determinism: no clock, no OS randomness, no sockets, no files, no hash-map iteration. Time
//!   comes in as [`time::Instant`], randomness as a `CryptoRng`, and effects go out as
//!   [`engine::Output`] values, so the node and the simulator drive exactly the same code.
//!
//! Entry points: [`engine::Engine`] for members, [`verify::verify_statement`] for observers,
//! [`transparency`] for the members' logs and witnesses, [`dkg::deal`] for test and demo keys.

pub mod codec;
pub mod crypto;
pub mod dkg;
pub mod driver;
pub mod engine;
pub mod evidence;
pub mod fixtures;
pub mod message;
pub mod policy;
pub mod repair;
pub mod roster;
pub mod statement;
pub mod succession;
pub mod time;
pub mod transparency;
pub mod verify;

pub use engine::{Delivery, Engine, EngineConfig, Event, Output, Record};
pub use roster::limits;
pub use roster::{MemberIndex, Network, Period, Roster};
pub use statement::SignedStatement;
pub use succession::{Chain, SignedSuccession, Succession};
pub use time::Instant;
pub use verify::{TrustBundle, verify_statement};
