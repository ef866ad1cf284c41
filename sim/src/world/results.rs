//! What a run measured and how it ended: the public metric and result types, and
//! `Simulation::finish`, which folds the run's bookkeeping into a [`RunResult`].

use std::collections::BTreeMap;

use accord_protocol::roster::{LabIndex, Period, SigningMode};
use accord_protocol::statement::Unit;
use serde::Serialize;

use crate::checker::{Accusation, Violation};
use crate::net::Micros;
use crate::profile::{FrostCounts, ProfileReport, frost_baseline};
use crate::scenario::{Conduct, Keys};

use super::{Simulation, ms};

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
    /// The epoch whose roster this index is in (0: the genesis roster).
    #[serde(skip_serializing_if = "is_zero")]
    pub epoch: u16,
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
    /// The epoch whose roster this index is in (0: the genesis roster).
    #[serde(skip_serializing_if = "is_zero")]
    pub epoch: u16,
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

fn is_zero(x: &u16) -> bool {
    *x == 0
}

/// One roster epoch of a run with membership changes (`docs/protocol.md` §22.7).
#[derive(Clone, Debug, Default, Serialize)]
pub struct EpochMetric {
    /// 0 for the genesis roster.
    pub epoch: u16,
    /// Members (n).
    pub members: usize,
    /// Threshold (t).
    pub threshold: usize,
    /// Byzantine members.
    pub byzantine: usize,
    /// The periods it decides: `first_period..end_period`.
    pub first_period: u64,
    /// First period it does not decide.
    pub end_period: u64,
    /// Its network id (hex).
    pub network_id: String,
    /// Its group key (hex), once known.
    pub group_key: Option<String>,
    /// When its members' DKG completed at every honest member (ms since the run's start).
    pub key_at_ms: Option<f64>,
    /// When the previous epoch's honest members approved its succession (ms since the run's start).
    pub approved_at_ms: Option<f64>,
    /// When an honest member of the previous epoch held the co-signed succession.
    pub co_signed_at_ms: Option<f64>,
    /// When its members adopted the succession.
    pub adopted_at_ms: Option<f64>,
    /// Longest time from a slot's close to its co-signature at every running honest member (ms).
    pub max_time_to_all_ms: Option<f64>,
    /// Share refresh ceremonies completed in this epoch.
    pub refreshes: Vec<u32>,
    /// Statements of this epoch checked on the succession chain from the genesis bundle.
    pub verified_on_chain: usize,
    /// Trace hash of this epoch's world.
    pub trace_hash: String,
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
    /// Share refresh ceremonies that completed at an honest member (in a run with membership
    /// changes: per epoch, in `epochs`).
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub refreshes: std::collections::BTreeSet<u32>,
    /// Roster epochs, when the scenario has membership changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochMetric>,
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

impl Simulation {
    pub(super) fn finish(mut self) -> RunResult {
        for m in &self.mutators {
            for (k, v) in &m.actions {
                *self
                    .metrics
                    .adversary_actions
                    .entry((*k).to_string())
                    .or_default() += v;
            }
        }
        let periods = self.end - self.first;
        let schedule = self.net.schedule().clone();
        let mut slots = Vec::new();
        let mut decided = 0usize;
        for p in self.first..self.end {
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
                epoch: self.epoch,
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
