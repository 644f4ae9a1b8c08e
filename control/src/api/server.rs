//! The control socket: a Unix stream socket created with mode 0600 (only
//! the daemon's user may connect), and a second check of the peer's
//! credentials (`SO_PEERCRED`) so that a socket whose mode was loosened by
//! hand still refuses other users. One JSON request per line, one reply
//! per line.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Command, Reply};

/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Which peers may use the socket: the daemon's own user and root.
pub fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid || peer_uid == 0
}

/// A bound control socket; the file is removed on drop.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    own_uid: u32,
}

impl Server {
    /// Create the socket at `path` with mode 0600 (creating its directory
    /// with mode 0755 if needed). A stale socket file left by a crashed
    /// daemon is replaced; a live one (another nat64d) is an error.
    pub fn bind(path: &Path) -> io::Result<Server> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is another nat64d running?", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // Create the socket without group/other bits, so there is no moment
        // at which another user could connect; then state the mode anyway.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = UnixListener::bind(path);
        rustix::process::umask(old);
        let listener = bound?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Server { listener, path: path.to_path_buf(), own_uid: rustix::process::geteuid().as_raw() })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answer clients one at a time until `stop` is set.
    pub fn serve(&self, stop: &AtomicBool, handle: &(dyn Fn(Command) -> Reply + Sync)) {
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if let Err(e) = self.client(s, handle) {
                        tracing::debug!(error = %e, "control client");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept");
                    std::thread::sleep(POLL);
                }
            }
        }
    }

    fn client(&self, s: UnixStream, handle: &(dyn Fn(Command) -> Reply + Sync)) -> io::Result<()> {
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        s.set_write_timeout(Some(READ_TIMEOUT))?;
        let cred = rustix::net::sockopt::socket_peercred(&s)?;
        let uid = cred.uid.as_raw();
        if !peer_allowed(uid, self.own_uid) {
            tracing::warn!(
                uid,
                pid = cred.pid.as_raw_nonzero().get(),
                "control socket: refused a peer of another user"
            );
            return send(&s, &Reply::err(format!("refused: uid {uid} may not use the control socket")));
        }
        let mut r = BufReader::new((&s).take(MAX_LINE));
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
                return send(&s, &Reply::err("request too long"));
            }
            let reply = match serde_json::from_str::<Command>(line.trim()) {
                Ok(cmd) => handle(cmd),
                Err(e) => Reply::err(format!("bad request: {e}")),
            };
            send(&s, &reply)?;
        }
    }
}

fn send(mut s: &UnixStream, r: &Reply) -> io::Result<()> {
    let mut out = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    out.push(b'\n');
    s.write_all(&out)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{call, CallError};
    use std::os::unix::fs::MetadataExt;

    fn sock(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("nat64-ctl-{tag}-{}", std::process::id())).join("control.sock")
    }

    #[test]
    fn socket_is_owner_only_and_answers_line_by_line() {
        let p = sock("rt");
        let srv = Server::bind(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let stop = AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                srv.serve(&stop, &|c| match c {
                    Command::Health => Reply::ok(serde_json::json!({"alive": true})),
                    _ => Reply::err("not here"),
                })
            });
            let v = call(&p, &Command::Health, Duration::from_secs(2)).unwrap();
            assert_eq!(v["alive"], true);
            match call(&p, &Command::Pool4, Duration::from_secs(2)) {
                Err(CallError::Refused(m)) => assert_eq!(m, "not here"),
                other => panic!("{other:?}"),
            }
            // Garbage gets an error reply, not a dropped connection.
            let mut s = UnixStream::connect(&p).unwrap();
            s.write_all(b"{\"command\":\"nope\"}\n").unwrap();
            let mut a = String::new();
            BufReader::new(&s).read_line(&mut a).unwrap();
            let r: Reply = serde_json::from_str(&a).unwrap();
            assert!(!r.ok && r.error.unwrap().starts_with("bad request"));
            // A second daemon on the same socket is refused.
            assert_eq!(Server::bind(&p).unwrap_err().kind(), io::ErrorKind::AddrInUse);
            stop.store(true, Ordering::Relaxed);
        });
        drop(srv);
        assert!(!p.exists(), "socket removed on drop");
        // A stale socket file is replaced.
        let l = UnixListener::bind(&p).unwrap();
        drop(l);
        assert!(p.exists());
        let srv = Server::bind(&p).unwrap();
        drop(srv);
        std::fs::remove_dir_all(p.parent().unwrap()).ok();
    }

    #[test]
    fn only_the_owner_and_root_are_allowed() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
    }
}
