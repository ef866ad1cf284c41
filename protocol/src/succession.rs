//! Membership change: the succession statement that hands every period from `first_period` on to
//! a new epoch (a new roster and group key), and the chain of them observers follow from the
//! genesis trust bundle (`docs/protocol.md` §22.7).
//!
//! A succession is signed by the *previous* epoch's group key, so each link verifies with one
//! RFC 8032 Ed25519 check, like a verdict. Its body starts with fixed-size fields (previous
//! network id, first period, new group key, new network id) at fixed offsets, so a verifier that
//! does not speak bincode can still read what it is asked to trust.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::sync::Arc;

use crate::codec;
use crate::crypto::{Digest, PublicKey, Signature, signing_bytes, verify_strict};
use crate::dkg::{Ceremony, DkgMessage};
use crate::roster::{Network, Period, Roster, SigningMode};
use crate::statement::{SignedStatement, VerifyError};
use crate::transparency::LogKey;
use crate::verify::{TrustBundle, Verified, verify_statement};

/// Domain-separation tag of a succession's signed bytes.
pub const SUCCESSION_TAG: &str = "accord/succession";

/// Most links a chain may have (a treaty that changes membership monthly for 80 years).
pub const MAX_CHAIN_LINKS: usize = 1024;

/// Epoch e's statement that epoch e+1 (roster, group key) decides every period from
/// `first_period` on. Signed by epoch e's group key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Succession {
    /// Network id of epoch e (the hash of its roster): the epoch that hands over.
    pub previous: Digest,
    /// The first period epoch e+1 decides; epoch e decides the periods before it.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub first_period: Period,
    /// Epoch e+1's group key.
    pub group_key: PublicKey,
    /// Epoch e+1's network id (the hash of its roster).
    pub network_id: Digest,
    /// Epoch e+1's policy hash.
    pub policy_hash: Digest,
    /// Epoch e+1's t.
    pub threshold: u16,
    /// Epoch e+1's n.
    pub members: u16,
    /// What one group signature of epoch e+1 covers.
    pub signing_mode: SigningMode,
    /// Epoch e+1's network name.
    pub network_name: String,
    /// Epoch e+1's members' transparency-log and witness keys.
    pub logs: Vec<LogKey>,
}

/// A succession with epoch e's group signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedSuccession {
    /// What was signed.
    pub succession: Succession,
    /// Epoch e's group signature over [`Succession::signing_bytes`].
    pub signature: Signature,
}

impl Succession {
    /// The succession from the network `previous` to `next` with group key `group_key`, from
    /// `first_period` on.
    pub fn new(
        previous: &Digest,
        first_period: Period,
        next: &Network,
        group_key: PublicKey,
    ) -> Self {
        Self::from_bundle(previous, first_period, TrustBundle::new(next, group_key))
    }

    fn from_bundle(previous: &Digest, first_period: Period, b: TrustBundle) -> Self {
        Self {
            previous: *previous,
            first_period,
            group_key: b.group_key,
            network_id: b.network_id,
            policy_hash: b.policy_hash,
            threshold: b.threshold,
            members: b.members,
            signing_mode: b.signing_mode,
            network_name: b.network_name,
            logs: b.logs,
        }
    }

    /// The bytes epoch e's group signs: `"accord/succession" ‖ 0 ‖ version ‖ previous ‖
    /// bincode(self)`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_bytes(SUCCESSION_TAG, &self.previous, &codec::encode_bounded(self))
    }

    /// The succession's content hash (what approvals and shares name).
    pub fn digest(&self) -> Digest {
        Digest::tagged("accord/succession-digest/v1", &[&self.signing_bytes()])
    }

    /// Epoch e+1's trust bundle: what verifies its statements.
    pub fn bundle(&self) -> TrustBundle {
        TrustBundle {
            network_name: self.network_name.clone(),
            network_id: self.network_id,
            policy_hash: self.policy_hash,
            group_key: self.group_key,
            threshold: self.threshold,
            members: self.members,
            signing_mode: self.signing_mode,
            note_verifier_key: crate::transparency::note_verifier_key(
                &crate::transparency::group_key_name(&self.network_id),
                &self.group_key,
            ),
            logs: self.logs.clone(),
        }
    }

    /// Whether the new epoch is shaped as every epoch must be: the quorum rule of §1
    /// (t ≤ n, 3t > 2n), one log key per member, a valid group key, and a network that differs
    /// from the one it succeeds.
    ///
    /// # Errors
    /// [`ChainError::Malformed`] naming the rule.
    pub fn check_shape(&self) -> Result<(), ChainError> {
        let (t, n) = (u32::from(self.threshold), u32::from(self.members));
        if n < 2 || t > n || 3 * t <= 2 * n {
            return Err(ChainError::Malformed("threshold breaks the quorum rule"));
        }
        if self.logs.len() != usize::from(self.members) {
            return Err(ChainError::Malformed("one log key per member"));
        }
        if self.network_id == self.previous {
            return Err(ChainError::Malformed("an epoch cannot succeed itself"));
        }
        if self.group_key.verifying_key().is_err() {
            return Err(ChainError::Malformed("group key"));
        }
        self.bundle()
            .check_consistent()
            .map_err(|_| ChainError::Malformed("derived log keys"))
    }
}

