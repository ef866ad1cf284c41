//! The labs' and inspectors' workload: the plan (each lab's conduct and submission time per
//! period, late attestations, colluding labs), submissions to members as a lab would make them,
//! inspections, late submissions and collusion.

use std::sync::Arc;

use accord_protocol::crypto::Digest;
use accord_protocol::evidence::{Attestation, Evidence, EvidenceError};
use accord_protocol::fixtures::{LabConduct, inspection, lab_submissions};
use accord_protocol::roster::{LabIndex, MemberIndex, Period};
use accord_protocol::time::Instant;
use accord_testkit::child_rng;
use rand_chacha::ChaCha20Rng;

use crate::net::{Micros, below, unit};
use crate::scenario::Conduct;
use crate::trace::TraceEntry;

use super::{Ev, Simulation, ms};

impl Simulation {
    pub(super) fn plan_workload(&mut self) {
        let schedule = self.net.schedule().clone();
        let labs = self.sc.network.labs;
        let [a, b] = self.sc.labs.submit_window;
        for p in self.first..self.end {
            for l in 0..labs {
                let mut rng = child_rng(self.opts.seed, "workload-plan", (p << 16) | l as u64, 0);
                let conduct = if self.sc.labs.pattern.is_empty() {
                    let weights = self.sc.labs.conduct.weights();
                    let total: f64 = weights.iter().map(|(_, w)| *w).sum();
                    let mut x = unit(&mut rng) * total;
                    let mut pick = Conduct::Compliant;
                    for (c, w) in weights {
                        if w > 0.0 {
                            pick = c;
                            if x < w {
                                break;
                            }
                            x -= w;
                        }
                    }
                    pick
                } else {
                    self.sc.labs.pattern[l % self.sc.labs.pattern.len()]
                };
                self.conduct.insert((p, l as u16), conduct);
                let start = ms(schedule.start(Period(p)).as_millis());
                let len = ms(schedule.period_ms) as f64;
                let at = start + (len * (a + (b - a) * unit(&mut rng))) as Micros;
                if conduct != Conduct::Silent {
                    self.push_scripted(
                        at,
                        Ev::Submit {
                            lab: l as u16,
                            period: p,
                        },
                    );
                }
                if self.sc.labs.late > 0.0 && unit(&mut rng) < self.sc.labs.late {
                    let close = ms(schedule.close(Period(p)).as_millis());
                    self.push_scripted(
                        close + ms(self.sc.labs.late_delay.0),
                        Ev::Late {
                            lab: l as u16,
                            period: p,
                        },
                    );
                }
            }
        }
        for c in self.sc.labs.collude.clone() {
            if !(self.first..self.end).contains(&c.period) {
                continue;
            }
            let close = ms(schedule.close(Period(c.period)).as_millis());
            self.push_scripted(
                close.saturating_sub(ms(c.before_close.0)),
                Ev::Collude {
                    lab: c.lab,
                    period: c.period,
                },
            );
            self.push_scripted(
                close + ms(self.sc.labs.late_delay.0),
                Ev::Late {
                    lab: c.lab,
                    period: c.period,
                },
            );
        }
    }

    /// A submission to member `m` as a lab (or inspector) would make it: acknowledged only after
    /// the member's outputs (and so the item's `Persist`) were performed.
    fn submit_to(&mut self, m: usize, evidence: Evidence) -> Result<Digest, EvidenceError> {
        let body = Arc::new(evidence.clone());
        let local = self.local(m);
        let stamp = self.profile.start();
        let Some(engine) = self.nodes[m].member.engine.as_mut() else {
            return Err(EvidenceError::BadField("member is down"));
        };
        let result = engine.submit(local, evidence);
        self.profile.stop(stamp, "submit");
        self.metrics_call(m);
        self.checker.add_body(&body);
        self.record(TraceEntry {
            at: self.now,
            what: "submit",
            member: m as u16,
            other: u16::MAX,
            message: "evidence",
            content: 0,
            outcome: if result.is_ok() { "ok" } else { "refused" },
        });
        self.drain(m);
        self.schedule_timer(m);
        match &result {
            Ok(d) => {
                self.nodes[m].member.acknowledged.insert(*d, body.period());
                self.metrics.acknowledged += 1;
            }
            Err(_) => self.metrics.refused += 1,
        }
        result
    }

