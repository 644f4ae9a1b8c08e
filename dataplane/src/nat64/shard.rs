//! One worker's NAT64 state: BIB, sessions, port allocation, expiry sweep,
//! held SYNs, fragments.
//!
//! Layout (all allocated in [`Shard::new`], never grown):
//! - `bibs`: slab of 28-byte BIB records (IPv6 address:port, pool4 slot,
//!   session count, flags), addressed by `u32`.
//! - `b6`: index of the BIB by (protocol, IPv6 address, port).
//! - `v4`: per protocol, a flat `u32` array indexed by pool4 slot (see
//!   [`Slice`]): the IPv4-side BIB index *and* the port allocator's
//!   occupancy map, 4 bytes per owned transport address.
//! - `sessions`: slab of 16-byte session records (BIB number, remote IPv4
//!   address:port, state, protocol, expiry).
//! - `s_index`: index of the sessions by (BIB key, remote address, remote
//!   port); the hash is derived from the BIB key's hash. An IPv6 packet
//!   knows the whole key, so it finds its session with this one lookup
//!   (checking the key on the session and its BIB record) and reads `b6`
//!   only when there is no session. An IPv4 packet finds its BIB through
//!   `v4` by destination, rehashes that BIB's key, then finds the session
//!   by the remote end. (With address-dependent filtering each session is
//!   also indexed by (BIB, remote address) alone.)
//!
//! Timers: no lists. A packet stores the new expiry in the record it
//! already touched; a paced sweep over the session slab ([`Shard::expire`])
//! visits every record at least once per [`SWEEP_MS`] and ends or moves
//! the ones whose time has come. A session can outlive its expiry by up to
//! one sweep period (RFC 6146 §3.5.1: the lifetimes are minimums).

use super::alloc::{Allocation, BlockEvent, Blocks};
use super::index::{Hasher, Index, NONE};
use super::pool4::{ProtoSlice, Slice};
use super::table::Table;
use super::tcp::{self, flags, Dir, TcpState, Timer};
use super::{
    Config, Counters, DropReason, Event, EventKind, Filtering, FragTable, Proto, SyncChange, SyncOp,
    SyncQueue, Timeouts,
};
use crossbeam::queue::ArrayQueue;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

mod import;
pub use import::{ImportError, Imported};

/// Sweep period (ms): [`Shard::expire`] visits every session record at
/// least once per period while the worker keeps calling it, so a session
/// ends at most this late (RFC 6146 §3.5.1 and §3.5.2.2 give lifetimes
/// as minimums: "MUST NOT be less than").
pub(crate) const SWEEP_MS: u64 = 1000;
/// Session records one unit of [`Shard::expire`]'s budget visits (a visit
/// reads 16 sequential bytes; a deletion, one unit, touches both indexes
/// and the BIB).
pub(crate) const VISITS_PER_UNIT: usize = 16;
/// Largest burst [`Shard::find_burst6`] pipelines at once.
pub const BURST: usize = 32;
/// Table bytes above which burst lookups prefetch (about an L2 plus a
/// share of L3: below it the extra passes cost more than they save).
const PREFETCH_ABOVE: usize = 4 << 20;
/// Bytes of table a live session's lookups touch (two index buckets, the
/// BIB and session records, rounded up): the burst look-ahead starts when
/// the live sessions' share passes [`PREFETCH_ABOVE`]. Below that it costs
/// more than it saves (fastpath pipeline, 4096 flows in 1M-session tables:
/// 550 against 490 cycles per packet).
const TOUCHED_PER_SESSION: u64 = 256;
/// Port-selection attempts whose draw comes from the BIB key's hash, so
/// the look-ahead can request their pool4 slots. Filling a pool4 to 80 %
/// port use, a new BIB entry collides about once on average: filling 10M
/// sessions (fastpath), 1, 2, 3 and 4 such attempts made 2.9, 3.2, 3.4
/// and 3.5 M sessions/s.
const HASHED_ATTEMPTS: u32 = 4;
/// Largest session or BIB table (`u32` record numbers, `NONE` excluded;
/// the limit the timer wheel's list links had, kept for the sizing check).
const MAX_RECORDS: u32 = 0x7fff_ffff;
/// Session state byte of a free record.
const S_FREE: u8 = 0;
/// Session state byte of a live UDP/ICMP session (TCP uses `TcpState`).
const S_LIVE: u8 = 0x80;
/// BIB flags.
const B_USED: u8 = 1;
const B_STATIC: u8 = 2;
/// Marked for deletion by a reconfiguration.
const B_END: u8 = 4;
/// Counted in a port block (dynamic entry made in blocks mode).
const B_BLOCK: u8 = 8;
/// Created by a peer's sync record and not used by traffic here since:
/// its sessions are the peer's copies, not sent back to the peers.
const B_SYNCED: u8 = 16;

/// What the IPv6-side look-ahead carries from stage 0 to stage 1
/// ([`Shard::prefetch6`]): the key, and both hashes once stage 0 has
/// computed them, so stage 1 does not hash again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ahead6 {
    t: Tuple6,
    hb: u64,
    hs: u64,
}

impl Ahead6 {
    /// The look-ahead's start for the IPv6-side packet `t`.
    pub fn new(t: &Tuple6) -> Self {
        Ahead6 { t: *t, hb: 0, hs: 0 }
    }

    /// The packet's session key.
    pub fn tuple(&self) -> &Tuple6 {
        &self.t
    }
}

/// What the IPv4-side look-ahead carries from one stage to the next
/// ([`Shard::prefetch4`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ahead4 {
    proto: Proto,
    src: u32,
    sport: u16,
    dst: u32,
    dport: u16,
    /// Stage 0 -> 1: the pool4 slot; 1 -> 2: the BIB number.
    at: u32,
    /// Stage 2 -> 3: the session hash.
    hs: u64,
}

impl Ahead4 {
    /// The look-ahead's start for the IPv4-side packet `t`.
    pub fn new(t: &Tuple4) -> Self {
        let (src, dst) = (t.src.to_bits(), t.dst.to_bits());
        Ahead4 { proto: t.proto, src, sport: t.sport, dst, dport: t.dport, at: 0, hs: 0 }
    }
}

/// A session record. A free record has state `S_FREE`, `bib` `NONE`, and
/// `raddr` linking to the next free record (the free list).
#[derive(Clone, Copy)]
#[repr(C)]
struct Session {
    bib: u32,
    raddr: u32,
    /// Expiry, in seconds of the caller's clock.
    expires: u32,
    rport: u16,
    state: u8,
    proto: u8,
}

const FREE_SESSION: Session =
    Session { bib: NONE, raddr: NONE, expires: u32::MAX, rport: 0, state: S_FREE, proto: 0 };

#[derive(Clone, Copy)]
#[repr(C)]
struct Bib {
    addr6: [u32; 4],
    slot4: u32,
    nsess: u32,
    port6: u16,
    proto: u8,
    flags: u8,
}

const FREE_BIB: Bib = Bib { addr6: [0; 4], slot4: NONE, nsess: 0, port6: 0, proto: 0, flags: 0 };

#[derive(Clone, Copy)]
#[repr(C)]
struct Client {
    prefix: [u32; 4],
    count: u32,
}

#[derive(Clone, Copy, Default)]
struct Held {
    raddr: u32,
    laddr: u32,
    rport: u16,
    lport: u16,
    used: bool,
    deadline: u64,
    token: u64,
}

/// Free-list link of record `i` of `n`: the next record, `NONE` for the last.
fn free_link(i: usize, n: usize) -> u32 {
    if i + 1 < n {
        i as u32 + 1
    } else {
        NONE
    }
}

fn a6(a: [u32; 4]) -> u128 {
    (a[0] as u128) << 96 | (a[1] as u128) << 64 | (a[2] as u128) << 32 | a[3] as u128
}

fn w6(a: u128) -> [u32; 4] {
    [(a >> 96) as u32, (a >> 64) as u32, (a >> 32) as u32, a as u32]
}

/// The mask of a `len`-bit IPv6 prefix.
pub(super) fn prefix_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128) as u32)
    }
}

/// An IPv6-side packet's tuple, after the caller extracted the IPv4
/// destination from the pool6 address (RFC 6052).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple6 {
    /// Protocol.
    pub proto: Proto,
    /// IPv6 client address.
    pub src: Ipv6Addr,
    /// Client port (ICMP: identifier).
    pub sport: u16,
    /// Remote IPv4 address.
    pub dst: Ipv4Addr,
    /// Remote port (ignored for ICMP).
    pub dport: u16,
}

/// An IPv4-side packet's tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple4 {
    /// Protocol.
    pub proto: Proto,
    /// Remote IPv4 address.
    pub src: Ipv4Addr,
    /// Remote port (ignored for ICMP).
    pub sport: u16,
    /// pool4 address.
    pub dst: Ipv4Addr,
    /// pool4 port (ICMP: identifier).
    pub dport: u16,
}

/// Result of an IPv6 -> IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// Session number.
    pub session: u32,
    /// IPv4 source to write.
    pub src: Ipv4Addr,
    /// Source port (ICMP: identifier) to write.
    pub sport: u16,
    /// Whether the session was created by this packet.
    pub created: bool,
    /// A held IPv4 SYN this IPv6 SYN answered (simultaneous open, RFC 6146
    /// §3.5.2.2): the caller drops that packet silently.
    pub released_syn: Option<u64>,
}

/// Result of an IPv4 -> IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Translate to this IPv6 destination.
    Translate {
        /// Session number.
        session: u32,
        /// IPv6 destination address.
        dst: Ipv6Addr,
        /// Destination port (ICMP: identifier).
        dport: u16,
        /// Whether the session was created by this packet.
        created: bool,
    },
    /// An unsolicited SYN: the engine holds the caller's token; keep the
    /// packet until [`Shard::take_expired_syn`] or an [`Outbound`] returns it.
    Held,
}

/// Why a static BIB entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaticBibError {
    /// The IPv4 transport address is not in this worker's pool4 slice.
    NotOwned,
    /// The IPv4 transport address is mapped to another IPv6 one.
    V4InUse,
    /// The IPv6 transport address already has another mapping.
    V6InUse,
    /// `max_static` reached.
    Full,
}

/// Ports in use on one pool4 address of this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUse {
    /// Protocol.
    pub proto: Proto,
    /// pool4 address.
    pub addr: Ipv4Addr,
    /// Ports (ICMP: identifiers) bound by a BIB entry, static or dynamic.
    pub in_use: u32,
    /// Ports of this address owned by this worker.
    pub ports: u32,
}

/// Operator-view filter; `None` fields match everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Protocol.
    pub proto: Option<Proto>,
    /// IPv6 client prefix.
    pub v6: Option<(Ipv6Addr, u8)>,
    /// IPv4 address: the mapping's or (for sessions) the remote's.
    pub v4: Option<Ipv4Addr>,
}

/// A session as the operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// Session number.
    pub index: u32,
    /// Protocol.
    pub proto: Proto,
    /// TCP state (`None` for UDP/ICMP).
    pub state: Option<TcpState>,
    /// IPv6 client transport address.
    pub v6: (Ipv6Addr, u16),
    /// IPv4 mapping.
    pub v4: (Ipv4Addr, u16),
    /// Remote IPv4 transport address.
    pub remote: (Ipv4Addr, u16),
    /// Expiry, in seconds of the caller's clock (may lie in the past, by
    /// up to one sweep period, when the sweep has not reached it yet).
    pub expires_s: u32,
}

/// A BIB entry as the operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BibView {
    /// Protocol.
    pub proto: Proto,
    /// IPv6 transport address.
    pub v6: (Ipv6Addr, u16),
    /// IPv4 transport address.
    pub v4: (Ipv4Addr, u16),
    /// Static (never expires).
    pub is_static: bool,
    /// Sessions using it.
    pub sessions: u32,
}

/// A static BIB entry: protocol, IPv6 and IPv4 transport addresses.
pub type StaticEntry = (Proto, (Ipv6Addr, u16), (Ipv4Addr, u16));

/// What a live reconfiguration ([`Shard::reconfigure`]) ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconfigured {
    /// Sessions ended: their IPv4 mapping left this worker's pool4, or
    /// their static BIB entry was removed.
    pub ended_sessions: u64,
    /// BIB entries ended likewise.
    pub ended_bib: u64,
}

/// The configuration values that size tables or key hashes: they cannot
/// change without rebuilding the shard.
fn sizing(cfg: &Config) -> [u64; 7] {
    [
        u64::from(cfg.max_sessions.clamp(1, MAX_RECORDS)),
        u64::from(cfg.max_bib),
        u64::from(cfg.max_static),
        u64::from(cfg.max_held_syn),
        u64::from(cfg.frag_entries) << 32 | u64::from(cfg.frag_held),
        cfg.frag_timeout_ms,
        cfg.seed,
    ]
}

/// One worker's NAT64 state.
pub struct Shard {
    sizing: [u64; 7],
    max_clients: u32,
    timeouts: Timeouts,
    filtering: Filtering,
    drop_external_tcp: bool,
    port_attempts: u32,
    per_client: u32,
    client_mask: u128,
    max_static: u32,
    n_static: u32,
    hasher: Hasher,
    rng: fastrand::Rng,
    slice: Slice,
    sessions: Table<Session>,
    s_free: u32,
    s_index: Index,
    bibs: Table<Bib>,
    b_free: u32,
    b6: Index,
    v4: [Table<u32>; 3],
    /// BIB entries per owned pool4 address (index: `Slice::addr_index`).
    in_use: [Table<u32>; 3],
    clients: Table<Client>,
    c_free: u32,
    c_index: Index,
    /// Next session record the expiry sweep visits.
    sweep_at: u32,
    /// Visits the sweep owes, in record-milliseconds ([`SWEEP_MS`] per
    /// visit): grows by the capacity per elapsed millisecond, at most one
    /// full pass.
    sweep_credit: u64,
    /// Time (ms) up to which `sweep_credit` was credited.
    sweep_ms: u64,
    held: Vec<Held>,
    held_n: u32,
    events: Option<Arc<ArrayQueue<Event>>>,
    /// Session changes for the peers (`None`: sync off, or an import in
    /// progress: imported changes are not echoed back).
    sync: Option<Arc<SyncQueue>>,
    /// Whether session and BIB events are pushed.
    session_events: bool,
    /// Allocation mode as configured.
    allocation: Allocation,
    /// Port blocks (blocks mode only).
    blocks: Option<Blocks>,
    /// This worker's number in the deterministic split.
    det_worker: u16,
    /// Whether burst lookups touch memory ahead (only worth it when the
    /// tables do not fit in the caches).
    prefetch: bool,
    /// Live sessions above which the burst look-ahead runs.
    pub(crate) lookahead_from: u64,
    /// Fragment table (shallow virtual reassembly).
    pub frags: FragTable,
    /// Counters.
    pub counters: Counters,
}

impl Shard {
    /// Marks "no session" in [`Shard::find_burst6`] output.
    pub const MISS: u32 = NONE;

    /// Builds a shard owning `slice`, with every table allocated now.
    /// `now` (ms) starts the expiry sweep's clock.
    pub fn new(cfg: &Config, slice: Slice, now: u64) -> Self {
        let cap = cfg.max_sessions.clamp(1, MAX_RECORDS) as usize;
        let dynamic = if cfg.max_bib == 0 { cap } else { cfg.max_bib as usize };
        let nbib = (dynamic + cfg.max_static as usize).clamp(1, MAX_RECORDS as usize);
        let adf = cfg.filtering == Filtering::AddressDependent;
        // Free lists: each free record links to the next.
        let sessions = Table::from_fn(cap, |i| Session { raddr: free_link(i, cap), ..FREE_SESSION });
        let bibs = Table::from_fn(nbib, |i| Bib { slot4: free_link(i, nbib), ..FREE_BIB });
        let ncl = if cfg.max_sessions_per_client > 0 { cfg.max_clients.max(1) as usize } else { 0 };
        let clients = Self::free_clients(ncl);
        let (v4, in_use) = Self::slot_tables(&slice);
        let mut rng = fastrand::Rng::with_seed(cfg.seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15);
        let blocks = match &cfg.allocation {
            Allocation::Blocks(b) => Some(Blocks::new(*b, &slice, cfg.client_prefix_len, &mut rng)),
            _ => None,
        };
        let det_worker = match &cfg.allocation {
            Allocation::Deterministic(m) => m.worker_of(&slice),
            _ => 0,
        };
        let mut counters = Counters::default();
        if let Some(b) = &blocks {
            counters.blocks_total = Proto::ALL.map(|p| u64::from(b.total(p)));
        }
        let mut shard = Shard {
            sizing: sizing(cfg),
            max_clients: cfg.max_clients,
            timeouts: cfg.timeouts,
            filtering: cfg.filtering,
            drop_external_tcp: cfg.drop_external_tcp,
            port_attempts: cfg.port_attempts.max(1),
            per_client: cfg.max_sessions_per_client,
            client_mask: prefix_mask(cfg.client_prefix_len),
            max_static: cfg.max_static,
            n_static: 0,
            hasher: Hasher::new(cfg.seed),
            rng,
            slice,
            sessions,
            s_free: 0,
            s_index: Index::with_capacity(if adf { 2 * cap } else { cap }),
            bibs,
            b_free: 0,
            b6: Index::with_capacity(nbib),
            v4,
            in_use,
            clients,
            c_free: if ncl > 0 { 0 } else { NONE },
            c_index: Index::with_capacity(ncl),
            sweep_at: 0,
            sweep_credit: 0,
            sweep_ms: now,
            held: vec![Held::default(); cfg.max_held_syn as usize],
            held_n: 0,
            events: cfg.events.clone(),
            sync: cfg.sync.clone(),
            session_events: cfg.session_events,
            allocation: cfg.allocation.clone(),
            blocks,
            det_worker,
            frags: FragTable::new(cfg.frag_entries as usize, cfg.frag_held, cfg.frag_timeout_ms, cfg.seed),
            counters,
            prefetch: true,
            lookahead_from: (PREFETCH_ABOVE as u64) / TOUCHED_PER_SESSION,
        };
        shard.prefetch = shard.memory_bytes() > PREFETCH_ABOVE;
        shard
    }

    /// Bytes held by the shard's tables.
    pub fn memory_bytes(&self) -> usize {
        use core::mem::size_of;
        self.sessions.memory_bytes()
            + self.bibs.memory_bytes()
            + self.clients.memory_bytes()
            + self.v4.iter().map(Table::memory_bytes).sum::<usize>()
            + self.in_use.iter().map(Table::memory_bytes).sum::<usize>()
            + self.s_index.memory_bytes()
            + self.b6.memory_bytes()
            + self.c_index.memory_bytes()
            + self.held.capacity() * size_of::<Held>()
            + self.frags.memory_bytes()
            + self.blocks.as_ref().map_or(0, Blocks::memory_bytes)
    }

    /// Bytes of the IPv4-side slot maps (BIB index by pool4 port and port
    /// allocator map, 4 bytes per owned port; part of `memory_bytes`).
    pub fn portmap_bytes(&self) -> usize {
        self.v4.iter().map(Table::memory_bytes).sum()
    }

    /// Whether the session records, the BIB records and both their indexes
    /// were advised onto huge pages (see `table`: false when they are
    /// smaller than a huge page or the advice failed).
    pub fn huge_pages(&self) -> bool {
        self.sessions.on_huge_pages()
            && self.bibs.on_huge_pages()
            && self.s_index.on_huge_pages()
            && self.b6.on_huge_pages()
    }

    /// The per-client table of `ncl` entries, all on the free list.
    fn free_clients(ncl: usize) -> Table<Client> {
        Table::from_fn(ncl, |i| Client { prefix: [0; 4], count: free_link(i, ncl) })
    }

    /// Empty pool4 slot tables for `slice`: the BIB entry per slot, the
    /// BIB entries per address.
    fn slot_tables(slice: &Slice) -> ([Table<u32>; 3], [Table<u32>; 3]) {
        (
            Proto::ALL.map(|p| Table::filled(slice.len(p) as usize, NONE)),
            Proto::ALL.map(|p| Table::filled(slice.addr_count(p) as usize, 0)),
        )
    }

    /// Session capacity.
    pub fn capacity(&self) -> u32 {
        self.sessions.len() as u32
    }

    /// Live sessions.
    pub fn live_sessions(&self) -> u64 {
        self.counters.sessions_live
    }

    /// This worker's part of pool4.
    pub fn slice(&self) -> &Slice {
        &self.slice
    }

    /// pool4 use of this worker: `f` is called for every owned address of
    /// every protocol that has at least one BIB entry (ports in use).
    /// Counted as entries come and go; the call walks the owned addresses
    /// only (no table walk).
    pub fn pool4_use(&self, mut f: impl FnMut(&PoolUse)) {
        for p in Proto::ALL {
            self.slice.for_each_addr(p, |i, addr, ports| {
                let in_use = self.in_use[p as usize].get(i as usize).copied().unwrap_or(0);
                if in_use > 0 {
                    f(&PoolUse { proto: p, addr, in_use, ports });
                }
            });
        }
    }

