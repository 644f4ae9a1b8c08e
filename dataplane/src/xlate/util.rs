//! Small byte and buffer helpers for the translator. Callers check lengths
//! before calling the unchecked ones.

use super::{DropReason, L4Ids};
use crate::buf::PacketBuf;
use crate::wire::checksum::words6;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Runs `k` out of line: the translators hand their rare packets (IPv6
/// extension headers, IPv4 options or fragments) to a copy of their
/// translation apart from the common path's, which then keeps its parse
/// in registers.
#[inline(never)]
pub(crate) fn apart<P, K: FnOnce(P) -> super::Verdict>(p: P, k: K) -> super::Verdict {
    k(p)
}

#[inline]
pub(crate) fn rd16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

#[inline]
pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline]
pub(crate) fn wr32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn rd_v4(b: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3])
}

#[inline]
pub(crate) fn rd_v6(b: &[u8], off: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    Ipv6Addr::from(a)
}

/// Replace the whole packet with `bytes` (ICMP errors, built aside).
pub(crate) fn replace<B: PacketBuf>(buf: &mut B, bytes: &[u8]) -> bool {
    let len = buf.len();
    if bytes.len() <= len {
        buf.truncate(bytes.len());
    } else if !buf.append(bytes.len() - len) && !buf.prepend(bytes.len() - len) {
        return false;
    }
    buf.data_mut().copy_from_slice(bytes);
    true
}

/// Grow the front by `n` bytes, shifting the packet if the headroom is
/// short (only used on the rare error-generation path).
pub(crate) fn grow_front<B: PacketBuf>(buf: &mut B, n: usize) -> bool {
    if buf.prepend(n) {
        return true;
    }
    let len = buf.len();
    if !buf.append(n) {
        return false;
    }
    buf.data_mut().copy_within(0..len, n);
    true
}

/// Structural checks of a first fragment's TCP or UDP header before it is
/// translated: a header that lies about its own size is dropped as
/// malformed rather than carried across with its lie intact.
/// `l4` holds the upper-layer bytes present; `l4len` is their count in
/// this packet; `fragmented` says whether more of the datagram follows.
pub(crate) fn l4_header_ok(proto: u8, l4: &[u8], l4len: usize, fragmented: bool) -> Result<(), DropReason> {
    match proto {
        // RFC 9293 §3.1: Data Offset counts 32-bit words, at least 5, and
        // the header must be in the first fragment (RFC 1858 §4).
        6 => {
            let off = usize::from(*l4.get(12).ok_or(DropReason::Truncated)? >> 4) * 4;
            if off < 20 || off > l4len {
                return Err(DropReason::Malformed);
            }
        }
        // RFC 768: Length covers header and data, so at least 8; for a
        // whole datagram it cannot exceed what the IP packet carries
        // (trailing bytes beyond it are tolerated).
        17 => {
            let len = usize::from(u16::from_be_bytes([
                *l4.get(4).ok_or(DropReason::Truncated)?,
                *l4.get(5).ok_or(DropReason::Truncated)?,
            ]));
            if len < 8 || (!fragmented && len > l4len) {
                return Err(DropReason::Malformed);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Wide partial sum of an IPv4 address pair (for
/// [`update_wide`](crate::wire::checksum::update_wide)).
#[inline(always)]
pub(crate) fn addr_sum4(a: Ipv4Addr, b: Ipv4Addr) -> u64 {
    u64::from(a.to_bits()) + u64::from(b.to_bits())
}

/// Wide partial sum of an IPv6 address pair (for
/// [`update_wide`](crate::wire::checksum::update_wide)).
#[inline(always)]
pub(crate) fn addr_sum6(a: Ipv6Addr, b: Ipv6Addr) -> u64 {
    words6(a) + words6(b)
}

/// Sum of the ports or identifier a checksum covers.
#[inline]
pub(crate) fn ids_sum(ids: L4Ids) -> u32 {
    match ids {
        L4Ids::Ports { src, dst } => u32::from(src) + u32::from(dst),
        L4Ids::IcmpId(id) => u32::from(id),
        L4Ids::None => 0,
    }
}

/// Upper-layer identifiers at `l4` (first fragment only), when present:
/// TCP/UDP ports, or the ICMP / ICMPv6 query identifier.
#[inline]
pub(crate) fn read_ids(proto: u8, l4: &[u8]) -> L4Ids {
    match proto {
        6 | 17 if l4.len() >= 4 => L4Ids::Ports { src: rd16(l4, 0), dst: rd16(l4, 2) },
        1 | 58 if l4.len() >= 6 => L4Ids::IcmpId(rd16(l4, 4)),
        _ => L4Ids::None,
    }
}

/// xorshift64: deterministic pseudo-random test input.
#[cfg(test)]
pub(crate) struct TestRng(pub u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

#[cfg(test)]
mod l4_tests {
    use super::*;

    fn tcp(off_words: u8) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[12] = off_words << 4;
        h
    }

    fn udp(len: u16) -> Vec<u8> {
        let mut h = vec![0u8; 8];
        h[4..6].copy_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn lying_headers_are_malformed() {
        assert_eq!(l4_header_ok(6, &tcp(5), 20, false), Ok(()));
        assert_eq!(l4_header_ok(6, &tcp(4), 20, false), Err(DropReason::Malformed));
        assert_eq!(
            l4_header_ok(6, &tcp(6), 20, false),
            Err(DropReason::Malformed),
            "options beyond the packet"
        );
        assert_eq!(l4_header_ok(17, &udp(8), 8, false), Ok(()));
        assert_eq!(l4_header_ok(17, &udp(7), 8, false), Err(DropReason::Malformed));
        assert_eq!(l4_header_ok(17, &udp(9), 8, false), Err(DropReason::Malformed));
        assert_eq!(l4_header_ok(17, &udp(1000), 8, true), Ok(()), "the rest is in later fragments");
        assert_eq!(l4_header_ok(17, &udp(8), 12, false), Ok(()), "trailing bytes tolerated");
        assert_eq!(l4_header_ok(1, &[], 0, false), Ok(()));
    }
}
