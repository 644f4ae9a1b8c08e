//! The running appliance: EAL, ports, workers on lcores, and around them
//! the control services (control socket, HTTP metrics and health, SIGHUP
//! reload, session log; see `services`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use dataplane::dpdk::{Eal, Mempool, Port, PortConfig, Worker, WorkerShared};
use dataplane::pipeline::{PipeDrop, Stats, XLATE_DROPS};
use dataplane::xlate::DropReason as XlateDrop;

use crate::api::service::Control;
use crate::config::schema::Config;
use crate::plane::DpdkPlane;
use crate::runtime;
use crate::services::{EventQueue, Services};
use crate::sessionlog::TimeBase;
use crate::steering::SteeringState;

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file.
    pub config: PathBuf,
    /// EAL arguments added on the command line (after `--`).
    pub eal_extra: Vec<String>,
    /// Write the final counters here as JSON on exit.
    pub stats_file: Option<PathBuf>,
}

/// mbufs per worker per port: RX and TX rings, bursts in flight, caches.
const MBUFS_PER_QUEUE: u32 = 2048 + 1024;
const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;
/// Packets that may wait in one worker-to-worker handoff ring.
const HANDOFF_RING: u32 = 4096;
/// DPDK's default mbuf headroom (RTE_PKTMBUF_HEADROOM): room for IPv4 ->
/// IPv6 header growth without moving the payload.
const HEADROOM: u32 = 128;
/// Ethernet header, one VLAN tag and the frame check sequence.
const L2_MAX: u32 = 14 + 4 + 4;

