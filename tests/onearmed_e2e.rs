//! One-armed: a single port carries both families, each on its own 802.1Q
//! VLAN (as one dual-stacked interface of a router-on-a-stick does). An
//! IPv6 packet tagged with the IPv6 VLAN comes back out of the same port,
//! translated, tagged with the IPv4 VLAN; answers to the appliance's own
//! addresses keep the VLAN they came on.

mod support;

use std::time::Duration;

use support::{eal_mem, read_pcap, run_for, write_pcap};

const OURS: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 9];

fn tagged(vid: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::from(OURS);
    f.extend_from_slice(&ROUTER);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn one_port_two_vlans_translates_between_them() {
    let dir = std::env::temp_dir().join(format!("nat64-onearm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // UDP from an IPv6 client to 198.51.100.7 embedded in pool6, on VLAN 10;
    // and an echo request to the appliance's IPv4 address on VLAN 20.
    let mut udp6 = Vec::new();
    etherparse::PacketBuilder::ipv6(
        "2001:db8:10::5".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        "2001:db8:64::c633:6407".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        64,
    )
    .udp(4000, 53)
    .write(&mut udp6, b"one arm")
    .unwrap();
    let mut ping4 = Vec::new();
    etherparse::PacketBuilder::ipv4([198, 51, 100, 7], [198, 51, 100, 1], 64)
        .icmpv4_echo_request(9, 1)
        .write(&mut ping4, b"hi")
        .unwrap();
    let frames = [tagged(10, 0x86dd, &udp6), tagged(20, 0x0800, &ping4)];
    write_pcap(&dir.join("in.pcap"), &frames);
    let mem = eal_mem("oa");
    let d = dir.display();
    let yaml = format!(
        r#"dpdk:
  eal_args: ["-l", "0-1", "--no-pci", {mem}, "--log-level=*:error"]
interfaces:
  - name: inside
    device: "net_pcap_oa,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
    role: ipv6
    vlan: 10
    mac: "02:00:00:00:00:01"
    ipv6: ["2001:db8:10::1/64"]
  - name: outside
    device: "net_pcap_oa,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap"
    role: ipv4
    vlan: 20
    mac: "02:00:00:00:00:01"
    ipv4: ["198.51.100.1/24"]
    neighbours:
      - ip: "198.51.100.7"
        mac: "02:00:00:00:00:09"
instances:
  - nat64:
      name: stick
      pool6: "2001:db8:64::/96"
      allow_non_global_wkp: true
      pool4:
        - prefix: "198.51.100.1/32"
"#
    );
    let (stats, _log) = run_for(&dir, &yaml, Duration::from_millis(400));

    let out = read_pcap(&dir.join("out.pcap"));
    assert_eq!(out.len(), 2, "translated packet and echo reply: {}", stats);
    for f in &out {
        assert_eq!(&f[12..14], &[0x81, 0x00], "tagged");
        let vid = u16::from_be_bytes([f[14], f[15]]) & 0x0fff;
        assert_eq!(vid, 20, "both leave on the IPv4 VLAN");
        assert_eq!(&f[0..6], &ROUTER);
    }
    let ips: Vec<etherparse::SlicedPacket> =
        out.iter().map(|f| etherparse::SlicedPacket::from_ethernet(f).unwrap()).collect();
    let mut kinds: Vec<String> = ips
        .iter()
        .map(|p| match (&p.net, &p.transport) {
            (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Udp(u))) => {
                format!(
                    "udp {:?}->{:?} dport {}",
                    ip.header().source(),
                    ip.header().destination(),
                    u.destination_port()
                )
            }
            (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Icmpv4(_))) => {
                format!("icmp {:?}->{:?}", ip.header().source(), ip.header().destination())
            }
            other => format!("unexpected {other:?}"),
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "icmp [198, 51, 100, 1]->[198, 51, 100, 7]",
            "udp [198, 51, 100, 1]->[198, 51, 100, 7] dport 53"
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}
