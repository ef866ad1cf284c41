//! Transparency logs and signed notes: what lets an observer see that no member hides or
//! rewrites history.
//!
//! - Every member keeps an append-only RFC 9162 Merkle log of the co-signed statements it accepts
//!   and of the succession links it holds. A leaf is one of two kinds ([`LogLeaf`]), each with its
//!   own domain tag, so neither decodes as the other: a statement ([`log_entry`]: the statement,
//!   the group signature and, for a period batch, the checkpoint and inclusion proof, so it
//!   verifies on its own under the trust bundle), or a co-signed succession
//!   ([`succession_log_entry`], which verifies on the chain from the genesis bundle).
//! - The member signs its log's checkpoints as C2SP signed notes (tlog-checkpoint) with its
//!   roster identity key, under the key name [`log_origin`]; the other members cosign them as
//!   witnesses (C2SP tlog-cosignature, Ed25519 type `0x04`) after checking consistency with the
//!   last checkpoint they cosigned for that log ([`witness_check`]). An observer requires k of n.
//! - A period's group-signed checkpoint is also a signed note: [`group_note`], verifiable with
//!   stock note verifiers and the trust bundle's `note_verifier_key`.
//!
//! Domain separation of the identity key, which signs four kinds of message: accord's own signed
//! bytes (`tag ‖ 0x00 ‖ …`, never valid note text, which has no control characters), the log's
//! checkpoints (text whose first line is `accord/<network id>/log/<member>`), cosignatures
//! (`cosignature/v1\n…`, fixed by C2SP) and libp2p's handshakes (prefixed `noise-libp2p-…` and
//! `libp2p-…`). No message of one kind parses as another.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use signed_note::{Note, VerifierList};
use thiserror::Error;
use tlog_tiles::{Checkpoint, Hash};

use crate::codec;
use crate::crypto::{Digest, PublicKey, SecretKey, signing_bytes};
use crate::roster::{MemberIndex, Network};
use crate::statement::SignedStatement;
use crate::succession::SignedSuccession;

const LOG_ENTRY_TAG: &str = "accord/log-entry";
const LOG_SUCCESSION_TAG: &str = "accord/log-succession";
/// Largest log entry accepted from anyone (a statement with its evidence digests and proof, or a
/// succession with its epoch's log keys).
pub const MAX_LOG_ENTRY_BYTES: usize = 1024 * 1024;
/// Largest signed note accepted from anyone (a checkpoint with up to 100 signature lines).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Longest inclusion or consistency proof accepted (a tree of 2^63 leaves needs fewer).
pub const MAX_PROOF_HASHES: usize = 128;
/// Signature type of an Ed25519 note signature (C2SP signed-note).
const ALG_ED25519: u8 = 0x01;
/// Signature type of an Ed25519 cosignature (C2SP tlog-cosignature).
const ALG_COSIGNATURE_V1: u8 = 0x04;

/// Why a log artefact (entry, note, proof, witness request) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogError {
    /// A log entry does not decode or is not for this network.
    #[error("malformed log entry: {0}")]
    BadEntry(String),
    /// A signed note is malformed or over [`MAX_NOTE_BYTES`].
    #[error("malformed signed note: {0}")]
    BadNote(String),
    /// The note's checkpoint names no log of this network.
    #[error("the checkpoint origin {0:?} is not a log of this network")]
    UnknownLog(String),
    /// The log's own signature is missing or does not verify.
    #[error("the checkpoint is not signed by the log's key ({0})")]
    BadLogSignature(String),
    /// A proof is too long or does not lead to the expected root.
    #[error("the {0} proof does not verify")]
    BadProof(&'static str),
}

/// The bytes of a statement leaf: `"accord/log-entry" ‖ 0 ‖ version ‖ network_id ‖
/// bincode(signed)`.
pub fn log_entry(network_id: &Digest, signed: &SignedStatement) -> Vec<u8> {
    signing_bytes(LOG_ENTRY_TAG, network_id, &codec::encode_bounded(signed))
}

