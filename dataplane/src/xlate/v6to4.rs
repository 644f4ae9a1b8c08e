//! IPv6 -> IPv4 (RFC 7915 §5).

use super::icmp::{self, MAX_ICMP4_ERROR};
use super::util::{addr_sum4, addr_sum6, apart, ids_sum, rd16, rd32, read_ids, replace, wr16, wr32};
use super::{v4to6, Config, DropReason, L4Ids, MapCtx, Mapper, Runtime, Tuple6, Verdict};
use crate::buf::{BufAlloc, PacketBuf};
use crate::wire::checksum::{finish, fold, pseudo_v6, sum, update, update_udp_wide, update_wide};
use crate::wire::ip::protocol;
use crate::wire::{ipv4, ipv6, Ipv6Packet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv6 Fragment Header's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frag {
    /// Offset in bytes.
    pub offset: u16,
    pub more: bool,
    pub id: u32,
}

impl Frag {
    fn is_fragment(&self) -> bool {
        self.offset != 0 || self.more
    }
}

/// What the translator needs from an IPv6 header and its extension chain.
/// The addresses stay in the packet ([`addrs`]): copied along with the rest
/// they made this struct too big to move cheaply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parsed6 {
    /// 40 + payload length (may exceed the bytes at hand for a quoted packet).
    pub total: usize,
    pub tc: u8,
    pub hl: u8,
    /// Upper-layer protocol.
    pub proto: u8,
    /// Offset of the upper-layer data.
    pub l4: usize,
    pub frag: Option<Frag>,
    /// Offset of Segments Left in a routing header that has segments left.
    pub routing_ptr: Option<usize>,
    /// An extension header follows the fragment header.
    pub ext_after_frag: bool,
}

impl Parsed6 {
    fn first(&self) -> bool {
        self.frag.is_none_or(|f| f.offset == 0)
    }
    fn fragmented(&self) -> bool {
        self.frag.is_some_and(|f| f.is_fragment())
    }
}

const MAX_EXT_HEADERS: usize = 8;

/// Source and destination of the IPv6 header at the start of `d`, which
/// [`parse6`] has checked.
#[inline(always)]
fn addrs(d: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
    let v = Ipv6Packet::new_unchecked(d);
    (v.src_addr(), v.dst_addr())
}

/// True for the next-header values [`walk_ext`] steps over or refuses.
#[inline]
fn is_ext_header(nh: u8) -> bool {
    matches!(nh, protocol::HOPOPTS | protocol::IPV6_ROUTE | protocol::IPV6_OPTS | protocol::IPV6_FRAG)
}

/// Parse the IPv6 header and walk the extension headers translation skips
/// (RFC 7915 §5.1: hop-by-hop, destination options, routing) up to the
/// upper layer or to the data of a non-first fragment. `quoted`: the packet
/// sits inside an ICMPv6 error and may be truncated.
#[inline(always)]
pub(crate) fn parse6(d: &[u8], quoted: bool) -> Result<Parsed6, DropReason> {
    let p = Parsed6::fixed(check6(d, quoted)?);
    if is_ext_header(p.proto) {
        return walk_ext(d, quoted);
    }
    Ok(p)
}

/// The checks of `Ipv6Packet::check_len`, through a fixed-size view (no
/// bounds checks on the field reads); a quoted packet may be cut short
/// after its header. Returns the fixed header: a reference (two
/// registers), not a `Result` holding the whole parse.
#[inline(always)]
fn check6(d: &[u8], quoted: bool) -> Result<&[u8; ipv6::HEADER_LEN], DropReason> {
    let Some(h) = d.first_chunk::<{ ipv6::HEADER_LEN }>() else {
        return Err(DropReason::Truncated);
    };
    let v = Ipv6Packet::new_unchecked(h);
    if v.version() != 6 {
        return Err(DropReason::BadVersion);
    }
    if !quoted && ipv6::HEADER_LEN + usize::from(v.payload_len()) > d.len() {
        return Err(DropReason::Truncated);
    }
    Ok(h)
}

