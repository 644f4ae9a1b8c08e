//! Session changes received from a peer appliance (session sync): created,
//! updated or deleted here idempotently, never echoed back to the peers.

use super::{Shard, B_BLOCK, NONE, S_LIVE};
use crate::nat64::{EventKind, Proto, SyncChange, SyncOp, TcpState};

/// Why [`Shard::import`] refused a peer's change (nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ImportError {
    /// The IPv4 mapping is not in this worker's part of pool4.
    NotOwned = 0,
    /// The client transport address is bound to another mapping here, or
    /// the mapping to another client (both appliances allocated it).
    Conflict,
    /// The BIB table is full.
    BibTableFull,
    /// The session table is full.
    SessionTableFull,
    /// The client's session quota (or the client table) is full.
    ClientLimit,
}

impl ImportError {
    /// Number of variants.
    pub const COUNT: usize = 5;

    /// All variants, in counter order.
    pub const ALL: [ImportError; Self::COUNT] = [
        ImportError::NotOwned,
        ImportError::Conflict,
        ImportError::BibTableFull,
        ImportError::SessionTableFull,
        ImportError::ClientLimit,
    ];

    /// snake_case name for counters.
    pub fn name(self) -> &'static str {
        match self {
            ImportError::NotOwned => "not_owned",
            ImportError::Conflict => "conflict",
            ImportError::BibTableFull => "bib_table_full",
            ImportError::SessionTableFull => "session_table_full",
            ImportError::ClientLimit => "client_limit",
        }
    }
}

/// What [`Shard::import`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imported {
    /// A new session (and BIB entry, if needed) was created.
    Created,
    /// The existing session took the peer's state and lifetime.
    Updated,
    /// The session was deleted.
    Deleted,
    /// A deletion for a session this shard does not have.
    Absent,
}

impl Shard {
    /// Applies a peer's session change: creates or updates the BIB entry
    /// and the session with the synced TCP state and lifetime, or deletes
    /// the session. Idempotent: the same change twice leaves the same
    /// state. The change is not queued for the peers again.
    pub fn import(&mut self, c: &SyncChange, now: u64) -> Result<Imported, ImportError> {
        // No echo: with the queue out of the shard, nothing is emitted.
        let q = self.sync.take();
        let r = self.import_inner(c, now);
        self.sync = q;
        match r {
            Ok(_) => self.counters.sync_imported += 1,
            Err(e) => self.counters.sync_refused[e as usize] += 1,
        }
        r
    }

    /// The lifetime an imported session gets: what the peer said it has
    /// left, but at least its protocol's (state's) full lifetime, so the
    /// copy outlives a session the peer keeps refreshing without events
    /// until the next refresh walk re-sends it (docs/ha.md).
    fn import_lifetime(&self, proto: Proto, state: u8, sent: u32) -> u32 {
        let own = match proto {
            Proto::Udp => self.timeouts.udp,
            Proto::Icmp => self.timeouts.icmp,
            // RFC 6146 §3.5.2.2: established-like states live TCP_EST.
            Proto::Tcp => match TcpState::from_u8(state) {
                TcpState::Established | TcpState::V6FinRcv | TcpState::V4FinRcv => self.timeouts.tcp_est,
                _ => self.timeouts.tcp_trans,
            },
        };
        sent.max(own)
    }

