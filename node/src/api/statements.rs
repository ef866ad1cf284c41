//! The observers' contract: `GET /v1/statements`, `GET /v1/statements/{period}/{lab}` and
//! `GET /v1/trust-bundle`. Statements are stored as canonical records; their JSON
//! ([`StatementExport`]) is built here, when served.

use accord_observer::export::StatementExport;
use accord_protocol::verify::TrustBundle;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::context::{Context, node_status, read_db};
use super::error::{ApiError, storage_error};
use crate::store::StoredStatement;

/// Most statements returned by one list request.
pub const MAX_LIST: usize = 1000;

/// Query of `GET /v1/statements`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    period: Option<u64>,
    lab: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list_statements(
    State(h): State<Context>,
    query: Result<Query<ListQuery>, QueryRejection>,
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

pub(super) async fn fetch_statement(
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

pub(super) async fn trust_bundle(State(h): State<Context>) -> Result<Json<TrustBundle>, ApiError> {
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
