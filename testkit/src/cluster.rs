//! A virtual-time harness that runs whole networks of engines in memory.
//!
//! Like quinn's `Pair` or str0m's `progress`: one event queue ordered by (time, sequence), a
//! fixed link latency, members ([`Member`]) that may crash and restart from their persisted
//! records only, and Byzantine behaviours applied to what a member sends. After every step the
//! [`InvariantChecker`] checks the safety invariants of the design brief;
//! [`Cluster::assert_live`] checks liveness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use accord_protocol::crypto::{CheckedSignatures, Digest, SecretKey, Verifier};
use accord_protocol::dkg::{KeyMaterial, deal};
use accord_protocol::driver::{self, Effects};
use accord_protocol::engine::{
    Delivery, Engine, EngineConfig, Event, Record, RefreshAbortError, RefreshStartError,
    RepairError,
};
use accord_protocol::evidence::{Evidence, EvidenceError};
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
use accord_protocol::message::Message;
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::statement::{CoSigned, Unit};
use accord_protocol::time::Instant;

use crate::adversary::{Adversary, Behaviour};
use crate::{InvariantChecker, Member, child_rng};

/// How to build a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Network shape.
    pub testnet: TestnetSpec,
    /// Behaviour of each member (missing entries are honest).
    pub behaviours: Vec<Behaviour>,
    /// Link latency.
    pub latency_ms: u64,
    /// Master seed.
    pub seed: u64,
    /// Run a DKG instead of dealing keys.
    pub dkg: bool,
    /// Every member's share-refresh schedule (`EngineConfig::refresh_every`).
    pub refresh_every: Option<u64>,
    /// A successor epoch's first period (`EngineConfig::epoch_start`).
    pub epoch_start: Option<Period>,
}

impl ClusterSpec {
    /// n members, t default, `labs` labs, dealt keys, 5 ms links.
    pub fn new(n: usize, labs: usize) -> Self {
        Self {
            testnet: TestnetSpec::new(n, labs, 1_000_000),
            behaviours: Vec::new(),
            latency_ms: 5,
            seed: 7,
            dkg: false,
            refresh_every: None,
            epoch_start: None,
        }
    }
}

#[allow(clippy::large_enum_variant)] // a test harness queue; boxing buys nothing here
enum Pending {
    Deliver {
        from: MemberIndex,
        to: MemberIndex,
        message: Message,
    },
    Timer(MemberIndex),
}

/// A network of engines in virtual time.
pub struct Cluster {
    /// The network.
    pub net: Arc<Network>,
    /// Current virtual time.
    pub now: Instant,
    /// The members.
    pub nodes: Vec<Member>,
    /// Each member's behaviour.
    pub behaviours: Vec<Behaviour>,
    /// Each member's pending timer.
    timers: Vec<Option<Instant>>,
    /// The engine configuration members start and restart with.
    config: EngineConfig,
    /// Member identity keys (the harness plays every member).
    pub identities: Vec<SecretKey>,
    /// Lab keys.
    pub lab_keys: Vec<SecretKey>,
    /// The invariant checker.
    pub checker: InvariantChecker,
    /// Members cut off from the network (messages to and from them are dropped).
    pub partitioned: BTreeSet<MemberIndex>,
    /// Per member, which incoming messages are lost on the way to it.
    pub deaf: BTreeMap<MemberIndex, fn(&Message) -> bool>,
    queue: BTreeMap<(Instant, u64), Pending>,
    seq: u64,
    latency_ms: u64,
    seed: u64,
    rng: ChaCha20Rng,
    /// Steps taken.
    pub steps: u64,
    /// Messages dropped because they were over the frame limit.
    pub oversized: u64,
    /// When set, every message handed to the network is recorded here (sender, recipient).
    pub transcript: Option<Vec<(MemberIndex, MemberIndex, Message)>>,
    mutators: Vec<crate::generative::Mutator>,
}

