//! The Java heap's reserved address range, from the text of the `GC.heap_info` diagnostic
//! command (the Java side fetches it through the DiagnosticCommand MBean).
//!
//! Each collector prints it differently: G1 one `[start, end)` on its heap line; Parallel and
//! Serial one `[bottom, top, end)` per generation and space; Shenandoah a `Reserved region:`
//! list; Epsilon its allocation space. The union of every bracketed address range is the heap's
//! reservation. ZGC prints no addresses at all: its heap is found from smaps (JDK 17's
//! `/memfd:java_heap` mappings) or from NMT detail instead, and this parser returns no range.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AddrRange {
    pub start: u64,
    pub end: u64,
}

impl AddrRange {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// What `GC.heap_info` told about the heap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeapInfo {
    /// The collector as recognised from the text (`g1`, `parallel`, `serial`, `z`, `shenandoah`,
    /// `epsilon`), or `unknown`.
    pub collector: &'static str,
    /// Disjoint, sorted reserved ranges of the heap; empty where the collector prints none (ZGC).
    pub ranges: Vec<AddrRange>,
}

fn collector_of(text: &str) -> &'static str {
    let t = text;
    if t.contains("garbage-first heap") {
        "g1"
    } else if t.contains("PSYoungGen") || t.contains("ParOldGen") {
        "parallel"
    } else if t.contains("def new generation") || t.contains("DefNew") || t.contains("tenured generation") {
        "serial"
    } else if t.contains("ZHeap") {
        "z"
    } else if t.contains("Shenandoah Heap") {
        "shenandoah"
    } else if t.contains("Epsilon Heap") {
        "epsilon"
    } else {
        "unknown"
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(h, 16).ok()
}

/// Every `[0x.., 0x..(, 0x..)]` group in `line`, as the range from its first to its last address.
fn bracket_ranges(line: &str, out: &mut Vec<AddrRange>) {
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find([')', ']']) else { return };
        let inner = &after[..close];
        let addrs: Vec<u64> = inner.split(',').filter_map(parse_hex).collect();
        if addrs.len() >= 2 && addrs.len() == inner.split(',').count() {
            let (start, end) = (addrs[0], addrs[addrs.len() - 1]);
            if end > start {
                out.push(AddrRange { start, end });
            }
        }
        rest = &after[close..];
    }
}

/// Sorts and merges touching or overlapping ranges.
pub fn merge(mut ranges: Vec<AddrRange>) -> Vec<AddrRange> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<AddrRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// Parses `GC.heap_info` output. Unknown text gives `collector: "unknown"` and whatever ranges
/// it carries; it never fails.
pub fn parse_heap_info(text: &str) -> HeapInfo {
    let mut ranges = Vec::new();
    for line in text.lines() {
        // Metaspace lines carry sizes only; stop before anything that is not the heap.
        if line.trim_start().starts_with("Metaspace") {
            break;
        }
        bracket_ranges(line, &mut ranges);
    }
    HeapInfo { collector: collector_of(text), ranges: merge(ranges) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = format!("{}/tests/fixtures/heap_info/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    const HEAP_64M: AddrRange = AddrRange { start: 0xfc00_0000, end: 0x1_0000_0000 };

    #[test]
    fn every_collector_with_addresses_gives_the_64m_reservation() {
        for jdk in ["17", "25"] {
            for (gc, name) in [
                ("G1", "g1"),
                ("Parallel", "parallel"),
                ("Serial", "serial"),
                ("Shenandoah", "shenandoah"),
                ("Epsilon", "epsilon"),
            ] {
                let h = parse_heap_info(&fixture(&format!("heapinfo-jdk{jdk}-{gc}.txt")));
                assert_eq!(h.collector, name, "jdk{jdk} {gc}");
                assert_eq!(h.ranges, vec![HEAP_64M], "jdk{jdk} {gc}");
                assert_eq!(h.ranges[0].len(), 64 << 20);
            }
        }
    }

    #[test]
    fn zgc_prints_no_range() {
        for jdk in ["17", "25"] {
            let h = parse_heap_info(&fixture(&format!("heapinfo-jdk{jdk}-Z.txt")));
            assert_eq!(h.collector, "z");
            assert!(h.ranges.is_empty());
        }
    }

    #[test]
    fn shenandoah_collection_set_addresses_are_not_ranges() {
        let h = parse_heap_info(" - map (vanilla): 0x0000000000013f00\n - [0x10, 0x20) \n");
        assert_eq!(h.ranges, vec![AddrRange { start: 0x10, end: 0x20 }]);
    }

    #[test]
    fn garbage_never_panics() {
        for t in ["[", "[0x", "[0x1,", "[0xzz, 0x10)", "[0x20, 0x10)", "]]][[[", "[0x1, 0x2"] {
            let _ = parse_heap_info(t);
        }
    }

    #[test]
    fn merge_joins_touching_ranges() {
        let m = merge(vec![
            AddrRange { start: 30, end: 40 },
            AddrRange { start: 0, end: 10 },
            AddrRange { start: 10, end: 20 },
        ]);
        assert_eq!(m, vec![AddrRange { start: 0, end: 20 }, AddrRange { start: 30, end: 40 }]);
    }
}
