//! The control API: what `nat64ctl` asks `nat64d` over the Unix socket
//! (`management.control_socket`, mode 0600, owner only), one JSON object
//! per line each way.
//!
//! ```text
//! -> {"command":"sessions","protocol":"tcp","ipv6":"2001:db8::/64"}
//! <- {"ok":true,"result":{"sessions":[...],"truncated":false}}
//! <- {"ok":false,"error":"no instance named x"}
//! ```
//!
//! - [`Command`] / [`Reply`]: the messages; [`call`] the client side.
//! - [`service::Control`]: answers them over a [`service::Plane`] (the
//!   workers, or a stand-in in tests).
//! - [`server`]: the socket (permissions, peer check, framing).

pub mod server;
pub mod service;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Protocol, Transport4, Transport6};

/// A request: `{"command": NAME, ...arguments}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Liveness and readiness with the reasons.
    Health,
    /// Counters summed over workers, with drop reasons.
    Stats,
    /// Sessions of stateful instances.
    Sessions(Query),
    /// End the sessions a filter matches (a filter is required: `::/0`
    /// for every IPv6 client). `limit` is ignored.
    Flush(Query),
    /// BIB entries of stateful instances.
    Bib(Query),
    /// Add a static BIB entry.
    BibAdd {
        /// Instance name (default: the only stateful one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        /// Protocol.
        protocol: Protocol,
        /// The IPv6 server, `ADDR#PORT`.
        ipv6: Transport6,
        /// The IPv4 side, `ADDR#PORT`, inside pool4.
        ipv4: Transport4,
    },
    /// Remove a static BIB entry.
    BibDel {
        /// Instance name (default: the only stateful one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        /// Protocol.
        protocol: Protocol,
        /// The IPv4 side, `ADDR#PORT`.
        ipv4: Transport4,
    },
    /// pool4 addresses with their use per protocol.
    Pool4,
    /// The running configuration.
    ConfigShow,
    /// Validate a file (default: the daemon's) and say what a reload of it
    /// would do, without applying it.
    ConfigCheck {
        /// The file to check (default: the one nat64d was started with).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// Re-read the configuration file and apply it (as SIGHUP does).
    ConfigReload,
    /// Who has an address now: deterministic instances answer from the
    /// running configuration, port-block instances from the workers'
    /// tables (docs/abuse.md).
    Lookup {
        /// `2001:db8::5` (its IPv4 ranges) or `192.0.2.7#40123` (its client).
        address: String,
        /// Instance name (default: every stateful one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
}

/// Which table rows to list. Every field narrows; none lists everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Instance name (default: every stateful instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// IPv6 client address or prefix (`2001:db8::7`, `2001:db8::/64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// IPv4 address: the mapping's, or for sessions also the remote's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Addr>,
    /// Most rows returned (default [`DEFAULT_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Rows a listing returns unless told otherwise.
pub const DEFAULT_LIMIT: usize = 100_000;

/// An answer: `ok` with a result, or an error message for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// The command's result (null on error).
    #[serde(default)]
    pub result: Value,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    /// A success.
    pub fn ok(result: impl Serialize) -> Reply {
        match serde_json::to_value(result) {
            Ok(result) => Reply { ok: true, result, error: None },
            Err(e) => Reply::err(format!("cannot encode the result: {e}")),
        }
    }
    /// A failure.
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply { ok: false, result: Value::Null, error: Some(msg.into()) }
    }
}

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// Instance name.
    pub instance: String,
    /// Worker holding it.
    pub worker: usize,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// TCP state (RFC 6146 §3.5.2), absent for UDP/ICMP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// IPv6 client address.
    pub ipv6: String,
    /// IPv6 client port (ICMP: identifier).
    pub ipv6_port: u16,
    /// IPv4 mapping address.
    pub ipv4: String,
    /// IPv4 mapping port.
    pub ipv4_port: u16,
    /// Remote IPv4 address.
    pub remote: String,
    /// Remote port.
    pub remote_port: u16,
    /// Seconds until expiry (negative: due, the timer has not run yet).
    pub expires_in_s: i64,
}

