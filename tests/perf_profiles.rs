//! The test-rig profiles (perf/trex, perf/siitperf, perf/pktgen) exercise
//! the translator: the frames each profile describes are built with scapy
//! (perf/tools/rig_packets.py, Debian's python3-scapy), replayed through
//! the real `nat64d` over net_pcap, and what leaves the other side must be
//! every frame, translated (RFC 6052 addresses, ports kept, checksums
//! valid). Each IPv6 stream runs through a SIIT and a stateful NAT64
//! instance; IPv4 streams through SIIT (a stateful return stream needs the
//! pool4 ports chosen at run time, see perf/README.md).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use support::{eal_mem, read_pcap, Daemon};

mod support;

const PYTHON: &str = "/usr/bin/python3";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// nat64d over two pcap devices with the address plan of perf/README.md.
fn config(dir: &Path, tag: &str, stateful: bool) -> String {
    let d = dir.display();
    let instance = if stateful {
        "  - nat64:\n      name: rig\n      pool6: \"2001:db8:64::/96\"\n      pool4:\n        - prefix: 198.51.100.0/26\n"
    } else {
        "  - siit:\n      name: rig\n      pool6: \"2001:db8:64::/96\"\n      eamt:\n        - { ipv6: \"2001:db8:1::/112\", ipv4: 198.18.0.0/16 }\n"
    };
    format!(
        r#"dpdk:
  eal_args: ["-l", "0-1", "--no-pci", {mem}, "--log-level=*:error"]
interfaces:
  - name: v6
    device: "net_pcap_pp{tag}6,rx_pcap={d}/in6.pcap,tx_pcap={d}/out6.pcap"
    role: ipv6
    mac: "02:00:00:00:06:01"
    ipv6: ["2001:db8:ff::1/64"]
    neighbours:
      - {{ ip: "2001:db8:ff::2", mac: "02:00:00:00:06:02" }}
    routes:
      - {{ prefix: "2001:db8:1::/48", via: "2001:db8:ff::2" }}
  - name: v4
    device: "net_pcap_pp{tag}4,rx_pcap={d}/in4.pcap,tx_pcap={d}/out4.pcap"
    role: ipv4
    mac: "02:00:00:00:04:01"
    ipv4: ["192.0.2.1/24"]
    neighbours:
      - {{ ip: 192.0.2.2, mac: "02:00:00:00:04:02" }}
    routes:
      - {{ prefix: 203.0.113.0/24, via: 192.0.2.2 }}
management:
  control_socket: "{d}/control.sock"
  http_listen: "127.0.0.1:0"
instances:
{instance}"#,
        mem = eal_mem(tag)
    )
}

/// Run nat64d over `dir` until it has read its input; Err: its log.
fn run_nat64d(dir: &Path, cfg: &str) -> Result<(), String> {
    let path = dir.join("nat64d.yaml");
    std::fs::write(&path, cfg).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nat64d"));
    cmd.arg("--config").arg(&path).env("NAT64D_LOG", "info").env("NO_COLOR", "1");
    let d = Daemon::start(cmd)?;
    // net_pcap hands over the whole file at once; a few bursts suffice.
    std::thread::sleep(Duration::from_millis(500));
    let (ok, log) = d.stop();
    if !ok {
        return Err(format!("nat64d did not exit cleanly:\n{log}"));
    }
    Ok(())
}

