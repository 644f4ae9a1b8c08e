//! The namespace lab (deploy/lab/lab.sh) with real clients through the
//! real `nat64d`: dig against Unbound's DNS64, curl against nginx, ping,
//! traceroute, iperf3, netcat, and the operator's view through `nat64ctl`
//! and `/metrics`.
//!
//! Needs root (namespaces, DPDK) and the lab's Debian packages
//! (scripts/deps.sh installs them). The namespaces have fixed names, so the
//! tests take turns; each builds its own lab and tears it down, also when
//! it fails. Without root they report themselves skipped.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

mod support;
use support::{is_root, session_rows, spawn_piped, stdout_ok, text, wait_for};

static ONE_LAB: Mutex<()> = Mutex::new(());

const LAB_DIR: &str = "/tmp/n64lab-test";
const SERVER4: &str = "198.51.100.10";
/// 198.51.100.10 in pool6 2001:db8:64::/96 (RFC 6052 §2.2).
const SERVER4_IN_POOL6: &str = "2001:db8:64::c633:640a";
const POOL4: &str = "203.0.113.1";
const BODY4: &str = "hello from the IPv4-only server 198.51.100.10\n";
const BODY6: &str = "hello from the IPv6-only server 2001:db8:4::80\n";

fn lab_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/lab/lab.sh")
}

/// One lab: held for the test's duration, torn down on drop.
struct Lab {
    _turn: MutexGuard<'static, ()>,
    running: bool,
}

impl Lab {
    /// Build the lab (`lab.sh up ARGS`), or `None` without root.
    fn up(args: &[&str]) -> Option<Lab> {
        if !is_root() {
            eprintln!("lab test skipped: needs root");
            return None;
        }
        let turn = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
        let lab = Lab { _turn: turn, running: false };
        let o = lab.script(&[&["up"], args].concat(), 120);
        assert!(o.status.success(), "lab up failed:\n{}", text(&o));
        Some(lab)
    }

    fn command(&self, args: &[&str], secs: u64) -> Command {
        let mut c = Command::new("timeout");
        c.args(["-k", "5", &secs.to_string()])
            .arg(lab_sh())
            .args(args)
            .env("LAB_DIR", LAB_DIR)
            .env("NAT64D", env!("CARGO_BIN_EXE_nat64d"))
            .stdin(Stdio::null());
        c
    }

    fn script(&self, args: &[&str], secs: u64) -> Output {
        self.command(args, secs).output().expect("running lab.sh")
    }

    /// Start nat64d (`lab.sh start ARGS`).
    fn start(&mut self, args: &[&str]) {
        let o = self.script(&[&["start"], args].concat(), 90);
        assert!(o.status.success(), "nat64d did not start:\n{}", text(&o));
        self.running = true;
    }

    /// SIGTERM nat64d; its exit status.
    fn stop(&mut self) -> String {
        let o = self.script(&["stop"], 30);
        self.running = false;
        assert!(o.status.success(), "lab stop:\n{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Run a shell command on a lab host (cli, dns, web6, rt, x, srv).
    fn on(&self, host: &str, cmd: &str) -> Output {
        self.script(&["x", host, "bash", "-c", cmd], 60)
    }

    /// Like `on`, and the command must succeed; its stdout.
    fn ok(&self, host: &str, cmd: &str) -> String {
        stdout_ok(self.on(host, cmd), &format!("on n64{host}: {cmd}"))
    }

    /// Start a command on a lab host in the background.
    fn spawn(&self, host: &str, cmd: &str, secs: u64) -> Child {
        spawn_piped(self.command(&["x", host, "bash", "-c", cmd], secs))
    }

    /// `nat64ctl --socket ... ARGS` (the socket is a file, any namespace).
    fn ctl(&self, args: &[&str]) -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
            .args(["--socket", &format!("{LAB_DIR}/control.sock"), "--timeout", "10"])
            .args(args)
            .output()
            .expect("running nat64ctl");
        stdout_ok(o, &format!("nat64ctl {args:?}"))
    }

    fn sessions(&self) -> Vec<Value> {
        session_rows(&self.ctl(&["session", "list", "--format", "json"]))
    }

    /// `/metrics` from inside the appliance's namespace.
    fn metrics(&self) -> Metrics {
        Metrics(parse_metrics(&self.ok("x", "curl -sS -m 5 http://127.0.0.1:9464/metrics")))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.running {
            let _ = self.script(&["stop"], 30);
        }
        let o = self.script(&["down"], 60);
        if !o.status.success() {
            eprintln!("lab down:\n{}", text(&o));
        }
    }
}

/// One sample of a Prometheus text exposition: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of one scrape.
struct Metrics(Vec<Sample>);

fn parse_metrics(t: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in t.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.trim_end_matches('}');
                let labels = body
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        out.push((name, labels, v));
    }
    out
}

