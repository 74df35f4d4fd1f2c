//! Native Memory Tracking: the text of `VM.native_memory summary`, `summary.diff` and the virtual
//! memory map of `detail`, as JDK 11 to 25 print it, turned into numbers in bytes; and how much of
//! a growth of RSS the growth NMT reports accounts for.
//!
//! The agent reads this text through the DiagnosticCommand MBean (`vmNativeMemory`), which returns
//! what `jcmd PID VM.native_memory ...` prints without jcmd's `PID:` line. The parsers take the
//! text, never a path, skip every line they do not recognise, and never panic on odd input: a
//! newer JDK that adds a category or an annotation loses that detail, not the whole sample.
//!
//! Layout differences handled here, per JDK (as captured in `tests/fixtures/nmt`):
//! - 11: no `malloc:`/`mmap:` lines under `Total`, no peaks, `(thread #N)`, a `free=` line in the
//!   metaspace sub-sections, `Synchronizer`, `Logging`, `Arguments`; `Arena Chunk` has no count.
//! - 17: `Total` gains `malloc: NKB #N` and `mmap: reserved=.., committed=..`; malloc and arena
//!   lines gain `(at peak)` or `(peak=NKB #N)`; a `Metaspace` category of its own (the `Class`
//!   category's `Metadata` sub-section describes the same memory); `Synchronization`.
//! - 21: `(threads #N)`; mmap and stack lines carry `, at peak` or `, peak=NKB` inside their
//!   parentheses; `GCCardSet`, and an `Unknown` category may show up.
//! - 25: `malloc=NKB tag=Name #N`; the `Total` malloc line has its own `peak=`; `Shared class
//!   space` prints `readonly=`; separator lines are empty rather than one space.
//!
//! In `summary.diff` a delta follows the value it changes (`committed=9609KB +2398KB`,
//! `#12229 +6657`); JDK 11 and 17 print the arena delta without a unit (`arena=52KB +14 #90`), 21
//! with a stray `d` (`+14d`); 17 and 21 write the metaspace headers as `: (  Metadata)`; only 25
//! prints the `Total` malloc and mmap lines in a diff, at column 0 and as `malloc=` there.
//! In the `detail` map, committed ranges are indented with a tab up to 21 and with spaces on 25,
//! and thread stack ranges found by probing the stack have no `from` and no call stack.
//!
//! Amounts carry their unit (`KB`, `MB`, `GB`, none at `scale=1`); a number printed without one
//! (the diff quirks above) is read in the scale of the `Total` line.

use serde::Serialize;

use crate::error::{Error, Result};

/// The unit jcmd printed amounts in (`scale=` argument; KB when none was given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NmtScale {
    #[serde(rename = "B")]
    Byte,
    #[serde(rename = "KB")]
    Kb,
    #[serde(rename = "MB")]
    Mb,
    #[serde(rename = "GB")]
    Gb,
}

impl NmtScale {
    /// Bytes in one unit of this scale.
    pub fn bytes(self) -> u64 {
        match self {
            NmtScale::Byte => 1,
            NmtScale::Kb => 1 << 10,
            NmtScale::Mb => 1 << 20,
            NmtScale::Gb => 1 << 30,
        }
    }
}

/// Allocations counted by size and number: a category's `malloc=` or `arena=` line, or the
/// `malloc:` line under `Total`. All sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtAllocations {
    pub bytes: u64,
    /// Number of live allocations; JDK 11 prints none for `Arena Chunk`.
    pub count: Option<u64>,
    /// The highest `bytes` seen (JDK 17+): `(at peak)` means the current value is the peak.
    pub peak_bytes: Option<u64>,
    /// Number of allocations at the time of the peak.
    pub peak_count: Option<u64>,
}

/// Reserved and committed address space: an `mmap:` or `stack:` line. All sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtMapped {
    pub reserved: u64,
    pub committed: u64,
    /// The highest committed size seen (JDK 21+ `peak=` or `at peak`).
    pub peak_committed: Option<u64>,
}

/// Loaded class counts of the `Class` category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtClassCounts {
    pub total: u64,
    pub instance: Option<u64>,
    pub array: Option<u64>,
}

/// One of the metaspace sub-sections printed inside the `Class` category (`Metadata`, `Class
/// space`). These describe the same memory as the `Metaspace` category (JDK 17+) or as the
/// `Class` category's own mmap line (JDK 11): they are a view, not more memory. Sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtMetaspaceSpace {
    pub reserved: u64,
    pub committed: u64,
    pub used: Option<u64>,
    /// Only JDK 11 prints it.
    pub free: Option<u64>,
    pub waste: Option<u64>,
}

/// One category (NMT "memory tag") as printed: `- Thread (reserved=.., committed=..)` and the
/// lines under it. The name is kept as printed, so categories of a newer JDK come through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtCategory {
    pub name: String,
    pub reserved: u64,
    pub committed: u64,
    /// `Shared class space` on JDK 25.
    pub readonly: Option<u64>,
    pub malloc: Option<NmtAllocations>,
    pub mmap: Option<NmtMapped>,
    pub arena: Option<NmtAllocations>,
    /// `Thread`: number of threads.
    pub threads: Option<u64>,
    /// `Thread`: the thread stacks.
    pub stack: Option<NmtMapped>,
    /// `Class`: loaded classes.
    pub classes: Option<NmtClassCounts>,
    /// `Class`: the `Metadata` sub-section.
    pub metadata: Option<NmtMetaspaceSpace>,
    /// `Class`: the `Class space` sub-section.
    pub class_space: Option<NmtMetaspaceSpace>,
    /// `Native Memory Tracking`: NMT's own bookkeeping.
    pub tracking_overhead: Option<u64>,
}

/// The `Total:` line and, on JDK 17+, the malloc and mmap lines under it. Sizes in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtTotal {
    pub reserved: u64,
    pub committed: u64,
    pub malloc: Option<NmtAllocations>,
    pub mmap: Option<NmtMapped>,
}

/// A parsed `VM.native_memory summary`, every amount in bytes.
///
/// Each amount is rounded by the JVM to the scale on its own, and categories smaller than one
/// unit are left out (`Omitting categories weighting less than 1KB`, JDK 17+), so the sum of the
/// categories can differ from the total by up to half a unit per category plus the omitted ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NmtSummary {
    pub scale: NmtScale,
    pub total: NmtTotal,
    pub categories: Vec<NmtCategory>,
}

impl NmtSummary {
    /// The category of that name as printed (`"Thread"`, `"Java Heap"`).
    pub fn category(&self, name: &str) -> Option<&NmtCategory> {
        self.categories.iter().find(|c| c.name == name)
    }
}

/// Changes of the `Total` section since the baseline, in bytes (counts for `malloc_count`).
/// A value the JDK did not print a delta for did not change and is 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtTotalDelta {
    pub reserved: i64,
    pub committed: i64,
    pub malloc: i64,
    pub malloc_count: i64,
    pub mmap_reserved: i64,
    pub mmap_committed: i64,
}

/// Changes of one category since the baseline, in bytes (counts for the `*_count`, `threads` and
/// `*classes` fields). A value the JDK did not print a delta for did not change and is 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NmtCategoryDelta {
    pub name: String,
    pub reserved: i64,
    pub committed: i64,
    pub malloc: i64,
    pub malloc_count: i64,
    pub mmap_reserved: i64,
    pub mmap_committed: i64,
    pub arena: i64,
    pub arena_count: i64,
    pub stack_reserved: i64,
    pub stack_committed: i64,
    pub threads: i64,
    pub classes: i64,
    pub instance_classes: i64,
    pub array_classes: i64,
}

