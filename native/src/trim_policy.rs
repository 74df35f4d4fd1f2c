//! When to call `malloc_trim`: pure decisions from numbers the caller observed, no I/O, no
//! clock of its own (every call takes `now_ms`, epoch milliseconds, the clock of
//! [`TrimRecord::at_ms`]).
//!
//! Modes, as written in the `trim` agent option:
//! - `off`: never.
//! - `<interval>` (`500ms`, `30s`, `5m`): on the clock, `interval` after the last trim of any
//!   reason (or after the policy was set), whatever the numbers say.
//! - `auto`: when a trim is worthwhile, no more often than a minimum interval, backing off when
//!   trims release little or their pages come back at once. Options, after the mode:
//!   `auto,retained=64m,retainedRss=10%,minInterval=10s,maxBackoff=16,regainWindow=3s,
//!   quietWait=10s` (each key may also carry the agent's `trim` prefix:
//!   `trimRetained=64m`). They are not called `trimThreshold`: that is glibc's
//!   `M_TRIM_THRESHOLD`, set by [`crate::tuning`].
//!
//! The `auto` rules, in the order they are checked:
//! 1. The threshold is `max(retained, retainedRss × RSS)`: **both** must hold. The absolute
//!    floor keeps a small process from paying arena locks for a few MiB; the relative part
//!    keeps a 30 GiB process from trimming for 64 MiB, 0.2% of its RSS. Free bytes glibc holds
//!    resident must reach it.
//! 2. The estimate of what a trim releases is the caller's resident figure
//!    ([`Observation::trimmable`], from [`crate::retention`]), and it must reach the threshold
//!    too. Memory freed after the last trim (the load ended, a burst died) shows there without
//!    RSS rising, so it is trimmed. Where the resident figure is unknown (no `smaps`), the
//!    estimate falls back to `min(retained, RSS − lowest RSS since the last trim)`: pages a trim
//!    gave back stay counted as free chunks, so only what became resident again can go.
//! 3. `minInterval × backoff` must have passed since the last trim, or since the last `Trim`
//!    decision whose record has not come back.
//! 4. Quiet moments first: where the caller gives the process's CPU time, a due trim waits
//!    while the process is busy (its CPU rate since the last decision above half the highest
//!    rate of the last minute, and above a tenth of a core), at most `quietWait`.
//! 5. Backoff: a policy trim that releases less than `max(1 MiB, 25% of its estimate)` doubles
//!    the backoff, up to `maxBackoff`, and so does a trim whose pages come back quickly (RSS
//!    regains half of what it released within `regainWindow`): the next trim would only pay
//!    the page faults again. A trim whose pages stay away through the window resets it to 1;
//!    so does retention rising well above the last trim's level after a poor release
//!    (`retained ≥ level + max(retained threshold, level / 2)`). Manual trims move the clock
//!    and the RSS floor, not the backoff: their estimate is not the policy's.
//!
//! In every mode the policy steps aside when `malloc` is not glibc's (under jemalloc or
//! tcmalloc we do nothing: their own release paths are configured by `MALLOC_CONF` and
//! `TCMALLOC_RELEASE_RATE`), or when the JVM trims itself (`-XX:TrimNativeHeapInterval` > 0).
//! Those two skips are announced once (see [`Decision::Skip::announce`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::allocator::AllocatorKind;
use crate::error::{Error, Result};
use crate::trim_worker::TrimRecord;
use crate::units::{human_bytes, parse_bytes, parse_duration_ms, parse_percent};

const MIB: u64 = 1024 * 1024;

/// Why a trim ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrimReason {
    /// A person asked (JMX operation, attach command).
    Manual,
    /// The `auto` policy found it worthwhile.
    Policy,
    /// The fixed interval came round.
    Interval,
}

impl TrimReason {
    pub fn name(self) -> &'static str {
        match self {
            TrimReason::Manual => "manual",
            TrimReason::Policy => "policy",
            TrimReason::Interval => "interval",
        }
    }
}

/// The settings of `auto`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoSettings {
    /// Absolute threshold in bytes (`retained`, default 64 MiB).
    pub retained_bytes: u64,
    /// Threshold relative to RSS, as a fraction (`retainedRss`, default 10%).
    pub retained_rss_fraction: f64,
    /// Base minimum time between trims (`minInterval`, default 10 s).
    pub min_interval_ms: u64,
    /// The most the minimum interval is multiplied by (`maxBackoff`, default 16).
    pub max_backoff: u32,
    /// A trim whose pages come back within this long backs off (`regainWindow`, default 3 s).
    pub regain_window_ms: u64,
    /// The longest a due trim waits for a quiet moment (`quietWait`, default 10 s; 0: never).
    pub quiet_wait_ms: u64,
}

/// Defaults chosen on the trim benchmark (bench/trim_bench.py, JDK 17): with these, `auto`
/// matched the JDK's fixed 1 s trimmer on mean RSS with 60% less time spent trimming; the
/// earlier 64 MiB / 10% / 10 s trimmed so rarely that mean RSS stayed 8% above it.
impl Default for AutoSettings {
    fn default() -> Self {
        AutoSettings {
            retained_bytes: 32 * MIB,
            retained_rss_fraction: 0.05,
            min_interval_ms: 2_000,
            max_backoff: 16,
            regain_window_ms: 3_000,
            quiet_wait_ms: 10_000,
        }
    }
}

/// A trim's pages "came back" when RSS regains this share of what it released ...
pub const REGAIN_FRACTION: f64 = 0.5;
/// ... of a release of at least this many bytes (smaller ones are noise).
pub const REGAIN_MIN_BYTES: u64 = 4 * MIB;
/// The process is busy above this share of the highest CPU rate of the recent past ...
pub const BUSY_FRACTION_OF_PEAK: f64 = 0.5;
/// ... and above this many cores.
pub const BUSY_MIN_CORES: f64 = 0.1;
/// How far back the peak CPU rate is taken.
pub const CPU_PEAK_WINDOW_MS: u64 = 60_000;

