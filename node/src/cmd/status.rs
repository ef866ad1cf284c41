//! `accord status`: a node's status as JSON, and why it is not ready when it is not; with
//! `--watch`, a live view refreshed until interrupted.

use std::time::Duration;

use accord_observer::client::Client;
use accord_observer::wire::StatusReport;
use anyhow::Result;
use clap::Args;

use super::common::ApiArgs;

// `accord status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Keep a live view on screen, refreshed every `--interval` seconds, until Ctrl-C.
    #[arg(long, env = "ACCORD_STATUS_WATCH")]
    watch: bool,
    /// Seconds between refreshes with `--watch` (1 to 3600).
    #[arg(long, env = "ACCORD_STATUS_INTERVAL", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    /// With `--watch`: stop after this many refreshes (default: until Ctrl-C).
    #[arg(long, env = "ACCORD_STATUS_COUNT", requires = "watch")]
    count: Option<u64>,
}

/// The live view of one status report: a few lines a person reads at a glance.
fn render(s: &StatusReport) -> String {
    let mut out = String::new();
    let ready = if s.ready {
        "READY".to_string()
    } else {
        format!(
            "NOT READY: {}",
            s.reason.as_deref().unwrap_or("unknown reason")
        )
    };
    out.push_str(&format!(
        "{} (index {}, peer {}) on {}\n{ready}\n",
        s.member, s.index, s.peer_id, s.network
    ));
    out.push_str(&format!(
        "reachable {} of {} (t = {}), gossip peers {}; connected: {}\n",
        s.reachable,
        s.members,
        s.threshold,
        s.gossip_peers,
        if s.connected.is_empty() {
            "none".to_string()
        } else {
            s.connected.join(", ")
        }
    ));
    let period = s
        .current_period
        .map_or_else(|| "before genesis".to_string(), |p| p.to_string());
    out.push_str(&format!(
        "period {period}, next to close {}, pending units {}, decided {}, evidence items {}\n",
        s.next_close, s.pending_units, s.decided_units, s.evidence_items
    ));
    match (&s.group_key, &s.dkg_phase) {
        (Some(k), _) => out.push_str(&format!("group key {k}\n")),
        (None, Some(phase)) => out.push_str(&format!("key ceremony in progress: {phase}\n")),
        (None, None) => out.push_str("no group key yet\n"),
    }
    if s.recent.is_empty() {
        out.push_str("no co-signed unit yet\n");
    } else {
        out.push_str("recent co-signed units (newest last):\n");
        let skip = s.recent.len().saturating_sub(5);
        for d in s.recent.iter().skip(skip) {
            let verdicts: Vec<String> =
                d.verdicts.iter().map(|(l, v)| format!("{l} {v}")).collect();
            out.push_str(&format!(
                "  period {:>6}  {:>6} ms  {}\n",
                d.period,
                d.close_to_cosigned_ms,
                verdicts.join(", ")
            ));
        }
    }
    out
}

async fn watch(client: &Client, a: &StatusArgs) -> Result<()> {
    let clear = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut shown = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(a.interval));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let frame = match client.status().await {
            Ok(s) => render(&s),
            Err(e) => format!("cannot read {}: {e}\n", a.api.api),
        };
        if clear {
            // Clear the screen and home the cursor, so the view replaces itself.
            print!("\x1b[2J\x1b[H");
        } else if shown > 0 {
            println!("---");
        }
        print!("{frame}");
        shown += 1;
        if a.count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
    }
}

/// `accord status`.
pub(super) async fn run(a: StatusArgs) -> Result<()> {
    let client = Client::new(&a.api.api);
    if a.watch {
        return watch(&client, &a).await;
    }
    let s = client.status().await?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    if !s.ready {
        eprintln!(
            "not ready: {}",
            s.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    Ok(())
}
