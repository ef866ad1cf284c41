//! Scenario files: what network to build, how its links behave, which faults and adversaries to
//! inject, and what the run must show.
//!
//! A scenario is a TOML file (see `docs/simulator.md` for every key). `[[sweep]]` rows are partial
//! scenarios deep-merged over the base, one run set per row; a row's `label` names it in the
//! output. Durations are integers (milliseconds) or strings with a unit: `"250ms"`, `"3s"`,
//! `"2m"`, `"1h"`, `"7d"`, `"1w"`; offsets may be negative (`"-10ms"`).
//!
//! Errors are typed ([`ScenarioError`]) and carry the line of the offending key or table.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use accord_testkit::adversary::Behaviour;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

// ------------------------------------------------------------------------------------------------
// Durations

/// A non-negative duration in milliseconds; in files an integer (ms) or a string with a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Millis(pub u64);

/// A signed offset in milliseconds (`"-10ms"` is ten milliseconds before the anchor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Offset(pub i64);

fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use e.g. \"250ms\", \"3s\", \"7d\")"))?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "h" => 3_600e3,
        "d" => 86_400e3,
        "w" => 604_800e3,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (ms, s, m, h, d, w)"
            ));
        }
    };
    let ms = value * scale;
    if !ms.is_finite() || ms > 9.0e15 {
        return Err(format!("duration {s:?} is out of range"));
    }
    let ms = ms.round() as i64;
    Ok(if neg { -ms } else { ms })
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("milliseconds (integer) or a duration string such as \"250ms\", \"3s\", \"7d\"")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("duration out of range"))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
        parse_duration(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(DurationVisitor)?;
        u64::try_from(v)
            .map(Millis)
            .map_err(|_| serde::de::Error::custom("this duration cannot be negative"))
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor).map(Offset)
    }
}

impl Serialize for Offset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

// ------------------------------------------------------------------------------------------------
// The scenario

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

/// Roster shape.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Number of members (n).
    pub members: usize,
    /// Threshold t; default ⌊2n/3⌋ + 1.
    #[serde(default)]
    pub threshold: Option<u16>,
    /// Number of labs.
    pub labs: usize,
    /// Reporting periods with lab submissions (0: key ceremony only).
    pub periods: u64,
    /// What one group signature covers.
    #[serde(default)]
    pub signing: Signing,
    /// Where members' FROST keys come from.
    #[serde(default)]
    pub keys: Keys,
    /// Reports one inspector may file per period (the roster's `max_reports_per_inspector`);
    /// default: the largest up to 4 whose messages fit the frame limit.
    #[serde(default)]
    pub reports_per_inspector: Option<u16>,
}

/// Signing mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signing {
    /// One session per period over a Merkle tree of its statements.
    #[default]
    PerPeriod,
    /// One session per slot.
    PerSlot,
}

/// Key source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keys {
    /// A trusted dealer (tests, demos, large runs).
    #[default]
    Dealer,
    /// A DKG ceremony over the simulated network before genesis.
    Dkg,
}

/// Calendar and timeouts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSpec {
    /// Start of period 0 (ms since the epoch).
    pub genesis: Millis,
    /// Period length.
    pub period: Millis,
    /// Grace after a period ends during which evidence is still admitted.
    pub grace: Millis,
    /// Wait for observations before the first coordinator proposes.
    pub observation_wait: Millis,
    /// Length of one coordinator attempt.
    pub attempt_timeout: Millis,
    /// Largest clock difference between honest members the protocol tolerates.
    pub max_clock_skew: Millis,
    /// Timeout of one DKG phase.
    pub dkg_phase_timeout: Millis,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self {
            genesis: Millis(1_000_000),
            period: Millis(60_000),
            grace: Millis(2_000),
            observation_wait: Millis(500),
            attempt_timeout: Millis(3_000),
            max_clock_skew: Millis(200),
            dkg_phase_timeout: Millis(20_000),
        }
    }
}

/// A latency distribution.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "dist", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LatencyDist {
    /// Always `value`.
    Fixed {
        /// The latency.
        value: Millis,
    },
    /// Uniform in `[min, max]`.
    Uniform {
        /// Lower bound.
        min: Millis,
        /// Upper bound.
        max: Millis,
    },
    /// Log-normal with the given median and shape σ (of the underlying normal).
    Lognormal {
        /// Median latency.
        median: Millis,
        /// Shape; 0.3 is mild jitter, 1.0 a heavy tail.
        sigma: f64,
    },
}

impl Default for LatencyDist {
    fn default() -> Self {
        LatencyDist::Fixed { value: Millis(5) }
    }
}

