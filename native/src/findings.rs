//! The rules: the latest observation and the growth since the baseline turned into findings,
//! each with the numbers that raised it and the exact remedy (a flag, an environment variable,
//! a code change). Ids are stable; tools may match on them.
//!
//! Every threshold is a named constant below. The rules only read an [`Observation`] and a
//! [`Growth`], so each is tested with hand-built numbers. [`FindingTracker`] keeps the time a
//! finding was first raised across samples and says which are new and whose severity changed, so
//! the agent logs one line per new finding and per change rather than one per sample.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cgroup;
use crate::history::{series, Growth, History, HistoryConfig};
use crate::observation::{NativeSite, NativeSitesObs, Observation, SitesObs};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Stable finding ids.
pub mod ids {
    pub const MALLOC_RETENTION: &str = "malloc-retention";
    pub const ARENA_SPRAWL: &str = "arena-sprawl";
    pub const NATIVE_OUTSIDE_NMT: &str = "native-outside-nmt";
    pub const NMT_OFF: &str = "nmt-off";
    pub const ZIP_UNCLOSED: &str = "zip-unclosed";
    pub const DIRECT_BUFFERS: &str = "direct-buffers";
    pub const THREAD_GROWTH: &str = "thread-growth";
    pub const METASPACE_GROWTH: &str = "metaspace-growth";
    pub const OOM_RISK: &str = "oom-risk";
    pub const HEAP_NOT_THE_PROBLEM: &str = "heap-not-the-problem";
    pub const HEAP_HEADROOM: &str = "heap-headroom";
}

// malloc-retention: glibc keeps free memory that RSS still counts.
/// Retained bytes below this are normal allocator slack.
pub const RETENTION_MIN_BYTES: u64 = 256 * MIB;
/// ... and so is retention below this share of RSS.
pub const RETENTION_MIN_SHARE_OF_RSS: f64 = 0.10;
/// Critical when retention is this share of RSS or more ...
pub const RETENTION_CRITICAL_SHARE_OF_RSS: f64 = 0.40;
/// ... and at least this much.
pub const RETENTION_CRITICAL_MIN_BYTES: u64 = GIB;

// arena-sprawl: more glibc arenas than a JVM needs.
/// glibc allows 8 arenas per core; a JVM with more than this many is spreading its malloc over
/// arenas that each keep their own free memory.
pub const ARENA_SPRAWL_MIN_ARENAS: u64 = 9;
/// ... and when they hold at least this much free memory between them: a default JVM on a
/// small machine starts with 8 arenas per core, each with a little slack, which is no finding.
pub const ARENA_SPRAWL_RETAINED_MIN_BYTES: u64 = 32 * MIB;
/// The arena count recommended in the remedy.
pub const ARENA_MAX_RECOMMENDED: u64 = 2;

// native-outside-nmt / nmt-off.
/// RSS growth since the baseline below this is not worth explaining.
pub const NATIVE_GROWTH_MIN_BYTES: u64 = 128 * MIB;
/// Below this share of the RSS growth explained by NMT, the growth is outside the JVM's account.
pub const NMT_COVERAGE_MIN: f64 = 0.30;
/// A sampled malloc call site whose live bytes grow at least this fast (per hour) over the rate
/// window is called growing; the estimate of a steady site wanders by about one sampling
/// interval, far below this over the window.
pub const NATIVE_SITE_GROWTH_MIN_PER_HOUR: f64 = 16.0 * MIB as f64;
/// The operator's ways to turn the native call sites on, named when they are off.
pub const NATIVE_SITES_OPTION: &str = "nativeSites=on";
pub const NATIVE_SITES_START_COMMAND: &str = "java -jar offheap-doctor.jar <pid> sites start";

// zip-unclosed.
/// Unended Inflaters the JDK keeps itself: cached for its own open jar and zip files.
pub const JDK_CACHED_INFLATERS: u64 = 3;
/// Unended streams beyond the JDK's own that make a finding.
pub const ZIP_UNENDED_MIN: u64 = 64;
/// ... or this much estimated native zlib memory.
pub const ZIP_NATIVE_MIN_BYTES: u64 = 64 * MIB;
/// Critical at this much estimated native zlib memory.
pub const ZIP_NATIVE_CRITICAL_BYTES: u64 = GIB;
/// Streams waiting for the Cleaner or the finalizer thread at or above this: streams left to the
/// GC instead of ended, a warning whether or not the count grows.
pub const ZIP_PENDING_MIN: u64 = 32;
/// Otherwise a warning only while the unended count grows at least this fast (per hour) over the
/// rate window and its later half; a large population that holds steady is a pool, `info`.
pub const ZIP_GROWTH_MIN_PER_HOUR: f64 = 60.0;
/// ... or while their estimated native memory grows at least this fast.
pub const ZIP_NATIVE_RATE_MIN_PER_HOUR: f64 = 16.0 * MIB as f64;

// direct-buffers.
/// Direct buffer memory below this is not a finding.
pub const DIRECT_MIN_BYTES: u64 = 256 * MIB;
/// A finding when direct buffers are this share of RSS or more ...
pub const DIRECT_MIN_SHARE_OF_RSS: f64 = 0.25;
/// ... or grow at least this fast.
pub const DIRECT_GROWTH_MIN_PER_HOUR: f64 = 64.0 * MIB as f64;

// thread-growth.
/// Threads added since the baseline for a finding (`info` when the count has stopped growing) ...
pub const THREAD_GROWTH_MIN: i64 = 100;
/// ... a warning while still growing at least this fast (threads per hour) over the rate window
/// and its later half.
pub const THREAD_RATE_MIN_PER_HOUR: f64 = 20.0;

// metaspace-growth.
pub const METASPACE_GROWTH_MIN_BYTES: i64 = 64 * MIB as i64;
pub const METASPACE_RATE_MIN_PER_HOUR: f64 = 16.0 * MIB as f64;

// oom-risk.
/// Warning when the container limit is this close at the current rate ...
pub const OOM_RISK_WARNING_SECS: u64 = 24 * 3600;
/// ... critical when this close.
pub const OOM_RISK_CRITICAL_SECS: u64 = 3600;
/// Warning whatever the rate when the working set is this share of the limit.
pub const OOM_RISK_USAGE_SHARE: f64 = 0.90;
/// `heap-headroom`: the maximum heap plus what the process holds outside the heap now must leave
/// at least this share of the container limit free.
pub const HEADROOM_MIN_FREE_SHARE: f64 = 0.10;

// heap-not-the-problem.
/// RSS growth at which it is worth saying the heap did not cause it ...
pub const HEAP_NOT_PROBLEM_MIN_RSS_GROWTH: i64 = 256 * MIB as i64;
/// ... when the heap's part of that growth is below this share.
pub const HEAP_NOT_PROBLEM_MAX_HEAP_SHARE: f64 = 0.10;

/// How long a finding may be absent before it is cleared: a finding flapping around its
/// threshold keeps its `since_ms` and is not logged as new each time it comes back.
pub const CLEAR_AFTER_ABSENT_SAMPLES: u32 = 3;

/// The thresholds the rules use: the constants above by default, each overridable by the agent
/// option `threshold.<name>=<value>` (the Java side validates and converts the value; the core
/// receives it in the init configuration's `thresholds` object under the same name). Sizes are
/// bytes, shares ratios (0.1 for 10%), rates per hour, durations milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Thresholds {
    /// [`RETENTION_MIN_BYTES`]
    pub retention_min: u64,
    /// [`RETENTION_MIN_SHARE_OF_RSS`]
    pub retention_min_rss: f64,
    /// [`RETENTION_CRITICAL_MIN_BYTES`]
    pub retention_critical: u64,
    /// [`RETENTION_CRITICAL_SHARE_OF_RSS`]
    pub retention_critical_rss: f64,
    /// [`ARENA_SPRAWL_MIN_ARENAS`]
    pub arena_sprawl_min: u64,
    /// [`ARENA_SPRAWL_RETAINED_MIN_BYTES`]
    pub arena_sprawl_retained_min: u64,
    /// [`NATIVE_GROWTH_MIN_BYTES`]
    pub native_growth_min: u64,
    /// [`NMT_COVERAGE_MIN`]
    pub nmt_coverage_min: f64,
    /// [`ZIP_UNENDED_MIN`]
    pub zip_unended_min: u64,
    /// [`ZIP_NATIVE_MIN_BYTES`]
    pub zip_native_min: u64,
    /// [`ZIP_NATIVE_CRITICAL_BYTES`]
    pub zip_native_critical: u64,
    /// [`ZIP_PENDING_MIN`]
    pub zip_pending_min: u64,
    /// [`ZIP_GROWTH_MIN_PER_HOUR`]
    pub zip_growth_min: f64,
    /// [`ZIP_NATIVE_RATE_MIN_PER_HOUR`]
    pub zip_native_rate_min: f64,
    /// [`DIRECT_MIN_BYTES`]
    pub direct_min: u64,
    /// [`DIRECT_MIN_SHARE_OF_RSS`]
    pub direct_min_rss: f64,
    /// [`DIRECT_GROWTH_MIN_PER_HOUR`]
    pub direct_rate_min: f64,
    /// [`THREAD_GROWTH_MIN`]
    pub thread_growth_min: u64,
    /// [`THREAD_RATE_MIN_PER_HOUR`]
    pub thread_rate_min: f64,
    /// [`METASPACE_GROWTH_MIN_BYTES`]
    pub metaspace_growth_min: u64,
    /// [`METASPACE_RATE_MIN_PER_HOUR`]
    pub metaspace_rate_min: f64,
    /// [`OOM_RISK_WARNING_SECS`], in milliseconds.
    pub oom_risk_warning: u64,
    /// [`OOM_RISK_CRITICAL_SECS`], in milliseconds.
    pub oom_risk_critical: u64,
    /// [`OOM_RISK_USAGE_SHARE`]
    pub oom_risk_usage: f64,
    /// [`HEADROOM_MIN_FREE_SHARE`]
    pub headroom_min_free: f64,
    /// [`HEAP_NOT_PROBLEM_MIN_RSS_GROWTH`]
    pub heap_not_problem_min_growth: u64,
    /// [`HEAP_NOT_PROBLEM_MAX_HEAP_SHARE`]
    pub heap_not_problem_max_share: f64,
    /// [`CLEAR_AFTER_ABSENT_SAMPLES`]
    pub clear_after: u32,
    /// The window of the recent rate ([`crate::history::DEFAULT_RATE_WINDOW_MS`]), milliseconds.
    pub rate_window: u64,
    /// The shortest span that gives a rate ([`crate::history::DEFAULT_RATE_MIN_SPAN_MS`]), ms.
    pub rate_min_span: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            retention_min: RETENTION_MIN_BYTES,
            retention_min_rss: RETENTION_MIN_SHARE_OF_RSS,
            retention_critical: RETENTION_CRITICAL_MIN_BYTES,
            retention_critical_rss: RETENTION_CRITICAL_SHARE_OF_RSS,
            arena_sprawl_min: ARENA_SPRAWL_MIN_ARENAS,
            arena_sprawl_retained_min: ARENA_SPRAWL_RETAINED_MIN_BYTES,
            native_growth_min: NATIVE_GROWTH_MIN_BYTES,
            nmt_coverage_min: NMT_COVERAGE_MIN,
            zip_unended_min: ZIP_UNENDED_MIN,
            zip_native_min: ZIP_NATIVE_MIN_BYTES,
            zip_native_critical: ZIP_NATIVE_CRITICAL_BYTES,
            zip_pending_min: ZIP_PENDING_MIN,
            zip_growth_min: ZIP_GROWTH_MIN_PER_HOUR,
            zip_native_rate_min: ZIP_NATIVE_RATE_MIN_PER_HOUR,
            direct_min: DIRECT_MIN_BYTES,
            direct_min_rss: DIRECT_MIN_SHARE_OF_RSS,
            direct_rate_min: DIRECT_GROWTH_MIN_PER_HOUR,
            thread_growth_min: THREAD_GROWTH_MIN.unsigned_abs(),
            thread_rate_min: THREAD_RATE_MIN_PER_HOUR,
            metaspace_growth_min: METASPACE_GROWTH_MIN_BYTES.unsigned_abs(),
            metaspace_rate_min: METASPACE_RATE_MIN_PER_HOUR,
            oom_risk_warning: OOM_RISK_WARNING_SECS * 1000,
            oom_risk_critical: OOM_RISK_CRITICAL_SECS * 1000,
            oom_risk_usage: OOM_RISK_USAGE_SHARE,
            headroom_min_free: HEADROOM_MIN_FREE_SHARE,
            heap_not_problem_min_growth: HEAP_NOT_PROBLEM_MIN_RSS_GROWTH.unsigned_abs(),
            heap_not_problem_max_share: HEAP_NOT_PROBLEM_MAX_HEAP_SHARE,
            clear_after: CLEAR_AFTER_ABSENT_SAMPLES,
            rate_window: crate::history::DEFAULT_RATE_WINDOW_MS,
            rate_min_span: crate::history::DEFAULT_RATE_MIN_SPAN_MS,
        }
    }
}

impl Thresholds {
    fn oom_risk_warning_secs(&self) -> u64 {
        self.oom_risk_warning / 1000
    }

    fn oom_risk_critical_secs(&self) -> u64 {
        self.oom_risk_critical / 1000
    }

