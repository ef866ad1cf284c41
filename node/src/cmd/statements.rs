//! `accord statements`: list co-signed statements from a node, or write them and the trust bundle
//! into a directory as files for `accord verify` (also how `accord demo` writes them).

use std::path::{Path, PathBuf};

use accord_observer::client::Client;
use accord_observer::export::StatementExport;
use accord_protocol::crypto::Digest;
use accord_protocol::verify::TrustBundle;
use anyhow::{Result, bail};
use clap::Args;

use super::common::ApiArgs;

// `accord statements`: the node, the filters and where to write.
#[derive(Debug, Args)]
pub(super) struct StatementsArgs {
    #[command(flatten)]
    pub(super) api: ApiArgs,
    /// Only this period.
    #[arg(long, env = "ACCORD_PERIOD")]
    pub(super) period: Option<u64>,
    /// Only this lab.
    #[arg(long, env = "ACCORD_LAB")]
    pub(super) lab: Option<String>,
    /// Write each statement and the trust bundle into this directory instead of printing.
    #[arg(long, env = "ACCORD_OUT_DIR")]
    pub(super) out: Option<PathBuf>,
}

/// `accord statements`.
pub(super) async fn run(a: StatementsArgs) -> Result<()> {
    let client = Client::new(&a.api.api);
    let list = client.statements(a.period, a.lab.as_deref()).await?;
    match a.out {
        None => println!("{}", serde_json::to_string_pretty(&list)?),
        Some(dir) => {
            let bundle = client.trust_bundle().await?;
            write_statements(&dir, &list, &bundle)?;
            eprintln!(
                "wrote {} statements and trust-bundle.json to {}",
                list.len(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Writes `trust-bundle.json` and one `statement-<period>-<lab>.json` per statement.
pub(super) fn write_statements(
    dir: &Path,
    list: &[StatementExport],
    bundle: &TrustBundle,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("trust-bundle.json"),
        serde_json::to_string_pretty(bundle)?,
    )?;
    let mut written = std::collections::BTreeSet::new();
    for s in list {
        let name = format!("statement-{}-{}.json", s.period, file_safe(&s.lab));
        if !written.insert(name.clone()) {
            bail!(
                "two statements for period {} lab {:?} in one answer (the node lists a slot twice)",
                s.period,
                s.lab
            );
        }
        std::fs::write(dir.join(name), serde_json::to_string_pretty(s)?)?;
    }
    Ok(())
}

/// A lab id as a file-name component. The node's answer is not verified yet, so a `/` or `..`
/// must not lead outside the output directory, and two lab ids must never share a file: ASCII
/// letters, digits and `-` stand for themselves, every other byte is written `_xx` (its hex),
/// so the mapping is injective. Names that would be too long for a file system keep a prefix
/// and add a hash of the whole id.
fn file_safe(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    if out.len() > 160 {
        let hash = Digest::tagged("accord/file-name/v1", &[id.as_bytes()]).to_hex();
        out.truncate(120);
        out.push('_');
        out.push_str(&hash[..32]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::file_safe;

    #[test]
    fn lab_file_names_are_distinct_and_stay_inside_the_directory() {
        // Review finding 13: `a.b` and `a_b` both became `a_b`, so one statement overwrote the
        // other.
        let ids = [
            "a.b", "a_b", "a-b", "a/b", "../x", "A B", "lab-000", "ü", "_2e",
        ];
        let names: std::collections::BTreeSet<String> = ids.iter().map(|i| file_safe(i)).collect();
        assert_eq!(names.len(), ids.len(), "{names:?}");
        for n in &names {
            assert!(!n.contains('/') && !n.contains('.'), "{n}");
        }
        assert_eq!(file_safe("lab-000"), "lab-000");
        let long = "x".repeat(256);
        let longer = format!("{long}y");
        assert!(file_safe(&long).len() <= 160);
        assert_ne!(file_safe(&long), file_safe(&longer));
    }
}