impl Metrics {
    /// Sum of every sample of `name` whose labels include all of `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name && with.iter().all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
    fn translated(&self, dir: &str) -> f64 {
        self.sum("nat64_translated_packets_total", &[("direction", dir)])
    }
    fn drops(&self, reason: &str) -> f64 {
        self.sum("nat64_dropped_packets_total", &[("reason", reason)])
    }
}

fn iperf_json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("iperf3 JSON: {e}\n{out}"))
}

/// The hops traceroute printed, in order.
fn hops(out: &str) -> Vec<String> {
    out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)).map(str::to_string).collect()
}

/// What tcpdump on the router's link to the appliance reports about
/// translated packets (source in pool6) arriving from the appliance while
/// `act` runs: "N packets captured" among its lines.
fn translated_towards_v6(lab: &Lab, act: impl FnOnce()) -> String {
    let watch = lab.spawn("rt", "timeout 8 tcpdump -ni n64rtx -Q in -c 1 'ip6 src net 2001:db8:64::/96'", 20);
    // tcpdump needs a moment to attach its filter.
    std::thread::sleep(Duration::from_millis(1500));
    act();
    let out = watch.wait_with_output().expect("tcpdump");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn stateful_nat64_with_real_clients() {
    let Some(mut lab) = Lab::up(&[]) else { return };
    lab.start(&["--engine", "nat64", "--short-timeouts"]);

    // DNS64: a name with only an A record gets an AAAA inside pool6 that
    // embeds the A record (RFC 6147 §5.1.7, RFC 6052 §2.2); a name with
    // an AAAA keeps it (RFC 6147 §5.1.1).
    let aaaa = lab.ok("cli", "dig +short +time=2 +tries=2 AAAA www.lab.example");
    let a6: Ipv6Addr = aaaa.trim().parse().unwrap_or_else(|_| panic!("one AAAA expected: {aaaa:?}"));
    let s = a6.segments();
    assert_eq!(&s[..6], &[0x2001, 0xdb8, 0x64, 0, 0, 0], "synthesized inside pool6: {a6}");
    assert_eq!(
        Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])),
        SERVER4.parse::<Ipv4Addr>().unwrap()
    );
    let native = lab.ok("cli", "dig +short +time=2 +tries=2 AAAA web6.lab.example");
    assert_eq!(native.trim(), "2001:db8:4::80");

    // ICMP by address, and /metrics counts exactly what the client did:
    // 5 echo requests out, 5 replies back (plus at most a little noise).
    let m0 = lab.metrics();
    let out = lab.ok("cli", &format!("ping -c 5 -i 0.2 -W 2 {SERVER4_IN_POOL6}"));
    assert!(out.contains("5 packets transmitted, 5 received"), "{out}");
    let m1 = lab.metrics();
    let up = m1.translated("ipv6_to_ipv4") - m0.translated("ipv6_to_ipv4");
    let down = m1.translated("ipv4_to_ipv6") - m0.translated("ipv4_to_ipv6");
    assert!((5.0..=7.0).contains(&up), "6->4 delta {up} for 5 echo requests");
    assert!((5.0..=7.0).contains(&down), "4->6 delta {down} for 5 echo replies");
    let icmp_created = m1.sum("nat64_sessions_created_total", &[("protocol", "icmp")])
        - m0.sum("nat64_sessions_created_total", &[("protocol", "icmp")]);
    assert_eq!(icmp_created, 1.0, "one ICMP session for one ping identifier");

    // TCP by name: curl resolves through DNS64; the IPv4-only server sees
    // pool4 as the client.
    let body = lab.ok("cli", "curl -sS -m 10 http://www.lab.example/");
    assert_eq!(body, BODY4);
    let log = lab.ok("srv", &format!("tail -n 1 {LAB_DIR}/nginx-srv.access"));
    assert!(log.starts_with(&format!("{POOL4} ")), "server saw {log}");

    // UDP: the echo server reports the source it saw.
    let echo = lab.ok("cli", &format!("echo lab-udp | nc -u -w 2 {SERVER4_IN_POOL6} 7"));
    assert_eq!(echo.trim(), format!("from {POOL4} lab-udp"));

    // The sessions just made, as nat64ctl lists them.
    let sess = lab.sessions();
    let has = |proto: &str, port: u64| {
        sess.iter().any(|s| {
            s["protocol"] == proto
                && s["ipv6"] == "2001:db8:2::10"
                && s["ipv4"] == POOL4
                && s["remote"] == SERVER4
                && s["remote_port"].as_u64() == Some(port)
        })
    };
    assert!(has("udp", 7) && has("tcp", 80) && has("icmp", 0), "sessions: {sess:#?}");

    // traceroute: router, appliance (hop limit expires there: RFC 7915
    // §5.1 / ICMPv6 time exceeded from its own address), then the server.
    let m0 = lab.metrics();
    let out = lab.ok("cli", &format!("traceroute -n -q 1 -w 2 -m 6 {SERVER4_IN_POOL6}"));
    assert_eq!(hops(&out), ["2001:db8:2::1", "2001:db8:1::1", SERVER4_IN_POOL6], "{out}");
    let m1 = lab.metrics();
    assert!(m1.drops("hop_limit_exceeded") > m0.drops("hop_limit_exceeded"));

    // iperf3 TCP and UDP, IPv6 client to IPv4 server.
    let j = iperf_json(&lab.ok("cli", "iperf3 -c iperf.lab.example -t 2 -J"));
    let bytes = j["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(bytes > 1e6, "iperf3 TCP received {bytes} bytes");
    let j = iperf_json(&lab.ok("cli", "iperf3 -u -c iperf.lab.example -t 2 -b 20M -J"));
    let sum = &j["end"]["sum"];
    let (pk, lost) = (sum["packets"].as_f64().unwrap_or(0.0), sum["lost_packets"].as_f64().unwrap_or(0.0));
    assert!(pk > 100.0 && lost < pk / 2.0, "iperf3 UDP: {pk} packets, {lost} lost");

    // The other way, through the static BIB: an IPv4 client reaches the
    // IPv6-only server over TCP, UDP and ICMP (RFC 6146 §3.5.1/§3.5.3).
    let body = lab.ok("srv", &format!("curl -sS -m 10 http://{POOL4}:8080/"));
    assert_eq!(body, BODY6);
    let log = lab.ok("web6", &format!("tail -n 1 {LAB_DIR}/nginx-web6.access"));
    assert!(log.starts_with(&format!("{SERVER4_IN_POOL6} ")), "IPv6 server saw {log}");
    let echo = lab.ok("srv", &format!("echo v4-udp | nc -u -w 2 {POOL4} 7007"));
    assert_eq!(echo.trim(), format!("from {SERVER4_IN_POOL6} v4-udp"));
    let out = lab.ok("srv", &format!("ping -c 3 -i 0.2 -W 2 -e 4242 {POOL4}"));
    assert!(out.contains("3 received"), "{out}");

    // Hairpinning (RFC 6146 §3.8): the IPv6 client reaches the IPv6-only
    // server through pool4's static entry; the server sees pool4 embedded
    // in pool6 as the source (203.0.113.1 = cb00:7101).
    let m0 = lab.metrics();
    let body = lab.ok("cli", &format!("curl -sS -m 10 'http://[2001:db8:64::{POOL4}]:8080/'"));
    assert_eq!(body, BODY6);
    let log = lab.ok("web6", &format!("tail -n 1 {LAB_DIR}/nginx-web6.access"));
    assert!(log.starts_with("2001:db8:64::cb00:7101 "), "IPv6 server saw {log}");
    let echo = lab.ok("cli", &format!("echo hairpin | nc -u -w 2 2001:db8:64::{POOL4} 7007"));
    assert_eq!(echo.trim(), "from 2001:db8:64::cb00:7101 hairpin");
    let m1 = lab.metrics();
    let hp = m1.sum("nat64_pipeline_packets_total", &[("counter", "hairpins")])
        - m0.sum("nat64_pipeline_packets_total", &[("counter", "hairpins")]);
    assert!(hp >= 4.0, "hairpinned packets counted: {hp}");

    // Unsolicited IPv4 traffic to pool4 reaches nobody: no translated
    // packet (source in pool6) leaves the appliance towards the IPv6 side.
    // First a positive control: the same watch sees a static-BIB datagram.
    let seen = translated_towards_v6(&lab, || {
        lab.ok("srv", &format!("echo control | nc -u -w 1 {POOL4} 7007"));
    });
    assert!(seen.contains("1 packet captured"), "the watch saw nothing:\n{seen}");
    let m0 = lab.metrics();
    let seen = translated_towards_v6(&lab, || {
        lab.on("srv", &format!("for i in 1 2 3 4 5; do echo x | nc -u -w 0 {POOL4} 9999; done"));
        lab.on("srv", &format!("ping -c 3 -i 0.2 -W 1 -e 777 {POOL4}"));
        let syn = lab.on("srv", &format!("curl -sS -m 3 http://{POOL4}:9998/"));
        assert!(!syn.status.success(), "a TCP connection to an unbound pool4 port succeeded");
    });
    assert!(seen.contains("0 packets captured"), "reached the IPv6 side:\n{seen}");
    let m1 = lab.metrics();
    assert!(
        m1.drops("no_session") - m0.drops("no_session") >= 8.0,
        "5 UDP + 3 echo requests without a BIB entry are counted as no_session drops"
    );

    // Sessions expire after their (short) timeouts: udp 4 s, icmp 4 s,
    // tcp transitory 4 s, established 8 s.
    let created = lab.metrics().sum("nat64_sessions_created_total", &[]);
    assert!(created >= 5.0, "sessions created: {created}");
    wait_for("every session to expire", 30, || lab.sessions().is_empty());
    let m = lab.metrics();
    assert_eq!(m.sum("nat64_sessions", &[]), 0.0);
    assert!(m.sum("nat64_sessions_expired_total", &[("protocol", "udp")]) >= 2.0);
    assert!(m.sum("nat64_sessions_expired_total", &[("protocol", "icmp")]) >= 1.0);
    // The static entries outlive their sessions: still usable.
    assert_eq!(lab.ok("srv", &format!("curl -sS -m 10 http://{POOL4}:8080/")), BODY6);

    // SIGTERM ends cleanly, and the final counters cover what /metrics saw.
    let last = lab.metrics();
    assert_eq!(lab.stop(), "0", "nat64d exit status after SIGTERM");
    let stats: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{LAB_DIR}/stats.json")).expect("stats file written on exit"),
    )
    .expect("stats JSON");
    let c = &stats["counters"];
    assert!(c["v6_to_v4"].as_f64().unwrap() >= last.translated("ipv6_to_ipv4"));
    assert!(c["v4_to_v6"].as_f64().unwrap() >= last.translated("ipv4_to_ipv6"));
}

