//! The one thread that runs trims, so no caller (a JMX operation, the scheduler) waits on
//! `malloc_trim` longer than it chose to.
//!
//! Requests go through a `crossbeam-channel` queue to a plain Rust thread named
//! `offheap-doctor-trim`, started on the first request. The thread runs one trim at a time and
//! coalesces: every request queued while it was busy is answered by the next single trim (it
//! takes the reason `manual` if any of them was manual, else the first one's). Each trim is
//! written to a bounded history before its requesters hear of it, so a trim whose caller gave
//! up waiting ([`TrimOutcome::StillRunning`]) is recorded all the same.
//!
//! The thread never touches JNI and holds no lock across `malloc_trim` that a JVM thread could
//! need, so it is safe at JVM exit: the process may end while it is inside `malloc_trim`, which
//! only `madvise`s pages of a process that is going away.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::Serialize;

use crate::allocator::{self, AllocatorKind};
use crate::error::{Error, Result};
use crate::timefmt::now_millis;
use crate::trim::{self, TrimResult};
use crate::trim_policy::TrimReason;

/// The worker thread's name, as `jstack` and `/proc/<pid>/task/*/comm` show it (the kernel
/// keeps 15 bytes: `offheap-doctor-`).
pub const THREAD_NAME: &str = "offheap-doctor-trim";
/// Trims kept in the history (the percentiles are over these).
pub const DEFAULT_HISTORY: usize = 256;

/// One trim that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrimRecord {
    /// 1, 2, 3... in the order the trims ran, over the life of the worker.
    pub seq: u64,
    /// When `malloc_trim` started, epoch milliseconds.
    pub at_ms: u64,
    pub reason: TrimReason,
    /// How many requests this one trim answered (more than 1 when they were coalesced).
    pub requests: u32,
    pub retained_before: Option<u64>,
    pub rss_before: u64,
    pub rss_after: u64,
    pub released: u64,
    /// Time inside `malloc_trim`.
    pub duration_ns: u64,
    /// `malloc_trim`'s return value.
    pub returned: i32,
}

impl TrimRecord {
    fn from_result(
        seq: u64,
        at_ms: u64,
        reason: TrimReason,
        requests: u32,
        r: &TrimResult,
    ) -> Self {
        TrimRecord {
            seq,
            at_ms,
            reason,
            requests,
            retained_before: r.retained_before,
            rss_before: r.rss_before,
            rss_after: r.rss_after,
            released: r.released,
            duration_ns: r.duration_ns,
            returned: r.returned,
        }
    }
}

/// What a caller that waited gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TrimOutcome {
    /// The trim ran; its record, as the history has it.
    Done(TrimRecord),
    /// The wait ran out first. The trim goes on (or is still queued) and will be in the
    /// history when it ends.
    StillRunning { waited_ms: u64 },
}

/// Trim durations over the history, nearest-rank percentiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DurationPercentiles {
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReasonCounts {
    pub manual: u64,
    pub policy: u64,
    pub interval: u64,
}

/// The trim in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunningTrim {
    pub reason: TrimReason,
    pub since_ms: u64,
}

/// Everything the worker knows, as one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrimStats {
    /// Trims that ran, over the life of the worker.
    pub count: u64,
    pub by_reason: ReasonCounts,
    /// Trims that failed (unreadable `statm`, or a panic inside the trim).
    pub failures: u64,
    pub last_error: Option<String>,
    /// Sum of `released` over every trim.
    pub released_bytes: u64,
    /// Sum of `duration_ns` over every trim.
    pub total_duration_ns: u64,
    /// Over the trims still in `history`; `None` before the first.
    pub duration: Option<DurationPercentiles>,
    pub running: Option<RunningTrim>,
    pub history_capacity: usize,
    /// Oldest first.
    pub history: Vec<TrimRecord>,
}

/// Nearest-rank percentiles of `values` (any order).
pub fn percentiles(values: &[u64]) -> Option<DurationPercentiles> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = |p: usize| -> u64 {
        // ceil(p/100 × n), 1-based.
        let k = (p * v.len()).div_ceil(100).max(1);
        v[k - 1]
    };
    let max = *v.last()?;
    Some(DurationPercentiles { p50_ns: rank(50), p90_ns: rank(90), p99_ns: rank(99), max_ns: max })
}

