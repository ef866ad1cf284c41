//! Runs rows × seeds of a scenario file, judges each run against the scenario's expectations,
//! and (optionally) checks that a seed replays to the same trace hash.

use std::path::Path;

use serde::Serialize;

use crate::scenario::{DkgExpect, Row, Scenario, ViolationKind};
use crate::world::{Epochs, Options, Progress, RunResult, SetupError, Simulation};

/// One judged run.
#[derive(Clone, Debug, Serialize)]
pub struct SeedOutcome {
    /// Row index.
    pub row: usize,
    /// Row label.
    pub label: String,
    /// What the run measured.
    pub result: RunResult,
    /// Expectations that did not hold (empty: passed).
    pub failures: Vec<String>,
    /// Trace hash of the second run, when determinism was checked.
    pub replay_hash: Option<String>,
}

impl SeedOutcome {
    /// Whether the run met every expectation (and replayed identically, when checked).
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs one seed of one scenario.
///
/// # Errors
/// When the scenario cannot be set up.
pub fn run_seed(
    scenario: &Scenario,
    opts: Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunResult, SetupError> {
    if scenario.succession.is_empty() {
        Ok(Simulation::new(scenario, opts)?.run(progress))
    } else {
        Ok(Epochs::new(scenario, opts)?.run(progress))
    }
}

/// Runs one seed of a row, judges it, and optionally replays it for determinism.
///
/// # Errors
/// When the scenario cannot be set up.
pub fn run_row_seed(
    row: &Row,
    opts: Options,
    check_determinism: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<SeedOutcome, SetupError> {
    let result = run_seed(&row.scenario, opts.clone(), progress)?;
    let mut failures = judge(&row.scenario, &result);
    let replay_hash = if check_determinism {
        let again = run_seed(
            &row.scenario,
            Options {
                profile: false,
                frost_sample: 0,
                ..opts
            },
            &mut |_| {},
        )?;
        if again.trace_hash != result.trace_hash {
            failures.push(format!(
                "determinism: the same seed gave trace hashes {} and {}",
                result.trace_hash, again.trace_hash
            ));
        }
        Some(again.trace_hash)
    } else {
        None
    };
    Ok(SeedOutcome {
        row: row.index,
        label: row.label.clone(),
        result,
        failures,
        replay_hash,
    })
}

/// The command that replays one run.
pub fn replay_command(path: &Path, row: Option<usize>, seed: u64) -> String {
    let mut cmd = format!("accord-sim run {} --seed {seed}", path.display());
    if let Some(r) = row {
        cmd.push_str(&format!(" --row {r}"));
    }
    cmd
}

/// The expectations of `scenario` that `r` does not meet.
pub fn judge(scenario: &Scenario, r: &RunResult) -> Vec<String> {
    let e = &scenario.expect;
    let mut out = Vec::new();
    let allowed =
        |k: ViolationKind| e.violation == Some(k) || (k == ViolationKind::Suppression && !e.live);
    for v in &r.violations {
        if !allowed(v.kind) {
            out.push(format!(
                "{} at {:.3} ms: {}",
                v.kind.describe(),
                v.at_us as f64 / 1e3,
                v.detail
            ));
        }
    }
    if let Some(k) = e.violation
        && !r.violations.iter().any(|v| v.kind == k)
    {
        out.push(format!(
            "expected {} to be detected, but the run did not detect it",
            k.describe()
        ));
    }
    let stopped_by_violation = r
        .violations
        .iter()
        .any(|v| v.kind != ViolationKind::Suppression);
    if e.live && !r.live && !stopped_by_violation && e.violation.is_none() {
        let reported = r
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Suppression);
        if !reported {
            out.push("liveness: not every unit was co-signed before the run ended".into());
        }
    }
    if stopped_by_violation {
        // The run stopped at a (possibly expected) violation: the remaining expectations were not
        // given the chance to hold.
        return out;
    }
    let named: std::collections::BTreeSet<u16> = r
        .accusations
        .iter()
        .filter(|a| a.epoch == 0)
        .map(|a| a.culprit)
        .collect();
    for c in &e.culprits {
        if !named.contains(c) {
            out.push(format!(
                "expected member#{c} to be named as a culprit; named: {named:?}"
            ));
        }
    }
    for v in &e.verdicts {
        let got = r
            .metrics
            .slots
            .iter()
            .find(|s| s.lab == v.lab && s.period == v.period)
            .and_then(|s| s.verdict.clone());
        if got.as_deref() != Some(v.verdict.as_str()) {
            out.push(format!(
                "expected verdict {} for lab {} period {}, got {:?}",
                v.verdict, v.lab, v.period, got
            ));
        }
    }
    if e.verdicts_match_conduct {
        for s in &r.metrics.slots {
            if let Some(v) = &s.verdict
                && v != s.conduct.expected_verdict()
            {
                out.push(format!(
                    "lab {} period {} ({:?}) got verdict {v}, expected {}",
                    s.lab,
                    s.period,
                    s.conduct,
                    s.conduct.expected_verdict()
                ));
            }
        }
    }
    if let Some(bound) = e.max_time_to_verdict {
        let worst = r
            .metrics
            .slots
            .iter()
            .filter_map(|s| s.time_to_all_ms.map(|t| (t, s)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((t, s)) = worst
            && t > bound.0 as f64
        {
            out.push(format!(
                "lab {} period {} was co-signed at every honest member {t:.1} ms after its close, over the bound of {} ms",
                s.lab, s.period, bound.0
            ));
        }
    }
    if e.late_refused {
        let m = &r.metrics;
        let certain = scenario.labs.late >= 1.0 || !scenario.labs.collude.is_empty();
        if m.late_attempts == 0 && certain {
            out.push("expected late submissions, none were attempted".into());
        } else if m.late_accepted > 0 {
            out.push(format!(
                "{} of {} late submissions were accepted by honest members",
                m.late_accepted, m.late_attempts
            ));
        }
    }
    for q in &e.quiet {
        let limit = at_ms(scenario, &q.until);
        let close = at_ms(
            scenario,
            &crate::scenario::At {
                period: q.period,
                anchor: crate::scenario::Anchor::Close,
                offset: crate::scenario::Offset(0),
            },
        );
        let first = r
            .metrics
            .slots
            .iter()
            .filter(|s| s.period == q.period)
            .filter_map(|s| s.time_to_verdict_ms)
            .map(|t| close + t)
            .fold(f64::INFINITY, f64::min);
        if first < limit {
            out.push(format!(
                "period {} was co-signed at {first:.1} ms, before {limit:.1} ms (ms since the simulation start)",
                q.period
            ));
        }
    }
    if let Some(want) = e.dkg {
        match &r.metrics.dkg {
            None => out.push("expected a key ceremony, none ran".into()),
            Some(d) => {
                let all = d.complete_after_ms.is_some();
                let ok = match want {
                    DkgExpect::Complete => all && d.aborted_ceremonies.is_empty(),
                    DkgExpect::AbortThenComplete => all && !d.aborted_ceremonies.is_empty(),
                    DkgExpect::Abort => d.completed == 0 && !d.aborted_ceremonies.is_empty(),
                };
                if !ok {
                    out.push(format!(
                        "expected DKG outcome {want:?}; completed at {} honest members, aborted ceremonies {:?}",
                        d.completed, d.aborted_ceremonies
                    ));
                }
                for c in &e.dkg_culprits {
                    if !d.culprits.contains(c) {
                        out.push(format!(
                            "expected the ceremony to name member#{c}; it named {:?}",
                            d.culprits
                        ));
                    }
                }
            }
        }
    }
    out
}

/// A calendar point in ms since the simulation start.
fn at_ms(s: &Scenario, at: &crate::scenario::At) -> f64 {
    use crate::scenario::{Anchor, Keys};
    let c = &s.schedule;
    let lead = match s.network.keys {
        Keys::Dkg => s.dkg.lead.0,
        Keys::Dealer => 1_000,
    };
    let start = c.genesis.0.saturating_sub(lead) as f64;
    let p = at.period as f64;
    let period_start = c.genesis.0 as f64 + p * c.period.0 as f64;
    let base = match at.anchor {
        Anchor::SimStart => start,
        Anchor::Start => period_start,
        Anchor::End => period_start + c.period.0 as f64,
        Anchor::Close => period_start + (c.period.0 + c.grace.0) as f64,
        Anchor::Attempt => period_start + (c.period.0 + c.grace.0 + c.observation_wait.0) as f64,
    };
    (base + at.offset.0 as f64 - start).max(0.0)
}
