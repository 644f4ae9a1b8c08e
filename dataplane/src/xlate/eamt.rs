//! RFC 7757 Explicit Address Mapping Table.
//!
//! Built once at configuration time into two arrays sorted by prefix length
//! (longest first) and address, with the start of each length group noted;
//! a lookup binary-searches each length group in turn, so the first hit is
//! the longest match (RFC 7757 §3.2) and nothing is allocated.

use super::prefix::{Prefix4, Prefix6};
use std::net::{Ipv4Addr, Ipv6Addr};

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

/// The table. Cheap to clone into a configuration snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eamt {
    entries: Vec<Eam>,
    /// Indices into `entries`, sorted by (v4 len desc, v4 addr).
    by4: Vec<u32>,
    /// Start of each v4 length group in `by4` (plus the end).
    groups4: Vec<u32>,
    /// Indices sorted by (v6 len desc, v6 addr).
    by6: Vec<u32>,
    /// Start of each v6 length group in `by6` (plus the end).
    groups6: Vec<u32>,
}

fn groups<F: Fn(u32) -> u8>(order: &[u32], len: F) -> Vec<u32> {
    let mut g = Vec::new();
    let mut prev = None;
    for (i, &e) in order.iter().enumerate() {
        if prev != Some(len(e)) {
            g.push(i as u32);
            prev = Some(len(e));
        }
    }
    g.push(order.len() as u32);
    g
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
        let mut by4: Vec<u32> = (0..entries.len() as u32).collect();
        by4.sort_by_key(|&i| {
            let e = &entries[i as usize];
            (core::cmp::Reverse(e.v4.len), u32::from(e.v4.addr))
        });
        let mut by6: Vec<u32> = (0..entries.len() as u32).collect();
        by6.sort_by_key(|&i| {
            let e = &entries[i as usize];
            (core::cmp::Reverse(e.v6.len), u128::from(e.v6.addr))
        });
        let groups4 = groups(&by4, |i| entries[i as usize].v4.len);
        let groups6 = groups(&by6, |i| entries[i as usize].v6.len);
        Ok(Eamt { entries, by4, groups4, by6, groups6 })
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

    /// Longest-match entry whose IPv4 prefix covers `a`.
    #[inline]
    pub fn lookup4(&self, a: Ipv4Addr) -> Option<&Eam> {
        let x = u32::from(a);
        for w in self.groups4.windows(2) {
            let slice = &self.by4[w[0] as usize..w[1] as usize];
            let len = self.entries[slice[0] as usize].v4.len;
            let key = x & mask32(len);
            if let Ok(k) = slice.binary_search_by_key(&key, |&i| u32::from(self.entries[i as usize].v4.addr))
            {
                return Some(&self.entries[slice[k] as usize]);
            }
        }
        None
    }

    /// Longest-match entry whose IPv6 prefix covers `a`.
    #[inline]
    pub fn lookup6(&self, a: Ipv6Addr) -> Option<&Eam> {
        let x = u128::from(a);
        for w in self.groups6.windows(2) {
            let slice = &self.by6[w[0] as usize..w[1] as usize];
            let len = self.entries[slice[0] as usize].v6.len;
            let key = x & mask128(len);
            if let Ok(k) = slice.binary_search_by_key(&key, |&i| u128::from(self.entries[i as usize].v6.addr))
            {
                return Some(&self.entries[slice[k] as usize]);
            }
        }
        None
    }

    /// RFC 7757 §3.2: IPv6 -> IPv4 through the longest matching EAM. The
    /// IPv4 suffix is the bits right after the IPv6 prefix.
    #[inline]
    pub fn translate6(&self, a: Ipv6Addr) -> Option<Ipv4Addr> {
        let e = self.lookup6(a)?;
        Some(map6to4(e, a))
    }

    /// RFC 7757 §3.2: IPv4 -> IPv6 through the longest matching EAM.
    #[inline]
    pub fn translate4(&self, a: Ipv4Addr) -> Option<Ipv6Addr> {
        let e = self.lookup4(a)?;
        Some(map4to6(e, a))
    }
}

fn map6to4(e: &Eam, a: Ipv6Addr) -> Ipv4Addr {
    let s = u32::from(e.v4.suffix_len());
    if s == 0 {
        return e.v4.addr;
    }
    let shift = 128 - u32::from(e.v6.len) - s;
    let suffix = ((u128::from(a) >> shift) as u32) & !mask32(e.v4.len);
    Ipv4Addr::from(u32::from(e.v4.addr) | suffix)
}

fn map4to6(e: &Eam, a: Ipv4Addr) -> Ipv6Addr {
    let s = u32::from(e.v4.suffix_len());
    if s == 0 {
        return e.v6.addr;
    }
    let shift = 128 - u32::from(e.v6.len) - s;
    let suffix = u128::from(u32::from(a) & !mask32(e.v4.len)) << shift;
    Ipv6Addr::from(u128::from(e.v6.addr) | suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

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