/// Regions with a latency matrix.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Region names.
    pub names: Vec<String>,
    /// Region of each member (index into `names`); default: `counts`, else round robin.
    #[serde(default)]
    pub assign: Vec<usize>,
    /// Members per region, assigned in roster order (an alternative to `assign`).
    #[serde(default)]
    pub counts: Vec<usize>,
    /// Median one-way latency between regions, `median[from][to]`, in ms. The shape of
    /// `links.latency` is kept and centred on this value.
    pub median: Vec<Vec<f64>>,
}

/// A member given by index or by region name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MemberRef {
    /// One member.
    Index(u16),
    /// Every member of a region.
    Region(String),
}

/// Settings for particular links.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    /// Senders.
    pub from: Vec<MemberRef>,
    /// Receivers.
    pub to: Vec<MemberRef>,
    /// Latency on these links.
    #[serde(default)]
    pub latency: Option<LatencyDist>,
    /// Loss on these links.
    #[serde(default)]
    pub loss: Option<f64>,
}

/// Link model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSpec {
    /// One-way latency.
    pub latency: LatencyDist,
    /// Each member's uplink in Mbit/s (0: unlimited). Messages leave one after another.
    pub bandwidth_mbps: f64,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice (the copy bypasses gossip's seen-cache,
    /// so the engine's own deduplication is exercised).
    pub duplicate: f64,
    /// Probability that a message is held back by up to `reorder_window`.
    pub reorder: f64,
    /// Largest extra delay of a reordered message.
    pub reorder_window: Millis,
    /// Regions and their latency matrix.
    pub regions: Option<RegionSpec>,
    /// Per-link settings.
    #[serde(rename = "override")]
    pub overrides: Vec<LinkOverride>,
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            latency: LatencyDist::default(),
            bandwidth_mbps: 0.0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_window: Millis(50),
            regions: None,
            overrides: Vec::new(),
        }
    }
}

/// Gossip overlay (gossipsub-like).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipSpec {
    /// Mesh peers each member relays accepted gossip to (gossipsub's D); `n - 1` or more floods.
    pub mesh_degree: usize,
    /// Whether the author sends its own message to every member (gossipsub's `flood_publish`),
    /// rather than to its mesh peers only.
    pub flood_publish: bool,
}

impl Default for GossipSpec {
    fn default() -> Self {
        Self {
            mesh_degree: 6,
            flood_publish: true,
        }
    }
}

/// Members' clocks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockSpec {
    /// Largest difference between two members' clocks; skews are drawn uniformly in
    /// `[-max_skew/2, +max_skew/2]`.
    pub max_skew: Millis,
    /// Explicit skew per member (overrides `max_skew`).
    pub skews: Vec<Offset>,
}

/// How a lab behaves in a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Conduct {
    /// Attests within the limits.
    Compliant,
    /// Attests compute over the limit.
    OverCompute,
    /// Attests a cluster over the limit.
    OverCluster,
    /// Does not attest.
    Silent,
    /// Signs two different attestations.
    DoubleSigns,
}

impl Conduct {
    /// The fixture's conduct.
    pub fn fixture(self) -> accord_protocol::fixtures::LabConduct {
        use accord_protocol::fixtures::LabConduct as L;
        match self {
            Conduct::Compliant => L::Compliant,
            Conduct::OverCompute => L::OverCompute,
            Conduct::OverCluster => L::OverCluster,
            Conduct::Silent => L::Silent,
            Conduct::DoubleSigns => L::DoubleSigns,
        }
    }

    /// The verdict kind this conduct leads to when the lab's evidence is included.
    pub fn expected_verdict(self) -> &'static str {
        match self {
            Conduct::Compliant => "compliant",
            Conduct::Silent => "no-attestation",
            _ => "violation",
        }
    }
}

/// Weights of each conduct, drawn per (lab, period).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ConductMix {
    /// Weight of compliant labs.
    pub compliant: f64,
    /// Weight of labs over the compute limit.
    pub over_compute: f64,
    /// Weight of labs over the cluster limit.
    pub over_cluster: f64,
    /// Weight of silent labs.
    pub silent: f64,
    /// Weight of labs that sign two attestations.
    pub double_signs: f64,
}

impl Default for ConductMix {
    fn default() -> Self {
        Self {
            compliant: 1.0,
            over_compute: 0.0,
            over_cluster: 0.0,
            silent: 0.0,
            double_signs: 0.0,
        }
    }
}

impl ConductMix {
    /// The (conduct, weight) pairs.
    pub fn weights(&self) -> [(Conduct, f64); 5] {
        [
            (Conduct::Compliant, self.compliant),
            (Conduct::OverCompute, self.over_compute),
            (Conduct::OverCluster, self.over_cluster),
            (Conduct::Silent, self.silent),
            (Conduct::DoubleSigns, self.double_signs),
        ]
    }
}

