//! The session sync datagram, version 1 (docs/ha.md): a fixed header, fixed
//! 40-byte records, and an HMAC-SHA256 over everything before it. Views
//! name their field ranges; nothing is copied to read a field.
//!
//! ```text
//! header (72 bytes, big endian)      record (40 bytes)
//!  0..4   magic "N64S"                0     op: 1 create, 2 update, 3 delete
//!  4      version (1)                 1     protocol: 0 tcp, 1 udp, 2 icmp
//!  5      type                        2     TCP state (RFC 6146 §3.5.2), 0 else
//!  6..8   record count                3     reserved (0)
//!  8..16  sender id                   4..8  remaining lifetime, seconds
//!  16..24 sender epoch                8..24 IPv6 client address
//!  24..32 sequence number             24..26 IPv6 client port / ICMP id
//!  32..40 wall-clock time, unix ms    26..28 IPv4 mapping port / ICMP id
//!  40..72 instance name, NUL padded   28..32 IPv4 mapping address
//! records                             32..36 remote IPv4 address
//! HMAC-SHA256 (32 bytes)              36..38 remote port (0 for ICMP)
//!                                     38..40 reserved (0)
//! ```
//!
//! A resync request and an end of resync name no instance: bytes 40..72
//! carry the request's pace, or the end's summary, instead.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use dataplane::nat64::{Proto, SyncChange, SyncOp, TcpState};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// "N64S".
pub const MAGIC: [u8; 4] = *b"N64S";
/// The only version this build speaks.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 72;
/// Record length.
pub const RECORD_LEN: usize = 40;
/// HMAC-SHA256 tag length.
pub const MAC_LEN: usize = 32;
/// Largest datagram sent: fits a 1500-byte MTU over IPv6 (1500 - 40 - 8)
/// and IPv4 alike, so sync never relies on fragmentation.
pub const MAX_DATAGRAM: usize = 1452;
/// Records per datagram (33).
pub const MAX_RECORDS: usize = (MAX_DATAGRAM - HEADER_LEN - MAC_LEN) / RECORD_LEN;
/// Longest instance name (the configuration's limit too).
pub const NAME_LEN: usize = 32;

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const TYPE: usize = 5;
    pub const COUNT: Range<usize> = 6..8;
    pub const SENDER: Range<usize> = 8..16;
    pub const EPOCH: Range<usize> = 16..24;
    pub const SEQ: Range<usize> = 24..32;
    pub const TIME: Range<usize> = 32..40;
    pub const INSTANCE: Range<usize> = 40..72;
    /// End-of-resync marker only (it names no instance): the sequence
    /// number of the resync's first data datagram and how many were sent.
    pub const END_FIRST: Range<usize> = 40..48;
    pub const END_SENT: Range<usize> = 48..56;
    /// Resync request only (no instance either): how many times the
    /// answer's walk should double its gap between datagrams.
    pub const REQ_PACE: usize = 40;
}

mod rec {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const PROTO: usize = 1;
    pub const STATE: usize = 2;
    pub const RESERVED1: usize = 3;
    pub const LIFETIME: Range<usize> = 4..8;
    pub const V6_ADDR: Range<usize> = 8..24;
    pub const V6_PORT: Range<usize> = 24..26;
    pub const V4_PORT: Range<usize> = 26..28;
    pub const V4_ADDR: Range<usize> = 28..32;
    pub const R_ADDR: Range<usize> = 32..36;
    pub const R_PORT: Range<usize> = 36..38;
    pub const RESERVED2: Range<usize> = 38..40;
}

/// Longest lifetime a record may carry (TCP_EST is 2 h 4 min; a day is
/// far above any configurable timeout).
pub const MAX_LIFETIME_S: u32 = 86_400;

/// Message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// Live session changes.
    Batch = 1,
    /// "Send me all your sessions" (no records).
    ResyncRequest = 2,
    /// Sessions of a bulk resync or refresh walk.
    ResyncData = 3,
    /// A bulk resync is complete (no records; the instance field carries
    /// a [`ResyncSummary`] instead).
    ResyncEnd = 4,
}

