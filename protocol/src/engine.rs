//! The engine: one member's whole protocol behind one input/output API.
//!
//! The node and the simulator drive the same engine. Call order (as in quinn-proto and str0m):
//!
//! 1. feed an input: [`Engine::submit`], [`Engine::handle_message`], [`Engine::handle_timeout`],
//!    [`Engine::peer_connected`] or [`Engine::start_dkg`], passing the current [`Instant`] and, where
//!    needed, a `CryptoRng`;
//! 2. drain [`Engine::poll_output`] until it returns `None`, performing each output **in order**:
//!    a [`Output::Persist`] or [`Output::StoreKey`] must be durable before any later `Send` or
//!    `Broadcast` leaves the process (that is how "a share never leaves before the protection
//!    record is on disk" and "acknowledged only once durable" are met);
//! 3. call [`Engine::handle_timeout`] once `now` reaches [`Engine::poll_timeout`].
//!
//! The engine never reads a clock or the OS RNG and never iterates a hash map, so a run is a
//! function of its inputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crypto::{Digest, Frost, PublicKey, SecretKey, verify_many, verify_strict};
use crate::dkg::{
    self, DkgBody, DkgFailure, DkgMachine, DkgMessage, DkgOffence, DkgOutput, KeyMaterial,
};
use crate::evidence::{Evidence, EvidenceError};
use crate::message::{
    Accept, Message, Missing, Observation, Proposal, ProposalId, Share, SignRequest,
    SignedObservation, SyncRequest,
};
use crate::policy;
use crate::roster::{LabIndex, MemberIndex, Network, Period};
use crate::statement::{CoSigned, Statement, Unit, signing_message};
use crate::time::Instant;

/// Most attestations kept for one slot (two already prove a conflict).
pub const MAX_ATTESTATIONS_PER_SLOT: usize = 4;
/// Most co-signed units sent in answer to one sync request.
pub const MAX_SYNC_UNITS: usize = 64;
/// DKG message digests remembered for deduplication, per member.
const MAX_DKG_SEEN_PER_MEMBER: usize = 64;
/// How far ahead of the last ceremony a member joins a ceremony another member started.
const MAX_CEREMONY_JUMP: u32 = 16;
/// Signer states kept per unit (older proposals' nonces are dropped).
const SIGNER_SLOTS_PER_UNIT: usize = 4;

/// Engine tuning that does not affect agreement between members.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The first period this member observes (earlier periods are left to sync).
    pub first_period: Period,
    /// Most re-proposals a coordinator makes within one attempt.
    pub max_revisions: u16,
    /// Decided periods kept in memory (older ones live only in storage).
    pub retain_periods: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            first_period: Period(0),
            max_revisions: 8,
            retain_periods: 4,
        }
    }
}

/// Something the driver must do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send to one member over an authenticated channel.
    Send {
        /// The member.
        to: MemberIndex,
        /// The message.
        message: Message,
    },
    /// Send to every member (gossip).
    Broadcast(Message),
    /// Make this record durable before performing any later output.
    Persist(Record),
    /// Store this member's new key share in its key file before performing any later output.
    StoreKey(Box<KeyMaterial>),
    /// Something happened (for metrics, logs, the API).
    Event(Event),
}

/// What the engine persists. Replaying a member's records into [`Engine::restore`] rebuilds
/// everything it must remember across a crash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// An evidence item; `admitted_at` is `None` for items learned from others after the close.
    Evidence {
        /// The item.
        evidence: Arc<Evidence>,
        /// When this member admitted it before the close, if it did.
        admitted_at: Option<Instant>,
    },
    /// This member's own observation for a period (never to be contradicted after a restart).
    Observation(Arc<SignedObservation>),
    /// A proposal this member accepted, with the observations that vouched for its items.
    Accepted(Arc<AcceptedRecord>),
    /// A signature share this member released (the verdict-protection record).
    Signed(SignedRecord),
    /// A co-signed unit.
    CoSigned(Arc<CoSigned>),
    /// This member started DKG ceremony `ceremony`.
    DkgStarted {
        /// The ceremony.
        ceremony: u32,
    },
    /// Ceremony `ceremony` completed with `group_key`.
    DkgComplete {
        /// The ceremony.
        ceremony: u32,
        /// The group key.
        group_key: PublicKey,
        /// Every member's signed confirmation (served to members that restarted before they saw
        /// them all).
        confirmations: Vec<DkgMessage>,
    },
}

/// A proposal this member accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedRecord {
    /// Which proposal.
    pub id: ProposalId,
    /// Its digest.
    pub proposal: Digest,
    /// Its statements.
    pub statements: Vec<Statement>,
    /// Observations that vouched for its items.
    pub observations: Vec<Arc<SignedObservation>>,
}

/// One released signature share: the commitment it used is bound to this package forever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// The proposal.
    pub id: ProposalId,
    /// Digest of this member's commitments used.
    pub commitment: Digest,
    /// Digest of the signing package signed.
    pub package: Digest,
    /// The share released (re-sent, never recomputed, if the same package is asked again).
    pub share: Frost<frost::round2::SignatureShare>,
}

/// Something worth telling the operator or the metrics.
#[derive(Clone, Debug)]
pub enum Event {
    /// An evidence item was admitted.
    Admitted {
        /// Its digest.
        digest: Digest,
        /// Its slot's period.
        period: Period,
        /// Its slot's lab.
        lab: LabIndex,
    },
    /// This member closed a period and signed its observation.
    Observed {
        /// The period.
        period: Period,
        /// Items it vouches for.
        items: usize,
    },
    /// This member, as coordinator, proposed.
    Proposed {
        /// The proposal.
        id: ProposalId,
    },
    /// This member, as coordinator, started a signing session.
    SessionStarted {
        /// The proposal.
        id: ProposalId,
        /// The session number.
        session: u32,
        /// The signers.
        signers: Vec<MemberIndex>,
    },
    /// A unit was co-signed (or a larger statement for it arrived).
    Decided(Arc<CoSigned>),
    /// A validly co-signed unit that conflicts with the one held (neither evidence set contains
    /// the other): invariant 3 is broken, so more than f members are faulty.
    Conflict(Arc<CoSigned>),
    /// A member misbehaved, provably or as seen on its authenticated connection.
    Culprit {
        /// The member.
        member: MemberIndex,
        /// What it did.
        offence: Offence,
    },
    /// This member refused to sign something (it is never a signing oracle).
    Refused {
        /// The member that asked.
        from: MemberIndex,
        /// Why.
        reason: MessageError,
    },
    /// A DKG ceremony started here.
    DkgStarted {
        /// The ceremony.
        ceremony: u32,
    },
    /// Every member confirmed the same group key.
    DkgComplete {
        /// The group key.
        group_key: PublicKey,
    },
    /// A DKG ceremony aborted.
    DkgAborted(DkgFailure),
}

/// What a member did wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Offence {
    /// A signature share that failed FROST verification.
    #[error("invalid signature share")]
    InvalidShare,
    /// Two different signed observations for one period.
    #[error("equivocating observations")]
    EquivocatingObservation,
    /// Two different proposals under one proposal id.
    #[error("equivocating proposals")]
    EquivocatingProposal,
    /// A proposal that breaks the proposal rule.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// A badly signed observation.
    #[error("badly signed observation")]
    BadObservation,
    /// Misbehaviour in key generation.
    #[error("DKG: {0}")]
    Dkg(DkgOffence),
}

/// Why a message was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The sender is not in the roster.
    #[error("sender is not a member")]
    NotAMember,
    /// The message names another author than the connection it came from.
    #[error("message author does not match the authenticated sender")]
    WrongSender,
    /// The evidence is invalid.
    #[error("evidence: {0}")]
    Evidence(#[from] EvidenceError),
    /// A signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Structurally invalid content.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// Only the attempt's coordinator may send this.
    #[error("sender is not the coordinator of this attempt")]
    NotCoordinator,
    /// A proposal that breaks the proposal rule.
    #[error("proposal refused: {0}")]
    Proposal(String),
    /// A signing request that this member must not answer.
    #[error("signing refused: {0}")]
    SigningRefused(&'static str),
    /// No key yet.
    #[error("this member has no key share yet")]
    NoKey,
}

/// The engine's verdict on one incoming message; the node reports it to gossipsub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// New and valid: forward it.
    Accepted,
    /// Already known: do not forward.
    Duplicate,
    /// Not for now (late, stale, or about something already decided): do not forward, no blame.
    Ignored,
    /// Invalid: do not forward; the sender misbehaved.
    Rejected(MessageError),
}

/// A summary for `status` and `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// This member.
    pub member: MemberIndex,
    /// The group key, once known.
    pub group_key: Option<PublicKey>,
    /// DKG phase, if a ceremony is in progress or ended here.
    pub dkg_phase: Option<String>,
    /// The next period whose slots this member will close.
    pub next_close: Period,
    /// Closed units still without a co-signed statement.
    pub pending_units: usize,
    /// Units co-signed (held in memory).
    pub decided_units: usize,
    /// Evidence items held in memory.
    pub evidence_items: usize,
}

/// Nonces that can be used exactly once: `sign` consumes them.
struct SingleUseNonces(frost::round1::SigningNonces);

impl SingleUseNonces {
    fn sign(
        self,
        package: &frost::SigningPackage,
        key: &frost::keys::KeyPackage,
    ) -> Result<frost::round2::SignatureShare, frost::Error> {
        frost::round2::sign(package, &self.0, key)
        // `self` drops here; frost's nonces zeroize on drop.
    }
}

struct StoredEvidence {
    evidence: Arc<Evidence>,
    lab: LabIndex,
    period: Period,
    admitted_before_close: bool,
}

