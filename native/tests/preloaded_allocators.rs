//! Under `LD_PRELOAD` of jemalloc or tcmalloc, glibc is still loaded but idle: detection must
//! name the preloaded allocator, and no glibc number or trim may be reported. The test binary
//! runs itself again with the library preloaded (`probe_child`), so no other binary is needed.
//!
//! Needs Debian's `libjemalloc2` and `libtcmalloc-minimal4`; when their files are absent the tests
//! fail under `CI=true` and elsewhere pass with a SKIPPED message.

use std::path::Path;
use std::process::Command;

use offheap_doctor::allocator::{self, AllocatorKind};
use offheap_doctor::error::Error;
use offheap_doctor::malloc_info::{collect_mallinfo, collect_malloc_info};
use offheap_doctor::trim::trim;
use serde_json::Value;

const CHILD_ENV: &str = "OFFHEAP_DOCTOR_PROBE_CHILD";
const MARK: &str = "PROBE-REPORT ";
const JEMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
const TCMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

fn unsupported<T>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Unsupported(_)))
}

/// The child's half: reports what it sees. Ignored in a normal run; the parent runs it.
#[test]
#[ignore = "run by the preload tests in a child process"]
fn probe_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // Allocate a little so the preloaded allocator is really in use.
    let blocks: Vec<Vec<u8>> = (0..1000).map(|i| vec![1u8; 64 + i]).collect();
    let report = serde_json::json!({
        "allocator": allocator::detect(),
        "malloc_info_unsupported": unsupported(collect_malloc_info()),
        "mallinfo_unsupported": unsupported(collect_mallinfo()),
        "trim_unsupported": unsupported(trim(0)),
    });
    drop(blocks);
    println!("{MARK}{report}");
}

/// Runs `probe_child` in a fresh copy of this binary with `lib` preloaded; `None` when the
/// library is not installed.
fn probe_with(lib: &str) -> Option<Value> {
    if !Path::new(lib).exists() {
        let install = "apt-get install -y libjemalloc2 libtcmalloc-minimal4; scripts/install-deps.sh does";
        // Under CI a pass must prove the detection, so a missing allocator fails the test.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{lib} is absent and CI=true makes that an error ({install})"
        );
        eprintln!("SKIPPED: {lib} is absent ({install})");
        return None;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args(["--exact", "probe_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("LD_PRELOAD", lib)
        .output()
        .expect("run the probe child");
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
    eprintln!("{lib}: {report}");
    Some(report)
}

fn assert_no_glibc_numbers(report: &Value) {
    assert_eq!(report["malloc_info_unsupported"], true, "{report}");
    assert_eq!(report["mallinfo_unsupported"], true, "{report}");
    assert_eq!(report["trim_unsupported"], true, "{report}");
    // glibc is still there, which is why the check must not stop at gnu_get_libc_version.
    assert!(report["allocator"]["glibc_version"].is_string(), "{report}");
    assert!(report["allocator"]["settings"]["ld_preload"].is_string(), "{report}");
}

#[test]
fn jemalloc_preloaded_is_detected_and_glibc_calls_refused() {
    let Some(report) = probe_with(JEMALLOC) else { return };
    let a = &report["allocator"];
    assert_eq!(a["kind"], "jemalloc", "{report}");
    assert_eq!(a["malloc_library"], JEMALLOC);
    assert_eq!(a["symbols"]["mallctl"], JEMALLOC);
    assert!(
        a["version"].as_str().is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())),
        "{a}"
    );
    assert_no_glibc_numbers(&report);
}

#[test]
fn tcmalloc_preloaded_is_detected_and_glibc_calls_refused() {
    let Some(report) = probe_with(TCMALLOC) else { return };
    let a = &report["allocator"];
    assert_eq!(a["kind"], "tcmalloc", "{report}");
    assert_eq!(a["malloc_library"], TCMALLOC);
    assert!(a["version"].as_str().is_some_and(|v| v.contains("gperftools")), "{a}");
    assert_no_glibc_numbers(&report);
}

#[test]
fn without_preload_this_process_is_glibc() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    assert_eq!(allocator::current_kind(), AllocatorKind::Glibc);
}
