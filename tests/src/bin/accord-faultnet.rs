//! `accord-faultnet`: a user-space Ethernet switch that loses and delays frames, for the
//! network-namespace tests (the kernel here has no netem).
//!
//! It runs inside a hub namespace that holds one end of every member's veth pair, opens an
//! `AF_PACKET` socket on each of those ports, and forwards frames like a learning switch: a
//! frame to a learned MAC goes out of that port, broadcast, multicast and unknown frames go out
//! of every other port of the group. Each copy sent out of a faulty port is lost with
//! probability `--loss`, otherwise held for `--delay-ms` plus up to `--jitter-ms`. Ports listed in
//! `--clean` (trunks between groups) forward without faults, so a path between two members
//! passes exactly one faulty egress.
//!
//! ```text
//! accord-faultnet --group h0,h1,ta --group h2,h3,tb --clean ta,tb --loss 0.05 --delay-ms 10
//! ```
//!
//! Groups are separate switches; linking them with a veth pair (ends `ta`, `tb`) and taking
//! that link down partitions the network, taking a member's port down cuts that member off.
//! Every 2 s, and when stdin closes, it prints `forwarded N lost M` to stderr (the tests check
//! that faults were applied). The member namespaces must have checksum and segmentation offload
//! off on their veth ends (`ethtool -K eth0 tx off tso off gso off`), or frames would arrive with
//! partial checksums.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, Config, DataLinkSender};

/// Command line.
#[derive(Debug, Default)]
struct Args {
    groups: Vec<Vec<String>>,
    clean: BTreeSet<String>,
    loss: f64,
    delay: Duration,
    jitter: Duration,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seed: 1,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--group" => a
                .groups
                .push(value()?.split(',').map(str::to_string).collect()),
            "--clean" => a.clean.extend(value()?.split(',').map(str::to_string)),
            "--loss" => {
                a.loss = value()?.parse().map_err(|e| format!("--loss: {e}"))?;
                if !(0.0..1.0).contains(&a.loss) {
                    return Err("--loss is a probability in [0, 1)".into());
                }
            }
            "--delay-ms" => a.delay = millis(&value()?)?,
            "--jitter-ms" => a.jitter = millis(&value()?)?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.groups.is_empty() {
        return Err("give at least one --group PORT,PORT,...".into());
    }
    Ok(a)
}

fn millis(s: &str) -> Result<Duration, String> {
    s.parse()
        .map(Duration::from_millis)
        .map_err(|e| format!("{s}: {e}"))
}

/// A port: its sender and the switch group it belongs to.
struct Port {
    tx: Mutex<Box<dyn DataLinkSender>>,
    group: usize,
    faulty: bool,
}

/// A frame waiting for its delay.
struct Held {
    due: Instant,
    seq: u64,
    port: usize,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

struct Switch {
    ports: Vec<Port>,
    /// Per group: MAC → port.
    macs: Vec<Mutex<HashMap<[u8; 6], usize>>>,
    queue: Mutex<BinaryHeap<Reverse<Held>>>,
    wake: Condvar,
    rng: Mutex<u64>,
    loss: f64,
    delay: Duration,
    jitter: Duration,
    forwarded: AtomicU64,
    lost: AtomicU64,
    seq: AtomicU64,
}

impl Switch {
    /// xorshift64*: uniform in [0, 1).
    fn uniform(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn send(&self, port: usize, frame: &[u8]) {
        let mut tx = self.ports[port]
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A port that is down refuses: that is the partition, not an error.
        let _ = tx.send_to(frame, None);
    }

    /// A frame arrived on `from`.
    fn handle(&self, from: usize, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        dst.copy_from_slice(&frame[..6]);
        src.copy_from_slice(&frame[6..12]);
        let group = self.ports[from].group;
        let target = {
            let mut macs = self.macs[group].lock().unwrap_or_else(|p| p.into_inner());
            if src[0] & 1 == 0 {
                macs.insert(src, from);
            }
            if dst[0] & 1 == 0 {
                macs.get(&dst).copied()
            } else {
                None
            }
        };
        match target {
            Some(p) if p == from => {}
            Some(p) => self.forward(p, frame),
            None => {
                for p in 0..self.ports.len() {
                    if p != from && self.ports[p].group == group {
                        self.forward(p, frame);
                    }
                }
            }
        }
    }

    fn forward(&self, port: usize, frame: &[u8]) {
        if !self.ports[port].faulty {
            self.send(port, frame);
            return;
        }
        if self.loss > 0.0 && self.uniform() < self.loss {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        if self.delay.is_zero() && self.jitter.is_zero() {
            self.send(port, frame);
            return;
        }
        let extra = self.jitter.mul_f64(self.uniform());
        let held = Held {
            due: Instant::now() + self.delay + extra,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            port,
            frame: frame.to_vec(),
        };
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reverse(held));
        self.wake.notify_one();
    }

    /// Sends held frames when they are due.
    fn release(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            match q.peek() {
                None => q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner()),
                Some(Reverse(h)) if h.due > now => {
                    let wait = h.due - now;
                    q = self
                        .wake
                        .wait_timeout(q, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                Some(_) => {
                    if let Some(Reverse(h)) = q.pop() {
                        drop(q);
                        self.send(h.port, &h.frame);
                        q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
        }
    }

    fn report(&self) {
        eprintln!(
            "forwarded {} lost {}",
            self.forwarded.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed)
        );
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("accord-faultnet: {e}");
            return ExitCode::from(2);
        }
    };
    let interfaces = pnet_datalink::interfaces();
    let config = Config {
        read_buffer_size: 65_536,
        write_buffer_size: 65_536,
        ..Config::default()
    };
    let mut ports = Vec::new();
    let mut receivers = Vec::new();
    for (group, names) in args.groups.iter().enumerate() {
        for name in names {
            let Some(iface) = interfaces.iter().find(|i| &i.name == name) else {
                eprintln!("accord-faultnet: no interface {name} in this namespace");
                return ExitCode::FAILURE;
            };
            match pnet_datalink::channel(iface, config) {
                Ok(Channel::Ethernet(tx, rx)) => {
                    ports.push(Port {
                        tx: Mutex::new(tx),
                        group,
                        faulty: !args.clean.contains(name),
                    });
                    receivers.push(rx);
                }
                Ok(_) => {
                    eprintln!("accord-faultnet: {name}: not an Ethernet channel");
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("accord-faultnet: {name}: {e} (needs root, in the hub namespace)");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let switch = Arc::new(Switch {
        macs: args.groups.iter().map(|_| Mutex::default()).collect(),
        ports,
        queue: Mutex::default(),
        wake: Condvar::new(),
        rng: Mutex::new(args.seed.max(1)),
        loss: args.loss,
        delay: args.delay,
        jitter: args.jitter,
        forwarded: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        seq: AtomicU64::new(0),
    });
    for (i, mut rx) in receivers.into_iter().enumerate() {
        let s = switch.clone();
        std::thread::spawn(move || {
            loop {
                match rx.next() {
                    Ok(frame) => s.handle(i, frame),
                    // A port taken down: wait for it to come back.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
    }
    let s = switch.clone();
    std::thread::spawn(move || s.release());
    let s = switch.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(2));
            s.report();
        }
    });
    eprintln!("accord-faultnet: switching {} ports", switch.ports.len());
    // Run until stdin closes (the test holds the pipe) or the process is killed.
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    switch.report();
    ExitCode::SUCCESS
}