    // ---- hashing and lookups -------------------------------------------

    #[inline(always)]
    fn bib_hash(&self, proto: Proto, addr: u128, port: u16) -> u64 {
        self.hasher.h3((addr >> 64) as u64, addr as u64, port as u64 | (proto as u64) << 16)
    }

    /// Hash of the BIB key of record `b`.
    #[inline(always)]
    fn bib_rec_hash(&self, b: u32) -> u64 {
        self.bib_key_hash(&self.bibs[b as usize])
    }

    /// Hash of the BIB key of `bb`.
    #[inline(always)]
    fn bib_key_hash(&self, bb: &Bib) -> u64 {
        self.bib_hash(Proto::from_u8(bb.proto), a6(bb.addr6), bb.port6)
    }

    /// Session key hash, derived from the BIB key hash `hb` so an IPv6
    /// packet can compute (and prefetch) both before either lookup.
    #[inline(always)]
    fn sess_hash(&self, hb: u64, raddr: u32, rport: u16) -> u64 {
        self.hasher.h2(hb, (raddr as u64) << 16 | rport as u64)
    }

    /// Hash of the (BIB, remote address) key used for address-dependent
    /// filtering (the second word is out of the range `sess_hash` uses).
    #[inline(always)]
    fn addr_hash(&self, hb: u64, raddr: u32) -> u64 {
        self.hasher.h2(hb, (raddr as u64) << 16 | 1 << 60)
    }

    #[inline(always)]
    fn bib_is(b: &Bib, proto: Proto, addr: &[u32; 4], port: u16) -> bool {
        b.port6 == port && b.proto == proto as u8 && b.addr6 == *addr
    }

    #[inline]
    fn find_bib6(&self, proto: Proto, addr: u128, port: u16) -> Option<u32> {
        self.find_bib6_h(self.bib_hash(proto, addr, port), proto, addr, port)
    }

    #[inline(always)]
    fn find_bib6_h(&self, hb: u64, proto: Proto, addr: u128, port: u16) -> Option<u32> {
        let w = w6(addr);
        let bibs = &*self.bibs;
        self.b6.find(hb, |i| bibs.get(i as usize).is_some_and(|b| Self::bib_is(b, proto, &w, port)))
    }

    /// The live session of an IPv6-side tuple and its BIB entry, found
    /// with one index lookup: the session hash `hs` already covers the
    /// whole 5-tuple (it is derived from the BIB key hash), so the key is
    /// checked on the session record and the BIB record it names, which
    /// the caller reads next anyway. The BIB index is only needed on a
    /// miss. (BIB keys are unique, so this finds exactly the session
    /// [`Shard::find_bib6`] then [`Shard::find_session`] would.)
    #[inline(always)]
    fn find6(&self, hs: u64, t: &Tuple6, rport: u16) -> Option<(u32, u32)> {
        self.find6_rec(hs, t, rport).map(|(s, b, _)| (s, b))
    }

    /// [`Shard::find6`] also returning a copy of the BIB record it read,
    /// so the caller need not access the BIB table again.
    #[inline(always)]
    fn find6_rec(&self, hs: u64, t: &Tuple6, rport: u16) -> Option<(u32, u32, Bib)> {
        let (src, raddr, proto) = (w6(t.src.to_bits()), t.dst.to_bits(), t.proto as u8);
        let (sessions, bibs) = (&*self.sessions, &*self.bibs);
        // A loop over the probe rather than `find` with a closure: the
        // compiler kept that closure out of line, a call per packet.
        for i in self.s_index.probe(hs) {
            let Some(s) = sessions.get(i as usize) else { continue };
            if s.raddr != raddr || s.rport != rport || s.proto != proto {
                continue;
            }
            let Some(b) = bibs.get(s.bib as usize) else { continue };
            if b.port6 == t.sport && b.addr6 == src {
                return Some((i, s.bib, *b));
            }
        }
        None
    }

    #[inline]
    fn find_session(&self, bib: u32, hb: u64, raddr: u32, rport: u16) -> Option<u32> {
        let h = self.sess_hash(hb, raddr, rport);
        let sessions = &*self.sessions;
        self.s_index.find(h, |i| match sessions.get(i as usize) {
            Some(s) => s.bib == bib && s.raddr == raddr && s.rport == rport,
            None => false,
        })
    }

    fn has_session_to(&self, bib: u32, hb: u64, raddr: u32) -> bool {
        let h = self.addr_hash(hb, raddr);
        self.s_index
            .find(h, |i| match self.sessions.get(i as usize) {
                Some(s) => s.bib == bib && s.raddr == raddr,
                None => false,
            })
            .is_some()
    }

    #[inline(always)]
    fn touch_rec<T>(v: &[T], i: u32) {
        if let Some(x) = v.get(i as usize) {
            crate::prefetch::prefetch_record(x);
        }
    }

    #[inline(always)]
    fn bib_v4(&self, b: &Bib) -> (u32, u16) {
        self.slice.addr_port(Proto::from_u8(b.proto), b.slot4)
    }

    #[inline]
    fn rport(proto: Proto, port: u16) -> u16 {
        // RFC 6146 §3.5.3: ICMP query sessions are keyed by identifier
        // only; the remote side has no port.
        if proto == Proto::Icmp {
            0
        } else {
            port
        }
    }

    fn timeout(&self, proto: Proto) -> u32 {
        match proto {
            Proto::Tcp => self.timeouts.tcp_trans,
            Proto::Udp => self.timeouts.udp,
            Proto::Icmp => self.timeouts.icmp,
        }
    }

    /// Looks up a burst of IPv6-side tuples without changing anything:
    /// `out[i]` is the session number or [`Shard::MISS`]. Hashes are
    /// computed and buckets/records touched stage by stage for the whole
    /// burst, so the cache misses of different packets overlap. Follow a
    /// hit with [`Shard::touch6`], a miss with [`Shard::outbound`].
    pub fn find_burst6(&self, ts: &[Tuple6], out: &mut [u32]) {
        for (tc, oc) in ts.chunks(BURST).zip(out.chunks_mut(BURST)) {
            self.find_chunk6(tc, oc);
        }
    }

    fn find_chunk6(&self, ts: &[Tuple6], out: &mut [u32]) {
        let n = ts.len().min(out.len()).min(BURST);
        let mut hb = [0u64; BURST];
        let mut hs = [0u64; BURST];
        // Stage 1: both hashes (pure arithmetic).
        for i in 0..n {
            let t = &ts[i];
            hb[i] = self.bib_hash(t.proto, t.src.to_bits(), t.sport);
            hs[i] = self.sess_hash(hb[i], t.dst.to_bits(), Self::rport(t.proto, t.dport));
        }
        if self.prefetch {
            // Stage 2: touch both home buckets of every packet. This loop
            // is nothing but loads, so the whole burst's misses fit in the
            // reorder window and are in flight together.
            for i in 0..n {
                self.b6.touch(hb[i]);
                self.s_index.touch(hs[i]);
            }
            // Stage 3: touch the records the buckets point at.
            for i in 0..n {
                Self::touch_rec(&self.bibs, self.b6.candidate(hb[i]));
                Self::touch_rec(&self.sessions, self.s_index.candidate(hs[i]));
            }
        }
        // Stage 4: compare keys.
        for i in 0..n {
            let t = &ts[i];
            out[i] = self.find6(hs[i], t, Self::rport(t.proto, t.dport)).map_or(NONE, |(s, _)| s);
        }
    }

    /// Whether [`Shard::prefetch6`] / [`Shard::prefetch4`] do anything:
    /// only when the live sessions' state is larger than the caches.
    #[inline]
    pub fn prefetches(&self) -> bool {
        self.prefetch && self.counters.sessions_live > self.lookahead_from
    }

    /// One stage of the look-ahead for an IPv6-side packet: stage 0
    /// requests the BIB and session home buckets, stage 1 the records they
    /// point at, or for a new BIB entry the pool4 slot it will try first. Run each stage over a whole burst before translating it,
    /// so the burst's cache misses overlap instead of queueing one after
    /// another (what [`Shard::find_burst6`] does inside one call). Changes
    /// nothing; returns whether a later stage has work. Small tables and
    /// few live sessions (in cache anyway) skip it.
    #[inline]
    pub fn prefetch6(&self, n: &mut Ahead6, stage: u8) -> bool {
        if !self.prefetches() || stage > 1 {
            return false;
        }
        let t = n.t;
        if stage == 0 {
            n.hb = self.bib_hash(t.proto, t.src.to_bits(), t.sport);
            n.hs = self.sess_hash(n.hb, t.dst.to_bits(), Self::rport(t.proto, t.dport));
            self.b6.touch(n.hb);
            self.s_index.touch(n.hs);
            return true;
        }
        let (hb, hs) = (n.hb, n.hs);
        let b = self.b6.candidate(hb);
        if b == NONE {
            // No BIB entry: the packet will create one, on the pool4 slot
            // the allocator tries first.
            let v4 = &self.v4[t.proto as usize];
            for slot in self.hashed_slots(t.proto, t.src.to_bits(), t.sport, hb) {
                if let Some(v) = v4.get(slot as usize) {
                    crate::prefetch::prefetch(v);
                }
            }
            return false;
        }
        Self::touch_rec(&self.bibs, b);
        Self::touch_rec(&self.sessions, self.s_index.candidate(hs));
        false
    }

    /// The same for an IPv4-side packet, whose lookups chain one into the
    /// next: stage 0 requests the pool4 slot's BIB number, 1 the BIB
    /// record, 2 the session bucket (its hash needs the BIB key), 3 the
    /// session record. Each stage leaves in `n` what the next one starts
    /// from, so none parses or hashes again. Always inline: called, its
    /// note went through memory each stage (1M sessions, established 4->6:
    /// 425 -> 474 cycles per packet when a larger pool4 lookup tipped it).
    #[inline(always)]
    pub fn prefetch4(&self, n: &mut Ahead4, stage: u8) -> bool {
        if !self.prefetches() {
            return false;
        }
        match stage {
            0 => {
                let Some(slot) = self.slice.slot(n.proto, n.dst, n.dport) else { return false };
                let Some(b) = self.v4[n.proto as usize].get(slot as usize) else { return false };
                crate::prefetch::prefetch(b);
                n.at = slot;
                true
            }
            1 => {
                let b = self.v4[n.proto as usize].get(n.at as usize).copied().unwrap_or(NONE);
                if b == NONE {
                    return false;
                }
                Self::touch_rec(&self.bibs, b);
                n.at = b;
                true
            }
            2 => {
                // Checked: a note is a hint, and a stale one must cost a
                // wasted prefetch at most, never a panic.
                let Some(bb) = self.bibs.get(n.at as usize) else { return false };
                let hs = self.sess_hash(self.bib_key_hash(bb), n.src, Self::rport(n.proto, n.sport));
                self.s_index.touch(hs);
                n.hs = hs;
                true
            }
            3 => {
                Self::touch_rec(&self.sessions, self.s_index.candidate(n.hs));
                false
            }
            _ => false,
        }
    }

    /// Applies an IPv6-side packet to a session found by
    /// [`Shard::find_burst6`] (timer refresh, TCP state) and returns the
    /// IPv4 source to write; `None` for a number that is not a live session.
    #[inline]
    pub fn touch6(&mut self, session: u32, tcp_flags: u8, now: u64) -> Option<(Ipv4Addr, u16)> {
        let b = self.sessions.get(session as usize).filter(|s| s.state != S_FREE)?.bib;
        self.claim(b);
        self.update(session, Dir::FromV6, tcp_flags, now);
        let (a, p) = self.bib_v4(&self.bibs[b as usize]);
        Some((Ipv4Addr::from_bits(a), p))
    }

    /// Traffic here makes a synced BIB entry local: from now on its
    /// sessions' changes go to the peers (this appliance took over).
    /// Returns a copy of the entry (`None`: no entry), whose fields the
    /// callers need next: one table access for both.
    #[inline(always)]
    fn claim(&mut self, b: u32) -> Option<Bib> {
        let bb = self.bibs.get_mut(b as usize)?;
        if bb.flags & B_SYNCED != 0 {
            bb.flags &= !B_SYNCED;
        }
        Some(*bb)
    }

    /// Applies one packet to an existing session. A UDP or ICMP session is
    /// refreshed with one store, inline; TCP runs its state machine.
    #[inline(always)]
    fn update(&mut self, s: u32, dir: Dir, tcp_flags: u8, now: u64) {
        let Some(se) = self.sessions.get_mut(s as usize) else { return };
        if se.state == S_LIVE {
            // Lazy refresh: the expiry sweep reads the new time when it visits.
            let t = if se.proto == Proto::Udp as u8 { self.timeouts.udp } else { self.timeouts.icmp };
            se.expires = ((now / 1000) as u32).saturating_add(t);
            return;
        }
        self.update_tcp(s, dir, tcp_flags, now);
    }

    /// RFC 6146 §3.5.2: one TCP packet through the state machine.
    #[inline(never)]
    fn update_tcp(&mut self, s: u32, dir: Dir, tcp_flags: u8, now: u64) {
        let now_s = (now / 1000) as u32;
        let se = &mut self.sessions[s as usize];
        let old = se.state;
        let (ns, timer) = tcp::step(TcpState::from_u8(old), dir, tcp_flags);
        se.state = ns as u8;
        let changed = ns as u8 != old;
        if changed {
            self.counters.tcp_states[old as usize & 7] -= 1;
            self.counters.tcp_states[ns as usize] += 1;
        }
        let t = match timer {
            Timer::Keep => None,
            Timer::Est => Some(self.timeouts.tcp_est),
            Timer::Trans => Some(self.timeouts.tcp_trans),
        };
        if let Some(t) = t {
            self.set_expiry(s, now_s.saturating_add(t));
        }
        if changed {
            self.emit_sync(SyncOp::Update, s, now);
        }
    }

    /// Sets a session's expiry. Longer or shorter, the sweep's next visit
    /// (within [`SWEEP_MS`]) acts on it: no list to move it on.
    fn set_expiry(&mut self, s: u32, at: u32) {
        self.sessions[s as usize].expires = at;
    }

    // ---- packet entry points -------------------------------------------

    /// An IPv6 -> IPv4 packet (RFC 6146 §3.5.1.1, §3.5.2.2, §3.5.3): finds
    /// or creates BIB entry and session. `tcp_flags` is the TCP flags byte
    /// (ignored for UDP/ICMP). Inlined into the mapper: its answer stays
    /// in registers; creating state is out of line.
    #[inline(always)]
    pub fn outbound(&mut self, t: &Tuple6, tcp_flags: u8, now: u64) -> Result<Outbound, DropReason> {
        match self.outbound_existing(t, tcp_flags, now) {
            Ok(o) => Ok(o),
            Err(hb) => self
                .outbound_new(t, hb, tcp_flags, now)
                .inspect_err(|r| self.counters.refused[*r as usize] += 1),
        }
    }

    /// [`Shard::outbound`] for a packet of a session that exists; `Err`
    /// (the BIB key's hash, and nothing changed) when none does.
    #[inline(always)]
    pub fn outbound_existing(&mut self, t: &Tuple6, tcp_flags: u8, now: u64) -> Result<Outbound, u64> {
        let rport = Self::rport(t.proto, t.dport);
        let hb = self.bib_hash(t.proto, t.src.to_bits(), t.sport);
        let Some((s, b, bb)) = self.find6_rec(self.sess_hash(hb, t.dst.to_bits(), rport), t, rport) else {
            return Err(hb);
        };
        if bb.flags & B_SYNCED != 0 {
            self.claim(b);
        }
        self.update(s, Dir::FromV6, tcp_flags, now);
        // The key matched, so the BIB entry's protocol is `t.proto`.
        let (a, p) = self.slice.addr_port(t.proto, bb.slot4);
        Ok(Outbound { session: s, src: Ipv4Addr::from_bits(a), sport: p, created: false, released_syn: None })
    }

    /// [`Shard::outbound`] without a session: creates it (and the BIB
    /// entry) or refuses. Out of line, so the established path above keeps
    /// its registers.
    #[inline(never)]
    fn outbound_new(&mut self, t: &Tuple6, hb: u64, fl: u8, now: u64) -> Result<Outbound, DropReason> {
        // No session: the BIB entry may still exist (other remotes).
        let bib = self.find_bib6_h(hb, t.proto, t.src.to_bits(), t.sport);
        self.outbound_new_on(t, hb, bib, fl, now)
    }

    /// A new session for `t` (BIB key hash `hb`, TCP flags `fl`), when
    /// creating it cannot end in a refusal after something changed:
    /// `None` otherwise, with nothing changed, and the express path leaves
    /// the packet to the general path's [`Shard::outbound`], which creates
    /// or refuses the same way. A full session table, a client over its
    /// quota and TCP without a SYN (RFC 6146 §3.5.2.2) are refused before
    /// anything changes; a new BIB entry's port choice is not (it counts
    /// collisions and draws at random), so it is taken only on the first
    /// pool4 port the allocator (`alloc_slot`) tries, when that port is
    /// free. With a SYN held from the IPv4 side, a TCP packet is left to
    /// the general path: it may release the held one, which the general
    /// path then sends.
    #[inline(never)]
    pub fn outbound_created(&mut self, t: &Tuple6, hb: u64, fl: u8, now: u64) -> Option<Outbound> {
        if t.proto == Proto::Tcp && self.held_n > 0 {
            return None;
        }
        let bib = self.find_bib6_h(hb, t.proto, t.src.to_bits(), t.sport);
        if bib.is_none() {
            let first = self.hashed_slots(t.proto, t.src.to_bits(), t.sport, hb).next();
            let v4 = &self.v4[t.proto as usize];
            let free = first.is_some_and(|s| v4.get(s as usize) == Some(&NONE));
            if self.b_free == NONE || !free {
                return None;
            }
        }
        self.outbound_new_on(t, hb, bib, fl, now).ok()
    }

    /// [`Shard::outbound_new`] once the BIB lookup has answered `bib`.
    fn outbound_new_on(
        &mut self,
        t: &Tuple6,
        hb: u64,
        bib: Option<u32>,
        fl: u8,
        now: u64,
    ) -> Result<Outbound, DropReason> {
        let src = t.src.to_bits();
        let raddr = t.dst.to_bits();
        let rport = Self::rport(t.proto, t.dport);
        if let Some(b) = bib {
            self.claim(b);
        }
        // RFC 6146 §3.5.2.2 CLOSED: only a SYN creates TCP state.
        if t.proto == Proto::Tcp && fl & flags::SYN == 0 {
            return Err(DropReason::TcpNoSession);
        }
        if self.s_free == NONE {
            return Err(DropReason::SessionTableFull);
        }
        let client = self.client_acquire(src)?;
        let b = match bib {
            Some(b) => b,
            None => match self.new_dynamic_bib(hb, t.proto, src, t.sport, now) {
                Ok(b) => b,
                Err(e) => {
                    self.client_release(client);
                    return Err(e);
                }
            },
        };
        let (state, life) = match t.proto {
            Proto::Tcp => (TcpState::V6Init as u8, self.timeouts.tcp_trans),
            p => (S_LIVE, self.timeout(p)),
        };
        let s = self.new_session(b, hb, raddr, rport, state, life, now);
        let (a, p) = self.bib_v4(&self.bibs[b as usize]);
        let released_syn = if t.proto == Proto::Tcp && self.held_n > 0 {
            let r = self.take_held(raddr, rport, a, p);
            if r.is_some() {
                self.counters.syn_held_matched += 1;
            }
            r
        } else {
            None
        };
        Ok(Outbound { session: s, src: Ipv4Addr::from_bits(a), sport: p, created: true, released_syn })
    }

    /// An IPv4 -> IPv6 packet (RFC 6146 §3.5.1.2, §3.5.2.2, §3.5.3).
    /// `token` names the packet if the engine has to hold it (unsolicited
    /// TCP SYN); it is ignored otherwise. Inlined into the one per-packet
    /// caller: its answer then stays in registers.
    #[inline(always)]
    pub fn inbound(
        &mut self,
        t: &Tuple4,
        tcp_flags: u8,
        token: u64,
        now: u64,
    ) -> Result<Inbound, DropReason> {
        let (slot, b, hb) = match self.inbound_existing(t, tcp_flags, now) {
            Ok(i) => return Ok(i),
            Err(at) => at,
        };
        self.claim(b);
        let r = match slot {
            Some(_) => self.inbound_new(t, b, hb, tcp_flags, token, now),
            None => Err(DropReason::NotOwned),
        };
        r.inspect_err(|r| self.counters.refused[*r as usize] += 1)
    }

