//! The flat input of the diagnosis: one sample reduced to the numbers the history and the rules
//! work on. It does not depend on [`crate::sample::Sample`] on purpose: the sample's shape grows
//! (the breakdown, new JVM facts) while the rules only need these fields, and a rule test builds
//! an `Observation` by hand in a few lines.
//!
//! The mapping from a sample lives with the sample. The helpers here read the parts of the JVM's
//! facts that arrive as JSON (the zip census, the buffer pools), so that mapping stays short.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cgroup::CgroupState;

/// One sample, flat. Sizes in bytes, times in milliseconds since the Unix epoch. A field that
/// could not be read in this sample is `None` (or empty), never 0, so the history does not see a
/// drop to zero where there was only a gap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub epoch_ms: u64,
    pub rss: u64,
    pub pss: Option<u64>,
    pub swap: u64,
    /// Resident bytes per breakdown class (`java_heap`, `malloc_arena`, `thread_stack`, ...).
    /// Empty when the sample had no breakdown.
    pub parts: BTreeMap<String, u64>,
    /// The allocator behind `malloc`: `glibc`, `jemalloc`, `tcmalloc`, `musl` or `unknown`.
    pub allocator: String,
    /// `MALLOC_ARENA_MAX` as the process environment has it.
    pub malloc_arena_max: Option<String>,
    /// `LD_PRELOAD` as the process environment has it.
    pub ld_preload: Option<String>,
    /// glibc's arenas (absent under other allocators, or when `malloc_info` failed).
    pub malloc: Option<MallocObs>,
    /// NMT level as the agent reports it (`nmt_mode` of the JVM facts): `off`, `summary`,
    /// `detail`, or `unknown` (or empty) when the flag could not be read.
    pub nmt_mode: String,
    pub nmt: Option<NmtObs>,
    pub zip: Option<ZipObs>,
    /// The `direct` buffer pool.
    pub direct_buffers: Option<BufferObs>,
    /// Live Java threads (`ThreadMXBean.getThreadCount`).
    pub java_threads: Option<u64>,
    /// Threads of the process as the kernel counts them (`Threads:` of `status`): includes
    /// native threads the JVM does not know about.
    pub os_threads: Option<u64>,
    pub heap_used: Option<u64>,
    pub heap_committed: Option<u64>,
    /// `None` when the JVM reports no maximum (-1).
    pub heap_max: Option<u64>,
    /// Committed metaspace (NMT `Metaspace`, or `Class` before JDK 17), when NMT is on.
    pub metaspace: Option<u64>,
    pub cgroup: Option<CgroupState>,
    /// `-XX:TrimNativeHeapInterval` when the JVM has the flag; 0 means off.
    pub jvm_trim_interval_ms: Option<u64>,
    /// The call sites behind the zip streams, direct buffers and threads; `None` when sites are
    /// off or unavailable.
    #[serde(default)]
    pub sites: Option<SitesObs>,
    /// The sampled malloc call sites; `None` when the native sampler is off or unavailable.
    #[serde(default)]
    pub native_sites: Option<NativeSitesObs>,
}

/// The report's `native_sites` part as the rules read it: the sampler's totals and its named
/// sites, largest first, with the "other" row apart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NativeSitesObs {
    /// When this sampler run started (epoch ms): site ids are comparable only within one run.
    pub since_ms: u64,
    /// Mean bytes allocated between two samples.
    pub sample_bytes: u64,
    /// Whether sites carry Java frames.
    pub java_frames: bool,
    /// Estimated live bytes over all sites.
    pub live_bytes: u64,
    /// Since the sampler's baseline.
    pub growth_bytes: i64,
    pub sites: Vec<NativeSite>,
    /// The sites beyond the top ones, together.
    pub other: Option<NativeOther>,
}

/// One sampled malloc call site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NativeSite {
    /// Stable within one sampler run.
    pub id: u64,
    /// `libfoo.so foo_put <- com.acme.Cache.put`.
    pub label: String,
    /// Innermost first: `libfoo.so foo_put+0x2a`.
    pub native: Vec<String>,
    /// Innermost first: `com.acme.Cache.put(Cache.java:42)`.
    pub java: Vec<String>,
    pub thread: Option<String>,
    pub live_bytes: u64,
    pub growth_bytes: i64,
    pub live_samples: u64,
    pub allocated_bytes: u64,
}

