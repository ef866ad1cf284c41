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

use crate::export::{Checked, ExportError, FieldCheck, StatementExport};

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
    // Every path is `dir` joined with a name, so comparing whole paths as bytes orders them as
    // `Path`'s component-wise order would, by name, without parsing components per comparison.
    files.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
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
    let mut fields = FieldCheck::new(bundle);
    let checked = exports.iter().map(|e| fields.check(e)).collect();
    verify_checked(checked, bundle, evidence)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

/// Verifies statements whose fields were checked, with one batch verification; each comes back
/// with its result, in input order. A statement whose fields disagree fails with that, as
/// [`StatementExport::verify`] would: its signature goes through the batch with the others, but
/// the batch's answer for one signature never depends on the others (`verify_many`).
fn verify_checked(
    checked: Vec<Checked>,
    bundle: &TrustBundle,
    evidence: Option<&EvidenceCheck>,
) -> Vec<(SignedStatement, Result<Verified, Failure>)> {
    let (signed, fields): (Vec<SignedStatement>, Vec<Result<(), ExportError>>) =
        checked.into_iter().map(|c| (c.signed, c.fields)).unzip();
    let verified = verify_statements(&signed, bundle);
    signed
        .into_iter()
        .zip(fields)
        .zip(verified)
        .map(|((s, f), v)| {
            let r = f.map_err(Failure::Export).and_then(|()| {
                let v = v.map_err(|e| Failure::Export(e.into()))?;
                if let Some(ev) = evidence {
                    ev.check(&s)?;
                }
                Ok(v)
            });
            (s, r)
        })
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

/// Reads, parses and verifies `files` on every core, each part of the statements going through
/// one batch verification.
///
/// With at least as many files as cores (`--all`: a file per statement) the files are split
/// between the cores, and each core verifies the statements it read while they are in its cache.
/// With fewer (one large array file, as `accord statements` prints) the files are read and parsed
/// first, then all their statements are split between the cores for verification.
///
/// Returns the outcomes in file order and the files that could not be read or parsed.
pub fn verify_files(
    files: &[PathBuf],
    bundle: &TrustBundle,
    evidence: Option<&EvidenceCheck>,
) -> (Vec<Outcome>, Vec<FileError>) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let panicked = || FileError {
        path: String::new(),
        message: "a verification thread panicked (a bug)".into(),
    };
    let chunk = files.len().div_ceil(cores).max(1);
    let parts: Vec<(usize, &[PathBuf])> = files
        .chunks(chunk)
        .enumerate()
        .map(|(i, part)| (i * chunk, part))
        .collect();
    let mut outcomes = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    // `origin[i]` is the index in `files` of the file that statement `i` of `results` came from.
    let mut record =
        |origin: Vec<usize>, results: Vec<(SignedStatement, Result<Verified, Failure>)>| {
            for (file, (s, result)) in origin.into_iter().zip(results) {
                outcomes.push(Outcome {
                    file: files[file].clone(),
                    period: s.statement.slot.period.0,
                    lab: s.statement.slot.lab,
                    result,
                });
            }
        };
    if files.len() >= cores {
        let done = on_threads(parts, |(first, part)| {
            let (read, file_errors) = read_chunk(first, part, bundle);
            let (origin, checked): (Vec<usize>, Vec<Checked>) = read.into_iter().unzip();
            (
                origin,
                verify_checked(checked, bundle, evidence),
                file_errors,
            )
        });
        for d in done {
            let Some((origin, results, file_errors)) = d else {
                errors.push(panicked());
                continue;
            };
            errors.extend(file_errors);
            record(origin, results);
        }
    } else {
        let mut checked = Vec::new();
        let mut origin = Vec::new();
        for r in on_threads(parts, |(first, part)| read_chunk(first, part, bundle)) {
            let Some((read, file_errors)) = r else {
                errors.push(panicked());
                continue;
            };
            errors.extend(file_errors);
            for (file, c) in read {
                origin.push(file);
                checked.push(c);
            }
        }
        let parts: Vec<(Vec<usize>, Vec<Checked>)> = split_owned(origin, cores)
            .into_iter()
            .zip(split_owned(checked, cores))
            .collect();
        let done = on_threads(parts, |(origin, part)| {
            (origin, verify_checked(part, bundle, evidence))
        });
        for d in done {
            let Some((origin, results)) = d else {
                errors.push(panicked());
                continue;
            };
            record(origin, results);
        }
    }
    (outcomes, errors)
}

