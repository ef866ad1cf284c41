//! What the engine persists ([`Record`]), and how a member is rebuilt from it after a crash
//! ([`Engine::restore`]) or compacted into it ([`Engine::snapshot`]).
//!
//! Every record is written before any output that depends on it leaves the process (the driver's
//! contract, `docs/protocol.md` §21), so a restarted member never contradicts what it said: its
//! observation, the items it locked, the package each commitment signed.

use std::sync::Arc;

use frost_ed25519 as frost;
use serde::{Deserialize, Serialize};

use crate::crypto::{Digest, Frost, PublicKey, SecretKey};
use crate::dkg::{DkgMessage, KeyMaterial};
use crate::evidence::Evidence;
use crate::message::{ProposalId, SignedObservation};
use crate::roster::{MemberIndex, Network, Period};
use crate::statement::{CoSigned, Statement, Unit};
use crate::succession::{SignedSuccession, SuccessionProposal};
use crate::time::Instant;

use super::{Engine, EngineConfig};

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
    /// This member started or joined refresh ceremony `ceremony` (appended after the records
    /// above, so their encodings are unchanged).
    RefreshStarted {
        /// The ceremony.
        ceremony: u32,
    },
    /// Refresh ceremony `ceremony` completed: every member confirmed the public key package
    /// with digest `public_package`, and this member signs with the matching share.
    RefreshComplete {
        /// The ceremony.
        ceremony: u32,
        /// Digest of the refreshed public key package.
        public_package: Digest,
        /// Every member's signed confirmation (served to members that missed some).
        confirmations: Vec<DkgMessage>,
    },
    /// This member's operator approved a succession: its lock (`docs/protocol.md` §22.7).
    SuccessionApproved {
        /// The proposal approved.
        proposal: Arc<SuccessionProposal>,
        /// When.
        at: Instant,
    },
    /// This member released a share of the succession: it is bound to it.
    SuccessionShare {
        /// The succession's digest.
        succession: Digest,
    },
    /// The approval lapsed or was withdrawn; this member never signs that succession.
    SuccessionLapsed {
        /// The succession's digest.
        succession: Digest,
    },
    /// The co-signed succession of this epoch.
    Succession(Arc<SignedSuccession>),
    /// A successor epoch's adopted succession (the one that hands it its periods).
    Predecessor(Arc<SignedSuccession>),
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

