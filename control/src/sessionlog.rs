//! Session and BIB logging for abuse reports: one JSON line per create and
//! delete event (time, protocol, IPv6 source, IPv4 mapping, destination),
//! to a file or stdout. With port blocks, one line per block allocated and
//! released instead ([`BlockRecord`]: client prefix, IPv4 address, ports).
//!
//! Off the packet path: workers push [`Event`]s into bounded queues (a full
//! queue drops the event and the shard counts it); the control thread
//! drains them here in bounded rounds. Write failures are counted too, so
//! every lost record shows in `nat64_session_log_events_total`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam::queue::ArrayQueue;
use dataplane::nat64::{Event, EventKind};
use serde::{Deserialize, Serialize};

use crate::config::SessionLog as Target;

/// Maps the workers' millisecond clock to wall-clock time: one pair of
/// readings taken together at start.
#[derive(Debug, Clone, Copy)]
pub struct TimeBase {
    /// The workers' `now` (ms) at `wall`.
    pub mono_ms: u64,
    /// Wall-clock time at `mono_ms`.
    pub wall: SystemTime,
}

impl TimeBase {
    /// Wall-clock time of a worker timestamp.
    pub fn wall(&self, ms: u64) -> SystemTime {
        if ms >= self.mono_ms {
            self.wall + Duration::from_millis(ms - self.mono_ms)
        } else {
            self.wall - Duration::from_millis(self.mono_ms - ms)
        }
    }
}

/// Records written and lost (shared with the metrics).
#[derive(Debug, Default)]
pub struct Counts {
    /// Lines written.
    pub written: AtomicU64,
    /// Events drained but not written (the target failed).
    pub write_failed: AtomicU64,
}

/// The event name in a record.
pub fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::BibCreated => "bib_created",
        EventKind::BibDeleted => "bib_deleted",
        EventKind::SessionCreated => "session_created",
        EventKind::SessionDeleted => "session_deleted",
        EventKind::BlockAllocated => "block_allocated",
        EventKind::BlockReleased => "block_released",
    }
}

/// The line of a port-block event; `nat64ctl lookup --log` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// RFC 3339 time, milliseconds, UTC.
    pub time: String,
    /// `block_allocated` or `block_released`.
    pub event: String,
    /// Instance name.
    pub instance: String,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// The client, `2001:db8:a:b::/64`.
    pub ipv6_prefix: String,
    /// The block's IPv4 address.
    pub ipv4: String,
    /// First port (or ICMP identifier) of the block.
    pub port_first: u16,
    /// Last port of the block.
    pub port_last: u16,
}

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    event: &'static str,
    instance: &'a str,
    protocol: &'static str,
    ipv6: String,
    ipv6_port: u16,
    ipv4: String,
    ipv4_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_port: Option<u16>,
}

/// One event as its JSON line (without the newline).
pub fn line(ev: &Event, instance: &str, base: &TimeBase) -> String {
    let time = humantime::format_rfc3339_millis(base.wall(ev.time_ms)).to_string();
    if ev.is_block() {
        let r = BlockRecord {
            time,
            event: kind_name(ev.kind).into(),
            instance: instance.into(),
            protocol: ev.proto.name().into(),
            ipv6_prefix: format!("{}/{}", ev.v6.0, ev.v6.1),
            ipv4: ev.v4.0.to_string(),
            port_first: ev.v4.1,
            port_last: ev.remote.1,
        };
        return serde_json::to_string(&r).unwrap_or_default();
    }
    let is_session = matches!(ev.kind, EventKind::SessionCreated | EventKind::SessionDeleted);
    let r = Record {
        time,
        event: kind_name(ev.kind),
        instance,
        protocol: ev.proto.name(),
        ipv6: ev.v6.0.to_string(),
        ipv6_port: ev.v6.1,
        ipv4: ev.v4.0.to_string(),
        ipv4_port: ev.v4.1,
        // BIB events have no remote end.
        remote: is_session.then(|| ev.remote.0.to_string()),
        remote_port: is_session.then_some(ev.remote.1),
    };
    serde_json::to_string(&r).unwrap_or_default()
}

/// The writer side of the session log.
pub struct SessionLog {
    target: Target,
    out: Option<Box<dyn Write + Send>>,
    base: TimeBase,
    /// What was written and lost.
    pub counts: Arc<Counts>,
}

fn open(target: &Target) -> io::Result<Option<Box<dyn Write + Send>>> {
    Ok(match target {
        Target::Off => None,
        Target::Stdout => Some(Box::new(BufWriter::new(io::stdout()))),
        Target::File(p) => {
            // Records name subscribers: not world-readable.
            let f: File = OpenOptions::new().create(true).append(true).mode(0o640).open(p)?;
            Some(Box::new(BufWriter::new(f)))
        }
    })
}

impl SessionLog {
    /// Open `target` (a file is created if absent and appended to).
    pub fn open(target: &Target, base: TimeBase) -> io::Result<SessionLog> {
        Ok(SessionLog { target: target.clone(), out: open(target)?, base, counts: Arc::default() })
    }

    /// Where records go now.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Switch to another target (hot reload). On error the old one stays.
    pub fn retarget(&mut self, target: &Target) -> io::Result<()> {
        if *target == self.target {
            return Ok(());
        }
        let out = open(target)?;
        self.flush();
        self.out = out;
        self.target = target.clone();
        Ok(())
    }

