//! `GET /openapi.json`: the API's OpenAPI 3.1 description, derived from the handlers'
//! `#[utoipa::path]` attributes and the wire types' `ToSchema` derives, so it follows the code.
//!
//! The handlers document their own answers; the answers every route shares (the shedding and
//! timeout layers, bad parameters and bodies, storage failures) are added here once, so the
//! document lists every status a client can see. `tests/` checks it against `docs/api.md`, and
//! the schemathesis run checks a live node against it.

use std::sync::OnceLock;

use accord_observer::wire::ErrorBody;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

use super::{ceremony, dkg, evidence, log, metrics, page, statements, status, succession, witness};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Accord node API",
        description = "The HTTP API of an `accord` node (docs/api.md)."
    ),
    paths(
        status::livez,
        status::readyz,
        metrics::metrics,
        status::status,
        evidence::submit_evidence,
        evidence::fetch_evidence,
        evidence::submit_attestation,
        evidence::submit_report,
        statements::list_statements,
        statements::fetch_statement,
        statements::trust_bundle,
        dkg::start_dkg,
        ceremony::start_refresh,
        ceremony::abort_refresh,
        ceremony::repair,
        ceremony::ceremony_status,
        succession::approve,
        succession::withdraw,
        succession::adopt,
        succession::status,
        succession::chain,
        succession::confirmations,
        log::log_checkpoint,
        log::log_entries,
        log::log_inclusion,
        log::log_consistency,
        log::log_lookup,
        witness::witness_state,
        openapi_json,
        page::index,
        page::script,
        page::style,
        page::nacl,
        page::sha256,
    ),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// The answers every operation can give besides its own: (status, when).
const SHARED: &[(&str, &str)] = &[
    ("408", "The request took longer than 15 s (`timeout`)"),
    (
        "500",
        "The node's database read failed (`storage`, `internal`)",
    ),
    (
        "503",
        "The node is saturated or stopping (`overloaded`, `busy`, `stopping`, `storage-failed`, `no-group-key`)",
    ),
];
/// Besides [`SHARED`], for operations with parameters.
const WITH_PARAMETERS: &[(&str, &str)] = &[(
    "400",
    "Malformed path or query parameters (`bad-query`, `bad-path`, `bad-digest`, `bad-period`, `out-of-range`)",
)];
/// Besides [`SHARED`], for operations with a JSON body.
const WITH_BODY: &[(&str, &str)] = &[
    ("400", "The body is not JSON (`malformed-json`)"),
    (
        "409",
        "The slot or inspector is full, or the ceremony was refused",
    ),
    (
        "413",
        "The body is over 256 KiB, or an evidence item over 64 KiB encoded (`too-large`)",
    ),
    (
        "415",
        "The body is not declared `application/json` (`malformed-json`)",
    ),
    (
        "422",
        "JSON of the wrong shape, or evidence the node refuses (`bad-signature`, `unknown-lab`, …)",
    ),
];

fn add_shared(op: &mut Operation) {
    let mut shared: Vec<(&str, &str)> = SHARED.to_vec();
    if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        shared.extend_from_slice(WITH_PARAMETERS);
    }
    if op.request_body.is_some() {
        shared.extend_from_slice(WITH_BODY);
    }
    for (code, when) in shared {
        op.responses
            .responses
            .entry(code.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(when)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                add_shared(op);
            }
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        doc
    })
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serializing plain maps and strings cannot fail; an empty answer would be caught by
        // the tests that read the document.
        serde_json::to_string_pretty(document()).unwrap_or_default()
    })
}

/// This document: the API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses(
    (status = 200, description = "The OpenAPI 3.1 document", body = Object, content_type = "application/json")))]
pub(super) async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(METHOD, path)` of every operation in the document.
    fn documented_operations() -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in &document().paths.paths {
            if item.get.is_some() {
                ops.insert(("GET".to_string(), path.clone()));
            }
            if item.post.is_some() {
                ops.insert(("POST".to_string(), path.clone()));
            }
            assert!(
                item.put.is_none() && item.delete.is_none() && item.patch.is_none(),
                "{path}: only GET and POST are served"
            );
        }
        ops
    }

    /// `(METHOD, path)` of every `` `METHOD /path` `` in a `###` heading of `text`, query
    /// strings dropped.
    fn headings(text: &str) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for line in text.lines().filter(|l| l.starts_with("### ")) {
            for quoted in line.split('`').skip(1).step_by(2) {
                let Some((method, path)) = quoted.split_once(' ') else {
                    continue;
                };
                if method == "GET" || method == "POST" {
                    let path = path.split('?').next().unwrap();
                    ops.insert((method.to_string(), path.to_string()));
                }
            }
        }
        ops
    }

    #[test]
    fn docs_api_md_and_the_openapi_document_list_the_same_operations() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
            .unwrap();
        let in_md = headings(&doc);
        let in_spec = documented_operations();
        let only_md: Vec<_> = in_md.difference(&in_spec).collect();
        let only_spec: Vec<_> = in_spec.difference(&in_md).collect();
        assert!(
            only_md.is_empty() && only_spec.is_empty(),
            "docs/api.md only: {only_md:?}; /openapi.json only: {only_spec:?}"
        );
    }

    #[test]
    fn every_route_of_the_router_is_in_the_document() {
        // The router's routes, as written in `mod.rs` (`.route("/path", get(...))`).
        let source = include_str!("mod.rs");
        let mut routed = BTreeSet::new();
        for part in source.split(".route(").skip(1) {
            let part = part.trim_start().strip_prefix('"').unwrap();
            let (path, rest) = part.split_once('"').unwrap();
            let method = rest.trim_start_matches([',', ' ', '\n']);
            let method = method.split('(').next().unwrap().trim().to_uppercase();
            routed.insert((method, path.to_string()));
        }
        assert!(routed.len() > 20, "parsed {routed:?}");
        assert_eq!(routed, documented_operations());
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_operation_documents_its_errors() {
        let json: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert!(json["openapi"].as_str().unwrap().starts_with("3.1"));
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for code in ["200", "408", "500", "503"] {
                    assert!(responses.contains_key(code), "{method} {path}: no {code}");
                }
                if op.get("requestBody").is_some() {
                    assert!(responses.contains_key("422"), "{method} {path}: no 422");
                }
            }
        }
        assert!(json["components"]["schemas"]["StatementExport"].is_object());
        assert!(json["components"]["securitySchemes"]["operator"].is_object());
    }
}
