//! The sync thread: one UDP socket (plus one joined to the multicast group
//! when the peer is a group), the workers' change queues, table walks and
//! the receive path. Nothing here runs on a worker.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dataplane::nat64::{Pool4, SyncChange, SyncQueue};
use dataplane::ops::{Request, Response};

use super::guard::{Fresh, Guard};
use super::wire::{Builder, Datagram, Header, Key, MsgType, Reject, ResyncSummary, MAX_DATAGRAM};
use super::{read_key, Counters};
use crate::api::service::{Control, Plane};
use crate::config::{Instance, SessionSync};

/// Walks send at most one datagram per this interval on average (20 000
/// datagrams, about 660 000 sessions and 29 MB per second), so a resync
/// or refresh neither floods the management link nor keeps a worker in
/// its mailbox: one walk step (`ops::STEP` records) at a time.
const WALK_DATAGRAM_GAP: Duration = Duration::from_micros(50);
/// Idle sleep of the loop when there was nothing to do.
const IDLE: Duration = Duration::from_millis(1);
/// Tries to post to a full mailbox before the records are dropped.
const POST_TRIES: u32 = 50;
/// Datagrams read per round before the queues get a turn.
const RECV_BUDGET: usize = 256;
/// Requests sent again after a bulk resync arrived incomplete, before
/// leaving the rest to the refresh walks.
pub const RESYNC_RETRIES: u32 = 4;
/// Wait before the first repeated request; doubled for each further one.
const RESYNC_BACKOFF: Duration = Duration::from_millis(200);
/// How long after a request the data datagrams of peers are tallied.
const RESYNC_EXPECT: Duration = Duration::from_secs(60);
/// Data datagrams tallied per peer and resync (about 35 million sessions).
const MAX_TALLY: usize = 1 << 20;

/// The name of instance `i` ("" when there is none).
fn name_of(cfg: &crate::config::Config, i: usize) -> &str {
    cfg.instances.get(i).map_or("", |x| x.name())
}

/// Unix time in ms.
fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A 64-bit hash seeded from the OS (a fresh value per call and start).
fn random_u64(x: u64) -> u64 {
    std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), x)
}

/// FNV-1a: a stable id from the host name and the listen address, so a
/// restarted appliance keeps its id and its peers see a new epoch.
fn sender_id(listen: SocketAddr) -> u64 {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let text = format!("{}|{listen}", host.trim());
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Live changes of one instance waiting for a datagram.
#[derive(Default)]
struct Pending {
    b: Builder,
    since: Option<Instant>,
}

/// A table walk: every session of some (instance, worker) pairs, sent to
/// one peer (a resync answer) or to all (refresh, repair).
struct Walk {
    dest: Option<SocketAddr>,
    jobs: Vec<(usize, usize)>,
    job: usize,
    cursor: u32,
    /// Send an end-of-resync marker when done.
    end: bool,
    /// Sequence number of the first data datagram sent (0: none yet).
    first_seq: u64,
    /// Data datagrams sent.
    datagrams: u64,
    /// Average gap between datagrams (a retried resync asks for more).
    gap: Duration,
}

/// What this appliance accepted of the bulk resync it expects from one
/// peer, to compare with the peer's end-of-resync summary.
#[derive(Default)]
struct Tally {
    epoch: u64,
    /// Sequence numbers of the data datagrams accepted from the peer.
    seqs: Vec<u64>,
    /// Requests repeated since the last complete resync.
    retries: u32,
    /// When to ask again.
    retry_at: Option<Instant>,
}

/// pool4 of every stateful instance as the running configuration splits
/// it over this appliance's workers (owner of a received mapping).
struct Owners {
    generation: u64,
    names: Vec<Option<String>>,
    pools: Vec<Option<Pool4>>,
}

/// What sending needs: apart from the rest of [`Engine`] so a builder
/// held there can be sent without moving it.
struct Tx {
    sock: UdpSocket,
    peers: Vec<SocketAddr>,
    key: Key,
    id: u64,
    epoch: u64,
    seq: u64,
    counters: Arc<Counters>,
    /// Test hook: resync data datagrams to "lose" (sealed, never sent).
    #[cfg(test)]
    lose: u32,
}

impl Tx {
    fn send_to(&self, d: &[u8], dest: Option<SocketAddr>) {
        let one = dest.map(|d| [d]);
        for p in one.as_ref().map_or(&self.peers[..], |d| &d[..]) {
            if self.sock.send_to(d, p).is_err() {
                Counters::add(&self.counters.send_errors, 1);
            }
        }
    }

    /// The header of the next datagram of this epoch.
    fn next<'a>(&mut self, ty: MsgType, instance: &'a str) -> Header<'a> {
        self.seq += 1;
        Header { ty, sender: self.id, epoch: self.epoch, seq: self.seq, time_ms: unix_ms(), instance }
    }

    /// Seals `b` as the next datagram of this epoch, sends it to `dest`
    /// (or every peer) and empties it.
    fn send(&mut self, b: &mut Builder, ty: MsgType, instance: &str, dest: Option<SocketAddr>) {
        let h = self.next(ty, instance);
        let n = b.len() as u64;
        #[cfg(test)]
        if ty == MsgType::ResyncData && self.lose > 0 {
            self.lose -= 1;
            b.clear();
            return;
        }
        self.send_to(b.seal(&h, &self.key), dest);
        b.clear();
        if n > 0 {
            Counters::add(&self.counters.batches_sent, 1);
            Counters::add(&self.counters.sessions_sent, n);
        }
    }
}

