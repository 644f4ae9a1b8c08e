//! Static routes with longest-prefix match, one table per family.
//!
//! A border NAT64 has a handful of routes (connected subnets, a default, a
//! few more specifics), so a sorted vector scanned from the longest prefix
//! is both the simplest and, at that size, the fastest structure: no
//! pointer chasing, one or two cache lines. Lookups never allocate.

use std::net::{Ipv4Addr, Ipv6Addr};

/// An address family's address as an unsigned integer, for masking.
pub trait RouteAddr: Copy + PartialEq + core::fmt::Debug {
    /// The integer type holding the address.
    type Bits: Copy
        + PartialEq
        + core::ops::BitAnd<Output = Self::Bits>
        + core::ops::Not<Output = Self::Bits>
        + core::ops::Shr<u32, Output = Self::Bits>;
    /// Address width in bits.
    const WIDTH: u8;
    /// The address's bits.
    fn bits(self) -> Self::Bits;
    /// All ones.
    fn ones() -> Self::Bits;
    /// All zeros.
    fn zeros() -> Self::Bits;
}

impl RouteAddr for Ipv4Addr {
    type Bits = u32;
    const WIDTH: u8 = 32;
    fn bits(self) -> u32 {
        u32::from(self)
    }
    fn ones() -> u32 {
        u32::MAX
    }
    fn zeros() -> u32 {
        0
    }
}

impl RouteAddr for Ipv6Addr {
    type Bits = u128;
    const WIDTH: u8 = 128;
    fn bits(self) -> u128 {
        u128::from(self)
    }
    fn ones() -> u128 {
        u128::MAX
    }
    fn zeros() -> u128 {
        0
    }
}

fn mask<A: RouteAddr>(len: u8) -> A::Bits {
    if len == 0 {
        A::zeros()
    } else if len >= A::WIDTH {
        // A host route: shifting by the full width would overflow.
        A::ones()
    } else {
        !(A::ones() >> u32::from(len))
    }
}

/// One route: packets to `prefix/len` leave on interface `iface`, to the
/// gateway `via`, or straight to their destination when `via` is `None`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route<A: RouteAddr> {
    /// Network address.
    pub prefix: A,
    /// Prefix length.
    pub len: u8,
    /// Next hop; `None` for a connected network.
    pub via: Option<A>,
    /// Outgoing interface index.
    pub iface: u16,
}

impl<A: RouteAddr> Route<A> {
    /// True when `dst` is inside this route's prefix.
    #[inline]
    pub fn contains(&self, dst: A) -> bool {
        let m = mask::<A>(self.len);
        dst.bits() & m == self.prefix.bits() & m
    }

    /// The neighbour a packet to `dst` goes to.
    #[inline]
    pub fn next_hop(&self, dst: A) -> A {
        self.via.unwrap_or(dst)
    }
}

/// A routing table for one family.
#[derive(Debug, Clone, Default)]
pub struct RouteTable<A: RouteAddr> {
    routes: Vec<Route<A>>,
    /// `(mask, prefix & mask)` of each route, in the same order, computed
    /// when it is added: matching a packet is then one AND and one compare
    /// per route.
    keys: Vec<(A::Bits, A::Bits)>,
}

impl<A: RouteAddr> RouteTable<A> {
    /// An empty table.
    pub fn new() -> Self {
        RouteTable { routes: Vec::new(), keys: Vec::new() }
    }

    /// Add a route (configuration time). A route to an existing prefix
    /// replaces it.
    pub fn add(&mut self, r: Route<A>) {
        let m = mask::<A>(r.len);
        self.routes.retain(|o| !(o.len == r.len && o.prefix.bits() & m == r.prefix.bits() & m));
        self.routes.push(r);
        // Longest prefix first: the first match is the best match.
        self.routes.sort_by_key(|r| std::cmp::Reverse(r.len));
        self.keys =
            self.routes.iter().map(|r| (mask::<A>(r.len), r.prefix.bits() & mask::<A>(r.len))).collect();
    }

    /// The most specific route to `dst`.
    #[inline]
    pub fn lookup(&self, dst: A) -> Option<&Route<A>> {
        let d = dst.bits();
        self.keys.iter().zip(&self.routes).find(|((m, p), _)| d & *m == *p).map(|(_, r)| r)
    }

    /// All routes, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &Route<A>> {
        self.routes.iter()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r4(p: &str, len: u8, via: Option<&str>, iface: u16) -> Route<Ipv4Addr> {
        Route { prefix: p.parse().unwrap(), len, via: via.map(|v| v.parse().unwrap()), iface }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::new();
        t.add(r4("0.0.0.0", 0, Some("192.0.2.1"), 0));
        t.add(r4("198.51.100.0", 24, None, 1));
        t.add(r4("198.51.100.128", 25, Some("198.51.100.1"), 2));
        let dst = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(t.lookup(dst("198.51.100.200")).unwrap().iface, 2);
        assert_eq!(t.lookup(dst("198.51.100.5")).unwrap().iface, 1);
        assert_eq!(t.lookup(dst("203.0.113.9")).unwrap().iface, 0);
        let r = t.lookup(dst("198.51.100.5")).unwrap();
        assert_eq!(r.next_hop(dst("198.51.100.5")), dst("198.51.100.5"), "connected: the destination itself");
        let r = t.lookup(dst("203.0.113.9")).unwrap();
        assert_eq!(r.next_hop(dst("203.0.113.9")), dst("192.0.2.1"));
    }

    #[test]
    fn no_default_means_no_route() {
        let mut t = RouteTable::new();
        t.add(Route { prefix: "2001:db8:1::".parse::<Ipv6Addr>().unwrap(), len: 48, via: None, iface: 0 });
        assert!(t.lookup("2001:db8:1:2::1".parse().unwrap()).is_some());
        assert!(t.lookup("2001:db8:2::1".parse().unwrap()).is_none());
    }

    #[test]
    fn lookup_agrees_with_a_scan_of_contains() {
        let mut t = RouteTable::new();
        let routes = [
            ("0.0.0.0", 0, 0),
            ("10.0.0.0", 8, 1),
            ("10.1.0.0", 16, 2),
            ("10.1.2.3", 32, 3),
            ("192.0.2.128", 25, 4),
        ];
        for (p, len, iface) in routes {
            t.add(r4(p, len, None, iface));
        }
        let all: Vec<_> = t.iter().copied().collect();
        let mut x = 0x0a01_0203u32;
        for _ in 0..2000 {
            for a in [x, x & 0xffff_00ff, x & 0xff00_ffff | 0x0001_0000, 0xc000_0280 | x & 0x7f] {
                let dst = Ipv4Addr::from(a);
                assert_eq!(t.lookup(dst), all.iter().find(|r| r.contains(dst)), "{dst}");
            }
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        }
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()).unwrap().iface, 3);
    }

    #[test]
    fn same_prefix_replaces() {
        let mut t = RouteTable::new();
        t.add(r4("192.0.2.0", 24, None, 0));
        t.add(r4("192.0.2.7", 24, Some("192.0.2.1"), 3));
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup("192.0.2.9".parse().unwrap()).unwrap().iface, 3);
    }
}
