//! Proactive share refresh (`docs/protocol.md` §22.5) in whole networks of engines: the group
//! key stays and signs verdicts, every share changes, old and new shares do not mix, and a
//! member killed mid-ceremony resumes or the ceremony aborts cleanly (FAULTS 13, 14, 40).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use accord_protocol::dkg::DkgBody;
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::engine::{RefreshAbortError, RefreshStartError};
use accord_protocol::fixtures::LabConduct;
use accord_protocol::message::Message;
use accord_protocol::roster::{MemberIndex, Period};
use accord_testkit::{Cluster, ClusterSpec, child_rng};
use frost_ed25519 as frost;

fn keys(c: &Cluster) -> Vec<KeyMaterial> {
    c.nodes.iter().map(|n| n.key.clone().unwrap()).collect()
}

fn share(k: &KeyMaterial) -> Vec<u8> {
    k.key_package.signing_share().serialize()
}

/// Runs until every running member completed refresh `ceremony`.
fn refreshed(c: &mut Cluster, ceremony: u32) -> bool {
    let n = c.net.n();
    let limit = c.now.saturating_add(Duration::from_secs(60));
    c.run_until_condition(limit, |c| {
        (0..n).all(|i| {
            c.nodes[i]
                .engine
                .as_ref()
                .is_some_and(|e| e.completed_refresh() == Some(ceremony))
        })
    })
}

/// Signs `msg` with `signers`' key packages and aggregates under `public`.
fn sign_with(
    signers: &[&KeyMaterial],
    public: &frost::keys::PublicKeyPackage,
    msg: &[u8],
) -> Result<frost::Signature, frost::Error> {
    let mut rng = child_rng(77, "mix", 0, 0);
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in signers {
        let (n, c) = frost::round1::commit(k.key_package.signing_share(), &mut rng);
        let id = *k.key_package.identifier();
        nonces.insert(id, n);
        commitments.insert(id, c);
    }
    let package = frost::SigningPackage::new(commitments, msg);
    let mut shares = BTreeMap::new();
    for k in signers {
        let id = *k.key_package.identifier();
        shares.insert(
            id,
            frost::round2::sign(&package, &nonces[&id], &k.key_package)?,
        );
    }
    frost::aggregate(&package, &shares, public)
}

fn run_periods(c: &mut Cluster, periods: std::ops::Range<u64>) {
    for p in periods.clone() {
        let start = c.net.schedule().start(Period(p));
        c.run_until(start.saturating_add(Duration::from_millis(1000)));
        c.submit_period(Period(p), |_| LabConduct::Compliant);
    }
    c.assert_live(periods, 60_000);
}

#[test]
fn refresh_keeps_the_group_key_changes_every_share_and_verdicts_still_verify() {
    let mut c = Cluster::new(ClusterSpec::new(4, 2));
    let before = keys(&c);
    let group = c.engine(MemberIndex(0)).group_key().unwrap();
    // One operator starts it; the others join on its round-1 package.
    c.start_refresh(MemberIndex(1), 1).unwrap();
    assert!(refreshed(&mut c, 1), "refresh did not complete");
    let after = keys(&c);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.group_key(), group, "the group key stays");
        assert_ne!(share(a), share(b), "every share changes");
        assert_ne!(a.public_digest(), b.public_digest());
    }
    assert!(c.nodes.iter().all(|n| n.pending_key.is_none()));
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
    // Verdicts of later periods are co-signed with the new shares under the same key.
    run_periods(&mut c, 0..2);
    assert!(!c.checker.cosigned.is_empty());
    for cosigned in c.checker.cosigned.values() {
        cosigned.verify(c.net.id(), &group).unwrap();
    }
    // A second refresh works too, and ceremony numbers are not reused.
    assert!(matches!(
        c.start_refresh(MemberIndex(0), 1),
        Err(RefreshStartError::CeremonyUsed { .. })
    ));
    c.start_refresh(MemberIndex(0), 2).unwrap();
    assert!(refreshed(&mut c, 2));
    assert_eq!(c.engine(MemberIndex(3)).group_key(), Some(group));
}

