//! Operator requests that a worker answers between bursts: the only way
//! the control thread reads or changes a worker's state. Requests travel
//! through a bounded lock-free [`Mailbox`] per worker; each carries its own
//! reply channel. Walks over big tables are cut into bounded steps with a
//! cursor, so one request never stalls the packet path for long.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, Sender};
use crossbeam::queue::ArrayQueue;

pub use crate::nat64::{BibView, Filter, PoolUse, SessionView};
pub use crate::nat64::{Counters as Nat64Counters, Proto, SyncChange};
use crate::xlate;

/// Records a worker visits per request step (bounds the pause).
pub const STEP: u32 = 4096;

/// A request to one worker, about one of its instances.
#[derive(Debug, Clone)]
pub enum Request {
    /// Sessions of a stateful instance matching `filter`, from `cursor`.
    Sessions {
        /// Instance index (configuration order).
        instance: usize,
        /// What to list.
        filter: Filter,
        /// Where to continue (0 to start).
        cursor: u32,
    },
    /// BIB entries, like `Sessions`.
    Bib {
        /// Instance index.
        instance: usize,
        /// What to list.
        filter: Filter,
        /// Where to continue.
        cursor: u32,
    },
    /// Add a static BIB entry (port forwarding to an IPv6 server). Sent to
    /// the worker that owns the IPv4 transport address.
    BibAdd {
        /// Instance index.
        instance: usize,
        /// Protocol.
        proto: Proto,
        /// IPv6 server transport address.
        v6: (Ipv6Addr, u16),
        /// IPv4 transport address in pool4.
        v4: (Ipv4Addr, u16),
    },
    /// Remove a static BIB entry.
    BibDel {
        /// Instance index.
        instance: usize,
        /// Protocol.
        proto: Proto,
        /// Its IPv4 transport address.
        v4: (Ipv4Addr, u16),
    },
    /// End the sessions `filter` matches, from `cursor`.
    Flush {
        /// Instance index.
        instance: usize,
        /// What to end.
        filter: Filter,
        /// Where to continue.
        cursor: u32,
    },
    /// Counters and table sizes of every stateful instance.
    Nat64Stats,
    /// Session changes from a peer appliance (session sync), all for
    /// mappings this worker owns: applied by `nat64::Shard::import`.
    SyncImport {
        /// Instance index.
        instance: usize,
        /// The changes, in the order received.
        changes: Arc<Vec<SyncChange>>,
    },
    /// Every live session of an instance as changes for the peers (sync
    /// refresh walk and bulk resync), from `cursor`, `STEP` records at a
    /// time.
    SyncWalk {
        /// Instance index.
        instance: usize,
        /// Where to continue (0 to start).
        cursor: u32,
    },
    /// Port blocks held now (port-block instances): those of the client of
    /// `v6`, or the one covering the IPv4 transport address `v4`, for every
    /// protocol.
    Blocks {
        /// Instance index.
        instance: usize,
        /// A client address.
        v6: Option<Ipv6Addr>,
        /// An IPv4 transport address.
        v4: Option<(Ipv4Addr, u16)>,
    },
    /// Apply a new configuration (hot reload). Sent to every worker; a
    /// worker answers `Reloaded`, or `Done(Err(..))` without having changed
    /// anything when a part cannot change live.
    Reload(Arc<Reload>),
}

/// A new configuration for a worker's instances, same instances in the
/// same order and of the same kinds as at start (control refuses others).
#[derive(Debug, Clone)]
pub struct Reload {
    /// Configuration generation, for logs and metrics.
    pub generation: u64,
    /// One update per instance.
    pub instances: Vec<InstanceUpdate>,
}

/// The new settings of one instance.
#[derive(Debug, Clone)]
pub enum InstanceUpdate {
    /// A SIIT instance's whole translator configuration.
    Siit(xlate::Config),
    /// A stateful instance's translator configuration (pool6, RFC 7915
    /// options) and the IPv4 destinations it serves. Changes to pool4,
    /// static BIB, timeouts or limits travel in `shard` and are applied
    /// live by `nat64::Shard::reconfigure`; table sizes, the hash seed and
    /// the number of workers cannot change live (refused before anything
    /// changes).
    Nat64 {
        /// Header rules and pool6.
        xlate: xlate::Config,
        /// IPv4 destinations served (split pools), if not all.
        destinations: Option<xlate::Prefix4>,
        /// State changes, if any.
        shard: Option<Nat64StateUpdate>,
    },
}

