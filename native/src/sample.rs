//! One sample of the process: what the core reads itself plus the facts the JVM handed over,
//! serialised as one line of the report stream.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocator::{self, AllocatorInfo, AllocatorKind};
use crate::breakdown::{self, Breakdown, ClassifyInput, NmtRegion, Range, RegionClass};
use crate::cgroup::{CgroupFs, CgroupState};
use crate::findings::{Diagnosis, Finding, SeverityChange, Thresholds};
use crate::history::Growth;
use crate::observation::{self, BufferObs, MallocObs, NativeSitesObs, NmtObs, Observation, SitesObs, ZipObs};
use crate::smaps::{self, Backing, Mapping};
use crate::error::{Error, Result};
use crate::heap_info::{self, HeapInfo};
use crate::malloc_info::{self, MallocInfo};
use crate::nmt::{self, NmtGrowth, NmtSummary};
use crate::trim_policy::{Decision, PolicyStatus, TrimPolicy};
use crate::trim_worker::{self, DurationPercentiles, TrimRecord};
use crate::proc_fs::ProcRoot;
use crate::retention::{self, ResidentRetention};
use crate::rollup::{self, MemTotals, TotalsSource};
use crate::timefmt;

/// Version of the report line format; bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Settings the Java side passes once, at start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CoreConfig {
    /// Directory that stands for `/proc/self` (tests point it at crafted files).
    pub proc_root: Option<String>,
    /// The trim policy's text: `off`, `auto[,key=value...]` or an interval such as `30s`.
    pub trim: Option<String>,
    /// Overrides of the rules' thresholds (`threshold.<name>=<value>` options).
    pub thresholds: Thresholds,
}

impl CoreConfig {
    /// The configuration the Java side passes, taken part by part: a part the core cannot use
    /// is one line in the returned list and keeps its default, so one bad value never costs the
    /// others, nor the core itself. The Java side checks the same grammar and bounds first
    /// (`units`); this is the backstop for a value that slips past it.
    pub fn from_json(text: &str) -> (CoreConfig, Vec<String>) {
        let mut config = CoreConfig::default();
        let mut problems = Vec::new();
        if text.trim().is_empty() {
            return (config, problems);
        }
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                problems.push("the configuration is not a JSON object; using the defaults".to_string());
                return (config, problems);
            }
            Err(e) => {
                problems.push(format!("the configuration is not JSON ({e}); using the defaults"));
                return (config, problems);
            }
        };
        for (key, value) in object {
            match (key.as_str(), value) {
                (_, Value::Null) => {}
                ("proc_root", Value::String(p)) => config.proc_root = Some(p),
                ("trim", Value::String(t)) => {
                    let (spec, lines) = usable_trim_spec(&t);
                    config.trim = Some(spec);
                    problems.extend(lines);
                }
                ("thresholds", Value::Object(t)) => {
                    let (thresholds, lines) = usable_thresholds(t);
                    config.thresholds = thresholds;
                    problems.extend(lines);
                }
                (other, v) => problems.push(format!("configuration key {other:?} = {v} is not used; ignored")),
            }
        }
        (config, problems)
    }
}

/// The trim policy text with each option the policy refuses left out: `auto` keeps the options
/// that parse, an interval that does not parse leaves the policy off.
fn usable_trim_spec(text: &str) -> (String, Vec<String>) {
    if TrimPolicy::parse(text).is_ok() {
        return (text.to_string(), Vec::new());
    }
    let mut parts = text.split(',').map(str::trim).filter(|p| !p.is_empty());
    let mode = parts.next().unwrap_or("");
    let mut problems = Vec::new();
    let mut kept = match TrimPolicy::parse(mode) {
        Ok(_) => mode.to_string(),
        Err(e) => return ("off".to_string(), vec![format!("trim={mode}: {e}; the trim policy stays off")]),
    };
    for option in parts {
        let candidate = format!("{kept},{option}");
        match TrimPolicy::parse(&candidate) {
            Ok(_) => kept = candidate,
            Err(e) => problems.push(format!("trim option {option}: {e}; keeping its default")),
        }
    }
    (kept, problems)
}

