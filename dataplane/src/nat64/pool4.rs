//! pool4: the IPv4 transport addresses the NAT64 masquerades IPv6 clients
//! behind, split into disjoint per-worker slices.
//!
//! Each entry (protocol, prefix, port range) becomes a block. A block with at
//! least as many addresses as workers is split by address (address `i` of
//! the block belongs to worker `i % workers`); a smaller one is split by
//! port (each address's range is cut into `workers` contiguous sub-ranges).
//! In deterministic mode ([`Pool4::interleaved`]) every block is split by
//! port inside each client range instead. Either way [`Pool4::owner`] is a
//! range check plus arithmetic, which lets the dataplane steer an IPv4
//! packet to the worker owning its destination.
//!
//! Inside a worker, the owned transport addresses of one protocol are
//! numbered densely (`slot`), so the IPv4-side BIB index is a flat array.

use super::Proto;
use std::net::Ipv4Addr;

/// Largest number of transport addresses one shard may own per protocol
/// (the IPv4-side index costs 4 bytes each: 512 MiB at this limit).
pub const MAX_SLOTS_PER_PROTO: u64 = 1 << 27;

/// One pool4 entry as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool4Entry {
    /// Protocol the entry serves (TCP, UDP, or ICMP identifiers).
    pub proto: Proto,
    /// First address of the prefix.
    pub prefix: Ipv4Addr,
    /// Prefix length (32 = one address).
    pub prefix_len: u8,
    /// First port (or ICMP identifier), inclusive.
    pub port_min: u16,
    /// Last port (or ICMP identifier), inclusive.
    pub port_max: u16,
}

impl Pool4Entry {
    /// An entry with the default port range 1024-65535.
    pub fn new(proto: Proto, prefix: Ipv4Addr, prefix_len: u8) -> Self {
        Pool4Entry { proto, prefix, prefix_len, port_min: 1024, port_max: 65535 }
    }
}

/// Why a pool4 configuration was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool4Error {
    /// Prefix length above 32, or host bits set.
    BadPrefix,
    /// `port_min > port_max`.
    BadPortRange,
    /// Two entries of one protocol overlap.
    Overlap,
    /// A block has fewer addresses than workers and fewer ports than workers.
    TooSmallForWorkers,
    /// Zero workers.
    NoWorkers,
    /// A shard would own more than [`MAX_SLOTS_PER_PROTO`] addresses:ports.
    TooLarge,
}

#[derive(Clone, Copy, Debug)]
struct Block {
    base: u32,
    n_addr: u32,
    plo: u16,
    phi: u16,
    by_addr: bool,
    /// Ports per worker when split by port.
    chunk: u32,
    /// Deterministic mode: the block's ports are cut into ranges of
    /// `period` ports (one per client) and each range into per-worker
    /// sub-ranges of `chunk` ports; 0 = ordinary split.
    period: u32,
}

/// The whole pool, split over `workers` workers.
#[derive(Clone, Debug)]
pub struct Pool4 {
    workers: u32,
    blocks: [Vec<Block>; 3],
}

impl Pool4 {
    /// Validates `entries` and splits them over `workers`.
    pub fn new(entries: &[Pool4Entry], workers: u16) -> Result<Self, Pool4Error> {
        Self::build(entries, workers, [0; 3])
    }

