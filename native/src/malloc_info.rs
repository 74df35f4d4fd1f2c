//! glibc's own account of its arenas: the XML of `malloc_info(0, fp)` parsed into per-arena and
//! process totals, and the cheaper `mallinfo2` totals.
//!
//! What the numbers mean (glibc 2.26 to 2.40, `malloc/malloc.c`):
//! - per arena, `<total type="fast">` is the free chunks in fastbins and `<total type="rest">`
//!   every other free chunk *plus the top chunk* (the untouched end of the arena); both are
//!   counted under the arena's lock, one arena at a time, so the document is not one instant;
//! - chunks parked in a thread's tcache count as in use: glibc cannot see them from here;
//! - `<system type="current">` is what the arena got from the kernel (`sbrk` or its 64 MiB
//!   heaps), `max` its high-water mark; `<aspace>` is the address space of the arena's heaps
//!   (`mprotect` the part made read-write);
//! - the closing totals are the sums of the arenas' values, plus `<total type="mmap">`: chunks
//!   too big for an arena, each its own mapping, all in use (a freed one is unmapped at once).

use std::ffi::{c_char, c_int, c_void};

use serde::Serialize;

use crate::allocator::{self, AllocatorKind};
use crate::error::{Error, Result};

/// A count of chunks and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChunkTotal {
    pub count: u64,
    pub size: u64,
}

/// One `<size>` (or `<unsorted>`) line: the free chunks of one bin. `from`/`to` are chunk sizes
/// as glibc prints them (with the low flag bits, so they can be a few bytes over the real size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FreeBin {
    pub from: u64,
    pub to: u64,
    pub total: u64,
    pub count: u64,
    /// The unsorted bin: chunks freed recently and not yet sorted into their bin.
    pub unsorted: bool,
}

/// One arena (`<heap nr=N>`); `nr` 0 is the main arena, the `[heap]` grown with `sbrk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arena {
    pub nr: u32,
    pub bins: Vec<FreeBin>,
    pub fast: ChunkTotal,
    pub rest: ChunkTotal,
    pub system_current: u64,
    pub system_max: u64,
    pub aspace_total: u64,
    pub aspace_mprotect: u64,
    /// How many 64 MiB heaps make up a secondary arena (absent for the main arena).
    pub subheaps: Option<u64>,
    /// Free bytes glibc holds in this arena: `fast.size + rest.size`, top chunk included.
    pub retained: u64,
    /// `system_current - retained`: live allocations, their chunk headers and tcache contents.
    pub in_use: u64,
    /// The top chunk, derived: free bytes that no bin line accounts for.
    pub top: u64,
    /// At most this many bytes could `malloc_trim` hand back from this arena; see
    /// [`trimmable_upper_bound`].
    pub trimmable_max: u64,
}

/// The closing totals of the document, with the same derived values as [`Arena`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MallocTotals {
    pub fast: ChunkTotal,
    pub rest: ChunkTotal,
    /// Chunks served by their own `mmap`: all in use, not part of `system_current`.
    pub mmap: ChunkTotal,
    pub system_current: u64,
    pub system_max: u64,
    pub aspace_total: u64,
    pub aspace_mprotect: u64,
    pub retained: u64,
    /// In use inside the arenas (`system_current - retained`); add `mmap.size` for all of
    /// malloc's live bytes.
    pub in_use: u64,
    pub trimmable_max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MallocInfo {
    /// The `version` attribute of `<malloc>` (1 in every glibc so far).
    pub version: u32,
    pub arenas: Vec<Arena>,
    pub totals: MallocTotals,
    /// The document had no closing totals (never seen from glibc); they were summed from the
    /// arenas and `mmap` is unknown (zero).
    pub totals_derived: bool,
}

impl MallocInfo {
    /// Whether the closing totals equal the sums of the arenas. glibc computes them as such
    /// sums, so a `false` means the text was altered or the parser misread it.
    pub fn totals_match_arenas(&self) -> bool {
        let summed = sum_arenas(&self.arenas);
        let t = &self.totals;
        t.fast == summed.fast
            && t.rest == summed.rest
            && t.system_current == summed.system_current
            && t.system_max == summed.system_max
            && t.aspace_total == summed.aspace_total
            && t.aspace_mprotect == summed.aspace_mprotect
    }
}

