//! One simulated run: members running `accord_protocol::Engine`, a seeded network, labs, faults
//! and adversaries, driven by one event queue in virtual time.
//!
//! Determinism: every random choice comes from a child RNG derived from the master seed with
//! `testkit::child_rng` (labels `roster`, `dealer`, `member` (per incarnation), `adversary`,
//! `network`, `gossip`, `clock`, `faults`, `workload-plan`, `workload-items`); events run in
//! (time, sequence) order; no clock is read and no hash map is iterated.
//!
//! Gossip is modelled on gossipsub: the author sends a broadcast to every member (flood publish),
//! and every honest member that accepts a gossip message relays it to its mesh peers; each
//! member's seen-cache (keyed by content hash, as the node's `message_id_fn`) drops copies it
//! already saw before they reach the engine. The `from` given to the engine is always the
//! message's author (gossipsub's signed source, or the authenticated connection).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::dkg::{DkgBody, DkgMachine, DkgOutput, KeyMaterial, deal};
use accord_protocol::driver;
use accord_protocol::engine::{Delivery, Engine, EngineConfig, Event, Offence, Record};
use accord_protocol::evidence::{Attestation, Evidence, EvidenceError};
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, inspection, lab_submissions};
use accord_protocol::message::Message;
use accord_protocol::policy::PolicyParams;
use accord_protocol::roster::{LabIndex, MemberIndex, Network, Period, Schedule, SigningMode};
use accord_protocol::statement::Unit;
use accord_protocol::time::Instant;
use accord_testkit::adversary::{Adversary, Behaviour};
use accord_testkit::{Member, child_rng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::checker::{Accusation, Checker, Violation};
use crate::net::{self, Fate, Links, Micros, below, unit};
use crate::profile::{FrostCounts, ProfileReport, Profiler, frost_baseline};
use crate::queue::Queue;
use crate::scenario::{
    Anchor, At, Conduct, Keys, PartitionKind, Role, Scenario, Signing, ViolationKind,
};
use crate::trace::{Trace, TraceEntry};

/// How to run one seed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Master seed.
    pub seed: u64,
    /// Measure wall time (engine calls, FROST baseline, memory).
    pub profile: bool,
    /// FROST operations timed per kind for the baseline (0: no baseline).
    pub frost_sample: u64,
    /// Last events kept for failure reports.
    pub trace_capacity: usize,
}

impl Options {
    /// Defaults for `seed`: no profiling, 40 events of history.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            profile: false,
            frost_sample: 0,
            trace_capacity: 40,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The generated roster was refused.
    #[error("roster: {0}")]
    Roster(#[from] accord_protocol::roster::RosterError),
    /// The dealer failed.
    #[error("dealer: {0}")]
    Dealer(#[from] frost_ed25519::Error),
}

/// Metrics of one slot (lab, period).
#[derive(Clone, Debug, Serialize)]
pub struct SlotMetric {
    /// Period.
    pub period: u64,
    /// Lab index.
    pub lab: u16,
    /// The lab's conduct in this period.
    pub conduct: Conduct,
    /// Verdict kind of the largest co-signed statement (`None`: undecided).
    pub verdict: Option<String>,
    /// Evidence items in that statement.
    pub evidence: usize,
    /// Time from the slot's close to its first co-signed statement at an honest member (ms).
    pub time_to_verdict_ms: Option<f64>,
    /// Time from the close until every running honest member held it (ms).
    pub time_to_all_ms: Option<f64>,
    /// Signing sessions started for the slot's unit (by any coordinator).
    pub sessions: u32,
    /// Proposals made for the slot's unit.
    pub proposals: u32,
}

/// Traffic and activity of one member.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemberMetric {
    /// Member index.
    pub member: u16,
    /// Behaviour.
    pub role: String,
    /// Region name.
    pub region: String,
    /// Messages sent (relays included).
    pub msgs_sent: u64,
    /// Bytes sent (`Message::encode().len()` per transmission).
    pub bytes_sent: u64,
    /// Messages received (before gossip deduplication).
    pub msgs_recv: u64,
    /// Bytes received.
    pub bytes_recv: u64,
    /// Calls into its engine.
    pub engine_calls: u64,
    /// Crashes.
    pub crashes: u32,
}

/// A culprit as seen across honest members.
#[derive(Clone, Debug, Serialize)]
pub struct CulpritMetric {
    /// The member named.
    pub member: u16,
    /// Its behaviour in the scenario.
    pub role: String,
    /// What it was named for.
    pub offence: String,
    /// How many honest members named it for that.
    pub named_by: usize,
}

/// Key ceremony outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DkgMetric {
    /// Honest members that completed.
    pub completed: usize,
    /// Ceremonies that aborted somewhere (distinct numbers).
    pub aborted_ceremonies: Vec<u32>,
    /// Members named by aborted ceremonies at honest members.
    pub culprits: Vec<u16>,
    /// Time from the simulation start until every honest member completed (ms).
    pub complete_after_ms: Option<f64>,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunMetrics {
    /// Per slot.
    pub slots: Vec<SlotMetric>,
    /// Per member.
    pub members: Vec<MemberMetric>,
    /// Culprits named.
    pub culprits: Vec<CulpritMetric>,
    /// Share of slots with a co-signed statement.
    pub share_decided: f64,
    /// Events processed.
    pub events: u64,
    /// Messages handed to the network.
    pub transmissions: u64,
    /// Dropped by partitions.
    pub dropped_cut: u64,
    /// Lost.
    pub dropped_lost: u64,
    /// Arrived at a crashed member.
    pub dropped_down: u64,
    /// Gossip copies dropped by seen-caches.
    pub gossip_duplicates: u64,
    /// Duplicates injected by the network.
    pub injected_duplicates: u64,
    /// Messages over the codec's size limit (not sent).
    pub oversize: u64,
    /// Lab and inspector submissions acknowledged.
    pub acknowledged: u64,
    /// Submissions refused by a member.
    pub refused: u64,
    /// Late submissions attempted at honest members.
    pub late_attempts: u64,
    /// Late submissions honest members refused.
    pub late_refused: u64,
    /// Late submissions honest members accepted.
    pub late_accepted: u64,
    /// Signing requests honest members refused, by reason.
    pub refusals: BTreeMap<String, u64>,
    /// FROST operations.
    pub frost: FrostCounts,
    /// Virtual time simulated (s).
    pub virtual_seconds: f64,
    /// Key ceremony, when one ran.
    pub dkg: Option<DkgMetric>,
    /// What generative members did to the messages their engines sent, by action.
    pub adversary_actions: BTreeMap<String, u64>,
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Master seed.
    pub seed: u64,
    /// Hash of every event.
    pub trace_hash: String,
    /// Violations detected (the run stops at the first).
    pub violations: Vec<Violation>,
    /// The last events before the end (or the violation).
    pub last_events: Vec<String>,
    /// Whether every unit was decided at every running honest member before the deadline.
    pub live: bool,
    /// Metrics.
    pub metrics: RunMetrics,
    /// Accusations by honest members.
    pub accusations: Vec<Accusation>,
    /// Wall-time profile, when measured.
    pub profile: Option<ProfileReport>,
    /// Time of the first co-signed statement of any unit (ms since the simulation start).
    pub first_statement_ms: Option<f64>,
}

/// Progress of a run, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Fraction of the planned virtual time done.
    pub fraction: f64,
    /// Events so far.
    pub events: u64,
}

struct Packet {
    message: Message,
    kind: &'static str,
    bytes: u32,
    content: [u8; 32],
    /// Dense id for seen-caches (gossip only).
    id: u32,
    gossip: bool,
}

