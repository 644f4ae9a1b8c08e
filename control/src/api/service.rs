//! What the control API, the HTTP views and the metrics answer from: the
//! running configuration, the reload state, and the dataplane seen through
//! [`Plane`] (in `nat64d` the workers' shared blocks, mailboxes, ports and
//! mbuf pool; in tests a stand-in).

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crossbeam::channel::Receiver;
use dataplane::nat64;
use dataplane::ops::{self, BibView, Filter, Nat64Stats, Proto, Request, Response, SessionView};
use dataplane::pipeline::{PipeDrop, Stats, XLATE_DROPS};
use dataplane::xlate::DropReason as XlateDrop;
use serde::Serialize;
use serde_json::{json, Value};

use super::{BibRow, Command, Pool4Row, Query, Reply, SessionRow, DEFAULT_LIMIT};
use crate::config::{Config, Host, Instance, Nat64 as Nat64Config, Protocol};
use crate::reload::{self, Class, Diff, Refusal};
use crate::{lookup, sessionlog};

/// One worker's published state.
#[derive(Debug, Clone, Default)]
pub struct WorkerView {
    /// Pipeline counters.
    pub stats: Stats,
    /// Packets the NIC did not take on TX (freed).
    pub tx_dropped: u64,
    /// Multi-segment packets dropped.
    pub rx_multiseg: u64,
    /// Time since the worker's last loop round (`None`: it never ran).
    pub heartbeat_age: Option<Duration>,
}

/// One port's link and device counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortView {
    /// Device name.
    pub name: String,
    /// Link up.
    pub up: bool,
    /// Link speed in Mbit/s (0: unknown).
    pub speed_mbps: u32,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets the NIC dropped for lack of RX descriptors.
    pub rx_missed: u64,
    /// Erroneous received packets.
    pub rx_errors: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// How IPv4 return traffic on this port reaches its owner: `flow`
    /// (NIC rules), `software` (handoff between workers), or empty for a
    /// port that carries no IPv4.
    pub steering: String,
    /// NIC steering rules installed on the port.
    pub steering_rules: u64,
    /// Why the port uses the software handoff, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_reason: Option<String>,
}

/// The mbuf pool's use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MbufView {
    /// Handed out (including per-lcore caches).
    pub in_use: u64,
    /// Free.
    pub available: u64,
}

/// Refusal of a dataplane change by a plane that cannot apply one.
pub const NO_DATAPLANE_RELOAD: &str =
    "this dataplane cannot apply configuration changes live; restart nat64d to apply";

/// The dataplane as control sees it.
pub trait Plane: Send + Sync {
    /// Number of workers.
    fn workers(&self) -> usize;
    /// Worker `w`'s published counters and heartbeat.
    fn worker(&self, w: usize) -> WorkerView;
    /// Ask worker `w` (bounded wait); `None` when it does not answer.
    fn ask(&self, w: usize, req: Request) -> Option<Response>;
    /// Post a request to worker `w` without waiting; the answer arrives on
    /// the receiver. `None` when the worker's mailbox is full. (Default:
    /// answered synchronously through [`Plane::ask`].)
    fn post(&self, w: usize, req: Request) -> Option<Receiver<Response>> {
        let (tx, rx) = crossbeam::channel::bounded(1);
        tx.send(self.ask(w, req)?).ok()?;
        Some(rx)
    }
    /// Ports, in configuration order.
    fn ports(&self) -> Vec<PortView>;
    /// The mbuf pool.
    fn mbufs(&self) -> Option<MbufView>;
    /// The workers' clock in seconds (what `SessionView::expires_s` uses).
    fn now_s(&self) -> u64;
    /// Apply a validated configuration whose changes are all live ones
    /// (`old` is the running one). Must leave the running state untouched
    /// when it fails. Returns the sessions and BIB entries the workers
    /// ended (their pool4 address or static entry went away).
    fn apply(&self, _old: &Config, _new: &Config, _generation: u64) -> Result<(u64, u64), String> {
        Err(NO_DATAPLANE_RELOAD.into())
    }
}

/// Table-walk steps posted to one worker at once.
pub const WALK_WINDOW: usize = 8;
/// How long a walk waits for one step's answer.
pub const WALK_TIMEOUT: Duration = Duration::from_secs(1);

/// A worker whose heartbeat is older than this is not polling.
pub const STALE: Duration = Duration::from_secs(1);

/// Readiness with its reasons.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The process answers.
    pub alive: bool,
    /// Every port up and every worker polling.
    pub ready: bool,
    /// Why not ready.
    pub problems: Vec<String>,
    /// Configuration generation.
    pub generation: u64,
    /// Per worker: ms since its last loop round.
    pub workers: Vec<Option<u64>>,
    /// Per port: name and link state.
    pub ports: Vec<(String, bool)>,
}

/// What a reload (or a check) did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The file read.
    pub path: PathBuf,
    /// Generation now running (after a reload) or that a reload would give.
    pub generation: u64,
    /// Changed keys and how each is applied.
    pub changes: Diff,
    /// Validation warnings of the new file.
    pub warnings: Vec<String>,
    /// Whether it was applied (false for a check).
    pub applied: bool,
    /// Sessions the workers ended (their mapping left pool4, or their
    /// static BIB entry was removed).
    pub ended_sessions: u64,
    /// BIB entries the workers ended.
    pub ended_bib: u64,
}

type LoggingHook = Box<dyn Fn(&crate::config::Logging) -> Result<(), String> + Send + Sync>;

