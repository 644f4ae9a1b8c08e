//! RFC 6146 stateful NAT64 state: pool4, BIB, sessions, TCP state machine,
//! timers. One [`Shard`] per worker, owned by that worker alone.
//!
//! - [`pool4`]: the IPv4 pool and its per-worker split ([`Pool4::owner`]).
//! - [`Shard`]: BIB, sessions, port allocation, expiry sweep, held SYNs and
//!   fragment table of one worker. No locks, no allocation after
//!   [`Shard::new`].
//! - [`tcp`]: the RFC 6146 §3.5.2 TCP state machine.
//! - [`frag`]: shallow virtual reassembly.
//! - [`Translator`]: the xlate `Mapper` over a shard: one call translates
//!   one packet statefully.
//!
//! Time: every call takes `now`, a monotonic `u64` in milliseconds chosen
//! by the caller (e.g. TSC ticks scaled once per burst). Session lifetimes
//! are kept in whole seconds; the engine never reads a clock.

pub mod alloc;
pub mod frag;
mod index;
pub mod pool4;
mod shard;
mod table;
pub mod tcp;
mod translator;

pub use alloc::{Allocation, BlockConfig, DetError, DetMap, DetRange};
pub use frag::{FragKey, FragTable, FragVerdict};
pub use pool4::{Pool4, Pool4Entry, Pool4Error, Slice, Split};
pub use shard::{
    Ahead4, Ahead6, BibView, Filter, ImportError, Imported, Inbound, Outbound, PoolUse, Reconfigured,
    SessionView, Shard, StaticBibError, StaticEntry, Tuple4, Tuple6, BURST,
};
pub use tcp::TcpState;
pub use translator::{Outcome, Translator};

use crossbeam::queue::ArrayQueue;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Transport protocols with state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    /// TCP.
    Tcp = 0,
    /// UDP.
    Udp = 1,
    /// ICMP / ICMPv6 query messages; the "port" is the identifier.
    Icmp = 2,
}

impl Proto {
    /// All protocols, in index order.
    pub const ALL: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Icmp];

    /// snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    #[inline(always)]
    fn from_u8(v: u8) -> Proto {
        // 0 TCP, 1 UDP, anything else ICMP: a clamp and one load, no
        // compare chain (the packet path decodes stored records with it).
        Proto::ALL[usize::from(v.min(2))]
    }
}

/// Why the state engine refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The shard's session table is full (RFC 6146 §3.5.1.1: answer ICMPv6
    /// destination unreachable, code 3).
    SessionTableFull = 0,
    /// The shard's BIB table is full (its capacity may be set below the
    /// session capacity when sessions share BIB entries).
    BibTableFull,
    /// The IPv6 client reached its session quota.
    ClientQuota,
    /// The client table (per-client quota accounting) is full.
    ClientTableFull,
    /// No free pool4 port after the bounded number of attempts.
    PoolExhausted,
    /// IPv4 packet to a transport address with no BIB entry (RFC 6146
    /// §3.5.1.2 / §3.5.3).
    NoBinding,
    /// Address-dependent filtering: the remote host was never contacted
    /// from this mapping.
    AddressFiltered,
    /// Policy drops externally initiated TCP connections.
    ExternalTcp,
    /// TCP packet other than SYN with no session.
    TcpNoSession,
    /// The held-SYN store is full (RFC 6146 §3.5.2.2; the caller should
    /// answer as if the 6 s had passed).
    HeldSynFull,
    /// A SYN for that tuple is already held; the retransmission is dropped.
    HeldSynDuplicate,
    /// The destination transport address is not owned by this worker.
    NotOwned,
    /// Every way of the fragment table's set is busy.
    FragmentTableFull,
    /// The held-fragment limit was reached.
    FragmentHeldFull,
    /// A non-first fragment arrived before its first and holding is off.
    FragmentOutOfOrder,
    /// Port blocks: the client's blocks are full and it holds its maximum
    /// number of blocks.
    BlockLimit,
    /// Port blocks: no free block left on this worker.
    NoFreeBlock,
    /// Deterministic mapping: the IPv6 source is outside the configured
    /// client range (RFC 7422 maps only that range).
    ClientUnmapped,
}

impl DropReason {
    /// Number of variants (size of the counter array).
    pub const COUNT: usize = 18;

