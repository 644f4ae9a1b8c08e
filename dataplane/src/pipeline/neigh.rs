//! Neighbours: IPv4 (ARP, RFC 826) and IPv6 (NDP, RFC 4861) next hops and
//! their MAC addresses, per worker.
//!
//! Entries are allocated at start and reused; a packet whose next hop is
//! not resolved yet waits in a small bounded queue on the entry while the
//! caller sends a request. Time comes from the caller (milliseconds).
//! What a worker learns is recorded in [`NeighTable::take_learned`], so the
//! worker can share it with the others (replies arrive on whichever queue
//! the NIC picked, not necessarily the asker's).

use std::net::IpAddr;

use rustc_hash::FxHashMap;

/// Which neighbour: an address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighKey {
    /// Interface index.
    pub iface: u16,
    /// The neighbour's address.
    pub addr: IpAddr,
}

/// Sizes and timers.
#[derive(Debug, Clone, Copy)]
pub struct NeighConfig {
    /// Entries in the table.
    pub capacity: usize,
    /// Packets held per unresolved neighbour.
    pub hold: usize,
    /// How long a learned entry is trusted before it is re-confirmed.
    pub reachable_ms: u64,
    /// Time between requests for an unresolved neighbour.
    pub retry_ms: u64,
    /// Requests sent before giving up (RFC 4861 §10 MAX_MULTICAST_SOLICIT).
    pub max_tries: u8,
}

