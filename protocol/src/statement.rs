//! Statements (what the group signs) and period batches; [`crate::verify`] checks them.
//!
//! In [`SigningMode::PerSlot`] the group signs one statement's canonical bytes. In
//! [`SigningMode::PerPeriod`] it signs a C2SP tlog-checkpoint body over an RFC 9162 Merkle tree
//! whose leaves are the period's statements in roster lab order; the same signature is then a
//! valid C2SP signed-note signature by the group key, and each statement carries its inclusion
//! proof.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tlog_tiles::{Checkpoint, Hash, HashReader};

use crate::codec;
use crate::crypto::{Digest, PublicKey, Signature, signing_bytes};
use crate::policy::Verdict;
use crate::roster::{LabIndex, Network, Period, SigningMode};

const STATEMENT_TAG: &str = "accord/statement";
/// Largest tree a checkpoint may claim in verification (a period has at most this many slots).
pub(crate) const MAX_BATCH: u64 = crate::roster::MAX_LABS as u64;

/// A (lab, period) pair: what a verdict is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot {
    /// The lab's roster id.
    pub lab: String,
    /// The period.
    pub period: Period,
}

/// What the group co-signs about one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The network (hash of the roster).
    pub network_id: Digest,
    /// Hash of the policy that produced the verdict.
    pub policy_hash: Digest,
    /// The slot.
    pub slot: Slot,
    /// Digests of the evidence the verdict is based on, sorted and distinct.
    pub evidence: Vec<Digest>,
    /// The policy's verdict on that evidence.
    pub verdict: Verdict,
}

impl Statement {
    /// The canonical signed bytes: `"accord/statement" ‖ 0 ‖ version ‖ network_id ‖ bincode(self)`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_bytes(
            STATEMENT_TAG,
            &self.network_id,
            &codec::encode_bounded(self),
        )
    }

    /// Whether every item of `other` is in `self` (the chain order of invariant 3).
    pub fn includes(&self, other: &Statement) -> bool {
        other
            .evidence
            .iter()
            .all(|d| self.evidence.binary_search(d).is_ok())
    }

    /// Whether the evidence list is sorted and has no duplicates.
    pub fn evidence_is_canonical(&self) -> bool {
        self.evidence.windows(2).all(|w| w[0] < w[1])
    }
}

/// What one signing session covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// One slot ([`SigningMode::PerSlot`]).
    Slot {
        /// The period.
        period: Period,
        /// The lab.
        lab: LabIndex,
    },
    /// Every slot of a period ([`SigningMode::PerPeriod`]).
    Period(Period),
}

impl Unit {
    /// The period the unit belongs to.
    pub fn period(&self) -> Period {
        match self {
            Unit::Slot { period, .. } | Unit::Period(period) => *period,
        }
    }

    /// The labs whose slots the unit covers, in roster order.
    pub fn labs(&self, net: &Network) -> Vec<LabIndex> {
        match self {
            Unit::Slot { lab, .. } => vec![*lab],
            Unit::Period(_) => net.labs().collect(),
        }
    }

    /// The units of `period` under the network's signing mode.
    pub fn all_for(net: &Network, period: Period) -> Vec<Unit> {
        match net.roster().signing_mode {
            SigningMode::PerSlot => net.labs().map(|lab| Unit::Slot { period, lab }).collect(),
            SigningMode::PerPeriod => vec![Unit::Period(period)],
        }
    }

    /// Whether the unit fits the network's signing mode and roster.
    pub fn is_valid_for(&self, net: &Network) -> bool {
        match (self, net.roster().signing_mode) {
            (Unit::Slot { lab, .. }, SigningMode::PerSlot) => {
                usize::from(lab.0) < net.roster().labs.len()
            }
            (Unit::Period(_), SigningMode::PerPeriod) => true,
            _ => false,
        }
    }
}

/// The C2SP checkpoint origin line for a period batch: names the network and the period.
pub fn checkpoint_origin(network_id: &Digest, period: Period) -> String {
    format!("accord/{}/period/{}", network_id.to_hex(), period.0)
}

/// The message the group signs for `statements` of `unit` (in roster lab order).
pub fn signing_message(network_id: &Digest, unit: &Unit, statements: &[Statement]) -> Vec<u8> {
    match unit {
        Unit::Slot { .. } => statements
            .first()
            .map(Statement::signing_bytes)
            .unwrap_or_default(),
        Unit::Period(period) => {
            let tree = MerkleTree::new(statements.iter().map(Statement::signing_bytes));
            checkpoint_body(network_id, *period, tree.len(), tree.root())
        }
    }
}

