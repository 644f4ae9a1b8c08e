//! Translation instances as the pipeline runs them: a stateless SIIT
//! (RFC 7915 + RFC 6052 / 7757 / 6791) or a stateful NAT64 (RFC 6146).
//! Each worker owns its instances (and so its translator runtime and, for
//! NAT64, its session shard).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::buf::{BufAlloc, PacketBuf};
use crate::nat64::{self, Outcome, Pool4, Proto, Translator};
use crate::ops::{self, InstanceUpdate, Request, Response};
use crate::pipeline::{Extra, Instance, Translated, EXTRA_MAX};
use crate::wire::{ipv4::Ipv4Packet, ipv6::Ipv6Packet};
use crate::xlate::{self, rfc6052, siit::SiitMapper, Prefix4, Verdict};

/// A stateless SIIT instance.
#[derive(Debug, Clone)]
pub struct Siit {
    /// Translation rules.
    pub cfg: xlate::Config,
    /// Per-worker translator state (IPv4 ids, ICMP error rate limit).
    pub rt: xlate::Runtime,
    /// Extra packets that did not fit the pipeline's preallocated list.
    pub extra_overflow: u64,
}

impl Siit {
    /// An instance for one worker; `seed` varies the IPv4 identification
    /// sequence between workers.
    pub fn new(cfg: xlate::Config, seed: u16) -> Self {
        Siit { cfg, rt: xlate::Runtime::new(seed), extra_overflow: 0 }
    }
}

/// Push an extra packet if the preallocated list has room (no allocation).
#[inline]
fn keep<B>(extra: &mut Extra<B>, overflow: &mut u64, b: B) {
    if extra.len() < EXTRA_MAX {
        extra.push(b);
    } else {
        *overflow += 1;
    }
}

impl<B: PacketBuf> Instance<B> for Siit {
    fn can_reload(&self, u: &InstanceUpdate) -> Result<(), String> {
        match u {
            InstanceUpdate::Siit(_) => Ok(()),
            _ => Err("a SIIT instance cannot become stateful: restart".into()),
        }
    }

    fn reload(&mut self, _now: u64, u: &InstanceUpdate) -> (u64, u64) {
        if let InstanceUpdate::Siit(c) = u {
            // Stateless: the new rules apply to the next packet.
            self.cfg = c.clone();
        }
        (0, 0)
    }

    #[inline]
    fn claims_v6(&self, dst: Ipv6Addr) -> bool {
        // A yes/no question: the cheap prefix test first (which of the two
        // maps the address, EAMT first, is the mapper's business).
        self.cfg.pool6.as_ref().is_some_and(|p| p.contains(dst)) || self.cfg.eamt.covers6(dst)
    }

    #[inline]
    fn claims_v4(&self, dst: Ipv4Addr) -> bool {
        // With a pool6 every IPv4 address maps to an IPv6 one; without it
        // only the EAMT's do (RFC 7757 §3).
        self.cfg.pool6.is_some() || self.cfg.eamt.covers4(dst)
    }

    fn answers_arp(&self, a: Ipv4Addr) -> bool {
        // EAMT IPv4 addresses stand for IPv6 hosts behind the appliance.
        self.cfg.eamt.covers4(a)
    }

    #[inline(always)]
    fn express_v4(&mut self, now: u64, ip: &mut [u8]) -> Option<(Ipv4Addr, usize)> {
        self.rt.now_ms = now;
        xlate::express_6to4(&self.cfg, &mut self.rt, &mut SiitMapper::new(&self.cfg), ip)
    }

    #[inline(always)]
    fn express_v6(&mut self, _now: u64, pkt: &mut [u8]) -> Option<(Ipv6Addr, usize)> {
        // Stateless, and no ICMP to rate-limit: no clock needed.
        xlate::express_4to6(&self.cfg, &mut SiitMapper::new(&self.cfg), pkt)
    }

    fn to_v4<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        self.rt.now_ms = now;
        let mut mapper = SiitMapper::new(&self.cfg);
        let ov = &mut self.extra_overflow;
        let v = xlate::translate_6to4(&self.cfg, &mut self.rt, &mut mapper, &mut pkt, alloc, &mut |b| {
            keep(extra, ov, b)
        });
        Translated::Done(v, pkt)
    }

    fn to_v6<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        self.rt.now_ms = now;
        let mut mapper = SiitMapper::new(&self.cfg);
        let ov = &mut self.extra_overflow;
        let v = xlate::translate_4to6(&self.cfg, &mut self.rt, &mut mapper, &mut pkt, alloc, &mut |b| {
            keep(extra, ov, b)
        });
        Translated::Done(v, pkt)
    }
}

/// Expiry sweep work per housekeeping round (bounds the pause): at most
/// 256 sessions ended or 4096 records visited. At one round per 100 us
/// that keeps the 1 s sweep's pace up to 40 M sessions per worker; a
/// backlog carries over to the next rounds.
const EXPIRE_BUDGET: usize = 256;

