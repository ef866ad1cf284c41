//! Membership change in the simulator (`docs/protocol.md` §22.7, issue 11): roster epochs that
//! hand over by co-signed successions while verdicts flow, each checked within itself, against
//! the others (no period co-signed by two epochs) and on the chain from the genesis bundle.

mod common;

use accord_sim::scenario::{Row, ScenarioFile};

fn row(text: &str) -> Row {
    ScenarioFile::parse(std::path::Path::new("inline.toml"), text)
        .unwrap_or_else(|e| panic!("{e}"))
        .rows
        .remove(0)
}

#[test]
fn epochs_hand_over_and_every_statement_verifies_on_the_chain() {
    let file = common::scenario("membership-change");
    let r = &file.rows[0];
    for seed in 1..=2 {
        let o = common::run(r, seed);
        assert!(o.passed(), "{}", common::explain(&o));
        let m = &o.result.metrics;
        let shape: Vec<(usize, usize, u64, u64)> = m
            .epochs
            .iter()
            .map(|e| (e.members, e.threshold, e.first_period, e.end_period))
            .collect();
        assert_eq!(
            shape,
            [(7, 5, 0, 3), (8, 6, 3, 5), (7, 5, 5, 7), (8, 6, 7, 9)],
            "7 → 8 → 7 → 8 members, thresholds as configured"
        );
        for e in &m.epochs[1..] {
            let (key, approved, signed, adopted) = (
                e.key_at_ms.unwrap(),
                e.approved_at_ms.unwrap(),
                e.co_signed_at_ms.unwrap(),
                e.adopted_at_ms.unwrap(),
            );
            assert!(
                key <= approved && approved <= signed && signed <= adopted,
                "{e:?}"
            );
        }
        // Every slot of the run is decided, by the epoch that owns its period, and every one of
        // those statements verified on the chain from the genesis bundle.
        let on_chain: usize = m.epochs.iter().map(|e| e.verified_on_chain).sum();
        assert_eq!(m.slots.len(), 9 * 3);
        assert!(m.slots.iter().all(|s| s.verdict.is_some()));
        assert!(on_chain >= m.slots.len(), "{on_chain} statements verified");
        let keys: std::collections::BTreeSet<_> = m.epochs.iter().map(|e| &e.group_key).collect();
        assert_eq!(keys.len(), 4, "each epoch has its own group key");
        // The last epoch's garbage-share signer is named, by its index in that epoch's roster.
        assert!(
            o.result
                .accusations
                .iter()
                .any(|a| a.epoch == 3 && a.culprit == 3),
            "{:?}",
            o.result.accusations
        );
    }
}

#[test]
fn a_run_with_epochs_replays_to_the_same_trace() {
    let file = common::scenario("membership-change");
    let a = common::run(&file.rows[0], 5);
    let b = common::run(&file.rows[0], 5);
    assert_eq!(a.result.trace_hash, b.result.trace_hash);
    let c = common::run(&file.rows[0], 6);
    assert_ne!(a.result.trace_hash, c.result.trace_hash);
}

#[test]
fn a_new_epoch_whose_dkg_cannot_complete_never_takes_over_and_the_run_says_why() {
    // A silent new member: the DKG needs every member of the new roster, so no key, no
    // succession, and the periods from 3 on stay undecided (the old epoch handed nothing over,
    // but its own periods end at 2 in this scenario).
    let r = row(r#"
name = "no-key"
[network]
members = 4
labs = 1
periods = 5
[[succession]]
first_period = 3
join = 1
adversary = [{ members = [4], behaviour = "silent" }]
[liveness]
budget = "30s"
"#);
    let o = common::run(&r, 1);
    assert!(!o.passed());
    let text = o.failures.join("\n");
    assert!(
        text.contains("epoch 1 never took over: its members' DKG did not complete"),
        "{text}"
    );
    let e = &o.result.metrics.epochs[1];
    assert!(e.key_at_ms.is_none() && e.adopted_at_ms.is_none(), "{e:?}");
    // The genesis epoch decided its own periods regardless.
    assert!(
        o.result
            .metrics
            .slots
            .iter()
            .filter(|s| s.period < 3)
            .all(|s| s.verdict.is_some())
    );
}

#[test]
fn successions_that_make_no_sense_are_refused_with_their_field() {
    let base = "name = \"x\"\n[network]\nmembers = 4\nlabs = 1\nperiods = 6\n";
    let cases = [
        (
            "[[succession]]\nfirst_period = 3\n[[succession]]\nfirst_period = 3\n",
            "succession[1].first_period",
        ),
        (
            "[[succession]]\nfirst_period = 6\n",
            "succession[0].first_period",
        ),
        (
            "[[succession]]\nfirst_period = 2\nleave = [4]\n",
            "succession[0].leave",
        ),
        (
            "[[succession]]\nfirst_period = 2\nleave = [0, 1, 2]\n",
            "succession[0]",
        ),
        (
            "[[succession]]\nfirst_period = 2\njoin = 2\nthreshold = 4\n",
            "succession[0].threshold",
        ),
        (
            "[[succession]]\nfirst_period = 2\nadversary = [{ members = [0], behaviour = \"twins\" }]\n",
            "succession[0].adversary[0]",
        ),
        (
            "[[succession]]\nfirst_period = 2\npropose = { period = 2 }\n",
            "succession[0].propose",
        ),
    ];
    for (extra, field) in cases {
        let text = format!("{base}{extra}");
        let e = ScenarioFile::parse(std::path::Path::new("inline.toml"), &text)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"));
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
}
