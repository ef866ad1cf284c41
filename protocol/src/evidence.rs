//! Evidence: lab attestations and members' inspection reports, each signed by its author.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codec;
use crate::crypto::{Digest, SecretKey, Signature, Verifier, signing_bytes};
use crate::roster::{LabIndex, MAX_NAME_BYTES, MemberIndex, Network, Period};
use crate::time::Instant;

/// Longest free-text field (declared purpose, findings), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most run ids in one attestation.
pub const MAX_RUN_IDS: usize = 64;
pub use crate::limits::MAX_EVIDENCE_BYTES;

const ATTESTATION_TAG: &str = "accord/attestation";
const REPORT_TAG: &str = "accord/inspection-report";
const EVIDENCE_DIGEST_TAG: &str = "accord/evidence-digest/v1";

/// A lab's signed declaration of its frontier compute for one reporting period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attestation {
    /// The lab's roster id.
    pub lab: String,
    /// The period reported on.
    pub period: Period,
    /// The compute site (data centre) reported on.
    pub site_id: String,
    /// Identifiers of the training runs active in the period.
    pub run_ids: Vec<String>,
    /// Largest number of accelerators used together by any run (cluster size).
    pub accelerator_count: u64,
    /// Accelerator-hours used in the period.
    pub chip_hours: u64,
    /// Total training compute of the period's runs, in FLOP.
    pub training_flop: u128,
    /// What the compute was used for, in the lab's words.
    pub declared_purpose: String,
    /// Hash commitment to the weight snapshots at period end.
    pub weights_commitment: Digest,
    /// Hash commitment to the training data manifest.
    pub data_commitment: Digest,
    /// Hash commitment to the training transcript (logs, checkpoints schedule).
    pub transcript_commitment: Digest,
    /// When the lab signed it (the lab's claim; admission uses the member's clock).
    pub issued_at: Instant,
}

/// A member's signed inspection of a lab's site for one period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectionReport {
    /// The inspecting member.
    pub inspector: MemberIndex,
    /// The lab inspected.
    pub lab: String,
    /// The period inspected.
    pub period: Period,
    /// The site inspected.
    pub site_id: String,
    /// Accelerators the inspectors counted working together.
    pub observed_accelerators: u64,
    /// Accelerator-hours the inspectors measured (metering, power draw).
    pub observed_chip_hours: u64,
    /// Free-text findings.
    pub findings: String,
    /// When the inspector signed it.
    pub issued_at: Instant,
}

/// One signed evidence item for a slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Evidence {
    /// A lab attestation, signed by the lab's key.
    Attestation {
        /// The attestation.
        attestation: Attestation,
        /// The lab's Ed25519 signature over its signing bytes.
        signature: Signature,
    },
    /// An inspection report, signed by the inspecting member's key.
    Report {
        /// The report.
        report: InspectionReport,
        /// The inspector's Ed25519 signature over its signing bytes.
        signature: Signature,
    },
}

/// Where an item sits in its slot, as observations list it: an attestation, or the report of one
/// inspector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Place {
    /// A lab attestation.
    Attestation,
    /// An inspection report by this member.
    Report(MemberIndex),
}

/// Why an evidence item is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EvidenceError {
    /// The lab is not in the roster.
    #[error("unknown lab {0:?}")]
    UnknownLab(String),
    /// The inspector is not a member.
    #[error("unknown inspector {0}")]
    UnknownInspector(MemberIndex),
    /// The signature does not verify under the author's roster key.
    #[error("bad signature by {0}")]
    BadSignature(String),
    /// A field is empty, too long or has too many entries.
    #[error("field {0} is empty or too long")]
    BadField(&'static str),
    /// The period's slots have closed; late evidence is refused.
    #[error("period {period} closed at {closed_at}; late evidence is refused")]
    Closed {
        /// The period.
        period: Period,
        /// When it closed.
        closed_at: Instant,
    },
    /// The period has not started yet.
    #[error("period {period} has not started (it starts at {starts_at})")]
    Future {
        /// The period.
        period: Period,
        /// When it starts.
        starts_at: Instant,
    },
    /// The signing time is after the receiving member's clock (beyond the allowed skew).
    #[error("issued at {issued_at}, which is in the future")]
    IssuedInFuture {
        /// The claimed signing time.
        issued_at: Instant,
    },
    /// The slot already holds the most attestations the protocol keeps for it.
    #[error("slot already has {0} attestations")]
    SlotFull(usize),
    /// The inspector already filed its report for this slot, or as many reports this period as
    /// the roster allows.
    #[error("inspector already filed {0} report(s) allowed here")]
    InspectorFull(usize),
    /// The encoding is too large.
    #[error("evidence over {MAX_EVIDENCE_BYTES} bytes")]
    TooLarge,
}

