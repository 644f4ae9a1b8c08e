//! "Who had 192.0.2.7:40123 at 14:02?" and "what did 2001:db8:a::5 get?":
//! the two directions of `nat64ctl lookup`, for the allocation modes that
//! make them answerable without a per-session log (docs/abuse.md).
//!
//! - Deterministic instances (RFC 7422): computed from the configuration
//!   alone ([`from_config`]), valid at any time the file was in force.
//! - Port blocks: from the block log ([`from_log`]: the block whose
//!   allocation and release lines enclose the time asked about), or from
//!   the running daemon's tables (the control API's `lookup` command).

use std::io::BufRead;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use crate::config::schema::{AllocationMode, Config, Instance, Protocol};
use crate::runtime;
use crate::sessionlog::BlockRecord;

/// What is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// An IPv6 client address: its IPv4 address and port range(s).
    Ipv6(Ipv6Addr),
    /// An IPv4 transport address: the client that had it.
    Ipv4(Ipv4Addr, u16),
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `2001:db8::5`, `192.0.2.7#40123` (or `192.0.2.7:40123`).
    fn from_str(s: &str) -> Result<Target, String> {
        if let Ok(a) = s.parse::<Ipv6Addr>() {
            return Ok(Target::Ipv6(a));
        }
        let (a, p) = s.split_once('#').or_else(|| s.split_once(':')).ok_or_else(|| {
            format!("{s:?}: an IPv6 address, or an IPv4 address and port (192.0.2.7#40123)")
        })?;
        let a = a.parse::<Ipv4Addr>().map_err(|e| format!("{a:?}: {e}"))?;
        let p = p.parse::<u16>().map_err(|e| format!("port {p:?}: {e}"))?;
        Ok(Target::Ipv4(a, p))
    }
}

/// One answer: a client prefix and the IPv4 address and ports it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Instance name.
    pub instance: String,
    /// `deterministic` or `blocks`.
    pub mode: String,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// The client, `2001:db8:a:500::/56`.
    pub ipv6_prefix: String,
    /// IPv4 address.
    pub ipv4: Ipv4Addr,
    /// First port (or ICMP identifier).
    pub port_first: u16,
    /// Last port.
    pub port_last: u16,
    /// Since when (block log: the allocation line's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Until when (block log: the release line's time; absent while held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// Answers from the configuration: every deterministic instance (or only
/// `instance`) that maps `target`. Port blocks and dynamic instances need
/// the daemon or the log.
pub fn from_config(cfg: &Config, target: Target, instance: Option<&str>) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for inst in &cfg.instances {
        let Instance::Nat64(n) = inst else { continue };
        if instance.is_some_and(|i| i != n.name) || n.allocation.mode != AllocationMode::Deterministic {
            continue;
        }
        // The mapping does not depend on the worker count (only the
        // per-worker cut of each range does).
        let Some(m) = runtime::det_map(n, 1)? else { continue };
        for p in Protocol::ALL {
            let pr = runtime::proto(p);
            let found = match target {
                Target::Ipv6(a) => {
                    m.map6(pr, a).map(|r| (m.client_prefix(m.client_index(a).unwrap_or(0)), r))
                }
                Target::Ipv4(a, port) => m.map4(pr, a, port).and_then(|c| m.map6(pr, c.0).map(|r| (c, r))),
            };
            if let Some(((pfx, len), r)) = found {
                rows.push(Row {
                    instance: n.name.clone(),
                    mode: "deterministic".into(),
                    protocol: p.name().into(),
                    ipv6_prefix: format!("{pfx}/{len}"),
                    ipv4: r.addr,
                    port_first: r.first,
                    port_last: r.last,
                    from: None,
                    until: None,
                });
            }
        }
    }
    Ok(rows)
}

/// Whether the instance named `name` (or any, when `None`) runs port
/// blocks in `cfg`.
pub fn has_blocks(cfg: &Config, name: Option<&str>) -> bool {
    cfg.instances.iter().any(|i| match i {
        Instance::Nat64(n) => name.is_none_or(|x| x == n.name) && n.allocation.mode == AllocationMode::Blocks,
        Instance::Siit(_) => false,
    })
}

/// Lines of a block log that could not be read, with the first one's
/// number (the rest of the log still counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Lines not JSON or without a parseable time.
    pub lines: u64,
    /// First such line (1-based).
    pub first: u64,
}

