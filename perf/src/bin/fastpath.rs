//! fastpath: the appliance's per-packet work on real DPDK mbufs, in
//! process, without a PMD. Two measurements, both timed with the TSC
//! around bursts of 32 (the mbufs are filled untimed just before, as a NIC
//! would have written them into cache):
//!
//! - `pipeline`: whole frames through the worker pipeline nat64d builds
//!   from its YAML (classify, translate, route, neighbour, TX sink that
//!   frees), so cycles/packet are what nat64d spends beside the PMD.
//! - `nat64`: the stateful translator (RFC 6146 state + RFC 7915 headers)
//!   over a shard of N sessions: first every flow's packet once (new
//!   sessions: setup rate, resident bytes per session), then random
//!   established flows 6->4 and their answers 4->6.
//!
//! Prints one JSON object per measurement on stdout (scripts/bench.sh
//! collects them).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dataplane::buf::PacketBuf;
use dataplane::dpdk::{tsc, tsc_hz, Eal, Mbuf, Mempool};
use dataplane::nat64::{self, Outcome, Pool4, Pool4Entry, Shard, SyncQueue, Translator};
use dataplane::pipeline::lookahead;
use dataplane::pipeline::{Instance, Pipeline, Sink};
use dataplane::xlate::{self, Prefix6, Verdict};
use etherparse::PacketBuilder;
use perf::flows::{self, Macs, Plan, Proto};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const BURST: usize = 32;

#[derive(Parser)]
#[command(about = "In-process fast path on real mbufs (TSC cycles per packet)")]
struct Cli {
    /// EAL arguments (default: one lcore, no PCI, no hugepages).
    #[arg(long, allow_hyphen_values = true, num_args = 1.., value_delimiter = ' ')]
    eal: Option<Vec<String>>,
    /// Core to run on (EAL -l) when --eal is not given.
    #[arg(long, default_value_t = 0)]
    core: u32,
    /// Skip the burst's session look-ahead (stage-by-stage prefetch) the
    /// worker does: the "before" of an A/B comparison.
    #[arg(long)]
    no_lookahead: bool,
    /// Translate every packet the general way, without the express path
    /// the worker tries first: the "before" of an A/B comparison.
    #[arg(long)]
    no_express: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Frames from a pcap through the pipeline nat64d builds from CONFIG.
    Pipeline {
        /// nat64d configuration (interfaces need `mac:`; devices are not opened).
        #[arg(long)]
        config: PathBuf,
        /// Input frames, replayed in a loop.
        #[arg(long)]
        pcap: PathBuf,
        /// Index of the interface the frames arrive on.
        #[arg(long, default_value_t = 0)]
        iface: u16,
        /// Packets to time.
        #[arg(long, default_value_t = 4_000_000)]
        packets: u64,
        /// Label in the output.
        #[arg(long, default_value = "pipeline")]
        label: String,
    },
    /// Stateful translator at N sessions.
    Nat64 {
        /// Session counts, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "4096,1000000,10000000")]
        sessions: Vec<u32>,
        /// Established packets to time in each direction.
        #[arg(long, default_value_t = 4_000_000)]
        packets: u64,
        /// IPv6 frame size incl. FCS.
        #[arg(long, default_value_t = 84)]
        frame_size: usize,
        /// Session sync on: the shard queues its changes for a sync thread
        /// (here one that drains the queue like nat64d's).
        #[arg(long)]
        sync: bool,
    },
    /// The machine's random-access memory floor, on a table like the
    /// session tables (huge pages advised): cycles per 64-byte line read
    /// one after another (latency) and in prefetched batches (throughput).
    Memory {
        /// Table size in MiB (the 10M-session tables take about 640).
        #[arg(long, value_delimiter = ',', default_value = "2,64,640")]
        mib: Vec<usize>,
    },
}

/// Sink that counts and frees (what a TX ring would take).
#[derive(Default)]
struct Count {
    sent: u64,
}

