//! The configuration schema. Every struct rejects unknown keys; every
//! optional key's default is named in its doc comment (and in
//! docs/configuration.md, and in deploy/nat64d.yaml).

use super::error::{tagged, Rule};
use super::types::{MacAddr, PortRange, Prefix4, Prefix6, SessionLog, TrafficClass, Transport4, Transport6};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// EAL arguments and worker cores. Default: no extra EAL arguments,
    /// workers on every EAL lcore except the main one.
    #[serde(default)]
    pub dpdk: Dpdk,
    /// The ports the appliance drives (required, at least one).
    pub interfaces: Vec<Interface>,
    /// Translation instances (required, at least one).
    pub instances: Vec<Instance>,
    /// RFC 7915 knobs shared by all instances.
    #[serde(default)]
    pub rfc7915: Rfc7915,
    /// Control socket and HTTP management listener.
    #[serde(default)]
    pub management: Management,
    /// Log level, format and session log.
    #[serde(default)]
    pub logging: Logging,
    /// Session synchronization with peer appliances (docs/ha.md).
    /// Default: absent, sync off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SessionSync>,
}

/// Session synchronization: this appliance's sessions go to its peers and
/// theirs come here, for every stateful instance (matched by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSync {
    /// UDP address:port this appliance sends from and listens on
    /// (management network). Required.
    pub listen: SocketAddr,
    /// Unicast peers, or exactly one multicast group. Required.
    pub peers: Vec<SocketAddr>,
    /// Kernel interface that joins the multicast group (required with a
    /// group, refused with unicast peers). Default: none.
    #[serde(default)]
    pub multicast_interface: Option<String>,
    /// Shared secret of the HMAC-SHA256 on every datagram: at least 32
    /// bytes, readable by the owner only (mode 0600). Required.
    pub key_file: PathBuf,
    /// A partly filled batch is sent after this many milliseconds.
    /// Default: 20.
    #[serde(default = "default_sync_flush_ms")]
    pub flush_ms: u32,
    /// Per-worker bound of changes waiting to be sent. Default: 65536.
    #[serde(default = "default_sync_queue")]
    pub queue: u32,
    /// Every live session is re-sent this often (seconds), so a peer's
    /// copy outlives a session kept alive by traffic. Default: 30.
    #[serde(default = "default_sync_refresh_s")]
    pub refresh_s: u32,
}

/// DPDK environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dpdk {
    /// Passed to `rte_eal_init` as is (e.g. `["-l", "0-3", "-n", "4"]`).
    /// Default: none.
    #[serde(default)]
    pub eal_args: Vec<String>,
    /// lcores that run a worker. Default (empty): every EAL lcore except
    /// the main one.
    #[serde(default)]
    pub workers: Vec<u32>,
    /// Packet buffers in the mbuf pool. Default (none): enough for every
    /// worker's RX and TX rings on every port. Raise it for deep queues or
    /// replaying large captures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbufs: Option<u32>,
    /// How IPv4 return traffic reaches the worker owning its pool4 slice.
    /// Default: `auto`.
    #[serde(default)]
    pub steering: Steering,
}

/// How IPv4 packets reach the worker that owns their pool4 transport
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Steering {
    /// NIC flow rules (`rte_flow`) on each IPv4 port when there are several
    /// workers and the NIC accepts every rule; otherwise software handoff,
    /// with one log line saying why.
    #[default]
    Auto,
    /// NIC flow rules; nat64d does not start if a NIC refuses them.
    Flow,
    /// Software handoff between workers only.
    Software,
}

impl Steering {
    /// The value as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Steering::Auto => "auto",
            Steering::Flow => "flow",
            Steering::Software => "software",
        }
    }
}

/// Which address families an interface carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The IPv6 side only.
    Ipv6,
    /// The IPv4 side only.
    Ipv4,
    /// Both sides on one port ("one-armed").
    Both,
}

impl Role {
    /// Whether IPv6 traffic uses this interface.
    pub fn carries_v6(self) -> bool {
        matches!(self, Role::Ipv6 | Role::Both)
    }
    /// Whether IPv4 traffic uses this interface.
    pub fn carries_v4(self) -> bool {
        matches!(self, Role::Ipv4 | Role::Both)
    }
}

