//! The generative adversary (issue 9): f members rewrite what their engines send at random and
//! one is a Twins pair. A few hundred seeds run here on every change; the documented run is
//! 10 000 seeds per row (`accord-sim sweep sim/scenarios/byzantine-generative.toml --seeds
//! 10000`, docs/simulator.md). Every seed must meet every expectation: invariants 1 to 7, no
//! honest member blamed, every slot decided after the heal.

mod common;

fn sweep(row: usize, seeds: std::ops::Range<u64>) {
    let file = common::scenario("byzantine-generative");
    let mut failed = Vec::new();
    let mut mutations = 0;
    for seed in seeds {
        let o = common::run(&file.rows[row], seed);
        mutations += o
            .result
            .metrics
            .adversary_actions
            .get("mutate")
            .copied()
            .unwrap_or(0);
        if !o.passed() || o.result.metrics.share_decided < 1.0 {
            failed.push(common::explain(&o));
        }
    }
    assert!(
        failed.is_empty(),
        "{} seeds failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
    assert!(mutations > 0, "the adversary mutated nothing");
}

#[test]
fn seven_members_two_byzantine_150_seeds() {
    sweep(0, 1..151);
}

#[test]
fn thirteen_members_four_byzantine_100_seeds() {
    sweep(1, 1..101);
}
