//! The operator's key-ceremony commands (`docs/protocol.md` §22.4–22.6, `docs/operations.md`):
//! starting a DKG, starting and aborting a share refresh, asking for a lost share's repair, and the status of
//! this member's ceremonies. The engine decides; this file picks defaults, refuses what the
//! engine could not act on here (a repair request to helpers that are not connected would be
//! dropped on the way), and makes the engine's outputs durable before the answer goes back.

use accord_observer::wire::{
    CeremonyKind, CeremonyStatus, RefreshAbortOutcome, RefreshAborted, RunningCeremony,
};
use accord_protocol::roster::MemberIndex;
use tracing::{info, warn};

use super::error::NodeError;
use super::event_loop::EventLoop;
use crate::clock::now;
use crate::handle::{CeremonyCommandError, CeremonyRefusal};

/// A command's answer: the engine's result, unless making its outputs durable failed.
pub(super) fn answer<T>(
    result: Result<T, impl Into<CeremonyRefusal>>,
    drained: &Result<(), NodeError>,
) -> Result<T, CeremonyCommandError> {
    match (result, drained) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(CeremonyCommandError::Storage(e.to_string())),
        (Err(e), _) => Err(e.into().into()),
    }
}

impl EventLoop {
    /// `POST /v1/dkg`: starts DKG ceremony `ceremony` (default: the last one seen here + 1;
    /// members join a ceremony only a little ahead of the last one they saw).
    pub(super) fn start_dkg(
        &mut self,
        ceremony: Option<u32>,
    ) -> (Result<u32, CeremonyCommandError>, Result<(), NodeError>) {
        let ceremony = ceremony.unwrap_or(self.last_ceremony.saturating_add(1));
        let result = self.engine.start_dkg(now(), ceremony, &mut self.rng);
        let drained = self.drain();
        (answer(result.map(|()| ceremony), &drained), drained)
    }

    /// `POST /v1/refresh`: starts refresh `ceremony` (default: the last one seen here + 1).
    pub(super) fn start_refresh(
        &mut self,
        ceremony: Option<u32>,
    ) -> (Result<u32, CeremonyCommandError>, Result<(), NodeError>) {
        let ceremony =
            ceremony.unwrap_or_else(|| self.engine.last_refresh().unwrap_or(0).saturating_add(1));
        let result = self.engine.start_refresh(now(), ceremony, &mut self.rng);
        let drained = self.drain();
        let answer = answer(result.map(|()| ceremony), &drained);
        if answer.is_ok() {
            info!(ceremony, "operator started a share refresh");
        }
        (answer, drained)
    }

    /// `POST /v1/refresh/abort`: withdraws from the running refresh, or with `abandon_pending`
    /// drops a refreshed share that awaits its confirmations.
    pub(super) fn abort_refresh(
        &mut self,
        abandon_pending: bool,
    ) -> (
        Result<RefreshAborted, CeremonyCommandError>,
        Result<(), NodeError>,
    ) {
        let result = match self.engine.abort_refresh(now()) {
            Ok(ceremony) => Ok(RefreshAborted {
                ceremony,
                outcome: RefreshAbortOutcome::Withdrew,
            }),
            Err(accord_protocol::engine::RefreshAbortError::ShareStored(_)) if abandon_pending => {
                match self.engine.abandon_refresh(now()) {
                    Some(ceremony) => Ok(RefreshAborted {
                        ceremony,
                        outcome: RefreshAbortOutcome::Abandoned,
                    }),
                    None => Err(accord_protocol::engine::RefreshAbortError::NotRunning),
                }
            }
            Err(e) => Err(e),
        };
        let drained = self.drain();
        let answer = answer(result, &drained);
        if let Ok(a) = &answer {
            warn!(ceremony = a.ceremony, outcome = ?a.outcome, "operator aborted a share refresh");
        }
        (answer, drained)
    }

