//! Prometheus metrics (`/metrics`): the node's own families plus libp2p's.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A label naming a message kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// A label naming a roster member.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabel {
    /// The member's roster name.
    pub member: String,
}

/// A label naming a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: String,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// libp2p's own metrics (swarm, gossipsub, identify, ping).
    pub libp2p: libp2p::metrics::Metrics,
    /// Roster members with an open connection.
    pub peers_connected: Gauge,
    /// Messages received, by kind.
    pub messages_in: Family<KindLabel, Counter>,
    /// Messages sent, by kind.
    pub messages_out: Family<KindLabel, Counter>,
    /// Messages rejected, by reason.
    pub messages_rejected: Family<ReasonLabel, Counter>,
    /// Connections refused (not in the roster, over a limit).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// Signing sessions this member started as coordinator.
    pub signing_sessions: Counter,
    /// Fsynced storage transactions: group commits of records (with the statements and log
    /// entries they carry) and compactions.
    pub store_commits: Counter,
    /// Co-signed statements, by verdict kind.
    pub verdicts: Family<KindLabel, Counter>,
    /// Seconds from slot close to the co-signed statement, as seen by this member.
    pub close_to_cosigned: Histogram,
    /// Submissions over the API, by result.
    pub submissions: Family<ReasonLabel, Counter>,
    /// Culprits named, by offence.
    pub culprits: Family<ReasonLabel, Counter>,
    /// This member's gossipsub score of each connected member.
    pub gossip_score: Family<MemberLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Entries in this member's transparency log (set when `/metrics` is read).
    pub log_size: Gauge,
    /// Per witness: entries of this member's log beyond the largest checkpoint it cosigned.
    pub witness_lag_entries: Family<MemberLabel, Gauge>,
    /// Per witness: seconds since its newest cosignature of this member's log.
    pub witness_cosignature_age: Family<MemberLabel, Gauge>,
    /// Other members' logs this member caught signing conflicting checkpoints.
    pub witness_forks: Gauge,
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("accord");
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let m = Self {
            registry: Mutex::new(Registry::default()),
            libp2p,
            peers_connected: Gauge::default(),
            messages_in: Family::default(),
            messages_out: Family::default(),
            messages_rejected: Family::default(),
            connections_refused: Family::default(),
            signing_sessions: Counter::default(),
            store_commits: Counter::default(),
            verdicts: Family::default(),
            close_to_cosigned: Histogram::new([
                0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            submissions: Family::default(),
            culprits: Family::default(),
            gossip_score: Family::default(),
            log_size: Gauge::default(),
            witness_lag_entries: Family::default(),
            witness_cosignature_age: Family::default(),
            witness_forks: Gauge::default(),
        };
        registry.register(
            "peers_connected",
            "Roster members with an open connection",
            m.peers_connected.clone(),
        );
        registry.register(
            "messages_in",
            "Protocol messages received, by kind",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Protocol messages sent, by kind",
            m.messages_out.clone(),
        );
        registry.register(
            "messages_rejected",
            "Protocol messages rejected, by reason",
            m.messages_rejected.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused, by reason",
            m.connections_refused.clone(),
        );
        registry.register(
            "signing_sessions",
            "FROST signing sessions started as coordinator",
            m.signing_sessions.clone(),
        );
        registry.register(
            "store_commits",
            "Fsynced storage transactions (group commits of records, and compactions)",
            m.store_commits.clone(),
        );
        registry.register(
            "verdicts",
            "Co-signed statements, by verdict kind",
            m.verdicts.clone(),
        );
        registry.register(
            "close_to_cosigned_seconds",
            "Time from slot close to the co-signed statement",
            m.close_to_cosigned.clone(),
        );
        registry.register(
            "submissions",
            "Evidence submissions over the API, by result",
            m.submissions.clone(),
        );
        registry.register(
            "culprits",
            "Misbehaving members named, by offence",
            m.culprits.clone(),
        );
        registry.register(
            "gossip_peer_score",
            "Gossipsub score of each connected member (below -80: graylisted)",
            m.gossip_score.clone(),
        );
        registry.register(
            "log_size",
            "Entries in this member's transparency log",
            m.log_size.clone(),
        );
        registry.register(
            "witness_lag_entries",
            "Entries of this member's log beyond the largest checkpoint each witness cosigned",
            m.witness_lag_entries.clone(),
        );
        registry.register(
            "witness_cosignature_age_seconds",
            "Seconds since each witness's newest cosignature of this member's log",
            m.witness_cosignature_age.clone(),
        );
        registry.register(
            "witness_forks",
            "Other members' logs caught signing conflicting checkpoints",
            m.witness_forks.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            ..m
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts a received message.
    pub fn inc_in(&self, kind: &str) {
        self.messages_in
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Counts a sent message.
    pub fn inc_out(&self, kind: &str) {
        self.messages_out
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Counts a rejected message.
    pub fn inc_rejected(&self, reason: &str) {
        self.messages_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
