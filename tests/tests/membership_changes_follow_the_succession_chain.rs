//! Issue 11 (membership change), on real processes: a 5-member network grows to 6 members and
//! shrinks back to 5 while labs keep submitting. Each new roster runs its DKG over loopback
//! before the handover (`accord run --epoch-start P`), `accord succession propose` builds the
//! proposal from its confirmations, t members of the current epoch approve it with
//! `accord succession approve`, the co-signed succession reaches every member, and the new
//! nodes adopt the chain (`accord succession adopt`). Every statement of every epoch verifies
//! with `accord verify --chain` and with the Python check of `docs/observers.md` run as
//! written; the handing epoch decides nothing from P on; and t shares of the withdrawn epoch,
//! still valid under its own key, cannot make a statement any observer accepts after the
//! handover; a member of the handing epoch killed with SIGKILL through the co-signing learns the
//! succession from its peers on restart. Every member's transparency log holds the links it
//! knows, once, across a restart: a handing member its co-signed succession, a successor the
//! chain it adopted from the genesis; they verify from the genesis bundle, and `accord observe`
//! of the genesis epoch passes with them.
//!
//! The test's new rosters are fresh `accord testnet` networks (new identities and ports) whose
//! labs are replaced by the genesis roster's, so the same labs, with the same keys, submit in
//! every epoch.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use accord_observer::chain::ChainExport;
use accord_observer::export::StatementExport;
use accord_observer::wire::LogEntry;
use accord_protocol::fixtures::LabConduct;
use accord_protocol::roster::Period;
use accord_protocol::succession::{Chain, SignedSuccession};
use accord_protocol::transparency::{LogLeaf, decode_log_leaf};
use common::*;

const PERIOD_SECS: u64 = 3;

/// A testnet of `members` on the calendar starting at `genesis_ms`, with the labs of `labs_from`
/// (a roster file) when given; its nodes decide from `epoch_start` on when given.
fn epoch(
    members: usize,
    genesis_ms: u64,
    labs_from: Option<&Cluster>,
    epoch_start: Option<u64>,
) -> Cluster {
    let g = genesis_ms.to_string();
    let mut c = Cluster::with_args(members, 2, PERIOD_SECS, false, &["--genesis-ms", &g]);
    if let Some(from) = labs_from {
        // Typed, not `serde_json::Value`: the policy's FLOP limits are 128-bit.
        let read = |p: &Path| -> accord_protocol::Roster {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let mut roster = read(&c.layout.roster);
        roster.labs = read(&from.layout.roster).labs;
        std::fs::write(
            &c.layout.roster,
            serde_json::to_string_pretty(&roster).unwrap(),
        )
        .unwrap();
        c.net = accord_node::config::load_roster(&c.layout.roster).unwrap();
        c.layout.labs = from.layout.labs.clone();
    }
    if let Some(p) = epoch_start {
        for n in &mut c.nodes {
            n.env.push(("ACCORD_EPOCH_START".into(), p.to_string()));
        }
    }
    c.start_all();
    c.wait_connected();
    c.run_dkg();
    if epoch_start.is_some() {
        let s = c.nodes[0].status().unwrap();
        assert!(
            !s.ready
                && s.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("succession adopt")),
            "a successor waiting for its succession says so: {:?}",
            s.reason
        );
    }
    c
}

fn token(c: &Cluster, i: usize) -> String {
    c.layout.members[i].token.display().to_string()
}

