//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses only.

use super::ethernet::{EtherType, EthernetAddress};
use super::{get_u16, get_v4, set_u16, Error, Result};
use std::net::Ipv4Addr;

/// ARP operation codes.
pub mod op {
    /// who-has.
    pub const REQUEST: u16 = 1;
    /// is-at.
    pub const REPLY: u16 = 2;
}

mod field {
    use core::ops::Range;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::END;
/// Hardware type "Ethernet".
pub const HTYPE_ETHERNET: u16 = 1;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }
    /// Wrap after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// 28 bytes, and the hardware/protocol types and lengths are
    /// Ethernet (6) and IPv4 (4); anything else is `Unsupported`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::HTYPE) != HTYPE_ETHERNET
            || get_u16(b, field::PTYPE) != EtherType::IPV4.0
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(())
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
    /// Operation ([`op::REQUEST`] or [`op::REPLY`]).
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }
    /// Sender hardware address.
    pub fn sender_hw_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }
    /// Sender protocol address.
    pub fn sender_ip_addr(&self) -> Ipv4Addr {
        get_v4(self.buffer.as_ref(), field::SPA)
    }
    /// Target hardware address.
    pub fn target_hw_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }
    /// Target protocol address.
    pub fn target_ip_addr(&self) -> Ipv4Addr {
        get_v4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Write the fixed Ethernet/IPv4 header fields (types and lengths).
    pub fn init_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        set_u16(b, field::HTYPE, HTYPE_ETHERNET);
        set_u16(b, field::PTYPE, EtherType::IPV4.0);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }
    /// Set the operation.
    pub fn set_operation(&mut self, op: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, op);
    }
    /// Set the sender hardware address.
    pub fn set_sender_hw_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }
    /// Set the sender protocol address.
    pub fn set_sender_ip_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&a.octets());
    }
    /// Set the target hardware address.
    pub fn set_target_hw_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }
    /// Set the target protocol address.
    pub fn set_target_ip_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 192.0.2.1 tell 192.0.2.2, from 02:00:00:00:00:02.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen op
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 192, 0, 2, 2, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 1, // target
    ];

    #[test]
    fn parse_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), op::REQUEST);
        assert_eq!(p.sender_hw_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(p.sender_ip_addr(), Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(p.target_hw_addr(), EthernetAddress::default());
        assert_eq!(p.target_ip_addr(), Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn refuses_short_and_foreign() {
        assert_eq!(ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(), Error::Truncated);
        let mut b = REQUEST;
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(ArpPacket::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = REQUEST;
        b[5] = 16;
        assert_eq!(ArpPacket::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn build_reply() {
        let mut b = [0u8; 28];
        let mut p = ArpPacket::new_unchecked(&mut b[..]);
        p.init_ethernet_ipv4();
        p.set_operation(op::REPLY);
        p.set_sender_hw_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        p.set_sender_ip_addr(Ipv4Addr::new(192, 0, 2, 1));
        p.set_target_hw_addr(EthernetAddress([2, 0, 0, 0, 0, 2]));
        p.set_target_ip_addr(Ipv4Addr::new(192, 0, 2, 2));
        let expect: [u8; 28] = [
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1,
            0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 192, 0, 2, 2,
        ];
        assert_eq!(b, expect);
        // Cross-check against etherparse's reading of the same bytes.
        let e = etherparse::ArpPacketSlice::from_slice(&b).unwrap();
        assert_eq!(e.sender_protocol_addr(), &[192, 0, 2, 1]);
        assert_eq!(e.operation(), etherparse::ArpOperation::REPLY);
    }
}
