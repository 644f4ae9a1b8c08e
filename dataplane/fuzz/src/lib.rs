//! Helpers shared by the fuzz targets: walk every wire view over arbitrary
//! bytes, and cross-check what the views accept against etherparse.

use dataplane::wire::ip::protocol;
use dataplane::wire::{
    checksum, parse_chain, ArpPacket, EthernetFrame, ExtHeader, FragmentHeader, Icmpv4Packet, Icmpv6Packet,
    Ipv4Packet, Ipv6Packet, NdpNeighbor, TcpPacket, UdpPacket, VlanTag,
};

/// Walk an IPv4 packet and everything inside it, ICMP-quoted packets included.
pub fn walk_v4(b: &[u8], depth: u8) {
    let Ok(p) = Ipv4Packet::new_checked(b) else {
        return;
    };
    // Invariants the view documents.
    assert!(p.header_len() >= 20);
    assert!(p.header_len() <= usize::from(p.total_len()));
    assert!(usize::from(p.total_len()) <= b.len());
    assert_eq!(p.options().len() + 20 + p.payload().len(), usize::from(p.total_len()));
    // etherparse must agree on the fixed header.
    let (h, _) = etherparse::Ipv4Header::from_slice(b).expect("etherparse refused a header we accept");
    assert_eq!(h.source, p.src_addr().octets());
    assert_eq!(h.destination, p.dst_addr().octets());
    assert_eq!(h.total_len, p.total_len());
    assert_eq!(u8::from(h.protocol), p.protocol());
    assert_eq!(h.fragment_offset.value() * 8, p.frag_offset_bytes());
    assert_eq!(h.more_fragments, p.more_frags());
    assert_eq!(h.dont_fragment, p.dont_frag());
    // etherparse drops the reserved flag bit, so its recomputed checksum
    // is only comparable when that bit is clear. It also compares the
    // field with the checksum it computes, where the view sums the header
    // with the field (RFC 1071 §2): a field of 0xffff where etherparse
    // computes 0x0000 is the other ones'-complement zero, and valid
    // (RFC 1624 §3).
    if b[6] & 0x80 == 0 {
        let calc = h.calc_header_checksum();
        let same = h.header_checksum == calc || (h.header_checksum == 0xffff && calc == 0);
        assert_eq!(same, p.verify_checksum());
    }
    if p.is_first_fragment() {
        let pseudo = checksum::pseudo_v4(p.src_addr(), p.dst_addr(), p.protocol(), p.payload().len() as u16);
        walk_l4(p.protocol(), p.payload(), pseudo, depth);
    }
}

/// Walk an IPv6 packet, its extension headers and its upper layer.
pub fn walk_v6(b: &[u8], depth: u8) {
    let Ok(p) = Ipv6Packet::new_checked(b) else {
        return;
    };
    assert!(40 + usize::from(p.payload_len()) <= b.len());
    let (h, _) = etherparse::Ipv6Header::from_slice(b).expect("etherparse refused a header we accept");
    assert_eq!(h.source, p.src_addr().octets());
    assert_eq!(h.destination, p.dst_addr().octets());
    assert_eq!(h.payload_length, p.payload_len());
    assert_eq!(h.traffic_class, p.traffic_class());
    assert_eq!(h.flow_label.value(), p.flow_label());
    let Ok(c) = parse_chain(p.next_header(), p.payload()) else {
        return;
    };
    assert!(c.upper_offset <= p.payload().len());
    assert!(usize::from(c.count) <= dataplane::wire::ipv6ext::MAX_EXT_HEADERS);
    assert_eq!(c.upper_offset, c.ext_len);
    if let Some(f) = c.frag {
        let fh = FragmentHeader::new_checked(&p.payload()[f.offset..]).unwrap();
        assert_eq!(fh.ident(), f.ident);
    }
    if let Some(r) = c.routing {
        let rh = ExtHeader::new_checked(&p.payload()[r.offset..]).unwrap();
        assert_eq!(rh.segments_left(), r.segments_left);
    }
    if c.has_upper_header() {
        let upper = &p.payload()[c.upper_offset..];
        let pseudo = checksum::pseudo_v6(p.src_addr(), p.dst_addr(), c.upper_proto, upper.len() as u32);
        walk_l4(c.upper_proto, upper, pseudo, depth);
    }
}

