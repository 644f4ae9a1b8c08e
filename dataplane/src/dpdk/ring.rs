//! Single-producer / single-consumer rings of mbufs (`rte_ring` with the
//! SP/SC flags), for handing a packet to the worker that owns its state.
//! The two ends are separate handles, neither `Clone`, so the type system
//! keeps each ring single-producer and single-consumer.

use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use super::{DpdkError, Mbuf, MAX_BURST};

// rte_ring.h flag macros (outside the bindgen allowlist).
const RING_F_SP_ENQ: u32 = 0x0001;
const RING_F_SC_DEQ: u32 = 0x0002;

struct Inner(NonNull<sys::rte_ring>);

// SAFETY: an rte_ring is made for use from two threads at once: with the
// SP/SC flags, one producer and one consumer, which the handles enforce.
unsafe impl Send for Inner {}
// SAFETY: as above; shared only between the one RingTx and the one RingRx.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // Both ends are gone: free what is still queued, then the ring.
        let mut ptrs = [std::ptr::null_mut::<c_void>(); MAX_BURST];
        loop {
            // SAFETY: the ring is valid and no other thread uses it any more.
            let n = unsafe {
                sys::rte_ring_dequeue_burst(
                    self.0.as_ptr(),
                    ptrs.as_mut_ptr(),
                    MAX_BURST as u32,
                    std::ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            for &p in &ptrs[..n] {
                // SAFETY: every object in the ring is an mbuf a RingTx gave up.
                drop(unsafe { Mbuf::from_raw(p as *mut sys::rte_mbuf) });
            }
        }
        // SAFETY: valid ring, now empty and unused.
        unsafe { sys::rte_ring_free(self.0.as_ptr()) }
    }
}

/// The producing end of a handoff ring.
pub struct RingTx(Arc<Inner>);
/// The consuming end of a handoff ring.
pub struct RingRx(Arc<Inner>);

/// A ring for `size` mbufs (a power of two; one slot stays free).
pub fn mbuf_ring(name: &str, size: u32) -> Result<(RingTx, RingRx), DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError::new("rte_ring_create", 22, name))?;
    // SAFETY: c is a valid C string; DPDK copies the name.
    let raw = unsafe { sys::rte_ring_create(c.as_ptr(), size, -1, RING_F_SP_ENQ | RING_F_SC_DEQ) };
    let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_errno("rte_ring_create", name))?;
    let inner = Arc::new(Inner(raw));
    Ok((RingTx(inner.clone()), RingRx(inner)))
}

impl RingTx {
    /// Queue one packet; a full ring gives it back (the caller counts and
    /// drops it: the producer never waits).
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let p = m.into_raw() as *mut c_void;
        // SAFETY: single producer (this handle is the only RingTx); the
        // object pointer is an owned mbuf whose ownership moves on success.
        let n = unsafe { sys::rte_ring_enqueue_burst(self.0 .0.as_ptr(), &p, 1, std::ptr::null_mut()) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: the enqueue failed, so we still own the mbuf.
            Err(unsafe { Mbuf::from_raw(p as *mut sys::rte_mbuf) }.expect("non-null"))
        }
    }
}

impl RingRx {
    /// Take up to [`MAX_BURST`] packets, handing each to `f`. Returns how many.
    #[inline]
    pub fn drain(&mut self, mut f: impl FnMut(Mbuf)) -> usize {
        let mut ptrs = [std::ptr::null_mut::<c_void>(); MAX_BURST];
        // SAFETY: single consumer (this handle is the only RingRx); the
        // array has room for MAX_BURST pointers.
        let n = unsafe {
            sys::rte_ring_dequeue_burst(
                self.0 .0.as_ptr(),
                ptrs.as_mut_ptr(),
                MAX_BURST as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        for &p in &ptrs[..n] {
            // SAFETY: each dequeued object is an mbuf a RingTx gave up; we
            // take its ownership exactly once.
            if let Some(m) = unsafe { Mbuf::from_raw(p as *mut sys::rte_mbuf) } {
                f(m);
            }
        }
        n
    }
}
