//! Cross-crate integration tests for Accord: real `accord` node processes on loopback, killed
//! with SIGKILL and restarted, and statements checked by independent Ed25519 verifiers. The
//! tests live in `tests/` (one behaviour per file) and share `tests/common/mod.rs`; they start
//! the `accord` binary that `cargo test --workspace` (or `scripts/test.sh`) builds.
