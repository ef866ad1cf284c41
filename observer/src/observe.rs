//! `accord observe`: an independent observer of the members' transparency logs.
//!
//! For every node given it fetches the signed checkpoint, checks the log's signature and the
//! witness cosignatures (at least k), downloads the entries and rebuilds the tree (so every
//! entry is included in the checkpoint), verifies every logged statement under the trust bundle
//! and every logged succession on the chain from it, and checks that every statement and every
//! succession link the node serves is in its log. Across nodes it compares each log with what the
//! other members cosigned for it as witnesses (split view), the slots (a verdict one node has and
//! another lacks, or two unordered verdicts), and the successions (two successors of one epoch in
//! any logs or served chains).
//! Over time it keeps the last checkpoint of each log in a state file and requires a
//! consistency proof from it (a rewritten or rolled-back log).
//!
//! Nodes are not trusted: every answer is size-capped, parsed into typed errors, and checked.

use std::collections::BTreeMap;
use std::path::Path;

use accord_protocol::crypto::Digest;
use accord_protocol::statement::{MerkleTree, SignedStatement, Slot};
use accord_protocol::succession::SignedSuccession;
use accord_protocol::transparency::{
    LogLeaf, MAX_NOTE_BYTES, VerifiedCheckpoint, check_consistency, check_inclusion,
    decode_log_leaf, leaf_hash, log_entry, succession_log_entry, verify_checkpoint,
};
use accord_protocol::verify::TrustBundle;
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientError};
use crate::export::StatementExport;
use crate::wire::{ConsistencyProof, InclusionProof, LeafIndex, LogEntry, WitnessState};

/// Most entries downloaded from one log.
pub const MAX_LOG_ENTRIES: u64 = 1_000_000;

/// What the observer requires of every log's checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct Requirements {
    /// Valid witness cosignatures (by other members) the checkpoint must carry.
    pub witnesses: usize,
    /// Of those, how recent (seconds before `now`) the cosignatures' timestamps must be: a
    /// node serving a stale checkpoint could be hiding newer entries. Members have an unchanged
    /// checkpoint cosigned again every 10 minutes, so an honest node's are younger than that
    /// plus the time it takes to reach its witnesses. `None`: no freshness check.
    pub max_age_secs: Option<u64>,
    /// The observer's clock, POSIX seconds.
    pub now_secs: u64,
}

/// What the observer remembers between runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ObserverState {
    /// The last checkpoint accepted per log origin.
    pub logs: BTreeMap<String, SeenCheckpoint>,
}

/// One remembered checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeenCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Digest,
    /// The signed note, kept as evidence.
    pub note: String,
}

