//! `accord lab`: a lab's signing key, and signed attestations for `accord submit`.

use std::path::PathBuf;

use accord_node::keyfile;
use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::evidence::Attestation;
use accord_protocol::roster::Period;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use rand::RngCore as _;

use super::common::PassphraseArgs;

// `accord lab` tools.
#[derive(Debug, clap::Subcommand)]
pub(super) enum LabSubcommand {
    /// Generate a lab signing key; prints the roster entry.
    Keygen {
        /// The lab's id.
        #[arg(long, env = "ACCORD_LAB")]
        lab: String,
        /// Key file to create (0600).
        #[arg(long, env = "ACCORD_LAB_KEY")]
        out: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Sign an attestation for a period; prints the evidence JSON for `accord submit`.
    Attest(Box<AttestArgs>),
}

// `accord lab attest`: the attestation's fields.
#[derive(Debug, Args)]
pub(super) struct AttestArgs {
    /// The lab's key file.
    #[arg(long, env = "ACCORD_LAB_KEY")]
    pub(super) key: PathBuf,
    /// The roster (for the network id and the period calendar).
    #[arg(long, env = "ACCORD_ROSTER")]
    pub(super) roster: PathBuf,
    /// The lab's id.
    #[arg(long, env = "ACCORD_LAB")]
    pub(super) lab: String,
    /// Period reported on (default: the current one).
    #[arg(long, env = "ACCORD_PERIOD")]
    pub(super) period: Option<u64>,
    /// Compute site.
    #[arg(long, env = "ACCORD_SITE", default_value = "site-1")]
    pub(super) site: String,
    /// Training run ids (repeat the flag).
    #[arg(long = "run-id", env = "ACCORD_RUN_IDS", value_delimiter = ',')]
    pub(super) run_ids: Vec<String>,
    /// Largest number of accelerators used together.
    #[arg(long, env = "ACCORD_ACCELERATORS")]
    pub(super) accelerators: u64,
    /// Accelerator-hours in the period.
    #[arg(long, env = "ACCORD_CHIP_HOURS")]
    pub(super) chip_hours: u64,
    /// Training compute in the period, FLOP.
    #[arg(long, env = "ACCORD_TRAINING_FLOP")]
    pub(super) training_flop: u128,
    /// Declared purpose.
    #[arg(
        long,
        env = "ACCORD_PURPOSE",
        default_value = "evaluations and fine-tuning under the pause ceiling"
    )]
    pub(super) purpose: String,
    /// Hash commitment to the weight snapshots (hex; default random for a demo).
    #[arg(long, env = "ACCORD_WEIGHTS_COMMITMENT")]
    pub(super) weights_commitment: Option<String>,
    /// Hash commitment to the training data manifest (hex).
    #[arg(long, env = "ACCORD_DATA_COMMITMENT")]
    pub(super) data_commitment: Option<String>,
    /// Hash commitment to the training transcript (hex).
    #[arg(long, env = "ACCORD_TRANSCRIPT_COMMITMENT")]
    pub(super) transcript_commitment: Option<String>,
    #[command(flatten)]
    pub(super) passphrase: PassphraseArgs,
}

fn read_hex_digest(v: Option<&str>, what: &str) -> Result<Digest> {
    match v {
        Some(h) => {
            Digest::from_hex(h).with_context(|| format!("--{what} must be 64 hex characters"))
        }
        None => {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut b);
            Ok(Digest(b))
        }
    }
}

/// `accord lab keygen` and `accord lab attest`.
pub(super) fn run(c: LabSubcommand) -> Result<()> {
    match c {
        LabSubcommand::Keygen {
            lab,
            out,
            passphrase,
        } => {
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(&mut *seed);
            keyfile::write_secret(&out, &*seed, passphrase.load()?.as_ref(), false)?;
            let key = SecretKey::from_seed(&seed);
            eprintln!(
                "wrote {}; add this entry to the roster's labs:",
                out.display()
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&accord_protocol::roster::Lab {
                    id: lab,
                    key: key.public()
                })?
            );
            Ok(())
        }
        LabSubcommand::Attest(a) => {
            let a = *a;
            let net = accord_node::config::load_roster(&a.roster)?;
            let key = keyfile::read_key(&a.key, a.passphrase.load()?.as_ref())?;
            let lab = net
                .lab_by_id(&a.lab)
                .with_context(|| format!("lab {:?} is not in the roster", a.lab))?;
            let registered = net.roster().labs[usize::from(lab.0)].key;
            if registered != key.public() {
                bail!(
                    "the key in {} is not the roster's key for {}",
                    a.key.display(),
                    a.lab
                );
            }
            let now = accord_node::clock::now();
            let period = match a.period {
                Some(p) => Period(p),
                None => net
                    .schedule()
                    .period_at(now)
                    .context("the network's genesis is in the future")?,
            };
            let run_ids = if a.run_ids.is_empty() {
                vec![format!("{}-run-{}", a.lab, period.0)]
            } else {
                a.run_ids
            };
            let attestation = Attestation {
                lab: a.lab,
                period,
                site_id: a.site,
                run_ids,
                accelerator_count: a.accelerators,
                chip_hours: a.chip_hours,
                training_flop: a.training_flop,
                declared_purpose: a.purpose,
                weights_commitment: read_hex_digest(
                    a.weights_commitment.as_deref(),
                    "weights-commitment",
                )?,
                data_commitment: read_hex_digest(a.data_commitment.as_deref(), "data-commitment")?,
                transcript_commitment: read_hex_digest(
                    a.transcript_commitment.as_deref(),
                    "transcript-commitment",
                )?,
                issued_at: now,
            };
            let evidence = attestation.sign(net.id(), &key);
            println!("{}", serde_json::to_string_pretty(&evidence)?);
            Ok(())
        }
    }
}