    /// The split of deterministic mode (RFC 7422): every entry of protocol
    /// `p` is cut into client ranges of `period[p]` ports from its first
    /// port (a trailing part shorter than a range is left out of the pool),
    /// and each client range into `workers` contiguous sub-ranges, worker
    /// `w` owning sub-range `w` of every range (the last worker also takes
    /// the remainder). A client's IPv6 flows may reach any worker (RSS);
    /// each allocates in its own sub-range, and the owner of an IPv4
    /// packet follows from its port's offset inside the client range, so
    /// no IPv6 -> IPv4 handoff is needed.
    pub fn interleaved(entries: &[Pool4Entry], workers: u16, period: [u32; 3]) -> Result<Self, Pool4Error> {
        if period.iter().any(|&r| r != 0 && r < workers as u32) {
            return Err(Pool4Error::TooSmallForWorkers);
        }
        let mut trimmed = Vec::with_capacity(entries.len());
        for e in entries {
            let r = period[e.proto as usize];
            if r == 0 {
                trimmed.push(*e);
                continue;
            }
            let n = (e.port_max as u32).saturating_sub(e.port_min as u32) + 1;
            if e.port_min > e.port_max || n < r {
                return Err(Pool4Error::BadPortRange);
            }
            trimmed.push(Pool4Entry { port_max: (e.port_min as u32 + n / r * r - 1) as u16, ..*e });
        }
        Self::build(&trimmed, workers, period)
    }

    fn build(entries: &[Pool4Entry], workers: u16, period: [u32; 3]) -> Result<Self, Pool4Error> {
        if workers == 0 {
            return Err(Pool4Error::NoWorkers);
        }
        let w = workers as u32;
        let mut blocks: [Vec<Block>; 3] = Default::default();
        for e in entries {
            if e.prefix_len > 32 {
                return Err(Pool4Error::BadPrefix);
            }
            let n_addr: u64 = 1u64 << (32 - e.prefix_len);
            if n_addr == 1 << 32 {
                return Err(Pool4Error::TooLarge);
            }
            let base = e.prefix.to_bits();
            if (base as u64) & (n_addr - 1) != 0 {
                return Err(Pool4Error::BadPrefix);
            }
            if e.port_min > e.port_max {
                return Err(Pool4Error::BadPortRange);
            }
            let nports = (e.port_max - e.port_min) as u32 + 1;
            let period = period[e.proto as usize];
            let by_addr = period == 0 && n_addr >= w as u64;
            if !by_addr && nports < w {
                return Err(Pool4Error::TooSmallForWorkers);
            }
            // Per-shard share: addresses/workers (rounded up) x ports, or
            // all addresses x ports/workers (rounded up).
            let share = if by_addr {
                n_addr.div_ceil(w as u64) * nports as u64
            } else {
                n_addr * (nports.div_ceil(w)) as u64
            };
            let list = &mut blocks[e.proto as usize];
            let already: u64 = list.iter().map(|b| b.share(w)).sum();
            if already + share > MAX_SLOTS_PER_PROTO {
                return Err(Pool4Error::TooLarge);
            }
            let nb = Block {
                base,
                n_addr: n_addr as u32,
                plo: e.port_min,
                phi: e.port_max,
                by_addr,
                chunk: if period == 0 { nports / w } else { period / w },
                period,
            };
            if list.iter().any(|b| b.overlaps(&nb)) {
                return Err(Pool4Error::Overlap);
            }
            list.push(nb);
        }
        Ok(Pool4 { workers: w, blocks })
    }

    /// Number of workers the pool is split over.
    pub fn workers(&self) -> u16 {
        self.workers as u16
    }

