//! `accord demo`: a whole network on loopback, end to end, with real node processes.
//!
//! 1. create a testnet (N members, t, five labs, short periods);
//! 2. start N `accord run` processes and wait until every member sees every other on gossip;
//! 3. run the DKG over the network (no dealer) and check every member holds the same group key;
//! 4. submit one realistic period: a compliant lab (with a matching inspection report), a lab
//!    over the compute limit, a silent lab, a lab that signs two attestations, and a lab whose
//!    inspection contradicts its attestation; each item goes to a different member;
//! 5. wait, with a progress display, for the co-signed statement of every slot at every member;
//! 6. verify each statement offline against the trust bundle, check that all members hold the
//!    same statements, print a table, and write the statements and the trust bundle to `--out`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use accord_node::clock::now;
use accord_node::keyfile;
use accord_node::testnet::{self, Layout, TestnetOptions};
use accord_observer::client::Client;
use accord_observer::export::StatementExport;
use accord_observer::wire::StatusReport;
use accord_protocol::evidence::Evidence;
use accord_protocol::fixtures::{LabConduct, inspection, lab_submissions};
use accord_protocol::roster::{MemberIndex, Network, Period};
use anyhow::{Context as _, Result, bail, ensure};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::OsRng;

use super::common::runtime;
use super::statements::write_statements;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Log filter of the node processes (their `ACCORD_LOG`): `debug` follows each proposal,
    /// accept and signing session, with its time, in the logs directory.
    #[arg(long, env = "ACCORD_DEMO_LOG", default_value = "info")]
    pub(crate) node_log: String,
    /// Number of members (node processes).
    #[arg(long, env = "ACCORD_DEMO_MEMBERS", default_value_t = 5)]
    pub(crate) members: usize,
    /// Threshold t (default ⌊2n/3⌋ + 1, i.e. 4 of 5).
    #[arg(long, env = "ACCORD_DEMO_THRESHOLD")]
    pub(crate) threshold: Option<u16>,
    /// Length of a reporting period, in seconds.
    #[arg(long, env = "ACCORD_DEMO_PERIOD_SECS", default_value_t = 20)]
    pub(crate) period_secs: u64,
    /// Where to write the statements, the trust bundle, the network and the logs.
    #[arg(long, env = "ACCORD_DEMO_OUT", default_value = "accord-demo")]
    pub(crate) out: PathBuf,
    /// Leave the nodes running at the end (stop them with Ctrl-C).
    #[arg(long, env = "ACCORD_DEMO_KEEP_RUNNING")]
    pub(crate) keep_running: bool,
    /// Number of consecutive periods to submit and verify (more give latency percentiles).
    #[arg(long, env = "ACCORD_DEMO_PERIODS", default_value_t = 1)]
    pub(crate) periods: u64,
}

/// The demo labs, in roster order.
const CONDUCT: [(&str, LabConduct); 5] = [
    ("compliant, inspected", LabConduct::Compliant),
    ("over the compute limit", LabConduct::OverCompute),
    ("silent", LabConduct::Silent),
    ("signs two attestations", LabConduct::DoubleSigns),
    ("under-reports (inspection)", LabConduct::Compliant),
];

/// The verdict the policy must give each demo lab.
const EXPECTED: [&str; 5] = [
    "compliant",
    "violation",
    "no-attestation",
    "violation",
    "violation",
];

/// Node processes, stopped (SIGTERM, then SIGKILL) when dropped.
struct Nodes {
    children: Vec<(String, Child)>,
}

impl Nodes {
    fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        for (_, c) in &mut self.children {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for (name, c) in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {
                        eprintln!("{name} did not stop on SIGTERM; killing it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_nodes(layout: &Layout, logs: &Path, filter: &str) -> Result<Nodes> {
    let exe = std::env::current_exe().context("cannot find the accord executable")?;
    std::fs::create_dir_all(logs)?;
    let mut nodes = Nodes {
        children: Vec::new(),
    };
    for m in &layout.members {
        let log = std::fs::File::create(logs.join(format!("{}.log", m.name)))?;
        let child = std::process::Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(&m.config)
            .env("ACCORD_LOG", filter)
            .env_remove("ACCORD_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the node of {}", m.name))?;
        nodes.children.push((m.name.clone(), child));
    }
    Ok(nodes)
}

fn spinner(message: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    pb.set_message(message.to_string());
    pb
}

async fn statuses(clients: &[Client]) -> Vec<Option<StatusReport>> {
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(c.status().await.ok());
    }
    out
}

async fn wait_until<F>(pb: &ProgressBar, limit: Duration, what: &str, mut check: F) -> Result<()>
where
    F: AsyncFnMut() -> (bool, String),
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (done, progress) = check().await;
        pb.set_message(format!("{what}: {progress}"));
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {} s: {what} ({progress})", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn check_children(nodes: &mut Nodes, logs: &Path) -> Result<()> {
    for (name, c) in &mut nodes.children {
        if let Ok(Some(status)) = c.try_wait() {
            bail!(
                "the node of {name} exited ({status}); see {}",
                logs.join(format!("{name}.log")).display()
            );
        }
    }
    Ok(())
}

