//! glibc malloc settings applied from the agent's `premain` through `mallopt`, for
//! users who cannot change the JVM's environment.
//!
//! | option          | `mallopt`               | environment it yields to                      |
//! |-----------------|-------------------------|-----------------------------------------------|
//! | `arenaMax`      | `M_ARENA_MAX` (-8)      | `MALLOC_ARENA_MAX`, `glibc.malloc.arena_max`   |
//! | `mmapThreshold` | `M_MMAP_THRESHOLD` (-3) | `MALLOC_MMAP_THRESHOLD_`, `glibc.malloc.mmap_threshold` |
//! | `trimThreshold` | `M_TRIM_THRESHOLD` (-1) | `MALLOC_TRIM_THRESHOLD_`, `glibc.malloc.trim_threshold` |
//! | `topPad`        | `M_TOP_PAD` (-2)        | `MALLOC_TOP_PAD_`, `glibc.malloc.top_pad`      |
//!
//! Rules:
//! - Only under glibc's `malloc` (`mallopt` is resolved with `dlsym`, so a musl build links);
//!   under jemalloc, tcmalloc or musl every setting is `ignored`, and the message says where
//!   that allocator takes its settings from.
//! - What the user set in the environment wins: a setting named there (the `MALLOC_*`
//!   variable or the `GLIBC_TUNABLES` entry) is `skipped`, never overridden.
//! - `mallopt` runs late: in `premain` the JVM has started threads, and some have arenas.
//!   `arenaMax` caps only the arenas created afterwards, and glibc fixes its arena limit once
//!   a process passes `arena_test` arenas (8 on 64-bit) without a cap: past that, `mallopt`
//!   changes nothing and only `MALLOC_ARENA_MAX` in the environment helps. The message counts
//!   the arenas that existed and says so. `mmapThreshold` fixes the threshold and turns off
//!   glibc's dynamic threshold (which otherwise rises to the size of the largest mmapped chunk
//!   freed, up to 32 MiB). `trimThreshold` and `topPad` take effect at the next `free` or heap
//!   growth; setting either also turns off the dynamic mmap threshold, as in glibc.

use std::ffi::c_int;

use serde::Serialize;

use crate::allocator::{self, AllocatorKind, AllocatorSettings};
use crate::error::{Error, Result};
use crate::malloc_info;
use crate::units::{human_bytes, parse_bytes};

/// glibc's largest `M_MMAP_THRESHOLD` on 64-bit (`HEAP_MAX_SIZE / 2`); `mallopt` refuses more.
pub const MMAP_THRESHOLD_MAX: u64 = 32 * 1024 * 1024;
/// glibc's default `arena_test` on 64-bit: past this many arenas the limit is fixed.
const ARENA_TEST_DEFAULT: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MallocSetting {
    ArenaMax,
    MmapThreshold,
    TrimThreshold,
    TopPad,
}

impl MallocSetting {
    pub const ALL: [MallocSetting; 4] = [
        MallocSetting::ArenaMax,
        MallocSetting::MmapThreshold,
        MallocSetting::TrimThreshold,
        MallocSetting::TopPad,
    ];