fn checkpoint_body(network_id: &Digest, period: Period, size: u64, root: Hash) -> Vec<u8> {
    Checkpoint::new(&checkpoint_origin(network_id, period), size, root, "")
        .expect("the origin is non-empty and there is no extension")
        .to_bytes()
}

/// An RFC 9162 Merkle tree held in memory (hashing and proofs by `tlog_tiles`).
#[derive(Debug, Default)]
pub struct MerkleTree {
    stored: Vec<Hash>,
    size: u64,
}

impl HashReader for MerkleTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|i| {
                usize::try_from(*i)
                    .ok()
                    .and_then(|i| self.stored.get(i))
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl MerkleTree {
    /// The tree over `leaves`, in order.
    pub fn new(leaves: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut tree = Self::default();
        for leaf in leaves {
            tree.push(&leaf);
        }
        tree
    }

    /// Appends one leaf.
    pub fn push(&mut self, leaf: &[u8]) {
        let hashes =
            tlog_tiles::stored_hashes(self.size, leaf, self).expect("every earlier hash is stored");
        self.stored.extend(hashes);
        self.size += 1;
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The root hash (RFC 9162 `MTH`).
    pub fn root(&self) -> Hash {
        tlog_tiles::tree_hash(self.size, self).expect("every hash of the tree is stored")
    }

    /// The inclusion proof of leaf `index`.
    pub fn prove(&self, index: u64) -> Option<Vec<Digest>> {
        let proof = tlog_tiles::prove_record(self.size, index, self).ok()?;
        Some(proof.into_iter().map(|h| Digest(h.0)).collect())
    }
}

/// A co-signed unit as it travels between members: the statements and the group signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoSigned {
    /// What was signed.
    pub unit: Unit,
    /// The statements, in roster lab order.
    pub statements: Vec<Statement>,
    /// The group's Ed25519 signature over [`signing_message`].
    pub signature: Signature,
}

impl CoSigned {
    /// The exact signed message.
    pub fn message(&self, network_id: &Digest) -> Vec<u8> {
        signing_message(network_id, &self.unit, &self.statements)
    }

    /// Checks the group signature.
    ///
    /// # Errors
    /// When the signature does not verify under `group_key`.
    pub fn verify(&self, network_id: &Digest, group_key: &PublicKey) -> Result<(), VerifyError> {
        let key = group_key
            .verifying_key()
            .map_err(|_| VerifyError::BadGroupKey)?;
        crate::crypto::verify_strict(&key, &self.message(network_id), &self.signature)
            .map_err(|_| VerifyError::BadSignature)
    }

    /// One exported statement per slot, with inclusion proofs for a period batch.
    pub fn export(&self, network_id: &Digest) -> Vec<SignedStatement> {
        match self.unit {
            Unit::Slot { .. } => self
                .statements
                .iter()
                .map(|s| SignedStatement {
                    statement: s.clone(),
                    signature: self.signature,
                    batch: None,
                })
                .collect(),
            Unit::Period(period) => {
                let tree = MerkleTree::new(self.statements.iter().map(Statement::signing_bytes));
                let checkpoint =
                    String::from_utf8(checkpoint_body(network_id, period, tree.len(), tree.root()))
                        .expect("a checkpoint body is ASCII");
                self.statements
                    .iter()
                    .enumerate()
                    .map(|(i, s)| SignedStatement {
                        statement: s.clone(),
                        signature: self.signature,
                        batch: Some(BatchProof {
                            checkpoint: checkpoint.clone(),
                            index: i as u64,
                            proof: tree.prove(i as u64).expect("index is in the tree"),
                        }),
                    })
                    .collect()
            }
        }
    }
}

/// A statement's place in a period batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchProof {
    /// The signed C2SP checkpoint body (origin, size, base64 root, each ending in a newline).
    pub checkpoint: String,
    /// The statement's leaf index.
    pub index: u64,
    /// RFC 9162 inclusion proof of the statement's signing bytes.
    pub proof: Vec<Digest>,
}

/// One co-signed statement as exported to observers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// The statement.
    pub statement: Statement,
    /// The group signature over [`SignedStatement::message`].
    pub signature: Signature,
    /// For a period batch: the checkpoint that was signed and the statement's inclusion proof.
    pub batch: Option<BatchProof>,
}

