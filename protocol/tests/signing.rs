//! A signer is never a signing oracle and never reuses a nonce (FAULTS 1, 3, 5, 7, 8, 10).
//!
//! A small synchronous driver runs four engines up to the point where member 1 has accepted the
//! coordinator's proposal; the tests then play the coordinator by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use accord_protocol::codec;
use accord_protocol::crypto::{Frost, SecretKey};
use accord_protocol::dkg::{KeyMaterial, deal};
use accord_protocol::engine::{
    CannotHelp, Delivery, Engine, EngineConfig, MessageError, Output, Record, SigningFault,
};
use accord_protocol::fixtures::{LabConduct, Testnet, TestnetSpec, lab_submissions};
use accord_protocol::message::{Accept, Message, Share, SignRequest};
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::time::Instant;
use accord_testkit::child_rng;
use frost_ed25519 as frost;
use rand_chacha::ChaCha20Rng;

struct Rig {
    net: Arc<Network>,
    engines: Vec<Engine>,
    keys: Vec<KeyMaterial>,
    identities: Vec<SecretKey>,
    records: Vec<Vec<Record>>,
    rngs: Vec<ChaCha20Rng>,
    now: Instant,
    held: Vec<(MemberIndex, MemberIndex, Message)>,
    coordinator_commitment: frost::round1::SigningCommitments,
}

const COORD: MemberIndex = MemberIndex(0);
const SIGNER: MemberIndex = MemberIndex(1);

impl Rig {
    /// Runs until the coordinator has the accepts of every member; holds all sign requests.
    fn to_accepts() -> Self {
        let mut rng = child_rng(42, "rig", 0, 0);
        let testnet =
            Testnet::generate(&TestnetSpec::new(4, 2, 1_000_000), &mut rng, |k| k.to_hex());
        let net = Network::new(testnet.roster).unwrap();
        let keys = deal(&net, &mut rng).unwrap();
        let engines = (0..4)
            .map(|i| {
                Engine::new(
                    net.clone(),
                    MemberIndex(i),
                    SecretKey::from_seed(&testnet.members[i as usize].seed()),
                    Some(keys[i as usize].clone()),
                    EngineConfig::default(),
                )
            })
            .collect();
        let mut rig = Rig {
            net: net.clone(),
            engines,
            keys: keys.clone(),
            identities: testnet.members,
            records: vec![Vec::new(); 4],
            rngs: (0..4).map(|i| child_rng(42, "member", i, 0)).collect(),
            now: net
                .schedule()
                .start(Period(0))
                .saturating_add(core::time::Duration::from_secs(1)),
            held: Vec::new(),
            coordinator_commitment: frost::round1::commit(keys_0_share(&keys), &mut rng).1,
        };
        for (i, k) in testnet.labs.iter().enumerate() {
            let lab = net
                .lab_id(accord_protocol::roster::LabIndex(i as u16))
                .to_string();
            for ev in lab_submissions(
                net.id(),
                &lab,
                k,
                Period(0),
                &net.roster().policy,
                LabConduct::Compliant,
                rig.now,
                &mut rng,
            ) {
                rig.engines[i].submit(rig.now, ev).unwrap();
            }
        }
        rig.pump(|_| false);
        let attempt = net.schedule().attempt_start(Period(0), 0);
        rig.now = attempt;
        for i in 0..4 {
            let r = &mut rig.rngs[i];
            rig.engines[i].handle_timeout(attempt, r);
        }
        rig.pump(|m| matches!(m, Message::SignRequest(_) | Message::Accept(_)));
        rig
    }

