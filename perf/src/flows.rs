//! Benchmark flows and the frames that carry them.
//!
//! A flow is one IPv6 client endpoint talking to one IPv4 server through
//! the translator: the client sends to the server's IPv4-embedded address
//! under pool6 (RFC 6052), the server answers to whatever IPv4 address the
//! translator gives the client (an EAM for SIIT, a pool4 address:port for
//! stateful NAT64). Ports follow RFC 4814 §4.5: pseudorandom, sources in
//! 1024-65535 and destinations in 1-49151, so hash tables see realistic
//! keys rather than a counter.
//!
//! Frame sizes count the Ethernet FCS, as RFC 2544 / RFC 5180 / RFC 8219
//! do: a 84-byte IPv6 frame is 80 bytes in a pcap file, and becomes a
//! 64-byte IPv4 frame after translation.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

/// Ethernet header plus FCS: what a frame size adds to the IP packet.
pub const L2_OVERHEAD: usize = 14 + 4;
/// Smallest IPv6 frame the generator writes (RFC 5180 §5.1.1: 78 bytes).
pub const MIN_FRAME6: usize = 78;
/// Largest frame (1500-byte IP MTU).
pub const MAX_FRAME: usize = 1518;

/// Transport of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// UDP datagrams.
    Udp,
    /// TCP segments (SYN or ACK, see [`TcpFlags`]).
    Tcp,
    /// ICMP echo requests (the identifier plays the port).
    Icmp,
}

impl Proto {
    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Icmp => "icmp",
        }
    }

    /// Parse `udp`, `tcp`, `icmp`, or `mix` (all three, round robin).
    pub fn parse_list(s: &str) -> Option<Vec<Proto>> {
        match s {
            "udp" => Some(vec![Proto::Udp]),
            "tcp" => Some(vec![Proto::Tcp]),
            "icmp" => Some(vec![Proto::Icmp]),
            "mix" => Some(vec![Proto::Udp, Proto::Tcp, Proto::Icmp]),
            _ => None,
        }
    }
}

/// TCP flags of client segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpFlags {
    /// SYN: opens a session in a stateful translator (RFC 6146 §3.5.2.2).
    Syn,
    /// ACK: data on a session that already exists.
    Ack,
}

/// Addressing plan of a run. The defaults match perf/configs/.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Number of distinct flows.
    pub flows: u32,
    /// Transports, assigned round robin over the flows.
    pub protos: Vec<Proto>,
    /// TCP flags of client segments.
    pub tcp_flags: TcpFlags,
    /// IPv6 frame size on the wire, FCS included; IPv4 frames are 20 bytes
    /// shorter (the header difference), so a translated frame keeps it.
    pub frame6: usize,
    /// First IPv6 client address; client `c` is this plus `c`.
    pub client6: Ipv6Addr,
    /// Distinct client addresses (flows share them with distinct ports).
    pub clients: u32,
    /// Source ports each client uses (flows then share client endpoints
    /// and differ by server); 0: a fresh random port for every flow.
    pub client_ports: u32,
    /// IPv4 address of client 0 as a SIIT EAM maps it; client `c` is this
    /// plus `c` (the return stream of SIIT runs goes there).
    pub client4: Ipv4Addr,
    /// RFC 6052 /96 prefix the servers are reached through.
    pub pool6: Ipv6Addr,
    /// First IPv4 server address; servers are this plus 0..servers.
    pub server4: Ipv4Addr,
    /// Distinct servers.
    pub servers: u32,
    /// Seed of the port generator (same seed, same flows).
    pub seed: u64,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            flows: 4096,
            protos: vec![Proto::Udp],
            tcp_flags: TcpFlags::Syn,
            frame6: 84,
            client6: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0),
            clients: 65536,
            client_ports: 0,
            client4: Ipv4Addr::new(198, 18, 0, 0),
            pool6: Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0),
            server4: Ipv4Addr::new(203, 0, 113, 0),
            servers: 256,
            seed: 4814,
        }
    }
}

/// One flow's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport.
    pub proto: Proto,
    /// Client index (its IPv6 and SIIT IPv4 addresses follow from it).
    pub client: u32,
    /// Client port, or the ICMP echo identifier.
    pub cport: u16,
    /// Server index.
    pub server: u32,
    /// Server port (0 for ICMP).
    pub sport: u16,
}

