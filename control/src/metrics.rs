//! Prometheus metrics: one collector that reads the workers' published
//! counters, the ports, the mbuf pool and the NAT64 tables at scrape time.
//! Nothing is counted per packet here: workers keep their own counters and
//! publish them with plain stores; a scrape sums nothing, it labels each
//! worker's value (`worker="0"`) and lets PromQL sum.
//!
//! Names: `nat64_` prefix, base units (seconds, bytes, bits per second),
//! `_total` for counters. docs/metrics.md lists every family.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dataplane::nat64::DropReason as Nat64Drop;
use dataplane::nat64::{ImportError, TcpState};
use dataplane::ops::Proto;
use dataplane::pipeline::{PipeDrop, Stats, XLATE_DROPS};
use dataplane::xlate::DropReason as XlateDrop;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::api::service::{Control, Plane};

use MetricType::{COUNTER, GAUGE};

/// Every family the collector emits: name, help, type, label names.
pub const FAMILIES: &[(&str, &str, MetricType, &[&str])] = &[
    ("nat64_build_info", "Build of nat64d (value 1).", GAUGE, &["version"]),
    ("nat64_start_time_seconds", "Unix time nat64d started.", GAUGE, &[]),
    ("nat64_ready", "1 when every port is up and every worker polls (what /readyz says).", GAUGE, &[]),
    ("nat64_config_generation", "Generation of the running configuration (1 at start, +1 per applied reload).", GAUGE, &[]),
    ("nat64_config_reloads_total", "Reload attempts by result.", COUNTER, &["result"]),
    ("nat64_config_reload_ended_sessions_total", "Sessions ended by reloads (their pool4 address or static BIB entry went away).", COUNTER, &[]),
    ("nat64_config_reload_ended_bib_total", "BIB entries ended by reloads.", COUNTER, &[]),
    ("nat64_config_last_reload_success_timestamp_seconds", "Unix time of the start or the last applied reload.", GAUGE, &[]),
    ("nat64_worker_heartbeat_age_seconds", "Time since the worker's last loop round.", GAUGE, &["worker"]),
    ("nat64_received_packets_total", "Frames received by the worker.", COUNTER, &["worker"]),
    ("nat64_transmitted_packets_total", "Frames the worker handed to the NIC.", COUNTER, &["worker"]),
    ("nat64_translated_packets_total", "Packets translated, by direction (ipv6_to_ipv4, ipv4_to_ipv6).", COUNTER, &["worker", "direction"]),
    ("nat64_translated_protocol_packets_total", "Packets translated, by direction and protocol.", COUNTER, &["worker", "direction", "protocol"]),
    ("nat64_translated_protocol_bytes_total", "Bytes translated, by direction and protocol.", COUNTER, &["worker", "direction", "protocol"]),
    ("nat64_handoff_packets_total", "IPv4 packets handed to the worker owning their pool4 slice (sent) or taken from other workers (received).", COUNTER, &["worker", "kind"]),
    ("nat64_pipeline_packets_total", "Other pipeline events by counter (hairpins, ICMP errors, ARP/ND, echo replies, held SYNs, ...).", COUNTER, &["worker", "counter"]),
    ("nat64_dropped_packets_total", "Packets dropped, by stage (pipeline, xlate, worker) and reason.", COUNTER, &["worker", "stage", "reason"]),
    ("nat64_session_refusals_total", "Packets the stateful engine refused, by reason.", COUNTER, &["worker", "instance", "reason"]),
    ("nat64_sessions", "Live sessions.", GAUGE, &["worker", "instance"]),
    ("nat64_session_capacity", "Session table size.", GAUGE, &["worker", "instance"]),
    ("nat64_bib_entries", "Live BIB entries.", GAUGE, &["worker", "instance"]),
    ("nat64_sessions_by_state", "Live sessions by protocol and TCP state (RFC 6146 §3.5.2; empty for UDP/ICMP).", GAUGE, &["worker", "instance", "protocol", "state"]),
    ("nat64_bib_entries_by_protocol", "Live BIB entries by protocol.", GAUGE, &["worker", "instance", "protocol"]),
    ("nat64_held_syns", "Unsolicited IPv4 SYNs held (RFC 6146 §3.5.2.2).", GAUGE, &["worker", "instance"]),
    ("nat64_table_memory_bytes", "Memory of the NAT64 tables.", GAUGE, &["worker", "instance"]),
    ("nat64_sessions_created_total", "Sessions created, by protocol.", COUNTER, &["worker", "instance", "protocol"]),
    ("nat64_sessions_expired_total", "Sessions expired by the timer, by protocol.", COUNTER, &["worker", "instance", "protocol"]),
    ("nat64_sessions_flushed_total", "Sessions ended by an operator or a reload.", COUNTER, &["worker", "instance"]),
    ("nat64_bib_created_total", "BIB entries created.", COUNTER, &["worker", "instance"]),
    ("nat64_bib_deleted_total", "BIB entries deleted.", COUNTER, &["worker", "instance"]),
    ("nat64_syn_held_total", "IPv4 SYNs held.", COUNTER, &["worker", "instance"]),
    ("nat64_port_collisions_total", "Port allocation attempts that hit a busy port.", COUNTER, &["worker", "instance"]),
    ("nat64_session_events_dropped_total", "Session log events lost because the worker's queue was full.", COUNTER, &["worker", "instance"]),
    ("nat64_port_blocks", "Port blocks of the worker (allocation mode blocks), by protocol and state (in_use, total).", GAUGE, &["worker", "instance", "protocol", "state"]),
    ("nat64_port_blocks_allocated_total", "Port blocks given to clients.", COUNTER, &["worker", "instance"]),
    ("nat64_port_blocks_released_total", "Port blocks returned to the pool.", COUNTER, &["worker", "instance"]),
    ("nat64_pool4_ports", "Ports (ICMP identifiers) of a pool4 address per protocol.", GAUGE, &["instance", "address", "protocol"]),
    ("nat64_pool4_ports_in_use", "Ports of a pool4 address bound to a BIB entry, per protocol.", GAUGE, &["instance", "address", "protocol"]),
    ("nat64_session_log_records_total", "Session log records by result (written, write_failed).", COUNTER, &["result"]),
    ("nat64_sync_batches_total", "Session sync datagrams carrying sessions, sent and accepted (direction).", COUNTER, &["direction"]),
    ("nat64_sync_sessions_total", "Session records sent to the peers, and received and handed to a worker (direction).", COUNTER, &["direction"]),
    ("nat64_sync_rejected_total", "Sync datagrams refused, by reason (malformed, forged, replayed, stale, unknown_instance); none changes a table.", COUNTER, &["reason"]),
    ("nat64_sync_sessions_rejected_total", "Received session records refused: not_owned (no worker here owns the mapping) or what a worker's import refused (conflict, table full, ...).", COUNTER, &["worker", "instance", "reason"]),
    ("nat64_sync_sessions_imported_total", "Received session records a worker applied.", COUNTER, &["worker", "instance"]),
    ("nat64_sync_sessions_replaced_total", "Sessions of synced copies ended because the peer's record bound their mapping or client anew (a deletion was lost).", COUNTER, &["worker", "instance"]),
    ("nat64_sync_dropped_total", "Session changes dropped: queue_full (a worker's queue; repaired by a resync), mailbox_full (received, not delivered).", COUNTER, &["cause"]),
    ("nat64_sync_send_errors_total", "Sync datagrams the socket did not send.", COUNTER, &[]),
    ("nat64_sync_resyncs_total", "Bulk resyncs by kind: requested, served, received (complete), incomplete (datagrams lost, asked again), repair (after a queue overflow), refresh (periodic walk).", COUNTER, &["kind"]),
    ("nat64_mbufs_in_use", "mbufs handed out (including per-core caches).", GAUGE, &[]),
    ("nat64_mbufs_available", "mbufs free.", GAUGE, &[]),
    ("nat64_port_link_up", "1 when the port's link is up.", GAUGE, &["port"]),
    ("nat64_steering_rules", "NIC flow rules steering IPv4 return traffic to its owner's queue, by port and active steering (flow or software).", GAUGE, &["port", "steering"]),
    ("nat64_port_link_speed_bits_per_second", "Link speed (0: unknown).", GAUGE, &["port"]),
    ("nat64_port_received_packets_total", "Packets the device received.", COUNTER, &["port"]),
    ("nat64_port_transmitted_packets_total", "Packets the device sent.", COUNTER, &["port"]),
    ("nat64_port_received_bytes_total", "Bytes the device received.", COUNTER, &["port"]),
    ("nat64_port_transmitted_bytes_total", "Bytes the device sent.", COUNTER, &["port"]),
    ("nat64_port_rx_missed_packets_total", "Packets the device dropped for lack of RX descriptors.", COUNTER, &["port"]),
    ("nat64_port_rx_errors_total", "Erroneous packets received.", COUNTER, &["port"]),
    ("nat64_port_tx_errors_total", "Failed transmissions.", COUNTER, &["port"]),
    ("nat64_port_rx_nombuf_total", "RX mbuf allocation failures.", COUNTER, &["port"]),
];

