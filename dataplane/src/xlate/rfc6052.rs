//! RFC 6052 IPv4-embedded IPv6 addresses: embedding and extraction at the
//! six allowed prefix lengths, and the well-known-prefix restriction.

use super::prefix::{Prefix4, Prefix6};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The well-known prefix 64:ff9b::/96 (RFC 6052 §2.1).
pub const WELL_KNOWN_PREFIX: Prefix6 =
    Prefix6 { addr: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), len: 96 };

/// True for the prefix lengths RFC 6052 §2.2 allows: 32, 40, 48, 56, 64, 96.
pub const fn valid_len(len: u8) -> bool {
    matches!(len, 32 | 40 | 48 | 56 | 64 | 96)
}

/// Where the IPv4 address sits under a prefix length (RFC 6052 §2.2,
/// bit 0 = the IPv6 address's last bit): its first `hi` bits end at bit 64,
/// right before the u octet (bits 64..71 from the start, never used), the
/// other `32 - hi` end at bit `lo_shift`. Worked on as a `u128` so neither
/// direction moves single bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    hi: u32,
    lo_shift: u32,
}

/// The layout for a valid prefix length (see [`valid_len`]).
#[inline]
const fn layout(len: u8) -> Layout {
    if len >= 96 {
        Layout { hi: 0, lo_shift: 0 }
    } else {
        // 32 -> 32 bits before the u octet, 40 -> 24, ..., 64 -> none.
        let hi = 64 - len as u32;
        Layout { hi, lo_shift: 24 + hi }
    }
}

/// Ones in the low `n` bits, `n` <= 32.
#[inline]
const fn low_bits(n: u32) -> u64 {
    (1u64 << n) - 1
}

/// Embed `v4` in `prefix` (RFC 6052 §2.2). The u octet and the suffix are
/// zero. `None` if the prefix length is not one of the six allowed.
/// The /96 test is inlined into the caller; other lengths are not.
#[inline(always)]
pub fn embed(prefix: &Prefix6, v4: Ipv4Addr) -> Option<Ipv6Addr> {
    if prefix.len == 96 {
        // The common /96 (RFC 6052 §2.2: the address is the last 32 bits,
        // no u octet): one mask and or, no byte shuffling per packet.
        return Some(Ipv6Addr::from_bits(prefix.addr.to_bits() & !0xffff_ffff | u128::from(v4.to_bits())));
    }
    embed_other(prefix, v4)
}

/// [`embed`] for the lengths other than 96.
#[inline(never)]
fn embed_other(prefix: &Prefix6, v4: Ipv4Addr) -> Option<Ipv6Addr> {
    if !valid_len(prefix.len) {
        return None;
    }
    let l = layout(prefix.len);
    let x = u64::from(v4.to_bits());
    let hi = u128::from(x >> (32 - l.hi)) << 64;
    let lo = u128::from(x & low_bits(32 - l.hi)) << l.lo_shift;
    // Everything past the prefix is zero but the address.
    let net = prefix.addr.to_bits() & !(u128::MAX >> prefix.len);
    Some(Ipv6Addr::from_bits(net | hi | lo))
}

/// Extract the IPv4 address embedded in `v6` under `prefix` (RFC 6052
/// §2.2). `None` if `v6` is not inside the prefix or the length is invalid.
/// The u octet and suffix are not checked (§2.2: ignored on receipt).
/// The /96 test is inlined into the caller, as in [`embed`].
#[inline(always)]
pub fn extract(prefix: &Prefix6, v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if prefix.len == 96 {
        // Containment in a /96 is the top 96 bits being equal: one shift,
        // not a mask computed from the length.
        let x = v6.to_bits();
        return ((x ^ prefix.addr.to_bits()) >> 32 == 0).then_some(Ipv4Addr::from_bits(x as u32));
    }
    extract_other(prefix, v6)
}

/// [`extract`] for the lengths other than 96.
#[inline(never)]
fn extract_other(prefix: &Prefix6, v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if !valid_len(prefix.len) || !prefix.contains(v6) {
        return None;
    }
    let l = layout(prefix.len);
    let x = v6.to_bits();
    let hi = ((x >> 64) as u64 & low_bits(l.hi)) << (32 - l.hi);
    let lo = (x >> l.lo_shift) as u64 & low_bits(32 - l.hi);
    Some(Ipv4Addr::from_bits((hi | lo) as u32))
}

