//! # accord-fuzzing
//!
//! The bodies of Accord's fuzz targets. `fuzz/` (a cargo-fuzz crate outside the workspace, run
//! with the nightly toolchain) calls them from libFuzzer; `tests/corpus.rs` calls them on every
//! input of the committed corpus with the stable toolchain, so CI replays the corpus on every
//! run. A target returns normally on any input: a panic is a finding.
//!
//! Decoders (one target each, see [`TARGETS`]): wire messages, records, key files, the roster,
//! the trust bundle, statement JSON, signed notes and log entries, witness requests. The
//! structure-aware [`engine`] target drives one member's `Engine` with arbitrary sequences of
//! (possibly mutated) protocol messages from arbitrary members, timeouts, submissions and
//! restarts, and checks what it can check locally: no panic; every message it sends fits the
//! frame limit; a share never leaves before its protection record; a commitment never signs two
//! packages; every item of a proposal it makes is vouched by f + 1 verified observations in its
//! place; every record it writes round-trips; and a restart from its records keeps its state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use accord_protocol::codec::{self, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::{Digest, PublicKey, SecretKey, verify_member};
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::driver::{self, Effects};
use accord_protocol::engine::{Engine, EngineConfig, Event, Record};
use accord_protocol::evidence::Evidence;
use accord_protocol::fixtures::LabConduct;
use accord_protocol::message::Message;
use accord_protocol::roster::{LabIndex, MemberIndex, Network, Period, Roster};
use accord_protocol::time::Instant;
use accord_protocol::transparency::{AddCheckpoint, WitnessedLog};
use accord_protocol::verify::TrustBundle;
use accord_testkit::{Cluster, ClusterSpec, child_rng};
use arbitrary::{Arbitrary, Unstructured};

/// A fuzz target: returns normally on any input.
pub type Target = fn(&[u8]);

/// Every target by name (the fuzz binaries and the corpus directories use these names).
pub const TARGETS: &[(&str, Target)] = &[
    ("message", message),
    ("record", record),
    ("key_file", key_file),
    ("roster", roster),
    ("trust_bundle", trust_bundle),
    ("statement_json", statement_json),
    ("signed_note", signed_note),
    ("witness", witness),
    ("engine", engine),
];

/// A fixed small network, its keys, and a transcript of every message of an honest run.
pub struct Fixture {
    /// The network (4 members, t = 3, 2 labs, per-period signing).
    pub net: Arc<Network>,
    /// Member identity keys.
    pub identities: Vec<SecretKey>,
    /// Dealt key shares.
    pub keys: Vec<KeyMaterial>,
    /// The group key.
    pub group_key: PublicKey,
    /// The trust bundle.
    pub bundle: TrustBundle,
    /// Every message of two honest periods (compliant and double-signing labs), in order.
    pub transcript: Vec<(MemberIndex, MemberIndex, Message)>,
    /// Every evidence item of the run.
    pub evidence: Vec<Evidence>,
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut spec = ClusterSpec::new(4, 2);
        spec.seed = 2026;
        let mut c = Cluster::new(spec);
        c.transcript = Some(Vec::new());
        for p in 0..2u64 {
            c.run_until(
                c.net
                    .schedule()
                    .start(Period(p))
                    .saturating_add(core::time::Duration::from_secs(1)),
            );
            c.submit_period(Period(p), |i| {
                if i == 0 {
                    LabConduct::Compliant
                } else {
                    LabConduct::DoubleSigns
                }
            });
            c.assert_live(p..p + 1, 60_000);
        }
        let keys: Vec<KeyMaterial> = c.nodes.iter().filter_map(|n| n.key.clone()).collect();
        let group_key = keys[0].group_key();
        let evidence = c.checker.bodies.values().map(|e| (**e).clone()).collect();
        Fixture {
            bundle: TrustBundle::new(&c.net, group_key),
            net: c.net.clone(),
            identities: c
                .identities
                .iter()
                .map(|k| SecretKey::from_seed(&k.seed()))
                .collect(),
            keys,
            group_key,
            transcript: c.transcript.take().unwrap_or_default(),
            evidence,
        }
    })
}