/// Hands `old` over to `new` at `first`: propose from a new node, t approvals of the old epoch,
/// wait for the co-signed succession at every old member, then every new member adopts the
/// chain. Returns the chain file.
/// Hands `old` over to `new` at `first`: the proposal, t approvals, the co-signed succession at
/// every member, and its adoption by every new member. With `down`, that member of `old` (one
/// that does not approve) is killed with SIGKILL before the approvals and restarted once the
/// approvers hold the co-signed succession: it must learn it from its peers and hand over too.
fn hand_over(
    old: &mut Cluster,
    new: &Cluster,
    first: u64,
    dir: &Path,
    name: &str,
    down: Option<usize>,
) -> PathBuf {
    let bundle = dir.join(format!("{name}-previous-bundle.json"));
    std::fs::write(&bundle, old.trust_bundle_json(0)).unwrap();
    let proposal = dir.join(format!("{name}-proposal.json"));
    let first_s = first.to_string();
    accord_ok(&[
        "succession",
        "propose",
        "--next-api",
        &new.nodes[0].api,
        "--trust",
        bundle.to_str().unwrap(),
        "--first-period",
        &first_s,
        "--out",
        proposal.to_str().unwrap(),
    ]);
    if let Some(d) = down {
        assert!(d >= old.net.t(), "the member down is not an approver");
        old.nodes[d].kill9();
    }
    for i in 0..old.net.t() {
        let tok = token(old, i);
        accord_ok(&[
            "succession",
            "approve",
            proposal.to_str().unwrap(),
            "--api",
            &old.nodes[i].api,
            "--token-file",
            &tok,
        ]);
    }
    let held = |n: &NodeProc| {
        wait_for(
            Duration::from_secs(30),
            &format!("{} holds the co-signed succession", n.name),
            || block_on(n.client.succession()).ok()?.handed_over,
        );
    };
    for (i, n) in old.nodes.iter().enumerate() {
        if down != Some(i) {
            held(n);
        }
    }
    if let Some(d) = down {
        old.nodes[d].start();
        held(&old.nodes[d]);
    }
    let chain = dir.join(format!("{name}-chain.json"));
    accord_ok(&[
        "succession",
        "chain",
        "--api",
        &old.nodes[0].api,
        "--out",
        chain.to_str().unwrap(),
    ]);
    for (i, n) in new.nodes.iter().enumerate() {
        let tok = token(new, i);
        accord_ok(&[
            "succession",
            "adopt",
            chain.to_str().unwrap(),
            "--api",
            &n.api,
            "--token-file",
            &tok,
        ]);
    }
    // `accord inspect` explains both files.
    let text = accord_ok(&["inspect", proposal.to_str().unwrap()]);
    assert!(
        text.contains("succession proposal")
            && text.contains(&format!("first period: {first}"))
            && text.contains("all confirmed this group key"),
        "{text}"
    );
    let text = accord_ok(&["inspect", chain.to_str().unwrap()]);
    assert!(
        text.contains(&format!("periods {first}..")) && text.contains("Every link verifies"),
        "{text}"
    );
    // The new epoch serves the chain that led to it.
    let served = block_on(new.nodes[0].client.chain()).unwrap();
    let file: accord_observer::chain::ChainExport =
        serde_json::from_str(&std::fs::read_to_string(&chain).unwrap()).unwrap();
    assert_eq!(served, file);
    chain
}

/// Submits `period` to `c` and returns its statements once member 0 holds them all.
fn decide(c: &Cluster, period: Period) -> Vec<StatementExport> {
    wait_until_open(c, period);
    c.submit_period(period, &[LabConduct::Compliant, LabConduct::OverCompute]);
    c.wait_statements(0, period, Duration::from_secs(30))
}

fn wait_until_open(c: &Cluster, period: Period) {
    let start = c.net.schedule().start(period);
    std::thread::sleep(start.saturating_duration_since(accord_node::clock::now()));
}

fn write(dir: &Path, name: &str, statements: &[StatementExport]) -> Vec<PathBuf> {
    statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let path = dir.join(format!("{name}-{i}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(s).unwrap()).unwrap();
            path
        })
        .collect()
}

