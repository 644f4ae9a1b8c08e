//! How a NAT64 instance chooses pool4 transport addresses for its clients.
//!
//! - [`Allocation::Dynamic`]: every new BIB entry gets a random port of the
//!   worker's slice (RFC 6056 §3.3.1 style; the shard's allocator).
//! - [`Allocation::Blocks`]: each client (IPv6 prefix of
//!   `client_prefix_len`) receives blocks of `size` consecutive ports on
//!   one IPv4 address, up to `max_per_client` per protocol; its BIB entries
//!   take random ports inside its blocks. The session log then records one
//!   event per block instead of one per session (RFC 6888 REQ-12 allows
//!   either; RFC 7422 §1 explains why the smaller log matters).
//! - [`Allocation::Deterministic`]: RFC 7422. Client `i` of a configured
//!   IPv6 range owns a fixed IPv4 address and port range computed from the
//!   configuration alone ([`DetMap`]), so no log is needed at all.
//!
//! Blocks are carved from each worker's [`Slice`] at start: per owned
//! address, `floor(ports / size)` blocks of contiguous slots. The tables
//! (`Blocks`) are allocated once; allocating or releasing a block is a
//! swap with a random free-list entry and an index update.

use super::index::{Hasher, Index, NONE};
use super::pool4::{Pool4, Pool4Entry, Pool4Error, Slice};
use super::shard::prefix_mask;
use super::{DropReason, Proto};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Port-block parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockConfig {
    /// Ports per block.
    pub size: u16,
    /// Blocks one client may hold per protocol.
    pub max_per_client: u16,
}

/// Allocation mode of one NAT64 instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Allocation {
    /// A random port per BIB entry (the default).
    #[default]
    Dynamic,
    /// Port blocks per client.
    Blocks(BlockConfig),
    /// RFC 7422 deterministic mapping (shared by the workers).
    Deterministic(Arc<DetMap>),
}

// ---- deterministic mapping (RFC 7422) -----------------------------------

/// Why a deterministic mapping cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetError {
    /// `client_len` is below the range's prefix length, above 128, or more
    /// than 32 bits longer than it (over 2^32 clients).
    ClientLength,
    /// The range prefix has bits set after its length.
    HostBits,
    /// The clients do not fit: some protocol's pool4 gives a client fewer
    /// ports than there are workers (or than `ports_per_client`).
    TooManyClients {
        /// The protocol that runs out.
        proto: Proto,
        /// Ports each client would get with every client fitting.
        fits: u32,
    },
    /// `ports_per_client` is 0.
    ZeroPorts,
}

/// One pool4 entry as the mapping enumerates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DetBlock {
    base: u32,
    n_addr: u32,
    plo: u16,
    /// Dense number of this entry's first address.
    first_index: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct DetProto {
    blocks: Vec<DetBlock>,
    /// Addresses in all entries.
    n_addr: u64,
    /// Ports per client (RFC 7422 §2: the range size).
    range: u32,
    /// Client ranges per address.
    per_addr: u64,
}

/// The IPv4 address and port range of one client (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetRange {
    /// pool4 address.
    pub addr: Ipv4Addr,
    /// First port (or ICMP identifier).
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// RFC 7422 deterministic mapping: clients `prefix/client_len` inside
/// `prefix/prefix_len`, numbered `i = 0..2^(client_len - prefix_len)`, are
/// spread over the pool4 addresses of each protocol (address `i mod A`,
/// RFC 7422 §2), each with the contiguous port range number `i div A` of
/// that address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetMap {
    prefix: u128,
    prefix_len: u8,
    client_len: u8,
    workers: u16,
    per: [DetProto; 3],
}

