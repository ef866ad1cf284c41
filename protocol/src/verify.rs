//! Checking co-signed statements against a [`TrustBundle`]: what an observer does, with
//! nothing but the bundle and the statements.

use serde::{Deserialize, Serialize};
use tlog_tiles::{Checkpoint, Hash};

use crate::crypto::{Digest, PublicKey, Signature};
use crate::policy::Verdict;
use crate::roster::{Network, SigningMode};
use crate::statement::{MAX_BATCH, SignedStatement, Slot, VerifyError, checkpoint_origin};

/// Everything an observer needs to check verdicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustBundle {
    /// The network's name.
    pub network_name: String,
    /// The network id (hash of the roster).
    pub network_id: Digest,
    /// Hash of the policy parameters.
    pub policy_hash: Digest,
    /// The group's Ed25519 public key.
    pub group_key: PublicKey,
    /// t.
    pub threshold: u16,
    /// n.
    pub members: u16,
    /// What one group signature covers.
    pub signing_mode: SigningMode,
    /// The group key as a C2SP note verifier key (`name+hex(key id)+base64(0x01 ‖ key)`): a
    /// period's checkpoint with the group signature verifies as a signed note under it.
    pub note_verifier_key: String,
    /// Every member's transparency-log and witness keys.
    pub logs: Vec<crate::transparency::LogKey>,
}

impl TrustBundle {
    /// The bundle for `net` with group key `group_key`.
    pub fn new(net: &Network, group_key: PublicKey) -> Self {
        Self {
            network_name: net.roster().name.clone(),
            network_id: *net.id(),
            policy_hash: *net.policy_hash(),
            group_key,
            threshold: net.roster().threshold,
            members: net.n() as u16,
            signing_mode: net.roster().signing_mode,
            note_verifier_key: crate::transparency::note_verifier_key(
                &crate::transparency::group_key_name(net.id()),
                &group_key,
            ),
            logs: crate::transparency::LogKey::all(net),
        }
    }

    /// Checks that the derived fields (note verifier keys) agree with the keys they derive from,
    /// so a hand-edited bundle cannot say one thing to stock note verifiers and another to us.
    ///
    /// # Errors
    /// [`VerifyError::InconsistentBundle`] naming the field.
    pub fn check_consistent(&self) -> Result<(), VerifyError> {
        use crate::transparency as t;
        let name = t::group_key_name(&self.network_id);
        if self.note_verifier_key != t::note_verifier_key(&name, &self.group_key) {
            return Err(VerifyError::InconsistentBundle("note_verifier_key"));
        }
        for (i, l) in self.logs.iter().enumerate() {
            let member = crate::roster::MemberIndex(l.member);
            if usize::from(l.member) != i
                || l.origin != t::log_origin(&self.network_id, member)
                || l.witness_name != t::witness_name(&self.network_id, member)
                || l.log_verifier_key != t::note_verifier_key(&l.origin, &l.key)
                || l.witness_verifier_key != t::cosigner_verifier_key(&l.witness_name, &l.key)
            {
                return Err(VerifyError::InconsistentBundle("logs"));
            }
        }
        Ok(())
    }
}

/// A statement that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The slot.
    pub slot: Slot,
    /// The verdict.
    pub verdict: Verdict,
    /// How many evidence items it rests on.
    pub evidence: usize,
}

/// Checks a co-signed statement against a trust bundle: network, policy, batch inclusion and the
/// group's Ed25519 signature (RFC 8032, strict).
///
/// # Errors
/// The first check that fails, as a [`VerifyError`].
pub fn verify_statement(
    signed: &SignedStatement,
    bundle: &TrustBundle,
) -> Result<Verified, VerifyError> {
    let message = check_statement_except_signature(signed, bundle)?;
    let key = bundle
        .group_key
        .verifying_key()
        .map_err(|_| VerifyError::BadGroupKey)?;
    crate::crypto::verify_strict(&key, &message, &signed.signature)
        .map_err(|_| VerifyError::BadSignature)?;
    Ok(summary(signed))
}

