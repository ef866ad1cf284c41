//! `accord observe`: members' transparency logs watched by an independent observer; the work is
//! `accord_observer::observe`. Exits non-zero on any finding.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

// `accord observe`: the trust bundle, the nodes and what to require of their logs.
#[derive(Debug, Args)]
pub(super) struct ObserveArgs {
    /// The trust bundle (JSON).
    #[arg(long = "trust", visible_alias = "bundle", env = "ACCORD_TRUST_BUNDLE")]
    pub(super) bundle: PathBuf,
    /// Node API URLs to observe (repeat the flag or separate with commas).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', env = "ACCORD_NODES")]
    pub(super) nodes: Vec<String>,
    /// State file remembering the last checkpoint of each log (created when absent).
    #[arg(long, env = "ACCORD_OBSERVER_STATE")]
    pub(super) state: Option<PathBuf>,
    /// Witness cosignatures (by other members) each checkpoint must carry.
    #[arg(long, default_value_t = 0, env = "ACCORD_WITNESSES")]
    pub(super) witnesses: usize,
    /// How old (seconds) those cosignatures may be: a node serving a stale checkpoint could hide
    /// newer verdicts (members refresh them every 600 s). 0: no freshness check.
    #[arg(long, default_value_t = 3600, env = "ACCORD_MAX_AGE_SECS")]
    pub(super) max_age_secs: u64,
}

/// `accord observe`.
pub(super) async fn run(a: ObserveArgs) -> Result<()> {
    use accord_observer::observe::{ObserverState, observe};
    let bundle = accord_observer::verify::load_bundle(&a.bundle)?;
    let mut state = match &a.state {
        Some(p) => ObserverState::load(p).map_err(anyhow::Error::msg)?,
        None => ObserverState::default(),
    };
    let required = accord_observer::observe::Requirements {
        witnesses: a.witnesses,
        max_age_secs: (a.max_age_secs > 0).then_some(a.max_age_secs),
        now_secs: accord_node::clock::now().as_millis() / 1000,
    };
    let report = observe(&a.nodes, &bundle, &required, &mut state).await;
    for log in &report.logs {
        println!(
            "log   {}: size {} root {} cosigned by {} witnesses, {} statements, {} successions",
            log.name,
            log.checkpoint.size,
            log.checkpoint.root,
            log.checkpoint.cosigners.len(),
            log.statements.len(),
            log.successions.len()
        );
    }
    for f in &report.findings {
        println!("FINDING {f}");
    }
    if let Some(p) = &a.state {
        state.save(p).map_err(anyhow::Error::msg)?;
    }
    if !report.findings.is_empty() {
        bail!("{} findings", report.findings.len());
    }
    eprintln!(
        "{} logs consistent over time and with each other; every served verdict and succession is logged",
        report.logs.len()
    );
    Ok(())
}
