//! Translator configuration (immutable snapshot) and per-worker runtime
//! state (ICMP error rate limiter, IPv4 identification counter).

use super::eamt::{Eamt, Overlap};
use super::prefix::{Prefix4, Prefix6};
use super::rfc6052;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What to put in the IPv6 Traffic Class / IPv4 TOS octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TosPolicy {
    /// Copy the other header's octet (RFC 7915 §4.1, §5.1 default).
    #[default]
    Copy,
    /// Always zero.
    Zero,
    /// Always this value.
    Set(u8),
}

impl TosPolicy {
    #[inline]
    pub(crate) fn apply(self, v: u8) -> u8 {
        match self {
            TosPolicy::Copy => v,
            TosPolicy::Zero => 0,
            TosPolicy::Set(x) => x,
        }
    }
}

/// What to do with an IPv4 UDP datagram whose checksum is zero
/// (RFC 7915 §4.5; IPv6 forbids the zero checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpZeroChecksum {
    /// Compute the checksum when the datagram is not fragmented (a fragment
    /// is refused either way: the whole datagram is not at hand).
    Compute,
    /// Refuse it (ICMPv4 "administratively prohibited" to the sender).
    #[default]
    Drop,
}

/// ICMP error rate limit: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpRateLimit {
    /// Sustained errors per second.
    pub per_sec: u32,
    /// Bucket depth.
    pub burst: u32,
}

impl Default for IcmpRateLimit {
    fn default() -> Self {
        IcmpRateLimit { per_sec: 1000, burst: 100 }
    }
}

/// The translator's configuration. Built by the control plane and shared
/// read-only by the workers.
#[derive(Debug, Clone)]
pub struct Config {
    /// RFC 6052 prefix for IPv4-embedded IPv6 addresses.
    pub pool6: Option<Prefix6>,
    /// RFC 7757 explicit address mappings (looked up before pool6).
    pub eamt: Eamt,
    /// RFC 6791 pool: IPv4 sources for translated ICMPv6 errors whose
    /// source has no mapping. Unset: `own_v4`.
    pub rfc6791_v4: Option<Prefix4>,
    /// RFC 6791 counterpart for ICMPv4 errors with an untranslatable
    /// source. Unset: `own_v6`.
    pub rfc6791_v6: Option<Prefix6>,
    /// Smallest MTU assumed on the IPv6 side (RFC 7915 §4.1 fragmentation
    /// of DF=0 packets). At least 1280.
    pub lowest_ipv6_mtu: u16,
    /// Egress MTU towards the IPv6 side.
    pub mtu_ipv6: u16,
    /// Egress MTU towards the IPv4 side.
    pub mtu_ipv4: u16,
    /// IPv6 Traffic Class from IPv4 TOS (RFC 7915 §4.1).
    pub traffic_class: TosPolicy,
    /// IPv4 TOS from IPv6 Traffic Class (RFC 7915 §5.1).
    pub tos: TosPolicy,
    /// IPv4 UDP zero checksum policy (RFC 7915 §4.5).
    pub udp_zero_checksum: UdpZeroChecksum,
    /// Fragment IPv4 DF=0 packets that exceed the IPv6 side's MTU
    /// (RFC 7915 §4.1). Off: they are dropped when over the egress MTU.
    pub fragment_4to6: bool,
    /// The translator's IPv4 address: source of ICMPv4 errors it originates.
    pub own_v4: Ipv4Addr,
    /// The translator's IPv6 address: source of ICMPv6 errors it originates.
    pub own_v6: Ipv6Addr,
    /// Rate limit on ICMP errors the translator originates.
    pub icmp_rate: IcmpRateLimit,
    /// Opt-out of RFC 6052 §3.1 (non-global IPv4 under 64:ff9b::/96).
    pub wkp_allow_non_global: bool,
    /// RFC 7757 §4 hairpinning of IPv6 packets whose IPv4 destination is
    /// an EAM on the IPv6 side.
    pub hairpinning: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pool6: None,
            eamt: Eamt::default(),
            rfc6791_v4: None,
            rfc6791_v6: None,
            lowest_ipv6_mtu: 1280,
            mtu_ipv6: 1500,
            mtu_ipv4: 1500,
            traffic_class: TosPolicy::Copy,
            tos: TosPolicy::Copy,
            udp_zero_checksum: UdpZeroChecksum::Drop,
            fragment_4to6: true,
            own_v4: Ipv4Addr::UNSPECIFIED,
            own_v6: Ipv6Addr::UNSPECIFIED,
            icmp_rate: IcmpRateLimit::default(),
            wkp_allow_non_global: false,
            hairpinning: true,
        }
    }
}