impl DetMap {
    /// Builds the mapping of the IPv6 range `prefix/prefix_len` with one
    /// client per `client_len` prefix over `entries` (pool4), for `workers`
    /// workers. `ports_per_client` fixes the range size for every protocol;
    /// `None` gives each protocol the largest size that fits.
    pub fn new(
        prefix: Ipv6Addr,
        prefix_len: u8,
        client_len: u8,
        ports_per_client: Option<u16>,
        entries: &[Pool4Entry],
        workers: u16,
    ) -> Result<DetMap, DetError> {
        if client_len > 128 || client_len < prefix_len || client_len - prefix_len > 32 {
            return Err(DetError::ClientLength);
        }
        let p = prefix.to_bits();
        if p & !prefix_mask(prefix_len) != 0 {
            return Err(DetError::HostBits);
        }
        if ports_per_client == Some(0) {
            return Err(DetError::ZeroPorts);
        }
        let clients = 1u64 << (client_len - prefix_len);
        let workers = workers.max(1);
        let mut per: [DetProto; 3] = Default::default();
        for proto in Proto::ALL {
            let d = &mut per[proto as usize];
            let mut min_ports = u32::MAX;
            for e in entries.iter().filter(|e| e.proto == proto) {
                let n_addr = 1u64 << (32 - e.prefix_len.min(32));
                d.blocks.push(DetBlock {
                    base: e.prefix.to_bits(),
                    n_addr: n_addr.min(u32::MAX as u64) as u32,
                    plo: e.port_min,
                    first_index: d.n_addr,
                });
                d.n_addr += n_addr;
                min_ports = min_ports.min((e.port_max as u32 + 1).saturating_sub(e.port_min as u32));
            }
            if d.n_addr == 0 {
                continue;
            }
            d.per_addr = clients.div_ceil(d.n_addr);
            let fits = (min_ports as u64 / d.per_addr) as u32;
            let range = match ports_per_client {
                Some(r) => r as u32,
                None => fits,
            };
            if range > fits || range < workers as u32 {
                return Err(DetError::TooManyClients { proto, fits });
            }
            d.range = range;
        }
        Ok(DetMap { prefix: p, prefix_len, client_len, workers, per })
    }

    /// Number of clients.
    pub fn clients(&self) -> u64 {
        1u64 << (self.client_len - self.prefix_len)
    }

    /// The IPv6 range and the client prefix length.
    pub fn range6(&self) -> (Ipv6Addr, u8, u8) {
        (Ipv6Addr::from_bits(self.prefix), self.prefix_len, self.client_len)
    }

    /// Ports per client for `proto` (0: no pool4 for it).
    pub fn ports_per_client(&self, proto: Proto) -> u32 {
        self.per[proto as usize].range
    }

    /// Workers the ranges are cut for.
    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// Client number of `addr`, or `None` outside the range.
    #[inline]
    pub fn client_index(&self, addr: Ipv6Addr) -> Option<u64> {
        let a = addr.to_bits();
        if a & prefix_mask(self.prefix_len) != self.prefix {
            return None;
        }
        let bits = self.client_len - self.prefix_len;
        if bits == 0 {
            return Some(0);
        }
        Some(((a >> (128 - self.client_len as u32)) as u64) & ((1u64 << bits) - 1))
    }

    /// The IPv6 prefix of client `i` (`i < clients()`).
    pub fn client_prefix(&self, i: u64) -> (Ipv6Addr, u8) {
        let bits = self.client_len - self.prefix_len;
        let v = if bits == 0 { 0 } else { (i as u128) << (128 - self.client_len as u32) };
        (Ipv6Addr::from_bits(self.prefix | v), self.client_len)
    }

    /// The range of client `i` for `proto`.
    pub fn range_of(&self, proto: Proto, i: u64) -> Option<DetRange> {
        let d = &self.per[proto as usize];
        if i >= self.clients() || d.n_addr == 0 {
            return None;
        }
        let (k, j) = (i % d.n_addr, i / d.n_addr);
        let b = d.blocks.iter().rev().find(|b| b.first_index <= k)?;
        let first = b.plo as u64 + j * d.range as u64;
        Some(DetRange {
            addr: Ipv4Addr::from_bits(b.base.wrapping_add((k - b.first_index) as u32)),
            first: first as u16,
            last: (first + d.range as u64 - 1) as u16,
        })
    }

    /// The range of the client `addr` belongs to.
    pub fn map6(&self, proto: Proto, addr: Ipv6Addr) -> Option<DetRange> {
        self.range_of(proto, self.client_index(addr)?)
    }

