//! Semantic validation: runs over a parsed [`Config`] and reports every
//! problem found (never stops at the first), each with its document path so
//! that the caller can turn it into a file position.

use super::error::Rule;
use super::host::parse_cpu_list;
use super::host::Host;
use super::locate::{path, DocPath};
use super::schema::{
    AllocationMode, Config, Instance, Interface, Nat64, Protocol, Siit, Steering, WELL_KNOWN_PREFIX,
};
use super::special::non_global_overlap;
use super::types::{PortRange, Prefix4, Prefix6};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// One problem, before it is given a file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) rule: Rule,
    pub(crate) path: DocPath,
    pub(crate) message: String,
    /// Warnings do not make the configuration invalid.
    pub(crate) warning: bool,
}

/// DPDK virtual device drivers (and their legacy `eth_` aliases) that the
/// appliance may use. DPDK matches a vdev name against driver names by
/// prefix, so `net_af_packet0` selects `net_af_packet`.
pub const KNOWN_VDEV_DRIVERS: &[&str] = &[
    "net_af_packet",
    "net_af_xdp",
    "net_pcap",
    "net_tap",
    "net_tun",
    "net_memif",
    "net_ring",
    "net_null",
    "net_vhost",
    "net_virtio_user",
    "net_bonding",
    "net_failsafe",
    "eth_af_packet",
    "eth_pcap",
    "eth_ring",
    "eth_null",
];

/// Largest MTU accepted (common jumbo frame limit of switches and NICs).
pub const MAX_MTU: u32 = 9216;
/// RFC 8200 §5: every IPv6 link has an MTU of at least 1280 bytes.
pub const IPV6_MIN_MTU: u32 = 1280;
/// RFC 791: every IPv4 module must handle 68-byte datagrams unfragmented.
pub const IPV4_MIN_MTU: u32 = 68;

struct Checker<'a> {
    cfg: &'a Config,
    host: &'a Host,
    out: Vec<Finding>,
}

impl Checker<'_> {
    fn error(&mut self, rule: Rule, path: DocPath, message: impl Into<String>) {
        self.out.push(Finding { rule, path, message: message.into(), warning: false });
    }

    fn warning(&mut self, rule: Rule, path: DocPath, message: impl Into<String>) {
        self.out.push(Finding { rule, path, message: message.into(), warning: true });
    }
}

/// Every finding for `cfg` on `host`, errors and warnings, in document order
/// of the checks.
pub(crate) fn validate(cfg: &Config, host: &Host) -> Vec<Finding> {
    let mut c = Checker { cfg, host, out: Vec::new() };
    c.dpdk();
    c.interfaces();
    c.instances();
    c.cross_instance();
    c.global();
    c.sync();
    c.out
}

fn name_ok(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `0000:03:00.0` or `03:00.0` (DPDK's short form), normalised to lower
/// case with a domain.
pub fn normalize_pci(s: &str) -> Option<String> {
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    let (rest, func) = s.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, dev) = match parts.as_slice() {
        [d, b, v] => (*d, *b, *v),
        [b, v] => ("0000", *b, *v),
        _ => return None,
    };
    let func_ok = func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7');
    let dev_ok = hex(dev, 2) && u8::from_str_radix(dev, 16).is_ok_and(|d| d < 32);
    if hex(domain, 4) && hex(bus, 2) && dev_ok && func_ok {
        Some(format!("{domain}:{bus}:{dev}.{func}").to_ascii_lowercase())
    } else {
        None
    }
}

/// The lcores EAL will use and its main lcore, from `-l LIST`, `-c MASK`
/// and `--main-lcore N`; `None` when the arguments do not say (EAL then
/// takes every core) or use `--lcores`, whose mapping syntax is not
/// modelled here.
pub fn eal_lcores(args: &[String]) -> Option<(BTreeSet<u32>, u32)> {
    let mut set = None;
    let mut main = None;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            a.strip_prefix(flag)
                .filter(|v| !v.is_empty())
                .map(|v| v.trim_start_matches('=').to_string())
                .or_else(|| (a == flag).then(|| it.next().unwrap_or("").to_string()))
        };
        if a == "--lcores" || a.starts_with("--lcores=") {
            return None;
        } else if let Some(v) = value("--main-lcore").or_else(|| value("--master-lcore")) {
            main = Some(v.parse().ok()?);
        } else if a.starts_with("--") {
            continue;
        } else if let Some(v) = value("-l") {
            set = Some(parse_cpu_list(&v)?);
        } else if let Some(v) = value("-c") {
            let mask = u128::from_str_radix(v.trim_start_matches("0x"), 16).ok()?;
            set = Some((0..128).filter(|b| mask >> b & 1 == 1).collect());
        }
    }
    let set: BTreeSet<u32> = set?;
    let main = main.or_else(|| set.first().copied())?;
    Some((set, main))
}

