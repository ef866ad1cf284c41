//! The network a scenario builds: roster shape, signing mode and key source, calendar and
//! timeouts, the link model (latency, regions, bandwidth, loss, duplication, reordering), the
//! gossip overlay, members' clocks, and the key ceremony's settings.

use serde::{Deserialize, Serialize};

use super::{Millis, Offset};

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
    /// Every member refreshes the key shares after closing every k-th period
    /// (`EngineConfig::refresh_every`, `docs/protocol.md` §22.5); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_every: Option<u64>,
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