/// The function that trims; [`trim::trim`] in the process-wide worker, a fake in tests.
pub type Trimmer = dyn Fn() -> Result<TrimResult> + Send + Sync;

struct Request {
    reason: TrimReason,
    reply: Sender<std::result::Result<TrimRecord, Arc<Error>>>,
}

#[derive(Default)]
struct Book {
    stats: TrimStats,
    history: VecDeque<TrimRecord>,
}

struct Shared {
    book: Mutex<Book>,
    capacity: usize,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        // The book is plain data updated in one step; a panic elsewhere cannot leave it torn.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A trim worker: the process has one ([`global`]); tests make their own with a fake trimmer.
pub struct TrimWorker {
    shared: Arc<Shared>,
    trimmer: Arc<Trimmer>,
    sender: Mutex<Option<Sender<Request>>>,
}

impl TrimWorker {
    pub fn new(history_capacity: usize, trimmer: Arc<Trimmer>) -> Self {
        TrimWorker {
            shared: Arc::new(Shared {
                book: Mutex::new(Book::default()),
                capacity: history_capacity.max(1),
            }),
            trimmer,
            sender: Mutex::new(None),
        }
    }

    /// Queues a trim and returns at once. Starts the thread on first use.
    pub fn submit(&self, reason: TrimReason) -> Result<TrimTicket> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let mut request = Request { reason, reply };
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        // Two tries: a thread that died (it cannot, short of an abort in the trimmer) is
        // replaced once.
        for _ in 0..2 {
            let tx = match sender.as_ref() {
                Some(tx) => tx.clone(),
                None => {
                    let tx = self.spawn()?;
                    *sender = Some(tx.clone());
                    tx
                }
            };
            match tx.send(request) {
                Ok(()) => return Ok(TrimTicket { rx, submitted: Instant::now() }),
                Err(e) => {
                    request = e.into_inner();
                    *sender = None;
                }
            }
        }
        Err(Error::Unsupported("the trim worker thread cannot be started".into()))
    }

    /// Submits a trim and waits at most `timeout` for it.
    pub fn trim_now(&self, reason: TrimReason, timeout: Duration) -> Result<TrimOutcome> {
        self.submit(reason)?.wait(timeout)
    }

    pub fn stats(&self) -> TrimStats {
        let book = self.shared.book();
        let mut s = book.stats.clone();
        s.history = book.history.iter().cloned().collect();
        let durations: Vec<u64> = book.history.iter().map(|r| r.duration_ns).collect();
        s.duration = percentiles(&durations);
        s.history_capacity = self.shared.capacity;
        s
    }

    /// The records after `seq` still in the history (all of them for `None`), oldest first:
    /// what a [`crate::trim_policy::TrimPolicy`] has not seen yet.
    pub fn records_since(&self, seq: Option<u64>) -> Vec<TrimRecord> {
        let book = self.shared.book();
        book.history.iter().filter(|r| seq.is_none_or(|s| r.seq > s)).cloned().collect()
    }

    fn spawn(&self) -> Result<Sender<Request>> {
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let shared = Arc::clone(&self.shared);
        let trimmer = Arc::clone(&self.trimmer);
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(&rx, &shared, &*trimmer))
            .map_err(|e| Error::Unsupported(format!("cannot start {THREAD_NAME}: {e}")))?;
        Ok(tx)
    }
}

