//! Membership change (`docs/protocol.md` §22.7): `POST /v1/succession/approve`,
//! `/v1/succession/withdraw` and `/v1/succession/adopt` (operator endpoints), and what anyone
//! may read: `GET /v1/succession` (this member's view), `GET /v1/chain` (the succession chain
//! from the genesis bundle) and `GET /v1/dkg/confirmations` (the roster and the signed
//! confirmations of this member's key, which a succession proposal carries).

use accord_observer::chain::ChainExport;
use accord_observer::wire::{
    ErrorBody, KeyConfirmations, SuccessionAdopted, SuccessionRef, SuccessionReport,
};
use accord_protocol::succession::SuccessionProposal;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;

use super::ceremony::command_error;
use super::context::Context;
use super::error::{ApiError, unavailable};
use super::operator::Operator;

/// Largest request body of these endpoints: a proposal carries a whole roster (≤ 1 MiB
/// encoded) and a confirmation per member; a chain, a roster's log keys per link.
pub(super) const SUCCESSION_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The operator approves a succession: this member checks it, persists its approval (it
/// approves no other, and decides no period from the succession's first on) and joins its
/// co-signing (operator endpoint).
#[utoipa::path(post, path = "/v1/succession/approve", tag = "operator",
    request_body(content = Object, description = "The succession proposal (`accord succession propose` writes it)"),
    security(("operator" = [])),
    responses((status = 200, description = "Approved", body = SuccessionRef),
              (status = 400, description = "Not a proposal", body = ErrorBody),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`succession-invalid`, `succession-too-late`, `succession-already-approved`, `succession-lapsed`, `handed-over`, `no-key`)", body = ErrorBody)))]
pub(super) async fn approve(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<SuccessionProposal>, JsonRejection>,
) -> Result<Json<SuccessionRef>, ApiError> {
    let Json(proposal) = body?;
    Ok(Json(
        h.handle
            .approve_succession(proposal)
            .await
            .map_err(command_error)?,
    ))
}

/// The operator withdraws its approval; refused once this member released a share of the
/// succession (operator endpoint).
#[utoipa::path(post, path = "/v1/succession/withdraw", tag = "operator",
    security(("operator" = [])),
    responses((status = 200, description = "Withdrawn", body = SuccessionRef),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`no-succession`, `succession-bound`)", body = ErrorBody)))]
pub(super) async fn withdraw(
    _: Operator,
    State(h): State<Context>,
) -> Result<Json<SuccessionRef>, ApiError> {
    Ok(Json(
        h.handle
            .withdraw_succession()
            .await
            .map_err(command_error)?,
    ))
}

/// A successor epoch's operator hands it the chain ending with its co-signed succession; it
/// then decides from the succession's first period on (operator endpoint).
#[utoipa::path(post, path = "/v1/succession/adopt", tag = "operator", request_body = ChainExport,
    security(("operator" = [])),
    responses((status = 200, description = "Adopted", body = SuccessionAdopted),
              (status = 400, description = "Not a chain", body = ErrorBody),
              (status = 401, description = "Without the operator's bearer token", body = ErrorBody),
              (status = 409, description = "Refused (`chain-invalid`, `succession-not-ours`, `no-key`)", body = ErrorBody)))]
pub(super) async fn adopt(
    _: Operator,
    State(h): State<Context>,
    body: Result<Json<ChainExport>, JsonRejection>,
) -> Result<Json<SuccessionAdopted>, ApiError> {
    let Json(chain) = body?;
    Ok(Json(
        h.handle
            .adopt_succession(chain)
            .await
            .map_err(command_error)?,
    ))
}

/// This member's view of a membership change: its approval, offers awaiting its operator, and
/// the co-signed successions it holds.
#[utoipa::path(get, path = "/v1/succession", tag = "status", responses(
    (status = 200, description = "The member's view of a membership change", body = SuccessionReport)))]
pub(super) async fn status(State(h): State<Context>) -> Result<Json<SuccessionReport>, ApiError> {
    Ok(Json(h.handle.succession().await.map_err(unavailable)?))
}

/// The succession chain this member knows, from the genesis bundle (what `accord verify
/// --chain` reads).
#[utoipa::path(get, path = "/v1/chain", tag = "statements", responses(
    (status = 200, description = "The chain", body = ChainExport),
    (status = 409, description = "No group key yet (`no-group-key`)", body = ErrorBody)))]
pub(super) async fn chain(State(h): State<Context>) -> Result<Json<ChainExport>, ApiError> {
    Ok(Json(h.handle.chain().await.map_err(command_error)?))
}

/// The roster and every member's signed confirmation of this member's key.
#[utoipa::path(get, path = "/v1/dkg/confirmations", tag = "status", responses(
    (status = 200, description = "Roster and confirmations", body = KeyConfirmations),
    (status = 409, description = "No confirmed key yet (`no-group-key`)", body = ErrorBody)))]
pub(super) async fn confirmations(
    State(h): State<Context>,
) -> Result<Json<KeyConfirmations>, ApiError> {
    Ok(Json(
        h.handle.key_confirmations().await.map_err(command_error)?,
    ))
}
