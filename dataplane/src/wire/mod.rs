//! Zero-copy typed views over packet bytes (smoltcp style): checked once, then infallible accessors.
//!
//! Every header has a `XxxPacket<T: AsRef<[u8]>>` view. `new_checked` runs
//! the length and structural checks once; after that every getter is
//! infallible and cannot index out of bounds. `new_unchecked` skips the
//! checks: its getters may panic on a short buffer, so it is only for bytes
//! the caller has just written or already checked. Setters live in
//! `impl<T: AsRef<[u8]> + AsMut<[u8]>>` and never change the buffer length.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6ext;
pub mod tcp;
pub mod udp;

pub use arp::ArpPacket;
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, VlanTag};
pub use icmpv4::Icmpv4Packet;
pub use icmpv6::{Icmpv6Packet, NdpNeighbor};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use ipv6ext::{parse_chain, Chain, ExtHeader, FragmentHeader};
pub use tcp::TcpPacket;
pub use udp::UdpPacket;

/// Why a buffer was refused by a view's `new_checked` (or by
/// [`parse_chain`]). Each variant is a drop reason with a stable
/// snake_case [`name`](Error::name) for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    Truncated,
    /// A field holds a value the format forbids (e.g. IHL < 5, UDP length < 8,
    /// a hop-by-hop header not first, too many extension headers).
    Malformed,
    /// The IP version nibble is not the one the view expects.
    BadVersion,
    /// Well-formed but outside what this view handles (e.g. ARP for a
    /// hardware type other than Ethernet).
    Unsupported,
}

impl Error {
    /// All variants, for sizing counter arrays.
    pub const ALL: [Error; 4] = [Error::Truncated, Error::Malformed, Error::BadVersion, Error::Unsupported];

    /// Stable snake_case name, used as a metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::BadVersion => "bad_version",
            Error::Unsupported => "unsupported",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}

/// Result of a view constructor.
pub type Result<T> = core::result::Result<T, Error>;

// Big-endian field access shared by the views. They index directly: views
// only call them at offsets their `check_len` has proven to be in bounds.
#[inline(always)]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn get_v4(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[inline(always)]
pub(crate) fn get_v6(b: &[u8], at: usize) -> std::net::Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    std::net::Ipv6Addr::from(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_snake_case_and_unique() {
        let names: Vec<&str> = Error::ALL.iter().map(|e| e.name()).collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        let mut d = names.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), names.len());
        assert_eq!(Error::Truncated.to_string(), "truncated");
    }

    #[test]
    fn field_helpers_are_big_endian() {
        let mut b = [0u8; 8];
        set_u16(&mut b, 1, 0x1234);
        set_u32(&mut b, 3, 0xdead_beef);
        assert_eq!(b, [0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0]);
        assert_eq!(get_u16(&b, 1), 0x1234);
        assert_eq!(get_u32(&b, 3), 0xdead_beef);
        assert_eq!(get_v4(&b, 3), std::net::Ipv4Addr::new(0xde, 0xad, 0xbe, 0xef));
    }

    /// Call every getter of every view that accepts `b`; the point is that
    /// nothing panics whatever the bytes, and that checked views honour
    /// the invariants their docs promise.
    fn walk(b: &[u8]) -> usize {
        let mut n = 0usize;
        if let Ok(p) = Ipv4Packet::new_checked(b) {
            assert!(p.header_len() >= 20 && usize::from(p.total_len()) <= b.len());
            n += p.options().len() + p.payload().len() + usize::from(p.verify_checksum());
            n += usize::from(p.frag_offset_bytes()) + usize::from(p.ttl());
            walk_l4(p.protocol(), p.payload(), &mut n);
        }
        if let Ok(p) = Ipv6Packet::new_checked(b) {
            n += p.payload().len() + p.flow_label() as usize + usize::from(p.traffic_class());
            if let Ok(c) = parse_chain(p.next_header(), p.payload()) {
                assert!(c.upper_offset <= p.payload().len());
                assert!(usize::from(c.count) <= ipv6ext::MAX_EXT_HEADERS);
                if c.has_upper_header() {
                    walk_l4(c.upper_proto, &p.payload()[c.upper_offset..], &mut n);
                }
            }
        }
        if let Ok(f) = EthernetFrame::new_checked(b) {
            n += usize::from(f.ethertype().0) + f.payload().len();
            if let Ok(v) = VlanTag::new_checked(f.payload()) {
                n += usize::from(v.vid()) + usize::from(v.pcp()) + v.payload().len();
            }
            if let Ok(a) = ArpPacket::new_checked(f.payload()) {
                n += usize::from(a.operation()) + a.sender_hw_addr().0.len();
                n += a.target_ip_addr().octets().len();
            }
        }
        if let Ok(h) = ExtHeader::new_checked(b) {
            n += h.data().len() + usize::from(h.segments_left());
        }
        if let Ok(h) = FragmentHeader::new_checked(b) {
            n += h.ident() as usize + usize::from(h.frag_offset_bytes());
        }
        n
    }

    fn walk_l4(proto: u8, b: &[u8], n: &mut usize) {
        use ip::protocol;
        match proto {
            protocol::TCP => {
                if let Ok(t) = TcpPacket::new_checked(b) {
                    *n += t.options().len() + t.payload().len() + usize::from(t.flags());
                    *n += usize::from(t.verify_checksum(0));
                }
            }
            protocol::UDP => {
                if let Ok(u) = UdpPacket::new_checked(b) {
                    *n += u.payload().len() + usize::from(u.verify_checksum(0));
                }
            }
            protocol::ICMP => {
                if let Ok(i) = Icmpv4Packet::new_checked(b) {
                    *n += i.payload().len() + usize::from(i.mtu()) + usize::from(i.pointer());
                    *n += walk(i.payload());
                }
            }
            protocol::ICMPV6 => {
                if let Ok(i) = Icmpv6Packet::new_checked(b) {
                    *n += i.payload().len() + i.mtu() as usize;
                    *n += walk(i.payload());
                }
                if let Ok(nd) = NdpNeighbor::new_checked(b) {
                    *n += usize::from(nd.source_ll_addr().is_some());
                    *n += usize::from(nd.target_ll_addr().is_some());
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_truncation_of_real_packets_is_refused_or_walked() {
        let mut v4 = Vec::new();
        etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 2], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut v4, b"0123456789")
            .unwrap();
        let mut v6 = Vec::new();
        etherparse::PacketBuilder::ipv6([0x20; 16], [0x64; 16], 64)
            .icmpv6_echo_request(1, 2)
            .write(&mut v6, b"abcdef")
            .unwrap();
        for pkt in [&v4, &v6] {
            assert!(walk(pkt) > 0);
            for cut in 0..pkt.len() {
                walk(&pkt[..cut]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn no_view_panics_on_arbitrary_bytes(
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            v in 0u8..3,
        ) {
            let mut b = b;
            // Steer a third of the inputs towards each IP version so the
            // deeper views are reached often.
            let len = b.len();
            match v {
                0 if len >= 20 => {
                    b[0] = 0x45;
                    set_u16(&mut b, 2, len as u16);
                }
                1 if len >= 40 => {
                    b[0] = 0x60 | (b[0] & 0x0f);
                    set_u16(&mut b, 4, (len - 40) as u16);
                }
                _ => {}
            }
            walk(&b);
        }
    }
}