/// Link-layer addresses of the frames: (source, destination) MACs.
#[derive(Clone, Copy, Debug)]
pub struct Macs {
    /// Sender (the tester, or the neighbour the appliance knows).
    pub src: [u8; 6],
    /// Receiver (the appliance's port).
    pub dst: [u8; 6],
}

/// xorshift64*: a small deterministic generator, enough for port choice.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi` (the modulo bias is below 2^-40 here).
    fn range(&mut self, lo: u16, hi: u16) -> u16 {
        lo + (self.next() % (u64::from(hi - lo) + 1)) as u16
    }
}

fn add4(a: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a).wrapping_add(n))
}

fn add6(a: Ipv6Addr, n: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a).wrapping_add(u128::from(n)))
}

impl Plan {
    /// The IPv6 address of client `c`.
    pub fn client6(&self, c: u32) -> Ipv6Addr {
        add6(self.client6, c)
    }
    /// The SIIT IPv4 address of client `c`.
    pub fn client4(&self, c: u32) -> Ipv4Addr {
        add4(self.client4, c)
    }
    /// The IPv4 address of server `s`.
    pub fn server4(&self, s: u32) -> Ipv4Addr {
        add4(self.server4, s)
    }
    /// Server `s` as the client addresses it (RFC 6052 §2.2, /96).
    pub fn server6(&self, s: u32) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.pool6) | u128::from(u32::from(self.server4(s))))
    }

    /// The plan's flows, all distinct, in a fixed pseudorandom order.
    pub fn flows(&self) -> Vec<Flow> {
        let mut rng = Rng(self.seed | 1);
        let n = self.flows as usize;
        let mut seen = HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        let clients = self.clients.max(1);
        let servers = self.servers.max(1);
        let mut i = 0u32;
        while out.len() < n {
            let proto = self.protos[i as usize % self.protos.len().max(1)];
            let client = i % clients;
            i = i.wrapping_add(1);
            let server = (rng.next() % u64::from(servers)) as u32;
            // RFC 4814 §4.5: source ports 1024-65535, destinations 1-49151.
            let cport = match self.client_ports {
                0 => rng.range(1024, 65535),
                k => {
                    // Port j of client c: a fixed pseudorandom one.
                    let j = rng.next() % u64::from(k);
                    let x = (u64::from(client) << 20 | j).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
                    1024 + (x % 64512) as u16
                }
            };
            let sport = if proto == Proto::Icmp { 0 } else { rng.range(1, 49151) };
            let f = Flow { proto, client, cport, server, sport };
            if seen.insert(f) {
                out.push(f);
            }
        }
        out
    }

    fn payload_len(&self, frame: usize, ip_hdr: usize, proto: Proto) -> usize {
        let l4 = match proto {
            Proto::Udp | Proto::Icmp => 8,
            Proto::Tcp => 20,
        };
        frame.saturating_sub(L2_OVERHEAD + ip_hdr + l4)
    }

    /// The client's packet of `f` (IPv6, towards pool6), as an Ethernet
    /// frame without FCS. `seq` goes into the TCP sequence / ICMP sequence.
    pub fn frame6(&self, f: &Flow, macs: Macs, seq: u32) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(macs.src, macs.dst).ipv6(
            self.client6(f.client).octets(),
            self.server6(f.server).octets(),
            64,
        );
        let payload = vec![0x5a; self.payload_len(self.frame6, 40, f.proto)];
        let mut out = Vec::with_capacity(self.frame6);
        let r = match f.proto {
            Proto::Udp => b.udp(f.cport, f.sport).write(&mut out, &payload),
            Proto::Icmp => b.icmpv6_echo_request(f.cport, seq as u16).write(&mut out, &payload),
            Proto::Tcp => {
                let t = b.tcp(f.cport, f.sport, seq, 65535);
                match self.tcp_flags {
                    TcpFlags::Syn => t.syn().write(&mut out, &payload),
                    TcpFlags::Ack => t.ack(1).write(&mut out, &payload),
                }
            }
        };
        r.expect("writing to a Vec cannot fail");
        out
    }

    /// The server's answer of `f` to the client's SIIT address (IPv4, for
    /// stateless runs), as an Ethernet frame without FCS.
    pub fn frame4_siit(&self, f: &Flow, macs: Macs, seq: u32) -> Vec<u8> {
        self.frame4_to(f, self.client4(f.client), f.cport, macs, seq)
    }

    /// The server's answer of `f` to the IPv4 transport address `(dst,
    /// dport)` that stands for the client (its EAM address for SIIT, its
    /// pool4 binding for stateful NAT64).
    pub fn frame4_to(&self, f: &Flow, dst: Ipv4Addr, dport: u16, macs: Macs, seq: u32) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(macs.src, macs.dst).ipv4(
            self.server4(f.server).octets(),
            dst.octets(),
            64,
        );
        let payload = vec![0xa5; self.payload_len(self.frame6 - 20, 20, f.proto)];
        let mut out = Vec::with_capacity(self.frame6);
        let r = match f.proto {
            Proto::Udp => b.udp(f.sport, dport).write(&mut out, &payload),
            Proto::Icmp => b.icmpv4_echo_reply(dport, seq as u16).write(&mut out, &payload),
            Proto::Tcp => {
                let t = b.tcp(f.sport, dport, seq, 65535);
                match self.tcp_flags {
                    TcpFlags::Syn => t.syn().ack(seq.wrapping_add(1)).write(&mut out, &payload),
                    TcpFlags::Ack => t.ack(seq.wrapping_add(1)).write(&mut out, &payload),
                }
            }
        };
        r.expect("writing to a Vec cannot fail");
        out
    }

    /// A fixed pool4 binding for every flow, so that the stateful return
    /// stream can be written before the translator runs (its own choice is
    /// random, RFC 6056). Binding `k` is address `k % addrs` of `pool4`,
    /// port `first_port + k / addrs`; flows of one client endpoint share a
    /// binding (endpoint-independent mapping, RFC 6146 §3.5.1). `None` when
    /// the pool has too few ports for the flows.
    pub fn bindings(&self, pool4: Ipv4Addr, addrs: u32, first_port: u16) -> Option<Vec<Binding>> {
        let addrs = addrs.max(1);
        let mut seen = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(self.flows as usize);
        for f in self.flows() {
            let next = seen.len() as u32;
            let k = *seen.entry((f.proto, f.client, f.cport)).or_insert(next);
            let port = u32::from(first_port) + k / addrs;
            out.push(Binding {
                flow: f,
                ipv4: add4(pool4, k % addrs),
                port: u16::try_from(port).ok()?,
                first: k == next,
            });
        }
        Some(out)
    }
}

