//! Operator requests that a worker answers between bursts: the only way
//! the control thread reads or changes a worker's state. Requests travel
//! through a bounded lock-free [`Mailbox`] per worker; each carries its own
//! reply channel. Walks over big tables are cut into bounded steps with a
//! cursor, so one request never stalls the packet path for long.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, Sender};
use crossbeam::queue::ArrayQueue;

pub use crate::nat64::{BibView, Filter, SessionView};
pub use crate::nat64::{Counters as Nat64Counters, Proto};

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
}

/// One stateful instance's counters and occupancy.
#[derive(Debug, Clone)]
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