/// The bytes of a succession leaf in a log of network `network_id`: `"accord/log-succession" ‖ 0
/// ‖ version ‖ network_id ‖ bincode(signed)`. `network_id` is the log's network, which the link
/// hands over (its `previous`) or which the chain it belongs to leads to.
pub fn succession_log_entry(network_id: &Digest, signed: &SignedSuccession) -> Vec<u8> {
    signing_bytes(
        LOG_SUCCESSION_TAG,
        network_id,
        &codec::encode_bounded(signed),
    )
}

/// One leaf of a member's log, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogLeaf {
    /// A co-signed statement ([`log_entry`]).
    Statement(SignedStatement),
    /// A co-signed succession link ([`succession_log_entry`]).
    Succession(SignedSuccession),
}

impl LogLeaf {
    /// The leaf's bytes in a log of network `network_id`.
    pub fn entry(&self, network_id: &Digest) -> Vec<u8> {
        match self {
            LogLeaf::Statement(s) => log_entry(network_id, s),
            LogLeaf::Succession(s) => succession_log_entry(network_id, s),
        }
    }
}

/// The body of a leaf of kind `tag` in network `network_id`, if `bytes` is one.
fn leaf_body<'a>(tag: &str, network_id: &Digest, bytes: &'a [u8]) -> Result<&'a [u8], LogError> {
    if bytes.len() > MAX_LOG_ENTRY_BYTES {
        return Err(LogError::BadEntry("over the size limit".into()));
    }
    let prefix = signing_bytes(tag, network_id, &[]);
    bytes
        .strip_prefix(prefix.as_slice())
        .ok_or_else(|| LogError::BadEntry("wrong tag, version or network".into()))
}

/// Decodes a statement leaf of network `network_id` (canonical encoding required).
///
/// # Errors
/// [`LogError::BadEntry`] for anything but the exact bytes [`log_entry`] produces (a
/// succession leaf included).
pub fn decode_log_entry(network_id: &Digest, bytes: &[u8]) -> Result<SignedStatement, LogError> {
    let body = leaf_body(LOG_ENTRY_TAG, network_id, bytes)?;
    codec::decode_canonical(body, MAX_LOG_ENTRY_BYTES)
        .map_err(|e| LogError::BadEntry(e.to_string()))
}

/// Decodes a succession leaf of network `network_id` (canonical encoding required). Its
/// signature is not checked here: it verifies only on a chain ([`crate::Chain::follow`]).
///
/// # Errors
/// [`LogError::BadEntry`] for anything but the exact bytes [`succession_log_entry`] produces
/// (a statement leaf included).
pub fn decode_succession_log_entry(
    network_id: &Digest,
    bytes: &[u8],
) -> Result<SignedSuccession, LogError> {
    let body = leaf_body(LOG_SUCCESSION_TAG, network_id, bytes)?;
    codec::decode_canonical(body, MAX_LOG_ENTRY_BYTES)
        .map_err(|e| LogError::BadEntry(e.to_string()))
}

/// Decodes a leaf of either kind of network `network_id`, telling which kind it is (the tag
/// decides; canonical encoding required).
///
/// # Errors
/// [`LogError::BadEntry`] for anything but the exact bytes [`LogLeaf::entry`] produces.
pub fn decode_log_leaf(network_id: &Digest, bytes: &[u8]) -> Result<LogLeaf, LogError> {
    if bytes.starts_with(LOG_SUCCESSION_TAG.as_bytes()) {
        decode_succession_log_entry(network_id, bytes).map(LogLeaf::Succession)
    } else {
        decode_log_entry(network_id, bytes).map(LogLeaf::Statement)
    }
}

/// RFC 9162 leaf hash of a log entry (`SHA-256(0x00 ‖ entry)`).
pub fn leaf_hash(entry: &[u8]) -> Digest {
    Digest(tlog_tiles::record_hash(entry).0)
}

