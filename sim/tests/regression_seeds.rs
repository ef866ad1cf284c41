//! Replays the seeds listed in `regression-seeds.toml`.

mod common;

#[derive(serde::Deserialize)]
struct List {
    seed: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    scenario: String,
    seed: u64,
    #[serde(default)]
    row: usize,
    why: String,
}

#[test]
fn regression_seeds_pass() {
    let text = include_str!("regression-seeds.toml");
    let list: List = toml::from_str(text).expect("regression-seeds.toml parses");
    assert!(!list.seed.is_empty());
    let mut failed = Vec::new();
    for e in &list.seed {
        let file = common::scenario(&e.scenario);
        let row = file
            .rows
            .get(e.row)
            .unwrap_or_else(|| panic!("{} has no row {}", e.scenario, e.row));
        let o = common::run(row, e.seed);
        if !o.passed() {
            failed.push(format!(
                "{} ({}): {}",
                e.scenario,
                e.why,
                common::explain(&o)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
