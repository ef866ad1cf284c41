//! Messages on the simulated network: packets (encoded once, with a dense id for seen-caches),
//! sends and broadcasts (rewritten first when the sender is Byzantine), transmission over the
//! link model, delivery with gossipsub-like relaying, and connections.

use std::rc::Rc;

use accord_protocol::dkg::{DkgBody, DkgMachine, DkgOutput};
use accord_protocol::engine::Delivery;
use accord_protocol::message::Message;
use accord_protocol::roster::MemberIndex;
use accord_testkit::adversary::{Adversary, Behaviour};
use sha2::{Digest as _, Sha256};

use crate::net::Fate;
use crate::scenario::Role;
use crate::trace::TraceEntry;

use super::{Ev, Simulation};

/// A message as it travels: encoded once, shared by every copy.
pub(super) struct Packet {
    message: Message,
    kind: &'static str,
    bytes: u32,
    content: [u8; 32],
    /// Dense id for seen-caches (gossip only).
    id: u32,
    gossip: bool,
}

fn delivery_name(d: &Delivery) -> &'static str {
    match d {
        Delivery::Accepted => "accepted",
        Delivery::Duplicate => "duplicate",
        Delivery::Ignored => "ignored",
        Delivery::Rejected(_) => "rejected",
    }
}

impl Simulation {
    fn packet(&mut self, message: Message) -> Option<Rc<Packet>> {
        // A coordinator sends the same signing request to every signer of a session: encode it
        // once (comparing is far cheaper than serialising t commitments again).
        if let Some(last) = &self.last_packet
            && last.message == message
        {
            return Some(last.clone());
        }
        let bytes = match message.encode() {
            Ok(b) => b,
            Err(_) => {
                self.metrics.oversize += 1;
                return None;
            }
        };
        let content: [u8; 32] = Sha256::digest(&bytes).into();
        let gossip = message.is_gossip();
        let id = if gossip {
            let next = self.packet_ids.len() as u32;
            *self.packet_ids.entry(content).or_insert(next)
        } else {
            u32::MAX
        };
        self.checker.on_packet(&message, &content);
        let packet = Rc::new(Packet {
            kind: message.kind(),
            bytes: bytes.len() as u32,
            content,
            id,
            gossip,
            message,
        });
        if matches!(packet.message, Message::SignRequest(_)) {
            self.last_packet = Some(packet.clone());
        }
        Some(packet)
    }

    pub(super) fn send_out(&mut self, m: usize, to: MemberIndex, message: Message) {
        if self.honest[m] {
            if let Some(p) = self.packet(message) {
                self.transmit(m, usize::from(to.0), m as u16, p, false);
            }
            return;
        }
        let out = self.misbehave(m, vec![(to, message)]);
        self.send_variants(m, out);
    }

    pub(super) fn broadcast_out(&mut self, m: usize, message: Message) {
        let n = self.nodes.len();
        if self.honest[m] {
            let Some(p) = self.packet(message) else {
                return;
            };
            if p.gossip {
                self.nodes[m].seen_insert(p.id);
            }
            let targets: Vec<usize> = if self.sc.gossip.flood_publish {
                (1..n).map(|k| (m + k) % n).collect()
            } else {
                self.mesh[m].iter().map(|j| usize::from(*j)).collect()
            };
            for to in targets {
                self.transmit(m, to, m as u16, p.clone(), false);
            }
            return;
        }
        let all: Vec<(MemberIndex, Message)> = (1..n)
            .map(|k| (MemberIndex(((m + k) % n) as u16), message.clone()))
            .collect();
        let out = self.misbehave(m, all);
        self.send_variants(m, out);
    }

    /// Sends a Byzantine member's (rewritten) messages, one packet per distinct message.
    fn send_variants(&mut self, m: usize, out: Vec<(MemberIndex, Message)>) {
        let mut variants: Vec<(Message, Rc<Packet>)> = Vec::new();
        for (to, message) in out {
            let packet = match variants.iter().find(|(v, _)| *v == message) {
                Some((_, p)) => p.clone(),
                None => {
                    let Some(p) = self.packet(message.clone()) else {
                        continue;
                    };
                    if p.gossip {
                        self.nodes[m].seen_insert(p.id);
                    }
                    variants.push((message, p.clone()));
                    p
                }
            };
            self.transmit(m, usize::from(to.0), m as u16, packet, false);
        }
    }

