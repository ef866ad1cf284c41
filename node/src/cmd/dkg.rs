//! `accord dkg`: start a DKG ceremony at a running node (the other members join) and wait for the
//! group key.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::common::OperatorArgs;

// `accord dkg`: start a key ceremony and wait for the group key.
#[derive(Debug, Args)]
pub(super) struct DkgArgs {
    #[command(flatten)]
    pub(super) operator: OperatorArgs,
    /// Ceremony number (must exceed any used before, by at most 16; default: the last + 1).
    #[arg(long, env = "ACCORD_CEREMONY")]
    pub(super) ceremony: Option<u32>,
    /// How long to wait for the group key.
    #[arg(long, env = "ACCORD_DKG_WAIT_SECS", default_value_t = 120)]
    pub(super) wait_secs: u64,
}

/// `accord dkg`.
pub(super) async fn run(a: DkgArgs) -> Result<()> {
    let client = a.operator.client()?;
    let ceremony = client.start_dkg(a.ceremony).await?;
    eprintln!(
        "DKG ceremony {ceremony} started at {}; waiting for the group key",
        client.base()
    );
    // A spinner with the ceremony's phase on a terminal (indicatif draws nothing otherwise).
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} DKG {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_secs);
    loop {
        let s = client.status().await?;
        if let Some(k) = s.group_key {
            pb.finish_and_clear();
            println!("{k}");
            return Ok(());
        }
        pb.set_message(format!(
            "phase {}; {} of {} members connected",
            s.dkg_phase.as_deref().unwrap_or("starting"),
            s.reachable,
            s.members
        ));
        if tokio::time::Instant::now() > deadline {
            pb.finish_and_clear();
            bail!(
                "no group key after {} s (DKG phase: {}); check that every member is running and connected",
                a.wait_secs,
                s.dkg_phase.as_deref().unwrap_or("none")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