/// The threshold overrides the rules can use, one at a time: a value of the wrong type, an
/// unknown name or one [`Thresholds::check`] refuses is left at its default.
fn usable_thresholds(given: serde_json::Map<String, Value>) -> (Thresholds, Vec<String>) {
    let mut kept = serde_json::Map::new();
    let mut thresholds = Thresholds::default();
    let mut problems = Vec::new();
    for (name, value) in given {
        let mut candidate = kept.clone();
        candidate.insert(name.clone(), value.clone());
        let parsed = serde_json::from_value::<Thresholds>(Value::Object(candidate.clone()))
            .map_err(Error::from)
            .and_then(|t| t.check().map(|()| t));
        match parsed {
            Ok(t) => {
                thresholds = t;
                kept = candidate;
            }
            Err(e) => problems.push(format!("threshold.{name}={value}: {e}; keeping the default")),
        }
    }
    (thresholds, problems)
}

/// A problem met while sampling; the sample still goes out with what could be read.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub source: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub schema: u32,
    pub kind: &'static str,
    pub seq: u64,
    pub time: String,
    pub epoch_ms: u64,
    pub pid: u32,
    pub totals: Option<MemTotals>,
    pub totals_source: Option<TotalsSource>,
    pub threads: Option<u64>,
    /// The Java heap's reserved ranges, from `GC.heap_info`.
    pub heap: Option<HeapInfo>,
    /// Every resident byte in one class, from the full `smaps`; the classes add up to `totals`.
    pub breakdown: Option<Breakdown>,
    /// Which malloc the process runs on and the settings that shape it.
    pub allocator: AllocatorInfo,
    /// glibc's own account of its arenas (absent under other allocators).
    pub malloc: Option<MallocView>,
    /// The malloc settings in force: applied by the agent (`-agentpath`, premain, agentmain)
    /// or set in the environment, with the arena count.
    pub tuning: crate::tuning::TuningView,
    /// Native Memory Tracking, when the JVM runs with it.
    pub nmt: Option<NmtView>,
    /// The container's memory limit and usage (cgroup v2 or v1), when the process is in one.
    pub cgroup: Option<CgroupState>,
    /// How every part changed since the baseline, and its recent rate.
    pub growth: Growth,
    /// What the diagnosis concludes, most severe first, each with evidence and a remedy.
    pub findings: Vec<Finding>,
    /// Ids of findings raised at this sample for the first time (logged once).
    pub findings_new: Vec<&'static str>,
    /// Findings whose severity changed at this sample (`id`, `from`, `to`; logged once): a rise
    /// at once, a fall once it has held for the samples a finding takes to clear.
    pub findings_changed: Vec<SeverityChange>,
    /// Ids of findings no longer raised.
    pub findings_cleared: Vec<&'static str>,
    /// The trim policy, what it decided, and the trims since the previous sample.
    pub trim: TrimView,
    /// The zip census: Inflaters and Deflaters holding native zlib memory (from the Java side).
    pub zip: Value,
    /// Call sites of zip streams, direct buffers and threads (see `sites`); null without a JVM.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub sites: Value,
    /// Sampled malloc call sites (see `native_sites`): who allocates what nothing else accounts
    /// for; null without a JVM.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub native_sites: Value,
    /// What the JVM told the agent (heap usage, threads, versions, buffer pools): passed through
    /// as given, less the texts the core parses itself.
    pub jvm: Value,
    pub problems: Vec<Problem>,
    /// Time this sample took inside the native core (reading and parsing /proc, the rules).
    pub sample_ns: u64,
}

/// glibc's arenas in one sample: totals and one short line per arena.
///
/// Two figures of free memory: `retained_max` counts every free byte glibc holds, resident or
/// not (pages a trim gave back stay counted), an upper bound; `retained_resident` is the part
/// resident now (arena heaps' RSS less bytes in use, see [`crate::retention`]), a lower bound.
/// `retained` is `retained_max` under its older name.
#[derive(Debug, Clone, Serialize)]
pub struct MallocView {
    pub arena_count: usize,
    /// Same as `retained_max`, kept for readers of the older reports.
    pub retained: u64,
    /// Every free byte in the arenas, resident or not: the most a trim could ever give back.
    pub retained_max: u64,
    /// Free bytes in the arenas that are resident now; `None` without the arena heaps' RSS.
    pub retained_resident: Option<u64>,
    pub in_use: u64,
    pub mmapped: u64,
    pub mmapped_count: u64,
    pub system_current: u64,
    pub system_max: u64,
    /// Upper bound of what `malloc_trim` can return now (whole free pages, resident or not).
    pub trimmable_max: u64,
    /// What one `malloc_trim(0)` would release now, estimated from resident free memory.
    pub trimmable_resident: Option<u64>,
    pub arenas: Vec<MallocArenaView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MallocArenaView {
    pub nr: u32,
    pub system_current: u64,
    pub in_use: u64,
    pub retained: u64,
    pub retained_resident: Option<u64>,
    pub trimmable_max: u64,
    pub trimmable_resident: Option<u64>,
    /// `exact` from the arena's own heap, `pooled` a share of a group (see [`crate::retention`]).
    pub residency: Option<crate::retention::Residency>,
}

impl MallocView {
    /// Adds the resident figures.
    fn set_resident(&mut self, r: &ResidentRetention) {
        self.retained_resident = Some(r.retained_resident);
        self.trimmable_resident = Some(r.trimmable_resident);
        for a in &mut self.arenas {
            if let Some(x) = r.arena(a.nr) {
                a.retained_resident = Some(x.retained_resident);
                a.trimmable_resident = Some(x.trimmable_resident);
                a.residency = Some(x.residency);
            }
        }
    }

