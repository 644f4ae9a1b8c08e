//! IPv4 and IPv6 prefixes: parse, print, containment.

use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a prefix string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// The address part does not parse.
    BadAddress,
    /// The length part does not parse or exceeds the address width.
    BadLength,
    /// Bits are set beyond the prefix length (e.g. `10.0.0.1/8`).
    HostBitsSet,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrefixError::BadAddress => "bad address",
            PrefixError::BadLength => "bad prefix length",
            PrefixError::HostBitsSet => "bits set beyond the prefix length",
        })
    }
}

impl std::error::Error for PrefixError {}

fn split(s: &str, max: u8) -> Result<(&str, u8), PrefixError> {
    match s.split_once('/') {
        None => Ok((s, max)),
        Some((a, l)) => {
            let len: u8 = l.parse().map_err(|_| PrefixError::BadLength)?;
            if len > max {
                return Err(PrefixError::BadLength);
            }
            Ok((a, len))
        }
    }
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

/// An IPv4 prefix (network address and length). Host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix4 {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Prefix4 {
    /// A prefix from parts; `None` if `len > 32` or host bits are set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        if len > 32 || u32::from(addr) & !mask32(len) != 0 {
            return None;
        }
        Some(Prefix4 { addr, len })
    }
    /// True when `a` lies inside the prefix.
    #[inline]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (u32::from(a) ^ u32::from(self.addr)) & mask32(self.len) == 0
    }
    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, o: &Prefix4) -> bool {
        self.contains(o.addr) || o.contains(self.addr)
    }
    /// Number of host bits (32 - len).
    pub fn suffix_len(&self) -> u8 {
        32 - self.len
    }
    /// Number of addresses, saturating at `u32::MAX` for /0.
    pub fn size(&self) -> u32 {
        1u32.checked_shl(u32::from(32 - self.len)).unwrap_or(u32::MAX)
    }
}

impl FromStr for Prefix4 {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (a, len) = split(s.trim(), 32)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| PrefixError::BadAddress)?;
        Prefix4::new(addr, len).ok_or(PrefixError::HostBitsSet)
    }
}

impl fmt::Display for Prefix4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An IPv6 prefix (network address and length). Host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix6 {
    /// Network address.
    pub addr: Ipv6Addr,
    /// Prefix length, 0..=128.
    pub len: u8,
}

impl Prefix6 {
    /// A prefix from parts; `None` if `len > 128` or host bits are set.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        if len > 128 || u128::from(addr) & !mask128(len) != 0 {
            return None;
        }
        Some(Prefix6 { addr, len })
    }
    /// True when `a` lies inside the prefix.
    #[inline]
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        // The differing bits, shifted down past the host part: a /0 shifts
        // everything out (`None`), and contains every address.
        let diff = u128::from(a) ^ u128::from(self.addr);
        diff.checked_shr(128 - u32::from(self.len)).is_none_or(|d| d == 0)
    }
    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, o: &Prefix6) -> bool {
        self.contains(o.addr) || o.contains(self.addr)
    }
    /// Number of host bits (128 - len).
    pub fn suffix_len(&self) -> u8 {
        128 - self.len
    }
}

impl FromStr for Prefix6 {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (a, len) = split(s.trim(), 128)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| PrefixError::BadAddress)?;
        Prefix6::new(addr, len).ok_or(PrefixError::HostBitsSet)
    }
}

impl fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlate::util::TestRng;

    #[test]
    fn parse_display_roundtrip() {
        let p: Prefix4 = "192.0.2.0/24".parse().unwrap();
        assert_eq!(p.to_string(), "192.0.2.0/24");
        let q: Prefix6 = "2001:db8:100::/40".parse().unwrap();
        assert_eq!(q.to_string(), "2001:db8:100::/40");
        let h: Prefix4 = "203.0.113.8".parse().unwrap();
        assert_eq!(h.len, 32);
        let h6: Prefix6 = "2::2".parse().unwrap();
        assert_eq!(h6.len, 128);
    }

    #[test]
    fn parse_rejects() {
        assert_eq!("10.0.0.1/8".parse::<Prefix4>(), Err(PrefixError::HostBitsSet));
        assert_eq!("10.0.0.0/33".parse::<Prefix4>(), Err(PrefixError::BadLength));
        assert_eq!("10.0.0/8".parse::<Prefix4>(), Err(PrefixError::BadAddress));
        assert_eq!("2001:db8::1/64".parse::<Prefix6>(), Err(PrefixError::HostBitsSet));
        assert_eq!("2001:db8::/129".parse::<Prefix6>(), Err(PrefixError::BadLength));
        assert_eq!("x/1".parse::<Prefix6>(), Err(PrefixError::BadAddress));
    }

    /// The shift form of `Prefix6::contains` agrees with masking, at every
    /// length, for addresses inside and just outside.
    #[test]
    fn v6_contains_agrees_with_the_mask_at_every_length() {
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        for len in 0..=128u8 {
            for _ in 0..50 {
                let bits = rng.u128();
                let p = Prefix6 { addr: Ipv6Addr::from(bits & mask128(len)), len };
                let host = rng.u128() & !mask128(len);
                let flip = if len == 0 { 0 } else { 1u128 << (128 - u32::from(len)) };
                for a in [bits, (bits & mask128(len)) | host, bits ^ flip] {
                    let want = (a ^ u128::from(p.addr)) & mask128(len) == 0;
                    assert_eq!(p.contains(Ipv6Addr::from(a)), want, "{p} {}", Ipv6Addr::from(a));
                }
            }
        }
    }

    #[test]
    fn contains_and_overlaps() {
        let p: Prefix4 = "10.0.0.0/24".parse().unwrap();
        assert!(p.contains("10.0.0.255".parse().unwrap()));
        assert!(!p.contains("10.0.1.0".parse().unwrap()));
        let all: Prefix4 = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("255.1.2.3".parse().unwrap()));
        assert!(all.overlaps(&p));
        assert_eq!(all.size(), u32::MAX);
        assert_eq!(p.size(), 256);
        let q: Prefix6 = "2001:db8:3::/120".parse().unwrap();
        assert!(q.contains("2001:db8:3::ff".parse().unwrap()));
        assert!(!q.contains("2001:db8:3::100".parse().unwrap()));
        let r: Prefix6 = "2001:db8::/32".parse().unwrap();
        assert!(r.overlaps(&q) && q.overlaps(&r));
        let s: Prefix6 = "2001:db8:2::/120".parse().unwrap();
        assert!(!s.overlaps(&q));
    }
}