/// Wire messages: decoding is canonical, and the checks that parse a message's content without
/// the engine never panic.
pub fn message(data: &[u8]) {
    let Ok(m) = Message::decode(data, MAX_MESSAGE_BYTES) else {
        return;
    };
    let again = m.encode().expect("a decoded message encodes");
    assert_eq!(again, data, "decoding is canonical");
    let f = fixture();
    match &m {
        Message::Observation(o) => {
            let _ = o.observation.check(&f.net);
            let _ = o.observation.len();
        }
        Message::Dkg(d) => {
            let _ = d.verify(&f.net);
        }
        Message::CoSigned(c) => {
            let _ = c.verify(f.net.id(), &f.group_key);
            let _ = c.export(f.net.id());
        }
        Message::Evidence(e) => {
            let _ = e.validate(&f.net);
            let _ = e.digest();
        }
        _ => {}
    }
}

/// Storage records: decoding is canonical, and restoring an engine from a decoded record never
/// panics.
pub fn record(data: &[u8]) {
    let Ok(r) = codec::decode_canonical::<Record>(data, MAX_MESSAGE_BYTES) else {
        return;
    };
    let f = fixture();
    let mut engine = Engine::restore(
        f.net.clone(),
        MemberIndex(1),
        SecretKey::from_seed(&f.identities[1].seed()),
        Some(f.keys[1].clone()),
        EngineConfig::default(),
        [r],
    );
    let _ = engine.status();
    let _ = engine.poll_timeout();
    let mut rng = child_rng(1, "fuzz-record", 0, 0);
    engine.handle_timeout(Instant::from_millis(u64::from(data.len() as u32)), &mut rng);
    while engine.poll_output().is_some() {}
}

/// Key files: the sealed/plain file format (no passphrase: the KDF is deliberately slow), and
/// the key share inside.
pub fn key_file(data: &[u8]) {
    if let Ok(secret) = accord_node::keyfile::parse_secret(Path::new("fuzz"), data, None) {
        let _ = codec::decode::<KeyMaterial>(&secret, MAX_MESSAGE_BYTES);
    }
    let _ = codec::decode::<KeyMaterial>(data, MAX_MESSAGE_BYTES);
}

/// Roster JSON, validated into a network and its limits.
pub fn roster(data: &[u8]) {
    let Ok(r) = serde_json::from_slice::<Roster>(data) else {
        return;
    };
    if let Ok(net) = Network::new(r) {
        let l = net.limits();
        let _ = l.largest_message_bytes(net.roster().signing_mode);
        let _ = TrustBundle::new(&net, fixture().group_key);
    }
}

/// Trust bundle JSON, checked for consistency, then used to verify a genuine statement.
pub fn trust_bundle(data: &[u8]) {
    let Ok(b) = serde_json::from_slice::<TrustBundle>(data) else {
        return;
    };
    if b.check_consistent().is_ok()
        && let Some(s) = genuine_statement()
    {
        let _ = accord_protocol::verify_statement(&s, &b);
    }
}

fn genuine_statement() -> Option<accord_protocol::SignedStatement> {
    let f = fixture();
    f.transcript.iter().find_map(|(_, _, m)| match m {
        Message::CoSigned(c) => c.export(f.net.id()).into_iter().next(),
        _ => None,
    })
}

/// Exported statement JSON (one or an array), verified against the fixture's bundle.
pub fn statement_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(list) = accord_observer::export::parse_statements(text) else {
        return;
    };
    let f = fixture();
    for s in list.iter().take(64) {
        let _ = s.verify(&f.bundle);
    }
}

