//! A virtual-time harness that runs whole networks of engines in memory (feature `testkit`).
//!
//! Like quinn's `Pair` or str0m's `progress`: one event queue ordered by (time, sequence), a
//! fixed link latency, members that may crash and restart from their persisted records only,
//! and Byzantine behaviours applied to what a member sends. After every step the [`Observer`]
//! checks the safety invariants of the design brief; [`Cluster::assert_live`] checks liveness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::adversary::Adversary;
pub use crate::adversary::Behaviour;
use crate::crypto::{Digest, Frost, PublicKey, SecretKey};
use crate::dkg::{DkgBody, KeyMaterial, deal};
use crate::engine::{Engine, EngineConfig, Event, Output, Record};
use crate::evidence::{Evidence, EvidenceError};
use crate::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
use crate::message::Message;
use crate::policy;
use crate::roster::{MemberIndex, Network, Period};
use crate::statement::{CoSigned, Unit};
use crate::time::Instant;

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
        }
    }
}

/// One member in the harness.
pub struct Node {
    /// The running engine; `None` while crashed.
    pub engine: Option<Engine>,
    /// Everything it persisted (what survives a crash).
    pub records: Vec<Record>,
    /// Its key file.
    pub key: Option<KeyMaterial>,
    /// Its behaviour.
    pub behaviour: Behaviour,
    /// Digests acknowledged to submitters (must survive crashes).
    pub acknowledged: BTreeSet<Digest>,
    incarnation: u64,
    rng: ChaCha20Rng,
    timer: Option<Instant>,
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
    pub nodes: Vec<Node>,
    /// Member identity keys (the harness plays every member).
    pub identities: Vec<SecretKey>,
    /// Lab keys.
    pub lab_keys: Vec<SecretKey>,
    /// The invariant checker.
    pub observer: Observer,
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

/// Checks the safety invariants after every step, from what it sees on the wire and in outputs.
#[derive(Default)]
pub struct Observer {
    /// Every valid co-signed unit seen, by message.
    pub cosigned: BTreeMap<Vec<u8>, Arc<CoSigned>>,
    /// Evidence bodies seen anywhere.
    pub bodies: BTreeMap<Digest, Arc<Evidence>>,
    /// Items honest members admitted before the close.
    pub honest_admitted: BTreeSet<Digest>,
    /// Commitment digest → package digest, over shares honest members released.
    pub bindings: BTreeMap<Digest, Digest>,
    /// Every commitment honest members issued.
    pub commitments: BTreeSet<Digest>,
    /// Culprits named by honest members.
    pub culprits: Vec<(MemberIndex, MemberIndex, String)>,
    /// DKG outcomes per honest member.
    pub dkg_complete: BTreeMap<MemberIndex, PublicKey>,
    /// DKG aborts per honest member, with the culprits named.
    pub dkg_aborted: BTreeMap<MemberIndex, Vec<MemberIndex>>,
    /// First time each unit was decided at an honest member.
    pub decided_at: BTreeMap<Unit, Instant>,
    /// Late items a colluding lab handed to late injectors.
    pub late_items: BTreeSet<Digest>,
    issuers: BTreeMap<Digest, MemberIndex>,
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
        let nodes = (0..net.n())
            .map(|i| {
                let m = MemberIndex(i as u16);
                let identity = SecretKey::from_seed(&testnet.members[i].seed());
                let key = keys[i].clone();
                Node {
                    engine: Some(Engine::new(
                        net.clone(),
                        m,
                        identity,
                        key.clone(),
                        EngineConfig::default(),
                    )),
                    records: Vec::new(),
                    key,
                    behaviour: spec.behaviours.get(i).copied().unwrap_or(Behaviour::Honest),
                    acknowledged: BTreeSet::new(),
                    incarnation: 0,
                    rng: child_rng(spec.seed, "member", i as u64, 0),
                    timer: None,
                }
            })
            .collect();
        let mut cluster = Self {
            now: Instant::from_millis(net.schedule().genesis_ms),
            net,
            nodes,
            identities: testnet.members,
            lab_keys: testnet.labs,
            observer: Observer::default(),
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
            .filter(|m| self.nodes[usize::from(m.0)].behaviour.is_honest())
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
        if let Ok(d) = &result {
            self.observer.bodies.insert(*d, evidence_arc);
        }
        self.drain(to);
        // The acknowledgement goes out only now, after the outputs (and so the Persist) ran.
        if let Ok(d) = &result {
            self.nodes[usize::from(to.0)].acknowledged.insert(*d);
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
                .lab_id(crate::roster::LabIndex(i as u16))
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
        let node = &mut self.nodes[usize::from(m.0)];
        node.engine = None;
        node.timer = None;
    }

    /// Restarts member `m` from its records and key file only.
    pub fn restart(&mut self, m: MemberIndex) {
        let i = usize::from(m.0);
        let identity = SecretKey::from_seed(&self.identities[i].seed());
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        node.rng = child_rng(self.seed, "member", i as u64, node.incarnation);
        let config = EngineConfig {
            first_period: Period(0),
            ..EngineConfig::default()
        };
        node.engine = Some(Engine::restore(
            self.net.clone(),
            m,
            identity,
            node.key.clone(),
            config,
            node.records.clone(),
        ));
        let engine = node.engine.as_ref().expect("just set");
        for d in &node.acknowledged {
            let within = self
                .observer
                .bodies
                .get(d)
                .is_some_and(|e| engine.retains(e.period()));
            assert!(
                !within || engine.evidence(d).is_some(),
                "invariant 7: acknowledged item {d:?} lost by {m} across a restart"
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
                let node = &mut self.nodes[usize::from(m.0)];
                if node.timer != Some(at) {
                    return;
                }
                node.timer = None;
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
                let node = &mut self.nodes[usize::from(to.0)];
                if node.behaviour == Behaviour::Silent {
                    return;
                }
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
                if let (Some(message), crate::engine::Delivery::Accepted, true) =
                    (relay, delivery, node_is_honest(&self.nodes, to))
                {
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
        if let Err(v) = self.observer.check(&self.net) {
            panic!("{v}");
        }
    }

    fn schedule_timer(&mut self, m: MemberIndex) {
        let node = &mut self.nodes[usize::from(m.0)];
        let Some(engine) = node.engine.as_ref() else {
            return;
        };
        if let Some(at) = engine.poll_timeout() {
            let at = at.max(self.now);
            if node.timer.is_some_and(|t| t <= at) {
                return;
            }
            node.timer = Some(at);
            self.seq += 1;
            self.queue.insert((at, self.seq), Pending::Timer(m));
        }
    }

    /// Performs member `m`'s outputs in order.
    fn drain(&mut self, m: MemberIndex) {
        let honest = self.nodes[usize::from(m.0)].behaviour.is_honest();
        loop {
            let Some(output) = self.nodes[usize::from(m.0)]
                .engine
                .as_mut()
                .and_then(Engine::poll_output)
            else {
                break;
            };
            match output {
                Output::Persist(record) => {
                    if honest {
                        self.observer
                            .on_record(&record)
                            .unwrap_or_else(|v| panic!("{v}"));
                    }
                    self.nodes[usize::from(m.0)].records.push(record);
                }
                Output::Snapshot(records) => self.nodes[usize::from(m.0)].records = records,
                Output::StoreKey(key) => self.nodes[usize::from(m.0)].key = Some(*key),
                Output::Send { to, message } => {
                    if honest {
                        self.observer
                            .on_sent(m, &message)
                            .unwrap_or_else(|v| panic!("{v}"));
                    }
                    for (to, message) in self.misbehave(m, vec![(to, message)]) {
                        self.transmit(m, to, message);
                    }
                }
                Output::Broadcast(message) => {
                    if honest {
                        self.observer
                            .on_sent(m, &message)
                            .unwrap_or_else(|v| panic!("{v}"));
                    }
                    let all: Vec<(MemberIndex, Message)> = self
                        .net
                        .members()
                        .filter(|o| *o != m)
                        .map(|o| (o, message.clone()))
                        .collect();
                    for (to, message) in self.misbehave(m, all) {
                        self.transmit(m, to, message);
                    }
                }
                Output::Event(e) => {
                    if honest {
                        self.observer.on_event(m, &e, self.now);
                    }
                }
            }
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
            self.observer.on_cosigned(c.clone(), &self.net, &key);
        }
        if let Message::Evidence(e) = &message {
            self.observer
                .bodies
                .entry(e.digest())
                .or_insert_with(|| e.clone());
        }
        if let Message::Bodies(b) = &message {
            for e in &b.evidence {
                self.observer
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
        let behaviour = self.nodes[usize::from(m.0)].behaviour;
        if behaviour.is_honest() {
            return out;
        }
        let colluders: Vec<MemberIndex> = self
            .net
            .members()
            .filter(|j| self.nodes[usize::from(j.0)].behaviour == Behaviour::LateInjector)
            .collect();
        let adversary = Adversary {
            net: &self.net,
            identities: &self.identities,
            key: self.nodes[usize::from(m.0)].key.as_ref(),
            late: &self.observer.late_items,
            bodies: &self.observer.bodies,
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
        self.observer.bodies.insert(digest, Arc::new(evidence));
        self.observer.late_items.insert(digest);
    }
}

/// `statements` of `unit` co-signed with the first t of `keys` (dealt key shares), as t members
/// would sign them: for tests that need a genuinely co-signed unit of their choosing.
pub fn co_sign(
    net: &Network,
    keys: &[KeyMaterial],
    unit: Unit,
    statements: Vec<crate::statement::Statement>,
) -> Arc<CoSigned> {
    let message = crate::statement::signing_message(net.id(), &unit, &statements);
    let mut rng = child_rng(0, "co-sign", 0, 0);
    let signers = &keys[..net.t()];
    let mut commitments = BTreeMap::new();
    let mut nonces = Vec::new();
    for k in signers {
        let (n, c) = frost::round1::commit(k.key_package.signing_share(), &mut rng);
        commitments.insert(*k.key_package.identifier(), c);
        nonces.push(n);
    }
    let package = frost::SigningPackage::new(commitments, &message);
    let shares: BTreeMap<_, _> = signers
        .iter()
        .zip(&nonces)
        .map(|(k, n)| {
            (
                *k.key_package.identifier(),
                frost::round2::sign(&package, n, &k.key_package).expect("a dealt share signs"),
            )
        })
        .collect();
    let signature = frost::aggregate(&package, &shares, &keys[0].public).expect("t valid shares");
    Arc::new(CoSigned {
        unit,
        statements,
        signature: crate::crypto::Signature(
            signature
                .serialize()
                .expect("a signature serializes")
                .try_into()
                .expect("64 bytes"),
        ),
    })
}

/// A broken invariant, as the [`Observer`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    /// Which invariant of the design brief (1 to 7).
    pub invariant: u8,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invariant {}: {}", self.invariant, self.detail)
    }
}

fn violated(invariant: u8, detail: impl Into<String>) -> Result<(), InvariantViolation> {
    Err(InvariantViolation {
        invariant,
        detail: detail.into(),
    })
}

impl Observer {
    /// A record an honest member persisted.
    ///
    /// # Errors
    /// Invariant 6, when a commitment is bound to a second package.
    pub fn on_record(&mut self, record: &Record) -> Result<(), InvariantViolation> {
        match record {
            Record::Signed(s) => {
                // Invariant 6: a commitment is bound to one package, forever.
                if let Some(prev) = self.bindings.insert(s.commitment, s.package)
                    && prev != s.package
                {
                    return violated(
                        6,
                        "an honest member signed two packages with one commitment",
                    );
                }
            }
            Record::Evidence {
                evidence,
                admitted_at: Some(_),
            } => {
                let d = evidence.digest();
                self.honest_admitted.insert(d);
                self.bodies.entry(d).or_insert_with(|| evidence.clone());
            }
            _ => {}
        }
        Ok(())
    }

    /// A message honest member `m` sent.
    ///
    /// # Errors
    /// Invariant 6, when two members issue the same nonce commitment.
    pub fn on_sent(&mut self, m: MemberIndex, message: &Message) -> Result<(), InvariantViolation> {
        let fresh = |c: &Frost<frost::round1::SigningCommitments>| c.digest("accord/commitment/v1");
        let issued = match message {
            Message::Accept(a) => Some(fresh(&a.commitments)),
            Message::Share(s) => Some(fresh(&s.next)),
            _ => None,
        };
        if let Some(d) = issued {
            // A member may repeat its current commitment when it answers a repeated request
            // idempotently; two members never share one.
            let first = *self.issuers.entry(d).or_insert(m);
            if first != m {
                return violated(
                    6,
                    format!("{first} and {m} issued the same nonce commitment"),
                );
            }
            self.commitments.insert(d);
        }
        Ok(())
    }

    /// An event of honest member `m`.
    pub fn on_event(&mut self, m: MemberIndex, e: &Event, now: Instant) {
        match e {
            Event::Culprit { member, offence } => {
                self.culprits.push((m, *member, offence.to_string()))
            }
            Event::DkgComplete { group_key } => {
                self.dkg_complete.insert(m, *group_key);
            }
            Event::DkgAborted(f) => {
                self.dkg_aborted
                    .insert(m, f.culprits.iter().map(|(c, _)| *c).collect());
            }
            Event::Decided(c) => {
                self.decided_at.entry(c.unit).or_insert(now);
            }
            _ => {}
        }
    }

    /// A co-signed unit seen on the wire; kept if its signature is valid under `group_key`.
    /// Returns whether it is new.
    pub fn on_cosigned(&mut self, c: Arc<CoSigned>, net: &Network, group_key: &PublicKey) -> bool {
        c.verify(net.id(), group_key).is_ok()
            && self.cosigned.insert(c.message(net.id()), c).is_none()
    }

    /// Invariants 3, 4 and 5 over every valid co-signed statement seen so far.
    ///
    /// # Errors
    /// The first violation found.
    pub fn check(&self, net: &Network) -> Result<(), InvariantViolation> {
        let mut by_slot: BTreeMap<(String, Period), Vec<&crate::statement::Statement>> =
            BTreeMap::new();
        for c in self.cosigned.values() {
            for s in &c.statements {
                by_slot
                    .entry((s.slot.lab.clone(), s.slot.period))
                    .or_default()
                    .push(s);
                // Invariant 4: the verdict is the policy's on validly signed evidence of the slot.
                let mut items: Vec<(Digest, &Evidence)> = Vec::with_capacity(s.evidence.len());
                for d in &s.evidence {
                    let Some(e) = self.bodies.get(d) else {
                        return violated(4, format!("co-signed item {d:?} has no known body"));
                    };
                    match e.validate(net) {
                        Ok(lab) if net.lab_id(lab) == s.slot.lab && e.period() == s.slot.period => {
                        }
                        Ok(_) => {
                            return violated(
                                4,
                                format!("item {d:?} belongs to another slot than {:?}", s.slot),
                            );
                        }
                        Err(err) => {
                            return violated(
                                4,
                                format!("co-signed item {d:?} is not validly signed: {err}"),
                            );
                        }
                    }
                    // Invariant 5: only items some honest member admitted before the close.
                    if !self.honest_admitted.contains(d) {
                        return violated(
                            5,
                            format!(
                                "late or unvouched item {d:?} in a co-signed statement for {:?}",
                                s.slot
                            ),
                        );
                    }
                    items.push((*d, &**e));
                }
                if policy::evaluate(&net.roster().policy, &items) != s.verdict {
                    return violated(
                        4,
                        format!("the verdict for {:?} does not follow its evidence", s.slot),
                    );
                }
            }
        }
        // Invariant 3: the statements of a slot form a chain under inclusion.
        for (slot, statements) in by_slot {
            for a in &statements {
                for b in &statements {
                    if !a.includes(b) && !b.includes(a) {
                        return violated(
                            3,
                            format!("conflicting co-signed statements for {slot:?}"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Culprits named by honest members that are themselves honest (must stay empty).
    pub fn honest_blamed(&self, honest: &[MemberIndex]) -> Vec<(MemberIndex, MemberIndex, String)> {
        self.culprits
            .iter()
            .filter(|(by, who, _)| honest.contains(by) && honest.contains(who))
            .cloned()
            .collect()
    }
}

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

fn node_is_honest(nodes: &[Node], m: MemberIndex) -> bool {
    nodes[usize::from(m.0)].behaviour.is_honest()
}

/// Whether a DKG message is a round-1 package (for tests that tamper with ceremonies).
pub fn is_round1(m: &Message) -> bool {
    matches!(m, Message::Dkg(d) if matches!(d.body, DkgBody::Round1(_)))
}
