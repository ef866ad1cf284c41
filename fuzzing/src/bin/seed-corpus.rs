//! `seed-corpus`: writes the seed inputs of every fuzz target (`accord_fuzzing::seeds`, valid
//! encodings taken from the fixture's honest run) into `fuzz/corpus/<target>/seed-<k>`, so a
//! fresh or minimized corpus starts from the inside of each format (docs/fuzzing.md).
//!
//! ```text
//! cargo run -p accord-fuzzing --bin seed-corpus [-- FUZZ_DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz"),
        PathBuf::from,
    );
    for (name, _) in accord_fuzzing::TARGETS {
        let dir = root.join("corpus").join(name);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("seed-corpus: cannot create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        let seeds = accord_fuzzing::seeds(name);
        for (k, bytes) in seeds.iter().enumerate() {
            let path = dir.join(format!("seed-{k}"));
            if let Err(e) = std::fs::write(&path, bytes) {
                eprintln!("seed-corpus: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        println!("{name}: {} seed inputs in {}", seeds.len(), dir.display());
    }
    ExitCode::SUCCESS
}
