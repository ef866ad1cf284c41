//! The router against a stand-in event loop: paths, status codes and bodies of `docs/api.md`,
//! without a swarm.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use accord_observer::export::StatementExport;
use accord_observer::wire::{ErrorBody, RefreshAbortOutcome, RefreshAborted, StatusReport};
use accord_protocol::SignedStatement;
use accord_protocol::crypto::{Digest, PublicKey, SecretKey, Signature};
use accord_protocol::engine::RefreshStartError;
use accord_protocol::fixtures::{Testnet, TestnetSpec};
use accord_protocol::policy::Verdict;
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::statement::{Slot, Statement};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tokio::sync::mpsc;
use tower::ServiceExt as _;

use super::{Context, router};
use crate::auth::OperatorToken;
use crate::handle::{CeremonyRefusal, Command, channel};
use crate::metrics::Metrics;
use crate::store::{Store, StoredStatement};

struct Fixture {
    context: Context,
    commands: mpsc::Receiver<Command>,
    net: Arc<Network>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let tn = Testnet::generate(&TestnetSpec::new(4, 1, 0), &mut rand::rngs::OsRng, |k| {
        k.to_hex()
    });
    let net = Network::new(tn.roster.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), net.id()).unwrap());
    let operator = Arc::new(OperatorToken::create(&dir.path().join("operator.token")).unwrap());
    let (handle, commands) = channel();
    let context = Context {
        handle,
        store,
        metrics: Arc::new(Metrics::new()),
        net: net.clone(),
        me: MemberIndex(0),
        log_key: Arc::new(SecretKey::from_seed(&tn.members[0].seed())),
        operator,
    };
    Fixture {
        context,
        commands,
        net,
        _dir: dir,
    }
}

async fn call(context: &Context, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = router(context.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, body.to_vec())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body).unwrap().error
}