    /// Refuses values no rule can use: a share outside 0..=1, a negative or non-finite rate, a
    /// rate window shorter than the span a rate needs.
    pub fn check(&self) -> crate::error::Result<()> {
        let shares = [
            ("retentionMinRss", self.retention_min_rss),
            ("retentionCriticalRss", self.retention_critical_rss),
            ("nmtCoverageMin", self.nmt_coverage_min),
            ("directMinRss", self.direct_min_rss),
            ("oomRiskUsage", self.oom_risk_usage),
            ("headroomMinFree", self.headroom_min_free),
            ("heapNotProblemMaxShare", self.heap_not_problem_max_share),
        ];
        for (name, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(crate::error::Error::invalid(format!("threshold {name}={v} is not a share from 0 to 1")));
            }
        }
        for (name, v) in [
            ("zipGrowthMin", self.zip_growth_min),
            ("zipNativeRateMin", self.zip_native_rate_min),
            ("directRateMin", self.direct_rate_min),
            ("threadRateMin", self.thread_rate_min),
            ("metaspaceRateMin", self.metaspace_rate_min),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(crate::error::Error::invalid(format!("threshold {name}={v} is not a rate of 0 or more")));
            }
        }
        if self.rate_window < self.rate_min_span || self.rate_min_span == 0 {
            return Err(crate::error::Error::invalid(format!(
                "threshold rateWindow={} ms must be at least rateMinSpan={} ms, which must be above 0",
                self.rate_window, self.rate_min_span
            )));
        }
        Ok(())
    }

    /// The history's configuration with this rate window and minimum span.
    pub fn history_config(&self) -> HistoryConfig {
        HistoryConfig { rate_window_ms: self.rate_window, rate_min_span_ms: self.rate_min_span, ..HistoryConfig::default() }
    }
}

/// The agent's option that runs trims when retained memory is worth it (see DESIGN.md).
pub const AGENT_TRIM_OPTION: &str = "trim=auto";
/// The agent's option that caps glibc's arenas at run time (`mallopt(M_ARENA_MAX)`).
pub const AGENT_ARENA_MAX_OPTION: &str = "arenaMax=2";
/// Where Debian and Ubuntu install the allocators on x86_64 (`libjemalloc2`,
/// `libtcmalloc-minimal4`); RPM distributions use `/usr/lib64/`.
pub const JEMALLOC_PATH: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
pub const TCMALLOC_PATH: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One number behind a finding: `value` for people ("1.2 GiB", "34.0%"), `raw` for tools (bytes,
/// counts, ratios, bytes per hour, seconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub key: &'static str,
    pub value: String,
    pub raw: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub evidence: Vec<Evidence>,
    pub remedy: String,
    /// When this finding was first raised (epoch ms); kept while it persists.
    pub since_ms: u64,
}

impl Finding {
    fn new(id: &'static str, severity: Severity, title: String, since_ms: u64) -> Self {
        Finding { id, severity, title, evidence: Vec::new(), remedy: String::new(), since_ms }
    }

    fn bytes(mut self, key: &'static str, b: u64) -> Self {
        self.evidence.push(Evidence { key, value: fmt_bytes(b), raw: Some(b as f64) });
        self
    }

    fn delta(mut self, key: &'static str, d: i64) -> Self {
        self.evidence.push(Evidence { key, value: fmt_delta_bytes(d), raw: Some(d as f64) });
        self
    }

    fn rate(mut self, key: &'static str, per_hour: Option<f64>) -> Self {
        if let Some(r) = per_hour {
            self.evidence.push(Evidence { key, value: fmt_rate_bytes(r), raw: Some(r) });
        }
        self
    }

    fn count(mut self, key: &'static str, n: u64) -> Self {
        self.evidence.push(Evidence { key, value: n.to_string(), raw: Some(n as f64) });
        self
    }

    fn share(mut self, key: &'static str, ratio: f64) -> Self {
        self.evidence.push(Evidence { key, value: fmt_percent(ratio), raw: Some(ratio) });
        self
    }

    fn text(mut self, key: &'static str, value: impl Into<String>, raw: Option<f64>) -> Self {
        self.evidence.push(Evidence { key, value: value.into(), raw });
        self
    }

    fn remedy(mut self, r: impl Into<String>) -> Self {
        self.remedy = r.into();
        self
    }

    /// One line for the agent's log: severity, id, title and the evidence.
    pub fn log_line(&self) -> String {
        format!("[{}] {}: {} ({})", self.severity.name(), self.id, self.title, self.evidence_text())
    }

    /// The log line of a severity change: `[critical] zip-unclosed: warning -> critical: <title> (..)`.
    pub fn change_line(&self, from: Severity) -> String {
        format!(
            "[{}] {}: {} -> {}: {} ({})",
            self.severity.name(),
            self.id,
            from.name(),
            self.severity.name(),
            self.title,
            self.evidence_text()
        )
    }

    fn evidence_text(&self) -> String {
        let ev: Vec<String> = self.evidence.iter().map(|e| format!("{}={}", e.key, e.value)).collect();
        ev.join(", ")
    }
}

/// Bytes in binary units with one decimal: `512 B`, `1.5 KiB`, `1.2 GiB`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if b < KIB {
        return format!("{b} B");
    }
    let mut v = b as f64 / KIB as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    // 1023.96 MiB would print as "1024.0 MiB"; step up instead.
    if format!("{v:.1}") == "1024.0" && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A signed change: `+1.2 GiB`, `-300.0 MiB`, `0 B`.
pub fn fmt_delta_bytes(d: i64) -> String {
    match d {
        0 => "0 B".to_string(),
        d if d > 0 => format!("+{}", fmt_bytes(d.unsigned_abs())),
        d => format!("-{}", fmt_bytes(d.unsigned_abs())),
    }
}

/// A rate in bytes per hour: `+360.0 MiB/h`.
pub fn fmt_rate_bytes(per_hour: f64) -> String {
    let mag = if per_hour.is_finite() { per_hour.abs().min(u64::MAX as f64) as u64 } else { 0 };
    let sign = if per_hour < 0.0 { "-" } else { "+" };
    format!("{sign}{}/h", fmt_bytes(mag))
}

/// A ratio as a percentage with one decimal: `0.345` -> `34.5%`.
pub fn fmt_percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A duration for people: `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`.
pub fn fmt_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Runs every rule on the history's latest observation and growth. Findings come most severe
/// first, then by id; `since_ms` is the latest observation's time ([`FindingTracker`] replaces it
/// with the time each was first raised).
pub fn evaluate(history: &History) -> Vec<Finding> {
    match history.latest() {
        Some(latest) => evaluate_with(latest, &history.growth()),
        None => Vec::new(),
    }
}

/// The rules on one observation and the growth that led to it, with the default thresholds.
pub fn evaluate_with(o: &Observation, g: &Growth) -> Vec<Finding> {
    evaluate_with_thresholds(o, g, &Thresholds::default())
}

/// One rule: a finding, or none, from an observation, its growth and the thresholds.
type Rule = fn(&Observation, &Growth, &Thresholds) -> Option<Finding>;

/// The rules on one observation and the growth that led to it, with thresholds `t`.
pub fn evaluate_with_thresholds(o: &Observation, g: &Growth, t: &Thresholds) -> Vec<Finding> {
    let rules: [Rule; 11] = [
        malloc_retention,
        arena_sprawl,
        native_outside_nmt,
        nmt_off,
        zip_unclosed,
        direct_buffers,
        thread_growth,
        metaspace_growth,
        oom_risk,
        heap_headroom,
        heap_not_the_problem,
    ];
    let mut out: Vec<Finding> = rules.iter().filter_map(|r| r(o, g, t)).collect();
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    out
}

