//! Key ceremonies: `POST /v1/dkg` (an operator endpoint).

use accord_observer::wire::{DkgRequest, DkgStarted, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::ceremony::command_error;
use super::context::Context;
use super::error::ApiError;
use super::operator::Operator;

/// Starts a DKG ceremony at this node (operator endpoint).
#[utoipa::path(post, path = "/v1/dkg", tag = "operator", request_body = DkgRequest,
    security(("operator" = [])),
    responses((status = 200, description = "Started", body = DkgStarted),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`dkg-refused`)", body = ErrorBody)))]
pub(super) async fn start_dkg(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<DkgRequest>, JsonRejection>,
) -> Result<Json<DkgStarted>, ApiError> {
    let Json(req) = body?;
    let ceremony = h
        .handle
        .start_dkg(req.ceremony)
        .await
        .map_err(command_error)?;
    Ok(Json(DkgStarted { ceremony }))
}
