//! `accord-sim`: run Accord scenarios in the deterministic simulator.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use accord_sim::report;
use accord_sim::runner::{self, SeedOutcome};
use accord_sim::scenario::ScenarioFile;
use accord_sim::world::Options;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Deterministic simulator for the Accord attestation network.
#[derive(Parser)]
#[command(name = "accord-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file: every sweep row, for one or more seeds.
    Run(RunArgs),
    /// Run many seeds of a scenario on every core, to look for failures; prints each failure
    /// with the command that replays it. Nothing is written to disk.
    Sweep(SweepArgs),
}

#[derive(clap::Args)]
struct SweepArgs {
    /// The scenario (TOML; see docs/simulator.md).
    scenario: PathBuf,
    /// Seeds per row.
    #[arg(long)]
    seeds: u64,
    /// First seed (default: the scenario's `seed`).
    #[arg(long)]
    start: Option<u64>,
    /// Only this sweep row (0-based).
    #[arg(long)]
    row: Option<usize>,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The scenario (TOML; see docs/simulator.md).
    scenario: PathBuf,
    /// First master seed (default: the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of consecutive seeds (default: the scenario's `seeds`; 1 when --seed is given).
    #[arg(long)]
    seeds: Option<u64>,
    /// Run only this sweep row (0-based).
    #[arg(long)]
    row: Option<usize>,
    /// Output directory (default: out/<scenario name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run every seed twice and compare trace hashes.
    #[arg(long)]
    check_determinism: bool,
    /// Measure wall time in engine calls, FROST and the simulator, and peak memory.
    #[arg(long)]
    profile: bool,
    /// FROST operations timed per kind for the profile's baseline.
    #[arg(long, default_value_t = 64)]
    frost_sample: u64,
    /// Every member checks every signature itself, as a node does, instead of the members
    /// sharing the checks that already passed (same outcome and trace, more CPU).
    #[arg(long)]
    no_shared_checks: bool,
    /// Skip the SVG plots.
    #[arg(long)]
    no_plots: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Sweep(args) => sweep(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &RunArgs) -> anyhow::Result<bool> {
    let file = ScenarioFile::load(&args.scenario)?;
    let rows = file.select(args.row)?;
    let multi_row = file.rows.len() > 1;
    let first_scenario = &rows
        .first()
        .context("the scenario file has no rows")?
        .scenario;
    let first_seed = args.seed.unwrap_or(first_scenario.seed);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("out").join(&first_scenario.name));

    let plan: Vec<(usize, u64)> = rows
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let count = args.seeds.unwrap_or(if args.seed.is_some() {
                1
            } else {
                r.scenario.seeds
            });
            (0..count).map(move |k| (i, first_seed + k))
        })
        .collect();
    let bar = ProgressBar::new(plan.len() as u64 * 1000);
    if args.quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .context("progress bar template")?,
    );

    let mut outcomes: Vec<SeedOutcome> = Vec::new();
    for (done, (i, seed)) in plan.iter().enumerate() {
        let row = rows[*i];
        bar.set_message(format!("{} seed {seed}", row.label));
        let base = done as u64 * 1000;
        let opts = Options {
            seed: *seed,
            profile: args.profile,
            frost_sample: if args.profile { args.frost_sample } else { 0 },
            trace_capacity: 40,
            shared_checks: !args.no_shared_checks,
        };
        let outcome = runner::run_row_seed(row, opts, args.check_determinism, &mut |p| {
            bar.set_position(base + (p.fraction * 999.0) as u64);
        })
        .with_context(|| format!("setting up row {} seed {seed}", row.index))?;
        bar.set_position(base + 1000);
        if !outcome.passed() {
            bar.suspend(|| report_failure(&file.path, multi_row, &outcome));
        }
        outcomes.push(outcome);
    }
    bar.finish_and_clear();

    let summaries = report::summarise(&rows, &outcomes);
    println!(
        "{}: {}",
        first_scenario.name,
        first_scenario.description.trim()
    );
    print!("{}", report::table(&summaries));
    report::write_data(&out_dir, &rows, &outcomes, &summaries)
        .with_context(|| format!("writing results to {}", out_dir.display()))?;
    if !args.no_plots {
        let plots = report::write_plots(&out_dir, &rows, &outcomes, &summaries)
            .map_err(|e| anyhow::anyhow!("drawing plots: {e}"))?;
        for p in plots {
            println!("plot: {p}");
        }
    }
    if args.profile {
        for o in &outcomes {
            if let Some(p) = &o.result.profile {
                print_profile(o, p);
            }
        }
    }
    println!("results: {}", out_dir.display());
    if args.check_determinism {
        let same = outcomes
            .iter()
            .filter(|o| o.replay_hash.as_ref() == Some(&o.result.trace_hash))
            .count();
        println!(
            "determinism: {same}/{} seeds replayed to the same trace hash",
            outcomes.len()
        );
    }
    let failed = outcomes.iter().filter(|o| !o.passed()).count();
    if failed > 0 {
        println!("FAILED: {failed} of {} runs", outcomes.len());
    }
    Ok(failed == 0)
}

