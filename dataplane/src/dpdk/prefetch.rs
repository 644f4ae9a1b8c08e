//! A cache prefetch hint for any reference: `prefetcht0` on x86-64,
//! nothing elsewhere. Compiled with or without the `dpdk` feature (the
//! stateful engine uses it on plain memory too); it lives in the DPDK
//! layer's directory because that is where the crate's `unsafe` is allowed.

/// Asks the CPU to bring the cache line holding `x` into all cache levels,
/// without waiting for it. Unlike a load, the instruction retires at once,
/// so the misses of a whole burst overlap.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86-64 CPU has (it is
    // in the target's baseline); a prefetch never faults and does not
    // access memory architecturally, and `x` is a valid reference anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::prefetch;

    #[test]
    fn prefetch_leaves_the_value_alone() {
        let v = vec![7u64; 1024];
        for x in &v {
            prefetch(x);
        }
        assert!(v.iter().all(|&x| x == 7));
    }
}