/// The "other" row: how many sites it stands for and what they hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeOther {
    pub sites: u64,
    pub live_bytes: u64,
    pub growth_bytes: i64,
}

/// `libz.so.1 inflateInit2_+0x2a`, `libz.so.1+0x1f00` without a symbol.
fn native_frame_text(f: &Value) -> Option<String> {
    if let Some(s) = f.as_str() {
        return Some(s.to_string());
    }
    let library = f.get("library").and_then(Value::as_str).unwrap_or("?");
    let offset = f.get("offset").and_then(Value::as_u64).unwrap_or(0);
    match f.get("symbol").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(sym) => Some(format!("{library} {sym}+{offset:#x}")),
        None if f.is_object() => Some(format!("{library}+{offset:#x}")),
        None => None,
    }
}

impl NativeSitesObs {
    /// Reads the report's `native_sites` part; `None` unless its `status` is `on`. A row without
    /// an id is skipped (its rate could not be followed); a malformed row never fails the rest.
    pub fn from_report(part: &Value) -> Option<NativeSitesObs> {
        if part.get("status").and_then(Value::as_str) != Some("on") {
            return None;
        }
        let u = |r: &Value, k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let i = |r: &Value, k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0);
        let rows = part.get("sites").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let is_other = |r: &Value| r.get("site").and_then(Value::as_str) == Some("other");
        let sites = rows
            .iter()
            .filter(|r| !is_other(r))
            .filter_map(|r| {
                let id = r.get("id")?.as_u64()?;
                let native: Vec<String> =
                    r.get("native").and_then(Value::as_array).into_iter().flatten().filter_map(native_frame_text).collect();
                let java: Vec<String> = r
                    .get("java")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                let label = r
                    .get("label")
                    .and_then(Value::as_str)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .or_else(|| native.first().cloned())
                    .unwrap_or_else(|| format!("site {id}"));
                Some(NativeSite {
                    id,
                    label,
                    native,
                    java,
                    thread: r.get("thread").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string),
                    live_bytes: u(r, "live_bytes"),
                    growth_bytes: i(r, "growth_bytes"),
                    live_samples: u(r, "live_samples"),
                    allocated_bytes: u(r, "allocated_bytes"),
                })
            })
            .collect();
        let other = rows.iter().find(|r| is_other(r)).map(|r| NativeOther {
            sites: u(r, "sites"),
            live_bytes: u(r, "live_bytes"),
            growth_bytes: i(r, "growth_bytes"),
        });
        Some(NativeSitesObs {
            since_ms: u(part, "since_ms"),
            sample_bytes: u(part, "sample_bytes"),
            java_frames: part.get("java_frames").and_then(Value::as_bool).unwrap_or(false),
            live_bytes: u(part, "live_bytes"),
            growth_bytes: i(part, "growth_bytes"),
            sites,
            other,
        })
    }
}

/// The report's `sites` part as the rules read it: per kind its named sites, largest first, the
/// "other" row left out (it names no code).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SitesObs {
    pub zip: Vec<ZipSite>,
    pub direct: Vec<DirectSite>,
    pub threads: Vec<ThreadSite>,
}

/// Where unended Inflaters or Deflaters were made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZipSite {
    /// `com.acme.Ingest.read(Ingest.java:88)`.
    pub site: String,
    /// The JDK method the site called (`java.util.zip.GZIPInputStream.<init>`), if not the
    /// Inflater's or Deflater's own constructor.
    pub via: Option<String>,
    pub deflater: bool,
    pub alive: u64,
    pub pending: u64,
}

/// Where live direct buffers were allocated (an estimate from weighted samples).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectSite {
    pub site: String,
    pub via: Option<String>,
    pub live_bytes: u64,
    /// Since the sites' baseline.
    pub growth_bytes: i64,
}

/// Where live threads were started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadSite {
    pub site: String,
    pub via: Option<String>,
    pub alive: u64,
    /// Since the sites' baseline.
    pub growth: i64,
    /// The most frequent name pattern of its live threads (`pool-*-thread-*`) and how many.
    pub top_name: Option<(String, u64)>,
}

