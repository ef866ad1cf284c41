//! Bounds on every collection a message or record carries, derived from the roster, and the
//! worst-case encoded sizes they give (`docs/protocol.md` §23.4).
//!
//! A member admits, per period, at most [`MAX_ATTESTATIONS_PER_SLOT`] attestations of each slot,
//! one report per (inspector, slot) and at most `max_reports_per_inspector` reports by one
//! inspector; its observation lists exactly what it admitted, so an observation is bounded by
//! its syntax alone ([`crate::message::Observation::check`]). An item enters a statement only when
//! q = f + 1 distinct members list it, in the right place, so with at most f faulty members (each
//! able to sign two observations) the statements of a unit name at most ⌊(n + f)·A / q⌋
//! attestations per slot, ⌊(n + f) / q⌋ reports per (inspector, slot) and ⌊(n + f)·R / q⌋ reports
//! per inspector. Members refuse proposals beyond these bounds, and [`crate::roster::Network::new`]
//! refuses a roster whose largest honest message would not fit in
//! [`crate::codec::MAX_MESSAGE_BYTES`].

use crate::roster::SigningMode;

/// Largest encoded evidence item, in bytes.
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024;
/// Most attestations of one slot a member admits (two already prove a conflict).
pub const MAX_ATTESTATIONS_PER_SLOT: usize = 4;
/// A `Bodies` message carries at most this many bytes of evidence (the sender splits larger
/// answers), plus one item.
pub const BODIES_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Re-proposals a coordinator may make within one attempt; proposals with a larger revision are
/// invalid.
pub const MAX_REVISIONS: u16 = 8;

// Encoded sizes (bincode, fixed-width integers, u64 length prefixes, u32 enum tags).
const DIGEST: usize = 32;
const SIGNATURE: usize = 64;
const LEN: usize = 8;
const TAG: usize = 4;
/// `Unit::Slot { period, lab }`, the larger unit.
const UNIT: usize = TAG + 8 + 2;
/// `ProposalId { unit, attempt, revision }`.
const PROPOSAL_ID: usize = UNIT + 4 + 2;
/// The largest policy reason (`InspectionDiscrepancy`).
const REASON: usize = TAG + DIGEST + DIGEST + TAG + 8 + 8;
/// A statement without evidence and reasons: ids, slot (lab id of at most 256 bytes, period),
/// the evidence and reasons length prefixes and the verdict tag.
const STATEMENT_FIXED: usize =
    DIGEST + DIGEST + LEN + crate::roster::MAX_NAME_BYTES + 8 + LEN + TAG + LEN;
/// Envelope of every wire message: version byte and `Message` tag.
const ENVELOPE: usize = 1 + TAG;

/// The roster-derived bounds of one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Members (n).
    pub members: usize,
    /// Faulty members tolerated (f).
    pub faulty: usize,
    /// Labs (L).
    pub labs: usize,
    /// Reports one inspector files per period (R, capped at L: one per slot).
    pub reports_per_inspector: usize,
    /// Most observations a proposal or reply carries: one per member, two for at most f
    /// equivocating members.
    pub observations_per_proposal: usize,
    /// Most attestations one slot's statement names.
    pub vouched_attestations_per_slot: usize,
    /// Most reports by one inspector one slot's statement names.
    pub vouched_reports_per_inspector_slot: usize,
    /// Most reports by one inspector a unit's statements name.
    pub vouched_reports_per_inspector: usize,
    /// Most members' signing commitments in a signing package (t).
    pub signers: usize,
}

impl Limits {
    /// The bounds of a network of `members` with threshold `threshold`, `labs` labs, and at most
    /// `reports_per_inspector` reports per inspector and period.
    pub fn new(
        members: usize,
        threshold: usize,
        labs: usize,
        reports_per_inspector: usize,
    ) -> Self {
        let n = members;
        let f = n.saturating_sub(threshold);
        let q = f + 1;
        let r = reports_per_inspector.min(labs);
        Self {
            members: n,
            faulty: f,
            labs,
            reports_per_inspector: r,
            observations_per_proposal: n + f,
            vouched_attestations_per_slot: (n + f) * MAX_ATTESTATIONS_PER_SLOT / q,
            vouched_reports_per_inspector_slot: (n + f) / q,
            vouched_reports_per_inspector: (n + f) * r / q,
            signers: threshold,
        }
    }

    /// Most digests one observation lists.
    pub fn observation_items(&self) -> usize {
        self.labs * MAX_ATTESTATIONS_PER_SLOT + self.members * self.reports_per_inspector
    }

    /// Most reports a unit of `unit_labs` slots names.
    pub fn reports_per_unit(&self, unit_labs: usize) -> usize {
        (unit_labs * self.vouched_reports_per_inspector_slot)
            .min(self.vouched_reports_per_inspector)
            * self.members
    }