/// A colluding lab hands a late attestation to the `late-injector` members.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collusion {
    /// The lab.
    pub lab: u16,
    /// The period.
    pub period: u64,
    /// How long before the close the item is handed over (after honest members stopped
    /// hearing from the lab).
    #[serde(default = "default_collude_before")]
    pub before_close: Millis,
}

fn default_collude_before() -> Millis {
    Millis(20)
}

/// Labs and the submission workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabSpec {
    /// Conduct weights, drawn per (lab, period).
    pub conduct: ConductMix,
    /// Conduct per lab, cycled (overrides `conduct`).
    pub pattern: Vec<Conduct>,
    /// Fractions of the period within which labs submit.
    pub submit_window: [f64; 2],
    /// Members each item is submitted to (a lab retries another member when one is down).
    pub copies: usize,
    /// Probability per (lab, period) of an extra, backdated attestation after the close.
    pub late: f64,
    /// How long after the close late attestations are submitted (must exceed the clock bound).
    pub late_delay: Millis,
    /// Probability that an attestation is inspected by a member.
    pub inspections: f64,
    /// Probability that an inspection finds a discrepancy beyond tolerance.
    pub discrepancy: f64,
    /// Colluding labs.
    pub collude: Vec<Collusion>,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self {
            conduct: ConductMix::default(),
            pattern: Vec::new(),
            submit_window: [0.05, 0.5],
            copies: 2,
            late: 0.0,
            late_delay: Millis(10_000),
            inspections: 0.0,
            discrepancy: 0.0,
            collude: Vec::new(),
        }
    }
}

/// A Byzantine behaviour: the protocol's shared ones, plus the simulator's DKG equivocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A behaviour from `accord_testkit::adversary` (honest included).
    Protocol(Behaviour),
    /// Sends different (validly signed) DKG round-1 packages to different members.
    EquivocatingDkg,
    /// Twins (Bano et al., 2020): two honest engines hold this member's keys; one hears the
    /// even-numbered members, the other the odd-numbered ones, and both send as the member.
    Twins,
}

impl Role {
    /// Whether the member follows the protocol.
    pub fn is_honest(self) -> bool {
        self == Role::Protocol(Behaviour::Honest)
    }

    /// Name as written in scenario files.
    pub fn name(self) -> String {
        match self {
            Role::EquivocatingDkg => "equivocating-dkg".into(),
            Role::Twins => "twins".into(),
            Role::Protocol(b) => serde_json::to_value(b)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{b:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "equivocating-dkg" {
            return Ok(Role::EquivocatingDkg);
        }
        if s == "twins" {
            return Ok(Role::Twins);
        }
        Behaviour::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&s))
            .map(Role::Protocol)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "unknown behaviour {s:?}; expected a behaviour of \
                     accord_testkit::adversary::Behaviour in kebab-case (honest, silent, \
                     garbage-shares, wrong-commitments, equivocating-observations, \
                     equivocating-proposals, split-view-packages, late-injector, withholding, \
                     accept-then-silent, generative) or the simulator's equivocating-dkg or twins"
                ))
            })
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// Members with one behaviour.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarySpec {
    /// The members.
    pub members: Vec<u16>,
    /// Their behaviour.
    pub behaviour: Role,
}

/// A point on the network's calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The start of the simulation (before genesis when keys come from a DKG).
    SimStart,
    /// The start of the period.
    Start,
    /// The end of the period.
    End,
    /// The close of the period's slots (end + grace).
    #[default]
    Close,
    /// The start of coordinator attempt 0 (close + observation wait).
    Attempt,
}

/// A time: `offset` after `anchor` of `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct At {
    /// The period.
    #[serde(default)]
    pub period: u64,
    /// The anchor.
    #[serde(default)]
    pub anchor: Anchor,
    /// Offset from the anchor (may be negative).
    #[serde(default)]
    pub offset: Offset,
}

/// A scheduled crash.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashSpec {
    /// Members that crash.
    pub members: Vec<u16>,
    /// When.
    pub at: At,
    /// Downtime; without it the members stay down until the heal (or forever, when
    /// `liveness.restart_crashed` is false).
    #[serde(default)]
    pub restart_after: Option<Millis>,
}

/// Partition kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// No traffic between different groups.
    #[default]
    Symmetric,
    /// No traffic from `from` to `to`; the other direction works.
    OneWay,
}

/// A scheduled partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Kind.
    #[serde(default)]
    pub kind: PartitionKind,
    /// Symmetric: the groups (members not listed form one more group).
    #[serde(default)]
    pub groups: Vec<Vec<MemberRef>>,
    /// One-way: senders.
    #[serde(default)]
    pub from: Vec<MemberRef>,
    /// One-way: receivers.
    #[serde(default)]
    pub to: Vec<MemberRef>,
    /// When it starts.
    pub at: At,
    /// How long it lasts; without it, until the heal.
    #[serde(default)]
    pub duration: Option<Millis>,
}

