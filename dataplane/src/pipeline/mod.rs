//! One worker's packet path, independent of DPDK: classify a received
//! frame, answer what is addressed to the appliance (ARP, NDP, echo), hand
//! the rest to the translation instance that claims its destination, then
//! route the result, resolve the next hop and send it.
//!
//! Packets move by value: each one ends sent (through the [`Sink`]), held
//! in the neighbour queue, or dropped and counted under a named reason.
//! The worker loop runs this on mbufs; tests run it on [`VecBuf`]s.
//!
//! [`VecBuf`]: crate::buf::VecBuf

mod express;
pub mod local;
pub mod lookahead;
pub mod neigh;
pub mod route;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::buf::{BufAlloc, PacketBuf};
use crate::ops::{Request, Response};
use crate::wire::arp::op;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::icmpv4;
use crate::wire::icmpv6::{self, NdpNeighbor};
use crate::wire::ip::protocol;
use crate::wire::{ArpPacket, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet};
use crate::xlate::{DropReason as XlateDrop, Verdict};
use neigh::{NeighConfig, NeighKey, NeighTable, Resolve, Tick};
use route::RouteTable;

/// Where translated and locally generated packets go: a TX buffer per port.
pub trait Sink<B> {
    /// Queue `pkt` for transmission on `port`.
    fn send(&mut self, port: u16, pkt: B);
    /// Hand an IPv4 packet (buffer at the IP header) to `worker`, which
    /// owns its state. Without other workers there is nobody to hand to.
    fn handoff(&mut self, _worker: u16, _pkt: B) {}
}

/// Extra packets one translation produced (IPv4 -> IPv6 fragments).
/// Preallocated; see [`EXTRA_MAX`].
pub type Extra<B> = Vec<B>;
/// The most extra packets one translation may produce.
pub const EXTRA_MAX: usize = 64;

/// What an instance did with a packet it was given.
#[derive(Debug)]
pub enum Translated<B> {
    /// The translator's verdict; the packet comes back to the pipeline.
    Done(Verdict, B),
    /// The instance keeps the packet for now (an unsolicited IPv4 SYN held
    /// for RFC 6146 §3.5.2.2); it comes back through [`Instance::tick`].
    Held,
}

/// A translation instance (stateless SIIT or stateful NAT64) as the
/// pipeline sees it.
pub trait Instance<B: PacketBuf> {
    /// Does this instance translate IPv6 packets to `dst`?
    fn claims_v6(&self, dst: Ipv6Addr) -> bool;
    /// Does this instance translate IPv4 packets to `dst`?
    fn claims_v4(&self, dst: Ipv4Addr) -> bool;
    /// Should the appliance answer ARP for `a` (pool4, EAMT)?
    fn answers_arp(&self, a: Ipv4Addr) -> bool;
    /// The worker that owns the state of this IPv4 packet (buffer at the IP
    /// header), when the instance splits its state between workers.
    fn owner_v4(&self, _ip: &[u8]) -> Option<u16> {
        None
    }
    /// Does this instance hold a binding for this IPv4 packet's
    /// destination transport address (so it, not the appliance, should
    /// answer an echo request to an address both share)?
    fn binds_v4(&self, _ip: &[u8]) -> bool {
        false
    }
    /// One stage of the state look-ahead for a received packet (buffer at
    /// the IP header; `v6` says which family; `pos`, its position in the
    /// burst, lets stage 0 leave notes for the later ones), if this
    /// instance claims it: see [`Pipeline::prefetch`]. Returns whether a
    /// later stage has work.
    fn prefetch(&self, _v6: bool, _ip: &[u8], _pos: usize, _stage: u8) -> bool {
        false
    }
    /// A staggered stage (`stage >= lookahead::PASSES`) of the packet at
    /// `pos`: only IPv4-side chains are that long, and they go on from
    /// their notes, so there is no frame to read.
    fn prefetch_staggered(&self, _pos: usize, _stage: u8) -> bool {
        false
    }
    /// Whether [`Instance::prefetch`] has work now (stateful NAT64 whose
    /// tables outgrew the caches). Asked once per burst, so a worker whose
    /// instances have nothing to fetch skips the look-ahead altogether.
    fn lookahead(&self) -> bool {
        false
    }
    /// The common case of [`Instance::to_v4`] in one pass (see
    /// `xlate::express`): `ip` is the packet from its IPv6 header on.
    /// Returns the IPv4 destination and length, the IPv4 packet now
    /// starting 20 bytes into `ip`; `None` leaves `ip` and the instance
    /// untouched, for `to_v4`. When the instance is the pipeline's only
    /// one, [`Instance::claims_v6`] is not asked first: a destination it
    /// does not claim must give `None`.
    fn express_v4(&mut self, _now: u64, _ip: &mut [u8]) -> Option<(Ipv4Addr, usize)> {
        None
    }
    /// [`Instance::express_v4`] the other way: `pkt` is 20 bytes of room,
    /// then the packet from its IPv4 header. Returns the IPv6 destination
    /// and length, the IPv6 packet now starting at `pkt[0]`. Asked after
    /// [`Instance::claims_v4`] but before [`Instance::owner_v4`]: a packet
    /// whose state another worker owns must give `None` (the general path
    /// hands it over).
    fn express_v6(&mut self, _now: u64, _pkt: &mut [u8]) -> Option<(Ipv6Addr, usize)> {
        None
    }
    /// Translate an IPv6 packet (buffer at the IP header) to IPv4.
    fn to_v4<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B>;
    /// Translate an IPv4 packet (buffer at the IP header) to IPv6.
    fn to_v6<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B>;
    /// Timers between bursts (session expiry, held SYNs). Packets the
    /// instance must send (ICMP errors for expired held SYNs, of either
    /// family) go to `out`; the pipeline routes them by IP version.
    fn tick<A: BufAlloc<Buf = B>>(&mut self, _now: u64, _alloc: &mut A, _out: &mut Extra<B>) {}
    /// Answer an operator request addressed to this instance (`index` is
    /// its position in the configuration). Stateless instances have no
    /// tables to show or change.
    fn handle(&mut self, _index: usize, _now: u64, req: &Request) -> Response {
        match req {
            Request::Nat64Stats => Response::Nat64Stats(Vec::new()),
            _ => Response::Done(Err("not a stateful NAT64 instance".into())),
        }
    }
    /// Can this instance take `update` live? (Checked on every instance
    /// before any is changed.)
    fn can_reload(&self, _update: &crate::ops::InstanceUpdate) -> Result<(), String> {
        Err("this instance cannot be reconfigured live".into())
    }
    /// Apply `update` (after `can_reload` said yes). Returns the sessions
    /// and BIB entries it ended.
    fn reload(&mut self, _now: u64, _update: &crate::ops::InstanceUpdate) -> (u64, u64) {
        (0, 0)
    }
}

/// One interface: a port, optionally one VLAN on it.
#[derive(Debug, Clone)]
pub struct Iface {
    /// DPDK port index.
    pub port: u16,
    /// 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// The interface's MAC.
    pub mac: [u8; 6],
    /// Its IPv4 addresses.
    pub v4: Vec<Ipv4Addr>,
    /// Its IPv6 addresses (a link-local one is derived from the MAC).
    pub v6: Vec<Ipv6Addr>,
}

impl Iface {
    /// An interface with its EUI-64 link-local address added (RFC 4291 §2.5.1).
    pub fn new(port: u16, vlan: Option<u16>, mac: [u8; 6], v4: Vec<Ipv4Addr>, mut v6: Vec<Ipv6Addr>) -> Self {
        let ll = Ipv6Addr::new(
            0xfe80,
            0,
            0,
            0,
            u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
            u16::from_be_bytes([mac[2], 0xff]),
            u16::from_be_bytes([0xfe, mac[3]]),
            u16::from_be_bytes([mac[4], mac[5]]),
        );
        if !v6.contains(&ll) {
            v6.push(ll);
        }
        Iface { port, vlan, mac, v4, v6 }
    }
}

/// Drops the pipeline itself decides (the translator's have their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeDrop {
    /// Shorter than an Ethernet (+ VLAN) header.
    L2Truncated,
    /// Unicast to another MAC (promiscuous port).
    NotOurMac,
    /// A VLAN (or untagged) with no interface configured.
    UnknownVlan,
    /// Neither IPv4, IPv6 nor ARP.
    UnsupportedEthertype,
    /// An ARP packet that does not parse.
    BadArp,
    /// ARP for an address the appliance does not answer for.
    ArpNotForUs,
    /// An IPv4 header that does not parse.
    BadIpv4,
    /// An IPv6 header that does not parse.
    BadIpv6,
    /// Addressed to the appliance but nothing it answers (e.g. TCP to it).
    LocalNotServed,
    /// Link-local multicast or broadcast the appliance ignores.
    MulticastIgnored,
    /// No translation instance claims the destination.
    NoInstance,
    /// No route to the translated packet's destination.
    NoRoute,
    /// The egress interface has no address of the family to ask from.
    NoSourceAddress,
    /// Not enough headroom for the link-layer header.
    NoHeadroom,
    /// The next hop did not answer ARP / NDP.
    NeighUnresolved,
    /// The neighbour table or its hold queue is full.
    NeighFull,
    /// A translation produced more extra packets than allowed.
    ExtraOverflow,
    /// No buffer for a request the appliance had to send.
    NoBuffer,
}

