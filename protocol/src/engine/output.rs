//! What the engine asks of its driver: [`Output`]s to perform in order, and the [`Event`]s it
//! reports (for metrics, logs and the API).

use std::sync::Arc;

use crate::crypto::Digest;
use crate::crypto::PublicKey;
use crate::dkg::{DkgFailure, KeyMaterial};
use crate::message::{Message, ProposalId};
use crate::roster::{LabIndex, MemberIndex, Period};
use crate::statement::CoSigned;
use crate::succession::SignedSuccession;

use super::error::{MessageError, Offence};
use super::record::Record;

/// Something the driver must do, in order.
#[derive(Debug)]
pub enum Output {
    /// Send to one member over an authenticated channel.
    Send {
        /// The member.
        to: MemberIndex,
        /// The message.
        message: Message,
    },
    /// Send to every member (gossip).
    Broadcast(Message),
    /// Make this record durable before performing any later output.
    Persist(Record),
    /// Replace every record persisted so far by these, atomically, before performing any later
    /// output: [`Engine::restore`] from them rebuilds the same member (the record log's
    /// compaction; emitted when old periods are pruned, so storage and restart time stay
    /// bounded).
    Snapshot(Vec<Record>),
    /// Store this member's new key share in its key file before performing any later output.
    StoreKey(Box<KeyMaterial>),
    /// Something happened (for metrics, logs, the API).
    Event(Event),
    /// Store (or, with `None`, delete) this member's pending key file before performing any
    /// later output: a refreshed share not yet confirmed by every member, kept beside the key
    /// file (which still holds the share in use) and given back to
    /// [`crate::engine::Engine::restore_with_pending`] after a restart (`docs/protocol.md` §22.5).
    StorePendingKey(Option<Box<KeyMaterial>>),
}

/// Something worth telling the operator or the metrics.
#[derive(Clone, Debug)]
pub enum Event {
    /// An evidence item was admitted.
    Admitted {
        /// Its digest.
        digest: Digest,
        /// Its slot's period.
        period: Period,
        /// Its slot's lab.
        lab: LabIndex,
    },
    /// This member closed a period and signed its observation.
    Observed {
        /// The period.
        period: Period,
        /// Items it vouches for.
        items: usize,
    },
    /// This member, as coordinator, proposed.
    Proposed {
        /// The proposal.
        id: ProposalId,
    },
    /// This member, as coordinator, started a signing session.
    SessionStarted {
        /// The proposal.
        id: ProposalId,
        /// The session number.
        session: u32,
        /// The signers.
        signers: Vec<MemberIndex>,
    },
    /// A unit was co-signed (or a larger statement for it arrived).
    Decided(Arc<CoSigned>),
    /// A validly co-signed unit that conflicts with the one held (neither evidence set contains
    /// the other): invariant 3 is broken, so more than f members are faulty.
    Conflict(Arc<CoSigned>),
    /// A member misbehaved, provably or as seen on its authenticated connection.
    Culprit {
        /// The member.
        member: MemberIndex,
        /// What it did.
        offence: Offence,
    },
    /// This member refused to sign something (it is never a signing oracle).
    Refused {
        /// The member that asked.
        from: MemberIndex,
        /// Why.
        reason: MessageError,
    },
    /// A DKG ceremony started here.
    DkgStarted {
        /// The ceremony.
        ceremony: u32,
    },
    /// Every member confirmed the same group key.
    DkgComplete {
        /// The group key.
        group_key: PublicKey,
    },
    /// A DKG ceremony aborted.
    DkgAborted(DkgFailure),
    /// A refresh ceremony started (or was joined) here.
    RefreshStarted {
        /// The ceremony.
        ceremony: u32,
    },
    /// Every member confirmed the refreshed shares; this member signs with its new share.
    RefreshComplete {
        /// The ceremony.
        ceremony: u32,
        /// The group key (unchanged).
        group_key: PublicKey,
    },
    /// A refresh ceremony aborted; the current shares stay in use.
    RefreshAborted(DkgFailure),
    /// This member asked t helpers to repair its lost share.
    RepairRequested,
    /// This member helps `member` repair its share (operators should expect it: a member asks
    /// only after it lost its key file).
    RepairHelped {
        /// The member whose share is repaired.
        member: MemberIndex,
    },
    /// This member's share is repaired and in use.
    Repaired {
        /// The group key.
        group_key: PublicKey,
    },
    /// The repair's answers did not give a valid share; ask again (other helpers if it
    /// persists).
    RepairFailed {
        /// What was wrong.
        reason: &'static str,
    },
    /// A coordinator offered a succession; this member's operator has not approved it.
    SuccessionOffered {
        /// The coordinator.
        from: MemberIndex,
        /// The succession's digest.
        succession: Digest,
        /// Its first period.
        first_period: Period,
    },
    /// This member's operator approved a succession (this member's lock is persisted).
    SuccessionApproved {
        /// The succession's digest.
        succession: Digest,
        /// Its first period.
        first_period: Period,
    },
    /// An approval lapsed (its first period closed first) or was withdrawn; this epoch keeps
    /// deciding.
    SuccessionLapsed {
        /// The succession's digest.
        succession: Digest,
    },
    /// The succession is co-signed: this epoch decides no period from its first on.
    SuccessionCoSigned(Arc<SignedSuccession>),
    /// Two different validly co-signed successions of this epoch: more than f members are
    /// faulty (the first one stays).
    SuccessionFork([Arc<SignedSuccession>; 2]),
}
