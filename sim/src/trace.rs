//! The run's trace: a running hash over every event (for `--check-determinism`) and a ring buffer
//! of the last events (printed when a run fails).
//!
//! The hash is a fast non-cryptographic 128-bit mix: it only has to tell two runs of the same
//! code apart, and it is fed tens of millions of events in a large run.

use std::collections::VecDeque;

use crate::net::Micros;

/// What happened, compactly (formatted only when a run fails).
#[derive(Clone, Debug)]
pub struct TraceEntry {
    /// Virtual time (µs).
    pub at: Micros,
    /// What kind of event.
    pub what: &'static str,
    /// The member it happened at.
    pub member: u16,
    /// The other party (author, target), or `u16::MAX`.
    pub other: u16,
    /// The message kind, if any.
    pub message: &'static str,
    /// First bytes of the message's content digest.
    pub content: u64,
    /// Outcome (delivery verdict, refusal reason).
    pub outcome: &'static str,
}

impl std::fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>14.3} ms  {:<10} member#{:<3}",
            self.at as f64 / 1e3,
            self.what,
            self.member
        )?;
        if self.other != u16::MAX {
            write!(f, " <> member#{:<3}", self.other)?;
        }
        if !self.message.is_empty() {
            write!(f, " {} {:016x}", self.message, self.content)?;
        }
        if !self.outcome.is_empty() {
            write!(f, " -> {}", self.outcome)?;
        }
        Ok(())
    }
}

/// Running hash and the last events.
pub struct Trace {
    a: u64,
    b: u64,
    count: u64,
    last: VecDeque<TraceEntry>,
    capacity: usize,
}

impl Trace {
    /// A trace keeping the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            a: 0xcbf2_9ce4_8422_2325,
            b: 0x6c62_272e_07bb_0142,
            count: 0,
            last: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    fn mix(&mut self, x: u64) {
        self.a = (self.a ^ x).wrapping_mul(0x0000_0100_0000_01b3);
        self.b = (self.b ^ x.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (self.b >> 31);
    }

    fn mix_str(&mut self, s: &str) {
        let mut x = 0u64;
        for (i, byte) in s.bytes().enumerate() {
            x ^= u64::from(byte) << ((i % 8) * 8);
            if i % 8 == 7 {
                self.mix(x);
                x = 0;
            }
        }
        self.mix(x ^ s.len() as u64);
    }

    /// Records one event.
    pub fn record(&mut self, e: TraceEntry) {
        self.count += 1;
        self.mix(e.at);
        self.mix_str(e.what);
        self.mix(u64::from(e.member) << 16 | u64::from(e.other));
        self.mix_str(e.message);
        self.mix(e.content);
        self.mix_str(e.outcome);
        if self.capacity > 0 {
            if self.last.len() == self.capacity {
                self.last.pop_front();
            }
            self.last.push_back(e);
        }
    }

    /// Folds an extra value (such as a count) into the hash.
    pub fn fold(&mut self, x: u64) {
        self.mix(x);
    }

    /// The hash so far, as 32 hex digits.
    pub fn hash(&self) -> String {
        format!("{:016x}{:016x}", self.a, self.b ^ self.count)
    }

    /// The last events, oldest first.
    pub fn last(&self) -> impl Iterator<Item = &TraceEntry> {
        self.last.iter()
    }

    /// Events recorded.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: Micros) -> TraceEntry {
        TraceEntry {
            at,
            what: "deliver",
            member: 1,
            other: 2,
            message: "share",
            content: 7,
            outcome: "accepted",
        }
    }

    #[test]
    fn hash_depends_on_every_event_and_ring_keeps_the_last() {
        let mut a = Trace::new(2);
        let mut b = Trace::new(2);
        for t in 0..5 {
            a.record(entry(t));
            b.record(entry(if t == 3 { 99 } else { t }));
        }
        assert_ne!(a.hash(), b.hash());
        let kept: Vec<Micros> = a.last().map(|e| e.at).collect();
        assert_eq!(kept, [3, 4]);
        let mut c = Trace::new(0);
        for t in 0..5 {
            c.record(entry(t));
        }
        assert_eq!(a.hash(), c.hash());
    }
}