/// `sizeof(struct malloc_chunk)` on 64-bit: a free chunk's bytes before the first byte that
/// `malloc_trim` may give back.
const CHUNK_HEADER: u64 = 48;
/// `MINSIZE` on 64-bit: what `systrim` keeps of the top chunk beyond `pad`.
const MIN_CHUNK: u64 = 32;

/// An upper bound of what `malloc_trim(0)` can return from one arena, in bytes.
///
/// `malloc_trim` first merges the fastbins, then for every free chunk of at least a page plus
/// a chunk header it `madvise(MADV_DONTNEED)`s the whole pages inside the chunk; of the main
/// arena it also shrinks the top chunk with `sbrk`. Secondary arenas' top chunks are left alone
/// (they shrink on `free` when they pass the trim threshold). Only whole pages can go, and the
/// bins only give each size class's range, so the bound takes every chunk at its largest; pages
/// that were never touched or were already given back are counted too, though they free no
/// RSS. The RSS a trim releases is therefore at most this, and often much less.
pub fn trimmable_upper_bound(arena: &Arena, page_size: u64) -> u64 {
    let page = page_size.max(1);
    let floor = |v: u64| v - v % page;
    let min_trimmable = page.saturating_add(CHUNK_HEADER);
    let bins: u64 = if arena.fast.count > 0 {
        // Merging fastbins can join any small chunks into one big enough to give pages back.
        floor(saturating_sum(arena.bins.iter().map(|b| b.total)))
    } else {
        arena
            .bins
            .iter()
            .filter(|b| b.to >= min_trimmable)
            .map(|b| {
                let per_chunk = floor(b.to.saturating_sub(CHUNK_HEADER));
                floor(b.total).min(per_chunk.saturating_mul(b.count))
            })
            .fold(0, u64::saturating_add)
    };
    let top = if arena.nr == 0 { floor(arena.top.saturating_sub(MIN_CHUNK + 1)) } else { 0 };
    bins.saturating_add(top)
}

/// Parses the text `malloc_info(0, fp)` writes. Unknown elements and attributes are skipped, so
/// a later glibc that adds some still parses; a document cut short is an error.
pub fn parse_malloc_info(xml: &str, page_size: u64) -> Result<MallocInfo> {
    let mut version = None;
    let mut arenas = Vec::new();
    let mut current: Option<RawArena> = None;
    let mut totals = RawTotals::default();
    let mut closed = false;

    for tag in Tags::new(xml) {
        let tag = tag?;
        if closed {
            break;
        }
        match (tag.name, tag.closing) {
            ("malloc", false) => version = Some(tag.num("version").unwrap_or(Ok(1))?),
            ("malloc", true) => closed = true,
            ("heap", false) => {
                if current.is_some() {
                    return Err(parse_err("a <heap> opens inside another"));
                }
                let nr = tag.num("nr").ok_or_else(|| parse_err("<heap> without nr"))??;
                current = Some(RawArena { nr, ..RawArena::default() });
            }
            ("heap", true) => {
                let a = current.take().ok_or_else(|| parse_err("</heap> without <heap>"))?;
                arenas.push(a.finish(page_size));
            }
            ("size" | "unsorted", false) => {
                if let Some(a) = current.as_mut() {
                    a.bins.push(FreeBin {
                        from: tag.num("from").unwrap_or(Ok(0))?,
                        to: tag.num("to").unwrap_or(Ok(0))?,
                        total: tag.num("total").unwrap_or(Ok(0))?,
                        count: tag.num("count").unwrap_or(Ok(0))?,
                        unsorted: tag.name == "unsorted",
                    });
                }
            }
            ("total" | "system" | "aspace", false) => {
                let kind = tag.attr("type").unwrap_or("");
                let size = tag.num("size").unwrap_or(Ok(0))?;
                let count = tag.num("count").unwrap_or(Ok(0))?;
                let chunks = ChunkTotal { count, size };
                match current.as_mut() {
                    Some(a) => a.set(tag.name, kind, chunks),
                    None => totals.set(tag.name, kind, chunks),
                }
            }
            _ => {}
        }
    }
    let version = version.ok_or_else(|| parse_err("no <malloc> element"))?;
    if current.is_some() || !closed {
        return Err(parse_err("the document ends before </malloc>"));
    }
    let totals_derived = !totals.seen;
    let mut t = if totals.seen { totals.values } else { sum_arenas(&arenas) };
    t.retained = t.fast.size.saturating_add(t.rest.size);
    t.in_use = t.system_current.saturating_sub(t.retained);
    t.trimmable_max = saturating_sum(arenas.iter().map(|a| a.trimmable_max));
    Ok(MallocInfo { version, arenas, totals: t, totals_derived })
}

