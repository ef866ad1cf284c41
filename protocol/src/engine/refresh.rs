//! Proactive share refresh (`docs/protocol.md` §22.5): the members run the DKG's phases again
//! over zero-constant polynomials, so the group key stays and every share changes; shares from
//! before the refresh are useless with shares from after it.
//!
//! The flow, the echo check, the confirmations and the catch-up of a restarted member are the
//! DKG's (`keygen.rs`), with two differences that keep the group's key usable whatever happens:
//! - the new share is stored as a *pending* key ([`Output::StorePendingKey`]) beside the
//!   current one, which keeps signing until every member's signed confirmation of the new
//!   public key package is in hand; only then is the new share written as the key
//!   ([`Output::StoreKey`]) and the pending one dropped. A ceremony that aborts before that
//!   leaves every member with its current share.
//! - a member holding a pending key neither starts nor joins another refresh: it collects the
//!   confirmations from peers (they are self-contained signed statements), or its operator
//!   abandons the pending key once the ceremony is known to have aborted everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

use crate::crypto::Digest;
use crate::dkg::{self, Ceremony, DkgBody, DkgMachine, DkgMessage, DkgOutput, KeyMaterial};
use crate::message::Message;
use crate::roster::MemberIndex;
use crate::time::Instant;

use super::{Delivery, Engine, Event, MAX_CEREMONY_JUMP, MessageError, Offence, Output, Record};

/// Refresh message digests remembered for deduplication, per member.
const MAX_REFRESH_SEEN_PER_MEMBER: usize = 64;

/// This member's refresh ceremonies.
#[derive(Default)]
pub(super) struct Refresh {
    /// The running (or last) ceremony.
    pub(super) machine: Option<DkgMachine>,
    /// Digests of verified refresh messages seen (deduplication).
    pub(super) seen: BTreeSet<Digest>,
    /// The highest refresh ceremony started or joined.
    pub(super) last_ceremony: Option<u32>,
    /// A refreshed share stored in the pending key file, with its ceremony, not yet seen
    /// confirmed by every member.
    pub(super) pending: Option<(u32, Arc<KeyMaterial>)>,
    /// Signed confirmations, collected from peers, that name `pending`.
    pub(super) pending_confirms: BTreeMap<MemberIndex, DkgMessage>,
    /// The last completed refresh and its signed confirmations (for peers to catch up).
    pub(super) completed: Option<(u32, Arc<[DkgMessage]>)>,
    /// The public key package in use before the last switch (public: no secret is kept).
    pub(super) previous_public: Option<frost_ed25519::keys::PublicKeyPackage>,
    /// This member's signed withdrawal from its last ceremony, which it left without a
    /// refreshed share (re-sent to peers that connect or ask).
    pub(super) withdrawal: Option<DkgMessage>,
    /// The last ceremony in which this member stored a share (and so confirmed, or may have):
    /// it never withdraws from it.
    pub(super) stored_in: Option<u32>,
}

/// Why a refresh cannot start here.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RefreshStartError {
    /// There is no confirmed key to refresh.
    #[error("this member has no confirmed group key to refresh")]
    NoKey,
    /// A ceremony is running.
    #[error("refresh ceremony {0} is still running")]
    Running(u32),
    /// This member approved a succession, or its epoch handed over: the shares it would
    /// refresh sign only this epoch's last periods and the succession (§22.7), and a refresh
    /// never spans a handover.
    #[error("this epoch is handing over (a succession is approved or co-signed): no refresh")]
    HandingOver,
    /// A refreshed share awaits its confirmations.
    #[error(
        "the share of refresh ceremony {0} awaits its confirmations; collect them from peers, or abandon it once that ceremony aborted everywhere"
    )]
    Pending(u32),
    /// The ceremony number was used before.
    #[error("refresh ceremony {ceremony} is not newer than the last one here ({last})")]
    CeremonyUsed {
        /// Asked for.
        ceremony: u32,
        /// Last used here.
        last: u32,
    },
    /// The ceremony number is further ahead of the last one than members follow.
    #[error("refresh ceremony {ceremony} is too far ahead; use at most {most}")]
    TooFarAhead {
        /// Asked for.
        ceremony: u32,
        /// The highest allowed now.
        most: u32,
    },
}

