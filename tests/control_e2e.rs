//! The control plane against the real `nat64d` on virtual devices: IPv6
//! UDP clients replayed without end (net_pcap `infinite_rx`) through a
//! stateful NAT64 instance towards a discarding IPv4 side (net_null).
//! Checks /metrics with a Prometheus text parser, /readyz, every nat64ctl
//! command, hot reload under traffic (sessions whose mapping stays valid
//! kept, sessions of a removed pool4 entry ended and counted, a bad or
//! restart-only file refused and traffic going on), the session log, and
//! that the control socket refuses other users.

#[path = "deploy_common.rs"]
mod common;
mod support;

use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};
use serde_json::Value;

use common::{free_port, get, parse, sum};

const MAC_V6: [u8; 6] = [2, 0, 0, 0, 6, 1];
const MAC_CLIENT: [u8; 6] = [2, 0, 0, 0, 6, 2];
const CLIENTS: u16 = 4;

struct Daemon {
    child: Child,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    http: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn eal_args(tag: &str) -> String {
    let mem = if std::env::var("NAT64_TEST_HUGEPAGES").as_deref() == Ok("1") {
        "\"--in-memory\"".to_string()
    } else {
        format!("\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--file-prefix={tag}\"")
    };
    // One lcore: the main thread polls, control runs beside it.
    format!("[\"-l\", \"0\", \"--no-pci\", {mem}, \"--log-level=*:error\"]")
}

fn yaml(dir: &Path, tag: &str, socket: &Path, http: SocketAddr, traffic_class: &str) -> String {
    format!(
        r#"dpdk:
  eal_args: {eal}
{plat}          udp: 2000-2999
          tcp: 3000-3999
rfc7915:
  traffic_class: {traffic_class}
management:
  control_socket: {socket}
  http_listen: "{http}"
logging:
  session_log: {d}/sessions.log
"#,
        eal = eal_args(tag),
        plat = support::plat_yaml(
            tag,
            &format!("net_pcap_{tag}6,rx_pcap={}/in6.pcap,infinite_rx=1", dir.display()),
            "203.0.113.0/30"
        ),
        d = dir.display(),
        socket = socket.display(),
    )
}

/// IPv6 UDP datagrams from `CLIENTS` client ports to 198.51.100.9:53,
/// embedded in pool6.
fn write_input(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(f).unwrap();
    let src: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:64::c633:6409".parse().unwrap();
    for k in 0..CLIENTS {
        let b = PacketBuilder::ethernet2(MAC_CLIENT, MAC_V6)
            .ipv6(src.octets(), dst.octets(), 64)
            .udp(40000 + k, 53);
        let payload = [0x42u8; 32];
        let mut frame = Vec::new();
        b.write(&mut frame, &payload).unwrap();
        w.write_packet(&PcapPacket::new(Duration::ZERO, frame.len() as u32, &frame)).unwrap();
    }
}

fn start(tag: &str) -> Daemon {
    let dir = std::env::temp_dir().join(format!("nat64-ctl-e2e-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_input(&dir.join("in6.pcap"));
    let socket = dir.join("control.sock");
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.join("nat64d.yaml");
    std::fs::write(&config, yaml(&dir, tag, &socket, http, "copy")).unwrap();
    let log = std::fs::File::create(dir.join("nat64d.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nat64d"))
        .arg("--config")
        .arg(&config)
        .env("NAT64D_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn nat64d");
    let d = Daemon { child, dir, config, socket, http };
    let t = Instant::now();
    while get(d.http, "/readyz").0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "nat64d not ready:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    d
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nat64d.log")).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run nat64ctl")
    }

    /// nat64ctl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "nat64ctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn scrape(&self) -> prometheus_parse::Scrape {
        let (status, body) = get(self.http, "/metrics");
        assert_eq!(status, 200, "{body}");
        parse(&body)
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }
}

fn translated(d: &Daemon) -> f64 {
    sum(&d.scrape(), "nat64_translated_packets_total", &[("direction", "ipv6_to_ipv4")])
}