    /// [`Shard::inbound`] for a packet of a session that exists. `Err`,
    /// with nothing changed, otherwise: the pool4 slot of the destination,
    /// its BIB entry (or `NONE`) and that entry's key hash (or 0).
    #[inline(always)]
    pub fn inbound_existing(
        &mut self,
        t: &Tuple4,
        tcp_flags: u8,
        now: u64,
    ) -> Result<Inbound, (Option<u32>, u32, u64)> {
        let slot = self.slice.slot(t.proto, t.dst.to_bits(), t.dport);
        let b = slot.and_then(|i| self.v4[t.proto as usize].get(i as usize).copied()).unwrap_or(NONE);
        let Some(bb) = self.bibs.get(b as usize).copied() else { return Err((slot, b, 0)) };
        // The client's address, once: for the key hash and the answer.
        // `v4` is per protocol, so the entry's protocol is `t.proto`.
        let x = a6(bb.addr6);
        let hb = self.bib_hash(t.proto, x, bb.port6);
        let Some(s) = self.find_session(b, hb, t.src.to_bits(), Self::rport(t.proto, t.sport)) else {
            return Err((slot, b, hb));
        };
        self.claim(b);
        self.update(s, Dir::FromV4, tcp_flags, now);
        Ok(Inbound::Translate { session: s, dst: Ipv6Addr::from_bits(x), dport: bb.port6, created: false })
    }

    /// [`Shard::inbound`] to an owned transport address without a session
    /// (`b`: its BIB entry or `NONE`, `hb` that entry's key hash): creates
    /// the session, holds the SYN, or refuses. Out of line, like
    /// [`Shard::outbound_new`].
    #[inline(never)]
    fn inbound_new(
        &mut self,
        t: &Tuple4,
        b: u32,
        hb: u64,
        fl: u8,
        token: u64,
        now: u64,
    ) -> Result<Inbound, DropReason> {
        let raddr = t.src.to_bits();
        let rport = Self::rport(t.proto, t.sport);
        let filtered =
            b != NONE && self.filtering == Filtering::AddressDependent && !self.has_session_to(b, hb, raddr);
        let state = if t.proto == Proto::Tcp {
            if fl & flags::SYN == 0 {
                return Err(DropReason::TcpNoSession);
            }
            if self.drop_external_tcp {
                return Err(DropReason::ExternalTcp);
            }
            if b == NONE || filtered {
                // RFC 6146 §3.5.2.2: keep the SYN at least 6 s; if the IPv6
                // side opens the same connection meanwhile, it is dropped,
                // else ICMP port unreachable is sent for it.
                self.hold(t, token, now)?;
                return Ok(Inbound::Held);
            }
            TcpState::V4Init as u8
        } else {
            if b == NONE {
                return Err(DropReason::NoBinding);
            }
            if filtered {
                return Err(DropReason::AddressFiltered);
            }
            S_LIVE
        };
        if self.s_free == NONE {
            return Err(DropReason::SessionTableFull);
        }
        let src6 = a6(self.bibs[b as usize].addr6);
        self.client_acquire(src6)?;
        let life = self.timeout(t.proto);
        let s = self.new_session(b, hb, raddr, rport, state, life, now);
        Ok(self.translate_to(s, b, true))
    }

    /// The IPv6 destination of session `s`, from its BIB entry `b`.
    #[inline(always)]
    fn translate_to(&self, s: u32, b: u32, created: bool) -> Inbound {
        let b = &self.bibs[b as usize];
        Inbound::Translate { session: s, dst: Ipv6Addr::from_bits(a6(b.addr6)), dport: b.port6, created }
    }

    /// The IPv4 mapping of the session an IPv6-side tuple belongs to,
    /// without creating or refreshing anything (for the packet quoted in an
    /// ICMPv6 error, normalised to the client's view).
    pub fn lookup6(&self, t: &Tuple6) -> Option<(Ipv4Addr, u16)> {
        let hb = self.bib_hash(t.proto, t.src.to_bits(), t.sport);
        let rport = Self::rport(t.proto, t.dport);
        let (_, _, bb) = self.find6_rec(self.sess_hash(hb, t.dst.to_bits(), rport), t, rport)?;
        let (a, p) = self.bib_v4(&bb);
        Some((Ipv4Addr::from_bits(a), p))
    }

    /// The IPv6 client of the session an IPv4-side tuple belongs to,
    /// without creating or refreshing anything (for the packet quoted in an
    /// ICMPv4 error, normalised to the remote's view).
    pub fn lookup4(&self, t: &Tuple4) -> Option<(Ipv6Addr, u16)> {
        let slot = self.slice.slot(t.proto, t.dst.to_bits(), t.dport)?;
        let b = *self.v4[t.proto as usize].get(slot as usize)?;
        if b == NONE {
            return None;
        }
        let hb = self.bib_rec_hash(b);
        self.find_session(b, hb, t.src.to_bits(), Self::rport(t.proto, t.sport))?;
        let bb = &self.bibs[b as usize];
        Some((Ipv6Addr::from_bits(a6(bb.addr6)), bb.port6))
    }