    /// The worker owning `addr:port` for `proto`, or `None` when the
    /// transport address is not in pool4.
    #[inline]
    pub fn owner(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> Option<u16> {
        let a = addr.to_bits();
        for b in &self.blocks[proto as usize] {
            if a.wrapping_sub(b.base) < b.n_addr && port >= b.plo && port <= b.phi {
                let w = if b.by_addr {
                    (a - b.base) % self.workers
                } else if b.period != 0 {
                    ((((port - b.plo) as u32) % b.period) / b.chunk).min(self.workers - 1)
                } else {
                    (((port - b.plo) as u32) / b.chunk).min(self.workers - 1)
                };
                return Some(w as u16);
            }
        }
        None
    }

    /// Whether `addr` is a pool4 address of any protocol (hairpinning, RFC
    /// 6146 §3.8, and "is this packet for us").
    pub fn contains_addr(&self, addr: Ipv4Addr) -> bool {
        let a = addr.to_bits();
        self.blocks.iter().flatten().any(|b| a.wrapping_sub(b.base) < b.n_addr)
    }

    /// The slice of worker `worker`.
    pub fn slice(&self, worker: u16) -> Slice {
        let w = worker as u32;
        let mut per: [ProtoSlice; 3] = Default::default();
        for (p, blocks) in self.blocks.iter().enumerate() {
            let mut base = 0u32;
            for b in blocks {
                let r = if b.by_addr {
                    // Addresses w, w+workers, w+2*workers, ... of the block.
                    if w >= b.n_addr {
                        continue;
                    }
                    SliceRange {
                        first: b.base + w,
                        n_addr: (b.n_addr - 1 - w) / self.workers + 1,
                        stride: self.workers,
                        plo: b.plo,
                        phi: b.phi,
                        slot_base: base,
                        magic: 0,
                        np: 0,
                        period: 0,
                        width: 0,
                    }
                } else if b.period != 0 {
                    let lo = b.plo as u32 + w * b.chunk;
                    let width = if w + 1 == self.workers { b.period - w * b.chunk } else { b.chunk };
                    SliceRange {
                        first: b.base,
                        n_addr: b.n_addr,
                        stride: 1,
                        plo: lo as u16,
                        phi: b.phi,
                        slot_base: base,
                        magic: 0,
                        np: 0,
                        period: b.period,
                        width,
                    }
                } else {
                    let lo = b.plo as u32 + w * b.chunk;
                    let hi = if w + 1 == self.workers { b.phi as u32 } else { lo + b.chunk - 1 };
                    SliceRange {
                        first: b.base,
                        n_addr: b.n_addr,
                        stride: 1,
                        plo: lo as u16,
                        phi: hi as u16,
                        slot_base: base,
                        magic: 0,
                        np: 0,
                        period: 0,
                        width: 0,
                    }
                };
                let mut r = r;
                r.np = r.count_ports();
                r.magic = (u64::MAX / r.np as u64).wrapping_add(1);
                base += r.n_addr * r.nports();
                per[p].ranges.push(r);
            }
            per[p].total = base;
            per[p].bound();
        }
        Slice { per }
    }
}

impl Block {
    fn share(&self, w: u32) -> u64 {
        let nports = (self.phi - self.plo) as u64 + 1;
        if self.by_addr {
            (self.n_addr as u64).div_ceil(w as u64) * nports
        } else {
            self.n_addr as u64 * nports.div_ceil(w as u64)
        }
    }

    fn overlaps(&self, o: &Block) -> bool {
        let a_end = self.base as u64 + self.n_addr as u64;
        let b_end = o.base as u64 + o.n_addr as u64;
        (self.base as u64) < b_end && (o.base as u64) < a_end && self.plo <= o.phi && o.plo <= self.phi
    }
}

/// Owned addresses `first + k*stride` (k < n_addr), ports `plo..=phi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SliceRange {
    pub(crate) first: u32,
    pub(crate) n_addr: u32,
    pub(crate) stride: u32,
    pub(crate) plo: u16,
    pub(crate) phi: u16,
    pub(crate) slot_base: u32,
    /// ceil(2^64 / nports), for division by multiplication.
    pub(crate) magic: u64,
    /// Owned ports per address ([`SliceRange::count_ports`], precomputed:
    /// the packet path divides by it).
    pub(crate) np: u32,
    /// Interleaved (deterministic) range: of every `period` ports from
    /// `plo`, the first `width` are owned; 0 = all of `plo..=phi`.
    pub(crate) period: u32,
    pub(crate) width: u32,
}

impl SliceRange {
    /// Owned ports per address.
    #[inline(always)]
    pub(crate) fn nports(&self) -> u32 {
        self.np
    }