    /// Resident free bytes where known, else the upper bound.
    pub fn retained_now(&self) -> u64 {
        self.retained_resident.unwrap_or(self.retained_max)
    }
}

impl From<&MallocInfo> for MallocView {
    fn from(m: &MallocInfo) -> Self {
        MallocView {
            arena_count: m.arenas.len(),
            retained: m.totals.retained,
            retained_max: m.totals.retained,
            retained_resident: None,
            in_use: m.totals.in_use,
            mmapped: m.totals.mmap.size,
            mmapped_count: m.totals.mmap.count,
            system_current: m.totals.system_current,
            system_max: m.totals.system_max,
            trimmable_max: m.totals.trimmable_max,
            trimmable_resident: None,
            arenas: m
                .arenas
                .iter()
                .map(|a| MallocArenaView {
                    nr: a.nr,
                    system_current: a.system_current,
                    in_use: a.in_use,
                    retained: a.retained,
                    retained_resident: None,
                    trimmable_max: a.trimmable_max,
                    trimmable_resident: None,
                    residency: None,
                })
                .collect(),
        }
    }
}

/// NMT in one sample: the JVM's own account, and how much of the RSS growth since the baseline
/// it explains.
#[derive(Debug, Clone, Serialize)]
pub struct NmtView {
    pub mode: String,
    pub reserved: u64,
    pub committed: u64,
    pub malloc: Option<u64>,
    pub categories: Vec<NmtCategoryView>,
    /// Growth since the baseline (the first sample with NMT, or the one the user set).
    pub growth: Option<NmtGrowth>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NmtCategoryView {
    pub name: String,
    pub reserved: u64,
    pub committed: u64,
}

impl NmtView {
    fn new(mode: &str, s: &NmtSummary, growth: Option<NmtGrowth>) -> Self {
        NmtView {
            mode: mode.to_string(),
            reserved: s.total.reserved,
            committed: s.total.committed,
            malloc: s.total.malloc.as_ref().map(|m| m.bytes),
            categories: s
                .categories
                .iter()
                .map(|c| NmtCategoryView { name: c.name.clone(), reserved: c.reserved, committed: c.committed })
                .collect(),
            growth,
        }
    }
}

/// Trimming in one sample.
#[derive(Debug, Clone, Serialize)]
pub struct TrimView {
    pub policy: PolicyStatus,
    /// What the policy decided at this sample.
    pub decision: Decision,
    /// A line for the operator, set once when the policy steps aside (not glibc, the JVM trims).
    pub notice: Option<String>,
    /// Trims finished since the previous sample, oldest first.
    pub events: Vec<TrimRecord>,
    pub count: u64,
    pub released_total: u64,
    pub duration_total_ns: u64,
    pub duration: Option<DurationPercentiles>,
    pub last: Option<TrimRecord>,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// Texts the JVM printed (diagnostic command output), taken out of the facts so they are parsed
/// here and not echoed into every report line.
#[derive(Debug, Default)]
struct JvmTexts {
    heap_info: Option<String>,
    nmt_summary: Option<String>,
    nmt_detail: Option<String>,
    nmt_mode: Option<String>,
}

impl JvmTexts {
    fn take_from(facts: &mut Value) -> Self {
        let Some(obj) = facts.as_object_mut() else { return JvmTexts::default() };
        let mut take = |k: &str| match obj.remove(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        JvmTexts {
            heap_info: take("heap_info"),
            nmt_summary: take("nmt_summary"),
            nmt_detail: take("nmt_detail"),
            nmt_mode: obj.get("nmt_mode").and_then(Value::as_str).map(str::to_string),
        }
    }
}

/// The native core's state between samples.
#[derive(Debug)]
pub struct Core {
    proc: ProcRoot,
    seq: u64,
    allocator: AllocatorInfo,
    /// NMT and RSS at the baseline, for the share of growth NMT explains.
    nmt_baseline: Option<(NmtSummary, u64)>,
    policy: TrimPolicy,
    /// Buffers kept across samples: smaps of a big JVM is hundreds of KiB of text.
    smaps_text: Vec<u8>,
    mappings: Vec<Mapping>,
    diagnosis: Diagnosis,
    cgroup_fs: CgroupFs,
    /// The live history as the timeline page draws it (compact points, not report lines).
    timeline: crate::timeline::Timeline,
}

/// The live timeline's bounds ([`crate::timeline::Timeline::thin`]): twice the points the page
/// draws, so thinning loses nothing the page would show until the history outgrows the chart's
/// width; about 2 MiB of columns at most, where a week of samples unthinned would be 30 MiB.
const LIVE_TIMELINE_MAX_SAMPLES: usize = 2 * crate::timeline::MAX_POINTS;
/// Trim marks kept: the page groups them per bucket past [`crate::timeline::MAX_POINTS`] anyway.
const LIVE_TIMELINE_MAX_TRIMS: usize = 4 * crate::timeline::MAX_POINTS;

impl Core {
    /// A core configured by `config`; a trim policy text that does not parse is an error.
    pub fn new(config: &CoreConfig) -> Result<Self> {
        let proc = match &config.proc_root {
            Some(p) if !p.is_empty() => ProcRoot::new(p),
            _ => ProcRoot::default(),
        };
        let policy = TrimPolicy::parse(config.trim.as_deref().unwrap_or("off"))?;
        config.thresholds.check()?;
        Ok(Core {
            proc,
            seq: 0,
            allocator: allocator::detect(),
            nmt_baseline: None,
            policy,
            smaps_text: Vec::new(),
            mappings: Vec::new(),
            diagnosis: Diagnosis::with_thresholds(config.thresholds.clone()),
            cgroup_fs: CgroupFs::default(),
            timeline: crate::timeline::Timeline::default(),
        })
    }

