//! When the adversary exceeds what the protocol tolerates, the simulator reports the expected
//! failure instead of hiding it; and an expected failure that does not happen fails the run.

mod common;

use accord_sim::scenario::ViolationKind;

#[test]
fn f_plus_one_late_injectors_are_caught_injecting() {
    let file = common::scenario("beyond-f-late-injection");
    for seed in 1..=3 {
        let o = common::run(&file.rows[0], seed);
        assert!(
            o.result
                .violations
                .iter()
                .any(|v| v.kind == ViolationKind::LateInjection),
            "seed {seed}: no late-injection violation detected: {:?}",
            o.result.violations
        );
        assert!(o.passed(), "{}", common::explain(&o));
    }
}

#[test]
fn f_plus_one_silent_members_suppress_and_are_reported() {
    let file = common::scenario("beyond-f-silent");
    let o = common::run(&file.rows[0], 1);
    assert!(!o.result.live);
    assert!(
        o.result
            .violations
            .iter()
            .any(|v| v.kind == ViolationKind::Suppression)
    );
    assert_eq!(o.result.metrics.share_decided, 0.0);
    assert!(o.passed(), "{}", common::explain(&o));
}

#[test]
fn within_f_the_same_attacks_fail() {
    // f late injectors: the item lacks f + 1 vouchers, nothing is detected (nothing happened),
    // so a scenario that *expects* the violation must fail.
    let mut file = common::scenario("beyond-f-late-injection");
    let row = &mut file.rows[0];
    row.scenario.adversary[0].members = vec![0, 1];
    let o = common::run(row, 1);
    assert!(o.result.violations.is_empty(), "{:?}", o.result.violations);
    assert!(
        !o.passed(),
        "an expected violation that did not happen must fail the run"
    );
    assert!(o.failures.iter().any(|f| f.contains("did not detect")));
}

#[test]
fn unexpected_suppression_fails_the_run() {
    let mut file = common::scenario("beyond-f-silent");
    let row = &mut file.rows[0];
    row.scenario.expect.live = true;
    row.scenario.expect.violation = None;
    let o = common::run(row, 1);
    assert!(!o.passed());
    assert!(
        o.failures.iter().any(|f| f.contains("invariant 2")),
        "{:?}",
        o.failures
    );
}