/// Why a refresh cannot be aborted here.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RefreshAbortError {
    /// No refresh is running here and no refreshed share is pending.
    #[error("no refresh ceremony is running here")]
    NotRunning,
    /// This member stored its share of the ceremony (and may have confirmed it): withdrawing
    /// is no longer possible, and dropping the share is safe only once the ceremony is known to
    /// have aborted at every member ([`Engine::abandon_refresh`]).
    #[error(
        "this member stored its share of refresh ceremony {0} and may have confirmed it; drop that share only once the ceremony is known to have aborted at every member (abandon it), or wait for the confirmations"
    )]
    ShareStored(u32),
}

impl Engine {
    /// Starts refresh ceremony `ceremony` (every member may start the same number; members
    /// that receive round-1 packages of a newer refresh join it). The operator's `refresh`
    /// command.
    ///
    /// # Errors
    /// Without a confirmed key, while a refresh runs or awaits confirmations, or with a
    /// ceremony number that is used or too far ahead.
    pub fn start_refresh(
        &mut self,
        now: Instant,
        ceremony: u32,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), RefreshStartError> {
        self.advance(now);
        self.begin_refresh(now, ceremony, false, rng)
    }

    /// Starts (or, with `replace`, joins in place of a running one) refresh `ceremony`.
    fn begin_refresh(
        &mut self,
        now: Instant,
        ceremony: u32,
        replace: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), RefreshStartError> {
        let Some(current) = self.keygen.keys.clone() else {
            return Err(RefreshStartError::NoKey);
        };
        if !replace && self.handing_over() {
            return Err(RefreshStartError::HandingOver);
        }
        if let Some((c, _)) = &self.refresh.pending {
            return Err(RefreshStartError::Pending(*c));
        }
        if let Some(m) = self.refresh.machine.as_ref().filter(|m| !m.is_finished())
            && !replace
        {
            return Err(RefreshStartError::Running(m.ceremony()));
        }
        let last = self.refresh.last_ceremony.unwrap_or(0);
        if self.refresh.last_ceremony.is_some_and(|c| c >= ceremony) {
            return Err(RefreshStartError::CeremonyUsed { ceremony, last });
        }
        if ceremony > last.saturating_add(MAX_CEREMONY_JUMP) {
            return Err(RefreshStartError::TooFarAhead {
                ceremony,
                most: last.saturating_add(MAX_CEREMONY_JUMP),
            });
        }
        // A running ceremony that this one replaces stored nothing here (a pending share
        // refuses above): say so, so members holding its share stop waiting for it.
        if let Some(replaced) = self
            .refresh
            .machine
            .as_ref()
            .filter(|m| !m.is_finished())
            .map(DkgMachine::ceremony)
        {
            self.withdraw(replaced);
        }
        // Persisted before the round-1 package leaves: a restarted member never sends a second,
        // different package for this ceremony (which peers would rightly call equivocation).
        self.refresh.last_ceremony = Some(ceremony);
        self.outputs
            .push_back(Output::Persist(Record::RefreshStarted { ceremony }));
        self.event(Event::RefreshStarted { ceremony });
        let (machine, out) = DkgMachine::start_refresh(
            self.net.clone(),
            self.me,
            &self.identity,
            ceremony,
            current,
            now,
            rng,
        );
        self.refresh.machine = Some(machine);
        self.refresh.seen.clear();
        self.apply_refresh(out);
        Ok(())
    }

    /// The refresh schedule ([`super::EngineConfig::refresh_every`]): after closing `period`,
    /// every k-th period, start the next ceremony number (members that started the same number
    /// run one ceremony; different numbers converge on the highest).
    pub(super) fn scheduled_refresh(
        &mut self,
        now: Instant,
        period: crate::roster::Period,
        rng: &mut (impl RngCore + CryptoRng),
    ) {
        let Some(k) = self.config.refresh_every.filter(|k| *k > 0) else {
            return;
        };
        if !period.0.saturating_add(1).is_multiple_of(k) {
            return;
        }
        let next = self.refresh.last_ceremony.unwrap_or(0).saturating_add(1);
        // Refused without a key, while one runs or awaits confirmations (the next turn retries),
        // and while the epoch hands over.
        let _ = self.begin_refresh(now, next, false, rng);
    }

