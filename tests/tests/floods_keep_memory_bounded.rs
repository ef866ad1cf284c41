//! FAULTS 21 (HTTP side): a flood of concurrent requests — status polls, garbage and oversize
//! bodies — is answered or shed (503), memory stays bounded, and honest traffic still flows.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use accord_protocol::fixtures::LabConduct;
use common::*;
use futures::StreamExt as _;

#[test]
fn an_http_flood_is_shed_and_honest_submissions_still_work() {
    let mut c = Cluster::new(3, 1, 60, true);
    c.nodes[0].start();
    c.nodes[0].wait_up();
    let base = c.nodes[0].api.clone();
    let rss_before = c.nodes[0].rss_kib();

    let started = Instant::now();
    let codes: Vec<u16> = block_on(async {
        let client = reqwest::Client::new();
        let big = vec![b'x'; 300 * 1024];
        futures::stream::iter(0..3000u32)
            .map(|i| {
                let client = client.clone();
                let base = base.clone();
                let big = big.clone();
                async move {
                    let r = match i % 3 {
                        0 => client.get(format!("{base}/v1/status")).send().await,
                        1 => {
                            client
                                .post(format!("{base}/v1/evidence"))
                                .header("content-type", "application/json")
                                .body("{\"Attestation\": 5}")
                                .send()
                                .await
                        }
                        _ => {
                            client
                                .post(format!("{base}/v1/evidence"))
                                .header("content-type", "application/json")
                                .body(big)
                                .send()
                                .await
                        }
                    };
                    r.map(|r| r.status().as_u16()).unwrap_or(0)
                }
            })
            .buffer_unordered(256)
            .collect()
            .await
    });
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the flood is bounded in time"
    );
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, 200 | 413 | 422 | 400 | 503 | 0)),
        "unexpected status codes: {:?}",
        codes
            .iter()
            .filter(|c| !matches!(c, 200 | 413 | 422 | 400 | 503 | 0))
            .collect::<Vec<_>>()
    );
    assert!(
        codes.iter().filter(|c| **c == 200).count() > 100,
        "status polls were served"
    );

    let rss_after = c.nodes[0].rss_kib();
    assert!(
        rss_after < rss_before + 100 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Honest traffic flows.
    let period = c.open_period(5_000);
    let ev = c.evidence(0, period, LabConduct::Compliant).remove(0);
    let receipt = block_on(c.nodes[0].client.submit(&ev)).unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(c.nodes[0].status().unwrap().evidence_items, 1);
}
