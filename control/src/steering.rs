//! Hardware steering of IPv4 return traffic (`dpdk.steering`): NIC flow
//! rules that deliver a packet for a pool4 transport address straight to
//! the RX queue of the worker owning it, so the software handoff between
//! workers is left with what rules cannot match (non-first fragments, ICMP
//! errors, ICMP when the NIC has no identifier match).
//!
//! Rules are built from the pool4 split (`dataplane::steer`), validated on
//! every IPv4 port, then created after the port started; they are removed
//! before the port stops, and rebuilt when a reload changes a pool4.

use std::sync::Mutex;

use dataplane::dpdk::Port;
use dataplane::nat64::Proto;
use dataplane::steer::{pool4_rules, Masks, SteerRule};

use crate::config::{Config, Instance, Steering};
use crate::runtime;

/// Most rules nat64d installs per port. NIC flow tables hold a few
/// thousand entries (i40e's flow director 8 K, ice more); a pool that needs
/// more (an address split over a worker count that is not a power of two,
/// with many addresses) stays with the software handoff.
pub const MAX_RULES: usize = 1024;

/// What one port does for IPv4 return traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSteering {
    /// `flow`, `software`, or empty for a port without IPv4.
    pub mode: &'static str,
    /// Rules installed.
    pub rules: usize,
    /// Why the port uses the software handoff (or which rules it left to
    /// software).
    pub reason: Option<String>,
}

/// The steering of every port, kept for status and for rebuilding rules
/// on reload.
#[derive(Debug)]
pub struct SteeringState {
    mode: Steering,
    /// Port indexes that carry IPv4, with whether one of their IPv4
    /// interfaces is VLAN-tagged.
    v4: Vec<(usize, bool)>,
    status: Mutex<Vec<PortSteering>>,
}

/// The rules `cfg` needs: every stateful instance's pool4 split over
/// `workers` (instances' pool4s are disjoint, so their rules are too).
pub fn rules(cfg: &Config, workers: u16, masks: Masks) -> Result<Vec<SteerRule>, String> {
    let mut out = Vec::new();
    for inst in &cfg.instances {
        if let Instance::Nat64(n) = inst {
            let pool = runtime::pool4(n, workers)?;
            let left = MAX_RULES.saturating_sub(out.len());
            out.extend(
                pool4_rules(&pool, masks, left).map_err(|e| format!("{e} (limit {MAX_RULES} per port)"))?,
            );
        }
    }
    Ok(out)
}

impl SteeringState {
    /// The ports of `cfg` that steering concerns (`dev_of_iface` maps
    /// interfaces to port indexes, as `runtime::devices` returns).
    pub fn new(cfg: &Config, n_ports: usize, dev_of_iface: &[usize]) -> SteeringState {
        let mut v4: Vec<(usize, bool)> = Vec::new();
        for (ifc, &d) in cfg.interfaces.iter().zip(dev_of_iface) {
            if !ifc.role.carries_v4() {
                continue;
            }
            match v4.iter_mut().find(|(p, _)| *p == d) {
                Some(e) => e.1 |= ifc.vlan.is_some(),
                None => v4.push((d, ifc.vlan.is_some())),
            }
        }
        SteeringState {
            mode: cfg.dpdk.steering,
            v4,
            status: Mutex::new(vec![PortSteering::default(); n_ports]),
        }
    }

