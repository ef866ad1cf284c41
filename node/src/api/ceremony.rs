//! Share refresh and repair (`docs/protocol.md` §22.5–22.6): `POST /v1/refresh`,
//! `POST /v1/refresh/abort` and `POST /v1/repair` (operator endpoints), and
//! `GET /v1/ceremony`, the status of this member's key ceremonies (public, like `/v1/status`:
//! it holds no secret).

use accord_observer::wire::{
    CeremonyStatus, ErrorBody, RefreshAbortRequest, RefreshAborted, RefreshRequest, RefreshStarted,
    RepairRequestBody, RepairStarted,
};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use super::context::Context;
use super::error::{ApiError, unavailable};
use super::operator::Operator;
use crate::handle::CeremonyCommandError;

/// A key-ceremony command's failure (DKG, refresh, repair) as the API's error.
pub(super) fn command_error(e: CeremonyCommandError) -> ApiError {
    match e {
        CeremonyCommandError::Refused(r) => {
            ApiError::new(StatusCode::CONFLICT, r.code(), r.to_string())
        }
        CeremonyCommandError::Storage(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-failed", m)
        }
        CeremonyCommandError::Unavailable(e) => unavailable(e),
    }
}

/// Starts a share refresh at this node; the other members join when its round-1 package
/// reaches them (operator endpoint).
#[utoipa::path(post, path = "/v1/refresh", tag = "operator", request_body = RefreshRequest,
    security(("operator" = [])),
    responses((status = 200, description = "Started", body = RefreshStarted),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`refresh-refused`): no key, a refresh running or pending, a used or far-ahead number", body = ErrorBody)))]
pub(super) async fn start_refresh(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<RefreshStarted>, ApiError> {
    let Json(req) = body?;
    let ceremony = h
        .handle
        .start_refresh(req.ceremony)
        .await
        .map_err(command_error)?;
    Ok(Json(RefreshStarted { ceremony }))
}

/// Aborts the refresh running at this node: it withdraws, so the ceremony completes nowhere and
/// every member keeps its current share. With `abandon_pending`, drops a refreshed share that
/// awaits its confirmations instead (operator endpoint).
#[utoipa::path(post, path = "/v1/refresh/abort", tag = "operator", request_body = RefreshAbortRequest,
    security(("operator" = [])),
    responses((status = 200, description = "Aborted", body = RefreshAborted),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`abort-refused`): nothing running, or this member stored its share (see `abandon_pending`)", body = ErrorBody)))]
pub(super) async fn abort_refresh(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<RefreshAbortRequest>, JsonRejection>,
) -> Result<Json<RefreshAborted>, ApiError> {
    let Json(req) = body?;
    let aborted = h
        .handle
        .abort_refresh(req.abandon_pending)
        .await
        .map_err(command_error)?;
    Ok(Json(aborted))
}

/// Asks t helpers to repair this member's lost key share (operator endpoint); the share is
/// rebuilt, checked against the group key and stored when their answers arrive
/// (`GET /v1/ceremony` shows progress).
#[utoipa::path(post, path = "/v1/repair", tag = "operator", request_body = RepairRequestBody,
    security(("operator" = [])),
    responses((status = 200, description = "The signed request went to the helpers", body = RepairStarted),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`repair-refused`): a share is in use, or the helpers are not exactly t connected other members", body = ErrorBody)))]
pub(super) async fn repair(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<RepairRequestBody>, JsonRejection>,
) -> Result<Json<RepairStarted>, ApiError> {
    let Json(req) = body?;
    let helpers = h.handle.repair(req.helpers).await.map_err(command_error)?;
    Ok(Json(RepairStarted { helpers }))
}

/// This member's key ceremonies: what runs (DKG, refresh, repair) and in which phase, whether
/// it holds a key share, and its refresh history.
#[utoipa::path(get, path = "/v1/ceremony", tag = "status", responses(
    (status = 200, description = "The member's key ceremonies", body = CeremonyStatus)))]
pub(super) async fn ceremony_status(
    State(h): State<Context>,
) -> Result<Json<CeremonyStatus>, ApiError> {
    Ok(Json(h.handle.ceremony().await.map_err(unavailable)?))
}
