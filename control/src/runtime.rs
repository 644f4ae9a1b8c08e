//! From a validated configuration to what the dataplane runs: EAL
//! arguments, the ports to open, and each worker's pipeline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use dataplane::buf::PacketBuf;
use dataplane::instance::{AnyInstance, Nat64 as Nat64Instance, Siit as SiitInstance};
use dataplane::nat64::{self, Pool4, Proto};
use dataplane::pipeline::neigh::{NeighConfig, NeighKey};
use dataplane::pipeline::route::Route;
use dataplane::pipeline::{Iface, Pipeline};
use dataplane::xlate::{self, eamt, prefix, TosPolicy};

use crate::config::schema::{
    Allocation, AllocationMode, Config, Filtering, Instance, Interface, Nat64, Protocol, Siit,
    UdpZeroChecksum,
};
use crate::config::types::{Prefix4, Prefix6, SessionLog, TrafficClass};

/// Session/BIB events one shard may queue before the logger drains them.
const EVENT_QUEUE: usize = 65536;

/// A DPDK device the appliance opens, as EAL needs to be told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The name `rte_eth_dev_get_port_by_name` knows it by.
    pub name: String,
    /// The EAL arguments that make it exist (`-a PCI` or `--vdev SPEC`).
    pub eal_args: Vec<String>,
}

/// How EAL learns of a device string from the configuration: a PCI
/// address goes on the allow-list, anything else is a vdev spec whose name
/// is the part before the first comma.
pub fn device(spec: &str) -> Device {
    let name = spec.split(',').next().unwrap_or(spec).to_string();
    if is_pci(&name) {
        Device { name: name.clone(), eal_args: vec!["-a".into(), spec.to_string()] }
    } else {
        Device { name, eal_args: vec![format!("--vdev={spec}")] }
    }
}