/// Families under construction, keyed by name.
struct Out {
    fams: BTreeMap<&'static str, MetricFamily>,
}

impl Out {
    fn new() -> Self {
        Out { fams: BTreeMap::new() }
    }

    fn put(&mut self, name: &'static str, labels: &[(&str, &str)], v: f64) {
        let Some((_, help, ty, names)) = FAMILIES.iter().find(|f| f.0 == name) else {
            debug_assert!(false, "{name} is not in FAMILIES");
            return;
        };
        debug_assert_eq!(names.len(), labels.len(), "{name}");
        let fam = self.fams.entry(name).or_insert_with(|| {
            let mut f = MetricFamily::default();
            f.set_name(name.to_string());
            f.set_help(help.to_string());
            f.set_field_type(*ty);
            f
        });
        let mut m = Metric::from_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name(k.to_string());
                    l.set_value(v.to_string());
                    l
                })
                .collect(),
        );
        if *ty == COUNTER {
            let mut c = Counter::default();
            c.set_value(v);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        }
        fam.mut_metric().push(m);
    }
}

fn direction(scalar: &str) -> Option<(&'static str, &str)> {
    if let Some(r) = scalar.strip_prefix("v6_to_v4") {
        Some(("ipv6_to_ipv4", r))
    } else {
        scalar.strip_prefix("v4_to_v6").map(|r| ("ipv4_to_ipv6", r))
    }
}

