//! Distributed key generation: FROST's Pedersen DKG (`frost_ed25519::keys::dkg`) as a state
//! machine, with broadcast consistency and named culprits; plus a trusted dealer for tests.
//!
//! Phases (each bounded by `schedule.dkg_phase_timeout_ms`):
//! 1. **Round 1.** Every member broadcasts its round-1 package, signed with its roster key.
//!    Two different signed packages from one member are proof of equivocation: abort, naming it.
//! 2. **Echo.** Holding all n packages, a member broadcasts the digest of each. A member whose
//!    view differs sends its copy of the disputed package to the echoer, so an equivocator is
//!    proven (and named) by its own two signatures; an echoer that claimed a package nobody can
//!    produce is named when the phase times out.
//! 3. **Round 2.** Only once every echo matches does a member run `part2` (which checks every
//!    proof of knowledge) and send each member its share, signed, directly.
//! 4. **Confirm.** After `part3` (which checks every share against its commitment) a member
//!    stores its key share and broadcasts the group key. A bad share is answered with a
//!    complaint that reveals the signed share, so every member can check who lied.
//!    The ceremony completes when all n confirmations carry the same public key package.
//!
//! Secrets (round-1 and round-2 secret packages, received shares) live only in this machine's
//! memory and are zeroized on drop; a member restarted mid-ceremony aborts it cleanly and a new
//! ceremony (a higher number) can start.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use frost_ed25519::keys::{KeyPackage, PublicKeyPackage, SecretShare, dkg};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crypto::{Digest, Frost, PublicKey, SecretKey};
use crate::roster::{MemberIndex, Network};
use crate::time::Instant;

mod message;
mod zero_share;

pub use message::{
    Ceremony, DkgBody, DkgFailure, DkgMessage, DkgOffence, RevealedShare, confirmations_prove,
    confirmations_prove_as, confirmed, confirms,
};

/// A member's long-lived FROST key material. Zeroized on drop; serialized only into its owner's
/// key file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMaterial {
    /// This member's secret share and the group's verifying data.
    pub key_package: KeyPackage,
    /// Every member's verifying share and the group key.
    pub public: PublicKeyPackage,
}

impl KeyMaterial {
    /// The group's Ed25519 public key.
    pub fn group_key(&self) -> PublicKey {
        let bytes = self
            .public
            .verifying_key()
            .serialize()
            .expect("a valid group key serializes");
        PublicKey(bytes.try_into().expect("an Ed25519 key is 32 bytes"))
    }

    /// Digest of the public key package (every member must hold the same).
    pub fn public_digest(&self) -> Digest {
        Frost::new(self.public.clone()).digest("accord/public-key-package/v1")
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyMaterial(group_key={}, secret share redacted)",
            self.group_key()
        )
    }
}

/// Keys from a trusted dealer, one per member in roster order. For tests and demos only: the
/// dealer sees every share.
///
/// # Errors
/// When frost rejects the parameters.
pub fn deal(
    net: &Network,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<KeyMaterial>, frost_ed25519::Error> {
    let ids: Vec<_> = net.members().map(MemberIndex::identifier).collect();
    let (shares, public) = frost_ed25519::keys::generate_with_dealer(
        net.n() as u16,
        net.t() as u16,
        frost_ed25519::keys::IdentifierList::Custom(&ids),
        rng,
    )?;
    net.members()
        .map(|m| {
            let share = shares
                .get(&m.identifier())
                .ok_or(frost_ed25519::Error::UnknownIdentifier)?;
            Ok(KeyMaterial {
                key_package: KeyPackage::try_from(share.clone())?,
                public: public.clone(),
            })
        })
        .collect()
}

/// What the machine asks its driver to do.
#[derive(Debug)]
pub enum DkgOutput {
    /// Send to every other member.
    Broadcast(DkgMessage),
    /// Send to one member.
    Send(MemberIndex, DkgMessage),
    /// The ceremony produced this member's key (store it before sending anything else).
    Key(Box<KeyMaterial>),
    /// Every member confirmed the same group key; the signed confirmations prove it to a member
    /// that restarts before it saw them all.
    Complete {
        /// The group key.
        group_key: PublicKey,
        /// Every member's signed confirmation.
        confirmations: Vec<DkgMessage>,
    },
    /// The ceremony aborted.
    Aborted(DkgFailure),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Round1,
    Echo,
    Round2,
    Confirm,
    Done,
    Aborted,
}

/// One member's side of one DKG ceremony.
pub struct DkgMachine {
    net: Arc<Network>,
    me: MemberIndex,
    ceremony: u32,
    phase: Phase,
    deadline: Instant,
    round1_secret: Option<dkg::round1::SecretPackage>,
    round2_secret: Option<dkg::round2::SecretPackage>,
    round1: BTreeMap<MemberIndex, DkgMessage>,
    echoes: BTreeMap<MemberIndex, Vec<Digest>>,
    my_echo: Vec<Digest>,
    relayed: BTreeSet<(MemberIndex, MemberIndex)>,
    disputes: BTreeSet<MemberIndex>,
    round2: BTreeMap<MemberIndex, DkgMessage>,
    sent: Vec<DkgMessage>,
    confirms: BTreeMap<MemberIndex, DkgMessage>,
    result: Option<KeyMaterial>,
    mode: Mode,
}

/// What a ceremony makes: a new group key, or new shares of the key it refreshes.
enum Mode {
    Dkg,
    /// The member's current key, whose share the refresh adds to.
    Refresh(Arc<KeyMaterial>),
}

impl fmt::Debug for DkgMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DkgMachine(ceremony={}, me={}, phase={:?})",
            self.ceremony, self.me, self.phase
        )
    }
}

