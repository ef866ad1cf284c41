//! `GET /v1/witness`: what this node holds as a witness of the other members' logs, and the
//! forks it refused.

use accord_observer::wire::{WitnessState, Witnessed};
use axum::Json;
use axum::extract::State;

use super::context::{Context, read_db};
use super::error::{ApiError, storage_error};
use crate::store::witness;

/// The latest checkpoint of every other member's log this node cosigned, and the forks it refused.
#[utoipa::path(get, path = "/v1/witness", tag = "log",
    responses((status = 200, description = "What this node witnessed", body = WitnessState)))]
pub(super) async fn witness_state(
    State(h): State<Context>,
) -> Result<Json<WitnessState>, ApiError> {
    read_db(&h, |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        let witnessed = witness::witnessed(&rx)
            .map_err(|e| storage_error(&e))?
            .into_iter()
            .map(|(member, w)| Witnessed {
                member,
                checkpoint: w.note,
            })
            .collect();
        let forks = witness::forks(&rx)
            .map_err(|e| storage_error(&e))?
            .into_iter()
            .map(|(member, checkpoint)| Witnessed { member, checkpoint })
            .collect();
        Ok(Json(WitnessState { witnessed, forks }))
    })
    .await
}
