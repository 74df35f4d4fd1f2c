//! The report stream as one self-contained HTML page: resident memory by class over time, glibc
//! malloc, NMT categories and the zip census as charts, trims as marks, findings as a list that
//! points at the moment each one started.
//!
//! The page makes no network request: script, styles and data are inline (a Content Security
//! Policy forbids anything else). Only downsampled data is embedded ([`downsample`]): a week of
//! 10 s samples becomes at most [`MAX_POINTS`] points per series, each time bucket drawn by its
//! extremes, so the page stays a few hundred KiB and spikes stay visible.
//!
//! Reading is lenient: any field but the time may be missing, null or of another type; lines that
//! are not JSON objects, not samples or have no time are counted and the count is shown.

mod downsample;
mod lenient;
mod page;
pub mod report_files;

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::error::Result;
use downsample::Buckets;
use lenient::{Finding, Line, Obj, TrimEventLine};

/// The most points drawn per series.
pub const MAX_POINTS: usize = 2000;
/// Trims beyond this many are drawn per time bucket (count and bytes released) instead of one
/// mark each.
const MAX_TRIM_MARKS: usize = 1000;
/// NMT categories drawn: those with the highest committed peak.
const NMT_TOP: usize = 8;
/// The most distinct series kept (fixed fields, breakdown classes and NMT categories together).
const MAX_COLUMNS: usize = 256;
/// Native call sites drawn: those with the highest sampled live bytes at their peak.
const NATIVE_SITES_TOP: usize = 6;
/// The most native call sites (by label) given a series: sites come and go over a long report,
/// and each one would otherwise take a column from the fixed bound.
const NATIVE_SITE_COLUMNS: usize = 32;
/// The NMT category of the Java heap: drawn with the resident memory, not among the native
/// categories, where its size would flatten every other line.
const NMT_JAVA_HEAP: &str = "Java Heap";

/// Renders report lines (one JSON sample per line) as an HTML page titled `title`.
///
/// Never fails on the content of the lines: unreadable ones are skipped and counted on the page,
/// and a report without any sample gives a page that says so.
pub fn render_timeline<I>(lines: I, title: &str) -> Result<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut timeline = Timeline::default();
    for line in lines {
        timeline.push_line(line.as_ref());
    }
    timeline.render(title)
}

/// Lines that did not become a sample, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Not JSON, or JSON but not an object.
    pub unreadable: u64,
    /// An object of another `kind` than `sample`.
    pub other_kind: u64,
    /// A sample without a usable `epoch_ms`.
    pub no_time: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.unreadable + self.other_kind + self.no_time
    }
}

/// Samples gathered line by line, for callers that stream a report file instead of holding it.
#[derive(Debug, Default)]
pub struct Timeline {
    times: Vec<f64>,
    columns: Columns,
    skipped: Skipped,
    newer_schema: u64,
    trims: Vec<TrimEvent>,
    trims_seen: HashSet<(u64, u64, u64)>,
    findings: HashMap<String, FindingState>,
    /// How many times [`Timeline::thin`] halved the samples (each point stands for 2^n samples).
    thinned: u32,
    /// Samples pushed since the last point that stands for 2^`thinned` of them (the newest rows).
    open: usize,
    /// The call site tables of the latest sample that had sites on, with its time.
    sites: Option<(f64, SiteTables)>,
    /// The native call sites of the latest sample that had the sampler on, with its time.
    native_sites: Option<(f64, NativeSiteTable)>,
    /// Labels of the native call sites that have a series (`ns.<label>`).
    native_columns: HashSet<String>,
}

/// The sampled malloc call sites of one sample, as text cells (escaped only when rendered).
#[derive(Debug, Clone, Default, PartialEq)]
struct NativeSiteTable {
    sample_bytes: f64,
    live_bytes: f64,
    /// Label, live, growth, thread, and the frames (native then Java, innermost first).
    rows: Vec<([String; 4], Vec<String>)>,
}

impl NativeSiteTable {
    fn read(n: &lenient::NativeSites) -> NativeSiteTable {
        let rows = n
            .sites
            .0
            .iter()
            .filter_map(Obj::get)
            .take(crate::sites::TOP_SITES + 1)
            .map(|r| {
                let label = match (r.site.0.as_deref(), r.sites.0) {
                    (Some("other"), k) if k.is_finite() => format!("other ({} sites)", cell_count(k)),
                    _ => r.label.0.clone().unwrap_or_default(),
                };
                let mut frames: Vec<String> = r
                    .native
                    .0
                    .iter()
                    .filter_map(Obj::get)
                    .map(|f| {
                        let lib = f.library.0.as_deref().unwrap_or("?");
                        let off = if f.offset.0.is_finite() { f.offset.0.max(0.0) as u64 } else { 0 };
                        match f.symbol.0.as_deref() {
                            Some(sym) => format!("{lib} {sym}+{off:#x}"),
                            None => format!("{lib}+{off:#x}"),
                        }
                    })
                    .collect();
                frames.extend(r.java.0.iter().cloned());
                let thread = r.thread.0.clone().unwrap_or_default();
                ([label, cell_bytes(r.live_bytes.0, false), cell_bytes(r.growth_bytes.0, true), thread], frames)
            })
            .collect();
        NativeSiteTable { sample_bytes: n.sample_bytes.0, live_bytes: n.live_bytes.0, rows }
    }