/// What a translated frame must look like, given the frame sent.
fn check_6to4(sent: &[u8], got: &[u8], stateful: bool) -> Result<(), String> {
    let s = SlicedPacket::from_ethernet(sent).map_err(|e| format!("sent: {e}"))?;
    let g = SlicedPacket::from_ethernet(got).map_err(|e| format!("got: {e}"))?;
    let (Some(NetSlice::Ipv6(s6)), Some(NetSlice::Ipv4(g4))) = (&s.net, &g.net) else {
        return Err("expected IPv6 in, IPv4 out".into());
    };
    let dst6: Ipv6Addr = s6.header().destination_addr();
    // RFC 6052 §2.2: /96, the IPv4 address is the last 32 bits.
    let want_dst = Ipv4Addr::from(u128::from(dst6) as u32);
    if g4.header().destination_addr() != want_dst {
        return Err(format!("destination {} != {want_dst}", g4.header().destination_addr()));
    }
    let src = g4.header().source_addr();
    let src_ok = if stateful {
        // pool4 198.51.100.0/26
        u32::from(src) & 0xffff_ffc0 == u32::from(Ipv4Addr::new(198, 51, 100, 0))
    } else {
        // EAMT 2001:db8:1::/112 <-> 198.18.0.0/16 (RFC 7757): the suffix carries over.
        let s6src = u128::from(s6.header().source_addr());
        src == Ipv4Addr::from(0xc612_0000 | (s6src as u32 & 0xffff))
    };
    if !src_ok {
        return Err(format!("source {src} is not the expected mapping"));
    }
    if g4.header().to_header().calc_header_checksum() != g4.header().header_checksum() {
        return Err("IPv4 header checksum".into());
    }
    match (&s.transport, &g.transport) {
        (Some(TransportSlice::Udp(su)), Some(TransportSlice::Udp(gu))) => {
            if su.destination_port() != gu.destination_port() {
                return Err("UDP destination port changed".into());
            }
            if !stateful && su.source_port() != gu.source_port() {
                return Err("SIIT changed the UDP source port".into());
            }
            let want = gu
                .to_header()
                .calc_checksum_ipv4(&g4.header().to_header(), gu.payload())
                .map_err(|e| e.to_string())?;
            if want != gu.checksum() {
                return Err(format!("UDP checksum {:#06x}, want {want:#06x}", gu.checksum()));
            }
            Ok(())
        }
        _ => Err("expected UDP in and out".into()),
    }
}

fn check_4to6(sent: &[u8], got: &[u8]) -> Result<(), String> {
    let s = SlicedPacket::from_ethernet(sent).map_err(|e| format!("sent: {e}"))?;
    let g = SlicedPacket::from_ethernet(got).map_err(|e| format!("got: {e}"))?;
    let (Some(NetSlice::Ipv4(s4)), Some(NetSlice::Ipv6(g6))) = (&s.net, &g.net) else {
        return Err("expected IPv4 in, IPv6 out".into());
    };
    let src4 = u32::from(s4.header().source_addr());
    let want_src =
        Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 0)) | u128::from(src4));
    if g6.header().source_addr() != want_src {
        return Err(format!("source {} != {want_src}", g6.header().source_addr()));
    }
    let dst4 = u32::from(s4.header().destination_addr());
    let want_dst = Ipv6Addr::from(
        u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0)) | u128::from(dst4 & 0xffff),
    );
    if g6.header().destination_addr() != want_dst {
        return Err(format!("destination {} != {want_dst}", g6.header().destination_addr()));
    }
    match (&s.transport, &g.transport) {
        (Some(TransportSlice::Udp(su)), Some(TransportSlice::Udp(gu))) => {
            if (su.source_port(), su.destination_port()) != (gu.source_port(), gu.destination_port()) {
                return Err("UDP ports changed".into());
            }
            let want = gu
                .to_header()
                .calc_checksum_ipv6(&g6.header().to_header(), gu.payload())
                .map_err(|e| e.to_string())?;
            if want != gu.checksum() {
                return Err(format!("UDP checksum {:#06x}, want {want:#06x}", gu.checksum()));
            }
            Ok(())
        }
        _ => Err("expected UDP in and out".into()),
    }
}

/// One profile through one instance kind.
struct Case {
    name: &'static str,
    args: Vec<String>,
    v6_in: bool,
    stateful: bool,
}

