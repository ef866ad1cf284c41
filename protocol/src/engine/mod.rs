//! The engine: one member's whole protocol behind one input/output API.
//!
//! The node and the simulator drive the same engine. Call order (as in quinn-proto and str0m):
//!
//! 1. feed an input: [`Engine::submit`], [`Engine::handle_message`], [`Engine::handle_timeout`],
//!    [`Engine::peer_connected`] or [`Engine::start_dkg`], passing the current [`Instant`] (which
//!    never goes backwards) and, where needed, a `CryptoRng`;
//! 2. drain [`Engine::poll_output`] until it returns `None`, performing each output **in order**:
//!    a [`Output::Persist`] or [`Output::StoreKey`] must be durable before any later `Send` or
//!    `Broadcast` leaves the process (that is how "a share never leaves before the protection
//!    record is on disk" and "acknowledged only once durable" are met). [`crate::driver`] does
//!    exactly this for every driver;
//! 3. call [`Engine::handle_timeout`] once `now` reaches [`Engine::poll_timeout`].
//!
//! The engine never reads a clock or the OS RNG and never iterates a hash map, so a run is a
//! function of its inputs.
//!
//! This file routes inputs to the concept that owns them; each sibling file owns one concept's
//! state and rules (`docs/protocol.md` names the file of every rule):
//!
//! | file | concept |
//! |---|---|
//! | `ledger.rs` | evidence held, admission (§8) |
//! | `observation.rs` | closing a period, observations, vouching (§10) |
//! | `propose.rs` | coordinators and proposal building (§11–12) |
//! | `rule.rs` | the proposal rule and the lock (§13) |
//! | `bodies.rs` | fetching evidence bodies (§7, §13) |
//! | `roast.rs` | ROAST signing sessions (§15) |
//! | `signer.rs` | nonces and verdict protection (§16) |
//! | `decided.rs` | co-signed units, sync, retention (§17–18) |
//! | `keygen.rs` | key generation glue (§22) |
//! | `refresh.rs` | proactive share refresh (§22.5) |
//! | `repair.rs` | share repair (§22.6) |
//! | `succession.rs` | membership change, the handing epoch's side (§22.7) |
//! | `record.rs` | records, restore and compaction (§21) |
//! | `timers.rs` | the deadline table |
//! | `output.rs`, `error.rs` | what the engine emits, why it refuses |

mod bodies;
mod decided;
mod error;
mod keygen;
mod ledger;
mod observation;
mod output;
mod propose;
mod record;
mod refresh;
mod repair;
mod roast;
mod rule;
mod signer;
mod succession;
mod timers;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use serde::Serialize;

use crate::crypto::{Digest, PublicKey, SecretKey, Verifier};
use crate::dkg::{DkgMachine, KeyMaterial};
use crate::evidence::{Evidence, EvidenceError};
use crate::message::{Message, ProposalId};
use crate::roster::{MemberIndex, Network, Period};
use crate::statement::{CoSigned, Unit};
use crate::time::Instant;

pub use crate::limits::MAX_ATTESTATIONS_PER_SLOT;
pub use error::{
    CannotHelp, DkgStartError, Malformed, MessageError, Offence, ProposalFault, SigningFault,
};
pub use output::{Event, Output};
pub use record::{AcceptedRecord, Record, SignedRecord};
pub use refresh::{RefreshAbortError, RefreshStartError};
pub use repair::{RepairError, RepairProgress};
pub use succession::{SuccessionError, SuccessionStatus};

use keygen::Keygen;
use ledger::Ledger;
use observation::ObservationBook;
use record::AcceptedRecord as Accepted;
use refresh::Refresh;
use repair::Repair;
use roast::Coordinator;
use rule::PendingProposal;
use signer::{Protection, SignerSlot};
use succession::Handover;
use timers::{Timers, soonest};

/// Most co-signed units sent in answer to one sync request.
pub const MAX_SYNC_UNITS: usize = 64;
/// How far ahead of the last ceremony a member starts or joins a ceremony.
pub const MAX_CEREMONY_JUMP: u32 = 16;

/// Engine tuning that does not affect agreement between members.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The first period this member observes (earlier periods are left to sync).
    pub first_period: Period,
    /// Decided periods kept in memory (older ones live only in storage).
    pub retain_periods: u64,
    /// How signatures are checked: directly (a node), or through a memo the engines of one
    /// process share (the simulator, whose members all check the same messages).
    pub verifier: Verifier,
    /// Start a share refresh after closing every k-th period (`docs/protocol.md` §22.5). Local
    /// for now (the roster's schedule is bound into the network id); one member with it set is
    /// enough, since the others join.
    pub refresh_every: Option<u64>,
    /// This network is a successor epoch that decides from this period on
    /// (`docs/protocol.md` §22.7): it closes no period before it, and none at all until it holds
    /// the co-signed succession that names its network and group key
    /// ([`Engine::adopt_succession`]).
    pub epoch_start: Option<Period>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            first_period: Period(0),
            retain_periods: 4,
            verifier: Verifier::default(),
            refresh_every: None,
            epoch_start: None,
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

