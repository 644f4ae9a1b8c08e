//! Keyed hashing and the open-addressing index used by the BIB and session
//! tables.
//!
//! The index maps a 64-bit hash to a `u32` record number. It is a flat array
//! of 64-byte buckets (one cache line each) holding ten `(16-bit tag, u32
//! record)` pairs. Collisions probe the next bucket (linear probing over
//! buckets). Each bucket counts how many entries had to probe past it
//! (`overflow`), so a lookup stops at the first bucket whose count is zero
//! and deletion needs no tombstones: the counts along the probe path are
//! decremented. At the 90 % load the tables are sized for, almost every
//! lookup reads one bucket and then exactly one record.

use super::table::Table;

/// Slots per bucket: 10 x (2 + 4) bytes + a 4-byte overflow count = 64.
const SLOTS: usize = 10;
/// Marks a free slot.
pub(crate) const NONE: u32 = u32::MAX;
/// Highest load the index is sized for (entries / slots).
const MAX_LOAD: f64 = 0.9;

/// One cache line of the index.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u16; SLOTS],
    recs: [u32; SLOTS],
    overflow: u32,
}

const EMPTY_BUCKET: Bucket = Bucket { tags: [0; SLOTS], recs: [NONE; SLOTS], overflow: 0 };

/// Folded 64x64->128 multiply: the mixing step of the keyed hash.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A keyed hash over up to three 64-bit words. The key is drawn at start
/// (seeded by the caller), so remote hosts cannot aim collisions at one
/// bucket chain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hasher {
    k0: u64,
    k1: u64,
    k2: u64,
}

impl Hasher {
    /// A hasher keyed from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        Hasher { k0: rng.u64(..) | 1, k1: rng.u64(..) | 1, k2: rng.u64(..) | 1 }
    }

    /// Hash of two words.
    #[inline(always)]
    pub(crate) fn h2(&self, a: u64, b: u64) -> u64 {
        fold(a ^ self.k0, b ^ self.k1)
    }

    /// Hash of three words.
    #[inline(always)]
    pub(crate) fn h3(&self, a: u64, b: u64, c: u64) -> u64 {
        fold(fold(a ^ self.k0, b ^ self.k1) ^ c, self.k2)
    }
}

/// The candidates of one lookup ([`Index::probe`]).
pub(crate) struct Probe<'a> {
    bks: &'a [Bucket],
    tag: u16,
    /// The bucket being scanned, the next slot in it, and how many buckets
    /// the walk may still scan, this one included (each at most once, as
    /// in [`Index::find`]).
    b: usize,
    i: usize,
    left: usize,
}

impl Iterator for Probe<'_> {
    type Item = u32;

    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        loop {
            let bk = self.bks.get(self.b)?;
            let i = Index::next_tag(bk, self.tag, self.i);
            if let Some(&r) = bk.recs.get(i) {
                self.i = i + 1;
                if r != NONE {
                    return Some(r);
                }
                continue;
            }
            // Past the bucket's last slot: on to the next bucket only when
            // some entry had to probe past this one.
            if bk.overflow == 0 || self.left <= 1 {
                return None;
            }
            self.left -= 1;
            self.b = Index::next(self.bks, self.b);
            self.i = 0;
        }
    }
}

/// Open-addressing index from hash to record number.
pub(crate) struct Index {
    buckets: Table<Bucket>,
    nb: u64,
}

impl Index {
    /// An index able to hold `entries` records at no more than 90 % load.
    pub(crate) fn with_capacity(entries: usize) -> Self {
        let nb = ((entries as f64 / (SLOTS as f64 * MAX_LOAD)).ceil() as usize).max(1);
        Index { buckets: Table::filled(nb, EMPTY_BUCKET), nb: nb as u64 }
    }