impl ZipSite {
    pub fn unended(&self) -> u64 {
        self.alive.saturating_add(self.pending)
    }
}

impl SitesObs {
    /// Reads the report's `sites` part; `None` unless its `status` is `on`. Rows without a site,
    /// and the "other" row of each kind, are skipped; a malformed row never fails the rest.
    pub fn from_report(sites: &Value) -> Option<SitesObs> {
        if sites.get("status").and_then(Value::as_str) != Some("on") {
            return None;
        }
        fn rows<'a>(sites: &'a Value, kind: &str) -> impl Iterator<Item = (&'a Value, String, Option<String>)> + 'a {
            sites
                .get(kind)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| !(r.get("site").and_then(Value::as_str) == Some("other") && r.get("sites").is_some()))
                .filter_map(|r| {
                    let site = r.get("site")?.as_str()?.to_string();
                    let via = r.get("via").and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_string);
                    Some((r, site, via))
                })
        }
        let u = |r: &Value, k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let i = |r: &Value, k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0);
        Some(SitesObs {
            zip: rows(sites, "zip")
                .map(|(r, site, via)| ZipSite {
                    site,
                    via,
                    deflater: r.get("kind").and_then(Value::as_str) == Some("deflater"),
                    alive: u(r, "alive"),
                    pending: u(r, "pending"),
                })
                .collect(),
            direct: rows(sites, "direct")
                .map(|(r, site, via)| DirectSite { site, via, live_bytes: u(r, "live_bytes"), growth_bytes: i(r, "growth_bytes") })
                .collect(),
            threads: rows(sites, "threads")
                .map(|(r, site, via)| {
                    let top_name = r
                        .get("names")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|n| Some((n.get("pattern")?.as_str()?.to_string(), u(n, "alive"))))
                        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
                    ThreadSite { site, via, alive: u(r, "alive"), growth: i(r, "growth"), top_name }
                })
                .collect(),
        })
    }
}

/// glibc's own account of its arenas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MallocObs {
    pub arena_count: u64,
    /// Free bytes glibc keeps in its arenas, resident or not (an upper bound).
    pub retained: u64,
    /// The part of `retained` resident now ([`crate::retention`]); `None` where unknown.
    #[serde(default)]
    pub retained_resident: Option<u64>,
    /// What one trim would release now, estimated from resident free memory.
    #[serde(default)]
    pub trimmable_resident: Option<u64>,
    pub in_use: u64,
    /// What `malloc_trim` could return at most now (whole free pages).
    pub trimmable_max: u64,
}

impl MallocObs {
    /// Free bytes the process pays for: the resident part where known, else the upper bound.
    pub fn retained_now(&self) -> u64 {
        self.retained_resident.unwrap_or(self.retained).min(self.retained)
    }
}

/// NMT's account, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NmtObs {
    pub committed: u64,
    /// Share of the RSS growth since the NMT baseline that NMT's committed growth explains
    /// ([`crate::nmt::NmtGrowth::coverage`]).
    pub coverage: Option<f64>,
    /// Committed bytes per NMT category, names as the JDK prints them.
    pub categories: BTreeMap<String, u64>,
}

/// The zip census: Inflaters and Deflaters holding native zlib memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipObs {
    /// Unended and not (yet) found unreachable.
    pub inflaters_alive: u64,
    /// Unreachable, waiting for the Cleaner to free their zlib memory.
    pub inflaters_pending: u64,
    pub deflaters_alive: u64,
    pub deflaters_pending: u64,
    pub estimated_native_bytes: u64,
    /// Unended streams a finalizer releases (subclasses with `finalize()`, ...), both kinds,
    /// alive or queued for the finalizer thread; not in the counts above.
    #[serde(default)]
    pub finalizable: u64,
    /// Of those, queued for the finalizer thread.
    #[serde(default)]
    pub finalizable_pending: u64,
}

/// One buffer pool (`BufferPoolMXBean`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferObs {
    pub count: u64,
    pub used: u64,
}