    fn import_inner(&mut self, c: &SyncChange, now: u64) -> Result<Imported, ImportError> {
        let proto = c.proto;
        let slot = self.slice.slot(proto, c.v4.0.to_bits(), c.v4.1).ok_or(ImportError::NotOwned)?;
        let src = c.v6.0.to_bits();
        let hb = self.bib_hash(proto, src, c.v6.1);
        let raddr = c.remote.0.to_bits();
        let rport = Self::rport(proto, c.remote.1);
        let bib = self.find_bib6_h(hb, proto, src, c.v6.1);
        if bib.is_some_and(|b| self.bibs[b as usize].slot4 != slot) {
            return Err(ImportError::Conflict);
        }
        let sess = bib.and_then(|b| self.find_session(b, hb, raddr, rport));
        if c.op == SyncOp::Delete {
            return Ok(match sess {
                Some(s) => {
                    self.unlink(s);
                    self.delete_session(s, now);
                    Imported::Deleted
                }
                None => Imported::Absent,
            });
        }
        let state = match proto {
            // A TCP record always carries a stored state; CLOSED (never
            // stored) is read as the short-lived TRANS.
            Proto::Tcp => c.state.filter(|s| *s != TcpState::Closed).unwrap_or(TcpState::Trans) as u8,
            _ => S_LIVE,
        };
        let life = self.import_lifetime(proto, state, c.lifetime_s);
        let at = ((now / 1000) as u32).saturating_add(life);
        if let Some(s) = sess {
            let old = self.sessions[s as usize].state;
            if old != state {
                self.counters.tcp_states[old as usize & 7] -= 1;
                self.counters.tcp_states[state as usize & 7] += 1;
                self.sessions[s as usize].state = state;
            }
            self.set_expiry(s, at);
            return Ok(Imported::Updated);
        }
        if self.s_free == NONE {
            return Err(ImportError::SessionTableFull);
        }
        if bib.is_none() {
            if self.v4[proto as usize][slot as usize] != NONE {
                return Err(ImportError::Conflict);
            }
            if self.b_free == NONE {
                return Err(ImportError::BibTableFull);
            }
        }
        // Counted against the client like a local session (the count is
        // released when the session ends, wherever it came from).
        let client = self.client_acquire(src).map_err(|_| ImportError::ClientLimit)?;
        let b = match bib {
            Some(b) => b,
            None => {
                // Port blocks: the mapping's block becomes the client's
                // here too, so this appliance neither hands it to another
                // client nor misattributes it in its block log.
                let mut fl = 0;
                if let Some(bl) = self.blocks.as_mut() {
                    let Ok(ev) = bl.claim(&self.hasher, proto, src, slot) else {
                        self.client_release(client);
                        return Err(ImportError::Conflict);
                    };
                    bl.take(proto, slot);
                    fl = B_BLOCK;
                    if let Some(ev) = ev {
                        self.counters.blocks_allocated += 1;
                        self.counters.blocks_live[proto as usize] += 1;
                        self.emit_block(EventKind::BlockAllocated, ev, now);
                    }
                }
                self.insert_bib(hb, proto, src, c.v6.1, slot, fl, now)
            }
        };
        self.new_session(b, hb, raddr, rport, state, life, now);
        Ok(Imported::Created)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{Config, Pool4, Pool4Entry, SyncQueue};
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    fn pool(workers: u16) -> Pool4 {
        let e = |proto| Pool4Entry {
            proto,
            prefix: Ipv4Addr::new(203, 0, 113, 0),
            prefix_len: 30,
            port_min: 1024,
            port_max: 65535,
        };
        Pool4::new(&[e(Proto::Tcp), e(Proto::Udp), e(Proto::Icmp)], workers).unwrap()
    }

    fn change(op: SyncOp, proto: Proto, client: u16, v4: (Ipv4Addr, u16)) -> SyncChange {
        SyncChange {
            op,
            proto,
            state: (proto == Proto::Tcp).then_some(TcpState::Established),
            v6: (Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, client), 40000 + client),
            v4,
            remote: (Ipv4Addr::new(198, 51, 100, 7), if proto == Proto::Icmp { 0 } else { 443 }),
            lifetime_s: 10,
        }
    }

    /// A mapping worker `w` of `p` owns.
    fn owned(p: &Pool4, w: u16, proto: Proto, port: u16) -> (Ipv4Addr, u16) {
        (0..4u8)
            .map(|i| (Ipv4Addr::new(203, 0, 113, i), port))
            .find(|m| p.owner(proto, m.0, m.1) == Some(w))
            .unwrap()
    }

