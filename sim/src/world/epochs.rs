//! A run with membership changes (`docs/protocol.md` §22.7): one world per roster epoch, all in
//! one virtual time.
//!
//! Each epoch is a [`Simulation`] of its own roster (its members are nodes of their own, as in a
//! deployment, where a continuing member runs a second node for the new epoch). The driver here
//! steps whichever world has the earliest event (ties to the older epoch) and plays the
//! operators between them:
//!
//! 1. at the succession's `propose` time it starts the new epoch's world: continuing members keep
//!    their identities, clocks and regions, new ones get fresh identities; the new members run
//!    their DKG, and their engines wait for the succession (`EngineConfig::epoch_start`);
//! 2. once every honest new member holds the key, every running member of the current epoch
//!    approves the `SuccessionProposal` (the new roster with its members' signed confirmations);
//! 3. once an honest member of the current epoch holds the co-signed succession, every running
//!    new member adopts it.
//!
//! At the end the succession chain is followed from the genesis trust bundle and every statement
//! every epoch decided is verified on it (`Chain::verify_statement`, which also checks that the
//! epoch owns the statement's period). Each world checks the invariants within its epoch, and
//! that its members co-sign no period outside the epoch's own ([`ViolationKind::EpochOverlap`]).

use accord_protocol::crypto::SecretKey;
use accord_protocol::roster::{self, Network, Period, limits::Limits};
use accord_protocol::succession::{Chain, SignedSuccession, Succession, SuccessionProposal};
use accord_protocol::verify::TrustBundle;
use accord_testkit::child_rng;
use rand_core::RngCore;
use sha2::{Digest as _, Sha256};

use super::setup::{EpochSetup, random_skew};
use super::{EpochMetric, Options, Progress, RunMetrics, RunResult, SetupError, Simulation};
use crate::checker::Violation;
use crate::net::Micros;
use crate::profile::Profiler;
use crate::scenario::{Anchor, At, Keys, MemberRef, Millis, Offset, Scenario, ViolationKind};

/// When the operators acted on one epoch's succession (virtual time).
#[derive(Clone, Copy, Default)]
struct Marks {
    approved: Option<Micros>,
    co_signed: Option<Micros>,
    adopted: Option<Micros>,
}

/// A run through the scenario's epochs.
pub struct Epochs {
    base: Scenario,
    opts: Options,
    worlds: Vec<Simulation>,
    marks: Vec<Marks>,
    links: Vec<SignedSuccession>,
    violations: Vec<Violation>,
    wall: Profiler,
}

impl Epochs {
    /// The genesis epoch of `scenario`; the others start at their `propose` times.
    ///
    /// # Errors
    /// When the genesis roster or dealer refuse the scenario's parameters.
    pub fn new(scenario: &Scenario, opts: Options) -> Result<Self, SetupError> {
        let wall = Profiler::new(opts.profile);
        let genesis = Simulation::new(scenario, opts.clone())?;
        Ok(Self {
            base: scenario.clone(),
            opts,
            worlds: vec![genesis],
            marks: vec![Marks::default()],
            links: Vec::new(),
            violations: Vec::new(),
            wall,
        })
    }

    /// When epoch `k` (≥ 1) starts: its `propose` point, by default the start of period P − 2.
    fn opens_at(&self, k: usize) -> Micros {
        let spec = &self.base.succession[k - 1];
        let at = spec.propose.unwrap_or(At {
            period: spec.first_period.saturating_sub(2),
            anchor: Anchor::Start,
            offset: Offset(0),
        });
        self.worlds[0].at(&at)
    }

    fn violation(&mut self, at: Micros, detail: String) {
        self.violations.push(Violation {
            kind: ViolationKind::Succession,
            at_us: at.saturating_sub(self.worlds[0].start),
            detail,
        });
    }

