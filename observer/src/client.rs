//! A client for a node's HTTP API (`docs/api.md`), used by the `accord` command-line tools,
//! `accord demo` and the observer.
//!
//! A node is not trusted: every answer is read with a size cap ([`MAX_RESPONSE_BYTES`], or the
//! caller's for text) and decoded into typed errors.

use std::sync::Arc;
use std::time::Duration;

use accord_protocol::evidence::Evidence;
use accord_protocol::verify::TrustBundle;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::export::StatementExport;
use crate::wire::{
    CeremonyStatus, DkgRequest, DkgStarted, ErrorBody, Receipt, RefreshAbortRequest,
    RefreshAborted, RefreshRequest, RefreshStarted, RepairRequestBody, RepairStarted, StatusReport,
};

/// Why an API call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The node could not be reached.
    #[error("cannot reach the node at {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The node answered with an error.
    #[error("the node refused ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The answer did not decode.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

/// Largest response body read from a node (a page of log entries is far smaller).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Reads a response body, refusing it once it passes `cap` bytes (a node is not trusted).
async fn read_capped(
    url: &str,
    mut r: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, ClientError> {
    let too_large = || ClientError::Decode {
        url: url.into(),
        message: format!("response over {cap} bytes"),
    };
    if r.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| ClientError::Unreachable {
        url: url.into(),
        message: e.to_string(),
    })? {
        if out.len() + chunk.len() > cap {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An API client for one node.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<Arc<str>>,
}

impl Client {
    /// A client for the node at `base` (e.g. `http://127.0.0.1:7700`).
    pub fn new(base: &str) -> Self {
        let base = if base.starts_with("http://") || base.starts_with("https://") {
            base.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", base.trim_end_matches('/'))
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Self {
            base,
            http,
            token: None,
        }
    }

    /// The same client, sending the operator's bearer token with every `POST` (operator
    /// endpoints need it: `docs/api.md`, "Authentication").
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn decode<T: DeserializeOwned>(
        url: &str,
        r: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = r.status();
        let bytes = read_capped(url, r, MAX_RESPONSE_BYTES).await?;
        if !status.is_success() {
            let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
            return Err(match body {
                Some(b) => ClientError::Api {
                    status: status.as_u16(),
                    code: b.error,
                    message: b.message,
                },
                None => ClientError::Api {
                    status: status.as_u16(),
                    code: "http".into(),
                    message: String::from_utf8_lossy(&bytes).into_owned(),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.into(),
            message: e.to_string(),
        })
    }

    /// `GET path` as JSON.
    ///
    /// # Errors
    /// Unreachable node, an API error, or an undecodable answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (url, r) = self.send_get(path).await?;
        Self::decode(&url, r).await
    }

    /// Sends `GET path`; returns the URL (for errors) and the response.
    async fn send_get(&self, path: &str) -> Result<(String, reqwest::Response), ClientError> {
        let url = format!("{}{path}", self.base);
        let r = Self::send(&url, self.http.get(&url)).await?;
        Ok((url, r))
    }

    async fn send(
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        request.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_string(),
            message: e.to_string(),
        })
    }

    /// `GET path` as text of at most `cap` bytes (e.g. a signed checkpoint).
    ///
    /// # Errors
    /// Unreachable node, an API error, an over-long or non-UTF-8 answer.
    pub async fn get_text(&self, path: &str, cap: usize) -> Result<String, ClientError> {
        let (url, r) = self.send_get(path).await?;
        let status = r.status();
        let bytes = read_capped(&url, r, cap).await?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: "http".into(),
                message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        String::from_utf8(bytes).map_err(|_| ClientError::Decode {
            url,
            message: "not UTF-8".into(),
        })
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    /// Unreachable node, an API error, or an undecodable answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.post(&url).json(body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let r = Self::send(&url, request).await?;
        Self::decode(&url, r).await
    }

    /// The node's status.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        self.get("/v1/status").await
    }

    /// Submits one evidence item; the receipt means it is durable at that node.
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn submit(&self, evidence: &Evidence) -> Result<Receipt, ClientError> {
        self.post("/v1/evidence", evidence).await
    }

    /// Co-signed statements, optionally filtered.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn statements(
        &self,
        period: Option<u64>,
        lab: Option<&str>,
    ) -> Result<Vec<StatementExport>, ClientError> {
        let mut q = Vec::new();
        if let Some(p) = period {
            q.push(format!("period={p}"));
        }
        if let Some(l) = lab {
            // Roster lab ids may hold characters with a meaning in a query string.
            let encoded: String = l
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            q.push(format!("lab={encoded}"));
        }
        let path = if q.is_empty() {
            "/v1/statements".to_string()
        } else {
            format!("/v1/statements?{}", q.join("&"))
        };
        self.get(&path).await
    }

    /// The trust bundle.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn trust_bundle(&self) -> Result<TrustBundle, ClientError> {
        self.get("/v1/trust-bundle").await
    }

    /// Starts a DKG ceremony at this node (the others join when its round-1 package arrives).
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn start_dkg(&self, ceremony: Option<u32>) -> Result<u32, ClientError> {
        let s: DkgStarted = self.post("/v1/dkg", &DkgRequest { ceremony }).await?;
        Ok(s.ceremony)
    }

    /// Starts a share refresh at this node (the others join when its round-1 package arrives);
    /// returns the ceremony number.
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn start_refresh(&self, ceremony: Option<u32>) -> Result<u32, ClientError> {
        let s: RefreshStarted = self
            .post("/v1/refresh", &RefreshRequest { ceremony })
            .await?;
        Ok(s.ceremony)
    }

    /// Aborts the refresh running at this node (with `abandon_pending`, drops a refreshed
    /// share awaiting confirmations).
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn abort_refresh(
        &self,
        abandon_pending: bool,
    ) -> Result<RefreshAborted, ClientError> {
        self.post(
            "/v1/refresh/abort",
            &RefreshAbortRequest { abandon_pending },
        )
        .await
    }

    /// Asks `helpers` (default: the node's choice) to repair this node's lost key share;
    /// returns the helpers asked.
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn repair(&self, helpers: Option<Vec<u16>>) -> Result<Vec<u16>, ClientError> {
        let s: RepairStarted = self
            .post("/v1/repair", &RepairRequestBody { helpers })
            .await?;
        Ok(s.helpers)
    }

    /// This node's key ceremonies and key share.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn ceremony(&self) -> Result<CeremonyStatus, ClientError> {
        self.get("/v1/ceremony").await
    }

    /// Approves a succession at this node (operator).
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn approve_succession(
        &self,
        proposal: &accord_protocol::succession::SuccessionProposal,
    ) -> Result<crate::wire::SuccessionRef, ClientError> {
        self.post("/v1/succession/approve", proposal).await
    }

    /// Withdraws this node's succession approval (operator).
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn withdraw_succession(&self) -> Result<crate::wire::SuccessionRef, ClientError> {
        self.post("/v1/succession/withdraw", &serde_json::json!({}))
            .await
    }

    /// Hands a successor epoch's node the chain ending with its succession (operator).
    ///
    /// # Errors
    /// See [`Client::post`].
    pub async fn adopt_succession(
        &self,
        chain: &crate::chain::ChainExport,
    ) -> Result<crate::wire::SuccessionAdopted, ClientError> {
        self.post("/v1/succession/adopt", chain).await
    }

    /// This node's view of a membership change.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn succession(&self) -> Result<crate::wire::SuccessionReport, ClientError> {
        self.get("/v1/succession").await
    }

    /// The succession chain this node knows, from the genesis.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn chain(&self) -> Result<crate::chain::ChainExport, ClientError> {
        self.get("/v1/chain").await
    }

    /// The roster and the signed confirmations of this node's key.
    ///
    /// # Errors
    /// See [`Client::get`].
    pub async fn key_confirmations(&self) -> Result<crate::wire::KeyConfirmations, ClientError> {
        self.get("/v1/dkg/confirmations").await
    }
}
