//! `accord refresh start|status|abort`: a proactive share refresh at a running node
//! (`docs/protocol.md` §22.5, `docs/operations.md` "Refreshing shares"), in the style of drand's
//! `dkg init/status/abort`. The group key stays; every member's share changes.

use std::time::Duration;

use accord_observer::client::Client;
use accord_observer::wire::{CeremonyKind, CeremonyStatus, RefreshAbortOutcome};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::common::{ApiArgs, OperatorArgs};

// `accord refresh`: the subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum RefreshSubcommand {
    /// Start a share refresh at this node (the other members join) and wait until it completes.
    Start(StartArgs),
    /// Show the node's key ceremonies: what runs, its phase, the last completed refresh.
    Status(StatusArgs),
    /// Abort the refresh running at this node: it withdraws, and every member keeps its share.
    Abort(AbortArgs),
}

// `accord refresh start`.
#[derive(Debug, Args)]
pub(super) struct StartArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// Refresh ceremony number (must exceed any used before, by at most 16; default: the last + 1).
    #[arg(long, env = "ACCORD_REFRESH_CEREMONY")]
    ceremony: Option<u32>,
    /// How long to wait for the refresh to complete here (0: do not wait).
    #[arg(long, env = "ACCORD_REFRESH_WAIT_SECS", default_value_t = 120)]
    wait_secs: u64,
}

// `accord refresh status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the node's answer as JSON.
    #[arg(long)]
    json: bool,
}

// `accord refresh abort`.
#[derive(Debug, Args)]
pub(super) struct AbortArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// Drop a refreshed share that awaits its confirmations. Only when the ceremony is known to
    /// have aborted at every member: if the others switched, this member needs `accord repair`.
    #[arg(long)]
    abandon_pending: bool,
}

/// `accord refresh …`.
pub(super) async fn run(command: RefreshSubcommand) -> Result<()> {
    match command {
        RefreshSubcommand::Start(a) => start(a).await,
        RefreshSubcommand::Status(a) => status(a).await,
        RefreshSubcommand::Abort(a) => abort(a).await,
    }
}

async fn start(a: StartArgs) -> Result<()> {
    let client = a.operator.client()?;
    let ceremony = client.start_refresh(a.ceremony).await?;
    eprintln!("refresh ceremony {ceremony} started at {}", client.base());
    if a.wait_secs == 0 {
        println!("{ceremony}");
        return Ok(());
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} refresh {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_secs);
    loop {
        let s = client.ceremony().await?;
        if s.completed_refresh.is_some_and(|c| c >= ceremony) {
            pb.finish_and_clear();
            eprintln!("refresh ceremony {ceremony} complete: new shares in use, same group key");
            if let Some(k) = s.group_key {
                println!("{k}");
            }
            return Ok(());
        }
        let phase = refresh_phase(&s, ceremony);
        if s.last_refresh.is_some_and(|c| c > ceremony) {
            pb.finish_and_clear();
            bail!(
                "refresh ceremony {ceremony} was replaced by ceremony {} (started by another member); follow it with `accord refresh status`",
                s.last_refresh.unwrap_or_default()
            );
        }
        if phase == "not running" {
            pb.finish_and_clear();
            bail!(
                "refresh ceremony {ceremony} ended without completing here; every member keeps its current share (the node's log names the members that failed it); start a new one when all members are connected"
            );
        }
        pb.set_message(format!("ceremony {ceremony}: {phase}"));
        if tokio::time::Instant::now() > deadline {
            pb.finish_and_clear();
            bail!(
                "refresh ceremony {ceremony} not complete after {} s ({phase}); check that every member is running and connected (`accord refresh status`)",
                a.wait_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Where ceremony `ceremony` stands at the node.
fn refresh_phase(s: &CeremonyStatus, ceremony: u32) -> String {
    if let Some(r) = s
        .running
        .iter()
        .find(|r| r.kind == CeremonyKind::Refresh && r.ceremony == Some(ceremony))
    {
        return format!("phase {}", r.phase);
    }
    if s.pending_refresh == Some(ceremony) {
        return "share stored; collecting every member's confirmation".into();
    }
    "not running".into()
}

async fn status(a: StatusArgs) -> Result<()> {
    let client = Client::new(&a.api.api);
    let s = client.ceremony().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

/// The ceremony status as a few lines a person reads at a glance.
fn render(s: &CeremonyStatus) -> String {
    let opt = |v: Option<u32>| v.map_or_else(|| "none".to_string(), |c| c.to_string());
    let mut out = String::new();
    match (&s.group_key, &s.known_group_key) {
        (Some(k), _) => out.push_str(&format!("key share: in use (group key {k})\n")),
        (None, Some(k)) => out.push_str(&format!(
            "key share: MISSING (the records name group key {k}); run `accord repair`\n"
        )),
        (None, None) => out.push_str("key share: none (no DKG completed here)\n"),
    }
    if s.running.is_empty() {
        out.push_str("running: nothing\n");
    }
    for r in &s.running {
        let kind = match r.kind {
            CeremonyKind::Dkg => "DKG",
            CeremonyKind::Refresh => "refresh",
            CeremonyKind::Repair => "repair",
        };
        match r.ceremony {
            Some(c) => out.push_str(&format!(
                "running: {kind} ceremony {c}, phase {}\n",
                r.phase
            )),
            None => out.push_str(&format!(
                "running: {kind}, {} of {} helpers answered (helpers {:?})\n",
                r.answered.len(),
                r.helpers.len(),
                r.helpers
            )),
        }
    }
    if let Some(c) = s.pending_refresh {
        out.push_str(&format!(
            "pending: the share of refresh {c} is stored and awaits every member's confirmation; the current share signs meanwhile\n"
        ));
    }
    out.push_str(&format!(
        "last DKG: {}; last refresh started: {}; last refresh completed: {}\n",
        opt(s.last_dkg),
        opt(s.last_refresh),
        opt(s.completed_refresh)
    ));
    out
}

async fn abort(a: AbortArgs) -> Result<()> {
    let client = a.operator.client()?;
    let r = client.abort_refresh(a.abandon_pending).await?;
    match r.outcome {
        RefreshAbortOutcome::Withdrew => println!(
            "refresh ceremony {} aborted: this member withdrew; every member keeps its current share",
            r.ceremony
        ),
        RefreshAbortOutcome::Abandoned => println!(
            "the pending share of refresh ceremony {} was dropped; the current share stays in use",
            r.ceremony
        ),
    }
    Ok(())
}