    /// Changes the trim policy at run time; returns its new status.
    pub fn set_trim_policy(&mut self, text: &str) -> Result<PolicyStatus> {
        let parsed = TrimPolicy::parse(text)?;
        self.policy.set_mode(parsed.mode().clone());
        Ok(self.policy.status())
    }

    /// Feeds finished trims to the policy, asks it what to do now and does it.
    /// `malloc` is `(all free bytes, resident free bytes, what a trim would release)`, the last
    /// two resident where known.
    fn run_trim_policy(
        &mut self,
        now_ms: u64,
        malloc: Option<(u64, u64, Option<u64>)>,
        rss: u64,
        jvm_trim_interval_ms: Option<u64>,
    ) -> TrimView {
        let events = trim_worker::records_since(self.policy.last_seq());
        for r in &events {
            self.policy.record(r);
        }
        let cpu_ms = self.proc.read("stat").ok().and_then(|t| process_cpu_ms(&t, clock_ticks()));
        let obs = crate::trim_policy::Observation {
            retained: malloc.map_or(0, |m| m.1),
            trimmable: malloc.and_then(|m| m.2),
            cpu_ms,
            rss,
            allocator: self.allocator.kind,
            jvm_trim_interval_ms,
        };
        let decision = self.policy.decide(now_ms, &obs);
        let mut notice = None;
        match &decision {
            Decision::Trim { reason, .. } => {
                if let Err(e) = trim_worker::submit_trim(*reason) {
                    notice = Some(format!("trim not started: {e}"));
                }
            }
            Decision::Skip { detail, announce: true, .. } => notice = Some(format!("trim policy: {detail}")),
            Decision::Skip { .. } => {}
        }
        if let Some(n) = &notice {
            crate::notices::push(n.clone());
        }
        let stats = trim_worker::stats();
        TrimView {
            policy: self.policy.status(),
            decision,
            notice,
            events,
            count: stats.count,
            released_total: stats.released_bytes,
            duration_total_ns: stats.total_duration_ns,
            duration: stats.duration,
            last: stats.history.last().cloned(),
            failures: stats.failures,
            last_error: stats.last_error,
        }
    }

