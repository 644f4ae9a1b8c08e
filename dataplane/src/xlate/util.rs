//! Small byte and buffer helpers for the translator. Callers check lengths
//! before calling the unchecked ones.

use crate::buf::PacketBuf;
use std::net::{Ipv4Addr, Ipv6Addr};

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
