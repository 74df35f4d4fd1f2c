//! One sample of the process: what the core reads itself plus the facts the JVM handed over,
//! serialised as one line of the report stream.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::heap_info::{self, HeapInfo};
use crate::proc_fs::ProcRoot;
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
    /// What the JVM told the agent (heap usage, threads, versions, buffer pools): passed through
    /// as given, less the texts the core parses itself.
    pub jvm: Value,
    pub problems: Vec<Problem>,
}

/// Texts the JVM printed (diagnostic command output), taken out of the facts so they are parsed
/// here and not echoed into every report line.
#[derive(Debug, Default)]
struct JvmTexts {
    heap_info: Option<String>,
    nmt_summary: Option<String>,
    nmt_detail: Option<String>,
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
        }
    }
}

/// The native core's state between samples.
#[derive(Debug, Default)]
pub struct Core {
    proc: ProcRoot,
    seq: u64,
}

impl Core {
    pub fn new(config: &CoreConfig) -> Self {
        let proc = match &config.proc_root {
            Some(p) if !p.is_empty() => ProcRoot::new(p),
            _ => ProcRoot::default(),
        };
        Core { proc, seq: 0 }
    }

    pub fn proc_root(&self) -> &ProcRoot {
        &self.proc
    }

    /// Takes one sample. Unreadable files become `problems`, never an error: an agent that
    /// cannot read `smaps_rollup` still reports what `status` says.
    pub fn sample(&mut self, mut facts: Value) -> Result<Sample> {
        let texts = JvmTexts::take_from(&mut facts);
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
        let mut totals = None;
        let mut source = None;
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
        if let Some(st) = status.as_deref() {
            match (totals.as_mut(), rollup::parse_status(st)) {
                // The rollup cannot separate shared memory from file pages; status can.
                (Some(t), Some(s)) => {
                    t.shmem = s.shmem.min(t.file);
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
        }
        let threads = status.as_deref().and_then(rollup::status_threads);

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
            jvm: facts,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let mut core = Core::new(&CoreConfig::default());
        let s = core.sample(Value::Null).expect("sample");
        let t = s.totals.expect("totals from /proc/self");
        assert!(t.rss > 0);
        assert_eq!(t.anon + t.file + t.shmem, t.rss);
        assert_eq!(s.seq, 1);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn falls_back_to_status_and_reports_the_missing_rollup() {
        let dir = std::env::temp_dir().join(format!("od-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("status"), "VmRSS:\t 2048 kB\nRssAnon:\t 1024 kB\nRssFile:\t 1024 kB\n")
            .expect("write");
        let mut core = Core::new(&CoreConfig { proc_root: Some(dir.display().to_string()) });
        let s = core.sample(Value::Null).expect("sample");
        assert_eq!(s.totals_source, Some(TotalsSource::Status));
        assert_eq!(s.totals.expect("totals").rss, 2048 * 1024);
        assert!(s.problems.iter().any(|p| p.source == "smaps_rollup" && p.message.contains("smaps_rollup")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_readable_still_gives_a_sample() {
        let mut core = Core::new(&CoreConfig { proc_root: Some("/nonexistent/od".into()) });
        let s = core.sample(Value::Null).expect("sample");
        assert!(s.totals.is_none());
        assert_eq!(s.problems.len(), 2);
    }
}
