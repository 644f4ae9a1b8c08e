//! The pipeline's express path: a whole frame of the common case in one
//! pass.
//!
//! An IPv6 or IPv4 frame (untagged, or with one 802.1Q tag) for the
//! receiving interface's MAC, to an address that is not the appliance's
//! own, that the claiming instance translates by its express path
//! (`xlate::express`), and whose next hop is in the next-hop cache. The
//! Ethernet and IP headers are read once, the buffer start moves once (the
//! general path moves it three times: off the link layer, across the IP
//! header change, onto the new link layer), and routing takes the
//! destination the translation returned instead of reading it back.
//!
//! Until the instance has translated, nothing is changed and the frame
//! goes back to [`Pipeline::process`]'s general path; after, a packet
//! whose next hop is not cached takes the general path's output.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{hop_slot, Instance, Pipeline, Sink};
use crate::buf::{BufAlloc, PacketBuf};
use crate::wire::ethernet::{EtherType, HEADER_LEN as ETH, VLAN_TAG_LEN};

/// The IPv4 and IPv6 header lengths: a translation changes the packet's
/// length by their difference.
const V4: usize = 20;
const V6: usize = 40;

impl<B: PacketBuf, I: Instance<B>> Pipeline<B, I> {
    /// The express path for a frame received on `port`: `Err` gives it back,
    /// unchanged, for the general path.
    #[inline(always)]
    pub(super) fn express<A, S>(
        &mut self,
        now: u64,
        port: u16,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        let Some(h) = pkt.data().first_chunk::<ETH>() else { return Err(pkt) };
        let et = EtherType(u16::from_be_bytes([h[12], h[13]]));
        if et == EtherType::VLAN {
            return self.express_tagged(now, port, pkt, alloc, sink);
        }
        // Untagged: the port's untagged interface, from a table.
        let iface = self.untagged.get(usize::from(port)).map(|&i| usize::from(i));
        self.express_on::<ETH, A, S>(now, et, iface, pkt, alloc, sink)
    }

    /// [`Pipeline::express`] for a frame with an 802.1Q tag: the interface
    /// of (port, VLAN) by a scan, as the general path finds it. Apart, and
    /// with the link-layer length a constant in each copy: as a variable in
    /// one copy it cost the untagged frames about 20 instructions each.
    #[inline(never)]
    fn express_tagged<A, S>(
        &mut self,
        now: u64,
        port: u16,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        const TAGGED: usize = ETH + VLAN_TAG_LEN;
        let Some((et, TAGGED, vlan)) = super::l2_header(pkt.data()) else { return Err(pkt) };
        let iface = self.ifaces.iter().position(|i| i.port == port && i.vlan == vlan);
        self.express_on::<TAGGED, A, S>(now, et, iface, pkt, alloc, sink)
    }

    /// The express path of a frame of EtherType `et` with an `L2`-byte link
    /// layer, received on interface `iface`: it must be sent to that
    /// interface's MAC.
    #[inline(always)]
    fn express_on<const L2: usize, A, S>(
        &mut self,
        now: u64,
        et: EtherType,
        iface: Option<usize>,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        let ours = |i: &usize| self.ifaces.get(*i).is_some_and(|ifc| pkt.data()[..6] == ifc.mac);
        let Some(iface) = iface.filter(ours) else { return Err(pkt) };
        match et {
            EtherType::IPV6 => self.express_from_v6::<L2, A, S>(now, iface, pkt, alloc, sink),
            EtherType::IPV4 => self.express_from_v4::<L2, A, S>(now, iface, pkt, alloc, sink),
            _ => Err(pkt),
        }
    }

