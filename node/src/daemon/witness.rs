//! Witnessing of the members' transparency logs, both ways (C2SP tlog-witness over the
//! `/accord/<tag>/witness/1` request-response protocol).
//!
//! - As a log: every [`WITNESS_INTERVAL`] this member offers its log's latest checkpoint, with a
//!   consistency proof from what each witness holds, to every connected member that has not
//!   cosigned it (or not within [`WITNESS_REFRESH`]); valid cosignatures are stored, so
//!   `GET /v1/log/checkpoint` serves them.
//! - As a witness: a checkpoint of another member's log is checked against the largest one
//!   cosigned for that log before, persisted, and only then cosigned; a conflicting one is kept
//!   as evidence of a fork.
//!
//! The member named in a request or answer is the authenticated connection's, never the body's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::roster::{MemberIndex, Network};
use accord_protocol::transparency::{
    AddCheckpoint, LogKey, WitnessRefusal, WitnessReply, add_cosignatures, cosign, sign_checkpoint,
    verify_checkpoint, witness_check,
};
use libp2p::request_response;
use tracing::{debug, warn};

use super::peers::Peers;
use crate::metrics::Metrics;
use crate::p2p::WitnessCodec;
use crate::store::Store;
use crate::store::witness::Cosignature;

/// How often this member offers its log's latest checkpoint to the witnesses that lack it.
pub(super) const WITNESS_INTERVAL: Duration = Duration::from_millis(1000);
/// How long to wait before asking a witness again after a refusal or a failure.
const WITNESS_RETRY: Duration = Duration::from_secs(10);
/// How often this member has an unchanged checkpoint cosigned again, so its witnesses'
/// timestamps show observers that the log is live (`accord observe --max-age`).
pub(super) const WITNESS_REFRESH: Duration = Duration::from_secs(600);
/// The shortest time between two checkpoints of one log that this member, as witness, persists
/// (each costs an fsync): an honest log offers at most one per [`WITNESS_INTERVAL`].
const WITNESS_MIN_ADVANCE: Duration = Duration::from_millis(250);

/// The witness protocol's half of the swarm.
type WitnessBehaviour = request_response::Behaviour<WitnessCodec>;

/// What this member's log knows of one witness.
#[derive(Debug, Default)]
struct WitnessPeer {
    /// The size of our log the witness holds (0: none).
    held: u64,
    /// The checkpoint it last cosigned, and when (this process lifetime).
    cosigned: Option<(u64, Digest)>,
    cosigned_at: Option<tokio::time::Instant>,
    /// The request in flight: its id and the note sent.
    in_flight: Option<(request_response::OutboundRequestId, u64, Digest, String)>,
    /// Do not ask before this instant (after a refusal or a failure).
    next_try: Option<tokio::time::Instant>,
}

/// This member's witnessing state: its log's witnesses, and the logs it witnesses.
#[derive(Debug)]
pub(super) struct Witnessing {
    net: Arc<Network>,
    me: MemberIndex,
    log_keys: Vec<LogKey>,
    /// The key that signs this member's checkpoints and cosignatures (its roster identity).
    log_key: Arc<SecretKey>,
    witnesses: BTreeMap<MemberIndex, WitnessPeer>,
    /// When this member, as witness, last persisted a newer checkpoint of each log.
    advanced: BTreeMap<MemberIndex, tokio::time::Instant>,
}

impl Witnessing {
    /// The state after a start: what each witness cosigned, from the store.
    pub(super) fn new(
        net: Arc<Network>,
        me: MemberIndex,
        log_key: Arc<SecretKey>,
        cosigned: Vec<(u16, Cosignature)>,
    ) -> Self {
        let witnesses = cosigned
            .into_iter()
            .map(|(w, c)| {
                (
                    MemberIndex(w),
                    WitnessPeer {
                        held: c.size,
                        cosigned: Some((c.size, c.root)),
                        ..WitnessPeer::default()
                    },
                )
            })
            .collect();
        Self {
            log_keys: LogKey::all(&net),
            net,
            me,
            log_key,
            witnesses,
            advanced: BTreeMap::new(),
        }
    }

