//! Resident retention: of the free memory glibc holds, the part that is resident now, and of
//! that the part one `malloc_trim(0)` would give back.
//!
//! `malloc_info`'s free bytes ([`crate::malloc_info::Arena::retained`]) count free chunks
//! whether their pages are resident or not: pages a trim already handed back stay counted as
//! free chunks. That figure is an upper bound, and after a few trims it can exceed RSS. What the
//! process pays for is the resident part, which glibc does not report. It is derived here from
//! two sources that do not share an error:
//!
//! - the resident bytes of each arena's heaps, from the mappings (`smaps`, see
//!   [`crate::breakdown::find_arena_heaps`]);
//! - the arena's bytes in use, from `malloc_info` (`system_current - retained`).
//!
//! Resident free = heap RSS − in use, clamped to `[0, retained]`. In-use bytes whose pages were
//! never touched (a 64 KiB zlib window that saw 4 KiB of input) are not resident, so the
//! difference is a lower bound of resident free memory, as `retained` is an upper bound.
//!
//! Matching heaps to arenas: the main arena (`nr` 0) is `[heap]`. A secondary arena of one
//! 64 MiB heap (`subheaps` 1) has made exactly `aspace mprotect` bytes of it read-write, which is
//! the heap's `rw-p` part in the mappings. Where one arena and one heap share that size they are
//! paired ("exact"); where several arenas share a size with as many heaps, the group is
//! computed as one ("pooled"), and so is everything left over (arenas of several heaps, heaps
//! that changed size between the two reads). A pooled figure is split over the group's arenas in
//! proportion to their free bytes, never above any arena's own.
//!
//! What a trim would release: `malloc_trim` `madvise`s whole free pages in the bins of every
//! arena and shrinks the main arena's top chunk; a secondary arena's top chunk stays. So the
//! estimate is resident free, less the resident pages of secondary arenas' top chunks (read from
//! `pagemap` where the top's address is known: one heap, paired exactly; otherwise all of the
//! top is taken as resident), and at most [`crate::malloc_info::Arena::trimmable_max`].

use serde::Serialize;

use crate::breakdown::{self, Range};
use crate::malloc_info::{Arena, MallocInfo};

/// How an arena's resident figures were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// From this arena's own heap(s).
    Exact,
    /// A share of a group of arenas computed together (heaps could not be told apart).
    Pooled,
}

/// Resident figures of one arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArenaResidency {
    pub nr: u32,
    /// Free bytes of this arena that are resident now (a lower bound; see the module doc).
    pub retained_resident: u64,
    /// What one `malloc_trim(0)` would release from this arena, estimated.
    pub trimmable_resident: u64,
    pub residency: Residency,
}

/// Resident figures of every arena and their sums.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResidentRetention {
    pub retained_resident: u64,
    pub trimmable_resident: u64,
    /// Resident bytes of the arena heaps found in the mappings.
    pub heap_rss: u64,
    pub arenas: Vec<ArenaResidency>,
}

impl ResidentRetention {
    pub fn arena(&self, nr: u32) -> Option<&ArenaResidency> {
        self.arenas.iter().find(|a| a.nr == nr)
    }
}

