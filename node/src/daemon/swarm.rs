//! The swarm: how it is built, and what the event loop does with its events (connections,
//! gossip, direct messages; witnessing is `witness.rs`).
//!
//! The member passed to the engine comes from the Noise-authenticated connection
//! (request-response) or from gossipsub's signed `source`, never from a message body. A gossip
//! message is forwarded only after the engine accepted it (`validate_messages`), and only a
//! sender at fault is scored down.

use std::time::Duration;

use accord_protocol::Delivery;
use accord_protocol::codec::MAX_MESSAGE_BYTES;
use accord_protocol::message::Message;
use libp2p::metrics::Recorder as _;
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identity, request_response};
use tracing::{debug, info, warn};

use super::error::NodeError;
use super::event_loop::EventLoop;
use crate::clock::now;
use crate::metrics::ReasonLabel;
use crate::p2p::{self, Ack, Behaviour, BehaviourEvent};

/// Builds the swarm of a member: TCP (and QUIC in a build with it), the composed behaviour
/// allowing only `allowed`, subscribed to the network's gossip topic and listening on `listen`.
///
/// # Errors
/// A QUIC address in a build without QUIC, or a transport, behaviour or listen failure.
pub(super) fn build(
    keypair: identity::Keypair,
    network_tag: &str,
    allowed: Vec<PeerId>,
    members: usize,
    listen: &Multiaddr,
) -> Result<(Swarm<Behaviour>, gossipsub::IdentTopic), NodeError> {
    if p2p::is_quic(listen) && !p2p::QUIC {
        return Err(NodeError::Network(format!(
            "{listen} needs the QUIC transport, which this build lacks: rebuild with `--features quic`"
        )));
    }
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| NodeError::Network(e.to_string()))?;
    // QUIC authenticates the same libp2p identity (TLS), so the allow-list works unchanged.
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let mut swarm = builder
        .with_behaviour(|key| {
            p2p::behaviour(key, network_tag, allowed, members)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| NodeError::Network(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topic = p2p::gossip_topic(network_tag);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NodeError::Network(e.to_string()))?;
    swarm
        .listen_on(listen.clone())
        .map_err(|e| NodeError::Network(format!("listen on {listen}: {e}")))?;
    Ok((swarm, topic))
}

impl EventLoop {
    /// One swarm event.
    pub(super) fn on_swarm_event(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
    ) -> Result<(), NodeError> {
        self.metrics.libp2p.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => {
                self.metrics.libp2p.record(&e);
                self.on_gossip(e)?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(e)) => self.on_direct(e)?,
            SwarmEvent::Behaviour(BehaviourEvent::Witness(e)) => self.witnessing.on_event(
                e,
                &mut self.swarm.behaviour_mut().witness,
                &self.store,
                &self.peers,
                &self.metrics,
            ),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.libp2p.record(&e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.metrics.libp2p.record(&e),
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, peer_id = %self.peer_id, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                let established = num_established.get() as usize;
                if let Some(member) = self.peers.connection_established(&peer_id, established) {
                    self.update_peer_gauge();
                    // Catch up on anything decided while we were apart.
                    self.engine.peer_connected(member);
                    self.drain()?;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                let cause = cause.map(|c| c.to_string());
                let now = tokio::time::Instant::now();
                if self
                    .peers
                    .connection_closed(&peer_id, num_established as usize, cause, now)
                {
                    self.update_peer_gauge();
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                peer_id,
                send_back_addr,
                ..
            } => {
                let reason = match &error {
                    ListenError::Denied { .. } => "denied",
                    _ => "failed",
                };
                if matches!(error, ListenError::Denied { .. }) {
                    warn!(
                        peer = ?peer_id.map(|p| p.to_string()),
                        from = %send_back_addr,
                        error = %error,
                        "refused an incoming connection (not in the roster or over a limit)"
                    );
                } else {
                    debug!(from = %send_back_addr, error = %error, "incoming connection failed");
                }
                self.metrics
                    .connections_refused
                    .get_or_create(&ReasonLabel {
                        reason: reason.into(),
                    })
                    .inc();
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.peers
                    .dial_failed(peer_id, &error, tokio::time::Instant::now());
            }
            _ => {}
        }
        Ok(())
    }

    fn update_peer_gauge(&self) {
        let n = self.peers.connected().count();
        self.metrics.peers_connected.set(n as i64);
    }

    fn on_gossip(&mut self, e: gossipsub::Event) -> Result<(), NodeError> {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = e
        else {
            return Ok(());
        };
        let acceptance = self.judge_gossip(&message)?;
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        Ok(())
    }

    /// The engine's verdict on a gossip message, from its signed source (its author).
    fn judge_gossip(
        &mut self,
        message: &gossipsub::Message,
    ) -> Result<gossipsub::MessageAcceptance, NodeError> {
        use gossipsub::MessageAcceptance as A;
        let Some(from) = message.source.and_then(|s| self.peers.member(&s)) else {
            warn!(source = ?message.source, "gossip from a peer outside the roster rejected");
            self.metrics.inc_rejected("not-a-member");
            return Ok(A::Reject);
        };
        let decoded = match Message::decode(&message.data, MAX_MESSAGE_BYTES) {
            Ok(m) => m,
            Err(e) => {
                debug!(from = %self.name_of(from), error = %e, "undecodable gossip");
                self.metrics.inc_rejected("decode");
                return Ok(A::Reject);
            }
        };
        if !decoded.is_gossip() {
            self.metrics.inc_rejected("direct-kind-over-gossip");
            return Ok(A::Reject);
        }
        self.metrics.inc_in(decoded.kind());
        let delivery = self
            .engine
            .handle_message(now(), from, decoded, &mut self.rng);
        self.drain()?;
        Ok(match delivery {
            Delivery::Accepted => A::Accept,
            Delivery::Duplicate | Delivery::Ignored => A::Ignore,
            Delivery::Rejected(reason) => {
                debug!(from = %self.name_of(from), %reason, "gossip rejected");
                self.metrics.inc_rejected(reason.code());
                // Only a sender at fault is scored down; "cannot help" is not its doing.
                if reason.is_misbehaviour() {
                    A::Reject
                } else {
                    A::Ignore
                }
            }
        })
    }

    fn on_direct(&mut self, e: request_response::Event<Message, Ack>) -> Result<(), NodeError> {
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The authenticated connection names the sender, never the body.
                let Some(from) = self.peers.member(&peer) else {
                    self.metrics.inc_rejected("not-a-member");
                    return Ok(());
                };
                if self.faults.crashing() && matches!(request, Message::SignRequest(_)) {
                    debug!("failpoint: signing request ignored before the crash");
                    return Ok(());
                }
                self.metrics.inc_in(request.kind());
                let delivery = self
                    .engine
                    .handle_message(now(), from, request, &mut self.rng);
                self.drain()?;
                if let Delivery::Rejected(reason) = &delivery {
                    debug!(from = %self.name_of(from), %reason, "direct message rejected");
                    self.metrics.inc_rejected(reason.code());
                }
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, Ack);
            }
            request_response::Event::Message { .. }
            | request_response::Event::ResponseSent { .. } => {}
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound direct message failed");
                self.metrics.inc_rejected("inbound-failure");
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "outbound direct message failed");
                self.metrics.inc_rejected("outbound-failure");
            }
        }
        Ok(())
    }
}
