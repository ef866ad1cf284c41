//! Signed notes, checkpoints, cosignatures and the witness rule (FAULTS 32 at the protocol layer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::fixtures::{Testnet, TestnetSpec};
use accord_protocol::roster::{MemberIndex, Network, Period};
use accord_protocol::statement::{MerkleTree, checkpoint_origin};
use accord_protocol::transparency::{
    AddCheckpoint, LogError, WitnessRefusal, add_cosignatures, checkpoint_text, cosign, group_note,
    log_origin, sign_checkpoint, verify_checkpoint, witness_check,
};
use accord_protocol::verify::TrustBundle;
use accord_testkit::child_rng;
use signed_note::{Note, StandardVerifier, VerifierList};

fn net() -> (std::sync::Arc<Network>, Testnet, SecretKey) {
    let mut rng = child_rng(7, "transparency", 0, 0);
    let spec = TestnetSpec::new(4, 2, 1_700_000_000_000);
    let testnet = Testnet::generate(&spec, &mut rng, |k| format!("12D3Koo{}", &k.to_hex()[..20]));
    let net = Network::new(testnet.roster.clone()).unwrap();
    (net, testnet, SecretKey::from_seed(&[42; 32]))
}

fn root_of(n: u8) -> Digest {
    Digest(MerkleTree::new((0..n).map(|i| vec![i])).root().0)
}

#[test]
fn a_group_signed_checkpoint_verifies_as_a_note_with_a_stock_verifier() {
    let (net, _, group) = net();
    let bundle = TrustBundle::new(&net, group.public());
    bundle.check_consistent().unwrap();
    let text = checkpoint_text(&checkpoint_origin(net.id(), Period(3)), 5, &root_of(5));
    let signature = group.sign(text.as_bytes());
    let note = group_note(net.id(), &text, &group.public(), &signature).unwrap();
    // signed_note's own verifier, built from the bundle's verifier key string alone.
    let verifier = StandardVerifier::new(&bundle.note_verifier_key).unwrap();
    let parsed = Note::from_bytes(note.as_bytes()).unwrap();
    let (ok, _) = parsed
        .verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
        .unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(parsed.text(), text.as_bytes());
    // One flipped bit in the text fails.
    let tampered = note.replacen("\n5\n", "\n4\n", 1);
    let parsed = Note::from_bytes(tampered.as_bytes()).unwrap();
    assert!(
        parsed
            .verify(&VerifierList::new(vec![Box::new(verifier)]))
            .is_err()
    );
    // A bundle whose note key was edited is refused.
    let mut edited = bundle.clone();
    edited.note_verifier_key = edited.note_verifier_key.replace("+", "+0");
    assert!(edited.check_consistent().is_err());
}

#[test]
fn log_checkpoints_count_only_valid_cosignatures_by_other_members() {
    let (net, t, group) = net();
    let bundle = TrustBundle::new(&net, group.public());
    let note = sign_checkpoint(net.id(), MemberIndex(1), &t.members[1], 7, &root_of(7));
    let cp = verify_checkpoint(note.as_bytes(), &bundle.logs).unwrap();
    assert_eq!(
        (cp.member, cp.size, cp.root),
        (MemberIndex(1), 7, root_of(7))
    );
    assert!(cp.cosigners.is_empty());
    // The log's note verifies with signed_note's stock verifier and the bundle's vkey.
    let stock = StandardVerifier::new(&bundle.logs[1].log_verifier_key).unwrap();
    Note::from_bytes(note.as_bytes())
        .unwrap()
        .verify(&VerifierList::new(vec![Box::new(stock)]))
        .unwrap();

    let lines: Vec<String> = [0usize, 2, 1]
        .iter()
        .map(|&w| {
            cosign(
                net.id(),
                MemberIndex(w as u16),
                &t.members[w],
                &cp.text,
                1_800_000_000,
            )
        })
        .collect();
    let cosigned = add_cosignatures(&note, &lines).unwrap();
    let cp = verify_checkpoint(cosigned.as_bytes(), &bundle.logs).unwrap();
    // Member 1 cosigning its own log does not count as a witness (its witness key is not among
    // the verifiers of its own log, so the line is ignored as unknown).
    assert_eq!(
        cp.cosigners,
        vec![
            (MemberIndex(0), 1_800_000_000),
            (MemberIndex(2), 1_800_000_000)
        ]
    );

    // A cosignature over another checkpoint (or with a changed timestamp) is a bad signature by a
    // known key: the whole note is refused.
    let other = checkpoint_text(&log_origin(net.id(), MemberIndex(1)), 8, &root_of(8));
    let wrong = cosign(
        net.id(),
        MemberIndex(3),
        &t.members[3],
        &other,
        1_800_000_000,
    );
    let bad = add_cosignatures(&note, &[wrong]).unwrap();
    assert!(matches!(
        verify_checkpoint(bad.as_bytes(), &bundle.logs),
        Err(LogError::BadLogSignature(_))
    ));

    // Signed by another member's key under member 1's origin: refused.
    let forged = sign_checkpoint(net.id(), MemberIndex(1), &t.members[2], 7, &root_of(7));
    assert!(verify_checkpoint(forged.as_bytes(), &bundle.logs).is_err());
    // Hostile bytes: no panic, typed errors.
    for junk in [
        &b""[..],
        b"\n\n",
        b"x\n\n\xe2\x80\x94 a AAAA\n",
        &[0xff; 70_000][..],
    ] {
        assert!(verify_checkpoint(junk, &bundle.logs).is_err());
    }
}

