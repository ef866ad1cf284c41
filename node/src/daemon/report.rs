//! What the node tells its operator: engine events as logs and metrics, and the status report
//! (`GET /v1/status`, `/readyz`).

use std::collections::BTreeMap;

use accord_observer::wire::{Decision, StatusReport};
use accord_protocol::engine::Event;
use tracing::{debug, info, warn};

use super::event_loop::EventLoop;
use crate::clock::now;
use crate::metrics::{KindLabel, MemberLabel, ReasonLabel};

/// Decisions remembered for `status`.
const RECENT_DECISIONS: usize = 64;

impl EventLoop {
    /// Logs an engine event and counts it in the metrics.
    pub(super) fn on_engine_event(&mut self, e: Event) {
        match e {
            Event::Admitted { digest, period, .. } => {
                debug!(%digest, period = period.0, "evidence admitted");
            }
            Event::Observed { period, items } => {
                info!(
                    period = period.0,
                    items, "period closed; observation signed"
                );
            }
            Event::Proposed { id } => debug!(?id, "proposed"),
            Event::SessionStarted { id, session, .. } => {
                debug!(?id, session, "signing session started");
                self.metrics.signing_sessions.inc();
            }
            Event::Decided(c) => {
                let period = c.unit.period();
                let close = self.net.schedule().close(period);
                let latency = now().saturating_duration_since(close);
                self.metrics
                    .close_to_cosigned
                    .observe(latency.as_secs_f64());
                let mut verdicts = BTreeMap::new();
                for s in &c.statements {
                    self.metrics
                        .verdicts
                        .get_or_create(&KindLabel {
                            kind: s.verdict.kind().into(),
                        })
                        .inc();
                    verdicts.insert(s.slot.lab.clone(), s.verdict.kind().to_string());
                }
                info!(
                    period = period.0,
                    statements = c.statements.len(),
                    close_to_cosigned_ms = latency.as_millis() as u64,
                    "co-signed"
                );
                self.recent.push_back(Decision {
                    period: period.0,
                    verdicts,
                    close_to_cosigned_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                });
                while self.recent.len() > RECENT_DECISIONS {
                    self.recent.pop_front();
                }
            }
            Event::Conflict(c) => {
                tracing::error!(
                    period = c.unit.period().0,
                    "a validly co-signed unit conflicts with the one held: more than f members are faulty"
                );
                self.metrics.inc_rejected("conflicting-cosigned");
            }
            Event::Culprit { member, offence } => {
                warn!(member = %self.name_of(member), %offence, "member misbehaved");
                self.metrics
                    .culprits
                    .get_or_create(&ReasonLabel {
                        reason: offence.code().into(),
                    })
                    .inc();
            }
            Event::Refused { from, reason } => {
                info!(from = %self.name_of(from), %reason, "refused");
            }
            Event::DkgStarted { ceremony } => {
                self.last_ceremony = self.last_ceremony.max(ceremony);
                info!(ceremony, "DKG ceremony started");
            }
            Event::DkgComplete { group_key } => {
                info!(%group_key, "DKG complete: group key confirmed")
            }
            Event::DkgAborted(f) => {
                let culprits: Vec<String> = f
                    .culprits
                    .iter()
                    .map(|(m, o)| format!("{}: {o}", self.name_of(*m)))
                    .collect();
                warn!(ceremony = f.ceremony, ?culprits, "DKG ceremony aborted");
            }
            Event::RefreshStarted { ceremony } => info!(ceremony, "share refresh started"),
            Event::RefreshComplete {
                ceremony,
                group_key,
            } => info!(ceremony, %group_key, "share refresh complete: new shares in use"),
            Event::RefreshAborted(f) => {
                let culprits: Vec<String> = f
                    .culprits
                    .iter()
                    .map(|(m, o)| format!("{}: {o}", self.name_of(*m)))
                    .collect();
                warn!(
                    ceremony = f.ceremony,
                    ?culprits,
                    "share refresh aborted; current shares stay in use"
                );
            }
            Event::RepairRequested => info!("share repair requested from t helpers"),
            Event::RepairHelped { member } => {
                warn!(member = %self.name_of(member), "helping a member repair its lost share")
            }
            Event::Repaired { group_key } => info!(%group_key, "key share repaired and in use"),
            Event::RepairFailed { reason } => warn!(reason, "share repair failed; ask again"),
            Event::SuccessionOffered {
                from,
                succession,
                first_period,
            } => warn!(
                coordinator = %self.name_of(from),
                %succession,
                first_period = first_period.0,
                "a succession to a new roster is offered; review it and `accord succession approve` it, or ignore it"
            ),
            Event::SuccessionApproved {
                succession,
                first_period,
            } => info!(%succession, first_period = first_period.0, "succession approved (locked)"),
            Event::SuccessionLapsed { succession } => {
                warn!(%succession, "succession approval lapsed or withdrawn; this epoch keeps deciding")
            }
            Event::SuccessionCoSigned(s) => info!(
                first_period = s.succession.first_period.0,
                next_network = %s.succession.network_id,
                next_group_key = %s.succession.group_key,
                "succession co-signed: this epoch decides no period from first_period on"
            ),
            Event::SuccessionFork(pair) => tracing::error!(
                first = %pair[0].succession.digest(),
                second = %pair[1].succession.digest(),
                "two co-signed successions of this epoch: more than f members are faulty"
            ),
        }
    }