/// Random faults during the fault phase (before the heal).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomFaultSpec {
    /// Expected crashes per member per period.
    pub crash_rate: f64,
    /// Downtime of a random crash.
    pub downtime: Millis,
    /// Expected random partitions per period.
    pub partition_rate: f64,
    /// Duration of a random partition.
    pub partition_duration: Millis,
    /// Share of members cut off by a random partition.
    pub partition_fraction: f64,
    /// Random partitions are one-way with this probability.
    pub one_way: f64,
}

impl Default for RandomFaultSpec {
    fn default() -> Self {
        Self {
            crash_rate: 0.0,
            downtime: Millis(10_000),
            partition_rate: 0.0,
            partition_duration: Millis(10_000),
            partition_fraction: 0.25,
            one_way: 0.0,
        }
    }
}

/// Key ceremony settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkgSpec {
    /// Time from the simulation start to genesis, for the ceremony.
    pub lead: Millis,
    /// Start times of ceremonies 1, 2, ... after the simulation start; a later one starts only
    /// at members that hold no key yet.
    pub ceremonies: Vec<Millis>,
}

impl Default for DkgSpec {
    fn default() -> Self {
        Self {
            lead: Millis(300_000),
            ceremonies: vec![Millis(0)],
        }
    }
}

/// The healed phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessSpec {
    /// When faults stop (partitions heal, loss and duplication stop, random faults stop);
    /// default: the close of the last period.
    pub heal: Option<At>,
    /// Every slot must be co-signed at every running honest member within this budget after
    /// the heal (or the last close, whichever is later).
    pub budget: Millis,
    /// Restart members that are still down at the heal.
    pub restart_crashed: bool,
    /// How long the run continues after the last decision, to catch late conflicting
    /// signatures; default twice the attempt timeout.
    pub drain: Option<Millis>,
}

impl Default for LivenessSpec {
    fn default() -> Self {
        Self {
            heal: None,
            budget: Millis(60_000),
            restart_crashed: true,
            drain: None,
        }
    }
}

/// What can go wrong, named as in the design brief.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// Invariant 1: a valid group signature without t signers.
    NoForgery,
    /// Invariant 2: a slot not co-signed within the budget after the heal.
    Suppression,
    /// Invariant 3: two co-signed statements for a slot not ordered by inclusion.
    ConflictingVerdicts,
    /// Invariant 4: a verdict that does not follow its evidence.
    VerdictFollowsEvidence,
    /// Invariant 5: an item no honest member admitted before the close in a statement.
    LateInjection,
    /// Invariant 6: a nonce commitment bound to two packages or issued twice.
    NonceReuse,
    /// Invariant 7: an acknowledged item lost across a restart.
    AcknowledgedLost,
    /// An honest member named as a culprit by an honest member.
    HonestBlamed,
    /// Honest members completed the DKG with different group keys.
    DkgDisagreement,
    /// The simulator's own limits (event budget) were exceeded: a livelock.
    Stalled,
}

impl ViolationKind {
    /// A one-line description.
    pub fn describe(self) -> &'static str {
        match self {
            ViolationKind::NoForgery => "invariant 1 (no forgery)",
            ViolationKind::Suppression => "invariant 2 (no suppression)",
            ViolationKind::ConflictingVerdicts => "invariant 3 (no conflicting verdicts)",
            ViolationKind::VerdictFollowsEvidence => "invariant 4 (verdicts follow evidence)",
            ViolationKind::LateInjection => "invariant 5 (no late injection)",
            ViolationKind::NonceReuse => "invariant 6 (nonces never reused)",
            ViolationKind::AcknowledgedLost => "invariant 7 (nothing acknowledged lost)",
            ViolationKind::HonestBlamed => "honest member blamed",
            ViolationKind::DkgDisagreement => "DKG: honest members disagree on the group key",
            ViolationKind::Stalled => "simulator event budget exceeded",
        }
    }
}

/// An expected verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictExpect {
    /// The lab.
    pub lab: u16,
    /// The period.
    pub period: u64,
    /// `compliant`, `violation` or `no-attestation`.
    pub verdict: String,
}

/// No unit of `period` co-signed before `until`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiet {
    /// The period.
    pub period: u64,
    /// The earliest time a unit of it may be co-signed.
    pub until: At,
}

/// Expected DKG outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DkgExpect {
    /// The first ceremony completes.
    Complete,
    /// A ceremony aborts, and a later one completes.
    AbortThenComplete,
    /// Every ceremony aborts.
    Abort,
}

