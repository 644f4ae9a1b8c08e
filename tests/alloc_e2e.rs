//! Port-block and deterministic allocation against the real binaries:
//! `nat64ctl lookup` from a configuration file and from a block log
//! without a daemon, and a running `nat64d` in port-block mode whose
//! session log holds one line per block (none per session) and whose
//! tables `nat64ctl lookup` reads in both directions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{eal_mem, write_pcap, Daemon};

/// A temporary directory removed on drop (also when an assertion fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("nat64-alloc-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn ctl(cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nat64ctl")).arg("--config").arg(cfg).args(args).output().unwrap()
}

/// `nat64ctl lookup ... --format json` that must succeed: its rows.
fn lookup(cfg: &Path, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["lookup"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "json"]);
    let o = ctl(cfg, &a);
    assert!(
        o.status.success(),
        "nat64ctl {a:?}: {}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["lookup"].as_array().unwrap().clone()
}

fn cell<'a>(rows: &'a [Value], proto: &str, key: &str) -> &'a Value {
    &rows.iter().find(|r| r["protocol"] == proto).unwrap_or_else(|| panic!("no {proto} row in {rows:?}"))[key]
}

const DET: &str = r#"
  - nat64:
      name: det
      pool6: "2001:db8:65::/96"
      pool4:
        - prefix: "198.51.100.0/30"
      limits: { client_prefix_len: 56 }
      allocation: { mode: deterministic, clients: "2001:db8:a::/48" }
"#;

#[test]
fn lookup_from_the_configuration_and_the_block_log_needs_no_daemon() {
    let dir = TempDir::new("offline");
    let cfg = dir.0.join("nat64d.yaml");
    let yaml = format!(
        "interfaces:\n  - {{ name: a, device: net_null0, role: both }}\ninstances:{DET}
  - nat64:
      name: blk
      pool6: \"2001:db8:64::/96\"
      pool4: [ {{ prefix: 192.0.2.7/32 }} ]
      allocation: {{ mode: blocks, block_size: 512 }}
"
    );
    std::fs::write(&cfg, yaml).unwrap();
    // 256 clients over 4 addresses: client 0x05 is on .1, ports 2032-3039.
    let rows = lookup(&cfg, &["2001:db8:a:5ff::1", "--instance", "det"]);
    assert_eq!(cell(&rows, "tcp", "ipv6_prefix"), "2001:db8:a:500::/56");
    assert_eq!(cell(&rows, "tcp", "ipv4"), "198.51.100.1");
    assert_eq!(
        (cell(&rows, "udp", "port_first"), cell(&rows, "udp", "port_last")),
        (&2032.into(), &3039.into())
    );
    let back = lookup(&cfg, &["198.51.100.1#3039", "--instance", "det"]);
    assert_eq!(cell(&back, "udp", "ipv6_prefix"), "2001:db8:a:500::/56");
    // Outside the client range or pool4: exit 1.
    for miss in ["2001:db8:b::1", "198.51.100.9#2000"] {
        let o = ctl(&cfg, &["lookup", miss, "--instance", "det"]);
        assert_eq!(o.status.code(), Some(1), "{miss}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("no client or mapping found"));
    }
    // Port blocks from a log: the block that covered the port at 14:02.
    let log = dir.0.join("sessions.log");
    let line = |t: &str, ev: &str, pfx: &str| {
        format!(
            r#"{{"time":"{t}","event":"{ev}","instance":"blk","protocol":"tcp","ipv6_prefix":"{pfx}","ipv4":"192.0.2.7","port_first":39936,"port_last":40447}}"#
        )
    };
    let text = [
        line("2026-11-24T13:00:00.000Z", "block_allocated", "2001:db8:1::/64"),
        line("2026-11-24T13:50:00.000Z", "block_released", "2001:db8:1::/64"),
        line("2026-11-24T13:55:10.250Z", "block_allocated", "2001:db8:2::/64"),
    ]
    .join("\n");
    std::fs::write(&log, text).unwrap();
    let l = log.to_str().unwrap();
    let who =
        lookup(&cfg, &["192.0.2.7#40123", "--instance", "blk", "--log", l, "--at", "2026-11-24T14:02:00Z"]);
    assert_eq!(who.len(), 1, "{who:?}");
    assert_eq!(who[0]["ipv6_prefix"], "2001:db8:2::/64");
    assert_eq!(who[0]["from"], "2026-11-24T13:55:10.250Z");
    let earlier =
        lookup(&cfg, &["192.0.2.7#40123", "--instance", "blk", "--log", l, "--at", "2026-11-24T13:10:00Z"]);
    assert_eq!(earlier[0]["ipv6_prefix"], "2001:db8:1::/64");
    assert_eq!(earlier[0]["until"], "2026-11-24T13:50:00.000Z");
    let client =
        lookup(&cfg, &["2001:db8:2::99", "--instance", "blk", "--log", l, "--at", "2026-11-24T14:02:00Z"]);
    assert_eq!((&client[0]["port_first"], &client[0]["port_last"]), (&39936.into(), &40447.into()));
    let o = ctl(&cfg, &["lookup", "192.0.2.7#40123", "--log", l, "--at", "2026-11-24T13:52:00Z"]);
    assert_eq!(o.status.code(), Some(1), "nobody held it between the blocks");
}

/// Ethernet + IPv6 + UDP from client `src`:`sport` to 203.0.113.9:53
/// embedded in `pool6` (a /96); the IPv4 side has no route, so the
/// translated packets are dropped after their mapping is made.
fn udp6(src: &str, pool6: &str, sport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 6, 1, 2, 0, 0, 0, 6, 2, 0x86, 0xdd];
    let s: std::net::Ipv6Addr = src.parse().unwrap();
    let d: std::net::Ipv6Addr = format!("{pool6}cb00:7109").parse().unwrap();
    etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64)
        .udp(sport, 53)
        .write(&mut f, b"block me")
        .unwrap();
    f
}

