//! `mallopt` settings change the allocator of the whole process, so each case runs in a fresh
//! copy of this test binary (`tuning_child`), which applies the settings, makes threads and
//! allocations, and reports what glibc's `malloc_info` saw.
//!
//! The jemalloc case needs Debian's `libjemalloc2`: absent, it fails under `CI=true` and
//! elsewhere passes with a SKIPPED message.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use offheap_doctor::malloc_info::collect_malloc_info;
use offheap_doctor::tuning::apply_text;
use serde_json::Value;

const CHILD_ENV: &str = "OFFHEAP_DOCTOR_TUNING_CHILD";
const TUNE_ENV: &str = "OFFHEAP_DOCTOR_TUNE";
const BEFORE_ENV: &str = "OFFHEAP_DOCTOR_THREADS_BEFORE";
const MARK: &str = "TUNING-REPORT ";
const THREADS: usize = 8;
const BIG_BLOCK: usize = 100 * 1024;
const BIG_BLOCKS: usize = 10;

/// Starts `n` threads that each allocate and then stay alive (holding their arena) until
/// `release` is dropped; returns once all have allocated.
fn hold_threads(n: usize, release: &Receiver<()>) -> Vec<JoinHandle<()>> {
    let ready = Arc::new(Barrier::new(n + 1));
    let handles = (0..n)
        .map(|_| {
            let ready = Arc::clone(&ready);
            let release = release.clone();
            std::thread::spawn(move || {
                let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![7u8; 256 + i * 16]).collect();
                ready.wait();
                let _ = release.recv();
                drop(blocks);
            })
        })
        .collect();
    ready.wait();
    handles
}

fn arenas() -> Option<usize> {
    collect_malloc_info().ok().map(|mi| mi.arenas.len())
}

fn mmapped_chunks() -> Option<u64> {
    collect_malloc_info().ok().map(|mi| mi.totals.mmap.count)
}

/// The child's half. Ignored in a normal run; the parent runs it.
#[test]
#[ignore = "run by the tuning tests in a child process"]
fn tuning_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let (stop, release) = crossbeam_channel::bounded::<()>(0);
    let before: usize =
        std::env::var(BEFORE_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or_default();
    let mut threads = hold_threads(before, &release);

    let arenas_before = arenas();
    let tune = std::env::var(TUNE_ENV).unwrap_or_default();
    let outcomes = apply_text(&tune).expect("tunings parse");

    threads.extend(hold_threads(THREADS, &release));
    let arenas_after = arenas();

    let mmap_before = mmapped_chunks();
    let big: Vec<Vec<u8>> = (0..BIG_BLOCKS).map(|_| vec![1u8; BIG_BLOCK]).collect();
    let mmap_during = mmapped_chunks();
    drop(big);

    drop(stop);
    for t in threads {
        t.join().expect("holder thread");
    }
    let report = serde_json::json!({
        "outcomes": outcomes,
        "arenas_before": arenas_before,
        "arenas_after": arenas_after,
        "mmap_before": mmap_before,
        "mmap_during": mmap_during,
    });
    println!("{MARK}{report}");
}

