//! Stateful translation: the [`xlate::Mapper`](crate::xlate::Mapper) of RFC
//! 6146 on top of one [`Shard`], so one call translates one packet with
//! state.
//!
//! The header rules are xlate's; this file only decides addresses and
//! ports. Two things the mapper interface does not carry are read from the
//! packet first by a small bounds-checked pre-scan: the TCP flags (for the
//! state machine) and, for an ICMP error, the quoted packet's session (the
//! error's outer addresses follow from it, RFC 6146 §3.5.4 / §3.4, and
//! xlate maps the outer header before the inner one).

use super::frag::{FragKey, FragVerdict, HELD_PER_DATAGRAM};
use super::shard::{Ahead4, Ahead6, Inbound, Shard, Tuple4 as S4, Tuple6 as S6, BURST};
use super::{DropReason, Proto};
use crate::buf::{BufAlloc, PacketBuf};
use crate::xlate::{self, rfc6052, L4Ids, MapCtx, Mapper, Prefix6, Runtime, Tuple4, Tuple6, Verdict};
use std::cell::Cell;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Outcome of one stateful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// What xlate decided (forward, hairpin, reply, drop).
    Xlate(Verdict),
    /// An unsolicited IPv4 SYN is held under the caller's token (RFC 6146
    /// §3.5.2.2): keep the buffer until the shard releases or expires it.
    Held,
}

/// A stateful NAT64 translator for one worker: pool6 + its shard.
pub struct Translator {
    /// The worker's state.
    pub shard: Shard,
    /// The state engine's reason for the last refusal (xlate's reasons are
    /// coarser): `None` when the last packet was not refused by the state.
    pub last_refusal: Option<DropReason>,
    pool6: Option<Prefix6>,
    allow_non_global: bool,
    /// RFC 6052 §3.1 applies: `pool6` is the well-known prefix and the
    /// operator did not opt out. Computed when the configuration changes
    /// ([`Translator::set_pool6`]), so a packet only tests its address.
    wkp_check: bool,
    now: u64,
    flags: u8,
    token: u64,
    /// The caller can keep this packet if the state holds it (an IPv4 SYN,
    /// or an IPv6 SYN hairpinned onto an unbound pool4 address).
    can_hold_syn: bool,
    held: bool,
    /// Mapping of the session an ICMP error quotes: (IPv4 T, IPv6 X).
    err_map: Option<(Ipv4Addr, Ipv6Addr)>,
    /// Same for the second, IPv4 -> IPv6 half of a hairpinned ICMPv6 error
    /// (RFC 6146 §3.8): the session of the other client.
    hairpin_err: Option<(Ipv4Addr, Ipv6Addr)>,
    /// Ports of a non-first fragment, from its first fragment.
    frag_ports: Option<(u16, u16)>,
    /// Why the fragment table refused this fragment.
    frag_refused: Option<DropReason>,
    /// Hold out-of-order fragments (the caller then drains
    /// [`Translator::take_released`] after each packet and expires
    /// `shard.frags`); off: they are refused as `fragment_out_of_order`.
    pub hold_fragments: bool,
    can_hold: bool,
    /// Held fragments whose first fragment just arrived.
    released: [u64; HELD_PER_DATAGRAM],
    n_released: usize,
    /// The look-ahead's notes by burst position: IPv6-side tuples
    /// ([`Translator::prefetch_6to4`]) and IPv4-side chains
    /// ([`Translator::prefetch_4to6`]); boxed, so the translation's own
    /// fields stay together.
    notes6: Box<[Cell<Option<Ahead6>>; BURST]>,
    notes4: Box<[Cell<Option<Ahead4>>; BURST]>,
}

/// Stateful protocol of IP protocol number `n`, by table: one load per
/// packet instead of a compare chain.
#[inline(always)]
fn proto_of(n: u8) -> Option<Proto> {
    PROTO_OF[usize::from(n)]
}

const PROTO_OF: [Option<Proto>; 256] = {
    let mut t = [None; 256];
    t[6] = Some(Proto::Tcp);
    t[17] = Some(Proto::Udp);
    t[1] = Some(Proto::Icmp);
    t[58] = Some(Proto::Icmp);
    t
};

/// (source, destination) port or (identifier, identifier).
fn ports(ids: L4Ids) -> Option<(u16, u16)> {
    match ids {
        L4Ids::Ports { src, dst } => Some((src, dst)),
        L4Ids::IcmpId(i) => Some((i, i)),
        L4Ids::None => None,
    }
}

fn ids_for(proto: Proto, src: u16, dst: u16, id: u16) -> L4Ids {
    match proto {
        Proto::Icmp => L4Ids::IcmpId(id),
        _ => L4Ids::Ports { src, dst },
    }
}

/// The IPv4 protocol number of an IPv6-side packet: ICMPv6 becomes ICMP.
#[inline(always)]
fn p4_of(proto: Proto, n: u8) -> u8 {
    if proto == Proto::Icmp {
        1
    } else {
        n
    }
}

/// Coarse xlate reason for a state refusal.
fn coarse(r: DropReason) -> xlate::DropReason {
    match r {
        DropReason::SessionTableFull
        | DropReason::ClientQuota
        | DropReason::ClientTableFull
        | DropReason::PoolExhausted
        | DropReason::BlockLimit
        | DropReason::NoFreeBlock => xlate::DropReason::PoolExhausted,
        DropReason::AddressFiltered | DropReason::ExternalTcp | DropReason::ClientUnmapped => {
            xlate::DropReason::Filtered
        }
        _ => xlate::DropReason::NoSession,
    }
}

fn rd16(d: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(i)?, *d.get(i + 1)?]))
}

/// A parsed IP header: (protocol, source, destination, offset of the
/// upper-layer header, first fragment?).
struct Hdr<A> {
    proto: u8,
    src: A,
    dst: A,
    l4: usize,
    first: bool,
    /// Fragment identification when the packet is a fragment.
    frag: Option<u32>,
}