fn parse_err(detail: impl Into<String>) -> Error {
    Error::Parse { what: "malloc_info XML", detail: detail.into() }
}

/// Sums that saturate rather than wrap (or panic) on absurd input.
fn saturating_sum(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

fn sum_arenas(arenas: &[Arena]) -> MallocTotals {
    let mut t = MallocTotals::default();
    for a in arenas {
        t.fast.count = t.fast.count.saturating_add(a.fast.count);
        t.fast.size = t.fast.size.saturating_add(a.fast.size);
        t.rest.count = t.rest.count.saturating_add(a.rest.count);
        t.rest.size = t.rest.size.saturating_add(a.rest.size);
        t.system_current = t.system_current.saturating_add(a.system_current);
        t.system_max = t.system_max.saturating_add(a.system_max);
        t.aspace_total = t.aspace_total.saturating_add(a.aspace_total);
        t.aspace_mprotect = t.aspace_mprotect.saturating_add(a.aspace_mprotect);
    }
    t
}

#[derive(Default)]
struct RawArena {
    nr: u32,
    bins: Vec<FreeBin>,
    fast: ChunkTotal,
    rest: ChunkTotal,
    system_current: u64,
    system_max: u64,
    aspace_total: u64,
    aspace_mprotect: u64,
    subheaps: Option<u64>,
}

impl RawArena {
    fn set(&mut self, element: &str, kind: &str, v: ChunkTotal) {
        match (element, kind) {
            ("total", "fast") => self.fast = v,
            ("total", "rest") => self.rest = v,
            ("system", "current") => self.system_current = v.size,
            ("system", "max") => self.system_max = v.size,
            ("aspace", "total") => self.aspace_total = v.size,
            ("aspace", "mprotect") => self.aspace_mprotect = v.size,
            ("aspace", "subheaps") => self.subheaps = Some(v.size),
            _ => {}
        }
    }

    fn finish(self, page_size: u64) -> Arena {
        let retained = self.fast.size.saturating_add(self.rest.size);
        // "rest" counts the top chunk and every bin; the bin lines include the fastbins.
        let in_bins: u64 = saturating_sum(self.bins.iter().map(|b| b.total));
        let mut a = Arena {
            nr: self.nr,
            bins: self.bins,
            fast: self.fast,
            rest: self.rest,
            system_current: self.system_current,
            system_max: self.system_max,
            aspace_total: self.aspace_total,
            aspace_mprotect: self.aspace_mprotect,
            subheaps: self.subheaps,
            retained,
            in_use: self.system_current.saturating_sub(retained),
            top: retained.saturating_sub(in_bins),
            trimmable_max: 0,
        };
        a.trimmable_max = trimmable_upper_bound(&a, page_size);
        a
    }
}

#[derive(Default)]
struct RawTotals {
    values: MallocTotals,
    seen: bool,
}

impl RawTotals {
    fn set(&mut self, element: &str, kind: &str, v: ChunkTotal) {
        let t = &mut self.values;
        self.seen = true;
        match (element, kind) {
            ("total", "fast") => t.fast = v,
            ("total", "rest") => t.rest = v,
            ("total", "mmap") => t.mmap = v,
            ("system", "current") => t.system_current = v.size,
            ("system", "max") => t.system_max = v.size,
            ("aspace", "total") => t.aspace_total = v.size,
            ("aspace", "mprotect") => t.aspace_mprotect = v.size,
            _ => {}
        }
    }
}

/// One element tag: `<name a="1" b='2'/>`, `<name>` or `</name>`.
struct Tag<'a> {
    name: &'a str,
    closing: bool,
    attrs: Vec<(&'a str, &'a str)>,
}

impl<'a> Tag<'a> {
    fn attr(&self, key: &str) -> Option<&'a str> {
        self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The attribute as a number: `None` when absent, an error when present but not a number.
    fn num<T: std::str::FromStr>(&self, key: &str) -> Option<Result<T>> {
        let v = self.attr(key)?;
        Some(
            v.trim()
                .parse()
                .map_err(|_| parse_err(format!("<{} {key}=\"{v}\">: not a number", self.name))),
        )
    }
}

