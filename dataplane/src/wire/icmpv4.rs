//! ICMP for IPv4 (RFC 792, RFC 1191, RFC 4884).

use super::checksum;
use super::{get_u16, get_u32, set_u16, set_u32, Error, Result};

/// ICMPv4 message types, and the codes of the error types in submodules.
pub mod types {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (codes in [`unreach`]).
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (deprecated, RFC 6633).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 9;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 10;
    /// Time exceeded (codes in [`time_exceeded`]).
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem (codes in [`param_problem`]).
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// Information request (obsolete).
    pub const INFO_REQUEST: u8 = 15;
    /// Information reply (obsolete).
    pub const INFO_REPLY: u8 = 16;
    /// Address mask request (obsolete).
    pub const ADDR_MASK_REQUEST: u8 = 17;
    /// Address mask reply (obsolete).
    pub const ADDR_MASK_REPLY: u8 = 18;

    /// Destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1).
    pub mod unreach {
        /// Net unreachable.
        pub const NET: u8 = 0;
        /// Host unreachable.
        pub const HOST: u8 = 1;
        /// Protocol unreachable.
        pub const PROTOCOL: u8 = 2;
        /// Port unreachable.
        pub const PORT: u8 = 3;
        /// Fragmentation needed and DF set (RFC 1191: MTU in bytes 6..8).
        pub const FRAG_NEEDED: u8 = 4;
        /// Source route failed.
        pub const SOURCE_ROUTE_FAILED: u8 = 5;
        /// Destination network unknown.
        pub const NET_UNKNOWN: u8 = 6;
        /// Destination host unknown.
        pub const HOST_UNKNOWN: u8 = 7;
        /// Source host isolated.
        pub const HOST_ISOLATED: u8 = 8;
        /// Network administratively prohibited.
        pub const NET_PROHIBITED: u8 = 9;
        /// Host administratively prohibited.
        pub const HOST_PROHIBITED: u8 = 10;
        /// Network unreachable for TOS.
        pub const NET_TOS: u8 = 11;
        /// Host unreachable for TOS.
        pub const HOST_TOS: u8 = 12;
        /// Communication administratively prohibited.
        pub const ADMIN_PROHIBITED: u8 = 13;
        /// Host precedence violation.
        pub const PRECEDENCE_VIOLATION: u8 = 14;
        /// Precedence cutoff in effect.
        pub const PRECEDENCE_CUTOFF: u8 = 15;
    }

    /// Time exceeded codes.
    pub mod time_exceeded {
        /// TTL exceeded in transit.
        pub const TTL: u8 = 0;
        /// Fragment reassembly time exceeded.
        pub const REASSEMBLY: u8 = 1;
    }

    /// Parameter problem codes.
    pub mod param_problem {
        /// Pointer indicates the error.
        pub const POINTER: u8 = 0;
        /// Missing a required option.
        pub const MISSING_OPTION: u8 = 1;
        /// Bad length.
        pub const BAD_LENGTH: u8 = 2;
    }

    /// True for the error messages that quote an offending datagram.
    pub const fn is_error(t: u8) -> bool {
        matches!(t, DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM)
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const POINTER: usize = 4;
    pub const LENGTH: usize = 5;
    pub const SEQ: usize = 6;
    pub const MTU: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of an ICMPv4 message (the whole IP payload).
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The 8-byte header is present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Message type (see [`types`]).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Bytes 4..8 as one word.
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }
    /// Echo identifier.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }
    /// Echo sequence number.
    pub fn seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SEQ)
    }
    /// Next-hop MTU of a fragmentation-needed message (RFC 1191 §4).
    pub fn mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::MTU)
    }
    /// Parameter-problem pointer (byte offset into the quoted header).
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }
    /// RFC 4884 length of the original datagram in 32-bit words (errors
    /// with extensions; 0 when none).
    pub fn ext_length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }
    /// True for an error message (see [`types::is_error`]).
    pub fn is_error(&self) -> bool {
        types::is_error(self.msg_type())
    }
    /// Everything after the 8-byte header (echo data or the quoted datagram).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
    /// The whole message sums to all ones (no pseudo-header for ICMPv4).
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), 0)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Set the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Set the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Set the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Set bytes 4..8.
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::REST, v);
    }
    /// Set the echo identifier.
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, v);
    }
    /// Set the echo sequence number.
    pub fn set_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SEQ, v);
    }
    /// Set the next-hop MTU (bytes 6..8; bytes 4..6 are left alone).
    pub fn set_mtu(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::MTU, v);
    }
    /// Set the parameter-problem pointer (byte 4).
    pub fn set_pointer(&mut self, v: u8) {
        self.buffer.as_mut()[field::POINTER] = v;
    }
    /// Set the RFC 4884 length byte.
    pub fn set_ext_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }
    /// Compute and store the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), 0));
        self.set_checksum(c);
    }
    /// Everything after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_against_etherparse() {
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .icmpv4_echo_request(0x1234, 7)
            .write(&mut w, b"ping")
            .unwrap();
        let mut p = Icmpv4Packet::new_checked(&mut w[20..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (types::ECHO_REQUEST, 0));
        assert_eq!((p.ident(), p.seq()), (0x1234, 7));
        assert_eq!(p.rest_of_header(), 0x1234_0007);
        assert!(!p.is_error());
        assert_eq!(p.payload(), b"ping");
        assert!(p.verify_checksum());
        let theirs = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), theirs);
        p.set_msg_type(types::ECHO_REPLY);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn frag_needed_by_hand() {
        // Type 3 code 4, unused 0, next-hop MTU 1400, then a quoted header start.
        let mut b = [3, 4, 0, 0, 0, 0, 0x05, 0x78, 0x45, 0, 0, 0x1c];
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.mtu(), 1400);
        assert!(p.is_error());
        assert_eq!(p.payload(), &[0x45, 0, 0, 0x1c]);
        assert!(p.verify_checksum());
        let e = etherparse::Icmpv4Slice::from_slice(&b).unwrap();
        match e.icmp_type() {
            etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
            ) => assert_eq!(next_hop_mtu, 1400),
            other => panic!("etherparse saw {other:?}"),
        }
    }

    #[test]
    fn param_problem_and_setters() {
        let mut b = [0u8; 8];
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(types::PARAM_PROBLEM);
        p.set_code(types::param_problem::POINTER);
        p.set_pointer(9);
        p.set_ext_length(2);
        assert_eq!(p.pointer(), 9);
        assert_eq!(p.ext_length(), 2);
        p.set_ident(1);
        p.set_seq(2);
        assert_eq!(p.rest_of_header(), 0x0001_0002);
        p.set_rest_of_header(0);
        p.set_mtu(576);
        assert_eq!(b, [12, 0, 0, 0, 0, 0, 0x02, 0x40]);
        assert_eq!(Icmpv4Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }
}