enum Ev {
    Deliver {
        to: u16,
        author: u16,
        via: u16,
        packet: Rc<Packet>,
        dup: bool,
    },
    Timer {
        member: u16,
        generation: u64,
    },
    TwinTimer {
        twin: u16,
        generation: u64,
    },
    Startup,
    Submit {
        lab: u16,
        period: u64,
    },
    Inspect {
        lab: u16,
        attestation: Box<Attestation>,
        discrepancy: bool,
    },
    Late {
        lab: u16,
        period: u64,
    },
    Collude {
        lab: u16,
        period: u64,
    },
    Crash {
        member: u16,
        random: bool,
    },
    Restart {
        member: u16,
        random: bool,
    },
    Cut {
        index: usize,
        on: bool,
    },
    DkgStart {
        ceremony: u32,
    },
    Heal,
    Deadline,
}

/// The second engine of a member with the Twins role: the same keys, other inputs.
struct Twin {
    of: usize,
    node: Node,
}

/// A member in the simulation: the engine and its storage ([`Member`]), and the simulator's
/// bookkeeping around it.
struct Node {
    member: Member,
    timer: Option<Micros>,
    generation: u64,
    skew_ms: i64,
    seen: Vec<u64>,
}

impl Node {
    fn seen_insert(&mut self, id: u32) -> bool {
        let (w, b) = ((id / 64) as usize, id % 64);
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        let had = self.seen[w] & (1 << b) != 0;
        self.seen[w] |= 1 << b;
        !had
    }
}

/// A set of members (n ≤ 256).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Members([u64; 4]);

impl Members {
    fn insert(&mut self, m: usize) {
        self.0[m / 64] |= 1 << (m % 64);
    }
    fn contains_all(&self, other: &Members) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & b == *b)
    }
}

struct UnitStats {
    decided_by: Members,
    first: Option<Micros>,
    all: Option<Micros>,
    evidence: Option<usize>,
    sessions: u32,
    proposals: u32,
}

struct CutDef {
    links: Vec<(u16, u16)>,
    random: bool,
}

/// One run in progress.
pub struct Simulation {
    sc: Scenario,
    opts: Options,
    net: Arc<Network>,
    identities: Vec<SecretKey>,
    lab_keys: Vec<SecretKey>,
    nodes: Vec<Node>,
    roles: Vec<Role>,
    honest: Vec<bool>,
    colluders: Vec<MemberIndex>,
    queue: Queue<Ev>,
    now: Micros,
    start: Micros,
    heal_at: Micros,
    deadline: Micros,
    links: Links,
    mesh: Vec<Vec<u16>>,
    net_rng: ChaCha20Rng,
    adv_rngs: Vec<ChaCha20Rng>,
    mutators: Vec<accord_testkit::generative::Mutator>,
    /// Second engines of members with the Twins role.
    twins: Vec<Twin>,
    packet_ids: BTreeMap<[u8; 32], u32>,
    last_packet: Option<Rc<Packet>>,
    checker: Checker,
    trace: Trace,
    profile: Profiler,
    setup_seconds: f64,
    late_items: BTreeSet<Digest>,
    late_for: BTreeMap<(u64, u16), Evidence>,
    cuts: Vec<CutDef>,
    units: BTreeMap<Unit, UnitStats>,
    incomplete: BTreeSet<Unit>,
    conduct: BTreeMap<(u64, u16), Conduct>,
    verdicts: BTreeMap<(u64, u16), (usize, String)>,
    metrics: RunMetrics,
    scripted: usize,
    stop_at: Option<Micros>,
    drain_us: Micros,
    dkg_done_at: Option<Micros>,
    aggregate_pending: bool,
}

fn ms(x: u64) -> Micros {
    x.saturating_mul(1000)
}

fn schedule_of(s: &Scenario) -> Schedule {
    let c = &s.schedule;
    Schedule {
        genesis_ms: c.genesis.0,
        period_ms: c.period.0,
        grace_ms: c.grace.0,
        observation_wait_ms: c.observation_wait.0,
        attempt_timeout_ms: c.attempt_timeout.0,
        max_clock_skew_ms: c.max_clock_skew.0,
        dkg_phase_timeout_ms: c.dkg_phase_timeout.0,
    }
}

fn delivery_name(d: &Delivery) -> &'static str {
    match d {
        Delivery::Accepted => "accepted",
        Delivery::Duplicate => "duplicate",
        Delivery::Ignored => "ignored",
        Delivery::Rejected(_) => "rejected",
    }
}

