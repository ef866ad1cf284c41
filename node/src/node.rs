//! The daemon: one event loop owns the swarm and the engine (STYLE.md, rust-libp2p's
//! file-sharing example); the HTTP API talks to it through a bounded command channel.
//!
//! Every engine output is performed in order. `Persist` records are batched until the next
//! output that leaves the process (a `Send`, a `Broadcast` or a `StoreKey`) or the end of the
//! drain, then committed in one fsynced redb transaction; a failed commit stops the node before
//! anything else leaves (FAULTS 22: signing is refused, not risked).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::{Digest, PublicKey, SecretKey};
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::engine::{Engine, EngineConfig, Event, Output, Record};
use accord_protocol::evidence::{Evidence, EvidenceError};
use accord_protocol::message::Message;
use accord_protocol::roster::{MemberIndex, Network, Period, Roster};
use accord_protocol::{Delivery, Instant};
use futures::StreamExt as _;
use libp2p::metrics::Recorder as _;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, request_response};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::NodeConfig;
use crate::keyfile::{self, SecretFileError};
use crate::metrics::{Metrics, ReasonLabel};
use crate::p2p::{self, Ack, Behaviour, BehaviourEvent};
use crate::store::{StorageError, Store, StoredStatement};
use accord_observer::wire::{Decision, Receipt, StatusReport};

/// Capacity of the command channel from the API to the event loop.
pub const COMMAND_QUEUE: usize = 256;
/// Decisions remembered for `status`.
const RECENT_DECISIONS: usize = 64;
/// First and longest delay between dials to a disconnected member.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// `d` scaled by a random factor in [0.75, 1.25), so members that lost each other at the same
/// moment do not redial in step.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.75 + rand::random::<f64>() / 2.0)
}

/// How often this member offers its log's latest checkpoint to the witnesses that lack it.
const WITNESS_INTERVAL: Duration = Duration::from_millis(1000);
/// How long to wait before asking a witness again after a refusal or a failure.
const WITNESS_RETRY: Duration = Duration::from_secs(10);
/// How often this member has an unchanged checkpoint cosigned again, so its witnesses'
/// timestamps show observers that the log is live (`accord observe --max-age`).
pub const WITNESS_REFRESH: Duration = Duration::from_secs(600);
/// The shortest time between two checkpoints of one log that this member, as witness, persists
/// (each costs an fsync): an honest log offers at most one per [`WITNESS_INTERVAL`].
const WITNESS_MIN_ADVANCE: Duration = Duration::from_millis(250);

/// Why the node could not start or had to stop.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The roster file could not be read or is invalid.
    #[error("roster {path}: {message}")]
    Roster {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A secret file problem (permissions, passphrase).
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// The identity is not a member of the roster.
    #[error(
        "this node's identity (key {0}) is not a member of the roster; check --identity and --roster"
    )]
    NotAMember(PublicKey),
    /// The roster's peer id for this member does not match its key.
    #[error("the roster lists peer id {listed} for this member, but its key gives {derived}")]
    PeerIdMismatch {
        /// In the roster.
        listed: String,
        /// Derived from the identity key.
        derived: String,
    },
    /// The key share file does not decode.
    #[error("key share {path}: {message}")]
    KeyShare {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The network layer failed to start.
    #[error("network: {0}")]
    Network(String),
    /// The HTTP API could not bind.
    #[error("HTTP API on {addr}: {source}")]
    Api {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// The wall clock as the protocol's [`Instant`].
pub fn now() -> Instant {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::from_millis(ms)
}

/// Reads and validates a roster file (JSON).
///
/// # Errors
/// I/O, JSON or roster-rule errors.
pub fn load_roster(path: &std::path::Path) -> Result<Arc<Network>, NodeError> {
    let err = |message: String| NodeError::Roster {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let roster: Roster = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    Network::new(roster).map_err(|e| err(e.to_string()))
}

/// Why a submission was refused.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The engine refused the evidence.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// The node's storage failed; nothing is acknowledged.
    #[error("storage failed; the node no longer accepts submissions: {0}")]
    Storage(String),
}

/// Why a DKG could not start.
#[derive(Debug, Error)]
pub enum DkgCommandError {
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] accord_protocol::engine::DkgStartError),
    /// Storage failed.
    #[error("storage failed: {0}")]
    Storage(String),
}

/// A request from the API to the event loop.
#[derive(Debug)]
pub enum Command {
    /// Submit evidence; the reply comes once it is durable.
    Submit {
        /// The item.
        evidence: Box<Evidence>,
        /// The reply.
        reply: oneshot::Sender<Result<Receipt, SubmitError>>,
    },
    /// Report status.
    Status {
        /// The reply.
        reply: oneshot::Sender<StatusReport>,
    },
    /// Start a DKG ceremony.
    StartDkg {
        /// The ceremony number (default: one more than the last this member saw).
        ceremony: Option<u32>,
        /// The reply.
        reply: oneshot::Sender<Result<u32, DkgCommandError>>,
    },
}