    /// The BIB entry of an IPv4 transport address of this worker (static or
    /// dynamic), for hairpinning (RFC 6146 §3.8).
    pub fn bib4(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> Option<(Ipv6Addr, u16)> {
        let slot = self.slice.slot(proto, addr.to_bits(), port)?;
        let b = *self.v4[proto as usize].get(slot as usize)?;
        let bb = self.bibs.get(b as usize)?;
        Some((Ipv6Addr::from_bits(a6(bb.addr6)), bb.port6))
    }

    /// The BIB entry of an IPv6 transport address.
    pub fn bib6(&self, proto: Proto, addr: Ipv6Addr, port: u16) -> Option<(Ipv4Addr, u16)> {
        let b = self.find_bib6(proto, addr.to_bits(), port)?;
        let (a, p) = self.bib_v4(&self.bibs[b as usize]);
        Some((Ipv4Addr::from_bits(a), p))
    }

    /// Whether this worker owns `addr:port` of `proto`.
    #[inline]
    pub fn owns(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> bool {
        self.slice.slot(proto, addr.to_bits(), port).is_some()
    }

    // ---- creation and deletion -----------------------------------------

    /// Counts a new session against its client's quota (RFC 6146
    /// §3.5.1.1 leaves the limit to the operator); `NONE` without quotas.
    /// The check is inline so a session without quotas pays no call.
    #[inline(always)]
    fn client_acquire(&mut self, src: u128) -> Result<u32, DropReason> {
        if self.per_client == 0 {
            return Ok(NONE);
        }
        self.client_count(src)
    }

    fn client_count(&mut self, src: u128) -> Result<u32, DropReason> {
        let p = src & self.client_mask;
        let w = w6(p);
        let h = self.hasher.h2((p >> 64) as u64, p as u64);
        let found = self.c_index.find(h, |i| self.clients.get(i as usize).is_some_and(|c| c.prefix == w));
        match found {
            Some(c) => {
                let cl = &mut self.clients[c as usize];
                if cl.count >= self.per_client {
                    return Err(DropReason::ClientQuota);
                }
                cl.count += 1;
                Ok(c)
            }
            None => {
                let c = self.c_free;
                if c == NONE {
                    return Err(DropReason::ClientTableFull);
                }
                self.c_free = self.clients[c as usize].count;
                self.clients[c as usize] = Client { prefix: w, count: 1 };
                self.c_index.insert(h, c);
                Ok(c)
            }
        }
    }

    fn client_release_addr(&mut self, src: u128) {
        if self.per_client == 0 {
            return;
        }
        let p = src & self.client_mask;
        let w = w6(p);
        let h = self.hasher.h2((p >> 64) as u64, p as u64);
        if let Some(c) = self.c_index.find(h, |i| self.clients.get(i as usize).is_some_and(|c| c.prefix == w))
        {
            self.client_release_at(c, h);
        }
    }

    fn client_release(&mut self, c: u32) {
        if c == NONE {
            return;
        }
        let p = a6(self.clients[c as usize].prefix);
        let h = self.hasher.h2((p >> 64) as u64, p as u64);
        self.client_release_at(c, h);
    }

    fn client_release_at(&mut self, c: u32, h: u64) {
        let cl = &mut self.clients[c as usize];
        cl.count -= 1;
        if cl.count == 0 {
            self.c_index.remove(h, c);
            cl.count = self.c_free;
            self.c_free = c;
        }
    }

    /// Port selection, bounded in attempts. The first [`HASHED_ATTEMPTS`]
    /// take their ports from a keyed hash of the client's transport
    /// address (RFC 6056 §3.3.3, without the remote: the mapping is
    /// endpoint-independent, RFC 6146 §3.5.1.1), so the burst look-ahead
    /// can request those slots before the packet arrives
    /// ([`Shard::prefetch6`]); later attempts draw at random (RFC 6056
    /// §3.3.1). The first half of the attempts
    /// stay on one address chosen by a keyed hash of the client (RFC 4787
    /// REQ-2, "paired" pooling); the first three quarters keep the client
    /// port's parity and its well-known / ephemeral class (RFC 4787 REQ-3,
    /// RFC 6146 §3.5.1.1).
    fn alloc_slot(&mut self, proto: Proto, src: u128, sport: u16, hb: u64) -> Option<u32> {
        let ps = &self.slice.per[proto as usize];
        if ps.total == 0 {
            return None;
        }
        let n_addr = self.slice.addr_count(proto);
        let paired = self.paired(src, n_addr);
        let attempts = self.port_attempts;
        for a in 0..attempts {
            let k = if a < attempts / 2 { paired } else { self.rng.u32(0..n_addr) };
            let draw = if a < HASHED_ATTEMPTS { Self::hashed_draw(hb, a) } else { self.rng.u32(..) };
            let strict = proto != Proto::Icmp && a < attempts - attempts / 4;
            let Some(slot) = Self::slot_for(ps, k, draw, strict, sport) else { continue };
            if self.v4[proto as usize][slot as usize] == NONE {
                return Some(slot);
            }
            self.counters.port_collisions += 1;
        }
        None
    }

    /// The pool4 address (index among the slice's addresses) a client's
    /// BIB entries try first.
    #[inline]
    fn paired(&self, src: u128, n_addr: u32) -> u32 {
        (self.hasher.h2((src >> 64) as u64, src as u64) >> 32) as u32 % n_addr
    }

    /// The port draw of hashed attempt `a`: the BIB key's keyed hash,
    /// remixed per attempt (the index places the key with its own bits).
    #[inline]
    fn hashed_draw(hb: u64, a: u32) -> u32 {
        let x = hb.rotate_left(a * 21);
        ((x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
    }

    /// The slot of the `k`-th address of the slice and the port `draw`
    /// picks in its range; when `strict`, a port of `sport`'s parity and
    /// class, or `None` when the range has none.
    #[inline]
    fn slot_for(ps: &ProtoSlice, mut k: u32, draw: u32, strict: bool, sport: u16) -> Option<u32> {
        let mut r = ps.ranges[0];
        for x in &ps.ranges {
            r = *x;
            if k < x.n_addr {
                break;
            }
            k -= x.n_addr;
        }
        let wk = sport < 1024;
        let (lo, hi) = if !strict {
            (r.plo, r.phi)
        } else if wk && r.plo < 1024 {
            (r.plo, r.phi.min(1023))
        } else if !wk && r.phi >= 1024 {
            (r.plo.max(1024), r.phi)
        } else {
            (r.plo, r.phi)
        };
        // Multiply-shift maps the 32-bit draw onto [lo, hi] evenly.
        let span = u64::from(hi - lo) + 1;
        let mut p = lo + ((u64::from(draw) * span) >> 32) as u16;
        if strict {
            p = (p & !1) | (sport & 1);
            if p < lo {
                p = p.saturating_add(2);
            }
            if p > hi {
                p = p.saturating_sub(2);
            }
            if p < lo || p > hi {
                return None;
            }
        }
        Some(r.slot_base + k * r.nports() + (p - r.plo) as u32)
    }

    /// The pool4 slots [`Shard::alloc_slot`] tries first for a new BIB
    /// entry of this key, in order (dynamic allocation only).
    #[inline]
    fn hashed_slots(&self, proto: Proto, src: u128, sport: u16, hb: u64) -> impl Iterator<Item = u32> + '_ {
        let ps = &self.slice.per[proto as usize];
        let on = ps.total != 0 && matches!(self.allocation, Allocation::Dynamic);
        // The hashed attempts on the paired address (all strict, as
        // attempts / 2 <= attempts - attempts / 4).
        let n = if on { HASHED_ATTEMPTS.min(self.port_attempts / 2) } else { 0 };
        let k = if on { self.paired(src, self.slice.addr_count(proto)) } else { 0 };
        (0..n)
            .filter_map(move |a| Self::slot_for(ps, k, Self::hashed_draw(hb, a), proto != Proto::Icmp, sport))
    }

    fn new_dynamic_bib(
        &mut self,
        hb: u64,
        proto: Proto,
        src: u128,
        sport: u16,
        now: u64,
    ) -> Result<u32, DropReason> {
        if self.b_free == NONE {
            return Err(DropReason::BibTableFull);
        }
        let (slot, fl) = match &self.allocation {
            Allocation::Dynamic => {
                (self.alloc_slot(proto, src, sport, hb).ok_or(DropReason::PoolExhausted)?, 0)
            }
            Allocation::Blocks(_) => (self.alloc_in_block(proto, src, sport, now)?, B_BLOCK),
            Allocation::Deterministic(_) => (self.alloc_deterministic(proto, src, sport)?, 0),
        };
        Ok(self.insert_bib(hb, proto, src, sport, slot, fl, now))
    }

    /// Port-block mode: a port inside the client's blocks (a new block
    /// when they are full, logged).
    fn alloc_in_block(&mut self, proto: Proto, src: u128, sport: u16, now: u64) -> Result<u32, DropReason> {
        let Some(bl) = self.blocks.as_mut() else { return Err(DropReason::PoolExhausted) };
        let attempts = self.port_attempts;
        let v4 = &self.v4[proto as usize];
        let (slot, ev) =
            bl.alloc(&self.hasher, &mut self.rng, &self.slice, v4, proto, src, sport, attempts)?;
        bl.take(proto, slot);
        if let Some(ev) = ev {
            self.counters.blocks_allocated += 1;
            self.counters.blocks_live[proto as usize] += 1;
            self.emit_block(EventKind::BlockAllocated, ev, now);
        }
        Ok(slot)
    }

    /// RFC 7422 mode: a random port of this worker's part of the client's
    /// range (parity kept for the first three quarters of the attempts,
    /// then a bounded scan of the part).
    fn alloc_deterministic(&mut self, proto: Proto, src: u128, sport: u16) -> Result<u32, DropReason> {
        let Allocation::Deterministic(m) = &self.allocation else { return Err(DropReason::PoolExhausted) };
        let i = m.client_index(Ipv6Addr::from_bits(src)).ok_or(DropReason::ClientUnmapped)?;
        let r = m.range_of(proto, i).ok_or(DropReason::PoolExhausted)?;
        let (lo, hi) = m.sub_range(&r, self.det_worker);
        let a = r.addr.to_bits();
        let v4 = &self.v4[proto as usize];
        let free = |p: u16| self.slice.slot(proto, a, p).filter(|&s| v4.get(s as usize) == Some(&NONE));
        let attempts = self.port_attempts;
        for k in 0..attempts {
            let mut p = self.rng.u16(lo..=hi);
            if k < attempts - attempts / 4 && proto != Proto::Icmp {
                p = (p & !1) | (sport & 1);
                if p < lo || p > hi {
                    continue;
                }
            }
            if let Some(s) = free(p) {
                return Ok(s);
            }
            self.counters.port_collisions += 1;
        }
        let n = (hi - lo) as u32 + 1;
        let start = self.rng.u32(0..n);
        (0..n).find_map(|j| free((lo as u32 + (start + j) % n) as u16)).ok_or(DropReason::PoolExhausted)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_bib(
        &mut self,
        h: u64,
        proto: Proto,
        src: u128,
        sport: u16,
        slot: u32,
        fl: u8,
        now: u64,
    ) -> u32 {
        let b = self.b_free;
        self.b_free = self.bibs[b as usize].slot4;
        self.bibs[b as usize] = Bib {
            addr6: w6(src),
            slot4: slot,
            nsess: 0,
            port6: sport,
            proto: proto as u8,
            flags: B_USED | fl,
        };
        self.b6.insert(h, b);
        self.v4[proto as usize][slot as usize] = b;
        self.counters.bib_created += 1;
        self.counters.bib_live += 1;
        self.counters.bib_live_by_proto[proto as usize] += 1;
        let a = self.slice.addr_index(proto, slot) as usize;
        if let Some(n) = self.in_use[proto as usize].get_mut(a) {
            *n += 1;
        }
        self.emit_bib(EventKind::BibCreated, b, now);
        b
    }

    fn delete_bib(&mut self, b: u32, now: u64) {
        self.emit_bib(EventKind::BibDeleted, b, now);
        let bb = self.bibs[b as usize];
        let proto = Proto::from_u8(bb.proto);
        if bb.flags & B_BLOCK != 0 {
            let released = self.blocks.as_mut().and_then(|bl| bl.release(&self.hasher, proto, bb.slot4));
            if let Some(ev) = released {
                self.counters.blocks_released += 1;
                self.counters.blocks_live[proto as usize] -= 1;
                self.emit_block(EventKind::BlockReleased, ev, now);
            }
        }
        let h = self.bib_hash(proto, a6(bb.addr6), bb.port6);
        self.b6.remove(h, b);
        self.v4[proto as usize][bb.slot4 as usize] = NONE;
        let a = self.slice.addr_index(proto, bb.slot4) as usize;
        if let Some(n) = self.in_use[proto as usize].get_mut(a) {
            *n -= 1;
        }
        self.bibs[b as usize] = FREE_BIB;
        self.bibs[b as usize].slot4 = self.b_free;
        self.b_free = b;
        self.counters.bib_deleted += 1;
        self.counters.bib_live -= 1;
        self.counters.bib_live_by_proto[proto as usize] -= 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn new_session(
        &mut self,
        b: u32,
        hb: u64,
        raddr: u32,
        rport: u16,
        state: u8,
        life: u32,
        now: u64,
    ) -> u32 {
        let s = self.s_free;
        let proto = self.bibs[b as usize].proto;
        self.s_free = self.sessions[s as usize].raddr;
        let exp = ((now / 1000) as u32).saturating_add(life);
        self.sessions[s as usize] = Session { bib: b, raddr, expires: exp, rport, state, proto };
        self.bibs[b as usize].nsess += 1;
        let h = self.sess_hash(hb, raddr, rport);
        self.s_index.insert(h, s);
        if self.filtering == Filtering::AddressDependent {
            let h = self.addr_hash(hb, raddr);
            self.s_index.insert(h, s);
        }
        self.counters.sessions_created[proto as usize] += 1;
        self.counters.sessions_live += 1;
        self.counters.sessions_live_by_proto[proto as usize] += 1;
        if state != S_LIVE {
            self.counters.tcp_states[state as usize & 7] += 1;
        }
        self.emit_session(EventKind::SessionCreated, s, now);
        self.emit_sync(SyncOp::Create, s, now);
        s
    }

    /// Removes a session, and its BIB entry when that was the last session
    /// of a dynamic one.
    fn delete_session(&mut self, s: u32, now: u64) {
        self.emit_session(EventKind::SessionDeleted, s, now);
        self.emit_sync(SyncOp::Delete, s, now);
        let se = self.sessions[s as usize];
        let hb = self.bib_rec_hash(se.bib);
        let h = self.sess_hash(hb, se.raddr, se.rport);
        self.s_index.remove(h, s);
        if self.filtering == Filtering::AddressDependent {
            let h = self.addr_hash(hb, se.raddr);
            self.s_index.remove(h, s);
        }
        let b = se.bib;
        let src = a6(self.bibs[b as usize].addr6);
        self.client_release_addr(src);
        self.sessions[s as usize] = Session { raddr: self.s_free, ..FREE_SESSION };
        self.s_free = s;
        self.counters.sessions_live -= 1;
        self.counters.sessions_live_by_proto[se.proto as usize] -= 1;
        if se.state != S_LIVE {
            self.counters.tcp_states[se.state as usize & 7] -= 1;
        }
        let bb = &mut self.bibs[b as usize];
        bb.nsess -= 1;
        if bb.nsess == 0 && bb.flags & B_STATIC == 0 {
            self.delete_bib(b, now);
        }
    }

    // ---- events --------------------------------------------------------

    fn push(&mut self, ev: Event) {
        if let Some(q) = &self.events {
            if q.push(ev).is_err() {
                self.counters.events_dropped += 1;
            }
        }
    }

    fn emit_block(&mut self, kind: EventKind, ev: BlockEvent, now: u64) {
        if self.events.is_none() {
            return;
        }
        let size = self.blocks.as_ref().map_or(1, Blocks::size);
        let (a, first) = self.slice.addr_port(ev.proto, ev.first_slot);
        let (_, last) = self.slice.addr_port(ev.proto, ev.first_slot + size - 1);
        let client = (Ipv6Addr::from_bits(ev.client), self.client_prefix_len());
        self.push(Event::block(now, kind, ev.proto, client, Ipv4Addr::from_bits(a), (first, last)));
    }

    fn client_prefix_len(&self) -> u8 {
        self.client_mask.leading_ones() as u8
    }

    /// Whether session and BIB events are pushed (checked inline by the
    /// callers, so creating state with the log off pays no call).
    #[inline(always)]
    fn session_log(&self) -> bool {
        self.session_events && self.events.is_some()
    }

    #[inline(always)]
    fn emit_bib(&mut self, kind: EventKind, b: u32, now: u64) {
        if self.session_log() {
            self.push_bib(kind, b, now);
        }
    }

    fn push_bib(&mut self, kind: EventKind, b: u32, now: u64) {
        let bb = self.bibs[b as usize];
        let (a, p) = self.bib_v4(&bb);
        self.push(Event {
            time_ms: now,
            kind,
            proto: Proto::from_u8(bb.proto),
            v6: (Ipv6Addr::from_bits(a6(bb.addr6)), bb.port6),
            v4: (Ipv4Addr::from_bits(a), p),
            remote: (Ipv4Addr::UNSPECIFIED, 0),
        });
    }

    #[inline(always)]
    fn emit_session(&mut self, kind: EventKind, s: u32, now: u64) {
        if self.session_log() {
            self.push_session(kind, s, now);
        }
    }

    fn push_session(&mut self, kind: EventKind, s: u32, now: u64) {
        let v = self.view(s);
        self.push(Event { time_ms: now, kind, proto: v.proto, v6: v.v6, v4: v.v4, remote: v.remote });
    }

    /// The change of session `s` as the peers see it.
    fn sync_change(&self, op: SyncOp, s: u32, now: u64) -> SyncChange {
        let v = self.view(s);
        let lifetime_s = v.expires_s.saturating_sub((now / 1000) as u32);
        SyncChange { op, proto: v.proto, state: v.state, v6: v.v6, v4: v.v4, remote: v.remote, lifetime_s }
    }

    /// Queues a change for the peers (creation, TCP state change, end). A
    /// full queue drops it and marks the queue for a resync.
    fn emit_sync(&mut self, op: SyncOp, s: u32, now: u64) {
        if let Some(q) = &self.sync {
            // A peer's copy (no traffic here): its expiry or timer-driven
            // state change is not news for the peer that owns it.
            if self.bibs[self.sessions[s as usize].bib as usize].flags & B_SYNCED == 0 {
                q.push(self.sync_change(op, s, now));
            }
        }
    }

    // ---- expiry sweep --------------------------------------------------

    /// Runs the expiry sweep up to `now`: visits the session records owed
    /// since the last call (the whole slab per second, at most one full
    /// pass after a pause), resuming where it stopped, doing at most
    /// `budget` units of work (one per session ended or moved, one per 16
    /// records visited). Returns the units done, below `budget` exactly
    /// when the sweep caught up. Expired UDP/ICMP sessions and closed TCP
    /// sessions are deleted (and their dynamic BIB entries with the last
    /// one); established-like TCP sessions move to TRANS for TCP_TRANS
    /// from now (RFC 6146 §3.5.2.2).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let cap = self.sessions.len() as u64;
        let elapsed = now.saturating_sub(self.sweep_ms).min(SWEEP_MS);
        self.sweep_ms = self.sweep_ms.max(now);
        self.sweep_credit = (self.sweep_credit + elapsed * cap).min(cap * SWEEP_MS);
        let now_s = (now / 1000) as u32;
        let limit = budget.saturating_mul(VISITS_PER_UNIT);
        // Work in visits; ending or moving a session costs a unit more.
        let mut spent = 0usize;
        while spent < limit && self.sweep_credit >= SWEEP_MS {
            let at = self.sweep_at as usize;
            let owed = (self.sweep_credit / SWEEP_MS) as usize;
            let run = owed.min(limit - spent).min(cap as usize - at);
            // The common case, nothing due: one compare per record.
            let due =
                self.sessions[at..at + run].iter().position(|se| se.expires <= now_s && se.state != S_FREE);
            let visited = due.map_or(run, |k| k + 1);
            spent += visited;
            self.sweep_credit -= visited as u64 * SWEEP_MS;
            self.counters.sweep_visits += visited as u64;
            self.sweep_at = if at + visited < cap as usize { (at + visited) as u32 } else { 0 };
            if let Some(k) = due {
                self.expire_session((at + k) as u32, now_s, now);
                spent += VISITS_PER_UNIT;
            }
        }
        (spent / VISITS_PER_UNIT).min(budget)
    }

    /// Session `s` reached its expiry: TCP moves on per RFC 6146 §3.5.2.2
    /// (an established-like session gets TCP_TRANS in TRANS), the rest end.
    fn expire_session(&mut self, s: u32, now_s: u32, now: u64) {
        let se = self.sessions[s as usize];
        if se.state != S_LIVE {
            if let Some(ns) = tcp::on_expiry(TcpState::from_u8(se.state)) {
                self.sessions[s as usize].state = ns as u8;
                self.counters.tcp_states[se.state as usize & 7] -= 1;
                self.counters.tcp_states[ns as usize] += 1;
                self.set_expiry(s, now_s.saturating_add(self.timeouts.tcp_trans));
                self.emit_sync(SyncOp::Update, s, now);
                return;
            }
        }
        self.counters.sessions_expired[se.proto as usize] += 1;
        self.delete_session(s, now);
    }

    // ---- held SYNs (RFC 6146 §3.5.2.2) -----------------------------------

    fn hold(&mut self, t: &Tuple4, token: u64, now: u64) -> Result<(), DropReason> {
        let (ra, rp, la, lp) = (t.src.to_bits(), t.sport, t.dst.to_bits(), t.dport);
        let mut free = None;
        for (i, h) in self.held.iter().enumerate() {
            if h.used {
                if h.raddr == ra && h.rport == rp && h.laddr == la && h.lport == lp {
                    return Err(DropReason::HeldSynDuplicate);
                }
            } else if free.is_none() {
                free = Some(i);
            }
        }
        let i = free.ok_or(DropReason::HeldSynFull)?;
        self.held[i] = Held {
            raddr: ra,
            laddr: la,
            rport: rp,
            lport: lp,
            used: true,
            deadline: now + self.timeouts.tcp_incoming_syn as u64 * 1000,
            token,
        };
        self.held_n += 1;
        self.counters.syn_held += 1;
        Ok(())
    }

    fn take_held(&mut self, ra: u32, rp: u16, la: u32, lp: u16) -> Option<u64> {
        let h = self
            .held
            .iter_mut()
            .find(|h| h.used && h.raddr == ra && h.rport == rp && h.laddr == la && h.lport == lp)?;
        h.used = false;
        self.held_n -= 1;
        Some(h.token)
    }

    /// Takes back the hold [`Shard::inbound`] just made for `t` (the caller
    /// found it cannot keep the packet).
    pub(super) fn cancel_hold(&mut self, t: &Tuple4) {
        if self.take_held(t.src.to_bits(), t.sport, t.dst.to_bits(), t.dport).is_some() {
            self.counters.syn_held -= 1;
        }
    }

    /// Held SYNs currently stored.
    pub fn held_syns(&self) -> u32 {
        self.held_n
    }

    /// One held SYN whose 6 s have passed without the IPv6 side opening the
    /// connection: the caller answers it with ICMP port unreachable (RFC
    /// 6146 §3.5.2.2) and frees it. Call until `None`.
    pub fn take_expired_syn(&mut self, now: u64) -> Option<u64> {
        if self.held_n == 0 {
            return None;
        }
        let h = self.held.iter_mut().find(|h| h.used && h.deadline <= now)?;
        h.used = false;
        self.held_n -= 1;
        self.counters.syn_held_expired += 1;
        Some(h.token)
    }

    // ---- static BIB ----------------------------------------------------

    /// Adds a static BIB entry (port forwarding to an IPv6 server). It never
    /// expires; sessions come and go on it.
    pub fn add_static(
        &mut self,
        proto: Proto,
        v6: (Ipv6Addr, u16),
        v4: (Ipv4Addr, u16),
        now: u64,
    ) -> Result<(), StaticBibError> {
        let slot = self.slice.slot(proto, v4.0.to_bits(), v4.1).ok_or(StaticBibError::NotOwned)?;
        let src = v6.0.to_bits();
        let cur = self.v4[proto as usize][slot as usize];
        let by6 = self.find_bib6(proto, src, v6.1);
        if cur != NONE {
            if by6 != Some(cur) {
                return Err(StaticBibError::V4InUse);
            }
            if self.bibs[cur as usize].flags & B_STATIC == 0 {
                if self.n_static >= self.max_static {
                    return Err(StaticBibError::Full);
                }
                self.bibs[cur as usize].flags |= B_STATIC;
                self.n_static += 1;
            }
            return Ok(());
        }
        if by6.is_some() {
            return Err(StaticBibError::V6InUse);
        }
        if self.n_static >= self.max_static || self.b_free == NONE {
            return Err(StaticBibError::Full);
        }
        let h = self.bib_hash(proto, src, v6.1);
        self.insert_bib(h, proto, src, v6.1, slot, B_STATIC, now);
        self.n_static += 1;
        Ok(())
    }

    /// Makes a static BIB entry dynamic again (deleted with its last
    /// session, or now if it has none). Returns whether it existed.
    pub fn remove_static(&mut self, proto: Proto, v4: (Ipv4Addr, u16), now: u64) -> bool {
        let Some(slot) = self.slice.slot(proto, v4.0.to_bits(), v4.1) else {
            return false;
        };
        let b = self.v4[proto as usize][slot as usize];
        if b == NONE || self.bibs[b as usize].flags & B_STATIC == 0 {
            return false;
        }
        self.bibs[b as usize].flags &= !B_STATIC;
        self.n_static -= 1;
        if self.bibs[b as usize].nsess == 0 {
            self.delete_bib(b, now);
        }
        true
    }

    // ---- live reconfiguration -------------------------------------------

    /// Whether [`Shard::reconfigure`] can apply `cfg`, the pool4 `slice`
    /// and the static BIB `statics` (all entries; this worker keeps those
    /// in `slice`) live. Changes nothing.
    pub fn check_reconfigure(
        &self,
        cfg: &Config,
        slice: &Slice,
        statics: &[StaticEntry],
    ) -> Result<(), String> {
        if cfg.allocation != self.allocation {
            return Err("the allocation mode or its parameters changed: restart".into());
        }
        if !matches!(self.allocation, Allocation::Dynamic) {
            // Blocks and deterministic ranges are laid over the slot
            // numbering and the client prefix: both stay for the process.
            if *slice != self.slice {
                return Err("pool4 changed while port blocks or deterministic mapping are on: restart".into());
            }
            if prefix_mask(cfg.client_prefix_len) != self.client_mask {
                return Err("client_prefix_len changed while port blocks are on: restart".into());
            }
        }
        if sizing(cfg) != self.sizing {
            return Err(
                "table sizes (max_sessions, max_bib, max_static, max_held_syn, fragment table) or the \
                        hash seed changed: restart"
                    .into(),
            );
        }
        let mine: Vec<&StaticEntry> =
            statics.iter().filter(|e| slice.slot(e.0, e.2 .0.to_bits(), e.2 .1).is_some()).collect();
        if mine.len() > self.max_static as usize {
            return Err(format!(
                "{} static BIB entries on one worker, max_static is {}",
                mine.len(),
                self.max_static
            ));
        }
        for (i, a) in mine.iter().enumerate() {
            for b in &mine[..i] {
                if a.0 == b.0 && (a.1 == b.1 || a.2 == b.2) {
                    return Err(format!("static BIB {}#{} listed twice", a.2 .0, a.2 .1));
                }
            }
        }
        let mut ending = 0u64;
        for i in 0..self.bibs.len() as u32 {
            if self.bibs[i as usize].flags & B_USED != 0 && !self.survives(i, slice, &mine) {
                ending += 1;
            }
        }
        let mut fresh = 0u64;
        for e in &mine {
            let (p, v6, v4) = **e;
            let by4 = self.slice.slot(p, v4.0.to_bits(), v4.1).map(|s| self.v4[p as usize][s as usize]);
            let by4 = by4.filter(|&b| b != NONE && self.survives(b, slice, &mine));
            let by6 = self.find_bib6(p, v6.0.to_bits(), v6.1).filter(|&b| self.survives(b, slice, &mine));
            match (by4, by6) {
                (Some(a), Some(b)) if a == b => {}
                (None, None) => fresh += 1,
                (Some(b), _) | (None, Some(b)) => {
                    let bb = &self.bibs[b as usize];
                    let (a, port) = self.bib_v4(bb);
                    return Err(format!(
                        "static BIB {} [{}]#{} <-> {}#{} conflicts with the live mapping [{}]#{} <-> {}#{}: flush it first",
                        p.name(),
                        v6.0,
                        v6.1,
                        v4.0,
                        v4.1,
                        Ipv6Addr::from_bits(a6(bb.addr6)),
                        bb.port6,
                        Ipv4Addr::from_bits(a),
                        port
                    ));
                }
            }
        }
        if self.counters.bib_live - ending + fresh > self.bibs.len() as u64 {
            return Err("the BIB table cannot hold the new static entries".into());
        }
        Ok(())
    }

    /// Whether live BIB entry `b` is kept by a reconfiguration to `slice`
    /// with the static entries `mine`: its mapping stays in this worker's
    /// pool4 and, if static, it is still listed.
    fn survives(&self, b: u32, slice: &Slice, mine: &[&StaticEntry]) -> bool {
        let bb = &self.bibs[b as usize];
        let p = Proto::from_u8(bb.proto);
        let (a, port) = self.bib_v4(bb);
        if slice.slot(p, a, port).is_none() {
            return false;
        }
        bb.flags & B_STATIC == 0
            || mine.iter().any(|e| {
                e.0 == p
                    && e.1 == (Ipv6Addr::from_bits(a6(bb.addr6)), bb.port6)
                    && e.2 == (Ipv4Addr::from_bits(a), port)
            })
    }

    /// Applies a new configuration live (hot reload), after
    /// [`Shard::check_reconfigure`] (called again here; on error nothing
    /// changes). Timeouts, filtering, the TCP policy, port attempts,
    /// per-client limits and the event queue apply at once; a session's
    /// remaining lifetime moves by the change of its timeout. A new pool4
    /// keeps every BIB entry whose IPv4 transport address is still in this
    /// worker's `slice` and ends (and counts) the others with their
    /// sessions; static entries are diffed (removed ones end with their
    /// sessions, new ones are added, a dynamic entry with the same mapping
    /// becomes static). Walks the tables once: a control-plane pause in
    /// proportion to the table size, never a packet-path cost.
    pub fn reconfigure(
        &mut self,
        cfg: &Config,
        slice: Slice,
        statics: &[StaticEntry],
        now: u64,
    ) -> Result<Reconfigured, String> {
        self.check_reconfigure(cfg, &slice, statics)?;
        let mine: Vec<&StaticEntry> =
            statics.iter().filter(|e| slice.slot(e.0, e.2 .0.to_bits(), e.2 .1).is_some()).collect();
        let (s0, b0) = (self.counters.sessions_live, self.counters.bib_live);
        // 1. End what leaves: mark, then delete sessions, then what is left.
        let mut marked = 0;
        for b in 0..self.bibs.len() as u32 {
            if self.bibs[b as usize].flags & B_USED != 0 && !self.survives(b, &slice, &mine) {
                self.bibs[b as usize].flags |= B_END;
                marked += 1;
            }
        }
        if marked > 0 {
            for s in 0..self.sessions.len() as u32 {
                let se = self.sessions[s as usize];
                if se.state != S_FREE && self.bibs[se.bib as usize].flags & B_END != 0 {
                    self.delete_session(s, now);
                }
            }
            for b in 0..self.bibs.len() as u32 {
                let bb = &mut self.bibs[b as usize];
                if bb.flags & B_USED != 0 && bb.flags & B_END != 0 {
                    // Dynamic ones went with their last session.
                    if bb.flags & B_STATIC != 0 {
                        self.n_static -= 1;
                    }
                    bb.flags &= !(B_STATIC | B_END);
                    self.delete_bib(b, now);
                }
            }
        }
        let ended = Reconfigured {
            ended_sessions: s0 - self.counters.sessions_live,
            ended_bib: b0 - self.counters.bib_live,
        };
        self.counters.sessions_reconfigured += ended.ended_sessions;
        // 2. Renumber the survivors' pool4 slots for the new slice.
        if slice != self.slice {
            let (mut v4, mut in_use) = Self::slot_tables(&slice);
            for b in 0..self.bibs.len() as u32 {
                let bb = self.bibs[b as usize];
                if bb.flags & B_USED == 0 {
                    continue;
                }
                let p = Proto::from_u8(bb.proto);
                let (a, port) = self.slice.addr_port(p, bb.slot4);
                let Some(ns) = slice.slot(p, a, port) else { continue };
                self.bibs[b as usize].slot4 = ns;
                v4[p as usize][ns as usize] = b;
                in_use[p as usize][slice.addr_index(p, ns) as usize] += 1;
            }
            self.v4 = v4;
            self.in_use = in_use;
            self.slice = slice;
        }
        // 3. Static entries: the check guarantees these succeed.
        for e in &mine {
            let r = self.add_static(e.0, e.1, e.2, now);
            debug_assert!(r.is_ok(), "{r:?}");
        }
        // 4. Settings.
        let old = self.timeouts;
        self.timeouts = cfg.timeouts;
        if old != cfg.timeouts {
            self.shift_lifetimes(&old);
        }
        self.drop_external_tcp = cfg.drop_external_tcp;
        self.port_attempts = cfg.port_attempts.max(1);
        self.events = cfg.events.clone();
        self.sync = cfg.sync.clone();
        self.session_events = cfg.session_events;
        if cfg.filtering != self.filtering {
            self.filtering = cfg.filtering;
            self.rebuild_session_index();
        }
        let mask = prefix_mask(cfg.client_prefix_len);
        let was = self.per_client > 0;
        self.per_client = cfg.max_sessions_per_client;
        if mask != self.client_mask || was != (self.per_client > 0) || cfg.max_clients != self.max_clients {
            self.client_mask = mask;
            self.max_clients = cfg.max_clients;
            self.rebuild_clients();
        }
        Ok(ended)
    }

    /// After a timeout change: every session's expiry moves by the change
    /// of the timeout its state runs on (its last activity is kept).
    fn shift_lifetimes(&mut self, old: &Timeouts) {
        let new = self.timeouts;
        let class = |t: &Timeouts, proto: u8, state: u8| -> u32 {
            if state == S_LIVE {
                if proto == Proto::Udp as u8 {
                    t.udp
                } else {
                    t.icmp
                }
            } else if matches!(
                TcpState::from_u8(state),
                TcpState::Established | TcpState::V4FinRcv | TcpState::V6FinRcv
            ) {
                t.tcp_est
            } else {
                t.tcp_trans
            }
        };
        for s in 0..self.sessions.len() as u32 {
            let se = self.sessions[s as usize];
            if se.state == S_FREE {
                continue;
            }
            let (o, n) = (class(old, se.proto, se.state), class(&new, se.proto, se.state));
            if o != n {
                let at = se.expires.saturating_sub(o).saturating_add(n);
                self.set_expiry(s, at);
            }
        }
    }

    /// Rebuilds the session index (after a filtering change: ADF keeps a
    /// second key per session).
    fn rebuild_session_index(&mut self) {
        let adf = self.filtering == Filtering::AddressDependent;
        let cap = self.sessions.len();
        self.s_index = Index::with_capacity(if adf { 2 * cap } else { cap });
        for s in 0..cap as u32 {
            let se = self.sessions[s as usize];
            if se.state == S_FREE {
                continue;
            }
            let hb = self.bib_rec_hash(se.bib);
            self.s_index.insert(self.sess_hash(hb, se.raddr, se.rport), s);
            if adf {
                self.s_index.insert(self.addr_hash(hb, se.raddr), s);
            }
        }
    }

    /// Rebuilds the per-client table (after a change of the client prefix
    /// length or table size) and recounts every live session. A client
    /// already above a lowered quota keeps its sessions and opens no new
    /// one until it is below (RFC 6146 §3.5.1.1: existing flows untouched).
    fn rebuild_clients(&mut self) {
        let ncl = if self.per_client > 0 { self.max_clients.max(1) as usize } else { 0 };
        self.clients = Self::free_clients(ncl);
        self.c_free = if ncl > 0 { 0 } else { NONE };
        self.c_index = Index::with_capacity(ncl);
        if ncl == 0 {
            return;
        }
        for s in 0..self.sessions.len() {
            let se = self.sessions[s];
            if se.state == S_FREE {
                continue;
            }
            let p = a6(self.bibs[se.bib as usize].addr6) & self.client_mask;
            let w = w6(p);
            let h = self.hasher.h2((p >> 64) as u64, p as u64);
            match self.c_index.find(h, |i| self.clients.get(i as usize).is_some_and(|c| c.prefix == w)) {
                Some(c) => self.clients[c as usize].count += 1,
                None if self.c_free != NONE => {
                    let c = self.c_free;
                    self.c_free = self.clients[c as usize].count;
                    self.clients[c as usize] = Client { prefix: w, count: 1 };
                    self.c_index.insert(h, c);
                }
                // Table full: this client is not tracked (its releases
                // find nothing), as if it had come after the table filled.
                None => {}
            }
        }
    }

    // ---- operator view -------------------------------------------------

    /// Port blocks the client of `addr` holds for `proto`, as (client
    /// prefix, address, first port, last port). Nothing unless port blocks
    /// are on.
    pub fn blocks_of(
        &self,
        proto: Proto,
        addr: Ipv6Addr,
        mut f: impl FnMut((Ipv6Addr, u8), Ipv4Addr, u16, u16),
    ) {
        let Some(bl) = &self.blocks else { return };
        let len = self.client_prefix_len();
        let client = (Ipv6Addr::from_bits(addr.to_bits() & self.client_mask), len);
        bl.held_by(&self.hasher, proto, addr.to_bits(), |first| {
            let (a, lo) = self.slice.addr_port(proto, first);
            let (_, hi) = self.slice.addr_port(proto, first + bl.size() - 1);
            f(client, Ipv4Addr::from_bits(a), lo, hi);
        });
    }

    /// The client prefix whose port block holds `addr:port` now, with the
    /// block's first and last port.
    pub fn block_holder(
        &self,
        proto: Proto,
        addr: Ipv4Addr,
        port: u16,
    ) -> Option<((Ipv6Addr, u8), u16, u16)> {
        let bl = self.blocks.as_ref()?;
        let slot = self.slice.slot(proto, addr.to_bits(), port)?;
        let client = bl.holder(proto, slot)?;
        let first = bl.first_slot(proto, bl.block_of(proto, slot)?);
        let lo = self.slice.addr_port(proto, first).1;
        let hi = self.slice.addr_port(proto, first + bl.size() - 1).1;
        Some(((Ipv6Addr::from_bits(client), self.client_prefix_len()), lo, hi))
    }

    fn view(&self, s: u32) -> SessionView {
        let se = &self.sessions[s as usize];
        let b = &self.bibs[se.bib as usize];
        let (a, p) = self.bib_v4(b);
        let proto = Proto::from_u8(se.proto);
        SessionView {
            index: s,
            proto,
            state: (se.state != S_LIVE).then(|| TcpState::from_u8(se.state)),
            v6: (Ipv6Addr::from_bits(a6(b.addr6)), b.port6),
            v4: (Ipv4Addr::from_bits(a), p),
            remote: (Ipv4Addr::from_bits(se.raddr), se.rport),
            expires_s: se.expires,
        }
    }

    fn bib_matches(&self, f: &Filter, b: &Bib) -> bool {
        if f.proto.is_some_and(|p| p as u8 != b.proto) {
            return false;
        }
        if let Some((a, len)) = f.v6 {
            let m = prefix_mask(len);
            if a6(b.addr6) & m != a.to_bits() & m {
                return false;
            }
        }
        true
    }

    fn session_matches(&self, f: &Filter, s: &Session) -> bool {
        let b = &self.bibs[s.bib as usize];
        if !self.bib_matches(f, b) {
            return false;
        }
        match f.v4 {
            Some(a) => a.to_bits() == s.raddr || a.to_bits() == self.bib_v4(b).0,
            None => true,
        }
    }

    /// Visits up to `max` session records from `cursor` (start with 0),
    /// calling `out` for each live one `filter` matches. Returns the cursor
    /// to continue from, or `None` when the table has been walked.
    pub fn sessions(
        &self,
        filter: &Filter,
        cursor: u32,
        max: u32,
        mut out: impl FnMut(&SessionView),
    ) -> Option<u32> {
        let end = (cursor as usize).saturating_add(max as usize).min(self.sessions.len());
        for i in cursor as usize..end {
            let s = &self.sessions[i];
            if s.state != S_FREE && self.session_matches(filter, s) {
                out(&self.view(i as u32));
            }
        }
        (end < self.sessions.len()).then_some(end as u32)
    }

    /// Visits up to `max` session records from `cursor` (start with 0),
    /// calling `out` with each live session as a [`SyncOp::Update`] for
    /// the peers: with `all`, every session (the answer to a restarted
    /// peer's resync request, which may get its own sessions back), else
    /// only those not imported from a peer (refresh and repair walks: no
    /// echo). Returns where to continue, `None` when the table has been
    /// walked.
    pub fn sync_walk(
        &self,
        cursor: u32,
        max: u32,
        now: u64,
        all: bool,
        mut out: impl FnMut(&SyncChange),
    ) -> Option<u32> {
        let end = (cursor as usize).saturating_add(max as usize).min(self.sessions.len());
        for i in cursor as usize..end {
            let se = &self.sessions[i];
            if se.state != S_FREE && (all || self.bibs[se.bib as usize].flags & B_SYNCED == 0) {
                out(&self.sync_change(SyncOp::Update, i as u32, now));
            }
        }
        (end < self.sessions.len()).then_some(end as u32)
    }

    /// Visits up to `max` BIB records from `cursor`, like
    /// [`Shard::sessions`].
    pub fn bib_entries(
        &self,
        filter: &Filter,
        cursor: u32,
        max: u32,
        mut out: impl FnMut(&BibView),
    ) -> Option<u32> {
        let end = (cursor as usize).saturating_add(max as usize).min(self.bibs.len());
        for b in &self.bibs[(cursor as usize).min(end)..end] {
            if b.flags & B_USED == 0 || !self.bib_matches(filter, b) {
                continue;
            }
            let (a, p) = self.bib_v4(b);
            if filter.v4.is_some_and(|x| x.to_bits() != a) {
                continue;
            }
            out(&BibView {
                proto: Proto::from_u8(b.proto),
                v6: (Ipv6Addr::from_bits(a6(b.addr6)), b.port6),
                v4: (Ipv4Addr::from_bits(a), p),
                is_static: b.flags & B_STATIC != 0,
                sessions: b.nsess,
            });
        }
        (end < self.bibs.len()).then_some(end as u32)
    }

    /// Deletes the sessions `filter` matches among up to `max` records from
    /// `cursor` (dynamic BIB entries go with their last session; static
    /// ones stay). Returns the cursor to continue from, or `None` when done.
    pub fn flush(&mut self, filter: &Filter, cursor: u32, max: u32, now: u64) -> Option<u32> {
        let end = (cursor as usize).saturating_add(max as usize).min(self.sessions.len());
        for i in cursor as usize..end {
            let s = self.sessions[i];
            if s.state != S_FREE && self.session_matches(filter, &s) {
                self.delete_session(i as u32, now);
                self.counters.sessions_flushed += 1;
            }
        }
        (end < self.sessions.len()).then_some(end as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::pool4::test_entries;
    use super::super::{DetMap, Pool4, Pool4Entry};
    use super::*;
    use proptest::prelude::*;

    const POOL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const MS: u64 = 1000;

    fn pool_entries(lo: u16, hi: u16) -> Vec<Pool4Entry> {
        Proto::ALL
            .iter()
            .map(|&proto| Pool4Entry { proto, prefix: POOL, prefix_len: 32, port_min: lo, port_max: hi })
            .collect()
    }

    fn shard_with(cfg: Config, lo: u16, hi: u16) -> Shard {
        let p = Pool4::new(&pool_entries(lo, hi), 1).unwrap();
        Shard::new(&cfg, p.slice(0), 0)
    }

    fn shard(cfg: Config) -> Shard {
        shard_with(cfg, 1024, 65535)
    }

    fn client(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
    }

    fn t6(proto: Proto, c: u16, sport: u16, dst: [u8; 4], dport: u16) -> Tuple6 {
        Tuple6 { proto, src: client(c), sport, dst: Ipv4Addr::from(dst), dport }
    }

    fn t4(proto: Proto, src: [u8; 4], sport: u16, m: (Ipv4Addr, u16)) -> Tuple4 {
        Tuple4 { proto, src: Ipv4Addr::from(src), sport, dst: m.0, dport: m.1 }
    }

    fn udp_out(s: &mut Shard, c: u16, sport: u16, dst: [u8; 4], dport: u16, now: u64) -> (Ipv4Addr, u16) {
        let o = s.outbound(&t6(Proto::Udp, c, sport, dst, dport), 0, now).unwrap();
        (o.src, o.sport)
    }

    /// Cross-checks every table against the slabs.
    fn check(s: &Shard) {
        let mut per_bib = vec![0u32; s.bibs.len()];
        let mut live = 0;
        for (i, se) in s.sessions.iter().enumerate() {
            if se.state == S_FREE {
                continue;
            }
            live += 1;
            per_bib[se.bib as usize] += 1;
            let hb = s.bib_rec_hash(se.bib);
            assert_eq!(s.find_session(se.bib, hb, se.raddr, se.rport), Some(i as u32));
            // The one-lookup IPv6-side path agrees with BIB-then-session.
            let bb = &s.bibs[se.bib as usize];
            let (src, raddr) = (Ipv6Addr::from_bits(a6(bb.addr6)), Ipv4Addr::from_bits(se.raddr));
            let t =
                Tuple6 { proto: Proto::from_u8(bb.proto), src, sport: bb.port6, dst: raddr, dport: se.rport };
            assert_eq!(s.find_bib6(t.proto, src.to_bits(), t.sport), Some(se.bib));
            assert_eq!(s.find6(s.sess_hash(hb, se.raddr, se.rport), &t, se.rport), Some((i as u32, se.bib)));
            // A remote never used (outside 198.51.100.0/24): no session,
            // so the caller falls back to the BIB lookup.
            let other = Ipv4Addr::from_bits(se.raddr ^ 0x8000_0000);
            let t = Tuple6 { dst: other, ..t };
            assert_eq!(s.find6(s.sess_hash(hb, other.to_bits(), se.rport), &t, se.rport), None);
            if s.filtering == Filtering::AddressDependent {
                assert!(s.has_session_to(se.bib, hb, se.raddr));
            }
        }
        assert_eq!(live, s.counters.sessions_live);
        let mut bl = 0;
        for (i, b) in s.bibs.iter().enumerate() {
            if b.flags & B_USED == 0 {
                continue;
            }
            bl += 1;
            assert_eq!(b.nsess, per_bib[i]);
            assert!(b.nsess > 0 || b.flags & B_STATIC != 0, "orphan dynamic BIB");
            let p = Proto::from_u8(b.proto);
            assert_eq!(s.find_bib6(p, a6(b.addr6), b.port6), Some(i as u32));
            assert_eq!(s.v4[p as usize][b.slot4 as usize], i as u32);
        }
        assert_eq!(bl, s.counters.bib_live);
        let used: usize = s.v4.iter().map(|v| v.iter().filter(|&&x| x != NONE).count()).sum();
        assert_eq!(used as u64, bl);
        // The free list holds every other record, each marked free.
        let (mut free, mut x) = (0, s.s_free);
        while x != NONE {
            let se = &s.sessions[x as usize];
            assert!(se.state == S_FREE && se.bib == NONE && se.expires == u32::MAX);
            free += 1;
            x = se.raddr;
        }
        assert_eq!(free + live, s.sessions.len() as u64);
        assert!((s.sweep_at as usize) < s.sessions.len());
        // The cheap counters Nat64Stats reports agree with a full walk.
        let (mut by_proto, mut states, mut bib_by_proto) = ([0u64; 3], [0u64; 8], [0u64; 3]);
        for se in s.sessions.iter().filter(|se| se.state != S_FREE) {
            by_proto[se.proto as usize] += 1;
            if se.state != S_LIVE {
                states[se.state as usize] += 1;
            }
        }
        let mut per_addr: [Vec<u32>; 3] = Proto::ALL.map(|p| vec![0; s.slice.addr_count(p) as usize]);
        for b in s.bibs.iter().filter(|b| b.flags & B_USED != 0) {
            bib_by_proto[b.proto as usize] += 1;
            let p = Proto::from_u8(b.proto);
            per_addr[b.proto as usize][s.slice.addr_index(p, b.slot4) as usize] += 1;
        }
        assert_eq!(by_proto, s.counters.sessions_live_by_proto);
        assert_eq!(states, s.counters.tcp_states);
        assert_eq!(bib_by_proto, s.counters.bib_live_by_proto);
        assert_eq!(per_addr, s.in_use.each_ref().map(|t| t.to_vec()));
    }

    fn pool(entries: &[(Proto, [u8; 4], u8, u16, u16)], workers: u16) -> Pool4 {
        Pool4::new(&test_entries(entries), workers).unwrap()
    }

    fn views(s: &Shard) -> (Vec<SessionView>, Vec<BibView>) {
        let (mut a, mut b) = (vec![], vec![]);
        s.sessions(&Filter::default(), 0, u32::MAX, |v| a.push(*v));
        s.bib_entries(&Filter::default(), 0, u32::MAX, |v| b.push(*v));
        (a, b)
    }

    #[test]
    fn reconfigure_timeouts_apply_to_live_sessions() {
        let mut s = shard(Config::default());
        udp_out(&mut s, 1, 5000, [198, 51, 100, 1], 53, 0);
        let o = s.outbound(&t6(Proto::Tcp, 1, 6000, [198, 51, 100, 1], 80), flags::SYN, 0).unwrap();
        s.inbound(&t4(Proto::Tcp, [198, 51, 100, 1], 80, (o.src, o.sport)), flags::SYN, 0, 0).unwrap();
        let mut cfg = Config::default();
        cfg.timeouts.udp = 120;
        cfg.timeouts.tcp_est = 600;
        let slice = s.slice().clone();
        assert_eq!(s.reconfigure(&cfg, slice, &[], 10 * MS), Ok(Reconfigured::default()));
        s.expire(119 * MS, usize::MAX);
        assert_eq!(s.counters.sessions_live_by_proto, [1, 1, 0]);
        s.expire(121 * MS, usize::MAX);
        assert_eq!(s.counters.sessions_live_by_proto, [1, 0, 0], "UDP now lives 120 s");
        // Established (7440 s before) now idles into TRANS after 600 s.
        s.expire(601 * MS, usize::MAX);
        assert_eq!(s.counters.tcp_states[TcpState::Trans as usize], 1);
        check(&s);
        // A new packet refreshes with the new value.
        udp_out(&mut s, 2, 5000, [198, 51, 100, 1], 53, 700 * MS);
        assert_eq!(views(&s).0.iter().find(|v| v.proto == Proto::Udp).unwrap().expires_s, 820);
    }

    #[test]
    fn reconfigure_pool4_keeps_sessions_still_owned_and_ends_the_rest() {
        let old = pool(
            &[(Proto::Udp, [192, 0, 2, 1], 32, 1024, 2047), (Proto::Udp, [192, 0, 2, 2], 32, 1024, 2047)],
            1,
        );
        let mut s = Shard::new(&Config::default(), old.slice(0), 0);
        let mut maps = vec![];
        for c in 0..200 {
            maps.push(udp_out(&mut s, c, 5000, [198, 51, 100, 1], 53, 0));
        }
        s.add_static(Proto::Udp, (client(999), 53), (Ipv4Addr::new(192, 0, 2, 2), 1500), 0).unwrap();
        // .2 leaves the pool, .1 keeps only 1024-1535, .3 arrives.
        let new = pool(
            &[(Proto::Udp, [192, 0, 2, 1], 32, 1024, 1535), (Proto::Udp, [192, 0, 2, 3], 32, 1024, 2047)],
            1,
        );
        let kept = |m: &(Ipv4Addr, u16)| m.0 == Ipv4Addr::new(192, 0, 2, 1) && m.1 <= 1535;
        let n_kept = maps.iter().filter(|m| kept(m)).count() as u64;
        assert!(n_kept > 0 && n_kept < 200);
        let statics = [(Proto::Udp, (client(999), 53), (Ipv4Addr::new(192, 0, 2, 2), 1500))];
        let r = s.reconfigure(&Config::default(), new.slice(0), &statics, 5 * MS).unwrap();
        assert_eq!(r, Reconfigured { ended_sessions: 200 - n_kept, ended_bib: 200 - n_kept + 1 });
        assert_eq!(s.counters.sessions_reconfigured, 200 - n_kept);
        check(&s);
        // The survivors answer on the same mapping; the others are gone.
        for (c, m) in maps.iter().enumerate() {
            let r = s.inbound(&t4(Proto::Udp, [198, 51, 100, 1], 53, *m), 0, 0, 6 * MS);
            if kept(m) {
                assert!(matches!(r, Ok(Inbound::Translate { dst, .. }) if dst == client(c as u16)));
            } else {
                assert!(r.is_err());
            }
        }
        // New mappings come from the new slice only.
        for c in 1000..1300 {
            let m = udp_out(&mut s, c, 5000, [198, 51, 100, 1], 53, 7 * MS);
            assert!(kept(&m) || m.0 == Ipv4Addr::new(192, 0, 2, 3), "{m:?}");
            assert_eq!(new.owner(Proto::Udp, m.0, m.1), Some(0));
        }
        check(&s);
    }

    #[test]
    fn reconfigure_diffs_static_bib_and_refuses_conflicts_untouched() {
        let mut s = shard(Config::default());
        let a = (Proto::Tcp, (client(1), 80), (POOL, 8080));
        let b = (Proto::Tcp, (client(2), 80), (POOL, 8081));
        s.add_static(a.0, a.1, a.2, 0).unwrap();
        s.add_static(b.0, b.1, b.2, 0).unwrap();
        // A session on b, from outside (static BIB: port forwarding).
        s.inbound(&t4(Proto::Tcp, [198, 51, 100, 9], 4000, b.2), flags::SYN, 0, 0).unwrap();
        let dynm = udp_out(&mut s, 3, 7000, [198, 51, 100, 1], 53, 0);
        let c = (Proto::Tcp, (client(4), 22), (POOL, 2222));
        // The dynamic UDP mapping becomes static.
        let d = (Proto::Udp, (client(3), 7000), dynm);
        let slice = s.slice().clone();
        let r = s.reconfigure(&Config::default(), slice.clone(), &[a, c, d], MS).unwrap();
        assert_eq!(r, Reconfigured { ended_sessions: 1, ended_bib: 1 }, "b ends with its session");
        let (_, bibs) = views(&s);
        let mut st: Vec<_> = bibs.iter().filter(|v| v.is_static).map(|v| (v.proto, v.v6, v.v4)).collect();
        st.sort_by_key(|x| x.2 .1);
        let mut want = vec![a, c, d];
        want.sort_by_key(|x| x.2 .1);
        assert_eq!(st, want);
        check(&s);
        // Conflicts are refused and nothing changes.
        let m6 = udp_out(&mut s, 6, 7100, [198, 51, 100, 1], 53, MS);
        let before = (views(&s), s.counters);
        // POOL:m6 is client(6)'s live dynamic mapping.
        let clash4 = (Proto::Udp, (client(5), 1), m6);
        let clash6 = (Proto::Udp, (client(6), 7100), (POOL, 9999));
        for bad in [vec![a, c, d, clash4], vec![a, c, d, clash6], vec![a, a]] {
            assert!(s.check_reconfigure(&Config::default(), &slice, &bad).is_err(), "{bad:?}");
            assert!(s.reconfigure(&Config::default(), slice.clone(), &bad, 2 * MS).is_err());
            assert_eq!((views(&s), s.counters), before);
        }
        // Table sizes cannot change live.
        let big = Config { max_sessions: 1 << 20, ..Config::default() };
        assert!(s.check_reconfigure(&big, &slice, &[a, c, d]).is_err());
    }

    #[test]
    fn advised_tables_behave_like_small_ones() {
        // Every session-scaled table above one huge page: all advised (the
        // default shard's are not), and the shard works the same on them.
        let cfg = Config {
            max_sessions: 400_000,
            max_sessions_per_client: 10,
            max_clients: 400_000,
            ..Config::default()
        };
        let mut s = shard(cfg.clone());
        for t in [s.sessions.on_huge_pages(), s.bibs.on_huge_pages(), s.clients.on_huge_pages()] {
            assert!(t);
        }
        assert!(!shard(Config::default()).sessions.on_huge_pages());
        let bytes = s.memory_bytes();
        let mut maps = vec![];
        for c in 0..300u16 {
            maps.push(udp_out(&mut s, c, 5000 + c, [198, 51, 100, 1], 53, 0));
        }
        for (c, &m) in maps.iter().enumerate() {
            let r = s.inbound(&t4(Proto::Udp, [198, 51, 100, 1], 53, m), 0, 0, 0);
            let want = (client(c as u16), 5000 + c as u16);
            assert!(matches!(r, Ok(Inbound::Translate { dst, dport, .. }) if (dst, dport) == want));
        }
        check(&s);
        assert_eq!(s.memory_bytes(), bytes);
        assert_eq!(s.live_sessions(), 300);
    }

    #[test]
    fn reconfigure_filtering_and_client_limits_live() {
        let mut s = shard(Config::default());
        let m = udp_out(&mut s, 1, 5000, [198, 51, 100, 1], 53, 0);
        udp_out(&mut s, 1, 5001, [198, 51, 100, 1], 53, 0);
        udp_out(&mut s, 1, 5002, [198, 51, 100, 1], 53, 0);
        let cfg = Config {
            filtering: Filtering::AddressDependent,
            max_sessions_per_client: 2,
            client_prefix_len: 64,
            ..Config::default()
        };
        let slice = s.slice().clone();
        s.reconfigure(&cfg, slice, &[], MS).unwrap();
        check(&s);
        // ADF now: a host the client never sent to is filtered.
        let r = s.inbound(&t4(Proto::Udp, [203, 0, 113, 1], 53, m), 0, 0, 2 * MS);
        assert_eq!(r, Err(DropReason::AddressFiltered));
        let r = s.inbound(&t4(Proto::Udp, [198, 51, 100, 1], 53, m), 0, 0, 2 * MS);
        assert!(matches!(r, Ok(Inbound::Translate { created: false, .. })));
        // A new session from a contacted host would pass ADF but the /64
        // is above its new quota.
        let r = s.inbound(&t4(Proto::Udp, [198, 51, 100, 1], 99, m), 0, 0, 2 * MS);
        assert_eq!(r, Err(DropReason::ClientQuota));
        // The /64 is above its new quota: existing flows stay, new ones wait.
        assert_eq!(s.counters.sessions_live, 3);
        let r = s.outbound(&t6(Proto::Udp, 7, 1, [198, 51, 100, 1], 53), 0, 3 * MS);
        assert_eq!(r.err(), Some(DropReason::ClientQuota), "client(7) shares client(1)'s /64");
        check(&s);
    }

    #[test]
    fn stats_by_protocol_state_and_pool4_address() {
        let entries = [
            Pool4Entry {
                proto: Proto::Udp,
                prefix: Ipv4Addr::new(192, 0, 2, 8),
                prefix_len: 30,
                port_min: 1000,
                port_max: 1003,
            },
            Pool4Entry { proto: Proto::Tcp, prefix: POOL, prefix_len: 32, port_min: 1024, port_max: 65535 },
            Pool4Entry { proto: Proto::Icmp, prefix: POOL, prefix_len: 32, port_min: 1, port_max: 65535 },
        ];
        let pool = Pool4::new(&entries, 1).unwrap();
        let mut s = Shard::new(&Config::default(), pool.slice(0), 0);
        for c in 0..6 {
            udp_out(&mut s, c, 5000, [198, 51, 100, 1], 53, 0);
        }
        s.outbound(&t6(Proto::Icmp, 1, 77, [198, 51, 100, 1], 0), 0, 0).unwrap();
        let o = s.outbound(&t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 80), flags::SYN, 0).unwrap();
        s.outbound(&t6(Proto::Tcp, 2, 40000, [198, 51, 100, 1], 80), flags::SYN, 0).unwrap();
        assert_eq!(s.counters.sessions_live_by_proto, [2, 6, 1]);
        assert_eq!(s.counters.bib_live_by_proto, [2, 6, 1]);
        assert_eq!(s.counters.tcp_states[TcpState::V6Init as usize], 2);
        s.inbound(&t4(Proto::Tcp, [198, 51, 100, 1], 80, (o.src, o.sport)), flags::SYN, 0, 1).unwrap();
        assert_eq!(s.counters.tcp_states[TcpState::V6Init as usize], 1);
        assert_eq!(s.counters.tcp_states[TcpState::Established as usize], 1);
        check(&s);
        let mut u = vec![];
        s.pool4_use(|x| u.push(*x));
        let udp: u32 = u.iter().filter(|x| x.proto == Proto::Udp).map(|x| x.in_use).sum();
        assert_eq!(udp, 6);
        assert!(u.iter().filter(|x| x.proto == Proto::Udp).all(|x| x.ports == 4 && x.in_use <= 4));
        assert!(u.contains(&PoolUse { proto: Proto::Tcp, addr: POOL, in_use: 2, ports: 64512 }));
        assert!(u.contains(&PoolUse { proto: Proto::Icmp, addr: POOL, in_use: 1, ports: 65535 }));
        // The established one idles into TRANS, the rest expire.
        s.expire(7500 * MS, usize::MAX);
        assert_eq!(s.counters.tcp_states[TcpState::Trans as usize], 1);
        check(&s);
        s.expire(9000 * MS, usize::MAX);
        assert_eq!(s.counters.sessions_live_by_proto, [0; 3]);
        assert_eq!(s.counters.tcp_states, [0; 8]);
        let mut n = 0;
        s.pool4_use(|_| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn record_sizes() {
        assert_eq!(core::mem::size_of::<Session>(), 16);
        assert_eq!(core::mem::size_of::<Bib>(), 28);
    }

    #[test]
    fn endpoint_independent_mapping() {
        // RFC 4787 REQ-1 / RFC 6146 §3.5.1.1: one IPv6 transport address,
        // one IPv4 mapping, whatever the destination.
        let mut s = shard(Config::default());
        let m = udp_out(&mut s, 1, 40000, [198, 51, 100, 1], 53, 0);
        for d in 2..50u8 {
            assert_eq!(udp_out(&mut s, 1, 40000, [198, 51, 100, d], 1000 + d as u16, 0), m);
        }
        assert_eq!(s.counters.bib_live, 1);
        assert_eq!(s.counters.sessions_live, 49);
        assert_ne!(udp_out(&mut s, 1, 40001, [198, 51, 100, 1], 53, 0), m);
        assert_eq!(m.0, POOL);
        check(&s);
    }

    #[test]
    fn inbound_reaches_client_and_refreshes() {
        let mut s = shard(Config::default());
        let m = udp_out(&mut s, 7, 5353, [203, 0, 113, 9], 53, 0);
        let r = s.inbound(&t4(Proto::Udp, [203, 0, 113, 9], 53, m), 0, 0, 100 * MS).unwrap();
        assert_eq!(r, Inbound::Translate { session: 0, dst: client(7), dport: 5353, created: false });
        // Refreshed at 100 s: alive at 399 s, gone at 400 s.
        s.expire(399 * MS, 1 << 20);
        assert_eq!(s.live_sessions(), 1);
        s.expire(400 * MS, 1 << 20);
        assert_eq!(s.live_sessions(), 0);
        assert_eq!(s.counters.bib_live, 0);
        assert_eq!(s.counters.sessions_expired[Proto::Udp as usize], 1);
        check(&s);
    }

    #[test]
    fn endpoint_independent_filtering_by_default() {
        let mut s = shard(Config::default());
        let m = udp_out(&mut s, 1, 4000, [198, 51, 100, 1], 53, 0);
        let r = s.inbound(&t4(Proto::Udp, [203, 0, 113, 77], 999, m), 0, 0, 0).unwrap();
        assert!(matches!(r, Inbound::Translate { created: true, dport: 4000, .. }));
        assert_eq!(s.live_sessions(), 2);
        check(&s);
    }

    #[test]
    fn address_dependent_filtering() {
        let cfg = Config { filtering: Filtering::AddressDependent, ..Config::default() };
        let mut s = shard(cfg);
        let m = udp_out(&mut s, 1, 4000, [198, 51, 100, 1], 53, 0);
        let stranger = t4(Proto::Udp, [203, 0, 113, 77], 999, m);
        assert_eq!(s.inbound(&stranger, 0, 0, 0), Err(DropReason::AddressFiltered));
        // Same host the client talked to, other port: allowed (ADF, not APDF).
        let known = t4(Proto::Udp, [198, 51, 100, 1], 5353, m);
        assert!(matches!(s.inbound(&known, 0, 0, 0), Ok(Inbound::Translate { created: true, .. })));
        assert_eq!(s.counters.refused(DropReason::AddressFiltered), 1);
        check(&s);
        // Once the client's last session to that host is gone, it is filtered again.
        s.expire(301 * MS, 1 << 20);
        assert_eq!(s.inbound(&known, 0, 0, 301 * MS), Err(DropReason::NoBinding));
    }

    #[test]
    fn refusals_without_binding_or_ownership() {
        let mut s = shard(Config::default());
        let unbound = t4(Proto::Udp, [203, 0, 113, 1], 53, (POOL, 5555));
        assert_eq!(s.inbound(&unbound, 0, 0, 0), Err(DropReason::NoBinding));
        let foreign = t4(Proto::Udp, [203, 0, 113, 1], 53, (Ipv4Addr::new(192, 0, 2, 2), 5555));
        assert_eq!(s.inbound(&foreign, 0, 0, 0), Err(DropReason::NotOwned));
        let below = t4(Proto::Udp, [203, 0, 113, 1], 53, (POOL, 80));
        assert_eq!(s.inbound(&below, 0, 0, 0), Err(DropReason::NotOwned));
        assert_eq!(s.counters.refused(DropReason::NoBinding), 1);
        assert_eq!(s.counters.refused(DropReason::NotOwned), 2);
    }

    #[test]
    fn parity_and_port_class_kept() {
        let mut s = shard_with(Config::default(), 0, 65535);
        for c in 0..300u16 {
            for sport in [c * 2 + 1025, c * 2 + 1026, 1 + c % 1000, 2 + c % 1000] {
                let (_, p) = udp_out(&mut s, c, sport, [198, 51, 100, 1], 9, 0);
                assert_eq!(p & 1, sport & 1, "parity of {sport} -> {p}");
                assert_eq!(p < 1024, sport < 1024, "class of {sport} -> {p}");
            }
        }
        check(&s);
    }

    #[test]
    fn allocation_is_unpredictable_and_seeded() {
        let ports = |seed: u64| {
            let mut s = shard(Config { seed, ..Config::default() });
            (0..64u16).map(|c| udp_out(&mut s, c, 5000, [198, 51, 100, 1], 9, 0).1).collect::<Vec<_>>()
        };
        let a = ports(1);
        assert_eq!(a, ports(1));
        assert_ne!(a, ports(2));
        // Not a counter: consecutive allocations are not neighbours.
        let close = a.windows(2).filter(|w| w[0].abs_diff(w[1]) <= 2).count();
        assert!(close < 4, "{a:?}");
    }

    #[test]
    fn new_bib_entries_take_the_slots_the_lookahead_requests() {
        // 400 clients on one address's ports 1000-1511 (about 240 of each
        // parity in the ephemeral class): the hashed attempts collide more
        // and more as the pool fills; the allocator must take the first
        // free one of them, the slot the look-ahead requested, or draw.
        let mut s = shard_with(Config { port_attempts: 64, ..Config::default() }, 1000, 1511);
        let (mut hashed, mut drawn) = (0, 0);
        for c in 0..400u16 {
            let t = t6(Proto::Udp, c, 40000 + c, [198, 51, 100, 1], 9);
            let hb = s.bib_hash(t.proto, t.src.to_bits(), t.sport);
            let predicted: Vec<u32> = s.hashed_slots(t.proto, t.src.to_bits(), t.sport, hb).collect();
            assert_eq!(predicted.len(), HASHED_ATTEMPTS as usize);
            let first_free =
                predicted.iter().copied().find(|&x| s.v4[Proto::Udp as usize][x as usize] == NONE);
            let o = s.outbound(&t, 0, 0).unwrap();
            let slot = s.slice.slot(Proto::Udp, o.src.to_bits(), o.sport).unwrap();
            match first_free {
                Some(x) => {
                    assert_eq!(slot, x, "client {c}");
                    hashed += 1;
                }
                None => drawn += 1,
            }
            // Parity kept (RFC 4787 REQ-3) whichever attempt won.
            assert_eq!(o.sport & 1, t.sport & 1);
        }
        assert!(hashed > 300 && drawn > 0, "hashed {hashed}, drawn {drawn}");
        check(&s);
    }

    #[test]
    fn pool_exhaustion_refuses_new_flows_only() {
        let mut s = shard_with(Config { port_attempts: 256, ..Config::default() }, 2000, 2009);
        let mut maps = vec![];
        for c in 0..10u16 {
            maps.push(udp_out(&mut s, c, 3000 + (c & 1), [198, 51, 100, 1], 9, 0));
        }
        let r = s.outbound(&t6(Proto::Udp, 99, 3000, [198, 51, 100, 1], 9), 0, 0);
        assert_eq!(r.err(), Some(DropReason::PoolExhausted));
        assert_eq!(s.counters.refused(DropReason::PoolExhausted), 1);
        // Established flows and new sessions on existing BIB entries still work.
        assert_eq!(udp_out(&mut s, 3, 3001, [198, 51, 100, 1], 9, 0), maps[3]);
        assert_eq!(udp_out(&mut s, 3, 3001, [198, 51, 100, 2], 9, 0), maps[3]);
        check(&s);
    }

    #[test]
    fn session_table_full() {
        let mut s = shard(Config { max_sessions: 4, ..Config::default() });
        for c in 0..4 {
            udp_out(&mut s, c, 1000, [198, 51, 100, 1], 9, 0);
        }
        let r = s.outbound(&t6(Proto::Udp, 9, 1000, [198, 51, 100, 1], 9), 0, 0);
        assert_eq!(r.err(), Some(DropReason::SessionTableFull));
        assert!(s.outbound(&t6(Proto::Udp, 2, 1000, [198, 51, 100, 1], 9), 0, 0).is_ok());
        s.expire(300 * MS, 1 << 20);
        assert!(s.outbound(&t6(Proto::Udp, 9, 1000, [198, 51, 100, 1], 9), 0, 300 * MS).is_ok());
        check(&s);
    }

    #[test]
    fn bib_table_smaller_than_session_table() {
        let mut s = shard(Config { max_sessions: 8, max_bib: 2, max_static: 0, ..Config::default() });
        udp_out(&mut s, 1, 1000, [198, 51, 100, 1], 9, 0);
        udp_out(&mut s, 2, 1000, [198, 51, 100, 1], 9, 0);
        let r = s.outbound(&t6(Proto::Udp, 3, 1000, [198, 51, 100, 1], 9), 0, 0);
        assert_eq!(r.err(), Some(DropReason::BibTableFull));
        // Sessions sharing an existing BIB entry are still fine.
        for d in 2..8 {
            udp_out(&mut s, 1, 1000, [198, 51, 100, d], 9, 0);
        }
        assert_eq!(s.live_sessions(), 8);
        check(&s);
    }

    #[test]
    fn per_client_quota_by_prefix() {
        let cfg = Config { max_sessions_per_client: 3, client_prefix_len: 64, ..Config::default() };
        let mut s = shard(cfg);
        for (c, port) in [(1, 1000), (2, 1001), (1, 1002)] {
            udp_out(&mut s, c, port, [198, 51, 100, 1], 9, 0);
        }
        // Clients ::1 and ::2 share a /64: the fourth session is refused.
        let r = s.outbound(&t6(Proto::Udp, 2, 1003, [198, 51, 100, 1], 9), 0, 0);
        assert_eq!(r.err(), Some(DropReason::ClientQuota));
        let mut other = t6(Proto::Udp, 1, 1003, [198, 51, 100, 1], 9);
        other.src = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
        assert!(s.outbound(&other, 0, 0).is_ok());
        // Inbound session creation counts too.
        let m = s.bib6(Proto::Udp, client(1), 1000).unwrap();
        let r = s.inbound(&t4(Proto::Udp, [203, 0, 113, 3], 7, m), 0, 0, 0);
        assert_eq!(r, Err(DropReason::ClientQuota));
        s.expire(300 * MS, 1 << 20);
        assert!(s.outbound(&t6(Proto::Udp, 2, 1003, [198, 51, 100, 1], 9), 0, 300 * MS).is_ok());
        check(&s);
    }

    #[test]
    fn static_bib_never_expires() {
        let mut s = shard(Config::default());
        let server = (client(80), 80);
        let fwd = (POOL, 8080);
        s.add_static(Proto::Tcp, server, fwd, 0).unwrap();
        assert_eq!(s.bib4(Proto::Tcp, POOL, 8080), Some(server));
        let syn = t4(Proto::Tcp, [203, 0, 113, 5], 50000, fwd);
        let r = s.inbound(&syn, flags::SYN, 1, 0).unwrap();
        assert!(matches!(r, Inbound::Translate { created: true, dport: 80, .. }));
        s.expire(100_000 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 0);
        assert_eq!(s.bib4(Proto::Tcp, POOL, 8080), Some(server));
        check(&s);
        assert_eq!(s.add_static(Proto::Tcp, (client(81), 80), fwd, 0), Err(StaticBibError::V4InUse));
        assert_eq!(s.add_static(Proto::Tcp, server, (POOL, 8081), 0), Err(StaticBibError::V6InUse));
        assert_eq!(
            s.add_static(Proto::Tcp, server, (Ipv4Addr::new(10, 0, 0, 1), 1), 0),
            Err(StaticBibError::NotOwned)
        );
        // IPv6 server connecting out uses the static mapping (EIM).
        let o = s.outbound(&t6(Proto::Tcp, 80, 80, [198, 51, 100, 1], 443), flags::SYN, 0).unwrap();
        assert_eq!((o.src, o.sport), fwd);
        assert!(s.remove_static(Proto::Tcp, fwd, 0));
        assert_eq!(s.bib4(Proto::Tcp, POOL, 8080), Some(server));
        s.expire(200_000 * MS, usize::MAX);
        assert_eq!(s.bib4(Proto::Tcp, POOL, 8080), None);
        check(&s);
    }

    fn tcp_state(s: &Shard, sess: u32) -> TcpState {
        TcpState::from_u8(s.sessions[sess as usize].state)
    }

    #[test]
    fn tcp_lifecycle_and_timers() {
        let mut s = shard(Config::default());
        let out = t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 443);
        let o = s.outbound(&out, flags::SYN, 0).unwrap();
        assert_eq!(tcp_state(&s, o.session), TcpState::V6Init);
        let back = t4(Proto::Tcp, [198, 51, 100, 1], 443, (o.src, o.sport));
        s.inbound(&back, flags::SYN | 0x10, 0, MS).unwrap();
        assert_eq!(tcp_state(&s, o.session), TcpState::Established);
        // TCP_TRANS (240 s) does not apply any more; TCP_EST does.
        s.expire(1000 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 1);
        // Idle past TCP_EST: moved to TRANS, then deleted TCP_TRANS later.
        s.expire(7441 * MS, usize::MAX);
        assert_eq!(tcp_state(&s, o.session), TcpState::Trans);
        s.expire((7441 + 239) * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 1);
        s.expire((7441 + 240) * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 0);
        check(&s);
    }

    #[test]
    fn tcp_rst_shortens_lifetime() {
        let mut s = shard(Config::default());
        let out = t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 443);
        let o = s.outbound(&out, flags::SYN, 0).unwrap();
        let back = t4(Proto::Tcp, [198, 51, 100, 1], 443, (o.src, o.sport));
        s.inbound(&back, flags::SYN | 0x10, 0, 0).unwrap();
        s.outbound(&out, 0x10, 10 * MS).unwrap();
        s.inbound(&back, flags::RST, 0, 20 * MS).unwrap();
        assert_eq!(tcp_state(&s, o.session), TcpState::Trans);
        s.expire(259 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 1);
        s.expire(260 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 0);
        check(&s);
    }

    #[test]
    fn tcp_fin_both_sides() {
        let mut s = shard(Config::default());
        let out = t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 443);
        let o = s.outbound(&out, flags::SYN, 0).unwrap();
        let back = t4(Proto::Tcp, [198, 51, 100, 1], 443, (o.src, o.sport));
        s.inbound(&back, flags::SYN | 0x10, 0, 0).unwrap();
        s.outbound(&out, flags::FIN, 0).unwrap();
        assert_eq!(tcp_state(&s, o.session), TcpState::V6FinRcv);
        s.inbound(&back, flags::FIN, 0, 5 * MS).unwrap();
        assert_eq!(tcp_state(&s, o.session), TcpState::V6FinV4FinRcv);
        s.outbound(&out, 0x10, 100 * MS).unwrap(); // does not refresh
        s.expire(245 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 0);
    }

    #[test]
    fn tcp_needs_syn() {
        let mut s = shard(Config::default());
        let out = t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 443);
        assert_eq!(s.outbound(&out, 0x10, 0).err(), Some(DropReason::TcpNoSession));
        let o = s.outbound(&out, flags::SYN, 0).unwrap();
        let other = t4(Proto::Tcp, [198, 51, 100, 9], 443, (o.src, o.sport));
        assert_eq!(s.inbound(&other, 0x10, 0, 0), Err(DropReason::TcpNoSession));
        assert_eq!(s.counters.refused(DropReason::TcpNoSession), 2);
    }

    #[test]
    fn unsolicited_syn_held_six_seconds() {
        let mut s = shard(Config { max_held_syn: 2, ..Config::default() });
        let syn = t4(Proto::Tcp, [203, 0, 113, 5], 1234, (POOL, 6000));
        assert_eq!(s.inbound(&syn, flags::SYN, 77, 1000), Ok(Inbound::Held));
        assert_eq!(s.inbound(&syn, flags::SYN, 78, 2000), Err(DropReason::HeldSynDuplicate));
        let syn2 = t4(Proto::Tcp, [203, 0, 113, 6], 1234, (POOL, 6000));
        assert_eq!(s.inbound(&syn2, flags::SYN, 79, 3000), Ok(Inbound::Held));
        let syn3 = t4(Proto::Tcp, [203, 0, 113, 7], 1234, (POOL, 6000));
        assert_eq!(s.inbound(&syn3, flags::SYN, 80, 3000), Err(DropReason::HeldSynFull));
        assert_eq!(s.live_sessions(), 0);
        assert_eq!(s.take_expired_syn(6999), None);
        assert_eq!(s.take_expired_syn(7000), Some(77));
        assert_eq!(s.take_expired_syn(7000), None);
        assert_eq!(s.take_expired_syn(9000), Some(79));
        assert_eq!(s.held_syns(), 0);
        assert_eq!(s.counters.syn_held_expired, 2);
    }

    #[test]
    fn simultaneous_open_releases_held_syn() {
        let cfg = Config { filtering: Filtering::AddressDependent, ..Config::default() };
        let mut s = shard(cfg);
        // The client has a mapping (towards a rendezvous server)...
        let o = s.outbound(&t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 3478), flags::SYN, 0).unwrap();
        // ...the peer's SYN arrives first and is held (ADF, unknown host)...
        let peer = t4(Proto::Tcp, [203, 0, 113, 50], 5000, (o.src, o.sport));
        assert_eq!(s.inbound(&peer, flags::SYN, 42, MS), Ok(Inbound::Held));
        // ...then the client's SYN to the peer: the held one is released,
        // by the general path (the express path leaves this SYN to it).
        let t = t6(Proto::Tcp, 1, 40000, [203, 0, 113, 50], 5000);
        let hb = s.outbound_existing(&t, flags::SYN, 2 * MS).unwrap_err();
        assert!(s.outbound_created(&t, hb, flags::SYN, 2 * MS).is_none());
        let o2 = s.outbound(&t, flags::SYN, 2 * MS).unwrap();
        assert_eq!(o2.released_syn, Some(42));
        assert_eq!(s.take_expired_syn(100 * MS), None);
        // The peer's retransmitted SYN now completes the handshake.
        let r = s.inbound(&peer, flags::SYN | 0x10, 0, 3 * MS).unwrap();
        assert!(matches!(r, Inbound::Translate { created: false, .. }));
        assert_eq!(tcp_state(&s, o2.session), TcpState::Established);
        assert_eq!(s.counters.syn_held_matched, 1);
    }

    #[test]
    fn drop_externally_initiated_tcp() {
        let mut s = shard(Config { drop_external_tcp: true, ..Config::default() });
        s.add_static(Proto::Tcp, (client(80), 80), (POOL, 8080), 0).unwrap();
        let syn = t4(Proto::Tcp, [203, 0, 113, 5], 1234, (POOL, 8080));
        assert_eq!(s.inbound(&syn, flags::SYN, 1, 0), Err(DropReason::ExternalTcp));
        assert_eq!(s.held_syns(), 0);
    }

    #[test]
    fn icmp_query_by_identifier() {
        let mut s = shard(Config::default());
        let ping = t6(Proto::Icmp, 1, 0x1234, [198, 51, 100, 1], 0);
        let o = s.outbound(&ping, 0, 0).unwrap();
        // The remote "port" is meaningless for ICMP and ignored.
        let mut again = ping;
        again.dport = 999;
        assert_eq!(s.outbound(&again, 0, 0).unwrap().session, o.session);
        let reply = t4(Proto::Icmp, [198, 51, 100, 1], 0, (o.src, o.sport));
        let r = s.inbound(&reply, 0, 0, 0).unwrap();
        assert!(matches!(r, Inbound::Translate { dport: 0x1234, created: false, .. }));
        s.expire(59 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 1);
        s.expire(60 * MS, usize::MAX);
        assert_eq!(s.live_sessions(), 0);
        assert_eq!(s.counters.sessions_expired[Proto::Icmp as usize], 1);
    }

    #[test]
    fn icmp_error_lookups_create_nothing() {
        let mut s = shard(Config::default());
        let t = t6(Proto::Udp, 1, 4000, [198, 51, 100, 1], 53);
        assert_eq!(s.lookup6(&t), None);
        let before = s.counters;
        let o = s.outbound(&t, 0, 0).unwrap();
        assert_eq!(before.sessions_created, [0; 3]);
        assert_eq!(s.lookup6(&t), Some((o.src, o.sport)));
        let quoted = t4(Proto::Udp, [198, 51, 100, 1], 53, (o.src, o.sport));
        assert_eq!(s.lookup4(&quoted), Some((client(1), 4000)));
        let other = t4(Proto::Udp, [198, 51, 100, 2], 53, (o.src, o.sport));
        assert_eq!(s.lookup4(&other), None);
        let exp = s.sessions[o.session as usize].expires;
        let c = s.counters;
        let _ = s.lookup6(&t);
        assert_eq!(s.sessions[o.session as usize].expires, exp);
        assert_eq!(s.counters, c);
    }

    #[test]
    fn sweep_work_is_bounded() {
        let mut s = shard(Config { max_sessions: 5000, ..Config::default() });
        for c in 0..1000 {
            udp_out(&mut s, c, 1000, [198, 51, 100, 1], 9, 0);
        }
        // 1000 sessions due at once: one full pass (5000 visits) and 1000
        // deletions, at most 64 units per call.
        let mut calls = 0;
        let mut total = 0;
        loop {
            let gone0 = 1000 - s.live_sessions() as usize;
            let w = s.expire(300 * MS, 64);
            assert!(w <= 64);
            assert!(1000 - s.live_sessions() as usize - gone0 <= 64, "deletions per call");
            total += w;
            calls += 1;
            if w < 64 {
                break;
            }
        }
        assert_eq!(s.live_sessions(), 0);
        assert!(calls >= 20, "{calls}");
        // One full pass, then caught up (each unit is 16 visits or one
        // deletion; a call may overshoot its last unit by one).
        assert!(total * VISITS_PER_UNIT >= 5000 + 1000 * VISITS_PER_UNIT - calls * 2 * VISITS_PER_UNIT);
        assert_eq!(s.counters.sweep_visits, 5000);
        check(&s);
    }

    /// Calls `expire` every `step` ms from `from` to `to` (inclusive) with
    /// the worker's budget, as its housekeeping does, and checks each call
    /// keeps pace unless it ended sessions; `f` runs after each. Catches up
    /// at `from` first.
    fn pace(s: &mut Shard, from: u64, to: u64, step: u64, mut f: impl FnMut(&mut Shard, u64)) {
        while s.expire(from, 256) == 256 {}
        let mut now = from;
        while now <= to {
            let live = s.live_sessions();
            let w = s.expire(now, 256);
            assert!(w < 256 || s.live_sessions() < live, "the sweep fell behind at {now} ms");
            f(s, now);
            now += step;
        }
    }

    #[test]
    fn paced_expiry_is_late_by_at_most_one_sweep() {
        let mut s = shard(Config { max_sessions: 20_000, ..Config::default() });
        // 5000 sessions created over 5 s: expiries at 300..=304 s.
        let mut due = vec![];
        for i in 0..5000u64 {
            udp_out(&mut s, i as u16, 1000, [198, 51, 100, 1], 9, i);
            due.push((i / 1000 + 300) * MS);
        }
        pace(&mut s, 290 * MS, 306 * MS, 1, |s, now| {
            let gone = 5000 - s.live_sessions() as usize;
            let may_go = due.iter().filter(|&&d| d <= now).count();
            let must_go = due.iter().filter(|&&d| d + SWEEP_MS <= now).count();
            assert!((must_go..=may_go).contains(&gone), "{now} ms: {gone} gone, {must_go}..={may_go}");
        });
        assert_eq!(s.live_sessions(), 0);
        check(&s);
    }

    #[test]
    fn refresh_keeps_a_session_under_the_sweep() {
        let mut s = shard(Config { max_sessions: 1024, ..Config::default() });
        let a = udp_out(&mut s, 1, 1000, [198, 51, 100, 1], 9, 0);
        // Refreshed every 200 s (UDP lifetime 300 s), alive throughout.
        pace(&mut s, 0, 600 * MS, 100, |s, now| {
            if now % (200 * MS) == 0 {
                assert_eq!(udp_out(s, 1, 1000, [198, 51, 100, 1], 9, now), a);
            }
            assert_eq!(s.live_sessions(), 1, "{now} ms");
        });
        // Last refresh at 600 s: ends at 900 s, within a sweep.
        pace(&mut s, 600 * MS, 900 * MS - 1, 250, |s, _| assert_eq!(s.live_sessions(), 1));
        all_end_within_a_sweep(&mut s, 900 * MS);
    }

    /// A small shard with one TCP session established at 1 s, and the
    /// tuple of its IPv4 side.
    fn established_at_1s() -> (Shard, Outbound, Tuple4) {
        let mut s = shard(Config { max_sessions: 1024, ..Config::default() });
        let out = t6(Proto::Tcp, 1, 40000, [198, 51, 100, 1], 443);
        let o = s.outbound(&out, flags::SYN, 0).unwrap();
        let back = t4(Proto::Tcp, [198, 51, 100, 1], 443, (o.src, o.sport));
        s.inbound(&back, flags::SYN | 0x10, 0, MS).unwrap();
        (s, o, back)
    }

    /// Paces the sweep for one period from `at` (ms): every session is
    /// gone by then.
    fn all_end_within_a_sweep(s: &mut Shard, at: u64) {
        pace(s, at, at + SWEEP_MS, 10, |_, _| {});
        assert_eq!(s.live_sessions(), 0);
        check(s);
    }

    #[test]
    fn paced_sweep_moves_idle_tcp_to_trans_then_ends_it() {
        let (mut s, o, _) = established_at_1s();
        // Established at 1 s: TCP_EST runs out at 7441 s.
        pace(&mut s, 7_000 * MS, 7_441 * MS - 1, 500, |s, _| {
            assert_eq!(tcp_state(s, o.session), TcpState::Established)
        });
        let mut moved = None;
        pace(&mut s, 7_441 * MS, 7_441 * MS + SWEEP_MS, 10, |s, now| {
            if moved.is_none() && tcp_state(s, o.session) == TcpState::Trans {
                moved = Some(now);
            }
        });
        let moved = moved.expect("moved to TRANS within a sweep");
        // TCP_TRANS (240 s) from the move, then gone within a sweep.
        let end = moved / MS * MS + 240 * MS;
        pace(&mut s, moved + 10, end - 1, 1000, |s, _| assert_eq!(s.live_sessions(), 1));
        all_end_within_a_sweep(&mut s, end);
        assert_eq!(s.counters.tcp_states, [0; 8]);
    }

    #[test]
    fn shortened_lifetime_takes_effect_by_the_next_visit() {
        let (mut s, _, back) = established_at_1s();
        pace(&mut s, 0, 10 * MS, 100, |_, _| {});
        // RST: TCP_TRANS from now (10 s), not TCP_EST.
        s.inbound(&back, flags::RST, 0, 10 * MS).unwrap();
        pace(&mut s, 10 * MS, 250 * MS - 1, 1000, |s, _| assert_eq!(s.live_sessions(), 1));
        all_end_within_a_sweep(&mut s, 250 * MS);
    }

    #[test]
    fn large_table_is_swept_within_the_pace() {
        // A million records, 1000 live ones due at 300 s: calls every
        // millisecond with the worker's budget keep up (about 1050 visits
        // each, 4096 allowed) and end them within a sweep.
        let cap = 1 << 20;
        let mut s = shard(Config { max_sessions: cap, ..Config::default() });
        for c in 0..1000 {
            udp_out(&mut s, c, 1000, [198, 51, 100, 1], 9, 0);
        }
        s.expire(299 * MS, usize::MAX);
        let v0 = s.counters.sweep_visits;
        pace(&mut s, 299 * MS + 1, 300 * MS - 1, 1, |s, _| assert_eq!(s.live_sessions(), 1000));
        // One full pass per second of calls.
        assert!(s.counters.sweep_visits - v0 >= u64::from(cap) * 999 / 1000);
        pace(&mut s, 300 * MS, 300 * MS + SWEEP_MS, 1, |_, _| {});
        assert_eq!(s.live_sessions(), 0);
        check(&s);
    }

    #[test]
    fn long_pause_and_far_expiry() {
        // A timeout of hours and a caller that stops calling for hours:
        // the first calls after the pause make one full pass.
        let t = Timeouts { udp: 20_000, ..Timeouts::default() };
        let mut s = shard(Config { timeouts: t, ..Config::default() });
        udp_out(&mut s, 1, 1000, [198, 51, 100, 1], 9, 0);
        udp_out(&mut s, 2, 1000, [198, 51, 100, 1], 9, 19_000 * MS);
        while s.expire(19_999 * MS, 1000) == 1000 {}
        assert_eq!(s.live_sessions(), 2);
        let v0 = s.counters.sweep_visits;
        while s.expire(20_000 * MS, 1000) == 1000 {}
        assert_eq!(s.live_sessions(), 1);
        assert_eq!(s.counters.sweep_visits - v0, u64::from(s.capacity()));
        // A pause of 10 000 s owes one pass, not 10 000.
        let v0 = s.counters.sweep_visits;
        let mut calls = 0;
        while s.expire(50_000 * MS, 256) == 256 {
            calls += 1;
        }
        assert_eq!(s.live_sessions(), 0);
        assert_eq!(s.counters.sweep_visits - v0, u64::from(s.capacity()));
        assert!(calls <= 16, "{calls}");
        check(&s);
    }

    #[test]
    fn events_and_overflow() {
        let q = Arc::new(ArrayQueue::new(3));
        let mut s = shard(Config { events: Some(q.clone()), ..Config::default() });
        let (a, p) = udp_out(&mut s, 1, 4000, [198, 51, 100, 1], 53, 5);
        let e1 = q.pop().unwrap();
        assert_eq!(e1.kind, EventKind::BibCreated);
        assert_eq!((e1.v6, e1.v4, e1.time_ms), ((client(1), 4000), (a, p), 5));
        let e2 = q.pop().unwrap();
        assert_eq!(e2.kind, EventKind::SessionCreated);
        assert_eq!(e2.remote, (Ipv4Addr::new(198, 51, 100, 1), 53));
        assert_eq!(e2.proto, Proto::Udp);
        for c in 2..5 {
            udp_out(&mut s, c, 4000, [198, 51, 100, 1], 53, 5);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(s.counters.events_dropped, 3);
        while q.pop().is_some() {}
        s.expire(305 * MS, usize::MAX);
        let kinds: Vec<_> = std::iter::from_fn(|| q.pop()).map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::SessionDeleted, EventKind::BibDeleted, EventKind::SessionDeleted]);
        assert_eq!(s.counters.events_dropped, 3 + 5);
    }

    fn block_shard(size: u16, max: u16, lo: u16, hi: u16, q: &Arc<ArrayQueue<Event>>) -> Shard {
        let allocation = Allocation::Blocks(super::super::BlockConfig { size, max_per_client: max });
        let cfg = Config { allocation, session_events: false, events: Some(q.clone()), ..Config::default() };
        shard_with(cfg, lo, hi)
    }

    fn drain(q: &ArrayQueue<Event>) -> Vec<Event> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn port_blocks_on_demand_limit_and_release() {
        let q = Arc::new(ArrayQueue::new(64));
        // 64 ports: four blocks of 16.
        let mut s = block_shard(16, 2, 1024, 1087, &q);
        assert_eq!(s.counters.blocks_total[Proto::Udp as usize], 4);
        let mut ports = Vec::new();
        for sp in 0..16 {
            ports.push(udp_out(&mut s, 1, 5000 + sp, [198, 51, 100, 1], 53, 0).1);
        }
        let first = (ports.iter().min().unwrap() - 1024) / 16 * 16 + 1024;
        assert!(ports.iter().all(|&p| (first..first + 16).contains(&p)), "{ports:?}");
        // One block event, no session or BIB events.
        let ev = drain(&q);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::BlockAllocated);
        assert_eq!((ev[0].v6, ev[0].v4, ev[0].remote.1), ((client(1), 128), (POOL, first), first + 15));
        // A second block on demand, then the limit.
        udp_out(&mut s, 1, 6000, [198, 51, 100, 1], 53, 0);
        assert_eq!(drain(&q).len(), 1);
        for sp in 6001..6016 {
            udp_out(&mut s, 1, sp, [198, 51, 100, 1], 53, 0);
        }
        let r = s.outbound(&t6(Proto::Udp, 1, 7000, [198, 51, 100, 1], 53), 0, 0);
        assert_eq!(r.err(), Some(DropReason::BlockLimit));
        // Another client takes the last two blocks; a third finds none.
        for sp in 0..17 {
            udp_out(&mut s, 2, 5000 + sp, [198, 51, 100, 1], 53, 0);
        }
        let r = s.outbound(&t6(Proto::Udp, 3, 5000, [198, 51, 100, 1], 53), 0, 0);
        assert_eq!(r.err(), Some(DropReason::NoFreeBlock));
        assert_eq!(s.counters.refused(DropReason::BlockLimit), 1);
        assert_eq!(s.counters.refused(DropReason::NoFreeBlock), 1);
        assert_eq!(s.counters.blocks_live[Proto::Udp as usize], 4);
        let mut held = Vec::new();
        s.blocks_of(Proto::Udp, client(2), |c, a, lo, hi| {
            assert_eq!(c, (client(2), 128));
            held.push((a, lo, hi))
        });
        assert_eq!(held.len(), 2);
        let (a, lo, hi) = held[0];
        assert_eq!(hi - lo, 15);
        assert_eq!(s.block_holder(Proto::Udp, a, lo + 3), Some(((client(2), 128), lo, hi)));
        // Other protocols have their own blocks.
        let t = s.outbound(&t6(Proto::Tcp, 1, 5000, [198, 51, 100, 1], 80), flags::SYN, 0).unwrap();
        assert!(t.created);
        drain(&q);
        check(&s);
        // Expiry frees every block: one event per block.
        s.expire(400 * MS, usize::MAX);
        let ev = drain(&q);
        assert!(ev.iter().all(|e| e.kind == EventKind::BlockReleased));
        assert_eq!(ev.len(), 5);
        assert_eq!(s.counters.blocks_live, [0; 3]);
        assert_eq!((s.counters.blocks_allocated, s.counters.blocks_released), (5, 5));
        assert_eq!(s.block_holder(Proto::Udp, a, lo), None);
        // Freed blocks serve again.
        udp_out(&mut s, 3, 5000, [198, 51, 100, 1], 53, 500 * MS);
        check(&s);
    }