    /// Runs every epoch to its end; calls `progress` now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(Progress)) -> RunResult {
        let schedule = self.worlds[0].net.schedule().clone();
        let last = self.base.network.periods.saturating_sub(1);
        let span = (ms_of(schedule.close(Period(last)).as_millis())
            .saturating_sub(self.worlds[0].start))
        .max(1) as f64;
        let mut events = 0u64;
        loop {
            if self.worlds.iter().any(|w| !w.checker.violations.is_empty())
                || !self.violations.is_empty()
            {
                break;
            }
            let next = (0..self.worlds.len())
                .filter_map(|k| self.worlds[k].next_at().map(|t| (t, k)))
                .min();
            let opening = (self.worlds.len() <= self.base.succession.len())
                .then(|| self.opens_at(self.worlds.len()));
            match (next, opening) {
                (n, Some(at)) if n.is_none_or(|(t, _)| at <= t) => {
                    if let Err(e) = self.open(at) {
                        self.violation(at, format!("epoch {}: {e}", self.worlds.len()));
                    }
                }
                (Some((_, k)), _) => {
                    self.worlds[k].step();
                    self.after_step(k);
                    if self.worlds[k].next_at().is_none() {
                        release(&mut self.worlds[k]);
                    }
                    events += 1;
                    if events.is_multiple_of(65_536) {
                        let now = self.worlds[k].now - self.worlds[0].start;
                        progress(Progress {
                            fraction: (now as f64 / span).min(1.0),
                            events,
                        });
                    }
                }
                (None, _) => break,
            }
        }
        progress(Progress {
            fraction: 1.0,
            events,
        });
        self.finish()
    }

    /// Starts the world of the next epoch at `at`.
    fn open(&mut self, at: Micros) -> Result<(), SetupError> {
        let k = self.worlds.len();
        let spec = self.base.succession[k - 1].clone();
        let prev = &self.worlds[k - 1];
        let seed = child_rng(self.opts.seed, "epoch", k as u64, 0).next_u64();
        let mut rng = child_rng(seed, "accession", 0, 0);
        let mut roster = prev.net.roster().clone();
        let mut identities = Vec::new();
        let mut skews = Vec::new();
        let mut regions = Vec::new();
        roster.members.clear();
        for (i, m) in prev.net.roster().members.iter().enumerate() {
            if spec.leave.contains(&(i as u16)) {
                continue;
            }
            roster.members.push(m.clone());
            identities.push(SecretKey::from_seed(&prev.identities[i].seed()));
            skews.push(prev.nodes[i].skew_ms);
            regions.push(prev.links.region_of[i]);
        }
        let region_count = prev.links.region_names.len().max(1);
        for j in 0..spec.join {
            let key = SecretKey::generate(&mut rng);
            roster.members.push(roster::Member {
                name: format!("accession-{k}-{j}"),
                peer_id: format!("peer-{}", &key.public().to_hex()[..16]),
                key: key.public(),
                addresses: Vec::new(),
            });
            identities.push(key);
            skews.push(random_skew(&self.base, &mut rng));
            regions.push(j % region_count);
        }
        let n = roster.members.len();
        roster.name = format!("{}-epoch-{k}", self.base.name);
        roster.threshold = spec
            .threshold
            .unwrap_or_else(|| roster::default_threshold(n));
        roster.max_reports_per_inspector = match self.base.network.reports_per_inspector {
            Some(r) => r,
            None => Limits::fitting_reports(
                n,
                usize::from(roster.threshold),
                roster.labs.len(),
                roster.signing_mode,
                4,
            )
            .and_then(|r| u16::try_from(r).ok())
            .unwrap_or(0),
        };
        let net = Network::new(roster)?;
        let lab_keys = prev
            .lab_keys
            .iter()
            .map(|k| SecretKey::from_seed(&k.seed()))
            .collect();
        let end = self
            .base
            .succession
            .get(k)
            .map_or(self.base.network.periods, |s| s.first_period);
        // The new epoch's scenario: its roster and Byzantine members, a DKG at once, and the
        // genesis epoch's calendar, links, labs and liveness budget. Scheduled and random faults
        // are the genesis epoch's (their member indices name its roster).
        let mut sc = self.base.clone();
        sc.network.members = n;
        sc.network.threshold = Some(net.t() as u16);
        sc.network.keys = Keys::Dkg;
        sc.dkg.ceremonies = vec![Millis(0)];
        sc.adversary = spec.adversary.clone();
        sc.crash.clear();
        sc.partition.clear();
        sc.random_faults = Default::default();
        sc.clock.skews.clear();
        sc.liveness.heal = None;
        sc.labs.copies = sc.labs.copies.min(n);
        sc.links.overrides.retain(|o| {
            !o.from
                .iter()
                .chain(&o.to)
                .any(|r| matches!(r, MemberRef::Index(_)))
        });
        if let Some(r) = sc.links.regions.as_mut() {
            r.assign = regions;
            r.counts.clear();
        }
        sc.succession.clear();
        let world = Simulation::build(
            sc,
            Options {
                seed,
                ..self.opts.clone()
            },
            EpochSetup {
                index: k as u16,
                seed,
                net,
                identities,
                lab_keys,
                keys: vec![None; n],
                skews,
                periods: spec.first_period..end,
                start: at,
            },
        )?;
        self.worlds[k - 1].hold = true;
        self.worlds.push(world);
        self.marks.push(Marks::default());
        Ok(())
    }

    /// Plays the operators after an event of epoch `k`.
    fn after_step(&mut self, k: usize) {
        // Epoch k − 1 can approve once it decides periods itself (the genesis, or adopted).
        let deciding = k == 1 || (k > 1 && self.marks[k - 1].adopted.is_some());
        if deciding && self.marks[k].approved.is_none() && self.worlds[k].dkg_done_at.is_some() {
            self.approve(k);
        }
        if k + 1 < self.worlds.len()
            && self.marks[k + 1].co_signed.is_none()
            && self.worlds[k].handed_over.is_some()
        {
            self.adopt(k + 1);
        }
    }

    /// Every running member of epoch `k − 1` approves the succession to epoch `k`.
    fn approve(&mut self, k: usize) {
        let (before, after) = self.worlds.split_at_mut(k);
        let (prev, next) = (&mut before[k - 1], &mut after[0]);
        let now = next.now;
        self.marks[k].approved = Some(now);
        let holder = (0..next.nodes.len())
            .filter(|i| next.honest[*i])
            .filter_map(|i| next.nodes[i].member.engine.as_ref())
            .find_map(|e| Some((e.group_key()?, e.key_confirmations()?.to_vec())));
        let Some((group_key, confirmations)) = holder else {
            self.violation(
                now,
                format!("epoch {k}: no honest member holds the new key"),
            );
            return;
        };
        let proposal = SuccessionProposal {
            succession: Succession::new(prev.net.id(), Period(next.first), &next.net, group_key),
            roster: next.net.roster().clone(),
            confirmations,
        };
        prev.now = prev.now.max(now);
        let mut refused = Vec::new();
        for i in 0..prev.nodes.len() {
            let local = prev.local(i);
            let node = &mut prev.nodes[i];
            let Some(engine) = node.member.engine.as_mut() else {
                continue;
            };
            if let Err(e) = engine.approve_succession(local, proposal.clone(), &mut node.member.rng)
                && prev.honest[i]
            {
                refused.push(format!("member#{i} of epoch {}: {e}", k - 1));
            }
            prev.drain(i);
            prev.schedule_timer(i);
        }
        if !refused.is_empty() {
            self.violation(now, format!("approval refused: {}", refused.join("; ")));
        }
    }

    /// Every running member of epoch `k` adopts the succession epoch `k − 1` co-signed.
    fn adopt(&mut self, k: usize) {
        let (before, after) = self.worlds.split_at_mut(k);
        let (prev, next) = (&mut before[k - 1], &mut after[0]);
        let now = prev.now;
        let Some(signed) = prev.handed_over.clone() else {
            return;
        };
        self.marks[k].co_signed = Some(now);
        let Some(key) = prev.checker.group_key() else {
            self.violation(now, format!("epoch {}: no group key", k - 1));
            return;
        };
        let bundle = TrustBundle::new(&prev.net, key);
        next.now = next.now.max(now);
        let mut refused = Vec::new();
        for i in 0..next.nodes.len() {
            let local = next.local(i);
            let Some(engine) = next.nodes[i].member.engine.as_mut() else {
                continue;
            };
            if let Err(e) = engine.adopt_succession(local, (*signed).clone(), &bundle)
                && next.honest[i]
            {
                refused.push(format!("member#{i} of epoch {k}: {e}"));
            }
            next.drain(i);
            next.schedule_timer(i);
        }
        self.marks[k].adopted = Some(now);
        prev.hold = false;
        self.links.push((*signed).clone());
        if !refused.is_empty() {
            self.violation(now, format!("adoption refused: {}", refused.join("; ")));
        }
    }

    /// Follows the chain from the genesis bundle and verifies every decided statement on it;
    /// returns how many statements of each epoch verified.
    fn check_chain(&mut self) -> Vec<usize> {
        let mut verified = vec![0; self.worlds.len()];
        let end = self.worlds.iter().map(|w| w.now).max().unwrap_or_default();
        let Some(key) = self.worlds[0].checker.group_key() else {
            return verified;
        };
        let chain = match Chain::follow(TrustBundle::new(&self.worlds[0].net, key), &self.links) {
            Ok(c) => c,
            Err(e) => {
                self.violation(end, format!("the succession chain does not verify: {e}"));
                return verified;
            }
        };
        let mut failures = Vec::new();
        for (k, w) in self.worlds.iter().enumerate() {
            if chain.epochs().get(k).map(|e| e.first_period) != Some(Period(w.first)) {
                failures.push(format!(
                    "epoch {k} is not on the chain from period {}",
                    w.first
                ));
                continue;
            }
            let Some(engine) = (0..w.nodes.len())
                .filter(|i| w.honest[*i])
                .find_map(|i| w.nodes[i].member.engine.as_ref())
            else {
                continue;
            };
            for c in engine.decided() {
                for s in c.export(w.net.id()) {
                    match chain.verify_statement(&s) {
                        Ok(_) => verified[k] += 1,
                        Err(e) => failures.push(format!(
                            "epoch {k}: a statement for {:?} does not verify on the chain: {e}",
                            s.statement.slot
                        )),
                    }
                }
            }
        }
        if let Some(f) = failures.first() {
            let more = failures.len() - 1;
            self.violation(end, format!("{f} (and {more} more)"));
        }
        verified
    }

    fn finish(mut self) -> RunResult {
        let verified = self.check_chain();
        let end = self.worlds.iter().map(|w| w.now).max().unwrap_or_default();
        for k in 1..self.worlds.len() {
            let m = self.marks[k];
            let why = if self.worlds[k].dkg_done_at.is_none() {
                "its members' DKG did not complete"
            } else if m.approved.is_none() {
                "the previous epoch never decided, so it could not approve"
            } else if m.co_signed.is_none() {
                "the previous epoch did not co-sign the succession"
            } else {
                continue;
            };
            self.violation(end, format!("epoch {k} never took over: {why}"));
        }
        let genesis_start = self.worlds[0].start;
        let since = |t: Micros| (t.saturating_sub(genesis_start)) as f64 / 1e3;
        let mut epochs = Vec::new();
        let mut results = Vec::new();
        let worlds = std::mem::take(&mut self.worlds);
        for (k, w) in worlds.into_iter().enumerate() {
            let offset = w.start - genesis_start;
            let mut metric = EpochMetric {
                epoch: k as u16,
                members: w.net.n(),
                threshold: w.net.t(),
                byzantine: w.honest.iter().filter(|h| !**h).count(),
                first_period: w.first,
                end_period: w.end,
                network_id: w.net.id().to_hex(),
                group_key: w.checker.group_key().map(|g| g.to_hex()),
                key_at_ms: w.dkg_done_at.map(since),
                approved_at_ms: self.marks[k].approved.map(since),
                co_signed_at_ms: self.marks[k].co_signed.map(since),
                adopted_at_ms: self.marks[k].adopted.map(since),
                verified_on_chain: verified.get(k).copied().unwrap_or(0),
                ..EpochMetric::default()
            };
            let mut r = w.finish();
            metric.trace_hash = r.trace_hash.clone();
            metric.refreshes = std::mem::take(&mut r.metrics.refreshes)
                .into_iter()
                .collect();
            metric.max_time_to_all_ms = r
                .metrics
                .slots
                .iter()
                .filter_map(|s| s.time_to_all_ms)
                .max_by(f64::total_cmp);
            for v in &mut r.violations {
                v.at_us += offset;
                v.detail = format!("epoch {k}: {}", v.detail);
            }
            for a in &mut r.accusations {
                a.epoch = k as u16;
            }
            epochs.push(metric);
            results.push(r);
        }
        let mut merged = merge(results, self.opts.seed);
        merged.violations.append(&mut self.violations);
        merged.live &= epochs.iter().skip(1).all(|e| e.adopted_at_ms.is_some())
            && merged.violations.is_empty();
        merged.metrics.epochs = epochs;
        if let Some(p) = merged.profile.as_mut() {
            p.wall_seconds = self.wall.elapsed();
        }
        merged
    }
}

