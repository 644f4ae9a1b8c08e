//! Stateless IP/ICMP translation: RFC 7915, RFC 6052, RFC 7757 (EAMT),
//! RFC 6791.
//!
//! One packet is translated in place in a [`PacketBuf`] that starts at the
//! IP header. IPv6 -> IPv4 writes the IPv4 header just in front of the
//! upper-layer header and trims the front; IPv4 -> IPv6 prepends into the
//! headroom. The payload does not move, except inside ICMP errors (the
//! quoted packet changes size) and when an IPv4 packet is split into IPv6
//! fragments (later fragments are copied into fresh buffers).
//!
//! # Address mapping: the [`Mapper`] trait
//! Header translation never decides addresses itself. It hands a [`Tuple6`]
//! or [`Tuple4`] (protocol, addresses, ports or ICMP identifier) to a
//! [`Mapper`] and writes back what it returns, with RFC 1624 incremental
//! checksum updates covering every rewritten address, port and identifier.
//! The [`MapCtx`] says what is being mapped: an ordinary packet, the outer
//! header of an ICMP error (whose source may come from an RFC 6791 pool),
//! or the packet quoted inside an ICMP error (which travels in the reverse
//! direction: a stateful mapper must look it up as a reply and must not
//! create state for it).
//!
//! - [`SiitMapper`] is the stateless one: EAMT first (RFC 7757 §3.2), then
//!   the RFC 6052 pool6, RFC 6791 for ICMP error sources, ports unchanged,
//!   and RFC 7757 §4 hairpinning.
//! - The stateful NAT64 (`crate::nat64`) implements the same trait with its
//!   BIB and sessions and reuses every header rule here unchanged.
//!
//! # Entry points
//! [`translate_6to4`] and [`translate_4to6`] return a [`Verdict`]:
//! forward the buffer (now the other family), send it back out the ingress
//! side (an ICMP error the translator originated, or a hairpinned packet),
//! or drop it for a named [`DropReason`]. Additional packets (IPv6 fragments
//! of a large IPv4 packet) are passed to the `out` sink, in order, and go
//! out after the buffer itself.

pub mod config;
pub mod drop;
pub mod eamt;
mod express;
mod icmp;
pub mod prefix;
pub mod rfc6052;
pub mod siit;
mod util;
mod v4to6;
mod v6to4;

pub use config::{Config, ConfigError, IcmpRateLimit, Runtime, TosPolicy, UdpZeroChecksum};
pub use drop::DropReason;
pub use eamt::{Eam, Eamt, EamtError, Overlap};
pub(crate) use express::{express_4to6, express_6to4};
pub use prefix::{Prefix4, Prefix6, PrefixError};
pub use siit::SiitMapper;

use crate::buf::{BufAlloc, PacketBuf};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Upper-layer identifiers a mapper may read and rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Ids {
    /// TCP or UDP ports.
    Ports {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// ICMP / ICMPv6 echo identifier.
    IcmpId(u16),
    /// Not available: a non-first fragment, or a protocol without ports.
    None,
}

/// An IPv6 packet's identity, as seen by a [`Mapper`]. `proto` is the
/// upper-layer protocol number (58 for ICMPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple6 {
    /// Upper-layer protocol.
    pub proto: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Ports / identifier.
    pub ids: L4Ids,
}

/// An IPv4 packet's identity, as seen by a [`Mapper`]. `proto` is the
/// upper-layer protocol number (1 for ICMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple4 {
    /// Upper-layer protocol.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Ports / identifier.
    pub ids: L4Ids,
}

/// What a mapping request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapCtx {
    /// The outer header of an ICMP error: an untranslatable source may be
    /// replaced from the RFC 6791 pool.
    pub icmp_error: bool,
    /// The packet quoted inside an ICMP error: it travels in the reverse
    /// direction; stateful lookups must not create state.
    pub inner: bool,
    /// Second, IPv4 -> IPv6 half of an RFC 7757 §4 hairpinned packet.
    pub hairpin: bool,
}

