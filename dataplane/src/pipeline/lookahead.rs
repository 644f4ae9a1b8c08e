//! The order in which a worker runs the burst look-ahead's stages and
//! processes the burst's packets.
//!
//! Each stage of the look-ahead requests a cache line whose address the
//! previous stage's line holds (for an IPv4 packet of stateful NAT64:
//! pool4 port map, BIB record, session bucket, session record). The first
//! stages run as passes over the whole burst: every packet's first miss
//! is in flight at once, and the second pass finds most of them arrived.
//! A chain longer than that (the IPv4 side) would make each further pass
//! wait for the one before, so its later stages are staggered between the
//! packets' processing instead, inside the worker's plain loop: packet `j`
//! gets its third stage just before packet `j - 2 * SPACING` is
//! processed, its fourth before `j - SPACING`, so the translation of
//! `SPACING` other packets covers each wait (the first packets get theirs
//! in a short [`prologue`]). Packets are still processed in the order
//! they arrived, and a burst without such chains (the IPv6 side, or small
//! tables with the look-ahead off) runs the plain loop alone.

/// Stages a packet may need (the IPv4 side of stateful NAT64 has four).
pub const STAGES: usize = 4;
/// Stages run as whole passes over the burst before any packet is
/// processed (all the IPv6 side needs).
pub const PASSES: usize = 2;
/// Stages staggered after the passes, for chains longer than the passes.
pub const TAIL: usize = STAGES - PASSES;

// A packet's staggered stages come after the passes, apart, and before it.
const _: () = assert!(SPACING > 0 && PASSES > 0 && PASSES <= STAGES);
/// Packets processed between two staggered stages of one packet, and
/// between its last stage and its own processing.
pub const SPACING: usize = 3;

/// Runs stages `0..PASSES` over a burst of `n` packets, stage by stage,
/// through `fetch(pos, stage)` (false: nothing more for that packet), and
/// says whether any packet wants the staggered stages (the IPv4 side).
/// A packet done early is still asked for its later stages; the
/// look-ahead answers those from its notes, at once.
#[inline(always)]
pub fn passes(n: usize, mut fetch: impl FnMut(usize, u8) -> bool) -> bool {
    (0..PASSES).all(|stage| (0..n).fold(false, |more, pos| fetch(pos, stage as u8) | more))
}

/// The staggered stages due before the first packet is processed:
/// `(pos, stage)` for the packets the loop's [`due`] would have reached
/// before they existed.
#[inline(always)]
pub fn prologue(n: usize) -> impl Iterator<Item = (usize, u8)> {
    (0..TAIL).flat_map(move |k| (0..n.min((TAIL - k) * SPACING)).map(move |pos| (pos, (PASSES + k) as u8)))
}

/// Packets of a burst of `n` before which [`due`] has anything: the last
/// `SPACING` have no packet that far behind them.
#[inline(always)]
pub fn due_until(n: usize) -> usize {
    n.saturating_sub(SPACING)
}

