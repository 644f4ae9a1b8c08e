//! NAT64 state engine benchmarks (dataplane::nat64, no DPDK).
//!
//! - `nat64_lookup/<N>`: established-session fast path in bursts of 32
//!   (`find_burst6` + `touch6` per hit) over random sessions of a shard
//!   holding N live UDP sessions, one BIB entry per session (the worst case
//!   for memory). Criterion's time is per burst; divide by 32.
//! - `nat64_lookup_single/<N>`: the same through `outbound()` one by one.
//! - `nat64_create`: new sessions (new BIB + port allocation + session)
//!   into an empty 1M-session shard.
//!
//! Before the groups run, the memory figures are printed: table bytes per
//! session of capacity, and the process RSS growth while filling
//! (/proc/self/statm). Set `NAT64_BENCH_SIZES=4096,1000000` to skip 10M.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::nat64::{Config, Pool4, Pool4Entry, Proto, Shard, Tuple6, BURST};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Sessions per IPv6 client (each on its own client port).
const PER_CLIENT: u32 = 5_000;

fn sizes() -> Vec<u32> {
    std::env::var("NAT64_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![4096, 1_000_000, 10_000_000])
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The i-th distinct IPv6-side tuple (own client port => own BIB entry).
fn tuple(i: u32) -> Tuple6 {
    let c = i / PER_CLIENT;
    Tuple6 {
        proto: Proto::Udp,
        src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (c >> 16) as u16, c as u16),
        sport: 1024 + (i % PER_CLIENT) as u16,
        dst: Ipv4Addr::new(198, 51, 100, 1),
        dport: 53,
    }
}

/// A UDP-only pool with room for `n` mappings at no more than 80 % port
/// occupancy (a whole /k prefix).
fn shard(n: u32) -> Shard {
    let addrs = (n as u64 * 5 / 4).div_ceil(64512).next_power_of_two() as u32;
    let len = 32 - addrs.trailing_zeros() as u8;
    let pool = Pool4::new(&[Pool4Entry::new(Proto::Udp, Ipv4Addr::new(10, 64, 0, 0), len)], 1).expect("pool");
    let cfg = Config { max_sessions: n, max_static: 0, port_attempts: 128, ..Config::default() };
    Shard::new(&cfg, pool.slice(0), 0)
}

fn filled(n: u32) -> Shard {
    let rss0 = rss_bytes();
    let mut s = shard(n);
    let t0 = Instant::now();
    for i in 0..n {
        s.outbound(&tuple(i), 0, 0).expect("fill");
    }
    let dt = t0.elapsed();
    let rss1 = rss_bytes();
    println!(
        "nat64 fill n={n}: {:.1} M sessions/s; table memory {} B = {:.1} B/session; \
         RSS +{} MiB = {:.1} B/session; port collisions {}",
        n as f64 / dt.as_secs_f64() / 1e6,
        s.memory_bytes(),
        s.memory_bytes() as f64 / n as f64,
        (rss1 - rss0) >> 20,
        (rss1 - rss0) as f64 / n as f64,
        s.counters.port_collisions,
    );
    s
}

/// Random burst schedule over `n` sessions (not timed).
fn schedule(n: u32, bursts: usize) -> Vec<Tuple6> {
    let mut rng = fastrand_like(0x1234_5678);
    (0..bursts * BURST).map(|_| tuple(rng() % n)).collect()
}

/// xorshift for the schedule; the bench crate has no RNG dependency.
fn fastrand_like(mut x: u64) -> impl FnMut() -> u32 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 16) as u32
    }
}

/// One burst through `find_burst6` + `touch6`.
fn burst(s: &mut Shard, b: &[Tuple6], out: &mut [u32; BURST]) -> u32 {
    s.find_burst6(b, out);
    let mut acc = 0u32;
    for &o in out.iter() {
        if o != Shard::MISS {
            acc ^= s.touch6(o, 0, 1000).map_or(0, |m| m.1 as u32);
        }
    }
    acc
}

/// Best-of-trials ns/packet (robust against other processes taking the
/// CPU, which criterion's mean is not): 200 trials of 64 bursts each.
fn best_ns(s: &mut Shard, sched: &[Tuple6], batched: bool) -> f64 {
    let bursts = sched.len() / BURST;
    let mut best = f64::MAX;
    let mut out = [0u32; BURST];
    let mut k = 0;
    for _ in 0..200 {
        let t0 = Instant::now();
        let mut acc = 0;
        for _ in 0..64 {
            let b = &sched[k * BURST..(k + 1) * BURST];
            k = (k + 1) % bursts;
            if batched {
                acc ^= burst(s, b, &mut out);
            } else {
                for t in b {
                    acc ^= s.outbound(t, 0, 1000).map_or(0, |o| o.sport as u32);
                }
            }
        }
        black_box(acc);
        best = best.min(t0.elapsed().as_nanos() as f64 / (64 * BURST) as f64);
    }
    best
}

fn lookup(c: &mut Criterion) {
    for n in sizes() {
        let mut s = filled(n);
        let sched = schedule(n, 1 << 15);
        println!(
            "nat64 lookup n={n}: best {:.1} ns/packet in bursts of {BURST}, {:.1} ns/packet one by one",
            best_ns(&mut s, &sched, true),
            best_ns(&mut s, &sched, false)
        );
        let mut g = c.benchmark_group("nat64_lookup");
        g.throughput(Throughput::Elements(BURST as u64));
        g.sample_size(20).measurement_time(Duration::from_secs(4));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut k = 0;
            let mut out = [0u32; BURST];
            b.iter(|| {
                let b = &sched[k * BURST..(k + 1) * BURST];
                k = (k + 1) & ((1 << 15) - 1);
                black_box(burst(&mut s, b, &mut out))
            })
        });
        g.finish();
        let mut g = c.benchmark_group("nat64_lookup_single");
        g.throughput(Throughput::Elements(BURST as u64));
        g.sample_size(20).measurement_time(Duration::from_secs(4));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut k = 0;
            b.iter(|| {
                let burst = &sched[k * BURST..(k + 1) * BURST];
                k = (k + 1) & ((1 << 15) - 1);
                let mut acc = 0u32;
                for t in burst {
                    acc ^= s.outbound(t, 0, 1000).map_or(0, |o| o.sport as u32);
                }
                black_box(acc)
            })
        });
        g.finish();
        drop(s);
    }
}

fn create(c: &mut Criterion) {
    const CAP: u32 = 1_000_000;
    // Best of 20 runs of 100k creations into a fresh 1M-session shard.
    let mut best = f64::MAX;
    for r in 0..20u32 {
        let mut s = shard(CAP);
        let base = r * 100_000;
        let t0 = Instant::now();
        for i in base..base + 100_000 {
            black_box(s.outbound(&tuple(i), 0, 0).is_ok());
        }
        best = best.min(t0.elapsed().as_nanos() as f64 / 100_000.0);
    }
    println!("nat64 create: best {best:.0} ns/session = {:.2} M sessions/s", 1e3 / best);
    let mut g = c.benchmark_group("nat64_create");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("udp_new_bib_and_session", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let m = left.min(CAP as u64) as u32;
                let mut s = shard(CAP);
                let t0 = Instant::now();
                for i in 0..m {
                    black_box(s.outbound(&tuple(i), 0, 0).is_ok());
                }
                total += t0.elapsed();
                left -= m as u64;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, lookup, create);
criterion_main!(benches);