/// What this member holds about one unit (a slot, or a whole period in per-period signing).
/// Each part belongs to the concept named beside it.
#[derive(Default)]
struct UnitState {
    /// The attempt this member's clock is in (`handle_timeout`, `propose::start_early`).
    attempt: Option<u32>,
    /// The proposal rule's lock: every item of a proposal this member accepted (`rule.rs`).
    locked: BTreeSet<Digest>,
    /// The accepted proposals that grew `locked` (kept for the record log's compaction).
    accepted: Vec<Arc<Accepted>>,
    /// Proposal ids judged, with their digests (`rule.rs`).
    seen: BTreeMap<ProposalId, Digest>,
    /// A proposal waiting for bodies (`rule.rs`, `bodies.rs`).
    pending: Option<PendingProposal>,
    /// Signer state per attempt: the latest accepted revision of that attempt (`signer.rs`).
    signer: BTreeMap<u32, SignerSlot>,
    /// This member's coordinator state, when it coordinates the current attempt (`roast.rs`).
    coordinator: Option<Coordinator>,
    /// `Bodies` answers sent per member in the current attempt (`bodies.rs`).
    fetch_answers: BTreeMap<MemberIndex, u32>,
    /// Coordinators told the decision, by attempt (`rule.rs`).
    told: BTreeSet<(MemberIndex, u32)>,
}

