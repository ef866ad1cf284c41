//! `accord succession propose|approve|withdraw|status|adopt|chain`: a membership change
//! (`docs/protocol.md` §22.7, `docs/operations.md` "Membership change"). The new roster's
//! members run its DKG first; t members of the current epoch approve the succession; its
//! co-signed statement then hands every period from P on to the new roster and key, and the new
//! epoch's nodes adopt the chain.

use std::path::PathBuf;
use std::time::Duration;

use accord_observer::chain::{ChainExport, load_chain};
use accord_observer::client::Client;
use accord_protocol::roster::Period;
use accord_protocol::succession::{Succession, SuccessionProposal};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::common::{ApiArgs, OperatorArgs};

// `accord succession`: the subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum SuccessionSubcommand {
    /// Build a succession proposal from a node of the new roster (after its DKG) and the
    /// current epoch's trust bundle.
    Propose(ProposeArgs),
    /// Approve a proposal at this (current-epoch) node: it locks to it and co-signs it.
    Approve(ApproveArgs),
    /// Withdraw this node's approval (only before it released a share).
    Withdraw(OperatorOnly),
    /// Show this node's view: its approval, offers awaiting its operator, the co-signed
    /// successions it holds.
    Status(StatusArgs),
    /// Hand a new-epoch node the chain ending with its co-signed succession.
    Adopt(AdoptArgs),
    /// Download the succession chain a node knows (for `accord verify --chain`).
    Chain(ChainArgs),
}

// `accord succession propose`.
#[derive(Debug, Args)]
pub(super) struct ProposeArgs {
    /// A node of the new roster whose DKG completed (its HTTP API).
    #[arg(long, env = "ACCORD_NEXT_API_URL")]
    next_api: String,
    /// The current epoch's trust bundle (JSON): the epoch that hands over.
    #[arg(long = "trust", visible_alias = "bundle", env = "ACCORD_TRUST_BUNDLE")]
    trust: PathBuf,
    /// The first period the new epoch decides (leave a few periods for the co-signing).
    #[arg(long, env = "ACCORD_FIRST_PERIOD")]
    first_period: u64,
    /// Where to write the proposal (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

// `accord succession approve`.
#[derive(Debug, Args)]
pub(super) struct ApproveArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// The proposal (JSON, from `accord succession propose`).
    proposal: PathBuf,
    /// How long to wait for the co-signed succession (0: do not wait; t members must approve).
    #[arg(long, env = "ACCORD_SUCCESSION_WAIT_SECS", default_value_t = 0)]
    wait_secs: u64,
}

// An operator command with nothing else.
#[derive(Debug, Args)]
pub(super) struct OperatorOnly {
    #[command(flatten)]
    operator: OperatorArgs,
}

// `accord succession status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the node's answer as JSON.
    #[arg(long)]
    json: bool,
}

// `accord succession adopt`.
#[derive(Debug, Args)]
pub(super) struct AdoptArgs {
    #[command(flatten)]
    operator: OperatorArgs,
    /// The chain (JSON, from `accord succession chain` at a node of the handing epoch).
    chain: PathBuf,
}

