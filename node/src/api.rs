//! The HTTP API (axum, JSON; loopback by default). Documented in `docs/api.md`.
//!
//! Bad input gets a 4xx with `{"error": code, "message": text}` and changes nothing. Bodies are
//! capped at [`MAX_BODY_BYTES`], requests in flight at [`MAX_IN_FLIGHT`] (more are shed with 503)
//! and every request at [`REQUEST_TIMEOUT`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use accord_protocol::crypto::{Digest, SecretKey, Signature};
use accord_protocol::evidence::{Attestation, Evidence, EvidenceError, InspectionReport};
use accord_protocol::roster::{MemberIndex, Network};
use accord_protocol::statement::TrustBundle;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use serde::Deserialize;
use tower::ServiceBuilder;

use accord_observer::export::StatementExport;
use accord_observer::wire::{
    ConsistencyProof, DkgRequest, DkgStarted, ErrorBody, InclusionProof, LeafIndex, LogEntry,
    Receipt, StatusReport, WitnessState, Witnessed,
};

use crate::auth::OperatorToken;
use crate::handle::{DkgCommandError, Handle, SubmitError, Unavailable};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::StoredStatement;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most requests handled at once; more are answered 503.
pub const MAX_IN_FLIGHT: usize = 64;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Most statements returned by one list request.
pub const MAX_LIST: usize = 1000;

/// An API error: an HTTP status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.into(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too-large"
        } else {
            "malformed-json"
        };
        Self::new(
            if status.is_client_error() {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            code,
            r.body_text(),
        )
    }
}

fn evidence_error(e: &EvidenceError) -> ApiError {
    let status = match e {
        EvidenceError::SlotFull(_) | EvidenceError::InspectorFull(_) => StatusCode::CONFLICT,
        EvidenceError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let code = e.code();
    let mut message = e.to_string();
    if matches!(e, EvidenceError::BadSignature(_)) {
        message.push_str(" (signed with another key, or for another network id?)");
    }
    ApiError::new(status, code, message)
}

/// What the handlers share: the way into the node, and what they read without it.
#[derive(Clone, Debug)]
pub struct Context {
    /// Requests to the node's event loop.
    pub handle: Handle,
    /// The database (for reads, on the blocking pool).
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
    pub operator: Arc<OperatorToken>,
}

/// Builds the router.
pub fn router(context: Context) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/evidence", post(submit_evidence))
        .route("/v1/evidence/{digest}", get(fetch_evidence))
        .route("/v1/attestations", post(submit_attestation))
        .route("/v1/reports", post(submit_report))
        .route("/v1/statements", get(list_statements))
        .route("/v1/statements/{period}/{lab}", get(fetch_statement))
        .route("/v1/trust-bundle", get(trust_bundle))
        .route("/v1/dkg", post(start_dkg))
        .route("/v1/log/checkpoint", get(log_checkpoint))
        .route("/v1/log/entries", get(log_entries))
        .route("/v1/log/proof/inclusion", get(log_inclusion))
        .route("/v1/log/proof/consistency", get(log_consistency))
        .route("/v1/log/lookup/{leaf_hash}", get(log_lookup))
        .route("/v1/witness", get(witness_state))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|e: BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "request timed out")
                    } else {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "overloaded",
                            "too many requests in flight; retry later",
                        )
                    }
                }))
                .load_shed()
                .concurrency_limit(MAX_IN_FLIGHT)
                .timeout(REQUEST_TIMEOUT),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    context: Context,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP API stopped");
    }
}

fn unavailable(e: Unavailable) -> ApiError {
    let code = match e {
        Unavailable::Busy => "busy",
        Unavailable::Stopping => "stopping",
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
}

async fn node_status(h: &Context) -> Result<StatusReport, ApiError> {
    h.handle.status().await.map_err(unavailable)
}

async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(h): State<Context>) -> Response {
    match node_status(&h).await {
        Ok(s) if s.ready => (
            StatusCode::OK,
            Json(serde_json::json!({"ready": true, "reachable": s.reachable, "threshold": s.threshold})),
        )
            .into_response(),
        Ok(s) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "ready": false,
                "reason": s.reason,
                "reachable": s.reachable,
                "threshold": s.threshold,
            })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(h): State<Context>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
        .into_response()
}

async fn status(State(h): State<Context>) -> Result<Json<StatusReport>, ApiError> {
    Ok(Json(node_status(&h).await?))
}

