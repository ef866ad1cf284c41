//! `accord status`: a node's status as JSON, and why it is not ready when it is not.

use accord_observer::client::Client;
use anyhow::Result;

use super::common::ApiArgs;

/// `accord status`.
pub(super) async fn run(a: ApiArgs) -> Result<()> {
    let s = Client::new(&a.api).status().await?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    if !s.ready {
        eprintln!(
            "not ready: {}",
            s.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    Ok(())
}