/// The origin line (and note key name) of member `member`'s log.
pub fn log_origin(network_id: &Digest, member: MemberIndex) -> String {
    format!("accord/{}/log/{}", network_id.to_hex(), member.0)
}

/// The note key name of member `member` acting as a witness.
pub fn witness_name(network_id: &Digest, member: MemberIndex) -> String {
    format!("accord/{}/witness/{}", network_id.to_hex(), member.0)
}

/// The note key name of the group key (signer of the period checkpoints).
pub fn group_key_name(network_id: &Digest) -> String {
    format!("accord/{}/group", network_id.to_hex())
}

/// C2SP key id: `SHA-256(name ‖ "\n" ‖ type ‖ key)[:4]`.
fn key_id(name: &str, alg: u8, key: &PublicKey) -> u32 {
    let mut material = Vec::with_capacity(33);
    material.push(alg);
    material.extend_from_slice(&key.0);
    signed_note::key_id(name, &material)
}

fn verifier_key(name: &str, alg: u8, key: &PublicKey) -> String {
    let mut material = Vec::with_capacity(33);
    material.push(alg);
    material.extend_from_slice(&key.0);
    format!(
        "{name}+{:08x}+{}",
        key_id(name, alg, key),
        BASE64.encode(material)
    )
}

/// The C2SP verifier key `name+hex(key id)+base64(0x01 ‖ key)` of an Ed25519 note signer.
pub fn note_verifier_key(name: &str, key: &PublicKey) -> String {
    verifier_key(name, ALG_ED25519, key)
}

/// The C2SP verifier key `name+hex(key id)+base64(0x04 ‖ key)` of an Ed25519 cosigner.
pub fn cosigner_verifier_key(name: &str, key: &PublicKey) -> String {
    verifier_key(name, ALG_COSIGNATURE_V1, key)
}

/// One member's log and witness keys, as an observer needs them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogKey {
    /// The member's roster index.
    pub member: u16,
    /// The member's name.
    pub name: String,
    /// The log's checkpoint origin (also its note key name).
    pub origin: String,
    /// The member's identity key (signs its checkpoints and its cosignatures).
    pub key: PublicKey,
    /// Verifier key of the log's checkpoints (`0x01`).
    pub log_verifier_key: String,
    /// The member's note key name as a witness.
    pub witness_name: String,
    /// Verifier key of the member's cosignatures as a witness (`0x04`).
    pub witness_verifier_key: String,
}

impl LogKey {
    /// The keys of every member of `net`, in roster order.
    pub fn all(net: &Network) -> Vec<LogKey> {
        net.roster()
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let member = MemberIndex(i as u16);
                let origin = log_origin(net.id(), member);
                let witness = witness_name(net.id(), member);
                LogKey {
                    member: member.0,
                    name: m.name.clone(),
                    log_verifier_key: note_verifier_key(&origin, &m.key),
                    witness_verifier_key: cosigner_verifier_key(&witness, &m.key),
                    witness_name: witness,
                    origin,
                    key: m.key,
                }
            })
            .collect()
    }
}

/// The C2SP checkpoint body of a log: origin, size, base64 root, each line newline-terminated.
pub fn checkpoint_text(origin: &str, size: u64, root: &Digest) -> String {
    // A checkpoint's origin is never empty here and there are no extension lines.
    let cp = Checkpoint::new(origin, size, Hash(root.0), "")
        .expect("the origin is non-empty and there is no extension");
    String::from_utf8(cp.to_bytes()).expect("a checkpoint body is ASCII")
}

/// A period's group-signed checkpoint as a C2SP signed note signed by the group key.
///
/// # Errors
/// [`LogError::BadNote`] when `checkpoint` is not valid note text.
pub fn group_note(
    network_id: &Digest,
    checkpoint: &str,
    group_key: &PublicKey,
    signature: &crate::crypto::Signature,
) -> Result<String, LogError> {
    let name = group_key_name(network_id);
    let sig = signed_note::Signature::new(
        name.clone(),
        key_id(&name, ALG_ED25519, group_key),
        signature.0.to_vec(),
    )
    .map_err(|e| LogError::BadNote(e.to_string()))?;
    let note =
        Note::new(checkpoint.as_bytes(), &[sig]).map_err(|e| LogError::BadNote(e.to_string()))?;
    String::from_utf8(note.to_bytes()).map_err(|e| LogError::BadNote(e.to_string()))
}

