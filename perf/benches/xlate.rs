//! Stateless translation cost per packet (dataplane::xlate with the SIIT
//! mapper, no DPDK), built with dataplane::wire.
//!
//! - `xlate/<dir>/<proto>/<payload>`: refill a preallocated buffer with a
//!   template packet, then translate it. One iteration = one packet.
//! - `copy/<dir>/<proto>/<payload>`: the refill alone. Translation cost is
//!   the difference.
//!
//! - `checksum/sum/<bytes>`: `wire::checksum::sum` alone (RFC 1071 over
//!   20, 64, 1500 bytes), for scale.
//!
//! `<payload>` is the L4 payload in bytes (64 or 1500); the MTUs are raised
//! to 9000 and IPv4 templates carry DF so that no size rule (fragmentation,
//! packet too big) kicks in: the numbers are the translation fast path.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::buf::{PacketBuf, VecAlloc, VecBuf, DEFAULT_HEADROOM};
use dataplane::wire::ip::protocol;
use dataplane::wire::{checksum, icmpv4, icmpv6, Ipv4Packet, Ipv6Packet};
use dataplane::xlate::{translate_4to6, translate_6to4, Config, Runtime, SiitMapper, Verdict};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

const V6_CLIENT: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0221); // 192.0.2.33
const V6_SERVER: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc633, 0x6402); // 198.51.100.2
const V4_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 33);
const V4_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

fn config() -> Config {
    Config {
        pool6: Some("64:ff9b::/96".parse().unwrap()),
        mtu_ipv4: 9000,
        mtu_ipv6: 9000,
        lowest_ipv6_mtu: 9000,
        // Documentation addresses are not global (RFC 6052 §3.1).
        wkp_allow_non_global: true,
        own_v4: Ipv4Addr::new(192, 0, 2, 1),
        own_v6: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x0201),
        ..Config::default()
    }
}

#[derive(Clone, Copy)]
enum L4 {
    Udp,
    Tcp,
    Echo,
}

impl L4 {
    fn name(self) -> &'static str {
        match self {
            L4::Udp => "udp",
            L4::Tcp => "tcp",
            L4::Echo => "icmp_echo",
        }
    }
    fn header_len(self) -> usize {
        match self {
            L4::Tcp => 20,
            L4::Udp | L4::Echo => 8,
        }
    }
}

