//! The way into a running node: a [`Handle`] with one typed async method per request, over a
//! bounded channel of (crate-private) `Command`s to the one event loop that owns the swarm and
//! the engine (rust-libp2p's file-sharing example: its `Client`).
//!
//! The HTTP API holds a `Handle`; nothing else reaches the engine. A `Handle` never waits for
//! room in the channel: when [`COMMAND_QUEUE`] commands are waiting, a request is refused at
//! once ([`Unavailable::Busy`]) instead of piling up behind the event loop.

use accord_observer::chain::ChainExport;
use accord_observer::wire::{
    CeremonyStatus, KeyConfirmations, Receipt, RefreshAborted, StatusReport, SuccessionAdopted,
    SuccessionRef, SuccessionReport,
};
use accord_protocol::engine::{DkgStartError, RefreshAbortError, RefreshStartError, RepairError};
use accord_protocol::evidence::{Evidence, EvidenceError};
use accord_protocol::succession::SuccessionProposal;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Capacity of the command channel from the handles to the event loop.
pub const COMMAND_QUEUE: usize = 256;

/// Why the event loop did not take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Unavailable {
    /// The command queue is full.
    #[error("the node's command queue is full; retry later")]
    Busy,
    /// The event loop has stopped (or is stopping) and will not answer.
    #[error("the node is stopping")]
    Stopping,
}

/// Why a submission was refused.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The engine refused the evidence.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// The node's storage failed; nothing is acknowledged.
    #[error("storage failed; the node no longer accepts submissions: {0}")]
    Storage(String),
    /// The event loop did not take the request.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Why the node refused a key-ceremony command (nothing changed).
#[derive(Debug, Error)]
pub enum CeremonyRefusal {
    /// The engine refused to start a DKG.
    #[error(transparent)]
    Dkg(#[from] DkgStartError),
    /// The engine refused to start a refresh.
    #[error(transparent)]
    Refresh(#[from] RefreshStartError),
    /// The engine refused to abort a refresh.
    #[error(transparent)]
    Abort(#[from] RefreshAbortError),
    /// The engine refused the repair's helper set.
    #[error(transparent)]
    Repair(#[from] RepairError),
    /// A repair was asked for while this member holds a key share in use.
    #[error(
        "this member holds a key share in use; a repair is for a member whose key share file was lost"
    )]
    HaveKeyShare,
    /// A helper is not a member of the roster.
    #[error("helper {0} is not a member index of the roster")]
    UnknownHelper(u16),
    /// Helpers that are not connected now (the request would not reach them).
    #[error(
        "helpers not connected to this node: {}; wait until they are (accord status) or choose others",
        .0.join(", ")
    )]
    HelpersUnreachable(Vec<String>),
    /// The engine refused a succession command (`docs/protocol.md` §22.7).
    #[error(transparent)]
    Succession(#[from] accord_protocol::engine::SuccessionError),
    /// A chain handed to a successor epoch does not verify, or does not end at this epoch.
    #[error("the chain: {0}")]
    Chain(String),
    /// This member holds no key yet (no confirmations to show).
    #[error("no confirmed key yet: the DKG has not completed here")]
    NoKey,
}

impl CeremonyRefusal {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Dkg(_) => "dkg-refused",
            Self::Refresh(_) => "refresh-refused",
            Self::Abort(_) => "abort-refused",
            Self::Repair(_)
            | Self::HaveKeyShare
            | Self::UnknownHelper(_)
            | Self::HelpersUnreachable(_) => "repair-refused",
            Self::Succession(e) => e.code(),
            Self::Chain(_) => "chain-invalid",
            Self::NoKey => "no-group-key",
        }
    }
}

