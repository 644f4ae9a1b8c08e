//! deploy/monitoring against the real nat64d: every metric the alert rules
//! and the Grafana dashboard use exists in a live /metrics scrape, with the
//! labels and label values they match on. With promtool installed, the
//! scrape configuration, the rules and their unit tests
//! (nat64-alerts.test.yml) and every dashboard query are checked by it too.

#[path = "deploy_common.rs"]
mod common;

use common::{eal_args, repo, Daemon};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

/// Labels Prometheus adds (target labels), and the one prometheus.yml
/// renames: `nat64_instance` is nat64d's own `instance`.
const TARGET_LABELS: [&str; 3] = ["job", "instance", "site"];
const RENAMED: (&str, &str) = ("nat64_instance", "instance");

/// A PromQL selector's matcher: label, operator, value.
#[derive(Debug, Clone, PartialEq)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// What the queries use: metric -> matchers, and every `by (...)` label.
#[derive(Debug, Default)]
struct Uses {
    metrics: BTreeMap<String, Vec<Matcher>>,
    grouping: BTreeSet<String>,
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Pull metric names, their matchers and grouping labels out of one PromQL
/// expression. Not a PromQL parser: enough for selectors `name{l="v",...}`
/// and `by (a, b)` clauses, which is all the rules and dashboard use.
fn scan(expr: &str, uses: &mut Uses) {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            in_string = !in_string;
            i += 1;
            continue;
        }
        if in_string || !(c.is_ascii_alphabetic() || c == '_') || (i > 0 && ident_char(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident_char(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if (word == "by" || word == "without") && j < chars.len() && chars[j] == '(' {
            let end = j + chars[j..].iter().position(|&c| c == ')').expect("closing parenthesis");
            let inner: String = chars[j + 1..end].iter().collect();
            uses.grouping.extend(inner.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
            i = end + 1;
            continue;
        }
        if !word.starts_with("nat64_") || word == RENAMED.0 {
            continue;
        }
        let mut matchers = Vec::new();
        if j < chars.len() && chars[j] == '{' {
            let end = j + chars[j..].iter().position(|&c| c == '}').expect("closing brace");
            let inner: String = chars[j + 1..end].iter().collect();
            for m in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let op_at = m.find(['=', '!']).unwrap_or_else(|| panic!("matcher {m:?} in {expr}"));
                let rest = &m[op_at..];
                let op_len = if rest.starts_with("=~") || rest.starts_with("!~") || rest.starts_with("!=") {
                    2
                } else {
                    1
                };
                let value = rest[op_len..].trim().trim_matches('"').to_string();
                matchers.push(Matcher {
                    label: m[..op_at].trim().to_string(),
                    op: rest[..op_len].to_string(),
                    value,
                });
            }
            i = end + 1;
        }
        uses.metrics.entry(word).or_default().extend(matchers);
    }
}

/// Every `expr`/`query` string in a JSON document (the dashboard).
fn json_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => json_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_exprs(v, out)),
        _ => {}
    }
}

fn rule_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("deploy/monitoring/nat64-alerts.yml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = Vec::new();
    for g in doc["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            out.push((r["alert"].as_str().unwrap().to_string(), r["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/monitoring/grafana-nat64d.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    json_exprs(&doc, &mut out);
    out
}

#[test]
fn the_scanner_finds_what_queries_use() {
    let mut u = Uses::default();
    scan(
        r#"sum by (job, nat64_instance) (rate(nat64_x_total{job="nat64d", reason!~"a|b"}[5m])) / nat64_y"#,
        &mut u,
    );
    assert_eq!(u.metrics.keys().collect::<Vec<_>>(), ["nat64_x_total", "nat64_y"]);
    assert_eq!(
        u.metrics["nat64_x_total"],
        [
            Matcher { label: "job".into(), op: "=".into(), value: "nat64d".into() },
            Matcher { label: "reason".into(), op: "!~".into(), value: "a|b".into() },
        ]
    );
    assert_eq!(u.grouping, BTreeSet::from(["job".to_string(), "nat64_instance".to_string()]));
}

#[test]
fn the_required_alerts_exist() {
    let names: Vec<String> = rule_exprs().into_iter().map(|(n, _)| n).collect();
    for a in ["Nat64dDown", "Nat64dNotReady", "Nat64Pool4Above90Percent", "Nat64DropsRising"] {
        assert!(names.iter().any(|n| n == a), "{a} missing from {names:?}");
    }
    let e = rule_exprs();
    let pool = &e.iter().find(|(n, _)| n == "Nat64Pool4Above90Percent").unwrap().1;
    assert!(pool.contains("> 0.9"), "{pool}");
}

/// IPv6 UDP datagrams from four client ports, replayed without end, so the
/// scrape has sessions, BIB entries and pool4 use.
fn write_input(path: &Path) {
    let mut w = PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let src: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:64::c633:6409".parse().unwrap();
    for k in 0..4 {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 6, 2], [2, 0, 0, 0, 6, 1])
            .ipv6(src.octets(), dst.octets(), 64)
            .udp(40000 + k, 53);
        let mut frame = Vec::new();
        b.write(&mut frame, &[0x42; 32]).unwrap();
        w.write_packet(&PcapPacket::new(Duration::ZERO, frame.len() as u32, &frame)).unwrap();
    }
}