/// Signed notes (member log checkpoints with cosignatures) and log entries of both kinds.
pub fn signed_note(data: &[u8]) {
    let f = fixture();
    let _ = accord_protocol::transparency::verify_checkpoint(data, &f.bundle.logs);
    let _ = accord_protocol::transparency::decode_log_entry(f.net.id(), data);
    if let Ok(leaf) = accord_protocol::transparency::decode_log_leaf(f.net.id(), data) {
        assert_eq!(leaf.entry(f.net.id()), data, "a decoded leaf is canonical");
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((note, lines)) = text.split_once("\n\n\n")
    {
        let lines: Vec<String> = lines.lines().take(16).map(str::to_string).collect();
        let _ = accord_protocol::transparency::add_cosignatures(note, &lines);
    }
}

/// Witness requests against a held state.
pub fn witness(data: &[u8]) {
    let Ok(req) = codec::decode_canonical::<AddCheckpoint>(data, 128 * 1024) else {
        return;
    };
    let f = fixture();
    let held = WitnessedLog {
        size: 3,
        root: Digest([7; 32]),
        note: String::new(),
    };
    for sender in [MemberIndex(0), MemberIndex(2)] {
        let _ = accord_protocol::transparency::witness_check(&f.bundle.logs, sender, &req, None);
        let _ =
            accord_protocol::transparency::witness_check(&f.bundle.logs, sender, &req, Some(&held));
    }
}

/// One step of the [`engine`] target.
#[derive(Arbitrary, Debug)]
enum Op {
    /// A message of the transcript, maybe altered, from any member.
    Deliver {
        template: u16,
        from: u8,
        mutation: Mutation,
    },
    /// Time passes.
    Wait { ms: u16 },
    /// An evidence item of the run is submitted here.
    Submit { template: u16 },
    /// A peer (re)connects.
    Connect { member: u8 },
    /// The member restarts from its records.
    Restart,
}

#[derive(Arbitrary, Debug)]
enum Mutation {
    None,
    Flip { at: u32, bit: u8 },
    Truncate { at: u32 },
    Splice { other: u16, at: u32 },
    Byte { at: u32, value: u8 },
}

/// The structure-aware target: one member's engine under arbitrary input (see the crate doc).
pub fn engine(data: &[u8]) {
    let f = fixture();
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let me = MemberIndex(1);
    let mut records: Vec<Record> = Vec::new();
    let fresh = |records: &[Record]| {
        Engine::restore(
            f.net.clone(),
            me,
            SecretKey::from_seed(&f.identities[1].seed()),
            Some(f.keys[1].clone()),
            EngineConfig::default(),
            records.iter().cloned(),
        )
    };
    let mut engine = fresh(&records);
    let mut rng = child_rng(7, "fuzz-engine", 0, 0);
    let schedule = f.net.schedule().clone();
    let mut now = schedule.start(Period(0));
    let mut check = Checks::default();
    for op in ops.into_iter().take(128) {
        match op {
            Op::Deliver {
                template,
                from,
                mutation,
            } => {
                if f.transcript.is_empty() {
                    continue;
                }
                let (_, _, m) = &f.transcript[usize::from(template) % f.transcript.len()];
                let Some(m) = mutate(m, &mutation, f) else {
                    continue;
                };
                let from = MemberIndex(u16::from(from) % f.net.n() as u16);
                let _ = engine.handle_message(now, from, m, &mut rng);
            }
            Op::Wait { ms } => {
                now = now.saturating_add(core::time::Duration::from_millis(u64::from(ms) * 8));
                engine.handle_timeout(now, &mut rng);
            }
            Op::Submit { template } => {
                if !f.evidence.is_empty() {
                    let e = f.evidence[usize::from(template) % f.evidence.len()].clone();
                    let _ = engine.submit(now, e);
                }
            }
            Op::Connect { member } => {
                engine.peer_connected(MemberIndex(u16::from(member) % f.net.n() as u16));
            }
            Op::Restart => {
                let before = engine.status();
                engine = fresh(&records);
                let after = engine.status();
                assert_eq!(
                    (before.next_close, before.decided_units, before.group_key),
                    (after.next_close, after.decided_units, after.group_key),
                    "a restart from the records keeps the member's state"
                );
            }
        }
        let mut effects = Performed {
            checks: &mut check,
            records: &mut records,
            f,
        };
        let Ok(()) = driver::drain(&mut engine, &mut effects);
    }
}

/// `m` altered by `mutation` (re-decoded: only what a peer could send arrives).
fn mutate(m: &Message, mutation: &Mutation, f: &Fixture) -> Option<Message> {
    let mut bytes = m.encode().ok()?;
    match *mutation {
        Mutation::None => return Some(m.clone()),
        Mutation::Flip { at, bit } => {
            let i = at as usize % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << (bit % 8);
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at as usize % bytes.len().max(1)),
        Mutation::Splice { other, at } => {
            let (_, _, o) = &f.transcript[usize::from(other) % f.transcript.len()];
            let tail = o.encode().ok()?;
            let i = at as usize % bytes.len().max(1);
            bytes.truncate(i);
            bytes.extend_from_slice(&tail[i.min(tail.len())..]);
        }
        Mutation::Byte { at, value } => {
            let i = at as usize % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(i) {
                *b = value;
            }
        }
    }
    Message::decode(&bytes, MAX_MESSAGE_BYTES).ok()
}

/// What the engine target checks on the outputs, in order.
#[derive(Default)]
struct Checks {
    /// Shares whose protection record was persisted (by share bytes).
    protected: BTreeSet<Vec<u8>>,
    /// Commitment digest → package digest, over every share released.
    bindings: BTreeMap<Digest, Digest>,
}

/// The engine target's side of the protocol's driver: records kept (and checked to round-trip)
/// for restarts, every message checked as it leaves.
struct Performed<'a> {
    checks: &'a mut Checks,
    records: &'a mut Vec<Record>,
    f: &'a Fixture,
}

