//! The packet buffer the translator and the state engine work on.
//!
//! Translation happens in place: IPv6 -> IPv4 shrinks the header (the front
//! is trimmed), IPv4 -> IPv6 grows it (bytes are prepended into headroom).
//! The payload never moves. In production the buffer is a DPDK mbuf whose
//! data starts at the IP header (the dataplane strips and re-adds Ethernet);
//! in tests and fuzzing it is [`VecBuf`].

/// Contiguous packet bytes with room in front of them.
pub trait PacketBuf {
    /// The packet, from its first header byte to its last byte.
    fn data(&self) -> &[u8];
    /// The packet, mutable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Bytes free in front of the packet.
    fn headroom(&self) -> usize;
    /// Bytes free behind the packet.
    fn tailroom(&self) -> usize;
    /// Grow the packet by `n` bytes at the front. The new bytes hold
    /// whatever was there before. Returns false (and changes nothing) when
    /// the headroom is too small.
    fn prepend(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the front. Returns false (and changes nothing)
    /// when the packet is shorter than `n`.
    fn adj(&mut self, n: usize) -> bool;
    /// Grow the packet by `n` bytes at the back. Returns false (and changes
    /// nothing) when the tailroom is too small.
    fn append(&mut self, n: usize) -> bool;
    /// Cut the packet to its first `len` bytes (no-op when already shorter).
    fn truncate(&mut self, len: usize);

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no bytes.
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }
}

/// A source of fresh buffers, for the rare cases where one packet becomes
/// several (fragmentation on translation). A mempool in production.
pub trait BufAlloc {
    /// The buffer type handed out.
    type Buf: PacketBuf;
    /// A new empty buffer with the pool's default headroom, or `None` when
    /// the pool is exhausted (the caller counts that and drops).
    fn alloc(&mut self) -> Option<Self::Buf>;
}

/// Default headroom of a [`VecBuf`], the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Default capacity of a [`VecBuf`]: headroom plus a jumbo-ish data room.
pub const DEFAULT_CAPACITY: usize = DEFAULT_HEADROOM + 9216;

/// A heap buffer with headroom, for tests, fuzzing and tools.
#[derive(Clone, PartialEq, Eq)]
pub struct VecBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    /// An empty buffer with `headroom` bytes in front and `capacity` in all.
    pub fn with_capacity(headroom: usize, capacity: usize) -> Self {
        assert!(headroom <= capacity, "headroom larger than capacity");
        VecBuf { storage: vec![0; capacity], start: headroom, end: headroom }
    }

    /// A buffer holding `bytes` after the default headroom. Packets longer
    /// than the default capacity get a larger buffer.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let cap = DEFAULT_CAPACITY.max(DEFAULT_HEADROOM + bytes.len());
        let mut b = Self::with_capacity(DEFAULT_HEADROOM, cap);
        b.end = b.start + bytes.len();
        b.storage[b.start..b.end].copy_from_slice(bytes);
        b
    }

    /// The packet bytes as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl Default for VecBuf {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_HEADROOM, DEFAULT_CAPACITY)
    }
}

impl core::fmt::Debug for VecBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "VecBuf({} bytes, headroom {})", self.len(), self.start)
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n;
        true
    }
    fn truncate(&mut self, len: usize) {
        if len < self.end - self.start {
            self.end = self.start + len;
        }
    }
}

/// Hands out [`VecBuf`]s, up to a limit (to test exhaustion).
#[derive(Debug, Clone)]
pub struct VecAlloc {
    /// How many more buffers may be handed out.
    pub remaining: usize,
}

impl Default for VecAlloc {
    fn default() -> Self {
        VecAlloc { remaining: usize::MAX }
    }
}

impl BufAlloc for VecAlloc {
    type Buf = VecBuf;
    fn alloc(&mut self) -> Option<VecBuf> {
        self.remaining = self.remaining.checked_sub(1)?;
        Some(VecBuf::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_keep_payload_in_place() {
        let mut b = VecBuf::from_slice(&[1, 2, 3, 4]);
        assert!(b.adj(2));
        assert_eq!(b.data(), &[3, 4]);
        assert!(b.prepend(3));
        assert_eq!(b.len(), 5);
        assert_eq!(&b.data()[3..], &[3, 4]);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM - 1);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut b = VecBuf::with_capacity(4, 8);
        assert!(!b.prepend(5));
        assert!(b.append(4));
        assert!(!b.append(1));
        assert!(!b.adj(5));
        b.truncate(2);
        assert_eq!(b.len(), 2);
        b.truncate(10);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn alloc_runs_out() {
        let mut a = VecAlloc { remaining: 1 };
        assert!(a.alloc().is_some());
        assert!(a.alloc().is_none());
    }
}