fn one(out: &mut Out, w: &str, name: &str, v: f64) {
    match name {
        "rx" => out.put("nat64_received_packets_total", &[("worker", w)], v),
        "tx" => out.put("nat64_transmitted_packets_total", &[("worker", w)], v),
        n => match direction(n) {
            Some((d, "")) => out.put("nat64_translated_packets_total", &[("worker", w), ("direction", d)], v),
            Some((d, rest)) => {
                let rest = rest.trim_start_matches('_');
                if let Some(p) = rest.strip_suffix("_packets") {
                    let l = [("worker", w), ("direction", d), ("protocol", p)];
                    out.put("nat64_translated_protocol_packets_total", &l, v);
                } else if let Some(p) = rest.strip_suffix("_bytes") {
                    let l = [("worker", w), ("direction", d), ("protocol", p)];
                    out.put("nat64_translated_protocol_bytes_total", &l, v);
                } else {
                    out.put("nat64_pipeline_packets_total", &[("worker", w), ("counter", n)], v);
                }
            }
            None => match n {
                "handoffs" => out.put("nat64_handoff_packets_total", &[("worker", w), ("kind", "sent")], v),
                "handoffs_received" => {
                    out.put("nat64_handoff_packets_total", &[("worker", w), ("kind", "received")], v)
                }
                _ => out.put("nat64_pipeline_packets_total", &[("worker", w), ("counter", n)], v),
            },
        },
    }
}

