//! Every validation rule, with the exact message (file:line:col included).

use control::config::{Document, Host, Rule};
use std::collections::BTreeSet;

/// Lines 1-8 of most cases: two PCI ports, IPv6 inside, IPv4 outside.
const HEAD: &str = "\
interfaces:
  - name: inside
    device: 0000:03:00.0
    role: ipv6
  - name: outside
    device: 0000:03:00.1
    role: ipv4
instances:
";

/// A stateful instance starting on line 9; `extra` continues it at the
/// instance's indentation from line 13 on.
fn nat64(extra: &str) -> String {
    format!(
        "{HEAD}  - nat64:
      name: plat
      pool6: 2001:db8:64::/96
      pool4:
        - prefix: 203.0.113.0/28
{extra}"
    )
}

fn host() -> Host {
    Host::with(0..4, &["0000:03:00.0", "0000:03:00.1", "0000:04:00.0"])
}

/// Errors then warnings, as printed.
fn run(text: &str) -> (Vec<String>, Vec<String>) {
    match Document::parse(text, "t.yaml") {
        Err(e) => (vec![e.to_string()], vec![]),
        Ok(doc) => {
            let v = doc.validate(&host());
            (
                v.errors.iter().map(|e| e.to_string()).collect(),
                v.warnings.iter().map(|e| e.to_string()).collect(),
            )
        }
    }
}

struct Case {
    name: &'static str,
    text: String,
    errors: &'static [&'static str],
    warnings: &'static [&'static str],
}

fn case(
    name: &'static str,
    text: impl Into<String>,
    errors: &'static [&'static str],
    warnings: &'static [&'static str],
) -> Case {
    Case { name, text: text.into(), errors, warnings }
}

