//! The read-only HTTP listener (`management.http_listen`, loopback by
//! default): `/metrics` for Prometheus, `/healthz` (the process answers),
//! `/readyz` (ports up and workers polling: 200 or 503 with the reasons,
//! for routing daemons and load balancers), and JSON views under `/api/`.
//! Nothing here changes state: that is the control socket's job.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use serde_json::json;
use tiny_http::{Header, Method, Response, Server};

use crate::api::service::{Control, Plane};
use crate::api::Query;
use crate::config::Protocol;

/// A bound HTTP listener.
pub struct Http<P> {
    server: Server,
    control: Arc<Control<P>>,
    registry: Registry,
}

/// An answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
/// The Prometheus text exposition format.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn text(status: u16, body: impl Into<String>) -> Answer {
    Answer { status, content_type: TEXT, body: body.into() }
}

fn json_answer(r: Result<serde_json::Value, String>) -> Answer {
    match r {
        Ok(v) => Answer { status: 200, content_type: JSON, body: format!("{v}\n") },
        Err(e) => Answer { status: 400, content_type: JSON, body: format!("{}\n", json!({"error": e})) },
    }
}

/// Table filters from a query string (`?protocol=tcp&ipv6=2001:db8::/64`).
pub fn query(qs: &str) -> Result<Query, String> {
    let mut q = Query::default();
    for (k, v) in form_urlencoded::parse(qs.as_bytes()) {
        match &*k {
            "instance" => q.instance = Some(v.into_owned()),
            "protocol" => {
                q.protocol = Some(
                    Protocol::ALL
                        .into_iter()
                        .find(|p| p.name() == v)
                        .ok_or_else(|| format!("protocol {v:?}: tcp, udp or icmp"))?,
                )
            }
            "ipv6" => q.ipv6 = Some(v.into_owned()),
            "ipv4" => q.ipv4 = Some(v.parse().map_err(|_| format!("ipv4 {v:?} is not an IPv4 address"))?),
            "limit" => q.limit = Some(v.parse().map_err(|_| format!("limit {v:?} is not a number"))?),
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(q)
}

impl<P: Plane + 'static> Http<P> {
    /// Listen on `addr`.
    pub fn bind(addr: SocketAddr, control: Arc<Control<P>>) -> io::Result<Self> {
        let server =
            Server::http(addr).map_err(|e| io::Error::other(format!("HTTP listener on {addr}: {e}")))?;
        let registry = crate::metrics::registry(control.clone()).map_err(io::Error::other)?;
        Ok(Http { server, control, registry })
    }

    /// The address actually bound (port 0 picks one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.server_addr().to_ip()
    }

    /// Answer `GET path?query`.
    pub fn answer(&self, method: &Method, url: &str) -> Answer {
        if *method != Method::Get && *method != Method::Head {
            return text(405, "read-only: use nat64ctl to change state\n");
        }
        let (path, qs) = url.split_once('?').unwrap_or((url, ""));
        let c = &self.control;
        match path {
            "/metrics" => Answer {
                status: 200,
                content_type: METRICS_TYPE,
                body: crate::metrics::render(&self.registry),
            },
            "/healthz" => text(200, "ok\n"),
            "/readyz" => {
                let h = c.health();
                if h.ready {
                    text(200, "ready\n")
                } else {
                    text(503, format!("not ready: {}\n", h.problems.join("; ")))
                }
            }
            "/api/health" => json_answer(Ok(json!(c.health()))),
            "/api/stats" | "/api/counters" => json_answer(Ok(c.stats())),
            "/api/config" => json_answer(Ok(c.config_show())),
            "/api/pool4" => json_answer(c.pool4().map(|p| json!({"pool4": p}))),
            "/api/sessions" => json_answer(
                query(qs).and_then(|q| c.sessions(&q)).map(|(s, t)| json!({"sessions": s, "truncated": t})),
            ),
            "/api/bib" => {
                json_answer(query(qs).and_then(|q| c.bib(&q)).map(|(b, t)| json!({"bib": b, "truncated": t})))
            }
            "/" => {
                text(200, "nat64d: /metrics /healthz /readyz /api/{health,stats,sessions,bib,pool4,config}\n")
            }
            _ => text(404, "not found\n"),
        }
    }

    /// Serve until `stop` is set.
    pub fn serve(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let req = match self.server.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP listener");
                    continue;
                }
            };
            let a = self.answer(req.method(), req.url());
            let ct = Header::from_bytes(&b"Content-Type"[..], a.content_type.as_bytes());
            let mut resp = Response::from_string(a.body).with_status_code(a.status);
            if let Ok(h) = ct {
                resp = resp.with_header(h);
            }
            if let Err(e) = req.respond(resp) {
                tracing::debug!(error = %e, "HTTP client went away");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::service::tests::{control, Fake};
    use std::io::{Read, Write};
    use std::path::PathBuf;

    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        let status = r.split(' ').nth(1).unwrap().parse().unwrap();
        let body = r.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
        (status, body)
    }

    #[test]
    fn endpoints_answer_over_http() {
        let c = Arc::new(control(Fake::default(), PathBuf::from("/nonexistent")));
        let h = Http::bind("127.0.0.1:0".parse().unwrap(), c.clone()).unwrap();
        let addr = h.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| h.serve(&stop));
            assert_eq!(get(addr, "/healthz"), (200, "ok\n".into()));
            assert_eq!(get(addr, "/readyz"), (200, "ready\n".into()));
            let (st, body) = get(addr, "/metrics");
            assert_eq!(st, 200);
            assert!(body.contains("nat64_received_packets_total{worker=\"0\"} 10"), "{body}");
            let (st, body) = get(addr, "/api/sessions?protocol=udp");
            assert_eq!(st, 200);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["sessions"].as_array().unwrap().len(), 2);
            let (st, body) = get(addr, "/api/sessions?protocol=sctp");
            assert_eq!(st, 400);
            assert!(body.contains("tcp, udp or icmp"));
            assert_eq!(get(addr, "/nope").0, 404);
            c.plane.link_up.store(false, Ordering::Relaxed);
            let (st, body) = get(addr, "/readyz");
            assert_eq!(st, 503);
            assert!(body.contains("port net_null1 link is down"), "{body}");
            stop.store(true, Ordering::Relaxed);
        });
        // Writes are not served here.
        assert_eq!(h.answer(&Method::Post, "/api/bib").status, 405);
    }

    #[test]
    fn query_strings_become_filters() {
        let q = query("protocol=tcp&ipv6=2001%3Adb8%3A%3A%2F64&ipv4=203.0.113.1&limit=5").unwrap();
        assert_eq!(q.protocol, Some(Protocol::Tcp));
        assert_eq!(q.ipv6.as_deref(), Some("2001:db8::/64"));
        assert_eq!(q.ipv4, Some("203.0.113.1".parse().unwrap()));
        assert_eq!(q.limit, Some(5));
        assert!(query("ipv4=nope").is_err());
        assert!(query("colour=red").is_err());
        assert_eq!(query("").unwrap(), Query::default());
    }
}
