//! Share repair (`docs/protocol.md` §22.6): a member that lost its key file recovers its share
//! from t helpers and signs again; nobody can have another member's share repaired; a wrong
//! answer is caught before the share is used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use accord_protocol::crypto::{Digest, Frost, SecretKey};
use accord_protocol::dkg::KeyMaterial;
use accord_protocol::engine::{Delivery, MessageError, RepairError};
use accord_protocol::fixtures::LabConduct;
use accord_protocol::message::Message;
use accord_protocol::repair::{RepairMessage, RepairRequest};
use accord_protocol::roster::{MemberIndex, Period};
use accord_testkit::{Cluster, ClusterSpec};
use frost_ed25519 as frost;

fn share(k: &KeyMaterial) -> Vec<u8> {
    k.key_package.signing_share().serialize()
}

/// Member `m` loses its key file (crash, key gone, restart with its records).
fn lose_key(c: &mut Cluster, m: MemberIndex) -> KeyMaterial {
    c.crash(m);
    let lost = c.nodes[usize::from(m.0)].key.take().unwrap();
    c.restart(m);
    assert_eq!(c.engine(m).group_key(), None, "no share, no group key");
    lost
}

fn repaired(c: &mut Cluster, m: MemberIndex) -> bool {
    let limit = c.now.saturating_add(Duration::from_secs(10));
    c.run_until_condition(limit, |c| {
        c.checker.repaired.contains_key(&m) || c.checker.repair_failed.contains_key(&m)
    }) && c.checker.repaired.contains_key(&m)
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
fn a_member_that_lost_its_key_file_repairs_its_share_and_signs_again() {
    let mut c = Cluster::new(ClusterSpec::new(4, 2));
    c.transcript = Some(Vec::new());
    let m = MemberIndex(3);
    let lost = lose_key(&mut c, m);
    c.request_repair(m, None).unwrap();
    assert!(repaired(&mut c, m), "{:?}", c.checker.repair_failed);
    let key = c.nodes[3]
        .key
        .clone()
        .expect("the repaired share is in the key file");
    assert_eq!(share(&key), share(&lost), "the same share as before");
    assert_eq!(key.public_digest(), lost.public_digest());
    // Every secret answer went to the member being repaired or between its helpers only.
    for (from, to, msg) in c.transcript.as_ref().unwrap() {
        if let Message::Repair(RepairMessage::Sigma { .. }) = msg {
            assert_eq!(*to, m, "a sigma from {from} went to {to}");
        }
        if let Message::Repair(RepairMessage::Delta { .. }) = msg {
            assert!(*from != m && *to != m, "a delta involved the member itself");
        }
    }
    // With one other member down, the repaired member is needed for every signature.
    c.crash(MemberIndex(0));
    run_periods(&mut c, 0..1);
    assert!(c.checker.honest_blamed(&c.honest()).is_empty());
}

#[test]
fn a_repair_after_a_refresh_gives_back_the_refreshed_share() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    c.start_refresh(MemberIndex(0), 1).unwrap();
    let limit = c.now.saturating_add(Duration::from_secs(30));
    assert!(c.run_until_condition(limit, |c| c.checker.refresh_complete.len() == 4));
    let m = MemberIndex(1);
    let lost = lose_key(&mut c, m);
    c.request_repair(
        m,
        Some(vec![MemberIndex(0), MemberIndex(2), MemberIndex(3)]),
    )
    .unwrap();
    assert!(repaired(&mut c, m));
    assert_eq!(share(c.nodes[1].key.as_ref().unwrap()), share(&lost));
    c.crash(MemberIndex(3));
    run_periods(&mut c, 0..1);
}