/// The control plane's state and its answers.
pub struct Control<P> {
    /// The dataplane.
    pub plane: P,
    path: PathBuf,
    pub(crate) running: Mutex<Arc<Config>>,
    /// Generation and reload results.
    pub reload: reload::State,
    reload_lock: Mutex<()>,
    host: Box<dyn Fn() -> Host + Send + Sync>,
    logging: Option<LoggingHook>,
    /// Session log records written and lost.
    pub session_log: Arc<sessionlog::Counts>,
    /// Session sync counters (all zero when sync is off).
    pub sync: Arc<crate::sync::Counters>,
    /// Start time.
    pub started: SystemTime,
}

fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
    }
}

fn parse_v6(s: &str) -> Result<(Ipv6Addr, u8), String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().map_err(|_| format!("bad prefix length in {s:?}"))?),
        None => (s, 128),
    };
    if len > 128 {
        return Err(format!("bad prefix length in {s:?}"));
    }
    let a: Ipv6Addr = a.parse().map_err(|_| format!("{s:?} is not an IPv6 address or prefix"))?;
    Ok((a, len))
}

impl<P: Plane> Control<P> {
    /// Control over `plane`, running `config` read from `path`.
    pub fn new(plane: P, path: PathBuf, config: Config) -> Self {
        Control {
            plane,
            path,
            running: Mutex::new(Arc::new(config)),
            reload: reload::State::default(),
            reload_lock: Mutex::new(()),
            host: Box::new(Host::probe),
            logging: None,
            session_log: Arc::default(),
            sync: Arc::default(),
            started: SystemTime::now(),
        }
    }

    /// Validate reloads against this host description instead of probing.
    pub fn with_host(mut self, host: Host) -> Self {
        self.host = Box::new(move || host.clone());
        self
    }

