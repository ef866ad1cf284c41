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
/// I/O errors, an over-large file or one that is not UTF-8.
pub fn read_capped(path: &Path, cap: u64) -> Result<String, FileError> {
    let mut buf = Vec::new();
    let len = read_capped_into(path, cap, &mut buf)?.len();
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| FileError {
        path: path.display().to_string(),
        message: NOT_UTF8.into(),
    })
}

/// The first read of [`read_capped_into`] asks for this much (statement files are a few KiB).
const READ_CHUNK: usize = 64 * 1024;

/// What [`read_capped`] says about a file that is not UTF-8 (the words of `read_to_string`).
const NOT_UTF8: &str = "stream did not contain valid UTF-8";

/// Reads a file of at most `cap` bytes into `buf`, which is reused from file to file, and returns
/// its text.
///
/// A file smaller than the buffer costs one `open`, one `read` for its bytes, one `read` that sees
/// the end, and the `close`: no `stat`, and none of the doubling reads of `read_to_string`. `buf`
/// keeps its (initialized) length between calls, so nothing is zeroed again; it grows to the
/// largest file read, at most `cap + 1` bytes.
///
/// # Errors
/// I/O errors, an over-large file or one that is not UTF-8.
pub fn read_capped_into<'b>(
    path: &Path,
    cap: u64,
    buf: &'b mut Vec<u8>,
) -> Result<&'b str, FileError> {
    use std::io::Read as _;
    let err = |message: String| FileError {
        path: path.display().to_string(),
        message,
    };
    let mut f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    // One byte over the cap tells an over-large file from one of exactly `cap` bytes.
    let limit = usize::try_from(cap).map_or(usize::MAX, |c| c.saturating_add(1));
    let mut filled = 0;
    while filled < limit {
        if filled == buf.len() {
            let grown = buf.len().saturating_mul(2).max(READ_CHUNK).min(limit);
            buf.resize(grown, 0);
        }
        let end = buf.len().min(limit);
        match f.read(&mut buf[filled..end]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e.to_string())),
        }
    }
    if filled as u64 > cap {
        return Err(err(format!("larger than {cap} bytes")));
    }
    std::str::from_utf8(&buf[..filled]).map_err(|_| err(NOT_UTF8.into()))
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
        let entry = entry.map_err(|e| err(e.to_string()))?;
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".json") || name.starts_with("trust-bundle") {
            continue;
        }
        // The directory entry's type, without a `stat` per file; a symbolic link (or a file
        // system that does not report types) is followed as `Path::is_file` follows it.
        let is_file = match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_file(),
            _ => path.is_file(),
        };
        if !is_file {
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
    let mut buf = Vec::new();
    for f in files {
        let parsed = read_capped_into(f, MAX_FILE_BYTES, &mut buf).and_then(|text| {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_buffer_reads_each_file_whole_and_enforces_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        let small = dir.path().join("small.json");
        let exact = dir.path().join("exact.json");
        let latin1 = dir.path().join("latin1.json");
        std::fs::write(&big, "x".repeat(3 * READ_CHUNK + 17)).unwrap();
        std::fs::write(&small, "{}").unwrap();
        std::fs::write(&exact, "0123456789").unwrap();
        std::fs::write(&latin1, b"{\"lab\":\"caf\xe9\"}").unwrap();
        let mut buf = Vec::new();
        let cap = MAX_FILE_BYTES;
        assert_eq!(
            read_capped_into(&big, cap, &mut buf).unwrap().len(),
            3 * READ_CHUNK + 17
        );
        // The buffer is longer than the next file: only that file's bytes come back.
        assert_eq!(read_capped_into(&small, cap, &mut buf).unwrap(), "{}");
        assert_eq!(
            read_capped_into(&exact, 10, &mut buf).unwrap(),
            "0123456789"
        );
        let over = read_capped_into(&exact, 9, &mut buf).unwrap_err();
        assert_eq!(over.message, "larger than 9 bytes");
        let over = read_capped_into(&big, READ_CHUNK as u64, &mut buf).unwrap_err();
        assert!(over.message.starts_with("larger than"), "{over}");
        // The same words as `read_to_string`, which `read_capped` used before.
        let mut text = String::new();
        let std_err =
            std::io::Read::read_to_string(&mut std::fs::File::open(&latin1).unwrap(), &mut text)
                .unwrap_err();
        let ours = read_capped_into(&latin1, cap, &mut buf).unwrap_err();
        assert_eq!(ours.message, std_err.to_string());
        assert_eq!(
            read_capped(&latin1, cap).unwrap_err().message,
            std_err.to_string()
        );
        assert_eq!(read_capped(&small, cap).unwrap(), "{}");
        let missing = read_capped_into(&dir.path().join("none.json"), cap, &mut buf).unwrap_err();
        assert!(missing.path.ends_with("none.json"));
    }

    #[test]
    fn statement_files_lists_json_files_and_followed_links_but_not_bundles_or_directories() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for name in ["b.json", "a.json", "trust-bundle.json", "notes.txt"] {
            std::fs::write(p.join(name), "{}").unwrap();
        }
        std::fs::create_dir(p.join("sub.json")).unwrap();
        std::os::unix::fs::symlink(p.join("a.json"), p.join("c.json")).unwrap();
        std::os::unix::fs::symlink(p.join("sub.json"), p.join("d.json")).unwrap();
        std::os::unix::fs::symlink(p.join("gone"), p.join("e.json")).unwrap();
        let names: Vec<String> = statement_files(p)
            .unwrap()
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.json", "c.json"]);
    }
}
