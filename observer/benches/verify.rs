//! Observer verification throughput: `accord verify --all DIR` (the library code the command runs:
//! list the directory, read and parse every file, check every field, batch-verify) against raw
//! ed25519-dalek batch verification of the same signatures, in the same run.
//!
//! `cargo bench -p accord-observer --bench verify`; the result and the ratio are in
//! `docs/performance.md`, "Observer verification". After criterion's report the bench prints
//! the ratios against the raw baseline from interleaved rounds (each round times the baseline and
//! every case back to back, so a busy second core slows them alike), the number the target is
//! stated in.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use accord_observer::export::StatementExport;
use accord_observer::verify::{MAX_FILE_BYTES, read_capped_into, statement_files, verify_files};
use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::fixtures::{Testnet, TestnetSpec};
use accord_protocol::policy::Verdict;
use accord_protocol::roster::{Network, Period, SigningMode};
use accord_protocol::statement::{CoSigned, SignedStatement, Slot, Statement, Unit};
use accord_protocol::verify::{TrustBundle, verify_statements};
use criterion::{Criterion, Throughput, criterion_group};
use rand::SeedableRng as _;

/// Statements per run.
const N: usize = 2048;
/// Labs per period in the per-period batch case.
const LABS: usize = 64;

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    array: tempfile::NamedTempFile,
    bundle: TrustBundle,
    raw: Vec<(Vec<u8>, ed25519_dalek::Signature)>,
    key: ed25519_dalek::VerifyingKey,
    signed: Vec<SignedStatement>,
}

fn statement(net: &Network, lab: usize, period: u64, rng: &mut impl rand::RngCore) -> Statement {
    let mut evidence: Vec<Digest> = (0..2)
        .map(|_| {
            let mut d = [0u8; 32];
            rng.fill_bytes(&mut d);
            Digest(d)
        })
        .collect();
    evidence.sort();
    Statement {
        network_id: *net.id(),
        policy_hash: *net.policy_hash(),
        slot: Slot {
            lab: format!("lab-{lab:03}"),
            period: Period(period),
        },
        evidence,
        verdict: Verdict::Compliant,
    }
}

/// `N` exported statements in a directory, signed by a group key (a FROST group signature is a
/// plain Ed25519 signature, so an ordinary key stands in for the aggregate here).
fn fixture(mode: SigningMode) -> Fixture {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut spec = TestnetSpec::new(4, 2, 1_700_000_000_000);
    spec.mode = mode;
    let testnet = Testnet::generate(&spec, &mut rng, |k| format!("12D3Koo{}", &k.to_hex()[..20]));
    let net = Network::new(testnet.roster.clone()).unwrap();
    let group = SecretKey::generate(&mut rng);
    let bundle = TrustBundle::new(&net, group.public());
    let mut signed: Vec<SignedStatement> = Vec::new();
    match mode {
        SigningMode::PerSlot => {
            for i in 0..N {
                let s = statement(&net, i % LABS, (i / LABS) as u64, &mut rng);
                signed.push(SignedStatement {
                    signature: group.sign(&s.signing_bytes()),
                    statement: s,
                    batch: None,
                });
            }
        }
        SigningMode::PerPeriod => {
            for p in 0..(N / LABS) as u64 {
                let statements: Vec<Statement> =
                    (0..LABS).map(|l| statement(&net, l, p, &mut rng)).collect();
                let unit = Unit::Period(Period(p));
                let message =
                    accord_protocol::statement::signing_message(net.id(), &unit, &statements);
                let c = CoSigned {
                    unit,
                    statements,
                    signature: group.sign(&message),
                };
                signed.extend(c.export(net.id()));
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let raw: Vec<(Vec<u8>, ed25519_dalek::Signature)> = signed
        .iter()
        .map(|s| {
            (
                s.message(),
                ed25519_dalek::Signature::from_bytes(&s.signature.0),
            )
        })
        .collect();
    let exports: Vec<StatementExport> = signed
        .iter()
        .map(|s| StatementExport::new(s, group.public()))
        .collect();
    for (i, e) in exports.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("statement-{i:05}.json")),
            serde_json::to_string_pretty(e).unwrap(),
        )
        .unwrap();
    }
    // The same statements as one JSON array (what `accord statements` prints), outside the
    // directory `--all` reads.
    let array = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(array.path(), serde_json::to_string(&exports).unwrap()).unwrap();
    Fixture {
        array,
        dir: dir.path().to_path_buf(),
        _dir: dir,
        key: bundle.group_key.verifying_key().unwrap(),
        bundle,
        raw,
        signed,
    }
}

fn accord_verify_all(f: &Fixture) {
    let files = statement_files(&f.dir).unwrap();
    let (outcomes, errors) = verify_files(&files, &f.bundle, None);
    assert!(errors.is_empty());
    assert_eq!(outcomes.len(), N);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
}

fn accord_verify_array(f: &Fixture) {
    let (outcomes, errors) = verify_files(&[f.array.path().to_path_buf()], &f.bundle, None);
    assert!(errors.is_empty());
    assert_eq!(outcomes.len(), N);
    assert!(outcomes.iter().all(|o| o.result.is_ok()));
}

fn raw_batch(items: &[(Vec<u8>, ed25519_dalek::Signature)], key: ed25519_dalek::VerifyingKey) {
    let messages: Vec<&[u8]> = items.iter().map(|(m, _)| m.as_slice()).collect();
    let signatures: Vec<ed25519_dalek::Signature> = items.iter().map(|(_, s)| *s).collect();
    let keys = vec![key; items.len()];
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).unwrap();
}