    /// The steering of port `p`.
    pub fn port(&self, p: usize) -> PortSteering {
        self.lock().get(p).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PortSteering>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (Re)install the rules of `cfg` on every IPv4 port (started). With
    /// `steering: flow`, a port that refuses them is an error; with `auto`
    /// it falls back to the software handoff and says why in one log line.
    pub fn install(&self, ports: &[Port], cfg: &Config, workers: u16) -> Result<(), String> {
        self.clear(ports);
        let wanted = rules(cfg, workers, Masks::Any);
        // For NICs that match whole addresses only (Intel FDIR).
        let exact = rules(cfg, workers, Masks::ExactAddresses).ok().filter(|e| Ok(e) != wanted.as_ref());
        for &(p, vlan) in &self.v4 {
            let Some(port) = ports.get(p) else { continue };
            // Nothing to steer is never an error, even with `flow`.
            let idle = match (&self.mode, &wanted) {
                (Steering::Software, _) => Some("dpdk.steering is software"),
                _ if workers < 2 => Some("one worker: nothing to steer"),
                (_, Ok(r)) if r.is_empty() => Some("no stateful NAT64 instance"),
                _ => None,
            };
            // Err((why, whether steering was wanted and could not be had)).
            let result = match (idle, &wanted) {
                (Some(why), _) => Err((why.to_string(), false)),
                (None, Err(e)) => Err((e.clone(), true)),
                (None, Ok(_)) if vlan => {
                    Err(("IPv4 interface on a VLAN (rules match untagged frames)".to_string(), true))
                }
                (None, Ok(r)) => match (install_port(port, r), &exact) {
                    (Err(Refused::Rule(masked)), Some(e)) => install_port(port, e)
                        .map_err(|whole| format!("{masked}; with one rule per address: {}", whole.reason())),
                    (done, _) => done.map_err(|r| r.reason()),
                }
                .map_err(|why| (why, true)),
            };
            let st = match result {
                Ok((n, note)) => {
                    tracing::info!(device = %port.name(), rules = n, "steering: NIC flow rules send IPv4 return traffic to the owning worker's queue");
                    if let Some(note) = &note {
                        tracing::warn!(device = %port.name(), "steering: {note}");
                    }
                    PortSteering { mode: "flow", rules: n, reason: note }
                }
                Err((why, true)) if self.mode == Steering::Flow => {
                    return Err(format!(
                        "dpdk.steering is flow, but device {} cannot steer: {why}",
                        port.name()
                    ));
                }
                Err((why, wanted)) => {
                    if wanted {
                        tracing::warn!(device = %port.name(), "steering: software handoff between workers ({why})");
                    } else {
                        tracing::info!(device = %port.name(), "steering: software handoff between workers ({why})");
                    }
                    PortSteering { mode: "software", rules: 0, reason: Some(why) }
                }
            };
            if let Some(s) = self.lock().get_mut(p) {
                *s = st;
            }
        }
        Ok(())
    }

    /// Remove every rule (before the ports stop, or before new ones).
    pub fn clear(&self, ports: &[Port]) {
        for &(p, _) in &self.v4 {
            let Some(port) = ports.get(p) else { continue };
            if let Err(e) = port.clear_steering() {
                tracing::warn!(device = %port.name(), "steering: removing rules: {e}");
            }
            if let Some(s) = self.lock().get_mut(p) {
                *s = PortSteering { mode: "software", rules: 0, reason: Some("rules removed".into()) };
            }
        }
    }
}

/// Why a port did not take a rule list.
enum Refused {
    /// The PMD has no `rte_flow` at all.
    NoFlowApi,
    /// A rule was refused (validation or creation), with the reason.
    Rule(String),
}

impl Refused {
    fn reason(self) -> String {
        match self {
            Refused::NoFlowApi => "the device has no flow API".into(),
            Refused::Rule(r) => r,
        }
    }
}

/// Validate every rule on `port`, then create them all. ICMP identifier
/// rules the NIC refuses are left to software (a note says so); any other
/// refusal keeps the whole port on the software handoff.
fn install_port(port: &Port, rules: &[SteerRule]) -> Result<(usize, Option<String>), Refused> {
    let mut keep = Vec::with_capacity(rules.len());
    let mut icmp_refused = None;
    for r in rules {
        match port.validate_steering(r) {
            Ok(()) => keep.push(r),
            Err(e) if r.proto == Proto::Icmp && r.needs_l4() => icmp_refused = Some(e),
            Err(e) if e.no_flow_api() => return Err(Refused::NoFlowApi),
            Err(e) => return Err(Refused::Rule(format!("the NIC refuses the rules: {e}"))),
        }
    }
    for (i, r) in keep.iter().enumerate() {
        if let Err(e) = port.add_steering(r) {
            let _ = port.clear_steering();
            return Err(Refused::Rule(format!("creating rule {} of {}: {e}", i + 1, keep.len())));
        }
    }
    let note = icmp_refused.map(|e| {
        format!("ICMP identifier rules refused ({e}): ICMP queries go through the software handoff")
    });
    Ok((keep.len(), note))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-armed port (IPv4 on VLAN 20) and a second IPv4 port, two NAT64
    /// instances: an address-split /30 and a port-split /32.
    const CFG: &str = r#"
interfaces:
  - { name: arm6, device: net_null0, role: ipv6, ipv6: ["2001:db8::1/64"] }
  - { name: arm4, device: net_null0, role: ipv4, vlan: 20, ipv4: ["192.0.2.1/24"] }
  - { name: out, device: net_null1, role: ipv4, ipv4: ["198.51.100.254/24"] }
instances:
  - nat64: { name: a, pool6: "2001:db8:64::/96", pool4: [ { prefix: 203.0.113.0/30 } ] }
  - nat64: { name: b, pool6: "2001:db8:65::/96", pool4: [ { prefix: 203.0.113.8/32, tcp: 1-1000, udp: 1-1000, icmp: 1-1000 } ] }
"#;

    /// `CFG` with `from` replaced by `to`.
    fn cfg_with(from: &str, to: &str) -> Config {
        Config::from_str(&CFG.replace(from, to), "t.yaml").expect("parses")
    }

    #[test]
    fn rules_cover_every_instance_in_both_shapes() {
        let c = cfg_with("", "");
        let any = rules(&c, 2, Masks::Any).unwrap();
        let exact = rules(&c, 2, Masks::ExactAddresses).unwrap();
        // Instance a: 2 rules (masked) or 4 (per address) per protocol.
        let of = |r: &[SteerRule], a: [u8; 4]| {
            r.iter().filter(|x| x.dst.octets()[..3] == a[..3] && x.dst.octets()[3] < 4).count()
        };
        assert_eq!(of(&any, [203, 0, 113, 0]), 6);
        assert_eq!(of(&exact, [203, 0, 113, 0]), 12);
        // Instance b is split by port: the same port rules in both shapes.
        let b = |r: &[SteerRule]| r.iter().filter(|x| x.dst.octets()[3] == 8).count();
        assert!(b(&any) > 0);
        assert_eq!(b(&any), b(&exact));
        assert!(any.iter().filter(|x| x.dst.octets()[3] == 8).all(|x| x.needs_l4()));
    }

    #[test]
    fn one_rule_per_address_can_exceed_the_limit() {
        let c = cfg_with("203.0.113.0/30", "10.0.0.0/20");
        assert!(rules(&c, 2, Masks::Any).is_ok());
        // 4096 addresses x 3 protocols over 3 workers: one rule each.
        let e = rules(&c, 3, Masks::Any).unwrap_err();
        assert!(e.contains("more than") && e.contains("limit 1024"), "{e}");
    }

    #[test]
    fn ports_carrying_ipv4_with_their_vlan_flag() {
        let c = cfg_with("", "");
        let (devs, of_iface) = runtime::devices(&c);
        let s = SteeringState::new(&c, devs.len(), &of_iface);
        assert_eq!(s.v4, vec![(0, true), (1, false)]);
        assert_eq!(s.port(0), PortSteering::default());
        assert_eq!(s.mode, Steering::Auto);
    }
}