/// A parsed `VM.native_memory summary.diff`: the current values, as in a summary, and the
/// changes since `VM.native_memory baseline`. The deltas of the metaspace sub-sections are not
/// kept. Categories are in the same order in `current.categories` and `categories`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NmtSummaryDiff {
    pub current: NmtSummary,
    pub total: NmtTotalDelta,
    pub categories: Vec<NmtCategoryDelta>,
}

/// What a line of the detail map describes: address space reserved for a category, or a part of
/// such a reservation that is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NmtRegionKind {
    Reserved,
    Committed,
}

/// One address range of the `Virtual memory map` of `VM.native_memory detail`: `[start, end)`.
/// A committed range carries the category of the reservation it lies in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NmtRegion {
    pub start: u64,
    pub end: u64,
    pub kind: NmtRegionKind,
    /// As printed after `for`: the summary's category names (`"Java Heap"`, `"Code"`, `"GC"`,
    /// `"Class"`, `"Metaspace"`, `"Shared class space"`...), except thread stacks, which the map
    /// calls `"Thread Stack"` (JDK 11 to 25) and the summary counts under `"Thread"`.
    pub category: String,
}

/// Growth of NMT's committed memory set against a growth of RSS over the same interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NmtGrowth {
    /// The RSS growth this explains, in bytes, as given.
    pub rss_delta: i64,
    /// Change of NMT's total committed bytes.
    pub committed_delta: i64,
    /// `rss_delta - committed_delta`: growth NMT does not see (glibc retention and overhead,
    /// native libraries, JNI allocations) when positive.
    pub unexplained: i64,
    /// `committed_delta / rss_delta` clamped to `[0, 1]`; `None` when RSS did not grow.
    pub coverage: Option<f64>,
    /// Change of committed bytes per category, largest change (either sign) first; categories
    /// that did not change are left out.
    pub categories: Vec<NmtCategoryGrowth>,
}

/// Change of one category's committed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NmtCategoryGrowth {
    pub name: String,
    pub committed_delta: i64,
}

/// True when the text is the JVM's answer for a process without NMT (`-XX:NativeMemoryTracking`
/// unset or `off`) or whose NMT shut itself down.
pub fn nmt_disabled(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| {
        l.starts_with("Native memory tracking is not enabled")
            || l.starts_with("Native memory tracking has been shutdown")
            || l.starts_with("Native memory tracking has been turned off")
    })
}

/// Parses the text of `VM.native_memory summary` (or the summary part of `detail`, or the
/// current values of `summary.diff`).
///
/// Errors: [`Error::Unsupported`] when NMT is off in that JVM, [`Error::Parse`] when the text
/// has no `Total:` line.
pub fn parse_summary(text: &str) -> Result<NmtSummary> {
    parse(text).map(|d| d.current)
}

/// Parses the text of `VM.native_memory summary.diff` into current values and changes since the
/// baseline. Same errors as [`parse_summary`]; text without deltas parses with all deltas 0.
pub fn parse_summary_diff(text: &str) -> Result<NmtSummaryDiff> {
    parse(text)
}