/// The sync thread's state.
pub struct Engine<P: Plane> {
    control: Arc<Control<P>>,
    counters: Arc<Counters>,
    tx: Tx,
    group: Option<UdpSocket>,
    queues: Vec<Vec<Arc<SyncQueue>>>,
    pending: Vec<Pending>,
    flush: Duration,
    refresh: Duration,
    next_refresh: Instant,
    walks: VecDeque<Walk>,
    next_walk_step: Instant,
    guard: Guard,
    owners: Option<Owners>,
    records: Vec<SyncChange>,
    out: Builder,
    /// Until when peers' data datagrams are tallied (a resync is expected).
    expect_until: Option<Instant>,
    /// Per peer address: what arrived of the resync expected from it.
    tallies: HashMap<SocketAddr, Tally>,
}

impl<P: Plane> Engine<P> {
    /// Opens the sockets of `control`'s `sync` section. `queues[i][w]` is
    /// worker `w`'s queue of instance `i` (empty for stateless instances).
    pub fn new(
        control: Arc<Control<P>>,
        queues: Vec<Vec<Arc<SyncQueue>>>,
        counters: Arc<Counters>,
    ) -> io::Result<Self> {
        let cfg = control.config();
        let sy: &SessionSync =
            cfg.sync.as_ref().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "sync is off"))?;
        let key =
            Key::new(&read_key(&sy.key_file).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?);
        let sock = UdpSocket::bind(sy.listen)?;
        sock.set_nonblocking(true)?;
        receive_buffer(&sock);
        let group = match sy.peers.first() {
            Some(g) if g.ip().is_multicast() => Some(join(&sock, *g, sy.multicast_interface.as_deref())?),
            _ => None,
        };
        let n = cfg.instances.len();
        let now = Instant::now();
        let refresh = Duration::from_secs(u64::from(sy.refresh_s.max(1)));
        let tx = Tx {
            sock,
            peers: sy.peers.clone(),
            key,
            id: sender_id(sy.listen),
            // Unix ms in the high bits keeps epochs increasing across
            // restarts; the low bits make each start's value unguessable.
            epoch: unix_ms() << 20 | (random_u64(n as u64) & 0xf_ffff),
            seq: 0,
            counters: counters.clone(),
            #[cfg(test)]
            lose: 0,
        };
        Ok(Engine {
            counters,
            tx,
            group,
            queues,
            pending: (0..n).map(|_| Pending::default()).collect(),
            flush: Duration::from_millis(u64::from(sy.flush_ms.max(1))),
            refresh,
            next_refresh: now + refresh,
            walks: VecDeque::new(),
            next_walk_step: now,
            guard: Guard::default(),
            owners: None,
            records: Vec::with_capacity(super::wire::MAX_RECORDS),
            out: Builder::default(),
            expect_until: None,
            tallies: HashMap::new(),
            control,
        })
    }

    /// The unicast socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tx.sock.local_addr()
    }

    /// Runs until `stop`: asks the peers for a resync, then polls.
    pub fn run(mut self, stop: &AtomicBool) {
        self.request_resync(None, 0);
        while !stop.load(Ordering::Relaxed) {
            if !self.poll(Instant::now()) {
                std::thread::sleep(IDLE);
            }
        }
        // Last changes out before the thread ends.
        self.drain(Instant::now(), true);
    }

    /// One round: received datagrams, queued changes, due flushes, one
    /// walk step, the refresh timer. Returns whether anything was done.
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut busy = self.receive();
        if now >= self.next_refresh {
            self.next_refresh = now + self.refresh;
            Counters::add(&self.counters.refresh_walks, 1);
            self.start_walk(None, None, false, 0);
        }
        busy |= self.drain(now, false);
        self.retry_resyncs(now);
        if !self.walks.is_empty() && now >= self.next_walk_step {
            // Queued changes go first: a walk never overtakes an older one.
            self.drain(now, true);
            let gap = self.walks.front().map_or(WALK_DATAGRAM_GAP, |w| w.gap);
            let sent = self.walk_step();
            self.next_walk_step = now + gap * sent.max(1) as u32;
            busy = true;
        }
        busy
    }

    // ---- sending -------------------------------------------------------

    /// Asks `dest` (or every peer) for all its sessions.
    /// `pace`: how many times the answer's datagram gap is doubled (a
    /// retry after a loss asks for a slower answer).
    fn request_resync(&mut self, dest: Option<SocketAddr>, pace: u8) {
        Counters::add(&self.counters.resync_requested, 1);
        self.expect_until = Some(Instant::now() + RESYNC_EXPECT);
        let h = self.tx.next(MsgType::ResyncRequest, "");
        self.out.clear();
        let d = self.out.seal_request(&h, &self.tx.key, pace);
        self.tx.send_to(d, dest);
    }

    /// Asks again the peers whose last resync arrived incomplete, once
    /// their backoff passed; forgets tallies once no resync is expected.
    fn retry_resyncs(&mut self, now: Instant) {
        if self.expect_until.is_some_and(|t| now >= t) {
            self.expect_until = None;
            for t in self.tallies.values_mut() {
                t.seqs = Vec::new();
            }
        }
        let due: Vec<(SocketAddr, u32)> = self
            .tallies
            .iter_mut()
            .filter(|(_, t)| t.retry_at.is_some_and(|r| now >= r))
            .map(|(a, t)| {
                t.retry_at = None;
                (*a, t.retries)
            })
            .collect();
        for (a, retries) in due {
            self.request_resync(Some(a), retries.min(u32::from(u8::MAX)) as u8);
        }
    }

    /// Moves queued changes into datagrams: full ones go at once, partly
    /// filled ones after `flush` (or now, with `all`). Queues that lost
    /// changes get a repair walk.
    fn drain(&mut self, now: Instant, all: bool) -> bool {
        let mut busy = false;
        let dropped: u64 = self.queues.iter().flatten().map(|q| q.dropped()).sum();
        self.counters.dropped_queue_full.store(dropped, Ordering::Relaxed);
        for i in 0..self.queues.len() {
            for w in 0..self.queues[i].len() {
                let q = self.queues[i][w].clone();
                let cfg = self.control.config();
                let name = name_of(&cfg, i);
                while let Some(c) = q.pop() {
                    busy = true;
                    let p = &mut self.pending[i];
                    p.b.push(&c);
                    p.since.get_or_insert(now);
                    if p.b.is_full() {
                        self.tx.send(&mut p.b, MsgType::Batch, name, None);
                        p.since = None;
                    }
                }
                if q.take_lost() {
                    Counters::add(&self.counters.resync_repair, 1);
                    self.start_walk(None, Some((i, w)), false, 0);
                }
            }
            let due = self.pending[i].since.is_some_and(|t| all || now.duration_since(t) >= self.flush);
            if due {
                let cfg = self.control.config();
                let name = name_of(&cfg, i);
                let p = &mut self.pending[i];
                self.tx.send(&mut p.b, MsgType::Batch, name, None);
                p.since = None;
                busy = true;
            }
        }
        busy
    }

    /// Queues a walk over `only` (or every stateful instance and worker).
    fn start_walk(&mut self, dest: Option<SocketAddr>, only: Option<(usize, usize)>, end: bool, pace: u8) {
        let gap = WALK_DATAGRAM_GAP * (1u32 << pace.min(super::wire::MAX_PACE));
        let jobs: Vec<(usize, usize)> = match only {
            Some(j) => vec![j],
            None => {
                let cfg = self.control.config();
                let workers = self.control.plane.workers();
                let mut v = Vec::new();
                for (i, inst) in cfg.instances.iter().enumerate() {
                    if matches!(inst, Instance::Nat64(_)) {
                        v.extend((0..workers).map(|w| (i, w)));
                    }
                }
                v
            }
        };
        // The same walk already queued covers this request.
        if let Some(w) =
            self.walks.iter_mut().find(|w| w.dest == dest && w.jobs == jobs && w.job == 0 && w.cursor == 0)
        {
            w.gap = w.gap.max(gap);
            return;
        }
        self.walks.push_back(Walk { dest, jobs, job: 0, cursor: 0, end, first_seq: 0, datagrams: 0, gap });
    }

    /// One step of the first walk: one worker answer, its datagrams sent.
    /// Returns the datagrams sent.
    fn walk_step(&mut self) -> usize {
        let Some(mut w) = self.walks.pop_front() else { return 0 };
        let Some(&(inst, worker)) = w.jobs.get(w.job) else {
            self.finish(&w);
            return 1;
        };
        // A resync answer (`end`) sends every session: the requester lost
        // its table and may get its own sessions back.
        let req = Request::SyncWalk { instance: inst, cursor: w.cursor, all: w.end };
        let ans = self.control.plane.ask(worker, req);
        let mut sent = 0;
        match ans {
            Some(Response::SyncWalk(changes, next)) => {
                let cfg = self.control.config();
                let name = name_of(&cfg, inst);
                self.out.clear();
                for (k, c) in changes.iter().enumerate() {
                    self.out.push(c);
                    if self.out.is_full() || k + 1 == changes.len() {
                        self.tx.send(&mut self.out, MsgType::ResyncData, name, w.dest);
                        w.first_seq = if w.first_seq == 0 { self.tx.seq } else { w.first_seq };
                        w.datagrams += 1;
                        sent += 1;
                    }
                }
                match next {
                    Some(c) => w.cursor = c,
                    None => {
                        w.job += 1;
                        w.cursor = 0;
                    }
                }
            }
            // Busy or not stateful: skip this pair rather than stall.
            Some(_) => {
                w.job += 1;
                w.cursor = 0;
            }
            // No answer: try again next time.
            None => {}
        }
        if w.job >= w.jobs.len() {
            self.finish(&w);
        } else {
            self.walks.push_front(w);
        }
        sent
    }

    fn finish(&mut self, w: &Walk) {
        if w.end {
            // The summary lets the requester detect lost datagrams.
            let s = ResyncSummary { first_seq: w.first_seq, datagrams: w.datagrams };
            let h = self.tx.next(MsgType::ResyncEnd, "");
            self.out.clear();
            let d = self.out.seal_end(&h, &self.tx.key, s);
            self.tx.send_to(d, w.dest);
        }
    }

    // ---- receiving -----------------------------------------------------

    fn receive(&mut self) -> bool {
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        let mut n = 0;
        while n < RECV_BUDGET {
            let got = self.tx.sock.recv_from(&mut buf).or_else(|e| match &self.group {
                Some(g) if e.kind() == io::ErrorKind::WouldBlock => g.recv_from(&mut buf),
                _ => Err(e),
            });
            let Ok((len, src)) = got else { break };
            n += 1;
            if let Err(r) = self.handle(&buf[..len], src) {
                Counters::add(&self.counters.rejected[r as usize], 1);
                tracing::debug!(%src, reason = r.name(), "sync datagram refused");
            }
        }
        n > 0
    }

    /// Verifies and applies one datagram from `src`. A refused datagram
    /// changes nothing (not even the replay window).
    pub fn handle(&mut self, d: &[u8], src: SocketAddr) -> Result<(), Reject> {
        let dg = Datagram::parse(d, &self.tx.key)?;
        if dg.sender() == self.tx.id {
            // Our own multicast, looped back.
            return Ok(());
        }
        let mut records = std::mem::take(&mut self.records);
        let r = self.handle_parsed(&dg, src, &mut records);
        self.records = records;
        r
    }

    fn handle_parsed(
        &mut self,
        dg: &Datagram,
        src: SocketAddr,
        records: &mut Vec<SyncChange>,
    ) -> Result<(), Reject> {
        dg.records(records)?;
        let target = match dg.ty() {
            MsgType::Batch | MsgType::ResyncData => {
                let name = dg.instance().unwrap_or("");
                Some(self.instance_index(name).ok_or(Reject::UnknownInstance)?)
            }
            _ => None,
        };
        let fresh = self.guard.accept(dg.sender(), dg.epoch(), dg.seq(), dg.time_ms(), unix_ms())?;
        if fresh == Fresh::NewEpoch {
            // The peer restarted: it may be active for sessions we need.
            tracing::info!(%src, "sync peer restarted: asking it for a resync");
            self.request_resync(Some(src), 0);
        }
        match dg.ty() {
            MsgType::ResyncRequest => {
                Counters::add(&self.counters.resync_served, 1);
                self.start_walk(Some(src), None, true, dg.resync_pace().unwrap_or(0));
            }
            MsgType::ResyncEnd => self.resync_ended(dg, src),
            MsgType::Batch | MsgType::ResyncData => {
                if dg.ty() == MsgType::ResyncData && self.expect_until.is_some() {
                    let t = self.tallies.entry(src).or_default();
                    if t.epoch != dg.epoch() {
                        t.epoch = dg.epoch();
                        t.seqs.clear();
                    }
                    if t.seqs.len() < MAX_TALLY {
                        t.seqs.push(dg.seq());
                    }
                }
                if let Some(i) = target {
                    Counters::add(&self.counters.batches_received, 1);
                    self.deliver(i, records);
                }
            }
        }
        Ok(())
    }

    /// Compares an end-of-resync summary with the data datagrams accepted
    /// from `src` in its sequence range: complete, or counted incomplete
    /// and asked again after a backoff (a bounded number of times).
    fn resync_ended(&mut self, dg: &Datagram, src: SocketAddr) {
        let s = dg.resync_summary().unwrap_or_default();
        let t = self.tallies.entry(src).or_default();
        let range = s.first_seq..dg.seq();
        let got = if t.epoch == dg.epoch() { t.seqs.iter().filter(|q| range.contains(q)).count() } else { 0 };
        t.seqs.clear();
        if got as u64 >= s.datagrams {
            t.retries = 0;
            Counters::add(&self.counters.resync_received, 1);
            return;
        }
        Counters::add(&self.counters.resync_incomplete, 1);
        if t.retries < RESYNC_RETRIES {
            t.retry_at = Some(Instant::now() + RESYNC_BACKOFF * (1 << t.retries));
            t.retries += 1;
            tracing::warn!(%src, got, sent = s.datagrams, retry = t.retries, "sync: incomplete resync, asking again");
        } else {
            t.retries = 0;
            tracing::warn!(%src, got, sent = s.datagrams, "sync: resync still incomplete; refresh walks repair the rest");
        }
    }

    /// Rebuilds the owner table when the configuration changed.
    fn owners(&mut self) -> Option<&Owners> {
        let generation = self.control.reload.generation();
        if self.owners.as_ref().is_none_or(|o| o.generation != generation) {
            let cfg = self.control.config();
            let workers = self.control.plane.workers() as u16;
            let (mut names, mut pools) = (Vec::new(), Vec::new());
            for inst in &cfg.instances {
                let (n, p) = match inst {
                    Instance::Nat64(n) => (Some(n.name.clone()), crate::runtime::pool4(n, workers).ok()),
                    _ => (None, None),
                };
                names.push(n);
                pools.push(p);
            }
            self.owners = Some(Owners { generation, names, pools });
        }
        self.owners.as_ref()
    }

    fn instance_index(&mut self, name: &str) -> Option<usize> {
        self.owners()?.names.iter().position(|n| n.as_deref() == Some(name))
    }

    /// Groups records by the worker owning their mapping and posts each
    /// group to that worker.
    fn deliver(&mut self, instance: usize, records: &[SyncChange]) {
        let workers = self.control.plane.workers();
        let mut by_worker: Vec<Vec<SyncChange>> = vec![Vec::new(); workers];
        let mut not_owned = 0;
        {
            let pool = self.owners().and_then(|o| o.pools.get(instance)).and_then(|p| p.as_ref());
            for c in records {
                match pool.and_then(|p| p.owner(c.proto, c.v4.0, c.v4.1)) {
                    Some(w) if usize::from(w) < workers => by_worker[usize::from(w)].push(*c),
                    _ => not_owned += 1,
                }
            }
        }
        Counters::add(&self.counters.sessions_not_owned, not_owned);
        for (w, changes) in by_worker.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            let n = changes.len() as u64;
            let changes = Arc::new(changes);
            let mut posted = false;
            for _ in 0..POST_TRIES {
                if self
                    .control
                    .plane
                    .post(w, Request::SyncImport { instance, changes: changes.clone() })
                    .is_some()
                {
                    posted = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            if posted {
                Counters::add(&self.counters.sessions_received, n);
            } else {
                Counters::add(&self.counters.dropped_mailbox_full, n);
            }
        }
    }
}