/// Walks the tags of a document; text between tags, comments and declarations are skipped.
struct Tags<'a> {
    rest: &'a str,
}

impl<'a> Tags<'a> {
    fn new(text: &'a str) -> Self {
        Tags { rest: text }
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Result<Tag<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.rest.find('<')?;
            let after = &self.rest[start + 1..];
            let Some(end) = after.find('>') else {
                self.rest = "";
                return Some(Err(parse_err("a tag is not closed with '>'")));
            };
            let body = after[..end].trim();
            self.rest = &after[end + 1..];
            if body.starts_with('?') || body.starts_with('!') || body.is_empty() {
                continue;
            }
            let (closing, body) = match body.strip_prefix('/') {
                Some(b) => (true, b.trim()),
                None => (false, body.strip_suffix('/').unwrap_or(body).trim()),
            };
            let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
            let name = &body[..name_end];
            return Some(Ok(Tag { name, closing, attrs: attributes(&body[name_end..]) }));
        }
    }
}

/// `a="1" b='2'` into pairs; a pair without quotes or `=` ends the list.
fn attributes(mut s: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq].trim();
        let v = s[eq + 1..].trim_start();
        let Some(quote) = v.chars().next().filter(|c| *c == '"' || *c == '\'') else { break };
        let v = &v[1..];
        let Some(close) = v.find(quote) else { break };
        out.push((key, &v[..close]));
        s = &v[close + 1..];
    }
    out
}

/// The system page size.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|p| *p > 0).unwrap_or(4096)
}

fn require_glibc(what: &str) -> Result<()> {
    match allocator::current_kind() {
        AllocatorKind::Glibc => Ok(()),
        other => Err(Error::Unsupported(format!(
            "{what} describes glibc's malloc, and this process's malloc is {}",
            other.name()
        ))),
    }
}

/// Runs `malloc_info` in this process and parses what it wrote. Only under glibc: elsewhere the
/// function (if glibc is loaded beside another allocator) would describe arenas nobody uses.
///
/// glibc takes each arena's lock in turn while it counts that arena's free lists.
pub fn collect_malloc_info() -> Result<MallocInfo> {
    require_glibc("malloc_info")?;
    let xml = malloc_info_xml()?;
    parse_malloc_info(&xml, page_size())
}

/// The raw XML of `malloc_info(0, fp)`, written into a memory stream.
pub fn malloc_info_xml() -> Result<String> {
    require_glibc("malloc_info")?;
    let f = allocator::symbol("malloc_info")
        .ok_or_else(|| Error::Unsupported("this glibc has no malloc_info (before 2.10)".into()))?;
    // SAFETY: glibc's `int malloc_info(int options, FILE *fp)`; resolved by name so a musl build
    // links.
    let malloc_info: extern "C" fn(c_int, *mut libc::FILE) -> c_int =
        unsafe { std::mem::transmute(f) };

    let mut buf: *mut c_char = std::ptr::null_mut();
    let mut len: libc::size_t = 0;
    // SAFETY: both out-pointers are valid for the stream's life (until fclose below), as
    // open_memstream requires.
    let stream = unsafe { libc::open_memstream(&mut buf, &mut len) };
    if stream.is_null() {
        return Err(Error::io("open_memstream", std::io::Error::last_os_error()));
    }
    let rc = malloc_info(0, stream);
    // SAFETY: `stream` came from open_memstream and is closed exactly once; closing it makes
    // `buf`/`len` final.
    let closed = unsafe { libc::fclose(stream) };
    let text = if buf.is_null() {
        String::new()
    } else {
        // SAFETY: after fclose, `buf` holds `len` bytes (plus a NUL) that the stream allocated
        // with malloc; they are copied before `buf` is freed.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        let s = String::from_utf8_lossy(bytes).into_owned();
        // SAFETY: the stream's buffer is the caller's to free, with the process's free.
        unsafe { libc::free(buf.cast::<c_void>()) };
        s
    };
    if rc != 0 || closed != 0 {
        return Err(Error::Io {
            path: "malloc_info(memstream)".into(),
            source: std::io::Error::other(format!("malloc_info returned {rc}, fclose {closed}")),
        });
    }
    Ok(text)
}

