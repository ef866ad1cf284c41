//! Helpers shared by the protocol's integration tests: engines driven by hand, and a message
//! pump between them.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::dkg::deal;
use accord_protocol::engine::{Engine, EngineConfig, Output};
use accord_protocol::evidence::Evidence;
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, inspection, lab_submissions};
use accord_protocol::message::{Message, Observation, SignedObservation};
use accord_protocol::roster::{LabIndex, MemberIndex, Network, Period};
use accord_protocol::time::Instant;
use accord_testkit::adversary::with_items;
use accord_testkit::child_rng;
use rand_chacha::ChaCha20Rng;

pub fn secs(s: u64) -> core::time::Duration {
    core::time::Duration::from_secs(s)
}

/// n engines holding dealt keys over a fresh testnet, driven by hand.
pub struct Members {
    pub tn: Testnet,
    pub net: Arc<Network>,
    pub engines: Vec<Engine>,
    /// One per member.
    pub rngs: Vec<ChaCha20Rng>,
    /// The test's own randomness, after the testnet and the keys were drawn from it.
    pub rng: ChaCha20Rng,
}

pub fn members(n: usize, labs: usize, seed: u64, label: &str, member_label: &str) -> Members {
    let mut rng = child_rng(seed, label, 0, 0);
    let tn = Testnet::generate(&TestnetSpec::new(n, labs, 1_000_000), &mut rng, |k| {
        k.to_hex()
    });
    let net = Network::new(tn.roster.clone()).unwrap();
    let keys = deal(&net, &mut rng).unwrap();
    let engines = (0..n)
        .map(|i| {
            Engine::new(
                net.clone(),
                MemberIndex(i as u16),
                SecretKey::from_seed(&tn.members[i].seed()),
                Some(keys[i].clone()),
                EngineConfig::default(),
            )
        })
        .collect();
    let rngs = (0..n as u64)
        .map(|i| child_rng(seed, member_label, i, 0))
        .collect();
    Members {
        tn,
        net,
        engines,
        rngs,
        rng,
    }
}

/// Lab 0's compliant attestation x, and member 2's inspection report d on it.
pub fn attestation_and_report(m: &mut Members, now: Instant) -> (Evidence, Evidence) {
    let lab = m.net.lab_id(LabIndex(0)).to_string();
    let x = lab_submissions(
        m.net.id(),
        &lab,
        &m.tn.labs[0],
        Period(0),
        &m.net.roster().policy,
        LabConduct::Compliant,
        now,
        &mut m.rng,
    )
    .remove(0);
    let Evidence::Attestation { attestation, .. } = &x else {
        unreachable!()
    };
    let d = inspection(
        m.net.id(),
        MemberIndex(2),
        &m.tn.members[2],
        attestation,
        100,
        now,
    );
    (x, d)
}

/// Member `member`'s observation of period 0 listing `items` (lab 0), signed with its key.
pub fn observation_of(
    tn: &Testnet,
    net: &Network,
    member: u16,
    items: &[&Evidence],
) -> Arc<SignedObservation> {
    let places: Vec<(LabIndex, accord_protocol::evidence::Place, Digest)> = items
        .iter()
        .map(|e| (LabIndex(0), e.place(), e.digest()))
        .collect();
    let o = with_items(
        &Observation {
            member: MemberIndex(member),
            period: Period(0),
            slots: vec![],
        },
        &places,
    );
    let signature = tn.members[usize::from(member)].sign(&o.signing_bytes(net.id()));
    Arc::new(SignedObservation {
        observation: o,
        signature,
    })
}

/// Takes every output `engines[i]` has queued.
pub fn outputs(engine: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| engine.poll_output()).collect()
}

/// The messages in `out` as (from, to, message), broadcasts addressed to every other member.
pub fn messages(from: usize, n: usize, out: Vec<Output>) -> Vec<(usize, usize, Message)> {
    let mut v = Vec::new();
    for o in out {
        match o {
            Output::Send { to, message } => v.push((from, usize::from(to.0), message)),
            Output::Broadcast(m) => {
                v.extend((0..n).filter(|j| *j != from).map(|j| (from, j, m.clone())))
            }
            _ => {}
        }
    }
    v
}

/// Delivers `queue`, and everything it causes, in order among `engines` at `now` (instant,
/// lossless links), except what `drop` filters out; returns every output with its member.
pub fn pump(
    engines: &mut [Engine],
    rngs: &mut [ChaCha20Rng],
    now: Instant,
    queue: Vec<(usize, usize, Message)>,
    drop: &dyn Fn(usize, usize, &Message) -> bool,
) -> Vec<(usize, Output)> {
    let n = engines.len();
    let mut queue: std::collections::VecDeque<_> = queue.into();
    let mut seen = Vec::new();
    let mut steps = 0;
    while let Some((from, to, m)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 100_000, "the pump does not settle");
        if drop(from, to, &m) {
            continue;
        }
        engines[to].handle_message(now, MemberIndex(from as u16), m, &mut rngs[to]);
        let out = outputs(&mut engines[to]);
        let mut kept = Vec::new();
        for o in out {
            match &o {
                Output::Send { .. } | Output::Broadcast(_) => kept.push(o),
                _ => seen.push((to, o)),
            }
        }
        for (f, t, m) in messages(to, n, kept) {
            seen.push((
                f,
                Output::Send {
                    to: MemberIndex(t as u16),
                    message: m.clone(),
                },
            ));
            queue.push_back((f, t, m));
        }
    }
    seen
}
