//! A bounded history of observations and the growth of each tracked number: the change since a
//! baseline, and the recent rate from a robust slope.
//!
//! # Storage
//! The ring keeps a compact point per sample, not the `Observation`: its time and one `u64` per
//! tracked series (`rss`, `part.<class>`, `malloc.retained`, ...; see [`series`]), with a
//! sentinel for "absent in this sample". Series names are interned once; a point is
//! `8 + 24 + 8 * series` bytes, about 300 bytes with a full breakdown and NMT, so the default
//! capacity of [`DEFAULT_CAPACITY`] points (one day at 10 s) holds about 2.6 MB. The latest and
//! the baseline observations are kept whole beside it.
//!
//! # Rate
//! The recent rate of a series is the Theil–Sen estimate: the median of the slopes between every
//! pair of its points in the window (the last [`HistoryConfig::rate_window_ms`] before the latest
//! point), in bytes (or counts) per hour. One outlier (a trim, a GC that unmaps, a spike) moves
//! the median by at most one rank, where a two-point or least-squares slope would swing; it
//! tolerates up to about 29% arbitrary points. When the window holds more than
//! [`HistoryConfig::rate_max_points`] points, that many are taken evenly spaced (by index, always
//! including the first and the last), bounding the work at `m * (m - 1) / 2` slopes (2016 for
//! the default 64) per series per sample. No rate is given with fewer than
//! [`HistoryConfig::rate_min_points`] points or a window shorter than
//! [`HistoryConfig::rate_min_span_ms`].
//!
//! # Recent rate
//! Beside it, the same estimate over the later half (by time) of the points the rate came from.
//! A number that grew and then stopped (a pool filling to its size) keeps a positive rate over the
//! whole window until its plateau fills most of it; the later half goes flat as soon as the
//! plateau covers it. The rules call growth that goes on only what both rates show. It needs
//! [`HistoryConfig::rate_min_points`] points of its own and is absent without a rate.
//!
//! # Native call sites
//! The sampled malloc sites are not series (their ids come and go, and interning each would grow
//! every point): a second ring keeps, per sample with the sampler on, the live bytes of its top
//! sites by id, only as far back as the rate window. [`Growth::native_site_rates`] is the same
//! slope per site of the latest sample, over the points of the same sampler run; a site absent
//! from a point (new since, or below the top then) counts as 0 there.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::observation::Observation;

/// One day of samples at the agent's default interval of 10 s.
pub const DEFAULT_CAPACITY: usize = 8640;
/// The rate looks at the last 30 minutes.
pub const DEFAULT_RATE_WINDOW_MS: u64 = 30 * 60 * 1000;
/// At most this many points enter one slope estimate.
pub const DEFAULT_RATE_MAX_POINTS: usize = 64;
pub const DEFAULT_RATE_MIN_POINTS: usize = 5;
pub const DEFAULT_RATE_MIN_SPAN_MS: u64 = 60 * 1000;

const MS_PER_HOUR: f64 = 3_600_000.0;
/// Marks a series absent in a point. No real byte count or counter reaches it.
const ABSENT: u64 = u64::MAX;

/// Names of the tracked series.
pub mod series {
    pub const RSS: &str = "rss";
    pub const PSS: &str = "pss";
    pub const SWAP: &str = "swap";
    /// Prefix of the breakdown classes: `part.malloc_arena`, `part.thread_stack`, ...
    pub const PART_PREFIX: &str = "part.";
    pub const MALLOC_RETAINED: &str = "malloc.retained";
    /// The resident part of `malloc.retained` (see [`crate::retention`]).
    pub const MALLOC_RETAINED_RESIDENT: &str = "malloc.retained_resident";
    pub const MALLOC_IN_USE: &str = "malloc.in_use";
    pub const MALLOC_ARENAS: &str = "malloc.arena_count";
    pub const NMT_COMMITTED: &str = "nmt.committed";
    pub const METASPACE: &str = "metaspace";
    pub const ZIP_INFLATERS_ALIVE: &str = "zip.inflaters_alive";
    pub const ZIP_INFLATERS_PENDING: &str = "zip.inflaters_pending";
    pub const ZIP_DEFLATERS_ALIVE: &str = "zip.deflaters_alive";
    pub const ZIP_DEFLATERS_PENDING: &str = "zip.deflaters_pending";
    pub const ZIP_NATIVE: &str = "zip.estimated_native_bytes";
    /// Every unended stream the census found: both kinds, alive, pending, finalizable.
    pub const ZIP_UNENDED: &str = "zip.unended";
    pub const DIRECT_USED: &str = "direct.used";
    pub const DIRECT_COUNT: &str = "direct.count";
    pub const JAVA_THREADS: &str = "threads.java";
    pub const OS_THREADS: &str = "threads.os";
    pub const HEAP_USED: &str = "heap.used";
    pub const HEAP_COMMITTED: &str = "heap.committed";
    pub const CGROUP_USAGE: &str = "cgroup.usage";
    pub const CGROUP_WORKING_SET: &str = "cgroup.working_set";