impl Parsed6 {
    /// The fixed header [`check6`] accepted, before any extension header.
    #[inline(always)]
    fn fixed(h: &[u8; ipv6::HEADER_LEN]) -> Self {
        let v = Ipv6Packet::new_unchecked(h);
        Parsed6 {
            total: ipv6::HEADER_LEN + usize::from(v.payload_len()),
            tc: v.traffic_class(),
            hl: v.hop_limit(),
            proto: v.next_header(),
            l4: ipv6::HEADER_LEN,
            frag: None,
            routing_ptr: None,
            ext_after_frag: false,
        }
    }
}

/// The extension-header half of [`parse6`], for a packet whose header
/// [`check6`] accepted. It reads the fixed header again itself: taking the
/// caller's parse made the common path build it in memory to pass it.
#[inline(never)]
fn walk_ext(d: &[u8], quoted: bool) -> Result<Parsed6, DropReason> {
    let Some(h) = d.first_chunk() else { return Err(DropReason::Truncated) };
    let mut p = Parsed6::fixed(h);
    let total = p.total;
    if !quoted && total == 40 && p.proto == protocol::HOPOPTS {
        // RFC 2675: payload length 0 with hop-by-hop = jumbogram.
        return Err(DropReason::Jumbogram);
    }
    let limit = if quoted { d.len() } else { total };
    // Not wire::parse_chain: it refuses a hop-by-hop or second routing
    // header after a fragment header outright, where the translator must
    // answer the sender (the fragment rule in `translate`), does not say
    // whether headers follow the fragment header, and needs the whole
    // chain present (a quoted packet may be cut short).
    let mut nh = p.proto;
    let mut off = 40;
    for _ in 0..=MAX_EXT_HEADERS {
        match nh {
            protocol::HOPOPTS | protocol::IPV6_ROUTE | protocol::IPV6_OPTS => {
                if off + 8 > limit {
                    return Err(DropReason::Truncated);
                }
                if nh == protocol::HOPOPTS && off != 40 && p.frag.is_none() {
                    // RFC 8200 §4.1: hop-by-hop only right after the header.
                    // (After a fragment header it is refused below, with
                    // the other headers that follow one.)
                    return Err(DropReason::BadExtensionChain);
                }
                let len = (usize::from(d[off + 1]) + 1) * 8;
                if off + len > limit {
                    return Err(DropReason::Truncated);
                }
                if nh == protocol::IPV6_ROUTE && d[off + 3] != 0 && p.routing_ptr.is_none() {
                    p.routing_ptr = Some(off + 3);
                }
                if p.frag.is_some() {
                    p.ext_after_frag = true;
                }
                nh = d[off];
                off += len;
            }
            protocol::IPV6_FRAG => {
                if p.frag.is_some() {
                    return Err(DropReason::BadExtensionChain);
                }
                if off + 8 > limit {
                    return Err(DropReason::Truncated);
                }
                let fo = rd16(d, off + 2);
                let f = Frag { offset: fo & 0xfff8, more: fo & 1 != 0, id: rd32(d, off + 4) };
                p.frag = Some(f);
                nh = d[off];
                off += 8;
                if f.offset != 0 {
                    // The rest is fragment data, not headers.
                    break;
                }
            }
            _ => {
                p.proto = nh;
                p.l4 = off;
                return Ok(p);
            }
        }
    }
    if matches!(nh, 0 | 43 | 60 | 44) && p.first() {
        return Err(DropReason::BadExtensionChain);
    }
    p.proto = nh;
    p.l4 = off;
    Ok(p)
}