#[test]
fn a_witness_cosigns_appends_and_refuses_forks_and_rollbacks() {
    let (net, t, group) = net();
    let keys = TrustBundle::new(&net, group.public()).logs;
    let log = MemberIndex(2);
    let leaves: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i]).collect();
    let tree = |n: usize| MerkleTree::new(leaves[..n].to_vec());
    let note = |n: usize| {
        sign_checkpoint(
            net.id(),
            log,
            &t.members[2],
            n as u64,
            &Digest(tree(n).root().0),
        )
    };
    let first = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: note(4),
    };
    let (_, held) = witness_check(&keys, log, &first, None).unwrap();
    assert_eq!(held.size, 4);
    // Sent over another member's connection: refused.
    assert!(matches!(
        witness_check(&keys, MemberIndex(1), &first, None),
        Err(WitnessRefusal::NotTheSendersLog { .. })
    ));

    // An append with a valid consistency proof.
    let proof = |old: u64, new: usize| -> Vec<Digest> {
        tlog_tiles::prove_tree(new as u64, old, &tree(new))
            .unwrap()
            .into_iter()
            .map(|h| Digest(h.0))
            .collect()
    };
    let grow = AddCheckpoint {
        old_size: 4,
        proof: proof(4, 9),
        checkpoint: note(9),
    };
    let (_, held9) = witness_check(&keys, log, &grow, Some(&held)).unwrap();
    assert_eq!(held9.size, 9);
    // The wrong old size: the witness says what it holds.
    let stale = AddCheckpoint {
        old_size: 2,
        ..grow.clone()
    };
    assert_eq!(
        witness_check(&keys, log, &stale, Some(&held)),
        Err(WitnessRefusal::OldSize {
            held: 4,
            claimed: 2
        })
    );
    // A rollback to a smaller tree, a different root at the same size, and an extension that is
    // not consistent (first leaf rewritten): all forks.
    assert!(matches!(
        witness_check(&keys, log, &first, Some(&held9)),
        Err(WitnessRefusal::Fork { .. })
    ));
    let mut rewritten = leaves.clone();
    rewritten[0] = b"rewritten".to_vec();
    let rewritten_tree = MerkleTree::new(rewritten.clone());
    let same_size = AddCheckpoint {
        old_size: 9,
        proof: vec![],
        checkpoint: sign_checkpoint(
            net.id(),
            log,
            &t.members[2],
            9,
            &Digest(rewritten_tree.root().0),
        ),
    };
    assert!(matches!(
        witness_check(&keys, log, &same_size, Some(&held9)),
        Err(WitnessRefusal::Fork { .. })
    ));
    let mut longer = rewritten;
    longer.push(vec![99]);
    let longer_tree = MerkleTree::new(longer);
    let inconsistent = AddCheckpoint {
        old_size: 4,
        proof: tlog_tiles::prove_tree(10, 4, &longer_tree)
            .unwrap()
            .into_iter()
            .map(|h| Digest(h.0))
            .collect(),
        checkpoint: sign_checkpoint(
            net.id(),
            log,
            &t.members[2],
            10,
            &Digest(longer_tree.root().0),
        ),
    };
    assert!(matches!(
        witness_check(&keys, log, &inconsistent, Some(&held)),
        Err(WitnessRefusal::Fork { .. })
    ));
}