    /// All variants, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::SessionTableFull,
        DropReason::BibTableFull,
        DropReason::ClientQuota,
        DropReason::ClientTableFull,
        DropReason::PoolExhausted,
        DropReason::NoBinding,
        DropReason::AddressFiltered,
        DropReason::ExternalTcp,
        DropReason::TcpNoSession,
        DropReason::HeldSynFull,
        DropReason::HeldSynDuplicate,
        DropReason::NotOwned,
        DropReason::FragmentTableFull,
        DropReason::FragmentHeldFull,
        DropReason::FragmentOutOfOrder,
        DropReason::BlockLimit,
        DropReason::NoFreeBlock,
        DropReason::ClientUnmapped,
    ];

    /// snake_case name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::SessionTableFull => "session_table_full",
            DropReason::BibTableFull => "bib_table_full",
            DropReason::ClientQuota => "client_quota",
            DropReason::ClientTableFull => "client_table_full",
            DropReason::PoolExhausted => "pool_exhausted",
            DropReason::NoBinding => "no_binding",
            DropReason::AddressFiltered => "address_filtered",
            DropReason::ExternalTcp => "external_tcp",
            DropReason::TcpNoSession => "tcp_no_session",
            DropReason::HeldSynFull => "held_syn_full",
            DropReason::HeldSynDuplicate => "held_syn_duplicate",
            DropReason::NotOwned => "not_owned",
            DropReason::FragmentTableFull => "fragment_table_full",
            DropReason::FragmentHeldFull => "fragment_held_full",
            DropReason::FragmentOutOfOrder => "fragment_out_of_order",
            DropReason::BlockLimit => "block_limit",
            DropReason::NoFreeBlock => "no_free_block",
            DropReason::ClientUnmapped => "client_unmapped",
        }
    }
}

/// Session lifetimes in seconds (defaults: RFC 6146 §4 and Jool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP session lifetime (RFC 4787 REQ-5: at least 2 min; 5 min default).
    pub udp: u32,
    /// TCP established (RFC 5382 REQ-5: 2 h 4 min).
    pub tcp_est: u32,
    /// TCP transitory (RFC 6146 TCP_TRANS: 4 min).
    pub tcp_trans: u32,
    /// ICMP query (RFC 6146 ICMP_DEFAULT: 60 s).
    pub icmp: u32,
    /// Hold of an unsolicited IPv4 SYN (RFC 6146 TCP_INCOMING_SYN: 6 s).
    pub tcp_incoming_syn: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { udp: 300, tcp_est: 7440, tcp_trans: 240, icmp: 60, tcp_incoming_syn: 6 }
    }
}

/// Inbound filtering (RFC 4787 §5, RFC 6146 §3.5.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Filtering {
    /// Endpoint-independent: any IPv4 host may use a mapping.
    #[default]
    EndpointIndependent,
    /// Address-dependent: only hosts the client already sent to.
    AddressDependent,
}