#[test]
fn path_mtu_discovery_across_a_1280_link() {
    // The appliance's IPv6 link has MTU 1280; the client's and the
    // server's have 1500, so the client advertises an MSS the path cannot
    // carry and the server must learn the path MTU from the appliance's
    // ICMPv4 "fragmentation needed" (RFC 7915 §4.1: 1280 - 20 = 1260).
    let Some(mut lab) = Lab::up(&["--mtu6", "1280"]) else { return };
    lab.start(&["--engine", "nat64"]);
    let want = lab.ok("srv", &format!("sha256sum < {LAB_DIR}/www4/big.bin"));
    let got = lab.ok("cli", "curl -sS -m 60 http://www.lab.example/big.bin | sha256sum");
    assert_eq!(got, want, "the 4 MiB download arrived intact");
    let cache = lab.ok("srv", &format!("ip route get {POOL4}"));
    assert!(cache.contains("mtu 1260"), "server's path MTU to pool4: {cache}");
    let m = lab.metrics();
    assert!(m.drops("packet_too_big") >= 1.0);
    assert!(m.sum("nat64_pipeline_packets_total", &[("counter", "icmp_errors")]) >= 1.0);
    assert_eq!(lab.stop(), "0");
}

#[test]
fn path_mtu_discovery_through_a_translated_packet_too_big() {
    // The 1280 link lies between two IPv6 routers (n64rt and n64acc),
    // away from both the client and the appliance: only n64rt's ICMPv6
    // Packet Too Big, translated by the appliance into ICMPv4
    // fragmentation needed with MTU 1280 - 20 (RFC 7915 §5.2) and matched
    // to the session through the packet it quotes (RFC 6146 §3.4),
    // can tell the IPv4 server.
    let Some(mut lab) = Lab::up(&["--mid-mtu", "1280"]) else { return };
    lab.start(&["--engine", "nat64"]);
    let want = lab.ok("srv", &format!("sha256sum < {LAB_DIR}/www4/big.bin"));
    let got = lab.ok("cli", "curl -sS -m 60 http://www.lab.example/big.bin | sha256sum");
    assert_eq!(got, want, "the 4 MiB download arrived intact");
    let ptb = lab.ok("rt", "nstat -az Icmp6OutPktTooBigs | awk '/PktTooBigs/ {print $2}'");
    assert!(ptb.trim().parse::<u64>().unwrap_or(0) >= 1, "the router sent no Packet Too Big");
    let cache = lab.ok("srv", &format!("ip route get {POOL4}"));
    assert!(cache.contains("mtu 1260"), "server's path MTU to pool4: {cache}");
    let m = lab.metrics();
    let icmp = m.sum(
        "nat64_translated_protocol_packets_total",
        &[("direction", "ipv6_to_ipv4"), ("protocol", "icmp")],
    );
    assert!(icmp >= 1.0, "no ICMPv6 error translated");
    assert_eq!(m.drops("packet_too_big"), 0.0, "the appliance's own links are 1500: it originated nothing");
    assert_eq!(lab.stop(), "0");
}

