//! Every shipped scenario parses, and the small ones (the FAULTS cases the simulator covers)
//! pass on one seed per row. The UN-scale runs are only parsed here (see docs/performance.md).

mod common;

#[test]
fn every_shipped_scenario_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("scenarios dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    for n in &names {
        let f = common::scenario(n);
        assert!(!f.rows.is_empty(), "{n}");
        let big = ["un-scale", "dkg-un-scale", "un-scale-membership"].contains(&n.as_str());
        assert!(
            big || common::SMALL.contains(&n.as_str()) || common::ELSEWHERE.contains(&n.as_str()),
            "{n}.toml is neither run by this test, nor by another, nor listed as a large scenario"
        );
    }
    let un = common::scenario("un-scale").rows.remove(0).scenario;
    assert_eq!(
        (
            un.network.members,
            un.network.threshold,
            un.network.labs,
            un.network.periods
        ),
        (193, Some(129), 100, 52)
    );
}

#[test]
fn small_scenarios_pass_one_seed_per_row() {
    let mut failed = Vec::new();
    for name in common::SMALL {
        let file = common::scenario(name);
        for row in &file.rows {
            let o = common::run(row, row.scenario.seed);
            if !o.passed() {
                failed.push(format!("{name}: {}", common::explain(&o)));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn fault_scenarios_show_what_they_claim() {
    // FAULTS 6: both cheaters named; FAULTS 12: the equivocator named by the aborted ceremony;
    // FAULTS 30: late submissions refused and the double-signer's slot is a violation.
    let f6 = common::scenario("faults-06-garbage-shares");
    let o = common::run(&f6.rows[1], 1);
    let named: std::collections::BTreeSet<u16> =
        o.result.accusations.iter().map(|a| a.culprit).collect();
    assert!(named.contains(&1) && named.contains(&3), "{named:?}");

    let f12 = common::scenario("faults-12-dkg-equivocation");
    let o = common::run(&f12.rows[0], 1);
    let dkg = o.result.metrics.dkg.clone().expect("a ceremony ran");
    assert_eq!(dkg.completed, 0);
    assert!(dkg.culprits.contains(&3), "{dkg:?}");
    assert!(
        o.result
            .accusations
            .iter()
            .any(|a| a.culprit == 3 && a.offence.contains("round-1")),
        "{:?}",
        o.result.accusations
    );

    let f30 = common::scenario("faults-30-labs");
    let o = common::run(&f30.rows[0], 1);
    let m = &o.result.metrics;
    assert!(m.late_attempts > 0 && m.late_accepted == 0 && m.late_refused == m.late_attempts);
    assert!(
        m.slots
            .iter()
            .filter(|s| s.lab == 1)
            .all(|s| s.verdict.as_deref() == Some("violation"))
    );
}