/// Signs a checkpoint of member `member`'s log with its identity key; returns the signed note.
pub fn sign_checkpoint(
    network_id: &Digest,
    member: MemberIndex,
    key: &SecretKey,
    size: u64,
    root: &Digest,
) -> String {
    let origin = log_origin(network_id, member);
    let text = checkpoint_text(&origin, size, root);
    let signature = key.sign(text.as_bytes());
    let sig = signed_note::Signature::new(
        origin.clone(),
        key_id(&origin, ALG_ED25519, &key.public()),
        signature.0.to_vec(),
    )
    .expect("the origin is a valid key name");
    let note = Note::new(text.as_bytes(), &[sig]).expect("a checkpoint is valid note text");
    String::from_utf8(note.to_bytes()).expect("a note is UTF-8")
}

/// The message a C2SP v1 cosignature signs: `cosignature/v1\ntime <t>\n` ‖ the checkpoint text.
fn cosigned_message(timestamp: u64, text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    m.extend_from_slice(text);
    m
}

/// A witness cosignature line (`— name base64(key id ‖ timestamp ‖ signature)\n`) over the
/// checkpoint `text`, by member `witness` at POSIX time `timestamp`.
pub fn cosign(
    network_id: &Digest,
    witness: MemberIndex,
    key: &SecretKey,
    text: &str,
    timestamp: u64,
) -> String {
    let name = witness_name(network_id, witness);
    let timestamp = timestamp.min(i64::MAX as u64);
    let signature = key.sign(&cosigned_message(timestamp, text.as_bytes()));
    let mut body = timestamp.to_be_bytes().to_vec();
    body.extend_from_slice(&signature.0);
    let sig = signed_note::Signature::new(
        name.clone(),
        key_id(&name, ALG_COSIGNATURE_V1, &key.public()),
        body,
    )
    .expect("the witness name is a valid key name");
    String::from_utf8(sig.to_bytes()).expect("a signature line is UTF-8")
}

/// Verifies Ed25519 note signatures with RFC 8032 strict rules.
struct StrictVerifier {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
    cosignature: bool,
}

impl StrictVerifier {
    fn new(name: String, key: &PublicKey, cosignature: bool) -> Option<Self> {
        let alg = if cosignature {
            ALG_COSIGNATURE_V1
        } else {
            ALG_ED25519
        };
        Some(Self {
            id: key_id(&name, alg, key),
            name,
            key: key.verifying_key().ok()?,
            cosignature,
        })
    }
}

impl signed_note::Verifier for StrictVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let check = |m: &[u8], s: &[u8]| {
            <[u8; 64]>::try_from(s).is_ok_and(|s| {
                crate::crypto::verify_strict(&self.key, m, &crate::crypto::Signature(s)).is_ok()
            })
        };
        if !self.cosignature {
            return check(msg, sig);
        }
        // C2SP tlog-cosignature: u64 big-endian timestamp ‖ Ed25519 signature.
        let Some((ts, s)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let ts = u64::from_be_bytes(*ts);
        ts <= i64::MAX as u64 && check(&cosigned_message(ts, msg), s)
    }
}

/// A log checkpoint whose log signature verified, with the witnesses whose cosignatures verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The log's member.
    pub member: MemberIndex,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Digest,
    /// The checkpoint text (what the log and the witnesses signed).
    pub text: String,
    /// Witnesses (other members) whose cosignature verified, with the cosignature timestamps.
    pub cosigners: Vec<(MemberIndex, u64)>,
    /// The signed note as received.
    pub note: String,
}

