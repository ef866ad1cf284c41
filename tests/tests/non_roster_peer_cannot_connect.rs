//! FAULTS 19, issue 3: a libp2p peer that is not in the roster, speaking the network's own
//! protocols, is refused at connection time (and logged), so it can inject nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use accord_protocol::message::Message;
use common::*;
use futures::StreamExt as _;
use libp2p::swarm::SwarmEvent;

#[test]
fn a_stranger_is_refused_and_its_gossip_never_arrives() {
    let mut c = Cluster::new(3, 1, 60, true);
    c.nodes[0].start();
    c.nodes[0].wait_up();
    let period = c.open_period(10_000);
    let evidence = c.evidence(0, period, LabConduct::Compliant).remove(0);

    let victim_peer: libp2p::PeerId = c.net.roster().members[0].peer_id.parse().unwrap();
    let victim_addr: libp2p::Multiaddr = c.layout.members[0].p2p.parse().unwrap();
    let net = c.net.clone();

    let (established, closed) = block_on(async move {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let (mut swarm, topic) = foreign_swarm(key, &net, [victim_peer]);
        swarm.dial(victim_addr).unwrap();
        let bytes = Message::Evidence(std::sync::Arc::new(evidence))
            .encode()
            .unwrap();
        let (mut established, mut closed) = (0, 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        loop {
            tokio::select! {
                e = swarm.select_next_some() => match e {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        established += 1;
                        // Try to inject while (if ever) connected.
                        let _ = swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes.clone());
                    }
                    SwarmEvent::ConnectionClosed { .. } | SwarmEvent::OutgoingConnectionError { .. } => closed += 1,
                    _ => {}
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        assert_eq!(
            swarm.connected_peers().count(),
            0,
            "the stranger stays disconnected"
        );
        (established, closed)
    });
    assert!(
        closed >= 1,
        "the connection attempt must end (established {established})"
    );

    let metrics = c.nodes[0].metrics();
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("accord_connections_refused_total{reason=\"denied\"}"))
        .unwrap_or_else(|| panic!("no refusal counted:\n{metrics}"));
    assert!(!refused.ends_with(" 0"), "{refused}");
    assert!(
        c.nodes[0]
            .log_text()
            .contains("refused an incoming connection")
    );
    let s = c.nodes[0].status().unwrap();
    assert_eq!(
        s.evidence_items, 0,
        "nothing from the stranger was admitted"
    );
    assert!(s.connected.is_empty());
}
