//! Byzantine behaviours , shared by the in-memory harness and the simulator.
//!
//! A Byzantine member runs an honest engine; its behaviour rewrites what that engine sends. Keeping
//! the rewriting in one place means the harness tests and the simulator's scenarios attack the
//! protocol in exactly the same ways.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_core::{CryptoRng, RngCore};

use accord_protocol::crypto::{Digest, Frost, SecretKey};
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::evidence::{Evidence, Place};
use accord_protocol::message::{
    Message, Observation, SignedObservation, SlotItems, SuccessionMessage,
};
use accord_protocol::policy;
use accord_protocol::roster::{LabIndex, MemberIndex, Network};

pub mod generative;

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
    /// Accepts proposals, then never sends its share (stalls the sessions it is put in); in a
    /// succession's co-signing it keeps sending fresh commitments instead.
    AcceptThenSilent,
    /// Rewrites what it sends at random: drops, duplicates, reorders, replays, mutates and
    /// re-signs, oversizes, splits views ([`generative::Mutator`]).
    Generative,
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
    /// `observation` signed by member `i`, as a message.
    fn signed_observation(&self, i: usize, observation: Observation) -> Message {
        let signature = self.identities[i].sign(&observation.signing_bytes(self.net.id()));
        Message::Observation(Arc::new(SignedObservation {
            observation,
            signature,
        }))
    }

    /// Rewrites what member `m` (with `behaviour`) sends; `mutator` is the member's generative
    /// state (used by [`Behaviour::Generative`] only).
    pub fn rewrite(
        &self,
        behaviour: Behaviour,
        m: MemberIndex,
        out: Vec<(MemberIndex, Message)>,
        mutator: &mut generative::Mutator,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<(MemberIndex, Message)> {
        let i = usize::from(m.0);
        match behaviour {
            Behaviour::Honest => out,
            Behaviour::Generative => mutator.rewrite(self, m, out, rng),
            Behaviour::Silent => Vec::new(),
            Behaviour::AcceptThenSilent => out
                .into_iter()
                .filter(|(_, msg)| {
                    !matches!(
                        msg,
                        Message::Share(_) | Message::Succession(SuccessionMessage::Share { .. })
                    )
                })
                .collect(),
            Behaviour::Withholding => out
                .into_iter()
                .filter(|(_, msg)| !matches!(msg, Message::SignRequest(_)))
                .collect(),
            Behaviour::GarbageShares => out
                .into_iter()
                .map(|(to, msg)| match msg {
                    Message::Share(mut s) => {
                        s.share = garbage_share(rng);
                        (to, Message::Share(s))
                    }
                    Message::Succession(SuccessionMessage::Share {
                        succession,
                        package,
                        next,
                        ..
                    }) => (
                        to,
                        Message::Succession(SuccessionMessage::Share {
                            succession,
                            package,
                            share: garbage_share(rng),
                            next,
                        }),
                    ),
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
                        let observation = with_items(
                            &o.observation,
                            &[(LabIndex(0), Place::Attestation, Digest([0xEE; 32]))],
                        );
                        (to, self.signed_observation(i, observation))
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
                            s.evidence.remove(0);
                            s.verdict = self.verdict(&s.evidence);
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
            Behaviour::LateInjector => {
                let late: Vec<(LabIndex, Place, Digest, Arc<Evidence>)> = self
                    .late
                    .iter()
                    .filter_map(|d| {
                        let body = self.bodies.get(d)?;
                        let lab = self.net.lab_by_id(body.lab())?;
                        Some((lab, body.place(), *d, body.clone()))
                    })
                    .collect();
                let places: Vec<(LabIndex, Place, Digest)> =
                    late.iter().map(|(l, p, d, _)| (*l, *p, *d)).collect();
                out.into_iter()
                    .map(|(to, msg)| match msg {
                        Message::Proposal(p) => {
                            // As coordinator, slip the late items into the statements.
                            let mut q = (*p).clone();
                            let period = q.id.unit.period();
                            for (lab, _, d, _) in &late {
                                let Some(s) = q.statements.iter_mut().find(|s| {
                                    s.slot.lab == self.net.lab_id(*lab) && s.slot.period == period
                                }) else {
                                    continue;
                                };
                                if s.evidence.contains(d) {
                                    continue;
                                }
                                s.evidence.push(*d);
                                s.evidence.sort();
                                s.verdict = self.verdict(&s.evidence);
                            }
                            // Vouch with every colluder's observation.
                            q.observations
                                .retain(|o| !self.colluders.contains(&o.observation.member));
                            for c in self.colluders {
                                let mut observation = Observation {
                                    member: *c,
                                    period,
                                    slots: Vec::new(),
                                };
                                let mut vouched = places.clone();
                                for s in &q.statements {
                                    for d in &s.evidence {
                                        if let Some(b) = self.bodies.get(d)
                                            && let Some(lab) = self.net.lab_by_id(b.lab())
                                        {
                                            vouched.push((lab, b.place(), *d));
                                        }
                                    }
                                }
                                observation = with_items(&observation, &vouched);
                                let signature = self.identities[usize::from(c.0)]
                                    .sign(&observation.signing_bytes(self.net.id()));
                                q.observations.push(Arc::new(SignedObservation {
                                    observation,
                                    signature,
                                }));
                            }
                            (to, Message::Proposal(Arc::new(q)))
                        }
                        Message::Bodies(b) => {
                            // Answer fetches with the late bodies too.
                            let mut b = (*b).clone();
                            for (_, _, _, body) in &late {
                                if body.period() == b.unit.period() && !b.evidence.contains(body) {
                                    b.evidence.push(body.clone());
                                }
                            }
                            (to, Message::Bodies(Arc::new(b)))
                        }
                        Message::Observation(o) => {
                            // Vouch for every late item the colluding lab handed us.
                            let observation = with_items(&o.observation, &places);
                            (to, self.signed_observation(i, observation))
                        }
                        other => (to, other),
                    })
                    .collect()
            }
        }
    }

    /// The policy's verdict on `items`, from the bodies the adversary knows.
    fn verdict(&self, items: &[Digest]) -> policy::Verdict {
        let known: Vec<(Digest, &Evidence)> = items
            .iter()
            .filter_map(|d| self.bodies.get(d).map(|e| (*d, &**e)))
            .collect();
        policy::evaluate(&self.net.roster().policy, &known)
    }
}

/// `obs` with `items` added in their places, within the syntax rules' per-slot bounds (an
/// item that does not fit is left out, so the observation still passes `Observation::check`).
pub fn with_items(obs: &Observation, items: &[(LabIndex, Place, Digest)]) -> Observation {
    let mut out = obs.clone();
    for (lab, place, d) in items {
        let i = match out.slots.binary_search_by_key(lab, |s| s.lab) {
            Ok(i) => i,
            Err(i) => {
                out.slots.insert(
                    i,
                    SlotItems {
                        lab: *lab,
                        attestations: Vec::new(),
                        reports: Vec::new(),
                    },
                );
                i
            }
        };
        let slot = &mut out.slots[i];
        match place {
            Place::Attestation => {
                if let Err(j) = slot.attestations.binary_search(d)
                    && slot.attestations.len() < accord_protocol::limits::MAX_ATTESTATIONS_PER_SLOT
                {
                    slot.attestations.insert(j, *d);
                }
            }
            Place::Report(inspector) => {
                if let Err(j) = slot.reports.binary_search_by_key(inspector, |(m, _)| *m) {
                    slot.reports.insert(j, (*inspector, *d));
                }
            }
        }
    }
    out.slots
        .retain(|s| !s.attestations.is_empty() || !s.reports.is_empty());
    out
}

/// A random scalar as a signature share: well-formed, and wrong.
fn garbage_share(rng: &mut (impl RngCore + CryptoRng)) -> Frost<frost::round2::SignatureShare> {
    let scalar = frost::SigningKey::new(rng).serialize();
    Frost::new(frost::round2::SignatureShare::deserialize(&scalar).expect("a scalar is a share"))
}
