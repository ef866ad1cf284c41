//! `accord completions SHELL` and `accord man --out DIR`: shell completions and man pages,
//! generated from the same clap definitions as `--help`, so they never disagree with it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

use super::Cli;

// `accord completions`.
#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: Shell,
}

// `accord man`.
#[derive(Debug, Args)]
pub(super) struct ManArgs {
    /// Directory to write the pages into (created if missing): `accord.1` and one
    /// `accord-<command>.1` per subcommand.
    #[arg(long, env = "ACCORD_MAN_DIR")]
    out: PathBuf,
}

/// `accord completions`: the completion script on standard output. (Generated into memory
/// first: clap_complete panics on a failed write, and `| head` closes the pipe.)
pub(super) fn completions(a: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "accord", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the completion script")
        }
        _ => Ok(()),
    }
}

fn write_page(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let path = dir.join(format!("{}.1", cmd.get_name()));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut bytes)
        .context("rendering a man page")?;
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("{}-{}", cmd.get_name(), sub.get_name());
        write_page(sub.clone().name(name), dir, written)?;
    }
    Ok(())
}

/// `accord man`: writes the man pages and lists them.
pub(super) fn man(a: &ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let mut written = Vec::new();
    write_page(cmd, &a.out, &mut written)?;
    for p in &written {
        println!("{}", p.display());
    }
    Ok(())
}
