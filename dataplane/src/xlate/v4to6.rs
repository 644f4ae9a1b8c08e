//! IPv4 -> IPv6 (RFC 7915 §4).

use super::icmp::{self, MAX_ICMP6_ERROR};
use super::util::{addr_sum4, addr_sum6, apart, ids_sum, rd16, rd32, read_ids, replace, wr16, wr32};
use super::{Config, DropReason, L4Ids, MapCtx, Mapper, Runtime, TosPolicy, Tuple4, Verdict};
use crate::buf::{BufAlloc, PacketBuf};
use crate::wire::checksum::{finish, finish_udp, fold, pseudo_v6, sum, update, update_udp_wide, update_wide};
use crate::wire::ip::protocol;
use crate::wire::ipv4::{FLAG_DF, FLAG_MF, OFFSET_MASK};
use crate::wire::{ipv4, FragmentHeader, Ipv4Packet, Ipv6Packet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// What the translator needs from an IPv4 header.
#[derive(Debug, Clone, Copy)]
struct Parsed4 {
    ihl: usize,
    total: usize,
    tos: u8,
    id: u16,
    /// The flags and fragment offset word as on the wire (read once;
    /// [`df`](Self::df), [`mf`](Self::mf), [`offset`](Self::offset)).
    flags_frag: u16,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl Parsed4 {
    fn df(&self) -> bool {
        self.flags_frag & FLAG_DF != 0
    }
    fn mf(&self) -> bool {
        self.flags_frag & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    fn offset(&self) -> u16 {
        (self.flags_frag & OFFSET_MASK) << 3
    }
    fn fragmented(&self) -> bool {
        self.flags_frag & (FLAG_MF | OFFSET_MASK) != 0
    }
    fn first(&self) -> bool {
        self.flags_frag & OFFSET_MASK == 0
    }
}

/// Check an IPv4 header through the wire view and return its fixed 20
/// bytes. `quoted`: inside an ICMP error, where the packet may be
/// truncated (only the header must be there) and its checksum is not
/// checked (RFC 7915 §4.3 translates what is there).
///
/// Apart from [`Parsed4::read`] so the result is a reference (two
/// registers), not a `Result` holding the whole parse that is then copied.
#[inline(always)]
fn check4(d: &[u8], quoted: bool) -> Result<&[u8; ipv4::MIN_HEADER_LEN], DropReason> {
    if quoted {
        if d.len() < ipv4::MIN_HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let v = Ipv4Packet::new_unchecked(d);
        if v.version() != 4 {
            return Err(DropReason::BadVersion);
        }
        let hl = v.header_len();
        if hl < ipv4::MIN_HEADER_LEN || usize::from(v.total_len()) < hl {
            return Err(DropReason::Malformed);
        }
        if d.len() < hl {
            return Err(DropReason::Truncated);
        }
    } else {
        let v = Ipv4Packet::new_checked(d)?;
        if !v.verify_checksum() {
            return Err(DropReason::BadIpv4Checksum);
        }
    }
    // Both branches checked that the fixed header is there.
    d.first_chunk().ok_or(DropReason::Truncated)
}

impl Parsed4 {
    /// The fields of a header [`check4`] accepted, read through a 20-byte
    /// view (no bounds checks).
    #[inline(always)]
    fn read(h: &[u8; ipv4::MIN_HEADER_LEN]) -> Self {
        let v = Ipv4Packet::new_unchecked(h);
        Parsed4 {
            ihl: v.header_len(),
            total: usize::from(v.total_len()),
            tos: v.dscp_ecn(),
            id: v.ident(),
            flags_frag: v.flags_frag(),
            ttl: v.ttl(),
            proto: v.protocol(),
            src: v.src_addr(),
            dst: v.dst_addr(),
        }
    }
}

/// RFC 7915 §4.1: an unexpired loose or strict source route option means
/// the packet may not be translated. Returns true when one is present.
#[inline]
fn source_route(opts: &[u8]) -> Result<bool, DropReason> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            t => {
                let l = usize::from(*opts.get(i + 1).ok_or(DropReason::Malformed)?);
                if l < 2 || i + l > opts.len() {
                    return Err(DropReason::Malformed);
                }
                // LSRR (131) / SSRR (137): pointer (1-based) within the
                // option means addresses remain.
                if (t == 131 || t == 137) && l >= 3 && usize::from(opts[i + 2]) <= l {
                    return Ok(true);
                }
                i += l;
            }
        }
    }
    Ok(false)
}