/// Answers from a session log with block lines: the blocks that covered
/// `target` at `at` (allocated at or before it, not released before it).
/// Other lines (session, BIB) are ignored.
pub fn from_log(
    log: impl BufRead,
    target: Target,
    at: SystemTime,
    instance: Option<&str>,
    protocol: Option<Protocol>,
) -> Result<(Vec<Row>, Skipped), String> {
    // Open blocks by (instance, protocol, address, first port).
    let mut open: Vec<(BlockRecord, SystemTime)> = Vec::new();
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for (i, line) in log.lines().enumerate() {
        let line = line.map_err(|e| format!("reading the log: {e}"))?;
        if !line.contains("\"block_") {
            continue;
        }
        let parsed = serde_json::from_str::<BlockRecord>(&line)
            .ok()
            .and_then(|r| humantime::parse_rfc3339_weak(&r.time).ok().map(|t| (r, t)));
        let Some((r, t)) = parsed else {
            skipped.lines += 1;
            if skipped.first == 0 {
                skipped.first = i as u64 + 1;
            }
            continue;
        };
        if instance.is_some_and(|x| x != r.instance) || protocol.is_some_and(|p| p.name() != r.protocol) {
            continue;
        }
        if !matches(&r, target) {
            continue;
        }
        if t > at {
            // Not a break: lines of several workers interleave slightly
            // out of time order within a drain round.
            continue;
        }
        let same = |o: &BlockRecord| {
            o.instance == r.instance
                && o.protocol == r.protocol
                && o.ipv4 == r.ipv4
                && o.port_first == r.port_first
        };
        match r.event.as_str() {
            "block_allocated" => {
                open.retain(|(o, _)| !same(o));
                open.push((r, t));
            }
            "block_released" => open.retain(|(o, _)| !same(o)),
            _ => {}
        }
    }
    for (r, t) in open {
        found.push(row_of(&r, t));
    }
    Ok((found, skipped))
}

/// The release time of each row, from a second pass (the first one kept
/// only what was open at `at`).
pub fn releases(log: impl BufRead, rows: &mut [Row], at: SystemTime) {
    for line in log.lines().map_while(Result::ok) {
        if !line.contains("\"block_released\"") {
            continue;
        }
        let Ok(r) = serde_json::from_str::<BlockRecord>(&line) else { continue };
        let Ok(t) = humantime::parse_rfc3339_weak(&r.time) else { continue };
        if t < at {
            continue;
        }
        for row in rows.iter_mut().filter(|x| x.until.is_none()) {
            if row.instance == r.instance
                && row.protocol == r.protocol
                && row.ipv4.to_string() == r.ipv4
                && row.port_first == r.port_first
                && row.ipv6_prefix == r.ipv6_prefix
            {
                row.until = Some(r.time.clone());
            }
        }
    }
}

fn matches(r: &BlockRecord, target: Target) -> bool {
    match target {
        Target::Ipv4(a, p) => r.ipv4.parse() == Ok(a) && (r.port_first..=r.port_last).contains(&p),
        Target::Ipv6(a) => r.ipv6_prefix.parse::<Ipv6Net>().is_ok_and(|n| n.contains(&a)),
    }
}