fn malloc_retention(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let m = o.malloc.as_ref().filter(|_| o.is_glibc())?;
    // What the process pays for is the resident part: free pages a trim already gave back stay
    // counted in `retained`, which can then exceed RSS. RSS and the arenas are read moments
    // apart, so the share is held to 100%.
    let retained = m.retained_now();
    let share = ratio(retained, o.rss).min(1.0);
    if retained < t.retention_min || share < t.retention_min_rss {
        return None;
    }
    let severity = if share >= t.retention_critical_rss && retained >= t.retention_critical {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let jvm_trims = o.jvm_trim_interval_ms.filter(|ms| *ms > 0);
    let mut f = Finding::new(
        ids::MALLOC_RETENTION,
        severity,
        format!("glibc keeps {} of freed memory resident ({} of RSS)", fmt_bytes(retained), fmt_percent(share)),
        o.epoch_ms,
    )
    .bytes("retained", retained)
    .share("retained_share_of_rss", share)
    .bytes("retained_max", m.retained)
    .bytes("trimmable_now", m.trimmable_resident.unwrap_or(m.trimmable_max).min(retained))
    .bytes("malloc_in_use", m.in_use)
    .count("arenas", m.arena_count)
    .bytes("rss", o.rss)
    .rate(
        "retained_rate",
        g.rate(series::MALLOC_RETAINED_RESIDENT).or_else(|| g.rate(series::MALLOC_RETAINED)),
    );
    if let Some(ms) = jvm_trims {
        f = f.text("jvm_trim_interval", format!("{ms} ms"), Some(ms as f64));
    }
    let first = match jvm_trims {
        Some(ms) => format!(
            "The JVM already trims every {ms} ms (-XX:TrimNativeHeapInterval={ms}); the memory comes back \
             between trims: shorten the interval, or"
        ),
        None => format!(
            "Return it now and whenever it builds up: start the agent with {AGENT_TRIM_OPTION} (calls \
             malloc_trim(0) when retained memory is worth it), or on a JDK that has the flag \
             -XX:TrimNativeHeapInterval=60000. Or"
        ),
    };
    Some(f.remedy(format!(
        "{first} make glibc give back the top of its heaps sooner: MALLOC_TRIM_THRESHOLD_=134217728 \
         (free memory between live blocks still needs a trim). Or run on an allocator that returns free \
         pages by itself: LD_PRELOAD={JEMALLOC_PATH} MALLOC_CONF=background_thread:true, or \
         LD_PRELOAD={TCMALLOC_PATH}."
    )))
}

fn arena_sprawl(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let m = o.malloc.as_ref().filter(|_| o.is_glibc())?;
    let retained = m.retained_now();
    if m.arena_count < t.arena_sprawl_min || retained < t.arena_sprawl_retained_min {
        return None;
    }
    // A cap the process already has, and which holds (no more arenas than the cap plus the main
    // one), leaves nothing to recommend. A cap set after the JVM had made its arenas does not hold.
    let cap = o.malloc_arena_max.as_deref().and_then(|v| v.trim().parse::<u64>().ok());
    if cap.is_some_and(|c| c <= ARENA_MAX_RECOMMENDED * 2 && m.arena_count <= c + 1) {
        return None;
    }
    let severity = if retained >= t.retention_min { Severity::Warning } else { Severity::Info };
    let mut f = Finding::new(
        ids::ARENA_SPRAWL,
        severity,
        format!("{} glibc malloc arenas hold {} free and resident", m.arena_count, fmt_bytes(retained)),
        o.epoch_ms,
    )
    .count("arenas", m.arena_count)
    .bytes("retained", retained)
    .bytes("retained_max", m.retained)
    .bytes("malloc_in_use", m.in_use);
    if let Some(part) = o.part("malloc_arena") {
        f = f.bytes("arena_rss", part);
    }
    if let Some(r) = g.rate(series::MALLOC_ARENAS) {
        f = f.text("arena_rate", format!("{r:+.1}/h"), Some(r));
    }
    f = f.text("malloc_arena_max", o.malloc_arena_max.clone().unwrap_or_else(|| "unset".into()), cap.map(|c| c as f64));
    Some(f.remedy(format!(
        "Cap the arenas: MALLOC_ARENA_MAX={ARENA_MAX_RECOMMENDED} in the JVM's environment (or \
         GLIBC_TUNABLES=glibc.malloc.arena_max={ARENA_MAX_RECOMMENDED}), or the native library as an early \
         agent, -agentpath:<library>={AGENT_ARENA_MAX_OPTION} (the command `java -jar offheap-doctor.jar \
         agentpath` prints the flag); from -javaagent the option caps only arenas not yet created. Each arena keeps its own free memory; fewer \
         arenas trade a little malloc contention for much less of it."
    )))
}

/// NMT's share of the RSS growth since the baseline: from the history when both series have a
/// baseline value, else what the sample computed against its own NMT baseline.
fn nmt_coverage(o: &Observation, g: &Growth) -> Option<(f64, Option<i64>)> {
    let rss_delta = g.delta(series::RSS)?;
    match g.delta(series::NMT_COMMITTED) {
        Some(nmt) if rss_delta > 0 => Some(((nmt as f64 / rss_delta as f64).clamp(0.0, 1.0), Some(nmt))),
        _ => o.nmt.as_ref()?.coverage.map(|c| (c, None)),
    }
}

fn native_outside_nmt(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    if !o.nmt_on() {
        return None;
    }
    let rss_delta = g.delta(series::RSS)?;
    if rss_delta < i64::try_from(t.native_growth_min).unwrap_or(i64::MAX) {
        return None;
    }
    let (coverage, nmt_delta) = nmt_coverage(o, g)?;
    if coverage >= t.nmt_coverage_min {
        return None;
    }
    let unexplained = (rss_delta as f64 * (1.0 - coverage)) as i64;
    let mut f = Finding::new(
        ids::NATIVE_OUTSIDE_NMT,
        Severity::Warning,
        format!(
            "RSS grew {} but NMT explains only {} of it",
            fmt_delta_bytes(rss_delta),
            fmt_percent(coverage)
        ),
        o.epoch_ms,
    )
    .delta("rss_growth", rss_delta)
    .share("nmt_coverage", coverage)
    .delta("unexplained", unexplained)
    .text("over", fmt_duration(g.elapsed_ms() / 1000), Some((g.elapsed_ms() / 1000) as f64));
    if let Some(d) = nmt_delta {
        f = f.delta("nmt_committed_growth", d);
    }
    for (key, name) in [
        ("malloc_retained_growth", series::MALLOC_RETAINED),
        ("malloc_in_use_growth", series::MALLOC_IN_USE),
        ("zip_native_growth", series::ZIP_NATIVE),
    ] {
        if let Some(d) = g.delta(name).filter(|d| *d > 0) {
            f = f.delta(key, d);
        }
    }
    // The breakdown classes that grew most say where to look.
    let mut parts: Vec<(&str, i64)> = g
        .series
        .iter()
        .filter_map(|(k, s)| Some((k.strip_prefix(series::PART_PREFIX)?, s.delta?)))
        .filter(|(_, d)| *d > 0)
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    if !parts.is_empty() {
        let top: Vec<String> = parts.iter().take(3).map(|(k, d)| format!("{k} {}", fmt_delta_bytes(*d))).collect();
        f = f.text("grew_most", top.join(", "), None);
    }
    const WHAT: &str = "The growth is memory the JVM does not track: native code (JNI/JNA libraries), zlib streams \
         (see zip-unclosed), or the allocator keeping freed memory (see malloc-retention).";
    let Some(n) = o.native_sites.as_ref() else {
        let mut remedy = format!(
            "{WHAT} To find who allocates it, profile malloc: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
             MALLOC_CONF=prof:true,lg_prof_interval:30,lg_prof_sample:17 (a jemalloc built with \
             --enable-prof), then jeprof on the dumps."
        );
        if !remedy.contains(NATIVE_SITES_OPTION) {
            remedy.push_str(&format!(
                " Or let the agent sample malloc's call sites, and this finding name the ones that grow: start it with \
                 {NATIVE_SITES_OPTION}, or on the running JVM `{NATIVE_SITES_START_COMMAND}`."
            ));
        }
        return Some(f.remedy(remedy));
    };
    let (f, named) = native_site_evidence(f, n, g);
    Some(f.remedy(format!("{named}{WHAT}")))
}

/// A native site's live-bytes rate per hour as people read it: per second from 1 KiB/s up
/// (`+5.0 MiB/s`), else per hour.
fn fmt_site_rate(per_hour: f64) -> String {
    let per_s = per_hour / 3600.0;
    if per_s.abs() >= KIB as f64 {
        let sign = if per_s < 0.0 { "-" } else { "+" };
        format!("{sign}{}/s", fmt_bytes(per_s.abs().min(u64::MAX as f64) as u64))
    } else {
        fmt_rate_bytes(per_hour)
    }
}

/// The sampled sites behind the untracked growth as `site_<n>` evidence, growing ones first (by
/// rate), then the largest; and the remedy's opening sentence, naming the top growing site.
fn native_site_evidence(mut f: Finding, n: &NativeSitesObs, g: &Growth) -> (Finding, String) {
    let growing_at = |s: &NativeSite| g.native_site_rates.get(&s.id).copied().filter(|r| *r >= NATIVE_SITE_GROWTH_MIN_PER_HOUR);
    // What the JVM mallocs itself goes through libjvm's own call sites, and NMT counts it.
    let mut rows: Vec<&NativeSite> =
        n.sites.iter().filter(|s| s.live_bytes > 0 || growing_at(s).is_some()).filter(|s| !s.label.starts_with("libjvm.so ")).collect();
    rows.sort_by(|a, b| match (growing_at(a), growing_at(b)) {
        (Some(ra), Some(rb)) => rb.total_cmp(&ra),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.live_bytes.cmp(&a.live_bytes),
    });
    f = f.bytes("native_sites_live", n.live_bytes).delta("native_sites_growth", n.growth_bytes);
    for (i, s) in rows.iter().take(SITES_IN_EVIDENCE).enumerate() {
        let rate = g.native_site_rates.get(&s.id).copied();
        let how = match (growing_at(s), rate) {
            (Some(r), _) => fmt_site_rate(r),
            (None, Some(_)) => "not growing".to_string(),
            (None, None) => format!("{} since the sampler's baseline", fmt_delta_bytes(s.growth_bytes)),
        };
        f = f
            .text(SITE_KEYS[i], format!("{}: {} live, {how}", s.label, fmt_bytes(s.live_bytes)), Some(s.live_bytes as f64))
            .bytes(SITE_LIVE_KEYS[i], s.live_bytes)
            .delta(SITE_GROWTH_KEYS[i], s.growth_bytes)
            .rate(SITE_RATE_KEYS[i], rate);
        if let Some(t) = &s.thread {
            f = f.text(SITE_THREAD_KEYS[i], t.as_str(), None);
        }
    }
    let named = match rows.first().map(|s| (s, growing_at(s))) {
        Some((s, Some(r))) => {
            let mut stack: Vec<&str> = s.native.iter().take(3).map(String::as_str).collect();
            stack.extend(s.java.iter().take(2).map(String::as_str));
            format!(
                "The malloc call site that grows most: {}, {} live and {}{}{}. Free what it allocates once done with \
                 it, or bound what keeps it. ",
                s.label,
                fmt_bytes(s.live_bytes),
                fmt_site_rate(r),
                s.thread.as_deref().map(|t| format!(" (thread {t})")).unwrap_or_default(),
                if stack.is_empty() { String::new() } else { format!("; stack, innermost first: {}", stack.join(" <- ")) },
            )
        }
        Some((s, None)) if g.native_site_rates.is_empty() => format!(
            "Too soon to say which malloc call site grows; the largest is {}, {} live. ",
            s.label,
            fmt_bytes(s.live_bytes)
        ),
        Some((s, None)) => format!(
            "No sampled malloc call site grows (the largest is {}, {} live): the growth is likely not memory still \
             allocated by malloc, but freed memory the allocator keeps, or memory native code maps itself \
             (mmap), which the sampler does not see. ",
            s.label,
            fmt_bytes(s.live_bytes)
        ),
        None => "The malloc call sites sampled so far hold nothing outside the JVM's own. ".to_string(),
    };
    (f, named)
}

fn nmt_off(o: &Observation, _g: &Growth, _t: &Thresholds) -> Option<Finding> {
    if o.nmt_mode != "off" {
        return None;
    }
    let mut f = Finding::new(
        ids::NMT_OFF,
        Severity::Info,
        "Native Memory Tracking is off: the JVM's own native memory cannot be told apart".to_string(),
        o.epoch_ms,
    )
    .bytes("rss", o.rss);
    if let Some(off) = o.off_heap() {
        f = f.bytes("outside_java_heap", off);
    }
    Some(f.remedy(
        "Restart the JVM with -XX:NativeMemoryTracking=summary (a few percent of CPU and two words per \
         malloc); the agent then shows which of the JVM's areas grow and how much of the growth is \
         outside them.",
    ))
}

/// Sites named in a finding's evidence, each as `site_<n>` and its figures.
const SITES_IN_EVIDENCE: usize = 3;
const SITE_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1", "site_2", "site_3"];
const SITE_VIA_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_via", "site_2_via", "site_3_via"];
const SITE_UNENDED_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_unended", "site_2_unended", "site_3_unended"];
const SITE_BYTES_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_estimated", "site_2_estimated", "site_3_estimated"];
const SITE_LIVE_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_live", "site_2_live", "site_3_live"];
const SITE_GROWTH_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_growth", "site_2_growth", "site_3_growth"];
const SITE_RATE_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_rate", "site_2_rate", "site_3_rate"];
const SITE_THREAD_KEYS: [&str; SITES_IN_EVIDENCE] = ["site_1_thread", "site_2_thread", "site_3_thread"];

/// Per-stream zlib memory the census's estimate counts (the Java side's constants).
const INFLATER_NATIVE_BYTES: u64 = 40 * KIB;
const DEFLATER_NATIVE_BYTES: u64 = 262 * KIB;

/// `1412` -> `1,412`.
fn fmt_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What the application holds when a zip stream was made through `via`: the JDK stream class
/// that owns the Inflater or Deflater (`GZIPInputStream` for `java.util.zip.GZIPInputStream.<init>`,
/// `ZipFile` for its inner classes), else the Inflater or Deflater itself.
fn zip_owner(via: Option<&str>, deflater: bool) -> String {
    let class = via.and_then(|v| v.rsplit_once('.')).map(|(class, _method)| class);
    let owner = class
        .and_then(|c| c.strip_prefix("java.util.zip."))
        .map(|c| c.split('$').next().unwrap_or(c))
        .filter(|c| !matches!(*c, "Inflater" | "Deflater") && !c.is_empty() && !c.contains('.'));
    match owner {
        Some(c) => format!("the {c}"),
        None if deflater => "the Deflater".to_string(),
        None => "the Inflater".to_string(),
    }
}

fn verb_for(owner: &str) -> &'static str {
    if owner == "the Inflater" || owner == "the Deflater" {
        "end"
    } else {
        "close"
    }
}

/// The call's short name for the evidence: `java.nio.ByteBuffer.allocateDirect` stays whole.
fn site_via(f: Finding, i: usize, via: Option<&str>) -> Finding {
    match via {
        Some(v) => f.text(SITE_VIA_KEYS[i], v, None),
        None => f,
    }
}

/// The zip sites with their estimated bytes: each site's streams at its kind's per-stream
/// constant, scaled like the finding's figure (`held / by_constants`).
fn zip_sites(sites: Option<&SitesObs>, held: u64, by_constants: u64) -> Vec<(&crate::observation::ZipSite, u64)> {
    let scale = if by_constants == 0 { 1.0 } else { (held as f64 / by_constants as f64).min(1.0) };
    let mut rows: Vec<_> = sites
        .map(|s| s.zip.iter().filter(|z| z.unended() > 0).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|z| {
            let each = if z.deflater { DEFLATER_NATIVE_BYTES } else { INFLATER_NATIVE_BYTES };
            (z, (z.unended().saturating_mul(each) as f64 * scale) as u64)
        })
        .collect();
    rows.sort_by(|a, b| b.0.unended().cmp(&a.0.unended()).then(b.1.cmp(&a.1)));
    rows.truncate(SITES_IN_EVIDENCE);
    rows
}

