//! Byzantine behaviours (feature `testkit`), shared by the in-memory harness and the simulator.
//!
//! A Byzantine member runs an honest engine; its behaviour rewrites what that engine sends. Keeping
//! the rewriting in one place means the harness tests and the simulator's scenarios attack the
//! protocol in exactly the same ways.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_core::{CryptoRng, RngCore};

use crate::crypto::{Digest, Frost, SecretKey};
use crate::dkg::KeyMaterial;
use crate::evidence::Evidence;
use crate::message::{Message, Observation, SignedObservation};
use crate::policy;
use crate::roster::{MemberIndex, Network};

/// How a member behaves. Byzantine behaviours rewrite what an otherwise honest engine sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends nothing.
    Silent,
    /// Sends random signature shares.
    GarbageShares,
    /// Accepts with commitments that do not match its nonces.
    WrongCommitments,
    /// Sends different observations to different members.
    EquivocatingObservations,
    /// As coordinator, sends a proposal to half the members and a conflicting one (an item
    /// dropped) to the other half.
    EquivocatingProposals,
    /// As coordinator, sends signers signing packages over different messages (split view).
    SplitViewPackages,
    /// Vouches for evidence a colluding lab handed it outside admission, and slips it into its
    /// proposals (late injection).
    LateInjector,
    /// As coordinator, proposes but never starts a signing session (withholding).
    Withholding,
    /// Accepts proposals, then never sends its share (stalls the sessions it is put in).
    AcceptThenSilent,
}

impl Behaviour {
    /// Whether the behaviour is the protocol's.
    pub fn is_honest(self) -> bool {
        self == Behaviour::Honest
    }
}

/// What a Byzantine member knows besides its own engine.
pub struct Adversary<'a> {
    /// The network.
    pub net: &'a Network,
    /// Identity keys of every member (the adversary only uses its own and its colluders').
    pub identities: &'a [SecretKey],
    /// The member's own key material.
    pub key: Option<&'a KeyMaterial>,
    /// Late items the colluding lab handed over.
    pub late: &'a BTreeSet<Digest>,
    /// Known evidence bodies.
    pub bodies: &'a BTreeMap<Digest, Arc<Evidence>>,
    /// The colluding late injectors.
    pub colluders: &'a [MemberIndex],
}