/// Checks many statements under one bundle with batch Ed25519 verification; returns each result in
/// order.
///
/// Statements of one period batch share one signature over one checkpoint: each distinct
/// (message, signature) pair is verified once, and every statement's own inclusion proof is
/// checked against its checkpoint.
pub fn verify_statements(
    signed: &[SignedStatement],
    bundle: &TrustBundle,
) -> Vec<Result<Verified, VerifyError>> {
    let Ok(key) = bundle.group_key.verifying_key() else {
        return signed
            .iter()
            .map(|_| Err(VerifyError::BadGroupKey))
            .collect();
    };
    let mut results: Vec<Result<Vec<u8>, VerifyError>> = signed
        .iter()
        .map(|s| check_statement_except_signature(s, bundle))
        .collect();
    // Distinct (message, signature) pairs, and which pair each pending statement needs.
    let mut distinct: std::collections::BTreeMap<(&[u8], &[u8; 64]), usize> =
        std::collections::BTreeMap::new();
    let mut items: Vec<(&ed25519_dalek::VerifyingKey, &[u8], &Signature)> = Vec::new();
    let mut needs: Vec<(usize, usize)> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let Ok(message) = r else { continue };
        let sig = &signed[i].signature;
        let next = items.len();
        let j = *distinct.entry((message.as_slice(), &sig.0)).or_insert(next);
        if j == next {
            items.push((&key, message.as_slice(), sig));
        }
        needs.push((i, j));
    }
    let bad: std::collections::BTreeSet<usize> =
        crate::crypto::verify_many(&items).into_iter().collect();
    drop(distinct);
    drop(items);
    for (i, j) in needs {
        if bad.contains(&j) {
            results[i] = Err(VerifyError::BadSignature);
        }
    }
    results
        .into_iter()
        .zip(signed)
        .map(|(r, s)| r.map(|_| summary(s)))
        .collect()
}

fn summary(signed: &SignedStatement) -> Verified {
    Verified {
        slot: signed.statement.slot.clone(),
        verdict: signed.statement.verdict.clone(),
        evidence: signed.statement.evidence.len(),
    }
}

/// Everything but the signature; returns the signed message.
fn check_statement_except_signature(
    signed: &SignedStatement,
    bundle: &TrustBundle,
) -> Result<Vec<u8>, VerifyError> {
    let s = &signed.statement;
    if s.network_id != bundle.network_id {
        return Err(VerifyError::WrongNetwork {
            expected: bundle.network_id,
            found: s.network_id,
        });
    }
    if s.policy_hash != bundle.policy_hash {
        return Err(VerifyError::PolicyMismatch {
            expected: bundle.policy_hash,
            found: s.policy_hash,
        });
    }
    if !s.evidence_is_canonical() {
        return Err(VerifyError::NonCanonicalEvidence);
    }
    match (&signed.batch, bundle.signing_mode) {
        (None, SigningMode::PerSlot) => Ok(s.signing_bytes()),
        (Some(batch), SigningMode::PerPeriod) => {
            let cp = Checkpoint::from_bytes(batch.checkpoint.as_bytes())
                .map_err(|_| VerifyError::BadCheckpoint("malformed"))?;
            if cp.origin() != checkpoint_origin(&bundle.network_id, s.slot.period) {
                return Err(VerifyError::BadCheckpoint(
                    "origin names another network or period",
                ));
            }
            if !cp.extension().is_empty() {
                return Err(VerifyError::BadCheckpoint("unexpected extension lines"));
            }
            if cp.size() == 0
                || cp.size() > MAX_BATCH
                || batch.index >= cp.size()
                || batch.proof.len() > 64
            {
                return Err(VerifyError::BadInclusionProof);
            }
            let proof: Vec<Hash> = batch.proof.iter().map(|d| Hash(d.0)).collect();
            tlog_tiles::check_record(
                &proof,
                cp.size(),
                *cp.hash(),
                batch.index,
                tlog_tiles::record_hash(&s.signing_bytes()),
            )
            .map_err(|_| VerifyError::BadInclusionProof)?;
            Ok(batch.checkpoint.as_bytes().to_vec())
        }
        (None, expected) => Err(VerifyError::WrongMode {
            expected,
            detail: "has no batch inclusion proof",
        }),
        (Some(_), expected) => Err(VerifyError::WrongMode {
            expected,
            detail: "carries a batch proof",
        }),
    }
}