/// A succession offered to epoch e for co-signing, with what makes its group key credible to
/// every member of epoch e: the new roster and every new member's signed DKG confirmation of
/// that key (a key one member made up alone would lack the others' confirmations).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessionProposal {
    /// What epoch e is asked to sign.
    pub succession: Succession,
    /// Epoch e+1's roster (its hash is `succession.network_id`).
    pub roster: Roster,
    /// One signed DKG `Confirm` of `succession.group_key` from each member of `roster`, all of
    /// one ceremony.
    pub confirmations: Vec<DkgMessage>,
}

/// Why a member of epoch e refuses a [`SuccessionProposal`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SuccessionRefusal {
    /// It hands over another network.
    #[error("the succession hands over network {found}, not this one ({expected})")]
    OtherNetwork {
        /// This member's network.
        expected: Digest,
        /// What the succession names.
        found: Digest,
    },
    /// The new roster is invalid.
    #[error("the new roster is invalid: {0}")]
    Roster(String),
    /// The succession does not describe the new roster and key.
    #[error("the succession does not describe the new roster: {0}")]
    Mismatch(&'static str),
    /// The new roster's periods are not the old one's, so "period P" would name two times.
    #[error("the new roster's genesis and period length must equal this network's")]
    Calendar,
    /// The confirmations do not prove that every new member holds a share of the new key.
    #[error("the DKG confirmations do not prove the new key: {0}")]
    Confirmations(&'static str),
}

impl SuccessionProposal {
    /// Checks the proposal as a member of `current` must before approving it: it hands over
    /// `current`, describes the new roster exactly, keeps the calendar, and every new member
    /// confirmed the new group key in one DKG ceremony. Returns the new network.
    ///
    /// # Errors
    /// The first [`SuccessionRefusal`].
    pub fn check(&self, current: &Network) -> Result<Arc<Network>, SuccessionRefusal> {
        let s = &self.succession;
        if s.previous != *current.id() {
            return Err(SuccessionRefusal::OtherNetwork {
                expected: *current.id(),
                found: s.previous,
            });
        }
        let next = self.check_next()?;
        let (old, new) = (current.schedule(), next.schedule());
        if old.genesis_ms != new.genesis_ms || old.period_ms != new.period_ms {
            return Err(SuccessionRefusal::Calendar);
        }
        Ok(next)
    }

    /// The checks that need only the proposal (what its proposer can run without the handing
    /// epoch's roster): the succession describes the new roster and key exactly, and every new
    /// member confirmed that key in one DKG ceremony. Returns the new network.
    ///
    /// # Errors
    /// The first [`SuccessionRefusal`].
    pub fn check_next(&self) -> Result<Arc<Network>, SuccessionRefusal> {
        let s = &self.succession;
        let next = Network::new(self.roster.clone())
            .map_err(|e| SuccessionRefusal::Roster(e.to_string()))?;
        if Succession::new(&s.previous, s.first_period, &next, s.group_key) != *s {
            return Err(SuccessionRefusal::Mismatch(
                "fields differ from the roster's",
            ));
        }
        s.check_shape().map_err(|e| match e {
            ChainError::Malformed(why) => SuccessionRefusal::Mismatch(why),
            _ => SuccessionRefusal::Mismatch("shape"),
        })?;
        let refuse = SuccessionRefusal::Confirmations;
        let Some(first) = self.confirmations.first() else {
            return Err(refuse("none"));
        };
        let Some((_, package)) = crate::dkg::confirmed(first) else {
            return Err(refuse("not a confirmation"));
        };
        if self.confirmations.len() != next.n() {
            return Err(refuse("not one per new member"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.confirmations {
            if c.ceremony != first.ceremony
                || c.recipient.is_some()
                || crate::dkg::confirmed(c) != Some((s.group_key, package))
            {
                return Err(refuse("a confirmation names another ceremony or key"));
            }
            if !seen.insert(c.sender) {
                return Err(refuse("two from one member"));
            }
            if !c.verify_as(Ceremony::Dkg, &next) {
                return Err(refuse("a signature does not verify"));
            }
        }
        Ok(next)
    }
}

/// One epoch as an observer knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Epoch {
    /// Position on the chain: 0 is the genesis.
    pub index: usize,
    /// The first period it decides.
    pub first_period: Period,
    /// The period it hands over at, if a successor is known.
    pub end: Option<Period>,
    /// Its trust bundle.
    pub bundle: TrustBundle,
}

impl Epoch {
    /// Whether this epoch decides `period`.
    pub fn decides(&self, period: Period) -> bool {
        self.first_period <= period && self.end.is_none_or(|end| period < end)
    }
}

/// A verified chain of epochs from the genesis bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    epochs: Vec<Epoch>,
}

/// Why a chain or a statement on it does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// More links than [`MAX_CHAIN_LINKS`].
    #[error("the chain has {0} links, more than {MAX_CHAIN_LINKS}")]
    TooLong(usize),
    /// A link is shaped wrong.
    #[error("a succession is malformed: {0}")]
    Malformed(&'static str),
    /// A link does not verify under the previous epoch's group key.
    #[error(
        "the succession from epoch {epoch} ({previous}) is not signed by that epoch's group key"
    )]
    BadSignature {
        /// The epoch that supposedly signed it.
        epoch: usize,
        /// Its network id.
        previous: Digest,
    },
    /// A link's first period is not after its predecessor's.
    #[error("the succession from epoch {epoch} starts at period {first}, not after period {after}")]
    NotForward {
        /// The epoch that hands over.
        epoch: usize,
        /// The succession's first period.
        first: u64,
        /// The handing epoch's own first period.
        after: u64,
    },
    /// Two different validly signed successions of one epoch: its members signed both, which
    /// honest members never do (§22.7). Both are evidence.
    #[error("fork: epoch {epoch} ({previous}) has two validly signed successors")]
    Fork {
        /// The epoch.
        epoch: usize,
        /// Its network id.
        previous: Digest,
        /// The two successions.
        successors: Box<[SignedSuccession; 2]>,
    },
    /// Links that do not continue the chain from the genesis.
    #[error("{0} succession(s) do not continue the chain from the genesis bundle")]
    Unlinked(usize),
    /// A statement's network is not an epoch of the chain.
    #[error("statement is for network {0}, which is not an epoch of the chain")]
    UnknownNetwork(Digest),
    /// A statement of one epoch for a period another epoch decides.
    #[error(
        "period {period} is decided by epoch {owner}, but the statement is from epoch {signer}"
    )]
    NotItsPeriod {
        /// The statement's period.
        period: u64,
        /// The epoch that decides it.
        owner: usize,
        /// The epoch whose network the statement names.
        signer: usize,
    },
    /// The statement failed its epoch's checks.
    #[error(transparent)]
    Statement(#[from] VerifyError),
}

