//! The succession chain as observers hold it (`chain.json`, `GET /v1/chain`,
//! `docs/observers.md`): the genesis trust bundle and every co-signed succession since, each
//! with the exact bytes its epoch signed, so a verifier that does not speak bincode can read the
//! fields it trusts at fixed offsets (`docs/protocol.md` §22.7).

use std::path::Path;

use accord_protocol::crypto::Signature;
use accord_protocol::succession::{Chain, ChainError, SignedSuccession, Succession};
use accord_protocol::verify::TrustBundle;
use serde::{Deserialize, Serialize};

use crate::export::{StatementExport, parse_statements};
use crate::verify::{FileError, Outcome, read_capped, verify_exports};

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

/// Reads `files` and checks every statement in them on `chain`: each under the epoch whose
/// network it names, provided that epoch decides its period, with one batch verification per
/// epoch. Returns the outcomes in file order and the files that could not be read or parsed.
pub fn verify_files_on_chain(
    files: &[std::path::PathBuf],
    chain: &Chain,
) -> (Vec<Outcome>, Vec<FileError>) {
    let mut exports: Vec<StatementExport> = Vec::new();
    let mut origin = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let parsed = read_capped(f, crate::verify::MAX_FILE_BYTES).and_then(|text| {
            parse_statements(&text).map_err(|e| FileError {
                path: f.display().to_string(),
                message: format!("not an exported statement: {e}"),
            })
        });
        match parsed {
            Ok(list) => {
                origin.extend(std::iter::repeat_n(f, list.len()));
                exports.extend(list);
            }
            Err(e) => errors.push(e),
        }
    }
    let mut results: Vec<Option<Result<_, crate::verify::Failure>>> =
        exports.iter().map(|_| None).collect();
    let mut by_epoch: Vec<Vec<usize>> = vec![Vec::new(); chain.epochs().len()];
    for (i, e) in exports.iter().enumerate() {
        match chain.epoch_of(&e.network_id) {
            Some(epoch) if epoch.decides(accord_protocol::Period(e.period)) => {
                by_epoch[epoch.index].push(i);
            }
            Some(epoch) => {
                results[i] = Some(Err(ChainError::NotItsPeriod {
                    period: e.period,
                    owner: chain.epoch_for(accord_protocol::Period(e.period)).index,
                    signer: epoch.index,
                }
                .into()));
            }
            None => results[i] = Some(Err(ChainError::UnknownNetwork(e.network_id).into())),
        }
    }
    for (epoch, members) in chain.epochs().iter().zip(by_epoch) {
        let group: Vec<StatementExport> = members.iter().map(|i| exports[*i].clone()).collect();
        for (i, r) in members
            .into_iter()
            .zip(verify_exports(&group, &epoch.bundle, None))
        {
            results[i] = Some(r);
        }
    }
    let outcomes = results
        .into_iter()
        .zip(exports)
        .zip(origin)
        .map(|((result, e), f)| Outcome {
            file: f.clone(),
            period: e.period,
            lab: e.lab,
            result: result.expect("every statement was judged"),
        })
        .collect();
    (outcomes, errors)
}
