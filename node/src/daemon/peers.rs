//! The other members as libp2p peers: who is connected, and when to dial whom again.
//!
//! Only roster members are peers (the allow-list in `crate::p2p` refuses everyone else before
//! any protocol runs). A disconnected member is redialled after a jittered exponential backoff
//! ([`BACKOFF_MIN`] to [`BACKOFF_MAX`]), from a fresh source port.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use accord_protocol::roster::{MemberIndex, Network};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use tracing::{debug, info};

use super::error::NodeError;
use crate::p2p::Behaviour;

/// First and longest delay between dials to a disconnected member.
pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(500);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// `d` scaled by a random factor in [0.75, 1.25), so members that lost each other at the same
/// moment do not redial in step.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.75 + rand::random::<f64>() / 2.0)
}

/// One other member.
#[derive(Debug)]
pub(super) struct Peer {
    /// Its roster index.
    pub(super) member: MemberIndex,
    /// Its roster name.
    pub(super) name: String,
    /// Its libp2p peer id.
    pub(super) peer_id: PeerId,
    addrs: Vec<Multiaddr>,
    connections: usize,
    dialing: bool,
    backoff: Duration,
    next_dial: tokio::time::Instant,
}

impl Peer {
    /// Whether at least one connection to it is open.
    pub(super) fn is_connected(&self) -> bool {
        self.connections > 0
    }
}

/// Every other member of the roster, by index and by peer id.
#[derive(Debug)]
pub(super) struct Peers {
    peers: BTreeMap<MemberIndex, Peer>,
    /// Every roster member's peer id, this one's included.
    by_peer: HashMap<PeerId, MemberIndex>,
}

impl Peers {
    /// The members of `net` other than `me`, from the roster's peer ids and addresses
    /// (`roster_path` names the file in errors).
    ///
    /// # Errors
    /// A roster peer id that does not parse.
    pub(super) fn from_roster(
        net: &Network,
        me: MemberIndex,
        roster_path: &std::path::Path,
    ) -> Result<Self, NodeError> {
        let mut peers = BTreeMap::new();
        let mut by_peer = HashMap::new();
        for (i, m) in net.roster().members.iter().enumerate() {
            let member = MemberIndex(i as u16);
            let peer_id: PeerId = m.peer_id.parse().map_err(|e| NodeError::Roster {
                path: roster_path.display().to_string(),
                message: format!("member {} has an invalid peer id: {e}", m.name),
            })?;
            by_peer.insert(peer_id, member);
            if member == me {
                continue;
            }
            let addrs = m
                .addresses
                .iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .collect();
            peers.insert(
                member,
                Peer {
                    member,
                    name: m.name.clone(),
                    peer_id,
                    addrs,
                    connections: 0,
                    dialing: false,
                    backoff: BACKOFF_MIN,
                    next_dial: tokio::time::Instant::now(),
                },
            );
        }
        Ok(Self { peers, by_peer })
    }

    /// Every roster member's peer id (the allow-list).
    pub(super) fn allowed(&self) -> Vec<PeerId> {
        self.by_peer.keys().copied().collect()
    }

    /// The roster member behind an authenticated peer id (this member's own included).
    pub(super) fn member(&self, peer: &PeerId) -> Option<MemberIndex> {
        self.by_peer.get(peer).copied()
    }

    /// Another member.
    pub(super) fn get(&self, member: MemberIndex) -> Option<&Peer> {
        self.peers.get(&member)
    }

    /// The other members connected now, in roster order.
    pub(super) fn connected(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().filter(|p| p.is_connected())
    }

    /// A connection to `peer` opened (`established` are open now). Returns the member when it
    /// is the first one: it just became reachable.
    pub(super) fn connection_established(
        &mut self,
        peer: &PeerId,
        established: usize,
    ) -> Option<MemberIndex> {
        let member = self.member(peer)?;
        let p = self.peers.get_mut(&member)?;
        p.connections = established;
        p.dialing = false;
        p.backoff = BACKOFF_MIN;
        (established == 1).then(|| {
            info!(member = %p.name, "connected");
            member
        })
    }

    /// A connection to `peer` closed (`established` remain). Returns whether `peer` is a roster
    /// member. When the last one closed, the member is redialled after its backoff.
    pub(super) fn connection_closed(
        &mut self,
        peer: &PeerId,
        established: usize,
        cause: Option<String>,
        now: tokio::time::Instant,
    ) -> bool {
        let Some(member) = self.member(peer) else {
            return false;
        };
        if let Some(p) = self.peers.get_mut(&member) {
            p.connections = established;
            if established == 0 {
                info!(member = %p.name, ?cause, "disconnected");
                p.next_dial = now + jittered(p.backoff);
            }
        }
        true
    }

