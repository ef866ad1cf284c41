//! What goes wrong in a scenario: Byzantine members, scheduled crashes and partitions at points
//! on the network's calendar, random faults during the fault phase, and the healed phase that
//! ends them.

use accord_testkit::adversary::Behaviour;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{MemberRef, Millis, Offset};

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
