//! Performing an engine's outputs: the one place where "durable before send" is enforced.
//!
//! Every driver of an [`Engine`] — the node, the simulator, the test harnesses, the fuzz
//! targets — drains it with [`drain`] into its own [`Effects`]. The engine's contract
//! (`docs/protocol.md` §21.1) is that a `Persist` or `StoreKey` is durable before any later
//! `Send` or `Broadcast` leaves the process; [`drain`] keeps it by calling [`Effects::sync`]
//! before every send, broadcast, compaction and key store that follows a record, and once at
//! the end, so an implementation may buffer records between syncs (the node commits them as one
//! storage transaction: a group commit) and still never lets a message overtake the record that
//! justifies it.
//!
//! ```
//! use accord_protocol::driver::{self, Effects};
//! use accord_protocol::dkg::KeyMaterial;
//! use accord_protocol::engine::{Event, Record};
//! use accord_protocol::message::Message;
//! use accord_protocol::roster::MemberIndex;
//!
//! /// Keeps everything in memory, as a test harness does.
//! #[derive(Default)]
//! struct InMemory {
//!     records: Vec<Record>,
//!     durable: usize,
//!     sent: Vec<(Option<MemberIndex>, Message)>,
//! }
//!
//! impl Effects for InMemory {
//!     type Error = std::convert::Infallible;
//!     fn persist(&mut self, record: Record) -> Result<(), Self::Error> {
//!         self.records.push(record);
//!         Ok(())
//!     }
//!     fn sync(&mut self) -> Result<(), Self::Error> {
//!         self.durable = self.records.len();
//!         Ok(())
//!     }
//!     fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), Self::Error> {
//!         self.records = snapshot;
//!         self.durable = self.records.len();
//!         Ok(())
//!     }
//!     fn store_key(&mut self, _key: KeyMaterial) -> Result<(), Self::Error> {
//!         Ok(())
//!     }
//!     fn store_pending_key(&mut self, _key: Option<KeyMaterial>) -> Result<(), Self::Error> {
//!         Ok(())
//!     }
//!     fn send(&mut self, to: MemberIndex, message: Message) {
//!         assert_eq!(self.durable, self.records.len(), "a message overtook a record");
//!         self.sent.push((Some(to), message));
//!     }
//!     fn broadcast(&mut self, message: Message) {
//!         assert_eq!(self.durable, self.records.len(), "a message overtook a record");
//!         self.sent.push((None, message));
//!     }
//!     fn event(&mut self, _event: Event) {}
//! }
//! # let _ = driver::drain::<InMemory>;
//! ```

use crate::dkg::KeyMaterial;
use crate::engine::{Engine, Event, Output, Record};
use crate::message::Message;
use crate::roster::MemberIndex;

/// What a driver does with an engine's outputs. [`drain`] calls these in the engine's output
/// order, with [`Effects::sync`] inserted wherever durability must come first.
pub trait Effects {
    /// A storage failure. [`drain`] stops at the first one: nothing after it is performed, so a
    /// message never leaves without the record that must precede it.
    type Error;

    /// Takes a record to persist. It may be buffered until the next [`Effects::sync`].
    ///
    /// # Errors
    /// The record cannot be taken (storage failed).
    fn persist(&mut self, record: Record) -> Result<(), Self::Error>;

    /// Makes every record taken so far durable.
    ///
    /// # Errors
    /// Storage failed; the driver must then stop before anything else leaves.
    fn sync(&mut self) -> Result<(), Self::Error>;

    /// Replaces every record persisted so far by `snapshot`, atomically (the record log's
    /// compaction). Called after [`Effects::sync`].
    ///
    /// # Errors
    /// Storage failed.
    fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), Self::Error>;

    /// Stores the member's new key share durably. Called after [`Effects::sync`].
    ///
    /// # Errors
    /// Storage failed.
    fn store_key(&mut self, key: KeyMaterial) -> Result<(), Self::Error>;

    /// Stores (`Some`) or deletes (`None`) the member's pending key file durably: a refreshed
    /// share awaiting confirmation, kept beside the key file. Called after [`Effects::sync`].
    ///
    /// # Errors
    /// Storage failed.
    fn store_pending_key(&mut self, key: Option<KeyMaterial>) -> Result<(), Self::Error>;

    /// Sends `message` to member `to`. Every record before it is durable.
    fn send(&mut self, to: MemberIndex, message: Message);

    /// Sends `message` to every member. Every record before it is durable.
    fn broadcast(&mut self, message: Message);

    /// Reports an event (metrics, logs, the API, invariant checks).
    fn event(&mut self, event: Event);
}

/// Performs every output `engine` has queued, in order, into `effects`; records are synced
/// before anything that must not overtake them, and at the end.
///
/// # Errors
/// The first storage error; the outputs after it stay unperformed (the caller stops).
pub fn drain<E: Effects>(engine: &mut Engine, effects: &mut E) -> Result<(), E::Error> {
    perform(std::iter::from_fn(|| engine.poll_output()), effects)
}

