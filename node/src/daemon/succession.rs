//! The operator's membership-change commands (`docs/protocol.md` §22.7,
//! `docs/operations.md`): approving and withdrawing a succession (the handing epoch), adopting
//! the chain that ends with this epoch's succession (a successor epoch), and what observers and
//! proposers read: the chain this member knows and the confirmations of its key. The engine
//! decides; this file keeps the successor's chain from the genesis in `chain.json`, written
//! durably once the engine's record of the adoption is. The chain's links enter this member's
//! transparency log in the transaction that stores that record (`effects.rs`), as the handing
//! epoch's co-signed succession does with its own.

use accord_observer::chain::{ChainExport, LinkExport, MAX_CHAIN_FILE_BYTES};
use accord_observer::wire::{KeyConfirmations, SuccessionAdopted, SuccessionRef, SuccessionReport};
use accord_protocol::succession::{SignedSuccession, SuccessionProposal};
use accord_protocol::verify::TrustBundle;
use tracing::{info, warn};

use super::ceremony::answer;
use super::error::NodeError;
use super::event_loop::EventLoop;
use crate::clock::now;
use crate::handle::{CeremonyCommandError, CeremonyRefusal};

/// A successor epoch's chain from the genesis, in its data directory.
pub(super) const CHAIN_FILE: &str = "chain.json";

type Answer<T> = (Result<T, CeremonyCommandError>, Result<(), NodeError>);

impl EventLoop {
    /// `POST /v1/succession/approve`.
    pub(super) fn approve_succession(
        &mut self,
        proposal: SuccessionProposal,
    ) -> Answer<SuccessionRef> {
        let first_period = proposal.succession.first_period.0;
        let result = self
            .engine
            .approve_succession(now(), proposal, &mut self.rng)
            .map(|succession| SuccessionRef {
                succession,
                first_period,
            });
        let drained = self.drain();
        let answer = answer(result, &drained);
        if let Ok(r) = &answer {
            info!(succession = %r.succession, first_period, "operator approved a succession");
        }
        (answer, drained)
    }

    /// `POST /v1/succession/withdraw`.
    pub(super) fn withdraw_succession(&mut self) -> Answer<SuccessionRef> {
        let first_period = self
            .engine
            .succession_status()
            .approved
            .map_or(0, |(_, p)| p.0);
        let result = self
            .engine
            .withdraw_succession(now())
            .map(|succession| SuccessionRef {
                succession,
                first_period,
            });
        let drained = self.drain();
        let answer = answer(result, &drained);
        if let Ok(r) = &answer {
            warn!(succession = %r.succession, "operator withdrew its succession approval");
        }
        (answer, drained)
    }

