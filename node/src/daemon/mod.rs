//! The daemon: a member's node, from start-up to shutdown.
//!
//! [`run`] reads the roster, the identity and the key share, opens the store, restores the
//! engine from its records, builds the swarm, starts the HTTP API (which reaches the node only
//! through a [`crate::handle::Handle`]) and runs the one event loop until `shutdown` completes.
//!
//! The parts, one concern each:
//! - `event_loop.rs`: the loop that owns the swarm and the engine, and the handles' commands;
//! - `effects.rs`: the engine's outputs performed in order, durable before anything leaves;
//! - `swarm.rs`: building the swarm, and its events (connections, gossip, direct messages);
//! - `peers.rs`: the other members as peers, and redialling them;
//! - `witness.rs`: the transparency-log witness protocol, both ways;
//! - `report.rs`: engine events as logs and metrics, and the status report;
//! - `ceremony.rs`: the operator's refresh, repair and ceremony-status commands;
//! - `failpoint.rs`: test-only fault injection;
//! - `error.rs`: [`NodeError`].

mod ceremony;
mod effects;
mod error;
mod event_loop;
mod failpoint;
mod peers;
mod report;
mod succession;
mod swarm;
mod witness;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::SecretKey;
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::engine::{Engine, EngineConfig, Record};
use accord_protocol::roster::Period;
use tokio::sync::oneshot;
use tracing::{info, warn};

pub use self::error::NodeError;
use self::event_loop::EventLoop;
use self::failpoint::Faults;
use self::peers::Peers;
use self::witness::Witnessing;
use crate::api;
use crate::auth::OperatorToken;
use crate::clock::now;
use crate::config::{NodeConfig, load_roster};
use crate::keyfile;
use crate::metrics::Metrics;
use crate::p2p;
use crate::store::Store;

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
    let keys = load_key_share(&config, &config.key_share)?;
    let pending = load_key_share(&config, &pending_key_path(&config.key_share))?;
    let operator = Arc::new(OperatorToken::load_or_create(&config.operator_token)?);
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
    let engine = Engine::restore_with_pending(
        net.clone(),
        me,
        identity,
        keys,
        pending,
        EngineConfig {
            first_period,
            refresh_every: config.refresh_every,
            epoch_start: config.epoch_start.map(Period),
            ..EngineConfig::default()
        },
        records,
    );
    if let Some(group_key) = engine.known_group_key() {
        // The key file is gone but the records show a completed DKG: the member starts (it
        // keeps its identity, its records and its place in the network) and waits for its
        // operator to have the share repaired; it never makes up key material.
        warn!(
            path = %config.key_share.display(),
            %group_key,
            "no key share; this member's records name the group key above: run `accord repair` to recover the share from t other members"
        );
    }

    let metrics = Arc::new(Metrics::new());
    let peers = Peers::from_roster(&net, me, &config.roster)?;
    let (swarm, topic) = swarm::build(
        keypair,
        &p2p::network_tag(&net),
        peers.allowed(),
        net.n(),
        &config.listen,
    )?;

    let (handle, commands) = crate::handle::channel();
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
    let context = api::Context {
        handle,
        store: store.clone(),
        metrics: metrics.clone(),
        net: net.clone(),
        me,
        log_key: log_key.clone(),
        operator,
    };
    let api_task = tokio::spawn(api::serve(listener, context, async move {
        let _ = api_stop_rx.await;
    }));

    let cosigned = crate::store::witness::cosignatures(&store.read()?)?;
    let mut event_loop = EventLoop {
        witnessing: Witnessing::new(net.clone(), me, log_key, cosigned),
        faults: Faults::from_env(),
        engine,
        swarm,
        store,
        metrics,
        net,
        me,
        peer_id,
        topic,
        peers,
        key_share: config.key_share.clone(),
        passphrase: config.passphrase.clone(),
        chain_file: config.data_dir.join(succession::CHAIN_FILE),
        last_ceremony,
        recent: VecDeque::new(),
        rng: rand::rngs::OsRng,
        commands,
        unsynced: effects::Unsynced::default(),
        adopting: None,
    };
    event_loop.log_held_successions()?;
    let result = event_loop.run(shutdown).await;
    let _ = api_stop_tx.send(());
    let _ = api_task.await;
    match &result {
        Ok(()) => info!("node stopped"),
        Err(e) => tracing::error!(error = %e, "node stopped on error"),
    }
    result
}

/// Where a refreshed share awaiting confirmation is kept, beside the key share
/// (`Output::StorePendingKey`).
pub(crate) fn pending_key_path(key_share: &std::path::Path) -> std::path::PathBuf {
    let mut name = key_share.as_os_str().to_owned();
    name.push(".pending");
    name.into()
}

fn load_key_share(
    config: &NodeConfig,
    path: &std::path::Path,
) -> Result<Option<KeyMaterial>, NodeError> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = keyfile::read_secret(path, config.passphrase.as_ref())?;
    let keys = codec::decode::<KeyMaterial>(&bytes, MAX_MESSAGE_BYTES).map_err(|e| {
        NodeError::KeyShare {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    })?;
    Ok(Some(keys))
}
