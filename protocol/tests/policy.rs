//! Property tests of the treaty policy: deterministic, order-independent, and each rule fires
//! exactly when its condition holds.

#![allow(clippy::unwrap_used)]

use accord_protocol::crypto::{Digest, Signature};
use accord_protocol::evidence::{Attestation, Evidence, InspectionReport};
use accord_protocol::policy::{Measure, PolicyParams, Reason, Verdict, evaluate};
use accord_protocol::roster::{MemberIndex, Period};
use accord_protocol::time::Instant;
use proptest::prelude::*;

fn attestation(accelerators: u64, hours: u64, flop: u128, tag: u8) -> Evidence {
    Evidence::Attestation {
        attestation: Attestation {
            lab: "lab-000".into(),
            period: Period(3),
            site_id: "site".into(),
            run_ids: vec![format!("run-{tag}")],
            accelerator_count: accelerators,
            chip_hours: hours,
            training_flop: flop,
            declared_purpose: "evals".into(),
            weights_commitment: Digest([tag; 32]),
            data_commitment: Digest([1; 32]),
            transcript_commitment: Digest([2; 32]),
            issued_at: Instant::from_millis(5),
        },
        signature: Signature([0; 64]),
    }
}

fn report(inspector: u16, accelerators: u64, hours: u64) -> Evidence {
    Evidence::Report {
        report: InspectionReport {
            inspector: MemberIndex(inspector),
            lab: "lab-000".into(),
            period: Period(3),
            site_id: "site".into(),
            observed_accelerators: accelerators,
            observed_chip_hours: hours,
            findings: "metered".into(),
            issued_at: Instant::from_millis(6),
        },
        signature: Signature([0; 64]),
    }
}

fn params() -> PolicyParams {
    PolicyParams {
        max_training_flop: 1_000_000,
        max_accelerators: 1000,
        inspection_tolerance_bp: 500,
        ..PolicyParams::treaty_default()
    }
}

fn with_digests(items: &[Evidence]) -> Vec<(Digest, &Evidence)> {
    items.iter().map(|e| (e.digest(), e)).collect()
}

fn arb_attestation() -> impl Strategy<Value = Evidence> {
    (0u64..2000, 0u64..100_000, 0u128..2_000_000, any::<u8>())
        .prop_map(|(a, h, f, t)| attestation(a, h, f, t))
}

fn arb_report() -> impl Strategy<Value = Evidence> {
    (0u16..8, 0u64..2000, 0u64..100_000).prop_map(|(i, a, h)| report(i, a, h))
}

proptest! {
    #[test]
    fn order_does_not_matter(
        atts in proptest::collection::vec(arb_attestation(), 0..3),
        reps in proptest::collection::vec(arb_report(), 0..4),
        seed in any::<u64>(),
    ) {
        let mut items: Vec<Evidence> = atts.into_iter().chain(reps).collect();
        let a = evaluate(&params(), &with_digests(&items));
        // A deterministic shuffle.
        let n = items.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
        prop_assert_eq!(a, evaluate(&params(), &with_digests(&items)));
    }

    #[test]
    fn silence_is_never_compliance(reps in proptest::collection::vec(arb_report(), 0..4)) {
        prop_assert_eq!(evaluate(&params(), &with_digests(&reps)), Verdict::NoAttestation);
    }

    #[test]
    fn two_different_attestations_are_a_violation(a in arb_attestation(), b in arb_attestation()) {
        prop_assume!(a.digest() != b.digest());
        let items = [a, b];
        let Verdict::Violation { reasons } = evaluate(&params(), &with_digests(&items)) else {
            return Err(TestCaseError::fail("expected a violation"));
        };
        let conflict = reasons.iter().any(|r| matches!(r, Reason::ConflictingAttestations { .. }));
        prop_assert!(conflict, "no conflict reason");
    }

    #[test]
    fn each_limit_fires_exactly_when_exceeded(a in 0u64..2000, h in 0u64..100_000, f in 0u128..2_000_000) {
        let items = [attestation(a, h, f, 1)];
        let verdict = evaluate(&params(), &with_digests(&items));
        let over_flop = f > params().max_training_flop;
        let over_cluster = a > params().max_accelerators;
        match verdict {
            Verdict::Compliant => prop_assert!(!over_flop && !over_cluster),
            Verdict::Violation { reasons } => {
                let flop = reasons.iter().any(|r| matches!(r, Reason::TrainingFlopOverLimit { .. }));
                let cluster = reasons.iter().any(|r| matches!(r, Reason::ClusterOverLimit { .. }));
                prop_assert_eq!(flop, over_flop);
                prop_assert_eq!(cluster, over_cluster);
                prop_assert!(reasons.windows(2).all(|w| w[0] < w[1]), "reasons sorted and distinct");
            }
            Verdict::NoAttestation => prop_assert!(false),
        }
    }

    #[test]
    fn inspections_only_add_reasons(a in arb_attestation(), reps in proptest::collection::vec(arb_report(), 1..4)) {
        let base = [a.clone()];
        let reasons = |v: Verdict| match v { Verdict::Violation { reasons } => reasons, _ => vec![] };
        let without = reasons(evaluate(&params(), &with_digests(&base)));
        let all: Vec<Evidence> = std::iter::once(a).chain(reps).collect();
        let with = reasons(evaluate(&params(), &with_digests(&all)));
        prop_assert!(without.iter().all(|r| with.contains(r)));
    }
}

#[test]
fn inspection_within_tolerance_is_compliant_and_beyond_is_a_discrepancy() {
    let a = attestation(800, 10_000, 1000, 1);
    let ok = report(2, 840, 10_499);
    assert_eq!(
        evaluate(&params(), &with_digests(&[a.clone(), ok])),
        Verdict::Compliant
    );
    let bad = report(2, 841, 10_000);
    let Verdict::Violation { reasons } =
        evaluate(&params(), &with_digests(&[a.clone(), bad.clone()]))
    else {
        panic!()
    };
    assert_eq!(
        reasons,
        vec![Reason::InspectionDiscrepancy {
            report: bad.digest(),
            attestation: a.digest(),
            measure: Measure::Accelerators,
            declared: 800,
            observed: 841
        }]
    );
}

#[test]
fn policy_hash_changes_with_every_parameter() {
    let base = params().hash();
    let mut p = params();
    p.inspection_tolerance_bp += 1;
    assert_ne!(p.hash(), base);
    let mut p = params();
    p.max_training_flop += 1;
    assert_ne!(p.hash(), base);
}
