//! Driving the members' engines: their timers, performing each engine's outputs through
//! [`driver::perform`] (records into storage, messages onto the network, events into the
//! checker and metrics), and the bookkeeping of which units every running honest member decided.

use accord_protocol::dkg::KeyMaterial;
use accord_protocol::driver;
use accord_protocol::engine::{Engine, Event, Offence, Record};
use accord_protocol::message::Message;
use accord_protocol::roster::MemberIndex;
use accord_protocol::statement::Unit;

use super::{Ev, Members, Node, Simulation};

impl Simulation {
    pub(super) fn schedule_timer(&mut self, m: usize) {
        let Some(t) = self.nodes[m]
            .member
            .engine
            .as_ref()
            .and_then(Engine::poll_timeout)
        else {
            return;
        };
        let at = self.to_virtual(m, t).max(self.now);
        if self.nodes[m].timer.is_some_and(|x| x <= at) {
            return;
        }
        let node = &mut self.nodes[m];
        node.timer = Some(at);
        node.generation += 1;
        let generation = node.generation;
        self.queue.push(
            at,
            Ev::Timer {
                member: m as u16,
                generation,
            },
        );
    }

    pub(super) fn schedule_twin_timer(&mut self, k: usize) {
        let of = self.twins[k].of;
        let Some(t) = self.twins[k]
            .node
            .member
            .engine
            .as_ref()
            .and_then(Engine::poll_timeout)
        else {
            return;
        };
        let at = self.to_virtual(of, t).max(self.now);
        let node = &mut self.twins[k].node;
        if node.timer.is_some_and(|x| x <= at) {
            return;
        }
        node.timer = Some(at);
        node.generation += 1;
        let generation = node.generation;
        self.queue.push(
            at,
            Ev::TwinTimer {
                twin: k as u16,
                generation,
            },
        );
    }

    /// Performs a twin's outputs: its messages leave as its member's.
    pub(super) fn drain_twin(&mut self, k: usize) {
        let Some(engine) = self.twins[k].node.member.engine.as_mut() else {
            return;
        };
        let outputs = engine.take_outputs();
        let mut effects = Outputs {
            world: self,
            who: Driven::Twin(k),
        };
        let Ok(()) = driver::perform(outputs, &mut effects);
    }

    /// Performs member `m`'s outputs in order.
    pub(super) fn drain(&mut self, m: usize) {
        self.aggregate_pending = false;
        let Some(engine) = self.nodes[m].member.engine.as_mut() else {
            return;
        };
        let outputs = engine.take_outputs();
        let mut effects = Outputs {
            world: self,
            who: Driven::Member(m),
        };
        let Ok(()) = driver::perform(outputs, &mut effects);
    }

    fn on_event(&mut self, m: usize, e: Event) {
        let mi = MemberIndex(m as u16);
        let now = self.now - self.start;
        match &e {
            Event::SessionStarted { id, .. } => {
                if let Some(u) = self.units.get_mut(&id.unit) {
                    u.sessions += 1;
                }
            }
            Event::Proposed { id } => {
                if let Some(u) = self.units.get_mut(&id.unit) {
                    u.proposals += 1;
                }
            }
            Event::Culprit {
                offence: Offence::InvalidShare,
                ..
            } if !self.aggregate_pending => {
                // A failed aggregation names its cheaters in one go.
                self.aggregate_pending = true;
                self.metrics.frost.aggregates += 1;
            }
            _ => {}
        }
        if !self.honest[m] {
            return;
        }
        self.checker.on_event(mi, &e, now);
        match e {
            Event::Decided(c) => self.decided(m, &c),
            Event::Refused { reason, .. } => {
                *self
                    .metrics
                    .refusals
                    .entry(reason.code().to_string())
                    .or_default() += 1;
            }
            Event::DkgComplete { .. } => self.check_dkg_done(),
            Event::RefreshComplete { ceremony, .. } => {
                self.metrics.refreshes.insert(ceremony);
            }
            Event::SuccessionCoSigned(s) if self.handed_over.is_none() => {
                self.handed_over = Some(s);
            }
            _ => {}
        }
    }

    fn check_dkg_done(&mut self) {
        if self.dkg_done_at.is_some() {
            return;
        }
        let all = (0..self.nodes.len())
            .filter(|i| self.honest[*i] && self.nodes[*i].member.engine.is_some())
            .all(|i| self.checker.dkg_keys.contains_key(&(i as u16)));
        if all {
            self.dkg_done_at = Some(self.now);
        }
    }