/// Parses and checks a member log's signed checkpoint against the logs in `keys`: the origin
/// names one of them, its own signature verifies (strict Ed25519), and every cosignature by
/// another member's witness key verifies. Signatures by unknown keys are ignored.
///
/// # Errors
/// A malformed note, an unknown origin, or a missing or bad signature by a known key.
pub fn verify_checkpoint(note: &[u8], keys: &[LogKey]) -> Result<VerifiedCheckpoint, LogError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(LogError::BadNote("over the size limit".into()));
    }
    let parsed = Note::from_bytes(note).map_err(|e| LogError::BadNote(e.to_string()))?;
    let cp = Checkpoint::from_bytes(parsed.text())
        .map_err(|_| LogError::BadNote("the text is not a C2SP checkpoint".into()))?;
    if !cp.extension().is_empty() {
        return Err(LogError::BadNote("unexpected extension lines".into()));
    }
    let log = keys
        .iter()
        .find(|k| k.origin == cp.origin())
        .ok_or_else(|| LogError::UnknownLog(cp.origin().chars().take(120).collect()))?;
    let mut verifiers: Vec<Box<dyn signed_note::Verifier>> = Vec::new();
    verifiers.push(Box::new(
        StrictVerifier::new(log.origin.clone(), &log.key, false)
            .ok_or_else(|| LogError::BadLogSignature("the roster key is invalid".into()))?,
    ));
    for k in keys.iter().filter(|k| k.member != log.member) {
        if let Some(v) = StrictVerifier::new(k.witness_name.clone(), &k.key, true) {
            verifiers.push(Box::new(v));
        }
    }
    let (verified, _unknown) = parsed
        .verify(&VerifierList::new(verifiers))
        .map_err(|e| LogError::BadLogSignature(e.to_string()))?;
    if !verified.iter().any(|s| s.name() == log.origin) {
        return Err(LogError::BadLogSignature("no signature by the log".into()));
    }
    let mut cosigners: Vec<(MemberIndex, u64)> = verified
        .iter()
        .filter(|s| s.name() != log.origin)
        .filter_map(|s| {
            let k = keys.iter().find(|k| k.witness_name == s.name())?;
            let ts = u64::from_be_bytes(*s.signature().first_chunk::<8>()?);
            Some((MemberIndex(k.member), ts))
        })
        .collect();
    cosigners.sort();
    cosigners.dedup_by_key(|(m, _)| *m);
    Ok(VerifiedCheckpoint {
        member: MemberIndex(log.member),
        size: cp.size(),
        root: Digest(cp.hash().0),
        text: String::from_utf8_lossy(parsed.text()).into_owned(),
        cosigners,
        note: String::from_utf8_lossy(note).into_owned(),
    })
}

