//! Why the translator did not forward a packet.

/// Every reason a packet ends in a drop (or is answered with an ICMP error
/// instead of being forwarded). Names are stable metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than its headers or than its length fields say.
    Truncated,
    /// A header field holds a value the format forbids.
    Malformed,
    /// The version nibble is not the family the entry point expects.
    BadVersion,
    /// The IPv4 header checksum does not verify.
    BadIpv4Checksum,
    /// An ICMP error's checksum does not verify (it would be recomputed,
    /// hiding the corruption, so it is dropped instead).
    BadIcmpChecksum,
    /// IPv6 jumbograms (payload length 0 with a jumbo option) are not handled.
    Jumbogram,
    /// Too many extension headers, or a header repeated where it may not be.
    BadExtensionChain,
    /// TTL / hop limit would reach zero (RFC 7915 §4.1, §5.1).
    HopLimitExceeded,
    /// The source address has no mapping.
    UntranslatableSource,
    /// The destination address has no mapping.
    UntranslatableDestination,
    /// RFC 6052 §3.1: a non-global IPv4 address with the well-known prefix.
    WkpNonGlobal,
    /// An ICMP informational type other than echo (RFC 7915 §4.2, §5.2).
    IcmpInfoUnsupported,
    /// An ICMP error type or code with no counterpart (RFC 7915 §4.2, §5.2).
    IcmpErrorUnsupported,
    /// A Parameter Problem pointer with no counterpart (RFC 7915 Figures 3, 6).
    PointerUntranslatable,
    /// Fragmented ICMP cannot be translated (checksum coverage differs).
    FragmentedIcmp,
    /// An ICMP error quoting another ICMP error.
    NestedIcmpError,
    /// The packet quoted in an ICMP error is unusable.
    BadInnerPacket,
    /// An unexpired IPv4 source route option (RFC 7915 §4.1).
    SourceRoute,
    /// A routing header with segments left (RFC 7915 §5.1).
    RoutingHeader,
    /// A fragment whose fragmentable part holds extension headers that the
    /// IPv4 fragment cannot drop without breaking later offsets.
    ExtensionAfterFragment,
    /// An IPv4 UDP datagram with a zero checksum the policy (or
    /// fragmentation) does not allow to compute (RFC 7915 §4.5).
    UdpZeroChecksum,
    /// Larger than the egress MTU and may not be fragmented.
    PacketTooBig,
    /// Not enough headroom or tailroom in the buffer.
    NoRoom,
    /// The buffer pool is exhausted (fragmentation).
    NoBuffer,
    /// Stateful: no binding or session for a packet that may not create one.
    NoSession,
    /// Stateful: the IPv4 pool has no free address/port.
    PoolExhausted,
    /// Stateful: refused by the filtering policy (RFC 6146 §3.5).
    Filtered,
    /// A protocol number that cannot cross families: IPv4 carrying an IPv6
    /// extension header number or ICMPv6, IPv6 carrying ICMPv4 (or, for the
    /// state engine, a protocol it does not handle).
    ProtocolUnsupported,
}

impl DropReason {
    /// All variants, for sizing counter arrays.
    pub const ALL: [DropReason; 28] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::BadVersion,
        DropReason::BadIpv4Checksum,
        DropReason::BadIcmpChecksum,
        DropReason::Jumbogram,
        DropReason::BadExtensionChain,
        DropReason::HopLimitExceeded,
        DropReason::UntranslatableSource,
        DropReason::UntranslatableDestination,
        DropReason::WkpNonGlobal,
        DropReason::IcmpInfoUnsupported,
        DropReason::IcmpErrorUnsupported,
        DropReason::PointerUntranslatable,
        DropReason::FragmentedIcmp,
        DropReason::NestedIcmpError,
        DropReason::BadInnerPacket,
        DropReason::SourceRoute,
        DropReason::RoutingHeader,
        DropReason::ExtensionAfterFragment,
        DropReason::UdpZeroChecksum,
        DropReason::PacketTooBig,
        DropReason::NoRoom,
        DropReason::NoBuffer,
        DropReason::NoSession,
        DropReason::PoolExhausted,
        DropReason::Filtered,
        DropReason::ProtocolUnsupported,
    ];

    /// Stable snake_case name (metric label).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::BadVersion => "bad_version",
            DropReason::BadIpv4Checksum => "bad_ipv4_checksum",
            DropReason::BadIcmpChecksum => "bad_icmp_checksum",
            DropReason::Jumbogram => "jumbogram",
            DropReason::BadExtensionChain => "bad_extension_chain",
            DropReason::HopLimitExceeded => "hop_limit_exceeded",
            DropReason::UntranslatableSource => "untranslatable_source",
            DropReason::UntranslatableDestination => "untranslatable_destination",
            DropReason::WkpNonGlobal => "wkp_non_global",
            DropReason::IcmpInfoUnsupported => "icmp_info_unsupported",
            DropReason::IcmpErrorUnsupported => "icmp_error_unsupported",
            DropReason::PointerUntranslatable => "pointer_untranslatable",
            DropReason::FragmentedIcmp => "fragmented_icmp",
            DropReason::NestedIcmpError => "nested_icmp_error",
            DropReason::BadInnerPacket => "bad_inner_packet",
            DropReason::SourceRoute => "source_route",
            DropReason::RoutingHeader => "routing_header",
            DropReason::ExtensionAfterFragment => "extension_after_fragment",
            DropReason::UdpZeroChecksum => "udp_zero_checksum",
            DropReason::PacketTooBig => "packet_too_big",
            DropReason::NoRoom => "no_room",
            DropReason::NoBuffer => "no_buffer",
            DropReason::NoSession => "no_session",
            DropReason::PoolExhausted => "pool_exhausted",
            DropReason::Filtered => "filtered",
            DropReason::ProtocolUnsupported => "protocol_unsupported",
        }
    }
}

impl From<crate::wire::Error> for DropReason {
    fn from(e: crate::wire::Error) -> Self {
        match e {
            crate::wire::Error::Truncated => DropReason::Truncated,
            crate::wire::Error::BadVersion => DropReason::BadVersion,
            crate::wire::Error::Malformed | crate::wire::Error::Unsupported => DropReason::Malformed,
        }
    }
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            let n = r.name();
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{n}");
            assert!(seen.insert(n), "duplicate {n}");
        }
    }
}