/// A stateful NAT64 instance on one worker: pool6, the whole pool4 (to
/// name the owner of an IPv4 packet) and this worker's shard.
pub struct Nat64<B> {
    /// Header rules and pool6.
    pub cfg: xlate::Config,
    /// Per-worker translator state.
    pub rt: xlate::Runtime,
    /// The RFC 6146 state of this worker.
    pub tr: Translator,
    /// The pool, split between workers (replace it with
    /// [`Nat64::set_pool4`], which keeps `pool4_addrs` in step).
    pub pool4: Arc<Pool4>,
    /// `pool4`'s addresses as (first, count) ranges, each once: the test
    /// every IPv4 packet makes is one compare for a pool of one prefix.
    pool4_addrs: Vec<(u32, u32)>,
    /// The IPv4 destinations this instance serves (split pools), if not all.
    pub destinations: Option<Prefix4>,
    /// Extra packets that did not fit the pipeline's preallocated list.
    pub extra_overflow: u64,
    /// Held SYNs whose slot timed out without the shard naming them.
    pub held_lost: u64,
    /// This worker's number in `pool4`'s split.
    worker: u16,
    syn_hold_ms: u64,
    /// Held IPv4 SYNs by token, with their deadline (RFC 6146 §3.5.2.2).
    held: Vec<Option<(B, u64)>>,
    free: Vec<u32>,
}

impl<B> core::fmt::Debug for Nat64<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Nat64")
            .field("pool6", &self.cfg.pool6)
            .field("destinations", &self.destinations)
            .finish()
    }
}

impl<B: PacketBuf> Nat64<B> {
    /// An instance for one worker over its `shard`, holding up to
    /// `max_held_syn` unsolicited SYNs for `syn_hold_s` seconds.
    pub fn new(
        cfg: xlate::Config,
        shard: nat64::Shard,
        pool4: Arc<Pool4>,
        destinations: Option<Prefix4>,
        max_held_syn: u32,
        syn_hold_s: u32,
        seed: u16,
    ) -> Self {
        // The worker number is the one whose slice the shard was built on
        // (slices are disjoint and never empty).
        let worker = (0..pool4.workers()).find(|&w| pool4.slice(w) == *shard.slice()).unwrap_or(0);
        Nat64 {
            worker,
            pool4_addrs: addr_ranges(&pool4),
            cfg,
            rt: xlate::Runtime::new(seed),
            tr: Translator::new(shard),
            pool4,
            destinations,
            extra_overflow: 0,
            held_lost: 0,
            syn_hold_ms: u64::from(syn_hold_s) * 1000,
            held: (0..max_held_syn).map(|_| None).collect(),
            free: (0..max_held_syn).rev().collect(),
        }
    }

    /// Use `pool4` from now on.
    pub fn set_pool4(&mut self, pool4: Arc<Pool4>) {
        self.pool4_addrs = addr_ranges(&pool4);
        self.pool4 = pool4;
    }

    /// Whether `a` is a pool4 address of any protocol: what
    /// [`Pool4::contains_addr`] says, without walking its blocks.
    #[inline]
    fn pool4_has(&self, a: Ipv4Addr) -> bool {
        let a = a.to_bits();
        self.pool4_addrs.iter().any(|&(first, n)| a.wrapping_sub(first) < n)
    }

    /// RFC 6146 §3.5.1.1 / §3.5.2.1: when no mapping can be made (table,
    /// quota or pool exhausted, the client's port blocks at their limit or
    /// none free, a source outside the deterministic range), answer ICMPv6
    /// Destination Unreachable, code 3 (address unreachable); other
    /// refusals drop silently.
    fn answer_refusal(&mut self, v: Verdict, pkt: &mut B) -> Verdict {
        use nat64::DropReason as R;
        let exhausted = matches!(
            self.tr.last_refusal,
            Some(
                R::SessionTableFull
                    | R::ClientQuota
                    | R::ClientTableFull
                    | R::PoolExhausted
                    | R::BlockLimit
                    | R::NoFreeBlock
                    | R::ClientUnmapped
            )
        );
        match v {
            Verdict::Drop(reason) if exhausted => {
                xlate::originate_icmp6_error(&self.cfg, &mut self.rt, pkt, 1, 3, 0, reason)
            }
            v => v,
        }
    }

    fn answer_expired_syn(&mut self, token: u64, out: &mut Extra<B>) {
        let Some((mut pkt, _)) = self.held.get_mut(token as usize).and_then(Option::take) else { return };
        self.free.push(token as u32);
        // RFC 6146 §3.5.2.2: the IPv6 side never opened the connection:
        // ICMP port unreachable to the sender. A SYN that came from the
        // IPv6 side through a hairpin (§3.8) is held as the original IPv6
        // packet and answered with ICMPv6 port unreachable from us.
        let r = xlate::DropReason::NoSession;
        let v = if pkt.data().first().is_some_and(|b| b >> 4 == 6) {
            xlate::originate_icmp6_error(&self.cfg, &mut self.rt, &mut pkt, 1, 4, 0, r)
        } else {
            xlate::originate_icmp4_error(&self.cfg, &mut self.rt, &mut pkt, 3, 3, 0, r)
        };
        if matches!(v, Verdict::Reply(_)) && out.len() < EXTRA_MAX {
            out.push(pkt);
        }
    }
}

