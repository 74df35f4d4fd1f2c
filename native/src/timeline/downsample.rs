//! Reduction of a long series to what a chart can show: samples are grouped into time buckets
//! about one pixel column wide, and each bucket is drawn by its two extremes, so a spike that
//! lasted one sample in a week of samples still reaches its full height.

use std::ops::Range;

/// Samples grouped for drawing. Each bucket is a range of positions in the time-sorted samples
/// and becomes one point (a single sample, drawn exactly) or two (its first and last instants,
/// carrying the bucket's extremes in the order they happened).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub ranges: Vec<Range<usize>>,
    /// Whether any bucket holds more than one sample.
    pub reduced: bool,
}

impl Buckets {
    /// Groups `times` (sorted, milliseconds) so that at most `max_points` points are drawn.
    /// Short series keep every sample; long ones get `max_points / 2` equal time buckets, empty
    /// ones left out (an outage stays visible as a gap).
    pub fn new(times: &[f64], max_points: usize) -> Self {
        let n = times.len();
        if n <= max_points.max(1) {
            return Buckets { ranges: (0..n).map(|i| i..i + 1).collect(), reduced: false };
        }
        let count = (max_points / 2).max(1);
        let (first, last) = (times[0], times[n - 1]);
        let width = (last - first) / count as f64;
        if width <= 0.0 || !width.is_finite() {
            // Every sample at one instant: one bucket, two points.
            return Buckets { ranges: std::iter::once(0..n).collect(), reduced: true };
        }
        let bucket_of = |t: f64| (((t - first) / width) as usize).min(count - 1);
        let mut ranges = Vec::with_capacity(count);
        let mut start = 0;
        let mut current = bucket_of(times[0]);
        for (i, &t) in times.iter().enumerate().skip(1) {
            let b = bucket_of(t);
            if b != current {
                ranges.push(start..i);
                start = i;
                current = b;
            }
        }
        ranges.push(start..n);
        Buckets { ranges, reduced: true }
    }

    /// The positions of the samples that stand for each point: one per single-sample bucket,
    /// the first and last of larger ones.
    pub fn point_positions(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2);
        for r in &self.ranges {
            out.push(r.start);
            if r.len() > 1 {
                out.push(r.end - 1);
            }
        }
        out
    }

    /// Which bucket each point belongs to.
    pub fn point_buckets(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2);
        for (b, r) in self.ranges.iter().enumerate() {
            out.push(b);
            if r.len() > 1 {
                out.push(b);
            }
        }
        out
    }

    /// One value per point: a bucket's minimum and maximum of `values` (NaN = missing), in the
    /// order they happened. A bucket without any value gives NaN (a gap).
    pub fn extremes(&self, values: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2);
        for r in &self.ranges {
            if r.len() == 1 {
                out.push(values[r.start]);
                continue;
            }
            match min_max_positions(values, r.clone()) {
                Some((lo, hi)) => {
                    let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                    out.push(values[a]);
                    out.push(values[b]);
                }
                None => {
                    out.push(f64::NAN);
                    out.push(f64::NAN);
                }
            }
        }
        out
    }

    /// The two samples that stand for each bucket of a stacked chart: those where `key` (the
    /// stack's total) is lowest and highest, in time order. Stacking one real sample's parts
    /// keeps the stack's top equal to that sample's total.
    pub fn representatives(&self, key: &[f64]) -> Vec<Option<usize>> {
        let mut out = Vec::with_capacity(self.ranges.len() * 2);
        for r in &self.ranges {
            if r.len() == 1 {
                out.push(Some(r.start));
                continue;
            }
            match min_max_positions(key, r.clone()) {
                Some((lo, hi)) => {
                    out.push(Some(lo.min(hi)));
                    out.push(Some(lo.max(hi)));
                }
                None => {
                    out.push(None);
                    out.push(None);
                }
            }
        }
        out
    }
}

fn min_max_positions(values: &[f64], r: Range<usize>) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for i in r {
        let v = values[i];
        if v.is_nan() {
            continue;
        }
        best = Some(match best {
            None => (i, i),
            Some((lo, hi)) => (if v < values[lo] { i } else { lo }, if v > values[hi] { i } else { hi }),
        });
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_kept_whole() {
        let t = [0.0, 10.0, 20.0];
        let b = Buckets::new(&t, 2000);
        assert!(!b.reduced);
        assert_eq!(b.point_positions(), vec![0, 1, 2]);
        assert!(b.extremes(&[1.0, f64::NAN, 3.0])[1].is_nan());
    }

    #[test]
    fn a_single_sample_spike_survives_a_week() {
        let n = 60_480;
        let times: Vec<f64> = (0..n).map(|i| i as f64 * 10_000.0).collect();
        let mut values = vec![100.0; n];
        values[33_333] = 9_000.0;
        values[44_444] = 5.0;
        let b = Buckets::new(&times, 2000);
        assert!(b.reduced);
        let pts = b.extremes(&values);
        assert!(pts.len() <= 2000, "{} points", pts.len());
        assert_eq!(pts.iter().cloned().fold(f64::MIN, f64::max), 9_000.0);
        assert_eq!(pts.iter().cloned().fold(f64::MAX, f64::min), 5.0);
        assert_eq!(pts.len(), b.point_positions().len());
        assert_eq!(pts.len(), b.point_buckets().len());
    }

    #[test]
    fn extremes_keep_their_order_in_time() {
        let times: Vec<f64> = (0..10).map(f64::from).collect();
        let values = [5.0, 9.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0];
        let b = Buckets::new(&times, 2);
        assert_eq!(b.ranges, vec![0..10]);
        assert_eq!(b.extremes(&values), vec![9.0, 1.0]);
        assert_eq!(b.representatives(&values), vec![Some(1), Some(2)]);
    }

    #[test]
    fn an_outage_leaves_empty_buckets_out() {
        let mut times: Vec<f64> = (0..3000).map(f64::from).collect();
        times.extend((0..3000).map(|i| 1_000_000.0 + f64::from(i)));
        let b = Buckets::new(&times, 2000);
        // About three buckets either side; none reaches across the pause.
        assert!(b.ranges.len() <= 8, "{:?}", b.ranges);
        assert!(b.ranges.iter().all(|r| !(r.contains(&2999) && r.contains(&3000))));
        assert!(b.point_positions().contains(&2999) && b.point_positions().contains(&3000));
    }

    #[test]
    fn samples_at_one_instant_make_one_bucket() {
        let times = vec![5.0; 5000];
        let b = Buckets::new(&times, 2000);
        assert_eq!(b.ranges, vec![0..5000]);
    }
}
