//! Key generation under attack (FAULTS 11–14): the ceremony aborts naming the culprit, never an
//! honest member, and a fresh ceremony completes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use accord_protocol::crypto::{Frost, SecretKey};
use accord_protocol::dkg::{
    DkgBody, DkgMachine, DkgMessage, DkgOffence, DkgOutput, KeyMaterial, RevealedShare,
};
use accord_protocol::fixtures::{Testnet, TestnetSpec};
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::time::Instant;
use accord_testkit::{Cluster, ClusterSpec, child_rng};
use frost_ed25519 as frost;

/// Deliveries as (from, to, message).
type Deliveries = Vec<(MemberIndex, MemberIndex, DkgMessage)>;

struct Ceremony {
    net: Arc<Network>,
    ids: Vec<SecretKey>,
    machines: Vec<Option<DkgMachine>>,
    keys: BTreeMap<MemberIndex, KeyMaterial>,
    complete: BTreeMap<MemberIndex, accord_protocol::crypto::PublicKey>,
    aborted: BTreeMap<MemberIndex, Vec<(MemberIndex, DkgOffence)>>,
    queue: VecDeque<(MemberIndex, MemberIndex, DkgMessage)>,
    now: Instant,
}

impl Ceremony {
    fn new(n: usize, offline: &[usize]) -> Self {
        let mut rng = child_rng(5, "dkg-test", n as u64, 0);
        let t = Testnet::generate(&TestnetSpec::new(n, 1, 0), &mut rng, |k| k.to_hex());
        let net = Network::new(t.roster).unwrap();
        let mut c = Ceremony {
            net: net.clone(),
            ids: t.members,
            machines: Vec::new(),
            keys: BTreeMap::new(),
            complete: BTreeMap::new(),
            aborted: BTreeMap::new(),
            queue: VecDeque::new(),
            now: Instant::from_millis(10),
        };
        for i in 0..n {
            if offline.contains(&i) {
                c.machines.push(None);
                continue;
            }
            let mut rng = child_rng(5, "member", i as u64, 0);
            let (m, out) = DkgMachine::start(
                net.clone(),
                MemberIndex(i as u16),
                &c.ids[i],
                1,
                c.now,
                &mut rng,
            );
            c.machines.push(Some(m));
            c.route(MemberIndex(i as u16), out);
        }
        c
    }

    fn route(&mut self, from: MemberIndex, out: Vec<DkgOutput>) {
        for o in out {
            match o {
                DkgOutput::Broadcast(m) => {
                    for j in self.net.members().filter(|j| *j != from) {
                        self.queue.push_back((from, j, m.clone()));
                    }
                }
                DkgOutput::Send(to, m) => self.queue.push_back((from, to, m)),
                DkgOutput::Key(k) => {
                    self.keys.insert(from, *k);
                }
                DkgOutput::Complete { group_key, .. } => {
                    self.complete.insert(from, group_key);
                }
                DkgOutput::Aborted(f) => {
                    self.aborted.insert(from, f.culprits);
                }
            }
        }
    }

    /// Delivers everything queued; `tamper` rewrites each delivery into the deliveries that
    /// actually happen (from, to, message).
    fn run(
        &mut self,
        tamper: &mut impl FnMut(MemberIndex, MemberIndex, DkgMessage, &Ceremony) -> Deliveries,
    ) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            for (from, to, m) in tamper(from, to, msg, self) {
                let i = usize::from(to.0);
                if let Some(machine) = self.machines[i].as_mut() {
                    let out = machine.handle(from, m, self.now, &self.ids[i]);
                    self.route(to, out);
                }
            }
        }
    }

    fn timeout(&mut self) {
        self.now = self.now.saturating_add(core::time::Duration::from_millis(
            self.net.schedule().dkg_phase_timeout_ms + 1,
        ));
        for i in 0..self.machines.len() {
            if let Some(m) = self.machines[i].as_mut() {
                let out = m.handle_timeout(self.now);
                self.route(MemberIndex(i as u16), out);
            }
        }
    }

    fn sign(&self, from: MemberIndex, body: DkgBody, recipient: Option<MemberIndex>) -> DkgMessage {
        DkgMessage::new(
            &self.net,
            &self.ids[usize::from(from.0)],
            1,
            from,
            recipient,
            body,
        )
    }

    /// Every honest member aborted naming exactly `culprit` for `offence`.
    fn assert_aborted_naming(&self, culprit: usize, offence: DkgOffence, honest: &[usize]) {
        for h in honest {
            let named = self
                .aborted
                .get(&MemberIndex(*h as u16))
                .unwrap_or_else(|| panic!("member {h} did not abort"));
            assert_eq!(
                named,
                &vec![(MemberIndex(culprit as u16), offence.clone())],
                "member {h}"
            );
        }
        assert!(
            self.complete.is_empty(),
            "nobody completes an aborted ceremony"
        );
    }
}

