//! Classification of the process's mappings into region classes: the breakdown of RSS.
//!
//! Every byte of every mapping lands in exactly one [`RegionClass`], so the classes add up to the
//! totals of the same parse exactly ([`Breakdown::check_sums`]); what cannot be attributed stays
//! in `other_anon` (or `mapped_file`) and is never spread over the other classes.
//!
//! Rules, first match wins for each byte:
//! 1. Address ranges the JVM told us about: the Java heap's reserved range(s) (`java_heap`), then
//!    NMT detail's reserved regions by category (`Thread Stack`, `Code`, `Metaspace`/`Class`/
//!    `Shared class space`, `GC`, `Java Heap`, anything else -> `jvm_other`). NMT wins over a
//!    file backing: the CDS archive and hsperfdata are files the JVM mapped for itself.
//!    A mapping only partly inside such ranges (the kernel merges adjacent VMAs with equal
//!    flags, so one VMA can span two reservations) is split. Its RSS and PSS go by the resident
//!    pages of each side where the caller can count them (`/proc/self/pagemap`, see
//!    [`classify_with_residency`]), else by the bytes of address space on each side; swap and
//!    size always go by address. Straddling is common, not rare: glibc's mmapped chunks (1 MiB
//!    direct buffers) merge with the JVM's committed GC or metaspace mappings next to them, and
//!    an address split then gave a mostly untouched 32 MiB GC reservation half of 30 MiB of
//!    touched buffers. The parts always add up to the mapping.
//! 2. The rest of each mapping goes by what the mapping is:
//!    - `kernel`: `[vdso]`, `[vvar]`, `[vvar_vclock]`, `[vsyscall]`, `[uprobes]`.
//!    - `malloc_arena`: `[heap]` (glibc's main arena, grown with `brk`), glibc-named
//!      `[anon: glibc: malloc arena]`, and secondary arena heaps found by shape (see
//!      [`find_arena_heaps`]).
//!    - `malloc_mmap`: glibc-named `[anon: glibc: malloc]` only (glibc >= 2.39 with the tunable
//!      `glibc.mem.decorate_maps=1`). Without names a large chunk glibc mmapped for one
//!      `malloc` looks like any other anonymous mapping, so it stays in `other_anon`.
//!    - `thread_stack`: `[stack]`, glibc-named pthread stacks, and stack-shaped pairs (see
//!      [`find_stack_pairs`]); the JVM's own thread stacks are better taken from NMT.
//!    - `jvm_code`: anonymous `rwxp` mappings. Only JIT compilers write code into memory they
//!      also execute, and in a JVM that is the code cache (a JS engine or a libffi closure in
//!      the same process would land here too). The code cache's `---p` reserve is not
//!      recognised without NMT, it has no resident pages anyway.
//!    - `jvm_metaspace`: the CDS archive mapped from a `*.jsa` file; `jvm_other`: the
//!      `hsperfdata_USER/PID` performance counters file.
//!    - `mapped_file`: any other mapping with a path (libraries, jars, `/memfd:`, shared memory).
//!    - `other_anon`: everything else, notably without NMT: metaspace, the compressed class space,
//!      GC data structures (card table, mark bitmaps, remembered sets), and any native memory
//!      that was mmapped directly (by jemalloc, a native library, or glibc for large chunks).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::smaps::{Backing, Mapping, SmapsTotals};

/// glibc's `HEAP_MAX_SIZE` on 64-bit: every secondary arena heap is a block of this size,
/// aligned to it, so that `heap_for_ptr` can find the heap header by masking a chunk address.
pub const ARENA_HEAP_SIZE: u64 = 64 << 20;

/// A half-open address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn new(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    fn overlap(&self, other: &Range) -> u64 {
        self.end
            .min(other.end)
            .saturating_sub(self.start.max(other.start))
    }
}

/// One reserved region of NMT detail's virtual memory map, with its category as NMT prints it
/// (`Java Heap`, `Class`, `Thread Stack`, `Code`, `GC`, `Metaspace`, `Internal`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NmtRegion {
    pub range: Range,
    pub category: String,
}

/// What the JVM knows that the mappings do not tell.
#[derive(Debug, Clone, Default)]
pub struct ClassifyInput {
    /// The Java heap's reserved range(s) (from `GC.heap_info` or the memory MXBeans).
    pub heap: Vec<Range>,
    /// NMT detail's reserved regions; empty when NMT is off or only at summary level.
    pub nmt_regions: Vec<NmtRegion>,
    /// Live JVM threads, reported next to the stacks found (not used for classification).
    pub jvm_thread_count: Option<u64>,
    /// `-Xss` / `ThreadStackSize` in bytes: a stack-shaped pair of exactly this size is taken
    /// as a thread stack even outside the generic size window.
    pub thread_stack_size: Option<u64>,
}