    /// The table as HTML, every report string escaped; a site's frames open under its label.
    fn html(&self, t: f64) -> String {
        let mut out = format!(
            "<h2>Native call sites</h2>\n<p class=\"note\">Sampled malloc call sites at the last sample with the sampler on, {} UTC: \
             about {} live, one sample per {} allocated. Sites in libjvm.so are the JVM's own (NMT counts them); the others are \
             what NMT cannot see.</p>\n",
            crate::timefmt::rfc3339_millis(t.max(0.0) as u64),
            cell_bytes(self.live_bytes, false),
            cell_bytes(self.sample_bytes, false),
        );
        if self.rows.is_empty() {
            return out;
        }
        out.push_str("<table class=\"sites native-sites\">\n<tr><th>site</th><th>live</th><th>growth</th><th>thread</th></tr>\n");
        for ([label, live, growth, thread], frames) in &self.rows {
            let label = page::escape_html(label);
            let first = if frames.is_empty() {
                label
            } else {
                let stack: Vec<String> = frames.iter().map(|f| page::escape_html(f)).collect();
                format!(
                    "<details><summary title=\"{}\">{label}</summary><div class=\"frames\">{}</div></details>",
                    stack.join("&#10;"),
                    stack.join("<br>")
                )
            };
            out.push_str(&format!(
                "<tr><td>{first}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
                page::escape_html(live),
                page::escape_html(growth),
                page::escape_html(thread)
            ));
        }
        out.push_str("</table>\n");
        out
    }
}

/// The call sites of one sample, as table rows of text cells (escaped only when rendered).
#[derive(Debug, Clone, Default, PartialEq)]
struct SiteTables {
    zip: Vec<[String; 5]>,
    direct: Vec<[String; 4]>,
    threads: Vec<[String; 5]>,
}

/// A number of the report as a cell: whole, or `-` when absent.
fn cell_count(v: f64) -> String {
    if v.is_finite() {
        format!("{}", v.round() as i64)
    } else {
        "-".to_string()
    }
}

fn cell_bytes(v: f64, signed: bool) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let b = v.round() as i64;
    if signed {
        crate::findings::fmt_delta_bytes(b)
    } else {
        crate::findings::fmt_bytes(b.max(0).unsigned_abs())
    }
}

fn site_cell(r: &lenient::SiteRow) -> String {
    let site = r.site.0.clone().unwrap_or_default();
    match (site.as_str(), r.sites.0) {
        ("other", n) if n.is_finite() => format!("other ({} sites)", cell_count(n)),
        _ => site,
    }
}

impl SiteTables {
    fn read(s: &lenient::Sites) -> SiteTables {
        fn rows(a: &lenient::Arr<Obj<lenient::SiteRow>>) -> Vec<&lenient::SiteRow> {
            a.0.iter().filter_map(Obj::get).take(crate::sites::TOP_SITES + 1).collect()
        }
        let via = |r: &lenient::SiteRow| r.via.0.clone().unwrap_or_default();
        SiteTables {
            zip: rows(&s.zip)
                .into_iter()
                .map(|r| [site_cell(r), via(r), r.kind.0.clone().unwrap_or_default(), cell_count(r.alive.0), cell_count(r.pending.0)])
                .collect(),
            direct: rows(&s.direct)
                .into_iter()
                .map(|r| [site_cell(r), via(r), cell_bytes(r.live_bytes.0, false), cell_bytes(r.growth_bytes.0, true)])
                .collect(),
            threads: rows(&s.threads)
                .into_iter()
                .map(|r| {
                    let names: Vec<String> = r
                        .names
                        .0
                        .iter()
                        .filter_map(Obj::get)
                        .filter_map(|n| Some(format!("{} ({})", n.pattern.0.as_deref()?, cell_count(n.alive.0))))
                        .collect();
                    let growth = if r.growth.0.is_finite() { format!("{:+}", r.growth.0.round() as i64) } else { "-".into() };
                    [site_cell(r), via(r), cell_count(r.alive.0), growth, names.join(", ")]
                })
                .collect(),
        }
    }