    /// Owned ports per address, from the bounds and the period.
    fn count_ports(&self) -> u32 {
        let span = (self.phi - self.plo) as u32 + 1;
        if self.period == 0 {
            span
        } else {
            // `phi` ends a whole period counted from the block's first
            // port, so the last period is cut short by this worker's offset
            // only, never below `width`.
            span.div_ceil(self.period) * self.width
        }
    }

    /// Index (< `nports`) of `port` among the owned ports of one address.
    #[inline]
    pub(crate) fn port_index(&self, port: u16) -> Option<u32> {
        if port < self.plo || port > self.phi {
            return None;
        }
        let off = (port - self.plo) as u32;
        if self.period == 0 {
            return Some(off);
        }
        let (q, r) = (off / self.period, off % self.period);
        (r < self.width).then_some(q * self.width + r)
    }

    /// Slot of `addr:port` if this range holds it.
    #[inline(always)]
    fn slot(&self, addr: u32, port: u16) -> Option<u32> {
        let off = addr.wrapping_sub(self.first);
        // Stride 1 (one worker, or a range not split by address) is the
        // usual case: skip the hardware divide the packet would wait on.
        let (k, rem) = if self.stride == 1 { (off, 0) } else { (off / self.stride, off % self.stride) };
        if rem != 0 || k >= self.n_addr {
            return None;
        }
        Some(self.slot_base + k * self.nports() + self.port_index(port)?)
    }

    /// Inverse of [`SliceRange::port_index`].
    #[inline]
    pub(crate) fn port_at(&self, idx: u32) -> u16 {
        if self.period == 0 {
            self.plo + idx as u16
        } else {
            (self.plo as u32 + idx / self.width * self.period + idx % self.width) as u16
        }
    }
}

/// One protocol's part of a worker slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProtoSlice {
    pub(crate) ranges: Vec<SliceRange>,
    pub(crate) total: u32,
    /// Lowest owned address, and how far above it the highest one lies:
    /// one compare tells most addresses (the remote servers a hairpin
    /// check sees) that they are not in the slice.
    pub(crate) lo: u32,
    pub(crate) span: u32,
}

impl ProtoSlice {
    /// Sets `lo` and `span` from the ranges.
    fn bound(&mut self) {
        let last = |r: &SliceRange| r.first + r.n_addr.saturating_sub(1) * r.stride;
        self.lo = self.ranges.iter().map(|r| r.first).min().unwrap_or(0);
        self.span = self.ranges.iter().map(last).max().map_or(0, |hi| hi - self.lo);
    }
}

/// The transport addresses one worker owns, numbered densely per protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slice {
    pub(crate) per: [ProtoSlice; 3],
}

impl Slice {
    /// Number of transport addresses owned for `proto`.
    pub fn len(&self, proto: Proto) -> u32 {
        self.per[proto as usize].total
    }

    /// Whether the slice owns nothing at all.
    pub fn is_empty(&self) -> bool {
        self.per.iter().all(|p| p.total == 0)
    }

    /// Slot number of `addr:port`, or `None` when this worker does not own it.
    #[inline(always)]
    pub fn slot(&self, proto: Proto, addr: u32, port: u16) -> Option<u32> {
        let ps = &self.per[proto as usize];
        if addr.wrapping_sub(ps.lo) > ps.span {
            return None;
        }
        // One range (the usual case) inline, without the loop.
        match ps.ranges.as_slice() {
            [r] => r.slot(addr, port),
            ranges => Self::slot_in(ranges, addr, port),
        }
    }

    /// [`Slice::slot`] over several ranges: the first that holds it.
    #[inline(never)]
    fn slot_in(ranges: &[SliceRange], addr: u32, port: u16) -> Option<u32> {
        ranges.iter().find_map(|r| r.slot(addr, port))
    }