/// The thread's loop: ends when every sender is gone (a dropped [`TrimWorker`]); the process-wide
/// worker's sender lives as long as the process.
fn run(rx: &Receiver<Request>, shared: &Shared, trimmer: &Trimmer) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let reason = if batch.iter().any(|r| r.reason == TrimReason::Manual) {
            TrimReason::Manual
        } else {
            batch[0].reason
        };
        let at_ms = now_millis();
        shared.book().stats.running = Some(RunningTrim { reason, since_ms: at_ms });
        let result = catch_unwind(AssertUnwindSafe(trimmer)).unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(Error::io("malloc_trim", std::io::Error::other(format!("trim panicked: {msg}"))))
        });
        let requests = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        let answer = {
            let mut book = shared.book();
            book.stats.running = None;
            match result {
                Ok(r) => {
                    let seq = book.stats.count + 1;
                    let rec = TrimRecord::from_result(seq, at_ms, reason, requests, &r);
                    let s = &mut book.stats;
                    s.count = seq;
                    match reason {
                        TrimReason::Manual => s.by_reason.manual += 1,
                        TrimReason::Policy => s.by_reason.policy += 1,
                        TrimReason::Interval => s.by_reason.interval += 1,
                    }
                    s.released_bytes = s.released_bytes.saturating_add(rec.released);
                    s.total_duration_ns = s.total_duration_ns.saturating_add(rec.duration_ns);
                    if book.history.len() >= shared.capacity {
                        book.history.pop_front();
                    }
                    book.history.push_back(rec.clone());
                    Ok(rec)
                }
                Err(e) => {
                    book.stats.failures += 1;
                    book.stats.last_error = Some(e.to_string());
                    Err(Arc::new(e))
                }
            }
        };
        for r in batch {
            // A requester that stopped waiting dropped its receiver; nothing to tell it.
            let _ = r.reply.send(answer.clone());
        }
    }
}

/// A queued trim's claim ticket.
pub struct TrimTicket {
    rx: Receiver<std::result::Result<TrimRecord, Arc<Error>>>,
    submitted: Instant,
}

impl TrimTicket {
    /// Waits at most `timeout`. A trim that failed is its error (`Unsupported`, `Io`...).
    pub fn wait(&self, timeout: Duration) -> Result<TrimOutcome> {
        match self.rx.recv_timeout(timeout) {
            Ok(answer) => answer.map(TrimOutcome::Done).map_err(|e| duplicate(&e)),
            Err(RecvTimeoutError::Timeout) => Ok(TrimOutcome::StillRunning {
                waited_ms: u64::try_from(self.submitted.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
            Err(RecvTimeoutError::Disconnected) => {
                Err(Error::Unsupported("the trim worker ended without an answer".into()))
            }
        }
    }

    /// The answer if it is in, without waiting.
    pub fn poll(&self) -> Option<Result<TrimRecord>> {
        self.rx.try_recv().ok().map(|a| a.map_err(|e| duplicate(&e)))
    }
}

/// A copy of an error shared by coalesced requesters (`io::Error` is not `Clone`).
fn duplicate(e: &Error) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::Io { path, source } => {
            Error::io(path.clone(), std::io::Error::new(source.kind(), source.to_string()))
        }
        Error::Parse { what, detail } => Error::Parse { what, detail: detail.clone() },
        Error::Unsupported(m) => Error::Unsupported(m.clone()),
        // A trim never calls into the JVM; kept as its text should that change.
        Error::Jni(j) => Error::Unsupported(format!("JNI: {j}")),
    }
}

/// The process-wide worker, releasing with the allocator's own call ([`trim::release`]).
pub fn global() -> &'static TrimWorker {
    static WORKER: OnceLock<TrimWorker> = OnceLock::new();
    WORKER.get_or_init(|| TrimWorker::new(DEFAULT_HISTORY, Arc::new(|| trim::release(0))))
}

/// glibc, jemalloc and tcmalloc each have a release call; nothing else does.
fn require_releasing_allocator() -> Result<()> {
    match allocator::current_kind() {
        AllocatorKind::Glibc | AllocatorKind::Jemalloc | AllocatorKind::Tcmalloc => Ok(()),
        other => Err(Error::Unsupported(format!("no way to release free memory under {}", other.name()))),
    }
}

/// Queues a trim on the process-wide worker. `Unsupported` at once where the allocator has no
/// release call (no thread is started there).
pub fn submit_trim(reason: TrimReason) -> Result<TrimTicket> {
    require_releasing_allocator()?;
    global().submit(reason)
}

/// A manual trim on the process-wide worker, waiting at most `timeout`.
pub fn trim_now(timeout: Duration) -> Result<TrimOutcome> {
    submit_trim(TrimReason::Manual)?.wait(timeout)
}

/// The process-wide worker's statistics (empty before the first trim).
pub fn stats() -> TrimStats {
    global().stats()
}

