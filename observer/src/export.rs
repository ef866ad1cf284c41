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
        let checked = FieldCheck::new(bundle).check(self);
        checked.fields.map(|()| checked.signed)
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

/// One exported statement rebuilt as the protocol's signed statement, with the outcome of
/// [`StatementExport::check_fields`]'s checks.
#[derive(Debug)]
pub struct Checked {
    /// The statement as its decoded fields give it (what the group must have signed).
    pub signed: SignedStatement,
    /// Whether the redundant fields agree with it and the group key is the bundle's.
    pub fields: Result<(), ExportError>,
}

/// The checks of [`StatementExport::check_fields`] for many statements under one bundle.
///
/// Each statement's signing bytes are encoded once and compared with every field that repeats
/// them (`message` in slot mode, `statement_bytes`); hex is compared as it is decoded, without a
/// copy; and the expected `checkpoint_note` is remembered while consecutive statements share
/// their checkpoint and signature (one period batch), so it is built once per batch. The checks,
/// their order and their errors are those of [`StatementExport::check_fields`].
#[derive(Debug)]
pub struct FieldCheck<'b> {
    bundle: &'b TrustBundle,
    /// The last (checkpoint, signature) whose note was built, and that note.
    note: Option<(String, Signature, Option<String>)>,
}

impl<'b> FieldCheck<'b> {
    /// Checks under `bundle`.
    pub fn new(bundle: &'b TrustBundle) -> Self {
        Self { bundle, note: None }
    }

    /// Checks one exported statement.
    pub fn check(&mut self, export: &StatementExport) -> Checked {
        let signed = export.to_signed();
        let fields = self.redundant(
            &Redundant {
                message: &export.message,
                group_key: export.group_key,
                statement_bytes: export.statement_bytes.as_deref(),
                checkpoint_note: export.checkpoint_note.as_deref(),
            },
            &signed,
        );
        Checked { signed, fields }
    }

    /// Parses a JSON document holding one exported statement or an array of them (as
    /// [`parse_statements`]) and checks each; the statements are built straight from the text,
    /// without an intermediate [`StatementExport`].
    ///
    /// # Errors
    /// Malformed JSON: [`parse_statements`]'s error, word for word.
    pub fn parse(&mut self, json: &str) -> Result<Vec<Checked>, serde_json::Error> {
        let borrowed: Result<Vec<BorrowedExport<'_>>, _> = if json.trim_start().starts_with('[') {
            serde_json::from_str(json)
        } else {
            serde_json::from_str(json).map(|e| vec![e])
        };
        match borrowed {
            Ok(list) => Ok(list.into_iter().map(|e| self.check_borrowed(e)).collect()),
            // The borrowed form accepts what `StatementExport` accepts (the same fields, types
            // and serde rules); whatever it refuses goes through `parse_statements` for its
            // exact error, or its result should the two ever disagree.
            Err(_) => Ok(parse_statements(json)?
                .iter()
                .map(|e| self.check(e))
                .collect()),
        }
    }

    fn check_borrowed(&mut self, e: BorrowedExport<'_>) -> Checked {
        let BorrowedExport {
            message,
            signature,
            group_key,
            network_id,
            policy_hash,
            lab,
            period,
            evidence,
            verdict_kind: _,
            verdict,
            batch,
            statement_bytes,
            checkpoint_note,
        } = e;
        let signed = SignedStatement {
            statement: Statement {
                network_id: network_id.0,
                policy_hash: policy_hash.0,
                slot: Slot {
                    lab,
                    period: Period(period),
                },
                evidence: evidence.into_iter().map(|d| d.0).collect(),
                verdict,
            },
            signature: signature.0,
            batch: batch.map(|b| BatchProof {
                checkpoint: b.checkpoint,
                index: b.index,
                proof: b.proof.into_iter().map(|d| d.0).collect(),
            }),
        };
        let fields = self.redundant(
            &Redundant {
                message: &message.0,
                group_key: group_key.0,
                statement_bytes: statement_bytes.as_ref().map(|t| &*t.0),
                checkpoint_note: checkpoint_note.as_ref().map(|t| &*t.0),
            },
            &signed,
        );
        Checked { signed, fields }
    }

    /// The checks of [`StatementExport::check_fields`], in its order.
    fn redundant(
        &mut self,
        r: &Redundant<'_>,
        signed: &SignedStatement,
    ) -> Result<(), ExportError> {
        let bundle = self.bundle;
        // The statement's signing bytes, encoded once: the message in slot mode, and what
        // `statement_bytes` repeats in either mode.
        let own = if signed.batch.is_none() || r.statement_bytes.is_some() {
            signed.statement.signing_bytes()
        } else {
            Vec::new()
        };
        // `SignedStatement::message`: the signing bytes, or the checkpoint body of a batch.
        let message = match &signed.batch {
            None => own.as_slice(),
            Some(b) => b.checkpoint.as_bytes(),
        };
        if !hex_matches(r.message, message)? {
            return Err(ExportError::MessageMismatch);
        }
        if r.group_key != bundle.group_key {
            return Err(ExportError::GroupKeyMismatch {
                expected: bundle.group_key,
                found: r.group_key,
            });
        }
        if let Some(bytes) = r.statement_bytes
            && !hex_matches(bytes, &own)?
        {
            return Err(ExportError::StatementBytesMismatch);
        }
        if let Some(note) = r.checkpoint_note {
            let expected = signed
                .batch
                .as_ref()
                .and_then(|b| self.group_note(&b.checkpoint, &signed.signature));
            if expected != Some(note) {
                return Err(ExportError::NoteMismatch);
            }
        }
        Ok(())
    }