/// The region classes of the breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionClass {
    JavaHeap,
    MallocArena,
    MallocMmap,
    ThreadStack,
    JvmCode,
    JvmMetaspace,
    JvmGc,
    JvmOther,
    MappedFile,
    OtherAnon,
    Kernel,
}

impl RegionClass {
    /// All classes, in report order.
    pub const ALL: [RegionClass; 11] = [
        RegionClass::JavaHeap,
        RegionClass::MallocArena,
        RegionClass::MallocMmap,
        RegionClass::ThreadStack,
        RegionClass::JvmCode,
        RegionClass::JvmMetaspace,
        RegionClass::JvmGc,
        RegionClass::JvmOther,
        RegionClass::MappedFile,
        RegionClass::OtherAnon,
        RegionClass::Kernel,
    ];

    /// The name used in reports (`java_heap`, ...), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            RegionClass::JavaHeap => "java_heap",
            RegionClass::MallocArena => "malloc_arena",
            RegionClass::MallocMmap => "malloc_mmap",
            RegionClass::ThreadStack => "thread_stack",
            RegionClass::JvmCode => "jvm_code",
            RegionClass::JvmMetaspace => "jvm_metaspace",
            RegionClass::JvmGc => "jvm_gc",
            RegionClass::JvmOther => "jvm_other",
            RegionClass::MappedFile => "mapped_file",
            RegionClass::OtherAnon => "other_anon",
            RegionClass::Kernel => "kernel",
        }
    }

    /// The class of an NMT category name (JDK 8 to 25 spellings).
    pub fn of_nmt_category(category: &str) -> RegionClass {
        match category.trim() {
            "Java Heap" => RegionClass::JavaHeap,
            "Thread Stack" => RegionClass::ThreadStack,
            "Code" => RegionClass::JvmCode,
            "Class" | "Metaspace" | "Shared class space" => RegionClass::JvmMetaspace,
            "GC" => RegionClass::JvmGc,
            _ => RegionClass::JvmOther,
        }
    }
}

/// Sizes of one class (or of everything), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassTotals {
    pub rss: u64,
    pub pss: u64,
    pub swap: u64,
    /// Virtual size.
    pub size: u64,
    /// Mappings counted here; a split mapping counts in the class that got most of its bytes.
    pub mappings: u64,
}

impl ClassTotals {
    fn add(&mut self, o: &ClassTotals) {
        self.rss = self.rss.saturating_add(o.rss);
        self.pss = self.pss.saturating_add(o.pss);
        self.swap = self.swap.saturating_add(o.swap);
        self.size = self.size.saturating_add(o.size);
        self.mappings = self.mappings.saturating_add(o.mappings);
    }
}

/// Per-class sizes; serialised as an object keyed by the class names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Classes {
    pub java_heap: ClassTotals,
    pub malloc_arena: ClassTotals,
    pub malloc_mmap: ClassTotals,
    pub thread_stack: ClassTotals,
    pub jvm_code: ClassTotals,
    pub jvm_metaspace: ClassTotals,
    pub jvm_gc: ClassTotals,
    pub jvm_other: ClassTotals,
    pub mapped_file: ClassTotals,
    pub other_anon: ClassTotals,
    pub kernel: ClassTotals,
}

impl Classes {
    pub fn get(&self, c: RegionClass) -> &ClassTotals {
        match c {
            RegionClass::JavaHeap => &self.java_heap,
            RegionClass::MallocArena => &self.malloc_arena,
            RegionClass::MallocMmap => &self.malloc_mmap,
            RegionClass::ThreadStack => &self.thread_stack,
            RegionClass::JvmCode => &self.jvm_code,
            RegionClass::JvmMetaspace => &self.jvm_metaspace,
            RegionClass::JvmGc => &self.jvm_gc,
            RegionClass::JvmOther => &self.jvm_other,
            RegionClass::MappedFile => &self.mapped_file,
            RegionClass::OtherAnon => &self.other_anon,
            RegionClass::Kernel => &self.kernel,
        }
    }

    fn get_mut(&mut self, c: RegionClass) -> &mut ClassTotals {
        match c {
            RegionClass::JavaHeap => &mut self.java_heap,
            RegionClass::MallocArena => &mut self.malloc_arena,
            RegionClass::MallocMmap => &mut self.malloc_mmap,
            RegionClass::ThreadStack => &mut self.thread_stack,
            RegionClass::JvmCode => &mut self.jvm_code,
            RegionClass::JvmMetaspace => &mut self.jvm_metaspace,
            RegionClass::JvmGc => &mut self.jvm_gc,
            RegionClass::JvmOther => &mut self.jvm_other,
            RegionClass::MappedFile => &mut self.mapped_file,
            RegionClass::OtherAnon => &mut self.other_anon,
            RegionClass::Kernel => &mut self.kernel,
        }
    }