/// As [`drain`], over outputs already taken from the engine ([`Engine::take_outputs`]), for a
/// driver whose effects need the engine's owner (a harness performing one member's outputs
/// while it holds every member).
///
/// # Errors
/// The first storage error; the outputs after it stay unperformed.
pub fn perform<E: Effects>(
    outputs: impl IntoIterator<Item = Output>,
    effects: &mut E,
) -> Result<(), E::Error> {
    let mut unsynced = false;
    for output in outputs {
        match output {
            Output::Persist(record) => {
                effects.persist(record)?;
                unsynced = true;
            }
            Output::Event(event) => effects.event(event),
            Output::Snapshot(snapshot) => {
                settle(effects, &mut unsynced)?;
                effects.compact(snapshot)?;
            }
            Output::StoreKey(key) => {
                settle(effects, &mut unsynced)?;
                effects.store_key(*key)?;
            }
            Output::StorePendingKey(key) => {
                settle(effects, &mut unsynced)?;
                effects.store_pending_key(key.map(|k| *k))?;
            }
            Output::Send { to, message } => {
                settle(effects, &mut unsynced)?;
                effects.send(to, message);
            }
            Output::Broadcast(message) => {
                settle(effects, &mut unsynced)?;
                effects.broadcast(message);
            }
        }
    }
    settle(effects, &mut unsynced)
}

/// Syncs the records taken since the last sync, if any.
fn settle<E: Effects>(effects: &mut E, unsynced: &mut bool) -> Result<(), E::Error> {
    if std::mem::take(unsynced) {
        effects.sync()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::crypto::SecretKey;
    use crate::dkg::deal;
    use crate::engine::EngineConfig;
    use crate::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
    use crate::roster::{LabIndex, Network, Period};
    use crate::time::Instant;

    /// Logs every call; `fail_sync` makes the first sync fail.
    #[derive(Default)]
    struct Log {
        calls: Vec<&'static str>,
        fail_sync: bool,
    }

    impl Effects for Log {
        type Error = &'static str;
        fn persist(&mut self, _: Record) -> Result<(), Self::Error> {
            self.calls.push("persist");
            Ok(())
        }
        fn sync(&mut self) -> Result<(), Self::Error> {
            self.calls.push("sync");
            if self.fail_sync {
                return Err("disk full");
            }
            Ok(())
        }
        fn compact(&mut self, _: Vec<Record>) -> Result<(), Self::Error> {
            self.calls.push("compact");
            Ok(())
        }
        fn store_key(&mut self, _: KeyMaterial) -> Result<(), Self::Error> {
            self.calls.push("store-key");
            Ok(())
        }
        fn store_pending_key(&mut self, _: Option<KeyMaterial>) -> Result<(), Self::Error> {
            self.calls.push("store-pending-key");
            Ok(())
        }
        fn send(&mut self, _: MemberIndex, _: Message) {
            self.calls.push("send");
        }
        fn broadcast(&mut self, _: Message) {
            self.calls.push("broadcast");
        }
        fn event(&mut self, _: Event) {
            self.calls.push("event");
        }
    }

    /// A member holding dealt keys, and a compliant attestation of lab 0 for period 0.
    fn member_and_item() -> (Engine, crate::evidence::Evidence, Instant) {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let tn = Testnet::generate(&TestnetSpec::new(4, 1, 1_000_000), &mut rng, |k| k.to_hex());
        let net: Arc<Network> = Network::new(tn.roster.clone()).expect("a valid roster");
        let keys = deal(&net, &mut rng).expect("dealt keys");
        let engine = Engine::new(
            net.clone(),
            MemberIndex(0),
            SecretKey::from_seed(&tn.members[0].seed()),
            Some(keys[0].clone()),
            EngineConfig::default(),
        );
        let now = net.schedule().start(Period(0));
        let item = lab_submissions(
            net.id(),
            net.lab_id(LabIndex(0)),
            &tn.labs[0],
            Period(0),
            &net.roster().policy,
            LabConduct::Compliant,
            now,
            &mut rng,
        )
        .remove(0);
        (engine, item, now)
    }

    #[test]
    fn records_are_synced_before_what_follows_them_and_events_wait_for_nothing() {
        let (mut engine, item, now) = member_and_item();
        engine.submit(now, item).expect("admitted");
        let mut log = Log::default();
        drain(&mut engine, &mut log).expect("no storage error");
        // Admission: the record, the event, then the gossip only after the sync.
        assert_eq!(log.calls, ["persist", "event", "sync", "broadcast"]);
        // Nothing queued: no sync either.
        let mut idle = Log::default();
        drain(&mut engine, &mut idle).expect("no storage error");
        assert!(idle.calls.is_empty());
    }

    #[test]
    fn a_failed_sync_stops_before_anything_leaves() {
        let (mut engine, item, now) = member_and_item();
        engine.submit(now, item).expect("admitted");
        let mut log = Log {
            fail_sync: true,
            ..Log::default()
        };
        assert_eq!(drain(&mut engine, &mut log), Err("disk full"));
        assert_eq!(log.calls, ["persist", "event", "sync"]);
    }
}
