//! The treaty policy: a deterministic, versioned function from a slot's evidence to a verdict.
//!
//! The policy is pure: the same evidence set gives the same verdict on every member, in every
//! order. Its parameters are hashed into every statement, so a verdict names the rules it
//! followed.

use serde::{Deserialize, Serialize};

use crate::crypto::Digest;
use crate::evidence::Evidence;

pub use crate::roster::{POLICY_VERSION, PolicyParams};

/// What the network concludes about one slot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Verdict {
    /// The lab attested and nothing contradicts the attestation or exceeds a limit.
    Compliant,
    /// At least one rule is broken; the reasons are sorted and distinct.
    Violation {
        /// Every rule broken, with the evidence that shows it.
        reasons: Vec<Reason>,
    },
    /// The lab did not attest for the period: silence is not compliance.
    NoAttestation,
}

impl Verdict {
    /// A short name: `compliant`, `violation` or `no-attestation`.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Compliant => "compliant",
            Verdict::Violation { .. } => "violation",
            Verdict::NoAttestation => "no-attestation",
        }
    }
}

/// What an inspection measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Measure {
    /// Accelerators working together.
    Accelerators,
    /// Accelerator-hours.
    ChipHours,
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Reason {
    /// The lab signed two different attestations for the slot.
    ConflictingAttestations {
        /// The smaller digest.
        first: Digest,
        /// The larger digest.
        second: Digest,
    },
    /// Declared training compute over the treaty limit.
    TrainingFlopOverLimit {
        /// The attestation.
        attestation: Digest,
        /// FLOP declared.
        declared: u128,
        /// The limit.
        limit: u128,
    },
    /// Declared cluster size over the treaty limit.
    ClusterOverLimit {
        /// The attestation.
        attestation: Digest,
        /// Accelerators declared.
        declared: u64,
        /// The limit.
        limit: u64,
    },
    /// Inspectors counted a cluster over the treaty limit.
    InspectedClusterOverLimit {
        /// The report.
        report: Digest,
        /// Accelerators observed.
        observed: u64,
        /// The limit.
        limit: u64,
    },
    /// An inspection contradicts the attestation beyond the tolerance.
    InspectionDiscrepancy {
        /// The report.
        report: Digest,
        /// The attestation it contradicts.
        attestation: Digest,
        /// What differs.
        measure: Measure,
        /// The attested value.
        declared: u64,
        /// The observed value.
        observed: u64,
    },
}

/// Applies the policy to the evidence of one slot. `items` are the slot's items with their digests,
/// in any order; the result does not depend on the order.
pub fn evaluate(params: &PolicyParams, items: &[(Digest, &Evidence)]) -> Verdict {
    let mut attestations: Vec<(Digest, &crate::evidence::Attestation)> = items
        .iter()
        .filter_map(|(d, e)| match e {
            Evidence::Attestation { attestation, .. } => Some((*d, attestation)),
            Evidence::Report { .. } => None,
        })
        .collect();
    attestations.sort_by_key(|(d, _)| *d);
    attestations.dedup_by_key(|(d, _)| *d);
    if attestations.is_empty() {
        return Verdict::NoAttestation;
    }
    let mut reasons = Vec::new();
    for pair in attestations.windows(2) {
        reasons.push(Reason::ConflictingAttestations {
            first: pair[0].0,
            second: pair[1].0,
        });
    }
    for (d, a) in &attestations {
        if a.training_flop > params.max_training_flop {
            reasons.push(Reason::TrainingFlopOverLimit {
                attestation: *d,
                declared: a.training_flop,
                limit: params.max_training_flop,
            });
        }
        if a.accelerator_count > params.max_accelerators {
            reasons.push(Reason::ClusterOverLimit {
                attestation: *d,
                declared: a.accelerator_count,
                limit: params.max_accelerators,
            });
        }
    }
    for (rd, e) in items {
        let Evidence::Report { report, .. } = e else {
            continue;
        };
        if report.observed_accelerators > params.max_accelerators {
            reasons.push(Reason::InspectedClusterOverLimit {
                report: *rd,
                observed: report.observed_accelerators,
                limit: params.max_accelerators,
            });
        }
        for (ad, a) in &attestations {
            if a.site_id != report.site_id {
                continue;
            }
            for (measure, declared, observed) in [
                (
                    Measure::Accelerators,
                    a.accelerator_count,
                    report.observed_accelerators,
                ),
                (Measure::ChipHours, a.chip_hours, report.observed_chip_hours),
            ] {
                if beyond_tolerance(declared, observed, params.inspection_tolerance_bp) {
                    reasons.push(Reason::InspectionDiscrepancy {
                        report: *rd,
                        attestation: *ad,
                        measure,
                        declared,
                        observed,
                    });
                }
            }
        }
    }
    reasons.sort();
    reasons.dedup();
    if reasons.is_empty() {
        Verdict::Compliant
    } else {
        Verdict::Violation { reasons }
    }
}

/// `|observed − declared| > tolerance × max(declared, 1)`, in exact integer arithmetic.
fn beyond_tolerance(declared: u64, observed: u64, tolerance_bp: u32) -> bool {
    let diff = u128::from(declared.abs_diff(observed));
    diff * 10_000 > u128::from(tolerance_bp) * u128::from(declared.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_exact_at_the_boundary() {
        assert!(!beyond_tolerance(1000, 1050, 500));
        assert!(beyond_tolerance(1000, 1051, 500));
        assert!(!beyond_tolerance(1000, 950, 500));
        assert!(beyond_tolerance(1000, 949, 500));
        assert!(beyond_tolerance(0, 1, 0));
        assert!(!beyond_tolerance(u64::MAX, u64::MAX, 0));
    }
}