    /// Reads, parses and classifies the full `smaps`. `None` (with a problem) where it cannot
    /// be read; the sample then falls back to `smaps_rollup` or `status` for totals.
    fn breakdown(
        &mut self,
        texts: &JvmTexts,
        heap_info: Option<&HeapInfo>,
        facts: &Value,
        problems: &mut Vec<Problem>,
    ) -> Option<Breakdown> {
        if let Err(e) = self.proc.read_into("smaps", crate::proc_fs::SMAPS_CAP, &mut self.smaps_text) {
            problems.push(Problem { source: "smaps", message: e.to_string() });
            return None;
        }
        smaps::parse_into(&self.smaps_text, &mut self.mappings);
        if self.mappings.is_empty() {
            problems.push(Problem { source: "smaps", message: "smaps has no mappings".into() });
            return None;
        }
        let mut heap: Vec<Range> = heap_info
            .map(|h| h.ranges.iter().map(|r| Range::new(r.start, r.end)).collect())
            .unwrap_or_default();
        // ZGC prints no heap range; on JDK 17 its heap is a multi-mapped memfd named java_heap.
        heap.extend(
            self.mappings
                .iter()
                .filter(|m| matches!(&m.backing, Backing::File(p) if p.starts_with("/memfd:java_heap")))
                .map(|m| Range::new(m.start, m.end)),
        );
        let nmt_regions = match texts.nmt_detail.as_deref().map(nmt::parse_virtual_memory_map) {
            Some(Ok(regions)) => regions
                .into_iter()
                .filter(|r| r.kind == nmt::NmtRegionKind::Reserved)
                .map(|r| NmtRegion { range: Range::new(r.start, r.end), category: r.category })
                .collect(),
            Some(Err(e)) => {
                problems.push(Problem { source: "nmt_detail", message: e.to_string() });
                Vec::new()
            }
            None => Vec::new(),
        };
        let input = ClassifyInput {
            heap,
            nmt_regions,
            jvm_thread_count: facts.pointer("/threads/live").and_then(Value::as_u64),
            thread_stack_size: facts.get("thread_stack_size_kb").and_then(Value::as_u64).map(|k| k * 1024),
        };
        // Straddling mappings are split by their resident pages, counted in pagemap (readable
        // by the process itself; only the present bit is used). Without it, by address.
        let mut pagemap = std::fs::File::open(self.proc.path("pagemap")).ok();
        let b = breakdown::classify_with_residency(&self.mappings, &input, &mut |r| {
            pagemap.as_mut().and_then(|f| resident_bytes(f, r))
        });
        if let Err(e) = b.check_sums() {
            problems.push(Problem { source: "breakdown", message: e.to_string() });
        }
        Some(b)
    }

    /// Takes a sample and returns it as one report line (JSON), remembered for the live timeline.
    pub fn sample_line(&mut self, facts: Value) -> Result<String> {
        let line = serde_json::to_string(&self.sample(facts)?)?;
        self.timeline.push_line(&line);
        self.timeline.thin(LIVE_TIMELINE_MAX_SAMPLES, LIVE_TIMELINE_MAX_TRIMS);
        Ok(line)
    }

    /// The timeline page of the samples this core took.
    pub fn live_timeline(&self, title: &str) -> Result<String> {
        self.timeline.render(title)
    }

    /// Makes the latest sample the baseline growth is measured from (NMT's: the next sample).
    pub fn reset_baseline(&mut self) {
        self.nmt_baseline = None;
        self.diagnosis.set_baseline();
    }

    fn nmt_view(&mut self, texts: &JvmTexts, rss: Option<u64>, problems: &mut Vec<Problem>) -> Option<NmtView> {
        let text = texts.nmt_summary.as_deref()?;
        let summary = match nmt::parse_summary(text) {
            Ok(s) => s,
            // NMT off is a state, reported as the mode; not a problem.
            Err(Error::Unsupported(_)) => return None,
            Err(e) => {
                problems.push(Problem { source: "nmt", message: e.to_string() });
                return None;
            }
        };
        let growth = match (&self.nmt_baseline, rss) {
            (Some((base, base_rss)), Some(rss)) => {
                let delta = i64::try_from(rss).unwrap_or(i64::MAX) - i64::try_from(*base_rss).unwrap_or(i64::MAX);
                Some(nmt::explain_growth(base, &summary, delta))
            }
            _ => None,
        };
        if self.nmt_baseline.is_none() {
            if let Some(rss) = rss {
                self.nmt_baseline = Some((summary.clone(), rss));
            }
        }
        let mode = texts.nmt_mode.as_deref().unwrap_or("summary");
        Some(NmtView::new(mode, &summary, growth))
    }