fn row_of(r: &BlockRecord, t: SystemTime) -> Row {
    Row {
        instance: r.instance.clone(),
        mode: "blocks".into(),
        protocol: r.protocol.clone(),
        ipv6_prefix: r.ipv6_prefix.clone(),
        ipv4: r.ipv4.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        port_first: r.port_first,
        port_last: r.port_last,
        from: Some(humantime::format_rfc3339_millis(t).to_string()),
        until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
interfaces:
  - { name: a, device: net_null0, role: both }
instances:
  - nat64:
      name: plat
      pool6: 2001:db8:64::/96
      pool4: [ { prefix: 192.0.2.0/30 } ]
      limits: { client_prefix_len: 56 }
      allocation: { mode: deterministic, clients: 2001:db8:a::/48 }
";

    #[test]
    fn targets_parse() {
        assert_eq!("2001:db8::5".parse(), Ok(Target::Ipv6("2001:db8::5".parse().unwrap())));
        assert_eq!("192.0.2.7#40123".parse(), Ok(Target::Ipv4(Ipv4Addr::new(192, 0, 2, 7), 40123)));
        assert_eq!("192.0.2.7:80".parse(), Ok(Target::Ipv4(Ipv4Addr::new(192, 0, 2, 7), 80)));
        assert!("192.0.2.7".parse::<Target>().is_err());
        assert!("192.0.2.7#70000".parse::<Target>().is_err());
    }

    #[test]
    fn deterministic_both_ways_from_the_file() {
        let cfg = Config::from_str(CFG, "t.yaml").unwrap();
        // 256 clients over 4 addresses: client 0x05 is on .1, range 1.
        let rows = from_config(&cfg, "2001:db8:a:500::77".parse().unwrap(), None).unwrap();
        assert_eq!(rows.len(), 3);
        let tcp = &rows[0];
        assert_eq!((tcp.protocol.as_str(), tcp.ipv6_prefix.as_str()), ("tcp", "2001:db8:a:500::/56"));
        assert_eq!((tcp.ipv4, tcp.port_first, tcp.port_last), (Ipv4Addr::new(192, 0, 2, 1), 2032, 3039));
        let back = from_config(&cfg, Target::Ipv4(Ipv4Addr::new(192, 0, 2, 1), 2500), Some("plat")).unwrap();
        let who: Vec<&str> = back.iter().map(|r| r.ipv6_prefix.as_str()).collect();
        // ICMP identifiers start at 0 (1024 per client): 2500 is client 9's.
        assert_eq!(who, ["2001:db8:a:500::/56", "2001:db8:a:500::/56", "2001:db8:a:900::/56"]);
        assert!(from_config(&cfg, "2001:db8:b::1".parse().unwrap(), None).unwrap().is_empty());
        assert!(from_config(&cfg, "2001:db8:a::1".parse().unwrap(), Some("other")).unwrap().is_empty());
    }

    fn line(t: &str, ev: &str, pfx: &str, a: &str, first: u16) -> String {
        let r = BlockRecord {
            time: t.into(),
            event: ev.into(),
            instance: "plat".into(),
            protocol: "udp".into(),
            ipv6_prefix: pfx.into(),
            ipv4: a.into(),
            port_first: first,
            port_last: first + 511,
        };
        serde_json::to_string(&r).unwrap()
    }

    #[test]
    fn block_log_names_who_had_the_port_when() {
        let log = [
            line("2026-11-24T13:00:00.000Z", "block_allocated", "2001:db8:1::/64", "192.0.2.7", 40000),
            r#"{"time":"2026-11-24T13:01:00.000Z","event":"session_created","ipv6":"::1"}"#.to_string(),
            "garbage \"block_".to_string(),
            line("2026-11-24T13:30:00.000Z", "block_released", "2001:db8:1::/64", "192.0.2.7", 40000),
            line("2026-11-24T13:45:00.000Z", "block_allocated", "2001:db8:2::/64", "192.0.2.7", 40000),
            line("2026-11-24T14:30:00.000Z", "block_released", "2001:db8:2::/64", "192.0.2.7", 40000),
        ]
        .join("\n");
        let t = |s: &str| humantime::parse_rfc3339(s).unwrap();
        let who = |at: &str, target: Target| {
            let (mut rows, skipped) = from_log(log.as_bytes(), target, t(at), None, None).unwrap();
            releases(log.as_bytes(), &mut rows, t(at));
            assert_eq!(skipped, Skipped { lines: 1, first: 3 });
            rows
        };
        let port = Target::Ipv4(Ipv4Addr::new(192, 0, 2, 7), 40123);
        let r = who("2026-11-24T14:02:00Z", port);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].ipv6_prefix, "2001:db8:2::/64");
        assert_eq!(r[0].from.as_deref(), Some("2026-11-24T13:45:00.000Z"));
        assert_eq!(r[0].until.as_deref(), Some("2026-11-24T14:30:00.000Z"));
        assert_eq!(who("2026-11-24T13:10:00Z", port)[0].ipv6_prefix, "2001:db8:1::/64");
        assert!(who("2026-11-24T13:40:00Z", port).is_empty(), "between the two blocks");
        assert!(who("2026-11-24T15:00:00Z", port).is_empty());
        assert!(who("2026-11-24T14:02:00Z", Target::Ipv4(Ipv4Addr::new(192, 0, 2, 7), 39999)).is_empty());
        let client = who("2026-11-24T13:10:00Z", Target::Ipv6("2001:db8:1::9".parse().unwrap()));
        assert_eq!(
            (client[0].ipv4, client[0].port_first, client[0].port_last),
            (Ipv4Addr::new(192, 0, 2, 7), 40000, 40511)
        );
    }
}
