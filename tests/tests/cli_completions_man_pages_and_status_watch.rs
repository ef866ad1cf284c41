//! Issue 13: the CLI's shell completions and man pages come from its clap definitions (every
//! subcommand is in them, the bash script parses), and `accord status --watch` keeps a live
//! view of a node, with the reason it is not ready.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;

const SUBCOMMANDS: [&str; 16] = [
    "init",
    "testnet",
    "dkg",
    "refresh",
    "repair",
    "run",
    "status",
    "lab",
    "submit",
    "statements",
    "verify",
    "observe",
    "demo",
    "inspect",
    "completions",
    "man",
];

#[test]
fn completions_cover_every_subcommand_and_the_bash_script_parses() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = accord(&["completions", shell]);
        assert!(out.status.success(), "completions {shell} failed");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions miss {sub}");
        }
        assert!(
            script.contains("--watch"),
            "{shell} completions miss status --watch"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accord.bash");
    std::fs::write(&path, accord(&["completions", "bash"]).stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "the bash completion script does not parse: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!accord(&["completions", "tcsh"]).status.success());
}

#[test]
fn man_pages_are_written_for_accord_and_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = accord(&["man", "--out", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut pages = vec![
        "accord.1".to_string(),
        "accord-lab-attest.1".to_string(),
        "accord-refresh-start.1".to_string(),
    ];
    pages.extend(SUBCOMMANDS.iter().map(|s| format!("accord-{s}.1")));
    for page in pages {
        let path = dir.path().join(&page);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{page} was not written"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is not roff"
        );
        assert!(listed.contains(&page), "{page} not listed");
    }
    let status = std::fs::read_to_string(dir.path().join("accord-status.1")).unwrap();
    assert!(status.contains("watch") && status.contains("ACCORD_API_URL"));
}

#[test]
fn status_watch_refreshes_a_live_view_with_the_readiness_reason() {
    let mut c = Cluster::new(4, 1, 60, true);
    // Only one member runs: it has its key but reaches 1 of 4, below t = 3.
    c.nodes[0].start();
    c.nodes[0].wait_up();
    let out = accord(&[
        "status",
        "--api",
        &c.nodes[0].api,
        "--watch",
        "--interval",
        "1",
        "--count",
        "2",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let frames: Vec<&str> = text.split("---\n").collect();
    assert_eq!(frames.len(), 2, "expected two refreshes:\n{text}");
    for frame in frames {
        assert!(frame.contains(&c.nodes[0].name), "{frame}");
        assert!(
            frame.contains("NOT READY: fewer than t members reachable"),
            "{frame}"
        );
        assert!(frame.contains("reachable 1 of 4 (t = 3)"), "{frame}");
        // Dealt keys: the key is there, no ceremony runs.
        assert!(frame.contains("group key "), "{frame}");
        assert!(!frame.contains("in progress"), "{frame}");
    }
    // --count only makes sense with --watch; a zero interval is refused.
    assert!(!accord(&["status", "--count", "1"]).status.success());
    assert!(
        !accord(&["status", "--watch", "--interval", "0"])
            .status
            .success()
    );
}