/// One port (optionally one VLAN on a port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Unique name, used by instances and in metrics (`[A-Za-z0-9_.-]`).
    pub name: String,
    /// DPDK device: a PCI address (`0000:03:00.0`) or a vdev with its
    /// arguments (`net_af_packet0,iface=veth1`).
    pub device: String,
    /// Families carried: `ipv6`, `ipv4` or `both` (required).
    pub role: Role,
    /// MAC override. Default: the port's own address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// 802.1Q VLAN id (1-4094). Default: untagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// IP MTU in bytes. Default: 1500.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Own IPv4 addresses with prefix length. Default: none.
    #[serde(default)]
    pub ipv4: Vec<Ipv4Net>,
    /// Own IPv6 addresses with prefix length. Default: none.
    #[serde(default)]
    pub ipv6: Vec<Ipv6Net>,
    /// Static neighbours (no ARP/ND for these). Default: none.
    #[serde(default)]
    pub neighbours: Vec<Neighbour>,
    /// Static routes out of this interface. Default: none.
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl Interface {
    /// The DPDK device name: the PCI address or vdev name, without
    /// arguments (`net_af_packet0` of `net_af_packet0,iface=veth1`).
    pub fn device_name(&self) -> &str {
        self.device.split(',').next().unwrap_or("").trim()
    }

    /// The device arguments after the first comma (`iface=veth1`), or "".
    pub fn device_args(&self) -> &str {
        self.device.split_once(',').map(|(_, a)| a.trim()).unwrap_or("")
    }

    /// Whether the device is a virtual one (created by its driver, not
    /// found on a bus).
    pub fn is_vdev(&self) -> bool {
        super::validate::normalize_pci(self.device_name()).is_none()
    }
}

/// A static ARP/ND entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbour {
    /// The neighbour's IPv4 or IPv6 address.
    pub ip: IpAddr,
    /// Its MAC address.
    pub mac: MacAddr,
}

/// A static route; prefix and next hop are of the same family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0`, `::/0`, ...).
    pub prefix: IpNet,
    /// Next hop, reached on this interface.
    pub via: IpAddr,
}

/// A translation instance: `- nat64: {...}` or `- siit: {...}`.
///
/// serde_yaml_ng reads externally tagged enums only from YAML tags
/// (`!nat64`), so the one-key mapping form has its own serde impls below.
#[derive(Debug, Clone, PartialEq)]
pub enum Instance {
    /// Stateful NAT64 (RFC 6146).
    Nat64(Nat64),
    /// Stateless SIIT (RFC 7915, RFC 7757).
    Siit(Siit),
}

impl Instance {
    /// The instance's name.
    pub fn name(&self) -> &str {
        match self {
            Instance::Nat64(n) => &n.name,
            Instance::Siit(s) => &s.name,
        }
    }
    /// The YAML key of the instance's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Instance::Nat64(_) => "nat64",
            Instance::Siit(_) => "siit",
        }
    }
    /// The interfaces named for the IPv6 and IPv4 sides, if any.
    pub fn interfaces(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Instance::Nat64(n) => (n.ipv6_interface.as_deref(), n.ipv4_interface.as_deref()),
            Instance::Siit(s) => (s.ipv6_interface.as_deref(), s.ipv4_interface.as_deref()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum InstanceKind {
    Nat64,
    Siit,
}

impl Serialize for Instance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Instance::Nat64(n) => m.serialize_entry("nat64", n)?,
            Instance::Siit(x) => m.serialize_entry("siit", x)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Instance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Instance;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping with one key, nat64 or siit")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Instance, A::Error> {
                let mut out = None;
                while let Some(kind) = map.next_key::<InstanceKind>()? {
                    if out.is_some() {
                        return Err(tagged(
                            Rule::InvalidValue,
                            "an instance is either nat64 or siit, not both: start another list item",
                        ));
                    }
                    out = Some(match kind {
                        InstanceKind::Nat64 => Instance::Nat64(map.next_value()?),
                        InstanceKind::Siit => Instance::Siit(map.next_value()?),
                    });
                }
                out.ok_or_else(|| tagged(Rule::MissingKey, "an instance needs a nat64 or siit key"))
            }
        }
        d.deserialize_map(V)
    }
}