    /// The series name of a breakdown class.
    pub fn part(class: &str) -> String {
        format!("{PART_PREFIX}{class}")
    }
}

/// Sizes and the rate window of a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HistoryConfig {
    /// Points kept; the oldest is dropped beyond it. At least 2.
    pub capacity: usize,
    pub rate_window_ms: u64,
    /// Points the slope estimate subsamples the window to. At least 2.
    pub rate_max_points: usize,
    pub rate_min_points: usize,
    pub rate_min_span_ms: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            capacity: DEFAULT_CAPACITY,
            rate_window_ms: DEFAULT_RATE_WINDOW_MS,
            rate_max_points: DEFAULT_RATE_MAX_POINTS,
            rate_min_points: DEFAULT_RATE_MIN_POINTS,
            rate_min_span_ms: DEFAULT_RATE_MIN_SPAN_MS,
        }
    }
}

#[derive(Debug, Clone)]
struct Point {
    epoch_ms: u64,
    /// Indexed by series id; shorter than the series list when series were added later.
    values: Box<[u64]>,
}

impl Point {
    fn get(&self, id: usize) -> Option<u64> {
        self.values.get(id).copied().filter(|v| *v != ABSENT)
    }
}

/// The growth of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesGrowth {
    /// Value at the baseline; `None` when the series was absent then (it appeared later).
    pub baseline: Option<u64>,
    /// Value in the latest observation; `None` when absent there.
    pub latest: Option<u64>,
    /// `latest - baseline`, when both are known.
    pub delta: Option<i64>,
    /// Theil–Sen slope over the recent window, per hour; `None` with too few points.
    pub rate_per_hour: Option<f64>,
    /// Points of the window the rate was estimated from (after subsampling).
    pub rate_points: usize,
    /// Theil–Sen slope over the later half of those points, per hour; absent without a rate or
    /// with too few points in that half.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_rate_per_hour: Option<f64>,
}

impl SeriesGrowth {
    /// True when both the window's rate and its later half's reach `min` per hour: the growth
    /// goes on rather than having stopped at a plateau. Without a recent rate, the window's rate
    /// alone decides.
    pub fn grows_at_least(&self, min: f64) -> bool {
        self.rate_per_hour.is_some_and(|r| r >= min) && self.recent_rate_per_hour.is_none_or(|r| r >= min)
    }
}

/// Growth of every tracked series. Serialises as one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Growth {
    pub baseline_ms: u64,
    pub latest_ms: u64,
    /// Span the rates were measured over (first to last point of the window).
    pub rate_span_ms: u64,
    pub series: BTreeMap<String, SeriesGrowth>,
    /// Live-bytes rate per hour of each native call site of the latest sample, by site id; a
    /// site without enough points in the window has none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub native_site_rates: BTreeMap<u64, f64>,
}

impl Growth {
    pub fn get(&self, name: &str) -> Option<&SeriesGrowth> {
        self.series.get(name)
    }

    pub fn delta(&self, name: &str) -> Option<i64> {
        self.get(name)?.delta
    }

    pub fn rate(&self, name: &str) -> Option<f64> {
        self.get(name)?.rate_per_hour
    }

    pub fn recent_rate(&self, name: &str) -> Option<f64> {
        self.get(name)?.recent_rate_per_hour
    }

    /// [`SeriesGrowth::grows_at_least`] of series `name`; false when it is not tracked.
    pub fn grows_at_least(&self, name: &str, min: f64) -> bool {
        self.get(name).is_some_and(|s| s.grows_at_least(min))
    }