    pub fn proc_root(&self) -> &ProcRoot {
        &self.proc
    }

    /// Takes one sample. Unreadable files become `problems`, never an error: an agent that
    /// cannot read `smaps_rollup` still reports what `status` says.
    pub fn sample(&mut self, mut facts: Value) -> Result<Sample> {
        let started = std::time::Instant::now();
        let texts = JvmTexts::take_from(&mut facts);
        let zip = facts.as_object_mut().and_then(|o| o.remove("zip")).unwrap_or(Value::Null);
        let sites = facts.as_object_mut().and_then(|o| o.remove("sites")).unwrap_or(Value::Null);
        let native_sites = facts.as_object_mut().and_then(|o| o.remove("native_sites")).unwrap_or(Value::Null);
        let heap = texts.heap_info.as_deref().map(heap_info::parse_heap_info);
        self.seq += 1;
        let epoch_ms = timefmt::now_millis();
        let mut problems = Vec::new();

        let status = match self.proc.read("status") {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(Problem { source: "status", message: e.to_string() });
                None
            }
        };
        let breakdown = self.breakdown(&texts, heap.as_ref(), &facts, &mut problems);
        let mut totals = None;
        let mut source = None;
        if let Some(b) = &breakdown {
            totals = Some(b.smaps.to_mem_totals());
            source = Some(TotalsSource::Smaps);
        } else {
            match self.proc.read("smaps_rollup") {
                Ok(text) => match rollup::parse_smaps_rollup(&text) {
                    Some(t) => {
                        totals = Some(t);
                        source = Some(TotalsSource::SmapsRollup);
                    }
                    None => problems.push(Problem {
                        source: "smaps_rollup",
                        message: "no Rss line in smaps_rollup".into(),
                    }),
                },
                Err(e) => problems.push(Problem { source: "smaps_rollup", message: e.to_string() }),
            }
        }
        if let Some(st) = status.as_deref() {
            match (totals.as_mut(), rollup::parse_status(st)) {
                (Some(t), Some(s)) => {
                    // smaps' shared-memory count can exceed status' (it counts memfd too):
                    // keep status' figure where it has one, and never more than file pages.
                    let shmem = if source == Some(TotalsSource::Smaps) { t.shmem.max(s.shmem) } else { s.shmem };
                    t.shmem = shmem.min(t.file);
                    t.file -= t.shmem;
                }
                (None, Some(s)) => {
                    totals = Some(s);
                    source = Some(TotalsSource::Status);
                }
                (_, None) => problems.push(Problem {
                    source: "status",
                    message: "no VmRSS line in status".into(),
                }),
            }
        } else if let Some(t) = totals.as_mut() {
            t.shmem = t.shmem.min(t.file);
            t.file -= t.shmem;
        }
        let threads = status.as_deref().and_then(rollup::status_threads);

        let malloc = if self.allocator.kind == AllocatorKind::Glibc {
            match malloc_info::collect_malloc_info() {
                Ok(m) => {
                    let mut view = MallocView::from(&m);
                    if let Some(b) = &breakdown {
                        let mut pagemap = std::fs::File::open(self.proc.path("pagemap")).ok();
                        let r = retention::resident_retention(&m, &b.arenas, &mut |range| {
                            pagemap.as_mut().and_then(|f| resident_bytes(f, range))
                        });
                        view.set_resident(&r);
                    }
                    Some(view)
                }
                Err(e) => {
                    problems.push(Problem { source: "malloc_info", message: e.to_string() });
                    None
                }
            }
        } else {
            None
        };

        let rss = totals.as_ref().map(|t| t.rss);
        let nmt = self.nmt_view(&texts, rss, &mut problems);
        let jvm_trim_interval_ms = facts.get("trim_native_heap_interval_ms").and_then(Value::as_u64);
        let trim = self.run_trim_policy(
            epoch_ms,
            malloc.as_ref().map(|m| (m.retained_max, m.retained_now(), m.trimmable_resident)),
            rss.unwrap_or(0),
            jvm_trim_interval_ms,
        );