/// `accord demo`.
pub(super) fn run(args: DemoArgs) -> Result<()> {
    ensure!(args.members >= 2, "a network needs at least 2 members");
    ensure!(args.period_secs >= 10, "use periods of at least 10 s");
    if args.out.join("network").exists() {
        std::fs::remove_dir_all(args.out.join("network"))
            .with_context(|| format!("clearing {}", args.out.join("network").display()))?;
    }
    let network_dir = args.out.join("network");
    let logs = args.out.join("logs");
    let mut opts = TestnetOptions::new(
        network_dir,
        args.members,
        CONDUCT.len(),
        args.period_secs * 1000,
    );
    opts.threshold = args.threshold;
    let layout = testnet::create(&opts).context("creating the local network")?;
    let net = accord_node::config::load_roster(&layout.roster)?;
    println!(
        "Accord demo: {} members (t = {}), {} labs, {} s periods; network in {}",
        net.n(),
        net.t(),
        CONDUCT.len(),
        args.period_secs,
        args.out.join("network").display()
    );
    let mut nodes = spawn_nodes(&layout, &logs, &args.node_log)?;
    let rt = runtime()?;
    let result = rt.block_on(drive(&args, &layout, &net, &mut nodes, &logs));
    if args.keep_running && result.is_ok() {
        println!("nodes keep running; press Ctrl-C to stop them");
        let _ = rt.block_on(tokio::signal::ctrl_c());
    }
    nodes.stop();
    result
}