    /// Delivers every output until quiet; messages matching `hold` are kept in `held` instead.
    fn pump(&mut self, hold: impl Fn(&Message) -> bool) {
        loop {
            let mut moved = false;
            for i in 0..self.engines.len() {
                let from = MemberIndex(i as u16);
                while let Some(o) = self.engines[i].poll_output() {
                    moved = true;
                    let targets: Vec<(MemberIndex, Message)> = match o {
                        Output::Send { to, message } => vec![(to, message)],
                        Output::Broadcast(m) => (0..4u16)
                            .filter(|j| *j != from.0)
                            .map(|j| (MemberIndex(j), m.clone()))
                            .collect(),
                        Output::Persist(r) => {
                            self.records[i].push(r);
                            vec![]
                        }
                        _ => vec![],
                    };
                    for (to, m) in targets {
                        if hold(&m) {
                            self.held.push((from, to, m));
                        } else {
                            let j = usize::from(to.0);
                            let r = &mut self.rngs[j];
                            self.engines[j].handle_message(self.now, from, m, r);
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The accepts members sent to the coordinator, plus a commitment for the coordinator
    /// itself (its own accept stays inside its engine).
    fn accepts(&self) -> BTreeMap<MemberIndex, Accept> {
        let mut out: BTreeMap<MemberIndex, Accept> = self
            .held
            .iter()
            .filter_map(|(from, _, m)| match m {
                Message::Accept(a) => Some((*from, a.clone())),
                _ => None,
            })
            .collect();
        let template = out[&SIGNER].clone();
        out.insert(
            COORD,
            Accept {
                commitments: Frost::new(self.coordinator_commitment),
                ..template
            },
        );
        out
    }

    fn package_for(&self, signers: &[MemberIndex], message: &[u8]) -> frost::SigningPackage {
        let accepts = self.accepts();
        let commitments = signers
            .iter()
            .map(|s| (s.identifier(), accepts[s].commitments.clone().into_inner()))
            .collect();
        frost::SigningPackage::new(commitments, message)
    }

    fn message(&self) -> Vec<u8> {
        let a = &self.accepts()[&SIGNER];
        let accepted = self.records[usize::from(SIGNER.0)]
            .iter()
            .find_map(|r| match r {
                Record::Accepted(rec) if rec.id == a.id => Some(rec.clone()),
                _ => None,
            })
            .expect("accepted record persisted before the accept left");
        accord_protocol::statement::signing_message(self.net.id(), &a.id.unit, &accepted.statements)
    }

    fn ask(
        &mut self,
        from: MemberIndex,
        package: frost::SigningPackage,
        session: u32,
    ) -> (Delivery, Vec<Output>) {
        let id = self.accepts()[&SIGNER].id;
        let req = SignRequest {
            id,
            session,
            package: Frost::new(package),
        };
        let r = &mut self.rngs[1];
        let d = self.engines[1].handle_message(self.now, from, Message::SignRequest(req), r);
        let mut out = Vec::new();
        while let Some(o) = self.engines[1].poll_output() {
            if let Output::Persist(r) = &o {
                self.records[1].push(r.clone());
            }
            out.push(o);
        }
        (d, out)
    }
}

fn keys_0_share(keys: &[KeyMaterial]) -> &frost::keys::SigningShare {
    keys[0].key_package.signing_share()
}

fn shares(out: &[Output]) -> Vec<Share> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                message: Message::Share(s),
                ..
            } => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn refused(d: &Delivery) -> bool {
    matches!(
        d,
        Delivery::Rejected(MessageError::Signing(_) | MessageError::CannotHelp(_))
    )
}

#[test]
fn every_member_accepts_and_persists_before_committing() {
    let rig = Rig::to_accepts();
    assert_eq!(
        rig.held
            .iter()
            .filter(|(_, _, m)| matches!(m, Message::Accept(_)))
            .count(),
        3,
        "the three other members accepted"
    );
    for i in 1..4 {
        assert!(
            rig.records[i]
                .iter()
                .any(|r| matches!(r, Record::Accepted(_)))
        );
    }
}

#[test]
fn a_good_request_gets_one_share_then_the_commitment_is_bound() {
    // FAULTS 1 and 3.
    let mut rig = Rig::to_accepts();
    let msg = rig.message();
    let signers = [MemberIndex(0), MemberIndex(1), MemberIndex(2)];
    let package = rig.package_for(&signers, &msg);
    let (d, out) = rig.ask(COORD, package.clone(), 0);
    assert_eq!(d, Delivery::Accepted);
    // The protection record is persisted before the share is sent.
    let persist = out
        .iter()
        .position(|o| matches!(o, Output::Persist(Record::Signed(_))))
        .expect("protection record");
    let send = out
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::Share(_),
                    ..
                }
            )
        })
        .expect("share");
    assert!(persist < send);
    let first = shares(&out).remove(0);
    // The same package again: the same share (idempotent), no new signing.
    let (d, out) = rig.ask(COORD, package.clone(), 0);
    assert_eq!(d, Delivery::Duplicate);
    assert_eq!(shares(&out)[0].share, first.share);
    // A different package (other co-signers) with the same commitment: refused.
    let other = rig.package_for(&[MemberIndex(1), MemberIndex(2), MemberIndex(3)], &msg);
    let (d, out) = rig.ask(COORD, other.clone(), 1);
    assert_eq!(
        d,
        Delivery::Rejected(MessageError::Signing(SigningFault::CommitmentReused))
    );
    assert!(shares(&out).is_empty());
    // After a restart (nonces are memory only) the refusal persists, and the old package is
    // asked again gets a refusal, never a new share.
    let records = rig.records[1].clone();
    rig.engines[1] = Engine::restore(
        rig.net.clone(),
        SIGNER,
        SecretKey::from_seed(&rig.identities[1].seed()),
        Some(rig.keys[1].clone()),
        EngineConfig::default(),
        records,
    );
    let (d, _) = rig.ask(COORD, other, 2);
    assert_eq!(
        d,
        Delivery::Rejected(MessageError::Signing(SigningFault::CommitmentReused))
    );
    let (d, _) = rig.ask(COORD, package, 3);
    assert_eq!(
        d,
        Delivery::Rejected(MessageError::CannotHelp(CannotHelp::NoNonces))
    );
}

#[test]
fn nonces_do_not_survive_a_crash_between_commit_and_sign() {
    // FAULTS 2 at the engine level: the commitment issued before the crash can never be used.
    let mut rig = Rig::to_accepts();
    let msg = rig.message();
    let package = rig.package_for(&[MemberIndex(0), MemberIndex(1), MemberIndex(2)], &msg);
    let records = rig.records[1].clone();
    rig.engines[1] = Engine::restore(
        rig.net.clone(),
        SIGNER,
        SecretKey::from_seed(&rig.identities[1].seed()),
        Some(rig.keys[1].clone()),
        EngineConfig::default(),
        records,
    );
    let (d, out) = rig.ask(COORD, package, 0);
    assert!(refused(&d), "{d:?}");
    assert!(shares(&out).is_empty());
}

#[test]
fn malformed_packages_get_no_share() {
    // FAULTS 8 and 10.
    let rig0 = Rig::to_accepts();
    let msg = rig0.message();
    type Build = Box<dyn Fn(&Rig) -> frost::SigningPackage>;
    let cases: Vec<(&str, Build)> = vec![
        (
            "fewer than t commitments",
            Box::new(|r: &Rig| r.package_for(&[MemberIndex(0), MemberIndex(1)], &r.message())),
        ),
        (
            "without our commitment",
            Box::new(|r: &Rig| {
                r.package_for(
                    &[MemberIndex(0), MemberIndex(2), MemberIndex(3)],
                    &r.message(),
                )
            }),
        ),
        (
            "with a wrong commitment for us",
            Box::new(|r: &Rig| {
                let mut c: BTreeMap<_, _> = [MemberIndex(0), MemberIndex(2), MemberIndex(3)]
                    .iter()
                    .map(|s| {
                        (
                            s.identifier(),
                            r.accepts()[s].commitments.clone().into_inner(),
                        )
                    })
                    .collect();
                c.insert(
                    SIGNER.identifier(),
                    r.accepts()[&MemberIndex(2)]
                        .commitments
                        .clone()
                        .into_inner(),
                );
                frost::SigningPackage::new(c, &r.message())
            }),
        ),
        (
            "a different message",
            Box::new(|r: &Rig| {
                r.package_for(
                    &[MemberIndex(0), MemberIndex(1), MemberIndex(2)],
                    b"pay the lab",
                )
            }),
        ),
        (
            "a commitment from a non-member",
            Box::new(|r: &Rig| {
                let mut c: BTreeMap<_, _> = [MemberIndex(0), MemberIndex(1), MemberIndex(2)]
                    .iter()
                    .map(|s| {
                        (
                            s.identifier(),
                            r.accepts()[s].commitments.clone().into_inner(),
                        )
                    })
                    .collect();
                c.insert(
                    frost::Identifier::try_from(99u16).unwrap(),
                    r.accepts()[&MemberIndex(2)]
                        .commitments
                        .clone()
                        .into_inner(),
                );
                frost::SigningPackage::new(c, &r.message())
            }),
        ),
    ];
    let _ = msg;
    for (name, build) in cases {
        let mut rig = Rig::to_accepts();
        let package = build(&rig);
        let (d, out) = rig.ask(COORD, package, 0);
        assert!(refused(&d), "{name}: {d:?}");
        assert!(shares(&out).is_empty(), "{name}");
        assert!(
            !rig.records[1]
                .iter()
                .any(|r| matches!(r, Record::Signed(_))),
            "{name}"
        );
    }
}

#[test]
fn only_the_attempts_coordinator_may_ask() {
    let mut rig = Rig::to_accepts();
    let msg = rig.message();
    let package = rig.package_for(&[MemberIndex(0), MemberIndex(1), MemberIndex(2)], &msg);
    let (d, out) = rig.ask(MemberIndex(2), package, 0);
    assert_eq!(d, Delivery::Rejected(MessageError::NotCoordinator));
    assert!(shares(&out).is_empty());
}

#[test]
fn duplicate_identifiers_do_not_survive_decoding() {
    // FAULTS 8: a package listing one identifier twice. In frost's encoding the commitments are a
    // map of fixed-size entries; we overwrite the last entry with a copy of the one before it, so
    // the bytes name member 2 twice. Decoding collapses the duplicate, re-encoding differs, and the
    // canonical check rejects the message before any engine sees it.
    let rig = Rig::to_accepts();
    let msg = rig.message();
    let three = rig
        .package_for(&[MemberIndex(0), MemberIndex(1), MemberIndex(2)], &msg)
        .serialize()
        .unwrap();
    let four = rig.package_for(
        &[
            MemberIndex(0),
            MemberIndex(1),
            MemberIndex(2),
            MemberIndex(3),
        ],
        &msg,
    );
    let four_bytes = four.serialize().unwrap();
    let entry = four_bytes.len() - three.len();
    let suffix = three
        .iter()
        .rev()
        .zip(four_bytes.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let last = four_bytes.len() - suffix - entry;
    let mut tampered = four_bytes.clone();
    tampered.copy_within(last - entry..last, last);
    assert_ne!(tampered, four_bytes);
    let request = Message::SignRequest(SignRequest {
        id: rig.accepts()[&SIGNER].id,
        session: 0,
        package: Frost::new(four),
    });
    let mut wire = request.encode().unwrap();
    let at = wire
        .windows(four_bytes.len())
        .position(|w| w == four_bytes.as_slice())
        .expect("package bytes inside the message");
    wire[at..at + four_bytes.len()].copy_from_slice(&tampered);
    let err = Message::decode(&wire, codec::MAX_MESSAGE_BYTES).unwrap_err();
    assert!(matches!(err, codec::CodecError::Malformed(_)), "{err:?}");
    // The untampered message decodes.
    assert!(Message::decode(&request.encode().unwrap(), codec::MAX_MESSAGE_BYTES).is_ok());
}

#[test]
fn blame_follows_the_connection() {
    // FAULTS 5: a share carries no identifier; the coordinator files it under the authenticated
    // sender. Member 3 sending a garbage share is blamed as member 3, whatever it intends.
    use accord_testkit::{Behaviour, Cluster, ClusterSpec};
    let mut spec = ClusterSpec::new(4, 2);
    spec.behaviours = vec![
        Behaviour::Honest,
        Behaviour::Honest,
        Behaviour::Honest,
        Behaviour::GarbageShares,
    ];
    let mut c = Cluster::new(spec);
    c.run_until(
        c.net
            .schedule()
            .start(Period(0))
            .saturating_add(core::time::Duration::from_secs(1)),
    );
    c.submit_period(Period(0), |_| LabConduct::Compliant);
    c.assert_live(0..1, 60_000);
    let named: Vec<_> = c.checker.culprits.iter().map(|(_, m, _)| *m).collect();
    assert!(named.iter().all(|m| *m == MemberIndex(3)), "{named:?}");
}

#[test]
fn fewer_than_t_colluding_members_cannot_forge() {
    // Invariant 1: members 0 and 2 (t - 1 = 2 of 4) want a group signature on a bogus message.
    // They hold their own key shares and the honest members' published commitments; the honest
    // members never sign anything but the proposal they validated.
    let mut rig = Rig::to_accepts();
    let bogus = b"accord: lab-000 is compliant (it is not)".to_vec();
    let colluders = [MemberIndex(0), MemberIndex(2)];
    let mut rng = child_rng(77, "forger", 0, 0);
    // Fresh nonces of their own, and the honest signer's real commitment from its accept.
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for c in colluders {
        let (n, cm) = frost::round1::commit(
            rig.keys[usize::from(c.0)].key_package.signing_share(),
            &mut rng,
        );
        nonces.insert(c, n);
        commitments.insert(c.identifier(), cm);
    }
    commitments.insert(
        SIGNER.identifier(),
        rig.accepts()[&SIGNER].commitments.clone().into_inner(),
    );
    let package = frost::SigningPackage::new(commitments, &bogus);
    // The honest member refuses: the message is not the statement it accepted.
    let (d, out) = rig.ask(COORD, package.clone(), 0);
    assert_eq!(
        d,
        Delivery::Rejected(MessageError::Signing(SigningFault::WrongMessage))
    );
    assert!(shares(&out).is_empty());
    // With only their t - 1 shares plus anything they can make up for the honest member, the
    // aggregate never verifies.
    let mut shares_map: BTreeMap<_, _> = colluders
        .iter()
        .map(|c| {
            (
                c.identifier(),
                frost::round2::sign(
                    &package,
                    &nonces[c],
                    &rig.keys[usize::from(c.0)].key_package,
                )
                .unwrap(),
            )
        })
        .collect();
    for attempt in 0..8 {
        let guess =
            frost::keys::SigningShare::deserialize(&frost::SigningKey::new(&mut rng).serialize())
                .unwrap();
        let made_up = frost::round2::SignatureShare::deserialize(&guess.serialize()).unwrap();
        shares_map.insert(SIGNER.identifier(), made_up);
        let result = frost::aggregate(&package, &shares_map, &rig.keys[0].public);
        assert!(
            result.is_err(),
            "attempt {attempt} produced a valid signature"
        );
    }
    // And t - 1 signers alone are below what FROST will even aggregate.
    let two: BTreeMap<_, _> = colluders
        .iter()
        .map(|c| (c.identifier(), shares_map[&c.identifier()]))
        .collect();
    let mut two_commitments = package.signing_commitments().clone();
    two_commitments.remove(&SIGNER.identifier());
    let small = frost::SigningPackage::new(two_commitments, &bogus);
    assert!(frost::aggregate(&small, &two, &rig.keys[0].public).is_err());
}
