//! Offline verification of exported statements (`accord verify`), shared by the CLI and the
//! benchmark.
//!
//! Everything read here is hostile: files are read with a size cap, JSON errors are reported per
//! file, and nothing panics. Statements are checked in parallel chunks (one per core); inside a
//! chunk the group signatures go through one Ed25519 batch verification, and statements of one
//! period batch share their checkpoint signature (verified once per chunk).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use accord_protocol::Network;
use accord_protocol::crypto::Digest;
use accord_protocol::evidence::Evidence;
use accord_protocol::policy::{self, Verdict};
use accord_protocol::statement::SignedStatement;
use accord_protocol::verify::{TrustBundle, Verified, verify_statements};
use thiserror::Error;

use crate::export::{ExportError, StatementExport, parse_statements};

/// Largest statement file read.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Most files one `--all` run reads.
pub const MAX_FILES: usize = 1_000_000;

/// Why a statement failed.
#[derive(Debug, Error)]
pub enum Failure {
    /// The JSON fields or the protocol's checks (network, policy, proof, signature).
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The verdict does not follow from the supplied evidence.
    #[error(
        "verdict does not follow from the supplied evidence: the policy gives {expected}, the statement says {found}"
    )]
    VerdictMismatch {
        /// The policy's verdict on the supplied evidence.
        expected: String,
        /// The statement's verdict.
        found: String,
    },
    /// Evidence was supplied, but not every item the statement rests on.
    #[error("evidence item {0} of this statement was not supplied")]
    MissingEvidence(Digest),
    /// A supplied evidence item is invalid for this slot.
    #[error("evidence item {digest} is invalid for this slot: {reason}")]
    BadEvidence {
        /// The item.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// No epoch of the succession chain decides this statement (`crate::chain`).
    #[error(transparent)]
    Chain(#[from] accord_protocol::succession::ChainError),
}

/// A file problem (unreadable, too large, not statement JSON).
#[derive(Debug, Error)]
#[error("{path}: {message}")]
pub struct FileError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Reads a file of at most `cap` bytes.
///
/// # Errors
/// I/O errors or an over-large file.
pub fn read_capped(path: &Path, cap: u64) -> Result<String, FileError> {
    use std::io::Read as _;
    let err = |message: String| FileError {
        path: path.display().to_string(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    f.take(cap + 1)
        .read_to_string(&mut text)
        .map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > cap {
        return Err(err(format!("larger than {cap} bytes")));
    }
    Ok(text)
}

/// Reads a trust bundle and checks that its derived keys agree with its keys.
///
/// # Errors
/// Unreadable, not a trust bundle, or inconsistent.
pub fn load_bundle(path: &Path) -> Result<TrustBundle, FileError> {
    let text = read_capped(path, 1024 * 1024)?;
    let err = |message: String| FileError {
        path: path.display().to_string(),
        message,
    };
    let bundle: TrustBundle =
        serde_json::from_str(&text).map_err(|e| err(format!("not a trust bundle: {e}")))?;
    bundle.check_consistent().map_err(|e| err(e.to_string()))?;
    Ok(bundle)
}

/// The `*.json` statement files of `dir` in name order, leaving out trust bundles.
///
/// # Errors
/// An unreadable directory or more than [`MAX_FILES`] files.
pub fn statement_files(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let err = |message: String| FileError {
        path: dir.display().to_string(),
        message,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(e.to_string()))? {
        let path = entry.map_err(|e| err(e.to_string()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".json") || name.starts_with("trust-bundle") || !path.is_file() {
            continue;
        }
        files.push(path);
        if files.len() > MAX_FILES {
            return Err(err(format!("more than {MAX_FILES} statement files")));
        }
    }
    files.sort();
    Ok(files)
}

/// Evidence supplied to check that verdicts follow from it.
#[derive(Debug)]
pub struct EvidenceCheck {
    net: Arc<Network>,
    items: BTreeMap<Digest, Evidence>,
}

impl EvidenceCheck {
    /// Evidence items under the roster `net`, which must be the bundle's network and policy.
    ///
    /// # Errors
    /// A roster of another network or policy than the bundle's.
    pub fn new(
        net: Arc<Network>,
        bundle: &TrustBundle,
        items: impl IntoIterator<Item = Evidence>,
    ) -> Result<Self, String> {
        if net.id() != &bundle.network_id {
            return Err(format!(
                "wrong network: the roster is network {}, the trust bundle is for {}",
                net.id(),
                bundle.network_id
            ));
        }
        if net.policy_hash() != &bundle.policy_hash {
            return Err(format!(
                "policy hash mismatch: the roster's policy is {}, the trust bundle's {}",
                net.policy_hash(),
                bundle.policy_hash
            ));
        }
        Ok(Self {
            net,
            items: items.into_iter().map(|e| (e.digest(), e)).collect(),
        })
    }

    /// Reads evidence JSON files (one item or an array each).
    ///
    /// # Errors
    /// A file that is unreadable or not evidence JSON.
    pub fn read(paths: &[PathBuf]) -> Result<Vec<Evidence>, FileError> {
        let mut out = Vec::new();
        for p in paths {
            let files = if p.is_dir() {
                let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| FileError {
                        path: p.display().to_string(),
                        message: e.to_string(),
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                v.sort();
                v
            } else {
                vec![p.clone()]
            };
            for f in files {
                let text = read_capped(&f, MAX_FILE_BYTES)?;
                let parsed: Result<Vec<Evidence>, _> = if text.trim_start().starts_with('[') {
                    serde_json::from_str(&text)
                } else {
                    serde_json::from_str(&text).map(|e| vec![e])
                };
                out.extend(parsed.map_err(|e| FileError {
                    path: f.display().to_string(),
                    message: format!("not evidence JSON: {e}"),
                })?);
            }
        }
        Ok(out)
    }

    /// Checks that `signed`'s verdict is the policy's verdict on its (supplied) evidence.
    ///
    /// # Errors
    /// A missing or invalid item, or another verdict.
    pub fn check(&self, signed: &SignedStatement) -> Result<(), Failure> {
        let s = &signed.statement;
        let mut items: Vec<(Digest, &Evidence)> = Vec::with_capacity(s.evidence.len());
        for d in &s.evidence {
            let e = self.items.get(d).ok_or(Failure::MissingEvidence(*d))?;
            let bad = |reason: String| Failure::BadEvidence { digest: *d, reason };
            e.validate(&self.net).map_err(|e| bad(e.to_string()))?;
            if e.lab() != s.slot.lab || e.period() != s.slot.period {
                return Err(bad(format!(
                    "it is for lab {} period {}",
                    e.lab(),
                    e.period().0
                )));
            }
            items.push((*d, e));
        }
        let expected = policy::evaluate(&self.net.roster().policy, &items);
        if expected != s.verdict {
            return Err(Failure::VerdictMismatch {
                expected: describe(&expected),
                found: describe(&s.verdict),
            });
        }
        Ok(())
    }
}

fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Violation { reasons } => format!("violation ({} reasons)", reasons.len()),
        other => other.kind().to_string(),
    }
}

/// Verifies exported statements under `bundle` (and, when given, against the evidence), with one
/// batch verification per chunk; results in input order.
pub fn verify_exports(
    exports: &[StatementExport],
    bundle: &TrustBundle,
    evidence: Option<&EvidenceCheck>,
) -> Vec<Result<Verified, Failure>> {
    let mut results: Vec<Option<Result<Verified, Failure>>> =
        exports.iter().map(|_| None).collect();
    let mut signed = Vec::with_capacity(exports.len());
    let mut index = Vec::with_capacity(exports.len());
    for (i, e) in exports.iter().enumerate() {
        match e.check_fields(bundle) {
            Ok(s) => {
                signed.push(s);
                index.push(i);
            }
            Err(err) => results[i] = Some(Err(err.into())),
        }
    }
    let checked = verify_statements(&signed, bundle);
    for ((i, r), s) in index.into_iter().zip(checked).zip(&signed) {
        let r = r.map_err(|e| Failure::Export(e.into())).and_then(|v| {
            if let Some(ev) = evidence {
                ev.check(s)?;
            }
            Ok(v)
        });
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.expect("every statement got a result above: a field error or a verification"))
        .collect()
}

/// The outcome for one statement of one file.
#[derive(Debug)]
pub struct Outcome {
    /// The file.
    pub file: PathBuf,
    /// The statement's period and lab (as claimed by the file).
    pub period: u64,
    /// The lab.
    pub lab: String,
    /// The result.
    pub result: Result<Verified, Failure>,
}

/// Reads, parses and verifies `files` in parallel (one chunk per core).
///
/// Returns the outcomes in file order and the files that could not be read or parsed.
pub fn verify_files(
    files: &[PathBuf],
    bundle: &TrustBundle,
    evidence: Option<&EvidenceCheck>,
) -> (Vec<Outcome>, Vec<FileError>) {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<(Vec<Outcome>, Vec<FileError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || verify_chunk(part, bundle, evidence)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        Vec::new(),
                        vec![FileError {
                            path: String::new(),
                            message: "a verification thread panicked (a bug)".into(),
                        }],
                    )
                })
            })
            .collect()
    });
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for (o, e) in parts {
        outcomes.extend(o);
        errors.extend(e);
    }
    (outcomes, errors)
}

fn verify_chunk(
    files: &[PathBuf],
    bundle: &TrustBundle,
    evidence: Option<&EvidenceCheck>,
) -> (Vec<Outcome>, Vec<FileError>) {
    let mut exports = Vec::with_capacity(files.len());
    let mut origin = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for f in files {
        let parsed = read_capped(f, MAX_FILE_BYTES).and_then(|text| {
            parse_statements(&text).map_err(|e| FileError {
                path: f.display().to_string(),
                message: format!("not an exported statement: {e}"),
            })
        });
        match parsed {
            Ok(list) => {
                for s in list {
                    origin.push(f);
                    exports.push(s);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let results = verify_exports(&exports, bundle, evidence);
    let outcomes = results
        .into_iter()
        .zip(exports)
        .zip(origin)
        .map(|((result, e), f)| Outcome {
            file: f.clone(),
            period: e.period,
            lab: e.lab,
            result,
        })
        .collect();
    (outcomes, errors)
}