impl ObserverState {
    /// Loads the state file (an absent file is an empty state).
    ///
    /// # Errors
    /// An unreadable or malformed file.
    pub fn load(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = crate::verify::read_capped(path, 64 * 1024 * 1024).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the state file atomically (temporary file, fsync, rename).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::io::Write as _;
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One problem the observer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A node could not be reached or gave an unusable answer.
    Unreachable {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A checkpoint or entry failed its signature or format checks.
    BadLog {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// Fewer recent witness cosignatures than required.
    StaleCheckpoint {
        /// The node.
        node: String,
        /// Cosignatures within the age bound.
        fresh: usize,
        /// Required.
        required: usize,
        /// The bound, in seconds.
        max_age_secs: u64,
    },
    /// Fewer witness cosignatures than required.
    TooFewWitnesses {
        /// The node.
        node: String,
        /// Valid cosignatures.
        found: usize,
        /// Required.
        required: usize,
    },
    /// The log is not an extension of the checkpoint seen earlier.
    RewrittenLog {
        /// The node.
        node: String,
        /// Details.
        detail: String,
    },
    /// The log shows the observer a different tree than it showed a witness.
    SplitView {
        /// The log's node.
        node: String,
        /// The witness that holds the other view.
        witness: String,
        /// Details.
        detail: String,
    },
    /// A statement the node serves is not in its log.
    NotLogged {
        /// The node.
        node: String,
        /// The slot.
        slot: Slot,
    },
    /// A succession link the node serves in its chain is not in its log.
    LinkNotLogged {
        /// The node.
        node: String,
        /// The succession's digest.
        succession: Digest,
    },
    /// A slot has a verdict in one node's log and none in another's.
    MissingSlot {
        /// The slot.
        slot: Slot,
        /// Where it is.
        present_on: String,
        /// Where it is not.
        missing_on: String,
    },
    /// Two co-signed statements for one slot are not ordered by evidence inclusion.
    ConflictingVerdicts {
        /// The slot.
        slot: Slot,
        /// One node.
        a: String,
        /// The other.
        b: String,
    },
    /// A node's succession chain does not verify from the pinned trust bundle.
    BadChain {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// Two validly co-signed successions of one epoch, as served by the nodes (more than f
    /// members of that epoch are faulty; `docs/protocol.md` §22.7).
    ForkedChain {
        /// The epoch (0 is the genesis).
        epoch: usize,
        /// One succession's digest.
        first: accord_protocol::crypto::Digest,
        /// The other's.
        second: accord_protocol::crypto::Digest,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slot = |s: &Slot| format!("period {} lab {}", s.period.0, s.lab);
        match self {
            Finding::Unreachable { node, reason } => write!(f, "UNREACHABLE {node}: {reason}"),
            Finding::BadLog { node, reason } => write!(f, "BAD LOG {node}: {reason}"),
            Finding::TooFewWitnesses {
                node,
                found,
                required,
            } => write!(
                f,
                "TOO FEW WITNESSES {node}: {found} valid cosignatures, {required} required"
            ),
            Finding::StaleCheckpoint {
                node,
                fresh,
                required,
                max_age_secs,
            } => write!(
                f,
                "STALE CHECKPOINT {node}: {fresh} cosignatures younger than {max_age_secs} s, {required} required"
            ),
            Finding::RewrittenLog { node, detail } => write!(f, "REWRITTEN LOG {node}: {detail}"),
            Finding::SplitView {
                node,
                witness,
                detail,
            } => write!(f, "SPLIT VIEW {node} (witness {witness}): {detail}"),
            Finding::NotLogged { node, slot: s } => write!(
                f,
                "NOT LOGGED {node}: serves a statement for {} that is not in its log",
                slot(s)
            ),
            Finding::LinkNotLogged { node, succession } => write!(
                f,
                "NOT LOGGED {node}: serves the succession {succession} in its chain, not in its log"
            ),
            Finding::MissingSlot {
                slot: s,
                present_on,
                missing_on,
            } => write!(
                f,
                "MISSING SLOT {}: verdict present on {present_on}, missing on {missing_on}",
                slot(s)
            ),
            Finding::ConflictingVerdicts { slot: s, a, b } => write!(
                f,
                "CONFLICTING VERDICTS {}: {a} and {b} hold co-signed statements not ordered by evidence inclusion",
                slot(s)
            ),
            Finding::BadChain { node, reason } => write!(f, "BAD CHAIN {node}: {reason}"),
            Finding::ForkedChain {
                epoch,
                first,
                second,
            } => write!(
                f,
                "FORKED CHAIN: epoch {epoch} has two co-signed successors, {first} and {second}"
            ),
        }
    }
}

/// One node's log as downloaded and checked.
#[derive(Debug)]
pub struct ObservedLog {
    /// The node's URL.
    pub url: String,
    /// Its member name.
    pub name: String,
    /// The checkpoint.
    pub checkpoint: VerifiedCheckpoint,
    /// The statement entries, decoded.
    pub statements: Vec<SignedStatement>,
    /// The succession entries, decoded (checked on the chain by [`chain_findings`]).
    pub successions: Vec<SignedSuccession>,
}

/// The observer's report.
#[derive(Debug, Default)]
pub struct Report {
    /// Logs that passed their own checks.
    pub logs: Vec<ObservedLog>,
    /// Everything found.
    pub findings: Vec<Finding>,
}

/// Downloads and checks one node's log: signature, witnesses, entries rebuilding the root, and
/// each statement entry verifying under the bundle. Succession entries are returned for
/// [`chain_findings`], which follows them from the bundle with every other node's.
///
/// # Errors
/// A [`Finding`] for the first problem.
pub async fn fetch_log(
    client: &Client,
    bundle: &TrustBundle,
    required: &Requirements,
) -> Result<(ObservedLog, Vec<Finding>), Finding> {
    let witnesses = required.witnesses;
    let node = client.base().to_string();
    let unreachable = |e: ClientError| Finding::Unreachable {
        node: node.clone(),
        reason: e.to_string(),
    };
    let bad = |reason: String| Finding::BadLog {
        node: node.clone(),
        reason,
    };
    let note = client
        .get_text("/v1/log/checkpoint", MAX_NOTE_BYTES)
        .await
        .map_err(unreachable)?;
    let cp = verify_checkpoint(note.as_bytes(), &bundle.logs).map_err(|e| bad(e.to_string()))?;
    let name = bundle
        .logs
        .get(usize::from(cp.member.0))
        .map_or_else(|| format!("member {}", cp.member.0), |k| k.name.clone());
    let node_name = format!("{name} ({node})");
    let mut findings = Vec::new();
    if cp.cosigners.len() < witnesses {
        findings.push(Finding::TooFewWitnesses {
            node: node_name.clone(),
            found: cp.cosigners.len(),
            required: witnesses,
        });
    } else if let Some(max_age) = required.max_age_secs {
        let fresh = cp
            .cosigners
            .iter()
            .filter(|(_, ts)| ts.saturating_add(max_age) >= required.now_secs)
            .count();
        if fresh < witnesses {
            findings.push(Finding::StaleCheckpoint {
                node: node_name.clone(),
                fresh,
                required: witnesses,
                max_age_secs: max_age,
            });
        }
    }
    if cp.size > MAX_LOG_ENTRIES {
        return Err(bad(format!(
            "the log claims {} entries, more than this observer reads",
            cp.size
        )));
    }
    let mut tree = MerkleTree::default();
    let mut statements = Vec::new();
    let mut statement_index = Vec::new();
    let mut successions = Vec::new();
    while tree.len() < cp.size {
        let page: Vec<LogEntry> = client
            .get(&format!("/v1/log/entries?start={}&limit=1000", tree.len()))
            .await
            .map_err(unreachable)?;
        if page.is_empty() {
            return Err(bad(format!(
                "the log has {} entries but its checkpoint claims {}",
                tree.len(),
                cp.size
            )));
        }
        // A page must continue exactly where the tree ends; anything else (a node answering
        // with another start) would have this loop ask for the same page for ever.
        if page.first().is_some_and(|e| e.index != tree.len()) {
            return Err(bad(format!(
                "asked for entries from {}, the node answered from {}",
                tree.len(),
                page[0].index
            )));
        }
        for e in page {
            if e.index != tree.len() || tree.len() >= cp.size {
                break;
            }
            let bytes =
                hex::decode(&e.entry).map_err(|_| bad(format!("entry {} is not hex", e.index)))?;
            let leaf = decode_log_leaf(&bundle.network_id, &bytes)
                .map_err(|err| bad(format!("entry {}: {err}", e.index)))?;
            tree.push(&bytes);
            match leaf {
                LogLeaf::Statement(signed) => {
                    statement_index.push(e.index);
                    statements.push(signed);
                }
                LogLeaf::Succession(link) => successions.push(link),
            }
        }
    }
    if Digest(tree.root().0) != cp.root {
        return Err(bad(format!(
            "the {} entries served do not hash to the signed checkpoint's root",
            cp.size
        )));
    }
    for (i, r) in statement_index
        .iter()
        .zip(accord_protocol::verify::verify_statements(
            &statements,
            bundle,
        ))
    {
        if let Err(e) = r {
            findings.push(bad(format!("entry {i} does not verify: {e}")));
        }
    }
    Ok((
        ObservedLog {
            url: node,
            name: node_name,
            checkpoint: cp,
            statements,
            successions,
        },
        findings,
    ))
}

/// Checks that every link of the chain `client` serves is in its log: found among the entries
/// downloaded, or (a link co-signed since) by lookup at an index past the checkpoint.
async fn check_served_chain(
    client: &Client,
    bundle: &TrustBundle,
    log: &ObservedLog,
    chain: &crate::chain::ChainExport,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for link in chain.links.iter().filter_map(|l| l.signed().ok()) {
        if log.successions.contains(&link) {
            continue;
        }
        let leaf = leaf_hash(&succession_log_entry(&bundle.network_id, &link));
        let found: Result<LeafIndex, _> = client
            .get(&format!("/v1/log/lookup/{}", leaf.to_hex()))
            .await;
        // Below the checkpoint, the entries downloaded are the whole log: the lookup lies.
        if !found.is_ok_and(|f| f.index >= log.checkpoint.size) {
            findings.push(Finding::LinkNotLogged {
                node: log.name.clone(),
                succession: link.succession.digest(),
            });
        }
    }
    findings
}

/// Checks that every statement `client` serves is in its log, by leaf lookup and an inclusion
/// proof against the checkpoint.
async fn check_served(client: &Client, bundle: &TrustBundle, log: &ObservedLog) -> Vec<Finding> {
    let served: Vec<StatementExport> = match client.get("/v1/statements?limit=1000").await {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::Unreachable {
                node: log.name.clone(),
                reason: e.to_string(),
            }];
        }
    };
    let cp = &log.checkpoint;
    let mut findings = Vec::new();
    for s in served {
        let leaf = leaf_hash(&log_entry(&bundle.network_id, &s.to_signed()));
        let slot = Slot {
            lab: s.lab.clone(),
            period: accord_protocol::Period(s.period),
        };
        let found: Result<LeafIndex, _> = client
            .get(&format!("/v1/log/lookup/{}", leaf.to_hex()))
            .await;
        let Ok(LeafIndex { index }) = found else {
            findings.push(Finding::NotLogged {
                node: log.name.clone(),
                slot,
            });
            continue;
        };
        if index >= cp.size {
            // Logged after the checkpoint was fetched: covered by the next run.
            continue;
        }
        let proof: Result<InclusionProof, _> = client
            .get(&format!(
                "/v1/log/proof/inclusion?index={index}&size={}",
                cp.size
            ))
            .await;
        let ok =
            proof.is_ok_and(|p| check_inclusion(&p.proof, cp.size, &cp.root, index, &leaf).is_ok());
        if !ok {
            findings.push(Finding::NotLogged {
                node: log.name.clone(),
                slot,
            });
        }
    }
    findings
}

/// Whether `client`'s log (as in `current`) extends the checkpoint (`size`, `root`).
async fn extends(
    client: &Client,
    current: &VerifiedCheckpoint,
    size: u64,
    root: &Digest,
) -> Result<(), String> {
    if size > current.size {
        return Err(format!(
            "the log now has {} entries, fewer than the {size} seen before",
            current.size
        ));
    }
    if size == current.size {
        return if *root == current.root {
            Ok(())
        } else {
            Err(format!(
                "two checkpoints of size {size} with different roots ({root} and {})",
                current.root
            ))
        };
    }
    let proof: ConsistencyProof = client
        .get(&format!(
            "/v1/log/proof/consistency?old={size}&size={}",
            current.size
        ))
        .await
        .map_err(|e| format!("no consistency proof from size {size}: {e}"))?;
    check_consistency(&proof.proof, size, root, current.size, &current.root).map_err(|_| {
        format!(
            "the log of size {} is not an extension of the one of size {size} seen before",
            current.size
        )
    })
}

/// The succession chains the nodes serve (`chains`) and the succession entries of their logs
/// (`logged`): each must verify from the pinned `bundle`, and together they must not fork (two
/// co-signed successors of one epoch, whichever nodes serve or log them).
pub fn chain_findings(
    bundle: &TrustBundle,
    chains: &[(String, crate::chain::ChainExport)],
    logged: &[(String, Vec<SignedSuccession>)],
) -> Vec<Finding> {
    use accord_protocol::succession::{Chain, ChainError};
    let mut findings = Vec::new();
    let mut pooled = Vec::new();
    for (node, chain) in chains {
        if chain.genesis != *bundle {
            findings.push(Finding::BadChain {
                node: node.clone(),
                reason: "its genesis is not the pinned trust bundle".into(),
            });
            continue;
        }
        match chain.follow() {
            // A fork within one node's chain is reported below with the others.
            Ok(_) | Err(ChainError::Fork { .. }) => {
                pooled.extend(chain.links.iter().filter_map(|l| l.signed().ok()));
            }
            Err(e) => findings.push(Finding::BadChain {
                node: node.clone(),
                reason: e.to_string(),
            }),
        }
    }
    for (node, links) in logged.iter().filter(|(_, l)| !l.is_empty()) {
        match Chain::follow(bundle.clone(), links) {
            Ok(_) | Err(ChainError::Fork { .. }) => pooled.extend(links.iter().cloned()),
            Err(e) => findings.push(Finding::BadLog {
                node: node.clone(),
                reason: format!("its succession entries do not verify from the trust bundle: {e}"),
            }),
        }
    }
    if let Err(ChainError::Fork {
        epoch, successors, ..
    }) = Chain::follow(bundle.clone(), &pooled)
    {
        findings.push(Finding::ForkedChain {
            epoch,
            first: successors[0].succession.digest(),
            second: successors[1].succession.digest(),
        });
    }
    findings
}

/// Runs the observer over `urls`; updates `state` for the logs found sound.
pub async fn observe(
    urls: &[String],
    bundle: &TrustBundle,
    required: &Requirements,
    state: &mut ObserverState,
) -> Report {
    let mut report = Report::default();
    let clients: Vec<Client> = urls.iter().map(|u| Client::new(u)).collect();
    let mut by_member: BTreeMap<u16, usize> = BTreeMap::new();
    for c in &clients {
        match fetch_log(c, bundle, required).await {
            Ok((log, findings)) => {
                report.findings.extend(findings);
                report.findings.extend(check_served(c, bundle, &log).await);
                by_member.insert(log.checkpoint.member.0, report.logs.len());
                report.logs.push(log);
            }
            Err(f) => report.findings.push(f),
        }
    }
    let mut chains = Vec::new();
    for c in &clients {
        // A node that predates membership change has no chain to show.
        if let Ok(chain) = c.chain().await {
            if let Some(log) = report.logs.iter().find(|l| l.url == c.base()) {
                report
                    .findings
                    .extend(check_served_chain(c, bundle, log, &chain).await);
            }
            chains.push((c.base().to_string(), chain));
        }
    }
    let logged: Vec<(String, Vec<SignedSuccession>)> = report
        .logs
        .iter()
        .map(|l| (l.name.clone(), l.successions.clone()))
        .collect();
    report
        .findings
        .extend(chain_findings(bundle, &chains, &logged));
    // Over time: each log must extend the checkpoint this observer accepted before.
    let mut sound: Vec<bool> = vec![true; report.logs.len()];
    for (i, log) in report.logs.iter().enumerate() {
        let origin = log.checkpoint.text.lines().next().unwrap_or_default();
        if let Some(seen) = state.logs.get(origin) {
            let client = Client::new(&log.url);
            if let Err(detail) = extends(&client, &log.checkpoint, seen.size, &seen.root).await {
                sound[i] = false;
                report.findings.push(Finding::RewrittenLog {
                    node: log.name.clone(),
                    detail,
                });
            }
        }
    }
    // Between nodes: what each member cosigned as a witness must be a prefix of the log it
    // witnessed, as that log shows itself to us; a witnessed fork is reported too.
    for c in &clients {
        let Ok(w) = c.get::<WitnessState>("/v1/witness").await else {
            continue;
        };
        let witness_name = report
            .logs
            .iter()
            .find(|l| l.url == c.base())
            .map_or_else(|| c.base().to_string(), |l| l.name.clone());
        for held in &w.witnessed {
            let Ok(cp) = verify_checkpoint(held.checkpoint.as_bytes(), &bundle.logs) else {
                continue;
            };
            let Some(&i) = by_member.get(&cp.member.0) else {
                continue;
            };
            let log = &report.logs[i];
            let client = Client::new(&log.url);
            if let Err(detail) = extends(&client, &log.checkpoint, cp.size, &cp.root).await {
                sound[i] = false;
                report.findings.push(Finding::SplitView {
                    node: log.name.clone(),
                    witness: witness_name.clone(),
                    detail,
                });
            }
        }
        for fork in &w.forks {
            if let Ok(cp) = verify_checkpoint(fork.checkpoint.as_bytes(), &bundle.logs)
                && let Some(&i) = by_member.get(&cp.member.0)
            {
                sound[i] = false;
                report.findings.push(Finding::SplitView {
                    node: report.logs[i].name.clone(),
                    witness: witness_name.clone(),
                    detail: format!(
                        "the witness refused a conflicting checkpoint of size {} signed by this log",
                        cp.size
                    ),
                });
            }
        }
    }
    // Slots: the authoritative (largest) statement per slot in each log.
    let per_log: Vec<BTreeMap<Slot, &SignedStatement>> = report
        .logs
        .iter()
        .map(|l| {
            let mut m: BTreeMap<Slot, &SignedStatement> = BTreeMap::new();
            for s in &l.statements {
                let e = m.entry(s.statement.slot.clone()).or_insert(s);
                if s.statement.includes(&e.statement) {
                    *e = s;
                }
            }
            m
        })
        .collect();
    let slots: std::collections::BTreeSet<&Slot> = per_log.iter().flat_map(|m| m.keys()).collect();
    for slot in slots {
        let holders: Vec<usize> = (0..per_log.len())
            .filter(|&i| per_log[i].contains_key(slot))
            .collect();
        for (i, m) in per_log.iter().enumerate() {
            if !m.contains_key(slot) {
                report.findings.push(Finding::MissingSlot {
                    slot: slot.clone(),
                    present_on: report.logs[holders[0]].name.clone(),
                    missing_on: report.logs[i].name.clone(),
                });
            }
        }
        for (x, &a) in holders.iter().enumerate() {
            for &b in &holders[x + 1..] {
                let (sa, sb) = (&per_log[a][slot].statement, &per_log[b][slot].statement);
                if !sa.includes(sb) && !sb.includes(sa) {
                    report.findings.push(Finding::ConflictingVerdicts {
                        slot: slot.clone(),
                        a: report.logs[a].name.clone(),
                        b: report.logs[b].name.clone(),
                    });
                }
            }
        }
    }
    for (log, ok) in report.logs.iter().zip(sound) {
        let origin = log.checkpoint.text.lines().next().unwrap_or_default();
        if ok {
            state.logs.insert(
                origin.to_string(),
                SeenCheckpoint {
                    size: log.checkpoint.size,
                    root: log.checkpoint.root,
                    note: log.checkpoint.note.clone(),
                },
            );
        }
    }
    report
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use accord_protocol::crypto::SecretKey;
    use accord_protocol::fixtures::{Testnet, TestnetSpec};
    use accord_protocol::roster::{MemberIndex, Network};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A minimal HTTP/1.1 server on loopback answering `GET` by path (the query ignored) with a
    /// fixed body, `404` otherwise, one request per connection; returns its base URL. Enough to
    /// play a lying node without an HTTP server framework in this crate.
    async fn serve(routes: Vec<(&'static str, &'static str, String)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|t| t.split('?').next())
                    .unwrap_or_default();
                let answer = routes.iter().find(|(p, _, _)| *p == path).map_or_else(
                    || "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    |(_, content_type, body)| {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    },
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        url
    }

    /// A node whose log claims two entries and whose entry pages start elsewhere than asked.
    async fn lying_node() -> (String, TrustBundle) {
        let mut rng = rand::rngs::OsRng;
        let tn = Testnet::generate(&TestnetSpec::new(4, 1, 0), &mut rng, |k| k.to_hex());
        let net = Network::new(tn.roster.clone()).unwrap();
        let bundle = TrustBundle::new(&net, SecretKey::generate(&mut rng).public());
        let note = accord_protocol::transparency::sign_checkpoint(
            net.id(),
            MemberIndex(0),
            &tn.members[0],
            2,
            &Digest([3; 32]),
        );
        let page = serde_json::to_string(&vec![LogEntry {
            index: 5,
            entry: "00".into(),
        }])
        .unwrap();
        let url = serve(vec![
            ("/v1/log/checkpoint", "text/plain; charset=utf-8", note),
            ("/v1/log/entries", "application/json", page),
        ])
        .await;
        (url, bundle)
    }

    #[tokio::test]
    async fn a_page_from_the_wrong_index_is_a_finding_not_a_loop() {
        // Review finding 8: a page whose first entry had another index than asked was skipped,
        // and the same page was asked for again, for ever.
        let (url, bundle) = lying_node().await;
        let required = Requirements {
            witnesses: 0,
            max_age_secs: None,
            now_secs: 0,
        };
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            fetch_log(&Client::new(&url), &bundle, &required),
        )
        .await
        .expect("fetch_log returns");
        match result {
            Err(Finding::BadLog { reason, .. }) => {
                assert!(reason.contains("answered from 5"), "{reason}")
            }
            other => panic!("expected a bad-log finding, got {other:?}"),
        }
    }

    /// A node of member `member` whose log holds `logged` (succession entries) and whose
    /// `/v1/chain` shows `served`.
    async fn succession_node(
        tn: &Testnet,
        genesis: &TrustBundle,
        member: u16,
        logged: &[&SignedSuccession],
        served: &[&SignedSuccession],
    ) -> String {
        let entries: Vec<Vec<u8>> = logged
            .iter()
            .map(|l| succession_log_entry(&genesis.network_id, l))
            .collect();
        let mut tree = MerkleTree::default();
        for e in &entries {
            tree.push(e);
        }
        let note = accord_protocol::transparency::sign_checkpoint(
            &genesis.network_id,
            MemberIndex(member),
            &tn.members[usize::from(member)],
            entries.len() as u64,
            &Digest(tree.root().0),
        );
        let page: Vec<LogEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| LogEntry {
                index: i as u64,
                entry: hex::encode(e),
            })
            .collect();
        let chain = crate::chain::ChainExport::new(genesis.clone(), served.iter().copied());
        serve(vec![
            ("/v1/log/checkpoint", "text/plain; charset=utf-8", note),
            (
                "/v1/log/entries",
                "application/json",
                serde_json::to_string(&page).unwrap(),
            ),
            ("/v1/statements", "application/json", "[]".into()),
            (
                "/v1/chain",
                "application/json",
                serde_json::to_string(&chain).unwrap(),
            ),
        ])
        .await
    }

