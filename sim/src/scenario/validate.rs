//! Semantic checks of a scenario: well-typed values that make no sense (a member outside the
//! roster, a probability of 2, an impossible threshold); each names the field it refuses.

use std::collections::BTreeSet;

use super::{Keys, LatencyDist, MemberRef, PartitionKind, RegionSpec, Scenario};

fn prob(field: &str, p: f64) -> Result<(), (String, String)> {
    if !(0.0..=1.0).contains(&p) || p.is_nan() {
        return Err((field.into(), format!("{p} is not a probability in [0, 1]")));
    }
    Ok(())
}

fn members_in(field: &str, list: &[u16], n: usize) -> Result<(), (String, String)> {
    if let Some(bad) = list.iter().find(|m| usize::from(**m) >= n) {
        return Err((
            field.into(),
            format!("member {bad} is not in the roster (members are 0..{n})"),
        ));
    }
    Ok(())
}

fn refs_in(
    field: &str,
    list: &[MemberRef],
    n: usize,
    regions: &Option<RegionSpec>,
) -> Result<(), (String, String)> {
    for r in list {
        match r {
            MemberRef::Index(m) => members_in(field, &[*m], n)?,
            MemberRef::Region(name) => {
                let known = regions
                    .as_ref()
                    .is_some_and(|rs| rs.names.iter().any(|x| x == name));
                if !known {
                    return Err((field.into(), format!("unknown region {name:?}")));
                }
            }
        }
    }
    Ok(())
}

fn dist_ok(field: &str, d: &LatencyDist) -> Result<(), (String, String)> {
    match d {
        LatencyDist::Uniform { min, max } if min > max => {
            Err((field.into(), format!("min {} ms > max {} ms", min.0, max.0)))
        }
        LatencyDist::Lognormal { sigma, .. } if !(0.0..=5.0).contains(sigma) => {
            Err((field.into(), format!("sigma {sigma} outside [0, 5]")))
        }
        _ => Ok(()),
    }
}

/// Membership changes: increasing first periods inside the run, rosters of a valid size and
/// threshold, withdrawing and Byzantine members that exist.
fn succession_ok(s: &Scenario) -> Result<(), (String, String)> {
    let mut n = s.network.members;
    let mut after = 0;
    for (i, c) in s.succession.iter().enumerate() {
        let f = format!("succession[{i}]");
        if c.first_period <= after || c.first_period >= s.network.periods {
            return Err((
                format!("{f}.first_period"),
                format!(
                    "period {} must come after the previous epoch's first period ({after}) and before the run's last ({})",
                    c.first_period, s.network.periods
                ),
            ));
        }
        if let Some(p) = &c.propose
            && p.period >= c.first_period
        {
            return Err((
                format!("{f}.propose"),
                "the new epoch must start before its first period".into(),
            ));
        }
        after = c.first_period;
        members_in(&format!("{f}.leave"), &c.leave, n)?;
        let leaving: BTreeSet<u16> = c.leave.iter().copied().collect();
        if leaving.len() != c.leave.len() {
            return Err((format!("{f}.leave"), "a member is listed twice".into()));
        }
        n = c.members_after(n);
        if !(2..=accord_protocol::roster::MAX_MEMBERS).contains(&n) {
            return Err((f, format!("{n} members after it; a network has 2 to 256")));
        }
        if let Some(t) = c.threshold {
            let t = usize::from(t);
            if t > n || 3 * t <= 2 * n {
                return Err((
                    format!("{f}.threshold"),
                    format!(
                        "t = {t} of n = {n} is not allowed: the protocol needs 3t > 2n and t <= n"
                    ),
                ));
            }
        }
        let mut byzantine = BTreeSet::new();
        for (j, adv) in c.adversary.iter().enumerate() {
            let g = format!("{f}.adversary[{j}]");
            members_in(&g, &adv.members, n)?;
            if matches!(
                adv.behaviour,
                super::Role::Twins | super::Role::EquivocatingDkg
            ) {
                return Err((
                    g,
                    "twins and equivocating-dkg are genesis-epoch behaviours only".into(),
                ));
            }
            for m in &adv.members {
                if !byzantine.insert(*m) {
                    return Err((g, format!("member {m} is given two behaviours")));
                }
            }
        }
    }
    Ok(())
}