    /// An IPv6 frame on interface `iface`, its IP header `L2` bytes in.
    #[inline(always)]
    fn express_from_v6<const L2: usize, A, S>(
        &mut self,
        now: u64,
        iface: usize,
        mut pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        let Some(&dst) = pkt.data().get(L2 + 24..).and_then(|d| d.first_chunk::<16>()) else {
            return Err(pkt);
        };
        let dst = Ipv6Addr::from(dst);
        if dst.is_multicast() || self.own6[iface].contains(dst, dst.octets()[15]) {
            return Err(pkt);
        }
        // With one instance it is the one the general path would pick if
        // it claims the destination, and an express translation that maps
        // the destination implies the claim: the question is skipped.
        let inst = match self.instances.as_mut_slice() {
            [one] => one,
            all => match all.iter_mut().find(|i| i.claims_v6(dst)) {
                Some(i) => i,
                None => return Err(pkt),
            },
        };
        let Some((dst4, len)) = inst.express_v4(now, &mut pkt.data_mut()[L2..]) else { return Err(pkt) };
        // Translated: the IPv4 packet starts where the IPv6 header's last
        // 20 bytes were.
        let at = L2 + V6 - V4;
        if pkt.len() > at + len {
            pkt.truncate(at + len);
        }
        self.stats.v6_to_v4 += 1;
        self.stats.express += 1;
        self.stats.count_translated(true, &pkt.data()[at..]);
        let hop = self.routes4.lookup(dst4).map(|r| (u128::from(u32::from(r.next_hop(dst4))), r.iface));
        self.express_out(now, pkt, true, hop, at, alloc, sink);
        Ok(())
    }

    /// An IPv4 frame on interface `iface`, its IP header `L2` bytes in.
    #[inline(always)]
    fn express_from_v4<const L2: usize, A, S>(
        &mut self,
        now: u64,
        iface: usize,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        let Some(&dst) = pkt.data().get(L2 + 16..).and_then(|d| d.first_chunk::<4>()) else {
            return Err(pkt);
        };
        let dst = Ipv4Addr::from(dst);
        if dst.is_broadcast() || dst.is_multicast() || self.own4[iface].contains(dst, dst.octets()[3]) {
            return Err(pkt);
        }
        // As on the IPv6 side, one instance is asked no question: its express
        // translation maps the destination only when it claims it (a NAT64
        // finds a session of its pool4, a SIIT maps by its pool6 or EAMT).
        let inst = match self.instances.as_slice() {
            [_] => 0,
            all => match all.iter().position(|i| i.claims_v4(dst)) {
                Some(i) => i,
                None => return Err(pkt),
            },
        };
        self.express_v4_of::<L2, A, S>(now, inst, pkt, alloc, sink)
    }

    /// The express path for an IPv4 packet another worker handed over
    /// (buffer at the IP header) that instance `inst` claims: `Err` gives
    /// it back, unchanged, for the general path.
    #[inline(always)]
    pub(super) fn express_handoff<A, S>(
        &mut self,
        now: u64,
        inst: usize,
        pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        if !self.express {
            return Err(pkt);
        }
        self.express_v4_of::<0, A, S>(now, inst, pkt, alloc, sink)
    }

    /// The IPv4 packet `L2` bytes into `pkt`, translated by instance `inst`
    /// and sent.
    #[inline(always)]
    fn express_v4_of<const L2: usize, A, S>(
        &mut self,
        now: u64,
        inst: usize,
        mut pkt: B,
        alloc: &mut A,
        sink: &mut S,
    ) -> Result<(), B>
    where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        let Some(inst) = self.instances.get_mut(inst) else { return Err(pkt) };
        // Room for the longer header in front of the packet.
        if !pkt.prepend(V6 - V4) {
            return Err(pkt);
        }
        let Some((dst6, len)) = inst.express_v6(now, &mut pkt.data_mut()[L2..]) else {
            pkt.adj(V6 - V4);
            return Err(pkt);
        };
        if pkt.len() > L2 + len {
            pkt.truncate(L2 + len);
        }
        self.stats.v4_to_v6 += 1;
        self.stats.express += 1;
        self.stats.count_translated(false, &pkt.data()[L2..]);
        let hop = self.routes6.lookup(dst6).map(|r| (u128::from(r.next_hop(dst6)), r.iface));
        self.express_out(now, pkt, false, hop, L2, alloc, sink);
        Ok(())
    }

    /// Send a translated packet of family `v4` that starts `at` bytes into
    /// the buffer, to the route's next hop `hop` (neighbour, interface):
    /// the cached link-layer header goes in front, or the general output
    /// takes over (no route, hop not cached).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn express_out<A, S>(
        &mut self,
        now: u64,
        mut pkt: B,
        v4: bool,
        hop: Option<(u128, u16)>,
        at: usize,
        alloc: &mut A,
        sink: &mut S,
    ) where
        A: BufAlloc<Buf = B>,
        S: Sink<B>,
    {
        if let Some((nh, iface)) = hop {
            let h = &self.hops[usize::from(v4)][hop_slot(nh)];
            if h.serves(nh, iface, self.neigh.generation(), now) {
                let (n, port) = (usize::from(h.hdr_len), h.port);
                let placed = if n <= at { pkt.adj(at - n) } else { pkt.prepend(n - at) };
                if placed && h.write_header(pkt.data_mut()) {
                    return self.send(port, pkt, sink);
                }
                // Not reached (the room was there for the old header); as
                // the general path would, count it.
                return self.drop(super::PipeDrop::NoHeadroom);
            }
        }
        pkt.adj(at);
        self.output_from(now, pkt, v4, true, alloc, sink);
    }
}

