//! IPv4 header (RFC 791).

use super::checksum;
use super::{get_u16, get_v4, set_u16, Error, Result};
use std::net::Ipv4Addr;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// First byte of a header without options: version 4, IHL 5.
const VER_IHL_BASIC: u8 = 0x45;

/// Don't Fragment in the flags and fragment offset word (RFC 791 §3.1).
pub const FLAG_DF: u16 = 0x4000;
/// More Fragments in the flags and fragment offset word.
pub const FLAG_MF: u16 = 0x2000;
/// The fragment offset (in 8-byte units) in that word.
pub const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. After `new_checked` the header (with options)
/// and `total_len` bytes are known to be inside the buffer; the buffer may
/// be longer (Ethernet padding), [`payload`](Self::payload) stops at
/// `total_len`.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// RFC 791 §3.1 structure: version 4, IHL >= 5, header inside the
    /// buffer, header_len <= total_len <= buffer length.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if let Some(&[VER_IHL_BASIC, _, l0, l1, ..]) = b.first_chunk::<MIN_HEADER_LEN>() {
            // The usual header (version 4, no options) decided by one
            // compare; the same rules as below for the total length.
            let tl = usize::from(u16::from_be_bytes([l0, l1]));
            return if tl < MIN_HEADER_LEN {
                Err(Error::Malformed)
            } else if tl > b.len() {
                Err(Error::Truncated)
            } else {
                Ok(())
            };
        }
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < hl {
            return Err(Error::Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::Malformed);
        }
        if tl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The whole buffer (may extend beyond `total_len`).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }
    /// IHL in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }
    /// The whole TOS byte: DSCP (6 bits) and ECN (2 bits).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }
    /// Total length (header + payload) in bytes.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    /// The flags and fragment offset word as it is (DF 0x4000, MF 0x2000,
    /// offset in 8-byte units).
    pub fn flags_frag(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF)
    }
    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }
    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }
    /// Fragment offset in BYTES (the 13-bit field times 8).
    pub fn frag_offset_bytes(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }
    /// True when this is a fragment (MF set or offset non-zero).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }
    /// True unless this is a non-first fragment (offset zero: the
    /// transport header is present).
    pub fn is_first_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK == 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }
    /// Protocol number (see [`super::ip::protocol`]).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        get_v4(self.buffer.as_ref(), field::SRC_ADDR)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        get_v4(self.buffer.as_ref(), field::DST_ADDR)
    }
    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }
    /// The options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// The payload, from the end of the header to `total_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
    /// Partial sum of the header, options included. The usual 20-byte
    /// header is summed as a fixed-size array (straight-line code).
    #[inline(always)]
    fn header_sum(&self) -> u32 {
        match self.buffer.as_ref().first_chunk::<MIN_HEADER_LEN>() {
            Some(h) if h[field::VER_IHL] & 0x0f == 5 => u32::from(sum_words(words(h))),
            _ => checksum::sum(self.header(), 0),
        }
    }
    /// RFC 791 §3.1: the header (with options) sums to all ones.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(self.header_sum()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set version and IHL from a header length in bytes (multiple of 4).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }
    /// Set the TOS byte.
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }
    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the identification.
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Set the flags and fragment offset word at once: `frag_offset_bytes`
    /// is in bytes and must be a multiple of 8 (the low 3 bits are dropped).
    /// The reserved flag is cleared.
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, frag_offset_bytes: u16) {
        let mut w = (frag_offset_bytes >> 3) & OFFSET_MASK;
        if dont_frag {
            w |= FLAG_DF;
        }
        if more_frags {
            w |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLG_OFF, w);
    }
    /// Set or clear Don't Fragment, leaving the rest of the word.
    pub fn set_dont_frag(&mut self, v: bool) {
        let w = get_u16(self.buffer.as_ref(), field::FLG_OFF) & !FLAG_DF;
        set_u16(self.buffer.as_mut(), field::FLG_OFF, w | if v { FLAG_DF } else { 0 });
    }
    /// Set or clear More Fragments, leaving the rest of the word.
    pub fn set_more_frags(&mut self, v: bool) {
        let w = get_u16(self.buffer.as_ref(), field::FLG_OFF) & !FLAG_MF;
        set_u16(self.buffer.as_mut(), field::FLG_OFF, w | if v { FLAG_MF } else { 0 });
    }
    /// Set the fragment offset in bytes (multiple of 8), leaving the flags.
    pub fn set_frag_offset_bytes(&mut self, v: u16) {
        let w = get_u16(self.buffer.as_ref(), field::FLG_OFF) & !OFFSET_MASK;
        set_u16(self.buffer.as_mut(), field::FLG_OFF, w | ((v >> 3) & OFFSET_MASK));
    }
    /// Set the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    /// Set the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR..field::SRC_ADDR + 4].copy_from_slice(&a.octets());
    }
    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR..field::DST_ADDR + 4].copy_from_slice(&a.octets());
    }
    /// Recompute the header checksum over header_len bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(self.header_sum());
        self.set_checksum(c);
    }
    /// The payload, mutable (end of header to `total_len`).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[h..t]
    }
    /// The options bytes, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..h]
    }
}

