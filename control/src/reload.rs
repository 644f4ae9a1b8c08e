//! Hot reload: read and validate a new configuration, compare it with the
//! running one key by key, and decide what may change live.
//!
//! Every changed key falls in one of three classes:
//! - restart: read once at start (EAL, workers, interfaces: devices, MACs,
//!   VLANs, MTUs, addresses, routes, neighbours; listeners; the set of
//!   instances, their interfaces and table sizes): the reload is refused
//!   with the keys named, the running configuration stays;
//! - dataplane: sent to the workers (`ops::Request::Reload`) and applied
//!   between bursts, all or nothing (instance settings: prefixes, EAMT,
//!   pools, static BIB, timeouts, limits, filtering; RFC 7915 options);
//! - control: applied by the control thread alone (logging).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Document, Host, SessionLog};

/// How a changed key can be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Only by restarting `nat64d`.
    Restart,
    /// By the workers, live.
    Dataplane,
    /// By the control thread, live.
    Control,
}

/// One changed key: its path (`interfaces[0].device`) and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Where in the file.
    pub path: String,
    /// How it can be applied.
    pub class: Class,
}

/// The difference between two configurations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Every changed key, in file order.
    pub changes: Vec<Change>,
}

impl Diff {
    /// Paths of the changes of class `c`.
    pub fn of(&self, c: Class) -> Vec<&str> {
        self.changes.iter().filter(|x| x.class == c).map(|x| x.path.as_str()).collect()
    }
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Compare two configurations (with every default written out, so a key
/// left at its default and one spelled out compare equal).
pub fn diff(old: &Config, new: &Config) -> Diff {
    let (a, b) = (serde_json::to_value(old), serde_json::to_value(new));
    let (Ok(a), Ok(b)) = (a, b) else {
        // Plain data serialises; if it ever did not, be conservative.
        return Diff { changes: vec![Change { path: String::new(), class: Class::Restart }] };
    };
    let mut paths = Vec::new();
    walk(&a, &b, &mut Vec::new(), &mut paths);
    let mut d = Diff {
        changes: paths.into_iter().map(|p| Change { class: classify(&p), path: render(&p) }).collect(),
    };
    // Workers get their event queues at start only when sessions are
    // logged: switching targets is live, switching logging on is not.
    if old.logging.session_log == SessionLog::Off {
        for c in &mut d.changes {
            if c.path == "logging.session_log" {
                c.class = Class::Restart;
            }
        }
    }
    d
}

/// A path segment: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn walk(a: &Value, b: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().collect();
            keys.extend(y.keys().filter(|k| !x.contains_key(*k)));
            for k in keys {
                at.push(Seg::Key(k.clone()));
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => walk(u, v, at, out),
                    _ => out.push(at.clone()),
                }
                at.pop();
            }
        }
        // A list whose length changed is one change: its items shifted.
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                at.push(Seg::Index(i));
                walk(u, v, at, out);
                at.pop();
            }
        }
        _ if a == b => {}
        _ => out.push(at.clone()),
    }
}

fn render(p: &[Seg]) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn key(p: &[Seg], i: usize) -> Option<&str> {
    match p.get(i) {
        Some(Seg::Key(k)) => Some(k),
        _ => None,
    }
}

fn classify(p: &[Seg]) -> Class {
    match key(p, 0) {
        Some("logging") => Class::Control,
        Some("rfc7915") => Class::Dataplane,
        // Ports are opened and named at start; mbufs are sized from the
        // largest MTU; addresses, routes and static neighbours are loaded
        // into each worker's pipeline once (ops::Reload carries instance
        // settings only).
        Some("interfaces") => Class::Restart,
        Some("instances") => match (key(p, 3), key(p, 4)) {
            // Instance order is the index workers know instances by; kind
            // and name identify it; the interfaces pick its ports.
            (None | Some("name" | "ipv6_interface" | "ipv4_interface"), _) => Class::Restart,
            // Tables are allocated once, at start.
            (Some("limits"), Some("max_sessions")) => Class::Restart,
            // Port blocks and deterministic ranges are laid over the slot
            // numbering at start.
            (Some("allocation"), _) => Class::Restart,
            _ => Class::Dataplane,
        },
        // dpdk (EAL, workers), management (listeners), anything new.
        _ => Class::Restart,
    }
}