impl PipeDrop {
    /// All variants, in counter order.
    pub const ALL: [PipeDrop; 18] = [
        PipeDrop::L2Truncated,
        PipeDrop::NotOurMac,
        PipeDrop::UnknownVlan,
        PipeDrop::UnsupportedEthertype,
        PipeDrop::BadArp,
        PipeDrop::ArpNotForUs,
        PipeDrop::BadIpv4,
        PipeDrop::BadIpv6,
        PipeDrop::LocalNotServed,
        PipeDrop::MulticastIgnored,
        PipeDrop::NoInstance,
        PipeDrop::NoRoute,
        PipeDrop::NoSourceAddress,
        PipeDrop::NoHeadroom,
        PipeDrop::NeighUnresolved,
        PipeDrop::NeighFull,
        PipeDrop::ExtraOverflow,
        PipeDrop::NoBuffer,
    ];

    /// Stable snake_case name (a metric label).
    pub const fn name(self) -> &'static str {
        match self {
            PipeDrop::L2Truncated => "l2_truncated",
            PipeDrop::NotOurMac => "not_our_mac",
            PipeDrop::UnknownVlan => "unknown_vlan",
            PipeDrop::UnsupportedEthertype => "unsupported_ethertype",
            PipeDrop::BadArp => "bad_arp",
            PipeDrop::ArpNotForUs => "arp_not_for_us",
            PipeDrop::BadIpv4 => "bad_ipv4",
            PipeDrop::BadIpv6 => "bad_ipv6",
            PipeDrop::LocalNotServed => "local_not_served",
            PipeDrop::MulticastIgnored => "multicast_ignored",
            PipeDrop::NoInstance => "no_instance",
            PipeDrop::NoRoute => "no_route",
            PipeDrop::NoSourceAddress => "no_source_address",
            PipeDrop::NoHeadroom => "no_headroom",
            PipeDrop::NeighUnresolved => "neighbour_unresolved",
            PipeDrop::NeighFull => "neighbour_full",
            PipeDrop::ExtraOverflow => "extra_overflow",
            PipeDrop::NoBuffer => "no_buffer",
        }
    }
}

/// Number of translator drop reasons.
pub const XLATE_DROPS: usize = XlateDrop::ALL.len();

/// One worker's pipeline counters: plain integers, written by the worker
/// only, published by copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Frames received.
    pub rx: u64,
    /// Frames handed to the sink.
    pub tx: u64,
    /// IPv6 packets translated to IPv4.
    pub v6_to_v4: u64,
    /// IPv4 packets translated to IPv6.
    pub v4_to_v6: u64,
    /// Packets translated and sent back to their own family (RFC 7757 §4).
    pub hairpins: u64,
    /// ICMP errors the translator originated.
    pub icmp_errors: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ARP requests sent.
    pub arp_requests: u64,
    /// Neighbour advertisements sent.
    pub nd_adverts: u64,
    /// Neighbour solicitations sent.
    pub nd_solicits: u64,
    /// Echo replies sent.
    pub echo_replies: u64,
    /// Neighbours learned.
    pub neigh_learned: u64,
    /// IPv4 packets an instance kept (held SYNs, RFC 6146 §3.5.2.2).
    pub held: u64,
    /// IPv4 packets handed to the worker that owns their state.
    pub handoffs: u64,
    /// IPv4 packets other workers handed to this one.
    pub handoffs_received: u64,
    /// Packets the express path translated (the common case in one pass,
    /// `express.rs`); counted in `v6_to_v4` / `v4_to_v6` too.
    pub express: u64,
    /// Translated packets and bytes by direction and protocol, indexed
    /// like [`Stats::TRANSLATED`].
    pub translated: [u64; 16],
    /// Drops by pipeline reason, indexed like [`PipeDrop::ALL`].
    pub drops: [u64; PipeDrop::ALL.len()],
    /// Drops by translator reason, indexed like `xlate::DropReason::ALL`.
    pub xlate_drops: [u64; XLATE_DROPS],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            rx: 0,
            tx: 0,
            v6_to_v4: 0,
            v4_to_v6: 0,
            hairpins: 0,
            icmp_errors: 0,
            arp_replies: 0,
            arp_requests: 0,
            nd_adverts: 0,
            nd_solicits: 0,
            echo_replies: 0,
            neigh_learned: 0,
            held: 0,
            handoffs: 0,
            handoffs_received: 0,
            express: 0,
            translated: [0; 16],
            drops: [0; PipeDrop::ALL.len()],
            xlate_drops: [0; XLATE_DROPS],
        }
    }
}

impl Stats {
    /// Names of the scalar counters, in [`Stats::to_array_into`] order.
    pub const SCALARS: [&'static str; 16] = [
        "rx",
        "tx",
        "v6_to_v4",
        "v4_to_v6",
        "hairpins",
        "icmp_errors",
        "arp_replies",
        "arp_requests",
        "nd_adverts",
        "nd_solicits",
        "echo_replies",
        "neigh_learned",
        "held",
        "handoffs",
        "handoffs_received",
        "express",
    ];
    /// Names of the cells of `translated`: direction, protocol, unit.
    pub const TRANSLATED: [&'static str; 16] = [
        "v6_to_v4_tcp_packets",
        "v6_to_v4_udp_packets",
        "v6_to_v4_icmp_packets",
        "v6_to_v4_other_packets",
        "v6_to_v4_tcp_bytes",
        "v6_to_v4_udp_bytes",
        "v6_to_v4_icmp_bytes",
        "v6_to_v4_other_bytes",
        "v4_to_v6_tcp_packets",
        "v4_to_v6_udp_packets",
        "v4_to_v6_icmp_packets",
        "v4_to_v6_other_packets",
        "v4_to_v6_tcp_bytes",
        "v4_to_v6_udp_bytes",
        "v4_to_v6_icmp_bytes",
        "v4_to_v6_other_bytes",
    ];
    /// Length of the flat form: scalars, translated cells, pipeline drops,
    /// translator drops.
    pub const LEN: usize = Self::SCALARS.len() + 16 + PipeDrop::ALL.len() + XLATE_DROPS;

    /// Every named cell of the flat form that is not a drop: scalars, then
    /// the translated cells.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let mut a = [0u64; Self::LEN];
        self.to_array_into(&mut a);
        Self::SCALARS.iter().chain(Self::TRANSLATED.iter()).copied().zip(a).collect::<Vec<_>>().into_iter()
    }

    /// Count one translated packet: `to_v4` is the direction, `ip` the
    /// packet after translation.
    #[inline(always)]
    fn count_translated(&mut self, to_v4: bool, ip: &[u8]) {
        let proto = if to_v4 {
            ip.get(9).copied()
        } else {
            // Look through a fragment header, the only extension header a
            // translator writes (RFC 7915 §4.1).
            match ip.get(6).copied() {
                Some(44) => ip.get(40).copied(),
                p => p,
            }
        };
        let p = match proto {
            Some(6) => 0,
            Some(17) => 1,
            Some(1 | 58) => 2,
            _ => 3,
        };
        let base = if to_v4 { 0 } else { 8 };
        self.translated[base + p] += 1;
        self.translated[base + 4 + p] += ip.len() as u64;
    }

    /// Flatten into `out`, for publishing with plain stores.
    pub fn to_array_into(&self, out: &mut [u64; Self::LEN]) {
        let s = [
            self.rx,
            self.tx,
            self.v6_to_v4,
            self.v4_to_v6,
            self.hairpins,
            self.icmp_errors,
            self.arp_replies,
            self.arp_requests,
            self.nd_adverts,
            self.nd_solicits,
            self.echo_replies,
            self.neigh_learned,
            self.held,
            self.handoffs,
            self.handoffs_received,
            self.express,
        ];
        let (a, rest) = out.split_at_mut(s.len());
        let (t, rest) = rest.split_at_mut(16);
        let (b, c) = rest.split_at_mut(PipeDrop::ALL.len());
        a.copy_from_slice(&s);
        t.copy_from_slice(&self.translated);
        b.copy_from_slice(&self.drops);
        c.copy_from_slice(&self.xlate_drops);
    }

    /// Rebuild from the flat form.
    pub fn from_array(a: &[u64; Self::LEN]) -> Stats {
        let n = Self::SCALARS.len();
        let mut s = Stats {
            rx: a[0],
            tx: a[1],
            v6_to_v4: a[2],
            v4_to_v6: a[3],
            hairpins: a[4],
            icmp_errors: a[5],
            arp_replies: a[6],
            arp_requests: a[7],
            nd_adverts: a[8],
            nd_solicits: a[9],
            echo_replies: a[10],
            neigh_learned: a[11],
            held: a[12],
            handoffs: a[13],
            handoffs_received: a[14],
            express: a[15],
            ..Stats::default()
        };
        s.translated.copy_from_slice(&a[n..n + 16]);
        let n = n + 16;
        s.drops.copy_from_slice(&a[n..n + PipeDrop::ALL.len()]);
        s.xlate_drops.copy_from_slice(&a[n + PipeDrop::ALL.len()..]);
        s
    }

    /// Add another worker's counters (for totals).
    pub fn add(&mut self, o: &Stats) {
        let (mut a, mut b) = ([0u64; Self::LEN], [0u64; Self::LEN]);
        self.to_array_into(&mut a);
        o.to_array_into(&mut b);
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        *self = Self::from_array(&a);
    }

    /// The value of a scalar counter by name.
    pub fn scalar(&self, name: &str) -> Option<u64> {
        let mut a = [0u64; Self::LEN];
        self.to_array_into(&mut a);
        Self::SCALARS.iter().position(|n| *n == name).map(|i| a[i])
    }

    /// The count of one pipeline drop reason.
    pub fn drop_count(&self, r: PipeDrop) -> u64 {
        self.drops[r as usize]
    }
    /// The count of one translator drop reason.
    pub fn xlate_drop_count(&self, r: XlateDrop) -> u64 {
        self.xlate_drops[r as usize]
    }
}

