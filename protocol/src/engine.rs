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

use crate::crypto::{Digest, Frost, PublicKey, SecretKey, verify_many, verify_member};
use crate::dkg::{
    self, DkgBody, DkgFailure, DkgMachine, DkgMessage, DkgOffence, DkgOutput, KeyMaterial,
};
use crate::evidence::{Evidence, EvidenceError, Place};
pub use crate::limits::MAX_ATTESTATIONS_PER_SLOT;
use crate::limits::{BODIES_CHUNK_BYTES, MAX_REVISIONS};
use crate::message::{
    Accept, Bodies, Fetch, Message, Missing, Observation, ObservationFault, Proposal, ProposalId,
    Share, SignRequest, SignedObservation, SlotItems, SyncRequest,
};
use crate::policy;
use crate::roster::{LabIndex, MemberIndex, Network, Period};
use crate::statement::{CoSigned, Statement, Unit, signing_message};
use crate::time::Instant;

/// Most co-signed units sent in answer to one sync request.
pub const MAX_SYNC_UNITS: usize = 64;
/// DKG message digests remembered for deduplication, per member.
const MAX_DKG_SEEN_PER_MEMBER: usize = 64;
/// How far ahead of the last ceremony a member starts or joins a ceremony.
pub const MAX_CEREMONY_JUMP: u32 = 16;
/// Bodies answers one member gets per unit and attempt (one per revision, and one spare).
const FETCH_ANSWERS_PER_ATTEMPT: u32 = MAX_REVISIONS as u32 + 2;

/// Engine tuning that does not affect agreement between members.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The first period this member observes (earlier periods are left to sync).
    pub first_period: Period,
    /// Decided periods kept in memory (older ones live only in storage).
    pub retain_periods: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            first_period: Period(0),
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
    /// Replace every record persisted so far by these, atomically, before performing any later
    /// output: [`Engine::restore`] from them rebuilds the same member (the record log's
    /// compaction; emitted when old periods are pruned, so storage and restart time stay
    /// bounded).
    Snapshot(Vec<Record>),
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
    /// The proposal this member accepted grew the unit's locked set.
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
    /// Another member's verified observation that vouches for items this member locked
    /// (persisted once, before the accept it justifies, so a restarted member can still show
    /// why its locked items are vouched).
    Vouch(Arc<SignedObservation>),
}

/// A proposal this member accepted whose statements grew the unit's locked set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedRecord {
    /// Which proposal.
    pub id: ProposalId,
    /// Its digest.
    pub proposal: Digest,
    /// Its statements.
    pub statements: Vec<Statement>,
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

/// What a member did wrong. [`Offence::code`] is a stable label (metrics, logs): no variant
/// carries text a peer chose.
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
    InvalidProposal(ProposalFault),
    /// Its own observation did not verify or broke the syntax rules.
    #[error("badly signed or malformed observation")]
    BadObservation,
    /// It relayed (in a proposal or a reply) an observation that does not verify or breaks the
    /// syntax rules; an honest member relays only observations it verified.
    #[error("relayed a badly signed or malformed observation")]
    RelayedBadObservation,
    /// It sent evidence that does not validate (an honest member sends only what it validated).
    #[error("sent invalid evidence")]
    BadEvidence,
    /// Misbehaviour in key generation.
    #[error("DKG: {0}")]
    Dkg(DkgOffence),
}

impl Offence {
    /// A stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            Offence::InvalidShare => "invalid-share",
            Offence::EquivocatingObservation => "equivocating-observation",
            Offence::EquivocatingProposal => "equivocating-proposal",
            Offence::InvalidProposal(_) => "invalid-proposal",
            Offence::BadObservation => "bad-observation",
            Offence::RelayedBadObservation => "relayed-bad-observation",
            Offence::BadEvidence => "bad-evidence",
            Offence::Dkg(d) => d.code(),
        }
    }
}

/// Which rule of the proposal rule (`docs/protocol.md` §13) a proposal breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProposalFault {
    /// The revision is above [`MAX_REVISIONS`].
    #[error("revision above the limit")]
    Revision,
    /// Not one statement per lab of the unit.
    #[error("wrong number of statements")]
    StatementCount,
    /// A statement for another network or policy.
    #[error("wrong network or policy")]
    WrongNetwork,
    /// A statement for another slot than its position.
    #[error("statement for another slot")]
    WrongSlot,
    /// Evidence digests not sorted and distinct.
    #[error("evidence not sorted and distinct")]
    EvidenceOrder,
    /// More items in a slot or the unit than any honest proposal names.
    #[error("more items than vouching allows")]
    TooManyItems,
    /// More observations than the limit, or more than two from one member.
    #[error("too many observations")]
    TooManyObservations,
    /// An observation for another period or breaking the syntax rules.
    #[error("observation for another period or malformed")]
    MalformedObservation,
    /// An observation whose signature does not verify.
    #[error("badly signed observation")]
    BadlySignedObservation,
    /// An item of another slot or period than its statement's.
    #[error("item of another slot")]
    ItemOfAnotherSlot,
    /// An item not vouched by f + 1 members, in its place, among the proposal's observations.
    #[error("item not vouched by f + 1 observations")]
    NotVouched,
    /// A verdict that is not the policy's on the statement's items.
    #[error("verdict is not the policy's")]
    WrongVerdict,
}

impl ProposalFault {
    /// A stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            ProposalFault::Revision => "revision",
            ProposalFault::StatementCount => "statement-count",
            ProposalFault::WrongNetwork => "wrong-network",
            ProposalFault::WrongSlot => "wrong-slot",
            ProposalFault::EvidenceOrder => "evidence-order",
            ProposalFault::TooManyItems => "too-many-items",
            ProposalFault::TooManyObservations => "too-many-observations",
            ProposalFault::MalformedObservation => "malformed-observation",
            ProposalFault::BadlySignedObservation => "badly-signed-observation",
            ProposalFault::ItemOfAnotherSlot => "item-of-another-slot",
            ProposalFault::NotVouched => "not-vouched",
            ProposalFault::WrongVerdict => "wrong-verdict",
        }
    }
}

/// Why a signing request gets no share because the request itself is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SigningFault {
    /// Fewer than t commitments.
    #[error("fewer than t commitments")]
    TooFewCommitments,
    /// A commitment under an identifier that is not a member's.
    #[error("commitment from a non-member")]
    NonMember,
    /// This member's commitment is not in the package.
    #[error("our commitment is not in the package")]
    NoCommitmentOfOurs,
    /// The commitment already signed a different package.
    #[error("commitment already used for a different package")]
    CommitmentReused,
    /// The package's message is not the accepted proposal's.
    #[error("package message differs from the accepted proposal")]
    WrongMessage,
    /// The package carries a commitment of ours that is not the current one.
    #[error("package carries a commitment that is not our current one")]
    StaleCommitment,
}

/// Why this member cannot help, through no fault of the sender (rustls keeps
/// `PeerIncompatible` apart from `PeerMisbehaved` in the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CannotHelp {
    /// No key share yet.
    #[error("this member has no key share yet")]
    NoKey,
    /// No signer state for the proposal: not accepted in this process lifetime (nonces never
    /// survive a restart), or already replaced.
    #[error("no accepted proposal for this id (nonces do not survive a restart)")]
    NoNonces,
    /// The nonces were consumed by an earlier failed signing attempt.
    #[error("nonces already used")]
    NoncesUsed,
    /// frost refused to produce a share.
    #[error("frost refused to sign")]
    FrostRefused,
}

