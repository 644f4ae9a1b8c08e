//! Session sync between two real `nat64d` processes over loopback UDP:
//! sessions created on A (IPv6 UDP clients replayed by net_pcap) appear on
//! B with the same mappings; a datagram forged with another key, a replay
//! of one A really sent (captured by a third peer socket), and malformed
//! ones are counted by reason and change nothing; a restarted B gets a
//! bulk resync.

#[path = "deploy_common.rs"]
mod common;
mod support;

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control::sync::wire::{Builder, Datagram, Header, Key, MsgType, HEADER_LEN, MAC_LEN};
use dataplane::nat64::{Proto, SyncChange, SyncOp};
use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use serde_json::Value;

const CLIENTS: u16 = 4;
const KEY: [u8; 32] = [0x5c; 32];

struct Node {
    child: Option<Child>,
    dir: PathBuf,
    tag: String,
    socket: PathBuf,
    http: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// IPv6 UDP datagrams from `flows` client ports to 198.51.100.9:53.
fn write_input(path: &Path, flows: u16) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let src: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:64::c633:6409".parse().unwrap();
    for k in 0..flows {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 6, 2], [2, 0, 0, 0, 6, 1])
            .ipv6(src.octets(), dst.octets(), 64)
            .udp(10000 + k, 53);
        let mut frame = Vec::new();
        b.write(&mut frame, &[0x42u8; 32]).unwrap();
        w.write_packet(&PcapPacket::new(Duration::ZERO, frame.len() as u32, &frame)).unwrap();
    }
}

impl Node {
    /// A daemon syncing from `me` to `peers`; `flows` IPv6 UDP clients
    /// replayed without end (0: both sides are silent net_null devices).
    fn new(name: &str, me: u16, peers: &[u16], flows: u16) -> Node {
        let tag = format!("sy{name}{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("nat64-sync-e2e-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.join("sync.key");
        std::fs::write(&key, KEY).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let v6dev = if flows > 0 {
            write_input(&dir.join("in6.pcap"), flows);
            format!("net_pcap_{tag}6,rx_pcap={}/in6.pcap,infinite_rx=1", dir.display())
        } else {
            format!("net_null_{tag}6,no-rx=1")
        };
        let mem = if std::env::var("NAT64_TEST_HUGEPAGES").as_deref() == Ok("1") {
            "\"--in-memory\"".to_string()
        } else {
            format!(
                "\"--no-huge\", \"-m\", \"{}\", \"--no-shconf\", \"--file-prefix={tag}\"",
                if flows > 1000 { 512 } else { 256 }
            )
        };
        let peers: Vec<String> = peers.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let socket = dir.join("control.sock");
        let http: SocketAddr = format!("127.0.0.1:{}", common::free_port()).parse().unwrap();
        let yaml = format!(
            r#"dpdk:
  eal_args: ["-l", "0", "--no-pci", {mem}, "--log-level=*:error"]
  mbufs: {mbufs}
{plat}management:
  control_socket: {socket}
  http_listen: "{http}"
sync:
  listen: "127.0.0.1:{me}"
  peers: [{peers}]
  key_file: {key}
  flush_ms: 5
  refresh_s: 2
"#,
            plat = support::plat_yaml(&tag, &v6dev, "203.0.113.0/28"),
            socket = socket.display(),
            // net_pcap holds the whole capture in mbufs.
            mbufs = (u32::from(flows) + 8192).next_power_of_two() - 1,
            peers = peers.join(", "),
            key = key.display(),
        );
        std::fs::write(dir.join("nat64d.yaml"), yaml).unwrap();
        let mut n = Node { child: None, dir, tag, socket, http };
        n.start();
        n
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.dir.join("nat64d.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nat64d"))
            .arg("--config")
            .arg(self.dir.join("nat64d.yaml"))
            .env("NAT64D_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nat64d");
        self.child = Some(child);
        let t = Instant::now();
        while common::get(self.http, "/readyz").0 != 200 {
            assert!(t.elapsed() < Duration::from_secs(30), "{} not ready:\n{}", self.tag, self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nat64d.log")).unwrap_or_default()
    }

    /// (IPv6, port, IPv4, port) of every session, sorted.
    fn sessions(&self) -> Vec<(String, u64, String, u64)> {
        let o = Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(["session", "list", "--format", "json"])
            .output()
            .expect("run nat64ctl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let mut out: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let str = |k: &str| s[k].as_str().unwrap().to_string();
                (str("ipv6"), s["ipv6_port"].as_u64().unwrap(), str("ipv4"), s["ipv4_port"].as_u64().unwrap())
            })
            .collect();
        out.sort();
        out
    }

    /// Sum of a metric family's samples whose labels include `labels`.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, body) = common::get(self.http, "/metrics");
        assert_eq!(status, 200, "{body}");
        common::sum(&common::parse(&body), name, labels)
    }

