//! Building a run: the roster and keys (dealt, or left to a ceremony), members and their twins,
//! clock skews, the link model and gossip mesh, and the first events in the queue (the planned
//! workload and faults, ceremonies, the heal and the deadline).

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use accord_protocol::crypto::{CheckedSignatures, SecretKey, Verifier};
use accord_protocol::dkg::{KeyMaterial, deal};
use accord_protocol::engine::{Engine, EngineConfig};
use accord_protocol::fixtures::{Testnet, TestnetSpec};
use accord_protocol::policy::PolicyParams;
use accord_protocol::roster::{MemberIndex, Network, Period, Schedule, SigningMode};
use accord_protocol::statement::Unit;
use accord_testkit::adversary::Behaviour;
use accord_testkit::{Member, child_rng};

use crate::checker::Checker;
use crate::net::{self, Links, Micros, unit};
use crate::profile::Profiler;
use crate::queue::Queue;
use crate::scenario::{Keys, Role, Scenario, Signing};
use crate::trace::Trace;

use super::{
    Ev, MemberMetric, Members, Node, Options, RunMetrics, SetupError, Simulation, Twin, UnitStats,
    ms,
};

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

/// What one epoch's world is built from: its roster and keys, and the periods it decides.
pub(super) struct EpochSetup {
    /// Which epoch (0: the genesis roster).
    pub index: u16,
    /// Seed of this epoch's random streams.
    pub seed: u64,
    /// The epoch's validated roster.
    pub net: Arc<Network>,
    /// Member identity keys, in roster order.
    pub identities: Vec<SecretKey>,
    /// Lab signing keys (the same in every epoch).
    pub lab_keys: Vec<SecretKey>,
    /// Dealt key material, or `None` for each member when a DKG makes it.
    pub keys: Vec<Option<KeyMaterial>>,
    /// Members' clock offsets (ms).
    pub skews: Vec<i64>,
    /// The periods the epoch decides.
    pub periods: std::ops::Range<u64>,
    /// Virtual time at which the epoch's world starts.
    pub start: Micros,
}

impl Simulation {
    /// Builds the network, keys, workload and fault schedule for `scenario` and `opts.seed`:
    /// the genesis epoch, which decides every period when the scenario has no successions.
    ///
    /// # Errors
    /// When the roster or the dealer refuse the scenario's parameters.
    pub fn new(scenario: &Scenario, opts: Options) -> Result<Self, SetupError> {
        let sc = scenario;
        let seed = opts.seed;
        let n = sc.network.members;
        let spec = TestnetSpec {
            name: sc.name.clone(),
            members: n,
            threshold: sc.network.threshold,
            labs: sc.network.labs,
            schedule: schedule_of(sc),
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
        let mut clock_rng = child_rng(seed, "clock", 0, 0);
        let skews: Vec<i64> = (0..n)
            .map(|i| match sc.clock.skews.get(i) {
                Some(o) => o.0,
                None => random_skew(sc, &mut clock_rng),
            })
            .collect();
        let lead = match sc.network.keys {
            Keys::Dkg => sc.dkg.lead.0,
            Keys::Dealer => 1_000,
        };
        let end = sc
            .succession
            .first()
            .map_or(sc.network.periods, |s| s.first_period);
        let start = ms(net.schedule().genesis_ms.saturating_sub(lead));
        Self::build(
            sc.clone(),
            opts,
            EpochSetup {
                index: 0,
                seed,
                net,
                identities: testnet.members,
                lab_keys: testnet.labs,
                keys,
                skews,
                periods: 0..end,
                start,
            },
        )
    }

    /// Builds one epoch's world from `scenario` (its network section describing this epoch).
    pub(super) fn build(
        sc: Scenario,
        opts: Options,
        epoch: EpochSetup,
    ) -> Result<Self, SetupError> {
        let profile = Profiler::new(opts.profile);
        let seed = epoch.seed;
        let engine_config = EngineConfig {
            verifier: if opts.shared_checks {
                Verifier::shared(Arc::new(CheckedSignatures::default()))
            } else {
                Verifier::default()
            },
            refresh_every: sc.network.refresh_every,
            epoch_start: (epoch.index > 0).then_some(Period(epoch.periods.start)),
            ..EngineConfig::default()
        };
        let net = epoch.net;
        let keys = epoch.keys;
        let n = net.n();
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
        let skews = epoch.skews;
        let identities = epoch.identities;
        let engine_for = |i: usize| {
            Engine::new(
                net.clone(),
                MemberIndex(i as u16),
                SecretKey::from_seed(&identities[i].seed()),
                keys[i].clone(),
                engine_config.clone(),
            )
        };
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                member: Member::new(MemberIndex(i as u16), engine_for(i), keys[i].clone(), seed),
                timer: None,
                generation: 0,
                skew_ms: skews[i],
                seen: Vec::new(),
            })
            .collect();
        let twins = (0..n)
            .filter(|i| roles[*i] == Role::Twins)
            .map(|i| Twin {
                of: i,
                node: Node {
                    member: Member::with_stream(
                        MemberIndex(i as u16),
                        engine_for(i),
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
            .collect();
        let links = Links::new(&sc.links, n);
        let mesh = net::mesh(
            n,
            sc.gossip.mesh_degree,
            &mut child_rng(seed, "gossip", 0, 0),
        );
        let schedule = net.schedule().clone();
        let start = epoch.start;
        let periods = epoch.periods.clone();
        let last_close = if periods.is_empty() {
            ms(schedule.genesis_ms).max(start)
        } else {
            ms(schedule.close(Period(periods.end - 1)).as_millis())
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
            twins,
            net_rng: child_rng(seed, "network", 0, 0),
            trace: Trace::new(opts.trace_capacity),
            opts: Options { seed, ..opts },
            engine_config,
            net,
            identities,
            lab_keys: epoch.lab_keys,
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
            epoch: epoch.index,
            first: periods.start,
            end: periods.end,
            hold: false,
            watch_until: 0,
            handed_over: None,
            sc,
        };
        let heal_at = match sim.sc.liveness.heal {
            Some(at) => sim.at(&at),
            None => last_close,
        };
        sim.heal_at = heal_at;
        if sim.end < sim.sc.network.periods {
            sim.watch_until = ms(schedule.close(Period(sim.end)).as_millis()) + drain_us;
        }
        sim.deadline = heal_at.max(last_close).max(sim.watch_until) + ms(sim.sc.liveness.budget.0);
        for p in periods {
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
                epoch: sim.epoch,
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
}

/// A clock offset within `clock.max_skew` (0 without one).
pub(super) fn random_skew(sc: &Scenario, rng: &mut rand_chacha::ChaCha20Rng) -> i64 {
    if sc.clock.max_skew.0 == 0 {
        return 0;
    }
    let max = sc.clock.max_skew.0 as f64;
    (unit(rng) * max - max / 2.0).round() as i64
}
