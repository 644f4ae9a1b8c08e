//! The stateless mapper: RFC 7757 EAMT, RFC 6052 pool6, RFC 6791 pools.

use super::{rfc6052, Config, DropReason, MapCtx, Mapper, Tuple4, Tuple6};
use std::net::{Ipv4Addr, Ipv6Addr};

/// SIIT address mapping over a [`Config`]. Ports are never changed.
#[derive(Debug, Clone, Copy)]
pub struct SiitMapper<'a> {
    cfg: &'a Config,
}

impl<'a> SiitMapper<'a> {
    /// A mapper reading `cfg`.
    pub fn new(cfg: &'a Config) -> Self {
        SiitMapper { cfg }
    }

    /// IPv6 -> IPv4 for one address: EAMT first (RFC 7757 §3.2), then pool6.
    #[inline]
    pub fn addr6to4(&self, a: Ipv6Addr) -> Result<Ipv4Addr, DropReason> {
        if let Some(v4) = self.cfg.eamt.translate6(a) {
            return Ok(v4);
        }
        self.pool6_extract(a)
    }

    /// IPv4 -> IPv6 for one address: EAMT first (RFC 7757 §3.2), then pool6.
    #[inline]
    pub fn addr4to6(&self, a: Ipv4Addr) -> Result<Ipv6Addr, DropReason> {
        if let Some(v6) = self.cfg.eamt.translate4(a) {
            return Ok(v6);
        }
        self.pool6_embed(a)
    }

    #[inline(always)]
    fn pool6_extract(&self, a: Ipv6Addr) -> Result<Ipv4Addr, DropReason> {
        let p = self.cfg.pool6.as_ref().ok_or(DropReason::UntranslatableSource)?;
        let v4 = rfc6052::extract(p, a).ok_or(DropReason::UntranslatableSource)?;
        if !rfc6052::wkp_permits(p, v4, self.cfg.wkp_allow_non_global) {
            return Err(DropReason::WkpNonGlobal);
        }
        Ok(v4)
    }

    #[inline(always)]
    fn pool6_embed(&self, a: Ipv4Addr) -> Result<Ipv6Addr, DropReason> {
        let p = self.cfg.pool6.as_ref().ok_or(DropReason::UntranslatableSource)?;
        if !rfc6052::wkp_permits(p, a, self.cfg.wkp_allow_non_global) {
            return Err(DropReason::WkpNonGlobal);
        }
        rfc6052::embed(p, a).ok_or(DropReason::UntranslatableSource)
    }

    /// RFC 6791: an IPv4 source for an ICMPv6 error whose source has no
    /// mapping. One pool address picked by a hash of the original source
    /// (stable per sender); the translator's own address without a pool.
    fn rfc6791_v4(&self, orig: Ipv6Addr) -> Ipv4Addr {
        match self.cfg.rfc6791_v4 {
            Some(p) => {
                let h = fold_hash(u128::from(orig));
                let off = if p.len == 0 { h } else { h % p.size() };
                Ipv4Addr::from(u32::from(p.addr).wrapping_add(off))
            }
            None => self.cfg.own_v4,
        }
    }

    /// RFC 6791 in the other direction (an IPv6 pool, as Jool offers).
    fn rfc6791_v6(&self, orig: Ipv4Addr) -> Ipv6Addr {
        match self.cfg.rfc6791_v6 {
            Some(p) => {
                let bits = 128 - u32::from(p.len);
                let h = u128::from(fold_hash(u128::from(u32::from(orig))));
                let off = if bits >= 32 { h } else { h % (1u128 << bits) };
                Ipv6Addr::from(u128::from(p.addr) | off)
            }
            None => self.cfg.own_v6,
        }
    }
}

fn fold_hash(x: u128) -> u32 {
    let mut h = (x as u64) ^ ((x >> 64) as u64);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h as u32
}

fn as_dst(e: DropReason) -> DropReason {
    match e {
        DropReason::UntranslatableSource => DropReason::UntranslatableDestination,
        other => other,
    }
}

