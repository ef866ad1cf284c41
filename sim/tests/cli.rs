//! The command line: a failing run prints the one command that replays it and its last events,
//! the replay reproduces it, results land in the output directory, bad scenario files get a
//! clear error with a line number, and every flag of `run` is documented in docs/simulator.md.

use std::path::PathBuf;
use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_accord-sim"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("accord-sim-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_failure_prints_its_replay_command_and_the_replay_reproduces_it() {
    let dir = tmp("fail");
    let scenario = dir.join("unmet.toml");
    std::fs::write(
        &scenario,
        "name = \"unmet\"\nseeds = 2\n[network]\nmembers = 4\nlabs = 2\nperiods = 1\n[expect]\nculprits = [3]\n",
    )
    .expect("write");
    let out = sim()
        .args(["run", scenario.to_str().expect("utf-8"), "--out"])
        .arg(dir.join("out"))
        .args(["--no-plots", "-q"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let replay = format!("replay: accord-sim run {} --seed 1", scenario.display());
    assert!(err.contains(&replay), "{err}");
    assert!(err.contains("last events"), "{err}");
    assert!(err.contains("expected member#3 to be named"), "{err}");
    let hash = |dir: &std::path::Path, seed: &str| {
        let csv = std::fs::read_to_string(dir.join("runs.csv")).expect("runs.csv");
        csv.lines()
            .find(|l| l.split(',').nth(2) == Some(seed))
            .and_then(|l| l.rsplit(',').next())
            .map(str::to_string)
            .expect("a row for the seed")
    };
    let first = hash(&dir.join("out"), "1");
    let again = sim()
        .args([
            "run",
            scenario.to_str().expect("utf-8"),
            "--seed",
            "1",
            "--out",
        ])
        .arg(dir.join("replay"))
        .args(["--no-plots", "-q"])
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(hash(&dir.join("replay"), "1"), first);
}

#[test]
fn results_and_plots_are_written() {
    let dir = tmp("ok");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = sim()
        .arg("run")
        .arg(manifest.join("scenarios/lossy-network.toml"))
        .args(["--seeds", "1", "--check-determinism", "-q", "--out"])
        .arg(&dir)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("determinism: 5/5"), "{stdout}");
    for f in [
        "runs.json",
        "summary.json",
        "scenario.json",
        "runs.csv",
        "slots.csv",
        "members.csv",
        "culprits.csv",
        "time_to_verdict.svg",
        "traffic_per_member.svg",
        "latency_vs_links_loss.svg",
    ] {
        let p = dir.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 40, "{} missing or empty", p.display());
    }
    let svg = std::fs::read_to_string(dir.join("latency_vs_links_loss.svg")).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("links.loss"));
}

#[test]
fn a_bad_scenario_names_the_line() {
    let dir = tmp("bad");
    let scenario = dir.join("bad.toml");
    std::fs::write(
        &scenario,
        "name = \"bad\"\n[network]\nmembers = 4\nlabs = 2\nperiods = 1\n\n[[adversary]]\nmembers = [7]\nbehaviour = \"silent\"\n",
    )
    .expect("write");
    let out = sim()
        .args(["run", scenario.to_str().expect("utf-8"), "-q"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:7: adversary[0]", scenario.display())),
        "{err}"
    );
    assert!(err.contains("member 7 is not in the roster"), "{err}");
}

#[test]
fn every_run_flag_is_documented() {
    let help = sim().args(["run", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/simulator.md"),
    )
    .expect("docs/simulator.md");
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|w| *w != "--help")
        .collect();
    assert!(flags.len() >= 8, "{help}");
    for f in flags {
        assert!(
            doc.contains(f),
            "flag {f} is not documented in docs/simulator.md"
        );
    }
}