struct ObservationEntry {
    signed: Arc<SignedObservation>,
    verified: bool,
}

#[derive(Default)]
struct PeriodState {
    observations: BTreeMap<MemberIndex, Vec<ObservationEntry>>,
    closed: bool,
}

struct SignerSlot {
    message: Arc<Vec<u8>>,
    nonces: Option<SingleUseNonces>,
    commitments: frost::round1::SigningCommitments,
}

struct Session {
    package: frost::SigningPackage,
    started: Instant,
    signers: BTreeSet<MemberIndex>,
    shares: BTreeMap<frost::Identifier, frost::round2::SignatureShare>,
}

struct Coordinator {
    attempt: u32,
    revision: u16,
    proposal: Option<(Arc<Proposal>, Digest, Arc<Vec<u8>>)>,
    ready: BTreeMap<MemberIndex, frost::round1::SigningCommitments>,
    busy: BTreeSet<MemberIndex>,
    excluded: BTreeSet<MemberIndex>,
    sessions: BTreeMap<u32, Session>,
    next_session: u32,
}

#[derive(Default)]
struct UnitState {
    attempt: Option<u32>,
    locked: BTreeSet<Digest>,
    seen: BTreeMap<ProposalId, Digest>,
    signer: BTreeMap<ProposalId, SignerSlot>,
    coordinator: Option<Coordinator>,
}

/// One member's protocol state machine.
pub struct Engine {
    net: Arc<Network>,
    me: MemberIndex,
    identity: SecretKey,
    config: EngineConfig,
    keys: Option<Arc<KeyMaterial>>,
    unconfirmed_keys: Option<Arc<KeyMaterial>>,
    pending_confirms: BTreeMap<MemberIndex, DkgMessage>,
    /// The signed confirmations of the ceremony that produced `keys`, for peers to recover.
    confirmations: Option<Arc<[DkgMessage]>>,
    dkg: Option<DkgMachine>,
    dkg_seen: BTreeSet<Digest>,
    last_ceremony: Option<u32>,
    evidence: BTreeMap<Digest, StoredEvidence>,
    slots: BTreeMap<(Period, LabIndex), BTreeSet<Digest>>,
    periods: BTreeMap<Period, PeriodState>,
    units: BTreeMap<Unit, UnitState>,
    decided: BTreeMap<Unit, Arc<CoSigned>>,
    protection: BTreeMap<Digest, (Digest, Frost<frost::round2::SignatureShare>, Period)>,
    next_close: Period,
    outputs: VecDeque<Output>,
    loopback: VecDeque<Message>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({}, next_close={})", self.me, self.next_close)
    }
}

impl Engine {
    /// A fresh engine for member `me`. `keys` are its FROST key material if it already has them
    /// (from a completed ceremony or a dealer).
    pub fn new(
        net: Arc<Network>,
        me: MemberIndex,
        identity: SecretKey,
        keys: Option<KeyMaterial>,
        config: EngineConfig,
    ) -> Self {
        assert!(
            net.is_member(me),
            "the engine's member must be in the roster"
        );
        let next_close = config.first_period;
        Self {
            net,
            me,
            identity,
            config,
            keys: keys.map(Arc::new),
            unconfirmed_keys: None,
            pending_confirms: BTreeMap::new(),
            confirmations: None,
            dkg: None,
            dkg_seen: BTreeSet::new(),
            last_ceremony: None,
            evidence: BTreeMap::new(),
            slots: BTreeMap::new(),
            periods: BTreeMap::new(),
            units: BTreeMap::new(),
            decided: BTreeMap::new(),
            protection: BTreeMap::new(),
            next_close,
            outputs: VecDeque::new(),
            loopback: VecDeque::new(),
        }
    }

    /// Rebuilds an engine after a restart from its persisted records (in the order written) and
    /// its key file. Signing nonces are never persisted, so none survive: a commitment issued
    /// before the crash can never be signed with.
    pub fn restore(
        net: Arc<Network>,
        me: MemberIndex,
        identity: SecretKey,
        keys: Option<KeyMaterial>,
        config: EngineConfig,
        records: impl IntoIterator<Item = Record>,
    ) -> Self {
        let mut engine = Self::new(net, me, identity, None, config);
        let mut dkg_started = false;
        let mut confirmed: Option<(PublicKey, Vec<DkgMessage>)> = None;
        for record in records {
            match record {
                Record::Evidence {
                    evidence,
                    admitted_at,
                } => {
                    let digest = evidence.digest();
                    if let Some(lab) = engine.net.lab_by_id(evidence.lab()) {
                        engine.store_evidence(digest, evidence, lab, admitted_at.is_some());
                    }
                }
                Record::Observation(own) => {
                    let period = own.observation.period;
                    engine.insert_observation(own, true);
                    engine.periods.entry(period).or_default().closed = true;
                    if period >= engine.next_close {
                        engine.next_close = Period(period.0 + 1);
                    }
                }
                Record::Accepted(rec) => {
                    for o in &rec.observations {
                        engine.insert_observation(o.clone(), false);
                    }
                    let state = engine.units.entry(rec.id.unit).or_default();
                    state.seen.insert(rec.id, rec.proposal);
                    state.locked.extend(
                        rec.statements
                            .iter()
                            .flat_map(|s| s.evidence.iter().copied()),
                    );
                }
                Record::Signed(rec) => {
                    engine.protection.insert(
                        rec.commitment,
                        (rec.package, rec.share, rec.id.unit.period()),
                    );
                }
                Record::CoSigned(c) => {
                    engine.record_decided(c);
                }
                Record::DkgStarted { ceremony } => {
                    dkg_started = true;
                    engine.last_ceremony =
                        Some(engine.last_ceremony.map_or(ceremony, |c| c.max(ceremony)));
                }
                Record::DkgComplete {
                    group_key,
                    confirmations,
                    ..
                } => confirmed = Some((group_key, confirmations)),
            }
        }
        if let Some(k) = keys {
            let k = Arc::new(k);
            match confirmed {
                Some((group_key, confirmations)) if group_key == k.group_key() => {
                    engine.keys = Some(k);
                    engine.confirmations = Some(confirmations.into());
                }
                _ if !dkg_started => engine.keys = Some(k),
                _ => engine.unconfirmed_keys = Some(k),
            }
        }
        // Units of periods this member closed but has not seen decided: it must still take part
        // in them (and ask peers for them) after the restart.
        let closed: Vec<Period> = engine
            .periods
            .iter()
            .filter(|(_, p)| p.closed)
            .map(|(p, _)| *p)
            .collect();
        for period in closed {
            for unit in Unit::all_for(&engine.net, period) {
                if !engine.decided.contains_key(&unit) {
                    engine.units.entry(unit).or_default();
                }
            }
        }
        engine.outputs.clear();
        engine
    }

    /// This member.
    pub fn me(&self) -> MemberIndex {
        self.me
    }

    /// The highest DKG ceremony number this member has started or joined.
    pub fn last_ceremony(&self) -> Option<u32> {
        self.last_ceremony
    }

    /// The network.
    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    /// The group key, once the key is confirmed.
    pub fn group_key(&self) -> Option<PublicKey> {
        self.keys.as_ref().map(|k| k.group_key())
    }

    /// The largest co-signed statement set per unit held in memory.
    pub fn decided(&self) -> impl Iterator<Item = &Arc<CoSigned>> {
        self.decided.values()
    }

    /// An evidence item held in memory.
    pub fn evidence(&self, digest: &Digest) -> Option<&Arc<Evidence>> {
        self.evidence.get(digest).map(|e| &e.evidence)
    }

    /// A summary of this member's state.
    pub fn status(&self) -> Status {
        Status {
            member: self.me,
            group_key: self.group_key(),
            dkg_phase: self.dkg.as_ref().map(|d| d.phase_name().to_string()),
            next_close: self.next_close,
            pending_units: self
                .units
                .keys()
                .filter(|u| !self.decided.contains_key(u) && self.is_closed(u.period()))
                .count(),
            decided_units: self.decided.len(),
            evidence_items: self.evidence.len(),
        }
    }