#[test]
fn one_armed_and_teardown_after_a_crash() {
    let Some(mut lab) = Lab::up(&["--arms", "1"]) else { return };
    lab.start(&["--engine", "nat64"]);
    assert_eq!(lab.ok("cli", "curl -sS -m 10 http://www.lab.example/"), BODY4);
    let out = lab.ok("cli", &format!("ping -c 3 -i 0.2 -W 2 {SERVER4_IN_POOL6}"));
    assert!(out.contains("3 received"), "{out}");
    let echo = lab.ok("cli", &format!("echo one-arm | nc -u -w 2 {SERVER4_IN_POOL6} 7"));
    assert_eq!(echo.trim(), format!("from {POOL4} one-arm"));
    assert_eq!(lab.ok("srv", &format!("curl -sS -m 10 http://{POOL4}:8080/")), BODY6);
    // Both families on the one port the appliance has.
    let m = lab.metrics();
    assert_eq!(m.sum("nat64_port_link_up", &[]), 1.0);
    assert!(m.translated("ipv6_to_ipv4") > 0.0 && m.translated("ipv4_to_ipv6") > 0.0);

    // A crash: SIGKILL, no cleanup by the daemon. Teardown still removes
    // every namespace and veth, and a new lab comes up after it.
    let pid = std::fs::read_to_string(format!("{LAB_DIR}/nat64d.pid")).expect("pid file");
    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    lab.running = false;
    let o = lab.script(&["down"], 60);
    assert!(o.status.success(), "down after a crash:\n{}", text(&o));
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ns.stdout).contains("n64"), "namespaces left: {}", text(&ns));
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(": n64"), "links left");
    let o = lab.script(&["up"], 120);
    assert!(o.status.success(), "up after a crash:\n{}", text(&o));
}

