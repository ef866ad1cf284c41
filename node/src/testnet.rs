//! Local networks: a directory with a roster, one configuration, identity and data directory per
//! member, and the demo labs' keys (`accord testnet`, `accord demo`, the process tests).
//!
//! Layout:
//! ```text
//! DIR/roster.json               the genesis (JSON: it carries 128-bit FLOP limits)
//! DIR/testnet.json              index: members (name, config, API URL, p2p address), labs
//! DIR/members/NAME/config.toml  node configuration
//! DIR/members/NAME/identity.key member identity (0600)
//! DIR/members/NAME/data/        database (and share.key after the DKG, or dealt keys)
//! DIR/members/NAME/data/operator.token  the operator's API token (0600)
//! DIR/labs/LAB.key              lab signing keys (0600; demo labs only)
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use accord_protocol::fixtures::{Testnet, TestnetSpec};
use accord_protocol::policy::PolicyParams;
use accord_protocol::roster::{Network, Schedule, SigningMode};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::FileConfig;
use crate::keyfile::{self, Passphrase, SecretFileError};
use crate::p2p::peer_id_of;

/// What network to create.
#[derive(Clone, Debug)]
pub struct TestnetOptions {
    /// Output directory (must not hold a testnet already).
    pub dir: PathBuf,
    /// Number of members.
    pub members: usize,
    /// Threshold; default ⌊2n/3⌋ + 1.
    pub threshold: Option<u16>,
    /// Number of labs.
    pub labs: usize,
    /// Host the members listen on and advertise.
    pub host: String,
    /// First p2p port (0: pick free ports).
    pub base_port: u16,
    /// First API port (0: pick free ports).
    pub api_base_port: u16,
    /// Calendar and timeouts.
    pub schedule: Schedule,
    /// Signing mode.
    pub mode: SigningMode,
    /// Deal FROST keys now (trusted dealer; tests and demos only) instead of running the DKG.
    pub dealer: bool,
    /// Seal the secret files with this passphrase.
    pub passphrase: Option<Passphrase>,
    /// Members listen and dial over QUIC (`/udp/PORT/quic-v1`) instead of TCP.
    pub quic: bool,
    /// Per member, the addresses it listens on when members do not share one host (network
    /// namespaces, several machines); empty: every member on `host`. Needs explicit base ports
    /// (free ports can only be picked on this host).
    pub member_hosts: Vec<MemberHost>,
}

/// Where one member of a testnet listens (see [`TestnetOptions::member_hosts`]).
#[derive(Clone, Debug)]
pub struct MemberHost {
    /// The IPv4 address it listens on for, and advertises to, the other members.
    pub p2p: String,
    /// The IPv4 address of its HTTP API.
    pub api: String,
}

impl TestnetOptions {
    /// `members` members and `labs` labs in `dir`, free loopback ports, a schedule for loopback.
    pub fn new(dir: PathBuf, members: usize, labs: usize, period_ms: u64) -> Self {
        Self {
            dir,
            members,
            threshold: None,
            labs,
            host: "127.0.0.1".into(),
            base_port: 0,
            api_base_port: 0,
            schedule: loopback_schedule(period_ms, now_ms()),
            mode: SigningMode::PerPeriod,
            dealer: false,
            passphrase: None,
            quic: false,
            member_hosts: Vec::new(),
        }
    }
}

/// A schedule tuned for members on one machine: a short grace, a short observation wait (the
/// clock is shared, so skew is tiny).
pub fn loopback_schedule(period_ms: u64, genesis_ms: u64) -> Schedule {
    Schedule {
        genesis_ms,
        period_ms,
        grace_ms: 1_000,
        observation_wait_ms: 60,
        attempt_timeout_ms: 3_000,
        max_clock_skew_ms: 25,
        dkg_phase_timeout_ms: 20_000,
    }
}

fn now_ms() -> u64 {
    crate::clock::now().as_millis()
}

/// One member in [`Layout`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberEntry {
    /// Name.
    pub name: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its API base URL.
    pub api: String,
    /// Its p2p address.
    pub p2p: String,
    /// Its operator token file (for the API's operator endpoints).
    pub token: PathBuf,
}

/// One demo lab in [`Layout`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabEntry {
    /// Lab id.
    pub id: String,
    /// Its signing key file.
    pub key: PathBuf,
}

/// What [`create`] wrote (`DIR/testnet.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Layout {
    /// The roster file.
    pub roster: PathBuf,
    /// The members.
    pub members: Vec<MemberEntry>,
    /// The labs.
    pub labs: Vec<LabEntry>,
}

impl Layout {
    /// Reads `DIR/testnet.json`.
    ///
    /// # Errors
    /// I/O or JSON errors.
    pub fn load(dir: &Path) -> Result<Self, TestnetError> {
        let path = dir.join("testnet.json");
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| TestnetError::Invalid(e.to_string()))
    }
}

/// Why a testnet could not be created.
#[derive(Debug, Error)]
pub enum TestnetError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A secret file.
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// The options give an invalid roster.
    #[error("invalid network: {0}")]
    Invalid(String),
    /// The directory already holds a testnet.
    #[error("{0} already holds a testnet; choose an empty directory")]
    Exists(PathBuf),
}

fn io(path: &Path, source: std::io::Error) -> TestnetError {
    TestnetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A free TCP port on `host` (bound and released; good enough for local networks).
///
/// # Errors
/// When nothing can bind.
pub fn free_port(host: &str) -> std::io::Result<u16> {
    Ok(TcpListener::bind((host, 0))?.local_addr()?.port())
}

/// A UDP port free on `host` right now.
///
/// # Errors
/// The host cannot be bound.
pub fn free_udp_port(host: &str) -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind((host, 0))?.local_addr()?.port())
}