    /// The next output to perform, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let schedule = self.net.schedule();
        let mut next = Some(schedule.close(self.next_close));
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if let Some(d) = self.dkg.as_ref().and_then(DkgMachine::deadline) {
            consider(d);
        }
        if self.keys.is_some() {
            for (unit, state) in &self.units {
                if self.decided.contains_key(unit) || !self.is_closed(unit.period()) {
                    continue;
                }
                let attempt = state.attempt.map_or(0, |a| a.saturating_add(1));
                consider(schedule.attempt_start(unit.period(), attempt));
                if let Some(due) = state
                    .coordinator
                    .as_ref()
                    .and_then(|c| c.spare_session_due(self.net.t(), self.session_patience()))
                {
                    consider(due);
                }
            }
        }
        next
    }

    /// A submission from a lab or an operator (HTTP or CLI). On `Ok`, the outputs already queued
    /// include the `Persist` of the item: acknowledge the submitter only after performing it.
    ///
    /// # Errors
    /// Why the item is refused; nothing is stored then.
    pub fn submit(&mut self, now: Instant, evidence: Evidence) -> Result<Digest, EvidenceError> {
        let evidence = Arc::new(evidence);
        let (digest, new) = self.admit(now, evidence.clone())?;
        if new {
            self.outputs
                .push_back(Output::Broadcast(Message::Evidence(evidence)));
        }
        Ok(digest)
    }

    /// A message from member `from`, as authenticated by the transport.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: MemberIndex,
        message: Message,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        if !self.net.is_member(from) {
            return Delivery::Rejected(MessageError::NotAMember);
        }
        if from == self.me {
            return Delivery::Duplicate;
        }
        let delivery = self.dispatch(now, from, message, rng);
        if let Delivery::Rejected(reason) = &delivery
            && matches!(
                reason,
                MessageError::SigningRefused(_) | MessageError::Proposal(_)
            )
        {
            self.event(Event::Refused {
                from,
                reason: reason.clone(),
            });
        }
        self.drain_loopback(now, rng);
        delivery
    }

    /// Advances timers: closes periods, rotates coordinators, times out DKG phases.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut (impl RngCore + CryptoRng)) {
        if let Some(dkg) = self.dkg.as_mut() {
            let out = dkg.handle_timeout(now);
            self.apply_dkg(out);
        }
        let schedule = self.net.schedule().clone();
        while schedule.close(self.next_close) <= now {
            let period = self.next_close;
            self.observe(period);
            self.next_close = Period(period.0 + 1);
        }
        if self.keys.is_some() {
            let units: Vec<Unit> = self
                .units
                .keys()
                .copied()
                .filter(|u| !self.decided.contains_key(u) && self.is_closed(u.period()))
                .collect();
            for unit in units {
                if now < schedule.attempt_start(unit.period(), 0) {
                    continue;
                }
                let attempt = schedule.attempt_at(unit.period(), now);
                let coordinating = self.coordinator_of(&unit, attempt) == self.me;
                let state = self.units.entry(unit).or_default();
                if state.attempt.is_some_and(|a| a >= attempt) {
                    continue;
                }
                state.attempt = Some(attempt);
                // Drop nonces of proposals from attempts long gone.
                state
                    .signer
                    .retain(|id, _| id.attempt.saturating_add(2) >= attempt);
                state.coordinator = None;
                if coordinating {
                    state.coordinator = Some(Coordinator::new(attempt));
                    self.try_propose(unit);
                }
            }
        }
        let coordinating: Vec<Unit> = self
            .units
            .iter()
            .filter(|(u, s)| s.coordinator.is_some() && !self.decided.contains_key(u))
            .map(|(u, _)| *u)
            .collect();
        for unit in coordinating {
            self.start_sessions(unit, now);
        }
        self.prune();
        self.drain_loopback(now, rng);
    }

    /// The transport connected to `member`: ask it for anything decided that this member lacks.
    pub fn peer_connected(&mut self, member: MemberIndex) {
        if member == self.me || !self.net.is_member(member) {
            return;
        }
        let resend = self
            .dkg
            .as_ref()
            .map(|d| d.messages_for(member))
            .unwrap_or_default();
        for m in resend {
            self.outputs.push_back(Output::Send {
                to: member,
                message: Message::Dkg(m),
            });
        }
        let request = self.sync_request();
        self.outputs.push_back(Output::Send {
            to: member,
            message: Message::SyncRequest(request),
        });
    }

    /// What to ask a peer for: results from the oldest undecided period on, and the DKG
    /// confirmations if this member holds a key it has not seen confirmed.
    fn sync_request(&self) -> SyncRequest {
        let from = self
            .units
            .keys()
            .filter(|u| !self.decided.contains_key(u))
            .map(Unit::period)
            .min()
            .unwrap_or(self.next_close)
            .min(self.next_close);
        SyncRequest {
            from,
            key_unconfirmed: self.unconfirmed_keys.is_some(),
        }
    }

    /// Starts DKG ceremony `ceremony` (every member must start the same number; members that
    /// receive round-1 packages of a newer ceremony join it automatically).
    ///
    /// # Errors
    /// When this member already has a key, or already took part in that ceremony.
    pub fn start_dkg(
        &mut self,
        now: Instant,
        ceremony: u32,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), DkgStartError> {
        if self.keys.is_some() {
            return Err(DkgStartError::HaveKey);
        }
        if self.last_ceremony.is_some_and(|c| c >= ceremony) {
            return Err(DkgStartError::CeremonyUsed {
                ceremony,
                last: self.last_ceremony.unwrap_or(0),
            });
        }
        self.last_ceremony = Some(ceremony);
        self.outputs
            .push_back(Output::Persist(Record::DkgStarted { ceremony }));
        self.event(Event::DkgStarted { ceremony });
        let (machine, out) = DkgMachine::start(
            self.net.clone(),
            self.me,
            &self.identity,
            ceremony,
            now,
            rng,
        );
        self.dkg = Some(machine);
        self.dkg_seen.clear();
        self.apply_dkg(out);
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Dispatch

    fn dispatch(
        &mut self,
        now: Instant,
        from: MemberIndex,
        message: Message,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        match message {
            Message::Evidence(ev) => match self.admit(now, ev) {
                Ok((_, true)) => Delivery::Accepted,
                Ok((_, false)) => Delivery::Duplicate,
                Err(
                    EvidenceError::Closed { .. }
                    | EvidenceError::Future { .. }
                    | EvidenceError::SlotFull(_),
                ) => Delivery::Ignored,
                Err(e) => Delivery::Rejected(e.into()),
            },
            Message::Observation(obs) => self.on_observation(now, from, obs),
            Message::Proposal(p) => self.on_proposal(now, from, p, rng),
            Message::Accept(a) => self.on_accept(now, from, a),
            Message::Missing(m) => self.on_missing(from, &m),
            Message::SignRequest(r) => self.on_sign_request(from, r, rng),
            Message::Share(s) => self.on_share(now, from, s),
            Message::CoSigned(c) => self.on_cosigned(c),
            Message::SyncRequest(r) => self.on_sync_request(from, &r),
            Message::Dkg(d) => self.on_dkg(now, from, d, rng),
        }
    }

    fn drain_loopback(&mut self, now: Instant, rng: &mut (impl RngCore + CryptoRng)) {
        while let Some(message) = self.loopback.pop_front() {
            let me = self.me;
            let delivery = self.dispatch(now, me, message, rng);
            if let Delivery::Rejected(reason) = delivery {
                self.event(Event::Refused { from: me, reason });
            }
        }
    }

    fn send(&mut self, to: MemberIndex, message: Message) {
        if to == self.me {
            self.loopback.push_back(message);
        } else {
            self.outputs.push_back(Output::Send { to, message });
        }
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn culprit(&mut self, member: MemberIndex, offence: Offence) {
        self.event(Event::Culprit { member, offence });
    }

    // ---------------------------------------------------------------------------------------
    // Evidence and observations

    /// Validates and stores an item received before its slot closed. Returns (digest, is new).
    fn admit(
        &mut self,
        now: Instant,
        evidence: Arc<Evidence>,
    ) -> Result<(Digest, bool), EvidenceError> {
        let digest = evidence.digest();
        if self.evidence.contains_key(&digest) {
            return Ok((digest, false));
        }
        let schedule = self.net.schedule();
        let period = evidence.period();
        let skew = core::time::Duration::from_millis(schedule.max_clock_skew_ms);
        let close = schedule.close(period);
        if now >= close || self.is_closed(period) {
            return Err(EvidenceError::Closed {
                period,
                closed_at: close,
            });
        }
        let start = schedule.start(period);
        if now.saturating_add(skew) < start {
            return Err(EvidenceError::Future {
                period,
                starts_at: start,
            });
        }
        if evidence.issued_at() > now.saturating_add(skew) {
            return Err(EvidenceError::IssuedInFuture {
                issued_at: evidence.issued_at(),
            });
        }
        if codec_len(&*evidence) > crate::evidence::MAX_EVIDENCE_BYTES {
            return Err(EvidenceError::TooLarge);
        }
        let lab = evidence.validate(&self.net)?;
        let slot = self.slots.get(&(period, lab));
        let in_slot = |pred: &dyn Fn(&Evidence) -> bool| {
            slot.map_or(0, |s| {
                s.iter()
                    .filter(|d| self.evidence.get(*d).is_some_and(|e| pred(&e.evidence)))
                    .count()
            })
        };
        match &*evidence {
            Evidence::Attestation { .. } => {
                let n = in_slot(&|e| e.is_attestation());
                if n >= MAX_ATTESTATIONS_PER_SLOT {
                    return Err(EvidenceError::SlotFull(n));
                }
            }
            Evidence::Report { report, .. } => {
                let inspector = report.inspector;
                if in_slot(
                    &|e| matches!(e, Evidence::Report { report: r, .. } if r.inspector == inspector),
                ) > 0
                {
                    return Err(EvidenceError::SlotFull(1));
                }
            }
        }
        self.store_evidence(digest, evidence.clone(), lab, true);
        self.outputs.push_back(Output::Persist(Record::Evidence {
            evidence,
            admitted_at: Some(now),
        }));
        self.event(Event::Admitted {
            digest,
            period,
            lab,
        });
        Ok((digest, true))
    }

    fn store_evidence(
        &mut self,
        digest: Digest,
        evidence: Arc<Evidence>,
        lab: LabIndex,
        admitted_before_close: bool,
    ) {
        let period = evidence.period();
        self.slots.entry((period, lab)).or_default().insert(digest);
        self.evidence.entry(digest).or_insert(StoredEvidence {
            evidence,
            lab,
            period,
            admitted_before_close,
        });
    }

    /// Stores an item learned from a proposal or a missing-items reply (already validated).
    fn learn_evidence(&mut self, evidence: &Arc<Evidence>, lab: LabIndex) {
        let digest = evidence.digest();
        if !self.evidence.contains_key(&digest) {
            self.store_evidence(digest, evidence.clone(), lab, false);
            self.outputs.push_back(Output::Persist(Record::Evidence {
                evidence: evidence.clone(),
                admitted_at: None,
            }));
        }
    }

    fn is_closed(&self, period: Period) -> bool {
        self.periods.get(&period).is_some_and(|p| p.closed)
    }

    /// Closes `period`: signs and broadcasts the observation of what was admitted before it.
    fn observe(&mut self, period: Period) {
        let state = self.periods.entry(period).or_default();
        if state.closed {
            return;
        }
        state.closed = true;
        let items: Vec<Digest> = self
            .net
            .labs()
            .filter_map(|lab| self.slots.get(&(period, lab)))
            .flatten()
            .filter(|d| {
                self.evidence
                    .get(*d)
                    .is_some_and(|e| e.admitted_before_close)
            })
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let observation = Observation {
            member: self.me,
            period,
            items,
        };
        let signature = self
            .identity
            .sign(&observation.signing_bytes(self.net.id()));
        let signed = Arc::new(SignedObservation {
            observation,
            signature,
        });
        let count = signed.observation.items.len();
        self.insert_observation(signed.clone(), true);
        self.outputs
            .push_back(Output::Persist(Record::Observation(signed.clone())));
        self.outputs
            .push_back(Output::Broadcast(Message::Observation(signed)));
        self.event(Event::Observed {
            period,
            items: count,
        });
        for unit in Unit::all_for(&self.net, period) {
            if !self.decided.contains_key(&unit) {
                self.units.entry(unit).or_default();
            }
        }
        self.start_early(period);
    }

    /// The first coordinator need not sit out the observation wait once every member's
    /// observation is in: nothing more can arrive that would change its proposal.
    fn start_early(&mut self, period: Period) {
        let complete = self
            .periods
            .get(&period)
            .is_some_and(|p| p.closed && p.observations.len() == self.net.n());
        if !complete || self.keys.is_none() {
            return;
        }
        for unit in Unit::all_for(&self.net, period) {
            if self.coordinator_of(&unit, 0) != self.me || self.decided.contains_key(&unit) {
                continue;
            }
            let state = self.units.entry(unit).or_default();
            if state.attempt.is_none() {
                state.attempt = Some(0);
                state.coordinator = Some(Coordinator::new(0));
                self.try_propose(unit);
            }
        }
    }

    /// Stores an observation; at most two different ones per member and period are kept (two
    /// are proof of equivocation once both verify). Returns whether it was new.
    fn insert_observation(&mut self, signed: Arc<SignedObservation>, verified: bool) -> bool {
        let period = signed.observation.period;
        let member = signed.observation.member;
        let entries = self
            .periods
            .entry(period)
            .or_default()
            .observations
            .entry(member)
            .or_default();
        if let Some(e) = entries.iter_mut().find(|e| e.signed == signed) {
            e.verified |= verified;
            return false;
        }
        if entries.len() >= 2 {
            return false;
        }
        entries.push(ObservationEntry { signed, verified });
        true
    }

    /// Stores an observation relayed by others (in a proposal or reply), strictly verified when
    /// `verified`; if it differs from one already held for that member and period, and both
    /// verify strictly, the member equivocated.
    fn note_observation(&mut self, signed: Arc<SignedObservation>, verified: bool) {
        let member = signed.observation.member;
        let period = signed.observation.period;
        let others: Vec<Arc<SignedObservation>> = self
            .periods
            .get(&period)
            .and_then(|p| p.observations.get(&member))
            .map(|v| {
                v.iter()
                    .filter(|e| e.signed != signed)
                    .map(|e| e.signed.clone())
                    .collect()
            })
            .unwrap_or_default();
        let fresh = self.insert_observation(signed.clone(), verified);
        if fresh
            && !others.is_empty()
            && (verified || self.verify_observation(&signed))
            && others.iter().any(|o| self.verify_observation(o))
        {
            self.culprit(member, Offence::EquivocatingObservation);
        }
    }

    /// Structure only (the signature is checked when the observation is used): a member, sorted
    /// distinct items, and a period this member still keeps state for, so stored observations
    /// stay bounded by (retained periods) × n × 2.
    fn observation_is_well_formed(&self, obs: &Observation) -> bool {
        let oldest = self
            .next_close
            .0
            .saturating_sub(self.config.retain_periods.saturating_add(1));
        self.net.is_member(obs.member)
            && obs.items.windows(2).all(|w| w[0] < w[1])
            && obs.period.0 <= self.next_close.0.saturating_add(2)
            && obs.period.0 >= oldest
    }

    fn verify_observation(&self, signed: &SignedObservation) -> bool {
        self.net
            .member_key(signed.observation.member)
            .is_some_and(|k| {
                verify_strict(
                    k,
                    &signed.observation.signing_bytes(self.net.id()),
                    &signed.signature,
                )
                .is_ok()
            })
    }

    fn on_observation(
        &mut self,
        now: Instant,
        from: MemberIndex,
        signed: Arc<SignedObservation>,
    ) -> Delivery {
        let _ = now;
        if signed.observation.member != from {
            return Delivery::Rejected(MessageError::WrongSender);
        }
        if !self.observation_is_well_formed(&signed.observation) {
            return Delivery::Rejected(MessageError::Malformed("observation"));
        }
        let period = signed.observation.period;
        let existing: Vec<Arc<SignedObservation>> = self
            .periods
            .get(&period)
            .and_then(|p| p.observations.get(&from))
            .map(|v| v.iter().map(|e| e.signed.clone()).collect())
            .unwrap_or_default();
        if existing.contains(&signed) {
            return Delivery::Duplicate;
        }
        // Observations are verified lazily (when they are used), except when a second one from
        // the same member arrives: then both are checked, and two valid ones convict.
        let mut verified = false;
        if let Some(first) = existing.first() {
            if !self.verify_observation(&signed) {
                return Delivery::Rejected(MessageError::BadSignature);
            }
            verified = true;
            if self.verify_observation(first) {
                self.culprit(from, Offence::EquivocatingObservation);
            }
        }
        if !self.insert_observation(signed, verified) {
            return Delivery::Ignored;
        }
        self.start_early(period);
        let units: Vec<Unit> = self
            .units
            .iter()
            .filter(|(u, s)| {
                u.period() == period && s.coordinator.as_ref().is_some_and(|c| c.proposal.is_none())
            })
            .map(|(u, _)| *u)
            .collect();
        for unit in units {
            self.try_propose(unit);
        }
        Delivery::Accepted
    }

    /// Verifies (strictly) every unverified stored observation of `period` that `filter`
    /// selects, dropping and blaming bad ones. Returns whether any was dropped.
    fn verify_stored(
        &mut self,
        period: Period,
        filter: impl Fn(&SignedObservation) -> bool,
    ) -> bool {
        let Some(state) = self.periods.get(&period) else {
            return false;
        };
        let mut bad = Vec::new();
        let mut good = Vec::new();
        for (member, entries) in &state.observations {
            for e in entries.iter().filter(|e| !e.verified && filter(&e.signed)) {
                if self.verify_observation(&e.signed) {
                    good.push(e.signed.clone());
                } else {
                    bad.push((*member, e.signed.clone()));
                }
            }
        }
        let state = self.periods.get_mut(&period).expect("checked above");
        for (member, signed) in &bad {
            if let Some(entries) = state.observations.get_mut(member) {
                entries.retain(|e| e.signed != *signed);
            }
        }
        for signed in good {
            if let Some(e) = state
                .observations
                .get_mut(&signed.observation.member)
                .and_then(|v| v.iter_mut().find(|e| e.signed == signed))
            {
                e.verified = true;
            }
        }
        let dropped = !bad.is_empty();
        for (member, _) in bad {
            self.culprit(member, Offence::BadObservation);
        }
        dropped
    }

    /// Members vouching for each item, counted over the stored observations of `period`.
    fn vouchers(&self, period: Period) -> BTreeMap<Digest, BTreeSet<MemberIndex>> {
        let mut out: BTreeMap<Digest, BTreeSet<MemberIndex>> = BTreeMap::new();
        if let Some(state) = self.periods.get(&period) {
            for (member, entries) in &state.observations {
                for e in entries {
                    for d in &e.signed.observation.items {
                        out.entry(*d).or_default().insert(*member);
                    }
                }
            }
        }
        out
    }

    // ---------------------------------------------------------------------------------------
    // Coordinator

    fn session_patience(&self) -> core::time::Duration {
        core::time::Duration::from_millis(self.net.schedule().attempt_timeout_ms / 4)
    }

    fn coordinator_of(&self, unit: &Unit, attempt: u32) -> MemberIndex {
        let base = match unit {
            Unit::Slot { period, lab } => period.0.wrapping_add(u64::from(lab.0)),
            Unit::Period(period) => period.0,
        };
        MemberIndex((base.wrapping_add(u64::from(attempt)) % self.net.n() as u64) as u16)
    }

    /// Builds (or rebuilds) this coordinator's proposal for `unit` and sends it if it changed.
    fn try_propose(&mut self, unit: Unit) {
        let Some(coord) = self.units.get(&unit).and_then(|s| s.coordinator.as_ref()) else {
            return;
        };
        let (attempt, revision, had) = (coord.attempt, coord.revision, coord.proposal.clone());
        if had.is_some() && revision >= self.config.max_revisions {
            return;
        }
        let Some((statements, evidence, observations)) = self.build_proposal(unit) else {
            return;
        };
        if let Some((old, _, _)) = &had
            && old.statements == statements
        {
            return;
        }
        let revision = if had.is_some() { revision + 1 } else { 0 };
        let proposal = Arc::new(Proposal {
            id: ProposalId {
                unit,
                attempt,
                revision,
            },
            statements,
            evidence,
            observations,
        });
        let digest = proposal.digest();
        let message = Arc::new(signing_message(self.net.id(), &unit, &proposal.statements));
        let coord = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.coordinator.as_mut())
            .expect("checked above");
        coord.revision = revision;
        coord.proposal = Some((proposal.clone(), digest, message));
        coord.ready.clear();
        coord.busy.clear();
        coord.sessions.clear();
        self.event(Event::Proposed { id: proposal.id });
        self.outputs
            .push_back(Output::Broadcast(Message::Proposal(proposal.clone())));
        self.loopback.push_back(Message::Proposal(proposal));
    }

    /// The statements for `unit` over every item vouched f + 1 times, with the bodies and a set
    /// of observations that proves the vouching. `None` until observations from t members are in.
    #[allow(clippy::type_complexity)]
    fn build_proposal(
        &mut self,
        unit: Unit,
    ) -> Option<(
        Vec<Statement>,
        Vec<Arc<Evidence>>,
        Vec<Arc<SignedObservation>>,
    )> {
        let period = unit.period();
        let have = self
            .periods
            .get(&period)
            .map_or(0, |p| p.observations.len());
        if have < self.net.t() {
            return None;
        }
        let labs = unit.labs(&self.net);
        let quorum = self.net.vouch_quorum();
        loop {
            let vouchers = self.vouchers(period);
            let mut chosen: BTreeMap<LabIndex, Vec<Digest>> =
                labs.iter().map(|l| (*l, Vec::new())).collect();
            for (d, members) in &vouchers {
                if members.len() < quorum {
                    continue;
                }
                if let Some(e) = self.evidence.get(d)
                    && e.period == period
                    && let Some(v) = chosen.get_mut(&e.lab)
                {
                    v.push(*d);
                }
            }
            // Pick observations, in member order, until every chosen item has f + 1 vouchers.
            let mut need: BTreeMap<Digest, usize> =
                chosen.values().flatten().map(|d| (*d, quorum)).collect();
            let mut observations: Vec<Arc<SignedObservation>> = Vec::new();
            let state = self.periods.get(&period)?;
            for entries in state.observations.values() {
                // A member vouches for the union of its observations (two, if it equivocated),
                // exactly as `vouchers` counts them; include every one of its observations that
                // helps, and count the member once per item.
                let helpful: Vec<&ObservationEntry> = entries
                    .iter()
                    .filter(|e| {
                        e.signed
                            .observation
                            .items
                            .iter()
                            .any(|d| need.get(d).is_some_and(|n| *n > 0))
                    })
                    .collect();
                let vouched: BTreeSet<Digest> = helpful
                    .iter()
                    .flat_map(|e| e.signed.observation.items.iter().copied())
                    .collect();
                for d in &vouched {
                    if let Some(n) = need.get_mut(d) {
                        *n = n.saturating_sub(1);
                    }
                }
                observations.extend(helpful.iter().map(|e| e.signed.clone()));
            }
            // Check every chosen observation strictly (once per observation: the store remembers),
            // dropping and blaming bad ones. An honest proposal then carries only signatures
            // that any member's batch check accepts.
            if self.verify_stored(period, |o| {
                observations.iter().any(|c| std::ptr::eq(&**c, o))
            }) {
                continue;
            }
            let mut statements = Vec::with_capacity(labs.len());
            let mut bodies = Vec::new();
            for lab in &labs {
                let mut digests = chosen.remove(lab).unwrap_or_default();
                digests.sort();
                let items: Vec<(Digest, &Evidence)> = digests
                    .iter()
                    .map(|d| (*d, &*self.evidence[d].evidence))
                    .collect();
                let verdict = policy::evaluate(&self.net.roster().policy, &items);
                bodies.extend(digests.iter().map(|d| self.evidence[d].evidence.clone()));
                statements.push(self.statement(*lab, period, digests, verdict));
            }
            return Some((statements, bodies, observations));
        }
    }

    fn statement(
        &self,
        lab: LabIndex,
        period: Period,
        evidence: Vec<Digest>,
        verdict: policy::Verdict,
    ) -> Statement {
        Statement {
            network_id: *self.net.id(),
            policy_hash: *self.net.policy_hash(),
            slot: crate::statement::Slot {
                lab: self.net.lab_id(lab).to_string(),
                period,
            },
            evidence,
            verdict,
        }
    }

    /// Batch-verifies observations; returns the indexes of bad ones.
    fn batch_check(&self, observations: &[Arc<SignedObservation>]) -> Vec<usize> {
        let messages: Vec<Vec<u8>> = observations
            .iter()
            .map(|o| o.observation.signing_bytes(self.net.id()))
            .collect();
        let mut items = Vec::with_capacity(observations.len());
        let mut unknown = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            match self.net.member_key(o.observation.member) {
                Some(k) => items.push((k, messages[i].as_slice(), &o.signature)),
                None => unknown.push(i),
            }
        }
        if !unknown.is_empty() {
            return unknown;
        }
        verify_many(&items)
    }

    fn on_accept(&mut self, now: Instant, from: MemberIndex, accept: Accept) -> Delivery {
        let unit = accept.id.unit;
        let t = self.net.t();
        let Some(coord) = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.coordinator.as_mut())
        else {
            return Delivery::Ignored;
        };
        let Some((proposal, digest, _)) = &coord.proposal else {
            return Delivery::Ignored;
        };
        if proposal.id != accept.id || *digest != accept.proposal {
            return Delivery::Ignored;
        }
        if coord.excluded.contains(&from) || coord.busy.contains(&from) {
            return Delivery::Ignored;
        }
        coord.ready.insert(from, accept.commitments.into_inner());
        if coord.ready.len() >= t {
            self.start_sessions(unit, now);
        }
        Delivery::Accepted
    }

    /// ROAST: whenever t signers are ready (each with one unused commitment), start a session.
    fn start_sessions(&mut self, unit: Unit, now: Instant) {
        let t = self.net.t();
        let patience = self.session_patience();
        let mut requests = Vec::new();
        let mut started = Vec::new();
        {
            let Some(coord) = self
                .units
                .get_mut(&unit)
                .and_then(|s| s.coordinator.as_mut())
            else {
                return;
            };
            let Some((proposal, _, message)) = coord.proposal.clone() else {
                return;
            };
            while coord.ready.len() >= t && coord.may_start(now, patience) {
                let signers: Vec<MemberIndex> = coord.ready.keys().take(t).copied().collect();
                let mut commitments = BTreeMap::new();
                for s in &signers {
                    let c = coord.ready.remove(s).expect("taken from ready");
                    commitments.insert(s.identifier(), c);
                    coord.busy.insert(*s);
                }
                // Serialized once here; every request shares the bytes.
                let package = Frost::new(frost::SigningPackage::new(commitments, &message));
                let session = coord.next_session;
                coord.next_session += 1;
                for s in &signers {
                    requests.push((
                        *s,
                        SignRequest {
                            id: proposal.id,
                            session,
                            package: package.clone(),
                        },
                    ));
                }
                coord.sessions.insert(
                    session,
                    Session {
                        package: package.into_inner(),
                        started: now,
                        signers: signers.iter().copied().collect(),
                        shares: BTreeMap::new(),
                    },
                );
                started.push(Event::SessionStarted {
                    id: proposal.id,
                    session,
                    signers,
                });
            }
        }
        for e in started {
            self.event(e);
        }
        for (to, req) in requests {
            self.send(to, Message::SignRequest(req));
        }
    }

    fn on_share(&mut self, now: Instant, from: MemberIndex, share: Share) -> Delivery {
        let unit = share.id.unit;
        let Some(keys) = self.keys.clone() else {
            return Delivery::Ignored;
        };
        let Some(coord) = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.coordinator.as_mut())
        else {
            return Delivery::Ignored;
        };
        let Some((proposal, _, _)) = &coord.proposal else {
            return Delivery::Ignored;
        };
        if proposal.id != share.id {
            return Delivery::Ignored;
        }
        let proposal = proposal.clone();
        let Some(session) = coord.sessions.get_mut(&share.session) else {
            return Delivery::Ignored;
        };
        // Blame follows the authenticated connection: the share is `from`'s, whatever it claims.
        if !session.signers.contains(&from) || session.shares.contains_key(&from.identifier()) {
            return Delivery::Ignored;
        }
        session
            .shares
            .insert(from.identifier(), share.share.into_inner());
        coord.busy.remove(&from);
        if !coord.excluded.contains(&from) {
            coord.ready.insert(from, share.next.into_inner());
        }
        if session.shares.len() < session.signers.len() {
            // ROAST: a signer that answered is ready again with its fresh commitment; whenever t
            // are ready, start another session, so one that stalls on a silent signer does not
            // hold up the unit.
            if coord.ready.len() >= self.net.t() {
                self.start_sessions(unit, now);
            }
            return Delivery::Accepted;
        }
        let session = coord.sessions.remove(&share.session).expect("present");
        match frost::aggregate_custom(
            &session.package,
            &session.shares,
            &keys.public,
            frost::CheaterDetection::AllCheaters,
        ) {
            Ok(signature) => {
                let bytes = signature
                    .serialize()
                    .expect("an aggregated signature serializes");
                let signature = crate::crypto::Signature(
                    bytes.try_into().expect("an Ed25519 signature is 64 bytes"),
                );
                let cosigned = Arc::new(CoSigned {
                    unit,
                    statements: proposal.statements.clone(),
                    signature,
                });
                // Persisted (inside `accept_cosigned`) before it is broadcast.
                if self.accept_cosigned(cosigned.clone()) {
                    self.outputs
                        .push_back(Output::Broadcast(Message::CoSigned(cosigned)));
                }
            }
            Err(frost::Error::InvalidSignatureShare { culprits }) => {
                let n = self.net.n();
                let culprits: Vec<MemberIndex> = culprits
                    .iter()
                    .filter_map(|id| MemberIndex::from_identifier(id, n))
                    .collect();
                if let Some(coord) = self
                    .units
                    .get_mut(&unit)
                    .and_then(|s| s.coordinator.as_mut())
                {
                    for c in &culprits {
                        coord.excluded.insert(*c);
                        coord.ready.remove(c);
                    }
                }
                for c in culprits {
                    self.culprit(c, Offence::InvalidShare);
                }
                self.start_sessions(unit, now);
            }
            Err(_) => self.start_sessions(unit, now),
        }
        Delivery::Accepted
    }

    fn on_missing(&mut self, from: MemberIndex, missing: &Missing) -> Delivery {
        let unit = missing.id.unit;
        let Some(coord) = self.units.get(&unit).and_then(|s| s.coordinator.as_ref()) else {
            return Delivery::Ignored;
        };
        if coord.attempt != missing.id.attempt {
            return Delivery::Ignored;
        }
        let period = unit.period();
        let labs = unit.labs(&self.net);
        if missing.evidence.len() > 4 * crate::roster::MAX_LABS
            || missing.observations.len() > 2 * self.net.n()
        {
            return Delivery::Rejected(MessageError::Malformed("oversized missing-items reply"));
        }
        for ev in &missing.evidence {
            if ev.period() != period {
                return Delivery::Rejected(MessageError::Malformed("evidence for another period"));
            }
            let digest = ev.digest();
            if self.evidence.contains_key(&digest) {
                continue;
            }
            match ev.validate(&self.net) {
                Ok(lab) if labs.contains(&lab) => self.learn_evidence(ev, lab),
                Ok(_) => {
                    return Delivery::Rejected(MessageError::Malformed(
                        "evidence for another slot",
                    ));
                }
                Err(e) => return Delivery::Rejected(e.into()),
            }
        }
        for o in &missing.observations {
            if o.observation.period != period || !self.observation_is_well_formed(&o.observation) {
                return Delivery::Rejected(MessageError::Malformed("observation"));
            }
            // A bad signature proves nothing about the member it names, and an honest member
            // relays only observations it verified strictly: the sender is at fault. Drop it
            // and keep the rest of the reply.
            if self.verify_observation(o) {
                self.note_observation(o.clone(), true);
            } else {
                self.culprit(from, Offence::BadObservation);
            }
        }
        self.try_propose(unit);
        Delivery::Accepted
    }

    // ---------------------------------------------------------------------------------------
    // Member (signer)

    fn on_proposal(
        &mut self,
        now: Instant,
        from: MemberIndex,
        proposal: Arc<Proposal>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let id = proposal.id;
        let unit = id.unit;
        if !unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(
                "unit does not fit the network's signing mode",
            ));
        }
        if from != self.coordinator_of(&unit, id.attempt) {
            return Delivery::Rejected(MessageError::NotCoordinator);
        }
        let Some(keys) = self.keys.clone() else {
            return Delivery::Ignored;
        };
        if self.decided.contains_key(&unit) {
            return Delivery::Ignored;
        }
        let schedule = self.net.schedule();
        let skew = core::time::Duration::from_millis(schedule.max_clock_skew_ms);
        if now.saturating_add(skew) < schedule.close(unit.period()) {
            return Delivery::Ignored;
        }
        let current = self.units.get(&unit).and_then(|s| s.attempt).unwrap_or(0);
        if id.attempt.saturating_add(1) < current || id.attempt > current.saturating_add(1) {
            return Delivery::Ignored;
        }
        let digest = proposal.digest();
        let state = self.units.entry(unit).or_default();
        match state.seen.get(&id) {
            Some(d) if *d == digest => return Delivery::Duplicate,
            Some(_) => {
                self.culprit(from, Offence::EquivocatingProposal);
                return Delivery::Rejected(MessageError::Proposal("equivocating proposal".into()));
            }
            None => {}
        }
        state.seen.insert(id, digest);
        match self.check_proposal(&proposal) {
            Ok(()) => {}
            Err(ProposalCheck::Invalid(reason)) => {
                self.culprit(from, Offence::InvalidProposal(reason.clone()));
                return Delivery::Rejected(MessageError::Proposal(reason));
            }
            Err(ProposalCheck::Missing(evidence, observations)) => {
                self.send(
                    from,
                    Message::Missing(Arc::new(Missing {
                        id,
                        evidence,
                        observations,
                    })),
                );
                return Delivery::Accepted;
            }
        };
        // Accept: remember what we accepted (the superset rule must survive a restart), then
        // commit to a fresh nonce.
        let labs = unit.labs(&self.net);
        for (ev, lab) in proposal
            .evidence
            .iter()
            .zip(proposal_labs(&self.net, &proposal))
        {
            if labs.contains(&lab) {
                self.learn_evidence(ev, lab);
            }
        }
        // Stored as unverified even when the batch check above covered them: a batch accepts
        // rare crafted signatures that strict verification refuses, and an observation this
        // member relays or proposes must pass the strict check every member applies.
        for o in &proposal.observations {
            self.note_observation(o.clone(), false);
        }
        let record = AcceptedRecord {
            id,
            proposal: digest,
            statements: proposal.statements.clone(),
            observations: proposal.observations.clone(),
        };
        self.outputs
            .push_back(Output::Persist(Record::Accepted(Arc::new(record))));
        let (nonces, commitments) = frost::round1::commit(keys.key_package.signing_share(), rng);
        let message = Arc::new(signing_message(self.net.id(), &unit, &proposal.statements));
        let state = self.units.entry(unit).or_default();
        state.locked.extend(
            proposal
                .statements
                .iter()
                .flat_map(|s| s.evidence.iter().copied()),
        );
        state.signer.insert(
            id,
            SignerSlot {
                message,
                nonces: Some(SingleUseNonces(nonces)),
                commitments,
            },
        );
        while state.signer.len() > SIGNER_SLOTS_PER_UNIT {
            state.signer.pop_first();
        }
        self.send(
            from,
            Message::Accept(Accept {
                id,
                proposal: digest,
                commitments: Frost::new(commitments),
            }),
        );
        Delivery::Accepted
    }

    /// The proposal rule. An honest member accepts only if every statement is for the unit's slot,
    /// every item is validly signed for it and vouched by f + 1 observations in the proposal, the
    /// verdict is the policy's, and nothing it knows to be vouched (or already accepted) is left
    /// out.
    fn check_proposal(&mut self, p: &Proposal) -> Result<(), ProposalCheck> {
        let unit = p.id.unit;
        let period = unit.period();
        let labs = unit.labs(&self.net);
        let n = self.net.n();
        let invalid = |s: &str| Err(ProposalCheck::Invalid(s.to_string()));
        if p.statements.len() != labs.len() {
            return invalid("wrong number of statements");
        }
        if p.observations.len() > 2 * n {
            return invalid("too many observations");
        }
        // Observations: well-formed, for this period, at most two per member; those vouching for
        // items this member did not admit in time are signature-checked below, as one batch.
        let mut per_member: BTreeMap<MemberIndex, usize> = BTreeMap::new();
        for o in &p.observations {
            if o.observation.period != period || !self.observation_is_well_formed(&o.observation) {
                return invalid("observation for another period or malformed");
            }
            let c = per_member.entry(o.observation.member).or_default();
            *c += 1;
            if *c > 2 {
                return invalid("more than two observations from one member");
            }
        }
        // Invariant 5 needs, for every item, an honest member that admitted it before the close.
        // For items this member admitted in time itself, that is this member; only the vouchers
        // of the other items need their signatures checked (as one batch).
        let unknown: BTreeSet<Digest> = p
            .statements
            .iter()
            .flat_map(|s| s.evidence.iter().copied())
            .filter(|d| {
                !self
                    .evidence
                    .get(d)
                    .is_some_and(|e| e.admitted_before_close)
            })
            .collect();
        let to_check: Vec<Arc<SignedObservation>> = p
            .observations
            .iter()
            .filter(|o| o.observation.items.iter().any(|d| unknown.contains(d)))
            .cloned()
            .collect();
        if !self.batch_check(&to_check).is_empty() {
            return invalid("badly signed observation");
        }
        let mut vouchers: BTreeMap<Digest, BTreeSet<MemberIndex>> = BTreeMap::new();
        for o in &p.observations {
            for d in &o.observation.items {
                vouchers.entry(*d).or_default().insert(o.observation.member);
            }
        }
        // Evidence: each body valid for one of the unit's slots; digests distinct.
        let mut bodies: BTreeMap<Digest, (&Arc<Evidence>, LabIndex)> = BTreeMap::new();
        for ev in &p.evidence {
            let digest = ev.digest();
            let lab = match self.evidence.get(&digest) {
                Some(known) => known.lab,
                None => match ev.validate(&self.net) {
                    Ok(lab) => lab,
                    Err(e) => return Err(ProposalCheck::Invalid(format!("evidence: {e}"))),
                },
            };
            if ev.period() != period || !labs.contains(&lab) {
                return invalid("evidence for another slot");
            }
            if bodies.insert(digest, (ev, lab)).is_some() {
                return invalid("duplicate evidence");
            }
        }
        let quorum = self.net.vouch_quorum();
        let mut referenced = 0;
        for (statement, lab) in p.statements.iter().zip(&labs) {
            if statement.network_id != *self.net.id()
                || statement.policy_hash != *self.net.policy_hash()
            {
                return invalid("wrong network or policy");
            }
            if statement.slot.period != period || statement.slot.lab != self.net.lab_id(*lab) {
                return invalid("statement for another slot");
            }
            if !statement.evidence_is_canonical() {
                return invalid("evidence not sorted and distinct");
            }
            let mut items = Vec::with_capacity(statement.evidence.len());
            for d in &statement.evidence {
                let Some((ev, l)) = bodies.get(d) else {
                    return invalid("statement names an item without its body");
                };
                if l != lab {
                    return invalid("item of another slot");
                }
                if vouchers.get(d).map_or(0, BTreeSet::len) < quorum {
                    return invalid("item not vouched by f + 1 observations");
                }
                items.push((*d, &***ev));
            }
            referenced += items.len();
            if policy::evaluate(&self.net.roster().policy, &items) != statement.verdict {
                return invalid("verdict is not the policy's");
            }
        }
        if referenced != bodies.len() {
            return invalid("evidence body not named by any statement");
        }
        // Superset: everything we know is vouched, or already accepted, must be in.
        let included: BTreeSet<Digest> = p
            .statements
            .iter()
            .flat_map(|s| s.evidence.iter().copied())
            .collect();
        let locked: BTreeSet<Digest> = self
            .units
            .get(&unit)
            .map(|s| s.locked.clone())
            .unwrap_or_default();
        // Only items this member holds for the unit's slots but the proposal leaves out can be
        // missing; in the common case there are none and nothing needs counting.
        let outside: BTreeSet<Digest> = labs
            .iter()
            .filter_map(|l| self.slots.get(&(period, *l)))
            .flatten()
            .chain(locked.iter())
            .filter(|d| !included.contains(*d) && self.evidence.contains_key(*d))
            .copied()
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        let candidates = |engine: &Self| -> Vec<Digest> {
            outside
                .iter()
                .filter(|d| {
                    if locked.contains(*d) {
                        return true;
                    }
                    let mut members: BTreeSet<MemberIndex> =
                        vouchers.get(*d).cloned().unwrap_or_default();
                    if let Some(state) = engine.periods.get(&period) {
                        for (m, entries) in &state.observations {
                            if entries.iter().any(|e| e.signed.vouches(d)) {
                                members.insert(*m);
                            }
                        }
                    }
                    members.len() >= quorum
                })
                .copied()
                .collect()
        };
        let first = candidates(self);
        if first.is_empty() {
            return Ok(());
        }
        // Before claiming items are missing, check the observations that vouch for them.
        let wanted: BTreeSet<Digest> = first.into_iter().collect();
        self.verify_stored(period, |o| {
            o.observation.items.iter().any(|d| wanted.contains(d))
        });
        let missing = candidates(self);
        if missing.is_empty() {
            return Ok(());
        }
        let evidence: Vec<Arc<Evidence>> = missing
            .iter()
            .filter_map(|d| self.evidence.get(d).map(|e| e.evidence.clone()))
            .collect();
        let observations: Vec<Arc<SignedObservation>> = self
            .periods
            .get(&period)
            .map(|s| {
                s.observations
                    .values()
                    .flatten()
                    .filter(|e| e.verified && missing.iter().any(|d| e.signed.vouches(d)))
                    .map(|e| e.signed.clone())
                    .collect()
            })
            .unwrap_or_default();
        Err(ProposalCheck::Missing(evidence, observations))
    }

    fn on_sign_request(
        &mut self,
        from: MemberIndex,
        req: SignRequest,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let refuse = |why: &'static str| Delivery::Rejected(MessageError::SigningRefused(why));
        let unit = req.id.unit;
        if from != self.coordinator_of(&unit, req.id.attempt) {
            return Delivery::Rejected(MessageError::NotCoordinator);
        }
        if self.decided.contains_key(&unit) {
            // A spare session's request arriving after the unit was co-signed.
            return Delivery::Ignored;
        }
        let Some(keys) = self.keys.clone() else {
            return Delivery::Rejected(MessageError::NoKey);
        };
        let package = &*req.package;
        let t = self.net.t();
        let n = self.net.n();
        // FAULTS 8: fewer than t commitments, unknown identifiers, or none of ours: no share.
        if package.signing_commitments().len() < t {
            return refuse("fewer than t commitments");
        }
        if package
            .signing_commitments()
            .keys()
            .any(|id| MemberIndex::from_identifier(id, n).is_none())
        {
            return refuse("commitment from a non-member");
        }
        let Some(mine) = package.signing_commitment(&self.me.identifier()) else {
            return refuse("our commitment is not in the package");
        };
        let commitment_digest = Frost::new(mine).digest("accord/commitment/v1");
        let package_digest = req.package.digest("accord/signing-package/v1");
        // FAULTS 1: a commitment bound to one package never signs another, before or after a
        // restart (the binding is persisted before the share leaves).
        let bound = self.protection.get(&commitment_digest).cloned();
        if bound.as_ref().is_some_and(|(p, _, _)| *p != package_digest) {
            return refuse("commitment already used for a different package");
        }
        let Some(slot) = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.signer.get_mut(&req.id))
        else {
            return refuse("no accepted proposal for this id (nonces do not survive a restart)");
        };
        // FAULTS 10: the message must be the statement we validated; we are never an oracle.
        if package.message() != slot.message.as_slice() {
            return refuse("package message differs from the accepted proposal");
        }
        // FAULTS 3: the same package again gets the same share again, never a new one.
        if let Some((_, share, _)) = bound {
            let next = Frost::new(slot.commitments);
            self.send(
                from,
                Message::Share(Share {
                    id: req.id,
                    session: req.session,
                    share,
                    next,
                }),
            );
            return Delivery::Duplicate;
        }
        if mine != slot.commitments {
            return refuse("package carries a commitment that is not our current one");
        }
        let Some(nonces) = slot.nonces.take() else {
            return refuse("nonces already used");
        };
        let share = match nonces.sign(package, &keys.key_package) {
            Ok(s) => Frost::new(s),
            Err(_) => return refuse("frost refused to sign"),
        };
        let (next_nonces, next) = frost::round1::commit(keys.key_package.signing_share(), rng);
        slot.nonces = Some(SingleUseNonces(next_nonces));
        slot.commitments = next;
        self.protection.insert(
            commitment_digest,
            (package_digest, share.clone(), unit.period()),
        );
        // Protection record first: the share may leave only once it is durable.
        self.outputs
            .push_back(Output::Persist(Record::Signed(SignedRecord {
                id: req.id,
                commitment: commitment_digest,
                package: package_digest,
                share: share.clone(),
            })));
        self.send(
            from,
            Message::Share(Share {
                id: req.id,
                session: req.session,
                share,
                next: Frost::new(next),
            }),
        );
        Delivery::Accepted
    }

    // ---------------------------------------------------------------------------------------
    // Results and catch-up

    fn on_cosigned(&mut self, cosigned: Arc<CoSigned>) -> Delivery {
        let Some(keys) = &self.keys else {
            return Delivery::Ignored;
        };
        if !cosigned.unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed("unit does not fit the network"));
        }
        if let Some(existing) = self.decided.get(&cosigned.unit)
            && existing.statements == cosigned.statements
        {
            return Delivery::Duplicate;
        }
        let labs = cosigned.unit.labs(&self.net);
        let shaped = cosigned.statements.len() == labs.len()
            && cosigned.statements.iter().zip(&labs).all(|(s, l)| {
                s.network_id == *self.net.id()
                    && s.policy_hash == *self.net.policy_hash()
                    && s.slot.period == cosigned.unit.period()
                    && s.slot.lab == self.net.lab_id(*l)
            });
        if !shaped {
            return Delivery::Rejected(MessageError::Malformed(
                "co-signed statements do not fit the unit",
            ));
        }
        if cosigned.verify(self.net.id(), &keys.group_key()).is_err() {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        if self.accept_cosigned(cosigned) {
            Delivery::Accepted
        } else {
            Delivery::Duplicate
        }
    }

    /// Records a verified co-signed unit; returns whether it is new and at least as large as
    /// what was held.
    fn accept_cosigned(&mut self, cosigned: Arc<CoSigned>) -> bool {
        if !self.record_decided(cosigned.clone()) {
            let conflicting = self.decided.get(&cosigned.unit).is_some_and(|held| {
                cosigned
                    .statements
                    .iter()
                    .zip(&held.statements)
                    .any(|(a, b)| !a.includes(b) && !b.includes(a))
            });
            if conflicting {
                // Only possible with more than f faulty members: say so loudly.
                self.event(Event::Conflict(cosigned));
            }
            return false;
        }
        self.outputs
            .push_back(Output::Persist(Record::CoSigned(cosigned.clone())));
        self.event(Event::Decided(cosigned.clone()));
        if let Some(state) = self.units.get_mut(&cosigned.unit) {
            state.signer.clear();
            state.coordinator = None;
        }
        true
    }

    fn record_decided(&mut self, cosigned: Arc<CoSigned>) -> bool {
        match self.decided.get(&cosigned.unit) {
            Some(existing) if existing.statements == cosigned.statements => false,
            Some(existing) => {
                // Keep the largest (invariant 3 makes co-signed statements a chain).
                let larger = cosigned
                    .statements
                    .iter()
                    .zip(&existing.statements)
                    .all(|(new, old)| new.includes(old));
                if larger {
                    self.decided.insert(cosigned.unit, cosigned);
                }
                larger
            }
            None => {
                self.decided.insert(cosigned.unit, cosigned);
                true
            }
        }
    }

    fn on_sync_request(&mut self, from: MemberIndex, req: &SyncRequest) -> Delivery {
        let units: Vec<Arc<CoSigned>> = self
            .decided
            .iter()
            .filter(|(u, _)| u.period() >= req.from)
            .take(MAX_SYNC_UNITS)
            .map(|(_, c)| c.clone())
            .collect();
        for c in units {
            self.send(from, Message::CoSigned(c));
        }
        let own: Vec<Arc<SignedObservation>> = self
            .periods
            .range(req.from..)
            .filter_map(|(_, p)| {
                p.observations
                    .get(&self.me)
                    .and_then(|v| v.first())
                    .map(|e| e.signed.clone())
            })
            .take(MAX_SYNC_UNITS)
            .collect();
        for o in own {
            self.send(from, Message::Observation(o));
        }
        if req.key_unconfirmed
            && let Some(confirmations) = self.confirmations.clone()
        {
            for c in confirmations.iter() {
                self.send(from, Message::Dkg(c.clone()));
            }
        }
        Delivery::Accepted
    }

    /// Whether `period` is within the retention window (the last `retain_periods` before the
    /// next close), whose state and evidence are kept even once decided. The harness and the
    /// simulator check that nothing acknowledged in it is lost across a restart.
    pub fn retains(&self, period: Period) -> bool {
        period.0.saturating_add(self.config.retain_periods) >= self.next_close.0
    }

    fn prune(&mut self) {
        let keep = self.config.retain_periods;
        let Some(horizon) = self.next_close.0.checked_sub(keep) else {
            return;
        };
        let done = |engine: &Self, p: Period| {
            Unit::all_for(&engine.net, p)
                .iter()
                .all(|u| engine.decided.contains_key(u))
        };
        let old: Vec<Period> = self
            .periods
            .range(..Period(horizon))
            .map(|(p, _)| *p)
            .filter(|p| done(self, *p))
            .collect();
        for p in old {
            self.periods.remove(&p);
            self.units.retain(|u, _| u.period() != p);
            let digests: Vec<Digest> = self
                .slots
                .range((p, LabIndex(0))..=(p, LabIndex(u16::MAX)))
                .flat_map(|(_, d)| d.iter().copied())
                .collect();
            for d in digests {
                self.evidence.remove(&d);
            }
            self.slots.retain(|(period, _), _| *period != p);
        }
        let decided_horizon = Period(horizon.saturating_sub(keep * 16));
        self.decided.retain(|u, _| u.period() >= decided_horizon);
        // Nonces of those periods are long gone; their bindings stay on disk (and are loaded
        // again on restart), memory keeps the recent ones.
        self.protection.retain(|_, (_, _, p)| *p >= decided_horizon);
    }

    // ---------------------------------------------------------------------------------------
    // Key generation

    fn on_dkg(
        &mut self,
        now: Instant,
        from: MemberIndex,
        msg: DkgMessage,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        if self.keys.is_some() {
            return Delivery::Ignored;
        }
        if !self.net.is_member(msg.sender) {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        // Round-1 packages (as equivocation proof) and confirmations (for a restarted member)
        // are self-contained signed statements that any member may pass on.
        let relayable = matches!(msg.body, DkgBody::Round1(_) | DkgBody::Confirm { .. });
        if from != msg.sender && !relayable {
            return Delivery::Rejected(MessageError::WrongSender);
        }
        // Gossip delivers a message many times; only the first copy is news (and forwarded).
        // The digest covers the signature and only verified messages are remembered, so a copy
        // is dropped before paying for a second verification.
        let digest = msg.digest();
        if self.dkg_seen.contains(&digest) {
            return Delivery::Duplicate;
        }
        // Check the author's signature before the message can change anything here.
        if !msg.verify(&self.net) {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        let ceremony = msg.ceremony;
        let active = self.dkg.as_ref().map(DkgMachine::ceremony);
        // A member that stored its key but did not see every confirmation (it restarted, or its
        // Confirm phase timed out while the others completed) collects the signed confirmations
        // from peers' catch-up answers and activates its key once they prove that every member
        // holds the same key.
        let collecting = self.last_ceremony == Some(ceremony)
            && (active != Some(ceremony) || self.dkg.as_ref().is_some_and(DkgMachine::is_finished));
        if let (Some(key), DkgBody::Confirm { .. }, true) =
            (&self.unconfirmed_keys, &msg.body, collecting)
        {
            let key = key.clone();
            if self.dkg_seen.len() < MAX_DKG_SEEN_PER_MEMBER * self.net.n() {
                self.dkg_seen.insert(digest);
            }
            self.pending_confirms.insert(msg.sender, msg);
            // One confirmation per member is needed: check (n signatures) only once all are in.
            if self.pending_confirms.len() == self.net.n() {
                let all: Vec<DkgMessage> = self.pending_confirms.values().cloned().collect();
                if dkg::confirmations_prove(&self.net, &key, ceremony, &all) {
                    self.activate_key(ceremony, all);
                }
            }
            return Delivery::Accepted;
        }
        if active != Some(ceremony) {
            // Join a newer ceremony that another member started with a signed round-1 package,
            // but not one absurdly far ahead (which would burn the ceremony numbers).
            let last = self.last_ceremony.unwrap_or(0);
            let joinable = matches!(msg.body, DkgBody::Round1(_))
                && self.last_ceremony.is_none_or(|c| c < ceremony)
                && ceremony <= last.saturating_add(MAX_CEREMONY_JUMP);
            if !joinable || self.start_dkg(now, ceremony, rng).is_err() {
                return Delivery::Ignored;
            }
        }
        if self.dkg_seen.len() < MAX_DKG_SEEN_PER_MEMBER * self.net.n() {
            self.dkg_seen.insert(digest);
        }
        let Some(dkg) = self.dkg.as_mut() else {
            return Delivery::Ignored;
        };
        let out = dkg.handle(from, msg, now, &self.identity);
        self.apply_dkg(out);
        Delivery::Accepted
    }

    fn activate_key(&mut self, ceremony: u32, confirmations: Vec<DkgMessage>) {
        let Some(key) = self.unconfirmed_keys.take() else {
            return;
        };
        let group_key = key.group_key();
        self.keys = Some(key);
        self.pending_confirms.clear();
        self.outputs.push_back(Output::Persist(Record::DkgComplete {
            ceremony,
            group_key,
            confirmations: confirmations.clone(),
        }));
        self.confirmations = Some(confirmations.into());
        self.event(Event::DkgComplete { group_key });
    }

    fn apply_dkg(&mut self, out: Vec<DkgOutput>) {
        for o in out {
            match o {
                DkgOutput::Broadcast(m) => {
                    self.outputs.push_back(Output::Broadcast(Message::Dkg(m)))
                }
                DkgOutput::Send(to, m) => self.send(to, Message::Dkg(m)),
                DkgOutput::Key(k) => {
                    self.unconfirmed_keys = Some(Arc::new((*k).clone()));
                    self.outputs.push_back(Output::StoreKey(k));
                }
                DkgOutput::Complete { confirmations, .. } => {
                    let ceremony = self.dkg.as_ref().map_or(0, DkgMachine::ceremony);
                    self.activate_key(ceremony, confirmations);
                }
                DkgOutput::Aborted(failure) => {
                    for (m, offence) in &failure.culprits {
                        self.culprit(*m, Offence::Dkg(offence.clone()));
                    }
                    self.event(Event::DkgAborted(failure));
                    // Aborted in the Confirm phase with the key stored: the others may well have
                    // completed (only our view of their confirmations is short). Keep the key
                    // unconfirmed, as a restart would, and ask every peer for its confirmations;
                    // it is used only once all n of them prove the same key. A later ceremony
                    // replaces it.
                    if self.unconfirmed_keys.is_some() {
                        let request = self.sync_request();
                        let me = self.me;
                        let peers: Vec<MemberIndex> =
                            self.net.members().filter(|m| *m != me).collect();
                        for m in peers {
                            self.send(m, Message::SyncRequest(request.clone()));
                        }
                    }
                }
            }
        }
    }
}

/// Why a DKG ceremony cannot start here.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DkgStartError {
    /// This member already has a confirmed key.
    #[error("this member already has a group key")]
    HaveKey,
    /// The ceremony number was used before.
    #[error(
        "ceremony {ceremony} is not newer than the last one here ({last}); use a higher number"
    )]
    CeremonyUsed {
        /// Asked for.
        ceremony: u32,
        /// Last used here.
        last: u32,
    },
}

