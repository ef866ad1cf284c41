//! The operator's bearer token, checked before an operator endpoint's handler runs
//! (`docs/api.md`, "Authentication"; the token itself is [`crate::auth`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::context::Context;
use super::error::ApiError;

/// Proof that a request carries the operator's bearer token (see [`crate::auth`]); handlers of
/// operator endpoints take it first, so an unauthenticated request changes nothing.
pub(super) struct Operator;

impl FromRequestParts<Context> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, h: &Context) -> Result<Self, Self::Rejection> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given.is_some_and(|g| h.operator.admits(g)) {
            return Ok(Operator);
        }
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "operator endpoints need the node's operator token: Authorization: Bearer <contents of operator.token in the data directory>",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(r)
    }
}