/// Semantic checks; returns (field path, message) of the first problem.
pub(super) fn validate(s: &Scenario) -> Result<(), (String, String)> {
    let n = s.network.members;
    if !(2..=accord_protocol::roster::MAX_MEMBERS).contains(&n) {
        return Err((
            "network.members".into(),
            format!("{n} members; a network has 2 to 256"),
        ));
    }
    if s.network.labs == 0 || s.network.labs > accord_protocol::roster::MAX_LABS {
        return Err((
            "network.labs".into(),
            format!("{} labs; a network has 1 to 1024", s.network.labs),
        ));
    }
    if let Some(t) = s.network.threshold {
        let t = usize::from(t);
        if t > n || 3 * t <= 2 * n {
            return Err((
                "network.threshold".into(),
                format!(
                    "t = {t} of n = {n} is not allowed: the protocol needs 3t > 2n and t <= n (default {})",
                    accord_protocol::roster::default_threshold(n)
                ),
            ));
        }
    }
    if s.network.periods == 0 && s.network.keys != Keys::Dkg {
        return Err((
            "network.periods".into(),
            "0 periods only makes sense with keys = \"dkg\" (a ceremony-only run)".into(),
        ));
    }
    if s.seeds == 0 {
        return Err(("seeds".into(), "at least one seed".into()));
    }
    let sch = &s.schedule;
    if sch.period.0 == 0 || sch.attempt_timeout.0 == 0 || sch.dkg_phase_timeout.0 == 0 {
        return Err((
            "schedule".into(),
            "period, attempt_timeout and dkg_phase_timeout must be positive".into(),
        ));
    }
    if sch.max_clock_skew >= sch.observation_wait {
        return Err((
            "schedule.observation_wait".into(),
            "the observation wait must exceed max_clock_skew".into(),
        ));
    }
    let l = &s.links;
    dist_ok("links.latency", &l.latency)?;
    prob("links.loss", l.loss)?;
    prob("links.duplicate", l.duplicate)?;
    prob("links.reorder", l.reorder)?;
    if l.bandwidth_mbps < 0.0 || l.bandwidth_mbps.is_nan() {
        return Err(("links.bandwidth_mbps".into(), "must be >= 0".into()));
    }
    if let Some(r) = &l.regions {
        let k = r.names.len();
        if k == 0 {
            return Err(("links.regions.names".into(), "at least one region".into()));
        }
        if r.median.len() != k || r.median.iter().any(|row| row.len() != k) {
            return Err((
                "links.regions.median".into(),
                format!("must be a {k}x{k} matrix (one row and column per region)"),
            ));
        }
        if r.median.iter().flatten().any(|v| *v < 0.0 || v.is_nan()) {
            return Err((
                "links.regions.median".into(),
                "latencies must be >= 0".into(),
            ));
        }
        if !r.assign.is_empty() && r.assign.len() != n {
            return Err((
                "links.regions.assign".into(),
                format!("{} entries for {n} members", r.assign.len()),
            ));
        }
        if !r.counts.is_empty() && (r.counts.len() != k || r.counts.iter().sum::<usize>() != n) {
            return Err((
                "links.regions.counts".into(),
                format!("{k} counts that add up to the {n} members"),
            ));
        }
        if let Some(bad) = r.assign.iter().find(|a| **a >= k) {
            return Err((
                "links.regions.assign".into(),
                format!("region {bad} does not exist (0..{k})"),
            ));
        }
    }
    for (i, o) in l.overrides.iter().enumerate() {
        let f = format!("links.override[{i}]");
        refs_in(&f, &o.from, n, &l.regions)?;
        refs_in(&f, &o.to, n, &l.regions)?;
        if let Some(p) = o.loss {
            prob(&f, p)?;
        }
        if let Some(d) = &o.latency {
            dist_ok(&f, d)?;
        }
    }
    if !s.clock.skews.is_empty() && s.clock.skews.len() != n {
        return Err((
            "clock.skews".into(),
            format!("{} skews for {n} members", s.clock.skews.len()),
        ));
    }
    let lab = &s.labs;
    let [a, b] = lab.submit_window;
    if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) || a > b {
        return Err((
            "labs.submit_window".into(),
            "two fractions 0 <= a <= b <= 1 of the period".into(),
        ));
    }
    if lab.copies == 0 || lab.copies > n {
        return Err(("labs.copies".into(), format!("1 to {n}")));
    }
    prob("labs.late", lab.late)?;
    prob("labs.inspections", lab.inspections)?;
    prob("labs.discrepancy", lab.discrepancy)?;
    if lab.late > 0.0 && lab.late_delay.0 <= s.clock.max_skew.0 {
        return Err((
            "labs.late_delay".into(),
            "must exceed clock.max_skew, or a slow clock may still rightly admit the item".into(),
        ));
    }
    let weights: f64 = lab.conduct.weights().iter().map(|(_, w)| *w).sum();
    if lab.pattern.is_empty()
        && (weights <= 0.0 || lab.conduct.weights().iter().any(|(_, w)| *w < 0.0))
    {
        return Err((
            "labs.conduct".into(),
            "weights must be >= 0 with a positive sum".into(),
        ));
    }
    for (i, c) in lab.collude.iter().enumerate() {
        if usize::from(c.lab) >= s.network.labs {
            return Err((
                format!("labs.collude[{i}]"),
                format!("lab {} does not exist", c.lab),
            ));
        }
    }
    let mut byzantine = BTreeSet::new();
    for (i, adv) in s.adversary.iter().enumerate() {
        let f = format!("adversary[{i}]");
        members_in(&f, &adv.members, n)?;
        for m in &adv.members {
            if !byzantine.insert(*m) {
                return Err((f, format!("member {m} is given two behaviours")));
            }
        }
    }
    for (i, c) in s.crash.iter().enumerate() {
        members_in(&format!("crash[{i}]"), &c.members, n)?;
    }
    for (i, p) in s.partition.iter().enumerate() {
        let f = format!("partition[{i}]");
        match p.kind {
            PartitionKind::Symmetric => {
                if p.groups.is_empty() {
                    return Err((f, "a symmetric partition needs groups".into()));
                }
                for g in &p.groups {
                    refs_in(&f, g, n, &l.regions)?;
                }
            }
            PartitionKind::OneWay => {
                if p.from.is_empty() || p.to.is_empty() {
                    return Err((f, "a one-way partition needs from and to".into()));
                }
                refs_in(&f, &p.from, n, &l.regions)?;
                refs_in(&f, &p.to, n, &l.regions)?;
            }
        }
    }
    let rf = &s.random_faults;
    prob("random_faults.partition_fraction", rf.partition_fraction)?;
    prob("random_faults.one_way", rf.one_way)?;
    if rf.crash_rate < 0.0 || rf.partition_rate < 0.0 {
        return Err(("random_faults".into(), "rates must be >= 0".into()));
    }
    if s.network.keys == Keys::Dkg && s.dkg.ceremonies.is_empty() {
        return Err(("dkg.ceremonies".into(), "at least one ceremony".into()));
    }
    succession_ok(s)?;
    members_in("expect.culprits", &s.expect.culprits, n)?;
    members_in("expect.dkg_culprits", &s.expect.dkg_culprits, n)?;
    for (i, v) in s.expect.verdicts.iter().enumerate() {
        if !["compliant", "violation", "no-attestation"].contains(&v.verdict.as_str()) {
            return Err((
                format!("expect.verdicts[{i}]"),
                format!(
                    "verdict {:?}: expected compliant, violation or no-attestation",
                    v.verdict
                ),
            ));
        }
        if usize::from(v.lab) >= s.network.labs || v.period >= s.network.periods {
            return Err((
                format!("expect.verdicts[{i}]"),
                "no such slot in this scenario".into(),
            ));
        }
    }
    Ok(())
}