#[tokio::test]
async fn a_statement_is_served_as_the_export_of_its_stored_record() {
    let f = fixture();
    let stored = StoredStatement {
        group_key: PublicKey([4; 32]),
        signed: SignedStatement {
            statement: Statement {
                network_id: *f.net.id(),
                policy_hash: *f.net.policy_hash(),
                slot: Slot {
                    lab: "lab-000".into(),
                    period: Period(3),
                },
                evidence: vec![Digest([5; 32])],
                verdict: Verdict::Compliant,
            },
            signature: Signature([3; 64]),
            batch: None,
        },
    };
    f.context
        .store
        .commit(&[], std::slice::from_ref(&stored), &[])
        .unwrap();
    let export = StatementExport::new(&stored.signed, stored.group_key);
    let (status, body) = call(&f.context, get("/v1/statements/3/lab-000")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::to_vec(&export).unwrap());
    let (status, body) = call(&f.context, get("/v1/statements?period=3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::to_vec(&vec![export]).unwrap());
    let (status, body) = call(&f.context, get("/v1/statements/4/lab-000")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not-found".into())
    );
    let (status, body) = call(&f.context, get("/v1/statements/x/lab-000")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad-period".into())
    );
    let (status, body) = call(&f.context, get("/v1/statements?colour=red")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad-query".into())
    );
}

#[tokio::test]
async fn an_operator_endpoint_without_the_token_changes_nothing() {
    let mut f = fixture();
    let request = Request::post("/v1/dkg")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let response = router(f.context.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
        "Bearer"
    );
    assert!(
        f.commands.try_recv().is_err(),
        "no command reached the node"
    );
    // With the token the request reaches the event loop (answered here by a stand-in).
    let token = format!("Bearer {}", f.context.operator.expose());
    let request = Request::post("/v1/dkg")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, token)
        .body(Body::from(r#"{"ceremony": 7}"#))
        .unwrap();
    let answer = tokio::spawn(async move {
        match f.commands.recv().await {
            Some(Command::StartDkg { ceremony, reply }) => {
                let _ = reply.send(Ok(ceremony.unwrap_or(1)));
            }
            other => panic!("expected a DKG command, got {other:?}"),
        }
    });
    let (status, body) = call(&f.context, request).await;
    answer.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, br#"{"ceremony":7}"#);
}

#[tokio::test]
async fn refresh_and_repair_endpoints_without_the_token_change_nothing() {
    let mut f = fixture();
    let wrong = format!("Bearer {}", "0".repeat(64));
    for path in ["/v1/refresh", "/v1/refresh/abort", "/v1/repair"] {
        for auth in [None, Some(wrong.as_str())] {
            let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
            if let Some(a) = auth {
                request = request.header(header::AUTHORIZATION, a);
            }
            let request = request.body(Body::from("{}")).unwrap();
            let response = router(f.context.clone()).oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {auth:?}"
            );
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                "Bearer"
            );
        }
    }
    assert!(
        f.commands.try_recv().is_err(),
        "no command reached the node"
    );
    // With the token, each reaches the event loop; an engine refusal is a 409 with its code.
    let token = format!("Bearer {}", f.context.operator.expose());
    let answer = tokio::spawn(async move {
        for _ in 0..3 {
            match f.commands.recv().await {
                Some(Command::StartRefresh { ceremony, reply }) => {
                    assert_eq!(ceremony, Some(3));
                    let _ = reply.send(Err(
                        CeremonyRefusal::from(RefreshStartError::Running(2)).into()
                    ));
                }
                Some(Command::AbortRefresh {
                    abandon_pending,
                    reply,
                }) => {
                    assert!(abandon_pending);
                    let _ = reply.send(Ok(RefreshAborted {
                        ceremony: 2,
                        outcome: RefreshAbortOutcome::Abandoned,
                    }));
                }
                Some(Command::Repair { helpers, reply }) => {
                    assert_eq!(helpers, Some(vec![0, 1, 2]));
                    let _ = reply.send(Err(CeremonyRefusal::HaveKeyShare.into()));
                }
                other => panic!("expected a refresh or repair command, got {other:?}"),
            }
        }
    });
    let post = |path: &str, body: &str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, token.clone())
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, body) = call(&f.context, post("/v1/refresh", r#"{"ceremony": 3}"#)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "refresh-refused".into())
    );
    let (status, body) = call(
        &f.context,
        post("/v1/refresh/abort", r#"{"abandon_pending": true}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, br#"{"ceremony":2,"outcome":"abandoned"}"#);
    let (status, body) = call(&f.context, post("/v1/repair", r#"{"helpers": [0, 1, 2]}"#)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "repair-refused".into())
    );
    answer.await.unwrap();
    // Hostile bodies are refused before anything reaches the node.
    for (path, body) in [
        ("/v1/repair", r#"{"helpers": [70000]}"#),
        ("/v1/repair", r#"{"helpers": "0,1,2"}"#),
        ("/v1/refresh", r#"{"ceremony": -1}"#),
        ("/v1/refresh/abort", r#"{"abandon": true}"#),
    ] {
        let (status, _) = call(&f.context, post(path, body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}");
    }
}

#[tokio::test]
async fn a_stopped_event_loop_is_a_503_and_unknown_paths_a_404() {
    let f = fixture();
    drop(f.commands);
    let (status, body) = call(&f.context, get("/v1/status")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "stopping".into())
    );
    let (status, body) = call(&f.context, get("/v1/nothing")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not-found".into())
    );
    let (status, body) = call(&f.context, get("/livez")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
    );
}

#[tokio::test]
async fn readyz_answers_from_the_status_report() {
    let mut f = fixture();
    let net = f.net.clone();
    let answer = tokio::spawn(async move {
        let Some(Command::Status { reply }) = f.commands.recv().await else {
            panic!("expected a status command")
        };
        let _ = reply.send(StatusReport {
            member: "m".into(),
            index: 0,
            peer_id: String::new(),
            network: net.roster().name.clone(),
            network_id: *net.id(),
            members: 4,
            threshold: 3,
            connected: Vec::new(),
            reachable: 1,
            gossip_peers: 0,
            gossip_scores: Default::default(),
            group_key: None,
            dkg_phase: None,
            current_period: None,
            next_close: 0,
            pending_units: 0,
            decided_units: 0,
            evidence_items: 0,
            ready: false,
            reason: Some("no group key yet".into()),
            recent: Vec::new(),
            store_commits: 0,
        });
    });
    let (status, body) = call(&f.context, get("/readyz")).await;
    answer.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({
            "ready": false,
            "reason": "no group key yet",
            "reachable": 1,
            "threshold": 3,
        })
    );
}