impl Engine {
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
        Self::restore_with_pending(net, me, identity, keys, None, config, records)
    }

    /// As [`Engine::restore`], with the pending key file too (a refreshed share that was
    /// awaiting confirmations, [`Output::StorePendingKey`]). Which share is used
    /// (`docs/protocol.md` §22.5): the pending one if a `RefreshComplete` record names its public
    /// key package (the crash came between that record and the key file's update; the key
    /// files are then brought up to date by the restored engine's first outputs); the key
    /// file's otherwise, keeping the pending share aside to collect its confirmations from
    /// peers, unless it equals the key file's.
    pub fn restore_with_pending(
        net: Arc<Network>,
        me: MemberIndex,
        identity: SecretKey,
        keys: Option<KeyMaterial>,
        pending: Option<KeyMaterial>,
        config: EngineConfig,
        records: impl IntoIterator<Item = Record>,
    ) -> Self {
        let mut refreshed: Option<(u32, Digest, Vec<DkgMessage>)> = None;
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
                        engine.ledger.store(digest, evidence, lab, admitted_at);
                    }
                }
                Record::Observation(own) => {
                    let period = own.observation.period;
                    engine.insert_observation(own, true, true);
                    engine.book.periods.entry(period).or_default().closed = true;
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
                    engine.keygen.last_ceremony = Some(
                        engine
                            .keygen
                            .last_ceremony
                            .map_or(ceremony, |c| c.max(ceremony)),
                    );
                }
                Record::DkgComplete {
                    ceremony,
                    group_key,
                    confirmations,
                } => confirmed = Some((ceremony, group_key, confirmations)),
                Record::RefreshStarted { ceremony } => {
                    let last = &mut engine.refresh.last_ceremony;
                    *last = Some(last.map_or(ceremony, |c| c.max(ceremony)));
                }
                Record::RefreshComplete {
                    ceremony,
                    public_package,
                    confirmations,
                } => refreshed = Some((ceremony, public_package, confirmations)),
                r @ (Record::SuccessionApproved { .. }
                | Record::SuccessionShare { .. }
                | Record::SuccessionLapsed { .. }
                | Record::Succession(_)
                | Record::Predecessor(_)) => engine.restore_succession(r),
            }
        }
        // The pending share was activated before the crash, but the key file not yet updated.
        let mut key_files_stale = false;
        let (keys, pending) = match (keys, pending) {
            (k, Some(p)) if refreshed.as_ref().is_some_and(|r| r.1 == p.public_digest()) => {
                key_files_stale = true;
                drop(k);
                (Some(p), None)
            }
            (Some(k), Some(p)) if k.public_digest() == p.public_digest() => {
                key_files_stale = true;
                (Some(k), None)
            }
            (k, p) => (k, p),
        };
        engine.repair.known_group_key = confirmed.as_ref().map(|(_, g, _)| *g);
        match (keys, confirmed) {
            (Some(k), confirmed) => {
                let k = Arc::new(k);
                match confirmed {
                    Some((ceremony, group_key, confirmations)) if group_key == k.group_key() => {
                        engine.keygen.keys = Some(k);
                        engine.keygen.confirmations = Some(confirmations.into());
                        engine.keygen.completed_ceremony = Some(ceremony);
                    }
                    _ if !dkg_started => engine.keygen.keys = Some(k),
                    _ => engine.keygen.unconfirmed = Some(k),
                }
            }
            // The key file is gone but the ceremony completed: keep its (public) confirmations,
            // so a compaction before or after the repair keeps the `DkgComplete` record that
            // names the group key a repaired share must have, and a restart after the repair
            // finds the repaired share confirmed.
            (None, Some((ceremony, _, confirmations))) => {
                engine.keygen.confirmations = Some(confirmations.into());
                engine.keygen.completed_ceremony = Some(ceremony);
            }
            (None, None) => {}
        }
        if let Some((ceremony, _, confirmations)) = refreshed {
            engine.refresh.completed = Some((ceremony, confirmations.into()));
        }
        let pending = pending.filter(|_| engine.keygen.keys.is_some());
        if let (Some(p), Some(c)) = (pending, engine.refresh.last_ceremony) {
            engine.refresh.pending = Some((c, Arc::new(p)));
        }
        // A refresh this member started but neither completed nor holds a share of: it never
        // confirmed it (the share is stored before the confirmation leaves), and its secrets died
        // with the process. Withdraw, so members holding that ceremony's share stop waiting.
        if let Some(c) = engine.refresh.last_ceremony
            && engine.keygen.keys.is_some()
        {
            engine.withdraw(c);
        }
        // Units of periods this member closed but has not seen decided: it must still take part
        // in them (and ask peers for them) after the restart.
        let closed: Vec<Period> = engine
            .book
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
        let units: Vec<Unit> = engine.units.keys().copied().collect();
        for unit in units {
            engine.rearm(unit);
        }
        // The withdrawal goes out on every connection (`peer_connected`), not as an output here.
        engine.outputs.clear();
        if key_files_stale && let Some(k) = &engine.keygen.keys {
            engine
                .outputs
                .push_back(super::Output::StoreKey(Box::new((**k).clone())));
            engine
                .outputs
                .push_back(super::Output::StorePendingKey(None));
        }
        engine
    }

    /// The records from which [`Engine::restore`] rebuilds this member as it is now: its key
    /// ceremony, and the evidence, observations, locks, verdict-protection records and
    /// co-signed units of the periods it still keeps. Everything older has been pruned from
    /// memory and is not needed to restart.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(ceremony) = self.keygen.last_ceremony {
            out.push(Record::DkgStarted { ceremony });
        }
        // Without a share (lost, awaiting repair) the group key is the one the records named.
        let group_key = self
            .keygen
            .keys
            .as_ref()
            .map(|k| k.group_key())
            .or(self.repair.known_group_key);
        if let (Some(ceremony), Some(group_key), Some(confirmations)) = (
            self.keygen.completed_ceremony,
            group_key,
            &self.keygen.confirmations,
        ) {
            out.push(Record::DkgComplete {
                ceremony,
                group_key,
                confirmations: confirmations.to_vec(),
            });
        }
        if let Some(ceremony) = self.refresh.last_ceremony {
            out.push(Record::RefreshStarted { ceremony });
        }
        if let (Some((ceremony, confirmations)), Some(keys)) =
            (&self.refresh.completed, &self.keygen.keys)
        {
            out.push(Record::RefreshComplete {
                ceremony: *ceremony,
                public_package: keys.public_digest(),
                confirmations: confirmations.to_vec(),
            });
        }
        for e in self.ledger.items.values() {
            out.push(Record::Evidence {
                evidence: e.evidence.clone(),
                admitted_at: e.admitted_at,
            });
        }
        for state in self.book.periods.values() {
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
        out.extend(self.succession_records());
        out
    }
}
