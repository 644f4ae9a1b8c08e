//! RFC 7757 Explicit Address Mapping Table.
//!
//! Built once at configuration time into two key arrays (one per family)
//! sorted by prefix length (longest first) and address, each key holding
//! its precomputed mask and the constants of its address mapping. A table
//! of up to [`LINEAR_MAX`] entries is scanned in order, so the first hit is
//! the longest match (RFC 7757 §3.2); a larger one binary-searches each
//! length group in turn, longest first. Nothing is allocated per lookup.

use super::prefix::{Prefix4, Prefix6};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Largest table scanned linearly: a few masked compares beat a binary
/// search per length group.
pub const LINEAR_MAX: usize = 8;

/// One EAM: an IPv6 prefix and an IPv4 prefix. The IPv6 suffix is at
/// least as long as the IPv4 one (RFC 7757 §3.2: the IPv4 suffix follows
/// the IPv6 prefix, any bits after it are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eam {
    /// IPv6 side.
    pub v6: Prefix6,
    /// IPv4 side.
    pub v4: Prefix4,
}

/// Why an EAMT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EamtError {
    /// RFC 7757 §3.2: the IPv6 suffix must hold the IPv4 suffix. Carries
    /// the entry index.
    SuffixMismatch(usize),
}

impl core::fmt::Display for EamtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EamtError::SuffixMismatch(i) => {
                write!(f, "EAM #{i}: IPv4 suffix longer than IPv6 suffix")
            }
        }
    }
}

impl std::error::Error for EamtError {}

/// Which side of two entries overlaps (for the validator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The IPv4 prefixes of entries `.0` and `.1` overlap.
    V4(usize, usize),
    /// The IPv6 prefixes of entries `.0` and `.1` overlap.
    V6(usize, usize),
}

const fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

const fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// One entry's address mapping, precomputed (RFC 7757 §3.2: the IPv4
/// suffix sits right after the IPv6 prefix). A full-length IPv4 prefix
/// has no suffix: `host4` is then zero and so is `shift`, so the mapping
/// is the other prefix's address, with no special case per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct EamMap {
    v4: u32,
    v6: u128,
    /// The IPv4 host bits.
    host4: u32,
    /// Where the IPv4 suffix's last bit sits, counted from bit 0 of the
    /// IPv6 address.
    shift: u32,
    /// Index into `entries`.
    entry: u32,
}

impl EamMap {
    fn new(e: &Eam, entry: u32) -> Self {
        let s = u32::from(e.v4.suffix_len());
        let shift = if s == 0 { 0 } else { 128 - u32::from(e.v6.len) - s };
        EamMap { v4: u32::from(e.v4.addr), v6: u128::from(e.v6.addr), host4: !mask32(e.v4.len), shift, entry }
    }

    #[inline(always)]
    fn to4(&self, a: Ipv6Addr) -> Ipv4Addr {
        Ipv4Addr::from(self.v4 | ((a.to_bits() >> self.shift) as u32 & self.host4))
    }

    #[inline(always)]
    fn to6(&self, a: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.v6 | (u128::from(a.to_bits() & self.host4) << self.shift))
    }
}

/// A key of either family (`u32` or `u128` address bits): `x` matches
/// when `x & mask == addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key<T> {
    mask: T,
    addr: T,
    map: EamMap,
}

/// Address bits a [`Key`] works on.
trait Bits: Copy + Ord + core::ops::BitAnd<Output = Self> {
    /// The prefix length of a mask.
    fn mask_len(self) -> u32;
}
impl Bits for u32 {
    fn mask_len(self) -> u32 {
        self.count_ones()
    }
}
impl Bits for u128 {
    fn mask_len(self) -> u32 {
        self.count_ones()
    }
}

/// The table. Cheap to clone into a configuration snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eamt {
    entries: Vec<Eam>,
    /// Keys sorted by (v4 len desc, v4 addr).
    keys4: Vec<Key<u32>>,
    /// Start of each v4 length group in `keys4` (plus the end).
    groups4: Vec<u32>,
    /// Keys sorted by (v6 len desc, v6 addr).
    keys6: Vec<Key<u128>>,
    /// Start of each v6 length group in `keys6` (plus the end).
    groups6: Vec<u32>,
}

