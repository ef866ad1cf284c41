//! The observers' contract: co-signed statements and the trust bundle as JSON.
//!
//! A [`StatementExport`] carries `message` (hex of the exact bytes the group signed),
//! `signature` (hex, 64 bytes) and `group_key` (hex, 32 bytes), so any RFC 8032 Ed25519
//! verifier can check it without this code, plus the decoded statement fields and, in period
//! mode, the batch inclusion proof. [`StatementExport::verify`] re-derives the message from the
//! decoded fields, so a statement whose fields were edited no longer verifies even if `message`
//! was left alone.

use accord_protocol::crypto::{Digest, PublicKey, Signature};
use accord_protocol::policy::Verdict;
use accord_protocol::roster::Period;
use accord_protocol::statement::{BatchProof, SignedStatement, Slot, Statement, VerifyError};
use accord_protocol::verify::{TrustBundle, Verified};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One co-signed statement as published to observers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatementExport {
    /// Hex of the exact signed bytes (the statement's signing bytes, or the period checkpoint).
    pub message: String,
    /// The group's Ed25519 signature, hex (64 bytes).
    pub signature: Signature,
    /// The group's Ed25519 public key, hex (32 bytes).
    pub group_key: PublicKey,
    /// The network id (hash of the roster).
    pub network_id: Digest,
    /// Hash of the policy that produced the verdict.
    pub policy_hash: Digest,
    /// The lab of the slot.
    pub lab: String,
    /// The period of the slot.
    pub period: u64,
    /// Digests of the evidence the verdict rests on, sorted.
    pub evidence: Vec<Digest>,
    /// `compliant`, `violation` or `no-attestation`.
    pub verdict_kind: String,
    /// The verdict with its reasons.
    pub verdict: Verdict,
    /// For period batches: the signed checkpoint and this statement's inclusion proof.
    pub batch: Option<BatchProof>,
    /// For period batches: hex of the statement's own signing bytes, the Merkle leaf that
    /// `batch.proof` proves is in the signed checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_bytes: Option<String>,
    /// For period batches: the checkpoint with the group signature as a C2SP signed note,
    /// verifiable with the trust bundle's `note_verifier_key` by any signed-note verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_note: Option<String>,
}

/// Why an exported statement does not verify.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The `message` field is not hex.
    #[error("the message field is not hex")]
    BadHex,
    /// The `message` field differs from the bytes the decoded fields sign.
    #[error("the message field does not match the decoded statement fields")]
    MessageMismatch,
    /// The statement names another group key than the trust bundle.
    #[error("the statement's group key {found} is not the trust bundle's {expected}")]
    GroupKeyMismatch {
        /// In the bundle.
        expected: PublicKey,
        /// In the statement.
        found: PublicKey,
    },
    /// `statement_bytes` differs from the decoded statement's signing bytes.
    #[error("the statement_bytes field does not match the decoded statement fields")]
    StatementBytesMismatch,
    /// `checkpoint_note` is not the signed checkpoint with this signature.
    #[error("the checkpoint_note field is not the batch checkpoint signed with this signature")]
    NoteMismatch,
    /// The protocol's verification failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl StatementExport {
    /// Exports one signed statement under `group_key`.
    pub fn new(signed: &SignedStatement, group_key: PublicKey) -> Self {
        let s = &signed.statement;
        let checkpoint_note = signed.batch.as_ref().and_then(|b| {
            accord_protocol::transparency::group_note(
                &s.network_id,
                &b.checkpoint,
                &group_key,
                &signed.signature,
            )
            .ok()
        });
        Self {
            message: hex::encode(signed.message()),
            signature: signed.signature,
            group_key,
            network_id: s.network_id,
            policy_hash: s.policy_hash,
            lab: s.slot.lab.clone(),
            period: s.slot.period.0,
            evidence: s.evidence.clone(),
            verdict_kind: s.verdict.kind().to_string(),
            verdict: s.verdict.clone(),
            batch: signed.batch.clone(),
            statement_bytes: signed
                .batch
                .as_ref()
                .map(|_| hex::encode(s.signing_bytes())),
            checkpoint_note,
        }
    }

    /// The protocol's signed statement rebuilt from the decoded fields.
    pub fn to_signed(&self) -> SignedStatement {
        SignedStatement {
            statement: Statement {
                network_id: self.network_id,
                policy_hash: self.policy_hash,
                slot: Slot {
                    lab: self.lab.clone(),
                    period: Period(self.period),
                },
                evidence: self.evidence.clone(),
                verdict: self.verdict.clone(),
            },
            signature: self.signature,
            batch: self.batch.clone(),
        }
    }

    /// Verifies against a trust bundle: the message matches the fields, the group key is the
    /// bundle's, and the protocol's checks (network, policy, batch proof, strict Ed25519) pass.
    ///
    /// # Errors
    /// The first check that fails.
    pub fn verify(&self, bundle: &TrustBundle) -> Result<Verified, ExportError> {
        let signed = self.check_fields(bundle)?;
        Ok(accord_protocol::verify_statement(&signed, bundle)?)
    }

    /// Every check of [`StatementExport::verify`] that does not need the protocol's verification:
    /// the redundant fields (`message`, `group_key`, `statement_bytes`, `checkpoint_note`) agree
    /// with the decoded statement. Returns the protocol's signed statement.
    ///
    /// # Errors
    /// The first field that disagrees.
    pub fn check_fields(&self, bundle: &TrustBundle) -> Result<SignedStatement, ExportError> {
        let message = hex::decode(&self.message).map_err(|_| ExportError::BadHex)?;
        let signed = self.to_signed();
        if signed.message() != message {
            return Err(ExportError::MessageMismatch);
        }
        if self.group_key != bundle.group_key {
            return Err(ExportError::GroupKeyMismatch {
                expected: bundle.group_key,
                found: self.group_key,
            });
        }
        if let Some(bytes) = &self.statement_bytes {
            let bytes = hex::decode(bytes).map_err(|_| ExportError::BadHex)?;
            if bytes != signed.statement.signing_bytes() {
                return Err(ExportError::StatementBytesMismatch);
            }
        }
        if let Some(note) = &self.checkpoint_note {
            let expected = signed.batch.as_ref().and_then(|b| {
                accord_protocol::transparency::group_note(
                    &bundle.network_id,
                    &b.checkpoint,
                    &bundle.group_key,
                    &signed.signature,
                )
                .ok()
            });
            if expected.as_deref() != Some(note.as_str()) {
                return Err(ExportError::NoteMismatch);
            }
        }
        Ok(signed)
    }
}

