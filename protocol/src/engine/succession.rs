//! Membership change, the handing epoch's side (`docs/protocol.md` §22.7): an operator approves
//! a succession, the approving members co-sign it in ROAST sessions with the epoch's group key,
//! and the handover rule keeps every period decided by exactly one epoch.
//!
//! The rule, per member of epoch e, for a succession at period P:
//! - it approves only if it has closed no period ≥ P and accepted no proposal for one, and it
//!   approves at most one succession (persisted before anything leaves);
//! - once it approved, it accepts no proposal for a period ≥ P and closes none;
//! - once it released a share of the succession it is bound: it never decides a period ≥ P in
//!   epoch e. If it reaches P's close without having released one, the approval lapses
//!   (persisted) and it never releases one after: epoch e decides P.
//!
//! Any t members that sign an epoch-e statement for a period ≥ P and any t that sign the
//! succession share an honest member, who did at most one of the two.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

use crate::crypto::{Digest, Frost, Signature, verify_strict};
use crate::message::{Message, SuccessionMessage};
use crate::roster::{MemberIndex, Period};
use crate::succession::{SignedSuccession, SuccessionProposal, SuccessionRefusal};
use crate::time::Instant;

use super::error::{Malformed, Offence};
use super::signer::SingleUseNonces;
use super::{Delivery, Engine, Event, MessageError, Output, Record};

/// Sessions a coordinator keeps open at once (older ones are dropped; their signers are ready
/// again once they answer a newer one).
const MAX_SESSIONS: usize = 8;

/// Distinct offers checked per coordinator (each check verifies a roster and n signatures, so a
/// faulty member must not be able to make this member check an endless stream of them).
const MAX_OFFERS_CHECKED: u32 = 8;

/// Why an operator's approval (or its withdrawal) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SuccessionError {
    /// The proposal does not check out.
    #[error(transparent)]
    Invalid(#[from] SuccessionRefusal),
    /// This member holds no key share to sign with.
    #[error("this member holds no key share (run repair first)")]
    NoKey,
    /// This member already closed the first period the new epoch would decide.
    #[error(
        "period {first_period} is already closed here (next to close: {next_close}); propose a later first period"
    )]
    TooLate {
        /// The succession's first period.
        first_period: u64,
        /// This member's next period to close.
        next_close: u64,
    },
    /// This member already takes part in deciding a period the new epoch would decide.
    #[error("this member already accepted a proposal for period {0} or later")]
    AlreadySigning(u64),
    /// This member approved another succession (it approves one only).
    #[error("this member already approved succession {0}")]
    AlreadyApproved(Digest),
    /// The approval lapsed (its first period closed before it was co-signed).
    #[error("the approval of this succession lapsed; propose a new one with a later first period")]
    Lapsed,
    /// The epoch already handed over.
    #[error("this epoch already handed over at period {0}")]
    HandedOver(u64),
    /// Nothing to withdraw.
    #[error("this member has approved no succession")]
    NothingApproved,
    /// The approval cannot be withdrawn: this member released a share of the succession.
    #[error("this member released a share of the succession and is bound to it")]
    Bound,
    /// A successor epoch was handed a succession that does not name it.
    #[error("the succession does not hand over to this epoch: {0}")]
    NotOurs(&'static str),
}

impl SuccessionError {
    /// A stable short code (API, CLI).
    pub fn code(&self) -> &'static str {
        match self {
            SuccessionError::Invalid(_) => "succession-invalid",
            SuccessionError::NoKey => "no-key",
            SuccessionError::TooLate { .. } => "succession-too-late",
            SuccessionError::AlreadySigning(_) => "succession-too-late",
            SuccessionError::AlreadyApproved(_) => "succession-already-approved",
            SuccessionError::Lapsed => "succession-lapsed",
            SuccessionError::HandedOver(_) => "handed-over",
            SuccessionError::NothingApproved => "no-succession",
            SuccessionError::Bound => "succession-bound",
            SuccessionError::NotOurs(_) => "succession-not-ours",
        }
    }
}

