//! Shared by the deploy_* tests: run the real nat64d on virtual devices
//! with a shipped configuration adapted to this machine, and talk HTTP to it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml_ng::{Mapping, Value};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// EAL arguments for one lcore without NICs (hugepages when the test
/// environment says it has them, like the other end-to-end tests).
pub fn eal_args(tag: &str) -> Value {
    let mut a = vec!["-l", "0", "--no-pci"];
    let prefix = format!("--file-prefix={tag}");
    if std::env::var("NAT64_TEST_HUGEPAGES").as_deref() == Ok("1") {
        a.push("--in-memory");
    } else {
        a.extend(["--no-huge", "-m", "512", "--no-shconf", prefix.as_str()]);
    }
    a.push("--log-level=*:error");
    Value::Sequence(a.into_iter().map(|s| Value::String(s.to_string())).collect())
}

fn key(s: &str) -> Value {
    Value::String(s.to_string())
}

/// The configuration `text` made runnable here: one lcore, every device
/// (PCI or vdev) replaced by a `net_null` vdev (one per distinct device, so
/// VLAN sharing stays as written), private socket, HTTP port and session
/// log. Everything that concerns translation is left as it is.
pub fn adapt(text: &str, tag: &str, dir: &Path, http: SocketAddr) -> String {
    let mut v: Value = serde_yaml_ng::from_str(text).expect("YAML");
    let m = v.as_mapping_mut().expect("top-level mapping");
    let mut dpdk = Mapping::new();
    dpdk.insert(key("eal_args"), eal_args(tag));
    m.insert(key("dpdk"), Value::Mapping(dpdk));
    let mut devices: Vec<String> = Vec::new();
    for i in m.get_mut("interfaces").and_then(Value::as_sequence_mut).expect("interfaces") {
        let i = i.as_mapping_mut().expect("interface mapping");
        let dev = i.get("device").and_then(Value::as_str).expect("device").to_string();
        let n = devices.iter().position(|d| *d == dev).unwrap_or_else(|| {
            devices.push(dev);
            devices.len() - 1
        });
        i.insert(key("device"), key(&format!("net_null_{tag}{n},no-rx=1")));
    }
    let mut mgmt = Mapping::new();
    mgmt.insert(key("control_socket"), key(&dir.join("control.sock").display().to_string()));
    mgmt.insert(key("http_listen"), key(&http.to_string()));
    m.insert(key("management"), Value::Mapping(mgmt));
    if let Some(log) = m.get_mut("logging").and_then(Value::as_mapping_mut) {
        if log.get("session_log").and_then(Value::as_str).is_some_and(|s| s.starts_with('/')) {
            log.insert(key("session_log"), key(&dir.join("sessions.log").display().to_string()));
        }
    }
    serde_yaml_ng::to_string(&v).unwrap()
}

/// `nat64d --check FILE`: (exit code, stdout, stderr).
pub fn check(file: &Path) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_nat64d"))
        .arg("--config")
        .arg(file)
        .arg("--check")
        .output()
        .expect("run nat64d --check");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A nat64d child, stopped with SIGTERM (then SIGKILL) on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    pub http: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Daemon {
    /// Start nat64d on `config` (written to a fresh directory) and wait
    /// until /readyz answers 200.
    pub fn start(tag: &str, config: impl Fn(&Path, SocketAddr) -> String) -> Daemon {
        let dir = std::env::temp_dir().join(format!("nat64-deploy-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let file = dir.join("nat64d.yaml");
        std::fs::write(&file, config(&dir, http)).unwrap();
        let log = std::fs::File::create(dir.join("nat64d.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nat64d"))
            .arg("--config")
            .arg(&file)
            .env("NAT64D_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nat64d");
        let mut d = Daemon { child, dir, http };
        let t = Instant::now();
        while get(d.http, "/readyz").0 != 200 {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("nat64d exited with {st}:\n{}\n{}", d.log(), d.config());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "nat64d not ready:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nat64d.log")).unwrap_or_default()
    }

    pub fn config(&self) -> String {
        std::fs::read_to_string(self.dir.join("nat64d.yaml")).unwrap_or_default()
    }

    /// SIGTERM, wait up to 10 s; the exit status if it ended by itself.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The /metrics body.
    pub fn metrics(&self) -> String {
        let (status, body) = get(self.http, "/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// HTTP/1.0 GET: (status, body); (0, "") when nothing answers.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if write!(s, "GET {path} HTTP/1.0\r\nHost: nat64d\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    let status = r.split(' ').nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    (status, r.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default())
}

/// Sum of a family's samples whose labels include `labels`.
pub fn sum(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Parse a /metrics body.
pub fn parse(body: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// A pcap file of Ethernet frames.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(Duration::ZERO, f.len() as u32, f)).unwrap();
    }
}