impl Adversary<'_> {
    /// Rewrites what member `m` (with `behaviour`) sends.
    pub fn rewrite(
        &self,
        behaviour: Behaviour,
        m: MemberIndex,
        out: Vec<(MemberIndex, Message)>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<(MemberIndex, Message)> {
        let i = usize::from(m.0);
        match behaviour {
            Behaviour::Honest => out,
            Behaviour::Silent => Vec::new(),
            Behaviour::AcceptThenSilent => out
                .into_iter()
                .filter(|(_, msg)| !matches!(msg, Message::Share(_)))
                .collect(),
            Behaviour::Withholding => out
                .into_iter()
                .filter(|(_, msg)| !matches!(msg, Message::SignRequest(_)))
                .collect(),
            Behaviour::GarbageShares => out
                .into_iter()
                .map(|(to, msg)| match msg {
                    Message::Share(mut s) => {
                        let scalar = frost::SigningKey::new(&mut *rng).serialize();
                        s.share = Frost::new(
                            frost::round2::SignatureShare::deserialize(&scalar)
                                .expect("a scalar is a share"),
                        );
                        (to, Message::Share(s))
                    }
                    other => (to, other),
                })
                .collect(),
            Behaviour::WrongCommitments => out
                .into_iter()
                .map(|(to, msg)| match (msg, self.key) {
                    (Message::Accept(mut a), Some(k)) => {
                        let (_, c) =
                            frost::round1::commit(k.key_package.signing_share(), &mut *rng);
                        a.commitments = Frost::new(c);
                        (to, Message::Accept(a))
                    }
                    (other, _) => (to, other),
                })
                .collect(),
            Behaviour::EquivocatingObservations => out
                .into_iter()
                .map(|(to, msg)| match msg {
                    Message::Observation(o) if to.0 % 2 == 0 => {
                        let mut items = o.observation.items.clone();
                        items.push(Digest([0xEE; 32]));
                        items.sort();
                        let observation = Observation {
                            items,
                            ..o.observation.clone()
                        };
                        let signature =
                            self.identities[i].sign(&observation.signing_bytes(self.net.id()));
                        (
                            to,
                            Message::Observation(Arc::new(SignedObservation {
                                observation,
                                signature,
                            })),
                        )
                    }
                    other => (to, other),
                })
                .collect(),
            Behaviour::EquivocatingProposals => out
                .into_iter()
                .map(|(to, msg)| match msg {
                    Message::Proposal(p) if to.0 % 2 == 0 => {
                        let mut q = (*p).clone();
                        if let Some(s) = q.statements.iter_mut().find(|s| !s.evidence.is_empty()) {
                            let dropped = s.evidence.remove(0);
                            q.evidence.retain(|e| e.digest() != dropped);
                            let items: Vec<(Digest, &Evidence)> = s
                                .evidence
                                .iter()
                                .filter_map(|d| {
                                    q.evidence
                                        .iter()
                                        .find(|e| e.digest() == *d)
                                        .map(|e| (*d, &**e))
                                })
                                .collect();
                            s.verdict = policy::evaluate(&self.net.roster().policy, &items);
                        }
                        (to, Message::Proposal(Arc::new(q)))
                    }
                    other => (to, other),
                })
                .collect(),
            Behaviour::SplitViewPackages => out
                .into_iter()
                .map(|(to, msg)| match msg {
                    Message::SignRequest(mut r) if to.0 % 2 == 0 => {
                        let commitments = r.package.signing_commitments().clone();
                        let mut message = r.package.message().clone();
                        message.push(0x01);
                        r.package = Frost::new(frost::SigningPackage::new(commitments, &message));
                        (to, Message::SignRequest(r))
                    }
                    other => (to, other),
                })
                .collect(),
            Behaviour::LateInjector => out
                .into_iter()
                .map(|(to, msg)| match msg {
                    Message::Proposal(p) => {
                        // As coordinator, slip the late items into the statements.
                        let mut q = (*p).clone();
                        for d in self.late {
                            let Some(body) = self.bodies.get(d).cloned() else {
                                continue;
                            };
                            let Some(s) = q.statements.iter_mut().find(|s| {
                                s.slot.lab == body.lab() && s.slot.period == body.period()
                            }) else {
                                continue;
                            };
                            if s.evidence.contains(d) {
                                continue;
                            }
                            s.evidence.push(*d);
                            s.evidence.sort();
                            q.evidence.push(body);
                            let items: Vec<(Digest, &Evidence)> = s
                                .evidence
                                .iter()
                                .filter_map(|x| {
                                    q.evidence
                                        .iter()
                                        .find(|e| e.digest() == *x)
                                        .map(|e| (*x, &**e))
                                })
                                .collect();
                            s.verdict = policy::evaluate(&self.net.roster().policy, &items);
                        }
                        // Vouch with every colluder's observation.
                        let colluders: Vec<usize> =
                            self.colluders.iter().map(|c| usize::from(c.0)).collect();
                        let period = q.id.unit.period();
                        q.observations
                            .retain(|o| !colluders.contains(&usize::from(o.observation.member.0)));
                        for j in colluders {
                            let mut items: Vec<Digest> = self.late.iter().copied().collect();
                            items.extend(
                                q.statements.iter().flat_map(|s| s.evidence.iter().copied()),
                            );
                            items.sort();
                            items.dedup();
                            let observation = Observation {
                                member: MemberIndex(j as u16),
                                period,
                                items,
                            };
                            let signature =
                                self.identities[j].sign(&observation.signing_bytes(self.net.id()));
                            q.observations.push(Arc::new(SignedObservation {
                                observation,
                                signature,
                            }));
                        }
                        (to, Message::Proposal(Arc::new(q)))
                    }
                    Message::Observation(o) => {
                        // Vouch for every late item the colluding lab handed us.
                        let mut items = o.observation.items.clone();
                        items.extend(
                            self.late
                                .iter()
                                .filter(|d| !items.contains(d))
                                .copied()
                                .collect::<Vec<_>>(),
                        );
                        items.sort();
                        let observation = Observation {
                            items,
                            ..o.observation.clone()
                        };
                        let signature =
                            self.identities[i].sign(&observation.signing_bytes(self.net.id()));
                        (
                            to,
                            Message::Observation(Arc::new(SignedObservation {
                                observation,
                                signature,
                            })),
                        )
                    }
                    other => (to, other),
                })
                .collect(),
        }
    }
}
