//! The HTTP API (axum, JSON; loopback by default). Documented in `docs/api.md`.
//!
//! Bad input gets a 4xx with `{"error": code, "message": text}` and changes nothing. Bodies are
//! capped at [`MAX_BODY_BYTES`], requests in flight at [`MAX_IN_FLIGHT`] (more are shed with 503)
//! and every request at [`REQUEST_TIMEOUT`]; lists at [`MAX_LIST`]. Handlers reach the node
//! only through [`Context::handle`], and read the database on tokio's blocking pool.
//!
//! One file per resource: `status.rs` (health, status), `metrics.rs`, `evidence.rs`,
//! `statements.rs` (and the trust bundle), `dkg.rs`, `ceremony.rs` (share refresh and repair,
//! ceremony status), `log.rs` (the transparency log), `witness.rs`, `openapi.rs` (`/openapi.json`), `page.rs` (the status and verification page);
//! shared: `context.rs`, `error.rs`, `operator.rs` (the operator's bearer token).

mod ceremony;
mod context;
mod dkg;
mod error;
mod evidence;
mod log;
mod metrics;
mod openapi;
mod operator;
mod page;
mod statements;
mod status;
mod succession;
mod witness;

use std::future::Future;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;

pub use self::context::Context;
use self::error::ApiError;
pub use self::openapi::document as openapi_document;
pub use self::statements::MAX_LIST;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most requests handled at once; more are answered 503.
pub const MAX_IN_FLIGHT: usize = 64;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds the router.
pub fn router(context: Context) -> Router {
    Router::new()
        .route("/livez", get(status::livez))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/status", get(status::status))
        .route("/v1/evidence", post(evidence::submit_evidence))
        .route("/v1/evidence/{digest}", get(evidence::fetch_evidence))
        .route("/v1/attestations", post(evidence::submit_attestation))
        .route("/v1/reports", post(evidence::submit_report))
        .route("/v1/statements", get(statements::list_statements))
        .route(
            "/v1/statements/{period}/{lab}",
            get(statements::fetch_statement),
        )
        .route("/v1/trust-bundle", get(statements::trust_bundle))
        .route("/v1/dkg", post(dkg::start_dkg))
        .route("/v1/refresh", post(ceremony::start_refresh))
        .route("/v1/refresh/abort", post(ceremony::abort_refresh))
        .route("/v1/repair", post(ceremony::repair))
        .route("/v1/ceremony", get(ceremony::ceremony_status))
        .route(
            "/v1/succession/approve",
            post(succession::approve)
                .layer(DefaultBodyLimit::max(succession::SUCCESSION_BODY_BYTES)),
        )
        .route("/v1/succession/withdraw", post(succession::withdraw))
        .route(
            "/v1/succession/adopt",
            post(succession::adopt).layer(DefaultBodyLimit::max(succession::SUCCESSION_BODY_BYTES)),
        )
        .route("/v1/succession", get(succession::status))
        .route("/v1/chain", get(succession::chain))
        .route("/v1/dkg/confirmations", get(succession::confirmations))
        .route("/v1/log/checkpoint", get(log::log_checkpoint))
        .route("/v1/log/entries", get(log::log_entries))
        .route("/v1/log/proof/inclusion", get(log::log_inclusion))
        .route("/v1/log/proof/consistency", get(log::log_consistency))
        .route("/v1/log/lookup/{leaf_hash}", get(log::log_lookup))
        .route("/v1/witness", get(witness::witness_state))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/", get(page::index))
        .route("/ui/app.js", get(page::script))
        .route("/ui/style.css", get(page::style))
        .route("/ui/vendor/nacl.min.js", get(page::nacl))
        .route("/ui/vendor/sha256.min.js", get(page::sha256))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|e: BoxError| async move {
                    if e.is::<tower::timeout::error::Elapsed>() {
                        ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", "request timed out")
                    } else {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "overloaded",
                            "too many requests in flight; retry later",
                        )
                    }
                }))
                .load_shed()
                .concurrency_limit(MAX_IN_FLIGHT)
                .timeout(REQUEST_TIMEOUT),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    context: Context,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP API stopped");
    }
}

#[cfg(test)]
mod tests;
