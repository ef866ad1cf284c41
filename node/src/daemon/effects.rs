//! The engine's outputs, performed: the node's [`Effects`] for the protocol's one driver
//! ([`accord_protocol::driver`]), which decides the order and where durability comes first.
//!
//! `persist` buffers records (and the co-signed statements and succession links they carry, which
//! enter the transparency log); `sync` commits the buffer in one fsynced redb transaction (group
//! commit). The driver syncs before every send,
//! broadcast, compaction and key store, and at the end, so what a message commits to is durable
//! before the message leaves. A failed commit stops the node before anything else leaves
//! (FAULTS 22: signing is refused, not risked).
//!
//! Call [`EventLoop::drain`] after every input to the engine.

use accord_protocol::codec;
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::driver::{self, Effects};
use accord_protocol::engine::{Event, Record};
use accord_protocol::message::Message;
use accord_protocol::roster::MemberIndex;
use accord_protocol::succession::SignedSuccession;
use libp2p::gossipsub;
use tracing::{debug, info, warn};

use super::error::NodeError;
use super::event_loop::EventLoop;
use crate::keyfile;
use crate::store::StoredStatement;

/// Records, statements and succession links taken by `persist`, not yet committed.
#[derive(Default)]
pub(super) struct Unsynced {
    records: Vec<Record>,
    statements: Vec<StoredStatement>,
    links: Vec<SignedSuccession>,
}

impl EventLoop {
    /// Performs the engine's outputs in order (see the module doc).
    pub(super) fn drain(&mut self) -> Result<(), NodeError> {
        let outputs = self.engine.take_outputs();
        driver::perform(outputs, self)
    }
}

impl Effects for EventLoop {
    type Error = NodeError;

    fn persist(&mut self, record: Record) -> Result<(), NodeError> {
        if let (Record::CoSigned(c), Some(group_key)) = (&record, self.engine.group_key()) {
            self.unsynced.statements.extend(
                c.export(self.net.id())
                    .into_iter()
                    .map(|signed| StoredStatement { group_key, signed }),
            );
        }
        match &record {
            // The handing epoch's co-signed succession.
            Record::Succession(s) => self.unsynced.links.push((**s).clone()),
            // A successor's adopted link, after the links from the genesis that lead to it
            // (`adopt_succession` sets them aside for this record).
            Record::Predecessor(s) => {
                let chain = self.adopting.take().unwrap_or_default();
                if chain.last() == Some(&**s) {
                    self.unsynced.links.extend(chain);
                } else {
                    self.unsynced.links.push((**s).clone());
                }
            }
            _ => {}
        }
        self.unsynced.records.push(record);
        Ok(())
    }

    /// Commits the buffered records and statements in one durable transaction.
    fn sync(&mut self) -> Result<(), NodeError> {
        let Unsynced {
            records,
            statements,
            links,
        } = std::mem::take(&mut self.unsynced);
        let committed = self.store.commit(&records, &statements, &links);
        if committed.is_ok() {
            self.metrics.store_commits.inc();
        }
        match committed {
            Ok(stored) if stored.len() < statements.len() => {
                debug!(
                    offered = statements.len(),
                    stored = stored.len(),
                    "co-signed statements not stored: the held ones are supersets"
                );
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "storage commit failed; stopping before anything else leaves");
                Err(e.into())
            }
        }
    }

    fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), NodeError> {
        if let Err(e) = self.store.compact(&snapshot) {
            tracing::error!(error = %e, "record log compaction failed; stopping before anything else leaves");
            return Err(e.into());
        }
        self.metrics.store_commits.inc();
        debug!(records = snapshot.len(), "record log compacted");
        Ok(())
    }

    fn store_key(&mut self, key: KeyMaterial) -> Result<(), NodeError> {
        let bytes =
            zeroize::Zeroizing::new(codec::encode(&key).map_err(|e| NodeError::KeyShare {
                path: self.key_share.display().to_string(),
                message: e.to_string(),
            })?);
        keyfile::write_secret(&self.key_share, &bytes, self.passphrase.as_ref(), true)?;
        info!(path = %self.key_share.display(), "key share stored");
        Ok(())
    }

    fn store_pending_key(&mut self, key: Option<KeyMaterial>) -> Result<(), NodeError> {
        let path = super::pending_key_path(&self.key_share);
        let Some(key) = key else {
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| NodeError::KeyShare {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            info!(path = %path.display(), "pending key share removed");
            return Ok(());
        };
        let bytes =
            zeroize::Zeroizing::new(codec::encode(&key).map_err(|e| NodeError::KeyShare {
                path: path.display().to_string(),
                message: e.to_string(),
            })?);
        keyfile::write_secret(&path, &bytes, self.passphrase.as_ref(), true)?;
        info!(path = %path.display(), "refreshed key share stored, pending confirmation");
        Ok(())
    }

    fn send(&mut self, to: MemberIndex, message: Message) {
        if let Message::Accept(a) = &message {
            debug!(
                proposal = ?a.id,
                commitment = %a.commitments.digest("accord/commitment/v1"),
                "accept sent with a fresh nonce commitment"
            );
            self.faults.accept_sent();
        }
        self.send_direct(to, message);
    }

    fn broadcast(&mut self, message: Message) {
        self.publish(message);
    }

    fn event(&mut self, event: Event) {
        self.on_engine_event(event);
    }
}

impl EventLoop {
    /// Sends a direct message to a connected member (dropped, and counted, when it is not).
    fn send_direct(&mut self, to: MemberIndex, message: Message) {
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
    fn publish(&mut self, message: Message) {
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