async fn submit(h: &Context, evidence: Evidence) -> Result<Json<Receipt>, ApiError> {
    match h.handle.submit(evidence).await {
        Ok(receipt) => Ok(Json(receipt)),
        Err(SubmitError::Evidence(e)) => Err(evidence_error(&e)),
        Err(SubmitError::Storage(m)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-failed",
            m,
        )),
        Err(SubmitError::Unavailable(e)) => Err(unavailable(e)),
    }
}

async fn submit_evidence(
    State(h): State<Context>,
    body: Result<Json<Evidence>, JsonRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let Json(evidence) = body?;
    submit(&h, evidence).await
}

/// The body of `POST /v1/attestations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedAttestation {
    attestation: Attestation,
    signature: Signature,
}

/// The body of `POST /v1/reports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedReport {
    report: InspectionReport,
    signature: Signature,
}

async fn submit_attestation(
    State(h): State<Context>,
    body: Result<Json<SignedAttestation>, JsonRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let Json(a) = body?;
    submit(
        &h,
        Evidence::Attestation {
            attestation: a.attestation,
            signature: a.signature,
        },
    )
    .await
}

async fn submit_report(
    State(h): State<Context>,
    body: Result<Json<SignedReport>, JsonRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let Json(r) = body?;
    submit(
        &h,
        Evidence::Report {
            report: r.report,
            signature: r.signature,
        },
    )
    .await
}

fn storage_error(e: &crate::store::StorageError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
}

/// Runs a database read on tokio's blocking pool: a redb read may wait for the disk, and must
/// not hold one of the few async worker threads (which also run the event loop).
async fn read_db<T, F>(h: &Context, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&crate::store::Store) -> Result<T, ApiError> + Send + 'static,
{
    let store = h.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the database read did not complete",
            )
        })?
}

async fn fetch_evidence(
    State(h): State<Context>,
    Path(digest): Path<String>,
) -> Result<Json<Evidence>, ApiError> {
    let digest = Digest::from_hex(&digest).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-digest",
            "an evidence digest is 64 hex characters",
        )
    })?;
    read_db(&h, move |store| match store.evidence(&digest) {
        Ok(Some(e)) => Ok(Json(e)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such evidence item",
        )),
        Err(e) => Err(storage_error(&e)),
    })
    .await
}

/// Query of `GET /v1/statements`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    period: Option<u64>,
    lab: Option<String>,
    limit: Option<usize>,
}

async fn list_statements(
    State(h): State<Context>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<StatementExport>>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
    read_db(&h, move |store| {
        store
            .statements(q.period, q.lab.as_deref(), limit)
            .map(|list| Json(list.iter().map(StoredStatement::export).collect()))
            .map_err(|e| storage_error(&e))
    })
    .await
}

async fn fetch_statement(
    State(h): State<Context>,
    Path((period, lab)): Path<(String, String)>,
) -> Result<Json<StatementExport>, ApiError> {
    let period: u64 = period.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-period",
            "the period is a number",
        )
    })?;
    read_db(&h, move |store| match store.statement(period, &lab) {
        Ok(Some(s)) => Ok(Json(s.export())),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no co-signed statement for lab {lab:?} in period {period} (yet)"),
        )),
        Err(e) => Err(storage_error(&e)),
    })
    .await
}

async fn trust_bundle(State(h): State<Context>) -> Result<Json<TrustBundle>, ApiError> {
    let s = node_status(&h).await?;
    let Some(group_key) = s.group_key else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-group-key",
            "no group key yet: the DKG has not completed",
        ));
    };
    Ok(Json(TrustBundle::new(&h.net, group_key)))
}

/// Proof that a request carries the operator's bearer token (see [`crate::auth`]); handlers of
/// operator endpoints take it first, so an unauthenticated request changes nothing.
pub struct Operator;

impl axum::extract::FromRequestParts<Context> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        h: &Context,
    ) -> Result<Self, Self::Rejection> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given.is_some_and(|g| h.operator.admits(g)) {
            return Ok(Operator);
        }
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "operator endpoints need the node's operator token: Authorization: Bearer <contents of operator.token in the data directory>",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        Err(r)
    }
}

