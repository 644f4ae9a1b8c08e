//! Session sync over a multicast group (IPv4 and IPv6) between three real
//! `nat64d` processes (C listening on the wildcard address): sessions
//! created on A appear on B and C; a restarted B asks the group for a bulk
//! resync and gets it; C restarted with another key has its datagrams
//! refused and counted as `forged` by A and B, and refuses theirs.
//!
//! Each daemon runs in its own network namespace, one veth each into a
//! bridge namespace: the engine turns multicast loopback off, so daemons
//! sharing one namespace would not hear each other (docs/ha.md,
//! "Multicast"). The namespaces carry this process's pid and are deleted
//! on drop, also when an assertion fails. Needs root.

use std::net::Ipv6Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use etherparse::PacketBuilder;

mod support;
use support::{eal_mem, is_root, plat_yaml, session_rows, stdout_ok, text, wait_for, write_pcap, Daemon};

const CLIENTS: u16 = 4;
const KEY: [u8; 32] = [0x3d; 32];
const OTHER_KEY: [u8; 32] = [0x7b; 32];

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(o.status.success(), "ip {}:\n{}", args.join(" "), text(&o));
}

/// The namespaces: `mcast<pid><family>x` holds the bridge,
/// `mcast<pid><family><n>` node n.
struct Lab {
    /// Process id and address family (4 or 6): the tests run in parallel.
    id: String,
    v6: bool,
    nodes: Vec<char>,
}

impl Lab {
    fn ns(&self, n: char) -> String {
        format!("mcast{}{n}", self.id)
    }

    /// The node end of node n's veth (what `multicast_interface` names).
    fn dev(&self, n: char) -> String {
        format!("mc{}{n}", self.id)
    }

    /// Node k's address: (interface address, sync listen). Node 3 listens
    /// on the wildcard address, on another port than the group's.
    fn addr(&self, k: u8) -> (String, String) {
        match (self.v6, k) {
            (true, 3) => (format!("2001:db8:5::{k}/64"), "[::]:6465".into()),
            (true, _) => (format!("2001:db8:5::{k}/64"), format!("[2001:db8:5::{k}]:6464")),
            (false, 3) => (format!("198.51.100.{k}/24"), "0.0.0.0:6465".into()),
            (false, _) => (format!("198.51.100.{k}/24"), format!("198.51.100.{k}:6464")),
        }
    }

    /// The sync group (a transient site-scope group for IPv6, RFC 4291 §2.7).
    fn group(&self) -> &'static str {
        if self.v6 {
            "[ff15::6464]:6464"
        } else {
            "239.64.64.64:6464"
        }
    }

    fn up(nodes: &[char], v6: bool) -> Lab {
        let id = format!("{}{}", std::process::id(), if v6 { 6 } else { 4 });
        let mut lab = Lab { id, v6, nodes: Vec::new() };
        let br = lab.ns('x');
        ip(&["netns", "add", &br]);
        lab.nodes.push('x');
        let bridge = format!("mc{}br", lab.id);
        // No IGMP snooping: without a querier the bridge floods the group.
        ip(&["-n", &br, "link", "add", &bridge, "type", "bridge", "mcast_snooping", "0"]);
        ip(&["-n", &br, "link", "set", &bridge, "up"]);
        for (k, &n) in nodes.iter().enumerate() {
            let (ns, dev) = (lab.ns(n), lab.dev(n));
            ip(&["netns", "add", &ns]);
            lab.nodes.push(n);
            let port = format!("{dev}b");
            ip(&["-n", &br, "link", "add", &port, "type", "veth", "peer", "name", &dev, "netns", &ns]);
            ip(&["-n", &br, "link", "set", &port, "master", &bridge, "up"]);
            // nodad: the daemon binds the address at once.
            let mut add = vec!["-n", &ns, "addr", "add"];
            let (cidr, _) = lab.addr(k as u8 + 1);
            add.extend([cidr.as_str(), "dev", &dev]);
            if v6 {
                add.push("nodad");
            }
            ip(&add);
            ip(&["-n", &ns, "link", "set", &dev, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for &n in &self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(n)]).status();
        }
    }
}

/// One daemon in its namespace; `flows` IPv6 UDP clients replayed without
/// end (0: silent net_null devices).
struct Node {
    name: char,
    ns: String,
    dir: PathBuf,
    daemon: Option<Daemon>,
}

