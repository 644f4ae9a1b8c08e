//! Packets the appliance answers or originates itself: ARP, NDP and ICMP
//! echo for its own addresses, and the requests that resolve next hops.
//! Answers are built in place in the received buffer.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::wire::arp::op;
use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame, VLAN_TAG_LEN};
use crate::wire::icmpv4::{self, Icmpv4Packet};
use crate::wire::icmpv6::{self, na_flags, ndp_option, Icmpv6Packet, NdpNeighbor};
use crate::wire::ip::protocol;
use crate::wire::{ArpPacket, Ipv4Packet, Ipv6Packet};

/// Hop limit of packets the appliance originates.
pub const DEFAULT_TTL: u8 = 64;
/// RFC 4861 §6.1.2, §7.1: NDP messages travel with hop limit 255 only.
pub const NDP_HOP_LIMIT: u8 = 255;
/// The length of an ARP packet for Ethernet/IPv4.
pub const ARP_LEN: usize = 28;
/// A neighbour solicitation or advertisement with one link-layer option.
const NDP_LEN: usize = icmpv6::NDP_NEIGHBOR_LEN + 8;

/// An interface's own addresses of one family, for the per-packet "is
/// this for us?" test. Nearly every packet is not: a 64-bit filter on the
/// address's last byte says so with one test, and only a packet that
/// passes it is compared with the addresses.
#[derive(Debug, Clone)]
pub struct OwnAddrs<T> {
    filter: u64,
    addrs: Vec<T>,
}

impl<T: PartialEq + Copy> OwnAddrs<T> {
    /// The set of `addrs`; `last` gives an address's last byte.
    pub fn new(addrs: &[T], last: impl Fn(&T) -> u8) -> Self {
        let filter = addrs.iter().fold(0, |f, a| f | filter_bit(last(a)));
        OwnAddrs { filter, addrs: addrs.to_vec() }
    }

    /// Whether `a`, whose last byte is `last`, is one of the addresses.
    #[inline(always)]
    pub fn contains(&self, a: T, last: u8) -> bool {
        self.filter & filter_bit(last) != 0 && self.addrs.contains(&a)
    }
}

/// The bit of [`OwnAddrs`]'s filter for an address ending in `last`.
#[inline(always)]
fn filter_bit(last: u8) -> u64 {
    1 << (last & 63)
}

