//! Labs in a scenario: how each behaves per period and the submission workload (copies, late
//! attestations, inspections, colluding labs).

use serde::{Deserialize, Serialize};

use super::Millis;

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