#[cfg(test)]
mod tests {
    use super::super::route::Route;
    use super::super::{Iface, NeighConfig, NeighKey, Pipeline, Sink, Stats};
    use crate::buf::{VecAlloc, VecBuf};
    use crate::instance::{AnyInstance, Nat64, Siit};
    use crate::nat64::{self, Filter, Pool4, Pool4Entry, Proto, SessionView, Shard};
    use crate::ops::{Request, Response};
    use crate::wire::checksum::{finish, pseudo_v4, pseudo_v6, sum};
    use crate::xlate::{Config, Eam, Eamt, TosPolicy, UdpZeroChecksum};
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const GW6: [u8; 6] = [2, 0, 0, 0, 0, 6];
    const GW4: [u8; 6] = [2, 0, 0, 0, 0, 4];

    #[derive(Default)]
    struct Out(Vec<(u16, Vec<u8>)>);
    impl Sink<VecBuf> for Out {
        fn send(&mut self, port: u16, pkt: VecBuf) {
            self.0.push((port, pkt.to_vec()));
        }
    }

    /// pool6 2001:db8:64::/96, EAMT 2001:db8:6::/120 = 192.0.2.0/24; port 0
    /// faces IPv6 (2001:db8:ff::1, gateway ::2), port 1 IPv4
    /// (198.51.100.1, gateway .2). `tight`: narrower MTUs, the traffic
    /// class rewritten and zero UDP checksums computed.
    fn pipeline(tight: bool) -> Pipeline<VecBuf, AnyInstance<VecBuf>> {
        let mut cfg = Config {
            pool6: Some("2001:db8:64::/96".parse().unwrap()),
            eamt: Eamt::new(vec![Eam {
                v6: "2001:db8:6::/120".parse().unwrap(),
                v4: "192.0.2.0/24".parse().unwrap(),
            }])
            .unwrap(),
            own_v4: "198.51.100.1".parse().unwrap(),
            own_v6: "2001:db8:ff::1".parse().unwrap(),
            ..Config::default()
        };
        if tight {
            cfg.mtu_ipv4 = 1000;
            cfg.mtu_ipv6 = 1400;
            cfg.traffic_class = TosPolicy::Set(0x28);
            cfg.tos = TosPolicy::Zero;
            cfg.udp_zero_checksum = UdpZeroChecksum::Compute;
            cfg.hairpinning = false;
        }
        two_armed(AnyInstance::Siit(Box::new(Siit::new(cfg, 7))))
    }

    /// A stateful NAT64: pool6 2001:db8:64::/96, pool4 192.0.2.1 ports
    /// 1024-1039 (few enough for frames to hairpin onto them and for the
    /// pool to run out), the arms of [`pipeline`].
    fn nat64() -> Pipeline<VecBuf, AnyInstance<VecBuf>> {
        let cfg = Config {
            pool6: Some("2001:db8:64::/96".parse().unwrap()),
            own_v4: "198.51.100.1".parse().unwrap(),
            own_v6: "2001:db8:ff::1".parse().unwrap(),
            ..Config::default()
        };
        let entries: Vec<_> = Proto::ALL
            .iter()
            .map(|&proto| Pool4Entry {
                proto,
                prefix: Ipv4Addr::new(192, 0, 2, 1),
                prefix_len: 32,
                port_min: 1024,
                port_max: 1039,
            })
            .collect();
        let pool = Arc::new(Pool4::new(&entries, 1).unwrap());
        let sc = nat64::Config::default();
        let shard = Shard::new(&sc, pool.slice(0), 0);
        two_armed(AnyInstance::Nat64(Box::new(Nat64::new(cfg, shard, pool, None, sc.max_held_syn, 6, 7))))
    }