    /// `POST /v1/succession/adopt`: `chain` must verify from its genesis and end at this
    /// epoch; the engine checks the last link against the epoch before it.
    pub(super) fn adopt_succession(&mut self, chain: &ChainExport) -> Answer<SuccessionAdopted> {
        let refuse = |m: String| (Err(CeremonyRefusal::Chain(m).into()), Ok(()));
        let followed = match chain.follow() {
            Ok(c) => c,
            Err(e) => return refuse(e.to_string()),
        };
        let epochs = followed.epochs();
        let (Some(last), Some(link)) = (epochs.last(), chain.links.last()) else {
            return refuse("it has no succession".into());
        };
        if last.bundle.network_id != *self.net.id() {
            return refuse(format!(
                "it ends at network {}, not this one ({})",
                last.bundle.network_id,
                self.net.id()
            ));
        }
        let previous = &epochs[epochs.len() - 2].bundle;
        let links = match chain
            .links
            .iter()
            .map(LinkExport::signed)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(l) => l,
            Err(e) => return refuse(e.to_string()),
        };
        let signed = match link.signed() {
            Ok(s) => s,
            Err(e) => return refuse(e.to_string()),
        };
        // The whole chain is logged with the adoption's record (`effects.rs`, `persist`).
        self.adopting = Some(links.clone());
        let result = self.engine.adopt_succession(now(), signed, previous);
        let drained = self.drain();
        self.adopting = None;
        let mut answer = answer(
            result.map(|()| SuccessionAdopted {
                first_period: last.first_period.0,
                epochs: epochs.len(),
            }),
            &drained,
        );
        // The adoption is durable; the chain file only lets this member serve the chain. A
        // failed write is reported and a repeated adopt writes it again.
        if answer.is_ok()
            && let Err(e) = self.write_chain(chain)
        {
            answer = Err(CeremonyCommandError::Storage(e));
        }
        // Adopting again (a no-op for the engine) enters any link the log still lacks.
        if answer.is_ok()
            && let Err(e) = self.store.log_successions(&links)
        {
            answer = Err(CeremonyCommandError::Storage(e.to_string()));
        }
        if let Ok(a) = &answer {
            info!(
                first_period = a.first_period,
                epochs = a.epochs,
                "succession adopted: this epoch decides from first_period on"
            );
        }
        (answer, drained)
    }

    /// At start: enters in the transparency log the succession links this member holds that it
    /// has not logged (a data directory of a build that did not log them): its co-signed
    /// succession, and the adopted chain from the genesis (only the adopted link if `chain.json`
    /// is missing or does not end with it).
    ///
    /// # Errors
    /// A storage failure.
    pub(super) fn log_held_successions(&self) -> Result<(), NodeError> {
        let status = self.engine.succession_status();
        let mut links: Vec<SignedSuccession> = Vec::new();
        if let Some(adopted) = &status.adopted {
            let chain = self
                .stored_chain()
                .ok()
                .flatten()
                .filter(|c| c.follow().is_ok())
                .and_then(|c| {
                    c.links
                        .iter()
                        .map(LinkExport::signed)
                        .collect::<Result<Vec<_>, _>>()
                        .ok()
                })
                .filter(|l| l.last() == Some(&**adopted));
            match chain {
                Some(chain) => links.extend(chain),
                None => {
                    warn!(
                        "chain.json does not hold the adopted chain; logging the adopted link only"
                    );
                    links.push((**adopted).clone());
                }
            }
        }
        if let Some(done) = &status.handed_over {
            links.push((**done).clone());
        }
        if links.is_empty() {
            return Ok(());
        }
        let added = self.store.log_successions(&links)?;
        if added > 0 {
            info!(
                added,
                "succession links held from before entered in the transparency log"
            );
        }
        Ok(())
    }

    fn write_chain(&self, chain: &ChainExport) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(chain).map_err(|e| e.to_string())?;
        crate::keyfile::write_durably(&self.chain_file, &text, 0o644)
            .map_err(|(path, e)| format!("{}: {e}", path.display()))
    }

    /// The chain stored at adoption (a successor epoch), if any.
    fn stored_chain(&self) -> Result<Option<ChainExport>, String> {
        if !self.chain_file.exists() {
            return Ok(None);
        }
        let text = accord_observer::verify::read_capped(&self.chain_file, MAX_CHAIN_FILE_BYTES)
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", self.chain_file.display()))
    }

    /// `GET /v1/chain`: from the genesis to this epoch (and its successor, once co-signed).
    pub(super) fn chain_export(&self) -> Result<ChainExport, CeremonyCommandError> {
        let status = self.engine.succession_status();
        let mut chain = match (&status.adopted, self.stored_chain()) {
            (Some(_), Ok(Some(chain))) => chain,
            (Some(_), Ok(None)) => {
                return Err(CeremonyCommandError::Storage(format!(
                    "the adopted chain is missing from {}: run `accord succession adopt` again",
                    self.chain_file.display()
                )));
            }
            (_, Err(e)) => return Err(CeremonyCommandError::Storage(e)),
            (None, Ok(_)) => {
                let group_key = self
                    .engine
                    .group_key()
                    .or(self.engine.known_group_key())
                    .ok_or(CeremonyRefusal::NoKey)?;
                ChainExport::new(TrustBundle::new(&self.net, group_key), [])
            }
        };
        if let Some(done) = &status.handed_over {
            chain.links.push(LinkExport::new(done));
        }
        Ok(chain)
    }

    /// `GET /v1/succession`.
    pub(super) fn succession_report(&self) -> SuccessionReport {
        let s = self.engine.succession_status();
        let r = |(succession, p): (accord_protocol::crypto::Digest, accord_protocol::Period)| {
            SuccessionRef {
                succession,
                first_period: p.0,
            }
        };
        SuccessionReport {
            epoch_start: self.engine.epoch_start().map(|p| p.0),
            approved: s.approved.map(r),
            bound: s.bound,
            coordinating: s.coordinating,
            offered: s.offered.into_iter().map(r).collect(),
            handed_over: s.handed_over.as_deref().map(LinkExport::new),
            adopted: s.adopted.as_deref().map(LinkExport::new),
        }
    }

    /// `GET /v1/dkg/confirmations`.
    pub(super) fn key_confirmations(&self) -> Result<KeyConfirmations, CeremonyCommandError> {
        let confirmations = self
            .engine
            .key_confirmations()
            .ok_or(CeremonyRefusal::NoKey)?
            .to_vec();
        Ok(KeyConfirmations {
            roster: self.net.roster().clone(),
            confirmations,
        })
    }
}