    /// Drops a refreshed share that awaits confirmations (the operator's `refresh abandon`).
    /// Only safe once the ceremony is known to have aborted at every member: if every member
    /// confirmed it, the others sign with their new shares and this member needs a repair.
    /// Returns the abandoned ceremony.
    pub fn abandon_refresh(&mut self, now: Instant) -> Option<u32> {
        self.advance(now);
        let (ceremony, _) = self.refresh.pending.take()?;
        self.refresh.pending_confirms.clear();
        self.outputs.push_back(Output::StorePendingKey(None));
        Some(ceremony)
    }

    /// Aborts the running refresh ceremony here, while this member holds no share of it (the
    /// operator's `refresh abort`): its machine ends (event `RefreshAborted`) and its signed
    /// withdrawal goes to every member, so the ceremony can complete nowhere and every member
    /// keeps its current share (§22.5, withdrawal). Returns the aborted ceremony.
    ///
    /// # Errors
    /// No ceremony runs, or this member already stored its share of it
    /// ([`RefreshAbortError::ShareStored`]: see [`Engine::abandon_refresh`]).
    pub fn abort_refresh(&mut self, now: Instant) -> Result<u32, RefreshAbortError> {
        self.advance(now);
        if let Some((c, _)) = &self.refresh.pending {
            return Err(RefreshAbortError::ShareStored(*c));
        }
        let Some(machine) = self.refresh.machine.as_mut().filter(|m| !m.is_finished()) else {
            return Err(RefreshAbortError::NotRunning);
        };
        let ceremony = machine.ceremony();
        if self.refresh.stored_in == Some(ceremony) {
            return Err(RefreshAbortError::ShareStored(ceremony));
        }
        // Aborted without a stored share: `apply_refresh` withdraws.
        let out = machine.withdrawn();
        self.apply_refresh(out);
        Ok(ceremony)
    }

