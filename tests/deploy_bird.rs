//! deploy/bird in a namespace lab with Debian's bird2: two nat64d
//! appliances behind one router. Each appliance runs BIRD with the shipped
//! bird.conf and the shipped nat64-bird-health script; the router learns
//! pool6 from both (ECMP) and each pool4 from its owner. Stopping one
//! appliance withdraws its routes and clients' new flows all go through
//! the other; starting it again brings it back; the drain file withdraws
//! the other one.
//!
//! ```text
//!  nbgcli 2001:db8:2::10 -- nbgrt (router, BIRD) -- nbgsrv 192.0.2.10 (UDP echo)
//!                          |  data: 2001:db8:1a::/64, 198.51.100.0/30  -> nbgxa (nat64d A, BIRD, health)
//!                          |  data: 2001:db8:1b::/64, 198.51.100.4/30  -> nbgxb (nat64d B, BIRD, health)
//!                          |  management: 2001:db8:fa::/64 + 192.0.2.128/30 (A), 2001:db8:fb::/64 + 192.0.2.132/30 (B)
//! ```
//!
//! Needs root, bird2, curl, ethtool and python3; otherwise it says so and
//! passes. Namespaces and links start with `nbg` (not the lab's `n64`, so
//! the two never tear each other down).

#[path = "deploy_common.rs"]
mod common;

use common::repo;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NAMESPACES: [&str; 5] = ["nbgcli", "nbgrt", "nbgxa", "nbgxb", "nbgsrv"];
const POOL6: &str = "2001:db8:64::/96";
/// 192.0.2.10 embedded in pool6 (RFC 6052 §2.2).
const SERVER6: &str = "2001:db8:64::c000:20a";

fn run(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ns(name: &str, args: &[&str]) -> String {
    let mut a = vec!["ip", "netns", "exec", name];
    a.extend_from_slice(args);
    ok(&a)
}

fn ns_out(name: &str, args: &[&str]) -> Output {
    let mut a = vec!["ip", "netns", "exec", name];
    a.extend_from_slice(args);
    run(&a)
}

fn spawn(name: &str, args: &[&str], log: &Path) -> Child {
    let f = std::fs::File::create(log).unwrap();
    Command::new("ip")
        .args(["netns", "exec", name])
        .args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn missing_prerequisite() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for c in ["bird", "birdc", "curl", "ethtool", "python3"] {
        if run(&["sh", "-c", &format!("command -v {c}")]).stdout.is_empty() {
            return Some(format!("needs {c} (apt-get install bird2 curl ethtool python3)"));
        }
    }
    None
}

fn teardown() {
    for n in NAMESPACES {
        // Only this test starts processes in nbg* namespaces.
        if let Ok(o) = Command::new("ip").args(["netns", "pids", n]).output() {
            for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
    }
}

/// The lab: namespaces, processes, and the directory with their files.
struct Lab {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        teardown();
        if std::thread::panicking() {
            eprintln!("lab files kept in {}", self.dir.display());
        } else {
            std::fs::remove_dir_all(&self.dir).ok();
        }
    }
}

/// A veth pair between two namespaces, up, offloads off (AF_PACKET would
/// otherwise see partial checksums and super-frames).
fn link(a_ns: &str, a: &str, b_ns: &str, b: &str) {
    ok(&["ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns]);
    for (n, l) in [(a_ns, a), (b_ns, b)] {
        ns(n, &["ip", "link", "set", l, "up"]);
        let _ = ns_out(
            n,
            &["ethtool", "-K", l, "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off"],
        );
    }
}

fn addr(n: &str, l: &str, a: &str) {
    ns(n, &["ip", "addr", "add", a, "dev", l, "nodad"]);
}

fn nat64d_config(x: &str, gw4: &str, addr4: &str, pool4: &str, lcore: &str) -> String {
    let (net6, gw6) = (format!("2001:db8:1{x}::1/64"), format!("2001:db8:1{x}::2"));
    format!(
        r#"dpdk:
  eal_args: ["-l", "{lcore}", "--no-pci", "--no-huge", "-m", "256", "--no-shconf", "--file-prefix=nbgx{x}", "--log-level=*:error"]
interfaces:
  - name: v6
    device: "net_af_packet_{x}6,iface=nbg{x}60,qpairs=1,framecnt=1024"
    role: ipv6
    ipv6: ["{net6}"]
    routes: [ {{ prefix: "2001:db8:2::/64", via: "{gw6}" }} ]
  - name: v4
    device: "net_af_packet_{x}4,iface=nbg{x}40,qpairs=1,framecnt=1024"
    role: ipv4
    ipv4: ["{addr4}"]
    routes: [ {{ prefix: 0.0.0.0/0, via: "{gw4}" }} ]
instances:
  - nat64:
      name: plat
      pool6: "{POOL6}"
      pool4: [ {{ prefix: "{pool4}" }} ]
management:
  control_socket: /tmp/nbg-{x}.sock
  http_listen: 127.0.0.1:9464
"#
    )
}

/// The shipped bird.conf with one appliance's values in its site block.
fn appliance_bird_conf(dir: &Path, x: &str, defines: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("deploy/bird/bird.conf")).unwrap();
    for (k, v) in defines {
        let start =
            text.find(&format!("define {k} ")).unwrap_or_else(|| panic!("bird.conf has no define {k}"));
        let end = start + text[start..].find(';').unwrap();
        text.replace_range(start..end, &format!("define {k} = {v}"));
    }
    text.replace("log syslog all;", &format!("log \"{}/bird-{x}.log\" all;", dir.display()))
}

const ROUTER_BIRD: &str = r#"
router id 192.0.2.1;
protocol device { scan time 2; }
protocol direct { ipv4; ipv6; }
protocol kernel k6 { ipv6 { export where source = RTS_BGP; }; merge paths on; }
protocol kernel k4 { ipv4 { export where source = RTS_BGP; }; merge paths on; }
template bgp appliance {
    local as 64511;
    multihop 2;
    hold time 9;
    keepalive time 3;
}
protocol bgp xa6 from appliance { neighbor 2001:db8:fa::1 as 64512; ipv6 { import all; export none; }; }
protocol bgp xa4 from appliance { neighbor 192.0.2.129 as 64512; ipv4 { import all; export none; }; }
protocol bgp xb6 from appliance { neighbor 2001:db8:fb::1 as 64512; ipv6 { import all; export none; }; }
protocol bgp xb4 from appliance { neighbor 192.0.2.133 as 64512; ipv4 { import all; export none; }; }
"#;

const ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7))
log = open(sys.argv[1], "a", buffering=1)
while True:
    d, a = s.recvfrom(2048)
    log.write(a[0] + "\n")
    s.sendto(d, a)
