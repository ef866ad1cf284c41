//! 5 members, t = 4: the DKG runs over the network (no dealer), a realistic period is submitted,
//! a co-signed statement comes for every slot at every member, and every statement verifies
//! with `accord verify`, Python's `cryptography`, PyNaCl and the OpenSSL command line; a one-bit
//! change in message, signature or key fails under all of them (FAULTS 31). The Python check of
//! `docs/observers.md` (signature and inclusion proof) is run as written on every statement.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use accord_protocol::fixtures::LabConduct;
use common::*;

const PYTHON_CHECK: &str = r#"
import json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature
import nacl.signing, nacl.exceptions

def crypto_ok(key, sig, msg):
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False

def nacl_ok(key, sig, msg):
    try:
        nacl.signing.VerifyKey(key).verify(msg, sig)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, nacl.exceptions.CryptoError):
        return False

def flip(b, i):
    b = bytearray(b)
    b[i // 8] ^= 1 << (i % 8)
    return bytes(b)

n = 0
for path in sys.argv[1:]:
    s = json.load(open(path))
    msg, sig, key = (bytes.fromhex(s[k]) for k in ("message", "signature", "group_key"))
    assert len(sig) == 64 and len(key) == 32
    assert crypto_ok(key, sig, msg), f"cryptography rejects {path}"
    assert nacl_ok(key, sig, msg), f"PyNaCl rejects {path}"
    for bit in (0, 7, len(msg) * 8 - 1):
        assert not crypto_ok(key, sig, flip(msg, bit)) and not nacl_ok(key, sig, flip(msg, bit))
    for bit in (0, 300, 511):
        assert not crypto_ok(key, flip(sig, bit), msg) and not nacl_ok(key, flip(sig, bit), msg)
    for bit in (0, 100, 200):
        assert not crypto_ok(flip(key, bit), sig, msg) and not nacl_ok(flip(key, bit), sig, msg)
    n += 1
print(f"python verified {n}")
"#;

fn openssl_verify(dir: &std::path::Path, key: &[u8], sig: &[u8], msg: &[u8]) -> bool {
    // SubjectPublicKeyInfo for Ed25519 (RFC 8410): fixed 12-byte prefix and the raw key.
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(key);
    std::fs::write(dir.join("key.der"), &der).unwrap();
    std::fs::write(dir.join("sig.bin"), sig).unwrap();
    std::fs::write(dir.join("msg.bin"), msg).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-rawin"])
        .arg("-inkey")
        .arg(dir.join("key.der"))
        .arg("-in")
        .arg(dir.join("msg.bin"))
        .arg("-sigfile")
        .arg(dir.join("sig.bin"))
        .output()
        .expect("openssl must be installed (scripts/test.sh installs it)");
    out.status.success()
}

#[test]
fn dkg_over_the_network_then_every_slot_is_co_signed_and_verifies_independently() {
    let mut c = Cluster::new(5, 5, 20, false);
    assert_eq!(c.net.t(), 4);
    c.start_all();
    c.wait_connected();
    let group_key = c.run_dkg();

    let period = c.open_period(6_000);
    let receipts = c.submit_period(
        period,
        &[
            LabConduct::Compliant,
            LabConduct::OverCompute,
            LabConduct::Silent,
            LabConduct::DoubleSigns,
            LabConduct::OverCluster,
        ],
    );
    assert_eq!(receipts.len(), 5, "1 + 1 + 0 + 2 + 1 attestations");

    let statements = c.wait_statements(0, period, Duration::from_secs(30));
    for i in 1..5 {
        assert_eq!(
            c.wait_statements(i, period, Duration::from_secs(10)),
            statements
        );
    }
    let kinds: Vec<&str> = statements.iter().map(|s| s.verdict_kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "compliant",
            "violation",
            "no-attestation",
            "violation",
            "violation"
        ]
    );
    assert!(statements.iter().all(|s| s.group_key == group_key));

    let out_dir = c.dir.path().join("export");
    let files = write_statements(&out_dir, &c.trust_bundle_json(2), &statements);
    let mut args = vec![
        "verify".to_string(),
        "--trust".into(),
        out_dir.join("trust-bundle.json").display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = accord(&args);
    assert!(
        out.status.success(),
        "accord verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("OK ").count(),
        5
    );

    let py = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_CHECK)
        .args(&files)
        .output()
        .expect("python3 must be installed (scripts/test.sh installs it)");
    assert!(
        py.status.success(),
        "Python verification failed (run scripts/test.sh to install cryptography and pynacl): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "python verified 5"
    );

    let tmp = c.dir.path().join("openssl");
    std::fs::create_dir_all(&tmp).unwrap();
    for s in &statements {
        let msg = hex::decode(&s.message).unwrap();
        assert!(openssl_verify(&tmp, &s.group_key.0, &s.signature.0, &msg));
        let mut bad = msg.clone();
        bad[0] ^= 1;
        assert!(!openssl_verify(&tmp, &s.group_key.0, &s.signature.0, &bad));
        let mut bad_sig = s.signature.0;
        bad_sig[10] ^= 0x20;
        assert!(!openssl_verify(&tmp, &s.group_key.0, &bad_sig, &msg));
        let mut bad_key = s.group_key.0;
        bad_key[5] ^= 0x04;
        assert!(!openssl_verify(&tmp, &bad_key, &s.signature.0, &msg));
    }

    // The documented Python check (signature and RFC 9162 inclusion proof), run as written.
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/observers.md"),
    )
    .unwrap();
    let block = docs
        .split("<!-- observers-python-begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- observers-python-end -->").next())
        .unwrap()
        .trim()
        .trim_start_matches("```python")
        .trim_end_matches("```");
    let bundle_file = out_dir.join("trust-bundle.json");
    for f in &files {
        let py = Command::new("python3")
            .arg("-c")
            .arg(block)
            .arg(f)
            .arg(&bundle_file)
            .output()
            .unwrap();
        assert!(
            py.status.success() && String::from_utf8_lossy(&py.stdout).starts_with("OK "),
            "docs/observers.md Python check on {}: {}",
            f.display(),
            String::from_utf8_lossy(&py.stderr)
        );
        // A statement whose inclusion proof was tampered with fails the documented check.
        let mut s: accord_observer::export::StatementExport =
            serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let b = s
            .batch
            .as_mut()
            .expect("the default network signs per period");
        if let Some(p) = b.proof.first_mut() {
            p.0[0] ^= 1;
        } else {
            b.index += 1;
        }
        let bad = out_dir.join("bad-proof.json");
        std::fs::write(&bad, serde_json::to_string(&s).unwrap()).unwrap();
        let py = Command::new("python3")
            .arg("-c")
            .arg(block)
            .arg(&bad)
            .arg(&bundle_file)
            .output()
            .unwrap();
        assert!(!py.status.success(), "a bad inclusion proof must fail");
        std::fs::remove_file(&bad).unwrap();
    }

    // A tampered decoded field makes `accord verify` fail even with the original message.
    let mut tampered = statements[1].clone();
    tampered.verdict = accord_protocol::policy::Verdict::Compliant;
    tampered.verdict_kind = "compliant".into();
    let path = out_dir.join("tampered.json");
    std::fs::write(&path, serde_json::to_string(&tampered).unwrap()).unwrap();
    let out = accord(&[
        "verify",
        "--bundle",
        out_dir.join("trust-bundle.json").to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));

    // `--all DIR` batch-verifies the directory: the five good statements pass, the tampered one
    // is named with its reason.
    let out = accord(&[
        "verify",
        "--trust",
        out_dir.join("trust-bundle.json").to_str().unwrap(),
        "--all",
        out_dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert_eq!(stdout.matches("OK ").count(), 5, "{stdout}");
    assert_eq!(stdout.matches("FAIL").count(), 1, "{stdout}");
    assert!(
        stdout.contains("tampered.json") && stdout.contains("does not match"),
        "{stdout}"
    );
}