/// Prepend an Ethernet header (and an 802.1Q tag when `vlan` is set) in
/// front of an IP packet. False when the headroom is too small.
#[inline]
pub fn push_l2<B: PacketBuf>(
    buf: &mut B,
    dst: [u8; 6],
    src: [u8; 6],
    vlan: Option<u16>,
    et: EtherType,
) -> bool {
    let l2 = ethernet::HEADER_LEN + if vlan.is_some() { VLAN_TAG_LEN } else { 0 };
    if !buf.prepend(l2) {
        return false;
    }
    let b = buf.data_mut();
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    match vlan {
        Some(vid) => {
            b[12..14].copy_from_slice(&EtherType::VLAN.0.to_be_bytes());
            b[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            b[16..18].copy_from_slice(&et.0.to_be_bytes());
        }
        None => b[12..14].copy_from_slice(&et.0.to_be_bytes()),
    }
    true
}

/// RFC 826: turn a request (the frame's ARP part starts at `l2`) into the
/// reply for `ours`, announcing `mac`. The caller checked the request.
pub fn arp_reply_in_place(frame: &mut [u8], l2: usize, mac: [u8; 6]) {
    let mut arp = ArpPacket::new_unchecked(&mut frame[l2..]);
    let (sha, spa, tpa) = (arp.sender_hw_addr(), arp.sender_ip_addr(), arp.target_ip_addr());
    arp.set_operation(op::REPLY);
    arp.set_target_hw_addr(sha);
    arp.set_target_ip_addr(spa);
    arp.set_sender_hw_addr(EthernetAddress(mac));
    arp.set_sender_ip_addr(tpa);
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(sha);
    eth.set_src_addr(EthernetAddress(mac));
}

/// Write an ARP request for `target` into an empty buffer.
pub fn arp_request<B: PacketBuf>(
    buf: &mut B,
    mac: [u8; 6],
    vlan: Option<u16>,
    ours: Ipv4Addr,
    target: Ipv4Addr,
) -> bool {
    if !buf.append(ARP_LEN) {
        return false;
    }
    let mut arp = ArpPacket::new_unchecked(buf.data_mut());
    arp.init_ethernet_ipv4();
    arp.set_operation(op::REQUEST);
    arp.set_sender_hw_addr(EthernetAddress(mac));
    arp.set_sender_ip_addr(ours);
    arp.set_target_hw_addr(EthernetAddress([0; 6]));
    arp.set_target_ip_addr(target);
    push_l2(buf, [0xff; 6], mac, vlan, EtherType::ARP)
}

/// RFC 792: answer an echo request to one of our IPv4 addresses in place.
/// `ip` is the IPv4 packet; the caller checked it is an echo request.
pub fn echo_reply_v4(ip: &mut [u8]) {
    let mut p = Ipv4Packet::new_unchecked(&mut *ip);
    let (src, dst) = (p.src_addr(), p.dst_addr());
    p.set_src_addr(dst);
    p.set_dst_addr(src);
    p.set_ttl(DEFAULT_TTL);
    p.fill_checksum();
    let hl = p.header_len();
    let total = usize::from(p.total_len()).min(ip.len());
    let mut icmp = Icmpv4Packet::new_unchecked(&mut ip[hl..total]);
    icmp.set_msg_type(icmpv4::types::ECHO_REPLY);
    icmp.set_code(0);
    icmp.fill_checksum();
}

/// RFC 4443 §4.2: answer an echo request to one of our IPv6 addresses in
/// place. The caller checked it is an echo request without extension headers.
pub fn echo_reply_v6(ip: &mut [u8]) {
    let mut p = Ipv6Packet::new_unchecked(&mut *ip);
    let (src, dst) = (p.src_addr(), p.dst_addr());
    p.set_src_addr(dst);
    p.set_dst_addr(src);
    p.set_hop_limit(DEFAULT_TTL);
    let len = usize::from(p.payload_len());
    let end = (ipv6_hdr() + len).min(ip.len());
    let mut icmp = Icmpv6Packet::new_unchecked(&mut ip[ipv6_hdr()..end]);
    icmp.set_msg_type(icmpv6::types::ECHO_REPLY);
    icmp.set_code(0);
    icmp.fill_checksum(checksum::pseudo_v6(dst, src, protocol::ICMPV6, len as u32));
}

const fn ipv6_hdr() -> usize {
    crate::wire::ipv6::HEADER_LEN
}

/// RFC 4861 §7.2.4: turn a neighbour solicitation for our `target` into
/// the advertisement, in place. `B` holds the IPv6 packet.
pub fn na_in_place<B: PacketBuf>(buf: &mut B, mac: [u8; 6], target: Ipv6Addr) -> bool {
    let total = ipv6_hdr() + NDP_LEN;
    if buf.len() < total && !buf.append(total - buf.len()) {
        return false;
    }
    buf.truncate(total);
    let ip = buf.data_mut();
    let mut p = Ipv6Packet::new_unchecked(&mut *ip);
    let src = p.src_addr();
    // §7.2.4: an unspecified source (duplicate address detection) gets its
    // answer on all-nodes, without the solicited flag.
    let (dst, flags) = if src.is_unspecified() {
        (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), na_flags::ROUTER | na_flags::OVERRIDE)
    } else {
        (src, na_flags::ROUTER | na_flags::SOLICITED | na_flags::OVERRIDE)
    };
    p.set_version_tc_flow(0, 0);
    p.set_payload_len(NDP_LEN as u16);
    p.set_next_header(protocol::ICMPV6);
    p.set_hop_limit(NDP_HOP_LIMIT);
    p.set_src_addr(target);
    p.set_dst_addr(dst);
    let body = &mut ip[ipv6_hdr()..];
    let mut nd = NdpNeighbor::new_unchecked(&mut *body);
    nd.init(true, flags, target);
    nd.set_ll_option(ndp_option::TARGET_LL_ADDR, EthernetAddress(mac));
    Icmpv6Packet::new_unchecked(body).fill_checksum(checksum::pseudo_v6(
        target,
        dst,
        protocol::ICMPV6,
        NDP_LEN as u32,
    ));
    true
}