impl ZipObs {
    /// Reads the census object the Java side sends (`{"method", "inflaters":{"alive",
    /// "pending_cleanup"}, "deflaters":{..}, "estimated_native_bytes"}`). Only a `cleaner` census
    /// tells alive from pending; a `histogram` or `unavailable` one, or anything else, gives
    /// `None`, since its instance counts include streams already ended or collected.
    pub fn from_census(census: &Value) -> Option<ZipObs> {
        if census.get("method").and_then(Value::as_str) != Some("cleaner") {
            return None;
        }
        let count = |kind: &str, key: &str| census.get(kind).and_then(|k| k.get(key)).and_then(Value::as_u64);
        Some(ZipObs {
            inflaters_alive: count("inflaters", "alive")?,
            inflaters_pending: count("inflaters", "pending_cleanup").unwrap_or(0),
            deflaters_alive: count("deflaters", "alive")?,
            deflaters_pending: count("deflaters", "pending_cleanup").unwrap_or(0),
            estimated_native_bytes: census.get("estimated_native_bytes").and_then(Value::as_u64).unwrap_or(0),
            finalizable: ["inflaters", "deflaters"]
                .iter()
                .flat_map(|k| [count(k, "finalizable_alive"), count(k, "finalizable_pending")])
                .map(|n| n.unwrap_or(0))
                .fold(0u64, u64::saturating_add),
            finalizable_pending: count("inflaters", "finalizable_pending")
                .unwrap_or(0)
                .saturating_add(count("deflaters", "finalizable_pending").unwrap_or(0)),
        })
    }

    pub fn inflaters(&self) -> u64 {
        self.inflaters_alive.saturating_add(self.inflaters_pending)
    }

    pub fn deflaters(&self) -> u64 {
        self.deflaters_alive.saturating_add(self.deflaters_pending)
    }

    pub fn pending(&self) -> u64 {
        self.inflaters_pending.saturating_add(self.deflaters_pending)
    }

    /// Every unended stream: both kinds, alive or pending, and the finalizable ones.
    pub fn unended(&self) -> u64 {
        self.inflaters().saturating_add(self.deflaters()).saturating_add(self.finalizable)
    }

    /// Streams already unreachable whose zlib memory waits for the Cleaner or the finalizer
    /// thread: left to the GC instead of ended.
    pub fn awaiting_release(&self) -> u64 {
        self.pending().saturating_add(self.finalizable_pending)
    }
}

impl BufferObs {
    /// The pool named `name` (`direct` or `mapped`) from the JVM facts' `buffer_pools` array.
    pub fn from_jvm_facts(jvm: &Value, name: &str) -> Option<BufferObs> {
        let pool = jvm
            .get("buffer_pools")?
            .as_array()?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?;
        Some(BufferObs {
            count: pool.get("count").and_then(Value::as_u64)?,
            used: pool.get("used").and_then(Value::as_u64)?,
        })
    }
}

/// Committed metaspace from NMT categories: the `Metaspace` category (JDK 17+), else `Class`
/// (JDK 11, where class metadata is booked there).
pub fn metaspace_from_nmt(categories: &BTreeMap<String, u64>) -> Option<u64> {
    categories.get("Metaspace").or_else(|| categories.get("Class")).copied()
}

impl Observation {
    /// Resident bytes of one breakdown class, if the sample had a breakdown.
    pub fn part(&self, class: &str) -> Option<u64> {
        self.parts.get(class).copied()
    }

    /// Resident bytes outside the Java heap: RSS less the `java_heap` part when there is a
    /// breakdown, else RSS less the committed heap (an upper bound of the heap's resident share).
    pub fn off_heap(&self) -> Option<u64> {
        match (self.part("java_heap"), self.heap_committed) {
            (Some(h), _) => Some(self.rss.saturating_sub(h)),
            (None, Some(c)) => Some(self.rss.saturating_sub(c)),
            (None, None) => None,
        }
    }

    pub fn is_glibc(&self) -> bool {
        self.allocator == "glibc"
    }