    /// The sum over all classes.
    pub fn sum(&self) -> ClassTotals {
        let mut t = ClassTotals::default();
        for c in RegionClass::ALL {
            t.add(self.get(c));
        }
        t
    }
}

/// One glibc arena heap seen in the mappings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arena {
    /// True for the main arena (`[heap]`), false for a secondary arena heap.
    pub main: bool,
    pub start: u64,
    /// Address space of the heap: 64 MiB for a secondary arena heap, the `[heap]` size for the
    /// main arena.
    pub size: u64,
    /// The readable and writable part (what glibc has grown the heap to).
    pub committed: u64,
    pub rss: u64,
    pub pss: u64,
    pub swap: u64,
}

/// Where the thread stack figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackSource {
    /// NMT's `Thread Stack` regions (plus shape-found stacks of threads NMT does not track).
    Nmt,
    /// Shapes of the mappings only.
    Heuristic,
}

/// The breakdown of one smaps parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub classes: Classes,
    /// Sums straight from the mappings, independent of classification.
    pub totals: ClassTotals,
    /// Arena heaps, main arena first. A secondary arena that outgrew its first heap has more
    /// than one heap; smaps cannot tell which heaps belong together, so this lists heaps.
    pub arenas: Vec<Arena>,
    /// Secondary arena heaps (`arenas` minus the main arena): an upper bound of the number of
    /// secondary arenas.
    pub secondary_arena_heaps: u64,
    /// Thread stacks recognised: NMT `Thread Stack` regions seen in the mappings, shape-found
    /// stacks outside NMT, and `[stack]`.
    pub thread_stacks: u64,
    pub stack_source: StackSource,
    /// As given in [`ClassifyInput::jvm_thread_count`], to compare with `thread_stacks`.
    pub jvm_threads: Option<u64>,
    /// The rollup-style totals of the same parse (RSS, PSS, swap, anonymous, file).
    pub smaps: SmapsTotals,
}

impl Breakdown {
    /// Checks that the classes add up to the totals exactly, field by field.
    pub fn check_sums(&self) -> Result<()> {
        let sum = self.classes.sum();
        if sum == self.totals
            && self.totals.rss == self.smaps.rss
            && self.totals.pss == self.smaps.pss
        {
            Ok(())
        } else {
            Err(Error::Parse {
                what: "smaps breakdown",
                detail: format!("classes sum to {sum:?}, totals are {:?}", self.totals),
            })
        }
    }

    /// RSS that the breakdown could not give to any named owner.
    pub fn unattributed_rss(&self) -> u64 {
        self.classes.other_anon.rss
    }
}

/// Disjoint attributed ranges sorted by start: heap ranges first, NMT regions clipped around them.
fn attributed_ranges(input: &ClassifyInput) -> Vec<(Range, RegionClass)> {
    let mut heap: Vec<Range> = input
        .heap
        .iter()
        .copied()
        .filter(|r| !r.is_empty())
        .collect();
    heap.sort();
    let mut out: Vec<(Range, RegionClass)> =
        heap.iter().map(|r| (*r, RegionClass::JavaHeap)).collect();
    for region in &input.nmt_regions {
        let class = RegionClass::of_nmt_category(&region.category);
        // Subtract the heap ranges: both sources may describe the heap, and a byte counts once.
        let mut pieces = vec![region.range];
        for h in &heap {
            let mut next = Vec::with_capacity(pieces.len() + 1);
            for p in pieces {
                if p.overlap(h) == 0 {
                    next.push(p);
                    continue;
                }
                if p.start < h.start {
                    next.push(Range::new(p.start, h.start));
                }
                if p.end > h.end {
                    next.push(Range::new(h.end, p.end));
                }
            }
            pieces = next;
        }
        out.extend(
            pieces
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| (p, class)),
        );
    }
    out.sort_by_key(|(r, _)| (r.start, r.end));
    // NMT regions should not overlap each other; if they do, the earlier one keeps the bytes.
    let mut disjoint: Vec<(Range, RegionClass)> = Vec::with_capacity(out.len());
    let mut covered_to = 0u64;
    for (mut r, c) in out {
        r.start = r.start.max(covered_to);
        if r.is_empty() {
            continue;
        }
        covered_to = r.end;
        disjoint.push((r, c));
    }
    disjoint
}