/// Changes to a stateful instance's state tables.
#[derive(Debug, Clone)]
pub struct Nat64StateUpdate {
    /// The new shard settings (timeouts, filtering, limits).
    pub config: crate::nat64::Config,
    /// The new pool4, split over the same workers.
    pub pool4: Arc<crate::nat64::Pool4>,
    /// Static BIB entries: protocol, IPv6 and IPv4 transport addresses.
    pub static_bib: Vec<StaticBib>,
}

/// A static BIB entry: protocol, IPv6 and IPv4 transport addresses.
pub type StaticBib = crate::nat64::StaticEntry;

/// One port block as the operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockView {
    /// Protocol.
    pub proto: Proto,
    /// The client prefix holding it.
    pub client: (Ipv6Addr, u8),
    /// IPv4 address.
    pub addr: Ipv4Addr,
    /// First and last port.
    pub ports: (u16, u16),
}

/// One stateful instance's counters and occupancy. Live sessions and BIB
/// entries by protocol and TCP sessions by state are in `counters`
/// (`sessions_live_by_proto`, `bib_live_by_proto`, `tcp_states`).
#[derive(Debug, Clone, Default)]
pub struct Nat64Stats {
    /// Instance index.
    pub instance: usize,
    /// Live sessions.
    pub sessions: u64,
    /// Session table capacity.
    pub capacity: u32,
    /// Held IPv4 SYNs.
    pub held_syns: u32,
    /// Bytes of table memory.
    pub memory_bytes: usize,
    /// The shard's counters.
    pub counters: Nat64Counters,
    /// pool4 use of this worker: every owned (address, protocol) with at
    /// least one port bound, and how many.
    pub pool4_use: Vec<PoolUse>,
}

/// A worker's answer.
#[derive(Debug, Clone)]
pub enum Response {
    /// Sessions found in this step, and where to continue (`None`: done).
    Sessions(Vec<SessionView>, Option<u32>),
    /// BIB entries found in this step, and where to continue.
    Bib(Vec<BibView>, Option<u32>),
    /// Flush step done; where to continue.
    Flushed(Option<u32>),
    /// A change was applied, or refused with the reason.
    Done(Result<(), String>),
    /// Stateful instance statistics.
    Nat64Stats(Vec<Nat64Stats>),
    /// A `SyncImport` was applied: changes applied and refused (the
    /// reasons are in the shard's counters).
    Imported {
        /// Changes applied.
        applied: u32,
        /// Changes refused.
        refused: u32,
    },
    /// Sessions as changes for the peers, and where to continue.
    SyncWalk(Vec<SyncChange>, Option<u32>),
    /// Port blocks found by `Request::Blocks`.
    Blocks(Vec<BlockView>),
    /// A reload was applied: sessions and BIB entries it had to end.
    Reloaded {
        /// Sessions ended because their mapping is no longer valid.
        ended_sessions: u64,
        /// BIB entries ended likewise.
        ended_bib: u64,
    },
}

/// A request with its reply channel.
#[derive(Debug)]
pub struct Envelope {
    /// What is asked.
    pub req: Request,
    /// Where the answer goes.
    pub reply: Sender<Response>,
}

/// A worker's inbox. Control pushes; the worker pops a few per housekeeping
/// round. Bounded: a full mailbox refuses instead of queueing without end.
#[derive(Debug)]
pub struct Mailbox {
    queue: ArrayQueue<Envelope>,
}

impl Mailbox {
    /// A mailbox for `depth` requests.
    pub fn new(depth: usize) -> Self {
        Mailbox { queue: ArrayQueue::new(depth) }
    }

    /// Post a request; returns the channel the answer arrives on, or the
    /// request back when the mailbox is full.
    pub fn post(&self, req: Request) -> Result<Receiver<Response>, Request> {
        let (tx, rx) = bounded(1);
        self.queue.push(Envelope { req, reply: tx }).map(|()| rx).map_err(|e| e.req)
    }

    /// Post and wait for the answer (control side). `None` when the mailbox
    /// is full or the worker did not answer within `timeout`.
    pub fn ask(&self, req: Request, timeout: Duration) -> Option<Response> {
        self.post(req).ok()?.recv_timeout(timeout).ok()
    }

    /// The next request (worker side).
    pub fn take(&self) -> Option<Envelope> {
        self.queue.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_mailbox_refuses_and_answers_come_back() {
        let m = Mailbox::new(1);
        let rx = m.post(Request::Nat64Stats).unwrap();
        assert!(m.post(Request::Nat64Stats).is_err(), "bounded");
        let env = m.take().unwrap();
        env.reply.send(Response::Done(Ok(()))).unwrap();
        assert!(matches!(rx.recv().unwrap(), Response::Done(Ok(()))));
        assert!(m.take().is_none());
        assert!(m.ask(Request::Nat64Stats, Duration::from_millis(10)).is_none(), "nobody answers");
    }
}
