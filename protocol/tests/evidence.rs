//! Evidence admission (FAULTS 20 and 30): windows, deduplication, batched signature checks of
//! gossiped items, and what labs' misconduct turns into.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use accord_protocol::crypto::SecretKey;
use accord_protocol::dkg::deal;
use accord_protocol::engine::{Delivery, Engine, EngineConfig, Event, Offence, Output};
use accord_protocol::evidence::{Evidence, EvidenceError};
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
use accord_protocol::message::Message;
use accord_protocol::policy::{Reason, Verdict};
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::testkit::{Cluster, ClusterSpec, child_rng};
use accord_protocol::time::Instant;

struct One {
    net: Arc<Network>,
    engine: Engine,
    testnet: Testnet,
    rng: rand_chacha::ChaCha20Rng,
}

fn one() -> One {
    let mut rng = child_rng(8, "evidence", 0, 0);
    let testnet = Testnet::generate(&TestnetSpec::new(4, 2, 1_000_000), &mut rng, |k| k.to_hex());
    let net = Network::new(testnet.roster.clone()).unwrap();
    let keys = deal(&net, &mut rng).unwrap();
    let engine = Engine::new(
        net.clone(),
        MemberIndex(1),
        SecretKey::from_seed(&testnet.members[1].seed()),
        Some(keys[1].clone()),
        EngineConfig::default(),
    );
    One {
        net,
        engine,
        testnet,
        rng,
    }
}

fn attest(o: &mut One, lab: usize, at: Instant) -> Evidence {
    let id = format!("lab-{lab:03}");
    lab_submissions(
        o.net.id(),
        &id,
        &o.testnet.labs[lab],
        Period(0),
        &o.net.roster().policy,
        LabConduct::Compliant,
        at,
        &mut o.rng,
    )
    .remove(0)
}

fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
}

#[test]
fn submissions_outside_the_window_are_refused() {
    let mut o = one();
    let s = o.net.schedule().clone();
    let early = s
        .start(Period(0))
        .saturating_sub(core::time::Duration::from_secs(10));
    let ev = attest(&mut o, 0, early);
    assert!(matches!(
        o.engine.submit(early, ev),
        Err(EvidenceError::Future { .. })
    ));
    // Late: after the close, whatever the lab claims as its signing time (backdated).
    let late = s
        .close(Period(0))
        .saturating_add(core::time::Duration::from_millis(1));
    let backdated = attest(&mut o, 0, s.start(Period(0)));
    assert!(matches!(
        o.engine.submit(late, backdated),
        Err(EvidenceError::Closed { .. })
    ));
    // Signed "in the future" beyond the allowed clock skew.
    let now = s
        .start(Period(0))
        .saturating_add(core::time::Duration::from_secs(1));
    let future = attest(
        &mut o,
        0,
        now.saturating_add(core::time::Duration::from_secs(60)),
    );
    assert!(matches!(
        o.engine.submit(now, future),
        Err(EvidenceError::IssuedInFuture { .. })
    ));
    assert!(
        drain(&mut o.engine)
            .iter()
            .all(|x| !matches!(x, Output::Persist(_))),
        "nothing stored"
    );
}

#[test]
fn republished_evidence_is_deduplicated() {
    // FAULTS 20, by content hash, while its batch is pending and after.
    let mut o = one();
    let now = o
        .net
        .schedule()
        .start(Period(0))
        .saturating_add(core::time::Duration::from_secs(1));
    let ev = Arc::new(attest(&mut o, 0, now));
    let first = o.engine.handle_message(
        now,
        MemberIndex(2),
        Message::Evidence(ev.clone()),
        &mut o.rng,
    );
    assert_eq!(first, Delivery::Accepted);
    assert_eq!(
        o.engine.handle_message(
            now,
            MemberIndex(3),
            Message::Evidence(ev.clone()),
            &mut o.rng
        ),
        Delivery::Duplicate
    );
    let later = now.saturating_add(core::time::Duration::from_secs(1));
    o.engine.handle_timeout(later, &mut o.rng);
    assert!(o.engine.evidence(&ev.digest()).is_some());
    assert_eq!(
        o.engine
            .handle_message(later, MemberIndex(0), Message::Evidence(ev), &mut o.rng),
        Delivery::Duplicate
    );
    let persisted = drain(&mut o.engine)
        .iter()
        .filter(|x| matches!(x, Output::Persist(_)))
        .count();
    assert_eq!(persisted, 1, "stored once");
}