impl Sink<Mbuf> for Count {
    fn send(&mut self, _port: u16, pkt: Mbuf) {
        self.sent += 1;
        drop(pkt);
    }
}

/// Per-burst TSC samples. The median is the figure: on a shared machine
/// a burst that lost the CPU to another process would drag a mean up.
struct Samples {
    per_pkt: Vec<f64>,
    cycles: u64,
    packets: u64,
}

impl Samples {
    fn new(cap: usize) -> Self {
        Samples { per_pkt: Vec::with_capacity(cap), cycles: 0, packets: 0 }
    }
    /// Like `new`, with the storage's pages already faulted in (so filling
    /// it does not count as the shard's resident memory).
    fn touched(cap: usize) -> Self {
        let mut s = Self::new(cap);
        s.per_pkt.resize(cap, 1.0);
        s.per_pkt.clear();
        s
    }
    fn add(&mut self, cycles: u64, packets: usize) {
        if packets > 0 {
            self.per_pkt.push(cycles as f64 / packets as f64);
            self.cycles += cycles;
            self.packets += packets as u64;
        }
    }
    /// (median, 10th percentile, mean) cycles per packet.
    fn summary(&mut self) -> (f64, f64, f64) {
        if self.per_pkt.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        self.per_pkt.sort_by(f64::total_cmp);
        let n = self.per_pkt.len();
        (self.per_pkt[n / 2], self.per_pkt[n / 10], self.cycles as f64 / self.packets as f64)
    }
    fn json(&mut self, hz: f64) -> serde_json::Value {
        let (med, p10, mean) = self.summary();
        json!({"cycles_per_pkt": med, "cycles_per_pkt_p10": p10, "cycles_per_pkt_mean": mean,
               "ns_per_pkt": med * 1e9 / hz, "packets": self.packets})
    }
}

/// One cache line of the memory probe.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line([u64; 8]);

/// Random reads over `mib` MiB: a dependent chain (each read gives the
/// next index: the full latency) and batches of independent reads, each
/// batch prefetched before it is read, as the burst look-ahead does. The
/// throughput figure times the look-ahead's lines per packet is the least
/// a packet can cost at that table size, whatever the code does.
fn memory_floor(mib: usize) {
    let n = (mib << 20) / 64;
    let mut v: Vec<Line> = Vec::with_capacity(n);
    let huge = dataplane::hugemem::advise_huge(v.spare_capacity_mut());
    v.resize(n, Line([0; 8]));
    // One random cycle through all lines (Sattolo's shuffle).
    let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
    let mut perm: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i));
    }
    for i in 0..n {
        v[perm[i] as usize].0[0] = u64::from(perm[(i + 1) % n]);
    }
    drop(perm);
    let reads = 2_000_000usize;
    let mut at = 0usize;
    let t0 = tsc();
    for _ in 0..reads {
        at = v[at].0[0] as usize;
    }
    let latency = (tsc() - t0) as f64 / reads as f64;
    let mut out = json!({"measure": "memory", "mib": mib, "huge_pages_advised": huge,
                         "dependent_cycles_per_read": latency, "sink": at});
    for batch in [8usize, 32] {
        let mut idx = [0usize; 32];
        let mut sum = 0u64;
        let t0 = tsc();
        for _ in 0..reads / batch {
            for x in idx.iter_mut().take(batch) {
                // Multiply-shift, not `%`: a division per read would be
                // most of what is measured.
                *x = ((u128::from(rng.next()) * n as u128) >> 64) as usize;
                dataplane::prefetch::prefetch(&v[*x]);
            }
            for x in idx.iter().take(batch) {
                sum = sum.wrapping_add(v[*x].0[0]);
            }
        }
        let c = (tsc() - t0) as f64 / (reads / batch * batch) as f64;
        out[format!("batch{batch}_cycles_per_read")] = json!(c);
        out["sink"] = json!(sum & 1);
    }
    println!("{out}");
}

fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Transparent huge page memory the kernel gave this process
/// (`AnonHugePages` of /proc/self/smaps_rollup), in bytes.
fn anon_huge_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("AnonHugePages:"))?;
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Fill `n` mbufs with `frame(i)`.
fn fill(
    pool: &Mempool,
    bufs: &mut Vec<Mbuf>,
    n: usize,
    mut frame: impl FnMut(usize) -> Vec<u8>,
) -> Result<()> {
    bufs.clear();
    for i in 0..n {
        let mut m = pool.alloc().context("mempool exhausted")?;
        if !m.set_bytes(&frame(i)) {
            bail!("frame larger than the mbuf data room");
        }
        bufs.push(m);
    }
    Ok(())
}

/// One received burst through the pipeline as `Worker::run` takes it: the
/// look-ahead's passes (when an instance wants them, asked once per
/// burst), then each frame, after the staggered stages of frames later
/// in the burst when some frame's chain is longer than the passes. Never
/// inlined, so a profiler sees the whole packet path as this one function
/// (`make bench-ir` counts its instructions).
#[inline(never)]
fn run_burst<I: Instance<Mbuf>>(
    p: &mut Pipeline<Mbuf, I>,
    ahead: bool,
    now: u64,
    iface: u16,
    bufs: &mut Vec<Mbuf>,
    alloc: &mut &Mempool,
    sink: &mut Count,
) {
    let n = bufs.len();
    let stagger = ahead
        && p.lookahead_active()
        && lookahead::passes(n, |pos, stage| p.prefetch(pos, bufs[pos].data(), stage));
    if stagger {
        stages_first(p, bufs);
    }
    // A bound rather than the flag: the compiler would otherwise make a
    // copy of the loop for each value of the flag, and with two calls of
    // the packet path inline neither.
    let due_until = if stagger { lookahead::due_until(n) } else { 0 };
    // The frames still in the drain are the ones after packet i.
    let mut held = bufs.drain(..);
    let mut i = 0;
    while let Some(m) = held.next() {
        if i < due_until {
            stages_due(p, held.as_slice(), i, n);
        }
        i += 1;
        p.process(now, iface, m, alloc, sink);
    }
}

/// The staggered stages due before the first packet is processed. Out of
/// line, as in `Worker::run`.
#[inline(never)]
fn stages_first<I: Instance<Mbuf>>(p: &Pipeline<Mbuf, I>, bufs: &[Mbuf]) {
    for (pos, stage) in lookahead::prologue(bufs.len()) {
        p.prefetch(pos, bufs[pos].data(), stage);
    }
}

/// The staggered stages due before packet `i` of `n` is processed;
/// `rest` holds the packets after it. Out of line, as in `Worker::run`.
#[inline(never)]
fn stages_due<I: Instance<Mbuf>>(p: &Pipeline<Mbuf, I>, rest: &[Mbuf], i: usize, n: usize) {
    for (pos, stage) in lookahead::due(i, n) {
        if let Some(f) = rest.get(pos - i - 1) {
            p.prefetch(pos, f.data(), stage);
        }
    }
}

/// A burst of `n` in `nat64_run`, in `Worker::run`'s order: the
/// look-ahead's passes, then each packet, the staggered stages of later
/// packets before it when some packet wants them.
macro_rules! burst {
    ($n:expr, $on:expr, |$pos:ident, $stage:ident| $fetch:expr, |$p:ident| $process:expr) => {{
        let n: usize = $n;
        let stagger = $on && lookahead::passes(n, |$pos, $stage| $fetch);
        if stagger {
            for ($pos, $stage) in lookahead::prologue(n) {
                let _ = $fetch;
            }
        }
        let due_until = if stagger { lookahead::due_until(n) } else { 0 };
        for $p in 0..n {
            if $p < due_until {
                for ($pos, $stage) in lookahead::due($p, n) {
                    let _ = $fetch;
                }
            }
            $process
        }
    }};
}