    /// The agent option's name (after glibc's tunable).
    pub fn option_name(self) -> &'static str {
        match self {
            MallocSetting::ArenaMax => "arenaMax",
            MallocSetting::MmapThreshold => "mmapThreshold",
            MallocSetting::TrimThreshold => "trimThreshold",
            MallocSetting::TopPad => "topPad",
        }
    }

    pub fn from_option_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.option_name() == name)
    }

    /// The `mallopt` parameter number (`malloc.h`).
    pub fn mallopt_param(self) -> c_int {
        match self {
            MallocSetting::ArenaMax => -8,
            MallocSetting::MmapThreshold => -3,
            MallocSetting::TrimThreshold => -1,
            MallocSetting::TopPad => -2,
        }
    }

    /// The environment variable glibc reads for it.
    pub fn env_var(self) -> &'static str {
        match self {
            MallocSetting::ArenaMax => "MALLOC_ARENA_MAX",
            MallocSetting::MmapThreshold => "MALLOC_MMAP_THRESHOLD_",
            MallocSetting::TrimThreshold => "MALLOC_TRIM_THRESHOLD_",
            MallocSetting::TopPad => "MALLOC_TOP_PAD_",
        }
    }

    /// Its name in `GLIBC_TUNABLES`.
    pub fn tunable(self) -> &'static str {
        match self {
            MallocSetting::ArenaMax => "glibc.malloc.arena_max",
            MallocSetting::MmapThreshold => "glibc.malloc.mmap_threshold",
            MallocSetting::TrimThreshold => "glibc.malloc.trim_threshold",
            MallocSetting::TopPad => "glibc.malloc.top_pad",
        }
    }

    fn env_value(self, s: &AllocatorSettings) -> Option<&String> {
        match self {
            MallocSetting::ArenaMax => s.malloc_arena_max.as_ref(),
            MallocSetting::MmapThreshold => s.malloc_mmap_threshold.as_ref(),
            MallocSetting::TrimThreshold => s.malloc_trim_threshold.as_ref(),
            MallocSetting::TopPad => s.malloc_top_pad.as_ref(),
        }
    }
}

/// One setting the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tuning {
    pub setting: MallocSetting,
    pub value: u64,
}

impl Tuning {
    /// `("arenaMax", "2")`, `("mmapThreshold", "1m")`. Sizes take `k`/`m`/`g`; `arenaMax` is a
    /// plain count of at least 1. Values `mallopt` cannot take (its argument is an `int`) are
    /// refused here, with the reason.
    pub fn parse(name: &str, value: &str) -> Result<Tuning> {
        let setting = MallocSetting::from_option_name(name.trim()).ok_or_else(|| {
            Error::invalid(format!(
                "unknown malloc setting {name:?} (arenaMax, mmapThreshold, trimThreshold, topPad)"
            ))
        })?;
        let value = match setting {
            MallocSetting::ArenaMax => {
                value.trim().parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                    Error::invalid(format!("arenaMax {value:?}: a count, 1 or more"))
                })?
            }
            _ => parse_bytes(value)?,
        };
        let limit = match setting {
            MallocSetting::MmapThreshold => MMAP_THRESHOLD_MAX,
            _ => i32::MAX as u64,
        };
        if value > limit {
            return Err(Error::invalid(format!(
                "{} {value:?}: glibc takes at most {limit} ({})",
                setting.option_name(),
                human_bytes(limit)
            )));
        }
        Ok(Tuning { setting, value })
    }
}

/// `arenaMax=2,mmapThreshold=1m`: the settings, in order. Empty text is no settings.
pub fn parse_tunings(text: &str) -> Result<Vec<Tuning>> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("malloc setting {p:?} is not name=value")))?;
            Tuning::parse(k, v)
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TuningStatus {
    /// `mallopt` accepted it.
    Applied,
    /// The environment sets it; left alone.
    Skipped,
    /// `malloc` is not glibc's.
    Ignored,
    /// `mallopt` is missing or returned 0.
    Failed,
}

/// What became of one [`Tuning`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TuningOutcome {
    pub setting: MallocSetting,
    pub requested: u64,
    pub applied: bool,
    pub status: TuningStatus,
    pub message: String,
}

impl TuningOutcome {
    fn new(t: &Tuning, status: TuningStatus, message: String) -> Self {
        TuningOutcome {
            setting: t.setting,
            requested: t.value,
            applied: status == TuningStatus::Applied,
            status,
            message,
        }
    }
}