    /// Write up to `budget` events of `instance` from `q`; returns how many
    /// were taken. With the log off, events are taken and discarded.
    pub fn drain(&mut self, q: &ArrayQueue<Event>, instance: &str, budget: usize) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(ev) = q.pop() else { break };
            n += 1;
            let Some(out) = self.out.as_mut() else { continue };
            let mut l = line(&ev, instance, &self.base);
            l.push('\n');
            match out.write_all(l.as_bytes()) {
                Ok(()) => self.counts.written.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.counts.write_failed.fetch_add(1, Ordering::Relaxed),
            };
        }
        n
    }

    /// Push buffered lines out (after each drain round).
    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if out.flush().is_err() {
                self.counts.write_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::nat64::Proto;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ev(kind: EventKind, t: u64) -> Event {
        Event {
            time_ms: t,
            kind,
            proto: Proto::Tcp,
            v6: ("2001:db8:1::7".parse::<Ipv6Addr>().unwrap(), 40000),
            v4: (Ipv4Addr::new(203, 0, 113, 3), 61000),
            remote: (Ipv4Addr::new(198, 51, 100, 9), 443),
        }
    }

    fn base() -> TimeBase {
        // 2026-01-01T00:00:00Z at worker time 5000 ms.
        TimeBase { mono_ms: 5000, wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600) }
    }

    #[test]
    fn session_event_line_has_every_field() {
        let l = line(&ev(EventKind::SessionCreated, 6250), "plat", &base());
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["time"], "2026-01-01T00:00:01.250Z");
        assert_eq!(v["event"], "session_created");
        assert_eq!(v["instance"], "plat");
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["ipv6"], "2001:db8:1::7");
        assert_eq!(v["ipv6_port"], 40000);
        assert_eq!(v["ipv4"], "203.0.113.3");
        assert_eq!(v["ipv4_port"], 61000);
        assert_eq!(v["remote"], "198.51.100.9");
        assert_eq!(v["remote_port"], 443);
    }

    #[test]
    fn bib_event_has_no_remote_and_time_before_base_works() {
        let l = line(&ev(EventKind::BibDeleted, 4000), "plat", &base());
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["event"], "bib_deleted");
        assert_eq!(v["time"], "2025-12-31T23:59:59.000Z");
        assert!(v.get("remote").is_none());
    }

    #[test]
    fn block_event_line_names_prefix_address_and_ports() {
        let c = ("2001:db8:a:b::".parse::<Ipv6Addr>().unwrap(), 64);
        let a = Ipv4Addr::new(192, 0, 2, 7);
        let e = Event::block(6000, EventKind::BlockAllocated, Proto::Udp, c, a, (40000, 40511));
        let l = line(&e, "plat", &base());
        let r: BlockRecord = serde_json::from_str(&l).unwrap();
        assert_eq!(r.time, "2026-01-01T00:00:01.000Z");
        assert_eq!(r.event, "block_allocated");
        assert_eq!((r.protocol.as_str(), r.ipv6_prefix.as_str()), ("udp", "2001:db8:a:b::/64"));
        assert_eq!((r.ipv4.as_str(), r.port_first, r.port_last), ("192.0.2.7", 40000, 40511));
        assert!(!l.contains("remote"));
    }

    #[test]
    fn drain_is_bounded_and_writes_lines_to_the_file() {
        let dir = std::env::temp_dir().join(format!("nat64-slog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("sessions.log");
        let _ = std::fs::remove_file(&p);
        let mut log = SessionLog::open(&Target::File(p.clone()), base()).unwrap();
        let q = ArrayQueue::new(8);
        for t in 0..5 {
            q.push(ev(EventKind::SessionCreated, 5000 + t)).unwrap();
        }
        assert_eq!(log.drain(&q, "plat", 3), 3, "budget");
        assert_eq!(log.drain(&q, "plat", 100), 2);
        log.flush();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 5);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o007, 0, "not world-readable");
        assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        assert_eq!(log.counts.written.load(Ordering::Relaxed), 5);
        // Off: drained and discarded, nothing counted as written.
        log.retarget(&Target::Off).unwrap();
        q.push(ev(EventKind::SessionDeleted, 9000)).unwrap();
        assert_eq!(log.drain(&q, "plat", 10), 1);
        assert_eq!(log.counts.written.load(Ordering::Relaxed), 5);
        // A target that cannot be opened keeps the old one.
        assert!(log.retarget(&Target::File(dir.join("no/such/dir/x.log"))).is_err());
        assert_eq!(log.target(), &Target::Off);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A writer that always fails: lost records are counted.
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_failures_are_counted() {
        let mut log = SessionLog::open(&Target::Off, base()).unwrap();
        log.out = Some(Box::new(Broken));
        let q = ArrayQueue::new(4);
        q.push(ev(EventKind::BibCreated, 1)).unwrap();
        q.push(ev(EventKind::BibCreated, 2)).unwrap();
        log.drain(&q, "plat", 10);
        assert_eq!(log.counts.write_failed.load(Ordering::Relaxed), 2);
        assert_eq!(log.counts.written.load(Ordering::Relaxed), 0);
    }
}