/// A configuration the translator refuses (see [`Config::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// RFC 6052 §2.2: pool6 must be /32, /40, /48, /56, /64 or /96.
    Pool6Length(u8),
    /// RFC 6052 §2.2: bits 64-71 of a /96 pool6 must be zero.
    Pool6UOctet,
    /// RFC 6052 §3.1: the well-known prefix with this non-global range.
    WkpNonGlobal(Prefix4),
    /// Two EAMT entries overlap (longest match would hide one).
    EamtOverlap(Overlap),
    /// An MTU below the protocol minimum (1280 IPv6, 68 IPv4).
    MtuTooSmall,
    /// `own_v4` / `own_v6` unset: errors the translator originates (and
    /// RFC 6791 fallbacks) would carry an unspecified source.
    NoOwnAddress,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Pool6Length(l) => write!(f, "pool6 length /{l} is not one RFC 6052 allows"),
            ConfigError::Pool6UOctet => f.write_str("pool6 /96 has bits 64-71 set (RFC 6052 §2.2)"),
            ConfigError::WkpNonGlobal(p) => {
                write!(f, "64:ff9b::/96 cannot carry non-global {p} (RFC 6052 §3.1)")
            }
            ConfigError::EamtOverlap(Overlap::V4(a, b)) => {
                write!(f, "EAM #{a} and #{b} overlap on the IPv4 side")
            }
            ConfigError::EamtOverlap(Overlap::V6(a, b)) => {
                write!(f, "EAM #{a} and #{b} overlap on the IPv6 side")
            }
            ConfigError::MtuTooSmall => f.write_str("MTU below 1280 (IPv6) or 68 (IPv4)"),
            ConfigError::NoOwnAddress => {
                f.write_str("the translator's own IPv4 and IPv6 addresses must be set")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The checks the configuration validator runs before a snapshot is
    /// published. `extra_v4` are further IPv4 ranges that will be embedded
    /// in pool6 (a stateful pool4), checked against RFC 6052 §3.1 with the
    /// EAMT's ranges unless `wkp_allow_non_global` is set.
    pub fn validate(&self, extra_v4: &[Prefix4]) -> Result<(), ConfigError> {
        if let Some(p) = self.pool6 {
            if !rfc6052::valid_len(p.len) {
                return Err(ConfigError::Pool6Length(p.len));
            }
            if p.len == 96 && p.addr.octets()[8] != 0 {
                return Err(ConfigError::Pool6UOctet);
            }
            let eams = self.eamt.entries().iter().map(|e| &e.v4);
            rfc6052::check_wkp_ranges(&p, eams.chain(extra_v4), self.wkp_allow_non_global)
                .map_err(ConfigError::WkpNonGlobal)?;
        }
        if let Some(o) = self.eamt.find_overlap() {
            return Err(ConfigError::EamtOverlap(o));
        }
        if self.lowest_ipv6_mtu < 1280 || self.mtu_ipv6 < 1280 || self.mtu_ipv4 < 68 {
            return Err(ConfigError::MtuTooSmall);
        }
        if self.own_v4.is_unspecified() || self.own_v6.is_unspecified() {
            return Err(ConfigError::NoOwnAddress);
        }
        Ok(())
    }
}

/// Per-worker mutable state the translator needs. The caller sets `now_ms`
/// (from its own clock, once per burst); nothing here reads a clock.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    /// Current time in milliseconds (any monotonic origin): the unit the
    /// caller has, converted only where an ICMP error is rate-limited, not
    /// once per packet.
    pub now_ms: u64,
    tokens_milli: u64,
    last_ns: u64,
    started: bool,
    next_id: u16,
    /// ICMP errors not sent because of the rate limit.
    pub errors_suppressed: u64,
}

impl Runtime {
    /// A runtime whose identification counter starts at `seed` (give each
    /// worker a different seed).
    pub fn new(seed: u16) -> Self {
        Runtime { next_id: seed, ..Default::default() }
    }

