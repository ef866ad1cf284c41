//! The command-line interface, one file per subcommand (mini-redis's layout). Every flag can also
//! be set through the environment variable shown in `--help`; `accord run` also reads a TOML
//! config file. Shared flags and helpers are in `common.rs`; no subcommand's file imports
//! another's, except that `demo` writes its statements the way `statements` does.

mod common;
mod completions;
mod demo;
mod dkg;
mod init;
mod inspect;
mod lab;
mod observe;
mod refresh;
mod repair;
mod run;
mod statements;
mod status;
mod submit;
mod succession;
mod testnet;
mod verify;

use anyhow::Result;
use clap::{Parser, ValueEnum};

use self::common::runtime;

/// accord: a node of the Accord attestation network, and the tools around it.
#[derive(Debug, Parser)]
#[command(name = "accord", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Log filter (tracing-subscriber syntax), e.g. `info` or `accord_node=debug`.
    #[arg(long, env = "ACCORD_LOG", default_value = "info", global = true)]
    log: String,
    /// Log format.
    #[arg(long, env = "ACCORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    command: Subcommand,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

// The subcommands of `accord`.
#[derive(Debug, clap::Subcommand)]
enum Subcommand {
    /// Create a member identity and a node configuration; prints the roster entry to share.
    Init(init::InitArgs),
    /// Create a local network of N members: roster, configs, identities and demo lab keys.
    Testnet(testnet::TestnetArgs),
    /// Start a DKG ceremony at a running node (the other members join) and wait for the key.
    Dkg(dkg::DkgArgs),
    /// Refresh every member's key share at a running node (same group key): start, status, abort.
    Refresh {
        /// The refresh command.
        #[command(subcommand)]
        command: refresh::RefreshSubcommand,
    },
    /// Recover this member's lost key share from t other members, at its running node.
    Repair(repair::RepairArgs),
    /// Change the membership: propose a new roster's succession, approve it, adopt the chain.
    Succession {
        /// The succession command.
        #[command(subcommand)]
        command: succession::SuccessionSubcommand,
    },
    /// Run a node until SIGINT or SIGTERM.
    Run(run::RunArgs),
    /// Show a node's status (`--watch`: a live view).
    Status(status::StatusArgs),
    /// Lab tools: key generation and signed attestations.
    Lab {
        /// The lab command.
        #[command(subcommand)]
        command: lab::LabSubcommand,
    },
    /// Submit a signed attestation or inspection report (JSON) to a node.
    Submit(submit::SubmitArgs),
    /// List or download co-signed statements from a node.
    Statements(statements::StatementsArgs),
    /// Verify exported statements offline against a trust bundle.
    Verify(verify::VerifyArgs),
    /// Watch members' transparency logs: signatures, witnesses, consistency over time and
    /// between nodes, and missing verdicts; exits non-zero on any finding.
    Observe(observe::ObserveArgs),
    /// Start a local 5-member network, run the DKG, submit a period and verify the verdicts.
    Demo(demo::DemoArgs),
    /// Say what an Accord file is and pretty-print it (statement, trust bundle, evidence,
    /// roster, wire message; key files: metadata only).
    Inspect(inspect::InspectArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Write man pages for accord and every subcommand.
    Man(completions::ManArgs),
}

/// Logs to standard error, filtered and formatted as `--log` and `--log-format` say.
pub(crate) fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the command line's subcommand.
///
/// # Errors
/// The subcommand's error, for `main` to print.
pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Subcommand::Init(a) => init::run(a),
        Subcommand::Testnet(a) => testnet::run(a),
        Subcommand::Dkg(a) => runtime()?.block_on(dkg::run(a)),
        Subcommand::Refresh { command } => runtime()?.block_on(refresh::run(command)),
        Subcommand::Repair(a) => runtime()?.block_on(repair::run(a)),
        Subcommand::Succession { command } => runtime()?.block_on(succession::run(command)),
        Subcommand::Run(a) => run::run(a),
        Subcommand::Status(a) => runtime()?.block_on(status::run(a)),
        Subcommand::Lab { command } => lab::run(command),
        Subcommand::Submit(a) => runtime()?.block_on(submit::run(a)),
        Subcommand::Statements(a) => runtime()?.block_on(statements::run(a)),
        Subcommand::Verify(a) => verify::run(a),
        Subcommand::Observe(a) => runtime()?.block_on(observe::run(a)),
        Subcommand::Demo(a) => demo::run(a),
        Subcommand::Inspect(a) => inspect::run(&a),
        Subcommand::Completions(a) => completions::completions(&a),
        Subcommand::Man(a) => completions::man(&a),
    }
}
