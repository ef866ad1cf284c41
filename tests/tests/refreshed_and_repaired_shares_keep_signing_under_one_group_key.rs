//! Issue 11 (operators): on a 4-member network (t = 3) whose key came from a DKG over the
//! network, the operator refreshes every share with `accord refresh start`; verdicts after the
//! refresh verify with `accord verify` under the trust bundle taken before it (the same group
//! key). Then a member is SIGKILLed and its key share file deleted: it restarts without a share,
//! says so, and knows the group key from its records; `accord repair` gets the share back from
//! the three others. With another member killed, only three members remain, so every verdict
//! of the next period needs the repaired member's signature share, and it still verifies under
//! the same trust bundle.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::Period;
use common::*;

/// Member `i`'s statements of `period` verified offline with `accord verify` against
/// `bundle_json` (the trust bundle taken before any refresh or repair).
fn verify_offline(c: &Cluster, i: usize, period: Period, bundle_json: &str, dir: &Path) {
    let statements = c.wait_statements(i, period, Duration::from_secs(25));
    let files = write_statements(dir, bundle_json, &statements);
    let trust = dir.join("trust-bundle.json").display().to_string();
    let mut args = vec!["verify", "--trust", &trust];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = accord_ok(&args);
    assert_eq!(out.matches("OK ").count(), c.layout.labs.len(), "{out}");
}

#[test]
fn a_refresh_and_a_repair_keep_the_group_key_and_the_repaired_member_signs_again() {
    let mut c = Cluster::new(4, 2, 5, false);
    assert_eq!(c.net.t(), 3);
    c.start_all();
    c.wait_connected();
    let group_key = c.run_dkg();
    let bundle = c.trust_bundle_json(0);
    let conduct = [LabConduct::Compliant, LabConduct::OverCompute];

    // Verdicts before the refresh.
    let p1 = c.open_period(2_500);
    c.submit_period(p1, &conduct);
    verify_offline(&c, 0, p1, &bundle, &c.dir.path().join("p1"));

    // The operator of member 1 refreshes every share; the CLI waits until it completed there.
    let api1 = c.nodes[1].api.clone();
    let token1 = c.layout.members[1].token.display().to_string();
    let out = accord_ok(&["refresh", "start", "--api", &api1, "--token-file", &token1]);
    assert_eq!(out.trim(), group_key.to_string(), "the same group key");
    wait_for(
        Duration::from_secs(20),
        "every member completed refresh 1",
        || {
            c.nodes
                .iter()
                .all(|n| {
                    block_on(n.client.ceremony()).is_ok_and(|s| s.completed_refresh == Some(1))
                })
                .then_some(())
        },
    );
    let s = block_on(c.nodes[2].client.ceremony()).unwrap();
    assert!(s.running.is_empty() && s.pending_refresh.is_none(), "{s:?}");
    assert_eq!(s.group_key, Some(group_key));
    let status = accord_ok(&["refresh", "status", "--api", &c.nodes[2].api]);
    assert!(status.contains("last refresh completed: 1"), "{status}");
    // Nothing to abort now.
    let out = accord(&["refresh", "abort", "--api", &api1, "--token-file", &token1]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("abort-refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Verdicts after the refresh verify under the bundle from before it.
    let p2 = c.open_period(2_500);
    c.submit_period(p2, &conduct);
    verify_offline(&c, 3, p2, &bundle, &c.dir.path().join("p2"));

    // Member 3 loses its key share file.
    let share = c.nodes[3].data_dir.join("share.key");
    assert!(share.exists());
    c.nodes[3].kill9();
    std::fs::remove_file(&share).unwrap();
    c.nodes[3].start();
    c.nodes[3].wait_up();
    let s = c.nodes[3].status().unwrap();
    assert!(!s.ready && s.group_key.is_none());
    assert!(
        s.reason.as_deref().unwrap().contains("accord repair"),
        "{:?}",
        s.reason
    );
    let cs = block_on(c.nodes[3].client.ceremony()).unwrap();
    assert!(!cs.key_share);
    assert_eq!(
        cs.known_group_key,
        Some(group_key),
        "known from its records"
    );
    assert!(
        c.nodes[3].log_text().contains("no key share"),
        "the start-up log says what is missing"
    );
    c.wait_connected();

    // A member with a share in use cannot ask for a repair; member 3 can, from all three others.
    let api3 = c.nodes[3].api.clone();
    let token3 = c.layout.members[3].token.display().to_string();
    let out = accord(&["repair", "--api", &api1, "--token-file", &token1]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("repair-refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = accord_ok(&[
        "repair",
        "--api",
        &api3,
        "--token-file",
        &token3,
        "--helpers",
        "0,1,2",
    ]);
    assert_eq!(out.trim(), group_key.to_string());
    assert!(share.exists(), "the repaired share is in the key file");
    let cs = block_on(c.nodes[3].client.ceremony()).unwrap();
    assert!(cs.key_share && cs.known_group_key.is_none());
    assert_eq!(cs.group_key, Some(group_key));

    // Only members 1, 2 and 3 remain: t = 3, so every verdict needs member 3's share.
    c.nodes[0].kill9();
    let p3 = c.open_period(2_500);
    c.submit_period(p3, &conduct);
    verify_offline(&c, 3, p3, &bundle, &c.dir.path().join("p3"));
    verify_offline(&c, 1, p3, &bundle, &c.dir.path().join("p3-at-1"));
}
