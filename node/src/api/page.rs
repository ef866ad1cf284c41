//! The status and verification page: `GET /` (HTML), `GET /ui/app.js`, `GET /ui/style.css`,
//! and the vendored fallback verifiers `GET /ui/vendor/nacl.min.js`, `GET /ui/vendor/sha256.min.js`.
//!
//! The assets are embedded in the binary (no build step, nothing fetched from elsewhere). The
//! page reads the public JSON API (`/v1/status`, `/v1/statements`, `/v1/trust-bundle`,
//! `/v1/log/checkpoint`, `/v1/witness`) and checks pasted statements in the browser with
//! WebCrypto (Ed25519, SHA-256), or where a browser lacks it with TweetNaCl and js-sha256
//! (`node/assets/vendor/README.md`): the same checks as `docs/observers.md`'s Python block.
//! The content security policy allows only this origin's script and style, so a statement's
//! text can never run as code.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const STYLE_CSS: &str = include_str!("../../assets/style.css");
const NACL_JS: &str = include_str!("../../assets/vendor/nacl.min.js");
const SHA256_JS: &str = include_str!("../../assets/vendor/sha256.min.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

/// The status and verification page.
#[utoipa::path(get, path = "/", tag = "page", responses(
    (status = 200, description = "The page", body = String, content_type = "text/html; charset=utf-8")))]
pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The page's script.
#[utoipa::path(get, path = "/ui/app.js", tag = "page", responses(
    (status = 200, description = "The script", body = String, content_type = "text/javascript; charset=utf-8")))]
pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The page's style sheet.
#[utoipa::path(get, path = "/ui/style.css", tag = "page", responses(
    (status = 200, description = "The style sheet", body = String, content_type = "text/css; charset=utf-8")))]
pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// TweetNaCl 1.0.3 (public domain): the page's Ed25519 verifier where WebCrypto has none.
#[utoipa::path(get, path = "/ui/vendor/nacl.min.js", tag = "page", responses(
    (status = 200, description = "The script", body = String, content_type = "text/javascript; charset=utf-8")))]
pub(super) async fn nacl() -> Response {
    asset("text/javascript; charset=utf-8", NACL_JS)
}

/// js-sha256 0.11.1 (MIT): the page's SHA-256 where WebCrypto is unavailable.
#[utoipa::path(get, path = "/ui/vendor/sha256.min.js", tag = "page", responses(
    (status = 200, description = "The script", body = String, content_type = "text/javascript; charset=utf-8")))]
pub(super) async fn sha256() -> Response {
    asset("text/javascript; charset=utf-8", SHA256_JS)
}