/// Parses the `Virtual memory map` section of `VM.native_memory detail` into reserved ranges,
/// each with its category, and committed ranges, each with the category of the reservation it
/// lies in, sorted by start address, each reservation before the committed ranges inside it.
///
/// A reservation printed as `reserved and committed` yields one committed range spanning it,
/// whether or not the JVM also listed its committed parts, so committed ranges never overlap. A
/// committed range outside the reservation before it is dropped rather than guessed at.
///
/// Errors: [`Error::Unsupported`] when NMT is off, [`Error::Parse`] when there is no
/// `Virtual memory map` section (NMT runs at `summary` level, or the text is not `detail`).
pub fn parse_virtual_memory_map(text: &str) -> Result<Vec<NmtRegion>> {
    if nmt_disabled(text) {
        return Err(Error::Unsupported(
            "native memory tracking is not enabled".into(),
        ));
    }
    let mut lines = text.lines();
    if !lines.any(|l| l.trim_start().starts_with("Virtual memory map")) {
        return Err(Error::Parse {
            what: "NMT detail",
            detail: "no Virtual memory map section (is NMT at detail level?)".into(),
        });
    }
    let mut regions = Vec::new();
    // The reservation committed lines belong to, and whether it was wholly committed already.
    let mut current: Option<(u64, u64, String, bool)> = None;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        // The malloc call sites (`Details:`) and, on JDK 25, `Memory file details` follow at
        // column 0; call stack frames are indented or are `[0x..]` without a range.
        if !line.starts_with(['[', ' ', '\t']) {
            break;
        }
        let Some((start, end, rest)) = address_range(trimmed) else {
            continue;
        };
        match rest.split_whitespace().next() {
            Some("reserved") => {
                let whole = rest.starts_with("reserved and committed");
                let category = match rest.split_once(" for ") {
                    Some((_, c)) => c.strip_suffix(" from").unwrap_or(c).trim().to_string(),
                    None => String::from("Unknown"),
                };
                regions.push(NmtRegion {
                    start,
                    end,
                    kind: NmtRegionKind::Reserved,
                    category: category.clone(),
                });
                if whole {
                    regions.push(NmtRegion {
                        start,
                        end,
                        kind: NmtRegionKind::Committed,
                        category: category.clone(),
                    });
                }
                current = Some((start, end, category, whole));
            }
            Some("committed") => {
                if let Some((rs, re, category, whole)) = &current {
                    if !*whole && start >= *rs && end <= *re {
                        regions.push(NmtRegion {
                            start,
                            end,
                            kind: NmtRegionKind::Committed,
                            category: category.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    // Reservations never overlap and committed ranges lie inside theirs, so this order lets a
    // caller walk the map alongside `/proc/self/maps`, which is sorted too.
    regions.sort_by_key(|r| (r.start, r.kind));
    Ok(regions)
}

/// How much of a growth of RSS the growth of NMT's committed memory accounts for, between two
/// summaries of the same process (`baseline` taken first).
///
/// `rss_delta` is RSS now minus RSS at the time of `baseline`, in bytes. Coverage is the
/// committed growth over the RSS growth, clamped to `[0, 1]`, and `None` when RSS did not grow
/// (there is nothing to explain). Read it as an estimate, not a measurement: NMT counts committed
/// memory, which the JVM may not have touched yet (it is not resident), and counts malloc'd bytes
/// as requested, without the allocator's headers or the free memory it keeps; the second is
/// exactly the gap `unexplained` shows. A category printed in only one of the two summaries
/// (NMT leaves out those under one unit) counts as 0 in the other.
pub fn explain_growth(baseline: &NmtSummary, now: &NmtSummary, rss_delta: i64) -> NmtGrowth {
    let committed_delta = signed_delta(now.total.committed, baseline.total.committed);
    let mut categories: Vec<NmtCategoryGrowth> = now
        .categories
        .iter()
        .map(|c| NmtCategoryGrowth {
            name: c.name.clone(),
            committed_delta: signed_delta(
                c.committed,
                baseline.category(&c.name).map_or(0, |b| b.committed),
            ),
        })
        .collect();
    for b in &baseline.categories {
        if now.category(&b.name).is_none() {
            categories.push(NmtCategoryGrowth {
                name: b.name.clone(),
                committed_delta: signed_delta(0, b.committed),
            });
        }
    }
    growth(rss_delta, committed_delta, categories)
}

/// [`explain_growth`] from a `summary.diff`, whose baseline is the one the JVM keeps
/// (`VM.native_memory baseline`); `rss_delta` must be measured since that same moment.
pub fn explain_diff(diff: &NmtSummaryDiff, rss_delta: i64) -> NmtGrowth {
    let categories = diff
        .categories
        .iter()
        .map(|c| NmtCategoryGrowth {
            name: c.name.clone(),
            committed_delta: c.committed,
        })
        .collect();
    growth(rss_delta, diff.total.committed, categories)
}

fn growth(
    rss_delta: i64,
    committed_delta: i64,
    mut categories: Vec<NmtCategoryGrowth>,
) -> NmtGrowth {
    categories.retain(|c| c.committed_delta != 0);
    categories.sort_by(|a, b| {
        b.committed_delta
            .unsigned_abs()
            .cmp(&a.committed_delta.unsigned_abs())
            .then_with(|| a.name.cmp(&b.name))
    });
    let coverage =
        (rss_delta > 0).then(|| (committed_delta as f64 / rss_delta as f64).clamp(0.0, 1.0));
    NmtGrowth {
        rss_delta,
        committed_delta,
        unexplained: rss_delta.saturating_sub(committed_delta),
        coverage,
        categories,
    }
}

fn signed_delta(now: u64, then: u64) -> i64 {
    if now >= then {
        i64::try_from(now - then).unwrap_or(i64::MAX)
    } else {
        i64::try_from(then - now).map_or(i64::MIN, |d| -d)
    }
}

/// `[0x1 - 0x2] rest` -> (0x1, 0x2, "rest").
fn address_range(line: &str) -> Option<(u64, u64, &str)> {
    let inner = line.strip_prefix('[')?;
    let (range, rest) = inner.split_once(']')?;
    let (a, b) = range.split_once(" - ")?;
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
    let (start, end) = (hex(a)?, hex(b)?);
    (start <= end).then_some((start, end, rest.trim()))
}

/// One `key=value` (or `key #count`) item of a parenthesised group, with the deltas a diff
/// prints after the value and after the count.
#[derive(Debug, Default, Clone, Copy)]
struct Field<'a> {
    key: &'a str,
    amount: Option<u64>,
    delta: i64,
    count: Option<u64>,
    count_delta: i64,
}

/// The contents of one `( ... )` of a line: an optional `label:` and its comma-separated items.
#[derive(Debug, Default)]
struct Group<'a> {
    label: Option<&'a str>,
    fields: Vec<Field<'a>>,
}

impl<'a> Group<'a> {
    fn get(&self, key: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.key == key)
    }

    fn amount(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|f| f.amount)
    }

    fn delta(&self, key: &str) -> i64 {
        self.get(key).map_or(0, |f| f.delta)
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The bare words of a group without `=` or `#`, as `Metadata` in `(  Metadata)`.
    fn words(&self) -> Option<&'a str> {
        match (self.label, self.fields.as_slice()) {
            (Some(l), []) => Some(l),
            (None, [f]) if f.amount.is_none() && f.count.is_none() => Some(f.key),
            _ => None,
        }
    }
}

/// A number with its unit as NMT prints it, in bytes. A number without a unit, or followed by
/// something other than a unit (JDK 21's `+14d`), is in the scale of the report.
fn amount(token: &str, scale: u64) -> Option<u64> {
    let digits = token
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(token.len());
    if digits == 0 {
        return None;
    }
    let n: u64 = token[..digits].parse().ok()?;
    let unit = match &token[digits..] {
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "B" => 1,
        s if s.is_empty() || s.starts_with(|c: char| c.is_ascii_alphabetic()) => scale,
        _ => return None,
    };
    n.checked_mul(unit)
}

fn signed(token: &str, scale: u64) -> Option<i64> {
    let (neg, rest) = match token.as_bytes().first() {
        Some(b'+') => (false, &token[1..]),
        Some(b'-') => (true, &token[1..]),
        _ => return None,
    };
    let v = i64::try_from(amount(rest, scale)?).ok()?;
    Some(if neg { -v } else { v })
}

fn count(token: &str) -> Option<u64> {
    token.strip_prefix('#')?.parse().ok()
}

fn field(part: &str, scale: u64) -> Field<'_> {
    let part = part.trim();
    let (key, rest) = match part.split_once('=') {
        Some((k, r)) => (k.trim(), r),
        None => {
            let starts_with_amount = part
                .split_whitespace()
                .next()
                .is_some_and(|t| amount(t, scale).is_some());
            if starts_with_amount {
                ("", part)
            } else {
                match part.split_once('#') {
                    Some((k, _)) => (k.trim(), &part[k.len()..]),
                    None => (part, ""),
                }
            }
        }
    };
    let mut f = Field {
        key,
        ..Field::default()
    };
    for (i, token) in rest.split_whitespace().enumerate() {
        if i == 0 {
            if let Some(a) = amount(token, scale) {
                f.amount = Some(a);
                continue;
            }
        }
        if let Some(c) = count(token) {
            f.count = Some(c);
        } else if f.count.is_some() {
            // A delta follows the value it changes; a count's delta is a plain number.
            if let Some(d) = signed(token, 1) {
                f.count_delta = d;
            }
        } else if let Some(d) = signed(token, scale) {
            f.delta = d;
        }
        // Anything else (`tag=Thread`, `=29.70%`) is a remark.
    }
    f
}

fn group(text: &str, scale: u64) -> Group<'_> {
    let text = text.trim();
    let colon = text.find(':');
    let eq = text.find('=');
    let (label, rest) = match colon {
        Some(c) if eq.is_none_or(|e| c < e) => (Some(text[..c].trim()), &text[c + 1..]),
        _ => (None, text),
    };
    let fields = rest
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| field(p, scale))
        .collect();
    Group { label, fields }
}

/// The top-level `( ... )` groups of a line; text between them is ignored.
fn groups(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in line.char_indices() {
        match c {
            '(' => {
                if depth == 0 {
                    start = i + 1;
                }
                depth += 1;
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(&line[start..i]);
                }
            }
            _ => {}
        }
    }
    out
}

fn scale_of_total(line: &str) -> NmtScale {
    let Some((_, rest)) = line.split_once("reserved=") else {
        return NmtScale::Kb;
    };
    let unit = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    if unit.starts_with("KB") {
        NmtScale::Kb
    } else if unit.starts_with("MB") {
        NmtScale::Mb
    } else if unit.starts_with("GB") {
        NmtScale::Gb
    } else {
        NmtScale::Byte
    }
}