/// Unended Inflaters and Deflaters. A population that holds steady is a pool (one stream per
/// connection, ended when replaced): `info`, with what it holds. A warning when the count or its
/// estimated memory keeps growing over the rate window, or when many wait for the Cleaner or the
/// finalizer (dropped without `end()`); critical when such a warning holds `zipNativeCritical`.
fn zip_unclosed(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let z = o.zip.as_ref()?;
    let unended = z.unended();
    let beyond_jdk = unended.saturating_sub(JDK_CACHED_INFLATERS);
    let awaiting = z.awaiting_release();
    let large = beyond_jdk > 0 && (beyond_jdk >= t.zip_unended_min || z.estimated_native_bytes >= t.zip_native_min);
    if !large && awaiting < t.zip_pending_min {
        return None;
    }
    let count_grows = g.grows_at_least(series::ZIP_UNENDED, t.zip_growth_min);
    let bytes_grow = g.grows_at_least(series::ZIP_NATIVE, t.zip_native_rate_min);
    let left_to_gc = awaiting >= t.zip_pending_min;
    let severity = match (count_grows || bytes_grow || left_to_gc, z.estimated_native_bytes >= t.zip_native_critical) {
        (true, true) => Severity::Critical,
        (true, false) => Severity::Warning,
        (false, _) => Severity::Info,
    };
    // The per-stream constants are what a used stream holds; streams that have touched less of
    // their buffers hold less, so the estimate can pass the memory it would be a share of. The
    // finding never claims more than the resident memory outside the Java heap.
    let held_bytes = o.off_heap().map_or(z.estimated_native_bytes, |off| z.estimated_native_bytes.min(off));
    let held = fmt_bytes(held_bytes);
    let title = if count_grows {
        let r = g.rate(series::ZIP_UNENDED).unwrap_or(0.0);
        format!("{unended} Inflaters/Deflaters are not ended and hold about {held} of native zlib memory, {r:+.0}/h")
    } else if bytes_grow {
        let r = fmt_rate_bytes(g.rate(series::ZIP_NATIVE).unwrap_or(0.0));
        format!("{unended} Inflaters/Deflaters are not ended and hold about {held} of native zlib memory, {r}")
    } else if left_to_gc {
        format!(
            "{awaiting} Inflaters/Deflaters were dropped without end() and wait for the GC to free their zlib \
             memory ({unended} unended hold about {held})"
        )
    } else if g.rate(series::ZIP_UNENDED).is_none() {
        format!("{unended} live Inflaters/Deflaters hold about {held} of native zlib memory; too soon to say whether the count still grows")
    } else {
        format!("{unended} live Inflaters/Deflaters hold about {held} of native zlib memory; the count holds steady")
    };
    let mut f = Finding::new(ids::ZIP_UNCLOSED, severity, title, o.epoch_ms)
        .count("inflaters_alive", z.inflaters_alive)
        .count("inflaters_pending_cleanup", z.inflaters_pending)
        .count("deflaters_alive", z.deflaters_alive)
        .count("deflaters_pending_cleanup", z.deflaters_pending)
        .bytes("estimated_native", held_bytes)
        .rate("estimated_native_rate", g.rate(series::ZIP_NATIVE));
    if held_bytes < z.estimated_native_bytes {
        f = f.bytes("estimated_native_by_constants", z.estimated_native_bytes);
    }
    if let Some(s) = g.get(series::ZIP_UNENDED) {
        if let Some(r) = s.rate_per_hour {
            f = f.text("unended_rate", format!("{r:+.0}/h"), Some(r));
        }
        if let Some(r) = s.recent_rate_per_hour {
            f = f.text("unended_recent_rate", format!("{r:+.0}/h"), Some(r));
        }
    }
    if z.finalizable > 0 {
        f = f.count("finalizable", z.finalizable).count("finalizable_pending", z.finalizable_pending);
    }
    let sites = zip_sites(o.sites.as_ref(), held_bytes, z.estimated_native_bytes);
    for (i, (s, bytes)) in sites.iter().enumerate() {
        f = f.text(SITE_KEYS[i], s.site.as_str(), None);
        f = site_via(f, i, s.via.as_deref());
        f = f.count(SITE_UNENDED_KEYS[i], s.unended()).bytes(SITE_BYTES_KEYS[i], *bytes);
    }
    if severity == Severity::Info {
        return Some(f.remedy(
            "Nothing to fix while the count holds steady: each of these streams is alive and keeps its zlib \
             memory until end() is called (a pool of streams per connection or thread does so by design). If \
             it is not a pool, end them when done: close the streams that own them in try-with-resources, \
             and call end() on Inflaters and Deflaters created directly.",
        ));
    }
    let mut remedy = match sites.first() {
        Some((s, bytes)) => {
            let owner = zip_owner(s.via.as_deref(), s.deflater);
            format!(
                "{} {owner} created at {}: {} unended, about {}. ",
                capitalise(verb_for(&owner)),
                s.site,
                fmt_thousands(s.unended()),
                fmt_bytes(*bytes)
            )
        }
        None => String::new(),
    };
    remedy.push_str(
        "Close every stream that owns an Inflater or Deflater (GZIPInputStream, GZIPOutputStream, \
         InflaterInputStream, DeflaterOutputStream, ZipInputStream, ZipOutputStream, ZipFile) in \
         try-with-resources, and call end() in a finally block on every Inflater and Deflater created \
         directly.",
    );
    let pending = z.pending();
    if pending >= t.zip_pending_min {
        remedy.push_str(&format!(
            " {pending} of them are already unreachable and wait for the Cleaner: their native memory is \
             freed only after a GC finds them and the Cleaner thread runs, which falls behind here; closing \
             them explicitly is the fix, not more GC."
        ));
    }
    if z.finalizable > 0 {
        remedy.push_str(&format!(
            " {} of them are released by a finalizer (a subclass overriding finalize(), or end() on JDK \
             9-17), {} already queued for the finalizer thread: call end() on them; finalization waits for a \
             GC and one thread runs every finalizer.",
            z.finalizable, z.finalizable_pending
        ));
    }
    Some(f.remedy(remedy))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A `-XX:MaxDirectMemorySize` that leaves room above today's use: 1.5 times it, rounded up to
/// 64 MiB, in `m`.
fn suggested_direct_cap(used: u64) -> String {
    let want = used.saturating_add(used / 2);
    let mib = want.div_ceil(64 * MIB).max(1) * 64;
    format!("{mib}m")
}

fn direct_buffers(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let d = o.direct_buffers.as_ref()?;
    let share = ratio(d.used, o.rss);
    let rate = g.rate(series::DIRECT_USED);
    let growing = rate.is_some_and(|r| r >= t.direct_rate_min);
    if d.used < t.direct_min || !(share >= t.direct_min_rss || growing) {
        return None;
    }
    let mut f = Finding::new(
        ids::DIRECT_BUFFERS,
        Severity::Warning,
        format!("{} direct ByteBuffers use {} ({} of RSS)", d.count, fmt_bytes(d.used), fmt_percent(share)),
        o.epoch_ms,
    )
    .bytes("direct_used", d.used)
    .count("direct_count", d.count)
    .share("share_of_rss", share)
    .rate("direct_rate", rate)
    .delta("direct_growth", g.delta(series::DIRECT_USED).unwrap_or(0));
    let sites: Vec<_> = o.sites.as_ref().map(|s| s.direct.iter().filter(|d| d.live_bytes > 0).collect()).unwrap_or_default();
    for (i, s) in sites.iter().take(SITES_IN_EVIDENCE).enumerate() {
        f = f.text(SITE_KEYS[i], s.site.as_str(), None);
        f = site_via(f, i, s.via.as_deref());
        f = f.bytes(SITE_LIVE_KEYS[i], s.live_bytes).delta(SITE_GROWTH_KEYS[i], s.growth_bytes);
    }
    // The site that grew most is the one to fix; without growth, the largest.
    let named = sites
        .iter()
        .filter(|s| s.growth_bytes > 0)
        .max_by_key(|s| s.growth_bytes)
        .or_else(|| sites.first())
        .map(|s| {
            format!(
                "Release or reuse the direct buffers allocated at {}{}: about {} live, {} since the baseline. ",
                s.site,
                s.via.as_deref().map(|v| format!(" (through {v})")).unwrap_or_default(),
                fmt_bytes(s.live_bytes),
                fmt_delta_bytes(s.growth_bytes)
            )
        })
        .unwrap_or_default();
    Some(f.remedy(format!(
        "{named}Cap direct memory so it fails fast instead of growing RSS: -XX:MaxDirectMemorySize={} (the default \
         is the maximum heap size). Reuse direct buffers instead of allocating them per request; the JDK \
         caches a temporary direct buffer per thread for I/O on heap buffers, bounded by \
         -Djdk.nio.maxCachedBufferSize=262144; Netty has -Dio.netty.maxDirectMemory.",
        suggested_direct_cap(d.used)
    )))
}

/// Threads added since the baseline. A warning while their number keeps growing over the rate
/// window and its later half; a count that rose and stopped (an executor filled to its size) is
/// `info`, as is one whose rate is not known yet.
fn thread_growth(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let (name, key) = if g.delta(series::JAVA_THREADS).is_some() {
        (series::JAVA_THREADS, "java_threads")
    } else {
        (series::OS_THREADS, "os_threads")
    };
    let s = g.get(name)?;
    let delta = s.delta?;
    if delta < i64::try_from(t.thread_growth_min).unwrap_or(i64::MAX) {
        return None;
    }
    let growing = s.grows_at_least(t.thread_rate_min);
    let title = match (growing, s.rate_per_hour) {
        (true, Some(rate)) => format!("{delta} more threads than at the baseline, still {rate:+.0}/h"),
        (_, Some(_)) => format!("{delta} more threads than at the baseline; the count has stopped growing"),
        (_, None) => format!("{delta} more threads than at the baseline; too soon to say whether it still grows"),
    };
    let mut f = Finding::new(ids::THREAD_GROWTH, if growing { Severity::Warning } else { Severity::Info }, title, o.epoch_ms)
        .text(key, format!("{} -> {}", s.baseline.unwrap_or(0), s.latest.unwrap_or(0)), s.latest.map(|v| v as f64));
    if let Some(rate) = s.rate_per_hour {
        f = f.text("thread_rate", format!("{rate:+.1}/h"), Some(rate));
    }
    if let Some(rate) = s.recent_rate_per_hour {
        f = f.text("thread_recent_rate", format!("{rate:+.1}/h"), Some(rate));
    }
    if name == series::JAVA_THREADS {
        if let Some(os) = g.get(series::OS_THREADS).and_then(|s| s.latest) {
            f = f.count("os_threads", os);
        }
    }
    if let Some(stack) = o.part("thread_stack") {
        f = f.bytes("thread_stack_rss", stack);
    }
    if let Some(d) = g.delta(&series::part("thread_stack")) {
        f = f.delta("thread_stack_growth", d);
    }
    // The creating site that added most threads since the baseline (else the one with most alive).
    let top = o.sites.as_ref().and_then(|s| {
        s.threads.iter().filter(|t| t.growth > 0).max_by_key(|t| t.growth).or_else(|| s.threads.iter().max_by_key(|t| t.alive))
    });
    if let Some(t) = top {
        f = f.text("top_site", t.site.as_str(), None);
        if let Some(v) = &t.via {
            f = f.text("top_site_via", v.as_str(), None);
        }
        f = f.count("top_site_alive", t.alive).text("top_site_growth", format!("{:+}", t.growth), Some(t.growth as f64));
        if let Some((pattern, n)) = &t.top_name {
            f = f.text("top_name_pattern", pattern.as_str(), Some(*n as f64));
        }
    }
    if !growing {
        return Some(f.remedy(
            "Nothing to fix while the count holds: an executor that grew to its maximum under load keeps its \
             threads (jcmd <pid> Thread.print names them). Each costs its touched stack (-Xss) and often a \
             malloc arena; lower the pool's maximum or its keep-alive time if that is too much.",
        ));
    }
    let named = top
        .map(|t| {
            let names = t.top_name.as_ref().map(|(p, _)| format!(" (named {p})")).unwrap_or_default();
            format!(
                "Most of them are started at {}{names}: {} alive, {:+} since the baseline; bound or reuse them there. ",
                t.site, t.alive, t.growth
            )
        })
        .unwrap_or_default();
    Some(f.remedy(format!(
        "{named}Threads are created and not ended: bound the executors that grow (jcmd <pid> Thread.print names \
         them; a pool per request or an unbounded cached pool is the usual cause). Each thread costs its \
         touched stack (-Xss, 1 MiB reserved by default on Linux x86_64) and often a malloc arena."
    )))
}

fn metaspace_growth(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let s = g.get(series::METASPACE)?;
    let delta = s.delta?;
    let rate = s.rate_per_hour?;
    if delta < i64::try_from(t.metaspace_growth_min).unwrap_or(i64::MAX) || rate < t.metaspace_rate_min {
        return None;
    }
    let f = Finding::new(
        ids::METASPACE_GROWTH,
        Severity::Warning,
        format!("Metaspace grew {} and grows {}", fmt_delta_bytes(delta), fmt_rate_bytes(rate)),
        o.epoch_ms,
    )
    .bytes("metaspace", s.latest.unwrap_or(0))
    .delta("metaspace_growth", delta)
    .rate("metaspace_rate", Some(rate));
    Some(f.remedy(
        "Classes keep being loaded and not unloaded: a class loader leak, or generated classes (proxies, \
         scripting, serialisation frameworks) per request. jcmd <pid> VM.classloader_stats and jcmd <pid> \
         VM.metaspace show which loaders hold it. Cap it to fail fast instead of growing RSS: \
         -XX:MaxMetaspaceSize=<size>.",
    ))
}

fn oom_risk(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let c = o.cgroup.as_ref()?;
    let limit = c.limit?;
    // The working set (usage less inactive page cache) is what the kernel cannot reclaim before
    // it kills; RSS stands in when the cgroup gives no usage.
    let (what, current, rate) = match c.working_set() {
        Some(ws) => ("working_set", ws, g.rate(series::CGROUP_WORKING_SET).or_else(|| g.rate(series::RSS))),
        None => ("rss", o.rss, g.rate(series::RSS)),
    };
    let share = ratio(current, limit);
    let ttl = rate.and_then(|r| cgroup::time_to_limit(current, limit, r));
    let severity = match ttl {
        Some(s) if s < t.oom_risk_critical_secs() => Severity::Critical,
        Some(s) if s < t.oom_risk_warning_secs() => Severity::Warning,
        _ if share >= t.oom_risk_usage => Severity::Warning,
        _ => return None,
    };
    let title = match ttl {
        Some(s) if s < t.oom_risk_warning_secs() => format!(
            "At the current rate the container reaches its {} limit in {}",
            fmt_bytes(limit),
            fmt_duration(s)
        ),
        _ => format!("The container uses {} of its {} limit", fmt_percent(share), fmt_bytes(limit)),
    };
    let mut f = Finding::new(ids::OOM_RISK, severity, title, o.epoch_ms)
        .bytes("limit", limit)
        .bytes(what, current)
        .share("share_of_limit", share)
        .rate("rate", rate)
        .bytes("rss", o.rss);
    if let Some(s) = ttl {
        f = f.text("time_to_limit", fmt_duration(s), Some(s as f64));
    }
    if let Some(k) = c.oom_kills.filter(|k| *k > 0) {
        f = f.count("oom_kills_so_far", k);
    }
    let heap = o
        .heap_max
        .map(|h| format!(" The maximum heap is {} of the limit;", fmt_percent(ratio(h, limit))))
        .unwrap_or_default();
    Some(f.remedy(format!(
        "Stop the growth (the other findings say where it is).{heap} leave room for native memory: keep \
         -Xmx (or -XX:MaxRAMPercentage) at about 75% of the limit or less, or raise the container limit."
    )))
}

/// The heap may still grow to its maximum: if that plus today's non-heap memory does not fit
/// under the container limit with room to spare, the kernel kills the JVM before the heap is full.
fn heap_headroom(o: &Observation, _g: &Growth, t: &Thresholds) -> Option<Finding> {
    let limit = o.cgroup.as_ref()?.limit?;
    let heap_max = o.heap_max.filter(|h| *h > 0)?;
    let heap_now = o.part("java_heap").or(o.heap_committed).unwrap_or(0);
    let non_heap = o.rss.saturating_sub(heap_now);
    let needed = heap_max.saturating_add(non_heap);
    let free_share = 1.0 - ratio(needed, limit);
    if free_share >= t.headroom_min_free {
        return None;
    }
    let severity = if needed >= limit { Severity::Critical } else { Severity::Warning };
    let target = (limit.saturating_sub(non_heap) as f64 * 0.9) as u64;
    let f = Finding::new(
        ids::HEAP_HEADROOM,
        severity,
        format!(
            "The maximum heap ({}) plus the {} outside the heap leaves {} of the {} limit",
            fmt_bytes(heap_max),
            fmt_bytes(non_heap),
            fmt_percent(free_share.max(0.0)),
            fmt_bytes(limit)
        ),
        o.epoch_ms,
    )
    .bytes("limit", limit)
    .bytes("heap_max", heap_max)
    .bytes("non_heap_rss", non_heap)
    .share("free_at_full_heap", free_share.max(0.0));
    Some(f.remedy(format!(
        "Lower -Xmx to at most {} (or -XX:MaxRAMPercentage accordingly), or raise the container limit; \
         native memory (the other findings) comes on top of the heap.",
        fmt_bytes(target)
    )))
}

fn heap_not_the_problem(o: &Observation, g: &Growth, t: &Thresholds) -> Option<Finding> {
    let rss = g.delta(series::RSS)?;
    if rss < i64::try_from(t.heap_not_problem_min_growth).unwrap_or(i64::MAX) {
        return None;
    }
    let heap = g.delta(&series::part("java_heap")).or_else(|| g.delta(series::HEAP_COMMITTED))?;
    let share = heap.max(0) as f64 / rss as f64;
    if share >= t.heap_not_problem_max_share {
        return None;
    }
    let f = Finding::new(
        ids::HEAP_NOT_THE_PROBLEM,
        Severity::Info,
        format!("RSS grew {} while the Java heap grew {}", fmt_delta_bytes(rss), fmt_delta_bytes(heap)),
        o.epoch_ms,
    )
    .delta("rss_growth", rss)
    .delta("heap_growth", heap)
    .share("heap_share_of_growth", share);
    Some(f.remedy(
        "The growth is outside the Java heap: a larger -Xmx or a heap dump will not find it. See the other \
         findings for where it is.",
    ))
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    since_ms: u64,
    /// The severity last announced (when raised, or by the last change).
    severity: Severity,
    absent: u32,
    /// Samples in a row the finding came back less severe than announced.
    lower: u32,
}

/// A finding whose severity changed: a rise at once, a fall once it has held for
/// [`CLEAR_AFTER_ABSENT_SAMPLES`] samples (so a rule flapping around a threshold is not announced
/// at each sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeverityChange {
    pub id: &'static str,
    pub from: Severity,
    pub to: Severity,
}