/// Which call gave the [`MallInfo`] numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MallinfoSource {
    /// `mallinfo2` (glibc 2.33 and later): `size_t` fields.
    Mallinfo2,
    /// `mallinfo`: `int` fields that wrap past 2 GiB; `wrapped` tells when that is possible.
    Mallinfo,
}

/// glibc's `mallinfo2` totals over all arenas, in bytes (counts for `ordblks`, `smblks`,
/// `hblks`). Field names are glibc's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MallInfo {
    pub source: MallinfoSource,
    /// Bytes the arenas got from the system (`system_current` summed).
    pub arena: u64,
    /// Free chunks, not counting fastbins.
    pub ordblks: u64,
    /// Free fastbin chunks.
    pub smblks: u64,
    /// Chunks served by `mmap`.
    pub hblks: u64,
    /// Bytes in chunks served by `mmap`.
    pub hblkhd: u64,
    pub usmblks: u64,
    /// Bytes in free fastbin chunks.
    pub fsmblks: u64,
    /// Bytes in use in the arenas.
    pub uordblks: u64,
    /// Free bytes in the arenas, fastbins and top included: the retained bytes.
    pub fordblks: u64,
    /// The main arena's top chunk.
    pub keepcost: u64,
    /// Only for `mallinfo`: some value may have wrapped (the arenas hold 2 GiB or more).
    pub wrapped: bool,
}

#[repr(C)]
#[derive(Default)]
struct RawMallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

#[repr(C)]
#[derive(Default)]
struct RawMallinfo {
    arena: c_int,
    ordblks: c_int,
    smblks: c_int,
    hblks: c_int,
    hblkhd: c_int,
    usmblks: c_int,
    fsmblks: c_int,
    uordblks: c_int,
    fordblks: c_int,
    keepcost: c_int,
}