/// What a run must show; any mismatch fails the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Liveness must hold after the heal (false when the adversary exceeds what the protocol
    /// tolerates and suppression is the expected outcome).
    pub live: bool,
    /// The violation the run must detect (for scenarios beyond the protocol's assumptions).
    pub violation: Option<ViolationKind>,
    /// Members that honest members must name as culprits.
    pub culprits: Vec<u16>,
    /// Verdicts that must be co-signed.
    pub verdicts: Vec<VerdictExpect>,
    /// Every late submission must be refused by every honest member.
    pub late_refused: bool,
    /// Periods whose units may not be co-signed before a given time (a partition or crash
    /// keeps fewer than t members together until then).
    pub quiet: Vec<Quiet>,
    /// Key ceremony outcome.
    pub dkg: Option<DkgExpect>,
    /// Members that must be named by the aborted ceremony.
    pub dkg_culprits: Vec<u16>,
    /// Every lab's verdict must match its conduct (when its evidence reached the network).
    pub verdicts_match_conduct: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            live: true,
            violation: None,
            culprits: Vec::new(),
            verdicts: Vec::new(),
            late_refused: false,
            quiet: Vec::new(),
            dkg: None,
            dkg_culprits: Vec::new(),
            verdicts_match_conduct: false,
        }
    }
}

/// Limits of the simulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most events one run may process.
    pub max_events: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 200_000_000,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Loading

/// One runnable variant of a scenario file.
#[derive(Clone, Debug)]
pub struct Row {
    /// Row index (0 when the file has no sweep).
    pub index: usize,
    /// Label (from the row's `label`, or its overrides).
    pub label: String,
    /// The overrides, as `dotted.key = value` pairs (for plots and tables).
    pub params: Vec<(String, String)>,
    /// The resolved scenario.
    pub scenario: Scenario,
}

/// A loaded scenario file.
#[derive(Clone, Debug)]
pub struct ScenarioFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its rows (one when there is no sweep).
    pub rows: Vec<Row>,
}