    fn table(s: &Shard) -> Vec<crate::nat64::SessionView> {
        let mut v = Vec::new();
        s.sessions(&Default::default(), 0, u32::MAX, |x| v.push(*x));
        v
    }

    #[test]
    fn import_creates_updates_deletes_idempotently() {
        let p = pool(1);
        let q = Arc::new(SyncQueue::new(64));
        let cfg = Config { sync: Some(q.clone()), ..Config::default() };
        let mut s = Shard::new(&cfg, p.slice(0), 1_000_000);
        let m = owned(&p, 0, Proto::Tcp, 5000);
        let mut c = change(SyncOp::Create, Proto::Tcp, 1, m);
        assert_eq!(s.import(&c, 1_000_000), Ok(Imported::Created));
        assert_eq!(s.import(&c, 1_000_000), Ok(Imported::Updated), "same change twice");
        let t = table(&s);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].v4, t[0].state), (m, Some(TcpState::Established)));
        // At least TCP_EST: the copy outlives the peer's refreshes.
        assert_eq!(t[0].expires_s, 1000 + 7440);
        assert_eq!(s.counters.tcp_states[TcpState::Established as usize], 1);
        // The mapping is usable by traffic on this side.
        assert_eq!(s.bib6(Proto::Tcp, c.v6.0, c.v6.1), Some(m));
        c.op = SyncOp::Update;
        c.state = Some(TcpState::Trans);
        assert_eq!(s.import(&c, 1_001_000), Ok(Imported::Updated));
        let t = table(&s);
        assert_eq!((t[0].state, t[0].expires_s), (Some(TcpState::Trans), 1001 + 240));
        assert_eq!(s.counters.tcp_states[TcpState::Established as usize], 0);
        c.op = SyncOp::Delete;
        assert_eq!(s.import(&c, 1_002_000), Ok(Imported::Deleted));
        assert_eq!(s.import(&c, 1_002_000), Ok(Imported::Absent));
        assert!(table(&s).is_empty());
        assert_eq!((s.counters.sessions_live, s.counters.bib_live), (0, 0));
        assert_eq!(s.counters.sync_imported, 5);
        assert!(q.is_empty(), "imported changes are not echoed to the peers");
    }

    #[test]
    fn import_refuses_foreign_mappings_and_conflicts_without_change() {
        let p = pool(2);
        let mut s = Shard::new(&Config::default(), p.slice(0), 0);
        let theirs = owned(&p, 1, Proto::Udp, 6000);
        let c = change(SyncOp::Create, Proto::Udp, 1, theirs);
        assert_eq!(s.import(&c, 0), Err(ImportError::NotOwned));
        let outside = change(SyncOp::Create, Proto::Udp, 1, (Ipv4Addr::new(192, 0, 2, 1), 6000));
        assert_eq!(s.import(&outside, 0), Err(ImportError::NotOwned));
        assert!(table(&s).is_empty());
        let mine = owned(&p, 0, Proto::Udp, 6000);
        assert_eq!(s.import(&change(SyncOp::Create, Proto::Udp, 1, mine), 0), Ok(Imported::Created));
        // Same mapping, another client: refused.
        assert_eq!(s.import(&change(SyncOp::Create, Proto::Udp, 2, mine), 0), Err(ImportError::Conflict));
        // Same client, another mapping: refused.
        let other = (mine.0, 6002);
        assert_eq!(s.import(&change(SyncOp::Create, Proto::Udp, 1, other), 0), Err(ImportError::Conflict));
        assert_eq!(table(&s).len(), 1);
        assert_eq!(s.counters.sync_refused[ImportError::NotOwned as usize], 2);
        assert_eq!(s.counters.sync_refused[ImportError::Conflict as usize], 2);
    }

    #[test]
    fn import_respects_table_sizes() {
        let p = pool(1);
        let mut s = Shard::new(&Config { max_sessions: 1, ..Config::default() }, p.slice(0), 0);
        let m = owned(&p, 0, Proto::Icmp, 2000);
        assert_eq!(s.import(&change(SyncOp::Create, Proto::Icmp, 1, m), 0), Ok(Imported::Created));
        let m2 = (m.0, 2001);
        let r = s.import(&change(SyncOp::Create, Proto::Icmp, 2, m2), 0);
        assert_eq!(r, Err(ImportError::SessionTableFull));
        assert_eq!(table(&s).len(), 1);
    }

    #[test]
    fn local_changes_are_queued_and_overflow_marks_a_resync() {
        let p = pool(1);
        let q = Arc::new(SyncQueue::new(2));
        let mut s = Shard::new(&Config { sync: Some(q.clone()), ..Config::default() }, p.slice(0), 0);
        let t = crate::nat64::Tuple6 {
            proto: Proto::Udp,
            src: "2001:db8:1::5".parse().unwrap(),
            sport: 7000,
            dst: Ipv4Addr::new(198, 51, 100, 9),
            dport: 53,
        };
        let o = s.outbound(&t, 0, 0).unwrap();
        let c = q.pop().unwrap();
        assert_eq!((c.op, c.v4, c.lifetime_s), (SyncOp::Create, (o.src, o.sport), 300));
        // Traffic on an existing UDP session: no change queued.
        s.outbound(&t, 0, 5000).unwrap();
        assert!(q.is_empty());
        for port in 0..3 {
            s.outbound(&crate::nat64::Tuple6 { dport: 100 + port, ..t }, 0, 6000).unwrap();
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 1);
        assert!(q.take_lost(), "a lost change asks for a resync");
        assert!(!q.take_lost());
        // The walk a resync uses sees every session.
        let mut n = 0;
        assert_eq!(s.sync_walk(0, u32::MAX, 6000, |c| n += usize::from(c.op == SyncOp::Update)), None);
        assert_eq!(n, 4);
    }
    #[test]
    fn imported_mapping_claims_its_port_block() {
        use crate::nat64::{Allocation, BlockConfig, Event, Tuple6};
        use crossbeam::queue::ArrayQueue;
        let p = pool(1);
        let events = Arc::new(ArrayQueue::<Event>::new(64));
        let cfg = Config {
            allocation: Allocation::Blocks(BlockConfig { size: 64, max_per_client: 2 }),
            session_events: false,
            events: Some(events.clone()),
            ..Config::default()
        };
        let mut s = Shard::new(&cfg, p.slice(0), 0);
        // Ports 4992-5055 form one block (64-port blocks from 1024).
        let a = Ipv4Addr::new(203, 0, 113, 1);
        let c1 = change(SyncOp::Create, Proto::Udp, 1, (a, 5000));
        assert_eq!(s.import(&c1, 0), Ok(Imported::Created));
        assert_eq!(s.counters.blocks_live[Proto::Udp as usize], 1);
        let ev = events.pop().expect("block event");
        assert_eq!((ev.kind, ev.v4), (EventKind::BlockAllocated, (a, 4992)));
        assert!(events.pop().is_none(), "one line per block, none per session");
        // Another client's mapping in that block is a conflict: no change.
        let c2 = change(SyncOp::Create, Proto::Udp, 2, (a, 5001));
        assert_eq!(s.import(&c2, 0), Err(ImportError::Conflict));
        assert_eq!(table(&s).len(), 1);
        assert_eq!(s.counters.blocks_live[Proto::Udp as usize], 1);
        // Local clients never get a port of that block; its holder's next
        // mapping made here stays in it (its only block with room).
        let mut out = |client: u16| {
            let t = Tuple6 {
                proto: Proto::Udp,
                src: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, client),
                sport: 30000,
                dst: Ipv4Addr::new(198, 51, 100, 9),
                dport: 53,
            };
            s.outbound(&t, 0, 0).unwrap()
        };
        for k in 0..20 {
            let o = out(100 + k);
            assert!(!(o.src == a && (4992..=5055).contains(&o.sport)), "block given away: {o:?}");
        }
        let o = out(1);
        assert_eq!((o.src, o.sport / 64), (a, 5000 / 64), "same client, same block");
    }
}