/// The well-known prefix of RFC 6052 §2.1.
pub const WELL_KNOWN_PREFIX: Prefix6 =
    Prefix6(Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96));

/// A stateful NAT64 instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat64 {
    /// Unique instance name (`[A-Za-z0-9_.-]`).
    pub name: String,
    /// Interface of the IPv6 side. Default: the one interface carrying IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_interface: Option<String>,
    /// Interface of the IPv4 side. Default: the one interface carrying IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_interface: Option<String>,
    /// RFC 6052 prefix IPv4 destinations are embedded in. Default:
    /// `64:ff9b::/96`.
    #[serde(default = "default_pool6")]
    pub pool6: Prefix6,
    /// IPv4 transport addresses shared by the clients (required).
    pub pool4: Vec<Pool4Entry>,
    /// Static BIB entries (port forwards). Default: none.
    #[serde(default)]
    pub static_bib: Vec<StaticBib>,
    /// Session lifetimes.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// RFC 4787 filtering of inbound IPv4 packets. Default:
    /// `endpoint_independent`.
    #[serde(default)]
    pub filtering: Filtering,
    /// Drop IPv4-initiated TCP SYNs instead of holding them (RFC 6146
    /// §3.5.2.2). Default: false.
    #[serde(default)]
    pub drop_external_tcp: bool,
    /// Session limits.
    #[serde(default)]
    pub limits: Limits,
    /// How pool4 ports are handed to clients. Default: `mode: dynamic`.
    #[serde(default, skip_serializing_if = "Allocation::is_default")]
    pub allocation: Allocation,
    /// Only translate towards these IPv4 destinations (to split pool4 by
    /// destination across instances). Default: every destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Prefix4>,
    /// Allow the well-known prefix with a non-global IPv4 pool4 (RFC 6052
    /// §3.1 forbids it on the public Internet). Default: false.
    #[serde(default)]
    pub allow_non_global_wkp: bool,
}

/// A pool4 entry: an address or prefix and the ports usable per protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool4Entry {
    /// An IPv4 address or prefix.
    pub prefix: Prefix4,
    /// TCP ports. Default: 1024-65535.
    #[serde(default = "default_ports")]
    pub tcp: PortRange,
    /// UDP ports. Default: 1024-65535.
    #[serde(default = "default_ports")]
    pub udp: PortRange,
    /// ICMP query identifiers. Default: 0-65535 (identifiers have no
    /// well-known values to keep clear of).
    #[serde(default = "default_icmp_ids")]
    pub icmp: PortRange,
}

impl Pool4Entry {
    /// The range for `protocol`.
    pub fn ports(&self, protocol: Protocol) -> PortRange {
        match protocol {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
            Protocol::Icmp => self.icmp,
        }
    }
}

/// Transport protocols with a BIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP query messages (the identifier plays the port).
    Icmp,
}

impl Protocol {
    /// All three.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp];

    /// The YAML name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }

    /// Lowest legal port: TCP/UDP port 0 is reserved, ICMP identifier 0 is
    /// an ordinary value.
    pub fn min_port(self) -> u32 {
        match self {
            Protocol::Icmp => 0,
            _ => 1,
        }
    }
}

/// A static binding (RFC 6146 §3.5.1: BIB entries may be configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticBib {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: Protocol,
    /// The IPv6 server, `2001:db8::5#80`.
    pub ipv6: Transport6,
    /// Its public address, `203.0.113.5#80` (must lie in pool4).
    pub ipv4: Transport4,
}

/// Session lifetimes in seconds (RFC 6146 §4 constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// UDP session lifetime. Default: 300 (UDP_DEFAULT).
    #[serde(default = "default_udp")]
    pub udp: u32,
    /// Established TCP session lifetime. Default: 7440 (TCP_EST).
    #[serde(default = "default_tcp_est")]
    pub tcp_est: u32,
    /// Transitory TCP session lifetime. Default: 240 (TCP_TRANS).
    #[serde(default = "default_tcp_trans")]
    pub tcp_trans: u32,
    /// ICMP query session lifetime. Default: 60 (ICMP_DEFAULT).
    #[serde(default = "default_icmp")]
    pub icmp: u32,
    /// How long an unsolicited IPv4 SYN is held. Default: 6
    /// (TCP_INCOMING_SYN).
    #[serde(default = "default_syn_hold")]
    pub syn_hold: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: default_udp(),
            tcp_est: default_tcp_est(),
            tcp_trans: default_tcp_trans(),
            icmp: default_icmp(),
            syn_hold: default_syn_hold(),
        }
    }
}

