//! The libp2p side: transport, the composed behaviour and the request-response wire codec.
//!
//! - TCP with Noise (authenticated peer ids) and Yamux.
//! - An allow-list of the roster's peer ids and connection limits, first in the behaviour so a
//!   connection from a non-member is denied before any protocol runs.
//! - identify and ping.
//! - gossipsub for broadcasts (evidence, observations, proposals, co-signed units, DKG
//!   broadcasts): signed messages, strict validation, `validate_messages` (the engine decides
//!   before anything is forwarded), message ids by content hash (so republished evidence is
//!   deduplicated), and a `max_transmit_size`.
//! - request-response for direct messages (accepts, shares, signing requests, DKG round 2,
//!   catch-up), framed as `u32` big-endian length ‖ `Message::encode` bytes; a frame over the
//!   limit is refused from its length prefix, before any allocation.
//! - request-response for witnessing (`/accord/<tag>/witness/1`): a member sends its log's
//!   signed checkpoint with a consistency proof, the witness answers with a C2SP cosignature
//!   (see `accord_protocol::transparency`), in frames of at most [`MAX_WITNESS_FRAME_BYTES`].

use std::io;
use std::time::Duration;

use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::message::Message;
use accord_protocol::transparency::{AddCheckpoint, WitnessReply};
use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, gossipsub, identify, identity, ping,
    request_response,
};
use sha2_compat::content_id;

/// Largest request-response frame (one encoded message).
pub const MAX_FRAME_BYTES: usize = MAX_MESSAGE_BYTES;
/// Largest gossip message on the wire (an encoded message plus gossipsub's envelope).
pub const MAX_GOSSIP_BYTES: usize = MAX_MESSAGE_BYTES + 64 * 1024;

/// The acknowledgement a request-response exchange returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack;

/// The request-response codec: length-prefixed frames of [`Message::encode`] bytes.
#[derive(Clone, Debug)]
pub struct WireCodec {
    limit: usize,
}

impl WireCodec {
    /// A codec accepting frames up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl Default for WireCodec {
    fn default() -> Self {
        Self::new(MAX_FRAME_BYTES)
    }
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Reads one length-prefixed frame of at most `limit` bytes; the length is checked before
/// anything is allocated.
///
/// # Errors
/// An over-limit length prefix, a short read, or I/O.
pub async fn read_frame<T: AsyncRead + Unpin>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(invalid(format!(
            "frame of {len} bytes is over the limit of {limit} bytes"
        )));
    }
    // Grown as bytes arrive: a peer that announces 16 MiB and sends nothing costs nothing.
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

/// Writes one length-prefixed frame.
///
/// # Errors
/// A frame over `u32::MAX` bytes, or I/O.
pub async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(invalid)?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

impl request_response::Codec for WireCodec {
    type Protocol = StreamProtocol;
    type Request = Message;
    type Response = Ack;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Message>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = zeroize::Zeroizing::new(read_frame(io, self.limit).await?);
        Message::decode(&frame, self.limit).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Ack>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, 1).await?;
        if frame != [1] {
            return Err(invalid("bad acknowledgement"));
        }
        Ok(Ack)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Message,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // Direct messages include DKG round-2 packages (a secret share for the recipient): the
        // encoded copy is zeroized once written.
        let bytes = zeroize::Zeroizing::new(req.encode().map_err(invalid)?);
        if bytes.len() > self.limit {
            return Err(invalid("message over the frame limit"));
        }
        write_frame(io, &bytes).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: Ack) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &[1]).await
    }
}

/// Largest witness frame (a signed checkpoint with its cosignatures and a consistency proof).
pub const MAX_WITNESS_FRAME_BYTES: usize = 128 * 1024;

/// The witness protocol's codec: length-prefixed protocol-codec frames of
/// [`AddCheckpoint`] requests and [`WitnessReply`] answers.
#[derive(Clone, Debug, Default)]
pub struct WitnessCodec;

