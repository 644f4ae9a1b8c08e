//! Property tests for dataplane::wire: checksum arithmetic against a plain
//! RFC 1071 reference, and header round trips checked by etherparse.

use dataplane::wire::checksum::{finish, fold, pseudo_v4, pseudo_v6, sum, update, update_udp};
use dataplane::wire::ip::protocol;
use dataplane::wire::{parse_chain, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 1071 §4.1 done the slow way.
fn reference(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for pair in data.chunks(2) {
        let w = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        s += u32::from(w);
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Ones'-complement equality (0x0000 and 0xffff are both zero).
fn oc_eq(a: u16, b: u16) -> bool {
    a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
}

proptest! {
    #[test]
    fn sum_matches_reference(data in prop::collection::vec(any::<u8>(), 0..3000), init in any::<u32>()) {
        prop_assert_eq!(fold(sum(&data, 0)), reference(&data));
        let with_init = fold(sum(&data, init));
        let expect = fold(u32::from(reference(&data)) + u32::from(fold(init)));
        prop_assert!(oc_eq(with_init, expect));
    }

    #[test]
    fn sum_chains_over_even_splits(data in prop::collection::vec(any::<u8>(), 0..600), cut in 0usize..300) {
        let cut = (cut * 2).min(data.len() & !1);
        prop_assert_eq!(fold(sum(&data[cut..], sum(&data[..cut], 0))), fold(sum(&data, 0)));
    }

    /// RFC 1624: replacing an even-aligned region and updating the checksum
    /// incrementally gives what a full recompute gives, and a checksum that
    /// was off by some amount stays off by exactly that amount.
    #[test]
    fn incremental_update(
        mut pkt in prop::collection::vec(any::<u8>(), 24..200),
        at in 2usize..10,
        new in prop::collection::vec(any::<u8>(), 1..8),
        skew in any::<u16>(),
    ) {
        let at = at * 2;
        let n = (new.len() * 2).min(pkt.len() - at) & !1;
        let new: Vec<u8> = new.iter().chain(new.iter()).copied().take(n).collect();
        // Correct checksum at 0..2.
        pkt[0] = 0;
        pkt[1] = 0;
        let c = finish(sum(&pkt, 0));
        let old_sum = sum(&pkt[at..at + n], 0);
        let mut good = pkt.clone();
        good[..2].copy_from_slice(&c.to_be_bytes());
        good[at..at + n].copy_from_slice(&new);
        let c2 = update(c, old_sum, sum(&new, 0));
        good[..2].copy_from_slice(&c2.to_be_bytes());
        prop_assert_eq!(fold(sum(&good, 0)), 0xffff);

        // A wrong checksum: the residue is preserved.
        let wrong = c.wrapping_add(skew);
        let mut bad = pkt.clone();
        bad[..2].copy_from_slice(&wrong.to_be_bytes());
        let before = fold(sum(&bad, 0));
        bad[at..at + n].copy_from_slice(&new);
        let w2 = update(wrong, old_sum, sum(&new, 0));
        bad[..2].copy_from_slice(&w2.to_be_bytes());
        prop_assert!(oc_eq(fold(sum(&bad, 0)), before));

        // UDP: zero means "no checksum" and stays zero; never emit zero.
        prop_assert_eq!(update_udp(0, old_sum, sum(&new, 0)), 0);
        prop_assert_ne!(update_udp(wrong | 1, old_sum, sum(&new, 0)), 0);
    }

    #[test]
    fn ipv4_round_trip(
        tos in any::<u8>(), ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(),
        off in 0u16..8192, ttl in any::<u8>(), proto in any::<u8>(),
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), plen in 0usize..64,
    ) {
        let mut v = vec![0u8; 20 + plen];
        let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
        p.set_version_and_header_len(20);
        p.set_dscp_ecn(tos);
        p.set_total_len((20 + plen) as u16);
        p.set_ident(ident);
        p.set_frag(df, mf, off * 8);
        p.set_ttl(ttl);
        p.set_protocol(proto);
        p.set_src_addr(Ipv4Addr::from(src));
        p.set_dst_addr(Ipv4Addr::from(dst));
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!((p.dont_frag(), p.more_frags(), p.frag_offset_bytes()), (df, mf, off * 8));
        prop_assert_eq!(p.payload().len(), plen);
        let (h, _) = etherparse::Ipv4Header::from_slice(&v).unwrap();
        prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
        prop_assert_eq!(h.identification, ident);
        prop_assert_eq!(h.fragment_offset.value(), off);
        prop_assert_eq!((h.dont_fragment, h.more_fragments), (df, mf));
        prop_assert_eq!(h.time_to_live, ttl);
        prop_assert_eq!(h.source, src);
    }

    #[test]
    fn ipv6_round_trip(
        tc in any::<u8>(), flow in 0u32..(1 << 20), nh in any::<u8>(), hl in any::<u8>(),
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), plen in 0usize..64,
    ) {
        let mut v = vec![0u8; 40 + plen];
        let mut p = Ipv6Packet::new_unchecked(&mut v[..]);
        p.set_version_tc_flow(tc, flow);
        p.set_payload_len(plen as u16);
        p.set_next_header(nh);
        p.set_hop_limit(hl);
        p.set_src_addr(Ipv6Addr::from(src));
        p.set_dst_addr(Ipv6Addr::from(dst));
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        prop_assert_eq!((p.traffic_class(), p.flow_label(), p.next_header()), (tc, flow, nh));
        let (h, rest) = etherparse::Ipv6Header::from_slice(&v).unwrap();
        prop_assert_eq!((h.traffic_class, h.flow_label.value(), h.hop_limit), (tc, flow, hl));
        prop_assert_eq!(h.source, src);
        prop_assert_eq!(rest.len(), plen);
    }

    /// Transport checksums filled by the views verify under etherparse.
    #[test]
    fn transport_checksums_agree(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
        s4 in any::<[u8; 4]>(), d4 in any::<[u8; 4]>(),
        sp in any::<u16>(), dp in any::<u16>(),
        data in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let (s6, d6) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
        // UDP over IPv6.
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv6(src, dst, 64).udp(sp, dp).write(&mut w, &data).unwrap();
        let len = (w.len() - 40) as u32;
        let mut u = UdpPacket::new_checked(&mut w[40..]).unwrap();
        let theirs = u.checksum();
        u.fill_checksum(pseudo_v6(s6, d6, protocol::UDP, len));
        prop_assert_eq!(u.checksum(), theirs);
        // TCP over IPv4.
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv4(s4, d4, 64).tcp(sp, dp, 1, 2).write(&mut w, &data).unwrap();
        let len = (w.len() - 20) as u16;
        let pseudo = pseudo_v4(Ipv4Addr::from(s4), Ipv4Addr::from(d4), protocol::TCP, len);
        let mut t = TcpPacket::new_checked(&mut w[20..]).unwrap();
        prop_assert!(t.verify_checksum(pseudo));
        let theirs = t.checksum();
        t.fill_checksum(pseudo);
        prop_assert_eq!(t.checksum(), theirs);
    }

    /// The chain walker and etherparse agree on where the upper layer
    /// starts for chains of options headers.
    #[test]
    fn chain_agrees_with_etherparse(lens in prop::collection::vec(0u8..4, 0..7), upper in prop::sample::select(vec![6u8, 17, 58, 59])) {
        let mut bytes = Vec::new();
        let mut first = upper;
        // Build back to front: each header names the one after it.
        let mut next = upper;
        let mut headers: Vec<Vec<u8>> = Vec::new();
        for (i, l) in lens.iter().enumerate().rev() {
            let mut h = vec![0u8; (usize::from(*l) + 1) * 8];
            h[0] = next;
            h[1] = *l;
            h[2] = 1; // PadN covering the rest
            h[3] = (h.len() - 4) as u8;
            next = if i == 0 { protocol::HOPOPTS } else { protocol::IPV6_OPTS };
            headers.push(h);
            first = next;
        }
        for h in headers.iter().rev() {
            bytes.extend_from_slice(h);
        }
        bytes.extend_from_slice(&[0u8; 20]);
        let c = parse_chain(first, &bytes).unwrap();
        prop_assert_eq!(c.upper_proto, upper);
        prop_assert_eq!(usize::from(c.count), lens.len());
        // etherparse keeps one destination options header before the
        // routing header, so it only walks chains of up to two here.
        if lens.len() <= 2 {
            let (_, nh, rest) =
                etherparse::Ipv6Extensions::from_slice(first.into(), &bytes).unwrap();
            prop_assert_eq!(u8::from(nh), upper);
            prop_assert_eq!(rest.len(), bytes.len() - c.upper_offset);
        }
        let walked: usize = lens.iter().map(|l| (usize::from(*l) + 1) * 8).sum();
        prop_assert_eq!(c.upper_offset, walked);
    }
}