    /// `POST /v1/repair`: asks `helpers` (default: the t lowest-numbered connected other
    /// members) to repair this member's lost share.
    pub(super) fn repair(
        &mut self,
        helpers: Option<Vec<u16>>,
    ) -> (
        Result<Vec<u16>, CeremonyCommandError>,
        Result<(), NodeError>,
    ) {
        let chosen = match self.repair_helpers(helpers) {
            Ok(h) => h,
            Err(refusal) => return (Err(refusal.into()), Ok(())),
        };
        let result = self
            .engine
            .request_repair(now(), Some(chosen.clone()), &mut self.rng);
        let drained = self.drain();
        let answer = answer(
            result.map(|()| chosen.iter().map(|m| m.0).collect()),
            &drained,
        );
        if answer.is_ok() {
            let names: Vec<&str> = chosen.iter().map(|m| self.name_of(*m)).collect();
            info!(helpers = ?names, "operator asked for this member's share to be repaired");
        }
        (answer, drained)
    }

    /// The helper set of a repair request: the operator's (sorted; the engine checks it is
    /// exactly t distinct other members), or the t lowest-numbered other members connected now.
    fn repair_helpers(
        &self,
        helpers: Option<Vec<u16>>,
    ) -> Result<Vec<MemberIndex>, CeremonyRefusal> {
        if self.engine.group_key().is_some() {
            return Err(CeremonyRefusal::HaveKeyShare);
        }
        let connected = |m: MemberIndex| self.peers.get(m).is_some_and(|p| p.is_connected());
        let chosen: Vec<MemberIndex> = match helpers {
            Some(list) => {
                let mut out = Vec::with_capacity(list.len().min(self.net.n()));
                for h in list {
                    let m = MemberIndex(h);
                    if !self.net.is_member(m) {
                        return Err(CeremonyRefusal::UnknownHelper(h));
                    }
                    out.push(m);
                }
                out.sort_unstable();
                out
            }
            None => {
                let out: Vec<MemberIndex> = self
                    .net
                    .members()
                    .filter(|m| *m != self.me && connected(*m))
                    .take(self.net.t())
                    .collect();
                if out.len() < self.net.t() {
                    let missing = self
                        .net
                        .members()
                        .filter(|m| *m != self.me && !connected(*m))
                        .map(|m| self.name_of(m).to_string())
                        .collect();
                    return Err(CeremonyRefusal::HelpersUnreachable(missing));
                }
                out
            }
        };
        // The engine checks the set's shape (exactly t distinct other members); a request to a
        // helper that is not connected would be dropped on the way.
        let unreachable: Vec<String> = chosen
            .iter()
            .filter(|m| **m != self.me && !connected(**m))
            .map(|m| self.name_of(*m).to_string())
            .collect();
        if !unreachable.is_empty() {
            return Err(CeremonyRefusal::HelpersUnreachable(unreachable));
        }
        Ok(chosen)
    }

    /// `GET /v1/ceremony`.
    pub(super) fn ceremony_status(&self) -> CeremonyStatus {
        let mut running = Vec::new();
        if let Some(phase) = self.engine.status().dkg_phase
            && phase != "done"
            && phase != "aborted"
        {
            running.push(RunningCeremony {
                kind: CeremonyKind::Dkg,
                ceremony: self.engine.last_ceremony(),
                phase,
                helpers: Vec::new(),
                answered: Vec::new(),
            });
        }
        if let Some((ceremony, phase)) = self.engine.running_refresh() {
            running.push(RunningCeremony {
                kind: CeremonyKind::Refresh,
                ceremony: Some(ceremony),
                phase: phase.to_string(),
                helpers: Vec::new(),
                answered: Vec::new(),
            });
        }
        if let Some(p) = self.engine.repair_progress() {
            running.push(RunningCeremony {
                kind: CeremonyKind::Repair,
                ceremony: None,
                phase: "asking".to_string(),
                helpers: p.helpers.iter().map(|m| m.0).collect(),
                answered: p.answered.iter().map(|m| m.0).collect(),
            });
        }
        let group_key = self.engine.group_key();
        CeremonyStatus {
            running,
            key_share: group_key.is_some(),
            group_key,
            known_group_key: self.engine.known_group_key(),
            last_dkg: self.engine.last_ceremony(),
            last_refresh: self.engine.last_refresh(),
            completed_refresh: self.engine.completed_refresh(),
            pending_refresh: self.engine.pending_refresh(),
        }
    }
}