fn config(dir: &Path, http: SocketAddr, tag: &str) -> String {
    write_input(&dir.join("in6.pcap"));
    format!(
        r#"dpdk:
  eal_args: {eal}
interfaces:
  - name: v6
    device: "net_pcap_{tag}6,rx_pcap={d}/in6.pcap,infinite_rx=1"
    role: ipv6
    mac: "02:00:00:00:06:01"
    ipv6: ["2001:db8:1::1/64"]
    neighbours: [ {{ ip: "2001:db8:1::10", mac: "02:00:00:00:06:02" }} ]
  - name: v4
    device: "net_null_{tag}4,no-rx=1"
    role: ipv4
    mac: "02:00:00:00:04:01"
    ipv4: ["192.0.2.1/29"]
    neighbours: [ {{ ip: "192.0.2.6", mac: "02:00:00:00:04:02" }} ]
    routes: [ {{ prefix: "0.0.0.0/0", via: "192.0.2.6" }} ]
instances:
  - nat64:
      name: plat
      pool6: "2001:db8:64::/96"
      pool4: [ {{ prefix: "203.0.113.0/30" }} ]
management:
  control_socket: {d}/control.sock
  http_listen: "{http}"
logging:
  session_log: {d}/sessions.log
"#,
        eal = serde_json::to_string(&eal_args(tag)).unwrap(),
        d = dir.display(),
    )
}

#[test]
fn every_metric_the_rules_and_dashboard_use_is_in_a_real_scrape() {
    let mut uses = Uses::default();
    let rules = rule_exprs();
    let dash = dashboard_exprs();
    assert!(rules.len() >= 10 && dash.len() >= 25, "{} rules, {} dashboard queries", rules.len(), dash.len());
    for (_, e) in &rules {
        scan(e, &mut uses);
    }
    for e in &dash {
        scan(e, &mut uses);
    }
    assert!(uses.metrics.len() >= 25, "only {:?}", uses.metrics.keys());

    let tag = format!("dm{}", std::process::id());
    let d = Daemon::start(&tag, |dir, http| config(dir, http, &tag));
    // Wait until the sessions are there, so the table walks are published.
    let t = Instant::now();
    let scrape = loop {
        let body = d.metrics();
        let s = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        let has = |n: &str| s.samples.iter().any(|x| x.metric == n);
        if has("nat64_pool4_ports_in_use")
            && has("nat64_sessions_by_state")
            && has("nat64_worker_heartbeat_age_seconds")
        {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "no sessions in the scrape:\n{body}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    // metric -> label -> values seen.
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for x in &scrape.samples {
        let e = seen.entry(x.metric.as_str()).or_default();
        for (k, v) in x.labels.iter() {
            e.entry(k.as_str()).or_default().insert(v.as_str());
        }
    }
    let all_labels: BTreeSet<&str> = seen.values().flat_map(|l| l.keys().copied()).collect();

    let mut problems = Vec::new();
    for (metric, matchers) in &uses.metrics {
        let Some(labels) = seen.get(metric.as_str()) else {
            problems.push(format!("{metric}: not in the scrape"));
            continue;
        };
        for m in matchers {
            if TARGET_LABELS.contains(&m.label.as_str()) {
                continue;
            }
            let label = if m.label == RENAMED.0 { RENAMED.1 } else { m.label.as_str() };
            let Some(values) = labels.get(label) else {
                problems.push(format!("{metric}: no label {label}"));
                continue;
            };
            if m.value.starts_with('$') {
                continue; // a dashboard variable
            }
            // Plain alternatives must each be a real value (a typo in an
            // excluded reason would silently let it through).
            let wanted: Vec<&str> =
                if m.op.ends_with('~') { m.value.split('|').collect() } else { vec![&m.value] };
            for w in wanted {
                if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !values.contains(w) {
                    problems.push(format!("{metric}: {label} has no value {w:?} (has {values:?})"));
                }
            }
        }
    }
    for g in &uses.grouping {
        let label = if g == RENAMED.0 { RENAMED.1 } else { g.as_str() };
        if !TARGET_LABELS.contains(&g.as_str()) && !all_labels.contains(label) {
            problems.push(format!("by ({g}): no metric has that label"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn promtool() -> Option<&'static str> {
    Command::new("promtool").arg("--version").output().ok().filter(|o| o.status.success()).map(|_| "promtool")
}

#[test]
fn promtool_accepts_the_configuration_rules_and_dashboard_queries() {
    let Some(p) = promtool() else {
        eprintln!("skipped: promtool not installed (Debian package prometheus)");
        return;
    };
    let dir = repo().join("deploy/monitoring");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "nat64-alerts.yml"],
        vec!["test", "rules", "nat64-alerts.test.yml"],
    ] {
        let o = Command::new(p).args(&args).current_dir(&dir).output().unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The dashboard's queries, with Grafana's variables filled in, as
    // recording rules: promtool parses every one.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (k, e) in dashboard_exprs().iter().enumerate() {
        if e.starts_with("label_values(") {
            continue;
        }
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$job", "nat64d")
            .replace("$instance", ".*")
            .replace("$nat64_instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{k}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let tmp = std::env::temp_dir().join(format!("nat64-dashboard-rules-{}.yml", std::process::id()));
    std::fs::write(&tmp, rules).unwrap();
    let o = Command::new(p).args(["check", "rules"]).arg(&tmp).output().unwrap();
    std::fs::remove_file(&tmp).ok();
    assert!(
        o.status.success(),
        "dashboard queries:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
