//! IP-level constants shared by IPv4 and IPv6.

/// IANA "Assigned Internet Protocol Numbers" (IPv4 protocol / IPv6 next header).
pub mod protocol {
    /// IPv6 hop-by-hop options (RFC 8200 §4.3).
    pub const HOPOPTS: u8 = 0;
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: u8 = 1;
    /// IGMP.
    pub const IGMP: u8 = 2;
    /// IPv4 encapsulation (IP-in-IP).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// DCCP.
    pub const DCCP: u8 = 33;
    /// IPv6 encapsulation.
    pub const IPV6: u8 = 41;
    /// IPv6 routing header (RFC 8200 §4.4).
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment header (RFC 8200 §4.5).
    pub const IPV6_FRAG: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// IPsec ESP.
    pub const ESP: u8 = 50;
    /// IPsec AH.
    pub const AH: u8 = 51;
    /// ICMPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header" (RFC 8200 §4.7).
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 destination options (RFC 8200 §4.6).
    pub const IPV6_OPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// Mobility header (RFC 6275).
    pub const MOBILITY: u8 = 135;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// True for the IPv6 extension headers [`crate::wire::ipv6ext::parse_chain`]
/// walks through: hop-by-hop, routing, fragment, destination options.
pub const fn is_ipv6_ext(next_header: u8) -> bool {
    matches!(
        next_header,
        protocol::HOPOPTS | protocol::IPV6_ROUTE | protocol::IPV6_FRAG | protocol::IPV6_OPTS
    )
}

/// The IP version nibble of the first byte, if there is one.
pub fn version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_header_classification() {
        for p in [0u8, 43, 44, 60] {
            assert!(is_ipv6_ext(p));
        }
        for p in [1u8, 6, 17, 58, 59, 51, 50] {
            assert!(!is_ipv6_ext(p));
        }
    }

    #[test]
    fn version_nibble() {
        assert_eq!(version(&[0x45, 0]), Some(4));
        assert_eq!(version(&[0x60]), Some(6));
        assert_eq!(version(&[]), None);
    }
}
