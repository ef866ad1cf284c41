//! `GET /metrics`: the node's metrics in the OpenMetrics text format.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::context::Context;

/// The node's metrics (and libp2p's) in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "OpenMetrics text", body = String,
     content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub(super) async fn metrics(State(h): State<Context>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
        .into_response()
}
