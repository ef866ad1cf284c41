//! `accord dkg`: start a DKG ceremony at a running node (the other members join) and wait for the
//! group key.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_secs);
    loop {
        let s = client.status().await?;
        if let Some(k) = s.group_key {
            println!("{k}");
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no group key after {} s (DKG phase: {}); check that every member is running and connected",
                a.wait_secs,
                s.dkg_phase.as_deref().unwrap_or("none")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
