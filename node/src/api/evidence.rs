//! Evidence: `POST /v1/evidence`, `/v1/attestations`, `/v1/reports` (acknowledged once durable)
//! and `GET /v1/evidence/{digest}`.

use accord_observer::wire::Receipt;
use accord_protocol::crypto::{Digest, Signature};
use accord_protocol::evidence::{Attestation, Evidence, EvidenceError, InspectionReport};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::context::{Context, read_db};
use super::error::{ApiError, storage_error, unavailable};
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

pub(super) async fn submit_evidence(
    State(h): State<Context>,
    body: Result<Json<Evidence>, JsonRejection>,
) -> Result<Json<Receipt>, ApiError> {
    let Json(evidence) = body?;
    submit(&h, evidence).await
}

/// The body of `POST /v1/attestations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedAttestation {
    attestation: Attestation,
    signature: Signature,
}

/// The body of `POST /v1/reports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedReport {
    report: InspectionReport,
    signature: Signature,
}

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

pub(super) async fn fetch_evidence(
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