impl MsgType {
    fn from_u8(v: u8) -> Option<MsgType> {
        match v {
            1 => Some(MsgType::Batch),
            2 => Some(MsgType::ResyncRequest),
            3 => Some(MsgType::ResyncData),
            4 => Some(MsgType::ResyncEnd),
            _ => None,
        }
    }
}

/// Why a datagram was not accepted (counted by name; none changes a table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reject {
    /// Short, bad magic, version or type, count not matching the length,
    /// or a record with an impossible field value.
    Malformed = 0,
    /// The HMAC does not verify: not from a holder of the key.
    Forged,
    /// A sequence number already accepted from this sender's epoch, or
    /// older than its window.
    Replayed,
    /// Wall-clock time outside the accepted window, or an older epoch of a
    /// known sender.
    Stale,
    /// No stateful instance of that name here.
    UnknownInstance,
}

impl Reject {
    /// Number of reasons.
    pub const COUNT: usize = 5;
    /// All reasons, in counter order.
    pub const ALL: [Reject; Self::COUNT] =
        [Reject::Malformed, Reject::Forged, Reject::Replayed, Reject::Stale, Reject::UnknownInstance];

    /// snake_case name for counters.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::Forged => "forged",
            Reject::Replayed => "replayed",
            Reject::Stale => "stale",
            Reject::UnknownInstance => "unknown_instance",
        }
    }
}

fn be16(b: &[u8], r: Range<usize>) -> u16 {
    let mut a = [0; 2];
    a.copy_from_slice(&b[r]);
    u16::from_be_bytes(a)
}

fn be32(b: &[u8], r: Range<usize>) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], r: Range<usize>) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

/// The keyed MAC of one appliance group.
#[derive(Clone)]
pub struct Key(Hmac<Sha256>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from the shared secret (any length works for HMAC; the
    /// configuration asks for at least 32 bytes).
    pub fn new(secret: &[u8]) -> Key {
        // HMAC accepts keys of every length: this cannot fail.
        Key(Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!()))
    }

    fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.0.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Whether `d`'s trailing tag is the MAC of the rest (constant time).
    fn verify(&self, d: &[u8]) -> bool {
        let (body, tag) = d.split_at(d.len() - MAC_LEN);
        let mut m = self.0.clone();
        m.update(body);
        m.verify_slice(tag).is_ok()
    }
}

/// The header fields a sender sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Message type.
    pub ty: MsgType,
    /// Sender id (stable across restarts).
    pub sender: u64,
    /// Sender epoch (new at every start, increasing).
    pub epoch: u64,
    /// Sequence number (per epoch, from 1).
    pub seq: u64,
    /// Wall-clock time, unix milliseconds.
    pub time_ms: u64,
    /// Instance the records belong to (empty for requests and ends).
    pub instance: &'a str,
}

/// Largest pace a resync request may ask for (a gap 64 times the usual).
pub const MAX_PACE: u8 = 6;

/// What an end-of-resync marker says was sent for that resync, so the
/// receiver can tell a complete resync from one that lost datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResyncSummary {
    /// Sequence number of the resync's first data datagram (0: none sent,
    /// or a sender that does not fill the summary in).
    pub first_seq: u64,
    /// Data datagrams sent for the resync, all in `first_seq..` the
    /// marker's own sequence number.
    pub datagrams: u64,
}

/// A datagram being filled: records are appended, then [`Builder::seal`]
/// writes the header and the MAC.
#[derive(Clone)]
pub struct Builder {
    buf: [u8; MAX_DATAGRAM],
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { buf: [0; MAX_DATAGRAM], count: 0 }
    }
}

impl Builder {
    /// Records so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No record yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// No room for another record.
    pub fn is_full(&self) -> bool {
        self.count == MAX_RECORDS
    }