/// RFC 6890 special-purpose IPv4 blocks whose "Global" attribute is false,
/// plus multicast (never a unicast global destination).
const NON_GLOBAL_V4: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link local
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 TEST-NET-1
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 TEST-NET-2
    (0xcb00_7100, 24), // 203.0.113.0/24 TEST-NET-3
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved
    (0xffff_ffff, 32), // limited broadcast
];

/// True when `a` is globally reachable unicast (not in any RFC 6890 block
/// marked Global = False, nor multicast).
pub fn is_global_v4(a: Ipv4Addr) -> bool {
    let x = u32::from(a);
    !NON_GLOBAL_V4.iter().any(|&(net, len)| {
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        x & mask == net
    })
}

/// True when `prefix` is (inside) the well-known prefix 64:ff9b::/96.
pub fn is_well_known(prefix: &Prefix6) -> bool {
    prefix.len >= 96 && WELL_KNOWN_PREFIX.contains(prefix.addr)
}

/// Per-address check for the data path: false when `prefix` is the
/// well-known prefix and `v4` is not global. RFC 6052 §3.1: the WKP MUST
/// NOT be used to represent non-global IPv4 addresses. `allow_non_global`
/// is the operator's opt-out (the NAT64 graybox suite pairs the WKP with
/// TEST-NET-1).
#[inline]
pub fn wkp_permits(prefix: &Prefix6, v4: Ipv4Addr, allow_non_global: bool) -> bool {
    allow_non_global || !is_well_known(prefix) || is_global_v4(v4)
}

/// Configuration check the validator calls: with the well-known prefix as
/// pool6, every IPv4 range that will be embedded in it must be global.
/// Returns the first offending range. RFC 6052 §3.1.
pub fn check_wkp_ranges<'a, I>(pool6: &Prefix6, ranges: I, allow_non_global: bool) -> Result<(), Prefix4>
where
    I: IntoIterator<Item = &'a Prefix4>,
{
    if allow_non_global || !is_well_known(pool6) {
        return Ok(());
    }
    for r in ranges {
        // A range is non-global when any of its addresses is: test both
        // ends and every special block that may sit inside it.
        let first = r.addr;
        let last = Ipv4Addr::from(u32::from(r.addr) | !mask(r.len));
        let inner_special = NON_GLOBAL_V4.iter().any(|&(net, _)| r.contains(Ipv4Addr::from(net)));
        if !is_global_v4(first) || !is_global_v4(last) || inner_special {
            return Err(*r);
        }
    }
    Ok(())
}

const fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlate::util::TestRng;

    fn p6(s: &str) -> Prefix6 {
        s.parse().unwrap()
    }

    // RFC 6052 §2.4 table: 192.0.2.33 under 2001:db8::/L for each L.
    const TABLE: [(&str, &str); 6] = [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
    ];

    #[test]
    fn rfc6052_table_every_length() {
        let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
        for (p, a) in TABLE {
            let pre = p6(p);
            let want: Ipv6Addr = a.parse().unwrap();
            assert_eq!(embed(&pre, v4), Some(want), "embed under {p}");
            assert_eq!(extract(&pre, want), Some(v4), "extract under {p}");
        }
        let wkp = embed(&WELL_KNOWN_PREFIX, v4).unwrap();
        assert_eq!(wkp, "64:ff9b::192.0.2.33".parse::<Ipv6Addr>().unwrap());
    }

    /// RFC 6052 §2.2's figure as byte positions of the four octets.
    fn positions(len: u8) -> [usize; 4] {
        match len {
            32 => [4, 5, 6, 7],
            40 => [5, 6, 7, 9],
            48 => [6, 7, 9, 10],
            56 => [7, 9, 10, 11],
            64 => [9, 10, 11, 12],
            _ => [12, 13, 14, 15],
        }
    }

    /// The bit arithmetic agrees with the figure's byte positions, for
    /// every length, random addresses and prefixes, junk in the u octet
    /// and suffix.
    #[test]
    fn bit_layout_agrees_with_byte_positions() {
        let mut rng = TestRng(0x2545_f491_4f6c_dd1d);
        for len in [32u8, 40, 48, 56, 64, 96] {
            for _ in 0..500 {
                let bits = rng.u128();
                let pre = Prefix6 { addr: Ipv6Addr::from_bits(bits & !(u128::MAX >> len)), len };
                let v4 = Ipv4Addr::from_bits(rng.next() as u32);
                let mut want = pre.addr.octets();
                let pos = positions(len);
                for (i, o) in v4.octets().into_iter().enumerate() {
                    want[pos[i]] = o;
                }
                assert_eq!(embed(&pre, v4), Some(Ipv6Addr::from(want)), "/{len} {v4}");
                let mut noisy = want;
                for (i, b) in noisy.iter_mut().enumerate().skip(usize::from(len / 8)) {
                    if !pos.contains(&i) {
                        *b = rng.next() as u8;
                    }
                }
                assert_eq!(extract(&pre, Ipv6Addr::from(noisy)), Some(v4), "/{len} {v4}");
            }
        }
    }

    #[test]
    fn slash96_shortcut_places_the_last_four_octets() {
        let pre = p6("2001:db8:64::/96");
        for v4 in [0u32, 1, 0xc000_0221, u32::MAX] {
            let a = embed(&pre, Ipv4Addr::from_bits(v4)).unwrap();
            let mut want = pre.addr.octets();
            want[12..].copy_from_slice(&v4.to_be_bytes());
            assert_eq!(a.octets(), want);
            assert_eq!(extract(&pre, a), Some(Ipv4Addr::from_bits(v4)));
        }
        assert_eq!(extract(&pre, "2001:db8:65::1".parse().unwrap()), None);
    }

    #[test]
    fn u_octet_is_zero_and_ignored() {
        for (p, _) in TABLE {
            let pre = p6(p);
            let a = embed(&pre, Ipv4Addr::new(255, 255, 255, 255)).unwrap();
            if pre.len < 96 {
                assert_eq!(a.octets()[8], 0, "u octet under {p}");
            }
            // Junk in the u octet is ignored on extraction (§2.2).
            let mut b = a.octets();
            if pre.len < 96 {
                b[8] = 0xff;
            }
            assert_eq!(extract(&pre, Ipv6Addr::from(b)), Some(Ipv4Addr::BROADCAST));
        }
    }

    #[test]
    fn invalid_lengths_and_outside() {
        let bad = p6("2001:db8::/33");
        assert_eq!(embed(&bad, Ipv4Addr::LOCALHOST), None);
        assert_eq!(extract(&bad, "2001:db8::1".parse().unwrap()), None);
        let pre = p6("2001:db8:100::/40");
        assert_eq!(extract(&pre, "2001:db9::1".parse().unwrap()), None);
    }

    #[test]
    fn wkp_global_rule() {
        assert!(is_global_v4("8.8.8.8".parse().unwrap()));
        assert!(!is_global_v4("192.0.2.5".parse().unwrap()));
        assert!(!is_global_v4("10.1.2.3".parse().unwrap()));
        assert!(!is_global_v4("100.127.255.255".parse().unwrap()));
        assert!(is_global_v4("100.128.0.0".parse().unwrap()));
        let wkp = WELL_KNOWN_PREFIX;
        let private: Ipv4Addr = "192.168.1.1".parse().unwrap();
        assert!(!wkp_permits(&wkp, private, false));
        assert!(wkp_permits(&wkp, private, true));
        assert!(wkp_permits(&p6("2001:db8::/96"), private, false));
        let ranges: [Prefix4; 2] = ["8.8.8.0/24".parse().unwrap(), "192.0.2.0/24".parse().unwrap()];
        assert_eq!(check_wkp_ranges(&wkp, &ranges, false), Err(ranges[1]));
        assert_eq!(check_wkp_ranges(&wkp, &ranges, true), Ok(()));
        assert_eq!(check_wkp_ranges(&wkp, &ranges[..1], false), Ok(()));
        // A wide range that swallows a special block is refused too.
        let wide: [Prefix4; 1] = ["8.0.0.0/5".parse().unwrap()];
        assert_eq!(check_wkp_ranges(&wkp, &wide, false), Err(wide[0]));
    }
}
