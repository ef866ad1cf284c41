//! The observers' contract: `GET /v1/statements`, `GET /v1/statements/{period}/{lab}` and
//! `GET /v1/trust-bundle`. Statements are stored as canonical records; their JSON
//! ([`StatementExport`]) is built here, when served.

use accord_observer::export::StatementExport;
use accord_observer::wire::ErrorBody;
use accord_protocol::verify::TrustBundle;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::context::{Context, node_status, read_db};
use super::error::{ApiError, bad_path, storage_error};
use crate::store::StoredStatement;

/// Most statements returned by one list request.
pub const MAX_LIST: usize = 1000;

/// Query of `GET /v1/statements`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this period.
    period: Option<u64>,
    /// Only this lab.
    lab: Option<String>,
    /// At most this many (and never more than 1 000).
    limit: Option<usize>,
}

/// Co-signed statements in (period, lab) order.
#[utoipa::path(get, path = "/v1/statements", tag = "statements", params(ListQuery),
    responses((status = 200, description = "The statements", body = Vec<StatementExport>)))]
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

/// The co-signed statement of one slot.
#[utoipa::path(get, path = "/v1/statements/{period}/{lab}", tag = "statements",
    params(("period" = u64, Path, description = "The slot's period"),
           ("lab" = String, Path, description = "The slot's lab")),
    responses((status = 200, description = "The statement", body = StatementExport),
              (status = 404, description = "Not co-signed (yet)", body = ErrorBody)))]
pub(super) async fn fetch_statement(
    State(h): State<Context>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<StatementExport>, ApiError> {
    let Path((period, lab)) = path.map_err(|e| bad_path(&e))?;
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

/// What an observer needs to check statements: network id, policy hash, group key, log keys.
#[utoipa::path(get, path = "/v1/trust-bundle", tag = "statements",
    responses((status = 200, description = "The trust bundle", body = TrustBundle)))]
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