impl DkgMachine {
    /// Starts ceremony `ceremony` for member `me`: generates and broadcasts the round-1 package.
    pub fn start(
        net: Arc<Network>,
        me: MemberIndex,
        identity: &SecretKey,
        ceremony: u32,
        now: Instant,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (Self, Vec<DkgOutput>) {
        Self::start_with(Mode::Dkg, net, me, identity, ceremony, now, rng)
    }

    /// Starts refresh ceremony `ceremony` of `current` (this member's confirmed key): the same
    /// phases as a DKG, over polynomials with a zero constant term, so the group key stays and
    /// every share changes (frost `keys::refresh::refresh_dkg_*`).
    pub fn start_refresh(
        net: Arc<Network>,
        me: MemberIndex,
        identity: &SecretKey,
        ceremony: u32,
        current: Arc<KeyMaterial>,
        now: Instant,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (Self, Vec<DkgOutput>) {
        Self::start_with(
            Mode::Refresh(current),
            net,
            me,
            identity,
            ceremony,
            now,
            rng,
        )
    }

    fn start_with(
        mode: Mode,
        net: Arc<Network>,
        me: MemberIndex,
        identity: &SecretKey,
        ceremony: u32,
        now: Instant,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (Self, Vec<DkgOutput>) {
        let deadline = now.saturating_add(core::time::Duration::from_millis(
            net.schedule().dkg_phase_timeout_ms,
        ));
        let mut machine = Self {
            net: net.clone(),
            me,
            ceremony,
            phase: Phase::Round1,
            deadline,
            round1_secret: None,
            round2_secret: None,
            round1: BTreeMap::new(),
            echoes: BTreeMap::new(),
            my_echo: Vec::new(),
            relayed: BTreeSet::new(),
            disputes: BTreeSet::new(),
            round2: BTreeMap::new(),
            sent: Vec::new(),
            confirms: BTreeMap::new(),
            result: None,
            mode,
        };
        let mut out = Vec::new();
        // Round 1, Step 1-3: "Every participant P_i samples t random values ... computes a public
        // commitment ... and a proof of knowledge".
        // A refresh: "the same, with a_{i0} = 0" (frost `refresh_dkg_part1`).
        let (n, t) = (net.n() as u16, net.t() as u16);
        let part1 = match machine.mode {
            Mode::Dkg => dkg::part1(me.identifier(), n, t, &mut *rng),
            Mode::Refresh(_) => {
                frost_ed25519::keys::refresh::refresh_dkg_part1(me.identifier(), n, t, &mut *rng)
            }
        };
        match part1 {
            Ok((secret, package)) => {
                machine.round1_secret = Some(secret);
                let msg = machine.sign(identity, None, DkgBody::Round1(Frost::new(package)));
                machine.round1.insert(me, msg.clone());
                out.push(DkgOutput::Broadcast(msg));
            }
            Err(_) => machine.abort(Vec::new(), &mut out),
        }
        (machine, out)
    }

    /// The ceremony number.
    pub fn ceremony(&self) -> u32 {
        self.ceremony
    }

    /// The ceremony's kind.
    pub fn kind(&self) -> Ceremony {
        match self.mode {
            Mode::Dkg => Ceremony::Dkg,
            Mode::Refresh(_) => Ceremony::Refresh,
        }
    }

    /// Signs a message of this ceremony as this member.
    fn sign(&self, identity: &SecretKey, to: Option<MemberIndex>, body: DkgBody) -> DkgMessage {
        DkgMessage::new_as(
            self.kind(),
            &self.net,
            identity,
            self.ceremony,
            self.me,
            to,
            body,
        )
    }

    /// When the current phase times out, unless the ceremony is over.
    pub fn deadline(&self) -> Option<Instant> {
        matches!(
            self.phase,
            Phase::Round1 | Phase::Echo | Phase::Round2 | Phase::Confirm
        )
        .then_some(self.deadline)
    }

    /// Whether the ceremony is over (complete or aborted).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Aborted)
    }

    /// Everything this member has sent so far that `member` should have: its round-1 package,
    /// echo, the round-2 package for `member` and its confirmation. Sent again when a connection
    /// to `member` (re)opens, so a member that subscribed late or lost a message catches up;
    /// receivers drop duplicates.
    pub fn messages_for(&self, member: MemberIndex) -> Vec<DkgMessage> {
        if self.is_finished() {
            return Vec::new();
        }
        let mut out: Vec<DkgMessage> = self.round1.get(&self.me).cloned().into_iter().collect();
        out.extend(
            self.sent
                .iter()
                .filter(|m| m.recipient.is_none_or(|r| r == member))
                .cloned(),
        );
        out.extend(self.confirms.get(&self.me).cloned());
        out
    }

    /// A short name of the current phase, for status.
    pub fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::Round1 => "round1",
            Phase::Echo => "echo",
            Phase::Round2 => "round2",
            Phase::Confirm => "confirm",
            Phase::Done => "done",
            Phase::Aborted => "aborted",
        }
    }

