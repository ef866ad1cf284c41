//! One member as a harness runs it: an engine whose durable state is what it persisted (its
//! records and its key file), so that a crash loses exactly what a SIGKILL would and a restart
//! rebuilds the member from storage only. The protocol's harness ([`crate::Cluster`]) and the
//! simulator both run their members through this type, and both perform the engine's outputs
//! with [`accord_protocol::driver`].

use std::collections::BTreeMap;
use std::sync::Arc;

use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::engine::{Engine, EngineConfig, Record};
use accord_protocol::roster::{MemberIndex, Network, Period};
use rand_chacha::ChaCha20Rng;

use crate::child_rng;

/// A member's engine and its durable state.
pub struct Member {
    /// Which member.
    pub index: MemberIndex,
    /// The running engine; `None` while crashed.
    pub engine: Option<Engine>,
    /// Everything it persisted (what survives a crash), compacted as the engine asks.
    pub records: Vec<Record>,
    /// Its key file.
    pub key: Option<KeyMaterial>,
    /// Its pending key file (a refreshed share awaiting confirmations).
    pub pending_key: Option<KeyMaterial>,
    /// Items acknowledged to their submitters, with their periods (must survive crashes while
    /// the engine keeps their period: invariant 7).
    pub acknowledged: BTreeMap<Digest, Period>,
    /// Its randomness; a restart draws a fresh stream, so nonces are never replayed.
    pub rng: ChaCha20Rng,
    incarnation: u64,
    seed: u64,
    /// The label of its random streams (`child_rng(seed, label, index, incarnation)`).
    stream: &'static str,
}

/// Invariant 7 broken: items acknowledged before a crash that the restarted engine lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcknowledgedLost(pub Vec<Digest>);

impl Member {
    /// Member `index` running `engine`, with key file `key`; its randomness comes from `seed`.
    pub fn new(index: MemberIndex, engine: Engine, key: Option<KeyMaterial>, seed: u64) -> Self {
        Self::with_stream(index, engine, key, seed, "member")
    }

    /// As [`Member::new`], drawing randomness from the streams labelled `stream` (a second
    /// engine with the same member's keys, as Twins run, needs its own).
    pub fn with_stream(
        index: MemberIndex,
        engine: Engine,
        key: Option<KeyMaterial>,
        seed: u64,
        stream: &'static str,
    ) -> Self {
        Self {
            index,
            engine: Some(engine),
            records: Vec::new(),
            key,
            pending_key: None,
            acknowledged: BTreeMap::new(),
            rng: child_rng(seed, stream, u64::from(index.0), 0),
            incarnation: 0,
            seed,
            stream,
        }
    }

    /// Times the member has restarted.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Crashes the member (like SIGKILL): memory is lost, records and key file stay.
    pub fn crash(&mut self) {
        self.engine = None;
    }

    /// Restarts the member from its records and key file only, with a fresh random stream.
    ///
    /// # Errors
    /// Invariant 7: acknowledged items of periods the restarted engine keeps are missing.
    pub fn restart(
        &mut self,
        net: &Arc<Network>,
        identity: SecretKey,
        config: EngineConfig,
    ) -> Result<(), AcknowledgedLost> {
        self.incarnation += 1;
        self.rng = child_rng(
            self.seed,
            self.stream,
            u64::from(self.index.0),
            self.incarnation,
        );
        let engine = Engine::restore_with_pending(
            net.clone(),
            self.index,
            identity,
            self.key.clone(),
            self.pending_key.clone(),
            config,
            self.records.iter().cloned(),
        );
        let lost: Vec<Digest> = self
            .acknowledged
            .iter()
            .filter(|(d, p)| engine.retains(**p) && engine.evidence(d).is_none())
            .map(|(d, _)| *d)
            .collect();
        self.engine = Some(engine);
        if lost.is_empty() {
            Ok(())
        } else {
            Err(AcknowledgedLost(lost))
        }
    }

    /// Stores a record the engine persisted.
    pub fn persist(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Replaces the records by the engine's snapshot (the record log's compaction).
    pub fn compact(&mut self, snapshot: Vec<Record>) {
        self.records = snapshot;
    }

    /// Stores a new key share in the key file.
    pub fn store_key(&mut self, key: KeyMaterial) {
        self.key = Some(key);
    }

    /// Stores (or deletes) the pending key file.
    pub fn store_pending_key(&mut self, key: Option<KeyMaterial>) {
        self.pending_key = key;
    }
}

#[cfg(test)]
mod tests {
    use accord_protocol::fixtures::LabConduct;

    use super::*;
    use crate::{Cluster, ClusterSpec};

    #[test]
    fn a_restart_keeps_what_was_persisted_and_reports_what_was_not() {
        let mut c = Cluster::new(ClusterSpec::new(4, 1));
        let start = c.net.schedule().start(Period(0));
        c.run_until(start);
        c.submit_period(Period(0), |_| LabConduct::Compliant);
        let m = MemberIndex(0);
        let held = c.nodes[0].acknowledged.clone();
        assert!(!held.is_empty(), "member 0 acknowledged items");
        let identity = || SecretKey::from_seed(&c.identities[0].seed());
        let mut member = Member {
            index: m,
            engine: None,
            records: c.nodes[0].records.clone(),
            key: c.nodes[0].key.clone(),
            pending_key: None,
            acknowledged: held,
            rng: child_rng(1, "member", 0, 0),
            incarnation: 0,
            seed: 1,
            stream: "member",
        };
        let net = c.net.clone();
        assert_eq!(
            member.restart(&net, identity(), EngineConfig::default()),
            Ok(())
        );
        assert_eq!(member.incarnation(), 1);
        // Without its records the member lost what it acknowledged.
        member.crash();
        member.records.clear();
        let lost = member
            .restart(&net, identity(), EngineConfig::default())
            .expect_err("the acknowledged items are gone");
        assert_eq!(lost.0.len(), member.acknowledged.len());
    }
}
