use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::{DpdkError, Mbuf};
use crate::buf::BufAlloc;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Thread-safe:
/// workers allocate and free through their per-lcore caches.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: DPDK mempools are designed for concurrent get/put from any thread.
unsafe impl Send for Mempool {}
// SAFETY: as above; every method only calls thread-safe mempool functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `n` mbufs with `data_room` bytes each (headroom included),
    /// a per-lcore cache of `cache` mbufs, on NUMA `socket` (-1: any).
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("rte_pktmbuf_pool_create", 22, name))?;
        // SAFETY: cname is a valid C string for the duration of the call;
        // DPDK copies the name.
        let raw = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(raw)
            .map(|raw| Mempool { raw, name: name.to_string() })
            .ok_or_else(|| DpdkError::from_errno("rte_pktmbuf_pool_create", name))
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// A fresh mbuf (empty, default headroom), or `None` when exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a returned mbuf is owned by nobody else.
        unsafe { Mbuf::from_raw(sys::rte_pktmbuf_alloc(self.raw.as_ptr())) }
    }

    /// Mbufs currently handed out (includes those sitting in lcore caches,
    /// as DPDK counts them).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid; the count is a read-only walk.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Mbufs available for allocation.
    pub fn available(&self) -> u32 {
        // SAFETY: as above.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // An mbuf or a port ring still holding buffers would free into a
        // dead pool: keep the pool alive (leak it) rather than risk that.
        if self.in_use() != 0 {
            return;
        }
        // SAFETY: the pool is valid and no mbuf of it is outstanding.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}

impl BufAlloc for &Mempool {
    type Buf = Mbuf;
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        Mempool::alloc(self)
    }
}