async fn start_dkg(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<DkgRequest>, JsonRejection>,
) -> Result<Json<DkgStarted>, ApiError> {
    let Json(req) = body?;
    match h.handle.start_dkg(req.ceremony).await {
        Ok(ceremony) => Ok(Json(DkgStarted { ceremony })),
        Err(DkgCommandError::Engine(e)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "dkg-refused",
            e.to_string(),
        )),
        Err(DkgCommandError::Storage(m)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage-failed",
            m,
        )),
        Err(DkgCommandError::Unavailable(e)) => Err(unavailable(e)),
    }
}

// -----------------------------------------------------------------------------------------
// Transparency log (see `crate::store::log` and docs/observers.md)

fn proof_error(e: &crate::store::log::ProofError) -> ApiError {
    match e {
        crate::store::log::ProofError::OutOfRange(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "out-of-range", m.clone())
        }
        crate::store::log::ProofError::Storage(e) => storage_error(e),
    }
}

fn bad_query(e: &axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad-query", e.body_text())
}

/// The log's current checkpoint as a C2SP signed note (`text/plain`), signed by this member and
/// carrying every witness cosignature it holds for exactly this checkpoint.
async fn log_checkpoint(State(h): State<Context>) -> Result<Response, ApiError> {
    let (size, root, lines) = read_db(&h, |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        let (size, root) = crate::store::log::head(&rx).map_err(|e| storage_error(&e))?;
        let lines: Vec<String> = crate::store::witness::cosignatures(&rx)
            .map_err(|e| storage_error(&e))?
            .into_iter()
            .filter(|(_, c)| c.size == size && c.root == root)
            .map(|(_, c)| c.line)
            .collect();
        Ok((size, root, lines))
    })
    .await?;
    let note =
        accord_protocol::transparency::sign_checkpoint(h.net.id(), h.me, &h.log_key, size, &root);
    let note = if lines.is_empty() {
        note
    } else {
        accord_protocol::transparency::add_cosignatures(&note, &lines)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "log", e.to_string()))?
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// Query of `GET /v1/log/entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    start: Option<u64>,
    limit: Option<u64>,
}

async fn log_entries(
    State(h): State<Context>,
    query: Result<Query<EntriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<LogEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let rows = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        crate::store::log::entries(
            &rx,
            q.start.unwrap_or(0),
            q.limit.unwrap_or(crate::store::log::MAX_ENTRIES_PER_READ),
        )
        .map_err(|e| storage_error(&e))
    })
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(index, entry)| LogEntry {
                index,
                entry: hex::encode(entry),
            })
            .collect(),
    ))
}

/// Query of `GET /v1/log/proof/inclusion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

async fn log_inclusion(
    State(h): State<Context>,
    query: Result<Query<InclusionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let proof = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        crate::store::log::inclusion(&rx, q.index, q.size).map_err(|e| proof_error(&e))
    })
    .await?;
    Ok(Json(InclusionProof {
        index: q.index,
        size: q.size,
        proof,
    }))
}

/// Query of `GET /v1/log/proof/consistency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old: u64,
    size: u64,
}

async fn log_consistency(
    State(h): State<Context>,
    query: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let proof = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        crate::store::log::consistency(&rx, q.old, q.size).map_err(|e| proof_error(&e))
    })
    .await?;
    Ok(Json(ConsistencyProof {
        old: q.old,
        size: q.size,
        proof,
    }))
}

async fn log_lookup(
    State(h): State<Context>,
    Path(leaf): Path<String>,
) -> Result<Json<LeafIndex>, ApiError> {
    let leaf = Digest::from_hex(&leaf).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-digest",
            "a leaf hash is 64 hex characters",
        )
    })?;
    let found = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        crate::store::log::index_of(&rx, &leaf).map_err(|e| storage_error(&e))
    })
    .await?;
    match found {
        Some(index) => Ok(Json(LeafIndex { index })),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such entry in this member's log",
        )),
    }
}

async fn witness_state(State(h): State<Context>) -> Result<Json<WitnessState>, ApiError> {
    read_db(&h, |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        let witnessed = crate::store::witness::witnessed(&rx)
            .map_err(|e| storage_error(&e))?
            .into_iter()
            .map(|(member, w)| Witnessed {
                member,
                checkpoint: w.note,
            })
            .collect();
        let forks = crate::store::witness::forks(&rx)
            .map_err(|e| storage_error(&e))?
            .into_iter()
            .map(|(member, checkpoint)| Witnessed { member, checkpoint })
            .collect();
        Ok(Json(WitnessState { witnessed, forks }))
    })
    .await
}
