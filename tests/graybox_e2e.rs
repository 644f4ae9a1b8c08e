//! The graybox conformance corpus replayed through the real `nat64d`
//! binary: each case's packets, wrapped in Ethernet, go in through DPDK's
//! net_pcap; what leaves on the expected side is compared after stripping
//! Ethernet. Prints `graybox-e2e: N passed, M failed, K skipped`.
//!
//! Stateless (SIIT) cases run one `nat64d` each, with the configuration
//! the case names. Stateful cases share one instance's state and need
//! real time between packets, which a pcap file cannot give: they are
//! listed as skipped here until the live-injection runner covers them.

#[path = "../dataplane/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{compare, Case, Corpus, Side};
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use serde_json::Value;

const MAC_V6: &str = "02:00:00:00:06:01";
const MAC_V4: &str = "02:00:00:00:04:01";
const MAC_N6: [u8; 6] = [2, 0, 0, 0, 6, 2];
const MAC_N4: [u8; 6] = [2, 0, 0, 0, 4, 2];

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn eal_args(tag: &str) -> String {
    let mem = if std::env::var("NAT64_TEST_HUGEPAGES").as_deref() == Ok("1") {
        "\"--in-memory\"".to_string()
    } else {
        format!("\"--no-huge\", \"-m\", \"256\", \"--no-shconf\", \"--file-prefix=gb{tag}\"")
    };
    format!("[\"-l\", \"0-1\", \"--no-pci\", {mem}, \"--log-level=*:error\"]")
}