/// Rewrite ports / identifier and fix the upper-layer checksum of a
/// first-fragment upper layer moving from IPv4 to IPv6 (RFC 1624
/// incremental update: a wrong checksum stays exactly as wrong). `l4` may
/// be truncated (quoted packet). `l4_len` is the full upper-layer length.
/// `keep_ids`: `to_ids` are `from.ids` ([`Mapper::KEEPS_IDS`]), not written.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn fix_l4_4to6(
    proto: u8,
    l4: &mut [u8],
    from: &Tuple4,
    to_src: Ipv6Addr,
    to_dst: Ipv6Addr,
    to_ids: L4Ids,
    keep_ids: bool,
    l4_len: usize,
) {
    let old_ids = ids_sum(from.ids);
    let new_ids = ids_sum(to_ids);
    match proto {
        6 if l4.len() >= 18 => {
            let old = addr_sum4(from.src, from.dst) + u64::from(old_ids);
            let new = addr_sum6(to_src, to_dst) + u64::from(new_ids);
            wr16(l4, 16, update_wide(rd16(l4, 16), old, new));
        }
        17 if l4.len() >= 8 => {
            let old = addr_sum4(from.src, from.dst) + u64::from(old_ids);
            let new = addr_sum6(to_src, to_dst) + u64::from(new_ids);
            wr16(l4, 6, update_udp_wide(rd16(l4, 6), old, new));
        }
        1 if l4.len() >= 4 => {
            // ICMP echo -> ICMPv6 echo: type changes and the IPv6
            // pseudo-header joins the sum.
            let t = l4[0];
            let nt = if t == 8 { 128 } else { 129 };
            let old_w = u32::from(u16::from_be_bytes([t, l4[1]]));
            let new_w = u32::from(u16::from_be_bytes([nt, l4[1]]));
            let pseudo = u32::from(fold(pseudo_v6(to_src, to_dst, 58, l4_len as u32)));
            let (oi, ni) = if l4.len() >= 6 { (old_ids, new_ids) } else { (0, 0) };
            let c = update(rd16(l4, 2), old_w + oi, pseudo + new_w + ni);
            l4[0] = nt;
            wr16(l4, 2, c);
        }
        _ => {}
    }
    if keep_ids {
        return;
    }
    match to_ids {
        L4Ids::Ports { src, dst } if l4.len() >= 4 => {
            wr16(l4, 0, src);
            wr16(l4, 2, dst);
        }
        L4Ids::IcmpId(id) if l4.len() >= 6 => wr16(l4, 4, id),
        _ => {}
    }
}

/// Mapping failures that mean "no address for this packet".
pub(crate) fn is_address_failure(e: DropReason) -> bool {
    matches!(
        e,
        DropReason::UntranslatableSource | DropReason::UntranslatableDestination | DropReason::WkpNonGlobal
    )
}

fn proto6(p: u8) -> u8 {
    if p == 1 {
        58
    } else {
        p
    }
}

/// Write an IPv6 header (and a fragment header when `frag` is set:
/// (offset in bytes, more, id)).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn write_v6(
    h: &mut [u8],
    tc: u8,
    payload_len: u16,
    next: u8,
    hl: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    frag: Option<(u16, bool, u32)>,
) {
    let mut v = Ipv6Packet::new_unchecked(&mut h[..40]);
    // RFC 7915 §4.1: flow label zero.
    v.set_version_tc_flow(tc, 0);
    v.set_payload_len(payload_len);
    v.set_hop_limit(hl);
    v.set_src_addr(src);
    v.set_dst_addr(dst);
    match frag {
        Some((off, more, id)) => {
            v.set_next_header(protocol::IPV6_FRAG);
            FragmentHeader::new_unchecked(&mut h[40..48]).set_all(next, off, more, id);
        }
        None => v.set_next_header(next),
    }
}

