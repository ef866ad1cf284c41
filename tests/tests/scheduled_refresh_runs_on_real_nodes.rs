//! Issue 11 (schedule): members started with `ACCORD_REFRESH_EVERY=1` (`accord run
//! --refresh-every 1`) refresh their shares by themselves after every period close, with no
//! operator command, and the verdicts of the periods around the refreshes verify under the
//! trust bundle taken before the first one (the group key never changes).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::Period;
use common::*;

fn verify_offline(c: &Cluster, period: Period, bundle_json: &str) {
    let statements = c.wait_statements(0, period, Duration::from_secs(25));
    let dir = c.dir.path().join(format!("p{}", period.0));
    let files = write_statements(&dir, bundle_json, &statements);
    let trust = dir.join("trust-bundle.json").display().to_string();
    let mut args = vec!["verify", "--trust", &trust];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = accord(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("OK ").count(),
        c.layout.labs.len(),
        "{stdout}"
    );
}

#[test]
fn members_refresh_on_their_schedule_and_the_group_key_stays() {
    let mut c = Cluster::new(4, 2, 3, false);
    for n in &mut c.nodes {
        n.env.push(("ACCORD_REFRESH_EVERY".into(), "1".into()));
    }
    c.start_all();
    c.wait_connected();
    let group_key = c.run_dkg();
    let bundle = c.trust_bundle_json(0);
    let conduct = [LabConduct::Compliant, LabConduct::OverCompute];

    let p1 = c.open_period(1_500);
    c.submit_period(p1, &conduct);
    verify_offline(&c, p1, &bundle);

    // Nobody asked for a refresh: every member completes at least two on its own.
    for n in &c.nodes {
        wait_for(
            Duration::from_secs(30),
            &format!("{}'s second scheduled refresh", n.name),
            || {
                block_on(n.client.ceremony())
                    .ok()
                    .and_then(|s| s.completed_refresh)
                    .filter(|r| *r >= 2)
            },
        );
        let s = block_on(n.client.ceremony()).unwrap();
        assert_eq!(s.group_key, Some(group_key), "{}", n.name);
        assert!(s.key_share, "{}", n.name);
    }
    assert!(
        c.nodes[0].log_text().contains("share refresh complete"),
        "no refresh in the log"
    );

    // Verdicts signed with refreshed shares verify under the first trust bundle.
    let p2 = c.open_period(1_500);
    c.submit_period(p2, &conduct);
    verify_offline(&c, p2, &bundle);
    assert_eq!(c.trust_bundle_json(0), bundle);
}