fn pass(
    from: MemberIndex,
    to: MemberIndex,
    m: DkgMessage,
    _: &Ceremony,
) -> Vec<(MemberIndex, MemberIndex, DkgMessage)> {
    vec![(from, to, m)]
}

#[test]
fn honest_ceremony_gives_every_member_the_same_working_key() {
    let mut c = Ceremony::new(5, &[]);
    c.run(&mut pass);
    assert_eq!(c.complete.len(), 5);
    let keys: std::collections::BTreeSet<_> = c.complete.values().collect();
    assert_eq!(keys.len(), 1);
    // Four of the five key shares produce a signature that verifies under the group key.
    let mut rng = child_rng(1, "sign", 0, 0);
    let signers: Vec<&KeyMaterial> = c.keys.values().take(4).collect();
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in &signers {
        let (n, cm) = frost::round1::commit(k.key_package.signing_share(), &mut rng);
        nonces.insert(*k.key_package.identifier(), n);
        commitments.insert(*k.key_package.identifier(), cm);
    }
    let package = frost::SigningPackage::new(commitments, b"hello");
    let shares: BTreeMap<_, _> = signers
        .iter()
        .map(|k| {
            (
                *k.key_package.identifier(),
                frost::round2::sign(
                    &package,
                    &nonces[k.key_package.identifier()],
                    &k.key_package,
                )
                .unwrap(),
            )
        })
        .collect();
    let sig = frost::aggregate(&package, &shares, &signers[0].public).unwrap();
    signers[0]
        .public
        .verifying_key()
        .verify(b"hello", &sig)
        .unwrap();
}

#[test]
fn commitment_of_the_wrong_length_is_named() {
    // FAULTS 11.
    let mut c = Ceremony::new(5, &[]);
    let mut rng = child_rng(9, "bad", 0, 0);
    let (_, short) = frost::keys::dkg::part1(
        MemberIndex(2).identifier(),
        5,
        c.net.t() as u16 - 1,
        &mut rng,
    )
    .unwrap();
    let bad = c.sign(MemberIndex(2), DkgBody::Round1(Frost::new(short)), None);
    c.run(&mut |from, to, m, _| {
        if from == MemberIndex(2) && matches!(m.body, DkgBody::Round1(_)) {
            vec![(from, to, bad.clone())]
        } else {
            vec![(from, to, m)]
        }
    });
    c.assert_aborted_naming(2, DkgOffence::WrongCommitmentLength, &[0, 1, 3, 4]);
}

#[test]
fn bad_proof_of_knowledge_is_named() {
    // FAULTS 11: member 2 publishes its commitment with member 3's proof of knowledge, and keeps
    // its story consistent: it echoes the digests of what everyone else saw.
    let mut c = Ceremony::new(5, &[]);
    let mut rng = child_rng(9, "bad", 1, 0);
    let (_, p2) =
        frost::keys::dkg::part1(MemberIndex(2).identifier(), 5, c.net.t() as u16, &mut rng)
            .unwrap();
    let (_, p3) =
        frost::keys::dkg::part1(MemberIndex(3).identifier(), 5, c.net.t() as u16, &mut rng)
            .unwrap();
    let forged =
        frost::keys::dkg::round1::Package::new(p2.commitment().clone(), *p3.proof_of_knowledge());
    let bad = c.sign(MemberIndex(2), DkgBody::Round1(Frost::new(forged)), None);
    let mut seen: BTreeMap<MemberIndex, accord_protocol::crypto::Digest> = BTreeMap::new();
    seen.insert(MemberIndex(2), bad.digest());
    c.run(&mut |from, to, m, c| match &m.body {
        DkgBody::Round1(_) if m.sender == MemberIndex(2) => {
            // Member 2's own machine never learns that others hold the forged package.
            if to == MemberIndex(2) {
                vec![]
            } else {
                vec![(from, to, bad.clone())]
            }
        }
        DkgBody::Round1(_) => {
            seen.insert(m.sender, m.digest());
            vec![(from, to, m)]
        }
        DkgBody::Echo(_) if from == MemberIndex(2) => {
            let digests = c.net.members().map(|s| seen[&s]).collect();
            vec![(
                from,
                to,
                c.sign(MemberIndex(2), DkgBody::Echo(digests), None),
            )]
        }
        _ => vec![(from, to, m)],
    });
    c.assert_aborted_naming(2, DkgOffence::InvalidProofOfKnowledge, &[0, 1, 3, 4]);
}

