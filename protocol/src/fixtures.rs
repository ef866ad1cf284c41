//! Deterministic test networks: rosters, member and lab keys, and realistic evidence.
//!
//! Used by the tests, the benches, the simulator and `accord testnet`/`accord demo`. Everything
//! is derived from the caller's RNG, so a seed reproduces a network.

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{Digest, SecretKey};
use crate::evidence::{Attestation, Evidence, InspectionReport};
use crate::policy::PolicyParams;
use crate::roster::{
    Lab, Member, MemberIndex, Period, Roster, Schedule, SigningMode, default_threshold,
};
use crate::time::Instant;

const NAMES: &[&str] = &[
    "aurelia",
    "borealis",
    "caldera",
    "dunmore",
    "estuary",
    "fjordland",
    "galena",
    "halcyon",
    "isthmia",
    "juniper",
    "kestrel",
    "lumen",
    "meridian",
    "nordhavn",
    "obsidia",
    "pelagia",
    "quarry",
    "riverine",
    "solace",
    "tundra",
];

/// What kind of network to generate.
#[derive(Clone, Debug)]
pub struct TestnetSpec {
    /// Network name.
    pub name: String,
    /// Number of members.
    pub members: usize,
    /// Threshold; `None` for the default ⌊2n/3⌋ + 1.
    pub threshold: Option<u16>,
    /// Number of labs.
    pub labs: usize,
    /// Calendar and timeouts.
    pub schedule: Schedule,
    /// Per slot or per period signing.
    pub mode: SigningMode,
    /// Treaty limits.
    pub policy: PolicyParams,
    /// Reports per inspector and period; `None` for the largest up to 4 whose messages fit.
    pub reports_per_inspector: Option<u16>,
}

impl TestnetSpec {
    /// `members` members and `labs` labs, with one-minute periods starting at `genesis_ms` and
    /// timeouts that suit a loopback or simulated network.
    pub fn new(members: usize, labs: usize, genesis_ms: u64) -> Self {
        Self {
            name: "accord-testnet".into(),
            members,
            threshold: None,
            labs,
            schedule: Schedule {
                genesis_ms,
                period_ms: 60_000,
                grace_ms: 2_000,
                observation_wait_ms: 500,
                attempt_timeout_ms: 3_000,
                max_clock_skew_ms: 200,
                dkg_phase_timeout_ms: 20_000,
            },
            mode: SigningMode::PerPeriod,
            policy: PolicyParams::treaty_default(),
            reports_per_inspector: None,
        }
    }
}

/// A generated network with every secret key (tests and demos only).
#[derive(Debug)]
pub struct Testnet {
    /// The roster.
    pub roster: Roster,
    /// Member identity keys, in roster order.
    pub members: Vec<SecretKey>,
    /// Lab signing keys, in roster order.
    pub labs: Vec<SecretKey>,
}

/// The name of member `i` in generated networks.
pub fn member_name(i: usize) -> String {
    match NAMES.get(i) {
        Some(n) => (*n).to_string(),
        None => format!("member-{i:03}"),
    }
}

/// The id of lab `i` in generated networks.
pub fn lab_id(i: usize) -> String {
    format!("lab-{i:03}")
}

impl Testnet {
    /// Generates keys and a roster. `peer_id` maps a member's public key to its libp2p peer id
    /// (the node passes the real derivation; tests may use any unique string).
    pub fn generate(
        spec: &TestnetSpec,
        rng: &mut (impl RngCore + CryptoRng),
        peer_id: impl Fn(&crate::crypto::PublicKey) -> String,
    ) -> Self {
        let members: Vec<SecretKey> = (0..spec.members)
            .map(|_| SecretKey::generate(rng))
            .collect();
        let labs: Vec<SecretKey> = (0..spec.labs).map(|_| SecretKey::generate(rng)).collect();
        let roster = Roster {
            name: spec.name.clone(),
            members: members
                .iter()
                .enumerate()
                .map(|(i, k)| Member {
                    name: member_name(i),
                    peer_id: peer_id(&k.public()),
                    key: k.public(),
                    addresses: Vec::new(),
                })
                .collect(),
            labs: labs
                .iter()
                .enumerate()
                .map(|(i, k)| Lab {
                    id: lab_id(i),
                    key: k.public(),
                })
                .collect(),
            threshold: spec
                .threshold
                .unwrap_or_else(|| default_threshold(spec.members)),
            policy: spec.policy.clone(),
            schedule: spec.schedule.clone(),
            signing_mode: spec.mode,
            max_reports_per_inspector: spec.reports_per_inspector.unwrap_or_else(|| {
                let t = spec
                    .threshold
                    .unwrap_or_else(|| default_threshold(spec.members));
                crate::limits::Limits::fitting_reports(
                    spec.members,
                    usize::from(t),
                    spec.labs,
                    spec.mode,
                    4,
                )
                .and_then(|r| u16::try_from(r).ok())
                .unwrap_or(0)
            }),
        };
        Self {
            roster,
            members,
            labs,
        }
    }
}