impl Cluster {
    /// Builds the cluster (keys dealt unless `spec.dkg`).
    pub fn new(spec: ClusterSpec) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
        let testnet = Testnet::generate(&spec.testnet, &mut rng, |k| {
            format!("peer-{}", &k.to_hex()[..16])
        });
        let net = Network::new(testnet.roster).expect("generated rosters are valid");
        let keys: Vec<Option<KeyMaterial>> = if spec.dkg {
            vec![None; net.n()]
        } else {
            deal(&net, &mut rng)
                .expect("dealer works for valid rosters")
                .into_iter()
                .map(Some)
                .collect()
        };
        // The members share one memo of signatures found valid: each is checked once per
        // cluster, not once per member (outcomes are the same).
        let config = EngineConfig {
            verifier: Verifier::shared(Arc::new(CheckedSignatures::default())),
            refresh_every: spec.refresh_every,
            epoch_start: spec.epoch_start,
            ..EngineConfig::default()
        };
        let nodes = (0..net.n())
            .map(|i| {
                let m = MemberIndex(i as u16);
                let identity = SecretKey::from_seed(&testnet.members[i].seed());
                let key = keys[i].clone();
                let engine = Engine::new(net.clone(), m, identity, key.clone(), config.clone());
                Member::new(m, engine, key, spec.seed)
            })
            .collect();
        let behaviours = (0..net.n())
            .map(|i| spec.behaviours.get(i).copied().unwrap_or(Behaviour::Honest))
            .collect();
        let mut cluster = Self {
            now: Instant::from_millis(net.schedule().genesis_ms),
            timers: vec![None; net.n()],
            config,
            net,
            nodes,
            behaviours,
            identities: testnet.members,
            lab_keys: testnet.labs,
            checker: InvariantChecker::default(),
            partitioned: BTreeSet::new(),
            deaf: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            latency_ms: spec.latency_ms,
            seed: spec.seed,
            rng: child_rng(spec.seed, "network", 0, 0),
            steps: 0,
            oversized: 0,
            transcript: None,
            mutators: Vec::new(),
        };
        cluster
            .mutators
            .resize_with(cluster.nodes.len(), Default::default);
        for i in 0..cluster.nodes.len() {
            cluster.schedule_timer(MemberIndex(i as u16));
        }
        cluster
    }

    /// Member `m`'s engine (panics if crashed).
    pub fn engine(&self, m: MemberIndex) -> &Engine {
        self.nodes[usize::from(m.0)]
            .engine
            .as_ref()
            .expect("member is running")
    }

    /// Honest members.
    pub fn honest(&self) -> Vec<MemberIndex> {
        self.net
            .members()
            .filter(|m| self.behaviours[usize::from(m.0)].is_honest())
            .collect()
    }

    /// Starts DKG ceremony `ceremony` at every running member.
    pub fn start_dkg(&mut self, ceremony: u32) {
        for i in 0..self.nodes.len() {
            let m = MemberIndex(i as u16);
            let now = self.now;
            let node = &mut self.nodes[i];
            if let Some(engine) = node.engine.as_mut() {
                let _ = engine.start_dkg(now, ceremony, &mut node.rng);
            }
            self.drain(m);
        }
    }

    /// Starts refresh ceremony `ceremony` at member `at` (the operator's command); the others
    /// join when its round-1 package reaches them.
    ///
    /// # Errors
    /// The engine's refusal (or [`RefreshStartError::NoKey`] when `at` is down).
    pub fn start_refresh(
        &mut self,
        at: MemberIndex,
        ceremony: u32,
    ) -> Result<(), RefreshStartError> {
        let now = self.now;
        let node = &mut self.nodes[usize::from(at.0)];
        let Some(engine) = node.engine.as_mut() else {
            return Err(RefreshStartError::NoKey);
        };
        let result = engine.start_refresh(now, ceremony, &mut node.rng);
        self.drain(at);
        self.schedule_timer(at);
        result
    }

    /// Aborts the refresh running at member `at` (the operator's `refresh abort`).
    ///
    /// # Errors
    /// The engine's refusal (or [`RefreshAbortError::NotRunning`] when `at` is down).
    pub fn abort_refresh(&mut self, at: MemberIndex) -> Result<u32, RefreshAbortError> {
        let now = self.now;
        let node = &mut self.nodes[usize::from(at.0)];
        let Some(engine) = node.engine.as_mut() else {
            return Err(RefreshAbortError::NotRunning);
        };
        let result = engine.abort_refresh(now);
        self.drain(at);
        self.schedule_timer(at);
        result
    }

    /// Member `m`'s operator asks for its share to be repaired by `helpers` (default: the
    /// engine's choice).
    ///
    /// # Errors
    /// The engine's refusal of the helper set.
    pub fn request_repair(
        &mut self,
        m: MemberIndex,
        helpers: Option<Vec<MemberIndex>>,
    ) -> Result<(), RepairError> {
        let now = self.now;
        let node = &mut self.nodes[usize::from(m.0)];
        let engine = node.engine.as_mut().expect("member is running");
        let result = engine.request_repair(now, helpers, &mut node.rng);
        self.drain(m);
        self.schedule_timer(m);
        result
    }

    /// Delivers `message` to member `to`'s engine at once, as sent by `from`, and returns the
    /// engine's verdict on it (for tests of how a hostile message is refused).
    pub fn deliver_now(
        &mut self,
        from: MemberIndex,
        to: MemberIndex,
        message: Message,
    ) -> Delivery {
        let now = self.now;
        let node = &mut self.nodes[usize::from(to.0)];
        let engine = node.engine.as_mut().expect("member is running");
        let delivery = engine.handle_message(now, from, message, &mut node.rng);
        self.drain(to);
        self.schedule_timer(to);
        delivery
    }

    /// Submits `evidence` to member `to` as a lab or operator would.
    ///
    /// # Errors
    /// The engine's refusal.
    pub fn submit(&mut self, to: MemberIndex, evidence: Evidence) -> Result<Digest, EvidenceError> {
        let now = self.now;
        let evidence_arc = Arc::new(evidence.clone());
        let node = &mut self.nodes[usize::from(to.0)];
        let Some(engine) = node.engine.as_mut() else {
            return Err(EvidenceError::BadField("member is down"));
        };
        let result = engine.submit(now, evidence);
        let period = evidence_arc.period();
        if let Ok(d) = &result {
            self.checker.bodies.insert(*d, evidence_arc);
        }
        self.drain(to);
        // The acknowledgement goes out only now, after the outputs (and so the Persist) ran.
        if let Ok(d) = &result {
            self.nodes[usize::from(to.0)]
                .acknowledged
                .insert(*d, period);
        }
        result
    }

    /// Every lab submits for `period` according to `conduct(lab)`, each item to one member
    /// (round robin); gossip spreads it.
    pub fn submit_period(&mut self, period: Period, conduct: impl Fn(usize) -> LabConduct) {
        let mut wrng = child_rng(self.seed, "workload", period.0, 0);
        let issued = self.now;
        for i in 0..self.lab_keys.len() {
            let lab = self
                .net
                .lab_id(accord_protocol::roster::LabIndex(i as u16))
                .to_string();
            let items = lab_submissions(
                self.net.id(),
                &lab,
                &self.lab_keys[i],
                period,
                &self.net.roster().policy,
                conduct(i),
                issued,
                &mut wrng,
            );
            for (j, ev) in items.into_iter().enumerate() {
                let to = MemberIndex(((i + j) % self.net.n()) as u16);
                let to = if self.nodes[usize::from(to.0)].engine.is_some() {
                    to
                } else {
                    self.honest()[0]
                };
                let _ = self.submit(to, ev);
            }
        }
    }

    /// Crashes member `m` (like SIGKILL): memory is lost, persisted records stay.
    pub fn crash(&mut self, m: MemberIndex) {
        let i = usize::from(m.0);
        self.nodes[i].crash();
        self.timers[i] = None;
    }

    /// Restarts member `m` from its records and key file only.
    pub fn restart(&mut self, m: MemberIndex) {
        let i = usize::from(m.0);
        let identity = SecretKey::from_seed(&self.identities[i].seed());
        let net = self.net.clone();
        let config = self.config.clone();
        if let Err(lost) = self.nodes[i].restart(&net, identity, config) {
            panic!(
                "invariant 7: acknowledged items {:?} lost by {m} across a restart",
                lost.0
            );
        }
        for other in self.net.members() {
            if other != m && self.nodes[usize::from(other.0)].engine.is_some() {
                if let Some(engine) = self.nodes[i].engine.as_mut() {
                    engine.peer_connected(other);
                }
                if let Some(engine) = self.nodes[usize::from(other.0)].engine.as_mut() {
                    engine.peer_connected(m);
                }
                self.drain(other);
            }
        }
        self.drain(m);
        self.schedule_timer(m);
    }

    /// Member `m`'s operator approves a succession (`docs/protocol.md` §22.7).
    ///
    /// # Errors
    /// The engine's refusal.
    pub fn approve_succession(
        &mut self,
        m: MemberIndex,
        proposal: accord_protocol::succession::SuccessionProposal,
    ) -> Result<Digest, accord_protocol::engine::SuccessionError> {
        let now = self.now;
        let node = &mut self.nodes[usize::from(m.0)];
        let engine = node.engine.as_mut().expect("member is running");
        let result = engine.approve_succession(now, proposal, &mut node.rng);
        self.drain(m);
        self.schedule_timer(m);
        result
    }

    /// Member `m` of a successor epoch adopts the succession that hands it its periods.
    ///
    /// # Errors
    /// The engine's refusal.
    pub fn adopt_succession(
        &mut self,
        m: MemberIndex,
        signed: accord_protocol::succession::SignedSuccession,
        previous: &accord_protocol::verify::TrustBundle,
    ) -> Result<(), accord_protocol::engine::SuccessionError> {
        let now = self.now;
        let engine = self.nodes[usize::from(m.0)]
            .engine
            .as_mut()
            .expect("member is running");
        let result = engine.adopt_succession(now, signed, previous);
        self.drain(m);
        self.schedule_timer(m);
        result
    }

    /// Runs until virtual time `until` (or the queue empties).
    pub fn run_until(&mut self, until: Instant) {
        while let Some((&(at, _), _)) = self.queue.first_key_value() {
            if at > until {
                break;
            }
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs until `done(self)` or virtual time `limit`; returns whether `done` held.
    pub fn run_until_condition(&mut self, limit: Instant, done: impl Fn(&Cluster) -> bool) -> bool {
        while !done(self) {
            match self.queue.first_key_value() {
                Some((&(at, _), _)) if at <= limit => self.step(),
                _ => return done(self),
            }
        }
        true
    }

    /// Whether every unit of `periods` is decided at every running honest member.
    pub fn all_decided(&self, periods: impl IntoIterator<Item = Period> + Clone) -> bool {
        self.honest()
            .iter()
            .filter(|m| self.nodes[usize::from(m.0)].engine.is_some())
            .all(|m| {
                let engine = self.engine(*m);
                periods.clone().into_iter().all(|p| {
                    Unit::all_for(&self.net, p)
                        .iter()
                        .all(|u| engine.decided().any(|c| c.unit == *u))
                })
            })
    }

    /// Invariant 2 (no suppression): every unit of `periods` is decided at every running honest
    /// member within `budget_ms` after the last slot closes.
    pub fn assert_live(&mut self, periods: std::ops::Range<u64>, budget_ms: u64) {
        let last = Period(periods.end.saturating_sub(1));
        let deadline = self
            .net
            .schedule()
            .close(last)
            .saturating_add(core::time::Duration::from_millis(budget_ms));
        let ps: Vec<Period> = periods.map(Period).collect();
        let ok = self.run_until_condition(deadline, |c| c.all_decided(ps.clone()));
        assert!(
            ok,
            "invariant 2: not every slot of {ps:?} was co-signed within {budget_ms} ms of the close (now {:?})",
            self.now
        );
    }

    fn step(&mut self) {
        let Some(((at, _), pending)) = self.queue.pop_first() else {
            return;
        };
        self.now = self.now.max(at);
        self.steps += 1;
        match pending {
            Pending::Timer(m) => {
                let i = usize::from(m.0);
                if self.timers[i] != Some(at) {
                    return;
                }
                self.timers[i] = None;
                let node = &mut self.nodes[i];
                if let Some(engine) = node.engine.as_mut() {
                    engine.handle_timeout(self.now, &mut node.rng);
                }
                self.drain(m);
                self.schedule_timer(m);
            }
            Pending::Deliver { from, to, message } => {
                if self.deaf.get(&to).is_some_and(|lost| lost(&message)) {
                    return;
                }
                let now = self.now;
                if self.behaviours[usize::from(to.0)] == Behaviour::Silent {
                    return;
                }
                let node = &mut self.nodes[usize::from(to.0)];
                let Some(engine) = node.engine.as_mut() else {
                    return;
                };
                let gossip = message.is_gossip();
                let relay = gossip.then(|| message.clone());
                let delivery = engine.handle_message(now, from, message, &mut node.rng);
                self.drain(to);
                self.schedule_timer(to);
                // Gossip: an honest member forwards what it accepted, keeping the original author
                // (gossipsub's signed source), so every member eventually sees every version.
                if let (Some(message), Delivery::Accepted, true) = (
                    relay,
                    delivery,
                    self.behaviours[usize::from(to.0)].is_honest(),
                ) {
                    let others: Vec<MemberIndex> = self
                        .net
                        .members()
                        .filter(|o| *o != to && *o != from)
                        .collect();
                    for o in others {
                        self.transmit(from, o, message.clone());
                    }
                }
            }
        }
        if let Err(v) = self.checker.check(&self.net) {
            panic!("{v}");
        }
    }

    fn schedule_timer(&mut self, m: MemberIndex) {
        let i = usize::from(m.0);
        let Some(engine) = self.nodes[i].engine.as_ref() else {
            return;
        };
        if let Some(at) = engine.poll_timeout() {
            let at = at.max(self.now);
            if self.timers[i].is_some_and(|t| t <= at) {
                return;
            }
            self.timers[i] = Some(at);
            self.seq += 1;
            self.queue.insert((at, self.seq), Pending::Timer(m));
        }
    }

    /// Performs member `m`'s outputs in order (with the protocol's driver).
    fn drain(&mut self, m: MemberIndex) {
        let i = usize::from(m.0);
        let Some(engine) = self.nodes[i].engine.as_mut() else {
            return;
        };
        let outputs = engine.take_outputs();
        let honest = self.behaviours[i].is_honest();
        let mut effects = Outputs {
            cluster: self,
            m,
            honest,
        };
        if let Err(v) = driver::perform(outputs, &mut effects) {
            panic!("{v}");
        }
    }

    fn transmit(&mut self, from: MemberIndex, to: MemberIndex, message: Message) {
        if self.partitioned.contains(&from) || self.partitioned.contains(&to) {
            return;
        }
        // As on the wire: a message over the frame limit never leaves.
        if message.encode().is_err() {
            self.oversized += 1;
            return;
        }
        if let Some(t) = self.transcript.as_mut() {
            t.push((from, to, message.clone()));
        }
        if let Message::CoSigned(c) = &message
            && let Some(key) = self
                .nodes
                .iter()
                .find_map(|n| n.key.as_ref())
                .map(KeyMaterial::group_key)
        {
            self.checker.on_cosigned(c.clone(), &self.net, &key);
        }
        if let Message::Evidence(e) = &message {
            self.checker
                .bodies
                .entry(e.digest())
                .or_insert_with(|| e.clone());
        }
        if let Message::Bodies(b) = &message {
            for e in &b.evidence {
                self.checker
                    .bodies
                    .entry(e.digest())
                    .or_insert_with(|| e.clone());
            }
        }
        let jitter = self.rng.next_u64() % 3;
        let at = self
            .now
            .saturating_add(core::time::Duration::from_millis(self.latency_ms + jitter));
        self.seq += 1;
        self.queue
            .insert((at, self.seq), Pending::Deliver { from, to, message });
    }

    /// Applies member `m`'s Byzantine behaviour to its outgoing messages.
    fn misbehave(
        &mut self,
        m: MemberIndex,
        out: Vec<(MemberIndex, Message)>,
    ) -> Vec<(MemberIndex, Message)> {
        let behaviour = self.behaviours[usize::from(m.0)];
        if behaviour.is_honest() {
            return out;
        }
        let colluders: Vec<MemberIndex> = self
            .net
            .members()
            .filter(|j| self.behaviours[usize::from(j.0)] == Behaviour::LateInjector)
            .collect();
        let adversary = Adversary {
            net: &self.net,
            identities: &self.identities,
            key: self.nodes[usize::from(m.0)].key.as_ref(),
            late: &self.checker.late_items,
            bodies: &self.checker.bodies,
            colluders: &colluders,
        };
        adversary.rewrite(
            behaviour,
            m,
            out,
            &mut self.mutators[usize::from(m.0)],
            &mut self.rng,
        )
    }

    /// Delivers `message` to `to` as sent by `from` over its authenticated connection (one link
    /// latency from now), whatever `from`'s engine would send: for tests that play a Byzantine
    /// member by hand.
    pub fn inject(&mut self, from: MemberIndex, to: MemberIndex, message: Message) {
        self.transmit(from, to, message);
    }

    /// A colluding lab hands late evidence to the late injectors, who vouch for it in their
    /// observations and slip it into their proposals; honest members never admitted it.
    pub fn inject_late(&mut self, evidence: Evidence) {
        let digest = evidence.digest();
        self.checker.bodies.insert(digest, Arc::new(evidence));
        self.checker.late_items.insert(digest);
    }
}

/// `statements` of `unit` co-signed with the first t of `keys` (dealt key shares), as t members
/// would sign them: for tests that need a genuinely co-signed unit of their choosing.
pub fn co_sign(
    net: &Network,
    keys: &[KeyMaterial],
    unit: Unit,
    statements: Vec<accord_protocol::statement::Statement>,
) -> Arc<CoSigned> {
    let message = accord_protocol::statement::signing_message(net.id(), &unit, &statements);
    Arc::new(CoSigned {
        unit,
        statements,
        signature: frost_sign(&keys[..net.t()], &message),
    })
}

/// `message` signed in one FROST session by `signers` (key shares of one group, at least t of
/// them), as members would: for tests that need a genuine group signature of their choosing.
pub fn frost_sign(signers: &[KeyMaterial], message: &[u8]) -> accord_protocol::crypto::Signature {
    let mut rng = child_rng(0, "co-sign", 0, 0);
    let mut commitments = BTreeMap::new();
    let mut nonces = Vec::new();
    for k in signers {
        let (n, c) = frost::round1::commit(k.key_package.signing_share(), &mut rng);
        commitments.insert(*k.key_package.identifier(), c);
        nonces.push(n);
    }
    let package = frost::SigningPackage::new(commitments, message);
    let shares: BTreeMap<_, _> = signers
        .iter()
        .zip(&nonces)
        .map(|(k, n)| {
            (
                *k.key_package.identifier(),
                frost::round2::sign(&package, n, &k.key_package).expect("a share signs"),
            )
        })
        .collect();
    let signature =
        frost::aggregate(&package, &shares, &signers[0].public).expect("t valid shares");
    accord_protocol::crypto::Signature(
        signature
            .serialize()
            .expect("a signature serializes")
            .try_into()
            .expect("64 bytes"),
    )
}

/// The harness's side of [`driver::drain`] for one member: records into the member (checked
/// first when it is honest), messages onto the virtual network through its behaviour.
struct Outputs<'a> {
    cluster: &'a mut Cluster,
    m: MemberIndex,
    honest: bool,
}

