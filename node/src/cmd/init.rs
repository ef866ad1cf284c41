//! `accord init`: a member identity, a node configuration and the operator token; prints the
//! roster entry to share with the ceremony coordinator.

use std::path::PathBuf;

use accord_node::config::{DEFAULT_API, FileConfig};
use accord_node::keyfile;
use accord_protocol::crypto::SecretKey;
use accord_protocol::roster::Member;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use rand::RngCore as _;

use super::common::PassphraseArgs;

// `accord init`: create a member identity and a node configuration.
#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// Directory for the identity and the configuration.
    #[arg(long, env = "ACCORD_DIR")]
    pub(super) dir: PathBuf,
    /// This member's name in the roster (e.g. the nation).
    #[arg(long, env = "ACCORD_NAME")]
    pub(super) name: String,
    /// libp2p listen address.
    #[arg(long, env = "ACCORD_LISTEN", default_value = accord_node::config::DEFAULT_LISTEN)]
    pub(super) listen: String,
    /// Address other members dial (goes into the roster entry); default: the listen address.
    #[arg(long, env = "ACCORD_ADVERTISE")]
    pub(super) advertise: Option<String>,
    /// HTTP API address.
    #[arg(long, env = "ACCORD_API", default_value = DEFAULT_API)]
    pub(super) api: String,
    #[command(flatten)]
    pub(super) passphrase: PassphraseArgs,
}

/// `accord init`.
pub(super) fn run(a: InitArgs) -> Result<()> {
    let passphrase = a.passphrase.load()?;
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let identity_path = a.dir.join("identity.key");
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(&mut *seed);
    keyfile::write_secret(&identity_path, &*seed, passphrase.as_ref(), false)?;
    let key = SecretKey::from_seed(&seed);
    let peer_id =
        accord_node::p2p::peer_id_of(&key.public()).context("derived an invalid libp2p key")?;
    let config_path = a.dir.join("config.toml");
    if config_path.exists() {
        bail!("{} already exists", config_path.display());
    }
    FileConfig {
        roster: PathBuf::from("roster.json"),
        identity: PathBuf::from("identity.key"),
        data_dir: PathBuf::from("data"),
        key_share: None,
        listen: a.listen.clone(),
        api: a.api.clone(),
        operator_token: None,
        refresh_every: None,
        epoch_start: None,
    }
    .save(&config_path)?;
    let token_path = a.dir.join("data").join(accord_node::auth::TOKEN_FILE);
    accord_node::auth::OperatorToken::create(&token_path)
        .with_context(|| format!("creating {}", token_path.display()))?;
    let entry = Member {
        name: a.name,
        peer_id: peer_id.to_string(),
        key: key.public(),
        addresses: vec![a.advertise.unwrap_or(a.listen)],
    };
    eprintln!(
        "wrote {}, {} and the operator token {} (for `accord dkg --token-file`); send this roster entry to the ceremony coordinator, and put the agreed roster.json next to config.toml:",
        identity_path.display(),
        config_path.display(),
        token_path.display()
    );
    println!("{}", serde_json::to_string_pretty(&entry)?);
    Ok(())
}