/// The staggered stages due just before packet `i` is processed: packet
/// `i + (TAIL - k) * SPACING` gets stage `PASSES + k`.
#[inline(always)]
pub fn due(i: usize, n: usize) -> impl Iterator<Item = (usize, u8)> {
    (0..TAIL).filter_map(move |k| {
        let pos = i + (TAIL - k) * SPACING;
        (pos < n).then_some((pos, (PASSES + k) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Step {
        Fetch { pos: usize, stage: u8 },
        Process(usize),
    }

    /// A burst in the order `Worker::run` takes it.
    fn steps(n: usize, on: bool, stages_of: impl Fn(usize) -> u8) -> Vec<Step> {
        let v = std::cell::RefCell::new(Vec::new());
        let fetch = |pos, stage| {
            v.borrow_mut().push(Step::Fetch { pos, stage });
            stage + 1 < stages_of(pos)
        };
        let stagger = on && passes(n, fetch);
        if stagger {
            prologue(n).for_each(|(pos, stage)| {
                fetch(pos, stage);
            });
        }
        let until = if stagger { due_until(n) } else { 0 };
        for i in 0..n {
            if i < until {
                due(i, n).for_each(|(pos, stage)| {
                    // The worker asks its burst for packets not yet taken.
                    assert!(pos > i, "stage {stage} of packet {pos} due at {i}");
                    fetch(pos, stage);
                });
            }
            v.borrow_mut().push(Step::Process(i));
        }
        v.into_inner()
    }

    #[test]
    fn every_packet_is_processed_once_in_order_after_its_stages() {
        for n in [0, 1, 5, 13, 32, 70] {
            for most in 1..=STAGES as u8 {
                // Packet p wants 1 + p % most stages.
                let v = steps(n, true, |p| 1 + (p % usize::from(most)) as u8);
                let done: Vec<usize> =
                    v.iter().filter_map(|s| if let Step::Process(p) = s { Some(*p) } else { None }).collect();
                assert_eq!(done, (0..n).collect::<Vec<_>>(), "n = {n}");
                // Each stage of each packet is asked for once.
                let mut fetches: Vec<Step> =
                    v.iter().copied().filter(|s| matches!(s, Step::Fetch { .. })).collect();
                let all = fetches.len();
                fetches.sort_by_key(
                    |s| if let Step::Fetch { pos, stage } = s { (*pos, *stage) } else { (0, 0) },
                );
                fetches.dedup();
                assert_eq!(fetches.len(), all, "a stage asked for twice, n = {n}");
                // Every packet gets as many stages as the burst's longest
                // chain needs, rounded up to the passes.
                let want = match (n, most) {
                    (0, _) => 0,
                    (1, _) | (_, 1) => 1,
                    (_, m) if usize::from(m) <= PASSES => PASSES,
                    _ => STAGES,
                };
                for p in 0..n {
                    let at = |x: Step| v.iter().position(|&s| s == x);
                    let processed = at(Step::Process(p)).unwrap();
                    let fetched: Vec<usize> =
                        (0..STAGES).filter_map(|k| at(Step::Fetch { pos: p, stage: k as u8 })).collect();
                    assert_eq!(fetched.len(), want, "packet {p} of {n}, chains up to {most}");
                    assert!(fetched.windows(2).all(|w| w[0] < w[1]));
                    assert!(fetched.iter().all(|&i| i < processed));
                }
            }
        }
    }

    #[test]
    fn the_first_stages_are_passes_over_the_burst() {
        let v = steps(32, true, |_| STAGES as u8);
        let at = |x: Step| v.iter().position(|&s| s == x).unwrap();
        let last0 = at(Step::Fetch { pos: 31, stage: 0 });
        assert!((0..32).all(|p| at(Step::Fetch { pos: p, stage: 1 }) > last0));
        let last1 = at(Step::Fetch { pos: 31, stage: 1 });
        assert!((0..32).all(|p| at(Step::Process(p)) > last1));
    }

    #[test]
    fn other_packets_are_processed_between_two_later_stages_of_one() {
        let v = steps(32, true, |_| STAGES as u8);
        let at = |x: Step| v.iter().position(|&s| s == x).unwrap();
        let between = |a: usize, b: usize| v[a..b].iter().filter(|s| matches!(s, Step::Process(_))).count();
        let (s2, s3, done) = (
            at(Step::Fetch { pos: 20, stage: 2 }),
            at(Step::Fetch { pos: 20, stage: 3 }),
            at(Step::Process(20)),
        );
        assert_eq!((between(s2, s3), between(s3, done)), (SPACING, SPACING));
    }

    #[test]
    fn a_burst_done_after_the_passes_is_processed_straight_through() {
        // The IPv6 side: two stages, then nothing staggered.
        let v = steps(8, true, |_| 2);
        let mut want: Vec<Step> = (0..8).map(|pos| Step::Fetch { pos, stage: 0 }).collect();
        want.extend((0..8).map(|pos| Step::Fetch { pos, stage: 1 }));
        want.extend((0..8).map(Step::Process));
        assert_eq!(v, want);
    }

    #[test]
    fn without_the_lookahead_only_processing() {
        assert_eq!(steps(3, false, |_| 4), vec![Step::Process(0), Step::Process(1), Step::Process(2)]);
    }
}
