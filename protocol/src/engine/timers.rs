//! The engine's deadlines, kept in a table and folded (str0m's `soonest()`): per unit, when its
//! next coordinator attempt starts and when its coordinator may add a spare signing session.
//! [`Engine::rearm`] recomputes a unit's entries wherever the state they depend on changes, so
//! neither `poll_timeout` nor `handle_timeout` scans every unit. Debug builds check the table
//! against such a scan on every `poll_timeout`.

use std::collections::{BTreeMap, BTreeSet};

use crate::statement::Unit;
use crate::time::Instant;

use super::Engine;

/// Deadlines by key, ordered by time.
pub(super) struct TimerQueue<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: BTreeMap<K, Instant>,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeSet::new(),
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> TimerQueue<K> {
    /// Sets the deadline of `key`, or clears it (`None`).
    pub(super) fn set(&mut self, key: K, at: Option<Instant>) {
        let old = self.by_key.get(&key).copied();
        if old == at {
            return;
        }
        if let Some(old) = old {
            self.by_time.remove(&(old, key));
            self.by_key.remove(&key);
        }
        if let Some(at) = at {
            self.by_time.insert((at, key));
            self.by_key.insert(key, at);
        }
    }

    /// The deadline of `key` (the debug builds' table check and the tests read it).
    #[cfg(any(test, debug_assertions))]
    pub(super) fn get(&self, key: &K) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    pub(super) fn soonest(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The keys whose deadline is at or before `now`, in key order.
    pub(super) fn due(&self, now: Instant) -> BTreeSet<K> {
        self.by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, k)| *k)
            .collect()
    }

    /// Every key with a deadline.
    #[cfg(debug_assertions)]
    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.by_key.keys()
    }
}

/// The per-unit deadlines.
#[derive(Default)]
pub(super) struct Timers {
    /// When each undecided unit of a closed period enters its next attempt.
    pub(super) attempts: TimerQueue<Unit>,
    /// When a unit's coordinator may start a spare session (`docs/protocol.md` §15).
    pub(super) spares: TimerQueue<Unit>,
}

/// The soonest of some deadlines.
pub(super) fn soonest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

impl Engine {
    /// Recomputes `unit`'s deadlines from its state.
    pub(super) fn rearm(&mut self, unit: Unit) {
        let (attempt, spare) = self.deadlines(&unit);
        self.timers.attempts.set(unit, attempt);
        self.timers.spares.set(unit, spare);
    }

    /// `unit`'s deadlines as its state says: the next attempt of an undecided unit of a closed
    /// period, and a spare session of its coordinator.
    fn deadlines(&self, unit: &Unit) -> (Option<Instant>, Option<Instant>) {
        let Some(state) = self.units.get(unit) else {
            return (None, None);
        };
        if self.decided.contains_key(unit) || !self.is_closed(unit.period()) {
            return (None, None);
        }
        let next = state.attempt.map_or(0, |a| a.saturating_add(1));
        let attempt = self.net.schedule().attempt_start(unit.period(), next);
        let spare = state
            .coordinator
            .as_ref()
            .and_then(|c| c.spare_session_due(self.net.t(), self.session_patience()));
        (Some(attempt), spare)
    }

    /// The table agrees with a scan of every unit (debug builds).
    #[cfg(debug_assertions)]
    pub(super) fn check_timers(&self) {
        for unit in self.units.keys() {
            let (attempt, spare) = self.deadlines(unit);
            assert_eq!(
                self.timers.attempts.get(unit),
                attempt,
                "attempt timer of {unit:?}"
            );
            assert_eq!(
                self.timers.spares.get(unit),
                spare,
                "spare timer of {unit:?}"
            );
        }
        let known = |u: &Unit| self.units.contains_key(u);
        assert!(
            self.timers.attempts.keys().all(known),
            "attempt timer of a dropped unit"
        );
        assert!(
            self.timers.spares.keys().all(known),
            "spare timer of a dropped unit"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_keeps_one_deadline_per_key_and_folds_to_the_soonest() {
        let mut q = TimerQueue::default();
        let at = Instant::from_millis;
        q.set(3u8, Some(at(30)));
        q.set(1u8, Some(at(50)));
        q.set(2u8, Some(at(10)));
        assert_eq!(q.soonest(), Some(at(10)));
        q.set(2, Some(at(60)));
        assert_eq!(q.soonest(), Some(at(30)));
        assert_eq!(q.get(&2), Some(at(60)));
        assert_eq!(q.due(at(50)), [1, 3].into_iter().collect());
        q.set(3, None);
        q.set(1, None);
        assert_eq!(q.soonest(), Some(at(60)));
        assert!(q.due(at(59)).is_empty());
        q.set(2, None);
        assert_eq!(q.soonest(), None);
    }

    #[test]
    #[should_panic(expected = "time went backwards")]
    fn an_input_from_the_past_is_a_driver_bug() {
        use crate::engine::test_support::Small;
        use crate::engine::{Engine, EngineConfig};
        use crate::roster::MemberIndex;

        let mut s = Small::new(4, 1);
        let mut e = Engine::new(
            s.net.clone(),
            MemberIndex(0),
            s.identity(0),
            Some(s.keys[0].clone()),
            EngineConfig::default(),
        );
        e.handle_timeout(Instant::from_millis(2_000), &mut s.rng);
        e.handle_timeout(Instant::from_millis(1_999), &mut s.rng);
    }

    #[test]
    fn deadlines_follow_the_attempts_of_a_closed_period() {
        use crate::engine::test_support::Small;
        use crate::engine::{Engine, EngineConfig};
        use crate::roster::{MemberIndex, Period};

        let mut s = Small::new(4, 1);
        let schedule = s.net.schedule().clone();
        let mut e = Engine::new(
            s.net.clone(),
            MemberIndex(3),
            s.identity(3),
            Some(s.keys[3].clone()),
            EngineConfig::default(),
        );
        assert_eq!(e.poll_timeout(), Some(schedule.close(Period(0))));
        // Closing period 0 creates its unit: next, the first attempt (member 3 does not
        // coordinate it, so nothing else is due).
        e.handle_timeout(schedule.close(Period(0)), &mut s.rng);
        assert_eq!(e.poll_timeout(), Some(schedule.attempt_start(Period(0), 0)));
        e.handle_timeout(schedule.attempt_start(Period(0), 0), &mut s.rng);
        assert_eq!(e.poll_timeout(), Some(schedule.attempt_start(Period(0), 1)));
        // Three attempts at once: the unit enters the latest, and waits for the next.
        let late = schedule.attempt_start(Period(0), 4);
        e.handle_timeout(late, &mut s.rng);
        let next = schedule
            .attempt_start(Period(0), 5)
            .min(schedule.close(Period(1)));
        assert_eq!(e.poll_timeout(), Some(next));
    }

    #[test]
    fn soonest_ignores_absent_deadlines() {
        let at = Instant::from_millis;
        assert_eq!(soonest([None, Some(at(7)), Some(at(3)), None]), Some(at(3)));
        assert_eq!(soonest([None, None]), None);
    }
}