/// Inbound filtering (RFC 6146 §1.2.3, RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filtering {
    /// Any IPv4 host may use an existing binding.
    #[default]
    EndpointIndependent,
    /// Only IPv4 hosts the client has contacted.
    AddressDependent,
}

/// Session limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Session table size of each worker (allocated at start). Default:
    /// 1048576.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: u32,
    /// Sessions one client may hold. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions_per_client: Option<u32>,
    /// What "one client" is: an IPv6 prefix of this length. Default: 64
    /// (one subscriber LAN; a 464XLAT CLAT uses a /64 or less).
    #[serde(default = "default_client_prefix_len")]
    pub client_prefix_len: u8,
    /// Static BIB entries each worker's table has room for (allocated at
    /// start, like the sessions). Default: 1024.
    #[serde(default = "default_max_static_bib")]
    pub max_static_bib: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: default_max_sessions(),
            max_sessions_per_client: None,
            client_prefix_len: default_client_prefix_len(),
            max_static_bib: default_max_static_bib(),
        }
    }
}

/// How a stateful instance chooses pool4 ports (docs/abuse.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// `dynamic`, `blocks` or `deterministic`. Default: `dynamic`.
    #[serde(default)]
    pub mode: AllocationMode,
    /// blocks: ports per block. Default: 512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// blocks: blocks one client may hold per protocol. Default: 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_blocks_per_client: Option<u32>,
    /// deterministic: the IPv6 range of the clients (required); each
    /// `limits.client_prefix_len` prefix in it is one client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Prefix6>,
    /// deterministic: ports per client and protocol. Default: as many as
    /// fit (RFC 7422 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports_per_client: Option<u32>,
}

impl Allocation {
    /// Default block size.
    pub const BLOCK_SIZE: u32 = 512;
    /// Default block limit per client.
    pub const MAX_BLOCKS: u32 = 4;

    fn is_default(&self) -> bool {
        *self == Allocation::default()
    }
}

/// Allocation modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationMode {
    /// A random port per mapping; every session is logged.
    #[default]
    Dynamic,
    /// Port blocks per client; one log line per block.
    Blocks,
    /// RFC 7422: ranges computed from the configuration; nothing logged.
    Deterministic,
}

/// A stateless SIIT instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Siit {
    /// Unique instance name (`[A-Za-z0-9_.-]`).
    pub name: String,
    /// Interface of the IPv6 side. Default: the one interface carrying IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_interface: Option<String>,
    /// Interface of the IPv4 side. Default: the one interface carrying IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_interface: Option<String>,
    /// RFC 6052 prefix for addresses not in the EAMT. Default: none (EAMT
    /// only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool6: Option<Prefix6>,
    /// Explicit address mappings (RFC 7757). Default: none.
    #[serde(default)]
    pub eamt: Vec<Eam>,
    /// RFC 6791 source pool for ICMPv6 errors from untranslatable IPv6
    /// routers. Default: none (the translator's own IPv4 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool6791_v4: Option<Prefix4>,
    /// Source pool for ICMP errors from IPv4 routers whose address cannot
    /// be translated. Default: none (the translator's own IPv6 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool6791_v6: Option<Prefix6>,
    /// Allow the well-known prefix with non-global EAMT IPv4 prefixes.
    /// Default: false.
    #[serde(default)]
    pub allow_non_global_wkp: bool,
}

/// An explicit address mapping (RFC 7757 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eam {
    /// The IPv6 side.
    pub ipv6: Prefix6,
    /// The IPv4 side; same suffix length as the IPv6 side.
    pub ipv4: Prefix4,
}