pub(crate) fn translate<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
    ctx: MapCtx,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    let p = match check4(buf.data(), false) {
        Ok(h) => Parsed4::read(h),
        Err(e) => return Verdict::Drop(e),
    };
    if p.ihl > ipv4::MIN_HEADER_LEN || p.fragmented() {
        return apart(p, |p| translate_parsed(cfg, rt, mapper, buf, alloc, out, ctx, p));
    }
    // What was just tested, told to the compiler: the common copy then
    // works with a fixed header length and no fragment.
    let plain = Parsed4 { ihl: ipv4::MIN_HEADER_LEN, flags_frag: p.flags_frag & FLAG_DF, ..p };
    translate_parsed(cfg, rt, mapper, buf, alloc, out, ctx, plain)
}

/// [`translate`] once the header is checked and read.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn translate_parsed<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
    ctx: MapCtx,
    p: Parsed4,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    buf.truncate(p.total);
    let d = buf.data();
    let l4len = p.total - p.ihl;
    // Whether an error may be sent is asked only when one is about to be.
    let reply =
        |buf: &mut B, rt: &mut Runtime, t, c, rest, why| reply_or_drop(cfg, rt, buf, ctx, (t, c, rest), why);
    if p.ihl > 20 {
        match source_route(&d[20..p.ihl]) {
            Err(e) => return Verdict::Drop(e),
            // RFC 7915 §4.1: Destination Unreachable, Source Route Failed.
            Ok(true) => return reply(buf, rt, 3, 5, 0, DropReason::SourceRoute),
            Ok(false) => {}
        }
    }
    if !ctx.hairpin && p.ttl <= 1 {
        // RFC 7915 §4.1: TTL decremented; Time Exceeded at zero.
        return reply(buf, rt, 11, 0, 0, DropReason::HopLimitExceeded);
    }
    let mut udp_compute = false;
    let ids = match p.proto {
        // These numbers mean extension headers (or ICMPv6) in IPv6: copied
        // as RFC 7915 §4.1 says, the receiver would misparse the payload.
        0 | 43 | 44 | 58 | 60 => return Verdict::Drop(DropReason::ProtocolUnsupported),
        1 => {
            if p.fragmented() {
                return Verdict::Drop(DropReason::FragmentedIcmp);
            }
            if l4len < 8 {
                return Verdict::Drop(DropReason::Truncated);
            }
            match d[p.ihl] {
                0 | 8 => read_ids(1, &d[p.ihl..]),
                3 | 11 | 12 => return icmp_error(cfg, mapper, buf, ctx),
                // RFC 7915 §4.2: other ICMPv4 types are dropped.
                _ => return Verdict::Drop(DropReason::IcmpInfoUnsupported),
            }
        }
        6 if p.first() => {
            if l4len < 20 {
                return Verdict::Drop(DropReason::Truncated);
            }
            if let Err(e) = super::util::l4_header_ok(6, &d[p.ihl..], l4len, p.fragmented()) {
                return Verdict::Drop(e);
            }
            read_ids(6, &d[p.ihl..])
        }
        17 if p.first() => {
            if l4len < 8 {
                return Verdict::Drop(DropReason::Truncated);
            }
            if let Err(e) = super::util::l4_header_ok(17, &d[p.ihl..], l4len, p.fragmented()) {
                return Verdict::Drop(e);
            }
            if rd16(d, p.ihl + 6) == 0 {
                // RFC 7915 §4.5: IPv6 requires a UDP checksum. Only a whole
                // datagram can get one computed.
                if p.fragmented() || cfg.udp_zero_checksum == super::UdpZeroChecksum::Drop {
                    return reply(buf, rt, 3, 13, 0, DropReason::UdpZeroChecksum);
                }
                udp_compute = true;
            }
            read_ids(17, &d[p.ihl..])
        }
        _ => L4Ids::None,
    };
    let t4 = Tuple4 { proto: p.proto, src: p.src, dst: p.dst, ids };
    let t6 = match mapper.map_4to6(&t4, ctx) {
        Ok(t) => t,
        // RFC 7915 §4.4: a discarded packet (not itself ICMP) SHOULD be
        // answered with Communication Administratively Prohibited. Only
        // for address failures: a stateful mapper's own refusals are left
        // to it (RFC 6146 says what to send).
        Err(e) if p.proto != protocol::ICMP && is_address_failure(e) => return reply(buf, rt, 3, 13, 0, e),
        Err(e) => return Verdict::Drop(e),
    };
    let plain_len = 40 + if p.fragmented() { 8 } else { 0 } + l4len;
    // The fragment size when the packet is split.
    let mut split = None;
    // Both MTUs are at least the IPv6 minimum: a packet that fits it needs
    // neither test (nearly every packet).
    if plain_len > IPV6_MIN_MTU {
        let (mtu6, limit) = v6_limits(cfg);
        if p.df() {
            if plain_len > mtu6 {
                // RFC 7915 §4.1: Fragmentation Needed with the MTU the IPv4
                // side can use (IPv6 MTU - 20).
                return reply(buf, rt, 3, 4, (mtu6 - 20) as u32, DropReason::PacketTooBig);
            }
        } else if plain_len > limit {
            // RFC 7915 §4.1: a DF=0 packet is fragmented to fit the smallest
            // MTU assumed on the IPv6 side.
            if cfg.fragment_4to6 {
                split = Some(limit);
            } else if plain_len > mtu6 {
                return Verdict::Drop(DropReason::PacketTooBig);
            }
        }
    }
    let with_fh = p.fragmented() || split.is_some();
    let hdr = if with_fh { 48 } else { 40 };
    let hl = if ctx.hairpin { p.ttl } else { p.ttl - 1 };
    // Make room first (nothing is changed when that fails), then fix the
    // upper layer where it now sits.
    if hdr >= p.ihl {
        if !buf.prepend(hdr - p.ihl) {
            return Verdict::Drop(DropReason::NoRoom);
        }
    } else if !buf.adj(p.ihl - hdr) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    {
        // One view of the buffer for the upper layer and the header.
        let b = buf.data_mut();
        if p.first() {
            let l4 = &mut b[hdr..];
            if udp_compute {
                wr16(l4, 6, 0);
                let s = sum(l4, pseudo_v6(t6.src, t6.dst, 17, l4len as u32));
                wr16(l4, 6, finish_udp(s));
            } else {
                fix_l4_4to6(p.proto, l4, &t4, t6.src, t6.dst, t6.ids, M::KEEPS_IDS, l4len);
            }
        }
        let tc = cfg.traffic_class.apply(p.tos);
        let frag = with_fh.then_some((p.offset(), p.mf(), u32::from(p.id)));
        write_v6(b, tc, (hdr - 40 + l4len) as u16, proto6(p.proto), hl, t6.src, t6.dst, frag);
    }
    if let Some(limit) = split {
        if let Err(e) = fragment(buf, alloc, out, limit, l4len, p.offset(), p.mf()) {
            return Verdict::Drop(e);
        }
    }
    Verdict::Forward
}

