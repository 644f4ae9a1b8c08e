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
    // is only comparable when that bit is clear.
    if b[6] & 0x80 == 0 {
        assert_eq!(h.header_checksum == h.calc_header_checksum(), p.verify_checksum());
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