    /// Applies member `m`'s behaviour to what its engine sends.
    fn misbehave(
        &mut self,
        m: usize,
        out: Vec<(MemberIndex, Message)>,
    ) -> Vec<(MemberIndex, Message)> {
        match self.roles[m] {
            Role::Protocol(behaviour) => {
                let adversary = Adversary {
                    net: &self.net,
                    identities: &self.identities,
                    key: self.nodes[m].member.key.as_ref(),
                    late: &self.late_items,
                    bodies: &self.checker.bodies,
                    colluders: &self.colluders,
                };
                adversary.rewrite(
                    behaviour,
                    MemberIndex(m as u16),
                    out,
                    &mut self.mutators[m],
                    &mut self.adv_rngs[m],
                )
            }
            Role::Twins => out,
            Role::EquivocatingDkg => {
                let mut alt: Option<Message> = None;
                let local = self.local(m);
                out.into_iter()
                    .map(|(to, msg)| match &msg {
                        Message::Dkg(d)
                            if matches!(d.body, DkgBody::Round1(_)) && to.0 % 2 == 1 =>
                        {
                            if alt.is_none() {
                                // A second, validly signed round-1 package for the same ceremony.
                                let (_, outputs) = DkgMachine::start(
                                    self.net.clone(),
                                    MemberIndex(m as u16),
                                    &self.identities[m],
                                    d.ceremony,
                                    local,
                                    &mut self.adv_rngs[m],
                                );
                                alt = outputs.into_iter().find_map(|o| match o {
                                    DkgOutput::Broadcast(b) => Some(Message::Dkg(b)),
                                    _ => None,
                                });
                            }
                            (to, alt.clone().unwrap_or(msg))
                        }
                        _ => (to, msg),
                    })
                    .collect()
            }
        }
    }

    fn transmit(&mut self, from: usize, to: usize, author: u16, packet: Rc<Packet>, dup: bool) {
        if from == to {
            return;
        }
        self.metrics.transmissions += 1;
        let fate =
            self.links
                .transmit(from, to, packet.bytes as usize, self.now, &mut self.net_rng);
        let mm = &mut self.metrics.members[from];
        mm.msgs_sent += 1;
        mm.bytes_sent += u64::from(packet.bytes);
        match fate {
            Fate::Cut => self.metrics.dropped_cut += 1,
            Fate::Lost => self.metrics.dropped_lost += 1,
            Fate::Delivered { at, dup: copy } => {
                let via = from as u16;
                if let Some(c) = copy {
                    self.metrics.injected_duplicates += 1;
                    self.queue.push(
                        c,
                        Ev::Deliver {
                            to: to as u16,
                            author,
                            via,
                            packet: packet.clone(),
                            dup: true,
                        },
                    );
                }
                self.queue.push(
                    at,
                    Ev::Deliver {
                        to: to as u16,
                        author,
                        via,
                        packet,
                        dup,
                    },
                );
            }
        }
    }

    pub(super) fn deliver(
        &mut self,
        to: usize,
        author: u16,
        via: u16,
        packet: Rc<Packet>,
        dup: bool,
    ) {
        if self.nodes[to].member.engine.is_none() {
            self.metrics.dropped_down += 1;
            return;
        }
        {
            let mm = &mut self.metrics.members[to];
            mm.msgs_recv += 1;
            mm.bytes_recv += u64::from(packet.bytes);
        }
        if packet.gossip && !dup && !self.nodes[to].seen_insert(packet.id) {
            self.metrics.gossip_duplicates += 1;
            return;
        }
        if self.roles[to] == Role::Protocol(Behaviour::Silent) {
            return;
        }
        // Twins: the odd-numbered members' messages reach the twin, the others the primary.
        if self.roles[to] == Role::Twins
            && author % 2 == 1
            && let Some(k) = self.twins.iter().position(|t| t.of == to)
        {
            let local = self.local(to);
            let node = &mut self.twins[k].node;
            if let Some(engine) = node.member.engine.as_mut() {
                engine.handle_message(
                    local,
                    MemberIndex(author),
                    packet.message.clone(),
                    &mut node.member.rng,
                );
            }
            self.drain_twin(k);
            self.schedule_twin_timer(k);
            return;
        }
        let local = self.local(to);
        let stamp = self.profile.start();
        let node = &mut self.nodes[to];
        let Some(engine) = node.member.engine.as_mut() else {
            return;
        };
        let delivery = engine.handle_message(
            local,
            MemberIndex(author),
            packet.message.clone(),
            &mut node.member.rng,
        );
        self.profile.stop(stamp, packet.kind);
        self.metrics_call(to);
        let content = u64::from_le_bytes(
            packet.content[..8]
                .try_into()
                .expect("a digest has 8 bytes"),
        );
        self.record(TraceEntry {
            at: self.now,
            what: if dup { "deliver2" } else { "deliver" },
            member: to as u16,
            other: author,
            message: packet.kind,
            content,
            outcome: delivery_name(&delivery),
        });
        self.drain(to);
        self.schedule_timer(to);
        if packet.gossip && !dup && delivery == Delivery::Accepted && self.honest[to] {
            let peers: Vec<u16> = self.mesh[to]
                .iter()
                .copied()
                .filter(|p| *p != via && *p != author)
                .collect();
            for p in peers {
                self.transmit(to, usize::from(p), author, packet.clone(), false);
            }
        }
    }

    pub(super) fn connect(&mut self, a: usize, b: usize) {
        if self.nodes[a].member.engine.is_none()
            || self.nodes[b].member.engine.is_none()
            || self.links.is_cut(a, b)
            || self.links.is_cut(b, a)
        {
            return;
        }
        let stamp = self.profile.start();
        if let Some(engine) = self.nodes[a].member.engine.as_mut() {
            engine.peer_connected(MemberIndex(b as u16));
        }
        self.profile.stop(stamp, "peer-connected");
        self.drain(a);
    }
}
