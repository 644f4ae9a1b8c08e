//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are carried as `u32` partial sums: any `u32` whose [`fold`] is the
//! ones'-complement 16-bit sum of the data. Partial sums of consecutive
//! pieces may be chained through `initial` as long as every piece but the
//! last has an even length (an odd piece would shift the byte pairing).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones'-complement sum of `data` (big-endian 16-bit words, an odd last byte
/// padded with zero) added to `initial`.
///
/// Works 8 bytes at a time in native byte order: RFC 1071 §2(B) shows the
/// sum is independent of word size and byte order up to a final byte swap.
/// Each 64-bit word is split into 32-bit halves added into a 64-bit
/// accumulator, which cannot overflow below 2^32 words and has no carry
/// chain, so the loop vectorises.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    // The tail in 4-, 2- and 1-byte pieces, each in its native lane (no
    // copy into a padded buffer: 20-byte IPv4 headers end here).
    let mut rest = chunks.remainder();
    if let [a, b, c, d, tail @ ..] = rest {
        acc += u64::from(u32::from_ne_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    if let [a, b, tail @ ..] = rest {
        acc += u64::from(u16::from_ne_bytes([*a, *b]));
        rest = tail;
    }
    if let [a] = rest {
        // An odd last byte is the high half of its big-endian word.
        acc += u64::from(u16::from_ne_bytes([*a, 0]));
    }
    // Fold to 16 bits in native lanes, then back to network order.
    let mut s = (acc & 0xffff_ffff) + (acc >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    let be = u16::from_be(s as u16);
    let (r, carry) = initial.overflowing_add(u32::from(be));
    r + u32::from(carry)
}

/// Fold a partial sum to 16 bits (end-around carry). Two rounds suffice
/// for any `u32`: the first leaves at most 0x1fffe, the second 0xffff.
///
/// Written as one add with carry: `hi + lo` carries at most once and the
/// carry added back cannot carry again (`hi + lo - 2^16 <= 0xfffe`).
#[inline(always)]
pub const fn fold(s: u32) -> u16 {
    let (x, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    x + carry as u16
}

/// Fold a wide partial sum (a `u64` of 16- or 32-bit words) straight to
/// 16 bits: `fold(fold64(s))` as two adds with carry (32 then 16 bits;
/// as in [`fold`], the carry added back cannot carry again).
#[inline(always)]
pub const fn fold_wide(s: u64) -> u16 {
    let (x, carry) = (s as u32).overflowing_add((s >> 32) as u32);
    fold(x + carry as u32)
}

/// Reduce a sum of 32-bit words to a partial sum (`u32`). A 32-bit word
/// is two 16-bit words and 2^16 = 1 in ones'-complement arithmetic, so
/// summing whole 32-bit words needs no byte shuffling (RFC 1071 §2(B)).
#[inline(always)]
const fn fold64(s: u64) -> u32 {
    let s = (s & 0xffff_ffff) + (s >> 32);
    ((s & 0xffff) + (s >> 16)) as u32
}

/// The 32-bit words of an IPv6 address, summed (below 2^34): a wide
/// partial sum for [`update_wide`].
#[inline(always)]
pub const fn words6(a: Ipv6Addr) -> u64 {
    let x = a.to_bits();
    (x as u32 as u64) + ((x >> 32) as u32 as u64) + ((x >> 64) as u32 as u64) + ((x >> 96) as u64)
}

/// Partial sum of an IPv4 address pair (the addresses of a
/// pseudo-header), in a few word additions instead of a byte loop.
#[inline(always)]
pub const fn sum_addrs4(a: Ipv4Addr, b: Ipv4Addr) -> u32 {
    fold64(a.to_bits() as u64 + b.to_bits() as u64)
}

/// Partial sum of an IPv6 address pair (the addresses of a pseudo-header).
#[inline(always)]
pub const fn sum_addrs6(a: Ipv6Addr, b: Ipv6Addr) -> u32 {
    fold64(words6(a) + words6(b))
}

/// Fold and complement: the value to store in a checksum field.
#[inline(always)]
pub const fn finish(s: u32) -> u16 {
    !fold(s)
}

/// [`finish`] for UDP: RFC 768 / RFC 8200 §8.1 transmit a computed zero as
/// 0xffff, since zero in the field means "no checksum" (IPv4 only).
#[inline(always)]
pub const fn finish_udp(s: u32) -> u16 {
    match finish(s) {
        0 => 0xffff,
        c => c,
    }
}

/// Sum of the IPv4 pseudo-header (RFC 793 §3.1 / RFC 768): addresses,
/// protocol and the upper-layer length.
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + u32::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, the 32-bit
/// upper-layer length and the next header value of the upper layer.
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    // Below 2^17 + 2^16: the three additions cannot overflow.
    sum_addrs6(src, dst) + (len >> 16) + (len & 0xffff) + u32::from(next_header)
}

/// RFC 1624 eqn 3, `HC' = ~(~HC + ~m + m')`, generalised: `old_sum` is the
/// sum of every word that changed (before), `new_sum` the sum of the same
/// words after. A checksum that was wrong stays exactly as wrong.
///
/// One limit, inherent to any incremental update: when the covered data
/// becomes all zero the right field is 0xffff but this yields 0x0000 (it
/// cannot tell "all zero" from "sums to -0"). Only a message with no
/// pseudo-header can get there (an all-zero ICMPv4 echo); recompute those.
#[inline(always)]
pub const fn update(csum: u16, old_sum: u32, new_sum: u32) -> u16 {
    let s = (!csum) as u32 + (!fold(old_sum)) as u32 + fold(new_sum) as u32;
    !fold(s)
}

/// [`update`] with the old and new words given as wide sums (a `u64` of
/// 16- or 32-bit words, below 2^48: 2^16 = 1 in ones'-complement
/// arithmetic). The new words go into the final sum unfolded, so there is
/// one fold fewer; the old ones are folded first and complemented as in
/// [`update`], which keeps the result equal to it bit for bit (the sum is
/// zero exactly when it is there: new words all zero, the rest all ones).
#[inline(always)]
pub const fn update_wide(csum: u16, old_sum: u64, new_sum: u64) -> u16 {
    let old = fold_wide(old_sum);
    let s = (!csum) as u64 + (!old) as u64 + new_sum;
    !fold_wide(s)
}

/// [`update_wide`] for a UDP checksum, with the rules of [`update_udp`].
#[inline(always)]
pub const fn update_udp_wide(csum: u16, old_sum: u64, new_sum: u64) -> u16 {
    udp_field(csum, update_wide(csum, old_sum, new_sum))
}

/// The UDP checksum field after an update from `csum` to `updated`: a
/// zero field (IPv4 "no checksum") stays zero, a computed zero is sent as
/// 0xffff (RFC 768).
#[inline(always)]
const fn udp_field(csum: u16, updated: u16) -> u16 {
    match (csum, updated) {
        (0, _) => 0,
        (_, 0) => 0xffff,
        (_, c) => c,
    }
}

/// [`update`] for a single 16-bit word changing from `old` to `new`.
#[inline]
pub const fn update_word(csum: u16, old: u16, new: u16) -> u16 {
    update(csum, old as u32, new as u32)
}

/// [`update`] for a UDP checksum: a zero field (IPv4 "no checksum") stays
/// zero, and a result of zero is sent as 0xffff (RFC 768).
#[inline(always)]
pub const fn update_udp(csum: u16, old_sum: u32, new_sum: u32) -> u16 {
    udp_field(csum, update(csum, old_sum, new_sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 reference: 16 bits at a time.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            s += u32::from(data[i]) << 8;
        }
        fold(s)
    }

    fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        assert_eq!(finish(sum(&d, 0)), !0xddf2);
    }

    #[test]
    fn wide_sum_matches_reference_at_every_length() {
        for len in 0..200 {
            let d = pseudo_random(len, len as u32 + 7);
            assert_eq!(fold(sum(&d, 0)), reference(&d), "len {len}");
        }
        // All-ones data stresses the carries.
        let d = vec![0xffu8; 1501];
        assert_eq!(fold(sum(&d, 0)), reference(&d));
        assert_eq!(fold(sum(&d, 0xffff_ffff)), fold(u32::from(reference(&d)) + 0xffff));
    }

    #[test]
    fn chained_even_pieces_equal_whole() {
        let d = pseudo_random(301, 99);
        let whole = fold(sum(&d, 0));
        let chained = fold(sum(&d[100..], sum(&d[..100], 0)));
        assert_eq!(whole, chained);
    }

    #[test]
    fn ipv4_header_known_checksum() {
        // A hand-made header whose checksum (0xb861) is the usual textbook value.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01,
            0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&h, 0)), 0xb861);
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_v4(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2), 17, 12);
        let mut bytes = vec![192, 0, 2, 1, 198, 51, 100, 2, 0, 17, 0, 12];
        assert_eq!(fold(v4), fold(sum(&bytes, 0)));
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "64:ff9b::c633:6402".parse().unwrap();
        let v6 = pseudo_v6(s, d, 58, 0x0001_0008);
        bytes.clear();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 1, 0, 8, 0, 0, 0, 58]);
        assert_eq!(fold(v6), fold(sum(&bytes, 0)));
    }

    #[test]
    fn udp_zero_rule() {
        // A sum of 0xffff complements to 0: UDP must send 0xffff instead.
        assert_eq!(finish(0xffff), 0);
        assert_eq!(finish_udp(0xffff), 0xffff);
        assert_eq!(finish_udp(0x1234), !0x1234);
        assert_eq!(update_udp(0, 1, 2), 0);
    }

    /// Build a 40-byte "packet" with a checksum at 10..12, change words
    /// 12..20 (addresses), and compare incremental vs full recompute.
    #[test]
    fn incremental_matches_recompute() {
        for seed in 1..300u32 {
            let mut p = pseudo_random(40, seed);
            p[10] = 0;
            p[11] = 0;
            let c = finish(sum(&p, 0));
            p[10..12].copy_from_slice(&c.to_be_bytes());
            let old = sum(&p[12..20], 0);
            let new_bytes = pseudo_random(8, seed * 31 + 5);
            p[12..20].copy_from_slice(&new_bytes);
            let c2 = update(c, old, sum(&new_bytes, 0));
            p[10..12].copy_from_slice(&c2.to_be_bytes());
            // Verifying the whole packet gives all ones (RFC 1071).
            assert_eq!(fold(sum(&p, 0)), 0xffff, "seed {seed}");
        }
    }

    #[test]
    fn update_keeps_a_wrong_checksum_exactly_as_wrong() {
        for seed in 1..300u32 {
            let mut p = pseudo_random(40, seed);
            // Deliberately wrong by `seed`.
            let residue_before = fold(sum(&p, 0));
            let old_csum = u16::from_be_bytes([p[10], p[11]]);
            let old = sum(&p[12..20], 0);
            let new_bytes = pseudo_random(8, seed + 1000);
            p[12..20].copy_from_slice(&new_bytes);
            let c2 = update(old_csum, old, sum(&new_bytes, 0));
            p[10..12].copy_from_slice(&c2.to_be_bytes());
            let residue_after = fold(sum(&p, 0));
            // Equal in ones'-complement arithmetic (0 and 0xffff are both zero).
            let norm = |r: u16| if r == 0 { 0xffff } else { r };
            assert_eq!(norm(residue_before), norm(residue_after), "seed {seed}");
        }
    }

    #[test]
    fn all_zero_result_is_the_documented_limit() {
        // ICMPv4 echo reply id 0 seq 0 from an echo request (type 8): the
        // message becomes all zero, which needs 0xffff; the update gives 0.
        let mut m = [8u8, 0, 0, 0, 0, 0, 0, 0];
        let c = finish(sum(&m, 0));
        m[0] = 0;
        assert_eq!(update_word(c, 0x0800, 0), 0x0000);
        assert_eq!(finish(sum(&m, 0)), 0xffff);
    }

    #[test]
    fn address_sums_match_the_byte_sum() {
        let mut extremes = vec![[0u8; 32], [0xff; 32]];
        extremes.extend((1..300u32).map(|seed| {
            let mut b = [0u8; 32];
            b.copy_from_slice(&pseudo_random(32, seed));
            b
        }));
        for b in extremes {
            let a6 = Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).unwrap());
            let b6 = Ipv6Addr::from(<[u8; 16]>::try_from(&b[16..]).unwrap());
            assert_eq!(fold(sum_addrs6(a6, b6)), fold(sum(&b, 0)), "{a6} {b6}");
            let a4 = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            let b4 = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            assert_eq!(fold(sum_addrs4(a4, b4)), fold(sum(&b[..8], 0)), "{a4} {b4}");
            for len in [0, 7, 12, 0x1_0008, u32::MAX] {
                let mut ph = b.to_vec();
                ph.extend_from_slice(&len.to_be_bytes());
                ph.extend_from_slice(&[0, 0, 0, 58]);
                assert_eq!(fold(pseudo_v6(a6, b6, 58, len)), fold(sum(&ph, 0)));
            }
        }
    }

    #[test]
    fn fold_matches_repeated_folding() {
        for s in [0, 1, 0xffff, 0x1_0000, 0x1_fffe, 0xffff_ffff, 0x8000_7fff, 0x1234_5678] {
            let mut r = s;
            while r > 0xffff {
                r = (r & 0xffff) + (r >> 16);
            }
            assert_eq!(u32::from(fold(s)), r, "{s:#x}");
        }
    }

    #[test]
    fn folds_equal_the_two_round_folds() {
        let two_rounds = |s: u32| {
            let s = (s & 0xffff) + (s >> 16);
            ((s & 0xffff) + (s >> 16)) as u16
        };
        let bytes = pseudo_random(8 * 4000, 11);
        let edges = [0, 1, 0xffff, 0x1_0000, 0x1_fffe, 0xffff_ffff, 0x1_0000_0000, 0x3_ffff_fffc, u64::MAX];
        let random = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        for s in edges.into_iter().chain(random) {
            assert_eq!(fold(s as u32), two_rounds(s as u32), "{s:#x}");
            assert_eq!(fold_wide(s), two_rounds(fold64(s)), "{s:#x}");
        }
    }

    #[test]
    fn update_wide_equals_update_bit_for_bit() {
        // Address pairs as the translator sums them: IPv6 (eight 32-bit
        // words) against IPv4 plus ports, random and at the edges (all
        // zero, all ones, checksums 0 and 0xffff).
        let bytes = pseudo_random(40 * 500, 7);
        let edge6 = [Ipv6Addr::UNSPECIFIED, Ipv6Addr::from_bits(u128::MAX)];
        let edge4 = [Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST];
        for (i, c) in bytes.chunks_exact(40).enumerate() {
            let r = |o: usize| u128::from_be_bytes(c[o..o + 16].try_into().unwrap());
            let (mut a6, mut b6) = (Ipv6Addr::from_bits(r(0)), Ipv6Addr::from_bits(r(16)));
            let w = u32::from_be_bytes(c[32..36].try_into().unwrap());
            let (mut a4, mut b4) = (Ipv4Addr::from_bits(w), Ipv4Addr::from_bits(w.rotate_left(7)));
            let mut ids = u32::from(u16::from_be_bytes([c[36], c[37]]));
            let mut csum = u16::from_be_bytes([c[38], c[39]]);
            if i % 5 == 0 {
                (a6, b6, a4, b4) = (edge6[i % 2], edge6[i / 5 % 2], edge4[i % 2], edge4[i / 5 % 2]);
                ids = if i % 3 == 0 { 0 } else { 0x1fffe };
                csum = [0, 0xffff][i / 2 % 2];
            }
            let (w6, w4) = (words6(a6) + words6(b6), u64::from(a4.to_bits()) + u64::from(b4.to_bits()));
            let (s6, s4) = (sum_addrs6(a6, b6) + ids, sum_addrs4(a4, b4) + ids);
            let (w6, w4) = (w6 + u64::from(ids), w4 + u64::from(ids));
            assert_eq!(update_wide(csum, w6, w4), update(csum, s6, s4), "{a6} {b6} {a4} {b4} {csum}");
            assert_eq!(update_wide(csum, w4, w6), update(csum, s4, s6), "{a6} {b6} {a4} {b4} {csum}");
            assert_eq!(update_udp_wide(csum, w6, w4), update_udp(csum, s6, s4));
            assert_eq!(update_udp_wide(csum, w4, w6), update_udp(csum, s4, s6));
        }
    }

    #[test]
    fn update_word_single_change() {
        // Port 1234 -> 40000 in a UDP-ish blob.
        let mut p = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0xab, 0xcd, 0xef, 0x01];
        let c = finish(sum(&p, 0));
        p[0..2].copy_from_slice(&40000u16.to_be_bytes());
        let c2 = update_word(c, 1234, 40000);
        p[6..8].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(fold(sum(&p, 0)), 0xffff);
    }
}