/// What this member knows of a membership change, for status pages and the operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SuccessionStatus {
    /// The succession this member approved, and its first period.
    pub approved: Option<(Digest, Period)>,
    /// Whether this member released a share of it (and is bound to it).
    pub bound: bool,
    /// Whether this member coordinates its signing.
    pub coordinating: bool,
    /// Successions offered by coordinators that this member has not approved.
    pub offered: Vec<(Digest, Period)>,
    /// The co-signed succession, once known: this epoch decides no period from its first on.
    pub handed_over: Option<Arc<SignedSuccession>>,
    /// For a successor epoch: the co-signed succession that hands it its periods.
    pub adopted: Option<Arc<SignedSuccession>>,
}

/// The membership-change state of one member of the handing epoch.
#[derive(Default)]
pub(super) struct Handover {
    approved: Option<Approval>,
    lapsed: BTreeSet<Digest>,
    done: Option<Arc<SignedSuccession>>,
    /// Offers by coordinator, latest only (bounded by n).
    offered: BTreeMap<MemberIndex, (Digest, Arc<SuccessionProposal>)>,
    /// Offers checked per coordinator (at most [`MAX_OFFERS_CHECKED`] each).
    offers_checked: BTreeMap<MemberIndex, u32>,
    /// For a successor epoch: the succession that hands it its periods.
    predecessor: Option<Arc<SignedSuccession>>,
}

impl Handover {
    /// The approval of `succession`, if that is the one this member holds.
    fn approval_of(&mut self, succession: Digest) -> Option<&mut Approval> {
        self.approved.as_mut().filter(|a| a.digest == succession)
    }
}

struct Approval {
    proposal: Arc<SuccessionProposal>,
    digest: Digest,
    message: Vec<u8>,
    at: Instant,
    /// A share was released: the member is bound (it can no longer lapse).
    released: bool,
    /// One unused commitment per coordinator this member answered.
    nonces: BTreeMap<MemberIndex, (frost::round1::SigningCommitments, SingleUseNonces)>,
    coordinator: Option<Coordinating>,
    /// When this member coordinates if nothing was co-signed by then.
    drive_at: Option<Instant>,
}

impl Approval {
    fn first_period(&self) -> Period {
        self.proposal.succession.first_period
    }
}

#[derive(Default)]
struct Coordinating {
    ready: BTreeMap<MemberIndex, frost::round1::SigningCommitments>,
    /// Signers put in a session that have not answered it: not ready again until they do
    /// (ROAST), so a signer that answers with fresh commitments only cannot sit in every
    /// session.
    busy: BTreeSet<MemberIndex>,
    excluded: BTreeSet<MemberIndex>,
    /// Open sessions by package digest, oldest first by insertion number.
    sessions: BTreeMap<Digest, Session>,
    started: u64,
}

struct Session {
    number: u64,
    package: frost::SigningPackage,
    signers: BTreeSet<MemberIndex>,
    shares: BTreeMap<frost::Identifier, frost::round2::SignatureShare>,
}