#[test]
fn port_blocks_in_the_session_log_and_through_the_daemon() {
    let dir = TempDir::new("daemon");
    let d = dir.0.display();
    let mut frames: Vec<Vec<u8>> = (0..10).map(|k| udp6("2001:db8::5", "2001:db8:64::", 5000 + k)).collect();
    frames.extend((0..3).map(|k| udp6("2001:db8::6", "2001:db8:64::", 6000 + k)));
    // Deterministic instance: client 5 of 2001:db8:a::/48, and a source
    // outside the range.
    frames.extend((0..3).map(|k| udp6("2001:db8:a:500::1", "2001:db8:65::", 7000 + k)));
    frames.push(udp6("2001:db8:b::1", "2001:db8:65::", 7000));
    write_pcap(&dir.0.join("in6.pcap"), &frames);
    write_pcap(&dir.0.join("in4.pcap"), &[]);
    let mem = eal_mem("al");
    let sock = dir.0.join("control.sock");
    let yaml = format!(
        r#"dpdk:
  eal_args: ["-l", "0", "--no-pci", {mem}, "--log-level=*:error"]
interfaces:
  - name: v6
    device: "net_pcap_al6,rx_pcap={d}/in6.pcap,tx_pcap={d}/out6.pcap"
    role: ipv6
    mac: "02:00:00:00:06:01"
    ipv6: ["2001:db8::1/64"]
  - name: v4
    device: "net_pcap_al4,rx_pcap={d}/in4.pcap,tx_pcap={d}/out4.pcap"
    role: ipv4
    mac: "02:00:00:00:04:01"
    ipv4: ["192.0.2.1/24"]
instances:
  - nat64:
      name: blk
      pool6: "2001:db8:64::/96"
      pool4:
        - prefix: "192.0.2.2/32"
          udp: "2000-2255"
      limits: {{ client_prefix_len: 128 }}
      allocation: {{ mode: blocks, block_size: 64, max_blocks_per_client: 2 }}
{DET}
management:
  control_socket: {sock}
logging:
  session_log: {d}/sessions.log
"#,
        sock = sock.display()
    );
    let cfg = dir.0.join("nat64d.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nat64d"));
    cmd.arg("--config").arg(&cfg);
    let daemon = Daemon::start(cmd).unwrap();
    let s = sock.to_str().unwrap();
    // Wait until both clients hold their block (the pcap is read once).
    let t = Instant::now();
    let mine = loop {
        let o = ctl(&cfg, &["--socket", s, "lookup", "2001:db8::6", "--format", "json"]);
        if o.status.success() {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            break v["lookup"].as_array().unwrap().clone();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!((&mine[0]["mode"], &mine[0]["protocol"]), (&"blocks".into(), &"udp".into()));
    assert_eq!(mine[0]["ipv6_prefix"], "2001:db8::6/128");
    let first = mine[0]["port_first"].as_u64().unwrap();
    assert_eq!(mine[0]["port_last"].as_u64().unwrap(), first + 63);
    assert!((2000..=2192).contains(&first) && (first - 2000) % 64 == 0, "{first}");
    // The other direction, from the daemon's tables.
    let who = lookup(&cfg, &["--socket", s, &format!("192.0.2.2#{}", first + 17)]);
    assert_eq!(who.len(), 1);
    assert_eq!(who[0]["ipv6_prefix"], "2001:db8::6/128");
    // Deterministic instances answer through the daemon too.
    let det = lookup(&cfg, &["--socket", s, "--daemon", "2001:db8:a:500::1"]);
    assert_eq!(cell(&det, "udp", "ipv4"), "198.51.100.1");
    // Its sessions took ports of that range; the stranger was refused.
    let o = ctl(&cfg, &["--socket", s, "session", "list", "--instance", "det", "--format", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sessions = v.as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{v}");
    for x in sessions {
        assert_eq!(x["ipv4"], "198.51.100.1");
        assert!((2032..=3039).contains(&x["ipv4_port"].as_u64().unwrap()), "{x}");
    }
    let o = ctl(&cfg, &["--socket", s, "stats", "--format", "json"]);
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["drops"]["nat64"]["client_unmapped"], 1, "{st}");
    let (ok, log) = daemon.stop();
    assert!(ok, "nat64d failed:\n{log}");
    // One line per block allocated, none per session or BIB entry.
    let text = std::fs::read_to_string(dir.0.join("sessions.log")).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2, "{text}");
    assert!(events.iter().all(|e| e["event"] == "block_allocated"), "{text}");
    // And the log answers the same question offline.
    let l = dir.0.join("sessions.log");
    let again =
        lookup(&cfg, &[&format!("192.0.2.2#{first}"), "--instance", "blk", "--log", l.to_str().unwrap()]);
    assert_eq!(again[0]["ipv6_prefix"], "2001:db8::6/128");
    assert_eq!(again[0]["until"], Value::Null);
}
