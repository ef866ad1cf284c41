//! Signing-session cost through the engines against the same raw frost-ed25519 calls, measured
//! in the same run (7-of-10 and 67-of-100).
//!
//! `cargo bench -p accord-protocol --bench protocol`
//!
//! - `raw-frost`: what any FROST deployment must compute for one signature: t round-1 commits, a
//!   signing package, t round-2 shares and the aggregation (which verifies the signature).
//! - `engine`: one whole session through n engines, from the last observation reaching the
//!   first coordinator (which then proposes at once) to the coordinator's co-signed unit: the proposal, every member's validation and acceptance (with
//!   its commitment: n commits, not t), the signing requests, the shares and the aggregation.
//!   Messages are passed in memory; CPU of every member is summed, like the raw baseline's.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use accord_protocol::crypto::SecretKey;
use accord_protocol::dkg::{KeyMaterial, deal};
use accord_protocol::engine::{Engine, EngineConfig, Output};
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
use accord_protocol::message::Message;
use accord_protocol::roster::{LabIndex, MemberIndex, Network, Period};
use accord_testkit::child_rng;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use frost_ed25519 as frost;
use rand_chacha::ChaCha20Rng;

struct Setup {
    net: Arc<Network>,
    identities: Vec<[u8; 32]>,
    keys: Vec<KeyMaterial>,
    evidence: Vec<accord_protocol::evidence::Evidence>,
}

fn setup(n: usize, t: u16, labs: usize) -> Setup {
    let mut rng = child_rng(1, "bench", n as u64, 0);
    let mut spec = TestnetSpec::new(n, labs, 1_000_000);
    spec.threshold = Some(t);
    let testnet = Testnet::generate(&spec, &mut rng, |k| k.to_hex());
    let net = Network::new(testnet.roster).unwrap();
    let keys = deal(&net, &mut rng).unwrap();
    let now = net.schedule().start(Period(0));
    let evidence = (0..labs)
        .flat_map(|i| {
            let lab = net.lab_id(LabIndex(i as u16)).to_string();
            lab_submissions(
                net.id(),
                &lab,
                &testnet.labs[i],
                Period(0),
                &net.roster().policy,
                LabConduct::Compliant,
                now,
                &mut rng,
            )
        })
        .collect();
    Setup {
        identities: testnet.members.iter().map(|k| *k.seed()).collect(),
        net,
        keys,
        evidence,
    }
}

/// The last observation the coordinator (member 0) waits for.
type Last = (MemberIndex, Message);

/// n engines that admitted the period's evidence, closed it and exchanged observations, except
/// the last one the coordinator is waiting for: the session starts with it.
fn ready_engines(s: &Setup) -> (Vec<Engine>, Vec<ChaCha20Rng>, Last) {
    let n = s.net.n();
    let mut engines: Vec<Engine> = (0..n)
        .map(|i| {
            Engine::new(
                s.net.clone(),
                MemberIndex(i as u16),
                SecretKey::from_seed(&s.identities[i]),
                Some(s.keys[i].clone()),
                EngineConfig::default(),
            )
        })
        .collect();
    let mut rngs: Vec<ChaCha20Rng> = (0..n)
        .map(|i| child_rng(2, "member", i as u64, 0))
        .collect();
    let now = s.net.schedule().start(Period(0));
    for e in engines.iter_mut() {
        for ev in &s.evidence {
            e.submit(now, ev.clone()).unwrap();
        }
        while e.poll_output().is_some() {}
    }
    let close = s.net.schedule().close(Period(0));
    let mut observations = Vec::new();
    for (i, e) in engines.iter_mut().enumerate() {
        e.handle_timeout(close, &mut rngs[i]);
        while let Some(o) = e.poll_output() {
            if let Output::Broadcast(m @ Message::Observation(_)) = o {
                observations.push((MemberIndex(i as u16), m));
            }
        }
    }
    let last = observations.pop().expect("every member observed");
    for (j, e) in engines.iter_mut().enumerate() {
        for (from, m) in observations.iter().chain((j != 0).then_some(&last)) {
            if from.0 as usize != j {
                e.handle_message(close, *from, m.clone(), &mut rngs[j]);
            }
        }
        while e.poll_output().is_some() {}
    }
    (engines, rngs, last)
}

/// Runs the session: the coordinator receives the last observation and proposes at once; the
/// members accept and sign. Returns when the coordinator has co-signed.
fn session(net: &Network, engines: &mut [Engine], rngs: &mut [ChaCha20Rng], last: Last) {
    let at = net.schedule().close(Period(0));
    let n = engines.len();
    let mut queue: std::collections::VecDeque<(MemberIndex, MemberIndex, Message)> =
        Default::default();
    engines[0].handle_message(at, last.0, last.1, &mut rngs[0]);
    loop {
        for (i, engine) in engines.iter_mut().enumerate() {
            while let Some(o) = engine.poll_output() {
                match o {
                    Output::Send { to, message } => {
                        queue.push_back((MemberIndex(i as u16), to, message))
                    }
                    Output::Broadcast(Message::CoSigned(c)) => {
                        black_box(c);
                        return;
                    }
                    Output::Broadcast(message) => {
                        for j in (0..n).filter(|j| *j != i) {
                            queue.push_back((
                                MemberIndex(i as u16),
                                MemberIndex(j as u16),
                                message.clone(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some((from, to, m)) = queue.pop_front() else {
            panic!("session stalled")
        };
        let j = usize::from(to.0);
        engines[j].handle_message(at, from, m, &mut rngs[j]);
    }
}

/// The raw FROST calls for one t-of-n signature over `message`.
fn raw_frost(keys: &[KeyMaterial], t: usize, message: &[u8], rng: &mut ChaCha20Rng) {
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in &keys[..t] {
        let (n, c) = frost::round1::commit(k.key_package.signing_share(), rng);
        nonces.insert(*k.key_package.identifier(), n);
        commitments.insert(*k.key_package.identifier(), c);
    }
    let package = frost::SigningPackage::new(commitments, message);
    let shares: BTreeMap<_, _> = keys[..t]
        .iter()
        .map(|k| {
            let id = *k.key_package.identifier();
            (
                id,
                frost::round2::sign(&package, &nonces[&id], &k.key_package).unwrap(),
            )
        })
        .collect();
    black_box(frost::aggregate(&package, &shares, &keys[0].public).unwrap());
}

fn signing_session(c: &mut Criterion) {
    for (n, t) in [(10usize, 7u16), (100, 67)] {
        let s = setup(n, t, 4);
        let mut group = c.benchmark_group(format!("signing-session/{t}-of-{n}"));
        group.sample_size(if n > 50 { 10 } else { 30 });
        // The message a period batch signs is a ~120-byte checkpoint body.
        let message = vec![0x61u8; 120];
        let mut rng = child_rng(3, "raw", 0, 0);
        group.bench_function("raw-frost", |b| {
            b.iter(|| raw_frost(&s.keys, usize::from(t), &message, &mut rng))
        });
        group.bench_function("engine", |b| {
            b.iter_batched(
                || ready_engines(&s),
                |(mut engines, mut rngs, last)| session(&s.net, &mut engines, &mut rngs, last),
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, signing_session);
criterion_main!(benches);
