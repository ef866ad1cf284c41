//! Shared harness for the process-level tests: a local network of real `accord` processes.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use accord_node::clock::now;
use accord_node::testnet::Layout;
use accord_observer::client::Client;
use accord_observer::export::StatementExport;
use accord_observer::wire::{Receipt, StatusReport};
use accord_protocol::crypto::{Digest, SecretKey};
use accord_protocol::evidence::Evidence;
use accord_protocol::fixtures::{LabConduct, lab_submissions};
use accord_protocol::roster::{Network, Period};

/// The `accord` binary under test: `$ACCORD_BIN`, or the workspace's, built (or brought up to
/// date) once per test binary with the cargo that runs the tests, so a test never runs a stale
/// binary.
pub fn accord_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(find_or_build_bin).clone()
}

fn find_or_build_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ACCORD_BIN") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "accord-node",
            "--bin",
            "accord",
            "--features",
            if cfg!(feature = "quic") {
                "failpoints,quic"
            } else {
                "failpoints"
            },
            "--manifest-path",
        ])
        .arg(&manifest)
        .status()
        .expect("cannot run cargo to build the accord binary");
    assert!(status.success(), "building the accord binary failed");
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("accord");
    assert!(
        bin.exists(),
        "the accord binary is missing at {}; run the tests with scripts/test.sh or \
         `cargo test --workspace` (or `cargo build -p accord-node` first)",
        bin.display()
    );
    bin
}

