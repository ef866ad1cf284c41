//! The simulated network: per-link latency distributions (with a region matrix and per-link
//! overrides), uplink bandwidth, loss, duplication, reordering, partitions, and the gossip mesh.
//!
//! Like str0m's network emulator it is sans-IO and seeded: a message goes in with its size and
//! the current virtual time, and a decision comes out (dropped, or delivered at these times).
//! All randomness comes from the caller's network RNG, so a seed reproduces every decision.

use rand_core::RngCore;

use crate::scenario::{LatencyDist, LinkSpec, MemberRef, RegionSpec};

/// Microseconds of virtual time.
pub type Micros = u64;

/// A uniform draw in `[0, 1)`.
pub fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A draw in `0..n` (n > 0).
pub fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    debug_assert!(n > 0);
    // Lemire's multiply-shift; the bias is below 2^-64 * n, negligible here.
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

/// A resolved latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sampler {
    Fixed(f64),
    Uniform(f64, f64),
    Lognormal { mu: f64, sigma: f64 },
}

impl Sampler {
    fn new(dist: &LatencyDist, centre_ms: Option<f64>) -> Self {
        match (dist, centre_ms) {
            (LatencyDist::Fixed { value }, None) => Sampler::Fixed(value.0 as f64 * 1e3),
            (LatencyDist::Fixed { .. }, Some(c)) => Sampler::Fixed(c * 1e3),
            (LatencyDist::Uniform { min, max }, None) => {
                Sampler::Uniform(min.0 as f64 * 1e3, max.0 as f64 * 1e3)
            }
            (LatencyDist::Uniform { min, max }, Some(c)) => {
                // Keep the relative width, move the midpoint to the region's median.
                let mid = (min.0 + max.0) as f64 / 2.0;
                if mid <= 0.0 {
                    Sampler::Fixed(c * 1e3)
                } else {
                    let scale = c / mid;
                    Sampler::Uniform(min.0 as f64 * scale * 1e3, max.0 as f64 * scale * 1e3)
                }
            }
            (LatencyDist::Lognormal { median, sigma }, centre) => {
                let m = centre.unwrap_or(median.0 as f64).max(1e-3) * 1e3;
                Sampler::Lognormal {
                    mu: m.ln(),
                    sigma: *sigma,
                }
            }
        }
    }

    fn sample(&self, rng: &mut impl RngCore) -> f64 {
        match *self {
            Sampler::Fixed(v) => v,
            Sampler::Uniform(lo, hi) => lo + (hi - lo) * unit(rng),
            Sampler::Lognormal { mu, sigma } => {
                // Box-Muller.
                let u1 = 1.0 - unit(rng);
                let u2 = unit(rng);
                let z = (-2.0 * u1.ln()).sqrt() * (core::f64::consts::TAU * u2).cos();
                (mu + sigma * z).exp()
            }
        }
    }
}

/// What happens to one transmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped because the link is cut.
    Cut,
    /// Lost.
    Lost,
    /// Delivered at `at`, and a duplicate at `dup` if any.
    Delivered {
        /// Arrival of the message.
        at: Micros,
        /// Arrival of a duplicate.
        dup: Option<Micros>,
    },
}

/// Per-link behaviour of the whole network.
#[derive(Debug)]
pub struct Links {
    n: usize,
    samplers: Vec<Sampler>,
    link_sampler: Vec<u32>,
    link_loss: Vec<f32>,
    /// Region of each member.
    pub region_of: Vec<usize>,
    /// Region names.
    pub region_names: Vec<String>,
    bytes_per_us: f64,
    duplicate: f64,
    reorder: f64,
    reorder_window_us: f64,
    uplink_free: Vec<Micros>,
    cut: Vec<u16>,
    healed: bool,
}