/// For each tuning: the outcome decided without calling `mallopt`, or `None` where it must be
/// called. Pure, so the rules are tested without touching the allocator.
fn plan(
    tunings: &[Tuning],
    kind: AllocatorKind,
    env: &AllocatorSettings,
) -> Vec<(Tuning, Option<TuningOutcome>)> {
    tunings
        .iter()
        .map(|t| {
            let decided = if kind != AllocatorKind::Glibc {
                Some(TuningOutcome::new(t, TuningStatus::Ignored, ignored_message(kind)))
            } else if let Some(v) = t.setting.env_value(env) {
                let msg = format!("skipped: environment sets {}={v}", t.setting.env_var());
                Some(TuningOutcome::new(t, TuningStatus::Skipped, msg))
            } else if let Some(v) = env.glibc_tunables.get(t.setting.tunable()) {
                let msg =
                    format!("skipped: environment sets GLIBC_TUNABLES {}={v}", t.setting.tunable());
                Some(TuningOutcome::new(t, TuningStatus::Skipped, msg))
            } else {
                None
            };
            (*t, decided)
        })
        .collect()
}

fn ignored_message(kind: AllocatorKind) -> String {
    let whose = match kind {
        AllocatorKind::Jemalloc => "jemalloc, which takes its settings from MALLOC_CONF",
        AllocatorKind::Tcmalloc => "tcmalloc, which takes its settings from TCMALLOC_* variables",
        AllocatorKind::Musl => "musl's, which has no such setting",
        AllocatorKind::Glibc | AllocatorKind::Unknown => "not glibc's",
    };
    format!("ignored: malloc is {whose}")
}

/// Where a setting the agent applied came from: the native library loaded as a JVMTI agent
/// (`-agentpath`, before the JVM starts its own threads), `premain` (`-javaagent`) or
/// `agentmain` (a late attach).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliedBy {
    Agentpath,
    Premain,
    Agentmain,
}