    /// Appends a record; `false` when full.
    pub fn push(&mut self, c: &SyncChange) -> bool {
        if self.is_full() {
            return false;
        }
        let o = HEADER_LEN + self.count * RECORD_LEN;
        let r = &mut self.buf[o..o + RECORD_LEN];
        r.fill(0);
        r[rec::OP] = c.op as u8;
        r[rec::PROTO] = c.proto as u8;
        r[rec::STATE] = c.state.map_or(0, |s| s as u8);
        r[rec::LIFETIME].copy_from_slice(&c.lifetime_s.min(MAX_LIFETIME_S).to_be_bytes());
        r[rec::V6_ADDR].copy_from_slice(&c.v6.0.octets());
        r[rec::V6_PORT].copy_from_slice(&c.v6.1.to_be_bytes());
        r[rec::V4_PORT].copy_from_slice(&c.v4.1.to_be_bytes());
        r[rec::V4_ADDR].copy_from_slice(&c.v4.0.octets());
        r[rec::R_ADDR].copy_from_slice(&c.remote.0.octets());
        r[rec::R_PORT].copy_from_slice(&c.remote.1.to_be_bytes());
        self.count += 1;
        true
    }

    /// Writes `h` and the MAC; returns the datagram. The records stay, so
    /// the caller [`clear`](Builder::clear)s after sending.
    pub fn seal(&mut self, h: &Header, key: &Key) -> &[u8] {
        self.seal_with(h, key, Extra::None)
    }

    /// Seals a resync request (no records) asking for `pace` (see
    /// [`Datagram::resync_pace`]).
    pub fn seal_request(&mut self, h: &Header, key: &Key, pace: u8) -> &[u8] {
        self.clear();
        let h = Header { ty: MsgType::ResyncRequest, instance: "", ..*h };
        self.seal_with(&h, key, Extra::Pace(pace.min(MAX_PACE)))
    }

    /// Seals an end-of-resync marker (no records) carrying `s`.
    pub fn seal_end(&mut self, h: &Header, key: &Key, s: ResyncSummary) -> &[u8] {
        self.clear();
        self.seal_with(&Header { ty: MsgType::ResyncEnd, instance: "", ..*h }, key, Extra::End(s))
    }

    fn seal_with(&mut self, h: &Header, key: &Key, extra: Extra) -> &[u8] {
        let b = &mut self.buf;
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
        b[field::TYPE] = h.ty as u8;
        b[field::COUNT].copy_from_slice(&(self.count as u16).to_be_bytes());
        b[field::SENDER].copy_from_slice(&h.sender.to_be_bytes());
        b[field::EPOCH].copy_from_slice(&h.epoch.to_be_bytes());
        b[field::SEQ].copy_from_slice(&h.seq.to_be_bytes());
        b[field::TIME].copy_from_slice(&h.time_ms.to_be_bytes());
        let name = h.instance.as_bytes();
        let n = name.len().min(NAME_LEN);
        b[field::INSTANCE].fill(0);
        b[field::INSTANCE.start..field::INSTANCE.start + n].copy_from_slice(&name[..n]);
        match extra {
            Extra::None => {}
            Extra::End(s) => {
                b[field::END_FIRST].copy_from_slice(&s.first_seq.to_be_bytes());
                b[field::END_SENT].copy_from_slice(&s.datagrams.to_be_bytes());
            }
            Extra::Pace(p) => b[field::REQ_PACE] = p,
        }
        let end = HEADER_LEN + self.count * RECORD_LEN;
        let tag = key.tag(&b[..end]);
        b[end..end + MAC_LEN].copy_from_slice(&tag);
        &self.buf[..end + MAC_LEN]
    }

    /// Drops the records.
    pub fn clear(&mut self) {
        self.count = 0;
    }
}

/// What a request or an end marker carries in place of an instance name.
#[derive(Clone, Copy)]
enum Extra {
    None,
    End(ResyncSummary),
    Pace(u8),
}

/// A datagram whose MAC verified and whose layout is consistent: fields
/// are read in place.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    buf: &'a [u8],
}

