//! Translation instances as the pipeline runs them: a stateless SIIT
//! (RFC 7915 + RFC 6052 / 7757 / 6791) or a stateful NAT64 (RFC 6146).
//! Each worker owns its instances (and so its translator runtime and, for
//! NAT64, its session shard).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::{BufAlloc, PacketBuf};
use crate::pipeline::{Extra, Instance, Translated, EXTRA_MAX};
use crate::xlate::{self, siit::SiitMapper};

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
    fn claims_v6(&self, dst: Ipv6Addr) -> bool {
        self.cfg.eamt.lookup6(dst).is_some() || self.cfg.pool6.is_some_and(|p| p.contains(dst))
    }

    fn claims_v4(&self, dst: Ipv4Addr) -> bool {
        // With a pool6 every IPv4 address maps to an IPv6 one; without it
        // only the EAMT's do (RFC 7757 §3).
        self.cfg.pool6.is_some() || self.cfg.eamt.lookup4(dst).is_some()
    }

    fn answers_arp(&self, a: Ipv4Addr) -> bool {
        // EAMT IPv4 addresses stand for IPv6 hosts behind the appliance.
        self.cfg.eamt.lookup4(a).is_some()
    }

    fn to_v4<A: BufAlloc<Buf = B>>(
        &mut self,
        now: u64,
        mut pkt: B,
        alloc: &mut A,
        extra: &mut Extra<B>,
    ) -> Translated<B> {
        self.rt.now_ns = now.saturating_mul(1_000_000);
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
        self.rt.now_ns = now.saturating_mul(1_000_000);
        let mut mapper = SiitMapper::new(&self.cfg);
        let ov = &mut self.extra_overflow;
        let v = xlate::translate_4to6(&self.cfg, &mut self.rt, &mut mapper, &mut pkt, alloc, &mut |b| {
            keep(extra, ov, b)
        });
        Translated::Done(v, pkt)
    }
}

/// Any instance kind, so a worker can hold a list of them.
#[derive(Debug)]
pub enum AnyInstance {
    /// Stateless SIIT.
    Siit(Siit),
}

impl<B: PacketBuf> Instance<B> for AnyInstance {
    fn claims_v6(&self, dst: Ipv6Addr) -> bool {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::claims_v6(s, dst),
        }
    }
    fn claims_v4(&self, dst: Ipv4Addr) -> bool {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::claims_v4(s, dst),
        }
    }
    fn answers_arp(&self, a: Ipv4Addr) -> bool {
        match self {
            AnyInstance::Siit(s) => <Siit as Instance<B>>::answers_arp(s, a),
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
        }
    }
}