    #[test]
    fn port_blocks_keep_parity_and_survive_static_entries() {
        let q = Arc::new(ArrayQueue::new(1024));
        let mut s = block_shard(32, 4, 1024, 1151, &q);
        // Static entries inside what will become blocks are skipped.
        for p in 1024..1040 {
            s.add_static(Proto::Udp, (client(99), p), (POOL, p), 0).unwrap();
        }
        for sp in 0..60u16 {
            let (_, p) = udp_out(&mut s, 7, 3000 + sp, [198, 51, 100, 1], 53, 0);
            assert!(p >= 1040 || s.bib4(Proto::Udp, POOL, p) == Some((client(7), 3000 + sp)));
            if sp < 20 {
                assert_eq!(p & 1, sp & 1, "parity of {sp} -> {p}");
            }
        }
        check(&s);
        s.flush(&Filter::default(), 0, u32::MAX, 0);
        assert_eq!(s.counters.blocks_live, [0; 3]);
        // Statics stay, not counted in blocks.
        assert_eq!(s.counters.bib_live, 16);
    }

    #[test]
    fn deterministic_ranges_per_worker_agree_with_owner() {
        let e = test_entries(&Proto::ALL.map(|p| (p, [192, 0, 2, 0], 31, 1024, 2047)));
        let range: Ipv6Addr = "2001:db8::".parse().unwrap();
        for workers in 1..=4u16 {
            // 16 clients (/124 in a /120) over 2 addresses: 128 ports each.
            let m = DetMap::new(range, 120, 124, None, &e, workers).unwrap();
            let pool = m.pool4(&e).unwrap();
            let q = Arc::new(ArrayQueue::new(16));
            for w in 0..workers {
                let allocation = Allocation::Deterministic(Arc::new(m.clone()));
                let cfg = Config {
                    allocation,
                    session_events: false,
                    events: Some(q.clone()),
                    ..Config::default()
                };
                let mut s = Shard::new(&cfg, pool.slice(w), 0);
                for c in 0..256u16 {
                    let t = t6(Proto::Udp, c, 4000 + c, [198, 51, 100, 1], 53);
                    let o = s.outbound(&t, 0, 0).unwrap();
                    let r = m.map6(Proto::Udp, t.src).unwrap();
                    let (lo, hi) = m.sub_range(&r, w);
                    assert_eq!(o.src, r.addr);
                    assert!((lo..=hi).contains(&o.sport), "{workers} {w} {c}: {} not in {lo}-{hi}", o.sport);
                    assert_eq!(pool.owner(Proto::Udp, o.src, o.sport), Some(w));
                    assert_eq!(
                        m.map4(Proto::Udp, o.src, o.sport),
                        Some(((c as u128 & !15 | 0x2001_0db8 << 96).into(), 124))
                    );
                }
                let out = Tuple6 {
                    src: "2001:db8:1::1".parse().unwrap(),
                    ..t6(Proto::Udp, 0, 1, [198, 51, 100, 1], 53)
                };
                assert_eq!(s.outbound(&out, 0, 0).err(), Some(DropReason::ClientUnmapped));
                assert_eq!(s.counters.refused(DropReason::ClientUnmapped), 1);
                check(&s);
            }
            // Nothing is logged per session.
            assert!(q.is_empty());
        }
    }

