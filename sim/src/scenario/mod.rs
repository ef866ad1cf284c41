//! Scenario files: what network to build, how its links behave, which faults and adversaries to
//! inject, and what the run must show.
//!
//! A scenario is a TOML file (see `docs/simulator.md` for every key). `[[sweep]]` rows are partial
//! scenarios deep-merged over the base, one run set per row; a row's `label` names it in the
//! output. Durations are integers (milliseconds) or strings with a unit: `"250ms"`, `"3s"`,
//! `"2m"`, `"1h"`, `"7d"`, `"1w"`; offsets may be negative (`"-10ms"`).
//!
//! Errors are typed ([`ScenarioError`]) and carry the line of the offending key or table.
//!
//! The types of a scenario live by concern: `network` (roster, calendar, links, gossip, clocks,
//! key ceremony), `succession` (membership changes), `labs` (conduct and workload), `faults` (Byzantine members, crashes,
//! partitions, the heal), `expect` (what a run must show); `duration` parses durations,
//! `file` loads a file and its sweep rows, `validate` checks a scenario's meaning and `lines`
//! finds the line of a field for error messages.

mod duration;
mod expect;
mod faults;
mod file;
mod labs;
mod lines;
mod network;
mod succession;
mod validate;

pub use duration::{Millis, Offset};
pub use expect::{DkgExpect, Expect, Limits, Quiet, VerdictExpect, ViolationKind};
pub use faults::{
    AdversarySpec, Anchor, At, CrashSpec, LivenessSpec, PartitionKind, PartitionSpec,
    RandomFaultSpec, Role,
};
pub use file::{Row, ScenarioFile};
pub use labs::{Collusion, Conduct, ConductMix, LabSpec};
pub use network::{
    ClockSpec, DkgSpec, GossipSpec, Keys, LatencyDist, LinkOverride, LinkSpec, MemberRef,
    NetworkSpec, RegionSpec, ScheduleSpec, Signing,
};
pub use succession::SuccessionSpec;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a scenario file cannot be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed or a value has the wrong type (toml's message names line and column).
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is well-typed but makes no sense (a member outside the roster, a probability of 2).
    #[error("{path}:{line}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key or table (0 when it could not be located).
        line: usize,
        /// Dotted path of the field, e.g. `adversary[1].members`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A sweep row does not produce a valid scenario.
    #[error("{path}:{line}: sweep row {row} ({label}): {message}")]
    Sweep {
        /// The file.
        path: PathBuf,
        /// 1-based line of the row.
        line: usize,
        /// Row index from 0.
        row: usize,
        /// The row's label.
        label: String,
        /// What is wrong.
        message: String,
    },
    /// `--row` names a row the file does not have.
    #[error("{path}: no sweep row {row} (the file has {rows})")]
    NoSuchRow {
        /// The file.
        path: PathBuf,
        /// Asked for.
        row: usize,
        /// Rows available.
        rows: usize,
    },
}

/// A complete, resolved scenario (one sweep row already applied).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used for output directories.
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// First master seed.
    #[serde(default = "one")]
    pub seed: u64,
    /// How many consecutive seeds to run by default.
    #[serde(default = "one")]
    pub seeds: u64,
    /// Roster shape.
    pub network: NetworkSpec,
    /// Calendar and protocol timeouts (bound into the roster).
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// Link model.
    #[serde(default)]
    pub links: LinkSpec,
    /// Gossip overlay.
    #[serde(default)]
    pub gossip: GossipSpec,
    /// Members' clocks.
    #[serde(default)]
    pub clock: ClockSpec,
    /// Labs' conduct and the submission workload.
    #[serde(default)]
    pub labs: LabSpec,
    /// Byzantine members.
    #[serde(default)]
    pub adversary: Vec<AdversarySpec>,
    /// Scheduled crashes (and restarts).
    #[serde(default)]
    pub crash: Vec<CrashSpec>,
    /// Scheduled partitions.
    #[serde(default)]
    pub partition: Vec<PartitionSpec>,
    /// Random crashes and partitions during the fault phase.
    #[serde(default)]
    pub random_faults: RandomFaultSpec,
    /// Key ceremony (when `network.keys = "dkg"`).
    #[serde(default)]
    pub dkg: DkgSpec,
    /// Membership changes after the genesis roster, in order (one epoch each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub succession: Vec<SuccessionSpec>,
    /// The healed phase and its budget.
    #[serde(default)]
    pub liveness: LivenessSpec,
    /// What the run must show.
    #[serde(default)]
    pub expect: Expect,
    /// Safety limits of the simulator itself.
    #[serde(default)]
    pub limits: Limits,
    /// Sweep rows (only in files; empty once a row is applied).
    #[serde(default, skip_serializing)]
    pub sweep: Vec<toml::Spanned<toml::Table>>,
}

fn one() -> u64 {
    1
}