impl<'a> Datagram<'a> {
    /// Checks length, magic and version, then the MAC, then the type and
    /// the record count against the length. Records are checked by
    /// [`Datagram::records`].
    pub fn parse(buf: &'a [u8], key: &Key) -> Result<Datagram<'a>, Reject> {
        if buf.len() < HEADER_LEN + MAC_LEN || buf.len() > MAX_DATAGRAM {
            return Err(Reject::Malformed);
        }
        if buf[field::MAGIC] != MAGIC || buf[field::VERSION] != VERSION {
            return Err(Reject::Malformed);
        }
        // Authenticate before believing any other field.
        if !key.verify(buf) {
            return Err(Reject::Forged);
        }
        let d = Datagram { buf };
        let n = usize::from(be16(buf, field::COUNT));
        if MsgType::from_u8(buf[field::TYPE]).is_none() || HEADER_LEN + n * RECORD_LEN + MAC_LEN != buf.len()
        {
            return Err(Reject::Malformed);
        }
        if matches!(d.ty(), MsgType::ResyncRequest | MsgType::ResyncEnd) && n != 0 {
            return Err(Reject::Malformed);
        }
        if matches!(d.ty(), MsgType::Batch | MsgType::ResyncData) && d.instance().is_none() {
            return Err(Reject::Malformed);
        }
        Ok(d)
    }

    /// Message type.
    pub fn ty(&self) -> MsgType {
        MsgType::from_u8(self.buf[field::TYPE]).unwrap_or(MsgType::Batch)
    }
    /// Records.
    pub fn count(&self) -> usize {
        usize::from(be16(self.buf, field::COUNT))
    }
    /// Sender id.
    pub fn sender(&self) -> u64 {
        be64(self.buf, field::SENDER)
    }
    /// Sender epoch.
    pub fn epoch(&self) -> u64 {
        be64(self.buf, field::EPOCH)
    }
    /// Sequence number.
    pub fn seq(&self) -> u64 {
        be64(self.buf, field::SEQ)
    }
    /// Wall-clock time, unix ms.
    pub fn time_ms(&self) -> u64 {
        be64(self.buf, field::TIME)
    }
    /// Instance name (`None`: not UTF-8, or bytes after the padding).
    pub fn instance(&self) -> Option<&'a str> {
        let f = &self.buf[field::INSTANCE];
        let n = f.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        if f[n..].iter().any(|&b| b != 0) {
            return None;
        }
        std::str::from_utf8(&f[..n]).ok()
    }

    /// The summary of an end-of-resync marker (`None` for other types).
    pub fn resync_summary(&self) -> Option<ResyncSummary> {
        (self.ty() == MsgType::ResyncEnd).then(|| ResyncSummary {
            first_seq: be64(self.buf, field::END_FIRST),
            datagrams: be64(self.buf, field::END_SENT),
        })
    }

    /// How many times a resync request asks the answer's walk to double
    /// its datagram gap (capped at [`MAX_PACE`]; `None` for other types).
    pub fn resync_pace(&self) -> Option<u8> {
        (self.ty() == MsgType::ResyncRequest).then(|| self.buf[field::REQ_PACE].min(MAX_PACE))
    }

    /// Decodes every record into `out` (cleared first); `Malformed` if
    /// any field has a value no sender writes (then `out` is unusable).
    pub fn records(&self, out: &mut Vec<SyncChange>) -> Result<(), Reject> {
        out.clear();
        for i in 0..self.count() {
            let o = HEADER_LEN + i * RECORD_LEN;
            out.push(decode(&self.buf[o..o + RECORD_LEN]).ok_or(Reject::Malformed)?);
        }
        Ok(())
    }
}