fn sweep(args: &SweepArgs) -> anyhow::Result<bool> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let file = ScenarioFile::load(&args.scenario)?;
    let rows = file.select(args.row)?;
    let multi_row = file.rows.len() > 1;
    let first = rows.first().context("the scenario file has no rows")?;
    let start = args.start.unwrap_or(first.scenario.seed);
    let plan: Vec<(usize, u64)> = (0..rows.len())
        .flat_map(|i| (0..args.seeds).map(move |k| (i, start + k)))
        .collect();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bar = ProgressBar::new(plan.len() as u64);
    if args.quiet || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    // Wall time of the whole sweep, for the summary only: no run reads it.
    #[allow(clippy::disallowed_methods)]
    let began = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<SeedOutcome>> = Mutex::new(Vec::new());
    let passed: Mutex<Vec<u64>> = Mutex::new(vec![0; rows.len()]);
    let setup: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, seed)) = plan.get(k) else {
                        return;
                    };
                    match runner::run_row_seed(rows[i], Options::new(seed), false, &mut |_| {}) {
                        Ok(o) if o.passed() => {
                            if let Ok(mut p) = passed.lock() {
                                p[i] += 1;
                            }
                        }
                        Ok(o) => {
                            bar.suspend(|| report_failure(&file.path, multi_row, &o));
                            if let Ok(mut f) = failures.lock() {
                                f.push(o);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut s) = setup.lock() {
                                s.get_or_insert_with(|| format!("row {i} seed {seed}: {e}"));
                            }
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = setup.into_inner().ok().flatten() {
        anyhow::bail!("setting up {e}");
    }
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|o| (o.row, o.result.seed));
    let passed = passed.into_inner().unwrap_or_default();
    println!(
        "sweep of {} ({}): seeds {start}..{} on {jobs} threads, {:.1} s",
        first.scenario.name,
        args.scenario.display(),
        start + args.seeds,
        began.elapsed().as_secs_f64()
    );
    for (i, r) in rows.iter().enumerate() {
        println!(
            "  row {:<3} {:<28} {:>7} passed of {}",
            r.index, r.label, passed[i], args.seeds
        );
    }
    for o in &failures {
        println!(
            "FAILED row {} seed {}: {}",
            o.row,
            o.result.seed,
            o.failures.first().map_or("", String::as_str)
        );
        println!(
            "  replay: {}",
            runner::replay_command(&file.path, multi_row.then_some(o.row), o.result.seed)
        );
    }
    if !failures.is_empty() {
        println!("FAILED: {} of {} runs", failures.len(), plan.len());
    }
    Ok(failures.is_empty())
}

fn report_failure(path: &std::path::Path, multi_row: bool, o: &SeedOutcome) {
    eprintln!();
    eprintln!("FAILED row {} ({}) seed {}:", o.row, o.label, o.result.seed);
    for f in &o.failures {
        eprintln!("  - {f}");
    }
    eprintln!(
        "  replay: {}",
        runner::replay_command(path, multi_row.then_some(o.row), o.result.seed)
    );
    if !o.result.last_events.is_empty() {
        eprintln!("  last events (ms since the simulation start):");
        for e in &o.result.last_events {
            eprintln!("    {e}");
        }
    }
}

fn print_profile(o: &SeedOutcome, p: &accord_sim::profile::ProfileReport) {
    println!(
        "profile row {} seed {}: wall {:.2} s (setup {:.2} s), engine {:.2} s (FROST {:.2} s, other {:.2} s), simulator {:.2} s = {:.1} % of the event loop, peak RSS {}",
        o.row,
        o.result.seed,
        p.wall_seconds,
        p.setup_seconds,
        p.engine_seconds,
        p.frost_seconds,
        p.engine_other_seconds,
        p.simulator_seconds,
        p.simulator_share * 100.0,
        p.peak_rss_kib.map_or_else(
            || "unknown".into(),
            |k| format!("{:.0} MiB", k as f64 / 1024.0)
        )
    );
    let c = p.frost_counts;
    if let Some(b) = &p.frost_baseline {
        println!(
            "  FROST: {} commits x {:.1} us, {} signs x {:.1} us, {} aggregates x {:.1} us (baseline of {} ops each)",
            c.commits, b.commit_us, c.signs, b.sign_us, c.aggregates, b.aggregate_us, b.sample
        );
    }
    println!("  engine time by input:");
    for k in p.by_kind.iter().take(12) {
        println!(
            "    {:<16} {:>10} calls {:>9.3} s  {:>9.1} us/call",
            k.kind,
            k.calls,
            k.seconds,
            k.seconds * 1e6 / k.calls.max(1) as f64
        );
    }
}