/// Walk an upper-layer header; ICMP errors recurse into the quoted packet.
pub fn walk_l4(proto: u8, b: &[u8], pseudo: u32, depth: u8) {
    match proto {
        protocol::TCP => {
            if let Ok(t) = TcpPacket::new_checked(b) {
                assert_eq!(t.header_len(), 20 + t.options().len());
                let _ = (t.flags(), t.syn(), t.fin(), t.rst(), t.seq(), t.ack(), t.window());
                let ok = t.verify_checksum(pseudo);
                let full = checksum::finish(checksum::sum(b, pseudo));
                assert_eq!(ok, full == 0);
            }
        }
        protocol::UDP => {
            if let Ok(u) = UdpPacket::new_checked(b) {
                assert!(usize::from(u.len()) <= b.len());
                assert_eq!(u.payload().len() + 8, usize::from(u.len()));
                let _ = u.verify_checksum(pseudo);
            }
        }
        protocol::ICMP => {
            if let Ok(i) = Icmpv4Packet::new_checked(b) {
                let _ = (i.mtu(), i.pointer(), i.ident(), i.seq(), i.verify_checksum());
                if i.is_error() && depth < 2 {
                    walk_v4(i.payload(), depth + 1);
                }
            }
        }
        protocol::ICMPV6 => {
            if let Ok(i) = Icmpv6Packet::new_checked(b) {
                let _ = (i.mtu(), i.pointer(), i.verify_checksum(pseudo));
                if i.is_error() && depth < 2 {
                    walk_v6(i.payload(), depth + 1);
                }
            }
            if let Ok(n) = NdpNeighbor::new_checked(b) {
                let _ = (n.target_addr(), n.source_ll_addr(), n.target_ll_addr(), n.flags());
            }
        }
        _ => {}
    }
}

/// Walk an Ethernet frame: VLAN tags, ARP, then IP.
pub fn walk_ethernet(b: &[u8]) {
    let Ok(f) = EthernetFrame::new_checked(b) else {
        return;
    };
    let mut et = f.ethertype();
    let mut payload = f.payload();
    for _ in 0..2 {
        if !et.is_vlan() {
            break;
        }
        let Ok(v) = VlanTag::new_checked(payload) else {
            return;
        };
        et = v.ethertype();
        payload = &payload[4..];
    }
    match et {
        dataplane::wire::EtherType::ARP => {
            if let Ok(a) = ArpPacket::new_checked(payload) {
                let _ = (a.operation(), a.sender_ip_addr(), a.target_hw_addr());
            }
        }
        dataplane::wire::EtherType::IPV4 => walk_v4(payload, 0),
        dataplane::wire::EtherType::IPV6 => walk_v6(payload, 0),
        _ => {}
    }
}

/// Translation fuzzing: a fixed configuration, input shaping and the
/// output oracle shared by `xlate_6to4` and `xlate_4to6`.
pub mod xlate {
    use super::*;
    use dataplane::buf::{PacketBuf, VecAlloc, VecBuf};
    use dataplane::wire::ipv6ext::Chain;
    use dataplane::xlate::{
        translate_4to6, translate_6to4, Config, Eam, Eamt, IcmpRateLimit, Runtime, SiitMapper, Verdict,
    };
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::OnceLock;

