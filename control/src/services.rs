//! The control thread's services, each on its own thread (the main thread
//! may be busy polling as the only worker): the control socket, the HTTP
//! listener, SIGHUP reloads and the session log. All stop when `stop` is
//! set. A listener that cannot be opened is logged and left out: the
//! dataplane keeps forwarding.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::queue::ArrayQueue;
use dataplane::nat64::Event;

use crate::api::server::Server;
use crate::api::service::{Control, Plane};
use crate::http::Http;
use crate::sessionlog::{SessionLog, TimeBase};

/// How often the session log is drained and SIGHUP looked at.
const TICK: Duration = Duration::from_millis(50);
/// Events written per queue per round (bounds one round's work).
const DRAIN_BUDGET: usize = 16384;

/// A stateful instance's event queue (one per worker).
pub type EventQueue = (String, Arc<ArrayQueue<Event>>);

/// The running services.
pub struct Services {
    threads: Vec<(&'static str, JoinHandle<()>)>,
    /// Where the control socket listens, if it does.
    pub socket: Option<PathBuf>,
    /// Where HTTP listens, if it does.
    pub http: Option<std::net::SocketAddr>,
}

impl Services {
    /// Start every service. `stop` ends them; SIGHUP triggers a reload.
    pub fn start<P: Plane + 'static>(
        control: Arc<Control<P>>,
        events: Vec<EventQueue>,
        time: TimeBase,
        stop: Arc<AtomicBool>,
    ) -> Services {
        let mut threads = Vec::new();
        let cfg = control.config();
        let mut socket = None;
        match Server::bind(&cfg.management.control_socket) {
            Ok(srv) => {
                socket = Some(srv.path().to_path_buf());
                tracing::info!(socket = %srv.path().display(), "control socket listening");
                let (c, st) = (control.clone(), stop.clone());
                threads.push((
                    "control socket",
                    std::thread::spawn(move || srv.serve(&st, &|cmd| c.handle(cmd))),
                ));
            }
            Err(e) => tracing::error!(
                socket = %cfg.management.control_socket.display(),
                "control socket not available (nat64ctl will not reach this daemon): {e}"
            ),
        }
        let mut http = None;
        match Http::bind(cfg.management.http_listen, control.clone()) {
            Ok(h) => {
                http = h.local_addr();
                tracing::info!(listen = %cfg.management.http_listen, "HTTP listening (/metrics /healthz /readyz /api)");
                let st = stop.clone();
                threads.push(("http", std::thread::spawn(move || h.serve(&st))));
            }
            Err(e) => tracing::error!("HTTP listener not available: {e}"),
        }

        let hup = Arc::new(AtomicBool::new(false));
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
            tracing::error!("SIGHUP handler: {e}");
        }
        let (c, st) = (control.clone(), stop.clone());
        threads.push((
            "reload",
            std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    if hup.swap(false, Ordering::Relaxed) {
                        tracing::info!("SIGHUP: reloading {}", c.path().display());
                        // The outcome is logged and counted by reload_from.
                        let _ = c.reload_from(None, true);
                    }
                    std::thread::sleep(TICK);
                }
            }),
        ));

        let target = cfg.logging.session_log.clone();
        let log = match SessionLog::open(&target, time) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(target = %target, "session log cannot be opened, records are dropped: {e}");
                SessionLog::open(&crate::config::SessionLog::Off, time).ok()
            }
        };
        if let Some(mut log) = log {
            log.counts = control.session_log.clone();
            let (c, st) = (control.clone(), stop.clone());
            threads.push((
                "session log",
                std::thread::spawn(move || loop {
                    // Last round after stop: write what the workers queued.
                    let last = st.load(Ordering::Relaxed);
                    let want = c.config().logging.session_log.clone();
                    if want != *log.target() {
                        match log.retarget(&want) {
                            Ok(()) => tracing::info!(target = %want, "session log retargeted"),
                            Err(e) => {
                                tracing::error!(target = %want, "session log stays on {}: {e}", log.target())
                            }
                        }
                    }
                    for (name, q) in &events {
                        log.drain(q, name, DRAIN_BUDGET);
                    }
                    log.flush();
                    if last {
                        break;
                    }
                    std::thread::sleep(TICK);
                }),
            ));
        }
        Services { threads, socket, http }
    }

    /// Start session sync when the configuration asks for it (`queues`:
    /// per instance, per worker, as the workers were given them). A socket
    /// or key that cannot be opened is logged; the dataplane keeps
    /// forwarding without sync.
    pub fn start_sync<P: Plane + 'static>(
        &mut self,
        control: Arc<Control<P>>,
        queues: Vec<Vec<Arc<dataplane::nat64::SyncQueue>>>,
        stop: Arc<AtomicBool>,
    ) {
        let Some(sy) = control.config().sync.clone() else { return };
        let counters = control.sync.clone();
        match crate::sync::Engine::new(control, queues, counters) {
            Ok(e) => {
                tracing::info!(listen = %sy.listen, peers = ?sy.peers, "session sync running");
                self.threads.push(("sync", std::thread::spawn(move || e.run(&stop))));
            }
            Err(e) => tracing::error!(listen = %sy.listen, "session sync not available: {e}"),
        }
    }

    /// Wait for every service to end (after `stop` was set).
    pub fn join(self) {
        for (name, t) in self.threads {
            if t.join().is_err() {
                tracing::error!("{name} thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::service::tests::{control, Fake, YAML};
    use crate::api::{call, Command};
    use dataplane::nat64::{EventKind, Proto};
    use std::net::Ipv4Addr;
    use std::time::SystemTime;

    #[test]
    fn services_answer_reload_on_sighup_and_log_sessions() {
        let dir = std::env::temp_dir().join(format!("nat64-services-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ctl.sock");
        let slog = dir.join("sessions.log");
        let yaml = format!(
            "{YAML}management: {{ control_socket: {}, http_listen: \"127.0.0.1:0\" }}\nlogging: {{ session_log: {} }}\n",
            sock.display(),
            slog.display()
        );
        let path = dir.join("c.yaml");
        std::fs::write(&path, &yaml).unwrap();
        let c = control(Fake::default(), path.clone());
        *c.running.lock().unwrap() = Arc::new(crate::config::Config::from_str(&yaml, "c").unwrap());
        let c = Arc::new(c);
        let q = Arc::new(ArrayQueue::new(16));
        let ev = Event {
            time_ms: 0,
            kind: EventKind::SessionCreated,
            proto: Proto::Udp,
            v6: ("2001:db8:1::2".parse().unwrap(), 5000),
            v4: (Ipv4Addr::new(203, 0, 113, 1), 2001),
            remote: (Ipv4Addr::new(198, 51, 100, 1), 53),
        };
        q.push(ev).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let base = TimeBase { mono_ms: 0, wall: SystemTime::now() };
        let s = Services::start(c.clone(), vec![("plat".into(), q.clone())], base, stop.clone());
        assert_eq!(s.socket.as_deref(), Some(sock.as_path()));
        let v = call(&sock, &Command::Health, Duration::from_secs(2)).unwrap();
        assert_eq!(v["ready"], true);
        // SIGHUP reloads the file (a timeout change: applied).
        std::fs::write(
            &path,
            yaml.replace("pool6: 2001:db8:64::/96", "pool6: 2001:db8:64::/96\n      timeouts: { icmp: 30 }"),
        )
        .unwrap();
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        let t0 = std::time::Instant::now();
        while c.reload.generation() == 1 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(c.reload.generation(), 2);
        stop.store(true, Ordering::Relaxed);
        s.join();
        let text = std::fs::read_to_string(&slog).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"event\":\"session_created\"") && text.contains("\"instance\":\"plat\""));
        assert!(!sock.exists(), "socket removed at stop");
        std::fs::remove_dir_all(&dir).ok();
    }
}
