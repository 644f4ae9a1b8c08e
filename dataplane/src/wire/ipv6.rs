//! IPv6 fixed header (RFC 8200 §3).

use super::{get_u16, get_u32, get_v6, set_u16, set_u32, Error, Result};
use std::net::Ipv6Addr;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet. After `new_checked` the 40-byte header and
/// `payload_len` bytes after it are inside the buffer (which may be longer:
/// Ethernet padding is ignored by [`payload`](Self::payload)).
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Version 6, header present, 40 + payload_len within the buffer.
    /// Jumbograms (payload length 0 with a hop-by-hop jumbo option,
    /// RFC 2675) are not supported: they parse with an empty payload.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }
    /// Traffic class (DSCP + ECN).
    pub fn traffic_class(&self) -> u8 {
        ((get_u16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) & 0xff) as u8
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Next header (first extension header or upper-layer protocol).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        get_v6(self.buffer.as_ref(), field::SRC_ADDR)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        get_v6(self.buffer.as_ref(), field::DST_ADDR)
    }
    /// The bytes after the fixed header, up to `payload_len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Write version 6, traffic class and flow label at once.
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, w);
    }
    /// Set the traffic class, keeping version and flow label.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0xf00f_ffff;
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, w | (u32::from(tc) << 20));
    }
    /// Set the flow label, keeping version and traffic class.
    pub fn set_flow_label(&mut self, fl: u32) {
        let w = get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0xfff0_0000;
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW, w | (fl & 0x000f_ffff));
    }
    /// Set the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    /// Set the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Set the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR..field::SRC_ADDR + 16].copy_from_slice(&a.octets());
    }
    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR..field::DST_ADDR + 16].copy_from_slice(&a.octets());
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::protocol;

    fn sample() -> Vec<u8> {
        let mut v = vec![
            0x6b, 0x81, 0x23, 0x45, // version 6, TC 0xb8, flow 0x12345
            0x00, 0x04, 17, 63, // payload 4, UDP, hop limit 63
        ];
        v.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&"64:ff9b::c000:201".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&[1, 2, 3, 4]);
        v
    }

    #[test]
    fn parse_fields() {
        let v = sample();
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.next_header(), protocol::UDP);
        assert_eq!(p.hop_limit(), 63);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "64:ff9b::c000:201".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn structural_checks() {
        let v = sample();
        assert_eq!(Ipv6Packet::new_checked(&v[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Ipv6Packet::new_checked(&v[..43]).unwrap_err(), Error::Truncated);
        let mut b = v.clone();
        b[0] = 0x4b;
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = v.clone();
        b.extend_from_slice(&[0; 10]); // padding is fine and ignored
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().payload().len(), 4);
    }

    #[test]
    fn setters_round_trip_and_match_etherparse() {
        let mut v = vec![0u8; 44];
        let mut p = Ipv6Packet::new_unchecked(&mut v[..]);
        p.set_version_tc_flow(0, 0);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        p.set_payload_len(4);
        p.set_next_header(17);
        p.set_hop_limit(63);
        p.set_src_addr("2001:db8::1".parse().unwrap());
        p.set_dst_addr("64:ff9b::c000:201".parse().unwrap());
        p.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(v, sample());
        let (h, rest) = etherparse::Ipv6Header::from_slice(&v).unwrap();
        assert_eq!(h.traffic_class, 0xb8);
        assert_eq!(h.flow_label.value(), 0x12345);
        assert_eq!(h.hop_limit, 63);
        assert_eq!(rest, &[1, 2, 3, 4]);
    }
}