/// Why a key-ceremony command (DKG, refresh, repair) failed.
#[derive(Debug, Error)]
pub enum CeremonyCommandError {
    /// Refused; nothing changed.
    #[error(transparent)]
    Refused(#[from] CeremonyRefusal),
    /// Storage failed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The event loop did not take the request.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// A request to the event loop, with the channel for its answer.
///
/// Crate-private: only [`Handle`]'s methods build these, and only the daemon's event loop
/// (`crate::daemon`) takes them apart.
#[derive(Debug)]
pub(crate) enum Command {
    /// Submit evidence; the reply comes once it is durable.
    Submit {
        /// The item.
        evidence: Box<Evidence>,
        /// The reply.
        reply: oneshot::Sender<Result<Receipt, SubmitError>>,
    },
    /// Report status.
    Status {
        /// The reply.
        reply: oneshot::Sender<StatusReport>,
    },
    /// Start a DKG ceremony.
    StartDkg {
        /// The ceremony number (default: one more than the last this member saw).
        ceremony: Option<u32>,
        /// The reply.
        reply: oneshot::Sender<Result<u32, CeremonyCommandError>>,
    },
    /// Start a share refresh.
    StartRefresh {
        /// The ceremony number (default: one more than the last refresh this member saw).
        ceremony: Option<u32>,
        /// The reply.
        reply: oneshot::Sender<Result<u32, CeremonyCommandError>>,
    },
    /// Abort the running refresh (or, with `abandon_pending`, drop a pending refreshed share).
    AbortRefresh {
        /// Drop a refreshed share awaiting confirmations.
        abandon_pending: bool,
        /// The reply.
        reply: oneshot::Sender<Result<RefreshAborted, CeremonyCommandError>>,
    },
    /// Ask helpers to repair this member's lost share.
    Repair {
        /// The helpers (default: the engine's choice).
        helpers: Option<Vec<u16>>,
        /// The reply: the helpers asked.
        reply: oneshot::Sender<Result<Vec<u16>, CeremonyCommandError>>,
    },
    /// Report the key ceremonies.
    Ceremony {
        /// The reply.
        reply: oneshot::Sender<CeremonyStatus>,
    },
    /// The operator approves a succession.
    ApproveSuccession {
        /// The proposal.
        proposal: Box<SuccessionProposal>,
        /// The reply.
        reply: oneshot::Sender<Result<SuccessionRef, CeremonyCommandError>>,
    },
    /// The operator withdraws its approval.
    WithdrawSuccession {
        /// The reply.
        reply: oneshot::Sender<Result<SuccessionRef, CeremonyCommandError>>,
    },
    /// A successor epoch's operator hands it the chain that ends with its succession.
    AdoptSuccession {
        /// The chain.
        chain: Box<ChainExport>,
        /// The reply.
        reply: oneshot::Sender<Result<SuccessionAdopted, CeremonyCommandError>>,
    },
    /// Report the membership change.
    Succession {
        /// The reply.
        reply: oneshot::Sender<SuccessionReport>,
    },
    /// The chain this member knows.
    Chain {
        /// The reply.
        reply: oneshot::Sender<Result<ChainExport, CeremonyCommandError>>,
    },
    /// The roster and the signed confirmations of this member's key.
    KeyConfirmations {
        /// The reply.
        reply: oneshot::Sender<Result<KeyConfirmations, CeremonyCommandError>>,
    },
}

/// A cloneable handle to the running node's event loop.
#[derive(Clone, Debug)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
}

/// A handle and the receiving end its commands arrive at (for the event loop).
pub(crate) fn channel() -> (Handle, mpsc::Receiver<Command>) {
    let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
    (Handle { commands }, rx)
}

impl Handle {
    /// Sends the command `make` builds and waits for its answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Unavailable> {
        let (tx, rx) = oneshot::channel();
        self.commands.try_send(make(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Unavailable::Busy,
            mpsc::error::TrySendError::Closed(_) => Unavailable::Stopping,
        })?;
        rx.await.map_err(|_| Unavailable::Stopping)
    }

    /// Submits one evidence item; the receipt means it is durable here.
    ///
    /// # Errors
    /// The engine refused the item, storage failed, or the event loop did not take it.
    pub async fn submit(&self, evidence: Evidence) -> Result<Receipt, SubmitError> {
        self.ask(|reply| Command::Submit {
            evidence: Box::new(evidence),
            reply,
        })
        .await?
    }

    /// A snapshot of the node.
    ///
    /// # Errors
    /// The event loop did not take the request.
    pub async fn status(&self) -> Result<StatusReport, Unavailable> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Starts DKG ceremony `ceremony` (default: one more than the last this member saw);
    /// returns the ceremony number.
    ///
    /// # Errors
    /// The engine refused, storage failed, or the event loop did not take the request.
    pub async fn start_dkg(&self, ceremony: Option<u32>) -> Result<u32, CeremonyCommandError> {
        self.ask(|reply| Command::StartDkg { ceremony, reply })
            .await?
    }

    /// Starts share refresh `ceremony` (default: one more than the last refresh this member
    /// saw); returns the ceremony number.
    ///
    /// # Errors
    /// The engine refused, storage failed, or the event loop did not take the request.
    pub async fn start_refresh(&self, ceremony: Option<u32>) -> Result<u32, CeremonyCommandError> {
        self.ask(|reply| Command::StartRefresh { ceremony, reply })
            .await?
    }