    /// The tables as HTML, every report string escaped.
    fn html(&self, t: f64) -> String {
        fn table<const N: usize>(out: &mut String, title: &str, head: [&str; N], rows: &[[String; N]]) {
            if rows.is_empty() {
                return;
            }
            out.push_str(&format!("<h3>{}</h3>\n<table class=\"sites\">\n<tr>", page::escape_html(title)));
            for h in head {
                out.push_str(&format!("<th>{}</th>", page::escape_html(h)));
            }
            out.push_str("</tr>\n");
            for r in rows {
                out.push_str("<tr>");
                for (i, c) in r.iter().enumerate() {
                    let class = if i >= 2 && !head[i].starts_with("kind") && !head[i].starts_with("names") { " class=\"n\"" } else { "" };
                    out.push_str(&format!("<td{class}>{}</td>", page::escape_html(c)));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table>\n");
        }
        let mut out = format!(
            "<h2>Call sites</h2>\n<p class=\"note\">At the last sample with sites, {} UTC.</p>\n",
            crate::timefmt::rfc3339_millis(t.max(0.0) as u64)
        );
        table(&mut out, "Zip streams not ended", ["site", "via", "kind", "alive", "pending"], &self.zip);
        table(&mut out, "Direct buffers (estimated from samples)", ["site", "via", "live", "growth"], &self.direct);
        table(&mut out, "Threads", ["site", "via", "alive", "growth", "names"], &self.threads);
        out
    }
}

/// Numeric series by name, one value per sample (NaN where the sample had none).
#[derive(Debug, Default)]
struct Columns {
    index: HashMap<String, usize>,
    names: Vec<String>,
    data: Vec<Vec<f64>>,
    rows: usize,
}

impl Columns {
    fn new_row(&mut self) {
        for c in &mut self.data {
            c.push(f64::NAN);
        }
        self.rows += 1;
    }

    fn set(&mut self, name: &str, v: f64) {
        if v.is_nan() || self.rows == 0 {
            return;
        }
        let i = match self.index.get(name) {
            Some(&i) => i,
            // Names come from the report; a bound keeps a report that invents a new class or
            // category on every line from growing the table quadratically.
            None if self.data.len() >= MAX_COLUMNS => return,
            None => {
                self.index.insert(name.to_string(), self.data.len());
                self.names.push(name.to_string());
                self.data.push(vec![f64::NAN; self.rows]);
                self.data.len() - 1
            }
        };
        self.data[i][self.rows - 1] = v;
    }

    /// The column in time order (`order` holds row indices), if any sample had it.
    fn sorted(&self, name: &str, order: &[usize]) -> Option<Vec<f64>> {
        let col = &self.data[*self.index.get(name)?];
        Some(order.iter().map(|&r| col[r]).collect())
    }

    fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.names.iter().filter_map(move |n| n.strip_prefix(prefix))
    }
}

#[derive(Debug, Clone)]
struct TrimEvent {
    t: f64,
    released: f64,
    rss_before: f64,
    rss_after: f64,
    duration_ns: f64,
    reason: Option<String>,
    /// Trims this event stands for: 1, or more once [`Timeline::thin`] merged neighbours.
    count: u64,
    /// The most one of them released.
    max_released: f64,
}

impl TrimEvent {
    /// `self` and the trim that followed it, as one event.
    fn merge(&self, next: &TrimEvent) -> TrimEvent {
        let sum = |a: f64, b: f64| if a.is_nan() { b } else if b.is_nan() { a } else { a + b };
        TrimEvent {
            t: self.t,
            released: sum(self.released, next.released),
            rss_before: self.rss_before,
            rss_after: next.rss_after,
            duration_ns: sum(self.duration_ns, next.duration_ns),
            reason: if self.reason == next.reason { self.reason.clone() } else { None },
            count: self.count + next.count,
            max_released: self.max_released.max(next.max_released),
        }
    }
}

#[derive(Debug, Clone)]
struct FindingState {
    severity: String,
    title: String,
    evidence: Vec<String>,
    remedy: Option<String>,
    since: Option<f64>,
    first_seen: f64,
    last_seen: f64,
}

/// The classes of the breakdown, bottom of the stack first, with their labels.
const CLASSES: [(&str, &str); 11] = [
    ("java_heap", "Java heap"),
    ("malloc_arena", "malloc arenas"),
    ("malloc_mmap", "malloc mmap"),
    ("thread_stack", "thread stacks"),
    ("jvm_metaspace", "metaspace"),
    ("jvm_code", "code cache"),
    ("jvm_gc", "GC"),
    ("jvm_other", "JVM other"),
    ("other_anon", "other anonymous"),
    ("mapped_file", "mapped files"),
    ("kernel", "kernel"),
];

impl Timeline {
    /// Reads one report line. Blank lines are ignored; lines that are not samples are counted.
    pub fn push_line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let Ok(Obj(Some(sample))) = serde_json::from_str::<Obj<Line>>(line) else {
            self.skipped.unreadable += 1;
            return;
        };
        if sample.kind.0.as_deref().is_some_and(|k| k != "sample") {
            self.skipped.other_kind += 1;
            return;
        }
        let t = sample.epoch_ms.0;
        if t.is_nan() {
            self.skipped.no_time += 1;
            return;
        }
        if sample.schema.0 > 1.0 {
            self.newer_schema += 1;
        }
        self.times.push(t);
        self.columns.new_row();
        self.read_sample(&sample, t);
    }