/// Which allocation a later `(at peak)` or `(peak=..)` on the same line refers to.
#[derive(Debug, Clone, Copy)]
enum PeakTarget {
    Malloc,
    Arena,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sub {
    None,
    Metadata,
    ClassSpace,
}

fn allocations(f: &Field<'_>) -> NmtAllocations {
    NmtAllocations {
        bytes: f.amount.unwrap_or(0),
        count: f.count,
        ..NmtAllocations::default()
    }
}

/// Reads `reserved=`, `committed=` and a peak (`peak=X` or `at peak`) from an mmap-like group.
fn mapped(g: &Group<'_>) -> NmtMapped {
    let committed = g.amount("committed").unwrap_or(0);
    let peak_committed = match g.amount("peak") {
        Some(p) => Some(p),
        None => g.has("at peak").then_some(committed),
    };
    NmtMapped {
        reserved: g.amount("reserved").unwrap_or(0),
        committed,
        peak_committed,
    }
}

fn set_peak(a: &mut NmtAllocations, g: &Group<'_>) {
    if let Some(p) = g.get("peak") {
        a.peak_bytes = p.amount;
        a.peak_count = p.count;
    } else if g.has("at peak") {
        a.peak_bytes = Some(a.bytes);
        a.peak_count = a.count;
    }
}

fn parse(text: &str) -> Result<NmtSummaryDiff> {
    if nmt_disabled(text) {
        return Err(Error::Unsupported(
            "native memory tracking is not enabled".into(),
        ));
    }
    let mut p = SummaryParser::default();
    for line in text.lines() {
        let trimmed = line.trim();
        // `detail` goes on with the map and the call sites, which are not summary lines.
        if trimmed.starts_with("Virtual memory map") || trimmed.starts_with("Details:") {
            break;
        }
        p.line(line, trimmed);
    }
    p.finish()
}

/// What one pass over a summary has read so far.
struct SummaryParser {
    scale: NmtScale,
    total: Option<(NmtTotal, NmtTotalDelta)>,
    categories: Vec<(NmtCategory, NmtCategoryDelta)>,
    /// The metaspace sub-section the lines of `Class` are in.
    sub: Sub,
}

impl Default for SummaryParser {
    fn default() -> Self {
        SummaryParser {
            scale: NmtScale::Kb,
            total: None,
            categories: Vec::new(),
            sub: Sub::None,
        }
    }
}

impl SummaryParser {
    fn line(&mut self, line: &str, trimmed: &str) {
        if let Some(rest) = trimmed.strip_prefix("Total:") {
            self.total_line(rest);
        } else if self.total.is_none() || self.category_header(line) {
            // Before `Total`: the title and `(Omitting categories ...)`.
        } else if self.categories.is_empty() {
            self.under_total(trimmed);
        } else {
            self.category_line(line);
        }
    }

    fn total_line(&mut self, rest: &str) {
        self.scale = scale_of_total(rest);
        let g = group(rest, self.scale.bytes());
        let t = NmtTotal {
            reserved: g.amount("reserved").unwrap_or(0),
            committed: g.amount("committed").unwrap_or(0),
            ..NmtTotal::default()
        };
        let d = NmtTotalDelta {
            reserved: g.delta("reserved"),
            committed: g.delta("committed"),
            ..NmtTotalDelta::default()
        };
        self.total = Some((t, d));
    }

    /// `malloc: 43001KB #18889[, peak=..]` and `mmap: reserved=..` (JDK 17+); `malloc=..` in a
    /// JDK 25 diff.
    fn under_total(&mut self, trimmed: &str) {
        let scale = self.scale.bytes();
        let Some((t, d)) = self.total.as_mut() else {
            return;
        };
        let malloc = trimmed
            .strip_prefix("malloc:")
            .or_else(|| trimmed.strip_prefix("malloc="));
        if let Some(rest) = malloc {
            let g = group(rest, scale);
            if let Some(f) = g.fields.first().filter(|f| f.key.is_empty()) {
                let mut a = allocations(f);
                set_peak(&mut a, &g);
                d.malloc = f.delta;
                d.malloc_count = f.count_delta;
                t.malloc = Some(a);
            }
        } else if let Some(rest) = trimmed.strip_prefix("mmap:") {
            let g = group(rest, scale);
            t.mmap = Some(mapped(&g));
            d.mmap_reserved = g.delta("reserved");
            d.mmap_committed = g.delta("committed");
        }
    }

    /// `-   Java Heap (reserved=.., committed=..[, readonly=..])` starts a category.
    fn category_header(&mut self, line: &str) -> bool {
        let Some(after_dash) = line.strip_prefix('-') else {
            return false;
        };
        let Some(open) = after_dash.find('(') else {
            return false;
        };
        let name = after_dash[..open].trim();
        let Some(first) = groups(after_dash).into_iter().next() else {
            return false;
        };
        let g = group(first, self.scale.bytes());
        if name.is_empty() || !g.has("reserved") {
            return false;
        }
        let c = NmtCategory {
            name: name.to_string(),
            reserved: g.amount("reserved").unwrap_or(0),
            committed: g.amount("committed").unwrap_or(0),
            readonly: g.amount("readonly"),
            ..NmtCategory::default()
        };
        let d = NmtCategoryDelta {
            name: name.to_string(),
            reserved: g.delta("reserved"),
            committed: g.delta("committed"),
            ..NmtCategoryDelta::default()
        };
        self.categories.push((c, d));
        self.sub = Sub::None;
        true
    }