/// Resident free bytes of the arenas in `mi`, from the arena heaps of the same moment's mappings
/// (`heaps`, main arena first as [`breakdown::Breakdown::arenas`] lists them). `resident` counts
/// the resident bytes of an address range (`pagemap`); `None` where it cannot.
pub fn resident_retention(
    mi: &MallocInfo,
    heaps: &[breakdown::Arena],
    resident: &mut dyn FnMut(Range) -> Option<u64>,
) -> ResidentRetention {
    let mut out = ResidentRetention {
        heap_rss: heaps.iter().fold(0u64, |s, h| s.saturating_add(h.rss)),
        ..ResidentRetention::default()
    };
    let mut arena_left: Vec<&Arena> = mi.arenas.iter().collect();
    let mut heap_left: Vec<&breakdown::Arena> = heaps.iter().collect();

    // The main arena is [heap].
    if let (Some(ai), Some(hi)) =
        (arena_left.iter().position(|a| a.nr == 0), heap_left.iter().position(|h| h.main))
    {
        let a = arena_left.remove(ai);
        let h = heap_left.remove(hi);
        out.arenas.push(one(a, h.rss, a.top));
    }
    // Single-heap secondary arenas, grouped by the size made read-write.
    let mut sizes: Vec<u64> = arena_left
        .iter()
        .filter(|a| a.subheaps == Some(1))
        .map(|a| a.aspace_mprotect)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let arenas: Vec<&Arena> = arena_left
            .iter()
            .copied()
            .filter(|a| a.subheaps == Some(1) && a.aspace_mprotect == size)
            .collect();
        let group: Vec<&breakdown::Arena> =
            heap_left.iter().copied().filter(|h| !h.main && h.committed == size).collect();
        if arenas.len() != group.len() {
            continue;
        }
        arena_left.retain(|a| !(a.subheaps == Some(1) && a.aspace_mprotect == size));
        heap_left.retain(|h| h.main || h.committed != size);
        // The top chunk ends where the heap's used part (`aspace total`) ends.
        let top_resident = |a: &Arena, h: &breakdown::Arena, resident: &mut dyn FnMut(Range) -> Option<u64>| {
            let end = h.start.saturating_add(a.aspace_total.min(h.committed));
            let start = end.saturating_sub(a.top);
            let page = crate::malloc_info::page_size().max(1);
            // Only whole pages are the top's alone; the first one is shared with a chunk.
            let start = start.div_ceil(page) * page;
            if start >= end {
                return Some(0);
            }
            resident(Range::new(start, end))
        };
        if let ([a], [h]) = (arenas.as_slice(), group.as_slice()) {
            let top = top_resident(a, h, resident).unwrap_or(a.top);
            out.arenas.push(one(a, h.rss, top));
        } else {
            // Which heap is which arena's is unknown: tops are read pairing them by order, a
            // guess whose error stays inside the group's sum of tops.
            let mut tops = 0u64;
            for (a, h) in arenas.iter().zip(&group) {
                tops = tops.saturating_add(top_resident(a, h, resident).unwrap_or(a.top));
            }
            let rss = group.iter().fold(0u64, |s, h| s.saturating_add(h.rss));
            out.arenas.extend(pooled(&arenas, rss, tops));
        }
    }
    if !arena_left.is_empty() {
        let rss = heap_left.iter().fold(0u64, |s, h| s.saturating_add(h.rss));
        let tops = arena_left.iter().filter(|a| a.nr != 0).fold(0u64, |s, a| s.saturating_add(a.top));
        out.arenas.extend(pooled(&arena_left, rss, tops));
    }
    out.arenas.sort_by_key(|a| a.nr);
    for a in &out.arenas {
        out.retained_resident = out.retained_resident.saturating_add(a.retained_resident);
        out.trimmable_resident = out.trimmable_resident.saturating_add(a.trimmable_resident);
    }
    out
}

/// One arena with its own heap: `top_resident` is the resident part of a top chunk a trim
/// leaves alone (the main arena's is trimmed, so it does not count there).
fn one(a: &Arena, rss: u64, top_resident: u64) -> ArenaResidency {
    let free = rss.saturating_sub(a.in_use).min(a.retained);
    let kept = if a.nr == 0 { 0 } else { top_resident };
    ArenaResidency {
        nr: a.nr,
        retained_resident: free,
        trimmable_resident: free.saturating_sub(kept).min(a.trimmable_max),
        residency: Residency::Exact,
    }
}