/// Write an L4 header + payload and return (protocol number, bytes) with
/// the checksum left zero.
fn l4_bytes(l4: L4, v6: bool, payload: usize) -> (u8, Vec<u8>) {
    let mut b = vec![0u8; l4.header_len() + payload];
    for (i, x) in b[l4.header_len()..].iter_mut().enumerate() {
        *x = i as u8;
    }
    let len = b.len() as u16;
    let proto = match l4 {
        L4::Udp => {
            b[0..2].copy_from_slice(&40000u16.to_be_bytes());
            b[2..4].copy_from_slice(&53u16.to_be_bytes());
            b[4..6].copy_from_slice(&len.to_be_bytes());
            protocol::UDP
        }
        L4::Tcp => {
            b[0..2].copy_from_slice(&40000u16.to_be_bytes());
            b[2..4].copy_from_slice(&443u16.to_be_bytes());
            b[4..8].copy_from_slice(&1u32.to_be_bytes());
            b[8..12].copy_from_slice(&1u32.to_be_bytes());
            b[12] = 5 << 4;
            b[13] = 0x18; // PSH ACK
            b[14..16].copy_from_slice(&64240u16.to_be_bytes());
            protocol::TCP
        }
        L4::Echo => {
            b[0] = if v6 { icmpv6::types::ECHO_REQUEST } else { icmpv4::types::ECHO_REQUEST };
            b[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
            b[6..8].copy_from_slice(&1u16.to_be_bytes());
            if v6 {
                protocol::ICMPV6
            } else {
                protocol::ICMP
            }
        }
    };
    (proto, b)
}

fn fill_l4_checksum(proto: u8, l4: &mut [u8], pseudo: u32) {
    let at = match proto {
        protocol::TCP => 16,
        protocol::UDP => 6,
        _ => 2,
    };
    let init = if proto == protocol::ICMP { 0 } else { pseudo };
    let c = checksum::finish(checksum::sum(l4, init));
    let c = if proto == protocol::UDP && c == 0 { 0xffff } else { c };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn template6(l4: L4, payload: usize) -> Vec<u8> {
    let (proto, mut body) = l4_bytes(l4, true, payload);
    let pseudo = checksum::pseudo_v6(V6_CLIENT, V6_SERVER, proto, body.len() as u32);
    fill_l4_checksum(proto, &mut body, pseudo);
    let mut v = vec![0u8; 40];
    let mut p = Ipv6Packet::new_unchecked(&mut v[..]);
    p.set_version_tc_flow(0, 0x12345);
    p.set_payload_len(body.len() as u16);
    p.set_next_header(proto);
    p.set_hop_limit(64);
    p.set_src_addr(V6_CLIENT);
    p.set_dst_addr(V6_SERVER);
    v.extend_from_slice(&body);
    v
}

fn template4(l4: L4, payload: usize) -> Vec<u8> {
    let (proto, mut body) = l4_bytes(l4, false, payload);
    let pseudo = checksum::pseudo_v4(V4_SERVER, V4_CLIENT, proto, body.len() as u16);
    fill_l4_checksum(proto, &mut body, pseudo);
    let mut v = vec![0u8; 20];
    let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
    p.set_version_and_header_len(20);
    p.set_total_len((20 + body.len()) as u16);
    p.set_ident(1);
    p.set_frag(true, false, 0);
    p.set_ttl(64);
    p.set_protocol(proto);
    p.set_src_addr(V4_SERVER);
    p.set_dst_addr(V4_CLIENT);
    p.fill_checksum();
    v.extend_from_slice(&body);
    v
}

/// Put `t` back into `b` at the default headroom, without allocating.
#[inline]
fn refill(b: &mut VecBuf, t: &[u8]) {
    let h = b.headroom();
    b.truncate(0);
    if h < DEFAULT_HEADROOM {
        let d = DEFAULT_HEADROOM - h;
        b.append(d);
        b.adj(d);
    } else if h > DEFAULT_HEADROOM {
        b.prepend(h - DEFAULT_HEADROOM);
        b.truncate(0);
    }
    b.append(t.len());
    b.data_mut().copy_from_slice(t);
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    for six in [true, false] {
        let dir = if six { "6to4" } else { "4to6" };
        for l4 in [L4::Udp, L4::Tcp, L4::Echo] {
            for payload in [64usize, 1500] {
                let t = if six { template6(l4, payload) } else { template4(l4, payload) };
                let id = format!("{dir}/{}", l4.name());
                let mut rt = Runtime::new(1);
                let mut m = SiitMapper::new(&cfg);
                let mut alloc = VecAlloc::default();
                let mut buf = VecBuf::default();
                let mut run = |buf: &mut VecBuf| {
                    if six {
                        translate_6to4(&cfg, &mut rt, &mut m, buf, &mut alloc, &mut drop::<VecBuf>)
                    } else {
                        translate_4to6(&cfg, &mut rt, &mut m, buf, &mut alloc, &mut drop::<VecBuf>)
                    }
                };
                // Make sure the fast path is what gets measured.
                refill(&mut buf, &t);
                assert_eq!(run(&mut buf), Verdict::Forward, "{id}/{payload}");

                let mut g = c.benchmark_group("xlate");
                g.throughput(Throughput::Elements(1));
                g.bench_with_input(BenchmarkId::new(&id, payload), &t, |b, t| {
                    b.iter(|| {
                        refill(&mut buf, t);
                        black_box(run(black_box(&mut buf)))
                    })
                });
                g.finish();

                let mut g = c.benchmark_group("copy");
                g.throughput(Throughput::Elements(1));
                g.bench_with_input(BenchmarkId::new(&id, payload), &t, |b, t| {
                    b.iter(|| {
                        refill(&mut buf, t);
                        black_box(buf.data()[0])
                    })
                });
                g.finish();
            }
        }
    }
}

fn bench_checksum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for n in [20usize, 64, 1500] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("sum", n), &data, |b, d| {
            b.iter(|| checksum::sum(black_box(d), 0))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_checksum);
criterion_main!(benches);