impl Engine {
    /// The operator approves `proposal`: this member checks it (§22.7), persists its approval
    /// (the lock: it approves no other succession and accepts no proposal for a period from the
    /// succession's first on), and joins its co-signing: it answers the coordinator that
    /// offered it, or coordinates itself if none did. Approving the same succession again
    /// re-offers it.
    ///
    /// # Errors
    /// Why this member cannot approve it; nothing is persisted then.
    pub fn approve_succession(
        &mut self,
        now: Instant,
        proposal: SuccessionProposal,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Digest, SuccessionError> {
        self.advance(now);
        if let Some(done) = &self.handover.done {
            return Err(SuccessionError::HandedOver(done.succession.first_period.0));
        }
        let digest = proposal.succession.digest();
        if self.handover.lapsed.contains(&digest) {
            return Err(SuccessionError::Lapsed);
        }
        if let Some(a) = &self.handover.approved {
            if a.digest != digest {
                return Err(SuccessionError::AlreadyApproved(a.digest));
            }
            self.coordinate_succession(rng);
            self.drain_loopback(now, rng);
            return Ok(digest);
        }
        if self.keygen.keys.is_none() {
            return Err(SuccessionError::NoKey);
        }
        proposal.check(&self.net)?;
        let first = proposal.succession.first_period;
        if first < self.next_close {
            return Err(SuccessionError::TooLate {
                first_period: first.0,
                next_close: self.next_close.0,
            });
        }
        if let Some(p) = self.signing_from(first) {
            return Err(SuccessionError::AlreadySigning(p.0));
        }
        let proposal = Arc::new(proposal);
        self.outputs
            .push_back(Output::Persist(Record::SuccessionApproved {
                proposal: proposal.clone(),
                at: now,
            }));
        self.event(Event::SuccessionApproved {
            succession: digest,
            first_period: first,
        });
        let offered_by = self
            .handover
            .offered
            .iter()
            .find(|(_, (d, _))| *d == digest)
            .map(|(c, _)| *c);
        self.handover.offered.clear();
        self.handover.approved = Some(Approval::new(proposal, digest, now));
        match offered_by {
            Some(coordinator) => {
                self.send_ready(coordinator, rng);
                self.schedule_drive(now, coordinator);
            }
            None => self.coordinate_succession(rng),
        }
        self.drain_loopback(now, rng);
        Ok(digest)
    }

    /// The operator withdraws its approval, which it may only while this member has released
    /// no share of the succession.
    ///
    /// # Errors
    /// [`SuccessionError::NothingApproved`] or [`SuccessionError::Bound`].
    pub fn withdraw_succession(&mut self, now: Instant) -> Result<Digest, SuccessionError> {
        self.advance(now);
        let Some(a) = &self.handover.approved else {
            return Err(SuccessionError::NothingApproved);
        };
        if a.released {
            return Err(SuccessionError::Bound);
        }
        let digest = a.digest;
        self.lapse();
        Ok(digest)
    }

    /// What this member knows of a membership change.
    pub fn succession_status(&self) -> SuccessionStatus {
        let h = &self.handover;
        SuccessionStatus {
            approved: h.approved.as_ref().map(|a| (a.digest, a.first_period())),
            bound: h.approved.as_ref().is_some_and(|a| a.released),
            coordinating: h.approved.as_ref().is_some_and(|a| a.coordinator.is_some()),
            offered: h
                .offered
                .values()
                .map(|(d, p)| (*d, p.succession.first_period))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            handed_over: h.done.clone(),
            adopted: h.predecessor.clone(),
        }
    }

    /// A successor epoch takes up its periods: `signed` must be signed by the group key of
    /// `previous` (the epoch that hands over), name this network and this member's group key,
    /// and start at [`EngineConfig::epoch_start`](super::EngineConfig::epoch_start). From then on
    /// this member closes periods from that one on.
    ///
    /// # Errors
    /// Why the succession does not hand over to this epoch; nothing is persisted then.
    pub fn adopt_succession(
        &mut self,
        now: Instant,
        signed: SignedSuccession,
        previous: &crate::verify::TrustBundle,
    ) -> Result<(), SuccessionError> {
        self.advance(now);
        let s = &signed.succession;
        let Some(start) = self.config.epoch_start else {
            return Err(SuccessionError::NotOurs(
                "this node is not a successor epoch",
            ));
        };
        if self.handover.predecessor.as_deref() == Some(&signed) {
            return Ok(());
        }
        if self.handover.predecessor.is_some() {
            return Err(SuccessionError::NotOurs("another succession was adopted"));
        }
        let Some(own) = self.group_key().or(self.repair.known_group_key) else {
            return Err(SuccessionError::NoKey);
        };
        let key = previous
            .group_key
            .verifying_key()
            .map_err(|_| SuccessionError::NotOurs("the previous epoch's group key"))?;
        if s.previous != previous.network_id {
            return Err(SuccessionError::NotOurs(
                "it hands over another network than the bundle's",
            ));
        }
        if verify_strict(&key, &s.signing_bytes(), &signed.signature).is_err() {
            return Err(SuccessionError::NotOurs(
                "not signed by the previous epoch's group key",
            ));
        }
        if s.network_id != *self.net.id() {
            return Err(SuccessionError::NotOurs("it names another network"));
        }
        if s.group_key != own {
            return Err(SuccessionError::NotOurs("it names another group key"));
        }
        if s.first_period != start {
            return Err(SuccessionError::NotOurs(
                "its first period is not this epoch's start",
            ));
        }
        let signed = Arc::new(signed);
        self.outputs
            .push_back(Output::Persist(Record::Predecessor(signed.clone())));
        self.handover.predecessor = Some(signed);
        Ok(())
    }

    /// A successor epoch that does not hold its succession yet, or a period before its start.
    fn before_epoch(&self, period: Period) -> bool {
        self.config
            .epoch_start
            .is_some_and(|start| period < start || self.handover.predecessor.is_none())
    }

    /// The co-signed succession of this epoch, once known.
    pub fn succession(&self) -> Option<&Arc<SignedSuccession>> {
        self.handover.done.as_ref()
    }

    /// Whether this member holds an approval or its epoch handed over: it starts no refresh then
    /// (it still joins one that others started, so nobody is blamed for its absence).
    pub(super) fn handing_over(&self) -> bool {
        self.handover.approved.is_some() || self.handover.done.is_some()
    }

    /// Whether the handover rule keeps this member out of `period` in this epoch: it approved
    /// a succession that starts at or before it, or the epoch handed over.
    pub(super) fn handed_over(&self, period: Period) -> bool {
        let h = &self.handover;
        self.before_epoch(period)
            || h.done
                .as_ref()
                .is_some_and(|d| period >= d.succession.first_period)
            || h.approved
                .as_ref()
                .is_some_and(|a| period >= a.first_period())
    }

    /// Whether this member may close `period` now. At the first period of an approved
    /// succession not yet co-signed, an approval without a released share lapses (epoch e
    /// keeps the period); a bound one waits.
    pub(super) fn may_close(&mut self, period: Period) -> bool {
        if self.before_epoch(period) {
            return false;
        }
        if self
            .handover
            .done
            .as_ref()
            .is_some_and(|d| period >= d.succession.first_period)
        {
            return false;
        }
        match &self.handover.approved {
            Some(a) if period >= a.first_period() => {
                if a.released {
                    return false;
                }
                self.lapse();
                true
            }
            _ => true,
        }
    }

    /// Whether the handover holds `next_close` back (no close deadline then).
    pub(super) fn close_held(&self) -> bool {
        let p = self.next_close;
        self.before_epoch(p)
            || self
                .handover
                .done
                .as_ref()
                .is_some_and(|d| p >= d.succession.first_period)
            || self
                .handover
                .approved
                .as_ref()
                .is_some_and(|a| a.released && p >= a.first_period())
    }

    /// When this member next has succession work to do (start coordinating).
    pub(super) fn succession_deadline(&self) -> Option<Instant> {
        self.handover
            .approved
            .as_ref()
            .filter(|a| a.coordinator.is_none())
            .and_then(|a| a.drive_at)
    }

    pub(super) fn succession_timeout(
        &mut self,
        now: Instant,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        if self
            .succession_deadline()
            .is_some_and(|deadline| deadline <= now)
        {
            self.coordinate_succession(rng);
        }
    }

    /// The first period ≥ `first` this member already takes part in deciding, if any.
    fn signing_from(&self, first: Period) -> Option<Period> {
        let units = self
            .units
            .iter()
            .filter(|(u, s)| {
                u.period() >= first && (!s.accepted.is_empty() || !s.signer.is_empty())
            })
            .map(|(u, _)| u.period());
        let signed = self
            .protection
            .values()
            .map(|(_, p)| *p)
            .filter(|p| *p >= first);
        units.chain(signed).min()
    }

    fn lapse(&mut self) {
        let Some(a) = self.handover.approved.take() else {
            return;
        };
        // Unused nonces die here.
        drop(a.nonces);
        self.handover.lapsed.insert(a.digest);
        self.outputs
            .push_back(Output::Persist(Record::SuccessionLapsed {
                succession: a.digest,
            }));
        self.event(Event::SuccessionLapsed {
            succession: a.digest,
        });
    }

    /// If this member is still not coordinating when `coordinator` should have finished,
    /// it coordinates: members after `coordinator` in roster order take over one attempt
    /// timeout apart, so a silent or withholding coordinator delays the succession by at most
    /// f + 1 attempt timeouts.
    fn schedule_drive(&mut self, now: Instant, coordinator: MemberIndex) {
        let n = self.net.n() as u64;
        let rank = (u64::from(self.me.0) + n - u64::from(coordinator.0)) % n;
        let step = self.net.schedule().attempt_timeout_ms;
        if let Some(a) = self.handover.approved.as_mut()
            && a.drive_at.is_none()
        {
            a.drive_at = Some(now.saturating_add(core::time::Duration::from_millis(
                step.saturating_mul(rank.max(1)),
            )));
        }
    }

    /// Becomes a coordinator of the approved succession: offers it to every member and is
    /// ready itself.
    fn coordinate_succession(&mut self, rng: &mut (impl RngCore + CryptoRng)) {
        let Some(a) = self.handover.approved.as_mut() else {
            return;
        };
        if a.coordinator.is_none() {
            a.coordinator = Some(Coordinating::default());
        }
        let proposal = a.proposal.clone();
        for m in self.net.members() {
            if m != self.me {
                self.send(
                    m,
                    Message::Succession(SuccessionMessage::Propose(proposal.clone())),
                );
            }
        }
        self.send_ready(self.me, rng);
    }

    /// A fresh commitment for `coordinator` (replacing any unused one for it).
    fn send_ready(&mut self, coordinator: MemberIndex, rng: &mut (impl RngCore + CryptoRng)) {
        let Some(keys) = self.keygen.keys.clone() else {
            return;
        };
        let Some(a) = self.handover.approved.as_mut() else {
            return;
        };
        let (nonces, commitments) = frost::round1::commit(keys.key_package.signing_share(), rng);
        a.nonces
            .insert(coordinator, (commitments, SingleUseNonces(nonces)));
        let succession = a.digest;
        self.send(
            coordinator,
            Message::Succession(SuccessionMessage::Ready {
                succession,
                commitments: Frost::new(commitments),
            }),
        );
    }

    /// The succession messages, by kind.
    pub(super) fn on_succession(
        &mut self,
        now: Instant,
        from: MemberIndex,
        message: SuccessionMessage,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        match message {
            SuccessionMessage::Propose(p) => self.on_succession_offer(now, from, p, rng),
            SuccessionMessage::Ready {
                succession,
                commitments,
            } => self.on_succession_ready(from, succession, commitments.into_inner()),
            SuccessionMessage::SignRequest {
                succession,
                package,
            } => self.on_succession_sign(from, succession, &package, rng),
            SuccessionMessage::Share {
                succession,
                package,
                share,
                next,
            } => self.on_succession_share(
                from,
                succession,
                package,
                share.into_inner(),
                next.into_inner(),
            ),
            SuccessionMessage::Done(signed) => self.on_succession_done(&signed),
        }
    }

    fn on_succession_offer(
        &mut self,
        now: Instant,
        from: MemberIndex,
        proposal: Arc<SuccessionProposal>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        if let Some(done) = self.handover.done.clone() {
            self.send(from, Message::Succession(SuccessionMessage::Done(done)));
            return Delivery::Ignored;
        }
        let digest = proposal.succession.digest();
        if let Some(a) = &self.handover.approved {
            if a.digest != digest {
                return Delivery::Ignored;
            }
            self.send_ready(from, rng);
            self.schedule_drive(now, from);
            return Delivery::Accepted;
        }
        if self.handover.lapsed.contains(&digest) {
            return Delivery::Ignored;
        }
        if self
            .handover
            .offered
            .get(&from)
            .is_some_and(|(d, _)| *d == digest)
        {
            return Delivery::Duplicate;
        }
        let checked = self.handover.offers_checked.entry(from).or_insert(0);
        if *checked >= MAX_OFFERS_CHECKED {
            return Delivery::Ignored;
        }
        *checked += 1;
        if proposal.check(&self.net).is_err() {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Succession));
        }
        let first_period = proposal.succession.first_period;
        self.handover.offered.insert(from, (digest, proposal));
        self.event(Event::SuccessionOffered {
            from,
            succession: digest,
            first_period,
        });
        Delivery::Accepted
    }

    fn on_succession_ready(
        &mut self,
        from: MemberIndex,
        succession: Digest,
        commitments: frost::round1::SigningCommitments,
    ) -> Delivery {
        let t = self.net.t();
        let Some(a) = self.handover.approved.as_mut() else {
            return Delivery::Ignored;
        };
        let Some(c) = a.coordinator.as_mut().filter(|_| a.digest == succession) else {
            return Delivery::Ignored;
        };
        // A signer in a session it has not answered is ready again only through its answer.
        if c.excluded.contains(&from) || c.busy.contains(&from) {
            return Delivery::Ignored;
        }
        c.ready.insert(from, commitments);
        if c.ready.len() >= t {
            self.start_succession_sessions();
        }
        Delivery::Accepted
    }

    /// ROAST: whenever t members are ready, a session with them.
    fn start_succession_sessions(&mut self) {
        let t = self.net.t();
        let mut requests = Vec::new();
        {
            let Some(a) = self.handover.approved.as_mut() else {
                return;
            };
            let Some(c) = a.coordinator.as_mut() else {
                return;
            };
            while c.ready.len() >= t {
                let signers: Vec<MemberIndex> = c.ready.keys().take(t).copied().collect();
                let commitments = signers
                    .iter()
                    .map(|s| (s.identifier(), c.ready.remove(s).expect("taken from ready")))
                    .collect();
                c.busy.extend(signers.iter().copied());
                let package = Frost::new(frost::SigningPackage::new(commitments, &a.message));
                let digest = package.digest("accord/signing-package/v1");
                c.started += 1;
                c.sessions.insert(
                    digest,
                    Session {
                        number: c.started,
                        package: (*package).clone(),
                        signers: signers.iter().copied().collect(),
                        shares: BTreeMap::new(),
                    },
                );
                while c.sessions.len() > MAX_SESSIONS {
                    let oldest = c
                        .sessions
                        .iter()
                        .min_by_key(|(_, s)| s.number)
                        .map(|(d, _)| *d)
                        .expect("non-empty");
                    // Its signers that never answered may offer again.
                    if let Some(gone) = c.sessions.remove(&oldest) {
                        for s in &gone.signers {
                            c.busy.remove(s);
                        }
                    }
                }
                for s in signers {
                    requests.push((s, package.clone()));
                }
            }
        }
        let succession = self.handover.approved.as_ref().map(|a| a.digest);
        if let Some(succession) = succession {
            for (to, package) in requests {
                self.send(
                    to,
                    Message::Succession(SuccessionMessage::SignRequest {
                        succession,
                        package,
                    }),
                );
            }
        }
    }

    fn on_succession_sign(
        &mut self,
        from: MemberIndex,
        succession: Digest,
        package: &Frost<frost::SigningPackage>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        let malformed = Delivery::Rejected(MessageError::Malformed(Malformed::Succession));
        let Some(keys) = self.keygen.keys.clone() else {
            return Delivery::Ignored;
        };
        let (t, n) = (self.net.t(), self.net.n());
        let me = self.me;
        let Some(a) = self.handover.approval_of(succession) else {
            // Not approved here, lapsed, or another succession: never a signing oracle.
            return Delivery::Ignored;
        };
        let commitments = package.signing_commitments();
        if commitments.len() < t
            || commitments
                .keys()
                .any(|id| MemberIndex::from_identifier(id, n).is_none())
            || package.message() != a.message.as_slice()
        {
            return malformed;
        }
        let Some(mine) = package.signing_commitment(&me.identifier()) else {
            return malformed;
        };
        // Only the unused commitment this member gave `from`, once.
        if a.nonces.get(&from).is_none_or(|(c, _)| *c != mine) {
            return Delivery::Ignored;
        }
        let (_, nonces) = a.nonces.remove(&from).expect("checked");
        let Ok(share) = nonces.sign(package, &keys.key_package) else {
            return Delivery::Ignored;
        };
        // ROAST: the answer carries this member's next commitment for `from`.
        let (next_nonces, next) = frost::round1::commit(keys.key_package.signing_share(), rng);
        a.nonces.insert(from, (next, SingleUseNonces(next_nonces)));
        if !a.released {
            a.released = true;
            // Bound from here on: durable before the share leaves.
            self.outputs
                .push_back(Output::Persist(Record::SuccessionShare { succession }));
        }
        self.send(
            from,
            Message::Succession(SuccessionMessage::Share {
                succession,
                package: package.digest("accord/signing-package/v1"),
                share: Frost::new(share),
                next: Frost::new(next),
            }),
        );
        Delivery::Accepted
    }

    fn on_succession_share(
        &mut self,
        from: MemberIndex,
        succession: Digest,
        package: Digest,
        share: frost::round2::SignatureShare,
        next: frost::round1::SigningCommitments,
    ) -> Delivery {
        let Some(keys) = self.keygen.keys.clone() else {
            return Delivery::Ignored;
        };
        let others = self.other_epoch_packages();
        let Some(a) = self.handover.approval_of(succession) else {
            return Delivery::Ignored;
        };
        let proposal = a.proposal.clone();
        let Some(c) = a.coordinator.as_mut() else {
            return Delivery::Ignored;
        };
        let Some(session) = c.sessions.get_mut(&package) else {
            return Delivery::Ignored;
        };
        if !session.signers.contains(&from) || session.shares.contains_key(&from.identifier()) {
            return Delivery::Ignored;
        }
        session.shares.insert(from.identifier(), share);
        c.busy.remove(&from);
        if !c.excluded.contains(&from) {
            c.ready.insert(from, next);
        }
        if session.shares.len() < session.signers.len() {
            if c.ready.len() >= self.net.t() {
                self.start_succession_sessions();
            }
            return Delivery::Accepted;
        }
        let session = c.sessions.remove(&package).expect("present");
        let aggregate = |public: &frost::keys::PublicKeyPackage| {
            frost::aggregate_custom(
                &session.package,
                &session.shares,
                public,
                frost::CheaterDetection::AllCheaters,
            )
        };
        // Around a share refresh a signer may still hold the other share epoch (as in §15):
        // a culprit is a signer whose share is invalid under every package.
        let mut outcome = None;
        let mut culprits: Option<BTreeSet<frost::Identifier>> = None;
        for public in std::iter::once(&keys.public).chain(others.iter()) {
            match aggregate(public) {
                Ok(signature) => {
                    outcome = Some(signature);
                    break;
                }
                Err(frost::Error::InvalidSignatureShare { culprits: named }) => {
                    let named: BTreeSet<_> = named.into_iter().collect();
                    culprits = Some(match culprits {
                        None => named,
                        Some(before) => before.intersection(&named).copied().collect(),
                    });
                }
                Err(_) => {}
            }
        }
        match outcome {
            Some(signature) => {
                let bytes = signature
                    .serialize()
                    .expect("an aggregated signature serializes");
                let signed = Arc::new(SignedSuccession {
                    succession: proposal.succession.clone(),
                    signature: Signature(bytes.try_into().expect("64 bytes")),
                });
                if self.accept_succession(signed.clone()) {
                    for m in self.net.members() {
                        if m != self.me {
                            self.send(
                                m,
                                Message::Succession(SuccessionMessage::Done(signed.clone())),
                            );
                        }
                    }
                }
            }
            None => {
                let n = self.net.n();
                let blamed: Vec<MemberIndex> = culprits
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|id| MemberIndex::from_identifier(id, n))
                    .collect();
                if let Some(c) = self
                    .handover
                    .approved
                    .as_mut()
                    .and_then(|a| a.coordinator.as_mut())
                {
                    for b in &blamed {
                        c.ready.remove(b);
                        c.excluded.insert(*b);
                    }
                }
                for b in blamed {
                    self.culprit(b, Offence::InvalidShare);
                }
                self.start_succession_sessions();
            }
        }
        Delivery::Accepted
    }

    fn on_succession_done(&mut self, signed: &Arc<SignedSuccession>) -> Delivery {
        if self.handover.done.as_ref() == Some(signed) {
            return Delivery::Duplicate;
        }
        if !self.verifies_as_succession(signed) {
            return Delivery::Rejected(MessageError::Malformed(Malformed::Succession));
        }
        if self.accept_succession(signed.clone()) {
            Delivery::Accepted
        } else {
            Delivery::Ignored
        }
    }

    /// Signed by this epoch's group key, handing over this network, well-shaped.
    fn verifies_as_succession(&self, signed: &SignedSuccession) -> bool {
        let s = &signed.succession;
        let Some(key) = self
            .group_key()
            .or(self.repair.known_group_key)
            .and_then(|k| k.verifying_key().ok())
        else {
            return false;
        };
        s.previous == *self.net.id()
            && s.check_shape().is_ok()
            && verify_strict(&key, &s.signing_bytes(), &signed.signature).is_ok()
    }

    /// Records the co-signed succession (once; a second, different one is a fork and is
    /// reported, the first stays).
    fn accept_succession(&mut self, signed: Arc<SignedSuccession>) -> bool {
        if let Some(held) = &self.handover.done {
            if **held != *signed {
                self.event(Event::SuccessionFork([held.clone(), signed]));
            }
            return false;
        }
        self.outputs
            .push_back(Output::Persist(Record::Succession(signed.clone())));
        self.handover.done = Some(signed.clone());
        if let Some(a) = self.handover.approved.as_mut() {
            a.coordinator = None;
            a.nonces.clear();
            a.drive_at = None;
        }
        self.handover.offered.clear();
        self.event(Event::SuccessionCoSigned(signed));
        true
    }

    /// On a new connection: the co-signed succession, or this coordinator's offer.
    pub(super) fn succession_for_peer(&mut self, member: MemberIndex) {
        let message = match (&self.handover.done, &self.handover.approved) {
            (Some(done), _) => SuccessionMessage::Done(done.clone()),
            (None, Some(a)) if a.coordinator.is_some() => {
                SuccessionMessage::Propose(a.proposal.clone())
            }
            _ => return,
        };
        self.send(member, Message::Succession(message));
    }

    /// Restores one succession record (`record.rs`).
    pub(super) fn restore_succession(&mut self, record: Record) {
        let h = &mut self.handover;
        match record {
            Record::SuccessionApproved { proposal, at } => {
                let digest = proposal.succession.digest();
                if !h.lapsed.contains(&digest) {
                    h.approved = Some(Approval::new(proposal, digest, at));
                }
            }
            Record::SuccessionShare { succession } => {
                if let Some(a) = h.approval_of(succession) {
                    a.released = true;
                }
            }
            Record::SuccessionLapsed { succession } => {
                h.lapsed.insert(succession);
                if h.approved.as_ref().is_some_and(|a| a.digest == succession) {
                    h.approved = None;
                }
            }
            Record::Succession(signed) => h.done = Some(signed),
            Record::Predecessor(signed) => h.predecessor = Some(signed),
            _ => {}
        }
        // A restarted approver lost its coordinator state and nonces: it offers again after
        // a delay by rank, unless a co-signed succession reaches it first.
        let me = u64::from(self.me.0);
        let step = self.net.schedule().attempt_timeout_ms;
        if let Some(a) = self.handover.approved.as_mut()
            && self.handover.done.is_none()
        {
            a.drive_at = Some(a.at.saturating_add(core::time::Duration::from_millis(
                step.saturating_mul(me + 1),
            )));
        }
    }

    /// The records that rebuild this member's succession state (`snapshot`).
    pub(super) fn succession_records(&self) -> Vec<Record> {
        let h = &self.handover;
        let mut out: Vec<Record> = h
            .lapsed
            .iter()
            .map(|d| Record::SuccessionLapsed { succession: *d })
            .collect();
        if let Some(a) = &h.approved {
            out.push(Record::SuccessionApproved {
                proposal: a.proposal.clone(),
                at: a.at,
            });
            if a.released {
                out.push(Record::SuccessionShare {
                    succession: a.digest,
                });
            }
        }
        out.extend(h.done.clone().map(Record::Succession));
        out.extend(h.predecessor.clone().map(Record::Predecessor));
        out
    }
}

impl Approval {
    fn new(proposal: Arc<SuccessionProposal>, digest: Digest, at: Instant) -> Self {
        let message = proposal.succession.signing_bytes();
        Self {
            proposal,
            digest,
            message,
            at,
            released: false,
            nonces: BTreeMap::new(),
            coordinator: None,
            drive_at: None,
        }
    }
}
