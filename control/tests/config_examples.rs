//! The shipped configurations validate, the annotated example documents
//! every key, defaults round-trip, and the reference lists every rule.

use control::config::{
    check, check_with, Config, Document, Filtering, Host, Instance, LogFormat, LogLevel, PortRange, Rule,
    SessionLog, TrafficClass, UdpZeroChecksum, WELL_KNOWN_PREFIX,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The machine the examples are written for.
fn host() -> Host {
    Host::with(0..4, &["0000:03:00.0", "0000:03:00.1"])
}

fn shipped() -> Vec<PathBuf> {
    let mut files = vec![repo().join("deploy/nat64d.yaml")];
    let mut ex: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    ex.sort();
    assert!(ex.len() >= 4, "{ex:?}");
    files.extend(ex);
    files
}

#[test]
fn shipped_configurations_validate() {
    for f in shipped() {
        match check_with(&f, &host()) {
            Ok(summary) => {
                let text = summary.to_string();
                assert!(text.contains("configuration is valid"), "{text}");
                // Only the lab shortens a timer on purpose.
                for w in &summary.warnings {
                    assert_eq!(w.rule, Rule::TimeoutBelowRfc6146, "{}: {w}", f.display());
                    assert!(f.ends_with("lab-veth.yaml"), "{w}");
                }
            }
            Err(errors) => panic!(
                "{} does not validate:\n{}",
                f.display(),
                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
            ),
        }
    }
}

#[test]
fn annotated_example_on_another_machine_fails_with_positions() {
    // Same file, a host with two cores and no such NICs.
    let errors = check_with(repo().join("deploy/nat64d.yaml"), &Host::with(0..2, &[]))
        .unwrap_err()
        .iter()
        .map(|e| {
            let s = e.to_string();
            s[s.find("nat64d.yaml").unwrap()..].to_string()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        errors,
        [
            "nat64d.yaml:22:16: lcore-missing: lcore 2 is not online on this machine (online: 0,1)",
            "nat64d.yaml:22:19: lcore-missing: lcore 3 is not online on this machine (online: 0,1)",
            "nat64d.yaml:41:5: pci-device-missing: PCI device 0000:03:00.0 does not exist (not in /sys/bus/pci/devices)",
            "nat64d.yaml:58:5: pci-device-missing: PCI device 0000:03:00.1 does not exist (not in /sys/bus/pci/devices)",
        ]
    );
}

/// Every key of a fully written-out configuration, as `key:`.
fn keys(v: &serde_yaml_ng::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, v) in m {
                if let Some(k) = k.as_str() {
                    out.insert(k.to_string());
                }
                keys(v, out);
            }
        }
        serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn annotated_example_names_every_key() {
    let text = std::fs::read_to_string(repo().join("deploy/nat64d.yaml")).unwrap();
    let cfg = Config::from_str(&text, "nat64d.yaml").unwrap();
    let mut all = BTreeSet::new();
    keys(&serde_yaml_ng::to_value(&cfg).unwrap(), &mut all);
    // Optional keys without a default are not written out; list them.
    for k in ["mac", "vlan", "max_sessions_per_client", "destinations", "pool6791_v6"] {
        all.insert(k.to_string());
    }
    let missing: Vec<&String> = all.iter().filter(|k| !text.contains(&format!("{k}:"))).collect();
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !docs.contains(&format!("`{k}`")) && !docs.contains(&format!(".{k}`")))
        .collect();
    assert!(missing.is_empty(), "keys missing from the reference: {missing:?}");
}

#[test]
fn reference_lists_every_rule() {
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let missing: Vec<&str> =
        Rule::ALL.iter().map(|r| r.name()).filter(|n| !docs.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "rules missing from the reference: {missing:?}");
}

const MINIMAL: &str = "\
interfaces:
  - { name: a, device: net_null0, role: both }
instances:
  - nat64:
      name: n
      pool6: 2001:db8:64::/96
      pool4: [ { prefix: 198.51.100.1 } ]
";