/// Indices of mappings that form secondary glibc arena heaps, grouped per heap.
///
/// glibc's `new_heap` maps `HEAP_MAX_SIZE` (64 MiB) of `PROT_NONE` at a 64 MiB-aligned address
/// and `grow_heap` makes it readable and writable from the start as the arena grows. So a heap
/// is a run of adjacent anonymous private mappings that starts 64 MiB-aligned with a `rw-p`
/// mapping, is `rw-p` then `---p` (never back), and ends exactly 64 MiB later. A full heap is a
/// single 64 MiB `rw-p`. Checked against the JDK 17 and 25 fixtures: 16 busy threads give
/// 14-16 such heaps, `MALLOC_ARENA_MAX=1` and jemalloc none, and the JVM's own 64 MiB-aligned
/// reservations (compressed class space: `rw-p`, `---p`, `rw-p`, ... over 1 GiB) do not match.
///
/// Limits: two full heaps side by side merge into one 128 MiB VMA and are missed; a JVM or
/// library reservation of exactly this shape is taken for an arena unless NMT claims it (seen
/// end to end: a 64 MiB metaspace node, committed from its start, that landed 64 MiB-aligned on
/// JDK 25 counted as one heap more than malloc_info's arenas explain);
/// `eligible[i]` false excludes mapping `i` (already attributed); entries missing from a short
/// slice count as eligible.
pub fn find_arena_heaps(mappings: &[Mapping], eligible: &[bool]) -> Vec<Vec<usize>> {
    let mut heaps = Vec::new();
    let mut i = 0;
    while i < mappings.len() {
        let m = &mappings[i];
        let is_start = is_eligible(eligible, i)
            && is_plain_anon(m)
            && m.perms.is_rw_private()
            && m.start.is_multiple_of(ARENA_HEAP_SIZE);
        if !is_start {
            i += 1;
            continue;
        }
        let Some(limit) = m.start.checked_add(ARENA_HEAP_SIZE) else {
            i += 1;
            continue;
        };
        let mut j = i;
        let mut reserve_seen = false;
        let mut ok = false;
        loop {
            let cur = &mappings[j];
            if cur.end == limit {
                ok = true;
                break;
            }
            if cur.end > limit || j + 1 >= mappings.len() {
                break;
            }
            let next = &mappings[j + 1];
            if next.start != cur.end || !is_eligible(eligible, j + 1) || !is_plain_anon(next) {
                break;
            }
            if next.perms.is_none_private() {
                reserve_seen = true;
            } else if reserve_seen || !next.perms.is_rw_private() {
                // Only rw-p may precede the reserve: glibc grows a heap from its start.
                break;
            }
            j += 1;
        }
        if ok {
            heaps.push((i..=j).collect());
            i = j + 1;
        } else {
            i += 1;
        }
    }
    heaps
}

/// `eligible[i]`, where entries missing from a short slice count as eligible.
fn is_eligible(eligible: &[bool], i: usize) -> bool {
    eligible.get(i).copied().unwrap_or(true)
}

/// Anonymous memory with no name, or glibc's own arena name.
fn is_plain_anon(m: &Mapping) -> bool {
    match &m.backing {
        Backing::Anonymous => true,
        Backing::AnonNamed(n) => n.trim() == "glibc: malloc arena",
        _ => false,
    }
}

/// Smallest and largest stack the shape heuristic accepts without a `thread_stack_size` hint.
const STACK_MIN: u64 = 64 << 10;
const STACK_MAX: u64 = 16 << 20;
/// Largest guard area: glibc's one page, HotSpot's reserved + yellow + red zones (4 pages with
/// 4 KiB pages, more with bigger pages or larger `StackShadowPages` settings).
const GUARD_MAX: u64 = 64 << 10;

/// Pairs `(guard, stack)` of mapping indices that look like a thread stack.
///
/// Both glibc (`pthread_create`) and HotSpot put a thread's guard at the low end of its stack,
/// since stacks grow down: a small anonymous `---p` mapping (glibc: one page; HotSpot Java
/// threads: 16 KiB of reserved/yellow/red zone pages) directly followed by the anonymous `rw-p`
/// stack. Seen in the fixtures: HotSpot Java threads 16 KiB + 1008 KiB = 1 MiB, JVM native
/// threads 4 KiB + 1 MiB, plain pthreads 4 KiB + 8188 KiB. The rule: guard of at most 64 KiB,
/// stack between 64 KiB and 16 MiB (or guard + stack equal to `thread_stack_size`), and
/// either the stack or guard + stack a multiple of 64 KiB.
///
/// Limits: a stack VMA merged with an adjacent anonymous `rw-p` mapping above it no longer has
/// a stack's size and is missed; threads created with odd stack sizes are missed; an unrelated
/// `---p` page followed by a 64 KiB-multiple `rw-p` mapping is taken for a stack.
///
/// `eligible` as in [`find_arena_heaps`].
pub fn find_stack_pairs(
    mappings: &[Mapping],
    eligible: &[bool],
    thread_stack_size: Option<u64>,
) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for i in 0..mappings.len().saturating_sub(1) {
        let (g, s) = (&mappings[i], &mappings[i + 1]);
        if !(is_eligible(eligible, i) && is_eligible(eligible, i + 1)) || g.end != s.start {
            continue;
        }
        if g.backing != Backing::Anonymous || s.backing != Backing::Anonymous {
            continue;
        }
        if !(g.perms.is_none_private() && s.perms.is_rw_private()) {
            continue;
        }
        let (guard, stack) = (g.span(), s.span());
        if guard == 0 || guard > GUARD_MAX {
            continue;
        }
        let exact_hint =
            thread_stack_size.is_some_and(|t| t == guard.saturating_add(stack) || t == stack);
        let generic = (STACK_MIN..=STACK_MAX).contains(&stack)
            && (stack.is_multiple_of(STACK_MIN)
                || stack.saturating_add(guard).is_multiple_of(STACK_MIN));
        if exact_hint || generic {
            pairs.push((i, i + 1));
        }
    }
    pairs
}