    /// Handles a message from the authenticated member `from`.
    pub fn handle(
        &mut self,
        from: MemberIndex,
        msg: DkgMessage,
        now: Instant,
        identity: &SecretKey,
    ) -> Vec<DkgOutput> {
        let mut out = Vec::new();
        if self.is_finished() || msg.ceremony != self.ceremony {
            return out;
        }
        if !msg.verify_as(self.kind(), &self.net) {
            // Blame follows the connection: `from` delivered a message that is not validly signed.
            if from == msg.sender {
                self.abort(vec![(from, DkgOffence::Malformed)], &mut out);
            }
            return out;
        }
        // Only round-1 packages (as proof) and confirmations may be relayed; everything else
        // comes from its author.
        if from != msg.sender && !matches!(msg.body, DkgBody::Round1(_) | DkgBody::Confirm { .. }) {
            return out;
        }
        if msg.recipient.is_some_and(|r| r != self.me) {
            return out;
        }
        match msg.body.clone() {
            DkgBody::Round1(package) => self.on_round1(msg, &package, identity, now, &mut out),
            DkgBody::Echo(digests) => {
                if digests.len() == self.net.n() {
                    self.echoes.entry(msg.sender).or_insert(digests);
                } else {
                    self.abort(vec![(msg.sender, DkgOffence::Malformed)], &mut out);
                }
                self.progress(identity, now, &mut out);
            }
            DkgBody::Round2(_) => {
                if msg.recipient == Some(self.me) {
                    self.round2.entry(msg.sender).or_insert(msg);
                }
                self.progress(identity, now, &mut out);
            }
            DkgBody::Complaint(revealed) => {
                let inner = revealed.message(self.ceremony, msg.sender);
                self.on_complaint(msg.sender, &inner, &mut out);
            }
            DkgBody::Confirm { .. } => {
                self.confirms.entry(msg.sender).or_insert(msg);
                self.progress(identity, now, &mut out);
            }
            // The engine acts on withdrawals (`engine/refresh.rs`); the phases time out anyway.
            DkgBody::Withdraw => {}
        }
        out
    }