impl Chain {
    /// The chain that is just the genesis.
    pub fn genesis(bundle: TrustBundle) -> Self {
        Self {
            epochs: vec![Epoch {
                index: 0,
                first_period: Period(0),
                end: None,
                bundle,
            }],
        }
    }

    /// Follows `links` (in any order) from `genesis`: each link must be signed by the group key
    /// of the epoch it names as `previous`, start after that epoch's own first period, and be
    /// well-shaped. Every link must be on the chain; two different signed successors of one
    /// epoch are a fork.
    ///
    /// # Errors
    /// The first [`ChainError`] found.
    pub fn follow(genesis: TrustBundle, links: &[SignedSuccession]) -> Result<Self, ChainError> {
        if links.len() > MAX_CHAIN_LINKS {
            return Err(ChainError::TooLong(links.len()));
        }
        let mut chain = Self::genesis(genesis);
        let mut by_previous: BTreeMap<Digest, Vec<&SignedSuccession>> = BTreeMap::new();
        for link in links {
            by_previous
                .entry(link.succession.previous)
                .or_default()
                .push(link);
        }
        let mut used = 0;
        loop {
            let last = chain.last();
            let Some(candidates) = by_previous.remove(&last.bundle.network_id) else {
                break;
            };
            let mut valid: Vec<&SignedSuccession> = Vec::new();
            for link in candidates {
                used += 1;
                chain.check_link(link)?;
                if !valid.iter().any(|v| v.succession == link.succession) {
                    valid.push(link);
                }
            }
            if let [a, b, ..] = valid[..] {
                return Err(ChainError::Fork {
                    epoch: last.index,
                    previous: last.bundle.network_id,
                    successors: Box::new([a.clone(), b.clone()]),
                });
            }
            chain.push(&valid[0].succession);
        }
        if used != links.len() {
            return Err(ChainError::Unlinked(links.len() - used));
        }
        Ok(chain)
    }

