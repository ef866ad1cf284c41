//! The one event loop that owns the swarm and the engine (STYLE.md, rust-libp2p's file-sharing
//! example): it waits on the swarm, the [`Command`]s of the handles, the engine's next timeout
//! and its own timers, and hands each event to the part of the daemon that deals with it.
//!
//! Where events go: swarm events to `swarm.rs`, the engine's outputs to `effects.rs` (the only
//! place that performs them), engine events and status to `report.rs`, witnessing to
//! `witness.rs`, peer bookkeeping to `peers.rs`.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use accord_observer::wire::{Decision, Receipt};
use accord_protocol::Instant;
use accord_protocol::engine::Engine;
use accord_protocol::roster::{MemberIndex, Network};
use futures::StreamExt as _;
use libp2p::{PeerId, Swarm, gossipsub};
use tokio::sync::mpsc;
use tracing::info;

use super::error::NodeError;
use super::failpoint::{Faults, crash_timer};
use super::peers::Peers;
use super::witness::{WITNESS_INTERVAL, Witnessing};
use crate::clock::now;
use crate::handle::{Command, SubmitError};
use crate::keyfile;
use crate::metrics::{Metrics, ReasonLabel};
use crate::p2p::Behaviour;
use crate::store::Store;

/// How often disconnected members are considered for a redial.
const REDIAL_INTERVAL: Duration = Duration::from_millis(250);

/// The running node: everything the event loop owns.
pub(super) struct EventLoop {
    pub(super) engine: Engine,
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) store: Arc<Store>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) net: Arc<Network>,
    pub(super) me: MemberIndex,
    pub(super) peer_id: PeerId,
    pub(super) topic: gossipsub::IdentTopic,
    pub(super) peers: Peers,
    pub(super) witnessing: Witnessing,
    pub(super) faults: Faults,
    /// Where `Output::StoreKey` writes the key share, sealed with `passphrase` if set.
    pub(super) key_share: std::path::PathBuf,
    pub(super) passphrase: Option<keyfile::Passphrase>,
    /// A successor epoch's chain from the genesis (`succession.rs`).
    pub(super) chain_file: std::path::PathBuf,
    /// The highest DKG ceremony this member has seen (the default for the next one is + 1).
    pub(super) last_ceremony: u32,
    /// The latest co-signed units, newest last (for `status`).
    pub(super) recent: VecDeque<Decision>,
    pub(super) rng: rand::rngs::OsRng,
    pub(super) commands: mpsc::Receiver<Command>,
    /// Records taken from the engine and not yet committed (`effects.rs`).
    pub(super) unsynced: super::effects::Unsynced,
    /// While the engine adopts a succession: the chain's links from the genesis, logged with
    /// the adoption's record (`succession.rs`, `effects.rs`).
    pub(super) adopting: Option<Vec<accord_protocol::SignedSuccession>>,
}

impl EventLoop {
    /// Runs until `shutdown` completes or every handle is gone.
    ///
    /// # Errors
    /// A storage failure while performing the engine's outputs: the node stops before anything
    /// else leaves.
    pub(super) async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        let mut witness = tokio::time::interval(WITNESS_INTERVAL);
        witness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_deadline: Option<Instant> = None;
        loop {
            let deadline = self.engine.poll_timeout();
            let mut wait = deadline.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(now())
                    .min(Duration::from_secs(1))
            });
            // Never spin if the engine keeps asking for the same past deadline.
            if deadline.is_some() && deadline == last_deadline {
                wait = wait.max(Duration::from_millis(20));
            }
            let timer = tokio::time::sleep(wait);
            tokio::select! {
                () = &mut shutdown => {
                    info!("shutdown requested");
                    return Ok(());
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event)?,
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c)?,
                    None => return Ok(()),
                },
                () = crash_timer(self.faults.crash_at()) => Faults::crash_now(),
                () = timer => {
                    last_deadline = deadline;
                    let t = now();
                    self.engine.handle_timeout(t, &mut self.rng);
                    self.drain()?;
                }
                _ = redial.tick() => self.peers.redial(&mut self.swarm, tokio::time::Instant::now()),
                _ = witness.tick() => {
                    self.witnessing.push_checkpoint(
                        &mut self.swarm.behaviour_mut().witness,
                        &self.store,
                        &self.peers,
                    );
                    let _ = self.gossip_scores();
                }
            }
        }
    }

    /// A request from a [`crate::handle::Handle`]. Outputs are performed (and so made durable)
    /// before the answer goes back.
    fn on_command(&mut self, command: Command) -> Result<(), NodeError> {
        match command {
            Command::Submit { evidence, reply } => {
                let period = evidence.period().0;
                let lab = evidence.lab().to_string();
                let digest = evidence.digest();
                let known = self.engine.evidence(&digest).is_some();
                let result = self.engine.submit(now(), *evidence);
                // Perform the outputs (the Persist first) before acknowledging.
                let drained = self.drain();
                let answer = match (result, &drained) {
                    (Ok(digest), Ok(())) => {
                        self.metrics
                            .submissions
                            .get_or_create(&ReasonLabel {
                                reason: if known { "duplicate" } else { "accepted" }.into(),
                            })
                            .inc();
                        Ok(Receipt {
                            digest,
                            period,
                            lab,
                            duplicate: known,
                        })
                    }
                    (Ok(_), Err(e)) => Err(SubmitError::Storage(e.to_string())),
                    (Err(e), _) => {
                        self.metrics
                            .submissions
                            .get_or_create(&ReasonLabel {
                                reason: "refused".into(),
                            })
                            .inc();
                        Err(SubmitError::Evidence(e))
                    }
                };
                let _ = reply.send(answer);
                drained
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
                Ok(())
            }
            Command::StartDkg { ceremony, reply } => {
                let (answer, drained) = self.start_dkg(ceremony);
                let _ = reply.send(answer);
                drained
            }
            Command::StartRefresh { ceremony, reply } => {
                let (answer, drained) = self.start_refresh(ceremony);
                let _ = reply.send(answer);
                drained
            }
            Command::AbortRefresh {
                abandon_pending,
                reply,
            } => {
                let (answer, drained) = self.abort_refresh(abandon_pending);
                let _ = reply.send(answer);
                drained
            }
            Command::Repair { helpers, reply } => {
                let (answer, drained) = self.repair(helpers);
                let _ = reply.send(answer);
                drained
            }
            Command::Ceremony { reply } => {
                let _ = reply.send(self.ceremony_status());
                Ok(())
            }
            Command::ApproveSuccession { proposal, reply } => {
                let (answer, drained) = self.approve_succession(*proposal);
                let _ = reply.send(answer);
                drained
            }
            Command::WithdrawSuccession { reply } => {
                let (answer, drained) = self.withdraw_succession();
                let _ = reply.send(answer);
                drained
            }
            Command::AdoptSuccession { chain, reply } => {
                let (answer, drained) = self.adopt_succession(&chain);
                let _ = reply.send(answer);
                drained
            }
            Command::Succession { reply } => {
                let _ = reply.send(self.succession_report());
                Ok(())
            }
            Command::Chain { reply } => {
                let _ = reply.send(self.chain_export());
                Ok(())
            }
            Command::KeyConfirmations { reply } => {
                let _ = reply.send(self.key_confirmations());
                Ok(())
            }
        }
    }

    /// A member's roster name, for logs.
    pub(super) fn name_of(&self, m: MemberIndex) -> &str {
        self.net
            .roster()
            .members
            .get(usize::from(m.0))
            .map_or("?", |x| x.name.as_str())
    }
}
