//! Issue 13: every metric the Grafana dashboard in `deploy/grafana/` queries is one a live node
//! exports (a renamed metric would leave a panel silently empty), and the transparency-log
//! gauges read from the database say what the log holds; the fsynced commits are counted.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

/// The series names an OpenMetrics exposition can answer: every sample's name, and the names
/// each declared family yields even before it has a sample (`_total` of a counter, the
/// `_bucket`, `_sum` and `_count` of a histogram).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                names.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            names.insert(name.to_string());
        }
    }
    names
}

/// Every `accord_…` metric name in the dashboard's query expressions.
fn queried_names(dashboard: &serde_json::Value) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "expr" || k == "definition" {
                        let text = v.as_str().unwrap();
                        for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        {
                            if token.starts_with("accord_") {
                                out.insert(token.to_string());
                            }
                        }
                    } else {
                        walk(v, out);
                    }
                }
            }
            serde_json::Value::Array(list) => list.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(dashboard, &mut out);
    out
}

fn gauge(exposition: &str, series: &str) -> Option<i64> {
    exposition.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn every_metric_the_dashboard_queries_is_exported_by_a_live_node() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/accord-node.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queried = queried_names(&dashboard);
    assert!(
        queried.len() >= 20,
        "too few metrics found in the dashboard: {queried:?}"
    );

    let mut c = Cluster::new(4, 2, 6, true);
    c.start_all();
    c.wait_connected();
    let period = c.open_period(3_000);
    c.submit_period(period, &[LabConduct::Compliant, LabConduct::OverCompute]);
    c.wait_statements(0, period, Duration::from_secs(40));
    // Wait for the witnesses' cosignatures of the grown log, so the witness gauges have series.
    let exposition = wait_for(
        Duration::from_secs(20),
        "witness gauges on /metrics",
        || {
            let text = c.nodes[0].metrics();
            text.contains("accord_witness_lag_entries{").then_some(text)
        },
    );
    std::fs::write(artefact_dir("metrics").join("metrics.txt"), &exposition).unwrap();
    // Durability is counted: a co-signed period took fsynced group commits at every step (the
    // evidence, the observation, the accept, the share, the statement), and the status says
    // as much as /metrics, which was read first.
    let commits = gauge(&exposition, "accord_store_commits_total").unwrap();
    assert!(commits >= 4, "{commits} fsynced commits");
    let status = c.nodes[0].status().unwrap();
    assert!(
        status.store_commits >= commits as u64,
        "status {} < metrics {commits}",
        status.store_commits
    );

    // libp2p's dial-error family has no series until a dial fails, which on loopback happens
    // only by chance (two members dialling each other at once): make one happen. The node
    // redials a lost member with backoff, and every redial of a killed member fails.
    c.nodes[3].kill9();
    let after_dial_errors = wait_for(Duration::from_secs(30), "a failed dial on /metrics", || {
        let text = c.nodes[0].metrics();
        text.contains("accord_libp2p_swarm_outgoing_connection_error_total{")
            .then_some(text)
    });
    let exported = exported_names(&after_dial_errors);
    let missing: BTreeSet<&str> = queried.difference(&exported).map(String::as_str).collect();
    // A labelled family has no series, and so no line at all, until its first event: these
    // need a misbehaving peer. They must still be families the node registers.
    let registered = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/src/metrics.rs"),
    )
    .unwrap();
    let event_driven = BTreeSet::from([
        "accord_culprits_total",
        "accord_messages_rejected_total",
        "accord_connections_refused_total",
    ]);
    for name in &event_driven {
        let family = name
            .trim_start_matches("accord_")
            .trim_end_matches("_total");
        assert!(
            registered.contains(&format!("\"{family}\",")),
            "{name} is not a family of node/src/metrics.rs"
        );
    }
    let unexplained: Vec<&&str> = missing.difference(&event_driven).collect();
    assert!(
        unexplained.is_empty(),
        "the dashboard queries metrics the node does not export: {unexplained:?}"
    );

    // The log gauges tell the truth: every co-signed period adds one statement per lab (a
    // silent lab gets NoAttestation), and the node's own log endpoint agrees.
    let size = gauge(&exposition, "accord_log_size").unwrap();
    assert!(size >= 2 && size % 2 == 0, "log size {size}");
    let checkpoint = block_on(reqwest::get(format!(
        "{}/v1/log/checkpoint",
        c.nodes[0].api
    )))
    .unwrap();
    let checkpoint = block_on(checkpoint.text()).unwrap();
    let now_size: i64 = checkpoint.lines().nth(1).unwrap().parse().unwrap();
    assert!(
        now_size >= size,
        "checkpoint size {now_size} < gauge {size}"
    );
    assert_eq!(gauge(&exposition, "accord_witness_forks"), Some(0));
    let witnesses = exposition
        .lines()
        .filter(|l| l.starts_with("accord_witness_cosignature_age_seconds{"))
        .count();
    assert!(witnesses >= 1, "{exposition}");
    for line in exposition
        .lines()
        .filter(|l| l.starts_with("accord_witness_cosignature_age_seconds{"))
    {
        let age: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(
            (0..600).contains(&age),
            "implausible cosignature age: {line}"
        );
    }
}
