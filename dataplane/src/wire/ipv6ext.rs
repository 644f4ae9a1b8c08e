//! IPv6 extension headers (RFC 8200 §4) and a bounded chain walker.

use super::ip::protocol;
use super::{get_u16, get_u32, set_u16, set_u32, Error, Result};

/// Most extension headers [`parse_chain`] walks before giving up. RFC 8200
/// recommends one of each at most (destination options twice), so 8 leaves
/// room for every legitimate chain while bounding the work per packet.
pub const MAX_EXT_HEADERS: usize = 8;

mod field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
    pub const ROUTING_TYPE: usize = 2;
    pub const SEG_LEFT: usize = 3;
    pub const DATA: usize = 2;
}

/// A view of a hop-by-hop options, destination options or routing header:
/// the generic `next header, length in 8-octet units not counting the
/// first 8` shape (RFC 8200 §4.3, §4.4, §4.6).
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }
    /// The whole header (`header_len` bytes) is inside the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 8 || b.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Next header after this one.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    /// Header length in bytes: (Hdr Ext Len + 1) * 8.
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::LENGTH]) + 1) * 8
    }
    /// Routing type (routing headers only; byte 2 otherwise).
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[field::ROUTING_TYPE]
    }
    /// Segments left (routing headers only; byte 3 otherwise).
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[field::SEG_LEFT]
    }
    /// Options / type-specific data after the first two bytes.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Set the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    /// Set the length from a byte count (multiple of 8, at least 8).
    pub fn set_header_len(&mut self, bytes: usize) {
        self.buffer.as_mut()[field::LENGTH] = (bytes / 8).saturating_sub(1) as u8;
    }
    /// Set segments left (routing headers).
    pub fn set_segments_left(&mut self, v: u8) {
        self.buffer.as_mut()[field::SEG_LEFT] = v;
    }
}

mod frag_field {
    pub const NXT_HDR: usize = 0;
    pub const OFF_M: usize = 2;
    pub const IDENT: usize = 4;
}

/// Length of the fragment header.
pub const FRAG_HEADER_LEN: usize = 8;

/// A view of the fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        FragmentHeader { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }
    /// The 8 bytes are present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAG_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Next header of the fragmentable part.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[frag_field::NXT_HDR]
    }
    /// Fragment offset in BYTES (the 13-bit field times 8).
    pub fn frag_offset_bytes(&self) -> u16 {
        get_u16(self.buffer.as_ref(), frag_field::OFF_M) & 0xfff8
    }
    /// More fragments flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), frag_field::OFF_M) & 1 != 0
    }
    /// Identification (32 bits).
    pub fn ident(&self) -> u32 {
        get_u32(self.buffer.as_ref(), frag_field::IDENT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    /// Write every field (the reserved bytes are zeroed). `frag_offset_bytes`
    /// must be a multiple of 8; its low bits are dropped.
    pub fn set_all(&mut self, next_header: u8, frag_offset_bytes: u16, more_frags: bool, ident: u32) {
        let b = self.buffer.as_mut();
        b[frag_field::NXT_HDR] = next_header;
        b[1] = 0;
        set_u16(b, frag_field::OFF_M, (frag_offset_bytes & 0xfff8) | u16::from(more_frags));
        set_u32(b, frag_field::IDENT, ident);
    }
    /// Set the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[frag_field::NXT_HDR] = v;
    }
}

/// The fragment header found by [`parse_chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of the fragment header from the start of the walked bytes.
    pub offset: usize,
    /// Its next header field.
    pub next_header: u8,
    /// Fragment offset in bytes.
    pub frag_offset_bytes: u16,
    /// More fragments flag.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragInfo {
    /// True for the first fragment (offset 0), the one that holds the
    /// upper-layer header.
    pub const fn is_first(&self) -> bool {
        self.frag_offset_bytes == 0
    }
    /// True for an "atomic fragment" (RFC 6946): offset 0 and no MF.
    pub const fn is_atomic(&self) -> bool {
        self.frag_offset_bytes == 0 && !self.more_frags
    }
}

/// The routing header found by [`parse_chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingInfo {
    /// Offset of the routing header from the start of the walked bytes.
    pub offset: usize,
    /// Routing type.
    pub routing_type: u8,
    /// Segments left.
    pub segments_left: u8,
}