/// One member's protocol state machine.
pub struct Engine {
    net: Arc<Network>,
    me: MemberIndex,
    identity: SecretKey,
    config: EngineConfig,
    /// Key material and ceremonies (`keygen.rs`).
    keygen: Keygen,
    /// Share refresh ceremonies (`refresh.rs`).
    refresh: Refresh,
    /// Share repairs, asked or helped (`repair.rs`).
    repair: Repair,
    /// Membership change (`succession.rs`).
    handover: Handover,
    /// Evidence held (`ledger.rs`).
    ledger: Ledger,
    /// Observations of the kept periods (`observation.rs`).
    book: ObservationBook,
    /// Units this member takes part in.
    units: BTreeMap<Unit, UnitState>,
    /// The largest co-signed statement set per unit (`decided.rs`).
    decided: BTreeMap<Unit, Arc<CoSigned>>,
    /// Verdict protection (`signer.rs`).
    protection: Protection,
    /// The next period this member closes.
    next_close: Period,
    /// Deadlines (`timers.rs`).
    timers: Timers,
    /// The latest `now` an input carried (time never goes backwards).
    clock: Instant,
    outputs: VecDeque<Output>,
    /// Messages to this member itself, handled before the input returns.
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
        let next_close = config
            .first_period
            .max(config.epoch_start.unwrap_or(Period(0)));
        Self {
            net,
            me,
            identity,
            config,
            keygen: Keygen {
                keys: keys.map(Arc::new),
                ..Keygen::default()
            },
            refresh: Refresh::default(),
            repair: Repair::default(),
            handover: Handover::default(),
            ledger: Ledger::default(),
            book: ObservationBook::default(),
            units: BTreeMap::new(),
            decided: BTreeMap::new(),
            protection: Protection::new(),
            next_close,
            timers: Timers::default(),
            clock: Instant::from_millis(0),
            outputs: VecDeque::new(),
            loopback: VecDeque::new(),
        }
    }

    /// This member.
    pub fn me(&self) -> MemberIndex {
        self.me
    }

    /// The highest DKG ceremony number this member has started or joined.
    pub fn last_ceremony(&self) -> Option<u32> {
        self.keygen.last_ceremony
    }

    /// Every member's signed confirmation of the key ceremony this member's key came from
    /// (what a succession proposal carries to prove a new epoch's key, §22.7).
    pub fn key_confirmations(&self) -> Option<&[crate::dkg::DkgMessage]> {
        self.keygen.confirmations.as_deref()
    }

    /// For a successor epoch, the first period it decides (§22.7).
    pub fn epoch_start(&self) -> Option<Period> {
        self.config.epoch_start
    }

    /// The network.
    pub fn network(&self) -> &Arc<Network> {
        &self.net
    }

    /// The group key, once the key is confirmed.
    pub fn group_key(&self) -> Option<PublicKey> {
        self.keygen.keys.as_ref().map(|k| k.group_key())
    }

    /// The largest co-signed statement set per unit held in memory.
    pub fn decided(&self) -> impl Iterator<Item = &Arc<CoSigned>> {
        self.decided.values()
    }

    /// An evidence item held in memory.
    pub fn evidence(&self, digest: &Digest) -> Option<&Arc<Evidence>> {
        self.ledger.items.get(digest).map(|e| &e.evidence)
    }

    /// A summary of this member's state.
    pub fn status(&self) -> Status {
        Status {
            member: self.me,
            group_key: self.group_key(),
            dkg_phase: self
                .keygen
                .machine
                .as_ref()
                .map(|d| d.phase_name().to_string()),
            next_close: self.next_close,
            pending_units: self
                .units
                .keys()
                .filter(|u| !self.decided.contains_key(u) && self.is_closed(u.period()))
                .count(),
            decided_units: self.decided.len(),
            evidence_items: self.ledger.items.len(),
        }
    }

    /// The next output to perform, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Every queued output, in order (for [`crate::driver::perform`]).
    pub fn take_outputs(&mut self) -> Vec<Output> {
        self.outputs.drain(..).collect()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        #[cfg(debug_assertions)]
        self.check_timers();
        let units = self
            .keygen
            .keys
            .as_ref()
            .map(|_| soonest([self.timers.attempts.soonest(), self.timers.spares.soonest()]));
        let close = (!self.close_held()).then(|| self.net.schedule().close(self.next_close));
        soonest([
            close,
            self.succession_deadline(),
            self.keygen.machine.as_ref().and_then(DkgMachine::deadline),
            self.refresh.machine.as_ref().and_then(DkgMachine::deadline),
            units.flatten(),
        ])
    }

    /// A submission from a lab or an operator (HTTP or CLI). On `Ok`, the outputs already queued
    /// include the `Persist` of the item: acknowledge the submitter only after performing it.
    ///
    /// # Errors
    /// Why the item is refused; nothing is stored then.
    pub fn submit(&mut self, now: Instant, evidence: Evidence) -> Result<Digest, EvidenceError> {
        self.advance(now);
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
        self.advance(now);
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
        self.advance(now);
        if let Some(dkg) = self.keygen.machine.as_mut() {
            let out = dkg.handle_timeout(now);
            self.apply_dkg(out);
        }
        if let Some(refresh) = self.refresh.machine.as_mut() {
            let out = refresh.handle_timeout(now);
            self.apply_refresh(out);
        }
        let schedule = self.net.schedule().clone();
        while schedule.close(self.next_close) <= now && self.may_close(self.next_close) {
            let period = self.next_close;
            self.observe(period);
            self.next_close = Period(period.0 + 1);
            self.rearm_period(period);
            self.scheduled_refresh(now, period, rng);
        }
        if self.keygen.keys.is_some() {
            for unit in self.timers.attempts.due(now) {
                self.enter_attempt(unit, now);
                self.rearm(unit);
            }
        }
        // ROAST's spare sessions (`docs/protocol.md` §15): only a unit whose spare timer is due
        // can start one now (with no session open, t ready signers start one at once).
        for unit in self.timers.spares.due(now) {
            self.start_sessions(unit, now);
            self.rearm(unit);
        }
        self.succession_timeout(now, rng);
        self.prune();
        self.drain_loopback(now, rng);
    }

    /// `unit`'s attempt timer is due: if this member's clock entered a new attempt, record it,
    /// forget older attempts' state, and propose if this member coordinates it (§11).
    fn enter_attempt(&mut self, unit: Unit, now: Instant) {
        let schedule = self.net.schedule();
        if now < schedule.attempt_start(unit.period(), 0) {
            return;
        }
        let attempt = schedule.attempt_at(unit.period(), now);
        let coordinating =
            self.coordinator_of(&unit, attempt) == self.me && !self.handed_over(unit.period());
        let state = self.units.entry(unit).or_default();
        if state.attempt.is_some_and(|a| a >= attempt) {
            return;
        }
        state.attempt = Some(attempt);
        // Forget what belongs to attempts long gone: their signer states (and nonces), the
        // proposal ids seen, a proposal still waiting for bodies, and the answers given.
        // Proposals of attempts before `attempt - 1` are ignored from now on.
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

    /// The transport connected to `member`: ask it for anything decided that this member lacks.
    pub fn peer_connected(&mut self, member: MemberIndex) {
        if member == self.me || !self.net.is_member(member) {
            return;
        }
        let resend = self
            .keygen
            .machine
            .as_ref()
            .map(|d| d.messages_for(member))
            .unwrap_or_default();
        for m in resend {
            self.outputs.push_back(Output::Send {
                to: member,
                message: Message::Dkg(m),
            });
        }
        let resend = self
            .refresh
            .machine
            .as_ref()
            .map(|d| d.messages_for(member))
            .unwrap_or_default();
        for m in resend.into_iter().chain(self.refresh.withdrawal.clone()) {
            self.outputs.push_back(Output::Send {
                to: member,
                message: Message::Refresh(m),
            });
        }
        self.succession_for_peer(member);
        let request = self.sync_request();
        self.outputs.push_back(Output::Send {
            to: member,
            message: Message::SyncRequest(request),
        });
    }

    fn dispatch(
        &mut self,
        now: Instant,
        from: MemberIndex,
        message: Message,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        // The unit (or period) whose deadlines the message may move.
        let touched = match &message {
            Message::Observation(o) => Some(Err(o.observation.period)),
            Message::Proposal(p) => Some(Ok(p.id.unit)),
            Message::Accept(a) => Some(Ok(a.id.unit)),
            Message::Missing(m) => Some(Ok(m.id.unit)),
            Message::SignRequest(r) => Some(Ok(r.id.unit)),
            Message::Share(s) => Some(Ok(s.id.unit)),
            Message::CoSigned(c) => Some(Ok(c.unit)),
            Message::Fetch(f) => Some(Ok(f.unit)),
            Message::Bodies(b) => Some(Ok(b.unit)),
            Message::Evidence(_)
            | Message::SyncRequest(_)
            | Message::Dkg(_)
            | Message::Refresh(_)
            | Message::Repair(_)
            | Message::Succession(_) => None,
        };
        let delivery = self.route(now, from, message, rng);
        match touched {
            Some(Ok(unit)) => self.rearm(unit),
            Some(Err(period)) => self.rearm_period(period),
            None => {}
        }
        delivery
    }

    /// Hands a message to the concept that owns it.
    fn route(
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
            Message::Refresh(d) => self.on_refresh(now, from, d, rng),
            Message::Repair(r) => self.on_repair(now, from, r, rng),
            Message::Succession(s) => self.on_succession(now, from, s, rng),
        }
    }

    /// Recomputes the deadlines of every unit of `period`.
    fn rearm_period(&mut self, period: Period) {
        for unit in Unit::all_for(&self.net, period) {
            self.rearm(unit);
        }
    }

    /// Time never goes backwards: every input's `now` is at or after the previous one's.
    fn advance(&mut self, now: Instant) {
        assert!(
            now >= self.clock,
            "time went backwards: an input at {now} after one at {}",
            self.clock
        );
        self.clock = now;
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
}