/// The class of the bytes of `m` that no JVM-given range claims.
fn class_by_shape(m: &Mapping) -> RegionClass {
    match &m.backing {
        Backing::Kernel(_) => RegionClass::Kernel,
        Backing::Heap => RegionClass::MallocArena,
        Backing::Stack => RegionClass::ThreadStack,
        Backing::AnonNamed(n) => {
            let n = n.trim();
            if n == "glibc: malloc arena" {
                RegionClass::MallocArena
            } else if n == "glibc: malloc" {
                RegionClass::MallocMmap
            } else if n.starts_with("glibc: pthread stack")
                || n.starts_with("glibc: pthread user stack")
            {
                RegionClass::ThreadStack
            } else {
                RegionClass::OtherAnon
            }
        }
        Backing::File(path) => {
            if path.ends_with(".jsa") {
                RegionClass::JvmMetaspace
            } else if path.contains("/hsperfdata_") {
                RegionClass::JvmOther
            } else {
                RegionClass::MappedFile
            }
        }
        Backing::Anonymous if m.perms.exec && m.perms.write && !m.perms.shared => {
            RegionClass::JvmCode
        }
        Backing::Anonymous | Backing::Pseudo(_) => RegionClass::OtherAnon,
    }
}

/// `v * part / whole` without overflow; `whole` is non-zero.
fn share(v: u64, part: u64, whole: u64) -> u64 {
    let s = u128::from(v) * u128::from(part) / u128::from(whole);
    u64::try_from(s).unwrap_or(v)
}

/// Classifies `mappings` (in address order, as smaps lists them) and adds up each class; a
/// straddling mapping is split by address.
pub fn classify(mappings: &[Mapping], input: &ClassifyInput) -> Breakdown {
    classify_with_residency(mappings, input, &mut |_| None)
}

