//! Signature checks that engines of one process share: [`Verifier`] answers as the rules of
//! [`super`] do, and with a [`CheckedSignatures`] memo does not repeat a check that passed.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::{Signature, SignatureError, verify_many, verify_member, verify_strict};

/// How signatures are checked: directly, or through a [`CheckedSignatures`] memo that engines of
/// one process share. Either way the answer is that of [`verify_strict`], [`verify_member`] and
/// [`verify_many`]; the memo only saves repeating a check that already passed.
#[derive(Clone, Debug, Default)]
pub struct Verifier(Option<Arc<CheckedSignatures>>);

impl Verifier {
    /// Checks through `memo`, shared with the other engines of this process.
    pub fn shared(memo: Arc<CheckedSignatures>) -> Self {
        Self(Some(memo))
    }

    /// [`verify_strict`].
    ///
    /// # Errors
    /// [`SignatureError::BadSignature`] when it does not verify.
    pub fn strict(
        &self,
        key: &ed25519_dalek::VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.check(Rule::Strict, key, message, signature)
    }

    /// [`verify_member`].
    ///
    /// # Errors
    /// [`SignatureError::BadSignature`] when it does not verify.
    pub fn member(
        &self,
        key: &ed25519_dalek::VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.check(Rule::Member, key, message, signature)
    }

    fn check(
        &self,
        rule: Rule,
        key: &ed25519_dalek::VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        let verify = match rule {
            Rule::Strict => verify_strict,
            Rule::Member => verify_member,
        };
        let Some(memo) = &self.0 else {
            return verify(key, message, signature);
        };
        let id = CheckedSignatures::id(rule, key, message, signature);
        if memo.knows(&id) {
            return Ok(());
        }
        verify(key, message, signature)?;
        memo.learn([id]);
        Ok(())
    }

    /// [`verify_many`]: the indexes of the items that fail.
    pub fn many(&self, items: &[(&ed25519_dalek::VerifyingKey, &[u8], &Signature)]) -> Vec<usize> {
        let Some(memo) = &self.0 else {
            return verify_many(items);
        };
        let ids: Vec<[u8; 32]> = items
            .iter()
            .map(|(k, m, s)| CheckedSignatures::id(Rule::Member, k, m, s))
            .collect();
        let unknown: Vec<usize> = (0..items.len()).filter(|i| !memo.knows(&ids[*i])).collect();
        let batch: Vec<_> = unknown.iter().map(|i| items[*i]).collect();
        let bad: Vec<usize> = verify_many(&batch)
            .into_iter()
            .map(|j| unknown[j])
            .collect();
        memo.learn(
            unknown
                .iter()
                .filter(|i| bad.binary_search(i).is_err())
                .map(|i| ids[*i]),
        );
        bad
    }
}

/// Which rule a memoized check passed.
#[derive(Clone, Copy)]
enum Rule {
    Strict,
    Member,
}

/// Signatures found valid by the engines of one process: a check that passed is not repeated.
/// The simulator runs every member in one process and hands each the same messages, so without
/// it the UN-scale year checks every evidence signature 193 times; a node runs one member, which
/// checks each message once, and needs none. An entry is a SHA-256 digest of the rule, the key,
/// the signature and the signed bytes, so a hit is the very same check. At most
/// [`CheckedSignatures::CAPACITY`] entries are kept (the set is emptied when full).
#[derive(Debug, Default)]
pub struct CheckedSignatures {
    known: std::sync::Mutex<std::collections::BTreeSet<[u8; 32]>>,
}

impl CheckedSignatures {
    /// Most entries kept.
    pub const CAPACITY: usize = 1 << 20;

    fn id(
        rule: Rule,
        key: &ed25519_dalek::VerifyingKey,
        message: &[u8],
        signature: &Signature,
    ) -> [u8; 32] {
        let tag: &[u8] = match rule {
            Rule::Strict => b"accord/checked/strict",
            Rule::Member => b"accord/checked/member",
        };
        Sha256::new()
            .chain_update(tag)
            .chain_update(key.as_bytes())
            .chain_update(signature.0)
            .chain_update(message)
            .finalize()
            .into()
    }

    fn knows(&self, id: &[u8; 32]) -> bool {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    fn learn(&self, ids: impl IntoIterator<Item = [u8; 32]>) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in ids {
            if known.len() >= Self::CAPACITY {
                known.clear();
            }
            known.insert(id);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::crypto::SecretKey;
    use crate::crypto::tests::torsion_signature;

    #[test]
    fn a_shared_memo_answers_as_the_rules_do_and_remembers_only_passes() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let keys: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate(&mut rng)).collect();
        let vks: Vec<_> = keys
            .iter()
            .map(|k| k.public().verifying_key().unwrap())
            .collect();
        let msgs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 40]).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        sigs[2].0[3] ^= 1;
        let torsion = torsion_signature(&keys[3], &msgs[3], 1);
        let memo = Arc::new(CheckedSignatures::default());
        let shared = Verifier::shared(memo.clone());
        let direct = Verifier::default();
        for v in [&shared, &shared, &direct] {
            assert!(v.strict(&vks[0], &msgs[0], &sigs[0]).is_ok());
            assert!(v.strict(&vks[2], &msgs[2], &sigs[2]).is_err());
            // A torsion component passes the batchable rule, never the strict one, even after
            // the batchable rule remembered it.
            assert!(v.member(&vks[3], &msgs[3], &torsion).is_ok());
            assert!(v.strict(&vks[3], &msgs[3], &torsion).is_err());
            let items: Vec<_> = (0..4)
                .map(|i| (&vks[i], msgs[i].as_slice(), &sigs[i]))
                .collect();
            assert_eq!(v.many(&items), vec![2]);
        }
        // Strict and batchable passes are remembered apart; failures never are.
        assert_eq!(memo.len(), 1 + 1 + 3);
        // A memo hit is the same check: another message under the same signature fails.
        assert!(shared.strict(&vks[0], &msgs[1], &sigs[0]).is_err());
    }
}