    #[tokio::test]
    async fn logs_that_show_two_successors_of_one_epoch_are_a_forked_chain() {
        use accord_protocol::succession::Succession;
        let mut rng = rand::rngs::OsRng;
        let tn = Testnet::generate(&TestnetSpec::new(4, 1, 0), &mut rng, |k| k.to_hex());
        let net = Network::new(tn.roster.clone()).unwrap();
        let group = SecretKey::generate(&mut rng);
        let genesis = TrustBundle::new(&net, group.public());
        let link = |name: &str| {
            let mut spec = TestnetSpec::new(4, 1, 0);
            spec.name = name.into();
            let next = Testnet::generate(&spec, &mut rand::rngs::OsRng, |k| k.to_hex());
            let next = Network::new(next.roster).unwrap();
            let key = SecretKey::generate(&mut rand::rngs::OsRng).public();
            let succession = Succession::new(net.id(), accord_protocol::Period(9), &next, key);
            let signature = group.sign(&succession.signing_bytes());
            SignedSuccession {
                succession,
                signature,
            }
        };
        let (a, b) = (link("next-a"), link("next-b"));
        let required = Requirements {
            witnesses: 0,
            max_age_secs: None,
            now_secs: 0,
        };
        let run = |urls: Vec<String>| {
            let (genesis, required) = (genesis.clone(), required);
            async move {
                let mut state = ObserverState::default();
                observe(&urls, &genesis, &required, &mut state).await
            }
        };
        // Two members that log and serve the same successor: nothing to report, and the log's
        // succession entry is read as one.
        let urls = vec![
            succession_node(&tn, &genesis, 0, &[&a], &[&a]).await,
            succession_node(&tn, &genesis, 1, &[&a], &[&a]).await,
        ];
        let report = run(urls).await;
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(report.logs[0].successions, vec![a.clone()]);
        assert!(report.logs[0].statements.is_empty());
        // The logs disagree and no node serves a chain that shows it: a fork, found in the logs.
        let urls = vec![
            succession_node(&tn, &genesis, 0, &[&a], &[]).await,
            succession_node(&tn, &genesis, 1, &[&b], &[]).await,
        ];
        let report = run(urls).await;
        assert!(
            matches!(report.findings[..], [Finding::ForkedChain { epoch: 0, .. }]),
            "{:?}",
            report.findings
        );
        // A member that shows this observer a link its log lacks is named.
        let urls = vec![succession_node(&tn, &genesis, 2, &[], &[&a]).await];
        let report = run(urls).await;
        assert_eq!(
            report.findings,
            vec![Finding::LinkNotLogged {
                node: report.logs[0].name.clone(),
                succession: a.succession.digest(),
            }]
        );
        assert!(report.findings[0].to_string().starts_with("NOT LOGGED"));
    }