/// One worker's pipeline scalars as metrics. Known names get their own
/// family; `{direction}_{protocol}_{packets|bytes}` names map by pattern
/// and any other scalar lands in `nat64_pipeline_packets_total`, so
/// counters the dataplane adds later show up without a change here.
fn scalars(out: &mut Out, w: &str, s: &Stats) {
    let mut flat = [0u64; Stats::LEN];
    s.to_array_into(&mut flat);
    for (name, v) in Stats::SCALARS.iter().zip(flat) {
        one(out, w, name, v as f64);
    }
    for (name, v) in Stats::TRANSLATED.iter().zip(s.translated) {
        one(out, w, name, v as f64);
    }
    for r in PipeDrop::ALL {
        let v = s.drop_count(r) as f64;
        out.put(
            "nat64_dropped_packets_total",
            &[("worker", w), ("stage", "pipeline"), ("reason", r.name())],
            v,
        );
    }
    for r in XlateDrop::ALL.iter().take(XLATE_DROPS) {
        let v = s.xlate_drop_count(*r) as f64;
        out.put("nat64_dropped_packets_total", &[("worker", w), ("stage", "xlate"), ("reason", r.name())], v);
    }
}

/// Read everything once and build the families.
pub fn families<P: Plane>(c: &Control<P>) -> Vec<MetricFamily> {
    let mut out = Out::new();
    let unix = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    };
    out.put("nat64_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    out.put("nat64_start_time_seconds", &[], unix(c.started));
    let health = c.health();
    out.put("nat64_ready", &[], f64::from(u8::from(health.ready)));
    out.put("nat64_config_generation", &[], c.reload.generation() as f64);
    for (label, n) in c.reload.results() {
        out.put("nat64_config_reloads_total", &[("result", label)], n as f64);
    }
    out.put("nat64_config_last_reload_success_timestamp_seconds", &[], c.reload.last_success_unix() as f64);
    let (es, eb) = c.reload.ended_totals();
    out.put("nat64_config_reload_ended_sessions_total", &[], es as f64);
    out.put("nat64_config_reload_ended_bib_total", &[], eb as f64);

    for w in 0..c.plane.workers() {
        let v = c.plane.worker(w);
        let ws = w.to_string();
        let wl = ws.as_str();
        if let Some(age) = v.heartbeat_age {
            out.put("nat64_worker_heartbeat_age_seconds", &[("worker", wl)], age.as_secs_f64());
        }
        scalars(&mut out, wl, &v.stats);
        out.put(
            "nat64_dropped_packets_total",
            &[("worker", wl), ("stage", "worker"), ("reason", "tx_full")],
            v.tx_dropped as f64,
        );
        out.put(
            "nat64_dropped_packets_total",
            &[("worker", wl), ("stage", "worker"), ("reason", "rx_multiseg")],
            v.rx_multiseg as f64,
        );
    }

    let sync_on = c.config().sync.is_some();
    let stats = c.nat64_stats();
    for (w, s) in &stats {
        let ws = w.to_string();
        let inst = c.instance_name(s.instance);
        let l: [(&str, &str); 2] = [("worker", &ws), ("instance", &inst)];
        let k = &s.counters;
        out.put("nat64_sessions", &l, s.sessions as f64);
        out.put("nat64_session_capacity", &l, f64::from(s.capacity));
        out.put("nat64_bib_entries", &l, k.bib_live as f64);
        out.put("nat64_held_syns", &l, f64::from(s.held_syns));
        out.put("nat64_table_memory_bytes", &l, s.memory_bytes as f64);
        for p in Proto::ALL {
            let lp = [l[0], l[1], ("protocol", p.name())];
            out.put("nat64_sessions_created_total", &lp, k.sessions_created[p as usize] as f64);
            out.put("nat64_sessions_expired_total", &lp, k.sessions_expired[p as usize] as f64);
            out.put("nat64_bib_entries_by_protocol", &lp, k.bib_live_by_proto[p as usize] as f64);
            if k.blocks_total[p as usize] > 0 {
                let ls = |st| [l[0], l[1], ("protocol", p.name()), ("state", st)];
                out.put("nat64_port_blocks", &ls("in_use"), k.blocks_live[p as usize] as f64);
                out.put("nat64_port_blocks", &ls("total"), k.blocks_total[p as usize] as f64);
            }
            if p != Proto::Tcp {
                let v = k.sessions_live_by_proto[p as usize] as f64;
                out.put("nat64_sessions_by_state", &[l[0], l[1], ("protocol", p.name()), ("state", "")], v);
            }
        }
        // RFC 6146 §3.5.2 states; CLOSED is never stored.
        for (i, v) in k.tcp_states.iter().enumerate().skip(1) {
            let st = TcpState::from_u8(i as u8).name();
            out.put("nat64_sessions_by_state", &[l[0], l[1], ("protocol", "tcp"), ("state", st)], *v as f64);
        }
        out.put("nat64_sessions_flushed_total", &l, k.sessions_flushed as f64);
        out.put("nat64_bib_created_total", &l, k.bib_created as f64);
        out.put("nat64_bib_deleted_total", &l, k.bib_deleted as f64);
        out.put("nat64_syn_held_total", &l, k.syn_held as f64);
        out.put("nat64_port_collisions_total", &l, k.port_collisions as f64);
        out.put("nat64_session_events_dropped_total", &l, k.events_dropped as f64);
        out.put("nat64_port_blocks_allocated_total", &l, k.blocks_allocated as f64);
        out.put("nat64_port_blocks_released_total", &l, k.blocks_released as f64);
        for r in Nat64Drop::ALL {
            out.put("nat64_session_refusals_total", &[l[0], l[1], ("reason", r.name())], k.refused(r) as f64);
        }
        if sync_on {
            out.put("nat64_sync_sessions_imported_total", &l, k.sync_imported as f64);
            out.put("nat64_sync_sessions_replaced_total", &l, k.sync_replaced as f64);
            for r in ImportError::ALL {
                let v = k.sync_refused[r as usize] as f64;
                out.put("nat64_sync_sessions_rejected_total", &[l[0], l[1], ("reason", r.name())], v);
            }
        }
    }
    for r in c.pool4_rows(&stats) {
        let a = r.address.to_string();
        let l =
            [("instance", r.instance.as_str()), ("address", a.as_str()), ("protocol", r.protocol.as_str())];
        out.put("nat64_pool4_ports", &l, f64::from(r.total));
        out.put("nat64_pool4_ports_in_use", &l, f64::from(r.in_use));
    }

    let sl = &c.session_log;
    use std::sync::atomic::Ordering::Relaxed;
    out.put("nat64_session_log_records_total", &[("result", "written")], sl.written.load(Relaxed) as f64);
    out.put(
        "nat64_session_log_records_total",
        &[("result", "write_failed")],
        sl.write_failed.load(Relaxed) as f64,
    );

    if sync_on {
        sync(&mut out, &c.sync);
    }

    if let Some(m) = c.plane.mbufs() {
        out.put("nat64_mbufs_in_use", &[], m.in_use as f64);
        out.put("nat64_mbufs_available", &[], m.available as f64);
    }
    for p in c.plane.ports() {
        let l = [("port", p.name.as_str())];
        out.put("nat64_port_link_up", &l, f64::from(u8::from(p.up)));
        out.put("nat64_port_link_speed_bits_per_second", &l, f64::from(p.speed_mbps) * 1e6);
        out.put("nat64_port_received_packets_total", &l, p.rx_packets as f64);
        out.put("nat64_port_transmitted_packets_total", &l, p.tx_packets as f64);
        out.put("nat64_port_received_bytes_total", &l, p.rx_bytes as f64);
        out.put("nat64_port_transmitted_bytes_total", &l, p.tx_bytes as f64);
        out.put("nat64_port_rx_missed_packets_total", &l, p.rx_missed as f64);
        out.put("nat64_port_rx_errors_total", &l, p.rx_errors as f64);
        out.put("nat64_port_tx_errors_total", &l, p.tx_errors as f64);
        out.put("nat64_port_rx_nombuf_total", &l, p.rx_nombuf as f64);
        if !p.steering.is_empty() {
            let l = [("port", p.name.as_str()), ("steering", p.steering.as_str())];
            out.put("nat64_steering_rules", &l, p.steering_rules as f64);
        }
    }
    out.fams.into_values().collect()
}