/// The five 32-bit words of a 20-byte header, big-endian.
#[inline(always)]
fn words(h: &[u8; MIN_HEADER_LEN]) -> [u32; 5] {
    core::array::from_fn(|i| u32::from_be_bytes([h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]]))
}

/// RFC 1071 sum of 32-bit words, folded to 16 bits: each is two 16-bit
/// words and 2^16 = 1 in ones'-complement arithmetic, so they add whole.
#[inline(always)]
fn sum_words(w: [u32; 5]) -> u16 {
    checksum::fold_wide(w.iter().map(|&x| u64::from(x)).sum())
}

/// The fields of an IPv4 header without options, written at once by
/// [`emit`](Self::emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasicHeader {
    /// The TOS byte (DSCP and ECN).
    pub tos: u8,
    /// Total length, header included.
    pub total_len: u16,
    /// Identification.
    pub ident: u16,
    /// The flags and fragment offset word as on the wire: DF 0x4000, MF
    /// 0x2000, offset in 8-byte units (the reserved bit is cleared).
    pub flags_frag: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol number.
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl BasicHeader {
    /// Write the 20-byte header. The checksum (RFC 791 §3.1) is the RFC
    /// 1071 sum of the words being written, taken from the fields: no
    /// second pass over the bytes.
    #[inline(always)]
    pub fn emit(&self, h: &mut [u8; MIN_HEADER_LEN]) {
        let mut w = [
            u32::from(VER_IHL_BASIC) << 24 | u32::from(self.tos) << 16 | u32::from(self.total_len),
            u32::from(self.ident) << 16 | u32::from(self.flags_frag & !0x8000),
            u32::from(self.ttl) << 24 | u32::from(self.protocol) << 16,
            self.src.to_bits(),
            self.dst.to_bits(),
        ];
        w[2] |= u32::from(!sum_words(w));
        for (i, x) in w.iter().enumerate() {
            h[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::protocol;

    // 192.0.2.1 -> 198.51.100.2, UDP, DF, TTL 64, 8 payload bytes.
    fn sample() -> Vec<u8> {
        let mut v = vec![
            0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 192, 0, 2, 1, 198, 51,
            100, 2, // header
            0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP header, no payload
        ];
        let c = checksum::finish(checksum::sum(&v[..20], 0));
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v
    }

    #[test]
    fn parse_fields() {
        let v = sample();
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(!p.is_fragment());
        assert!(p.is_first_fragment());
        assert_eq!(p.frag_offset_bytes(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 51, 100, 2));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 8);
        assert!(p.verify_checksum());
    }

    /// A xorshift generator for the agreement tests below.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn emit_agrees_with_setters_and_full_checksum() {
        let mut st = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let x = rng(&mut st);
            let y = rng(&mut st);
            let h = BasicHeader {
                tos: x as u8,
                total_len: (x >> 8) as u16,
                ident: (x >> 24) as u16,
                // Any word, the reserved bit included (emit clears it).
                flags_frag: (x >> 40) as u16,
                ttl: (x >> 56) as u8,
                protocol: y as u8,
                src: Ipv4Addr::from_bits((y >> 8) as u32),
                dst: Ipv4Addr::from_bits((y >> 32) as u32 ^ x as u32),
            };
            let mut fast = [0u8; MIN_HEADER_LEN];
            h.emit(&mut fast);
            let mut slow = [0xaau8; MIN_HEADER_LEN];
            let mut v = Ipv4Packet::new_unchecked(&mut slow[..]);
            v.set_version_and_header_len(MIN_HEADER_LEN);
            v.set_dscp_ecn(h.tos);
            v.set_total_len(h.total_len);
            v.set_ident(h.ident);
            v.set_frag(h.flags_frag & FLAG_DF != 0, h.flags_frag & FLAG_MF != 0, h.flags_frag << 3);
            v.set_ttl(h.ttl);
            v.set_protocol(h.protocol);
            v.set_src_addr(h.src);
            v.set_dst_addr(h.dst);
            v.fill_checksum();
            assert_eq!(fast, slow, "{h:?}");
            assert!(Ipv4Packet::new_unchecked(&fast[..]).verify_checksum());
        }
    }

    #[test]
    fn both_ones_complement_zeros_verify() {
        // The identification makes the other words sum to 0xffff, so the
        // checksum is zero, and 0x0000 and 0xffff both encode it: a
        // receiver summing the header with the field accepts either
        // (RFC 1071 §2, RFC 1624 §3), where comparing the field with a
        // recomputed checksum would refuse one of them.
        let mut b = sample();
        b[4..6].copy_from_slice(&0x4e9au16.to_be_bytes());
        for field in [0x0000u16, 0xffff] {
            b[10..12].copy_from_slice(&field.to_be_bytes());
            assert!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum(), "{field:#06x}");
        }
        b[10..12].copy_from_slice(&1u16.to_be_bytes());
        assert!(!Ipv4Packet::new_unchecked(&b[..]).verify_checksum());
    }

    #[test]
    fn fixed_header_sum_agrees_with_byte_sum() {
        let mut st = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let mut b = [0u8; 24];
            for c in b.chunks_mut(8) {
                c.copy_from_slice(&rng(&mut st).to_ne_bytes());
            }
            // IHL 5 (the fixed-size sum) and IHL 6 (the general one).
            for ihl in [5u8, 6] {
                b[0] = 0x40 | ihl;
                let hl = usize::from(ihl) * 4;
                let want = checksum::fold(checksum::sum(&b[..hl], 0)) == 0xffff;
                assert_eq!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum(), want);
                let mut v = Ipv4Packet::new_unchecked(&mut b[..]);
                v.fill_checksum();
                assert!(v.verify_checksum());
                assert_eq!(checksum::fold(checksum::sum(&b[..hl], 0)), 0xffff);
            }
        }
    }

    #[test]
    fn basic_header_length_rules_match_general_ones() {
        // IHL 5 takes the one-compare path; IHL 6 with the same lengths the
        // general one: the verdicts follow the same rules.
        for ihl in [5u8, 6] {
            let hl = usize::from(ihl) * 4;
            for (tl, len, want) in [
                (hl - 1, 40, Err(Error::Malformed)),
                (hl, 40, Ok(())),
                (40, 40, Ok(())),
                (41, 40, Err(Error::Truncated)),
                (28, 60, Ok(())),
            ] {
                let mut b = vec![0u8; len];
                b[0] = 0x40 | ihl;
                b[2..4].copy_from_slice(&(tl as u16).to_be_bytes());
                assert_eq!(Ipv4Packet::new_checked(&b[..]).map(|_| ()), want, "ihl {ihl} tl {tl} len {len}");
            }
        }
    }

    #[test]
    fn payload_stops_at_total_len() {
        let mut v = sample();
        v.extend_from_slice(&[0xee; 18]); // Ethernet padding
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn structural_checks() {
        let v = sample();
        assert_eq!(Ipv4Packet::new_checked(&v[..19]).unwrap_err(), Error::Truncated);
        let mut b = v.clone();
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = v.clone();
        b[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = v.clone();
        b[0] = 0x4f; // 60-byte header in a 28-byte buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = v.clone();
        b[3] = 19; // total_len < header
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = v.clone();
        b[3] = 29; // beyond the buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn options_and_fragments() {
        // IHL 6 with a 4-byte option (NOP NOP NOP EOL), fragment at 1480 with MF.
        let mut v = vec![
            0x46, 0x00, 0x00, 0x20, 0xab, 0xcd, 0x20, 0xb9, 0x01, 0x06, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 1, 1,
            1, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xaa, 0xbb, 0xcc, 0xdd,
        ];
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 8);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment() && !p.is_first_fragment());
        assert_eq!(p.frag_offset_bytes(), 185 * 8);
        p.set_more_frags(false);
        assert_eq!(p.frag_offset_bytes(), 1480);
        assert!(p.is_fragment());
        p.set_frag_offset_bytes(0);
        assert!(!p.is_fragment());
        p.set_frag(true, true, 16);
        assert!(p.dont_frag() && p.more_frags());
        assert_eq!(p.frag_offset_bytes(), 16);
        p.set_dont_frag(false);
        assert_eq!(&v[6..8], &[0x20, 0x02]);
    }

    #[test]
    fn build_and_cross_check_with_etherparse() {
        let mut v = vec![0u8; 28];
        let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
        p.set_version_and_header_len(20);
        p.set_dscp_ecn(0xb9);
        p.set_total_len(28);
        p.set_ident(7);
        p.set_frag(true, false, 0);
        p.set_ttl(33);
        p.set_protocol(protocol::ICMP);
        p.set_src_addr(Ipv4Addr::new(10, 1, 2, 3));
        p.set_dst_addr(Ipv4Addr::new(10, 4, 5, 6));
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut()[0] = 8;
        let (h, rest) = etherparse::Ipv4Header::from_slice(&v).unwrap();
        assert_eq!(rest.len(), 8);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(h.source, [10, 1, 2, 3]);
        assert_eq!(h.time_to_live, 33);
        assert!(h.dont_fragment);
        assert_eq!(h.identification, 7);

        // And the other way round: etherparse builds, we parse.
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 0, 2, 9], [203, 0, 113, 1], 5)
            .tcp(1, 2, 3, 4)
            .write(&mut w, &[1, 2, 3])
            .unwrap();
        let q = Ipv4Packet::new_checked(&w[..]).unwrap();
        assert!(q.verify_checksum());
        assert_eq!(q.protocol(), protocol::TCP);
        assert_eq!(q.payload().len(), 23);
        assert_eq!(q.dst_addr(), Ipv4Addr::new(203, 0, 113, 1));
    }

    #[test]
    fn bad_checksum_detected() {
        let mut v = sample();
        v[8] = 63;
        assert!(!Ipv4Packet::new_checked(&v[..]).unwrap().verify_checksum());
    }
}