/// Why a message was not accepted: the sender misbehaved, or this member cannot help.
/// [`MessageError::code`] is a stable label.
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
    /// An observation breaks the syntax rules.
    #[error("observation: {0}")]
    Observation(#[from] ObservationFault),
    /// Structurally invalid content.
    #[error("malformed: {0}")]
    Malformed(Malformed),
    /// Only the attempt's coordinator may send this.
    #[error("sender is not the coordinator of this attempt")]
    NotCoordinator,
    /// A proposal that breaks the proposal rule.
    #[error("proposal refused: {0}")]
    Proposal(#[from] ProposalFault),
    /// A second, different message under an id that names one (a proposal id).
    #[error("a different message under the same id")]
    Equivocation,
    /// A signing request that no member may answer.
    #[error("signing refused: {0}")]
    Signing(#[from] SigningFault),
    /// Not the sender's fault.
    #[error("{0}")]
    CannotHelp(#[from] CannotHelp),
}

/// What is structurally wrong with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Malformed {
    /// A unit that does not fit the roster's signing mode or labs.
    #[error("unit does not fit the network")]
    Unit,
    /// Co-signed statements that do not fit their unit.
    #[error("co-signed statements do not fit the unit")]
    CoSignedShape,
    /// A collection larger than the roster allows.
    #[error("collection over the roster's bound")]
    Oversized,
    /// An item of another period or slot than the message's unit.
    #[error("item of another slot")]
    OtherSlot,
    /// A DKG ceremony number too far ahead.
    #[error("ceremony number too far ahead")]
    Ceremony,
}

impl MessageError {
    /// Whether the sender is at fault (gossipsub rejects and scores down); otherwise this member
    /// cannot help and the message is only ignored.
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(self, MessageError::CannotHelp(_))
    }

    /// A stable short code (metrics, logs).
    pub fn code(&self) -> &'static str {
        match self {
            MessageError::NotAMember => "not-a-member",
            MessageError::WrongSender => "wrong-sender",
            MessageError::Evidence(e) => e.code(),
            MessageError::BadSignature => "bad-signature",
            MessageError::Observation(o) => o.code(),
            MessageError::Malformed(m) => match m {
                Malformed::Unit => "malformed-unit",
                Malformed::CoSignedShape => "malformed-cosigned",
                Malformed::Oversized => "oversized",
                Malformed::OtherSlot => "other-slot",
                Malformed::Ceremony => "ceremony-too-far",
            },
            MessageError::NotCoordinator => "not-coordinator",
            MessageError::Proposal(p) => p.code(),
            MessageError::Equivocation => "equivocation",
            MessageError::Signing(s) => match s {
                SigningFault::TooFewCommitments => "signing-too-few-commitments",
                SigningFault::NonMember => "signing-non-member",
                SigningFault::NoCommitmentOfOurs => "signing-no-commitment-of-ours",
                SigningFault::CommitmentReused => "signing-commitment-reused",
                SigningFault::WrongMessage => "signing-wrong-message",
                SigningFault::StaleCommitment => "signing-stale-commitment",
            },
            MessageError::CannotHelp(c) => match c {
                CannotHelp::NoKey => "no-key",
                CannotHelp::NoNonces => "no-nonces",
                CannotHelp::NoncesUsed => "nonces-used",
                CannotHelp::FrostRefused => "frost-refused",
            },
        }
    }
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
    /// Not accepted: do not forward; [`MessageError::is_misbehaviour`] says whether the sender
    /// is at fault.
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
    place: Place,
    /// When this member admitted it before the close (`None`: learned after the close).
    admitted_at: Option<Instant>,
}

struct ObservationEntry {
    signed: Arc<SignedObservation>,
    /// Its signature passed the batchable rule here (author-sent observations are checked
    /// lazily, relayed ones before they are stored).
    verified: bool,
    /// Persisted as a [`Record::Vouch`] (or as this member's own observation).
    persisted: bool,
}

#[derive(Default)]
struct PeriodState {
    observations: BTreeMap<MemberIndex, Vec<ObservationEntry>>,
    closed: bool,
}

struct SignerSlot {
    id: ProposalId,
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
    /// Members whose `Missing` reply to the current revision was handled.
    missing_from: BTreeSet<MemberIndex>,
    /// Digests fetched from members that reported them missing, not yet received.
    wanted: BTreeSet<Digest>,
}

/// A proposal that passed every check that needs no evidence body, waiting for the bodies this
/// member lacks (asked of its coordinator).
struct PendingProposal {
    proposal: Arc<Proposal>,
    digest: Digest,
    from: MemberIndex,
    missing: BTreeSet<Digest>,
}

#[derive(Default)]
struct UnitState {
    attempt: Option<u32>,
    locked: BTreeSet<Digest>,
    /// The accepted proposals that grew `locked` (kept for the record log's compaction).
    accepted: Vec<Arc<AcceptedRecord>>,
    seen: BTreeMap<ProposalId, Digest>,
    /// Signer state per attempt: the latest accepted revision of that attempt.
    signer: BTreeMap<u32, SignerSlot>,
    coordinator: Option<Coordinator>,
    pending: Option<PendingProposal>,
    /// `Bodies` answers sent per member in the current attempt.
    fetch_answers: BTreeMap<MemberIndex, u32>,
    /// Coordinators told the decision, by attempt (see `on_proposal`).
    told: BTreeSet<(MemberIndex, u32)>,
}

/// `(lab, place, digest)` → the members that list it there.
type Listings = BTreeMap<(LabIndex, Place, Digest), BTreeSet<MemberIndex>>;

fn vouch_count(listings: &Listings, lab: LabIndex, place: Place, item: &Digest) -> usize {
    listings.get(&(lab, place, *item)).map_or(0, BTreeSet::len)
}

/// One member's protocol state machine.
pub struct Engine {
    net: Arc<Network>,
    me: MemberIndex,
    identity: SecretKey,
    config: EngineConfig,
    keys: Option<Arc<KeyMaterial>>,
    unconfirmed_keys: Option<Arc<KeyMaterial>>,
    /// Signed confirmations, collected from peers, that name `unconfirmed_keys`.
    pending_confirms: BTreeMap<MemberIndex, DkgMessage>,
    /// Members that also signed a confirmation of another key (blamed once both are seen).
    mismatched_confirms: BTreeSet<MemberIndex>,
    /// The signed confirmations of the ceremony that produced `keys`, for peers to recover.
    confirmations: Option<Arc<[DkgMessage]>>,
    /// The ceremony that produced `keys`, once confirmed.
    completed_ceremony: Option<u32>,
    dkg: Option<DkgMachine>,
    dkg_seen: BTreeSet<Digest>,
    last_ceremony: Option<u32>,
    evidence: BTreeMap<Digest, StoredEvidence>,
    slots: BTreeMap<(Period, LabIndex), BTreeSet<Digest>>,
    periods: BTreeMap<Period, PeriodState>,
    units: BTreeMap<Unit, UnitState>,
    decided: BTreeMap<Unit, Arc<CoSigned>>,
    protection: BTreeMap<Digest, (SignedRecord, Period)>,
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
            mismatched_confirms: BTreeSet::new(),
            confirmations: None,
            completed_ceremony: None,
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

