//! Session synchronization between appliances (docs/ha.md).
//!
//! Workers queue their session changes (`nat64::SyncQueue`, one per
//! worker and instance, never blocking). The sync thread here batches them
//! into authenticated UDP datagrams ([`wire`]) for the peers, re-sends
//! every session every `refresh_s` and whenever a queue overflowed (a
//! resync repairs the loss), answers peers' resync requests by walking the
//! tables, and applies what the peers send: verified ([`wire::Key`]),
//! fresh ([`guard::Guard`]), grouped by the worker owning each mapping and
//! posted to that worker's mailbox (`ops::Request::SyncImport`).

pub mod engine;
pub mod guard;
pub mod wire;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use engine::Engine;
use wire::Reject;

/// Shortest key accepted (the HMAC-SHA256 output size).
pub const MIN_KEY_LEN: usize = 32;

/// Reads the shared secret: the whole file, as is. Refused when shorter
/// than 32 bytes or readable or writable by group or others.
pub fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}: the key must be private to its owner (0600)",
            path.display()
        ));
    }
    let key = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if key.len() < MIN_KEY_LEN {
        return Err(format!(
            "{} holds {} bytes: the key needs at least {MIN_KEY_LEN}",
            path.display(),
            key.len()
        ));
    }
    Ok(key)
}

/// Sync counters, written by the sync thread, read by metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams with session records sent (to each peer counted once).
    pub batches_sent: AtomicU64,
    /// Session records sent.
    pub sessions_sent: AtomicU64,
    /// Datagrams with session records accepted.
    pub batches_received: AtomicU64,
    /// Session records accepted (and handed to a worker).
    pub sessions_received: AtomicU64,
    /// Datagrams refused, by reason (index: `Reject as usize`).
    pub rejected: [AtomicU64; Reject::COUNT],
    /// Records of accepted datagrams whose mapping no worker here owns.
    pub sessions_not_owned: AtomicU64,
    /// Changes workers dropped because their queue was full (each marks a
    /// repair resync).
    pub dropped_queue_full: AtomicU64,
    /// Received records dropped because a worker's mailbox stayed full.
    pub dropped_mailbox_full: AtomicU64,
    /// Datagrams the socket refused to send.
    pub send_errors: AtomicU64,
    /// Resync requests sent (at start and when a peer restarted).
    pub resync_requested: AtomicU64,
    /// Bulk resyncs served to a peer that asked.
    pub resync_served: AtomicU64,
    /// Bulk resyncs received completely (end marker seen, every data
    /// datagram it announces accepted).
    pub resync_received: AtomicU64,
    /// Bulk resyncs whose end marker announced more data datagrams than
    /// arrived (each asked again, up to `engine::RESYNC_RETRIES` times).
    pub resync_incomplete: AtomicU64,
    /// Walks re-sending a worker's table after its queue overflowed.
    pub resync_repair: AtomicU64,
    /// Periodic refresh walks started.
    pub refresh_walks: AtomicU64,
}

impl Counters {
    /// Datagrams refused for `r`.
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r as usize].load(Relaxed)
    }

    /// Every counter by name (what `nat64ctl stats` shows; non-zero
    /// rejections only).
    pub fn json(&self) -> serde_json::Value {
        let v = |a: &AtomicU64| a.load(Relaxed);
        let rejected: serde_json::Map<String, serde_json::Value> = Reject::ALL
            .iter()
            .filter(|r| self.rejected(**r) > 0)
            .map(|r| (r.name().to_string(), self.rejected(*r).into()))
            .collect();
        serde_json::json!({
            "batches_sent": v(&self.batches_sent), "sessions_sent": v(&self.sessions_sent),
            "batches_received": v(&self.batches_received), "sessions_received": v(&self.sessions_received),
            "rejected": rejected, "sessions_not_owned": v(&self.sessions_not_owned),
            "dropped_queue_full": v(&self.dropped_queue_full),
            "dropped_mailbox_full": v(&self.dropped_mailbox_full), "send_errors": v(&self.send_errors),
            "resync_requested": v(&self.resync_requested), "resync_served": v(&self.resync_served),
            "resync_received": v(&self.resync_received),
            "resync_incomplete": v(&self.resync_incomplete), "resync_repair": v(&self.resync_repair),
            "refresh_walks": v(&self.refresh_walks),
        })
    }

    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_must_be_long_and_private() {
        let dir = std::env::temp_dir().join(format!("nat64-sync-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        std::fs::write(&p, [3u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key(&p).unwrap(), vec![3u8; 32]);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_key(&p).unwrap_err().contains("mode 0640"));
        std::fs::write(&p, [3u8; 31]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_key(&p).unwrap_err().contains("31 bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