/// A flow with the pool4 transport address fixed for its client endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The flow.
    pub flow: Flow,
    /// Pool4 address of the client endpoint.
    pub ipv4: Ipv4Addr,
    /// Pool4 port (or ICMP identifier).
    pub port: u16,
    /// The first flow of this client endpoint (the one to declare).
    pub first: bool,
}

impl Binding {
    /// This binding as an entry of nat64d's `static_bib` list (YAML flow
    /// mapping, one line).
    pub fn static_bib_yaml(&self, plan: &Plan) -> String {
        let f = &self.flow;
        format!(
            "{{ protocol: {}, ipv6: \"{}#{}\", ipv4: \"{}#{}\" }}",
            f.proto.name(),
            plan.client6(f.client),
            f.cport,
            self.ipv4,
            self.port
        )
    }
}

/// The answer to a translated IPv4 frame: addresses and ports swapped, TCP
/// SYN answered with SYN+ACK, echo request with echo reply. This is how the
/// return stream of a stateful run is made: the pool4 address and port the
/// translator chose are only known from its output. `None` for frames that
/// are not IPv4 UDP/TCP/ICMP echo.
pub fn answer4(frame: &[u8], macs: Macs) -> Option<Vec<u8>> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let ip = match p.net? {
        etherparse::NetSlice::Ipv4(ip) => ip,
        _ => return None,
    };
    let h = ip.header();
    let b = PacketBuilder::ethernet2(macs.src, macs.dst).ipv4(h.destination(), h.source(), 64);
    let mut out = Vec::with_capacity(frame.len());
    match p.transport? {
        TransportSlice::Udp(u) => {
            b.udp(u.destination_port(), u.source_port()).write(&mut out, u.payload()).ok()?
        }
        TransportSlice::Tcp(t) => {
            let ack = t.sequence_number().wrapping_add(1);
            let s = b.tcp(t.destination_port(), t.source_port(), 1, 65535);
            let s = if t.syn() { s.syn().ack(ack) } else { s.ack(ack) };
            s.write(&mut out, t.payload()).ok()?
        }
        TransportSlice::Icmpv4(i) => match i.icmp_type() {
            etherparse::Icmpv4Type::EchoRequest(e) => {
                b.icmpv4_echo_reply(e.id, e.seq).write(&mut out, i.payload()).ok()?
            }
            _ => return None,
        },
        _ => return None,
    }
    Some(out)
}

