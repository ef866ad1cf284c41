//! What every handler shares: the [`Context`] (the node's [`Handle`] and what the API reads
//! without the event loop), and the two ways to use it: a request to the event loop, or a
//! database read on the blocking pool.

use std::sync::Arc;

use accord_observer::wire::StatusReport;
use accord_protocol::crypto::SecretKey;
use accord_protocol::roster::{MemberIndex, Network};
use axum::http::StatusCode;

use super::error::{ApiError, unavailable};
use crate::auth::OperatorToken;
use crate::handle::Handle;
use crate::metrics::Metrics;
use crate::store::Store;

/// What the handlers share: the way into the node, and what they read without it.
#[derive(Clone, Debug)]
pub struct Context {
    /// Requests to the node's event loop.
    pub handle: Handle,
    /// The database (for reads, on the blocking pool).
    pub store: Arc<Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The network.
    pub net: Arc<Network>,
    /// This member.
    pub me: MemberIndex,
    /// The key that signs this member's log checkpoints (its roster identity key).
    pub log_key: Arc<SecretKey>,
    /// The operator's bearer token (operator endpoints).
    pub operator: Arc<OperatorToken>,
}

pub(super) async fn node_status(h: &Context) -> Result<StatusReport, ApiError> {
    h.handle.status().await.map_err(unavailable)
}

/// Runs a database read on tokio's blocking pool: a redb read may wait for the disk, and must
/// not hold one of the few async worker threads (which also run the event loop).
pub(super) async fn read_db<T, F>(h: &Context, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
{
    let store = h.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the database read did not complete",
            )
        })?
}