/// Rewrite the ports / identifier and fix the upper-layer checksum of a
/// (first-fragment) upper layer that moves from IPv6 to IPv4. `l4` may be
/// truncated (a quoted packet): fields past its end are left alone.
/// `icmp_len` is the ICMPv6 message length for the pseudo-header.
/// `keep_ids`: `to_ids` are `from.ids` ([`Mapper::KEEPS_IDS`]), not written.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn fix_l4_6to4(
    proto: u8,
    l4: &mut [u8],
    from: &Tuple6,
    to_src: Ipv4Addr,
    to_dst: Ipv4Addr,
    to_ids: L4Ids,
    keep_ids: bool,
    icmp_len: usize,
) {
    let write_ids = |l4: &mut [u8]| match to_ids {
        L4Ids::Ports { src, dst } if l4.len() >= 4 => {
            wr16(l4, 0, src);
            wr16(l4, 2, dst);
        }
        L4Ids::IcmpId(id) if l4.len() >= 6 => wr16(l4, 4, id),
        _ => {}
    };
    let old_ids = ids_sum(from.ids);
    let new_ids = ids_sum(to_ids);
    match proto {
        6 if l4.len() >= 18 => {
            let old = addr_sum6(from.src, from.dst) + u64::from(old_ids);
            let new = addr_sum4(to_src, to_dst) + u64::from(new_ids);
            let c = update_wide(rd16(l4, 16), old, new);
            wr16(l4, 16, c);
        }
        17 if l4.len() >= 8 => {
            let old = addr_sum6(from.src, from.dst) + u64::from(old_ids);
            let new = addr_sum4(to_src, to_dst) + u64::from(new_ids);
            let c = update_udp_wide(rd16(l4, 6), old, new);
            wr16(l4, 6, c);
        }
        58 if l4.len() >= 4 => {
            // ICMPv6 -> ICMP: the pseudo-header leaves the sum, the type
            // changes (echo only here).
            let t = l4[0];
            let nt = if t == 128 { 8 } else { 0 };
            let old_w = u32::from(u16::from_be_bytes([t, l4[1]]));
            let new_w = u32::from(u16::from_be_bytes([nt, l4[1]]));
            let pseudo = u32::from(fold(pseudo_v6(from.src, from.dst, 58, icmp_len as u32)));
            let (oi, ni) = if l4.len() >= 6 { (old_ids, new_ids) } else { (0, 0) };
            let c = update(rd16(l4, 2), pseudo + old_w + oi, new_w + ni);
            l4[0] = nt;
            wr16(l4, 2, c);
        }
        _ => {}
    }
    if !keep_ids {
        write_ids(l4);
    }
}

/// Write a 20-byte IPv4 header, its checksum summed from the fields.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn write_v4(
    h: &mut [u8],
    tos: u8,
    total: u16,
    id: u16,
    flags_off: u16,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    let Some(h) = h.first_chunk_mut::<{ ipv4::MIN_HEADER_LEN }>() else {
        return;
    };
    ipv4::BasicHeader {
        tos,
        total_len: total,
        ident: id,
        flags_frag: flags_off,
        ttl,
        protocol: proto,
        src,
        dst,
    }
    .emit(h);
}

/// RFC 7915 §5.1 Identification and flags. With a fragment header: its
/// identification (low 16 bits), MF and offset, DF clear. Without: DF set
/// only when the packet exceeds 1260 bytes (it may then meet an IPv4 link
/// narrower than 1280 - 20 and must come back as Packet Too Big); a DF=0
/// packet gets a fresh identification.
#[inline]
pub(super) fn id_flags(frag: Option<Frag>, total: usize, rt: Option<&mut Runtime>) -> (u16, u16) {
    match frag {
        Some(f) => (f.id as u16, (u16::from(f.more) << 13) | (f.offset >> 3)),
        None if total > 1260 => (0, 0x4000),
        None => (rt.map_or(0, |r| r.next_ip_id()), 0),
    }
}

fn proto4(p: u8) -> u8 {
    if p == 58 {
        1
    } else {
        p
    }
}