    fn wait(&self, what: &str, ok: impl Fn(&Node) -> bool) {
        let t = Instant::now();
        while !ok(self) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{}: timed out waiting for {what}\n{}",
                self.tag,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A one-record datagram sealed with `key`.
fn sealed(key: &[u8], seq: u64) -> Vec<u8> {
    let c = SyncChange {
        op: SyncOp::Create,
        proto: Proto::Udp,
        state: None,
        v6: ("2001:db8:1::77".parse().unwrap(), 7777),
        v4: ("203.0.113.1".parse().unwrap(), 2500),
        remote: ("198.51.100.9".parse().unwrap(), 53),
        lifetime_s: 300,
    };
    let mut b = Builder::default();
    b.push(&c);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let h = Header { ty: MsgType::Batch, sender: 0x7e57, epoch: 1, seq, time_ms: now, instance: "plat" };
    b.seal(&h, &Key::new(key)).to_vec()
}

/// `d` after `edit`, with its MAC computed again with the real key (what
/// a buggy but key-holding sender would send).
fn resealed(mut d: Vec<u8>, edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    use hmac::Mac;
    let n = d.len() - MAC_LEN;
    edit(&mut d[..n]);
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&KEY).unwrap();
    m.update(&d[..n]);
    d[n..].copy_from_slice(&m.finalize().into_bytes());
    d
}

#[test]
fn sessions_sync_between_two_daemons() {
    let (pa, pb) = (free_udp(), free_udp());
    let tap = UdpSocket::bind("127.0.0.1:0").unwrap();
    tap.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let pt = tap.local_addr().unwrap().port();
    let mut b = Node::new("b", pb, &[pa], 0);
    let a = Node::new("a", pa, &[pb, pt], CLIENTS);

    // --- sessions created on A appear on B --------------------------------
    a.wait("A's sessions", |a| a.sessions().len() == usize::from(CLIENTS));
    let want = a.sessions();
    b.wait("B's copies", |b| b.sessions() == want);
    assert!(b.metric("nat64_sync_sessions_total", &[("direction", "received")]) >= f64::from(CLIENTS));
    assert!(a.metric("nat64_sync_batches_total", &[("direction", "sent")]) >= 1.0);
    assert_eq!(b.metric("nat64_sessions", &[("instance", "plat")]), f64::from(CLIENTS));
    let o = Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
        .arg("--socket")
        .arg(&b.socket)
        .arg("stats")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("sync:") && text.contains("sessions_received"), "{text}");