/// RFC 8200 §5: the minimum link MTU of IPv6.
const IPV6_MIN_MTU: usize = 1280;

/// The IPv6 side's MTU and the size DF=0 packets are cut to (RFC 7915
/// §4.1: the smallest MTU assumed there), neither below the minimum.
#[inline]
fn v6_limits(cfg: &Config) -> (usize, usize) {
    let mtu6 = usize::from(cfg.mtu_ipv6).max(IPV6_MIN_MTU);
    (mtu6, usize::from(cfg.lowest_ipv6_mtu).clamp(IPV6_MIN_MTU, mtu6))
}

/// Whether an unfragmented IPv6 packet of `len` bytes (from an IPv4 packet
/// with DF `df`) leaves whole, neither answered, dropped nor split by
/// [`translate`]'s size rules: within the IPv6 MTU, and a DF=0 packet
/// also within the size it is cut to when the translator fragments.
#[inline(always)]
pub(super) fn goes_whole(cfg: &Config, len: usize, df: bool) -> bool {
    if len <= IPV6_MIN_MTU {
        return true;
    }
    let (mtu6, limit) = v6_limits(cfg);
    len <= if df || !cfg.fragment_4to6 { mtu6 } else { limit }
}

/// ICMPv4 types that are queries, not errors (RFC 792, RFC 950).
fn is_icmp_query(t: u8) -> bool {
    matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// Answer the IPv4 packet in `buf` (checked and truncated by
/// [`translate`], not yet changed) with the ICMPv4 error `(type, code,
/// rest)`, or drop it for `why` when no error may be sent. Out of line:
/// the common path does not pay for deciding.
#[cold]
#[inline(never)]
fn reply_or_drop<B: PacketBuf>(
    cfg: &Config,
    rt: &mut Runtime,
    buf: &mut B,
    ctx: MapCtx,
    (t, c, rest): (u8, u8, u32),
    why: DropReason,
) -> Verdict {
    let d = buf.data();
    let Some(h) = d.first_chunk() else { return Verdict::Drop(why) };
    let p = Parsed4::read(h);
    let is_icmp_error =
        p.proto == protocol::ICMP && p.first() && d.get(p.ihl).is_some_and(|&t| !is_icmp_query(t));
    // RFC 1812 §4.3.2.7: no error about an error or a later fragment.
    if is_icmp_error || !p.first() || ctx.hairpin {
        return Verdict::Drop(why);
    }
    icmp::reply4(cfg, rt, buf, t, c, rest, why)
}

/// Split the IPv6 packet in `buf` (IPv6 + fragment header, `len` payload
/// bytes) into fragments of at most `limit` bytes. The first stays in
/// `buf`; the others are copied into fresh buffers and passed to `out`.
fn fragment<B, A, O>(
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
    limit: usize,
    len: usize,
    base_off: u16,
    last_more: bool,
) -> Result<(), DropReason>
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    O: FnMut(B),
{
    let chunk = (limit - 48) / 8 * 8;
    if usize::from(base_off) + len > 0xffff {
        // Offsets past 65535 cannot be expressed; the input lied.
        return Err(DropReason::Malformed);
    }
    let mut pos = chunk;
    while pos < len {
        let n = chunk.min(len - pos);
        let more = pos + n < len || last_more;
        let mut nb = alloc.alloc().ok_or(DropReason::NoBuffer)?;
        if !nb.append(48 + n) {
            return Err(DropReason::NoRoom);
        }
        let src = buf.data();
        let dst = nb.data_mut();
        dst[..48].copy_from_slice(&src[..48]);
        dst[48..].copy_from_slice(&src[48 + pos..48 + pos + n]);
        wr16(dst, 4, (8 + n) as u16);
        wr16(dst, 42, (base_off + pos as u16) | u16::from(more));
        out(nb);
        pos += n;
    }
    let b = buf.data_mut();
    wr16(b, 4, (8 + chunk) as u16);
    let off = rd16(b, 42) | 1;
    wr16(b, 42, off);
    buf.truncate(48 + chunk);
    Ok(())
}

/// Translate the packet quoted in an ICMPv4 error into `out` (IPv6 header,
/// fragment header if it was a fragment, then as much payload as fits).
/// Returns the translated length (may exceed `out`). TTL is kept.
fn inner_4to6<M: Mapper>(
    mapper: &mut M,
    field: &[u8],
    out: &mut [u8],
    tc: TosPolicy,
    hairpin: bool,
) -> Result<usize, DropReason> {
    let p = Parsed4::read(check4(field, true).map_err(|_| DropReason::BadInnerPacket)?);
    if out.len() < 48 {
        return Err(DropReason::BadInnerPacket);
    }
    let payload = &field[p.ihl..];
    if p.proto == 1 && p.first() && payload.first().is_some_and(|&t| t != 0 && t != 8) {
        return Err(DropReason::NestedIcmpError);
    }
    let ids = if p.first() { read_ids(p.proto, payload) } else { L4Ids::None };
    let t4 = Tuple4 { proto: p.proto, src: p.src, dst: p.dst, ids };
    let ctx = MapCtx { inner: true, hairpin, ..MapCtx::default() };
    let t6 = mapper.map_4to6(&t4, ctx)?;
    let hdr = if p.fragmented() { 48 } else { 40 };
    let n = payload.len().min(out.len() - hdr);
    out[hdr..hdr + n].copy_from_slice(&payload[..n]);
    let l4_len = p.total - p.ihl;
    if p.first() {
        fix_l4_4to6(p.proto, &mut out[hdr..hdr + n], &t4, t6.src, t6.dst, t6.ids, M::KEEPS_IDS, l4_len);
    }
    let frag = p.fragmented().then_some((p.offset(), p.mf(), u32::from(p.id)));
    write_v6(
        &mut out[..hdr],
        tc.apply(p.tos),
        (hdr - 40 + l4_len).min(0xffff) as u16,
        proto6(p.proto),
        p.ttl,
        t6.src,
        t6.dst,
        frag,
    );
    Ok(hdr + payload.len())
}

/// RFC 7915 §4.2 / §4.3: an ICMPv4 error becomes an ICMPv6 error with the
/// quoted packet translated; built aside and copied back. `buf` holds the
/// packet `translate` checked and truncated: its header is read again
/// here, so the common path never has to keep a [`Parsed4`] in memory to
/// pass it.
#[inline(never)]
fn icmp_error<B, M>(cfg: &Config, mapper: &mut M, buf: &mut B, ctx: MapCtx) -> Verdict
where
    B: PacketBuf,
    M: Mapper,
{
    let Some(h) = buf.data().first_chunk() else { return Verdict::Drop(DropReason::Truncated) };
    let p = Parsed4::read(h);
    let mut s = [0u8; MAX_ICMP6_ERROR];
    let len = {
        let d = buf.data();
        let msg = &d[p.ihl..p.total];
        if finish(sum(msg, 0)) != 0 {
            // Recomputed below: do not launder a corrupt message.
            return Verdict::Drop(DropReason::BadIcmpChecksum);
        }
        let (typ, code) = (msg[0], msg[1]);
        let payload = &msg[8..];
        let inner_total = if payload.len() >= 4 { rd16(payload, 2) } else { 0 };
        let head = match icmp::error_4to6(cfg, typ, code, rd32(msg, 4), inner_total) {
            Ok(h) => h,
            Err(e) => return Verdict::Drop(e),
        };
        // RFC 4884 §4.2: Destination Unreachable, Time Exceeded and
        // Parameter Problem carry the original-datagram length (32-bit
        // words) in byte 5.
        let attr = usize::from(msg[5]) * 4;
        let (field, ext) = if attr > 0 && attr < payload.len() {
            payload.split_at(attr)
        } else {
            (payload, &payload[payload.len()..])
        };
        let ext = if head.ext_ok { ext } else { &ext[..0] };
        let t4 = Tuple4 { proto: 1, src: p.src, dst: p.dst, ids: L4Ids::None };
        let octx = MapCtx { icmp_error: true, ..ctx };
        let t6 = match mapper.map_4to6(&t4, octx) {
            Ok(t) => t,
            Err(e) => return Verdict::Drop(e),
        };
        let room = MAX_ICMP6_ERROR - 48;
        let t = match inner_4to6(mapper, field, &mut s[48..], cfg.traffic_class, ctx.hairpin) {
            Ok(t) => t,
            Err(e) => return Verdict::Drop(e),
        };
        let (flen, keep) = icmp::layout(t, ext.len(), room, 8, false);
        if flen > t {
            s[48 + t..48 + flen].fill(0);
        }
        let mut len = 48 + flen;
        if keep {
            s[len..len + ext.len()].copy_from_slice(ext);
            len += ext.len();
        }
        s[40] = head.typ;
        s[41] = head.code;
        wr32(&mut s, 44, head.rest);
        if keep {
            // RFC 4884: length in 64-bit words, byte 4 of the ICMPv6 header.
            s[44] = (flen / 8) as u8;
        }
        let hl = if ctx.hairpin { p.ttl } else { p.ttl - 1 };
        write_v6(
            &mut s[..40],
            cfg.traffic_class.apply(p.tos),
            (len - 40) as u16,
            58,
            hl,
            t6.src,
            t6.dst,
            None,
        );
        wr16(&mut s, 42, 0);
        let c = icmp::icmp6_checksum(&s[40..len], t6.src, t6.dst);
        wr16(&mut s, 42, c);
        len
    };
    if !replace(buf, &s[..len]) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    Verdict::Forward
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{VecAlloc, VecBuf};
    use crate::xlate::{IcmpRateLimit, SiitMapper};
    use etherparse::PacketBuilder;

    const REMOTE: [u8; 4] = [198, 51, 100, 2];
    const CLIENT: [u8; 4] = [192, 0, 2, 33];

    fn cfg(mtu_ipv6: u16, lowest_ipv6_mtu: u16, fragment_4to6: bool) -> Config {
        Config {
            pool6: Some("2001:db8:64::/96".parse().unwrap()),
            own_v4: Ipv4Addr::new(198, 51, 100, 1),
            icmp_rate: IcmpRateLimit { per_sec: 1000, burst: 1000 },
            mtu_ipv6,
            lowest_ipv6_mtu,
            fragment_4to6,
            ..Config::default()
        }
    }

    /// A UDP datagram (a first fragment when `mf`) with `len` payload
    /// bytes.
    fn udp4(ttl: u8, len: usize, df: bool, mf: bool) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(REMOTE, CLIENT, ttl).udp(4000, 2000).write(&mut v, &vec![7; len]).unwrap();
        set_frag(&mut v, df, mf, 0);
        v
    }

    fn set_frag(p: &mut [u8], df: bool, mf: bool, off: u16) {
        let w = (u16::from(df) << 14) | (u16::from(mf) << 13) | (off / 8);
        wr16(p, 6, w);
        wr16(p, 10, 0);
        let ihl = usize::from(p[0] & 15) * 4;
        let c = finish(sum(&p[..ihl], 0));
        wr16(p, 10, c);
    }

    fn run(cfg: &Config, pkt: &[u8], ctx: MapCtx) -> (Verdict, usize) {
        let mut buf = VecBuf::from_slice(pkt);
        let (mut rt, mut m, mut extra) = (Runtime::new(7), SiitMapper::new(cfg), 0);
        let v = translate(cfg, &mut rt, &mut m, &mut buf, &mut VecAlloc::default(), &mut |_| extra += 1, ctx);
        (v, extra)
    }

    /// RFC 7915 §4.1's size rules, as the translator applied them to every
    /// packet before the test against the IPv6 minimum MTU went first.
    fn size_rule(c: &Config, plain_len: usize, df: bool) -> (Verdict, bool) {
        let mtu6 = usize::from(c.mtu_ipv6).max(1280);
        let limit = usize::from(c.lowest_ipv6_mtu).clamp(1280, mtu6);
        let fwd = (Verdict::Forward, false);
        if df {
            return if plain_len > mtu6 { (Verdict::Reply(DropReason::PacketTooBig), false) } else { fwd };
        }
        match (plain_len > limit, c.fragment_4to6, plain_len > mtu6) {
            (true, true, _) => (Verdict::Forward, true),
            (true, false, true) => (Verdict::Drop(DropReason::PacketTooBig), false),
            _ => fwd,
        }
    }

    #[test]
    fn the_minimum_mtu_shortcut_agrees_with_the_size_rules() {
        let cfgs = [
            (1280, 1280, true),
            (1280, 1280, false),
            (1500, 1280, true),
            (1500, 1400, false),
            (1500, 1500, true),
        ];
        for (mtu, lowest, frag) in cfgs {
            let c = cfg(mtu, lowest, frag);
            // IPv6 sizes from 1270 to 1510 (fixed header, fragment header
            // for a first fragment, UDP header, payload).
            for len in (1222..1462).step_by(3) {
                for (df, mf) in [(false, false), (true, false), (false, true)] {
                    let plain_len = 40 + if mf { 8 } else { 0 } + 8 + len;
                    let (v, extra) = run(&c, &udp4(64, len, df, mf), MapCtx::default());
                    let (want, split) = size_rule(&c, plain_len, df);
                    assert_eq!(v, want, "{mtu} {lowest} {frag} len {plain_len} df {df} mf {mf}");
                    assert_eq!(extra > 0, split, "{mtu} {lowest} {frag} len {plain_len} df {df} mf {mf}");
                    // The express path's test: exactly the packets sent
                    // whole.
                    if !mf {
                        let whole = v == Verdict::Forward && extra == 0;
                        assert_eq!(
                            goes_whole(&c, plain_len, df),
                            whole,
                            "{mtu} {lowest} {frag} len {plain_len} df {df}"
                        );
                    }
                }
            }
        }
    }

    fn run_out(cfg: &Config, pkt: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = VecBuf::from_slice(pkt);
        let (mut rt, mut m) = (Runtime::new(7), SiitMapper::new(cfg));
        let v = translate(
            cfg,
            &mut rt,
            &mut m,
            &mut buf,
            &mut VecAlloc::default(),
            &mut |_| {},
            MapCtx::default(),
        );
        (v, buf.to_vec())
    }

    #[test]
    fn options_take_the_other_copy_to_the_same_packet() {
        let c = cfg(1500, 1280, true);
        for (ttl, len, df) in
            [(64, 8, false), (2, 100, true), (1, 8, false), (64, 1300, false), (64, 1500, true)]
        {
            let plain = udp4(ttl, len, df, false);
            // RFC 7915 §4.1: options other than source routes are ignored,
            // so four bytes of no-operation and end of list change nothing.
            let mut opts = plain[..20].to_vec();
            opts.extend_from_slice(&[1, 1, 1, 0]);
            opts.extend_from_slice(&plain[20..]);
            opts[0] = 0x46;
            wr16(&mut opts, 2, (plain.len() + 4) as u16);
            set_frag(&mut opts, df, false, 0);
            let (a, b) = (run_out(&c, &plain), run_out(&c, &opts));
            assert_eq!(a.0, b.0, "ttl {ttl} len {len} df {df}");
            if a.0 == Verdict::Forward {
                assert_eq!(a.1, b.1, "ttl {ttl} len {len} df {df}");
            }
        }
    }

    #[test]
    fn errors_are_answered_only_where_rfc_1812_allows() {
        let c = cfg(1500, 1280, true);
        let hop = DropReason::HopLimitExceeded;
        // A whole datagram whose TTL runs out is answered...
        assert_eq!(run(&c, &udp4(1, 8, false, false), MapCtx::default()).0, Verdict::Reply(hop));
        // ...a later fragment is not (RFC 1812 §4.3.2.7)...
        let mut p = udp4(1, 8, false, false);
        set_frag(&mut p, false, false, 64);
        assert_eq!(run(&c, &p, MapCtx::default()).0, Verdict::Drop(hop));
        // ...nor an ICMP error, whereas an echo request is.
        for (typ, want) in [(3, Verdict::Drop(hop)), (8, Verdict::Reply(hop))] {
            let mut p = Vec::new();
            let icmp = PacketBuilder::ipv4(REMOTE, CLIENT, 1);
            let icmp =
                if typ == 8 { icmp.icmpv4_echo_request(1, 2) } else { icmp.icmpv4_raw(typ, 1, [0; 4]) };
            icmp.write(&mut p, &[0; 28]).unwrap();
            assert_eq!(run(&c, &p, MapCtx::default()).0, want, "type {typ}");
        }
        // A hairpinned packet is never answered.
        let hairpin = MapCtx { hairpin: true, ..MapCtx::default() };
        let too_big = DropReason::PacketTooBig;
        assert_eq!(run(&c, &udp4(64, 1500, true, false), MapCtx::default()).0, Verdict::Reply(too_big));
        assert_eq!(run(&c, &udp4(64, 1500, true, false), hairpin).0, Verdict::Drop(too_big));
    }
}