pub(crate) fn translate<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    let p = match check6(buf.data(), false) {
        Ok(h) => Parsed6::fixed(h),
        Err(e) => return Verdict::Drop(e),
    };
    if is_ext_header(p.proto) {
        let p = match walk_ext(buf.data(), false) {
            Ok(p) => p,
            Err(e) => return Verdict::Drop(e),
        };
        return apart(p, |p| translate_parsed(cfg, rt, mapper, buf, alloc, out, p));
    }
    translate_parsed(cfg, rt, mapper, buf, alloc, out, p)
}

/// [`translate`] once the header and its extension chain are parsed.
#[inline(always)]
fn translate_parsed<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
    p: Parsed6,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    buf.truncate(p.total);
    let d = buf.data();
    let is_icmp_error = p.proto == 58 && p.first() && d.get(p.l4).is_some_and(|&t| t < 128);
    let reply = |buf: &mut B, rt: &mut Runtime, t, c, param, why| {
        if is_icmp_error {
            // RFC 4443 §2.4(e): never an error about an error.
            Verdict::Drop(why)
        } else {
            icmp::reply6(cfg, rt, buf, t, c, param, why)
        }
    };
    if p.ext_after_frag && p.fragmented() {
        // The IPv4 fragment cannot carry these headers and cannot drop them
        // either (later fragments' offsets count them): refuse.
        return reply(buf, rt, 1, 1, 0, DropReason::ExtensionAfterFragment);
    }
    if let Some(ptr) = p.routing_ptr {
        // RFC 7915 §5.1: Parameter Problem pointing at Segments Left.
        return reply(buf, rt, 4, 0, ptr as u32, DropReason::RoutingHeader);
    }
    if p.hl <= 1 {
        // RFC 7915 §5.1: Hop Limit decremented; Time Exceeded at zero.
        return reply(buf, rt, 3, 0, 0, DropReason::HopLimitExceeded);
    }
    let l4len = p.total - p.l4;
    let ids = match p.proto {
        // ICMPv4 inside IPv6 would come out as unchecked ICMP.
        1 => return Verdict::Drop(DropReason::ProtocolUnsupported),
        58 => {
            if p.fragmented() {
                // RFC 7915 §5.1: fragmented ICMPv6 is not translated (the
                // checksum covers data not at hand).
                return Verdict::Drop(DropReason::FragmentedIcmp);
            }
            if l4len < 8 {
                return Verdict::Drop(DropReason::Truncated);
            }
            match d[p.l4] {
                0..=127 => return icmp_error(cfg, rt, mapper, buf, alloc, out),
                128 | 129 => L4Ids::IcmpId(rd16(d, p.l4 + 4)),
                // RFC 7915 §5.2: other informational messages are dropped.
                _ => return Verdict::Drop(DropReason::IcmpInfoUnsupported),
            }
        }
        6 if p.first() => {
            if l4len < 20 {
                return Verdict::Drop(DropReason::Truncated);
            }
            if let Err(e) = super::util::l4_header_ok(6, &d[p.l4..], l4len, p.fragmented()) {
                return Verdict::Drop(e);
            }
            read_ids(6, &d[p.l4..])
        }
        17 if p.first() => {
            if l4len < 8 {
                return Verdict::Drop(DropReason::Truncated);
            }
            if let Err(e) = super::util::l4_header_ok(17, &d[p.l4..], l4len, p.fragmented()) {
                return Verdict::Drop(e);
            }
            read_ids(17, &d[p.l4..])
        }
        _ => L4Ids::None,
    };
    let (src, dst) = addrs(d);
    let t6 = Tuple6 { proto: p.proto, src, dst, ids };
    let t4 = match mapper.map_6to4(&t6, MapCtx::default()) {
        Ok(t) => t,
        // RFC 7915 §5.4: answer a discarded non-ICMPv6 packet with
        // Destination Unreachable, Communication Administratively
        // Prohibited (address failures only, as in the other direction).
        Err(e) if p.proto != protocol::ICMPV6 && v4to6::is_address_failure(e) => {
            return reply(buf, rt, 1, 1, 0, e)
        }
        Err(e) => return Verdict::Drop(e),
    };
    let total = 20 + l4len;
    if total > usize::from(cfg.mtu_ipv4) {
        // RFC 7915 §5.1 / RFC 8200 §5: IPv6 does not fragment in flight;
        // tell the source the usable MTU (IPv4 MTU + 20), but never less
        // than the IPv6 minimum link MTU of 1280, which a host cannot go
        // below (RFC 8200 §5).
        let mtu = (u32::from(cfg.mtu_ipv4) + 20).max(1280);
        return reply(buf, rt, 2, 0, mtu, DropReason::PacketTooBig);
    }
    let (id, flags) = id_flags(p.frag, total, Some(&mut *rt));
    let start = p.l4 - 20;
    {
        let b = buf.data_mut();
        if p.first() {
            fix_l4_6to4(p.proto, &mut b[p.l4..], &t6, t4.src, t4.dst, t4.ids, M::KEEPS_IDS, l4len);
        }
        write_v4(
            &mut b[start..p.l4],
            cfg.tos.apply(p.tc),
            total as u16,
            id,
            flags,
            p.hl - 1,
            proto4(p.proto),
            t4.src,
            t4.dst,
        );
    }
    if !buf.adj(start) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    finish_hairpin(cfg, rt, mapper, buf, alloc, out, &t6, &t4)
}