/// Why a reload was not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Refusal {
    /// The file does not parse or fails validation.
    Invalid {
        /// One line per error, `FILE:LINE:COL: RULE: message`.
        errors: Vec<String>,
    },
    /// Keys changed that only a restart applies.
    NeedsRestart {
        /// The keys.
        keys: Vec<String>,
    },
    /// The workers could not apply it (the running configuration stays).
    Failed {
        /// What went wrong.
        reason: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Invalid { errors } => {
                write!(f, "the new configuration is invalid; the running one stays:")?;
                for e in errors {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
            Refusal::NeedsRestart { keys } => write!(
                f,
                "these keys only change with a restart of nat64d; the running configuration stays: {}",
                keys.join(", ")
            ),
            Refusal::Failed { reason } => {
                write!(f, "the workers could not apply it; the running configuration stays: {reason}")
            }
        }
    }
}

impl Refusal {
    /// The `result` label of `nat64_config_reloads_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Invalid { .. } => "invalid",
            Refusal::NeedsRestart { .. } => "needs_restart",
            Refusal::Failed { .. } => "failed",
        }
    }
}

/// Read `path` and validate it against `host`; on success the new
/// document and its warnings.
pub fn load(path: &std::path::Path, host: &Host) -> Result<(Document, Vec<String>), Refusal> {
    let doc = Document::from_file(path).map_err(|e| Refusal::Invalid { errors: vec![e.to_string()] })?;
    let v = doc.validate(host);
    if !v.errors.is_empty() {
        return Err(Refusal::Invalid { errors: v.errors.iter().map(|e| e.to_string()).collect() });
    }
    Ok((doc, v.warnings.iter().map(|e| e.to_string()).collect()))
}

/// Check a validated new configuration against the running one: the diff,
/// or the refusal when a key needs a restart.
pub fn plan(old: &Config, new: &Config) -> Result<Diff, Refusal> {
    let d = diff(old, new);
    let restart: Vec<String> = d.of(Class::Restart).into_iter().map(String::from).collect();
    if restart.is_empty() {
        Ok(d)
    } else {
        Err(Refusal::NeedsRestart { keys: restart })
    }
}

/// Send every worker its update (`build(w, true)`), in worker order. Each
/// worker applies all of its update or nothing; when one refuses, the
/// workers that already applied get the way back (`build(w, false)`), so
/// all keep running the same configuration, and the refusal is returned.
/// On success: sessions and BIB entries the workers ended.
pub fn apply_all(
    workers: usize,
    build: impl Fn(usize, bool) -> Result<dataplane::ops::Reload, String>,
    send: impl Fn(usize, dataplane::ops::Reload) -> Result<(u64, u64), String>,
) -> Result<(u64, u64), String> {
    // Build everything first: a configuration that cannot be turned into
    // updates reaches no worker.
    let updates = (0..workers).map(|w| build(w, true)).collect::<Result<Vec<_>, _>>()?;
    let (mut sessions, mut bib) = (0, 0);
    for (w, u) in updates.into_iter().enumerate() {
        match send(w, u) {
            Ok((s, b)) => {
                sessions += s;
                bib += b;
            }
            Err(e) => {
                for back in 0..w {
                    if let Err(u) = build(back, false).and_then(|r| send(back, r)) {
                        tracing::error!("worker {back} could not return to the running configuration: {u}");
                    }
                }
                return Err(e);
            }
        }
    }
    Ok((sessions, bib))
}

/// Reload outcomes, as labels of `nat64_config_reloads_total`.
pub const RESULTS: [&str; 4] = ["success", "invalid", "needs_restart", "failed"];

/// The generation counter and reload results, for metrics and the API.
#[derive(Debug)]
pub struct State {
    generation: AtomicU64,
    results: [AtomicU64; RESULTS.len()],
    last_success_unix: AtomicU64,
    last_error: Mutex<Option<String>>,
    ended: [AtomicU64; 2],
}

