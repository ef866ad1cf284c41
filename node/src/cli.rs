//! The command-line interface. Every flag can also be set through the environment variable shown
//! in `--help`; `accord run` also reads a TOML config file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use accord_node::config::{DEFAULT_API, FileConfig, NodeConfig};
use accord_node::keyfile::{self, Passphrase};
use accord_node::testnet::{self, TestnetOptions, loopback_schedule};
use accord_observer::client::Client;
use accord_observer::export::StatementExport;
use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::evidence::{Attestation, Evidence};
use accord_protocol::roster::{Member, Period, SigningMode};
use accord_protocol::statement::TrustBundle;
use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::RngCore as _;

/// accord: a node of the Accord attestation network, and the tools around it.
#[derive(Debug, Parser)]
#[command(name = "accord", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Log filter (tracing-subscriber syntax), e.g. `info` or `accord_node=debug`.
    #[arg(long, env = "ACCORD_LOG", default_value = "info", global = true)]
    pub(crate) log: String,
    /// Log format.
    #[arg(long, env = "ACCORD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a member identity and a node configuration; prints the roster entry to share.
    Init(InitArgs),
    /// Create a local network of N members: roster, configs, identities and demo lab keys.
    Testnet(TestnetArgs),
    /// Start a DKG ceremony at a running node (the other members join) and wait for the key.
    Dkg(DkgArgs),
    /// Run a node until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Show a node's status.
    Status(ApiArgs),
    /// Lab tools: key generation and signed attestations.
    Lab {
        /// The lab command.
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Submit a signed attestation or inspection report (JSON) to a node.
    Submit(SubmitArgs),
    /// List or download co-signed statements from a node.
    Statements(StatementsArgs),
    /// Verify exported statements offline against a trust bundle.
    Verify(VerifyArgs),
    /// Watch members' transparency logs: signatures, witnesses, consistency over time and
    /// between nodes, and missing verdicts; exits non-zero on any finding.
    Observe(ObserveArgs),
    /// Start a local 5-member network, run the DKG, submit a period and verify the verdicts.
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PassphraseArgs {
    /// File holding the passphrase that seals secret files (the ACCORD_PASSPHRASE variable
    /// holds the passphrase itself).
    #[arg(long, env = "ACCORD_PASSPHRASE_FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
}

impl PassphraseArgs {
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

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Directory for the identity and the configuration.
    #[arg(long, env = "ACCORD_DIR")]
    pub(crate) dir: PathBuf,
    /// This member's name in the roster (e.g. the nation).
    #[arg(long, env = "ACCORD_NAME")]
    pub(crate) name: String,
    /// libp2p listen address.
    #[arg(long, env = "ACCORD_LISTEN", default_value = accord_node::config::DEFAULT_LISTEN)]
    pub(crate) listen: String,
    /// Address other members dial (goes into the roster entry); default: the listen address.
    #[arg(long, env = "ACCORD_ADVERTISE")]
    pub(crate) advertise: Option<String>,
    /// HTTP API address.
    #[arg(long, env = "ACCORD_API", default_value = DEFAULT_API)]
    pub(crate) api: String,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TestnetArgs {
    /// Output directory.
    #[arg(long, env = "ACCORD_TESTNET_DIR")]
    pub(crate) dir: PathBuf,
    /// Number of members.
    #[arg(long, env = "ACCORD_MEMBERS", default_value_t = 5)]
    pub(crate) members: usize,
    /// Threshold t (default ⌊2n/3⌋ + 1).
    #[arg(long, env = "ACCORD_THRESHOLD")]
    pub(crate) threshold: Option<u16>,
    /// Number of labs.
    #[arg(long, env = "ACCORD_LABS", default_value_t = 5)]
    pub(crate) labs: usize,
    /// Length of a reporting period, in seconds.
    #[arg(long, env = "ACCORD_PERIOD_SECS", default_value_t = 60)]
    pub(crate) period_secs: u64,
    /// Start of period 0, in ms since the Unix epoch (default: now).
    #[arg(long, env = "ACCORD_GENESIS_MS")]
    pub(crate) genesis_ms: Option<u64>,
    /// First p2p port (0: free ports).
    #[arg(long, env = "ACCORD_BASE_PORT", default_value_t = 0)]
    pub(crate) base_port: u16,
    /// First API port (0: free ports).
    #[arg(long, env = "ACCORD_API_BASE_PORT", default_value_t = 0)]
    pub(crate) api_base_port: u16,
    /// Sign one statement per slot instead of one checkpoint per period.
    #[arg(long, env = "ACCORD_PER_SLOT")]
    pub(crate) per_slot: bool,
    /// Deal the FROST keys now (trusted dealer, for tests) instead of running the DKG.
    #[arg(long, env = "ACCORD_DEALER")]
    pub(crate) dealer: bool,
    /// Members connect over QUIC instead of TCP (needs a build with `--features quic`).
    #[arg(long, env = "ACCORD_QUIC")]
    pub(crate) quic: bool,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The node's HTTP API.
    #[arg(long, env = "ACCORD_API_URL", default_value = "http://127.0.0.1:7700")]
    pub(crate) api: String,
}

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

#[derive(Debug, Args)]
pub(crate) struct DkgArgs {
    #[command(flatten)]
    pub(crate) operator: OperatorArgs,
    /// Ceremony number (must exceed any used before, by at most 16; default: the last + 1).
    #[arg(long, env = "ACCORD_CEREMONY")]
    pub(crate) ceremony: Option<u32>,
    /// How long to wait for the group key.
    #[arg(long, env = "ACCORD_DKG_WAIT_SECS", default_value_t = 120)]
    pub(crate) wait_secs: u64,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Configuration file (TOML); the flags below override it.
    #[arg(long, short, env = "ACCORD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Roster file (JSON).
    #[arg(long, env = "ACCORD_ROSTER")]
    pub(crate) roster: Option<PathBuf>,
    /// Identity key file.
    #[arg(long, env = "ACCORD_IDENTITY")]
    pub(crate) identity: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "ACCORD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Key share file (default `<data-dir>/share.key`).
    #[arg(long, env = "ACCORD_KEY_SHARE")]
    pub(crate) key_share: Option<PathBuf>,
    /// libp2p listen address.
    #[arg(long, env = "ACCORD_LISTEN")]
    pub(crate) listen: Option<String>,
    /// HTTP API address.
    #[arg(long, env = "ACCORD_API")]
    pub(crate) api: Option<String>,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LabCommand {
    /// Generate a lab signing key; prints the roster entry.
    Keygen {
        /// The lab's id.
        #[arg(long, env = "ACCORD_LAB")]
        lab: String,
        /// Key file to create (0600).
        #[arg(long, env = "ACCORD_LAB_KEY")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Sign an attestation for a period; prints the evidence JSON for `accord submit`.
    Attest(Box<AttestArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct AttestArgs {
    /// The lab's key file.
    #[arg(long, env = "ACCORD_LAB_KEY")]
    pub(crate) key: PathBuf,
    /// The roster (for the network id and the period calendar).
    #[arg(long, env = "ACCORD_ROSTER")]
    pub(crate) roster: PathBuf,
    /// The lab's id.
    #[arg(long, env = "ACCORD_LAB")]
    pub(crate) lab: String,
    /// Period reported on (default: the current one).
    #[arg(long, env = "ACCORD_PERIOD")]
    pub(crate) period: Option<u64>,
    /// Compute site.
    #[arg(long, env = "ACCORD_SITE", default_value = "site-1")]
    pub(crate) site: String,
    /// Training run ids (repeat the flag).
    #[arg(long = "run-id", env = "ACCORD_RUN_IDS", value_delimiter = ',')]
    pub(crate) run_ids: Vec<String>,
    /// Largest number of accelerators used together.
    #[arg(long, env = "ACCORD_ACCELERATORS")]
    pub(crate) accelerators: u64,
    /// Accelerator-hours in the period.
    #[arg(long, env = "ACCORD_CHIP_HOURS")]
    pub(crate) chip_hours: u64,
    /// Training compute in the period, FLOP.
    #[arg(long, env = "ACCORD_TRAINING_FLOP")]
    pub(crate) training_flop: u128,
    /// Declared purpose.
    #[arg(
        long,
        env = "ACCORD_PURPOSE",
        default_value = "evaluations and fine-tuning under the pause ceiling"
    )]
    pub(crate) purpose: String,
    /// Hash commitment to the weight snapshots (hex; default random for a demo).
    #[arg(long, env = "ACCORD_WEIGHTS_COMMITMENT")]
    pub(crate) weights_commitment: Option<String>,
    /// Hash commitment to the training data manifest (hex).
    #[arg(long, env = "ACCORD_DATA_COMMITMENT")]
    pub(crate) data_commitment: Option<String>,
    /// Hash commitment to the training transcript (hex).
    #[arg(long, env = "ACCORD_TRANSCRIPT_COMMITMENT")]
    pub(crate) transcript_commitment: Option<String>,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Evidence JSON file (`-` for standard input).
    #[arg(env = "ACCORD_EVIDENCE_FILE")]
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct StatementsArgs {
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Only this period.
    #[arg(long, env = "ACCORD_PERIOD")]
    pub(crate) period: Option<u64>,
    /// Only this lab.
    #[arg(long, env = "ACCORD_LAB")]
    pub(crate) lab: Option<String>,
    /// Write each statement and the trust bundle into this directory instead of printing.
    #[arg(long, env = "ACCORD_OUT_DIR")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The trust bundle (JSON).
    #[arg(long = "trust", visible_alias = "bundle", env = "ACCORD_TRUST_BUNDLE")]
    pub(crate) bundle: PathBuf,
    /// Statement files (one statement or an array each).
    #[arg(required_unless_present_any = ["all", "log_url"])]
    pub(crate) files: Vec<PathBuf>,
    /// Verify every `*.json` statement file in this directory (batch verification).
    #[arg(long, env = "ACCORD_VERIFY_ALL")]
    pub(crate) all: Option<PathBuf>,
    /// Verify every entry of a node's transparency log (its API URL), after checking the log's
    /// signed checkpoint and that the entries hash to it.
    #[arg(long = "log-url", env = "ACCORD_VERIFY_LOG_URL")]
    pub(crate) log_url: Option<String>,
    /// Evidence JSON files or directories (as served by `GET /v1/evidence/{digest}`): check that
    /// each verdict is the policy's verdict on its evidence (needs --roster).
    #[arg(
        long,
        requires = "roster",
        env = "ACCORD_EVIDENCE",
        value_delimiter = ','
    )]
    pub(crate) evidence: Vec<PathBuf>,
    /// The roster (JSON), for the policy and the evidence keys; must match the trust bundle.
    #[arg(long, env = "ACCORD_ROSTER")]
    pub(crate) roster: Option<PathBuf>,
    /// Print only failures and the summary.
    #[arg(long, short, env = "ACCORD_QUIET")]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ObserveArgs {
    /// The trust bundle (JSON).
    #[arg(long = "trust", visible_alias = "bundle", env = "ACCORD_TRUST_BUNDLE")]
    pub(crate) bundle: PathBuf,
    /// Node API URLs to observe (repeat the flag or separate with commas).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', env = "ACCORD_NODES")]
    pub(crate) nodes: Vec<String>,
    /// State file remembering the last checkpoint of each log (created when absent).
    #[arg(long, env = "ACCORD_OBSERVER_STATE")]
    pub(crate) state: Option<PathBuf>,
    /// Witness cosignatures (by other members) each checkpoint must carry.
    #[arg(long, default_value_t = 0, env = "ACCORD_WITNESSES")]
    pub(crate) witnesses: usize,
    /// How old (seconds) those cosignatures may be: a node serving a stale checkpoint could hide
    /// newer verdicts (members refresh them every 600 s). 0: no freshness check.
    #[arg(long, default_value_t = 3600, env = "ACCORD_MAX_AGE_SECS")]
    pub(crate) max_age_secs: u64,
}

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

pub(crate) fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(a) => init(a),
        Command::Testnet(a) => make_testnet(a),
        Command::Dkg(a) => runtime()?.block_on(dkg(a)),
        Command::Run(a) => run_node(a),
        Command::Status(a) => runtime()?.block_on(status(a)),
        Command::Lab { command } => lab(command),
        Command::Submit(a) => runtime()?.block_on(submit(a)),
        Command::Statements(a) => runtime()?.block_on(statements(a)),
        Command::Verify(a) => verify(a),
        Command::Observe(a) => runtime()?.block_on(observe(a)),
        Command::Demo(a) => crate::demo::run(a),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn init(a: InitArgs) -> Result<()> {
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

fn make_testnet(a: TestnetArgs) -> Result<()> {
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

fn run_node(a: RunArgs) -> Result<()> {
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

async fn dkg(a: DkgArgs) -> Result<()> {
    let client = a.operator.client()?;
    let ceremony = client.start_dkg(a.ceremony).await?;
    eprintln!(
        "DKG ceremony {ceremony} started at {}; waiting for the group key",
        client.base()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait_secs);
    loop {
        let s = client.status().await?;
        if let Some(k) = s.group_key {
            println!("{k}");
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "no group key after {} s (DKG phase: {}); check that every member is running and connected",
                a.wait_secs,
                s.dkg_phase.as_deref().unwrap_or("none")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn status(a: ApiArgs) -> Result<()> {
    let s = Client::new(&a.api).status().await?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    if !s.ready {
        eprintln!(
            "not ready: {}",
            s.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    Ok(())
}

fn read_hex_digest(v: Option<&str>, what: &str) -> Result<Digest> {
    match v {
        Some(h) => {
            Digest::from_hex(h).with_context(|| format!("--{what} must be 64 hex characters"))
        }
        None => {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut b);
            Ok(Digest(b))
        }
    }
}

fn lab(c: LabCommand) -> Result<()> {
    match c {
        LabCommand::Keygen {
            lab,
            out,
            passphrase,
        } => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(&mut *seed);
            keyfile::write_secret(&out, &*seed, passphrase.load()?.as_ref(), false)?;
            let key = SecretKey::from_seed(&seed);
            eprintln!(
                "wrote {}; add this entry to the roster's labs:",
                out.display()
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&accord_protocol::roster::Lab {
                    id: lab,
                    key: key.public()
                })?
            );
            Ok(())
        }
        LabCommand::Attest(a) => {
            let a = *a;
            let net = accord_node::config::load_roster(&a.roster)?;
            let key = keyfile::read_key(&a.key, a.passphrase.load()?.as_ref())?;
            let lab = net
                .lab_by_id(&a.lab)
                .with_context(|| format!("lab {:?} is not in the roster", a.lab))?;
            let registered = net.roster().labs[usize::from(lab.0)].key;
            if registered != key.public() {
                bail!(
                    "the key in {} is not the roster's key for {}",
                    a.key.display(),
                    a.lab
                );
            }
            let now = accord_node::clock::now();
            let period = match a.period {
                Some(p) => Period(p),
                None => net
                    .schedule()
                    .period_at(now)
                    .context("the network's genesis is in the future")?,
            };
            let run_ids = if a.run_ids.is_empty() {
                vec![format!("{}-run-{}", a.lab, period.0)]
            } else {
                a.run_ids
            };
            let attestation = Attestation {
                lab: a.lab,
                period,
                site_id: a.site,
                run_ids,
                accelerator_count: a.accelerators,
                chip_hours: a.chip_hours,
                training_flop: a.training_flop,
                declared_purpose: a.purpose,
                weights_commitment: read_hex_digest(
                    a.weights_commitment.as_deref(),
                    "weights-commitment",
                )?,
                data_commitment: read_hex_digest(a.data_commitment.as_deref(), "data-commitment")?,
                transcript_commitment: read_hex_digest(
                    a.transcript_commitment.as_deref(),
                    "transcript-commitment",
                )?,
                issued_at: now,
            };
            let evidence = attestation.sign(net.id(), &key);
            println!("{}", serde_json::to_string_pretty(&evidence)?);
            Ok(())
        }
    }
}

async fn submit(a: SubmitArgs) -> Result<()> {
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

async fn statements(a: StatementsArgs) -> Result<()> {
    let client = Client::new(&a.api.api);
    let list = client.statements(a.period, a.lab.as_deref()).await?;
    match a.out {
        None => println!("{}", serde_json::to_string_pretty(&list)?),
        Some(dir) => {
            let bundle = client.trust_bundle().await?;
            write_statements(&dir, &list, &bundle)?;
            eprintln!(
                "wrote {} statements and trust-bundle.json to {}",
                list.len(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Writes `trust-bundle.json` and one `statement-<period>-<lab>.json` per statement.
pub(crate) fn write_statements(
    dir: &Path,
    list: &[StatementExport],
    bundle: &TrustBundle,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("trust-bundle.json"),
        serde_json::to_string_pretty(bundle)?,
    )?;
    let mut written = std::collections::BTreeSet::new();
    for s in list {
        let name = format!("statement-{}-{}.json", s.period, file_safe(&s.lab));
        if !written.insert(name.clone()) {
            bail!(
                "two statements for period {} lab {:?} in one answer (the node lists a slot twice)",
                s.period,
                s.lab
            );
        }
        std::fs::write(dir.join(name), serde_json::to_string_pretty(s)?)?;
    }
    Ok(())
}

/// A lab id as a file-name component. The node's answer is not verified yet, so a `/` or `..`
/// must not lead outside the output directory, and two lab ids must never share a file: ASCII
/// letters, digits and `-` stand for themselves, every other byte is written `_xx` (its hex),
/// so the mapping is injective. Names that would be too long for a file system keep a prefix
/// and add a hash of the whole id.
fn file_safe(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.len() > 160 {
        let hash = Digest::tagged("accord/file-name/v1", &[id.as_bytes()]).to_hex();
        out.truncate(120);
        out.push('_');
        out.push_str(&hash[..32]);
    }
    out
}

fn verify(a: VerifyArgs) -> Result<()> {
    use accord_observer::verify::{self as v, EvidenceCheck};
    let bundle = v::load_bundle(&a.bundle)?;
    let evidence = match &a.roster {
        Some(path) => {
            let net = accord_node::config::load_roster(path)?;
            let items = EvidenceCheck::read(&a.evidence)?;
            Some(EvidenceCheck::new(net, &bundle, items).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let mut files = a.files.clone();
    if let Some(dir) = &a.all {
        files.extend(v::statement_files(dir)?);
    }
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
    let mut failed = errors.len();
    for e in &errors {
        println!("FAIL  {e}");
    }
    for o in &outcomes {
        match &o.result {
            Ok(ok) if !a.quiet => println!(
                "OK    {} period {} lab {}: {} ({} evidence item{})",
                o.file.display(),
                ok.slot.period.0,
                ok.slot.lab,
                ok.verdict.kind(),
                ok.evidence,
                if ok.evidence == 1 { "" } else { "s" }
            ),
            Ok(_) => {}
            Err(e) => {
                failed += 1;
                println!(
                    "FAIL  {} period {} lab {}: {e}",
                    o.file.display(),
                    o.period,
                    o.lab
                );
            }
        }
    }
    let total = outcomes.len() + errors.len();
    if failed > 0 {
        bail!("{failed} of {total} statements failed verification");
    }
    if total == 0 {
        bail!("no statements to verify");
    }
    eprintln!(
        "{total} statements verified under group key {}{}",
        bundle.group_key,
        if evidence.is_some() {
            ", verdicts checked against the supplied evidence"
        } else {
            ""
        }
    );
    Ok(())
}

async fn observe(a: ObserveArgs) -> Result<()> {
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
            "log   {}: size {} root {} cosigned by {} witnesses, {} statements",
            log.name,
            log.checkpoint.size,
            log.checkpoint.root,
            log.checkpoint.cosigners.len(),
            log.statements.len()
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
        "{} logs consistent over time and with each other; every served verdict is logged",
        report.logs.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file_safe;

    #[test]
    fn lab_file_names_are_distinct_and_stay_inside_the_directory() {
        // Review finding 13: `a.b` and `a_b` both became `a_b`, so one statement overwrote the
        // other.
        let ids = [
            "a.b", "a_b", "a-b", "a/b", "../x", "A B", "lab-000", "ü", "_2e",
        ];
        let names: std::collections::BTreeSet<String> = ids.iter().map(|i| file_safe(i)).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for n in &names {
            assert!(!n.contains('/') && !n.contains('.'), "{n}");
        }
        assert_eq!(file_safe("lab-000"), "lab-000");
        let long = "x".repeat(256);
        let longer = format!("{long}y");
        assert!(file_safe(&long).len() <= 160);
        assert_ne!(file_safe(&long), file_safe(&longer));
    }
}