/// Forward the translated packet, or hairpin it (RFC 7757 §4). The test
/// is inlined; the rare translation back is not, so the common path does
/// not pay for its stack frame.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish_hairpin<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
    t6: &Tuple6,
    t4: &super::Tuple4,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    if !mapper.hairpin(t6, t4) {
        return Verdict::Forward;
    }
    hairpin_back(cfg, rt, mapper, (buf, alloc, out))
}

/// RFC 7757 §4: the destination is on the IPv6 side; translate back.
#[inline(never)]
fn hairpin_back<B: PacketBuf>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut impl Mapper,
    (buf, alloc, out): (&mut B, &mut impl BufAlloc<Buf = B>, &mut impl FnMut(B)),
) -> Verdict {
    let ctx = MapCtx { hairpin: true, ..MapCtx::default() };
    match v4to6::translate(cfg, rt, mapper, buf, alloc, out, ctx) {
        Verdict::Forward => Verdict::Hairpin,
        Verdict::Reply(r) | Verdict::Drop(r) => Verdict::Drop(r),
        Verdict::Hairpin => Verdict::Hairpin,
    }
}

/// Translate the packet quoted in an ICMPv6 error into `out` (IPv4 header
/// then as much payload as fits). Returns the translated length, which may
/// exceed `out`. The hop limit is not decremented (RFC 7915 §5.3).
fn inner_6to4<M: Mapper>(
    mapper: &mut M,
    field: &[u8],
    out: &mut [u8],
    tos: super::TosPolicy,
) -> Result<usize, DropReason> {
    let p = parse6(field, true).map_err(|_| DropReason::BadInnerPacket)?;
    if p.total < p.l4 || out.len() < 20 {
        return Err(DropReason::BadInnerPacket);
    }
    let payload = &field[p.l4..];
    if p.proto == 58 && p.first() && payload.first().is_some_and(|&t| !(128..=129).contains(&t)) {
        // RFC 7915 §5.3: a quoted ICMP error (or an untranslatable
        // informational message) makes the whole error untranslatable.
        return Err(DropReason::NestedIcmpError);
    }
    let ids = if p.first() { read_ids(p.proto, payload) } else { L4Ids::None };
    let (src, dst) = addrs(field);
    let t6 = Tuple6 { proto: p.proto, src, dst, ids };
    let ctx = MapCtx { inner: true, ..MapCtx::default() };
    let t4 = mapper.map_6to4(&t6, ctx)?;
    let declared = 20 + (p.total - p.l4);
    let (id, flags) = id_flags(p.frag, declared, None);
    let n = payload.len().min(out.len() - 20);
    out[20..20 + n].copy_from_slice(&payload[..n]);
    if p.first() {
        fix_l4_6to4(p.proto, &mut out[20..20 + n], &t6, t4.src, t4.dst, t4.ids, M::KEEPS_IDS, p.total - p.l4);
    }
    write_v4(
        &mut out[..20],
        tos.apply(p.tc),
        declared.min(0xffff) as u16,
        id,
        flags,
        p.hl,
        proto4(p.proto),
        t4.src,
        t4.dst,
    );
    Ok(20 + payload.len())
}