/// A group computed as one, split over its arenas by their free bytes.
fn pooled(arenas: &[&Arena], rss: u64, tops_resident: u64) -> Vec<ArenaResidency> {
    let in_use = arenas.iter().fold(0u64, |s, a| s.saturating_add(a.in_use));
    let retained = arenas.iter().fold(0u64, |s, a| s.saturating_add(a.retained));
    let trimmable = arenas.iter().fold(0u64, |s, a| s.saturating_add(a.trimmable_max));
    let free = rss.saturating_sub(in_use).min(retained);
    let trim = free.saturating_sub(tops_resident).min(trimmable);
    let share = |total: u64, part: u64| -> u64 {
        if retained == 0 {
            0
        } else {
            (u128::from(total) * u128::from(part) / u128::from(retained)) as u64
        }
    };
    let residency = if arenas.len() == 1 { Residency::Exact } else { Residency::Pooled };
    arenas
        .iter()
        .map(|a| ArenaResidency {
            nr: a.nr,
            retained_resident: share(free, a.retained).min(a.retained),
            trimmable_resident: share(trim, a.retained).min(a.trimmable_max),
            residency,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::malloc_info::parse_malloc_info;

    const MIB: u64 = 1 << 20;
    const HEAP: u64 = breakdown::ARENA_HEAP_SIZE;

    fn arena_xml(nr: u32, rest: u64, bins: &[(u64, u64)], current: u64, mprotect: u64) -> String {
        let sizes: String = bins
            .iter()
            .map(|(size, total)| format!("<size from=\"{size}\" to=\"{size}\" total=\"{total}\" count=\"1\"/>"))
            .collect();
        let sub = if nr == 0 { String::new() } else { "<aspace type=\"subheaps\" size=\"1\"/>".into() };
        format!(
            "<heap nr=\"{nr}\"><sizes>{sizes}</sizes><total type=\"fast\" count=\"0\" size=\"0\"/>\
             <total type=\"rest\" count=\"{}\" size=\"{rest}\"/><system type=\"current\" size=\"{current}\"/>\
             <system type=\"max\" size=\"{current}\"/><aspace type=\"total\" size=\"{current}\"/>\
             <aspace type=\"mprotect\" size=\"{mprotect}\"/>{sub}</heap>",
            bins.len() + 1
        )
    }

    fn heap(main: bool, start: u64, committed: u64, rss: u64) -> breakdown::Arena {
        breakdown::Arena { main, start, size: if main { committed } else { HEAP }, committed, rss, pss: rss, swap: 0 }
    }

    fn doc(arenas: &[String]) -> MallocInfo {
        let xml = format!("<malloc version=\"1\">{}</malloc>", arenas.concat());
        parse_malloc_info(&xml, 4096).expect("parses")
    }

    #[test]
    fn trimmed_pages_are_not_resident_retention() {
        // Arena 1: 40 MiB committed, 30 MiB free in one chunk (plus a 1 MiB top), of which a trim
        // gave back all but 2 MiB: RSS 12 MiB, 10 MiB in use.
        let mi = doc(&[
            arena_xml(0, 2 * MIB, &[(MIB + 4096, MIB + 4096)], 8 * MIB, 8 * MIB),
            arena_xml(1, 31 * MIB, &[(30 * MIB, 30 * MIB)], 41 * MIB, 41 * MIB),
        ]);
        let heaps = [heap(true, 0x1000_0000, 8 * MIB, 7 * MIB), heap(false, 7 * HEAP, 41 * MIB, 12 * MIB)];
        let mut tops = |r: Range| Some(r.len()); // tops fully resident
        let r = resident_retention(&mi, &heaps, &mut tops);
        assert_eq!(mi.totals.retained, 33 * MIB);
        let a1 = r.arena(1).expect("arena 1");
        assert_eq!(a1.residency, Residency::Exact);
        assert_eq!(a1.retained_resident, 2 * MIB);
        // The 1 MiB top stays after a trim.
        assert_eq!(a1.trimmable_resident, MIB);
        let a0 = r.arena(0).expect("main");
        assert_eq!(a0.retained_resident, MIB);
        assert_eq!(r.retained_resident, 3 * MIB);
        assert!(r.retained_resident <= r.heap_rss);
    }

    #[test]
    fn never_above_retained_nor_below_zero() {
        let mi = doc(&[
            arena_xml(0, MIB, &[], 8 * MIB, 8 * MIB),
            arena_xml(1, MIB, &[], 20 * MIB, 20 * MIB),
        ]);
        // In-use pages never touched: RSS below in use.
        let heaps = [heap(true, 0x1000_0000, 8 * MIB, 8 * MIB), heap(false, HEAP, 20 * MIB, 4 * MIB)];
        let r = resident_retention(&mi, &heaps, &mut |_| None);
        assert_eq!(r.arena(0).map(|a| a.retained_resident), Some(MIB));
        assert_eq!(r.arena(1).map(|a| a.retained_resident), Some(0));
        for a in &r.arenas {
            assert!(a.trimmable_resident <= a.retained_resident);
        }
    }

    #[test]
    fn arenas_of_one_size_are_pooled_and_split_by_their_free_bytes() {
        let mi = doc(&[
            arena_xml(0, 0, &[], 0, 0),
            arena_xml(1, 30 * MIB, &[(29 * MIB, 29 * MIB)], HEAP, HEAP),
            arena_xml(2, 10 * MIB, &[(9 * MIB, 9 * MIB)], HEAP, HEAP),
        ]);
        let heaps = [heap(false, HEAP, HEAP, 44 * MIB), heap(false, 2 * HEAP, HEAP, 60 * MIB)];
        let r = resident_retention(&mi, &heaps, &mut |_| Some(0));
        // In use 34 + 54 = 88 MiB of 104 MiB resident: 16 MiB free, split 3:1.
        assert_eq!(r.retained_resident, 16 * MIB);
        let (a1, a2) = (r.arena(1).expect("1"), r.arena(2).expect("2"));
        assert_eq!((a1.residency, a2.residency), (Residency::Pooled, Residency::Pooled));
        assert_eq!(a1.retained_resident, 12 * MIB);
        assert_eq!(a2.retained_resident, 4 * MIB);
    }

    #[test]
    fn a_heap_that_changed_size_falls_into_the_leftover_pool() {
        let mi = doc(&[
            arena_xml(0, 0, &[], 0, 0),
            arena_xml(1, 5 * MIB, &[(5 * MIB - 4096, 5 * MIB - 4096)], 20 * MIB, 20 * MIB),
        ]);
        let heaps = [heap(true, 0x1000_0000, 0, 0), heap(false, HEAP, 24 * MIB, 22 * MIB)];
        let r = resident_retention(&mi, &heaps, &mut |_| Some(0));
        assert_eq!(r.arena(1).map(|a| a.residency), Some(Residency::Exact));
        assert_eq!(r.retained_resident, 5 * MIB);
        assert_eq!(r.arenas.len(), 2);
    }

    #[test]
    fn the_real_16_arena_document_stays_within_its_bounds() {
        let xml = include_str!("../tests/fixtures/malloc_info/jvm17-deflaters-16-threads.xml");
        let mi = parse_malloc_info(xml, 4096).expect("parses");
        let heaps: Vec<breakdown::Arena> = mi
            .arenas
            .iter()
            .map(|a| heap(a.nr == 0, u64::from(a.nr + 1) * HEAP, a.aspace_mprotect, a.system_current / 2))
            .collect();
        let r = resident_retention(&mi, &heaps, &mut |r| Some(r.len() / 2));
        assert_eq!(r.arenas.len(), mi.arenas.len());
        for (a, m) in r.arenas.iter().zip(&mi.arenas) {
            assert!(a.retained_resident <= m.retained, "{a:?}");
            assert!(a.trimmable_resident <= m.trimmable_max.min(a.retained_resident), "{a:?}");
        }
        assert!(r.retained_resident <= r.heap_rss);
    }
}
