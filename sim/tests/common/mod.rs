//! Helpers shared by the simulator's integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use accord_sim::runner::{SeedOutcome, run_row_seed};
use accord_sim::scenario::{Row, ScenarioFile};
use accord_sim::world::Options;

/// A shipped scenario file.
pub(crate) fn scenario(name: &str) -> ScenarioFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs and judges one seed of a row.
pub(crate) fn run(row: &Row, seed: u64) -> SeedOutcome {
    run_row_seed(row, Options::new(seed), false, &mut |_| {}).expect("scenario sets up")
}

/// A readable account of a failed run.
pub(crate) fn explain(o: &SeedOutcome) -> String {
    format!(
        "row {} ({}) seed {}: {:?}\nlast events:\n{}",
        o.row,
        o.label,
        o.result.seed,
        o.failures,
        o.result.last_events.join("\n")
    )
}

/// The shipped scenarios small enough to run on every change (one seed per row in
/// `scenarios.rs`, pinned trace hashes in `golden_traces.rs`).
pub(crate) const SMALL: &[&str] = &[
    "quick",
    "regional-partition",
    "coalition-attack",
    "lossy-network",
    "faults-04-concurrent-proposals",
    "faults-06-garbage-shares",
    "faults-09-split-view",
    "faults-12-dkg-equivocation",
    "faults-13-dkg-offline",
    "faults-14-dkg-crash-after-key",
    "faults-26-crashed-members",
    "faults-27-partition-heal",
    "faults-28-loss-jitter",
    "faults-29-clock-skew",
    "faults-30-labs",
    "beyond-f-late-injection",
    "beyond-f-silent",
    "key-refresh",
    "membership-change",
];

/// Scenarios another test file runs (many seeds each).
pub(crate) const ELSEWHERE: &[&str] = &[
    // generative_adversary.rs: a few hundred seeds per row.
    "byzantine-generative",
];