    /// Picks up to `copies` running members in random order and submits to each.
    fn spread(&mut self, evidence: &Evidence, rng: &mut ChaCha20Rng) {
        let n = self.nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut sent = 0;
        for i in 0..n {
            if sent >= self.sc.labs.copies {
                break;
            }
            let j = i + below(rng, (n - i) as u64) as usize;
            order.swap(i, j);
            let m = order[i];
            if self.nodes[m].member.engine.is_none() {
                continue;
            }
            let _ = self.submit_to(m, evidence.clone());
            sent += 1;
        }
    }

    pub(super) fn submit_lab(&mut self, lab: u16, period: u64) {
        let conduct = self.conduct[&(period, lab)];
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (period << 16) | u64::from(lab),
            0,
        );
        let issued = Instant::from_millis(self.now / 1000);
        let items = lab_submissions(
            self.net.id(),
            self.net.lab_id(LabIndex(lab)),
            &self.lab_keys[usize::from(lab)],
            Period(period),
            &self.net.roster().policy,
            conduct.fixture(),
            issued,
            &mut rng,
        );
        for ev in items {
            if let Evidence::Attestation { attestation, .. } = &ev
                && self.sc.labs.inspections > 0.0
                && unit(&mut rng) < self.sc.labs.inspections
            {
                let discrepancy = unit(&mut rng) < self.sc.labs.discrepancy;
                let end = ms(self.net.schedule().end(Period(period)).as_millis());
                let at = self.now + below(&mut rng, end.saturating_sub(self.now).max(2) / 2);
                self.push_scripted(
                    at,
                    Ev::Inspect {
                        lab,
                        attestation: Box::new(attestation.clone()),
                        discrepancy,
                    },
                );
            }
            self.spread(&ev, &mut rng);
        }
    }

    pub(super) fn inspect(&mut self, lab: u16, attestation: &Attestation, discrepancy: bool) {
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (attestation.period.0 << 16) | u64::from(lab),
            1,
        );
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.honest[*i] && self.nodes[*i].member.engine.is_some())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let m = candidates[below(&mut rng, candidates.len() as u64) as usize];
        let factor = if discrepancy { 80 } else { 100 };
        let report = inspection(
            self.net.id(),
            MemberIndex(m as u16),
            &self.identities[m],
            attestation,
            factor,
            self.local(m),
        );
        let _ = self.submit_to(m, report);
    }

    pub(super) fn late(&mut self, lab: u16, period: u64) {
        let evidence = match self.late_for.get(&(period, lab)) {
            Some(e) => e.clone(),
            None => {
                let mut rng = child_rng(
                    self.opts.seed,
                    "workload-items",
                    (period << 16) | u64::from(lab),
                    2,
                );
                // Backdated: signed as if within the period.
                let end = self.net.schedule().end(Period(period));
                let issued = end.saturating_sub(core::time::Duration::from_millis(1_000));
                lab_submissions(
                    self.net.id(),
                    self.net.lab_id(LabIndex(lab)),
                    &self.lab_keys[usize::from(lab)],
                    Period(period),
                    &self.net.roster().policy,
                    LabConduct::Compliant,
                    issued,
                    &mut rng,
                )
                .remove(0)
            }
        };
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (period << 16) | u64::from(lab),
            3,
        );
        let n = self.nodes.len();
        let mut tried = 0;
        for k in 0..n {
            if tried >= self.sc.labs.copies {
                break;
            }
            let m = (below(&mut rng, n as u64) as usize + k) % n;
            if !self.honest[m] || self.nodes[m].member.engine.is_none() {
                continue;
            }
            tried += 1;
            self.metrics.late_attempts += 1;
            match self.submit_to(m, evidence.clone()) {
                Ok(_) => self.metrics.late_accepted += 1,
                Err(_) => self.metrics.late_refused += 1,
            }
        }
    }

    pub(super) fn collude(&mut self, lab: u16, period: u64) {
        let mut rng = child_rng(
            self.opts.seed,
            "workload-items",
            (period << 16) | u64::from(lab),
            4,
        );
        let evidence = lab_submissions(
            self.net.id(),
            self.net.lab_id(LabIndex(lab)),
            &self.lab_keys[usize::from(lab)],
            Period(period),
            &self.net.roster().policy,
            LabConduct::Compliant,
            Instant::from_millis(self.now / 1000),
            &mut rng,
        )
        .remove(0);
        let body = Arc::new(evidence.clone());
        let d = body.digest();
        self.checker.add_body(&body);
        self.late_items.insert(d);
        self.late_for.insert((period, lab), evidence);
        self.record(TraceEntry {
            at: self.now,
            what: "collude",
            member: u16::MAX,
            other: lab,
            message: "evidence",
            content: u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes")),
            outcome: "",
        });
    }
}