/// How a generated lab behaves in a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabConduct {
    /// Attests within the limits.
    Compliant,
    /// Attests training compute over the limit.
    OverCompute,
    /// Attests a cluster over the limit.
    OverCluster,
    /// Does not attest.
    Silent,
    /// Signs two different attestations.
    DoubleSigns,
}

/// A realistic attestation for `lab` in `period` (values drawn from `rng`).
pub fn attestation(
    lab: &str,
    period: Period,
    policy: &PolicyParams,
    conduct: LabConduct,
    issued_at: Instant,
    rng: &mut (impl RngCore + CryptoRng),
) -> Attestation {
    let mut commit = || {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Digest(b)
    };
    let (weights, data, transcript) = (commit(), commit(), commit());
    let accelerators = match conduct {
        LabConduct::OverCluster => policy.max_accelerators + 1 + u64::from(rng.next_u32() % 10_000),
        _ => 256 + u64::from(rng.next_u32()) % (policy.max_accelerators.saturating_sub(256).max(1)),
    };
    let hours = accelerators * (24 * 7);
    let flop = match conduct {
        LabConduct::OverCompute => policy.max_training_flop + u128::from(rng.next_u64()) + 1,
        // About 10^15 FLOP/s per accelerator at 40 % utilisation, kept under the limit.
        _ => (u128::from(hours) * 3600 * 400_000_000_000_000).min(policy.max_training_flop / 2),
    };
    Attestation {
        lab: lab.to_string(),
        period,
        site_id: format!("{lab}-site-1"),
        run_ids: vec![
            format!("{lab}-run-{}", period.0),
            format!("{lab}-eval-{}", period.0),
        ],
        accelerator_count: accelerators,
        chip_hours: hours,
        training_flop: flop,
        declared_purpose: "safety evaluations and fine-tuning under the pause ceiling".into(),
        weights_commitment: weights,
        data_commitment: data,
        transcript_commitment: transcript,
        issued_at,
    }
}

/// The evidence a lab with `conduct` submits for `period`: zero, one or two signed attestations.
#[allow(clippy::too_many_arguments)] // every argument is a distinct, independent input
pub fn lab_submissions(
    network_id: &Digest,
    lab: &str,
    key: &SecretKey,
    period: Period,
    policy: &PolicyParams,
    conduct: LabConduct,
    issued_at: Instant,
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<Evidence> {
    match conduct {
        LabConduct::Silent => Vec::new(),
        LabConduct::DoubleSigns => {
            let a = attestation(lab, period, policy, LabConduct::Compliant, issued_at, rng);
            let mut b = a.clone();
            b.chip_hours = a.chip_hours / 2;
            b.training_flop = a.training_flop / 2;
            vec![a.sign(network_id, key), b.sign(network_id, key)]
        }
        other => {
            vec![attestation(lab, period, policy, other, issued_at, rng).sign(network_id, key)]
        }
    }
}

/// An inspection report by `inspector` on an attestation, observing `factor_percent` of the
/// attested accelerators and chip-hours.
pub fn inspection(
    network_id: &Digest,
    inspector: MemberIndex,
    key: &SecretKey,
    of: &Attestation,
    factor_percent: u64,
    issued_at: Instant,
) -> Evidence {
    InspectionReport {
        inspector,
        lab: of.lab.clone(),
        period: of.period,
        site_id: of.site_id.clone(),
        observed_accelerators: of.accelerator_count * factor_percent / 100,
        observed_chip_hours: of.chip_hours * factor_percent / 100,
        findings: format!("on-site metering, {factor_percent}% of attested use"),
        issued_at,
    }
    .sign(network_id, key)
}
