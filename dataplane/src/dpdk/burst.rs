use dpdk_sys as sys;

use super::{Mbuf, RxQueue, TxQueue};

/// The largest burst moved at once (as l3fwd uses).
pub const MAX_BURST: usize = 32;

// The stateful look-ahead keeps its notes for this many burst positions;
// past them, packets get its first stage only.
const _: () = assert!(MAX_BURST <= crate::nat64::BURST);

/// Packets received in one `rx_burst`, on the stack. Iterating hands each
/// packet out as an owned [`Mbuf`]; whatever is not taken is freed on drop.
pub struct RxBurst {
    pkts: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
    next: usize,
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst { pkts: [std::ptr::null_mut(); MAX_BURST], len: 0, next: 0 }
    }
}

impl RxBurst {
    /// Receive up to [`MAX_BURST`] packets from `q`, replacing any packets
    /// still held (those are freed). Returns how many arrived.
    #[inline]
    pub fn receive(&mut self, q: &mut RxQueue) -> usize {
        self.free_rest();
        // SAFETY: pkts has room for MAX_BURST pointers; the driver writes
        // that many at most, each an mbuf we now own.
        let n = unsafe { sys::rte_eth_rx_burst(q.port, q.queue, self.pkts.as_mut_ptr(), MAX_BURST as u16) };
        self.len = n as usize;
        self.next = 0;
        self.len
    }

    /// Packets not yet taken.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.len - self.next
    }

    /// Prefetch the data of the packet `ahead` places after the next one.
    /// Inline `prefetcht0` (DPDK's `rte_prefetch0` is static inline, so
    /// calling it meant a call into the C wrapper for every packet).
    #[inline]
    pub fn prefetch(&self, ahead: usize) {
        let i = self.next + ahead;
        if i < self.len {
            if let Some(b) = self.data(i).first() {
                crate::prefetch::prefetch(b);
            }
        }
    }

    /// The bytes of packet `i` of the burst (from 0, as received) if it
    /// has not been taken yet: for the look-ahead, which reads packets
    /// ahead of the one being processed.
    #[inline]
    pub fn held_at(&self, i: usize) -> Option<&[u8]> {
        (self.next <= i && i < self.len).then(|| self.data(i))
    }

    /// The first segment's data of packet `i`, one not yet handed out
    /// (`next <= i < len`).
    #[inline]
    fn data(&self, i: usize) -> &[u8] {
        debug_assert!(self.next <= i && i < self.len);
        // SAFETY: each pointer in next..len is a valid mbuf we own and
        // have not handed out, so nothing mutates it while `&self` is
        // borrowed; its first segment's data is data_len bytes at
        // buf_addr + data_off.
        unsafe {
            let m = &*self.pkts[i];
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    fn free_rest(&mut self) {
        while self.next < self.len {
            // SAFETY: each pointer in next..len is owned and not handed out.
            drop(unsafe { Mbuf::from_raw(self.pkts[self.next]) });
            self.next += 1;
        }
        self.len = 0;
        self.next = 0;
    }
}

impl Iterator for RxBurst {
    type Item = Mbuf;
    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.len {
            return None;
        }
        let p = self.pkts[self.next];
        self.next += 1;
        // SAFETY: ownership of p moves out exactly once (next advanced).
        unsafe { Mbuf::from_raw(p) }
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.free_rest();
    }
}

/// Packets waiting to be sent on one TX queue (per worker, per port).
pub struct TxBuffer {
    pkts: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
    /// Packets the NIC refused and we freed.
    pub dropped: u64,
    /// Packets the NIC took.
    pub sent: u64,
}

impl Default for TxBuffer {
    fn default() -> Self {
        TxBuffer { pkts: [std::ptr::null_mut(); MAX_BURST], len: 0, dropped: 0, sent: 0 }
    }
}

impl TxBuffer {
    /// Queue a packet; sends the buffer to `q` when it fills up.
    #[inline]
    pub fn push(&mut self, m: Mbuf, q: &mut TxQueue) {
        self.pkts[self.len] = m.into_raw();
        self.len += 1;
        if self.len == MAX_BURST {
            self.flush(q);
        }
    }

    /// Packets waiting.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Send what waits; free what the NIC did not take. Returns how many
    /// were sent.
    #[inline]
    pub fn flush(&mut self, q: &mut TxQueue) -> usize {
        if self.len == 0 {
            return 0;
        }
        // SAFETY: pkts[..len] are owned mbufs; the driver takes ownership of
        // the first `sent` of them.
        let sent = unsafe { sys::rte_eth_tx_burst(q.port, q.queue, self.pkts.as_mut_ptr(), self.len as u16) }
            as usize;
        for &p in &self.pkts[sent..self.len] {
            // SAFETY: the NIC refused these; we still own them: free once.
            drop(unsafe { Mbuf::from_raw(p) });
        }
        self.dropped += (self.len - sent) as u64;
        self.sent += sent as u64;
        self.len = 0;
        sent
    }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        for &p in &self.pkts[..self.len] {
            // SAFETY: unsent packets are still ours: free each once.
            drop(unsafe { Mbuf::from_raw(p) });
        }
    }
}