    /// Most evidence items the statements of a unit of `unit_labs` slots name.
    pub fn items_per_unit(&self, unit_labs: usize) -> usize {
        unit_labs * self.vouched_attestations_per_slot + self.reports_per_unit(unit_labs)
    }

    /// Largest encoded signed observation.
    pub fn observation_bytes(&self) -> usize {
        // member, period, slots prefix, signature; per slot: lab, two prefixes; items.
        2 + 8
            + LEN
            + SIGNATURE
            + self.labs * (2 + LEN + LEN)
            + self.labs * MAX_ATTESTATIONS_PER_SLOT * DIGEST
            + self.members * self.reports_per_inspector * (2 + DIGEST)
    }

    /// Largest encoded statements (with their length prefix) of a unit of `unit_labs` slots.
    ///
    /// A slot with a attestations and r reports has at most 3a + r + 2ar reasons (a − 1
    /// conflicts, two limits per attestation, one cluster limit per report, two discrepancies per
    /// (report, attestation) pair).
    pub fn statements_bytes(&self, unit_labs: usize) -> usize {
        let a = self.vouched_attestations_per_slot;
        let reports = self.reports_per_unit(unit_labs);
        LEN + unit_labs * (STATEMENT_FIXED + a * DIGEST + 3 * a * REASON)
            + reports * (DIGEST + REASON + 2 * a * REASON)
    }

    /// Largest encoded observations list of a proposal or reply.
    pub fn observations_bytes(&self) -> usize {
        LEN + self.observations_per_proposal * self.observation_bytes()
    }

    /// Largest `Proposal` message for a unit of `unit_labs` slots.
    pub fn proposal_bytes(&self, unit_labs: usize) -> usize {
        ENVELOPE + PROPOSAL_ID + self.statements_bytes(unit_labs) + self.observations_bytes()
    }

    /// Largest `Missing` message.
    pub fn missing_bytes(&self, unit_labs: usize) -> usize {
        ENVELOPE
            + PROPOSAL_ID
            + LEN
            + self.items_per_unit(unit_labs) * DIGEST
            + self.observations_bytes()
    }

    /// Largest `Fetch` message.
    pub fn fetch_bytes(&self, unit_labs: usize) -> usize {
        ENVELOPE + UNIT + LEN + self.items_per_unit(unit_labs) * DIGEST
    }

    /// Largest `CoSigned` message.
    pub fn cosigned_bytes(&self, unit_labs: usize) -> usize {
        ENVELOPE + UNIT + self.statements_bytes(unit_labs) + SIGNATURE
    }

    /// Largest `SignRequest` message: t commitments (frost's serialization: identifier and two
    /// points each, with headers) and the signed message (a statement's signing bytes per slot,
    /// a checkpoint body per period).
    pub fn sign_request_bytes(&self, mode: SigningMode) -> usize {
        let message = match mode {
            SigningMode::PerSlot => 64 + self.statements_bytes(1),
            SigningMode::PerPeriod => 512,
        };
        ENVELOPE + PROPOSAL_ID + 4 + LEN + 64 + self.signers * (DIGEST + 8 + 2 * DIGEST) + message
    }

    /// Largest `Bodies` message.
    pub fn bodies_bytes(&self) -> usize {
        ENVELOPE + UNIT + LEN + BODIES_CHUNK_BYTES + MAX_EVIDENCE_BYTES
    }