    fn read_sample(&mut self, s: &Line, t: f64) {
        let c = &mut self.columns;
        c.set("pid", s.pid.0);
        if let Some(tot) = s.totals.get() {
            for (k, v) in [("rss", tot.rss), ("pss", tot.pss), ("swap", tot.swap), ("anon", tot.anon), ("file", tot.file), ("shmem", tot.shmem)] {
                c.set(&format!("tot.{k}"), v.0);
            }
        }
        if let Some(classes) = s.breakdown.get().and_then(|b| b.classes.get()) {
            for (name, class) in classes {
                if let Some(class) = class.get() {
                    c.set(&format!("bd.{name}"), class.rss.0);
                }
            }
        }
        if let Some(m) = s.malloc.get() {
            c.set("malloc.retained", m.retained.0);
            c.set("malloc.in_use", m.in_use.0);
            c.set("malloc.arena_count", m.arena_count.0);
            c.set("malloc.trimmable_max", m.trimmable_max.0);
            c.set("malloc.retained_resident", m.retained_resident.0);
            c.set("malloc.trimmable_resident", m.trimmable_resident.0);
            c.set("malloc.mmapped", m.mmapped.0);
        }
        if let Some(n) = s.nmt.get() {
            c.set("nmt_total", n.committed.0);
            for cat in n.categories.0.iter().filter_map(Obj::get) {
                if let Some(name) = &cat.name.0 {
                    c.set(&format!("nmt.{name}"), cat.committed.0);
                }
            }
        }
        if let Some(z) = s.zip.get() {
            for (side, count) in [("inflaters", &z.inflaters), ("deflaters", &z.deflaters)] {
                if let Some(count) = count.get() {
                    c.set(&format!("zip.{side}.alive"), count.alive.0);
                    c.set(&format!("zip.{side}.pending_cleanup"), count.pending_cleanup.0);
                }
            }
            c.set("zip.bytes", z.estimated_native_bytes.0);
        }
        if let Some(g) = s.cgroup.get() {
            c.set("cg.limit", g.limit.0);
            c.set("cg.usage", g.usage.0);
            c.set("cg.oom_kills", g.oom_kills.0);
        }
        if let Some(heap) = s.jvm.get().and_then(|j| j.heap.get()) {
            c.set("heap.used", heap.used.0);
            c.set("heap.committed", heap.committed.0);
            c.set("heap.max", heap.max.0);
        }
        if let Some(trim) = s.trim.get() {
            for e in trim.events.0.iter().filter_map(Obj::get) {
                self.add_trim(e, t);
            }
        }
        for f in s.findings.0.iter().filter_map(Obj::get) {
            self.add_finding(f, t);
        }
        if let Some(sites) = s.sites.get().filter(|x| x.status.0.as_deref() == Some("on")) {
            if self.sites.as_ref().is_none_or(|(last, _)| t >= *last) {
                self.sites = Some((t, SiteTables::read(sites)));
            }
        }
        if let Some(native) = s.native_sites.get().filter(|x| x.status.0.as_deref() == Some("on")) {
            for r in native.sites.0.iter().filter_map(Obj::get).filter(|r| r.site.0.as_deref() != Some("other")) {
                let Some(label) = r.label.0.as_deref() else { continue };
                if self.native_columns.contains(label) || self.native_columns.len() < NATIVE_SITE_COLUMNS {
                    self.native_columns.insert(label.to_string());
                    self.columns.set(&format!("ns.{label}"), r.live_bytes.0);
                }
            }
            if self.native_sites.as_ref().is_none_or(|(last, _)| t >= *last) {
                self.native_sites = Some((t, NativeSiteTable::read(native)));
            }
        }
    }

    fn add_trim(&mut self, e: &TrimEventLine, sample_t: f64) {
        let t = if e.epoch_ms.0.is_nan() { sample_t } else { e.epoch_ms.0 };
        let released = e.released.0;
        let rss_before = e.rss_before.0;
        // Samples may repeat the recent events; one trim is one mark.
        let key = (t as u64, released.max(0.0) as u64, rss_before.max(0.0) as u64);
        if !self.trims_seen.insert(key) {
            return;
        }
        self.trims.push(TrimEvent {
            t,
            released,
            rss_before,
            rss_after: e.rss_after.0,
            duration_ns: e.duration_ns.0,
            reason: e.reason.0.clone(),
            count: 1,
            max_released: released,
        });
    }

    /// Keeps at most `max_rows` samples and `max_trims` trim events, so a timeline fed for as
    /// long as the process lives stays bounded: past either bound, neighbours (in time order) are
    /// taken two by two, and of two samples the one with the higher RSS stays (so RSS peaks stay
    /// on the page), two trims become one with their count and sums. Each pass halves the
    /// resolution of the whole history, old and new alike; the page says how far it was thinned.
    pub fn thin(&mut self, max_rows: usize, max_trims: usize) {
        if self.thinned > 0 {
            // New samples join the resolution of the thinned history: one point per 2^n.
            self.open += 1;
            if self.open >= 1usize << self.thinned.min(63) {
                self.close_open_group();
            }
        }
        if self.times.len() > max_rows.max(2) {
            self.close_open_group();
            self.thin_rows();
        }
        if self.trims.len() > max_trims.max(2) {
            self.thin_trims();
        }
    }

    /// The RSS of row `r` (NaN where the sample had none).
    fn rss_of(&self, r: usize) -> f64 {
        self.columns.index.get("tot.rss").map_or(f64::NAN, |&i| self.columns.data[i][r])
    }

    /// Of `a` and `b`, the row that stays: the higher RSS, the later one on a tie or without RSS.
    fn higher_rss(&self, a: usize, b: usize) -> usize {
        let (ra, rb) = (self.rss_of(a), self.rss_of(b));
        if ra > rb || (rb.is_nan() && !ra.is_nan()) {
            a
        } else {
            b
        }
    }

    /// The newest `open` rows become the one of them with the highest RSS.
    fn close_open_group(&mut self) {
        let n = self.times.len();
        let start = n - self.open.min(n);
        self.open = 0;
        if n - start > 1 {
            let best = (start..n).reduce(|a, b| self.higher_rss(a, b)).unwrap_or(start);
            self.keep_rows(start, &[best]);
        }
    }

