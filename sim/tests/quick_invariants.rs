//! The invariants hold over a few hundred seeds of the quick scenario (loss, duplicates,
//! reordering, jitter, skew, a crash and restart, every lab conduct, late submissions,
//! inspections): every seed must meet every expectation, and every slot must be decided.

mod common;

fn sweep(seeds: std::ops::Range<u64>) {
    let file = common::scenario("quick");
    let row = &file.rows[0];
    let mut failed = Vec::new();
    for seed in seeds {
        let o = common::run(row, seed);
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
}

#[test]
fn seeds_1_to_150() {
    sweep(1..151);
}

#[test]
fn seeds_151_to_300() {
    sweep(151..301);
}