/// RFC 7915 §5.2 / §5.3: an ICMPv6 error becomes an ICMPv4 error, with
/// the quoted packet translated too; built aside and copied back.
#[inline(never)]
fn icmp_error<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    // The header `translate` accepted, parsed again on this rare path so
    // the common one does not keep a `Parsed6` in memory to pass it.
    let p = match parse6(buf.data(), false) {
        Ok(p) => p,
        Err(e) => return Verdict::Drop(e),
    };
    let mut s = [0u8; MAX_ICMP4_ERROR];
    let (t6, t4, len) = {
        let d = buf.data();
        let (src, dst) = addrs(d);
        let msg = &d[p.l4..p.total];
        if finish(sum(msg, pseudo_v6(src, dst, 58, msg.len() as u32))) != 0 {
            // The checksum is recomputed below; do not launder corruption.
            return Verdict::Drop(DropReason::BadIcmpChecksum);
        }
        let (typ, code) = (msg[0], msg[1]);
        let head = match icmp::error_6to4(cfg, typ, code, rd32(msg, 4)) {
            Ok(h) => h,
            Err(e) => return Verdict::Drop(e),
        };
        let payload = &msg[8..];
        // RFC 4884 §4.5: Destination Unreachable and Time Exceeded carry the
        // original-datagram length (in 8-byte words) in byte 4.
        let attr = if matches!(typ, 1 | 3) { usize::from(msg[4]) * 8 } else { 0 };
        let (field, ext) = if attr > 0 && attr < payload.len() {
            payload.split_at(attr)
        } else {
            (payload, &payload[payload.len()..])
        };
        let ext = if head.ext_ok { ext } else { &ext[..0] };
        let t6 = Tuple6 { proto: 58, src, dst, ids: L4Ids::None };
        let ctx = MapCtx { icmp_error: true, ..MapCtx::default() };
        let t4 = match mapper.map_6to4(&t6, ctx) {
            Ok(t) => t,
            Err(e) => return Verdict::Drop(e),
        };
        let room = MAX_ICMP4_ERROR - 28;
        let t = match inner_6to4(mapper, field, &mut s[28..], cfg.tos) {
            Ok(t) => t,
            Err(e) => return Verdict::Drop(e),
        };
        let (flen, keep) = icmp::layout(t, ext.len(), room, 4, true);
        if flen > t {
            s[28 + t..28 + flen].fill(0);
        }
        let mut len = 28 + flen;
        if keep {
            s[len..len + ext.len()].copy_from_slice(ext);
            len += ext.len();
        }
        s[20] = head.typ;
        s[21] = head.code;
        wr32(&mut s, 24, head.rest);
        if keep {
            // RFC 4884: length in 32-bit words, byte 5 of the ICMPv4 header.
            s[25] = (flen / 4) as u8;
        }
        wr16(&mut s, 22, 0);
        let c = finish(sum(&s[20..len], 0));
        wr16(&mut s, 22, c);
        (t6, t4, len)
    };
    let (id, flags) = id_flags(p.frag, len, Some(&mut *rt));
    write_v4(&mut s[..20], cfg.tos.apply(p.tc), len as u16, id, flags, p.hl - 1, 1, t4.src, t4.dst);
    if !replace(buf, &s[..len]) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    finish_hairpin(cfg, rt, mapper, buf, alloc, out, &t6, &t4)
}
