//! IPv4 ranges that are not globally reachable, after the IANA IPv4
//! Special-Purpose Address Registry (RFC 6890 §2.2.2 and its updates),
//! plus multicast and the reserved class E space, which are not unicast
//! destinations at all. Used for the RFC 6052 §3.1 well-known-prefix rule.

use super::types::Prefix4;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// One non-global block and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct NonGlobal {
    /// The block.
    pub net: Ipv4Net,
    /// Its registry name and defining RFC.
    pub what: &'static str,
}

const fn block(a: u8, b: u8, c: u8, d: u8, len: u8, what: &'static str) -> NonGlobal {
    NonGlobal { net: Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len), what }
}

/// Blocks whose "Globally Reachable" column is False (or that are not
/// unicast). 192.0.0.9/32 and 192.0.0.10/32 are global exceptions inside
/// 192.0.0.0/24, see [`GLOBAL_EXCEPTIONS`].
pub const NON_GLOBAL: &[NonGlobal] = &[
    block(0, 0, 0, 0, 8, "\"this network\" (RFC 791)"),
    block(10, 0, 0, 0, 8, "private use (RFC 1918)"),
    block(100, 64, 0, 0, 10, "shared address space (RFC 6598)"),
    block(127, 0, 0, 0, 8, "loopback (RFC 1122)"),
    block(169, 254, 0, 0, 16, "link local (RFC 3927)"),
    block(172, 16, 0, 0, 12, "private use (RFC 1918)"),
    block(192, 0, 0, 0, 24, "IETF protocol assignments (RFC 6890)"),
    block(192, 0, 2, 0, 24, "documentation TEST-NET-1 (RFC 5737)"),
    block(192, 168, 0, 0, 16, "private use (RFC 1918)"),
    block(198, 18, 0, 0, 15, "benchmarking (RFC 2544)"),
    block(198, 51, 100, 0, 24, "documentation TEST-NET-2 (RFC 5737)"),
    block(203, 0, 113, 0, 24, "documentation TEST-NET-3 (RFC 5737)"),
    block(224, 0, 0, 0, 4, "multicast (RFC 5771)"),
    block(240, 0, 0, 0, 4, "reserved (RFC 1112)"),
];

/// Global single addresses inside a non-global block: PCP anycast
/// (RFC 7723) and TURN anycast (RFC 8155).
pub const GLOBAL_EXCEPTIONS: &[Ipv4Addr] = &[Ipv4Addr::new(192, 0, 0, 9), Ipv4Addr::new(192, 0, 0, 10)];

/// The first non-global block `p` shares an address with, if any; a
/// prefix made only of global exceptions is global.
pub fn non_global_overlap(p: &Prefix4) -> Option<&'static NonGlobal> {
    NON_GLOBAL.iter().find(|b| {
        let b4 = Prefix4(b.net);
        if !p.overlaps(&b4) {
            return false;
        }
        // Overlap that consists only of the exception addresses is fine.
        let lo = p.first().max(b4.first());
        let hi = p.last().min(b4.last());
        let exceptions =
            GLOBAL_EXCEPTIONS.iter().filter(|a| (lo..=hi).contains(&u32::from(**a))).count() as u64;
        u64::from(hi - lo) + 1 > exceptions
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix4 {
        s.parse().unwrap()
    }

    #[test]
    fn documentation_and_private_ranges_are_not_global() {
        for s in [
            "192.0.2.1",
            "198.51.100.0/24",
            "203.0.113.255",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.1.0/24",
            "100.127.0.1",
            "127.0.0.1",
            "169.254.9.9",
            "198.19.0.0/16",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
        ] {
            assert!(non_global_overlap(&p(s)).is_some(), "{s}");
        }
    }

    #[test]
    fn public_ranges_are_global() {
        for s in [
            "8.8.8.8",
            "1.0.0.0/8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.0/11",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "192.0.0.9",
            "192.0.0.10",
        ] {
            assert!(non_global_overlap(&p(s)).is_none(), "{s}");
        }
    }

    #[test]
    fn a_prefix_touching_a_non_global_block_is_reported() {
        // 172.0.0.0/8 covers 172.16.0.0/12.
        let hit = non_global_overlap(&p("172.0.0.0/8")).unwrap();
        assert_eq!(hit.net.to_string(), "172.16.0.0/12");
        // 192.0.0.8/30 holds .9 and .10 (global) but also .8 and .11.
        assert!(non_global_overlap(&p("192.0.0.8/30")).is_some());
    }
}