/// See [`TrimWorker::records_since`].
pub fn records_since(seq: Option<u64>) -> Vec<TrimRecord> {
    global().records_since(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    fn result(released: u64, duration_ns: u64) -> TrimResult {
        TrimResult {
            rss_before: 1000 + released,
            rss_after: 1000,
            released,
            retained_before: Some(released * 2),
            retained_source: None,
            duration_ns,
            returned: 1,
            pad: 0,
        }
    }

    /// A trimmer that counts its calls, notes when two overlap, and waits for a go signal.
    struct Gate {
        calls: AtomicU32,
        inside: AtomicU32,
        overlapped: AtomicU32,
        go: Receiver<()>,
        entered: Sender<()>,
        next_duration: AtomicU64,
    }

    fn gated(capacity: usize) -> (TrimWorker, Arc<Gate>, Sender<()>, Receiver<()>) {
        let (go_tx, go) = bounded(64);
        let (entered, entered_rx) = bounded(64);
        let gate = Arc::new(Gate {
            calls: AtomicU32::new(0),
            inside: AtomicU32::new(0),
            overlapped: AtomicU32::new(0),
            go,
            entered,
            next_duration: AtomicU64::new(1),
        });
        let g = Arc::clone(&gate);
        let worker = TrimWorker::new(
            capacity,
            Arc::new(move || {
                if g.inside.fetch_add(1, Ordering::SeqCst) > 0 {
                    g.overlapped.fetch_add(1, Ordering::SeqCst);
                }
                g.calls.fetch_add(1, Ordering::SeqCst);
                let _ = g.entered.send(());
                let _ = g.go.recv_timeout(Duration::from_secs(10));
                g.inside.fetch_sub(1, Ordering::SeqCst);
                let d = g.next_duration.fetch_add(1, Ordering::SeqCst);
                Ok(result(4096 * u64::from(g.calls.load(Ordering::SeqCst)), d))
            }),
        );
        (worker, gate, go_tx, entered_rx)
    }

    const LONG: Duration = Duration::from_secs(10);

    #[test]
    fn trim_now_returns_the_record_it_wrote() {
        let (w, _gate, go, _entered) = gated(8);
        go.send(()).expect("go");
        let out = w.trim_now(TrimReason::Manual, LONG).expect("trim");
        let TrimOutcome::Done(rec) = out else { panic!("{out:?}") };
        assert_eq!(
            (rec.seq, rec.reason, rec.requests, rec.released),
            (1, TrimReason::Manual, 1, 4096)
        );
        assert!(rec.at_ms > 0);
        let s = w.stats();
        assert_eq!(s.count, 1);
        assert_eq!(s.history, vec![rec]);
        assert_eq!(s.by_reason, ReasonCounts { manual: 1, policy: 0, interval: 0 });
    }

    #[test]
    fn a_caller_that_times_out_gets_still_running_and_the_trim_is_recorded_anyway() {
        let (w, _gate, go, entered) = gated(8);
        let out = w.trim_now(TrimReason::Manual, Duration::from_millis(50)).expect("submit");
        assert!(
            matches!(out, TrimOutcome::StillRunning { waited_ms } if waited_ms >= 50),
            "{out:?}"
        );
        entered.recv_timeout(LONG).expect("the trim started");
        let running = w.stats().running.expect("running");
        assert_eq!(running.reason, TrimReason::Manual);
        go.send(()).expect("go");
        let deadline = Instant::now() + LONG;
        while w.stats().count == 0 {
            assert!(Instant::now() < deadline, "never recorded");
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = w.stats();
        assert_eq!((s.count, s.running), (1, None));
    }

    #[test]
    fn requests_during_a_trim_are_coalesced_into_one_more_and_never_overlap() {
        let (w, gate, go, entered) = gated(8);
        let first = w.submit(TrimReason::Policy).expect("submit");
        entered.recv_timeout(LONG).expect("first trim started");
        // While it runs: three more requests, one of them manual.
        let queued: Vec<TrimTicket> =
            [TrimReason::Interval, TrimReason::Manual, TrimReason::Policy]
                .into_iter()
                .map(|r| w.submit(r).expect("submit"))
                .collect();
        go.send(()).expect("go");
        go.send(()).expect("go");
        let a = first.wait(LONG).expect("first");
        let TrimOutcome::Done(a) = a else { panic!("{a:?}") };
        assert_eq!((a.seq, a.reason, a.requests), (1, TrimReason::Policy, 1));
        for t in &queued {
            let b = t.wait(LONG).expect("queued");
            let TrimOutcome::Done(b) = b else { panic!("{b:?}") };
            assert_eq!((b.seq, b.reason, b.requests), (2, TrimReason::Manual, 3));
        }
        assert_eq!(gate.calls.load(Ordering::SeqCst), 2);
        assert_eq!(gate.overlapped.load(Ordering::SeqCst), 0);
        assert_eq!(w.records_since(Some(1)).len(), 1);
        assert_eq!(w.records_since(None).len(), 2);
    }

    #[test]
    fn history_is_bounded_and_totals_count_everything() {
        let (w, _gate, go, _entered) = gated(4);
        for _ in 0..10 {
            go.send(()).expect("go");
            let out = w.trim_now(TrimReason::Interval, LONG).expect("trim");
            assert!(matches!(out, TrimOutcome::Done(_)));
        }
        let s = w.stats();
        assert_eq!(s.count, 10);
        assert_eq!(s.history_capacity, 4);
        assert_eq!(s.history.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        assert_eq!(s.released_bytes, 4096 * (1..=10).sum::<u64>());
        assert_eq!(s.total_duration_ns, (1..=10).sum::<u64>());
        // Percentiles over the four kept: durations 7, 8, 9, 10.
        assert_eq!(
            s.duration,
            Some(DurationPercentiles { p50_ns: 8, p90_ns: 10, p99_ns: 10, max_ns: 10 })
        );
        assert_eq!(s.by_reason.interval, 10);
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["duration"]["p90_ns"], 10);
        assert_eq!(json["history"][0]["reason"], "interval");
    }

    #[test]
    fn failures_and_panics_reach_the_caller_and_the_worker_survives() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = Arc::clone(&calls);
        let w = TrimWorker::new(
            8,
            Arc::new(move || match c.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::io("/proc/self/statm", std::io::Error::other("gone"))),
                1 => panic!("boom"),
                _ => Ok(result(1, 1)),
            }),
        );
        let e = w.trim_now(TrimReason::Manual, LONG).expect_err("io");
        assert!(matches!(&e, Error::Io { path, .. } if path.ends_with("statm")), "{e}");
        let e = w.trim_now(TrimReason::Manual, LONG).expect_err("panic");
        assert!(e.to_string().contains("boom"), "{e}");
        assert!(matches!(w.trim_now(TrimReason::Manual, LONG), Ok(TrimOutcome::Done(_))));
        let s = w.stats();
        assert_eq!((s.count, s.failures), (1, 2));
        assert!(s.last_error.is_some_and(|m| m.contains("boom")));
    }

    #[test]
    fn the_worker_thread_has_its_name() {
        let w = TrimWorker::new(
            1,
            Arc::new(|| {
                let name = std::thread::current().name().map(str::to_string);
                Err(Error::invalid(name.unwrap_or_default()))
            }),
        );
        let e = w.trim_now(TrimReason::Manual, LONG).expect_err("name");
        assert_eq!(e.to_string(), format!("invalid argument: {THREAD_NAME}"));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentiles(&[]), None);
        assert_eq!(
            percentiles(&[5]),
            Some(DurationPercentiles { p50_ns: 5, p90_ns: 5, p99_ns: 5, max_ns: 5 })
        );
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(
            percentiles(&v),
            Some(DurationPercentiles { p50_ns: 50, p90_ns: 90, p99_ns: 99, max_ns: 100 })
        );
    }

    #[test]
    fn outcomes_serialize_with_a_status() {
        let v = serde_json::to_value(TrimOutcome::StillRunning { waited_ms: 3 }).expect("json");
        assert_eq!(v, serde_json::json!({"status": "still_running", "waited_ms": 3}));
        let rec = TrimRecord::from_result(1, 2, TrimReason::Policy, 1, &result(8, 9));
        let v = serde_json::to_value(TrimOutcome::Done(rec)).expect("json");
        assert_eq!(v["status"], "done");
        assert_eq!(v["released"], 8);
    }
}