/// RFC 7915 options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rfc7915 {
    /// Smallest MTU assumed on the IPv6 side, in bytes (RFC 7915 §4, §6).
    /// Default: 1280.
    #[serde(default = "default_lowest_ipv6_mtu")]
    pub lowest_ipv6_mtu: u32,
    /// IPv6 Traffic Class of translated packets (§4.1): `copy`, `zero` or
    /// 0-255. Default: copy.
    #[serde(default)]
    pub traffic_class: TrafficClass,
    /// IPv4 UDP datagrams without checksum (§4.5). Default: compute.
    #[serde(default)]
    pub udp_zero_checksum: UdpZeroChecksum,
    /// Fragment IPv4 packets with DF clear that do not fit
    /// `lowest_ipv6_mtu` once translated (§4). Default: true.
    #[serde(default = "default_true")]
    pub fragment_df_clear: bool,
}

impl Default for Rfc7915 {
    fn default() -> Self {
        Rfc7915 {
            lowest_ipv6_mtu: default_lowest_ipv6_mtu(),
            traffic_class: TrafficClass::default(),
            udp_zero_checksum: UdpZeroChecksum::default(),
            fragment_df_clear: true,
        }
    }
}

/// What to do with IPv4 UDP datagrams whose checksum is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UdpZeroChecksum {
    /// Compute the checksum (unfragmented packets; fragments are dropped).
    #[default]
    Compute,
    /// Drop them.
    Drop,
}

/// Management endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Management {
    /// Unix socket of nat64ctl. Default: `/run/nat64d/control.sock`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// HTTP listener for /metrics and health. Default: `127.0.0.1:9464`.
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
}

impl Default for Management {
    fn default() -> Self {
        Management { control_socket: default_control_socket(), http_listen: default_http_listen() }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Default: info.
    #[serde(default)]
    pub level: LogLevel,
    /// Default: text.
    #[serde(default)]
    pub format: LogFormat,
    /// Session records: `off`, `stdout` or an absolute file path.
    /// Default: off.
    #[serde(default)]
    pub session_log: SessionLog,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation.
    #[default]
    Info,
    /// Detailed.
    Debug,
    /// Everything.
    Trace,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn default_mtu() -> u32 {
    1500
}
fn default_pool6() -> Prefix6 {
    WELL_KNOWN_PREFIX
}
fn default_ports() -> PortRange {
    PortRange::new(1024, 65535)
}
fn default_icmp_ids() -> PortRange {
    PortRange::new(0, 65535)
}
fn default_udp() -> u32 {
    300
}
fn default_tcp_est() -> u32 {
    7440
}
fn default_tcp_trans() -> u32 {
    240
}
fn default_icmp() -> u32 {
    60
}
fn default_syn_hold() -> u32 {
    6
}
fn default_max_sessions() -> u32 {
    1 << 20
}
fn default_max_static_bib() -> u32 {
    1024
}
fn default_client_prefix_len() -> u8 {
    64
}
fn default_lowest_ipv6_mtu() -> u32 {
    1280
}
fn default_true() -> bool {
    true
}
fn default_sync_flush_ms() -> u32 {
    20
}
fn default_sync_queue() -> u32 {
    65536
}
fn default_sync_refresh_s() -> u32 {
    30
}
fn default_control_socket() -> PathBuf {
    PathBuf::from("/run/nat64d/control.sock")
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(device: &str) -> Interface {
        let text = format!("{{ name: x, device: \"{device}\", role: both }}");
        serde_yaml_ng::from_str(&text).unwrap()
    }

    #[test]
    fn device_strings_split_into_name_and_arguments() {
        let i = interface("net_af_packet0,iface=veth1,qpairs=2");
        assert_eq!(i.device_name(), "net_af_packet0");
        assert_eq!(i.device_args(), "iface=veth1,qpairs=2");
        assert!(i.is_vdev());
        let i = interface("0000:03:00.0");
        assert_eq!((i.device_name(), i.device_args()), ("0000:03:00.0", ""));
        assert!(!i.is_vdev());
    }

    #[test]
    fn instances_are_one_key_mappings_both_ways() {
        let text = "nat64: { name: n, pool4: [ { prefix: 192.0.2.1 } ] }";
        let i: Instance = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!((i.kind(), i.name()), ("nat64", "n"));
        let back = serde_yaml_ng::to_string(&i).unwrap();
        assert!(back.starts_with("nat64:\n"), "{back}");
        assert_eq!(serde_yaml_ng::from_str::<Instance>(&back).unwrap(), i);
    }
}