/// Write frames to a classic pcap file (microsecond timestamps 1 us apart).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::new(f).map_err(std::io::Error::other)?;
    for (i, fr) in frames.iter().enumerate() {
        let p = PcapPacket::new(Duration::from_micros(i as u64), fr.len() as u32, fr);
        w.write_packet(&p).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Read every frame of a pcap file.
pub fn read_pcap(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut r = PcapReader::new(f).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.map_err(std::io::Error::other)?.data.into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketHeaders};

    const MACS: Macs = Macs { src: [2, 0, 0, 0, 6, 2], dst: [2, 0, 0, 0, 6, 1] };

    #[test]
    fn flows_are_distinct_and_ports_in_rfc4814_ranges() {
        let plan =
            Plan { flows: 20_000, clients: 3, protos: Proto::parse_list("mix").unwrap(), ..Plan::default() };
        let fl = plan.flows();
        assert_eq!(fl.len(), 20_000);
        let set: HashSet<_> = fl.iter().collect();
        assert_eq!(set.len(), fl.len());
        assert!(fl.iter().all(|f| f.cport >= 1024));
        assert!(fl.iter().filter(|f| f.proto != Proto::Icmp).all(|f| (1..=49151).contains(&f.sport)));
        // Pseudorandom, not sequential: consecutive ports rarely differ by one.
        let seqs = fl.windows(2).filter(|w| w[1].cport == w[0].cport.wrapping_add(1)).count();
        assert!(seqs < 10, "{seqs} sequential pairs");
        assert_eq!(plan.flows(), fl, "same seed, same flows");
    }

    #[test]
    fn frame_sizes_count_the_fcs() {
        for proto in [Proto::Udp, Proto::Tcp, Proto::Icmp] {
            for size in [78, 84, 512, 1518] {
                let plan = Plan { frame6: size, protos: vec![proto], flows: 4, ..Plan::default() };
                let f = plan.flows()[1];
                assert_eq!(plan.frame6(&f, MACS, 1).len(), size - 4, "{proto:?} {size}");
                assert_eq!(plan.frame4_siit(&f, MACS, 1).len(), size - 24, "{proto:?} {size}");
            }
        }
    }

    #[test]
    fn frame6_targets_pool6_with_valid_checksums() {
        let plan = Plan { protos: vec![Proto::Udp], flows: 2, ..Plan::default() };
        let f = plan.flows()[0];
        let fr = plan.frame6(&f, MACS, 0);
        let p = SlicedPacket::from_ethernet(&fr).unwrap();
        let Some(NetSlice::Ipv6(ip)) = p.net else { panic!("not IPv6") };
        let dst = ip.header().destination_addr();
        assert_eq!(dst.segments()[..6], [0x2001, 0xdb8, 0x64, 0, 0, 0]);
        assert_eq!(Ipv4Addr::from(u128::from(dst) as u32), plan.server4(f.server));
        let Some(TransportSlice::Udp(u)) = p.transport else { panic!("not UDP") };
        let h = PacketHeaders::from_ethernet_slice(&fr).unwrap();
        let Some(etherparse::NetHeaders::Ipv6(ip6, _)) = h.net else { panic!() };
        let want = u.to_header().calc_checksum_ipv6(&ip6, u.payload()).unwrap();
        assert_eq!(u.checksum(), want);
        assert_eq!((u.source_port(), u.destination_port()), (f.cport, f.sport));
    }

    #[test]
    fn answer_swaps_endpoints_and_answers_syn_and_echo() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([192, 0, 2, 9], [203, 0, 113, 5], 63);
        let mut syn = Vec::new();
        b.tcp(40000, 80, 77, 1000).syn().write(&mut syn, &[]).unwrap();
        let a = answer4(&syn, MACS).unwrap();
        let p = SlicedPacket::from_ethernet(&a).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else { panic!() };
        assert_eq!(ip.header().source(), [203, 0, 113, 5]);
        assert_eq!(ip.header().destination(), [192, 0, 2, 9]);
        let Some(TransportSlice::Tcp(t)) = p.transport else { panic!() };
        assert!(t.syn() && t.ack());
        assert_eq!((t.source_port(), t.destination_port(), t.acknowledgment_number()), (80, 40000, 78));

        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4([192, 0, 2, 9], [203, 0, 113, 5], 63);
        let mut echo = Vec::new();
        b.icmpv4_echo_request(4242, 3).write(&mut echo, &[1, 2, 3]).unwrap();
        let a = answer4(&echo, MACS).unwrap();
        let p = SlicedPacket::from_ethernet(&a).unwrap();
        let Some(TransportSlice::Icmpv4(i)) = p.transport else { panic!() };
        assert_eq!(
            i.icmp_type(),
            etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 4242, seq: 3 })
        );

        let b = PacketBuilder::ethernet2([1; 6], [2; 6]).ipv6([0; 16], [1; 16], 63);
        let mut v6 = Vec::new();
        b.udp(1, 2).write(&mut v6, &[]).unwrap();
        assert!(answer4(&v6, MACS).is_none(), "IPv6 is not answered");
    }

    #[test]
    fn bindings_share_one_per_client_endpoint_and_stay_in_the_pool() {
        // 3 clients: many flows per client endpoint share its binding.
        let plan = Plan { flows: 50_000, clients: 3, ..Plan::default() };
        let pool = Ipv4Addr::new(198, 51, 100, 0);
        let bs = plan.bindings(pool, 64, 1024).unwrap();
        assert_eq!(bs.len(), 50_000);
        let mut by_ep = std::collections::HashMap::new();
        for b in &bs {
            let ep = (b.flow.proto, b.flow.client, b.flow.cport);
            assert_eq!(*by_ep.entry(ep).or_insert((b.ipv4, b.port)), (b.ipv4, b.port), "{ep:?}");
            assert!(u32::from(b.ipv4) - u32::from(pool) < 64 && b.port >= 1024);
        }
        let declared: HashSet<_> = bs.iter().filter(|b| b.first).map(|b| (b.ipv4, b.port)).collect();
        assert_eq!(declared.len(), by_ep.len(), "one declared binding per endpoint, all distinct");
        assert!(by_ep.len() < bs.len(), "some endpoints carry several flows");
        assert!(plan.bindings(pool, 1, 65535).is_none(), "pool too small");
        let y = bs[0].static_bib_yaml(&plan);
        assert!(y.starts_with("{ protocol: udp, ipv6: \"2001:db8:1::#"), "{y}");
    }

    #[test]
    fn client_ports_bound_the_client_endpoints() {
        let plan = Plan { flows: 20_000, clients: 100, client_ports: 2, ..Plan::default() };
        let fl = plan.flows();
        assert_eq!(fl.iter().collect::<HashSet<_>>().len(), 20_000);
        let eps: HashSet<_> = fl.iter().map(|f| (f.client, f.cport)).collect();
        assert!(eps.len() <= 200 && eps.len() > 150, "{} endpoints", eps.len());
        assert!(fl.iter().all(|f| f.cport >= 1024));
        let bs = plan.bindings(Ipv4Addr::new(198, 51, 100, 0), 64, 1024).unwrap();
        assert_eq!(bs.iter().filter(|b| b.first).count(), eps.len());
    }

    #[test]
    fn return_frame_goes_to_the_binding_with_valid_checksums() {
        let plan = Plan { flows: 2, ..Plan::default() };
        let f = plan.flows()[1];
        let fr = plan.frame4_to(&f, Ipv4Addr::new(198, 51, 100, 7), 2000, MACS, 1);
        assert_eq!(fr.len(), 84 - 24);
        let h = PacketHeaders::from_ethernet_slice(&fr).unwrap();
        let Some(etherparse::NetHeaders::Ipv4(ip4, _)) = h.net else { panic!("not IPv4") };
        assert_eq!(ip4.destination, [198, 51, 100, 7]);
        assert_eq!(ip4.header_checksum, ip4.calc_header_checksum());
        let Some(etherparse::TransportHeader::Udp(u)) = h.transport else { panic!("not UDP") };
        assert_eq!((u.source_port, u.destination_port), (f.sport, 2000));
        assert_eq!(u.checksum, u.calc_checksum_ipv4(&ip4, h.payload.slice()).unwrap());
    }

    #[test]
    fn pcap_round_trip() {
        let dir = std::env::temp_dir().join(format!("perf-flows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plan = Plan { flows: 10, ..Plan::default() };
        let frames: Vec<Vec<u8>> = plan.flows().iter().map(|f| plan.frame6(f, MACS, 0)).collect();
        let path = dir.join("x.pcap");
        write_pcap(&path, &frames).unwrap();
        assert_eq!(read_pcap(&path).unwrap(), frames);
        std::fs::remove_dir_all(&dir).ok();
    }
}