fn v6addr(d: &[u8], i: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = d.get(i..i + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

fn v4addr(d: &[u8], i: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = d.get(i..i + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// [`scan6`] with its common case inline: no extension header, so the
/// transport header follows the fixed one. The look-ahead's first stage
/// parses every packet of a burst; the out-of-line walk, and its result
/// returned through memory, cost it about 40 instructions a packet.
#[inline(always)]
fn scan6_plain(d: &[u8]) -> Option<Hdr<Ipv6Addr>> {
    match d.get(6) {
        Some(&proto @ (6 | 17 | 58)) if d[0] >> 4 == 6 => {
            Some(Hdr { proto, src: v6addr(d, 8)?, dst: v6addr(d, 24)?, l4: 40, first: true, frag: None })
        }
        _ => scan6(d),
    }
}

/// IPv6 header plus the extension headers xlate accepts.
fn scan6(d: &[u8]) -> Option<Hdr<Ipv6Addr>> {
    if d.first()? >> 4 != 6 {
        return None;
    }
    let (src, dst) = (v6addr(d, 8)?, v6addr(d, 24)?);
    let mut nh = *d.get(6)?;
    let mut off = 40;
    let mut first = true;
    let mut frag = None;
    for _ in 0..8 {
        match nh {
            0 | 43 | 60 => {
                nh = *d.get(off)?;
                off += (*d.get(off + 1)? as usize + 1) * 8;
            }
            44 => {
                nh = *d.get(off)?;
                let fo = rd16(d, off + 2)?;
                first = fo & 0xfff8 == 0;
                if fo & 0xfff9 != 0 {
                    frag = Some(u32::from_be_bytes(d.get(off + 4..off + 8)?.try_into().ok()?));
                }
                off += 8;
            }
            _ => return Some(Hdr { proto: nh, src, dst, l4: off, first, frag }),
        }
    }
    None
}

fn scan4(d: &[u8]) -> Option<Hdr<Ipv4Addr>> {
    let b0 = *d.first()?;
    if b0 >> 4 != 4 {
        return None;
    }
    let ihl = (b0 & 15) as usize * 4;
    let fo = rd16(d, 6)?;
    Some(Hdr {
        proto: *d.get(9)?,
        src: v4addr(d, 12)?,
        dst: v4addr(d, 16)?,
        l4: ihl,
        first: fo & 0x1fff == 0,
        frag: (fo & 0x3fff != 0).then_some(rd16(d, 4)? as u32),
    })
}

impl Translator {
    /// A translator over `shard`.
    pub fn new(shard: Shard) -> Self {
        Translator {
            shard,
            last_refusal: None,
            pool6: None,
            allow_non_global: false,
            wkp_check: false,
            now: 0,
            flags: 0,
            token: 0,
            can_hold_syn: false,
            held: false,
            err_map: None,
            hairpin_err: None,
            frag_ports: None,
            frag_refused: None,
            hold_fragments: false,
            can_hold: false,
            released: [0; HELD_PER_DATAGRAM],
            n_released: 0,
            notes6: Default::default(),
            notes4: Default::default(),
        }
    }

    /// A held fragment (token) that the last translated first fragment
    /// released: translate it now (it will find its ports). Call until
    /// `None` after each translation.
    pub fn take_released(&mut self) -> Option<u64> {
        if self.n_released == 0 {
            return None;
        }
        self.n_released -= 1;
        Some(self.released[self.n_released])
    }

    /// Shallow virtual reassembly: a first fragment records its ports, a
    /// later one gets them or is held (RFC 6146 §3.4 needs the ports of
    /// every fragment to find its session).
    fn fragment(&mut self, key: FragKey, first: bool, ports: Option<(u16, u16)>) {
        if first {
            let Some((a, b)) = ports else { return };
            let (rel, n) = (&mut self.released, &mut self.n_released);
            let r = self.shard.frags.first(key, a, b, self.now, |tok| {
                if let Some(slot) = rel.get_mut(*n) {
                    *slot = tok;
                    *n += 1;
                }
            });
            if let Err(e) = r {
                // Later fragments will be refused; the first itself carries
                // its ports and is translated normally.
                self.shard.counters.refused[e as usize] += 1;
            }
            return;
        }
        if !self.can_hold {
            match self.shard.frags.ports(&key, self.now) {
                Some(p) => self.frag_ports = Some(p),
                None => {
                    let e = DropReason::FragmentOutOfOrder;
                    self.shard.counters.refused[e as usize] += 1;
                    self.frag_refused = Some(e);
                }
            }
            return;
        }
        match self.shard.frags.later(key, self.token, self.now) {
            Ok(FragVerdict::Ports(a, b)) => self.frag_ports = Some((a, b)),
            Ok(FragVerdict::Held) => self.held = true,
            Err(e) => {
                self.shard.counters.refused[e as usize] += 1;
                self.frag_refused = Some(e);
            }
        }
    }

    #[inline(always)]
    fn begin(&mut self, cfg: &xlate::Config, now: u64, token: u64) {
        self.follow(cfg, now);
        self.token = token;
        self.flags = 0;
        self.held = false;
        self.can_hold_syn = true;
        self.err_map = None;
        self.hairpin_err = None;
        self.last_refusal = None;
        self.frag_ports = None;
        self.frag_refused = None;
    }

    /// What every translation starts with: the clock, and the pool6 of
    /// `cfg` (which a reload may have changed).
    #[inline(always)]
    fn follow(&mut self, cfg: &xlate::Config, now: u64) {
        if self.pool6 != cfg.pool6 || self.allow_non_global != cfg.wkp_allow_non_global {
            self.set_pool6(cfg);
        }
        self.now = now;
    }

    /// A new pool6 or WKP opt-out (at the first packet and after a
    /// reconfiguration): decide once whether RFC 6052 §3.1 applies.
    #[cold]
    #[inline(never)]
    fn set_pool6(&mut self, cfg: &xlate::Config) {
        self.pool6 = cfg.pool6;
        self.allow_non_global = cfg.wkp_allow_non_global;
        self.wkp_check = !cfg.wkp_allow_non_global && cfg.pool6.as_ref().is_some_and(rfc6052::is_well_known);
    }

    /// RFC 6052 §3.1: the well-known prefix never carries a non-global
    /// IPv4 address (what `rfc6052::wkp_permits` says, with the prefix
    /// test done in [`Translator::set_pool6`]).
    #[inline(always)]
    fn wkp_permits(&self, v4: Ipv4Addr) -> bool {
        !self.wkp_check || rfc6052::is_global_v4(v4)
    }

    #[inline(always)]
    fn extract(&self, a: Ipv6Addr) -> Result<Ipv4Addr, xlate::DropReason> {
        let p = self.pool6.as_ref().ok_or(xlate::DropReason::UntranslatableDestination)?;
        let v4 = rfc6052::extract(p, a).ok_or(xlate::DropReason::UntranslatableDestination)?;
        if !self.wkp_permits(v4) {
            return Err(xlate::DropReason::WkpNonGlobal);
        }
        Ok(v4)
    }

    #[inline(always)]
    fn embed(&self, a: Ipv4Addr) -> Result<Ipv6Addr, xlate::DropReason> {
        let p = self.pool6.as_ref().ok_or(xlate::DropReason::UntranslatableSource)?;
        if !self.wkp_permits(a) {
            return Err(xlate::DropReason::WkpNonGlobal);
        }
        rfc6052::embed(p, a).ok_or(xlate::DropReason::UntranslatableSource)
    }

    /// Translates the IPv6 packet in `buf` (RFC 7915 + RFC 6146). `now` is
    /// the shard's millisecond clock. Never holds the packet.
    pub fn translate_6to4<B, A, O>(
        &mut self,
        cfg: &xlate::Config,
        rt: &mut Runtime,
        buf: &mut B,
        alloc: &mut A,
        out: &mut O,
        now: u64,
    ) -> Outcome
    where
        B: PacketBuf,
        A: BufAlloc<Buf = B>,
        O: FnMut(B),
    {
        self.translate_6to4_token(cfg, rt, buf, alloc, out, now, None)
    }

    /// As [`Translator::translate_6to4`]; with `Some(token)` and
    /// [`Translator::hold_fragments`] set, a fragment that arrives before
    /// its first is held under `token` ([`Outcome::Held`]). With
    /// `Some(token)`, a TCP SYN hairpinned onto a pool4 address without a
    /// binding (RFC 6146 §3.8 + §3.5.2.2) is held too: keep the original
    /// IPv6 packet ([`Translator::hairpin_syn`] says when to copy it) and
    /// answer it with ICMPv6 port unreachable when the shard reports the
    /// token expired. Without a token such a SYN is refused (`no_binding`).
    #[allow(clippy::too_many_arguments)]
    pub fn translate_6to4_token<B, A, O>(
        &mut self,
        cfg: &xlate::Config,
        rt: &mut Runtime,
        buf: &mut B,
        alloc: &mut A,
        out: &mut O,
        now: u64,
        token: Option<u64>,
    ) -> Outcome
    where
        B: PacketBuf,
        A: BufAlloc<Buf = B>,
        O: FnMut(B),
    {
        self.begin(cfg, now, token.unwrap_or(0));
        self.can_hold = token.is_some() && self.hold_fragments;
        self.can_hold_syn = token.is_some();
        self.prescan6(buf.data());
        if self.held {
            return Outcome::Held;
        }
        let v = xlate::translate_6to4(cfg, rt, self, buf, alloc, out);
        if self.held {
            Outcome::Held
        } else {
            Outcome::Xlate(v)
        }
    }

    /// The common case of [`Translator::translate_6to4`] in one pass
    /// (`xlate::express`): a UDP or TCP packet of a session that exists,
    /// or the first packet of a session that can be created without a
    /// refusal ([`Shard::outbound_created`]), not hairpinned. `ip` is the
    /// packet from its IPv6 header; returns the IPv4 destination and
    /// length, the IPv4 packet starting 20 bytes in. `None`, with nothing
    /// changed, for anything else: the general path then finds, creates
    /// or refuses the session.
    #[inline(always)]
    pub fn express_6to4(
        &mut self,
        cfg: &xlate::Config,
        rt: &mut Runtime,
        ip: &mut [u8],
        now: u64,
    ) -> Option<(Ipv4Addr, usize)> {
        self.follow(cfg, now);
        xlate::express_6to4(cfg, rt, self, ip)
    }

    /// [`Translator::express_6to4`] the other way ([`Translator::translate_4to6`]):
    /// `pkt` is 20 bytes of room, then the packet from its IPv4 header.
    #[inline(always)]
    pub fn express_4to6(
        &mut self,
        cfg: &xlate::Config,
        pkt: &mut [u8],
        now: u64,
    ) -> Option<(Ipv6Addr, usize)> {
        self.follow(cfg, now);
        xlate::express_4to6(cfg, self, pkt)
    }

    /// Whether the IPv6 packet `d` is a TCP SYN to a pool4 transport address
    /// this worker owns, i.e. one the shard may hold after hairpinning it
    /// (RFC 6146 §3.8, §3.5.2.2). The caller then keeps a copy of the
    /// original: what the hold ends in is an ICMPv6 error quoting it.
    #[inline]
    pub fn hairpin_syn(&self, cfg: &xlate::Config, d: &[u8]) -> bool {
        // Per-packet cost on the IPv6 path: two byte compares (inline) for
        // anything but a bare SYN; extension headers take the full scan.
        match (d.get(6), d.get(53)) {
            (Some(6), Some(f)) if f & 0x12 == 0x02 => {}
            (Some(0 | 43 | 44 | 60), _) => {}
            _ => return false,
        }
        self.hairpin_syn_scan(cfg, d)
    }

    #[inline(never)]
    fn hairpin_syn_scan(&self, cfg: &xlate::Config, d: &[u8]) -> bool {
        let Some(h) = scan6(d) else { return false };
        if h.proto != 6 || !h.first || d.get(h.l4 + 13).is_none_or(|f| f & 0x12 != 0x02) {
            return false;
        }
        let (Some(p), Some(port)) = (cfg.pool6.as_ref(), rd16(d, h.l4 + 2)) else { return false };
        rfc6052::extract(p, h.dst).is_some_and(|a| self.shard.owns(Proto::Tcp, a, port))
    }

    /// Translates the IPv4 packet in `buf`. `token` names the buffer in
    /// case it is held ([`Outcome::Held`]: an unsolicited SYN, or with
    /// [`Translator::hold_fragments`] an out-of-order fragment).
    #[allow(clippy::too_many_arguments)]
    pub fn translate_4to6<B, A, O>(
        &mut self,
        cfg: &xlate::Config,
        rt: &mut Runtime,
        buf: &mut B,
        alloc: &mut A,
        out: &mut O,
        now: u64,
        token: u64,
    ) -> Outcome
    where
        B: PacketBuf,
        A: BufAlloc<Buf = B>,
        O: FnMut(B),
    {
        self.begin(cfg, now, token);
        self.can_hold = self.hold_fragments;
        self.prescan4(buf.data());
        if self.held {
            return Outcome::Held;
        }
        let v = xlate::translate_4to6(cfg, rt, self, buf, alloc, out);
        if self.held {
            Outcome::Held
        } else {
            Outcome::Xlate(v)
        }
    }

    /// One stage of the session look-ahead for the IPv6 packet `d` at
    /// position `pos` of its burst ([`Shard::prefetch6`]): call it for
    /// every packet of a burst, stage by stage while it returns true, before
    /// translating them (in `pipeline::lookahead`'s order). Stage 0 parses
    /// the packet, hashes its key and notes both by position; the later
    /// stages work from the note instead of parsing again (about 300
    /// instructions a packet: the parse, the RFC 6052 extraction and the
    /// caller's checks) or hashing again (about 30). Positions past the
    /// notes get stage 0 only. `d: None` (a packet the instance does not claim)
    /// clears the note. Only unfragmented UDP, TCP and echo requests are
    /// looked at; anything else is left to the translation itself.
    #[inline]
    pub fn prefetch_6to4(&self, cfg: &xlate::Config, d: Option<&[u8]>, pos: usize, stage: u8) -> bool {
        // Gate before parsing: with the look-ahead off (small tables) the
        // parse and RFC 6052 extraction would be pure per-packet cost.
        if !self.shard.prefetches() {
            return false;
        }
        let note = self.notes6.get(pos);
        if stage > 0 {
            return note.and_then(Cell::get).is_some_and(|mut n| self.shard.prefetch6(&mut n, stage));
        }
        let mut n = d.and_then(|d| Self::tuple6(cfg, d)).map(|t| Ahead6::new(&t));
        let more = n.as_mut().is_some_and(|n| self.shard.prefetch6(n, 0));
        if let Some(c) = note {
            c.set(n);
        }
        more
    }

    /// The session key of an IPv6 packet the look-ahead fetches for.
    #[inline(always)]
    fn tuple6(cfg: &xlate::Config, d: &[u8]) -> Option<S6> {
        let h = scan6_plain(d).filter(|h| h.frag.is_none())?;
        let (p, a, b) = (cfg.pool6.as_ref()?, rd16(d, h.l4)?, rd16(d, h.l4 + 2)?);
        let dst = rfc6052::extract(p, h.dst)?;
        match h.proto {
            6 => Some(S6 { proto: Proto::Tcp, src: h.src, sport: a, dst, dport: b }),
            17 => Some(S6 { proto: Proto::Udp, src: h.src, sport: a, dst, dport: b }),
            58 if a >> 8 == 128 => {
                Some(S6 { proto: Proto::Icmp, src: h.src, sport: rd16(d, h.l4 + 4)?, dst, dport: 0 })
            }
            _ => None,
        }
    }

    /// The same for the IPv4 packet `d` ([`Shard::prefetch4`]): stage 0
    /// parses and notes what the next stage starts from, the later stages
    /// follow the note. `d: None` clears the note.
    #[inline]
    pub fn prefetch_4to6(&self, d: Option<&[u8]>, pos: usize, stage: u8) -> bool {
        if !self.shard.prefetches() {
            return false;
        }
        let note = self.notes4.get(pos);
        if stage > 0 {
            let Some(note) = note else { return false };
            let Some(mut n) = note.get() else { return false };
            let more = self.shard.prefetch4(&mut n, stage);
            note.set(more.then_some(n));
            return more;
        }
        let mut n = d.and_then(Self::tuple4).map(|t| Ahead4::new(&t));
        let more = n.as_mut().is_some_and(|n| self.shard.prefetch4(n, 0));
        if let Some(c) = note {
            c.set(n.filter(|_| more));
        }
        more
    }

    /// The session key of an IPv4 packet the look-ahead fetches for.
    #[inline(always)]
    fn tuple4(d: &[u8]) -> Option<S4> {
        let h = scan4(d).filter(|h| h.frag.is_none())?;
        let (a, b) = (rd16(d, h.l4)?, rd16(d, h.l4 + 2)?);
        match h.proto {
            6 => Some(S4 { proto: Proto::Tcp, src: h.src, sport: a, dst: h.dst, dport: b }),
            17 => Some(S4 { proto: Proto::Udp, src: h.src, sport: a, dst: h.dst, dport: b }),
            1 if a >> 8 == 0 => {
                Some(S4 { proto: Proto::Icmp, src: h.src, sport: 0, dst: h.dst, dport: rd16(d, h.l4 + 4)? })
            }
            _ => None,
        }
    }

    #[inline(always)]
    fn prescan6(&mut self, d: &[u8]) {
        // Common case first, inline and without the full scan: plain UDP
        // has nothing to note, plain TCP only its flags (no extension
        // header, so no fragment; not ICMPv6, so no quoted session).
        match d.get(6) {
            Some(17) => {}
            Some(6) if d.first().is_some_and(|b| b >> 4 == 6) => self.flags = d.get(53).copied().unwrap_or(0),
            _ => self.prescan6_scan(d),
        }
    }

    #[inline(never)]
    fn prescan6_scan(&mut self, d: &[u8]) {
        let Some(h) = scan6(d) else { return };
        if h.proto == 6 && h.first {
            self.flags = d.get(h.l4 + 13).copied().unwrap_or(0);
        }
        if let (Some(id), 6 | 17) = (h.frag, h.proto) {
            let key = FragKey { src: h.src.to_bits(), dst: h.dst.to_bits(), id, proto: h.proto };
            let p = rd16(d, h.l4).zip(rd16(d, h.l4 + 2));
            self.fragment(key, h.first, p);
            return;
        }
        if h.proto != 58 || !h.first || d.get(h.l4).is_none_or(|&t| t >= 128) {
            return;
        }
        // An ICMPv6 error: the quoted packet went Y' -> X (IPv4 side to
        // client); its session gives the outer IPv4 source T.
        let q = d.get(h.l4 + 8..).unwrap_or(&[]);
        let Some(i) = scan6(q) else { return };
        let (Some(proto), Ok(remote)) = (proto_of(i.proto), self.extract(i.src)) else { return };
        let (Some(a), Some(b)) = (rd16(q, i.l4), rd16(q, i.l4 + 2)) else { return };
        let (cport, rport) = if proto == Proto::Icmp { (rd16(q, i.l4 + 4).unwrap_or(0), 0) } else { (b, a) };
        let t = S6 { proto, src: i.dst, sport: cport, dst: remote, dport: rport };
        if let Some((t4, _)) = self.shard.lookup6(&t) {
            self.err_map = Some((t4, i.dst));
        }
    }

    #[inline(always)]
    fn prescan4(&mut self, d: &[u8]) {
        // Unfragmented UDP / TCP: as in `prescan6`, skip the full scan.
        // One length check for the fixed header's fields read here.
        if let Some(h) = d.first_chunk::<20>() {
            let (b0, fo) = (h[0], u16::from_be_bytes([h[6], h[7]]));
            if b0 >> 4 == 4 && fo & 0x3fff == 0 {
                match h[9] {
                    17 => return,
                    6 => {
                        self.flags = d.get(usize::from(b0 & 15) * 4 + 13).copied().unwrap_or(0);
                        return;
                    }
                    _ => {}
                }
            }
        }
        self.prescan4_scan(d)
    }

    #[inline(never)]
    fn prescan4_scan(&mut self, d: &[u8]) {
        let Some(h) = scan4(d) else { return };
        if h.proto == 6 && h.first {
            self.flags = d.get(h.l4 + 13).copied().unwrap_or(0);
        }
        if let (Some(id), 6 | 17) = (h.frag, h.proto) {
            let (src, dst) = (h.src.to_bits() as u128, h.dst.to_bits() as u128);
            let key = FragKey { src, dst, id, proto: h.proto };
            let p = rd16(d, h.l4).zip(rd16(d, h.l4 + 2));
            self.fragment(key, h.first, p);
            return;
        }
        if h.proto != 1 || !h.first || !matches!(d.get(h.l4), Some(3 | 11 | 12)) {
            return;
        }
        // An ICMPv4 error: the quoted packet went T -> Y; its session gives
        // the IPv6 client X the error is for.
        let q = d.get(h.l4 + 8..).unwrap_or(&[]);
        let Some(i) = scan4(q) else { return };
        let Some(proto) = proto_of(i.proto) else { return };
        let (Some(a), Some(b)) = (rd16(q, i.l4), rd16(q, i.l4 + 2)) else { return };
        let (tport, rport) = if proto == Proto::Icmp { (rd16(q, i.l4 + 4).unwrap_or(0), 0) } else { (a, b) };
        let t = S4 { proto, src: i.dst, sport: rport, dst: i.src, dport: tport };
        if let Some((x, _)) = self.shard.lookup4(&t) {
            self.err_map = Some((i.src, x));
        }
    }

    /// Ports from the header, or for a non-first fragment from its first
    /// (that case out of line: the mappers inline this).
    #[inline(always)]
    fn ids_or_frag(&mut self, ids: L4Ids, ctx: MapCtx) -> Result<(u16, u16), xlate::DropReason> {
        match ports(ids) {
            Some(p) => Ok(p),
            None => self.frag_ids(ctx),
        }
    }

    /// [`Translator::ids_or_frag`] of a packet without ports.
    #[inline(never)]
    fn frag_ids(&mut self, ctx: MapCtx) -> Result<(u16, u16), xlate::DropReason> {
        if ctx.inner {
            return Err(xlate::DropReason::NoSession);
        }
        if let Some(r) = self.frag_refused {
            return Err(self.refuse(r));
        }
        self.frag_ports.ok_or(xlate::DropReason::NoSession)
    }

    /// [`Mapper::map_6to4`] of an ICMPv6 error. RFC 6146 §3.5.4: the error
    /// goes to the remote Y from the mapping T of the session it is about.
    #[inline(never)]
    fn map_6to4_error(&mut self, t: &Tuple6, proto: Proto) -> Result<Tuple4, xlate::DropReason> {
        let (t4, _) = self.err_map.ok_or(xlate::DropReason::NoSession)?;
        Ok(Tuple4 { proto: p4_of(proto, t.proto), src: t4, dst: self.extract(t.dst)?, ids: L4Ids::None })
    }

    /// [`Mapper::map_6to4`] of the packet quoted in an ICMPv6 error: quoted
    /// Y':y -> X:x; find the session, never create one.
    #[inline(never)]
    fn map_6to4_inner(&mut self, t: &Tuple6, proto: Proto, ctx: MapCtx) -> Result<Tuple4, xlate::DropReason> {
        let (a, b) = self.ids_or_frag(t.ids, ctx)?;
        let remote = self.extract(t.src)?;
        let (cport, rport) = if proto == Proto::Icmp { (a, 0) } else { (b, a) };
        let q = S6 { proto, src: t.dst, sport: cport, dst: remote, dport: rport };
        let (t4, tp) = self.shard.lookup6(&q).ok_or(xlate::DropReason::NoSession)?;
        if proto != Proto::Icmp && self.shard.owns(proto, remote, rport) {
            // RFC 6146 §3.8: the quoted packet was hairpinned, so its
            // source is another client's mapping; the IPv4 error will
            // turn around to that client (its session: remote -> t4).
            let q4 = S4 { proto, src: t4, sport: tp, dst: remote, dport: rport };
            self.hairpin_err = self.shard.lookup4(&q4).map(|(x, _)| (remote, x));
        }
        Ok(Tuple4 { proto: p4_of(proto, t.proto), src: remote, dst: t4, ids: ids_for(proto, rport, tp, tp) })
    }

    fn refuse(&mut self, r: DropReason) -> xlate::DropReason {
        self.last_refusal = Some(r);
        coarse(r)
    }
}

impl Mapper for Translator {
    /// Inlined into the translator so the established path's answer stays
    /// in registers; ICMP errors and quoted packets go out of line.
    #[inline(always)]
    fn map_6to4(&mut self, t: &Tuple6, ctx: MapCtx) -> Result<Tuple4, xlate::DropReason> {
        let proto = proto_of(t.proto).ok_or(xlate::DropReason::ProtocolUnsupported)?;
        if ctx.icmp_error {
            return self.map_6to4_error(t, proto);
        }
        if ctx.inner {
            return self.map_6to4_inner(t, proto, ctx);
        }
        let (a, b) = self.ids_or_frag(t.ids, ctx)?;
        let remote = self.extract(t.dst)?;
        let q = S6 { proto, src: t.src, sport: a, dst: remote, dport: b };
        match self.shard.outbound(&q, self.flags, self.now) {
            Ok(o) => Ok(Tuple4 {
                proto: p4_of(proto, t.proto),
                src: o.src,
                dst: remote,
                ids: ids_for(proto, o.sport, b, o.sport),
            }),
            Err(r) => Err(self.refuse(r)),
        }
    }

    #[inline(always)]
    fn map_4to6(&mut self, t: &Tuple4, ctx: MapCtx) -> Result<Tuple6, xlate::DropReason> {
        let proto = proto_of(t.proto).ok_or(xlate::DropReason::ProtocolUnsupported)?;
        let p6 = if proto == Proto::Icmp { 58 } else { t.proto };
        if ctx.icmp_error {
            let m = if ctx.hairpin { self.hairpin_err } else { self.err_map };
            let (_, x) = m.ok_or(xlate::DropReason::NoSession)?;
            return Ok(Tuple6 { proto: p6, src: self.embed(t.src)?, dst: x, ids: L4Ids::None });
        }
        let (a, b) = self.ids_or_frag(t.ids, ctx)?;
        if ctx.inner {
            // Quoted T:t -> Y:y (left through us); never create state.
            let (tport, rport) = if proto == Proto::Icmp { (a, 0) } else { (a, b) };
            let q = S4 { proto, src: t.dst, sport: rport, dst: t.src, dport: tport };
            let (x, xp) = self.shard.lookup4(&q).ok_or(xlate::DropReason::NoSession)?;
            return Ok(Tuple6 {
                proto: p6,
                src: x,
                dst: self.embed(t.dst)?,
                ids: ids_for(proto, xp, rport, xp),
            });
        }
        // Ordinary (or hairpinned, RFC 6146 §3.8) IPv4 packet Y:y -> T:t.
        let (rport, tport) = if proto == Proto::Icmp { (0, a) } else { (a, b) };
        let q = S4 { proto, src: t.src, sport: rport, dst: t.dst, dport: tport };
        match self.shard.inbound(&q, self.flags, self.token, self.now) {
            Ok(Inbound::Translate { dst, dport, .. }) => Ok(Tuple6 {
                proto: p6,
                src: self.embed(t.src)?,
                dst,
                ids: ids_for(proto, rport, dport, dport),
            }),
            Ok(Inbound::Held) if self.can_hold_syn => {
                self.held = true;
                Err(xlate::DropReason::NoSession)
            }
            Ok(Inbound::Held) => {
                // Nobody can keep this packet (hairpinned SYN without a
                // token): take the hold back and refuse it.
                self.shard.cancel_hold(&q);
                Err(self.refuse(DropReason::NoBinding))
            }
            Err(r) => Err(self.refuse(r)),
        }
    }

    /// RFC 6146 §3.8: a packet from one client to another's pool4 mapping
    /// turns around here when this worker owns that mapping (else the
    /// caller hands the IPv4 packet to the owner).
    /// A session that exists, or a new one that cannot be refused,
    /// not hairpinned (RFC 6146 §3.8 turns the packet around: the general
    /// way): its update or creation is `map_6to4`'s.
    #[inline(always)]
    fn express_6to4(&mut self, t: &Tuple6, tcp_flags: u8) -> Option<Tuple4> {
        let proto = proto_of(t.proto)?;
        let L4Ids::Ports { src: sport, dst: dport } = t.ids else { return None };
        let remote = self.extract(t.dst).ok()?;
        if self.shard.owns(proto, remote, dport) {
            return None;
        }
        let q = S6 { proto, src: t.src, sport, dst: remote, dport };
        let o = match self.shard.outbound_existing(&q, tcp_flags, self.now) {
            Ok(o) => o,
            // A new flow whose session cannot be refused: created here as
            // the general path would create it.
            Err(hb) => self.shard.outbound_created(&q, hb, tcp_flags, self.now)?,
        };
        Some(Tuple4 {
            proto: t.proto,
            src: o.src,
            dst: remote,
            ids: L4Ids::Ports { src: o.sport, dst: dport },
        })
    }

    /// An IPv4 packet Y:y -> T:t of a session that exists: its update is
    /// `map_4to6`'s. (A transport address another worker owns has no
    /// session here: the general path hands the packet over.)
    #[inline(always)]
    fn express_4to6(&mut self, t: &Tuple4, tcp_flags: u8) -> Option<Tuple6> {
        let proto = proto_of(t.proto)?;
        let L4Ids::Ports { src: rport, dst: tport } = t.ids else { return None };
        let src = self.embed(t.src).ok()?;
        let q = S4 { proto, src: t.src, sport: rport, dst: t.dst, dport: tport };
        match self.shard.inbound_existing(&q, tcp_flags, self.now) {
            Ok(Inbound::Translate { dst, dport, .. }) => {
                Some(Tuple6 { proto: t.proto, src, dst, ids: L4Ids::Ports { src: rport, dst: dport } })
            }
            _ => None,
        }
    }

    #[inline(always)]
    fn hairpin(&self, _t6: &Tuple6, t4: &Tuple4) -> bool {
        let Some(proto) = proto_of(t4.proto) else { return false };
        if t4.ids == L4Ids::None {
            // An ICMPv6 error about a hairpinned flow: map_6to4 found the
            // other client's session while translating the quoted packet.
            return self.hairpin_err.is_some();
        }
        // ICMP queries do not hairpin: the identifier names the sender's
        // mapping, not the destination's.
        let L4Ids::Ports { dst: port, .. } = t4.ids else { return false };
        self.shard.owns(proto, t4.dst, port)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tcp::flags, Config, Pool4, Pool4Entry};
    use super::*;
    use crate::buf::{VecAlloc, VecBuf};
    use crate::wire::checksum::{finish, pseudo_v4, pseudo_v6, sum};
    use etherparse::PacketBuilder;

    const POOL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn client(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)
    }

    /// The look-ahead's inline parse finds what the full walk finds, on
    /// headers of every length with and without extension headers.
    #[test]
    fn scan6_plain_agrees_with_scan6() {
        let mut r = fastrand::Rng::with_seed(6052);
        let view = |h: Option<Hdr<Ipv6Addr>>| h.map(|h| (h.proto, h.src, h.dst, h.l4, h.first, h.frag));
        let (mut inline, mut walked) = (0, 0);
        for _ in 0..20_000 {
            let mut d = vec![0u8; r.usize(0..80)];
            r.fill(&mut d);
            if let Some(b) = d.first_mut() {
                *b = if r.bool() { 0x60 | (*b & 15) } else { *b };
            }
            if let Some(nh) = d.get_mut(6) {
                *nh = [6, 17, 58, 0, 43, 44, 60, *nh][r.usize(0..8)];
            }
            let fast = view(scan6_plain(&d));
            assert_eq!(fast, view(scan6(&d)), "{d:02x?}");
            // Which branch answered, counted for the answers that parse.
            let plain = matches!(d.get(6), Some(6 | 17 | 58)) && d[0] >> 4 == 6;
            if fast.is_some() {
                *(if plain { &mut inline } else { &mut walked }) += 1;
            }
        }
        assert!(inline > 1000 && walked > 1000, "{inline} {walked}");
    }

    /// pool6 2001:db8:64::/96.
    fn p6(a: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from((0x2001_0db8_0064u128 << 80) | a.to_bits() as u128)
    }

    fn setup() -> (Translator, xlate::Config) {
        let entries: Vec<_> = Proto::ALL.iter().map(|&p| Pool4Entry::new(p, POOL, 32)).collect();
        let pool = Pool4::new(&entries, 1).unwrap();
        let shard = Shard::new(&Config::default(), pool.slice(0), 0);
        let cfg = xlate::Config {
            pool6: Some(Prefix6::new(p6(Ipv4Addr::UNSPECIFIED), 96).unwrap()),
            own_v4: Ipv4Addr::new(192, 0, 2, 254),
            ..xlate::Config::default()
        };
        (Translator::new(shard), cfg)
    }

    fn run6(t: &mut Translator, cfg: &xlate::Config, pkt: &[u8], now: u64) -> (Outcome, Vec<u8>) {
        let mut rt = Runtime::new(1);
        let mut buf = VecBuf::from_slice(pkt);
        let o = t.translate_6to4(cfg, &mut rt, &mut buf, &mut VecAlloc::default(), &mut |_| {}, now);
        (o, buf.to_vec())
    }

    fn run4(t: &mut Translator, cfg: &xlate::Config, pkt: &[u8], now: u64, tok: u64) -> (Outcome, Vec<u8>) {
        let mut rt = Runtime::new(1);
        let mut buf = VecBuf::from_slice(pkt);
        let o = t.translate_4to6(cfg, &mut rt, &mut buf, &mut VecAlloc::default(), &mut |_| {}, now, tok);
        (o, buf.to_vec())
    }

    fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ipv6(src.octets(), dst.octets(), 64)
            .udp(sport, dport)
            .write(&mut v, b"hello")
            .unwrap();
        v
    }

    fn udp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ipv4(src.octets(), dst.octets(), 64)
            .udp(sport, dport)
            .write(&mut v, b"world")
            .unwrap();
        v
    }

    fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
        let mut v = vec![];
        let mut b = PacketBuilder::ipv6(src.octets(), dst.octets(), 64).tcp(sport, dport, 1, 1000);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(5);
        }
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn tcp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
        let mut v = vec![];
        let mut b = PacketBuilder::ipv4(src.octets(), dst.octets(), 64).tcp(sport, dport, 1, 1000);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(5);
        }
        b.write(&mut v, &[]).unwrap();
        v
    }

    /// (src, dst, sport, dport) of an IPv4 packet, its L4 checksum checked.
    fn check4(p: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
        let h = scan4(p).unwrap();
        let l4 = &p[h.l4..];
        let ps = if h.proto == 1 { 0 } else { pseudo_v4(h.src, h.dst, h.proto, l4.len() as u16) };
        assert_eq!(finish(sum(l4, ps)), 0, "bad L4 checksum");
        (h.src, h.dst, rd16(l4, 0).unwrap(), rd16(l4, 2).unwrap())
    }

    fn check6(p: &[u8]) -> (Ipv6Addr, Ipv6Addr, u16, u16) {
        let h = scan6(p).unwrap();
        let l4 = &p[h.l4..];
        assert_eq!(finish(sum(l4, pseudo_v6(h.src, h.dst, h.proto, l4.len() as u32))), 0);
        (h.src, h.dst, rd16(l4, 0).unwrap(), rd16(l4, 2).unwrap())
    }

    #[test]
    fn lookahead_parses_what_the_session_lookup_needs() {
        let (mut t, cfg) = setup();
        assert!(!t.shard.prefetches(), "one session fits in the caches");
        t.shard.lookahead_from = 0;
        let stages = |f: &dyn Fn(u8) -> bool| (0..10).take_while(|&k| f(k)).count();
        let out6 = udp6(client(1), 1234, p6(REMOTE), 53);
        let (_, out) = run6(&mut t, &cfg, &out6, 0);
        let (_, _, sport, _) = check4(&out);
        let back = udp4(REMOTE, 53, POOL, sport);
        assert_eq!(stages(&|k| t.prefetch_6to4(&cfg, Some(&out6), 0, k)), 1);
        assert_eq!(stages(&|k| t.prefetch_4to6(Some(&back), 0, k)), 3);
        // Not for pool6, truncated, or not IP: nothing to fetch.
        let other = udp6(client(1), 1234, client(2), 53);
        assert_eq!(stages(&|k| t.prefetch_6to4(&cfg, Some(&other), 0, k)), 0);
        assert_eq!(stages(&|k| t.prefetch_6to4(&cfg, Some(&out6[..41]), 0, k)), 0);
        assert_eq!(stages(&|k| t.prefetch_4to6(Some(&out6), 0, k)), 0);
        let echo = {
            let mut v = vec![];
            PacketBuilder::ipv6(client(1).octets(), p6(REMOTE).octets(), 64)
                .icmpv6_echo_request(7, 1)
                .write(&mut v, &[])
                .unwrap();
            v
        };
        assert_eq!(stages(&|k| t.prefetch_6to4(&cfg, Some(&echo), 0, k)), 1);
        // Stage 0 notes each position's tuple for the later stages, which
        // do not parse again. A packet with nothing to fetch, or one the
        // instance does not claim (`None`), clears its position; positions
        // past the notes get stage 0 alone.
        assert!(t.prefetch_6to4(&cfg, Some(&out6), 1, 0));
        let noted = *t.notes6[1].get().expect("stage 0 noted the tuple").tuple();
        assert_eq!(
            (noted.proto, noted.src, noted.sport, noted.dst, noted.dport),
            (Proto::Udp, client(1), 1234, REMOTE, 53)
        );
        assert_eq!(
            t.notes6[0].get().map(|n| n.tuple().proto),
            Some(Proto::Icmp),
            "position 0 holds the echo"
        );
        assert!(!t.prefetch_6to4(&cfg, Some(&other), 1, 0));
        assert_eq!(t.notes6[1].get(), None);
        assert!(t.prefetch_6to4(&cfg, Some(&out6), 1, 0));
        assert!(!t.prefetch_6to4(&cfg, None, 1, 0));
        assert_eq!(t.notes6[1].get(), None);
        assert!(t.prefetch_6to4(&cfg, Some(&out6), BURST, 0));
        assert!(!t.prefetch_6to4(&cfg, Some(&out6), BURST, 1));
        // The IPv4 side likewise, its note carrying the chain forward and
        // cleared once the chain ends.
        assert!(t.prefetch_4to6(Some(&back), 2, 0));
        assert!(t.notes4[2].get().is_some());
        assert!(t.prefetch_4to6(None, 2, 1), "stage 1 follows the note");
        assert!(!t.prefetch_4to6(None, 3, 1), "nothing noted at position 3");
        assert!(t.prefetch_4to6(None, 2, 2));
        assert!(!t.prefetch_4to6(None, 2, 3));
        assert_eq!(t.notes4[2].get(), None);
        assert!(t.prefetch_4to6(Some(&back), 2, 0));
        assert!(!t.prefetch_4to6(None, 2, 0));
        assert_eq!(t.notes4[2].get(), None);
        assert!(!t.prefetch_4to6(Some(&back), BURST, 1));
        // Gated off (few sessions), neither side parses or fetches.
        t.shard.lookahead_from = u64::MAX;
        assert_eq!(stages(&|k| t.prefetch_6to4(&cfg, Some(&out6), 0, k)), 0);
        assert_eq!(stages(&|k| t.prefetch_4to6(Some(&back), 0, k)), 0);
        // The look-ahead changed nothing: the answer still finds its session.
        let (o, _) = run4(&mut t, &cfg, &back, 1, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        assert_eq!(t.shard.live_sessions(), 1);
    }

    #[test]
    fn udp_round_trip() {
        let (mut t, cfg) = setup();
        let (o, out) = run6(&mut t, &cfg, &udp6(client(1), 1234, p6(REMOTE), 53), 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let (s, d, sp, dp) = check4(&out);
        assert_eq!((s, d, dp), (POOL, REMOTE, 53));
        assert_eq!(t.shard.bib6(Proto::Udp, client(1), 1234), Some((POOL, sp)));
        let (o, back) = run4(&mut t, &cfg, &udp4(REMOTE, 53, POOL, sp), 10, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        assert_eq!(check6(&back), (p6(REMOTE), client(1), 53, 1234));
        // Unknown mapping: dropped with the state's reason kept.
        let (o, _) = run4(&mut t, &cfg, &udp4(REMOTE, 53, POOL, sp ^ 1), 10, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Drop(xlate::DropReason::NoSession)));
        assert_eq!(t.last_refusal, Some(DropReason::NoBinding));
    }

    /// The RFC 6052 §3.1 check decided per configuration agrees with
    /// `rfc6052::wkp_permits` and follows every change of pool6 or the
    /// opt-out between packets.
    #[test]
    fn wkp_check_follows_the_configuration() {
        let (mut t, mut cfg) = setup();
        let wkp = rfc6052::WELL_KNOWN_PREFIX;
        let in_wkp = |a: Ipv4Addr| Ipv6Addr::from_bits(wkp.addr.to_bits() | u128::from(a.to_bits()));
        let private = Ipv4Addr::new(10, 0, 0, 1);
        let cases = [
            (Some(wkp), false),
            (Some(wkp), true),
            (cfg.pool6, false),
            (Some(Prefix6::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 64).unwrap()), false),
            (None, false),
            (Some(wkp), false),
        ];
        for (i, (pool6, allow)) in cases.into_iter().enumerate() {
            cfg.pool6 = pool6;
            cfg.wkp_allow_non_global = allow;
            for (j, a) in [private, REMOTE].into_iter().enumerate() {
                let dst = pool6.and_then(|p| rfc6052::embed(&p, a)).unwrap_or(in_wkp(a));
                let sport = 1000 + (i * 2 + j) as u16;
                let (o, _) = run6(&mut t, &cfg, &udp6(client(1), sport, dst, 53), 0);
                let refused = match pool6 {
                    None => Some(xlate::DropReason::UntranslatableDestination),
                    Some(p) if !rfc6052::wkp_permits(&p, a, allow) => Some(xlate::DropReason::WkpNonGlobal),
                    Some(_) => None,
                };
                let got = match o {
                    Outcome::Xlate(Verdict::Forward) => None,
                    Outcome::Xlate(Verdict::Drop(r) | Verdict::Reply(r)) => Some(r),
                    o => panic!("case {i}, {a}: {o:?}"),
                };
                assert_eq!(got, refused, "case {i}, {a}");
                if refused.is_some() {
                    continue;
                }
                // The answer's source is embedded under the same rule.
                let (_, mapped) = t.shard.bib6(Proto::Udp, client(1), sport).unwrap();
                let (o, _) = run4(&mut t, &cfg, &udp4(a, 53, POOL, mapped), 1, 0);
                assert_eq!(o, Outcome::Xlate(Verdict::Forward), "case {i}, {a} back");
            }
        }
        // The session case 1 opened to a private address (opt-out on) now
        // gets no answers: embedding its source under the WKP is refused.
        let (_, mapped) = t.shard.bib6(Proto::Udp, client(1), 1002).unwrap();
        let (o, _) = run4(&mut t, &cfg, &udp4(private, 53, POOL, mapped), 2, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Reply(xlate::DropReason::WkpNonGlobal)));
    }

    #[test]
    fn tcp_flags_drive_the_state_machine() {
        let (mut t, cfg) = setup();
        let (o, _) = run6(&mut t, &cfg, &tcp6(client(1), 40000, p6(REMOTE), 80, false, true), 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Drop(xlate::DropReason::NoSession)));
        assert_eq!(t.last_refusal, Some(DropReason::TcpNoSession));
        let (_, out) = run6(&mut t, &cfg, &tcp6(client(1), 40000, p6(REMOTE), 80, true, false), 0);
        let (_, _, tp, _) = check4(&out);
        let mut states = vec![];
        t.shard.sessions(&Default::default(), 0, u32::MAX, |v| states.push(v.state));
        assert_eq!(states, [Some(super::super::TcpState::V6Init)]);
        let (o, back) = run4(&mut t, &cfg, &tcp4(REMOTE, 80, POOL, tp, true, true), 5, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        assert_eq!(check6(&back).1, client(1));
        states.clear();
        t.shard.sessions(&Default::default(), 0, u32::MAX, |v| states.push(v.state));
        assert_eq!(states, [Some(super::super::TcpState::Established)]);
    }

    #[test]
    fn unsolicited_syn_is_held_then_reported() {
        let (mut t, cfg) = setup();
        let (o, _) = run4(&mut t, &cfg, &tcp4(REMOTE, 5555, POOL, 2000, true, false), 1000, 99);
        assert_eq!(o, Outcome::Held);
        assert_eq!(t.shard.take_expired_syn(6999), None);
        assert_eq!(t.shard.take_expired_syn(7000), Some(99));
        let _ = flags::SYN;
    }

    #[test]
    fn icmpv4_error_reaches_the_client() {
        let (mut t, cfg) = setup();
        let (_, out) = run6(&mut t, &cfg, &udp6(client(3), 5000, p6(REMOTE), 53), 0);
        let (_, _, sp, _) = check4(&out);
        // Port unreachable from the remote, quoting what we sent.
        let mut err = vec![];
        PacketBuilder::ipv4(REMOTE.octets(), POOL.octets(), 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut err, &out)
            .unwrap();
        let (o, back) = run4(&mut t, &cfg, &err, 1, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let h = scan6(&back).unwrap();
        assert_eq!((h.proto, h.src, h.dst), (58, p6(REMOTE), client(3)));
        // The quoted packet is the client's own, untranslated back.
        let q = scan6(&back[h.l4 + 8..]).unwrap();
        assert_eq!((q.src, q.dst), (client(3), p6(REMOTE)));
        assert_eq!(rd16(&back, h.l4 + 8 + q.l4), Some(5000));
        assert_eq!(t.shard.live_sessions(), 1, "an error creates no state");
        let _ = sp;
    }

    #[test]
    fn icmpv6_error_reaches_the_remote() {
        let (mut t, cfg) = setup();
        let (_, out) = run6(&mut t, &cfg, &udp6(client(3), 5000, p6(REMOTE), 53), 0);
        let (_, _, sp, _) = check4(&out);
        let (_, reply) = run4(&mut t, &cfg, &udp4(REMOTE, 53, POOL, sp), 1, 0);
        // The client says port unreachable about the reply.
        let mut err = vec![];
        PacketBuilder::ipv6(client(3).octets(), p6(REMOTE).octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut err, &reply)
            .unwrap();
        let (o, e4) = run6(&mut t, &cfg, &err, 2);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let h = scan4(&e4).unwrap();
        assert_eq!((h.proto, h.src, h.dst), (1, POOL, REMOTE));
        let q = scan4(&e4[h.l4 + 8..]).unwrap();
        assert_eq!((q.src, q.dst), (REMOTE, POOL));
        assert_eq!(rd16(&e4, h.l4 + 8 + q.l4 + 2), Some(sp));
    }

    #[test]
    fn hairpinning_between_two_clients() {
        let (mut t, cfg) = setup();
        // Client 1 is reachable on POOL:pa (any host may use it: EIF).
        let (_, out) = run6(&mut t, &cfg, &udp6(client(1), 7000, p6(REMOTE), 53), 0);
        let (_, _, pa, _) = check4(&out);
        // Client 2 sends to client 1's IPv4 mapping through pool6.
        let (o, hp) = run6(&mut t, &cfg, &udp6(client(2), 8000, p6(POOL), pa), 1);
        assert_eq!(o, Outcome::Xlate(Verdict::Hairpin));
        let (s, d, sp, dp) = check6(&hp);
        let (_, pb) = t.shard.bib6(Proto::Udp, client(2), 8000).unwrap();
        assert_eq!((s, d, sp, dp), (p6(POOL), client(1), pb, 7000));
    }

    #[test]
    fn icmpv6_error_about_a_hairpinned_flow_turns_around() {
        let (mut t, cfg) = setup();
        // Client 1 has a mapping; client 2 sends to it through pool6.
        let (_, out) = run6(&mut t, &cfg, &udp6(client(1), 7000, p6(REMOTE), 53), 0);
        let (_, _, pa, _) = check4(&out);
        let (o, hp) = run6(&mut t, &cfg, &udp6(client(2), 8000, p6(POOL), pa), 1);
        assert_eq!(o, Outcome::Xlate(Verdict::Hairpin));
        let (_, pb) = t.shard.bib6(Proto::Udp, client(2), 8000).unwrap();
        // A router in front of client 1 says Packet Too Big about it.
        let mut err = vec![];
        PacketBuilder::ipv6(client(1).octets(), p6(POOL).octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
            .write(&mut err, &hp)
            .unwrap();
        let (o, back) = run6(&mut t, &cfg, &err, 2);
        // RFC 6146 §3.8: translated twice, it reaches client 2 about what
        // client 2 sent.
        assert_eq!(o, Outcome::Xlate(Verdict::Hairpin));
        let h = scan6(&back).unwrap();
        assert_eq!((h.proto, h.src, h.dst, back[h.l4]), (58, p6(POOL), client(2), 2));
        assert_eq!(rd16(&back, h.l4 + 6), Some(1400));
        let q = &back[h.l4 + 8..];
        let qh = scan6(q).unwrap();
        assert_eq!((qh.src, qh.dst), (client(2), p6(POOL)));
        assert_eq!((rd16(q, qh.l4), rd16(q, qh.l4 + 2)), (Some(8000), Some(pa)));
        assert_ne!(pb, 0);
        // The same error about a flow that was not hairpinned still goes
        // out to IPv4.
        let (_, reply) = run4(&mut t, &cfg, &udp4(REMOTE, 53, POOL, pa), 3, 0);
        let mut err = vec![];
        PacketBuilder::ipv6(client(1).octets(), p6(REMOTE).octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
            .write(&mut err, &reply)
            .unwrap();
        assert_eq!(run6(&mut t, &cfg, &err, 4).0, Outcome::Xlate(Verdict::Forward));
    }

    #[test]
    fn hairpinned_syn_to_an_unbound_port_is_held_with_a_token_only() {
        let (mut t, cfg) = setup();
        let syn = tcp6(client(1), 50001, p6(POOL), 1501, true, false);
        assert!(t.hairpin_syn(&cfg, &syn));
        assert!(!t.hairpin_syn(&cfg, &tcp6(client(1), 50001, p6(POOL), 1501, true, true)), "SYN+ACK");
        assert!(!t.hairpin_syn(&cfg, &tcp6(client(1), 50001, p6(REMOTE), 1501, true, false)));
        // Without a token nobody could keep it: refused, nothing held.
        let (o, _) = run6(&mut t, &cfg, &syn, 1000);
        assert_eq!(o, Outcome::Xlate(Verdict::Drop(xlate::DropReason::NoSession)));
        assert_eq!(t.last_refusal, Some(DropReason::NoBinding));
        assert_eq!((t.shard.held_syns(), t.shard.counters.syn_held), (0, 0));
        // With a token: held (RFC 6146 §3.5.2.2 via §3.8), reported after 6 s.
        let (o, _) = run6t(&mut t, &cfg, &tcp6(client(1), 50003, p6(POOL), 1501, true, false), 2000, 42);
        assert_eq!(o, Outcome::Held);
        assert_eq!(t.shard.held_syns(), 1);
        assert_eq!(t.shard.take_expired_syn(7999), None);
        assert_eq!(t.shard.take_expired_syn(8000), Some(42));
    }

    #[test]
    fn icmp_echo_round_trip() {
        let (mut t, cfg) = setup();
        let mut req = vec![];
        PacketBuilder::ipv6(client(4).octets(), p6(REMOTE).octets(), 64)
            .icmpv6_echo_request(0x4242, 1)
            .write(&mut req, b"ping")
            .unwrap();
        let (o, out) = run6(&mut t, &cfg, &req, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let h = scan4(&out).unwrap();
        let id = rd16(&out, h.l4 + 4).unwrap();
        assert_eq!(t.shard.bib6(Proto::Icmp, client(4), 0x4242), Some((POOL, id)));
        let mut rep = vec![];
        PacketBuilder::ipv4(REMOTE.octets(), POOL.octets(), 64)
            .icmpv4_echo_reply(id, 1)
            .write(&mut rep, b"ping")
            .unwrap();
        let (o, back) = run4(&mut t, &cfg, &rep, 1, 0);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let h = scan6(&back).unwrap();
        assert_eq!((h.dst, back[h.l4], rd16(&back, h.l4 + 4)), (client(4), 129, Some(0x4242)));
    }

    /// IPv6 fragment of a UDP datagram: `part` is the bytes at `offset`
    /// (multiple of 8) of the UDP header + payload.
    fn frag6(src: Ipv6Addr, dst: Ipv6Addr, id: u32, offset: u16, more: bool, part: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&((8 + part.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[44, 64]);
        v.extend_from_slice(&src.octets());
        v.extend_from_slice(&dst.octets());
        v.extend_from_slice(&[17, 0]);
        v.extend_from_slice(&(offset | more as u16).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(part);
        v
    }

    fn udp_datagram(sport: u16, dport: u16, len: usize) -> Vec<u8> {
        let mut u = vec![];
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&(len as u16).to_be_bytes());
        u.extend_from_slice(&0x1234u16.to_be_bytes());
        u.resize(len, 0xab);
        u
    }

    fn run6t(t: &mut Translator, cfg: &xlate::Config, pkt: &[u8], now: u64, tok: u64) -> (Outcome, Vec<u8>) {
        let mut rt = Runtime::new(1);
        let mut buf = VecBuf::from_slice(pkt);
        let o = t.translate_6to4_token(
            cfg,
            &mut rt,
            &mut buf,
            &mut VecAlloc::default(),
            &mut |_| {},
            now,
            Some(tok),
        );
        (o, buf.to_vec())
    }

    #[test]
    fn fragments_in_order_share_the_session() {
        let (mut t, cfg) = setup();
        let u = udp_datagram(6000, 53, 64);
        let (o, f1) = run6t(&mut t, &cfg, &frag6(client(5), p6(REMOTE), 77, 0, true, &u[..32]), 0, 1);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let (_, tp) = t.shard.bib6(Proto::Udp, client(5), 6000).unwrap();
        assert_eq!(rd16(&f1, 20), Some(tp));
        let (o, f2) = run6t(&mut t, &cfg, &frag6(client(5), p6(REMOTE), 77, 32, false, &u[32..]), 1, 2);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        let h = scan4(&f2).unwrap();
        assert_eq!((h.src, h.dst, h.first), (POOL, REMOTE, false));
        assert_eq!(t.shard.frags.stats.mapped, 1);
        assert_eq!(t.shard.live_sessions(), 1);
    }

    #[test]
    fn out_of_order_fragment_refused_without_holding() {
        let (mut t, cfg) = setup();
        let u = udp_datagram(6002, 53, 64);
        let later = frag6(client(5), p6(REMOTE), 80, 32, false, &u[32..]);
        let (o, _) = run6t(&mut t, &cfg, &later, 0, 1);
        assert_eq!(o, Outcome::Xlate(Verdict::Drop(xlate::DropReason::NoSession)));
        assert_eq!(t.last_refusal, Some(DropReason::FragmentOutOfOrder));
        assert_eq!(t.shard.frags.held(), 0);
    }

    #[test]
    fn fragment_before_its_first_is_held_then_released() {
        let (mut t, cfg) = setup();
        t.hold_fragments = true;
        let u = udp_datagram(6001, 53, 64);
        let later = frag6(client(5), p6(REMOTE), 78, 32, false, &u[32..]);
        let (o, _) = run6t(&mut t, &cfg, &later, 0, 555);
        assert_eq!(o, Outcome::Held);
        assert_eq!(t.take_released(), None);
        let (o, _) = run6t(&mut t, &cfg, &frag6(client(5), p6(REMOTE), 78, 0, true, &u[..32]), 1, 556);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        assert_eq!(t.take_released(), Some(555));
        assert_eq!(t.take_released(), None);
        // The caller re-runs the released packet: now it has its ports.
        let (o, f2) = run6t(&mut t, &cfg, &later, 2, 555);
        assert_eq!(o, Outcome::Xlate(Verdict::Forward));
        assert_eq!(scan4(&f2).unwrap().src, POOL);
        // A fragment whose first never comes is reported after the timeout.
        let orphan = frag6(client(5), p6(REMOTE), 79, 32, false, &u[32..]);
        assert_eq!(run6t(&mut t, &cfg, &orphan, 3, 600).0, Outcome::Held);
        let mut dropped = vec![];
        t.shard.frags.expire(10_000, 10_000, |tok| dropped.push(tok));
        assert_eq!(dropped, [600]);
    }

    #[test]
    fn prescan_survives_garbage() {
        let (mut t, cfg) = setup();
        let mut rng = fastrand::Rng::with_seed(5);
        for len in 0..200 {
            let mut p: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if let Some(b) = p.first_mut() {
                *b = (*b & 0x0f) | if len % 2 == 0 { 0x60 } else { 0x45 };
            }
            let _ = run6(&mut t, &cfg, &p, 0);
            let _ = run4(&mut t, &cfg, &p, 0, 0);
        }
    }
}