/// Sort keys longest prefix first, then by address (the order both lookups
/// rely on), and note where each length group starts (plus the end).
fn sorted<T: Bits>(mut keys: Vec<Key<T>>) -> (Vec<Key<T>>, Vec<u32>) {
    keys.sort_by_key(|k| (core::cmp::Reverse(k.mask.mask_len()), k.addr, k.map.entry));
    let mut g = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i == 0 || keys[i - 1].mask != k.mask {
            g.push(i as u32);
        }
    }
    g.push(keys.len() as u32);
    (keys, g)
}

/// Longest match over keys sorted longest first: a linear scan for a small
/// table, else a binary search per length group (`groups`).
#[inline(always)]
fn find<'k, T: Bits>(keys: &'k [Key<T>], groups: &[u32], x: T) -> Option<&'k EamMap> {
    if keys.len() <= LINEAR_MAX {
        return keys.iter().find(|k| x & k.mask == k.addr).map(|k| &k.map);
    }
    find_grouped(keys, groups, x)
}

/// The binary-search half of [`find`], kept out of line so the small-table
/// scan stays a leaf without register spills.
#[inline(never)]
fn find_grouped<'k, T: Bits>(keys: &'k [Key<T>], groups: &[u32], x: T) -> Option<&'k EamMap> {
    for w in groups.windows(2) {
        let slice = &keys[w[0] as usize..w[1] as usize];
        let key = x & slice[0].mask;
        if let Ok(i) = slice.binary_search_by(|k| k.addr.cmp(&key)) {
            return Some(&slice[i].map);
        }
    }
    None
}

impl Eamt {
    /// Build the table. Overlapping entries are accepted (longest match
    /// wins); the validator may refuse them with [`Eamt::find_overlap`].
    pub fn new(entries: Vec<Eam>) -> Result<Self, EamtError> {
        for (i, e) in entries.iter().enumerate() {
            if e.v6.suffix_len() < e.v4.suffix_len() {
                return Err(EamtError::SuffixMismatch(i));
            }
        }
        let maps = entries.iter().zip(0u32..).map(|(e, i)| (e, EamMap::new(e, i)));
        let keys4 =
            maps.clone().map(|(e, map)| Key { mask: mask32(e.v4.len), addr: u32::from(e.v4.addr), map });
        let (keys4, groups4) = sorted(keys4.collect());
        let keys6 = maps.map(|(e, map)| Key { mask: mask128(e.v6.len), addr: u128::from(e.v6.addr), map });
        let (keys6, groups6) = sorted(keys6.collect());
        Ok(Eamt { entries, keys4, groups4, keys6, groups6 })
    }

