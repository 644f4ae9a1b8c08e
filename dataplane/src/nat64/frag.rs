//! Shallow virtual reassembly: a small bounded table that remembers, per
//! fragmented datagram, the ports its first fragment carried, so the later
//! fragments (which carry no transport header) can be mapped to the same
//! session. Nothing is reassembled; packets are never copied.
//!
//! Fragments that arrive before the first one are held as opaque caller
//! tokens (the caller keeps the packet) up to a per-datagram and a
//! per-table limit, released when the first fragment shows up, and reported
//! for dropping when the entry times out.

use super::index::Hasher;
use super::DropReason;

/// Ways per set (entries a key may occupy).
const WAYS: usize = 4;
/// Held fragments per datagram.
pub const HELD_PER_DATAGRAM: usize = 4;

/// Identity of a fragmented datagram: (source, destination, protocol,
/// identification). IPv4 addresses go in the low 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragKey {
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// IPv4 identification or IPv6 fragment-header identification.
    pub id: u32,
    /// Upper-layer protocol number.
    pub proto: u8,
}

#[derive(Clone, Copy, Default)]
struct Entry {
    key: FragKey,
    deadline: u64,
    sport: u16,
    dport: u16,
    used: bool,
    known: bool,
    nheld: u8,
    held: [u64; HELD_PER_DATAGRAM],
}

/// Fragment-table counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragStats {
    /// First fragments recorded.
    pub first_seen: u64,
    /// Later fragments given ports from the table.
    pub mapped: u64,
    /// Out-of-order fragments held.
    pub held: u64,
    /// Held fragments released by their first fragment.
    pub released: u64,
    /// Fragments refused because every way of their set was busy.
    pub table_full: u64,
    /// Fragments refused because the held limit was reached.
    pub held_full: u64,
    /// Held fragments dropped because the first never came.
    pub timed_out: u64,
}

/// What to do with a non-first fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragVerdict {
    /// Translate with these ports (source, destination) from the first
    /// fragment.
    Ports(u16, u16),
    /// The token is held; the caller keeps the packet until it is released
    /// or reported expired.
    Held,
}

/// The per-worker fragment table.
pub struct FragTable {
    entries: Vec<Entry>,
    sets: usize,
    hasher: Hasher,
    timeout_ms: u64,
    held_limit: u32,
    held_now: u32,
    cursor: usize,
    /// Counters.
    pub stats: FragStats,
}

impl FragTable {
    /// A table of `entries` datagrams (rounded up to a multiple of the
    /// associativity), holding at most `held_limit` fragments in total,
    /// forgetting a datagram `timeout_ms` after its last first/held event.
    pub fn new(entries: usize, held_limit: u32, timeout_ms: u64, seed: u64) -> Self {
        let sets = entries.div_ceil(WAYS).max(1);
        FragTable {
            entries: vec![Entry::default(); sets * WAYS],
            sets,
            hasher: Hasher::new(seed ^ 0x6672_6167),
            timeout_ms,
            held_limit,
            held_now: 0,
            cursor: 0,
            stats: FragStats::default(),
        }
    }

