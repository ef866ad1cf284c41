//! `accord run`: a node, until SIGINT or SIGTERM.

use std::path::PathBuf;

use accord_node::config::{DEFAULT_API, FileConfig, NodeConfig};
use anyhow::{Context as _, Result};
use clap::Args;

use super::common::{PassphraseArgs, runtime};

// `accord run`: the node's settings; flags override the config file.
#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Configuration file (TOML); the flags below override it.
    #[arg(long, short, env = "ACCORD_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Roster file (JSON).
    #[arg(long, env = "ACCORD_ROSTER")]
    pub(super) roster: Option<PathBuf>,
    /// Identity key file.
    #[arg(long, env = "ACCORD_IDENTITY")]
    pub(super) identity: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "ACCORD_DATA_DIR")]
    pub(super) data_dir: Option<PathBuf>,
    /// Key share file (default `<data-dir>/share.key`).
    #[arg(long, env = "ACCORD_KEY_SHARE")]
    pub(super) key_share: Option<PathBuf>,
    /// libp2p listen address.
    #[arg(long, env = "ACCORD_LISTEN")]
    pub(super) listen: Option<String>,
    /// HTTP API address.
    #[arg(long, env = "ACCORD_API")]
    pub(super) api: Option<String>,
    /// Refresh the key shares after closing every k-th period (at least 1).
    #[arg(long, env = "ACCORD_REFRESH_EVERY", value_name = "K")]
    pub(super) refresh_every: Option<u64>,
    /// This roster is a successor epoch deciding from period P on: run its DKG, decide nothing
    /// until `accord succession adopt` hands it the co-signed succession.
    #[arg(long, env = "ACCORD_EPOCH_START", value_name = "P")]
    pub(super) epoch_start: Option<u64>,
    #[command(flatten)]
    pub(super) passphrase: PassphraseArgs,
}

/// `accord run`.
pub(super) fn run(a: RunArgs) -> Result<()> {
    let mut file = match &a.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig {
            roster: a
                .roster
                .clone()
                .context("--roster is required without --config")?,
            identity: a
                .identity
                .clone()
                .context("--identity is required without --config")?,
            data_dir: a
                .data_dir
                .clone()
                .context("--data-dir is required without --config")?,
            key_share: None,
            listen: accord_node::config::DEFAULT_LISTEN.into(),
            api: DEFAULT_API.into(),
            operator_token: None,
            refresh_every: None,
            epoch_start: None,
        },
    };
    if let Some(v) = a.roster {
        file.roster = v;
    }
    if let Some(v) = a.identity {
        file.identity = v;
    }
    if let Some(v) = a.data_dir {
        file.data_dir = v;
    }
    if let Some(v) = a.key_share {
        file.key_share = Some(v);
    }
    if let Some(v) = a.listen {
        file.listen = v;
    }
    if let Some(v) = a.api {
        file.api = v;
    }
    if let Some(v) = a.refresh_every {
        file.refresh_every = Some(v);
    }
    if let Some(v) = a.epoch_start {
        file.epoch_start = Some(v);
    }
    let config = NodeConfig::from_file(&file, a.passphrase.load()?)?;
    let rt = runtime()?;
    rt.block_on(async move {
        accord_node::daemon::run(config, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
        _ = term.recv() => tracing::info!("SIGTERM"),
    }
}