/// Frees a world whose run is over: it keeps one honest member's engine (the chain check reads
/// what it decided) and drops the other engines and every member's stored records, which a
/// 193-member epoch holds gigabytes of and nothing reads again.
fn release(w: &mut Simulation) {
    let keep = (0..w.nodes.len()).find(|i| w.honest[*i] && w.nodes[*i].member.engine.is_some());
    for (i, node) in w.nodes.iter_mut().enumerate() {
        node.member.records = Vec::new();
        if Some(i) != keep {
            node.member.engine = None;
        }
    }
    w.twins.clear();
}

fn ms_of(millis: u64) -> Micros {
    millis.saturating_mul(1000)
}

/// One result from the epochs' results, in epoch order.
fn merge(results: Vec<RunResult>, seed: u64) -> RunResult {
    let mut hash = Sha256::new();
    let mut out = RunResult {
        seed,
        trace_hash: String::new(),
        violations: Vec::new(),
        last_events: Vec::new(),
        live: true,
        metrics: RunMetrics::default(),
        accusations: Vec::new(),
        profile: None,
        first_statement_ms: None,
    };
    let mut labs_periods = 0.0;
    let mut decided = 0.0;
    for (k, r) in results.into_iter().enumerate() {
        hash.update(r.trace_hash.as_bytes());
        if k == 0 {
            // The genesis ceremony; later epochs' are in `metrics.epochs`.
            out.metrics.dkg = r.metrics.dkg.clone();
        }
        if out.violations.is_empty() {
            out.last_events = r.last_events;
        }
        out.violations.extend(r.violations);
        out.live &= r.live;
        out.accusations.extend(r.accusations);
        out.first_statement_ms = out.first_statement_ms.or(r.first_statement_ms);
        let m = r.metrics;
        let o = &mut out.metrics;
        labs_periods += m.slots.len() as f64;
        decided += m.share_decided * m.slots.len() as f64;
        o.slots.extend(m.slots);
        o.members.extend(m.members);
        o.culprits.extend(m.culprits);
        o.events += m.events;
        o.transmissions += m.transmissions;
        o.dropped_cut += m.dropped_cut;
        o.dropped_lost += m.dropped_lost;
        o.dropped_down += m.dropped_down;
        o.gossip_duplicates += m.gossip_duplicates;
        o.injected_duplicates += m.injected_duplicates;
        o.oversize += m.oversize;
        o.acknowledged += m.acknowledged;
        o.refused += m.refused;
        o.late_attempts += m.late_attempts;
        o.late_refused += m.late_refused;
        o.late_accepted += m.late_accepted;
        for (k, v) in m.refusals {
            *o.refusals.entry(k).or_default() += v;
        }
        for (k, v) in m.adversary_actions {
            *o.adversary_actions.entry(k).or_default() += v;
        }
        o.frost.commits += m.frost.commits;
        o.frost.signs += m.frost.signs;
        o.frost.aggregates += m.frost.aggregates;
        o.virtual_seconds = o.virtual_seconds.max(m.virtual_seconds);
        match (out.profile.as_mut(), r.profile) {
            (Some(p), Some(q)) => p.absorb(&q),
            (None, q) => out.profile = q,
            _ => {}
        }
    }
    out.metrics.share_decided = if labs_periods > 0.0 {
        decided / labs_periods
    } else {
        0.0
    };
    out.trace_hash = hex::encode(&hash.finalize()[..16]);
    out
}