/// What changed in one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingsUpdate {
    /// The findings of this sample, each with the time it was first raised.
    pub findings: Vec<Finding>,
    /// Ids raised for the first time (or again after being cleared).
    pub new: Vec<&'static str>,
    /// Findings whose severity changed at this sample, with the old and the new one.
    pub changed: Vec<SeverityChange>,
    /// Ids absent for [`CLEAR_AFTER_ABSENT_SAMPLES`] samples in a row, now forgotten.
    pub cleared: Vec<&'static str>,
}

impl FindingsUpdate {
    /// The findings to log this sample: the new ones and those whose severity changed.
    pub fn to_log(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| self.new.contains(&f.id) || self.changed.iter().any(|c| c.id == f.id))
    }

    /// One line per new finding and per severity change, for the agent's log.
    pub fn log_lines(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter_map(|f| {
                if self.new.contains(&f.id) {
                    return Some(f.log_line());
                }
                self.changed.iter().find(|c| c.id == f.id).map(|c| f.change_line(c.from))
            })
            .collect()
    }
}

/// Remembers when each finding was first raised, across samples.
#[derive(Debug, Clone)]
pub struct FindingTracker {
    active: BTreeMap<&'static str, Tracked>,
    clear_after: u32,
}

impl Default for FindingTracker {
    fn default() -> Self {
        FindingTracker { active: BTreeMap::new(), clear_after: CLEAR_AFTER_ABSENT_SAMPLES }
    }
}

impl FindingTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that forgets a finding after `samples` samples without it (at least 1).
    pub fn with_clear_after(samples: u32) -> Self {
        FindingTracker { active: BTreeMap::new(), clear_after: samples.max(1) }
    }

    /// Takes this sample's findings; sets each one's `since_ms` to when it was first raised.
    pub fn update(&mut self, now_ms: u64, mut findings: Vec<Finding>) -> FindingsUpdate {
        let mut new = Vec::new();
        let mut changed = Vec::new();
        for f in &mut findings {
            match self.active.get_mut(f.id) {
                Some(t) => {
                    t.lower = if f.severity < t.severity { t.lower + 1 } else { 0 };
                    if f.severity > t.severity || t.lower >= self.clear_after {
                        changed.push(SeverityChange { id: f.id, from: t.severity, to: f.severity });
                        t.severity = f.severity;
                        t.lower = 0;
                    }
                    t.absent = 0;
                    f.since_ms = t.since_ms;
                }
                None => {
                    f.since_ms = now_ms;
                    self.active.insert(f.id, Tracked { since_ms: now_ms, severity: f.severity, absent: 0, lower: 0 });
                    new.push(f.id);
                }
            }
        }
        let mut cleared = Vec::new();
        for (id, t) in self.active.iter_mut() {
            if findings.iter().any(|f| f.id == *id) {
                continue;
            }
            t.absent += 1;
            if t.absent >= self.clear_after {
                cleared.push(*id);
            }
        }
        for id in &cleared {
            self.active.remove(id);
        }
        FindingsUpdate { findings, new, changed, cleared }
    }

    /// Forgets every finding (after a new baseline, for instance).
    pub fn reset(&mut self) {
        self.active.clear();
    }
}

/// The history, the rules and the tracker together: what the core runs per sample.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    history: History,
    tracker: FindingTracker,
    thresholds: Thresholds,
}

/// The diagnosis of one sample, as it goes into the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiagnosisReport {
    pub growth: Growth,
    #[serde(flatten)]
    pub update: FindingsUpdate,
}

impl Diagnosis {
    pub fn new(config: HistoryConfig) -> Self {
        Diagnosis { history: History::new(config), tracker: FindingTracker::new(), thresholds: Thresholds::default() }
    }

    /// A diagnosis whose rules, rate window and clearing use `thresholds`.
    pub fn with_thresholds(thresholds: Thresholds) -> Self {
        Diagnosis {
            history: History::new(thresholds.history_config()),
            tracker: FindingTracker::with_clear_after(thresholds.clear_after),
            thresholds,
        }
    }

    /// Adds the observation and runs the rules.
    pub fn observe(&mut self, obs: Observation) -> DiagnosisReport {
        let now = obs.epoch_ms;
        self.history.push(obs);
        let growth = self.history.growth();
        let findings = match self.history.latest() {
            Some(latest) => evaluate_with_thresholds(latest, &growth, &self.thresholds),
            None => Vec::new(),
        };
        let update = self.tracker.update(now, findings);
        DiagnosisReport { growth, update }
    }

    /// Measures growth from the latest observation on; findings about growth clear as they stop
    /// being raised.
    pub fn set_baseline(&mut self) {
        self.history.set_baseline();
    }