    fn name_of(&self, m: MemberIndex) -> &str {
        self.net
            .roster()
            .members
            .get(usize::from(m.0))
            .map_or("?", |x| x.name.as_str())
    }

    /// Offers the log's current checkpoint, with a consistency proof, to every connected witness
    /// that has not cosigned it.
    pub(super) fn push_checkpoint(
        &mut self,
        behaviour: &mut WitnessBehaviour,
        store: &Store,
        peers: &Peers,
    ) {
        let head = store.read().and_then(|rx| {
            let (size, root) = crate::store::log::head(&rx)?;
            Ok((rx, size, root))
        });
        let (rx, size, root) = match head {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "cannot read the transparency log");
                return;
            }
        };
        if size == 0 {
            return;
        }
        let note = sign_checkpoint(self.net.id(), self.me, &self.log_key, size, &root);
        let now = tokio::time::Instant::now();
        for peer in peers.connected() {
            let w = self.witnesses.entry(peer.member).or_default();
            let fresh = w.cosigned == Some((size, root))
                && w.cosigned_at.is_some_and(|t| now < t + WITNESS_REFRESH);
            if w.in_flight.is_some() || fresh || w.next_try.is_some_and(|t| t > now) {
                continue;
            }
            // A witness holding more than we have means our log shrank: send anyway, and let it
            // refuse (and record the fork) rather than hide it.
            let proof = if w.held <= size {
                match crate::store::log::consistency(&rx, w.held, size) {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(error = %e, "cannot prove the log's consistency");
                        continue;
                    }
                }
            } else {
                Vec::new()
            };
            let id = behaviour.send_request(
                &peer.peer_id,
                AddCheckpoint {
                    old_size: w.held,
                    proof,
                    checkpoint: note.clone(),
                },
            );
            w.in_flight = Some((id, size, root, note.clone()));
        }
    }

    /// A witness-protocol event: a request to cosign another member's checkpoint, or a
    /// witness's answer about ours.
    pub(super) fn on_event(
        &mut self,
        e: request_response::Event<AddCheckpoint, WitnessReply>,
        behaviour: &mut WitnessBehaviour,
        store: &Store,
        peers: &Peers,
        metrics: &Metrics,
    ) {
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The authenticated connection names the log's member, never the body.
                let Some(from) = peers.member(&peer) else {
                    return;
                };
                let reply = self.cosign(from, &request, store, metrics);
                let _ = behaviour.send_response(channel, reply);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(from) = peers.member(&peer) else {
                    return;
                };
                self.on_reply(from, request_id, response, store);
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "witness request failed");
                if let Some(w) = peers.member(&peer).and_then(|m| self.witnesses.get_mut(&m)) {
                    w.in_flight = None;
                    w.next_try = Some(tokio::time::Instant::now() + WITNESS_RETRY);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound witness request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A witness's answer about our checkpoint.
    fn on_reply(
        &mut self,
        from: MemberIndex,
        request_id: request_response::OutboundRequestId,
        response: WitnessReply,
        store: &Store,
    ) {
        let name = self.name_of(from).to_string();
        let Some(w) = self.witnesses.get_mut(&from) else {
            return;
        };
        let Some((id, size, root, note)) = w.in_flight.take() else {
            return;
        };
        if id != request_id {
            return;
        }
        match response {
            WitnessReply::Cosigned(line) => {
                // Keep the line only if it is a valid cosignature by that witness.
                let valid = add_cosignatures(&note, std::slice::from_ref(&line))
                    .and_then(|n| verify_checkpoint(n.as_bytes(), &self.log_keys))
                    .is_ok_and(|cp| cp.cosigners.iter().any(|(m, _)| *m == from));
                if !valid {
                    warn!(witness = %name, "invalid cosignature ignored");
                    w.next_try = Some(tokio::time::Instant::now() + WITNESS_RETRY);
                    return;
                }
                let c = Cosignature { size, root, line };
                if let Err(e) = store.set_cosignature(from.0, &c) {
                    warn!(error = %e, "cannot store a cosignature");
                    return;
                }
                debug!(witness = %name, size, "checkpoint cosigned");
                w.held = size;
                w.cosigned = Some((size, root));
                w.cosigned_at = Some(tokio::time::Instant::now());
            }
            WitnessReply::Conflict { size: held } => {
                debug!(witness = %name, held, "witness holds another size; retrying");
                w.held = held;
            }
            WitnessReply::Refused(reason) => {
                warn!(witness = %name, %reason, "witness refused our checkpoint");
                w.next_try = Some(tokio::time::Instant::now() + WITNESS_RETRY);
            }
        }
    }

    /// The witness side (C2SP tlog-witness): check the checkpoint of `from`'s log against what we
    /// hold, persist the new state, and only then cosign.
    fn cosign(
        &mut self,
        from: MemberIndex,
        request: &AddCheckpoint,
        store: &Store,
        metrics: &Metrics,
    ) -> WitnessReply {
        if from == self.me {
            return WitnessReply::Refused("a log does not witness itself".into());
        }
        let held = match store.witnessed(from.0) {
            Ok(h) => h,
            Err(e) => return WitnessReply::Refused(format!("witness storage: {e}")),
        };
        match witness_check(&self.log_keys, from, request, held.as_ref()) {
            Ok((cp, state)) => {
                // The same checkpoint again (a refresh) needs nothing new on disk; a newer one
                // is persisted before it is cosigned, at most once per WITNESS_MIN_ADVANCE per
                // log, so a member offering new checkpoints in a loop cannot make this node
                // fsync in a loop.
                let unchanged = held
                    .as_ref()
                    .is_some_and(|h| h.size == state.size && h.root == state.root);
                if !unchanged {
                    let now = tokio::time::Instant::now();
                    if self
                        .advanced
                        .get(&from)
                        .is_some_and(|t| now < *t + WITNESS_MIN_ADVANCE)
                    {
                        metrics.inc_rejected("witness-too-soon");
                        return WitnessReply::Refused(
                            "a newer checkpoint of this log came too soon; retry later".into(),
                        );
                    }
                    if let Err(e) = store.set_witnessed(from.0, &state) {
                        return WitnessReply::Refused(format!("witness storage: {e}"));
                    }
                    self.advanced.insert(from, now);
                }
                WitnessReply::Cosigned(cosign(
                    self.net.id(),
                    self.me,
                    &self.log_key,
                    &cp.text,
                    crate::clock::unix_secs(),
                ))
            }
            Err(WitnessRefusal::OldSize { held, .. }) => WitnessReply::Conflict { size: held },
            Err(e @ WitnessRefusal::Fork { .. }) => {
                tracing::error!(log = %self.name_of(from), error = %e, "a member's transparency log forked: keeping the conflicting checkpoint as evidence");
                metrics.inc_rejected("witness-fork");
                if let Err(err) = store.set_fork(from.0, &request.checkpoint) {
                    warn!(error = %err, "cannot store the fork evidence");
                }
                WitnessReply::Refused(e.to_string())
            }
            Err(e) => {
                metrics.inc_rejected("witness-refused");
                WitnessReply::Refused(e.to_string())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use accord_protocol::crypto::SecretKey;
    use accord_protocol::fixtures::{Testnet, TestnetSpec};

    use super::*;

    /// Member 1's witnessing over a fresh store, and member 0's key (the log it witnesses).
    fn witness() -> (Witnessing, Store, SecretKey, tempfile::TempDir) {
        let tn = Testnet::generate(&TestnetSpec::new(4, 1, 0), &mut rand::rngs::OsRng, |k| {
            k.to_hex()
        });
        let net = Network::new(tn.roster.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), net.id()).unwrap();
        let me = Arc::new(SecretKey::from_seed(&tn.members[1].seed()));
        let log = SecretKey::from_seed(&tn.members[0].seed());
        (
            Witnessing::new(net, MemberIndex(1), me, Vec::new()),
            store,
            log,
            dir,
        )
    }

    /// Member 0's checkpoint of a log of `leaves` entries, for a witness holding `old_size`.
    fn checkpoint(w: &Witnessing, log: &SecretKey, old_size: u64, leaves: u64) -> AddCheckpoint {
        use redb::ReadableDatabase as _;
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("log.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        for i in 0..leaves {
            crate::store::log::append(&tx, &[i as u8]).unwrap();
        }
        tx.commit().unwrap();
        let rx = db.begin_read().unwrap();
        let (size, root) = crate::store::log::head(&rx).unwrap();
        AddCheckpoint {
            old_size,
            proof: crate::store::log::consistency(&rx, old_size, size).unwrap(),
            checkpoint: sign_checkpoint(w.net.id(), MemberIndex(0), log, size, &root),
        }
    }

    #[test]
    fn a_checkpoint_is_persisted_before_it_is_cosigned_and_a_quick_advance_is_refused() {
        let (mut w, store, log, _dir) = witness();
        let metrics = Metrics::new();
        let first = checkpoint(&w, &log, 0, 1);
        let reply = w.cosign(MemberIndex(0), &first, &store, &metrics);
        assert!(matches!(reply, WitnessReply::Cosigned(_)), "{reply:?}");
        assert_eq!(store.witnessed(0).unwrap().unwrap().size, 1);
        // The same checkpoint again (a refresh) is cosigned at once; one with a stale old size
        // is answered with the size held.
        let stale = w.cosign(MemberIndex(0), &first, &store, &metrics);
        assert!(
            matches!(stale, WitnessReply::Conflict { size: 1 }),
            "{stale:?}"
        );
        let again = w.cosign(
            MemberIndex(0),
            &checkpoint(&w, &log, 1, 1),
            &store,
            &metrics,
        );
        assert!(matches!(again, WitnessReply::Cosigned(_)), "{again:?}");
        // A newer one right away costs another fsync: refused until WITNESS_MIN_ADVANCE passed.
        let next = checkpoint(&w, &log, 1, 2);
        let soon = w.cosign(MemberIndex(0), &next, &store, &metrics);
        assert!(matches!(soon, WitnessReply::Refused(_)), "{soon:?}");
        assert_eq!(store.witnessed(0).unwrap().unwrap().size, 1);
        std::thread::sleep(WITNESS_MIN_ADVANCE);
        let later = w.cosign(MemberIndex(0), &next, &store, &metrics);
        assert!(matches!(later, WitnessReply::Cosigned(_)), "{later:?}");
        assert_eq!(store.witnessed(0).unwrap().unwrap().size, 2);
        // A log does not witness itself.
        let own = w.cosign(MemberIndex(1), &first, &store, &metrics);
        assert!(matches!(own, WitnessReply::Refused(_)), "{own:?}");
    }

    #[test]
    fn a_conflicting_checkpoint_is_refused_and_kept_as_evidence_of_a_fork() {
        let (mut w, store, log, _dir) = witness();
        let metrics = Metrics::new();
        let reply = w.cosign(
            MemberIndex(0),
            &checkpoint(&w, &log, 0, 2),
            &store,
            &metrics,
        );
        assert!(matches!(reply, WitnessReply::Cosigned(_)), "{reply:?}");
        // Another tree of the same size: a fork.
        let mut fork = checkpoint(&w, &log, 2, 2);
        fork.checkpoint = sign_checkpoint(w.net.id(), MemberIndex(0), &log, 2, &Digest([7; 32]));
        let reply = w.cosign(MemberIndex(0), &fork, &store, &metrics);
        assert!(matches!(reply, WitnessReply::Refused(_)), "{reply:?}");
        let forks = crate::store::witness::forks(&store.read().unwrap()).unwrap();
        assert_eq!(forks, vec![(0, fork.checkpoint)]);
    }
}