#[test]
fn nobody_can_have_another_members_share_repaired() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    let (victim, thief, helper) = (MemberIndex(3), MemberIndex(1), MemberIndex(0));
    let helpers = vec![MemberIndex(0), MemberIndex(1), MemberIndex(2)];
    let now = c.now;
    let thief_key = SecretKey::from_seed(&c.identities[1].seed());
    let victim_key = SecretKey::from_seed(&c.identities[3].seed());
    // A request naming the victim, signed by the thief: refused.
    let forged = RepairRequest::new(
        &c.net,
        &thief_key,
        victim,
        helpers.clone(),
        now,
        Digest([1; 32]),
    );
    assert_eq!(
        c.deliver_now(
            thief,
            helper,
            Message::Repair(RepairMessage::Request(forged))
        ),
        Delivery::Rejected(MessageError::WrongSender)
    );
    let forged = RepairRequest::new(
        &c.net,
        &thief_key,
        victim,
        helpers.clone(),
        now,
        Digest([2; 32]),
    );
    assert_eq!(
        c.deliver_now(
            victim,
            helper,
            Message::Repair(RepairMessage::Request(forged))
        ),
        Delivery::Rejected(MessageError::BadSignature)
    );
    // The victim's genuine request, replayed by the thief over its own connection: refused.
    let genuine = RepairRequest::new(
        &c.net,
        &victim_key,
        victim,
        helpers.clone(),
        now,
        Digest([3; 32]),
    );
    assert_eq!(
        c.deliver_now(
            thief,
            helper,
            Message::Repair(RepairMessage::Request(genuine.clone()))
        ),
        Delivery::Rejected(MessageError::WrongSender)
    );
    // A request that names the requester among its helpers, or too few helpers: refused
    // before any signature check.
    for bad in [
        vec![MemberIndex(0), MemberIndex(3)],
        vec![MemberIndex(0), MemberIndex(2), MemberIndex(3)],
    ] {
        let r = RepairRequest::new(&c.net, &victim_key, victim, bad, now, Digest([4; 32]));
        assert!(matches!(
            c.deliver_now(victim, helper, Message::Repair(RepairMessage::Request(r))),
            Delivery::Rejected(MessageError::Malformed(_))
        ));
    }
    // The genuine request relayed inside a helper's delta by the thief (a helper itself): the
    // helpers work, but every sigma goes to the victim only; the thief gets no sigma.
    c.transcript = Some(Vec::new());
    let delta = Frost::new(frost::keys::repairable::Delta::deserialize(&[0; 32]).unwrap());
    c.inject(
        thief,
        helper,
        Message::Repair(RepairMessage::Delta {
            request: genuine,
            public_package: c.nodes[0].key.as_ref().unwrap().public_digest(),
            delta,
        }),
    );
    c.run_until(c.now.saturating_add(Duration::from_secs(5)));
    let to_thief = c
        .transcript
        .as_ref()
        .unwrap()
        .iter()
        .filter(|(_, to, m)| {
            *to == thief && matches!(m, Message::Repair(RepairMessage::Sigma { .. }))
        })
        .count();
    assert_eq!(to_thief, 0);
    // The engine refuses helper sets it could not use.
    assert_eq!(
        c.request_repair(victim, Some(vec![MemberIndex(0)])),
        Err(RepairError::Helpers)
    );
}

#[test]
fn a_wrong_sigma_is_caught_before_the_share_is_used() {
    let mut c = Cluster::new(ClusterSpec::new(4, 1));
    let m = MemberIndex(2);
    lose_key(&mut c, m);
    c.transcript = Some(Vec::new());
    c.request_repair(m, None).unwrap();
    // The request's digest, as its helpers will name it.
    let request = c
        .transcript
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|(_, _, msg)| match msg {
            Message::Repair(RepairMessage::Request(r)) => Some(r.digest()),
            _ => None,
        })
        .unwrap();
    // Helper 0 answers first with a sigma of its own making.
    let public = Frost::new(c.nodes[0].key.as_ref().unwrap().public.clone());
    let sigma = Frost::new(frost::keys::repairable::Sigma::deserialize(&[7; 32]).unwrap());
    assert_eq!(
        c.deliver_now(
            MemberIndex(0),
            m,
            Message::Repair(RepairMessage::Sigma {
                request,
                sigma,
                public
            })
        ),
        Delivery::Accepted
    );
    let limit = c.now.saturating_add(Duration::from_secs(10));
    c.run_until_condition(limit, |c| c.checker.repair_failed.contains_key(&m));
    assert!(c.checker.repair_failed.contains_key(&m));
    assert!(c.nodes[2].key.is_none(), "no wrong share stored");
    assert_eq!(c.engine(m).group_key(), None);
    // Asked again, the honest helpers repair it.
    c.checker.repair_failed.clear();
    c.request_repair(m, None).unwrap();
    assert!(repaired(&mut c, m));
}

#[test]
fn a_repaired_share_stays_confirmed_across_compactions_and_restarts() {
    let mut spec = ClusterSpec::new(4, 1);
    spec.dkg = true;
    let mut c = Cluster::new(spec);
    c.start_dkg(1);
    let limit = c.now.saturating_add(Duration::from_secs(60));
    assert!(c.run_until_condition(limit, |c| c.checker.dkg_complete.len() == 4));
    let m = MemberIndex(2);
    let group = c.engine(m).group_key().unwrap();
    let lost = lose_key(&mut c, m);
    assert_eq!(c.engine(m).known_group_key(), Some(group));
    // The record log is compacted while the share is missing, and the member restarts: it
    // still knows which group key a repaired share must have.
    let snapshot = c.engine(m).snapshot();
    c.nodes[2].compact(snapshot);
    c.crash(m);
    c.restart(m);
    assert_eq!(c.engine(m).known_group_key(), Some(group));
    c.request_repair(m, None).unwrap();
    let progress = c.engine(m).repair_progress().unwrap();
    assert_eq!(
        progress.helpers,
        [MemberIndex(0), MemberIndex(1), MemberIndex(3)]
    );
    assert!(repaired(&mut c, m), "{:?}", c.checker.repair_failed);
    assert_eq!(c.engine(m).repair_progress(), None);
    assert_eq!(c.engine(m).known_group_key(), None, "a share is in use");
    assert_eq!(share(c.nodes[2].key.as_ref().unwrap()), share(&lost));
    // Compacted and restarted again, the repaired share is the confirmed key (not a key from
    // an unconfirmed ceremony, which would keep the member from signing).
    let snapshot = c.engine(m).snapshot();
    c.nodes[2].compact(snapshot);
    c.crash(m);
    c.restart(m);
    assert_eq!(c.engine(m).group_key(), Some(group));
    c.crash(MemberIndex(0));
    run_periods(&mut c, 0..1);
}