/// Adds cosignature lines to a signed note (replacing earlier lines by the same witnesses).
///
/// # Errors
/// A malformed note or line.
pub fn add_cosignatures(note: &str, lines: &[String]) -> Result<String, LogError> {
    let bad = |e: signed_note::NoteError| LogError::BadNote(e.to_string());
    let parsed = Note::from_bytes(note.as_bytes()).map_err(bad)?;
    let mut sigs: Vec<signed_note::Signature> = Vec::new();
    // Keep the existing lines (Note has no accessor for them: re-parse the block).
    let block = note
        .rsplit_once("\n\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
        .to_string();
    let new: Vec<signed_note::Signature> = lines
        .iter()
        .map(|l| signed_note::Signature::from_bytes(l.trim_end_matches('\n').as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    for line in block.lines() {
        let s = signed_note::Signature::from_bytes(line.as_bytes()).map_err(bad)?;
        if !new.iter().any(|n| n.name() == s.name() && n.id() == s.id()) {
            sigs.push(s);
        }
    }
    sigs.extend(new);
    let out = Note::new(parsed.text(), &sigs).map_err(bad)?;
    String::from_utf8(out.to_bytes()).map_err(|e| LogError::BadNote(e.to_string()))
}

fn proof_hashes(proof: &[Digest]) -> Result<Vec<Hash>, LogError> {
    if proof.len() > MAX_PROOF_HASHES {
        return Err(LogError::BadProof("over-long"));
    }
    Ok(proof.iter().map(|d| Hash(d.0)).collect())
}

/// Checks an RFC 9162 inclusion proof of `leaf` (a leaf hash) at `index` in the tree
/// (`size`, `root`).
///
/// # Errors
/// [`LogError::BadProof`].
pub fn check_inclusion(
    proof: &[Digest],
    size: u64,
    root: &Digest,
    index: u64,
    leaf: &Digest,
) -> Result<(), LogError> {
    if index >= size {
        return Err(LogError::BadProof("inclusion"));
    }
    tlog_tiles::check_record(
        &proof_hashes(proof)?,
        size,
        Hash(root.0),
        index,
        Hash(leaf.0),
    )
    .map_err(|_| LogError::BadProof("inclusion"))
}

/// Checks an RFC 9162 consistency proof that the tree (`new_size`, `new_root`) extends
/// (`old_size`, `old_root`). An empty old tree is consistent with everything.
///
/// # Errors
/// [`LogError::BadProof`].
pub fn check_consistency(
    proof: &[Digest],
    old_size: u64,
    old_root: &Digest,
    new_size: u64,
    new_root: &Digest,
) -> Result<(), LogError> {
    if old_size == 0 {
        return Ok(());
    }
    if old_size > new_size {
        return Err(LogError::BadProof("consistency"));
    }
    tlog_tiles::check_tree(
        &proof_hashes(proof)?,
        new_size,
        Hash(new_root.0),
        old_size,
        Hash(old_root.0),
    )
    .map_err(|_| LogError::BadProof("consistency"))
}

/// A witness request (C2SP tlog-witness `add-checkpoint`, carried over the members' libp2p
/// connections): a new signed checkpoint of the sender's log and the consistency proof from the
/// size the sender believes the witness last cosigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddCheckpoint {
    /// The size the witness is believed to hold (0 for none).
    pub old_size: u64,
    /// Consistency proof from `old_size` to the new checkpoint's size.
    pub proof: Vec<Digest>,
    /// The signed note.
    pub checkpoint: String,
}

/// A witness's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WitnessReply {
    /// The cosignature line to add to the note.
    Cosigned(String),
    /// The witness holds another size for this log: retry with a proof from `size`.
    Conflict {
        /// The size the witness holds.
        size: u64,
    },
    /// Refused, with the reason; a fork or rollback is evidence of a misbehaving log.
    Refused(String),
}

/// What a witness remembers of one log: the largest checkpoint it cosigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessedLog {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Digest,
    /// The signed note (log signature, possibly other cosignatures) as received.
    pub note: String,
}

/// Why a witness refused a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WitnessRefusal {
    /// The note or proof is malformed, or signed by another key than the sender's log key.
    #[error(transparent)]
    Invalid(#[from] LogError),
    /// The checkpoint is of another member's log than the authenticated sender's.
    #[error("member {sender} sent a checkpoint of member {log}'s log")]
    NotTheSendersLog {
        /// The authenticated sender.
        sender: u16,
        /// The checkpoint's log.
        log: u16,
    },
    /// The sender's `old_size` is not what the witness holds.
    #[error("the witness holds size {held}, not {claimed}")]
    OldSize {
        /// What the witness holds.
        held: u64,
        /// What the sender claimed.
        claimed: u64,
    },
    /// The log shrank or forked: two checkpoints signed by the log that no append explains.
    #[error(
        "log of member {log} forked or was rewritten: cosigned size {held_size} root {held_root}, now size {size} root {root}"
    )]
    Fork {
        /// The log.
        log: u16,
        /// Held size.
        held_size: u64,
        /// Held root.
        held_root: Digest,
        /// Offered size.
        size: u64,
        /// Offered root.
        root: Digest,
    },
}