    /// Time covered since the baseline.
    pub fn elapsed_ms(&self) -> u64 {
        self.latest_ms.saturating_sub(self.baseline_ms)
    }
}

/// The ring of points, the baseline and the latest observation.
#[derive(Debug, Clone)]
pub struct History {
    config: HistoryConfig,
    names: Vec<String>,
    ids: BTreeMap<String, usize>,
    points: VecDeque<Point>,
    baseline: Option<(Observation, Point)>,
    latest: Option<Observation>,
    native_sites: VecDeque<SitePoint>,
}

/// The native call sites of one sample: its sampler run and each top site's live bytes.
#[derive(Debug, Clone)]
struct SitePoint {
    epoch_ms: u64,
    run: u64,
    /// `(id, live_bytes)`, sorted by id.
    live: Box<[(u64, u64)]>,
}

impl Default for History {
    fn default() -> Self {
        History::new(HistoryConfig::default())
    }
}

impl History {
    /// A history with `config`; a capacity or `rate_max_points` below 2 is raised to 2.
    pub fn new(mut config: HistoryConfig) -> Self {
        config.capacity = config.capacity.max(2);
        config.rate_max_points = config.rate_max_points.max(2);
        History {
            config,
            names: Vec::new(),
            ids: BTreeMap::new(),
            points: VecDeque::with_capacity(config.capacity.min(1024)),
            baseline: None,
            latest: None,
            native_sites: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn latest(&self) -> Option<&Observation> {
        self.latest.as_ref()
    }

    /// The baseline observation: the first one, or the latest when [`Self::set_baseline`] ran.
    pub fn baseline(&self) -> Option<&Observation> {
        self.baseline.as_ref().map(|(o, _)| o)
    }

    /// Time of the oldest point still kept.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.points.front().map(|p| p.epoch_ms)
    }

    /// Names of the series seen so far.
    pub fn series_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Adds an observation. One older than the latest is a clock step back: it is kept (the
    /// window is by position, the slope by time), since dropping samples would hide growth.
    pub fn push(&mut self, obs: Observation) {
        let values = self.flatten(&obs);
        let point = Point { epoch_ms: obs.epoch_ms, values };
        self.push_native_sites(&obs);
        if self.baseline.is_none() {
            self.baseline = Some((obs.clone(), point.clone()));
        }
        if self.points.len() == self.config.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
        self.latest = Some(obs);
    }

    /// Makes the latest observation the baseline: growth is measured from now on.
    pub fn set_baseline(&mut self) {
        if let (Some(obs), Some(point)) = (&self.latest, self.points.back()) {
            self.baseline = Some((obs.clone(), point.clone()));
        }
    }

    fn push_native_sites(&mut self, obs: &Observation) {
        let Some(n) = &obs.native_sites else { return };
        let mut live: Vec<(u64, u64)> = n.sites.iter().map(|s| (s.id, s.live_bytes)).collect();
        live.sort_unstable();
        live.dedup_by_key(|p| p.0);
        let from = obs.epoch_ms.saturating_sub(self.config.rate_window_ms);
        while self.native_sites.front().is_some_and(|p| p.epoch_ms < from) || self.native_sites.len() >= self.config.capacity {
            self.native_sites.pop_front();
        }
        self.native_sites.push_back(SitePoint { epoch_ms: obs.epoch_ms, run: n.since_ms, live: live.into_boxed_slice() });
    }

    /// The live-bytes rate of each native site of the latest observation (see the module doc).
    fn native_site_rates(&self, from_ms: u64, slopes: &mut Vec<f64>) -> BTreeMap<u64, f64> {
        let mut out = BTreeMap::new();
        let Some(n) = self.latest.as_ref().and_then(|o| o.native_sites.as_ref()) else { return out };
        let points: Vec<&SitePoint> =
            self.native_sites.iter().filter(|p| p.run == n.since_ms && p.epoch_ms >= from_ms).collect();
        let m = self.config.rate_max_points;
        let picked: Vec<&SitePoint> = if points.len() <= m {
            points
        } else {
            (0..m).map(|k| points[k * (points.len() - 1) / (m - 1)]).collect()
        };
        let mut xs: Vec<(u64, u64)> = Vec::with_capacity(picked.len());
        for site in &n.sites {
            xs.clear();
            xs.extend(picked.iter().map(|p| {
                let v = p.live.binary_search_by_key(&site.id, |e| e.0).map_or(0, |i| p.live[i].1);
                (p.epoch_ms, v)
            }));
            if let Some(r) = self.rate_of(&xs, slopes) {
                out.insert(site.id, r);
            }
        }
        out
    }

    fn id(&mut self, name: &str) -> usize {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len();
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn flatten(&mut self, o: &Observation) -> Box<[u64]> {
        let mut v: Vec<(usize, u64)> = Vec::with_capacity(self.names.len() + 4);
        let mut put = |h: &mut Self, name: &str, value: Option<u64>| {
            if let Some(x) = value {
                v.push((h.id(name), x.min(ABSENT - 1)));
            }
        };
        put(self, series::RSS, Some(o.rss));
        put(self, series::PSS, o.pss);
        put(self, series::SWAP, Some(o.swap));
        for (class, bytes) in &o.parts {
            put(self, &series::part(class), Some(*bytes));
        }
        if let Some(m) = &o.malloc {
            put(self, series::MALLOC_RETAINED, Some(m.retained));
            put(self, series::MALLOC_RETAINED_RESIDENT, m.retained_resident);
            put(self, series::MALLOC_IN_USE, Some(m.in_use));
            put(self, series::MALLOC_ARENAS, Some(m.arena_count));
        }
        put(self, series::NMT_COMMITTED, o.nmt.as_ref().map(|n| n.committed));
        put(self, series::METASPACE, o.metaspace);
        if let Some(z) = &o.zip {
            put(self, series::ZIP_INFLATERS_ALIVE, Some(z.inflaters_alive));
            put(self, series::ZIP_INFLATERS_PENDING, Some(z.inflaters_pending));
            put(self, series::ZIP_DEFLATERS_ALIVE, Some(z.deflaters_alive));
            put(self, series::ZIP_DEFLATERS_PENDING, Some(z.deflaters_pending));
            put(self, series::ZIP_NATIVE, Some(z.estimated_native_bytes));
            put(self, series::ZIP_UNENDED, Some(z.unended()));
        }
        if let Some(d) = &o.direct_buffers {
            put(self, series::DIRECT_USED, Some(d.used));
            put(self, series::DIRECT_COUNT, Some(d.count));
        }
        put(self, series::JAVA_THREADS, o.java_threads);
        put(self, series::OS_THREADS, o.os_threads);
        put(self, series::HEAP_USED, o.heap_used);
        put(self, series::HEAP_COMMITTED, o.heap_committed);
        if let Some(c) = &o.cgroup {
            put(self, series::CGROUP_USAGE, c.usage);
            put(self, series::CGROUP_WORKING_SET, c.working_set());
        }
        let len = v.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
        let mut values = vec![ABSENT; len];
        for (id, x) in v {
            values[id] = x;
        }
        values.into_boxed_slice()
    }

    /// Indices of the points in the rate window, subsampled to at most `rate_max_points`.
    fn window(&self) -> Vec<usize> {
        let Some(last) = self.points.back() else { return Vec::new() };
        let from = last.epoch_ms.saturating_sub(self.config.rate_window_ms);
        let start = self.points.iter().rposition(|p| p.epoch_ms < from).map_or(0, |i| i + 1);
        let n = self.points.len() - start;
        let m = self.config.rate_max_points;
        if n <= m {
            return (start..self.points.len()).collect();
        }
        // Evenly spaced by index, first and last included.
        (0..m).map(|k| start + k * (n - 1) / (m - 1)).collect()
    }

    /// Growth of every series since the baseline and its recent rate.
    pub fn growth(&self) -> Growth {
        let window = self.window();
        let span = match (window.first(), window.last()) {
            (Some(a), Some(b)) => self.points[*b].epoch_ms.saturating_sub(self.points[*a].epoch_ms),
            _ => 0,
        };
        let last = self.points.back();
        let base = self.baseline.as_ref().map(|(_, p)| p);
        let mut series = BTreeMap::new();
        let mut xs: Vec<(u64, u64)> = Vec::with_capacity(window.len());
        let mut slopes: Vec<f64> = Vec::new();
        for (id, name) in self.names.iter().enumerate() {
            let baseline = base.and_then(|p| p.get(id));
            let latest = last.and_then(|p| p.get(id));
            if baseline.is_none() && latest.is_none() {
                continue;
            }
            xs.clear();
            xs.extend(window.iter().filter_map(|i| {
                let p = &self.points[*i];
                p.get(id).map(|v| (p.epoch_ms, v))
            }));
            let rate = self.rate_of(&xs, &mut slopes);
            let recent = match (rate, xs.first(), xs.last()) {
                (Some(_), Some(a), Some(b)) => {
                    let mid = a.0 + (b.0 - a.0.min(b.0)) / 2;
                    let from = xs.iter().position(|p| p.0 >= mid).unwrap_or(xs.len());
                    let half = &xs[from..];
                    if half.len() >= self.config.rate_min_points.max(2) {
                        theil_sen_into(half, &mut slopes)
                    } else {
                        None
                    }
                }
                _ => None,
            };
            series.insert(
                name.clone(),
                SeriesGrowth {
                    baseline,
                    latest,
                    delta: match (baseline, latest) {
                        (Some(b), Some(l)) => Some(signed_delta(b, l)),
                        _ => None,
                    },
                    rate_per_hour: rate,
                    rate_points: xs.len(),
                    recent_rate_per_hour: recent,
                },
            );
        }
        let from = window.first().map_or(u64::MAX, |i| self.points[*i].epoch_ms);
        Growth {
            baseline_ms: base.map_or(0, |p| p.epoch_ms),
            latest_ms: last.map_or(0, |p| p.epoch_ms),
            rate_span_ms: span,
            series,
            native_site_rates: self.native_site_rates(from, &mut slopes),
        }
    }

    fn rate_of(&self, xs: &[(u64, u64)], slopes: &mut Vec<f64>) -> Option<f64> {
        if xs.len() < self.config.rate_min_points.max(2) {
            return None;
        }
        let (t0, t1) = (xs.first()?.0, xs.last()?.0);
        if t1.saturating_sub(t0) < self.config.rate_min_span_ms {
            return None;
        }
        theil_sen_into(xs, slopes)
    }
}

fn signed_delta(from: u64, to: u64) -> i64 {
    if to >= from {
        i64::try_from(to - from).unwrap_or(i64::MAX)
    } else {
        i64::try_from(from - to).map_or(i64::MIN, |d| -d)
    }
}

/// Theil–Sen slope of `(epoch_ms, value)` points, in value units per hour: the median of the
/// slopes of all pairs with distinct times. `None` when no pair has distinct times. Quadratic in
/// the number of points: callers subsample.
pub fn theil_sen_per_hour(points: &[(u64, u64)]) -> Option<f64> {
    theil_sen_into(points, &mut Vec::new())
}

/// [`theil_sen_per_hour`] with a scratch buffer reused across series.
fn theil_sen_into(points: &[(u64, u64)], slopes: &mut Vec<f64>) -> Option<f64> {
    slopes.clear();
    slopes.reserve(points.len() * points.len().saturating_sub(1) / 2);
    for (i, (ta, va)) in points.iter().enumerate() {
        for (tb, vb) in &points[i + 1..] {
            if ta == tb {
                continue;
            }
            let dv = *vb as f64 - *va as f64;
            let dt = *tb as f64 - *ta as f64;
            slopes.push(dv / dt * MS_PER_HOUR);
        }
    }
    median(slopes)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, hi, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    if v.len() % 2 == 1 {
        return Some(hi);
    }
    // The lower middle is the largest of the part left of `mid`.
    let lo = v[..mid].iter().copied().max_by(f64::total_cmp)?;
    Some((lo + hi) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{MallocObs, ZipObs};

    const MIB: u64 = 1 << 20;
    const GIB_1: u64 = 1 << 30;
    const STEP_MS: u64 = 10_000;

    fn obs(t_ms: u64, rss: u64) -> Observation {
        Observation { epoch_ms: t_ms, rss, ..Default::default() }
    }

    #[test]
    fn ring_is_bounded_and_keeps_the_newest() {
        let mut h = History::new(HistoryConfig { capacity: 5, ..Default::default() });
        for i in 0..12 {
            h.push(obs(i * STEP_MS, i * MIB));
        }
        assert_eq!(h.len(), 5);
        assert_eq!(h.oldest_ms(), Some(7 * STEP_MS));
        assert_eq!(h.latest().map(|o| o.rss), Some(11 * MIB));
        // The baseline outlives the ring: growth is still since the first observation.
        assert_eq!(h.baseline().map(|o| o.epoch_ms), Some(0));
        let g = h.growth();
        assert_eq!(g.delta(series::RSS), Some(11 * MIB as i64));
        assert_eq!(g.baseline_ms, 0);
    }

    fn with_sites(t_ms: u64, run: u64, sites: &[(u64, u64)]) -> Observation {
        let mut o = obs(t_ms, GIB_1);
        o.native_sites = Some(crate::observation::NativeSitesObs {
            since_ms: run,
            sites: sites
                .iter()
                .map(|&(id, live_bytes)| crate::observation::NativeSite { id, live_bytes, ..Default::default() })
                .collect(),
            ..Default::default()
        });
        o
    }

    #[test]
    fn native_site_rates_by_id_within_one_sampler_run() {
        // 3 MiB per 10 s sample is 1080 MiB/h.
        let per_hour = 3.0 * MIB as f64 * 360.0;
        let mut h = History::default();
        for i in 0..30 {
            let mut sites = vec![(1, 10 * MIB + i * 3 * MIB), (2, 50 * MIB)];
            if i >= 15 {
                sites.push((5, (i - 14) * 3 * MIB));
            }
            h.push(with_sites(i * STEP_MS, 1, &sites));
        }
        let g = h.growth();
        let r1 = g.native_site_rates.get(&1).copied().expect("rate of site 1");
        assert!((r1 - per_hour).abs() < 1.0, "{r1}");
        assert_eq!(g.native_site_rates.get(&2).copied(), Some(0.0));
        // A site that appeared in the window counts from 0 before.
        assert!(g.native_site_rates.get(&5).is_some_and(|r| *r > per_hour / 2.0), "{g:?}");
        // One that dropped out of the top has no rate.
        h.push(with_sites(30 * STEP_MS, 1, &[(1, 100 * MIB)]));
        assert_eq!(h.growth().native_site_rates.keys().collect::<Vec<_>>(), vec![&1]);
        // A new sampler run: id 1 is another site now; the old run's points do not count.
        for i in 31..39 {
            h.push(with_sites(i * STEP_MS, 2, &[(1, 7 * MIB)]));
        }
        assert_eq!(h.growth().native_site_rates.get(&1).copied(), Some(0.0));
        // Sampler off: no rates; the ring keeps only the rate window.
        h.push(obs(39 * STEP_MS, GIB_1));
        assert!(h.growth().native_site_rates.is_empty());
        for i in 40..400 {
            h.push(with_sites(i * STEP_MS, 2, &[(1, 7 * MIB)]));
        }
        assert_eq!(h.native_sites.len() as u64, DEFAULT_RATE_WINDOW_MS / STEP_MS + 1);
    }

    #[test]
    fn default_capacity_is_one_day_at_ten_seconds() {
        let mut h = History::default();
        for i in 0..(DEFAULT_CAPACITY as u64 + 100) {
            h.push(obs(i * STEP_MS, 100 * MIB));
        }
        assert_eq!(h.len(), DEFAULT_CAPACITY);
    }

    #[test]
    fn set_baseline_measures_from_the_latest() {
        let mut h = History::default();
        h.push(obs(0, 100 * MIB));
        h.push(obs(STEP_MS, 150 * MIB));
        h.set_baseline();
        h.push(obs(2 * STEP_MS, 160 * MIB));
        let g = h.growth();
        assert_eq!(g.delta(series::RSS), Some(10 * MIB as i64));
        assert_eq!(g.baseline_ms, STEP_MS);
        assert_eq!(g.elapsed_ms(), STEP_MS);
    }

    #[test]
    fn linear_growth_gives_its_rate() {
        let mut h = History::default();
        // 1 MiB per 10 s = 360 MiB per hour.
        for i in 0..60 {
            h.push(obs(i * STEP_MS, 500 * MIB + i * MIB));
        }
        let r = h.growth().rate(series::RSS).expect("rate");
        assert!((r - 360.0 * MIB as f64).abs() < 1.0, "{r}");
    }

    #[test]
    fn outliers_do_not_move_theil_sen() {
        let mut h = History::default();
        for i in 0..60u64 {
            let mut rss = 500 * MIB + i * MIB;
            // A trim that drops 400 MiB for one sample, and two spikes of 2 GiB.
            if i == 20 {
                rss -= 400 * MIB;
            }
            if i == 35 || i == 50 {
                rss += 2048 * MIB;
            }
            h.push(obs(i * STEP_MS, rss));
        }
        let r = h.growth().rate(series::RSS).expect("rate");
        let truth = 360.0 * MIB as f64;
        assert!((r - truth).abs() / truth < 0.02, "rate {r} vs {truth}");
        // A two-point rate (first to last) would be the same here; least squares would not.
        let pts: Vec<(u64, u64)> = (0..60u64)
            .map(|i| (i * STEP_MS, if i == 59 { 100 * 1024 * MIB } else { 500 * MIB + i * MIB }))
            .collect();
        let ts = theil_sen_per_hour(&pts).expect("slope");
        assert!((ts - truth).abs() / truth < 0.05, "last point outlier moved the slope: {ts}");
    }

    #[test]
    fn a_plateau_flattens_the_recent_rate_before_the_windows() {
        // 12 min of +5 threads per 10 s, then 18 min flat, in a 30 min window: the window's
        // median slope still says growth, its later half (the last 15 min) says none.
        let mut h = History::default();
        for i in 0..=180u64 {
            let mut o = obs(i * STEP_MS, GIB_1);
            o.java_threads = Some(50 + 5 * i.min(72));
            h.push(o);
        }
        let g = h.growth();
        let s = g.get(series::JAVA_THREADS).expect("threads");
        assert!(s.rate_per_hour.expect("rate") > 100.0, "{s:?}");
        assert_eq!(s.recent_rate_per_hour, Some(0.0), "{s:?}");
        assert!(!g.grows_at_least(series::JAVA_THREADS, 20.0));
        // Growth that goes on: both rates agree.
        let mut h = History::default();
        for i in 0..=180u64 {
            let mut o = obs(i * STEP_MS, GIB_1);
            o.java_threads = Some(50 + 5 * i);
            h.push(o);
        }
        let g = h.growth();
        let s = g.get(series::JAVA_THREADS).expect("threads");
        assert_eq!(s.recent_rate_per_hour.map(f64::round), Some(1800.0));
        assert!(g.grows_at_least(series::JAVA_THREADS, 20.0));
        assert!(!g.grows_at_least("no.such.series", 0.0));
    }

    #[test]
    fn the_recent_rate_needs_a_rate_and_points_of_its_own() {
        // Too short for a rate: no recent rate either.
        let mut h = History::default();
        for i in 0..5u64 {
            h.push(obs(i * 1000, i * MIB));
        }
        let s = h.growth().get(series::RSS).cloned().expect("rss");
        assert_eq!((s.rate_per_hour, s.recent_rate_per_hour), (None, None));
        // Six points make a rate but leave three for the later half: the window's rate decides.
        let mut h = History::default();
        for i in 0..6u64 {
            h.push(obs(i * 20_000, i * MIB));
        }
        let s = h.growth().get(series::RSS).cloned().expect("rss");
        assert!(s.rate_per_hour.is_some() && s.recent_rate_per_hour.is_none(), "{s:?}");
        assert!(s.grows_at_least(1.0));
    }

    #[test]
    fn flat_series_with_noise_has_a_rate_near_zero() {
        let mut h = History::default();
        for i in 0..100u64 {
            // +-8 MiB alternating noise around 1 GiB.
            let rss = if i % 2 == 0 { 1024 * MIB + 8 * MIB } else { 1024 * MIB - 8 * MIB };
            h.push(obs(i * STEP_MS, rss));
        }
        let r = h.growth().rate(series::RSS).expect("rate");
        assert!(r.abs() < 2.0 * MIB as f64, "{r}");
    }

    #[test]
    fn window_is_subsampled_and_recent() {
        let cfg = HistoryConfig { rate_max_points: 16, ..Default::default() };
        let mut h = History::new(cfg);
        // Two hours: the first flat, the second growing. The 30 min window sees only growth.
        for i in 0..720u64 {
            let rss = if i < 360 { 100 * MIB } else { 100 * MIB + (i - 360) * MIB };
            h.push(obs(i * STEP_MS, rss));
        }
        let g = h.growth();
        let s = g.get(series::RSS).expect("rss");
        assert_eq!(s.rate_points, 16);
        let r = s.rate_per_hour.expect("rate");
        assert!((r - 360.0 * MIB as f64).abs() / (360.0 * MIB as f64) < 0.01, "{r}");
        assert!(g.rate_span_ms >= DEFAULT_RATE_WINDOW_MS - STEP_MS && g.rate_span_ms <= DEFAULT_RATE_WINDOW_MS);
    }

    #[test]
    fn too_few_points_or_too_short_gives_no_rate() {
        let mut h = History::default();
        for i in 0..4 {
            h.push(obs(i * STEP_MS, i * MIB));
        }
        assert_eq!(h.growth().rate(series::RSS), None);
        let mut h = History::default();
        for i in 0..10 {
            h.push(obs(i * 1000, i * MIB));
        }
        assert_eq!(h.growth().rate(series::RSS), None, "9 s is shorter than the minimum span");
    }

    #[test]
    fn tracks_parts_malloc_zip_and_series_that_appear_later() {
        let mut h = History::default();
        let mut first = obs(0, 100 * MIB);
        first.parts.insert("malloc_arena".into(), 10 * MIB);
        h.push(first);
        let mut later = obs(STEP_MS, 200 * MIB);
        later.parts.insert("malloc_arena".into(), 90 * MIB);
        later.malloc = Some(MallocObs { arena_count: 9, retained: 50 * MIB, in_use: 40 * MIB, trimmable_max: 0, ..MallocObs::default() });
        later.zip = Some(ZipObs { inflaters_alive: 1000, ..Default::default() });
        h.push(later);
        let g = h.growth();
        assert_eq!(g.delta(&series::part("malloc_arena")), Some(80 * MIB as i64));
        let ret = g.get(series::MALLOC_RETAINED).expect("retained");
        assert_eq!((ret.baseline, ret.latest, ret.delta), (None, Some(50 * MIB), None));
        assert_eq!(g.get(series::ZIP_INFLATERS_ALIVE).and_then(|s| s.latest), Some(1000));
        assert!(g.get(series::NMT_COMMITTED).is_none(), "never seen: not reported");
    }

    #[test]
    fn shrinking_gives_a_negative_delta() {
        let mut h = History::default();
        h.push(obs(0, 300 * MIB));
        h.push(obs(STEP_MS, 100 * MIB));
        assert_eq!(h.growth().delta(series::RSS), Some(-(200 * MIB as i64)));
        assert_eq!(signed_delta(u64::MAX, 0), i64::MIN);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(theil_sen_per_hour(&[(5, 1), (5, 2)]), None);
    }

    proptest::proptest! {
        /// With at most a quarter of the points replaced by anything, fewer than half the pairs
        /// touch an outlier, so the median slope is the line's exactly.
        #[test]
        fn theil_sen_ignores_a_quarter_of_outliers(
            n in 20usize..80,
            slope in 0u64..(4 * MIB),
            outliers in proptest::collection::vec((0usize..80, 0u64..(64 * 1024 * MIB)), 0..20),
        ) {
            let mut pts: Vec<(u64, u64)> = (0..n as u64).map(|i| (i * STEP_MS, GIB_BASE + i * slope)).collect();
            let mut hit = std::collections::BTreeSet::new();
            for (i, v) in outliers {
                if hit.len() < n / 4 && hit.insert(i % n) {
                    pts[i % n].1 = v;
                }
            }
            let r = theil_sen_per_hour(&pts).expect("slope");
            let truth = slope as f64 / STEP_MS as f64 * MS_PER_HOUR;
            proptest::prop_assert!((r - truth).abs() <= 1e-6 * truth.max(1.0), "{} vs {}", r, truth);
        }

        #[test]
        fn ring_never_exceeds_its_capacity(cap in 2usize..50, n in 0u64..200) {
            let mut h = History::new(HistoryConfig { capacity: cap, ..Default::default() });
            for i in 0..n {
                h.push(obs(i * STEP_MS, i));
            }
            proptest::prop_assert_eq!(h.len(), (n as usize).min(cap));
            proptest::prop_assert_eq!(h.baseline().map(|o| o.epoch_ms), (n > 0).then_some(0));
        }
    }

    const GIB_BASE: u64 = 1 << 30;

    #[test]
    fn growth_serialises() {
        let mut h = History::default();
        h.push(obs(0, MIB));
        let v = serde_json::to_value(h.growth()).expect("json");
        assert_eq!(v["series"]["rss"]["baseline"], serde_json::json!(MIB));
    }
}
