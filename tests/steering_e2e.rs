//! NIC steering of IPv4 return traffic on a real device: nat64d runs with
//! two workers in a network namespace, its IPv4 port a net_tap device whose
//! `rte_flow` rules become TC flower filters with a queue mapping. The
//! kernel side of the tap sends UDP to pool4 addresses owned by each worker.
//!
//! - `steering: auto` on an address-split pool4: rules go in, every packet
//!   arrives on its owner's queue, no handoff, both workers translate;
//! - `steering: software`: no rules, the kernel spreads flows over both
//!   queues and the handoff counter shows the misdelivered ones;
//! - a port-split pool4 needs masked port matches, which net_tap refuses
//!   (TC flower has no port masks in DPDK 22.11's tap driver): `auto` falls
//!   back to software with a log line, `flow` refuses to start.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{eal_mem, read_pcap, write_pcap, Daemon};

/// Flows sent to each of the two pool4 addresses.
const FLOWS: u16 = 16;

/// A namespace of this test, deleted on drop (with nat64d's tap in it).
struct Netns {
    name: String,
    dir: PathBuf,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("nat64steer{tag}{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(st.success(), "ip netns add {name}");
        Netns { name, dir }
    }

    /// Run a shell command inside the namespace; its stdout on success.
    fn sh(&self, cmd: &str) -> String {
        let o = Command::new("ip").args(["netns", "exec", &self.name, "sh", "-c", cmd]).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
        if !std::thread::panicking() {
            std::fs::remove_dir_all(&self.dir).ok();
        }
    }
}

/// The tap's kernel-side name (at most 15 bytes).
fn tap_name() -> String {
    format!("st4_{}", std::process::id())
}

fn config(dir: &Path, mem: &str, steering: &str, pool4: &str) -> String {
    let d = dir.display();
    let tap = tap_name();
    format!(
        r#"dpdk:
  eal_args: ["--lcores=0@0,1@1,2@1", "--no-pci", {mem}, "--log-level=*:error"]
  steering: {steering}
management: {{ control_socket: "{d}/control.sock" }}
interfaces:
  - {{ name: v6, role: ipv6, mac: "02:00:00:00:06:01", ipv6: ["2001:db8::1/64"],
      neighbours: [{{ ip: "2001:db8::5", mac: "02:00:00:00:06:02" }}],
      device: "net_pcap_s6,rx_pcap={d}/v6q0.pcap,rx_pcap={d}/v6q1.pcap,tx_pcap={d}/v6out0.pcap,tx_pcap={d}/v6out1.pcap" }}
  - {{ name: v4, device: "net_tap_s4,iface={tap}", role: ipv4, mac: "02:00:00:00:04:01", ipv4: ["192.0.2.2/24"] }}
instances:
  - nat64:
      {{ name: split, pool6: "2001:db8:64::/96", pool4: [{{ prefix: "{pool4}" }}],
        static_bib: [{{ protocol: udp, ipv6: "2001:db8::5#7001", ipv4: "198.51.100.1#5001" }},
                     {{ protocol: udp, ipv6: "2001:db8::5#7002", ipv4: "198.51.100.2#5002" }}] }}
"#
    )
}

/// What one run left behind.
struct Run {
    log: String,
    counters: serde_json::Value,
    /// UDP destination ports of the IPv6 packets each worker sent.
    out: [Vec<u16>; 2],
    /// `nat64ctl stats` while it ran.
    ctl: String,
}

/// Start nat64d in `ns`, send `FLOWS` UDP flows from the kernel side of
/// the tap to 198.51.100.1:5001 and to 198.51.100.2:5002, stop, collect.
/// With `reload`, the configuration's pool4 is then replaced by that one
/// and reloaded (`nat64ctl config reload`) before nat64d stops.
fn run(ns: &Netns, steering: &str, pool4: &str, reload: Option<&str>) -> Result<Run, String> {
    let dir = &ns.dir;
    for f in ["v6q0", "v6q1"] {
        write_pcap(&dir.join(format!("{f}.pcap")), &[]);
    }
    let cfg = dir.join("nat64d.yaml");
    std::fs::write(&cfg, config(dir, &eal_mem("st"), steering, pool4)).unwrap();
    let stats = dir.join("stats.json");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_nat64d")]);
    cmd.arg("--config").arg(&cfg).arg("--stats-file").arg(&stats);
    let daemon = Daemon::start(cmd)?;
    let tap = tap_name();
    // The kernel side plays the IPv4 router: pool4 is behind nat64d.
    ns.sh(&format!(
        "ip link set lo up && ip link set {tap} up && ip addr add 192.0.2.1/24 dev {tap} && \
         ip route add 198.51.100.0/30 via 192.0.2.2 && \
         ip neigh replace 192.0.2.2 lladdr 02:00:00:00:04:01 dev {tap} nud permanent"
    ));
    let send = format!(
        "import socket\n\
         for sport in range(40000, 40000 + {FLOWS}):\n\
         \x20   for dst in (('198.51.100.1', 5001), ('198.51.100.2', 5002)):\n\
         \x20       s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20       s.bind(('192.0.2.1', sport))\n\
         \x20       s.sendto(b'steer me', dst)\n\
         \x20       s.close()\n"
    );
    std::fs::write(dir.join("send.py"), send).unwrap();
    ns.sh(&format!("/usr/bin/python3 {}/send.py", dir.display()));
    std::thread::sleep(Duration::from_millis(700));
    let nat64ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
            .arg("--socket")
            .arg(dir.join("control.sock"))
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
            .unwrap_or_default()
    };
    let mut ctl = nat64ctl(&["stats"]);
    if let Some(p) = reload {
        std::fs::write(&cfg, config(dir, &eal_mem("st"), steering, p)).unwrap();
        ctl += &nat64ctl(&["config", "reload"]);
    }
    let (ok, log) = daemon.stop();
    if !ok {
        return Err(format!("nat64d failed:\n{log}"));
    }
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let dports = |q: usize| -> Vec<u16> {
        read_pcap(&dir.join(format!("v6out{q}.pcap")))
            .iter()
            .filter_map(|f| match etherparse::SlicedPacket::from_ethernet(f).ok()?.transport {
                Some(etherparse::TransportSlice::Udp(u)) => Some(u.destination_port()),
                _ => None,
            })
            .collect()
    };
    Ok(Run { log, counters: s["counters"].clone(), out: [dports(0), dports(1)], ctl })
}