    /// The running refresh's phase, if one ran here.
    pub fn refresh_phase(&self) -> Option<&'static str> {
        self.refresh.machine.as_ref().map(DkgMachine::phase_name)
    }

    /// The refresh ceremony running here and its phase, while one runs.
    pub fn running_refresh(&self) -> Option<(u32, &'static str)> {
        self.refresh
            .machine
            .as_ref()
            .filter(|m| !m.is_finished())
            .map(|m| (m.ceremony(), m.phase_name()))
    }

    /// The highest refresh ceremony started or joined here (the next one must be higher).
    pub fn last_refresh(&self) -> Option<u32> {
        self.refresh.last_ceremony
    }

    /// The refresh ceremony whose share this member stored and which awaits every member's
    /// confirmation (the current share stays in use meanwhile).
    pub fn pending_refresh(&self) -> Option<u32> {
        self.refresh.pending.as_ref().map(|(c, _)| *c)
    }

    /// The last refresh ceremony completed here.
    pub fn completed_refresh(&self) -> Option<u32> {
        self.refresh.completed.as_ref().map(|(c, _)| *c)
    }

    pub(super) fn on_refresh(
        &mut self,
        now: Instant,
        from: MemberIndex,
        msg: DkgMessage,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        if self.keygen.keys.is_none() {
            return Delivery::Ignored;
        }
        if !self.net.is_member(msg.sender) {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        let relayable = matches!(
            msg.body,
            DkgBody::Round1(_) | DkgBody::Confirm { .. } | DkgBody::Withdraw
        );
        if from != msg.sender && !relayable {
            return Delivery::Rejected(MessageError::WrongSender);
        }
        let digest = msg.digest();
        if self.refresh.seen.contains(&digest) {
            return Delivery::Duplicate;
        }
        if !msg.verify_as(Ceremony::Refresh, &self.net) {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        let ceremony = msg.ceremony;
        if matches!(msg.body, DkgBody::Withdraw) {
            self.remember_refresh(digest);
            return self.on_withdrawal(&msg);
        }
        let active = self.refresh.machine.as_ref().map(DkgMachine::ceremony);
        let finished = self
            .refresh
            .machine
            .as_ref()
            .is_none_or(DkgMachine::is_finished);
        // A stored refreshed share whose confirmations this member did not all see: collect them
        // (as `keygen.rs` does for a DKG key) and activate the share once all n are in.
        if let (Some((c, key)), DkgBody::Confirm { .. }) = (&self.refresh.pending, &msg.body)
            && *c == ceremony
            && (active != Some(ceremony) || finished)
        {
            let key = key.clone();
            self.remember_refresh(digest);
            if !dkg::confirms(&msg, &key, ceremony) {
                return Delivery::Ignored;
            }
            if self.refresh.pending_confirms.contains_key(&msg.sender) {
                return Delivery::Duplicate;
            }
            self.refresh.pending_confirms.insert(msg.sender, msg);
            if self.refresh.pending_confirms.len() == self.net.n() {
                let all: Vec<DkgMessage> =
                    self.refresh.pending_confirms.values().cloned().collect();
                if dkg::confirmations_prove_as(Ceremony::Refresh, &self.net, &key, ceremony, &all) {
                    self.activate_refresh(ceremony, all);
                }
            }
            return Delivery::Accepted;
        }
        if active != Some(ceremony) {
            let last = self.refresh.last_ceremony.unwrap_or(0);
            let joinable = matches!(msg.body, DkgBody::Round1(_))
                && self.refresh.last_ceremony.is_none_or(|c| c < ceremony)
                && ceremony <= last.saturating_add(MAX_CEREMONY_JUMP);
            if !joinable {
                return Delivery::Ignored;
            }
            if self.refresh.pending.is_some() {
                // Maybe the others completed the pending one: ask the starter for its proof.
                let request = self.sync_request();
                self.send(from, Message::SyncRequest(request));
                return Delivery::Ignored;
            }
            // A newer ceremony replaces a running one that stored nothing (as a DKG's does):
            // members that started different numbers converge on the highest.
            if self.begin_refresh(now, ceremony, true, rng).is_err() {
                return Delivery::Ignored;
            }
        }
        self.remember_refresh(digest);
        let Some(machine) = self.refresh.machine.as_mut() else {
            return Delivery::Ignored;
        };
        let out = machine.handle(from, msg, now, &self.identity);
        self.apply_refresh(out);
        Delivery::Accepted
    }

    /// A member withdrew from ceremony `msg.ceremony`: it holds no share of it and will never
    /// confirm it, so the ceremony cannot complete. A pending share of it is dropped (the share
    /// in use stays), which frees this member for the next refresh.
    fn on_withdrawal(&mut self, msg: &DkgMessage) -> Delivery {
        let ceremony = msg.ceremony;
        // The running ceremony cannot complete: end it now rather than at its timeout.
        if let Some(machine) = self
            .refresh
            .machine
            .as_mut()
            .filter(|m| m.ceremony() == ceremony && !m.is_finished())
        {
            let out = machine.withdrawn();
            self.apply_refresh(out);
        }
        let Some((c, _)) = &self.refresh.pending else {
            return Delivery::Accepted;
        };
        if *c != ceremony {
            return Delivery::Accepted;
        }
        if self.refresh.pending_confirms.contains_key(&msg.sender) {
            // It signed a confirmation of this ceremony too.
            self.culprit(
                msg.sender,
                Offence::Dkg(dkg::DkgOffence::EquivocatingConfirmation),
            );
        }
        self.refresh.pending = None;
        self.refresh.pending_confirms.clear();
        self.outputs.push_back(Output::StorePendingKey(None));
        self.event(Event::RefreshAborted(dkg::DkgFailure {
            ceremony,
            culprits: Vec::new(),
        }));
        Delivery::Accepted
    }

    /// Signs and broadcasts this member's withdrawal from `ceremony`. Only for a ceremony it
    /// never confirmed: it confirms only after storing the pending share, which it holds until
    /// the ceremony completes here.
    pub(super) fn withdraw(&mut self, ceremony: u32) {
        if self
            .refresh
            .pending
            .as_ref()
            .is_some_and(|(c, _)| *c == ceremony)
            || self.completed_refresh() == Some(ceremony)
        {
            return;
        }
        let msg = DkgMessage::new_as(
            Ceremony::Refresh,
            &self.net,
            &self.identity,
            ceremony,
            self.me,
            None,
            DkgBody::Withdraw,
        );
        self.refresh.withdrawal = Some(msg.clone());
        self.outputs
            .push_back(Output::Broadcast(Message::Refresh(msg)));
    }

    fn remember_refresh(&mut self, digest: Digest) {
        if self.refresh.seen.len() < MAX_REFRESH_SEEN_PER_MEMBER * self.net.n() {
            self.refresh.seen.insert(digest);
        }
    }

    /// Every member confirmed the refreshed share: the completion record first, then the key
    /// file, then the pending key file is cleared (`record.rs` restores from any prefix).
    pub(super) fn activate_refresh(&mut self, ceremony: u32, confirmations: Vec<DkgMessage>) {
        let Some((_, key)) = self.refresh.pending.take() else {
            return;
        };
        self.refresh.pending_confirms.clear();
        self.outputs
            .push_back(Output::Persist(Record::RefreshComplete {
                ceremony,
                public_package: key.public_digest(),
                confirmations: confirmations.clone(),
            }));
        self.outputs
            .push_back(Output::StoreKey(Box::new((*key).clone())));
        self.outputs.push_back(Output::StorePendingKey(None));
        let group_key = key.group_key();
        self.refresh.previous_public = self.keygen.keys.as_ref().map(|k| k.public.clone());
        self.keygen.keys = Some(key);
        self.refresh.completed = Some((ceremony, confirmations.into()));
        self.event(Event::RefreshComplete {
            ceremony,
            group_key,
        });
    }

    pub(super) fn apply_refresh(&mut self, out: Vec<DkgOutput>) {
        let ceremony = self
            .refresh
            .machine
            .as_ref()
            .map_or(0, DkgMachine::ceremony);
        for o in out {
            match o {
                DkgOutput::Broadcast(m) => self
                    .outputs
                    .push_back(Output::Broadcast(Message::Refresh(m))),
                DkgOutput::Send(to, m) => self.send(to, Message::Refresh(m)),
                DkgOutput::Key(k) => {
                    self.refresh.stored_in = Some(ceremony);
                    self.refresh.pending = Some((ceremony, Arc::new((*k).clone())));
                    self.refresh.pending_confirms.clear();
                    self.outputs.push_back(Output::StorePendingKey(Some(k)));
                }
                DkgOutput::Complete { confirmations, .. } => {
                    self.activate_refresh(ceremony, confirmations);
                }
                DkgOutput::Aborted(failure) => {
                    for (m, offence) in &failure.culprits {
                        self.culprit(*m, Offence::Dkg(offence.clone()));
                    }
                    self.event(Event::RefreshAborted(failure));
                    // Aborted with the share stored: the others may have completed; ask them.
                    // Without it: this member never confirmed, so nobody can complete; say so.
                    if self
                        .refresh
                        .pending
                        .as_ref()
                        .is_some_and(|(c, _)| *c == ceremony)
                    {
                        let request = self.sync_request();
                        let me = self.me;
                        let peers: Vec<MemberIndex> =
                            self.net.members().filter(|m| *m != me).collect();
                        for m in peers {
                            self.send(m, Message::SyncRequest(request.clone()));
                        }
                    } else {
                        self.withdraw(ceremony);
                    }
                }
            }
        }
    }

    /// The public key packages of the other refresh epoch that a signer may still (or already)
    /// use: the one before this member's last switch, and its pending one.
    pub(super) fn other_epoch_packages(&self) -> Vec<frost_ed25519::keys::PublicKeyPackage> {
        self.refresh
            .previous_public
            .iter()
            .cloned()
            .chain(self.refresh.pending.as_ref().map(|(_, k)| k.public.clone()))
            .collect()
    }

    /// The signed confirmations of the last completed refresh, for a peer that asked.
    pub(super) fn refresh_confirmations(&self) -> Vec<DkgMessage> {
        self.refresh
            .completed
            .as_ref()
            .map(|(_, c)| c.to_vec())
            .into_iter()
            .flatten()
            .chain(self.refresh.withdrawal.clone())
            .collect()
    }
}