impl Performed<'_> {
    fn sent(&mut self, message: &Message) {
        let encoded = message.encode();
        assert!(
            encoded.is_ok(),
            "the engine sent a {} over the frame limit",
            message.kind()
        );
        if let Message::Share(s) = message {
            assert!(
                self.checks.protected.contains(s.share.bytes()),
                "a share left before its protection record"
            );
        }
        if let Message::Proposal(p) = message {
            vouched(p, self.f);
        }
    }
}

impl Effects for Performed<'_> {
    type Error = std::convert::Infallible;

    fn persist(&mut self, r: Record) -> Result<(), Self::Error> {
        let bytes = codec::encode(&r).expect("a record encodes");
        let back: Record =
            codec::decode_canonical(&bytes, MAX_MESSAGE_BYTES).expect("a record decodes");
        assert_eq!(back, r, "records round-trip");
        if let Record::Signed(s) = &r {
            self.checks.protected.insert(s.share.bytes().to_vec());
            if let Some(p) = self.checks.bindings.insert(s.commitment, s.package) {
                assert_eq!(p, s.package, "a commitment signed two packages");
            }
        }
        self.records.push(r);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), Self::Error> {
        *self.records = snapshot;
        Ok(())
    }

    fn store_key(&mut self, _: KeyMaterial) -> Result<(), Self::Error> {
        Ok(())
    }

    fn store_pending_key(&mut self, _: Option<KeyMaterial>) -> Result<(), Self::Error> {
        Ok(())
    }

    fn send(&mut self, _: MemberIndex, message: Message) {
        self.sent(&message);
    }

    fn broadcast(&mut self, message: Message) {
        self.sent(&message);
    }

    fn event(&mut self, _: Event) {}
}

/// Every item of an own proposal is listed, in its place, by f + 1 distinct members whose
/// observations in the proposal verify (an independent re-count of the proposal rule).
fn vouched(p: &accord_protocol::message::Proposal, f: &Fixture) {
    let net = &f.net;
    let bodies: BTreeMap<Digest, &Evidence> = f.evidence.iter().map(|e| (e.digest(), e)).collect();
    for s in &p.statements {
        for d in &s.evidence {
            let Some(body) = bodies.get(d) else {
                continue;
            };
            let lab = net.lab_by_id(body.lab()).unwrap_or(LabIndex(u16::MAX));
            let members: BTreeSet<MemberIndex> = p
                .observations
                .iter()
                .filter(|o| o.observation.lists(lab, body.place(), d))
                .filter(|o| {
                    net.member_key(o.observation.member).is_some_and(|k| {
                        verify_member(k, &o.observation.signing_bytes(net.id()), &o.signature)
                            .is_ok()
                    })
                })
                .map(|o| o.observation.member)
                .collect();
            assert!(
                members.len() >= net.vouch_quorum(),
                "the engine proposed an item vouched by {} < f + 1 members",
                members.len()
            );
        }
    }
}