/// What the API shares with the event loop.
#[derive(Clone, Debug)]
pub struct Handle {
    /// Commands to the event loop.
    pub commands: mpsc::Sender<Command>,
    /// The database (for reads).
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network.
    pub net: Arc<Network>,
    /// This member.
    pub me: MemberIndex,
    /// The key that signs this member's log checkpoints (its roster identity key).
    pub log_key: Arc<SecretKey>,
    /// The operator's bearer token (operator endpoints).
    pub operator: Arc<crate::auth::OperatorToken>,
}

/// What this member's log knows of one witness.
#[derive(Debug, Default)]
struct WitnessPeer {
    /// The size of our log the witness holds (0: none).
    held: u64,
    /// The checkpoint it last cosigned, and when (this process lifetime).
    cosigned: Option<(u64, Digest)>,
    cosigned_at: Option<tokio::time::Instant>,
    /// The request in flight: its id and the note sent.
    in_flight: Option<(request_response::OutboundRequestId, u64, Digest, String)>,
    /// Do not ask before this instant (after a refusal or a failure).
    next_try: Option<tokio::time::Instant>,
}

struct PeerState {
    member: MemberIndex,
    name: String,
    addrs: Vec<Multiaddr>,
    connections: usize,
    dialing: bool,
    backoff: Duration,
    next_dial: tokio::time::Instant,
}

/// Fault injection for the process-level tests, from the `ACCORD_FAILPOINT` environment
/// variable. Compiled in only with the `failpoints` cargo feature (the process tests build the
/// binary with it); a production build ignores the variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failpoint {
    /// No fault.
    None,
    /// After sending the first `Accept` (a fresh nonce commitment), ignore signing requests and
    /// SIGKILL this process 300 ms later: a crash between commit and sign (FAULTS 2).
    CrashAfterAccept,
}

impl Failpoint {
    fn from_env() -> Self {
        let Ok(value) = std::env::var("ACCORD_FAILPOINT") else {
            return Self::None;
        };
        if !cfg!(feature = "failpoints") {
            warn!(%value, "ACCORD_FAILPOINT ignored: this build has no failpoints");
            return Self::None;
        }
        match value.as_str() {
            "crash-after-accept" => {
                warn!("failpoint crash-after-accept is set (tests only)");
                Self::CrashAfterAccept
            }
            other => {
                warn!(value = %other, "unknown ACCORD_FAILPOINT ignored");
                Self::None
            }
        }
    }
}

struct EventLoop {
    last_ceremony: u32,
    log_keys: Vec<accord_protocol::transparency::LogKey>,
    log_key: Arc<SecretKey>,
    witnesses: BTreeMap<MemberIndex, WitnessPeer>,
    /// When this member, as witness, last persisted a newer checkpoint of each log.
    witness_advanced: BTreeMap<MemberIndex, tokio::time::Instant>,
    failpoint: Failpoint,
    crash_at: Option<tokio::time::Instant>,
    swarm: Swarm<Behaviour>,
    engine: Engine,
    net: Arc<Network>,
    me: MemberIndex,
    peer_id: PeerId,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    topic: gossipsub::IdentTopic,
    peers: BTreeMap<MemberIndex, PeerState>,
    by_peer: HashMap<PeerId, MemberIndex>,
    key_share: std::path::PathBuf,
    passphrase: Option<keyfile::Passphrase>,
    recent: VecDeque<Decision>,
    rng: rand::rngs::OsRng,
    commands: mpsc::Receiver<Command>,
}