    /// Bytes allocated.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.buckets.memory_bytes()
    }

    /// Whether the buckets are on huge pages.
    pub(crate) fn on_huge_pages(&self) -> bool {
        self.buckets.on_huge_pages()
    }

    /// Home bucket: the high half of the hash scaled to the bucket count
    /// (multiply-shift, so the count need not be a power of two).
    #[inline(always)]
    fn home(&self, h: u64) -> usize {
        (((h >> 32) * self.nb) >> 32) as usize
    }

    /// The bucket after `b` in `bks`, wrapping. (The methods borrow the
    /// buckets once as `bks`: each `Table` deref costs a few checks.)
    #[inline(always)]
    fn next(bks: &[Bucket], b: usize) -> usize {
        if b + 1 == bks.len() {
            0
        } else {
            b + 1
        }
    }

    /// Requests the home bucket of `h` from memory without waiting for it
    /// (a prefetch, not a load: the core goes on, so the misses of several
    /// lookups overlap).
    #[inline(always)]
    pub(crate) fn touch(&self, h: u64) {
        if let Some(b) = self.buckets.get(self.home(h)) {
            crate::prefetch::prefetch(b);
        }
    }

    /// The first slot at or after `from` holding tag `tag` (`SLOTS`: none).
    /// A scan, not a vector compare and mask: it stops at the first match,
    /// and inserts fill a bucket from slot 0, so a lookup in a lightly
    /// loaded table compares one tag, and one in a full bucket half of
    /// them on average (the compiler unrolls it to a compare and a branch
    /// per slot, where the mask cost about 30 instructions whatever the
    /// load).
    #[inline(always)]
    fn next_tag(bk: &Bucket, tag: u16, from: usize) -> usize {
        let mut i = from;
        while i < SLOTS && bk.tags[i] != tag {
            i += 1;
        }
        i
    }

    /// Bit i set when slot i holds tag `tag` (branch-free).
    #[inline(always)]
    fn tag_mask(bk: &Bucket, tag: u16) -> u32 {
        let mut m = 0u32;
        for i in 0..SLOTS {
            m |= ((bk.tags[i] == tag) as u32) << i;
        }
        m
    }

    /// The first record in the home bucket whose tag matches `h` (or
    /// `NONE`): what a burst lookup touches before comparing keys. This
    /// runs for many packets back to back only when the tables are large,
    /// that is full: branch-free there, as a scan would mispredict its
    /// exit once per call (1M sessions: 715 against 683 cycles 6->4).
    #[inline(always)]
    pub(crate) fn candidate(&self, h: u64) -> u32 {
        let Some(bk) = self.buckets.get(self.home(h)) else {
            return NONE;
        };
        let m = Self::tag_mask(bk, h as u16);
        bk.recs.get(m.trailing_zeros() as usize).copied().unwrap_or(NONE)
    }

    /// Finds the record for hash `h` whose key `eq` accepts. ([`Index::probe`]
    /// walks the same records; written as nested loops here, the first
    /// bucket's scan starts from a constant, which cost the 4->6 lookups
    /// 4 to 15 instructions less than a loop over the probe.)
    #[inline(always)]
    pub(crate) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = h as u16;
        let mut b = self.home(h);
        let bks = &*self.buckets;
        for _ in 0..bks.len() {
            let bk = &bks[b];
            let mut i = Self::next_tag(bk, tag, 0);
            while let Some(&r) = bk.recs.get(i) {
                if r != NONE && eq(r) {
                    return Some(r);
                }
                i = Self::next_tag(bk, tag, i + 1);
            }
            if bk.overflow == 0 {
                return None;
            }
            b = Self::next(bks, b);
        }
        None
    }

    /// The records stored under hash `h`'s tag, in probe order: a loop over
    /// them keeps the key compare in the caller's own code, where a closure
    /// handed to [`Index::find`] may be compiled as a call.
    #[inline(always)]
    pub(crate) fn probe(&self, h: u64) -> Probe<'_> {
        Probe { bks: &self.buckets, tag: h as u16, b: self.home(h), i: 0, left: self.buckets.len() }
    }

    /// Inserts record `rec` under hash `h`. Returns false only when every
    /// slot is taken (callers size the index above their record capacity,
    /// so that does not happen).
    pub(crate) fn insert(&mut self, h: u64, rec: u32) -> bool {
        let tag = h as u16;
        let home = self.home(h);
        let mut b = home;
        let bks = &mut *self.buckets;
        for _ in 0..bks.len() {
            let bk = &mut bks[b];
            if let Some(i) = bk.recs.iter().position(|&r| r == NONE) {
                bk.tags[i] = tag;
                bk.recs[i] = rec;
                // Every bucket passed over now has one more entry beyond it.
                let mut p = home;
                while p != b {
                    bks[p].overflow += 1;
                    p = Self::next(bks, p);
                }
                return true;
            }
            b = Self::next(bks, b);
        }
        false
    }

    /// Removes record `rec` stored under hash `h`. Returns whether it was
    /// there.
    pub(crate) fn remove(&mut self, h: u64, rec: u32) -> bool {
        let home = self.home(h);
        let mut b = home;
        let bks = &mut *self.buckets;
        for _ in 0..bks.len() {
            let bk = &mut bks[b];
            if let Some(i) = bk.recs.iter().position(|&r| r == rec) {
                bk.recs[i] = NONE;
                let mut p = home;
                while p != b {
                    bks[p].overflow -= 1;
                    p = Self::next(bks, p);
                }
                return true;
            }
            if bk.overflow == 0 {
                return false;
            }
            b = Self::next(bks, b);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_one_cache_line() {
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
    }

    #[test]
    fn insert_find_remove_with_forced_collisions() {
        // Three buckets, 28 entries whose hashes all land in bucket 0: the
        // overflow counts must carry lookups over into buckets 1 and 2.
        let mut ix = Index::with_capacity(27);
        assert_eq!(ix.buckets.len(), 3);
        let h = |i: u32| (i as u64) & 0xffff; // high half 0 => home bucket 0
        for i in 0..28 {
            assert!(ix.insert(h(i), i));
        }
        for i in 0..28 {
            assert_eq!(ix.find(h(i), |r| r == i), Some(i));
        }
        assert_eq!(ix.buckets[0].overflow, 18);
        assert_eq!(ix.buckets[1].overflow, 8);
        for i in 0..28 {
            assert!(ix.remove(h(i), i), "{i}");
            assert_eq!(ix.find(h(i), |r| r == i), None);
        }
        assert!(ix.buckets.iter().all(|b| b.overflow == 0));
        assert!(!ix.remove(h(3), 3));
    }

    #[test]
    fn scan_goes_past_tag_matches_of_other_keys_and_freed_slots() {
        // 25 records under one hash: one home bucket, one tag, spilling
        // into two more buckets. A lookup must go past every tag match whose
        // key differs and past freed slots that keep their tag.
        let mut ix = Index::with_capacity(27);
        let h = 0x1234u64;
        for i in 0..25 {
            assert!(ix.insert(h, i));
        }
        for i in 0..25 {
            assert_eq!(ix.find(h, |r| r == i), Some(i));
        }
        assert_eq!(ix.candidate(h), 0);
        for i in (0..25).step_by(2) {
            assert!(ix.remove(h, i));
        }
        for i in 0..25 {
            assert_eq!(ix.find(h, |r| r == i), (i % 2 == 1).then_some(i), "{i}");
        }
        // The first slot with the tag was freed; no slot has another tag.
        assert_eq!(ix.candidate(h), NONE);
        assert_eq!(ix.candidate(h + 1), NONE);
        assert_eq!(ix.find(h + 1, |_| true), None);
    }

    #[test]
    fn probe_walks_the_records_find_would_try_in_order() {
        // As above: 25 records under one tag over three buckets, then every
        // other one freed; plus one record with the same home bucket under
        // another tag (it lands in the third bucket), which the probe must
        // skip.
        let mut ix = Index::with_capacity(27);
        let h = 0x1234u64;
        for i in 0..25 {
            assert!(ix.insert(h, i));
        }
        assert!(ix.insert(h + 1, 99));
        assert_eq!(ix.probe(h).collect::<Vec<_>>(), (0..25).collect::<Vec<_>>());
        for i in (0..25).step_by(2) {
            assert!(ix.remove(h, i));
        }
        let odd: Vec<u32> = (1..25).step_by(2).collect();
        assert_eq!(ix.probe(h).collect::<Vec<_>>(), odd);
        // Record 99 is the only candidate of its own hash.
        assert_eq!(ix.probe(h + 1).collect::<Vec<_>>(), vec![99]);
        // A tag nobody has: nothing, after the same buckets.
        assert_eq!(ix.probe(h + 2).count(), 0);
    }

    #[test]
    fn probe_of_a_full_index_stops_after_every_bucket() {
        // Every slot taken under one home bucket, and every bucket marked as
        // overflowing (the last one of a chain never is; this is the worst
        // state the counts could be in): the walk must end once it has
        // been round, not loop.
        let mut ix = Index::with_capacity(27);
        let n = (ix.buckets.len() * SLOTS) as u32;
        for i in 0..n {
            assert!(ix.insert(0x77, i));
        }
        assert_eq!(ix.buckets[2].overflow, 0);
        ix.buckets.iter_mut().for_each(|b| b.overflow = b.overflow.max(1));
        assert_eq!(ix.probe(0x77).count(), n as usize);
        assert_eq!(ix.probe(0x78).count(), 0);
    }

    #[test]
    fn full_index_refuses() {
        let mut ix = Index::with_capacity(9);
        for i in 0..10 {
            assert!(ix.insert(i as u64, i));
        }
        assert!(!ix.insert(99, 99));
    }

    #[test]
    fn random_churn_matches_model() {
        use std::collections::HashMap;
        let hs = Hasher::new(7);
        let mut ix = Index::with_capacity(5000);
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut rng = fastrand::Rng::with_seed(3);
        for step in 0..200_000u32 {
            let k = rng.u32(0..6000);
            let h = hs.h2(k as u64, 11);
            if let std::collections::hash_map::Entry::Vacant(e) = model.entry(k) {
                if ix_len(&ix) < 5000 {
                    assert!(ix.insert(h, k));
                    e.insert(h);
                }
            } else {
                assert!(ix.remove(h, k));
                model.remove(&k);
            }
            if step % 1000 == 0 {
                for (&k, &h) in &model {
                    assert_eq!(ix.find(h, |r| r == k), Some(k));
                    assert!(ix.probe(h).any(|r| r == k));
                }
            }
        }
        fn ix_len(ix: &Index) -> usize {
            ix.buckets.iter().map(|b| b.recs.iter().filter(|&&r| r != NONE).count()).sum()
        }
    }
}