fn sync(out: &mut Out, s: &crate::sync::Counters) {
    use std::sync::atomic::Ordering::Relaxed;
    let v = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
    out.put("nat64_sync_batches_total", &[("direction", "sent")], v(&s.batches_sent));
    out.put("nat64_sync_batches_total", &[("direction", "received")], v(&s.batches_received));
    out.put("nat64_sync_sessions_total", &[("direction", "sent")], v(&s.sessions_sent));
    out.put("nat64_sync_sessions_total", &[("direction", "received")], v(&s.sessions_received));
    for r in crate::sync::wire::Reject::ALL {
        out.put("nat64_sync_rejected_total", &[("reason", r.name())], s.rejected(r) as f64);
    }
    let not_owned = [("worker", ""), ("instance", ""), ("reason", "not_owned")];
    out.put("nat64_sync_sessions_rejected_total", &not_owned, v(&s.sessions_not_owned));
    out.put("nat64_sync_dropped_total", &[("cause", "queue_full")], v(&s.dropped_queue_full));
    out.put("nat64_sync_dropped_total", &[("cause", "mailbox_full")], v(&s.dropped_mailbox_full));
    out.put("nat64_sync_send_errors_total", &[], v(&s.send_errors));
    for (kind, a) in [
        ("requested", &s.resync_requested),
        ("served", &s.resync_served),
        ("received", &s.resync_received),
        ("incomplete", &s.resync_incomplete),
        ("repair", &s.resync_repair),
        ("refresh", &s.refresh_walks),
    ] {
        out.put("nat64_sync_resyncs_total", &[("kind", kind)], v(a));
    }
}