    pub fn history(&self) -> &History {
        &self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{CgroupState, CgroupVersion};
    use crate::observation::{BufferObs, MallocObs, NmtObs, ZipObs};

    const STEP_MS: u64 = 10_000;

    fn base(t_ms: u64, rss: u64) -> Observation {
        Observation {
            epoch_ms: t_ms,
            rss,
            allocator: "glibc".into(),
            nmt_mode: "summary".into(),
            ..Default::default()
        }
    }

    /// Growth of a history fed `n` observations 10 s apart, built by `f(i)`.
    fn run(n: u64, f: impl Fn(u64) -> Observation) -> (Observation, Growth) {
        let mut h = History::default();
        for i in 0..n {
            h.push(f(i));
        }
        let latest = h.latest().cloned().expect("latest");
        (latest, h.growth())
    }

    fn find<'a>(fs: &'a [Finding], id: &str) -> Option<&'a Finding> {
        fs.iter().find(|f| f.id == id)
    }

    fn ev<'a>(f: &'a Finding, key: &str) -> &'a Evidence {
        f.evidence.iter().find(|e| e.key == key).unwrap_or_else(|| panic!("no evidence {key} in {f:?}"))
    }

    fn glibc(rss: u64, retained: u64, arenas: u64) -> Observation {
        let mut o = base(0, rss);
        o.malloc = Some(MallocObs { arena_count: arenas, retained, in_use: rss / 4, trimmable_max: retained / 2, ..MallocObs::default() });
        o
    }

    #[test]
    fn formats_bytes_in_binary_units() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1023), "1023 B");
        assert_eq!(fmt_bytes(1024), "1.0 KiB");
        assert_eq!(fmt_bytes(1536), "1.5 KiB");
        assert_eq!(fmt_bytes(1_288_490_189), "1.2 GiB");
        assert_eq!(fmt_bytes(GIB - 1), "1.0 GiB");
        assert_eq!(fmt_bytes(u64::MAX), "16.0 EiB");
        assert_eq!(fmt_delta_bytes(-(300 * MIB as i64)), "-300.0 MiB");
        assert_eq!(fmt_delta_bytes(i64::MIN), "-8.0 EiB");
        assert_eq!(fmt_rate_bytes(360.0 * MIB as f64), "+360.0 MiB/h");
        assert_eq!(fmt_percent(0.345), "34.5%");
        assert_eq!(fmt_duration(45), "45 s");
        assert_eq!(fmt_duration(12 * 60 + 5), "12 min");
        assert_eq!(fmt_duration(3 * 3600 + 5 * 60), "3 h 05 min");
        assert_eq!(fmt_duration(2 * 86_400 + 4 * 3600), "2 d 4 h");
    }

    #[test]
    fn malloc_retention_raised_with_exact_numbers_and_remedies() {
        let (o, g) = run(1, |_| glibc(2 * GIB, 600 * MIB, 4));
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::MALLOC_RETENTION).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(ev(f, "retained").value, "600.0 MiB");
        assert_eq!(ev(f, "retained").raw, Some((600 * MIB) as f64));
        assert_eq!(ev(f, "retained_share_of_rss").value, "29.3%");
        assert!(f.remedy.contains("trim=auto"));
        assert!(f.remedy.contains("MALLOC_TRIM_THRESHOLD_=134217728"));
        assert!(f.remedy.contains("LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=background_thread:true"));
        assert!(f.remedy.contains("LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"));
    }

    #[test]
    fn malloc_retention_critical_and_jvm_trim_aware() {
        let (mut o, g) = run(1, |_| glibc(3 * GIB, 3 * GIB / 2, 4));
        o.jvm_trim_interval_ms = Some(5000);
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::MALLOC_RETENTION).expect("raised");
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.remedy.contains("-XX:TrimNativeHeapInterval=5000"), "{}", f.remedy);
        assert!(!f.remedy.contains("trim=auto"));
    }

    #[test]
    fn malloc_retention_not_raised_when_small_or_not_glibc() {
        for o in [
            glibc(4 * GIB, 200 * MIB, 4),  // below the absolute threshold
            glibc(8 * GIB, 300 * MIB, 4), // below 10% of RSS
        ] {
            let (o, g) = run(1, |_| o.clone());
            assert!(find(&evaluate_with(&o, &g), ids::MALLOC_RETENTION).is_none(), "{o:?}");
        }
        let mut je = glibc(2 * GIB, GIB, 4);
        je.allocator = "jemalloc".into();
        let (o, g) = run(1, |_| je.clone());
        assert!(find(&evaluate_with(&o, &g), ids::MALLOC_RETENTION).is_none());
    }

    #[test]
    fn arena_sprawl_raised_and_capped_processes_left_alone() {
        let (o, g) = run(1, |_| glibc(2 * GIB, 400 * MIB, 32));
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::ARENA_SPRAWL).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(ev(f, "arenas").value, "32");
        assert_eq!(ev(f, "malloc_arena_max").value, "unset");
        assert!(f.remedy.contains("MALLOC_ARENA_MAX=2"));
        assert!(f.remedy.contains("arenaMax=2"));

        let (o, g) = run(1, |_| glibc(2 * GIB, 40 * MIB, 12));
        assert_eq!(find(&evaluate_with(&o, &g), ids::ARENA_SPRAWL).map(|f| f.severity), Some(Severity::Info));

        // A default JVM's 16 arenas holding a little slack: no finding.
        let (o, g) = run(1, |_| glibc(GIB, 3 * MIB, 16));
        assert!(find(&evaluate_with(&o, &g), ids::ARENA_SPRAWL).is_none(), "16 arenas, 3 MiB free");

        let (o, g) = run(1, |_| glibc(2 * GIB, 400 * MIB, 8));
        assert!(find(&evaluate_with(&o, &g), ids::ARENA_SPRAWL).is_none(), "8 arenas is fine");

        let mut capped = glibc(2 * GIB, 400 * MIB, 3);
        capped.malloc_arena_max = Some("2".into());
        let (o, g) = run(1, |_| capped.clone());
        assert!(find(&evaluate_with(&o, &g), ids::ARENA_SPRAWL).is_none());

        // A cap set after the JVM had made its arenas (from premain) does not hold: still raised,
        // with the cap as evidence and the early agent as the remedy.
        let mut late = glibc(2 * GIB, 400 * MIB, 16);
        late.malloc_arena_max = Some("2".into());
        let (o, g) = run(1, |_| late.clone());
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::ARENA_SPRAWL).expect("a cap that does not hold");
        assert_eq!(ev(f, "malloc_arena_max").value, "2");
        assert!(f.remedy.contains("-agentpath:<library>=arenaMax=2"), "{}", f.remedy);
    }

    fn nmt_obs(i: u64, rss_step: u64, nmt_step: u64) -> Observation {
        let mut o = base(i * STEP_MS, GIB + i * rss_step);
        o.nmt = Some(NmtObs { committed: 500 * MIB + i * nmt_step, coverage: None, categories: BTreeMap::new() });
        o.parts.insert("malloc_arena".into(), 100 * MIB + i * rss_step);
        o.parts.insert("java_heap".into(), 512 * MIB);
        o
    }

    #[test]
    fn native_outside_nmt_raised_when_nmt_explains_little() {
        // RSS +5 MiB per sample, NMT +0.5 MiB: 10% coverage, 295 MiB over 60 samples.
        let (o, g) = run(60, |i| nmt_obs(i, 5 * MIB, MIB / 2));
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::NATIVE_OUTSIDE_NMT).expect("raised");
        assert_eq!(ev(f, "rss_growth").value, "+295.0 MiB");
        assert_eq!(ev(f, "nmt_coverage").value, "10.0%");
        assert_eq!(ev(f, "nmt_committed_growth").raw, Some((59 * MIB / 2) as f64));
        assert!(ev(f, "grew_most").value.starts_with("malloc_arena +295.0 MiB"));
        assert!(f.remedy.contains("MALLOC_CONF=prof:true"));
        assert!(find(&fs, ids::NMT_OFF).is_none());
    }

    #[test]
    fn native_outside_nmt_not_raised_when_covered_or_small() {
        let (o, g) = run(60, |i| nmt_obs(i, 5 * MIB, 4 * MIB));
        assert!(find(&evaluate_with(&o, &g), ids::NATIVE_OUTSIDE_NMT).is_none(), "80% covered");
        let (o, g) = run(60, |i| nmt_obs(i, MIB, 0));
        assert!(find(&evaluate_with(&o, &g), ids::NATIVE_OUTSIDE_NMT).is_none(), "59 MiB is small");
    }

    /// A native site of the sampler's report, `live` bytes.
    fn native_site(id: u64, label: &str, live: u64) -> crate::observation::NativeSite {
        crate::observation::NativeSite {
            id,
            label: label.into(),
            native: vec![format!("{} +0x2a", label.split(" <- ").next().unwrap_or(label))],
            java: vec!["LeakyCache.put(LeakyCache.java:12)".into()],
            thread: Some("worker-3".into()),
            live_bytes: live,
            ..Default::default()
        }
    }

    const LEAK_LABEL: &str = "libleak.so leak_into_cache <- LeakyCache.put";
    const CACHE_LABEL: &str = "libz.so.1 inflateInit2_ <- java.util.zip.Inflater.init";

    /// `nmt_obs` with the sampler on: a site growing 2 MiB/s, one flat at 40 MiB (its estimate
    /// wandering by a sampling interval), and a libjvm site NMT already counts.
    fn native_run() -> (Observation, Growth) {
        run(60, |i| {
            let mut o = nmt_obs(i, 20 * MIB, MIB / 2);
            let leak = 100 * MIB + i * (STEP_MS / 1000) * 2 * MIB;
            let flat = if i % 2 == 0 { 40 * MIB + 512 * KIB } else { 40 * MIB - 512 * KIB };
            o.native_sites = Some(crate::observation::NativeSitesObs {
                since_ms: 1,
                sample_bytes: 512 * KIB,
                live_bytes: leak + flat,
                growth_bytes: (leak - 100 * MIB) as i64,
                sites: vec![
                    native_site(3, LEAK_LABEL, leak),
                    native_site(7, CACHE_LABEL, flat),
                    native_site(8, "libjvm.so os::malloc", 900 * MIB),
                ],
                ..Default::default()
            });
            o
        })
    }

    #[test]
    fn native_outside_nmt_names_the_growing_native_site() {
        let (o, g) = native_run();
        let f = find(&evaluate_with(&o, &g), ids::NATIVE_OUTSIDE_NMT).cloned().expect("raised");
        let live = 100 * MIB + 59 * 10 * 2 * MIB;
        assert_eq!(ev(&f, "site_1").value, format!("{LEAK_LABEL}: {} live, +2.0 MiB/s", fmt_bytes(live)));
        assert_eq!(ev(&f, "site_1_live").raw, Some(live as f64));
        let per_hour = ev(&f, "site_1_rate").raw.expect("rate");
        let want = 2.0 * MIB as f64 * 3600.0;
        assert!((per_hour - want).abs() < want * 0.01, "{per_hour} vs {want}");
        assert_eq!(ev(&f, "site_1_thread").value, "worker-3");
        // The flat site is named by its size but not called growing.
        assert_eq!(ev(&f, "site_2").value, format!("{CACHE_LABEL}: 39.5 MiB live, not growing"));
        assert!(ev(&f, "site_2_rate").raw.expect("rate").abs() < NATIVE_SITE_GROWTH_MIN_PER_HOUR);
        assert!(f.evidence.iter().all(|e| !e.value.contains("libjvm.so")), "NMT counts libjvm's own: {f:?}");
        assert!(f.remedy.starts_with(&format!("The malloc call site that grows most: {LEAK_LABEL}, {} live and +2.0 MiB/s (thread worker-3)", fmt_bytes(live))), "{}", f.remedy);
        assert!(f.remedy.contains("LeakyCache.put(LeakyCache.java:12)"), "{}", f.remedy);
        assert!(!f.remedy.contains(NATIVE_SITES_OPTION));
    }

    #[test]
    fn native_outside_nmt_with_only_flat_sites_names_none_growing() {
        let (mut o, g) = native_run();
        if let Some(n) = o.native_sites.as_mut() {
            n.sites.retain(|s| s.id == 7);
        }
        let f = find(&evaluate_with(&o, &g), ids::NATIVE_OUTSIDE_NMT).cloned().expect("raised");
        assert!(ev(&f, "site_1").value.ends_with("not growing"), "{f:?}");
        assert!(f.remedy.starts_with("No sampled malloc call site grows"), "{}", f.remedy);
    }

    #[test]
    fn native_outside_nmt_without_native_sites_suggests_them() {
        let (o, g) = run(60, |i| nmt_obs(i, 5 * MIB, MIB / 2));
        let f = find(&evaluate_with(&o, &g), ids::NATIVE_OUTSIDE_NMT).cloned().expect("raised");
        assert!(f.evidence.iter().all(|e| !e.key.starts_with("site_") && !e.key.starts_with("native_sites")), "{f:?}");
        assert!(f.remedy.contains("MALLOC_CONF=prof:true"));
        assert!(f.remedy.ends_with(
            "Or let the agent sample malloc's call sites, and this finding name the ones that grow: start it with \
             nativeSites=on, or on the running JVM `java -jar offheap-doctor.jar <pid> sites start`."
        ), "{}", f.remedy);
        assert_eq!(f.remedy.matches(NATIVE_SITES_OPTION).count(), 1);
    }

    #[test]
    fn site_rates_read_per_second_or_per_hour() {
        assert_eq!(fmt_site_rate(5.0 * MIB as f64 * 3600.0), "+5.0 MiB/s");
        assert_eq!(fmt_site_rate(-2.0 * KIB as f64 * 3600.0), "-2.0 KiB/s");
        assert_eq!(fmt_site_rate(360.0 * KIB as f64), "+360.0 KiB/h");
    }

    #[test]
    fn native_outside_nmt_falls_back_to_the_samples_coverage() {
        // The baseline had no NMT numbers (say its read failed): the sample's coverage decides.
        let (mut o, g) = run(60, |i| {
            let mut o = nmt_obs(i, 5 * MIB, 0);
            if i == 0 {
                o.nmt = None;
            }
            o
        });
        if let Some(n) = o.nmt.as_mut() {
            n.coverage = Some(0.05);
        }
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::NATIVE_OUTSIDE_NMT).expect("raised");
        assert_eq!(ev(&f, "nmt_coverage").value, "5.0%");
    }

    #[test]
    fn nmt_off_is_info_with_the_flag() {
        let mut o = base(0, GIB);
        o.nmt_mode = "off".into();
        o.heap_committed = Some(256 * MIB);
        let (o, g) = run(1, |_| o.clone());
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::NMT_OFF).expect("raised");
        assert_eq!(f.severity, Severity::Info);
        assert!(f.remedy.contains("-XX:NativeMemoryTracking=summary"));
        assert_eq!(ev(f, "outside_java_heap").value, "768.0 MiB");
        let (o, g) = run(1, |_| base(0, GIB));
        assert!(find(&evaluate_with(&o, &g), ids::NMT_OFF).is_none());
    }

    fn zip(alive: u64, pending: u64) -> Observation {
        let mut o = base(0, GIB);
        o.zip = Some(ZipObs {
            inflaters_alive: alive,
            inflaters_pending: pending,
            deflaters_alive: 0,
            deflaters_pending: 0,
            estimated_native_bytes: (alive + pending) * 40 * KIB,
            ..Default::default()
        });
        o
    }

    /// `n` samples 10 s apart of `alive(i)` live Inflaters (none pending).
    fn zip_run(n: u64, alive: impl Fn(u64) -> u64) -> (Observation, Growth) {
        run(n, |i| {
            let mut o = zip(alive(i), 0);
            o.epoch_ms = i * STEP_MS;
            o
        })
    }

    #[test]
    fn zip_unclosed_never_claims_more_than_the_memory_outside_the_heap() {
        // 4000 streams at the used-stream constant would be 156 MiB; the process holds 100 MiB
        // outside its heap, so that is the most the finding may say they hold.
        let (o, g) = run(1, |_| {
            let mut o = zip(4000, 0);
            o.rss = 164 * MIB;
            o.parts.insert("java_heap".into(), 64 * MIB);
            o
        });
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(ev(f, "estimated_native").value, "100.0 MiB");
        assert_eq!(ev(f, "estimated_native_by_constants").value, "156.2 MiB");
        assert!(f.title.contains("hold about 100.0 MiB"), "{}", f.title);
    }

    #[test]
    fn zip_unclosed_a_steady_population_is_info() {
        // One sample: no rate, nothing says it grows.
        let (o, g) = run(1, |_| zip(1000, 0));
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(
            f.title,
            "1000 live Inflaters/Deflaters hold about 39.1 MiB of native zlib memory; too soon to say whether the count still grows"
        );
        assert_eq!(ev(f, "inflaters_alive").value, "1000");
        assert_eq!(ev(f, "estimated_native").value, "39.1 MiB");
        // A pool of 30000 made at once and kept for 10 min, streams replaced (the count moves by a
        // few): info, however much it holds.
        let (o, g) = zip_run(60, |i| if i < 2 { 3 } else { 30_000 + (i * 7) % 5 });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        assert!(f.title.contains("holds steady"), "{}", f.title);
        assert!(f.remedy.starts_with("Nothing to fix while the count holds steady"), "{}", f.remedy);
        assert_eq!(ev(&f, "unended_rate").raw, Some(0.0));
    }

    #[test]
    fn zip_unclosed_growth_over_the_window_is_the_warning() {
        // +10 unended per 10 s (3600/h) for 10 min.
        let (o, g) = zip_run(60, |i| 200 + 10 * i);
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.title, "790 Inflaters/Deflaters are not ended and hold about 30.9 MiB of native zlib memory, +3600/h");
        assert_eq!(ev(&f, "unended_rate").value, "+3600/h");
        assert_eq!(ev(&f, "unended_recent_rate").value, "+3600/h");
        assert!(f.remedy.contains("try-with-resources"));
        assert!(!f.remedy.contains("Cleaner"), "no pending: no Cleaner advice");
        // Growing and past zipNativeCritical: critical.
        let (o, g) = zip_run(60, |i| 30_000 + 100 * i);
        assert_eq!(find(&evaluate_with(&o, &g), ids::ZIP_UNCLOSED).map(|f| f.severity), Some(Severity::Critical));
        // Growth that stopped: the later half of the window is flat, info again.
        let (o, g) = zip_run(180, |i| 200 + 10 * i.min(60));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Info, "{f:?}");
        // Slower than zipGrowthMin (60/h): +1 per 2 min is 30/h.
        let (o, g) = zip_run(180, |i| 200 + i / 12);
        assert_eq!(find(&evaluate_with(&o, &g), ids::ZIP_UNCLOSED).map(|f| f.severity), Some(Severity::Info));
    }

    #[test]
    fn zip_unclosed_estimated_bytes_that_grow_are_the_warning() {
        // The count holds while Deflaters replace Inflaters: 40 KiB each become 262 KiB each, +10
        // per 10 s is 780.5 MiB/h.
        let (o, g) = run(60, |i| {
            let mut o = zip(1000 - 10 * i, 0);
            o.epoch_ms = i * STEP_MS;
            if let Some(z) = o.zip.as_mut() {
                z.deflaters_alive = 10 * i;
                z.estimated_native_bytes = (1000 - 10 * i) * 40 * KIB + 10 * i * 262 * KIB;
            }
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Warning, "{f:?}");
        assert_eq!(ev(&f, "unended_rate").raw, Some(0.0));
        assert!(ev(&f, "estimated_native_rate").raw.is_some_and(|r| r > 16.0 * MIB as f64));
        assert!(f.title.ends_with("of native zlib memory, +780.5 MiB/h"), "{}", f.title);
    }

    #[test]
    fn zip_unclosed_streams_left_to_the_gc_are_the_warning_at_once() {
        let (o, g) = run(1, |_| zip(10, 500));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.title.starts_with("500 Inflaters/Deflaters were dropped without end()"), "{}", f.title);
        assert!(f.remedy.contains("500 of them are already unreachable and wait for the Cleaner"));
        // Few in number but many waiting: still raised.
        let (o, g) = run(1, |_| zip(3, 40));
        assert_eq!(find(&evaluate_with(&o, &g), ids::ZIP_UNCLOSED).map(|f| f.severity), Some(Severity::Warning));

        // Streams only a finalizer releases count among the unended ones; queued ones are waiting.
        let (o, g) = run(1, |_| {
            let mut o = zip(2, 0);
            if let Some(z) = o.zip.as_mut() {
                z.finalizable = 500;
                z.finalizable_pending = 200;
                z.estimated_native_bytes = 502 * 40 * KIB;
            }
            o
        });
        let fs = evaluate_with(&o, &g);
        let f = find(&fs, ids::ZIP_UNCLOSED).expect("raised for finalizable streams");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.title.starts_with("200 Inflaters/Deflaters were dropped without end()"), "{}", f.title);
        assert!(f.title.contains("(502 unended hold about 19.6 MiB)"), "{}", f.title);
        assert_eq!(ev(f, "finalizable").value, "500");
        assert!(f.remedy.contains("500 of them are released by a finalizer"), "{}", f.remedy);
        // Finalizable but none queued: a population like any other.
        let (o, g) = run(1, |_| {
            let mut o = zip(2, 0);
            if let Some(z) = o.zip.as_mut() {
                z.finalizable = 500;
                z.estimated_native_bytes = 502 * 40 * KIB;
            }
            o
        });
        assert_eq!(find(&evaluate_with(&o, &g), ids::ZIP_UNCLOSED).map(|f| f.severity), Some(Severity::Info));
    }

    #[test]
    fn zip_unclosed_not_raised_for_the_jdks_cached_inflaters() {
        for (alive, pending) in [(3, 0), (2, 1), (40, 10), (3, 31)] {
            let (o, g) = run(1, |_| zip(alive, pending));
            assert!(find(&evaluate_with(&o, &g), ids::ZIP_UNCLOSED).is_none(), "{alive}+{pending}");
        }
        let (o, g) = run(1, |_| base(0, GIB));
        assert!(find(&evaluate_with(&o, &g), ids::ZIP_UNCLOSED).is_none(), "no census");
    }

    fn direct(i: u64, used: u64) -> Observation {
        let mut o = base(i * STEP_MS, 4 * GIB);
        o.direct_buffers = Some(BufferObs { count: 100 + i, used });
        o
    }

    #[test]
    fn direct_buffers_raised_when_large_share_or_growing() {
        let (o, g) = run(1, |_| direct(0, 1536 * MIB));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::DIRECT_BUFFERS).expect("large share");
        assert!(f.remedy.contains("-XX:MaxDirectMemorySize=2304m"), "{}", f.remedy);
        assert!(f.remedy.contains("-Djdk.nio.maxCachedBufferSize=262144"));
        // 300 MiB of 4 GiB is 7%, but +1 MiB per 10 s is 360 MiB/h.
        let (o, g) = run(60, |i| direct(i, 300 * MIB + i * MIB));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::DIRECT_BUFFERS).expect("growing");
        assert_eq!(ev(&f, "direct_rate").value, "+360.0 MiB/h");
    }

    /// The `sites` part of a report line with sites on, as `Core::sample` receives it.
    fn sites_json() -> serde_json::Value {
        serde_json::json!({
            "status": "on", "direct_sample_bytes": 262144,
            "direct": [
                {"site": "com.acme.Cache.fill(Cache.java:41)", "via": "java.nio.ByteBuffer.allocateDirect",
                 "frames": ["com.acme.Cache.fill(Cache.java:41)"], "live_bytes": 900 * MIB, "growth_bytes": 10 * MIB,
                 "sampled_buffers": 40},
                {"site": "com.acme.Net.read(Net.java:12)", "frames": [], "live_bytes": 500 * MIB,
                 "growth_bytes": 400 * MIB, "sampled_buffers": 30},
                {"site": "other", "sites": 3, "live_bytes": 4 * MIB, "sampled_buffers": 2}],
            "threads": [
                {"site": "com.acme.Pool.init(Pool.java:9)", "frames": [], "alive": 300, "growth": 0,
                 "names": [{"pattern": "pool-*-thread-*", "alive": 300}]},
                {"site": "com.acme.Server.accept(Server.java:77)", "via": "java.lang.Thread.start", "frames": [],
                 "alive": 180, "growth": 170, "names": [{"pattern": "idle", "alive": 5}, {"pattern": "worker-*", "alive": 175}]},
                {"site": "other", "sites": 2, "alive": 5}],
            "threads_untracked": 14,
            "zip": [
                {"site": "com.acme.Ingest.read(Ingest.java:88)", "via": "java.util.zip.GZIPInputStream.<init>",
                 "frames": [], "kind": "inflater", "alive": 1409, "pending": 3},
                {"site": "com.acme.Pack.write(Pack.java:20)", "frames": [], "kind": "deflater", "alive": 10, "pending": 0},
                {"site": "com.acme.Jar.open(Jar.java:3)", "via": "java.util.zip.ZipFile$ZipFileInflaterInputStream.<init>",
                 "frames": [], "kind": "inflater", "alive": 4, "pending": 0},
                {"site": "com.acme.Tiny.x(Tiny.java:1)", "frames": [], "kind": "inflater", "alive": 1, "pending": 0},
                {"site": "other", "sites": 4, "alive": 2, "pending": 0}]
        })
    }

    fn with_sites(mut o: Observation, sites: &serde_json::Value) -> Observation {
        o.sites = SitesObs::from_report(sites);
        o
    }

    #[test]
    fn zip_unclosed_names_the_top_sites_and_the_first_in_its_remedy() {
        let sites = sites_json();
        let (o, g) = run(60, |i| {
            let mut o = with_sites(zip(1000 + 10 * i, 0), &sites);
            o.epoch_ms = i * STEP_MS;
            o
        });
        let z = o.zip.expect("zip");
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(ev(&f, "site_1").value, "com.acme.Ingest.read(Ingest.java:88)");
        assert_eq!(ev(&f, "site_1_via").value, "java.util.zip.GZIPInputStream.<init>");
        assert_eq!(ev(&f, "site_1_unended").raw, Some(1412.0));
        // 1,412 Inflaters at 40 KiB each, the estimate being by the constants here.
        assert_eq!(ev(&f, "site_1_estimated").raw, Some((1412 * 40 * KIB) as f64));
        assert_eq!(ev(&f, "site_2").value, "com.acme.Pack.write(Pack.java:20)");
        assert_eq!(ev(&f, "site_2_estimated").raw, Some((10 * 262 * KIB) as f64));
        assert_eq!(ev(&f, "site_3").value, "com.acme.Jar.open(Jar.java:3)");
        assert!(f.evidence.iter().all(|e| e.key != "site_4" && e.value != "com.acme.Tiny.x(Tiny.java:1)"), "{f:?}");
        assert!(
            f.remedy.starts_with(
                "Close the GZIPInputStream created at com.acme.Ingest.read(Ingest.java:88): 1,412 unended, about 55.2 MiB. Close every stream"
            ),
            "{}",
            f.remedy
        );
        assert!(z.estimated_native_bytes > 0);
    }

    #[test]
    fn zip_site_owners_are_the_jdk_streams_or_the_inflater_itself() {
        assert_eq!(zip_owner(Some("java.util.zip.GZIPOutputStream.<init>"), true), "the GZIPOutputStream");
        assert_eq!(zip_owner(Some("java.util.zip.ZipFile$ZipFileInflaterInputStream.<init>"), false), "the ZipFile");
        assert_eq!(zip_owner(Some("java.util.zip.Inflater.<init>"), false), "the Inflater");
        assert_eq!(zip_owner(Some("com.acme.Codec.<init>"), true), "the Deflater");
        assert_eq!(zip_owner(None, false), "the Inflater");
        assert_eq!(verb_for("the Deflater"), "end");
        assert_eq!((fmt_thousands(1412), fmt_thousands(999), fmt_thousands(1_000_000)), ("1,412".into(), "999".into(), "1,000,000".into()));
    }

    #[test]
    fn zip_unclosed_steady_pool_names_its_site_and_stays_info() {
        let sites = serde_json::json!({"status": "on", "direct": [], "threads": [], "zip": [
            {"site": "com.acme.Conn.open(Conn.java:30)", "via": "java.util.zip.DeflaterOutputStream.<init>",
             "kind": "deflater", "alive": 200, "pending": 0}]});
        let (o, g) = run(60, |i| {
            let mut o = with_sites(zip(200, 0), &sites);
            o.epoch_ms = i * STEP_MS;
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::ZIP_UNCLOSED).expect("raised");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(ev(&f, "site_1").value, "com.acme.Conn.open(Conn.java:30)");
        assert!(f.remedy.starts_with("Nothing to fix"), "{}", f.remedy);
    }

    #[test]
    fn findings_without_sites_are_unchanged() {
        let sites = sites_json();
        type Make = Box<dyn Fn(u64) -> Observation>;
        let cases: Vec<(&str, Make)> = vec![
            (ids::ZIP_UNCLOSED, Box::new(|i| {
                let mut o = zip(1000 + 10 * i, 0);
                o.epoch_ms = i * STEP_MS;
                o
            })),
            (ids::DIRECT_BUFFERS, Box::new(|i| direct(i, 300 * MIB + i * MIB))),
            (ids::THREAD_GROWTH, Box::new(|i| {
                let mut o = base(i * STEP_MS, GIB);
                o.java_threads = Some(50 + 3 * i);
                o
            })),
        ];
        for (id, make) in cases {
            let (o, g) = run(60, &make);
            let plain = find(&evaluate_with(&o, &g), id).expect("raised").clone();
            for off in [serde_json::json!({"status": "off"}), serde_json::json!({"status": "unavailable", "problem": "x"}),
                        serde_json::json!({"status": "on", "direct": [], "threads": [], "zip": []})] {
                let (o, g) = run(60, |i| with_sites(make(i), &off));
                assert_eq!(find(&evaluate_with(&o, &g), id), Some(&plain), "{id} with {off}");
            }
            assert!(!plain.evidence.iter().any(|e| e.key.starts_with("site") || e.key.starts_with("top_")), "{plain:?}");
            // With sites on the same finding names code.
            let (o, g) = run(60, |i| with_sites(make(i), &sites));
            let named = find(&evaluate_with(&o, &g), id).expect("raised").clone();
            assert_eq!((named.severity, &named.title), (plain.severity, &plain.title));
            assert!(named.remedy.contains("com.acme."), "{}", named.remedy);
        }
    }

    #[test]
    fn direct_buffers_names_the_sites_and_the_growing_one_in_its_remedy() {
        let sites = sites_json();
        let (o, g) = run(60, |i| with_sites(direct(i, 300 * MIB + i * MIB), &sites));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::DIRECT_BUFFERS).expect("raised");
        assert_eq!(ev(&f, "site_1").value, "com.acme.Cache.fill(Cache.java:41)");
        assert_eq!(ev(&f, "site_1_via").value, "java.nio.ByteBuffer.allocateDirect");
        assert_eq!(ev(&f, "site_1_live").value, "900.0 MiB");
        assert_eq!(ev(&f, "site_2").value, "com.acme.Net.read(Net.java:12)");
        assert_eq!(ev(&f, "site_2_growth").value, "+400.0 MiB");
        assert!(f.evidence.iter().all(|e| e.key != "site_3"), "other is no site: {f:?}");
        assert!(
            f.remedy.starts_with(
                "Release or reuse the direct buffers allocated at com.acme.Net.read(Net.java:12): about 500.0 MiB live, +400.0 MiB since the baseline."
            ),
            "{}",
            f.remedy
        );
    }

    #[test]
    fn thread_growth_names_the_creating_site_and_its_name_pattern() {
        let sites = sites_json();
        let (o, g) = run(60, |i| {
            let mut o = with_sites(base(i * STEP_MS, GIB), &sites);
            o.java_threads = Some(50 + 3 * i);
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::THREAD_GROWTH).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        // The site that grew, not the larger steady pool.
        assert_eq!(ev(&f, "top_site").value, "com.acme.Server.accept(Server.java:77)");
        assert_eq!(ev(&f, "top_site_growth").raw, Some(170.0));
        assert_eq!(ev(&f, "top_site_alive").raw, Some(180.0));
        assert_eq!((ev(&f, "top_name_pattern").value.as_str(), ev(&f, "top_name_pattern").raw), ("worker-*", Some(175.0)));
        assert!(
            f.remedy.starts_with("Most of them are started at com.acme.Server.accept(Server.java:77) (named worker-*): 180 alive, +170"),
            "{}",
            f.remedy
        );
    }

    #[test]
    fn direct_buffers_not_raised_when_small_or_flat() {
        let (o, g) = run(60, |i| direct(i, 150 * MIB + i * MIB));
        assert!(find(&evaluate_with(&o, &g), ids::DIRECT_BUFFERS).is_none(), "below 256 MiB");
        let (o, g) = run(60, |i| direct(i, 400 * MIB));
        assert!(find(&evaluate_with(&o, &g), ids::DIRECT_BUFFERS).is_none(), "10% and flat");
    }

    #[test]
    fn thread_growth_raised_when_threads_keep_coming() {
        let (o, g) = run(60, |i| {
            let mut o = base(i * STEP_MS, GIB);
            o.java_threads = Some(50 + 3 * i);
            o.os_threads = Some(70 + 3 * i);
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::THREAD_GROWTH).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(ev(&f, "java_threads").value, "50 -> 227");
        assert_eq!(ev(&f, "thread_rate").value, "+1080.0/h");
        assert!(f.remedy.contains("Thread.print"));
    }

    #[test]
    fn thread_growth_that_stops_at_a_plateau_is_info() {
        // 150 threads started at once, then flat: the delta is there, the rate is not.
        let (o, g) = run(60, |i| {
            let mut o = base(i * STEP_MS, GIB);
            o.java_threads = Some(if i < 3 { 20 } else { 170 });
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::THREAD_GROWTH).expect("info");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.title, "150 more threads than at the baseline; the count has stopped growing");
        assert!(f.remedy.starts_with("Nothing to fix while the count holds"), "{}", f.remedy);
        // An executor that fills up over 12 min (+2 per 10 s) and then holds for 18 min: over the
        // 30 min window the median slope still says growth, its later half does not.
        let (o, g) = run(181, |i| {
            let mut o = base(i * STEP_MS, GIB);
            o.java_threads = Some(20 + 2 * i.min(72));
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::THREAD_GROWTH).expect("info");
        assert!(ev(&f, "thread_rate").raw.is_some_and(|r| r >= THREAD_RATE_MIN_PER_HOUR), "{f:?}");
        assert_eq!(ev(&f, "thread_recent_rate").raw, Some(0.0));
        assert_eq!(f.severity, Severity::Info);
        // Before any rate: info, and it says why.
        let (o, g) = run(2, |i| {
            let mut o = base(i * STEP_MS, GIB);
            o.java_threads = Some(20 + 200 * i);
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::THREAD_GROWTH).expect("info");
        assert_eq!(f.severity, Severity::Info);
        assert!(f.title.ends_with("too soon to say whether it still grows"), "{}", f.title);
    }

    #[test]
    fn metaspace_growth_raised_and_not() {
        let (o, g) = run(60, |i| {
            let mut o = base(i * STEP_MS, GIB);
            o.metaspace = Some(50 * MIB + i * 2 * MIB);
            o
        });
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::METASPACE_GROWTH).expect("raised");
        assert_eq!(ev(&f, "metaspace_growth").value, "+118.0 MiB");
        assert!(f.remedy.contains("-XX:MaxMetaspaceSize="));
        let (o, g) = run(60, |i| {
            let mut o = base(i * STEP_MS, GIB);
            o.metaspace = Some(50 * MIB + i * MIB / 4);
            o
        });
        assert!(find(&evaluate_with(&o, &g), ids::METASPACE_GROWTH).is_none(), "14.75 MiB");
    }

    fn in_cgroup(i: u64, usage: u64, limit: Option<u64>) -> Observation {
        let mut o = base(i * STEP_MS, usage);
        o.cgroup = Some(CgroupState {
            version: Some(CgroupVersion::V2),
            path: "/".into(),
            limit,
            usage: Some(usage),
            inactive_file: Some(0),
            oom_kills: Some(2),
            ..Default::default()
        });
        o.heap_max = Some(GIB);
        o
    }

    #[test]
    fn heap_headroom_raised_when_max_heap_plus_native_exceeds_the_limit() {
        let (mut o, g) = run(3, |i| in_cgroup(i, GIB, Some(2 * GIB)));
        o.heap_max = Some(1536 * MIB);
        o.parts.insert("java_heap".into(), 256 * MIB);
        o.rss = GIB;
        // 1.5 GiB heap + 768 MiB outside it > 2 GiB.
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::HEAP_HEADROOM).expect("raised");
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.remedy.contains("-Xmx"), "{}", f.remedy);
        o.heap_max = Some(512 * MIB);
        assert!(evaluate_with(&o, &g).iter().all(|f| f.id != ids::HEAP_HEADROOM));
    }

    #[test]
    fn oom_risk_critical_under_an_hour() {
        // 2 GiB limit, 1 GiB used, +5 MiB per 10 s = 1800 MiB/h: about 34 min left.
        let (o, g) = run(60, |i| in_cgroup(i, GIB + i * 5 * MIB, Some(2 * GIB)));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::OOM_RISK).expect("raised");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(ev(&f, "time_to_limit").value, "24 min");
        assert_eq!(ev(&f, "oom_kills_so_far").value, "2");
        assert!(f.title.contains("2.0 GiB limit in 24 min"), "{}", f.title);
        assert!(f.remedy.contains("MaxRAMPercentage"));
    }

    #[test]
    fn oom_risk_warning_within_a_day_and_near_the_limit() {
        // +0.1 MiB per 10 s = 36 MiB/h with 512 MiB left: about 14 h.
        let (o, g) = run(60, |i| in_cgroup(i, 1536 * MIB + i * MIB / 10, Some(2 * GIB)));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::OOM_RISK).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        // Flat at 95% of the limit: a warning without a rate.
        let (o, g) = run(60, |i| in_cgroup(i, 1946 * MIB, Some(2 * GIB)));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::OOM_RISK).expect("raised");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.title.contains("95.0%"), "{}", f.title);
    }

    #[test]
    fn oom_risk_not_raised_without_limit_or_far_away() {
        let (o, g) = run(60, |i| in_cgroup(i, GIB + i * 5 * MIB, None));
        assert!(find(&evaluate_with(&o, &g), ids::OOM_RISK).is_none(), "no limit");
        // 36 MiB/h with 15 GiB left: days.
        let (o, g) = run(60, |i| in_cgroup(i, GIB + i * MIB / 10, Some(16 * GIB)));
        assert!(find(&evaluate_with(&o, &g), ids::OOM_RISK).is_none());
        // Shrinking.
        let (o, g) = run(60, |i| in_cgroup(i, GIB - i * MIB, Some(2 * GIB)));
        assert!(find(&evaluate_with(&o, &g), ids::OOM_RISK).is_none());
    }

    #[test]
    fn heap_not_the_problem_raised_and_not() {
        let (o, g) = run(60, |i| nmt_obs(i, 5 * MIB, 4 * MIB));
        let f = evaluate_with(&o, &g).into_iter().find(|f| f.id == ids::HEAP_NOT_THE_PROBLEM).expect("raised");
        assert_eq!(ev(&f, "heap_growth").value, "0 B");
        let (o, g) = run(60, |i| {
            let mut o = nmt_obs(i, 5 * MIB, 4 * MIB);
            o.parts.insert("java_heap".into(), 512 * MIB + i * 4 * MIB);
            o
        });
        assert!(find(&evaluate_with(&o, &g), ids::HEAP_NOT_THE_PROBLEM).is_none(), "the heap grew too");
    }

    #[test]
    fn findings_come_most_severe_first() {
        let mut o = glibc(3 * GIB, 3 * GIB / 2, 32);
        o.nmt_mode = "off".into();
        let (o, g) = run(1, |_| o.clone());
        let sev: Vec<Severity> = evaluate_with(&o, &g).iter().map(|f| f.severity).collect();
        assert!(sev.windows(2).all(|w| w[0] >= w[1]), "{sev:?}");
        assert_eq!(sev.first(), Some(&Severity::Critical));
    }

    fn finding(id: &'static str, severity: Severity, t: u64) -> Finding {
        Finding::new(id, severity, String::new(), t)
    }

    #[test]
    fn tracker_keeps_since_and_reports_new_once() {
        let mut t = FindingTracker::new();
        let u = t.update(1000, vec![finding(ids::ZIP_UNCLOSED, Severity::Warning, 1000)]);
        assert_eq!(u.new, vec![ids::ZIP_UNCLOSED]);
        assert_eq!(u.to_log().count(), 1);
        let u = t.update(2000, vec![finding(ids::ZIP_UNCLOSED, Severity::Warning, 2000)]);
        assert!(u.new.is_empty());
        assert_eq!(u.findings[0].since_ms, 1000);
        assert_eq!(u.to_log().count(), 0);
        let u = t.update(3000, vec![finding(ids::ZIP_UNCLOSED, Severity::Critical, 3000)]);
        assert_eq!(u.changed, vec![SeverityChange { id: ids::ZIP_UNCLOSED, from: Severity::Warning, to: Severity::Critical }]);
        assert!(u.new.is_empty());
        assert_eq!(u.findings[0].since_ms, 1000);
        assert_eq!(u.to_log().count(), 1);
        let lines = u.log_lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("[critical] zip-unclosed: warning -> critical: "), "{lines:?}");
    }

    #[test]
    fn a_severity_change_is_an_event_once_and_a_fall_only_when_it_holds() {
        let mut t = FindingTracker::new();
        let zip = |s| vec![finding(ids::ZIP_UNCLOSED, s, 0)];
        let u = t.update(1000, zip(Severity::Info));
        assert_eq!((u.new.len(), u.changed.len()), (1, 0));
        let u = t.update(2000, zip(Severity::Warning));
        assert_eq!(u.changed, vec![SeverityChange { id: ids::ZIP_UNCLOSED, from: Severity::Info, to: Severity::Warning }]);
        assert!(t.update(3000, zip(Severity::Warning)).changed.is_empty(), "announced once");
        // Flapping down and back up within fewer samples than clearAfter: nothing to announce.
        assert!(t.update(4000, zip(Severity::Info)).changed.is_empty());
        assert!(t.update(5000, zip(Severity::Info)).changed.is_empty());
        assert!(t.update(6000, zip(Severity::Warning)).changed.is_empty(), "back to what was announced");
        // A fall that holds for clearAfter (3) samples is announced, once.
        assert!(t.update(7000, zip(Severity::Info)).changed.is_empty());
        assert!(t.update(8000, zip(Severity::Info)).changed.is_empty());
        let u = t.update(9000, zip(Severity::Info));
        assert_eq!(u.changed, vec![SeverityChange { id: ids::ZIP_UNCLOSED, from: Severity::Warning, to: Severity::Info }]);
        assert_eq!(u.log_lines(), vec![format!("[info] zip-unclosed: warning -> info:  ()")]);
        assert!(t.update(10_000, zip(Severity::Info)).changed.is_empty());
        let v = serde_json::to_value(u.changed[0]).expect("json");
        assert_eq!(v, serde_json::json!({"id": "zip-unclosed", "from": "warning", "to": "info"}));
    }

    #[test]
    fn tracker_survives_flapping_and_clears_after_absence() {
        let mut t = FindingTracker::new();
        t.update(1000, vec![finding(ids::OOM_RISK, Severity::Warning, 1000)]);
        t.update(2000, vec![]);
        let u = t.update(3000, vec![finding(ids::OOM_RISK, Severity::Warning, 3000)]);
        assert!(u.new.is_empty(), "back after one gap: not new");
        assert_eq!(u.findings[0].since_ms, 1000);
        t.update(4000, vec![]);
        t.update(5000, vec![]);
        let u = t.update(6000, vec![]);
        assert_eq!(u.cleared, vec![ids::OOM_RISK]);
        let u = t.update(7000, vec![finding(ids::OOM_RISK, Severity::Warning, 7000)]);
        assert_eq!(u.new, vec![ids::OOM_RISK]);
        assert_eq!(u.findings[0].since_ms, 7000);
    }

    #[test]
    fn thresholds_parse_from_the_init_config_by_their_option_names() {
        let t: Thresholds =
            serde_json::from_str(r#"{"threadGrowthMin": 10, "retentionMinRss": 0.05, "rateMinSpan": 2000}"#).expect("json");
        assert_eq!(t.thread_growth_min, 10);
        assert_eq!(t.retention_min_rss, 0.05);
        assert_eq!(t.rate_min_span, 2000);
        assert_eq!(t.retention_min, RETENTION_MIN_BYTES, "the others keep their defaults");
        assert!(serde_json::from_str::<Thresholds>(r#"{"threadGrowthMinimum": 10}"#).is_err(), "unknown name");
        assert!(Thresholds { nmt_coverage_min: 1.5, ..Thresholds::default() }.check().is_err());
        assert!(Thresholds { thread_rate_min: f64::NAN, ..Thresholds::default() }.check().is_err());
        assert!(Thresholds { rate_window: 1000, rate_min_span: 2000, ..Thresholds::default() }.check().is_err());
        assert!(Thresholds::default().check().is_ok());
    }

    #[test]
    fn every_threshold_is_documented_in_the_readme() {
        let readme = include_str!("../../README.md");
        let v = serde_json::to_value(Thresholds::default()).expect("json");
        let names: Vec<&String> = v.as_object().expect("object").keys().collect();
        assert_eq!(names.len(), 30);
        for name in names {
            assert!(readme.contains(&format!("| `{name}` |")), "README has no row for threshold {name}");
        }
    }

    #[test]
    fn lowered_thresholds_raise_what_the_defaults_do_not() {
        // Near misses under the defaults: 40 threads, 200 MiB retained, 150 MiB direct.
        let threads = |i: u64| {
            let mut o = base(i * STEP_MS, GIB);
            o.java_threads = Some(20 + i);
            o
        };
        let (o, g) = run(41, threads);
        assert!(find(&evaluate_with(&o, &g), ids::THREAD_GROWTH).is_none());
        let low = Thresholds { thread_growth_min: 30, ..Thresholds::default() };
        let f = evaluate_with_thresholds(&o, &g, &low).into_iter().find(|f| f.id == ids::THREAD_GROWTH).expect("raised");
        assert_eq!(ev(&f, "java_threads").value, "20 -> 60");
        let (o, g) = run(1, |_| glibc(GIB, 200 * MIB, 4));
        assert!(find(&evaluate_with(&o, &g), ids::MALLOC_RETENTION).is_none());
        let low = Thresholds { retention_min: 128 * MIB, ..Thresholds::default() };
        assert!(find(&evaluate_with_thresholds(&o, &g, &low), ids::MALLOC_RETENTION).is_some());
        // Raised thresholds silence a finding the defaults raise.
        let (o, g) = run(1, |_| glibc(2 * GIB, 400 * MIB, 32));
        assert!(find(&evaluate_with(&o, &g), ids::ARENA_SPRAWL).is_some());
        let high = Thresholds { arena_sprawl_min: 64, ..Thresholds::default() };
        assert!(find(&evaluate_with_thresholds(&o, &g, &high), ids::ARENA_SPRAWL).is_none());
        // The rate window: 20 s of samples give no rate under the default 60 s minimum span.
        let direct_growth = |i: u64| direct(i / 10, 100 * MIB + i * 10 * MIB);
        let mut h = History::default();
        let mut quick = History::new(Thresholds { rate_min_span: 5000, ..Thresholds::default() }.history_config());
        for i in 0..20 {
            let mut o = direct_growth(i);
            o.epoch_ms = i * 1000;
            h.push(o.clone());
            quick.push(o);
        }
        assert_eq!(h.growth().rate(series::DIRECT_USED), None);
        let r = quick.growth().rate(series::DIRECT_USED).expect("a rate");
        assert!((r - 36_000.0 * MIB as f64).abs() < MIB as f64, "{r}");
    }

    #[test]
    fn a_diagnosis_with_thresholds_clears_after_its_own_count() {
        let t = Thresholds { clear_after: 1, retention_min: 100 * MIB, ..Thresholds::default() };
        let mut d = Diagnosis::with_thresholds(t);
        let mut o = glibc(GIB, 200 * MIB, 4);
        o.epoch_ms = 1000;
        assert_eq!(d.observe(o).update.new, vec![ids::MALLOC_RETENTION]);
        let mut o = glibc(GIB, 0, 4);
        o.epoch_ms = 2000;
        assert_eq!(d.observe(o).update.cleared, vec![ids::MALLOC_RETENTION]);
    }

    #[test]
    fn diagnosis_runs_end_to_end_and_serialises() {
        let mut d = Diagnosis::default();
        let mut logged = Vec::new();
        for i in 0..60 {
            let mut o = in_cgroup(i, GIB + i * 5 * MIB, Some(2 * GIB));
            o.malloc = Some(MallocObs { arena_count: 4, retained: 300 * MIB, in_use: 100 * MIB, trimmable_max: 0, ..MallocObs::default() });
            let r = d.observe(o);
            logged.extend(r.update.to_log().map(Finding::log_line));
        }
        assert!(logged.iter().any(|l| l.starts_with("[warning] malloc-retention: glibc keeps 300.0 MiB")), "{logged:?}");
        assert_eq!(logged.iter().filter(|l| l.contains("malloc-retention")).count(), 1, "{logged:?}");
        assert!(logged.iter().any(|l| l.starts_with("[critical] oom-risk")), "{logged:?}");
        let r = d.observe(in_cgroup(60, GIB + 300 * MIB, Some(2 * GIB)));
        let v = serde_json::to_value(&r).expect("json");
        assert!(v["growth"]["series"]["rss"]["delta"].is_i64());
        assert!(v["findings"].is_array());
        assert!(v["new"].is_array());
        d.set_baseline();
        assert_eq!(d.history().baseline().map(|o| o.epoch_ms), Some(60 * STEP_MS));
    }
}