    /// Aborts the refresh running here; with `abandon_pending`, drops a refreshed share that
    /// awaits its confirmations instead.
    ///
    /// # Errors
    /// Nothing to abort, a share stored (without `abandon_pending`), storage failed, or the
    /// event loop did not take the request.
    pub async fn abort_refresh(
        &self,
        abandon_pending: bool,
    ) -> Result<RefreshAborted, CeremonyCommandError> {
        self.ask(|reply| Command::AbortRefresh {
            abandon_pending,
            reply,
        })
        .await?
    }

    /// Asks `helpers` (default: the t lowest-numbered other members) to repair this member's
    /// lost key share; returns the helpers asked.
    ///
    /// # Errors
    /// A share in use, a bad or unreachable helper set, storage failed, or the event loop did
    /// not take the request.
    pub async fn repair(
        &self,
        helpers: Option<Vec<u16>>,
    ) -> Result<Vec<u16>, CeremonyCommandError> {
        self.ask(|reply| Command::Repair { helpers, reply }).await?
    }

    /// This member's key ceremonies and key share.
    ///
    /// # Errors
    /// The event loop did not take the request.
    pub async fn ceremony(&self) -> Result<CeremonyStatus, Unavailable> {
        self.ask(|reply| Command::Ceremony { reply }).await
    }

    /// The operator approves `proposal` (`docs/protocol.md` §22.7).
    ///
    /// # Errors
    /// The engine refused, storage failed, or the event loop did not take the request.
    pub async fn approve_succession(
        &self,
        proposal: SuccessionProposal,
    ) -> Result<SuccessionRef, CeremonyCommandError> {
        let proposal = Box::new(proposal);
        self.ask(|reply| Command::ApproveSuccession { proposal, reply })
            .await?
    }

    /// The operator withdraws its approval (only before a share of it left).
    ///
    /// # Errors
    /// Nothing approved, bound, storage failed, or the event loop did not take the request.
    pub async fn withdraw_succession(&self) -> Result<SuccessionRef, CeremonyCommandError> {
        self.ask(|reply| Command::WithdrawSuccession { reply })
            .await?
    }

    /// A successor epoch adopts the chain that ends with its succession.
    ///
    /// # Errors
    /// The chain does not verify or does not hand over to this epoch, storage failed, or the
    /// event loop did not take the request.
    pub async fn adopt_succession(
        &self,
        chain: ChainExport,
    ) -> Result<SuccessionAdopted, CeremonyCommandError> {
        let chain = Box::new(chain);
        self.ask(|reply| Command::AdoptSuccession { chain, reply })
            .await?
    }

    /// What this member knows of a membership change.
    ///
    /// # Errors
    /// The event loop did not take the request.
    pub async fn succession(&self) -> Result<SuccessionReport, Unavailable> {
        self.ask(|reply| Command::Succession { reply }).await
    }

    /// The succession chain this member knows, from the genesis.
    ///
    /// # Errors
    /// No group key yet, an unreadable stored chain, or the event loop did not take the
    /// request.
    pub async fn chain(&self) -> Result<ChainExport, CeremonyCommandError> {
        self.ask(|reply| Command::Chain { reply }).await?
    }

    /// The roster and every member's signed confirmation of this member's key.
    ///
    /// # Errors
    /// No confirmed key yet, or the event loop did not take the request.
    pub async fn key_confirmations(&self) -> Result<KeyConfirmations, CeremonyCommandError> {
        self.ask(|reply| Command::KeyConfirmations { reply })
            .await?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_a_gone_loop_is_stopping() {
        let (handle, mut rx) = channel();
        // Fill the queue with requests nobody answers yet.
        let mut waiting = Vec::new();
        for _ in 0..COMMAND_QUEUE {
            let h = handle.clone();
            waiting.push(tokio::spawn(async move { h.status().await }));
        }
        while handle.commands.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(handle.status().await.unwrap_err(), Unavailable::Busy);
        // Take one command and drop its reply: that request learns the node is stopping.
        let Some(Command::Status { reply }) = rx.recv().await else {
            panic!("a status command")
        };
        drop(reply);
        drop(rx);
        for w in waiting {
            assert_eq!(w.await.unwrap().unwrap_err(), Unavailable::Stopping);
        }
        assert_eq!(handle.status().await.unwrap_err(), Unavailable::Stopping);
    }
}