fn cases() -> Vec<Case> {
    vec![
        case("valid base", nat64(""), &[], &[]),
        // --- parsing ---
        case("yaml-syntax", "interfaces: [\n  - name: a\n", &[
                "t.yaml:2:3: yaml-syntax: did not find expected node content, while parsing a flow node",
            ],
            &[],
        ),
        case("unknown-key", nat64("      pool6s: 2001:db8::/96\n"), &[
                "t.yaml:14:7: unknown-key: unknown field `pool6s`, expected one of `name`, `ipv6_interface`, `ipv4_interface`, `pool6`, `pool4`, `static_bib`, `timeouts`, `filtering`, `drop_external_tcp`, `limits`, `allocation`, `destinations`, `allow_non_global_wkp`",
            ],
            &[],
        ),
        case("unknown-key nested", nat64("          sctp: 1-2\n"), &[
                "t.yaml:14:11: unknown-key: unknown field `sctp`, expected one of `prefix`, `tcp`, `udp`, `icmp`",
            ],
            &[],
        ),
        case("missing-key", format!("{HEAD}  - nat64:\n      pool4: []\n"), &[
                "t.yaml:10:7: missing-key: missing field `name`",
            ],
            &[],
        ),
        case("duplicate-key", nat64("      pool6: 2001:db8:65::/96\n"), &[
                "t.yaml:14:7: duplicate-key: duplicate field `pool6`",
            ],
            &[],
        ),
        case("unknown-variant", format!("{HEAD}  - nat46:\n      name: x\n"), &[
                "t.yaml:9:5: unknown-variant: unknown variant `nat46`, expected `nat64` or `siit`",
            ],
            &[],
        ),
        case("unknown-variant enum value", nat64("      filtering: strict\n"), &[
                "t.yaml:14:18: unknown-variant: unknown variant `strict`, expected `endpoint_independent` or `address_dependent`",
            ],
            &[],
        ),
        case("invalid-type", nat64("      drop_external_tcp: [yes]\n"), &[
                "t.yaml:14:26: invalid-type: invalid type: sequence, expected a boolean",
            ],
            &[],
        ),
        case("invalid-value", "interfaces: []\ninstances: []\nmanagement:\n  http_listen: nowhere\n", &[
                "t.yaml:4:16: invalid-value: invalid socket address syntax",
            ],
            &[],
        ),
        case("address-syntax", nat64("        - prefix: 203.0.113.300\n"), &[
                "t.yaml:14:19: address-syntax: \"203.0.113.300\" is not an IPv4 address or prefix: invalid IPv4 address syntax",
            ],
            &[],
        ),
        case("address-syntax mac", format!("{HEAD}  - siit:\n      name: s\n      pool6: 2001:db8:46::/96\n").replace("    role: ipv4\n", "    role: ipv4\n    mac: 02:00:00:00:01\n"), &[
                "t.yaml:8:10: address-syntax: \"02:00:00:00:01\" is not a MAC address: expected six octets",
            ],
            &[],
        ),
        case("port-range syntax", nat64("          tcp: low-high\n"), &[
                "t.yaml:14:16: port-range: \"low-high\" is not a port range like 1024-65535: \"low\" is not a number",
            ],
            &[],
        ),
        case("traffic-class", format!("{}rfc7915:\n  traffic_class: 256\n", nat64("")), &[
                "t.yaml:15:18: traffic-class: \"256\": expected copy, zero or 0-255",
            ],
            &[],
        ),
        case("session-log-target", format!("{}logging:\n  session_log: sessions.log\n", nat64("")), &[
                "t.yaml:15:16: session-log-target: \"sessions.log\" is not off, stdout or an absolute file path: a file path must be absolute",
            ],
            &[],
        ),
        // --- RFC 6052 ---
        case("rfc6052-prefix-length", nat64("").replace("2001:db8:64::/96", "2001:db8:64::/80"), &[
                "t.yaml:11:7: rfc6052-prefix-length: 2001:db8:64::/80: RFC 6052 §2.2 allows only /32, /40, /48, /56, /64 and /96",
            ],
            &[],
        ),
        case("rfc6052-u-octet", nat64("").replace("2001:db8:64::/96", "2001:db8:64:0:ff00::/96"), &[
                "t.yaml:11:7: rfc6052-u-octet: 2001:db8:64:0:ff00::/96: bits 64-71 must be zero (RFC 6052 §2.2)",
            ],
            &[],
        ),
        case("prefix-host-bits", nat64("").replace("203.0.113.0/28", "203.0.113.1/28"), &[
                "t.yaml:13:11: prefix-host-bits: 203.0.113.1/28 has bits set after /28 (did you mean 203.0.113.0/28?)",
            ],
            &[],
        ),
        case("wkp-non-global nat64", nat64("").replace("2001:db8:64::/96", "64:ff9b::/96"), &[
                "t.yaml:13:11: wkp-non-global: 203.0.113.0/28 overlaps 203.0.113.0/24 (documentation TEST-NET-3 (RFC 5737)), which the well-known prefix 64:ff9b::/96 must not be used with (RFC 6052 §3.1); use a network-specific pool6 or set allow_non_global_wkp",
            ],
            &[],
        ),
        case("wkp-non-global default pool6", nat64("").replace("      pool6: 2001:db8:64::/96\n", ""), &[
                "t.yaml:12:11: wkp-non-global: 203.0.113.0/28 overlaps 203.0.113.0/24 (documentation TEST-NET-3 (RFC 5737)), which the well-known prefix 64:ff9b::/96 must not be used with (RFC 6052 §3.1); use a network-specific pool6 or set allow_non_global_wkp",
            ],
            &[],
        ),
        case("wkp allowed", nat64("      allow_non_global_wkp: true\n").replace("2001:db8:64::/96", "64:ff9b::/96"), &[], &[]),
        case("wkp-non-global siit", format!("{HEAD}  - siit:\n      name: s\n      pool6: 64:ff9b::/96\n      eamt:\n        - {{ ipv6: 2001:db8:6::/120, ipv4: 198.51.100.0/24 }}\n"), &[
                "t.yaml:13:37: wkp-non-global: 198.51.100.0/24 overlaps 198.51.100.0/24 (documentation TEST-NET-2 (RFC 5737)), which the well-known prefix 64:ff9b::/96 must not be used with (RFC 6052 §3.1); use a network-specific pool6 or set allow_non_global_wkp",
            ],
            &[],
        ),
        // --- pool4 / BIB ---
        case("port-range", nat64("          tcp: 0-100\n          udp: 2000-1000\n          icmp: 0-70000\n"), &[
                "t.yaml:14:11: port-range: TCP port range 0-100 is not within 1-65535 or starts after its end",
                "t.yaml:15:11: port-range: UDP port range 2000-1000 is not within 1-65535 or starts after its end",
                "t.yaml:16:11: port-range: ICMP identifier range 0-70000 is not within 0-65535 or starts after its end",
            ],
            &[],
        ),
        case("pool4-overlap", nat64("        - prefix: 203.0.113.8/29\n          tcp: 2000-3000\n"), &[
                "t.yaml:14:11: pool4-overlap: 203.0.113.8/29 tcp 2000-3000 overlaps instances[0].nat64.pool4[0] (203.0.113.0/28 tcp 1024-65535)",
            ],
            &[],
        ),
        case("pool4 same address, disjoint ports", nat64("          tcp: 1024-2047\n          udp: 1024-2047\n          icmp: 0-2047\n        - prefix: 203.0.113.0/28\n          tcp: 2048-65535\n          udp: 2048-65535\n          icmp: 2048-65535\n"), &[], &[]),
        case("eamt overlaps pool4", format!("{}  - siit:\n      name: s\n      eamt:\n        - {{ ipv6: \"2001:db8:6::/124\", ipv4: 203.0.113.0/28 }}\n", nat64("")), &[
                "t.yaml:17:39: pool4-overlap: EAMT 203.0.113.0/28 overlaps instances[0].nat64.pool4[0] (203.0.113.0/28)",
            ], &[]),
        case("pool4-empty", nat64("").replace("      pool4:\n        - prefix: 203.0.113.0/28\n", "      pool4: []\n"), &[
                "t.yaml:12:7: pool4-empty: a nat64 instance needs at least one pool4 entry",
            ],
            &[],
        ),
        case("bib-outside-pool4", nat64("      static_bib:\n        - { protocol: tcp, ipv6: 2001:db8:1::5#80, ipv4: 203.0.113.5#80 }\n        - { protocol: udp, ipv6: 2001:db8:1::5#53, ipv4: 203.0.113.99#5353 }\n"), &[
                "t.yaml:15:52: bib-outside-pool4: tcp 203.0.113.5#80 is not inside any pool4 entry of this instance (address and tcp range)",
                "t.yaml:16:52: bib-outside-pool4: udp 203.0.113.99#5353 is not inside any pool4 entry of this instance (address and udp range)",
            ],
            &[],
        ),
        case("bib-duplicate", nat64("      static_bib:\n        - { protocol: tcp, ipv6: 2001:db8:1::5#8080, ipv4: 203.0.113.5#8080 }\n        - { protocol: tcp, ipv6: 2001:db8:1::6#8080, ipv4: 203.0.113.5#8080 }\n"), &[
                "t.yaml:16:54: bib-duplicate: tcp 203.0.113.5#8080 is already bound by static_bib[0]",
            ],
            &[],
        ),
        case("bib port range", nat64("      static_bib:\n        - { protocol: udp, ipv6: 2001:db8:1::5#0, ipv4: 203.0.113.5#70000 }\n"), &[
                "t.yaml:15:28: port-range: UDP port 0 is outside 1-65535",
                "t.yaml:15:51: port-range: UDP port 70000 is outside 1-65535",
                "t.yaml:15:51: bib-outside-pool4: udp 203.0.113.5#70000 is not inside any pool4 entry of this instance (address and udp range)",
            ],
            &[],
        ),
        // --- EAMT ---
        case("eamt-overlap", format!("{HEAD}  - siit:\n      name: s\n      eamt:\n        - {{ ipv6: 2001:db8:6::/120, ipv4: 198.51.100.0/24 }}\n        - {{ ipv6: 2001:db8:6::80/121, ipv4: 192.0.2.0/25 }}\n        - {{ ipv6: 2001:db8:7::/121, ipv4: 198.51.100.128/25 }}\n"), &[
                "t.yaml:13:13: eamt-overlap: 2001:db8:6::80/121 overlaps instances[0].siit.eamt[0] (2001:db8:6::/120)",
                "t.yaml:14:37: eamt-overlap: 198.51.100.128/25 overlaps instances[0].siit.eamt[0] (198.51.100.0/24)",
            ],
            &[],
        ),
        case("eam-suffix-length", format!("{HEAD}  - siit:\n      name: s\n      eamt:\n        - ipv6: 2001:db8:6::/124\n          ipv4: 198.51.100.0/24\n"), &[
                "t.yaml:12:11: eam-suffix-length: 2001:db8:6::/124 <-> 198.51.100.0/24: the IPv6 suffix (4 bits) is shorter than the IPv4 suffix (8 bits)",
            ],
            &[],
        ),
        case("siit-empty", format!("{HEAD}  - siit:\n      name: s\n"), &[
                "t.yaml:9:5: siit-empty: a siit instance needs a pool6, EAMT entries, or both",
            ],
            &[],
        ),
        // --- interfaces ---
        case("duplicate-interface", HEAD.replace("name: outside", "name: inside") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:5:5: duplicate-interface: interface \"inside\" is already defined (interfaces[0])",
            ],
            &[],
        ),
        case("duplicate-device", HEAD.replace("0000:03:00.1", "0000:03:00.0") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:6:5: duplicate-device: device \"0000:03:00.0\" is already used by interfaces[0]",
            ],
            &[],
        ),
        case("vlans share a device", HEAD.replace("0000:03:00.1", "0000:03:00.0\n    vlan: 20") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[], &[]),
        case("interface-undefined", nat64("      ipv4_interface: uplink\n"), &[
                "t.yaml:14:7: interface-undefined: interface \"uplink\" is not defined under interfaces",
            ],
            &[],
        ),
        case("interface-role", nat64("      ipv6_interface: outside\n"), &[
                "t.yaml:14:7: interface-role: interface \"outside\" does not carry IPv6 (its role is not ipv6 or both)",
            ],
            &[],
        ),
        case("interface-role none/several", "interfaces:\n  - { name: a, device: 0000:03:00.0, role: ipv6 }\n  - { name: b, device: 0000:03:00.1, role: ipv6 }\ninstances:\n  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:5:5: interface-role: several interfaces carry IPv6 (a, b): choose one with ipv6_interface",
                "t.yaml:5:5: interface-role: no interface carries IPv4",
            ],
            &[],
        ),
        case("pci-device-missing", HEAD.replace("0000:03:00.1", "0000:05:00.0") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:6:5: pci-device-missing: PCI device 0000:05:00.0 does not exist (not in /sys/bus/pci/devices)",
            ],
            &[],
        ),
        case("vdev-unknown-driver", HEAD.replace("0000:03:00.1", "net_foo0,iface=veth1") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:6:5: vdev-unknown-driver: \"net_foo0\" names no known DPDK virtual device driver (known: net_af_packet, net_af_xdp, net_pcap, net_tap, net_tun, net_memif, net_ring, net_null, net_vhost, net_virtio_user, net_bonding, net_failsafe, eth_af_packet, eth_pcap, eth_ring, eth_null)",
            ],
            &[],
        ),
        case("device-syntax", HEAD.replace("0000:03:00.1", "eth1") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:6:5: device-syntax: \"eth1\" is neither a PCI address (0000:03:00.0) nor a vdev (net_af_packet0,iface=eth0)",
            ],
            &[],
        ),
        case("vlan-range", HEAD.replace("    role: ipv4\n", "    role: ipv4\n    vlan: 4095\n") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:8:5: vlan-range: VLAN id 4095 is outside 1-4094",
            ],
            &[],
        ),
        case("steering-flow", format!("dpdk:\n  steering: flow\n{}", HEAD.replace("    role: ipv4\n", "    role: ipv4\n    vlan: 100\n")) + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:2:3: steering-flow: interface outside carries IPv4 on a VLAN: flow steering matches untagged frames only (use auto or software)",
            ],
            &[],
        ),
        case("mtu-range", HEAD.replace("    role: ipv6\n", "    role: ipv6\n    mtu: 1000\n") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:5:5: mtu-range: MTU 1000 is outside 1280-9216 (RFC 8200 §5: IPv6 links have an MTU of at least 1280)",
            ],
            &[],
        ),
        case("mac-invalid", HEAD.replace("    role: ipv4\n", "    role: ipv4\n    mac: 01:00:5e:00:00:01\n    neighbours:\n      - { ip: 198.51.100.1, mac: \"00:00:00:00:00:00\" }\n") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:8:5: mac-invalid: 01:00:5e:00:00:01 is not a unicast station address",
                "t.yaml:10:29: mac-invalid: 00:00:00:00:00:00 is not a unicast station address",
            ],
            &[],
        ),
        case("address-family", HEAD.replace("    role: ipv4\n", "    role: ipv4\n    ipv6: [2001:db8:1::1/64]\n    neighbours:\n      - { ip: 2001:db8:1::2, mac: 02:00:00:00:00:02 }\n    routes:\n      - { prefix: 0.0.0.0/0, via: 2001:db8:1::2 }\n      - { prefix: 198.51.100.0/24, via: 198.51.100.1 }\n") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:8:5: address-family: the interface does not carry IPv6 (role: ipv4) but has IPv6 addresses",
                "t.yaml:10:11: address-family: neighbour 2001:db8:1::2 is of a family this interface does not carry",
                "t.yaml:12:30: address-family: next hop 2001:db8:1::2 is not of the family of 0.0.0.0/0",
            ],
            &[],
        ),
        case("route prefix-host-bits", HEAD.replace("    role: ipv4\n", "    role: ipv4\n    routes:\n      - { prefix: 198.51.100.1/24, via: 192.0.2.1 }\n") + "  - siit: { name: s, pool6: 2001:db8:46::/96 }\n", &[
                "t.yaml:9:11: prefix-host-bits: 198.51.100.1/24 has bits set after /24 (did you mean 198.51.100.0/24?)",
            ],
            &[],
        ),
        case("no-interfaces/no-instances", "interfaces: []\ninstances: []\n", &[
                "t.yaml:1:1: no-interfaces: at least one interface is needed",
                "t.yaml:2:1: no-instances: at least one nat64 or siit instance is needed",
            ],
            &[],
        ),
        case("name-syntax", nat64("").replace("name: plat", "name: \"my plat\""), &[
                "t.yaml:10:7: name-syntax: instance name \"my plat\" must be 1-32 characters of [A-Za-z0-9_.-]",
            ],
            &[],
        ),
        // --- instances ---
        case("duplicate-instance", format!("{}  - siit: {{ name: plat, pool6: 2001:db8:46::/96 }}\n", nat64("")), &[
                "t.yaml:14:13: duplicate-instance: instance \"plat\" is already defined (instances[0])",
            ],
            &[],
        ),
        case("instance-overlap", format!("{}  - nat64:\n      name: plat2\n      pool6: 2001:db8:64::/96\n      pool4: [ {{ prefix: 198.51.100.0/28 }} ]\n", nat64("")), &[
                "t.yaml:16:7: instance-overlap: pool6 2001:db8:64::/96 overlaps pool6 2001:db8:64::/96 of instance \"plat\"; nat64 instances may share a pool6 only with disjoint destinations",
            ],
            &[],
        ),
        case("split destinations", format!("{}  - nat64:\n      name: plat2\n      pool6: 2001:db8:64::/96\n      destinations: 128.0.0.0/1\n      pool4: [ {{ prefix: 198.51.100.0/28 }} ]\n", nat64("      destinations: 0.0.0.0/1\n")), &[], &[]),
        // --- timeouts, limits ---
        case("timeout-range / below rfc6146", nat64("      timeouts:\n        udp: 0\n        tcp_est: 3600\n        syn_hold: 2\n"), &[
                "t.yaml:15:9: timeout-range: timeouts.udp must be at least 1 second",
            ],
            &[
                "t.yaml:16:9: timeout-below-rfc6146: timeouts.tcp_est = 3600 s is below the RFC 6146 minimum of 7440 s (TCP_EST, §4)",
                "t.yaml:17:9: timeout-below-rfc6146: timeouts.syn_hold = 2 s is below the RFC 6146 minimum of 6 s (TCP_INCOMING_SYN, §4)",
            ],
        ),
        case("limit-range", nat64("      limits:\n        max_sessions: 0\n        max_sessions_per_client: 0\n        client_prefix_len: 129\n"), &[
                "t.yaml:15:9: limit-range: max_sessions must be at least 1",
                "t.yaml:16:9: limit-range: max_sessions_per_client must be at least 1 (omit it for no limit)",
                "t.yaml:17:9: limit-range: client_prefix_len 129 is over 128",
            ],
            &[],
        ),
        case("limit-range static", nat64("      static_bib:\n        - { protocol: tcp, ipv6: 2001:db8:1::5#80, ipv4: 203.0.113.5#8080 }\n        - { protocol: udp, ipv6: 2001:db8:1::5#53, ipv4: 203.0.113.5#5353 }\n      limits:\n        max_static_bib: 1\n"), &[
                "t.yaml:18:9: limit-range: 2 static_bib entries do not fit max_static_bib 1",
            ],
            &[],
        ),
        case("allocation-key", nat64("      allocation:\n        mode: blocks\n        clients: 2001:db8:a::/48\n        ports_per_client: 100\n"), &[
                "t.yaml:16:9: allocation-key: clients applies to mode deterministic only, this instance's mode is blocks",
                "t.yaml:17:9: allocation-key: ports_per_client applies to mode deterministic only, this instance's mode is blocks",
            ],
            &[],
        ),
        case("allocation-key deterministic without clients", nat64("      allocation:\n        mode: deterministic\n        block_size: 64\n"), &[
                "t.yaml:16:9: allocation-key: block_size applies to mode blocks only, this instance's mode is deterministic",
                "t.yaml:15:9: allocation-key: mode deterministic needs clients: the IPv6 range whose prefixes are mapped",
            ],
            &[],
        ),
        case("block-size", nat64("          tcp: 1024-1100\n      allocation:\n        mode: blocks\n        block_size: 100\n        max_blocks_per_client: 0\n"), &[
                "t.yaml:18:9: block-size: max_blocks_per_client must be 1-65535",
                "t.yaml:17:9: block-size: block_size 100 is larger than the 77 tcp ports each of the 1 worker(s) owns per address of pool4[0]",
            ],
            &[],
        ),
        case("block-size range", nat64("      allocation: { mode: blocks, block_size: 70000 }\n"), &[
                "t.yaml:14:35: block-size: block_size 70000 is outside 1-65535",
            ],
            &[],
        ),
        case("deterministic-fit", nat64("      limits:\n        client_prefix_len: 72\n      allocation:\n        mode: deterministic\n        clients: 2001:db8:a::/48\n"), &[
                "t.yaml:18:9: deterministic-fit: 16777216 clients (/72 in 2001:db8:a::/48) get at most 0 tcp ports each from pool4, fewer than one per worker (1)",
            ],
            &[],
        ),
        case("deterministic-fit length", nat64("      limits:\n        client_prefix_len: 96\n      allocation:\n        mode: deterministic\n        clients: 2001:db8:a::/48\n"), &[
                "t.yaml:18:9: deterministic-fit: clients 2001:db8:a::/48 with limits.client_prefix_len 96: a client prefix must be 0-32 bits longer than the range (2^32 clients at most)",
            ],
            &[],
        ),
        case("deterministic-fit ports", format!("dpdk:\n  workers: [1, 2, 3]\n{}", nat64("      limits: { client_prefix_len: 128 }\n      allocation:\n        mode: deterministic\n        clients: 2001:db8:a::/120\n        ports_per_client: 9000\n")), &[
                "t.yaml:20:9: deterministic-fit: 256 clients (/128 in 2001:db8:a::/120) get at most 4032 tcp ports each from pool4, fewer than ports_per_client 9000",
            ],
            &[],
        ),
        case("allocation valid", nat64("      allocation: { mode: deterministic, clients: 2001:db8:a::/56 }\n"), &[], &[]),
        // --- global ---
        case("lowest-ipv6-mtu", format!("{}rfc7915:\n  lowest_ipv6_mtu: 1000\n", nat64("")), &[
                "t.yaml:15:3: lowest-ipv6-mtu: 1000 is below the IPv6 minimum link MTU of 1280 (RFC 8200 §5)",
            ],
            &[],
        ),
        case("path-absolute", format!("{}management:\n  control_socket: run/nat64d.sock\n", nat64("")), &[
                "t.yaml:15:3: path-absolute: run/nat64d.sock must be an absolute path",
            ],
            &[],
        ),
        case("lcore-not-in-eal", format!("dpdk:\n  eal_args: [-l, 0-2]\n  workers: [0, 2, 3]\n{}", nat64("")), &[
                "t.yaml:3:13: lcore-not-in-eal: lcore 0 is EAL's main lcore, which runs the control thread",
                "t.yaml:3:19: lcore-not-in-eal: lcore 3 is not among the lcores given to EAL in eal_args",
            ], &[]),
        case("eal main lcore only", format!("dpdk:\n  eal_args: [-l, \"1\"]\n{}", nat64("")), &[], &[
                "t.yaml:2:3: lcore-not-in-eal: EAL gets only its main lcore: the main thread polls (give EAL more lcores for speed)",
            ]),
        // --- session sync ---
        case("sync", format!("{}sync:
  listen: 0.0.0.0:6146
  peers: [198.51.100.2:6146, \"[2001:db8::2]:6146\"]
  multicast_interface: eth0
  key_file: /nonexistent/sync.key
  flush_ms: 0
  queue: 10
  refresh_s: 60
", nat64("")), &[
                "t.yaml:16:30: sync-peers: [2001:db8::2]:6146 is not of the family of listen",
                "t.yaml:17:3: sync-peers: multicast_interface is only for a multicast group peer",
                "t.yaml:15:3: sync-peers: listen must be a specific address with unicast peers",
                "t.yaml:18:3: sync-key: /nonexistent/sync.key: No such file or directory (os error 2)",
                "t.yaml:19:3: sync-range: flush_ms must be 1-1000",
                "t.yaml:20:3: sync-range: queue must be 64-16777216",
                "t.yaml:21:3: sync-range: refresh_s must be at least 1 and below the shortest udp, icmp or tcp_trans timeout (60 s)",
            ], &[]),
        case("sync multicast", format!("{}sync:
  listen: 198.51.100.1:6146
  peers: [239.1.2.3:6146, 198.51.100.1:6146]
  key_file: sync.key
", nat64("")), &[
                "t.yaml:16:3: sync-peers: a multicast group must be the only peer",
                "t.yaml:16:27: sync-peers: 198.51.100.1:6146 is this appliance's listen",
                "t.yaml:16:3: sync-peers: a multicast group needs multicast_interface (the kernel interface that joins it)",
                "t.yaml:17:3: path-absolute: sync.key must be an absolute path",
            ], &[]),
        case("sync multicast wildcard listen", format!("{}sync:
  listen: 0.0.0.0:6146
  peers: [239.1.2.3:6146]
  multicast_interface: eth0
  key_file: /nonexistent/sync.key
", nat64("")), &[
                "t.yaml:15:3: sync-peers: an unspecified listen cannot use the group's port 6146",
                "t.yaml:18:3: sync-key: /nonexistent/sync.key: No such file or directory (os error 2)",
            ], &[]),
        case("lcores", format!("dpdk:\n  workers: [1, 7, 1]\n{}", nat64("")), &[
                "t.yaml:2:16: lcore-missing: lcore 7 is not online on this machine (online: 0,1,2,3)",
                "t.yaml:2:19: lcore-duplicate: lcore 1 is already a worker (dpdk.workers[0])",
            ],
            &[],
        ),
    ]
}