#[test]
fn siit_instance_both_ways() {
    // The stateless stand-in: each IPv6 host has its own IPv4 address
    // (EAMT, RFC 7757), so IPv4 can start connections too.
    let Some(mut lab) = Lab::up(&[]) else { return };
    lab.start(&["--engine", "siit"]);
    assert_eq!(lab.ok("cli", "curl -sS -m 10 http://www.lab.example/"), BODY4);
    let log = lab.ok("srv", &format!("tail -n 1 {LAB_DIR}/nginx-srv.access"));
    assert!(log.starts_with("203.0.113.10 "), "server saw {log}");
    assert_eq!(lab.ok("srv", "curl -sS -m 10 http://203.0.113.80/"), BODY6);
    assert_eq!(lab.stop(), "0");
}

#[test]
fn tayga_baseline_in_the_same_lab() {
    // The comparison in perf/README.md is only fair if TAYGA serves the
    // same clients the same way: DNS64 name, NAT44 to the same pool4.
    let Some(lab) = Lab::up(&[]) else { return };
    let o = lab.script(&["tayga-start"], 60);
    assert!(o.status.success(), "tayga-start:\n{}", text(&o));
    assert_eq!(lab.ok("cli", "curl -sS -m 10 http://www.lab.example/"), BODY4);
    let log = lab.ok("srv", &format!("tail -n 1 {LAB_DIR}/nginx-srv.access"));
    assert!(log.starts_with(&format!("{POOL4} ")), "server saw {log}");
    let out = lab.ok("cli", &format!("ping -c 2 -i 0.2 -W 2 {SERVER4_IN_POOL6}"));
    assert!(out.contains("2 received"), "{out}");
}