impl Effects for Outputs<'_> {
    type Error = crate::InvariantViolation;

    fn persist(&mut self, record: Record) -> Result<(), Self::Error> {
        if self.honest {
            self.cluster.checker.on_record(self.m, &record)?;
        }
        self.cluster.nodes[usize::from(self.m.0)].persist(record);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), Self::Error> {
        self.cluster.nodes[usize::from(self.m.0)].compact(snapshot);
        Ok(())
    }

    fn store_key(&mut self, key: KeyMaterial) -> Result<(), Self::Error> {
        self.cluster.nodes[usize::from(self.m.0)].store_key(key);
        Ok(())
    }

    fn store_pending_key(&mut self, key: Option<KeyMaterial>) -> Result<(), Self::Error> {
        self.cluster.nodes[usize::from(self.m.0)].store_pending_key(key);
        Ok(())
    }

    fn send(&mut self, to: MemberIndex, message: Message) {
        self.sent(&message);
        for (to, message) in self.cluster.misbehave(self.m, vec![(to, message)]) {
            self.cluster.transmit(self.m, to, message);
        }
    }

    fn broadcast(&mut self, message: Message) {
        self.sent(&message);
        let m = self.m;
        let all: Vec<(MemberIndex, Message)> = self
            .cluster
            .net
            .members()
            .filter(|o| *o != m)
            .map(|o| (o, message.clone()))
            .collect();
        for (to, message) in self.cluster.misbehave(m, all) {
            self.cluster.transmit(m, to, message);
        }
    }

    fn event(&mut self, event: Event) {
        if self.honest {
            self.cluster
                .checker
                .on_event(self.m, &event, self.cluster.now);
        }
    }
}

impl Outputs<'_> {
    fn sent(&mut self, message: &Message) {
        if self.honest
            && let Err(v) = self.cluster.checker.on_sent(self.m, message)
        {
            panic!("{v}");
        }
    }
}
