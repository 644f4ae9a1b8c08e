//! Every configuration in deploy/examples through the real binary: `nat64d
//! --check` accepts it (on this machine only the cores and NICs it names
//! may be missing), the same file adapted to virtual devices starts and
//! becomes ready, and every scenario has its README. The semantic checks
//! against the four-core, two-NIC machine the files are written for are in
//! control/tests/config_examples.rs; this adds the binary and the runtime.

#[path = "deploy_common.rs"]
mod common;

use common::{adapt, check, parse, repo, sum, write_pcap, Daemon};
use serde_yaml_ng::Value;
use std::path::PathBuf;

/// Rules that depend on the machine, not on the file.
const HOST_RULES: [&str; 2] = ["lcore-missing", "pci-device-missing"];

fn examples() -> Vec<PathBuf> {
    let mut ex: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    ex.sort();
    assert!(ex.len() >= 8, "{ex:?}");
    ex
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nat64-deploy-ex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn nat64d_check_accepts_every_example() {
    for f in examples() {
        let (code, out, err) = check(&f);
        if code == 0 {
            assert!(out.contains("configuration is valid"), "{}: {out}", f.display());
            continue;
        }
        assert_eq!(code, 1, "{}: {err}", f.display());
        // The semantic checks report every error at once, so a file whose
        // only errors are about this machine's cores and NICs is otherwise
        // valid.
        for line in err.lines() {
            assert!(HOST_RULES.iter().any(|r| line.contains(&format!(": {r}: "))), "{}: {line}", f.display());
        }
    }
}

#[test]
fn nat64d_check_accepts_every_example_on_virtual_devices() {
    for f in examples() {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let dir = tmp(&name.replace(".yaml", ""));
        std::fs::create_dir_all(&dir).unwrap();
        let adapted = tmp(&name);
        std::fs::write(&adapted, adapt(&text, "chk", &dir, "127.0.0.1:9".parse().unwrap())).unwrap();
        let (code, out, err) = check(&adapted);
        assert_eq!(code, 0, "{name} adapted to this machine:\n{err}");
        assert!(out.contains("configuration is valid"), "{out}");
    }
}

#[test]
fn the_well_known_prefix_example_needs_its_exception() {
    let f = repo().join("deploy/examples/gateway-wkp.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("pool6: 64:ff9b::/96"));
    let without: String =
        text.lines().filter(|l| !l.contains("allow_non_global_wkp")).map(|l| format!("{l}\n")).collect();
    let file = tmp("gateway-wkp-strict.yaml");
    std::fs::write(&file, without).unwrap();
    let (code, _, err) = check(&file);
    assert_eq!(code, 1);
    assert!(err.contains("wkp-non-global") && err.contains("RFC 6052 §3.1"), "{err}");
    // And the README says what a real deployment does instead.
    let readme = std::fs::read_to_string(repo().join("deploy/examples/gateway-wkp.md")).unwrap();
    assert!(readme.contains("allow_non_global_wkp") && readme.contains("public address"), "{readme}");
}

#[test]
fn every_example_is_listed_and_every_scenario_has_a_readme() {
    let index = std::fs::read_to_string(repo().join("deploy/examples/README.md")).unwrap();
    for f in examples() {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(index.contains(&format!("`{name}`")), "{name} missing from deploy/examples/README.md");
    }
    for scenario in ["gateway-wkp", "plat-464xlat", "border-nat44", "split-siit"] {
        let yaml = std::fs::read_to_string(repo().join(format!("deploy/examples/{scenario}.yaml"))).unwrap();
        assert!(yaml.contains(&format!("README: {scenario}.md")), "{scenario}.yaml names its README");
        let md = repo().join(format!("deploy/examples/{scenario}.md"));
        let readme = std::fs::read_to_string(&md).unwrap_or_else(|e| panic!("{}: {e}", md.display()));
        assert!(readme.starts_with("# Scenario "), "{scenario}.md");
        assert!(index.contains(&format!("({scenario}.md)")), "{scenario}.md not linked from the index");
    }
}

/// Validation is not the whole story: the runtime builds pools, EAMTs and
/// shards from the file. Each example, on virtual devices, must start,
/// become ready and stop cleanly.
#[test]
fn every_example_starts_on_virtual_devices() {
    for (k, f) in examples().into_iter().enumerate() {
        let text = std::fs::read_to_string(&f).unwrap();
        let tag = format!("dx{k}p{}", std::process::id());
        let mut d = Daemon::start(&tag, |dir, http| adapt(&text, &tag, dir, http));
        let m = d.metrics();
        let scrape = prometheus_parse::Scrape::parse(m.lines().map(|l| Ok(l.to_string()))).unwrap();
        let value = |name: &str, label: Option<(&str, &str)>| -> Option<f64> {
            scrape
                .samples
                .iter()
                .filter(|x| x.metric == name && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
                .map(|x| match x.value {
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
                    _ => f64::NAN,
                })
                .reduce(|a, b| a + b)
        };
        assert_eq!(value("nat64_ready", None), Some(1.0), "{}", f.display());
        // Every stateful instance has its session table.
        let cfg: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        for inst in cfg["instances"].as_sequence().unwrap() {
            if let Some(name) = inst["nat64"]["name"].as_str() {
                let cap = value("nat64_session_capacity", Some(("instance", name)));
                assert!(cap.is_some_and(|c| c > 0.0), "{}: no table for {name}:\n{m}", f.display());
            }
        }
        let st = d.stop().expect("nat64d stops on SIGTERM");
        assert!(st.success(), "{}: exit {st}\n{}", f.display(), d.log());
    }
}

/// Scenario 1 does what its README says: on its one port, IPv6 clients'
/// datagrams to 64:ff9b::/96 are translated and leave from the appliance's
/// own address, which is the whole pool4.
#[test]
fn gateway_wkp_masquerades_clients_behind_its_own_address() {
    let text = std::fs::read_to_string(repo().join("deploy/examples/gateway-wkp.yaml")).unwrap();
    let tag = format!("gw{}", std::process::id());
    let d = Daemon::start(&tag, |dir, http| {
        // Four client ports, replayed without end, to 198.51.100.10 through
        // the well-known prefix (RFC 6052 §2.2: 64:ff9b::c633:640a).
        let frames: Vec<Vec<u8>> = (0..4)
            .map(|k| udp6([2, 0, 0, 0, 0, 1], "2001:db8:1::10", 40000 + k, "64:ff9b::c633:640a", 53))
            .collect();
        write_pcap(&dir.join("in.pcap"), &frames);
        let mut v: Value = serde_yaml_ng::from_str(&adapt(&text, &tag, dir, http)).unwrap();
        let lan = &mut v["interfaces"][0];
        lan["device"] =
            Value::String(format!("net_pcap_{tag},rx_pcap={}/in.pcap,infinite_rx=1", dir.display()));
        lan["mac"] = "02:00:00:00:00:01".into();
        lan["neighbours"] = serde_yaml_ng::from_str(
            "[ { ip: 192.0.2.254, mac: '02:00:00:00:00:fe' }, { ip: '2001:db8:1::10', mac: '02:00:00:00:00:10' } ]",
        )
        .unwrap();
        serde_yaml_ng::to_string(&v).unwrap()
    });
    let own = [("instance", "gw"), ("address", "192.0.2.1"), ("protocol", "udp")];
    let s = wait_for(&d, |s| sum(s, "nat64_pool4_ports_in_use", &own) == 4.0, "four mappings on 192.0.2.1");
    assert_eq!(sum(&s, "nat64_sessions", &[("instance", "gw")]), 4.0);
    assert!(sum(&s, "nat64_translated_packets_total", &[("direction", "ipv6_to_ipv4")]) > 0.0);
    assert_eq!(sum(&s, "nat64_dropped_packets_total", &[("reason", "wkp_non_global")]), 0.0);
}

/// Scenario 4 does what its README says: each half of the IPv4 Internet is
/// reached through its own instance and pool4, and IPv4 clients reach the
/// EAMT servers through the SIIT instance.
#[test]
fn split_siit_uses_the_right_pool_per_half_and_translates_eamt() {
    let text = std::fs::read_to_string(repo().join("deploy/examples/split-siit.yaml")).unwrap();
    let tag = format!("sp{}", std::process::id());
    let d = Daemon::start(&tag, |dir, http| {
        // Inside: one client to 10.0.0.1 (low half), one to 200.0.0.1 (high).
        let inside = [
            udp6([2, 0, 0, 0, 0, 1], "2001:db8:100::10", 40000, "2001:db8:64::a00:1", 53),
            udp6([2, 0, 0, 0, 0, 1], "2001:db8:100::10", 40001, "2001:db8:64::c800:1", 53),
        ];
        write_pcap(&dir.join("in6.pcap"), &inside);
        // Outside: an IPv4 client of the www server (EAMT 198.51.100.10).
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 0, 2, 33], [198, 51, 100, 10], 64)
            .udp(50000, 80)
            .write(&mut frame, &[0x42; 32])
            .unwrap();
        write_pcap(&dir.join("in4.pcap"), &[frame]);
        let mut v: Value = serde_yaml_ng::from_str(&adapt(&text, &tag, dir, http)).unwrap();
        let d = dir.display();
        let ifs = &mut v["interfaces"];
        ifs[0]["device"] = Value::String(format!("net_pcap_{tag}6,rx_pcap={d}/in6.pcap,infinite_rx=1"));
        ifs[0]["mac"] = "02:00:00:00:00:01".into();
        ifs[0]["neighbours"] =
            serde_yaml_ng::from_str("[ { ip: '2001:db8:1::fe', mac: '02:00:00:00:00:fe' } ]").unwrap();
        ifs[1]["device"] = Value::String(format!("net_pcap_{tag}4,rx_pcap={d}/in4.pcap,infinite_rx=1"));
        ifs[1]["mac"] = "02:00:00:00:00:02".into();
        ifs[1]["neighbours"] = serde_yaml_ng::from_str(
            "[ { ip: 192.0.2.1, mac: '02:00:00:00:00:0a' }, { ip: 192.0.2.6, mac: '02:00:00:00:00:0b' } ]",
        )
        .unwrap();
        serde_yaml_ng::to_string(&v).unwrap()
    });
    let in_pool = |s: &prometheus_parse::Scrape, inst: &str, first: u8, last: u8| -> f64 {
        (first..=last)
            .map(|a| {
                let addr = format!("203.0.113.{a}");
                sum(
                    s,
                    "nat64_pool4_ports_in_use",
                    &[("instance", inst), ("address", &addr), ("protocol", "udp")],
                )
            })
            .sum()
    };
    let s = wait_for(
        &d,
        |s| {
            sum(s, "nat64_sessions", &[("instance", "low")]) == 1.0
                && sum(s, "nat64_sessions", &[("instance", "high")]) == 1.0
                && sum(s, "nat64_translated_packets_total", &[("direction", "ipv4_to_ipv6")]) > 0.0
        },
        "one session per half and SIIT traffic",
    );
    // Provider A's addresses for the low half, B's for the high half.
    assert_eq!(in_pool(&s, "low", 0, 15), 1.0);
    assert_eq!(in_pool(&s, "high", 16, 31), 1.0);
    // The SIIT side carried the IPv4 client's UDP to the server.
    let udp4to6 = [("direction", "ipv4_to_ipv6"), ("protocol", "udp")];
    assert!(sum(&s, "nat64_translated_protocol_packets_total", &udp4to6) > 0.0);
}

/// An Ethernet + IPv6 + UDP frame to `dst_mac`.
fn udp6(dst_mac: [u8; 6], src: &str, sport: u16, dst: &str, dport: u16) -> Vec<u8> {
    let (s, d): (std::net::Ipv6Addr, std::net::Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x10], dst_mac)
        .ipv6(s.octets(), d.octets(), 64)
        .udp(sport, dport)
        .write(&mut frame, &[0x42; 32])
        .unwrap();
    frame
}

/// Scrape until `cond` holds (10 s at most); that scrape.
fn wait_for(
    d: &Daemon,
    cond: impl Fn(&prometheus_parse::Scrape) -> bool,
    what: &str,
) -> prometheus_parse::Scrape {
    let t = std::time::Instant::now();
    loop {
        let body = d.metrics();
        let s = parse(&body);
        if cond(&s) {
            return s;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "{what}: not seen\n{body}\n{}", d.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
