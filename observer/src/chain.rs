//! The succession chain as observers hold it (`chain.json`, `GET /v1/chain`,
//! `docs/observers.md`): the genesis trust bundle and every co-signed succession since, each
//! with the exact bytes its epoch signed, so a verifier that does not speak bincode can read the
//! fields it trusts at fixed offsets (`docs/protocol.md` §22.7).

use std::path::Path;

use accord_protocol::crypto::Signature;
use accord_protocol::succession::{Chain, ChainError, SignedSuccession, Succession};
use accord_protocol::verify::TrustBundle;
use serde::{Deserialize, Serialize};

use crate::verify::{FileError, read_capped};

/// Largest chain file read (1 024 links of at most a 256-member roster's log keys).
pub const MAX_CHAIN_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The chain: where it starts and every link since, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainExport {
    /// The genesis trust bundle (epoch 0), obtained out of band.
    pub genesis: TrustBundle,
    /// Each succession, oldest first.
    pub links: Vec<LinkExport>,
}

/// One co-signed succession.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkExport {
    /// The succession, decoded.
    pub succession: Succession,
    /// The handing epoch's group signature (hex).
    pub signature: Signature,
    /// The exact bytes signed (hex): `"accord/succession" ‖ 0 ‖ version ‖ previous ‖ body`,
    /// the body starting with previous (32), first period (u64 LE), group key (32), network id
    /// (32).
    pub message: String,
}

impl LinkExport {
    /// The export of `signed`.
    pub fn new(signed: &SignedSuccession) -> Self {
        Self {
            succession: signed.succession.clone(),
            signature: signed.signature,
            message: hex::encode(signed.succession.signing_bytes()),
        }
    }

    /// The signed succession, once the `message` field is checked to be the decoded fields'
    /// encoding (so the bytes a hand verifier checks and the fields we read say the same).
    ///
    /// # Errors
    /// A `message` that differs.
    pub fn signed(&self) -> Result<SignedSuccession, ChainError> {
        if self.message != hex::encode(self.succession.signing_bytes()) {
            return Err(ChainError::Malformed(
                "the message field is not the succession's signed bytes",
            ));
        }
        Ok(SignedSuccession {
            succession: self.succession.clone(),
            signature: self.signature,
        })
    }
}

impl ChainExport {
    /// The export of `links` from `genesis`.
    pub fn new<'a>(
        genesis: TrustBundle,
        links: impl IntoIterator<Item = &'a SignedSuccession>,
    ) -> Self {
        Self {
            genesis,
            links: links.into_iter().map(LinkExport::new).collect(),
        }
    }

    /// Follows the links from the genesis (`Chain::follow`): signatures, order, forks.
    ///
    /// # Errors
    /// The first [`ChainError`].
    pub fn follow(&self) -> Result<Chain, ChainError> {
        self.genesis
            .check_consistent()
            .map_err(|_| ChainError::Malformed("the genesis bundle is inconsistent"))?;
        let links = self
            .links
            .iter()
            .map(LinkExport::signed)
            .collect::<Result<Vec<_>, _>>()?;
        Chain::follow(self.genesis.clone(), &links)
    }
}

/// Reads and follows a chain file.
///
/// # Errors
/// Unreadable, not a chain, or a chain that does not verify.
pub fn load_chain(path: &Path) -> Result<(ChainExport, Chain), FileError> {
    let text = read_capped(path, MAX_CHAIN_FILE_BYTES)?;
    let err = |message: String| FileError {
        path: path.display().to_string(),
        message,
    };
    let export: ChainExport =
        serde_json::from_str(&text).map_err(|e| err(format!("not a chain file: {e}")))?;
    let chain = export.follow().map_err(|e| err(e.to_string()))?;
    Ok((export, chain))
}
