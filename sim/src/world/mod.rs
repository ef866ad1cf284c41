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
//!
//! The run is split by concern: `setup` builds it; this module holds its state, the event loop
//! and the time helpers; `engines` drives each member's engine and performs its outputs;
//! `gossip` carries messages over the link model; `workload` plays the labs and inspectors;
//! `faults` crashes, restarts, partitions and heals; `results` folds the run into a
//! [`RunResult`].

mod engines;
mod epochs;
mod faults;
mod gossip;
mod results;
mod setup;
mod workload;

pub use epochs::Epochs;
pub use results::{
    CulpritMetric, DkgMetric, EpochMetric, MemberMetric, RunMetrics, RunResult, SlotMetric,
};

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::engine::EngineConfig;
use accord_protocol::evidence::{Attestation, Evidence};
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::statement::Unit;
use accord_protocol::time::Instant;
use accord_testkit::Member;
use rand_chacha::ChaCha20Rng;
use thiserror::Error;

use crate::checker::{Checker, Violation};
use crate::net::{Links, Micros};
use crate::profile::Profiler;
use crate::queue::Queue;
use crate::scenario::{Anchor, At, Conduct, Role, Scenario, ViolationKind};
use crate::trace::{Trace, TraceEntry};

use self::gossip::Packet;

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
    /// Members share one memo of signatures found valid, so a signature every member checks is
    /// checked once per run (`CheckedSignatures`; outcomes and traces are the same either way).
    /// Off, every member pays for every check, as a node does.
    pub shared_checks: bool,
}

impl Options {
    /// Defaults for `seed`: no profiling, 40 events of history, shared signature checks.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            profile: false,
            frost_sample: 0,
            trace_capacity: 40,
            shared_checks: true,
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

/// Progress of a run, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Fraction of the planned virtual time done.
    pub fraction: f64,
    /// Events so far.
    pub events: u64,
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
    /// The engine configuration every member starts and restarts with (one shared signature
    /// memo, when `opts.shared_checks`).
    engine_config: EngineConfig,
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
    /// Which epoch of the run this world is (0: the genesis roster).
    epoch: u16,
    /// The periods this epoch decides: `first..end` (the whole run without successions).
    first: u64,
    end: u64,
    /// Kept running past its own units while a succession it co-signs is pending.
    hold: bool,
    /// A handing epoch runs until its successor's first period closed (plus the drain), so a
    /// member that co-signed a period it handed over would be seen.
    watch_until: Micros,
    /// The co-signed succession of this epoch, once an honest member learned it.
    handed_over: Option<Arc<accord_protocol::succession::SignedSuccession>>,
}

fn ms(x: u64) -> Micros {
    x.saturating_mul(1000)
}

impl Simulation {
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
    // The loop

    /// Runs to the end; calls `progress` now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(Progress)) -> RunResult {
        let span = self.deadline.saturating_sub(self.start).max(1) as f64;
        while self.step() {
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

    /// When the next event is due, unless the run is over.
    fn next_at(&self) -> Option<Micros> {
        let at = self.queue.peek_time()?;
        (self.stop_at.is_none_or(|s| at <= s) && self.checker.violations.is_empty()).then_some(at)
    }

    /// Handles the next event; false once the run is over (its end, or a violation).
    fn step(&mut self) -> bool {
        let Some((at, ev)) = self.queue.pop() else {
            return false;
        };
        if self.stop_at.is_some_and(|s| at > s) {
            return false;
        }
        self.now = at;
        self.metrics.events += 1;
        let max_events = self.sc.limits.max_events;
        if self.metrics.events > max_events {
            self.checker.violations.push(Violation {
                kind: ViolationKind::Stalled,
                at_us: self.now - self.start,
                detail: format!("more than {max_events} events"),
            });
            return false;
        }
        self.handle(ev);
        if self.checker.is_dirty() {
            let now = self.now - self.start;
            self.checker.check(now);
        }
        self.checker.violations.is_empty()
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
                if !self.incomplete.is_empty() && self.end > self.first {
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
        if self.stop_at.is_some()
            || self.scripted > 0
            || self.now < self.heal_at
            || self.now < self.watch_until
            || self.hold
        {
            return;
        }
        let done = if self.end == self.first {
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
}