fn verify_on_chain(chain: &Path, files: &[PathBuf]) -> std::process::Output {
    let mut args = vec!["verify", "--chain", chain.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    accord(&args)
}

/// The succession entries of `n`'s transparency log, in log order; every entry (statements
/// too) must decode as a leaf of `c`'s network.
fn logged_successions(c: &Cluster, n: &NodeProc) -> Vec<SignedSuccession> {
    let entries: Vec<LogEntry> =
        block_on(n.client.get("/v1/log/entries?start=0&limit=1000")).unwrap();
    assert!(entries.len() < 1000, "the test reads one page");
    entries
        .iter()
        .filter_map(|e| {
            let bytes = hex::decode(&e.entry).unwrap();
            match decode_log_leaf(c.net.id(), &bytes) {
                Ok(LogLeaf::Succession(s)) => Some(s),
                Ok(LogLeaf::Statement(_)) => None,
                Err(err) => panic!("{} entry {}: {err}", n.name, e.index),
            }
        })
        .collect()
}

fn python_chain_check() -> String {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/observers.md"))
            .unwrap();
    docs.split("<!-- observers-chain-python-begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- observers-chain-python-end -->").next())
        .expect("docs/observers.md has the chain check")
        .trim()
        .trim_start_matches("```python")
        .trim_end_matches("```")
        .to_string()
}

fn python(block: &str, chain: &Path, file: &Path) -> std::process::Output {
    std::process::Command::new("python3")
        .arg("-c")
        .arg(block)
        .arg(chain)
        .arg(file)
        .output()
        .expect("python3 must be installed (scripts/test.sh installs it)")
}