    fn thin_rows(&mut self) {
        let mut order: Vec<usize> = (0..self.times.len()).collect();
        order.sort_by(|&a, &b| self.times[a].total_cmp(&self.times[b]));
        let mut keep: Vec<usize> = order
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => self.higher_rss(*a, *b),
                [a] => *a,
                _ => unreachable!("chunks(2) gives one or two"),
            })
            .collect();
        keep.sort_unstable();
        self.keep_rows(0, &keep);
        self.thinned += 1;
    }

    /// Of the rows from `start` on, keeps only `keep` (ascending, each at least `start`); the rows
    /// before `start` stay as they are.
    fn keep_rows(&mut self, start: usize, keep: &[usize]) {
        let pick = |v: &mut Vec<f64>| {
            for (to, &from) in (start..).zip(keep) {
                v[to] = v[from];
            }
            v.truncate(start + keep.len());
        };
        pick(&mut self.times);
        for c in &mut self.columns.data {
            pick(c);
        }
        self.columns.rows = start + keep.len();
    }

    fn thin_trims(&mut self) {
        self.trims.sort_by(|a, b| a.t.total_cmp(&b.t));
        let merged: Vec<TrimEvent> = self
            .trims
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => a.merge(b),
                [a] => a.clone(),
                _ => unreachable!("chunks(2) gives one or two"),
            })
            .collect();
        self.trims = merged;
        // The keys only catch a trim that a later line repeats, and lines repeat only recent
        // ones: keep those of the last ten minutes before the newest trim.
        if let Some(newest) = self.trims.last().map(|e| e.t) {
            let since = (newest - 600_000.0).max(0.0) as u64;
            self.trims_seen.retain(|k| k.0 >= since);
        }
    }

    fn add_finding(&mut self, f: &Finding, t: f64) {
        let Some(id) = f.id.0.clone() else { return };
        let since = Some(f.since_ms.0).filter(|s| !s.is_nan());
        let latest = FindingState {
            severity: f.severity.0.clone().unwrap_or_else(|| "info".into()),
            title: f.title.0.clone().unwrap_or_else(|| id.clone()),
            evidence: f.evidence.0.clone(),
            remedy: f.remedy.0.clone(),
            since,
            first_seen: t,
            last_seen: t,
        };
        match self.findings.get_mut(&id) {
            None => {
                self.findings.insert(id, latest);
            }
            Some(known) => {
                known.first_seen = known.first_seen.min(t);
                if t >= known.last_seen {
                    let first_seen = known.first_seen;
                    *known = FindingState { first_seen, since: latest.since.or(known.since), ..latest };
                }
            }
        }
    }

    /// Lines skipped so far.
    pub fn skipped(&self) -> Skipped {
        self.skipped
    }

    /// Samples read so far.
    pub fn sample_count(&self) -> usize {
        self.times.len()
    }

    /// Renders the page.
    pub fn render(&self, title: &str) -> Result<String> {
        let data = self.page_data(title);
        let mut sites = self.sites.as_ref().map(|(t, tables)| tables.html(*t)).unwrap_or_default();
        if let Some((t, table)) = &self.native_sites {
            sites.push_str(&table.html(*t));
        }
        page::html(title, &self.header_lines(), &sites, &serde_json::to_string(&data)?)
    }

    /// The lines under the title that need no script: counts and what was skipped.
    fn header_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = self.skipped;
        if s.total() > 0 {
            let mut why = Vec::new();
            if s.unreadable > 0 {
                why.push(format!("{} unreadable", s.unreadable));
            }
            if s.other_kind > 0 {
                why.push(format!("{} not samples", s.other_kind));
            }
            if s.no_time > 0 {
                why.push(format!("{} without epoch_ms", s.no_time));
            }
            out.push(format!("Skipped {} line{} ({}).", s.total(), plural(s.total()), why.join(", ")));
        }
        if self.thinned > 0 {
            out.push(format!(
                "A long history, thinned to keep it small: each point is the sample with the highest RSS of {} neighbours.",
                1u64 << self.thinned.min(63)
            ));
        }
        if self.newer_schema > 0 {
            out.push(format!(
                "{} sample{} of a newer schema than 1: read as far as understood.",
                self.newer_schema,
                plural(self.newer_schema)
            ));
        }
        out
    }

    fn page_data(&self, title: &str) -> Value {
        let mut order: Vec<usize> = (0..self.times.len()).collect();
        order.sort_by(|&a, &b| self.times[a].total_cmp(&self.times[b]));
        let times: Vec<f64> = order.iter().map(|&r| self.times[r]).collect();
        let buckets = Buckets::new(&times, MAX_POINTS);
        let positions = buckets.point_positions();
        let col = |name: &str| self.columns.sorted(name, &order);

        let mut charts = Vec::new();
        if let Some(c) = self.memory_chart(&order, &buckets) {
            charts.push(c);
        }
        let line = |key: &str, label: &str, color: &str| {
            col(key).map(|v| json!({"label": label, "color": color, "v": nums(&buckets.extremes(&v))}))
        };
        let malloc_lines: Vec<Value> = [
            line("malloc.retained", "retained (free in arenas)", "#d62728"),
            line("malloc.retained_resident", "free and resident", "#8c1a1b"),
            line("malloc.in_use", "in use", "#1f77b4"),
            line("malloc.trimmable_max", "trimmable", "#ff9896").map(|mut v| {
                v["dash"] = json!("4 3");
                v
            }),
            line("malloc.arena_count", "arenas", "#7f7f7f").map(|mut v| {
                v["axis"] = json!("right");
                v["step"] = json!(true);
                v
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !malloc_lines.is_empty() {
            charts.push(json!({
                "id": "malloc", "title": "glibc malloc", "unit": "bytes", "right_unit": "count",
                "lines": malloc_lines, "trims": true,
            }));
        }
        if let Some(c) = self.nmt_chart(&order, &buckets) {
            charts.push(c);
        }
        if let Some(c) = self.native_sites_chart(&order, &buckets) {
            charts.push(c);
        }
        let zip_lines: Vec<Value> = [
            line("zip.inflaters.alive", "Inflaters alive", "#1f77b4"),
            line("zip.inflaters.pending_cleanup", "Inflaters pending cleanup", "#aec7e8"),
            line("zip.deflaters.alive", "Deflaters alive", "#ff7f0e"),
            line("zip.deflaters.pending_cleanup", "Deflaters pending cleanup", "#ffbb78"),
            line("zip.bytes", "estimated native bytes", "#9467bd").map(|mut v| {
                v["axis"] = json!("right");
                v["dash"] = json!("4 3");
                v
            }),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !zip_lines.is_empty() {
            charts.push(json!({
                "id": "zip", "title": "Zip census", "unit": "count", "right_unit": "bytes", "lines": zip_lines,
            }));
        }

        let pids = col("pid");
        let breaks = breaks(&times, pids.as_deref(), &buckets);
        let mut events = Vec::new();
        if let Some(p) = &pids {
            let mut last = f64::NAN;
            for (i, &pid) in p.iter().enumerate() {
                if !pid.is_nan() {
                    if !last.is_nan() && pid != last {
                        events.push(json!({"t": times[i], "kind": "restart", "text": format!("new process: pid {pid}")}));
                    }
                    last = pid;
                }
            }
        }
        if let Some(k) = col("cg.oom_kills") {
            let mut last = f64::NAN;
            for (i, &v) in k.iter().enumerate() {
                if !v.is_nan() {
                    if !last.is_nan() && v > last {
                        events.push(json!({"t": times[i], "kind": "oom", "text": format!("cgroup OOM kill ({} in total)", v)}));
                    }
                    last = v;
                }
            }
        }

        let latest = |key: &str| col(key).and_then(|v| v.into_iter().rev().find(|x| !x.is_nan()));
        let summary: Vec<Value> = [
            ("RSS", "tot.rss", "bytes"),
            ("Java heap committed", "heap.committed", "bytes"),
            ("malloc retained", "malloc.retained", "bytes"),
            ("malloc arenas", "malloc.arena_count", "count"),
            ("NMT committed", "nmt_total", "bytes"),
            ("cgroup limit", "cg.limit", "bytes"),
        ]
        .iter()
        .filter_map(|(label, key, unit)| latest(key).map(|v| json!({"label": label, "v": num_value(v), "unit": unit})))
        .collect();

        let mut pids_seen: Vec<u64> = pids.iter().flatten().filter(|p| !p.is_nan()).map(|&p| p as u64).collect();
        pids_seen.sort_unstable();
        pids_seen.dedup();

        json!({
            "title": title,
            "samples": times.len(),
            "skipped": self.skipped.total(),
            "pids": pids_seen,
            "t": nums(&positions.iter().map(|&p| times[p]).collect::<Vec<_>>()),
            "b": buckets.point_buckets(),
            "buckets": buckets.reduced.then(|| json!({
                "t0": nums(&buckets.ranges.iter().map(|r| times[r.start]).collect::<Vec<_>>()),
                "t1": nums(&buckets.ranges.iter().map(|r| times[r.end - 1]).collect::<Vec<_>>()),
                "n": buckets.ranges.iter().map(|r| r.len()).collect::<Vec<_>>(),
            })),
            "breaks": breaks,
            "interval_ms": median_interval(&times).map(num_value),
            "charts": charts,
            "trims": self.trim_marks(&times, &buckets),
            "events": events,
            "findings": self.findings_data(times.last().copied()),
            "summary": summary,
        })
    }

    fn memory_chart(&self, order: &[usize], buckets: &Buckets) -> Option<Value> {
        let col = |name: &str| self.columns.sorted(name, order);
        let known: Vec<(String, String, &str)> = CLASSES
            .iter()
            .map(|(k, label)| (k.to_string(), label.to_string(), class_color(k)))
            .collect();
        let extra = self
            .columns
            .names_with_prefix("bd.")
            .filter(|n| !CLASSES.iter().any(|(k, _)| k == n))
            .map(|n| (n.to_string(), n.replace('_', " "), "#c7c7c7"));
        let mut parts: Vec<(String, Vec<f64>, &str)> = known
            .into_iter()
            .chain(extra)
            .filter_map(|(k, label, color)| col(&format!("bd.{k}")).map(|v| (label, v, color)))
            .collect();
        let mut note = None;
        if parts.is_empty() {
            parts = [("anon", "anonymous", "#e15759"), ("shmem", "shared memory", "#d4a6c8"), ("file", "file-backed", "#bab0ac")]
                .iter()
                .filter_map(|(k, label, color)| col(&format!("tot.{k}")).map(|v| (label.to_string(), v, *color)))
                .collect();
            if !parts.is_empty() {
                note = Some("No breakdown in this report: RSS split by page kind.");
            }
        }
        let rss = col("tot.rss");
        let limit = col("cg.limit");
        if parts.is_empty() && rss.is_none() {
            return None;
        }
        // The stack is drawn from real samples (lowest and highest total per bucket), so its top
        // meets the RSS line.
        let n = order.len();
        let stack_total: Vec<f64> = (0..n)
            .map(|i| {
                let vals = parts.iter().map(|(_, v, _)| v[i]).filter(|x| !x.is_nan());
                vals.fold(f64::NAN, |acc, x| if acc.is_nan() { x } else { acc + x })
            })
            .collect();
        let key = rss.clone().unwrap_or_else(|| stack_total.clone());
        let key: Vec<f64> = key.iter().zip(&stack_total).map(|(&r, &s)| if s.is_nan() { f64::NAN } else { r }).collect();
        let reps = buckets.representatives(&key);
        let stack: Vec<Value> = parts
            .iter()
            .map(|(label, v, color)| {
                let pts: Vec<f64> = reps
                    .iter()
                    .map(|r| match r {
                        Some(i) if !stack_total[*i].is_nan() => if v[*i].is_nan() { 0.0 } else { v[*i] },
                        _ => f64::NAN,
                    })
                    .collect();
                json!({"label": label, "color": color, "v": nums(&pts)})
            })
            .collect();
        let mut lines = Vec::new();
        if let Some(r) = rss {
            lines.push(json!({"label": "RSS", "color": "#111", "width": 1.6, "v": nums(&buckets.extremes(&r))}));
        }
        if let Some(l) = limit {
            lines.push(json!({"label": "cgroup limit", "color": "#b00", "dash": "6 4", "soft": true, "v": nums(&buckets.extremes(&l))}));
        }
        Some(json!({
            "id": "memory", "title": "Resident memory", "unit": "bytes", "height": 340,
            "stack": stack, "lines": lines, "trims": true, "findings": true, "note": note,
        }))
    }

    fn nmt_chart(&self, order: &[usize], buckets: &Buckets) -> Option<Value> {
        let mut cats: Vec<(&str, Vec<f64>, f64)> = self
            .columns
            .names_with_prefix("nmt.")
            .filter(|name| *name != NMT_JAVA_HEAP)
            .filter_map(|name| {
                let v = self.columns.sorted(&format!("nmt.{name}"), order)?;
                let peak = v.iter().cloned().filter(|x| !x.is_nan()).fold(0.0, f64::max);
                Some((name, v, peak))
            })
            .collect();
        if cats.is_empty() {
            return None;
        }
        cats.sort_by(|a, b| b.2.total_cmp(&a.2));
        let hidden = cats.len().saturating_sub(NMT_TOP);
        const PALETTE: [&str; NMT_TOP] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
        let lines: Vec<Value> = cats
            .iter()
            .take(NMT_TOP)
            .zip(PALETTE)
            .map(|((name, v, _), color)| json!({"label": name, "color": color, "v": nums(&buckets.extremes(v))}))
            .collect();
        let mut notes = Vec::new();
        if self.columns.index.contains_key(&format!("nmt.{NMT_JAVA_HEAP}")) {
            notes.push("Java Heap left out (see Resident memory) so native categories keep their scale.".to_string());
        }
        if hidden > 0 {
            notes.push(format!("Top {NMT_TOP} categories by peak committed; {hidden} smaller not drawn."));
        }
        let note = (!notes.is_empty()).then(|| notes.join(" "));
        Some(json!({"id": "nmt", "title": "NMT committed by category", "unit": "bytes", "lines": lines, "note": note}))
    }

    /// The sampled live bytes of the native call sites with the highest peaks, one line each.
    fn native_sites_chart(&self, order: &[usize], buckets: &Buckets) -> Option<Value> {
        let mut sites: Vec<(&str, Vec<f64>, f64)> = self
            .columns
            .names_with_prefix("ns.")
            .filter_map(|label| {
                let v = self.columns.sorted(&format!("ns.{label}"), order)?;
                let peak = v.iter().cloned().filter(|x| !x.is_nan()).fold(0.0, f64::max);
                Some((label, v, peak))
            })
            .collect();
        if sites.is_empty() {
            return None;
        }
        sites.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(b.0)));
        let hidden = sites.len().saturating_sub(NATIVE_SITES_TOP);
        const PALETTE: [&str; NATIVE_SITES_TOP] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
        let lines: Vec<Value> = sites
            .iter()
            .take(NATIVE_SITES_TOP)
            .zip(PALETTE)
            .map(|((label, v, _), color)| json!({"label": label, "color": color, "v": nums(&buckets.extremes(v))}))
            .collect();
        let note = (hidden > 0).then(|| format!("Top {NATIVE_SITES_TOP} sites by peak live bytes; {hidden} smaller not drawn."));
        Some(json!({"id": "native-sites", "title": "Native call sites (sampled live bytes)", "unit": "bytes", "lines": lines, "note": note}))
    }

    fn trim_marks(&self, times: &[f64], buckets: &Buckets) -> Value {
        let mut trims = self.trims.clone();
        trims.sort_by(|a, b| a.t.total_cmp(&b.t));
        let count: u64 = trims.iter().map(|e| e.count).sum();
        if count <= MAX_TRIM_MARKS as u64 {
            let marks: Vec<Value> = trims
                .iter()
                .map(|e| {
                    json!({
                        "t": num_value(e.t), "released": num_value(e.released), "before": num_value(e.rss_before),
                        "after": num_value(e.rss_after), "ns": num_value(e.duration_ns), "reason": e.reason,
                    })
                })
                .collect();
            return json!({"grouped": false, "marks": marks});
        }
        // Too many to mark one by one: one mark per bucket of samples, with the count and sums.
        let mut marks: Vec<Value> = Vec::new();
        let mut bucket = 0;
        let mut group: Vec<&TrimEvent> = Vec::new();
        let flush = |group: &mut Vec<&TrimEvent>, marks: &mut Vec<Value>| {
            if let (Some(first), Some(last)) = (group.first(), group.last()) {
                let released: f64 = group.iter().map(|e| e.released).filter(|x| !x.is_nan()).sum();
                let max = group.iter().map(|e| e.max_released).filter(|x| !x.is_nan()).fold(0.0, f64::max);
                let n: u64 = group.iter().map(|e| e.count).sum();
                marks.push(json!({
                    "t": num_value(first.t), "t1": num_value(last.t), "n": n,
                    "released": num_value(released), "max": num_value(max),
                }));
            }
            group.clear();
        };
        for e in &trims {
            // The bucket whose last sample is at or after this trim.
            while bucket + 1 < buckets.ranges.len() && times[buckets.ranges[bucket].end - 1] < e.t {
                bucket += 1;
                flush(&mut group, &mut marks);
            }
            group.push(e);
        }
        flush(&mut group, &mut marks);
        json!({"grouped": true, "count": count, "marks": marks})
    }

    fn findings_data(&self, last_sample: Option<f64>) -> Vec<Value> {
        let rank = |s: &str| match s {
            "critical" => 0,
            "warning" => 1,
            "info" => 2,
            _ => 3,
        };
        let mut list: Vec<(&String, &FindingState)> = self.findings.iter().collect();
        let active = |f: &FindingState| last_sample.is_some_and(|t| f.last_seen >= t);
        list.sort_by(|a, b| {
            active(b.1)
                .cmp(&active(a.1))
                .then(rank(&a.1.severity).cmp(&rank(&b.1.severity)))
                .then(a.1.since.unwrap_or(a.1.first_seen).total_cmp(&b.1.since.unwrap_or(b.1.first_seen)))
                .then(a.0.cmp(b.0))
        });
        list.into_iter()
            .map(|(id, f)| {
                json!({
                    "id": id, "severity": f.severity, "title": f.title, "evidence": f.evidence, "remedy": f.remedy,
                    "since": num_value(f.since.unwrap_or(f.first_seen)), "first_seen": num_value(f.first_seen),
                    "last_seen": num_value(f.last_seen), "active": active(f),
                })
            })
            .collect()
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn class_color(class: &str) -> &'static str {
    match class {
        "java_heap" => "#4e79a7",
        "malloc_arena" => "#e15759",
        "malloc_mmap" => "#ff9d9a",
        "thread_stack" => "#f28e2b",
        "jvm_metaspace" => "#59a14f",
        "jvm_code" => "#76b7b2",
        "jvm_gc" => "#8cd17d",
        "jvm_other" => "#b6992d",
        "other_anon" => "#9c755f",
        "mapped_file" => "#bab0ac",
        "kernel" => "#d4a6c8",
        _ => "#c7c7c7",
    }
}

/// The usual time between samples, for telling a pause from the sampling rhythm.
fn median_interval(times: &[f64]) -> Option<f64> {
    let mut d: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).collect();
    if d.is_empty() {
        return None;
    }
    let mid = d.len() / 2;
    let (_, m, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

/// Points before which lines break: where sampling paused for more than three usual intervals,
/// or the process changed. Gaps inside one bucket are below the chart's resolution.
fn breaks(times: &[f64], pids: Option<&[f64]>, buckets: &Buckets) -> Vec<usize> {
    let Some(interval) = median_interval(times) else { return Vec::new() };
    let threshold = interval * 3.0;
    let mut out = Vec::new();
    let mut point = 0;
    for r in &buckets.ranges {
        let i = r.start;
        if i > 0 {
            let paused = times[i] - times[i - 1] > threshold;
            let restarted = pids.is_some_and(|p| !p[i].is_nan() && !p[i - 1].is_nan() && p[i] != p[i - 1]);
            if paused || restarted {
                out.push(point);
            }
        }
        point += if r.len() > 1 { 2 } else { 1 };
    }
    out
}

/// A number as compact JSON: integers without a fraction, missing values as null.
fn num_value(v: f64) -> Value {
    if !v.is_finite() {
        Value::Null
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        // Three decimals are more than any chart or readout shows.
        Value::from((v * 1000.0).round() / 1000.0)
    }
}

fn nums(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|&x| num_value(x)).collect())
}

#[cfg(test)]
mod tests;
