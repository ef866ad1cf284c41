//! # accord-testkit
//!
//! What Accord's tests, simulator and fuzz targets share to drive engines, and what production
//! builds never link:
//!
//! - [`Member`]: an engine whose durable state is its records and key file, crashed and
//!   restarted from them only (invariant 7 checked at every restart);
//! - [`Cluster`]: a virtual-time network of members (quinn's `Pair`, str0m's `progress`): one
//!   event queue ordered by (time, sequence), fixed link latency, partitions, Byzantine members;
//! - [`adversary`] and [`generative`]: the Byzantine behaviours, hand-written and generated, that
//!   rewrite what an otherwise honest engine sends (the simulator uses the same ones);
//! - [`InvariantChecker`]: invariants 3 to 6 and the blame record, from what members persist
//!   and send;
//! - [`child_rng`]: one reproducible random stream per (seed, label, index, incarnation).
//!
//! The engine's outputs are performed with [`accord_protocol::driver`], as in the node.
//! Fixtures (test rosters, lab conduct) and dealt keys stay in `accord-protocol`: the shipped
//! `accord demo` and `accord testnet` use them.

pub mod adversary;
mod checker;
mod cluster;
pub use adversary::generative;
mod member;

use accord_protocol::crypto::Digest;
use accord_protocol::dkg::DkgBody;
use accord_protocol::message::Message;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub use adversary::Behaviour;
pub use checker::{InvariantChecker, InvariantViolation, NonceChecks};
pub use cluster::{Cluster, ClusterSpec, co_sign, frost_sign};
pub use member::{AcknowledgedLost, Member};

/// A child RNG for (seed, label, index, incarnation), so each member, the network and the
/// workload have independent reproducible streams, and a restarted member never replays the
/// randomness (and so the nonces) of its previous life.
pub fn child_rng(seed: u64, label: &str, index: u64, incarnation: u64) -> ChaCha20Rng {
    let d = Digest::tagged(
        "accord/testkit/rng",
        &[
            &seed.to_le_bytes(),
            label.as_bytes(),
            &index.to_le_bytes(),
            &incarnation.to_le_bytes(),
        ],
    );
    ChaCha20Rng::from_seed(d.0)
}

/// Whether a DKG message is a round-1 package (for tests that tamper with ceremonies).
pub fn is_round1(m: &Message) -> bool {
    matches!(m, Message::Dkg(d) if matches!(d.body, DkgBody::Round1(_)))
}