    /// The entries, in configuration order.
    pub fn entries(&self) -> &[Eam] {
        &self.entries
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first pair of entries whose IPv4 or IPv6 prefixes overlap.
    pub fn find_overlap(&self) -> Option<Overlap> {
        let e = &self.entries;
        for i in 0..e.len() {
            for j in i + 1..e.len() {
                if e[i].v4.overlaps(&e[j].v4) {
                    return Some(Overlap::V4(i, j));
                }
                if e[i].v6.overlaps(&e[j].v6) {
                    return Some(Overlap::V6(i, j));
                }
            }
        }
        None
    }

    #[inline(always)]
    fn find4(&self, a: Ipv4Addr) -> Option<&EamMap> {
        find(&self.keys4, &self.groups4, a.to_bits())
    }

    #[inline(always)]
    fn find6(&self, a: Ipv6Addr) -> Option<&EamMap> {
        find(&self.keys6, &self.groups6, a.to_bits())
    }

    /// Longest-match entry whose IPv4 prefix covers `a`.
    #[inline]
    pub fn lookup4(&self, a: Ipv4Addr) -> Option<&Eam> {
        self.find4(a).and_then(|m| self.entries.get(m.entry as usize))
    }

    /// Longest-match entry whose IPv6 prefix covers `a`.
    #[inline]
    pub fn lookup6(&self, a: Ipv6Addr) -> Option<&Eam> {
        self.find6(a).and_then(|m| self.entries.get(m.entry as usize))
    }

    /// True when some entry's IPv4 prefix covers `a`.
    #[inline]
    pub fn covers4(&self, a: Ipv4Addr) -> bool {
        self.find4(a).is_some()
    }

    /// True when some entry's IPv6 prefix covers `a`.
    #[inline]
    pub fn covers6(&self, a: Ipv6Addr) -> bool {
        self.find6(a).is_some()
    }

    /// RFC 7757 §3.2: IPv6 -> IPv4 through the longest matching EAM. The
    /// IPv4 suffix is the bits right after the IPv6 prefix.
    #[inline(always)]
    pub fn translate6(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        self.find6(a).map(|m| m.to4(a))
    }

    /// RFC 7757 §3.2: IPv4 -> IPv6 through the longest matching EAM.
    #[inline(always)]
    pub fn translate4(&self, a: Ipv4Addr) -> Option<Ipv6Addr> {
        self.find4(a).map(|m| m.to6(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlate::util::TestRng;

    fn eam(v6: &str, v4: &str) -> Eam {
        Eam { v6: v6.parse().unwrap(), v4: v4.parse().unwrap() }
    }

    fn table() -> Eamt {
        Eamt::new(vec![
            eam("2001:db8:3::/120", "1.0.0.0/24"),
            eam("2001:db8:2::/120", "10.0.0.0/24"),
            eam("2001:db8:1c6:3364::/72", "198.51.100.0/24"),
            eam("2001:db8:1c0:2::/72", "192.0.2.0/24"),
            eam("2001:db8:aaaa::5/128", "1.0.0.5/32"),
        ])
        .unwrap()
    }

    #[test]
    fn both_directions() {
        let t = table();
        let v6: Ipv6Addr = "2001:db8:3::8".parse().unwrap();
        assert_eq!(t.translate6(v6), Some(Ipv4Addr::new(1, 0, 0, 8)));
        assert_eq!(t.translate4(Ipv4Addr::new(1, 0, 0, 8)), Some(v6));
        // Non-/120 layout: the suffix sits right after the /72 prefix.
        let n6: Ipv6Addr = "2001:db8:1c0:2:21::".parse().unwrap();
        assert_eq!(t.translate6(n6), Some(Ipv4Addr::new(192, 0, 2, 33)));
        assert_eq!(t.translate4(Ipv4Addr::new(192, 0, 2, 33)), Some(n6));
        assert_eq!(t.translate4(Ipv4Addr::new(8, 8, 8, 8)), None);
        assert_eq!(t.translate6("2001:db8:4::1".parse().unwrap()), None);
    }

    #[test]
    fn longest_match_wins() {
        let t = table();
        assert_eq!(t.translate4(Ipv4Addr::new(1, 0, 0, 5)), Some("2001:db8:aaaa::5".parse().unwrap()));
        assert_eq!(t.translate4(Ipv4Addr::new(1, 0, 0, 6)), Some("2001:db8:3::6".parse().unwrap()));
        assert_eq!(t.translate6("2001:db8:aaaa::5".parse().unwrap()), Some(Ipv4Addr::new(1, 0, 0, 5)));
    }

    /// The RFC 7757 §3.2 rule written out plainly: the longest prefix that
    /// covers the address, its suffix placed right after the other prefix.
    fn reference4(entries: &[Eam], a: Ipv4Addr) -> Option<Ipv6Addr> {
        let e = entries.iter().filter(|e| e.v4.contains(a)).max_by_key(|e| e.v4.len)?;
        let s = u32::from(e.v4.suffix_len());
        if s == 0 {
            return Some(e.v6.addr);
        }
        let host = u128::from(u32::from(a) & !mask32(e.v4.len));
        Some(Ipv6Addr::from(u128::from(e.v6.addr) | host << (128 - u32::from(e.v6.len) - s)))
    }

    fn reference6(entries: &[Eam], a: Ipv6Addr) -> Option<Ipv4Addr> {
        let e = entries.iter().filter(|e| e.v6.contains(a)).max_by_key(|e| e.v6.len)?;
        let s = u32::from(e.v4.suffix_len());
        if s == 0 {
            return Some(e.v4.addr);
        }
        let host = (u128::from(a) >> (128 - u32::from(e.v6.len) - s)) as u32 & !mask32(e.v4.len);
        Some(Ipv4Addr::from(u32::from(e.v4.addr) | host))
    }

    /// Random entries drawn near two bases per family, so they overlap and
    /// nest; no two share a prefix (the validator refuses that anyway, and
    /// longest match would not say which wins).
    fn random_entries(rng: &mut TestRng, n: usize) -> Vec<Eam> {
        const BASE4: [u32; 2] = [0x0a00_0000, 0xc612_0000];
        const BASE6: [u128; 2] = [0x2001_0db8_0001 << 80, 0x2001_0db8_00ff << 80];
        let mut out: Vec<Eam> = Vec::new();
        while out.len() < n {
            let l4 = [0, 8, 16, 20, 24, 28, 31, 32][rng.below(8) as usize];
            let l6 = (rng.below(u64::from(96 + l4) + 1) as u8).max(32);
            let bits4 = BASE4[rng.below(2) as usize] | (rng.next() as u32 & 0x0003_ffff);
            let bits6 = BASE6[rng.below(2) as usize] | (rng.u128() & ((1 << 84) - 1));
            let v4 = Prefix4 { addr: Ipv4Addr::from(bits4 & mask32(l4)), len: l4 };
            let v6 = Prefix6 { addr: Ipv6Addr::from(bits6 & mask128(l6)), len: l6 };
            if v6.suffix_len() >= v4.suffix_len() && !out.iter().any(|e| e.v4 == v4 || e.v6 == v6) {
                out.push(Eam { v6, v4 });
            }
        }
        out
    }

    /// The linear scan (small tables) and the grouped binary search (large
    /// ones) agree with the plain rule, for tables of every size up to
    /// past the switch, both directions, addresses inside and outside.
    #[test]
    fn lookups_agree_with_the_plain_rule() {
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        for n in (0..=LINEAR_MAX + 4).chain([40]) {
            for _ in 0..20 {
                let entries = random_entries(&mut rng, n);
                let t = Eamt::new(entries.clone()).unwrap();
                for _ in 0..200 {
                    let (a4, a6) = match (entries.is_empty(), rng.below(3)) {
                        (false, 0) => {
                            let e = &entries[rng.below(n as u64) as usize];
                            let a4 = u32::from(e.v4.addr) | (rng.next() as u32 & !mask32(e.v4.len));
                            let a6 = u128::from(e.v6.addr) | (rng.u128() & !mask128(e.v6.len));
                            (Ipv4Addr::from(a4), Ipv6Addr::from(a6))
                        }
                        (_, 1) => (Ipv4Addr::from(rng.next() as u32), Ipv6Addr::from(rng.u128())),
                        _ => {
                            let a4 = 0x0a00_0000 | (rng.next() as u32 & 0x00ff_ffff);
                            let a6 = (0x2001_0db8_0001 << 80) | (rng.u128() & ((1 << 80) - 1));
                            (Ipv4Addr::from(a4), Ipv6Addr::from(a6))
                        }
                    };
                    assert_eq!(t.translate4(a4), reference4(&entries, a4), "{n} entries, {a4}");
                    assert_eq!(t.translate6(a6), reference6(&entries, a6), "{n} entries, {a6}");
                    assert_eq!(t.covers4(a4), t.lookup4(a4).is_some());
                    assert_eq!(t.covers6(a6), t.lookup6(a6).is_some());
                    if let Some(e) = t.lookup4(a4) {
                        assert!(e.v4.contains(a4));
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_mismatch_and_reports_overlap() {
        assert_eq!(Eamt::new(vec![eam("2001:db8::/112", "10.0.0.0/8")]), Err(EamtError::SuffixMismatch(0)));
        assert_eq!(table().find_overlap(), Some(Overlap::V4(0, 4)));
        let clean =
            Eamt::new(vec![eam("2001:db8:3::/120", "1.0.0.0/24"), eam("2001:db8:2::/120", "10.0.0.0/24")])
                .unwrap();
        assert_eq!(clean.find_overlap(), None);
        let v6dup =
            Eamt::new(vec![eam("2001:db8:3::/120", "1.0.0.0/24"), eam("2001:db8:3::/120", "2.0.0.0/24")])
                .unwrap();
        assert_eq!(v6dup.find_overlap(), Some(Overlap::V6(0, 1)));
        assert!(Eamt::default().translate4(Ipv4Addr::LOCALHOST).is_none());
    }
}
