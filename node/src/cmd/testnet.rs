//! `accord testnet`: a local network of N members (roster, configs, identities, demo lab keys).

use std::path::PathBuf;

use accord_node::testnet::{self, TestnetOptions, loopback_schedule};
use accord_protocol::roster::SigningMode;
use anyhow::{Result, bail};
use clap::Args;

use super::common::PassphraseArgs;

// `accord testnet`: a local network.
#[derive(Debug, Args)]
pub(super) struct TestnetArgs {
    /// Output directory.
    #[arg(long, env = "ACCORD_TESTNET_DIR")]
    pub(super) dir: PathBuf,
    /// Number of members.
    #[arg(long, env = "ACCORD_MEMBERS", default_value_t = 5)]
    pub(super) members: usize,
    /// Threshold t (default ⌊2n/3⌋ + 1).
    #[arg(long, env = "ACCORD_THRESHOLD")]
    pub(super) threshold: Option<u16>,
    /// Number of labs.
    #[arg(long, env = "ACCORD_LABS", default_value_t = 5)]
    pub(super) labs: usize,
    /// Length of a reporting period, in seconds.
    #[arg(long, env = "ACCORD_PERIOD_SECS", default_value_t = 60)]
    pub(super) period_secs: u64,
    /// Start of period 0, in ms since the Unix epoch (default: now).
    #[arg(long, env = "ACCORD_GENESIS_MS")]
    pub(super) genesis_ms: Option<u64>,
    /// First p2p port (0: free ports).
    #[arg(long, env = "ACCORD_BASE_PORT", default_value_t = 0)]
    pub(super) base_port: u16,
    /// First API port (0: free ports).
    #[arg(long, env = "ACCORD_API_BASE_PORT", default_value_t = 0)]
    pub(super) api_base_port: u16,
    /// Sign one statement per slot instead of one checkpoint per period.
    #[arg(long, env = "ACCORD_PER_SLOT")]
    pub(super) per_slot: bool,
    /// Deal the FROST keys now (trusted dealer, for tests) instead of running the DKG.
    #[arg(long, env = "ACCORD_DEALER")]
    pub(super) dealer: bool,
    /// Members connect over QUIC instead of TCP (needs a build with `--features quic`).
    #[arg(long, env = "ACCORD_QUIC")]
    pub(super) quic: bool,
    #[command(flatten)]
    pub(super) passphrase: PassphraseArgs,
}

/// `accord testnet`.
pub(super) fn run(a: TestnetArgs) -> Result<()> {
    let mut opts = TestnetOptions::new(a.dir.clone(), a.members, a.labs, a.period_secs * 1000);
    opts.threshold = a.threshold;
    opts.base_port = a.base_port;
    opts.api_base_port = a.api_base_port;
    if let Some(g) = a.genesis_ms {
        opts.schedule = loopback_schedule(a.period_secs * 1000, g);
    }
    if a.per_slot {
        opts.mode = SigningMode::PerSlot;
    }
    opts.dealer = a.dealer;
    if a.quic && !accord_node::p2p::QUIC {
        bail!("this accord build has no QUIC transport: rebuild it with `--features quic`");
    }
    opts.quic = a.quic;
    opts.passphrase = a.passphrase.load()?;
    let layout = testnet::create(&opts)?;
    println!("roster: {}", layout.roster.display());
    for m in &layout.members {
        println!(
            "member {:<10} p2p {:<26} api {:<24} accord run --config {}",
            m.name,
            m.p2p,
            m.api,
            m.config.display()
        );
    }
    for l in &layout.labs {
        println!("lab    {:<10} key {}", l.id, l.key.display());
    }
    Ok(())
}
