//! ICMP <-> ICMPv6 type/code/pointer/MTU mapping (RFC 7915 §4.2, §5.2),
//! RFC 4884 extension layout, and the errors the translator originates.

use super::util::{rd_v4, rd_v6, wr16, wr32};
use super::{Config, DropReason, Runtime, Verdict};
use crate::buf::PacketBuf;
use crate::wire::checksum::{finish, pseudo_v6, sum};

/// ICMPv6 error sizes: RFC 4443 §2.4(c), the whole error fits the IPv6
/// minimum MTU.
pub(crate) const MAX_ICMP6_ERROR: usize = 1280;
/// ICMPv4 errors stay within the 576 bytes every host accepts (RFC 1812
/// §4.3.2.3).
pub(crate) const MAX_ICMP4_ERROR: usize = 576;

/// A translated ICMP header: type, code, and the 32-bit word after the
/// checksum (MTU or pointer; the RFC 4884 length is added later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IcmpHead {
    pub typ: u8,
    pub code: u8,
    pub rest: u32,
    /// The type carries an RFC 4884 length attribute.
    pub ext_ok: bool,
}

/// RFC 7915 §5.2 Figure 6: ICMPv6 Parameter Problem pointer -> ICMPv4.
pub(crate) fn pointer_6to4(p: u32) -> Option<u8> {
    Some(match p {
        0 => 0,
        1 => 1,
        4 | 5 => 2,
        6 => 9,
        7 => 8,
        8..=23 => 12,
        24..=39 => 16,
        _ => return None,
    })
}

/// RFC 7915 §4.2 Figure 3: ICMPv4 Parameter Problem pointer -> ICMPv6.
pub(crate) fn pointer_4to6(p: u8) -> Option<u32> {
    Some(match p {
        0 => 0,
        1 => 1,
        2 | 3 => 4,
        8 => 7,
        9 => 6,
        12..=15 => 8,
        16..=19 => 24,
        _ => return None,
    })
}

/// RFC 1191 §7 plateau table: the greatest plateau below `total_len`.
pub(crate) fn plateau(total_len: u16) -> u16 {
    const PLATEAUS: [u16; 11] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];
    PLATEAUS.iter().copied().find(|&p| p < total_len).unwrap_or(68)
}

/// RFC 7915 §5.2: ICMPv6 error type/code -> ICMPv4.
pub(crate) fn error_6to4(cfg: &Config, typ: u8, code: u8, rest: u32) -> Result<IcmpHead, DropReason> {
    let h = |typ, code, rest, ext_ok| IcmpHead { typ, code, rest, ext_ok };
    Ok(match (typ, code) {
        // Destination Unreachable.
        (1, 0 | 2 | 3) => h(3, 1, 0, true),
        (1, 1) => h(3, 10, 0, true),
        (1, 4) => h(3, 3, 0, true),
        // Packet Too Big -> Fragmentation Needed, MTU = minimum(MTU - 20,
        // IPv4 next-hop MTU, IPv6 next-hop MTU - 20).
        (2, _) => {
            let mtu = rest
                .saturating_sub(20)
                .min(u32::from(cfg.mtu_ipv4))
                .min(u32::from(cfg.mtu_ipv6).saturating_sub(20))
                .min(0xffff);
            h(3, 4, mtu, false)
        }
        // Time Exceeded: same code.
        (3, 0 | 1) => h(11, code, 0, true),
        // Parameter Problem.
        (4, 0) => {
            let p = pointer_6to4(rest).ok_or(DropReason::PointerUntranslatable)?;
            h(12, 0, u32::from(p) << 24, false)
        }
        (4, 1) => h(3, 2, 0, true),
        _ => return Err(DropReason::IcmpErrorUnsupported),
    })
}

