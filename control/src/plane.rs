//! The live dataplane behind the control API: the workers' shared blocks
//! (published counters, heartbeats, mailboxes), the ports and the mbuf
//! pool.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dataplane::dpdk::{tsc, tsc_hz, Mempool, Port, WorkerShared};
use dataplane::ops::{Request, Response};

use crate::api::service::{MbufView, Plane, PortView, WorkerView};

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
}

impl DpdkPlane {
    fn ms(&self) -> u64 {
        (tsc_hz() / 1000).max(1)
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

    fn ports(&self) -> Vec<PortView> {
        self.ports
            .iter()
            .map(|p| {
                let (l, s) = (p.link(), p.stats());
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
}