#[test]
fn defaults_are_the_documented_ones() {
    let c = Config::from_str(MINIMAL, "min.yaml").unwrap();
    assert!(c.dpdk.eal_args.is_empty() && c.dpdk.workers.is_empty());
    let i = &c.interfaces[0];
    assert_eq!((i.mtu, i.mac, i.vlan), (1500, None, None));
    let Instance::Nat64(n) = &c.instances[0] else { panic!("not nat64") };
    let e = &n.pool4[0];
    assert_eq!(e.tcp, PortRange::new(1024, 65535));
    assert_eq!(e.udp, PortRange::new(1024, 65535));
    assert_eq!(e.icmp, PortRange::new(0, 65535));
    let t = n.timeouts;
    assert_eq!((t.udp, t.tcp_est, t.tcp_trans, t.icmp, t.syn_hold), (300, 7440, 240, 60, 6));
    assert_eq!(n.filtering, Filtering::EndpointIndependent);
    assert!(!n.drop_external_tcp && !n.allow_non_global_wkp);
    assert_eq!(n.limits.max_sessions, 1 << 20);
    assert_eq!(n.limits.max_sessions_per_client, None);
    assert_eq!(n.limits.client_prefix_len, 64);
    assert_eq!(n.limits.max_static_bib, 1024);
    assert_eq!(n.allocation, control::config::Allocation::default());
    assert_eq!(n.allocation.mode, control::config::AllocationMode::Dynamic);
    assert_eq!(n.destinations, None);
    assert_eq!(c.rfc7915.lowest_ipv6_mtu, 1280);
    assert_eq!(c.rfc7915.traffic_class, TrafficClass::Copy);
    assert_eq!(c.rfc7915.udp_zero_checksum, UdpZeroChecksum::Compute);
    assert!(c.rfc7915.fragment_df_clear);
    assert_eq!(c.management.control_socket, Path::new("/run/nat64d/control.sock"));
    assert_eq!(c.management.http_listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.logging.level, LogLevel::Info);
    assert_eq!(c.logging.format, LogFormat::Text);
    assert_eq!(c.logging.session_log, SessionLog::Off);
    // pool6 defaults to the well-known prefix.
    let c = Config::from_str(&MINIMAL.replace("      pool6: 2001:db8:64::/96\n", ""), "m").unwrap();
    let Instance::Nat64(n) = &c.instances[0] else { panic!("not nat64") };
    assert_eq!(n.pool6, WELL_KNOWN_PREFIX);
    assert_eq!(n.pool6.to_string(), "64:ff9b::/96");
}

#[test]
fn defaults_round_trip_through_yaml() {
    let c = Config::from_str(MINIMAL, "min.yaml").unwrap();
    let written = c.to_yaml();
    // Every default is written out...
    for k in ["tcp_est: 7440", "lowest_ipv6_mtu: 1280", "session_log: off", "icmp: 0-65535"] {
        assert!(written.contains(k), "{k} not in\n{written}");
    }
    // ...and reads back to the same configuration, which still validates.
    let again = Document::parse(written.clone(), "written.yaml").unwrap();
    assert_eq!(again.config, c);
    assert_eq!(again.validate(&host()).errors, vec![], "{written}");
}

#[test]
fn every_shipped_file_round_trips() {
    for f in shipped() {
        let c = Config::from_file(&f).unwrap();
        let again = Config::from_str(&c.to_yaml(), "again").unwrap();
        assert_eq!(again, c, "{}", f.display());
    }
}

#[test]
fn check_reports_every_error_or_a_summary() {
    let dir = std::env::temp_dir().join(format!("nat64-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Host-independent: a vdev and no explicit workers.
    let good = dir.join("good.yaml");
    std::fs::write(&good, MINIMAL).unwrap();
    let summary = check(&good).unwrap();
    assert_eq!(summary.instances, [("nat64".to_string(), "n".to_string())]);
    assert_eq!(summary.interfaces, [("a".to_string(), "net_null0".to_string())]);
    assert!(summary.to_string().ends_with(
        "configuration is valid\n  interface a on net_null0\n  nat64 instance n\n  \
         workers: every EAL lcore but the main one\n"
    ));
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        MINIMAL.replace("net_null0", "net_nothing0").replace("198.51.100.1", "198.51.100.1/24"),
    )
    .unwrap();
    let errors: Vec<String> = check(&bad).unwrap_err().iter().map(|e| e.to_string()).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    let b = bad.display();
    assert_eq!(
        errors,
        [
            format!("{b}:2:16: vdev-unknown-driver: \"net_nothing0\" names no known DPDK virtual device driver (known: net_af_packet, net_af_xdp, net_pcap, net_tap, net_tun, net_memif, net_ring, net_null, net_vhost, net_virtio_user, net_bonding, net_failsafe, eth_af_packet, eth_pcap, eth_ring, eth_null)"),
            format!("{b}:7:18: prefix-host-bits: 198.51.100.1/24 has bits set after /24 (did you mean 198.51.100.0/24?)"),
        ]
    );
}