impl Default for NeighConfig {
    fn default() -> Self {
        NeighConfig { capacity: 1024, hold: 4, reachable_ms: 300_000, retry_ms: 1000, max_tries: 3 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// From the configuration; never expires.
    Static,
    /// Answered; trusted until the deadline.
    Reachable { until: u64 },
    /// Asked, no answer yet.
    Incomplete { tries: u8, next_try: u64 },
    /// Was reachable, is being re-confirmed; still used meanwhile.
    Probing { tries: u8, next_try: u64 },
}

struct Entry<B> {
    key: NeighKey,
    mac: [u8; 6],
    state: State,
    held: Vec<B>,
}

/// What to do with a packet for a neighbour.
#[derive(Debug)]
pub enum Resolve<B> {
    /// Send it to `mac` now; when `solicit` is set, also send a request to
    /// re-confirm a stale entry.
    Send {
        /// The neighbour's MAC.
        mac: [u8; 6],
        /// The packet.
        pkt: B,
        /// Send a request too.
        solicit: bool,
    },
    /// Held until the neighbour answers. `solicit`: send a request now.
    Held {
        /// The caller should send a request for this neighbour now.
        solicit: bool,
    },
    /// Not resolvable now (table or hold queue full): drop it.
    Dropped(B),
}

/// Events of [`NeighTable::tick`].
#[derive(Debug)]
pub enum Tick<B> {
    /// Send (another) request for this neighbour.
    Solicit(NeighKey),
    /// The neighbour never answered: this held packet is dropped.
    GaveUp(B),
}

/// The neighbour table of one worker.
pub struct NeighTable<B> {
    cfg: NeighConfig,
    // FxHash: every forwarded packet looks a next hop up here, and the keys
    // are our routes' gateways and on-link hosts, bounded in number, so a
    // fast hash beats SipHash's flooding resistance.
    index: FxHashMap<NeighKey, u32>,
    entries: Vec<Entry<B>>,
    free: Vec<u32>,
    learned: Vec<(NeighKey, [u8; 6])>,
    pending: usize,
    /// The slot of the last key looked up: nearly every packet of a burst
    /// goes to the same next hop, so this skips the hash most of the time.
    last: Option<(NeighKey, u32)>,
    /// Changes with every change of an entry (key, MAC or state): a
    /// caller's copy of a resolution stays good while this is unchanged.
    generation: u64,
}

impl<B> NeighTable<B> {
    /// A table with every entry allocated up front.
    pub fn new(cfg: NeighConfig) -> Self {
        let mut entries = Vec::with_capacity(cfg.capacity);
        for _ in 0..cfg.capacity {
            entries.push(Entry {
                key: NeighKey { iface: 0, addr: IpAddr::from([0u8; 4]) },
                mac: [0; 6],
                state: State::Incomplete { tries: 0, next_try: 0 },
                held: Vec::with_capacity(cfg.hold),
            });
        }
        NeighTable {
            cfg,
            index: FxHashMap::with_capacity_and_hasher(cfg.capacity * 2, Default::default()),
            entries,
            free: (0..cfg.capacity as u32).rev().collect(),
            learned: Vec::with_capacity(64),
            pending: 0,
            last: None,
            generation: 0,
        }
    }

    fn slot(&mut self, key: NeighKey) -> Option<u32> {
        if let Some((k, i)) = self.last {
            if k == key {
                return Some(i);
            }
        }
        if let Some(&i) = self.index.get(&key) {
            self.last = Some((key, i));
            return Some(i);
        }
        let i = self.free.pop()?;
        self.generation += 1;
        let e = &mut self.entries[i as usize];
        e.key = key;
        e.held.clear();
        self.index.insert(key, i);
        Some(i)
    }

    /// Add a static neighbour (configuration time).
    pub fn add_static(&mut self, key: NeighKey, mac: [u8; 6]) -> bool {
        let Some(i) = self.slot(key) else { return false };
        self.generation += 1;
        let e = &mut self.entries[i as usize];
        e.mac = mac;
        e.state = State::Static;
        true
    }

    /// What [`NeighTable::generation`] changes with.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// For a caller that keeps `key`'s MAC: until when (milliseconds,
    /// exclusive) [`NeighTable::resolve`] would answer `Send` with it and
    /// change nothing, as long as [`NeighTable::generation`] is unchanged.
    /// `None` when `key` is not resolved.
    pub fn usable_until(&self, key: &NeighKey) -> Option<u64> {
        let i = match self.last {
            Some((k, i)) if k == *key => i,
            _ => *self.index.get(key)?,
        };
        match self.entries[i as usize].state {
            // Both change only through this table (which moves the
            // generation): probing ends with an answer or in `tick`.
            State::Static | State::Probing { .. } => Some(u64::MAX),
            State::Reachable { until } => Some(until),
            State::Incomplete { .. } => None,
        }
    }

    /// The MAC of `key` if known (for answering and tests).
    pub fn get(&self, key: &NeighKey) -> Option<[u8; 6]> {
        let e = &self.entries[*self.index.get(key)? as usize];
        match e.state {
            State::Incomplete { .. } => None,
            _ => Some(e.mac),
        }
    }

    /// Find the MAC for a packet to `key`, or hold the packet.
    pub fn resolve(&mut self, key: NeighKey, now: u64, pkt: B) -> Resolve<B> {
        let Some(i) = self.slot(key) else { return Resolve::Dropped(pkt) };
        let (retry, cap) = (self.cfg.retry_ms, self.cfg.hold);
        let e = &mut self.entries[i as usize];
        match e.state {
            State::Static | State::Probing { .. } => Resolve::Send { mac: e.mac, pkt, solicit: false },
            State::Reachable { until } if now < until => Resolve::Send { mac: e.mac, pkt, solicit: false },
            State::Reachable { .. } => {
                // RFC 4861 §7.3.3: a stale entry is still used while it is
                // re-confirmed.
                e.state = State::Probing { tries: 1, next_try: now + retry };
                self.pending += 1;
                self.generation += 1;
                Resolve::Send { mac: e.mac, pkt, solicit: true }
            }
            State::Incomplete { tries, .. } => {
                let fresh = tries == 0;
                if fresh {
                    e.state = State::Incomplete { tries: 1, next_try: now + retry };
                    self.pending += 1;
                    self.generation += 1;
                }
                if e.held.len() >= cap {
                    return Resolve::Dropped(pkt);
                }
                e.held.push(pkt);
                Resolve::Held { solicit: fresh }
            }
        }
    }

    /// Record an answer (or any packet that reveals a neighbour's MAC, RFC
    /// 826 "merge"): returns the packets that were waiting for it.
    pub fn learn(&mut self, key: NeighKey, mac: [u8; 6], now: u64, released: &mut impl FnMut([u8; 6], B)) {
        self.update(key, mac, now, released);
        if self.learned.len() < self.learned.capacity() {
            self.learned.push((key, mac));
        }
    }

    /// Apply what another worker learned (not re-shared).
    pub fn update(&mut self, key: NeighKey, mac: [u8; 6], now: u64, released: &mut impl FnMut([u8; 6], B)) {
        let Some(i) = self.slot(key) else { return };
        let reachable = self.cfg.reachable_ms;
        let e = &mut self.entries[i as usize];
        if e.state == State::Static {
            return;
        }
        if matches!(e.state, State::Incomplete { tries, .. } | State::Probing { tries, .. } if tries > 0) {
            self.pending -= 1;
        }
        e.mac = mac;
        e.state = State::Reachable { until: now + reachable };
        self.generation += 1;
        for p in e.held.drain(..) {
            released(mac, p);
        }
    }

    /// Update a neighbour only if it is already in the table: RFC 826's
    /// merge rule for packets that were not addressed to us.
    pub fn refresh(&mut self, key: NeighKey, mac: [u8; 6], now: u64, released: &mut impl FnMut([u8; 6], B)) {
        if self.index.contains_key(&key) {
            self.learn(key, mac, now, released);
        }
    }

    /// What this worker learned since the last call, to share.
    pub fn take_learned(&mut self) -> std::vec::Drain<'_, (NeighKey, [u8; 6])> {
        self.learned.drain(..)
    }

    /// Retries and give-ups. Cheap when nothing is pending.
    pub fn tick(&mut self, now: u64, out: &mut impl FnMut(Tick<B>)) {
        if self.pending == 0 {
            return;
        }
        let (retry, max) = (self.cfg.retry_ms, self.cfg.max_tries);
        for i in 0..self.entries.len() {
            let e = &mut self.entries[i];
            let (tries, next_try, probing) = match e.state {
                State::Incomplete { tries, next_try } if tries > 0 => (tries, next_try, false),
                State::Probing { tries, next_try } => (tries, next_try, true),
                _ => continue,
            };
            if now < next_try {
                continue;
            }
            self.generation += 1;
            if tries < max {
                e.state = if probing {
                    State::Probing { tries: tries + 1, next_try: now + retry }
                } else {
                    State::Incomplete { tries: tries + 1, next_try: now + retry }
                };
                out(Tick::Solicit(e.key));
                continue;
            }
            // RFC 4861 §7.3.3: no answer after the last try: forget it, and
            // drop what waited for it.
            for p in e.held.drain(..) {
                out(Tick::GaveUp(p));
            }
            e.state = State::Incomplete { tries: 0, next_try: 0 };
            let key = e.key;
            self.index.remove(&key);
            self.free.push(i as u32);
            // The freed slot may be reused for another key.
            self.last = None;
            self.pending -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str) -> NeighKey {
        NeighKey { iface: 0, addr: a.parse().unwrap() }
    }
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn small() -> NeighTable<u32> {
        NeighTable::new(NeighConfig { capacity: 2, hold: 2, reachable_ms: 1000, retry_ms: 100, max_tries: 3 })
    }

    #[test]
    fn miss_holds_then_answer_releases_in_order() {
        let mut t = small();
        assert!(matches!(t.resolve(key("192.0.2.1"), 0, 1), Resolve::Held { solicit: true }));
        assert!(matches!(t.resolve(key("192.0.2.1"), 1, 2), Resolve::Held { solicit: false }));
        assert!(matches!(t.resolve(key("192.0.2.1"), 2, 3), Resolve::Dropped(3)), "hold queue is bounded");
        let mut out = Vec::new();
        t.learn(key("192.0.2.1"), MAC, 5, &mut |m, p| out.push((m, p)));
        assert_eq!(out, vec![(MAC, 1), (MAC, 2)]);
        assert!(matches!(
            t.resolve(key("192.0.2.1"), 6, 4),
            Resolve::Send { mac: MAC, pkt: 4, solicit: false }
        ));
        assert_eq!(t.take_learned().collect::<Vec<_>>(), vec![(key("192.0.2.1"), MAC)]);
    }

    #[test]
    fn unanswered_requests_are_retried_then_given_up() {
        let mut t = small();
        let _ = t.resolve(key("2001:db8::1"), 0, 7);
        let mut ev = Vec::new();
        t.tick(50, &mut |e| ev.push(format!("{e:?}")));
        assert!(ev.is_empty(), "not before the retry interval");
        t.tick(100, &mut |e| ev.push(format!("{e:?}")));
        t.tick(200, &mut |e| ev.push(format!("{e:?}")));
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| e.starts_with("Solicit")));
        ev.clear();
        t.tick(300, &mut |e| ev.push(format!("{e:?}")));
        assert_eq!(ev, vec!["GaveUp(7)".to_string()]);
        // The slot is free again: two new neighbours fit in capacity 2.
        assert!(matches!(t.resolve(key("2001:db8::2"), 400, 1), Resolve::Held { .. }));
        assert!(matches!(t.resolve(key("2001:db8::3"), 400, 1), Resolve::Held { .. }));
        assert!(matches!(t.resolve(key("2001:db8::4"), 400, 1), Resolve::Dropped(1)), "table full");
    }