/// Wait until the translated count passes `than`: traffic flows.
fn flowing(d: &Daemon, than: f64) -> f64 {
    let t = Instant::now();
    loop {
        let n = translated(d);
        if n > than {
            return n;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "traffic stopped at {n}:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sessions(d: &Daemon) -> Vec<(String, u64, String, u64)> {
    let v = d.json(&["session", "list", "--format", "json"]);
    let mut out: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["ipv6"].as_str().unwrap().to_string(),
                s["ipv6_port"].as_u64().unwrap(),
                s["ipv4"].as_str().unwrap().to_string(),
                s["ipv4_port"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn control_plane_end_to_end() {
    // Before the daemon runs: a clear error, not a hang.
    let nobody_home = std::env::temp_dir().join(format!("nat64-ctl-none-{}.sock", std::process::id()));
    let o =
        Command::new(env!("CARGO_BIN_EXE_nat64ctl")).arg("--socket").arg(&nobody_home).arg("health").output();
    let o = o.expect("run nat64ctl");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nat64d is not running"), "{o:?}");

    let d = start(&format!("c{}", std::process::id()));

    // --- /metrics, parsed as Prometheus text -------------------------------
    let n0 = flowing(&d, 0.0);
    let s = d.scrape();
    assert_eq!(sum(&s, "nat64_build_info", &[]), 1.0);
    assert_eq!(sum(&s, "nat64_config_generation", &[]), 1.0);
    assert_eq!(sum(&s, "nat64_ready", &[]), 1.0);
    assert_eq!(sum(&s, "nat64_port_link_up", &[]), 2.0, "both ports up");
    assert_eq!(sum(&s, "nat64_sessions", &[("instance", "plat")]), f64::from(CLIENTS));
    assert!(sum(&s, "nat64_sessions_created_total", &[("protocol", "udp")]) >= f64::from(CLIENTS));
    assert!(sum(&s, "nat64_translated_protocol_packets_total", &[("protocol", "udp")]) > 0.0);
    assert!(
        sum(
            &s,
            "nat64_port_received_packets_total",
            &[("port", &format!("net_pcap_c{}6", std::process::id()))]
        ) > 0.0
    );
    assert!(sum(&s, "nat64_mbufs_available", &[]) > 0.0);
    let p = [("instance", "plat"), ("protocol", "udp")];
    assert_eq!(sum(&s, "nat64_pool4_ports_in_use", &p), f64::from(CLIENTS));
    assert_eq!(sum(&s, "nat64_sessions_by_state", &p), f64::from(CLIENTS));
    assert_eq!(sum(&s, "nat64_bib_entries_by_protocol", &p), f64::from(CLIENTS));
    assert_eq!(get(d.http, "/healthz").0, 200);
    let n1 = flowing(&d, n0);
    assert!(n1 > n0, "counters move between scrapes");

    // --- session log: one JSON line per BIB entry and session created ------
    let t = Instant::now();
    let created = loop {
        let text = std::fs::read_to_string(d.dir.join("sessions.log")).unwrap_or_default();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
        let n = lines.iter().filter(|v| v["event"] == "session_created").count();
        if n >= usize::from(CLIENTS) || t.elapsed() > Duration::from_secs(5) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let sess: Vec<&Value> = created.iter().filter(|v| v["event"] == "session_created").collect();
    assert_eq!(sess.len(), usize::from(CLIENTS), "{created:?}");
    assert_eq!(created.iter().filter(|v| v["event"] == "bib_created").count(), usize::from(CLIENTS));
    for v in &sess {
        assert_eq!((v["instance"].as_str(), v["protocol"].as_str()), (Some("plat"), Some("udp")));
        assert_eq!(v["ipv6"], "2001:db8:1::10");
        assert_eq!((v["remote"].as_str(), v["remote_port"].as_u64()), (Some("198.51.100.9"), Some(53)));
        assert!(v["ipv4"].as_str().unwrap().starts_with("203.0.113."));
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
    let s = d.scrape();
    assert!(sum(&s, "nat64_session_log_records_total", &[("result", "written")]) >= f64::from(2 * CLIENTS));
    assert_eq!(sum(&s, "nat64_session_events_dropped_total", &[]), 0.0);

    // --- nat64ctl against the running daemon -------------------------------
    let before = sessions(&d);
    assert_eq!(before.len(), usize::from(CLIENTS));
    assert!(before.iter().all(|s| s.0 == "2001:db8:1::10" && s.2.starts_with("203.0.113.")));
    let table = d.ok(&["session", "list", "--protocol", "udp", "--ipv6", "2001:db8:1::/64"]);
    assert_eq!(table.lines().count(), 1 + usize::from(CLIENTS), "{table}");
    assert!(table.starts_with("instance"));
    let csv = d.ok(&["session", "list", "--format", "csv", "--ipv4", "198.51.100.9"]);
    assert!(csv.starts_with("instance,proto,state,ipv6,ipv4,remote,expires_s,worker\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + usize::from(CLIENTS));
    let none = d.ok(&["session", "list", "--protocol", "tcp"]);
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    d.ok(&["bib", "add", "--protocol", "tcp", "--ipv6", "2001:db8:1::80#80", "--ipv4", "203.0.113.2#3080"]);
    let bib = d.json(&["bib", "list", "--protocol", "tcp", "--format", "json"]);
    assert_eq!(bib[0]["static"], true, "{bib}");
    assert_eq!(bib[0]["ipv4_port"], 3080);
    let o =
        d.ctl(&["bib", "add", "--protocol", "tcp", "--ipv6", "2001:db8:1::80#80", "--ipv4", "192.0.2.99#80"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the tcp pool4"));
    d.ok(&["bib", "del", "--protocol", "tcp", "--ipv4", "203.0.113.2#3080"]);
    assert_eq!(d.json(&["bib", "list", "--protocol", "tcp", "--format", "json"]), Value::Array(vec![]));
    let pool = d.json(&["pool4", "list", "--format", "json"]);
    let used: u64 = pool
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["protocol"] == "udp")
        .map(|r| r["in_use"].as_u64().unwrap())
        .sum();
    assert_eq!(used, u64::from(CLIENTS));
    let stats = d.ok(&["stats"]);
    assert!(stats.contains("v6_to_v4") && stats.contains("nat64 instance plat"), "{stats}");
    let health = d.ok(&["health"]);
    assert!(health.contains("ready: yes"), "{health}");
    let show = d.ok(&["config", "show"]);
    assert!(show.contains("pool6: 2001:db8:64::/96"), "{show}");
    let check = d.ok(&["config", "check"]);
    assert!(check.contains("0 changed key(s)"), "{check}");

    // --- reload under traffic: applied, sessions kept ----------------------
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, text.replace("traffic_class: copy", "traffic_class: zero")).unwrap();
    let out = d.ok(&["config", "reload"]);
    assert!(out.contains("generation 2") && out.contains("rfc7915.traffic_class (dataplane)"), "{out}");
    assert_eq!(sessions(&d), before, "the same sessions with the same mappings");
    let n2 = flowing(&d, flowing(&d, 0.0));
    let s = d.scrape();
    assert_eq!(sum(&s, "nat64_config_generation", &[]), 2.0);
    assert_eq!(sum(&s, "nat64_config_reloads_total", &[("result", "success")]), 1.0);

    // --- pool4 grows and a timeout changes: every mapping stays valid -------
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text
        .replace(
            "          tcp: 3000-3999\n",
            "          tcp: 3000-3999\n        - prefix: \"203.0.113.8/30\"\n",
        )
        .replace(
            "      pool6: \"2001:db8:64::/96\"\n",
            "      pool6: \"2001:db8:64::/96\"\n      timeouts: { udp: 200 }\n",
        );
    std::fs::write(&d.config, text).unwrap();
    let out = d.ok(&["config", "reload"]);
    assert!(out.contains("generation 3") && out.contains("ended: 0 session(s), 0 BIB"), "{out}");
    assert!(out.contains("instances[0].nat64.pool4 (dataplane)"), "{out}");
    assert!(out.contains("instances[0].nat64.timeouts.udp (dataplane)"), "{out}");
    assert_eq!(sessions(&d), before, "no session lost its mapping");
    let n2 = flowing(&d, n2);

    // --- a bad file is refused, the running configuration stays ------------
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, good.replace("2001:db8:64::/96", "2001:db8:64::/97")).unwrap();
    let o = d.ctl(&["config", "reload"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nat64d refused") && err.contains("rfc6052-prefix-length"), "{err}");
    // The daemon's check names the line and column too, and changes nothing.
    let o = d.ctl(&["config", "check"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nat64d.yaml:"), "{o:?}");
    // SIGHUP takes the same path.
    let _ = Command::new("kill").arg("-HUP").arg(d.child.id().to_string()).status();
    let t = Instant::now();
    while sum(&d.scrape(), "nat64_config_reloads_total", &[("result", "invalid")]) < 2.0 {
        assert!(t.elapsed() < Duration::from_secs(5), "SIGHUP reload not counted:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // A change only a restart applies.
    std::fs::write(&d.config, good.replace("\"-l\", \"0\"", "\"-l\", \"0-1\"")).unwrap();
    let o = d.ctl(&["config", "reload"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("dpdk.eal_args"), "{o:?}");
    assert_eq!(sum(&d.scrape(), "nat64_config_generation", &[]), 3.0);
    assert_eq!(sessions(&d), before);
    flowing(&d, n2);
    assert!(d.ok(&["config", "show"]).contains("traffic_class: zero"));
    std::fs::write(&d.config, &good).unwrap();

    // --- the control socket refuses other users ----------------------------
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    if !rustix::process::geteuid().is_root() {
        // Running a client as another user needs root (CI runs as root).
        println!("control_e2e: not root, other-user check skipped");
    } else {
        other_users_are_refused(&d);
    }
    flush_and_pool4_change(&d);
}

fn other_users_are_refused(d: &Daemon) {
    let nobody = |d: &Daemon| {
        Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("health")
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run nat64ctl as nobody")
    };
    let o = nobody(d);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("permission denied"), "{o:?}");
    // Even with the mode loosened by hand, the peer check refuses.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = nobody(d);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused: uid 65534"), "{o:?}");
}

fn flush_and_pool4_change(d: &Daemon) {
    // --- flush: one client's sessions end (and come back with its traffic)
    let o = d.ctl(&["session", "flush"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs a filter"), "{o:?}");
    let out = d.ok(&["session", "flush", "--ipv6", "2001:db8:1::10"]);
    let n: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(n >= u64::from(CLIENTS), "{out}");
    assert!(sum(&d.scrape(), "nat64_sessions_flushed_total", &[]) >= f64::from(CLIENTS));
    let t = Instant::now();
    while !std::fs::read_to_string(d.dir.join("sessions.log")).unwrap().contains("\"session_deleted\"") {
        assert!(t.elapsed() < Duration::from_secs(5), "no session_deleted record");
        std::thread::sleep(Duration::from_millis(50));
    }

    // --- pool4 entries go: their sessions end and are counted ------------
    // (After the flush the clients' sessions may sit on either entry.)
    let text = std::fs::read_to_string(&d.config).unwrap();
    let text = text
        .replace("prefix: \"203.0.113.0/30\"", "prefix: \"203.0.113.4/30\"")
        .replace("        - prefix: \"203.0.113.8/30\"\n", "");
    std::fs::write(&d.config, text).unwrap();
    let out = d.ok(&["config", "reload"]);
    let ended: u64 = out
        .split("ended: ")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ended >= u64::from(CLIENTS), "every session was on a removed entry: {out}");
    let s = d.scrape();
    assert_eq!(sum(&s, "nat64_config_reload_ended_sessions_total", &[]), ended as f64);
    assert!(sum(&s, "nat64_config_reload_ended_bib_total", &[]) >= f64::from(CLIENTS));
    // The clients' traffic maps again, inside the new pool only.
    let t = Instant::now();
    loop {
        let now = sessions(d);
        let moved = now.iter().all(|x| {
            let last: u8 = x.2.rsplit('.').next().unwrap().parse().unwrap();
            (4..8).contains(&last)
        });
        if now.len() == usize::from(CLIENTS) && moved {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    flowing(d, translated(d));

    assert_eq!(get(d.http, "/readyz").0, 200, "readiness held through all of it");
}