#[test]
fn old_and_new_shares_do_not_mix() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    let old = keys(&c);
    c.start_refresh(MemberIndex(0), 1).unwrap();
    assert!(refreshed(&mut c, 1));
    let new = keys(&c);
    let t = c.net.t();
    assert_eq!(t, 3);
    let msg = b"accord refresh test";
    // New shares sign under the (unchanged) group key.
    let sig = sign_with(&[&new[0], &new[1], &new[2]], &new[0].public, msg).unwrap();
    assert_eq!(
        sig.serialize().unwrap().len(),
        64,
        "a valid Ed25519 signature"
    );
    new[0].public.verifying_key().verify(msg, &sig).unwrap();
    // A mix of old and new shares does not give a valid signature, under either package.
    for public in [&new[0].public, &old[0].public] {
        let mixed = sign_with(&[&new[0], &new[1], &old[2]], public, msg);
        assert!(
            matches!(mixed, Err(frost::Error::InvalidSignatureShare { .. })),
            "{mixed:?}"
        );
    }
    // Two new shares and one old one interpolate to a different secret: even a signer that
    // skips share verification gets a signature that does not verify.
    let mut rng = child_rng(1, "mix", 1, 0);
    let signers = [&new[0], &new[1], &old[2]];
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in signers {
        let (n, cm) = frost::round1::commit(k.key_package.signing_share(), &mut rng);
        nonces.insert(*k.key_package.identifier(), n);
        commitments.insert(*k.key_package.identifier(), cm);
    }
    let package = frost::SigningPackage::new(commitments, msg);
    let shares: BTreeMap<_, _> = signers
        .iter()
        .map(|k| {
            let id = *k.key_package.identifier();
            (
                id,
                frost::round2::sign(&package, &nonces[&id], &k.key_package).unwrap(),
            )
        })
        .collect();
    // Aggregating with the verifying shares each signer claims (the old one for member 2)
    // passes share checks but the group signature is invalid.
    let mut claimed = new[0].public.verifying_shares().clone();
    claimed.insert(
        *old[2].key_package.identifier(),
        *old[2].key_package.verifying_share(),
    );
    let public =
        frost::keys::PublicKeyPackage::new(claimed, *new[0].public.verifying_key(), Some(3));
    assert!(frost::aggregate(&package, &shares, &public).is_err());
    // The members' current packages no longer accept an old share alone: under the refreshed
    // public key package every old signing share fails its check.
    for (i, o) in old.iter().enumerate() {
        assert_ne!(
            new[0].public.verifying_shares()[o.key_package.identifier()],
            *o.key_package.verifying_share(),
            "member {i}'s old share is not a share of the refreshed package"
        );
    }
}

#[test]
fn a_member_killed_before_it_stored_its_new_share_makes_the_refresh_abort_cleanly() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    let before = keys(&c);
    c.start_refresh(MemberIndex(0), 1).unwrap();
    // Member 3 dies as soon as it joined (its round-1 secret dies with it).
    let joined = c.run_until_condition(c.now.saturating_add(Duration::from_secs(5)), |c| {
        c.engine(MemberIndex(3)).refresh_phase().is_some()
    });
    assert!(joined);
    assert!(c.nodes[3].pending_key.is_none());
    c.crash(MemberIndex(3));
    // The others time out and abort, naming the silent member only, and keep their shares.
    let limit = c.now.saturating_add(Duration::from_secs(120));
    let aborted = c.run_until_condition(limit, |c| c.checker.refresh_aborted.len() == 3);
    assert!(aborted, "{:?}", c.checker.refresh_aborted);
    for culprits in c.checker.refresh_aborted.values() {
        assert!(
            culprits.iter().all(|m| *m == MemberIndex(3)),
            "{culprits:?}"
        );
    }
    assert!(c.checker.refresh_complete.is_empty());
    for (i, b) in before.iter().enumerate().take(3) {
        assert_eq!(share(c.nodes[i].key.as_ref().unwrap()), share(b));
        assert!(c.nodes[i].pending_key.is_none());
    }
    // Restarted, member 3 does not resume the dead ceremony (it has no secret for it), and a
    // fresh ceremony with a higher number completes.
    c.restart(MemberIndex(3));
    assert_eq!(c.engine(MemberIndex(3)).completed_refresh(), None);
    c.start_refresh(MemberIndex(3), 2).unwrap();
    assert!(refreshed(&mut c, 2));
    run_periods(&mut c, 0..1);
}

#[test]
fn a_member_killed_after_it_stored_its_new_share_resumes_and_signs_with_it() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    c.start_refresh(MemberIndex(0), 1).unwrap();
    // Member 2 dies right after it stored its refreshed share and broadcast its confirmation.
    let stored = c.run_until_condition(c.now.saturating_add(Duration::from_secs(30)), |c| {
        c.nodes[2].pending_key.is_some()
    });
    assert!(stored);
    let pending = c.nodes[2].pending_key.clone().unwrap();
    let old = c.nodes[2].key.clone().unwrap();
    c.crash(MemberIndex(2));
    // The others see every confirmation and switch.
    let limit = c.now.saturating_add(Duration::from_secs(30));
    assert!(c.run_until_condition(limit, |c| c.checker.refresh_complete.len() == 3));
    assert_eq!(c.nodes[2].key.as_ref().map(share), Some(share(&old)));
    // Restarted with its old key file and the pending one, it collects the signed
    // confirmations from its peers and switches to the pending share.
    c.restart(MemberIndex(2));
    assert!(refreshed(&mut c, 1));
    assert_eq!(c.nodes[2].key.as_ref().map(share), Some(share(&pending)));
    assert!(c.nodes[2].pending_key.is_none());
    run_periods(&mut c, 0..2);
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
}