impl ScenarioFile {
    /// Reads, parses and validates a scenario file.
    ///
    /// # Errors
    /// A typed [`ScenarioError`] with the line of the problem.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario text (`path` is used in messages).
    ///
    /// # Errors
    /// A typed [`ScenarioError`] with the line of the problem.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ScenarioError> {
        let parse_err = |e: toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ScenarioError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        };
        let base: Scenario = toml::from_str(text).map_err(parse_err)?;
        validate(&base).map_err(|(field, message)| ScenarioError::Invalid {
            path: path.to_path_buf(),
            line: locate(text, &field),
            field,
            message,
        })?;
        if base.sweep.is_empty() {
            let mut scenario = base;
            scenario.sweep.clear();
            return Ok(Self {
                path: path.to_path_buf(),
                rows: vec![Row {
                    index: 0,
                    label: "base".into(),
                    params: Vec::new(),
                    scenario,
                }],
            });
        }
        let mut doc: toml::Table = text.parse().map_err(parse_err)?;
        doc.remove("sweep");
        let mut rows = Vec::new();
        for (index, spanned) in base.sweep.iter().enumerate() {
            let line = line_col(text, spanned.span().start).0;
            let mut overrides = spanned.get_ref().clone();
            let explicit_label = match overrides.remove("label") {
                Some(toml::Value::String(s)) => Some(s),
                Some(other) => {
                    return Err(ScenarioError::Sweep {
                        path: path.to_path_buf(),
                        line,
                        row: index,
                        label: other.to_string(),
                        message: "label must be a string".into(),
                    });
                }
                None => None,
            };
            let mut params = Vec::new();
            flatten("", &overrides, &mut params);
            let label = explicit_label.unwrap_or_else(|| {
                params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let mut merged = doc.clone();
            merge(&mut merged, overrides);
            let sweep_err = |message: String| ScenarioError::Sweep {
                path: path.to_path_buf(),
                line,
                row: index,
                label: label.clone(),
                message,
            };
            let scenario: Scenario = toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| sweep_err(e.message().to_string()))?;
            validate(&scenario).map_err(|(f, m)| sweep_err(format!("{f}: {m}")))?;
            rows.push(Row {
                index,
                label,
                params,
                scenario,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// The rows to run: all, or the one `--row` selects.
    ///
    /// # Errors
    /// [`ScenarioError::NoSuchRow`].
    pub fn select(&self, row: Option<usize>) -> Result<Vec<&Row>, ScenarioError> {
        match row {
            None => Ok(self.rows.iter().collect()),
            Some(r) => self
                .rows
                .get(r)
                .map(|row| vec![row])
                .ok_or(ScenarioError::NoSuchRow {
                    path: self.path.clone(),
                    row: r,
                    rows: self.rows.len(),
                }),
        }
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// The line of a dotted field path such as `adversary[1].members` or `network.threshold`:
/// follows table headers (counting `[[array]]` entries) and then finds the key. 0 if not found.
fn locate(text: &str, field: &str) -> usize {
    let mut segments: Vec<(String, Option<usize>)> = Vec::new();
    for seg in field.split('.') {
        match seg.split_once('[') {
            Some((name, rest)) => {
                let idx = rest.trim_end_matches(']').parse().ok();
                segments.push((name.to_string(), idx));
            }
            None => segments.push((seg.to_string(), None)),
        }
    }
    let Some((last, _)) = segments.last().cloned() else {
        return 0;
    };
    // The header path (all but the last segment, unless the last is an array entry).
    let header: Vec<(String, Option<usize>)> = if segments.last().is_some_and(|s| s.1.is_some()) {
        segments.clone()
    } else {
        segments[..segments.len() - 1].to_vec()
    };
    let header_name = header
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(".");
    let wanted_index = header.last().and_then(|h| h.1);
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut in_target = header.is_empty();
    let mut target_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let current = name.trim().to_string();
            let c = counts.entry(current.clone()).or_insert(0);
            in_target = current == header_name && wanted_index == Some(*c);
            *c += 1;
            if in_target {
                target_line = i + 1;
                if segments.last().is_some_and(|s| s.1.is_some()) {
                    return target_line;
                }
            }
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            in_target = name.trim() == header_name && wanted_index.is_none();
            if in_target {
                target_line = i + 1;
            }
            continue;
        }
        if in_target {
            let key = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if key == last {
                return i + 1;
            }
        }
    }
    target_line
}

fn prob(field: &str, p: f64) -> Result<(), (String, String)> {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return Err((field.into(), format!("{p} is not a probability in [0, 1]")));
    }
    Ok(())
}

fn members_in(field: &str, list: &[u16], n: usize) -> Result<(), (String, String)> {
    if let Some(bad) = list.iter().find(|m| usize::from(**m) >= n) {
        return Err((
            field.into(),
            format!("member {bad} is not in the roster (members are 0..{n})"),
        ));
    }
    Ok(())
}

fn refs_in(
    field: &str,
    list: &[MemberRef],
    n: usize,
    regions: &Option<RegionSpec>,
) -> Result<(), (String, String)> {
    for r in list {
        match r {
            MemberRef::Index(m) => members_in(field, &[*m], n)?,
            MemberRef::Region(name) => {
                let known = regions
                    .as_ref()
                    .is_some_and(|rs| rs.names.iter().any(|x| x == name));
                if !known {
                    return Err((field.into(), format!("unknown region {name:?}")));
                }
            }
        }
    }
    Ok(())
}

fn dist_ok(field: &str, d: &LatencyDist) -> Result<(), (String, String)> {
    match d {
        LatencyDist::Uniform { min, max } if min > max => {
            Err((field.into(), format!("min {} ms > max {} ms", min.0, max.0)))
        }
        LatencyDist::Lognormal { sigma, .. } if !(0.0..=5.0).contains(sigma) => {
            Err((field.into(), format!("sigma {sigma} outside [0, 5]")))
        }
        _ => Ok(()),
    }
}

/// Semantic checks; returns (field path, message) of the first problem.
fn validate(s: &Scenario) -> Result<(), (String, String)> {
    let n = s.network.members;
    if !(2..=accord_protocol::roster::MAX_MEMBERS).contains(&n) {
        return Err((
            "network.members".into(),
            format!("{n} members; a network has 2 to 256"),
        ));
    }
    if s.network.labs == 0 || s.network.labs > accord_protocol::roster::MAX_LABS {
        return Err((
            "network.labs".into(),
            format!("{} labs; a network has 1 to 1024", s.network.labs),
        ));
    }
    if let Some(t) = s.network.threshold {
        let t = usize::from(t);
        if t > n || 3 * t <= 2 * n {
            return Err((
                "network.threshold".into(),
                format!(
                    "t = {t} of n = {n} is not allowed: the protocol needs 3t > 2n and t <= n (default {})",
                    accord_protocol::roster::default_threshold(n)
                ),
            ));
        }
    }
    if s.network.periods == 0 && s.network.keys != Keys::Dkg {
        return Err((
            "network.periods".into(),
            "0 periods only makes sense with keys = \"dkg\" (a ceremony-only run)".into(),
        ));
    }
    if s.seeds == 0 {
        return Err(("seeds".into(), "at least one seed".into()));
    }
    let sch = &s.schedule;
    if sch.period.0 == 0 || sch.attempt_timeout.0 == 0 || sch.dkg_phase_timeout.0 == 0 {
        return Err((
            "schedule".into(),
            "period, attempt_timeout and dkg_phase_timeout must be positive".into(),
        ));
    }
    if sch.max_clock_skew >= sch.observation_wait {
        return Err((
            "schedule.observation_wait".into(),
            "the observation wait must exceed max_clock_skew".into(),
        ));
    }
    let l = &s.links;
    dist_ok("links.latency", &l.latency)?;
    prob("links.loss", l.loss)?;
    prob("links.duplicate", l.duplicate)?;
    prob("links.reorder", l.reorder)?;
    if l.bandwidth_mbps < 0.0 || l.bandwidth_mbps.is_nan() {
        return Err(("links.bandwidth_mbps".into(), "must be >= 0".into()));
    }
    if let Some(r) = &l.regions {
        let k = r.names.len();
        if k == 0 {
            return Err(("links.regions.names".into(), "at least one region".into()));
        }
        if r.median.len() != k || r.median.iter().any(|row| row.len() != k) {
            return Err((
                "links.regions.median".into(),
                format!("must be a {k}x{k} matrix (one row and column per region)"),
            ));
        }
        if r.median.iter().flatten().any(|v| *v < 0.0 || v.is_nan()) {
            return Err((
                "links.regions.median".into(),
                "latencies must be >= 0".into(),
            ));
        }
        if !r.assign.is_empty() && r.assign.len() != n {
            return Err((
                "links.regions.assign".into(),
                format!("{} entries for {n} members", r.assign.len()),
            ));
        }
        if !r.counts.is_empty() && (r.counts.len() != k || r.counts.iter().sum::<usize>() != n) {
            return Err((
                "links.regions.counts".into(),
                format!("{k} counts that add up to the {n} members"),
            ));
        }
        if let Some(bad) = r.assign.iter().find(|a| **a >= k) {
            return Err((
                "links.regions.assign".into(),
                format!("region {bad} does not exist (0..{k})"),
            ));
        }
    }
    for (i, o) in l.overrides.iter().enumerate() {
        let f = format!("links.override[{i}]");
        refs_in(&f, &o.from, n, &l.regions)?;
        refs_in(&f, &o.to, n, &l.regions)?;
        if let Some(p) = o.loss {
            prob(&f, p)?;
        }
        if let Some(d) = &o.latency {
            dist_ok(&f, d)?;
        }
    }
    if !s.clock.skews.is_empty() && s.clock.skews.len() != n {
        return Err((
            "clock.skews".into(),
            format!("{} skews for {n} members", s.clock.skews.len()),
        ));
    }
    let lab = &s.labs;
    let [a, b] = lab.submit_window;
    if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) || a > b {
        return Err((
            "labs.submit_window".into(),
            "two fractions 0 <= a <= b <= 1 of the period".into(),
        ));
    }
    if lab.copies == 0 || lab.copies > n {
        return Err(("labs.copies".into(), format!("1 to {n}")));
    }
    prob("labs.late", lab.late)?;
    prob("labs.inspections", lab.inspections)?;
    prob("labs.discrepancy", lab.discrepancy)?;
    if lab.late > 0.0 && lab.late_delay.0 <= s.clock.max_skew.0 {
        return Err((
            "labs.late_delay".into(),
            "must exceed clock.max_skew, or a slow clock may still rightly admit the item".into(),
        ));
    }
    let weights: f64 = lab.conduct.weights().iter().map(|(_, w)| *w).sum();
    if lab.pattern.is_empty()
        && (weights <= 0.0 || lab.conduct.weights().iter().any(|(_, w)| *w < 0.0))
    {
        return Err((
            "labs.conduct".into(),
            "weights must be >= 0 with a positive sum".into(),
        ));
    }
    for (i, c) in lab.collude.iter().enumerate() {
        if usize::from(c.lab) >= s.network.labs {
            return Err((
                format!("labs.collude[{i}]"),
                format!("lab {} does not exist", c.lab),
            ));
        }
    }
    let mut byzantine = BTreeSet::new();
    for (i, adv) in s.adversary.iter().enumerate() {
        let f = format!("adversary[{i}]");
        members_in(&f, &adv.members, n)?;
        for m in &adv.members {
            if !byzantine.insert(*m) {
                return Err((f, format!("member {m} is given two behaviours")));
            }
        }
    }
    for (i, c) in s.crash.iter().enumerate() {
        members_in(&format!("crash[{i}]"), &c.members, n)?;
    }
    for (i, p) in s.partition.iter().enumerate() {
        let f = format!("partition[{i}]");
        match p.kind {
            PartitionKind::Symmetric => {
                if p.groups.is_empty() {
                    return Err((f, "a symmetric partition needs groups".into()));
                }
                for g in &p.groups {
                    refs_in(&f, g, n, &l.regions)?;
                }
            }
            PartitionKind::OneWay => {
                if p.from.is_empty() || p.to.is_empty() {
                    return Err((f, "a one-way partition needs from and to".into()));
                }
                refs_in(&f, &p.from, n, &l.regions)?;
                refs_in(&f, &p.to, n, &l.regions)?;
            }
        }
    }
    let rf = &s.random_faults;
    prob("random_faults.partition_fraction", rf.partition_fraction)?;
    prob("random_faults.one_way", rf.one_way)?;
    if rf.crash_rate < 0.0 || rf.partition_rate < 0.0 {
        return Err(("random_faults".into(), "rates must be >= 0".into()));
    }
    if s.network.keys == Keys::Dkg && s.dkg.ceremonies.is_empty() {
        return Err(("dkg.ceremonies".into(), "at least one ceremony".into()));
    }
    members_in("expect.culprits", &s.expect.culprits, n)?;
    members_in("expect.dkg_culprits", &s.expect.dkg_culprits, n)?;
    for (i, v) in s.expect.verdicts.iter().enumerate() {
        if !["compliant", "violation", "no-attestation"].contains(&v.verdict.as_str()) {
            return Err((
                format!("expect.verdicts[{i}]"),
                format!(
                    "verdict {:?}: expected compliant, violation or no-attestation",
                    v.verdict
                ),
            ));
        }
        if usize::from(v.lab) >= s.network.labs || v.period >= s.network.periods {
            return Err((
                format!("expect.verdicts[{i}]"),
                "no such slot in this scenario".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"t\"\n[network]\nmembers = 4\nlabs = 2\nperiods = 1\n";

    #[test]
    fn durations_parse_with_units_and_signs() {
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("3s"), Ok(3_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        assert_eq!(parse_duration("-10ms"), Ok(-10));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let f = ScenarioFile::parse(Path::new("m.toml"), MINIMAL).expect("valid");
        assert_eq!(f.rows.len(), 1);
        let s = &f.rows[0].scenario;
        assert_eq!(s.schedule.period, Millis(60_000));
        assert_eq!(s.gossip.mesh_degree, 6);
        assert!(s.expect.live);
    }

    #[test]
    fn type_errors_carry_the_line() {
        let text = format!("{MINIMAL}[links]\nloss = \"lots\"\n");
        match ScenarioFile::parse(Path::new("x.toml"), &text) {
            Err(ScenarioError::Parse { line, .. }) => assert_eq!(line, 7),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn semantic_errors_carry_the_line_of_the_table() {
        let text = format!(
            "{MINIMAL}[[adversary]]\nmembers = [1]\nbehaviour = \"silent\"\n[[adversary]]\nmembers = [9]\nbehaviour = \"silent\"\n"
        );
        match ScenarioFile::parse(Path::new("x.toml"), &text) {
            Err(ScenarioError::Invalid { line, field, .. }) => {
                assert_eq!(field, "adversary[1]");
                assert_eq!(line, 9);
            }
            other => panic!("expected an invalid-field error, got {other:?}"),
        }
        let text = format!("{MINIMAL}threshold = 2\n");
        match ScenarioFile::parse(Path::new("x.toml"), &text) {
            Err(ScenarioError::Invalid { line, field, .. }) => {
                assert_eq!(field, "network.threshold");
                assert_eq!(line, 6);
            }
            other => panic!("expected an invalid threshold, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_and_behaviours_are_refused() {
        let text = format!("{MINIMAL}[links]\nlatncy = 5\n");
        assert!(matches!(
            ScenarioFile::parse(Path::new("x.toml"), &text),
            Err(ScenarioError::Parse { line: 7, .. })
        ));
        let text = format!("{MINIMAL}[[adversary]]\nmembers = [1]\nbehaviour = \"sneaky\"\n");
        let err = ScenarioFile::parse(Path::new("x.toml"), &text).expect_err("refused");
        assert!(err.to_string().contains("unknown behaviour"), "{err}");
    }

    #[test]
    fn sweep_rows_merge_over_the_base() {
        let text = format!(
            "{MINIMAL}[links]\nloss = 0.0\nlatency = {{ dist = \"fixed\", value = \"5ms\" }}\n[[sweep]]\nlinks.loss = 0.1\n[[sweep]]\nlabel = \"big\"\nnetwork.members = 7\n"
        );
        let f = ScenarioFile::parse(Path::new("x.toml"), &text).expect("valid");
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.rows[0].label, "links.loss=0.1");
        assert!((f.rows[0].scenario.links.loss - 0.1).abs() < 1e-12);
        assert_eq!(f.rows[0].scenario.network.members, 4);
        assert_eq!(f.rows[1].label, "big");
        assert_eq!(f.rows[1].scenario.network.members, 7);
        assert_eq!(
            f.rows[1].scenario.links.latency,
            LatencyDist::Fixed { value: Millis(5) }
        );
        let bad = format!("{MINIMAL}[[sweep]]\nlinks.loss = 3.0\n");
        match ScenarioFile::parse(Path::new("x.toml"), &bad) {
            Err(ScenarioError::Sweep {
                row: 0, line: 6, ..
            }) => {}
            other => panic!("expected a sweep error, got {other:?}"),
        }
    }
}