    /// Bytes allocated.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<Entry>()
    }

    /// Fragments currently held.
    pub fn held(&self) -> u32 {
        self.held_now
    }

    fn set(&self, k: &FragKey) -> usize {
        let h = self.hasher.h3(
            (k.src >> 64) as u64 ^ k.src as u64,
            (k.dst >> 64) as u64 ^ k.dst as u64,
            (k.id as u64) << 8 | k.proto as u64,
        );
        ((h >> 32) as usize % self.sets) * WAYS
    }

    /// Entry for `k`: the live one, else a free one (a free way, or an
    /// expired way with nothing held).
    fn slot(&mut self, k: &FragKey, now: u64) -> Result<(usize, bool), DropReason> {
        let base = self.set(k);
        let mut free = None;
        for i in base..base + WAYS {
            let e = &self.entries[i];
            if e.used && e.key == *k && e.deadline > now {
                return Ok((i, true));
            }
            if free.is_none() && (!e.used || (e.deadline <= now && e.nheld == 0)) {
                free = Some(i);
            }
        }
        free.map(|i| (i, false)).ok_or(DropReason::FragmentTableFull)
    }

    /// The ports recorded for `k`, without holding anything.
    pub fn ports(&mut self, k: &FragKey, now: u64) -> Option<(u16, u16)> {
        let base = self.set(k);
        let e = self.entries[base..base + WAYS]
            .iter()
            .find(|e| e.used && e.known && e.key == *k && e.deadline > now)?;
        self.stats.mapped += 1;
        Some((e.sport, e.dport))
    }

    /// Records the ports of a first fragment. Fragments held for it are
    /// passed to `release` (translate them now with these ports).
    pub fn first(
        &mut self,
        k: FragKey,
        sport: u16,
        dport: u16,
        now: u64,
        mut release: impl FnMut(u64),
    ) -> Result<(), DropReason> {
        let (i, live) = self.slot(&k, now).inspect_err(|_| self.stats.table_full += 1)?;
        let deadline = now + self.timeout_ms;
        let e = &mut self.entries[i];
        if !live {
            *e = Entry::default();
            e.key = k;
            e.used = true;
        }
        e.sport = sport;
        e.dport = dport;
        e.known = true;
        e.deadline = deadline;
        let n = e.nheld as usize;
        for &t in &e.held[..n] {
            release(t);
        }
        e.nheld = 0;
        self.held_now -= n as u32;
        self.stats.released += n as u64;
        self.stats.first_seen += 1;
        Ok(())
    }

    /// A non-first fragment: its ports if the first has been seen, else
    /// held under `token`.
    pub fn later(&mut self, k: FragKey, token: u64, now: u64) -> Result<FragVerdict, DropReason> {
        let (i, live) = self.slot(&k, now).inspect_err(|_| self.stats.table_full += 1)?;
        if live && self.entries[i].known {
            self.stats.mapped += 1;
            let e = &self.entries[i];
            return Ok(FragVerdict::Ports(e.sport, e.dport));
        }
        let e = &self.entries[i];
        if (live && e.nheld as usize >= HELD_PER_DATAGRAM) || self.held_now >= self.held_limit {
            self.stats.held_full += 1;
            return Err(DropReason::FragmentHeldFull);
        }
        let deadline = now + self.timeout_ms;
        let e = &mut self.entries[i];
        if !live {
            *e = Entry::default();
            e.key = k;
            e.used = true;
            e.deadline = deadline;
        }
        e.held[e.nheld as usize] = token;
        e.nheld += 1;
        self.held_now += 1;
        self.stats.held += 1;
        Ok(FragVerdict::Held)
    }

    /// Looks at up to `budget` entries (resuming where the last call
    /// stopped) and hands the tokens of held fragments whose datagram timed
    /// out to `drop` (the caller frees those packets).
    pub fn expire(&mut self, now: u64, budget: usize, mut drop: impl FnMut(u64)) {
        let n = self.entries.len();
        for _ in 0..budget.min(n) {
            let i = self.cursor;
            self.cursor = if i + 1 == n { 0 } else { i + 1 };
            let e = &mut self.entries[i];
            if e.used && e.deadline <= now {
                let k = e.nheld as usize;
                for &t in &e.held[..k] {
                    drop(t);
                }
                e.used = false;
                e.nheld = 0;
                self.held_now -= k as u32;
                self.stats.timed_out += k as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey { src: 0x2001_0db8 << 96 | 1, dst: 0x0064_ff9b << 96 | 0xc000_0201, id, proto: 17 }
    }

    #[test]
    fn first_then_later() {
        let mut t = FragTable::new(64, 16, 2000, 1);
        t.first(key(1), 5000, 53, 0, |_| panic!("nothing held")).unwrap();
        assert_eq!(t.later(key(1), 9, 10), Ok(FragVerdict::Ports(5000, 53)));
        assert_eq!(t.ports(&key(1), 10), Some((5000, 53)));
        assert_eq!(t.ports(&key(1), 2000), None);
        assert_eq!(t.later(key(2), 9, 10), Ok(FragVerdict::Held));
    }

    #[test]
    fn out_of_order_held_then_released() {
        let mut t = FragTable::new(64, 16, 2000, 1);
        assert_eq!(t.later(key(7), 100, 0), Ok(FragVerdict::Held));
        assert_eq!(t.later(key(7), 101, 1), Ok(FragVerdict::Held));
        let mut got = vec![];
        t.first(key(7), 1, 2, 5, |tok| got.push(tok)).unwrap();
        assert_eq!(got, vec![100, 101]);
        assert_eq!(t.held(), 0);
        assert_eq!(t.stats.released, 2);
    }

    #[test]
    fn held_limits_and_timeout() {
        let mut t = FragTable::new(64, 5, 2000, 1);
        for tok in 0..HELD_PER_DATAGRAM as u64 {
            assert_eq!(t.later(key(1), tok, 0), Ok(FragVerdict::Held));
        }
        assert_eq!(t.later(key(1), 99, 0), Err(DropReason::FragmentHeldFull));
        assert_eq!(t.later(key(2), 50, 0), Ok(FragVerdict::Held));
        assert_eq!(t.later(key(3), 51, 0), Err(DropReason::FragmentHeldFull));
        let mut dropped = vec![];
        t.expire(1999, 1000, |tok| dropped.push(tok));
        assert!(dropped.is_empty());
        t.expire(2000, 1000, |tok| dropped.push(tok));
        dropped.sort();
        assert_eq!(dropped, vec![0, 1, 2, 3, 50]);
        assert_eq!(t.held(), 0);
        assert_eq!(t.stats.timed_out, 5);
        assert_eq!(t.stats.held_full, 2);
    }

    #[test]
    fn table_full_is_refused_not_evicted() {
        let mut t = FragTable::new(4, 100, 2000, 1); // one set of four
        for id in 0..4 {
            t.later(key(id), id as u64, 0).unwrap();
        }
        assert_eq!(t.first(key(9), 1, 1, 0, |_| {}), Err(DropReason::FragmentTableFull));
        assert_eq!(t.stats.table_full, 1);
        let mut dropped = 0;
        t.expire(3000, 4, |_| dropped += 1);
        assert_eq!(dropped, 4);
        assert!(t.first(key(9), 1, 1, 3000, |_| {}).is_ok());
    }
}
