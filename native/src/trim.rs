//! `malloc_trim` in-process: glibc gives free pages of its arenas back to the kernel, and this
//! module measures what that did to RSS and how long it took.
//!
//! `malloc_trim` walks the arenas one after the other, holding each arena's lock while it merges
//! the fastbins and `madvise`s the free pages of that arena. Threads that allocate from an arena
//! wait while it is being trimmed, never longer than that arena's share of `duration_ns`; in a
//! JVM that is native code (zlib, NIO, JIT compiler threads), not Java allocation, which uses
//! the Java heap.

use std::time::Instant;

use serde::Serialize;

use crate::allocator::{self, AllocatorKind};
use crate::error::{Error, Result};
use crate::malloc_info;
use crate::proc_fs::ProcRoot;

/// Where [`TrimResult::retained_before`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetainedSource {
    /// `mallinfo2().fordblks` (or `mallinfo` where it cannot have wrapped).
    Mallinfo,
    /// `malloc_info` fast + rest totals.
    MallocInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrimResult {
    /// Resident bytes of the process just before and just after the call (`/proc/self/statm`).
    /// Other threads keep running, so the difference is the trim's effect plus their noise.
    pub rss_before: u64,
    pub rss_after: u64,
    /// `rss_before - rss_after`, zero when RSS grew meanwhile.
    pub released: u64,
    /// Free bytes glibc held before the trim: the most it could have returned.
    pub retained_before: Option<u64>,
    pub retained_source: Option<RetainedSource>,
    /// Time spent inside `malloc_trim`: the sum of the time each arena's lock was held.
    pub duration_ns: u64,
    /// `malloc_trim`'s return value: 1 when some memory was given back, 0 otherwise.
    pub returned: i32,
    /// The `pad` passed: bytes left untrimmed at the top of the main arena.
    pub pad: usize,
}

/// Trims glibc's arenas, keeping `pad` bytes at the top of the main heap. Under any other
/// allocator this is [`Error::Unsupported`]: glibc's `malloc_trim` would walk arenas nobody uses.
pub fn trim(pad: usize) -> Result<TrimResult> {
    trim_with(&ProcRoot::default(), pad)
}

/// Gives free memory back to the kernel with whatever the process's allocator offers: glibc's
/// `malloc_trim`, jemalloc's purge of every arena (`mallctl("arena.4096.purge")`, 4096 being
/// `MALLCTL_ARENAS_ALL`), tcmalloc's `MallocExtension_ReleaseFreeMemory`. Unsupported elsewhere.
pub fn release(pad: usize) -> Result<TrimResult> {
    let proc = ProcRoot::default();
    match allocator::current_kind() {
        AllocatorKind::Glibc => trim_with(&proc, pad),
        AllocatorKind::Jemalloc => {
            let f = allocator::symbol("mallctl")
                .ok_or_else(|| Error::Unsupported("jemalloc without mallctl".into()))?;
            // SAFETY: jemalloc's `int mallctl(const char *name, void *oldp, size_t *oldlenp,
            // void *newp, size_t newlen)`; a purge takes and returns no data.
            let mallctl: extern "C" fn(
                *const libc::c_char,
                *mut libc::c_void,
                *mut libc::size_t,
                *mut libc::c_void,
                libc::size_t,
            ) -> libc::c_int = unsafe { std::mem::transmute(f) };
            measured(&proc, pad, || {
                let name = c"arena.4096.purge";
                mallctl(name.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
            })
        }
        AllocatorKind::Tcmalloc => {
            let f = allocator::symbol("MallocExtension_ReleaseFreeMemory")
                .ok_or_else(|| Error::Unsupported("tcmalloc without MallocExtension_ReleaseFreeMemory".into()))?;
            // SAFETY: gperftools' C API `void MallocExtension_ReleaseFreeMemory(void)`.
            let release: extern "C" fn() = unsafe { std::mem::transmute(f) };
            measured(&proc, pad, || {
                release();
                1
            })
        }
        other => Err(Error::Unsupported(format!("no way to release free memory under {}", other.name()))),
    }
}

/// Runs `op` between two RSS readings, timing only `op`.
fn measured(proc: &ProcRoot, pad: usize, op: impl FnOnce() -> libc::c_int) -> Result<TrimResult> {
    let page = malloc_info::page_size();
    let rss_before = resident_bytes(proc, page)?;
    let start = Instant::now();
    let returned = op();
    let duration = start.elapsed();
    let rss_after = resident_bytes(proc, page)?;
    Ok(TrimResult {
        rss_before,
        rss_after,
        released: rss_before.saturating_sub(rss_after),
        retained_before: None,
        retained_source: None,
        duration_ns: u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        returned,
        pad,
    })
}

/// [`trim`], reading RSS from `proc` (tests point it elsewhere only to break it).
pub fn trim_with(proc: &ProcRoot, pad: usize) -> Result<TrimResult> {
    let kind = allocator::current_kind();
    if kind != AllocatorKind::Glibc {
        return Err(Error::Unsupported(format!(
            "malloc_trim is glibc's, and this process's malloc is {}",
            kind.name()
        )));
    }
    let f = allocator::symbol("malloc_trim")
        .ok_or_else(|| Error::Unsupported("this glibc has no malloc_trim".into()))?;
    // SAFETY: glibc's `int malloc_trim(size_t pad)`, resolved by name so a musl build links.
    let malloc_trim: extern "C" fn(libc::size_t) -> libc::c_int = unsafe { std::mem::transmute(f) };

    let (retained_before, retained_source) = retained_now();
    let mut result = measured(proc, pad, || malloc_trim(pad))?;
    result.retained_before = retained_before;
    result.retained_source = retained_source;
    Ok(result)
}

/// Retained bytes from the cheapest source that is exact: `mallinfo2`, else `malloc_info`
/// (old `mallinfo` wraps past 2 GiB).
fn retained_now() -> (Option<u64>, Option<RetainedSource>) {
    if let Ok(Some(m)) = malloc_info::collect_mallinfo() {
        if !m.wrapped && m.source == malloc_info::MallinfoSource::Mallinfo2 {
            return (Some(m.fordblks), Some(RetainedSource::Mallinfo));
        }
    }
    match malloc_info::collect_malloc_info() {
        Ok(mi) => (Some(mi.totals.retained), Some(RetainedSource::MallocInfo)),
        Err(_) => (None, None),
    }
}

/// Resident bytes from `statm` (second field, in pages): one short read, unlike `smaps_rollup`
/// which walks every mapping.
fn resident_bytes(proc: &ProcRoot, page: u64) -> Result<u64> {
    let text = proc.read("statm")?;
    parse_statm_resident(&text, page).ok_or_else(|| Error::Parse {
        what: "statm",
        detail: format!("no resident field in {:?}", text.trim()),
    })
}

/// `size resident shared text lib data dt` (pages) into resident bytes.
pub fn parse_statm_resident(text: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_resident_is_the_second_field_in_pages() {
        assert_eq!(
            parse_statm_resident("1224352 27049 5321 1 0 71584 0\n", 4096),
            Some(27049 * 4096)
        );
        assert_eq!(parse_statm_resident("1224352\n", 4096), None);
        assert_eq!(parse_statm_resident("a b c", 4096), None);
    }

    #[test]
    fn unreadable_statm_names_the_file() {
        if allocator::current_kind() != AllocatorKind::Glibc {
            return;
        }
        let err = trim_with(&ProcRoot::new("/nonexistent-proc"), 0).expect_err("no statm");
        assert!(err.to_string().contains("/nonexistent-proc/statm"), "{err}");
    }
}
