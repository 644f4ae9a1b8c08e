//! Freshness of authenticated datagrams: a wall-clock window, the sender's
//! epoch, and a sliding window of sequence numbers per sender (the
//! anti-replay window of RFC 4303 §3.4.3, 64 wide).

use std::collections::HashMap;

use super::wire::Reject;

/// Wall-clock difference accepted between sender and receiver. Peers run
/// NTP; a captured datagram older than this is refused even in a fresh
/// window.
pub const MAX_SKEW_MS: u64 = 30_000;
/// Width of the sequence window.
pub const WINDOW: u64 = 64;
/// Senders remembered (an authenticated sender is a peer: a handful).
pub const MAX_SENDERS: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct Peer {
    epoch: u64,
    /// Highest sequence number accepted.
    top: u64,
    /// Bit i: `top - i` was accepted.
    seen: u64,
}

/// What an accepted datagram says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// Known sender, same epoch.
    Same,
    /// First datagram from this sender.
    NewSender,
    /// The sender restarted (a newer epoch): it lost its sessions.
    NewEpoch,
}

/// Per-sender replay state.
#[derive(Debug, Default)]
pub struct Guard {
    peers: HashMap<u64, Peer>,
}

impl Guard {
    /// Decides on a datagram's sender, epoch, sequence number and time
    /// against `now_ms` (unix ms), and records it when accepted. Call it
    /// only after the MAC and the whole layout checked out, so a refused
    /// datagram never moves a window.
    pub fn accept(
        &mut self,
        sender: u64,
        epoch: u64,
        seq: u64,
        time_ms: u64,
        now_ms: u64,
    ) -> Result<Fresh, Reject> {
        if seq == 0 {
            // Senders count from 1.
            return Err(Reject::Malformed);
        }
        if time_ms.abs_diff(now_ms) > MAX_SKEW_MS {
            return Err(Reject::Stale);
        }
        let fresh = Peer { epoch, top: seq, seen: 1 };
        let Some(p) = self.peers.get_mut(&sender) else {
            if self.peers.len() >= MAX_SENDERS {
                return Err(Reject::Stale);
            }
            self.peers.insert(sender, fresh);
            return Ok(Fresh::NewSender);
        };
        if epoch < p.epoch {
            return Err(Reject::Stale);
        }
        if epoch > p.epoch {
            *p = fresh;
            return Ok(Fresh::NewEpoch);
        }
        if seq > p.top {
            let shift = seq - p.top;
            p.seen = if shift >= WINDOW { 1 } else { p.seen << shift | 1 };
            p.top = seq;
            return Ok(Fresh::Same);
        }
        let back = p.top - seq;
        if back >= WINDOW || p.seen & (1 << back) != 0 {
            return Err(Reject::Replayed);
        }
        p.seen |= 1 << back;
        Ok(Fresh::Same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_takes_reordering_and_refuses_replays() {
        let mut g = Guard::default();
        let t = 5_000_000;
        assert_eq!(g.accept(1, 10, 5, t, t), Ok(Fresh::NewSender));
        assert_eq!(g.accept(1, 10, 5, t, t), Err(Reject::Replayed));
        assert_eq!(g.accept(1, 10, 7, t, t), Ok(Fresh::Same));
        assert_eq!(g.accept(1, 10, 6, t, t), Ok(Fresh::Same), "late but new");
        assert_eq!(g.accept(1, 10, 6, t, t), Err(Reject::Replayed));
        assert_eq!(g.accept(1, 10, 7 + WINDOW, t, t), Ok(Fresh::Same));
        assert_eq!(g.accept(1, 10, 7, t, t), Err(Reject::Replayed), "fell out of the window");
        assert_eq!(g.accept(1, 10, 8, t, t), Ok(Fresh::Same), "inside the window, never seen");
        // Another sender has its own window.
        assert_eq!(g.accept(2, 10, 5, t, t), Ok(Fresh::NewSender));
    }

    #[test]
    fn epochs_and_clock() {
        let mut g = Guard::default();
        let t = 5_000_000;
        assert_eq!(g.accept(1, 10, 100, t, t), Ok(Fresh::NewSender));
        assert_eq!(g.accept(1, 9, 200, t, t), Err(Reject::Stale), "older epoch");
        assert_eq!(g.accept(1, 11, 1, t, t), Ok(Fresh::NewEpoch), "restart");
        assert_eq!(g.accept(1, 10, 300, t, t), Err(Reject::Stale), "the old epoch is over");
        assert_eq!(g.accept(1, 11, 1, t, t), Err(Reject::Replayed));
        assert_eq!(g.accept(1, 11, 2, t - MAX_SKEW_MS - 1, t), Err(Reject::Stale));
        assert_eq!(g.accept(1, 11, 2, t + MAX_SKEW_MS + 1, t), Err(Reject::Stale));
        assert_eq!(g.accept(1, 11, 0, t, t), Err(Reject::Malformed));
        assert_eq!(g.accept(1, 11, 2, t + MAX_SKEW_MS, t), Ok(Fresh::Same), "refusals moved nothing");
    }
}
