//! Fixed-size storage for the shard tables that scale with the session
//! capacity or the pool4 size (session and BIB records, index buckets,
//! pool4 slot arrays), placed on transparent huge pages.
//!
//! At a million sessions and more the tables span gigabytes and every
//! lookup touches a random record: on 4 KiB pages nearly every access also
//! misses the TLB. A table of at least one huge page is therefore an
//! anonymous mapping, 2 MiB aligned, advised `MADV_HUGEPAGE` before its
//! first touch, so the kernel backs it with 2 MiB pages even where the
//! system's THP mode is `madvise` (the Debian default). If the mapping
//! fails the table is an ordinary `Vec`; if only the advice fails it stays
//! an ordinary (4 KiB page) mapping. [`Table::on_huge_pages`] says which.
//!
//! Explicit hugetlb pages are not used: the reserved ones belong to DPDK's
//! packet pools.
//!
//! The records are `bytemuck::Pod`, so the mapped bytes are viewed as typed
//! slices without `unsafe`.

use bytemuck::Pod;
use core::ops::{Deref, DerefMut};
use memmap2::{Advice, MmapMut, MmapOptions};

/// Size and alignment of a transparent huge page (x86-64, arm64 with 4 KiB
/// base pages).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Where a table's records live.
enum Mem<T> {
    /// An anonymous mapping; the records start `off` bytes in (the first
    /// 2 MiB boundary) and end at byte `end`.
    Mapped { map: MmapMut, off: usize, end: usize, huge: bool },
    /// The heap: tables below one huge page, or when mapping failed.
    Heap(Vec<T>),
}

/// A fixed-length array of `T`, on huge pages when it is large enough.
pub(crate) struct Table<T: Pod> {
    mem: Mem<T>,
}

impl<T: Pod> Table<T> {
    /// `len` copies of `value`.
    pub(crate) fn filled(len: usize, value: T) -> Self {
        Self::from_fn(len, |_| value)
    }

    /// `len` records, record `i` being `f(i)`.
    pub(crate) fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> Self {
        let bytes = len.saturating_mul(core::mem::size_of::<T>());
        let mem = match Self::map(bytes) {
            Some((map, off, huge)) => Mem::Mapped { map, off, end: off + bytes, huge },
            None => Mem::Heap(Vec::with_capacity(len)),
        };
        let mut t = Table { mem };
        if let Mem::Heap(v) = &mut t.mem {
            v.extend((0..len).map(f));
        } else {
            // The first write faults the pages in (huge ones: advised before).
            t.iter_mut().enumerate().for_each(|(i, r)| *r = f(i));
        }
        t
    }

    /// A mapping holding `bytes` from a 2 MiB boundary on, and whether the
    /// huge page advice took. `None` below one huge page or when the
    /// mapping fails.
    fn map(bytes: usize) -> Option<(MmapMut, usize, bool)> {
        if bytes < HUGE_PAGE || core::mem::align_of::<T>() > HUGE_PAGE {
            return None;
        }
        // One spare huge page of address space to align the start: the
        // untouched head takes no memory.
        let map = MmapOptions::new().len(bytes.checked_add(HUGE_PAGE)?).map_anon().ok()?;
        // (From the address: `align_offset` may decline to compute it.)
        let off = (HUGE_PAGE - map.as_ptr() as usize % HUGE_PAGE) % HUGE_PAGE;
        // Only whole huge pages: the tail stays on small pages, so the
        // resident size does not grow by up to 2 MiB per table.
        let whole = bytes / HUGE_PAGE * HUGE_PAGE;
        let huge = map.advise_range(Advice::HugePage, off, whole).is_ok();
        Some((map, off, huge))
    }

    /// Whether the records sit in a mapping advised for huge pages (the
    /// kernel may still fall back to small pages when it has no free 2 MiB
    /// page: `AnonHugePages` in /proc/self/smaps says what it gave).
    pub(crate) fn on_huge_pages(&self) -> bool {
        matches!(self.mem, Mem::Mapped { huge: true, .. })
    }

    /// Whether the records are in a mapping rather than on the heap.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.mem, Mem::Mapped { .. })
    }

    /// Bytes of records.
    pub(crate) fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&**self)
    }
}

impl<T: Pod> Deref for Table<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        match &self.mem {
            Mem::Mapped { map, off, end, .. } => bytemuck::cast_slice(&map[*off..*end]),
            Mem::Heap(v) => v,
        }
    }
}

impl<T: Pod> DerefMut for Table<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.mem {
            Mem::Mapped { map, off, end, .. } => bytemuck::cast_slice_mut(&mut map[*off..*end]),
            Mem::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tables_stay_on_the_heap() {
        let t = Table::filled(1000, 7u32);
        assert!(!t.on_huge_pages());
        assert!(!t.is_mapped());
        assert_eq!(t.len(), 1000);
        assert!(t.iter().all(|&v| v == 7));
        assert_eq!(t.memory_bytes(), 4000);
    }

    #[test]
    fn large_tables_are_mapped_aligned_and_agree_with_a_vec() {
        let n = HUGE_PAGE / 8 * 3 + 5;
        let mut t = Table::from_fn(n, |i| [i as u32, !(i as u32)]);
        let v: Vec<[u32; 2]> = (0..n).map(|i| [i as u32, !(i as u32)]).collect();
        assert!(t.is_mapped());
        assert_eq!(t.as_ptr() as usize % HUGE_PAGE, 0);
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