impl Simulation {
    /// Builds the network, keys, workload and fault schedule for `scenario` and `opts.seed`.
    ///
    /// # Errors
    /// When the roster or the dealer refuse the scenario's parameters.
    pub fn new(scenario: &Scenario, opts: Options) -> Result<Self, SetupError> {
        let profile = Profiler::new(opts.profile);
        let sc = scenario.clone();
        let seed = opts.seed;
        let n = sc.network.members;
        let spec = TestnetSpec {
            name: sc.name.clone(),
            members: n,
            threshold: sc.network.threshold,
            labs: sc.network.labs,
            schedule: schedule_of(&sc),
            mode: match sc.network.signing {
                Signing::PerPeriod => SigningMode::PerPeriod,
                Signing::PerSlot => SigningMode::PerSlot,
            },
            policy: PolicyParams::treaty_default(),
            reports_per_inspector: sc.network.reports_per_inspector,
        };
        let testnet = Testnet::generate(&spec, &mut child_rng(seed, "roster", 0, 0), |k| {
            format!("peer-{}", &k.to_hex()[..16])
        });
        let net = Network::new(testnet.roster)?;
        let keys: Vec<Option<KeyMaterial>> = match sc.network.keys {
            Keys::Dealer => deal(&net, &mut child_rng(seed, "dealer", 0, 0))?
                .into_iter()
                .map(Some)
                .collect(),
            Keys::Dkg => vec![None; n],
        };
        let group_key = keys
            .first()
            .and_then(|k| k.as_ref())
            .map(KeyMaterial::group_key);
        let mut roles = vec![Role::Protocol(Behaviour::Honest); n];
        for a in &sc.adversary {
            for m in &a.members {
                roles[usize::from(*m)] = a.behaviour;
            }
        }
        let honest: Vec<bool> = roles.iter().map(|r| r.is_honest()).collect();
        let colluders = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Protocol(Behaviour::LateInjector))
            .map(|(i, _)| MemberIndex(i as u16))
            .collect();
        let mut clock_rng = child_rng(seed, "clock", 0, 0);
        let skews: Vec<i64> = (0..n)
            .map(|i| match sc.clock.skews.get(i) {
                Some(o) => o.0,
                None if sc.clock.max_skew.0 > 0 => {
                    let max = sc.clock.max_skew.0 as f64;
                    (unit(&mut clock_rng) * max - max / 2.0).round() as i64
                }
                None => 0,
            })
            .collect();
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let m = MemberIndex(i as u16);
                let identity = SecretKey::from_seed(&testnet.members[i].seed());
                let engine = Engine::new(
                    net.clone(),
                    m,
                    identity,
                    keys[i].clone(),
                    EngineConfig::default(),
                );
                Node {
                    member: Member::new(m, engine, keys[i].clone(), seed),
                    timer: None,
                    generation: 0,
                    skew_ms: skews[i],
                    seen: Vec::new(),
                }
            })
            .collect();
        let links = Links::new(&sc.links, n);
        let mesh = net::mesh(
            n,
            sc.gossip.mesh_degree,
            &mut child_rng(seed, "gossip", 0, 0),
        );
        let schedule = net.schedule().clone();
        let lead = match sc.network.keys {
            Keys::Dkg => sc.dkg.lead.0,
            Keys::Dealer => 1_000,
        };
        let start = ms(schedule.genesis_ms.saturating_sub(lead));
        let periods = sc.network.periods;
        let last_close = if periods == 0 {
            ms(schedule.genesis_ms)
        } else {
            ms(schedule.close(Period(periods - 1)).as_millis())
        };
        let checker = Checker::new(net.clone(), honest.clone(), group_key);
        let drain_us = ms(sc
            .liveness
            .drain
            .map_or(2 * schedule.attempt_timeout_ms, |d| d.0));
        let mut sim = Self {
            adv_rngs: (0..n)
                .map(|i| child_rng(seed, "adversary", i as u64, 0))
                .collect(),
            mutators: (0..n).map(|_| Default::default()).collect(),
            twins: (0..n)
                .filter(|i| roles[*i] == Role::Twins)
                .map(|i| Twin {
                    of: i,
                    node: Node {
                        member: Member::with_stream(
                            MemberIndex(i as u16),
                            Engine::new(
                                net.clone(),
                                MemberIndex(i as u16),
                                SecretKey::from_seed(&testnet.members[i].seed()),
                                keys[i].clone(),
                                EngineConfig::default(),
                            ),
                            keys[i].clone(),
                            seed,
                            "twin",
                        ),
                        timer: None,
                        generation: 0,
                        skew_ms: skews[i],
                        seen: Vec::new(),
                    },
                })
                .collect(),
            net_rng: child_rng(seed, "network", 0, 0),
            trace: Trace::new(opts.trace_capacity),
            opts,
            net,
            identities: testnet.members,
            lab_keys: testnet.labs,
            nodes,
            roles,
            honest,
            colluders,
            queue: Queue::default(),
            now: start,
            start,
            heal_at: 0,
            deadline: 0,
            links,
            mesh,
            packet_ids: BTreeMap::new(),
            last_packet: None,
            checker,
            profile,
            setup_seconds: 0.0,
            late_items: BTreeSet::new(),
            late_for: BTreeMap::new(),
            cuts: Vec::new(),
            units: BTreeMap::new(),
            incomplete: BTreeSet::new(),
            conduct: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            metrics: RunMetrics::default(),
            scripted: 0,
            stop_at: None,
            drain_us,
            dkg_done_at: None,
            aggregate_pending: false,
            sc,
        };
        let heal_at = match sim.sc.liveness.heal {
            Some(at) => sim.at(&at),
            None => last_close,
        };
        sim.heal_at = heal_at;
        sim.deadline = heal_at.max(last_close) + ms(sim.sc.liveness.budget.0);
        for p in 0..periods {
            for u in Unit::all_for(&sim.net, Period(p)) {
                sim.units.insert(
                    u,
                    UnitStats {
                        decided_by: Members::default(),
                        first: None,
                        all: None,
                        evidence: None,
                        sessions: 0,
                        proposals: 0,
                    },
                );
                sim.incomplete.insert(u);
            }
        }
        sim.metrics.members = (0..n)
            .map(|i| MemberMetric {
                member: i as u16,
                role: sim.roles[i].name(),
                region: sim.links.region_names[sim.links.region_of[i]].clone(),
                ..MemberMetric::default()
            })
            .collect();
        sim.plan_workload();
        sim.plan_faults();
        sim.push(start, Ev::Startup);
        if sim.sc.network.keys == Keys::Dkg {
            for (i, at) in sim.sc.dkg.ceremonies.clone().iter().enumerate() {
                sim.push_scripted(
                    start + ms(at.0),
                    Ev::DkgStart {
                        ceremony: i as u32 + 1,
                    },
                );
            }
        }
        sim.push(heal_at, Ev::Heal);
        sim.push(sim.deadline, Ev::Deadline);
        for i in 0..n {
            sim.schedule_timer(i);
        }
        for k in 0..sim.twins.len() {
            sim.schedule_twin_timer(k);
        }
        sim.setup_seconds = sim.profile.elapsed();
        Ok(sim)
    }

    /// The validated network (roster, keys) of this run.
    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    fn push(&mut self, at: Micros, ev: Ev) {
        self.queue.push(at.max(self.now), ev);
    }

    fn push_scripted(&mut self, at: Micros, ev: Ev) {
        self.scripted += 1;
        self.push(at, ev);
    }

    /// Resolves a calendar point to virtual time.
    fn at(&self, at: &At) -> Micros {
        let s = self.net.schedule();
        let p = Period(at.period);
        let base = match at.anchor {
            Anchor::SimStart => self.start,
            Anchor::Start => ms(s.start(p).as_millis()),
            Anchor::End => ms(s.end(p).as_millis()),
            Anchor::Close => ms(s.close(p).as_millis()),
            Anchor::Attempt => ms(s.attempt_start(p, 0).as_millis()),
        };
        let t = base as i128 + i128::from(at.offset.0) * 1000;
        (t.max(i128::from(self.start)) as u64).max(self.start)
    }

    fn local(&self, m: usize) -> Instant {
        let t = (self.now / 1000) as i64 + self.nodes[m].skew_ms;
        Instant::from_millis(t.max(0) as u64)
    }

    fn to_virtual(&self, m: usize, t: Instant) -> Micros {
        let v = t.as_millis() as i64 - self.nodes[m].skew_ms;
        ms(v.max(0) as u64)
    }

    // --------------------------------------------------------------------------------------------
    // Planning

    fn plan_workload(&mut self) {
        let schedule = self.net.schedule().clone();
        let labs = self.sc.network.labs;
        let [a, b] = self.sc.labs.submit_window;
        for p in 0..self.sc.network.periods {
            for l in 0..labs {
                let mut rng = child_rng(self.opts.seed, "workload-plan", (p << 16) | l as u64, 0);
                let conduct = if self.sc.labs.pattern.is_empty() {
                    let weights = self.sc.labs.conduct.weights();
                    let total: f64 = weights.iter().map(|(_, w)| *w).sum();
                    let mut x = unit(&mut rng) * total;
                    let mut pick = Conduct::Compliant;
                    for (c, w) in weights {
                        if w > 0.0 {
                            pick = c;
                            if x < w {
                                break;
                            }
                            x -= w;
                        }
                    }
                    pick
                } else {
                    self.sc.labs.pattern[l % self.sc.labs.pattern.len()]
                };
                self.conduct.insert((p, l as u16), conduct);
                let start = ms(schedule.start(Period(p)).as_millis());
                let len = ms(schedule.period_ms) as f64;
                let at = start + (len * (a + (b - a) * unit(&mut rng))) as Micros;
                if conduct != Conduct::Silent {
                    self.push_scripted(
                        at,
                        Ev::Submit {
                            lab: l as u16,
                            period: p,
                        },
                    );
                }
                if self.sc.labs.late > 0.0 && unit(&mut rng) < self.sc.labs.late {
                    let close = ms(schedule.close(Period(p)).as_millis());
                    self.push_scripted(
                        close + ms(self.sc.labs.late_delay.0),
                        Ev::Late {
                            lab: l as u16,
                            period: p,
                        },
                    );
                }
            }
        }
        for c in self.sc.labs.collude.clone() {
            if c.period >= self.sc.network.periods {
                continue;
            }
            let close = ms(schedule.close(Period(c.period)).as_millis());
            self.push_scripted(
                close.saturating_sub(ms(c.before_close.0)),
                Ev::Collude {
                    lab: c.lab,
                    period: c.period,
                },
            );
            self.push_scripted(
                close + ms(self.sc.labs.late_delay.0),
                Ev::Late {
                    lab: c.lab,
                    period: c.period,
                },
            );
        }
    }

    fn plan_faults(&mut self) {
        let n = self.nodes.len();
        for c in self.sc.crash.clone() {
            let at = self.at(&c.at);
            for m in &c.members {
                self.push_scripted(
                    at,
                    Ev::Crash {
                        member: *m,
                        random: false,
                    },
                );
                if let Some(d) = c.restart_after {
                    self.push_scripted(
                        at + ms(d.0),
                        Ev::Restart {
                            member: *m,
                            random: false,
                        },
                    );
                }
            }
        }
        let regions = self.sc.links.regions.clone();
        for p in self.sc.partition.clone() {
            let mut links = Vec::new();
            match p.kind {
                PartitionKind::Symmetric => {
                    let mut group = vec![usize::MAX; n];
                    for (g, refs) in p.groups.iter().enumerate() {
                        for m in net::resolve(refs, &self.links.region_of, &regions) {
                            group[usize::from(m)] = g;
                        }
                    }
                    for a in 0..n {
                        for b in 0..n {
                            if a != b && group[a] != group[b] {
                                links.push((a as u16, b as u16));
                            }
                        }
                    }
                }
                PartitionKind::OneWay => {
                    let from = net::resolve(&p.from, &self.links.region_of, &regions);
                    let to = net::resolve(&p.to, &self.links.region_of, &regions);
                    for a in &from {
                        for b in &to {
                            if a != b {
                                links.push((*a, *b));
                            }
                        }
                    }
                }
            }
            let at = self.at(&p.at);
            let index = self.cuts.len();
            self.cuts.push(CutDef {
                links,
                random: false,
            });
            self.push_scripted(at, Ev::Cut { index, on: true });
            if let Some(d) = p.duration {
                self.push_scripted(at + ms(d.0), Ev::Cut { index, on: false });
            }
        }
        let rf = self.sc.random_faults.clone();
        if rf.crash_rate <= 0.0 && rf.partition_rate <= 0.0 {
            return;
        }
        let mut rng = child_rng(self.opts.seed, "faults", 0, 0);
        let schedule = self.net.schedule().clone();
        let count = |rate: f64, rng: &mut ChaCha20Rng| -> u64 {
            rate.floor() as u64 + u64::from(unit(rng) < rate.fract())
        };
        for p in 0..self.sc.network.periods {
            let from = ms(schedule.start(Period(p)).as_millis());
            let to = ms(schedule.close(Period(p)).as_millis()).min(self.heal_at);
            if to <= from {
                continue;
            }
            let span = to - from;
            for m in 0..n {
                for _ in 0..count(rf.crash_rate, &mut rng) {
                    let at = from + below(&mut rng, span);
                    self.push(
                        at,
                        Ev::Crash {
                            member: m as u16,
                            random: true,
                        },
                    );
                    self.push(
                        at + ms(rf.downtime.0),
                        Ev::Restart {
                            member: m as u16,
                            random: true,
                        },
                    );
                }
            }
            for _ in 0..count(rf.partition_rate, &mut rng) {
                let at = from + below(&mut rng, span);
                let k = ((n as f64 * rf.partition_fraction).round() as usize).clamp(1, n - 1);
                let mut order: Vec<u16> = (0..n as u16).collect();
                for i in 0..k {
                    let j = i + below(&mut rng, (n - i) as u64) as usize;
                    order.swap(i, j);
                }
                let side: BTreeSet<u16> = order[..k].iter().copied().collect();
                let one_way = unit(&mut rng) < rf.one_way;
                let inbound = unit(&mut rng) < 0.5;
                let mut links = Vec::new();
                for a in 0..n as u16 {
                    for b in 0..n as u16 {
                        let cross = side.contains(&a) != side.contains(&b);
                        if !cross {
                            continue;
                        }
                        if one_way && side.contains(&a) == inbound {
                            continue;
                        }
                        links.push((a, b));
                    }
                }
                let index = self.cuts.len();
                self.cuts.push(CutDef {
                    links,
                    random: true,
                });
                self.push(at, Ev::Cut { index, on: true });
                self.push(
                    at + ms(rf.partition_duration.0),
                    Ev::Cut { index, on: false },
                );
            }
        }
    }

    // --------------------------------------------------------------------------------------------
    // The loop

    /// Runs to the end; calls `progress` now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(Progress)) -> RunResult {
        let span = self.deadline.saturating_sub(self.start).max(1) as f64;
        let max_events = self.sc.limits.max_events;
        while let Some((at, ev)) = self.queue.pop() {
            if self.stop_at.is_some_and(|s| at > s) {
                break;
            }
            self.now = at;
            self.metrics.events += 1;
            if self.metrics.events > max_events {
                self.checker.violations.push(Violation {
                    kind: ViolationKind::Stalled,
                    at_us: self.now - self.start,
                    detail: format!("more than {max_events} events"),
                });
                break;
            }
            self.handle(ev);
            if self.checker.is_dirty() {
                let now = self.now - self.start;
                self.checker.check(now);
            }
            if !self.checker.violations.is_empty() {
                break;
            }
            if self.metrics.events.is_multiple_of(65_536) {
                progress(Progress {
                    fraction: ((self.now - self.start) as f64 / span).min(1.0),
                    events: self.metrics.events,
                });
            }
        }
        progress(Progress {
            fraction: 1.0,
            events: self.metrics.events,
        });
        self.finish()
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                author,
                via,
                packet,
                dup,
            } => self.deliver(usize::from(to), author, via, packet, dup),
            Ev::Timer { member, generation } => {
                let m = usize::from(member);
                if self.nodes[m].generation != generation || self.nodes[m].member.engine.is_none() {
                    return;
                }
                self.nodes[m].timer = None;
                let local = self.local(m);
                let stamp = self.profile.start();
                let node = &mut self.nodes[m];
                if let Some(engine) = node.member.engine.as_mut() {
                    engine.handle_timeout(local, &mut node.member.rng);
                }
                self.profile.stop(stamp, "timeout");
                self.metrics_call(m);
                self.record(TraceEntry {
                    at: self.now,
                    what: "timeout",
                    member,
                    other: u16::MAX,
                    message: "",
                    content: 0,
                    outcome: "",
                });
                self.drain(m);
                self.schedule_timer(m);
            }
            Ev::TwinTimer { twin, generation } => {
                let k = usize::from(twin);
                if self.twins[k].node.generation != generation {
                    return;
                }
                self.twins[k].node.timer = None;
                let local = self.local(self.twins[k].of);
                let node = &mut self.twins[k].node;
                if let Some(engine) = node.member.engine.as_mut() {
                    engine.handle_timeout(local, &mut node.member.rng);
                }
                self.drain_twin(k);
                self.schedule_twin_timer(k);
            }
            Ev::Startup => {
                let n = self.nodes.len();
                for a in 0..n {
                    for b in 0..n {
                        if a != b {
                            self.connect(a, b);
                        }
                    }
                }
                for k in 0..self.twins.len() {
                    let of = self.twins[k].of;
                    for b in (0..n).filter(|b| *b != of) {
                        if let Some(e) = self.twins[k].node.member.engine.as_mut() {
                            e.peer_connected(MemberIndex(b as u16));
                        }
                    }
                    self.drain_twin(k);
                }
            }
            Ev::Submit { lab, period } => {
                self.scripted -= 1;
                self.submit_lab(lab, period);
            }
            Ev::Inspect {
                lab,
                attestation,
                discrepancy,
            } => {
                self.scripted -= 1;
                self.inspect(lab, &attestation, discrepancy);
            }
            Ev::Late { lab, period } => {
                self.scripted -= 1;
                self.late(lab, period);
            }
            Ev::Collude { lab, period } => {
                self.scripted -= 1;
                self.collude(lab, period);
            }
            Ev::Crash { member, random } => {
                if !random {
                    self.scripted -= 1;
                } else if self.links.is_healed() {
                    return;
                }
                self.crash(usize::from(member));
            }
            Ev::Restart { member, random } => {
                if !random {
                    self.scripted -= 1;
                }
                self.restart(usize::from(member));
            }
            Ev::Cut { index, on } => {
                let random = self.cuts[index].random;
                if !random {
                    self.scripted -= 1;
                } else if self.links.is_healed() {
                    return;
                }
                self.cut(index, on);
            }
            Ev::DkgStart { ceremony } => {
                self.scripted -= 1;
                self.start_dkg(ceremony);
            }
            Ev::Heal => self.heal(),
            Ev::Deadline => {
                if !self.incomplete.is_empty() && self.sc.network.periods > 0 {
                    let missing: Vec<String> = self
                        .incomplete
                        .iter()
                        .take(5)
                        .map(|u| format!("{u:?}"))
                        .collect();
                    let detail = format!(
                        "{} unit(s) not co-signed at every running honest member within {} ms of the heal, e.g. {}",
                        self.incomplete.len(),
                        self.sc.liveness.budget.0,
                        missing.join(", ")
                    );
                    self.checker.violations.push(Violation {
                        kind: ViolationKind::Suppression,
                        at_us: self.now - self.start,
                        detail,
                    });
                }
                self.stop_at = Some(self.now);
            }
        }
        self.maybe_stop();
    }

    fn maybe_stop(&mut self) {
        if self.stop_at.is_some() || self.scripted > 0 || self.now < self.heal_at {
            return;
        }
        let done = if self.sc.network.periods == 0 {
            self.dkg_done_at.is_some()
        } else {
            self.incomplete.is_empty()
        };
        if done {
            self.stop_at = Some(self.now + self.drain_us);
        }
    }

    fn record(&mut self, e: TraceEntry) {
        let e = TraceEntry {
            at: e.at - self.start,
            ..e
        };
        self.trace.record(e);
    }

    fn metrics_call(&mut self, m: usize) {
        self.metrics.members[m].engine_calls += 1;
    }

    // --------------------------------------------------------------------------------------------
    // Engines

    fn schedule_timer(&mut self, m: usize) {
        let Some(t) = self.nodes[m]
            .member
            .engine
            .as_ref()
            .and_then(Engine::poll_timeout)
        else {
            return;
        };
        let at = self.to_virtual(m, t).max(self.now);
        if self.nodes[m].timer.is_some_and(|x| x <= at) {
            return;
        }
        let node = &mut self.nodes[m];
        node.timer = Some(at);
        node.generation += 1;
        let generation = node.generation;
        self.queue.push(
            at,
            Ev::Timer {
                member: m as u16,
                generation,
            },
        );
    }

    fn schedule_twin_timer(&mut self, k: usize) {
        let of = self.twins[k].of;
        let Some(t) = self.twins[k]
            .node
            .member
            .engine
            .as_ref()
            .and_then(Engine::poll_timeout)
        else {
            return;
        };
        let at = self.to_virtual(of, t).max(self.now);
        let node = &mut self.twins[k].node;
        if node.timer.is_some_and(|x| x <= at) {
            return;
        }
        node.timer = Some(at);
        node.generation += 1;
        let generation = node.generation;
        self.queue.push(
            at,
            Ev::TwinTimer {
                twin: k as u16,
                generation,
            },
        );
    }

    /// Performs a twin's outputs: its messages leave as its member's.
    fn drain_twin(&mut self, k: usize) {
        let Some(engine) = self.twins[k].node.member.engine.as_mut() else {
            return;
        };
        let outputs = engine.take_outputs();
        let mut effects = Outputs {
            world: self,
            who: Driven::Twin(k),
        };
        let Ok(()) = driver::perform(outputs, &mut effects);
    }

    /// Performs member `m`'s outputs in order.
    fn drain(&mut self, m: usize) {
        self.aggregate_pending = false;
        let Some(engine) = self.nodes[m].member.engine.as_mut() else {
            return;
        };
        let outputs = engine.take_outputs();
        let mut effects = Outputs {
            world: self,
            who: Driven::Member(m),
        };
        let Ok(()) = driver::perform(outputs, &mut effects);
    }

    fn on_event(&mut self, m: usize, e: Event) {
        let mi = MemberIndex(m as u16);
        let now = self.now - self.start;
        match &e {
            Event::SessionStarted { id, .. } => {
                if let Some(u) = self.units.get_mut(&id.unit) {
                    u.sessions += 1;
                }
            }
            Event::Proposed { id } => {
                if let Some(u) = self.units.get_mut(&id.unit) {
                    u.proposals += 1;
                }
            }
            Event::Culprit {
                offence: Offence::InvalidShare,
                ..
            } if !self.aggregate_pending => {
                // A failed aggregation names its cheaters in one go.
                self.aggregate_pending = true;
                self.metrics.frost.aggregates += 1;
            }
            _ => {}
        }
        if !self.honest[m] {
            return;
        }
        self.checker.on_event(mi, &e, now);
        match e {
            Event::Decided(c) => self.decided(m, &c),
            Event::Refused { reason, .. } => {
                *self
                    .metrics
                    .refusals
                    .entry(reason.code().to_string())
                    .or_default() += 1;
            }
            Event::DkgComplete { .. } => self.check_dkg_done(),
            _ => {}
        }
    }

    fn check_dkg_done(&mut self) {
        if self.dkg_done_at.is_some() {
            return;
        }
        let all = (0..self.nodes.len())
            .filter(|i| self.honest[*i] && self.nodes[*i].member.engine.is_some())
            .all(|i| self.checker.dkg_keys.contains_key(&(i as u16)));
        if all {
            self.dkg_done_at = Some(self.now);
        }
    }

    fn decided(&mut self, m: usize, c: &accord_protocol::statement::CoSigned) {
        let Some(stats) = self.units.get_mut(&c.unit) else {
            return;
        };
        stats.decided_by.insert(m);
        if stats.first.is_none() {
            stats.first = Some(self.now);
        }
        let evidence: usize = c.statements.iter().map(|s| s.evidence.len()).sum();
        if stats.evidence.is_none_or(|e| evidence > e) {
            stats.evidence = Some(evidence);
            for s in &c.statements {
                if let Some(lab) = self.net.lab_by_id(&s.slot.lab) {
                    self.verdicts.insert(
                        (s.slot.period.0, lab.0),
                        (s.evidence.len(), s.verdict.kind().to_string()),
                    );
                }
            }
        }
        self.refresh_unit(c.unit);
    }

    fn honest_up(&self) -> Members {
        let mut set = Members::default();
        for i in 0..self.nodes.len() {
            if self.honest[i] && self.nodes[i].member.engine.is_some() {
                set.insert(i);
            }
        }
        set
    }

    fn refresh_unit(&mut self, unit: Unit) {
        let need = self.honest_up();
        if let Some(stats) = self.units.get_mut(&unit)
            && stats.decided_by.contains_all(&need)
        {
            if stats.all.is_none() {
                stats.all = Some(self.now);
            }
            self.incomplete.remove(&unit);
        }
    }

    fn refresh_all(&mut self) {
        let pending: Vec<Unit> = self.incomplete.iter().copied().collect();
        for u in pending {
            self.refresh_unit(u);
        }
    }

    fn packet(&mut self, message: Message) -> Option<Rc<Packet>> {
        // A coordinator sends the same signing request to every signer of a session: encode it
        // once (comparing is far cheaper than serialising t commitments again).
        if let Some(last) = &self.last_packet
            && last.message == message
        {
            return Some(last.clone());
        }
        let bytes = match message.encode() {
            Ok(b) => b,
            Err(_) => {
                self.metrics.oversize += 1;
                return None;
            }
        };
        let content: [u8; 32] = Sha256::digest(&bytes).into();
        let gossip = message.is_gossip();
        let id = if gossip {
            let next = self.packet_ids.len() as u32;
            *self.packet_ids.entry(content).or_insert(next)
        } else {
            u32::MAX
        };
        self.checker.on_packet(&message, &content);
        let packet = Rc::new(Packet {
            kind: message.kind(),
            bytes: bytes.len() as u32,
            content,
            id,
            gossip,
            message,
        });
        if matches!(packet.message, Message::SignRequest(_)) {
            self.last_packet = Some(packet.clone());
        }
        Some(packet)
    }

    fn send_out(&mut self, m: usize, to: MemberIndex, message: Message) {
        if self.honest[m] {
            if let Some(p) = self.packet(message) {
                self.transmit(m, usize::from(to.0), m as u16, p, false);
            }
            return;
        }
        let out = self.misbehave(m, vec![(to, message)]);
        self.send_variants(m, out);
    }

    fn broadcast_out(&mut self, m: usize, message: Message) {
        let n = self.nodes.len();
        if self.honest[m] {
            let Some(p) = self.packet(message) else {
                return;
            };
            if p.gossip {
                self.nodes[m].seen_insert(p.id);
            }
            let targets: Vec<usize> = if self.sc.gossip.flood_publish {
                (1..n).map(|k| (m + k) % n).collect()
            } else {
                self.mesh[m].iter().map(|j| usize::from(*j)).collect()
            };
            for to in targets {
                self.transmit(m, to, m as u16, p.clone(), false);
            }
            return;
        }
        let all: Vec<(MemberIndex, Message)> = (1..n)
            .map(|k| (MemberIndex(((m + k) % n) as u16), message.clone()))
            .collect();
        let out = self.misbehave(m, all);
        self.send_variants(m, out);
    }

    /// Sends a Byzantine member's (rewritten) messages, one packet per distinct message.
    fn send_variants(&mut self, m: usize, out: Vec<(MemberIndex, Message)>) {
        let mut variants: Vec<(Message, Rc<Packet>)> = Vec::new();
        for (to, message) in out {
            let packet = match variants.iter().find(|(v, _)| *v == message) {
                Some((_, p)) => p.clone(),
                None => {
                    let Some(p) = self.packet(message.clone()) else {
                        continue;
                    };
                    if p.gossip {
                        self.nodes[m].seen_insert(p.id);
                    }
                    variants.push((message, p.clone()));
                    p
                }
            };
            self.transmit(m, usize::from(to.0), m as u16, packet, false);
        }
    }

    /// Applies member `m`'s behaviour to what its engine sends.
    fn misbehave(
        &mut self,
        m: usize,
        out: Vec<(MemberIndex, Message)>,
    ) -> Vec<(MemberIndex, Message)> {
        match self.roles[m] {
            Role::Protocol(behaviour) => {
                let adversary = Adversary {
                    net: &self.net,
                    identities: &self.identities,
                    key: self.nodes[m].member.key.as_ref(),
                    late: &self.late_items,
                    bodies: &self.checker.bodies,
                    colluders: &self.colluders,
                };
                adversary.rewrite(
                    behaviour,
                    MemberIndex(m as u16),
                    out,
                    &mut self.mutators[m],
                    &mut self.adv_rngs[m],
                )
            }
            Role::Twins => out,
            Role::EquivocatingDkg => {
                let mut alt: Option<Message> = None;
                let local = self.local(m);
                out.into_iter()
                    .map(|(to, msg)| match &msg {
                        Message::Dkg(d)
                            if matches!(d.body, DkgBody::Round1(_)) && to.0 % 2 == 1 =>
                        {
                            if alt.is_none() {
                                // A second, validly signed round-1 package for the same ceremony.
                                let (_, outputs) = DkgMachine::start(
                                    self.net.clone(),
                                    MemberIndex(m as u16),
                                    &self.identities[m],
                                    d.ceremony,
                                    local,
                                    &mut self.adv_rngs[m],
                                );
                                alt = outputs.into_iter().find_map(|o| match o {
                                    DkgOutput::Broadcast(b) => Some(Message::Dkg(b)),
                                    _ => None,
                                });
                            }
                            (to, alt.clone().unwrap_or(msg))
                        }
                        _ => (to, msg),
                    })
                    .collect()
            }
        }
    }

    fn transmit(&mut self, from: usize, to: usize, author: u16, packet: Rc<Packet>, dup: bool) {
        if from == to {
            return;
        }
        self.metrics.transmissions += 1;
        let fate =
            self.links
                .transmit(from, to, packet.bytes as usize, self.now, &mut self.net_rng);
        let mm = &mut self.metrics.members[from];
        mm.msgs_sent += 1;
        mm.bytes_sent += u64::from(packet.bytes);
        match fate {
            Fate::Cut => self.metrics.dropped_cut += 1,
            Fate::Lost => self.metrics.dropped_lost += 1,
            Fate::Delivered { at, dup: copy } => {
                let via = from as u16;
                if let Some(c) = copy {
                    self.metrics.injected_duplicates += 1;
                    self.queue.push(
                        c,
                        Ev::Deliver {
                            to: to as u16,
                            author,
                            via,
                            packet: packet.clone(),
                            dup: true,
                        },
                    );
                }
                self.queue.push(
                    at,
                    Ev::Deliver {
                        to: to as u16,
                        author,
                        via,
                        packet,
                        dup,
                    },
                );
            }
        }
    }

    fn deliver(&mut self, to: usize, author: u16, via: u16, packet: Rc<Packet>, dup: bool) {
        if self.nodes[to].member.engine.is_none() {
            self.metrics.dropped_down += 1;
            return;
        }
        {
            let mm = &mut self.metrics.members[to];
            mm.msgs_recv += 1;
            mm.bytes_recv += u64::from(packet.bytes);
        }
        if packet.gossip && !dup && !self.nodes[to].seen_insert(packet.id) {
            self.metrics.gossip_duplicates += 1;
            return;
        }
        if self.roles[to] == Role::Protocol(Behaviour::Silent) {
            return;
        }
        // Twins: the odd-numbered members' messages reach the twin, the others the primary.
        if self.roles[to] == Role::Twins
            && author % 2 == 1
            && let Some(k) = self.twins.iter().position(|t| t.of == to)
        {
            let local = self.local(to);
            let node = &mut self.twins[k].node;
            if let Some(engine) = node.member.engine.as_mut() {
                engine.handle_message(
                    local,
                    MemberIndex(author),
                    packet.message.clone(),
                    &mut node.member.rng,
                );
            }
            self.drain_twin(k);
            self.schedule_twin_timer(k);
            return;
        }
        let local = self.local(to);
        let stamp = self.profile.start();
        let node = &mut self.nodes[to];
        let Some(engine) = node.member.engine.as_mut() else {
            return;
        };
        let delivery = engine.handle_message(
            local,
            MemberIndex(author),
            packet.message.clone(),
            &mut node.member.rng,
        );
        self.profile.stop(stamp, packet.kind);
        self.metrics_call(to);
        let content = u64::from_le_bytes(
            packet.content[..8]
                .try_into()
                .expect("a digest has 8 bytes"),
        );
        self.record(TraceEntry {
            at: self.now,
            what: if dup { "deliver2" } else { "deliver" },
            member: to as u16,
            other: author,
            message: packet.kind,
            content,
            outcome: delivery_name(&delivery),
        });
        self.drain(to);
        self.schedule_timer(to);
        if packet.gossip && !dup && delivery == Delivery::Accepted && self.honest[to] {
            let peers: Vec<u16> = self.mesh[to]
                .iter()
                .copied()
                .filter(|p| *p != via && *p != author)
                .collect();
            for p in peers {
                self.transmit(to, usize::from(p), author, packet.clone(), false);
            }
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        if self.nodes[a].member.engine.is_none()
            || self.nodes[b].member.engine.is_none()
            || self.links.is_cut(a, b)
            || self.links.is_cut(b, a)
        {
            return;
        }
        let stamp = self.profile.start();
        if let Some(engine) = self.nodes[a].member.engine.as_mut() {
            engine.peer_connected(MemberIndex(b as u16));
        }
        self.profile.stop(stamp, "peer-connected");
        self.drain(a);
    }

    // --------------------------------------------------------------------------------------------
    // Workload

    /// A submission to member `m` as a lab (or inspector) would make it: acknowledged only after
    /// the member's outputs (and so the item's `Persist`) were performed.
    fn submit_to(&mut self, m: usize, evidence: Evidence) -> Result<Digest, EvidenceError> {
        let body = Arc::new(evidence.clone());
        let local = self.local(m);
        let stamp = self.profile.start();
        let Some(engine) = self.nodes[m].member.engine.as_mut() else {
            return Err(EvidenceError::BadField("member is down"));
        };
        let result = engine.submit(local, evidence);
        self.profile.stop(stamp, "submit");
        self.metrics_call(m);
        self.checker.add_body(&body);
        self.record(TraceEntry {
            at: self.now,
            what: "submit",
            member: m as u16,
            other: u16::MAX,
            message: "evidence",
            content: 0,
            outcome: if result.is_ok() { "ok" } else { "refused" },
        });
        self.drain(m);
        self.schedule_timer(m);
        match &result {
            Ok(d) => {
                self.nodes[m].member.acknowledged.insert(*d, body.period());
                self.metrics.acknowledged += 1;
            }
            Err(_) => self.metrics.refused += 1,
        }
        result
    }

    /// Picks up to `copies` running members in random order and submits to each.
    fn spread(&mut self, evidence: &Evidence, rng: &mut ChaCha20Rng) {
        let n = self.nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut sent = 0;
        for i in 0..n {
            if sent >= self.sc.labs.copies {
                break;
            }
            let j = i + below(rng, (n - i) as u64) as usize;
            order.swap(i, j);
            let m = order[i];
            if self.nodes[m].member.engine.is_none() {
                continue;
            }
            let _ = self.submit_to(m, evidence.clone());
            sent += 1;
        }
    }

    fn submit_lab(&mut self, lab: u16, period: u64) {
        let conduct = self.conduct[&(period, lab)];
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (period << 16) | u64::from(lab),
            0,
        );
        let issued = Instant::from_millis(self.now / 1000);
        let items = lab_submissions(
            self.net.id(),
            self.net.lab_id(LabIndex(lab)),
            &self.lab_keys[usize::from(lab)],
            Period(period),
            &self.net.roster().policy,
            conduct.fixture(),
            issued,
            &mut rng,
        );
        for ev in items {
            if let Evidence::Attestation { attestation, .. } = &ev
                && self.sc.labs.inspections > 0.0
                && unit(&mut rng) < self.sc.labs.inspections
            {
                let discrepancy = unit(&mut rng) < self.sc.labs.discrepancy;
                let end = ms(self.net.schedule().end(Period(period)).as_millis());
                let at = self.now + below(&mut rng, end.saturating_sub(self.now).max(2) / 2);
                self.push_scripted(
                    at,
                    Ev::Inspect {
                        lab,
                        attestation: Box::new(attestation.clone()),
                        discrepancy,
                    },
                );
            }
            self.spread(&ev, &mut rng);
        }
    }

    fn inspect(&mut self, lab: u16, attestation: &Attestation, discrepancy: bool) {
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (attestation.period.0 << 16) | u64::from(lab),
            1,
        );
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.honest[*i] && self.nodes[*i].member.engine.is_some())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let m = candidates[below(&mut rng, candidates.len() as u64) as usize];
        let factor = if discrepancy { 80 } else { 100 };
        let report = inspection(
            self.net.id(),
            MemberIndex(m as u16),
            &self.identities[m],
            attestation,
            factor,
            self.local(m),
        );
        let _ = self.submit_to(m, report);
    }

    fn late(&mut self, lab: u16, period: u64) {
        let evidence = match self.late_for.get(&(period, lab)) {
            Some(e) => e.clone(),
            None => {
                let mut rng = child_rng(
                    self.opts.seed,
                    "workload-items",
                    (period << 16) | u64::from(lab),
                    2,
                );
                // Backdated: signed as if within the period.
                let end = self.net.schedule().end(Period(period));
                let issued = end.saturating_sub(core::time::Duration::from_millis(1_000));
                lab_submissions(
                    self.net.id(),
                    self.net.lab_id(LabIndex(lab)),
                    &self.lab_keys[usize::from(lab)],
                    Period(period),
                    &self.net.roster().policy,
                    LabConduct::Compliant,
                    issued,
                    &mut rng,
                )
                .remove(0)
            }
        };
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (period << 16) | u64::from(lab),
            3,
        );
        let n = self.nodes.len();
        let mut tried = 0;
        for k in 0..n {
            if tried >= self.sc.labs.copies {
                break;
            }
            let m = (below(&mut rng, n as u64) as usize + k) % n;
            if !self.honest[m] || self.nodes[m].member.engine.is_none() {
                continue;
            }
            tried += 1;
            self.metrics.late_attempts += 1;
            match self.submit_to(m, evidence.clone()) {
                Ok(_) => self.metrics.late_accepted += 1,
                Err(_) => self.metrics.late_refused += 1,
            }
        }
    }

    fn collude(&mut self, lab: u16, period: u64) {
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (period << 16) | u64::from(lab),
            4,
        );
        let evidence = lab_submissions(
            self.net.id(),
            self.net.lab_id(LabIndex(lab)),
            &self.lab_keys[usize::from(lab)],
            Period(period),
            &self.net.roster().policy,
            LabConduct::Compliant,
            Instant::from_millis(self.now / 1000),
            &mut rng,
        )
        .remove(0);
        let body = Arc::new(evidence.clone());
        let d = body.digest();
        self.checker.add_body(&body);
        self.late_items.insert(d);
        self.late_for.insert((period, lab), evidence);
        self.record(TraceEntry {
            at: self.now,
            what: "collude",
            member: u16::MAX,
            other: lab,
            message: "evidence",
            content: u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes")),
            outcome: "",
        });
    }

    // --------------------------------------------------------------------------------------------
    // Faults

    fn crash(&mut self, m: usize) {
        if self.nodes[m].member.engine.is_none() {
            return;
        }
        let node = &mut self.nodes[m];
        node.member.engine = None;
        node.timer = None;
        node.seen.clear();
        self.links.reset_uplink(m, self.now);
        self.metrics.members[m].crashes += 1;
        self.record(TraceEntry {
            at: self.now,
            what: "crash",
            member: m as u16,
            other: u16::MAX,
            message: "",
            content: 0,
            outcome: "",
        });
        self.refresh_all();
    }

    fn restart(&mut self, m: usize) {
        if self.nodes[m].member.engine.is_some() {
            return;
        }
        let identity = SecretKey::from_seed(&self.identities[m].seed());
        let stamp = self.profile.start();
        let net = self.net.clone();
        let member = &mut self.nodes[m].member;
        // Invariant 7: everything acknowledged (in periods the engine still keeps) survived.
        let lost = member
            .restart(&net, identity, EngineConfig::default())
            .err()
            .map(|lost| lost.0)
            .unwrap_or_default();
        let decided: Vec<Unit> = member
            .engine
            .as_ref()
            .map(|e| e.decided().map(|c| c.unit).collect())
            .unwrap_or_default();
        self.profile.stop(stamp, "restore");
        if !lost.is_empty() && self.honest[m] {
            self.checker.violations.push(Violation {
                kind: ViolationKind::AcknowledgedLost,
                at_us: self.now - self.start,
                detail: format!(
                    "member#{m} lost {} acknowledged item(s) across a restart, e.g. {:?}",
                    lost.len(),
                    lost[0]
                ),
            });
        }
        self.record(TraceEntry {
            at: self.now,
            what: "restart",
            member: m as u16,
            other: u16::MAX,
            message: "",
            content: 0,
            outcome: "",
        });
        if self.honest[m] {
            for u in decided {
                if let Some(s) = self.units.get_mut(&u) {
                    s.decided_by.insert(m);
                }
            }
        }
        let n = self.nodes.len();
        for other in 0..n {
            if other != m {
                self.connect(m, other);
                self.connect(other, m);
            }
        }
        self.schedule_timer(m);
        self.refresh_all();
    }

    fn cut(&mut self, index: usize, on: bool) {
        let links = self.cuts[index].links.clone();
        let mut changed: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (a, b) in links {
            let (a, b) = (usize::from(a), usize::from(b));
            if self.links.set_cut(a, b, on) && !on {
                changed.insert((a.min(b), a.max(b)));
            }
        }
        self.record(TraceEntry {
            at: self.now,
            what: if on { "cut" } else { "uncut" },
            member: index as u16,
            other: u16::MAX,
            message: "",
            content: 0,
            outcome: "",
        });
        for (a, b) in changed {
            self.connect(a, b);
            self.connect(b, a);
        }
    }

    fn heal(&mut self) {
        let up = self.links.heal();
        self.record(TraceEntry {
            at: self.now,
            what: "heal",
            member: u16::MAX,
            other: u16::MAX,
            message: "",
            content: 0,
            outcome: "",
        });
        let pairs: BTreeSet<(usize, usize)> =
            up.into_iter().map(|(a, b)| (a.min(b), a.max(b))).collect();
        for (a, b) in pairs {
            self.connect(a, b);
            self.connect(b, a);
        }
        if self.sc.liveness.restart_crashed {
            for m in 0..self.nodes.len() {
                if self.nodes[m].member.engine.is_none() {
                    self.restart(m);
                }
            }
        }
    }

    fn start_dkg(&mut self, ceremony: u32) {
        for m in 0..self.nodes.len() {
            let local = self.local(m);
            let stamp = self.profile.start();
            let node = &mut self.nodes[m];
            let Some(engine) = node.member.engine.as_mut() else {
                continue;
            };
            if engine.group_key().is_some() {
                continue;
            }
            let _ = engine.start_dkg(local, ceremony, &mut node.member.rng);
            self.profile.stop(stamp, "start-dkg");
            self.drain(m);
            self.schedule_timer(m);
        }
    }

    // --------------------------------------------------------------------------------------------
    // Results

    fn finish(mut self) -> RunResult {
        for m in &self.mutators {
            for (k, v) in &m.actions {
                *self
                    .metrics
                    .adversary_actions
                    .entry((*k).to_string())
                    .or_default() += v;
            }
        }
        let periods = self.sc.network.periods;
        let schedule = self.net.schedule().clone();
        let mut slots = Vec::new();
        let mut decided = 0usize;
        for p in 0..periods {
            let close = ms(schedule.close(Period(p)).as_millis());
            for l in 0..self.sc.network.labs as u16 {
                let unit = match self.net.roster().signing_mode {
                    SigningMode::PerPeriod => Unit::Period(Period(p)),
                    SigningMode::PerSlot => Unit::Slot {
                        period: Period(p),
                        lab: LabIndex(l),
                    },
                };
                let stats = self.units.get(&unit);
                let verdict = self.verdicts.get(&(p, l));
                if verdict.is_some() {
                    decided += 1;
                }
                let since = |t: Option<Micros>| t.map(|t| (t as f64 - close as f64) / 1e3);
                slots.push(SlotMetric {
                    period: p,
                    lab: l,
                    conduct: self.conduct[&(p, l)],
                    verdict: verdict.map(|v| v.1.clone()),
                    evidence: verdict.map_or(0, |v| v.0),
                    time_to_verdict_ms: since(stats.and_then(|s| s.first)),
                    time_to_all_ms: since(stats.and_then(|s| s.all)),
                    sessions: stats.map_or(0, |s| s.sessions),
                    proposals: stats.map_or(0, |s| s.proposals),
                });
            }
        }
        let first_statement_ms = self
            .units
            .values()
            .filter_map(|s| s.first)
            .min()
            .map(|t| (t - self.start) as f64 / 1e3);
        let mut culprits: BTreeMap<(u16, String), usize> = BTreeMap::new();
        for a in &self.checker.accusations {
            *culprits.entry((a.culprit, a.offence.clone())).or_default() += 1;
        }
        let mut metrics = std::mem::take(&mut self.metrics);
        metrics.slots = slots;
        metrics.share_decided = if periods == 0 {
            0.0
        } else {
            decided as f64 / (periods as f64 * self.sc.network.labs as f64)
        };
        metrics.culprits = culprits
            .into_iter()
            .map(|((member, offence), named_by)| CulpritMetric {
                member,
                role: self.roles[usize::from(member)].name(),
                offence,
                named_by,
            })
            .collect();
        metrics.virtual_seconds = (self.now - self.start) as f64 / 1e6;
        if self.sc.network.keys == Keys::Dkg {
            let mut aborted: Vec<u32> = self.checker.dkg_aborts.iter().map(|a| a.1).collect();
            aborted.sort_unstable();
            aborted.dedup();
            let mut named: Vec<u16> = self
                .checker
                .dkg_aborts
                .iter()
                .flat_map(|a| a.2.iter().copied())
                .collect();
            named.sort_unstable();
            named.dedup();
            metrics.dkg = Some(DkgMetric {
                completed: self.checker.dkg_keys.len(),
                aborted_ceremonies: aborted,
                culprits: named,
                complete_after_ms: self.dkg_done_at.map(|t| (t - self.start) as f64 / 1e3),
            });
        }
        self.trace.fold(metrics.transmissions);
        self.trace.fold(metrics.frost.signs);
        let live = self.incomplete.is_empty() && (periods > 0 || self.dkg_done_at.is_some());
        let wall = self.profile.elapsed();
        let profile = self.profile.enabled().then(|| {
            let baseline = (self.opts.frost_sample > 0)
                .then(|| {
                    frost_baseline(
                        self.net.n() as u16,
                        self.net.t() as u16,
                        self.opts.frost_sample,
                    )
                    .ok()
                })
                .flatten();
            self.profile
                .report(wall, self.setup_seconds, metrics.frost, baseline)
        });
        RunResult {
            seed: self.opts.seed,
            trace_hash: self.trace.hash(),
            violations: self.checker.violations.clone(),
            last_events: self.trace.last().map(ToString::to_string).collect(),
            live,
            accusations: self.checker.accusations.iter().cloned().collect(),
            metrics,
            profile,
            first_statement_ms,
        }
    }
}