async fn drive(
    args: &DemoArgs,
    layout: &Layout,
    net: &Network,
    nodes: &mut Nodes,
    logs: &Path,
) -> Result<()> {
    let clients: Vec<Client> = layout
        .members
        .iter()
        .map(|m| {
            let token = accord_node::auth::OperatorToken::read(&m.token)?;
            Ok(Client::new(&m.api).with_token(token.expose()))
        })
        .collect::<Result<_, accord_node::keyfile::SecretFileError>>()?;
    let n = net.n();

    // Connect.
    let pb = spinner("starting nodes");
    wait_until(
        &pb,
        Duration::from_secs(60),
        "members connected on gossip",
        async || {
            if check_children(nodes, logs).is_err() {
                return (true, "a node exited".into());
            }
            let s = statuses(&clients).await;
            let ready = s
                .iter()
                .filter(|s| s.as_ref().is_some_and(|s| s.gossip_peers + 1 >= n))
                .count();
            (ready == n, format!("{ready}/{n} members see all others"))
        },
    )
    .await?;
    check_children(nodes, logs)?;
    pb.finish_with_message(format!("{n} nodes up and fully connected"));

    // DKG over the network.
    let pb = spinner("running the DKG");
    let ceremony = clients[0].start_dkg(None).await?;
    wait_until(&pb, Duration::from_secs(90), "DKG", async || {
        let s = statuses(&clients).await;
        let keys: Vec<_> = s
            .iter()
            .filter_map(|s| s.as_ref().and_then(|s| s.group_key))
            .collect();
        (
            keys.len() == n,
            format!("{}/{n} members hold the group key", keys.len()),
        )
    })
    .await?;
    let s = statuses(&clients).await;
    let keys: Vec<_> = s
        .iter()
        .filter_map(|s| s.as_ref().and_then(|s| s.group_key))
        .collect();
    ensure!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "members disagree on the group key"
    );
    let group_key = keys[0];
    pb.finish_with_message(format!(
        "DKG ceremony {ceremony} complete: group key {group_key}"
    ));

    // Idle memory of each node process, before any evidence arrives.
    let idle_rss: Vec<u64> = nodes
        .children
        .iter()
        .filter_map(|(_, c)| rss_kib(c.id()))
        .collect();

    let schedule = net.schedule().clone();
    let mut first_ms: Vec<u64> = Vec::new();
    let mut all_ms: Vec<u64> = Vec::new();
    let mut commits: Vec<u64> = Vec::new();
    let mut written: Vec<StatementExport> = Vec::new();
    let mut last: Option<(Period, Vec<Vec<StatementExport>>)> = None;
    for round in 0..args.periods.max(1) {
        let period = if round == 0 {
            choose_period(&schedule).await
        } else {
            let next = Period(last.as_ref().map_or(0, |(p, _)| p.0) + 1);
            if schedule.end(next).as_millis() < now().as_millis() + 3_000 {
                bail!(
                    "period {} is too far along to submit; use longer periods",
                    next.0
                );
            }
            next
        };
        let commits_before: Vec<Option<u64>> = statuses(&clients)
            .await
            .into_iter()
            .map(|s| s.map(|s| s.store_commits))
            .collect();
        let held = run_period(layout, net, nodes, logs, &clients, period).await?;
        let after = statuses(&clients).await;
        for (b, a) in commits_before.iter().zip(&after) {
            if let (Some(b), Some(a)) = (b, a) {
                commits.push(a.store_commits.saturating_sub(*b));
            }
        }
        let mut lat: Vec<u64> = after
            .into_iter()
            .flatten()
            .flat_map(|s| s.recent.into_iter().filter(|d| d.period == period.0))
            .map(|d| d.close_to_cosigned_ms)
            .collect();
        lat.sort_unstable();
        if let Some(f) = lat.first() {
            first_ms.push(*f);
        }
        all_ms.extend(lat);
        written.extend(held[0].iter().cloned());
        last = Some((period, held));
    }
    let (period, held) = last.context("no period ran")?;
    let labs: Vec<String> = net.labs().map(|l| net.lab_id(l).to_string()).collect();

    // Verify, compare, print, write.
    let bundle = clients[0].trust_bundle().await?;
    ensure!(
        bundle.group_key == group_key,
        "the trust bundle's key is not the DKG's"
    );
    for s in &written {
        s.verify(&bundle).with_context(|| {
            format!(
                "statement for {} in period {} does not verify",
                s.lab, s.period
            )
        })?;
    }
    let reference: BTreeMap<String, StatementExport> =
        held[0].iter().map(|s| (s.lab.clone(), s.clone())).collect();
    for (i, h) in held.iter().enumerate().skip(1) {
        for s in h {
            ensure!(
                reference.get(&s.lab) == Some(s),
                "member {} holds a different statement for {}",
                layout.members[i].name,
                s.lab
            );
        }
    }
    println!();
    println!(
        "{:<9} {:<27} {:<15} {:>8}  {:<9} reasons",
        "lab", "conduct", "verdict", "evidence", "verified"
    );
    let mut all_ok = true;
    for (i, lab) in labs.iter().enumerate() {
        let s = reference
            .get(lab)
            .with_context(|| format!("no statement for {lab}"))?;
        let verified = s.verify(&bundle);
        let expected_ok = s.verdict_kind == EXPECTED[i];
        all_ok &= verified.is_ok() && expected_ok;
        println!(
            "{:<9} {:<27} {:<15} {:>8}  {:<9} {}",
            lab,
            CONDUCT[i].0,
            s.verdict_kind,
            s.evidence.len(),
            match &verified {
                Ok(_) if expected_ok => "yes".to_string(),
                Ok(_) => format!("yes (expected {})", EXPECTED[i]),
                Err(e) => format!("NO: {e}"),
            },
            reasons(&s.verdict)
        );
    }
    let dir = args.out.join("statements");
    let list: Vec<StatementExport> = written;
    write_statements(&dir, &list, &bundle)?;
    println!();
    first_ms.sort_unstable();
    all_ms.sort_unstable();
    println!(
        "slot close → co-signed statement over {} period(s): first member median {} ms, p99 {} ms; every member median {} ms, p99 {} ms",
        first_ms.len(),
        percentile(&first_ms, 50),
        percentile(&first_ms, 99),
        percentile(&all_ms, 50),
        percentile(&all_ms, 99)
    );
    let _ = period;
    if !commits.is_empty() {
        commits.sort_unstable();
        println!(
            "fsynced storage commits per member and period (submissions to co-signed statement): median {}, max {}",
            percentile(&commits, 50),
            commits.last().copied().unwrap_or(0)
        );
    }
    if !idle_rss.is_empty() {
        let mut r = idle_rss.clone();
        r.sort_unstable();
        println!(
            "idle resident memory per node: median {:.1} MiB, max {:.1} MiB",
            percentile(&r, 50) as f64 / 1024.0,
            *r.last().unwrap_or(&0) as f64 / 1024.0
        );
    }
    println!(
        "wrote {} statements and trust-bundle.json to {}",
        list.len(),
        dir.display()
    );
    println!(
        "verify them offline: accord verify --trust {} {}",
        dir.join("trust-bundle.json").display(),
        dir.join("statement-*.json").display()
    );
    ensure!(
        all_ok,
        "some statements did not verify or have unexpected verdicts"
    );
    Ok(())
}

async fn choose_period(schedule: &accord_protocol::roster::Schedule) -> Period {
    let mut period = schedule.period_at(now()).unwrap_or(Period(0));
    if schedule.end(period).as_millis() < now().as_millis() + 5_000 {
        period = Period(period.0 + 1);
        let wait = schedule.start(period).saturating_duration_since(now());
        let pb = spinner(&format!(
            "waiting {} s for period {} to start",
            wait.as_secs(),
            period.0
        ));
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
        pb.finish_and_clear();
    }
    period
}