fn skip() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (network namespaces, tap devices)");
        return true;
    }
    false
}

/// A run on a /30, which two workers split by address: .0 and .2 belong
/// to worker 0, .1 and .3 to worker 1 (one rule each per protocol).
/// Whichever queue received them, every packet must have been translated
/// by its owner: worker 0 sends IPv6 port 7002 (.2), worker 1 7001 (.1).
/// `None` when the test cannot run here.
fn run_address_split(tag: &str, steering: &str, reload: Option<&str>) -> Option<Run> {
    if skip() {
        return None;
    }
    let ns = Netns::new(tag);
    let r = run(&ns, steering, "198.51.100.0/30", reload).unwrap();
    assert_eq!(r.counters["v4_to_v6"], 2 * FLOWS, "{}\n{}", r.counters, r.log);
    assert_eq!(r.out[0], vec![7002; FLOWS as usize], "worker 0's output");
    assert_eq!(r.out[1], vec![7001; FLOWS as usize], "worker 1's output");
    Some(r)
}

#[test]
fn flow_rules_deliver_ipv4_return_traffic_to_the_owner() {
    let Some(r) = run_address_split("a", "auto", Some("198.51.100.0/29")) else { return };
    let c = &r.counters;
    // The reload that grew pool4 to a /29 rebuilt the rules: one steering
    // line at start, one after the reload.
    let lines = r.log.lines().filter(|l| l.contains("steering: ") && l.contains("net_tap_s4")).count();
    assert_eq!(lines, 2, "{}\n{}", r.log, r.ctl);
    if r.log.contains("Disabling rte flow support") {
        // A kernel without TC flower/skbedit/multiq (CONFIG_NET_CLS_FLOWER):
        // the tap validates the rules but cannot create them. nat64d says
        // so and keeps the software handoff.
        eprintln!("net_tap has no flow support on this kernel: checking the fallback");
        assert!(
            r.log.contains(
                "steering: software handoff between workers (creating rule 1 of 6: rte_flow_create"
            ),
            "{}",
            r.log
        );
        assert!(c["handoffs"].as_u64().unwrap() > 0, "{c}");
        assert!(r.ctl.contains("steering: software (creating rule 1 of 6"), "{}", r.ctl);
        return;
    }
    assert!(r.log.contains("NIC flow rules"), "{}", r.log);
    assert!(r.log.contains("rules=6"), "3 protocols x 2 workers: {}", r.log);
    assert!(r.ctl.contains("steering: flow (6 NIC rules)"), "{}", r.ctl);
    assert_eq!(c["handoffs"], 0, "every packet arrived on its owner's queue: {c}");
    assert!(!r.log.contains("removing rules"), "rules destroyed cleanly: {}", r.log);
}

#[test]
fn software_steering_hands_misdelivered_packets_over() {
    let Some(r) = run_address_split("s", "software", None) else { return };
    let c = &r.counters;
    assert!(r.log.contains("software handoff between workers (dpdk.steering is software)"), "{}", r.log);
    assert!(r.ctl.contains("port net_tap_s4: link up"), "{}", r.ctl);
    assert!(r.ctl.contains("steering: software (dpdk.steering is software)"), "{}", r.ctl);
    // The kernel hashes 32 flows over two queues: some reach the other
    // worker (all 32 landing right has probability 2^-32).
    let h = c["handoffs"].as_u64().unwrap();
    assert!(h > 0 && h < 2 * FLOWS as u64, "{c}");
    assert_eq!(c["handoffs_received"], h, "{c}");
}

#[test]
fn refused_rules_fall_back_or_stop_the_start() {
    if skip() {
        return;
    }
    // Two /32s, each split by port over the workers: the rules need masked
    // ports, which net_tap refuses.
    let ns = Netns::new("p");
    let pool = "198.51.100.1/32\" }, { prefix: \"198.51.100.2/32";
    let r = run(&ns, "auto", pool, None).unwrap();
    // net_tap refuses them at validation or (22.11 checks port masks only
    // when it converts the rule) at creation: either way, one line says so.
    let line =
        r.log.lines().find(|l| l.contains("steering: software handoff between workers (")).unwrap_or("");
    assert!(line.contains("refuse"), "{}", r.log);
    assert_eq!(r.counters["v4_to_v6"], 2 * FLOWS, "{}", r.counters);
    drop(ns);
    let ns = Netns::new("f");
    let err = run(&ns, "flow", pool, None).err().expect("steering: flow must not start");
    assert!(err.contains("dpdk.steering is flow, but device net_tap_s4 cannot steer"), "{err}");
}