impl EvidenceError {
    /// A stable short code (metrics, API errors); never attacker-chosen text.
    pub fn code(&self) -> &'static str {
        match self {
            EvidenceError::UnknownLab(_) => "unknown-lab",
            EvidenceError::UnknownInspector(_) => "unknown-inspector",
            EvidenceError::BadSignature(_) => "bad-signature",
            EvidenceError::BadField(_) => "bad-field",
            EvidenceError::Closed { .. } => "period-closed",
            EvidenceError::Future { .. } => "period-not-started",
            EvidenceError::IssuedInFuture { .. } => "issued-in-future",
            EvidenceError::SlotFull(_) => "slot-full",
            EvidenceError::InspectorFull(_) => "inspector-full",
            EvidenceError::TooLarge => "too-large",
        }
    }
}

impl Attestation {
    /// The bytes the lab signs.
    pub fn signing_bytes(&self, network_id: &Digest) -> Vec<u8> {
        signing_bytes(ATTESTATION_TAG, network_id, &codec::encode_bounded(self))
    }

    /// Signs with the lab's key.
    pub fn sign(self, network_id: &Digest, key: &SecretKey) -> Evidence {
        let signature = key.sign(&self.signing_bytes(network_id));
        Evidence::Attestation {
            attestation: self,
            signature,
        }
    }
}

impl InspectionReport {
    /// The bytes the inspector signs.
    pub fn signing_bytes(&self, network_id: &Digest) -> Vec<u8> {
        signing_bytes(REPORT_TAG, network_id, &codec::encode_bounded(self))
    }

    /// Signs with the inspector's member key.
    pub fn sign(self, network_id: &Digest, key: &SecretKey) -> Evidence {
        let signature = key.sign(&self.signing_bytes(network_id));
        Evidence::Report {
            report: self,
            signature,
        }
    }
}

impl Evidence {
    /// The content hash that identifies this item everywhere (dedup, observations, statements).
    pub fn digest(&self) -> Digest {
        Digest::tagged(EVIDENCE_DIGEST_TAG, &[&codec::encode_bounded(self)])
    }

    /// The lab id of the slot this item belongs to.
    pub fn lab(&self) -> &str {
        match self {
            Evidence::Attestation { attestation, .. } => &attestation.lab,
            Evidence::Report { report, .. } => &report.lab,
        }
    }

    /// The period of the slot this item belongs to.
    pub fn period(&self) -> Period {
        match self {
            Evidence::Attestation { attestation, .. } => attestation.period,
            Evidence::Report { report, .. } => report.period,
        }
    }

    /// When the author says it signed the item.
    pub fn issued_at(&self) -> Instant {
        match self {
            Evidence::Attestation { attestation, .. } => attestation.issued_at,
            Evidence::Report { report, .. } => report.issued_at,
        }
    }

    /// Whether this is a lab attestation.
    pub fn is_attestation(&self) -> bool {
        matches!(self, Evidence::Attestation { .. })
    }

    /// Where observations list this item in its slot.
    pub fn place(&self) -> Place {
        match self {
            Evidence::Attestation { .. } => Place::Attestation,
            Evidence::Report { report, .. } => Place::Report(report.inspector),
        }
    }

    /// Checks the fields and the author's signature (RFC 8032 strict); returns the slot's lab.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self, net: &Network) -> Result<LabIndex, EvidenceError> {
        self.validate_with(net, &Verifier::default())
    }

    /// [`Evidence::validate`], checking the signature with `verifier`.
    ///
    /// # Errors
    /// As [`Evidence::validate`].
    pub fn validate_with(
        &self,
        net: &Network,
        verifier: &Verifier,
    ) -> Result<LabIndex, EvidenceError> {
        let lab = net
            .lab_by_id(self.lab())
            .ok_or_else(|| EvidenceError::UnknownLab(self.lab().chars().take(64).collect()))?;
        match self {
            Evidence::Attestation {
                attestation: a,
                signature,
            } => {
                check_text("site_id", &a.site_id, MAX_NAME_BYTES)?;
                check_text("declared_purpose", &a.declared_purpose, MAX_TEXT_BYTES)?;
                if a.run_ids.len() > MAX_RUN_IDS {
                    return Err(EvidenceError::BadField("run_ids"));
                }
                for r in &a.run_ids {
                    check_text("run_ids", r, MAX_NAME_BYTES)?;
                }
                let key = net
                    .lab_key(lab)
                    .ok_or_else(|| EvidenceError::UnknownLab(a.lab.clone()))?;
                verifier
                    .strict(key, &a.signing_bytes(net.id()), signature)
                    .map_err(|_| EvidenceError::BadSignature(a.lab.clone()))?;
            }
            Evidence::Report {
                report: r,
                signature,
            } => {
                check_text("site_id", &r.site_id, MAX_NAME_BYTES)?;
                if r.findings.len() > MAX_TEXT_BYTES {
                    return Err(EvidenceError::BadField("findings"));
                }
                let key = net
                    .member_key(r.inspector)
                    .ok_or(EvidenceError::UnknownInspector(r.inspector))?;
                verifier
                    .strict(key, &r.signing_bytes(net.id()), signature)
                    .map_err(|_| EvidenceError::BadSignature(format!("{}", r.inspector)))?;
            }
        }
        Ok(lab)
    }
}

fn check_text(what: &'static str, value: &str, max: usize) -> Result<(), EvidenceError> {
    if value.is_empty() || value.len() > max {
        return Err(EvidenceError::BadField(what));
    }
    Ok(())
}
