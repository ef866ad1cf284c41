//! The engine's behaviour, pinned: every shipped small scenario (each row, four seeds; the
//! generative adversary's rows, 24) must replay to the trace hash recorded in
//! `tests/golden-traces.txt`. The trace hash covers every message sent and delivered, every
//! output and its order, so a refactoring that is meant to change nothing (issue 10) is checked
//! to the byte. A change that is meant to alter behaviour regenerates the file, and says why in
//! its commit:
//!
//! ```text
//! ACCORD_BLESS_TRACES=1 cargo test -p accord-sim --test golden_traces
//! ```

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Seeds per row; the generative adversary, whose runs differ most, gets more.
fn seeds(name: &str) -> std::ops::RangeInclusive<u64> {
    if name == "byzantine-generative" {
        1..=24
    } else {
        1..=4
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden-traces.txt")
}

fn current() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in common::SMALL.iter().chain(common::ELSEWHERE) {
        let file = common::scenario(name);
        for (r, row) in file.rows.iter().enumerate() {
            for seed in seeds(name) {
                let o = common::run(row, seed);
                out.insert(format!("{name} row {r} seed {seed}"), o.result.trace_hash);
            }
        }
    }
    out
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_scenario_replays_to_its_recorded_trace() {
    let now = current();
    if std::env::var_os("ACCORD_BLESS_TRACES").is_some() {
        let mut text = String::from(
            "# Trace hashes of the shipped scenarios (tests/golden_traces.rs).\n\
             # Regenerate only for a change meant to alter behaviour:\n\
             # ACCORD_BLESS_TRACES=1 cargo test -p accord-sim --test golden_traces\n",
        );
        for (k, v) in &now {
            text.push_str(&format!("{k} {v}\n"));
        }
        std::fs::write(golden_path(), text).expect("write golden traces");
        return;
    }
    let text = std::fs::read_to_string(golden_path())
        .expect("tests/golden-traces.txt is missing (ACCORD_BLESS_TRACES=1 regenerates it)");
    let golden = parse(&text);
    let mut diff = Vec::new();
    for (k, v) in &now {
        match golden.get(k) {
            Some(g) if g == v => {}
            Some(g) => diff.push(format!("{k}: recorded {g}, now {v}")),
            None => diff.push(format!("{k}: not recorded (now {v})")),
        }
    }
    for k in golden.keys().filter(|k| !now.contains_key(*k)) {
        diff.push(format!("{k}: recorded but no longer run"));
    }
    assert!(
        diff.is_empty(),
        "{} runs changed behaviour:\n{}",
        diff.len(),
        diff.join("\n")
    );
}