    /// The largest message any honest member sends in a network with signing mode `mode`.
    pub fn largest_message_bytes(&self, mode: SigningMode) -> usize {
        let unit_labs = match mode {
            SigningMode::PerSlot => 1,
            SigningMode::PerPeriod => self.labs,
        };
        [
            self.proposal_bytes(unit_labs),
            self.missing_bytes(unit_labs),
            self.fetch_bytes(unit_labs),
            self.cosigned_bytes(unit_labs),
            self.sign_request_bytes(mode),
            self.bodies_bytes(),
            ENVELOPE + self.observation_bytes(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    /// The largest `max_reports_per_inspector`, up to `at_most`, for which every message of a
    /// network of this shape fits in [`crate::codec::MAX_MESSAGE_BYTES`] (`None` if not even 0
    /// fits).
    pub fn fitting_reports(
        members: usize,
        threshold: usize,
        labs: usize,
        mode: SigningMode,
        at_most: usize,
    ) -> Option<usize> {
        (0..=at_most).rev().find(|r| {
            Self::new(members, threshold, labs, *r).largest_message_bytes(mode)
                <= crate::codec::MAX_MESSAGE_BYTES
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vouching_bounds_follow_the_threshold_rule() {
        // n = 4, t = 3: f = 1, q = 2; (n + f) / q = 2.
        let l = Limits::new(4, 3, 2, 2);
        assert_eq!(l.observations_per_proposal, 5);
        assert_eq!(l.vouched_attestations_per_slot, 10);
        assert_eq!(l.vouched_reports_per_inspector_slot, 2);
        assert_eq!(l.vouched_reports_per_inspector, 5);
        // With 3t > 2n, (n + f) / (f + 1) < 4 for every n.
        for n in 2..=256usize {
            let t = crate::roster::default_threshold(n) as usize;
            let l = Limits::new(n, t, 1, 1);
            assert!(l.vouched_reports_per_inspector_slot <= 3, "n = {n}");
            assert!(l.vouched_attestations_per_slot < 4 * MAX_ATTESTATIONS_PER_SLOT);
        }
    }

    #[test]
    fn the_un_scale_roster_fits_and_the_largest_does_not() {
        let un = Limits::fitting_reports(193, 129, 100, SigningMode::PerPeriod, 16);
        assert!(un.is_some_and(|r| r >= 2), "{un:?}");
        assert_eq!(
            Limits::fitting_reports(256, 171, 1024, SigningMode::PerPeriod, 4),
            None
        );
    }

    #[test]
    fn a_worst_case_proposal_encodes_within_the_computed_bound() {
        use std::sync::Arc;

        use crate::crypto::{Digest, Signature};
        use crate::message::{
            Message, Observation, Proposal, ProposalId, SignedObservation, SlotItems,
        };
        use crate::policy::{Measure, Reason, Verdict};
        use crate::roster::{LabIndex, MemberIndex, Period};
        use crate::statement::{Slot, Statement, Unit};

        let (n, t, labs, r) = (7usize, 5usize, 3usize, 2usize);
        let l = Limits::new(n, t, labs, r);
        let d = |i: usize| Digest::tagged("worst", &[&(i as u64).to_le_bytes()]);
        // Observations listing everything the syntax allows.
        let observation = |m: usize| {
            let mut slots = Vec::new();
            for lab in 0..labs {
                let mut attestations: Vec<Digest> = (0..MAX_ATTESTATIONS_PER_SLOT)
                    .map(|i| d(1000 * m + 10 * lab + i))
                    .collect();
                attestations.sort();
                // Every inspector reports on `r` labs (its cap), spread over the slots.
                let reports: Vec<(MemberIndex, Digest)> = (0..n)
                    .filter(|i| (i + labs - lab) % labs < r)
                    .map(|i| (MemberIndex(i as u16), d(50_000 + 100 * m + 10 * lab + i)))
                    .collect();
                slots.push(SlotItems {
                    lab: LabIndex(lab as u16),
                    attestations,
                    reports,
                });
            }
            Arc::new(SignedObservation {
                observation: Observation {
                    member: MemberIndex(m as u16),
                    period: Period(u64::MAX),
                    slots,
                },
                signature: Signature([0; 64]),
            })
        };
        // Statements with as many items and reasons as the bounds allow, spread over the slots.
        let per_slot_reports = l.reports_per_unit(labs) / labs;
        let statements: Vec<Statement> = (0..labs)
            .map(|lab| {
                let a = l.vouched_attestations_per_slot;
                let rr = per_slot_reports;
                let mut evidence: Vec<Digest> =
                    (0..a + rr).map(|i| d(900_000 + 1000 * lab + i)).collect();
                evidence.sort();
                let mut reasons = Vec::new();
                for i in 0..(3 * a + rr + 2 * a * rr) {
                    reasons.push(Reason::InspectionDiscrepancy {
                        report: d(i),
                        attestation: d(i + 1),
                        measure: Measure::ChipHours,
                        declared: u64::MAX,
                        observed: u64::MAX,
                    });
                }
                Statement {
                    network_id: Digest([1; 32]),
                    policy_hash: Digest([2; 32]),
                    slot: Slot {
                        lab: "x".repeat(crate::roster::MAX_NAME_BYTES),
                        period: Period(u64::MAX),
                    },
                    evidence,
                    verdict: Verdict::Violation { reasons },
                }
            })
            .collect();
        let proposal = Proposal {
            id: ProposalId {
                unit: Unit::Slot {
                    period: Period(u64::MAX),
                    lab: LabIndex(u16::MAX),
                },
                attempt: u32::MAX,
                revision: u16::MAX,
            },
            statements,
            observations: (0..l.observations_per_proposal)
                .map(|m| observation(m % n))
                .collect(),
        };
        let bytes = Message::Proposal(Arc::new(proposal)).encode().unwrap();
        assert!(
            bytes.len() <= l.proposal_bytes(labs),
            "{} bytes over the computed {}",
            bytes.len(),
            l.proposal_bytes(labs)
        );
        let one = Message::Observation(observation(0)).encode().unwrap();
        assert!(one.len() <= 5 + l.observation_bytes());
    }
}
