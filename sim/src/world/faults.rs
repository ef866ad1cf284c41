//! Faults and scripted interventions: the plan (scheduled crashes and partitions, random ones
//! during the fault phase), crashes, restarts from persisted records only (checking that nothing
//! acknowledged was lost), cuts, the heal, and the start of key ceremonies.

use std::collections::BTreeSet;

use accord_protocol::crypto::SecretKey;
use accord_protocol::roster::Period;
use accord_protocol::statement::Unit;
use accord_testkit::child_rng;
use rand_chacha::ChaCha20Rng;

use crate::checker::Violation;
use crate::net::{self, below, unit};
use crate::scenario::{PartitionKind, ViolationKind};
use crate::trace::TraceEntry;

use super::{CutDef, Ev, Simulation, ms};

impl Simulation {
    pub(super) fn plan_faults(&mut self) {
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
        for p in self.first..self.end {
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

    pub(super) fn crash(&mut self, m: usize) {
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

    pub(super) fn restart(&mut self, m: usize) {
        if self.nodes[m].member.engine.is_some() {
            return;
        }
        let identity = SecretKey::from_seed(&self.identities[m].seed());
        let stamp = self.profile.start();
        let net = self.net.clone();
        let config = self.engine_config.clone();
        let member = &mut self.nodes[m].member;
        // Invariant 7: everything acknowledged (in periods the engine still keeps) survived.
        let lost = member
            .restart(&net, identity, config)
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

    pub(super) fn cut(&mut self, index: usize, on: bool) {
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

    pub(super) fn heal(&mut self) {
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

    pub(super) fn start_dkg(&mut self, ceremony: u32) {
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
}