    /// The client (prefix) that owns `addr:port` for `proto`.
    pub fn map4(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> Option<(Ipv6Addr, u8)> {
        let d = &self.per[proto as usize];
        let a = addr.to_bits();
        let b = d.blocks.iter().find(|b| a.wrapping_sub(b.base) < b.n_addr)?;
        if port < b.plo || d.range == 0 {
            return None;
        }
        let j = (port - b.plo) as u64 / d.range as u64;
        if j >= d.per_addr {
            return None;
        }
        let i = j * d.n_addr + b.first_index + a.wrapping_sub(b.base) as u64;
        (i < self.clients()).then(|| self.client_prefix(i))
    }

    /// Worker `w`'s part of a client range: sub-range `w` of `workers`
    /// equal cuts, the last worker also taking the remainder. Agrees with
    /// [`Pool4::owner`] of [`DetMap::pool4`].
    pub fn sub_range(&self, r: &DetRange, w: u16) -> (u16, u16) {
        let n = (r.last as u32 + 1).saturating_sub(r.first as u32);
        // At least one port per worker ([`DetMap::new`] checks it).
        let c = (n / self.workers as u32).max(1);
        let lo = (r.first as u32 + w as u32 * c).min(r.last as u32);
        let hi = if w + 1 >= self.workers { r.last as u32 } else { (lo + c - 1).min(r.last as u32) };
        (lo as u16, hi as u16)
    }

    /// pool4 split for this mapping (see [`Pool4::interleaved`]).
    pub fn pool4(&self, entries: &[Pool4Entry]) -> Result<Pool4, Pool4Error> {
        Pool4::interleaved(entries, self.workers, self.per.each_ref().map(|d| d.range))
    }

    /// Which worker of [`DetMap::pool4`] `slice` belongs to.
    pub fn worker_of(&self, slice: &Slice) -> u16 {
        for proto in Proto::ALL {
            let Some(r) = self.range_of(proto, 0) else { continue };
            for w in 0..self.workers {
                let (lo, _) = self.sub_range(&r, w);
                if slice.slot(proto, r.addr.to_bits(), lo).is_some() {
                    return w;
                }
            }
        }
        0
    }
}

// ---- port blocks ---------------------------------------------------------

/// Where one run of blocks sits in the slot numbering.
#[derive(Clone, Copy, Debug)]
struct Run {
    slot_base: u32,
    n_addr: u32,
    nports: u32,
    per_addr: u32,
    first_block: u32,
}

#[derive(Default)]
struct ProtoBlocks {
    runs: Vec<Run>,
    /// First slot of each block.
    base: Vec<u32>,
    /// Dynamic BIB entries in each block.
    used: Vec<u32>,
    /// Client record holding each block (`NONE`: free).
    owner: Vec<u32>,
    /// The holder's list of blocks, newest first (`NONE` ends it).
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Free block numbers (order randomised).
    free: Vec<u32>,
}

#[derive(Clone, Copy)]
struct BClient {
    prefix: u128,
    proto: u8,
    /// Blocks held; for a free record, the next free record.
    n: u32,
    /// Newest block held.
    head: u32,
}

const FREE_CLIENT: BClient = BClient { prefix: 0, proto: 0, n: NONE, head: NONE };

/// A block that was just allocated or released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockEvent {
    pub(crate) proto: Proto,
    pub(crate) client: u128,
    pub(crate) first_slot: u32,
}

/// The port blocks of one worker. Memory is in proportion to the number
/// of blocks (the per-client lists are threaded through the blocks), not
/// to clients times the block limit.
pub(crate) struct Blocks {
    size: u32,
    limit: u32,
    mask: u128,
    per: [ProtoBlocks; 3],
    clients: Vec<BClient>,
    c_free: u32,
    c_index: Index,
}

impl Blocks {
    /// Carves `slice` into blocks; clients are `client_prefix_len` prefixes.
    pub(crate) fn new(
        cfg: BlockConfig,
        slice: &Slice,
        client_prefix_len: u8,
        rng: &mut fastrand::Rng,
    ) -> Self {
        let size = u32::from(cfg.size.max(1));
        let limit = u32::from(cfg.max_per_client.max(1));
        let mut per: [ProtoBlocks; 3] = Default::default();
        for proto in Proto::ALL {
            let pb = &mut per[proto as usize];
            for r in &slice.per[proto as usize].ranges {
                let nports = r.nports();
                let run = Run {
                    slot_base: r.slot_base,
                    n_addr: r.n_addr,
                    nports,
                    per_addr: nports / size,
                    first_block: pb.base.len() as u32,
                };
                for k in 0..r.n_addr {
                    for j in 0..run.per_addr {
                        pb.base.push(r.slot_base + k * nports + j * size);
                    }
                }
                pb.runs.push(run);
            }
            let n = pb.base.len();
            pb.used = vec![0; n];
            pb.owner = vec![NONE; n];
            pb.next = vec![NONE; n];
            pb.prev = vec![NONE; n];
            pb.free = (0..n as u32).collect();
            rng.shuffle(&mut pb.free);
        }
        // Every client holds at least one block: that bounds the records.
        let ncl = per.iter().map(|p| p.base.len()).sum::<usize>().max(1);
        let clients = (0..ncl)
            .map(|i| BClient { n: if i + 1 < ncl { i as u32 + 1 } else { NONE }, ..FREE_CLIENT })
            .collect();
        Blocks {
            size,
            limit,
            mask: prefix_mask(client_prefix_len),
            per,
            clients,
            c_free: 0,
            c_index: Index::with_capacity(ncl),
        }
    }

