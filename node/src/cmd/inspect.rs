//! `accord inspect FILE`: says what an Accord file is and pretty-prints it: a co-signed
//! statement (its decoded fields, and whether `message` is the bytes those fields sign), a
//! trust bundle, an evidence item (with its digest), a roster (with its network id), a wire
//! message (raw or hex bytes of the canonical codec), or a secret file — of which it shows
//! metadata only (format, sealing, permissions, and for an unsealed identity its public key),
//! never a secret byte.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use accord_observer::chain::ChainExport;
use accord_observer::export::StatementExport;
use accord_protocol::codec;
use accord_protocol::evidence::Evidence;
use accord_protocol::message::Message;
use accord_protocol::succession::{Succession, SuccessionProposal};
use accord_protocol::verify::TrustBundle;
use anyhow::{Context as _, Result, bail};
use clap::Args;

// `accord inspect`.
#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// The file: statement, trust bundle, evidence or roster JSON, a wire message (binary or
    /// hex), or a key file (metadata only).
    file: PathBuf,
}

/// Largest file inspected (a wire message is at most this big).
const MAX_FILE: u64 = codec::MAX_MESSAGE_BYTES as u64;
const SECRET_PREFIX: &[u8] = b"accord-secret/v1 ";

fn secret_file(path: &Path, bytes: &[u8]) -> String {
    let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let format = String::from_utf8_lossy(header).into_owned();
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777);
    let mut out = format!(
        "secret file (metadata only; no secret is shown)\n  format:      {format}\n  size:        {} bytes\n  permissions: {mode:o} ({})\n",
        bytes.len(),
        if mode & 0o077 == 0 {
            "private: the node accepts it"
        } else {
            "readable by others: the node refuses it (chmod 600)"
        }
    );
    let sealed = format.contains("argon2id");
    out.push_str(&format!(
        "  sealed:      {}\n",
        if sealed {
            "yes (Argon2id + XChaCha20-Poly1305; needs the passphrase)"
        } else {
            "no"
        }
    ));
    if !sealed {
        // An identity key's public half is public; a key share does not parse as one.
        if let Ok(key) = accord_node::keyfile::parse_secret(path, bytes, None)
            .ok()
            .and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok())
            .map(|seed| accord_protocol::crypto::SecretKey::from_seed(&seed))
            .ok_or(())
        {
            let public = key.public();
            out.push_str(&format!("  identity:    public key {public}\n"));
            if let Some(peer) = accord_node::p2p::peer_id_of(&public) {
                out.push_str(&format!("               libp2p peer id {peer}\n"));
            }
        } else {
            out.push_str("  contents:    not a 32-byte identity seed (a key share?)\n");
        }
    }
    out
}

fn statement(s: &StatementExport) -> Result<String> {
    let signed = s.to_signed();
    // The signed message is the checkpoint in a period batch; the fields are then bound by
    // `statement_bytes`, the Merkle leaf.
    let leaf_matches = s
        .statement_bytes
        .as_ref()
        .is_none_or(|b| hex::encode(signed.statement.signing_bytes()) == b.to_ascii_lowercase());
    let matches = leaf_matches && hex::encode(signed.message()) == s.message.to_ascii_lowercase();
    let mut out = format!(
        "co-signed statement\n  slot:        lab {} period {}\n  verdict:     {}\n  network id:  {}\n  policy hash: {}\n  group key:   {}\n  signature:   {}\n",
        s.lab, s.period, s.verdict_kind, s.network_id, s.policy_hash, s.group_key, s.signature
    );
    out.push_str(&format!("  evidence:    {} item(s)\n", s.evidence.len()));
    for d in &s.evidence {
        out.push_str(&format!("               {d}\n"));
    }
    if let Some(b) = &s.batch {
        let origin = b.checkpoint.lines().next().unwrap_or_default();
        out.push_str(&format!(
            "  batch:       leaf {} of checkpoint {origin:?} ({} proof hashes)\n",
            b.index,
            b.proof.len()
        ));
    }
    out.push_str(&format!(
        "  signed bytes: {}\n",
        if matches {
            "the exact bytes the decoded fields sign"
        } else {
            "DOES NOT match the decoded fields (edited?)"
        }
    ));
    out.push_str(&format!(
        "  verdict detail:\n{}\n",
        serde_json::to_string_pretty(&s.verdict)?
    ));
    out.push_str("The signature is not checked here: use `accord verify --trust BUNDLE FILE`.\n");
    Ok(out)
}

fn succession(s: &Succession) -> String {
    format!(
        "  hands over:   {}\n  first period: {}\n  new network:  {} ({})\n  t of n:       {} of {}\n  group key:    {}\n  digest:       {}\n",
        s.previous,
        s.first_period.0,
        s.network_name,
        s.network_id,
        s.threshold,
        s.members,
        s.group_key,
        s.digest()
    )
}