fn is_pci(s: &str) -> bool {
    // DDDD:BB:DD.F or BB:DD.F
    let parts: Vec<&str> = s.split([':', '.']).collect();
    (parts.len() == 4 || parts.len() == 3)
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The distinct devices of the configuration, in first-use order, and for
/// each interface the index of its device.
pub fn devices(cfg: &Config) -> (Vec<Device>, Vec<usize>) {
    let mut devs: Vec<Device> = Vec::new();
    let mut of_iface = Vec::new();
    for i in &cfg.interfaces {
        let d = device(&i.device);
        let idx = match devs.iter().position(|x| x.name == d.name) {
            Some(p) => p,
            None => {
                devs.push(d);
                devs.len() - 1
            }
        };
        of_iface.push(idx);
    }
    (devs, of_iface)
}

/// The EAL command line: program name, the configuration's arguments, the
/// devices, then whatever the command line added.
pub fn eal_args(cfg: &Config, extra: &[String]) -> Vec<String> {
    let mut a = vec!["nat64d".to_string()];
    a.extend(cfg.dpdk.eal_args.iter().cloned());
    let (devs, _) = devices(cfg);
    for d in devs {
        a.extend(d.eal_args);
    }
    a.extend(extra.iter().cloned());
    a
}

fn p4(p: &Prefix4) -> prefix::Prefix4 {
    prefix::Prefix4::new(p.0.network(), p.0.prefix_len()).expect("validated prefix")
}

fn p6(p: &Prefix6) -> prefix::Prefix6 {
    prefix::Prefix6::new(p.0.network(), p.0.prefix_len()).expect("validated prefix")
}

fn iface_index(cfg: &Config, named: Option<&str>, v6: bool) -> Option<usize> {
    match named {
        Some(n) => cfg.interfaces.iter().position(|i| i.name == n),
        None => {
            cfg.interfaces.iter().position(|i| if v6 { i.role.carries_v6() } else { i.role.carries_v4() })
        }
    }
}

fn first_v4(i: &Interface) -> Ipv4Addr {
    i.ipv4.first().map(|n| n.addr()).unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn first_v6(i: &Interface) -> Ipv6Addr {
    i.ipv6.first().map(|n| n.addr()).unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// RFC 7915 options and interface facts every instance shares.
fn base_config(cfg: &Config, v6_iface: Option<&str>, v4_iface: Option<&str>) -> xlate::Config {
    let v6 = iface_index(cfg, v6_iface, true).map(|i| &cfg.interfaces[i]);
    let v4 = iface_index(cfg, v4_iface, false).map(|i| &cfg.interfaces[i]);
    let r = &cfg.rfc7915;
    let tos = match r.traffic_class {
        TrafficClass::Copy => TosPolicy::Copy,
        TrafficClass::Zero => TosPolicy::Zero,
        TrafficClass::Fixed(v) => TosPolicy::Set(v),
    };
    xlate::Config {
        lowest_ipv6_mtu: r.lowest_ipv6_mtu.min(u32::from(u16::MAX)) as u16,
        mtu_ipv6: v6.map_or(1500, |i| i.mtu.min(u32::from(u16::MAX)) as u16),
        mtu_ipv4: v4.map_or(1500, |i| i.mtu.min(u32::from(u16::MAX)) as u16),
        traffic_class: tos,
        tos,
        udp_zero_checksum: match r.udp_zero_checksum {
            UdpZeroChecksum::Compute => xlate::UdpZeroChecksum::Compute,
            UdpZeroChecksum::Drop => xlate::UdpZeroChecksum::Drop,
        },
        fragment_4to6: r.fragment_df_clear,
        own_v4: v4.map_or(Ipv4Addr::UNSPECIFIED, first_v4),
        own_v6: v6.map_or(Ipv6Addr::UNSPECIFIED, first_v6),
        ..xlate::Config::default()
    }
}

/// The translator configuration of a SIIT instance.
pub fn siit_config(cfg: &Config, s: &Siit) -> xlate::Config {
    let eams = s.eamt.iter().map(|e| eamt::Eam { v6: p6(&e.ipv6), v4: p4(&e.ipv4) }).collect();
    xlate::Config {
        pool6: s.pool6.as_ref().map(p6),
        eamt: eamt::Eamt::new(eams).expect("validated EAMT"),
        rfc6791_v4: s.pool6791_v4.as_ref().map(p4),
        rfc6791_v6: s.pool6791_v6.as_ref().map(p6),
        wkp_allow_non_global: s.allow_non_global_wkp,
        ..base_config(cfg, s.ipv6_interface.as_deref(), s.ipv4_interface.as_deref())
    }
}

/// The translator configuration of a stateful instance (RFC 7915 rules
/// with pool6; addresses come from its sessions).
pub fn nat64_xlate_config(cfg: &Config, n: &Nat64) -> xlate::Config {
    xlate::Config {
        pool6: Some(p6(&n.pool6)),
        wkp_allow_non_global: n.allow_non_global_wkp,
        ..base_config(cfg, n.ipv6_interface.as_deref(), n.ipv4_interface.as_deref())
    }
}

/// The dataplane's protocol number of a configured protocol.
pub fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
    }
}

/// A stateful instance's pool4, split over `workers` (by the client
/// ranges in deterministic mode).
pub fn pool4(n: &Nat64, workers: u16) -> Result<Pool4, String> {
    let entries = pool4_entries(n);
    let split = match det_map(n, workers)? {
        Some(m) => m.pool4(&entries),
        None => Pool4::new(&entries, workers),
    };
    split.map_err(|e| format!("instance {}: pool4 cannot be split over {workers} workers: {e:?}", n.name))
}

/// The RFC 7422 mapping of a deterministic instance (`None` in the other
/// modes), with its ranges cut for `workers`.
pub fn det_map(n: &Nat64, workers: u16) -> Result<Option<nat64::DetMap>, String> {
    let a = &n.allocation;
    if a.mode != AllocationMode::Deterministic {
        return Ok(None);
    }
    let clients =
        a.clients.ok_or_else(|| format!("instance {}: deterministic mode needs clients", n.name))?;
    let ports = a.ports_per_client.map(|p| p.min(u16::MAX as u32) as u16);
    nat64::DetMap::new(
        clients.0.network(),
        clients.0.prefix_len(),
        n.limits.client_prefix_len,
        ports,
        &pool4_entries(n),
        workers,
    )
    .map(Some)
    .map_err(|e| format!("instance {}: deterministic mapping: {e:?}", n.name))
}

/// The allocation mode the shards of `n` run.
pub fn allocation(n: &Nat64, workers: u16) -> Result<nat64::Allocation, String> {
    let a = &n.allocation;
    Ok(match a.mode {
        AllocationMode::Dynamic => nat64::Allocation::Dynamic,
        AllocationMode::Blocks => nat64::Allocation::Blocks(nat64::BlockConfig {
            size: a.block_size.unwrap_or(Allocation::BLOCK_SIZE).clamp(1, u16::MAX as u32) as u16,
            max_per_client: a
                .max_blocks_per_client
                .unwrap_or(Allocation::MAX_BLOCKS)
                .clamp(1, u16::MAX as u32) as u16,
        }),
        AllocationMode::Deterministic => match det_map(n, workers)? {
            Some(m) => nat64::Allocation::Deterministic(Arc::new(m)),
            None => nat64::Allocation::Dynamic,
        },
    })
}

/// pool4 as per-protocol entries.
pub fn pool4_entries(n: &Nat64) -> Vec<nat64::Pool4Entry> {
    let mut entries = Vec::new();
    for e in &n.pool4 {
        for (p, r) in [(Proto::Tcp, &e.tcp), (Proto::Udp, &e.udp), (Proto::Icmp, &e.icmp)] {
            entries.push(nat64::Pool4Entry {
                proto: p,
                prefix: e.prefix.0.network(),
                prefix_len: e.prefix.0.prefix_len(),
                port_min: r.first as u16,
                port_max: r.last as u16,
            });
        }
    }
    entries
}

/// The shard configuration of a stateful instance.
pub fn shard_config(
    n: &Nat64,
    seed: u64,
    events: Option<Arc<ArrayQueue<nat64::Event>>>,
    allocation: nat64::Allocation,
) -> nat64::Config {
    let t = &n.timeouts;
    nat64::Config {
        // Blocks and deterministic ranges exist to keep the log to a line
        // per block (or none): no per-session lines then.
        session_events: allocation == nat64::Allocation::Dynamic,
        allocation,
        max_sessions: n.limits.max_sessions,
        max_sessions_per_client: n.limits.max_sessions_per_client.unwrap_or(0),
        client_prefix_len: n.limits.client_prefix_len,
        max_static: n.limits.max_static_bib,
        timeouts: nat64::Timeouts {
            udp: t.udp,
            tcp_est: t.tcp_est,
            tcp_trans: t.tcp_trans,
            icmp: t.icmp,
            tcp_incoming_syn: t.syn_hold,
        },
        filtering: match n.filtering {
            Filtering::EndpointIndependent => nat64::Filtering::EndpointIndependent,
            Filtering::AddressDependent => nat64::Filtering::AddressDependent,
        },
        drop_external_tcp: n.drop_external_tcp,
        seed,
        events,
        ..nat64::Config::default()
    }
}

/// What every worker's pipeline is built from: per stateful instance its
/// pool split over the workers and, when sessions are logged, one event
/// queue per worker.
pub struct Plan {
    /// Number of workers.
    pub workers: usize,
    /// Per instance (configuration order): the pool4 of a stateful one.
    pub pools: Vec<Option<Arc<Pool4>>>,
    /// Per instance, per worker: session/BIB event queues (empty when
    /// session logging is off or the instance is stateless).
    pub events: Vec<Vec<Arc<ArrayQueue<nat64::Event>>>>,
    /// Per instance, per worker: session sync queues (empty when sync is
    /// off or the instance is stateless).
    pub sync: Vec<Vec<Arc<nat64::SyncQueue>>>,
    /// Secret seed for hash keys and port choice (RFC 6056).
    pub seed: u64,
}

impl Plan {
    /// Split the pools of `cfg` over `workers`.
    pub fn new(cfg: &Config, workers: usize) -> Result<Plan, String> {
        let logging = cfg.logging.session_log != SessionLog::Off;
        let mut pools = Vec::new();
        let mut events = Vec::new();
        let mut sync = Vec::new();
        for inst in &cfg.instances {
            sync.push(match (inst, &cfg.sync) {
                (Instance::Nat64(_), Some(s)) => {
                    (0..workers).map(|_| Arc::new(nat64::SyncQueue::new(s.queue as usize))).collect()
                }
                _ => Vec::new(),
            });
            match inst {
                Instance::Nat64(n) => {
                    pools.push(Some(Arc::new(pool4(n, workers as u16)?)));
                    let qs = if logging {
                        (0..workers).map(|_| Arc::new(ArrayQueue::new(EVENT_QUEUE))).collect()
                    } else {
                        Vec::new()
                    };
                    events.push(qs);
                }
                _ => {
                    pools.push(None);
                    events.push(Vec::new());
                }
            }
        }
        // RandomState is seeded from the OS: a fresh secret every start.
        let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), workers);
        Ok(Plan { workers, pools, events, sync, seed })
    }
}