    /// A dial to `peer` failed: try again after the backoff, which doubles (up to
    /// [`BACKOFF_MAX`]).
    pub(super) fn dial_failed(
        &mut self,
        peer: Option<PeerId>,
        error: &dyn std::fmt::Display,
        now: tokio::time::Instant,
    ) {
        let Some(p) = peer
            .and_then(|p| self.member(&p))
            .and_then(|m| self.peers.get_mut(&m))
        else {
            return;
        };
        p.dialing = false;
        p.next_dial = now + jittered(p.backoff);
        p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
        debug!(member = %p.name, %error, "dial failed");
    }

    /// Dials every disconnected member whose backoff has passed.
    pub(super) fn redial(&mut self, swarm: &mut Swarm<Behaviour>, now: tokio::time::Instant) {
        for p in self.peers.values_mut() {
            if p.connections > 0 || p.dialing || p.next_dial > now || p.addrs.is_empty() {
                continue;
            }
            // A fresh source port: reusing the listen port (libp2p's default) turns two members
            // dialing each other at the same moment (both restarting, a partition healing) into
            // one TCP simultaneous open where both sides are the Noise initiator, which fails,
            // and their retries stay in step. Members have roster addresses; nothing here needs
            // the port reuse that NAT traversal relies on.
            let opts = DialOpts::peer_id(p.peer_id)
                .addresses(p.addrs.clone())
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build();
            p.dialing = true;
            p.next_dial = now + jittered(p.backoff);
            if let Err(e) = swarm.dial(opts) {
                p.dialing = false;
                p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
                debug!(member = %p.name, error = %e, "dial not started");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use accord_protocol::fixtures::{Testnet, TestnetSpec};

    use super::*;

    fn peers() -> (Peers, Vec<PeerId>) {
        let tn = Testnet::generate(&TestnetSpec::new(4, 1, 0), &mut rand::rngs::OsRng, |k| {
            crate::p2p::peer_id_of(k).unwrap().to_string()
        });
        let net = Network::new(tn.roster).unwrap();
        let ids = net
            .roster()
            .members
            .iter()
            .map(|m| m.peer_id.parse().unwrap())
            .collect();
        let peers = Peers::from_roster(&net, MemberIndex(0), "roster.json".as_ref()).unwrap();
        (peers, ids)
    }

    #[test]
    fn only_roster_members_are_peers_and_this_member_is_not_dialled() {
        let (peers, ids) = peers();
        assert_eq!(peers.allowed().len(), 4);
        assert_eq!(peers.member(&ids[0]), Some(MemberIndex(0)));
        assert!(peers.get(MemberIndex(0)).is_none(), "not a peer of itself");
        assert_eq!(peers.get(MemberIndex(2)).unwrap().peer_id, ids[2]);
        assert_eq!(peers.member(&PeerId::random()), None);
    }

    #[test]
    fn the_first_connection_reports_the_member_and_the_last_close_schedules_a_redial() {
        let (mut peers, ids) = peers();
        let now = tokio::time::Instant::now();
        assert_eq!(
            peers.connection_established(&ids[1], 1),
            Some(MemberIndex(1))
        );
        assert_eq!(peers.connection_established(&ids[1], 2), None);
        assert_eq!(peers.connected().count(), 1);
        assert!(peers.connection_closed(&ids[1], 1, None, now));
        assert_eq!(peers.connected().count(), 1);
        assert!(peers.connection_closed(&ids[1], 0, None, now));
        assert_eq!(peers.connected().count(), 0);
        let p = peers.get(MemberIndex(1)).unwrap();
        assert!(p.next_dial >= now + BACKOFF_MIN.mul_f64(0.75));
        assert!(!peers.connection_closed(&PeerId::random(), 0, None, now));
    }

    #[test]
    fn failed_dials_back_off_up_to_the_maximum_and_a_connection_resets_it() {
        let (mut peers, ids) = peers();
        let now = tokio::time::Instant::now();
        for _ in 0..10 {
            peers.dial_failed(Some(ids[3]), &"refused", now);
        }
        let p = peers.get(MemberIndex(3)).unwrap();
        assert_eq!(p.backoff, BACKOFF_MAX);
        assert!(p.next_dial <= now + BACKOFF_MAX.mul_f64(1.25));
        peers.connection_established(&ids[3], 1);
        assert_eq!(peers.get(MemberIndex(3)).unwrap().backoff, BACKOFF_MIN);
    }
}