impl request_response::Codec for WitnessCodec {
    type Protocol = StreamProtocol;
    type Request = AddCheckpoint;
    type Response = WitnessReply;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<AddCheckpoint>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, MAX_WITNESS_FRAME_BYTES).await?;
        codec::decode_canonical(&frame, MAX_WITNESS_FRAME_BYTES).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<WitnessReply>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, MAX_WITNESS_FRAME_BYTES).await?;
        codec::decode_canonical(&frame, MAX_WITNESS_FRAME_BYTES).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: AddCheckpoint,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = codec::encode(&req).map_err(invalid)?;
        if bytes.len() > MAX_WITNESS_FRAME_BYTES {
            return Err(invalid("witness request over the frame limit"));
        }
        write_frame(io, &bytes).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: WitnessReply,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = codec::encode(&res).map_err(invalid)?;
        if bytes.len() > MAX_WITNESS_FRAME_BYTES {
            return Err(invalid("witness reply over the frame limit"));
        }
        write_frame(io, &bytes).await
    }
}

pub use composed::{Behaviour, BehaviourEvent};

mod composed {
    // The derive generates `BehaviourEvent` without docs.
    #![allow(missing_docs)]
    use super::*;

    /// The composed behaviour. Field order is the order in which connection checks run.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Only roster peers.
        pub allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
        /// Connection limits.
        pub limits: connection_limits::Behaviour,
        /// identify.
        pub identify: identify::Behaviour,
        /// ping.
        pub ping: ping::Behaviour,
        /// Broadcasts.
        pub gossipsub: gossipsub::Behaviour,
        /// Direct messages.
        pub direct: request_response::Behaviour<WireCodec>,
        /// Witnessing of each other's transparency logs.
        pub witness: request_response::Behaviour<WitnessCodec>,
    }
}

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BehaviourError {
    /// gossipsub refused its configuration.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
}

/// Builds the behaviour for a network of `members` peers (`allowed` are their peer ids).
///
/// # Errors
/// An invalid gossipsub configuration.
pub fn behaviour(
    key: &identity::Keypair,
    network_tag: &str,
    allowed: impl IntoIterator<Item = libp2p::PeerId>,
    members: usize,
) -> Result<Behaviour, BehaviourError> {
    let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
    for p in allowed {
        allow.allow_peer(p);
    }
    let n = u32::try_from(members).unwrap_or(u32::MAX);
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_pending_incoming(Some(n.saturating_mul(2).max(8)))
            .with_max_pending_outgoing(Some(n.saturating_mul(2).max(8)))
            .with_max_established(Some(n.saturating_mul(2)))
            .with_max_established_per_peer(Some(2)),
    );
    let identify = identify::Behaviour::new(identify::Config::new(
        format!("/accord/{network_tag}/1"),
        key.public(),
    ));
    let ping = ping::Behaviour::new(ping::Config::new());
    let mesh = members.saturating_sub(1).clamp(1, 8);
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| gossipsub::MessageId::from(content_id(&m.data)))
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .heartbeat_interval(Duration::from_millis(500))
        .mesh_n(mesh)
        .mesh_n_low(mesh.saturating_sub(1).max(1))
        .mesh_n_high(mesh.saturating_mul(2).max(2))
        .mesh_outbound_min(0)
        .flood_publish(true)
        .duplicate_cache_time(Duration::from_secs(300))
        .build()
        .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
            .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;
    let (params, thresholds) = gossip_scoring(&gossip_topic(network_tag));
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(BehaviourError::Gossipsub)?;
    let direct = request_response::Behaviour::with_codec(
        WireCodec::default(),
        [(
            StreamProtocol::try_from_owned(format!("/accord/{network_tag}/direct/1"))
                .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?,
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(256),
    );
    let witness = request_response::Behaviour::with_codec(
        WitnessCodec,
        [(
            StreamProtocol::try_from_owned(format!("/accord/{network_tag}/witness/1"))
                .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?,
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(Duration::from_secs(30))
            .with_max_concurrent_streams(32),
    );
    Ok(Behaviour {
        allowed: allow,
        limits,
        identify,
        ping,
        gossipsub,
        direct,
        witness,
    })
}

/// Gossipsub peer scoring (docs/protocol.md §7.2 argues every value). Every peer is a roster
/// member and honest traffic is a few messages per member and period, so only what an honest
/// member never does costs score: a message the engine rejects as the sender's fault (P4,
/// squared, -10 each: four put a peer under the graylist threshold, after which gossipsub
/// ignores it and prunes it from every mesh), and gossipsub protocol violations (P7). Mesh
/// delivery deficits (P3, P3b) are off: a quiet honest member delivers little. IP colocation
/// (P6) is off: members are authenticated by the roster, and test networks share one address.
/// Small positive terms for time in the mesh (P1) and first deliveries (P2) let a member recover
/// once it stops; penalties decay to 1 % in a minute.
pub fn gossip_scoring(
    topic: &gossipsub::IdentTopic,
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let per_topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(60)),
        first_message_deliveries_cap: 50.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(60)),
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 100.0,
        app_specific_weight: 0.0,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 0.0,
        behaviour_penalty_decay: gossipsub::score_parameter_decay(Duration::from_secs(60)),
        decay_interval: Duration::from_secs(1),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(3600),
        ..gossipsub::PeerScoreParams::default()
    };
    params.topics.insert(topic.hash(), per_topic);
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -40.0,
        graylist_threshold: GRAYLIST_THRESHOLD,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

/// Below this gossipsub score a peer's messages are ignored (graylist).
pub const GRAYLIST_THRESHOLD: f64 = -80.0;

/// The short network tag in every protocol name and the gossip topic (the network id's first
/// 8 bytes in hex), so nodes of different networks never talk.
pub fn network_tag(net: &accord_protocol::roster::Network) -> String {
    net.id().to_hex()[..16].to_string()
}

/// The one gossip topic of a network.
pub fn gossip_topic(network_tag: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/accord/{network_tag}/gossip/1"))
}

/// Whether this build has the QUIC transport (cargo feature `quic`) next to TCP.
pub const QUIC: bool = cfg!(feature = "quic");

/// Whether `addr` needs the QUIC transport.
pub fn is_quic(addr: &libp2p::Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(
            p,
            libp2p::multiaddr::Protocol::QuicV1 | libp2p::multiaddr::Protocol::Quic
        )
    })
}