#[test]
fn a_share_that_does_not_match_its_commitment_is_named_by_everyone() {
    // FAULTS 11: member 2 sends member 0 a random share; 0 complains with the signed share, and
    // every member checks it and names 2.
    let mut c = Ceremony::new(5, &[]);
    let mut rng = child_rng(9, "bad", 2, 0);
    let random =
        frost::keys::SigningShare::deserialize(&frost::SigningKey::new(&mut rng).serialize())
            .unwrap();
    let bad = c.sign(
        MemberIndex(2),
        DkgBody::Round2(Frost::new(frost::keys::dkg::round2::Package::new(random))),
        Some(MemberIndex(0)),
    );
    c.run(&mut |from, to, m, _| {
        if from == MemberIndex(2) && to == MemberIndex(0) && matches!(m.body, DkgBody::Round2(_)) {
            vec![(from, to, bad.clone())]
        } else {
            vec![(from, to, m)]
        }
    });
    c.assert_aborted_naming(2, DkgOffence::InvalidShare, &[0, 1, 3, 4]);
}

#[test]
fn a_false_complaint_names_the_complainer() {
    // Member 0 receives a valid share from member 2 and falsely complains about it to everyone.
    let mut c = Ceremony::new(5, &[]);
    c.run(&mut |from, to, m, c| {
        if from == MemberIndex(2) && to == MemberIndex(0) && matches!(m.body, DkgBody::Round2(_)) {
            let complaint = c.sign(
                MemberIndex(0),
                DkgBody::Complaint(Box::new(RevealedShare::of(&m).unwrap())),
                None,
            );
            let mut out = vec![(from, to, m)];
            out.extend((1..5u16).map(|j| (MemberIndex(0), MemberIndex(j), complaint.clone())));
            return out;
        }
        vec![(from, to, m)]
    });
    c.assert_aborted_naming(0, DkgOffence::FalseComplaint, &[1, 2, 3, 4]);
}

#[test]
fn equivocating_round1_is_named_with_proof() {
    // FAULTS 12: member 2 sends one package to members 0 and 1, another to 3 and 4.
    let mut c = Ceremony::new(5, &[]);
    let mut rng = child_rng(9, "bad", 3, 0);
    let (_, other) =
        frost::keys::dkg::part1(MemberIndex(2).identifier(), 5, c.net.t() as u16, &mut rng)
            .unwrap();
    let second = c.sign(MemberIndex(2), DkgBody::Round1(Frost::new(other)), None);
    c.run(&mut |from, to, m, _| {
        if from == MemberIndex(2)
            && to.0 >= 3
            && matches!(m.body, DkgBody::Round1(_))
            && m.sender == MemberIndex(2)
        {
            vec![(from, to, second.clone())]
        } else {
            vec![(from, to, m)]
        }
    });
    c.assert_aborted_naming(2, DkgOffence::Equivocation, &[0, 1, 3, 4]);
}

#[test]
fn an_offline_member_aborts_the_ceremony_by_timeout_and_a_fresh_one_completes() {
    // FAULTS 13.
    let mut c = Ceremony::new(5, &[3]);
    c.run(&mut pass);
    assert!(c.complete.is_empty());
    c.timeout();
    c.assert_aborted_naming(3, DkgOffence::Timeout, &[0, 1, 2, 4]);
    let mut fresh = Ceremony::new(5, &[]);
    fresh.run(&mut pass);
    assert_eq!(fresh.complete.len(), 5);
}

#[test]
fn a_member_restarted_mid_ceremony_aborts_cleanly_then_a_new_ceremony_completes() {
    // FAULTS 14, through whole engines: member 1 crashes after round 1 (its secrets were only in
    // memory), the others time out naming it, and ceremony 2 completes after its restart.
    let mut spec = ClusterSpec::new(4, 1);
    spec.dkg = true;
    let mut c = Cluster::new(spec);
    c.start_dkg(1);
    c.crash(MemberIndex(1));
    let timeout = c.net.schedule().dkg_phase_timeout_ms;
    c.run_until(
        c.now
            .saturating_add(core::time::Duration::from_millis(timeout * 2 + 10)),
    );
    for m in [0u16, 2, 3] {
        let named = c.checker.dkg_aborted.get(&MemberIndex(m)).expect("aborted");
        assert_eq!(
            named,
            &vec![MemberIndex(1)],
            "member {m} names the crashed member"
        );
    }
    c.restart(MemberIndex(1));
    // The restarted member refuses to rejoin ceremony 1 (it lost its secret), but joins 2.
    assert!(
        c.nodes[1]
            .engine
            .as_mut()
            .unwrap()
            .start_dkg(c.now, 1, &mut child_rng(0, "x", 0, 0))
            .is_err()
    );
    c.start_dkg(2);
    let ok = c.run_until_condition(
        c.now.saturating_add(core::time::Duration::from_secs(60)),
        |c| c.checker.dkg_complete.len() == 4,
    );
    assert!(ok, "{:?}", c.checker.dkg_aborted);
    c.run_until(
        c.net
            .schedule()
            .start(Period(0))
            .max(c.now)
            .saturating_add(core::time::Duration::from_secs(1)),
    );
    c.submit_period(Period(0), |_| {
        accord_protocol::fixtures::LabConduct::Compliant
    });
    c.assert_live(0..1, 60_000);
}