/// The longest link-layer header the pipeline writes: Ethernet + 802.1Q.
const L2_MAX: usize = crate::wire::ethernet::HEADER_LEN + crate::wire::ethernet::VLAN_TAG_LEN;

/// A recent next hop of one family and the link-layer header that reaches
/// it. A translated packet's neighbour is mostly a gateway, or one of a
/// few on-link hosts, so while the neighbour table's generation is the
/// same and the entry fresh, the header is copied without asking the
/// table. A stale entry (RFC 4861 §7.3.3: re-confirm) or any change to
/// the table sends the packet the general way, which refills the slot.
/// The route is still looked up per packet.
#[derive(Clone, Copy)]
struct NextHop {
    /// The neighbour's address (an IPv4 one widened).
    nh: u128,
    iface: u16,
    port: u16,
    /// [`NeighTable::generation`] when this was filled.
    generation: u64,
    /// Usable while `now` is below this (0: empty).
    until: u64,
    hdr: [u8; L2_MAX],
    hdr_len: u8,
}

impl NextHop {
    const EMPTY: NextHop =
        NextHop { nh: 0, iface: 0, port: 0, generation: 0, until: 0, hdr: [0; L2_MAX], hdr_len: 0 };

    #[inline]
    fn serves(&self, nh: u128, iface: u16, generation: u64, now: u64) -> bool {
        self.nh == nh && self.iface == iface && self.generation == generation && now < self.until
    }

    /// Copy the header to the front of `frame` (false when shorter). Two
    /// fixed sizes, so each copy is a few moves, not a call to `memcpy`.
    #[inline]
    fn write_header(&self, frame: &mut [u8]) -> bool {
        const ETH: usize = crate::wire::ethernet::HEADER_LEN;
        let to = if usize::from(self.hdr_len) == L2_MAX {
            frame.get_mut(..L2_MAX).map(|h| h.copy_from_slice(&self.hdr))
        } else {
            frame.get_mut(..ETH).map(|h| h.copy_from_slice(&self.hdr[..ETH]))
        };
        to.is_some()
    }
}

/// Next hops remembered per family, direct-mapped by the low bits of the
/// neighbour's address (a power of two).
const HOP_SLOTS: usize = 8;

/// The slot of a next hop with address bits `nh`.
#[inline]
fn hop_slot(nh: u128) -> usize {
    nh as usize & (HOP_SLOTS - 1)
}

