//! What the end-to-end tests share: running the real `nat64d` and reading
//! and writing pcap files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

/// EAL memory arguments for a test daemon, as YAML list items: hugepages
/// when `make test` reserved them, else `--no-huge` with a private prefix.
pub fn eal_mem(tag: &str) -> String {
    if std::env::var("NAT64_TEST_HUGEPAGES").as_deref() == Ok("1") {
        "\"--in-memory\"".to_string()
    } else {
        format!(
            "\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--file-prefix=t{tag}{}\"",
            std::process::id()
        )
    }
}

/// Write `frames` as a pcap file.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, f)).unwrap();
    }
}

/// The frames of a pcap file (none when it does not exist).
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(f) = std::fs::File::open(path) else { return Vec::new() };
    let Ok(mut r) = PcapReader::new(f) else { return Vec::new() };
    let mut out = Vec::new();
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.into_owned());
    }
    out
}

/// A running nat64d whose log is read to the end on a thread (so it never
/// writes into a closed pipe).
pub struct Daemon {
    child: Child,
    log: JoinHandle<String>,
}

impl Daemon {
    /// Spawn `cmd` (a nat64d command line) and wait until its dataplane
    /// runs. Err: the log so far.
    pub fn start(mut cmd: Command) -> Result<Daemon, String> {
        let mut child =
            cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().map_err(|e| e.to_string())?;
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("dataplane starting") {
                    let _ = tx.send(());
                }
                log += &line;
                log.push('\n');
            }
            log
        });
        let d = Daemon { child, log };
        if rx.recv_timeout(Duration::from_secs(20)).is_ok() {
            Ok(d)
        } else {
            let (_, log) = d.stop();
            Err(format!("nat64d did not start:\n{log}"))
        }
    }

    /// SIGTERM, wait, and return whether it exited cleanly with its log.
    pub fn stop(mut self) -> (bool, String) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let ok = self.child.wait().is_ok_and(|s| s.success());
        (ok, self.log.join().unwrap_or_default())
    }
}

/// Run nat64d on `yaml` (written to DIR/nat64d.yaml, counters to
/// DIR/stats.json) for `wait`, stop it, and assert it exited cleanly.
/// Returns its final counters (as text) and its log.
pub fn run_for(dir: &Path, yaml: &str, wait: Duration) -> (String, String) {
    let cfg = dir.join("nat64d.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let stats = dir.join("stats.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nat64d"));
    cmd.arg("--config").arg(&cfg).arg("--stats-file").arg(&stats);
    let daemon = Daemon::start(cmd).unwrap();
    std::thread::sleep(wait);
    let (ok, log) = daemon.stop();
    assert!(ok, "nat64d failed:\n{log}");
    (std::fs::read_to_string(&stats).unwrap_or_default(), log)
}

/// A finished command's status and output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Whether the tests run as root (namespaces and DPDK need it).
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Poll `f` until it holds; panic naming `what` after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// The stdout of a command that must have succeeded (`what` names it).
pub fn stdout_ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Start `c` in the background with its output kept for `wait_with_output`.
pub fn spawn_piped(mut c: Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning a lab command")
}

/// `nat64ctl session list --format json` output as its rows.
pub fn session_rows(out: &str) -> Vec<serde_json::Value> {
    match serde_json::from_str(out).expect("session list is JSON") {
        serde_json::Value::Array(v) => v,
        other => panic!("session list: not an array: {other}"),
    }
}

/// The `interfaces` and `instances` sections most single-daemon tests
/// use: port `v6` (device `v6dev`, 2001:db8:1::1/64, client
/// 2001:db8:1::10), a silent net_null port `v4` (192.0.2.1/29, default
/// route via 192.0.2.6) and NAT64 instance `plat` (pool6
/// 2001:db8:64::/96, pool4 `pool4`).
pub fn plat_yaml(tag: &str, v6dev: &str, pool4: &str) -> String {
    let v6 = ("v6", "ipv6", "06", "ipv6: [\"2001:db8:1::1/64\"]", "2001:db8:1::10");
    let v4 = ("v4", "ipv4", "04", "ipv4: [\"192.0.2.1/29\"]", "192.0.2.6");
    let dev4 = format!("net_null_{tag}4,no-rx=1");
    let mut out = String::from("interfaces:\n");
    for ((name, role, m, addr, hop), dev) in [(v6, v6dev), (v4, dev4.as_str())] {
        out += &format!(
            "  - name: {name}\n    device: \"{dev}\"\n    role: {role}\n    mac: \"02:00:00:00:{m}:01\"\n    {addr}\n    neighbours:\n      - ip: \"{hop}\"\n        mac: \"02:00:00:00:{m}:02\"\n"
        );
    }
    out += "    routes:\n      - prefix: \"0.0.0.0/0\"\n        via: \"192.0.2.6\"\n";
    out + &format!(
        "instances:\n  - nat64:\n      name: plat\n      pool6: \"2001:db8:64::/96\"\n      pool4:\n        - prefix: \"{pool4}\"\n"
    )
}