/// A trim released "little" below this many bytes, whatever the estimate.
pub const POOR_RELEASE_BYTES: u64 = MIB;
/// ... or below this fraction of the estimate.
pub const POOR_RELEASE_FRACTION: f64 = 0.25;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum TrimMode {
    #[default]
    Off,
    Auto(AutoSettings),
    Interval {
        every_ms: u64,
    },
}

impl FromStr for TrimMode {
    type Err = Error;

    /// `off`, `auto[,key=value...]` or an interval (`30s`).
    fn from_str(text: &str) -> Result<Self> {
        let mut parts = text.split(',').map(str::trim).filter(|p| !p.is_empty());
        let mode = parts.next().unwrap_or("");
        let options: Vec<&str> = parts.collect();
        match mode.to_ascii_lowercase().as_str() {
            "off" | "false" | "none" => no_options(mode, &options).map(|()| TrimMode::Off),
            "auto" => {
                let mut s = AutoSettings::default();
                for opt in options {
                    let (key, value) = opt.split_once('=').ok_or_else(|| {
                        Error::invalid(format!("trim option {opt:?} is not key=value"))
                    })?;
                    set_auto_option(&mut s, key.trim(), value.trim())?;
                }
                Ok(TrimMode::Auto(s))
            }
            "" => Err(Error::invalid("trim policy is empty: off, auto or an interval like 30s")),
            _ => {
                let every_ms = parse_duration_ms(mode).map_err(|e| {
                    Error::invalid(format!(
                        "trim policy {mode:?} is not off, auto or an interval ({e})"
                    ))
                })?;
                if every_ms == 0 {
                    return Err(Error::invalid("trim interval must be above zero"));
                }
                no_options(mode, &options).map(|()| TrimMode::Interval { every_ms })
            }
        }
    }
}

fn no_options(mode: &str, options: &[&str]) -> Result<()> {
    match options.first() {
        None => Ok(()),
        Some(o) => {
            Err(Error::invalid(format!("trim option {o:?} applies to auto only, not {mode}")))
        }
    }
}

fn set_auto_option(s: &mut AutoSettings, key: &str, value: &str) -> Result<()> {
    // `trimRetained` (agent option) and `retained` (inside `trim=auto,...`) are one key.
    let short = match key.strip_prefix("trim") {
        Some(rest) if !rest.is_empty() => {
            let mut c = rest.chars();
            c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
        }
        _ => key.to_string(),
    };
    match short.as_str() {
        "retained" => s.retained_bytes = parse_bytes(value)?,
        "retainedRss" => s.retained_rss_fraction = parse_percent(value)?,
        "minInterval" => s.min_interval_ms = parse_duration_ms(value)?,
        "regainWindow" => s.regain_window_ms = parse_duration_ms(value)?,
        "quietWait" => s.quiet_wait_ms = parse_duration_ms(value)?,
        "maxBackoff" => {
            s.max_backoff = value
                .parse()
                .ok()
                .filter(|v| (1..=1024).contains(v))
                .ok_or_else(|| Error::invalid(format!("maxBackoff {value:?}: 1 to 1024")))?
        }
        _ => {
            return Err(Error::invalid(format!(
                "unknown trim option {key:?} (retained, retainedRss, minInterval, maxBackoff, \
                 regainWindow, quietWait)"
            )))
        }
    }
    Ok(())
}

impl fmt::Display for TrimMode {
    /// The text [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrimMode::Off => f.write_str("off"),
            TrimMode::Interval { every_ms } => write!(f, "{every_ms}ms"),
            TrimMode::Auto(s) => write!(
                f,
                "auto,retained={},retainedRss={}%,minInterval={}ms,maxBackoff={},regainWindow={}ms,quietWait={}ms",
                s.retained_bytes,
                percent_text(s.retained_rss_fraction),
                s.min_interval_ms,
                s.max_backoff,
                s.regain_window_ms,
                s.quiet_wait_ms
            ),
        }
    }
}

