//! Runs in the `cargo test` process itself, which uses glibc's malloc here: leaves a
//! fragmented heap behind on several threads, then checks that `malloc_info` sees the retained
//! bytes and that `malloc_trim` gives RSS back. One test in this file, so no other test
//! allocates in the process while RSS is measured.

use std::process::Command;

use offheap_doctor::allocator::{self, AllocatorKind};
use offheap_doctor::malloc_info::{collect_mallinfo, collect_malloc_info, MallinfoSource};
use offheap_doctor::trim::trim;

const MIB: u64 = 1024 * 1024;
const THREADS: usize = 4;
const PER_THREAD: usize = 50 * 1024 * 1024;

/// Fills ~50 MiB with 512..4096-byte blocks, then frees 15 of every 16: the survivors pin the
/// arena's pages, so glibc cannot shrink it and keeps the gaps as free chunks.
fn fragment() -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut used = 0;
    let mut i = 0usize;
    while used < PER_THREAD {
        let size = 512 + (i * 613) % 3584;
        blocks.push(vec![0x5au8; size]);
        used += size;
        i += 1;
    }
    blocks.into_iter().enumerate().filter(|(i, _)| i % 16 == 0).map(|(_, b)| b).collect()
}

fn glibc_version_from_getconf() -> Option<String> {
    let out = Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.trim().strip_prefix("glibc ").map(str::to_string)
}

#[test]
fn trim_releases_memory_that_malloc_info_reports_as_retained() {
    let info = allocator::detect();
    assert_eq!(info.kind, AllocatorKind::Glibc, "{info:?}");
    let lib = info.malloc_library.clone().unwrap_or_default();
    assert!(lib.contains("libc.so"), "malloc resolves into {lib}");
    if let Some(expected) = glibc_version_from_getconf() {
        assert_eq!(info.version.as_deref(), Some(expected.as_str()));
        assert_eq!(info.glibc_version.as_deref(), Some(expected.as_str()));
    }
    eprintln!("allocator: {}", serde_json::to_string(&info).unwrap_or_default());

    let survivors: Vec<Vec<Vec<u8>>> = (0..THREADS)
        .map(|_| std::thread::spawn(fragment))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let kept: usize = survivors.iter().flatten().map(Vec::len).sum();

    let mi = collect_malloc_info().expect("malloc_info under glibc");
    assert!(mi.totals_match_arenas());
    assert!(mi.arenas.len() >= 2, "worker threads get their own arenas: {}", mi.arenas.len());
    assert!(mi.totals.retained >= 100 * MIB, "retained {}", mi.totals.retained);
    assert!(mi.totals.trimmable_max >= 64 * MIB, "trimmable {}", mi.totals.trimmable_max);
    assert!(mi.totals.trimmable_max <= mi.totals.retained);
    assert!(mi.totals.in_use >= kept as u64, "in use {} < kept {kept}", mi.totals.in_use);

    let m = collect_mallinfo().expect("mallinfo under glibc").expect("glibc 2.36 has mallinfo2");
    assert_eq!(m.source, MallinfoSource::Mallinfo2);
    // Two snapshots of a quiet process: equal up to what the harness allocated in between.
    let diff = m.fordblks.abs_diff(mi.totals.retained);
    assert!(diff < 4 * MIB, "mallinfo2 {} vs malloc_info {}", m.fordblks, mi.totals.retained);

    let r = trim(0).expect("trim under glibc");
    eprintln!(
        "trim: retained {} MiB (trimmable at most {} MiB), rss {} -> {} MiB, released {} MiB \
         in {} us over {} arenas, returned {}",
        mi.totals.retained / MIB,
        mi.totals.trimmable_max / MIB,
        r.rss_before / MIB,
        r.rss_after / MIB,
        r.released / MIB,
        r.duration_ns / 1000,
        mi.arenas.len(),
        r.returned,
    );
    assert_eq!(r.returned, 1);
    assert!(r.rss_after < r.rss_before);
    assert!(r.released >= 32 * MIB, "released only {} bytes", r.released);
    assert!(r.released <= mi.totals.trimmable_max + 4 * MIB, "released more than the bound");
    assert!(r.retained_before.is_some_and(|v| v >= 100 * MIB));
    assert!(r.duration_ns > 0);

    // Trimming gives pages back but keeps the free chunks: glibc still counts them as free.
    let after = collect_malloc_info().expect("malloc_info after trim");
    assert!(after.totals.retained >= 64 * MIB, "{}", after.totals.retained);
    let again = trim(0).expect("second trim");
    assert!(again.released < 8 * MIB, "nothing left to give back: {}", again.released);
    drop(survivors);
}