/// Run until SIGINT or SIGTERM. Every step that can fail says what failed.
pub fn run(opts: &Options) -> Result<()> {
    let summary = crate::config::check(&opts.config).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("invalid configuration:\n{}", lines.join("\n"))
    })?;
    for w in &summary.warnings {
        tracing::warn!("{w}");
    }
    let cfg = Config::from_file(&opts.config).map_err(|e| anyhow::anyhow!("{e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }

    let eal = Eal::init(&runtime::eal_args(&cfg, &opts.eal_extra)).context("starting DPDK EAL")?;
    let lcores: Vec<u32> =
        if cfg.dpdk.workers.is_empty() { eal.worker_lcores() } else { cfg.dpdk.workers.clone() };
    // With no worker lcore (EAL on one core) the main thread polls.
    let n_workers = lcores.len().max(1);

    let (devs, dev_of_iface) = runtime::devices(&cfg);
    // A mempool is most memory-efficient at 2^n - 1 elements.
    let n_mbufs = cfg
        .dpdk
        .mbufs
        .unwrap_or_else(|| (MBUFS_PER_QUEUE * (n_workers * devs.len()) as u32).next_power_of_two() - 1);
    // One segment must hold the largest frame: the worker drops chained
    // mbufs rather than linearise them on the packet path.
    let max_mtu = cfg.interfaces.iter().map(|i| i.mtu).max().unwrap_or(1500);
    let data_room = (HEADROOM + max_mtu + L2_MAX).max(HEADROOM + 2048);
    let data_room = u16::try_from(data_room).context("interface MTU too large for one mbuf")?;
    let pool = Arc::new(
        Mempool::new("nat64d_mbufs", n_mbufs, 256, data_room, -1).context("creating the mbuf pool")?,
    );

    let mut ports = Vec::new();
    for d in &devs {
        let mut p = Port::by_name(&d.name).with_context(|| format!("opening device {}", d.name))?;
        let pc = PortConfig {
            rx_queues: n_workers as u16,
            tx_queues: n_workers as u16,
            rx_desc: RX_DESC,
            tx_desc: TX_DESC,
            ..Default::default()
        };
        p.configure(&pc, &pool).with_context(|| format!("configuring device {}", d.name))?;
        p.start().with_context(|| format!("starting device {}", d.name))?;
        tracing::info!(device = %d.name, port = p.id(), mac = %fmt_mac(p.mac()), "port up");
        ports.push(p);
    }
    // Steering rules go on after the ports started, before any worker polls.
    let steering = Arc::new(SteeringState::new(&cfg, ports.len(), &dev_of_iface));
    if let Err(e) = steering.install(&ports, &cfg, n_workers as u16) {
        steering.clear(&ports);
        bail!("{e}");
    }
    let port_of_iface: Vec<u16> = dev_of_iface.iter().map(|&d| d as u16).collect();
    let mac_of_iface: Vec<[u8; 6]> = cfg
        .interfaces
        .iter()
        .zip(&dev_of_iface)
        .map(|(i, &d)| i.mac.map(|m| m.0).unwrap_or_else(|| ports[d].mac()))
        .collect();

    let plan = runtime::Plan::new(&cfg, n_workers).map_err(|e| anyhow::anyhow!(e))?;
    // A handoff ring for every ordered pair of workers.
    let mut rings_tx: Vec<Vec<Option<dataplane::dpdk::RingTx>>> = Vec::new();
    let mut rings_rx: Vec<Vec<dataplane::dpdk::RingRx>> = (0..n_workers).map(|_| Vec::new()).collect();
    for from in 0..n_workers {
        let mut row = Vec::new();
        for (to, rx) in rings_rx.iter_mut().enumerate() {
            if from == to {
                row.push(None);
                continue;
            }
            let (tx, r) = dataplane::dpdk::mbuf_ring(&format!("handoff_{from}_{to}"), HANDOFF_RING)
                .context("creating a handoff ring")?;
            row.push(Some(tx));
            rx.push(r);
        }
        rings_tx.push(row);
    }

    let shared: Vec<Arc<WorkerShared>> = (0..n_workers).map(|_| Arc::new(WorkerShared::new())).collect();
    let mut workers = Vec::new();
    for (w, (handoff_tx, handoff_rx)) in rings_tx.into_iter().zip(rings_rx).enumerate() {
        let pipeline = runtime::pipeline(&cfg, &plan, w, now_ms(), &port_of_iface, &mac_of_iface)
            .map_err(|e| anyhow::anyhow!("building worker {w}: {e}"))?;
        let sh = shared[w].clone();
        workers.push(Worker {
            pipeline,
            rx: ports.iter().map(|p| p.rx_queue(w as u16).expect("configured queue")).collect(),
            tx: ports.iter().map(|p| p.tx_queue(w as u16).expect("configured queue")).collect(),
            pool: pool.clone(),
            shared: sh,
            handoff_tx,
            handoff_rx,
            peers: shared.clone(),
        });
    }
    tracing::info!(workers = n_workers, lcores = ?lcores, mbufs = n_mbufs, "dataplane starting");

    // Control services (API socket, HTTP, SIGHUP reload, session log) run
    // on their own threads: the main thread may be the only worker.
    let ports = Arc::new(ports);
    let plane = DpdkPlane {
        shared: shared.clone(),
        ports: ports.clone(),
        pool: pool.clone(),
        seed: plan.seed,
        events: plan.events.clone(),
        steering: steering.clone(),
        sync: plan.sync.clone(),
    };
    let control = Arc::new(
        Control::new(plane, opts.config.clone(), cfg.clone())
            .with_logging_hook(Box::new(crate::logging::apply)),
    );
    let events: Vec<EventQueue> = plan
        .events
        .iter()
        .zip(&cfg.instances)
        .flat_map(|(qs, inst)| qs.iter().map(|q| (inst.name().to_string(), q.clone())))
        .collect();
    let time = TimeBase { mono_ms: now_ms(), wall: SystemTime::now() };
    let mut services = Services::start(control.clone(), events, time, stop.clone());
    services.start_sync(control.clone(), plan.sync.clone(), stop.clone());

    if lcores.is_empty() {
        let w = workers.pop().expect("one worker");
        let (st, sh) = (stop.clone(), shared[0].clone());
        let watcher = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            sh.stop.store(true, Ordering::Relaxed);
        });
        w.run();
        watcher.join().ok();
    } else {
        for (w, &lcore) in workers.into_iter().zip(&lcores) {
            eal.launch(lcore, move || w.run())
                .with_context(|| format!("launching worker on lcore {lcore}"))?;
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for s in &shared {
            s.stop.store(true, Ordering::Relaxed);
        }
        for &l in &lcores {
            let rc = eal.wait(l);
            if rc != 0 {
                tracing::error!(lcore = l, rc, "worker ended with an error");
            }
        }
    }
    tracing::info!("workers stopped; closing ports");
    // The single-worker path stops on the flag's watcher; make sure the
    // services see it too, then let go of the ports and pool they hold.
    stop.store(true, Ordering::Relaxed);
    services.join();
    drop(control);
    let Ok(ports) = Arc::try_unwrap(ports) else { bail!("ports still shared at exit") };

    let mut total = Stats::default();
    for s in &shared {
        total.add(&s.snapshot());
    }
    let port_stats: Vec<_> = ports.iter().map(|p| (p.name().to_string(), p.stats())).collect();
    // Rules are removed before the ports stop and close.
    steering.clear(&ports);
    // Closing ports completes output files (net_pcap) and returns mbufs.
    drop(ports);
    if let Some(path) = &opts.stats_file {
        std::fs::write(path, stats_json(&total, &port_stats).to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tracing::info!(
        rx = total.rx,
        tx = total.tx,
        v6_to_v4 = total.v6_to_v4,
        v4_to_v6 = total.v4_to_v6,
        "stopped"
    );
    let in_use = pool.in_use();
    drop(pool);
    drop(eal);
    if in_use != 0 {
        bail!("{in_use} mbufs still in use at exit");
    }
    Ok(())
}

/// The workers' clock: TSC milliseconds.
fn now_ms() -> u64 {
    dataplane::dpdk::tsc() / (dataplane::dpdk::tsc_hz() / 1000).max(1)
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Counters as JSON: scalars, non-zero drops by reason, port counters.
pub fn stats_json(s: &Stats, ports: &[(String, dataplane::dpdk::PortStats)]) -> serde_json::Value {
    let mut flat = [0u64; Stats::LEN];
    s.to_array_into(&mut flat);
    let mut scalars = serde_json::Map::new();
    for (i, n) in Stats::SCALARS.iter().enumerate() {
        scalars.insert((*n).into(), flat[i].into());
    }
    let mut drops = serde_json::Map::new();
    for r in PipeDrop::ALL {
        if s.drop_count(r) > 0 {
            drops.insert(r.name().into(), s.drop_count(r).into());
        }
    }
    for r in XlateDrop::ALL.iter().take(XLATE_DROPS) {
        if s.xlate_drop_count(*r) > 0 {
            drops.insert(r.name().into(), s.xlate_drop_count(*r).into());
        }
    }
    let ports: Vec<serde_json::Value> = ports
        .iter()
        .map(|(n, p)| {
            serde_json::json!({"device": n, "ipackets": p.ipackets, "opackets": p.opackets,
                "ibytes": p.ibytes, "obytes": p.obytes, "imissed": p.imissed})
        })
        .collect();
    serde_json::json!({"counters": scalars, "drops": drops, "ports": ports})
}