    #[test]
    fn deterministic_range_fills_then_refuses() {
        let e = test_entries(&Proto::ALL.map(|p| (p, POOL.octets(), 32, 2000, 2063)));
        let m = DetMap::new("2001:db8::".parse().unwrap(), 126, 128, None, &e, 1).unwrap();
        assert_eq!(m.ports_per_client(Proto::Udp), 16);
        let pool = m.pool4(&e).unwrap();
        let cfg = Config { allocation: Allocation::Deterministic(Arc::new(m)), ..Config::default() };
        let mut s = Shard::new(&cfg, pool.slice(0), 0);
        for sp in 0..16 {
            udp_out(&mut s, 1, 100 + sp, [198, 51, 100, 1], 53, 0);
        }
        let r = s.outbound(&t6(Proto::Udp, 1, 999, [198, 51, 100, 1], 53), 0, 0);
        assert_eq!(r.err(), Some(DropReason::PoolExhausted));
        // The neighbour's range is untouched.
        assert_eq!(udp_out(&mut s, 2, 100, [198, 51, 100, 1], 53, 0).1 / 16, 2032 / 16);
        // The mode cannot change live.
        let slice = s.slice().clone();
        assert!(s.check_reconfigure(&Config::default(), &slice, &[]).is_err());
    }

