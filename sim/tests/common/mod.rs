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
