//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`)
//! through its target with the stable toolchain, so CI checks on every change that no input
//! the fuzzer ever kept panics. A target whose corpus directory is missing or empty fails: a
//! corpus deleted by accident must not turn this test into one that cannot fail.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_input_runs_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut report = Vec::new();
    for (name, target) in accord_fuzzing::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is missing or empty (docs/fuzzing.md says how to rebuild it)"
        );
        let regressions = inputs(&root.join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "target {name} panicked on {} (reproduce: cargo +nightly fuzz run {name} {})",
                path.display(),
                path.display()
            );
        }
        report.push(format!("{name}: {} + {}", corpus.len(), regressions.len()));
    }
    eprintln!("replayed {}", report.join(", "));
}

#[test]
fn the_seed_inputs_are_valid_for_their_targets() {
    // Each target's seeds come from the fixture's honest run; an empty list would mean the
    // fixture or a format changed under the seeder.
    for (name, target) in accord_fuzzing::TARGETS {
        let seeds = accord_fuzzing::seeds(name);
        assert!(!seeds.is_empty(), "no seed inputs for {name}");
        for s in &seeds {
            target(s);
        }
    }
}