/// Whose outputs are being performed.
#[derive(Clone, Copy)]
enum Driven {
    /// A member's (honest or Byzantine).
    Member(usize),
    /// A Twins pair's second engine: its messages leave as its member's, nothing else counts.
    Twin(usize),
}

/// The simulator's side of [`driver::perform`]: records into the member (checked when it is
/// honest), messages onto the simulated network, events into metrics and the checker.
struct Outputs<'a> {
    world: &'a mut Simulation,
    who: Driven,
}

impl Outputs<'_> {
    fn node(&mut self) -> &mut Node {
        match self.who {
            Driven::Member(m) => &mut self.world.nodes[m],
            Driven::Twin(k) => &mut self.world.twins[k].node,
        }
    }

    /// The member whose messages these are, and whether its checks count.
    fn sender(&self) -> (usize, bool) {
        match self.who {
            Driven::Member(m) => (m, self.world.honest[m]),
            Driven::Twin(k) => (self.world.twins[k].of, false),
        }
    }
}

impl driver::Effects for Outputs<'_> {
    type Error = std::convert::Infallible;

    fn persist(&mut self, record: Record) -> Result<(), Self::Error> {
        if let Driven::Member(m) = self.who {
            if let Record::Signed(_) = record {
                self.world.metrics.frost.signs += 1;
            }
            if self.world.honest[m] {
                let now = self.world.now - self.world.start;
                self.world
                    .checker
                    .on_record(MemberIndex(m as u16), &record, now);
            }
        }
        self.node().member.persist(record);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), Self::Error> {
        self.node().member.compact(snapshot);
        Ok(())
    }

    fn store_key(&mut self, key: KeyMaterial) -> Result<(), Self::Error> {
        self.node().member.store_key(key);
        Ok(())
    }

    fn send(&mut self, to: MemberIndex, message: Message) {
        let (m, checked) = self.sender();
        if let Driven::Member(_) = self.who {
            if matches!(message, Message::Accept(_) | Message::Share(_)) {
                self.world.metrics.frost.commits += 1;
            }
            if checked {
                let now = self.world.now - self.world.start;
                self.world
                    .checker
                    .on_sent(MemberIndex(m as u16), &message, now);
            }
        }
        self.world.send_out(m, to, message);
    }

    fn broadcast(&mut self, message: Message) {
        let (m, checked) = self.sender();
        if let Driven::Member(_) = self.who {
            if matches!(message, Message::CoSigned(_)) {
                self.world.metrics.frost.aggregates += 1;
            }
            if checked {
                let now = self.world.now - self.world.start;
                self.world
                    .checker
                    .on_sent(MemberIndex(m as u16), &message, now);
            }
        }
        self.world.broadcast_out(m, message);
    }

    fn event(&mut self, event: Event) {
        if let Driven::Member(m) = self.who {
            self.world.on_event(m, event);
        }
    }
}
