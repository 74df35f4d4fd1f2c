//! The native sampler against a real library: a C library built here leaks from a named
//! function; the sampler must name it, estimate what it holds within a quarter of what it
//! leaked, see it freed, and leave the library's GOT as it found it when stopped.

use std::ffi::{c_void, CString};
use std::path::PathBuf;
use std::process::Command;

const LEAKY_C: &str = r#"
#include <stdlib.h>
#include <string.h>
static void *kept[100000];
static int n_kept;
__attribute__((noinline)) void *leak_into_cache(size_t size) {
    void *p = malloc(size);
    if (p) memset(p, 1, size);
    return p;
}
long leak(int count, int size) {
    long total = 0;
    for (int i = 0; i < count && n_kept < 100000; i++) {
        void *p = leak_into_cache((size_t) size);
        if (p) { kept[n_kept++] = p; total += size; }
    }
    return total;
}
__attribute__((noinline)) void churn_buffers(int count, int size) {
    for (int i = 0; i < count; i++) { char *p = malloc((size_t) size); if (p) { p[0] = 1; free(p); } }
}
void release_all(void) { for (int i = 0; i < n_kept; i++) free(kept[i]); n_kept = 0; }
void *malloc_slot(void) { return (void *) &malloc; }
"#;

fn build_library() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("offheap-doctor-native-sites-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("leaky.c");
    std::fs::write(&src, LEAKY_C).expect("write source");
    let lib = dir.join("libleaky.so");
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-g", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("cc runs");
    assert!(ok.success(), "cc failed");
    lib
}

type Leak = unsafe extern "C" fn(i32, i32) -> i64;
type Churn = unsafe extern "C" fn(i32, i32);
type Release = unsafe extern "C" fn();
type Slot = unsafe extern "C" fn() -> *mut c_void;

fn sym<T: Copy>(handle: *mut c_void, name: &str) -> T {
    let n = CString::new(name).expect("name");
    // SAFETY: a symbol of the library this test built, of the type the caller names.
    unsafe {
        let p = libc::dlsym(handle, n.as_ptr());
        assert!(!p.is_null(), "{name} missing");
        std::mem::transmute_copy::<*mut c_void, T>(&p)
    }
}

fn site_with<'a>(snapshot: &'a serde_json::Value, symbol: &str) -> Option<&'a serde_json::Value> {
    snapshot["sites"].as_array()?.iter().find(|s| s["label"].as_str().is_some_and(|l| l.contains(symbol)))
}

#[test]
fn a_leak_is_named_estimated_and_forgotten_when_freed_and_stop_restores_the_got() {
    let lib = build_library();
    let path = CString::new(lib.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: dlopen of the library just built.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
    assert!(!handle.is_null());
    let leak: Leak = sym(handle, "leak");
    let churn: Churn = sym(handle, "churn_buffers");
    let release: Release = sym(handle, "release_all");
    let slot: Slot = sym(handle, "malloc_slot");
    // SAFETY: dlsym in the global scope.
    let real_malloc = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
    // SAFETY: the library's functions, called as declared.
    assert_eq!(unsafe { slot() }, real_malloc);

    offheap_doctor::native_sites::start(std::ptr::null_mut(), 64 * 1024).expect("start");
    // SAFETY: as above.
    assert_ne!(unsafe { slot() }, real_malloc, "the library's GOT still points at malloc");

    // 48 MiB kept in 12 KiB pieces, with 200 MiB of churn that is freed at once.
    // SAFETY: as above.
    let leaked = unsafe {
        let mut total = 0;
        for _ in 0..4 {
            total += leak(1024, 12 * 1024);
            churn(4096, 12 * 1024);
        }
        total
    };
    let snap = offheap_doctor::native_sites::snapshot(std::ptr::null_mut());
    assert_eq!(snap["status"], "on", "{snap}");
    let site = site_with(&snap, "leak_into_cache").unwrap_or_else(|| panic!("no leak_into_cache site: {snap:#}"));
    let live = site["live_bytes"].as_i64().expect("live_bytes");
    let err = (live as f64 - leaked as f64).abs() / leaked as f64;
    assert!(err < 0.25, "estimated {live} for {leaked} leaked: {site:#}");
    assert!(site["label"].as_str().expect("label").starts_with("libleaky.so leak_into_cache"), "{site:#}");
    let churned = site_with(&snap, "churn_buffers").map_or(0, |s| s["live_bytes"].as_i64().unwrap_or(0));
    assert!(churned < leaked / 10, "freed churn counted live: {churned}");

    // SAFETY: as above.
    unsafe { release() };
    let snap = offheap_doctor::native_sites::snapshot(std::ptr::null_mut());
    let after = site_with(&snap, "leak_into_cache").map_or(0, |s| s["live_bytes"].as_i64().unwrap_or(0));
    assert!(after < leaked / 20, "freed leak still live: {after}: {snap:#}");

    offheap_doctor::native_sites::stop().expect("stop");
    // SAFETY: as above.
    assert_eq!(unsafe { slot() }, real_malloc, "stop left the hook in the GOT");
    assert_eq!(offheap_doctor::native_sites::snapshot(std::ptr::null_mut())["status"], "off");
    // Started again, the library is patched again and the old figures are gone.
    offheap_doctor::native_sites::start(std::ptr::null_mut(), 64 * 1024).expect("restart");
    // SAFETY: as above.
    assert_ne!(unsafe { slot() }, real_malloc);
    let snap = offheap_doctor::native_sites::snapshot(std::ptr::null_mut());
    assert_eq!(snap["live_bytes"], 0, "{snap:#}");
    offheap_doctor::native_sites::stop().expect("stop");
    let _ = std::fs::remove_dir_all(lib.parent().expect("dir"));
}
