//! The smaps parser and the breakdown on smaps captured from real JVMs (see
//! `tests/fixtures/smaps/README.md`).

use std::path::PathBuf;

use offheap_doctor::breakdown::{classify, ClassifyInput, NmtRegion, Range, StackSource};
use offheap_doctor::rollup::parse_smaps_rollup;
use offheap_doctor::smaps::{self, Backing, Mapping, SmapsTotals};
use proptest::prelude::*;

const FIXTURES: [&str; 4] = [
    "jdk17-glibc-16threads",
    "jdk17-glibc-arena-max-1",
    "jdk17-jemalloc",
    "jdk25-nmt-detail",
];

fn fixture(name: &str, file: &str) -> Vec<u8> {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/fixtures/smaps",
        name,
        file,
    ]
    .iter()
    .collect();
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mappings(name: &str) -> Vec<Mapping> {
    smaps::parse(&fixture(name, "smaps"))
}

/// The `[0x..., 0x...)` range of `jcmd GC.heap_info`'s first line.
fn heap_range(name: &str) -> Range {
    let text = String::from_utf8(fixture(name, "heap_info.txt")).expect("utf-8");
    let open = text.find("[0x").expect("heap range");
    let rest = &text[open + 1..];
    let close = rest.find(')').expect("range end");
    let (a, b) = rest[..close].split_once(", ").expect("two bounds");
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    Range::new(hex(a), hex(b))
}

/// Just the reserved regions of NMT detail's virtual memory map:
/// `[0x... - 0x...] reserved 1024KB for Thread Stack from`.
fn nmt_regions(name: &str) -> Vec<NmtRegion> {
    let text = String::from_utf8(fixture(name, "nmt_detail.txt")).expect("utf-8");
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).expect("hex");
    text.lines()
        .filter(|l| l.starts_with("[0x") && l.contains("] reserved"))
        .filter_map(|l| {
            let (range, rest) = l[1..].split_once(']')?;
            let (a, b) = range.split_once(" - ")?;
            let (_, cat) = rest.split_once(" for ")?;
            let cat = cat.strip_suffix(" from").unwrap_or(cat);
            Some(NmtRegion {
                range: Range::new(hex(a), hex(b)),
                category: cat.to_string(),
            })
        })
        .collect()
}

fn input(name: &str) -> ClassifyInput {
    ClassifyInput {
        heap: vec![heap_range(name)],
        ..ClassifyInput::default()
    }
}