    /// The `( ... )` lines under a category header.
    fn category_line(&mut self, line: &str) {
        let scale = self.scale.bytes();
        let Some((c, d)) = self.categories.last_mut() else {
            return;
        };
        let mut peak_target: Option<PeakTarget> = None;
        for text in groups(line) {
            let g = group(text, scale);
            match (g.label, g.words()) {
                (Some("mmap"), _) => {
                    c.mmap = Some(mapped(&g));
                    d.mmap_reserved = g.delta("reserved");
                    d.mmap_committed = g.delta("committed");
                    continue;
                }
                (Some("stack"), _) => {
                    c.stack = Some(mapped(&g));
                    d.stack_reserved = g.delta("reserved");
                    d.stack_committed = g.delta("committed");
                    continue;
                }
                (_, Some("Metadata")) => {
                    self.sub = Sub::Metadata;
                    continue;
                }
                (_, Some("Class space")) => {
                    self.sub = Sub::ClassSpace;
                    continue;
                }
                _ => {}
            }
            if g.has("at peak") || g.has("peak") {
                let target = match peak_target {
                    Some(PeakTarget::Malloc) => c.malloc.as_mut(),
                    Some(PeakTarget::Arena) => c.arena.as_mut(),
                    None => None,
                };
                if let Some(a) = target {
                    set_peak(a, &g);
                }
                continue;
            }
            let Some(first) = g.fields.first() else {
                continue;
            };
            match first.key {
                "malloc" => {
                    c.malloc = Some(allocations(first));
                    d.malloc = first.delta;
                    d.malloc_count = first.count_delta;
                    peak_target = Some(PeakTarget::Malloc);
                }
                "arena" => {
                    c.arena = Some(allocations(first));
                    d.arena = first.delta;
                    d.arena_count = first.count_delta;
                    peak_target = Some(PeakTarget::Arena);
                }
                "thread" | "threads" => {
                    c.threads = first.count;
                    d.threads = first.count_delta;
                }
                "classes" => {
                    let counts = c.classes.get_or_insert_with(NmtClassCounts::default);
                    counts.total = first.count.unwrap_or(0);
                    d.classes = first.count_delta;
                }
                "instance classes" => {
                    let counts = c.classes.get_or_insert_with(NmtClassCounts::default);
                    counts.instance = first.count;
                    d.instance_classes = first.count_delta;
                    if let Some(array) = g.get("array classes") {
                        counts.array = array.count;
                        d.array_classes = array.count_delta;
                    }
                }
                "tracking overhead" => c.tracking_overhead = first.amount,
                "reserved" | "used" | "free" | "waste" => {
                    let space = match self.sub {
                        Sub::Metadata => c.metadata.get_or_insert_with(Default::default),
                        Sub::ClassSpace => c.class_space.get_or_insert_with(Default::default),
                        Sub::None => continue,
                    };
                    for f in &g.fields {
                        match f.key {
                            "reserved" => space.reserved = f.amount.unwrap_or(0),
                            "committed" => space.committed = f.amount.unwrap_or(0),
                            "used" => space.used = f.amount,
                            "free" => space.free = f.amount,
                            "waste" => space.waste = f.amount,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn finish(self) -> Result<NmtSummaryDiff> {
        let Some((total, total_delta)) = self.total else {
            return Err(Error::Parse {
                what: "NMT summary",
                detail: "no Total: line (is this VM.native_memory output?)".into(),
            });
        };
        let (categories, deltas) = self.categories.into_iter().unzip();
        Ok(NmtSummaryDiff {
            current: NmtSummary {
                scale: self.scale,
                total,
                categories,
            },
            total: total_delta,
            categories: deltas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_str!(concat!("../tests/fixtures/nmt/", $name, ".txt")),
            )
        };
    }

    const KB: u64 = 1024;
    const MB: u64 = 1024 * 1024;
    const JDKS: [&str; 4] = ["11", "17", "21", "25"];

    /// Every capture, by file name without `.txt`.
    const FIXTURES: &[(&str, &str)] = &[
        fixture!("jdk11-summary"),
        fixture!("jdk11-summary-kb"),
        fixture!("jdk11-summary-mb"),
        fixture!("jdk11-summary-gb"),
        fixture!("jdk11-summary-diff"),
        fixture!("jdk11-summary-diff-mb"),
        fixture!("jdk11-summary-after"),
        fixture!("jdk11-detail"),
        fixture!("jdk17-summary"),
        fixture!("jdk17-summary-jcmd"),
        fixture!("jdk17-summary-kb"),
        fixture!("jdk17-summary-mb"),
        fixture!("jdk17-summary-gb"),
        fixture!("jdk17-summary-diff"),
        fixture!("jdk17-summary-diff-mb"),
        fixture!("jdk17-summary-after"),
        fixture!("jdk17-detail"),
        fixture!("jdk21-summary"),
        fixture!("jdk21-summary-kb"),
        fixture!("jdk21-summary-mb"),
        fixture!("jdk21-summary-gb"),
        fixture!("jdk21-summary-diff"),
        fixture!("jdk21-summary-diff-mb"),
        fixture!("jdk21-summary-after"),
        fixture!("jdk21-detail"),
        fixture!("jdk25-summary"),
        fixture!("jdk25-summary-kb"),
        fixture!("jdk25-summary-mb"),
        fixture!("jdk25-summary-gb"),
        fixture!("jdk25-summary-bytes"),
        fixture!("jdk25-summary-mbean"),
        fixture!("jdk25-summary-diff"),
        fixture!("jdk25-summary-diff-mb"),
        fixture!("jdk25-summary-after"),
        fixture!("jdk25-detail"),
    ];
    const NMT_OFF: &str = include_str!("../tests/fixtures/nmt/nmt-off.txt");

    fn text(name: &str) -> &'static str {
        FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .unwrap_or_else(|| panic!("no fixture {name}"))
    }

    fn summary(name: &str) -> NmtSummary {
        parse_summary(text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn diff(name: &str) -> NmtSummaryDiff {
        parse_summary_diff(text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn cat<'a>(s: &'a NmtSummary, name: &str) -> &'a NmtCategory {
        s.category(name)
            .unwrap_or_else(|| panic!("no category {name}"))
    }

    fn expected_scale(name: &str) -> NmtScale {
        if name.ends_with("-mb") {
            NmtScale::Mb
        } else if name.ends_with("-gb") {
            NmtScale::Gb
        } else if name.ends_with("-bytes") {
            NmtScale::Byte
        } else {
            NmtScale::Kb
        }
    }

    #[test]
    fn every_fixture_parses_as_a_summary() {
        for (name, t) in FIXTURES {
            let s = parse_summary(t).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.scale, expected_scale(name), "{name}");
            assert!(s.total.reserved >= s.total.committed, "{name}");
            if !name.ends_with("-gb") {
                assert!(s.total.committed > 0, "{name}");
                let heap = cat(&s, "Java Heap");
                assert_eq!(heap.reserved, 256 * MB, "{name}: -Xmx256m");
            }
            assert!(s.categories.iter().all(|c| !c.name.is_empty()), "{name}");
        }
    }

    #[test]
    fn mbean_text_parses_like_jcmd_text() {
        let s = summary("jdk25-summary-mbean");
        assert_eq!(s.scale, NmtScale::Kb);
        assert!(s.total.malloc.is_some() && s.total.mmap.is_some());
        assert_eq!(cat(&s, "Java Heap").reserved, 256 * MB);
        assert!(cat(&s, "Thread").threads.is_some_and(|n| n > 5));
    }

    #[test]
    fn jcmd_pid_line_is_ignored() {
        assert_eq!(summary("jdk17-summary-jcmd"), summary("jdk17-summary"));
    }

    #[test]
    fn nmt_off_is_unsupported_not_a_parse_error() {
        assert!(nmt_disabled(NMT_OFF));
        assert!(matches!(parse_summary(NMT_OFF), Err(Error::Unsupported(_))));
        assert!(matches!(
            parse_summary_diff(NMT_OFF),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            parse_virtual_memory_map(NMT_OFF),
            Err(Error::Unsupported(_))
        ));
        assert!(!nmt_disabled(text("jdk25-summary")));
    }

    #[test]
    fn text_without_total_is_a_parse_error() {
        for t in [
            "",
            "\n\n",
            "Baseline taken\n",
            "Native Memory Tracking:\n\n- Class (x)\n",
        ] {
            assert!(
                matches!(parse_summary(t), Err(Error::Parse { .. })),
                "{t:?}"
            );
        }
        assert!(matches!(
            parse_virtual_memory_map(text("jdk25-summary")),
            Err(Error::Parse { .. })
        ));
    }

    /// Not exact: the JVM rounds the total and every category to the scale on its own (to the
    /// nearest unit), and leaves out categories under one unit. In these captures the gap is at
    /// most 2 units; the bound allows half a unit for each printed category and the total.
    #[test]
    fn total_is_the_sum_of_categories_within_rounding() {
        for (name, t) in FIXTURES {
            let s = parse_summary(t).unwrap_or_else(|e| panic!("{name}: {e}"));
            let slack = (s.categories.len() as u64 + 1) * s.scale.bytes() / 2;
            let reserved: u64 = s.categories.iter().map(|c| c.reserved).sum();
            let committed: u64 = s.categories.iter().map(|c| c.committed).sum();
            assert!(
                s.total.reserved.abs_diff(reserved) <= slack,
                "{name}: reserved"
            );
            assert!(
                s.total.committed.abs_diff(committed) <= slack,
                "{name}: committed"
            );
        }
    }

    /// Exact in the KB captures of JDK 17 and 25; one unit of rounding is allowed.
    #[test]
    fn total_is_malloc_plus_mmap_from_jdk17() {
        for (name, t) in FIXTURES.iter().filter(|(n, _)| !n.starts_with("jdk11")) {
            let s = parse_summary(t).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name.contains("diff") && name.starts_with("jdk17")
                || name.starts_with("jdk21-summary-diff")
            {
                // 17 and 21 print no malloc/mmap totals in a diff.
                assert!(s.total.malloc.is_none(), "{name}");
                continue;
            }
            let malloc = s
                .total
                .malloc
                .clone()
                .unwrap_or_else(|| panic!("{name}: malloc"));
            let mmap = s
                .total
                .mmap
                .clone()
                .unwrap_or_else(|| panic!("{name}: mmap"));
            let unit = s.scale.bytes();
            assert!(
                s.total.reserved.abs_diff(malloc.bytes + mmap.reserved) <= unit,
                "{name}"
            );
            assert!(
                s.total.committed.abs_diff(malloc.bytes + mmap.committed) <= unit,
                "{name}"
            );
            assert!(malloc.count.is_some_and(|c| c > 10_000), "{name}");
        }
    }

    /// A category's reserved size is its malloc, mmap, arena, stack and NMT overhead parts; each
    /// part is rounded on its own.
    #[test]
    fn category_parts_add_up_in_kb_captures() {
        for (name, t) in FIXTURES
            .iter()
            .filter(|(n, _)| expected_scale(n) == NmtScale::Kb)
        {
            let s = parse_summary(t).unwrap_or_else(|e| panic!("{name}: {e}"));
            for c in &s.categories {
                let alloc = c.malloc.as_ref().map_or(0, |a| a.bytes)
                    + c.arena.as_ref().map_or(0, |a| a.bytes)
                    + c.tracking_overhead.unwrap_or(0);
                let reserved = alloc
                    + c.mmap.as_ref().map_or(0, |m| m.reserved)
                    + c.stack.as_ref().map_or(0, |m| m.reserved);
                let committed = alloc
                    + c.mmap.as_ref().map_or(0, |m| m.committed)
                    + c.stack.as_ref().map_or(0, |m| m.committed);
                assert!(c.reserved.abs_diff(reserved) <= 2 * KB, "{name} {}", c.name);
                assert!(
                    c.committed.abs_diff(committed) <= 2 * KB,
                    "{name} {}",
                    c.name
                );
            }
        }
    }

    /// The KB and MB captures were taken one right after the other: every amount agrees within
    /// half a MB of rounding, plus a little for allocations between the two.
    #[test]
    fn kb_and_mb_captures_of_one_process_agree() {
        let slack = MB / 2 + 64 * KB;
        for v in JDKS {
            let kb = summary(&format!("jdk{v}-summary-kb"));
            let mb = summary(&format!("jdk{v}-summary-mb"));
            assert!(
                kb.total.reserved.abs_diff(mb.total.reserved) <= slack,
                "{v}"
            );
            assert!(
                kb.total.committed.abs_diff(mb.total.committed) <= slack,
                "{v}"
            );
            for c in &kb.categories {
                // Categories under half a MB are left out of the MB capture.
                let (r, cm) = mb
                    .category(&c.name)
                    .map_or((0, 0), |m| (m.reserved, m.committed));
                assert!(c.reserved.abs_diff(r) <= slack, "{v} {}", c.name);
                assert!(c.committed.abs_diff(cm) <= slack, "{v} {}", c.name);
            }
            let default = summary(&format!("jdk{v}-summary"));
            assert_eq!(default.scale, NmtScale::Kb);
            assert!(
                default.total.committed.abs_diff(kb.total.committed) <= 64 * KB,
                "{v}"
            );
            let gb = summary(&format!("jdk{v}-summary-gb"));
            assert_eq!(gb.total.reserved, 2 * 1024 * MB, "{v}: 1.7 GB rounds to 2");
        }
    }

    #[test]
    fn jdk11_values() {
        let s = summary("jdk11-summary");
        assert!(s.total.malloc.is_none() && s.total.mmap.is_none());
        assert_eq!(s.total.reserved, 1_681_873 * KB);
        assert_eq!(s.total.committed, 359_269 * KB);
        let class = cat(&s, "Class");
        assert_eq!(
            class.classes,
            Some(NmtClassCounts {
                total: 974,
                instance: Some(876),
                array: Some(98)
            })
        );
        assert_eq!(
            class.malloc,
            Some(NmtAllocations {
                bytes: 555 * KB,
                count: Some(5572),
                peak_bytes: None,
                peak_count: None
            })
        );
        assert_eq!(
            class.metadata,
            Some(NmtMetaspaceSpace {
                reserved: 8192 * KB,
                committed: 5632 * KB,
                used: Some(5323 * KB),
                free: Some(309 * KB),
                waste: Some(0),
            })
        );
        assert_eq!(
            class.class_space.as_ref().map(|c| c.reserved),
            Some(1024 * MB)
        );
        let thread = cat(&s, "Thread");
        assert_eq!(thread.threads, Some(34));
        assert_eq!(
            thread.stack,
            Some(NmtMapped {
                reserved: 34_816 * KB,
                committed: 2464 * KB,
                peak_committed: None
            })
        );
        assert_eq!(
            thread.arena.as_ref().map(|a| (a.bytes, a.count)),
            Some((38 * KB, Some(66)))
        );
        assert_eq!(
            cat(&s, "Arena Chunk").malloc.as_ref().map(|a| a.count),
            Some(None)
        );
        assert_eq!(
            cat(&s, "Native Memory Tracking").tracking_overhead,
            Some(245 * KB)
        );
        assert_eq!(cat(&s, "Other").committed, 24_578 * KB);
        assert!(s.category("Synchronizer").is_some() && s.category("Logging").is_some());
    }

    #[test]
    fn jdk17_values() {
        let s = summary("jdk17-summary");
        assert_eq!(
            s.total.malloc,
            Some(NmtAllocations {
                bytes: 43_001 * KB,
                count: Some(18_889),
                peak_bytes: None,
                peak_count: None
            })
        );
        assert_eq!(
            s.total.mmap,
            Some(NmtMapped {
                reserved: 1_719_768 * KB,
                committed: 329_840 * KB,
                peak_committed: None
            })
        );
        let thread = cat(&s, "Thread");
        assert_eq!(thread.threads, Some(36));
        assert_eq!(
            thread.malloc,
            Some(NmtAllocations {
                bytes: 59 * KB,
                count: Some(220),
                peak_bytes: Some(68 * KB),
                peak_count: Some(224)
            })
        );
        let compiler = cat(&s, "Compiler");
        assert_eq!(
            compiler.arena.as_ref().and_then(|a| a.peak_bytes),
            Some(15_418 * KB)
        );
        // `(at peak)`: the peak is the current value.
        let other = cat(&s, "Other").malloc.clone();
        assert_eq!(other.as_ref().and_then(|a| a.peak_bytes), Some(24_578 * KB));
        assert_eq!(other.as_ref().and_then(|a| a.peak_count), Some(25));
        let class = cat(&s, "Class");
        assert_eq!(class.metadata.as_ref().and_then(|m| m.free), None);
        assert_eq!(
            class.metadata.as_ref().and_then(|m| m.waste),
            Some(741 * KB)
        );
        assert_eq!(cat(&s, "Shared class space").committed, 12_060 * KB);
        assert_eq!(cat(&s, "String Deduplication").committed, KB);
        let detail = summary("jdk17-detail");
        let monitors = cat(&detail, "Object Monitors").malloc.clone();
        assert_eq!(monitors.map(|m| (m.bytes, m.count)), Some((KB, Some(3))));
    }

    #[test]
    fn jdk21_values() {
        let s = summary("jdk21-summary");
        let thread = cat(&s, "Thread");
        assert_eq!(thread.threads, Some(35), "`threads #35`");
        assert_eq!(
            thread.stack,
            Some(NmtMapped {
                reserved: 35_840 * KB,
                committed: 2480 * KB,
                peak_committed: Some(2480 * KB)
            })
        );
        let heap = cat(&s, "Java Heap").mmap.clone();
        assert_eq!(
            heap.and_then(|m| m.peak_committed),
            Some(256 * MB),
            "`, at peak`"
        );
        let unknown = cat(&s, "Unknown");
        assert_eq!(unknown.committed, 0);
        assert_eq!(
            unknown.mmap.as_ref().and_then(|m| m.peak_committed),
            Some(20 * KB)
        );
        assert_eq!(cat(&s, "GCCardSet").committed, 58 * KB);
        assert!(
            s.category("Shared class space").is_none(),
            "no CDS archive in that runtime"
        );
    }

    #[test]
    fn jdk25_values() {
        let s = summary("jdk25-summary");
        assert_eq!(
            s.total.malloc,
            Some(NmtAllocations {
                bytes: 45_643 * KB,
                count: Some(24_170),
                peak_bytes: Some(61_774 * KB),
                peak_count: Some(24_132),
            })
        );
        let class = cat(&s, "Class");
        assert_eq!(
            class.malloc.as_ref().map(|a| (a.bytes, a.count)),
            Some((500 * KB, Some(6710)))
        );
        assert_eq!(class.classes.as_ref().map(|c| c.total), Some(1184));
        let nmt = cat(&s, "Native Memory Tracking");
        assert_eq!(
            nmt.malloc.as_ref().and_then(|a| a.count),
            Some(145),
            "tag with spaces"
        );
        assert_eq!(nmt.tracking_overhead, Some(425 * KB));
        let cds = cat(&s, "Shared class space");
        assert_eq!(cds.readonly, Some(0));
        assert_eq!(
            cds.mmap.as_ref().and_then(|m| m.peak_committed),
            Some(14_116 * KB)
        );
        assert_eq!(cat(&s, "Thread").threads, Some(35));
        assert_eq!(cat(&s, "Tracing").committed, 9 * KB);
        // From JDK 17 the Metadata sub-section is the Metaspace category seen from Class.
        let meta = cat(&s, "Metaspace").mmap.clone().map(|m| m.committed);
        assert_eq!(class.metadata.as_ref().map(|m| m.committed), meta);
        assert_eq!(
            class.class_space.as_ref().map(|m| m.committed),
            class.mmap.as_ref().map(|m| m.committed)
        );
    }

    #[test]
    fn scale_one_prints_bytes_without_a_unit() {
        let s = summary("jdk25-summary-bytes");
        assert_eq!(s.scale, NmtScale::Byte);
        assert_eq!(s.total.reserved, 1_802_003_920);
        assert_eq!(s.total.committed, 381_765_072);
        assert_eq!(
            s.total.malloc.as_ref().map(|m| (m.bytes, m.count)),
            Some((46_724_560, Some(24_016)))
        );
        assert_eq!(cat(&s, "Java Heap").committed, 268_435_456);
    }

    #[test]
    fn diffs_carry_the_second_phase_of_the_workload() {
        for v in JDKS {
            for name in [
                format!("jdk{v}-summary-diff"),
                format!("jdk{v}-summary-diff-mb"),
            ] {
                let d = diff(&name);
                let names: Vec<_> = d.current.categories.iter().map(|c| &c.name).collect();
                let delta_names: Vec<_> = d.categories.iter().map(|c| &c.name).collect();
                assert_eq!(names, delta_names, "{name}");
                let by = |n: &str| {
                    d.categories
                        .iter()
                        .find(|c| c.name == n)
                        .unwrap_or_else(|| panic!("{name}: {n}"))
                };
                // 40 more direct buffers of 1 MiB each.
                assert_eq!(by("Other").committed, 40 * MB as i64, "{name}");
                assert_eq!(by("Other").malloc_count, 40, "{name}");
                assert_eq!(by("Thread").threads, 12, "{name}");
                assert_eq!(by("Thread").stack_reserved, 12 * MB as i64, "{name}");
                assert!(
                    (300..=302).contains(&by("Class").instance_classes),
                    "{name}"
                );
                assert_eq!(by("Class").classes, by("Class").instance_classes, "{name}");
                assert_eq!(by("Java Heap").committed, 0, "{name}");
                let unit = d.current.scale.bytes();
                let sum: i64 = d.categories.iter().map(|c| c.committed).sum();
                let slack = (d.categories.len() as u64 + 1) * unit / 2;
                assert!(d.total.committed.abs_diff(sum) <= slack, "{name}: {sum}");
                // The summary taken right after the diff sees the same threads.
                let after = summary(&format!("jdk{v}-summary-after"));
                assert_eq!(
                    cat(&d.current, "Thread").threads,
                    cat(&after, "Thread").threads,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn diff_quirks_of_jdk11_21_and_25() {
        // JDK 11 and 17 print the arena delta without a unit, 21 with a stray `d`.
        for (name, arena, count) in [
            ("jdk11-summary-diff", 14, 24),
            ("jdk17-summary-diff", 14, 24),
            ("jdk21-summary-diff", 14, 24),
            ("jdk25-summary-diff", 14, 24),
        ] {
            let d = diff(name);
            let thread = d.categories.iter().find(|c| c.name == "Thread");
            assert_eq!(
                thread.map(|t| (t.arena, t.arena_count)),
                Some((arena * KB as i64, count)),
                "{name}"
            );
        }
        let d = diff("jdk25-summary-diff");
        assert_eq!(
            d.total,
            NmtTotalDelta {
                reserved: 58_816 * KB as i64,
                committed: 50_852 * KB as i64,
                malloc: 46_528 * KB as i64,
                malloc_count: 16_727,
                mmap_reserved: 12_288 * KB as i64,
                mmap_committed: 4324 * KB as i64,
            }
        );
        assert_eq!(
            d.current.total.malloc.as_ref().map(|m| m.count),
            Some(Some(40_590))
        );
        let class = cat(&d.current, "Class");
        assert_eq!(
            class.metadata.as_ref().map(|m| m.committed),
            Some(5056 * KB),
            "`(  Metadata)`"
        );
        // JDK 17's `: (  Class space)` header.
        let d17 = diff("jdk17-summary-diff");
        let class = cat(&d17.current, "Class");
        assert_eq!(
            class.class_space.as_ref().and_then(|m| m.used),
            Some(330 * KB)
        );
    }

    #[test]
    fn a_summary_parsed_as_a_diff_has_no_deltas() {
        let d = diff("jdk21-summary");
        assert_eq!(d.total, NmtTotalDelta::default());
        assert!(d.categories.iter().all(|c| *c
            == NmtCategoryDelta {
                name: c.name.clone(),
                ..Default::default()
            }));
    }

    #[test]
    fn explain_growth_between_two_summaries() {
        let before = summary("jdk25-summary");
        let after = summary("jdk25-summary-after");
        let committed = after.total.committed as i64 - before.total.committed as i64;
        let g = explain_growth(&before, &after, 100 * MB as i64);
        assert_eq!(g.committed_delta, committed);
        assert_eq!(g.unexplained, 100 * MB as i64 - committed);
        let coverage = g.coverage.unwrap_or(-1.0);
        assert!((coverage - committed as f64 / (100 * MB) as f64).abs() < 1e-9);
        assert_eq!(
            g.categories
                .first()
                .map(|c| (c.name.as_str(), c.committed_delta)),
            Some(("Other", 40 * MB as i64))
        );
        assert!(g
            .categories
            .windows(2)
            .all(|w| w[0].committed_delta.unsigned_abs() >= w[1].committed_delta.unsigned_abs()));
        assert!(g.categories.iter().all(|c| c.committed_delta != 0));
        assert!(
            g.categories.iter().all(|c| c.name != "Java Heap"),
            "unchanged"
        );

        // RSS grew less than NMT's committed memory: all of it is explained, no more.
        assert_eq!(
            explain_growth(&before, &after, MB as i64).coverage,
            Some(1.0)
        );
        // RSS shrank or stayed: there is nothing to explain.
        assert_eq!(explain_growth(&before, &after, 0).coverage, None);
        assert_eq!(explain_growth(&before, &after, -(MB as i64)).coverage, None);
        // NMT shrank while RSS grew: it explains none of it.
        assert_eq!(
            explain_growth(&after, &before, MB as i64).coverage,
            Some(0.0)
        );
    }

    #[test]
    fn explain_growth_counts_a_missing_category_as_zero() {
        let before = summary("jdk21-summary");
        let mut after = before.clone();
        after.categories.retain(|c| c.name != "GCCardSet");
        after.total.committed -= 58 * KB;
        let g = explain_growth(&before, &after, MB as i64);
        assert_eq!(g.committed_delta, -58 * KB as i64);
        assert_eq!(
            g.categories,
            vec![NmtCategoryGrowth {
                name: "GCCardSet".into(),
                committed_delta: -58 * KB as i64
            }]
        );
        assert_eq!(g.coverage, Some(0.0));
    }

    #[test]
    fn explain_diff_uses_the_jvm_baseline() {
        let d = diff("jdk25-summary-diff");
        let g = explain_diff(&d, 60 * MB as i64);
        assert_eq!(g.committed_delta, 50_852 * KB as i64);
        assert_eq!(g.categories.first().map(|c| c.name.as_str()), Some("Other"));
        assert!(g.coverage.is_some_and(|c| c > 0.8 && c < 0.85));
        let json = serde_json::to_value(&g).unwrap_or_default();
        assert_eq!(json["categories"][0]["committed_delta"], 40 * MB);
    }

    #[test]
    fn virtual_memory_map_of_every_detail_fixture() {
        for v in JDKS {
            let name = format!("jdk{v}-detail");
            let t = text(&name);
            let s = summary(&name);
            let regions = parse_virtual_memory_map(t).unwrap_or_else(|e| panic!("{name}: {e}"));
            let reserved: Vec<_> = regions
                .iter()
                .filter(|r| r.kind == NmtRegionKind::Reserved)
                .collect();
            let committed: Vec<_> = regions
                .iter()
                .filter(|r| r.kind == NmtRegionKind::Committed)
                .collect();
            let heap = reserved
                .iter()
                .find(|r| r.category == "Java Heap")
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(
                (heap.start, heap.end),
                (0xf000_0000, 0x1_0000_0000),
                "{name}"
            );

            for c in &committed {
                assert!(
                    reserved
                        .iter()
                        .any(|r| r.category == c.category && r.start <= c.start && c.end <= r.end),
                    "{name}: {c:?} outside its reservation"
                );
            }
            assert!(
                regions
                    .windows(2)
                    .all(|w| (w[0].start, w[0].kind) <= (w[1].start, w[1].kind)),
                "{name}: sorted"
            );
            let mut sorted = committed.clone();
            sorted.sort_by_key(|r| r.start);
            assert!(
                sorted.windows(2).all(|w| w[0].end <= w[1].start),
                "{name}: overlap"
            );

            let size = |kind: NmtRegionKind, category: &str| -> u64 {
                regions
                    .iter()
                    .filter(|r| r.kind == kind && r.category == category)
                    .map(|r| r.end - r.start)
                    .sum()
            };
            // The map and the summary describe the same mappings: they agree to the page.
            let thread = cat(&s, "Thread");
            let stacks = reserved
                .iter()
                .filter(|r| r.category == "Thread Stack")
                .count() as u64;
            assert_eq!(Some(stacks), thread.threads, "{name}");
            let stack = thread.stack.clone().unwrap_or_default();
            assert_eq!(
                size(NmtRegionKind::Reserved, "Thread Stack"),
                stack.reserved,
                "{name}"
            );
            assert_eq!(
                size(NmtRegionKind::Committed, "Thread Stack"),
                stack.committed,
                "{name}"
            );
            for c in s
                .categories
                .iter()
                .filter(|c| c.mmap.as_ref().is_some_and(|m| m.reserved > 0))
            {
                let m = c.mmap.clone().unwrap_or_default();
                assert_eq!(
                    size(NmtRegionKind::Reserved, &c.name),
                    m.reserved,
                    "{name} {}",
                    c.name
                );
                assert_eq!(
                    size(NmtRegionKind::Committed, &c.name),
                    m.committed,
                    "{name} {}",
                    c.name
                );
            }
        }
    }

    #[test]
    fn virtual_memory_map_line_forms() {
        // JDK 11 to 21 indent committed lines with a tab, 25 with spaces; stacks have no `from`.
        let t = "Virtual memory map:\n\
                 \n\
                 [0x40000 - 0x50000] reserved 64KB for Some Future Tag\n\
                 [0x4f000 - 0x50000] committed 4KB from\n\
                 [0x1000 - 0x3000] reserved and committed 8KB for Internal from\n\
                 \x20   [0x7f00] f()+0x1\n\
                 \n\
                 \t[0x1000 - 0x2000] committed 4KB from\n\
                 [0x10000 - 0x20000] reserved 64KB for Thread Stack from\n\
                 \x20       [0x1f000 - 0x20000] committed 4KB\n\
                 \t[0x30000 - 0x31000] committed 4KB from\n\
                 [0x9 - 0x1] reserved 0KB for Nonsense from\n\
                 Details:\n\
                 [0x60000 - 0x70000] reserved 64KB for Code from\n";
        let r = parse_virtual_memory_map(t).unwrap_or_default();
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.start, r.end, r.kind, r.category.as_str()))
            .collect();
        use NmtRegionKind::{Committed, Reserved};
        assert_eq!(
            got,
            vec![
                (0x1000, 0x3000, Reserved, "Internal"),
                (0x1000, 0x3000, Committed, "Internal"),
                (0x10000, 0x20000, Reserved, "Thread Stack"),
                (0x1f000, 0x20000, Committed, "Thread Stack"),
                (0x40000, 0x50000, Reserved, "Some Future Tag"),
                (0x4f000, 0x50000, Committed, "Some Future Tag"),
            ]
        );
    }

    #[test]
    fn unknown_lines_and_categories_are_kept_or_skipped() {
        let t = "Total: reserved=10KB, committed=5KB\n\
                 some new line\n\
                 -       Future Tag (reserved=10KB, committed=5KB)\n\
                 \x20                   (malloc=5KB tag=Future Tag #3) (new=1KB)\n\
                 \x20                   (surprise #4)\n\
                 \x20                   (mmap: reserved=5KB, committed=0KB, whatever)\n";
        let s = parse_summary(t).unwrap_or_else(|e| panic!("{e}"));
        let c = cat(&s, "Future Tag");
        assert_eq!(
            c.malloc.as_ref().map(|m| (m.bytes, m.count)),
            Some((5 * KB, Some(3)))
        );
        assert_eq!(c.mmap.as_ref().map(|m| m.reserved), Some(5 * KB));
    }

    fn edited(base: &str, edits: &[(usize, usize, String)]) -> String {
        let mut s = base.to_string();
        for (at, len, with) in edits {
            let at = at % (s.len() + 1);
            let end = (at + len).min(s.len());
            // Fixtures are ASCII and so are the insertions: every index is a char boundary.
            s.replace_range(at..end, with);
        }
        s
    }

    fn exercise(t: &str) {
        let _ = nmt_disabled(t);
        let a = parse_summary(t);
        let _ = parse_summary_diff(t);
        let _ = parse_virtual_memory_map(t);
        if let Ok(a) = a {
            let _ = explain_growth(&a, &a, 1);
            let _ = serde_json::to_string(&a);
        }
    }

    /// Pieces of NMT text, and a multi-byte character, for text that looks half like NMT.
    const NMT_WORDS: &str = concat!(
        "(Total: |-|\\(|\\[0x|malloc|mmap:|reserved|committed|=|#|[0-9]{1,25}|KB|MB",
        "| |\n|\\)|\\]|,|:|peak|\u{e9})*"
    );

    proptest! {
        #[test]
        fn random_edits_of_fixtures_never_panic(
            which in 0..FIXTURES.len(),
            edits in prop::collection::vec(
                (any::<usize>(), 0usize..40, "[-+#=,:()\\[\\] 0-9xKMGBa-z\n]{0,12}"),
                1..8,
            ),
        ) {
            exercise(&edited(FIXTURES[which].1, &edits));
        }

        #[test]
        fn arbitrary_text_never_panics(t in NMT_WORDS) {
            exercise(&t);
        }
    }
}