// `accord succession chain`.
#[derive(Debug, Args)]
pub(super) struct ChainArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Where to write the chain (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `accord succession …`.
pub(super) async fn run(command: SuccessionSubcommand) -> Result<()> {
    match command {
        SuccessionSubcommand::Propose(a) => propose(a).await,
        SuccessionSubcommand::Approve(a) => approve(a).await,
        SuccessionSubcommand::Withdraw(a) => {
            let r = a.operator.client()?.withdraw_succession().await?;
            eprintln!("approval of succession {} withdrawn", r.succession);
            Ok(())
        }
        SuccessionSubcommand::Status(a) => status(a).await,
        SuccessionSubcommand::Adopt(a) => adopt(a).await,
        SuccessionSubcommand::Chain(a) => {
            let chain = Client::new(&a.api.api).chain().await?;
            chain.follow().context("the node's chain does not verify")?;
            write_json(a.out.as_ref(), &chain)
        }
    }
}

fn write_json(out: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    match out {
        Some(path) => {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
        }
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

async fn propose(a: ProposeArgs) -> Result<()> {
    let bundle = accord_observer::verify::load_bundle(&a.trust)?;
    let next = Client::new(&a.next_api).key_confirmations().await?;
    let group_key = next
        .confirmations
        .first()
        .and_then(accord_protocol::dkg::confirmed)
        .map(|(k, _)| k)
        .context("the new epoch's node shows no DKG confirmation")?;
    let net = accord_protocol::Network::new(next.roster.clone())
        .map_err(|e| anyhow::anyhow!("the new roster is invalid: {e}"))?;
    let proposal = SuccessionProposal {
        succession: Succession::new(&bundle.network_id, Period(a.first_period), &net, group_key),
        roster: next.roster,
        confirmations: next.confirmations,
    };
    proposal
        .check_next()
        .context("the new epoch's key is not proven")?;
    eprintln!(
        "succession {} : network {} hands over to {} ({} members, t = {}, group key {}) from period {}",
        proposal.succession.digest(),
        bundle.network_id,
        net.id(),
        net.n(),
        net.t(),
        group_key,
        a.first_period
    );
    write_json(a.out.as_ref(), &proposal)
}

async fn approve(a: ApproveArgs) -> Result<()> {
    let text = accord_observer::verify::read_capped(&a.proposal, 8 * 1024 * 1024)?;
    let proposal: SuccessionProposal = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a succession proposal", a.proposal.display()))?;
    let client = a.operator.client()?;
    let r = client.approve_succession(&proposal).await?;
    eprintln!(
        "succession {} approved at {} (first period {}); t members must approve",
        r.succession,
        client.base(),
        r.first_period
    );
    if a.wait_secs == 0 {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_secs);
    loop {
        let s = client.succession().await?;
        if let Some(done) = s.handed_over {
            eprintln!(
                "co-signed: periods from {} on belong to network {}",
                done.succession.first_period.0, done.succession.network_id
            );
            return Ok(());
        }
        if s.approved.is_none() {
            bail!("the approval lapsed or was withdrawn before the succession was co-signed");
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "not co-signed after {} s; t members must approve (`accord succession status` at each)",
                a.wait_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn status(a: StatusArgs) -> Result<()> {
    let s = Client::new(&a.api.api).succession().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    if let Some(p) = s.epoch_start {
        match &s.adopted {
            Some(l) => println!(
                "successor epoch: decides from period {p} on (adopted succession from {})",
                l.succession.previous
            ),
            None => println!(
                "successor epoch from period {p}: waiting for `accord succession adopt` (decides nothing yet)"
            ),
        }
    }
    match &s.approved {
        Some(r) => println!(
            "approved: succession {} from period {}{}{}",
            r.succession,
            r.first_period,
            if s.bound {
                " (bound: a share of it left)"
            } else {
                ""
            },
            if s.coordinating { ", coordinating" } else { "" }
        ),
        None => println!("approved: none"),
    }
    for o in &s.offered {
        println!(
            "offered: succession {} from period {} (not approved here)",
            o.succession, o.first_period
        );
    }
    match &s.handed_over {
        Some(l) => println!(
            "handed over: periods from {} on belong to network {} (group key {})",
            l.succession.first_period.0, l.succession.network_id, l.succession.group_key
        ),
        None => println!("handed over: no"),
    }
    Ok(())
}

async fn adopt(a: AdoptArgs) -> Result<()> {
    let (chain, followed): (ChainExport, _) = load_chain(&a.chain)?;
    let r = a.operator.client()?.adopt_succession(&chain).await?;
    eprintln!(
        "adopted: this epoch (the chain's epoch {} of {}) decides from period {} on",
        followed.epochs().len() - 1,
        r.epochs,
        r.first_period
    );
    Ok(())
}