    /// Owned addresses of `proto` (several ranges may share one address;
    /// each counts once per range).
    pub fn addr_count(&self, proto: Proto) -> u32 {
        self.per[proto as usize].ranges.iter().map(|r| r.n_addr).sum()
    }

    /// Dense number (< [`Slice::addr_count`]) of the address `slot` is on.
    pub fn addr_index(&self, proto: Proto, slot: u32) -> u32 {
        let mut base = 0;
        for r in &self.per[proto as usize].ranges {
            let n = r.n_addr * r.nports();
            if slot < r.slot_base + n {
                return base + (slot.saturating_sub(r.slot_base)) / r.nports();
            }
            base += r.n_addr;
        }
        base
    }

    /// Calls `f(index, address, ports owned on it)` for every owned address
    /// of `proto`, in [`Slice::addr_index`] order.
    pub fn for_each_addr(&self, proto: Proto, mut f: impl FnMut(u32, Ipv4Addr, u32)) {
        let mut i = 0;
        for r in &self.per[proto as usize].ranges {
            for k in 0..r.n_addr {
                f(i, Ipv4Addr::from_bits(r.first + k * r.stride), r.nports());
                i += 1;
            }
        }
    }

    /// The transport address of slot `slot` (inverse of [`Slice::slot`]).
    /// Inline for the usual slice (one range of plain ports), which every
    /// established IPv6-side packet asks; any other slice goes out of line.
    #[inline(always)]
    pub fn addr_port(&self, proto: Proto, slot: u32) -> (u32, u16) {
        match self.per[proto as usize].ranges.as_slice() {
            [r] if r.period == 0 => Self::in_range(r, slot),
            ranges => Self::addr_port_of(ranges, slot),
        }
    }

    /// [`Slice::addr_port`] over any ranges: the one holding `slot` is the
    /// last starting at or below it.
    #[inline(never)]
    fn addr_port_of(ranges: &[SliceRange], slot: u32) -> (u32, u16) {
        let r = match ranges {
            [r] => r,
            [first, rest @ ..] => rest.iter().take_while(|x| x.slot_base <= slot).last().unwrap_or(first),
            [] => return (0, 0),
        };
        Self::in_range(r, slot)
    }

    /// The transport address of slot `slot` of range `r`.
    #[inline(always)]
    fn in_range(r: &SliceRange, slot: u32) -> (u32, u16) {
        let off = slot.saturating_sub(r.slot_base);
        let np = r.np;
        // Division by the range's port count through its precomputed
        // reciprocal (exact for 32-bit operands), off the hot path's divider.
        let q = if np == 1 { off } else { ((r.magic as u128 * off as u128) >> 64) as u32 };
        (r.first + q * r.stride, r.port_at(off - q * np))
    }
}

/// One pool4 block as split over the workers, for building steering rules
/// (`crate::steer`): which transport addresses each worker owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Protocol of the block.
    pub proto: Proto,
    /// First address of the block's prefix.
    pub base: Ipv4Addr,
    /// Prefix length of the block.
    pub prefix_len: u8,
    /// First port (or ICMP identifier) of the block.
    pub port_min: u16,
    /// Last port of the block.
    pub port_max: u16,
    /// `true`: address `i` belongs to worker `i % workers`; `false`: the
    /// port range is cut into `workers` contiguous sub-ranges.
    pub by_addr: bool,
    /// Ports per worker when split by port (the last worker also takes the
    /// remainder).
    pub chunk: u32,
    /// Deterministic mode: the port range is cut into client ranges of
    /// `period` ports, each split over the workers as above; 0 = one range.
    pub period: u32,
}

impl Split {
    /// The ports worker `w` owns on every address of a port-split block
    /// (of its first client range when `period` is set).
    pub fn worker_ports(&self, w: u16, workers: u16) -> (u16, u16) {
        let lo = self.port_min as u32 + w as u32 * self.chunk;
        let end =
            if self.period == 0 { self.port_max as u32 } else { self.port_min as u32 + self.period - 1 };
        let hi = if w + 1 >= workers { end } else { lo + self.chunk - 1 };
        (lo as u16, hi as u16)
    }