/// `0.1` as `10`, `0.025` as `2.5`: no float noise in the text form.
fn percent_text(fraction: f64) -> String {
    let t = format!("{:.4}", fraction * 100.0);
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What the caller saw at `now_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// Free bytes glibc holds resident ([`crate::retention`]), or all its free bytes
    /// (`malloc_info` fast + rest) where `trimmable` is `None`.
    pub retained: u64,
    /// What one trim would release, estimated from resident free memory; `None` where the
    /// resident figures are unknown.
    pub trimmable: Option<u64>,
    /// The process's CPU time so far (user + system), in ms; `None` where unknown.
    pub cpu_ms: Option<u64>,
    /// Resident bytes of the process.
    pub rss: u64,
    pub allocator: AllocatorKind,
    /// `-XX:TrimNativeHeapInterval` in ms where the JVM has the flag; `Some(0)` or `None` when
    /// the JVM does not trim by itself.
    pub jvm_trim_interval_ms: Option<u64>,
}

/// Why the policy did not trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Off,
    NotGlibc,
    JvmTrimsItself,
    BelowThreshold,
    NotResidentAgain,
    TooSoon,
    /// Due, but the process is busy: waiting for a quiet moment.
    Busy,
}

impl SkipReason {
    /// The reasons that hold for the life of the process, said once.
    fn steps_aside(self) -> bool {
        matches!(self, SkipReason::NotGlibc | SkipReason::JvmTrimsItself)
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Submit a trim. `estimate` is the bytes the policy expects it to release.
    Trim { reason: TrimReason, estimate: u64 },
    /// Do nothing now. `announce` is true the first time a step-aside reason (not glibc, the
    /// JVM trims itself) is given since the policy was set: log it then, not every sample.
    Skip { why: SkipReason, detail: String, announce: bool },
}

/// The policy's state, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyStatus {
    pub mode: TrimMode,
    /// The text form of `mode`.
    pub spec: String,
    pub backoff: u32,
    /// `min_interval × backoff` in `auto`, the interval in interval mode.
    pub effective_interval_ms: Option<u64>,
    pub last_trim_ms: Option<u64>,
    /// The earliest `now_ms` at which the clock allows another trim.
    pub next_allowed_ms: Option<u64>,
}

/// The state of the last trim, as far as the policy cares.
#[derive(Debug, Clone, Copy)]
struct LastTrim {
    at_ms: u64,
    /// Retained bytes when it started: the "level" that retention must rise well above.
    retained: u64,
    /// Lowest RSS seen since (starts at the trim's `rss_after`).
    rss_floor: u64,
    /// RSS just after the trim and what it released: the regain check's reference.
    rss_after: u64,
    released: u64,
    /// Whether the regain check for this trim is settled (came back, or the window passed),
    /// and whether it applies (a policy trim).
    regain_settled: bool,
    /// The backoff was last raised because pages came back, not for a poor release.
    regain_backoff: bool,
    /// The backoff in force when the trim was decided: a regain doubles that one.
    backoff_before: u32,
}

#[derive(Debug, Clone)]
pub struct TrimPolicy {
    mode: TrimMode,
    backoff: u32,
    last: Option<LastTrim>,
    /// When the policy was set, or first consulted: interval mode counts from it.
    anchor_ms: Option<u64>,
    /// A `Trim` decision whose record has not come back: (decided at, estimate).
    pending: Option<(u64, u64)>,
    /// Highest record sequence number taken, so a record handed in twice counts once.
    last_seq: Option<u64>,
    announced: [bool; 7],
    /// The previous CPU reading `(now_ms, cpu_ms)` and recent rates `(now_ms, cores)`.
    cpu_last: Option<(u64, u64)>,
    cpu_rates: std::collections::VecDeque<(u64, f64)>,
    /// Since when a trim has been due but waiting for a quiet moment.
    due_since: Option<u64>,
    /// Free bytes at the last decision, and the backoff of the last `Trim` decision.
    last_retained: Option<u64>,
    last_backoff_decided: u32,
}

impl TrimPolicy {
    pub fn new(mode: TrimMode) -> Self {
        TrimPolicy {
            mode,
            backoff: 1,
            last: None,
            anchor_ms: None,
            pending: None,
            last_seq: None,
            announced: [false; 7],
            cpu_last: None,
            cpu_rates: std::collections::VecDeque::new(),
            due_since: None,
            last_retained: None,
            last_backoff_decided: 1,
        }
    }

    /// Parses `off`, `auto[,options]` or an interval.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self::new(text.parse()?))
    }

    pub fn mode(&self) -> &TrimMode {
        &self.mode
    }

    /// Changes the mode at run time: the backoff starts again at 1, the interval counts from
    /// the next decision and step-aside reasons are announced again. What the last trim did
    /// is kept.
    pub fn set_mode(&mut self, mode: TrimMode) {
        self.mode = mode;
        self.backoff = 1;
        self.anchor_ms = None;
        self.pending = None;
        self.announced = [false; 7];
    }

    /// The sequence number of the last record taken (see [`crate::trim_worker::records_since`]).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    pub fn status(&self) -> PolicyStatus {
        let effective = self.effective_interval_ms();
        let since = self.clock_start();
        PolicyStatus {
            mode: self.mode.clone(),
            spec: self.mode.to_string(),
            backoff: self.backoff,
            effective_interval_ms: effective,
            last_trim_ms: self.last.map(|l| l.at_ms),
            next_allowed_ms: match (&self.mode, effective, since) {
                // Before its first trim, auto does not wait for the clock.
                (TrimMode::Auto(_), _, _) if self.last.is_none() && self.pending.is_none() => since,
                (_, Some(e), Some(s)) => Some(s.saturating_add(e)),
                _ => None,
            },
        }
    }

    fn effective_interval_ms(&self) -> Option<u64> {
        match &self.mode {
            TrimMode::Off => None,
            TrimMode::Interval { every_ms } => Some(*every_ms),
            TrimMode::Auto(s) => Some(s.min_interval_ms.saturating_mul(u64::from(self.backoff))),
        }
    }

    /// Where the interval counts from: the last trim, a decision not yet recorded, or the
    /// anchor, whichever is latest.
    fn clock_start(&self) -> Option<u64> {
        [self.last.map(|l| l.at_ms), self.pending.map(|p| p.0), self.anchor_ms]
            .into_iter()
            .flatten()
            .max()
    }

    fn skip(&mut self, why: SkipReason, detail: String) -> Decision {
        let announce = why.steps_aside() && !self.announced[why.index()];
        if why.steps_aside() {
            self.announced[why.index()] = true;
        }
        Decision::Skip { why, detail, announce }
    }

    pub fn decide(&mut self, now_ms: u64, obs: &Observation) -> Decision {
        // A clock that went back (epoch time, set by hand or NTP) restarts the count.
        if self.clock_start().is_some_and(|s| s > now_ms) {
            self.anchor_ms = Some(now_ms);
            self.pending = None;
            if let Some(l) = self.last.as_mut() {
                l.at_ms = now_ms;
            }
        }
        let anchor = *self.anchor_ms.get_or_insert(now_ms);
        if let Some(l) = self.last.as_mut() {
            l.rss_floor = l.rss_floor.min(obs.rss);
        }
        self.last_retained = Some(obs.retained);
        self.note_cpu(now_ms, obs.cpu_ms);
        self.check_regain(now_ms, obs.rss);
        if self.mode == TrimMode::Off {
            return self.skip(SkipReason::Off, "trim policy is off".into());
        }
        if obs.allocator != AllocatorKind::Glibc {
            let detail = match obs.allocator {
                AllocatorKind::Jemalloc => {
                    "malloc is jemalloc: it releases memory by itself, as MALLOC_CONF says \
                     (dirty_decay_ms, background_thread)"
                }
                AllocatorKind::Tcmalloc => {
                    "malloc is tcmalloc: it releases memory by itself, as TCMALLOC_RELEASE_RATE \
                     says"
                }
                _ => "malloc is not glibc's: malloc_trim would walk arenas nobody uses",
            };
            let detail = detail.to_string();
            return self.skip(SkipReason::NotGlibc, detail);
        }
        if let Some(iv) = obs.jvm_trim_interval_ms.filter(|v| *v > 0) {
            let detail = format!("the JVM trims the C heap itself (TrimNativeHeapInterval={iv})");
            return self.skip(SkipReason::JvmTrimsItself, detail);
        }
        let since = self.clock_start().unwrap_or(anchor);
        let elapsed = now_ms.saturating_sub(since);
        match self.mode.clone() {
            TrimMode::Off => self.skip(SkipReason::Off, "trim policy is off".into()),
            TrimMode::Interval { every_ms } => {
                if elapsed >= every_ms {
                    self.pending = Some((now_ms, obs.retained));
                    Decision::Trim { reason: TrimReason::Interval, estimate: obs.retained }
                } else {
                    let detail = format!("next interval trim in {} ms", every_ms - elapsed);
                    self.skip(SkipReason::TooSoon, detail)
                }
            }
            TrimMode::Auto(s) => self.decide_auto(&s, now_ms, elapsed, obs),
        }
    }

    /// Keeps the CPU rate since the previous decision and the rates of the recent past.
    fn note_cpu(&mut self, now_ms: u64, cpu_ms: Option<u64>) {
        let Some(cpu) = cpu_ms else { return };
        if let Some((t, c)) = self.cpu_last {
            let wall = now_ms.saturating_sub(t);
            if wall > 0 && cpu >= c {
                self.cpu_rates.push_back((now_ms, (cpu - c) as f64 / wall as f64));
            }
        }
        self.cpu_last = Some((now_ms, cpu));
        while self.cpu_rates.front().is_some_and(|(t, _)| now_ms.saturating_sub(*t) > CPU_PEAK_WINDOW_MS) {
            self.cpu_rates.pop_front();
        }
    }

    /// Whether a CPU rate counts as busy against the recent peak.
    fn busy_rate(&self, rate: f64) -> bool {
        let peak = self.cpu_rates.iter().map(|(_, r)| *r).fold(0.0, f64::max);
        rate > BUSY_MIN_CORES && rate > BUSY_FRACTION_OF_PEAK * peak
    }

    /// Since when the process has been quiet without a break (`None` while busy or unknown).
    /// Each rate covers the time since the reading before it.
    fn quiet_since(&self) -> Option<u64> {
        let rates: Vec<(u64, f64)> = self.cpu_rates.iter().copied().collect();
        let mut since = None;
        for i in (1..rates.len()).rev() {
            if self.busy_rate(rates[i].1) {
                break;
            }
            since = Some(rates[i - 1].0);
        }
        since
    }

    /// The latest CPU rate in cores, when the process counts as busy.
    fn busy(&self) -> Option<f64> {
        let (_, now) = *self.cpu_rates.back()?;
        self.busy_rate(now).then_some(now)
    }

    /// Settles whether the last policy trim's pages came back within the regain window.
    fn check_regain(&mut self, now_ms: u64, rss: u64) {
        let TrimMode::Auto(s) = &self.mode else { return };
        let (window, max_backoff) = (s.regain_window_ms, s.max_backoff.max(1));
        let Some(l) = self.last.as_mut() else { return };
        if l.regain_settled {
            return;
        }
        let came_back = rss >= l.rss_after.saturating_add((l.released as f64 * REGAIN_FRACTION) as u64);
        if now_ms.saturating_sub(l.at_ms) <= window {
            if came_back {
                l.regain_settled = true;
                l.regain_backoff = true;
                self.backoff = self.backoff.max(l.backoff_before.saturating_mul(2)).min(max_backoff);
            }
        } else {
            l.regain_settled = true;
            if !came_back && !l.regain_backoff {
                self.backoff = 1;
            }
        }
    }

    fn decide_auto(
        &mut self,
        s: &AutoSettings,
        now_ms: u64,
        elapsed: u64,
        obs: &Observation,
    ) -> Decision {
        let relative = (obs.rss as f64 * s.retained_rss_fraction) as u64;
        let threshold = s.retained_bytes.max(relative);
        if let Some(l) = self.last.filter(|l| !l.regain_backoff) {
            let well_above = l.retained.saturating_add(s.retained_bytes.max(l.retained / 2));
            if obs.retained >= well_above {
                self.backoff = 1;
            }
        }
        if obs.retained < threshold {
            self.due_since = None;
            let detail = format!(
                "retained {} is below the threshold {} (max of {} and {:.0}% of RSS {})",
                human_bytes(obs.retained),
                human_bytes(threshold),
                human_bytes(s.retained_bytes),
                s.retained_rss_fraction * 100.0,
                human_bytes(obs.rss)
            );
            return self.skip(SkipReason::BelowThreshold, detail);
        }
        let estimate = match (obs.trimmable, self.last) {
            (Some(t), _) => t,
            (None, None) => obs.retained,
            (None, Some(l)) => obs.retained.min(obs.rss.saturating_sub(l.rss_floor)),
        };
        if let Some(t) = obs.trimmable.filter(|t| *t < threshold) {
            self.due_since = None;
            let detail = format!(
                "{} free and resident, of which a trim would release about {}: below the threshold {}",
                human_bytes(obs.retained),
                human_bytes(t),
                human_bytes(threshold)
            );
            return self.skip(SkipReason::BelowThreshold, detail);
        }
        if estimate < threshold {
            self.due_since = None;
            let floor = self.last.map(|l| l.rss_floor).unwrap_or(0);
            let detail = format!(
                "retained {} but RSS rose only {} above its low point {} since the last trim \
                 (threshold {})",
                human_bytes(obs.retained),
                human_bytes(obs.rss.saturating_sub(floor)),
                human_bytes(floor),
                human_bytes(threshold)
            );
            return self.skip(SkipReason::NotResidentAgain, detail);
        }
        // Pages came back because the load went on; once the process has been quiet for a
        // whole regain window, the load has ended and waiting out that backoff only keeps
        // memory resident.
        let quiet_for = self.quiet_since().map(|q| now_ms.saturating_sub(q));
        let regain_only = self.last.is_some_and(|l| l.regain_backoff);
        let backoff = if regain_only && quiet_for.is_some_and(|q| q >= s.regain_window_ms) { 1 } else { self.backoff };
        let interval = s.min_interval_ms.saturating_mul(u64::from(backoff));
        // Before the first trim the anchor does not hold a worthwhile trim back.
        let clock_running = self.last.is_some() || self.pending.is_some();
        if clock_running && elapsed < interval {
            let detail = format!(
                "{} ms since the last trim, the minimum is {} ms (base {} ms × backoff {})",
                elapsed, interval, s.min_interval_ms, backoff
            );
            return self.skip(SkipReason::TooSoon, detail);
        }
        let due_since = *self.due_since.get_or_insert(now_ms);
        if let Some(cores) = self.busy() {
            let waited = now_ms.saturating_sub(due_since);
            if waited < s.quiet_wait_ms {
                let detail = format!(
                    "a trim is due but the process is busy ({cores:.2} cores); waited {waited} ms of at most {} ms",
                    s.quiet_wait_ms
                );
                return self.skip(SkipReason::Busy, detail);
            }
        }
        self.due_since = None;
        self.last_backoff_decided = self.backoff;
        self.pending = Some((now_ms, estimate));
        Decision::Trim { reason: TrimReason::Policy, estimate }
    }

    /// Takes what a trim did (any reason). Records are idempotent by `seq`.
    pub fn record(&mut self, r: &TrimRecord) {
        if self.last_seq.is_some_and(|s| r.seq <= s) {
            return;
        }
        self.last_seq = Some(r.seq);
        let estimate = match (r.reason, self.pending.take()) {
            (TrimReason::Policy, Some((_, estimate))) => Some(estimate),
            (TrimReason::Policy, None) => r.retained_before,
            (_, pending) => {
                // A manual trim that started after the policy's decision answered it (the
                // worker coalesces them); one that started before did not. Its release says
                // nothing about the policy's estimate, so the backoff stays.
                self.pending = pending.filter(|p| r.reason == TrimReason::Manual && r.at_ms < p.0);
                None
            }
        };
        let mut poor = false;
        if let (Some(estimate), TrimMode::Auto(s)) = (estimate, &self.mode) {
            let enough = POOR_RELEASE_BYTES.max((estimate as f64 * POOR_RELEASE_FRACTION) as u64);
            poor = r.released < enough;
            self.backoff = if poor { self.backoff.saturating_mul(2).min(s.max_backoff.max(1)) } else { 1 };
        }
        let policy_trim = estimate.is_some();
        let backoff_before = self.last_backoff_decided;
        self.last = Some(LastTrim {
            at_ms: r.at_ms,
            // The level in the policy's own terms (resident where known), else glibc's.
            retained: self.last_retained.or(r.retained_before).unwrap_or(0),
            backoff_before,
            rss_floor: r.rss_after,
            rss_after: r.rss_after,
            released: r.released,
            // Only a policy trim with a release worth watching is judged on regain.
            regain_settled: !policy_trim || poor || r.released < REGAIN_MIN_BYTES,
            regain_backoff: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;

    fn obs(retained: u64, rss: u64) -> Observation {
        Observation { retained, trimmable: None, cpu_ms: None, rss, allocator: AllocatorKind::Glibc, jvm_trim_interval_ms: None }
    }

    /// A fake clock and a fake trim: the policy's world, with the record it would get back.
    struct World {
        policy: TrimPolicy,
        now: u64,
        seq: u64,
    }

    impl World {
        fn new(spec: &str) -> Self {
            World { policy: TrimPolicy::parse(spec).expect("spec"), now: 1_795_768_210_000, seq: 0 }
        }

        fn at(&mut self, secs: u64, o: Observation) -> Decision {
            self.now += secs * 1000;
            self.policy.decide(self.now, &o)
        }

        fn trimmed(&mut self, reason: TrimReason, o: &Observation, released: u64) {
            self.seq += 1;
            self.policy.record(&TrimRecord {
                seq: self.seq,
                at_ms: self.now,
                reason,
                requests: 1,
                retained_before: Some(o.retained),
                rss_before: o.rss,
                rss_after: o.rss - released,
                released,
                duration_ns: 1_000_000,
                returned: 1,
            });
        }
    }

    fn is_trim(d: &Decision) -> bool {
        matches!(d, Decision::Trim { .. })
    }

    fn why(d: &Decision) -> Option<SkipReason> {
        match d {
            Decision::Skip { why, .. } => Some(*why),
            Decision::Trim { .. } => None,
        }
    }

    #[test]
    fn parses_modes_and_options() {
        assert_eq!("off".parse::<TrimMode>().ok(), Some(TrimMode::Off));
        assert_eq!("30s".parse::<TrimMode>().ok(), Some(TrimMode::Interval { every_ms: 30_000 }));
        assert_eq!("500ms".parse::<TrimMode>().ok(), Some(TrimMode::Interval { every_ms: 500 }));
        assert_eq!("5m".parse::<TrimMode>().ok(), Some(TrimMode::Interval { every_ms: 300_000 }));
        assert_eq!("auto".parse::<TrimMode>().ok(), Some(TrimMode::Auto(AutoSettings::default())));
        let m: TrimMode = "auto, retained=128m, trimRetainedRss=5%, minInterval=1m, maxBackoff=4"
            .parse()
            .expect("auto with options");
        assert_eq!(
            m,
            TrimMode::Auto(AutoSettings {
                retained_bytes: 128 * MIB,
                retained_rss_fraction: 0.05,
                min_interval_ms: 60_000,
                max_backoff: 4,
                ..AutoSettings::default()
            })
        );
        // The text form reads back to the same mode.
        assert_eq!(m.to_string().parse::<TrimMode>().ok(), Some(m));
        for bad in [
            "",
            "sometimes",
            "60000",
            "0s",
            "auto,retained",
            "auto,trimThreshold=64m",
            "auto,maxBackoff=0",
            "30s,retained=1m",
            "off,minInterval=1s",
        ] {
            let err = bad.parse::<TrimMode>().expect_err(bad);
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn off_never_trims() {
        let mut w = World::new("off");
        for _ in 0..10 {
            assert_eq!(why(&w.at(60, obs(10 * GIB, 20 * GIB))), Some(SkipReason::Off));
        }
    }

    #[test]
    fn steps_aside_under_other_allocators_and_says_so_once() {
        let mut w = World::new("auto");
        let mut o = obs(GIB, 2 * GIB);
        o.allocator = AllocatorKind::Jemalloc;
        let first = w.at(10, o.clone());
        assert!(
            matches!(&first, Decision::Skip { why: SkipReason::NotGlibc, announce: true, detail }
                if detail.contains("MALLOC_CONF")),
            "{first:?}"
        );
        let second = w.at(10, o.clone());
        assert!(matches!(second, Decision::Skip { announce: false, .. }), "{second:?}");
        // A new mode is announced again.
        w.policy.set_mode(TrimMode::Interval { every_ms: 1000 });
        assert!(matches!(w.at(10, o), Decision::Skip { announce: true, .. }));
    }

    #[test]
    fn steps_aside_when_the_jvm_trims_itself() {
        let mut w = World::new("5s");
        let mut o = obs(GIB, 2 * GIB);
        o.jvm_trim_interval_ms = Some(60_000);
        let d = w.at(60, o.clone());
        assert!(
            matches!(&d, Decision::Skip { why: SkipReason::JvmTrimsItself, announce: true, detail }
                if detail.contains("TrimNativeHeapInterval=60000")),
            "{d:?}"
        );
        assert!(matches!(w.at(60, o.clone()), Decision::Skip { announce: false, .. }));
        // Zero is the flag's "off".
        o.jvm_trim_interval_ms = Some(0);
        assert!(is_trim(&w.at(60, o)));
    }

    #[test]
    fn interval_trims_on_the_clock_counting_from_the_last_trim() {
        let mut w = World::new("30s");
        let o = obs(0, GIB);
        // The first decision anchors the clock; nothing is due yet.
        assert_eq!(why(&w.at(0, o.clone())), Some(SkipReason::TooSoon));
        assert_eq!(why(&w.at(29, o.clone())), Some(SkipReason::TooSoon));
        let d = w.at(1, o.clone());
        assert_eq!(d, Decision::Trim { reason: TrimReason::Interval, estimate: 0 });
        // Not again until the record is in and 30 s passed since the decision.
        assert_eq!(why(&w.at(10, o.clone())), Some(SkipReason::TooSoon));
        w.trimmed(TrimReason::Interval, &o, 0);
        assert_eq!(why(&w.at(19, o.clone())), Some(SkipReason::TooSoon));
        // A manual trim restarts the count.
        w.trimmed(TrimReason::Manual, &o, 0);
        assert_eq!(why(&w.at(29, o.clone())), Some(SkipReason::TooSoon));
        assert!(is_trim(&w.at(1, o.clone())));
        // Releasing nothing never backs an interval off.
        w.trimmed(TrimReason::Interval, &o, 0);
        assert!(is_trim(&w.at(30, o)));
        assert_eq!(w.policy.status().backoff, 1);
    }

    #[test]
    fn auto_threshold_is_the_larger_of_absolute_and_relative() {
        let mut w = World::new("auto,retained=64m,retainedRss=10%");
        // 1 GiB RSS: 10% is 102 MiB, above 64 MiB.
        assert_eq!(why(&w.at(0, obs(100 * MIB, GIB))), Some(SkipReason::BelowThreshold));
        assert!(is_trim(&w.at(0, obs(103 * MIB, GIB))));
        // 200 MiB RSS: 10% is 20 MiB, the absolute 64 MiB rules.
        let mut w = World::new("auto,retained=64m,retainedRss=10%");
        assert_eq!(why(&w.at(0, obs(60 * MIB, 200 * MIB))), Some(SkipReason::BelowThreshold));
        let d = w.at(0, obs(64 * MIB, 200 * MIB));
        assert_eq!(d, Decision::Trim { reason: TrimReason::Policy, estimate: 64 * MIB });
    }

    #[test]
    fn auto_waits_for_memory_to_become_resident_again() {
        let mut w = World::new("auto");
        let o = obs(600 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        w.trimmed(TrimReason::Policy, &o, 500 * MIB);
        // Retained still counts the pages given back; RSS is flat: nothing new to release.
        let quiet = obs(600 * MIB, 2 * GIB - 500 * MIB);
        for _ in 0..20 {
            let d = w.at(60, quiet.clone());
            assert_eq!(why(&d), Some(SkipReason::NotResidentAgain), "{d:?}");
        }
        // RSS dips (the heap shrank) and then rises by 300 MiB: that is the estimate.
        w.at(60, obs(600 * MIB, GIB));
        let d = w.at(60, obs(600 * MIB, GIB + 300 * MIB));
        assert_eq!(d, Decision::Trim { reason: TrimReason::Policy, estimate: 300 * MIB });
    }

    /// An observation with resident figures: `free` resident, `trimmable` of it a trim would release.
    fn resident(free: u64, trimmable: u64, rss: u64) -> Observation {
        Observation { trimmable: Some(trimmable), ..obs(free, rss) }
    }

    #[test]
    fn memory_freed_after_the_load_ends_is_trimmed_though_rss_does_not_rise() {
        let mut w = World::new("auto,minInterval=2s");
        // Under load: 500 MiB free and resident, a trim releases 400 MiB.
        let o = resident(500 * MIB, 450 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        w.trimmed(TrimReason::Policy, &o, 400 * MIB);
        // The load ends: its buffers are freed, RSS stays flat at its low point, and 300 MiB of
        // free memory is resident again. The old rule waited for RSS to rise; this trims.
        let flat = 2 * GIB - 400 * MIB;
        let ended = resident(300 * MIB, 280 * MIB, flat);
        let d = w.at(3, ended.clone());
        assert_eq!(d, Decision::Trim { reason: TrimReason::Policy, estimate: 280 * MIB });
        w.trimmed(TrimReason::Policy, &ended, 270 * MIB);
        // Then nothing is left resident: no more trims, and it says why.
        let after = resident(5 * MIB, 0, flat - 270 * MIB);
        for _ in 0..10 {
            assert_eq!(why(&w.at(5, after.clone())), Some(SkipReason::BelowThreshold));
        }
    }

    #[test]
    fn pages_that_come_back_at_once_back_the_policy_off() {
        let mut w = World::new("auto,minInterval=2s,maxBackoff=8,regainWindow=3s");
        let base = 2 * GIB;
        let mut gaps = Vec::new();
        for _ in 0..4 {
            let o = resident(400 * MIB, 300 * MIB, base);
            gaps.push(secs_until_trim(&mut w, &o));
            w.trimmed(TrimReason::Policy, &o, 300 * MIB);
            // One second later RSS is back where it was: the pages came back at once.
            w.at(1, resident(400 * MIB, 300 * MIB, base));
        }
        // Due at once, then 2 × 2 s, 4 × 2 s, 8 × 2 s (less the second spent watching).
        assert_eq!(gaps, vec![1, 3, 7, 15]);
        assert_eq!(w.policy.status().backoff, 8);
        // A trim whose pages stay away through the window brings the base interval back.
        let o = resident(400 * MIB, 300 * MIB, base);
        secs_until_trim(&mut w, &o);
        w.trimmed(TrimReason::Policy, &o, 300 * MIB);
        let low = resident(10 * MIB, 0, base - 300 * MIB);
        for _ in 0..4 {
            w.at(1, low.clone());
        }
        assert_eq!(w.policy.status().backoff, 1);
    }

    #[test]
    fn a_backoff_for_pages_that_came_back_ends_once_the_process_stays_quiet() {
        let mut w = World::new("auto,minInterval=2s,maxBackoff=16,regainWindow=3s");
        let mut cpu = 0;
        let mut at = |w: &mut World, cores_ms: u64, o: Observation| {
            cpu += cores_ms;
            w.at(1, Observation { cpu_ms: Some(cpu), ..o })
        };
        at(&mut w, 0, resident(10 * MIB, 0, GIB));
        // Under load (1.5 cores), trims whose pages come back push the backoff to 8.
        for _ in 0..3 {
            let o = resident(400 * MIB, 300 * MIB, 2 * GIB);
            while !is_trim(&at(&mut w, 1500, o.clone())) {}
            w.trimmed(TrimReason::Policy, &o, 300 * MIB);
            at(&mut w, 1500, resident(400 * MIB, 300 * MIB, 2 * GIB));
        }
        assert_eq!(w.policy.status().backoff, 8);
        // The load ends: 3 quiet seconds later the next trim goes at the base interval, not
        // 16 s after the last one.
        let ended = resident(300 * MIB, 280 * MIB, 2 * GIB);
        let mut secs = 0;
        while !is_trim(&at(&mut w, 10, ended.clone())) {
            secs += 1;
            assert!(secs < 8, "{:?}", w.policy.status());
        }
    }

    #[test]
    fn a_due_trim_waits_for_a_quiet_moment_but_not_forever() {
        let mut w = World::new("auto,minInterval=2s,quietWait=5s");
        let mut cpu = 0;
        let mut at = |w: &mut World, cores_ms: u64| {
            cpu += cores_ms;
            w.at(1, Observation { cpu_ms: Some(cpu), ..resident(10 * MIB, 0, GIB) })
        };
        // A busy second and a quiet one set the scale.
        at(&mut w, 0);
        at(&mut w, 1500);
        at(&mut w, 50);
        // Busy (1.5 cores): a due trim waits ...
        cpu += 1500;
        let busy = Observation { cpu_ms: Some(cpu), ..resident(400 * MIB, 300 * MIB, GIB) };
        assert_eq!(why(&w.at(1, busy)), Some(SkipReason::Busy));
        // ... and goes in the next quiet second.
        cpu += 20;
        let quiet = Observation { cpu_ms: Some(cpu), ..resident(400 * MIB, 300 * MIB, GIB) };
        assert!(is_trim(&w.at(1, quiet)));
        // Busy all the time: it waits at most quietWait.
        let mut w = World::new("auto,minInterval=2s,quietWait=5s");
        let mut cpu = 0;
        let mut waited = 0;
        // The first reading only sets the start of the CPU count.
        w.at(1, Observation { cpu_ms: Some(cpu), ..resident(10 * MIB, 0, GIB) });
        loop {
            cpu += 1800;
            let d = w.at(1, Observation { cpu_ms: Some(cpu), ..resident(400 * MIB, 300 * MIB, GIB) });
            if is_trim(&d) {
                break;
            }
            waited += 1;
            assert!(waited <= 6, "{d:?}");
        }
        assert!(waited >= 5, "{waited}");
    }

    #[test]
    fn auto_respects_the_minimum_interval() {
        let mut w = World::new("auto,minInterval=10s");
        let o = obs(400 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        // The record is late: the decision itself holds the next one back.
        assert_eq!(why(&w.at(5, o.clone())), Some(SkipReason::TooSoon));
        w.trimmed(TrimReason::Policy, &o, 300 * MIB);
        let regrown = obs(400 * MIB, 2 * GIB);
        assert_eq!(why(&w.at(9, regrown.clone())), Some(SkipReason::TooSoon));
        assert!(is_trim(&w.at(1, regrown)));
    }

    /// Steps the clock a second at a time until the policy trims; the seconds it took.
    fn secs_until_trim(w: &mut World, o: &Observation) -> u64 {
        for s in 1..=1000 {
            if is_trim(&w.at(1, o.clone())) {
                return s;
            }
        }
        panic!("no trim within 1000 s: {:?}", w.policy.status());
    }

    #[test]
    fn auto_backs_off_when_trims_release_little_and_recovers() {
        let mut w = World::new("auto,retainedRss=1%,minInterval=10s,maxBackoff=8");
        let mut rss = 2 * GIB;
        // Each time RSS rises 200 MiB (say, the Java heap), a trim releases next to nothing.
        let mut gaps = Vec::new();
        for _ in 0..5 {
            rss += 200 * MIB;
            let o = obs(300 * MIB, rss);
            gaps.push(secs_until_trim(&mut w, &o));
            w.trimmed(TrimReason::Policy, &o, 100 * 1024);
        }
        // At once, then 2 × 10 s, 4 × 10 s and the cap 8 × 10 s.
        assert_eq!(gaps, vec![1, 20, 40, 80, 80]);
        assert_eq!(w.policy.status().backoff, 8);
        assert_eq!(w.policy.status().effective_interval_ms, Some(80_000));

        // Retention rises well above the last trim's level (300 MiB + max(64, 150) MiB): back
        // to the base interval at once.
        rss += 600 * MIB;
        let d = w.at(10, obs(460 * MIB, rss));
        assert!(is_trim(&d), "{d:?}");
        assert_eq!(w.policy.status().backoff, 1);
    }

    #[test]
    fn a_trim_that_releases_its_estimate_resets_the_backoff() {
        let mut w = World::new("auto,minInterval=10s");
        let o = obs(300 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        w.trimmed(TrimReason::Policy, &o, MIB / 2);
        assert_eq!(w.policy.status().backoff, 2);
        let o = obs(300 * MIB, 2 * GIB + 250 * MIB);
        assert_eq!(secs_until_trim(&mut w, &o), 20);
        // 25% of the 250 MiB estimate is the bar.
        w.trimmed(TrimReason::Policy, &o, 70 * MIB);
        assert_eq!(w.policy.status().backoff, 1);
    }

    #[test]
    fn manual_trims_move_the_clock_but_not_the_backoff() {
        let mut w = World::new("auto,minInterval=10s");
        let o = obs(300 * MIB, 2 * GIB);
        w.at(0, obs(0, GIB));
        w.trimmed(TrimReason::Manual, &o, 0);
        assert_eq!(w.policy.status().backoff, 1);
        let regrown = obs(300 * MIB, 2 * GIB + 300 * MIB);
        assert_eq!(why(&w.at(5, regrown.clone())), Some(SkipReason::TooSoon));
        assert!(is_trim(&w.at(5, regrown)));
    }

    #[test]
    fn a_manual_trim_that_ran_after_a_decision_answers_it() {
        let mut w = World::new("auto,minInterval=10s");
        let o = obs(300 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        // The worker coalesced the policy's request into a manual trim, recorded as manual.
        w.now += 1000;
        w.trimmed(TrimReason::Manual, &o, 0);
        assert_eq!(w.policy.status().backoff, 1);
        let regrown = obs(300 * MIB, 2 * GIB + 300 * MIB);
        assert_eq!(secs_until_trim(&mut w, &regrown), 10);
        // This policy trim is judged on its own estimate (300 MiB), not the earlier one.
        w.trimmed(TrimReason::Policy, &regrown, 80 * MIB);
        assert_eq!(w.policy.status().backoff, 1);
    }

    #[test]
    fn records_count_once() {
        let mut w = World::new("auto");
        let o = obs(300 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        w.trimmed(TrimReason::Policy, &o, 0);
        assert_eq!(w.policy.status().backoff, 2);
        let r = TrimRecord {
            seq: w.seq,
            at_ms: w.now,
            reason: TrimReason::Policy,
            requests: 1,
            retained_before: Some(0),
            rss_before: 0,
            rss_after: 0,
            released: 0,
            duration_ns: 0,
            returned: 0,
        };
        w.policy.record(&r);
        assert_eq!(w.policy.status().backoff, 2);
        assert_eq!(w.policy.last_seq(), Some(1));
    }

    #[test]
    fn changing_the_mode_resets_the_backoff() {
        let mut w = World::new("auto");
        let o = obs(300 * MIB, 2 * GIB);
        assert!(is_trim(&w.at(0, o.clone())));
        w.trimmed(TrimReason::Policy, &o, 0);
        assert_eq!(w.policy.status().backoff, 2);
        w.policy.set_mode("auto,minInterval=20s".parse().expect("mode"));
        let s = w.policy.status();
        assert_eq!((s.backoff, s.effective_interval_ms), (1, Some(20_000)));
        assert_eq!(
            s.spec,
            "auto,retained=33554432,retainedRss=5%,minInterval=20000ms,maxBackoff=16,regainWindow=3000ms,quietWait=10000ms"
        );
    }

    #[test]
    fn a_clock_that_jumps_back_restarts_the_count() {
        let mut w = World::new("10s");
        w.at(0, obs(0, GIB));
        w.now -= 3_600_000;
        assert_eq!(why(&w.at(0, obs(0, GIB))), Some(SkipReason::TooSoon));
        assert!(is_trim(&w.at(10, obs(0, GIB))));
    }

    #[test]
    fn decisions_serialize_with_a_tag() {
        let d = Decision::Trim { reason: TrimReason::Policy, estimate: 5 };
        assert_eq!(
            serde_json::to_string(&d).ok().as_deref(),
            Some(r#"{"decision":"trim","reason":"policy","estimate":5}"#)
        );
        let mut p = TrimPolicy::parse("auto").expect("auto");
        p.decide(0, &obs(0, 0));
        // Auto before its first trim: allowed now; after one, min interval later.
        assert_eq!(p.status().next_allowed_ms, Some(0));
        let s = serde_json::to_value(p.status()).expect("status");
        assert_eq!(s["mode"]["mode"], "auto");
        assert_eq!(s["mode"]["min_interval_ms"], 2_000);
    }
}