fn decode(r: &[u8]) -> Option<SyncChange> {
    let op = SyncOp::from_u8(r[rec::OP])?;
    let proto = match r[rec::PROTO] {
        0 => Proto::Tcp,
        1 => Proto::Udp,
        2 => Proto::Icmp,
        _ => return None,
    };
    // TCP carries a stored state (1-7: CLOSED is never stored); UDP and
    // ICMP carry none.
    let state = match (proto, r[rec::STATE]) {
        (Proto::Tcp, s @ 1..=7) => Some(TcpState::from_u8(s)),
        (Proto::Tcp, _) => return None,
        (_, 0) => None,
        _ => return None,
    };
    if r[rec::RESERVED1] != 0 || r[rec::RESERVED2] != [0, 0] {
        return None;
    }
    let lifetime_s = be32(r, rec::LIFETIME);
    if lifetime_s > MAX_LIFETIME_S {
        return None;
    }
    let mut a6 = [0; 16];
    a6.copy_from_slice(&r[rec::V6_ADDR]);
    let v6 = (Ipv6Addr::from(a6), be16(r, rec::V6_PORT));
    let v4 = (Ipv4Addr::from(be32(r, rec::V4_ADDR)), be16(r, rec::V4_PORT));
    let remote = (Ipv4Addr::from(be32(r, rec::R_ADDR)), be16(r, rec::R_PORT));
    // RFC 6146 §3.5.3: ICMP query sessions have no remote port.
    if proto == Proto::Icmp && remote.1 != 0 {
        return None;
    }
    // Ports 0 are never allocated for TCP/UDP; a mapping or remote in
    // 0.0.0.0, multicast or broadcast space is not a session.
    let bad4 = |a: Ipv4Addr| a.is_unspecified() || a.is_multicast() || a.is_broadcast();
    let port0 = proto != Proto::Icmp && (v6.1 == 0 || v4.1 == 0 || remote.1 == 0);
    if port0 || bad4(v4.0) || bad4(remote.0) || v6.0.is_unspecified() || v6.0.is_multicast() {
        return None;
    }
    Some(SyncChange { op, proto, state, v6, v4, remote, lifetime_s })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn change(i: u16) -> SyncChange {
        SyncChange {
            op: SyncOp::Create,
            proto: if i % 2 == 0 { Proto::Tcp } else { Proto::Udp },
            state: (i % 2 == 0).then_some(TcpState::Established),
            v6: (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i), 40000 + i),
            v4: (Ipv4Addr::new(203, 0, 113, 1), 2000 + i),
            remote: (Ipv4Addr::new(198, 51, 100, 2), 443),
            lifetime_s: 100 + u32::from(i),
        }
    }

    pub(crate) fn header(seq: u64) -> Header<'static> {
        Header { ty: MsgType::Batch, sender: 7, epoch: 9, seq, time_ms: 1_000_000, instance: "plat" }
    }

    #[test]
    fn round_trip_fills_an_mtu() {
        let key = Key::new(&[7; 32]);
        let mut b = Builder::default();
        let mut n = 0;
        while b.push(&change(n)) {
            n += 1;
        }
        assert_eq!(usize::from(n), MAX_RECORDS);
        assert_eq!(MAX_RECORDS, 33);
        let d = b.seal(&header(5), &key).to_vec();
        assert!(d.len() <= MAX_DATAGRAM);
        let p = Datagram::parse(&d, &key).unwrap();
        assert_eq!(
            (p.ty(), p.sender(), p.epoch(), p.seq(), p.time_ms()),
            (MsgType::Batch, 7, 9, 5, 1_000_000)
        );
        assert_eq!(p.instance(), Some("plat"));
        let mut out = Vec::new();
        p.records(&mut out).unwrap();
        assert_eq!(out, (0..n).map(change).collect::<Vec<_>>());
        let icmp =
            SyncChange { proto: Proto::Icmp, state: None, remote: (change(1).remote.0, 0), ..change(1) };
        let del = SyncChange { op: SyncOp::Delete, ..icmp };
        b.clear();
        b.push(&del);
        let d = b.seal(&header(6), &key).to_vec();
        Datagram::parse(&d, &key).unwrap().records(&mut out).unwrap();
        assert_eq!(out, vec![del]);
    }

    #[test]
    fn end_marker_carries_its_resync_summary() {
        let key = Key::new(&[7; 32]);
        let mut b = Builder::default();
        b.push(&change(1));
        let s = ResyncSummary { first_seq: 12, datagrams: 152 };
        let d = b.seal_end(&header(170), &key, s).to_vec();
        let p = Datagram::parse(&d, &key).unwrap();
        assert_eq!((p.ty(), p.count(), p.resync_summary()), (MsgType::ResyncEnd, 0, Some(s)));
        // A marker without one reads as "nothing known" (first_seq 0).
        let h = Header { ty: MsgType::ResyncEnd, instance: "", ..header(171) };
        let d = b.seal(&h, &key).to_vec();
        assert_eq!(Datagram::parse(&d, &key).unwrap().resync_summary(), Some(ResyncSummary::default()));
        let d = b.seal(&header(172), &key).to_vec();
        assert_eq!(Datagram::parse(&d, &key).unwrap().resync_summary(), None);
        // A request carries its pace, capped.
        let d = b.seal_request(&header(173), &key, 2).to_vec();
        assert_eq!(Datagram::parse(&d, &key).unwrap().resync_pace(), Some(2));
        let d = b.seal_request(&header(174), &key, 200).to_vec();
        assert_eq!(Datagram::parse(&d, &key).unwrap().resync_pace(), Some(MAX_PACE));
    }

    #[test]
    fn forged_truncated_and_garbage_are_rejected() {
        let key = Key::new(b"0123456789abcdef0123456789abcdef");
        let mut b = Builder::default();
        b.push(&change(1));
        let d = b.seal(&header(1), &key).to_vec();
        assert_eq!(
            Datagram::parse(&d, &Key::new(b"another key of 32 bytes or more..")).err(),
            Some(Reject::Forged)
        );
        let mut flipped = d.clone();
        flipped[HEADER_LEN + 9] ^= 1;
        assert_eq!(Datagram::parse(&flipped, &key).err(), Some(Reject::Forged));
        for cut in [0, 10, HEADER_LEN, d.len() - 1] {
            let r = Datagram::parse(&d[..cut], &key).err();
            assert!(matches!(r, Some(Reject::Malformed | Reject::Forged)), "{cut}: {r:?}");
        }
        assert_eq!(Datagram::parse(&[0xa5; 200], &key).err(), Some(Reject::Malformed));
        let mut v2 = d.clone();
        v2[field::VERSION] = 2;
        assert_eq!(Datagram::parse(&v2, &key).err(), Some(Reject::Malformed));
    }

    /// A datagram with a valid MAC over whatever bytes `edit` leaves.
    pub(crate) fn resealed(key: &Key, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = Builder::default();
        b.push(&change(1));
        b.push(&change(2));
        let mut d = b.seal(&header(1), key).to_vec();
        d.truncate(d.len() - MAC_LEN);
        edit(&mut d);
        let tag = key.tag(&d);
        d.extend_from_slice(&tag);
        d
    }

    #[test]
    fn authenticated_but_inconsistent_is_malformed() {
        let key = Key::new(&[1; 32]);
        let count = resealed(&key, |d| d[field::COUNT.end - 1] = 3);
        assert_eq!(Datagram::parse(&count, &key).err(), Some(Reject::Malformed));
        let ty = resealed(&key, |d| d[field::TYPE] = 9);
        assert_eq!(Datagram::parse(&ty, &key).err(), Some(Reject::Malformed));
        let req = resealed(&key, |d| d[field::TYPE] = MsgType::ResyncRequest as u8);
        assert_eq!(Datagram::parse(&req, &key).err(), Some(Reject::Malformed));
        let name = resealed(&key, |d| d[field::INSTANCE.end - 1] = b'x');
        assert_eq!(Datagram::parse(&name, &key).err(), Some(Reject::Malformed));
        let r2 = HEADER_LEN + RECORD_LEN;
        for (off, v) in [
            (rec::OP, 0),
            (rec::OP, 4),
            (rec::PROTO, 3),
            (rec::STATE, 0),
            (rec::STATE, 8),
            (rec::RESERVED1, 1),
            (rec::LIFETIME.start, 0xff),
            (rec::V4_ADDR.start, 224),
            (rec::R_PORT.start, 0),
        ] {
            let d = resealed(&key, |d| {
                d[r2 + off] = v;
                if off == rec::R_PORT.start {
                    d[r2 + off + 1] = 0;
                }
            });
            let p = Datagram::parse(&d, &key).unwrap();
            assert_eq!(p.records(&mut Vec::new()), Err(Reject::Malformed), "byte {off} = {v}");
        }
    }
}