/// An address as the key of a [`NextHop`].
#[inline]
fn nh_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address [`nh_bits`] made `bits` from.
fn nh_addr(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

/// One worker's pipeline.
pub struct Pipeline<B: PacketBuf, I> {
    /// Interfaces; routes name them by index. Fixed after construction
    /// (the next-hop cache keeps their MACs and VLANs).
    pub ifaces: Vec<Iface>,
    /// IPv4 routes.
    pub routes4: RouteTable<Ipv4Addr>,
    /// IPv6 routes.
    pub routes6: RouteTable<Ipv6Addr>,
    /// Next hops.
    pub neigh: NeighTable<B>,
    /// Translation instances, tried in order.
    pub instances: Vec<I>,
    /// Counters.
    pub stats: Stats,
    /// This worker's index (for handing packets to their owner).
    pub worker: u16,
    extra: Extra<B>,
    /// Recent next hops, per family: `[IPv6, IPv4]`.
    hops: [[NextHop; HOP_SLOTS]; 2],
    /// Each interface's IPv6 addresses (by index, as `ifaces`), as the
    /// per-packet test wants them: there are at least two (the link-local
    /// one is added).
    own6: Vec<local::OwnAddrs<Ipv6Addr>>,
    /// Each interface's IPv4 addresses, the same way: the filter answers
    /// "not ours" for nearly every packet without a compare loop.
    own4: Vec<local::OwnAddrs<Ipv4Addr>>,
    /// By port: the index of its untagged interface (`u16::MAX`: none).
    untagged: Vec<u16>,
    /// Whether frames try the express path first (see `express.rs`). Off,
    /// every frame takes the general path (for comparing the two).
    pub express: bool,
}

/// Link-layer facts of the received frame that answers need.
#[derive(Clone, Copy)]
struct Rx {
    iface: usize,
    src_mac: [u8; 6],
}

impl<B: PacketBuf, I: Instance<B>> Pipeline<B, I> {
    /// A pipeline over `ifaces` with connected routes for their subnets
    /// added by the caller (see `routes4` / `routes6`).
    pub fn new(ifaces: Vec<Iface>, instances: Vec<I>, neigh: NeighConfig) -> Self {
        Pipeline {
            own6: ifaces.iter().map(|i| local::OwnAddrs::new(&i.v6, |a| a.octets()[15])).collect(),
            own4: ifaces.iter().map(|i| local::OwnAddrs::new(&i.v4, |a| a.octets()[3])).collect(),
            untagged: untagged_by_port(&ifaces),
            express: true,
            ifaces,
            routes4: RouteTable::new(),
            routes6: RouteTable::new(),
            neigh: NeighTable::new(neigh),
            instances,
            stats: Stats::default(),
            worker: 0,
            extra: Vec::with_capacity(EXTRA_MAX),
            hops: [[NextHop::EMPTY; HOP_SLOTS]; 2],
        }
    }

    #[inline]
    fn drop(&mut self, r: PipeDrop) {
        self.stats.drops[r as usize] += 1;
    }

    /// One stage of the look-ahead for the received frame `d`, before
    /// [`Pipeline::process`]: the instance that will translate it requests
    /// the state it will read (stateful NAT64: session tables) without
    /// waiting for it. A worker runs the first stages over its whole burst,
    /// one after the other, and the later ones between the packets'
    /// processing ([`lookahead`]): the burst's cache misses overlap. `pos`
    /// is the frame's position in the burst, the same at every stage; the
    /// staggered stages go on from what stage 0 noted there and do not read
    /// `d`. Changes nothing the translation reads, counts nothing; frames it
    /// does not understand are left to `process`.
    #[inline(always)]
    pub fn prefetch(&self, pos: usize, d: &[u8], stage: u8) -> bool {
        if usize::from(stage) >= lookahead::PASSES {
            // Staggered: from the notes, without the frame or the gate the
            // worker checked for the burst (each instance keeps its own).
            return self.instances.iter().fold(false, |more, i| i.prefetch_staggered(pos, stage) | more);
        }
        if !self.lookahead_active() {
            return false;
        }
        let Some((et, l2, _)) = l2_header(d) else { return false };
        let Some(ip) = d.get(l2..) else { return false };
        let v6 = match et {
            EtherType::IPV6 => true,
            EtherType::IPV4 => false,
            _ => return false,
        };
        // Each instance looks at what it claims (SIIT has no state to
        // fetch); a hint for the wrong one costs only its cycles.
        let mut more = false;
        for i in &self.instances {
            more |= i.prefetch(v6, ip, pos, stage);
        }
        more
    }

    /// Whether any instance's look-ahead has work now: a worker asks once
    /// per burst and skips [`Pipeline::prefetch`] when none has.
    #[inline]
    pub fn lookahead_active(&self) -> bool {
        self.instances.iter().any(|i| i.lookahead())
    }

    /// Process one received frame from `port`.
    pub fn process<A, S>(&mut self, now: u64, port: u16, mut pkt: B, alloc: &mut A, sink: &mut S)
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        self.stats.rx += 1;
        if self.express {
            match self.express(now, port, pkt, alloc, sink) {
                Ok(()) => return,
                Err(p) => pkt = p,
            }
        }
        let d = pkt.data();
        let Some((et, l2, vlan)) = l2_header(d) else {
            return self.drop(PipeDrop::L2Truncated);
        };
        let Some((iface, ifc)) =
            self.ifaces.iter().enumerate().find(|(_, i)| i.port == port && i.vlan == vlan)
        else {
            return self.drop(PipeDrop::UnknownVlan);
        };
        // l2_header saw the whole Ethernet header.
        let eth = EthernetFrame::new_unchecked(d);
        let dst_mac = eth.dst_addr();
        if dst_mac.0 != ifc.mac && dst_mac.is_unicast() {
            return self.drop(PipeDrop::NotOurMac);
        }
        let rx = Rx { iface, src_mac: eth.src_addr().0 };
        match et {
            EtherType::ARP => self.arp(now, rx, l2, pkt, sink),
            EtherType::IPV6 => {
                pkt.adj(l2);
                self.ipv6(now, rx, pkt, alloc, sink)
            }
            EtherType::IPV4 => {
                pkt.adj(l2);
                self.ipv4(now, rx, pkt, alloc, sink)
            }
            _ => self.drop(PipeDrop::UnsupportedEthertype),
        }
    }

    fn answers_arp_for(&self, iface: usize, a: Ipv4Addr) -> bool {
        self.ifaces[iface].v4.contains(&a) || self.instances.iter().any(|i| i.answers_arp(a))
    }

    // Cold, apart: ARP is rare next to the translated packets whose
    // per-frame path it would otherwise share.
    #[cold]
    #[inline(never)]
    fn arp<S: Sink<B>>(&mut self, now: u64, rx: Rx, l2: usize, mut pkt: B, sink: &mut S) {
        let Ok(arp) = ArpPacket::new_checked(&pkt.data()[l2..]) else {
            return self.drop(PipeDrop::BadArp);
        };
        let (oper, sha, spa, tpa) =
            (arp.operation(), arp.sender_hw_addr().0, arp.sender_ip_addr(), arp.target_ip_addr());
        let ours = self.answers_arp_for(rx.iface, tpa);
        let key = NeighKey { iface: rx.iface as u16, addr: IpAddr::V4(spa) };
        // RFC 826 "merge": update a known sender; add it when the packet is for us.
        if !spa.is_unspecified() {
            if ours {
                self.learn(now, key, sha, sink);
            } else {
                self.refresh(now, key, sha, sink);
            }
        }
        if !ours {
            return self.drop(PipeDrop::ArpNotForUs);
        }
        if oper != op::REQUEST {
            return; // a reply to us: learned above
        }
        let iface = &self.ifaces[rx.iface];
        let (port, mac) = (iface.port, iface.mac);
        local::arp_reply_in_place(pkt.data_mut(), l2, mac);
        self.stats.arp_replies += 1;
        self.send(port, pkt, sink);
    }

    fn learn<S: Sink<B>>(&mut self, now: u64, key: NeighKey, mac: [u8; 6], sink: &mut S) {
        let port = self.ifaces[usize::from(key.iface)].port;
        let mut tx = 0;
        self.neigh.learn(key, mac, now, &mut |m, mut p: B| {
            p.data_mut()[0..6].copy_from_slice(&m);
            sink.send(port, p);
            tx += 1;
        });
        self.stats.tx += tx;
        self.stats.neigh_learned += 1;
    }

    fn refresh<S: Sink<B>>(&mut self, now: u64, key: NeighKey, mac: [u8; 6], sink: &mut S) {
        let port = self.ifaces[usize::from(key.iface)].port;
        let mut tx = 0;
        self.neigh.refresh(key, mac, now, &mut |m, mut p: B| {
            p.data_mut()[0..6].copy_from_slice(&m);
            sink.send(port, p);
            tx += 1;
        });
        self.stats.tx += tx;
    }

    /// Apply a neighbour another worker learned.
    pub fn neigh_update<S: Sink<B>>(&mut self, now: u64, key: NeighKey, mac: [u8; 6], sink: &mut S) {
        let Some(iface) = self.ifaces.get(usize::from(key.iface)) else { return };
        let port = iface.port;
        let mut tx = 0;
        self.neigh.update(key, mac, now, &mut |m, mut p: B| {
            p.data_mut()[0..6].copy_from_slice(&m);
            sink.send(port, p);
            tx += 1;
        });
        self.stats.tx += tx;
    }

    #[inline]
    fn send<S: Sink<B>>(&mut self, port: u16, pkt: B, sink: &mut S) {
        self.stats.tx += 1;
        sink.send(port, pkt);
    }

    // Apart from `process` (and from the other family): one function
    // holding both families' translators spills more registers than a call
    // costs.
    #[inline(never)]
    fn ipv6<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        rx: Rx,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) {
        let dst = match Ipv6Packet::new_checked(pkt.data()) {
            Ok(ip) => ip.dst_addr(),
            Err(_) => return self.drop(PipeDrop::BadIpv6),
        };
        if dst.is_multicast() || self.own6[rx.iface].contains(dst, dst.octets()[15]) {
            return self.local_v6(now, rx, pkt, sink);
        }
        let Some(inst) = self.instances.iter_mut().find(|i| i.claims_v6(dst)) else {
            return self.drop(PipeDrop::NoInstance);
        };
        match inst.to_v4(now, pkt, alloc, &mut self.extra) {
            Translated::Done(verdict, pkt) => self.after_translation(now, verdict, pkt, true, alloc, sink),
            Translated::Held => self.flush_extra(now, true, alloc, sink),
        }
    }

    // Apart from `process` (and from the other family): one function
    // holding both families' translators spills more registers than a call
    // costs.
    #[inline(never)]
    fn ipv4<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        rx: Rx,
        mut pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) {
        let (dst, proto, hl, total) = match Ipv4Packet::new_checked(pkt.data()) {
            Ok(ip) => (ip.dst_addr(), ip.protocol(), ip.header_len(), usize::from(ip.total_len())),
            Err(_) => return self.drop(PipeDrop::BadIpv4),
        };
        if dst.is_broadcast() || dst.is_multicast() {
            return self.drop(PipeDrop::MulticastIgnored);
        }
        if self.own4[rx.iface].contains(dst, dst.octets()[3]) {
            // RFC 1122 §3.2.2.6: answer echo requests to our addresses,
            // unless a static binding forwards them to an IPv6 host.
            // The message is what the header's total length says (checked
            // above): link-layer padding after it is not part of it.
            let is_echo = proto == protocol::ICMP
                && Icmpv4Packet::new_checked(&pkt.data()[hl..total])
                    .is_ok_and(|i| i.msg_type() == icmpv4::types::ECHO_REQUEST);
            if is_echo && !self.instances.iter().any(|i| i.binds_v4(pkt.data())) {
                pkt.truncate(total);
                local::echo_reply_v4(pkt.data_mut());
                self.stats.echo_replies += 1;
                return self.reply_l2(rx, pkt, EtherType::IPV4, sink);
            }
            // Anything else to our own address is translated when pool4
            // shares it (an appliance masquerading behind its own address).
            if !self.instances.iter().any(|i| i.claims_v4(dst)) {
                return self.drop(PipeDrop::LocalNotServed);
            }
        }
        let Some(inst) = self.instances.iter_mut().find(|i| i.claims_v4(dst)) else {
            return self.drop(PipeDrop::NoInstance);
        };
        // The pool4 slice of the destination names the worker that owns its
        // session: hand the packet there unless that is us.
        if let Some(owner) = inst.owner_v4(pkt.data()) {
            if owner != self.worker {
                self.stats.handoffs += 1;
                return sink.handoff(owner, pkt);
            }
        }
        let t = inst.to_v6(now, pkt, alloc, &mut self.extra);
        self.translated_v4(now, t, alloc, sink)
    }

    /// Translate an IPv4 packet another worker handed over (buffer at the IP
    /// header): it is already known to belong to one of our instances.
    pub fn process_handoff<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) {
        self.stats.handoffs_received += 1;
        let dst = match Ipv4Packet::new_checked(pkt.data()) {
            Ok(ip) => ip.dst_addr(),
            Err(_) => return self.drop(PipeDrop::BadIpv4),
        };
        let Some(i) = self.instances.iter().position(|i| i.claims_v4(dst)) else {
            return self.drop(PipeDrop::NoInstance);
        };
        let pkt = match self.express_handoff(now, i, pkt, alloc, sink) {
            Ok(()) => return,
            Err(pkt) => pkt,
        };
        let t = self.instances[i].to_v6(now, pkt, alloc, &mut self.extra);
        self.translated_v4(now, t, alloc, sink)
    }

    /// Route what an instance made of an IPv4 packet.
    fn translated_v4<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        t: Translated<B>,
        alloc: &mut A,
        sink: &mut S,
    ) {
        match t {
            Translated::Done(verdict, pkt) => self.after_translation(now, verdict, pkt, false, alloc, sink),
            Translated::Held => self.stats.held += 1,
        }
    }

    /// Route the translator's output. `from_v6`: the packet entered as IPv6.
    /// A forwarded packet (nearly every one) is told apart with one test,
    /// not a jump over every verdict; the others go out of line.
    // Inlined: once per packet, and the call costs more than its body.
    #[inline(always)]
    fn after_translation<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        verdict: Verdict,
        pkt: B,
        from_v6: bool,
        alloc: &mut A,
        sink: &mut S,
    ) {
        let Verdict::Forward = verdict else {
            return self.not_forwarded(now, verdict, pkt, from_v6, alloc, sink);
        };
        if from_v6 {
            self.stats.v6_to_v4 += 1;
        } else {
            self.stats.v4_to_v6 += 1;
        }
        self.stats.count_translated(from_v6, pkt.data());
        // The translator wrote the header itself (RFC 7915 §4.1 / §5.1),
        // so routing reads its destination without re-checking it: the
        // buffer now holds the other family.
        self.output_from(now, pkt, from_v6, true, alloc, sink);
        if !self.extra.is_empty() {
            self.flush_extra(now, from_v6, alloc, sink);
        }
    }

    /// [`Pipeline::after_translation`] of the verdicts other than forward.
    #[inline(never)]
    fn not_forwarded<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        verdict: Verdict,
        pkt: B,
        from_v6: bool,
        alloc: &mut A,
        sink: &mut S,
    ) {
        // The buffer holds the ingress family again.
        match verdict {
            // Not reached (`after_translation` keeps these), but handled.
            Verdict::Forward => return self.after_translation(now, verdict, pkt, from_v6, alloc, sink),
            Verdict::Hairpin => self.stats.hairpins += 1,
            Verdict::Reply(r) => {
                self.stats.xlate_drops[r as usize] += 1;
                self.stats.icmp_errors += 1;
            }
            Verdict::Drop(r) => {
                self.stats.xlate_drops[r as usize] += 1;
                return self.flush_extra(now, from_v6, alloc, sink);
            }
        }
        self.output_from(now, pkt, !from_v6, false, alloc, sink);
        if !self.extra.is_empty() {
            self.flush_extra(now, !from_v6, alloc, sink);
        }
    }

    #[inline(never)]
    fn flush_extra<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        v4: bool,
        alloc: &mut A,
        sink: &mut S,
    ) {
        while let Some(p) = self.extra.pop() {
            self.output(now, p, v4, alloc, sink);
        }
    }

    /// Route an IP packet (buffer at the IP header), add the link layer and
    /// send it, or hold it for neighbour resolution.
    #[inline(always)]
    pub fn output<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        pkt: B,
        v4: bool,
        alloc: &mut A,
        sink: &mut S,
    ) {
        self.output_from(now, pkt, v4, false, alloc, sink)
    }

    /// [`Pipeline::output`]; `trusted`: the header is the translator's
    /// own (a forwarded packet), so only its destination is read.
    #[inline(always)]
    fn output_from<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        v4: bool,
        trusted: bool,
        alloc: &mut A,
        sink: &mut S,
    ) {
        let Some((nh, iface)) = self.route(pkt.data(), v4, trusted) else { return };
        let hop = &self.hops[usize::from(v4)][hop_slot(nh)];
        if !hop.serves(nh, iface, self.neigh.generation(), now) {
            let nh = nh_addr(nh, v4);
            return self.resolve_and_send(now, pkt, v4, nh, usize::from(iface), alloc, sink);
        }
        // The same neighbour as the last packet, still fresh: what
        // `resolve_and_send` would write, without the neighbour lookup.
        let (n, port) = (usize::from(hop.hdr_len), hop.port);
        if !pkt.prepend(n) {
            return self.drop(PipeDrop::NoHeadroom);
        }
        if !hop.write_header(pkt.data_mut()) {
            return self.drop(PipeDrop::NoHeadroom);
        }
        self.send(port, pkt, sink);
    }

    /// The neighbour (see [`nh_bits`]) and interface index of an IP
    /// packet's route; `None` (counted) when the header does not parse or
    /// nothing routes it. A `trusted` header is only required to be long
    /// enough to hold its destination.
    #[inline(always)]
    fn route(&mut self, ip: &[u8], v4: bool, trusted: bool) -> Option<(u128, u16)> {
        let hop = if v4 {
            let Some(dst) = dst_v4(ip, trusted) else {
                self.drop(PipeDrop::BadIpv4);
                return None;
            };
            self.routes4.lookup(dst).map(|r| (u128::from(u32::from(r.next_hop(dst))), r.iface))
        } else {
            let Some(dst) = dst_v6(ip, trusted) else {
                self.drop(PipeDrop::BadIpv6);
                return None;
            };
            self.routes6.lookup(dst).map(|r| (u128::from(r.next_hop(dst)), r.iface))
        };
        if hop.is_none() {
            self.drop(PipeDrop::NoRoute);
        }
        hop
    }

    /// Add the link layer for the neighbour `nh` on interface `iface` and
    /// send, or hold the packet until the neighbour answers. Remembers a
    /// resolved neighbour as the family's next hop.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn resolve_and_send<A: BufAlloc<Buf = B>, S: Sink<B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        v4: bool,
        nh: IpAddr,
        iface: usize,
        alloc: &mut A,
        sink: &mut S,
    ) {
        let Some(ifc) = self.ifaces.get(iface) else { return self.drop(PipeDrop::NoRoute) };
        let (port, mac, vlan) = (ifc.port, ifc.mac, ifc.vlan);
        let et = if v4 { EtherType::IPV4 } else { EtherType::IPV6 };
        if !local::push_l2(&mut pkt, [0; 6], mac, vlan, et) {
            return self.drop(PipeDrop::NoHeadroom);
        }
        let key = NeighKey { iface: iface as u16, addr: nh };
        match self.neigh.resolve(key, now, pkt) {
            Resolve::Send { mac, mut pkt, solicit } => {
                pkt.data_mut()[0..6].copy_from_slice(&mac);
                self.remember_hop(v4, key, port, pkt.data());
                self.send(port, pkt, sink);
                if solicit {
                    self.solicit(key, alloc, sink);
                }
            }
            Resolve::Held { solicit } => {
                if solicit {
                    self.solicit(key, alloc, sink);
                }
            }
            Resolve::Dropped(_) => self.drop(PipeDrop::NeighFull),
        }
    }

    /// Keep the link-layer header `frame` starts with as a next hop of the
    /// family, if the neighbour table says it stays good for a while.
    fn remember_hop(&mut self, v4: bool, key: NeighKey, port: u16, frame: &[u8]) {
        let Some(until) = self.neigh.usable_until(&key) else { return };
        let n = match l2_header(frame) {
            Some((_, n, _)) if n <= L2_MAX => n,
            _ => return,
        };
        let mut hdr = [0; L2_MAX];
        hdr[..n].copy_from_slice(&frame[..n]);
        let nh = nh_bits(key.addr);
        self.hops[usize::from(v4)][hop_slot(nh)] = NextHop {
            nh,
            iface: key.iface,
            port,
            generation: self.neigh.generation(),
            until,
            hdr,
            hdr_len: n as u8,
        };
    }

    /// Send an ARP request or neighbour solicitation for `key`.
    fn solicit<A: BufAlloc<Buf = B>, S: Sink<B>>(&mut self, key: NeighKey, alloc: &mut A, sink: &mut S) {
        let ifc = &self.ifaces[usize::from(key.iface)];
        let (port, mac, vlan) = (ifc.port, ifc.mac, ifc.vlan);
        let Some(mut b) = alloc.alloc() else { return self.drop(PipeDrop::NoBuffer) };
        let built = match key.addr {
            IpAddr::V4(t) => match ifc.v4.first() {
                Some(&ours) => {
                    self.stats.arp_requests += 1;
                    local::arp_request(&mut b, mac, vlan, ours, t)
                }
                None => return self.drop(PipeDrop::NoSourceAddress),
            },
            IpAddr::V6(t) => {
                // Prefer a global source; the link-local one always exists.
                let ours = ifc.v6.iter().find(|a| !is_link_local(a)).or(ifc.v6.first());
                match ours {
                    Some(&ours) => {
                        self.stats.nd_solicits += 1;
                        local::ns_request(&mut b, mac, vlan, ours, t)
                    }
                    None => return self.drop(PipeDrop::NoSourceAddress),
                }
            }
        };
        if built {
            self.send(port, b, sink);
        } else {
            self.drop(PipeDrop::NoHeadroom);
        }
    }

    // Cold, apart: NDP and echo to us are rare, and kept out of the
    // translated packets' function they leave it fewer registers to spill.
    // The packet's header is read here, not passed: the fields would be
    // kept alive (spilled) across the common path for this rare one.
    #[cold]
    #[inline(never)]
    fn local_v6<S: Sink<B>>(&mut self, now: u64, rx: Rx, mut pkt: B, sink: &mut S) {
        // `ipv6` checked the header.
        let Some(h) = pkt.data().first_chunk::<{ crate::wire::ipv6::HEADER_LEN }>() else {
            return self.drop(PipeDrop::BadIpv6);
        };
        let ip = Ipv6Packet::new_unchecked(h);
        let (src, dst, nh) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
        // The payload is what the header's length says (`ipv6` checked it
        // is there): link-layer padding after it is not part of it.
        pkt.truncate(crate::wire::ipv6::HEADER_LEN + usize::from(ip.payload_len()));
        if nh != protocol::ICMPV6 {
            return self.drop(if dst.is_multicast() {
                PipeDrop::MulticastIgnored
            } else {
                PipeDrop::LocalNotServed
            });
        }
        let body = &pkt.data()[crate::wire::ipv6::HEADER_LEN..];
        let Ok(icmp) = Icmpv6Packet::new_checked(body) else { return self.drop(PipeDrop::BadIpv6) };
        match icmp.msg_type() {
            icmpv6::types::NEIGHBOR_SOLICIT | icmpv6::types::NEIGHBOR_ADVERT => {
                let Ok(nd) = NdpNeighbor::new_checked(body) else { return self.drop(PipeDrop::BadIpv6) };
                let target = nd.target_addr();
                let key_iface = rx.iface as u16;
                if nd.is_solicit() {
                    let ours = self.ifaces[rx.iface].v6.contains(&target);
                    if let (Some(ll), false) = (nd.source_ll_addr(), src.is_unspecified()) {
                        let key = NeighKey { iface: key_iface, addr: IpAddr::V6(src) };
                        if ours {
                            self.learn(now, key, ll.0, sink);
                        } else {
                            self.refresh(now, key, ll.0, sink);
                        }
                    }
                    if !ours {
                        return self.drop(PipeDrop::MulticastIgnored);
                    }
                    let mac = self.ifaces[rx.iface].mac;
                    if !local::na_in_place(&mut pkt, mac, target) {
                        return self.drop(PipeDrop::NoHeadroom);
                    }
                    self.stats.nd_adverts += 1;
                    self.reply_l2(rx, pkt, EtherType::IPV6, sink)
                } else {
                    // RFC 4861 §7.2.5: an advertisement updates what we asked for.
                    let mac = nd.target_ll_addr().map(|m| m.0).unwrap_or(rx.src_mac);
                    let key = NeighKey { iface: key_iface, addr: IpAddr::V6(target) };
                    self.refresh(now, key, mac, sink);
                }
            }
            icmpv6::types::ECHO_REQUEST if !dst.is_multicast() => {
                local::echo_reply_v6(pkt.data_mut());
                self.stats.echo_replies += 1;
                self.reply_l2(rx, pkt, EtherType::IPV6, sink)
            }
            _ => self.drop(if dst.is_multicast() {
                PipeDrop::MulticastIgnored
            } else {
                PipeDrop::LocalNotServed
            }),
        }
    }

    /// Send an answer straight back to the frame's sender.
    fn reply_l2<S: Sink<B>>(&mut self, rx: Rx, mut pkt: B, et: EtherType, sink: &mut S) {
        let ifc = &self.ifaces[rx.iface];
        let (port, mac, vlan) = (ifc.port, ifc.mac, ifc.vlan);
        if !local::push_l2(&mut pkt, rx.src_mac, mac, vlan, et) {
            return self.drop(PipeDrop::NoHeadroom);
        }
        self.send(port, pkt, sink);
    }

    /// Apply a reload: check every instance can take its update, then
    /// apply them all (all or nothing).
    fn reload(&mut self, now: u64, r: &crate::ops::Reload) -> Response {
        if r.instances.len() != self.instances.len() {
            return Response::Done(Err(format!(
                "reload has {} instances, this worker runs {}: restart to add or remove instances",
                r.instances.len(),
                self.instances.len()
            )));
        }
        for (i, (inst, u)) in self.instances.iter().zip(&r.instances).enumerate() {
            if let Err(e) = inst.can_reload(u) {
                return Response::Done(Err(format!("instance {i}: {e}")));
            }
        }
        let (mut s, mut b) = (0, 0);
        for (inst, u) in self.instances.iter_mut().zip(&r.instances) {
            let (ds, db) = inst.reload(now, u);
            s += ds;
            b += db;
        }
        Response::Reloaded { ended_sessions: s, ended_bib: b }
    }

    /// Answer an operator request (between bursts).
    pub fn handle(&mut self, now: u64, req: &Request) -> Response {
        let target = match req {
            Request::Sessions { instance, .. }
            | Request::Bib { instance, .. }
            | Request::BibAdd { instance, .. }
            | Request::BibDel { instance, .. }
            | Request::Flush { instance, .. }
            | Request::SyncImport { instance, .. }
            | Request::SyncWalk { instance, .. }
            | Request::Blocks { instance, .. } => Some(*instance),
            Request::Nat64Stats => None,
            Request::Reload(r) => return self.reload(now, r),
        };
        match target {
            Some(i) => match self.instances.get_mut(i) {
                Some(inst) => inst.handle(i, now, req),
                None => Response::Done(Err(format!("no instance {i}"))),
            },
            None => {
                let mut all = Vec::new();
                for (i, inst) in self.instances.iter_mut().enumerate() {
                    if let Response::Nat64Stats(v) = inst.handle(i, now, req) {
                        all.extend(v);
                    }
                }
                Response::Nat64Stats(all)
            }
        }
    }

    /// Housekeeping between bursts: instance timers, neighbour retries
    /// and give-ups.
    pub fn tick<A: BufAlloc<Buf = B>, S: Sink<B>>(&mut self, now: u64, alloc: &mut A, sink: &mut S) {
        for i in 0..self.instances.len() {
            self.instances[i].tick(now, alloc, &mut self.extra);
            self.stats.icmp_errors += self.extra.len() as u64;
            // Mostly ICMPv4 for held IPv4 SYNs; ICMPv6 for a SYN that was
            // hairpinned (RFC 6146 §3.8) before it was held.
            while let Some(p) = self.extra.pop() {
                let v4 = p.data().first().is_some_and(|b| b >> 4 == 4);
                self.output(now, p, v4, alloc, sink);
            }
        }
        let mut solicit: [Option<NeighKey>; 16] = [None; 16];
        let mut n = 0;
        let mut gave_up = 0;
        self.neigh.tick(now, &mut |t| match t {
            Tick::Solicit(k) => {
                if n < solicit.len() {
                    solicit[n] = Some(k);
                    n += 1;
                }
            }
            Tick::GaveUp(_) => gave_up += 1,
        });
        self.stats.drops[PipeDrop::NeighUnresolved as usize] += gave_up;
        for k in solicit.into_iter().flatten() {
            self.solicit(k, alloc, sink);
        }
    }
}