    #[tokio::test]
    async fn a_checkpoint_cosigned_long_ago_is_stale() {
        // Review finding 13: `accord observe` took any cosigned checkpoint, however old, so a
        // node could freeze its log and hide newer verdicts. Cosignatures carry timestamps; at
        // least k of them must be younger than --max-age-secs.
        let mut rng = rand::rngs::OsRng;
        let tn = Testnet::generate(&TestnetSpec::new(4, 1, 0), &mut rng, |k| k.to_hex());
        let net = Network::new(tn.roster.clone()).unwrap();
        let bundle = TrustBundle::new(&net, SecretKey::generate(&mut rng).public());
        let root = Digest(MerkleTree::default().root().0);
        let note = accord_protocol::transparency::sign_checkpoint(
            net.id(),
            MemberIndex(0),
            &tn.members[0],
            0,
            &root,
        );
        let text = verify_checkpoint(note.as_bytes(), &bundle.logs)
            .unwrap()
            .text;
        let line = accord_protocol::transparency::cosign(
            net.id(),
            MemberIndex(1),
            &tn.members[1],
            &text,
            1_000,
        );
        let note = accord_protocol::transparency::add_cosignatures(&note, &[line]).unwrap();
        let url = serve(vec![(
            "/v1/log/checkpoint",
            "text/plain; charset=utf-8",
            note,
        )])
        .await;
        let client = Client::new(&url);
        let at = |now_secs| Requirements {
            witnesses: 1,
            max_age_secs: Some(3_600),
            now_secs,
        };
        let (_, findings) = fetch_log(&client, &bundle, &at(2_000)).await.unwrap();
        assert!(findings.is_empty(), "{findings:?}");
        let (_, findings) = fetch_log(&client, &bundle, &at(1_000 + 3_601))
            .await
            .unwrap();
        assert!(
            matches!(
                findings.as_slice(),
                [Finding::StaleCheckpoint {
                    fresh: 0,
                    required: 1,
                    ..
                }]
            ),
            "{findings:?}"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod chain_tests {
    use accord_protocol::crypto::SecretKey;
    use accord_protocol::fixtures::{Testnet, TestnetSpec};
    use accord_protocol::roster::{Network, Period};
    use accord_protocol::succession::{SignedSuccession, Succession};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::chain::ChainExport;

    fn epoch(seed: u64) -> (std::sync::Arc<Network>, SecretKey) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut spec = TestnetSpec::new(4, 1, 1_000_000);
        spec.name = format!("epoch-{seed}");
        let tn = Testnet::generate(&spec, &mut rng, |k| k.to_hex());
        (
            Network::new(tn.roster).unwrap(),
            SecretKey::generate(&mut rng),
        )
    }

    /// A succession from the epoch (`n0`, `k0`) to a fresh epoch made from `seed`, at period 9.
    fn successor_of(n0: &Network, k0: &SecretKey, seed: u64) -> SignedSuccession {
        let (n, k) = epoch(seed);
        let succession = Succession::new(n0.id(), Period(9), &n, k.public());
        let signature = k0.sign(&succession.signing_bytes());
        SignedSuccession {
            succession,
            signature,
        }
    }

    #[test]
    fn two_nodes_showing_different_successors_of_one_epoch_are_a_fork() {
        let (n0, k0) = epoch(1);
        let genesis = TrustBundle::new(&n0, k0.public());
        let link = |seed: u64| successor_of(&n0, &k0, seed);
        let (a, b) = (link(2), link(3));
        let chains = vec![
            ("x".to_string(), ChainExport::new(genesis.clone(), [&a])),
            ("y".to_string(), ChainExport::new(genesis.clone(), [&a])),
        ];
        assert!(chain_findings(&genesis, &chains, &[]).is_empty());
        let chains = vec![
            ("x".to_string(), ChainExport::new(genesis.clone(), [&a])),
            ("y".to_string(), ChainExport::new(genesis.clone(), [&b])),
        ];
        let findings = chain_findings(&genesis, &chains, &[]);
        assert!(
            matches!(findings[..], [Finding::ForkedChain { epoch: 0, .. }]),
            "{findings:?}"
        );
        // A node whose chain starts elsewhere, or carries a forged link, is named.
        let (n9, k9) = epoch(9);
        let mut forged = a.clone();
        forged.signature = k9.sign(&forged.succession.signing_bytes());
        let chains = vec![
            (
                "z".to_string(),
                ChainExport::new(TrustBundle::new(&n9, k9.public()), []),
            ),
            (
                "w".to_string(),
                ChainExport::new(genesis.clone(), [&forged]),
            ),
        ];
        let findings = chain_findings(&genesis, &chains, &[]);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(
            findings
                .iter()
                .all(|f| matches!(f, Finding::BadChain { .. }))
        );
    }

    #[test]
    fn successors_of_one_epoch_in_logs_are_a_fork_and_a_forged_logged_link_is_named() {
        let (n0, k0) = epoch(1);
        let genesis = TrustBundle::new(&n0, k0.public());
        let link = |seed: u64| successor_of(&n0, &k0, seed);
        let (a, b) = (link(2), link(3));
        let logs = |x: &[&SignedSuccession], y: &[&SignedSuccession]| {
            vec![
                ("x".to_string(), x.iter().map(|l| (*l).clone()).collect()),
                ("y".to_string(), y.iter().map(|l| (*l).clone()).collect()),
            ]
        };
        assert!(chain_findings(&genesis, &[], &logs(&[&a], &[&a])).is_empty());
        // Across two logs, within one log, and between a log and a served chain.
        let served = vec![("z".to_string(), ChainExport::new(genesis.clone(), [&b]))];
        for (chains, logged) in [
            (vec![], logs(&[&a], &[&b])),
            (vec![], logs(&[&a, &b], &[])),
            (served, logs(&[&a], &[&a])),
        ] {
            let findings = chain_findings(&genesis, &chains, &logged);
            assert!(
                matches!(findings[..], [Finding::ForkedChain { epoch: 0, .. }]),
                "{findings:?}"
            );
        }
        // A logged link not signed by the epoch it hands over is a bad log, not a fork.
        let (_, k9) = epoch(9);
        let mut forged = b.clone();
        forged.signature = k9.sign(&forged.succession.signing_bytes());
        let findings = chain_findings(&genesis, &[], &logs(&[&a], &[&forged]));
        assert!(
            matches!(&findings[..], [Finding::BadLog { node, reason }]
                if node == "y" && reason.contains("not signed")),
            "{findings:?}"
        );
    }
}