    #[test]
    fn operator_view_filters_cursors_and_flush() {
        let mut s = shard(Config { max_sessions: 100, ..Config::default() });
        for c in 0..10 {
            udp_out(&mut s, c, 1000, [198, 51, 100, 1], 9, 0);
            s.outbound(&t6(Proto::Tcp, c, 1000, [198, 51, 100, 2], 9), flags::SYN, 0).unwrap();
        }
        s.add_static(Proto::Udp, (client(50), 53), (POOL, 53_000), 0).unwrap();
        let collect = |s: &Shard, f: &Filter| {
            let mut v = vec![];
            let mut cur = Some(0);
            while let Some(c) = cur {
                cur = s.sessions(f, c, 7, |x| v.push(*x));
            }
            v
        };
        assert_eq!(collect(&s, &Filter::default()).len(), 20);
        let tcp = Filter { proto: Some(Proto::Tcp), ..Filter::default() };
        let v = collect(&s, &tcp);
        assert_eq!(v.len(), 10);
        assert!(v.iter().all(|x| x.state == Some(TcpState::V6Init)));
        let one = Filter { v6: Some((client(3), 128)), ..Filter::default() };
        assert_eq!(collect(&s, &one).len(), 2);
        let remote = Filter { v4: Some(Ipv4Addr::new(198, 51, 100, 2)), ..Filter::default() };
        assert_eq!(collect(&s, &remote).len(), 10);
        let mut bibs = vec![];
        let mut cur = Some(0);
        while let Some(c) = cur {
            cur = s.bib_entries(&Filter { proto: Some(Proto::Udp), ..Filter::default() }, c, 5, |b| {
                bibs.push(*b)
            });
        }
        assert_eq!(bibs.len(), 11);
        assert_eq!(bibs.iter().filter(|b| b.is_static).count(), 1);
        // Flush UDP in chunks: TCP and the static entry survive.
        let mut cur = Some(0);
        while let Some(c) = cur {
            cur = s.flush(&Filter { proto: Some(Proto::Udp), ..Filter::default() }, c, 16, 0);
        }
        assert_eq!(s.live_sessions(), 10);
        assert_eq!(s.counters.sessions_flushed, 10);
        assert_eq!(s.bib4(Proto::Udp, POOL, 53_000), Some((client(50), 53)));
        check(&s);
        let mut cur = Some(0);
        while let Some(c) = cur {
            cur = s.flush(&Filter::default(), c, 1000, 0);
        }
        assert_eq!(s.live_sessions(), 0);
        check(&s);
    }