impl Mapper for SiitMapper<'_> {
    // Ports and identifiers are never changed (see `map_6to4`, `map_4to6`).
    const KEEPS_IDS: bool = true;

    #[inline(always)]
    fn map_6to4(&mut self, t: &Tuple6, ctx: MapCtx) -> Result<Tuple4, DropReason> {
        let src = match self.addr6to4(t.src) {
            Ok(a) => a,
            // RFC 6791: only the source of an ICMP error may be replaced.
            Err(_) if ctx.icmp_error && !ctx.inner => self.rfc6791_v4(t.src),
            Err(e) => return Err(e),
        };
        let dst = self.addr6to4(t.dst).map_err(as_dst)?;
        Ok(Tuple4 { proto: if t.proto == 58 { 1 } else { t.proto }, src, dst, ids: t.ids })
    }

    #[inline(always)]
    fn map_4to6(&mut self, t: &Tuple4, ctx: MapCtx) -> Result<Tuple6, DropReason> {
        // RFC 7757 §4: the hairpinned packet's far-side address (the outer
        // source, or the quoted packet's destination) is expressed with
        // pool6, the near-side one through the EAMT.
        let (src, dst) = if ctx.hairpin {
            let (far, near) = if ctx.inner { (t.dst, t.src) } else { (t.src, t.dst) };
            let far6 = self.pool6_embed(far);
            let near6 = self.addr4to6(near);
            if ctx.inner {
                (near6, far6.map_err(as_dst))
            } else {
                (far6, near6.map_err(as_dst))
            }
        } else {
            (self.addr4to6(t.src), self.addr4to6(t.dst).map_err(as_dst))
        };
        let src = match src {
            Ok(a) => a,
            Err(_) if ctx.icmp_error && !ctx.inner => self.rfc6791_v6(t.src),
            Err(e) => return Err(e),
        };
        Ok(Tuple6 { proto: if t.proto == 1 { 58 } else { t.proto }, src, dst: dst?, ids: t.ids })
    }

    /// Stateless: the mapping itself, unless RFC 7757 §4 hairpins the
    /// packet (translated twice, the general way).
    #[inline(always)]
    fn express_6to4(&mut self, t: &Tuple6, _tcp_flags: u8) -> Option<Tuple4> {
        let t4 = self.map_6to4(t, MapCtx::default()).ok()?;
        (!self.hairpin(t, &t4)).then_some(t4)
    }

    #[inline(always)]
    fn express_4to6(&mut self, t: &Tuple4, _tcp_flags: u8) -> Option<Tuple6> {
        self.map_4to6(t, MapCtx::default()).ok()
    }

    #[inline(always)]
    fn hairpin(&self, t6: &Tuple6, t4: &Tuple4) -> bool {
        // RFC 7757 §4: the destination came from pool6 but its IPv4 form
        // is an EAM, i.e. a host on the IPv6 side.
        // The IPv4 test first: for almost every packet it already fails.
        self.cfg.hairpinning && self.cfg.eamt.covers4(t4.dst) && !self.cfg.eamt.covers6(t6.dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlate::{Eam, Eamt, L4Ids};

    fn cfg() -> Config {
        Config {
            pool6: Some("2001:db8:100::/40".parse().unwrap()),
            eamt: Eamt::new(vec![Eam {
                v6: "2001:db8:3::/120".parse().unwrap(),
                v4: "1.0.0.0/24".parse().unwrap(),
            }])
            .unwrap(),
            rfc6791_v4: Some("203.0.113.8/32".parse().unwrap()),
            own_v4: "198.51.100.1".parse().unwrap(),
            own_v6: "2001:db8:1c0:2:1::".parse().unwrap(),
            ..Config::default()
        }
    }

    fn t6(s: &str, d: &str) -> Tuple6 {
        Tuple6 {
            proto: 17,
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            ids: L4Ids::Ports { src: 1, dst: 2 },
        }
    }

    #[test]
    fn eam_before_pool6_and_6791() {
        let c = cfg();
        let mut m = SiitMapper::new(&c);
        let t = m.map_6to4(&t6("2001:db8:3::8", "2001:db8:1c6:3364:2::"), MapCtx::default()).unwrap();
        assert_eq!(t.src, Ipv4Addr::new(1, 0, 0, 8));
        assert_eq!(t.dst, Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(t.ids, L4Ids::Ports { src: 1, dst: 2 });
        let bad = t6("4000::1", "2001:db8:1c6:3364:2::");
        assert_eq!(m.map_6to4(&bad, MapCtx::default()), Err(DropReason::UntranslatableSource));
        let err = MapCtx { icmp_error: true, ..MapCtx::default() };
        assert_eq!(m.map_6to4(&bad, err).unwrap().src, Ipv4Addr::new(203, 0, 113, 8));
        let bad_dst = t6("2001:db8:3::8", "4000::1");
        assert_eq!(m.map_6to4(&bad_dst, err), Err(DropReason::UntranslatableDestination));
    }

    #[test]
    fn hairpin_rules() {
        let c = cfg();
        let mut m = SiitMapper::new(&c);
        let a = t6("2001:db8:3::8", "2001:db8:101:0:9::");
        let t4 = m.map_6to4(&a, MapCtx::default()).unwrap();
        assert_eq!(t4.dst, Ipv4Addr::new(1, 0, 0, 9));
        assert!(m.hairpin(&a, &t4));
        let hp = MapCtx { hairpin: true, ..MapCtx::default() };
        let back = m.map_4to6(&t4, hp).unwrap();
        assert_eq!(back.src, "2001:db8:101:0:8::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(back.dst, "2001:db8:3::9".parse::<Ipv6Addr>().unwrap());
        let normal = t6("2001:db8:3::8", "2001:db8:1c6:3364:2::");
        let n4 = m.map_6to4(&normal, MapCtx::default()).unwrap();
        assert!(!m.hairpin(&normal, &n4));
    }

    #[test]
    fn wkp_enforced_unless_opted_out() {
        let mut c = cfg();
        c.pool6 = Some(rfc6052::WELL_KNOWN_PREFIX);
        let m = SiitMapper::new(&c);
        assert_eq!(m.addr4to6(Ipv4Addr::new(192, 168, 0, 1)), Err(DropReason::WkpNonGlobal));
        assert!(m.addr4to6(Ipv4Addr::new(8, 8, 8, 8)).is_ok());
        c.wkp_allow_non_global = true;
        let m = SiitMapper::new(&c);
        assert!(m.addr4to6(Ipv4Addr::new(192, 168, 0, 1)).is_ok());
    }
}