/// The witness's check of an [`AddCheckpoint`] from authenticated member `sender`, given what it
/// holds for that log (C2SP tlog-witness): on success, the state to persist before cosigning.
///
/// # Errors
/// [`WitnessRefusal`]; a [`WitnessRefusal::Fork`] is proof of a misbehaving log.
pub fn witness_check(
    keys: &[LogKey],
    sender: MemberIndex,
    request: &AddCheckpoint,
    held: Option<&WitnessedLog>,
) -> Result<(VerifiedCheckpoint, WitnessedLog), WitnessRefusal> {
    let cp = verify_checkpoint(request.checkpoint.as_bytes(), keys)?;
    if cp.member != sender {
        return Err(WitnessRefusal::NotTheSendersLog {
            sender: sender.0,
            log: cp.member.0,
        });
    }
    let (held_size, held_root) = held.map_or((0, Digest([0; 32])), |h| (h.size, h.root));
    let fork = || WitnessRefusal::Fork {
        log: cp.member.0,
        held_size,
        held_root,
        size: cp.size,
        root: cp.root,
    };
    if cp.size < held_size || (cp.size == held_size && cp.root != held_root && held_size > 0) {
        return Err(fork());
    }
    if request.old_size != held_size {
        return Err(WitnessRefusal::OldSize {
            held: held_size,
            claimed: request.old_size,
        });
    }
    if held_size > 0 {
        check_consistency(&request.proof, held_size, &held_root, cp.size, &cp.root)
            .map_err(|_| fork())?;
    }
    let state = WitnessedLog {
        size: cp.size,
        root: cp.root,
        note: cp.note.clone(),
    };
    Ok((cp, state))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A statement leaf and a succession leaf of one network.
    fn leaves() -> (Digest, SignedStatement, SignedSuccession) {
        use rand_core::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let network = |rng: &mut rand_chacha::ChaCha20Rng, name: &str| {
            let mut spec = crate::fixtures::TestnetSpec::new(4, 1, 1_000_000);
            spec.name = name.into();
            let tn = crate::fixtures::Testnet::generate(&spec, rng, |k| k.to_hex());
            Network::new(tn.roster).unwrap()
        };
        let (old, new) = (network(&mut rng, "old"), network(&mut rng, "new"));
        let (old_key, new_key) = (SecretKey::generate(&mut rng), SecretKey::generate(&mut rng));
        let succession =
            crate::Succession::new(old.id(), crate::roster::Period(9), &new, new_key.public());
        let signature = old_key.sign(&succession.signing_bytes());
        let statement = crate::statement::Statement {
            network_id: *old.id(),
            policy_hash: Digest([5; 32]),
            slot: crate::statement::Slot {
                lab: "lab-000".into(),
                period: crate::roster::Period(3),
            },
            evidence: vec![Digest([1; 32]), Digest([2; 32])],
            verdict: crate::policy::Verdict::NoAttestation,
        };
        let signed = SignedStatement {
            signature: old_key.sign(&statement.signing_bytes()),
            statement,
            batch: None,
        };
        (
            *old.id(),
            signed,
            SignedSuccession {
                succession,
                signature,
            },
        )
    }

    #[test]
    fn each_leaf_kind_decodes_as_itself_and_only_as_itself() {
        let (net, statement, succession) = leaves();
        let s_entry = log_entry(&net, &statement);
        let l_entry = succession_log_entry(&net, &succession);
        assert!(l_entry.starts_with(b"accord/log-succession\x00\x01"));
        assert_eq!(&l_entry[23..55], &net.0);
        assert_eq!(decode_log_entry(&net, &s_entry).unwrap(), statement);
        assert_eq!(
            decode_succession_log_entry(&net, &l_entry).unwrap(),
            succession
        );
        assert_eq!(
            decode_log_leaf(&net, &s_entry).unwrap(),
            LogLeaf::Statement(statement.clone())
        );
        let leaf = decode_log_leaf(&net, &l_entry).unwrap();
        assert_eq!(leaf, LogLeaf::Succession(succession.clone()));
        assert_eq!(leaf.entry(&net), l_entry);
        // Neither kind's decoder takes the other kind, even with the other's tag swapped in.
        assert!(decode_log_entry(&net, &l_entry).is_err());
        assert!(decode_succession_log_entry(&net, &s_entry).is_err());
        let body = |e: &[u8], tag: &str| e[tag.len() + 2 + 32..].to_vec();
        let swapped = signing_bytes(LOG_ENTRY_TAG, &net, &body(&l_entry, LOG_SUCCESSION_TAG));
        assert!(decode_log_entry(&net, &swapped).is_err());
        assert!(decode_log_leaf(&net, &swapped).is_err());
        let swapped = signing_bytes(LOG_SUCCESSION_TAG, &net, &body(&s_entry, LOG_ENTRY_TAG));
        assert!(decode_succession_log_entry(&net, &swapped).is_err());
        assert!(decode_log_leaf(&net, &swapped).is_err());
        // Another network's leaf is refused.
        let other = Digest([0xee; 32]);
        assert!(decode_log_leaf(&other, &l_entry).is_err());
        assert!(decode_log_leaf(&other, &s_entry).is_err());
    }

    #[test]
    fn a_truncated_extended_or_oversized_leaf_is_refused() {
        let (net, statement, succession) = leaves();
        for entry in [
            log_entry(&net, &statement),
            succession_log_entry(&net, &succession),
        ] {
            assert!(decode_log_leaf(&net, &entry).is_ok());
            for cut in [0, 1, 20, 55, entry.len() / 2, entry.len() - 1] {
                assert!(
                    matches!(
                        decode_log_leaf(&net, &entry[..cut]),
                        Err(LogError::BadEntry(_))
                    ),
                    "truncated to {cut}"
                );
            }
            let mut longer = entry.clone();
            longer.push(0);
            assert!(matches!(
                decode_log_leaf(&net, &longer),
                Err(LogError::BadEntry(_))
            ));
            let mut huge = entry.clone();
            huge.resize(MAX_LOG_ENTRY_BYTES + 1, 0);
            assert_eq!(
                decode_log_leaf(&net, &huge),
                Err(LogError::BadEntry("over the size limit".into()))
            );
            // Another version byte.
            let mut versioned = entry.clone();
            let at = entry.iter().position(|b| *b == 0).unwrap() + 1;
            versioned[at] ^= 0xff;
            assert!(decode_log_leaf(&net, &versioned).is_err());
        }
    }

    #[test]
    fn a_changed_byte_is_refused_or_decodes_to_exactly_those_bytes() {
        // Whatever a log serves, the decoder either refuses it or returns a leaf whose canonical
        // bytes are the bytes served (so the leaf hash an observer rebuilds is what it decoded).
        let (net, statement, succession) = leaves();
        for entry in [
            log_entry(&net, &statement),
            succession_log_entry(&net, &succession),
        ] {
            for i in 0..entry.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut changed = entry.clone();
                    changed[i] ^= flip;
                    if let Ok(leaf) = decode_log_leaf(&net, &changed) {
                        assert_eq!(leaf.entry(&net), changed, "byte {i} ^ {flip:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn verifier_keys_follow_c2sp() {
        let key = SecretKey::from_seed(&[9; 32]).public();
        let vkey = note_verifier_key("example.com/log", &key);
        let v = signed_note::StandardVerifier::new(&vkey).unwrap();
        assert_eq!(signed_note::Verifier::name(&v), "example.com/log");
        let decoded = BASE64.decode(vkey.rsplit('+').next().unwrap()).unwrap();
        assert_eq!(decoded[0], 0x01);
        assert_eq!(&decoded[1..], key.as_bytes());
        let cvkey = cosigner_verifier_key("w", &key);
        let decoded = BASE64.decode(cvkey.rsplit('+').next().unwrap()).unwrap();
        assert_eq!(decoded[0], 0x04);
        assert!(signed_note::StandardVerifier::new(&cvkey).is_err());
    }
}
