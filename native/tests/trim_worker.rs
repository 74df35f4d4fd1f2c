//! The process-wide trim worker with glibc's real `malloc_trim`, driven by the trim policy as the
//! agent's scheduler will drive it. One test runs in this process (RSS is measured, so nothing
//! else may allocate meanwhile); the exit test runs in child processes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use offheap_doctor::allocator::{self, AllocatorKind};
use offheap_doctor::malloc_info::collect_malloc_info;
use offheap_doctor::timefmt::now_millis;
use offheap_doctor::trim::parse_statm_resident;
use offheap_doctor::trim_policy::{Decision, Observation, SkipReason, TrimPolicy, TrimReason};
use offheap_doctor::trim_worker::{self, TrimOutcome, THREAD_NAME};

const MIB: u64 = 1024 * 1024;
const THREADS: usize = 4;
const PER_THREAD: usize = 50 * 1024 * 1024;
const EXIT_CHILD_ENV: &str = "OFFHEAP_DOCTOR_EXIT_CHILD";

/// Fills ~50 MiB with 512..4096-byte blocks and frees 15 of every 16 (as `glibc_trim.rs`).
fn fragment() -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut used = 0;
    let mut i = 0usize;
    while used < PER_THREAD {
        let size = 512 + (i * 613) % 3584;
        blocks.push(vec![0x5au8; size]);
        used += size;
        i += 1;
    }
    blocks.into_iter().enumerate().filter(|(i, _)| i % 16 == 0).map(|(_, b)| b).collect()
}

fn fragment_on_threads() -> Vec<Vec<Vec<u8>>> {
    (0..THREADS)
        .map(|_| std::thread::spawn(fragment))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("fragmenting thread"))
        .collect()
}

fn observe() -> Observation {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    Observation {
        retained: collect_malloc_info().expect("malloc_info").totals.retained,
        // The fallback path: glibc's free bytes and RSS, no resident figures, no CPU.
        trimmable: None,
        cpu_ms: None,
        rss: parse_statm_resident(&statm, 4096).expect("resident"),
        allocator: allocator::current_kind(),
        jvm_trim_interval_ms: None,
    }
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("task dir")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect()
}

#[test]
fn policy_and_worker_trim_retained_memory_and_record_it() {
    assert_eq!(allocator::current_kind(), AllocatorKind::Glibc);
    let survivors = fragment_on_threads();
    let mut policy = TrimPolicy::parse("auto,minInterval=1s").expect("policy");

    let before = observe();
    let d = policy.decide(now_millis(), &before);
    let Decision::Trim { reason, estimate } = d else { panic!("expected a trim: {d:?}") };
    assert_eq!(reason, TrimReason::Policy);
    assert!(estimate >= 100 * MIB, "estimate {estimate}");

    let ticket = trim_worker::submit_trim(reason).expect("submit");
    let out = ticket.wait(Duration::from_secs(30)).expect("trim");
    let TrimOutcome::Done(rec) = out else { panic!("no answer in 30 s: {out:?}") };
    eprintln!(
        "policy trim: estimate {} MiB, rss {} -> {} MiB, released {} MiB in {} us",
        estimate / MIB,
        rec.rss_before / MIB,
        rec.rss_after / MIB,
        rec.released / MIB,
        rec.duration_ns / 1000
    );
    assert_eq!((rec.seq, rec.reason, rec.requests), (1, TrimReason::Policy, 1));
    assert!(rec.released >= 32 * MIB, "released {}", rec.released);
    assert!(thread_names().iter().any(|n| THREAD_NAME.starts_with(n.as_str()) && n.len() >= 14));

    for r in trim_worker::records_since(policy.last_seq()) {
        policy.record(&r);
    }
    assert_eq!(policy.last_seq(), Some(1));
    assert_eq!(policy.status().backoff, 1, "a trim that released its share keeps the base");

    // Retained stays high (the pages given back are still free chunks), RSS does not rise: the
    // policy sees nothing new to release.
    std::thread::sleep(Duration::from_millis(1100));
    let after = observe();
    assert!(after.retained >= 64 * MIB, "retained {}", after.retained);
    let d = policy.decide(now_millis(), &after);
    assert!(matches!(d, Decision::Skip { why: SkipReason::NotResidentAgain, .. }), "{d:?}");

    // A manual trim with no time to wait still runs, and is recorded.
    let out = trim_worker::trim_now(Duration::ZERO).expect("manual");
    eprintln!("manual trim, zero wait: {out:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while trim_worker::stats().count < 2 {
        assert!(Instant::now() < deadline, "the manual trim was never recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = trim_worker::stats();
    eprintln!("stats: {}", serde_json::to_string(&s).unwrap_or_default());
    assert_eq!((s.count, s.failures, s.by_reason.manual, s.by_reason.policy), (2, 0, 1, 1));
    assert_eq!(s.history.len(), 2);
    assert!(s.released_bytes >= rec.released);
    let p = s.duration.expect("percentiles");
    assert!(p.p50_ns > 0 && p.p50_ns <= p.p90_ns && p.p99_ns <= p.max_ns);
    assert_eq!(s.total_duration_ns, s.history.iter().map(|r| r.duration_ns).sum::<u64>());
    drop(survivors);
}

/// The exit test's child: submits a trim of a large fragmented heap and exits at once, while
/// the worker is (most likely) inside `malloc_trim`.
#[test]
#[ignore = "run by exit_while_trimming_is_clean in a child process"]
fn exit_child() {
    if std::env::var_os(EXIT_CHILD_ENV).is_none() {
        return;
    }
    let survivors = fragment_on_threads();
    let _ticket = trim_worker::submit_trim(TrimReason::Manual).expect("submit");
    std::thread::sleep(Duration::from_micros(200));
    std::mem::forget(survivors);
    std::process::exit(0);
}

#[test]
fn exit_while_trimming_is_clean() {
    let exe = std::env::current_exe().expect("test binary path");
    for _ in 0..5 {
        let started = Instant::now();
        let mut child = Command::new(&exe)
            .args(["--exact", "exit_child", "--ignored", "--test-threads=1"])
            .env(EXIT_CHILD_ENV, "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("the child hung at exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "child ended with {status}");
    }
}