    /// Next IPv4 identification for an unfragmented DF=0 packet
    /// (RFC 6864: unique per source/destination/protocol while in flight).
    #[inline]
    pub(crate) fn next_ip_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Token bucket: true when one more error may be sent now.
    pub fn allow_error(&mut self, lim: &IcmpRateLimit) -> bool {
        let cap = u64::from(lim.burst) * 1000;
        let now_ns = self.now_ms.saturating_mul(1_000_000);
        if !self.started {
            self.started = true;
            self.tokens_milli = cap;
            self.last_ns = now_ns;
        }
        let dt = now_ns.saturating_sub(self.last_ns);
        // tokens are counted in thousandths; per_sec tokens per 1e9 ns.
        let add = (u128::from(dt) * u128::from(lim.per_sec) / 1_000_000) as u64;
        if add > 0 {
            self.tokens_milli = (self.tokens_milli.saturating_add(add)).min(cap);
            self.last_ns = now_ns;
        }
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            self.errors_suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refills_with_time() {
        let lim = IcmpRateLimit { per_sec: 10, burst: 2 };
        let mut rt = Runtime::new(0);
        rt.now_ms = 5_000;
        assert!(rt.allow_error(&lim));
        assert!(rt.allow_error(&lim));
        assert!(!rt.allow_error(&lim));
        assert_eq!(rt.errors_suppressed, 1);
        rt.now_ms += 50; // 0.05 s: half a token
        assert!(!rt.allow_error(&lim));
        rt.now_ms += 60; // now > 1 token
        assert!(rt.allow_error(&lim));
        rt.now_ms += 10_000; // long pause: capped at burst
        assert!(rt.allow_error(&lim));
        assert!(rt.allow_error(&lim));
        assert!(!rt.allow_error(&lim));
    }

    #[test]
    fn validate_catches_bad_configs() {
        use crate::xlate::Eam;
        let eam = |v6: &str, v4: &str| Eam { v6: v6.parse().unwrap(), v4: v4.parse().unwrap() };
        let mut c = Config { pool6: Some("2001:db8:100::/40".parse().unwrap()), ..Config::default() };
        assert_eq!(c.validate(&[]), Err(ConfigError::NoOwnAddress));
        c.own_v4 = "198.51.100.1".parse().unwrap();
        c.own_v6 = "2001:db8::1".parse().unwrap();
        assert_eq!(c.validate(&[]), Ok(()));
        c.pool6 = Some("2001:db8::/44".parse().unwrap());
        assert_eq!(c.validate(&[]), Err(ConfigError::Pool6Length(44)));
        c.pool6 = Some("2001:db8:0:0:ff00::/96".parse().unwrap());
        assert_eq!(c.validate(&[]), Err(ConfigError::Pool6UOctet));
        c.pool6 = Some(rfc6052::WELL_KNOWN_PREFIX);
        let pool4: Prefix4 = "192.0.2.0/24".parse().unwrap();
        assert_eq!(c.validate(&[pool4]), Err(ConfigError::WkpNonGlobal(pool4)));
        c.wkp_allow_non_global = true;
        assert_eq!(c.validate(&[pool4]), Ok(()));
        c.eamt =
            Eamt::new(vec![eam("2001:db8:3::/120", "1.0.0.0/24"), eam("2001:db8:4::/120", "1.0.0.0/25")])
                .unwrap();
        assert_eq!(c.validate(&[]), Err(ConfigError::EamtOverlap(Overlap::V4(0, 1))));
        c.eamt = Eamt::default();
        c.lowest_ipv6_mtu = 1000;
        assert_eq!(c.validate(&[]), Err(ConfigError::MtuTooSmall));
        assert!(ConfigError::MtuTooSmall.to_string().contains("1280"));
    }

    #[test]
    fn policies() {
        assert_eq!(TosPolicy::Copy.apply(0xb8), 0xb8);
        assert_eq!(TosPolicy::Zero.apply(0xb8), 0);
        assert_eq!(TosPolicy::Set(0x20).apply(0xb8), 0x20);
        let c = Config::default();
        assert_eq!(c.lowest_ipv6_mtu, 1280);
        assert!(c.fragment_4to6);
        let mut rt = Runtime::new(u16::MAX);
        assert_eq!(rt.next_ip_id(), 0);
        assert_eq!(rt.next_ip_id(), 1);
    }
}
