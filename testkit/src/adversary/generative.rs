//! A generative Byzantine member : it runs an honest engine and, with seeded
//! probabilities, rewrites every message that engine sends, so that many seeds explore many
//! attacks nobody wrote down. Used by the simulator's `generative` role and by harness tests.
//!
//! For each outgoing message the [`Mutator`] picks one action:
//! - pass it on unchanged (most of the time, so the member also looks honest);
//! - drop it, duplicate it, or hold it back and release it a few messages later (reordering);
//! - replay a message it sent earlier (an older slot, period, attempt or session);
//! - mutate it and, where the member itself signs it (observations, its inspection reports),
//!   re-sign the altered content: items dropped, added in the wrong place, invented, or pushed
//!   past the roster's bounds; proposals with items removed or added, wrong verdicts, forged
//!   or duplicated observations, out-of-range revisions and attempts; commitments, shares and
//!   signing packages that do not match; `Missing`, `Fetch` and `Bodies` oversized or full of
//!   digests nobody vouched for;
//! - for a broadcast, send different versions to different members (split views).
//!
//! DKG messages pass unchanged: a key ceremony needs every member (a Byzantine member can
//! always abort it), and the scenarios that use this adversary deal keys.

use std::collections::VecDeque;
use std::sync::Arc;

use frost_ed25519 as frost;
use rand_core::{CryptoRng, RngCore};

use super::{Adversary, with_items};
use accord_protocol::crypto::{Digest, Frost, Signature};
use accord_protocol::evidence::{Evidence, Place};
use accord_protocol::message::{
    Bodies, Fetch, Message, Observation, Proposal, SignedObservation, SlotItems, SuccessionMessage,
    SyncRequest,
};
use accord_protocol::policy;
use accord_protocol::roster::{LabIndex, MemberIndex, Period};
use accord_protocol::statement::CoSigned;

/// Messages kept for replays.
const HISTORY: usize = 256;
/// Messages held back at most (released oldest first).
const HELD: usize = 32;

/// The seeded rewriting state of one generative member.
#[derive(Default)]
pub struct Mutator {
    history: VecDeque<(MemberIndex, Message)>,
    held: VecDeque<(MemberIndex, Message)>,
    /// Actions taken, by name (for reports and tests).
    pub actions: std::collections::BTreeMap<&'static str, u64>,
}

fn roll(rng: &mut impl RngCore, percent: u32) -> bool {
    rng.next_u32() % 100 < percent
}

fn pick<'a, T>(rng: &mut impl RngCore, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get((rng.next_u64() % v.len() as u64) as usize)
    }
}

fn random_digest(rng: &mut impl RngCore) -> Digest {
    let mut d = [0u8; 32];
    rng.fill_bytes(&mut d);
    Digest(d)
}