/// RFC 7915 §4.2: ICMPv4 error type/code -> ICMPv6. `inner_total_len` is
/// the quoted packet's Total Length (plateau search for a zero MTU).
pub(crate) fn error_4to6(
    cfg: &Config,
    typ: u8,
    code: u8,
    rest: u32,
    inner_total_len: u16,
) -> Result<IcmpHead, DropReason> {
    let h = |typ, code, rest, ext_ok| IcmpHead { typ, code, rest, ext_ok };
    Ok(match (typ, code) {
        (3, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => h(1, 0, 0, true),
        (3, 9 | 10 | 13 | 15) => h(1, 1, 0, true),
        (3, 3) => h(1, 4, 0, true),
        // Protocol Unreachable -> Parameter Problem, pointer to Next Header.
        (3, 2) => h(4, 1, 6, false),
        (3, 4) => {
            let mut field = rest & 0xffff;
            if field == 0 {
                // RFC 7915 §4.2: a router without RFC 1191 support; guess
                // with the plateau table.
                field = u32::from(plateau(inner_total_len));
            }
            let mtu = (field + 20).min(u32::from(cfg.mtu_ipv6)).min(u32::from(cfg.mtu_ipv4) + 20).max(1280);
            h(2, 0, mtu, false)
        }
        (11, 0 | 1) => h(3, code, 0, true),
        (12, 0 | 2) => {
            let p = pointer_4to6((rest >> 24) as u8).ok_or(DropReason::PointerUntranslatable)?;
            h(4, 0, p, false)
        }
        _ => return Err(DropReason::IcmpErrorUnsupported),
    })
}

/// RFC 4884 layout of a translated error. `t` is the translated length of
/// the original-datagram field, `ext` the extension length (0: none),
/// `room` the bytes available after the ICMP header, `unit` the length
/// attribute's unit (4 for ICMPv4, 8 for ICMPv6), `pad_up` whether `t` is
/// rounded up (ICMPv4) or down (ICMPv6) to the unit.
/// Returns (field length, keep extension).
pub(crate) fn layout(t: usize, ext: usize, room: usize, unit: usize, pad_up: bool) -> (usize, bool) {
    if ext > 0 && ext < room {
        let avail = (room - ext) / unit * unit;
        // RFC 4884 §4.1: with extensions the field is at least 128 bytes.
        if avail >= 128 {
            let rounded = if pad_up { t.div_ceil(unit) * unit } else { t / unit * unit };
            return (rounded.max(128).min(avail), true);
        }
    }
    (t.min(room), false)
}

/// ICMPv6 checksum of `msg` (checksum field zero) between `src` and `dst`.
pub(crate) fn icmp6_checksum(msg: &[u8], src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) -> u16 {
    finish(sum(msg, pseudo_v6(src, dst, 58, msg.len() as u32)))
}

/// Build an ICMPv6 error about the IPv6 packet in `buf`, in place: the
/// packet becomes the quoted payload (truncated so the error fits 1280
/// bytes). `reason` is why the packet was refused.
pub(crate) fn reply6<B: PacketBuf>(
    cfg: &Config,
    rt: &mut Runtime,
    buf: &mut B,
    typ: u8,
    code: u8,
    param: u32,
    reason: DropReason,
) -> Verdict {
    let d = buf.data();
    if d.len() < 40 {
        return Verdict::Drop(reason);
    }
    let dst = rd_v6(d, 8);
    if dst.is_unspecified() || dst.is_multicast() || !rt.allow_error(&cfg.icmp_rate) {
        return Verdict::Drop(reason);
    }
    let src = cfg.own_v6;
    buf.truncate(MAX_ICMP6_ERROR - 48);
    if !super::util::grow_front(buf, 48) {
        return Verdict::Drop(reason);
    }
    let b = buf.data_mut();
    let len = b.len();
    b[0] = 0x60;
    b[1] = 0;
    b[2] = 0;
    b[3] = 0;
    wr16(b, 4, (len - 40) as u16);
    b[6] = 58;
    b[7] = 64;
    b[8..24].copy_from_slice(&src.octets());
    b[24..40].copy_from_slice(&dst.octets());
    b[40] = typ;
    b[41] = code;
    wr16(b, 42, 0);
    wr32(b, 44, param);
    let c = icmp6_checksum(&b[40..], src, dst);
    wr16(b, 42, c);
    Verdict::Reply(reason)
}

/// Build an ICMPv4 error about the IPv4 packet in `buf`, in place (the
/// error fits 576 bytes).
pub(crate) fn reply4<B: PacketBuf>(
    cfg: &Config,
    rt: &mut Runtime,
    buf: &mut B,
    typ: u8,
    code: u8,
    rest: u32,
    reason: DropReason,
) -> Verdict {
    let d = buf.data();
    if d.len() < 20 {
        return Verdict::Drop(reason);
    }
    let dst = rd_v4(d, 12);
    if dst.is_unspecified() || dst.is_multicast() || dst.is_broadcast() || !rt.allow_error(&cfg.icmp_rate) {
        return Verdict::Drop(reason);
    }
    let id = rt.next_ip_id();
    buf.truncate(MAX_ICMP4_ERROR - 28);
    if !super::util::grow_front(buf, 28) {
        return Verdict::Drop(reason);
    }
    let b = buf.data_mut();
    let len = b.len();
    b[0] = 0x45;
    b[1] = 0;
    wr16(b, 2, len as u16);
    wr16(b, 4, id);
    wr16(b, 6, 0);
    b[8] = 64;
    b[9] = 1;
    wr16(b, 10, 0);
    b[12..16].copy_from_slice(&cfg.own_v4.octets());
    b[16..20].copy_from_slice(&dst.octets());
    let hc = finish(sum(&b[..20], 0));
    wr16(b, 10, hc);
    b[20] = typ;
    b[21] = code;
    wr16(b, 22, 0);
    wr32(b, 24, rest);
    let c = finish(sum(&b[20..], 0));
    wr16(b, 22, c);
    Verdict::Reply(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tables() {
        assert_eq!(pointer_6to4(0), Some(0));
        assert_eq!(pointer_6to4(2), None);
        assert_eq!(pointer_6to4(4), Some(2));
        assert_eq!(pointer_6to4(6), Some(9));
        assert_eq!(pointer_6to4(7), Some(8));
        assert_eq!(pointer_6to4(23), Some(12));
        assert_eq!(pointer_6to4(24), Some(16));
        assert_eq!(pointer_6to4(40), None);
        assert_eq!(pointer_4to6(3), Some(4));
        assert_eq!(pointer_4to6(4), None);
        assert_eq!(pointer_4to6(9), Some(6));
        assert_eq!(pointer_4to6(15), Some(8));
        assert_eq!(pointer_4to6(19), Some(24));
        assert_eq!(pointer_4to6(20), None);
    }

    #[test]
    fn plateaus() {
        assert_eq!(plateau(1500), 1492);
        assert_eq!(plateau(1492), 1006);
        assert_eq!(plateau(9000), 8166);
        assert_eq!(plateau(60), 68);
    }

    #[test]
    fn mtu_arithmetic() {
        let cfg = Config::default();
        // 4 -> 6: +20, clamped to 1280 from below.
        let h = error_4to6(&cfg, 3, 4, 1261, 0).unwrap();
        assert_eq!((h.typ, h.code, h.rest), (2, 0, 1281));
        assert_eq!(error_4to6(&cfg, 3, 4, 1000, 0).unwrap().rest, 1280);
        // Zero MTU: plateau below the quoted total length, then +20.
        assert_eq!(error_4to6(&cfg, 3, 4, 0, 1500).unwrap().rest, 1500);
        assert_eq!(error_4to6(&cfg, 3, 4, 0, 1400).unwrap().rest, 1280);
        // 6 -> 4: -20, and no more than the IPv4 MTU.
        assert_eq!(error_6to4(&cfg, 2, 0, 1280).unwrap().rest, 1260);
        assert_eq!(error_6to4(&cfg, 2, 0, 9000).unwrap().rest, 1480);
    }

    #[test]
    fn type_tables() {
        let cfg = Config::default();
        let t = |a, b| error_6to4(&cfg, a, b, 0).map(|h| (h.typ, h.code));
        assert_eq!(t(1, 0), Ok((3, 1)));
        assert_eq!(t(1, 1), Ok((3, 10)));
        assert_eq!(t(1, 4), Ok((3, 3)));
        assert_eq!(t(1, 5), Err(DropReason::IcmpErrorUnsupported));
        assert_eq!(t(3, 1), Ok((11, 1)));
        assert_eq!(t(4, 1), Ok((3, 2)));
        assert_eq!(t(4, 2), Err(DropReason::IcmpErrorUnsupported));
        let u = |a, b| error_4to6(&cfg, a, b, 0, 0).map(|h| (h.typ, h.code));
        assert_eq!(u(3, 3), Ok((1, 4)));
        assert_eq!(u(3, 13), Ok((1, 1)));
        assert_eq!(u(3, 14), Err(DropReason::IcmpErrorUnsupported));
        assert_eq!(u(3, 2), Ok((4, 1)));
        assert_eq!(u(11, 0), Ok((3, 0)));
        assert_eq!(u(12, 1), Err(DropReason::IcmpErrorUnsupported));
        assert_eq!(u(5, 0), Err(DropReason::IcmpErrorUnsupported));
    }

    #[test]
    fn rfc4884_layouts() {
        // Fits: the field keeps its rounded size.
        assert_eq!(layout(132, 20, 548, 4, true), (132, true));
        // Padded to 128.
        assert_eq!(layout(108, 20, 548, 4, true), (128, true));
        // Truncated to make room for the extension.
        assert_eq!(layout(516, 40, 548, 4, true), (508, true));
        // No room for 128 + extension: extension dropped.
        assert_eq!(layout(108, 421, 548, 4, true), (108, false));
        // ICMPv6 rounds down to 8.
        assert_eq!(layout(148, 20, 1232, 8, false), (144, true));
        assert_eq!(layout(1040, 1104, 1232, 8, false), (128, true));
        assert_eq!(layout(2000, 0, 1232, 8, false), (1232, false));
    }
}