    /// Rebuilds an engine after a restart from its persisted records (in the order written, or
    /// the latest [`Output::Snapshot`] followed by what was persisted after it) and its key
    /// file. Signing nonces are never persisted, so none survive: a commitment issued before
    /// the crash can never be signed with.
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
        let mut confirmed: Option<(u32, PublicKey, Vec<DkgMessage>)> = None;
        for record in records {
            match record {
                Record::Evidence {
                    evidence,
                    admitted_at,
                } => {
                    let digest = evidence.digest();
                    if let Some(lab) = engine.net.lab_by_id(evidence.lab()) {
                        engine.store_evidence(digest, evidence, lab, admitted_at);
                    }
                }
                Record::Observation(own) => {
                    let period = own.observation.period;
                    engine.insert_observation(own, true, true);
                    engine.periods.entry(period).or_default().closed = true;
                    if period >= engine.next_close {
                        engine.next_close = Period(period.0 + 1);
                    }
                }
                Record::Vouch(o) => {
                    // Verified before it was persisted.
                    engine.insert_observation(o, true, true);
                }
                Record::Accepted(rec) => {
                    let state = engine.units.entry(rec.id.unit).or_default();
                    state.seen.insert(rec.id, rec.proposal);
                    state.locked.extend(
                        rec.statements
                            .iter()
                            .flat_map(|s| s.evidence.iter().copied()),
                    );
                    state.accepted.push(rec);
                }
                Record::Signed(rec) => {
                    let period = rec.id.unit.period();
                    engine.protection.insert(rec.commitment, (rec, period));
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
                    ceremony,
                    group_key,
                    confirmations,
                } => confirmed = Some((ceremony, group_key, confirmations)),
            }
        }
        if let Some(k) = keys {
            let k = Arc::new(k);
            match confirmed {
                Some((ceremony, group_key, confirmations)) if group_key == k.group_key() => {
                    engine.keys = Some(k);
                    engine.confirmations = Some(confirmations.into());
                    engine.completed_ceremony = Some(ceremony);
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

    /// The records from which [`Engine::restore`] rebuilds this member as it is now: its key
    /// ceremony, and the evidence, observations, locks, verdict-protection records and
    /// co-signed units of the periods it still keeps. Everything older has been pruned from
    /// memory and is not needed to restart.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(ceremony) = self.last_ceremony {
            out.push(Record::DkgStarted { ceremony });
        }
        if let (Some(ceremony), Some(keys), Some(confirmations)) =
            (self.completed_ceremony, &self.keys, &self.confirmations)
        {
            out.push(Record::DkgComplete {
                ceremony,
                group_key: keys.group_key(),
                confirmations: confirmations.to_vec(),
            });
        }
        for e in self.evidence.values() {
            out.push(Record::Evidence {
                evidence: e.evidence.clone(),
                admitted_at: e.admitted_at,
            });
        }
        for state in self.periods.values() {
            for (member, entries) in &state.observations {
                for e in entries.iter().filter(|e| e.persisted) {
                    out.push(if *member == self.me {
                        Record::Observation(e.signed.clone())
                    } else {
                        Record::Vouch(e.signed.clone())
                    });
                }
            }
        }
        for state in self.units.values() {
            out.extend(state.accepted.iter().cloned().map(Record::Accepted));
        }
        for (rec, _) in self.protection.values() {
            out.push(Record::Signed(rec.clone()));
        }
        for c in self.decided.values() {
            out.push(Record::CoSigned(c.clone()));
        }
        out
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
                MessageError::Signing(_) | MessageError::Proposal(_) | MessageError::CannotHelp(_)
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
                // Forget what belongs to attempts long gone: their signer states (and nonces),
                // the proposal ids seen, a proposal still waiting for bodies, and the answers
                // given. Proposals of attempts before `attempt - 1` are ignored from now on.
                let keep = |a: u32| a.saturating_add(2) > attempt;
                state.signer.retain(|a, _| keep(*a));
                state.seen.retain(|id, _| keep(id.attempt));
                if state
                    .pending
                    .as_ref()
                    .is_some_and(|p| !keep(p.proposal.id.attempt))
                {
                    state.pending = None;
                }
                state.fetch_answers.clear();
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
        // Ceremony numbers only grow, so one far ahead would burn the rest of the range (u32::MAX
        // would leave no higher number for a retry).
        let last = self.last_ceremony.unwrap_or(0);
        if ceremony > last.saturating_add(MAX_CEREMONY_JUMP) {
            return Err(DkgStartError::TooFarAhead {
                ceremony,
                most: last.saturating_add(MAX_CEREMONY_JUMP),
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
                    | EvidenceError::SlotFull(_)
                    | EvidenceError::InspectorFull(_),
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
            Message::Fetch(f) => self.on_fetch(from, &f),
            Message::Bodies(b) => self.on_bodies(from, &b, rng),
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
        // The admission caps (docs/protocol.md §8): what a member admits is what its observation
        // lists, and `Observation::check` holds every observation to the same caps.
        let admitted = |d: &Digest| self.evidence.get(d).filter(|e| e.admitted_at.is_some());
        let in_slot = |pred: &dyn Fn(&StoredEvidence) -> bool| {
            self.slots.get(&(period, lab)).map_or(0, |s| {
                s.iter().filter_map(&admitted).filter(|e| pred(e)).count()
            })
        };
        match evidence.place() {
            Place::Attestation => {
                let n = in_slot(&|e| e.place == Place::Attestation);
                if n >= MAX_ATTESTATIONS_PER_SLOT {
                    return Err(EvidenceError::SlotFull(n));
                }
            }
            Place::Report(inspector) => {
                if in_slot(&|e| e.place == Place::Report(inspector)) > 0 {
                    return Err(EvidenceError::InspectorFull(1));
                }
                let cap = self.net.limits().reports_per_inspector;
                let filed = self
                    .slots
                    .range((period, LabIndex(0))..=(period, LabIndex(u16::MAX)))
                    .flat_map(|(_, s)| s.iter())
                    .filter_map(admitted)
                    .filter(|e| e.place == Place::Report(inspector))
                    .count();
                if filed >= cap {
                    return Err(EvidenceError::InspectorFull(cap));
                }
            }
        }
        self.store_evidence(digest, evidence.clone(), lab, Some(now));
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
        admitted_at: Option<Instant>,
    ) {
        let period = evidence.period();
        self.slots.entry((period, lab)).or_default().insert(digest);
        let place = evidence.place();
        self.evidence.entry(digest).or_insert(StoredEvidence {
            evidence,
            lab,
            period,
            place,
            admitted_at,
        });
    }

    /// Stores an item learned after the close (already validated for a slot of its period).
    fn learn_evidence(&mut self, evidence: &Arc<Evidence>, lab: LabIndex) {
        let digest = evidence.digest();
        if !self.evidence.contains_key(&digest) {
            self.store_evidence(digest, evidence.clone(), lab, None);
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
        let mut slots = Vec::new();
        for lab in self.net.labs() {
            let mut attestations = Vec::new();
            let mut reports = Vec::new();
            for d in self.slots.get(&(period, lab)).into_iter().flatten() {
                let Some(e) = self.evidence.get(d).filter(|e| e.admitted_at.is_some()) else {
                    continue;
                };
                match e.place {
                    Place::Attestation => attestations.push(*d),
                    Place::Report(inspector) => reports.push((inspector, *d)),
                }
            }
            // `slots` iterates digests in order; reports go by inspector (one each, admit()).
            reports.sort();
            if !attestations.is_empty() || !reports.is_empty() {
                slots.push(SlotItems {
                    lab,
                    attestations,
                    reports,
                });
            }
        }
        let observation = Observation {
            member: self.me,
            period,
            slots,
        };
        debug_assert_eq!(observation.check(&self.net), Ok(()));
        let signature = self
            .identity
            .sign(&observation.signing_bytes(self.net.id()));
        let signed = Arc::new(SignedObservation {
            observation,
            signature,
        });
        let count = signed.observation.len();
        self.insert_observation(signed.clone(), true, true);
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
    /// are proof of equivocation once both verify). Two copies of one observation (the same
    /// content) are one entry: a verified copy replaces an unverified one. Returns whether it
    /// was new.
    fn insert_observation(
        &mut self,
        signed: Arc<SignedObservation>,
        verified: bool,
        persisted: bool,
    ) -> bool {
        let period = signed.observation.period;
        let member = signed.observation.member;
        let entries = self
            .periods
            .entry(period)
            .or_default()
            .observations
            .entry(member)
            .or_default();
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.signed.observation == signed.observation)
        {
            e.persisted |= persisted;
            if verified && !e.verified {
                e.signed = signed;
                e.verified = true;
            }
            return false;
        }
        if entries.len() >= 2 {
            return false;
        }
        entries.push(ObservationEntry {
            signed,
            verified,
            persisted,
        });
        true
    }

    /// Stores an observation relayed by others (in a proposal or reply), already verified
    /// here; if another one is held for that member and period and it verifies too, the member
    /// equivocated.
    fn note_observation(&mut self, signed: Arc<SignedObservation>) {
        let member = signed.observation.member;
        let period = signed.observation.period;
        let others: Vec<Arc<SignedObservation>> = self
            .periods
            .get(&period)
            .and_then(|p| p.observations.get(&member))
            .map(|v| {
                v.iter()
                    .filter(|e| e.signed.observation != signed.observation)
                    .map(|e| e.signed.clone())
                    .collect()
            })
            .unwrap_or_default();
        let fresh = self.insert_observation(signed, true, false);
        if fresh && others.iter().any(|o| self.verify_observation(o)) {
            self.culprit(member, Offence::EquivocatingObservation);
        }
    }

    /// A period this member still keeps state for, so stored observations stay bounded by
    /// (retained periods) × n × 2.
    fn observation_period_kept(&self, period: Period) -> bool {
        let oldest = self
            .next_close
            .0
            .saturating_sub(self.config.retain_periods.saturating_add(1));
        period.0 <= self.next_close.0.saturating_add(2) && period.0 >= oldest
    }

    fn verify_observation(&self, signed: &SignedObservation) -> bool {
        self.net
            .member_key(signed.observation.member)
            .is_some_and(|k| {
                verify_member(
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
        if let Err(fault) = signed.observation.check(&self.net) {
            return Delivery::Rejected(fault.into());
        }
        let period = signed.observation.period;
        if !self.observation_period_kept(period) {
            return Delivery::Ignored;
        }
        let existing: Vec<Arc<SignedObservation>> = self
            .periods
            .get(&period)
            .and_then(|p| p.observations.get(&from))
            .map(|v| v.iter().map(|e| e.signed.clone()).collect())
            .unwrap_or_default();
        if existing.iter().any(|e| e.observation == signed.observation) {
            return Delivery::Duplicate;
        }
        // Observations from their author are verified lazily (when they are used), except when
        // a second one from the same member arrives: then both are checked, and two valid ones
        // convict.
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
        if !self.insert_observation(signed, verified, false) {
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

    /// Verifies every unverified stored observation of `period` that `filter` selects, dropping
    /// bad ones and naming their authors: unverified observations come only from their authors
    /// (relayed ones are verified before they are stored). Returns whether any was dropped.
    fn verify_stored(
        &mut self,
        period: Period,
        filter: impl Fn(&SignedObservation) -> bool,
    ) -> bool {
        let Some(state) = self.periods.get(&period) else {
            return false;
        };
        let candidates: Vec<Arc<SignedObservation>> = state
            .observations
            .values()
            .flatten()
            .filter(|e| !e.verified && filter(&e.signed))
            .map(|e| e.signed.clone())
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let bad: BTreeSet<usize> = self.batch_check(&candidates).into_iter().collect();
        let state = self.periods.get_mut(&period).expect("checked above");
        for (i, signed) in candidates.iter().enumerate() {
            let member = signed.observation.member;
            if let Some(entries) = state.observations.get_mut(&member) {
                if bad.contains(&i) {
                    entries.retain(|e| !Arc::ptr_eq(&e.signed, signed));
                } else if let Some(e) = entries.iter_mut().find(|e| Arc::ptr_eq(&e.signed, signed))
                {
                    e.verified = true;
                }
            }
        }
        let dropped: Vec<MemberIndex> = bad
            .iter()
            .map(|i| candidates[*i].observation.member)
            .collect();
        for member in &dropped {
            self.culprit(*member, Offence::BadObservation);
        }
        !dropped.is_empty()
    }

    /// Who lists which item in which place, over `observations`, for the slots of `labs`
    /// (sorted): `(lab, place, digest)` → members. A digest listed in another place than its
    /// body's vouches for nothing. Built once per use, in time linear in what is listed.
    fn listings<'a>(
        labs: &[LabIndex],
        observations: impl IntoIterator<Item = &'a SignedObservation>,
    ) -> Listings {
        let mut out = Listings::new();
        for o in observations {
            let member = o.observation.member;
            for slot in &o.observation.slots {
                if labs.binary_search(&slot.lab).is_err() {
                    continue;
                }
                for d in &slot.attestations {
                    out.entry((slot.lab, Place::Attestation, *d))
                        .or_default()
                        .insert(member);
                }
                for (inspector, d) in &slot.reports {
                    out.entry((slot.lab, Place::Report(*inspector), *d))
                        .or_default()
                        .insert(member);
                }
            }
        }
        out
    }

    /// The stored observations of `period`.
    fn stored_observations(&self, period: Period) -> impl Iterator<Item = &SignedObservation> {
        self.periods
            .get(&period)
            .into_iter()
            .flat_map(|p| p.observations.values().flatten())
            .map(|e| &*e.signed)
    }

    /// The distinct members that mention `item` anywhere among the stored observations of
    /// `period` (before its body, and so its place, is known).
    fn mentioned_by(&self, period: Period, item: &Digest) -> usize {
        self.stored_observations(period)
            .filter(|o| o.observation.mentions(item))
            .map(|o| o.observation.member)
            .collect::<BTreeSet<_>>()
            .len()
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
        if had.is_some() && revision >= MAX_REVISIONS {
            return;
        }
        let Some((statements, observations)) = self.build_proposal(unit) else {
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
        coord.missing_from.clear();
        self.event(Event::Proposed { id: proposal.id });
        self.outputs
            .push_back(Output::Broadcast(Message::Proposal(proposal.clone())));
        self.loopback.push_back(Message::Proposal(proposal));
    }

    /// The statements for `unit` over every held item that f + 1 members list in its place,
    /// and a set of observations that proves the vouching (`docs/protocol.md` §12). `None`
    /// until observations from t members are in.
    fn build_proposal(
        &mut self,
        unit: Unit,
    ) -> Option<(Vec<Statement>, Vec<Arc<SignedObservation>>)> {
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
        let most_observations = self.net.limits().observations_per_proposal;
        loop {
            let state = self.periods.get(&period)?;
            // Step 2-3: held items of the unit's slots with their vouchers, in place.
            let listed = Self::listings(&labs, self.stored_observations(period));
            let mut vouched: BTreeMap<Digest, (LabIndex, Place, BTreeSet<MemberIndex>)> =
                BTreeMap::new();
            for lab in &labs {
                for d in self.slots.get(&(period, *lab)).into_iter().flatten() {
                    let Some(e) = self.evidence.get(d) else {
                        continue;
                    };
                    if let Some(members) = listed.get(&(*lab, e.place, *d))
                        && members.len() >= quorum
                    {
                        vouched.insert(*d, (*lab, e.place, members.clone()));
                    }
                }
            }
            // Step 4: observations, in member order, until every item has q vouchers among
            // them; a member counts once per item, whichever of its observations lists it.
            let mut need: BTreeMap<Digest, usize> = vouched.keys().map(|d| (*d, quorum)).collect();
            let mut picked: Vec<Arc<SignedObservation>> = Vec::new();
            for (member, entries) in &state.observations {
                let helps: Vec<Digest> = vouched
                    .iter()
                    .filter(|(d, (_, _, m))| m.contains(member) && need[*d] > 0)
                    .map(|(d, _)| *d)
                    .collect();
                if helps.is_empty() {
                    continue;
                }
                if picked.len() + entries.len() > most_observations {
                    // More than f members equivocated: beyond the fault model. Stay within the
                    // bound; items left short are dropped below.
                    break;
                }
                for d in helps {
                    if let Some(n) = need.get_mut(&d) {
                        *n -= 1;
                    }
                }
                picked.extend(entries.iter().map(|e| e.signed.clone()));
            }
            // Step 5: the picked observations must verify (each is checked once; bad ones are
            // dropped, their authors named, and the construction restarts).
            if self.verify_stored(period, |o| picked.iter().any(|c| std::ptr::eq(&**c, o))) {
                continue;
            }
            // Step 6: statements, with the items vouched among the picked observations, within
            // the roster's per-slot bounds (only exceeded beyond the fault model).
            let mut statements = Vec::with_capacity(labs.len());
            let mut per_inspector: BTreeMap<MemberIndex, usize> = BTreeMap::new();
            let limits = self.net.limits().clone();
            let carried = Self::listings(&labs, picked.iter().map(|o| &**o));
            for lab in &labs {
                let mut digests: Vec<Digest> = Vec::new();
                let mut attestations = 0;
                let mut in_slot: BTreeMap<MemberIndex, usize> = BTreeMap::new();
                for (d, (l, place, _)) in vouched.iter().filter(|(_, (l, _, _))| l == lab) {
                    if vouch_count(&carried, *l, *place, d) < quorum {
                        continue;
                    }
                    match place {
                        Place::Attestation => {
                            if attestations >= limits.vouched_attestations_per_slot {
                                continue;
                            }
                            attestations += 1;
                        }
                        Place::Report(i) => {
                            let slot = in_slot.entry(*i).or_default();
                            let unit_total = per_inspector.entry(*i).or_default();
                            if *slot >= limits.vouched_reports_per_inspector_slot
                                || *unit_total >= limits.vouched_reports_per_inspector
                            {
                                continue;
                            }
                            *slot += 1;
                            *unit_total += 1;
                        }
                    }
                    digests.push(*d);
                }
                let items: Vec<(Digest, &Evidence)> = digests
                    .iter()
                    .map(|d| (*d, &*self.evidence[d].evidence))
                    .collect();
                let verdict = policy::evaluate(&self.net.roster().policy, &items);
                statements.push(self.statement(*lab, period, digests, verdict));
            }
            return Some((statements, picked));
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

    /// Verifies observations under the batchable rule, as one batch; returns the indexes of
    /// those that fail (an author outside the roster fails).
    fn batch_check(&self, observations: &[Arc<SignedObservation>]) -> Vec<usize> {
        let messages: Vec<Vec<u8>> = observations
            .iter()
            .map(|o| o.observation.signing_bytes(self.net.id()))
            .collect();
        let mut items = Vec::with_capacity(observations.len());
        let mut index = Vec::with_capacity(observations.len());
        let mut bad = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            match self.net.member_key(o.observation.member) {
                Some(k) => {
                    items.push((k, messages[i].as_slice(), &o.signature));
                    index.push(i);
                }
                None => bad.push(i),
            }
        }
        bad.extend(verify_many(&items).into_iter().map(|j| index[j]));
        bad.sort_unstable();
        bad
    }

    /// Whether this member holds `signed` (same content and signature) already verified.
    fn holds_verified(&self, signed: &SignedObservation) -> bool {
        self.periods
            .get(&signed.observation.period)
            .and_then(|p| p.observations.get(&signed.observation.member))
            .is_some_and(|v| v.iter().any(|e| e.verified && *e.signed == *signed))
    }

    /// Checks relayed observations for `period`: the period, the syntax rules, and the
    /// signatures of those not already held verified (one batch). Returns the indexes of the
    /// bad ones.
    fn check_relayed(&self, period: Period, observations: &[Arc<SignedObservation>]) -> Vec<usize> {
        let mut bad = Vec::new();
        let mut to_verify = Vec::new();
        let mut index = Vec::new();
        for (i, o) in observations.iter().enumerate() {
            if o.observation.period != period || o.observation.check(&self.net).is_err() {
                bad.push(i);
            } else if !self.holds_verified(o) {
                to_verify.push(o.clone());
                index.push(i);
            }
        }
        bad.extend(self.batch_check(&to_verify).into_iter().map(|j| index[j]));
        bad.sort_unstable();
        bad
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
        let period = unit.period();
        let labs = unit.labs(&self.net).len();
        let limits = self.net.limits();
        if missing.items.len() > limits.items_per_unit(labs)
            || missing.observations.len() > limits.observations_per_proposal
        {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
        }
        let Some(coord) = self.units.get(&unit).and_then(|s| s.coordinator.as_ref()) else {
            return Delivery::Ignored;
        };
        // One reply per member to the current revision: a member that refuses the same proposal
        // again cannot make this member verify and fetch again.
        let current = coord.proposal.as_ref().map(|(p, _, _)| p.id);
        if current != Some(missing.id) || coord.missing_from.contains(&from) {
            return Delivery::Ignored;
        }
        // A bad observation proves nothing about the member it names, and an honest member
        // relays only observations it verified: the sender is at fault. Drop it and keep the
        // rest of the reply.
        let bad = self.check_relayed(period, &missing.observations);
        if !bad.is_empty() {
            self.culprit(from, Offence::RelayedBadObservation);
        }
        for (i, o) in missing.observations.iter().enumerate() {
            if !bad.contains(&i) {
                self.note_observation(o.clone());
            }
        }
        // Fetch the bodies this coordinator lacks of items now mentioned by f + 1 members; an
        // item enters the next revision only once its body is held and it is vouched in place.
        let quorum = self.net.vouch_quorum();
        let fetch: Vec<Digest> = missing
            .items
            .iter()
            .filter(|d| !self.evidence.contains_key(*d) && self.mentioned_by(period, d) >= quorum)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let Some(coord) = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.coordinator.as_mut())
        {
            coord.missing_from.insert(from);
            for d in &fetch {
                coord.wanted.insert(*d);
            }
        }
        if !fetch.is_empty() {
            self.send(
                from,
                Message::Fetch(Fetch {
                    unit,
                    digests: fetch,
                }),
            );
        }
        self.try_propose(unit);
        Delivery::Accepted
    }

    /// A member asks for bodies of a unit's items: answer with those held, in chunks, at most
    /// [`FETCH_ANSWERS_PER_ATTEMPT`] times per member and attempt (a request of 32 bytes per
    /// item could otherwise draw up to 64 KiB per item again and again).
    fn on_fetch(&mut self, from: MemberIndex, fetch: &Fetch) -> Delivery {
        let unit = fetch.unit;
        if !unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        let labs = unit.labs(&self.net);
        if fetch.digests.len() > self.net.limits().items_per_unit(labs.len()) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
        }
        let Some(state) = self.units.get_mut(&unit) else {
            return Delivery::Ignored;
        };
        let answers = state.fetch_answers.entry(from).or_default();
        if *answers >= FETCH_ANSWERS_PER_ATTEMPT {
            return Delivery::Ignored;
        }
        *answers += 1;
        let wanted: BTreeSet<&Digest> = fetch.digests.iter().collect();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let mut chunks = Vec::new();
        for d in wanted {
            let Some(e) = self.evidence.get(d) else {
                continue;
            };
            if e.period != unit.period() || !labs.contains(&e.lab) {
                continue;
            }
            bytes += codec_len(&*e.evidence);
            chunk.push(e.evidence.clone());
            if bytes >= BODIES_CHUNK_BYTES {
                chunks.push(std::mem::take(&mut chunk));
                bytes = 0;
            }
        }
        // Always answer, if only with nothing: the asker learns that this member lacks them.
        if !chunk.is_empty() || chunks.is_empty() {
            chunks.push(chunk);
        }
        for evidence in chunks {
            self.send(from, Message::Bodies(Arc::new(Bodies { unit, evidence })));
        }
        Delivery::Accepted
    }

    /// Bodies this member asked for: of a proposal waiting for them (from its coordinator), or,
    /// as coordinator, of items a member reported missing (from that member). Anything not asked
    /// for, or from another member, is ignored.
    fn on_bodies(
        &mut self,
        from: MemberIndex,
        bodies: &Bodies,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let unit = bodies.unit;
        if !unit.is_valid_for(&self.net) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        let labs = unit.labs(&self.net);
        if bodies.evidence.len() > self.net.limits().items_per_unit(labs.len()) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Oversized));
        }
        let Some(state) = self.units.get(&unit) else {
            return Delivery::Ignored;
        };
        let pending: BTreeSet<Digest> = state
            .pending
            .as_ref()
            .filter(|p| p.from == from)
            .map(|p| p.missing.clone())
            .unwrap_or_default();
        let coordinating = state.coordinator.as_ref().map(|c| c.wanted.clone());
        let mut used = false;
        let mut learned_wanted = false;
        for ev in &bodies.evidence {
            let d = ev.digest();
            let for_pending = pending.contains(&d);
            let for_coordinator = coordinating.as_ref().is_some_and(|w| w.contains(&d));
            if !for_pending && !for_coordinator {
                continue;
            }
            // An honest member sends only bodies it validated for the unit's slots.
            let lab = match ev.validate(&self.net) {
                Ok(lab)
                    if ev.period() == unit.period()
                        && labs.contains(&lab)
                        && codec_len(&**ev) <= crate::evidence::MAX_EVIDENCE_BYTES =>
                {
                    lab
                }
                Ok(_) => {
                    self.culprit(from, Offence::BadEvidence);
                    return Delivery::Rejected(MessageError::Malformed(Malformed::OtherSlot));
                }
                Err(e) => {
                    self.culprit(from, Offence::BadEvidence);
                    return Delivery::Rejected(e.into());
                }
            };
            self.learn_evidence(ev, lab);
            used = true;
            if let Some(state) = self.units.get_mut(&unit) {
                if for_pending && let Some(p) = state.pending.as_mut() {
                    p.missing.remove(&d);
                }
                if for_coordinator && let Some(c) = state.coordinator.as_mut() {
                    c.wanted.remove(&d);
                    learned_wanted = true;
                }
            }
        }
        if !used {
            return Delivery::Ignored;
        }
        let complete = self
            .units
            .get(&unit)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|p| p.missing.is_empty());
        if complete
            && let Some(p) = self.units.get_mut(&unit).and_then(|s| s.pending.take())
            && !self.decided.contains_key(&unit)
        {
            let delivery = self.finish_proposal(p.from, &p.proposal, p.digest, rng);
            if let Delivery::Rejected(reason) = delivery {
                self.event(Event::Refused {
                    from: p.from,
                    reason,
                });
            }
        }
        if learned_wanted {
            self.try_propose(unit);
        }
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
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        if from != self.coordinator_of(&unit, id.attempt) {
            return Delivery::Rejected(MessageError::NotCoordinator);
        }
        if self.keys.is_none() {
            return Delivery::Ignored;
        }
        if let Some(decided) = self.decided.get(&unit).cloned() {
            // The coordinator missed the decision (every copy of the gossip lost or garbled on
            // its way): tell it, once per member and attempt, or it would keep proposing a
            // decided unit and never hold the verdict.
            let state = self.units.entry(unit).or_default();
            if state.told.insert((from, id.attempt)) {
                self.send(from, Message::CoSigned(decided));
            }
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
        // Revisions are bounded, so one coordinator costs at most MAX_REVISIONS + 1 checks and
        // accepts per attempt.
        if id.revision > MAX_REVISIONS {
            let fault = ProposalFault::Revision;
            self.culprit(from, Offence::InvalidProposal(fault));
            return Delivery::Rejected(fault.into());
        }
        let digest = proposal.digest();
        let state = self.units.entry(unit).or_default();
        match state.seen.get(&id) {
            Some(d) if *d == digest => return Delivery::Duplicate,
            Some(_) => {
                self.culprit(from, Offence::EquivocatingProposal);
                return Delivery::Rejected(MessageError::Equivocation);
            }
            None => {}
        }
        state.seen.insert(id, digest);
        let missing = match self.check_without_bodies(&proposal) {
            Ok(missing) => missing,
            Err(fault) => {
                self.culprit(from, Offence::InvalidProposal(fault));
                return Delivery::Rejected(fault.into());
            }
        };
        if missing.is_empty() {
            return self.finish_proposal(from, &proposal, digest, rng);
        }
        // Ask the coordinator for the bodies this member lacks; the check resumes when they
        // arrive (`on_bodies`). A later proposal of the unit replaces this one.
        let digests: Vec<Digest> = missing.iter().copied().collect();
        if let Some(state) = self.units.get_mut(&unit) {
            state.pending = Some(PendingProposal {
                proposal,
                digest,
                from,
                missing,
            });
        }
        self.send(from, Message::Fetch(Fetch { unit, digests }));
        Delivery::Accepted
    }

    /// The rest of the proposal rule, once every body is held; accepts, or answers `Missing`.
    fn finish_proposal(
        &mut self,
        from: MemberIndex,
        proposal: &Arc<Proposal>,
        digest: Digest,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let id = proposal.id;
        match self.check_with_bodies(proposal) {
            Ok(()) => {}
            Err(ProposalCheck::Invalid(fault)) => {
                self.culprit(from, Offence::InvalidProposal(fault));
                return Delivery::Rejected(fault.into());
            }
            Err(ProposalCheck::Missing(items, observations)) => {
                self.send(
                    from,
                    Message::Missing(Arc::new(Missing {
                        id,
                        items,
                        observations,
                    })),
                );
                return Delivery::Accepted;
            }
        }
        let Some(keys) = self.keys.clone() else {
            return Delivery::Ignored;
        };
        // Accept: remember what we accepted and why (the superset rule must survive a
        // restart), then commit to a fresh nonce. The observations were verified above.
        for o in &proposal.observations {
            self.note_observation(o.clone());
            self.persist_vouch(o);
        }
        let unit = id.unit;
        let state = self.units.entry(unit).or_default();
        let grows = proposal.items().any(|d| !state.locked.contains(d));
        if grows {
            let record = Arc::new(AcceptedRecord {
                id,
                proposal: digest,
                statements: proposal.statements.clone(),
            });
            state.locked.extend(proposal.items().copied());
            state.accepted.push(record.clone());
            self.outputs
                .push_back(Output::Persist(Record::Accepted(record)));
        }
        let (nonces, commitments) = frost::round1::commit(keys.key_package.signing_share(), rng);
        let message = Arc::new(signing_message(self.net.id(), &unit, &proposal.statements));
        let state = self.units.entry(unit).or_default();
        // One signer state per attempt: a newer revision of the attempt replaces the older one
        // (its sessions are over), and no attempt's state can evict another's.
        state.signer.insert(
            id.attempt,
            SignerSlot {
                id,
                message,
                nonces: Some(SingleUseNonces(nonces)),
                commitments,
            },
        );
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

    /// Persists `signed` as a vouch record once (it justifies a locked item after a restart).
    fn persist_vouch(&mut self, signed: &Arc<SignedObservation>) {
        let Some(entry) = self
            .periods
            .get_mut(&signed.observation.period)
            .and_then(|p| p.observations.get_mut(&signed.observation.member))
            .and_then(|v| {
                v.iter_mut()
                    .find(|e| e.signed.observation == signed.observation)
            })
        else {
            return;
        };
        if entry.persisted {
            return;
        }
        entry.persisted = true;
        let record = entry.signed.clone();
        self.outputs
            .push_back(Output::Persist(Record::Vouch(record)));
    }

    /// The proposal rule, part 1 (`docs/protocol.md` §13, rules 1-5): everything that needs no
    /// evidence body. Returns the named items whose bodies this member lacks.
    fn check_without_bodies(&self, p: &Proposal) -> Result<BTreeSet<Digest>, ProposalFault> {
        let unit = p.id.unit;
        let period = unit.period();
        let labs = unit.labs(&self.net);
        let limits = self.net.limits();
        // 1. One statement per lab of the unit, for this network, policy and slot, with sorted
        //    distinct evidence, and no more items than vouching allows.
        if p.statements.len() != labs.len() {
            return Err(ProposalFault::StatementCount);
        }
        for (statement, lab) in p.statements.iter().zip(&labs) {
            if statement.network_id != *self.net.id()
                || statement.policy_hash != *self.net.policy_hash()
            {
                return Err(ProposalFault::WrongNetwork);
            }
            if statement.slot.period != period || statement.slot.lab != self.net.lab_id(*lab) {
                return Err(ProposalFault::WrongSlot);
            }
            if !statement.evidence_is_canonical() {
                return Err(ProposalFault::EvidenceOrder);
            }
            if statement.evidence.len() > limits.items_per_unit(1) {
                return Err(ProposalFault::TooManyItems);
            }
        }
        if p.items().count() > limits.items_per_unit(labs.len()) {
            return Err(ProposalFault::TooManyItems);
        }
        // 2. At most n + f observations, at most two per member, each for this period and
        //    within the syntax rules.
        if p.observations.len() > limits.observations_per_proposal {
            return Err(ProposalFault::TooManyObservations);
        }
        let mut per_member: BTreeMap<MemberIndex, usize> = BTreeMap::new();
        for o in &p.observations {
            if o.observation.period != period || o.observation.check(&self.net).is_err() {
                return Err(ProposalFault::MalformedObservation);
            }
            let c = per_member.entry(o.observation.member).or_default();
            *c += 1;
            if *c > 2 {
                return Err(ProposalFault::TooManyObservations);
            }
        }
        // 3. Every observation verifies (one batch; those already held verified are not checked
        //    again). All of them: a forged voucher must never count, even for an item this
        //    member admitted itself.
        if !self.check_relayed(period, &p.observations).is_empty() {
            return Err(ProposalFault::BadlySignedObservation);
        }
        // 4. Every item is mentioned by f + 1 distinct members (its place is checked once its
        //    body is held).
        let quorum = self.net.vouch_quorum();
        let named: BTreeSet<&Digest> = p.items().collect();
        let mut mentioned: BTreeMap<&Digest, BTreeSet<MemberIndex>> = BTreeMap::new();
        for o in &p.observations {
            for d in o.observation.digests() {
                if named.contains(d) {
                    mentioned.entry(d).or_default().insert(o.observation.member);
                }
            }
        }
        if named
            .iter()
            .any(|d| mentioned.get(d).map_or(0, BTreeSet::len) < quorum)
        {
            return Err(ProposalFault::NotVouched);
        }
        // 5. The bodies to fetch.
        Ok(p.items()
            .filter(|d| !self.evidence.contains_key(*d))
            .copied()
            .collect())
    }

    /// The proposal rule, part 2 (rules 6-8 and the superset rule), with every body held.
    fn check_with_bodies(&mut self, p: &Proposal) -> Result<(), ProposalCheck> {
        let unit = p.id.unit;
        let period = unit.period();
        let labs = unit.labs(&self.net);
        let limits = self.net.limits().clone();
        let quorum = self.net.vouch_quorum();
        let invalid = |f: ProposalFault| Err(ProposalCheck::Invalid(f));
        let carried = Self::listings(&labs, p.observations.iter().map(|o| &**o));
        let mut per_inspector: BTreeMap<MemberIndex, usize> = BTreeMap::new();
        for (statement, lab) in p.statements.iter().zip(&labs) {
            let mut items = Vec::with_capacity(statement.evidence.len());
            let mut attestations = 0;
            let mut in_slot: BTreeMap<MemberIndex, usize> = BTreeMap::new();
            for d in &statement.evidence {
                // 6. Each item is one of this slot's (bodies are validated when stored).
                let Some(e) = self.evidence.get(d) else {
                    return invalid(ProposalFault::ItemOfAnotherSlot);
                };
                if e.period != period || e.lab != *lab {
                    return invalid(ProposalFault::ItemOfAnotherSlot);
                }
                // 7. Vouched in place by f + 1 distinct members among the proposal's
                //    observations, and within the per-slot bounds vouching implies.
                if vouch_count(&carried, *lab, e.place, d) < quorum {
                    return invalid(ProposalFault::NotVouched);
                }
                let over = match e.place {
                    Place::Attestation => {
                        attestations += 1;
                        attestations > limits.vouched_attestations_per_slot
                    }
                    Place::Report(i) => {
                        let slot = in_slot.entry(i).or_default();
                        let total = per_inspector.entry(i).or_default();
                        *slot += 1;
                        *total += 1;
                        *slot > limits.vouched_reports_per_inspector_slot
                            || *total > limits.vouched_reports_per_inspector
                    }
                };
                if over {
                    return invalid(ProposalFault::TooManyItems);
                }
                items.push((*d, &*e.evidence));
            }
            // 8. The verdict is the policy's.
            if policy::evaluate(&self.net.roster().policy, &items) != statement.verdict {
                return invalid(ProposalFault::WrongVerdict);
            }
        }
        // Superset: everything this member knows is vouched, or already accepted, must be in.
        // Only items held for the unit's slots (or locked) but left out can be missing; in the
        // common case there are none and nothing needs counting.
        let included: BTreeSet<Digest> = p.items().copied().collect();
        let locked: BTreeSet<Digest> = self
            .units
            .get(&unit)
            .map(|s| s.locked.clone())
            .unwrap_or_default();
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
            let known = Self::listings(
                &labs,
                p.observations
                    .iter()
                    .map(|o| &**o)
                    .chain(engine.stored_observations(period)),
            );
            outside
                .iter()
                .filter(|d| {
                    let e = &engine.evidence[*d];
                    locked.contains(*d) || vouch_count(&known, e.lab, e.place, d) >= quorum
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
        self.verify_stored(period, |o| wanted.iter().any(|d| o.observation.mentions(d)));
        let missing = candidates(self);
        if missing.is_empty() {
            return Ok(());
        }
        let mut observations: Vec<Arc<SignedObservation>> = self
            .periods
            .get(&period)
            .map(|s| {
                s.observations
                    .values()
                    .flatten()
                    .filter(|e| {
                        e.verified
                            && missing.iter().any(|d| {
                                let x = &self.evidence[d];
                                e.signed.observation.lists(x.lab, x.place, d)
                            })
                    })
                    .map(|e| e.signed.clone())
                    .collect()
            })
            .unwrap_or_default();
        observations.truncate(limits.observations_per_proposal);
        let mut items = missing;
        items.truncate(limits.items_per_unit(labs.len()));
        Err(ProposalCheck::Missing(items, observations))
    }

    fn on_sign_request(
        &mut self,
        from: MemberIndex,
        req: SignRequest,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let refuse = |why: SigningFault| Delivery::Rejected(MessageError::Signing(why));
        let unable = |why: CannotHelp| Delivery::Rejected(MessageError::CannotHelp(why));
        let unit = req.id.unit;
        if from != self.coordinator_of(&unit, req.id.attempt) {
            return Delivery::Rejected(MessageError::NotCoordinator);
        }
        if self.decided.contains_key(&unit) {
            // A spare session's request arriving after the unit was co-signed.
            return Delivery::Ignored;
        }
        let Some(keys) = self.keys.clone() else {
            return unable(CannotHelp::NoKey);
        };
        let package = &*req.package;
        let t = self.net.t();
        let n = self.net.n();
        // FAULTS 8: fewer than t commitments, unknown identifiers, or none of ours: no share.
        if package.signing_commitments().len() < t {
            return refuse(SigningFault::TooFewCommitments);
        }
        if package
            .signing_commitments()
            .keys()
            .any(|id| MemberIndex::from_identifier(id, n).is_none())
        {
            return refuse(SigningFault::NonMember);
        }
        let Some(mine) = package.signing_commitment(&self.me.identifier()) else {
            return refuse(SigningFault::NoCommitmentOfOurs);
        };
        let commitment_digest = Frost::new(mine).digest("accord/commitment/v1");
        let package_digest = req.package.digest("accord/signing-package/v1");
        // FAULTS 1: a commitment bound to one package never signs another, before or after a
        // restart (the binding is persisted before the share leaves).
        let bound = self
            .protection
            .get(&commitment_digest)
            .map(|(r, _)| (r.package, r.share.clone()));
        if bound.as_ref().is_some_and(|(p, _)| *p != package_digest) {
            return refuse(SigningFault::CommitmentReused);
        }
        let Some(slot) = self
            .units
            .get_mut(&unit)
            .and_then(|s| s.signer.get_mut(&req.id.attempt))
            .filter(|s| s.id == req.id)
        else {
            return unable(CannotHelp::NoNonces);
        };
        // FAULTS 10: the message must be the statement we validated; we are never an oracle.
        if package.message() != slot.message.as_slice() {
            return refuse(SigningFault::WrongMessage);
        }
        // FAULTS 3: the same package again gets the same share again, never a new one.
        if let Some((_, share)) = bound {
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
            return refuse(SigningFault::StaleCommitment);
        }
        let Some(nonces) = slot.nonces.take() else {
            return unable(CannotHelp::NoncesUsed);
        };
        let share = match nonces.sign(package, &keys.key_package) {
            Ok(s) => Frost::new(s),
            Err(_) => return unable(CannotHelp::FrostRefused),
        };
        let (next_nonces, next) = frost::round1::commit(keys.key_package.signing_share(), rng);
        slot.nonces = Some(SingleUseNonces(next_nonces));
        slot.commitments = next;
        let record = SignedRecord {
            id: req.id,
            commitment: commitment_digest,
            package: package_digest,
            share: share.clone(),
        };
        self.protection
            .insert(commitment_digest, (record.clone(), unit.period()));
        // Protection record first: the share may leave only once it is durable.
        self.outputs
            .push_back(Output::Persist(Record::Signed(record)));
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
            return Delivery::Rejected(MessageError::Malformed(Malformed::Unit));
        }
        // Below the floor this member no longer holds what it decided, so it could not tell a
        // replayed smaller statement from news: ignore it (invariant 3's order is kept only by
        // comparing with what is held).
        if cosigned.unit.period() < self.decided_floor() {
            return Delivery::Ignored;
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
            return Delivery::Rejected(MessageError::Malformed(Malformed::CoSignedShape));
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
            state.pending = None;
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

    /// The first period whose state is kept in memory (`next_close − retain_periods`).
    fn horizon(&self) -> Option<Period> {
        self.next_close
            .0
            .checked_sub(self.config.retain_periods)
            .map(Period)
    }

    /// The first period whose co-signed units are kept in memory; older ones are in storage
    /// only, and replays of them are ignored.
    fn decided_floor(&self) -> Period {
        let keep = self.config.retain_periods;
        Period(
            self.horizon()
                .map_or(0, |h| h.0.saturating_sub(keep.saturating_mul(16))),
        )
    }

    fn prune(&mut self) {
        let Some(horizon) = self.horizon() else {
            return;
        };
        let done = |engine: &Self, p: Period| {
            Unit::all_for(&engine.net, p)
                .iter()
                .all(|u| engine.decided.contains_key(u))
        };
        let old: Vec<Period> = self
            .periods
            .range(..horizon)
            .map(|(p, _)| *p)
            .filter(|p| done(self, *p))
            .collect();
        if old.is_empty() {
            return;
        }
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
        let floor = self.decided_floor();
        self.decided.retain(|u, _| u.period() >= floor);
        // Nonces of those periods are long gone (and never survive a restart): their bindings
        // are not needed any more.
        self.protection.retain(|_, (_, p)| *p >= floor);
        // Compact the record log to what is still kept.
        let snapshot = self.snapshot();
        self.outputs.push_back(Output::Snapshot(snapshot));
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
            // Only a confirmation that names this key counts (the signature was checked above).
            // One that names another key never replaces it: a member that signs two different
            // confirmations in one ceremony equivocated, and a later honest relay of its first
            // one must still complete the set.
            // Both confirmations of a pair are signed by the sender: proof of equivocation,
            // named once, in whichever order the two arrive.
            let sender = msg.sender;
            if !dkg::confirms(&msg, &key, ceremony) {
                if self.mismatched_confirms.insert(sender)
                    && self.pending_confirms.contains_key(&sender)
                {
                    self.culprit(sender, Offence::Dkg(DkgOffence::EquivocatingConfirmation));
                }
                return Delivery::Ignored;
            }
            if self.pending_confirms.contains_key(&sender) {
                return Delivery::Duplicate;
            }
            if self.mismatched_confirms.contains(&sender) {
                self.culprit(sender, Offence::Dkg(DkgOffence::EquivocatingConfirmation));
            }
            self.pending_confirms.insert(sender, msg);
            // One confirmation per member is needed: check once all are in.
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
        self.completed_ceremony = Some(ceremony);
        self.pending_confirms.clear();
        self.mismatched_confirms.clear();
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
    /// The ceremony number is further ahead of the last one than members follow.
    #[error(
        "ceremony {ceremony} is too far ahead of the last one here; use at most {most} (members join ceremonies at most {MAX_CEREMONY_JUMP} ahead)"
    )]
    TooFarAhead {
        /// Asked for.
        ceremony: u32,
        /// The highest allowed now.
        most: u32,
    },
}

enum ProposalCheck {
    Invalid(ProposalFault),
    Missing(Vec<Digest>, Vec<Arc<SignedObservation>>),
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
            missing_from: BTreeSet::new(),
            wanted: BTreeSet::new(),
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
