//! Wall-clock measurement for the performance report. This is the only module that reads a
//! clock, and nothing it measures feeds back into the simulation: a profiled run makes the same
//! decisions, in the same order, as an unprofiled one.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use frost_ed25519 as frost;
use rand_core::SeedableRng;
use serde::Serialize;

/// A started measurement (empty when profiling is off).
pub struct Stamp(Option<Instant>);

/// Accumulates engine time per input kind.
pub struct Profiler {
    enabled: bool,
    by_kind: BTreeMap<&'static str, (u64, Duration)>,
    began: Option<Instant>,
}

/// FROST operations the engines performed (counted from their outputs).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct FrostCounts {
    /// `round1::commit` calls (one per accept and one per share).
    pub commits: u64,
    /// `round2::sign` calls (one per released share).
    pub signs: u64,
    /// `aggregate_custom` calls (completed sessions).
    pub aggregates: u64,
}

/// Engine time for one input kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindTime {
    /// Input kind (`proposal`, `timeout`, `submit`, `restore`, ...).
    pub kind: String,
    /// Calls.
    pub calls: u64,
    /// Total seconds.
    pub seconds: f64,
}

/// Mean cost of each FROST operation, timed on its own with the run's n and t.
#[derive(Clone, Debug, Serialize)]
pub struct FrostBaseline {
    /// Mean µs of one commit.
    pub commit_us: f64,
    /// Mean µs of one sign with t commitments in the package.
    pub sign_us: f64,
    /// Mean µs of one aggregate of t shares (with cheater detection).
    pub aggregate_us: f64,
    /// Operations timed per kind.
    pub sample: u64,
}

/// Where the wall time of a run went.
#[derive(Clone, Debug, Serialize)]
pub struct ProfileReport {
    /// Whole run, including setup (keys, roster) and the event loop.
    pub wall_seconds: f64,
    /// Setup: roster, keys (dealer), scheduling.
    pub setup_seconds: f64,
    /// Time inside engine calls (including the FROST and signature work they do).
    pub engine_seconds: f64,
    /// FROST time: the counted operations at the baseline's per-operation cost.
    pub frost_seconds: f64,
    /// Engine time that is not FROST.
    pub engine_other_seconds: f64,
    /// Event loop time outside the engines: queue, network model, gossip, checks, metrics.
    pub simulator_seconds: f64,
    /// Simulator share of the event loop.
    pub simulator_share: f64,
    /// FROST operations counted.
    pub frost_counts: FrostCounts,
    /// The per-operation baseline.
    pub frost_baseline: Option<FrostBaseline>,
    /// Engine time by input kind, largest first.
    pub by_kind: Vec<KindTime>,
    /// Peak resident memory of the process, KiB (Linux `VmHWM`).
    pub peak_rss_kib: Option<u64>,
}

impl Profiler {
    /// A profiler; when `enabled` is false it never reads the clock.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            by_kind: BTreeMap::new(),
            began: enabled.then(Instant::now),
        }
    }

    /// Whether it measures.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Starts a measurement.
    pub fn start(&self) -> Stamp {
        Stamp(self.enabled.then(Instant::now))
    }

    /// Ends a measurement of an engine call of `kind`.
    pub fn stop(&mut self, stamp: Stamp, kind: &'static str) {
        if let Some(t) = stamp.0 {
            let e = self.by_kind.entry(kind).or_insert((0, Duration::ZERO));
            e.0 += 1;
            e.1 += t.elapsed();
        }
    }

    /// Seconds since the profiler was created.
    pub fn elapsed(&self) -> f64 {
        self.began.map_or(0.0, |b| b.elapsed().as_secs_f64())
    }

    /// The report, given the wall time of the run (measured before any baseline), setup time,
    /// FROST counts and an optional baseline.
    pub fn report(
        &self,
        wall: f64,
        setup_seconds: f64,
        counts: FrostCounts,
        baseline: Option<FrostBaseline>,
    ) -> ProfileReport {
        let engine: f64 = self.by_kind.values().map(|(_, d)| d.as_secs_f64()).sum();
        let frost_seconds = baseline.as_ref().map_or(0.0, |b| {
            (counts.commits as f64 * b.commit_us
                + counts.signs as f64 * b.sign_us
                + counts.aggregates as f64 * b.aggregate_us)
                / 1e6
        });
        let loop_seconds = (wall - setup_seconds).max(0.0);
        let simulator = (loop_seconds - engine).max(0.0);
        let mut by_kind: Vec<KindTime> = self
            .by_kind
            .iter()
            .map(|(k, (c, d))| KindTime {
                kind: (*k).to_string(),
                calls: *c,
                seconds: d.as_secs_f64(),
            })
            .collect();
        by_kind.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        ProfileReport {
            wall_seconds: wall,
            setup_seconds,
            engine_seconds: engine,
            frost_seconds,
            engine_other_seconds: (engine - frost_seconds).max(0.0),
            simulator_seconds: simulator,
            simulator_share: if loop_seconds > 0.0 {
                simulator / loop_seconds
            } else {
                0.0
            },
            frost_counts: counts,
            frost_baseline: baseline,
            by_kind,
            peak_rss_kib: peak_rss_kib(),
        }
    }
}