#[test]
fn five_grow_to_six_and_shrink_to_five_and_every_verdict_verifies_on_the_chain() {
    let genesis_ms = accord_node::clock::now().as_millis();
    let mut a = epoch(5, genesis_ms, None, None);
    let dir = a.dir.path().join("observer");
    std::fs::create_dir_all(&dir).unwrap();
    let now_period = |c: &Cluster| {
        c.net
            .schedule()
            .period_at(accord_node::clock::now())
            .unwrap()
            .0
    };

    let mut files = Vec::new();
    let p = Period(now_period(&a));
    files.extend(write(&dir, "a-before", &decide(&a, p)));

    // Accession: a sixth member. The new roster's nodes run their DKG first.
    let first_b = now_period(&a) + 6;
    let mut b = epoch(6, genesis_ms, Some(&a), Some(first_b));
    let chain_ab = hand_over(&mut a, &b, first_b, &dir, "ab", None);
    // The old epoch keeps deciding until P, the new one from P.
    files.extend(write(&dir, "a-last", &decide(&a, Period(first_b - 1))));
    files.extend(write(&dir, "b-first", &decide(&b, Period(first_b))));

    // Withdrawal: back to five.
    let first_c = now_period(&b) + 6;
    let c = epoch(5, genesis_ms, Some(&a), Some(first_c));
    // One member of the handing epoch is killed (SIGKILL) through the co-signing and restarted.
    let chain = hand_over(&mut b, &c, first_c, &dir, "bc", Some(5));
    files.extend(write(&dir, "b-last", &decide(&b, Period(first_c - 1))));
    files.extend(write(&dir, "c-first", &decide(&c, Period(first_c))));

    // The handing epochs decided nothing from their handover on.
    for (old, first) in [(&a, first_b), (&b, first_c)] {
        a.sleep_past_close(Period(first), Duration::from_secs(2));
        assert!(
            old.statements(0, Period(first)).is_empty(),
            "an epoch decided a period it handed over"
        );
        let s = old.nodes[0].status().unwrap();
        assert!(
            s.next_close <= first,
            "{} closed {}",
            old.nodes[0].name,
            s.next_close
        );
        assert!(
            !s.ready
                && s.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("handed over")),
            "{:?}",
            s.reason
        );
    }

    // Every statement of every epoch verifies on the final chain: accord verify and Python.
    let out = verify_on_chain(&chain, &files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("OK ").count(), files.len(), "{stdout}");
    let block = python_chain_check();
    for f in &files {
        let py = python(&block, &chain, f);
        assert!(
            py.status.success() && String::from_utf8_lossy(&py.stdout).starts_with("OK "),
            "docs/observers.md chain check on {}: {}{}",
            f.display(),
            String::from_utf8_lossy(&py.stdout),
            String::from_utf8_lossy(&py.stderr)
        );
    }
    // The shorter chain does not know epoch C.
    assert!(!verify_on_chain(&chain_ab, &files).status.success());

    // The withdrawn epoch's shares still sign under its own key, but nothing they sign for a
    // period after its handover is accepted: not under its own network, not as epoch C.
    let shares: Vec<accord_protocol::dkg::KeyMaterial> = b.nodes[..b.net.t()]
        .iter()
        .map(|n| {
            let bytes =
                accord_node::keyfile::read_secret(&n.data_dir.join("share.key"), None).unwrap();
            accord_protocol::codec::decode(&bytes, accord_protocol::codec::MAX_MESSAGE_BYTES)
                .unwrap()
        })
        .collect();
    let genuine: StatementExport =
        serde_json::from_str(&std::fs::read_to_string(&files[files.len() - 1]).unwrap()).unwrap();
    for network in [b.net.id(), c.net.id()] {
        let mut forged = genuine.to_signed();
        forged.statement.network_id = *network;
        forged.statement.slot.period = Period(first_c + 1);
        forged.batch = None;
        let signature = accord_testkit::frost_sign(&shares, &forged.statement.signing_bytes());
        forged.signature = signature;
        let path = dir.join("forged.json");
        let export = StatementExport::new(&forged, shares[0].group_key());
        std::fs::write(&path, serde_json::to_string(&export).unwrap()).unwrap();
        let out = verify_on_chain(&chain, std::slice::from_ref(&path));
        assert!(
            !out.status.success(),
            "a statement signed by the withdrawn epoch's shares was accepted"
        );
        assert!(!python(&block, &chain, &path).status.success());
    }

    // Every member's log holds the links it knows: the genesis epoch its handover, the middle
    // epoch the link it adopted and its own handover, the last epoch the chain it adopted. They
    // verify from the genesis bundle, and a restart (which checks that held links are logged)
    // adds none twice.
    let genesis: accord_protocol::TrustBundle = serde_json::from_str(
        &std::fs::read_to_string(dir.join("ab-previous-bundle.json")).unwrap(),
    )
    .unwrap();
    let exported: ChainExport =
        serde_json::from_str(&std::fs::read_to_string(&chain).unwrap()).unwrap();
    let links: Vec<SignedSuccession> = exported.links.iter().map(|l| l.signed().unwrap()).collect();
    assert_eq!(links.len(), 2);
    let check_logs = |what: &str, a: &Cluster, b: &Cluster, c: &Cluster| {
        for (epoch, expected, last) in [(a, &links[..1], b), (b, &links[..], c), (c, &links[..], c)]
        {
            for n in &epoch.nodes {
                let logged = logged_successions(epoch, n);
                assert_eq!(logged, expected, "{what}: succession entries of {}", n.name);
                let followed = Chain::follow(genesis.clone(), &logged).unwrap();
                assert_eq!(followed.last().bundle.network_id, *last.net.id());
            }
        }
    };
    check_logs("before a restart", &a, &b, &c);
    b.nodes[0].term();
    b.nodes[0].start();
    b.nodes[0].wait_up();
    check_logs("after a restart", &a, &b, &c);
    // The genesis epoch's logs, succession entries included, pass `accord observe`.
    let urls: Vec<String> = a.nodes.iter().map(|n| n.api.clone()).collect();
    let out = accord(&[
        "observe",
        "--trust",
        dir.join("ab-previous-bundle.json").to_str().unwrap(),
        "--nodes",
        &urls.join(","),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches(", 1 successions").count(),
        a.nodes.len(),
        "{stdout}"
    );
}