    /// Why this epoch decides nothing now, if a membership change is the reason: it handed
    /// over and closed its last period, or it is a successor that has not adopted its
    /// succession yet (`docs/protocol.md` §22.7).
    fn epoch_reason(&self, next_close: accord_protocol::Period) -> Option<String> {
        let s = self.engine.succession_status();
        if let Some(done) = s
            .handed_over
            .filter(|d| next_close >= d.succession.first_period)
        {
            return Some(format!(
                "handed over: periods from {} on belong to network {}; this node's work is done once its last periods are decided everywhere",
                done.succession.first_period.0, done.succession.network_id
            ));
        }
        match (self.engine.epoch_start(), s.adopted) {
            (Some(p), None) => Some(format!(
                "successor epoch from period {}: waiting for `accord succession adopt`",
                p.0
            )),
            _ => None,
        }
    }

    /// The gossipsub score of each connected member, by name; also exported as a metric.
    pub(super) fn gossip_scores(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for p in self.peers.connected() {
            if let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&p.peer_id) {
                self.metrics
                    .gossip_score
                    .get_or_create(&MemberLabel {
                        member: p.name.clone(),
                    })
                    .set(score);
                out.insert(p.name.clone(), score);
            }
        }
        out
    }

    /// A snapshot of the node; `ready` when it holds the group key and at least t members
    /// (itself included) are reachable.
    pub(super) fn status(&mut self) -> StatusReport {
        let s = self.engine.status();
        let connected: Vec<String> = self.peers.connected().map(|p| p.name.clone()).collect();
        let reachable = connected.len() + 1;
        let t = self.net.t();
        let topic = self.topic.hash();
        let gossip_peers = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&topic))
            .count();
        let gossip_scores = self.gossip_scores();
        let reason = if let Some(g) = self.engine.known_group_key() {
            Some(match self.engine.repair_progress() {
                Some(p) => format!(
                    "no key share: repair in progress ({} of {} helpers answered; group key {g})",
                    p.answered.len(),
                    p.helpers.len()
                ),
                None => format!("no key share (group key {g}): run `accord repair`"),
            })
        } else if s.group_key.is_none() {
            Some(match &s.dkg_phase {
                Some(phase) => format!("no group key yet: DKG in progress ({phase})"),
                None => "no group key yet: run the DKG (accord dkg)".to_string(),
            })
        } else if let Some(reason) = self.epoch_reason(s.next_close) {
            Some(reason)
        } else if reachable < t {
            Some(format!(
                "fewer than t members reachable: {reachable} of {} (this node included), t = {t}",
                self.net.n()
            ))
        } else {
            None
        };
        let member = &self.net.roster().members[usize::from(self.me.0)];
        StatusReport {
            member: member.name.clone(),
            index: self.me.0,
            peer_id: self.peer_id.to_string(),
            network: self.net.roster().name.clone(),
            network_id: *self.net.id(),
            members: self.net.n(),
            threshold: t,
            connected,
            reachable,
            gossip_peers,
            gossip_scores,
            group_key: s.group_key,
            dkg_phase: s.dkg_phase,
            current_period: self.net.schedule().period_at(now()).map(|p| p.0),
            next_close: s.next_close.0,
            pending_units: s.pending_units,
            decided_units: s.decided_units,
            evidence_items: s.evidence_items,
            ready: reason.is_none(),
            reason,
            recent: self.recent.iter().cloned().collect(),
            store_commits: self.metrics.store_commits.get(),
        }
    }
}