/// The libp2p keypair of a member, from its Ed25519 identity seed.
pub fn keypair_from_seed(seed: &[u8; 32]) -> identity::Keypair {
    let mut bytes = zeroize::Zeroizing::new(*seed);
    identity::Keypair::ed25519_from_bytes(&mut *bytes).expect("any 32 bytes are an Ed25519 seed")
}

/// The libp2p peer id of a member's Ed25519 public key (as written in the roster).
pub fn peer_id_of(key: &accord_protocol::crypto::PublicKey) -> Option<libp2p::PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(&key.0).ok()?;
    Some(identity::PublicKey::from(pk).to_peer_id())
}

mod sha2_compat {
    /// The gossip message id: SHA-256 of the payload (domain-separated), so identical content
    /// from anyone is one message.
    pub(super) fn content_id(data: &[u8]) -> Vec<u8> {
        accord_protocol::crypto::Digest::tagged("accord/gossip-id/v1", &[data])
            .0
            .to_vec()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn oversize_frame_is_refused_from_its_prefix() {
        // A length prefix of 4 GiB - 1 followed by a few bytes: refused without allocating.
        let mut bytes = u32::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        let err = block_on(read_frame(&mut bytes.as_slice(), 1024)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("over the limit"));
    }

    #[test]
    fn frames_round_trip_and_truncation_fails() {
        let mut out = Vec::new();
        block_on(write_frame(&mut out, b"hello")).unwrap();
        assert_eq!(
            block_on(read_frame(&mut out.as_slice(), 16)).unwrap(),
            b"hello"
        );
        for cut in 0..out.len() {
            assert!(block_on(read_frame(&mut &out[..cut], 16)).is_err());
        }
    }

    #[test]
    fn request_codec_rejects_garbage_and_future_versions() {
        use request_response::Codec as _;
        let proto = StreamProtocol::new("/t");
        let mut codec = WireCodec::new(1024);
        for body in [vec![1u8, 0xff, 0xff], vec![2u8, 0, 0, 0, 0], vec![]] {
            let mut framed = Vec::new();
            block_on(write_frame(&mut framed, &body)).unwrap();
            assert!(block_on(codec.read_request(&proto, &mut framed.as_slice())).is_err());
        }
    }
}
