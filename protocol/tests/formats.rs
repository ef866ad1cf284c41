//! Byte-exact snapshots of every signed and wire format, round trips, and hostile bytes
//! (FAULTS 7, 15, 16, 17, 18).
//!
//! Snapshots live in `tests/snapshots/`; regenerate after an intended format change with
//! `ACCORD_UPDATE_SNAPSHOTS=1 cargo test -p accord-protocol --test formats` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use accord_protocol::codec::{self, CodecError, MAX_MESSAGE_BYTES};
use accord_protocol::crypto::{Digest, Frost, SecretKey};
use accord_protocol::dkg::{Ceremony, DkgBody, DkgMessage, deal};
use accord_protocol::engine::{AcceptedRecord, Record, SignedRecord};
use accord_protocol::evidence::Evidence;
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, inspection, lab_submissions};
use accord_protocol::message::{
    Accept, Bodies, Fetch, Message, Missing, Observation, Proposal, ProposalId, Share, SignRequest,
    SignedObservation, SlotItems, SyncRequest,
};
use accord_protocol::policy::{self, Verdict};
use accord_protocol::repair::{RepairMessage, RepairRequest};
use accord_protocol::roster::{LabIndex, MemberIndex, Network, Period};
use accord_protocol::statement::{CoSigned, Slot, Statement, Unit, signing_message};
use accord_protocol::time::Instant;
use accord_protocol::verify::TrustBundle;
use accord_testkit::child_rng;
use frost_ed25519 as frost;
use proptest::prelude::*;

