//! Health and status: `GET /livez`, `GET /readyz`, `GET /v1/status`.

use accord_observer::wire::{ErrorBody, StatusReport};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::context::{Context, node_status};
use super::error::ApiError;

/// Answer of `GET /livez`: `{"status": "ok"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Liveness {
    /// Always `ok`.
    status: String,
}

/// Answer of `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Readiness {
    /// Whether the node holds the group key and reaches at least t members.
    ready: bool,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Members reachable, this one included.
    reachable: usize,
    /// t.
    threshold: usize,
}

/// A `503` of `GET /readyz`: not ready (with the reason), or the node could not answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only the OpenAPI document uses it.
pub(super) enum NotReady {
    /// The node answered: not ready, and why.
    NotReady(Readiness),
    /// The node is saturated or stopping.
    Error(ErrorBody),
}

/// Liveness: `200` while the process serves HTTP.
#[utoipa::path(get, path = "/livez", tag = "health",
    responses((status = 200, description = "The process serves HTTP", body = Liveness)))]
pub(super) async fn livez() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

/// Readiness: `200` when the node holds the group key and at least t members (itself included)
/// are connected; otherwise `503` with the reason.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready to sign", body = Readiness),
    (status = 503, description = "Not ready (with the reason), or the node is saturated or stopping", body = NotReady)))]
pub(super) async fn readyz(State(h): State<Context>) -> Response {
    match node_status(&h).await {
        Ok(s) => {
            let status = if s.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = Readiness {
                ready: s.ready,
                reason: if s.ready { None } else { s.reason },
                reachable: s.reachable,
                threshold: s.threshold,
            };
            (status, Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A snapshot of the node: members connected, readiness, current period, recent verdicts.
#[utoipa::path(get, path = "/v1/status", tag = "status", responses(
    (status = 200, description = "The node's status", body = StatusReport)))]
pub(super) async fn status(State(h): State<Context>) -> Result<Json<StatusReport>, ApiError> {
    Ok(Json(node_status(&h).await?))
}
