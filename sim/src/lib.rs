//! # accord-sim
//!
//! A deterministic discrete-event simulator for Accord networks. It drives the real protocol
//! engine ([`accord_protocol::Engine`], the same code the node runs; there is no separate model of
//! the protocol) for whole treaty networks, up to the 193 members of the UN, under a seeded
//! network model (latency distributions and a region matrix, bandwidth, loss, duplication,
//! reordering, partitions), crashes with restart from persisted records only, clock skew,
//! Byzantine members (the protocol's shared [`accord_testkit::adversary`] behaviours) and labs
//! that attest twice, late, or not at all.
//!
//! What it guarantees:
//! - **Reproducibility**: a run is a function of the scenario and one master seed. Every random
//!   choice comes from a child RNG derived from (seed, label, index, incarnation); events run in
//!   (virtual time, sequence) order; no clock is read and no hash map is iterated in the
//!   simulation. `--check-determinism` runs a seed twice and compares trace hashes.
//! - **Checked invariants**: the safety invariants of the design brief are checked as the run
//!   goes (see [`checker`]), liveness after the healed phase within the scenario's budget; the
//!   first violation stops the run and is reported with the command that replays it.
//!
//! Entry points: [`scenario::ScenarioFile`] to load a scenario, [`runner::run_row_seed`] to run
//! and judge one seed, [`report`] for tables, data files and plots. `docs/simulator.md` is the
//! user guide.

pub mod checker;
pub mod net;
pub mod profile;
pub mod queue;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod trace;
pub mod world;