    fn decided(&mut self, m: usize, c: &accord_protocol::statement::CoSigned) {
        let period = c.unit.period().0;
        let handed_over = self.end < self.sc.network.periods;
        if period < self.first || (handed_over && period >= self.end) {
            // Another epoch owns this period. (Past the run's last period, the last epoch's
            // decisions are simply not counted.)
            self.checker.violations.push(crate::checker::Violation {
                kind: crate::scenario::ViolationKind::EpochOverlap,
                at_us: self.now - self.start,
                detail: format!(
                    "member#{m} co-signed {:?}, outside its epoch's periods {}..{}",
                    c.unit, self.first, self.end
                ),
            });
            return;
        }
        let Some(stats) = self.units.get_mut(&c.unit) else {
            return;
        };
        stats.decided_by.insert(m);
        if stats.first.is_none() {
            stats.first = Some(self.now);
        }
        let evidence: usize = c.statements.iter().map(|s| s.evidence.len()).sum();
        if stats.evidence.is_none_or(|e| evidence > e) {
            stats.evidence = Some(evidence);
            for s in &c.statements {
                if let Some(lab) = self.net.lab_by_id(&s.slot.lab) {
                    self.verdicts.insert(
                        (s.slot.period.0, lab.0),
                        (s.evidence.len(), s.verdict.kind().to_string()),
                    );
                }
            }
        }
        self.refresh_unit(c.unit);
    }

    fn honest_up(&self) -> Members {
        let mut set = Members::default();
        for i in 0..self.nodes.len() {
            if self.honest[i] && self.nodes[i].member.engine.is_some() {
                set.insert(i);
            }
        }
        set
    }

    fn refresh_unit(&mut self, unit: Unit) {
        let need = self.honest_up();
        if let Some(stats) = self.units.get_mut(&unit)
            && stats.decided_by.contains_all(&need)
        {
            if stats.all.is_none() {
                stats.all = Some(self.now);
            }
            self.incomplete.remove(&unit);
        }
    }

    pub(super) fn refresh_all(&mut self) {
        let pending: Vec<Unit> = self.incomplete.iter().copied().collect();
        for u in pending {
            self.refresh_unit(u);
        }
    }
}

/// Whose outputs are being performed.
#[derive(Clone, Copy)]
enum Driven {
    /// A member's (honest or Byzantine).
    Member(usize),
    /// A Twins pair's second engine: its messages leave as its member's, nothing else counts.
    Twin(usize),
}

/// The simulator's side of [`driver::perform`]: records into the member (checked when it is
/// honest), messages onto the simulated network, events into metrics and the checker.
struct Outputs<'a> {
    world: &'a mut Simulation,
    who: Driven,
}

impl Outputs<'_> {
    fn node(&mut self) -> &mut Node {
        match self.who {
            Driven::Member(m) => &mut self.world.nodes[m],
            Driven::Twin(k) => &mut self.world.twins[k].node,
        }
    }

    /// The member whose messages these are, and whether its checks count.
    fn sender(&self) -> (usize, bool) {
        match self.who {
            Driven::Member(m) => (m, self.world.honest[m]),
            Driven::Twin(k) => (self.world.twins[k].of, false),
        }
    }
}

impl driver::Effects for Outputs<'_> {
    type Error = std::convert::Infallible;

    fn persist(&mut self, record: Record) -> Result<(), Self::Error> {
        if let Driven::Member(m) = self.who {
            if let Record::Signed(_) = record {
                self.world.metrics.frost.signs += 1;
            }
            if self.world.honest[m] {
                let now = self.world.now - self.world.start;
                self.world
                    .checker
                    .on_record(MemberIndex(m as u16), &record, now);
            }
        }
        self.node().member.persist(record);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn compact(&mut self, snapshot: Vec<Record>) -> Result<(), Self::Error> {
        self.node().member.compact(snapshot);
        Ok(())
    }

    fn store_key(&mut self, key: KeyMaterial) -> Result<(), Self::Error> {
        self.node().member.store_key(key);
        Ok(())
    }

    fn store_pending_key(&mut self, key: Option<KeyMaterial>) -> Result<(), Self::Error> {
        self.node().member.store_pending_key(key);
        Ok(())
    }

    fn send(&mut self, to: MemberIndex, message: Message) {
        let (m, checked) = self.sender();
        if let Driven::Member(_) = self.who {
            if matches!(message, Message::Accept(_) | Message::Share(_)) {
                self.world.metrics.frost.commits += 1;
            }
            if checked {
                let now = self.world.now - self.world.start;
                self.world
                    .checker
                    .on_sent(MemberIndex(m as u16), &message, now);
            }
        }
        self.world.send_out(m, to, message);
    }

    fn broadcast(&mut self, message: Message) {
        let (m, checked) = self.sender();
        if let Driven::Member(_) = self.who {
            if matches!(message, Message::CoSigned(_)) {
                self.world.metrics.frost.aggregates += 1;
            }
            if checked {
                let now = self.world.now - self.world.start;
                self.world
                    .checker
                    .on_sent(MemberIndex(m as u16), &message, now);
            }
        }
        self.world.broadcast_out(m, message);
    }

    fn event(&mut self, event: Event) {
        if let Driven::Member(m) = self.who {
            self.world.on_event(m, event);
        }
    }
}