/// A small network with dealt keys and a lab's items, for the unit tests of the engine's parts.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use crate::crypto::SecretKey;
    use crate::dkg::{KeyMaterial, deal};
    use crate::evidence::Evidence;
    use crate::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
    use crate::roster::{LabIndex, Network, Period};

    /// n members, `labs` labs, keys dealt; seeded.
    pub(crate) struct Small {
        pub(crate) tn: Testnet,
        pub(crate) net: Arc<Network>,
        pub(crate) keys: Vec<KeyMaterial>,
        pub(crate) rng: ChaCha20Rng,
    }

    impl Small {
        pub(crate) fn new(n: usize, labs: usize) -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(n as u64 * 31 + labs as u64);
            let tn = Testnet::generate(&TestnetSpec::new(n, labs, 1_000_000), &mut rng, |k| {
                k.to_hex()
            });
            let net = Network::new(tn.roster.clone()).expect("a valid roster");
            let keys = deal(&net, &mut rng).expect("dealt keys");
            Self { tn, net, keys, rng }
        }

        /// Member `i`'s identity key.
        pub(crate) fn identity(&self, i: usize) -> SecretKey {
            SecretKey::from_seed(&self.tn.members[i].seed())
        }

        /// `lab`'s items for `period` under `conduct`, issued at the period's start.
        pub(crate) fn items(
            &mut self,
            lab: u16,
            period: Period,
            conduct: LabConduct,
        ) -> Vec<Evidence> {
            let at = self.net.schedule().start(period);
            lab_submissions(
                self.net.id(),
                self.net.lab_id(LabIndex(lab)),
                &self.tn.labs[usize::from(lab)],
                period,
                &self.net.roster().policy,
                conduct,
                at,
                &mut self.rng,
            )
        }
    }
}