    /// True when NMT runs (`summary` or `detail`) and this sample carries its numbers.
    pub fn nmt_on(&self) -> bool {
        self.nmt.is_some() && matches!(self.nmt_mode.as_str(), "summary" | "detail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_cleaner_census() {
        let census = json!({
            "method": "cleaner",
            "inflaters": {"alive": 1003, "pending_cleanup": 12, "instances": null},
            "deflaters": {"alive": 2, "pending_cleanup": 0, "instances": null},
            "estimated_native_bytes": 41_676_800u64,
            "scan_ns": 123_456, "truncated": false, "reason": null
        });
        let z = ZipObs::from_census(&census).expect("cleaner census");
        assert_eq!(z.inflaters_alive, 1003);
        assert_eq!(z.inflaters_pending, 12);
        assert_eq!(z.inflaters(), 1015);
        assert_eq!(z.deflaters(), 2);
        assert_eq!(z.pending(), 12);
        assert_eq!(z.estimated_native_bytes, 41_676_800);
        assert_eq!((z.finalizable, z.finalizable_pending), (0, 0), "a census without the Finalizer part");

        let census = json!({
            "method": "cleaner",
            "inflaters": {"alive": 3, "pending_cleanup": 0, "finalizable_alive": 80, "finalizable_pending": 70},
            "deflaters": {"alive": 0, "pending_cleanup": 0, "finalizable_alive": 20, "finalizable_pending": 20},
            "estimated_native_bytes": 16_998_400u64
        });
        let z = ZipObs::from_census(&census).expect("cleaner census");
        assert_eq!((z.inflaters(), z.finalizable, z.finalizable_pending), (3, 190, 90));
    }

    #[test]
    fn histogram_and_unavailable_censuses_give_none() {
        let hist = json!({"method": "histogram", "inflaters": {"alive": null, "pending_cleanup": null,
            "instances": 40}, "deflaters": {"alive": null, "pending_cleanup": null, "instances": 0},
            "estimated_native_bytes": 1_638_400});
        assert_eq!(ZipObs::from_census(&hist), None);
        assert_eq!(ZipObs::from_census(&json!({"method": "unavailable"})), None);
        assert_eq!(ZipObs::from_census(&Value::Null), None);
    }

    #[test]
    fn finds_the_direct_pool() {
        let jvm = json!({"buffer_pools": [
            {"name": "mapped", "count": 0, "used": 0, "capacity": 0},
            {"name": "direct", "count": 17, "used": 270_336, "capacity": 270_336},
            {"name": "mapped - 'non-volatile memory'", "count": 0, "used": 0, "capacity": 0}
        ]});
        assert_eq!(BufferObs::from_jvm_facts(&jvm, "direct"), Some(BufferObs { count: 17, used: 270_336 }));
        assert_eq!(BufferObs::from_jvm_facts(&json!({}), "direct"), None);
    }

    #[test]
    fn metaspace_prefers_the_metaspace_category() {
        let mut c = BTreeMap::new();
        c.insert("Class".to_string(), 1_000);
        assert_eq!(metaspace_from_nmt(&c), Some(1_000));
        c.insert("Metaspace".to_string(), 5_000);
        assert_eq!(metaspace_from_nmt(&c), Some(5_000));
        assert_eq!(metaspace_from_nmt(&BTreeMap::new()), None);
    }

    #[test]
    fn reads_the_sites_part_and_leaves_out_other() {
        let sites = json!({
            "status": "on", "direct_sample_bytes": 262144,
            "direct": [{"site": "com.acme.Cache.fill(Cache.java:41)", "via": "java.nio.ByteBuffer.allocateDirect",
                        "frames": [], "live_bytes": 300, "growth_bytes": -20, "sampled_buffers": 4},
                       {"site": "other", "sites": 3, "live_bytes": 9, "sampled_buffers": 1}],
            "threads": [{"site": "com.acme.Server.accept(Server.java:77)", "frames": [], "alive": 120, "growth": 110,
                         "names": [{"pattern": "worker-*", "alive": 100}, {"pattern": "idle-*", "alive": 20}]}],
            "threads_untracked": 14,
            "zip": [{"site": "com.acme.Ingest.read(Ingest.java:88)", "via": "java.util.zip.GZIPInputStream.<init>",
                     "frames": [], "kind": "inflater", "alive": 1412, "pending": 3},
                    {"site": "com.acme.Out.write(Out.java:5)", "kind": "deflater", "alive": 2, "pending": 0},
                    {"site": "other", "sites": 4, "alive": 7, "pending": 0}]
        });
        let s = SitesObs::from_report(&sites).expect("on");
        assert_eq!(s.zip.len(), 2);
        assert_eq!(s.zip[0].via.as_deref(), Some("java.util.zip.GZIPInputStream.<init>"));
        assert_eq!((s.zip[0].unended(), s.zip[0].deflater, s.zip[1].deflater), (1415, false, true));
        assert_eq!(s.direct, vec![DirectSite {
            site: "com.acme.Cache.fill(Cache.java:41)".into(),
            via: Some("java.nio.ByteBuffer.allocateDirect".into()),
            live_bytes: 300,
            growth_bytes: -20
        }]);
        assert_eq!(s.threads[0].top_name, Some(("worker-*".to_string(), 100)));
        assert_eq!((s.threads[0].alive, s.threads[0].growth, s.threads[0].via.clone()), (120, 110, None));

        assert_eq!(SitesObs::from_report(&json!({"status": "off"})), None);
        assert_eq!(SitesObs::from_report(&json!({"status": "unavailable", "problem": "x"})), None);
        assert_eq!(SitesObs::from_report(&Value::Null), None);
        assert_eq!(SitesObs::from_report(&json!({"status": "on", "direct": 5})), Some(SitesObs::default()));
    }

    #[test]
    fn reads_the_native_sites_part() {
        let part = json!({
            "status": "on", "sample_bytes": 524288, "since_ms": 1_733_280_000_000u64, "libraries": 14, "slots": 37,
            "sampled": 1234, "dropped": 0, "java_frames": true, "live_bytes": 310_001_234u64, "growth_bytes": -5,
            "sites": [
                {"id": 3, "label": "libleak.so leak_into_cache <- LeakyCache.put",
                 "native": [{"library": "libleak.so", "symbol": "leak_into_cache", "offset": 42},
                            {"library": "libjvm.so", "offset": 4096}, "garbage"],
                 "java": ["LeakyCache.put(LeakyCache.java:12)", 7], "thread": "worker-3",
                 "live_bytes": 310_000_000u64, "growth_bytes": 5_000_000, "live_samples": 600, "allocated_bytes": 900_000_000u64},
                {"label": "no id: skipped", "live_bytes": 5},
                {"id": 4, "native": [{"library": "libz.so.1", "symbol": "inflateInit2_", "offset": 16}], "live_bytes": "x"},
                {"site": "other", "sites": 12, "live_bytes": 1234, "growth_bytes": 0}
            ]
        });
        let n = NativeSitesObs::from_report(&part).expect("on");
        assert_eq!((n.sample_bytes, n.since_ms, n.java_frames, n.live_bytes, n.growth_bytes), (524_288, 1_733_280_000_000, true, 310_001_234, -5));
        assert_eq!(n.sites.len(), 2);
        let s = &n.sites[0];
        assert_eq!((s.id, s.label.as_str(), s.thread.as_deref()), (3, "libleak.so leak_into_cache <- LeakyCache.put", Some("worker-3")));
        assert_eq!(s.native, vec!["libleak.so leak_into_cache+0x2a".to_string(), "libjvm.so+0x1000".into(), "garbage".into()]);
        assert_eq!(s.java, vec!["LeakyCache.put(LeakyCache.java:12)".to_string()]);
        assert_eq!((s.live_bytes, s.growth_bytes, s.live_samples, s.allocated_bytes), (310_000_000, 5_000_000, 600, 900_000_000));
        assert_eq!((n.sites[1].label.as_str(), n.sites[1].live_bytes), ("libz.so.1 inflateInit2_+0x10", 0), "label from the first frame");
        assert_eq!(n.other, Some(NativeOther { sites: 12, live_bytes: 1234, growth_bytes: 0 }));

        assert_eq!(NativeSitesObs::from_report(&json!({"status": "off"})), None);
        assert_eq!(NativeSitesObs::from_report(&json!({"status": "unavailable", "problem": "x"})), None);
        assert_eq!(NativeSitesObs::from_report(&Value::Null), None);
        assert_eq!(NativeSitesObs::from_report(&json!({"status": "on", "sites": {}})), Some(NativeSitesObs::default()));
    }

    #[test]
    fn off_heap_uses_the_breakdown_then_the_committed_heap() {
        let mut o = Observation { rss: 1_000, heap_committed: Some(600), ..Default::default() };
        assert_eq!(o.off_heap(), Some(400));
        o.parts.insert("java_heap".into(), 300);
        assert_eq!(o.off_heap(), Some(700));
    }
}
