//! Small value types of the configuration, each written as one YAML string.

use super::error::{tagged, Rule};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// Implements serde for a type through its `Display` and `FromStr`, tagging
/// parse failures with `$rule` so the error names the right check.
macro_rules! string_serde {
    ($ty:ty, $rule:expr, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse::<$ty>()
                            .map_err(|why| tagged::<E>($rule, format_args!("{v:?} is not {}: {why}", $what)))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

/// An IPv4 prefix; a bare address means a /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix4(pub Ipv4Net);

/// An IPv6 prefix; a bare address means a /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix6(pub Ipv6Net);

impl Prefix4 {
    /// First address of the prefix.
    pub fn first(&self) -> u32 {
        u32::from(self.0.network())
    }
    /// Last address of the prefix.
    pub fn last(&self) -> u32 {
        u32::from(self.0.broadcast())
    }
    /// Whether the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Prefix4) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
    /// Whether the address is inside the prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.0.contains(&a)
    }
    /// Whether bits after the prefix length are set.
    pub fn has_host_bits(&self) -> bool {
        self.0.addr() != self.0.network()
    }
}

impl Prefix6 {
    /// First address of the prefix.
    pub fn first(&self) -> u128 {
        u128::from(self.0.network())
    }
    /// Last address of the prefix.
    pub fn last(&self) -> u128 {
        u128::from(self.0.broadcast())
    }
    /// Whether the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Prefix6) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
    /// Whether the address is inside the prefix.
    pub fn contains(&self, a: Ipv6Addr) -> bool {
        self.0.contains(&a)
    }
    /// Whether bits after the prefix length are set.
    pub fn has_host_bits(&self) -> bool {
        self.0.addr() != self.0.network()
    }
}

impl FromStr for Prefix4 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            s.parse::<Ipv4Net>().map(Prefix4).map_err(|e| e.to_string())
        } else {
            s.parse::<Ipv4Addr>().map(|a| Prefix4(Ipv4Net::from(a))).map_err(|e| e.to_string())
        }
    }
}

impl FromStr for Prefix6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains('/') {
            s.parse::<Ipv6Net>().map(Prefix6).map_err(|e| e.to_string())
        } else {
            s.parse::<Ipv6Addr>().map(|a| Prefix6(Ipv6Net::from(a))).map_err(|e| e.to_string())
        }
    }
}

impl fmt::Display for Prefix4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Prefix6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

string_serde!(Prefix4, Rule::AddressSyntax, "an IPv4 address or prefix");
string_serde!(Prefix6, Rule::AddressSyntax, "an IPv6 address or prefix");

/// An Ethernet MAC address, written `02:00:5e:10:00:01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Whether this can be a station's own address: not all-zero and not
    /// group (multicast/broadcast, I/G bit set, IEEE 802 §8.2).
    pub fn is_unicast(&self) -> bool {
        self.0 != [0; 6] && self.0[0] & 1 == 0
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or("expected six octets")?;
            if p.len() != 2 {
                return Err("each octet is two hex digits".into());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|e| e.to_string())?;
        }
        if parts.next().is_some() {
            return Err("expected six octets".into());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

string_serde!(MacAddr, Rule::AddressSyntax, "a MAC address");

/// An inclusive range of ports (or ICMP identifiers), written `1024-65535`
/// or a single number. Bounds are checked by validation, not parsing, so
/// that every bad range in a file is reported at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port of the range.
    pub first: u32,
    /// Last port of the range (inclusive).
    pub last: u32,
}

impl PortRange {
    /// `first-last`.
    pub const fn new(first: u32, last: u32) -> Self {
        PortRange { first, last }
    }
    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u32) -> bool {
        self.first <= port && port <= self.last
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("{:?} is not a number", t.trim()));
        match s.split_once('-') {
            Some((a, b)) => Ok(PortRange::new(num(a)?, num(b)?)),
            None => num(s).map(|p| PortRange::new(p, p)),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

string_serde!(PortRange, Rule::PortRange, "a port range like 1024-65535");

/// An IPv4 transport address, written `203.0.113.5#8080`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transport4 {
    /// The address.
    pub addr: Ipv4Addr,
    /// The port (or ICMP identifier); range-checked by validation.
    pub port: u32,
}

/// An IPv6 transport address, written `2001:db8::5#80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transport6 {
    /// The address.
    pub addr: Ipv6Addr,
    /// The port (or ICMP identifier); range-checked by validation.
    pub port: u32,
}

fn split_transport(s: &str) -> Result<(&str, u32), String> {
    let (a, p) = s.rsplit_once('#').ok_or("expected ADDRESS#PORT")?;
    let port = p.parse::<u32>().map_err(|_| format!("port {p:?} is not a number"))?;
    Ok((a.trim_start_matches('[').trim_end_matches(']'), port))
}

impl FromStr for Transport4 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, port) = split_transport(s)?;
        let addr = a.parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
        Ok(Transport4 { addr, port })
    }
}

