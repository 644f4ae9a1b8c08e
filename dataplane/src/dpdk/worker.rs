//! The run-to-completion loop of one worker lcore (DPDK's l3fwd shape):
//! receive a burst on each of its queues, run every packet through the
//! [`Pipeline`], buffer TX per port, flush when a buffer fills or the drain
//! interval passes, and do the housekeeping between bursts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{tsc, tsc_hz, Mbuf, Mempool, RingRx, RingTx, RxBurst, RxQueue, TxBuffer, TxQueue};
use crossbeam::queue::ArrayQueue;

use crate::ops::Mailbox;
use crate::pipeline::lookahead;
use crate::pipeline::neigh::NeighKey;
use crate::pipeline::{Instance, Pipeline, Sink, Stats};

/// How often TX buffers are flushed and housekeeping runs, in microseconds
/// (l3fwd uses 100 us).
pub const DRAIN_US: u64 = 100;
/// Operator requests that may wait for a worker.
const MAILBOX_DEPTH: usize = 64;
/// Operator requests a worker answers per housekeeping round.
const REQUESTS_PER_ROUND: usize = 2;
/// Neighbour updates that may wait for a worker.
const NEIGH_INBOX: usize = 256;

/// What a worker shares with the control thread. Written by the worker
/// with plain stores (no read-modify-write), read at scrape time.
#[derive(Debug)]
pub struct WorkerShared {
    /// Set by control to stop the loop.
    pub stop: AtomicBool,
    /// TSC of the last loop iteration: a worker that stops polling shows.
    pub heartbeat: AtomicU64,
    /// Published counters, see [`Stats::to_array_into`].
    pub stats: Vec<AtomicU64>,
    /// Packets the NIC refused on TX (freed).
    pub tx_dropped: AtomicU64,
    /// Multi-segment packets dropped (RX is configured without scatter).
    pub rx_multiseg: AtomicU64,
    /// Operator requests for this worker.
    pub mailbox: Mailbox,
    /// Packets dropped because the owner's handoff ring was full.
    pub handoff_full: AtomicU64,
    /// Neighbours other workers learned (ARP/NDP answers arrive on
    /// whichever queue the NIC picked, not necessarily the asker's).
    pub neigh_inbox: ArrayQueue<(NeighKey, [u8; 6])>,
}

impl Default for WorkerShared {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerShared {
    /// A fresh shared block with room for every counter.
    pub fn new() -> Self {
        WorkerShared {
            stop: AtomicBool::new(false),
            heartbeat: AtomicU64::new(0),
            stats: (0..Stats::LEN).map(|_| AtomicU64::new(0)).collect(),
            tx_dropped: AtomicU64::new(0),
            rx_multiseg: AtomicU64::new(0),
            mailbox: Mailbox::new(MAILBOX_DEPTH),
            handoff_full: AtomicU64::new(0),
            neigh_inbox: ArrayQueue::new(NEIGH_INBOX),
        }
    }

    /// The last published counters.
    pub fn snapshot(&self) -> Stats {
        let mut a = [0u64; Stats::LEN];
        for (v, c) in a.iter_mut().zip(&self.stats) {
            *v = c.load(Ordering::Relaxed);
        }
        Stats::from_array(&a)
    }
}

/// One port's TX queue and the buffer in front of it.
struct TxPort {
    queue: TxQueue,
    buf: TxBuffer,
}

/// TX side of a worker: a queue and buffer per port, and a ring to every
/// other worker.
struct TxPorts {
    ports: Vec<TxPort>,
    handoff: Vec<Option<RingTx>>,
    handoff_full: u64,
}

impl Sink<Mbuf> for TxPorts {
    #[inline]
    fn send(&mut self, port: u16, pkt: Mbuf) {
        if let Some(t) = self.ports.get_mut(usize::from(port)) {
            t.buf.push(pkt, &mut t.queue);
        }
        // An unknown port cannot happen (routes name configured ports);
        // if it did, `pkt` is freed here.
    }