    /// pool6 64:ff9b::/96 (non-global allowed so any IPv4 maps), one EAM
    /// 2001:db8:6::/120 <-> 192.0.2.0/24, an RFC 6791 address, no rate limit.
    pub fn config() -> &'static Config {
        static CFG: OnceLock<Config> = OnceLock::new();
        CFG.get_or_init(|| Config {
            pool6: Some("64:ff9b::/96".parse().unwrap()),
            eamt: Eamt::new(vec![Eam {
                v6: "2001:db8:6::/120".parse().unwrap(),
                v4: "192.0.2.0/24".parse().unwrap(),
            }])
            .unwrap(),
            rfc6791_v4: Some("203.0.113.8/32".parse().unwrap()),
            own_v4: Ipv4Addr::new(198, 51, 100, 1),
            own_v6: "2001:db8:ffff::1".parse().unwrap(),
            icmp_rate: IcmpRateLimit { per_sec: u32::MAX, burst: u32::MAX },
            wkp_allow_non_global: true,
            ..Config::default()
        })
    }

    /// Input shaping flags (first fuzz byte).
    const FIX_ADDRS: u8 = 0x01;
    const FIX_CSUM: u8 = 0x02;

    fn l4_checksum_field(proto: u8) -> Option<usize> {
        match proto {
            protocol::TCP => Some(16),
            protocol::UDP => Some(6),
            protocol::ICMP | protocol::ICMPV6 => Some(2),
            _ => None,
        }
    }

    /// Recompute the upper-layer checksum of an unfragmented packet.
    fn fill_l4(proto: u8, l4: &mut [u8], pseudo: u32) {
        let Some(at) = l4_checksum_field(proto) else {
            return;
        };
        if l4.len() < at + 2 {
            return;
        }
        l4[at..at + 2].copy_from_slice(&[0, 0]);
        let init = if proto == protocol::ICMP { 0 } else { pseudo };
        let mut c = checksum::finish(checksum::sum(l4, init));
        if proto == protocol::UDP && c == 0 {
            c = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Valid L4 checksum of an unfragmented packet, or None when not applicable.
    fn l4_ok(proto: u8, l4: &[u8], pseudo: u32) -> Option<bool> {
        let at = l4_checksum_field(proto)?;
        if l4.len() < at + 2 {
            return None;
        }
        if proto == protocol::UDP && l4[at..at + 2] == [0, 0] {
            return None;
        }
        let init = if proto == protocol::ICMP { 0 } else { pseudo };
        // A residue of 0 means every word, checksum included, is zero: an
        // all-zero ICMPv4 message whose checksum an RFC 1624 update gives as
        // 0x0000 instead of 0xffff (the update cannot see that the data is
        // all zero). Accepted as the known limit of incremental updates.
        let r = checksum::fold(checksum::sum(l4, init));
        Some(r == 0xffff || r == 0)
    }

    fn v6_upper(b: &[u8]) -> Option<(Ipv6Packet<&[u8]>, Chain)> {
        let p = Ipv6Packet::new_checked(b).ok()?;
        let c = parse_chain(p.next_header(), p.payload()).ok()?;
        Some((p, c))
    }

    /// Is `b` an unfragmented IPv6 packet with a verifying L4 checksum?
    fn v6_checksum_ok(b: &[u8]) -> Option<bool> {
        let (p, c) = v6_upper(b)?;
        if c.frag.is_some() || c.routing.is_some_and(|r| r.segments_left != 0) {
            return None;
        }
        let l4 = &p.payload()[c.upper_offset..];
        let pseudo = checksum::pseudo_v6(p.src_addr(), p.dst_addr(), c.upper_proto, l4.len() as u32);
        l4_ok(c.upper_proto, l4, pseudo)
    }

    /// Is `b` an unfragmented IPv4 packet with a verifying L4 checksum?
    fn v4_checksum_ok(b: &[u8]) -> Option<bool> {
        let p = Ipv4Packet::new_checked(b).ok()?;
        if p.is_fragment() {
            return None;
        }
        let l4 = p.payload();
        let pseudo = checksum::pseudo_v4(p.src_addr(), p.dst_addr(), p.protocol(), l4.len() as u16);
        l4_ok(p.protocol(), l4, pseudo)
    }

    /// Shape an IPv6 input: optionally move the addresses into mapped space
    /// and make the checksums right, so translation gets past the
    /// mapping and checksum gates often.
    pub fn shape_v6(flags: u8, b: &mut [u8]) {
        if b.len() < 40 {
            return;
        }
        if flags & FIX_ADDRS != 0 {
            let (s, d) = (b[23], b[39]);
            let src: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 6, 0, 0, 0, 0, u16::from(s));
            let dst: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc633, 0x6400 | u16::from(d));
            b[8..24].copy_from_slice(&src.octets());
            b[24..40].copy_from_slice(&dst.octets());
        }
        if flags & FIX_CSUM != 0 {
            let Ok(p) = Ipv6Packet::new_checked(&*b) else {
                return;
            };
            let (src, dst, end) = (p.src_addr(), p.dst_addr(), 40 + usize::from(p.payload_len()));
            let Ok(c) = parse_chain(p.next_header(), p.payload()) else {
                return;
            };
            if c.frag.is_some() {
                return;
            }
            let l4 = &mut b[40 + c.upper_offset..end];
            let pseudo = checksum::pseudo_v6(src, dst, c.upper_proto, l4.len() as u32);
            fill_l4(c.upper_proto, l4, pseudo);
        }
    }

    /// Shape an IPv4 input (see [`shape_v6`]); the header checksum is
    /// always made right when FIX_CSUM is set.
    pub fn shape_v4(flags: u8, b: &mut [u8]) {
        let Ok(mut p) = Ipv4Packet::new_checked(&mut *b) else {
            return;
        };
        if flags & FIX_ADDRS != 0 {
            let (s, d) = (p.src_addr().octets()[3], p.dst_addr().octets()[3]);
            p.set_src_addr(Ipv4Addr::new(198, 51, 100, s));
            p.set_dst_addr(Ipv4Addr::new(192, 0, 2, d));
        }
        if flags & FIX_CSUM != 0 {
            p.fill_checksum();
            if !p.is_fragment() {
                let pseudo =
                    checksum::pseudo_v4(p.src_addr(), p.dst_addr(), p.protocol(), p.payload().len() as u16);
                let proto = p.protocol();
                fill_l4(proto, p.payload_mut(), pseudo);
            }
        }
    }

    /// Findings reported to the translator's owner and not fixed yet, so
    /// the fuzzer can look past them: a UDP length field below 8 or beyond
    /// the IP payload, or a TCP data offset below 5 or beyond the segment,
    /// is forwarded as is (etherparse then refuses the output).
    /// `FUZZ_STRICT=1` checks them like everything else.
    fn known_finding(proto: u8, l4: &[u8]) -> bool {
        static STRICT: OnceLock<bool> = OnceLock::new();
        if *STRICT.get_or_init(|| std::env::var_os("FUZZ_STRICT").is_some_and(|v| v == "1")) {
            return false;
        }
        match proto {
            protocol::UDP => l4.len() >= 8 && UdpPacket::new_checked(l4).is_err(),
            protocol::TCP => l4.len() >= 20 && TcpPacket::new_checked(l4).is_err(),
            _ => false,
        }
    }

    /// etherparse must accept the IP layer (extension headers included),
    /// and the transport layer when it is one a translator rewrites.
    /// IPsec AH (what follows the IP header for protocol 51) is opaque to a
    /// translator and carried as is; etherparse would parse it, so the
    /// caller skips etherparse for it.
    fn etherparse_accepts(out: &[u8], what: &str) {
        let ip = etherparse::IpSlice::from_slice(out)
            .unwrap_or_else(|e| panic!("{what}: etherparse IP layer: {e}"));
        let pl = ip.payload();
        let proto = u8::from(pl.ip_number);
        let rewritten = matches!(proto, protocol::TCP | protocol::UDP | protocol::ICMP | protocol::ICMPV6);
        if rewritten && !pl.fragmented {
            etherparse::SlicedPacket::from_ip(out)
                .unwrap_or_else(|e| panic!("{what}: etherparse transport: {e}"));
        }
    }

    fn must_parse_v4(out: &[u8], what: &str) {
        let p = Ipv4Packet::new_checked(out).unwrap_or_else(|e| panic!("{what}: our IPv4 view: {e}"));
        assert!(p.verify_checksum(), "{what}: IPv4 header checksum");
        let known = p.is_first_fragment() && known_finding(p.protocol(), p.payload());
        if p.protocol() != protocol::AH && !known {
            etherparse_accepts(out, what);
        }
        walk_v4(out, 0);
    }

    fn must_parse_v6(out: &[u8], what: &str) {
        let p = Ipv6Packet::new_checked(out).unwrap_or_else(|e| panic!("{what}: our IPv6 view: {e}"));
        let chain = parse_chain(p.next_header(), p.payload());
        let upper = chain.map(|c| c.upper_proto);
        let known = chain.is_ok_and(|c| {
            c.has_upper_header() && known_finding(c.upper_proto, &p.payload()[c.upper_offset..])
        });
        if upper != Ok(protocol::AH) && !known {
            etherparse_accepts(out, what);
        }
        walk_v6(out, 0);
    }

    /// Translate IPv6 -> IPv4 and check the result.
    pub fn run_6to4(data: &[u8]) {
        let Some((&flags, pkt)) = data.split_first() else {
            return;
        };
        let mut buf = VecBuf::from_slice(pkt);
        shape_v6(flags, buf.data_mut());
        let in_ok = v6_checksum_ok(buf.data());
        let cfg = config();
        let mut rt = Runtime::new(1);
        let mut m = SiitMapper::new(cfg);
        let mut extra: Vec<VecBuf> = Vec::new();
        let v =
            translate_6to4(cfg, &mut rt, &mut m, &mut buf, &mut VecAlloc::default(), &mut |b| extra.push(b));
        match v {
            Verdict::Forward => {
                must_parse_v4(buf.data(), "6to4 forward");
                for (i, e) in extra.iter().enumerate() {
                    must_parse_v4(e.data(), &format!("6to4 extra {i}"));
                }
                if in_ok == Some(true) && extra.is_empty() {
                    assert_ne!(v4_checksum_ok(buf.data()), Some(false), "6to4 broke a valid L4 checksum");
                }
            }
            Verdict::Hairpin | Verdict::Reply(_) => must_parse_v6(buf.data(), "6to4 hairpin/reply"),
            Verdict::Drop(r) => {
                let _ = r.name();
            }
        }
    }

    /// Translate IPv4 -> IPv6 and check the result.
    pub fn run_4to6(data: &[u8]) {
        let Some((&flags, pkt)) = data.split_first() else {
            return;
        };
        let mut buf = VecBuf::from_slice(pkt);
        shape_v4(flags, buf.data_mut());
        let in_ok = v4_checksum_ok(buf.data());
        let cfg = config();
        let mut rt = Runtime::new(1);
        let mut m = SiitMapper::new(cfg);
        let mut extra: Vec<VecBuf> = Vec::new();
        let v =
            translate_4to6(cfg, &mut rt, &mut m, &mut buf, &mut VecAlloc::default(), &mut |b| extra.push(b));
        match v {
            Verdict::Forward => {
                must_parse_v6(buf.data(), "4to6 forward");
                for (i, e) in extra.iter().enumerate() {
                    must_parse_v6(e.data(), &format!("4to6 extra {i}"));
                }
                if in_ok == Some(true) && extra.is_empty() {
                    assert_ne!(v6_checksum_ok(buf.data()), Some(false), "4to6 broke a valid L4 checksum");
                }
            }
            Verdict::Hairpin | Verdict::Reply(_) => must_parse_v4(buf.data(), "4to6 hairpin/reply"),
            Verdict::Drop(r) => {
                let _ = r.name();
            }
        }
    }
}
