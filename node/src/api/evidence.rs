//! Evidence: `POST /v1/evidence`, `/v1/attestations`, `/v1/reports` (acknowledged once durable)
//! and `GET /v1/evidence/{digest}`.

use accord_observer::wire::{ErrorBody, Receipt};
use accord_protocol::crypto::{Digest, Signature};
use accord_protocol::evidence::{Attestation, Evidence, EvidenceError, InspectionReport};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::context::{Context, read_db};
use super::error::{ApiError, bad_path, storage_error, unavailable};
use crate::handle::SubmitError;

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

/// Submits one signed evidence item (a lab attestation or an inspection report); answered once
/// the item is durable at this node.
#[utoipa::path(post, path = "/v1/evidence", tag = "evidence", request_body = Evidence,
    responses((status = 200, description = "Durable at this node", body = Receipt)))]
pub(super) async fn submit_evidence(
    State(h): State<Context>,
    body: Result<Json<Evidence>, JsonRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let Json(evidence) = body?;
    submit(&h, evidence).await
}

/// The body of `POST /v1/attestations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedAttestation {
    attestation: Attestation,
    signature: Signature,
}

/// The body of `POST /v1/reports`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedReport {
    report: InspectionReport,
    signature: Signature,
}

/// Submits a lab attestation with its signature.
#[utoipa::path(post, path = "/v1/attestations", tag = "evidence", request_body = SignedAttestation,
    responses((status = 200, description = "Durable at this node", body = Receipt)))]
pub(super) async fn submit_attestation(
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

/// Submits a member's inspection report with its signature.
#[utoipa::path(post, path = "/v1/reports", tag = "evidence", request_body = SignedReport,
    responses((status = 200, description = "Durable at this node", body = Receipt)))]
pub(super) async fn submit_report(
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

/// The stored evidence item with this content hash.
#[utoipa::path(get, path = "/v1/evidence/{digest}", tag = "evidence",
    params(("digest" = Digest, Path, description = "The item's content hash")),
    responses((status = 200, description = "The item", body = Evidence),
              (status = 404, description = "No such item", body = ErrorBody)))]
pub(super) async fn fetch_evidence(
    State(h): State<Context>,
    digest: Result<Path<String>, PathRejection>,
) -> Result<Json<Evidence>, ApiError> {
    let Path(digest) = digest.map_err(|e| bad_path(&e))?;
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