    /// Bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        let per: usize = self.per.iter().map(|p| (p.base.len() * 24) + p.runs.len() * 20).sum();
        per + self.clients.len() * core::mem::size_of::<BClient>() + self.c_index.memory_bytes()
    }

    /// Ports per block.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Blocks of `proto` on this worker.
    pub(crate) fn total(&self, proto: Proto) -> u32 {
        self.per[proto as usize].base.len() as u32
    }

    fn key_hash(h: &Hasher, prefix: u128, proto: Proto) -> u64 {
        h.h3((prefix >> 64) as u64, prefix as u64, proto as u64)
    }

    fn find_client(&self, h: &Hasher, prefix: u128, proto: Proto) -> Option<u32> {
        self.c_index.find(Self::key_hash(h, prefix, proto), |i| {
            self.clients.get(i as usize).is_some_and(|c| c.prefix == prefix && c.proto == proto as u8)
        })
    }

    /// Block number of `slot`, if it lies in a block.
    pub(crate) fn block_of(&self, proto: Proto, slot: u32) -> Option<u32> {
        let run = self.per[proto as usize]
            .runs
            .iter()
            .find(|r| slot >= r.slot_base && slot - r.slot_base < r.n_addr * r.nports)?;
        let off = slot - run.slot_base;
        let (k, j) = (off / run.nports, off % run.nports / self.size);
        (j < run.per_addr).then_some(run.first_block + k * run.per_addr + j)
    }

    /// First slot of block `b`.
    pub(crate) fn first_slot(&self, proto: Proto, b: u32) -> u32 {
        self.per[proto as usize].base.get(b as usize).copied().unwrap_or(0)
    }

    /// The client prefix holding `slot`'s block, if any.
    pub(crate) fn holder(&self, proto: Proto, slot: u32) -> Option<u128> {
        let b = self.block_of(proto, slot)?;
        let c = *self.per[proto as usize].owner.get(b as usize)?;
        self.clients.get(c as usize).map(|c| c.prefix).filter(|_| c != NONE)
    }

    /// The blocks of client record `c`, newest first.
    fn list(&self, proto: Proto, c: u32) -> impl Iterator<Item = u32> + '_ {
        let pb = &self.per[proto as usize];
        let head = self.clients.get(c as usize).map_or(NONE, |cl| cl.head);
        std::iter::successors((head != NONE).then_some(head), move |&b| {
            let n = pb.next[b as usize];
            (n != NONE).then_some(n)
        })
    }

    /// Calls `f(first slot)` for each block the client of `addr` holds.
    pub(crate) fn held_by(&self, h: &Hasher, proto: Proto, addr: u128, mut f: impl FnMut(u32)) {
        let Some(c) = self.find_client(h, addr & self.mask, proto) else { return };
        for b in self.list(proto, c) {
            f(self.first_slot(proto, b));
        }
    }

    /// Picks a free slot (`v4[slot] == NONE`) for a new BIB entry of the
    /// client of `src`, inside its blocks, taking a new block when they are
    /// full. Random inside a block (RFC 6056 §3.3.1 spirit), keeping the
    /// parity of `sport` for the first three quarters of the attempts (RFC
    /// 4787 REQ-3 as far as a block allows). The newest block with room is
    /// used first, so older blocks drain and return to the pool. Returns
    /// the slot and the block allocated for it, if one was.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn alloc(
        &mut self,
        h: &Hasher,
        rng: &mut fastrand::Rng,
        slice: &Slice,
        v4: &[u32],
        proto: Proto,
        src: u128,
        sport: u16,
        attempts: u32,
    ) -> Result<(u32, Option<BlockEvent>), DropReason> {
        let prefix = src & self.mask;
        let client = self.find_client(h, prefix, proto);
        let parity = |slot: u32| (slice.addr_port(proto, slot).1 & 1) == (sport & 1);
        if let Some(c) = client {
            let pb = &self.per[proto as usize];
            let mut roomy = self.list(proto, c).filter(|&b| pb.used[b as usize] < self.size);
            if let Some(b) = roomy.next() {
                let base = pb.base[b as usize];
                for a in 0..attempts {
                    let slot = base + rng.u32(0..self.size);
                    let ok = v4.get(slot as usize) == Some(&NONE);
                    if ok && (a >= attempts - attempts / 4 || parity(slot)) {
                        return Ok((slot, None));
                    }
                }
                // Bounded scans (a block's ports, each once): the random
                // picks may all have hit busy ports, or static entries.
                for b in std::iter::once(b).chain(roomy) {
                    if let Some(s) = Self::scan(pb.base[b as usize], self.size, rng, v4) {
                        return Ok((s, None));
                    }
                }
            }
            if self.clients[c as usize].n >= self.limit {
                return Err(DropReason::BlockLimit);
            }
        }
        let pb = &mut self.per[proto as usize];
        if pb.free.is_empty() {
            return Err(DropReason::NoFreeBlock);
        }
        let i = rng.usize(0..pb.free.len());
        let last = pb.free.len() - 1;
        pb.free.swap(i, last);
        let b = pb.free[last];
        let Some(slot) = Self::scan(pb.base[b as usize], self.size, rng, v4) else {
            // Every port of the block is a static BIB entry: leave it free.
            return Err(DropReason::PoolExhausted);
        };
        // Client records are sized to the block count: none can be missing
        // while a block is free; refuse rather than trust that.
        let c = client.or_else(|| self.new_client(h, prefix, proto)).ok_or(DropReason::NoFreeBlock)?;
        self.per[proto as usize].free.pop();
        Ok((slot, Some(self.give(proto, c, b))))
    }

    /// A record for a client that holds no block yet.
    fn new_client(&mut self, h: &Hasher, prefix: u128, proto: Proto) -> Option<u32> {
        let c = self.c_free;
        if c == NONE {
            return None;
        }
        self.c_free = self.clients[c as usize].n;
        self.clients[c as usize] = BClient { prefix, proto: proto as u8, n: 0, head: NONE };
        self.c_index.insert(Self::key_hash(h, prefix, proto), c);
        Some(c)
    }

    /// Puts block `b` (already off the free list) at the head of client
    /// `c`'s list.
    fn give(&mut self, proto: Proto, c: u32, b: u32) -> BlockEvent {
        let pb = &mut self.per[proto as usize];
        let cl = &mut self.clients[c as usize];
        pb.owner[b as usize] = c;
        pb.prev[b as usize] = NONE;
        pb.next[b as usize] = cl.head;
        if cl.head != NONE {
            pb.prev[cl.head as usize] = b;
        }
        cl.head = b;
        cl.n += 1;
        BlockEvent { proto, client: cl.prefix, first_slot: pb.base[b as usize] }
    }

    /// Test view: (dynamic entries counted in block `b`, blocks held).
    #[cfg(test)]
    pub(crate) fn usage(&self, proto: Proto, b: u32) -> (u32, u32) {
        let p = &self.per[proto as usize];
        (p.used[b as usize], (p.base.len() - p.free.len()) as u32)
    }

    /// Gives the block of `slot` to the client of `src` for a mapping a
    /// peer made (session sync): `Ok(None)` when the client holds it
    /// already, `Ok(Some(event))` when it was free and is now the client's,
    /// `Err(())` without any change when another client holds it, the
    /// client is at its block limit, or the slot is in no block.
    #[allow(clippy::result_unit_err)]
    pub(crate) fn claim(
        &mut self,
        h: &Hasher,
        proto: Proto,
        src: u128,
        slot: u32,
    ) -> Result<Option<BlockEvent>, ()> {
        let prefix = src & self.mask;
        let b = self.block_of(proto, slot).ok_or(())?;
        let client = self.find_client(h, prefix, proto);
        let holder = self.per[proto as usize].owner[b as usize];
        if holder != NONE {
            return if Some(holder) == client { Ok(None) } else { Err(()) };
        }
        let c = match client {
            Some(c) if self.clients[c as usize].n >= self.limit => return Err(()),
            Some(c) => c,
            None => self.new_client(h, prefix, proto).ok_or(())?,
        };
        let pb = &mut self.per[proto as usize];
        if let Some(pos) = pb.free.iter().position(|&x| x == b) {
            pb.free.swap_remove(pos);
        }
        Ok(Some(self.give(proto, c, b)))
    }

    /// A free slot of the block at `base`, from a random start.
    fn scan(base: u32, size: u32, rng: &mut fastrand::Rng, v4: &[u32]) -> Option<u32> {
        let start = rng.u32(0..size);
        (0..size).map(|i| base + (start + i) % size).find(|&s| v4.get(s as usize) == Some(&NONE))
    }

    /// A dynamic BIB entry took `slot` (after [`Blocks::alloc`]).
    pub(crate) fn take(&mut self, proto: Proto, slot: u32) {
        if let Some(b) = self.block_of(proto, slot) {
            self.per[proto as usize].used[b as usize] += 1;
        }
    }

    /// A dynamic BIB entry left `slot`: returns the block when that was its
    /// last entry (the block goes back to the free list).
    pub(crate) fn release(&mut self, h: &Hasher, proto: Proto, slot: u32) -> Option<BlockEvent> {
        let b = self.block_of(proto, slot)?;
        let pb = &mut self.per[proto as usize];
        let u = pb.used.get_mut(b as usize)?;
        *u = u.saturating_sub(1);
        if *u > 0 {
            return None;
        }
        let c = pb.owner[b as usize];
        let cl = self.clients.get_mut(c as usize)?;
        // Unlink from the holder's list.
        let (p, n) = (pb.prev[b as usize], pb.next[b as usize]);
        if p != NONE {
            pb.next[p as usize] = n;
        } else {
            cl.head = n;
        }
        if n != NONE {
            pb.prev[n as usize] = p;
        }
        pb.owner[b as usize] = NONE;
        pb.next[b as usize] = NONE;
        pb.prev[b as usize] = NONE;
        pb.free.push(b);
        cl.n -= 1;
        let ev = BlockEvent { proto, client: cl.prefix, first_slot: pb.base[b as usize] };
        if cl.n == 0 {
            self.c_index.remove(Self::key_hash(h, ev.client, proto), c);
            self.clients[c as usize] = BClient { n: self.c_free, ..FREE_CLIENT };
            self.c_free = c;
        }
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::nat64::pool4::test_entries as entries;

    fn all3(a: [u8; 4], len: u8, lo: u16, hi: u16) -> Vec<Pool4Entry> {
        entries(&Proto::ALL.map(|p| (p, a, len, lo, hi)))
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc7422_spread_over_addresses() {
        // 256 clients (/56 in a /48) over 4 addresses, 64512 ports each:
        // 64 clients per address, 1008 ports each.
        let m =
            DetMap::new(v6("2001:db8:a::"), 48, 56, None, &all3([192, 0, 2, 0], 30, 1024, 65535), 2).unwrap();
        assert_eq!(m.clients(), 256);
        assert_eq!(m.ports_per_client(Proto::Tcp), 1008);
        let r0 = m.map6(Proto::Tcp, v6("2001:db8:a::5")).unwrap();
        assert_eq!(r0, DetRange { addr: Ipv4Addr::new(192, 0, 2, 0), first: 1024, last: 2031 });
        let r5 = m.map6(Proto::Tcp, v6("2001:db8:a:500::1")).unwrap();
        assert_eq!(r5, DetRange { addr: Ipv4Addr::new(192, 0, 2, 1), first: 2032, last: 3039 });
        assert_eq!(m.map4(Proto::Tcp, r5.addr, 2500), Some((v6("2001:db8:a:500::"), 56)));
        assert_eq!(m.map6(Proto::Tcp, v6("2001:db8:b::1")), None);
        assert_eq!(m.map4(Proto::Tcp, Ipv4Addr::new(192, 0, 2, 0), 80), None);
        assert_eq!(m.map4(Proto::Tcp, Ipv4Addr::new(192, 0, 2, 9), 2000), None);
        // The workers' halves of client 5's range.
        assert_eq!(m.sub_range(&r5, 0), (2032, 2535));
        assert_eq!(m.sub_range(&r5, 1), (2536, 3039));
    }

    #[test]
    fn rejects_what_does_not_fit() {
        let e = all3([192, 0, 2, 1], 32, 1024, 2047);
        assert_eq!(DetMap::new(v6("2001:db8::"), 32, 65, None, &e, 1).err(), Some(DetError::ClientLength));
        assert_eq!(DetMap::new(v6("2001:db8::1"), 64, 72, None, &e, 1).err(), Some(DetError::HostBits));
        // 1024 ports, 512 clients: 2 each, fewer than 4 workers.
        assert_eq!(
            DetMap::new(v6("2001:db8::"), 64, 73, None, &e, 4).err(),
            Some(DetError::TooManyClients { proto: Proto::Tcp, fits: 2 })
        );
        assert_eq!(
            DetMap::new(v6("2001:db8::"), 64, 72, Some(5), &e, 1).err(),
            Some(DetError::TooManyClients { proto: Proto::Tcp, fits: 4 })
        );
        assert!(DetMap::new(v6("2001:db8::"), 64, 72, Some(4), &e, 1).is_ok());
    }

    proptest! {
        #[test]
        fn det_round_trip_disjoint_inside_pool(
            plen in 40u8..=64, extra in 0u8..=8, n_entries in 1usize..=3, len in 28u8..=32,
            lo in 1000u16..5000, span in 2000u16..40000, workers in 1u16..=4,
        ) {
            let mut list = Vec::new();
            for k in 0..n_entries as u8 {
                for p in Proto::ALL {
                    list.push((p, [198, 51, 100 + k, 0], len, lo, lo + span));
                }
            }
            let e = entries(&list);
            let m = DetMap::new(v6("2001:db8::"), plen, plen + extra, None, &e, workers).unwrap();
            let pool = m.pool4(&e).unwrap();
            let mut seen = std::collections::HashSet::new();
            for i in 0..m.clients() {
                let (pfx, l) = m.client_prefix(i);
                prop_assert_eq!(l, plen + extra);
                for p in Proto::ALL {
                    let r = m.map6(p, pfx).unwrap();
                    prop_assert!(r.first >= lo && r.last <= lo + span);
                    let inside = |x: &Pool4Entry| {
                        let n = 32 - x.prefix_len;
                        x.proto == p && r.addr.to_bits() >> n == x.prefix.to_bits() >> n
                    };
                    prop_assert!(e.iter().any(inside));
                    prop_assert!(seen.insert((p, r.addr, r.first)), "ranges overlap");
                    for port in [r.first, r.last, r.first + (r.last - r.first) / 2] {
                        prop_assert_eq!(m.map4(p, r.addr, port), Some((pfx, l)));
                    }
                    // Every worker's sub-range is owned by that worker.
                    for w in 0..workers {
                        let (a, b) = m.sub_range(&r, w);
                        prop_assert!(a <= b);
                        prop_assert_eq!(pool.owner(p, r.addr, a), Some(w));
                        prop_assert_eq!(pool.owner(p, r.addr, b), Some(w));
                    }
                }
            }
        }
    }

    #[test]
    fn slices_of_the_interleaved_split_round_trip() {
        let e = all3([192, 0, 2, 0], 31, 1000, 1999);
        for workers in 1..=4u16 {
            let m = DetMap::new(v6("2001:db8::"), 64, 68, None, &e, workers).unwrap();
            let pool = m.pool4(&e).unwrap();
            let mut seen = std::collections::HashSet::new();
            for w in 0..workers {
                let s = pool.slice(w);
                assert_eq!(m.worker_of(&s), w);
                for slot in 0..s.len(Proto::Udp) {
                    let (a, port) = s.addr_port(Proto::Udp, slot);
                    assert_eq!(s.slot(Proto::Udp, a, port), Some(slot));
                    assert_eq!(pool.owner(Proto::Udp, Ipv4Addr::from_bits(a), port), Some(w));
                    assert!(seen.insert((a, port)));
                }
            }
            // 16 clients over 2 addresses, 8 x 125 ports each.
            assert_eq!(seen.len(), 2 * 1000);
        }
    }
}