#[test]
fn gossiped_evidence_with_a_bad_signature_names_its_publisher() {
    let mut o = one();
    let now = o
        .net
        .schedule()
        .start(Period(0))
        .saturating_add(core::time::Duration::from_secs(1));
    let mut ev = attest(&mut o, 0, now);
    if let Evidence::Attestation { signature, .. } = &mut ev {
        signature.0[3] ^= 1;
    }
    let good = Arc::new(attest(&mut o, 1, now));
    let bad = Arc::new(ev);
    o.engine.handle_message(
        now,
        MemberIndex(2),
        Message::Evidence(bad.clone()),
        &mut o.rng,
    );
    o.engine.handle_message(
        now,
        MemberIndex(3),
        Message::Evidence(good.clone()),
        &mut o.rng,
    );
    let due = o.engine.poll_timeout().expect("a batch deadline");
    assert!(due <= now.saturating_add(core::time::Duration::from_millis(100)));
    o.engine.handle_timeout(due, &mut o.rng);
    let out = drain(&mut o.engine);
    assert!(out.iter().any(|x| matches!(
        x,
        Output::Event(Event::Culprit {
            member: MemberIndex(2),
            offence: Offence::BadEvidence
        })
    )));
    assert!(o.engine.evidence(&bad.digest()).is_none());
    assert!(o.engine.evidence(&good.digest()).is_some());
}

#[test]
fn an_item_received_just_before_the_close_is_observed() {
    let mut o = one();
    let close = o.net.schedule().close(Period(0));
    let just_before = close.saturating_sub(core::time::Duration::from_millis(5));
    let ev = Arc::new(attest(&mut o, 0, just_before));
    assert_eq!(
        o.engine.handle_message(
            just_before,
            MemberIndex(2),
            Message::Evidence(ev.clone()),
            &mut o.rng
        ),
        Delivery::Accepted
    );
    o.engine.handle_timeout(close, &mut o.rng);
    let observed = drain(&mut o.engine).into_iter().find_map(|x| match x {
        Output::Broadcast(Message::Observation(obs)) => Some(obs),
        _ => None,
    });
    assert!(
        observed
            .expect("an observation at the close")
            .observation
            .items
            .contains(&ev.digest())
    );
}

#[test]
fn double_signing_is_a_violation_and_silence_is_not_compliance() {
    // FAULTS 30, end to end in a network.
    let mut c = Cluster::new(ClusterSpec::new(4, 3));
    c.run_until(
        c.net
            .schedule()
            .start(Period(0))
            .saturating_add(core::time::Duration::from_secs(1)),
    );
    c.submit_period(Period(0), |i| {
        [
            LabConduct::DoubleSigns,
            LabConduct::Silent,
            LabConduct::Compliant,
        ][i]
    });
    c.assert_live(0..1, 60_000);
    let decided = c
        .engine(MemberIndex(0))
        .decided()
        .next()
        .expect("decided")
        .clone();
    let Verdict::Violation { reasons } = &decided.statements[0].verdict else {
        panic!("{:?}", decided.statements[0].verdict)
    };
    assert!(
        reasons
            .iter()
            .any(|r| matches!(r, Reason::ConflictingAttestations { .. }))
    );
    assert_eq!(decided.statements[0].evidence.len(), 2);
    assert_eq!(decided.statements[1].verdict, Verdict::NoAttestation);
    assert_eq!(decided.statements[2].verdict, Verdict::Compliant);
}
