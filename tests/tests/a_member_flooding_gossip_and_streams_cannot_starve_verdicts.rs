//! FAULTS 21 (libp2p side): a roster member turned hostile floods one honest member with gossip
//! (tens of thousands of undecodable messages) and with direct-message streams (sync requests,
//! each asking for an answer). The victim's memory stays bounded, it rejects the garbage, its
//! gossipsub peer scoring graylists the flooder while the honest members keep their scores, and
//! it still takes part in co-signing every slot of the period (n = 4, t = 3: all three honest
//! members must sign, the victim included).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use accord_protocol::message::{Message, SyncRequest};
use accord_protocol::roster::Period;
use common::*;
use futures::StreamExt as _;
use libp2p::swarm::SwarmEvent;

/// What the flood sent.
#[derive(Debug, Default)]
struct Sent {
    gossip: u64,
    requests: u64,
    connected: bool,
}

#[test]
fn a_flooding_member_cannot_starve_the_verdicts_of_the_others() {
    let mut c = Cluster::new(4, 2, 12, true);
    for i in 0..3 {
        c.nodes[i].start();
    }
    c.wait_connected();
    let rss_before = c.nodes[0].rss_kib();

    // The attacker holds member 3's identity, so the victim (member 0) lets it connect.
    let key = accord_node::p2p::keypair_from_seed(&c.member_key(3).seed());
    let allowed: Vec<libp2p::PeerId> = c
        .net
        .roster()
        .members
        .iter()
        .map(|m| m.peer_id.parse().unwrap())
        .collect();
    let victim: libp2p::PeerId = allowed[0];
    let victim_addr: libp2p::Multiaddr = c.layout.members[0].p2p.parse().unwrap();
    let net = c.net.clone();
    let flood_for = Duration::from_secs(25);
    let flood = runtime().spawn(async move {
        let (mut swarm, topic) = foreign_swarm(key, &net, allowed);
        swarm.dial(victim_addr).unwrap();
        let mut sent = Sent::default();
        let deadline = tokio::time::Instant::now() + flood_for;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tokio::select! {
                e = swarm.select_next_some() => {
                    if let SwarmEvent::ConnectionEstablished { .. } = e {
                        sent.connected = true;
                    }
                }
                _ = tick.tick() => {
                    if !sent.connected {
                        continue;
                    }
                    for _ in 0..50 {
                        // Distinct garbage (identical bytes would be deduplicated by message id).
                        let mut junk = vec![0xA5u8; 512];
                        junk[..8].copy_from_slice(&sent.gossip.to_le_bytes());
                        if swarm.behaviour_mut().gossipsub.publish(topic.clone(), junk).is_ok() {
                            sent.gossip += 1;
                        }
                    }
                    for _ in 0..5 {
                        let ask = Message::SyncRequest(SyncRequest {
                            from: Period(0),
                            key_unconfirmed: true,
                        });
                        swarm.behaviour_mut().direct.send_request(&victim, ask);
                        sent.requests += 1;
                    }
                }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        sent
    });

    // Peer scoring, sampled through the flood: the flooder is graylisted (its gossip ignored,
    // pruned from the meshes; its score then decays back over the threshold and the next junk
    // pushes it under again, so it is sampled, not read once) while the honest members keep
    // non-negative scores all along.
    let attacker = c.layout.members[3].name.clone();
    let honest: Vec<String> = c.layout.members[1..3]
        .iter()
        .map(|m| m.name.clone())
        .collect();
    let flood_ends = std::time::Instant::now() + flood_for;
    let (at_victim, rss_during, lowest) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut lowest = f64::INFINITY;
            while std::time::Instant::now() < flood_ends {
                if let Some(s) = c.nodes[0].status() {
                    if let Some(f) = s.gossip_scores.get(&attacker) {
                        lowest = lowest.min(*f);
                    }
                    for m in &honest {
                        assert!(
                            s.gossip_scores.get(m).is_none_or(|v| *v >= 0.0),
                            "honest {m} keeps its score: {:?}",
                            s.gossip_scores
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            lowest
        });
        // Honest traffic during the flood: a period of evidence through the two other members.
        std::thread::sleep(Duration::from_secs(2));
        let period = c.open_period(6_000);
        for i in 0..2 {
            for ev in c.evidence(i, period, LabConduct::Compliant) {
                block_on(c.nodes[1 + i].client.submit(&ev)).unwrap();
            }
        }
        let at_victim = c.wait_statements(0, period, Duration::from_secs(60));
        assert_eq!(at_victim.len(), 2);
        assert_eq!(
            c.wait_statements(1, period, Duration::from_secs(10)),
            at_victim
        );
        let rss_during = c.nodes[0].rss_kib();
        (at_victim, rss_during, sampler.join().unwrap())
    });
    assert!(
        lowest < accord_node::p2p::GRAYLIST_THRESHOLD,
        "the flooder was graylisted: lowest score {lowest}"
    );
    assert_eq!(at_victim.len(), 2);
    let scores = c.nodes[0].status().unwrap().gossip_scores;
    for m in &c.layout.members[1..3] {
        assert!(
            scores.get(&m.name).is_some_and(|s| *s >= 0.0),
            "honest {} keeps its score: {scores:?}",
            m.name
        );
    }

    let sent = block_on(flood).unwrap();
    assert!(
        sent.connected,
        "the attacker connected (it holds a roster identity)"
    );
    assert!(
        sent.gossip > 10_000 && sent.requests > 1_000,
        "the flood was sent: {sent:?}"
    );
    assert!(c.nodes[0].is_running(), "the victim survived the flood");
    let rejected = c.nodes[0]
        .metrics()
        .lines()
        .find(|l| l.starts_with("accord_messages_rejected_total{reason=\"decode\"}"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .unwrap_or(0.0);
    // A graylisted peer's messages are dropped by gossipsub before they reach the engine, so
    // only the first few (and a few more each time the penalty decays) are decoded at all.
    assert!(
        rejected >= 4.0,
        "the garbage reached the victim and was rejected: {rejected}"
    );
    assert!(
        rejected < sent.gossip as f64 / 2.0,
        "most of the flood never reached the engine: {rejected} of {}",
        sent.gossip
    );
    let rss_after = c.nodes[0].rss_kib();
    eprintln!(
        "flood {sent:?}; victim rejected {rejected} undecodable; flooder's lowest score \
         {lowest}; RSS {rss_before} KiB before, {rss_during} during, {rss_after} after"
    );
    let grown = rss_during.max(rss_after).saturating_sub(rss_before);
    assert!(
        grown < 200 * 1024,
        "memory stays bounded: {rss_before} KiB before, {rss_during} during, {rss_after} after"
    );
}
