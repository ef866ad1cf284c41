//! `GET /metrics`: the node's metrics in the OpenMetrics text format.
//!
//! The transparency-log gauges (log size, each witness's lag and the age of its newest
//! cosignature, forks caught) are read from the database when the metrics are scraped, so they
//! are never stale and the event loop does no work for them.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::context::{Context, read_db};
use super::error::storage_error;
use crate::metrics::MemberLabel;
use crate::store::{log, witness};

/// The seconds-since-the-epoch timestamp of a C2SP tlog-cosignature line
/// (`— name base64(key id ‖ timestamp ‖ signature)`, the timestamp big-endian).
fn cosignature_time(line: &str) -> Option<u64> {
    let b64 = line.trim_end().rsplit(' ').next()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let ts: [u8; 8] = raw.get(4..12)?.try_into().ok()?;
    Some(u64::from_be_bytes(ts))
}

async fn refresh_log_gauges(h: &Context) {
    let read = read_db(h, |store| {
        let rx = store.read().map_err(|e| storage_error(&e))?;
        let (size, _) = log::head(&rx).map_err(|e| storage_error(&e))?;
        let cosignatures = witness::cosignatures(&rx).map_err(|e| storage_error(&e))?;
        let forks = witness::forks(&rx).map_err(|e| storage_error(&e))?.len();
        Ok((size, cosignatures, forks))
    })
    .await;
    let Ok((size, cosignatures, forks)) = read else {
        // The families keep their last values; a storage failure shows elsewhere.
        return;
    };
    let m = &h.metrics;
    m.log_size.set(i64::try_from(size).unwrap_or(i64::MAX));
    m.witness_forks
        .set(i64::try_from(forks).unwrap_or(i64::MAX));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (member, c) in cosignatures {
        let Some(name) = h
            .net
            .roster()
            .members
            .get(usize::from(member))
            .map(|m| m.name.clone())
        else {
            continue;
        };
        let label = MemberLabel { member: name };
        let lag = size.saturating_sub(c.size);
        m.witness_lag_entries
            .get_or_create(&label)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        if let Some(t) = cosignature_time(&c.line) {
            let age = now.saturating_sub(t);
            m.witness_cosignature_age
                .get_or_create(&label)
                .set(i64::try_from(age).unwrap_or(i64::MAX));
        }
    }
}

/// The node's metrics (and libp2p's) in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "OpenMetrics text", body = String,
     content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub(super) async fn metrics(State(h): State<Context>) -> Response {
    refresh_log_gauges(&h).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestamp_of_a_cosignature_line_is_read() {
        let mut raw = vec![1, 2, 3, 4];
        raw.extend_from_slice(&1_795_000_000u64.to_be_bytes());
        raw.extend_from_slice(&[7; 64]);
        let line = format!(
            "— accord/x/witness/1 {}",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        );
        assert_eq!(cosignature_time(&line), Some(1_795_000_000));
        assert_eq!(cosignature_time("— accord/x/witness/1 AAAA"), None);
        assert_eq!(cosignature_time("garbage"), None);
    }
}