    fn two_armed(inst: AnyInstance<VecBuf>) -> Pipeline<VecBuf, AnyInstance<VecBuf>> {
        two_armed_on(inst, None)
    }

    /// [`two_armed`] with both interfaces on `vlan`.
    fn two_armed_on(inst: AnyInstance<VecBuf>, vlan: Option<u16>) -> Pipeline<VecBuf, AnyInstance<VecBuf>> {
        let v6 = Iface::new(0, vlan, OURS, vec![], vec!["2001:db8:ff::1".parse().unwrap()]);
        let v4 = Iface::new(1, vlan, OURS, vec!["198.51.100.1".parse().unwrap()], vec![]);
        let mut p = Pipeline::new(vec![v6, v4], vec![inst], NeighConfig::default());
        p.routes6.add(Route {
            prefix: Ipv6Addr::UNSPECIFIED,
            len: 0,
            via: Some("2001:db8:ff::2".parse().unwrap()),
            iface: 0,
        });
        p.routes4.add(Route {
            prefix: Ipv4Addr::UNSPECIFIED,
            len: 0,
            via: Some("198.51.100.2".parse().unwrap()),
            iface: 1,
        });
        let mut out = Out::default();
        p.neigh_update(0, NeighKey { iface: 0, addr: "2001:db8:ff::2".parse().unwrap() }, GW6, &mut out);
        p.neigh_update(0, NeighKey { iface: 1, addr: "198.51.100.2".parse().unwrap() }, GW4, &mut out);
        p
    }

    /// Mostly the first choice, sometimes any.
    fn pick<T: Copy>(r: &mut fastrand::Rng, common: T, all: &[T]) -> T {
        if r.u8(..) < 200 {
            common
        } else {
            all[r.usize(..all.len())]
        }
    }

    /// UDP or TCP or ICMP echo of `n` payload bytes, checksum left zero;
    /// `ports` when given (source, destination), else random.
    fn upper(r: &mut fastrand::Rng, proto: u8, n: usize, ports: Option<(u16, u16)>) -> Vec<u8> {
        let mut l4 = match proto {
            17 => vec![0; 8],
            6 => {
                let mut t = vec![0; 20];
                t[12] = pick(r, 5, &[4, 5, 6, 15]) << 4;
                t.resize(20.max(usize::from(t[12] >> 4) * 4), 0);
                t
            }
            _ => vec![0; 8],
        };
        r.fill(&mut l4[..4]);
        if let Some((a, b)) = ports {
            l4[0..2].copy_from_slice(&a.to_be_bytes());
            l4[2..4].copy_from_slice(&b.to_be_bytes());
        }
        if proto == 6 && r.u8(..) < 64 {
            // Any TCP flags, SYN often.
            l4[13] = pick(r, 0x02, &[0x02, 0x12, 0x10, 0x11, 0x04, 0x18]);
        }
        if proto == 1 || proto == 58 {
            l4[0] = pick(r, if proto == 1 { 8 } else { 128 }, &[0, 3, 8, 11, 128, 129, 135, 1]);
            l4[1] = 0;
        }
        let mut data = vec![0; n];
        r.fill(&mut data);
        l4.extend_from_slice(&data);
        if proto == 17 {
            let len = pick(r, l4.len() as u16, &[0, 7, l4.len() as u16 + 1, l4.len() as u16 - 1]);
            l4[4..6].copy_from_slice(&len.to_be_bytes());
        }
        l4
    }