/// Configuration of one shard.
#[derive(Clone, Debug)]
pub struct Config {
    /// Maximum live sessions (table capacity).
    pub max_sessions: u32,
    /// Maximum dynamic BIB entries; 0 = one per session (the worst case:
    /// every session on its own client port).
    pub max_bib: u32,
    /// Maximum static BIB entries (on top of the dynamic ones).
    pub max_static: u32,
    /// Sessions allowed per IPv6 client; 0 = no per-client limit (and no
    /// client table).
    pub max_sessions_per_client: u32,
    /// Clients tracked for the quota (table capacity).
    pub max_clients: u32,
    /// Prefix length that defines one client (128 = per address).
    pub client_prefix_len: u8,
    /// Lifetimes.
    pub timeouts: Timeouts,
    /// Inbound filtering.
    pub filtering: Filtering,
    /// Drop externally initiated TCP (RFC 6146 §3.5.2.2 policy).
    pub drop_external_tcp: bool,
    /// Port allocation attempts before giving up (RFC 6056 bounds the
    /// search; so do we).
    pub port_attempts: u32,
    /// Held unsolicited IPv4 SYNs.
    pub max_held_syn: u32,
    /// Fragment table entries.
    pub frag_entries: u32,
    /// Held out-of-order fragments.
    pub frag_held: u32,
    /// Fragment entry lifetime in ms.
    pub frag_timeout_ms: u64,
    /// Secret seed of the hash keys and the port-allocation PRNG (draw it
    /// from the OS at start).
    pub seed: u64,
    /// Where session/BIB create/delete events go (`None`: no logging).
    pub events: Option<Arc<ArrayQueue<Event>>>,
    /// Where session changes for the peers go (`None`: sync off).
    pub sync: Option<Arc<SyncQueue>>,
    /// How pool4 ports are chosen. Port blocks use `client_prefix_len` as
    /// the client; the deterministic map must be the one the pool4 split
    /// was made with ([`DetMap::pool4`]).
    pub allocation: Allocation,
    /// Push session and BIB events (block events are pushed regardless).
    /// Port-block and deterministic modes turn it off: their point is a
    /// log without a line per session.
    pub session_events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_sessions: 65536,
            max_bib: 0,
            max_static: 1024,
            max_sessions_per_client: 0,
            max_clients: 4096,
            client_prefix_len: 128,
            timeouts: Timeouts::default(),
            filtering: Filtering::EndpointIndependent,
            drop_external_tcp: false,
            port_attempts: 64,
            max_held_syn: 64,
            frag_entries: 1024,
            frag_held: 256,
            frag_timeout_ms: 2000,
            seed: 0x5eed,
            events: None,
            sync: None,
            allocation: Allocation::Dynamic,
            session_events: true,
        }
    }
}

/// What an [`Event`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A BIB entry was created.
    BibCreated,
    /// A BIB entry was deleted.
    BibDeleted,
    /// A session was created.
    SessionCreated,
    /// A session was deleted.
    SessionDeleted,
    /// A port block was given to a client.
    BlockAllocated,
    /// A port block went back to the pool (its last BIB entry ended).
    BlockReleased,
}

/// A state change, for logging (RFC 6888 REQ-12 style: who had which
/// mapping when).
///
/// Block events reuse the fields: `v6` is the client prefix and its
/// length, `v4` the block's address and first port, `remote.1` its last
/// port (see [`Event::block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `now` (ms) of the change.
    pub time_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// Protocol.
    pub proto: Proto,
    /// IPv6 client address and port.
    pub v6: (Ipv6Addr, u16),
    /// IPv4 mapping.
    pub v4: (Ipv4Addr, u16),
    /// Remote IPv4 address and port (unspecified for BIB events).
    pub remote: (Ipv4Addr, u16),
}

/// What a [`SyncChange`] tells the peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SyncOp {
    /// The session was created.
    Create = 1,
    /// The session changed (TCP state), or is re-sent by a refresh walk or
    /// a bulk resync.
    Update = 2,
    /// The session ended.
    Delete = 3,
}

impl SyncOp {
    /// From its wire value.
    pub fn from_u8(v: u8) -> Option<SyncOp> {
        match v {
            1 => Some(SyncOp::Create),
            2 => Some(SyncOp::Update),
            3 => Some(SyncOp::Delete),
            _ => None,
        }
    }
}

/// A session change to replicate to the peers, or one received from them
/// ([`Shard::import`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncChange {
    /// What happened.
    pub op: SyncOp,
    /// Protocol.
    pub proto: Proto,
    /// TCP state (`None` for UDP/ICMP).
    pub state: Option<TcpState>,
    /// IPv6 client transport address.
    pub v6: (Ipv6Addr, u16),
    /// IPv4 mapping.
    pub v4: (Ipv4Addr, u16),
    /// Remote IPv4 transport address (port 0 for ICMP).
    pub remote: (Ipv4Addr, u16),
    /// Seconds the session has left on the sender.
    pub lifetime_s: u32,
}

/// A worker's bounded queue of session changes for the peers. The worker
/// pushes without blocking or allocating; when the queue is full the change
/// is dropped, counted, and the queue marked `lost`, so the sync thread
/// re-sends this worker's whole table (a resync repairs the loss).
#[derive(Debug)]
pub struct SyncQueue {
    queue: ArrayQueue<SyncChange>,
    lost: AtomicBool,
    dropped: AtomicU64,
}