#[test]
fn every_rule_reports_its_message_and_position() {
    let mut failures = Vec::new();
    for c in cases() {
        let (errors, warnings) = run(&c.text);
        if errors != c.errors || warnings != c.warnings {
            failures.push(format!("case {:?}:\n  errors:   {errors:#?}\n  warnings: {warnings:#?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_rule_is_covered_by_a_case() {
    let mut seen = BTreeSet::new();
    for c in cases() {
        for line in c.errors.iter().chain(c.warnings) {
            let rule = line.split(": ").nth(1).unwrap();
            seen.insert(Rule::from_name(rule).unwrap_or_else(|| panic!("{rule}")));
        }
    }
    // I/O errors and host probing have their own tests below.
    seen.insert(Rule::Io);
    seen.insert(Rule::HostProbe);
    let missing: Vec<&str> = Rule::ALL.iter().filter(|r| !seen.contains(r)).map(|r| r.name()).collect();
    assert!(missing.is_empty(), "rules without a case: {missing:?}");
}

#[test]
fn unreadable_file_is_an_io_error_at_line_one() {
    let err = Document::from_file("/nonexistent/nat64d.yaml").unwrap_err();
    assert_eq!(err.rule, Rule::Io);
    assert!(err.to_string().starts_with("/nonexistent/nat64d.yaml:1:1: io: cannot read the file: "), "{err}");
}

#[test]
fn unreadable_sysfs_skips_host_checks_with_a_warning() {
    let text = format!("dpdk:\n  workers: [1, 99]\n{}", nat64(""));
    let doc = Document::parse(text, "t.yaml").unwrap();
    let v = doc.validate(&Host::default());
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let w: Vec<String> = v.warnings.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        w,
        [
            "t.yaml:2:13: host-probe: cannot read /sys/devices/system/cpu/online: worker lcores not checked",
            "t.yaml:5:5: host-probe: cannot read /sys/bus/pci/devices: PCI devices not checked",
        ]
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = nat64(
        "          tcp: 0-10
          udp: 9-8
      timeouts:
        udp: 0
",
    );
    let (errors, _) = run(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn rule_names_are_unique_and_kebab_case() {
    let names: BTreeSet<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), Rule::ALL.len());
    for n in names {
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{n}");
        assert_eq!(Rule::from_name(n).map(|r| r.name()), Some(n));
    }
}
