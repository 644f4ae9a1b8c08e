//! Session changes received from a peer appliance (session sync): created,
//! updated or deleted here idempotently, never echoed back to the peers.

use super::{Shard, B_BLOCK, B_STATIC, B_SYNCED, NONE, S_FREE, S_LIVE};
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

    /// A dynamic BIB entry made by a peer's record and not used by
    /// traffic here since.
    fn is_copy(&self, b: u32) -> bool {
        let f = self.bibs[b as usize].flags;
        f & B_SYNCED != 0 && f & B_STATIC == 0
    }

    /// Ends every session of copy `b` (and so `b`, with its port block
    /// when it was the block's last entry), counted as replaced. Sessions
    /// are not chained per BIB entry: this scans the table, stopping at the
    /// entry's last session. Only a lost deletion leads here.
    fn replace_copy(&mut self, b: u32, now: u64) {
        let mut left = self.bibs[b as usize].nsess;
        let mut i = 0;
        while left > 0 && i < self.sessions.len() {
            let se = self.sessions[i];
            if se.state != S_FREE && se.bib == b {
                left -= 1;
                self.delete_session(i as u32, now);
                self.counters.sync_replaced += 1;
            }
            i += 1;
        }
    }

    fn import_inner(&mut self, c: &SyncChange, now: u64) -> Result<Imported, ImportError> {
        let proto = c.proto;
        let slot = self.slice.slot(proto, c.v4.0.to_bits(), c.v4.1).ok_or(ImportError::NotOwned)?;
        let src = c.v6.0.to_bits();
        let hb = self.bib_hash(proto, src, c.v6.1);
        let raddr = c.remote.0.to_bits();
        let rport = Self::rport(proto, c.remote.1);
        let mut bib = self.find_bib6_h(hb, proto, src, c.v6.1);
        if c.op != SyncOp::Delete {
            // The sender is authoritative for the mappings it owns: a copy
            // here that binds the client elsewhere, or the mapping to
            // another client, is stale (its deletion was lost on the way)
            // and gives way. Entries traffic used here still conflict.
            if let Some(b) = bib.filter(|&b| self.bibs[b as usize].slot4 != slot && self.is_copy(b)) {
                self.replace_copy(b, now);
                bib = None;
            }
            let holder = self.v4[proto as usize][slot as usize];
            if holder != NONE && Some(holder) != bib && self.is_copy(holder) {
                self.replace_copy(holder, now);
            }
        }
        if bib.is_some_and(|b| self.bibs[b as usize].slot4 != slot) {
            return Err(ImportError::Conflict);
        }
        let sess = bib.and_then(|b| self.find_session(b, hb, raddr, rport));
        if c.op == SyncOp::Delete {
            return Ok(match sess {
                Some(s) => {
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
                let mut fl = B_SYNCED;
                if let Some(bl) = self.blocks.as_mut() {
                    let Ok(ev) = bl.claim(&self.hasher, proto, src, slot) else {
                        self.client_release(client);
                        return Err(ImportError::Conflict);
                    };
                    bl.take(proto, slot);
                    fl |= B_BLOCK;
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

    /// The outbound packet of `c`'s session.
    fn traffic(c: &SyncChange) -> crate::nat64::Tuple6 {
        crate::nat64::Tuple6 {
            proto: c.proto,
            src: c.v6.0,
            sport: c.v6.1,
            dst: c.remote.0,
            dport: c.remote.1,
        }
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
        let c1 = change(SyncOp::Create, Proto::Udp, 1, mine);
        assert_eq!(s.import(&c1, 0), Ok(Imported::Created));
        // Traffic uses it here: no longer a copy a peer record may replace.
        s.outbound(&traffic(&c1), 0, 0).unwrap();
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
    fn a_peer_record_replaces_a_stale_copy_but_not_a_local_entry() {
        let p = pool(1);
        let mut s = Shard::new(&Config::default(), p.slice(0), 0);
        let m = owned(&p, 0, Proto::Udp, 6000);
        // Client 1's copy holds m with two sessions; the peer's deletion
        // of them was lost, and the peer now gives m to client 2.
        let old = change(SyncOp::Create, Proto::Udp, 1, m);
        s.import(&old, 0).unwrap();
        s.import(&SyncChange { remote: (old.remote.0, 444), ..old }, 0).unwrap();
        let new = change(SyncOp::Create, Proto::Udp, 2, m);
        assert_eq!(s.import(&new, 0), Ok(Imported::Created));
        let t = table(&s);
        assert_eq!((t.len(), t[0].v6, t[0].v4), (1, new.v6, m));
        assert_eq!(s.counters.sync_replaced, 2);
        assert_eq!((s.counters.sessions_live, s.counters.bib_live), (1, 1));
        // Client 2 moved to another mapping on the peer: its copy here
        // on m gives way too (an update is enough).
        let moved = SyncChange { op: SyncOp::Update, ..change(SyncOp::Create, Proto::Udp, 2, (m.0, 6001)) };
        assert_eq!(s.import(&moved, 0), Ok(Imported::Created));
        assert_eq!(s.bib6(Proto::Udp, moved.v6.0, moved.v6.1), Some(moved.v4));
        assert_eq!((s.counters.sync_replaced, s.counters.bib_live), (3, 1));
        // A mapping traffic made here is not a copy: still a conflict.
        let t6 = crate::nat64::Tuple6 {
            proto: Proto::Udp,
            src: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 9),
            sport: 7000,
            dst: Ipv4Addr::new(198, 51, 100, 9),
            dport: 53,
        };
        let local = s.outbound(&t6, 0, 0).unwrap();
        let clash = change(SyncOp::Create, Proto::Udp, 3, (local.src, local.sport));
        assert_eq!(s.import(&clash, 0), Err(ImportError::Conflict));
        let away =
            SyncChange { v6: (t6.src, t6.sport), ..change(SyncOp::Create, Proto::Udp, 9, (m.0, 6002)) };
        assert_eq!(s.import(&away, 0), Err(ImportError::Conflict));
        assert_eq!(table(&s).len(), 2);
        assert_eq!(s.counters.sync_replaced, 3);
        // A deletion never replaces anything.
        let del = SyncChange { op: SyncOp::Delete, ..change(SyncOp::Create, Proto::Udp, 2, m) };
        assert_eq!(s.import(&del, 0), Err(ImportError::Conflict));
        assert_eq!(table(&s).len(), 2);
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
        assert_eq!(s.sync_walk(0, u32::MAX, 6000, false, |c| n += usize::from(c.op == SyncOp::Update)), None);
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

    #[test]
    fn copies_are_not_echoed_until_traffic_claims_them() {
        let p = pool(1);
        let q = Arc::new(SyncQueue::new(64));
        let timeouts = crate::nat64::Timeouts { udp: 10, ..Default::default() };
        let mut s =
            Shard::new(&Config { sync: Some(q.clone()), timeouts, ..Config::default() }, p.slice(0), 0);
        let m = owned(&p, 0, Proto::Udp, 6000);
        let c = change(SyncOp::Create, Proto::Udp, 1, m);
        s.import(&c, 0).unwrap();
        let walk = |s: &Shard, all| {
            let mut n = 0;
            s.sync_walk(0, u32::MAX, 0, all, |_| n += 1);
            n
        };
        assert_eq!(
            (walk(&s, false), walk(&s, true)),
            (0, 1),
            "refresh walks skip copies; resync answers do not"
        );
        // The copy expiring here is not news for its owner.
        s.expire(20_000, 1 << 20);
        assert!(table(&s).is_empty());
        assert!(q.is_empty());
        // Imported again, then traffic arrives here (a failover): this
        // appliance owns it now.
        s.import(&c, 20_000).unwrap();
        assert_eq!(
            s.outbound(&traffic(&c), 0, 21_000).map(|o| (o.src, o.sport, o.created)),
            Ok((m.0, m.1, false))
        );
        assert_eq!(walk(&s, false), 1);
        s.expire(40_000, 1 << 20);
        assert_eq!(q.pop().map(|c| c.op), Some(SyncOp::Delete));
    }
}