    /// Aborts the ceremony without blaming anyone: a member withdrew from it (refresh), so it
    /// cannot complete.
    pub fn withdrawn(&mut self) -> Vec<DkgOutput> {
        let mut out = Vec::new();
        self.abort(Vec::new(), &mut out);
        out
    }

    /// Aborts the ceremony if its phase deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<DkgOutput> {
        let mut out = Vec::new();
        if self.is_finished() || now < self.deadline {
            return out;
        }
        let missing = |have: &dyn Fn(MemberIndex) -> bool| -> Vec<(MemberIndex, DkgOffence)> {
            self.net
                .members()
                .filter(|m| !have(*m))
                .map(|m| (m, DkgOffence::Timeout))
                .collect()
        };
        let culprits = match self.phase {
            Phase::Round1 => missing(&|m| self.round1.contains_key(&m)),
            Phase::Echo if !self.disputes.is_empty() => self
                .disputes
                .iter()
                .map(|m| (*m, DkgOffence::UnbackedEcho))
                .collect(),
            Phase::Echo => missing(&|m| self.echoes.contains_key(&m)),
            Phase::Round2 => missing(&|m| m == self.me || self.round2.contains_key(&m)),
            Phase::Confirm => missing(&|m| self.confirms.contains_key(&m)),
            Phase::Done | Phase::Aborted => Vec::new(),
        };
        self.abort(culprits, &mut out);
        out
    }

    fn on_round1(
        &mut self,
        msg: DkgMessage,
        package: &Frost<dkg::round1::Package>,
        identity: &SecretKey,
        now: Instant,
        out: &mut Vec<DkgOutput>,
    ) {
        let sender = msg.sender;
        if let Some(existing) = self.round1.get(&sender) {
            if existing.digest() != msg.digest() {
                // Two packages signed by the same member: undeniable equivocation. Pass the other
                // one on so every member sees the proof.
                out.push(DkgOutput::Broadcast(existing.clone()));
                out.push(DkgOutput::Broadcast(msg));
                self.abort(vec![(sender, DkgOffence::Equivocation)], out);
            }
            return;
        }
        let coefficients = package
            .commitment()
            .serialize()
            .map(|c| c.len())
            .unwrap_or(0);
        let want = match self.mode {
            Mode::Dkg => self.net.t(),
            Mode::Refresh(_) => self.net.t() - 1,
        };
        if coefficients != want {
            self.abort(vec![(sender, DkgOffence::WrongCommitmentLength)], out);
            return;
        }
        self.round1.insert(sender, msg);
        self.progress(identity, now, out);
    }

    fn on_complaint(
        &mut self,
        complainer: MemberIndex,
        inner: &DkgMessage,
        out: &mut Vec<DkgOutput>,
    ) {
        let accused = inner.sender;
        let DkgBody::Round2(share) = &inner.body else {
            self.abort(vec![(complainer, DkgOffence::Malformed)], out);
            return;
        };
        if !inner.verify_as(self.kind(), &self.net)
            || inner.recipient != Some(complainer)
            || inner.ceremony != self.ceremony
        {
            self.abort(vec![(complainer, DkgOffence::FalseComplaint)], out);
            return;
        }
        let Some(DkgBody::Round1(commitment)) = self.round1.get(&accused).map(|m| &m.body) else {
            // We cannot judge without the accused's commitment; the ceremony cannot succeed anyway.
            self.abort(Vec::new(), out);
            return;
        };
        let valid = match self.mode {
            Mode::Dkg => SecretShare::new(
                complainer.identifier(),
                *share.signing_share(),
                commitment.commitment().clone(),
            )
            .verify()
            .is_ok(),
            Mode::Refresh(_) => zero_share::valid(complainer, share, commitment),
        };
        let culprit = if !valid {
            (accused, DkgOffence::InvalidShare)
        } else {
            (complainer, DkgOffence::FalseComplaint)
        };
        self.abort(vec![culprit], out);
    }

    fn progress(&mut self, identity: &SecretKey, now: Instant, out: &mut Vec<DkgOutput>) {
        let n = self.net.n();
        let timeout = core::time::Duration::from_millis(self.net.schedule().dkg_phase_timeout_ms);
        if self.phase == Phase::Round1 && self.round1.len() == n {
            self.my_echo = self
                .net
                .members()
                .map(|m| self.round1[&m].digest())
                .collect();
            let echo = self.sign(identity, None, DkgBody::Echo(self.my_echo.clone()));
            self.echoes.insert(self.me, self.my_echo.clone());
            self.sent.push(echo.clone());
            out.push(DkgOutput::Broadcast(echo));
            self.phase = Phase::Echo;
            self.deadline = now.saturating_add(timeout);
        }
        if self.phase == Phase::Echo {
            // Answer every mismatching echo with our copy of the disputed package.
            for (echoer, digests) in &self.echoes {
                for (i, (theirs, ours)) in digests.iter().zip(&self.my_echo).enumerate() {
                    let sender = MemberIndex(i as u16);
                    if theirs != ours {
                        self.disputes.insert(*echoer);
                        if self.relayed.insert((*echoer, sender)) {
                            out.push(DkgOutput::Send(*echoer, self.round1[&sender].clone()));
                        }
                    }
                }
            }
            if self.echoes.len() == n && self.disputes.is_empty() {
                self.start_round2(identity, now, out);
            }
        }
        if self.phase == Phase::Round2 && self.round2.len() == n - 1 {
            self.finish_round2(identity, now, out);
        }
        if self.phase == Phase::Confirm && self.confirms.len() == n {
            let mine = confirmed(&self.confirms[&self.me]);
            let differ: Vec<_> = self
                .confirms
                .iter()
                .filter(|(_, c)| confirmed(c) != mine)
                .map(|(m, _)| (*m, DkgOffence::ConfirmMismatch))
                .collect();
            if let (true, Some((group_key, _))) = (differ.is_empty(), mine) {
                self.phase = Phase::Done;
                out.push(DkgOutput::Complete {
                    group_key,
                    confirmations: self.confirms.values().cloned().collect(),
                });
            } else {
                self.abort(differ, out);
            }
        }
    }

    fn others_round1(&self) -> BTreeMap<frost_ed25519::Identifier, dkg::round1::Package> {
        self.round1
            .iter()
            .filter(|(m, _)| **m != self.me)
            .filter_map(|(m, msg)| match &msg.body {
                DkgBody::Round1(p) => Some((m.identifier(), (**p).clone())),
                _ => None,
            })
            .collect()
    }

    fn start_round2(&mut self, identity: &SecretKey, now: Instant, out: &mut Vec<DkgOutput>) {
        let Some(secret) = self.round1_secret.take() else {
            self.abort(Vec::new(), out);
            return;
        };
        // Round 1, Step 5 (proofs of knowledge) and Round 2, Step 1 (shares for each member).
        let part2 = match self.mode {
            Mode::Dkg => dkg::part2(secret, &self.others_round1()),
            // frost does not check refresh proofs of knowledge: the constant term is fixed to
            // zero by every receiver, so there is no rogue key to guard against.
            Mode::Refresh(_) => {
                frost_ed25519::keys::refresh::refresh_dkg_part2(secret, &self.others_round1())
            }
        };
        match part2 {
            Ok((secret2, packages)) => {
                self.round2_secret = Some(secret2);
                for m in self.net.members().filter(|m| *m != self.me) {
                    if let Some(p) = packages.get(&m.identifier()) {
                        let msg =
                            self.sign(identity, Some(m), DkgBody::Round2(Frost::new(p.clone())));
                        self.sent.push(msg.clone());
                        out.push(DkgOutput::Send(m, msg));
                    }
                }
                self.phase = Phase::Round2;
                self.deadline = now.saturating_add(core::time::Duration::from_millis(
                    self.net.schedule().dkg_phase_timeout_ms,
                ));
            }
            Err(frost_ed25519::Error::InvalidProofOfKnowledge { culprit }) => {
                let culprits = MemberIndex::from_identifier(&culprit, self.net.n())
                    .map(|m| (m, DkgOffence::InvalidProofOfKnowledge));
                self.abort(culprits.into_iter().collect(), out);
            }
            Err(_) => self.abort(Vec::new(), out),
        }
    }

    fn finish_round2(&mut self, identity: &SecretKey, now: Instant, out: &mut Vec<DkgOutput>) {
        let Some(secret2) = self.round2_secret.take() else {
            self.abort(Vec::new(), out);
            return;
        };
        let received: BTreeMap<_, _> = self
            .round2
            .iter()
            .filter_map(|(m, msg)| match &msg.body {
                DkgBody::Round2(p) => Some((m.identifier(), (**p).clone())),
                _ => None,
            })
            .collect();
        // Round 2, Step 2: "Each P_i verifies their shares ... aborting if the check fails."
        let part3 = match &self.mode {
            Mode::Dkg => dkg::part3(&secret2, &self.others_round1(), &received),
            Mode::Refresh(current) => self.refresh_part3(&secret2, &received, current),
        };
        match part3 {
            Ok((key_package, public)) => {
                let material = KeyMaterial {
                    key_package,
                    public,
                };
                let confirm = (material.group_key(), material.public_digest());
                out.push(DkgOutput::Key(Box::new(material.clone())));
                self.result = Some(material);
                let msg = self.sign(
                    identity,
                    None,
                    DkgBody::Confirm {
                        group_key: confirm.0,
                        public_package: confirm.1,
                    },
                );
                self.confirms.insert(self.me, msg.clone());
                out.push(DkgOutput::Broadcast(msg));
                self.phase = Phase::Confirm;
                self.deadline = now.saturating_add(core::time::Duration::from_millis(
                    self.net.schedule().dkg_phase_timeout_ms,
                ));
                self.progress(identity, now, out);
            }
            Err(frost_ed25519::Error::InvalidSecretShare {
                culprit: Some(culprit),
            }) => {
                if let Some(accused) = MemberIndex::from_identifier(&culprit, self.net.n()) {
                    if let Some(evidence) = self.round2.get(&accused).and_then(RevealedShare::of) {
                        let complaint =
                            self.sign(identity, None, DkgBody::Complaint(Box::new(evidence)));
                        out.push(DkgOutput::Broadcast(complaint));
                    }
                    self.abort(vec![(accused, DkgOffence::InvalidShare)], out);
                } else {
                    self.abort(Vec::new(), out);
                }
            }
            Err(_) => self.abort(Vec::new(), out),
        }
    }

    /// Round 2, Step 2 of a refresh: checks every share (naming the first bad one, as `part3`
    /// does for a DKG), then adds the zero shares to the current share (frost
    /// `refresh_dkg_shares`). The group key cannot change: every receiver fixes the constant
    /// terms to zero.
    fn refresh_part3(
        &self,
        secret2: &dkg::round2::SecretPackage,
        received: &BTreeMap<frost_ed25519::Identifier, dkg::round2::Package>,
        current: &KeyMaterial,
    ) -> Result<(KeyPackage, PublicKeyPackage), frost_ed25519::Error> {
        for (m, msg) in &self.round2 {
            if let (DkgBody::Round2(share), Some(DkgBody::Round1(package))) =
                (&msg.body, self.round1.get(m).map(|r| &r.body))
                && !zero_share::valid(self.me, share, package)
            {
                return Err(frost_ed25519::Error::InvalidSecretShare {
                    culprit: Some(m.identifier()),
                });
            }
        }
        let (key_package, public) = frost_ed25519::keys::refresh::refresh_dkg_shares(
            secret2,
            &self.others_round1(),
            received,
            current.public.clone(),
            current.key_package.clone(),
        )?;
        if public.verifying_key() != current.public.verifying_key() {
            return Err(frost_ed25519::Error::IncorrectPackage);
        }
        Ok((key_package, public))
    }

    fn abort(&mut self, mut culprits: Vec<(MemberIndex, DkgOffence)>, out: &mut Vec<DkgOutput>) {
        if self.is_finished() {
            return;
        }
        culprits.sort_by_key(|(m, _)| *m);
        culprits.dedup_by_key(|(m, _)| *m);
        self.phase = Phase::Aborted;
        self.round1_secret = None;
        self.round2_secret = None;
        self.round2.clear();
        self.sent.clear();
        self.result = None;
        out.push(DkgOutput::Aborted(DkgFailure {
            ceremony: self.ceremony,
            culprits,
        }));
    }
}
