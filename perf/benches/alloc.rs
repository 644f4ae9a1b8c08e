//! Allocation modes compared (dataplane::nat64, no DPDK):
//!
//! - session log lines per 10 000 sessions (created, then ended by the
//!   timer) for dynamic allocation, port blocks and RFC 7422
//!   deterministic mapping, over a realistic client mix;
//! - the cost of a new session (new BIB entry, port choice, session, the
//!   events it pushes) in ns, best of several runs.
//!
//! `cargo bench -p perf --bench alloc`. The figures go to perf/README.md.

use crossbeam::queue::ArrayQueue;
use dataplane::nat64::{
    Allocation, BlockConfig, Config, DetMap, Event, EventKind, Pool4, Pool4Entry, Proto, Shard, Tuple6,
};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

/// Subscribers (/56 each) of the mix, inside 2001:db8:c::/48.
const CLIENTS: u32 = 256;
const CLIENT_LEN: u8 = 56;
const BLOCK: u16 = 512;
const MAX_BLOCKS: u16 = 8;

/// pool4: 64 addresses, every protocol, default ranges.
fn entries() -> Vec<Pool4Entry> {
    Proto::ALL.iter().map(|&p| Pool4Entry::new(p, Ipv4Addr::new(203, 0, 113, 0), 26)).collect()
}

fn det() -> DetMap {
    let clients = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0);
    DetMap::new(clients, 48, CLIENT_LEN, None, &entries(), 1).expect("mapping fits")
}

fn shard(mode: &str, events: Option<Arc<ArrayQueue<Event>>>, cap: u32) -> Shard {
    let (allocation, pool) = match mode {
        "dynamic" => (Allocation::Dynamic, Pool4::new(&entries(), 1)),
        "blocks" => (
            Allocation::Blocks(BlockConfig { size: BLOCK, max_per_client: MAX_BLOCKS }),
            Pool4::new(&entries(), 1),
        ),
        _ => {
            let m = det();
            let p = m.pool4(&entries());
            (Allocation::Deterministic(Arc::new(m)), p)
        }
    };
    let cfg = Config {
        max_sessions: cap,
        max_static: 0,
        client_prefix_len: CLIENT_LEN,
        session_events: allocation == Allocation::Dynamic,
        allocation,
        events,
        ..Config::default()
    };
    Shard::new(&cfg, pool.expect("pool").slice(0), 0)
}

/// The mix: a few heavy subscribers (P2P, CGN-behind-CPE), most light
/// (Zipf-like: client k gets a share proportional to 1/(k+1)), 70 % TCP,
/// 25 % UDP, 5 % ICMP; each session on its own client port (its own BIB
/// entry: the worst case for a per-session log).
fn mix(n: u32, seed: u64) -> Vec<(Proto, Tuple6)> {
    let mut rng = fastrand_lite(seed);
    let h: f64 = (1..=CLIENTS).map(|k| 1.0 / k as f64).sum();
    let mut out = Vec::with_capacity(n as usize);
    let mut port = [1024u16; CLIENTS as usize];
    for _ in 0..n {
        // Inverse-CDF draw of the client.
        let mut x = (rng() as f64 / u32::MAX as f64) * h;
        let mut c = 0;
        while c + 1 < CLIENTS && x > 1.0 / (c + 1) as f64 {
            x -= 1.0 / (c + 1) as f64;
            c += 1;
        }
        let r = rng() % 100;
        let proto = if r < 70 {
            Proto::Tcp
        } else if r < 95 {
            Proto::Udp
        } else {
            Proto::Icmp
        };
        let p = &mut port[c as usize];
        *p = p.wrapping_add(1).max(1024);
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0xc, (c << 8) as u16, 0, 0, 0, 0x100 + (rng() % 4) as u16);
        let dst = Ipv4Addr::from(0xc633_6400 | (rng() % 200)); // 198.51.100.0/24
        out.push((proto, Tuple6 { proto, src, sport: *p, dst, dport: 443 }));
    }
    out
}

fn fastrand_lite(mut x: u64) -> impl FnMut() -> u32 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 16) as u32
    }
}

fn open(s: &mut Shard, t: &(Proto, Tuple6)) -> bool {
    // RFC 6146: a TCP session starts with a SYN.
    let fl = if t.0 == Proto::Tcp { 0x02 } else { 0 };
    s.outbound(&t.1, fl, 0).is_ok()
}

fn main() {
    let n = 10_000;
    let flows = mix(n, 7);
    println!("{n} sessions, {CLIENTS} clients (/{CLIENT_LEN}), Zipf mix, 70/25/5 % TCP/UDP/ICMP");
    println!("{:<14} {:>9} {:>12} {:>12} {:>9}", "mode", "refused", "log_created", "log_total", "blocks");
    for mode in ["dynamic", "blocks", "deterministic"] {
        let q = Arc::new(ArrayQueue::new(8 * n as usize));
        let mut s = shard(mode, Some(q.clone()), 1 << 16);
        let refused = flows.iter().filter(|t| !open(&mut s, t)).count();
        let created = q.len();
        // Let every session time out (TCP transitory 4 min, UDP 5 min).
        s.expire(3_600_000, usize::MAX);
        assert_eq!(s.live_sessions(), 0);
        let total = q.len();
        let blocks = std::iter::from_fn(|| q.pop()).filter(|e| e.kind == EventKind::BlockAllocated).count();
        let label = if mode == "blocks" { format!("blocks {BLOCK}x{MAX_BLOCKS}") } else { mode.into() };
        println!("{label:<14} {refused:>9} {created:>12} {total:>12} {blocks:>9}");
    }
    // Cost of a new session, with the log on (its event pushes included)
    // and off.
    let m = 50_000;
    let flows = mix(m, 11);
    println!("ns per new session (best of 7 runs of {m}): log on, log off");
    for mode in ["dynamic", "blocks", "deterministic"] {
        let mut best = [f64::MAX; 2];
        for run in 0..14 {
            let q = (run % 2 == 0).then(|| Arc::new(ArrayQueue::new(4 * m as usize)));
            let mut s = shard(mode, q, 1 << 17);
            let t0 = Instant::now();
            for t in &flows {
                black_box(open(&mut s, t));
            }
            let b = &mut best[run % 2];
            *b = b.min(t0.elapsed().as_nanos() as f64 / m as f64);
        }
        println!("{mode:<14} {:>8.0} {:>8.0}", best[0], best[1]);
    }
}
