//! Two workers in the real nat64d: each owns half of pool4; an IPv4 packet
//! that arrives on the other worker's queue (as RSS may deliver it) is
//! handed to the owner through the software handoff ring and translated
//! there, and the handoff is counted.
//!
//! net_pcap gives one RX queue per `rx_pcap` file, so the test decides
//! which worker receives what.

mod support;

use std::time::Duration;

use support::{eal_mem, read_pcap, run_for, write_pcap};

/// Ethernet + IPv4 + UDP from 198.51.100.9:5000 to 192.0.2.2:`dport`.
fn udp4(dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 4, 1, 2, 0, 0, 0, 4, 2, 0x08, 0x00];
    etherparse::PacketBuilder::ipv4([198, 51, 100, 9], [192, 0, 2, 2], 64)
        .udp(5000, dport)
        .write(&mut f, b"hand me over")
        .unwrap();
    f
}

#[test]
fn ipv4_packets_reach_the_worker_that_owns_their_mapping() {
    let dir = std::env::temp_dir().join(format!("nat64-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    // Queue 0 (worker 0) gets nothing; queue 1 (worker 1) gets packets for
    // a port of each half of the pool.
    write_pcap(&dir.join("v4q0.pcap"), &[]);
    write_pcap(&dir.join("v4q1.pcap"), &[udp4(100), udp4(2900)]);
    write_pcap(&dir.join("v6q0.pcap"), &[]);
    write_pcap(&dir.join("v6q1.pcap"), &[]);
    let mem = eal_mem("wk");
    let yaml = format!(
        r#"dpdk:
  eal_args: ["--lcores=0@0,1@1,2@1", "--no-pci", {mem}, "--log-level=*:error"]
interfaces:
  - name: v6
    device: "net_pcap_w6,rx_pcap={d}/v6q0.pcap,rx_pcap={d}/v6q1.pcap,tx_pcap={d}/v6out0.pcap,tx_pcap={d}/v6out1.pcap"
    role: ipv6
    mac: "02:00:00:00:06:01"
    ipv6: ["2001:db8::1/64"]
    neighbours:
      - ip: "2001:db8::5"
        mac: "02:00:00:00:06:02"
  - name: v4
    device: "net_pcap_w4,rx_pcap={d}/v4q0.pcap,rx_pcap={d}/v4q1.pcap,tx_pcap={d}/v4out0.pcap,tx_pcap={d}/v4out1.pcap"
    role: ipv4
    mac: "02:00:00:00:04:01"
    ipv4: ["192.0.2.2/24"]
instances:
  - nat64:
      name: split
      pool6: "2001:db8:64::/96"
      allow_non_global_wkp: true
      pool4:
        - prefix: "192.0.2.2/32"
          tcp: "1-3000"
          udp: "1-3000"
          icmp: "1-3000"
      static_bib:
        - protocol: udp
          ipv6: "2001:db8::5#7000"
          ipv4: "192.0.2.2#100"
        - protocol: udp
          ipv6: "2001:db8::5#7001"
          ipv4: "192.0.2.2#2900"
"#
    );
    let (stats, log) = run_for(&dir, &yaml, Duration::from_millis(500));
    // net_pcap has no flow API: IPv4 return traffic is steered in software.
    assert!(log.contains("steering: software handoff between workers (the device has no flow API)"), "{log}");

    let s: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let c = &s["counters"];
    assert_eq!(c["v4_to_v6"], 2, "both packets translated: {s}");
    assert_eq!(c["handoffs"], 1, "the packet for worker 0's half was handed over: {s}");
    assert_eq!(c["handoffs_received"], 1, "{s}");
    // Each packet left on the IPv6 TX queue of the worker that translated it.
    let out: Vec<Vec<u8>> =
        [0, 1].iter().flat_map(|q| read_pcap(&dir.join(format!("v6out{q}.pcap")))).collect();
    assert_eq!(out.len(), 2);
    let mut dports: Vec<u16> = out
        .iter()
        .map(|f| {
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            match p.transport {
                Some(etherparse::TransportSlice::Udp(u)) => u.destination_port(),
                _ => panic!("not UDP"),
            }
        })
        .collect();
    dports.sort();
    assert_eq!(dports, vec![7000, 7001], "static BIB mappings applied on both halves");
    std::fs::remove_dir_all(&dir).ok();
}
