//! What several subcommands share: the passphrase, node and operator flags, and the runtime.

use std::path::PathBuf;

use accord_node::keyfile::Passphrase;
use accord_observer::client::Client;
use anyhow::{Context as _, Result};
use clap::Args;

// Where the passphrase of sealed secret files comes from.
#[derive(Debug, Args)]
pub(crate) struct PassphraseArgs {
    /// File holding the passphrase that seals secret files (the ACCORD_PASSPHRASE variable
    /// holds the passphrase itself).
    #[arg(long, env = "ACCORD_PASSPHRASE_FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
    /// The passphrase, if one is given.
    pub(crate) fn load(&self) -> Result<Option<Passphrase>> {
        if let Some(f) = &self.passphrase_file {
            return Ok(Some(Passphrase::from_file(f)?));
        }
        match std::env::var("ACCORD_PASSPHRASE") {
            Ok(p) if !p.is_empty() => Ok(Some(Passphrase::new(p)?)),
            _ => Ok(None),
        }
    }
}

// The node to talk to.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The node's HTTP API.
    #[arg(long, env = "ACCORD_API_URL", default_value = "http://127.0.0.1:7700")]
    pub(crate) api: String,
}

// The node to talk to, as its operator.
#[derive(Debug, Args)]
pub(crate) struct OperatorArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// The node's operator token file (`operator.token` in its data directory), for operator
    /// endpoints such as key ceremonies.
    #[arg(long, env = "ACCORD_TOKEN_FILE")]
    pub(crate) token_file: PathBuf,
}

impl OperatorArgs {
    /// An API client that authenticates as the node's operator.
    pub(crate) fn client(&self) -> Result<Client> {
        let token = accord_node::auth::OperatorToken::read(&self.token_file)
            .with_context(|| format!("reading the operator token {}", self.token_file.display()))?;
        Ok(Client::new(&self.api.api).with_token(token.expose()))
    }
}

/// A multi-threaded tokio runtime for the subcommands that talk to nodes.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}