/// As [`classify`], with `resident(range)` giving the resident bytes of part of a mapping (or
/// `None` where it cannot tell): asked only for the claimed parts of straddling mappings.
pub fn classify_with_residency(
    mappings: &[Mapping],
    input: &ClassifyInput,
    resident: &mut dyn FnMut(Range) -> Option<u64>,
) -> Breakdown {
    let ranges = attributed_ranges(input);
    let nmt_stacks = !input.nmt_regions.is_empty()
        && input
            .nmt_regions
            .iter()
            .any(|r| r.category.trim() == "Thread Stack");

    // Pass 1: bytes of each mapping claimed by JVM-given ranges.
    let mut claims: Vec<Vec<(RegionClass, u64)>> = Vec::with_capacity(mappings.len());
    // The claimed address pieces of each mapping, for counting their resident pages.
    let mut pieces: Vec<Vec<(RegionClass, Range)>> = Vec::with_capacity(mappings.len());
    let mut eligible = Vec::with_capacity(mappings.len());
    let mut nmt_stack_regions_seen = 0u64;
    let mut last_stack_region: Option<usize> = None;
    for m in mappings {
        let mut c: Vec<(RegionClass, u64)> = Vec::new();
        let mut pc: Vec<(RegionClass, Range)> = Vec::new();
        let span = Range::new(m.start, m.end);
        let first = ranges.partition_point(|(r, _)| r.end <= span.start);
        for (idx, (r, class)) in ranges.iter().enumerate().skip(first) {
            if r.start >= span.end {
                break;
            }
            let bytes = r.overlap(&span);
            if bytes == 0 {
                continue;
            }
            if *class == RegionClass::ThreadStack && last_stack_region != Some(idx) {
                nmt_stack_regions_seen += 1;
                last_stack_region = Some(idx);
            }
            match c.iter_mut().find(|(k, _)| k == class) {
                Some((_, b)) => *b += bytes,
                None => c.push((*class, bytes)),
            }
            pc.push((*class, Range::new(r.start.max(span.start), r.end.min(span.end))));
        }
        eligible.push(c.is_empty());
        claims.push(c);
        pieces.push(pc);
    }

    // Pass 2: shapes, on mappings no range claimed.
    let mut fallback: Vec<RegionClass> = mappings.iter().map(class_by_shape).collect();
    let mut arenas = Vec::new();
    let main: Vec<&Mapping> = mappings
        .iter()
        .filter(|m| m.backing == Backing::Heap)
        .collect();
    if let Some(first) = main.first() {
        let mut a = Arena {
            main: true,
            start: first.start,
            size: 0,
            committed: 0,
            rss: 0,
            pss: 0,
            swap: 0,
        };
        for m in &main {
            a.size = a.size.saturating_add(m.span());
            a.committed = a.committed.saturating_add(m.span());
            a.rss = a.rss.saturating_add(m.rss);
            a.pss = a.pss.saturating_add(m.pss);
            a.swap = a.swap.saturating_add(m.swap);
        }
        arenas.push(a);
    }
    let heaps = find_arena_heaps(mappings, &eligible);
    for heap in &heaps {
        let mut a = Arena {
            main: false,
            start: mappings[heap[0]].start,
            size: ARENA_HEAP_SIZE,
            committed: 0,
            rss: 0,
            pss: 0,
            swap: 0,
        };
        for &i in heap {
            let m = &mappings[i];
            if m.perms.is_rw_private() {
                a.committed = a.committed.saturating_add(m.span());
            }
            a.rss = a.rss.saturating_add(m.rss);
            a.pss = a.pss.saturating_add(m.pss);
            a.swap = a.swap.saturating_add(m.swap);
            fallback[i] = RegionClass::MallocArena;
            eligible[i] = false;
        }
        arenas.push(a);
    }
    let pairs = find_stack_pairs(mappings, &eligible, input.thread_stack_size);
    for &(g, s) in &pairs {
        fallback[g] = RegionClass::ThreadStack;
        fallback[s] = RegionClass::ThreadStack;
    }
    let named_stacks = mappings
        .iter()
        .filter(|m| fallback_is_named_stack(m))
        .count() as u64;

    // Pass 3: add up, splitting claimed mappings by address share.
    let mut classes = Classes::default();
    let mut totals = ClassTotals::default();
    for (i, m) in mappings.iter().enumerate() {
        let whole = ClassTotals {
            rss: m.rss,
            pss: m.pss,
            swap: m.swap,
            size: m.size,
            mappings: 1,
        };
        totals.add(&whole);
        let claim = &claims[i];
        let span = m.span();
        if claim.is_empty() || span == 0 {
            classes.get_mut(fallback[i]).add(&whole);
            continue;
        }
        let claimed: u64 = claim.iter().map(|(_, b)| *b).sum();
        let rest_bytes = span.saturating_sub(claimed);
        // Rounding dust goes to the remainder's class, or to the largest claim when the ranges
        // cover the whole mapping, so the parts always add up to the mapping.
        let biggest = claim.iter().max_by_key(|(_, b)| *b).map(|(c, b)| (*c, *b));
        let (dust_class, count_class) = match biggest {
            Some((c, _)) if rest_bytes == 0 => (c, c),
            Some((c, b)) if b >= rest_bytes => (fallback[i], c),
            _ => (fallback[i], fallback[i]),
        };
        // Resident bytes of each claim, where the caller can count them; the remainder's are
        // what smaps says is resident beyond the claims.
        let weights: Option<(Vec<u64>, u64)> = if m.rss > 0 && (rest_bytes > 0 || claim.len() > 1) {
            claim
                .iter()
                .map(|(class, _)| {
                    pieces[i]
                        .iter()
                        .filter(|(k, _)| k == class)
                        .map(|(_, r)| resident(*r))
                        .sum::<Option<u64>>()
                })
                .collect::<Option<Vec<u64>>>()
                .map(|w| {
                    let rest = if rest_bytes > 0 { m.rss.saturating_sub(w.iter().sum()) } else { 0 };
                    let total = w.iter().sum::<u64>() + rest;
                    (w, total)
                })
                .filter(|(_, total)| *total > 0)
        } else {
            None
        };
        let mut left = whole;
        left.mappings = 0;
        for (k, &(class, bytes)) in claim.iter().enumerate() {
            let (w, of) = match &weights {
                Some((w, total)) => (w[k], *total),
                None => (bytes, span),
            };
            let part = ClassTotals {
                rss: share(m.rss, w, of),
                pss: share(m.pss, w, of),
                swap: share(m.swap, bytes, span),
                size: share(m.size, bytes, span),
                mappings: 0,
            };
            left.rss = left.rss.saturating_sub(part.rss);
            left.pss = left.pss.saturating_sub(part.pss);
            left.swap = left.swap.saturating_sub(part.swap);
            left.size = left.size.saturating_sub(part.size);
            classes.get_mut(class).add(&part);
        }
        classes.get_mut(dust_class).add(&left);
        classes.get_mut(count_class).mappings += 1;
    }

    let heuristic_stacks = pairs.len() as u64;
    let main_stack = mappings
        .iter()
        .filter(|m| m.backing == Backing::Stack)
        .count() as u64;
    let secondary_arena_heaps = heaps.len() as u64;
    Breakdown {
        classes,
        totals,
        arenas,
        secondary_arena_heaps,
        thread_stacks: nmt_stack_regions_seen + heuristic_stacks + named_stacks + main_stack,
        stack_source: if nmt_stacks {
            StackSource::Nmt
        } else {
            StackSource::Heuristic
        },
        jvm_threads: input.jvm_thread_count,
        smaps: SmapsTotals::of(mappings),
    }
}