/// Address (and port) mapping, the only thing that differs between SIIT
/// and stateful NAT64. See the module documentation.
pub trait Mapper {
    /// True when every mapping returns the ports and identifiers it was
    /// given (SIIT, RFC 7915): the header code then leaves them in place
    /// instead of writing the same values back.
    const KEEPS_IDS: bool = false;
    /// Map an IPv6 packet's tuple to IPv4. The returned `proto` is informational:
    /// the header code decides the IPv4 protocol itself.
    fn map_6to4(&mut self, t: &Tuple6, ctx: MapCtx) -> Result<Tuple4, DropReason>;
    /// Map an IPv4 packet's tuple to IPv6.
    fn map_4to6(&mut self, t: &Tuple4, ctx: MapCtx) -> Result<Tuple6, DropReason>;
    /// RFC 7757 §4: after translating `t6` into `t4`, should the IPv4
    /// packet be translated back to IPv6 and sent out the IPv6 side?
    /// Stateful translators answer false.
    fn hairpin(&self, _t6: &Tuple6, _t4: &Tuple4) -> bool {
        false
    }
    /// The express path's mapping (`express.rs`) of a UDP or TCP packet
    /// with these TCP flags: what `map_6to4` gives, when that is a plain
    /// translation (no hairpin) the mapper can make without creating
    /// state; `None`, having changed nothing, otherwise.
    fn express_6to4(&mut self, _t: &Tuple6, _tcp_flags: u8) -> Option<Tuple4> {
        None
    }
    /// [`Mapper::express_6to4`] for an IPv4 packet (`map_4to6`).
    fn express_4to6(&mut self, _t: &Tuple4, _tcp_flags: u8) -> Option<Tuple6> {
        None
    }
}

/// What to do with the buffer after translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The buffer holds the translated packet: send it out the other side.
    Forward,
    /// The buffer holds a packet of the ingress family again (RFC 7757 §4
    /// hairpinning): send it back out the ingress side.
    Hairpin,
    /// The buffer holds an ICMP error for the sender, to go back out the
    /// ingress side. The reason says why the original was not forwarded.
    Reply(DropReason),
    /// Drop the buffer. When the reason is a mapping failure (the
    /// [`Mapper`] said no) the buffer still holds the packet as received,
    /// less link padding: the caller may still answer it, e.g. with
    /// [`originate_icmp4_error`].
    Drop(DropReason),
}

/// Turn the IPv4 packet in `buf` into an ICMPv4 error about it, from
/// `cfg.own_v4` back to its source, the packet quoted up to 576 bytes in
/// all (RFC 1812 §4.3.2.3). Rate limited through `rt`; `reason` is returned
/// in [`Verdict::Reply`], or in [`Verdict::Drop`] when the limit (or a
/// multicast / unspecified source) forbids the error. The stateful engine
/// uses this for errors RFC 6146 asks for (e.g. port unreachable for a
/// packet with no binding).
pub fn originate_icmp4_error<B: PacketBuf>(
    cfg: &Config,
    rt: &mut Runtime,
    buf: &mut B,
    typ: u8,
    code: u8,
    rest: u32,
    reason: DropReason,
) -> Verdict {
    icmp::reply4(cfg, rt, buf, typ, code, rest, reason)
}

/// Turn the IPv6 packet in `buf` into an ICMPv6 error about it, from
/// `cfg.own_v6`, the whole error within 1280 bytes (RFC 4443 §2.4(c)).
/// `param` is the word after the checksum (MTU, pointer). Rate limited
/// like [`originate_icmp4_error`].
pub fn originate_icmp6_error<B: PacketBuf>(
    cfg: &Config,
    rt: &mut Runtime,
    buf: &mut B,
    typ: u8,
    code: u8,
    param: u32,
    reason: DropReason,
) -> Verdict {
    icmp::reply6(cfg, rt, buf, typ, code, param, reason)
}

/// Translate the IPv6 packet in `buf` to IPv4 (RFC 7915 §5).
///
/// IPv6 -> IPv4 itself never splits a packet; `alloc` and `out` serve a
/// hairpinned packet (RFC 7757 §4), whose second, IPv4 -> IPv6 half may.
pub fn translate_6to4<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    v6to4::translate(cfg, rt, mapper, buf, alloc, out)
}

/// Translate the IPv4 packet in `buf` to IPv6 (RFC 7915 §4). IPv6
/// fragments after the first are handed to `out`, in order.
pub fn translate_4to6<B, A, M, O>(
    cfg: &Config,
    rt: &mut Runtime,
    mapper: &mut M,
    buf: &mut B,
    alloc: &mut A,
    out: &mut O,
) -> Verdict
where
    B: PacketBuf,
    A: BufAlloc<Buf = B>,
    M: Mapper,
    O: FnMut(B),
{
    v4to6::translate(cfg, rt, mapper, buf, alloc, out, MapCtx::default())
}

#[cfg(test)]
mod tests;
