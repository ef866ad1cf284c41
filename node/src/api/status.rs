//! Health and status: `GET /livez`, `GET /readyz`, `GET /v1/status`.

use accord_observer::wire::StatusReport;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::context::{Context, node_status};
use super::error::ApiError;

pub(super) async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(super) async fn readyz(State(h): State<Context>) -> Response {
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

pub(super) async fn status(State(h): State<Context>) -> Result<Json<StatusReport>, ApiError> {
    Ok(Json(node_status(&h).await?))
}