fn fallback_is_named_stack(m: &Mapping) -> bool {
    matches!(&m.backing, Backing::AnonNamed(n) if n.trim().starts_with("glibc: pthread stack")
        || n.trim().starts_with("glibc: pthread user stack"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smaps::Perms;

    const MIB: u64 = 1 << 20;
    const BASE: u64 = 0x7f00_0000_0000;

    fn map(start: u64, end: u64, perms: &str, rss: u64) -> Mapping {
        Mapping {
            start,
            end,
            perms: Perms::parse(perms.as_bytes()).expect("perms"),
            size: end - start,
            rss,
            pss: rss,
            ..Mapping::default()
        }
    }

    #[test]
    fn arena_heap_is_rw_then_reserve_over_exactly_64_mib() {
        let ms = vec![
            map(BASE, BASE + 5 * MIB, "rw-p", 3 * MIB),
            map(BASE + 5 * MIB, BASE + 64 * MIB, "---p", 0),
            // A full heap: one rw-p mapping of 64 MiB.
            map(BASE + 64 * MIB, BASE + 128 * MIB, "rw-p", MIB),
            // Aligned, but rw-p after the reserve: a JVM reservation, not glibc.
            map(BASE + 128 * MIB, BASE + 129 * MIB, "rw-p", MIB),
            map(BASE + 129 * MIB, BASE + 130 * MIB, "---p", 0),
            map(BASE + 130 * MIB, BASE + 131 * MIB, "rw-p", MIB),
            map(BASE + 131 * MIB, BASE + 192 * MIB, "---p", 0),
            // Not aligned.
            map(BASE + 200 * MIB, BASE + 264 * MIB, "rw-p", MIB),
        ];
        let eligible = vec![true; ms.len()];
        assert_eq!(find_arena_heaps(&ms, &eligible), vec![vec![0, 1], vec![2]]);
        let b = classify(&ms, &ClassifyInput::default());
        b.check_sums().expect("sums");
        assert_eq!(b.secondary_arena_heaps, 2);
        assert_eq!(b.arenas[0].committed, 5 * MIB);
        assert_eq!(b.classes.malloc_arena.rss, 4 * MIB);
        assert_eq!(b.classes.other_anon.rss, 3 * MIB);
    }

    #[test]
    fn stack_is_small_guard_below_stack_sized_rw() {
        let ms = vec![
            map(BASE, BASE + 0x4000, "---p", 0),
            map(BASE + 0x4000, BASE + MIB, "rw-p", 64 << 10),
            map(BASE + MIB, BASE + MIB + 0x1000, "---p", 0),
            map(
                BASE + MIB + 0x1000,
                BASE + 2 * MIB + 0x1000,
                "rw-p",
                8 << 10,
            ),
            // Guard too big (a JVM reserve), then an odd-sized rw-p.
            map(BASE + 3 * MIB, BASE + 4 * MIB, "---p", 0),
            map(BASE + 4 * MIB, BASE + 4 * MIB + 0x3000, "rw-p", 4096),
        ];
        let eligible = vec![true; ms.len()];
        assert_eq!(find_stack_pairs(&ms, &eligible, None), vec![(0, 1), (2, 3)]);
        // A 20 MiB -Xss is outside the generic window but matches the hint.
        let big = vec![
            map(BASE, BASE + 0x4000, "---p", 0),
            map(BASE + 0x4000, BASE + 20 * MIB, "rw-p", 4096),
        ];
        assert!(find_stack_pairs(&big, &[true, true], None).is_empty());
        assert_eq!(
            find_stack_pairs(&big, &[true, true], Some(20 * MIB)),
            vec![(0, 1)]
        );
        let b = classify(&ms, &ClassifyInput::default());
        assert_eq!(b.thread_stacks, 2);
        assert_eq!(b.classes.thread_stack.rss, 72 << 10);
    }

    #[test]
    fn straddling_mapping_is_split_by_address_and_sums_stay_exact() {
        // One VMA: 1 MiB of heap, 1 MiB of NMT "GC", 1 MiB nobody claims; 7 pages resident.
        let ms = vec![map(BASE, BASE + 3 * MIB, "rw-p", 7 * 4096)];
        let input = ClassifyInput {
            heap: vec![Range::new(BASE - MIB, BASE + MIB)],
            nmt_regions: vec![
                // Repeats the heap: must not count twice.
                NmtRegion {
                    range: Range::new(BASE - MIB, BASE + MIB),
                    category: "Java Heap".into(),
                },
                NmtRegion {
                    range: Range::new(BASE + MIB, BASE + 2 * MIB),
                    category: "GC".into(),
                },
            ],
            ..ClassifyInput::default()
        };
        let b = classify(&ms, &input);
        b.check_sums().expect("sums");
        let third = 7 * 4096 / 3;
        assert_eq!(b.classes.java_heap.rss, third);
        assert_eq!(b.classes.jvm_gc.rss, third);
        assert_eq!(b.classes.other_anon.rss, 7 * 4096 - 2 * third);
        assert_eq!(b.classes.java_heap.size, MIB);
        assert_eq!(b.totals.mappings, 1);
        assert_eq!(b.classes.sum().mappings, 1);
    }

    #[test]
    fn straddling_mapping_is_split_by_resident_pages_where_counted() {
        // glibc's mmapped chunks merged below a committed but untouched GC mapping: 30 MiB
        // touched buffers, then 32 MiB of GC with one resident MiB.
        let ms = vec![map(BASE, BASE + 62 * MIB, "rw-p", 31 * MIB)];
        let gc = Range::new(BASE + 30 * MIB, BASE + 62 * MIB);
        let input = ClassifyInput {
            nmt_regions: vec![NmtRegion { range: gc, category: "GC".into() }],
            ..ClassifyInput::default()
        };
        let mut asked = Vec::new();
        let b = classify_with_residency(&ms, &input, &mut |r| {
            asked.push(r);
            Some(MIB)
        });
        b.check_sums().expect("sums");
        assert_eq!(asked, vec![gc]);
        assert_eq!(b.classes.jvm_gc.rss, MIB);
        assert_eq!(b.classes.other_anon.rss, 30 * MIB);
        // Sizes still by address.
        assert_eq!(b.classes.jvm_gc.size, 32 * MIB);
        // Without counts: by address, as before.
        let b = classify(&ms, &input);
        b.check_sums().expect("sums");
        assert_eq!(b.classes.jvm_gc.rss, share(31 * MIB, 32 * MIB, 62 * MIB));
    }

    #[test]
    fn nmt_categories_map_to_classes() {
        use RegionClass::*;
        for (cat, class) in [
            ("Java Heap", JavaHeap),
            ("Thread Stack", ThreadStack),
            ("Code", JvmCode),
            ("Class", JvmMetaspace),
            ("Metaspace", JvmMetaspace),
            ("Shared class space", JvmMetaspace),
            ("GC", JvmGc),
            ("Internal", JvmOther),
            ("Safepoint", JvmOther),
        ] {
            assert_eq!(RegionClass::of_nmt_category(cat), class, "{cat}");
        }
    }

    #[test]
    fn named_and_kernel_mappings_go_by_name() {
        let mut ms = Vec::new();
        for (i, b) in [
            Backing::Kernel("vdso".into()),
            Backing::Heap,
            Backing::AnonNamed(" glibc: malloc".into()),
            Backing::AnonNamed(" glibc: pthread stack: 42".into()),
            Backing::File("/usr/lib/libz.so".into()),
            Backing::File("/memfd:doublemap (deleted)".into()),
        ]
        .into_iter()
        .enumerate()
        {
            let start = BASE + i as u64 * MIB;
            let mut m = map(start, start + MIB, "rw-p", 4096);
            m.backing = b;
            ms.push(m);
        }
        let b = classify(&ms, &ClassifyInput::default());
        b.check_sums().expect("sums");
        assert_eq!(b.classes.kernel.rss, 4096);
        assert_eq!(b.classes.malloc_arena.rss, 4096);
        assert_eq!(b.classes.malloc_mmap.rss, 4096);
        assert_eq!(b.classes.thread_stack.rss, 4096);
        assert_eq!(b.classes.mapped_file.rss, 2 * 4096);
        assert!(b.arenas[0].main);
    }
}