    /// Call `hook` with the new logging section on each reload.
    pub fn with_logging_hook(mut self, hook: LoggingHook) -> Self {
        self.logging = Some(hook);
        self
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<Config> {
        self.running.lock().map(|c| c.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The file the configuration is read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answer one API command.
    pub fn handle(&self, cmd: Command) -> Reply {
        let r = match cmd {
            Command::Health => return Reply::ok(self.health()),
            Command::Stats => return Reply::ok(self.stats()),
            Command::Sessions(q) => self.sessions(&q).map(|(s, t)| json!({"sessions": s, "truncated": t})),
            Command::Flush(q) => self.flush(&q).map(|n| json!({"flushed": n})),
            Command::Bib(q) => self.bib(&q).map(|(b, t)| json!({"bib": b, "truncated": t})),
            Command::BibAdd { instance, protocol, ipv6, ipv4 } => self
                .bib_change(
                    instance.as_deref(),
                    protocol,
                    Some((ipv6.addr, ipv6.port)),
                    (ipv4.addr, ipv4.port),
                )
                .map(|w| json!({"worker": w})),
            Command::BibDel { instance, protocol, ipv4 } => self
                .bib_change(instance.as_deref(), protocol, None, (ipv4.addr, ipv4.port))
                .map(|w| json!({"worker": w})),
            Command::Pool4 => self.pool4().map(|p| json!({"pool4": p})),
            Command::ConfigShow => Ok(self.config_show()),
            Command::ConfigCheck { path } => {
                self.reload_from(path.as_deref(), false).map(|r| json!(r)).map_err(|e| e.to_string())
            }
            Command::ConfigReload => {
                self.reload_from(None, true).map(|r| json!(r)).map_err(|e| e.to_string())
            }
            Command::Lookup { address, instance } => {
                self.lookup(&address, instance.as_deref()).map(|r| json!({"lookup": r}))
            }
        };
        match r {
            Ok(v) => Reply::ok(v),
            Err(e) => Reply::err(e),
        }
    }

    /// Liveness and readiness: ready when every port's link is up and
    /// every worker polled within [`STALE`].
    pub fn health(&self) -> Health {
        let mut problems = Vec::new();
        let mut workers = Vec::new();
        for w in 0..self.plane.workers() {
            let age = self.plane.worker(w).heartbeat_age;
            match age {
                None => problems.push(format!("worker {w} has not started polling")),
                Some(a) if a > STALE => {
                    problems.push(format!("worker {w} has not polled for {} ms", a.as_millis()))
                }
                _ => {}
            }
            workers.push(age.map(|a| a.as_millis() as u64));
        }
        let ports: Vec<(String, bool)> = self.plane.ports().into_iter().map(|p| (p.name, p.up)).collect();
        for (name, up) in &ports {
            if !up {
                problems.push(format!("port {name} link is down"));
            }
        }
        Health {
            alive: true,
            ready: problems.is_empty(),
            problems,
            generation: self.reload.generation(),
            workers,
            ports,
        }
    }

    /// Pipeline counters summed over workers.
    pub fn totals(&self) -> (Stats, u64, u64) {
        let mut t = Stats::default();
        let (mut txd, mut ms) = (0, 0);
        for w in 0..self.plane.workers() {
            let v = self.plane.worker(w);
            t.add(&v.stats);
            txd += v.tx_dropped;
            ms += v.rx_multiseg;
        }
        (t, txd, ms)
    }

    /// Every worker's NAT64 statistics (workers that do not answer are
    /// left out).
    pub fn nat64_stats(&self) -> Vec<(usize, Nat64Stats)> {
        let mut out = Vec::new();
        for w in 0..self.plane.workers() {
            if let Some(Response::Nat64Stats(v)) = self.plane.ask(w, Request::Nat64Stats) {
                out.extend(v.into_iter().map(|s| (w, s)));
            }
        }
        out
    }

    /// The instance name at configuration index `i`.
    pub fn instance_name(&self, i: usize) -> String {
        self.config().instances.get(i).map(|x| x.name().to_string()).unwrap_or_else(|| i.to_string())
    }

    /// Counters for `nat64ctl stats`: scalars, drops by stage and reason
    /// (zero ones left out), NAT64 tables, ports, mbufs.
    pub fn stats(&self) -> Value {
        let (t, tx_dropped, multiseg) = self.totals();
        let mut flat = [0u64; Stats::LEN];
        t.to_array_into(&mut flat);
        let counters: BTreeMap<&str, u64> = Stats::SCALARS.iter().copied().zip(flat).collect();
        let pipeline: BTreeMap<&str, u64> =
            PipeDrop::ALL.iter().map(|r| (r.name(), t.drop_count(*r))).filter(|x| x.1 > 0).collect();
        let xlate: BTreeMap<&str, u64> = XlateDrop::ALL
            .iter()
            .take(XLATE_DROPS)
            .map(|r| (r.name(), t.xlate_drop_count(*r)))
            .filter(|x| x.1 > 0)
            .collect();
        let mut nat64: BTreeMap<&str, u64> = BTreeMap::new();
        let mut instances: BTreeMap<usize, Value> = BTreeMap::new();
        for (_, s) in self.nat64_stats() {
            for r in nat64::DropReason::ALL {
                *nat64.entry(r.name()).or_default() += s.counters.refused(r);
            }
            let c = &s.counters;
            let e = instances.entry(s.instance).or_insert_with(|| {
                json!({"instance": self.instance_name(s.instance), "sessions": 0, "capacity": 0,
                       "held_syns": 0, "memory_bytes": 0, "bib_entries": 0, "sessions_created": 0,
                       "sessions_expired": 0, "sessions_flushed": 0, "events_dropped": 0})
            });
            for (k, v) in [
                ("sessions", s.sessions),
                ("capacity", u64::from(s.capacity)),
                ("held_syns", u64::from(s.held_syns)),
                ("memory_bytes", s.memory_bytes as u64),
                ("bib_entries", c.bib_live),
                ("sessions_created", c.sessions_created.iter().sum()),
                ("sessions_expired", c.sessions_expired.iter().sum()),
                ("sessions_flushed", c.sessions_flushed),
                ("events_dropped", c.events_dropped),
            ] {
                e[k] = json!(e[k].as_u64().unwrap_or(0) + v);
            }
            // Port-block instances only.
            let total: u64 = c.blocks_total.iter().sum();
            if total > 0 {
                for (k, v) in [("port_blocks_in_use", c.blocks_live.iter().sum()), ("port_blocks", total)] {
                    e[k] = json!(e[k].as_u64().unwrap_or(0) + v);
                }
            }
        }
        nat64.retain(|_, v| *v > 0);
        let mut worker = BTreeMap::new();
        if tx_dropped > 0 {
            worker.insert("tx_full", tx_dropped);
        }
        if multiseg > 0 {
            worker.insert("rx_multiseg", multiseg);
        }
        json!({
            "generation": self.reload.generation(),
            "workers": self.plane.workers(),
            "counters": counters,
            "drops": {"pipeline": pipeline, "xlate": xlate, "nat64": nat64, "worker": worker},
            "nat64": instances.into_values().collect::<Vec<_>>(),
            "ports": self.plane.ports(),
            "mbufs": self.plane.mbufs(),
        })
    }

    /// The running configuration as YAML, with its file and generation.
    pub fn config_show(&self) -> Value {
        json!({"path": self.path, "generation": self.reload.generation(), "yaml": self.config().to_yaml()})
    }

    /// Stateful instances `q` names: (configuration index, name).
    fn stateful(&self, name: Option<&str>) -> Result<Vec<(usize, Nat64Config)>, String> {
        let cfg = self.config();
        let all: Vec<(usize, Nat64Config)> = cfg
            .instances
            .iter()
            .enumerate()
            .filter_map(|(i, x)| match x {
                Instance::Nat64(n) => Some((i, n.clone())),
                Instance::Siit(_) => None,
            })
            .collect();
        match name {
            Some(n) => {
                match cfg.instances.iter().position(|x| x.name() == n) {
                    None => Err(format!("no instance named {n:?}")),
                    Some(_) => all.into_iter().find(|(_, x)| x.name == n).map(|x| vec![x]).ok_or_else(|| {
                        format!("instance {n:?} is stateless (SIIT keeps no sessions or BIB)")
                    }),
                }
            }
            None if all.is_empty() => {
                Err("no stateful NAT64 instance is configured (SIIT keeps no sessions or BIB)".into())
            }
            None => Ok(all),
        }
    }

    fn filter(q: &Query) -> Result<Filter, String> {
        Ok(Filter {
            proto: q.protocol.map(proto),
            v6: q.ipv6.as_deref().map(parse_v6).transpose()?,
            v4: q.ipv4,
        })
    }

    /// Walk one table of every worker for the instances `q` names, in
    /// bounded steps, up to the limit. Returns rows and whether the limit
    /// cut the listing.
    ///
    /// A step visits `ops::STEP` slots from its cursor, so the next cursors
    /// are known in advance: up to [`WALK_WINDOW`] steps are posted at once
    /// (a walk of a million-slot table is 256 steps, and each answer waits
    /// for the worker's next housekeeping round). Answers are taken in
    /// cursor order; if a worker ever answers another next cursor, the walk
    /// goes on one step at a time from the cursor it gave. Steps posted past
    /// the end of the table visit nothing.
    fn walk<T>(
        &self,
        q: &Query,
        ask: impl Fn(usize, Filter, u32) -> Request,
        take: impl Fn(Response) -> Result<(Vec<T>, Option<u32>), String>,
        mut row: impl FnMut(usize, &str, T),
    ) -> Result<bool, String> {
        let filter = Self::filter(q)?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        let mut n = 0usize;
        let gone = |w: usize| format!("worker {w} did not answer (busy or stopped); try again");
        for (i, inst) in self.stateful(q.instance.as_deref())? {
            for w in 0..self.plane.workers() {
                let mut pending: VecDeque<(u32, Receiver<Response>)> = VecDeque::new();
                // The next cursor to post, and whether steps are predictable.
                let mut next_post = Some(0u32);
                let mut ahead = true;
                loop {
                    let window = if ahead { WALK_WINDOW } else { 1 };
                    while pending.len() < window {
                        let Some(c) = next_post else { break };
                        let rx = self.plane.post(w, ask(i, filter, c)).ok_or_else(|| gone(w))?;
                        pending.push_back((c, rx));
                        next_post = if ahead { c.checked_add(ops::STEP) } else { None };
                    }
                    let Some((cursor, rx)) = pending.pop_front() else { break };
                    let resp = rx.recv_timeout(WALK_TIMEOUT).map_err(|_| gone(w))?;
                    let (items, next) = take(resp).map_err(|e| format!("worker {w}: {e}"))?;
                    for it in items {
                        if n >= limit {
                            return Ok(true);
                        }
                        row(w, &inst.name, it);
                        n += 1;
                    }
                    match next {
                        None => break,
                        Some(c) if ahead && Some(c) == cursor.checked_add(ops::STEP) => {}
                        // A cursor that does not move would loop forever.
                        Some(c) if c == cursor => {
                            return Err(format!("worker {w} returned a cursor that does not advance"))
                        }
                        Some(c) => {
                            // Not the step assumed: drop what was posted
                            // ahead and follow the worker's cursors.
                            ahead = false;
                            pending.clear();
                            next_post = Some(c);
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Sessions matching `q`.
    pub fn sessions(&self, q: &Query) -> Result<(Vec<SessionRow>, bool), String> {
        let now = self.plane.now_s() as i64;
        let mut rows = Vec::new();
        let cut = self.walk(
            q,
            |instance, filter, cursor| Request::Sessions { instance, filter, cursor },
            |r| match r {
                Response::Sessions(v, next) => Ok((v, next)),
                Response::Done(Err(e)) => Err(e),
                other => Err(format!("unexpected answer {other:?}")),
            },
            |worker, inst, s: SessionView| {
                rows.push(SessionRow {
                    instance: inst.to_string(),
                    worker,
                    protocol: s.proto.name().into(),
                    state: s.state.map(|t| t.name().into()),
                    ipv6: s.v6.0.to_string(),
                    ipv6_port: s.v6.1,
                    ipv4: s.v4.0.to_string(),
                    ipv4_port: s.v4.1,
                    remote: s.remote.0.to_string(),
                    remote_port: s.remote.1,
                    expires_in_s: i64::from(s.expires_s) - now,
                })
            },
        )?;
        Ok((rows, cut))
    }

    /// End the sessions matching `q` (at least one of protocol, IPv6 or
    /// IPv4 must be given); returns how many the workers ended.
    pub fn flush(&self, q: &Query) -> Result<u64, String> {
        if q.protocol.is_none() && q.ipv6.is_none() && q.ipv4.is_none() {
            return Err(
                "flush needs a filter (protocol, ipv6 or ipv4); ipv6 ::/0 matches every session".into()
            );
        }
        let flushed =
            |c: &Self| -> u64 { c.nat64_stats().iter().map(|(_, s)| s.counters.sessions_flushed).sum() };
        let before = flushed(self);
        self.walk(
            &Query { limit: None, ..q.clone() },
            |instance, filter, cursor| Request::Flush { instance, filter, cursor },
            |r| match r {
                Response::Flushed(next) => Ok((Vec::<()>::new(), next)),
                Response::Done(Err(e)) => Err(e),
                other => Err(format!("unexpected answer {other:?}")),
            },
            |_, _, ()| {},
        )?;
        Ok(flushed(self).saturating_sub(before))
    }

    /// BIB entries matching `q`.
    pub fn bib(&self, q: &Query) -> Result<(Vec<BibRow>, bool), String> {
        let mut rows = Vec::new();
        let cut = self.walk(
            q,
            |instance, filter, cursor| Request::Bib { instance, filter, cursor },
            |r| match r {
                Response::Bib(v, next) => Ok((v, next)),
                Response::Done(Err(e)) => Err(e),
                other => Err(format!("unexpected answer {other:?}")),
            },
            |worker, inst, b: BibView| {
                rows.push(BibRow {
                    instance: inst.to_string(),
                    worker,
                    protocol: b.proto.name().into(),
                    ipv6: b.v6.0.to_string(),
                    ipv6_port: b.v6.1,
                    ipv4: b.v4.0.to_string(),
                    ipv4_port: b.v4.1,
                    is_static: b.is_static,
                    sessions: b.sessions,
                })
            },
        )?;
        Ok((rows, cut))
    }

    /// Add (`v6` given) or remove a static BIB entry on the worker that
    /// owns the IPv4 transport address; returns that worker.
    pub fn bib_change(
        &self,
        instance: Option<&str>,
        protocol: Protocol,
        v6: Option<(Ipv6Addr, u32)>,
        v4: (Ipv4Addr, u32),
    ) -> Result<usize, String> {
        let insts = self.stateful(instance)?;
        let [(index, inst)] = insts.as_slice() else {
            return Err("several stateful instances are configured: name one with --instance".into());
        };
        let port = |p: u32| u16::try_from(p).map_err(|_| format!("port {p} is out of range"));
        let v4p = (v4.0, port(v4.1)?);
        let range = protocol_range(inst, protocol, v4.0);
        if !range.is_some_and(|r| r.contains(v4.1)) {
            return Err(format!(
                "{}#{} is not in the {} pool4 of instance {}",
                v4.0,
                v4.1,
                protocol.name(),
                inst.name
            ));
        }
        let req = match v6 {
            Some((a, p)) => {
                Request::BibAdd { instance: *index, proto: proto(protocol), v6: (a, port(p)?), v4: v4p }
            }
            None => Request::BibDel { instance: *index, proto: proto(protocol), v4: v4p },
        };
        let n = self.plane.workers();
        // The split the workers were built with (runtime::pool4).
        let split = u16::try_from(n).ok().and_then(|k| crate::runtime::pool4(inst, k).ok());
        let owner = split.and_then(|p| p.owner(proto(protocol), v4p.0, v4p.1));
        // Without the split (it cannot be built), ask each worker in turn:
        // only the owner accepts.
        let order: Vec<usize> = match owner {
            Some(w) => vec![usize::from(w)],
            None => (0..n).collect(),
        };
        let mut last = String::from("no worker");
        for w in order {
            match self.plane.ask(w, req.clone()) {
                Some(Response::Done(Ok(()))) => return Ok(w),
                Some(Response::Done(Err(e))) => last = e,
                Some(other) => last = format!("unexpected answer {other:?}"),
                None => last = format!("worker {w} did not answer (busy or stopped); try again"),
            }
        }
        Err(last)
    }

    /// Who has `address` now (see [`Command::Lookup`]).
    pub fn lookup(&self, address: &str, instance: Option<&str>) -> Result<Vec<lookup::Row>, String> {
        let target: lookup::Target = address.parse()?;
        let mut rows = lookup::from_config(&self.config(), target, instance)?;
        let (v6, v4) = match target {
            lookup::Target::Ipv6(a) => (Some(a), None),
            lookup::Target::Ipv4(a, p) => (None, Some((a, p))),
        };
        for (index, inst) in self.stateful(instance)? {
            if inst.allocation.mode != crate::config::AllocationMode::Blocks {
                continue;
            }
            for w in 0..self.plane.workers() {
                let blocks = match self.plane.ask(w, Request::Blocks { instance: index, v6, v4 }) {
                    Some(Response::Blocks(v)) => v,
                    Some(Response::Done(Err(e))) => return Err(e),
                    Some(other) => return Err(format!("unexpected answer {other:?}")),
                    None => return Err(format!("worker {w} did not answer (busy or stopped); try again")),
                };
                rows.extend(blocks.into_iter().map(|b| lookup::Row {
                    instance: inst.name.clone(),
                    mode: "blocks".into(),
                    protocol: b.proto.name().into(),
                    ipv6_prefix: format!("{}/{}", b.client.0, b.client.1),
                    ipv4: b.addr,
                    port_first: b.ports.0,
                    port_last: b.ports.1,
                    from: None,
                    until: None,
                }));
            }
        }
        Ok(rows)
    }

    /// pool4 addresses of every stateful instance with the ports in use per
    /// protocol, as the workers count them (`Nat64Stats::pool4_use`).
    /// Prefixes are listed address by address, up to 65536 addresses per
    /// entry.
    pub fn pool4(&self) -> Result<Vec<Pool4Row>, String> {
        if self.stateful(None).is_err() {
            return Ok(Vec::new());
        }
        Ok(self.pool4_rows(&self.nat64_stats()))
    }

    /// [`Control::pool4`] from statistics already fetched.
    pub fn pool4_rows(&self, stats: &[(usize, Nat64Stats)]) -> Vec<Pool4Row> {
        let mut used: BTreeMap<(usize, Ipv4Addr, &str), u32> = BTreeMap::new();
        for (_, s) in stats {
            for u in &s.pool4_use {
                *used.entry((s.instance, u.addr, u.proto.name())).or_default() += u.in_use;
            }
        }
        let mut rows = Vec::new();
        for (i, n) in self.stateful(None).unwrap_or_default() {
            for e in &n.pool4 {
                let (first, last) = (e.prefix.first(), e.prefix.last());
                for a in (first..=last).take(65536).map(Ipv4Addr::from) {
                    for p in Protocol::ALL {
                        let r = e.ports(p);
                        rows.push(Pool4Row {
                            instance: n.name.clone(),
                            address: a,
                            protocol: p.name().into(),
                            ports: r.to_string(),
                            total: r.last.saturating_sub(r.first) + 1,
                            in_use: used.get(&(i, a, p.name())).copied().unwrap_or(0),
                        });
                    }
                }
            }
        }
        rows
    }

    /// Reload from `path` (default: the daemon's file). With `apply` false,
    /// only validate and report what a reload would do.
    pub fn reload_from(&self, path: Option<&Path>, apply: bool) -> Result<ReloadReport, Refusal> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = path.unwrap_or(&self.path).to_path_buf();
        let r = self.try_reload(&path, apply);
        match &r {
            Err(refusal) if apply => {
                self.reload.refused(refusal);
                tracing::warn!(path = %path.display(), "reload refused: {refusal}");
            }
            Ok(rep) if apply => {
                tracing::info!(
                    generation = rep.generation,
                    changes = rep.changes.changes.len(),
                    "configuration reloaded"
                )
            }
            _ => {}
        }
        r
    }

    fn try_reload(&self, path: &Path, apply: bool) -> Result<ReloadReport, Refusal> {
        let (doc, warnings) = reload::load(path, &(self.host)())?;
        let old = self.config();
        let changes = reload::plan(&old, &doc.config)?;
        let generation = self.reload.next_generation();
        let mut report = ReloadReport {
            path: path.to_path_buf(),
            generation,
            changes,
            warnings,
            applied: false,
            ended_sessions: 0,
            ended_bib: 0,
        };
        if !apply {
            return Ok(report);
        }
        if !report.changes.of(Class::Dataplane).is_empty() {
            let (s, b) = self
                .plane
                .apply(&old, &doc.config, generation)
                .map_err(|reason| Refusal::Failed { reason })?;
            tracing::info!(
                generation,
                ended_sessions = s,
                ended_bib = b,
                "workers applied the new configuration"
            );
            (report.ended_sessions, report.ended_bib) = (s, b);
            self.reload.ended(s, b);
        }
        if !report.changes.of(Class::Control).is_empty() {
            if let Some(hook) = &self.logging {
                // The dataplane part is in; a logging problem only warns.
                if let Err(e) = hook(&doc.config.logging) {
                    tracing::warn!("logging settings not applied: {e}");
                }
            }
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(doc.config);
        report.generation = self.reload.succeeded();
        report.applied = true;
        Ok(report)
    }
}

/// The configured range of `protocol` on the pool4 entry holding `a`.
fn protocol_range(n: &Nat64Config, protocol: Protocol, a: Ipv4Addr) -> Option<crate::config::PortRange> {
    n.pool4.iter().find(|e| e.prefix.contains(a)).map(|e| e.ports(protocol))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::Command;
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) const YAML: &str = r#"
dpdk: { eal_args: ["-l", "0-2"], workers: [1, 2] }
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
  - siit:
      name: dc
      pool6: 2001:db8:46::/96
  - nat64:
      name: plat
      pool6: 2001:db8:64::/96
      pool4: [ { prefix: 203.0.113.0/31, tcp: 1024-1033, udp: 2000-2009, icmp: 0-9 } ]
"#;

    /// A stand-in dataplane: two workers, each with a few sessions the
    /// mailbox "answers" in steps of two (to exercise cursors).
    pub(crate) struct Fake {
        pub heartbeat_ms: AtomicU64,
        pub link_up: std::sync::atomic::AtomicBool,
        pub asked: Mutex<Vec<(usize, String)>>,
        pub applies: AtomicU64,
        pub apply_ok: bool,
        pub flushed: [AtomicU64; 2],
    }

    impl Default for Fake {
        fn default() -> Self {
            Fake {
                heartbeat_ms: AtomicU64::new(1),
                link_up: true.into(),
                asked: Mutex::default(),
                applies: AtomicU64::new(0),
                apply_ok: true,
                flushed: Default::default(),
            }
        }
    }

    pub(crate) fn session(w: usize, k: u16) -> SessionView {
        SessionView {
            index: u32::from(k),
            proto: if k % 2 == 0 { Proto::Tcp } else { Proto::Udp },
            state: (k % 2 == 0).then_some(nat64::TcpState::Established),
            v6: (format!("2001:db8:1::{}", w + 1).parse().unwrap(), 40000 + k),
            v4: (Ipv4Addr::new(203, 0, 113, w as u8), 1024 + k),
            remote: (Ipv4Addr::new(198, 51, 100, 7), 80),
            expires_s: 1000 + u32::from(k),
        }
    }

    impl Plane for Fake {
        fn workers(&self) -> usize {
            2
        }
        fn worker(&self, w: usize) -> WorkerView {
            let mut s = Stats { rx: 10 + w as u64, v6_to_v4: 4, ..Stats::default() };
            s.drops[PipeDrop::NoRoute as usize] = 1;
            s.xlate_drops[0] = w as u64;
            WorkerView {
                stats: s,
                tx_dropped: 1,
                rx_multiseg: 0,
                heartbeat_age: Some(Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed))),
            }
        }
        fn ask(&self, w: usize, req: Request) -> Option<Response> {
            self.asked.lock().unwrap().push((w, format!("{req:?}")));
            // Three sessions per worker, two per step.
            let all: Vec<SessionView> = (0..3).map(|k| session(w, k)).collect();
            Some(match req {
                Request::Sessions { instance: 1, filter, cursor } => {
                    let c = cursor as usize;
                    let v: Vec<SessionView> = all[c.min(3)..(c + 2).min(3)]
                        .iter()
                        .filter(|s| filter.proto.is_none_or(|p| p == s.proto))
                        .copied()
                        .collect();
                    Response::Sessions(v, (c + 2 < 3).then_some(cursor + 2))
                }
                Request::Bib { instance: 1, cursor: 0, .. } => Response::Bib(
                    vec![BibView {
                        proto: Proto::Tcp,
                        v6: ("2001:db8:1::9".parse().unwrap(), 80),
                        v4: (Ipv4Addr::new(203, 0, 113, w as u8), 1030),
                        is_static: true,
                        sessions: 2,
                    }],
                    None,
                ),
                Request::BibAdd { .. } | Request::BibDel { .. } => Response::Done(Ok(())),
                // Three steps of ops::STEP slots per worker; steps posted
                // past the end visit nothing.
                Request::Flush { instance: 1, cursor, .. } => {
                    if cursor < 3 * ops::STEP {
                        self.flushed[w].fetch_add(1, Ordering::Relaxed);
                    }
                    Response::Flushed((cursor < 2 * ops::STEP).then_some(cursor + ops::STEP))
                }
                Request::Nat64Stats => Response::Nat64Stats(vec![Nat64Stats {
                    instance: 1,
                    sessions: 3,
                    capacity: 100,
                    held_syns: 0,
                    memory_bytes: 4096,
                    counters: nat64::Counters {
                        sessions_live: 3,
                        bib_live: 1,
                        sessions_live_by_proto: [2, 1, 0],
                        bib_live_by_proto: [1, 0, 0],
                        tcp_states: [0, 0, 0, 2, 0, 0, 0, 0],
                        sessions_flushed: self.flushed[w].load(Ordering::Relaxed),
                        blocks_live: [0, 2, 0],
                        blocks_total: [0, 8, 0],
                        blocks_allocated: 5,
                        blocks_released: 3,
                        ..Default::default()
                    },
                    // The BIB entry above: 203.0.113.{w} tcp.
                    pool4_use: vec![nat64::PoolUse {
                        proto: Proto::Tcp,
                        addr: Ipv4Addr::new(203, 0, 113, w as u8),
                        in_use: 1,
                        ports: 10,
                    }],
                }]),
                _ => Response::Done(Err("not a stateful NAT64 instance".into())),
            })
        }
        fn ports(&self) -> Vec<PortView> {
            vec![
                PortView { name: "net_null0".into(), up: true, rx_packets: 5, ..Default::default() },
                PortView {
                    name: "net_null1".into(),
                    up: self.link_up.load(Ordering::Relaxed),
                    steering: "flow".into(),
                    steering_rules: 2,
                    ..Default::default()
                },
            ]
        }
        fn mbufs(&self) -> Option<MbufView> {
            Some(MbufView { in_use: 100, available: 900 })
        }
        fn now_s(&self) -> u64 {
            1000
        }
        fn apply(&self, _: &Config, _: &Config, _: u64) -> Result<(u64, u64), String> {
            self.applies.fetch_add(1, Ordering::Relaxed);
            if self.apply_ok {
                Ok((5, 2))
            } else {
                Err("worker 1 refused".into())
            }
        }
    }

    pub(crate) fn control(fake: Fake, path: PathBuf) -> Control<Fake> {
        let cfg = Config::from_str(YAML, "t.yaml").unwrap();
        Control::new(fake, path, cfg).with_host(Host { online_lcores: None, pci_devices: None })
    }

    #[test]
    fn sessions_walk_every_worker_with_cursors_and_limits() {
        let c = control(Fake::default(), PathBuf::from("/nonexistent"));
        let (rows, cut) = c.sessions(&Query::default()).unwrap();
        assert!(!cut);
        assert_eq!(rows.len(), 6, "3 per worker over two steps each");
        assert_eq!(rows[0].instance, "plat");
        assert_eq!((rows[0].worker, rows[5].worker), (0, 1));
        assert_eq!(rows[0].state.as_deref(), Some("established"));
        assert_eq!(rows[2].expires_in_s, 2);
        let asked = c.plane.asked.lock().unwrap().clone();
        assert!(asked.iter().any(|(_, r)| r.contains("cursor: 2")), "{asked:?}");
        // Filters reach the workers; limits cut.
        let q = Query { protocol: Some(Protocol::Udp), ..Query::default() };
        let (rows, _) = c.sessions(&q).unwrap();
        assert!(rows.iter().all(|r| r.protocol == "udp") && rows.len() == 2);
        let (rows, cut) = c.sessions(&Query { limit: Some(4), ..Query::default() }).unwrap();
        assert_eq!((rows.len(), cut), (4, true));
        // SIIT instances and unknown names are refused with the reason.
        let e = c.sessions(&Query { instance: Some("dc".into()), ..Query::default() }).unwrap_err();
        assert!(e.contains("stateless"), "{e}");
        let e = c.sessions(&Query { instance: Some("zz".into()), ..Query::default() }).unwrap_err();
        assert!(e.contains("no instance named"), "{e}");
        let e = c.sessions(&Query { ipv6: Some("2001:db8::/129".into()), ..Query::default() }).unwrap_err();
        assert!(e.contains("prefix length"), "{e}");
    }

    #[test]
    fn flush_needs_a_filter_and_walks_every_worker_with_cursors() {
        let c = control(Fake::default(), PathBuf::from("/nonexistent"));
        let e = c.flush(&Query::default()).unwrap_err();
        assert!(e.contains("needs a filter"), "{e}");
        let q = Query { ipv6: Some("::/0".into()), ..Query::default() };
        // Three steps on each of two workers, posted ahead (the fake counts
        // one flushed session per step inside its table).
        assert_eq!(c.flush(&q).unwrap(), 6);
        let asked = c.plane.asked.lock().unwrap().clone();
        let flushes: Vec<&(usize, String)> = asked.iter().filter(|(_, r)| r.starts_with("Flush")).collect();
        // Per worker: a window posted at once, refilled after each of the
        // two answers that said "go on".
        assert_eq!(flushes.len(), 2 * (WALK_WINDOW + 2), "{flushes:?}");
        assert!(flushes.iter().any(|(w, r)| *w == 1 && r.contains(&format!("cursor: {}", 2 * ops::STEP))));
    }

    #[test]
    fn bib_changes_go_to_the_owner_and_stay_inside_pool4() {
        let c = control(Fake::default(), PathBuf::from("/nonexistent"));
        let v6 = Some(("2001:db8:2::80".parse().unwrap(), 443));
        // 203.0.113.0/31 over 2 workers splits by address: .1 is worker 1.
        let w = c.bib_change(None, Protocol::Tcp, v6, (Ipv4Addr::new(203, 0, 113, 1), 1030)).unwrap();
        assert_eq!(w, 1);
        let asked = c.plane.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1);
        assert!(asked[0].1.starts_with("BibAdd"));
        let e = c.bib_change(None, Protocol::Tcp, v6, (Ipv4Addr::new(203, 0, 113, 1), 2000)).unwrap_err();
        assert!(e.contains("not in the tcp pool4"), "{e}");
        let e = c.bib_change(None, Protocol::Udp, None, (Ipv4Addr::new(192, 0, 2, 9), 2000)).unwrap_err();
        assert!(e.contains("not in the udp pool4"), "{e}");
        assert_eq!(c.bib_change(None, Protocol::Udp, None, (Ipv4Addr::new(203, 0, 113, 0), 2000)), Ok(0));
    }

    #[test]
    fn pool4_sums_the_workers_use_per_address_and_protocol() {
        let c = control(Fake::default(), PathBuf::from("/nonexistent"));
        let rows = c.pool4().unwrap();
        assert_eq!(rows.len(), 6, "two addresses, three protocols");
        let tcp0 = rows.iter().find(|r| r.address == Ipv4Addr::new(203, 0, 113, 0) && r.protocol == "tcp");
        let tcp0 = tcp0.unwrap();
        assert_eq!((tcp0.total, tcp0.in_use, tcp0.ports.as_str()), (10, 1, "1024-1033"));
        let udp1 = rows.iter().find(|r| r.address == Ipv4Addr::new(203, 0, 113, 1) && r.protocol == "udp");
        assert_eq!(udp1.unwrap().in_use, 0);
    }

    #[test]
    fn health_names_what_is_not_ready() {
        let c = control(Fake::default(), PathBuf::from("/nonexistent"));
        let h = c.health();
        assert!(h.alive && h.ready, "{:?}", h.problems);
        c.plane.heartbeat_ms.store(5000, Ordering::Relaxed);
        c.plane.link_up.store(false, Ordering::Relaxed);
        let h = c.health();
        assert!(!h.ready);
        assert!(
            h.problems.iter().any(|p| p.contains("worker 0 has not polled for 5000 ms")),
            "{:?}",
            h.problems
        );
        assert!(h.problems.iter().any(|p| p == "port net_null1 link is down"), "{:?}", h.problems);
    }

    #[test]
    fn stats_sum_workers_and_name_drop_reasons() {
        let c = control(Fake::default(), PathBuf::from("/nonexistent"));
        let s = c.stats();
        assert_eq!(s["counters"]["rx"], 21);
        assert_eq!(s["counters"]["v6_to_v4"], 8);
        assert_eq!(s["drops"]["pipeline"]["no_route"], 2);
        assert_eq!(s["drops"]["xlate"][XlateDrop::ALL[0].name()], 1);
        assert_eq!(s["drops"]["worker"]["tx_full"], 2);
        assert!(s["drops"]["pipeline"].get("bad_ipv4").is_none(), "zero reasons left out");
        assert_eq!(s["nat64"][0]["instance"], "plat");
        assert_eq!(s["nat64"][0]["sessions"], 6);
        assert_eq!(s["mbufs"]["in_use"], 100);
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reload_applies_live_changes_and_refuses_the_rest() {
        let dir = std::env::temp_dir().join(format!("nat64-svc-{}", std::process::id()));
        let p = write(&dir, "c.yaml", YAML);
        let c = control(Fake::default(), p.clone());
        // Same file: nothing to do, still a new generation.
        let r = c.reload_from(None, true).unwrap();
        assert_eq!((r.generation, r.applied), (2, true));
        assert_eq!(c.plane.applies.load(Ordering::Relaxed), 0, "nothing for the workers");
        // A timeout change goes to the workers.
        write(
            &dir,
            "c.yaml",
            &YAML.replace("pool6: 2001:db8:64::/96", "pool6: 2001:db8:64::/96\n      timeouts: { udp: 200 }"),
        );
        let chk = c.reload_from(None, false).unwrap();
        assert!(!chk.applied && chk.generation == 3);
        assert_eq!(c.reload.generation(), 2, "a check changes nothing");
        let r = c.reload_from(None, true).unwrap();
        assert_eq!(r.generation, 3);
        assert_eq!(c.plane.applies.load(Ordering::Relaxed), 1);
        assert_eq!((r.ended_sessions, r.ended_bib), (5, 2), "what the workers ended is reported");
        assert_eq!(c.reload.ended_totals(), (5, 2));
        let Instance::Nat64(n) = &c.config().instances[1] else { panic!() };
        assert_eq!(n.timeouts.udp, 200);
        // A worker change needs a restart: refused, config unchanged.
        write(&dir, "c.yaml", &YAML.replace("workers: [1, 2]", "workers: [1]"));
        let e = c.reload_from(None, true).unwrap_err();
        assert!(matches!(&e, Refusal::NeedsRestart { keys } if keys == &["dpdk.workers".to_string()]));
        assert_eq!(c.reload.generation(), 3);
        assert_eq!(c.config().dpdk.workers, vec![1, 2]);
        // An invalid file is refused with the rule.
        write(&dir, "c.yaml", &YAML.replace("2001:db8:64::/96", "2001:db8:64::/95"));
        let reply = c.handle(Command::ConfigReload);
        assert!(!reply.ok);
        assert!(reply.error.unwrap().contains("rfc6052-prefix-length"));
        let results = c.reload.results();
        assert_eq!(results[0], ("success", 2));
        assert_eq!(results[1], ("invalid", 1));
        assert_eq!(results[2], ("needs_restart", 1));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn reload_the_workers_refuse_keeps_the_old_config() {
        let dir = std::env::temp_dir().join(format!("nat64-svc2-{}", std::process::id()));
        let p = write(&dir, "c.yaml", &YAML.replace("pool6: 2001:db8:46::/96", "pool6: 2001:db8:47::/96"));
        let c = control(Fake { apply_ok: false, ..Fake::default() }, p);
        let e = c.reload_from(None, true).unwrap_err();
        assert!(matches!(&e, Refusal::Failed { reason } if reason == "worker 1 refused"), "{e:?}");
        assert_eq!(c.reload.generation(), 1);
        let Instance::Siit(s) = &c.config().instances[0] else { panic!() };
        assert_eq!(s.pool6.unwrap().to_string(), "2001:db8:46::/96");
        assert_eq!(c.reload.results()[3], ("failed", 1));
        std::fs::remove_dir_all(&dir).ok();
    }
}