    fn set_sum(l4: &mut [u8], proto: u8, pseudo: u32, r: &mut fastrand::Rng) {
        let at = match proto {
            17 => 6,
            6 => 16,
            1 | 58 => 2,
            _ => return,
        };
        if l4.len() < at + 2 {
            return;
        }
        let c = finish(sum(l4, pseudo));
        let c = if proto == 17 && r.u8(..) < 16 { 0 } else { c };
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    fn frame(r: &mut fastrand::Rng, et: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = Vec::from(pick(r, OURS, &[OURS, [0xff; 6], [2, 0, 0, 0, 0, 9]]));
        f.extend_from_slice(&GW6);
        if r.u8(..) < 4 {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&pick(r, et, &[et, 0x0806, 0x86dd, 0x0800]).to_be_bytes());
        f.extend_from_slice(ip);
        if r.u8(..) < 16 {
            f.extend_from_slice(&[0; 6]);
        }
        f
    }

    /// A frame from the IPv6 side; `nat`: from a few clients and ports to
    /// a few remotes, so that sessions repeat.
    fn frame6(r: &mut fastrand::Rng, nat: bool) -> Vec<u8> {
        frame6_to(r, nat, 0x64)
    }

    /// [`frame6`] to 2001:db8:`pool6`::/96 mostly.
    fn frame6_to(r: &mut fastrand::Rng, nat: bool, pool6: u16) -> Vec<u8> {
        let host = if nat { r.u16(0..6) } else { r.u16(0..300) };
        let src: Ipv6Addr = pick(
            r,
            Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, host),
            &[
                "2001:db8:64::c000:201".parse().unwrap(),
                "2001:db8:99::1".parse().unwrap(),
                "fe80::1".parse().unwrap(),
            ],
        );
        let host = if nat { r.u16(0..4) } else { r.u16(0..256) };
        let dst: Ipv6Addr = pick(
            r,
            Ipv6Addr::new(0x2001, 0xdb8, pool6, 0, 0, 0, 0xcb00, 0x7100 | host),
            &[
                "2001:db8:64::c633:6401".parse().unwrap(),
                "2001:db8:64::c000:201".parse().unwrap(),
                "2001:db8:64::e000:1".parse().unwrap(),
                "2001:db8:6::9".parse().unwrap(),
                "2001:db8:ff::1".parse().unwrap(),
                "2001:db8:65::1".parse().unwrap(),
                "ff02::1".parse().unwrap(),
            ],
        );
        let proto = pick(r, 17, &[17, 6, 58, 1, 0, 44, 43, 59]);
        let small = r.usize(0..64);
        let n = pick(r, small, &[0, 900, 981, 982, 1300, 1400]);
        let dns = 53 + r.u16(0..2);
        let dport = pick(r, dns, &[1024, 1025, 1026, 1030, 1039]);
        let ports = nat.then(|| (1000 + r.u16(0..3), dport));
        let mut l4 = upper(r, proto, n, ports);
        let pseudo = pseudo_v6(src, dst, proto, l4.len() as u32);
        set_sum(&mut l4, proto, pseudo, r);
        let mut ip = vec![0; 40];
        ip[0] = pick(r, 0x60, &[0x60, 0x40, 0x6f]) | (r.u8(..) & 0x0f);
        ip[1] = r.u8(..);
        let len = pick(r, l4.len() as u16, &[l4.len() as u16 + 1, l4.len() as u16 - 1, 0]);
        ip[4..6].copy_from_slice(&len.to_be_bytes());
        ip[6] = proto;
        ip[7] = pick(r, 64, &[0, 1, 2, 255]);
        ip[8..24].copy_from_slice(&src.octets());
        ip[24..40].copy_from_slice(&dst.octets());
        ip.extend_from_slice(&l4);
        frame(r, 0x86dd, &ip)
    }