/// Runs `tuning_child` with `tune` applied, `before` threads started before it, and `env`.
fn run_child(tune: &str, before: usize, env: &[(&str, &str)]) -> Value {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "tuning_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(TUNE_ENV, tune)
        .env(BEFORE_ENV, before.to_string())
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("MALLOC_MMAP_THRESHOLD_")
        .env_remove("MALLOC_TRIM_THRESHOLD_")
        .env_remove("MALLOC_TOP_PAD_")
        .env_remove("GLIBC_TUNABLES")
        .env_remove("LD_PRELOAD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the tuning child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find(MARK).map(|at| &l[at + MARK.len()..]))
        .unwrap_or_else(|| panic!("no report in child output: {stdout}"));
    let report: Value = serde_json::from_str(line).expect("report is JSON");
    eprintln!("tune {tune:?} env {env:?}: {report}");
    report
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_else(|| panic!("{key} missing: {report}"))
}

fn only_outcome(report: &Value) -> &Value {
    let outcomes = report["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 1, "{report}");
    &outcomes[0]
}

#[test]
fn without_a_cap_each_new_thread_gets_its_own_arena() {
    let r = run_child("", 0, &[]);
    let added = count(&r, "arenas_after") - count(&r, "arenas_before");
    assert!(added >= THREADS as u64 / 2, "{THREADS} threads added only {added} arenas: {r}");
}

#[test]
fn arena_cap_of_one_keeps_new_threads_off_new_arenas() {
    let r = run_child("arenaMax=1", 0, &[]);
    let o = only_outcome(&r);
    assert_eq!(o["status"], "applied", "{r}");
    assert_eq!(o["applied"], true);
    assert_eq!(o["setting"], "arenaMax");
    // The test harness may have given its own thread an arena before the cap; none after it.
    let (before, after) = (count(&r, "arenas_before"), count(&r, "arenas_after"));
    assert!(before <= 2, "{r}");
    assert_eq!(after, before, "{THREADS} threads after arenaMax=1: {r}");
}

#[test]
fn arena_cap_comes_too_late_once_glibc_fixed_its_limit() {
    // Twelve threads with arenas before the cap: glibc has fixed its limit (8 × cores), and
    // mallopt no longer changes it. The message says so.
    let r = run_child("arenaMax=1", 12, &[]);
    let o = only_outcome(&r);
    assert_eq!(o["status"], "applied", "{r}");
    let msg = o["message"].as_str().unwrap_or_default();
    assert!(msg.contains("MALLOC_ARENA_MAX"), "{msg}");
    let (before, after) = (count(&r, "arenas_before"), count(&r, "arenas_after"));
    let limit = 8 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u64;
    assert!(after > before || after >= limit, "the late cap held after all: {r}");
}

#[test]
fn environment_arena_max_wins_over_the_option() {
    let r = run_child("arenaMax=1", 0, &[("MALLOC_ARENA_MAX", "2")]);
    let o = only_outcome(&r);
    assert_eq!(o["status"], "skipped", "{r}");
    assert_eq!(o["applied"], false);
    assert_eq!(o["message"], "skipped: environment sets MALLOC_ARENA_MAX=2");
    // glibc followed the environment: two arenas, not one and not nine.
    assert_eq!(count(&r, "arenas_after"), 2, "{r}");
}

#[test]
fn environment_tunable_wins_over_the_option() {
    let r = run_child("arenaMax=1", 0, &[("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")]);
    let o = only_outcome(&r);
    assert_eq!(o["status"], "skipped", "{r}");
    assert_eq!(o["message"], "skipped: environment sets GLIBC_TUNABLES glibc.malloc.arena_max=3");
    assert_eq!(count(&r, "arenas_after"), 3, "{r}");
}

#[test]
fn mmap_threshold_sends_smaller_chunks_to_their_own_mappings() {
    // 100 KiB is below glibc's default threshold (128 KiB): served from the arena.
    let r = run_child("", 0, &[]);
    assert_eq!(count(&r, "mmap_during"), count(&r, "mmap_before"), "{r}");
    let r = run_child("mmapThreshold=64k", 0, &[]);
    assert_eq!(only_outcome(&r)["status"], "applied", "{r}");
    // glibc consults the threshold only when the arena's free space cannot serve a chunk, so
    // the first block or two may still come from the main arena's top.
    let added = count(&r, "mmap_during") - count(&r, "mmap_before");
    assert!(added >= BIG_BLOCKS as u64 - 2, "only {added} of {BIG_BLOCKS} mmapped: {r}");
}

#[test]
fn other_allocators_ignore_the_settings() {
    let lib = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    if !Path::new(lib).exists() {
        let install = "apt-get install -y libjemalloc2; scripts/install-deps.sh does";
        // Under CI a pass must prove the settings are left alone, so a missing jemalloc fails.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{lib} is absent and CI=true makes that an error ({install})"
        );
        eprintln!("SKIPPED: {lib} is absent ({install})");
        return;
    }
    let r = run_child("arenaMax=1,topPad=1m", 0, &[("LD_PRELOAD", lib)]);
    for o in r["outcomes"].as_array().expect("outcomes") {
        assert_eq!(o["status"], "ignored", "{r}");
        assert!(o["message"].as_str().unwrap_or_default().contains("MALLOC_CONF"), "{r}");
    }
    assert_eq!(r["arenas_after"], Value::Null, "no glibc numbers under jemalloc: {r}");
}