/// Resolves member references (indexes and region names) to member indexes.
pub fn resolve(refs: &[MemberRef], region_of: &[usize], regions: &Option<RegionSpec>) -> Vec<u16> {
    let mut out = Vec::new();
    for r in refs {
        match r {
            MemberRef::Index(m) => out.push(*m),
            MemberRef::Region(name) => {
                if let Some(k) = regions
                    .as_ref()
                    .and_then(|rs| rs.names.iter().position(|x| x == name))
                {
                    out.extend(
                        region_of
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| **r == k)
                            .map(|(i, _)| i as u16),
                    );
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl Links {
    /// Builds the link model for `n` members.
    pub fn new(spec: &LinkSpec, n: usize) -> Self {
        let (region_of, region_names) = match &spec.regions {
            Some(r) if !r.assign.is_empty() => (r.assign.clone(), r.names.clone()),
            Some(r) if !r.counts.is_empty() => (
                r.counts
                    .iter()
                    .enumerate()
                    .flat_map(|(k, c)| std::iter::repeat_n(k, *c))
                    .collect(),
                r.names.clone(),
            ),
            Some(r) => ((0..n).map(|i| i % r.names.len()).collect(), r.names.clone()),
            None => (vec![0; n], vec!["all".to_string()]),
        };
        let mut samplers: Vec<Sampler> = Vec::new();
        let mut intern = |s: Sampler| -> u32 {
            match samplers.iter().position(|x| *x == s) {
                Some(i) => i as u32,
                None => {
                    samplers.push(s);
                    (samplers.len() - 1) as u32
                }
            }
        };
        let mut link_sampler = vec![0u32; n * n];
        let mut link_loss = vec![spec.loss as f32; n * n];
        for a in 0..n {
            for b in 0..n {
                let centre = spec
                    .regions
                    .as_ref()
                    .map(|r| r.median[region_of[a]][region_of[b]]);
                link_sampler[a * n + b] = intern(Sampler::new(&spec.latency, centre));
            }
        }
        for o in &spec.overrides {
            let from = resolve(&o.from, &region_of, &spec.regions);
            let to = resolve(&o.to, &region_of, &spec.regions);
            for a in &from {
                for b in &to {
                    let i = usize::from(*a) * n + usize::from(*b);
                    if let Some(d) = &o.latency {
                        link_sampler[i] = intern(Sampler::new(d, None));
                    }
                    if let Some(p) = o.loss {
                        link_loss[i] = p as f32;
                    }
                }
            }
        }
        Self {
            n,
            samplers,
            link_sampler,
            link_loss,
            region_of,
            region_names,
            bytes_per_us: spec.bandwidth_mbps / 8.0,
            duplicate: spec.duplicate,
            reorder: spec.reorder,
            reorder_window_us: spec.reorder_window.0 as f64 * 1e3,
            uplink_free: vec![0; n],
            cut: vec![0; n * n],
            healed: false,
        }
    }

    /// Whether messages from `a` to `b` are currently dropped by a partition.
    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        self.cut[a * self.n + b] > 0
    }

    /// Cuts (or, with `on = false`, restores) the link `a → b`; returns whether the link changed
    /// between up and down.
    pub fn set_cut(&mut self, a: usize, b: usize, on: bool) -> bool {
        let c = &mut self.cut[a * self.n + b];
        if on {
            *c += 1;
            *c == 1
        } else if *c > 0 {
            *c -= 1;
            *c == 0
        } else {
            false
        }
    }

    /// Ends every partition and stops loss, duplication and reordering (the healed phase);
    /// returns the links that came back up.
    pub fn heal(&mut self) -> Vec<(usize, usize)> {
        self.healed = true;
        let mut up = Vec::new();
        for a in 0..self.n {
            for b in 0..self.n {
                if self.cut[a * self.n + b] > 0 {
                    self.cut[a * self.n + b] = 0;
                    up.push((a, b));
                }
            }
        }
        up
    }

    /// Whether the healed phase has begun.
    pub fn is_healed(&self) -> bool {
        self.healed
    }

    /// Decides the fate of a `bytes`-long message sent from `a` to `b` at `now`.
    pub fn transmit(
        &mut self,
        a: usize,
        b: usize,
        bytes: usize,
        now: Micros,
        rng: &mut impl RngCore,
    ) -> Fate {
        let i = a * self.n + b;
        if self.cut[i] > 0 {
            return Fate::Cut;
        }
        let loss = if self.healed { 0.0 } else { self.link_loss[i] };
        if loss > 0.0 && unit(rng) < f64::from(loss) {
            return Fate::Lost;
        }
        // The sender's uplink serialises its messages in order.
        let mut depart = now;
        if self.bytes_per_us > 0.0 {
            let start = self.uplink_free[a].max(now);
            let tx = (bytes as f64 / self.bytes_per_us).ceil() as Micros;
            depart = start + tx;
            self.uplink_free[a] = depart;
        }
        let latency = self.samplers[self.link_sampler[i] as usize].sample(rng);
        let mut at = depart + latency.max(0.0).round() as Micros;
        if !self.healed && self.reorder > 0.0 && unit(rng) < self.reorder {
            at += (unit(rng) * self.reorder_window_us) as Micros;
        }
        let dup = (!self.healed && self.duplicate > 0.0 && unit(rng) < self.duplicate).then(|| {
            let again = self.samplers[self.link_sampler[i] as usize].sample(rng);
            depart + again.max(0.0).round() as Micros + (unit(rng) * 5_000.0) as Micros
        });
        Fate::Delivered { at, dup }
    }

    /// Forgets a crashed member's queued uplink.
    pub fn reset_uplink(&mut self, a: usize, now: Micros) {
        self.uplink_free[a] = now;
    }
}

/// A gossipsub-like mesh: every member keeps about `degree` peers (links are symmetric), chosen
/// from the seeded RNG. With `degree >= n - 1` everyone is everyone's peer.
pub fn mesh(n: usize, degree: usize, rng: &mut impl RngCore) -> Vec<Vec<u16>> {
    if degree + 1 >= n {
        return (0..n)
            .map(|i| (0..n as u16).filter(|j| usize::from(*j) != i).collect())
            .collect();
    }
    let mut peers: Vec<std::collections::BTreeSet<u16>> = vec![Default::default(); n];
    let high = degree * 2;
    for i in 0..n {
        let mut tries = 0;
        while peers[i].len() < degree && tries < 50 * n {
            tries += 1;
            let j = below(rng, n as u64) as usize;
            if j == i || peers[i].contains(&(j as u16)) || peers[j].len() >= high {
                continue;
            }
            peers[i].insert(j as u16);
            peers[j].insert(i as u16);
        }
    }
    peers.into_iter().map(|p| p.into_iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Millis;
    use rand_core::SeedableRng;

    fn spec() -> LinkSpec {
        LinkSpec {
            latency: LatencyDist::Lognormal {
                median: Millis(40),
                sigma: 0.5,
            },
            ..LinkSpec::default()
        }
    }

    #[test]
    fn lognormal_median_is_close() {
        let mut links = Links::new(&spec(), 2);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut v: Vec<u64> = (0..4001)
            .map(|_| match links.transmit(0, 1, 10, 0, &mut rng) {
                Fate::Delivered { at, .. } => at,
                other => panic!("{other:?}"),
            })
            .collect();
        v.sort_unstable();
        let median = v[2000] as f64 / 1e3;
        assert!((median - 40.0).abs() < 3.0, "median {median}");
    }

    #[test]
    fn bandwidth_serialises_the_uplink() {
        let mut s = LinkSpec {
            bandwidth_mbps: 8.0, // one byte per microsecond
            ..LinkSpec::default()
        };
        s.latency = LatencyDist::Fixed { value: Millis(1) };
        let mut links = Links::new(&s, 3);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let a = links.transmit(0, 1, 1000, 0, &mut rng);
        let b = links.transmit(0, 2, 1000, 0, &mut rng);
        assert_eq!(
            a,
            Fate::Delivered {
                at: 2000,
                dup: None
            }
        );
        assert_eq!(
            b,
            Fate::Delivered {
                at: 3000,
                dup: None
            }
        );
    }

    #[test]
    fn cuts_count_and_heal() {
        let mut links = Links::new(&LinkSpec::default(), 3);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        assert!(links.set_cut(0, 1, true));
        assert!(!links.set_cut(0, 1, true));
        assert_eq!(links.transmit(0, 1, 1, 0, &mut rng), Fate::Cut);
        assert!(matches!(
            links.transmit(1, 0, 1, 0, &mut rng),
            Fate::Delivered { .. }
        ));
        assert!(!links.set_cut(0, 1, false));
        assert!(links.set_cut(0, 1, false));
        assert!(links.set_cut(2, 1, true));
        assert_eq!(links.heal(), vec![(2, 1)]);
    }

    #[test]
    fn mesh_is_symmetric_and_connected() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let m = mesh(193, 6, &mut rng);
        for (i, p) in m.iter().enumerate() {
            assert!(p.len() >= 6, "member {i} has {} peers", p.len());
            for j in p {
                assert!(m[usize::from(*j)].contains(&(i as u16)));
            }
        }
        let mut seen = [false; 193];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(m[i].iter().map(|j| usize::from(*j)));
        }
        assert!(seen.iter().all(|s| *s));
    }
}