/// What [`parse_chain`] learned about an extension-header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// The protocol after the last extension header (TCP, UDP, ICMPv6,
    /// [`protocol::IPV6_NONXT`], or anything not walked such as ESP).
    pub upper_proto: u8,
    /// Offset of the upper-layer header from the start of the walked bytes
    /// (equal to `ext_len`). For a non-first fragment this is where the
    /// fragment data starts: there is no upper-layer header there.
    pub upper_offset: usize,
    /// The fragment header, if any.
    pub frag: Option<FragInfo>,
    /// The routing header, if any.
    pub routing: Option<RoutingInfo>,
    /// Total length of the extension headers walked.
    pub ext_len: usize,
    /// Number of extension headers walked.
    pub count: u8,
    /// Extension headers follow the fragment header (in a first fragment).
    /// A translator cannot drop them from a fragment without breaking the
    /// later fragments' offsets (RFC 7915 §5.1.1).
    pub ext_after_frag: bool,
    /// Offset of the `next header` byte that names the upper layer, from the
    /// start of the walked bytes, or `None` when it is the IPv6 header's own
    /// next header field (no extension headers).
    pub last_next_header_at: Option<usize>,
}

impl Chain {
    /// True when a fragment header is present.
    pub const fn is_fragment(&self) -> bool {
        self.frag.is_some()
    }
    /// True when the upper-layer header is present: no fragment header, or
    /// the first fragment.
    pub fn has_upper_header(&self) -> bool {
        self.frag.is_none_or(|f| f.is_first())
    }
}

