//! Transparent huge pages for large heap arrays: `madvise(MADV_HUGEPAGE)`
//! over the whole 2 MiB pages of an allocation before its first touch.
//! Compiled with or without the `dpdk` feature (the session tables use it
//! on plain memory); it lives in the DPDK layer's directory because that is
//! where the crate's `unsafe` is allowed.

use core::mem::MaybeUninit;

/// Size and alignment of a transparent huge page (x86-64, and arm64 with
/// 4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the 2 MiB-aligned huge pages lying wholly inside
/// `mem` with huge pages when they are first touched (the system's THP mode
/// `madvise`, Debian's default, gives them to advised ranges only). The
/// partial pages at either end stay on 4 KiB pages, so the resident size
/// does not grow. Returns whether any range was advised; nothing is read or
/// written.
pub fn advise_huge<T>(mem: &mut [MaybeUninit<T>]) -> bool {
    let start = mem.as_mut_ptr() as usize;
    let end = start + core::mem::size_of_val(mem);
    let (a, b) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
    if b <= a {
        return false;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: [a, b) lies inside `mem`, memory this process owns and that
    // is borrowed mutably here; a and b - a are multiples of the page size.
    // MADV_HUGEPAGE only changes how the kernel backs the range: it never
    // changes the mapping, the contents or the validity of any pointer.
    let ok = unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) == 0 };
    #[cfg(not(target_os = "linux"))]
    let ok = false;
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ranges_are_not_advised() {
        let mut v: Vec<u64> = Vec::with_capacity(1000);
        assert!(!advise_huge(v.spare_capacity_mut()));
    }

    #[test]
    fn large_ranges_are_advised_and_keep_their_contents() {
        let n = HUGE_PAGE / 8 * 3;
        let mut v: Vec<u64> = Vec::with_capacity(n);
        assert!(advise_huge(v.spare_capacity_mut()));
        v.extend((0..n as u64).map(|i| i ^ 0x5a5a));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 ^ 0x5a5a));
    }
}
