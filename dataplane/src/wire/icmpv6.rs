//! ICMPv6 (RFC 4443, RFC 4884) and NDP neighbour messages (RFC 4861 §4.3, §4.4).

use super::checksum;
use super::ethernet::EthernetAddress;
use super::{get_u16, get_u32, get_v6, set_u16, set_u32, Error, Result};
use std::net::Ipv6Addr;

/// ICMPv6 message types, and the codes of the error types in submodules.
pub mod types {
    /// Destination unreachable (codes in [`unreach`]).
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big (MTU in bytes 4..8).
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded (codes in [`time_exceeded`]).
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem (codes in [`param_problem`]; pointer in bytes 4..8).
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Multicast listener query.
    pub const MLD_QUERY: u8 = 130;
    /// Multicast listener report.
    pub const MLD_REPORT: u8 = 131;
    /// Multicast listener done.
    pub const MLD_DONE: u8 = 132;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
    /// MLDv2 report.
    pub const MLD2_REPORT: u8 = 143;

    /// Destination unreachable codes.
    pub mod unreach {
        /// No route to destination.
        pub const NO_ROUTE: u8 = 0;
        /// Communication administratively prohibited.
        pub const ADMIN_PROHIBITED: u8 = 1;
        /// Beyond scope of source address.
        pub const BEYOND_SCOPE: u8 = 2;
        /// Address unreachable.
        pub const ADDR: u8 = 3;
        /// Port unreachable.
        pub const PORT: u8 = 4;
        /// Source address failed ingress/egress policy.
        pub const FAILED_POLICY: u8 = 5;
        /// Reject route to destination.
        pub const REJECT_ROUTE: u8 = 6;
    }

    /// Time exceeded codes.
    pub mod time_exceeded {
        /// Hop limit exceeded in transit.
        pub const HOP_LIMIT: u8 = 0;
        /// Fragment reassembly time exceeded.
        pub const REASSEMBLY: u8 = 1;
    }

    /// Parameter problem codes.
    pub mod param_problem {
        /// Erroneous header field.
        pub const ERRONEOUS_HEADER: u8 = 0;
        /// Unrecognised next header.
        pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
        /// Unrecognised IPv6 option.
        pub const UNRECOGNIZED_OPTION: u8 = 2;
    }

    /// RFC 4443 §2.1: types 0..=127 are errors.
    pub const fn is_error(t: u8) -> bool {
        t < 128
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const LENGTH: usize = 4;
    pub const SEQ: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 message bytes).
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// A view of an ICMPv6 message (the upper-layer part of the IPv6 payload).
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
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
    /// MTU of a packet-too-big message (RFC 4443 §3.2).
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }
    /// Parameter-problem pointer (RFC 4443 §3.4).
    pub fn pointer(&self) -> u32 {
        self.rest_of_header()
    }
    /// RFC 4884 length of the original datagram in 64-bit words (byte 4 of
    /// destination unreachable and time exceeded; 0 when no extensions).
    pub fn ext_length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }
    /// True for an error message (types below 128).
    pub fn is_error(&self) -> bool {
        types::is_error(self.msg_type())
    }
    /// Everything after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
    /// Verify the checksum given the pseudo-header sum
    /// (`pseudo_v6(src, dst, 58, len)`, RFC 4443 §2.3).
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref(), pseudo)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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
    /// Set the packet-too-big MTU.
    pub fn set_mtu(&mut self, v: u32) {
        self.set_rest_of_header(v);
    }
    /// Set the parameter-problem pointer.
    pub fn set_pointer(&mut self, v: u32) {
        self.set_rest_of_header(v);
    }
    /// Set the RFC 4884 length byte.
    pub fn set_ext_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }
    /// Compute and store the checksum given the pseudo-header sum.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo));
        self.set_checksum(c);
    }
    /// Everything after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// NDP option types used by [`NdpNeighbor`] (RFC 4861 §4.6.1).
pub mod ndp_option {
    /// Source link-layer address.
    pub const SOURCE_LL_ADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LL_ADDR: u8 = 2;
}

mod ndp_field {
    pub const FLAGS: usize = 4;
    pub const TARGET: usize = 8;
    pub const OPTIONS: usize = 24;
}