/// `accord ARGS` must succeed; returns its standard output.
pub fn accord_ok(args: &[&str]) -> String {
    let out = accord(args);
    assert!(
        out.status.success(),
        "accord {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `accord ARGS` to completion.
pub fn accord(args: &[&str]) -> Output {
    Command::new(accord_bin())
        .args(args)
        .env("ACCORD_LOG", "warn")
        .env_remove("ACCORD_PASSPHRASE")
        .output()
        .unwrap()
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `limit` with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One node process.
pub struct NodeProc {
    pub name: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub api: String,
    pub log: PathBuf,
    pub client: Client,
    pub env: Vec<(String, String)>,
    /// A command the node runs under (`ip netns exec NS`), which must exec it (so the child's
    /// pid is the node's).
    pub wrapper: Vec<String>,
    child: Option<Child>,
    starts: usize,
}

impl NodeProc {
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(accord_bin());
                c
            }
            None => Command::new(accord_bin()),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("ACCORD_LOG", "info,accord_node=debug")
            .env_remove("ACCORD_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn term(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let s = self.child.as_mut()?.try_wait().unwrap()?;
        self.child = None;
        Some(s)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The node's `/metrics` text.
    pub fn metrics(&self) -> String {
        block_on(async {
            reqwest::get(format!("{}/metrics", self.api))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn status(&self) -> Option<StatusReport> {
        block_on(self.client.status()).ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the API answers.
    pub fn wait_up(&self) {
        wait_for(
            Duration::from_secs(30),
            &format!("{} API up", self.name),
            || self.status(),
        );
    }
}

/// A local network in a temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub layout: Layout,
    pub net: Arc<Network>,
    pub nodes: Vec<NodeProc>,
}

impl Cluster {
    /// `accord testnet` with `members` members, `labs` labs and `period_secs` periods; keys dealt
    /// when `dealer`.
    pub fn new(members: usize, labs: usize, period_secs: u64, dealer: bool) -> Self {
        Self::with_args(members, labs, period_secs, dealer, &[])
    }

    /// Like [`Cluster::new`], with extra `accord testnet` arguments.
    pub fn with_args(
        members: usize,
        labs: usize,
        period_secs: u64,
        dealer: bool,
        extra: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let net_dir = dir.path().join("net");
        let members_s = members.to_string();
        let labs_s = labs.to_string();
        let period_s = period_secs.to_string();
        let mut args = vec![
            "testnet",
            "--dir",
            net_dir.to_str().unwrap(),
            "--members",
            &members_s,
            "--labs",
            &labs_s,
            "--period-secs",
            &period_s,
        ];
        if dealer {
            args.push("--dealer");
        }
        args.extend_from_slice(extra);
        let out = accord(&args);
        assert!(
            out.status.success(),
            "accord testnet failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::assemble(dir, &net_dir)
    }

    /// The cluster of the testnet in `net_dir` (inside `dir`), no node started.
    pub fn assemble(dir: tempfile::TempDir, net_dir: &Path) -> Self {
        let layout = Layout::load(net_dir).unwrap();
        let net = accord_node::config::load_roster(&layout.roster).unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let nodes = layout
            .members
            .iter()
            .map(|m| NodeProc {
                name: m.name.clone(),
                config: m.config.clone(),
                data_dir: m.data_dir.clone(),
                api: m.api.clone(),
                log: logs.join(format!("{}.log", m.name)),
                client: Client::new(&m.api).with_token(
                    accord_node::auth::OperatorToken::read(&m.token)
                        .unwrap()
                        .expose(),
                ),
                env: Vec::new(),
                wrapper: Vec::new(),
                child: None,
                starts: 0,
            })
            .collect();
        Self {
            dir,
            layout,
            net,
            nodes,
        }
    }

    pub fn start_all(&mut self) {
        for n in &mut self.nodes {
            n.start();
        }
    }

    /// Waits until every running member sees every other running member on gossip.
    pub fn wait_connected(&self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_running())
            .collect();
        let want = running.len();
        wait_for(Duration::from_secs(60), "members connected", || {
            running
                .iter()
                .all(|i| {
                    self.nodes[*i]
                        .status()
                        .is_some_and(|s| s.gossip_peers + 1 >= want && s.reachable >= want)
                })
                .then_some(())
        });
    }

    /// Runs the DKG over the network from member 0 and returns the group key.
    pub fn run_dkg(&self) -> accord_protocol::crypto::PublicKey {
        block_on(self.nodes[0].client.start_dkg(None)).unwrap();
        wait_for(
            Duration::from_secs(90),
            "every member holds the group key",
            || {
                let keys: Vec<_> = self
                    .nodes
                    .iter()
                    .map(|n| n.status().and_then(|s| s.group_key))
                    .collect();
                if keys.iter().all(Option::is_some) {
                    let first = keys[0].unwrap();
                    assert!(keys.iter().all(|k| *k == Some(first)), "group keys differ");
                    Some(first)
                } else {
                    None
                }
            },
        )
    }

    /// A period with at least `margin_ms` left before it ends (waits for the next one if needed).
    pub fn open_period(&self, margin_ms: u64) -> Period {
        let s = self.net.schedule();
        let p = s.period_at(now()).unwrap();
        if s.end(p).as_millis() >= now().as_millis() + margin_ms {
            return p;
        }
        let next = Period(p.0 + 1);
        let wait = s.start(next).saturating_duration_since(now());
        std::thread::sleep(wait + Duration::from_millis(50));
        next
    }

    pub fn lab_key(&self, i: usize) -> SecretKey {
        accord_node::keyfile::read_key(&self.layout.labs[i].key, None).unwrap()
    }

    pub fn member_key(&self, i: usize) -> SecretKey {
        let dir = self.layout.members[i].config.parent().unwrap();
        accord_node::keyfile::read_key(&dir.join("identity.key"), None).unwrap()
    }

    /// Lab `i`'s evidence for `period` under `conduct`.
    pub fn evidence(&self, i: usize, period: Period, conduct: LabConduct) -> Vec<Evidence> {
        lab_submissions(
            self.net.id(),
            &self.layout.labs[i].id,
            &self.lab_key(i),
            period,
            &self.net.roster().policy,
            conduct,
            now(),
            &mut rand::rngs::OsRng,
        )
    }

    /// Submits every lab's evidence (lab i with `conduct[i % len]`) round robin over the running
    /// members; returns the receipts.
    pub fn submit_period(&self, period: Period, conduct: &[LabConduct]) -> Vec<Receipt> {
        let running: Vec<&NodeProc> = self.nodes.iter().filter(|n| n.is_running()).collect();
        let mut out = Vec::new();
        let mut k = 0;
        for i in 0..self.layout.labs.len() {
            for ev in self.evidence(i, period, conduct[i % conduct.len()]) {
                let node = running[k % running.len()];
                k += 1;
                out.push(block_on(node.client.submit(&ev)).unwrap());
            }
        }
        out
    }

    /// Statements for `period` held by member `i`.
    pub fn statements(&self, i: usize, period: Period) -> Vec<StatementExport> {
        block_on(self.nodes[i].client.statements(Some(period.0), None)).unwrap_or_default()
    }

    /// Waits until member `i` holds a statement for every lab in `period`.
    pub fn wait_statements(
        &self,
        i: usize,
        period: Period,
        limit: Duration,
    ) -> Vec<StatementExport> {
        let labs = self.layout.labs.len();
        let close = self.net.schedule().close(period);
        let limit = limit + close.saturating_duration_since(now());
        wait_for(
            limit,
            &format!(
                "{} holds every statement of period {}",
                self.nodes[i].name, period.0
            ),
            || {
                let s = self.statements(i, period);
                (s.len() == labs).then_some(s)
            },
        )
    }

    /// Seconds until `period` closes, plus `extra`.
    pub fn sleep_past_close(&self, period: Period, extra: Duration) {
        let close = self.net.schedule().close(period);
        std::thread::sleep(close.saturating_duration_since(now()) + extra);
    }

    pub fn trust_bundle_json(&self, i: usize) -> String {
        serde_json::to_string_pretty(&block_on(self.nodes[i].client.trust_bundle()).unwrap())
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill9();
        }
        if std::thread::panicking() {
            for n in &self.nodes {
                let text = n.log_text();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("----- last lines of {} -----", n.name);
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Writes statements and a bundle to `dir`; returns the statement file paths.
pub fn write_statements(dir: &Path, bundle_json: &str, list: &[StatementExport]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("trust-bundle.json"), bundle_json).unwrap();
    list.iter()
        .map(|s| {
            let p = dir.join(format!("statement-{}-{}.json", s.period, s.lab));
            std::fs::write(&p, serde_json::to_string_pretty(s).unwrap()).unwrap();
            p
        })
        .collect()
}

pub fn digest_hex(d: &Digest) -> String {
    d.to_hex()
}

/// A libp2p swarm outside the node, speaking the network's own protocols with `key` (a
/// stranger's or a stolen member identity), subscribed to its gossip topic; `allowed` are the
/// peers it accepts.
pub fn foreign_swarm(
    key: libp2p::identity::Keypair,
    net: &Network,
    allowed: impl IntoIterator<Item = libp2p::PeerId>,
) -> (
    libp2p::Swarm<accord_node::p2p::Behaviour>,
    libp2p::gossipsub::IdentTopic,
) {
    let tag = accord_node::p2p::network_tag(net);
    let n = net.n();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|k| accord_node::p2p::behaviour(k, &tag, allowed, n).unwrap())
        .unwrap()
        .build();
    let topic = accord_node::p2p::gossip_topic(&tag);
    swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
    (swarm, topic)
}

/// The Python virtual environment `scripts/test.sh` creates for the tools the tests drive
/// (schemathesis, selenium): `$ACCORD_TEST_VENV`, or `target/test-venv` of the workspace. A
/// missing tool fails the test with the command that installs it; it is never skipped.
pub fn venv_tool(tool: &str) -> PathBuf {
    let venv = std::env::var("ACCORD_TEST_VENV").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv"),
        PathBuf::from,
    );
    let bin = venv.join("bin").join(tool);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with scripts/test.sh, which installs it into {}",
        bin.display(),
        venv.display()
    );
    bin
}

/// Whether the test venv's Python is at least `major.minor` (from its `pyvenv.cfg`).
pub fn venv_python_at_least(major: u32, minor: u32) -> bool {
    let cfg = venv_tool("python")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("pyvenv.cfg");
    let text = std::fs::read_to_string(cfg).unwrap();
    let version = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("version")
                .map(|v| v.trim_start_matches([' ', '=', '_', 'i', 'n', 'f', 'o']))
        })
        .unwrap_or("0.0");
    let mut parts = version
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Where a test keeps what it produced for people to look at (screenshots, reports):
/// `target/test-artefacts/<name>`, created empty.
pub fn artefact_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-artefacts")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
