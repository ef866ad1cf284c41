//! `accord`: the Accord node and its command-line tools. See `accord --help` and `docs/`.

mod cmd;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    cmd::init_tracing(&cli);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