/// A BIB entry as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BibRow {
    /// Instance name.
    pub instance: String,
    /// Worker holding it.
    pub worker: usize,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// IPv6 address.
    pub ipv6: String,
    /// IPv6 port.
    pub ipv6_port: u16,
    /// IPv4 address.
    pub ipv4: String,
    /// IPv4 port.
    pub ipv4_port: u16,
    /// Configured or added by an operator (never expires).
    #[serde(rename = "static")]
    pub is_static: bool,
    /// Sessions using it.
    pub sessions: u32,
}

/// One pool4 address and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool4Row {
    /// Instance name.
    pub instance: String,
    /// The address.
    pub address: Ipv4Addr,
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// The configured range, `FIRST-LAST`.
    pub ports: String,
    /// Ports in the range.
    pub total: u32,
    /// Ports bound to a BIB entry now.
    pub in_use: u32,
}

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens on the socket.
    #[error("nat64d is not running (no control socket at {}): start it, or point --socket at its management.control_socket", .0.display())]
    NotRunning(PathBuf),
    /// The socket exists but this user may not use it.
    #[error("permission denied on {}: the control socket belongs to the user nat64d runs as (use sudo)", .0.display())]
    Denied(PathBuf),
    /// The daemon answered with an error.
    #[error("nat64d refused: {0}")]
    Refused(String),
    /// Anything else on the way.
    #[error("control socket {}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    /// The answer was not a reply.
    #[error("unexpected answer from nat64d: {0}")]
    Protocol(String),
}

/// Send one command and wait (up to `timeout`) for its reply; the result
/// of a successful reply.
pub fn call(socket: &Path, cmd: &Command, timeout: Duration) -> Result<Value, CallError> {
    let io = |e: std::io::Error| CallError::Io(socket.to_path_buf(), e);
    let s = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            CallError::NotRunning(socket.to_path_buf())
        }
        std::io::ErrorKind::PermissionDenied => CallError::Denied(socket.to_path_buf()),
        _ => io(e),
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(cmd).map_err(|e| CallError::Protocol(e.to_string()))?;
    line.push('\n');
    (&s).write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(CallError::Protocol("the daemon closed the connection without answering".into()));
    }
    let r: Reply =
        serde_json::from_str(&answer).map_err(|e| CallError::Protocol(format!("{e}: {answer}")))?;
    if r.ok {
        Ok(r.result)
    } else {
        Err(CallError::Refused(r.error.unwrap_or_else(|| "no reason given".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_have_a_stable_json_form() {
        let c = Command::Sessions(Query { protocol: Some(Protocol::Tcp), ..Query::default() });
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"command":"sessions","protocol":"tcp"}"#);
        let c: Command = serde_json::from_str(
            r#"{"command":"bib_add","protocol":"udp","ipv6":"2001:db8::5#53","ipv4":"203.0.113.1#53"}"#,
        )
        .unwrap();
        match c {
            Command::BibAdd { instance: None, protocol: Protocol::Udp, ipv6, ipv4 } => {
                assert_eq!((ipv6.port, ipv4.port), (53, 53));
                assert_eq!(ipv4.addr, Ipv4Addr::new(203, 0, 113, 1));
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Command>(r#"{"command":"sessions","colour":1}"#).is_err());
        assert!(serde_json::from_str::<Command>(r#"{"command":"reboot"}"#).is_err());
        let r = Reply::err("no");
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"ok":false,"result":null,"error":"no"}"#);
    }

    #[test]
    fn call_without_a_daemon_says_so() {
        let p = std::env::temp_dir().join(format!("nat64-nosock-{}", std::process::id()));
        match call(&p, &Command::Health, Duration::from_secs(1)) {
            Err(e @ CallError::NotRunning(_)) => assert!(e.to_string().contains("not running")),
            other => panic!("{other:?}"),
        }
    }
}