    // --- forged, replayed, malformed: counted, nothing changes -------------
    let key = Key::new(&KEY);
    let to_b: SocketAddr = format!("127.0.0.1:{pb}").parse().unwrap();
    let inject = |d: &[u8], reason: &str| {
        let before = b.metric("nat64_sync_rejected_total", &[("reason", reason)]);
        tap.send_to(d, to_b).unwrap();
        b.wait(reason, |b| b.metric("nat64_sync_rejected_total", &[("reason", reason)]) == before + 1.0);
        assert_eq!(b.sessions(), want, "{reason} changed B's table");
    };
    inject(&sealed(b"another key, also 32 bytes long..", 1), "forged");
    // A datagram A really sent (the tap is A's second peer), after B took it.
    let captured = loop {
        let mut buf = [0u8; 2048];
        let (n, _) = tap.recv_from(&mut buf).expect("A sends to the tap");
        let d = buf[..n].to_vec();
        if Datagram::parse(&d, &key).is_ok_and(|p| p.count() > 0) {
            break d;
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    inject(&captured, "replayed");
    inject(&[0x5a; 300], "malformed");
    let mut short = captured.clone();
    short.truncate(HEADER_LEN + MAC_LEN - 1);
    inject(&short, "malformed");
    // Authentic (the test holds the key) but the count does not match.
    inject(&resealed(sealed(&KEY, 1), |d| d[7] = 2), "malformed");
    // Authentic but from 1970.
    inject(&resealed(sealed(&KEY, 1), |d| d[32..40].copy_from_slice(&1_000u64.to_be_bytes())), "stale");

    // --- a restarted B gets a bulk resync ---------------------------------
    let served = a.metric("nat64_sync_resyncs_total", &[("kind", "served")]);
    b.kill();
    b.start();
    b.wait("resync after restart", |b| b.metric("nat64_sync_resyncs_total", &[("kind", "received")]) >= 1.0);
    b.wait("B's copies after restart", |b| b.sessions() == want);
    assert!(a.metric("nat64_sync_resyncs_total", &[("kind", "served")]) > served);
    assert_eq!(b.metric("nat64_sync_rejected_total", &[("reason", "forged")]), 0.0, "a fresh process");
}

/// Sessions synced per second between two processes (perf/README.md):
/// A creates `NAT64_SYNC_FLOWS` (default 40 000) sessions from a replayed
/// capture; B counts what arrives. Prints the figure; asserts only that
/// every session arrived.
#[test]
#[ignore = "measurement: cargo test -p control --test sync_e2e -- --ignored --nocapture"]
fn sync_rate() {
    let flows: u16 = std::env::var("NAT64_SYNC_FLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(40_000);
    let (pa, pb) = (free_udp(), free_udp());
    let mut b = Node::new("rb", pb, &[pa], 0);
    let sessions = |n: &Node| n.metric("nat64_sessions", &[("instance", "plat")]);
    let t0 = Instant::now();
    let a = Node::new("ra", pa, &[pb], flows);
    let mut first = None;
    let mut a_done = None;
    loop {
        if a_done.is_none() && sessions(&a) >= f64::from(flows) {
            a_done = Some(Instant::now());
        }
        let n = sessions(&b);
        if n > 0.0 && first.is_none() {
            first = Some((Instant::now(), n));
        }
        if n >= f64::from(flows) || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (t1, n1) = first.expect("no session reached B");
    let dt = t1.elapsed().as_secs_f64();
    // A's creation bounds the live rate: when did A have them all?
    let a_dt = a_done.map_or(dt, |t| t.saturating_duration_since(t1).as_secs_f64());
    let n = sessions(&b);
    let sent = a.metric("nat64_sync_sessions_total", &[("direction", "sent")]);
    let dropped = a.metric("nat64_sync_dropped_total", &[]);
    println!(
        "sync_rate: {n} of {flows} sessions on B; {:.0} sessions/s after the first ({n1} then {dt:.3} s); A had all {flows} {a_dt:.3} s after B's first; A sent {sent} records, dropped {dropped}",
        (n - n1) / dt.max(1e-6)
    );
    assert_eq!(n, f64::from(flows), "every session reached B");
    // Bulk resync of a restarted B: the walk's pace, not A's creation rate.
    b.kill();
    b.start();
    let t2 = Instant::now();
    b.wait("resync", |b| sessions(b) >= f64::from(flows));
    let dt = t2.elapsed().as_secs_f64();
    println!(
        "sync_rate: bulk resync of {flows} sessions in {dt:.3} s after B was ready: {:.0} sessions/s",
        f64::from(flows) / dt
    );
}