impl ProfileReport {
    /// Adds another world's measurements of the same run (a later roster epoch).
    pub fn absorb(&mut self, other: &ProfileReport) {
        self.setup_seconds += other.setup_seconds;
        self.engine_seconds += other.engine_seconds;
        self.frost_seconds += other.frost_seconds;
        self.engine_other_seconds += other.engine_other_seconds;
        self.simulator_seconds += other.simulator_seconds;
        let loop_seconds = self.engine_seconds + self.simulator_seconds;
        self.simulator_share = if loop_seconds > 0.0 {
            self.simulator_seconds / loop_seconds
        } else {
            0.0
        };
        self.frost_counts.commits += other.frost_counts.commits;
        self.frost_counts.signs += other.frost_counts.signs;
        self.frost_counts.aggregates += other.frost_counts.aggregates;
        for k in &other.by_kind {
            match self.by_kind.iter_mut().find(|x| x.kind == k.kind) {
                Some(x) => {
                    x.calls += k.calls;
                    x.seconds += k.seconds;
                }
                None => self.by_kind.push(k.clone()),
            }
        }
        self.by_kind.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        self.peak_rss_kib = self.peak_rss_kib.max(other.peak_rss_kib);
    }
}

/// Peak resident set size of this process in KiB, from `/proc/self/status` (Linux).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Times `sample` FROST commits, signs (with `t` commitments in the package) and aggregates for
/// an `n`-member, threshold-`t` group with dealer keys: the raw cost of the operations the
/// engines performed, without any engine around them.
///
/// # Errors
/// When frost refuses the parameters or an operation fails.
pub fn frost_baseline(n: u16, t: u16, sample: u64) -> Result<FrostBaseline, frost::Error> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5eed);
    let (shares, public) =
        frost::keys::generate_with_dealer(n, t, frost::keys::IdentifierList::Default, &mut rng)?;
    let keys: Vec<frost::keys::KeyPackage> = shares
        .into_values()
        .take(usize::from(t))
        .map(frost::keys::KeyPackage::try_from)
        .collect::<Result<_, _>>()?;
    let sample = sample.max(1);
    let message = vec![0x42u8; 160];

    let began = Instant::now();
    let mut last = None;
    for _ in 0..sample {
        last = Some(frost::round1::commit(keys[0].signing_share(), &mut rng));
    }
    let commit_us = began.elapsed().as_secs_f64() * 1e6 / sample as f64;
    drop(last);

    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in &keys {
        let (nn, c) = frost::round1::commit(k.signing_share(), &mut rng);
        nonces.insert(*k.identifier(), nn);
        commitments.insert(*k.identifier(), c);
    }
    let package = frost::SigningPackage::new(commitments, &message);
    let mut shares = BTreeMap::new();
    let mut sign_time = Duration::ZERO;
    let mut signed = 0u64;
    let mut i = 0usize;
    while signed < sample {
        let k = &keys[i % keys.len()];
        let began = Instant::now();
        let share = frost::round2::sign(&package, &nonces[k.identifier()], k)?;
        sign_time += began.elapsed();
        shares.insert(*k.identifier(), share);
        signed += 1;
        i += 1;
    }
    for k in keys.iter().skip(i.min(keys.len())) {
        shares.insert(
            *k.identifier(),
            frost::round2::sign(&package, &nonces[k.identifier()], k)?,
        );
    }
    let sign_us = sign_time.as_secs_f64() * 1e6 / sample as f64;

    let rounds = sample.clamp(1, 32);
    let began = Instant::now();
    for _ in 0..rounds {
        frost::aggregate_custom(
            &package,
            &shares,
            &public,
            frost::CheaterDetection::AllCheaters,
        )?;
    }
    let aggregate_us = began.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    Ok(FrostBaseline {
        commit_us,
        sign_us,
        aggregate_us,
        sample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_times_every_operation() {
        let b = frost_baseline(5, 4, 3).expect("frost works");
        assert!(b.commit_us > 0.0 && b.sign_us > 0.0 && b.aggregate_us > 0.0);
    }

    #[test]
    fn disabled_profiler_records_nothing() {
        let mut p = Profiler::new(false);
        let s = p.start();
        p.stop(s, "x");
        let r = p.report(0.0, 0.0, FrostCounts::default(), None);
        assert!(r.by_kind.is_empty());
        assert_eq!(r.engine_seconds, 0.0);
    }
}