        let cgroup = match self.cgroup_fs.read_state() {
            Ok(c) => c,
            Err(e) => {
                problems.push(Problem { source: "cgroup", message: e.to_string() });
                None
            }
        };
        let nmt_obs = nmt.as_ref().map(|n| NmtObs {
            committed: n.committed,
            coverage: n.growth.as_ref().and_then(|g| g.coverage),
            categories: n.categories.iter().map(|c| (c.name.clone(), c.committed)).collect(),
        });
        let metaspace = nmt_obs.as_ref().and_then(|n| observation::metaspace_from_nmt(&n.categories));
        let tuning = crate::tuning::view(
            self.allocator.kind,
            &self.allocator.settings,
            malloc.as_ref().map(|m| m.arena_count),
        );
        let obs = Observation {
            epoch_ms,
            rss: totals.as_ref().map_or(0, |t| t.rss),
            pss: totals.as_ref().and_then(|t| t.pss),
            swap: totals.as_ref().map_or(0, |t| t.swap),
            parts: breakdown
                .as_ref()
                .map(|b| RegionClass::ALL.iter().map(|c| (c.name().to_string(), b.classes.get(*c).rss)).collect())
                .unwrap_or_default(),
            allocator: self.allocator.kind.name().to_string(),
            // The cap in force, whoever set it (the environment, or the agent through mallopt).
            malloc_arena_max: tuning
                .arena_cap
                .map(|c| c.to_string())
                .or_else(|| self.allocator.settings.malloc_arena_max.clone()),
            ld_preload: self.allocator.settings.ld_preload.clone(),
            malloc: malloc.as_ref().map(|m| MallocObs {
                arena_count: m.arena_count as u64,
                retained: m.retained_max,
                retained_resident: m.retained_resident,
                trimmable_resident: m.trimmable_resident,
                in_use: m.in_use,
                trimmable_max: m.trimmable_max,
            }),
            nmt_mode: facts.get("nmt_mode").and_then(Value::as_str).unwrap_or("unknown").to_string(),
            nmt: nmt_obs,
            zip: ZipObs::from_census(&zip),
            direct_buffers: BufferObs::from_jvm_facts(&facts, "direct"),
            java_threads: facts.pointer("/threads/live").and_then(Value::as_u64),
            os_threads: threads,
            heap_used: facts.pointer("/heap/used").and_then(Value::as_u64),
            heap_committed: facts.pointer("/heap/committed").and_then(Value::as_u64),
            heap_max: facts.pointer("/heap/max").and_then(Value::as_u64),
            metaspace,
            cgroup: cgroup.clone(),
            jvm_trim_interval_ms,
            sites: SitesObs::from_report(&sites),
            native_sites: NativeSitesObs::from_report(&native_sites),
        };
        let report = self.diagnosis.observe(obs);
        for line in report.update.log_lines() {
            crate::notices::push(line);
        }