    /// Checks `link` as the successor of the chain's last epoch (signature, shape, order).
    ///
    /// # Errors
    /// Why it is not.
    pub fn check_link(&self, link: &SignedSuccession) -> Result<(), ChainError> {
        let last = self.last();
        let s = &link.succession;
        if s.previous != last.bundle.network_id {
            return Err(ChainError::Unlinked(1));
        }
        let key = last
            .bundle
            .group_key
            .verifying_key()
            .map_err(|_| ChainError::Malformed("group key"))?;
        verify_strict(&key, &s.signing_bytes(), &link.signature).map_err(|_| {
            ChainError::BadSignature {
                epoch: last.index,
                previous: s.previous,
            }
        })?;
        s.check_shape()?;
        if last.index > 0 && s.first_period <= last.first_period {
            return Err(ChainError::NotForward {
                epoch: last.index,
                first: s.first_period.0,
                after: last.first_period.0,
            });
        }
        if self
            .epochs
            .iter()
            .any(|e| e.bundle.network_id == s.network_id)
        {
            return Err(ChainError::Malformed("an epoch's network appears twice"));
        }
        Ok(())
    }

    fn push(&mut self, s: &Succession) {
        let index = self.epochs.len();
        if let Some(last) = self.epochs.last_mut() {
            last.end = Some(s.first_period);
        }
        self.epochs.push(Epoch {
            index,
            first_period: s.first_period,
            end: None,
            bundle: s.bundle(),
        });
    }

    /// The epochs, genesis first.
    pub fn epochs(&self) -> &[Epoch] {
        &self.epochs
    }

    /// The newest epoch.
    pub fn last(&self) -> &Epoch {
        self.epochs.last().expect("a chain has its genesis")
    }

