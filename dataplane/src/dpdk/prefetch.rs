//! A cache prefetch hint for any reference: `prefetcht0` on x86-64,
//! nothing elsewhere. Compiled with or without the `dpdk` feature (the
//! stateful engine uses it on plain memory too); it lives in the DPDK
//! layer's directory because that is where the crate's `unsafe` is allowed.

/// Asks the CPU to bring the cache line holding `x` into all cache levels,
/// without waiting for it. Unlike a load, the instruction retires at once,
/// so the misses of a whole burst overlap.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    line((x as *const T).cast());
}

/// [`prefetch`] for a record that may straddle two cache lines: a size
/// that does not divide 64 (the 28-byte BIB record, say) puts some
/// records across a line boundary (6 in 16 for 28 bytes), and the line
/// holding the record's end would otherwise come in later, on demand.
/// The second request is compiled in only for such sizes; when both ends
/// share a line it is a hit on a line already in flight.
#[inline(always)]
pub fn prefetch_record<T>(x: &T) {
    let (start, n) = ((x as *const T).cast::<u8>(), core::mem::size_of::<T>());
    line(start);
    if n > 1 && 64 % n != 0 {
        line(start.wrapping_add(n - 1));
    }
}

/// `prefetcht0` on the line holding address `p`.
#[inline(always)]
fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 CPU has (it is
    // in the target's baseline); a prefetch never faults and does not
    // access memory architecturally, whatever the address (the callers
    // pass addresses inside a live reference anyway).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::{prefetch, prefetch_record};

    #[test]
    fn prefetch_leaves_the_value_alone() {
        let v = vec![7u64; 1024];
        for x in &v {
            prefetch(x);
        }
        assert!(v.iter().all(|&x| x == 7));
    }

    #[test]
    fn prefetch_record_leaves_straddling_records_alone() {
        let v = vec![[3u8; 28]; 64];
        for x in &v {
            prefetch_record(x);
        }
        assert!(v.iter().all(|r| r.iter().all(|&b| b == 3)));
    }
}