impl AppliedBy {
    pub fn parse(text: &str) -> Result<AppliedBy> {
        match text {
            "agentpath" => Ok(AppliedBy::Agentpath),
            "premain" => Ok(AppliedBy::Premain),
            "agentmain" => Ok(AppliedBy::Agentmain),
            other => Err(Error::invalid(format!("unknown origin {other:?} (agentpath, premain, agentmain)"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            AppliedBy::Agentpath => "-agentpath",
            AppliedBy::Premain => "premain",
            AppliedBy::Agentmain => "agentmain",
        }
    }
}

/// One outcome as the process keeps it: who asked, and how many arenas existed then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub outcome: TuningOutcome,
    pub by: AppliedBy,
    pub arenas_before: Option<usize>,
}

/// Every outcome of this process, oldest first: the `-agentpath` library and the Java agent
/// share it when the Java agent loads the same file (see `NativeLoader`).
static RECORDS: std::sync::Mutex<Vec<Recorded>> = std::sync::Mutex::new(Vec::new());

fn records() -> Vec<Recorded> {
    RECORDS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The one line that says an arena cap came after the arenas: `None` when it did not.
pub fn cap_note(cap: u64, existed: usize, by: AppliedBy) -> Option<String> {
    if (existed as u64) <= cap {
        return None;
    }
    let mut m = format!(
        "arenaMax={cap} limits only new arenas: {existed} existed when {} applied it and glibc never frees one",
        by.name()
    );
    if existed > ARENA_TEST_DEFAULT {
        m.push_str(&format!(" (past {ARENA_TEST_DEFAULT} glibc may have fixed its own limit already)"));
    }
    m.push_str(&format!(
        "; to cap them all start the JVM with -agentpath:<library>=arenaMax={cap} \
         (java -jar offheap-doctor.jar agentpath prints it) or MALLOC_ARENA_MAX={cap}"
    ));
    Some(m)
}

/// [`apply`] on behalf of `by`, kept for the report. A setting an earlier caller applied (the
/// `-agentpath` library at start, then the Java agent's premain) is not applied again.
pub fn apply_as(tunings: &[Tuning], by: AppliedBy) -> Vec<TuningOutcome> {
    let earlier = records();
    let mut fresh = Vec::new();
    let mut slots: Vec<Option<TuningOutcome>> = Vec::new();
    for t in tunings {
        match earlier.iter().rev().find(|r| r.outcome.setting == t.setting && r.outcome.applied) {
            Some(r) => {
                let msg = format!(
                    "skipped: {} applied {}={} already",
                    r.by.name(),
                    t.setting.option_name(),
                    r.outcome.requested
                );
                slots.push(Some(TuningOutcome::new(t, TuningStatus::Skipped, msg)));
            }
            None => {
                slots.push(None);
                fresh.push(*t);
            }
        }
    }
    let arenas_before = arena_count();
    let mut applied = apply_counted(&fresh, || arenas_before).into_iter();
    let outcomes: Vec<TuningOutcome> =
        slots.into_iter().filter_map(|s| s.or_else(|| applied.next())).collect();
    let mut rec = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
    for o in &outcomes {
        if rec.len() < 64 {
            rec.push(Recorded { outcome: o.clone(), by, arenas_before });
        }
    }
    outcomes
}

fn arena_count() -> Option<usize> {
    if allocator::current_kind() != AllocatorKind::Glibc {
        return None;
    }
    malloc_info::collect_malloc_info().ok().map(|mi| mi.arenas.len())
}

/// `-agentpath:<library>=arenaMax=2,mmapThreshold=128k`: applies what it can and returns the
/// lines to print, one per setting and one per bad part. Never fails: a JVMTI agent that fails
/// stops the JVM.
pub fn agent_onload(options: Option<&str>) -> Vec<String> {
    let text = options.unwrap_or("").trim();
    if text.is_empty() {
        return vec!["-agentpath given no settings (arenaMax=2,mmapThreshold=128k,trimThreshold=...,topPad=...); \
                     nothing applied"
            .into()];
    }
    let mut lines = Vec::new();
    let mut tunings = Vec::new();
    let mut auto = false;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(v) = part.strip_prefix("tune=") {
            if v == "auto" {
                auto = true;
            } else {
                lines.push(format!("-agentpath {part}: not applied: tune takes only auto"));
            }
            continue;
        }
        match parse_tunings(part) {
            Ok(t) => tunings.extend(t),
            Err(e) => lines.push(format!("-agentpath {part}: not applied: {e}")),
        }
    }
    if auto {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (preset, said) = tune_auto(cpus, &tunings);
        lines.push(said);
        tunings.extend(preset);
    }
    for o in apply_as(&tunings, AppliedBy::Agentpath) {
        lines.push(format!("-agentpath {}={}: {}", o.setting.option_name(), o.requested, o.message));
    }
    lines
}

/// `tune=auto`: an arena cap of the CPUs the process may use (its affinity and its cgroup's CPU
/// quota, at least 2) and a fixed 128 KiB mmap threshold, each unless given explicitly. The
/// benchmark (`bench/trim_bench.py`) measured these two with `trim=auto` as the lowest RSS.
fn tune_auto(cpus: usize, explicit: &[Tuning]) -> (Vec<Tuning>, String) {
    let cap = cpus.max(2) as u64;
    let mut preset = Vec::new();
    let mut parts = Vec::new();
    for (setting, value, why) in [
        (MallocSetting::ArenaMax, cap, format!("arenaMax={cap} ({cpus} CPUs)")),
        (MallocSetting::MmapThreshold, 128 << 10, "mmapThreshold=128k".to_string()),
    ] {
        if explicit.iter().any(|t| t.setting == setting) {
            parts.push(format!("{} as given", setting.option_name()));
        } else {
            preset.push(Tuning { setting, value });
            parts.push(why);
        }
    }
    (preset, format!("-agentpath tune=auto: {}", parts.join(", ")))
}

/// One setting in force and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InForce {
    pub setting: MallocSetting,
    pub value: String,
    /// `agentpath`, `premain`, `agentmain` or `environment`.
    pub source: String,
    /// The variable (`MALLOC_ARENA_MAX`, `GLIBC_TUNABLES`) for `environment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
}

/// The malloc settings in one sample: in force (from the agent or the environment), what the
/// agent was asked for, the arena count, and the note when a cap came after the arenas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct TuningView {
    pub in_force: Vec<InForce>,
    pub requested: Vec<Recorded>,
    pub arena_count: Option<usize>,
    pub arena_cap: Option<u64>,
    pub note: Option<String>,
}

