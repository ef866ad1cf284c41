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
use crate::net::{self, Links, unit};
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

impl Simulation {
    /// Builds the network, keys, workload and fault schedule for `scenario` and `opts.seed`.
    ///
    /// # Errors
    /// When the roster or the dealer refuse the scenario's parameters.
    pub fn new(scenario: &Scenario, opts: Options) -> Result<Self, SetupError> {
        let profile = Profiler::new(opts.profile);
        let sc = scenario.clone();
        let seed = opts.seed;
        let engine_config = EngineConfig {
            verifier: if opts.shared_checks {
                Verifier::shared(Arc::new(CheckedSignatures::default()))
            } else {
                Verifier::default()
            },
            refresh_every: sc.network.refresh_every,
            ..EngineConfig::default()
        };
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
                    engine_config.clone(),
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
                                engine_config.clone(),
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
            engine_config,
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
}
