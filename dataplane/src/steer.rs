//! Steering rules for IPv4 return traffic: which RX queue (worker) a NIC
//! should deliver a packet to, given its destination transport address.
//!
//! Each worker owns a disjoint slice of pool4 ([`Pool4::owner`]). A rule is
//! a match a NIC flow engine (DPDK `rte_flow`) can express: IPv4 destination
//! under a mask, the L4 protocol, the destination port (ICMP identifier)
//! under a mask, and the queue. The rules built here never overlap, so their
//! order and priority do not matter, and every transport address in pool4
//! matches exactly the rule of its owner.
//!
//! Rules are only an optimisation: a packet a rule does not cover (a
//! non-first fragment, an ICMP error, a NIC that refused the rule) still
//! reaches the owner through the software handoff.

use std::net::Ipv4Addr;

use crate::nat64::{Pool4, Proto, Split};

/// One steering rule: packets of `proto` whose destination satisfies
/// `dst & dst_mask == dst` and `port & port_mask == port` go to `queue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SteerRule {
    /// L4 protocol (ICMP: the port is the echo identifier).
    pub proto: Proto,
    /// Destination address, already masked.
    pub dst: Ipv4Addr,
    /// Destination address mask (need not be contiguous).
    pub dst_mask: Ipv4Addr,
    /// Destination port (or identifier), already masked.
    pub port: u16,
    /// Destination port mask; 0 matches any port (no L4 item needed).
    pub port_mask: u16,
    /// RX queue, which is the worker number.
    pub queue: u16,
}

impl SteerRule {
    /// Whether a packet of `proto` to `addr:port` matches.
    pub fn matches(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> bool {
        proto == self.proto
            && addr.to_bits() & self.dst_mask.to_bits() == self.dst.to_bits()
            && port & self.port_mask == self.port
    }

    /// Whether the NIC must look at the L4 header (a port or identifier
    /// match), not only at the IPv4 header.
    pub fn needs_l4(&self) -> bool {
        self.port_mask != 0
    }
}

/// Why no rule list was built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteerError {
    /// The pool would need more rules than the limit.
    TooManyRules {
        /// The limit given.
        limit: usize,
    },
}

impl SteerError {
    /// Stable snake_case name (logs, status).
    pub fn name(&self) -> &'static str {
        match self {
            SteerError::TooManyRules { .. } => "too_many_rules",
        }
    }
}

impl std::fmt::Display for SteerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SteerError::TooManyRules { limit } => write!(f, "pool4 needs more than {limit} steering rules"),
        }
    }
}

/// The smallest set of (value, mask) prefixes whose union is exactly
/// `lo..=hi` (range-to-prefix expansion, at most 30 for 16-bit values).
pub fn port_prefixes(lo: u16, hi: u16) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let (mut lo, hi) = (lo as u32, hi as u32);
    while lo <= hi {
        // The largest aligned power-of-two block starting at `lo` that
        // still ends inside the range.
        let mut size = if lo == 0 { 1u32 << 16 } else { 1u32 << lo.trailing_zeros().min(16) };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, !(size - 1) as u16));
        lo += size;
    }
    out
}

/// What a NIC can match, which decides the shape of the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masks {
    /// Any bit mask on the destination address (mlx5, TC flower): an
    /// address split over a power-of-two worker count takes one rule per
    /// worker and block.
    Any,
    /// Whole addresses only (Intel FDIR accepts zero or full masks): one
    /// rule per address of an address-split block.
    ExactAddresses,
}