struct World {
    net: Arc<Network>,
    testnet: Testnet,
    evidence: Vec<Evidence>,
    observation: Arc<SignedObservation>,
    statement: Statement,
    messages: Vec<(&'static str, Message)>,
    records: Vec<(&'static str, Record)>,
    bundle: TrustBundle,
}

fn world() -> World {
    let mut rng = child_rng(2026, "formats", 0, 0);
    let mut spec = TestnetSpec::new(4, 2, 1_700_000_000_000);
    spec.name = "accord-formats".into();
    let testnet = Testnet::generate(&spec, &mut rng, |k| format!("12D3Koo{}", &k.to_hex()[..20]));
    let net = Network::new(testnet.roster.clone()).unwrap();
    let keys = deal(&net, &mut rng).unwrap();
    let at = Instant::from_millis(1_700_000_030_000);
    let mut evidence = lab_submissions(
        net.id(),
        "lab-000",
        &testnet.labs[0],
        Period(0),
        &net.roster().policy,
        LabConduct::Compliant,
        at,
        &mut rng,
    );
    let Evidence::Attestation { attestation, .. } = &evidence[0] else {
        unreachable!()
    };
    evidence.push(inspection(
        net.id(),
        MemberIndex(2),
        &testnet.members[2],
        attestation,
        97,
        at,
    ));
    let digests: Vec<Digest> = {
        let mut d: Vec<Digest> = evidence.iter().map(Evidence::digest).collect();
        d.sort();
        d
    };
    let observation = Observation {
        member: MemberIndex(1),
        period: Period(0),
        slots: vec![SlotItems {
            lab: LabIndex(0),
            attestations: vec![evidence[0].digest()],
            reports: vec![(MemberIndex(2), evidence[1].digest())],
        }],
    };
    let signature = testnet.members[1].sign(&observation.signing_bytes(net.id()));
    let observation = Arc::new(SignedObservation {
        observation,
        signature,
    });
    let items: Vec<(Digest, &Evidence)> = evidence.iter().map(|e| (e.digest(), e)).collect();
    let verdict = policy::evaluate(&net.roster().policy, &items);
    let statement = Statement {
        network_id: *net.id(),
        policy_hash: *net.policy_hash(),
        slot: Slot {
            lab: "lab-000".into(),
            period: Period(0),
        },
        evidence: digests,
        verdict,
    };
    let empty = Statement {
        slot: Slot {
            lab: "lab-001".into(),
            period: Period(0),
        },
        evidence: vec![],
        verdict: Verdict::NoAttestation,
        ..statement.clone()
    };
    let unit = Unit::Period(Period(0));
    let id = ProposalId {
        unit,
        attempt: 0,
        revision: 0,
    };
    let statements = vec![statement.clone(), empty];
    let proposal = Proposal {
        id,
        statements: statements.clone(),
        observations: vec![observation.clone()],
    };
    let message = signing_message(net.id(), &unit, &statements);
    let mut commitments = std::collections::BTreeMap::new();
    let mut nonces = Vec::new();
    for m in 0..3u16 {
        let (n, c) =
            frost::round1::commit(keys[usize::from(m)].key_package.signing_share(), &mut rng);
        commitments.insert(MemberIndex(m).identifier(), c);
        nonces.push(n);
    }
    let package = frost::SigningPackage::new(commitments.clone(), &message);
    let shares: std::collections::BTreeMap<_, _> = (0..3u16)
        .map(|m| {
            (
                MemberIndex(m).identifier(),
                frost::round2::sign(
                    &package,
                    &nonces[usize::from(m)],
                    &keys[usize::from(m)].key_package,
                )
                .unwrap(),
            )
        })
        .collect();
    let group_sig = frost::aggregate(&package, &shares, &keys[0].public).unwrap();
    let cosigned = Arc::new(CoSigned {
        unit,
        statements,
        signature: accord_protocol::crypto::Signature(
            group_sig.serialize().unwrap().try_into().unwrap(),
        ),
    });
    let c1 = commitments[&MemberIndex(1).identifier()];
    let (_, next) = frost::round1::commit(keys[1].key_package.signing_share(), &mut rng);
    let share1 = shares[&MemberIndex(1).identifier()];
    let (_, r1) = frost::keys::dkg::part1(MemberIndex(0).identifier(), 4, 3, &mut rng).unwrap();
    let dkg = DkgMessage::new(
        &net,
        &testnet.members[0],
        1,
        MemberIndex(0),
        None,
        DkgBody::Round1(Frost::new(r1)),
    );
    let mut messages = vec![
        (
            "message-evidence",
            Message::Evidence(Arc::new(evidence[0].clone())),
        ),
        (
            "message-report",
            Message::Evidence(Arc::new(evidence[1].clone())),
        ),
        (
            "message-observation",
            Message::Observation(observation.clone()),
        ),
        (
            "message-proposal",
            Message::Proposal(Arc::new(proposal.clone())),
        ),
        (
            "message-accept",
            Message::Accept(Accept {
                id,
                proposal: proposal.digest(),
                commitments: Frost::new(c1),
            }),
        ),
        (
            "message-missing",
            Message::Missing(Arc::new(Missing {
                id,
                items: vec![evidence[1].digest()],
                observations: vec![observation.clone()],
            })),
        ),
        (
            "message-fetch",
            Message::Fetch(Fetch {
                unit,
                digests: vec![evidence[1].digest()],
            }),
        ),
        (
            "message-bodies",
            Message::Bodies(Arc::new(Bodies {
                unit,
                evidence: vec![Arc::new(evidence[1].clone())],
            })),
        ),
        (
            "message-sign-request",
            Message::SignRequest(SignRequest {
                id,
                session: 3,
                package: Frost::new(package),
            }),
        ),
        (
            "message-share",
            Message::Share(Share {
                id,
                session: 3,
                share: Frost::new(share1),
                next: Frost::new(next),
            }),
        ),
        ("message-cosigned", Message::CoSigned(cosigned.clone())),
        (
            "message-sync-request",
            Message::SyncRequest(SyncRequest {
                from: Period(7),
                key_unconfirmed: false,
            }),
        ),
        ("message-dkg-round1", Message::Dkg(dkg)),
    ];
    let mut records = vec![
        (
            "record-evidence",
            Record::Evidence {
                evidence: Arc::new(evidence[0].clone()),
                admitted_at: Some(at),
            },
        ),
        (
            "record-observation",
            Record::Observation(observation.clone()),
        ),
        (
            "record-accepted",
            Record::Accepted(Arc::new(AcceptedRecord {
                id,
                proposal: proposal.digest(),
                statements: proposal.statements.clone(),
            })),
        ),
        ("record-vouch", Record::Vouch(observation.clone())),
        (
            "record-signed",
            Record::Signed(SignedRecord {
                id,
                commitment: Frost::new(c1).digest("accord/commitment/v1"),
                package: Digest([9; 32]),
                share: Frost::new(share1),
            }),
        ),
        ("record-cosigned", Record::CoSigned(cosigned)),
        ("record-dkg-started", Record::DkgStarted { ceremony: 1 }),
        (
            "record-dkg-complete",
            Record::DkgComplete {
                ceremony: 1,
                group_key: keys[0].group_key(),
                confirmations: vec![],
            },
        ),
    ];
    // Key lifecycle formats (appended: the random draws above, and so the older snapshots,
    // are unchanged).
    let (_, z1) =
        frost::keys::refresh::refresh_dkg_part1(MemberIndex(1).identifier(), 4, 3, &mut rng)
            .unwrap();
    let refresh = DkgMessage::new_as(
        Ceremony::Refresh,
        &net,
        &testnet.members[1],
        2,
        MemberIndex(1),
        None,
        DkgBody::Round1(Frost::new(z1)),
    );
    let request = RepairRequest::new(
        &net,
        &testnet.members[3],
        MemberIndex(3),
        vec![MemberIndex(0), MemberIndex(1), MemberIndex(2)],
        at,
        Digest([4; 32]),
    );
    messages.push(("message-refresh-round1", Message::Refresh(refresh.clone())));
    messages.push((
        "message-refresh-withdraw",
        Message::Refresh(DkgMessage::new_as(
            Ceremony::Refresh,
            &net,
            &testnet.members[2],
            2,
            MemberIndex(2),
            None,
            DkgBody::Withdraw,
        )),
    ));
    messages.push((
        "message-repair-request",
        Message::Repair(RepairMessage::Request(request.clone())),
    ));
    messages.push((
        "message-repair-delta",
        Message::Repair(RepairMessage::Delta {
            request: request.clone(),
            public_package: keys[0].public_digest(),
            delta: Frost::new(frost::keys::repairable::Delta::deserialize(&[5; 32]).unwrap()),
        }),
    ));
    messages.push((
        "message-repair-sigma",
        Message::Repair(RepairMessage::Sigma {
            request: request.digest(),
            sigma: Frost::new(frost::keys::repairable::Sigma::deserialize(&[6; 32]).unwrap()),
            public: Frost::new(keys[0].public.clone()),
        }),
    ));
    records.push((
        "record-refresh-started",
        Record::RefreshStarted { ceremony: 2 },
    ));
    records.push((
        "record-refresh-complete",
        Record::RefreshComplete {
            ceremony: 2,
            public_package: keys[0].public_digest(),
            confirmations: vec![refresh],
        },
    ));
    let bundle = TrustBundle::new(&net, keys[0].group_key());
    World {
        net,
        testnet,
        evidence,
        observation,
        statement,
        messages,
        records,
        bundle,
    }
}

fn snapshot(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.hex"));
    let hex = hex::encode(bytes);
    let wrapped: String = hex
        .as_bytes()
        .chunks(96)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    if std::env::var_os("ACCORD_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &wrapped).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with ACCORD_UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == wrapped,
        "format of {name} changed; if intended, regenerate snapshots and review the diff"
    );
}

#[test]
fn signed_formats_are_byte_exact() {
    let w = world();
    let Evidence::Attestation { attestation, .. } = &w.evidence[0] else {
        unreachable!()
    };
    let Evidence::Report { report, .. } = &w.evidence[1] else {
        unreachable!()
    };
    snapshot("signed-attestation", &attestation.signing_bytes(w.net.id()));
    snapshot(
        "signed-inspection-report",
        &report.signing_bytes(w.net.id()),
    );
    snapshot(
        "signed-observation",
        &w.observation.observation.signing_bytes(w.net.id()),
    );
    snapshot("signed-statement", &w.statement.signing_bytes());
    snapshot("roster", &codec::encode(&w.testnet.roster).unwrap());
    snapshot("network-id", w.net.id().as_bytes());
    snapshot("policy-hash", w.net.policy_hash().as_bytes());
    snapshot("evidence-digest", w.evidence[0].digest().as_bytes());
    let cosigned = w
        .messages
        .iter()
        .find_map(|(_, m)| {
            if let Message::CoSigned(c) = m {
                Some(c.clone())
            } else {
                None
            }
        })
        .unwrap();
    let checkpoint = cosigned.message(w.net.id());
    snapshot("signed-checkpoint", &checkpoint);
    // The checkpoint is a C2SP tlog-checkpoint body: origin, size, base64 root, newline-terminated.
    let text = String::from_utf8(checkpoint).unwrap();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines[0], format!("accord/{}/period/0", w.net.id().to_hex()));
    assert_eq!(lines[1], "2");
    snapshot(
        "trust-bundle-json",
        serde_json::to_string_pretty(&w.bundle).unwrap().as_bytes(),
    );
}

#[test]
fn wire_and_storage_formats_are_byte_exact_and_round_trip() {
    let w = world();
    for (name, m) in &w.messages {
        let bytes = m.encode().unwrap();
        snapshot(name, &bytes);
        let back = Message::decode(&bytes, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(&back, m, "{name}");
        assert_eq!(back.encode().unwrap(), bytes, "{name}");
    }
    for (name, r) in &w.records {
        let bytes = codec::encode(r).unwrap();
        snapshot(name, &bytes);
        let back: Record = codec::decode_canonical(&bytes, MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(&back, r, "{name}");
    }
}

#[test]
fn co_signed_statements_are_plain_rfc8032_signatures() {
    let w = world();
    let cosigned = w
        .messages
        .iter()
        .find_map(|(_, m)| {
            if let Message::CoSigned(c) = m {
                Some(c.clone())
            } else {
                None
            }
        })
        .unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(w.bundle.group_key.as_bytes()).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(cosigned.signature.as_bytes());
    key.verify_strict(&cosigned.message(w.net.id()), &sig)
        .unwrap();
    for exported in cosigned.export(w.net.id()) {
        key.verify_strict(&exported.message(), &sig).unwrap();
        accord_protocol::verify_statement(&exported, &w.bundle).unwrap();
        // One flipped bit anywhere in the message fails.
        let mut bad = exported.clone();
        bad.statement.verdict = if bad.statement.verdict == Verdict::NoAttestation {
            Verdict::Compliant
        } else {
            Verdict::NoAttestation
        };
        assert_eq!(
            accord_protocol::verify_statement(&bad, &w.bundle),
            Err(accord_protocol::statement::VerifyError::BadInclusionProof)
        );
        let mut bad = exported.clone();
        bad.signature.0[7] ^= 0x10;
        assert_eq!(
            accord_protocol::verify_statement(&bad, &w.bundle),
            Err(accord_protocol::statement::VerifyError::BadSignature)
        );
        let mut other_key = w.bundle.clone();
        other_key.group_key.0[3] ^= 0x01;
        assert!(accord_protocol::verify_statement(&exported, &other_key).is_err());
    }
}

#[test]
fn version_trailing_bytes_and_unknown_tags_are_typed_errors() {
    // FAULTS 17.
    let w = world();
    let bytes = w.messages[0].1.encode().unwrap();
    let mut future = bytes.clone();
    future[0] = 2;
    assert_eq!(
        Message::decode(&future, MAX_MESSAGE_BYTES),
        Err(CodecError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        Message::decode(&trailing, MAX_MESSAGE_BYTES),
        Err(CodecError::TrailingBytes(1))
    );
    let mut unknown = bytes.clone();
    unknown[1..5].copy_from_slice(&250u32.to_le_bytes());
    assert!(matches!(
        Message::decode(&unknown, MAX_MESSAGE_BYTES),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn oversized_frames_and_huge_length_prefixes_are_refused_cheaply() {
    // FAULTS 15 and 16.
    let big = vec![1u8; 1024];
    assert_eq!(
        Message::decode(&big, 512),
        Err(CodecError::TooLarge {
            len: 1024,
            limit: 512
        })
    );
    // Version, the Evidence tag, then a vector length of 2^64 - 1 in a tiny payload.
    let mut evil = vec![1u8];
    evil.extend_from_slice(&0u32.to_le_bytes());
    evil.extend_from_slice(&0u32.to_le_bytes());
    evil.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(Message::decode(&evil, MAX_MESSAGE_BYTES).is_err());
}

#[test]
fn every_truncation_of_every_message_fails_cleanly() {
    // FAULTS 18.
    let w = world();
    for (name, m) in &w.messages {
        let bytes = m.encode().unwrap();
        for len in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..len], MAX_MESSAGE_BYTES).is_err(),
                "{name} truncated to {len} decoded"
            );
        }
    }
    for (name, r) in &w.records {
        let bytes = codec::encode(r).unwrap();
        for len in 0..bytes.len() {
            assert!(
                codec::decode::<Record>(&bytes[..len], MAX_MESSAGE_BYTES).is_err(),
                "{name} truncated to {len} decoded"
            );
        }
    }
}

#[test]
fn invalid_curve_points_and_scalars_are_rejected_at_decoding() {
    // FAULTS 7: commitments that are the identity, small-order or torsioned, and non-canonical
    // scalars as shares, never reach the engine.
    let w = world();
    let (share_msg, commit_msg) = (
        w.messages
            .iter()
            .find(|(n, _)| *n == "message-share")
            .unwrap()
            .1
            .clone(),
        w.messages
            .iter()
            .find(|(n, _)| *n == "message-accept")
            .unwrap()
            .1
            .clone(),
    );
    let Message::Share(share) = &share_msg else {
        unreachable!()
    };
    let Message::Accept(accept) = &commit_msg else {
        unreachable!()
    };
    let share_bytes = share.share.serialize();
    let commit_bytes = accept.commitments.serialize().unwrap();
    let point_at = commit_bytes.len() - 64; // hiding ‖ binding, 32 bytes each, at the end
    let mut identity = [0u8; 32];
    identity[0] = 1;
    // A point of order 8 (from the Ed25519 torsion subgroup).
    let order8 =
        hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a").unwrap();
    let l_plus_one =
        hex::decode("eed3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap();
    let mut cases: Vec<(&str, Message)> = Vec::new();
    for (name, point) in [("identity", identity.to_vec()), ("order-8 point", order8)] {
        let mut bytes = commit_bytes.clone();
        bytes[point_at..point_at + 32].copy_from_slice(&point);
        let mut wire = commit_msg.encode().unwrap();
        let at = wire
            .windows(commit_bytes.len())
            .position(|x| x == commit_bytes.as_slice())
            .unwrap();
        wire[at..at + bytes.len()].copy_from_slice(&bytes);
        assert!(
            Message::decode(&wire, MAX_MESSAGE_BYTES).is_err(),
            "{name} commitment decoded"
        );
        cases.push((name, commit_msg.clone()));
    }
    let mut bytes = share_bytes.clone();
    bytes[..32].copy_from_slice(&l_plus_one);
    let mut wire = share_msg.encode().unwrap();
    let at = wire
        .windows(share_bytes.len())
        .position(|x| x == share_bytes.as_slice())
        .unwrap();
    wire[at..at + 32].copy_from_slice(&bytes[..32]);
    assert!(
        Message::decode(&wire, MAX_MESSAGE_BYTES).is_err(),
        "non-canonical scalar decoded"
    );
    // A torsioned commitment: a valid point plus an order-8 point.
    let valid = curve_point(&commit_bytes[point_at..point_at + 32]);
    let torsion = curve_point(
        &hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a").unwrap(),
    );
    let mixed = (valid + torsion).compress().to_bytes();
    let mut bytes = commit_bytes.clone();
    bytes[point_at..point_at + 32].copy_from_slice(&mixed);
    let mut wire = commit_msg.encode().unwrap();
    let at = wire
        .windows(commit_bytes.len())
        .position(|x| x == commit_bytes.as_slice())
        .unwrap();
    wire[at..at + bytes.len()].copy_from_slice(&bytes);
    assert!(
        Message::decode(&wire, MAX_MESSAGE_BYTES).is_err(),
        "torsioned commitment decoded"
    );
    let _ = cases;
}

fn curve_point(bytes: &[u8]) -> curve25519_dalek::EdwardsPoint {
    curve25519_dalek::edwards::CompressedEdwardsY(bytes.try_into().unwrap())
        .decompress()
        .unwrap()
}

#[test]
fn network_id_binds_every_roster_field() {
    let w = world();
    let mut other = w.testnet.roster.clone();
    other.schedule.grace_ms += 1;
    assert_ne!(Network::new(other).unwrap().id(), w.net.id());
    let mut other = w.testnet.roster.clone();
    other.policy.max_accelerators += 1;
    let n = Network::new(other).unwrap();
    assert_ne!(n.id(), w.net.id());
    assert_ne!(n.policy_hash(), w.net.policy_hash());
    let _ = LabIndex(0);
    let _ = SecretKey::from_seed(&[0; 32]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes, MAX_MESSAGE_BYTES);
        let _ = codec::decode::<Record>(&bytes, MAX_MESSAGE_BYTES);
    }

    #[test]
    fn mutated_messages_never_panic(index in 0usize..32, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        thread_local!(static WORLD: World = world());
        WORLD.with(|w| {
            let mut bytes = w.messages[index % w.messages.len()].1.encode().unwrap();
            for (at, value) in &flips {
                let at = at % bytes.len();
                bytes[at] ^= value | 1;
            }
            if let Ok(m) = Message::decode(&bytes, MAX_MESSAGE_BYTES) {
                // Whatever decodes re-encodes to the same bytes (canonical).
                prop_assert_eq!(m.encode().unwrap(), bytes);
            }
            Ok(())
        })?;
    }
}