/// One worker's pipeline. `port_of_iface[i]` is the DPDK port id of
/// interface `i`, `mac_of_iface[i]` its MAC (override or the port's own).
pub fn pipeline<B: PacketBuf>(
    cfg: &Config,
    plan: &Plan,
    worker: usize,
    now: u64,
    port_of_iface: &[u16],
    mac_of_iface: &[[u8; 6]],
) -> Result<Pipeline<B, AnyInstance<B>>, String> {
    let ifaces = cfg
        .interfaces
        .iter()
        .enumerate()
        .map(|(n, i)| {
            Iface::new(
                port_of_iface[n],
                i.vlan,
                mac_of_iface[n],
                i.ipv4.iter().map(|a| a.addr()).collect(),
                i.ipv6.iter().map(|a| a.addr()).collect(),
            )
        })
        .collect();
    let mut instances = Vec::new();
    for (i, inst) in cfg.instances.iter().enumerate() {
        instances.push(match inst {
            Instance::Siit(s) => {
                AnyInstance::Siit(Box::new(SiitInstance::new(siit_config(cfg, s), worker as u16 * 7919)))
            }
            Instance::Nat64(n) => {
                let pool = plan.pools[i].clone().ok_or("stateful instance without a pool")?;
                let events = plan.events[i].get(worker).cloned();
                let alloc = allocation(n, plan.workers as u16)?;
                let sc = nat64::Config {
                    sync: plan.sync[i].get(worker).cloned(),
                    ..shard_config(n, plan.seed ^ ((i as u64) << 32) ^ worker as u64, events, alloc)
                };
                let mut shard = nat64::Shard::new(&sc, pool.slice(worker as u16), now);
                for b in &n.static_bib {
                    let p = proto(b.protocol);
                    let v4 = (b.ipv4.addr, b.ipv4.port as u16);
                    // Each static entry lives in the shard that owns its port.
                    if pool.owner(p, v4.0, v4.1) == Some(worker as u16) {
                        shard.add_static(p, (b.ipv6.addr, b.ipv6.port as u16), v4, now).map_err(|e| {
                            format!("instance {}: static BIB {}#{}: {e:?}", n.name, v4.0, v4.1)
                        })?;
                    }
                }
                AnyInstance::Nat64(Box::new(Nat64Instance::new(
                    nat64_xlate_config(cfg, n),
                    shard,
                    pool,
                    n.destinations.as_ref().map(p4),
                    sc.max_held_syn,
                    n.timeouts.syn_hold,
                    worker as u16 * 7919 + 1,
                )))
            }
        });
    }
    let mut p = Pipeline::new(ifaces, instances, NeighConfig::default());
    for (n, i) in cfg.interfaces.iter().enumerate() {
        let iface = n as u16;
        for a in &i.ipv4 {
            p.routes4.add(Route { prefix: a.network(), len: a.prefix_len(), via: None, iface });
        }
        for a in &i.ipv6 {
            p.routes6.add(Route { prefix: a.network(), len: a.prefix_len(), via: None, iface });
        }
        for r in &i.routes {
            match (r.prefix, r.via) {
                (ipnet::IpNet::V4(net), IpAddr::V4(via)) => p.routes4.add(Route {
                    prefix: net.network(),
                    len: net.prefix_len(),
                    via: Some(via),
                    iface,
                }),
                (ipnet::IpNet::V6(net), IpAddr::V6(via)) => p.routes6.add(Route {
                    prefix: net.network(),
                    len: net.prefix_len(),
                    via: Some(via),
                    iface,
                }),
                _ => {} // validation refuses mixed families
            }
        }
        for nb in &i.neighbours {
            p.neigh.add_static(NeighKey { iface, addr: nb.ip }, nb.mac.0);
        }
    }
    p.worker = worker as u16;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::buf::VecBuf;

    const CFG: &str = r#"
interfaces:
  - name: v6side
    device: "net_pcap0,rx_pcap=/tmp/a.pcap,tx_pcap=/tmp/b.pcap"
    role: ipv6
    ipv6: ["2001:db8:1c0:2:1::/64"]
    neighbours:
      - ip: "2001:db8:1c0:2:21::"
        mac: "02:00:00:00:00:06"
    routes:
      - prefix: "2001:db8:3::/120"
        via: "2001:db8:1c0:2:21::"
  - name: v4side
    device: "0000:03:00.1"
    role: ipv4
    mtu: 1400
    ipv4: ["198.51.100.1/24"]
instances:
  - siit:
      name: s
      pool6: "2001:db8:100::/40"
      eamt:
        - ipv6: "2001:db8:3::/120"
          ipv4: "192.0.2.0/24"
      pool6791_v4: "203.0.113.8/32"
"#;

    fn cfg() -> Config {
        Config::from_str(CFG, "test.yaml").expect("valid")
    }

    #[test]
    fn devices_become_eal_arguments() {
        let c = cfg();
        let a = eal_args(&c, &["--no-huge".into()]);
        assert_eq!(
            a,
            vec![
                "nat64d",
                "--vdev=net_pcap0,rx_pcap=/tmp/a.pcap,tx_pcap=/tmp/b.pcap",
                "-a",
                "0000:03:00.1",
                "--no-huge"
            ]
        );
        let (d, of) = devices(&c);
        assert_eq!(d[0].name, "net_pcap0");
        assert_eq!(d[1].name, "0000:03:00.1");
        assert_eq!(of, vec![0, 1]);
    }

    #[test]
    fn siit_instance_takes_interface_facts() {
        let c = cfg();
        let Instance::Siit(s) = &c.instances[0] else { panic!() };
        let x = siit_config(&c, s);
        assert_eq!(x.mtu_ipv4, 1400);
        assert_eq!(x.mtu_ipv6, 1500);
        assert_eq!(x.own_v4, "198.51.100.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(x.own_v6, "2001:db8:1c0:2:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(x.eamt.translate4("192.0.2.7".parse().unwrap()), Some("2001:db8:3::7".parse().unwrap()));
        assert!(x.rfc6791_v4.is_some());
    }

    #[test]
    fn pipeline_gets_routes_neighbours_and_instances() {
        let c = cfg();
        let plan = Plan::new(&c, 1).unwrap();
        let p: Pipeline<VecBuf, AnyInstance<VecBuf>> =
            pipeline(&c, &plan, 0, 0, &[0, 1], &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]).unwrap();
        assert_eq!(p.instances.len(), 1);
        let r = p.routes6.lookup("2001:db8:3::9".parse().unwrap()).unwrap();
        assert_eq!((r.iface, r.via), (0, Some("2001:db8:1c0:2:21::".parse().unwrap())));
        let r = p.routes4.lookup("198.51.100.2".parse().unwrap()).unwrap();
        assert_eq!((r.iface, r.via), (1, None));
        let k = NeighKey { iface: 0, addr: "2001:db8:1c0:2:21::".parse().unwrap() };
        assert_eq!(p.neigh.get(&k), Some([2, 0, 0, 0, 0, 6]));
        assert!(p.ifaces[0].v6.iter().any(|a| a.segments()[0] == 0xfe80), "link-local derived");
    }
}