/// The rules that steer every transport address of `pool` to its owner's
/// queue (worker `w` reads RX queue `w`). Fails when more than `limit`
/// rules would be needed.
pub fn pool4_rules(pool: &Pool4, masks: Masks, limit: usize) -> Result<Vec<SteerRule>, SteerError> {
    let workers = pool.workers();
    let splits: Vec<Split> = pool.splits().collect();
    let mut out = Vec::new();
    let too_many = SteerError::TooManyRules { limit };
    for s in &splits {
        let n_addr = 1u64 << (32 - s.prefix_len);
        let prefix_mask = u32::MAX.checked_shl(32 - s.prefix_len as u32).unwrap_or(0);
        let base = s.base.to_bits();
        // A block alone on its addresses (for its protocol) may claim the
        // ports outside its range too: nothing else owns them there, so
        // fewer, wider rules do.
        let alone = !splits.iter().any(|o| {
            o != s && o.proto == s.proto && {
                let (a0, a1) = (base as u64, base as u64 + n_addr);
                let b0 = o.base.to_bits() as u64;
                let b1 = b0 + (1u64 << (32 - o.prefix_len));
                a0 < b1 && b0 < a1
            }
        });
        let mut push = |r: SteerRule| {
            if out.len() >= limit {
                return Err(too_many);
            }
            out.push(r);
            Ok(())
        };
        let rule = |dst: u32, dst_mask: u32, (port, port_mask): (u16, u16), queue: u16| SteerRule {
            proto: s.proto,
            dst: Ipv4Addr::from_bits(dst & dst_mask),
            dst_mask: Ipv4Addr::from_bits(dst_mask),
            port: port & port_mask,
            port_mask,
            queue,
        };
        if s.by_addr {
            let ports = if alone { vec![(0, 0)] } else { port_prefixes(s.port_min, s.port_max) };
            if workers.is_power_of_two() && masks == Masks::Any {
                // Address i goes to worker i % workers: its low bits.
                let low = workers as u32 - 1;
                for w in 0..workers {
                    for &p in &ports {
                        push(rule(base + w as u32, prefix_mask | low, p, w))?;
                    }
                }
            } else {
                // No mask expresses i % 3 (or the NIC takes none): one
                // rule per address.
                if n_addr.saturating_mul(ports.len() as u64) > limit as u64 {
                    return Err(too_many);
                }
                for i in 0..n_addr as u32 {
                    for &p in &ports {
                        push(rule(base + i, u32::MAX, p, (i % workers as u32) as u16))?;
                    }
                }
            }
        } else {
            // Deterministic blocks repeat the worker split in every client
            // range: rules for each (usually more than a NIC holds, and
            // then the software handoff steers).
            let last = s.periods().last().unwrap_or(0);
            for off in s.periods() {
                for w in 0..workers {
                    let (lo, hi) = s.worker_ports(w, workers);
                    let (mut lo, mut hi) = (lo as u32 + off, hi as u32 + off);
                    if alone && w == 0 && off == 0 {
                        lo = 0;
                    }
                    if alone && w + 1 == workers && off == last {
                        hi = u16::MAX as u32;
                    }
                    for p in port_prefixes(lo as u16, hi as u16) {
                        push(rule(base, prefix_mask, p, w))?;
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat64::Pool4Entry;
    use proptest::prelude::*;

    /// A pool of one entry split over `workers`.
    fn one_entry(proto: Proto, a: [u8; 4], len: u8, ports: (u16, u16), workers: u16) -> Pool4 {
        let entry =
            Pool4Entry { port_min: ports.0, port_max: ports.1, ..Pool4Entry::new(proto, a.into(), len) };
        Pool4::new(&[entry], workers).unwrap()
    }

    #[test]
    fn prefixes_cover_exactly_the_range() {
        assert_eq!(port_prefixes(0, 65535), vec![(0, 0)]);
        assert_eq!(port_prefixes(7, 7), vec![(7, 0xffff)]);
        let p = port_prefixes(1024, 65535);
        assert_eq!(p.len(), 6, "{p:?}");
        for (lo, hi) in [(0u16, 0u16), (1, 3000), (1501, 3000), (5, 6), (32767, 32768), (65535, 65535)] {
            let p = port_prefixes(lo, hi);
            assert!(p.len() <= 30);
            for port in 0..=u16::MAX {
                let n = p.iter().filter(|(v, m)| port & m == *v).count();
                assert_eq!(n, usize::from(port >= lo && port <= hi), "{lo}-{hi} at {port}: {p:?}");
            }
        }
    }

    #[test]
    fn address_split_uses_low_address_bits() {
        let pool = one_entry(Proto::Udp, [198, 51, 100, 0], 30, (1024, 65535), 2);
        let r = pool4_rules(&pool, Masks::Any, 100).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].dst, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(r[1].dst_mask, Ipv4Addr::new(255, 255, 255, 253));
        assert_eq!((r[1].port_mask, r[1].queue), (0, 1));
        let exact = pool4_rules(&pool, Masks::ExactAddresses, 100).unwrap();
        let owners: Vec<(Ipv4Addr, u16)> = exact.iter().map(|x| (x.dst, x.queue)).collect();
        let a = |i| Ipv4Addr::new(198, 51, 100, i);
        assert_eq!(owners, vec![(a(0), 0), (a(1), 1), (a(2), 0), (a(3), 1)]);
    }

    #[test]
    fn address_split_over_three_workers_is_one_rule_per_address() {
        let pool = one_entry(Proto::Tcp, [198, 51, 100, 0], 29, (0, 65535), 3);
        let r = pool4_rules(&pool, Masks::Any, 100).unwrap();
        assert_eq!(r.len(), 8);
        assert!(r.iter().all(|x| x.dst_mask == Ipv4Addr::BROADCAST));
        assert_eq!(pool4_rules(&pool, Masks::Any, 7), Err(SteerError::TooManyRules { limit: 7 }));
        let big = one_entry(Proto::Tcp, [10, 0, 0, 0], 16, (80, 80), 3);
        assert_eq!(pool4_rules(&big, Masks::Any, 4096).unwrap_err().name(), "too_many_rules");
    }

    #[test]
    fn port_split_alone_extends_to_the_whole_port_space() {
        let pool = one_entry(Proto::Udp, [192, 0, 2, 2], 32, (1, 3000), 2);
        let r = pool4_rules(&pool, Masks::Any, 100).unwrap();
        let a = Ipv4Addr::new(192, 0, 2, 2);
        // Worker 0 owns 1-1500, worker 1 1501-3000; 0 and 3001+ are free.
        let q = |port| r.iter().find(|x| x.matches(Proto::Udp, a, port)).map(|x| x.queue);
        assert_eq!((q(0), q(1500), q(1501), q(65535)), (Some(0), Some(0), Some(1), Some(1)));
        assert!(r.iter().all(|x| x.needs_l4()));
        // The figures operations.md quotes for one /32 with default ports.
        for (workers, n) in [(2, 8), (4, 21), (8, 46)] {
            let pool = one_entry(Proto::Tcp, [192, 0, 2, 2], 32, (1024, 65535), workers);
            assert_eq!(pool4_rules(&pool, Masks::Any, 100).unwrap().len(), n, "{workers} workers");
        }
        let pool = one_entry(Proto::Tcp, [198, 51, 100, 0], 24, (1024, 65535), 4);
        assert_eq!(pool4_rules(&pool, Masks::Any, 1000).unwrap().len(), 4);
        assert_eq!(pool4_rules(&pool, Masks::ExactAddresses, 1000).unwrap().len(), 256);
    }

    /// Pool entries inside 198.51.100.0/24 that `Pool4::new` accepts
    /// together (overlapping candidates are skipped).
    fn pool_entries() -> impl Strategy<Value = Vec<Pool4Entry>> {
        let entry = (0usize..3, 0u8..4, 26u8..=32, any::<u8>(), any::<u16>(), any::<u16>(), any::<bool>());
        proptest::collection::vec(entry, 1..6).prop_map(|v| {
            let mut kept: Vec<Pool4Entry> = Vec::new();
            for (p, slot, len, off, a, b, full) in v {
                let size = 1u32 << (32 - len);
                let off = (off as u32 % 64) / size * size;
                let base = Ipv4Addr::new(198, 51, 100, 0).to_bits() + slot as u32 * 64 + off;
                let (lo, hi) = if full { (0, 65535) } else { (a.min(b), a.max(b)) };
                let cand = Pool4Entry {
                    proto: Proto::ALL[p],
                    prefix: Ipv4Addr::from_bits(base),
                    prefix_len: len,
                    port_min: lo,
                    port_max: hi,
                };
                let mut next = kept.clone();
                next.push(cand);
                if Pool4::new(&next, 1).is_ok() {
                    kept = next;
                }
            }
            kept
        })
    }

    proptest! {
            #[test]
            fn every_pool_address_matches_exactly_its_owners_rule(
                entries in pool_entries(),
                workers in 1u16..=6,
                extra_ports in proptest::collection::vec(any::<u16>(), 8),
                exact in any::<bool>(),
            ) {
                let Ok(pool) = Pool4::new(&entries, workers) else { return Ok(()) };
                let masks = if exact { Masks::ExactAddresses } else { Masks::Any };
                let rules = pool4_rules(&pool, masks, 1 << 20).unwrap();
                if exact {
                    // Address rules name whole addresses.
                    prop_assert!(rules.iter().all(|r| r.dst_mask == Ipv4Addr::BROADCAST || r.needs_l4()));
                }
                for s in pool.splits() {
                    let mut ports: Vec<u16> = extra_ports.clone();
                    ports.extend([0, s.port_min, s.port_max, s.port_min.saturating_sub(1), s.port_max.saturating_add(1)]);
                    for w in 0..workers {
                        if !s.by_addr {
                            let (lo, hi) = s.worker_ports(w, workers);
                            ports.extend([lo, hi]);
                        }
                    }
                    for i in 0..(1u32 << (32 - s.prefix_len)) {
                        let addr = Ipv4Addr::from_bits(s.base.to_bits() + i);
                        for &port in &ports {
                            let hits: Vec<&SteerRule> =
                                rules.iter().filter(|r| r.matches(s.proto, addr, port)).collect();
                            // Rules never overlap, whatever the packet.
                            prop_assert!(hits.len() <= 1, "{addr}:{port} {:?}", hits);
                            if let Some(owner) = pool.owner(s.proto, addr, port) {
                                prop_assert_eq!(hits.len(), 1, "{}:{} unsteered", addr, port);
                                prop_assert_eq!(hits[0].queue, owner, "{}:{}", addr, port);
                            }
                        }
                    }
                }
            }

            #[test]
            fn deterministic_pools_steer_every_port_to_its_owner(
                lo in 1024u16..2000,
                span in 64u32..3000,
                period in 4u32..400,
                workers in 1u16..=4,
                ports in proptest::collection::vec(any::<u16>(), 64),
            ) {
                let hi = (lo as u32 + span).min(65535) as u16;
                let e = Pool4Entry { port_min: lo, port_max: hi, ..Pool4Entry::new(Proto::Udp, [192, 0, 2, 8].into(), 31) };
                let Ok(pool) = Pool4::interleaved(&[e], workers, [period, period, period]) else { return Ok(()) };
                let Ok(rules) = pool4_rules(&pool, Masks::Any, 1 << 16) else { return Ok(()) };
                for a in [[192, 0, 2, 8], [192, 0, 2, 9]] {
                    let addr = Ipv4Addr::from(a);
                    for &port in ports.iter().chain(&[lo, hi, lo + period as u16 - 1, lo + period as u16]) {
                        let hits: Vec<&SteerRule> = rules.iter().filter(|r| r.matches(Proto::Udp, addr, port)).collect();
                        prop_assert!(hits.len() <= 1, "{addr}:{port} {:?}", hits);
                        if let Some(owner) = pool.owner(Proto::Udp, addr, port) {
                            prop_assert_eq!(hits.len(), 1, "{}:{} unsteered", addr, port);
                            prop_assert_eq!(hits[0].queue, owner, "{}:{}", addr, port);
                        }
                    }
                }
            }
    }
}
