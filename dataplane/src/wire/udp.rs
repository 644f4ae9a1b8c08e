//! UDP header (RFC 768).

use super::checksum;
use super::{get_u16, set_u16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field, for in-place incremental updates.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of a UDP datagram (the IP payload). After `new_checked` the
/// length field is at least 8 and within the buffer.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Header present, 8 <= length <= buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Length field (header + data).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Checksum field (0 = none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Data after the header, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// The datagram (header + data) as the length field says.
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }
    /// Verify the checksum over `len` bytes given the pseudo-header sum. A
    /// zero field verifies (RFC 768: no checksum); whether that is
    /// acceptable (never for IPv6, RFC 8200 §8.1) is the caller's rule.
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        self.checksum() == 0 || checksum::fold(checksum::sum(self.datagram(), pseudo)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Set the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Set the length field.
    pub fn set_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, v);
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Compute the checksum over `len` bytes and store it; a computed 0 is
    /// stored as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish_udp(checksum::sum(self.datagram(), pseudo));
        self.set_checksum(c);
    }
    /// Data after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::protocol;
    use std::net::Ipv4Addr;

    // 1234 -> 53, 4 data bytes, checksum left zero.
    const DGRAM: [u8; 12] = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0, 0, 0xde, 0xad, 0xbe, 0xef];

    #[test]
    fn parse_fields() {
        let u = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (1234, 53, 12));
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert!(u.verify_checksum(0x1234)); // zero means none
    }

    #[test]
    fn structural_checks() {
        assert_eq!(UdpPacket::new_checked(&DGRAM[..7]).unwrap_err(), Error::Truncated);
        assert_eq!(UdpPacket::new_checked(&DGRAM[..11]).unwrap_err(), Error::Truncated);
        let mut b = DGRAM;
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        // Trailing bytes beyond the length field are ignored.
        let mut b = DGRAM.to_vec();
        b.extend_from_slice(&[0; 6]);
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap().payload().len(), 4);
    }

    #[test]
    fn checksum_against_etherparse() {
        let (s, d) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2));
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            .udp(1234, 53)
            .write(&mut w, &[0xde, 0xad, 0xbe, 0xef])
            .unwrap();
        let pseudo = checksum::pseudo_v4(s, d, protocol::UDP, 12);
        let mut u = UdpPacket::new_checked(&mut w[20..]).unwrap();
        assert!(u.verify_checksum(pseudo));
        let theirs = u.checksum();
        u.fill_checksum(pseudo);
        assert_eq!(u.checksum(), theirs);
        u.set_src_port(1235);
        assert!(!u.verify_checksum(pseudo));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose data so that the sum is 0xffff: then the complement is 0.
        let mut b = [0u8; 10];
        let mut u = UdpPacket::new_unchecked(&mut b[..]);
        u.set_len(10);
        // Header words sum to 10 (length); data word makes the total 0xffff.
        u.payload_mut().copy_from_slice(&(0xffffu16 - 10).to_be_bytes());
        u.fill_checksum(0);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum(0));
    }
}