/// The destination of an IPv4 packet: after the full header check, or,
/// for a `trusted` header (the translator's own), from its fixed part.
#[inline(always)]
fn dst_v4(ip: &[u8], trusted: bool) -> Option<Ipv4Addr> {
    if trusted {
        return ip.get(..crate::wire::ipv4::MIN_HEADER_LEN).map(|h| Ipv4Packet::new_unchecked(h).dst_addr());
    }
    Ipv4Packet::new_checked(ip).ok().map(|p| p.dst_addr())
}

/// The destination of an IPv6 packet, as [`dst_v4`].
#[inline(always)]
fn dst_v6(ip: &[u8], trusted: bool) -> Option<Ipv6Addr> {
    if trusted {
        return ip.get(..crate::wire::ipv6::HEADER_LEN).map(|h| Ipv6Packet::new_unchecked(h).dst_addr());
    }
    Ipv6Packet::new_checked(ip).ok().map(|p| p.dst_addr())
}

/// For each port number, the index of the first interface on it without a
/// VLAN (the one [`Pipeline::process`] picks for an untagged frame), or
/// `u16::MAX`.
fn untagged_by_port(ifaces: &[Iface]) -> Vec<u16> {
    let ports = ifaces.iter().map(|i| usize::from(i.port) + 1).max().unwrap_or(0);
    (0..ports)
        .map(|p| {
            let first = ifaces.iter().position(|i| usize::from(i.port) == p && i.vlan.is_none());
            first.map_or(u16::MAX, |i| i as u16)
        })
        .collect()
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// A frame's EtherType, L2 header length and 802.1Q VLAN id; `None` when
/// the frame is shorter than its L2 header.
#[inline]
fn l2_header(d: &[u8]) -> Option<(EtherType, usize, Option<u16>)> {
    let et = EtherType(u16::from_be_bytes([*d.get(12)?, *d.get(13)?]));
    if et != EtherType::VLAN {
        return Some((et, 14, None));
    }
    let tag = d.get(14..18)?;
    let vid = u16::from_be_bytes([tag[0], tag[1]]) & 0x0fff;
    Some((EtherType(u16::from_be_bytes([tag[2], tag[3]])), 18, Some(vid)))
}

#[cfg(test)]
mod tests {
    use super::route::Route;
    use super::*;
    use crate::buf::{VecAlloc, VecBuf};

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER4: [u8; 6] = [2, 0, 0, 0, 0, 4];
    const PEER6: [u8; 6] = [2, 0, 0, 0, 0, 6];

    /// A stand-in translator: IPv6 to 2001:db8:64::/96 becomes a bare IPv4
    /// header to the embedded address (enough to exercise routing).
    struct Embed;
    impl Instance<VecBuf> for Embed {
        fn claims_v6(&self, dst: Ipv6Addr) -> bool {
            dst.segments()[..6] == [0x2001, 0xdb8, 0x64, 0, 0, 0]
        }
        fn claims_v4(&self, _: Ipv4Addr) -> bool {
            false
        }
        fn answers_arp(&self, a: Ipv4Addr) -> bool {
            a == Ipv4Addr::new(192, 0, 2, 2)
        }
        fn to_v4<A: BufAlloc<Buf = VecBuf>>(
            &mut self,
            _: u64,
            mut pkt: VecBuf,
            _: &mut A,
            _: &mut Extra<VecBuf>,
        ) -> Translated<VecBuf> {
            let dst = Ipv6Packet::new_checked(pkt.data()).unwrap().dst_addr().octets();
            pkt.adj(20);
            let len = pkt.len() as u16;
            let b = pkt.data_mut();
            b[..20].fill(0);
            b[0] = 0x45;
            b[2..4].copy_from_slice(&len.to_be_bytes());
            b[8] = 63;
            b[9] = 17;
            b[12..16].copy_from_slice(&[192, 0, 2, 2]);
            b[16..20].copy_from_slice(&dst[12..16]);
            Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
            Translated::Done(Verdict::Forward, pkt)
        }
        fn to_v6<A: BufAlloc<Buf = VecBuf>>(
            &mut self,
            _: u64,
            pkt: VecBuf,
            _: &mut A,
            _: &mut Extra<VecBuf>,
        ) -> Translated<VecBuf> {
            Translated::Done(Verdict::Drop(XlateDrop::Malformed), pkt)
        }
    }

    #[derive(Default)]
    struct Out(Vec<(u16, Vec<u8>)>);
    impl Sink<VecBuf> for Out {
        fn send(&mut self, port: u16, pkt: VecBuf) {
            self.0.push((port, pkt.to_vec()));
        }
    }

    /// Two-armed: port 0 faces IPv6, port 1 faces IPv4.
    fn pipeline() -> Pipeline<VecBuf, Embed> {
        let v6 = Iface::new(0, None, OURS, vec![], vec!["2001:db8::1".parse().unwrap()]);
        let v4 = Iface::new(1, None, OURS, vec!["192.0.2.1".parse().unwrap()], vec![]);
        let mut p = Pipeline::new(vec![v6, v4], vec![Embed], NeighConfig::default());
        p.routes4.add(Route { prefix: "192.0.2.0".parse().unwrap(), len: 24, via: None, iface: 1 });
        p.routes6.add(Route { prefix: "2001:db8::".parse().unwrap(), len: 64, via: None, iface: 0 });
        p
    }

    fn eth(dst: [u8; 6], src: [u8; 6], et: u16, payload: &[u8]) -> VecBuf {
        let mut f = Vec::from(dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(payload);
        VecBuf::from_slice(&f)
    }

    fn udp6(dst: &str) -> Vec<u8> {
        let dst: Ipv6Addr = dst.parse().unwrap();
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv6(
            "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets(),
            dst.octets(),
            64,
        )
        .udp(1000, 53)
        .write(&mut w, b"query")
        .unwrap();
        w
    }

    #[test]
    fn translated_packet_waits_for_arp_then_leaves_with_the_answered_mac() {
        let mut p = pipeline();
        let mut out = Out::default();
        let f = eth(OURS, PEER6, 0x86dd, &udp6("2001:db8:64::c000:205"));
        p.process(0, 0, f, &mut VecAlloc::default(), &mut out);
        assert_eq!(out.0.len(), 1, "only the ARP request leaves");
        let (port, req) = &out.0[0];
        assert_eq!(*port, 1);
        let arp = ArpPacket::new_checked(&req[14..]).unwrap();
        assert_eq!(arp.operation(), op::REQUEST);
        assert_eq!(arp.target_ip_addr(), Ipv4Addr::new(192, 0, 2, 5));
        assert_eq!(arp.sender_ip_addr(), Ipv4Addr::new(192, 0, 2, 1));

        // The IPv4 neighbour answers.
        let mut reply = req.clone();
        local::arp_reply_in_place(&mut reply, 14, PEER4);
        out.0.clear();
        p.process(1, 1, VecBuf::from_slice(&reply), &mut VecAlloc::default(), &mut out);
        assert_eq!(out.0.len(), 1, "the held packet is released");
        let (port, pkt) = &out.0[0];
        assert_eq!(*port, 1);
        assert_eq!(&pkt[0..6], &PEER4);
        assert_eq!(&pkt[6..12], &OURS);
        let ip = Ipv4Packet::new_checked(&pkt[14..]).unwrap();
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 5));
        assert_eq!(p.stats.v6_to_v4, 1);

        // The next one goes straight out.
        out.0.clear();
        let f = eth(OURS, PEER6, 0x86dd, &udp6("2001:db8:64::c000:205"));
        p.process(2, 0, f, &mut VecAlloc::default(), &mut out);
        assert_eq!(out.0.len(), 1);
        assert_eq!(&out.0[0].1[0..6], &PEER4);
    }

    /// A translated UDP packet to 192.0.2.5 from `pipeline()`'s port 0.
    fn to_192_0_2_5() -> VecBuf {
        eth(OURS, PEER6, 0x86dd, &udp6("2001:db8:64::c000:205"))
    }

    #[test]
    fn the_next_hop_cache_follows_the_neighbour_table() {
        let mut p = pipeline();
        let mut out = Out::default();
        let mut a = VecAlloc::default();
        let key = NeighKey { iface: 1, addr: "192.0.2.5".parse().unwrap() };
        p.neigh_update(0, key, PEER4, &mut out);
        p.process(1, 0, to_192_0_2_5(), &mut a, &mut out);
        p.process(2, 0, to_192_0_2_5(), &mut a, &mut out);
        assert_eq!(out.0.len(), 2);
        assert_eq!(out.0[0], out.0[1], "the cached header is the resolved one");
        assert_eq!(&out.0[1].1[0..6], &PEER4);

        // A new MAC is used from the next packet on.
        let moved = [2, 0, 0, 0, 0, 0x44];
        p.neigh_update(3, key, moved, &mut out);
        out.0.clear();
        p.process(4, 0, to_192_0_2_5(), &mut a, &mut out);
        assert_eq!(&out.0[0].1[0..6], &moved);

        // Stale (RFC 4861 §7.3.3): still used, and re-confirmed once.
        let stale = 3 + NeighConfig::default().reachable_ms;
        out.0.clear();
        p.process(stale, 0, to_192_0_2_5(), &mut a, &mut out);
        p.process(stale + 1, 0, to_192_0_2_5(), &mut a, &mut out);
        let arp: Vec<_> = out.0.iter().filter(|(_, f)| f[12..14] == [0x08, 0x06]).collect();
        assert_eq!((out.0.len(), arp.len()), (3, 1), "two packets and one ARP request");
        assert!(out.0.iter().filter(|(_, f)| f[12..14] == [0x08, 0x00]).all(|(_, f)| f[0..6] == moved));
        assert_eq!(p.stats.tx, 6);
    }

    #[test]
    fn the_next_hop_cache_keeps_the_vlan_tag_and_tells_neighbours_apart() {
        let v6 = Iface::new(0, None, OURS, vec![], vec!["2001:db8::1".parse().unwrap()]);
        let v4 = Iface::new(1, Some(7), OURS, vec!["192.0.2.1".parse().unwrap()], vec![]);
        let mut p = Pipeline::new(vec![v6, v4], vec![Embed], NeighConfig::default());
        p.routes4.add(Route { prefix: "192.0.2.0".parse().unwrap(), len: 24, via: None, iface: 1 });
        let mut out = Out::default();
        let mut a = VecAlloc::default();
        // Hosts 5 and 13 share a cache slot; 6 has its own.
        let mac = |host: u8| [2, 0, 0, 0, 0, host];
        for host in [5, 6, 13] {
            let key = NeighKey { iface: 1, addr: Ipv4Addr::new(192, 0, 2, host).into() };
            p.neigh_update(0, key, mac(host), &mut out);
        }
        let to = |host: u8| eth(OURS, PEER6, 0x86dd, &udp6(&format!("2001:db8:64::c000:2{host:02x}")));
        let hosts = [5, 5, 6, 5, 13, 5, 13, 6];
        for host in hosts {
            p.process(1, 0, to(host), &mut a, &mut out);
        }
        assert_eq!(out.0.len(), hosts.len());
        for (host, (port, frame)) in hosts.iter().zip(&out.0) {
            assert_eq!(*port, 1);
            assert_eq!(&frame[0..6], &mac(*host), "host {host}");
            assert_eq!(&frame[6..12], &OURS);
            assert_eq!(&frame[12..18], &[0x81, 0x00, 0x00, 0x07, 0x08, 0x00], "802.1Q tag 7, then IPv4");
            assert_eq!(frame[18 + 19], *host, "IPv4 destination");
        }
    }

    #[test]
    fn arp_is_answered_for_interface_and_pool_addresses_only() {
        let mut p = pipeline();
        let mut out = Out::default();
        for (target, answered) in [("192.0.2.1", true), ("192.0.2.2", true), ("192.0.2.9", false)] {
            let mut req = VecBuf::default();
            local::arp_request(&mut req, PEER4, None, "192.0.2.5".parse().unwrap(), target.parse().unwrap());
            out.0.clear();
            p.process(0, 1, req, &mut VecAlloc::default(), &mut out);
            assert_eq!(out.0.len(), usize::from(answered), "{target}");
            if answered {
                let arp = ArpPacket::new_checked(&out.0[0].1[14..]).unwrap();
                assert_eq!(arp.sender_ip_addr(), target.parse::<Ipv4Addr>().unwrap());
                assert_eq!(arp.sender_hw_addr().0, OURS);
            }
        }
        assert_eq!(p.stats.drop_count(PipeDrop::ArpNotForUs), 1);
        assert_eq!(p.stats.arp_replies, 2);
    }

    #[test]
    fn neighbour_solicitation_and_echo_are_answered() {
        let mut p = pipeline();
        let mut out = Out::default();
        let mut ns = VecBuf::default();
        local::ns_request(
            &mut ns,
            PEER6,
            None,
            "2001:db8::5".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        p.process(0, 0, ns, &mut VecAlloc::default(), &mut out);
        assert_eq!(out.0.len(), 1);
        let na = &out.0[0].1;
        assert_eq!(&na[0..6], &PEER6);
        let nd = NdpNeighbor::new_checked(&na[54..]).unwrap();
        assert!(!nd.is_solicit());
        assert_eq!(nd.target_ll_addr().unwrap().0, OURS);
        // The solicitation taught us the peer: no NS needed to answer it.
        assert!(p.neigh.get(&NeighKey { iface: 0, addr: "2001:db8::5".parse().unwrap() }).is_some());

        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv6(
            "2001:db8::5".parse::<Ipv6Addr>().unwrap().octets(),
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
            64,
        )
        .icmpv6_echo_request(1, 1)
        .write(&mut w, b"x")
        .unwrap();
        out.0.clear();
        p.process(0, 0, eth(OURS, PEER6, 0x86dd, &w), &mut VecAlloc::default(), &mut out);
        assert_eq!(out.0.len(), 1);
        assert_eq!(
            Icmpv6Packet::new_checked(&out.0[0].1[54..]).unwrap().msg_type(),
            icmpv6::types::ECHO_REPLY
        );
    }

    #[test]
    fn ipv4_to_our_address_is_answered_or_counted() {
        let mut p = pipeline();
        let mut out = Out::default();
        let mut a = VecAlloc::default();
        let v4 = |dst: [u8; 4], echo: bool| {
            let b = etherparse::PacketBuilder::ipv4([192, 0, 2, 9], dst, 64);
            let mut w = Vec::new();
            if echo {
                b.icmpv4_echo_request(1, 1).write(&mut w, b"x").unwrap();
            } else {
                b.udp(1000, 53).write(&mut w, b"x").unwrap();
            }
            eth(OURS, PEER4, 0x0800, &w)
        };
        p.process(0, 1, v4([192, 0, 2, 1], true), &mut a, &mut out);
        assert_eq!(out.0.len(), 1, "an echo request to our address is answered");
        let ip = Ipv4Packet::new_checked(&out.0[0].1[14..]).unwrap();
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(Icmpv4Packet::new_checked(ip.payload()).unwrap().msg_type(), icmpv4::types::ECHO_REPLY);
        out.0.clear();
        p.process(0, 1, v4([192, 0, 2, 1], false), &mut a, &mut out);
        // The same last byte, not our address: an instance's business.
        p.process(0, 1, v4([198, 51, 100, 1], true), &mut a, &mut out);
        assert!(out.0.is_empty());
        assert_eq!(p.stats.echo_replies, 1);
        assert_eq!(p.stats.drop_count(PipeDrop::LocalNotServed), 1);
        assert_eq!(p.stats.drop_count(PipeDrop::NoInstance), 1);
    }

    #[test]
    fn link_layer_padding_is_not_read_as_an_echo_request() {
        // A header-only packet to our address, its frame padded with bytes
        // that would read as an echo request: the request is not in the
        // packet, so nothing is answered (it used to be, through an empty
        // slice: a panic).
        let mut p = pipeline();
        let (mut out, mut a) = (Out::default(), VecAlloc::default());
        let pad = [8, 0, 0xf7, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut v4 = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 9, 192, 0, 2, 1];
        let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&v4, 0));
        v4[10..12].copy_from_slice(&c.to_be_bytes());
        v4.extend_from_slice(&pad);
        p.process(0, 1, eth(OURS, PEER4, 0x0800, &v4), &mut a, &mut out);
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
        v6.extend_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        let mut padded = v6.clone();
        padded.extend_from_slice(&[128, 0, 0x7f, 0xff, 0, 0, 0, 0]);
        p.process(0, 0, eth(OURS, PEER6, 0x86dd, &padded), &mut a, &mut out);
        assert!(out.0.is_empty());
        assert_eq!(p.stats.echo_replies, 0);
        assert_eq!(p.stats.drop_count(PipeDrop::LocalNotServed), 1);
        assert_eq!(p.stats.drop_count(PipeDrop::BadIpv6), 1);

        // The same requests inside their packets are answered, without the
        // padding.
        let mut v4 = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 9, 192, 0, 2, 1];
        let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&v4, 0));
        v4[10..12].copy_from_slice(&c.to_be_bytes());
        v4.extend_from_slice(&pad);
        p.process(0, 1, eth(OURS, PEER4, 0x0800, &v4), &mut a, &mut out);
        v6[5] = 8;
        let body = [128, 0, 0, 0, 0, 1, 0, 1];
        let pseudo = crate::wire::checksum::pseudo_v6(
            "2001:db8::5".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            58,
            8,
        );
        let c = crate::wire::checksum::finish(crate::wire::checksum::sum(&body, pseudo));
        v6.extend_from_slice(&body);
        v6[42..44].copy_from_slice(&c.to_be_bytes());
        v6.extend_from_slice(&[0; 6]);
        p.process(0, 0, eth(OURS, PEER6, 0x86dd, &v6), &mut a, &mut out);
        assert_eq!(p.stats.echo_replies, 2);
        let lens: Vec<usize> = out.0.iter().map(|(_, f)| f.len()).collect();
        assert_eq!(lens, [14 + 28, 14 + 48]);
    }

    #[test]
    fn what_is_not_ours_is_dropped_and_counted() {
        let mut p = pipeline();
        let mut out = Out::default();
        let mut a = VecAlloc::default();
        p.process(0, 0, VecBuf::from_slice(&[0; 10]), &mut a, &mut out);
        p.process(0, 0, eth([2, 9, 9, 9, 9, 9], PEER6, 0x86dd, &udp6("2001:db8:64::1")), &mut a, &mut out);
        p.process(0, 0, eth(OURS, PEER6, 0x86dd, &udp6("2001:db8:99::1")), &mut a, &mut out);
        p.process(0, 0, eth(OURS, PEER6, 0x88cc, &[0; 40]), &mut a, &mut out);
        p.process(0, 0, eth(OURS, PEER6, 0x86dd, &[0x60, 0, 0]), &mut a, &mut out);
        let mut tagged = vec![0x00, 0x07];
        tagged.extend_from_slice(&[0x86, 0xdd]);
        tagged.extend_from_slice(&udp6("2001:db8:64::1"));
        p.process(0, 0, eth(OURS, PEER6, 0x8100, &tagged), &mut a, &mut out);
        assert!(out.0.is_empty());
        for r in [
            PipeDrop::L2Truncated,
            PipeDrop::NotOurMac,
            PipeDrop::NoInstance,
            PipeDrop::UnsupportedEthertype,
            PipeDrop::BadIpv6,
            PipeDrop::UnknownVlan,
        ] {
            assert_eq!(p.stats.drop_count(r), 1, "{}", r.name());
        }
        assert_eq!(p.stats.rx, 6);
    }

    #[test]
    fn stats_flatten_and_rebuild() {
        let mut s = Stats { rx: 7, neigh_learned: 3, ..Stats::default() };
        s.drops[PipeDrop::NoRoute as usize] = 5;
        s.xlate_drops[XlateDrop::PacketTooBig as usize] = 2;
        let mut a = [0u64; Stats::LEN];
        s.to_array_into(&mut a);
        assert_eq!(Stats::from_array(&a), s);
        let mut t = s;
        t.add(&s);
        assert_eq!(
            (t.rx, t.drop_count(PipeDrop::NoRoute), t.xlate_drop_count(XlateDrop::PacketTooBig)),
            (14, 10, 4)
        );
        assert_eq!(s.scalar("neigh_learned"), Some(3));
        let mut u = Stats::default();
        u.count_translated(true, &[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let named: Vec<_> = u.named().filter(|(_, v)| *v > 0).collect();
        assert_eq!(named, vec![("v6_to_v4_udp_packets", 1), ("v6_to_v4_udp_bytes", 20)]);
        let mut a = [0u64; Stats::LEN];
        u.to_array_into(&mut a);
        assert_eq!(Stats::from_array(&a), u);
    }

    #[test]
    fn unanswered_arp_gives_up_and_counts() {
        let mut p = pipeline();
        let mut out = Out::default();
        let mut a = VecAlloc::default();
        p.process(0, 0, eth(OURS, PEER6, 0x86dd, &udp6("2001:db8:64::c000:209")), &mut a, &mut out);
        for t in [1000, 2000, 3000] {
            p.tick(t, &mut a, &mut out);
        }
        assert_eq!(out.0.len(), 3, "three requests in all (RFC 4861 MAX_MULTICAST_SOLICIT)");
        assert_eq!(p.stats.drop_count(PipeDrop::NeighUnresolved), 1);
    }
}

#[cfg(test)]
mod trusted_tests {
    use super::*;

    /// A trusted header's destination is the checked one's; what the
    /// check refuses gives `None` unless trusted, and a buffer too short
    /// for the fixed header gives `None` either way.
    #[test]
    fn trusted_destination_agrees_with_the_checked_one() {
        let mut v4 = [0u8; 28];
        v4[..4].copy_from_slice(&[0x45, 0, 0, 28]);
        v4[16..20].copy_from_slice(&[192, 0, 2, 9]);
        let mut v6 = [0u8; 48];
        v6[0] = 0x60;
        v6[5] = 8;
        v6[24..40].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9).octets());
        for trusted in [false, true] {
            assert_eq!(dst_v4(&v4, trusted), Some(Ipv4Addr::new(192, 0, 2, 9)));
            assert_eq!(dst_v6(&v6, trusted), Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)));
            assert_eq!(dst_v4(&v4[..19], trusted), None);
            assert_eq!(dst_v6(&v6[..39], trusted), None);
        }
        // Total length beyond the buffer: only the general path checks it.
        v4[3] = 200;
        v6[5] = 200;
        assert_eq!(dst_v4(&v4, false), None);
        assert_eq!(dst_v6(&v6, false), None);
        assert!(dst_v4(&v4, true).is_some() && dst_v6(&v6, true).is_some());
    }
}
