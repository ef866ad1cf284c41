//! The HTTP API's JSON bodies (`docs/api.md`), shared by the node that serves them and the
//! [`crate::client`] that reads them.
//!
//! These types are the wire contract: a field renamed or reordered here changes what every
//! client sees. The co-signed statement itself is [`crate::export::StatementExport`].

use std::collections::BTreeMap;

use accord_protocol::crypto::{Digest, PublicKey};
use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": code, "message": text}`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// A submission's receipt (`POST /v1/evidence`, `/v1/attestations`, `/v1/reports`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The evidence digest (its content hash).
    pub digest: Digest,
    /// The slot's period.
    pub period: u64,
    /// The slot's lab.
    pub lab: String,
    /// Whether the node already had it.
    pub duplicate: bool,
}

/// One co-signed unit as seen by one member (in [`StatusReport::recent`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// The period.
    pub period: u64,
    /// Verdict kind per lab.
    pub verdicts: BTreeMap<String, String>,
    /// Milliseconds from the slot close to the moment this member held the co-signed unit.
    pub close_to_cosigned_ms: u64,
}

/// A snapshot of the node (`GET /v1/status`; `/readyz` answers from it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReport {
    /// This member's name.
    pub member: String,
    /// Its roster index.
    pub index: u16,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The network name.
    pub network: String,
    /// The network id.
    pub network_id: Digest,
    /// n.
    pub members: usize,
    /// t.
    pub threshold: usize,
    /// Names of the members connected now.
    pub connected: Vec<String>,
    /// Members reachable, this one included.
    pub reachable: usize,
    /// Peers subscribed to the network's gossip topic.
    pub gossip_peers: usize,
    /// This member's gossipsub score of each connected member (below -80 it is graylisted:
    /// its gossip is ignored).
    #[serde(default)]
    pub gossip_scores: BTreeMap<String, f64>,
    /// The group key, once the key is confirmed.
    pub group_key: Option<PublicKey>,
    /// The DKG phase, while a ceremony runs here.
    pub dkg_phase: Option<String>,
    /// The period in progress by this node's clock.
    pub current_period: Option<u64>,
    /// The next period whose slots this member will close.
    pub next_close: u64,
    /// Closed units still without a co-signed statement.
    pub pending_units: usize,
    /// Co-signed units held in memory.
    pub decided_units: usize,
    /// Evidence items held in memory.
    pub evidence_items: usize,
    /// Whether the node can take part in signing.
    pub ready: bool,
    /// Why not, when not ready.
    pub reason: Option<String>,
    /// The latest co-signed units, newest last.
    pub recent: Vec<Decision>,
    /// Fsynced storage transactions since the node started (group commits of records, and
    /// compactions): what durability costs per verdict.
    #[serde(default)]
    pub store_commits: u64,
}

/// Body of `POST /v1/dkg`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DkgRequest {
    /// The ceremony number; default: one more than the last ceremony this member saw.
    pub ceremony: Option<u32>,
}

/// Answer of `POST /v1/dkg`: `{"ceremony": n}`.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DkgStarted {
    /// The ceremony started.
    pub ceremony: u32,
}

/// Body of `POST /v1/refresh`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh ceremony number; default: one more than the last refresh this member
    /// started or joined.
    pub ceremony: Option<u32>,
}

/// Answer of `POST /v1/refresh`: `{"ceremony": n}`.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshStarted {
    /// The refresh ceremony started.
    pub ceremony: u32,
}

/// Body of `POST /v1/refresh/abort`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshAbortRequest {
    /// Drop a refreshed share that awaits its confirmations. Safe only once the ceremony is
    /// known to have aborted at every member: if the others switched to their refreshed
    /// shares, this member is left with a stale share and needs a repair.
    #[serde(default)]
    pub abandon_pending: bool,
}

/// What `POST /v1/refresh/abort` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RefreshAbortOutcome {
    /// The running ceremony ended here and this member's signed withdrawal went to every
    /// member: the ceremony completes nowhere and every member keeps its current share.
    Withdrew,
    /// The refreshed share awaiting confirmations was dropped; the current share stays in use.
    Abandoned,
}

/// Answer of `POST /v1/refresh/abort`.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshAborted {
    /// The ceremony aborted.
    pub ceremony: u32,
    /// What was done.
    pub outcome: RefreshAbortOutcome,
}

/// Body of `POST /v1/repair`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RepairRequestBody {
    /// Exactly t other members' roster indices; default: the t lowest-numbered other members.
    pub helpers: Option<Vec<u16>>,
}

/// Answer of `POST /v1/repair`.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepairStarted {
    /// The helpers the signed request went to.
    pub helpers: Vec<u16>,
}

/// Which key ceremony.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum CeremonyKind {
    /// Distributed key generation.
    Dkg,
    /// Proactive share refresh.
    Refresh,
    /// This member's share repair.
    Repair,
}

