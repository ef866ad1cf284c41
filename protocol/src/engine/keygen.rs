//! Key generation glue (`docs/protocol.md` §22): drives the DKG machine, stores the key before
//! confirming it, and lets a member that missed confirmations collect them from peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::Digest;
use crate::dkg::{self, DkgBody, DkgMachine, DkgMessage, DkgOffence, DkgOutput, KeyMaterial};
use crate::message::Message;
use crate::roster::MemberIndex;
use crate::time::Instant;

use super::{
    Delivery, DkgStartError, Engine, Event, MAX_CEREMONY_JUMP, MessageError, Offence, Output,
    Record,
};

/// DKG message digests remembered for deduplication, per member.
const MAX_DKG_SEEN_PER_MEMBER: usize = 64;

/// This member's key material and key ceremonies.
#[derive(Default)]
pub(super) struct Keygen {
    /// The confirmed key share.
    pub(super) keys: Option<Arc<KeyMaterial>>,
    /// A stored key not yet seen confirmed by every member.
    pub(super) unconfirmed: Option<Arc<KeyMaterial>>,
    /// Signed confirmations, collected from peers, that name `unconfirmed`.
    pub(super) pending_confirms: BTreeMap<MemberIndex, DkgMessage>,
    /// Members that also signed a confirmation of another key (blamed once both are seen).
    pub(super) mismatched_confirms: BTreeSet<MemberIndex>,
    /// The signed confirmations of the ceremony that produced `keys`, for peers to recover.
    pub(super) confirmations: Option<Arc<[DkgMessage]>>,
    /// The ceremony that produced `keys`, once confirmed.
    pub(super) completed_ceremony: Option<u32>,
    /// The running (or last) ceremony.
    pub(super) machine: Option<DkgMachine>,
    /// Digests of verified DKG messages seen (deduplication).
    pub(super) seen: BTreeSet<Digest>,
    /// The highest ceremony started or joined.
    pub(super) last_ceremony: Option<u32>,
}