impl SyncQueue {
    /// A queue of `capacity` changes (at least 1).
    pub fn new(capacity: usize) -> Self {
        SyncQueue {
            queue: ArrayQueue::new(capacity.max(1)),
            lost: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queue a change (worker side); `false` when it was dropped.
    pub fn push(&self, c: SyncChange) -> bool {
        if self.queue.push(c).is_ok() {
            return true;
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.lost.store(true, Ordering::Relaxed);
        false
    }

    /// The oldest queued change (sync thread side).
    pub fn pop(&self) -> Option<SyncChange> {
        self.queue.pop()
    }

    /// Queued changes.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether changes were lost since the last call (and clear the mark).
    pub fn take_lost(&self) -> bool {
        self.lost.swap(false, Ordering::Relaxed)
    }

    /// Changes dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Event {
    /// A block event for `client/len` and the ports `first..=last` of
    /// `addr`.
    pub fn block(
        time_ms: u64,
        kind: EventKind,
        proto: Proto,
        client: (Ipv6Addr, u8),
        addr: Ipv4Addr,
        (first, last): (u16, u16),
    ) -> Event {
        Event {
            time_ms,
            kind,
            proto,
            v6: (client.0, u16::from(client.1)),
            v4: (addr, first),
            remote: (Ipv4Addr::UNSPECIFIED, last),
        }
    }

    /// Whether this is a block event.
    pub fn is_block(&self) -> bool {
        matches!(self.kind, EventKind::BlockAllocated | EventKind::BlockReleased)
    }
}

/// Per-shard counters: plain fields written by the owning worker only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sessions created, by protocol.
    pub sessions_created: [u64; 3],
    /// Sessions removed by the timer, by protocol.
    pub sessions_expired: [u64; 3],
    /// Sessions removed by flush.
    pub sessions_flushed: u64,
    /// Live sessions.
    pub sessions_live: u64,
    /// BIB entries created (dynamic and static).
    pub bib_created: u64,
    /// BIB entries deleted.
    pub bib_deleted: u64,
    /// Live BIB entries.
    pub bib_live: u64,
    /// Live sessions by protocol (index: `Proto as usize`).
    pub sessions_live_by_proto: [u64; 3],
    /// Live BIB entries by protocol.
    pub bib_live_by_proto: [u64; 3],
    /// Live TCP sessions by state (index: `TcpState as usize`; CLOSED is
    /// never stored, so index 0 stays 0).
    pub tcp_states: [u64; 8],
    /// Sessions ended by a reconfiguration (their mapping left this
    /// worker's pool4, or their static BIB entry was removed).
    pub sessions_reconfigured: u64,
    /// Refusals by reason (index: `DropReason as usize`).
    pub refused: [u64; DropReason::COUNT],
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// IPv4 SYNs held (RFC 6146 §3.5.2.2).
    pub syn_held: u64,
    /// Held SYNs discarded because the IPv6 side opened the connection.
    pub syn_held_matched: u64,
    /// Held SYNs expired (caller sends ICMP port unreachable).
    pub syn_held_expired: u64,
    /// Port-allocation attempts that hit a busy port.
    pub port_collisions: u64,
    /// Peer session changes applied by [`Shard::import`].
    pub sync_imported: u64,
    /// Peer session changes refused by [`Shard::import`], by reason
    /// (index: [`ImportError`] as usize).
    pub sync_refused: [u64; ImportError::COUNT],
    /// Sessions of synced copies ended because a peer's record claimed
    /// their mapping or client (the owner's newer binding wins).
    pub sync_replaced: u64,
    /// Session records the expiry sweep visited.
    pub sweep_visits: u64,
    /// Port blocks given to clients.
    pub blocks_allocated: u64,
    /// Port blocks returned.
    pub blocks_released: u64,
    /// Port blocks held now, by protocol.
    pub blocks_live: [u64; 3],
    /// Port blocks of this worker, by protocol (0 unless port blocks are on).
    pub blocks_total: [u64; 3],
}

impl Counters {
    /// Refusals counted for `r`.
    pub fn refused(&self, r: DropReason) -> u64 {
        self.refused[r as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_are_indexed_and_named() {
        let mut names = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            let n = r.name();
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
            assert!(names.insert(n));
        }
    }

    #[test]
    fn default_timeouts_follow_rfc_6146() {
        let t = Timeouts::default();
        assert_eq!((t.udp, t.tcp_est, t.tcp_trans, t.icmp, t.tcp_incoming_syn), (300, 7440, 240, 60, 6));
    }
}