    /// The epoch that decides `period`.
    pub fn epoch_for(&self, period: Period) -> &Epoch {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.first_period <= period)
            .unwrap_or(&self.epochs[0])
    }

    /// The epoch whose network is `network_id`.
    pub fn epoch_of(&self, network_id: &Digest) -> Option<&Epoch> {
        self.epochs
            .iter()
            .find(|e| &e.bundle.network_id == network_id)
    }

    /// Checks a statement under the epoch that decides its period (and only that one).
    ///
    /// # Errors
    /// [`ChainError::UnknownNetwork`], [`ChainError::NotItsPeriod`], or the epoch's
    /// [`VerifyError`].
    pub fn verify_statement(&self, signed: &SignedStatement) -> Result<Verified, ChainError> {
        let epoch = self.epoch_for_statement(signed)?;
        Ok(verify_statement(signed, &epoch.bundle)?)
    }

    /// The epoch a statement must verify under: the one that names its network, provided it
    /// decides the statement's period.
    ///
    /// # Errors
    /// [`ChainError::UnknownNetwork`] or [`ChainError::NotItsPeriod`].
    pub fn epoch_for_statement(&self, signed: &SignedStatement) -> Result<&Epoch, ChainError> {
        let st = &signed.statement;
        let signer = self
            .epoch_of(&st.network_id)
            .ok_or(ChainError::UnknownNetwork(st.network_id))?;
        let period = st.slot.period;
        if !signer.decides(period) {
            return Err(ChainError::NotItsPeriod {
                period: period.0,
                owner: self.epoch_for(period).index,
                signer: signer.index,
            });
        }
        Ok(signer)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::crypto::SecretKey;
    use crate::fixtures::{Testnet, TestnetSpec};

    /// An epoch whose group key is an ordinary Ed25519 key (a FROST aggregate is an ordinary
    /// signature; the chain does not care how it was made).
    struct Toy {
        net: Arc<Network>,
        key: SecretKey,
    }

    impl Toy {
        fn new(n: usize, seed: u64) -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut spec = TestnetSpec::new(n, 1, 1_000_000);
            spec.name = format!("epoch-{seed}");
            let tn = Testnet::generate(&spec, &mut rng, |k| k.to_hex());
            let net = Network::new(tn.roster).expect("roster");
            Self {
                net,
                key: SecretKey::generate(&mut rng),
            }
        }

        fn bundle(&self) -> TrustBundle {
            TrustBundle::new(&self.net, self.key.public())
        }

        /// This epoch hands over to `next` at `first`.
        fn hand_to(&self, next: &Toy, first: u64) -> SignedSuccession {
            let succession =
                Succession::new(self.net.id(), Period(first), &next.net, next.key.public());
            let signature = self.key.sign(&succession.signing_bytes());
            SignedSuccession {
                succession,
                signature,
            }
        }
    }

    #[test]
    fn a_chain_assigns_each_period_to_exactly_one_epoch() {
        let (e0, e1, e2) = (Toy::new(5, 1), Toy::new(6, 2), Toy::new(5, 3));
        let links = [e1.hand_to(&e2, 40), e0.hand_to(&e1, 10)];
        let chain = Chain::follow(e0.bundle(), &links).expect("a valid chain");
        assert_eq!(chain.epochs().len(), 3);
        for (period, epoch) in [(0, 0), (9, 0), (10, 1), (39, 1), (40, 2), (1000, 2)] {
            let owners: Vec<usize> = chain
                .epochs()
                .iter()
                .filter(|e| e.decides(Period(period)))
                .map(|e| e.index)
                .collect();
            assert_eq!(owners, vec![epoch], "period {period}");
            assert_eq!(chain.epoch_for(Period(period)).index, epoch);
        }
        assert_eq!(chain.last().bundle, e2.bundle());
    }

    #[test]
    fn the_fixed_layout_puts_what_a_verifier_trusts_at_fixed_offsets() {
        let (e0, e1) = (Toy::new(4, 1), Toy::new(4, 2));
        let s = e0.hand_to(&e1, 7).succession;
        let bytes = s.signing_bytes();
        let body = &bytes[SUCCESSION_TAG.len() + 2 + 32..];
        assert_eq!(&bytes[SUCCESSION_TAG.len() + 2..][..32], &e0.net.id().0);
        assert_eq!(&body[..32], &e0.net.id().0);
        assert_eq!(&body[32..40], &7u64.to_le_bytes());
        assert_eq!(&body[40..72], &e1.key.public().0);
        assert_eq!(&body[72..104], &e1.net.id().0);
    }

    #[test]
    fn a_forged_or_reordered_or_forked_chain_is_refused() {
        let (e0, e1, e2) = (Toy::new(4, 1), Toy::new(4, 2), Toy::new(4, 3));
        // Signed by the wrong epoch.
        let mut forged = e0.hand_to(&e1, 5);
        forged.signature = e1.key.sign(&forged.succession.signing_bytes());
        assert!(matches!(
            Chain::follow(e0.bundle(), &[forged]),
            Err(ChainError::BadSignature { epoch: 0, .. })
        ));
        // A field changed after signing.
        let mut edited = e0.hand_to(&e1, 5);
        edited.succession.first_period = Period(6);
        assert!(matches!(
            Chain::follow(e0.bundle(), &[edited]),
            Err(ChainError::BadSignature { .. })
        ));
        // Backwards in time.
        let links = [e0.hand_to(&e1, 10), e1.hand_to(&e2, 10)];
        assert!(matches!(
            Chain::follow(e0.bundle(), &links),
            Err(ChainError::NotForward { epoch: 1, .. })
        ));
        // Two successors of epoch 0.
        let links = [e0.hand_to(&e1, 10), e0.hand_to(&e2, 10)];
        match Chain::follow(e0.bundle(), &links) {
            Err(ChainError::Fork {
                epoch, successors, ..
            }) => {
                assert_eq!(epoch, 0);
                assert_ne!(successors[0], successors[1]);
            }
            other => panic!("expected a fork, got {other:?}"),
        }
        // The same link twice is not a fork.
        let link = e0.hand_to(&e1, 10);
        assert!(Chain::follow(e0.bundle(), &[link.clone(), link]).is_ok());
        // A link that continues nothing on the chain.
        assert_eq!(
            Chain::follow(e0.bundle(), &[e1.hand_to(&e2, 10)]),
            Err(ChainError::Unlinked(1))
        );
    }

    #[test]
    fn a_succession_that_breaks_the_quorum_rule_is_refused() {
        let (e0, e1) = (Toy::new(4, 1), Toy::new(4, 2));
        let mut s = Succession::new(e0.net.id(), Period(3), &e1.net, e1.key.public());
        s.threshold = 2; // 3·2 ≤ 2·4
        let signature = e0.key.sign(&s.signing_bytes());
        assert_eq!(
            Chain::follow(
                e0.bundle(),
                &[SignedSuccession {
                    succession: s,
                    signature
                }]
            ),
            Err(ChainError::Malformed("threshold breaks the quorum rule"))
        );
    }
}