#[test]
fn a_restart_between_the_completion_record_and_the_key_file_finishes_the_switch() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    let old = c.nodes[1].key.clone().unwrap();
    c.start_refresh(MemberIndex(0), 1).unwrap();
    assert!(refreshed(&mut c, 1));
    let new = c.nodes[1].key.clone().unwrap();
    // Rewind member 1's key files to the moment after `RefreshComplete` was persisted: the
    // key file still holds the old share and the pending file the new one.
    c.nodes[1].pending_key = Some(new.clone());
    c.nodes[1].key = Some(old);
    c.crash(MemberIndex(1));
    c.restart(MemberIndex(1));
    assert_eq!(c.nodes[1].key.as_ref().map(share), Some(share(&new)));
    assert!(c.nodes[1].pending_key.is_none());
    run_periods(&mut c, 0..1);
}

/// A member that misses every refresh confirmation stays on its current share while the
/// others switch: sessions mixing the two epochs fail, nobody honest is blamed, verdicts keep
/// coming (signed by either epoch's shares), and the member switches once it hears the proof.
#[test]
fn members_on_both_sides_of_the_switch_keep_signing_and_nobody_is_blamed() {
    use accord_protocol::dkg::DkgBody;
    use accord_protocol::message::Message;
    let mut c = Cluster::new(ClusterSpec::new(4, 2));
    let late = MemberIndex(3);
    c.deaf.insert(
        late,
        |m| matches!(m, Message::Refresh(d) if matches!(d.body, DkgBody::Confirm { .. })),
    );
    let old = c.nodes[3].key.clone().unwrap();
    c.start_refresh(MemberIndex(0), 1).unwrap();
    let limit = c.now.saturating_add(Duration::from_secs(60));
    assert!(c.run_until_condition(limit, |c| c.checker.refresh_complete.len() == 3));
    assert!(c.nodes[3].pending_key.is_some());
    assert_eq!(c.nodes[3].key.as_ref().map(share), Some(share(&old)));
    run_periods(&mut c, 0..3);
    // The late member's own ceremony timed out waiting for confirmations it never heard (it
    // names the others `Timeout`, as a DKG does); no signature share was called invalid.
    assert!(
        c.checker
            .culprits
            .iter()
            .all(|(by, _, offence)| *by == late && offence.contains("timed out")),
        "{:?}",
        c.checker.culprits
    );
    // The proof reaches it on a reconnection: it switches.
    c.deaf.clear();
    c.crash(late);
    c.restart(late);
    assert!(refreshed(&mut c, 1));
    assert!(c.nodes[3].pending_key.is_none());
    run_periods(&mut c, 3..4);
}

/// The schedule: every member refreshes after every second period close; all start the same
/// number and run one ceremony, while verdicts keep coming.
#[test]
fn scheduled_refreshes_run_every_k_periods_alongside_verdicts() {
    let mut spec = ClusterSpec::new(4, 2);
    spec.refresh_every = Some(2);
    let mut c = Cluster::new(spec);
    let group = c.engine(MemberIndex(0)).group_key().unwrap();
    let first = keys(&c);
    run_periods(&mut c, 0..4);
    // Closes of periods 1 and 3 started ceremonies 1 and 2.
    let limit = c.now.saturating_add(Duration::from_secs(60));
    c.run_until_condition(limit, |c| {
        c.checker
            .refresh_complete
            .values()
            .filter(|r| **r == 2)
            .count()
            == 4
    });
    assert!(
        c.checker.refresh_complete.values().all(|r| *r == 2),
        "{:?}",
        c.checker.refresh_complete
    );
    for (a, b) in keys(&c).iter().zip(&first) {
        assert_ne!(share(a), share(b));
        assert_eq!(a.group_key(), group);
    }
    assert!(
        c.checker.honest_blamed(&c.honest()).is_empty(),
        "{:?}",
        c.checker.culprits
    );
    run_periods(&mut c, 4..5);
}

/// Two operators start different numbers at once: the running lower ceremony gives way and
/// every member completes the higher one.
#[test]
fn concurrent_refreshes_converge_on_the_highest_number() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    c.start_refresh(MemberIndex(0), 1).unwrap();
    c.start_refresh(MemberIndex(2), 3).unwrap();
    assert!(refreshed(&mut c, 3), "{:?}", c.checker.refresh_complete);
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
    run_periods(&mut c, 0..1);
}

