//! The common case of each direction in one pass.
//!
//! Nearly every packet a translator sees is one IP header without options
//! or extension headers, UDP or TCP, unfragmented, with a hop to spare and
//! addresses the mapper knows (for NAT64: a session that exists). The general translators ([`super::v6to4`],
//! [`super::v4to6`]) spend much of their work finding that out through
//! parses built for every case. Here the header is read once, the common
//! case is decided with a handful of compares, and the new header and
//! checksums are written by the general path's own writers.
//!
//! Anything else returns `None` with the packet untouched, and the caller
//! translates it the general way. That includes every packet that would be
//! answered or dropped, so the express path never decides what the general
//! path would decide differently; the pipeline tests feed both the same
//! frames and compare them byte for byte. The mapping is the caller's:
//! whatever it changes once it has said yes is what the general path's
//! mapping would have changed, and before that it changes nothing
//! ([`SiitMapper`](super::SiitMapper) has no state; the stateful NAT64
//! says yes for an established session, whose update is the general
//! path's own, and for a new session only when its creation cannot be
//! refused, so that it is the general path's creation).

use super::util::{l4_header_ok, rd16};
use super::{v4to6, v6to4, Config, Mapper, Runtime, Tuple4, Tuple6};
use crate::wire::ip::protocol;
use crate::wire::{Ipv4Packet, Ipv6Packet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The transport header of the common case, checked as the general path
/// checks it (RFC 768 / RFC 9293 lengths); `None` for any other protocol
/// or a header the general path would refuse. A zero UDP checksum from
/// IPv4 (RFC 7915 §4.5) goes the general way too.
#[inline(always)]
fn transport(proto: u8, l4: &[u8], from_v4: bool) -> Option<super::L4Ids> {
    let min = match proto {
        protocol::UDP => 8,
        protocol::TCP => 20,
        _ => return None,
    };
    if l4.len() < min || l4_header_ok(proto, l4, l4.len(), false).is_err() {
        return None;
    }
    if from_v4 && proto == protocol::UDP && l4[6] == 0 && l4[7] == 0 {
        return None;
    }
    // The ports, as `read_ids` reads them for UDP and TCP.
    Some(super::L4Ids::Ports { src: rd16(l4, 0), dst: rd16(l4, 2) })
}

/// RFC 7915 §5.1 for the common IPv6 packet. `ip` holds the packet from its
/// IPv6 header (and perhaps link-layer padding after it); `mapper` maps it
/// by [`Mapper::express_6to4`]. On success the IPv4 packet starts 20 bytes
/// into `ip`; returns its destination and length.
#[inline(always)]
pub(crate) fn express_6to4<M: Mapper>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    ip: &mut [u8],
) -> Option<(Ipv4Addr, usize)> {
    let (h, rest) = ip.split_first_chunk_mut::<40>()?;
    let v = Ipv6Packet::new_unchecked(&h[..]);
    let l4len = usize::from(v.payload_len());
    let (proto, hl, tc) = (v.next_header(), v.hop_limit(), v.traffic_class());
    // Version 6, the whole payload at hand, a hop to spare (§5.1: else
    // Time Exceeded) and room in the IPv4 MTU (else Packet Too Big).
    if v.version() != 6 || l4len > rest.len() || hl <= 1 || 20 + l4len > usize::from(cfg.mtu_ipv4) {
        return None;
    }
    let l4 = &mut rest[..l4len];
    let ids = transport(proto, l4, false)?;
    let t6 = Tuple6 { proto, src: v.src_addr(), dst: v.dst_addr(), ids };
    let tcp_flags = if proto == protocol::TCP { l4[13] } else { 0 };
    let t4 = mapper.express_6to4(&t6, tcp_flags)?;
    let total = 20 + l4len;
    let (id, flags) = v6to4::id_flags(None, total, Some(rt));
    v6to4::fix_l4_6to4(proto, l4, &t6, t4.src, t4.dst, t4.ids, M::KEEPS_IDS, l4len);
    v6to4::write_v4(&mut h[20..], cfg.tos.apply(tc), total as u16, id, flags, hl - 1, proto, t4.src, t4.dst);
    Some((t4.dst, total))
}

/// RFC 7915 §4.1 for the common IPv4 packet. `pkt` holds 20 bytes of room,
/// then the packet from its IPv4 header (and perhaps link-layer padding);
/// `mapper` maps it by [`Mapper::express_4to6`]. On success `pkt` starts
/// with the IPv6 packet; returns its destination and length.
#[inline(always)]
pub(crate) fn express_4to6<M: Mapper>(
    cfg: &Config,
    mapper: &mut M,
    pkt: &mut [u8],
) -> Option<(Ipv6Addr, usize)> {
    let (h, rest) = pkt.split_first_chunk_mut::<40>()?;
    let v = Ipv4Packet::new_unchecked(&h[20..]);
    let total = usize::from(v.total_len());
    let (proto, ttl, tos) = (v.protocol(), v.ttl(), v.dscp_ecn());
    let df = v.dont_frag();
    // Version 4 with no options (one byte: 0x45), the whole packet at hand,
    // not a fragment, a hop to spare (§4.1: else Time Exceeded) and a
    // correct header checksum; the general path answers everything else.
    if h[20] != 0x45
        || total < 20
        || total - 20 > rest.len()
        || v.is_fragment()
        || ttl <= 1
        || !v.verify_checksum()
    {
        return None;
    }
    let l4len = total - 20;
    let l4 = &mut rest[..l4len];
    let ids = transport(proto, l4, true)?;
    let t4 = Tuple4 { proto, src: v.src_addr(), dst: v.dst_addr(), ids };
    // Sent whole: within the IPv6 minimum MTU, or within what §4.1 allows
    // an unfragmented packet of this DF. (The general path maps first; a
    // packet that does not go whole is the general path's either way.)
    if !v4to6::goes_whole(cfg, 40 + l4len, df) {
        return None;
    }
    let tcp_flags = if proto == protocol::TCP { l4[13] } else { 0 };
    let t6 = mapper.express_4to6(&t4, tcp_flags)?;
    v4to6::fix_l4_4to6(proto, l4, &t4, t6.src, t6.dst, t6.ids, M::KEEPS_IDS, l4len);
    let tc = cfg.traffic_class.apply(tos);
    v4to6::write_v6(h, tc, l4len as u16, proto, ttl - 1, t6.src, t6.dst, None);
    Some((t6.dst, 40 + l4len))
}