/// A `nat64d` configuration for a SIIT case, two-armed over pcap files.
fn siit_yaml(c: &Value, dir: &Path, tag: &str) -> String {
    let host = |p: &str| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/{}", if p.contains(':') { 128 } else { 32 })
        }
    };
    let mut routes6 = String::new();
    let mut routes4 = String::new();
    for r in c["routes"].as_array().into_iter().flatten() {
        let (p, via) = (s(r, "prefix").unwrap(), s(r, "via").unwrap());
        let line = format!("      - prefix: \"{p}\"\n        via: \"{via}\"\n");
        if p.contains(':') {
            routes6 += &line
        } else {
            routes4 += &line
        }
    }
    // The corpus treats each side as one node: everything else goes there.
    routes6 += &format!("      - prefix: \"::/0\"\n        via: \"{}\"\n", s(c, "n6").unwrap());
    routes4 += &format!("      - prefix: \"0.0.0.0/0\"\n        via: \"{}\"\n", s(c, "n4").unwrap());
    let mut eamt = String::new();
    for e in c["eamt"].as_array().into_iter().flatten() {
        eamt += &format!(
            "        - ipv6: \"{}\"\n          ipv4: \"{}\"\n",
            s(e, "ipv6").unwrap(),
            s(e, "ipv4").unwrap()
        );
    }
    let opt =
        |k: &str, key: &str| s(c, k).map(|v| format!("      {key}: \"{}\"\n", host(v))).unwrap_or_default();
    let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let d = dir.display();
    let mut y = String::new();
    y += &format!("dpdk:\n  eal_args: {}\n", eal_args(tag));
    y += "interfaces:\n";
    y += "  - name: v6\n";
    y += &format!("    device: \"net_pcap_{tag}6,rx_pcap={d}/in6.pcap,tx_pcap={d}/out6.pcap\"\n");
    y += &format!("    role: ipv6\n    mac: \"{MAC_V6}\"\n    mtu: {}\n", c["mtu_ipv6_side"]);
    y += &format!("    ipv6: [\"{}\"]\n", s(c, "translator_ipv6").unwrap());
    y += &format!(
        "    neighbours:\n      - ip: \"{}\"\n        mac: \"{}\"\n",
        s(c, "n6").unwrap(),
        mac(MAC_N6)
    );
    y += &format!("    routes:\n{routes6}");
    y += "  - name: v4\n";
    y += &format!("    device: \"net_pcap_{tag}4,rx_pcap={d}/in4.pcap,tx_pcap={d}/out4.pcap\"\n");
    y += &format!("    role: ipv4\n    mac: \"{MAC_V4}\"\n    mtu: {}\n", c["mtu_ipv4_side"]);
    y += &format!("    ipv4: [\"{}\"]\n", s(c, "translator_ipv4").unwrap());
    y += &format!(
        "    neighbours:\n      - ip: \"{}\"\n        mac: \"{}\"\n",
        s(c, "n4").unwrap(),
        mac(MAC_N4)
    );
    y += &format!("    routes:\n{routes4}");
    y += "instances:\n  - siit:\n      name: graybox\n      allow_non_global_wkp: true\n";
    if let Some(p) = s(c, "pool6") {
        y += &format!("      pool6: \"{p}\"\n");
    }
    y += &opt("rfc6791v4_prefix", "pool6791_v4");
    y += &opt("rfc6791v6_prefix", "pool6791_v6");
    y += &format!("      eamt:\n{eamt}");
    let udp0 = if c["amend_udp_checksum_zero"].as_bool() == Some(true) { "compute" } else { "drop" };
    y += &format!("rfc7915:\n  lowest_ipv6_mtu: {}\n  udp_zero_checksum: {udp0}\n", c["lowest_ipv6_mtu"]);
    y
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(f).unwrap();
    for fr in frames {
        w.write_packet(&PcapPacket::new(Duration::ZERO, fr.len() as u32, fr)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let Ok(f) = std::fs::File::open(path) else { return Vec::new() };
    let Ok(mut r) = PcapReader::new(f) else { return Vec::new() };
    let mut out = Vec::new();
    while let Some(Ok(p)) = r.next_packet() {
        out.push(p.data.into_owned());
    }
    out
}

fn frame(dst: &str, src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f: Vec<u8> = dst.split(':').map(|h| u8::from_str_radix(h, 16).unwrap()).collect();
    f.extend_from_slice(&src);
    f.extend_from_slice(if ip[0] >> 4 == 6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip);
    f
}

/// Strip Ethernet (and a VLAN tag) from an output frame.
fn l3(f: &[u8]) -> &[u8] {
    if f.len() >= 18 && f[12..14] == [0x81, 0x00] {
        &f[18..]
    } else {
        &f[14.min(f.len())..]
    }
}

/// Run one SIIT case through nat64d. Err: why it failed.
fn run_case(corpus: &Corpus, case: &Case, idx: usize, bin: &Path) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("nat64-gb-{}-{idx}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (mut in6, mut in4) = (Vec::new(), Vec::new());
    for p in &case.send {
        let ip = corpus.packet(&p.file)?;
        match p.side {
            Side::Ipv6 => in6.push(frame(MAC_V6, MAC_N6, &ip)),
            Side::Ipv4 => in4.push(frame(MAC_V4, MAC_N4, &ip)),
        }
    }
    write_pcap(&dir.join("in6.pcap"), &in6);
    write_pcap(&dir.join("in4.pcap"), &in4);
    let cfg = dir.join("nat64d.yaml");
    std::fs::write(&cfg, siit_yaml(&case.config, &dir, &idx.to_string())).map_err(|e| e.to_string())?;

    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .env("NAT64D_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn nat64d: {e}"))?;
    // Read the log on a thread to the end, so nat64d never writes into a
    // closed pipe; tell the main thread when the dataplane runs.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("dataplane starting") {
                let _ = tx.send(());
            }
            log += &line;
            log.push('\n');
        }
        log
    });
    let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    if started {
        // net_pcap delivers the whole file at once; give the worker a moment.
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().map_err(|e| e.to_string())?;
    let log = reader.join().unwrap_or_default();
    if !started || !status.success() {
        return Err(format!("nat64d failed ({status}):\n{log}"));
    }
    let out = read_pcap(&dir.join(if case.expect_side == Side::Ipv6 { "out6.pcap" } else { "out4.pcap" }));
    let got: Vec<&[u8]> = out.iter().map(|f| l3(f)).collect();
    if got.len() != case.expect.len() {
        return Err(format!(
            "expected {} packets on the {:?} side, got {}",
            case.expect.len(),
            case.expect_side,
            got.len()
        ));
    }
    for (i, e) in case.expect.iter().enumerate() {
        let exp = corpus.packet(e)?;
        compare(&exp, got[i], &case.ignore_offsets).map_err(|d| format!("packet {i} ({e}):\n{d}"))?;
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn graybox_e2e() {
    let Some(dir) = common::locate() else {
        println!("graybox-e2e: corpus not found (set NAT64_CONFORMANCE_DIR); nothing to replay");
        return;
    };
    let corpus = Corpus::load(&dir).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_nat64d"));
    let siit: Vec<(usize, &Case)> =
        corpus.cases.iter().enumerate().filter(|(_, c)| c.suite == "siit").collect();
    let skipped: Vec<&Case> = corpus.cases.iter().filter(|c| c.suite != "siit").collect();
    let started = Instant::now();
    // Two cases at a time: each nat64d polls one lcore.
    let results: Vec<(String, Result<(), String>)> = std::thread::scope(|sc| {
        let chunks: Vec<Vec<(usize, &Case)>> =
            (0..2).map(|k| siit.iter().skip(k).step_by(2).cloned().collect()).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (corpus, bin) = (&corpus, &bin);
                sc.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, c)| (c.id.clone(), run_case(corpus, c, i, bin)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed: Vec<&(String, Result<(), String>)> = results.iter().filter(|(_, r)| r.is_err()).collect();
    for (id, r) in &failed {
        println!("FAIL {id}: {}", r.as_ref().unwrap_err());
    }
    for c in &skipped {
        println!("skip {}: stateful case, needs live injection with timing (not a pcap replay)", c.id);
    }
    println!(
        "graybox-e2e: {} passed, {} failed, {} skipped ({:.1} s)",
        results.len() - failed.len(),
        failed.len(),
        skipped.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failed.is_empty(), "{} graybox cases failed through nat64d", failed.len());
}