#[test]
fn every_fixture_parses_completely_and_matches_its_rollup() {
    for name in FIXTURES {
        let text = fixture(name, "smaps");
        let headers = text
            .split(|&b| b == b'\n')
            .filter(|l| {
                l.first()
                    .is_some_and(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            })
            .count();
        let ms = smaps::parse(&text);
        assert_eq!(ms.len(), headers, "{name}");
        assert!(
            ms.windows(2).all(|w| w[0].end <= w[1].start),
            "{name}: address order"
        );
        assert!(
            ms.iter().all(|m| m.size == m.span()),
            "{name}: Size matches the header"
        );
        // The rollup was read right after smaps, from a live process: close, not equal.
        let rollup =
            parse_smaps_rollup(std::str::from_utf8(&fixture(name, "smaps_rollup")).expect("utf-8"))
                .expect("rollup");
        let t = SmapsTotals::of(&ms);
        let diff = t.rss.abs_diff(rollup.rss);
        assert!(
            diff <= rollup.rss / 20,
            "{name}: smaps rss {} rollup {}",
            t.rss,
            rollup.rss
        );
        // jemalloc never calls brk, so that process has no [heap].
        let has_brk_heap = ms.iter().any(|m| m.backing == Backing::Heap);
        assert_eq!(has_brk_heap, name != "jdk17-jemalloc", "{name}: [heap]");
        assert!(
            ms.iter()
                .any(|m| m.backing == Backing::Kernel("vdso".into())),
            "{name}"
        );
    }
}

#[test]
fn class_sums_equal_totals_exactly_in_every_fixture() {
    for name in FIXTURES {
        let ms = mappings(name);
        let b = classify(&ms, &input(name));
        b.check_sums().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(b.totals.mappings, ms.len() as u64);
        assert_eq!(b.totals.rss, SmapsTotals::of(&ms).rss);
        // The heap was committed up front (-Xms = -Xmx) and the workload allocates in it.
        assert!(
            b.classes.java_heap.size >= 250 << 20,
            "{name}: {:?}",
            b.classes.java_heap
        );
        assert!(
            b.classes.mapped_file.rss > 0 && b.classes.kernel.size > 0,
            "{name}"
        );
    }
}

#[test]
fn sixteen_deflating_threads_spread_over_secondary_arenas() {
    let b = classify(
        &mappings("jdk17-glibc-16threads"),
        &input("jdk17-glibc-16threads"),
    );
    assert!(b.arenas[0].main);
    assert!(
        (8..=24).contains(&b.secondary_arena_heaps),
        "arena heaps: {}",
        b.secondary_arena_heaps
    );
    for a in b.arenas.iter().filter(|a| !a.main) {
        assert_eq!(a.start % (64 << 20), 0);
        assert_eq!(a.size, 64 << 20);
        assert!(a.committed > 0 && a.rss <= a.committed);
    }
    let arena_rss: u64 = b.arenas.iter().map(|a| a.rss).sum();
    assert_eq!(arena_rss, b.classes.malloc_arena.rss);
    // 16 workers, the JVM's own threads, each with a 1 MiB stack.
    assert!(b.thread_stacks >= 25, "stacks: {}", b.thread_stacks);
    assert_eq!(b.stack_source, StackSource::Heuristic);
}

#[test]
fn malloc_arena_max_one_leaves_only_the_main_arena() {
    let b = classify(
        &mappings("jdk17-glibc-arena-max-1"),
        &input("jdk17-glibc-arena-max-1"),
    );
    assert_eq!(b.secondary_arena_heaps, 0);
    assert_eq!(b.arenas.len(), 1);
    assert!(b.arenas[0].main && b.arenas[0].rss > 0);
}

#[test]
fn jemalloc_leaves_no_glibc_arenas() {
    let ms = mappings("jdk17-jemalloc");
    assert!(ms
        .iter()
        .any(|m| matches!(&m.backing, Backing::File(p) if p.contains("libjemalloc"))));
    let b = classify(&ms, &input("jdk17-jemalloc"));
    assert_eq!(b.secondary_arena_heaps, 0);
    // jemalloc's memory is plain anonymous mmaps: unattributed, not malloc_arena.
    assert!(b.classes.other_anon.rss > b.classes.malloc_arena.rss);
}

#[test]
fn nmt_regions_attribute_jvm_mappings() {
    let name = "jdk25-nmt-detail";
    let ms = mappings(name);
    let regions = nmt_regions(name);
    assert!(regions.len() > 40, "regions: {}", regions.len());
    let stacks = regions
        .iter()
        .filter(|r| r.category == "Thread Stack")
        .count() as u64;
    let mut inp = input(name);
    inp.nmt_regions = regions;
    inp.jvm_thread_count = Some(stacks);
    let b = classify(&ms, &inp);
    b.check_sums().expect("sums");
    assert_eq!(b.stack_source, StackSource::Nmt);
    assert!(b.thread_stacks >= stacks, "{} < {stacks}", b.thread_stacks);
    assert!(
        b.classes.jvm_code.size >= 200 << 20,
        "{:?}",
        b.classes.jvm_code
    );
    assert!(b.classes.jvm_code.rss > 0);
    assert!(b.classes.jvm_metaspace.rss > 0 && b.classes.jvm_metaspace.size >= 1 << 30);
    assert!(b.classes.jvm_gc.rss > 0);
    assert!(b.classes.thread_stack.rss > 0);
    assert!(
        b.secondary_arena_heaps >= 8,
        "heaps: {}",
        b.secondary_arena_heaps
    );

    // Without NMT the same JVM loses GC structures and most metaspace to other_anon; the code
    // cache (rwx) and the CDS archive (.jsa) are still recognised by shape, stacks too.
    let plain = classify(&ms, &input(name));
    plain.check_sums().expect("sums");
    assert_eq!(plain.classes.jvm_gc.rss, 0);
    assert!(plain.classes.jvm_code.rss > 0);
    assert!(plain.classes.jvm_metaspace.rss > 0);
    assert!(plain.classes.jvm_metaspace.rss < b.classes.jvm_metaspace.rss);
    assert!(plain.classes.other_anon.rss > b.classes.other_anon.rss);
    assert_eq!(plain.secondary_arena_heaps, b.secondary_arena_heaps);
    assert!(
        plain.thread_stacks + 2 >= stacks,
        "{} vs {stacks}",
        plain.thread_stacks
    );
}

/// Lines a fuzzer would take long to find: extreme addresses and values, odd units, no values.
const ODD_LINES: [&str; 8] = [
    "ffffffffffffffff-0 rw-p 00000000 00:00 0",
    "0-ffffffffffffffff ---p ffffffffffffffff ffffffff:ffffffff 18446744073709551615 [heap]",
    "7f0000000000-7f0004000000 rw-p 00000000 00:00 0 [anon: glibc: malloc arena]",
    "Rss: 18446744073709551615 kB",
    "Pss: 99999999999999999999999999 kB",
    "Swap: 12 MB",
    "VmFlags: rd wr zz x",
    "Size:",
];

fn edit(text: &[u8], ops: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    for &(op, at, byte) in ops {
        if lines.is_empty() {
            break;
        }
        let i = at % lines.len();
        match op % 6 {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let cut = usize::from(byte) % (lines[i].len() + 1);
                lines[i].truncate(cut);
            }
            3 => {
                if !lines[i].is_empty() {
                    let j = at % lines[i].len();
                    lines[i][j] ^= byte;
                }
            }
            4 => {
                let j = lines.len() - 1 - i;
                lines.swap(i, j);
            }
            _ => {
                let odd = ODD_LINES[usize::from(byte) % ODD_LINES.len()];
                lines.insert(i, odd.as_bytes().to_vec());
            }
        }
    }
    lines.join(&b'\n')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_edits_never_panic_and_sums_stay_exact(
        fixture_idx in 0usize..FIXTURES.len(),
        ops in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..60),
    ) {
        let name = FIXTURES[fixture_idx];
        let text = edit(&fixture(name, "smaps"), &ops);
        let ms = smaps::parse(&text);
        let mut inp = input(name);
        if name == "jdk25-nmt-detail" {
            inp.nmt_regions = nmt_regions(name);
        }
        let b = classify(&ms, &inp);
        prop_assert!(b.check_sums().is_ok(), "{:?}", b.check_sums().err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let ms = smaps::parse(&bytes);
        let b = classify(&ms, &ClassifyInput {
            heap: vec![Range::new(0, u64::MAX)],
            ..ClassifyInput::default()
        });
        prop_assert!(b.check_sums().is_ok());
    }
}

#[test]
#[ignore = "prints the NMT fixture's breakdown for inspection"]
fn print_nmt_breakdown() {
    let name = "jdk25-nmt-detail";
    let mut inp = input(name);
    inp.nmt_regions = nmt_regions(name);
    let b = classify(&mappings(name), &inp);
    println!(
        "{}",
        serde_json::to_string_pretty(&b.classes).expect("json")
    );
    println!(
        "stacks {} arenas {}",
        b.thread_stacks, b.secondary_arena_heaps
    );
}

#[test]
#[ignore = "timing; run with --release"]
fn parse_speed() {
    let text = fixture("jdk17-glibc-16threads", "smaps");
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        smaps::parse_into(&text, &mut out);
    }
    let per = t.elapsed() / 2000;
    println!(
        "{} bytes, {} mappings: {per:?} per parse",
        text.len(),
        out.len()
    );
}