impl Node {
    fn new(lab: &Lab, name: char, addr: u8, flows: u16) -> Node {
        let tag = format!("mc{name}{}", lab.id);
        let dir = std::env::temp_dir().join(format!("nat64-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let v6dev = if flows > 0 {
            let src: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
            let dst: Ipv6Addr = "2001:db8:64::c633:6409".parse().unwrap();
            let frames: Vec<Vec<u8>> = (0..flows)
                .map(|k| {
                    let mut f = Vec::new();
                    PacketBuilder::ethernet2([2, 0, 0, 0, 6, 2], [2, 0, 0, 0, 6, 1])
                        .ipv6(src.octets(), dst.octets(), 64)
                        .udp(20000 + k, 53)
                        .write(&mut f, &[0x42u8; 32])
                        .unwrap();
                    f
                })
                .collect();
            write_pcap(&dir.join("in6.pcap"), &frames);
            format!("net_pcap_{tag}6,rx_pcap={}/in6.pcap,infinite_rx=1", dir.display())
        } else {
            format!("net_null_{tag}6,no-rx=1")
        };
        let yaml = format!(
            r#"dpdk:
  eal_args: ["-l", "0", "--no-pci", {mem}, "--log-level=*:error"]
  mbufs: 8191
{plat}management:
  control_socket: {dir}/control.sock
  http_listen: "127.0.0.1:9464"
sync:
  listen: "{listen}"
  peers: ["{group}"]
  multicast_interface: "{dev}"
  key_file: {dir}/sync.key
  flush_ms: 5
  refresh_s: 2
"#,
            mem = eal_mem(&tag),
            plat = plat_yaml(&tag, &v6dev, "203.0.113.0/28"),
            dir = dir.display(),
            dev = lab.dev(name),
            listen = lab.addr(addr).1,
            group = lab.group(),
        );
        std::fs::write(dir.join("nat64d.yaml"), yaml).unwrap();
        let mut n = Node { name, ns: lab.ns(name), dir, daemon: None };
        n.set_key(&KEY);
        n.start();
        n
    }

    fn set_key(&self, key: &[u8]) {
        let p = self.dir.join("sync.key");
        std::fs::write(&p, key).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn start(&mut self) {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_nat64d"), "--config"])
            .arg(self.dir.join("nat64d.yaml"))
            .env("NAT64D_LOG", "info");
        self.daemon = Some(Daemon::start(c).unwrap_or_else(|log| panic!("node {}: {log}", self.name)));
        wait_for("the control socket", 20, || self.ctl(&["stats"]).status.success());
    }

    fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            let (ok, log) = d.stop();
            if !ok || std::thread::panicking() {
                eprintln!("--- node {} (clean exit: {ok}) ---\n{log}", self.name);
            }
        }
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_nat64ctl"))
            .arg("--socket")
            .arg(self.dir.join("control.sock"))
            .args(args)
            .output()
            .expect("run nat64ctl")
    }

    /// (IPv6, port, IPv4, port) of every session, sorted.
    fn sessions(&self) -> Vec<(String, u64, String, u64)> {
        let out = stdout_ok(self.ctl(&["session", "list", "--format", "json"]), "session list");
        let mut v: Vec<_> = session_rows(&out)
            .iter()
            .map(|s| {
                let str = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                (
                    str("ipv6"),
                    s["ipv6_port"].as_u64().unwrap_or(0),
                    str("ipv4"),
                    s["ipv4_port"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// A sync counter of `nat64ctl stats` (`rejected/forged` for a reason);
    /// 0 when not shown.
    fn sync_stat(&self, key: &str) -> u64 {
        let out = stdout_ok(self.ctl(&["stats"]), "stats");
        let sync = out.split_once("\nsync:\n").map_or("", |(_, s)| s);
        sync.lines()
            .filter_map(|l| l.trim_start().split_once(char::is_whitespace).map(|(k, v)| (k.trim(), v.trim())))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[test]
fn sessions_sync_over_an_ipv4_multicast_group() {
    run(false);
}

#[test]
fn sessions_sync_over_an_ipv6_multicast_group() {
    run(true);
}

fn run(v6: bool) {
    if !is_root() {
        eprintln!("sync_mcast_e2e skipped: needs root (network namespaces)");
        return;
    }
    let lab = Lab::up(&['a', 'b', 'c'], v6);
    let mut b = Node::new(&lab, 'b', 2, 0);
    let mut c = Node::new(&lab, 'c', 3, 0);
    let a = Node::new(&lab, 'a', 1, CLIENTS);

    // --- sessions created on A appear on B and C --------------------------
    wait_for("A's sessions", 30, || a.sessions().len() == usize::from(CLIENTS));
    let want = a.sessions();
    wait_for("B's and C's copies", 30, || b.sessions() == want && c.sessions() == want);
    for n in [&b, &c] {
        assert!(n.sync_stat("sessions_received") >= u64::from(CLIENTS), "node {}", n.name);
        assert_eq!(n.sync_stat("send_errors"), 0, "node {}", n.name);
    }
    assert!(a.sync_stat("batches_sent") >= 1);

    // --- a restarted B gets a bulk resync ---------------------------------
    let served = a.sync_stat("resync_served");
    b.stop();
    b.start();
    wait_for("B's resync after restart", 30, || b.sync_stat("resync_received") >= 1);
    wait_for("B's copies after restart", 30, || b.sessions() == want);
    assert!(a.sync_stat("resync_served") > served, "A answered B's request sent to the group");
    assert_eq!(b.sync_stat("resync_incomplete"), 0);

    // --- C restarted with another key: refused both ways, counted ----------
    c.stop();
    c.set_key(&OTHER_KEY);
    let forged = |n: &Node| n.sync_stat("rejected/forged");
    let (fa, fb) = (forged(&a), forged(&b));
    c.start();
    // C's resync request (and A's refreshes, every 2 s) cross the group.
    wait_for("A and B refusing C", 30, || forged(&a) > fa && forged(&b) > fb);
    wait_for("C refusing A", 30, || forged(&c) >= 1);
    assert!(c.sessions().is_empty(), "C took sessions under another key: {:?}", c.sessions());
    assert_eq!(c.sync_stat("sessions_received"), 0);
    assert_eq!(b.sessions(), want, "B unchanged by C");
    drop((a, b, c));
    drop(lab);
}