    #[test]
    fn stale_entries_keep_working_while_reconfirmed() {
        let mut t = small();
        t.learn(key("192.0.2.1"), MAC, 0, &mut |_, _| {});
        assert!(matches!(t.resolve(key("192.0.2.1"), 2000, 1), Resolve::Send { solicit: true, .. }));
        assert!(matches!(t.resolve(key("192.0.2.1"), 2001, 1), Resolve::Send { solicit: false, .. }));
        t.learn(key("192.0.2.1"), MAC, 2002, &mut |_, _| {});
        assert!(matches!(t.resolve(key("192.0.2.1"), 2500, 1), Resolve::Send { solicit: false, .. }));
    }

    #[test]
    fn usable_until_and_generation_say_when_a_copy_is_good() {
        let mut t = small();
        let k = key("192.0.2.1");
        assert_eq!(t.usable_until(&k), None);
        let _ = t.resolve(k, 0, 1);
        assert_eq!(t.usable_until(&k), None, "incomplete");
        let g = t.generation();
        t.learn(k, MAC, 5, &mut |_, _| {});
        assert_ne!(t.generation(), g);
        assert_eq!(t.usable_until(&k), Some(1005), "reachable_ms after the answer");
        let g = t.generation();
        assert!(matches!(t.resolve(k, 1004, 1), Resolve::Send { solicit: false, .. }));
        assert_eq!(t.generation(), g, "a fresh hit changes nothing");
        assert!(matches!(t.resolve(k, 1005, 1), Resolve::Send { solicit: true, .. }));
        assert_ne!(t.generation(), g, "stale: now probing");
        assert_eq!(t.usable_until(&k), Some(u64::MAX), "probing lasts until the table changes");
        let g = t.generation();
        t.tick(1105, &mut |_| {});
        assert_ne!(t.generation(), g, "another probe");
    }

    #[test]
    fn static_entries_never_change() {
        let mut t = small();
        assert!(t.add_static(key("192.0.2.1"), MAC));
        t.learn(key("192.0.2.1"), [9; 6], 0, &mut |_, _| {});
        assert_eq!(t.get(&key("192.0.2.1")), Some(MAC));
        assert!(matches!(t.resolve(key("192.0.2.1"), u64::MAX / 2, 1), Resolve::Send { mac: MAC, .. }));
    }
}
