//! `accord submit`: a signed attestation or inspection report (JSON) to a node; prints the receipt.

use std::path::{Path, PathBuf};

use accord_observer::client::Client;
use accord_protocol::evidence::Evidence;
use anyhow::{Context as _, Result};
use clap::Args;

use super::common::ApiArgs;

// `accord submit`: the node and the evidence file.
#[derive(Debug, Args)]
pub(super) struct SubmitArgs {
    #[command(flatten)]
    pub(super) api: ApiArgs,
    /// Evidence JSON file (`-` for standard input).
    #[arg(env = "ACCORD_EVIDENCE_FILE")]
    pub(super) file: PathBuf,
}

/// `accord submit`.
pub(super) async fn run(a: SubmitArgs) -> Result<()> {
    let text = if a.file == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let evidence: Evidence = serde_json::from_str(&text).context(
        "the file is not evidence JSON (an object {\"Attestation\": ...} or {\"Report\": ...})",
    )?;
    let receipt = Client::new(&a.api.api).submit(&evidence).await?;
    println!("{}", serde_json::to_string_pretty(&receipt)?);
    Ok(())
}
