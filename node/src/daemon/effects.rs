//! The engine's outputs, performed: the one place where the node's effects happen.
//!
//! Every output is performed in order. `Persist` records (and the co-signed statements they
//! carry) are batched until the next output that leaves the process or writes elsewhere (a
//! `Send`, a `Broadcast`, a `StoreKey` or a `Snapshot`) or the end of the drain, then committed
//! in one fsynced redb transaction (group commit): what a message commits to is durable before
//! the message leaves. A failed commit stops the node before anything else leaves (FAULTS 22:
//! signing is refused, not risked).
//!
//! Call [`EventLoop::drain`] after every input to the engine.

use accord_protocol::codec;
use accord_protocol::engine::{Output, Record};
use accord_protocol::message::Message;
use accord_protocol::roster::MemberIndex;
use libp2p::gossipsub;
use tracing::{debug, info, warn};

use super::error::NodeError;
use super::event_loop::EventLoop;
use crate::keyfile;
use crate::store::StoredStatement;

impl EventLoop {
    /// Performs the engine's outputs in order (see the module doc).
    pub(super) fn drain(&mut self) -> Result<(), NodeError> {
        let mut records: Vec<Record> = Vec::new();
        let mut statements: Vec<StoredStatement> = Vec::new();
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Persist(record) => {
                    if let (Record::CoSigned(c), Some(group_key)) =
                        (&record, self.engine.group_key())
                    {
                        statements.extend(
                            c.export(self.net.id())
                                .into_iter()
                                .map(|signed| StoredStatement { group_key, signed }),
                        );
                    }
                    records.push(record);
                }
                Output::Snapshot(snapshot) => {
                    self.flush(&mut records, &mut statements)?;
                    if let Err(e) = self.store.compact(&snapshot) {
                        tracing::error!(error = %e, "record log compaction failed; stopping before anything else leaves");
                        return Err(e.into());
                    }
                    debug!(records = snapshot.len(), "record log compacted");
                }
                Output::StoreKey(key) => {
                    self.flush(&mut records, &mut statements)?;
                    let bytes = zeroize::Zeroizing::new(codec::encode(&*key).map_err(|e| {
                        NodeError::KeyShare {
                            path: self.key_share.display().to_string(),
                            message: e.to_string(),
                        }
                    })?);
                    keyfile::write_secret(&self.key_share, &bytes, self.passphrase.as_ref(), true)?;
                    info!(path = %self.key_share.display(), "key share stored");
                }
                Output::Send { to, message } => {
                    self.flush(&mut records, &mut statements)?;
                    if let Message::Accept(a) = &message {
                        debug!(
                            proposal = ?a.id,
                            commitment = %a.commitments.digest("accord/commitment/v1"),
                            "accept sent with a fresh nonce commitment"
                        );
                        self.faults.accept_sent();
                    }
                    self.send(to, message);
                }
                Output::Broadcast(message) => {
                    self.flush(&mut records, &mut statements)?;
                    self.broadcast(message);
                }
                Output::Event(e) => self.on_engine_event(e),
            }
        }
        self.flush(&mut records, &mut statements)
    }

    /// Commits the batched records and statements in one durable transaction.
    fn flush(
        &mut self,
        records: &mut Vec<Record>,
        statements: &mut Vec<StoredStatement>,
    ) -> Result<(), NodeError> {
        if records.is_empty() && statements.is_empty() {
            return Ok(());
        }
        match self.store.commit(records, statements) {
            Ok(stored) if stored.len() < statements.len() => {
                debug!(
                    offered = statements.len(),
                    stored = stored.len(),
                    "co-signed statements not stored: the held ones are supersets"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "storage commit failed; stopping before anything else leaves");
                return Err(e.into());
            }
        }
        records.clear();
        statements.clear();
        Ok(())
    }

    /// Sends a direct message to a connected member (dropped, and counted, when it is not).
    fn send(&mut self, to: MemberIndex, message: Message) {
        let Some(peer) = self.peers.get(to) else {
            return;
        };
        let kind = message.kind();
        if !peer.is_connected() {
            debug!(to = %peer.name, kind, "not connected; direct message dropped");
            self.metrics.inc_rejected("outbound-not-connected");
            return;
        }
        let pid = peer.peer_id;
        self.swarm
            .behaviour_mut()
            .direct
            .send_request(&pid, message);
        self.metrics.inc_out(kind);
    }

    /// Publishes a message on the network's gossip topic.
    fn broadcast(&mut self, message: Message) {
        let kind = message.kind();
        let bytes = match message.encode() {
            Ok(b) => b,
            Err(e) => {
                warn!(kind, error = %e, "cannot encode a broadcast");
                return;
            }
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
        {
            Ok(_) => self.metrics.inc_out(kind),
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                debug!(kind, error = %e, "broadcast not published");
                self.metrics.inc_rejected("outbound-publish-failed");
            }
        }
    }
}
