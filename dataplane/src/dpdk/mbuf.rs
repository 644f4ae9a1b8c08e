use std::ptr::NonNull;

use dpdk_sys as sys;

use crate::buf::PacketBuf;

/// An owned packet buffer. Freed exactly once: by `Drop`, or by the driver
/// after [`Mbuf::into_raw`] handed it to a TX queue.
///
/// The [`PacketBuf`] view covers the first segment only; the appliance
/// configures RX without scatter, so packets arrive in one segment, and
/// [`Mbuf::is_contiguous`] lets the dataplane drop anything else.
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the sole owner of its rte_mbuf; moving it to another
// thread moves that ownership (mempools are thread-safe to free into).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf (null gives `None`).
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else owns or will free.
    #[inline]
    pub unsafe fn from_raw(raw: *mut sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(raw).map(Mbuf)
    }

    /// Give up ownership, for a transmit burst.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as `self` lives.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { self.0.as_mut() }
    }

    /// True when the whole packet sits in this first segment.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The RSS hash the NIC computed (0 when it computed none).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: reading a u32 union member is valid for any bit pattern.
        unsafe { self.raw().__bindgen_anon_2.hash.rss }
    }

    /// The NIC's packet-type classification (`RTE_PTYPE_*` bits).
    #[inline]
    pub fn packet_type(&self) -> u32 {
        // SAFETY: reading a u32 union member is valid for any bit pattern.
        unsafe { self.raw().__bindgen_anon_1.packet_type }
    }

    /// The port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Prefetch the first cache line of packet data (inline `prefetcht0`,
    /// not a call into DPDK's C wrapper).
    #[inline]
    pub fn prefetch(&self) {
        if let Some(b) = self.data().first() {
            crate::prefetch::prefetch(b);
        }
    }

    /// Set the whole packet's bytes (length and contents), for packets the
    /// appliance builds itself. Fails when the data room is too small.
    pub fn set_bytes(&mut self, bytes: &[u8]) -> bool {
        let cur = self.len();
        if bytes.len() > cur && !self.append(bytes.len() - cur) {
            return false;
        }
        self.truncate(bytes.len());
        self.data_mut().copy_from_slice(bytes);
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (and its chain); this is the one free.
        unsafe { sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: the first segment's data is data_len initialised bytes at
        // buf_addr + data_off, inside the buffer DPDK allocated; the slice
        // lives no longer than the borrow of `self`, which owns the mbuf.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }

    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        (m.buf_len as usize).saturating_sub(m.data_off as usize + m.data_len as usize)
    }

    // prepend/adj/append are a few field updates on a single-segment mbuf:
    // done here, inline, with the checks DPDK's static-inline versions make,
    // instead of a call through the C wrapper for every packet. Chains go
    // to DPDK's functions.

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > usize::from(m.data_off) {
            return false;
        }
        let n16 = n as u16;
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > usize::from(m.data_len) {
            return false;
        }
        let n16 = n as u16;
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if self.is_contiguous() {
            if n > self.tailroom() {
                return false;
            }
            let m = self.raw_mut();
            let n16 = n as u16;
            m.data_len += n16;
            m.pkt_len += u32::from(n16);
            return true;
        }
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: we own the mbuf; rte_pktmbuf_append checks the last
        // segment's tailroom and changes nothing when it is too small.
        !unsafe { sys::rte_pktmbuf_append(self.0.as_ptr(), n) }.is_null()
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        let cur = self.raw().data_len as usize;
        if len >= cur {
            return;
        }
        if self.is_contiguous() {
            let m = self.raw_mut();
            let cut = (cur - len) as u16;
            m.data_len -= cut;
            m.pkt_len -= u32::from(cut);
        } else {
            // SAFETY: we own the mbuf and trim less than the segment holds.
            unsafe { sys::rte_pktmbuf_trim(self.0.as_ptr(), (cur - len) as u16) };
        }
    }
}