impl SignedStatement {
    /// The exact bytes the group signed: the statement's signing bytes, or the checkpoint body.
    pub fn message(&self) -> Vec<u8> {
        match &self.batch {
            None => self.statement.signing_bytes(),
            Some(b) => b.checkpoint.as_bytes().to_vec(),
        }
    }
}

/// Why a statement does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The statement names another network.
    #[error("statement is for network {found}, the trust bundle is for {expected}")]
    WrongNetwork {
        /// In the bundle.
        expected: Digest,
        /// In the statement.
        found: Digest,
    },
    /// The statement was produced under another policy.
    #[error("statement policy hash {found} differs from the trust bundle's {expected}")]
    PolicyMismatch {
        /// In the bundle.
        expected: Digest,
        /// In the statement.
        found: Digest,
    },
    /// The bundle's group key is not a valid Ed25519 key.
    #[error("the trust bundle's group key is invalid")]
    BadGroupKey,
    /// The group signature does not verify.
    #[error("bad signature: the group did not sign this message")]
    BadSignature,
    /// The statement's evidence list is not sorted and distinct.
    #[error("evidence digests are not sorted and distinct")]
    NonCanonicalEvidence,
    /// The batch proof is missing, or present where the network signs per slot.
    #[error("the network signs {expected:?}, but the statement {detail}")]
    WrongMode {
        /// The bundle's mode.
        expected: SigningMode,
        /// What is wrong.
        detail: &'static str,
    },
    /// The checkpoint is malformed or names another network or period.
    #[error("bad checkpoint: {0}")]
    BadCheckpoint(&'static str),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("the inclusion proof does not match the signed checkpoint")]
    BadInclusionProof,
    /// A derived field of the trust bundle disagrees with the key it derives from.
    #[error("the trust bundle is inconsistent: {0} does not match its key")]
    InconsistentBundle(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Vec<u8> {
        vec![i; 3]
    }

    /// RFC 9162 MTH computed directly from the definition, as an independent reference.
    fn reference_root(leaves: &[Vec<u8>]) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
            match leaves.len() {
                0 => Sha256::digest([]).into(),
                1 => Sha256::new()
                    .chain_update([0u8])
                    .chain_update(&leaves[0])
                    .finalize()
                    .into(),
                n => {
                    let k = n.next_power_of_two() / 2;
                    let (l, r) = (mth(&leaves[..k]), mth(&leaves[k..]));
                    Sha256::new()
                        .chain_update([1u8])
                        .chain_update(l)
                        .chain_update(r)
                        .finalize()
                        .into()
                }
            }
        }
        mth(leaves)
    }

    #[test]
    fn merkle_root_matches_the_rfc_definition_and_proofs_check() {
        for n in 1..=17u8 {
            let leaves: Vec<Vec<u8>> = (0..n).map(leaf).collect();
            let tree = MerkleTree::new(leaves.clone());
            assert_eq!(tree.root().0, reference_root(&leaves), "n={n}");
            for i in 0..u64::from(n) {
                let proof: Vec<Hash> = tree
                    .prove(i)
                    .unwrap()
                    .into_iter()
                    .map(|d| Hash(d.0))
                    .collect();
                tlog_tiles::check_record(
                    &proof,
                    u64::from(n),
                    tree.root(),
                    i,
                    tlog_tiles::record_hash(&leaves[i as usize]),
                )
                .unwrap();
                assert!(
                    tlog_tiles::check_record(
                        &proof,
                        u64::from(n),
                        tree.root(),
                        i,
                        tlog_tiles::record_hash(b"other")
                    )
                    .is_err()
                );
            }
        }
    }

    #[test]
    fn checkpoint_body_is_c2sp_shaped() {
        let tree = MerkleTree::new((0..3).map(leaf));
        let body = String::from_utf8(checkpoint_body(
            &Digest([7; 32]),
            Period(4),
            tree.len(),
            tree.root(),
        ))
        .unwrap();
        let lines: Vec<&str> = body.split_terminator('\n').collect();
        assert_eq!(lines[0], format!("accord/{}/period/4", "07".repeat(32)));
        assert_eq!(lines[1], "3");
        assert_eq!(lines.len(), 3);
        assert!(body.ends_with('\n'));
    }
}