/// The sample's [`TuningView`]: `arena_count` is glibc's now (`None` under other allocators).
pub fn view(kind: AllocatorKind, env: &AllocatorSettings, arena_count: Option<usize>) -> TuningView {
    view_of(&records(), kind, env, arena_count)
}

fn view_of(
    recs: &[Recorded],
    kind: AllocatorKind,
    env: &AllocatorSettings,
    arena_count: Option<usize>,
) -> TuningView {
    let mut in_force = Vec::new();
    let mut cap = None;
    let mut note = None;
    for s in MallocSetting::ALL {
        if kind == AllocatorKind::Glibc {
            if let Some(r) = recs.iter().find(|r| r.outcome.setting == s && r.outcome.applied) {
                in_force.push(InForce {
                    setting: s,
                    value: r.outcome.requested.to_string(),
                    source: serde_json::to_value(r.by)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    variable: None,
                });
                if s == MallocSetting::ArenaMax {
                    cap = Some(r.outcome.requested);
                    note = cap_note(r.outcome.requested, r.arenas_before.unwrap_or(0), r.by);
                }
                continue;
            }
        }
        let from_env = s
            .env_value(env)
            .map(|v| (v.clone(), s.env_var().to_string()))
            .or_else(|| env.glibc_tunables.get(s.tunable()).map(|v| (v.clone(), "GLIBC_TUNABLES".into())));
        if let Some((value, variable)) = from_env {
            if s == MallocSetting::ArenaMax && kind == AllocatorKind::Glibc {
                cap = value.trim().parse().ok();
            }
            in_force.push(InForce { setting: s, value, source: "environment".into(), variable: Some(variable) });
        }
    }
    TuningView { in_force, requested: recs.to_vec(), arena_count, arena_cap: cap, note }
}

/// Applies `tunings` in order through `mallopt`, each one's outcome in the same order.
pub fn apply(tunings: &[Tuning]) -> Vec<TuningOutcome> {
    apply_counted(tunings, arena_count)
}

/// [`apply`], the arenas counted by `arenas_before` only when some setting reaches mallopt.
fn apply_counted(tunings: &[Tuning], arenas_before: impl FnOnce() -> Option<usize>) -> Vec<TuningOutcome> {
    let kind = allocator::current_kind();
    let env = allocator::detect().settings;
    let steps = plan(tunings, kind, &env);
    if steps.iter().all(|(_, d)| d.is_some()) {
        return steps.into_iter().filter_map(|(_, d)| d).collect();
    }
    // Counted before any setting changes: the arenas that a cap can no longer undo.
    let arenas_before = arenas_before();
    let mallopt = allocator::symbol("mallopt");
    steps
        .into_iter()
        .map(|(t, decided)| {
            decided.unwrap_or_else(|| match mallopt {
                None => {
                    TuningOutcome::new(&t, TuningStatus::Failed, "this glibc has no mallopt".into())
                }
                Some(f) => call_mallopt(f, &t, arenas_before),
            })
        })
        .collect()
}

/// [`parse_tunings`] then [`apply`].
pub fn apply_text(text: &str) -> Result<Vec<TuningOutcome>> {
    Ok(apply(&parse_tunings(text)?))
}

