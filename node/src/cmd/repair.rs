//! `accord repair`: a member whose key share file was lost (its identity key and data directory
//! kept) asks t other members to rebuild its share (`docs/protocol.md` §22.6,
//! `docs/operations.md` "Repairing a lost share") and waits until the share is back.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use super::common::OperatorArgs;

// `accord repair`.
#[derive(Debug, Args)]
pub(super) struct RepairArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// Exactly t other members' roster indices, comma-separated (default: the t lowest-numbered
    /// other members connected to this node).
    #[arg(long, env = "ACCORD_REPAIR_HELPERS", value_delimiter = ',')]
    helpers: Option<Vec<u16>>,
    /// How long to wait for the repaired share (0: do not wait).
    #[arg(long, env = "ACCORD_REPAIR_WAIT_SECS", default_value_t = 60)]
    wait_secs: u64,
}

/// `accord repair`.
pub(super) async fn run(a: RepairArgs) -> Result<()> {
    let client = a.operator.client()?;
    let before = client.ceremony().await?;
    let helpers = client.repair(a.helpers).await?;
    eprintln!(
        "repair requested at {} from helpers {helpers:?}",
        client.base()
    );
    if a.wait_secs == 0 {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_secs);
    loop {
        let s = client.ceremony().await?;
        if let Some(k) = s.group_key {
            if before.known_group_key.is_some_and(|g| g != k) {
                bail!("the node holds a share of group key {k}, not the one its records named");
            }
            eprintln!("key share repaired and in use");
            println!("{k}");
            return Ok(());
        }
        let waiting = s
            .running
            .iter()
            .any(|r| r.kind == accord_observer::wire::CeremonyKind::Repair && r.helpers == helpers);
        if !waiting {
            bail!(
                "the repair did not complete: the node checked the helpers' answers and refused the result (its log says why); ask again, with other helpers if it repeats"
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no repaired share after {} s; check that the helpers {helpers:?} are running and connected, and ask again",
                a.wait_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