    /// Stages each look-ahead takes: how many calls return true, plus one.
    fn stages(mut f: impl FnMut(u8) -> bool) -> u8 {
        let mut n = 0;
        while n < 10 && f(n) {
            n += 1;
        }
        n + 1
    }

    #[test]
    fn lookahead_stages_follow_the_lookup_chain_and_change_nothing() {
        let mut s = shard(Config { max_sessions: 1000, ..Config::default() });
        let t = t6(Proto::Udp, 1, 2001, [198, 51, 100, 1], 53);
        let m = udp_out(&mut s, 1, 2001, [198, 51, 100, 1], 53, 0);
        let back = t4(Proto::Udp, [198, 51, 100, 1], 53, m);
        assert!(!s.prefetches(), "small tables do not prefetch");
        // The IPv4 side carries each stage's result in its note.
        let st4 = |s: &Shard, t: &Tuple4| {
            let mut n = Ahead4::new(t);
            stages(|k| s.prefetch4(&mut n, k))
        };
        let st6 = |s: &Shard, t: &Tuple6| {
            let mut n = Ahead6::new(t);
            stages(|k| s.prefetch6(&mut n, k))
        };
        assert_eq!(st6(&s, &t), 1);
        assert_eq!(st4(&s, &back), 1);
        s.prefetch = true;
        assert!(!s.prefetches(), "one live session fits in the caches");
        s.lookahead_from = 0;
        // IPv6: both buckets, then both records.
        assert_eq!(st6(&s, &t), 2);
        // IPv4: slot, BIB record, session bucket, session record: the
        // stages the worker's schedule runs.
        assert_eq!(usize::from(st4(&s, &back)), crate::pipeline::lookahead::STAGES);
        // An unbound pool4 port ends after the slot; a foreign address at once.
        assert_eq!(st4(&s, &t4(Proto::Udp, [198, 51, 100, 1], 53, (m.0, m.1 ^ 1))), 2);
        let foreign = t4(Proto::Udp, [198, 51, 100, 1], 53, (Ipv4Addr::new(203, 0, 113, 9), 1));
        assert_eq!(st4(&s, &foreign), 1);
        // A stale note (a number past the BIB table) is a wasted hint at
        // most, not a panic.
        let mut stale = Ahead4::new(&back);
        stale.at = u32::MAX - 1;
        assert!(!s.prefetch4(&mut stale, 2));
        assert_eq!(s.outbound(&t, 0, MS).map(|o| (o.src, o.sport, o.created)), Ok((m.0, m.1, false)));
        assert_eq!(s.live_sessions(), 1);
        check(&s);
    }

    /// The express path's creation is the general path's: a twin shard fed
    /// the same UDP and TCP packets through `outbound` alone makes the
    /// same sessions on the same ports, refuses the same packets and
    /// counts the same, with a small pool (collisions, exhaustion), a
    /// per-client quota and a table that fills. Every packet
    /// `outbound_created` declines leaves the shard as it was.
    #[test]
    fn outbound_created_creates_what_outbound_creates_or_nothing() {
        let cfg =
            Config { max_sessions: 64, max_sessions_per_client: 6, port_attempts: 8, ..Config::default() };
        let (mut a, mut b) = (shard_with(cfg.clone(), 1024, 1055), shard_with(cfg, 1024, 1055));
        let mut r = fastrand::Rng::with_seed(6146);
        let (mut created, mut declined) = (0, 0);
        for now in 0..4000u64 {
            let proto = if r.u8(..) < 200 { Proto::Udp } else { Proto::Tcp };
            let fl = if r.bool() { flags::SYN } else { 0x10 }; // SYN or a bare ACK
            let t = t6(proto, r.u16(1..24), r.u16(1000..1040), [198, 51, 100, r.u8(1..6)], 53);
            let want = b.outbound(&t, fl, now).map(|o| (o.src, o.sport, o.created));
            let got = match a.outbound_existing(&t, fl, now) {
                Ok(o) => Ok((o.src, o.sport, o.created)),
                Err(hb) => {
                    let before = (a.counters, a.live_sessions(), a.rng.clone().u64(..));
                    match a.outbound_created(&t, hb, fl, now) {
                        Some(o) => {
                            created += 1;
                            Ok((o.src, o.sport, o.created))
                        }
                        None => {
                            declined += 1;
                            assert_eq!((a.counters, a.live_sessions(), a.rng.clone().u64(..)), before);
                            a.outbound(&t, fl, now).map(|o| (o.src, o.sport, o.created))
                        }
                    }
                }
            };
            assert_eq!(got, want, "packet {now}: {t:?}");
            if now % 500 == 499 {
                // Room again, for the pool and the quota to fill anew.
                a.flush(&Filter::default(), 0, u32::MAX, now);
                b.flush(&Filter::default(), 0, u32::MAX, now);
            }
        }
        assert_eq!(a.counters, b.counters);
        assert!(created > 50 && declined > 50, "created {created}, declined {declined}");
        // The cases that make creation delicate all came up.
        let c = b.counters;
        assert!(c.port_collisions > 0 && c.refused[DropReason::ClientQuota as usize] > 0, "{c:?}");
        assert!(
            c.refused[DropReason::SessionTableFull as usize] + c.refused[DropReason::PoolExhausted as usize]
                > 0
        );
        check(&a);
    }

    #[test]
    fn burst_lookup_agrees_with_single() {
        let mut s = shard(Config { max_sessions: 1000, ..Config::default() });
        let mut ts = vec![];
        for c in 0..40u16 {
            let t = t6(Proto::Udp, c, 2000 + c, [198, 51, 100, (c % 5) as u8], 53);
            if c % 3 != 0 {
                s.outbound(&t, 0, 0).unwrap();
            }
            ts.push(t);
        }
        let mut out = vec![0u32; 40];
        let mut plain = vec![0u32; 40];
        assert!(!s.prefetch, "small tables do not prefetch");
        s.find_burst6(&ts, &mut plain);
        s.prefetch = true;
        s.find_burst6(&ts, &mut out);
        assert_eq!(out, plain);
        for (t, &o) in ts.iter().zip(&out) {
            let exp = s
                .find_bib6(t.proto, t.src.to_bits(), t.sport)
                .and_then(|b| s.find_session(b, s.bib_rec_hash(b), t.dst.to_bits(), t.dport));
            assert_eq!(exp.unwrap_or(Shard::MISS), o);
        }
        assert_eq!(out.iter().filter(|&&o| o == Shard::MISS).count(), 14);
        let hit = out[1];
        let m = s.touch6(hit, 0, 100 * MS);
        assert_eq!(m, s.bib6(Proto::Udp, client(1), 2001));
        assert_eq!(s.touch6(Shard::MISS, 0, 0), None);
        assert_eq!(s.touch6(39, 0, 0), None);
        assert_eq!(s.sessions[hit as usize].expires, 400);
    }

    #[test]
    fn memory_per_session() {
        let s = shard(Config { max_sessions: 1_000_000, max_static: 0, ..Config::default() });
        let per = s.memory_bytes() as f64 / 1e6;
        // 16 session + 28 BIB + 2 x ~7.1 index + 3 x 4 x 64512 / 1e6 v4.
        assert!(per < 60.0, "{per}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random traffic, expiry and flushes keep every table consistent,
        /// EIM holds, and owner() names the shard that allocated each port.
        #[test]
        fn random_churn_keeps_invariants(
            ops in proptest::collection::vec((0u8..6, 0u16..40, 0u16..4, 0u8..4, 0u32..30), 1..300),
            workers in 1u16..5,
            adf in any::<bool>(),
            max_bib in 0u32..80,
        ) {
            let pool = Pool4::new(&pool_entries(1024, 1200), workers).unwrap();
            let w = workers - 1;
            let filtering = if adf { Filtering::AddressDependent } else { Filtering::EndpointIndependent };
            let cfg = Config {
                max_sessions: 64,
                max_bib,
                max_sessions_per_client: 6,
                filtering,
                ..Config::default()
            };
            let mut s = Shard::new(&cfg, pool.slice(w), 0);
            let mut now = 0u64;
            let mut eim = std::collections::HashMap::new();
            for (op, c, port, d, dt) in ops {
                now += dt as u64 * 1000;
                let proto = Proto::ALL[(op % 3) as usize];
                let t = t6(proto, c, 1024 + port, [198, 51, 100, d], 80);
                match op {
                    0..=2 => {
                        if let Ok(o) = s.outbound(&t, flags::SYN, now) {
                            prop_assert_eq!(pool.owner(proto, o.src, o.sport), Some(w));
                            let k = (proto, c, port);
                            if let Some(&m) = eim.get(&k) {
                                if s.bib6(proto, client(c), 1024 + port) == Some(m) {
                                    prop_assert_eq!((o.src, o.sport), m);
                                }
                            }
                            eim.insert(k, (o.src, o.sport));
                            let back = t4(proto, [198, 51, 100, d], 80, (o.src, o.sport));
                            let r = s.inbound(&back, flags::SYN, 0, now);
                            let hit = matches!(r, Ok(Inbound::Translate { created: false, .. }));
                            prop_assert!(hit);
                        }
                    }
                    3 => { s.expire(now, 50); }
                    4 => {
                        let f = Filter { v6: Some((client(c), 128)), ..Filter::default() };
                        s.flush(&f, 0, u32::MAX, now);
                    }
                    _ => {
                        let m = (POOL, 1024 + port * 40);
                        let _ = s.inbound(&t4(Proto::Udp, [203, 0, 113, d], 9, m), 0, 0, now);
                    }
                }
                check(&s);
            }
        }

        /// Random traffic, expiry and flushes in port-block mode: every
        /// dynamic entry lies in a block its client holds, the per-block
        /// counts match the BIB, no client exceeds its limit, and the
        /// block events add up to the blocks held.
        #[test]
        fn random_churn_in_port_blocks_keeps_block_accounting(
            ops in proptest::collection::vec((0u8..5, 0u16..12, 0u16..20, 0u32..30), 1..300),
            workers in 1u16..4,
            size in 1u16..12,
        ) {
            let pool = Pool4::new(&pool_entries(1024, 1200), workers).unwrap();
            let w = workers - 1;
            let allocation = Allocation::Blocks(super::super::BlockConfig { size, max_per_client: 2 });
            let q = Arc::new(ArrayQueue::new(100_000));
            let cfg = Config {
                max_sessions: 64,
                allocation,
                events: Some(q.clone()),
                session_events: false,
                ..Config::default()
            };
            let mut s = Shard::new(&cfg, pool.slice(w), 0);
            let mut now = 0u64;
            for (op, c, port, dt) in ops {
                now += dt as u64 * 1000;
                let proto = Proto::ALL[(op % 3) as usize];
                match op {
                    0..=2 => {
                        let t = t6(proto, c, 1024 + port, [198, 51, 100, 1], 80);
                        match s.outbound(&t, flags::SYN, now) {
                            Ok(o) => prop_assert_eq!(pool.owner(proto, o.src, o.sport), Some(w)),
                            Err(e) => prop_assert!(matches!(
                                e,
                                DropReason::BlockLimit | DropReason::NoFreeBlock | DropReason::SessionTableFull
                            ), "{:?}", e),
                        }
                    }
                    3 => { s.expire(now, 50); }
                    _ => {
                        let f = Filter { v6: Some((client(c), 128)), ..Filter::default() };
                        s.flush(&f, 0, u32::MAX, now);
                    }
                }
                check(&s);
                let bl = s.blocks.as_ref().unwrap();
                for p in Proto::ALL {
                    let mut per_block = std::collections::HashMap::<u32, u32>::new();
                    let mut per_client = std::collections::HashMap::<u128, std::collections::HashSet<u32>>::new();
                    for b in s.bibs.iter().filter(|b| b.flags & B_USED != 0 && b.proto == p as u8) {
                        prop_assert!(b.flags & B_BLOCK != 0);
                        let blk = bl.block_of(p, b.slot4).expect("inside a block");
                        prop_assert_eq!(bl.holder(p, b.slot4), Some(a6(b.addr6)));
                        *per_block.entry(blk).or_default() += 1;
                        per_client.entry(a6(b.addr6)).or_default().insert(blk);
                    }
                    for (blk, n) in &per_block {
                        prop_assert_eq!(bl.usage(p, *blk).0, *n);
                    }
                    prop_assert!(per_client.values().all(|b| b.len() <= 2));
                    // Blocks held are exactly those with entries.
                    prop_assert_eq!(bl.usage(p, 0).1 as usize, per_block.len());
                    prop_assert_eq!(s.counters.blocks_live[p as usize], per_block.len() as u64);
                }
            }
            let evs: Vec<Event> = std::iter::from_fn(|| q.pop()).collect();
            let alloc = evs.iter().filter(|e| e.kind == EventKind::BlockAllocated).count() as u64;
            prop_assert_eq!(alloc, s.counters.blocks_allocated);
            prop_assert_eq!(evs.len() as u64, s.counters.blocks_allocated + s.counters.blocks_released);
            prop_assert_eq!(alloc - s.counters.blocks_released, s.counters.blocks_live.iter().sum::<u64>());
        }

        /// Live reconfiguration to a random pool, filtering and client
        /// prefix between bursts of traffic: tables stay consistent, every
        /// surviving BIB entry keeps its mapping and is owned by the worker
        /// under the new pool, and exactly the others were ended.
        #[test]
        fn random_reconfigure_keeps_invariants(
            steps in proptest::collection::vec(
                (proptest::collection::vec((0u16..30, 0u16..8, 0u8..4), 0..60), 1100u16..1200, 0u8..3, any::<bool>(), 0u8..3),
                1..6,
            ),
            workers in 1u16..4,
        ) {
            let entries = |hi: u16, n_addr: u8| -> Vec<Pool4Entry> {
                Proto::ALL
                    .iter()
                    .flat_map(|&proto| {
                        (0..=n_addr).map(move |k| Pool4Entry {
                            proto,
                            prefix: Ipv4Addr::new(192, 0, 2, 1 + k),
                            prefix_len: 32,
                            port_min: 1024,
                            port_max: hi,
                        })
                    })
                    .collect()
            };
            let w = workers - 1;
            let mut cfg = Config { max_sessions: 128, max_sessions_per_client: 5, ..Config::default() };
            let mut s = Shard::new(&cfg, Pool4::new(&entries(1200, 1), workers).unwrap().slice(w), 0);
            let mut now = 0;
            for (traffic, hi, n_addr, adf, plen) in steps {
                for (c, port, d) in traffic {
                    now += 100;
                    let proto = Proto::ALL[(port % 3) as usize];
                    let _ = s.outbound(&t6(proto, c, 1024 + port, [198, 51, 100, d], 80), flags::SYN, now);
                }
                let mut before = vec![];
                s.bib_entries(&Filter::default(), 0, u32::MAX, |b| before.push(*b));
                let pool = Pool4::new(&entries(hi, n_addr), workers).unwrap();
                cfg.filtering = if adf { Filtering::AddressDependent } else { Filtering::EndpointIndependent };
                cfg.client_prefix_len = [128, 64, 0][plen as usize];
                let r = s.reconfigure(&cfg, pool.slice(w), &[], now).unwrap();
                check(&s);
                let kept: Vec<_> = before.iter().filter(|b| pool.owner(b.proto, b.v4.0, b.v4.1) == Some(w)).collect();
                prop_assert_eq!(r.ended_bib, (before.len() - kept.len()) as u64);
                prop_assert_eq!(s.counters.bib_live, kept.len() as u64);
                for b in kept {
                    prop_assert_eq!(s.bib6(b.proto, b.v6.0, b.v6.1), Some(b.v4));
                    prop_assert_eq!(s.bib4(b.proto, b.v4.0, b.v4.1), Some(b.v6));
                }
            }
        }
    }
}
