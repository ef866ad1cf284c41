//! STYLE.md "keep --help and docs/ true": every `--flag` the operations guide mentions is a flag
//! of some `accord` subcommand, and every subcommand the issue names exists.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;

fn help(args: &[&str]) -> String {
    let out = accord(args);
    assert!(out.status.success(), "accord {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_documented_flag_and_command_exists() {
    let commands = [
        vec!["init"],
        vec!["testnet"],
        vec!["dkg"],
        vec!["refresh", "start"],
        vec!["refresh", "status"],
        vec!["refresh", "abort"],
        vec!["repair"],
        vec!["succession", "propose"],
        vec!["succession", "approve"],
        vec!["succession", "withdraw"],
        vec!["succession", "status"],
        vec!["succession", "adopt"],
        vec!["succession", "chain"],
        vec!["run"],
        vec!["status"],
        vec!["lab", "keygen"],
        vec!["lab", "attest"],
        vec!["submit"],
        vec!["statements"],
        vec!["verify"],
        vec!["observe"],
        vec!["demo"],
    ];
    let mut all_help = help(&["--help"]);
    for c in &commands {
        let mut args = c.clone();
        args.push("--help");
        all_help.push_str(&help(&args));
    }
    let mut guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .unwrap();
    // The observers' guide documents `accord verify` and `accord observe` flags.
    guide.push_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/observers.md"))
            .unwrap(),
    );
    let flags: BTreeSet<String> = guide
        .split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')' || c == ',')
        .filter(|w| w.starts_with("--") && w.as_bytes().get(2).is_some_and(u8::is_ascii_lowercase))
        .map(|w| {
            w.trim_end_matches(['.', ':', ';'])
                .split('=')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(flags.len() > 10, "the guide documents flags: {flags:?}");
    // Whole names only: `--key` must not pass because `--key-share` exists.
    let help_flags: BTreeSet<&str> = all_help
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        .filter(|w| w.starts_with("--"))
        .collect();
    let help_vars: BTreeSet<&str> = all_help
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.starts_with("ACCORD_"))
        .collect();
    // Flags of other tools the guides show (cargo, systemctl; openssl's are single-dash).
    let foreign = ["--release", "--features", "--test", "--now"];
    for f in flags.iter().filter(|f| !foreign.contains(&f.as_str())) {
        assert!(
            help_flags.contains(f.as_str()),
            "docs/operations.md mentions {f}, which no command has"
        );
    }
    // Every environment variable the guide names appears in some --help.
    for var in guide
        .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
        .filter(|w| w.starts_with("ACCORD_") && w.len() > 7)
    {
        if var == "ACCORD_PASSPHRASE" || var == "ACCORD_FAILPOINT" {
            continue; // read from the environment only, by design
        }
        assert!(
            help_vars.contains(var),
            "docs/operations.md mentions {var}, which no flag reads"
        );
    }
}