/// `value` only tells the kind; the typed values are decoded from `bytes`, since a
/// `serde_json::Value` turns 128-bit integers (training FLOP) into floats.
fn describe_json(path: &Path, bytes: &[u8], value: &serde_json::Value) -> Result<String> {
    let has = |k: &str| value.get(k).is_some();
    if has("message") && has("signature") && has("verdict") {
        let s: StatementExport = serde_json::from_slice(bytes).context("a malformed statement")?;
        return statement(&s);
    }
    if has("note_verifier_key") {
        let b: TrustBundle = serde_json::from_slice(bytes).context("a malformed trust bundle")?;
        let logs: Vec<String> = b.logs.iter().map(|l| l.name.clone()).collect();
        return Ok(format!(
            "trust bundle of {}\n  network id:  {}\n  policy hash: {}\n  group key:   {}\n  t of n:      {} of {}\n  signing:     {:?}\n  note key:    {}\n  logs of:     {}\n",
            b.network_name,
            b.network_id,
            b.policy_hash,
            b.group_key,
            b.threshold,
            b.members,
            b.signing_mode,
            b.note_verifier_key,
            logs.join(", ")
        ));
    }
    if has("genesis") && has("links") {
        let c: ChainExport = serde_json::from_slice(bytes).context("a malformed chain file")?;
        let mut out = format!(
            "succession chain from the genesis {} ({}), {} link(s)\n",
            c.genesis.network_name,
            c.genesis.network_id,
            c.links.len()
        );
        match c.follow() {
            Ok(chain) => {
                for e in chain.epochs() {
                    out.push_str(&format!(
                        "  epoch {}: periods {}..{}  {} ({} of {})  group key {}\n",
                        e.index,
                        e.first_period.0,
                        e.end.map_or(String::new(), |p| p.0.to_string()),
                        e.bundle.network_name,
                        e.bundle.threshold,
                        e.bundle.members,
                        e.bundle.group_key
                    ));
                }
                out.push_str(
                    "Every link verifies from this file's genesis. Compare that genesis with the trust bundle you pinned (`accord verify --chain` does).\n",
                );
            }
            Err(e) => out.push_str(&format!("  DOES NOT VERIFY from its genesis: {e}\n")),
        }
        return Ok(out);
    }
    if has("succession") && has("roster") && has("confirmations") {
        let p: SuccessionProposal =
            serde_json::from_slice(bytes).context("a malformed succession proposal")?;
        let mut out = format!("succession proposal\n{}", succession(&p.succession));
        out.push_str(&format!(
            "  confirmations: {} of {} members\n",
            p.confirmations.len(),
            p.roster.members.len()
        ));
        out.push_str(&match p.check_next() {
            Ok(_) => "  the new roster's members all confirmed this group key\n".to_string(),
            Err(e) => format!("  REFUSED: {e}\n"),
        });
        out.push_str(
            "Whether it hands over your network is checked by `accord succession approve`.\n",
        );
        return Ok(out);
    }
    if has("Attestation") || has("Report") {
        let e: Evidence = serde_json::from_slice(bytes).context("malformed evidence")?;
        let kind = if has("Attestation") {
            "lab attestation"
        } else {
            "inspection report"
        };
        return Ok(format!(
            "evidence: {kind}\n  digest:      {}\n{}\n(the signature is checked when a node admits it)\n",
            e.digest(),
            serde_json::to_string_pretty(&e)?
        ));
    }
    if has("members") && has("labs") && has("threshold") {
        let net = accord_node::config::load_roster(path)?;
        let r = net.roster();
        let mut out = format!(
            "roster {}\n  network id:  {}\n  policy hash: {}\n  t of n:      {} of {}\n  signing:     {:?}\n  members:\n",
            r.name,
            net.id(),
            net.policy_hash(),
            r.threshold,
            r.members.len(),
            r.signing_mode
        );
        for (i, m) in r.members.iter().enumerate() {
            out.push_str(&format!(
                "    {i:>3} {} {} {}\n",
                m.name,
                m.peer_id,
                m.addresses.join(" ")
            ));
        }
        let labs: Vec<&str> = r.labs.iter().map(|l| l.id.as_str()).collect();
        out.push_str(&format!("  labs:        {}\n", labs.join(", ")));
        return Ok(out);
    }
    bail!(
        "JSON, but not a statement, trust bundle, evidence item, roster, succession chain or succession proposal"
    )
}

/// What the file holds, as text.
fn describe(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_FILE {
        bail!(
            "{} is {len} bytes: larger than any Accord record",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(SECRET_PREFIX) {
        return Ok(secret_file(path, &bytes));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return describe_json(path, &bytes, &value);
    }
    // A wire message: raw codec bytes, or their hex.
    let text = String::from_utf8_lossy(&bytes);
    let raw = match hex::decode(text.trim()) {
        Ok(decoded) if !text.trim().is_empty() => decoded,
        _ => bytes.clone(),
    };
    match codec::decode::<Message>(&raw, codec::MAX_MESSAGE_BYTES) {
        Ok(m) => Ok(format!("wire message ({} bytes)\n{m:#?}\n", raw.len())),
        Err(e) => bail!(
            "{} is not an Accord record: not a key file, not JSON of a known kind, and not a wire message ({e})",
            path.display()
        ),
    }
}

/// `accord inspect`.
pub(super) fn run(a: &InspectArgs) -> Result<()> {
    print!("{}", describe(&a.file)?);
    Ok(())
}