#[allow(clippy::too_many_arguments)]
fn pipeline(
    pool: &Mempool,
    config: &Path,
    pcap: &Path,
    iface: u16,
    packets: u64,
    label: &str,
    ahead: bool,
    express: bool,
) -> Result<()> {
    let cfg = control::config::schema::Config::from_file(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ports: Vec<u16> = (0..cfg.interfaces.len() as u16).collect();
    let macs: Vec<[u8; 6]> =
        cfg.interfaces.iter().map(|i| i.mac.map(|m| m.0).unwrap_or([2, 0, 0, 0, 0, 1])).collect();
    let plan = control::runtime::Plan::new(&cfg, 1).map_err(|e| anyhow::anyhow!(e))?;
    let now_ms = tsc() / (tsc_hz() / 1000).max(1);
    let mut p = control::runtime::pipeline::<Mbuf>(&cfg, &plan, 0, now_ms, &ports, &macs)
        .map_err(|e| anyhow::anyhow!(e))?;
    p.express &= express;
    let frames = flows::read_pcap(pcap).with_context(|| format!("reading {}", pcap.display()))?;
    if frames.is_empty() {
        bail!("{} holds no frames", pcap.display());
    }
    let mut alloc = pool;
    let mut sink = Count::default();
    let mut bufs = Vec::with_capacity(BURST);
    let (mut done, mut k) = (0u64, 0usize);
    let mut smp = Samples::new((packets as usize) / BURST + 1);
    // One untimed pass warms the neighbour entries and the caches.
    let warm = frames.len().min(1 << 16) as u64;
    while done < packets + warm {
        fill(pool, &mut bufs, BURST, |_| {
            k = (k + 1) % frames.len();
            frames[k].clone()
        })?;
        let now = tsc() / (tsc_hz() / 1000).max(1);
        let t0 = tsc();
        run_burst(&mut p, ahead, now, iface, &mut bufs, &mut alloc, &mut sink);
        let dt = tsc() - t0;
        if done >= warm {
            smp.add(dt, BURST);
        }
        done += BURST as u64;
    }
    let out = json!({
        "measure": label, "tsc_hz": tsc_hz(), "lookahead": ahead, "express": p.express,
        "sent": sink.sent, "rx": p.stats.rx,
        "v6_to_v4": p.stats.scalar("v6_to_v4"), "v4_to_v6": p.stats.scalar("v4_to_v6"),
    });
    println!("{}", merge(out, smp.json(tsc_hz() as f64)));
    Ok(())
}

/// Ports per pool4 address (the default range, 1024-65535).
const PORTS_PER_ADDR: u64 = 65535 - 1024 + 1;

/// UDP pool4 entries with about `ports` ports in all, spread evenly (the
/// allocator pairs each client with one address, so unequal addresses
/// would fill unequally): as few addresses as hold them, from 100.64.0.0
/// in aligned prefixes, largest first, each address with the same share of
/// the default port range.
fn pool_of(ports: u64) -> Vec<Pool4Entry> {
    let addrs = ports.div_ceil(PORTS_PER_ADDR).max(1);
    let per_addr = ports.div_ceil(addrs) as u16;
    let mut next = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    let mut v = vec![];
    for bit in (0..32).rev().filter(|b| addrs >> b & 1 == 1) {
        let mut e = Pool4Entry::new(nat64::Proto::Udp, Ipv4Addr::from(next), 32 - bit as u8);
        e.port_max = e.port_min + (per_addr - 1);
        v.push(e);
        next += 1 << bit;
    }
    v
}

/// A shard for `n` sessions at 80 % pool4 port occupancy (the IPv4-side
/// port map costs 4 bytes per pool port: a bigger pool inflates the bytes
/// per session).
fn shard(n: u32, sync: Option<Arc<SyncQueue>>) -> Result<Shard> {
    let pool = Pool4::new(&pool_of(u64::from(n) * 5 / 4), 1).map_err(|e| anyhow::anyhow!("pool4: {e:?}"))?;
    let cfg = nat64::Config {
        max_sessions: n,
        max_static: 0,
        port_attempts: 128,
        sync,
        ..nat64::Config::default()
    };
    Ok(Shard::new(&cfg, pool.slice(0), 0))
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A thread that drains `q` as nat64d's sync thread does (pop what is
/// there, sleep 1 ms when empty) until `stop`.
fn drainer(q: Arc<SyncQueue>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let mut got = false;
            while q.pop().is_some() {
                n += 1;
                got = true;
            }
            if !got {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        n
    })
}

/// The expiry sweep's cost at the live sessions of `shard` (none due):
/// one full pass at once, then one second of the worker's housekeeping
/// calls (every 100 us, with the instance's budget) from `from` ms.
fn sweep_cost(shard: &mut Shard, from: u64, hz: f64) {
    /// The instance's `EXPIRE_BUDGET`.
    const BUDGET: usize = 256;
    let (v0, t0) = (shard.counters.sweep_visits, tsc());
    shard.expire(from, usize::MAX);
    let (v1, t1) = (shard.counters.sweep_visits, tsc());
    // Ten calls per millisecond (the engine's clock is in ms).
    let mut behind = 0u64;
    for i in 1..=10_000u64 {
        behind += u64::from(shard.expire(from + i / 10, BUDGET) == BUDGET);
    }
    let (v2, t2) = (shard.counters.sweep_visits, tsc());
    let (pass, second) = ((v1 - v0) as f64, (v2 - v1) as f64);
    println!(
        "{}",
        json!({"measure": "nat64_sweep", "live": shard.live_sessions(),
               "full_pass_visits": pass, "full_pass_ms": (t1 - t0) as f64 * 1e3 / hz,
               "cycles_per_visit": (t1 - t0) as f64 / pass.max(1.0),
               "visits_per_s": second, "cycles_per_s": t2 - t1,
               "core_share": (t2 - t1) as f64 / hz, "calls_at_budget": behind})
    );
}

fn nat64_run(
    pool: &Mempool,
    n: u32,
    packets: u64,
    frame_size: usize,
    ahead: bool,
    express: bool,
    sync: bool,
) -> Result<()> {
    let macs = Macs { src: [2, 0, 0, 0, 6, 2], dst: [2, 0, 0, 0, 6, 1] };
    let plan = Plan { flows: n, protos: vec![Proto::Udp], frame6: frame_size, ..Plan::default() };
    let fl = plan.flows();
    let cfg = xlate::Config {
        pool6: Prefix6::new(plan.pool6, 96),
        own_v4: Ipv4Addr::new(192, 0, 2, 1),
        own_v6: "2001:db8:ff::1".parse()?,
        ..xlate::Config::default()
    };
    let mut rt = xlate::Runtime::new(1);
    let mut alloc = pool;
    let hz = tsc_hz() as f64;

    // What the bench keeps per flow, allocated and touched before the
    // first reading: the growth is the shard's alone. (pool4 address,
    // port) each flow got, for its answers.
    let mut mapped: Vec<(u32, u16)> = vec![(u32::MAX, 0); fl.len()];
    let mut new = Samples::touched(fl.len() / BURST + 1);
    let rss0 = rss_bytes();
    // nat64d's default per-worker queue.
    let q = sync.then(|| Arc::new(SyncQueue::new(65536)));
    let stop = Arc::new(AtomicBool::new(false));
    let drain = q.clone().map(|q| drainer(q, stop.clone()));
    let mut tr = Translator::new(shard(n, q.clone())?);
    let table_bytes = tr.shard.memory_bytes();
    let portmap_bytes = tr.shard.portmap_bytes();
    let mut bufs = Vec::with_capacity(BURST);
    let mut refused = 0u64;
    let now = 1000;
    for (k, chunk) in fl.chunks(BURST).enumerate() {
        fill(pool, &mut bufs, chunk.len(), |i| plan.frame6(&chunk[i], macs, 1))?;
        for m in bufs.iter_mut() {
            m.adj(14);
        }
        let t0 = tsc();
        // As a worker takes a burst: the look-ahead first (it starts once
        // the shard holds enough sessions to miss the caches).
        burst!(
            bufs.len(),
            ahead,
            |pos, stage| tr.prefetch_6to4(&cfg, Some(bufs[pos].data()), pos, stage),
            |p| {
                let o =
                    tr.translate_6to4(&cfg, &mut rt, &mut bufs[p], &mut alloc, &mut |b: Mbuf| drop(b), now);
                refused += u64::from(o != Outcome::Xlate(Verdict::Forward));
            }
        );
        new.add(tsc() - t0, chunk.len());
        for (j, m) in bufs.drain(..).enumerate() {
            let d = m.data();
            let a = u32::from_be_bytes([d[12], d[13], d[14], d[15]]);
            mapped[k * BURST + j] = (a, u16::from_be_bytes([d[20], d[21]]));
        }
    }
    let rss1 = rss_bytes();
    let live = tr.shard.live_sessions();
    let new_json = new.json(hz);
    let cpp_new = new_json["cycles_per_pkt"].as_f64().unwrap_or(0.0);
    let head = json!({"measure": "nat64_new", "sessions": n, "live": live, "refused": refused, "sync": sync, "lookahead": ahead,
            "new_sessions_per_s": hz / cpp_new,
            "new_sessions_per_s_mean": hz / new_json["cycles_per_pkt_mean"].as_f64().unwrap_or(f64::MAX),
            "table_bytes": table_bytes, "table_bytes_per_session": table_bytes as f64 / f64::from(n),
            "portmap_bytes_per_session": portmap_bytes as f64 / f64::from(n),
            "port_collisions_per_session": tr.shard.counters.port_collisions as f64 / live.max(1) as f64,
            "huge_pages_advised": tr.shard.huge_pages(), "anon_huge_bytes": anon_huge_bytes(),
            "rss_bytes_per_session": (rss1.saturating_sub(rss0)) as f64 / f64::from(n)});
    println!("{}", merge(head, new_json));

    // Established, IPv6 -> IPv4, random flows.
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut smp = Samples::new(packets as usize / BURST + 1);
    let mut done = 0u64;
    let mut ok = 0u64;
    let mut pick = [0usize; BURST];
    while done < packets {
        for p in pick.iter_mut() {
            *p = rng.below(fl.len());
        }
        fill(pool, &mut bufs, BURST, |i| plan.frame6(&fl[pick[i]], macs, 2))?;
        for m in bufs.iter_mut() {
            m.adj(14);
        }
        let t0 = tsc();
        burst!(BURST, ahead, |pos, stage| tr.prefetch_6to4(&cfg, Some(bufs[pos].data()), pos, stage), |p| {
            ok += u64::from(established_6to4(
                &mut tr,
                &cfg,
                &mut rt,
                &mut bufs[p],
                &mut alloc,
                now + 1,
                express,
            ));
        });
        smp.add(tsc() - t0, BURST);
        bufs.clear();
        done += BURST as u64;
    }
    let head = json!({"measure": "nat64_est_6to4", "sessions": n, "forwarded": ok, "lookahead": ahead, "express": express, "sync": sync});
    println!("{}", merge(head, smp.json(hz)));

    // Established, IPv4 -> IPv6: the servers' answers to the pool4 mappings.
    let mut smp = Samples::new(packets as usize / BURST + 1);
    let (mut done, mut ok) = (0u64, 0u64);
    let pay = vec![0xa5u8; frame_size.saturating_sub(20 + flows::L2_OVERHEAD + 20 + 8)];
    while done < packets {
        for p in pick.iter_mut() {
            *p = rng.below(fl.len());
        }
        fill(pool, &mut bufs, BURST, |i| {
            let f = &fl[pick[i]];
            let (a, port) = mapped[pick[i]];
            let mut v = Vec::with_capacity(frame_size);
            PacketBuilder::ipv4(plan.server4(f.server).octets(), a.to_be_bytes(), 64)
                .udp(f.sport, port)
                .write(&mut v, &pay)
                .expect("Vec write");
            v
        })?;
        let t0 = tsc();
        burst!(BURST, ahead, |pos, stage| tr.prefetch_4to6(Some(bufs[pos].data()), pos, stage), |p| {
            ok += u64::from(established_4to6(
                &mut tr,
                &cfg,
                &mut rt,
                &mut bufs[p],
                &mut alloc,
                now + 2,
                express,
            ));
        });
        smp.add(tsc() - t0, BURST);
        bufs.clear();
        done += BURST as u64;
    }
    let head = json!({"measure": "nat64_est_4to6", "sessions": n, "forwarded": ok, "lookahead": ahead, "express": express, "sync": sync});
    println!("{}", merge(head, smp.json(hz)));
    sweep_cost(&mut tr.shard, now + 1000, hz);
    stop.store(true, Ordering::Relaxed);
    if let (Some(d), Some(q)) = (drain, q) {
        let drained = d.join().unwrap_or(0);
        println!(
            "{}",
            json!({"measure": "nat64_sync_queue", "sessions": n, "drained": drained, "dropped": q.dropped()})
        );
    }
    Ok(())
}

/// An established IPv6 packet (buffer at the IP header) as a worker
/// translates it: the express path when `express`, else (or when that
/// declines) the general one. True when it is forwarded.
fn established_6to4(
    tr: &mut Translator,
    cfg: &xlate::Config,
    rt: &mut xlate::Runtime,
    m: &mut Mbuf,
    alloc: &mut &Mempool,
    now: u64,
    express: bool,
) -> bool {
    if express {
        if let Some((_, len)) = tr.express_6to4(cfg, rt, m.data_mut(), now) {
            // The IPv4 packet starts 20 bytes in, as in the pipeline.
            m.adj(20);
            m.truncate(len);
            return true;
        }
    }
    tr.translate_6to4(cfg, rt, m, alloc, &mut |b: Mbuf| drop(b), now) == Outcome::Xlate(Verdict::Forward)
}

/// [`established_6to4`] for an IPv4 packet.
fn established_4to6(
    tr: &mut Translator,
    cfg: &xlate::Config,
    rt: &mut xlate::Runtime,
    m: &mut Mbuf,
    alloc: &mut &Mempool,
    now: u64,
    express: bool,
) -> bool {
    // The express path writes the longer header into room in front.
    if express && m.prepend(20) {
        if let Some((_, len)) = tr.express_4to6(cfg, m.data_mut(), now) {
            m.truncate(len);
            return true;
        }
        m.adj(20);
    }
    tr.translate_4to6(cfg, rt, m, alloc, &mut |b: Mbuf| drop(b), now, 0) == Outcome::Xlate(Verdict::Forward)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let eal = cli.eal.clone().unwrap_or_else(|| {
        vec![
            "-l".into(),
            cli.core.to_string(),
            "--no-pci".into(),
            "--no-huge".into(),
            "-m".into(),
            "512".into(),
            "--no-shconf".into(),
            format!("--file-prefix=fastpath{}", std::process::id()),
            "--log-level=*:error".into(),
        ]
    });
    let mut args = vec!["fastpath".to_string()];
    args.extend(eal);
    let eal = Eal::init(&args).context("starting EAL")?;
    let pool = Mempool::new("fastpath", 8191, 256, 2176, -1).context("mempool")?;
    match &cli.cmd {
        Cmd::Pipeline { config, pcap, iface, packets, label } => {
            pipeline(&pool, config, pcap, *iface, *packets, label, !cli.no_lookahead, !cli.no_express)?
        }
        Cmd::Nat64 { sessions, packets, frame_size, sync } => {
            for &n in sessions {
                nat64_run(&pool, n, *packets, *frame_size, !cli.no_lookahead, !cli.no_express, *sync)?;
            }
        }
        Cmd::Memory { mib } => {
            for &m in mib {
                memory_floor(m);
            }
        }
    }
    drop(pool);
    drop(eal);
    Ok(())
}