impl Default for State {
    fn default() -> Self {
        State {
            generation: AtomicU64::new(1),
            results: Default::default(),
            last_success_unix: AtomicU64::new(unix_now()),
            last_error: Mutex::new(None),
            ended: Default::default(),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl State {
    /// The running configuration's generation (1 at start).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
    /// The generation the next successful reload gets.
    pub fn next_generation(&self) -> u64 {
        self.generation() + 1
    }
    /// Record a successful reload: a new generation.
    pub fn succeeded(&self) -> u64 {
        self.results[0].fetch_add(1, Ordering::Relaxed);
        self.last_success_unix.store(unix_now(), Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }
    /// Record a refused reload.
    pub fn refused(&self, r: &Refusal) {
        let i = RESULTS.iter().position(|l| *l == r.label()).unwrap_or(3);
        self.results[i].fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(r.to_string());
        }
    }
    /// Reloads per result label, in [`RESULTS`] order.
    pub fn results(&self) -> [(&'static str, u64); RESULTS.len()] {
        let mut out = [("", 0); RESULTS.len()];
        for (o, (l, c)) in out.iter_mut().zip(RESULTS.iter().zip(&self.results)) {
            *o = (l, c.load(Ordering::Relaxed));
        }
        out
    }
    /// Count sessions and BIB entries an applied reload ended.
    pub fn ended(&self, sessions: u64, bib: u64) {
        self.ended[0].fetch_add(sessions, Ordering::Relaxed);
        self.ended[1].fetch_add(bib, Ordering::Relaxed);
    }
    /// Sessions and BIB entries ended by reloads since start.
    pub fn ended_totals(&self) -> (u64, u64) {
        (self.ended[0].load(Ordering::Relaxed), self.ended[1].load(Ordering::Relaxed))
    }
    /// Unix time of the start or the last successful reload.
    pub fn last_success_unix(&self) -> u64 {
        self.last_success_unix.load(Ordering::Relaxed)
    }
    /// Why the last reload was refused, if the last one was.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
dpdk: { eal_args: ["-l", "0-1"], workers: [1] }
interfaces:
  - name: in
    device: net_null0
    role: ipv6
    ipv6: ["2001:db8:1::1/64"]
  - name: out
    device: net_null1
    role: ipv4
    ipv4: ["192.0.2.1/29"]
instances:
  - nat64:
      name: plat
      pool6: 2001:db8:64::/96
      pool4: [ { prefix: 203.0.113.0/29 } ]
      timeouts: { udp: 300 }
  - siit:
      name: dc
      pool6: 2001:db8:46::/96
"#;

    fn cfg(text: &str) -> Config {
        Config::from_str(text, "t.yaml").expect("parses")
    }

    fn edited(from: &str, to: &str) -> Config {
        assert!(BASE.contains(from), "{from}");
        cfg(&BASE.replacen(from, to, 1))
    }

    #[test]
    fn identical_and_spelled_out_defaults_do_not_differ() {
        let a = cfg(BASE);
        assert!(diff(&a, &a).is_empty());
        // udp: 300 is the default: writing it or not is the same thing.
        let b = edited("      timeouts: { udp: 300 }\n", "");
        assert!(diff(&a, &b).is_empty(), "{:?}", diff(&a, &b));
    }

    #[test]
    fn pool_and_timeout_changes_are_live() {
        let a = cfg(BASE);
        let b = edited("prefix: 203.0.113.0/29", "prefix: 203.0.113.8/29");
        let d = plan(&a, &b).expect("live");
        assert_eq!(d.of(Class::Dataplane), vec!["instances[0].nat64.pool4[0].prefix"]);
        let b = edited("udp: 300", "udp: 120");
        assert_eq!(plan(&a, &b).unwrap().of(Class::Dataplane), vec!["instances[0].nat64.timeouts.udp"]);
        // A pool4 entry added: the list changed length, one change.
        let b = edited("{ prefix: 203.0.113.0/29 }", "{ prefix: 203.0.113.0/29 }, { prefix: 203.0.113.9 }");
        assert_eq!(plan(&a, &b).unwrap().of(Class::Dataplane), vec!["instances[0].nat64.pool4"]);
        // An optional key appearing is named by its own path.
        let b = edited("      name: dc\n", "      name: dc\n      pool6791_v4: 192.0.2.4/30\n");
        assert_eq!(plan(&a, &b).unwrap().of(Class::Dataplane), vec!["instances[1].siit.pool6791_v4"]);
    }

    #[test]
    fn logging_changes_are_control_only() {
        let a = cfg(BASE);
        let b = cfg(&format!("{BASE}logging: {{ level: debug }}\n"));
        let d = plan(&a, &b).unwrap();
        assert_eq!(d.of(Class::Control), vec!["logging.level"]);
        assert!(d.of(Class::Dataplane).is_empty());
        // Session logging: on needs the workers' queues (restart); once
        // on, another target or off is live.
        let on = cfg(&format!("{BASE}logging: {{ session_log: /var/log/a.log }}\n"));
        let e = plan(&a, &on).unwrap_err();
        assert_eq!(e, Refusal::NeedsRestart { keys: vec!["logging.session_log".into()] });
        let other = cfg(&format!("{BASE}logging: {{ session_log: stdout }}\n"));
        assert_eq!(plan(&on, &other).unwrap().of(Class::Control), vec!["logging.session_log"]);
        assert_eq!(plan(&on, &a).unwrap().of(Class::Control), vec!["logging.session_log"]);
    }

    #[test]
    fn devices_workers_macs_vlans_and_instance_sets_need_a_restart() {
        let a = cfg(BASE);
        let cases = [
            ("device: net_null1", "device: net_null2", "interfaces[1].device"),
            ("workers: [1]", "workers: [0]", "dpdk.workers[0]"),
            ("\"0-1\"", "\"0-3\"", "dpdk.eal_args[1]"),
            ("    role: ipv4\n", "    role: ipv4\n    mac: \"02:00:00:00:00:01\"\n", "interfaces[1].mac"),
            ("    role: ipv4\n", "    role: ipv4\n    vlan: 7\n", "interfaces[1].vlan"),
            ("name: dc", "name: dc2", "instances[1].siit.name"),
            (
                "      timeouts: { udp: 300 }\n",
                "      limits: { max_sessions: 1000 }\n",
                "instances[0].nat64.limits.max_sessions",
            ),
            (
                "      timeouts: { udp: 300 }\n",
                "      allocation: { mode: blocks }\n",
                "instances[0].nat64.allocation",
            ),
        ];
        for (from, to, key) in cases {
            match plan(&a, &edited(from, to)) {
                Err(Refusal::NeedsRestart { keys }) => assert_eq!(keys, vec![key.to_string()], "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
        // Removing an instance changes the list's length.
        let b = edited("  - siit:\n      name: dc\n      pool6: 2001:db8:46::/96\n", "");
        assert_eq!(plan(&a, &b), Err(Refusal::NeedsRestart { keys: vec!["instances".into()] }));
        let msg = plan(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("restart") && msg.contains("instances"), "{msg}");
    }

    #[test]
    fn a_refusing_worker_sends_the_others_back() {
        use dataplane::ops::Reload;
        use std::cell::RefCell;
        let sent = RefCell::new(Vec::new());
        let build = |w: usize, fwd: bool| -> Result<Reload, String> {
            Ok(Reload { generation: if fwd { 2 } else { 1 } + 10 * w as u64, instances: Vec::new() })
        };
        // Worker 2 of 3 refuses: 0 and 1 applied and are sent back.
        let send = |w: usize, r: Reload| {
            sent.borrow_mut().push((w, r.generation));
            if w == 2 {
                Err("worker 2 refused: no".to_string())
            } else {
                Ok((1, 0))
            }
        };
        assert_eq!(apply_all(3, build, send), Err("worker 2 refused: no".into()));
        assert_eq!(*sent.borrow(), vec![(0, 2), (1, 12), (2, 22), (0, 1), (1, 11)]);
        sent.borrow_mut().clear();
        assert_eq!(apply_all(3, build, |w, r| send(w.min(1), r)), Ok((3, 0)));
        // An update that cannot be built reaches no worker.
        sent.borrow_mut().clear();
        let bad = |w: usize, _| if w == 1 { Err("bad".to_string()) } else { build(w, true) };
        assert_eq!(apply_all(3, bad, send), Err("bad".into()));
        assert!(sent.borrow().is_empty());
    }

    #[test]
    fn state_counts_results_and_generations() {
        let s = State::default();
        assert_eq!(s.generation(), 1);
        s.refused(&Refusal::Invalid { errors: vec!["x: bad".into()] });
        s.refused(&Refusal::NeedsRestart { keys: vec!["dpdk.workers".into()] });
        assert_eq!(s.generation(), 1);
        assert!(s.last_error().unwrap().contains("dpdk.workers"));
        assert_eq!(s.succeeded(), 2);
        assert_eq!(s.last_error(), None);
        let r = s.results();
        assert_eq!(r, [("success", 1), ("invalid", 1), ("needs_restart", 1), ("failed", 0)]);
    }

    #[test]
    fn load_refuses_invalid_files_with_positions() {
        let dir = std::env::temp_dir().join(format!("nat64-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.yaml");
        std::fs::write(&p, BASE.replace("2001:db8:64::/96", "2001:db8:64::/97")).unwrap();
        let host = Host { online_lcores: None, pci_devices: None };
        match load(&p, &host) {
            Err(Refusal::Invalid { errors }) => {
                assert!(errors.iter().any(|e| e.contains("rfc6052-prefix-length")), "{errors:?}")
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, BASE).unwrap();
        assert!(load(&p, &host).is_ok());
        std::fs::write(&p, "interfaces: [").unwrap();
        assert!(matches!(load(&p, &host), Err(Refusal::Invalid { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