impl Engine {
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
        self.advance(now);
        if self.keygen.keys.is_some() {
            return Err(DkgStartError::HaveKey);
        }
        if self.keygen.last_ceremony.is_some_and(|c| c >= ceremony) {
            return Err(DkgStartError::CeremonyUsed {
                ceremony,
                last: self.keygen.last_ceremony.unwrap_or(0),
            });
        }
        // Ceremony numbers only grow, so one far ahead would burn the rest of the range (u32::MAX
        // would leave no higher number for a retry).
        let last = self.keygen.last_ceremony.unwrap_or(0);
        if ceremony > last.saturating_add(MAX_CEREMONY_JUMP) {
            return Err(DkgStartError::TooFarAhead {
                ceremony,
                most: last.saturating_add(MAX_CEREMONY_JUMP),
            });
        }
        self.keygen.last_ceremony = Some(ceremony);
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
        self.keygen.machine = Some(machine);
        self.keygen.seen.clear();
        self.apply_dkg(out);
        Ok(())
    }

    pub(super) fn on_dkg(
        &mut self,
        now: Instant,
        from: MemberIndex,
        msg: DkgMessage,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Delivery {
        if self.keygen.keys.is_some() {
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
        if self.keygen.seen.contains(&digest) {
            return Delivery::Duplicate;
        }
        // Check the author's signature before the message can change anything here.
        if !msg.verify(&self.net) {
            return Delivery::Rejected(MessageError::BadSignature);
        }
        let ceremony = msg.ceremony;
        let active = self.keygen.machine.as_ref().map(DkgMachine::ceremony);
        // A member that stored its key but did not see every confirmation (it restarted, or its
        // Confirm phase timed out while the others completed) collects the signed confirmations
        // from peers' catch-up answers and activates its key once they prove that every member
        // holds the same key.
        let collecting = self.keygen.last_ceremony == Some(ceremony)
            && (active != Some(ceremony)
                || self
                    .keygen
                    .machine
                    .as_ref()
                    .is_some_and(DkgMachine::is_finished));
        if let (Some(key), DkgBody::Confirm { .. }, true) =
            (&self.keygen.unconfirmed, &msg.body, collecting)
        {
            let key = key.clone();
            if self.keygen.seen.len() < MAX_DKG_SEEN_PER_MEMBER * self.net.n() {
                self.keygen.seen.insert(digest);
            }
            // Only a confirmation that names this key counts (the signature was checked above).
            // One that names another key never replaces it: a member that signs two different
            // confirmations in one ceremony equivocated, and a later honest relay of its first
            // one must still complete the set.
            // Both confirmations of a pair are signed by the sender: proof of equivocation,
            // named once, in whichever order the two arrive.
            let sender = msg.sender;
            if !dkg::confirms(&msg, &key, ceremony) {
                if self.keygen.mismatched_confirms.insert(sender)
                    && self.keygen.pending_confirms.contains_key(&sender)
                {
                    self.culprit(sender, Offence::Dkg(DkgOffence::EquivocatingConfirmation));
                }
                return Delivery::Ignored;
            }
            if self.keygen.pending_confirms.contains_key(&sender) {
                return Delivery::Duplicate;
            }
            if self.keygen.mismatched_confirms.contains(&sender) {
                self.culprit(sender, Offence::Dkg(DkgOffence::EquivocatingConfirmation));
            }
            self.keygen.pending_confirms.insert(sender, msg);
            // One confirmation per member is needed: check once all are in.
            if self.keygen.pending_confirms.len() == self.net.n() {
                let all: Vec<DkgMessage> = self.keygen.pending_confirms.values().cloned().collect();
                if dkg::confirmations_prove(&self.net, &key, ceremony, &all) {
                    self.activate_key(ceremony, all);
                }
            }
            return Delivery::Accepted;
        }
        if active != Some(ceremony) {
            // Join a newer ceremony that another member started with a signed round-1 package,
            // but not one absurdly far ahead (which would burn the ceremony numbers).
            let last = self.keygen.last_ceremony.unwrap_or(0);
            let joinable = matches!(msg.body, DkgBody::Round1(_))
                && self.keygen.last_ceremony.is_none_or(|c| c < ceremony)
                && ceremony <= last.saturating_add(MAX_CEREMONY_JUMP);
            if !joinable || self.start_dkg(now, ceremony, rng).is_err() {
                return Delivery::Ignored;
            }
        }
        if self.keygen.seen.len() < MAX_DKG_SEEN_PER_MEMBER * self.net.n() {
            self.keygen.seen.insert(digest);
        }
        let Some(dkg) = self.keygen.machine.as_mut() else {
            return Delivery::Ignored;
        };
        let out = dkg.handle(from, msg, now, &self.identity);
        self.apply_dkg(out);
        Delivery::Accepted
    }

    pub(super) fn activate_key(&mut self, ceremony: u32, confirmations: Vec<DkgMessage>) {
        let Some(key) = self.keygen.unconfirmed.take() else {
            return;
        };
        let group_key = key.group_key();
        self.keygen.keys = Some(key);
        self.keygen.completed_ceremony = Some(ceremony);
        self.keygen.pending_confirms.clear();
        self.keygen.mismatched_confirms.clear();
        self.outputs.push_back(Output::Persist(Record::DkgComplete {
            ceremony,
            group_key,
            confirmations: confirmations.clone(),
        }));
        self.keygen.confirmations = Some(confirmations.into());
        self.event(Event::DkgComplete { group_key });
    }

    pub(super) fn apply_dkg(&mut self, out: Vec<DkgOutput>) {
        for o in out {
            match o {
                DkgOutput::Broadcast(m) => {
                    self.outputs.push_back(Output::Broadcast(Message::Dkg(m)))
                }
                DkgOutput::Send(to, m) => self.send(to, Message::Dkg(m)),
                DkgOutput::Key(k) => {
                    self.keygen.unconfirmed = Some(Arc::new((*k).clone()));
                    self.outputs.push_back(Output::StoreKey(k));
                }
                DkgOutput::Complete { confirmations, .. } => {
                    let ceremony = self.keygen.machine.as_ref().map_or(0, DkgMachine::ceremony);
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
                    if self.keygen.unconfirmed.is_some() {
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