/// Length of a neighbour solicitation/advertisement without options.
pub const NDP_NEIGHBOR_LEN: usize = ndp_field::OPTIONS;
/// Length of a link-layer address option for Ethernet.
pub const NDP_LL_OPTION_LEN: usize = 8;

/// Neighbour advertisement flag bits (byte 4).
pub mod na_flags {
    /// Sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// Sent in response to a solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// Override an existing cache entry.
    pub const OVERRIDE: u8 = 0x20;
}

/// A view of a neighbour solicitation or advertisement (the whole ICMPv6
/// message). After `new_checked` the options are known to be well formed.
#[derive(Debug, Clone)]
pub struct NdpNeighbor<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NdpNeighbor<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        NdpNeighbor { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// RFC 4861 §7.1.1/§7.1.2: type 135 or 136, code 0, 24 bytes, and every
    /// option has a non-zero length and fits in the message.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < NDP_NEIGHBOR_LEN {
            return Err(Error::Truncated);
        }
        let t = b[0];
        if t != types::NEIGHBOR_SOLICIT && t != types::NEIGHBOR_ADVERT {
            return Err(Error::Unsupported);
        }
        if b[1] != 0 {
            return Err(Error::Malformed);
        }
        let mut off = ndp_field::OPTIONS;
        while off < b.len() {
            let len = usize::from(*b.get(off + 1).ok_or(Error::Truncated)?) * 8;
            if len == 0 {
                return Err(Error::Malformed);
            }
            if off + len > b.len() {
                return Err(Error::Truncated);
            }
            off += len;
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// True for a solicitation, false for an advertisement.
    pub fn is_solicit(&self) -> bool {
        self.buffer.as_ref()[0] == types::NEIGHBOR_SOLICIT
    }
    /// Advertisement flags (see [`na_flags`]); reserved bits for a solicitation.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[ndp_field::FLAGS]
    }
    /// Target address.
    pub fn target_addr(&self) -> Ipv6Addr {
        get_v6(self.buffer.as_ref(), ndp_field::TARGET)
    }
    /// The first option of `opt_type` carrying a 6-byte address.
    fn ll_option(&self, opt_type: u8) -> Option<EthernetAddress> {
        let b = self.buffer.as_ref();
        let mut off = ndp_field::OPTIONS;
        while off + 2 <= b.len() {
            let len = usize::from(b[off + 1]) * 8;
            if len == 0 || off + len > b.len() {
                return None;
            }
            if b[off] == opt_type && len >= NDP_LL_OPTION_LEN {
                return Some(EthernetAddress::from_bytes(&b[off + 2..off + 8]));
            }
            off += len;
        }
        None
    }
    /// Source link-layer address option, if present.
    pub fn source_ll_addr(&self) -> Option<EthernetAddress> {
        self.ll_option(ndp_option::SOURCE_LL_ADDR)
    }
    /// Target link-layer address option, if present.
    pub fn target_ll_addr(&self) -> Option<EthernetAddress> {
        self.ll_option(ndp_option::TARGET_LL_ADDR)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdpNeighbor<T> {
    /// Write type, code 0, flags (reserved bytes zeroed) and target. The
    /// checksum is left to [`Icmpv6Packet::fill_checksum`].
    pub fn init(&mut self, advert: bool, flags: u8, target: Ipv6Addr) {
        let b = self.buffer.as_mut();
        b[0] = if advert { types::NEIGHBOR_ADVERT } else { types::NEIGHBOR_SOLICIT };
        b[1] = 0;
        b[ndp_field::FLAGS..ndp_field::TARGET].copy_from_slice(&[flags, 0, 0, 0]);
        b[ndp_field::TARGET..ndp_field::OPTIONS].copy_from_slice(&target.octets());
    }
    /// Write one link-layer address option right after the fixed part
    /// (bytes 24..32; the buffer must be at least 32 bytes).
    pub fn set_ll_option(&mut self, opt_type: u8, mac: EthernetAddress) {
        let b = self.buffer.as_mut();
        let o = ndp_field::OPTIONS;
        b[o] = opt_type;
        b[o + 1] = 1;
        b[o + 2..o + 8].copy_from_slice(&mac.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::protocol;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
    }

    #[test]
    fn echo_against_etherparse() {
        let (s, d) = addrs();
        let mut w = Vec::new();
        etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            .icmpv6_echo_request(0xbeef, 3)
            .write(&mut w, b"abc")
            .unwrap();
        let len = (w.len() - 40) as u32;
        let pseudo = checksum::pseudo_v6(s, d, protocol::ICMPV6, len);
        let mut p = Icmpv6Packet::new_checked(&mut w[40..]).unwrap();
        assert_eq!((p.msg_type(), p.code()), (types::ECHO_REQUEST, 0));
        assert_eq!((p.ident(), p.seq()), (0xbeef, 3));
        assert!(!p.is_error());
        assert!(p.verify_checksum(pseudo));
        let theirs = p.checksum();
        p.fill_checksum(pseudo);
        assert_eq!(p.checksum(), theirs);
        assert_eq!(p.payload(), b"abc");
    }

    #[test]
    fn packet_too_big_and_pointer() {
        let mut b = [2, 0, 0, 0, 0, 0, 0x05, 0x00, 0x60, 0, 0, 0];
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.mtu(), 1280);
        assert!(p.is_error());
        p.set_msg_type(types::PARAM_PROBLEM);
        p.set_pointer(0x0001_0006);
        assert_eq!(p.pointer(), 0x0001_0006);
        p.set_ext_length(3);
        assert_eq!(p.ext_length(), 3);
        p.set_mtu(1500);
        assert_eq!(p.rest_of_header(), 1500);
        assert_eq!(Icmpv6Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }

    fn solicit() -> Vec<u8> {
        let mut v = vec![135, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        v.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]); // source LL option
        v
    }

    #[test]
    fn neighbor_solicitation() {
        let v = solicit();
        let n = NdpNeighbor::new_checked(&v[..]).unwrap();
        assert!(n.is_solicit());
        assert_eq!(n.target_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(n.source_ll_addr(), Some(EthernetAddress([2, 0, 0, 0, 0, 9])));
        assert_eq!(n.target_ll_addr(), None);
    }

    #[test]
    fn neighbor_checks() {
        let v = solicit();
        assert_eq!(NdpNeighbor::new_checked(&v[..23]).unwrap_err(), Error::Truncated);
        assert_eq!(NdpNeighbor::new_checked(&v[..30]).unwrap_err(), Error::Truncated);
        assert_eq!(NdpNeighbor::new_checked(&v[..25]).unwrap_err(), Error::Truncated);
        let mut b = v.clone();
        b[25] = 0; // zero-length option loops forever if not refused
        assert_eq!(NdpNeighbor::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = v.clone();
        b[0] = 128;
        assert_eq!(NdpNeighbor::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = v.clone();
        b[1] = 1;
        assert_eq!(NdpNeighbor::new_checked(&b[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn build_advertisement_and_cross_check() {
        let (me, them) = addrs();
        let mut b = [0u8; 32];
        let mut n = NdpNeighbor::new_unchecked(&mut b[..]);
        n.init(true, na_flags::SOLICITED | na_flags::OVERRIDE, me);
        n.set_ll_option(ndp_option::TARGET_LL_ADDR, EthernetAddress([2, 0, 0, 0, 0, 1]));
        let pseudo = checksum::pseudo_v6(me, them, protocol::ICMPV6, 32);
        Icmpv6Packet::new_unchecked(&mut b[..]).fill_checksum(pseudo);
        let n = NdpNeighbor::new_checked(&b[..]).unwrap();
        assert!(!n.is_solicit());
        assert_eq!(n.flags(), 0x60);
        assert_eq!(n.target_ll_addr(), Some(EthernetAddress([2, 0, 0, 0, 0, 1])));
        let e = etherparse::Icmpv6Slice::from_slice(&b).unwrap();
        assert_eq!(e.type_u8(), types::NEIGHBOR_ADVERT);
        // etherparse verifies against its own pseudo-header computation.
        let want = e.icmp_type().calc_checksum(me.octets(), them.octets(), e.payload()).unwrap();
        assert_eq!(want, u16::from_be_bytes([b[2], b[3]]));
    }
}