impl Checker<'_> {
    fn dpdk(&mut self) {
        if let Some((eal, main)) = eal_lcores(&self.cfg.dpdk.eal_args) {
            for (i, &w) in self.cfg.dpdk.workers.iter().enumerate() {
                let p = path!["dpdk", "workers", i];
                if w == main {
                    self.error(
                        Rule::LcoreNotInEal,
                        p,
                        format!("lcore {w} is EAL's main lcore, which runs the control thread"),
                    );
                } else if !eal.contains(&w) {
                    self.error(
                        Rule::LcoreNotInEal,
                        p,
                        format!("lcore {w} is not among the lcores given to EAL in eal_args"),
                    );
                }
            }
            if self.cfg.dpdk.workers.is_empty() && eal.iter().all(|&l| l == main) {
                // nat64d then polls on the main lcore and serves control
                // from a plain thread: fine for labs, slow for production.
                self.warning(
                    Rule::LcoreNotInEal,
                    path!["dpdk", "eal_args"],
                    "EAL gets only its main lcore: the main thread polls (give EAL more lcores for speed)",
                );
            }
        }
        if self.cfg.dpdk.steering == Steering::Flow {
            // The steering pattern matches untagged frames (ETH / IPV4).
            for ifc in self.cfg.interfaces.iter().filter(|i| i.role.carries_v4() && i.vlan.is_some()) {
                self.error(
                    Rule::SteeringFlow,
                    path!["dpdk", "steering"],
                    format!("interface {} carries IPv4 on a VLAN: flow steering matches untagged frames only (use auto or software)", ifc.name),
                );
            }
        }
        let workers = &self.cfg.dpdk.workers;
        let mut seen = BTreeMap::new();
        for (i, &w) in workers.iter().enumerate() {
            let p = path!["dpdk", "workers", i];
            if let Some(first) = seen.insert(w, i) {
                self.error(
                    Rule::LcoreDuplicate,
                    p,
                    format!("lcore {w} is already a worker (dpdk.workers[{first}])"),
                );
                continue;
            }
            match &self.host.online_lcores {
                Some(online) if !online.contains(&w) => {
                    let list: Vec<String> = online.iter().map(u32::to_string).collect();
                    self.error(
                        Rule::LcoreMissing,
                        p,
                        format!("lcore {w} is not online on this machine (online: {})", list.join(",")),
                    );
                }
                Some(_) => {}
                None if i == 0 => self.warning(
                    Rule::HostProbe,
                    p,
                    "cannot read /sys/devices/system/cpu/online: worker lcores not checked",
                ),
                None => {}
            }
        }
    }

    fn interfaces(&mut self) {
        let ifs = &self.cfg.interfaces;
        if ifs.is_empty() {
            self.error(Rule::NoInterfaces, path!["interfaces"], "at least one interface is needed");
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut devices: HashMap<(String, Option<u16>), usize> = HashMap::new();
        let mut warned_pci = false;
        for (i, ifc) in ifs.iter().enumerate() {
            let base = path!["interfaces", i];
            if !name_ok(&ifc.name) {
                self.error(
                    Rule::NameSyntax,
                    base.at("name"),
                    format!("interface name {:?} must be 1-32 characters of [A-Za-z0-9_.-]", ifc.name),
                );
            }
            if let Some(first) = names.get(ifc.name.as_str()) {
                self.error(
                    Rule::DuplicateInterface,
                    base.at("name"),
                    format!("interface {:?} is already defined (interfaces[{first}])", ifc.name),
                );
            } else {
                names.insert(&ifc.name, i);
            }
            let dev_name = ifc.device_name();
            let key = (normalize_pci(dev_name).unwrap_or_else(|| dev_name.to_string()), ifc.vlan);
            if let Some(first) = devices.get(&key) {
                self.error(
                    Rule::DuplicateDevice,
                    base.at("device"),
                    format!(
                        "device {dev_name:?}{} is already used by interfaces[{first}]",
                        ifc.vlan.map(|v| format!(" VLAN {v}")).unwrap_or_default()
                    ),
                );
            } else {
                devices.insert(key, i);
            }
            self.device(&base, ifc, &mut warned_pci);
            self.interface_body(&base, ifc);
        }
    }

    fn device(&mut self, base: &DocPath, ifc: &Interface, warned_pci: &mut bool) {
        let p = base.at("device");
        let name = ifc.device_name();
        if let Some(pci) = normalize_pci(name) {
            match &self.host.pci_devices {
                Some(set) if !set.contains(&pci) => self.error(
                    Rule::PciDeviceMissing,
                    p,
                    format!("PCI device {pci} does not exist (not in /sys/bus/pci/devices)"),
                ),
                Some(_) => {}
                None if !*warned_pci => {
                    *warned_pci = true;
                    self.warning(
                        Rule::HostProbe,
                        p,
                        "cannot read /sys/bus/pci/devices: PCI devices not checked",
                    );
                }
                None => {}
            }
        } else if name.starts_with("net_") || name.starts_with("eth_") {
            if !KNOWN_VDEV_DRIVERS.iter().any(|d| name.starts_with(d)) {
                self.error(
                    Rule::VdevUnknownDriver,
                    p,
                    format!(
                        "{name:?} names no known DPDK virtual device driver (known: {})",
                        KNOWN_VDEV_DRIVERS.join(", ")
                    ),
                );
            }
        } else {
            self.error(
                Rule::DeviceSyntax,
                p,
                format!(
                    "{name:?} is neither a PCI address (0000:03:00.0) nor a vdev \
                     (net_af_packet0,iface=eth0)"
                ),
            );
        }
    }

    fn interface_body(&mut self, base: &DocPath, ifc: &Interface) {
        let role = ifc.role;
        if let Some(mac) = ifc.mac {
            if !mac.is_unicast() {
                self.error(
                    Rule::MacInvalid,
                    base.at("mac"),
                    format!("{mac} is not a unicast station address"),
                );
            }
        }
        if let Some(v) = ifc.vlan {
            // IEEE 802.1Q: 0 means priority-tagged only, 4095 is reserved.
            if !(1..=4094).contains(&v) {
                self.error(Rule::VlanRange, base.at("vlan"), format!("VLAN id {v} is outside 1-4094"));
            }
        }
        let min_mtu = if role.carries_v6() { IPV6_MIN_MTU } else { IPV4_MIN_MTU };
        if !(min_mtu..=MAX_MTU).contains(&ifc.mtu) {
            self.error(
                Rule::MtuRange,
                base.at("mtu"),
                format!(
                    "MTU {} is outside {min_mtu}-{MAX_MTU}{}",
                    ifc.mtu,
                    if role.carries_v6() {
                        " (RFC 8200 §5: IPv6 links have an MTU of at least 1280)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if !role.carries_v4() && !ifc.ipv4.is_empty() {
            self.error(
                Rule::AddressFamily,
                base.at("ipv4"),
                "the interface does not carry IPv4 (role: ipv6) but has IPv4 addresses",
            );
        }
        if !role.carries_v6() && !ifc.ipv6.is_empty() {
            self.error(
                Rule::AddressFamily,
                base.at("ipv6"),
                "the interface does not carry IPv6 (role: ipv4) but has IPv6 addresses",
            );
        }
        for (j, n) in ifc.neighbours.iter().enumerate() {
            let p = base.at("neighbours").at(j);
            if !carries(role, n.ip) {
                self.error(
                    Rule::AddressFamily,
                    p.at("ip"),
                    format!("neighbour {} is of a family this interface does not carry", n.ip),
                );
            }
            if !n.mac.is_unicast() {
                self.error(
                    Rule::MacInvalid,
                    p.at("mac"),
                    format!("{} is not a unicast station address", n.mac),
                );
            }
        }
        for (j, r) in ifc.routes.iter().enumerate() {
            let p = base.at("routes").at(j);
            if r.prefix.addr() != r.prefix.network() {
                self.error(
                    Rule::PrefixHostBits,
                    p.at("prefix"),
                    format!(
                        "{} has bits set after /{} (did you mean {}?)",
                        r.prefix,
                        r.prefix.prefix_len(),
                        r.prefix.trunc()
                    ),
                );
            }
            if r.prefix.addr().is_ipv4() != r.via.is_ipv4() {
                self.error(
                    Rule::AddressFamily,
                    p.at("via"),
                    format!("next hop {} is not of the family of {}", r.via, r.prefix),
                );
            } else if !carries(role, r.via) {
                self.error(
                    Rule::AddressFamily,
                    p.at("prefix"),
                    format!("route {} is of a family this interface does not carry", r.prefix),
                );
            }
        }
    }

    fn instances(&mut self) {
        let cfg = self.cfg;
        if cfg.instances.is_empty() {
            self.error(
                Rule::NoInstances,
                path!["instances"],
                "at least one nat64 or siit instance is needed",
            );
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (k, inst) in cfg.instances.iter().enumerate() {
            let base = path!["instances", k, inst.kind()];
            let name = inst.name();
            if !name_ok(name) {
                self.error(
                    Rule::NameSyntax,
                    base.at("name"),
                    format!("instance name {name:?} must be 1-32 characters of [A-Za-z0-9_.-]"),
                );
            }
            if let Some(first) = names.get(name) {
                self.error(
                    Rule::DuplicateInstance,
                    base.at("name"),
                    format!("instance {name:?} is already defined (instances[{first}])"),
                );
            } else {
                names.insert(name, k);
            }
            let (v6, v4) = inst.interfaces();
            self.side(&base, "ipv6_interface", v6, true);
            self.side(&base, "ipv4_interface", v4, false);
            match inst {
                Instance::Nat64(n) => self.nat64(&base, n),
                Instance::Siit(s) => self.siit(&base, s),
            }
        }
    }

    /// Checks the interface an instance uses for one family.
    fn side(&mut self, base: &DocPath, key: &str, named: Option<&str>, v6: bool) {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        let carrying = |i: &&Interface| {
            if v6 {
                i.role.carries_v6()
            } else {
                i.role.carries_v4()
            }
        };
        match named {
            Some(name) => match self.cfg.interfaces.iter().find(|i| i.name == name) {
                None => self.error(
                    Rule::InterfaceUndefined,
                    base.at(key),
                    format!("interface {name:?} is not defined under interfaces"),
                ),
                Some(i) if !carrying(&i) => self.error(
                    Rule::InterfaceRole,
                    base.at(key),
                    format!(
                        "interface {name:?} does not carry {fam} (its role is not {} or both)",
                        fam.to_ascii_lowercase()
                    ),
                ),
                Some(_) => {}
            },
            None => {
                let all: Vec<&str> =
                    self.cfg.interfaces.iter().filter(carrying).map(|i| i.name.as_str()).collect();
                if all.is_empty() && !self.cfg.interfaces.is_empty() {
                    self.error(Rule::InterfaceRole, base.clone(), format!("no interface carries {fam}"));
                } else if all.len() > 1 {
                    self.error(
                        Rule::InterfaceRole,
                        base.clone(),
                        format!("several interfaces carry {fam} ({}): choose one with {key}", all.join(", ")),
                    );
                }
            }
        }
    }

    fn rfc6052(&mut self, p: DocPath, pool6: &Prefix6) {
        let len = pool6.0.prefix_len();
        // RFC 6052 §2.2: only these prefix lengths are defined.
        if ![32, 40, 48, 56, 64, 96].contains(&len) {
            self.error(
                Rule::Rfc6052PrefixLength,
                p.clone(),
                format!("{pool6}: RFC 6052 §2.2 allows only /32, /40, /48, /56, /64 and /96"),
            );
        } else if len == 96 && pool6.0.addr().octets()[8] != 0 {
            // RFC 6052 §2.2: bits 64-71 (the u octet) must be zero.
            self.error(
                Rule::Rfc6052UOctet,
                p.clone(),
                format!("{pool6}: bits 64-71 must be zero (RFC 6052 §2.2)"),
            );
        }
        self.host_bits6(p, pool6);
    }

    fn host_bits4(&mut self, p: DocPath, x: &Prefix4) {
        if x.has_host_bits() {
            self.error(
                Rule::PrefixHostBits,
                p,
                format!("{x} has bits set after /{} (did you mean {}?)", x.0.prefix_len(), x.0.trunc()),
            );
        }
    }

    fn host_bits6(&mut self, p: DocPath, x: &Prefix6) {
        if x.has_host_bits() {
            self.error(
                Rule::PrefixHostBits,
                p,
                format!("{x} has bits set after /{} (did you mean {}?)", x.0.prefix_len(), x.0.trunc()),
            );
        }
    }

    fn port_range(&mut self, p: DocPath, proto: Protocol, r: PortRange) {
        let min = proto.min_port();
        let what = match proto {
            Protocol::Tcp => "TCP port",
            Protocol::Udp => "UDP port",
            Protocol::Icmp => "ICMP identifier",
        };
        if r.first < min || r.last > 65535 || r.first > r.last {
            self.error(
                Rule::PortRange,
                p,
                format!("{what} range {r} is not within {min}-65535 or starts after its end"),
            );
        }
    }

    fn nat64(&mut self, base: &DocPath, n: &Nat64) {
        self.rfc6052(base.at("pool6"), &n.pool6);
        let wkp_strict = n.pool6 == WELL_KNOWN_PREFIX && !n.allow_non_global_wkp;
        if n.pool4.is_empty() {
            self.error(Rule::Pool4Empty, base.at("pool4"), "a nat64 instance needs at least one pool4 entry");
        }
        for (j, e) in n.pool4.iter().enumerate() {
            let p = base.at("pool4").at(j);
            self.host_bits4(p.at("prefix"), &e.prefix);
            for proto in Protocol::ALL {
                self.port_range(p.at(proto.name()), proto, e.ports(proto));
            }
            if wkp_strict {
                // RFC 6052 §3.1: the WKP must not represent non-global IPv4
                // addresses; a non-global pool4 means the IPv4 side is such
                // a network.
                if let Some(b) = non_global_overlap(&e.prefix) {
                    self.error(
                        Rule::WkpNonGlobal,
                        p.at("prefix"),
                        format!(
                            "{} overlaps {} ({}), which the well-known prefix 64:ff9b::/96 \
                             must not be used with (RFC 6052 §3.1); use a network-specific \
                             pool6 or set allow_non_global_wkp",
                            e.prefix, b.net, b.what
                        ),
                    );
                }
            }
        }
        let mut v4_seen: HashMap<(Protocol, std::net::Ipv4Addr, u32), usize> = HashMap::new();
        let mut v6_seen: HashMap<(Protocol, std::net::Ipv6Addr, u32), usize> = HashMap::new();
        for (j, b) in n.static_bib.iter().enumerate() {
            let p = base.at("static_bib").at(j);
            let min = b.protocol.min_port();
            for (key, port) in [("ipv6", b.ipv6.port), ("ipv4", b.ipv4.port)] {
                if port < min || port > 65535 {
                    self.error(
                        Rule::PortRange,
                        p.at(key),
                        format!("{} port {port} is outside {min}-65535", b.protocol.name().to_uppercase()),
                    );
                }
            }
            let inside = n
                .pool4
                .iter()
                .any(|e| e.prefix.contains(b.ipv4.addr) && e.ports(b.protocol).contains(b.ipv4.port));
            if !inside {
                self.error(
                    Rule::BibOutsidePool4,
                    p.at("ipv4"),
                    format!(
                        "{} {} is not inside any pool4 entry of this instance \
                         (address and {} range)",
                        b.protocol.name(),
                        b.ipv4,
                        b.protocol.name()
                    ),
                );
            }
            if let Some(first) = v4_seen.insert((b.protocol, b.ipv4.addr, b.ipv4.port), j) {
                self.error(
                    Rule::BibDuplicate,
                    p.at("ipv4"),
                    format!("{} {} is already bound by static_bib[{first}]", b.protocol.name(), b.ipv4),
                );
            }
            if let Some(first) = v6_seen.insert((b.protocol, b.ipv6.addr, b.ipv6.port), j) {
                self.error(
                    Rule::BibDuplicate,
                    p.at("ipv6"),
                    format!("{} {} is already bound by static_bib[{first}]", b.protocol.name(), b.ipv6),
                );
            }
        }
        self.timeouts(base, n);
        let l = n.limits;
        let lp = base.at("limits");
        if l.max_sessions == 0 {
            self.error(Rule::LimitRange, lp.at("max_sessions"), "max_sessions must be at least 1");
        }
        if l.max_sessions_per_client == Some(0) {
            self.error(
                Rule::LimitRange,
                lp.at("max_sessions_per_client"),
                "max_sessions_per_client must be at least 1 (omit it for no limit)",
            );
        }
        // One worker may own every static binding (its pool4 slice holds
        // them all), so each table must have room for the whole list.
        if n.static_bib.len() > l.max_static_bib as usize {
            self.error(
                Rule::LimitRange,
                lp.at("max_static_bib"),
                format!(
                    "{} static_bib entries do not fit max_static_bib {}",
                    n.static_bib.len(),
                    l.max_static_bib
                ),
            );
        }
        if l.client_prefix_len > 128 {
            self.error(
                Rule::LimitRange,
                lp.at("client_prefix_len"),
                format!("client_prefix_len {} is over 128", l.client_prefix_len),
            );
        }
        if let Some(d) = &n.destinations {
            self.host_bits4(base.at("destinations"), d);
        }
        self.allocation(base, n);
    }

    /// Workers nat64d will run: `dpdk.workers`, else EAL's lcores but the
    /// main one (at least one: the main thread polls).
    fn workers(&self) -> u16 {
        let n = match (&self.cfg.dpdk.workers[..], eal_lcores(&self.cfg.dpdk.eal_args)) {
            ([], Some((set, _))) => set.len().saturating_sub(1),
            (w, _) => w.len(),
        };
        n.clamp(1, u16::MAX as usize) as u16
    }

    fn allocation(&mut self, base: &DocPath, n: &Nat64) {
        let a = &n.allocation;
        let ap = base.at("allocation");
        let mode = match a.mode {
            AllocationMode::Dynamic => "dynamic",
            AllocationMode::Blocks => "blocks",
            AllocationMode::Deterministic => "deterministic",
        };
        let keys = [
            ("block_size", a.block_size.is_some(), AllocationMode::Blocks),
            ("max_blocks_per_client", a.max_blocks_per_client.is_some(), AllocationMode::Blocks),
            ("clients", a.clients.is_some(), AllocationMode::Deterministic),
            ("ports_per_client", a.ports_per_client.is_some(), AllocationMode::Deterministic),
        ];
        for (key, set, wants) in keys {
            if set && a.mode != wants {
                let m = if wants == AllocationMode::Blocks { "blocks" } else { "deterministic" };
                self.error(
                    Rule::AllocationKey,
                    ap.at(key),
                    format!("{key} applies to mode {m} only, this instance's mode is {mode}"),
                );
            }
        }
        let workers = self.workers();
        match a.mode {
            AllocationMode::Dynamic => {}
            AllocationMode::Blocks => self.blocks(&ap, n, workers),
            AllocationMode::Deterministic => self.deterministic(&ap, n, workers),
        }
    }

    fn blocks(&mut self, ap: &DocPath, n: &Nat64, workers: u16) {
        let a = &n.allocation;
        if a.max_blocks_per_client == Some(0) || a.max_blocks_per_client.is_some_and(|m| m > 65535) {
            self.error(
                Rule::BlockSize,
                ap.at("max_blocks_per_client"),
                "max_blocks_per_client must be 1-65535".to_string(),
            );
        }
        let size = a.block_size.unwrap_or(super::schema::Allocation::BLOCK_SIZE);
        if size == 0 || size > 65535 {
            self.error(Rule::BlockSize, ap.at("block_size"), format!("block_size {size} is outside 1-65535"));
            return;
        }
        // A block lies on one address inside one worker's share of it.
        for (j, e) in n.pool4.iter().enumerate() {
            let n_addr = 1u64 << (32 - e.prefix.0.prefix_len());
            for proto in Protocol::ALL {
                let r = e.ports(proto);
                let ports = (r.last + 1).saturating_sub(r.first);
                let share = if n_addr >= u64::from(workers) { ports } else { ports / u32::from(workers) };
                if size > share {
                    self.error(
                        Rule::BlockSize,
                        ap.at("block_size"),
                        format!(
                            "block_size {size} is larger than the {share} {} ports each of the {workers} \
                             worker(s) owns per address of pool4[{j}]",
                            proto.name()
                        ),
                    );
                    return;
                }
            }
        }
    }

    fn deterministic(&mut self, ap: &DocPath, n: &Nat64, workers: u16) {
        let a = &n.allocation;
        let Some(c) = &a.clients else {
            self.error(
                Rule::AllocationKey,
                ap.at("mode"),
                "mode deterministic needs clients: the IPv6 range whose prefixes are mapped",
            );
            return;
        };
        self.host_bits6(ap.at("clients"), c);
        if a.ports_per_client.is_some_and(|p| p == 0 || p > 65535) {
            self.error(Rule::DeterministicFit, ap.at("ports_per_client"), "ports_per_client must be 1-65535");
            return;
        }
        let len = n.limits.client_prefix_len;
        let plen = c.0.prefix_len();
        if len < plen || len - plen > 32 || len > 128 {
            self.error(
                Rule::DeterministicFit,
                ap.at("clients"),
                format!(
                    "clients {c} with limits.client_prefix_len {len}: a client prefix must be 0-32 bits \
                     longer than the range (2^32 clients at most)"
                ),
            );
            return;
        }
        let ports = a.ports_per_client.map(|p| p as u16);
        let entries = crate::runtime::pool4_entries(n);
        let map = dataplane::nat64::DetMap::new(c.0.network(), plen, len, ports, &entries, workers);
        if let Err(dataplane::nat64::DetError::TooManyClients { proto, fits }) = map {
            let clients = 1u64 << (len - plen);
            let want = match a.ports_per_client {
                Some(p) => format!("ports_per_client {p}"),
                None => format!("one per worker ({workers})"),
            };
            let (key, msg) = (
                if a.ports_per_client.is_some() { "ports_per_client" } else { "clients" },
                format!(
                    "{clients} clients (/{len} in {c}) get at most {fits} {} ports each from pool4, \
                     fewer than {want}",
                    proto.name()
                ),
            );
            self.error(Rule::DeterministicFit, ap.at(key), msg);
        }
    }

    fn timeouts(&mut self, base: &DocPath, n: &Nat64) {
        let t = n.timeouts;
        let tp = base.at("timeouts");
        // RFC 6146 §4: lower bounds of UDP_MIN, TCP_EST, TCP_TRANS and
        // TCP_INCOMING_SYN; below them a warning (labs shorten timers).
        let table = [
            ("udp", t.udp, 120, "UDP_MIN"),
            ("tcp_est", t.tcp_est, 7440, "TCP_EST"),
            ("tcp_trans", t.tcp_trans, 240, "TCP_TRANS"),
            ("icmp", t.icmp, 1, "ICMP"),
            ("syn_hold", t.syn_hold, 6, "TCP_INCOMING_SYN"),
        ];
        for (key, value, rfc_min, why) in table {
            if value == 0 {
                self.error(
                    Rule::TimeoutRange,
                    tp.at(key),
                    format!("timeouts.{key} must be at least 1 second"),
                );
            } else if value < rfc_min {
                self.warning(
                    Rule::TimeoutBelowRfc6146,
                    tp.at(key),
                    format!(
                        "timeouts.{key} = {value} s is below the RFC 6146 minimum of \
                         {rfc_min} s ({why}, §4)"
                    ),
                );
            }
        }
    }

    fn siit(&mut self, base: &DocPath, s: &Siit) {
        if let Some(p6) = &s.pool6 {
            self.rfc6052(base.at("pool6"), p6);
        }
        if s.pool6.is_none() && s.eamt.is_empty() {
            self.error(Rule::SiitEmpty, base.clone(), "a siit instance needs a pool6, EAMT entries, or both");
        }
        let wkp_strict = s.pool6 == Some(WELL_KNOWN_PREFIX) && !s.allow_non_global_wkp;
        for (j, e) in s.eamt.iter().enumerate() {
            let p = base.at("eamt").at(j);
            self.host_bits6(p.at("ipv6"), &e.ipv6);
            self.host_bits4(p.at("ipv4"), &e.ipv4);
            let s6 = 128 - u32::from(e.ipv6.0.prefix_len());
            let s4 = 32 - u32::from(e.ipv4.0.prefix_len());
            // RFC 7757 §3.2: the IPv4 suffix is copied right behind the
            // IPv6 prefix (remaining bits zero), so the IPv6 suffix must
            // have room for it; a longer one is allowed.
            if s6 < s4 {
                self.error(
                    Rule::EamSuffixLength,
                    p.clone(),
                    format!(
                        "{} <-> {}: the IPv6 suffix ({s6} bits) is shorter than the IPv4 suffix ({s4} bits)",
                        e.ipv6, e.ipv4
                    ),
                );
            }
            if wkp_strict {
                if let Some(b) = non_global_overlap(&e.ipv4) {
                    self.error(
                        Rule::WkpNonGlobal,
                        p.at("ipv4"),
                        format!(
                            "{} overlaps {} ({}), which the well-known prefix 64:ff9b::/96 \
                             must not be used with (RFC 6052 §3.1); use a network-specific \
                             pool6 or set allow_non_global_wkp",
                            e.ipv4, b.net, b.what
                        ),
                    );
                }
            }
        }
        if let Some(p) = &s.pool6791_v4 {
            self.host_bits4(base.at("pool6791_v4"), p);
        }
        if let Some(p) = &s.pool6791_v6 {
            self.host_bits6(base.at("pool6791_v6"), p);
        }
    }

    fn cross_instance(&mut self) {
        let cfg = self.cfg;
        // pool4: an address:port may belong to one instance entry only.
        let mut seen: Vec<(DocPath, &super::schema::Pool4Entry)> = Vec::new();
        for (k, inst) in cfg.instances.iter().enumerate() {
            let Instance::Nat64(n) = inst else { continue };
            for (j, e) in n.pool4.iter().enumerate() {
                let p = path!["instances", k, "nat64", "pool4", j];
                let clash = seen.iter().find_map(|(q, f)| {
                    if !e.prefix.overlaps(&f.prefix) {
                        return None;
                    }
                    Protocol::ALL
                        .into_iter()
                        .find(|&pr| e.ports(pr).overlaps(&f.ports(pr)))
                        .map(|pr| (q.clone(), f.prefix, pr, f.ports(pr)))
                });
                if let Some((q, fp, pr, fr)) = clash {
                    self.error(
                        Rule::Pool4Overlap,
                        p.at("prefix"),
                        format!(
                            "{} {} {} overlaps {q} ({fp} {} {fr})",
                            e.prefix,
                            pr.name(),
                            e.ports(pr),
                            pr.name()
                        ),
                    );
                }
                seen.push((p, e));
            }
        }
        // EAMT: each side must map one way only. Tables can be large, so
        // overlaps are found with a sort and sweep rather than all pairs.
        let mut eams: Vec<(DocPath, super::schema::Eam)> = Vec::new();
        for (k, inst) in cfg.instances.iter().enumerate() {
            let Instance::Siit(s) = inst else { continue };
            for (j, e) in s.eamt.iter().enumerate() {
                eams.push((path!["instances", k, "siit", "eamt", j], *e));
            }
        }
        let v6: Vec<(u128, u128)> = eams.iter().map(|(_, e)| (e.ipv6.first(), e.ipv6.last())).collect();
        let v4: Vec<(u128, u128)> =
            eams.iter().map(|(_, e)| (u128::from(e.ipv4.first()), u128::from(e.ipv4.last()))).collect();
        let mut found: Vec<(usize, usize, bool)> = Vec::new();
        found.extend(overlaps(&v6).into_iter().map(|(a, b)| (a, b, true)));
        found.extend(overlaps(&v4).into_iter().map(|(a, b)| (a, b, false)));
        found.sort_unstable_by_key(|&(a, _, is_v6)| (a, !is_v6));
        for (a, b, is_v6) in found {
            let ((pa, ea), (pb, eb)) = (&eams[a], &eams[b]);
            if is_v6 {
                self.error(
                    Rule::EamtOverlap,
                    pa.at("ipv6"),
                    format!("{} overlaps {pb} ({})", ea.ipv6, eb.ipv6),
                );
            } else {
                self.error(
                    Rule::EamtOverlap,
                    pa.at("ipv4"),
                    format!("{} overlaps {pb} ({})", ea.ipv4, eb.ipv4),
                );
            }
        }
        // An IPv4 address is either shared (pool4) or mapped (EAMT), never
        // both: the return path could not tell which instance owns it.
        for (pe, e) in &eams {
            if let Some((q, f)) = seen.iter().find(|(_, f)| f.prefix.overlaps(&e.ipv4)) {
                self.error(
                    Rule::Pool4Overlap,
                    pe.at("ipv4"),
                    format!("EAMT {} overlaps {q} ({})", e.ipv4, f.prefix),
                );
            }
        }
        // pool6: two instances must not claim the same IPv6 destinations,
        // except nat64 instances splitting IPv4 destinations between them.
        let pool6s: Vec<(usize, Prefix6, Option<Option<Prefix4>>)> = cfg
            .instances
            .iter()
            .enumerate()
            .filter_map(|(k, i)| match i {
                Instance::Nat64(n) => Some((k, n.pool6, Some(n.destinations))),
                Instance::Siit(s) => s.pool6.map(|p| (k, p, None)),
            })
            .collect();
        for (a, &(k, p6, dst)) in pool6s.iter().enumerate() {
            let clash = pool6s[..a].iter().find(|(_, q6, qdst)| {
                if !q6.overlaps(&p6) {
                    return false;
                }
                match (dst, qdst) {
                    (Some(Some(d1)), Some(Some(d2))) => d1.overlaps(d2),
                    _ => true,
                }
            });
            if let Some(&(q, q6, _)) = clash {
                let inst = &cfg.instances[k];
                let key = if matches!(dst, Some(Some(_))) { "destinations" } else { "pool6" };
                self.error(
                    Rule::InstanceOverlap,
                    path!["instances", k, inst.kind(), key],
                    format!(
                        "pool6 {p6} overlaps pool6 {q6} of instance {:?}; nat64 instances \
                         may share a pool6 only with disjoint destinations",
                        cfg.instances[q].name()
                    ),
                );
            }
        }
    }

    fn global(&mut self) {
        let mtu = self.cfg.rfc7915.lowest_ipv6_mtu;
        if mtu < IPV6_MIN_MTU {
            self.error(
                Rule::LowestIpv6Mtu,
                path!["rfc7915", "lowest_ipv6_mtu"],
                format!("{mtu} is below the IPv6 minimum link MTU of 1280 (RFC 8200 §5)"),
            );
        }
        let sock = &self.cfg.management.control_socket;
        if !sock.is_absolute() {
            self.error(
                Rule::PathAbsolute,
                path!["management", "control_socket"],
                format!("{} must be an absolute path", sock.display()),
            );
        }
    }
}

impl Checker<'_> {
    fn sync(&mut self) {
        let Some(sy) = &self.cfg.sync else { return };
        let base = path!["sync"];
        let groups = sy.peers.iter().filter(|p| p.ip().is_multicast()).count();
        if sy.peers.is_empty() {
            self.error(
                Rule::SyncPeers,
                base.at("peers"),
                "sync needs at least one peer or a multicast group",
            );
        } else if groups > 0 && sy.peers.len() > 1 {
            self.error(Rule::SyncPeers, base.at("peers"), "a multicast group must be the only peer");
        }
        for (i, p) in sy.peers.iter().enumerate() {
            if p.is_ipv4() != sy.listen.is_ipv4() {
                self.error(
                    Rule::SyncPeers,
                    base.at("peers").at(i),
                    format!("{p} is not of the family of listen"),
                );
            } else if *p == sy.listen {
                self.error(
                    Rule::SyncPeers,
                    base.at("peers").at(i),
                    format!("{p} is this appliance's listen"),
                );
            }
        }
        match (&sy.multicast_interface, groups) {
            (None, 1) => self.error(
                Rule::SyncPeers,
                base.at("peers"),
                "a multicast group needs multicast_interface (the kernel interface that joins it)",
            ),
            (Some(_), 0) => self.error(
                Rule::SyncPeers,
                base.at("multicast_interface"),
                "multicast_interface is only for a multicast group peer",
            ),
            _ => {}
        }
        if let Some(g) = sy.peers.iter().find(|p| p.ip().is_multicast()) {
            if sy.listen.ip().is_unspecified() && sy.listen.port() == g.port() {
                // The group's socket binds the group address on its port: a
                // wildcard listen on that port already holds it (EADDRINUSE).
                self.error(
                    Rule::SyncPeers,
                    base.at("listen"),
                    format!("an unspecified listen cannot use the group's port {}", g.port()),
                );
            }
        }
        if sy.listen.ip().is_unspecified() && groups == 0 {
            // The sender id and the peers' replay windows key on it.
            self.error(
                Rule::SyncPeers,
                base.at("listen"),
                "listen must be a specific address with unicast peers",
            );
        }
        if !sy.key_file.is_absolute() {
            self.error(
                Rule::PathAbsolute,
                base.at("key_file"),
                format!("{} must be an absolute path", sy.key_file.display()),
            );
        } else if let Err(e) = crate::sync::read_key(&sy.key_file) {
            self.error(Rule::SyncKey, base.at("key_file"), e);
        }
        if !(1..=1000).contains(&sy.flush_ms) {
            self.error(Rule::SyncRange, base.at("flush_ms"), "flush_ms must be 1-1000");
        }
        if !(64..=1 << 24).contains(&sy.queue) {
            self.error(Rule::SyncRange, base.at("queue"), "queue must be 64-16777216");
        }
        // A peer's copy lives at least the protocol lifetime from the last
        // refresh: the refresh must come before the shortest one ends.
        let shortest = self
            .cfg
            .instances
            .iter()
            .filter_map(|i| match i {
                Instance::Nat64(n) => Some(n.timeouts.udp.min(n.timeouts.icmp).min(n.timeouts.tcp_trans)),
                _ => None,
            })
            .min()
            .unwrap_or(u32::MAX);
        if sy.refresh_s == 0 || sy.refresh_s >= shortest {
            self.error(
                Rule::SyncRange,
                base.at("refresh_s"),
                format!(
                    "refresh_s must be at least 1 and below the shortest udp, icmp or tcp_trans timeout ({shortest} s)"
                ),
            );
        }
    }
}

/// For every range that overlaps an earlier one (in slice order), the pair
/// (it, the first earlier one it overlaps). The ranges are prefixes, so two
/// either nest or are disjoint: sorted by start (outer first), the ranges
/// still open on a stack are exactly the ones containing the next range.
/// O(n log n + n * nesting depth), where all-pairs would be O(n^2).
fn overlaps(ranges: &[(u128, u128)]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_unstable_by_key(|&i| (ranges[i].0, std::cmp::Reverse(ranges[i].1), i));
    let mut first_earlier: Vec<Option<usize>> = vec![None; ranges.len()];
    let mut stack: Vec<usize> = Vec::new();
    for i in order {
        let (first, _) = ranges[i];
        while stack.last().is_some_and(|&t| ranges[t].1 < first) {
            stack.pop();
        }
        for &c in &stack {
            let (later, earlier) = (i.max(c), i.min(c));
            let slot = &mut first_earlier[later];
            if slot.is_none_or(|e| earlier < e) {
                *slot = Some(earlier);
            }
        }
        stack.push(i);
    }
    first_earlier.iter().enumerate().filter_map(|(i, e)| e.map(|e| (i, e))).collect()
}

fn carries(role: super::schema::Role, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => role.carries_v4(),
        IpAddr::V6(_) => role.carries_v6(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_normalise() {
        assert_eq!(normalize_pci("0000:03:00.0").as_deref(), Some("0000:03:00.0"));
        assert_eq!(normalize_pci("03:00.1").as_deref(), Some("0000:03:00.1"));
        assert_eq!(normalize_pci("0000:AF:1F.7").as_deref(), Some("0000:af:1f.7"));
        assert_eq!(normalize_pci("0000:03:20.0"), None); // device > 31
        assert_eq!(normalize_pci("0000:03:00.8"), None); // function > 7
        assert_eq!(normalize_pci("net_tap0"), None);
        assert_eq!(normalize_pci("eth0"), None);
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn eal_lcore_arguments() {
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(eal_lcores(&args(&["-l", "0-3"])), Some((set(&[0, 1, 2, 3]), 0)));
        assert_eq!(eal_lcores(&args(&["-l2,4", "--main-lcore", "4"])), Some((set(&[2, 4]), 4)));
        assert_eq!(eal_lcores(&args(&["-c", "0x6", "-n", "4"])), Some((set(&[1, 2]), 1)));
        assert_eq!(eal_lcores(&args(&["--main-lcore=3", "-l", "1-3"])), Some((set(&[1, 2, 3]), 3)));
        assert_eq!(eal_lcores(&args(&["--lcores", "(0-1)@0"])), None);
        assert_eq!(eal_lcores(&args(&["-n", "4", "--in-memory"])), None);
        assert_eq!(eal_lcores(&args(&["-l"])), None);
    }

    #[test]
    fn overlap_sweep_matches_all_pairs() {
        // Random prefixes (aligned power-of-two blocks) against brute force.
        let mut seed = 0x2545_f491_u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..2000 {
            let ranges: Vec<(u128, u128)> = (0..10)
                .map(|_| {
                    let size = 1u128 << (next() % 5);
                    let start = u128::from(next() % 64) / size * size;
                    (start, start + size - 1)
                })
                .collect();
            let want: Vec<(usize, usize)> = (0..ranges.len())
                .filter_map(|i| {
                    let (f, l) = ranges[i];
                    (0..i).find(|&j| f <= ranges[j].1 && ranges[j].0 <= l).map(|j| (i, j))
                })
                .collect();
            assert_eq!(overlaps(&ranges), want, "{ranges:?}");
        }
    }

    #[test]
    fn names() {
        assert!(name_ok("uplink-v4.100"));
        assert!(!name_ok(""));
        assert!(!name_ok("has space"));
        assert!(!name_ok(&"x".repeat(33)));
    }
}