        Ok(Sample {
            schema: SCHEMA_VERSION,
            kind: "sample",
            seq: self.seq,
            time: timefmt::rfc3339_millis(epoch_ms),
            epoch_ms,
            pid: std::process::id(),
            totals,
            totals_source: source,
            threads,
            heap,
            breakdown,
            allocator: self.allocator.clone(),
            tuning,
            malloc,
            nmt,
            cgroup,
            growth: report.growth,
            findings: report.update.findings,
            findings_new: report.update.new,
            findings_changed: report.update.changed,
            findings_cleared: report.update.cleared,
            trim,
            zip,
            sites,
            native_sites,
            jvm: facts,
            problems,
            sample_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        })
    }
}

/// The process's CPU time (user + system) in ms from the text of `/proc/self/stat`.
fn process_cpu_ms(stat: &str, ticks_per_s: u64) -> Option<u64> {
    // The command name in parentheses may hold spaces: fields count from after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime.saturating_add(stime).saturating_mul(1000) / ticks_per_s.max(1))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Resident bytes of `r` from an open `pagemap`: 8 bytes per page, bit 63 set when present.
/// `None` for a range too big to be worth reading (over 4 GiB) or on any read error.
fn resident_bytes(pagemap: &mut std::fs::File, r: Range) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let page = crate::malloc_info::page_size().max(1);
    if r.is_empty() || r.len() > (4 << 30) || !r.start.is_multiple_of(page) {
        return None;
    }
    let pages = r.len().div_ceil(page);
    let mut buf = vec![0u8; usize::try_from(pages * 8).ok()?];
    pagemap.read_exact_at(&mut buf, r.start / page * 8).ok()?;
    let present = buf
        .chunks_exact(8)
        .filter(|e| e[7] & 0x80 != 0)
        .count() as u64;
    Some(present * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let mut core = Core::new(&CoreConfig::default()).expect("core");
        let s = core.sample(Value::Null).expect("sample");
        let t = s.totals.expect("totals from /proc/self");
        assert!(t.rss > 0);
        assert_eq!(t.anon + t.file + t.shmem, t.rss);
        assert_eq!(s.totals_source, Some(TotalsSource::Smaps));
        let b = s.breakdown.expect("breakdown of this process");
        assert_eq!(b.totals.rss, t.rss);
        assert!(b.check_sums().is_ok());
        assert_eq!(s.seq, 1);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn cpu_time_is_user_plus_system_after_the_command_name() {
        let stat = "4242 (java (main)) S 1 4242 4242 0 -1 4194560 90 0 0 0 250 130 0 0 20 0 30 0 1 0\n";
        assert_eq!(process_cpu_ms(stat, 100), Some(3800));
        assert_eq!(process_cpu_ms("garbage", 100), None);
    }

    #[test]
    fn falls_back_to_status_and_reports_the_missing_rollup() {
        let dir = std::env::temp_dir().join(format!("od-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("status"), "VmRSS:\t 2048 kB\nRssAnon:\t 1024 kB\nRssFile:\t 1024 kB\n")
            .expect("write");
        let mut core = Core::new(&CoreConfig { proc_root: Some(dir.display().to_string()), ..CoreConfig::default() }).expect("core");
        let s = core.sample(Value::Null).expect("sample");
        assert_eq!(s.totals_source, Some(TotalsSource::Status));
        assert_eq!(s.totals.expect("totals").rss, 2048 * 1024);
        assert!(s.problems.iter().any(|p| p.source == "smaps_rollup" && p.message.contains("smaps_rollup")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_readable_still_gives_a_sample() {
        let mut core = Core::new(&CoreConfig { proc_root: Some("/nonexistent/od".into()), ..CoreConfig::default() }).expect("core");
        let s = core.sample(Value::Null).expect("sample");
        assert!(s.totals.is_none());
        let sources: Vec<_> = s.problems.iter().map(|p| p.source).collect();
        assert_eq!(sources, ["status", "smaps", "smaps_rollup"]);
    }

    #[test]
    fn one_bad_value_keeps_its_default_and_the_rest_applies() {
        let (config, problems) = CoreConfig::from_json(
            r#"{"proc_root":null,"trim":"auto,trimRetained=999999999999999t,trimRetainedRss=20%,minInterval=5min",
                "thresholds":{"retentionMin":1048576,"clearAfter":99999999999,"nmtCoverageMin":2.5,"bogus":1,"rateWindow":600000}}"#,
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        for bad in ["trimRetained=999999999999999t", "threshold.bogus", "threshold.clearAfter", "threshold.nmtCoverageMin"] {
            assert_eq!(problems.iter().filter(|p| p.contains(bad)).count(), 1, "{bad}: {problems:?}");
        }
        let policy = TrimPolicy::parse(config.trim.as_deref().expect("trim")).expect("usable policy");
        match policy.mode() {
            crate::trim_policy::TrimMode::Auto(a) => {
                assert_eq!(a.retained_bytes, crate::trim_policy::AutoSettings::default().retained_bytes);
                assert_eq!(a.retained_rss_fraction, 0.2);
                assert_eq!(a.min_interval_ms, 300_000);
            }
            other => panic!("not auto: {other:?}"),
        }
        let t = &config.thresholds;
        assert_eq!(t.retention_min, 1_048_576);
        assert_eq!(t.rate_window, 600_000);
        let d = Thresholds::default();
        assert_eq!((t.clear_after, t.nmt_coverage_min), (d.clear_after, d.nmt_coverage_min));
        assert!(Core::new(&config).is_ok());
    }

    #[test]
    fn an_unusable_interval_leaves_trimming_off_and_the_core_on() {
        let (config, problems) = CoreConfig::from_json(r#"{"trim":"99999999999999h"}"#);
        assert_eq!(config.trim.as_deref(), Some("off"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(Core::new(&config).is_ok());
        let (config, problems) = CoreConfig::from_json("[1]");
        assert_eq!(problems.len(), 1);
        assert!(Core::new(&config).is_ok());
    }
}
