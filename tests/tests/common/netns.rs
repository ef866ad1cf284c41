//! Members in their own network namespaces, joined by a user-space switch that loses and delays
//! frames (`accord-faultnet`; the kernel here has no netem), for FAULTS 39.
//!
//! ```text
//!   member ns  {tag}-m{i}: eth0 10.91.0.{i+1}/24 ──veth── h{i} ┐
//!                          mgmt 10.213.{16·slot+i}.2/30 ──veth── root namespace (the test's API client)
//!   hub ns     {tag}-hub:  accord-faultnet switches h0…h{n-1}; with two sides, side A's ports
//!                          and trunk end ta, side B's ports and tb, ta ──veth── tb
//! ```
//!
//! Members talk to each other only through the switch (the data network); the test reaches
//! their APIs over a separate management link that no fault touches. Cutting a member off
//! takes its hub port down, a partition takes the trunk down; loss and delay apply to every
//! frame leaving the switch towards a member. Needs root, `ip` (iproute2) and `ethtool`
//! (`scripts/test.sh` installs them); without them the test fails, saying so.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use accord_node::testnet::{self, MemberHost, TestnetOptions};

use super::{Cluster, wait_for};

/// Faults on every link.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Fixed one-way delay added to every frame.
    pub delay_ms: u64,
    /// Up to this much more, uniformly (reorders frames).
    pub jitter_ms: u64,
}

/// The namespaces, links and switch of one test.
pub struct FaultNet {
    tag: String,
    members: usize,
    switch: Option<Child>,
    /// The switch's log (its `forwarded N lost M` counters).
    pub log: PathBuf,
    sides: bool,
    _dir: tempfile::TempDir,
}

static SLOT: AtomicUsize = AtomicUsize::new(0);