impl Mutator {
    /// Rewrites what member `m` sends (`out`: recipient and message, in the engine's order).
    pub fn rewrite(
        &mut self,
        adv: &Adversary<'_>,
        m: MemberIndex,
        out: Vec<(MemberIndex, Message)>,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<(MemberIndex, Message)> {
        let mut sent = Vec::new();
        // Release some held messages first (they now arrive after newer ones).
        while !self.held.is_empty() && (self.held.len() > HELD || roll(rng, 30)) {
            if let Some(h) = self.held.pop_front() {
                sent.push(h);
            }
        }
        // A broadcast reaches every member: sometimes each group gets its own version.
        let broadcast = out.len() > 1 && out.windows(2).all(|w| w[0].1 == w[1].1);
        let split = broadcast && roll(rng, 10);
        let shared = if broadcast && !split {
            Some(self.action(adv, m, out[0].1.clone(), rng))
        } else {
            None
        };
        for (to, msg) in out {
            let variants = match &shared {
                Some(v) => v.clone(),
                None => self.action(adv, m, msg.clone(), rng),
            };
            for v in variants {
                self.remember(to, &v);
                sent.push((to, v));
            }
            if split && roll(rng, 3) {
                // Also an old message to this member.
                if let Some((_, old)) = pick(rng, self.history.make_contiguous()).cloned() {
                    self.count("replay");
                    sent.push((to, old));
                }
            }
        }
        // Hold some back (reordering).
        let mut kept = Vec::with_capacity(sent.len());
        for s in sent {
            if roll(rng, 8) {
                self.count("delay");
                self.held.push_back(s);
            } else {
                kept.push(s);
            }
        }
        kept
    }

    fn count(&mut self, what: &'static str) {
        *self.actions.entry(what).or_default() += 1;
    }

    fn remember(&mut self, to: MemberIndex, msg: &Message) {
        if matches!(
            msg,
            Message::Dkg(_) | Message::Refresh(_) | Message::Repair(_)
        ) {
            return;
        }
        self.history.push_back((to, msg.clone()));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// What to send instead of `msg` (zero, one or more messages).
    fn action(
        &mut self,
        adv: &Adversary<'_>,
        m: MemberIndex,
        msg: Message,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Vec<Message> {
        if matches!(
            msg,
            Message::Dkg(_) | Message::Refresh(_) | Message::Repair(_)
        ) {
            return vec![msg];
        }
        match rng.next_u32() % 100 {
            0..=54 => vec![msg],
            55..=62 => {
                self.count("drop");
                vec![]
            }
            63..=67 => {
                self.count("duplicate");
                vec![msg.clone(), msg]
            }
            68..=72 => {
                self.count("replay");
                let old = pick(rng, self.history.make_contiguous()).map(|(_, o)| o.clone());
                old.into_iter().chain([msg]).collect()
            }
            _ => {
                self.count("mutate");
                vec![mutate(adv, m, msg, rng)]
            }
        }
    }
}

/// One random alteration of `msg`, re-signed where `m` signs it.
fn mutate(
    adv: &Adversary<'_>,
    m: MemberIndex,
    msg: Message,
    rng: &mut (impl RngCore + CryptoRng),
) -> Message {
    let me = &adv.identities[usize::from(m.0)];
    let net = adv.net;
    let limits = net.limits();
    let known: Vec<&Arc<Evidence>> = adv.bodies.values().collect();
    match msg {
        Message::Evidence(ev) => match &*ev {
            Evidence::Report { report, .. } if report.inspector == m => {
                // A second, different report by this inspector for the same slot.
                let mut r = report.clone();
                r.observed_accelerators = r
                    .observed_accelerators
                    .wrapping_add(1 + rng.next_u64() % 1000);
                Message::Evidence(Arc::new(r.sign(net.id(), me)))
            }
            _ => {
                let mut e = (*ev).clone();
                match &mut e {
                    Evidence::Attestation { signature, .. }
                    | Evidence::Report { signature, .. } => {
                        signature.0[(rng.next_u32() % 64) as usize] ^= 1;
                    }
                }
                Message::Evidence(Arc::new(e))
            }
        },
        Message::Observation(o) => {
            let observation = mutate_observation(&o.observation, adv, rng);
            let signature = if roll(rng, 10) {
                Signature([rng.next_u32() as u8; 64])
            } else {
                me.sign(&observation.signing_bytes(net.id()))
            };
            Message::Observation(Arc::new(SignedObservation {
                observation,
                signature,
            }))
        }
        Message::Proposal(p) => Message::Proposal(Arc::new(mutate_proposal(&p, adv, m, rng))),
        Message::Accept(mut a) => {
            match rng.next_u32() % 3 {
                0 => {
                    if let Some(k) = adv.key {
                        let (_, c) = frost::round1::commit(k.key_package.signing_share(), rng);
                        a.commitments = Frost::new(c);
                    }
                }
                1 => a.proposal = random_digest(rng),
                _ => a.id.revision = a.id.revision.wrapping_add(1),
            }
            Message::Accept(a)
        }
        Message::Missing(mi) => {
            let mut x = (*mi).clone();
            let extra = match rng.next_u32() % 3 {
                0 => 1,
                1 => limits.items_per_unit(limits.labs),
                _ => limits.items_per_unit(limits.labs) + 1,
            };
            for _ in 0..extra {
                x.items.push(random_digest(rng));
            }
            if roll(rng, 30)
                && let Some(o) = x.observations.first().cloned()
            {
                let mut f = (*o).clone();
                f.signature.0[0] ^= 1;
                x.observations.push(Arc::new(f));
            }
            Message::Missing(Arc::new(x))
        }
        Message::SignRequest(mut r) => {
            let commitments = r.package.signing_commitments().clone();
            let mut message = r.package.message().clone();
            match rng.next_u32() % 3 {
                0 => {
                    message.push(rng.next_u32() as u8);
                    r.package = Frost::new(frost::SigningPackage::new(commitments, &message));
                }
                1 => {
                    let mut fewer = commitments;
                    if let Some(k) = fewer.keys().next().copied() {
                        fewer.remove(&k);
                    }
                    r.package = Frost::new(frost::SigningPackage::new(fewer, &message));
                }
                _ => r.session = r.session.wrapping_add(1 + rng.next_u32() % 4),
            }
            Message::SignRequest(r)
        }
        Message::Share(mut s) => {
            let scalar = frost::SigningKey::new(&mut *rng).serialize();
            if let Ok(share) = frost::round2::SignatureShare::deserialize(&scalar) {
                s.share = Frost::new(share);
            }
            Message::Share(s)
        }
        Message::CoSigned(c) => {
            let mut x: CoSigned = (*c).clone();
            if let Some(s) = x.statements.first_mut() {
                s.evidence.push(random_digest(rng));
                s.evidence.sort();
            }
            Message::CoSigned(Arc::new(x))
        }
        Message::SyncRequest(r) => Message::SyncRequest(SyncRequest {
            from: Period(r.from.0.saturating_sub(rng.next_u64() % 8)),
            key_unconfirmed: !r.key_unconfirmed,
        }),
        Message::Fetch(f) => {
            let mut digests = f.digests.clone();
            let extra = if roll(rng, 50) {
                limits.items_per_unit(limits.labs) + 1
            } else {
                4
            };
            for _ in 0..extra {
                digests.push(random_digest(rng));
            }
            Message::Fetch(Fetch {
                unit: f.unit,
                digests,
            })
        }
        Message::Bodies(b) => {
            let mut x: Bodies = (*b).clone();
            match rng.next_u32() % 3 {
                0 => {
                    x.evidence.clear();
                }
                1 => {
                    if let Some(e) = pick(rng, &known) {
                        x.evidence.push((*e).clone());
                    }
                }
                _ => {
                    if let Some(e) = x.evidence.first() {
                        let mut e = (**e).clone();
                        match &mut e {
                            Evidence::Attestation { signature, .. }
                            | Evidence::Report { signature, .. } => signature.0[7] ^= 1,
                        }
                        x.evidence.push(Arc::new(e));
                    }
                }
            }
            Message::Bodies(Arc::new(x))
        }
        Message::Succession(s) => Message::Succession(mutate_succession(s, adv, rng)),
        other @ (Message::Dkg(_) | Message::Refresh(_) | Message::Repair(_)) => other,
    }
}

/// A succession message altered: another first period (the signatures no longer match), a
/// package over other bytes or with a commitment fewer, a garbage share, a fresh commitment
/// the sender holds no nonce for.
fn mutate_succession(
    s: SuccessionMessage,
    adv: &Adversary<'_>,
    rng: &mut (impl RngCore + CryptoRng),
) -> SuccessionMessage {
    match s {
        SuccessionMessage::Propose(p) => {
            let mut x = (*p).clone();
            x.succession.first_period = Period(x.succession.first_period.0.wrapping_add(1));
            SuccessionMessage::Propose(Arc::new(x))
        }
        SuccessionMessage::Ready {
            succession,
            commitments,
        } => match adv.key {
            Some(k) => SuccessionMessage::Ready {
                succession,
                commitments: Frost::new(
                    frost::round1::commit(k.key_package.signing_share(), rng).1,
                ),
            },
            None => SuccessionMessage::Ready {
                succession: random_digest(rng),
                commitments,
            },
        },
        SuccessionMessage::SignRequest {
            succession,
            package,
        } => {
            let mut commitments = package.signing_commitments().clone();
            let mut message = package.message().clone();
            if roll(rng, 50) {
                message.push(rng.next_u32() as u8);
            } else if let Some(k) = commitments.keys().next().copied() {
                commitments.remove(&k);
            }
            SuccessionMessage::SignRequest {
                succession,
                package: Frost::new(frost::SigningPackage::new(commitments, &message)),
            }
        }
        SuccessionMessage::Share {
            succession,
            package,
            share,
            next,
        } => {
            let scalar = frost::SigningKey::new(&mut *rng).serialize();
            SuccessionMessage::Share {
                succession,
                package,
                share: frost::round2::SignatureShare::deserialize(&scalar)
                    .map(Frost::new)
                    .unwrap_or(share),
                next,
            }
        }
        SuccessionMessage::Done(d) => {
            let mut x = (*d).clone();
            x.signature.0[(rng.next_u32() % 64) as usize] ^= 1;
            SuccessionMessage::Done(Arc::new(x))
        }
    }
}

fn mutate_observation(o: &Observation, adv: &Adversary<'_>, rng: &mut impl RngCore) -> Observation {
    let labs = adv.net.roster().labs.len().max(1) as u64;
    let lab = LabIndex((rng.next_u64() % labs) as u16);
    let inspector = MemberIndex((rng.next_u64() % adv.net.n() as u64) as u16);
    match rng.next_u32() % 6 {
        0 => {
            // Drop one item.
            let mut x = o.clone();
            if let Some(s) = x.slots.first_mut() {
                if !s.attestations.is_empty() {
                    s.attestations.remove(0);
                } else if !s.reports.is_empty() {
                    s.reports.remove(0);
                }
            }
            x.slots
                .retain(|s| !s.attestations.is_empty() || !s.reports.is_empty());
            x
        }
        1 => {
            // A known item, in its place (a late or unadmitted one, perhaps).
            let known: Vec<(LabIndex, Place, Digest)> = adv
                .bodies
                .iter()
                .filter(|(_, e)| e.period() == o.period)
                .filter_map(|(d, e)| Some((adv.net.lab_by_id(e.lab())?, e.place(), *d)))
                .collect();
            match pick(rng, &known) {
                Some(k) => with_items(o, &[*k]),
                None => o.clone(),
            }
        }
        2 => {
            // An item nobody has, or a known one in the wrong place.
            let place = if roll(rng, 50) {
                Place::Attestation
            } else {
                Place::Report(inspector)
            };
            with_items(o, &[(lab, place, random_digest(rng))])
        }
        3 => {
            // Past the per-slot bounds (the syntax check must refuse it).
            let mut x = o.clone();
            let over = accord_protocol::limits::MAX_ATTESTATIONS_PER_SLOT
                + 1
                + (rng.next_u32() % 64) as usize;
            let mut attestations: Vec<Digest> = (0..over).map(|_| random_digest(rng)).collect();
            attestations.sort();
            x.slots.retain(|s| s.lab != lab);
            let at = x.slots.partition_point(|s| s.lab < lab);
            x.slots.insert(
                at,
                SlotItems {
                    lab,
                    attestations,
                    reports: vec![],
                },
            );
            x
        }
        4 => Observation {
            period: Period(o.period.0.saturating_add(1)),
            ..o.clone()
        },
        _ => {
            // More reports by one inspector than the roster allows.
            let mut x = o.clone();
            for l in 0..adv.net.roster().labs.len() {
                x = with_items(
                    &x,
                    &[(
                        LabIndex(l as u16),
                        Place::Report(inspector),
                        random_digest(rng),
                    )],
                );
            }
            x
        }
    }
}

fn mutate_proposal(
    p: &Proposal,
    adv: &Adversary<'_>,
    m: MemberIndex,
    rng: &mut impl RngCore,
) -> Proposal {
    let mut q = p.clone();
    let net = adv.net;
    let verdict = |items: &[Digest]| {
        let known: Vec<(Digest, &Evidence)> = items
            .iter()
            .filter_map(|d| adv.bodies.get(d).map(|e| (*d, &**e)))
            .collect();
        policy::evaluate(&net.roster().policy, &known)
    };
    match rng.next_u32() % 9 {
        0 => {
            if let Some(s) = q.statements.iter_mut().find(|s| !s.evidence.is_empty()) {
                s.evidence.remove(0);
                s.verdict = verdict(&s.evidence);
            }
        }
        1 => {
            // A known item of the slot, vouched or not.
            let period = q.id.unit.period();
            let items: Vec<(String, Digest)> = adv
                .bodies
                .iter()
                .filter(|(_, e)| e.period() == period)
                .map(|(d, e)| (e.lab().to_string(), *d))
                .collect();
            if let Some((lab, d)) = pick(rng, &items).cloned()
                && let Some(s) = q.statements.iter_mut().find(|s| s.slot.lab == lab)
                && !s.evidence.contains(&d)
            {
                s.evidence.push(d);
                s.evidence.sort();
                s.verdict = verdict(&s.evidence);
            }
        }
        2 => {
            if let Some(s) = q.statements.first_mut() {
                s.verdict = match s.verdict {
                    policy::Verdict::Compliant => policy::Verdict::NoAttestation,
                    _ => policy::Verdict::Compliant,
                };
            }
        }
        3 => {
            if let Some(i) = (!q.observations.is_empty())
                .then(|| (rng.next_u64() % q.observations.len() as u64) as usize)
            {
                let mut f = (*q.observations[i]).clone();
                f.signature.0[(rng.next_u32() % 64) as usize] ^= 1;
                q.observations[i] = Arc::new(f);
            }
        }
        4 => {
            if let Some(o) = q.observations.first().cloned() {
                q.observations.push(o);
            }
        }
        5 => q.id.revision = (rng.next_u32() % 65_536) as u16,
        6 => q.id.attempt = q.id.attempt.wrapping_add(1),
        7 => {
            // Past every bound: as many invented items as one statement can name, plus one.
            let bound = net.limits().items_per_unit(1) + 1;
            if let Some(s) = q.statements.first_mut() {
                for _ in 0..bound {
                    s.evidence.push(random_digest(rng));
                }
                s.evidence.sort();
            }
        }
        _ => {
            // Observations this member signs afresh, listing what the statements name.
            let period = q.id.unit.period();
            let mut items = Vec::new();
            for s in &q.statements {
                for d in &s.evidence {
                    if let Some(e) = adv.bodies.get(d)
                        && let Some(lab) = net.lab_by_id(e.lab())
                    {
                        items.push((lab, e.place(), *d));
                    }
                }
            }
            let observation = with_items(
                &Observation {
                    member: m,
                    period,
                    slots: vec![],
                },
                &items,
            );
            let signature =
                adv.identities[usize::from(m.0)].sign(&observation.signing_bytes(net.id()));
            q.observations.retain(|o| o.observation.member != m);
            q.observations.push(Arc::new(SignedObservation {
                observation,
                signature,
            }));
        }
    }
    q
}