/// The addresses of `pool4`'s blocks as (first, count) ranges, each once
/// (the protocols mostly share their prefixes). A block is a prefix, so
/// its count is a power of two; a /0 block would count 2^32 and is refused
/// by [`Pool4::new`].
fn addr_ranges(pool4: &Pool4) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = Vec::new();
    for s in pool4.splits() {
        let n = 1u32.checked_shl(32 - u32::from(s.prefix_len)).unwrap_or(0);
        let r = (s.base.to_bits(), n);
        if !v.contains(&r) {
            v.push(r);
        }
    }
    v
}

/// A copy of `pkt` in a new buffer from `alloc`, or `None` when the pool
/// is empty.
fn copy_of<B: PacketBuf, A: BufAlloc<Buf = B>>(pkt: &B, alloc: &mut A) -> Option<B> {
    let mut c = alloc.alloc()?;
    let n = pkt.len();
    if !c.append(n) {
        return None;
    }
    c.data_mut().get_mut(..n)?.copy_from_slice(pkt.data());
    Some(c)
}

/// (protocol, port or identifier) naming the pool4 mapping an IPv4 packet
/// is about: its destination for ordinary packets, the quoted packet's
/// source for ICMP errors. `None` for what carries no such number
/// (non-first fragments, unknown protocols).
fn mapping_of_v4(ip: &[u8]) -> Option<(Proto, Ipv4Addr, u16)> {
    let hl = usize::from(*ip.first()? & 0x0f) * 4;
    let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
    if frag & 0x1fff != 0 {
        return None;
    }
    let dst = Ipv4Addr::new(*ip.get(16)?, *ip.get(17)?, *ip.get(18)?, *ip.get(19)?);
    let l4 = ip.get(hl..)?;
    let port = |at: usize| Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]));
    match *ip.get(9)? {
        6 => Some((Proto::Tcp, dst, port(2)?)),
        17 => Some((Proto::Udp, dst, port(2)?)),
        1 => match *l4.first()? {
            // Echo reply and request: the identifier is the mapping's.
            0 | 8 => Some((Proto::Icmp, dst, port(4)?)),
            // Errors quote a packet that left from the mapping.
            3 | 11 | 12 => {
                let q = l4.get(8..)?;
                let qhl = usize::from(*q.first()? & 0x0f) * 4;
                let ql4 = q.get(qhl..)?;
                let qport = |at: usize| Some(u16::from_be_bytes([*ql4.get(at)?, *ql4.get(at + 1)?]));
                match *q.get(9)? {
                    6 => Some((Proto::Tcp, dst, qport(0)?)),
                    17 => Some((Proto::Udp, dst, qport(0)?)),
                    1 => Some((Proto::Icmp, dst, qport(4)?)),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

impl<B: PacketBuf> Instance<B> for Nat64<B> {
    #[inline]
    fn claims_v6(&self, dst: Ipv6Addr) -> bool {
        let Some(p) = &self.cfg.pool6 else { return false };
        match self.destinations {
            None => p.contains(dst),
            Some(d) => rfc6052::extract(p, dst).is_some_and(|v4| d.contains(v4)),
        }
    }

    #[inline]
    fn claims_v4(&self, dst: Ipv4Addr) -> bool {
        self.pool4_has(dst)
    }

    fn answers_arp(&self, a: Ipv4Addr) -> bool {
        self.pool4_has(a)
    }

    fn owner_v4(&self, ip: &[u8]) -> Option<u16> {
        if self.pool4.workers() < 2 {
            return None;
        }
        let (proto, addr, port) = mapping_of_v4(ip)?;
        self.pool4.owner(proto, addr, port)
    }

    fn binds_v4(&self, ip: &[u8]) -> bool {
        mapping_of_v4(ip).is_some_and(|(proto, addr, port)| self.tr.shard.bib4(proto, addr, port).is_some())
    }

    fn lookahead(&self) -> bool {
        self.tr.shard.prefetches()
    }

    #[inline(always)]
    fn prefetch(&self, v6: bool, ip: &[u8], pos: usize, stage: u8) -> bool {
        if !self.tr.shard.prefetches() {
            return false;
        }
        // Stage 0 decides and notes; the later ones follow the note.
        if v6 {
            let claimed =
                stage > 0 || Ipv6Packet::new_checked(ip).is_ok_and(|p| self.claims_v6(p.dst_addr()));
            self.tr.prefetch_6to4(&self.cfg, claimed.then_some(ip), pos, stage)
        } else {
            let claimed =
                stage > 0 || Ipv4Packet::new_checked(ip).is_ok_and(|p| self.claims_v4(p.dst_addr()));
            self.tr.prefetch_4to6(claimed.then_some(ip), pos, stage)
        }
    }

    #[inline(always)]
    fn prefetch_staggered(&self, pos: usize, stage: u8) -> bool {
        // The IPv4 chain's later stages follow the note (and check the
        // gate themselves).
        self.tr.prefetch_4to6(None, pos, stage)
    }

    #[inline(always)]
    fn express_v4(&mut self, now: u64, ip: &mut [u8]) -> Option<(Ipv4Addr, usize)> {
        // Serving some destinations only, claiming is more than mapping:
        // ask (the pipeline does not when this is its only instance).
        if self.destinations.is_some() {
            let dst = Ipv6Addr::from(*ip.get(24..)?.first_chunk::<16>()?);
            if !self.claims_v6(dst) {
                return None;
            }
        }
        self.rt.now_ms = now;
        self.tr.express_6to4(&self.cfg, &mut self.rt, ip, now)
    }

    #[inline(always)]
    fn express_v6(&mut self, now: u64, pkt: &mut [u8]) -> Option<(Ipv6Addr, usize)> {
        self.tr.express_4to6(&self.cfg, pkt, now)
    }

    fn to_v4<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        self.rt.now_ms = now;
        // A SYN to an owned pool4 address may be held after its hairpin
        // (RFC 6146 §3.8 + §3.5.2.2); what is answered 6 s later is the
        // original IPv6 packet, so keep a copy (rare: hairpinned SYNs only).
        let orig = match self.free.last() {
            Some(_) if self.tr.hairpin_syn(&self.cfg, pkt.data()) => copy_of(&pkt, alloc),
            _ => None,
        };
        let token = orig.as_ref().and(self.free.last().copied().map(u64::from));
        let ov = &mut self.extra_overflow;
        let out = self.tr.translate_6to4_token(
            &self.cfg,
            &mut self.rt,
            &mut pkt,
            alloc,
            &mut |b| keep(extra, ov, b),
            now,
            token,
        );
        let v = match (out, orig, token) {
            (Outcome::Xlate(v), _, _) => v,
            (Outcome::Held, Some(orig), Some(t)) => {
                self.free.pop();
                self.held[t as usize] = Some((orig, now + self.syn_hold_ms));
                return Translated::Held;
            }
            // Not reached: the translator holds only with a token.
            (Outcome::Held, _, _) => Verdict::Drop(xlate::DropReason::NoSession),
        };
        let v = self.answer_refusal(v, &mut pkt);
        Translated::Done(v, pkt)
    }

    fn to_v6<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        self.rt.now_ms = now;
        let token = self.free.last().copied().map_or(u64::MAX, u64::from);
        let ov = &mut self.extra_overflow;
        let out = self.tr.translate_4to6(
            &self.cfg,
            &mut self.rt,
            &mut pkt,
            alloc,
            &mut |b| keep(extra, ov, b),
            now,
            token,
        );
        match out {
            Outcome::Xlate(Verdict::Drop(reason))
                if matches!(
                    self.tr.last_refusal,
                    Some(nat64::DropReason::NoBinding | nat64::DropReason::NotOwned)
                ) && pkt.data().get(9) == Some(&17) =>
            {
                // A UDP datagram to a pool4 transport address nobody holds:
                // nothing listens there, so answer port unreachable as a UDP
                // host would (RFC 1122 §4.1.3.1), rate-limited.
                let v = xlate::originate_icmp4_error(&self.cfg, &mut self.rt, &mut pkt, 3, 3, 0, reason);
                Translated::Done(v, pkt)
            }
            Outcome::Xlate(v) => Translated::Done(v, pkt),
            Outcome::Held if token != u64::MAX => {
                self.free.pop();
                self.held[token as usize] = Some((pkt, now + self.syn_hold_ms));
                Translated::Held
            }
            // No slot: the shard has the same capacity, so this cannot
            // happen; drop rather than keep a packet we cannot name.
            Outcome::Held => Translated::Done(Verdict::Drop(xlate::DropReason::NoSession), pkt),
        }
    }

    fn tick<A: BufAlloc<Buf = B>>(&mut self, now: u64, _alloc: &mut A, out: &mut Extra<B>) {
        self.rt.now_ms = now;
        self.tr.shard.expire(now, EXPIRE_BUDGET);
        while let Some(token) = self.tr.shard.take_expired_syn(now) {
            self.answer_expired_syn(token, out);
        }
        // A held SYN the IPv6 side answered (simultaneous open) is released
        // by the shard without naming it: its slot lapses here, silently,
        // as RFC 6146 §3.5.2.2 drops the stored packet.
        if self.free.len() < self.held.len() {
            let grace = now.saturating_sub(self.syn_hold_ms + 1000);
            for (i, h) in self.held.iter_mut().enumerate() {
                if h.as_ref().is_some_and(|(_, deadline)| *deadline < grace) {
                    *h = None;
                    self.free.push(i as u32);
                    self.held_lost += 1;
                }
            }
        }
    }

    fn can_reload(&self, u: &InstanceUpdate) -> Result<(), String> {
        match u {
            InstanceUpdate::Nat64 { shard: None, .. } => Ok(()),
            InstanceUpdate::Nat64 { shard: Some(u), .. } => {
                if u.pool4.workers() != self.pool4.workers() {
                    return Err("pool4 split over another number of workers: restart".into());
                }
                if u.config.max_held_syn as usize != self.held.len() {
                    return Err("max_held_syn changed: restart".into());
                }
                let slice = u.pool4.slice(self.worker);
                self.tr.shard.check_reconfigure(&u.config, &slice, &u.static_bib)
            }
            _ => Err("a NAT64 instance cannot become stateless: restart".into()),
        }
    }

    fn reload(&mut self, now: u64, u: &InstanceUpdate) -> (u64, u64) {
        let InstanceUpdate::Nat64 { xlate, destinations, shard } = u else { return (0, 0) };
        // Sessions keep their IPv4 mappings; a new pool6 applies to the
        // next packet's embedded addresses.
        self.cfg = xlate.clone();
        self.destinations = *destinations;
        let Some(st) = shard else { return (0, 0) };
        let slice = st.pool4.slice(self.worker);
        match self.tr.shard.reconfigure(&st.config, slice, &st.static_bib, now) {
            Ok(r) => {
                self.set_pool4(st.pool4.clone());
                // Held SYNs keep their deadline; new ones get the new hold.
                self.syn_hold_ms = u64::from(st.config.timeouts.tcp_incoming_syn) * 1000;
                (r.ended_sessions, r.ended_bib)
            }
            // can_reload ran the same check first; nothing changed.
            Err(_) => (0, 0),
        }
    }

    fn handle(&mut self, index: usize, now: u64, req: &Request) -> Response {
        let shard = &mut self.tr.shard;
        match req {
            Request::Sessions { filter, cursor, .. } => {
                let mut v = Vec::new();
                let next = shard.sessions(filter, *cursor, ops::STEP, |s| v.push(*s));
                Response::Sessions(v, next)
            }
            Request::Bib { filter, cursor, .. } => {
                let mut v = Vec::new();
                let next = shard.bib_entries(filter, *cursor, ops::STEP, |b| v.push(*b));
                Response::Bib(v, next)
            }
            Request::Flush { filter, cursor, .. } => {
                Response::Flushed(shard.flush(filter, *cursor, ops::STEP, now))
            }
            Request::BibAdd { proto, v6, v4, .. } => {
                Response::Done(shard.add_static(*proto, *v6, *v4, now).map_err(|e| format!("{e:?}")))
            }
            Request::BibDel { proto, v4, .. } => Response::Done(if shard.remove_static(*proto, *v4, now) {
                Ok(())
            } else {
                Err(format!("no static {} BIB entry at {}#{}", proto.name(), v4.0, v4.1))
            }),
            Request::Nat64Stats => {
                // Bounded by the owned pool4 addresses, not by the tables.
                let mut pool4_use = Vec::new();
                shard.pool4_use(|u| pool4_use.push(*u));
                Response::Nat64Stats(vec![ops::Nat64Stats {
                    instance: index,
                    sessions: shard.live_sessions(),
                    capacity: shard.capacity(),
                    held_syns: shard.held_syns(),
                    memory_bytes: shard.memory_bytes(),
                    counters: shard.counters,
                    pool4_use,
                }])
            }
            Request::SyncImport { changes, .. } => {
                let (mut applied, mut refused) = (0, 0);
                for c in changes.iter() {
                    match shard.import(c, now) {
                        Ok(_) => applied += 1,
                        Err(_) => refused += 1,
                    }
                }
                Response::Imported { applied, refused }
            }
            Request::SyncWalk { cursor, all, .. } => {
                let mut v = Vec::new();
                let next = shard.sync_walk(*cursor, ops::STEP, now, *all, |c| v.push(*c));
                Response::SyncWalk(v, next)
            }
            Request::Blocks { v6, v4, .. } => {
                let mut out = Vec::new();
                for proto in Proto::ALL {
                    if let Some(a) = v6 {
                        shard.blocks_of(proto, *a, |client, addr, lo, hi| {
                            out.push(ops::BlockView { proto, client, addr, ports: (lo, hi) })
                        });
                    }
                    if let Some((a, p)) = v4 {
                        if let Some((client, lo, hi)) = shard.block_holder(proto, *a, *p) {
                            out.push(ops::BlockView { proto, client, addr: *a, ports: (lo, hi) });
                        }
                    }
                }
                Response::Blocks(out)
            }
            Request::Reload(_) => Response::Done(Err("reload goes to the pipeline".into())),
        }
    }
}

/// Any instance kind, so a worker can hold a list of them.
#[derive(Debug)]
pub enum AnyInstance<B> {
    /// Stateless SIIT (boxed like NAT64: instances are picked once per
    /// packet, the indirection costs nothing next to the translation).
    Siit(Box<Siit>),
    /// Stateful NAT64.
    Nat64(Box<Nat64<B>>),
}

impl<B: PacketBuf> Instance<B> for AnyInstance<B> {
    // Always: with the express path's call site beside the general
    // path's, it was no longer inlined into either.
    #[inline(always)]
    fn claims_v6(&self, dst: Ipv6Addr) -> bool {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::claims_v6(s, dst),
            AnyInstance::Nat64(n) => n.claims_v6(dst),
        }
    }
    #[inline]
    fn claims_v4(&self, dst: Ipv4Addr) -> bool {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::claims_v4(s, dst),
            AnyInstance::Nat64(n) => n.claims_v4(dst),
        }
    }
    fn answers_arp(&self, a: Ipv4Addr) -> bool {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::answers_arp(s, a),
            AnyInstance::Nat64(n) => n.answers_arp(a),
        }
    }
    fn owner_v4(&self, ip: &[u8]) -> Option<u16> {
        match self {
            AnyInstance::Siit(_) => None,
            AnyInstance::Nat64(n) => n.owner_v4(ip),
        }
    }
    fn binds_v4(&self, ip: &[u8]) -> bool {
        match self {
            AnyInstance::Siit(_) => false,
            AnyInstance::Nat64(n) => n.binds_v4(ip),
        }
    }
    fn lookahead(&self) -> bool {
        match self {
            AnyInstance::Siit(_) => false,
            AnyInstance::Nat64(n) => n.lookahead(),
        }
    }
    #[inline(always)]
    fn prefetch(&self, v6: bool, ip: &[u8], pos: usize, stage: u8) -> bool {
        match self {
            AnyInstance::Siit(_) => false,
            AnyInstance::Nat64(n) => n.prefetch(v6, ip, pos, stage),
        }
    }
    #[inline(always)]
    fn prefetch_staggered(&self, pos: usize, stage: u8) -> bool {
        match self {
            AnyInstance::Siit(_) => false,
            AnyInstance::Nat64(n) => n.prefetch_staggered(pos, stage),
        }
    }
    #[inline(always)]
    fn express_v4(&mut self, now: u64, ip: &mut [u8]) -> Option<(Ipv4Addr, usize)> {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::express_v4(s, now, ip),
            AnyInstance::Nat64(n) => n.express_v4(now, ip),
        }
    }

    #[inline(always)]
    fn express_v6(&mut self, now: u64, pkt: &mut [u8]) -> Option<(Ipv6Addr, usize)> {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::express_v6(s, now, pkt),
            AnyInstance::Nat64(n) => n.express_v6(now, pkt),
        }
    }

    fn to_v4<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        match self {
            AnyInstance::Siit(s) => s.to_v4(now, pkt, alloc, extra),
            AnyInstance::Nat64(n) => n.to_v4(now, pkt, alloc, extra),
        }
    }
    fn to_v6<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        match self {
            AnyInstance::Siit(s) => s.to_v6(now, pkt, alloc, extra),
            AnyInstance::Nat64(n) => n.to_v6(now, pkt, alloc, extra),
        }
    }
    fn tick<A: BufAlloc<Buf = B>>(&mut self, now: u64, alloc: &mut A, out: &mut Extra<B>) {
        if let AnyInstance::Nat64(n) = self {
            n.tick(now, alloc, out)
        }
    }
    fn handle(&mut self, index: usize, now: u64, req: &Request) -> Response {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::handle(s, index, now, req),
            AnyInstance::Nat64(n) => n.handle(index, now, req),
        }
    }
    fn can_reload(&self, u: &InstanceUpdate) -> Result<(), String> {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::can_reload(s, u),
            AnyInstance::Nat64(n) => n.can_reload(u),
        }
    }
    fn reload(&mut self, now: u64, u: &InstanceUpdate) -> (u64, u64) {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::reload(s, now, u),
            AnyInstance::Nat64(n) => n.reload(now, u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{VecAlloc, VecBuf};
    use crate::nat64::{Pool4Entry, Shard};
    use crate::ops::Nat64StateUpdate;
    use crate::xlate::Prefix6;

    const POOL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn pool(lo: u16, hi: u16, workers: u16) -> Arc<Pool4> {
        let e: Vec<_> = Proto::ALL
            .iter()
            .map(|&p| Pool4Entry { proto: p, prefix: POOL, prefix_len: 32, port_min: lo, port_max: hi })
            .collect();
        Arc::new(Pool4::new(&e, workers).unwrap())
    }

    fn xcfg() -> xlate::Config {
        xlate::Config {
            pool6: Some("64:ff9b::/96".parse::<Prefix6>().unwrap()),
            own_v6: "2001:db8::1".parse().unwrap(),
            wkp_allow_non_global: true,
            ..xlate::Config::default()
        }
    }

    fn nat(p: &Arc<Pool4>, worker: u16) -> Nat64<VecBuf> {
        let sc = nat64::Config::default();
        let shard = Shard::new(&sc, p.slice(worker), 0);
        Nat64::new(xcfg(), shard, p.clone(), None, sc.max_held_syn, 6, 1)
    }

    /// The precomputed pool4 ranges answer as the pool does, for a pool of
    /// one prefix shared by the protocols and for one of several prefixes
    /// (each protocol its own, one /32), also after the pool is replaced.
    #[test]
    fn pool4_ranges_agree_with_the_pool() {
        let one = pool(1024, 65535, 1);
        let entry = |proto, a: [u8; 4], len| Pool4Entry {
            proto,
            prefix: a.into(),
            prefix_len: len,
            port_min: 1024,
            port_max: 65535,
        };
        let several = Arc::new(
            Pool4::new(
                &[
                    entry(Proto::Tcp, [198, 51, 100, 0], 24),
                    entry(Proto::Udp, [203, 0, 113, 128], 25),
                    entry(Proto::Icmp, [192, 0, 2, 7], 32),
                    entry(Proto::Tcp, [192, 0, 2, 7], 32),
                ],
                1,
            )
            .unwrap(),
        );
        let mut n = nat(&one, 0);
        assert_eq!(n.pool4_addrs.len(), 1, "the protocols' shared prefix counts once");
        for p in [one, several] {
            n.set_pool4(p.clone());
            for hi in [[192, 0, 2], [198, 51, 100], [203, 0, 113], [198, 51, 101], [10, 0, 0]] {
                for lo in 0..=255u8 {
                    let a = Ipv4Addr::new(hi[0], hi[1], hi[2], lo);
                    let claims = <Nat64<VecBuf> as Instance<VecBuf>>::claims_v4(&n, a);
                    assert_eq!(claims, p.contains_addr(a), "{a}");
                }
            }
        }
    }

    fn update(p: &Arc<Pool4>, config: nat64::Config) -> InstanceUpdate {
        InstanceUpdate::Nat64 {
            xlate: xcfg(),
            destinations: None,
            shard: Some(Nat64StateUpdate { config, pool4: p.clone(), static_bib: vec![] }),
        }
    }

    fn udp6(sport: u16, dst4: Ipv4Addr, dport: u16) -> Vec<u8> {
        let mut v = vec![];
        let dst = rfc6052::embed(&xcfg().pool6.unwrap(), dst4).unwrap();
        etherparse::PacketBuilder::ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
            dst.octets(),
            64,
        )
        .udp(sport, dport)
        .write(&mut v, b"x")
        .unwrap();
        v
    }

    #[test]
    fn reload_of_the_state_finds_its_worker_and_ends_what_leaves() {
        let p = pool(1024, 65535, 2);
        let mut n = nat(&p, 1);
        assert_eq!(n.worker, 1);
        let (mut a, mut extra) = (VecAlloc::default(), Vec::new());
        for sport in 0..50 {
            let pkt = VecBuf::from_slice(&udp6(3000 + sport, Ipv4Addr::new(198, 51, 100, 1), 53));
            assert!(matches!(n.to_v4(0, pkt, &mut a, &mut extra), Translated::Done(Verdict::Forward, _)));
        }
        // Same pool, new timeouts: accepted, nothing ends.
        let cfg = nat64::Config {
            timeouts: nat64::Timeouts { udp: 100, ..Default::default() },
            ..Default::default()
        };
        assert_eq!(n.can_reload(&update(&p, cfg.clone())), Ok(()));
        assert_eq!(n.reload(1000, &update(&p, cfg.clone())), (0, 0));
        // Worker 1 of a pool whose second half shrank: what left ends.
        let small = pool(1024, 40000, 2);
        let keep = {
            let mut k = 0;
            n.tr.shard.bib_entries(&Default::default(), 0, u32::MAX, |b| {
                k += u64::from(small.owner(b.proto, b.v4.0, b.v4.1) == Some(1))
            });
            k
        };
        assert_eq!(n.can_reload(&update(&small, cfg.clone())), Ok(()));
        assert_eq!(n.reload(2000, &update(&small, cfg.clone())), (50 - keep, 50 - keep));
        assert_eq!(n.tr.shard.live_sessions(), keep);
        assert!(Arc::ptr_eq(&n.pool4, &small));
        // Steps that cannot be done live are refused before anything changes.
        assert!(n.can_reload(&update(&pool(1024, 40000, 3), cfg.clone())).is_err());
        let held = nat64::Config { max_held_syn: 7, ..cfg.clone() };
        assert!(n.can_reload(&update(&small, held)).is_err());
        let sized = nat64::Config { max_sessions: 5, ..cfg };
        assert!(n.can_reload(&update(&small, sized)).is_err());
    }

    #[test]
    fn pipeline_lookahead_reaches_the_stateful_instance_past_the_gate() {
        use crate::pipeline::{neigh::NeighConfig, Iface, Pipeline};
        let p = pool(1024, 65535, 1);
        let mut n = nat(&p, 0);
        let (mut a, mut extra) = (VecAlloc::default(), Vec::new());
        let ip = udp6(3000, Ipv4Addr::new(198, 51, 100, 1), 53);
        let Translated::Done(_, out) = n.to_v4(0, VecBuf::from_slice(&ip), &mut a, &mut extra) else {
            panic!("not translated")
        };
        // The remote's answer to the pool4 address and port it was given.
        let (pool4, port4) = (&out.data()[12..16], u16::from_be_bytes([out.data()[20], out.data()[21]]));
        let mut back = vec![];
        etherparse::PacketBuilder::ipv4([198, 51, 100, 1], pool4.try_into().unwrap(), 64)
            .udp(53, port4)
            .write(&mut back, b"y")
            .unwrap();
        let mac = [2, 0, 0, 0, 0, 1];
        let framed = |et: [u8; 2], vlan: bool, ip: &[u8]| {
            let mut f = [mac, [2, 0, 0, 0, 0, 2]].concat();
            if vlan {
                f.extend_from_slice(&[0x81, 0x00, 0, 7]);
            }
            f.extend_from_slice(&et);
            f.extend_from_slice(ip);
            f
        };
        let frame = |et: [u8; 2], vlan: bool| framed(et, vlan, &ip);
        let ifs = vec![Iface::new(0, None, mac, vec![], vec![])];
        let mut pl: Pipeline<VecBuf, Nat64<VecBuf>> = Pipeline::new(ifs, vec![n], NeighConfig::default());
        // One session: in cache, no look-ahead, so a worker skips the pass.
        assert!(!pl.lookahead_active());
        assert!(!pl.prefetch(0, &frame([0x86, 0xdd], false), 0));
        pl.instances[0].tr.shard.lookahead_from = 0;
        assert!(pl.lookahead_active());
        let stages = |f: &[u8]| (0..10).take_while(|&k| pl.prefetch(0, f, k)).count();
        // IPv6 to pool6, with or without a VLAN tag: buckets, then records.
        assert_eq!(stages(&frame([0x86, 0xdd], false)), 1);
        assert_eq!(stages(&frame([0x86, 0xdd], true)), 1);
        // Wrong EtherType or a runt: nothing.
        assert_eq!(stages(&frame([0x08, 0x06], false)), 0);
        assert_eq!(stages(&frame([0x86, 0xdd], false)[..20]), 0);
        // The IPv4 answer: pool4 slot, BIB record, then the staggered
        // stages (session bucket and record) from the note alone, as the
        // worker asks for them, with no frame.
        let b4 = framed([0x08, 0x00], false, &back);
        assert!(pl.prefetch(5, &b4, 0) && pl.prefetch(5, &b4, 1));
        assert!(pl.prefetch(5, &[], 2));
        assert!(!pl.prefetch(5, &[], 3));
        // The chain has ended: nothing is left noted for that position.
        assert!(!pl.prefetch(5, &[], 2));
        assert!(!pl.prefetch(6, &[], 2), "nothing noted at position 6");
    }

    #[test]
    fn hairpinned_syn_is_answered_with_icmpv6_port_unreachable() {
        let p = pool(1, 3000, 1);
        let mut n = nat(&p, 0);
        let dst = rfc6052::embed(&xcfg().pool6.unwrap(), POOL).unwrap();
        let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
        let mut syn = vec![];
        etherparse::PacketBuilder::ipv6(src, dst.octets(), 64)
            .tcp(50001, 1501, 7, 1000)
            .syn()
            .write(&mut syn, &[1, 2, 3, 4])
            .unwrap();
        let (mut a, mut extra) = (VecAlloc::default(), Vec::new());
        let r = n.to_v4(1000, VecBuf::from_slice(&syn), &mut a, &mut extra);
        assert!(matches!(r, Translated::Held));
        n.tick(6999, &mut a, &mut extra);
        assert!(extra.is_empty(), "held for 6 s");
        n.tick(7000, &mut a, &mut extra);
        let e = extra.pop().expect("answer");
        let d = e.data();
        // RFC 6146 §3.5.2.2: ICMPv6 port unreachable (1/4) from us to the
        // sender, quoting the original IPv6 SYN.
        assert_eq!((d[0] >> 4, d[6], d[40], d[41]), (6, 58, 1, 4));
        assert_eq!(&d[8..24], &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&d[24..40], &src);
        assert_eq!(&d[48..48 + syn.len()], &syn[..]);
        assert_eq!(n.free.len(), n.held.len(), "slot returned");
    }
}