/// A key ceremony in progress at one member.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunningCeremony {
    /// Which ceremony.
    pub kind: CeremonyKind,
    /// Its number (a repair has none).
    pub ceremony: Option<u32>,
    /// Its phase: `round1`, `echo`, `round2`, `confirm` (DKG, refresh) or `asking` (repair).
    pub phase: String,
    /// A repair's helpers (empty otherwise).
    #[serde(default)]
    pub helpers: Vec<u16>,
    /// The helpers that answered a repair so far (empty otherwise).
    #[serde(default)]
    pub answered: Vec<u16>,
}

/// `GET /v1/ceremony`: this member's key ceremonies and key share.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CeremonyStatus {
    /// Ceremonies in progress here.
    pub running: Vec<RunningCeremony>,
    /// Whether this member holds a key share in use.
    pub key_share: bool,
    /// The group key of the share in use.
    pub group_key: Option<PublicKey>,
    /// Without a share: the group key this member's records name, which a repair must give
    /// back (`accord repair`).
    pub known_group_key: Option<PublicKey>,
    /// The highest DKG ceremony started or joined here.
    pub last_dkg: Option<u32>,
    /// The highest refresh ceremony started or joined here.
    pub last_refresh: Option<u32>,
    /// The last refresh completed here: its shares are in use.
    pub completed_refresh: Option<u32>,
    /// A refresh whose new share is stored here and awaits every member's confirmation (the
    /// current share stays in use meanwhile).
    pub pending_refresh: Option<u32>,
}

/// One log entry as served (`GET /v1/log/entries`).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    /// Leaf index.
    pub index: u64,
    /// The entry bytes, hex: a co-signed statement (`"accord/log-entry" ‖ 0 ‖ version ‖
    /// network id ‖ bincode`) or a co-signed succession (`"accord/log-succession" ‖ …`); see
    /// `accord_protocol::transparency::LogLeaf`.
    pub entry: String,
}

/// Answer of `GET /v1/log/lookup/{leaf_hash}`: `{"index": i}`.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeafIndex {
    /// The leaf's index in the log.
    pub index: u64,
}

/// An inclusion proof (`GET /v1/log/proof/inclusion`).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size.
    pub size: u64,
    /// RFC 9162 inclusion path, bottom up.
    pub proof: Vec<Digest>,
}

/// A consistency proof (`GET /v1/log/proof/consistency`).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    /// The old tree size.
    pub old: u64,
    /// The new tree size.
    pub size: u64,
    /// RFC 9162 consistency path.
    pub proof: Vec<Digest>,
}

/// One other member's log as a node witnessed it.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Witnessed {
    /// The log's member index.
    pub member: u16,
    /// The largest checkpoint this node cosigned for it (the log's signed note).
    pub checkpoint: String,
}

/// `GET /v1/witness`: what a node holds as a witness.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WitnessState {
    /// The latest checkpoint cosigned per log.
    pub witnessed: Vec<Witnessed>,
    /// Signed checkpoints that conflicted with what this node had cosigned (forks).
    pub forks: Vec<Witnessed>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_answers_keep_their_documented_shape() {
        // `docs/api.md`: these answers were built with `json!` before they had types.
        assert_eq!(
            serde_json::to_string(&DkgStarted { ceremony: 7 }).unwrap(),
            r#"{"ceremony":7}"#
        );
        assert_eq!(
            serde_json::to_string(&LeafIndex { index: 3 }).unwrap(),
            r#"{"index":3}"#
        );
    }
}

/// A succession named by its digest and first period.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessionRef {
    /// The succession's digest.
    pub succession: Digest,
    /// The first period the new epoch decides.
    pub first_period: u64,
}

/// `GET /v1/succession`: what this member knows of a membership change (`docs/protocol.md`
/// §22.7).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessionReport {
    /// For a successor epoch: the first period it decides.
    pub epoch_start: Option<u64>,
    /// The succession this member approved (its lock).
    pub approved: Option<SuccessionRef>,
    /// Whether this member released a share of it (it is bound to it then).
    pub bound: bool,
    /// Whether this member coordinates its co-signing.
    pub coordinating: bool,
    /// Successions coordinators offered that this member's operator has not approved.
    pub offered: Vec<SuccessionRef>,
    /// The co-signed succession of this epoch: it decides no period from its first on.
    pub handed_over: Option<crate::chain::LinkExport>,
    /// For a successor epoch: the co-signed succession that handed it its periods.
    pub adopted: Option<crate::chain::LinkExport>,
}

/// `POST /v1/succession/adopt`: the successor epoch holds its succession.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessionAdopted {
    /// The first period this epoch decides.
    pub first_period: u64,
    /// Epochs on the chain, the genesis included.
    pub epochs: usize,
}

/// `GET /v1/dkg/confirmations`: the roster and every member's signed confirmation of the key
/// ceremony that made this member's key (what a succession proposal carries, §22.7).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyConfirmations {
    /// The roster (JSON, as `accord` reads it).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub roster: accord_protocol::roster::Roster,
    /// One signed `Confirm` per member.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub confirmations: Vec<accord_protocol::dkg::DkgMessage>,
}
