//! `accord verify`: exported statements checked offline against a trust bundle (and, with
//! `--roster` and `--evidence`, against their evidence); the work is `accord_observer::verify`.

use std::io::Write as _;
use std::path::PathBuf;

use accord_observer::client::Client;
use accord_observer::export::StatementExport;
use anyhow::{Result, bail};
use clap::Args;

use super::common::runtime;

// `accord verify`: the trust bundle and what to verify.
#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// The trust bundle (JSON).
    #[arg(
        long = "trust",
        visible_alias = "bundle",
        env = "ACCORD_TRUST_BUNDLE",
        required_unless_present = "chain",
        conflicts_with = "chain"
    )]
    pub(super) bundle: Option<PathBuf>,
    /// A succession chain (JSON: the genesis bundle and every co-signed succession since, as
    /// `accord succession chain` writes it): each statement is checked under the epoch that
    /// decides its period. Compare its genesis with the bundle you pinned.
    #[arg(long, env = "ACCORD_CHAIN", conflicts_with_all = ["roster", "log_url"])]
    pub(super) chain: Option<PathBuf>,
    /// Statement files (one statement or an array each).
    #[arg(required_unless_present_any = ["all", "log_url"])]
    pub(super) files: Vec<PathBuf>,
    /// Verify every `*.json` statement file in this directory (batch verification).
    #[arg(long, env = "ACCORD_VERIFY_ALL")]
    pub(super) all: Option<PathBuf>,
    /// Verify every entry of a node's transparency log (its API URL), after checking the log's
    /// signed checkpoint and that the entries hash to it.
    #[arg(long = "log-url", env = "ACCORD_VERIFY_LOG_URL")]
    pub(super) log_url: Option<String>,
    /// Evidence JSON files or directories (as served by `GET /v1/evidence/{digest}`): check that
    /// each verdict is the policy's verdict on its evidence (needs --roster).
    #[arg(
        long,
        requires = "roster",
        env = "ACCORD_EVIDENCE",
        value_delimiter = ','
    )]
    pub(super) evidence: Vec<PathBuf>,
    /// The roster (JSON), for the policy and the evidence keys; must match the trust bundle.
    #[arg(long, env = "ACCORD_ROSTER")]
    pub(super) roster: Option<PathBuf>,
    /// Print only failures and the summary.
    #[arg(long, short, env = "ACCORD_QUIET")]
    pub(super) quiet: bool,
}

/// `accord verify`.
pub(super) fn run(a: VerifyArgs) -> Result<()> {
    use accord_observer::verify::{self as v, EvidenceCheck};
    let mut files = a.files.clone();
    if let Some(dir) = &a.all {
        files.extend(v::statement_files(dir)?);
    }
    let bundle = match (&a.bundle, &a.chain) {
        (Some(path), _) => v::load_bundle(path)?,
        (None, Some(path)) => {
            let (_, chain) = accord_observer::chain::load_chain(path)?;
            let (outcomes, errors) = accord_observer::chain::verify_files_on_chain(&files, &chain);
            let epochs = chain.epochs().len();
            return report(&a, &outcomes, &errors, &|total| {
                format!(
                    "{total} statements verified on a chain of {epochs} epoch{} from genesis group key {}",
                    if epochs == 1 { "" } else { "s" },
                    chain.epochs()[0].bundle.group_key
                )
            });
        }
        (None, None) => bail!("give a trust bundle (--trust) or a chain (--chain)"),
    };
    let evidence = match &a.roster {
        Some(path) => {
            let net = accord_node::config::load_roster(path)?;
            let items = EvidenceCheck::read(&a.evidence)?;
            Some(EvidenceCheck::new(net, &bundle, items).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let (mut outcomes, errors) = v::verify_files(&files, &bundle, evidence.as_ref());
    if let Some(url) = &a.log_url {
        let client = Client::new(url);
        let (log, findings) = runtime()?
            .block_on(accord_observer::observe::fetch_log(
                &client,
                &bundle,
                &accord_observer::observe::Requirements {
                    witnesses: 0,
                    max_age_secs: None,
                    now_secs: 0,
                },
            ))
            .map_err(|f| anyhow::anyhow!("{f}"))?;
        if let Some(f) = findings.first() {
            bail!("{f}");
        }
        let exports: Vec<StatementExport> = log
            .statements
            .iter()
            .map(|s| StatementExport::new(s, bundle.group_key))
            .collect();
        let results = v::verify_exports(&exports, &bundle, evidence.as_ref());
        for (e, result) in exports.into_iter().zip(results) {
            outcomes.push(v::Outcome {
                file: PathBuf::from(format!("{url}#log")),
                period: e.period,
                lab: e.lab,
                result,
            });
        }
    }
    let checked = evidence.is_some();
    report(&a, &outcomes, &errors, &|total| {
        format!(
            "{total} statements verified under group key {}{}",
            bundle.group_key,
            if checked {
                ", verdicts checked against the supplied evidence"
            } else {
                ""
            }
        )
    })
}

/// Prints every outcome (failures only with `--quiet`) and a summary line; fails if any
/// statement failed or there was none.
fn report(
    a: &VerifyArgs,
    outcomes: &[accord_observer::verify::Outcome],
    errors: &[accord_observer::verify::FileError],
    summary: &dyn Fn(usize) -> String,
) -> Result<()> {
    // One line per statement: through one buffer rather than a write per line, which is what
    // `println!` costs when stdout is a pipe or a file (2 048 writes for `--all` of 2 048 files).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = errors.len();
    for e in errors {
        writeln!(out, "FAIL  {e}")?;
    }
    for o in outcomes {
        match &o.result {
            Ok(ok) if !a.quiet => writeln!(
                out,
                "OK    {} period {} lab {}: {} ({} evidence item{})",
                o.file.display(),
                ok.slot.period.0,
                ok.slot.lab,
                ok.verdict.kind(),
                ok.evidence,
                if ok.evidence == 1 { "" } else { "s" }
            )?,
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                writeln!(
                    out,
                    "FAIL  {} period {} lab {}: {e}",
                    o.file.display(),
                    o.period,
                    o.lab
                )?;
            }
        }
    }
    out.flush()?;
    drop(out);
    let total = outcomes.len() + errors.len();
    if failed > 0 {
        bail!("{failed} of {total} statements failed verification");
    }
    if total == 0 {
        bail!("no statements to verify");
    }
    eprintln!("{}", summary(total));
    Ok(())
}