/// Parses a JSON document holding one exported statement or an array of them.
///
/// # Errors
/// Malformed JSON.
pub fn parse_statements(json: &str) -> Result<Vec<StatementExport>, serde_json::Error> {
    // Not through `serde_json::Value`: verdict reasons carry u128 FLOP counts.
    if json.trim_start().starts_with('[') {
        serde_json::from_str(json)
    } else {
        Ok(vec![serde_json::from_str(json)?])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use accord_protocol::policy::Reason;

    use super::*;

    /// A period-batch statement with a violation, fixed bytes throughout.
    fn batched() -> SignedStatement {
        SignedStatement {
            statement: Statement {
                network_id: Digest([1; 32]),
                policy_hash: Digest([2; 32]),
                slot: Slot {
                    lab: "lab-004".into(),
                    period: Period(7),
                },
                evidence: vec![Digest([5; 32]), Digest([6; 32])],
                verdict: Verdict::Violation {
                    reasons: vec![Reason::TrainingFlopOverLimit {
                        attestation: Digest([5; 32]),
                        declared: 2 * 10u128.pow(26),
                        limit: 10u128.pow(26),
                    }],
                },
            },
            signature: Signature([3; 64]),
            batch: Some(BatchProof {
                checkpoint: format!(
                    "accord/{}/period/7\n2\nq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n",
                    Digest([1; 32]).to_hex()
                ),
                index: 1,
                proof: vec![Digest([9; 32])],
            }),
        }
    }

    #[test]
    fn the_statement_json_is_byte_for_byte_the_documented_contract() {
        // `docs/api.md`, "Statements (the observers' contract)": field names and order, hex
        // digests and keys, `statement_bytes` and `checkpoint_note` in period mode only. A
        // change here breaks every observer's parser: it must be deliberate.
        let s = batched();
        let json = serde_json::to_string(&StatementExport::new(&s, PublicKey([4; 32]))).unwrap();
        assert_eq!(
            json,
            include_str!("../testdata/statement-period.json").trim_end()
        );
        let mut per_slot = s;
        per_slot.batch = None;
        let json =
            serde_json::to_string(&StatementExport::new(&per_slot, PublicKey([4; 32]))).unwrap();
        assert_eq!(
            json,
            include_str!("../testdata/statement-slot.json").trim_end()
        );
    }

    #[test]
    fn the_json_round_trips_to_the_signed_statement() {
        let e = StatementExport::new(&batched(), PublicKey([4; 32]));
        let text = serde_json::to_string(&e).unwrap();
        let back = parse_statements(&text).unwrap();
        assert_eq!(back, vec![e.clone()]);
        assert_eq!(back[0].to_signed(), batched());
        assert_eq!(
            parse_statements(&format!("[{text},{text}]")).unwrap().len(),
            2
        );
    }
}
