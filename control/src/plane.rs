//! The live dataplane behind the control API: the workers' shared blocks
//! (published counters, heartbeats, mailboxes), the ports and the mbuf
//! pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use dataplane::dpdk::{tsc, tsc_hz, Mempool, Port, WorkerShared};
use dataplane::nat64::{Event, Proto};
use dataplane::ops::{InstanceUpdate, Nat64StateUpdate, Reload, Request, Response};
use dataplane::xlate;

use crate::api::service::{MbufView, Plane, PortView, WorkerView};
use crate::config::{Config, Instance, Nat64, Protocol};
use crate::runtime;
use crate::steering::SteeringState;

/// How long control waits for a worker's answer (a worker answers two
/// requests per ~100 us housekeeping round).
pub const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The running workers, ports and pool.
pub struct DpdkPlane {
    /// One per worker.
    pub shared: Vec<Arc<WorkerShared>>,
    /// Open ports (closed when the last holder drops them).
    pub ports: Arc<Vec<Port>>,
    /// The mbuf pool.
    pub pool: Arc<Mempool>,
    /// The shards' secret seed (`runtime::Plan::seed`): kept across reloads.
    pub seed: u64,
    /// Per instance, per worker: session event queues (`runtime::Plan`).
    pub events: Vec<Vec<Arc<ArrayQueue<Event>>>>,
    /// NIC steering of IPv4 return traffic, per port.
    pub steering: Arc<SteeringState>,
    /// Per instance, per worker: session sync queues (`runtime::Plan`).
    pub sync: Vec<Vec<Arc<dataplane::nat64::SyncQueue>>>,
}

fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
    }
}

/// Whether the state engine's own settings differ (what a shard has to
/// reconfigure, as opposed to header rules).
fn shard_changed(a: &Nat64, b: &Nat64) -> bool {
    a.pool4 != b.pool4
        || a.static_bib != b.static_bib
        || a.timeouts != b.timeouts
        || a.limits != b.limits
        || a.filtering != b.filtering
        || a.drop_external_tcp != b.drop_external_tcp
        || a.allocation != b.allocation
}

impl DpdkPlane {
    fn ms(&self) -> u64 {
        (tsc_hz() / 1000).max(1)
    }

    /// Worker `w`'s part of moving from `from` to `to`: built as
    /// `runtime::pipeline` builds instances at start.
    pub fn update(&self, from: &Config, to: &Config, w: usize, generation: u64) -> Result<Reload, String> {
        let mut instances = Vec::new();
        for (i, inst) in to.instances.iter().enumerate() {
            instances.push(match (inst, from.instances.get(i)) {
                (Instance::Siit(s), Some(Instance::Siit(_))) => {
                    InstanceUpdate::Siit(runtime::siit_config(to, s))
                }
                (Instance::Nat64(n), Some(Instance::Nat64(o))) => {
                    let shard = if shard_changed(o, n) {
                        let events = self.events.get(i).and_then(|q| q.get(w)).cloned();
                        let seed = self.seed ^ ((i as u64) << 32) ^ w as u64;
                        Some(Nat64StateUpdate {
                            config: dataplane::nat64::Config {
                                sync: self.sync.get(i).and_then(|q| q.get(w)).cloned(),
                                ..runtime::shard_config(
                                    n,
                                    seed,
                                    events,
                                    runtime::allocation(n, self.shared.len() as u16)?,
                                )
                            },
                            pool4: Arc::new(runtime::pool4(n, self.shared.len() as u16)?),
                            static_bib: n
                                .static_bib
                                .iter()
                                .map(|b| {
                                    let v6 = (b.ipv6.addr, b.ipv6.port as u16);
                                    (proto(b.protocol), v6, (b.ipv4.addr, b.ipv4.port as u16))
                                })
                                .collect(),
                        })
                    } else {
                        None
                    };
                    let destinations = match &n.destinations {
                        Some(p) => Some(
                            xlate::Prefix4::new(p.0.network(), p.0.prefix_len())
                                .ok_or_else(|| format!("instance {}: bad destinations {p}", n.name))?,
                        ),
                        None => None,
                    };
                    InstanceUpdate::Nat64 { xlate: runtime::nat64_xlate_config(to, n), destinations, shard }
                }
                _ => return Err(format!("instance {} changed kind or position: restart", inst.name())),
            });
        }
        Ok(Reload { generation, instances })
    }