/// Creates the network directory.
///
/// # Errors
/// I/O, secret files, or a roster the protocol refuses.
pub fn create(opts: &TestnetOptions) -> Result<Layout, TestnetError> {
    if opts.dir.join("roster.json").exists() {
        return Err(TestnetError::Exists(opts.dir.clone()));
    }
    std::fs::create_dir_all(&opts.dir).map_err(|e| io(&opts.dir, e))?;
    let dir = opts.dir.canonicalize().map_err(|e| io(&opts.dir, e))?;
    if !opts.member_hosts.is_empty()
        && (opts.member_hosts.len() != opts.members
            || opts.base_port == 0
            || opts.api_base_port == 0)
    {
        return Err(TestnetError::Invalid(format!(
            "{} member hosts for {} members: give one per member, and base ports",
            opts.member_hosts.len(),
            opts.members
        )));
    }
    let mut spec = TestnetSpec::new(opts.members, opts.labs, opts.schedule.genesis_ms);
    spec.threshold = opts.threshold;
    spec.schedule = opts.schedule.clone();
    spec.mode = opts.mode;
    spec.policy = PolicyParams::treaty_default();
    let mut testnet = Testnet::generate(&spec, &mut OsRng, |k| {
        peer_id_of(k).map_or_else(String::new, |p| p.to_string())
    });
    let mut members = Vec::new();
    for (i, m) in testnet.roster.members.iter_mut().enumerate() {
        let (host, api_host) = opts
            .member_hosts
            .get(i)
            .map_or((&opts.host, &opts.host), |h| (&h.p2p, &h.api));
        let port = if opts.base_port == 0 && opts.quic {
            free_udp_port(&opts.host).map_err(|e| io(&dir, e))?
        } else if opts.base_port == 0 {
            free_port(&opts.host).map_err(|e| io(&dir, e))?
        } else {
            opts.base_port.saturating_add(i as u16)
        };
        let api_port = if opts.api_base_port == 0 {
            free_port(&opts.host).map_err(|e| io(&dir, e))?
        } else {
            opts.api_base_port.saturating_add(i as u16)
        };
        let p2p = if opts.quic {
            format!("/ip4/{host}/udp/{port}/quic-v1")
        } else {
            format!("/ip4/{host}/tcp/{port}")
        };
        m.addresses = vec![p2p.clone()];
        let mdir = dir.join("members").join(&m.name);
        members.push(MemberEntry {
            name: m.name.clone(),
            config: mdir.join("config.toml"),
            data_dir: mdir.join("data"),
            api: format!("http://{api_host}:{api_port}"),
            p2p,
            token: mdir.join("data").join(crate::auth::TOKEN_FILE),
        });
    }
    let net =
        Network::new(testnet.roster.clone()).map_err(|e| TestnetError::Invalid(e.to_string()))?;
    let roster_path = dir.join("roster.json");
    let json = serde_json::to_string_pretty(net.roster())
        .map_err(|e| TestnetError::Invalid(e.to_string()))?;
    std::fs::write(&roster_path, json).map_err(|e| io(&roster_path, e))?;
    let keys = if opts.dealer {
        Some(
            accord_protocol::dkg::deal(&net, &mut OsRng)
                .map_err(|e| TestnetError::Invalid(e.to_string()))?,
        )
    } else {
        None
    };
    for (i, entry) in members.iter().enumerate() {
        let mdir = entry.config.parent().unwrap_or(&dir).to_path_buf();
        std::fs::create_dir_all(&entry.data_dir).map_err(|e| io(&entry.data_dir, e))?;
        crate::auth::OperatorToken::create(&entry.token)?;
        keyfile::write_secret(
            &mdir.join("identity.key"),
            &*testnet.members[i].seed(),
            opts.passphrase.as_ref(),
            false,
        )?;
        if let Some(keys) = &keys {
            let bytes = zeroize::Zeroizing::new(
                accord_protocol::codec::encode(&keys[i])
                    .map_err(|e| TestnetError::Invalid(e.to_string()))?,
            );
            keyfile::write_secret(
                &entry.data_dir.join("share.key"),
                &bytes,
                opts.passphrase.as_ref(),
                false,
            )?;
        }
        let api = entry.api.trim_start_matches("http://").to_string();
        let config = FileConfig {
            roster: PathBuf::from("../../roster.json"),
            identity: PathBuf::from("identity.key"),
            data_dir: PathBuf::from("data"),
            key_share: None,
            listen: entry.p2p.clone(),
            api,
            operator_token: None,
            refresh_every: None,
            epoch_start: None,
        };
        config
            .save(&entry.config)
            .map_err(|e| TestnetError::Invalid(e.to_string()))?;
    }
    let mut labs = Vec::new();
    for (i, lab) in testnet.labs.drain(..).enumerate() {
        let id = net.roster().labs[i].id.clone();
        let path = dir.join("labs").join(format!("{id}.key"));
        keyfile::write_secret(&path, &*lab.seed(), opts.passphrase.as_ref(), false)?;
        labs.push(LabEntry { id, key: path });
    }
    let layout = Layout {
        roster: roster_path,
        members,
        labs,
    };
    let index = dir.join("testnet.json");
    let json =
        serde_json::to_string_pretty(&layout).map_err(|e| TestnetError::Invalid(e.to_string()))?;
    std::fs::write(&index, json).map_err(|e| io(&index, e))?;
    Ok(layout)
}