/// The collector: registered once, reads everything at each scrape.
pub struct Nat64Collector<P> {
    control: Arc<Control<P>>,
    descs: Vec<Desc>,
}

impl<P: Plane> Nat64Collector<P> {
    /// A collector over `control`.
    pub fn new(control: Arc<Control<P>>) -> Self {
        let descs = FAMILIES
            .iter()
            .filter_map(|(n, h, _, l)| {
                Desc::new(
                    n.to_string(),
                    h.to_string(),
                    l.iter().map(|s| s.to_string()).collect(),
                    HashMap::new(),
                )
                .ok()
            })
            .collect();
        Nat64Collector { control, descs }
    }
}

impl<P: Plane + 'static> Collector for Nat64Collector<P> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }
    fn collect(&self) -> Vec<MetricFamily> {
        families(&self.control)
    }
}

/// A registry with the collector in it.
pub fn registry<P: Plane + 'static>(control: Arc<Control<P>>) -> prometheus::Result<Registry> {
    let r = Registry::new();
    r.register(Box::new(Nat64Collector::new(control)))?;
    Ok(r)
}

/// The text exposition of everything `r` gathers.
pub fn render(r: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&r.gather(), &mut buf) {
        tracing::warn!("metrics encoding: {e}");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::service::tests::{control, Fake};
    use std::path::PathBuf;

    fn scrape() -> (String, prometheus_parse::Scrape) {
        let c = Arc::new(control(Fake::default(), PathBuf::from("/nonexistent")));
        let r = registry(c).unwrap();
        let text = render(&r);
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        (text, parsed)
    }

    fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        s.samples
            .iter()
            .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    }

    #[test]
    fn scrape_parses_and_carries_the_workers_counters() {
        let (text, s) = scrape();
        assert_eq!(value(&s, "nat64_received_packets_total", &[("worker", "1")]), Some(11.0));
        assert_eq!(
            value(&s, "nat64_translated_packets_total", &[("worker", "0"), ("direction", "ipv6_to_ipv4")]),
            Some(4.0)
        );
        let no_route = [("worker", "0"), ("stage", "pipeline"), ("reason", "no_route")];
        assert_eq!(value(&s, "nat64_dropped_packets_total", &no_route), Some(1.0));
        let x0 = [("worker", "1"), ("stage", "xlate"), ("reason", XlateDrop::ALL[0].name())];
        assert_eq!(value(&s, "nat64_dropped_packets_total", &x0), Some(1.0));
        assert_eq!(value(&s, "nat64_sessions", &[("worker", "1"), ("instance", "plat")]), Some(3.0));
        assert_eq!(value(&s, "nat64_config_generation", &[]), Some(1.0));
        assert_eq!(value(&s, "nat64_config_reloads_total", &[("result", "invalid")]), Some(0.0));
        assert_eq!(value(&s, "nat64_mbufs_in_use", &[]), Some(100.0));
        assert_eq!(value(&s, "nat64_port_link_up", &[("port", "net_null1")]), Some(1.0));
        let steer = [("port", "net_null1"), ("steering", "flow")];
        assert_eq!(value(&s, "nat64_steering_rules", &steer), Some(2.0));
        // A port without IPv4 has no steering series.
        assert!(!text.contains("nat64_steering_rules{port=\"net_null0\""), "{text}");
        assert_eq!(value(&s, "nat64_port_received_packets_total", &[("port", "net_null0")]), Some(5.0));
        assert_eq!(value(&s, "nat64_ready", &[]), Some(1.0));
        let p = [("instance", "plat"), ("address", "203.0.113.1"), ("protocol", "tcp")];
        assert_eq!(value(&s, "nat64_pool4_ports_in_use", &p), Some(1.0));
        assert_eq!(value(&s, "nat64_pool4_ports", &p), Some(10.0));
        // Fake: per worker two TCP sessions established, one UDP.
        let est = [("worker", "0"), ("instance", "plat"), ("protocol", "tcp"), ("state", "established")];
        assert_eq!(value(&s, "nat64_sessions_by_state", &est), Some(2.0));
        let udp = [("worker", "1"), ("protocol", "udp"), ("state", "")];
        assert_eq!(value(&s, "nat64_sessions_by_state", &udp), Some(1.0));
        let b = [("worker", "1"), ("instance", "plat"), ("protocol", "tcp")];
        assert_eq!(value(&s, "nat64_bib_entries_by_protocol", &b), Some(1.0));
        let blk = |st| [("worker", "1"), ("instance", "plat"), ("protocol", "udp"), ("state", st)];
        assert_eq!(value(&s, "nat64_port_blocks", &blk("in_use")), Some(2.0));
        assert_eq!(value(&s, "nat64_port_blocks", &blk("total")), Some(8.0));
        assert_eq!(value(&s, "nat64_port_blocks", &[("protocol", "tcp")]), None, "no blocks: not exported");
        assert_eq!(value(&s, "nat64_port_blocks_allocated_total", &[("worker", "0")]), Some(5.0));
        assert_eq!(value(&s, "nat64_port_blocks_released_total", &[("worker", "0")]), Some(3.0));
        let closed = [("protocol", "tcp"), ("state", "closed")];
        assert_eq!(value(&s, "nat64_sessions_by_state", &closed), None, "never stored");
        // Types and naming rules.
        assert!(text.contains("# TYPE nat64_received_packets_total counter"));
        assert!(text.contains("# TYPE nat64_sessions gauge"));
        for (name, _, ty, _) in FAMILIES {
            assert!(name.starts_with("nat64_"), "{name}");
            assert_eq!(
                *ty == COUNTER,
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
        }
    }

    #[test]
    fn new_scalars_map_by_pattern() {
        let mut out = Out::new();
        let mut st = Stats { v4_to_v6: 3, handoffs: 2, ..Stats::default() };
        st.translated[1] = 7; // v6_to_v4_udp_packets
        scalars(&mut out, "0", &st);
        let f = &out.fams["nat64_translated_packets_total"];
        assert_eq!(f.get_metric().len(), 2, "both directions");
        let p = &out.fams["nat64_translated_protocol_packets_total"];
        let udp = p.get_metric().iter().find(|m| {
            m.get_label().iter().any(|l| l.value() == "udp")
                && m.get_label().iter().any(|l| l.value() == "ipv6_to_ipv4")
        });
        assert_eq!(udp.unwrap().get_counter().get_value(), 7.0);
        assert_eq!(out.fams["nat64_translated_protocol_bytes_total"].get_metric().len(), 8);
        let h = &out.fams["nat64_handoff_packets_total"];
        assert!(h.get_metric().iter().any(|m| m.get_counter().get_value() == 2.0));
        assert_eq!(direction("v6_to_v4_tcp_bytes"), Some(("ipv6_to_ipv4", "_tcp_bytes")));
        assert_eq!(direction("rx"), None);
        assert!(out.fams["nat64_pipeline_packets_total"]
            .get_metric()
            .iter()
            .any(|m| m.get_label().iter().any(|l| l.value() == "hairpins")));
    }
}
