//! The member's transparency log: `GET /v1/log/checkpoint`, `/v1/log/entries`,
//! `/v1/log/proof/inclusion`, `/v1/log/proof/consistency` and `/v1/log/lookup/{leaf_hash}`
//! (`docs/api.md`, "Transparency log and witness"). Every answer is read in one read
//! transaction, so a head and its proof come from one state of the log.

use accord_observer::wire::{ConsistencyProof, ErrorBody, InclusionProof, LeafIndex, LogEntry};
use accord_protocol::crypto::Digest;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::context::{Context, read_db};
use super::error::{ApiError, bad_path, bad_query, storage_error};
use crate::store::{log, witness};

fn proof_error(e: &log::ProofError) -> ApiError {
    match e {
        log::ProofError::OutOfRange(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "out-of-range", m.clone())
        }
        log::ProofError::Storage(e) => storage_error(e),
    }
}

/// The log's current checkpoint as a C2SP signed note (`text/plain`), signed by this member and
/// carrying every witness cosignature it holds for exactly this checkpoint.
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "log", responses(
    (status = 200, description = "The signed checkpoint with its cosignatures", body = String,
     content_type = "text/plain; charset=utf-8")))]
pub(super) async fn log_checkpoint(State(h): State<Context>) -> Result<Response, ApiError> {
    let (size, root, lines) = read_db(&h, |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        let (size, root) = log::head(&rx).map_err(|e| storage_error(&e))?;
        let lines: Vec<String> = witness::cosignatures(&rx)
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EntriesQuery {
    /// First index (default 0).
    start: Option<u64>,
    /// At most this many (and never more than 1 000).
    limit: Option<u64>,
}

/// Log entries (hex) from `start`.
#[utoipa::path(get, path = "/v1/log/entries", tag = "log", params(EntriesQuery),
    responses((status = 200, description = "The entries", body = Vec<LogEntry>)))]
pub(super) async fn log_entries(
    State(h): State<Context>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Vec<LogEntry>>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let rows = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        log::entries(
            &rx,
            q.start.unwrap_or(0),
            q.limit.unwrap_or(log::MAX_ENTRIES_PER_READ),
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct InclusionQuery {
    /// Leaf index.
    index: u64,
    /// Tree size.
    size: u64,
}

/// RFC 9162 inclusion proof of leaf `index` in the tree of the first `size` entries.
#[utoipa::path(get, path = "/v1/log/proof/inclusion", tag = "log", params(InclusionQuery),
    responses((status = 200, description = "The proof", body = InclusionProof)))]
pub(super) async fn log_inclusion(
    State(h): State<Context>,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let proof = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        log::inclusion(&rx, q.index, q.size).map_err(|e| proof_error(&e))
    })
    .await?;
    Ok(Json(InclusionProof {
        index: q.index,
        size: q.size,
        proof,
    }))
}

/// Query of `GET /v1/log/proof/consistency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ConsistencyQuery {
    /// The old tree size.
    old: u64,
    /// The new tree size.
    size: u64,
}

/// RFC 9162 consistency proof from the tree of size `old` to the tree of size `size`.
#[utoipa::path(get, path = "/v1/log/proof/consistency", tag = "log", params(ConsistencyQuery),
    responses((status = 200, description = "The proof", body = ConsistencyProof)))]
pub(super) async fn log_consistency(
    State(h): State<Context>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let Query(q) = query.map_err(|e| bad_query(&e))?;
    let proof = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        log::consistency(&rx, q.old, q.size).map_err(|e| proof_error(&e))
    })
    .await?;
    Ok(Json(ConsistencyProof {
        old: q.old,
        size: q.size,
        proof,
    }))
}

/// The index of the entry with this leaf hash.
#[utoipa::path(get, path = "/v1/log/lookup/{leaf_hash}", tag = "log",
    params(("leaf_hash" = Digest, Path, description = "RFC 9162 leaf hash")),
    responses((status = 200, description = "Its index", body = LeafIndex),
              (status = 404, description = "Not in this member's log", body = ErrorBody)))]
pub(super) async fn log_lookup(
    State(h): State<Context>,
    leaf: Result<Path<String>, PathRejection>,
) -> Result<Json<LeafIndex>, ApiError> {
    let Path(leaf) = leaf.map_err(|e| bad_path(&e))?;
    let leaf = Digest::from_hex(&leaf).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-digest",
            "a leaf hash is 64 hex characters",
        )
    })?;
    let found = read_db(&h, move |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        log::index_of(&rx, &leaf).map_err(|e| storage_error(&e))
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