/// RFC 4861 §2.3: the solicited-node multicast address of `a`.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// Write a neighbour solicitation for `target` into an empty buffer
/// (RFC 4861 §7.2.2, multicast to the solicited-node group).
pub fn ns_request<B: PacketBuf>(
    buf: &mut B,
    mac: [u8; 6],
    vlan: Option<u16>,
    ours: Ipv6Addr,
    target: Ipv6Addr,
) -> bool {
    if !buf.append(ipv6_hdr() + NDP_LEN) {
        return false;
    }
    let group = solicited_node(target);
    let ip = buf.data_mut();
    let mut p = Ipv6Packet::new_unchecked(&mut *ip);
    p.set_version_tc_flow(0, 0);
    p.set_payload_len(NDP_LEN as u16);
    p.set_next_header(protocol::ICMPV6);
    p.set_hop_limit(NDP_HOP_LIMIT);
    p.set_src_addr(ours);
    p.set_dst_addr(group);
    let body = &mut ip[ipv6_hdr()..];
    let mut nd = NdpNeighbor::new_unchecked(&mut *body);
    nd.init(false, 0, target);
    nd.set_ll_option(ndp_option::SOURCE_LL_ADDR, EthernetAddress(mac));
    Icmpv6Packet::new_unchecked(body).fill_checksum(checksum::pseudo_v6(
        ours,
        group,
        protocol::ICMPV6,
        NDP_LEN as u32,
    ));
    push_l2(buf, EthernetAddress::ipv6_multicast(group).0, mac, vlan, EtherType::IPV6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// The filtered set answers as the list does: for the addresses, for
    /// others sharing their filter bit (last byte equal modulo 64), for
    /// every last byte under two prefixes, and with no addresses at all.
    #[test]
    fn own_addrs_agree_with_the_list() {
        let ours =
            [Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x41)];
        let last = |a: &Ipv6Addr| a.octets()[15];
        let set = OwnAddrs::new(&ours, last);
        let none = OwnAddrs::new(&[], last);
        let mut probes: Vec<Ipv6Addr> = ours.to_vec();
        probes.push(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x41)); // bit shared, address not
        probes.push(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x81)); // 0x81 % 64 == 1
        for p in [0x2001_0db8_u128 << 96, 0xfe80 << 112] {
            probes.extend((0..=255u8).map(|b| Ipv6Addr::from(p | u128::from(b))));
        }
        for a in probes {
            assert_eq!(set.contains(a, last(&a)), ours.contains(&a), "{a}");
            assert!(!none.contains(a, last(&a)));
        }
        let v4 = [Ipv4Addr::new(192, 0, 2, 1)];
        let set4 = OwnAddrs::new(&v4, |a| a.octets()[3]);
        for a in [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 65), Ipv4Addr::new(10, 0, 0, 2)] {
            assert_eq!(set4.contains(a, a.octets()[3]), v4.contains(&a), "{a}");
        }
    }

    #[test]
    fn arp_request_and_reply_round_trip() {
        let mut req = VecBuf::default();
        assert!(arp_request(
            &mut req,
            PEER,
            None,
            "192.0.2.5".parse().unwrap(),
            "192.0.2.2".parse().unwrap()
        ));
        assert_eq!(req.len(), 14 + ARP_LEN);
        let mut f = req.to_vec();
        arp_reply_in_place(&mut f, 14, MAC);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.dst_addr().0, PEER);
        assert_eq!(eth.src_addr().0, MAC);
        let arp = ArpPacket::new_checked(&f[14..]).unwrap();
        assert_eq!(arp.operation(), op::REPLY);
        assert_eq!(arp.sender_ip_addr(), "192.0.2.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(arp.sender_hw_addr().0, MAC);
        assert_eq!(arp.target_ip_addr(), "192.0.2.5".parse::<Ipv4Addr>().unwrap());
        assert_eq!(arp.target_hw_addr().0, PEER);
    }

    #[test]
    fn echo_v4_is_answered_with_valid_checksums() {
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 0, 2, 5], [192, 0, 2, 2], 9)
            .icmpv4_echo_request(7, 1)
            .write(&mut w, b"ping")
            .unwrap();
        echo_reply_v4(&mut w);
        let s = SlicedPacket::from_ip(&w).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &s.net else { panic!("not ipv4") };
        assert_eq!(ip.header().source(), [192, 0, 2, 2]);
        assert_eq!(ip.header().destination(), [192, 0, 2, 5]);
        assert_eq!(ip.header().ttl(), DEFAULT_TTL);
        assert!(Ipv4Packet::new_checked(&w[..]).unwrap().verify_checksum());
        let Some(TransportSlice::Icmpv4(icmp)) = s.transport else { panic!("not icmp") };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 1));
        assert!(Icmpv4Packet::new_checked(&w[20..]).unwrap().verify_checksum());
    }

    #[test]
    fn echo_v6_is_answered_with_valid_checksum() {
        let (a, b): (Ipv6Addr, Ipv6Addr) = ("2001:db8::5".parse().unwrap(), "2001:db8::1".parse().unwrap());
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv6(a.octets(), b.octets(), 9)
            .icmpv6_echo_request(3, 4)
            .write(&mut w, b"hello")
            .unwrap();
        echo_reply_v6(&mut w);
        let p = Ipv6Packet::new_checked(&w[..]).unwrap();
        assert_eq!((p.src_addr(), p.dst_addr()), (b, a));
        let icmp = Icmpv6Packet::new_checked(&w[40..]).unwrap();
        assert_eq!(icmp.msg_type(), icmpv6::types::ECHO_REPLY);
        assert!(icmp.verify_checksum(checksum::pseudo_v6(b, a, protocol::ICMPV6, icmp_len(&w))));
        let s = SlicedPacket::from_ip(&w).unwrap();
        let Some(TransportSlice::Icmpv6(i)) = s.transport else { panic!() };
        assert!(matches!(i.icmp_type(), Icmpv6Type::EchoReply(e) if e.id == 3 && e.seq == 4));
    }

    fn icmp_len(w: &[u8]) -> u32 {
        (w.len() - 40) as u32
    }

    #[test]
    fn solicitation_becomes_advertisement() {
        let ours: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let peer: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let mut ns = VecBuf::default();
        assert!(ns_request(&mut ns, PEER, None, peer, ours));
        let f = ns.to_vec();
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 0, 1], "solicited-node multicast MAC");
        let mut ip = VecBuf::from_slice(&f[14..]);
        let p = Ipv6Packet::new_checked(ip.data()).unwrap();
        assert_eq!(p.dst_addr(), "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap());
        let nd = NdpNeighbor::new_checked(p.payload()).unwrap();
        assert!(nd.is_solicit());
        assert_eq!(nd.source_ll_addr().unwrap().0, PEER);

        assert!(na_in_place(&mut ip, MAC, ours));
        let p = Ipv6Packet::new_checked(ip.data()).unwrap();
        assert_eq!((p.src_addr(), p.dst_addr(), p.hop_limit()), (ours, peer, 255));
        let icmp = Icmpv6Packet::new_checked(p.payload()).unwrap();
        assert!(icmp.verify_checksum(checksum::pseudo_v6(ours, peer, protocol::ICMPV6, NDP_LEN as u32)));
        let nd = NdpNeighbor::new_checked(p.payload()).unwrap();
        assert!(!nd.is_solicit());
        assert_eq!(nd.target_addr(), ours);
        assert_eq!(nd.target_ll_addr().unwrap().0, MAC);
        assert_ne!(nd.flags() & na_flags::SOLICITED, 0);
    }

    #[test]
    fn vlan_tag_is_written() {
        let mut b = VecBuf::from_slice(&[0x45]);
        assert!(push_l2(&mut b, PEER, MAC, Some(100), EtherType::IPV4));
        assert_eq!(b.len(), 19);
        assert_eq!(&b.data()[12..18], &[0x81, 0x00, 0x00, 100, 0x08, 0x00]);
    }
}
