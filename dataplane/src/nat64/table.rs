//! Fixed-size storage for the shard tables that scale with the session
//! capacity or the pool4 size (session and BIB records, index buckets,
//! pool4 slot arrays), placed on transparent huge pages.
//!
//! At a million sessions and more the tables span gigabytes and every
//! lookup touches a random record: on 4 KiB pages nearly every access also
//! misses the TLB. A table of at least one huge page is therefore advised
//! `MADV_HUGEPAGE` ([`crate::hugemem`]) before its first write, so the
//! kernel backs it with 2 MiB pages even where the system's THP mode is
//! `madvise` (the Debian default). The table is an ordinary `Vec`, so an
//! access costs what a slice access costs. [`Table::on_huge_pages`] says
//! whether the advice took.
//!
//! Explicit hugetlb pages are not used: the reserved ones belong to DPDK's
//! packet pools.

use crate::hugemem::{advise_huge, HUGE_PAGE};
use core::ops::{Deref, DerefMut};

/// A fixed-length array of `T`, on huge pages when it is large enough.
pub(crate) struct Table<T> {
    v: Vec<T>,
    huge: bool,
}

impl<T: Clone> Table<T> {
    /// `len` copies of `value`.
    pub(crate) fn filled(len: usize, value: T) -> Self {
        Self::from_fn(len, |_| value.clone())
    }
}

impl<T> Table<T> {
    /// `len` records, record `i` being `f(i)`.
    pub(crate) fn from_fn(len: usize, f: impl FnMut(usize) -> T) -> Self {
        let mut v = Vec::with_capacity(len);
        // Advised before the first write: the writes below fault the pages in.
        let huge =
            len.saturating_mul(core::mem::size_of::<T>()) >= HUGE_PAGE && advise_huge(v.spare_capacity_mut());
        v.extend((0..len).map(f));
        Table { v, huge }
    }

    /// Whether the records' memory was advised for huge pages (the kernel
    /// may still fall back to small pages when it has no free 2 MiB page:
    /// `AnonHugePages` in /proc/self/smaps says what it gave).
    pub(crate) fn on_huge_pages(&self) -> bool {
        self.huge
    }

    /// Bytes of records.
    pub(crate) fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.v)
    }
}

impl<T> Deref for Table<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        &self.v
    }
}

impl<T> DerefMut for Table<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_are_not_advised() {
        let t = Table::filled(1000, 7u32);
        assert!(!t.on_huge_pages());
        assert_eq!(t.len(), 1000);
        assert!(t.iter().all(|&v| v == 7));
        assert_eq!(t.memory_bytes(), 4000);
    }

    #[test]
    fn large_tables_are_advised_and_agree_with_a_vec() {
        let n = HUGE_PAGE / 8 * 3 + 5;
        let mut t = Table::from_fn(n, |i| [i as u32, !(i as u32)]);
        let v: Vec<[u32; 2]> = (0..n).map(|i| [i as u32, !(i as u32)]).collect();
        assert!(t.on_huge_pages());
        assert_eq!(&*t, &v[..]);
        assert_eq!(t.memory_bytes(), n * 8);
        t[n - 1] = [1, 2];
        assert_eq!(t[n - 1], [1, 2]);
        assert_eq!(t[0], [0, u32::MAX]);
    }

    #[test]
    fn empty_table() {
        let t = Table::filled(0, 0u64);
        assert!(t.is_empty());
        assert_eq!(t.memory_bytes(), 0);
    }
}
