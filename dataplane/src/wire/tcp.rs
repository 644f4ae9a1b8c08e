//! TCP header (RFC 9293 §3.1).

use super::checksum;
use super::{get_u16, get_u32, set_u16, set_u32, Error, Result};

/// TCP flag bits as they appear in byte 13 ([`TcpPacket::flags`]).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer significant.
    pub const URG: u8 = 0x20;
    /// ECN echo (RFC 3168).
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field, for in-place incremental updates.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of a TCP segment (the IP payload).
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// 20 bytes present, data offset >= 5 and the header inside the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
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
    /// Sequence number.
    pub fn seq(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ)
    }
    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }
    /// The flag byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// SYN set.
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }
    /// FIN set.
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }
    /// RST set.
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }
    /// ACK set.
    pub fn ack_flag(&self) -> bool {
        self.flags() & flags::ACK != 0
    }
    /// Window size.
    pub fn window(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }
    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }
    /// Segment data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Verify the checksum over the whole buffer given the pseudo-header
    /// sum ([`checksum::pseudo_v4`] / [`checksum::pseudo_v6`]).
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), pseudo)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    /// Set the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Set the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ, v);
    }
    /// Set the acknowledgment number.
    pub fn set_ack(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ACK, v);
    }
    /// Set the header length in bytes (multiple of 4), clearing the reserved bits.
    pub fn set_header_len(&mut self, bytes: usize) {
        self.buffer.as_mut()[field::OFFSET] = ((bytes / 4) as u8) << 4;
    }
    /// Set the flag byte.
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    /// Set the window.
    pub fn set_window(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::WINDOW, v);
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set the urgent pointer.
    pub fn set_urgent(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, v);
    }
    /// Compute the checksum over the whole buffer with the given
    /// pseudo-header sum and store it.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo));
        self.set_checksum(c);
    }
    /// Segment data, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::protocol;
    use std::net::Ipv6Addr;

    // SYN from port 40000 to 80 with one MSS option (1460), seq 1, window 64240.
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa, 0xf0, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];

    #[test]
    fn parse_syn() {
        let t = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (40000, 80));
        assert_eq!((t.seq(), t.ack()), (1, 0));
        assert_eq!(t.header_len(), 24);
        assert!(t.syn() && !t.fin() && !t.rst() && !t.ack_flag());
        assert_eq!(t.flags(), flags::SYN);
        assert_eq!(t.window(), 64240);
        assert_eq!(t.options(), &[2, 4, 5, 0xb4]);
        assert!(t.payload().is_empty());
    }

    #[test]
    fn structural_checks() {
        assert_eq!(TcpPacket::new_checked(&SYN[..19]).unwrap_err(), Error::Truncated);
        assert_eq!(TcpPacket::new_checked(&SYN[..23]).unwrap_err(), Error::Truncated);
        let mut b = SYN;
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn checksum_against_etherparse() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "64:ff9b::c000:201".parse().unwrap();
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            .tcp(40000, 80, 7, 1000)
            .syn()
            .write(&mut w, b"hello")
            .unwrap();
        let seg = &mut w[40..];
        let len = seg.len() as u32;
        let pseudo = checksum::pseudo_v6(s, d, protocol::TCP, len);
        let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
        assert!(t.verify_checksum(pseudo));
        let theirs = t.checksum();
        t.fill_checksum(pseudo);
        assert_eq!(t.checksum(), theirs);
        assert_eq!(t.payload(), b"hello");
        t.set_dst_port(81);
        assert!(!t.verify_checksum(pseudo));
    }

    #[test]
    fn setters_round_trip() {
        let mut b = [0u8; 24];
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_src_port(40000);
        t.set_dst_port(80);
        t.set_seq(1);
        t.set_ack(0);
        t.set_header_len(24);
        t.set_flags(flags::SYN);
        t.set_window(64240);
        t.set_urgent(0);
        b[20..].copy_from_slice(&[2, 4, 5, 0xb4]);
        assert_eq!(b, SYN);
    }
}