enum ProposalCheck {
    Invalid(String),
    Missing(Vec<Arc<Evidence>>, Vec<Arc<SignedObservation>>),
}

fn proposal_labs(net: &Network, p: &Proposal) -> Vec<LabIndex> {
    p.evidence
        .iter()
        .map(|e| net.lab_by_id(e.lab()).unwrap_or(LabIndex(u16::MAX)))
        .collect()
}

fn codec_len<T: Serialize>(v: &T) -> usize {
    crate::codec::encode(v).map_or(usize::MAX, |b| b.len())
}

impl Coordinator {
    fn new(attempt: u32) -> Self {
        Self {
            attempt,
            revision: 0,
            proposal: None,
            ready: BTreeMap::new(),
            busy: BTreeSet::new(),
            excluded: BTreeSet::new(),
            sessions: BTreeMap::new(),
            next_session: 0,
        }
    }

    /// ROAST starts a session whenever t signers are ready. We add a spare session next to open
    /// ones only once the oldest open session has been open for `patience`: a healthy network
    /// signs once, and from then on every ready set starts a session at once, as in ROAST. Each
    /// open session holds its signers (a busy member's accepts are ignored), so f withholders
    /// stall at most f sessions and session f + 1 completes (the bound a throttle measured from
    /// the latest start would break: withholders joining each spare in turn stall them all).
    fn may_start(&self, now: Instant, patience: core::time::Duration) -> bool {
        self.oldest_open()
            .is_none_or(|s| now >= s.saturating_add(patience))
    }

    fn oldest_open(&self) -> Option<Instant> {
        self.sessions.values().map(|s| s.started).min()
    }

    /// When a spare session may start, if one is wanted.
    fn spare_session_due(&self, t: usize, patience: core::time::Duration) -> Option<Instant> {
        if self.proposal.is_none() || self.sessions.is_empty() || self.ready.len() < t {
            return None;
        }
        self.oldest_open().map(|s| s.saturating_add(patience))
    }
}