/// `mallinfo2()` where glibc has it (2.33+), else `mallinfo()`, else `None`. Only under glibc.
pub fn collect_mallinfo() -> Result<Option<MallInfo>> {
    require_glibc("mallinfo")?;
    let to64 = |v: usize| v as u64;
    if let Some(f) = allocator::symbol("mallinfo2") {
        // SAFETY: glibc's `struct mallinfo2 mallinfo2(void)`, ten `size_t` fields returned by
        // value; RawMallinfo2 has the same layout.
        let f: extern "C" fn() -> RawMallinfo2 = unsafe { std::mem::transmute(f) };
        let m = f();
        return Ok(Some(MallInfo {
            source: MallinfoSource::Mallinfo2,
            arena: to64(m.arena),
            ordblks: to64(m.ordblks),
            smblks: to64(m.smblks),
            hblks: to64(m.hblks),
            hblkhd: to64(m.hblkhd),
            usmblks: to64(m.usmblks),
            fsmblks: to64(m.fsmblks),
            uordblks: to64(m.uordblks),
            fordblks: to64(m.fordblks),
            keepcost: to64(m.keepcost),
            wrapped: false,
        }));
    }
    let Some(f) = allocator::symbol("mallinfo") else { return Ok(None) };
    // SAFETY: glibc's `struct mallinfo mallinfo(void)`, ten `int` fields returned by value;
    // RawMallinfo has the same layout.
    let f: extern "C" fn() -> RawMallinfo = unsafe { std::mem::transmute(f) };
    let m = f();
    // glibc stores `size_t` values into the ints: reading them back as u32 undoes the sign but
    // not a wrap past 4 GiB.
    let u = |v: c_int| u64::from(v as u32);
    let wrapped = m.arena < 0 || m.hblkhd < 0 || m.uordblks < 0 || m.fordblks < 0;
    Ok(Some(MallInfo {
        source: MallinfoSource::Mallinfo,
        arena: u(m.arena),
        ordblks: u(m.ordblks),
        smblks: u(m.smblks),
        hblks: u(m.hblks),
        hblkhd: u(m.hblkhd),
        usmblks: u(m.usmblks),
        fsmblks: u(m.fsmblks),
        uordblks: u(m.uordblks),
        fordblks: u(m.fordblks),
        keepcost: u(m.keepcost),
        wrapped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JVM16: &str =
        include_str!("../tests/fixtures/malloc_info/jvm17-deflaters-16-threads.xml");
    const JVM1: &str =
        include_str!("../tests/fixtures/malloc_info/jvm17-deflaters-arena-max-1.xml");
    const C4: &str = include_str!("../tests/fixtures/malloc_info/c-4-threads-fastbins.xml");
    const PAGE: u64 = 4096;

    #[test]
    fn jvm_with_16_deflater_threads_has_16_arenas_and_consistent_totals() {
        let mi = parse_malloc_info(JVM16, PAGE).expect("parses");
        assert_eq!(mi.version, 1);
        assert_eq!(mi.arenas.len(), 16);
        assert_eq!(mi.arenas.iter().map(|a| a.nr).collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
        assert!(!mi.totals_derived);
        assert!(mi.totals_match_arenas());
        let t = &mi.totals;
        assert_eq!(t.rest, ChunkTotal { count: 68, size: 698_236_900 });
        assert_eq!(t.mmap, ChunkTotal { count: 7, size: 5_378_048 });
        assert_eq!(t.system_current, 800_591_872);
        assert_eq!(t.system_max, 865_939_456);
        assert_eq!(t.retained, 698_236_900);
        assert_eq!(t.in_use, 800_591_872 - 698_236_900);
        // Secondary arenas report their sub-heaps; the main arena does not.
        assert_eq!(mi.arenas[0].subheaps, None);
        assert!(mi.arenas[1..].iter().all(|a| a.subheaps == Some(1)));
    }

    #[test]
    fn main_arena_values_and_derived_top() {
        let mi = parse_malloc_info(JVM16, PAGE).expect("parses");
        let a = &mi.arenas[0];
        assert_eq!(a.bins.len(), 2);
        assert_eq!(
            a.bins[1],
            FreeBin { from: 12545, to: 12545, total: 12545, count: 1, unsorted: true }
        );
        assert_eq!(a.rest, ChunkTotal { count: 3, size: 50_772_562 });
        assert_eq!(a.system_current, 54_185_984);
        assert_eq!(a.retained, 50_772_562);
        assert_eq!(a.in_use, 54_185_984 - 50_772_562);
        // One free chunk per bin line plus the top chunk make the three of "rest".
        assert_eq!(a.top, 50_772_562 - 50_424_689 - 12545);
    }

    #[test]
    fn trim_bound_counts_whole_pages_of_big_free_chunks_only() {
        let mi = parse_malloc_info(JVM16, PAGE).expect("parses");
        let a = &mi.arenas[0];
        let big = (50_424_689 - 48) / PAGE * PAGE;
        let unsorted = (12545 - 48) / PAGE * PAGE;
        let top = (a.top - 33) / PAGE * PAGE;
        assert_eq!(a.trimmable_max, big + unsorted + top);
        // A secondary arena's top chunk is not trimmed by malloc_trim.
        let b = &mi.arenas[14];
        assert_eq!(b.trimmable_max, (46_412_369 - 48) / PAGE * PAGE + (4449 - 48) / PAGE * PAGE);
        assert!(mi.totals.trimmable_max <= mi.totals.retained);
        assert_eq!(mi.totals.trimmable_max, mi.arenas.iter().map(|a| a.trimmable_max).sum::<u64>());
    }

    #[test]
    fn arena_max_1_has_one_arena_holding_all() {
        let mi = parse_malloc_info(JVM1, PAGE).expect("parses");
        assert_eq!(mi.arenas.len(), 1);
        assert!(mi.totals_match_arenas());
        assert_eq!(mi.totals.system_current, 538_427_392);
        assert_eq!(mi.totals.retained, 146_806);
        // Small chunks, one free chunk over a page and a top chunk near the 128 KiB trim
        // threshold: only whole pages of the last two count.
        let a = &mi.arenas[0];
        assert_eq!(a.top, 146_806 - 15_062);
        assert_eq!(a.trimmable_max, (a.top - 33) / PAGE * PAGE + PAGE);
    }

    #[test]
    fn fastbins_are_counted_in_retained() {
        let mi = parse_malloc_info(C4, PAGE).expect("parses");
        assert_eq!(mi.arenas.len(), 5);
        assert!(mi.totals_match_arenas());
        assert_eq!(mi.totals.fast, ChunkTotal { count: 20214, size: 669_232 });
        assert_eq!(mi.totals.retained, 669_232 + 63_669_297);
        let fast_sum: u64 = mi.arenas.iter().map(|a| a.fast.size).sum();
        assert_eq!(fast_sum, 669_232);
        for a in &mi.arenas {
            assert_eq!(a.retained, a.fast.size + a.rest.size);
            assert!(a.trimmable_max <= a.retained);
        }
        assert_eq!(mi.totals.mmap.count, 4);
    }

    #[test]
    fn tolerates_whitespace_quotes_unknown_elements_and_a_declaration() {
        let xml = "<?xml version='1.0'?>\n<malloc version='2'>\n<heap nr=\"0\">\n<sizes>\n\
            <size from='33' to='33' total='66' count='2' extra=\"x\"/>\n</sizes>\n\
            <total type=\"fast\" count=\"2\" size=\"66\"/>\n<total type=\"rest\" count=\"1\" size=\"1000\"/>\n\
            <novelty value=\"7\"/>\n<system type=\"current\" size=\"4096\"/>\n</heap>\n\
            <total type=\"mmap\" count=\"0\" size=\"0\"/>\n<system type=\"current\" size=\"4096\"/>\n</malloc>\n";
        let mi = parse_malloc_info(xml, PAGE).expect("parses");
        assert_eq!(mi.version, 2);
        assert_eq!(mi.arenas[0].retained, 1066);
        assert_eq!(mi.arenas[0].in_use, 4096 - 1066);
        assert_eq!(mi.totals.system_current, 4096);
    }

    #[test]
    fn missing_totals_are_summed_from_arenas() {
        let xml = "<malloc version=\"1\"><heap nr=\"0\"><total type=\"rest\" count=\"1\" size=\"10\"/>\
            <system type=\"current\" size=\"100\"/></heap><heap nr=\"1\"><total type=\"rest\" count=\"2\" size=\"20\"/>\
            <system type=\"current\" size=\"200\"/></heap></malloc>";
        let mi = parse_malloc_info(xml, PAGE).expect("parses");
        assert!(mi.totals_derived);
        assert_eq!(mi.totals.retained, 30);
        assert_eq!(mi.totals.in_use, 270);
    }

    #[test]
    fn truncated_or_garbled_documents_are_errors() {
        let cut = &JVM16[..JVM16.len() / 2];
        assert!(matches!(parse_malloc_info(cut, PAGE), Err(Error::Parse { .. })));
        assert!(parse_malloc_info("", PAGE).is_err());
        assert!(parse_malloc_info("no xml here", PAGE).is_err());
        let bad = "<malloc version=\"1\"><heap nr=\"x\"></heap></malloc>";
        let err = parse_malloc_info(bad, PAGE).expect_err("bad nr");
        assert!(err.to_string().contains("nr=\"x\""), "{err}");
        let nested = "<malloc version=\"1\"><heap nr=\"0\"><heap nr=\"1\"></heap></heap></malloc>";
        assert!(parse_malloc_info(nested, PAGE).is_err());
        assert!(parse_malloc_info("<malloc version=\"1\"><heap nr=\"0\"", PAGE).is_err());
    }

    #[test]
    fn absurd_sizes_saturate_instead_of_wrapping() {
        // Found by tests/fuzz_parsers.rs: sums of huge values overflowed (a panic in debug
        // builds, wrong totals in release).
        let max = u64::MAX;
        let arena = |nr: u32| {
            format!(
                "<heap nr=\"{nr}\"><sizes><size from=\"17\" to=\"8192\" total=\"{max}\" count=\"{max}\"/>\
                 <size from=\"9000\" to=\"99999\" total=\"{max}\" count=\"3\"/></sizes>\
                 <total type=\"fast\" count=\"1\" size=\"{max}\"/><total type=\"rest\" count=\"{max}\" size=\"{max}\"/>\
                 <system type=\"current\" size=\"{max}\"/><system type=\"max\" size=\"{max}\"/>\
                 <aspace type=\"total\" size=\"{max}\"/><aspace type=\"mprotect\" size=\"{max}\"/></heap>"
            )
        };
        let xml = format!("<malloc version=\"1\">{}{}</malloc>", arena(0), arena(1));
        let mi = parse_malloc_info(&xml, PAGE).expect("parses");
        assert!(mi.totals_derived);
        assert_eq!(mi.totals.system_current, max);
        assert_eq!(mi.totals.rest.count, max);
        assert_eq!(mi.totals.retained, max);
        assert_eq!(mi.totals.in_use, 0);
        assert_eq!(mi.totals.trimmable_max, max);
        assert!(mi.totals_match_arenas());
        assert_eq!(trimmable_upper_bound(&mi.arenas[0], u64::MAX), max - max % u64::MAX);
    }
}