fn cases() -> Vec<Case> {
    let p = |s: &str| root().join("perf").join(s).display().to_string();
    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut out = Vec::new();
    for stateful in [false, true] {
        out.push(Case {
            name: "trex nat64_udp (IPv6)",
            args: a(&["trex", &p("trex/nat64_udp.py"), "--direction", "0", "--", "--flows", "1000"]),
            v6_in: true,
            stateful,
        });
        out.push(Case {
            name: "siitperf forward",
            args: a(&[
                "siitperf",
                &p(if stateful { "siitperf/siitperf-stateful.conf" } else { "siitperf/siitperf-siit.conf" }),
                "--direction",
                "fwd",
                "--frames",
                "500",
            ]),
            v6_in: true,
            stateful,
        });
        out.push(Case {
            name: "pktgen nat64-v6",
            args: a(&["pktgen", &p("pktgen/nat64-v6.pkt"), "--frames", "500"]),
            v6_in: true,
            stateful,
        });
    }
    out.push(Case {
        name: "trex nat64_udp (IPv4)",
        args: a(&["trex", &p("trex/nat64_udp.py"), "--direction", "1", "--", "--flows", "1000"]),
        v6_in: false,
        stateful: false,
    });
    out.push(Case {
        name: "siitperf reverse",
        args: a(&["siitperf", &p("siitperf/siitperf-siit.conf"), "--direction", "rev", "--frames", "500"]),
        v6_in: false,
        stateful: false,
    });
    out.push(Case {
        name: "pktgen nat64-v4",
        args: a(&["pktgen", &p("pktgen/nat64-v4.pkt"), "--frames", "500"]),
        v6_in: false,
        stateful: false,
    });
    out
}

fn run_case(i: usize, c: &Case) -> Result<usize, String> {
    let dir = std::env::temp_dir().join(format!("nat64-pp-{}-{i}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (input, other) = if c.v6_in { ("in6.pcap", "in4.pcap") } else { ("in4.pcap", "in6.pcap") };
    let out = Command::new(PYTHON)
        .arg(root().join("perf/tools/rig_packets.py"))
        .args(&c.args[..2])
        .arg("--out")
        .arg(dir.join(input))
        .args(&c.args[2..])
        .output()
        .map_err(|e| format!("{PYTHON}: {e}"))?;
    if !out.status.success() {
        return Err(format!("rig_packets.py failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    // The other side's device needs a (valid, empty) input file.
    let empty = Command::new(PYTHON)
        .args(["-c", "import sys; from scapy.utils import wrpcap; wrpcap(sys.argv[1], [], linktype=1)"])
        .arg(dir.join(other))
        .status()
        .map_err(|e| e.to_string())?;
    if !empty.success() {
        return Err("cannot write an empty pcap".into());
    }
    let sent = read_pcap(&dir.join(input));
    if sent.is_empty() {
        return Err("the profile described no frames".into());
    }
    run_nat64d(&dir, &config(&dir, &i.to_string(), c.stateful))?;
    let got = read_pcap(&dir.join(if c.v6_in { "out4.pcap" } else { "out6.pcap" }));
    if got.len() != sent.len() {
        return Err(format!("sent {} frames, {} came out translated", sent.len(), got.len()));
    }
    for (k, (s, g)) in sent.iter().zip(&got).enumerate() {
        let r = if c.v6_in { check_6to4(s, g, c.stateful) } else { check_4to6(s, g) };
        r.map_err(|e| format!("frame {k}: {e}"))?;
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(sent.len())
}

#[test]
fn rig_profiles_are_translated_by_nat64d() {
    let scapy = Command::new(PYTHON).args(["-c", "import scapy"]).status();
    if !scapy.is_ok_and(|s| s.success()) {
        println!("perf-profiles: {PYTHON} with scapy not found (apt-get install python3-scapy); skipped");
        return;
    }
    let mut failed = Vec::new();
    for (i, c) in cases().iter().enumerate() {
        let kind = if c.stateful { "nat64" } else { "siit" };
        match run_case(i, c) {
            Ok(n) => println!("ok   {} through {kind}: {n} frames translated", c.name),
            Err(e) => {
                println!("FAIL {} through {kind}: {e}", c.name);
                failed.push(c.name);
            }
        }
    }
    assert!(failed.is_empty(), "profiles not translated: {failed:?}");
}