impl FromStr for Transport6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, port) = split_transport(s)?;
        let addr = a.parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
        Ok(Transport6 { addr, port })
    }
}

impl fmt::Display for Transport4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.addr, self.port)
    }
}

impl fmt::Display for Transport6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.addr, self.port)
    }
}

string_serde!(Transport4, Rule::AddressSyntax, "an IPv4 ADDRESS#PORT");
string_serde!(Transport6, Rule::AddressSyntax, "an IPv6 ADDRESS#PORT");

/// IPv6 Traffic Class of translated IPv4 packets (RFC 7915 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficClass {
    /// Copy the IPv4 TOS octet (the RFC's default).
    #[default]
    Copy,
    /// Always zero (the RFC's "ignore the IPv4 TOS" option).
    Zero,
    /// Always this value.
    Fixed(u8),
}

impl FromStr for TrafficClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "copy" => Ok(TrafficClass::Copy),
            "zero" => Ok(TrafficClass::Zero),
            n => n.parse::<u8>().map(TrafficClass::Fixed).map_err(|_| "expected copy, zero or 0-255".into()),
        }
    }
}

impl fmt::Display for TrafficClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrafficClass::Copy => f.write_str("copy"),
            TrafficClass::Zero => f.write_str("zero"),
            TrafficClass::Fixed(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for TrafficClass {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TrafficClass::Fixed(n) => s.serialize_u8(*n),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for TrafficClass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TrafficClass;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("copy, zero or 0-255")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrafficClass, E> {
                v.parse().map_err(|why| tagged::<E>(Rule::TrafficClass, format_args!("{v:?}: {why}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TrafficClass, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TrafficClass, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// Where session creation/expiry records go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionLog {
    /// Not logged.
    #[default]
    Off,
    /// To standard output (the journal, under systemd).
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

impl FromStr for SessionLog {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(SessionLog::Off),
            "stdout" => Ok(SessionLog::Stdout),
            p if p.starts_with('/') => Ok(SessionLog::File(PathBuf::from(p))),
            _ => Err("a file path must be absolute".into()),
        }
    }
}

impl fmt::Display for SessionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionLog::Off => f.write_str("off"),
            SessionLog::Stdout => f.write_str("stdout"),
            SessionLog::File(p) => write!(f, "{}", p.display()),
        }
    }
}

string_serde!(SessionLog, Rule::SessionLogTarget, "off, stdout or an absolute file path");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_accept_bare_addresses() {
        let p: Prefix4 = "192.0.2.7".parse().unwrap();
        assert_eq!(p.to_string(), "192.0.2.7/32");
        let p: Prefix6 = "2001:db8::/32".parse().unwrap();
        assert_eq!(p.0.prefix_len(), 32);
        assert!("192.0.2.0/33".parse::<Prefix4>().is_err());
        assert!("2001:db8::1/24".parse::<Prefix6>().unwrap().has_host_bits());
    }

    #[test]
    fn prefix_overlap_is_symmetric_and_exact() {
        let a: Prefix4 = "198.51.100.0/25".parse().unwrap();
        let b: Prefix4 = "198.51.100.128/25".parse().unwrap();
        let c: Prefix4 = "198.51.100.127".parse().unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && c.overlaps(&a));
        assert!(!b.overlaps(&c));
    }

    #[test]
    fn mac_parsing() {
        let m: MacAddr = "02:00:5E:10:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:5e:10:00:01");
        assert!(m.is_unicast());
        assert!(!"01:00:5e:00:00:01".parse::<MacAddr>().unwrap().is_unicast());
        assert!(!"00:00:00:00:00:00".parse::<MacAddr>().unwrap().is_unicast());
        assert!("02:00:5e:10:00".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:00:01:02".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:00:1".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:00:zz".parse::<MacAddr>().is_err());
    }

    #[test]
    fn port_ranges_and_transport_addresses() {
        assert_eq!("1024-65535".parse(), Ok(PortRange::new(1024, 65535)));
        assert_eq!("80".parse(), Ok(PortRange::new(80, 80)));
        assert!("a-b".parse::<PortRange>().is_err());
        let t: Transport6 = "[2001:db8::5]#80".parse().unwrap();
        assert_eq!(t.port, 80);
        let t: Transport4 = "203.0.113.5#8080".parse().unwrap();
        assert_eq!(t.to_string(), "203.0.113.5#8080");
        assert!("203.0.113.5:80".parse::<Transport4>().is_err());
    }

    #[test]
    fn traffic_class_and_session_log() {
        assert_eq!("zero".parse(), Ok(TrafficClass::Zero));
        assert_eq!("184".parse(), Ok(TrafficClass::Fixed(184)));
        assert!("256".parse::<TrafficClass>().is_err());
        assert_eq!(
            "/var/log/nat64/sessions.log".parse(),
            Ok(SessionLog::File("/var/log/nat64/sessions.log".into()))
        );
        assert!("sessions.log".parse::<SessionLog>().is_err());
    }
}