/// Runs a node until `shutdown` completes (SIGINT/SIGTERM in `accord run`; anything in tests).
///
/// # Errors
/// Start-up failures (roster, identity, key share, storage lock, ports) and storage failures
/// while running.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    // A write past RLIMIT_FSIZE must fail with EFBIG (and stop the node cleanly through the
    // storage error path), not kill the process with SIGXFSZ.
    if let Ok(mut xfsz) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
        nix::sys::signal::Signal::SIGXFSZ as i32,
    )) {
        tokio::spawn(async move {
            while xfsz.recv().await.is_some() {
                warn!("file size limit reached (SIGXFSZ)");
            }
        });
    }
    let net = load_roster(&config.roster)?;
    let identity = keyfile::read_key(&config.identity, config.passphrase.as_ref())?;
    let seed = identity.seed();
    // The same roster key signs this member's log checkpoints and its witness cosignatures (see
    // `accord_protocol::transparency` for the domain separation).
    let log_key = Arc::new(SecretKey::from_seed(&seed));
    let keypair = p2p::keypair_from_seed(&seed);
    let me = net
        .member_by_key(&identity.public())
        .ok_or(NodeError::NotAMember(identity.public()))?;
    let peer_id = keypair.public().to_peer_id();
    let listed = &net.roster().members[usize::from(me.0)].peer_id;
    if *listed != peer_id.to_string() {
        return Err(NodeError::PeerIdMismatch {
            listed: listed.clone(),
            derived: peer_id.to_string(),
        });
    }
    let store = Arc::new(Store::open(&config.data_dir, net.id())?);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let keys = load_key_share(&config)?;
    let operator = Arc::new(crate::auth::OperatorToken::load_or_create(
        &config.operator_token,
    )?);
    info!(path = %config.operator_token.display(), "operator token for the API's operator endpoints");
    let first_period = match store.meta("first_period")? {
        Some(b) if b.len() == 8 => Period(u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
        _ => {
            let p = net.schedule().period_at(now()).unwrap_or(Period(0));
            store.set_meta("first_period", &p.0.to_le_bytes())?;
            p
        }
    };
    let records = store.records()?;
    let last_ceremony = records
        .iter()
        .filter_map(|r| match r {
            Record::DkgStarted { ceremony } => Some(*ceremony),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    info!(
        member = %net.roster().members[usize::from(me.0)].name,
        index = me.0,
        %peer_id,
        records = records.len(),
        has_key = keys.is_some(),
        "starting accord node"
    );
    let engine = Engine::restore(
        net.clone(),
        me,
        identity,
        keys,
        EngineConfig {
            first_period,
            ..EngineConfig::default()
        },
        records,
    );

    let metrics = Arc::new(Metrics::new());
    let network_tag = p2p::network_tag(&net);
    let mut peers = BTreeMap::new();
    let mut by_peer = HashMap::new();
    for (i, m) in net.roster().members.iter().enumerate() {
        let member = MemberIndex(i as u16);
        let pid: PeerId = m.peer_id.parse().map_err(|e| NodeError::Roster {
            path: config.roster.display().to_string(),
            message: format!("member {} has an invalid peer id: {e}", m.name),
        })?;
        by_peer.insert(pid, member);
        if member == me {
            continue;
        }
        let addrs = m
            .addresses
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .collect();
        peers.insert(
            member,
            PeerState {
                member,
                name: m.name.clone(),
                addrs,
                connections: 0,
                dialing: false,
                backoff: BACKOFF_MIN,
                next_dial: tokio::time::Instant::now(),
            },
        );
    }
    let allowed: Vec<PeerId> = by_peer.keys().copied().collect();
    let n = net.n();
    if p2p::is_quic(&config.listen) && !p2p::QUIC {
        return Err(NodeError::Network(format!(
            "{} needs the QUIC transport, which this build lacks: rebuild with `--features quic`",
            config.listen
        )));
    }
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| NodeError::Network(e.to_string()))?;
    // QUIC authenticates the same libp2p identity (TLS), so the allow-list works unchanged.
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let mut swarm = builder
        .with_behaviour(|key| {
            p2p::behaviour(key, &network_tag, allowed, n)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| NodeError::Network(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topic = p2p::gossip_topic(&network_tag);
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NodeError::Network(e.to_string()))?;
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| NodeError::Network(format!("listen on {}: {e}", config.listen)))?;

    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let handle = Handle {
        commands: tx,
        store: store.clone(),
        metrics: metrics.clone(),
        net: net.clone(),
        me,
        log_key: log_key.clone(),
        operator,
    };
    let listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|source| NodeError::Api {
            addr: config.api,
            source,
        })?;
    let api_addr = listener.local_addr().map_err(|source| NodeError::Api {
        addr: config.api,
        source,
    })?;
    let _ = std::fs::write(config.data_dir.join("api.addr"), api_addr.to_string());
    info!(%api_addr, "HTTP API listening");
    let (api_stop_tx, api_stop_rx) = oneshot::channel::<()>();
    let api_task = tokio::spawn(crate::api::serve(listener, handle, async move {
        let _ = api_stop_rx.await;
    }));

    let mut witnesses = BTreeMap::new();
    for (w, c) in crate::store::witness::cosignatures(&store.read()?)? {
        witnesses.insert(
            MemberIndex(w),
            WitnessPeer {
                held: c.size,
                cosigned: Some((c.size, c.root)),
                ..WitnessPeer::default()
            },
        );
    }
    let mut event_loop = EventLoop {
        last_ceremony,
        log_keys: accord_protocol::transparency::LogKey::all(&net),
        log_key,
        witnesses,
        witness_advanced: BTreeMap::new(),
        failpoint: Failpoint::from_env(),
        crash_at: None,
        swarm,
        engine,
        net,
        me,
        peer_id,
        store,
        metrics,
        topic,
        peers,
        by_peer,
        key_share: config.key_share.clone(),
        passphrase: config.passphrase.clone(),
        recent: VecDeque::new(),
        rng: rand::rngs::OsRng,
        commands: rx,
    };
    let result = event_loop.run(shutdown).await;
    let _ = api_stop_tx.send(());
    let _ = api_task.await;
    match &result {
        Ok(()) => info!("node stopped"),
        Err(e) => tracing::error!(error = %e, "node stopped on error"),
    }
    result
}

fn load_key_share(config: &NodeConfig) -> Result<Option<KeyMaterial>, NodeError> {
    if !config.key_share.exists() {
        return Ok(None);
    }
    let bytes = keyfile::read_secret(&config.key_share, config.passphrase.as_ref())?;
    let keys = codec::decode::<KeyMaterial>(&bytes, MAX_MESSAGE_BYTES).map_err(|e| {
        NodeError::KeyShare {
            path: config.key_share.display().to_string(),
            message: e.to_string(),
        }
    })?;
    Ok(Some(keys))
}

async fn crash_timer(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl EventLoop {
    async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        let mut redial = tokio::time::interval(Duration::from_millis(250));
        let mut witness = tokio::time::interval(WITNESS_INTERVAL);
        witness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_deadline: Option<Instant> = None;
        loop {
            let deadline = self.engine.poll_timeout();
            let mut wait = deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(now())
                    .min(Duration::from_secs(1))
            });
            // Never spin if the engine keeps asking for the same past deadline.
            if deadline.is_some() && deadline == last_deadline {
                wait = wait.max(Duration::from_millis(20));
            }
            let timer = tokio::time::sleep(wait);
            tokio::select! {
                () = &mut shutdown => {
                    info!("shutdown requested");
                    return Ok(());
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event)?,
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c)?,
                    None => return Ok(()),
                },
                () = crash_timer(self.crash_at) => {
                    tracing::error!("failpoint: SIGKILL now");
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
                }
                () = timer => {
                    last_deadline = deadline;
                    let t = now();
                    self.engine.handle_timeout(t, &mut self.rng);
                    self.drain()?;
                }
                _ = redial.tick() => self.redial(),
                _ = witness.tick() => {
                    self.push_checkpoint();
                    let _ = self.gossip_scores();
                }
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Engine outputs

    /// Performs the engine's outputs in order (see the module doc).
    fn drain(&mut self) -> Result<(), NodeError> {
        let mut records: Vec<Record> = Vec::new();
        let mut statements: Vec<StoredStatement> = Vec::new();
        while let Some(output) = self.engine.poll_output() {
            match output {
                Output::Persist(record) => {
                    if let (Record::CoSigned(c), Some(group_key)) =
                        (&record, self.engine.group_key())
                    {
                        statements.extend(
                            c.export(self.net.id())
                                .into_iter()
                                .map(|signed| StoredStatement { group_key, signed }),
                        );
                    }
                    records.push(record);
                }
                Output::Snapshot(snapshot) => {
                    self.flush(&mut records, &mut statements)?;
                    if let Err(e) = self.store.compact(&snapshot) {
                        tracing::error!(error = %e, "record log compaction failed; stopping before anything else leaves");
                        return Err(e.into());
                    }
                    debug!(records = snapshot.len(), "record log compacted");
                }
                Output::StoreKey(key) => {
                    self.flush(&mut records, &mut statements)?;
                    let bytes = zeroize::Zeroizing::new(codec::encode(&*key).map_err(|e| {
                        NodeError::KeyShare {
                            path: self.key_share.display().to_string(),
                            message: e.to_string(),
                        }
                    })?);
                    keyfile::write_secret(&self.key_share, &bytes, self.passphrase.as_ref(), true)?;
                    info!(path = %self.key_share.display(), "key share stored");
                }
                Output::Send { to, message } => {
                    self.flush(&mut records, &mut statements)?;
                    if let Message::Accept(a) = &message {
                        debug!(
                            proposal = ?a.id,
                            commitment = %a.commitments.digest("accord/commitment/v1"),
                            "accept sent with a fresh nonce commitment"
                        );
                        if self.failpoint == Failpoint::CrashAfterAccept && self.crash_at.is_none()
                        {
                            self.crash_at =
                                Some(tokio::time::Instant::now() + Duration::from_millis(300));
                        }
                    }
                    self.send(to, message);
                }
                Output::Broadcast(message) => {
                    self.flush(&mut records, &mut statements)?;
                    self.broadcast(message);
                }
                Output::Event(e) => self.on_engine_event(e),
            }
        }
        self.flush(&mut records, &mut statements)
    }

    fn flush(
        &mut self,
        records: &mut Vec<Record>,
        statements: &mut Vec<StoredStatement>,
    ) -> Result<(), NodeError> {
        if records.is_empty() && statements.is_empty() {
            return Ok(());
        }
        match self.store.commit(records, statements) {
            Ok(stored) if stored.len() < statements.len() => {
                debug!(
                    offered = statements.len(),
                    stored = stored.len(),
                    "co-signed statements not stored: the held ones are supersets"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "storage commit failed; stopping before anything else leaves");
                return Err(e.into());
            }
        }
        records.clear();
        statements.clear();
        Ok(())
    }

    fn send(&mut self, to: MemberIndex, message: Message) {
        let Some(peer) = self.peers.get(&to) else {
            return;
        };
        let kind = message.kind();
        if peer.connections == 0 {
            debug!(to = %peer.name, kind, "not connected; direct message dropped");
            self.metrics.inc_rejected("outbound-not-connected");
            return;
        }
        let Some(pid) = self.peer_of(to) else {
            return;
        };
        self.swarm
            .behaviour_mut()
            .direct
            .send_request(&pid, message);
        self.metrics.inc_out(kind);
    }

    fn broadcast(&mut self, message: Message) {
        let kind = message.kind();
        let bytes = match message.encode() {
            Ok(b) => b,
            Err(e) => {
                warn!(kind, error = %e, "cannot encode a broadcast");
                return;
            }
        };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
        {
            Ok(_) => self.metrics.inc_out(kind),
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                debug!(kind, error = %e, "broadcast not published");
                self.metrics.inc_rejected("outbound-publish-failed");
            }
        }
    }

    fn peer_of(&self, m: MemberIndex) -> Option<PeerId> {
        self.by_peer.iter().find(|(_, v)| **v == m).map(|(k, _)| *k)
    }

    fn name_of(&self, m: MemberIndex) -> &str {
        self.net
            .roster()
            .members
            .get(usize::from(m.0))
            .map_or("?", |x| x.name.as_str())
    }

    fn on_engine_event(&mut self, e: Event) {
        match e {
            Event::Admitted { digest, period, .. } => {
                debug!(%digest, period = period.0, "evidence admitted");
            }
            Event::Observed { period, items } => {
                info!(
                    period = period.0,
                    items, "period closed; observation signed"
                );
            }
            Event::Proposed { id } => debug!(?id, "proposed"),
            Event::SessionStarted { id, session, .. } => {
                debug!(?id, session, "signing session started");
                self.metrics.signing_sessions.inc();
            }
            Event::Decided(c) => {
                let period = c.unit.period();
                let close = self.net.schedule().close(period);
                let latency = now().saturating_duration_since(close);
                self.metrics
                    .close_to_cosigned
                    .observe(latency.as_secs_f64());
                let mut verdicts = BTreeMap::new();
                for s in &c.statements {
                    self.metrics
                        .verdicts
                        .get_or_create(&crate::metrics::KindLabel {
                            kind: s.verdict.kind().into(),
                        })
                        .inc();
                    verdicts.insert(s.slot.lab.clone(), s.verdict.kind().to_string());
                }
                info!(
                    period = period.0,
                    statements = c.statements.len(),
                    close_to_cosigned_ms = latency.as_millis() as u64,
                    "co-signed"
                );
                self.recent.push_back(Decision {
                    period: period.0,
                    verdicts,
                    close_to_cosigned_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                });
                while self.recent.len() > RECENT_DECISIONS {
                    self.recent.pop_front();
                }
            }
            Event::Conflict(c) => {
                tracing::error!(
                    period = c.unit.period().0,
                    "a validly co-signed unit conflicts with the one held: more than f members are faulty"
                );
                self.metrics.inc_rejected("conflicting-cosigned");
            }
            Event::Culprit { member, offence } => {
                warn!(member = %self.name_of(member), %offence, "member misbehaved");
                self.metrics
                    .culprits
                    .get_or_create(&ReasonLabel {
                        reason: offence.code().into(),
                    })
                    .inc();
            }
            Event::Refused { from, reason } => {
                info!(from = %self.name_of(from), %reason, "refused");
            }
            Event::DkgStarted { ceremony } => {
                self.last_ceremony = self.last_ceremony.max(ceremony);
                info!(ceremony, "DKG ceremony started");
            }
            Event::DkgComplete { group_key } => {
                info!(%group_key, "DKG complete: group key confirmed")
            }
            Event::DkgAborted(f) => {
                let culprits: Vec<String> = f
                    .culprits
                    .iter()
                    .map(|(m, o)| format!("{}: {o}", self.name_of(*m)))
                    .collect();
                warn!(ceremony = f.ceremony, ?culprits, "DKG ceremony aborted");
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Network events

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Result<(), NodeError> {
        self.metrics.libp2p.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => {
                self.metrics.libp2p.record(&e);
                self.on_gossip(e)?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Direct(e)) => self.on_direct(e)?,
            SwarmEvent::Behaviour(BehaviourEvent::Witness(e)) => self.on_witness(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.metrics.libp2p.record(&e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.metrics.libp2p.record(&e),
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, peer_id = %self.peer_id, "p2p listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                let Some(&member) = self.by_peer.get(&peer_id) else {
                    return Ok(());
                };
                if let Some(p) = self.peers.get_mut(&member) {
                    p.connections = num_established.get() as usize;
                    p.dialing = false;
                    p.backoff = BACKOFF_MIN;
                    if num_established.get() == 1 {
                        info!(member = %p.name, "connected");
                        self.update_peer_gauge();
                        // Catch up on anything decided while we were apart.
                        self.engine.peer_connected(member);
                        self.drain()?;
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                if let Some(member) = self.by_peer.get(&peer_id).copied() {
                    if let Some(p) = self.peers.get_mut(&member) {
                        p.connections = num_established as usize;
                        if num_established == 0 {
                            info!(member = %p.name, cause = ?cause.map(|c| c.to_string()), "disconnected");
                            p.next_dial = tokio::time::Instant::now() + jittered(p.backoff);
                        }
                    }
                    self.update_peer_gauge();
                }
            }
            SwarmEvent::IncomingConnectionError {
                error,
                peer_id,
                send_back_addr,
                ..
            } => {
                let reason = match &error {
                    ListenError::Denied { .. } => "denied",
                    _ => "failed",
                };
                if matches!(error, ListenError::Denied { .. }) {
                    warn!(
                        peer = ?peer_id.map(|p| p.to_string()),
                        from = %send_back_addr,
                        error = %error,
                        "refused an incoming connection (not in the roster or over a limit)"
                    );
                } else {
                    debug!(from = %send_back_addr, error = %error, "incoming connection failed");
                }
                self.metrics
                    .connections_refused
                    .get_or_create(&ReasonLabel {
                        reason: reason.into(),
                    })
                    .inc();
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let Some(p) = peer_id
                    .and_then(|p| self.by_peer.get(&p).copied())
                    .and_then(|m| self.peers.get_mut(&m))
                {
                    p.dialing = false;
                    p.next_dial = tokio::time::Instant::now() + jittered(p.backoff);
                    p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
                    debug!(member = %p.name, error = %error, "dial failed");
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn update_peer_gauge(&self) {
        let n = self.peers.values().filter(|p| p.connections > 0).count();
        self.metrics.peers_connected.set(n as i64);
    }

    fn redial(&mut self) {
        let now = tokio::time::Instant::now();
        let due: Vec<MemberIndex> = self
            .peers
            .values()
            .filter(|p| {
                p.connections == 0 && !p.dialing && p.next_dial <= now && !p.addrs.is_empty()
            })
            .map(|p| p.member)
            .collect();
        for m in due {
            let Some(pid) = self.peer_of(m) else { continue };
            let Some(p) = self.peers.get_mut(&m) else {
                continue;
            };
            // A fresh source port: reusing the listen port (libp2p's default) turns two members
            // dialing each other at the same moment (both restarting, a partition healing) into
            // one TCP simultaneous open where both sides are the Noise initiator, which fails,
            // and their retries stay in step. Members have roster addresses; nothing here needs
            // the port reuse that NAT traversal relies on.
            let opts = DialOpts::peer_id(pid)
                .addresses(p.addrs.clone())
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build();
            p.dialing = true;
            p.next_dial = now + jittered(p.backoff);
            if let Err(e) = self.swarm.dial(opts) {
                p.dialing = false;
                p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
                debug!(member = %p.name, error = %e, "dial not started");
            }
        }
    }

    fn on_gossip(&mut self, e: gossipsub::Event) -> Result<(), NodeError> {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = e
        else {
            return Ok(());
        };
        let acceptance = self.judge_gossip(&message)?;
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
        Ok(())
    }

    /// The engine's verdict on a gossip message, from its signed source (its author).
    fn judge_gossip(
        &mut self,
        message: &gossipsub::Message,
    ) -> Result<gossipsub::MessageAcceptance, NodeError> {
        use gossipsub::MessageAcceptance as A;
        let Some(from) = message.source.and_then(|s| self.by_peer.get(&s).copied()) else {
            warn!(source = ?message.source, "gossip from a peer outside the roster rejected");
            self.metrics.inc_rejected("not-a-member");
            return Ok(A::Reject);
        };
        let decoded = match Message::decode(&message.data, MAX_MESSAGE_BYTES) {
            Ok(m) => m,
            Err(e) => {
                debug!(from = %self.name_of(from), error = %e, "undecodable gossip");
                self.metrics.inc_rejected("decode");
                return Ok(A::Reject);
            }
        };
        if !decoded.is_gossip() {
            self.metrics.inc_rejected("direct-kind-over-gossip");
            return Ok(A::Reject);
        }
        self.metrics.inc_in(decoded.kind());
        let delivery = self
            .engine
            .handle_message(now(), from, decoded, &mut self.rng);
        self.drain()?;
        Ok(match delivery {
            Delivery::Accepted => A::Accept,
            Delivery::Duplicate | Delivery::Ignored => A::Ignore,
            Delivery::Rejected(reason) => {
                debug!(from = %self.name_of(from), %reason, "gossip rejected");
                self.metrics.inc_rejected(reason.code());
                // Only a sender at fault is scored down; "cannot help" is not its doing.
                if reason.is_misbehaviour() {
                    A::Reject
                } else {
                    A::Ignore
                }
            }
        })
    }

    fn on_direct(&mut self, e: request_response::Event<Message, Ack>) -> Result<(), NodeError> {
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The authenticated connection names the sender, never the body.
                let Some(&from) = self.by_peer.get(&peer) else {
                    self.metrics.inc_rejected("not-a-member");
                    return Ok(());
                };
                if self.crash_at.is_some() && matches!(request, Message::SignRequest(_)) {
                    debug!("failpoint: signing request ignored before the crash");
                    return Ok(());
                }
                self.metrics.inc_in(request.kind());
                let delivery = self
                    .engine
                    .handle_message(now(), from, request, &mut self.rng);
                self.drain()?;
                if let Delivery::Rejected(reason) = &delivery {
                    debug!(from = %self.name_of(from), %reason, "direct message rejected");
                    self.metrics.inc_rejected(reason.code());
                }
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, Ack);
            }
            request_response::Event::Message { .. }
            | request_response::Event::ResponseSent { .. } => {}
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound direct message failed");
                self.metrics.inc_rejected("inbound-failure");
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "outbound direct message failed");
                self.metrics.inc_rejected("outbound-failure");
            }
        }
        Ok(())
    }

    // -------------------------------------------------------------------------------------
    // Transparency log witnessing

    /// Offers the log's current checkpoint, with a consistency proof, to every connected witness
    /// that has not cosigned it.
    fn push_checkpoint(&mut self) {
        let head = self.store.read().and_then(|rx| {
            let (size, root) = crate::store::log::head(&rx)?;
            Ok((rx, size, root))
        });
        let (rx, size, root) = match head {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "cannot read the transparency log");
                return;
            }
        };
        if size == 0 {
            return;
        }
        let note = accord_protocol::transparency::sign_checkpoint(
            self.net.id(),
            self.me,
            &self.log_key,
            size,
            &root,
        );
        let now = tokio::time::Instant::now();
        let connected: Vec<MemberIndex> = self
            .peers
            .values()
            .filter(|p| p.connections > 0)
            .map(|p| p.member)
            .collect();
        for m in connected {
            let Some(pid) = self.peer_of(m) else { continue };
            let w = self.witnesses.entry(m).or_default();
            let fresh = w.cosigned == Some((size, root))
                && w.cosigned_at.is_some_and(|t| now < t + WITNESS_REFRESH);
            if w.in_flight.is_some() || fresh || w.next_try.is_some_and(|t| t > now) {
                continue;
            }
            // A witness holding more than we have means our log shrank: send anyway, and let it
            // refuse (and record the fork) rather than hide it.
            let proof = if w.held <= size {
                match crate::store::log::consistency(&rx, w.held, size) {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(error = %e, "cannot prove the log's consistency");
                        continue;
                    }
                }
            } else {
                Vec::new()
            };
            let id = self.swarm.behaviour_mut().witness.send_request(
                &pid,
                accord_protocol::transparency::AddCheckpoint {
                    old_size: w.held,
                    proof,
                    checkpoint: note.clone(),
                },
            );
            w.in_flight = Some((id, size, root, note.clone()));
        }
    }

    fn on_witness(
        &mut self,
        e: request_response::Event<
            accord_protocol::transparency::AddCheckpoint,
            accord_protocol::transparency::WitnessReply,
        >,
    ) {
        use accord_protocol::transparency::WitnessReply;
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The authenticated connection names the log's member, never the body.
                let Some(&from) = self.by_peer.get(&peer) else {
                    return;
                };
                let reply = self.witness(from, &request);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .witness
                    .send_response(channel, reply);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(&from) = self.by_peer.get(&peer) else {
                    return;
                };
                let name = self.name_of(from).to_string();
                let Some(w) = self.witnesses.get_mut(&from) else {
                    return;
                };
                let Some((id, size, root, note)) = w.in_flight.take() else {
                    return;
                };
                if id != request_id {
                    return;
                }
                match response {
                    WitnessReply::Cosigned(line) => {
                        // Keep the line only if it is a valid cosignature by that witness.
                        let valid = accord_protocol::transparency::add_cosignatures(
                            &note,
                            std::slice::from_ref(&line),
                        )
                        .and_then(|n| {
                            accord_protocol::transparency::verify_checkpoint(
                                n.as_bytes(),
                                &self.log_keys,
                            )
                        })
                        .is_ok_and(|cp| cp.cosigners.iter().any(|(m, _)| *m == from));
                        if !valid {
                            warn!(witness = %name, "invalid cosignature ignored");
                            w.next_try = Some(tokio::time::Instant::now() + WITNESS_RETRY);
                            return;
                        }
                        let c = crate::store::witness::Cosignature { size, root, line };
                        if let Err(e) = self.store.set_cosignature(from.0, &c) {
                            warn!(error = %e, "cannot store a cosignature");
                            return;
                        }
                        debug!(witness = %name, size, "checkpoint cosigned");
                        w.held = size;
                        w.cosigned = Some((size, root));
                        w.cosigned_at = Some(tokio::time::Instant::now());
                    }
                    WitnessReply::Conflict { size: held } => {
                        debug!(witness = %name, held, "witness holds another size; retrying");
                        w.held = held;
                    }
                    WitnessReply::Refused(reason) => {
                        warn!(witness = %name, %reason, "witness refused our checkpoint");
                        w.next_try = Some(tokio::time::Instant::now() + WITNESS_RETRY);
                    }
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "witness request failed");
                if let Some(w) = self
                    .by_peer
                    .get(&peer)
                    .and_then(|m| self.witnesses.get_mut(m))
                {
                    w.in_flight = None;
                    w.next_try = Some(tokio::time::Instant::now() + WITNESS_RETRY);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "inbound witness request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// The witness side (C2SP tlog-witness): check the checkpoint of `from`'s log against what we
    /// hold, persist the new state, and only then cosign.
    fn witness(
        &mut self,
        from: MemberIndex,
        request: &accord_protocol::transparency::AddCheckpoint,
    ) -> accord_protocol::transparency::WitnessReply {
        use accord_protocol::transparency::{WitnessRefusal, WitnessReply, cosign, witness_check};
        if from == self.me {
            return WitnessReply::Refused("a log does not witness itself".into());
        }
        let held = match self.store.witnessed(from.0) {
            Ok(h) => h,
            Err(e) => return WitnessReply::Refused(format!("witness storage: {e}")),
        };
        match witness_check(&self.log_keys, from, request, held.as_ref()) {
            Ok((cp, state)) => {
                // The same checkpoint again (a refresh) needs nothing new on disk; a newer one
                // is persisted before it is cosigned, at most once per WITNESS_MIN_ADVANCE per
                // log, so a member offering new checkpoints in a loop cannot make this node
                // fsync in a loop.
                let unchanged = held
                    .as_ref()
                    .is_some_and(|h| h.size == state.size && h.root == state.root);
                if !unchanged {
                    let now = tokio::time::Instant::now();
                    if self
                        .witness_advanced
                        .get(&from)
                        .is_some_and(|t| now < *t + WITNESS_MIN_ADVANCE)
                    {
                        self.metrics.inc_rejected("witness-too-soon");
                        return WitnessReply::Refused(
                            "a newer checkpoint of this log came too soon; retry later".into(),
                        );
                    }
                    if let Err(e) = self.store.set_witnessed(from.0, &state) {
                        return WitnessReply::Refused(format!("witness storage: {e}"));
                    }
                    self.witness_advanced.insert(from, now);
                }
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                WitnessReply::Cosigned(cosign(
                    self.net.id(),
                    self.me,
                    &self.log_key,
                    &cp.text,
                    secs,
                ))
            }
            Err(WitnessRefusal::OldSize { held, .. }) => WitnessReply::Conflict { size: held },
            Err(e @ WitnessRefusal::Fork { .. }) => {
                tracing::error!(log = %self.name_of(from), error = %e, "a member's transparency log forked: keeping the conflicting checkpoint as evidence");
                self.metrics.inc_rejected("witness-fork");
                if let Err(err) = self.store.set_fork(from.0, &request.checkpoint) {
                    warn!(error = %err, "cannot store the fork evidence");
                }
                WitnessReply::Refused(e.to_string())
            }
            Err(e) => {
                self.metrics.inc_rejected("witness-refused");
                WitnessReply::Refused(e.to_string())
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Commands

    fn on_command(&mut self, command: Command) -> Result<(), NodeError> {
        match command {
            Command::Submit { evidence, reply } => {
                let period = evidence.period().0;
                let lab = evidence.lab().to_string();
                let digest = evidence.digest();
                let known = self.engine.evidence(&digest).is_some();
                let result = self.engine.submit(now(), *evidence);
                // Perform the outputs (the Persist first) before acknowledging.
                let drained = self.drain();
                let answer = match (result, &drained) {
                    (Ok(digest), Ok(())) => {
                        self.metrics
                            .submissions
                            .get_or_create(&ReasonLabel {
                                reason: if known { "duplicate" } else { "accepted" }.into(),
                            })
                            .inc();
                        Ok(Receipt {
                            digest,
                            period,
                            lab,
                            duplicate: known,
                        })
                    }
                    (Ok(_), Err(e)) => Err(SubmitError::Storage(e.to_string())),
                    (Err(e), _) => {
                        self.metrics
                            .submissions
                            .get_or_create(&ReasonLabel {
                                reason: "refused".into(),
                            })
                            .inc();
                        Err(SubmitError::Evidence(e))
                    }
                };
                let _ = reply.send(answer);
                drained
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
                Ok(())
            }
            Command::StartDkg { ceremony, reply } => {
                // Members join a ceremony only a little ahead of the last one they saw.
                let ceremony = ceremony.unwrap_or(self.last_ceremony.saturating_add(1));
                let result = self.engine.start_dkg(now(), ceremony, &mut self.rng);
                let drained = self.drain();
                let answer = match (result, &drained) {
                    (Ok(()), Ok(())) => Ok(ceremony),
                    (Ok(()), Err(e)) => Err(DkgCommandError::Storage(e.to_string())),
                    (Err(e), _) => Err(e.into()),
                };
                let _ = reply.send(answer);
                drained
            }
        }
    }

    /// The gossipsub score of each connected member, by name; also exported as a metric.
    fn gossip_scores(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for p in self.peers.values().filter(|p| p.connections > 0) {
            let Some(pid) = self.peer_of(p.member) else {
                continue;
            };
            if let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&pid) {
                self.metrics
                    .gossip_score
                    .get_or_create(&crate::metrics::MemberLabel {
                        member: p.name.clone(),
                    })
                    .set(score);
                out.insert(p.name.clone(), score);
            }
        }
        out
    }

    fn status(&mut self) -> StatusReport {
        let s = self.engine.status();
        let connected: Vec<String> = self
            .peers
            .values()
            .filter(|p| p.connections > 0)
            .map(|p| p.name.clone())
            .collect();
        let reachable = connected.len() + 1;
        let t = self.net.t();
        let topic = self.topic.hash();
        let gossip_peers = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&topic))
            .count();
        let gossip_scores = self.gossip_scores();
        let reason = if s.group_key.is_none() {
            Some(match &s.dkg_phase {
                Some(phase) => format!("no group key yet: DKG in progress ({phase})"),
                None => "no group key yet: run the DKG (accord dkg)".to_string(),
            })
        } else if reachable < t {
            Some(format!(
                "fewer than t members reachable: {reachable} of {} (this node included), t = {t}",
                self.net.n()
            ))
        } else {
            None
        };
        let member = &self.net.roster().members[usize::from(self.me.0)];
        StatusReport {
            member: member.name.clone(),
            index: self.me.0,
            peer_id: self.peer_id.to_string(),
            network: self.net.roster().name.clone(),
            network_id: *self.net.id(),
            members: self.net.n(),
            threshold: t,
            connected,
            reachable,
            gossip_peers,
            gossip_scores,
            group_key: s.group_key,
            dkg_phase: s.dkg_phase,
            current_period: self.net.schedule().period_at(now()).map(|p| p.0),
            next_close: s.next_close.0,
            pending_units: s.pending_units,
            decided_units: s.decided_units,
            evidence_items: s.evidence_items,
            ready: reason.is_none(),
            reason,
            recent: self.recent.iter().cloned().collect(),
        }
    }
}