    fn send(&self, w: usize, r: Reload) -> Result<(u64, u64), String> {
        match self.ask(w, Request::Reload(Arc::new(r))) {
            Some(Response::Reloaded { ended_sessions, ended_bib }) => Ok((ended_sessions, ended_bib)),
            Some(Response::Done(Err(e))) => Err(format!("worker {w} refused: {e}")),
            Some(other) => Err(format!("worker {w}: unexpected answer {other:?}")),
            None => Err(format!("worker {w} did not answer")),
        }
    }
}

impl Plane for DpdkPlane {
    fn workers(&self) -> usize {
        self.shared.len()
    }

    fn worker(&self, w: usize) -> WorkerView {
        let Some(s) = self.shared.get(w) else { return WorkerView::default() };
        let hb = s.heartbeat.load(Ordering::Relaxed);
        let heartbeat_age = (hb != 0).then(|| {
            let ticks = tsc().saturating_sub(hb);
            Duration::from_micros(ticks / (tsc_hz() / 1_000_000).max(1))
        });
        WorkerView {
            stats: s.snapshot(),
            tx_dropped: s.tx_dropped.load(Ordering::Relaxed),
            rx_multiseg: s.rx_multiseg.load(Ordering::Relaxed),
            heartbeat_age,
        }
    }

    fn ask(&self, w: usize, req: Request) -> Option<Response> {
        self.shared.get(w)?.mailbox.ask(req, ASK_TIMEOUT)
    }

    fn post(&self, w: usize, req: Request) -> Option<crossbeam::channel::Receiver<Response>> {
        self.shared.get(w)?.mailbox.post(req).ok()
    }

    fn ports(&self) -> Vec<PortView> {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (l, s) = (p.link(), p.stats());
                let st = self.steering.port(i);
                PortView {
                    name: p.name().to_string(),
                    up: l.up,
                    speed_mbps: l.speed_mbps,
                    rx_packets: s.ipackets,
                    tx_packets: s.opackets,
                    rx_bytes: s.ibytes,
                    tx_bytes: s.obytes,
                    rx_missed: s.imissed,
                    rx_errors: s.ierrors,
                    tx_errors: s.oerrors,
                    rx_nombuf: s.rx_nombuf,
                    steering: st.mode.to_string(),
                    steering_rules: st.rules as u64,
                    steering_reason: st.reason,
                }
            })
            .collect()
    }

    fn mbufs(&self) -> Option<MbufView> {
        Some(MbufView { in_use: u64::from(self.pool.in_use()), available: u64::from(self.pool.available()) })
    }

    fn now_s(&self) -> u64 {
        tsc() / self.ms() / 1000
    }

    /// Every worker gets its update; each applies all of it or nothing. If
    /// one refuses, the workers that already applied are sent back to the
    /// old configuration, so all workers keep running the same one.
    fn apply(&self, old: &Config, new: &Config, generation: u64) -> Result<(u64, u64), String> {
        let ended = crate::reload::apply_all(
            self.shared.len(),
            |w, forward| {
                if forward {
                    self.update(old, new, w, generation)
                } else {
                    self.update(new, old, w, generation.saturating_sub(1))
                }
            },
            |w, r| self.send(w, r),
        )?;
        // New pool4 slices need new rules. Until they are in, packets go by
        // RSS and the software handoff, which stays correct.
        let pool4 = |c: &Config| -> Vec<_> {
            c.instances
                .iter()
                .filter_map(|i| if let Instance::Nat64(n) = i { Some(n.pool4.clone()) } else { None })
                .collect()
        };
        if pool4(old) != pool4(new) {
            if let Err(e) = self.steering.install(&self.ports, new, self.shared.len() as u16) {
                tracing::error!("steering after reload: {e}; IPv4 return traffic uses the software handoff");
            }
        }
        Ok(ended)
    }
}