/// Runs `work` on each part, each on a thread of its own; the result of a part whose thread
/// panicked is `None`.
fn on_threads<P: Send, R: Send>(parts: Vec<P>, work: impl Fn(P) -> R + Sync) -> Vec<Option<R>> {
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    })
}

/// `items` in at most `parts` consecutive parts of nearly equal length (none when it is empty).
fn split_owned<T>(mut items: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    if items.is_empty() {
        return Vec::new();
    }
    let size = items.len().div_ceil(parts.max(1));
    let mut out = Vec::with_capacity(parts);
    while items.len() > size {
        let rest = items.split_off(size);
        out.push(items);
        items = rest;
    }
    out.push(items);
    out
}

/// Reads, parses and field-checks `files`, the first of which is `files[first]` of the whole
/// list; each statement comes with the index of its file.
fn read_chunk(
    first: usize,
    files: &[PathBuf],
    bundle: &TrustBundle,
) -> (Vec<(usize, Checked)>, Vec<FileError>) {
    let mut checked = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    let mut fields = FieldCheck::new(bundle);
    let mut buf = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let parsed = read_capped_into(f, MAX_FILE_BYTES, &mut buf).and_then(|text| {
            fields.parse(text).map_err(|e| FileError {
                path: f.display().to_string(),
                message: format!("not an exported statement: {e}"),
            })
        });
        match parsed {
            Ok(list) => checked.extend(list.into_iter().map(|c| (first + i, c))),
            Err(e) => errors.push(e),
        }
    }
    (checked, errors)
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
    use accord_protocol::crypto::{PublicKey, SecretKey};
    use accord_protocol::fixtures::{Testnet, TestnetSpec};
    use accord_protocol::policy::Reason;
    use accord_protocol::roster::{Period, SigningMode};
    use accord_protocol::statement::{CoSigned, Slot, Statement, Unit, signing_message};
    use rand::SeedableRng as _;

    use crate::export::parse_statements;

    /// Three labs over two periods under `mode`, each statement exported as compact JSON, with
    /// the bundle; one verdict a violation, so a reason's digest and u128s are in the JSON.
    fn exported(mode: SigningMode) -> (TrustBundle, Vec<String>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let mut spec = TestnetSpec::new(4, 3, 1_700_000_000_000);
        spec.mode = mode;
        let testnet =
            Testnet::generate(&spec, &mut rng, |k| format!("12D3Koo{}", &k.to_hex()[..20]));
        let net = Network::new(testnet.roster.clone()).unwrap();
        let group = SecretKey::generate(&mut rng);
        let bundle = TrustBundle::new(&net, group.public());
        let mut signed = Vec::new();
        for p in 0..2u64 {
            let statements: Vec<Statement> = (0..3u8)
                .map(|l| Statement {
                    network_id: *net.id(),
                    policy_hash: *net.policy_hash(),
                    slot: Slot {
                        lab: format!("lab-{l:03}"),
                        period: Period(p),
                    },
                    evidence: vec![Digest([l; 32]), Digest([l + 1; 32])],
                    verdict: if l == 1 {
                        Verdict::Violation {
                            reasons: vec![Reason::TrainingFlopOverLimit {
                                attestation: Digest([l; 32]),
                                declared: 2 * 10u128.pow(26),
                                limit: 10u128.pow(26),
                            }],
                        }
                    } else {
                        Verdict::Compliant
                    },
                })
                .collect();
            match mode {
                SigningMode::PerSlot => {
                    for s in statements {
                        signed.push(SignedStatement {
                            signature: group.sign(&s.signing_bytes()),
                            statement: s,
                            batch: None,
                        });
                    }
                }
                SigningMode::PerPeriod => {
                    let unit = Unit::Period(Period(p));
                    let signature = group.sign(&signing_message(net.id(), &unit, &statements));
                    let c = CoSigned {
                        unit,
                        statements,
                        signature,
                    };
                    signed.extend(c.export(net.id()));
                }
            }
        }
        let texts = signed
            .iter()
            .map(|s| serde_json::to_string(&StatementExport::new(s, group.public())).unwrap())
            .collect();
        (bundle, texts)
    }

    /// `StatementExport::check_fields` as it was before the checks were shared with the
    /// borrowed parse: the oracle the new code must agree with.
    fn check_fields_before(
        e: &StatementExport,
        bundle: &TrustBundle,
    ) -> Result<SignedStatement, ExportError> {
        let message = hex::decode(&e.message).map_err(|_| ExportError::BadHex)?;
        let signed = e.to_signed();
        if signed.message() != message {
            return Err(ExportError::MessageMismatch);
        }
        if e.group_key != bundle.group_key {
            return Err(ExportError::GroupKeyMismatch {
                expected: bundle.group_key,
                found: e.group_key,
            });
        }
        if let Some(bytes) = &e.statement_bytes {
            let bytes = hex::decode(bytes).map_err(|_| ExportError::BadHex)?;
            if bytes != signed.statement.signing_bytes() {
                return Err(ExportError::StatementBytesMismatch);
            }
        }
        if let Some(note) = &e.checkpoint_note {
            let expected = signed.batch.as_ref().and_then(|b| {
                accord_protocol::transparency::group_note(
                    &bundle.network_id,
                    &b.checkpoint,
                    &bundle.group_key,
                    &signed.signature,
                )
                .ok()
            });
            if expected.as_deref() != Some(note.as_str()) {
                return Err(ExportError::NoteMismatch);
            }
        }
        Ok(signed)
    }

    /// What one file gives, as text: the file error, or each statement's result.
    fn before(text: &str, bundle: &TrustBundle) -> Vec<String> {
        match parse_statements(text) {
            Err(e) => vec![format!("file: not an exported statement: {e}")],
            Ok(list) => list
                .iter()
                .map(|e| {
                    match check_fields_before(e, bundle)
                        .and_then(|s| Ok(accord_protocol::verify_statement(&s, bundle)?))
                    {
                        Ok(v) => format!("{} {} ok {v:?}", e.period, e.lab),
                        Err(err) => format!("{} {} {err}", e.period, e.lab),
                    }
                })
                .collect(),
        }
    }

    fn now(files: &[PathBuf], bundle: &TrustBundle) -> Vec<Vec<String>> {
        let (outcomes, errors) = verify_files(files, bundle, None);
        let mut per_file: Vec<Vec<String>> = files.iter().map(|_| Vec::new()).collect();
        for e in errors {
            let i = files
                .iter()
                .position(|f| f.display().to_string() == e.path)
                .unwrap();
            per_file[i].push(format!("file: {}", e.message));
        }
        for o in outcomes {
            let i = files.iter().position(|f| *f == o.file).unwrap();
            per_file[i].push(match &o.result {
                Ok(v) => format!("{} {} ok {v:?}", o.period, o.lab),
                Err(err) => format!("{} {} {err}", o.period, o.lab),
            });
        }
        per_file
    }

    /// `text` with the first string value of `field` (compact JSON) changed by `f`.
    fn edit(text: &str, field: &str, f: impl Fn(&str) -> String) -> String {
        let key = format!("\"{field}\":\"");
        let start = text.find(&key).unwrap() + key.len();
        let end = start + text[start..].find('"').unwrap();
        format!("{}{}{}", &text[..start], f(&text[start..end]), &text[end..])
    }

    fn flip_last(v: &str) -> String {
        let (head, last) = v.split_at(v.len() - 1);
        format!("{head}{}", if last == "0" { "1" } else { "0" })
    }

    /// Every way of editing a statement file tried below: each field changed, made not hex,
    /// escaped, re-cased, dropped, duplicated, and the document broken.
    fn tampered(text: &str, other_key: &PublicKey) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = vec![("as exported", text.to_owned())];
        v.push(("pretty", {
            let e: StatementExport = serde_json::from_str(text).unwrap();
            serde_json::to_string_pretty(&e).unwrap()
        }));
        for field in [
            "message",
            "signature",
            "group_key",
            "network_id",
            "policy_hash",
        ] {
            v.push(("flipped", edit(text, field, flip_last)));
            v.push(("upper case", edit(text, field, str::to_uppercase)));
            v.push(("not hex", edit(text, field, |s| format!("zz{}", &s[2..]))));
            v.push(("odd length", edit(text, field, |s| s[1..].to_owned())));
            v.push((
                "escaped",
                edit(text, field, |s| {
                    format!("\\u00{:x}{}", s.as_bytes()[0], &s[1..])
                }),
            ));
            v.push(("spaces", edit(text, field, |s| format!(" {s} "))));
        }
        v.push((
            "another group key",
            edit(text, "group_key", |_| other_key.to_hex()),
        ));
        v.push(("lab", edit(text, "lab", |_| "lab-009".into())));
        v.push((
            "lab escaped",
            edit(text, "lab", |s| s.replace('-', "\\u002d")),
        ));
        v.push((
            "verdict_kind",
            edit(text, "verdict_kind", |_| "compliant".into()),
        ));
        v.push((
            "verdict_kind not a string",
            text.replacen("\"verdict_kind\":\"", "\"verdict_kind\":5,\"x\":\"", 1),
        ));
        v.push((
            "period",
            text.replacen("\"period\":1,", "\"period\":0,", 1).replacen(
                "\"period\":0,",
                "\"period\":1,",
                1,
            ),
        ));
        v.push((
            "period as string",
            text.replacen("\"period\":", "\"period\":\"1\",\"y\":", 1),
        ));
        v.push((
            "evidence",
            text.replacen("\"evidence\":[\"", "\"evidence\":[\"f", 1)
                .replacen("\"evidence\":[\"f0", "\"evidence\":[\"f", 1),
        ));
        v.push(("evidence out of order", {
            let start = text.find("\"evidence\":[").unwrap() + 12;
            let end = start + text[start..].find(']').unwrap();
            let mut items: Vec<&str> = text[start..end].split(',').collect();
            items.reverse();
            format!("{}{}{}", &text[..start], items.join(","), &text[end..])
        }));
        v.push(("unknown field", text.replacen('{', "{\"extra\":[1,{}],", 1)));
        v.push((
            "duplicate field",
            text.replacen('{', "{\"lab\":\"lab-000\",", 1),
        ));
        v.push((
            "missing field",
            text.replacen("\"policy_hash\"", "\"policy_hash_\"", 1),
        ));
        v.push(("truncated", text[..text.len() / 2].to_owned()));
        v.push(("trailing garbage", format!("{text} x")));
        v.push(("array of two", format!("[{text},{text}]")));
        v.push(("empty array", "[]".to_owned()));
        v.push((
            "batch null",
            text.replacen("\"batch\":{", "\"batch\":null,\"z\":{", 1),
        ));
        if text.contains("statement_bytes") {
            for field in ["statement_bytes", "checkpoint_note", "checkpoint"] {
                v.push(("flipped", edit(text, field, |s| s.replacen('a', "b", 1))));
                v.push(("not hex", edit(text, field, |s| format!("zz{}", &s[2..]))));
                v.push(("upper case", edit(text, field, str::to_uppercase)));
            }
            v.push((
                "statement_bytes dropped",
                text.replacen("\"statement_bytes\"", "\"statement_bytes_\"", 1),
            ));
            v.push((
                "checkpoint_note dropped",
                text.replacen("\"checkpoint_note\"", "\"checkpoint_note_\"", 1),
            ));
            v.push(("statement_bytes null", {
                let t = edit(text, "statement_bytes", |_| String::new());
                t.replacen("\"statement_bytes\":\"\"", "\"statement_bytes\":null", 1)
            }));
            v.push((
                "index",
                text.replacen("\"index\":0", "\"index\":1", 1).replacen(
                    "\"index\":2",
                    "\"index\":0",
                    1,
                ),
            ));
            v.push((
                "proof",
                text.replacen("\"proof\":[\"", "\"proof\":[\"0", 1)
                    .replacen("\"proof\":[\"00", "\"proof\":[\"1", 1),
            ));
        }
        v
    }

    #[test]
    fn every_tampered_file_fails_as_it_did_before_the_borrowed_parse() {
        for mode in [SigningMode::PerSlot, SigningMode::PerPeriod] {
            let (bundle, texts) = exported(mode);
            let other = SecretKey::from_seed(&[7; 32]).public();
            let dir = tempfile::tempdir().unwrap();
            let mut files = Vec::new();
            let mut expected = Vec::new();
            let mut what = Vec::new();
            // Consecutive files share a period's checkpoint note, so the remembered note is
            // used and must not leak from one file into another's check.
            for (i, text) in texts.iter().enumerate() {
                for (j, (name, t)) in tampered(text, &other).into_iter().enumerate() {
                    let path = dir.path().join(format!("s{i}-{j:02}.json"));
                    std::fs::write(&path, &t).unwrap();
                    expected.push(before(&t, &bundle));
                    what.push(format!("{mode:?} statement {i}, {name}: {t}"));
                    files.push(path);
                }
            }
            let got = now(&files, &bundle);
            let mut failures = 0;
            for ((e, g), w) in expected.iter().zip(&got).zip(&what) {
                assert_eq!(e, g, "{w}");
                failures += e.iter().filter(|r| !r.contains(" ok ")).count();
            }
            // The edits do reach the checks: most fail, the harmless ones pass.
            assert!(failures > files.len() / 2, "{failures} of {}", files.len());
            // One array file, fewer files than cores: its statements are split between the
            // cores for verification, and come back in order with the same results.
            let mut statements: Vec<String> = texts.clone();
            statements.insert(2, edit(&texts[2], "signature", flip_last));
            statements.insert(4, edit(&texts[3], "message", flip_last));
            let array = format!("[{}]", statements.join(","));
            let path = dir.path().join("array.json");
            std::fs::write(&path, &array).unwrap();
            let expected = before(&array, &bundle);
            assert_eq!(expected.iter().filter(|r| !r.contains(" ok ")).count(), 2);
            assert_eq!(
                now(std::slice::from_ref(&path), &bundle),
                std::slice::from_ref(&expected)
            );
            // And with the array among per-statement files.
            let mut mixed = files[..3].to_vec();
            mixed.push(path);
            let got = now(&mixed, &bundle);
            assert_eq!(got[3], expected);
            assert_eq!(got[..3], now(&files[..3], &bundle)[..]);
        }
    }

    #[test]
    fn split_owned_keeps_the_order_in_nearly_equal_parts() {
        assert!(split_owned(Vec::<u8>::new(), 2).is_empty());
        assert_eq!(split_owned(vec![1], 2), [vec![1]]);
        assert_eq!(split_owned(vec![1, 2, 3], 2), [vec![1, 2], vec![3]]);
        assert_eq!(
            split_owned((0..10).collect(), 3),
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
        );
        assert_eq!(split_owned(vec![1, 2], 0), [vec![1, 2]]);
    }
}