    /// The client ranges of a deterministic block, as offsets from
    /// `port_min` (one range, offset 0, otherwise).
    pub fn periods(&self) -> impl Iterator<Item = u32> {
        let span = self.port_max as u32 - self.port_min as u32 + 1;
        let step = if self.period == 0 { span } else { self.period };
        (0..span / step).map(move |k| k * step)
    }
}

impl Pool4 {
    /// Every block with the way it is split, in configuration order.
    pub fn splits(&self) -> impl Iterator<Item = Split> + '_ {
        Proto::ALL.into_iter().flat_map(move |proto| {
            self.blocks[proto as usize].iter().map(move |b| Split {
                proto,
                base: Ipv4Addr::from_bits(b.base),
                prefix_len: (32 - b.n_addr.trailing_zeros()) as u8,
                port_min: b.plo,
                port_max: b.phi,
                by_addr: b.by_addr,
                chunk: b.chunk,
                period: b.period,
            })
        })
    }
}

/// Test helper: entries from (protocol, prefix, length, first port, last
/// port).
#[cfg(test)]
pub(crate) fn test_entries(list: &[(Proto, [u8; 4], u8, u16, u16)]) -> Vec<Pool4Entry> {
    list.iter()
        .map(|&(proto, a, len, lo, hi)| Pool4Entry {
            proto,
            prefix: Ipv4Addr::from(a),
            prefix_len: len,
            port_min: lo,
            port_max: hi,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(proto: Proto, a: [u8; 4], len: u8, lo: u16, hi: u16) -> Pool4Entry {
        Pool4Entry { proto, prefix: Ipv4Addr::from(a), prefix_len: len, port_min: lo, port_max: hi }
    }

    #[test]
    fn split_by_port_when_few_addresses() {
        let p = Pool4::new(&[e(Proto::Udp, [192, 0, 2, 1], 32, 1024, 65535)], 4).unwrap();
        let a = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(p.owner(Proto::Udp, a, 1024), Some(0));
        assert_eq!(p.owner(Proto::Udp, a, 1024 + 16128), Some(1));
        assert_eq!(p.owner(Proto::Udp, a, 65535), Some(3));
        assert_eq!(p.owner(Proto::Udp, a, 80), None);
        assert_eq!(p.owner(Proto::Tcp, a, 2000), None);
        assert_eq!(p.owner(Proto::Udp, Ipv4Addr::new(192, 0, 2, 2), 2000), None);
        let total: u32 = (0..4).map(|w| p.slice(w).len(Proto::Udp)).sum();
        assert_eq!(total, 64512);
    }

    #[test]
    fn split_by_address_when_enough() {
        let p = Pool4::new(&[e(Proto::Tcp, [198, 51, 100, 0], 29, 1024, 65535)], 3).unwrap();
        for i in 0..8u8 {
            let a = Ipv4Addr::new(198, 51, 100, i);
            assert_eq!(p.owner(Proto::Tcp, a, 5000), Some((i % 3) as u16));
        }
        assert_eq!(p.slice(0).len(Proto::Tcp), 3 * 64512);
        assert_eq!(p.slice(2).len(Proto::Tcp), 2 * 64512);
    }

    #[test]
    fn every_slot_round_trips_and_owner_agrees() {
        let p = Pool4::new(
            &[e(Proto::Udp, [192, 0, 2, 0], 30, 1000, 1099), e(Proto::Udp, [203, 0, 113, 7], 32, 0, 999)],
            3,
        )
        .unwrap();
        let mut seen = std::collections::HashSet::new();
        for w in 0..3 {
            let s = p.slice(w);
            for slot in 0..s.len(Proto::Udp) {
                let (a, port) = s.addr_port(Proto::Udp, slot);
                assert_eq!(s.slot(Proto::Udp, a, port), Some(slot));
                assert_eq!(p.owner(Proto::Udp, Ipv4Addr::from_bits(a), port), Some(w));
                assert!(seen.insert((a, port)), "slices overlap");
            }
        }
        assert_eq!(seen.len(), 4 * 100 + 1000);
    }

    #[test]
    fn address_bounds_reject_only_what_no_range_owns() {
        // Two blocks with a gap between them, split by address over three
        // workers: `slot` (with its bounds pre-check) agrees with `owner`
        // below, inside, between and above the blocks.
        let p = Pool4::new(
            &[e(Proto::Tcp, [192, 0, 2, 0], 29, 1000, 1009), e(Proto::Tcp, [192, 0, 2, 16], 28, 1000, 1009)],
            3,
        )
        .unwrap();
        let slices: Vec<_> = (0..3).map(|w| p.slice(w)).collect();
        for a in u32::from_be_bytes([192, 0, 1, 250])..u32::from_be_bytes([192, 0, 2, 40]) {
            for port in [999, 1000, 1009, 1010] {
                let owner = p.owner(Proto::Tcp, Ipv4Addr::from_bits(a), port);
                for (w, s) in slices.iter().enumerate() {
                    assert_eq!(
                        s.slot(Proto::Tcp, a, port).is_some(),
                        owner == Some(w as u16),
                        "{a:x}:{port}"
                    );
                }
            }
        }
        assert_eq!(slices[0].slot(Proto::Udp, u32::from_be_bytes([192, 0, 2, 0]), 1000), None);
    }

    #[test]
    fn one_worker_slots_round_trip() {
        // Stride 1: the divide-free path of `Slice::slot`.
        let p = Pool4::new(&[e(Proto::Udp, [192, 0, 2, 0], 30, 1000, 1099)], 1).unwrap();
        let s = p.slice(0);
        for slot in 0..s.len(Proto::Udp) {
            let (a, port) = s.addr_port(Proto::Udp, slot);
            assert_eq!(s.slot(Proto::Udp, a, port), Some(slot));
        }
        assert_eq!(s.slot(Proto::Udp, u32::from_be_bytes([192, 0, 2, 4]), 1000), None);
        assert_eq!(s.slot(Proto::Udp, u32::from_be_bytes([192, 0, 1, 255]), 1000), None);
        assert_eq!(s.slot(Proto::Udp, u32::from_be_bytes([192, 0, 2, 3]), 1100), None);
    }

    #[test]
    fn rejects_bad_configs() {
        let u = Proto::Udp;
        assert_eq!(Pool4::new(&[e(u, [192, 0, 2, 1], 24, 1, 2)], 1).err(), Some(Pool4Error::BadPrefix));
        assert_eq!(Pool4::new(&[e(u, [192, 0, 2, 1], 32, 9, 2)], 1).err(), Some(Pool4Error::BadPortRange));
        assert_eq!(
            Pool4::new(&[e(u, [192, 0, 2, 1], 32, 1, 2)], 4).err(),
            Some(Pool4Error::TooSmallForWorkers)
        );
        assert_eq!(
            Pool4::new(&[e(u, [192, 0, 2, 0], 24, 1, 2000), e(u, [192, 0, 2, 9], 32, 2000, 3000)], 1).err(),
            Some(Pool4Error::Overlap)
        );
        assert!(
            Pool4::new(&[e(u, [192, 0, 2, 0], 24, 1, 2000), e(u, [192, 0, 2, 9], 32, 2001, 3000)], 1).is_ok()
        );
        assert_eq!(Pool4::new(&[e(u, [10, 0, 0, 0], 8, 1024, 65535)], 1).err(), Some(Pool4Error::TooLarge));
        assert_eq!(Pool4::new(&[], 0).err(), Some(Pool4Error::NoWorkers));
    }
}