/// Submits `period`'s evidence and waits for its statements at every member; returns what each
/// member holds.
async fn run_period(
    layout: &Layout,
    net: &Network,
    nodes: &mut Nodes,
    logs: &Path,
    clients: &[Client],
    period: Period,
) -> Result<Vec<Vec<StatementExport>>> {
    let n = net.n();
    let schedule = net.schedule().clone();

    // Submit the period's evidence, each item to a different member.
    let evidence = period_evidence(layout, net, period)?;
    let mut submitted = 0;
    for (i, (lab, ev)) in evidence.iter().enumerate() {
        let client = &clients[i % n];
        let receipt = client
            .submit(ev)
            .await
            .with_context(|| format!("submitting {lab}'s evidence to {}", client.base()))?;
        submitted += 1;
        tracing::debug!(digest = %receipt.digest, "submitted");
    }
    println!(
        "period {}: submitted {submitted} evidence items (attestations and an inspection report); slots close at +{} s",
        period.0,
        schedule
            .close(period)
            .saturating_duration_since(now())
            .as_secs()
    );

    // Wait for every slot's co-signed statement at every member.
    let labs: Vec<String> = net.labs().map(|l| net.lab_id(l).to_string()).collect();
    let total = (labs.len() * n) as u64;
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bar:30} {pos}/{len} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    let limit = schedule
        .close(period)
        .saturating_duration_since(now())
        .saturating_add(Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + limit;
    let mut held: Vec<Vec<StatementExport>> = vec![Vec::new(); n];
    loop {
        check_children(nodes, logs)?;
        for (i, c) in clients.iter().enumerate() {
            if held[i].len() < labs.len() {
                held[i] = c.statements(Some(period.0), None).await.unwrap_or_default();
            }
        }
        let count: usize = held.iter().map(Vec::len).sum();
        pb.set_position(count as u64);
        let to_close = schedule.close(period).saturating_duration_since(now());
        pb.set_message(if to_close.is_zero() {
            "co-signed statements (slot, member)".to_string()
        } else {
            format!(
                "slots close in {} s; co-signed statements",
                to_close.as_secs() + 1
            )
        });
        if count as u64 >= total {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("not every slot was co-signed at every member within 60 s of the close");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pb.finish_with_message(format!(
        "period {}: every slot co-signed at every member",
        period.0
    ));
    Ok(held)
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn reasons(v: &accord_protocol::policy::Verdict) -> String {
    use accord_protocol::policy::{Reason, Verdict};
    match v {
        Verdict::Violation { reasons } => reasons
            .iter()
            .map(|r| match r {
                Reason::ConflictingAttestations { .. } => "two conflicting attestations",
                Reason::TrainingFlopOverLimit { .. } => "training FLOP over the limit",
                Reason::ClusterOverLimit { .. } => "cluster over the limit",
                Reason::InspectedClusterOverLimit { .. } => "inspected cluster over the limit",
                Reason::InspectionDiscrepancy { .. } => "inspection contradicts attestation",
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join("; "),
        Verdict::Compliant => "within limits; inspection agrees".into(),
        Verdict::NoAttestation => "silence is not compliance".into(),
    }
}

/// The period's evidence: (lab id, item), in submission order.
fn period_evidence(
    layout: &Layout,
    net: &Network,
    period: Period,
) -> Result<Vec<(String, Evidence)>> {
    let issued = now();
    let policy = &net.roster().policy;
    let mut out = Vec::new();
    let inspector = MemberIndex(0);
    let inspector_dir = layout.members[0]
        .config
        .parent()
        .context("member directory")?;
    let inspector_key = keyfile::read_key(&inspector_dir.join("identity.key"), None)?;
    for (i, (_, conduct)) in CONDUCT.iter().enumerate() {
        let lab = &layout.labs[i];
        let key = keyfile::read_key(&lab.key, None)?;
        let items = lab_submissions(
            net.id(),
            &lab.id,
            &key,
            period,
            policy,
            *conduct,
            issued,
            &mut OsRng,
        );
        for item in &items {
            if let Evidence::Attestation { attestation, .. } = item {
                // Lab 0 is inspected and found as declared; lab 4 is found using 40 % more
                // chip-hours than it declared.
                let factor = match i {
                    0 => Some(100),
                    4 => Some(140),
                    _ => None,
                };
                if let Some(f) = factor {
                    out.push((
                        lab.id.clone(),
                        inspection(net.id(), inspector, &inspector_key, attestation, f, issued),
                    ));
                }
            }
        }
        out.extend(items.into_iter().map(|e| (lab.id.clone(), e)));
    }
    Ok(out)
}