    /// `transparency::group_note` under the bundle, remembered for the last checkpoint and
    /// signature it was asked for.
    fn group_note(&mut self, checkpoint: &str, signature: &Signature) -> Option<&str> {
        let hit = self
            .note
            .as_ref()
            .is_some_and(|(c, s, _)| c == checkpoint && s == signature);
        if !hit {
            let note = accord_protocol::transparency::group_note(
                &self.bundle.network_id,
                checkpoint,
                &self.bundle.group_key,
                signature,
            )
            .ok();
            self.note = Some((checkpoint.to_owned(), *signature, note));
        }
        self.note.as_ref().and_then(|(_, _, n)| n.as_deref())
    }
}

/// The fields of a statement's JSON that repeat what the decoded fields say.
struct Redundant<'a> {
    message: &'a str,
    group_key: PublicKey,
    statement_bytes: Option<&'a str>,
    checkpoint_note: Option<&'a str>,
}

/// Each byte's value as a hex digit (upper- or lower-case, as `hex::decode` reads them), or
/// `0xff` for a byte that is not one.
static NIBBLE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Whether `hex` (upper- or lower-case, as `hex::decode` reads it) spells exactly `bytes`.
///
/// # Errors
/// [`ExportError::BadHex`] when `hex` is not hex, wherever the first difference is.
fn hex_matches(hex: &str, bytes: &[u8]) -> Result<bool, ExportError> {
    let hex = hex.as_bytes();
    if !hex.len().is_multiple_of(2) {
        return Err(ExportError::BadHex);
    }
    // Every digit is read before answering, so that not-hex wins over a difference as it did
    // when the field was decoded first; `invalid` collects the digits' values, `differ` the
    // differences.
    let mut invalid = 0u8;
    let mut differ = u8::from(hex.len() / 2 != bytes.len());
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let (high, low) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        invalid |= high | low;
        if let Some(b) = bytes.get(i) {
            differ |= ((high << 4) | low) ^ b;
        }
    }
    if invalid > 0x0f {
        return Err(ExportError::BadHex);
    }
    Ok(differ == 0)
}

/// [`StatementExport`] as its JSON holds it, for [`FieldCheck::parse`]: the same field names,
/// types and serde rules, but the long hex strings are borrowed from the text and the keys,
/// signature and digests are decoded from it without a `String` each.
#[derive(Deserialize)]
struct BorrowedExport<'a> {
    #[serde(borrow)]
    message: Text<'a>,
    signature: Hex<Signature>,
    group_key: Hex<PublicKey>,
    network_id: Hex<Digest>,
    policy_hash: Hex<Digest>,
    lab: String,
    period: u64,
    evidence: Vec<Hex<Digest>>,
    /// Read (it must be a string, as in [`StatementExport`]) but not compared, as there.
    #[serde(borrow)]
    #[allow(dead_code)]
    verdict_kind: Text<'a>,
    verdict: Verdict,
    batch: Option<BorrowedBatch>,
    #[serde(default, borrow)]
    statement_bytes: Option<Text<'a>>,
    #[serde(default, borrow)]
    checkpoint_note: Option<Text<'a>>,
}

/// [`BatchProof`] with its digests decoded from the text.
#[derive(Deserialize)]
struct BorrowedBatch {
    checkpoint: String,
    index: u64,
    proof: Vec<Hex<Digest>>,
}

/// A JSON string, borrowed from the text unless it has escapes.
struct Text<'a>(std::borrow::Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(v.to_owned().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(v.into()))
            }
        }
        d.deserialize_string(V)
    }
}

/// A fixed-size value read from its hex string, as the protocol's own `Deserialize` reads it
/// (`from_hex` on the string) but without copying the string first.
struct Hex<T>(T);

/// The protocol's byte arrays that are hex in JSON.
trait FromHex: Sized {
    fn from_hex(s: &str) -> Result<Self, accord_protocol::crypto::HexError>;
}

macro_rules! from_hex {
    ($($t:ty),*) => {$(
        impl FromHex for $t {
            fn from_hex(s: &str) -> Result<Self, accord_protocol::crypto::HexError> {
                <$t>::from_hex(s)
            }
        }
    )*};
}
from_hex!(Digest, PublicKey, Signature);

impl<'de, T: FromHex> Deserialize<'de> for Hex<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: FromHex> serde::de::Visitor<'_> for V<T> {
            type Value = Hex<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hex string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::from_hex(v).map(Hex).map_err(E::custom)
            }
        }
        d.deserialize_string(V(std::marker::PhantomData))
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

    #[test]
    fn hex_is_compared_as_hex_decode_reads_it() {
        let bytes = [0x00, 0x9f, 0xab, 0xff];
        for (text, expected) in [
            ("009fabff", Some(true)),
            ("009FABFF", Some(true)),
            ("009fAbfF", Some(true)),
            ("009fabfe", Some(false)),
            ("009fab", Some(false)),
            ("009fabff00", Some(false)),
            ("", Some(false)),
            ("009fabf", None),
            ("009fabfg", None),
            ("109fabfg", None),
            (" 009fabff", None),
            ("009fabff ", None),
            ("0x9fabff", None),
            ("009fab\u{e9}", None),
        ] {
            let decoded = hex::decode(text).ok().map(|d| d == bytes);
            assert_eq!(decoded, expected, "{text:?}: the hex crate");
            assert_eq!(hex_matches(text, &bytes).ok(), expected, "{text:?}");
        }
        assert!(hex_matches("", &[]).unwrap());
    }
}