/// Seed inputs for the corpus of `target` (valid encodings of every kind), so fuzzing starts
/// from the formats rather than from nothing.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let f = fixture();
    let mut out = Vec::new();
    match target {
        "message" => {
            let mut kinds = BTreeSet::new();
            let mut unit = None;
            let mut observations = Vec::new();
            for (_, _, m) in &f.transcript {
                if let Message::Proposal(p) = m {
                    unit.get_or_insert(p.id);
                    observations = p.observations.clone();
                }
                if kinds.insert(m.kind())
                    && let Ok(b) = m.encode()
                {
                    out.push(b);
                }
            }
            if let Some(id) = unit {
                let digests: Vec<Digest> = f.evidence.iter().map(Evidence::digest).collect();
                let extra = [
                    Message::Fetch(accord_protocol::message::Fetch {
                        unit: id.unit,
                        digests: digests.clone(),
                    }),
                    Message::Bodies(Arc::new(accord_protocol::message::Bodies {
                        unit: id.unit,
                        evidence: f.evidence.iter().cloned().map(Arc::new).collect(),
                    })),
                    Message::Missing(Arc::new(accord_protocol::message::Missing {
                        id,
                        items: digests,
                        observations,
                    })),
                    Message::SyncRequest(accord_protocol::message::SyncRequest {
                        from: Period(1),
                        key_unconfirmed: true,
                    }),
                ];
                out.extend(extra.iter().filter_map(|m| m.encode().ok()));
            }
        }
        "record" => {
            for e in f.evidence.iter().take(2) {
                let r = Record::Evidence {
                    evidence: Arc::new(e.clone()),
                    admitted_at: Some(Instant::from_millis(5)),
                };
                out.extend(codec::encode(&r).ok());
            }
            for (_, _, m) in &f.transcript {
                if let Message::CoSigned(c) = m {
                    out.extend(codec::encode(&Record::CoSigned(c.clone())).ok());
                    break;
                }
            }
            out.extend(codec::encode(&Record::DkgStarted { ceremony: 3 }).ok());
        }
        "key_file" => {
            let mut plain = b"accord-secret/v1 plain\n".to_vec();
            if let Ok(k) = codec::encode(&f.keys[0]) {
                plain.extend_from_slice(&k);
            }
            out.push(plain);
        }
        "roster" => out.extend(serde_json::to_vec(f.net.roster()).ok()),
        "trust_bundle" => out.extend(serde_json::to_vec(&f.bundle).ok()),
        "statement_json" => {
            if let Some(s) = genuine_statement() {
                let e = accord_observer::export::StatementExport::new(&s, f.group_key);
                out.extend(serde_json::to_vec(&e).ok());
            }
        }
        "signed_note" => {
            let note = accord_protocol::transparency::sign_checkpoint(
                f.net.id(),
                MemberIndex(0),
                &f.identities[0],
                3,
                &Digest([7; 32]),
            );
            out.push(note.into_bytes());
            if let Some(s) = genuine_statement() {
                out.push(accord_protocol::transparency::log_entry(f.net.id(), &s));
            }
            // A succession leaf (its signature is not checked by the decoder).
            let succession = accord_protocol::Succession::new(
                f.net.id(),
                accord_protocol::Period(5),
                &f.net,
                f.group_key,
            );
            out.push(accord_protocol::transparency::succession_log_entry(
                f.net.id(),
                &accord_protocol::SignedSuccession {
                    succession,
                    signature: accord_protocol::crypto::Signature([0; 64]),
                },
            ));
        }
        "witness" => {
            let note = accord_protocol::transparency::sign_checkpoint(
                f.net.id(),
                MemberIndex(0),
                &f.identities[0],
                3,
                &Digest([7; 32]),
            );
            let req = AddCheckpoint {
                old_size: 0,
                proof: vec![],
                checkpoint: note,
            };
            out.extend(codec::encode(&req).ok());
        }
        "engine" => {
            // Byte strings of a few shapes; libFuzzer's coverage feedback finds the structure.
            for seed in 0..4u8 {
                out.push(
                    (0..512u32)
                        .map(|i| (i as u8).wrapping_mul(seed * 2 + 1))
                        .collect(),
                );
            }
        }
        _ => {}
    }
    out
}
