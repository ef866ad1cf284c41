//! A run is a function of its seed: the same seed gives the same trace hash (also with profiling
//! on, which reads the wall clock), and different seeds give different runs.

mod common;

use accord_sim::runner::run_row_seed;
use accord_sim::world::Options;

#[test]
fn same_seed_same_trace_hash() {
    let file = common::scenario("quick");
    let row = &file.rows[0];
    for seed in [1, 2, 77] {
        let a = common::run(row, seed);
        let b = common::run(row, seed);
        assert_eq!(a.result.trace_hash, b.result.trace_hash, "seed {seed}");
        assert_eq!(
            serde_json::to_string(&a.result.metrics).expect("json"),
            serde_json::to_string(&b.result.metrics).expect("json"),
            "seed {seed}: metrics differ"
        );
    }
}

#[test]
fn profiling_does_not_change_the_run() {
    let file = common::scenario("quick");
    let row = &file.rows[0];
    let plain = common::run(row, 5);
    let profiled = run_row_seed(
        row,
        Options {
            profile: true,
            ..Options::new(5)
        },
        false,
        &mut |_| {},
    )
    .expect("sets up");
    assert_eq!(plain.result.trace_hash, profiled.result.trace_hash);
    assert!(profiled.result.profile.is_some());
}

#[test]
fn different_seeds_differ() {
    let file = common::scenario("quick");
    let row = &file.rows[0];
    let a = common::run(row, 1);
    let b = common::run(row, 2);
    assert_ne!(a.result.trace_hash, b.result.trace_hash);
}

#[test]
fn check_determinism_flag_compares_two_runs() {
    let file = common::scenario("faults-28-loss-jitter");
    let o = run_row_seed(&file.rows[0], Options::new(3), true, &mut |_| {}).expect("sets up");
    assert_eq!(o.replay_hash.as_deref(), Some(o.result.trace_hash.as_str()));
    assert!(o.passed(), "{}", common::explain(&o));
}

#[test]
fn shared_signature_checks_change_nothing_but_the_cpu() {
    // The members of a run share a memo of signatures found valid (Options::shared_checks);
    // without it every member checks every signature itself. Same trace, same metrics.
    for name in ["quick", "byzantine-generative"] {
        let file = common::scenario(name);
        let row = &file.rows[0];
        let shared = common::run(row, 3);
        let alone = run_row_seed(
            row,
            Options {
                shared_checks: false,
                ..Options::new(3)
            },
            false,
            &mut |_| {},
        )
        .expect("sets up");
        assert_eq!(shared.result.trace_hash, alone.result.trace_hash, "{name}");
        assert_eq!(
            serde_json::to_string(&shared.result.metrics).expect("json"),
            serde_json::to_string(&alone.result.metrics).expect("json"),
            "{name}: metrics differ"
        );
    }
}