/// Walk the extension headers starting with `first_next_header` (the IPv6
/// header's next header) over `bytes` (the IPv6 payload).
///
/// Stops at the first protocol that is not an extension header, or right
/// after a fragment header of a non-first fragment (the rest is opaque
/// fragment data). Errors: `Truncated` when a header runs past `bytes`;
/// `Malformed` for a hop-by-hop header not first (RFC 8200 §4.1), a second
/// fragment or routing header, or more than [`MAX_EXT_HEADERS`] headers.
pub fn parse_chain(first_next_header: u8, bytes: &[u8]) -> Result<Chain> {
    let mut chain = Chain {
        upper_proto: first_next_header,
        upper_offset: 0,
        frag: None,
        routing: None,
        ext_len: 0,
        count: 0,
        ext_after_frag: false,
        last_next_header_at: None,
    };
    let mut nh = first_next_header;
    let mut off = 0usize;
    while super::ip::is_ipv6_ext(nh) {
        if usize::from(chain.count) == MAX_EXT_HEADERS {
            return Err(Error::Malformed);
        }
        // RFC 8200 §4.1: hop-by-hop options only immediately after the IPv6 header.
        if nh == protocol::HOPOPTS && chain.count != 0 {
            return Err(Error::Malformed);
        }
        let rest = bytes.get(off..).ok_or(Error::Truncated)?;
        let this_at = off;
        let len;
        if nh == protocol::IPV6_FRAG {
            if chain.frag.is_some() {
                return Err(Error::Malformed);
            }
            let f = FragmentHeader::new_checked(rest)?;
            let info = FragInfo {
                offset: off,
                next_header: f.next_header(),
                frag_offset_bytes: f.frag_offset_bytes(),
                more_frags: f.more_frags(),
                ident: f.ident(),
            };
            chain.frag = Some(info);
            len = FRAG_HEADER_LEN;
            nh = info.next_header;
            off += len;
            chain.count += 1;
            chain.last_next_header_at = Some(this_at);
            if !info.is_first() {
                // RFC 8200 §4.5: what follows a non-first fragment's header is
                // fragment data, not headers.
                break;
            }
            continue;
        }
        let h = ExtHeader::new_checked(rest)?;
        chain.ext_after_frag |= chain.frag.is_some();
        if nh == protocol::IPV6_ROUTE {
            if chain.routing.is_some() {
                return Err(Error::Malformed);
            }
            chain.routing = Some(RoutingInfo {
                offset: off,
                routing_type: h.routing_type(),
                segments_left: h.segments_left(),
            });
        }
        len = h.header_len();
        nh = h.next_header();
        off += len;
        chain.count += 1;
        chain.last_next_header_at = Some(this_at);
    }
    chain.upper_proto = nh;
    chain.upper_offset = off;
    chain.ext_len = off;
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hop-by-hop (8, PadN) -> routing type 0? no: type 2, segments 1 (24
    /// bytes) -> fragment (first, MF) -> UDP.
    fn chain_bytes() -> Vec<u8> {
        let mut v = vec![43, 0, 1, 4, 0, 0, 0, 0]; // HBH: next routing, len 8, PadN(4)
        v.extend_from_slice(&[44, 2, 2, 1, 0, 0, 0, 0]); // routing, len 24, type 2, segleft 1
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(&[17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]); // frag off 0, MF
        v.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]); // UDP
        v
    }

    #[test]
    fn walks_a_full_chain() {
        let v = chain_bytes();
        let c = parse_chain(protocol::HOPOPTS, &v).unwrap();
        assert_eq!(c.upper_proto, protocol::UDP);
        assert_eq!(c.upper_offset, 40);
        assert_eq!(c.ext_len, 40);
        assert_eq!(c.count, 3);
        assert_eq!(c.last_next_header_at, Some(32));
        assert_eq!(c.routing, Some(RoutingInfo { offset: 8, routing_type: 2, segments_left: 1 }));
        let f = c.frag.unwrap();
        assert_eq!(f.offset, 32);
        assert_eq!(f.next_header, protocol::UDP);
        assert!(f.more_frags && f.is_first() && !f.is_atomic());
        assert_eq!(f.ident, 0xdead_beef);
        assert!(c.has_upper_header());
        assert!(!c.ext_after_frag);
    }

    #[test]
    fn records_headers_after_the_fragment_header() {
        // Fragment (first, MF) -> destination options -> TCP.
        let v = [60, 0, 0, 1, 0, 0, 0, 9, 6, 0, 1, 4, 0, 0, 0, 0];
        let c = parse_chain(protocol::IPV6_FRAG, &v).unwrap();
        assert!(c.ext_after_frag);
        assert_eq!((c.upper_proto, c.upper_offset, c.count), (protocol::TCP, 16, 2));
        assert_eq!(c.last_next_header_at, Some(8));
    }

    #[test]
    fn no_extension_headers() {
        let c = parse_chain(protocol::TCP, &[]).unwrap();
        assert_eq!((c.upper_proto, c.upper_offset, c.count), (protocol::TCP, 0, 0));
        assert_eq!(c.last_next_header_at, None);
        assert!(!c.is_fragment());
    }

    #[test]
    fn non_first_fragment_stops_the_walk() {
        // Offset 1480, next header says "routing" but the bytes are data.
        let v = [43, 0, 0x05, 0xc8, 0, 0, 0, 1, 0xff, 0xff];
        let c = parse_chain(protocol::IPV6_FRAG, &v).unwrap();
        assert_eq!(c.upper_proto, protocol::IPV6_ROUTE);
        assert_eq!(c.upper_offset, 8);
        assert_eq!(c.frag.unwrap().frag_offset_bytes, 1480);
        assert!(!c.has_upper_header());
    }

    #[test]
    fn malformed_chains() {
        // Hop-by-hop in second position.
        let v = [0, 0, 0, 0, 0, 0, 0, 0, 59, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_chain(protocol::IPV6_OPTS, &v).unwrap_err(), Error::Malformed);
        // Two fragment headers.
        let v = [44, 0, 0, 0, 0, 0, 0, 1, 17, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_chain(protocol::IPV6_FRAG, &v).unwrap_err(), Error::Malformed);
        // Nine destination options headers.
        let mut v = Vec::new();
        for _ in 0..9 {
            v.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(parse_chain(protocol::IPV6_OPTS, &v).unwrap_err(), Error::Malformed);
        // Eight is fine.
        v[8 * 7] = 59;
        let c = parse_chain(protocol::IPV6_OPTS, &v[..64]).unwrap();
        assert_eq!((c.count, c.upper_proto), (8, protocol::IPV6_NONXT));
    }

    #[test]
    fn truncated_chains() {
        let v = chain_bytes();
        for cut in [0, 7, 8, 20, 31, 39] {
            assert_eq!(parse_chain(protocol::HOPOPTS, &v[..cut]).unwrap_err(), Error::Truncated, "cut {cut}");
        }
        // The upper-layer header itself is not the walker's business.
        assert!(parse_chain(protocol::HOPOPTS, &v[..40]).is_ok());
    }

    #[test]
    fn views_and_setters() {
        let mut b = [0u8; 8];
        let mut f = FragmentHeader::new_checked(&mut b[..]).unwrap();
        f.set_all(protocol::TCP, 2960, true, 42);
        assert_eq!(b, [6, 0, 0x0b, 0x91, 0, 0, 0, 42]);
        let f = FragmentHeader::new_checked(&b[..]).unwrap();
        assert_eq!((f.frag_offset_bytes(), f.more_frags(), f.ident()), (2960, true, 42));
        let mut e = [0u8; 16];
        let mut h = ExtHeader::new_unchecked(&mut e[..]);
        h.set_next_header(59);
        h.set_header_len(16);
        h.set_segments_left(3);
        let h = ExtHeader::new_checked(&e[..]).unwrap();
        assert_eq!((h.header_len(), h.next_header(), h.segments_left()), (16, 59, 3));
        assert_eq!(h.data().len(), 14);
        assert_eq!(ExtHeader::new_checked(&e[..15]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn agrees_with_etherparse() {
        let v = chain_bytes();
        let (exts, nh, rest) = etherparse::Ipv6Extensions::from_slice(protocol::HOPOPTS.into(), &v).unwrap();
        let c = parse_chain(protocol::HOPOPTS, &v).unwrap();
        assert_eq!(u8::from(nh), c.upper_proto);
        assert_eq!(rest.len(), v.len() - c.upper_offset);
        assert!(exts.fragment.is_some() && exts.routing.is_some());
    }
}