fn call_mallopt(
    f: *mut std::ffi::c_void,
    t: &Tuning,
    arenas_before: Option<usize>,
) -> TuningOutcome {
    // SAFETY: the symbol is glibc's `int mallopt(int param, int value)` (the caller checked
    // that malloc is glibc's); resolved by name so a musl build links.
    let mallopt: extern "C" fn(c_int, c_int) -> c_int = unsafe { std::mem::transmute(f) };
    let Ok(value) = c_int::try_from(t.value) else {
        let msg = format!("failed: {} does not fit mallopt's int", t.value);
        return TuningOutcome::new(t, TuningStatus::Failed, msg);
    };
    if mallopt(t.setting.mallopt_param(), value) != 1 {
        let msg = format!("failed: mallopt({}, {value}) returned 0", t.setting.mallopt_param());
        return TuningOutcome::new(t, TuningStatus::Failed, msg);
    }
    let message = match t.setting {
        MallocSetting::ArenaMax => {
            let mut m = format!("applied: at most {value} arena(s) from now on");
            match arenas_before {
                Some(n) if n > ARENA_TEST_DEFAULT => m.push_str(&format!(
                    "; {n} existed already: the cap limits only new arenas, and past \
                     {ARENA_TEST_DEFAULT} glibc may have fixed its limit: start the JVM with \
                     -agentpath:<library>=arenaMax={value} or MALLOC_ARENA_MAX={value} to cap them all"
                )),
                Some(n) if n as u64 > t.value => m.push_str(&format!(
                    "; {n} existed already: the cap limits only new arenas; start the JVM with \
                     -agentpath:<library>=arenaMax={value} or MALLOC_ARENA_MAX={value} to cap them all"
                )),
                Some(n) => m.push_str(&format!("; {n} existed already")),
                None => {}
            }
            m
        }
        MallocSetting::MmapThreshold => format!(
            "applied: chunks of {} and more that free space cannot serve get their own mmap; \
             the dynamic threshold is off",
            human_bytes(t.value)
        ),
        MallocSetting::TrimThreshold => format!(
            "applied: free() gives a heap's top back to the kernel once {} is free there",
            human_bytes(t.value)
        ),
        MallocSetting::TopPad => {
            format!("applied: each heap growth asks {} more than needed", human_bytes(t.value))
        }
    };
    TuningOutcome::new(t, TuningStatus::Applied, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::parse_glibc_tunables;

    fn t(name: &str, value: &str) -> Tuning {
        Tuning::parse(name, value).expect("tuning")
    }

    #[test]
    fn parses_names_and_sizes() {
        assert_eq!(
            parse_tunings("arenaMax=2, mmapThreshold=128k,trimThreshold=64m,topPad=0").ok(),
            Some(vec![
                Tuning { setting: MallocSetting::ArenaMax, value: 2 },
                Tuning { setting: MallocSetting::MmapThreshold, value: 128 << 10 },
                Tuning { setting: MallocSetting::TrimThreshold, value: 64 << 20 },
                Tuning { setting: MallocSetting::TopPad, value: 0 },
            ])
        );
        assert_eq!(parse_tunings("").ok(), Some(vec![]));
        for bad in [
            "arenaMax=0",
            "arenaMax=2k",
            "mmapThreshold=64m",
            "trimThreshold=4g",
            "topPad=lots",
            "arena_max=2",
            "arenaMax",
        ] {
            let e = parse_tunings(bad).expect_err(bad);
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
        assert!(parse_tunings("mmapThreshold=32m").is_ok());
    }

    #[test]
    fn names_match_glibc() {
        for s in MallocSetting::ALL {
            assert_eq!(MallocSetting::from_option_name(s.option_name()), Some(s));
            let json = serde_json::to_value(s).expect("json");
            assert_eq!(json, serde_json::Value::from(s.option_name()));
            assert!(s.tunable().starts_with("glibc.malloc."));
        }
    }

    #[test]
    fn other_allocators_ignore_every_setting() {
        let ts = [t("arenaMax", "2"), t("topPad", "1m")];
        for (kind, says) in [
            (AllocatorKind::Jemalloc, "MALLOC_CONF"),
            (AllocatorKind::Tcmalloc, "TCMALLOC_"),
            (AllocatorKind::Musl, "musl"),
            (AllocatorKind::Unknown, "not glibc"),
        ] {
            for (_, d) in plan(&ts, kind, &AllocatorSettings::default()) {
                let d = d.expect("decided without mallopt");
                assert_eq!((d.status, d.applied), (TuningStatus::Ignored, false));
                assert!(d.message.starts_with("ignored: ") && d.message.contains(says), "{d:?}");
            }
        }
    }

    #[test]
    fn the_environment_wins() {
        let env = AllocatorSettings {
            malloc_arena_max: Some("2".into()),
            glibc_tunables: parse_glibc_tunables(
                "glibc.malloc.mmap_threshold=131072:glibc.malloc.tcache_count=0",
            ),
            ..AllocatorSettings::default()
        };
        let ts = [t("arenaMax", "1"), t("mmapThreshold", "64k"), t("trimThreshold", "1m")];
        let p = plan(&ts, AllocatorKind::Glibc, &env);
        let arena = p[0].1.as_ref().expect("skipped");
        assert_eq!(arena.status, TuningStatus::Skipped);
        assert_eq!(arena.message, "skipped: environment sets MALLOC_ARENA_MAX=2");
        let mmap = p[1].1.as_ref().expect("skipped");
        assert_eq!(
            mmap.message,
            "skipped: environment sets GLIBC_TUNABLES glibc.malloc.mmap_threshold=131072"
        );
        assert_eq!(p[2].1, None, "trimThreshold is the agent's to set");
    }

    fn rec(name: &str, value: &str, by: AppliedBy, before: usize) -> Recorded {
        Recorded {
            outcome: TuningOutcome::new(&t(name, value), TuningStatus::Applied, "applied".into()),
            by,
            arenas_before: Some(before),
        }
    }

    #[test]
    fn a_cap_after_the_arenas_says_it_limits_only_new_ones() {
        assert_eq!(cap_note(2, 2, AppliedBy::Agentpath), None);
        assert_eq!(cap_note(4, 3, AppliedBy::Premain), None);
        let n = cap_note(2, 16, AppliedBy::Premain).expect("note");
        assert!(n.starts_with("arenaMax=2 limits only new arenas: 16 existed when premain applied it"), "{n}");
        assert!(n.contains("past 8") && n.contains("-agentpath:<library>=arenaMax=2") && n.contains("MALLOC_ARENA_MAX=2"));
        let n = cap_note(2, 5, AppliedBy::Agentmain).expect("note");
        assert!(n.contains("5 existed when agentmain applied it") && !n.contains("past 8"), "{n}");
    }

    #[test]
    fn the_view_names_each_setting_in_force_and_its_source() {
        let env = AllocatorSettings {
            malloc_mmap_threshold: Some("131072".into()),
            glibc_tunables: parse_glibc_tunables("glibc.malloc.top_pad=0"),
            ..AllocatorSettings::default()
        };
        let recs = [rec("arenaMax", "2", AppliedBy::Agentpath, 2), rec("trimThreshold", "1m", AppliedBy::Premain, 16)];
        let v = view_of(&recs, AllocatorKind::Glibc, &env, Some(2));
        let got: Vec<_> =
            v.in_force.iter().map(|f| (f.setting.option_name(), f.value.as_str(), f.source.as_str())).collect();
        assert_eq!(
            got,
            [
                ("arenaMax", "2", "agentpath"),
                ("mmapThreshold", "131072", "environment"),
                ("trimThreshold", "1048576", "premain"),
                ("topPad", "0", "environment"),
            ]
        );
        assert_eq!(v.in_force[1].variable.as_deref(), Some("MALLOC_MMAP_THRESHOLD_"));
        assert_eq!(v.in_force[3].variable.as_deref(), Some("GLIBC_TUNABLES"));
        assert_eq!((v.arena_count, v.arena_cap, v.note), (Some(2), Some(2), None));
        assert_eq!(v.requested.len(), 2);

        // From premain, after the JVM made 16 arenas: the note.
        let v = view_of(&[rec("arenaMax", "2", AppliedBy::Premain, 16)], AllocatorKind::Glibc, &env, Some(16));
        assert!(v.note.expect("note").contains("limits only new arenas"));

        // The environment's cap, with nothing from the agent.
        let env = AllocatorSettings { malloc_arena_max: Some("4".into()), ..AllocatorSettings::default() };
        let v = view_of(&[], AllocatorKind::Glibc, &env, Some(3));
        assert_eq!(v.arena_cap, Some(4));
        assert_eq!(v.in_force[0].source, "environment");
        // Under jemalloc nothing the agent did is in force, and no cap applies.
        let v = view_of(&[rec("arenaMax", "2", AppliedBy::Premain, 1)], AllocatorKind::Jemalloc, &env, None);
        assert_eq!((v.arena_cap, v.note, v.in_force.len()), (None, None, 1));
    }

    #[test]
    fn agentpath_options_never_fail_and_say_each_bad_part() {
        let none = agent_onload(None);
        assert_eq!(none.len(), 1);
        assert!(none[0].contains("no settings") && none[0].contains("nothing applied"), "{none:?}");
        assert_eq!(agent_onload(Some("  ")), none);
        let bad = agent_onload(Some("arenaMax=0,bogus=1,mmapThreshold=64m,topPad"));
        assert_eq!(bad.len(), 4, "{bad:?}");
        for (line, part) in bad.iter().zip(["arenaMax=0", "bogus=1", "mmapThreshold=64m", "topPad"]) {
            assert!(line.starts_with(&format!("-agentpath {part}: not applied: ")), "{line}");
        }
    }

    #[test]
    fn tune_auto_caps_arenas_at_the_cpus_and_fixes_the_mmap_threshold() {
        let (p, said) = tune_auto(4, &[]);
        assert_eq!(p, vec![t("arenaMax", "4"), t("mmapThreshold", "128k")]);
        assert_eq!(said, "-agentpath tune=auto: arenaMax=4 (4 CPUs), mmapThreshold=128k");
        assert_eq!(tune_auto(1, &[]).0[0], t("arenaMax", "2"));
        let (p, said) = tune_auto(8, &[t("mmapThreshold", "64k")]);
        assert_eq!(p, vec![t("arenaMax", "8")]);
        assert!(said.ends_with("mmapThreshold as given"), "{said}");
        let bad = agent_onload(Some("tune=max"));
        assert_eq!(bad, ["-agentpath tune=max: not applied: tune takes only auto"]);
    }

    #[test]
    fn applied_by_names_round_trip() {
        for (text, by) in
            [("agentpath", AppliedBy::Agentpath), ("premain", AppliedBy::Premain), ("agentmain", AppliedBy::Agentmain)]
        {
            assert_eq!(AppliedBy::parse(text).ok(), Some(by));
            assert_eq!(serde_json::to_value(by).expect("json"), serde_json::Value::from(text));
        }
        assert!(AppliedBy::parse("later").is_err());
    }

    #[test]
    fn outcomes_serialize_as_the_agent_reads_them() {
        let o = TuningOutcome::new(
            &t("arenaMax", "2"),
            TuningStatus::Skipped,
            "skipped: environment sets MALLOC_ARENA_MAX=4".into(),
        );
        assert_eq!(
            serde_json::to_value(&o).expect("json"),
            serde_json::json!({
                "setting": "arenaMax",
                "requested": 2,
                "applied": false,
                "status": "skipped",
                "message": "skipped: environment sets MALLOC_ARENA_MAX=4",
            })
        );
    }
}