/// Runs `ip ARGS`, panicking with its error output.
pub fn ip(args: &[&str]) {
    run("ip", args);
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {program} ({e}): the network-namespace tests need iproute2 and ethtool, \
             which scripts/test.sh installs"
        )
    });
    assert!(
        out.status.success(),
        "{program} {} failed: {} (the network-namespace tests need root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Deletes namespaces left by test processes that no longer exist (a test killed mid-run).
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("acf")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl FaultNet {
    /// `members` namespaces on one switch, or on two switches joined by a trunk when `side_a`
    /// is not empty (the members in `side_a` on one, the rest on the other).
    pub fn new(members: usize, side_a: &[usize], faults: Faults) -> Self {
        assert!(members <= 16);
        remove_stale();
        let slot = SLOT.fetch_add(1, Ordering::Relaxed);
        assert!(slot < 16, "at most 16 fault networks per test process");
        let tag = format!("acf{}-{slot}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let mut net = Self {
            tag,
            members,
            switch: None,
            log: dir.path().join("faultnet.log"),
            sides: !side_a.is_empty(),
            _dir: dir,
        };
        let hub = net.hub();
        ip(&["netns", "add", &hub]);
        net.no_ipv6(&hub);
        for i in 0..members {
            let ns = net.ns(i);
            ip(&["netns", "add", &ns]);
            net.no_ipv6(&ns);
            let h = format!("h{i}");
            ip(&[
                "link", "add", "name", &h, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            let data = format!("{}/24", Self::data_ip(i));
            ip(&["-n", &ns, "addr", "add", &data, "dev", "eth0"]);
            // The switch copies frames as they are: they must carry full checksums.
            run(
                "ip",
                &[
                    "netns", "exec", &ns, "ethtool", "-K", "eth0", "tx", "off", "tso", "off",
                    "gso", "off",
                ],
            );
            let root_end = format!("af{}s{slot}m{i}", std::process::id() % 100_000);
            ip(&[
                "link", "add", "name", &root_end, "type", "veth", "peer", "name", "mgmt", "netns",
                &ns,
            ]);
            let (root_ip, ns_ip) = Self::mgmt_ips(slot, i);
            ip(&["addr", "add", &format!("{root_ip}/30"), "dev", &root_end]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                "mgmt",
            ]);
            for (netns, dev) in [(&ns, "lo"), (&ns, "eth0"), (&ns, "mgmt"), (&hub, &h)] {
                ip(&["-n", netns, "link", "set", dev, "up"]);
            }
            ip(&["link", "set", &root_end, "up"]);
        }
        let mut groups = [Vec::new(), Vec::new()];
        for i in 0..members {
            groups[usize::from(net.sides && !side_a.contains(&i))].push(format!("h{i}"));
        }
        let mut args: Vec<String> = Vec::new();
        if net.sides {
            ip(&[
                "-n", &hub, "link", "add", "ta", "type", "veth", "peer", "name", "tb",
            ]);
            for t in ["ta", "tb"] {
                ip(&["-n", &hub, "link", "set", t, "up"]);
            }
            groups[0].push("ta".into());
            groups[1].push("tb".into());
            args.extend(["--clean".into(), "ta,tb".into()]);
        }
        for g in groups.iter().filter(|g| !g.is_empty()) {
            args.extend(["--group".into(), g.join(",")]);
        }
        args.extend([
            "--loss".into(),
            faults.loss.to_string(),
            "--delay-ms".into(),
            faults.delay_ms.to_string(),
            "--jitter-ms".into(),
            faults.jitter_ms.to_string(),
            "--seed".into(),
            (slot as u64 + 1).to_string(),
        ]);
        let log = std::fs::File::create(&net.log).unwrap();
        let switch = Command::new("ip")
            .args(["netns", "exec", &hub, env!("CARGO_BIN_EXE_accord-faultnet")])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        net.switch = Some(switch);
        wait_for(Duration::from_secs(10), "the switch is up", || {
            let text = std::fs::read_to_string(&net.log).unwrap_or_default();
            assert!(
                !text.contains("accord-faultnet: ") || text.contains("switching"),
                "the switch failed: {text}"
            );
            text.contains("switching").then_some(())
        });
        net
    }

    fn no_ipv6(&self, ns: &str) {
        // Keeps the kernel's own IPv6 chatter (router solicitations, MLD) off the switch.
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
                 echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
            ],
        );
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    /// Member `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-m{i}", self.tag)
    }

    /// Member `i`'s address on the data network.
    pub fn data_ip(i: usize) -> String {
        format!("10.91.0.{}", i + 1)
    }

    fn mgmt_ips(slot: usize, i: usize) -> (String, String) {
        let net = slot * 16 + i;
        (format!("10.213.{net}.1"), format!("10.213.{net}.2"))
    }

    /// Takes member `i`'s port on the switch down: it reaches no other member.
    pub fn cut(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &format!("h{i}"), "down"]);
    }

    /// Brings member `i`'s port back up.
    pub fn restore(&self, i: usize) {
        ip(&["-n", &self.hub(), "link", "set", &format!("h{i}"), "up"]);
    }

    /// Takes the trunk between the two sides down.
    pub fn partition(&self) {
        assert!(self.sides, "a partition needs two sides");
        ip(&["-n", &self.hub(), "link", "set", "ta", "down"]);
    }

    /// Brings the trunk back up.
    pub fn heal(&self) {
        ip(&["-n", &self.hub(), "link", "set", "ta", "up"]);
    }

    /// The switch's latest counters: frames forwarded to members, frames lost.
    pub fn counters(&self) -> (u64, u64) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                match (w.next(), w.next(), w.next(), w.next()) {
                    (Some("forwarded"), Some(f), Some("lost"), Some(m)) => {
                        Some((f.parse().ok()?, m.parse().ok()?))
                    }
                    _ => None,
                }
            })
            .unwrap_or((0, 0))
    }

    /// A testnet whose members listen in these namespaces, their nodes set to start there.
    pub fn cluster(&self, labs: usize, period_secs: u64) -> Cluster {
        let slot: usize = self
            .tag
            .rsplit('-')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let net_dir = dir.path().join("net");
        let mut opts = TestnetOptions::new(net_dir.clone(), self.members, labs, period_secs * 1000);
        opts.dealer = true;
        opts.base_port = 7600;
        opts.api_base_port = 7700;
        opts.member_hosts = (0..self.members)
            .map(|i| MemberHost {
                p2p: Self::data_ip(i),
                api: Self::mgmt_ips(slot, i).1,
            })
            .collect();
        testnet::create(&opts).unwrap();
        let mut c = Cluster::assemble(dir, &net_dir);
        for (i, node) in c.nodes.iter_mut().enumerate() {
            node.wrapper = vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)];
        }
        c
    }
}

impl Drop for FaultNet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- the switch: {:?} (forwarded, lost)", self.counters());
        }
        if let Some(mut s) = self.switch.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Deleting a namespace deletes its veth ends, and with them their peers.
        for i in 0..self.members {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.hub()])
            .status();
    }
}