    #[inline]
    fn handoff(&mut self, worker: u16, pkt: Mbuf) {
        match self.handoff.get_mut(usize::from(worker)).and_then(Option::as_mut) {
            // A full ring drops (and counts): the producer never waits.
            Some(ring) => {
                if ring.push(pkt).is_err() {
                    self.handoff_full += 1;
                }
            }
            None => self.handoff_full += 1,
        }
    }
}

impl TxPorts {
    fn flush(&mut self) {
        for t in &mut self.ports {
            t.buf.flush(&mut t.queue);
        }
    }
    fn dropped(&self) -> u64 {
        self.ports.iter().map(|t| t.buf.dropped).sum()
    }
}

/// Everything one worker owns.
pub struct Worker<I> {
    /// The packet path.
    pub pipeline: Pipeline<Mbuf, I>,
    /// This worker's RX queue on each port; the index is the port number
    /// the pipeline uses.
    pub rx: Vec<RxQueue>,
    /// This worker's TX queue on each port, same indexing as `rx`.
    pub tx: Vec<TxQueue>,
    /// Buffers for packets the worker builds (requests, fragments).
    pub pool: Arc<Mempool>,
    /// Rings to the other workers, indexed by worker (`None` for itself).
    pub handoff_tx: Vec<Option<RingTx>>,
    /// Rings from the other workers.
    pub handoff_rx: Vec<RingRx>,
    /// Every worker's shared block (this one's included), to tell the
    /// others what this worker learned.
    pub peers: Vec<Arc<WorkerShared>>,
    /// What control sees.
    pub shared: Arc<WorkerShared>,
}

impl<I: Instance<Mbuf>> Worker<I> {
    /// Poll until `shared.stop` is set; then flush and return.
    pub fn run(self) -> i32 {
        let Worker { mut pipeline, mut rx, tx, pool, shared, handoff_tx, mut handoff_rx, peers } = self;
        let hz = tsc_hz().max(1);
        let drain = hz * DRAIN_US / 1_000_000;
        let ms = (hz / 1000).max(1);
        let mut txp = TxPorts {
            ports: tx.into_iter().map(|queue| TxPort { queue, buf: TxBuffer::default() }).collect(),
            handoff: handoff_tx,
            handoff_full: 0,
        };
        let mut burst = RxBurst::default();
        let mut alloc: &Mempool = &pool;
        let mut multiseg = 0u64;
        let mut last_drain = tsc();
        let mut stats = [0u64; Stats::LEN];
        loop {
            let now_tsc = tsc();
            let now = now_tsc / ms;
            for (port, q) in rx.iter_mut().enumerate() {
                if burst.receive(q) == 0 {
                    continue;
                }
                // The pipeline names ports by their index in the worker's
                // lists, not by DPDK port id (ids need not be dense).
                let port = port as u16;
                // Prefetch a few packets ahead, as l3fwd does.
                for i in 0..4 {
                    burst.prefetch(i);
                }
                // Request the burst's session state stage by stage, so its
                // cache misses overlap (stateful NAT64 with tables larger
                // than the caches; one question per burst otherwise). A
                // chain longer than the passes (the IPv4 side) gets its
                // later stages staggered between the packets' processing.
                let n = burst.remaining();
                let stagger = pipeline.lookahead_active()
                    && lookahead::passes(n, |pos, stage| {
                        burst.held_at(pos).is_some_and(|d| pipeline.prefetch(pos, d, stage))
                    });
                if stagger {
                    stages_first(&pipeline, &burst, n);
                }
                // A bound rather than the flag: the compiler would make a
                // copy of the loop for each value of the flag, and with
                // two calls of the packet path it inlines neither (25-30
                // instructions per packet).
                let due_until = if stagger { lookahead::due_until(n) } else { 0 };
                let mut i = 0;
                while let Some(m) = burst.next() {
                    if i < due_until {
                        stages_due(&pipeline, &burst, i, n);
                    }
                    i += 1;
                    burst.prefetch(3);
                    if !m.is_contiguous() {
                        multiseg += 1;
                        continue;
                    }
                    pipeline.process(now, port, m, &mut alloc, &mut txp);
                }
            }
            // Packets other workers received for state this worker owns.
            for ring in handoff_rx.iter_mut() {
                ring.drain(|m| pipeline.process_handoff(now, m, &mut alloc, &mut txp));
            }
            if now_tsc.wrapping_sub(last_drain) >= drain {
                last_drain = now_tsc;
                txp.flush();
                pipeline.tick(now, &mut alloc, &mut txp);
                // Share what we learned; apply what the others learned.
                for (key, mac) in pipeline.neigh.take_learned() {
                    for p in peers.iter().filter(|p| !Arc::ptr_eq(p, &shared)) {
                        // A full inbox only delays that worker's own resolution.
                        let _ = p.neigh_inbox.push((key, mac));
                    }
                }
                while let Some((key, mac)) = shared.neigh_inbox.pop() {
                    pipeline.neigh_update(now, key, mac, &mut txp);
                }
                pipeline.stats.to_array_into(&mut stats);
                for (c, v) in shared.stats.iter().zip(stats.iter()) {
                    c.store(*v, Ordering::Relaxed);
                }
                shared.tx_dropped.store(txp.dropped(), Ordering::Relaxed);
                shared.rx_multiseg.store(multiseg, Ordering::Relaxed);
                shared.handoff_full.store(txp.handoff_full, Ordering::Relaxed);
                shared.heartbeat.store(now_tsc, Ordering::Relaxed);
                for _ in 0..REQUESTS_PER_ROUND {
                    let Some(env) = shared.mailbox.take() else { break };
                    // The asker may have given up waiting: ignore that.
                    let _ = env.reply.send(pipeline.handle(now, &env.req));
                }
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        txp.flush();
        0
    }
}

/// The staggered look-ahead stages due before the first of a burst's `n`
/// packets is processed (`lookahead::prologue`). Out of line, like
/// [`stages_due`], so the worker loop keeps the packet path inline.
#[inline(never)]
fn stages_first<I: Instance<Mbuf>>(pipeline: &Pipeline<Mbuf, I>, burst: &RxBurst, n: usize) {
    for (pos, stage) in lookahead::prologue(n) {
        if let Some(d) = burst.held_at(pos) {
            pipeline.prefetch(pos, d, stage);
        }
    }
}

/// The staggered look-ahead stages due before packet `i` of `n` is
/// processed (`lookahead::due`).
#[inline(never)]
fn stages_due<I: Instance<Mbuf>>(pipeline: &Pipeline<Mbuf, I>, burst: &RxBurst, i: usize, n: usize) {
    for (pos, stage) in lookahead::due(i, n) {
        if let Some(d) = burst.held_at(pos) {
            pipeline.prefetch(pos, d, stage);
        }
    }
}