/// Room for a resync burst while the thread waits on a worker (about
/// 2 800 full datagrams): beyond the usual rmem_max, so forced when
/// allowed (CAP_NET_ADMIN), else as much as the kernel gives.
const RECV_BUFFER: usize = 4 << 20;

fn receive_buffer(sock: &UdpSocket) {
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(sock, RECV_BUFFER).is_err() {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(sock, RECV_BUFFER);
    }
}

/// A second socket on the group's port that joined the group on
/// `interface`; the unicast socket sends to the group through it, with
/// TTL/hop limit 1 (the group stays on the management link) and without
/// loopback (this host's sockets never read what it sends).
fn join(sock: &UdpSocket, group: SocketAddr, interface: Option<&str>) -> io::Result<UdpSocket> {
    let name = interface.unwrap_or("");
    let index = rustix::net::netdevice::name_to_index(sock, name)?;
    let g = UdpSocket::bind(group)?;
    g.set_nonblocking(true)?;
    receive_buffer(&g);
    match group.ip() {
        IpAddr::V4(a) => {
            let any = std::net::Ipv4Addr::UNSPECIFIED;
            rustix::net::sockopt::set_ip_add_membership_with_ifindex(&g, &a, &any, index)?;
            rustix::net::sockopt::set_ip_multicast_if_with_ifindex(sock, &a, &any, index)?;
            rustix::net::sockopt::set_ip_multicast_loop(sock, false)?;
            rustix::net::sockopt::set_ip_multicast_ttl(sock, 1)?;
        }
        IpAddr::V6(a) => {
            g.join_multicast_v6(&a, index)?;
            rustix::net::sockopt::set_ipv6_multicast_if(sock, index)?;
            rustix::net::sockopt::set_ipv6_multicast_loop(sock, false)?;
            rustix::net::sockopt::set_ipv6_multicast_hops(sock, 1)?;
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::super::wire::tests::{change, resealed};
    use super::*;
    use crate::api::service::{MbufView, PortView, WorkerView};
    use crate::config::Config;
    use dataplane::nat64::{self, Proto, SessionView, Shard, SyncOp, Tuple6};
    use std::path::PathBuf;
    use std::sync::Mutex;

    const NOW_MS: u64 = 1_000_000;
    const PLAT: usize = 1;

    /// Real shards behind a mailbox that answers at once.
    struct Shards(Vec<Mutex<Shard>>);

    impl Plane for Shards {
        fn workers(&self) -> usize {
            self.0.len()
        }
        fn worker(&self, _w: usize) -> WorkerView {
            WorkerView::default()
        }
        fn ask(&self, w: usize, req: Request) -> Option<Response> {
            let mut s = self.0.get(w)?.lock().ok()?;
            Some(match req {
                Request::SyncImport { instance: PLAT, changes } => {
                    let ok = changes.iter().filter(|c| s.import(c, NOW_MS).is_ok()).count() as u32;
                    Response::Imported { applied: ok, refused: changes.len() as u32 - ok }
                }
                Request::SyncWalk { instance: PLAT, cursor, all } => {
                    let mut v = Vec::new();
                    let next = s.sync_walk(cursor, dataplane::ops::STEP, NOW_MS, all, |c| v.push(*c));
                    Response::SyncWalk(v, next)
                }
                _ => Response::Done(Err("not here".into())),
            })
        }
        fn ports(&self) -> Vec<PortView> {
            Vec::new()
        }
        fn mbufs(&self) -> Option<MbufView> {
            None
        }
        fn now_s(&self) -> u64 {
            NOW_MS / 1000
        }
    }

    struct Node {
        e: Engine<Shards>,
        queues: Vec<Arc<SyncQueue>>,
    }

    impl Node {
        fn table(&self) -> Vec<SessionView> {
            let mut v = Vec::new();
            for s in &self.e.control.plane.0 {
                s.lock().unwrap().sessions(&Default::default(), 0, u32::MAX, |x| v.push(*x));
            }
            v.sort_by_key(|s| (s.v6, s.remote));
            v
        }
        /// Polls until `done` or a few seconds passed.
        fn poll_until(&mut self, other: &mut Node, done: impl Fn(&Node) -> bool) {
            let t0 = Instant::now();
            while !done(self) && t0.elapsed() < Duration::from_secs(5) {
                other.e.poll(Instant::now());
                self.e.poll(Instant::now());
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        fn udp_out(&self, w: usize, client: u16) {
            self.udp_to(w, client, 53);
        }
        fn udp_to(&self, w: usize, client: u16, dport: u16) {
            let t = Tuple6 {
                proto: Proto::Udp,
                src: format!("2001:db8:1::{client:x}").parse().unwrap(),
                sport: 5000,
                dst: "198.51.100.7".parse().unwrap(),
                dport,
            };
            self.e.control.plane.0[w].lock().unwrap().outbound(&t, 0, NOW_MS).unwrap();
        }
    }

    fn free_port() -> u16 {
        UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn key_file(dir: &std::path::Path, byte: u8) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(format!("key{byte}"));
        std::fs::write(&p, [byte; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn node(dir: &std::path::Path, me: u16, peer: u16, workers: u16, refresh_s: u32) -> Node {
        let key = key_file(dir, 7);
        let yaml = format!(
            "{}sync: {{ listen: \"127.0.0.1:{me}\", peers: [\"127.0.0.1:{peer}\"], key_file: {}, flush_ms: 1, refresh_s: {refresh_s} }}\n",
            crate::api::service::tests::YAML,
            key.display()
        );
        let cfg = Config::from_str(&yaml, "t.yaml").unwrap();
        let Instance::Nat64(n) = &cfg.instances[PLAT] else { panic!() };
        let pool = crate::runtime::pool4(n, workers).unwrap();
        let queues: Vec<Arc<SyncQueue>> = (0..workers).map(|_| Arc::new(SyncQueue::new(4))).collect();
        let shards = (0..workers)
            .map(|w| {
                let sc = nat64::Config {
                    sync: Some(queues[w as usize].clone()),
                    ..crate::runtime::shard_config(n, 1, None, dataplane::nat64::Allocation::Dynamic)
                };
                Mutex::new(Shard::new(&sc, pool.slice(w), NOW_MS))
            })
            .collect();
        let control = Arc::new(Control::new(Shards(shards), dir.join("c.yaml"), cfg));
        let qs = vec![Vec::new(), queues.clone()];
        let e = Engine::new(control, qs, Arc::default()).unwrap();
        Node { e, queues }
    }

    fn pair(name: &str, refresh_s: u32) -> (PathBuf, Node, Node) {
        let dir = std::env::temp_dir().join(format!("nat64-sync-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pa, pb) = (free_port(), free_port());
        let a = node(&dir, pa, pb, 1, refresh_s);
        let b = node(&dir, pb, pa, 2, refresh_s);
        (dir, a, b)
    }

    fn counter(n: &Node, f: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&n.e.counters).load(Ordering::Relaxed)
    }

    #[test]
    fn changes_reach_the_peer_and_land_on_the_owning_worker() {
        let (dir, mut a, mut b) = pair("flow", 3600);
        for c in 1..=3 {
            a.udp_out(0, c);
        }
        b.poll_until(&mut a, |b| b.table().len() == 3);
        let (ta, tb) = (a.table(), b.table());
        assert_eq!(tb.len(), 3);
        for (x, y) in ta.iter().zip(&tb) {
            assert_eq!((x.proto, x.v6, x.v4, x.remote), (y.proto, y.v6, y.v4, y.remote));
        }
        // Both workers of B got the mappings they own.
        let per: Vec<u64> = b.e.control.plane.0.iter().map(|s| s.lock().unwrap().live_sessions()).collect();
        assert!(per.iter().all(|&n| n > 0), "{per:?}");
        assert!(b.queues.iter().all(|q| q.is_empty()), "no echo");
        assert_eq!(counter(&b, |c| &c.sessions_received), 3);
        // A lost change (queue of 4 overflowing) is repaired by a walk.
        for c in 10..20 {
            a.udp_out(0, c);
        }
        b.poll_until(&mut a, |b| b.table().len() == 13);
        assert_eq!(b.table().len(), 13);
        assert!(counter(&a, |c| &c.dropped_queue_full) > 0);
        assert_eq!(counter(&a, |c| &c.resync_repair), 1);
        // A deletion travels too.
        a.e.control.plane.0[0].lock().unwrap().flush(&Default::default(), 0, u32::MAX, NOW_MS);
        b.poll_until(&mut a, |b| b.table().len() == 13 - 4);
        // The four deletions that fit the queue; the copies of the other
        // nine expire on B (a walk re-sends live sessions, not ended ones).
        assert_eq!(b.table().len(), 13 - 4);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_resync_request_is_answered_with_every_session() {
        let (dir, mut a, mut b) = pair("resync", 3600);
        let q = a.queues[0].clone();
        for c in 1..=3 {
            a.udp_out(0, c);
        }
        while q.pop().is_some() {}
        b.e.request_resync(None, 0);
        b.poll_until(&mut a, |b| b.e.counters.resync_received.load(Ordering::Relaxed) == 1);
        assert_eq!(b.table().len(), 3);
        assert_eq!(counter(&b, |c| &c.resync_received), 1);
        assert_eq!(counter(&a, |c| &c.resync_served), 1);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_resync_that_lost_datagrams_is_counted_incomplete_and_asked_again() {
        let (dir, mut a, mut b) = pair("lossy", 3600);
        let q = a.queues[0].clone();
        // One mapping, 100 sessions (remote ports).
        for p in 1..=100 {
            a.udp_to(0, 1, p);
        }
        // Only the resync may carry the sessions: no live change, no repair.
        while q.pop().is_some() {}
        q.take_lost();
        // Four datagrams of 33 records; two of them vanish on the way.
        a.e.tx.lose = 2;
        b.e.request_resync(None, 0);
        b.poll_until(&mut a, |b| counter(b, |c| &c.resync_received) == 1);
        assert_eq!(counter(&b, |c| &c.resync_incomplete), 1);
        assert_eq!(counter(&b, |c| &c.resync_requested), 2, "asked once more");
        assert_eq!(counter(&a, |c| &c.resync_served), 2);
        assert_eq!(b.table().len(), 100, "the repeated resync completed the table");
        // A repeated request asks for a slower answer: the walk's gap.
        let h = Header {
            ty: MsgType::ResyncRequest,
            sender: 99,
            epoch: 5,
            seq: 1,
            time_ms: unix_ms(),
            instance: "",
        };
        let d = Builder::default().seal_request(&h, &Key::new(&[7; 32]), 3).to_vec();
        let from = b.e.local_addr().unwrap();
        a.e.handle(&d, from).unwrap();
        assert_eq!(a.e.walks.back().map(|w| (w.end, w.gap)), Some((true, WALK_DATAGRAM_GAP * 8)));
        std::fs::remove_dir_all(dir).ok();
    }

    /// Sends `d` to `b` as if from `a`'s address and polls `b`.
    fn inject(a: &Node, b: &mut Node, d: &[u8]) {
        a.e.tx.sock.send_to(d, b.e.local_addr().unwrap()).unwrap();
        let t0 = Instant::now();
        let before: u64 = b.e.counters.rejected.iter().map(|x| x.load(Ordering::Relaxed)).sum::<u64>()
            + counter(b, |c| &c.batches_received);
        loop {
            b.e.poll(Instant::now());
            let now: u64 = b.e.counters.rejected.iter().map(|x| x.load(Ordering::Relaxed)).sum::<u64>()
                + counter(b, |c| &c.batches_received);
            if now > before || t0.elapsed() > Duration::from_secs(5) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn forged_replayed_stale_and_malformed_datagrams_change_nothing() {
        let (dir, a, mut b) = pair("reject", 3600);
        let key = Key::new(&[7; 32]);
        let m = (std::net::Ipv4Addr::new(203, 0, 113, 0), 2001);
        let good = SyncChange { proto: Proto::Udp, state: None, v4: m, ..change(1) };
        let now = unix_ms();
        let dgram = |key: &Key, h: Header| {
            let mut bld = Builder::default();
            bld.push(&good);
            bld.seal(&h, key).to_vec()
        };
        let h = |seq, epoch, time_ms, instance| Header {
            ty: MsgType::Batch,
            sender: 99,
            epoch,
            seq,
            time_ms,
            instance,
        };
        let forged = dgram(&Key::new(&[8; 32]), h(1, 5, now, "plat"));
        let stale = dgram(&key, h(1, 5, now - 120_000, "plat"));
        let unknown = dgram(&key, h(1, 5, now, "nope"));
        let first = dgram(&key, h(1, 5, now, "plat"));
        let truncated = first[..first.len() - 7].to_vec();
        let count = resealed(&key, |d| d[7] = 9);
        let garbage = vec![0x5a; 300];
        for (d, why) in [
            (&forged, Reject::Forged),
            (&stale, Reject::Stale),
            (&unknown, Reject::UnknownInstance),
            (&truncated, Reject::Forged),
            (&count, Reject::Malformed),
            (&garbage, Reject::Malformed),
        ] {
            let before = b.e.counters.rejected(why);
            inject(&a, &mut b, d);
            assert!(b.table().is_empty(), "{why:?}");
            assert_eq!(b.e.counters.rejected(why), before + 1, "{why:?}");
        }
        // The genuine one lands; its replay and an older epoch do not.
        inject(&a, &mut b, &first);
        assert_eq!(b.table().len(), 1);
        let mut del = Builder::default();
        del.push(&SyncChange { op: SyncOp::Delete, ..good });
        let replay_del = del.seal(&h(1, 5, now, "plat"), &key).to_vec();
        inject(&a, &mut b, &replay_del);
        assert_eq!(b.e.counters.rejected(Reject::Replayed), 1, "sequence 1 again, even with other content");
        inject(&a, &mut b, &first);
        assert_eq!(b.e.counters.rejected(Reject::Replayed), 2);
        let old = {
            let mut x = Builder::default();
            x.push(&SyncChange { op: SyncOp::Delete, ..good });
            x.seal(&h(2, 4, now, "plat"), &key).to_vec()
        };
        inject(&a, &mut b, &old);
        assert_eq!(b.e.counters.rejected(Reject::Stale), 2);
        assert_eq!(b.table().len(), 1, "no refused datagram changed the table");
        std::fs::remove_dir_all(dir).ok();
    }
}