    /// A frame from the IPv4 side; `reply`: mostly answering this
    /// translated packet (its IPv4 header and transport ports).
    fn frame4(r: &mut fastrand::Rng, reply: Option<&[u8]>) -> Vec<u8> {
        let (h1, h2) = (r.u8(..), r.u8(..));
        let (src, dst, proto, ports) = match reply {
            Some(t) if t.len() >= 24 && r.u8(..) < 230 => {
                let a = |o: usize| Ipv4Addr::new(t[o], t[o + 1], t[o + 2], t[o + 3]);
                let port = |o: usize| u16::from_be_bytes([t[o], t[o + 1]]);
                (a(16), a(12), t[9], Some((port(22), port(20))))
            }
            _ => (Ipv4Addr::new(203, 0, 113, h1), Ipv4Addr::new(192, 0, 2, h2), 17, None),
        };
        let src: Ipv4Addr = pick(r, src, &["192.0.2.7".parse().unwrap(), "224.0.0.5".parse().unwrap()]);
        let dst: Ipv4Addr = pick(
            r,
            dst,
            &[
                "203.0.113.9".parse().unwrap(),
                "198.51.100.1".parse().unwrap(),
                "255.255.255.255".parse().unwrap(),
                "224.0.0.1".parse().unwrap(),
            ],
        );
        let proto = pick(r, proto, &[17, 6, 1, 58, 0, 47]);
        let small = r.usize(0..64);
        let n = pick(r, small, &[0, 1200, 1232, 1233, 1300, 1460]);
        let mut l4 = upper(r, proto, n, ports);
        let pseudo = if proto == 1 { 0 } else { pseudo_v4(src, dst, proto, l4.len() as u16) };
        set_sum(&mut l4, proto, pseudo, r);
        let opts = if r.u8(..) < 8 { 4 } else { 0 };
        let mut ip = vec![0; 20 + opts];
        ip[0] = pick(r, 0x45 + (opts / 4) as u8, &[0x45, 0x44, 0x55, 0x46]);
        ip[1] = r.u8(..);
        let total = (ip.len() + l4.len()) as u16;
        ip[2..4].copy_from_slice(&pick(r, total, &[total + 1, total - 1, 19]).to_be_bytes());
        ip[4..6].copy_from_slice(&r.u16(..).to_be_bytes());
        ip[6..8].copy_from_slice(&pick(r, 0x4000u16, &[0, 0x2000, 0x0001, 0x4000, 0x6000]).to_be_bytes());
        ip[8] = pick(r, 64, &[0, 1, 2, 255]);
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let c = finish(sum(&ip, 0));
        let c = if r.u8(..) < 8 { c ^ 0x0100 } else { c };
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&l4);
        frame(r, 0x0800, &ip)
    }

    /// The session table as the operator sees it.
    fn sessions(p: &mut Pipeline<VecBuf, AnyInstance<VecBuf>>) -> Vec<SessionView> {
        let (mut all, mut cursor) = (Vec::new(), 0);
        loop {
            let req = Request::Sessions { instance: 0, filter: Filter::default(), cursor };
            match p.handle(0, &req) {
                Response::Sessions(v, next) => {
                    all.extend(v);
                    match next {
                        Some(c) => cursor = c,
                        None => return all,
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// The stateful instances' statistics (counters, live entries), as the
    /// operator sees them.
    fn nat64_stats(p: &mut Pipeline<VecBuf, AnyInstance<VecBuf>>) -> String {
        match p.handle(0, &Request::Nat64Stats) {
            Response::Nat64Stats(v) => format!("{v:?}"),
            other => panic!("{other:?}"),
        }
    }

    /// The pipeline's counters but the express path's own.
    fn stats(p: &Pipeline<VecBuf, AnyInstance<VecBuf>>) -> Vec<u64> {
        let mut a = [0; Stats::LEN];
        p.stats.to_array_into(&mut a);
        a[Stats::SCALARS.iter().position(|n| *n == "express").unwrap()] = 0;
        a.to_vec()
    }

    /// What a comparison saw.
    #[derive(Default)]
    struct Seen {
        /// Frames the express path took, of those from the IPv4 side, and
        /// of those handed over by another worker.
        express: usize,
        express4: usize,
        handed: usize,
        /// Frames sent, and IPv4-side frames answered on the IPv6 side.
        sent: usize,
        answered: usize,
    }

    type Pipe = Pipeline<VecBuf, AnyInstance<VecBuf>>;

    /// The express path's promise: every frame leaves as the general path
    /// would send it (same bytes, same port, same order), whichever path
    /// took it, and the counters agree. Feeds 20 000 random frames, valid
    /// and broken, to two pipelines from `build`, the express path off in
    /// one. `nat`: stateful traffic (a few clients talking to a few
    /// remotes, TCP with any flags, the IPv4 side mostly answering what
    /// went out); else frames from anywhere to anywhere, on either port.
    /// `tag`: most frames carry this 802.1Q tag.
    fn compare(seed: u64, build: impl Fn() -> Pipe, nat: bool, tag: Option<u16>) -> (Seen, Pipe, Pipe) {
        let mut r = fastrand::Rng::with_seed(seed);
        let (mut fast, mut slow) = (build(), build());
        slow.express = false;
        let (mut a, mut of, mut os) = (VecAlloc::default(), Out::default(), Out::default());
        let (mut seen, mut last4) = (Seen::default(), Vec::new());
        for i in 0..20_000u64 {
            let v6 = if nat { r.u8(..) < 150 } else { r.bool() };
            let f = match (v6, nat) {
                (true, true) => {
                    let pool6 = pick(&mut r, 0x64, &[0x46]);
                    frame6_to(&mut r, true, pool6)
                }
                (true, false) => frame6(&mut r, false),
                (false, true) => frame4(&mut r, Some(&last4)),
                (false, false) => frame4(&mut r, None),
            };
            let f = match tag {
                Some(vid) if f[12..14] != [0x81, 0x00] && r.u8(..) < 240 => {
                    [&f[..12], &[0x81, 0x00], &vid.to_be_bytes()[..], &f[12..]].concat()
                }
                _ => f,
            };
            let stray = !nat && r.u8(..) >= 250;
            let port = u16::from(v6 == stray);
            let before = fast.stats.express;
            // Sometimes an IPv4 packet another worker handed over (the
            // frame's IP packet, whatever it holds).
            let l2 = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
            let handoff = nat && !v6 && r.u8(..) < 48 && f.len() > l2;
            if handoff {
                fast.process_handoff(1000 + i, VecBuf::from_slice(&f[l2..]), &mut a, &mut of);
                slow.process_handoff(1000 + i, VecBuf::from_slice(&f[l2..]), &mut a, &mut os);
            } else {
                fast.process(1000 + i, port, VecBuf::from_slice(&f), &mut a, &mut of);
                slow.process(1000 + i, port, VecBuf::from_slice(&f), &mut a, &mut os);
            }
            let took = fast.stats.express > before;
            assert_eq!(of.0, os.0, "seed {seed}, frame {i}: {f:02x?}");
            if let Some((1, out)) = of.0.last() {
                last4 = out[if tag.is_some() { 18 } else { 14 }..].to_vec();
            }
            seen.answered += usize::from(!v6 && of.0.iter().any(|(port, _)| *port == 0));
            seen.express4 += usize::from(!v6 && took);
            seen.handed += usize::from(handoff && took);
            seen.express += usize::from(took);
            seen.sent += of.0.len();
            of.0.clear();
            os.0.clear();
        }
        assert_eq!(stats(&fast), stats(&slow), "seed {seed}: counters");
        (seen, fast, slow)
    }

    /// Both paths were exercised, or the comparison proves nothing: more
    /// than `express` frames took the express path, more than `express4` of
    /// them from the IPv4 side, and over 1 000 more were sent the general
    /// way.
    fn exercised(seed: u64, s: &Seen, express: usize, express4: usize) {
        assert!(
            s.express > express && s.express4 > express4 && s.sent > s.express + 1_000,
            "seed {seed}: {} express ({} from IPv4) of {} sent",
            s.express,
            s.express4,
            s.sent
        );
    }

    /// Both NAT64 pipelines hold the same sessions and statistics; returns
    /// the sessions.
    fn same_nat64_state(seed: u64, fast: &mut Pipe, slow: &mut Pipe) -> Vec<SessionView> {
        let live = sessions(fast);
        assert_eq!(live, sessions(slow), "seed {seed}: sessions");
        assert_eq!(nat64_stats(fast), nat64_stats(slow), "seed {seed}: NAT64 counters");
        live
    }

    #[test]
    fn the_siit_express_path_sends_what_the_general_path_sends() {
        for (seed, tight) in [(1, false), (2, true), (3, false), (4, true)] {
            let (seen, ..) = compare(seed, || pipeline(tight), false, None);
            exercised(seed, &seen, 3_000, 1_000);
        }
    }

    /// A SIIT without pool6 claims only the IPv4 addresses of its EAMT
    /// (RFC 7757 §3), and as the only instance it is not asked: its express
    /// path must still leave every other destination to the general path.
    /// Here the EAMT maps half of the frames' usual destinations
    /// (192.0.2.0/25) and all their usual sources (203.0.113.0/24).
    #[test]
    fn an_eamt_only_siit_express_path_sends_what_the_general_path_sends() {
        let eamt_only = || {
            let mut p = pipeline(false);
            let AnyInstance::Siit(s) = &mut p.instances[0] else { unreachable!() };
            s.cfg.pool6 = None;
            let eam = |v6: &str, v4: &str| Eam { v6: v6.parse().unwrap(), v4: v4.parse().unwrap() };
            s.cfg.eamt = Eamt::new(vec![
                eam("2001:db8:6::/121", "192.0.2.0/25"),
                eam("2001:db8:7::/120", "203.0.113.0/24"),
            ])
            .unwrap();
            p
        };
        for seed in [5, 6] {
            // Few IPv6-side frames translate here (their destinations are
            // pool6 ones), so fewer frames are sent than in the other tests.
            let (seen, ..) = compare(seed, eamt_only, false, None);
            assert!(seen.express4 > 500 && seen.sent > seen.express + 500, "seed {seed}: {}", seen.sent);
        }
    }

    /// The same for the stateful NAT64, whose express path takes packets
    /// of sessions that exist; the session tables must agree too.
    #[test]
    fn the_nat64_express_path_sends_what_the_general_path_sends() {
        for seed in [11, 12] {
            let (seen, mut fast, mut slow) = compare(seed, nat64, true, None);
            let live = same_nat64_state(seed, &mut fast, &mut slow);
            assert!(live.iter().any(|s| s.state.is_some()), "TCP sessions too");
            exercised(seed, &seen, 1_000, 500);
            let Seen { handed, answered, .. } = seen;
            assert!(answered > 1_000 && handed > 50, "seed {seed}: {answered} answers, {handed} handed over");
        }
    }

    /// With two instances the express path takes the one the general path
    /// takes, the first that claims the destination: a NAT64 on
    /// 2001:db8:64::/96 and pool4 192.0.2.1, then a SIIT on
    /// 2001:db8:46::/96 (and every other IPv4 destination) whose EAMT also
    /// maps the NAT64's usual remotes (2001:db8:64::cb00:7100/120 =
    /// 203.0.113.0/24): those stay the NAT64's.
    #[test]
    fn with_two_instances_the_express_path_picks_the_general_paths_instance() {
        let both = || {
            let mut p = nat64();
            let siit = pipeline(false).instances.pop().unwrap();
            let AnyInstance::Siit(mut s) = siit else { unreachable!() };
            s.cfg.pool6 = Some("2001:db8:46::/96".parse().unwrap());
            let eam = |v6: &str, v4: &str| Eam { v6: v6.parse().unwrap(), v4: v4.parse().unwrap() };
            s.cfg.eamt = Eamt::new(vec![
                eam("2001:db8:6::/120", "192.0.2.0/24"),
                eam("2001:db8:64::cb00:7100/120", "203.0.113.0/24"),
            ])
            .unwrap();
            p.instances.push(AnyInstance::Siit(s));
            p
        };
        for seed in [21, 22] {
            let (seen, mut fast, mut slow) = compare(seed, both, true, None);
            same_nat64_state(seed, &mut fast, &mut slow);
            exercised(seed, &seen, 1_000, 500);
        }
    }

    /// On 802.1Q VLANs (both interfaces tagged, 7): the express path
    /// takes tagged frames of the interface's VLAN and sends them with the
    /// tag the next-hop cache holds.
    #[test]
    fn on_vlans_the_express_path_sends_what_the_general_path_sends() {
        let tagged = |nat: bool| {
            let p = if nat { nat64() } else { pipeline(false) };
            two_armed_on(p.instances.into_iter().next().unwrap(), Some(7))
        };
        for (seed, nat) in [(31, false), (32, true)] {
            let (seen, mut fast, mut slow) = compare(seed, || tagged(nat), nat, Some(7));
            if nat {
                assert_eq!(sessions(&mut fast), sessions(&mut slow), "seed {seed}: sessions");
            }
            exercised(seed, &seen, 1_000, 500);
        }
    }
}