/// Member 3 never gets its round-2 shares (deaf to them), so it never stores a share of the
/// ceremony while the others store theirs and confirm. It withdraws — when its own phase times
/// out, or on restart if it was killed meanwhile — and the others drop their pending shares, keep
/// signing with the current ones, and complete the next refresh (FAULTS 13, 14).
#[test]
fn a_member_without_a_share_withdraws_and_frees_the_others_for_the_next_refresh() {
    use accord_protocol::dkg::DkgBody;
    use accord_protocol::message::Message;
    for killed in [false, true] {
        let mut c = Cluster::new(ClusterSpec::new(4, 1));
        let before = keys(&c);
        c.deaf.insert(
            MemberIndex(3),
            |m| matches!(m, Message::Refresh(d) if matches!(d.body, DkgBody::Round2(_))),
        );
        c.start_refresh(MemberIndex(0), 1).unwrap();
        let limit = c.now.saturating_add(Duration::from_secs(10));
        assert!(c.run_until_condition(limit, |c| (0..3).all(|i| c.nodes[i].pending_key.is_some())));
        assert!(c.nodes[3].pending_key.is_none());
        if killed {
            c.crash(MemberIndex(3));
            c.deaf.clear();
            c.restart(MemberIndex(3));
        }
        let limit = c.now.saturating_add(Duration::from_secs(120));
        assert!(
            c.run_until_condition(limit, |c| c.nodes.iter().all(|n| n.pending_key.is_none())),
            "killed={killed}: pending shares were not dropped"
        );
        assert!(c.checker.refresh_complete.is_empty());
        for (n, b) in c.nodes.iter().zip(&before) {
            assert_eq!(
                n.key.as_ref().map(share),
                Some(share(b)),
                "the current share stays"
            );
        }
        c.deaf.clear();
        c.start_refresh(MemberIndex(1), 2).unwrap();
        assert!(refreshed(&mut c, 2), "killed={killed}");
        run_periods(&mut c, 0..1);
    }
}

#[test]
fn an_operator_aborts_a_refresh_it_holds_no_share_of_and_every_member_keeps_its_share() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    let before = keys(&c);
    // Member 0 starts ceremony 1 while cut off, so nobody else stores a share of it either.
    c.partitioned.insert(MemberIndex(0));
    c.start_refresh(MemberIndex(0), 1).unwrap();
    assert_eq!(
        c.engine(MemberIndex(0)).running_refresh(),
        Some((1, "round1"))
    );
    assert_eq!(c.abort_refresh(MemberIndex(0)), Ok(1));
    assert_eq!(c.engine(MemberIndex(0)).running_refresh(), None);
    assert_eq!(c.engine(MemberIndex(0)).last_refresh(), Some(1));
    assert_eq!(
        c.checker.refresh_aborted.get(&MemberIndex(0)),
        Some(&Vec::new()),
        "aborted by its operator, nobody blamed"
    );
    assert_eq!(
        c.abort_refresh(MemberIndex(0)),
        Err(RefreshAbortError::NotRunning)
    );
    assert_eq!(
        c.abort_refresh(MemberIndex(1)),
        Err(RefreshAbortError::NotRunning)
    );
    // The number is used up; the next one completes everywhere once member 0 is back.
    assert!(matches!(
        c.start_refresh(MemberIndex(0), 1),
        Err(RefreshStartError::CeremonyUsed { .. })
    ));
    c.partitioned.clear();
    for (i, b) in before.iter().enumerate() {
        assert_eq!(share(c.nodes[i].key.as_ref().unwrap()), share(b));
    }
    c.start_refresh(MemberIndex(0), 2).unwrap();
    assert!(refreshed(&mut c, 2));
    run_periods(&mut c, 0..1);
}

#[test]
fn a_member_holding_its_stored_share_cannot_abort_the_refresh() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    // Member 3 never hears a confirmation: it stores its share and waits for them.
    c.deaf.insert(
        MemberIndex(3),
        |m| matches!(m, Message::Refresh(d) if matches!(d.body, DkgBody::Confirm { .. })),
    );
    c.start_refresh(MemberIndex(0), 1).unwrap();
    let stored = c.run_until_condition(c.now.saturating_add(Duration::from_secs(10)), |c| {
        c.engine(MemberIndex(3)).pending_refresh() == Some(1)
    });
    assert!(stored);
    assert_eq!(
        c.abort_refresh(MemberIndex(3)),
        Err(RefreshAbortError::ShareStored(1))
    );
    assert_eq!(c.engine(MemberIndex(3)).pending_refresh(), Some(1));
}