static SLOT: LazyLock<Fixture> = LazyLock::new(|| fixture(SigningMode::PerSlot));
static PERIOD: LazyLock<Fixture> = LazyLock::new(|| fixture(SigningMode::PerPeriod));

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Raw batch verification split over every core, as `verify_files` splits the files.
fn raw_batch_all_cores(f: &Fixture) {
    let cores = cores();
    std::thread::scope(|s| {
        for part in f.raw.chunks(N.div_ceil(cores)) {
            s.spawn(move || raw_batch(part, f.key));
        }
    });
}

/// What `--all` costs besides parsing and checking: listing the directory and reading every file
/// (into one buffer per core, as `verify_files` reads), split over every core.
fn read_only(f: &Fixture) {
    let files = statement_files(&f.dir).unwrap();
    std::thread::scope(|s| {
        for part in files.chunks(files.len().div_ceil(cores())) {
            s.spawn(move || {
                let mut buf = Vec::new();
                for file in part {
                    read_capped_into(file, MAX_FILE_BYTES, &mut buf).unwrap();
                }
            });
        }
    });
}

/// The protocol's checks and batch verification of the decoded statements, without files or
/// JSON, split over every core.
fn protocol_only(f: &Fixture) {
    std::thread::scope(|s| {
        for part in f.signed.chunks(N.div_ceil(cores())) {
            s.spawn(move || {
                assert!(verify_statements(part, &f.bundle).iter().all(Result::is_ok));
            });
        }
    });
}

fn bench(c: &mut Criterion) {
    let slot = &*SLOT;
    let period = &*PERIOD;
    let mut g = c.benchmark_group("observer-verification");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("raw ed25519-dalek verify_batch, one core", |b| {
        b.iter(|| raw_batch(&slot.raw, slot.key));
    });
    g.bench_function("raw ed25519-dalek verify_batch, all cores", |b| {
        b.iter(|| raw_batch_all_cores(slot));
    });
    g.bench_function("accord verify --all, per-slot signatures", |b| {
        b.iter(|| accord_verify_all(slot));
    });
    g.bench_function("accord verify --all, per-period batches of 64", |b| {
        b.iter(|| accord_verify_all(period));
    });
    g.bench_function("accord verify, one array file, per-slot signatures", |b| {
        b.iter(|| accord_verify_array(slot));
    });
    g.bench_function(
        "accord verify, one array file, per-period batches of 64",
        |b| {
            b.iter(|| accord_verify_array(period));
        },
    );
    g.finish();
}

/// Rounds of the same-run ratio summary.
const ROUNDS: usize = 60;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The ratios the target is stated in: each round times the raw baselines and every case back to
/// back; the medians over the rounds are compared.
fn ratio_summary() {
    let (slot, period) = (&*SLOT, &*PERIOD);
    let cases: [(&str, &dyn Fn()); 8] = [
        ("raw verify_batch, one core", &|| {
            raw_batch(&slot.raw, slot.key)
        }),
        ("raw verify_batch, all cores", &|| raw_batch_all_cores(slot)),
        ("accord verify --all, per-slot (2 048 files)", &|| {
            accord_verify_all(slot)
        }),
        (
            "accord verify --all, period batches of 64 (2 048 files)",
            &|| {
                accord_verify_all(period);
            },
        ),
        ("accord verify, one array file, per-slot", &|| {
            accord_verify_array(slot)
        }),
        ("accord verify, one array file, period batches", &|| {
            accord_verify_array(period);
        }),
        (
            "(part) list and read the 2 048 per-slot files, all cores",
            &|| read_only(slot),
        ),
        (
            "(part) verify_statements in memory, per-slot, all cores",
            &|| {
                protocol_only(slot);
            },
        ),
    ];
    let mut times: Vec<Vec<Duration>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for ((_, case), t) in cases.iter().zip(&mut times) {
            let start = Instant::now();
            case();
            t.push(start.elapsed());
        }
    }
    // Medians, and the best round of each case: another build on the machine slows some rounds
    // of every case, and the best round is the least disturbed.
    for (label, pick) in [
        ("medians", median as fn(Vec<Duration>) -> Duration),
        ("best round", |v: Vec<Duration>| {
            v.into_iter().min().expect("ROUNDS > 0")
        }),
    ] {
        let picked: Vec<Duration> = times.iter().cloned().map(pick).collect();
        let (one, all) = (picked[0], picked[1]);
        println!(
            "\nSame-run ratios ({ROUNDS} interleaved rounds, {label}, {N} statements, {} cores; throughput as % of raw):",
            cores()
        );
        println!(
            "{:<58} {:>9} {:>10} {:>10}",
            "case", "time", "vs 1 core", "vs all"
        );
        for ((name, _), t) in cases.iter().zip(&picked) {
            println!(
                "{:<58} {:>7.2}ms {:>9.0}% {:>9.0}%",
                name,
                t.as_secs_f64() * 1e3,
                100.0 * one.as_secs_f64() / t.as_secs_f64(),
                100.0 * all.as_secs_f64() / t.as_secs_f64()
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Not when criterion only lists, tests or profiles the cases.
    let args: Vec<String> = std::env::args().collect();
    if !args
        .iter()
        .any(|a| a == "--list" || a == "--test" || a == "--profile-time")
    {
        ratio_summary();
    }
}