"#;

/// N new UDP flows (new source ports) to the server through pool6; prints
/// how many were answered.
const CLIENT: &str = r#"
import socket, sys
n, first, dst = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
answered = 0
for p in range(first, first + n):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", p))
    s.settimeout(0.5)
    for _ in range(6):
        s.sendto(b"hello %d" % p, (dst, 7))
        try:
            s.recvfrom(2048)
            answered += 1
            break
        except socket.timeout:
            pass
    s.close()
print(answered)
"#;

impl Lab {
    fn start_nat64d(&mut self, x: &str) {
        let name = format!("nat64d-{x}");
        self.children.retain(|(n, _)| *n != name);
        let child = spawn(
            &format!("nbgx{x}"),
            &[
                env!("CARGO_BIN_EXE_nat64d"),
                "--config",
                &self.dir.join(format!("nat64d-{x}.yaml")).display().to_string(),
            ],
            &self.dir.join(format!("nat64d-{x}.log")),
        );
        self.children.push((name, child));
        let t = Instant::now();
        while !self.ready(x) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "nat64d {x} not ready:\n{}",
                self.file(&format!("nat64d-{x}.log"))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop_nat64d(&mut self, x: &str) {
        let name = format!("nat64d-{x}");
        let (_, mut c) = self.children.remove(self.children.iter().position(|(n, _)| *n == name).unwrap());
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let st = c.wait().unwrap();
        assert!(st.success(), "nat64d {x}: {st}\n{}", self.file(&format!("nat64d-{x}.log")));
    }

    fn ready(&self, x: &str) -> bool {
        ns_out(&format!("nbgx{x}"), &["curl", "-fsS", "-m", "1", "http://127.0.0.1:9464/readyz"])
            .status
            .success()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// The router's next hops for a destination.
    fn next_hops(&self, family: &str, prefix: &str) -> Vec<String> {
        let out = ns("nbgrt", &["ip", family, "route", "show", prefix]);
        let words: Vec<&str> = out.split_whitespace().collect();
        let mut hops: Vec<String> =
            words.windows(2).filter(|w| w[0] == "via").map(|w| w[1].to_string()).collect();
        hops.sort();
        hops
    }

    fn wait_next_hops(&self, family: &str, prefix: &str, want: &[&str], what: &str) -> Duration {
        let t = Instant::now();
        loop {
            let hops = self.next_hops(family, prefix);
            if hops == want {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "{what}: router has {hops:?} for {prefix}, want {want:?}\nrouter BIRD:\n{}\nA health:\n{}\nB health:\n{}",
                ns("nbgrt", &["birdc", "-s", &self.dir.join("bird-rt.ctl").display().to_string(), "show", "route", "all"]),
                self.file("health-a.log"),
                self.file("health-b.log"),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `n` new flows; (answered, the pool4 sources the server saw for them).
    fn flows(&self, n: u16, first_port: u16) -> (u16, Vec<String>) {
        let log = self.dir.join("echo.log");
        let before = self.file("echo.log").lines().count();
        let out = ns("nbgcli", &["python3", "-c", CLIENT, &n.to_string(), &first_port.to_string(), SERVER6]);
        let answered = out.trim().parse().unwrap();
        let seen = std::fs::read_to_string(log).unwrap();
        let mut srcs: Vec<String> = seen.lines().skip(before).map(str::to_string).collect();
        srcs.sort();
        srcs.dedup();
        (answered, srcs)
    }
}

#[test]
fn bird_announces_only_ready_appliances_and_traffic_fails_over() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("deploy_bird skipped: {why}");
        return;
    }
    teardown();
    let dir = std::env::temp_dir().join(format!("nat64-deploy-bird-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab { dir: dir.clone(), children: Vec::new() };
    for n in NAMESPACES {
        ok(&["ip", "netns", "add", n]);
        ns(n, &["ip", "link", "set", "lo", "up"]);
    }
    ns("nbgrt", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    ns("nbgrt", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // Spread flows over the ECMP next hops by ports too, so both appliances
    // carry some of them.
    ns("nbgrt", &["sysctl", "-qw", "net.ipv6.fib_multipath_hash_policy=1"]);

    link("nbgcli", "nbgc0", "nbgrt", "nbgc1");
    addr("nbgcli", "nbgc0", "2001:db8:2::10/64");
    addr("nbgrt", "nbgc1", "2001:db8:2::1/64");
    ns("nbgcli", &["ip", "-6", "route", "add", "default", "via", "2001:db8:2::1"]);
    link("nbgsrv", "nbgs0", "nbgrt", "nbgs1");
    addr("nbgsrv", "nbgs0", "192.0.2.10/25");
    addr("nbgrt", "nbgs1", "192.0.2.1/25");
    ns("nbgsrv", &["ip", "route", "add", "default", "via", "192.0.2.1"]);

    let appliances = [
        ("a", "198.51.100.1/30", "198.51.100.2", "203.0.113.1", "0", "192.0.2.129", "192.0.2.130"),
        ("b", "198.51.100.5/30", "198.51.100.6", "203.0.113.2", "1", "192.0.2.133", "192.0.2.134"),
    ];
    for (x, v4, gw4, pool4, lcore, m4, rt_m4) in appliances {
        let xn = format!("nbgx{x}");
        // Data ports: DPDK's (AF_PACKET); the kernel stays off them.
        for fam in ["6", "4"] {
            let (inner, outer) = (format!("nbg{x}{fam}0"), format!("nbg{x}{fam}1"));
            link(&xn, &inner, "nbgrt", &outer);
            ns(&xn, &["sysctl", "-qw", &format!("net.ipv6.conf.{inner}.disable_ipv6=1")]);
        }
        addr("nbgrt", &format!("nbg{x}61"), &format!("2001:db8:1{x}::2/64"));
        addr("nbgrt", &format!("nbg{x}41"), &format!("{gw4}/30"));
        // Management: BGP runs here.
        link(&xn, &format!("nbg{x}m0"), "nbgrt", &format!("nbg{x}m1"));
        addr(&xn, &format!("nbg{x}m0"), &format!("2001:db8:f{x}::1/64"));
        addr(&xn, &format!("nbg{x}m0"), &format!("{m4}/30"));
        addr("nbgrt", &format!("nbg{x}m1"), &format!("2001:db8:f{x}::2/64"));
        addr("nbgrt", &format!("nbg{x}m1"), &format!("{rt_m4}/30"));
        std::fs::write(dir.join(format!("nat64d-{x}.yaml")), nat64d_config(x, gw4, v4, pool4, lcore))
            .unwrap();
        let next6 = format!("2001:db8:1{x}::1");
        let bird = appliance_bird_conf(
            &dir,
            x,
            &[
                ("ROUTER_ID", m4),
                ("POOL6", POOL6),
                ("POOL4", &format!("{pool4}/32")),
                ("NEXTHOP6", &next6),
                ("NEXTHOP4", v4.split('/').next().unwrap()),
                ("PEER6", &format!("2001:db8:f{x}::2")),
                ("PEER4", rt_m4),
            ],
        );
        std::fs::write(dir.join(format!("bird-{x}.conf")), bird).unwrap();
    }
    std::fs::write(dir.join("bird-rt.conf"), ROUTER_BIRD).unwrap();

    // Processes: the echo server, nat64d A and B, BIRD everywhere, the
    // health checkers.
    let echo = spawn(
        "nbgsrv",
        &["python3", "-c", ECHO, &dir.join("echo.log").display().to_string()],
        &dir.join("echo.out"),
    );
    lab.children.push(("echo".into(), echo));
    lab.start_nat64d("a");
    lab.start_nat64d("b");
    for (n, x) in [("nbgrt", "rt"), ("nbgxa", "a"), ("nbgxb", "b")] {
        let conf = dir.join(format!("bird-{x}.conf")).display().to_string();
        let ctl = dir.join(format!("bird-{x}.ctl")).display().to_string();
        ns(n, &["bird", "-p", "-c", &conf]);
        let c = spawn(n, &["bird", "-f", "-c", &conf, "-s", &ctl], &dir.join(format!("bird-{x}.out")));
        lab.children.push((format!("bird-{x}"), c));
    }
    for x in ["a", "b"] {
        let ctl = dir.join(format!("bird-{x}.ctl")).display().to_string();
        let c = Command::new("ip")
            .args(["netns", "exec", &format!("nbgx{x}"), "env"])
            .arg(format!("NAT64_BIRDC=birdc -s {ctl}"))
            .arg("NAT64_CHECK_INTERVAL=0.5")
            .arg(format!("NAT64_DRAIN_FILE={}/drain-{x}", dir.display()))
            .arg(repo().join("deploy/bird/nat64-bird-health"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("health-{x}.log"))).unwrap())
            .spawn()
            .unwrap();
        lab.children.push((format!("health-{x}"), c));
    }

    // Both appliances announce: pool6 by ECMP, each pool4 from its owner.
    let both = ["2001:db8:1a::1", "2001:db8:1b::1"];
    let t = lab.wait_next_hops("-6", POOL6, &both, "both announced");
    eprintln!("pool6 announced by both {:.1} s after BIRD started", t.as_secs_f64());
    lab.wait_next_hops("-4", "203.0.113.1", &["198.51.100.1"], "pool4 of A");
    lab.wait_next_hops("-4", "203.0.113.2", &["198.51.100.5"], "pool4 of B");
    let (answered, srcs) = lab.flows(24, 20000);
    assert_eq!(answered, 24, "every flow answered through the pair");
    assert_eq!(srcs, ["203.0.113.1", "203.0.113.2"], "flows spread over both appliances");

    // Stop A: its health checker withdraws pool6 and pool4; the router
    // keeps only B, and every new flow goes through B.
    let stop = Instant::now();
    lab.stop_nat64d("a");
    lab.wait_next_hops("-6", POOL6, &["2001:db8:1b::1"], "A withdrawn");
    let withdrawn = stop.elapsed();
    eprintln!("pool6 of A withdrawn {:.1} s after SIGTERM", withdrawn.as_secs_f64());
    lab.wait_next_hops("-4", "203.0.113.1", &[], "pool4 of A withdrawn");
    let (answered, srcs) = lab.flows(24, 21000);
    assert_eq!(answered, 24, "every new flow answered by B");
    assert_eq!(srcs, ["203.0.113.2"], "only B's pool4");
    let a_state =
        ns("nbgxa", &["birdc", "-s", &dir.join("bird-a.ctl").display().to_string(), "show", "protocols"]);
    assert!(a_state.lines().any(|l| l.starts_with("nat64_pool6") && l.contains(" down ")), "{a_state}");

    // A comes back: announced again after its rise checks.
    lab.start_nat64d("a");
    lab.wait_next_hops("-6", POOL6, &both, "A back");
    lab.wait_next_hops("-4", "203.0.113.1", &["198.51.100.1"], "pool4 of A back");

    // Draining B (maintenance) withdraws it while its nat64d still runs.
    std::fs::write(dir.join("drain-b"), "").unwrap();
    lab.wait_next_hops("-6", POOL6, &["2001:db8:1a::1"], "B drained");
    assert!(lab.ready("b"), "B itself is still ready");
    let (answered, srcs) = lab.flows(12, 22000);
    assert_eq!((answered, srcs), (12, vec!["203.0.113.1".to_string()]));
    std::fs::remove_file(dir.join("drain-b")).unwrap();
    lab.wait_next_hops("-6", POOL6, &both, "B undrained");

    // Stopping the health checker withdraws too (nobody watches nat64d).
    let (_, mut h) = lab.children.remove(lab.children.iter().position(|(n, _)| n == "health-b").unwrap());
    let _ = Command::new("kill").args(["-TERM", &h.id().to_string()]).status();
    h.wait().unwrap();
    lab.wait_next_hops("-6", POOL6, &["2001:db8:1a::1"], "B's checker stopped");
    assert!(lab.file("health-b.log").contains("nat64_pool6 disabled"), "{}", lab.file("health-b.log"));
}
