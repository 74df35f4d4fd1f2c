//! Native call sites: which native code holds the malloc'd memory that nothing else accounts for.
//!
//! When RSS grows outside the heap and NMT explains little of it, the memory belongs to native
//! code the JVM does not track: the JDK's own libraries (zlib behind `Inflater`, NIO) and the
//! application's JNI libraries. The sampler interposes `malloc`, `calloc`, `realloc`, `free`,
//! `posix_memalign`, `aligned_alloc` and `memalign` in those libraries' GOT slots (see [`got`]),
//! samples allocations by bytes, and keeps the sampled live set: a sampled block stays until its
//! address is freed. Each sample stands for its size over its chance to be sampled, so a site's
//! live bytes are an unbiased estimate, as tcmalloc's and jemalloc's heap profilers compute it.
//!
//! What is interposed, and why:
//! - Every loaded library except the JVM itself (`libjvm.so`: NMT counts its allocations, and
//!   its own calls are the hottest), the libraries that define `malloc` (the C library, jemalloc,
//!   tcmalloc), the dynamic loader, the unwinder (`libgcc_s`, which the sampler calls) and this
//!   library. Libraries loaded later are patched at the next sample ([`rescan`]).
//! - Unsampled calls cost a thread-local countdown (allocation) or one probe of the live table
//!   (free), and take no lock. A sampled call walks the native stack (glibc `backtrace`, which
//!   stops at the first Java frame), asks [`java`] for the Java frames, and records under a lock.
//! - The hooks are re-entrant: a thread already inside the sampler passes straight through, so
//!   what the sampler allocates is never sampled.
//! - [`stop`] puts every slot back; the tables stay allocated (a thread may still be inside a
//!   hook) and are cleared by the next [`start`].
//!
//! Blocks allocated through an interposed library but freed by one that is not (or the other
//! way round) are the limit of GOT interposition: the first stay in the live set until the
//! sampler restarts, the second are never seen. Memory the C library allocates for itself
//! (`strdup`, `fopen`) is not seen either.

pub mod got;
pub mod java;
pub mod symbols;

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use jni::sys::JNIEnv;
use serde_json::{json, Value};

use self::java::{JavaFrame, MAX_JAVA_FRAMES};

/// Mean bytes allocated between two samples when the option does not say.
pub const DEFAULT_SAMPLE_BYTES: u64 = 512 * 1024;
/// Sites shown in a report; the rest are summed as "other".
pub const TOP_SITES: usize = 10;
/// Native frames kept per sample.
const MAX_NATIVE_FRAMES: usize = 24;
/// Distinct sites kept; later ones count as "other" (site 0).
const MAX_SITES: usize = 4096;
/// Slots of the stack-hash index (a power of two, twice [`MAX_SITES`]).
const KEY_SLOTS: usize = 2 * MAX_SITES;
/// Slots of the live set (a power of two): sampled blocks alive at once.
const LIVE_SLOTS: usize = 1 << 16;
/// Slots probed before an insert gives up (the sample is dropped) or a lookup stops.
const MAX_PROBE: usize = 32;

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;

// ---------------------------------------------------------------------------------------------
// The tables the hooks write. Allocated once, zeroed, never freed.

struct LiveSlot {
    addr: AtomicUsize,
    /// `site << 48 | weight` (weight in bytes, at most 2^48 - 1).
    data: AtomicU64,
}

#[derive(Default)]
struct Counters {
    live: AtomicI64,
    live_samples: AtomicI64,
    allocated: AtomicU64,
    samples: AtomicU64,
}

struct Tables {
    keys: [AtomicU64; KEY_SLOTS],
    ids: [AtomicU32; KEY_SLOTS],
    counters: [Counters; MAX_SITES],
    live: [LiveSlot; LIVE_SLOTS],
}

fn tables() -> &'static Tables {
    static T: OnceLock<&'static Tables> = OnceLock::new();
    T.get_or_init(|| {
        let layout = std::alloc::Layout::new::<Tables>();
        // SAFETY: a non-zero-sized layout; every field of `Tables` is an atomic integer, for
        // which all-zero bytes are a valid value. Leaked on purpose: hooks may read it forever.
        unsafe {
            let p = std::alloc::alloc_zeroed(layout) as *mut Tables;
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            &*p
        }
    })
}

/// What a site is: its frames and the thread that first met it.
#[derive(Clone)]
struct SiteInfo {
    native: Vec<usize>,
    java: Vec<JavaFrame>,
    thread: String,
}

static INFOS: Mutex<Vec<SiteInfo>> = Mutex::new(Vec::new());

// ---------------------------------------------------------------------------------------------
// State.

static ACTIVE: AtomicBool = AtomicBool::new(false);
static SAMPLE_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_SAMPLE_BYTES);
static LIVE_ENTRIES: AtomicI64 = AtomicI64::new(0);
static SAMPLED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
/// This library's code range: frames inside it are the sampler's own.
static SELF_LO: AtomicUsize = AtomicUsize::new(0);
static SELF_HI: AtomicUsize = AtomicUsize::new(0);

struct Control {
    patches: got::Patches,
    targets: Vec<got::Target>,
    since_ms: u64,
    baseline: Option<HashMap<u32, i64>>,
    baseline_total: Option<i64>,
    java_problem: Option<String>,
    problem: Option<String>,
    /// Sites already named: their frames and label.
    resolved: HashMap<u32, (Vec<symbols::Frame>, Vec<String>, String)>,
}

static CONTROL: Mutex<Option<Control>> = Mutex::new(None);

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> c_int;
type AlignedFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;

static REAL_MALLOC: AtomicUsize = AtomicUsize::new(0);
static REAL_CALLOC: AtomicUsize = AtomicUsize::new(0);
static REAL_REALLOC: AtomicUsize = AtomicUsize::new(0);
static REAL_FREE: AtomicUsize = AtomicUsize::new(0);
static REAL_POSIX_MEMALIGN: AtomicUsize = AtomicUsize::new(0);
static REAL_ALIGNED_ALLOC: AtomicUsize = AtomicUsize::new(0);
static REAL_MEMALIGN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes this thread may still allocate before its next sample; `i64::MIN` before its first.
    static UNTIL: Cell<i64> = const { Cell::new(i64::MIN) };
    /// Inside the sampler: calls pass straight through.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    static RNG: Cell<u64> = const { Cell::new(0) };
}

// ---------------------------------------------------------------------------------------------
// The hooks. They never panic (no indexing without a check, no unwrap), so no unwind leaves
// them; the sampled path runs under `catch_unwind` all the same.

/// The real function behind a hook. Used inside the hook's `unsafe` block, whose safety rests
/// on this: the address was set by `start` from dlsym before any slot pointed at a hook, is
/// never cleared, and is the C function of this signature.
macro_rules! real {
    ($slot:expr, $t:ty) => {
        std::mem::transmute::<usize, $t>($slot.load(Ordering::Relaxed))
    };
}

#[inline]
fn after_alloc(p: *mut c_void, size: usize) {
    if p.is_null() {
        return;
    }
    let due = UNTIL
        .try_with(|u| {
            let left = u.get();
            if left != i64::MIN {
                let left = left.wrapping_sub(size as i64);
                if left > 0 {
                    u.set(left);
                    return false;
                }
            }
            true
        })
        .unwrap_or(false);
    if due {
        sampled_path(p, size);
    }
}

#[inline]
fn before_free(p: *mut c_void) {
    if !p.is_null() && LIVE_ENTRIES.load(Ordering::Relaxed) != 0 {
        forget(p as usize);
    }
}

unsafe extern "C" fn hook_malloc(size: usize) -> *mut c_void {
    // SAFETY: the caller's arguments go to the real function unchanged.
    let p = unsafe { real!(REAL_MALLOC, MallocFn)(size) };
    after_alloc(p, size);
    p
}

unsafe extern "C" fn hook_calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { real!(REAL_CALLOC, CallocFn)(n, size) };
    after_alloc(p, n.saturating_mul(size));
    p
}

unsafe extern "C" fn hook_realloc(old: *mut c_void, size: usize) -> *mut c_void {
    let was = if !old.is_null() && LIVE_ENTRIES.load(Ordering::Relaxed) != 0 { take(old as usize) } else { None };
    // SAFETY: as above.
    let p = unsafe { real!(REAL_REALLOC, ReallocFn)(old, size) };
    if p.is_null() && size != 0 {
        // The old block is still there: so is its sample.
        if let Some((site, weight)) = was {
            put(old as usize, site, weight);
        }
        return p;
    }
    if let Some((site, weight)) = was {
        credit(site, -(weight as i64), -1);
    }
    after_alloc(p, size);
    p
}

unsafe extern "C" fn hook_free(p: *mut c_void) {
    before_free(p);
    // SAFETY: as above.
    unsafe { real!(REAL_FREE, FreeFn)(p) }
}

unsafe extern "C" fn hook_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: as above.
    let rc = unsafe { real!(REAL_POSIX_MEMALIGN, PosixMemalignFn)(out, align, size) };
    if rc == 0 && !out.is_null() {
        // SAFETY: on success the real function wrote the block's address into `out`.
        after_alloc(unsafe { *out }, size);
    }
    rc
}

unsafe extern "C" fn hook_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { real!(REAL_ALIGNED_ALLOC, AlignedFn)(align, size) };
    after_alloc(p, size);
    p
}

unsafe extern "C" fn hook_memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: as above.
    let p = unsafe { real!(REAL_MEMALIGN, AlignedFn)(align, size) };
    after_alloc(p, size);
    p
}

// ---------------------------------------------------------------------------------------------
// Sampling.

fn next_random() -> u64 {
    RNG.try_with(|r| {
        let mut x = r.get();
        if x == 0 {
            x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
    .unwrap_or(0x9E37_79B9_7F4A_7C15)
}

/// An exponentially distributed gap (a Poisson process over bytes) with the configured mean.
fn next_gap() -> i64 {
    let u = ((next_random() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let mean = SAMPLE_BYTES.load(Ordering::Relaxed) as f64;
    ((-(u.ln()) * mean) as i64).max(1)
}

/// The bytes a sampled block of `size` stands for: its size over its chance to be sampled.
pub fn weight_of(size: u64, mean: u64) -> u64 {
    let s = size.max(1) as f64;
    let p = 1.0 - (-s / mean.max(1) as f64).exp();
    if p <= 0.0 {
        return size;
    }
    (s / p).round().min((1u64 << 48) as f64 - 1.0) as u64
}

#[cold]
#[inline(never)]
fn sampled_path(p: *mut c_void, size: usize) {
    let entered = BUSY
        .try_with(|b| {
            if b.get() {
                false
            } else {
                b.set(true);
                true
            }
        })
        .unwrap_or(false);
    if !entered {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // A first call draws the thread's first gap: its countdown starts here.
        let first = UNTIL.try_with(|u| u.get() == i64::MIN).unwrap_or(false);
        let gap = next_gap();
        if first {
            let left = gap.wrapping_sub(size as i64);
            if left > 0 {
                let _ = UNTIL.try_with(|u| u.set(left));
                return;
            }
        }
        let _ = UNTIL.try_with(|u| u.set(gap));
        if !ACTIVE.load(Ordering::Acquire) {
            return;
        }
        record(p as usize, size as u64);
    });
    let _ = BUSY.try_with(|b| b.set(false));
}

fn record(addr: usize, size: u64) {
    let weight = weight_of(size, SAMPLE_BYTES.load(Ordering::Relaxed));
    let mut native = [0usize; MAX_NATIVE_FRAMES + 8];
    // SAFETY: backtrace writes at most `len` return addresses into the buffer.
    let n = unsafe { libc::backtrace(native.as_mut_ptr().cast(), native.len() as c_int) };
    let n = usize::try_from(n).unwrap_or(0).min(native.len());
    let (lo, hi) = (SELF_LO.load(Ordering::Relaxed), SELF_HI.load(Ordering::Relaxed));
    let first = native[..n].iter().position(|pc| *pc < lo || *pc >= hi).unwrap_or(n);
    let frames = &native[first..n];
    let frames = &frames[..frames.len().min(MAX_NATIVE_FRAMES)];
    let mut jf = [JavaFrame::default(); MAX_JAVA_FRAMES];
    let jn = java::capture(&mut jf).min(MAX_JAVA_FRAMES);
    let key = hash_stack(frames, &jf[..jn]);
    let site = site_of(key, frames, &jf[..jn]);
    SAMPLED.fetch_add(1, Ordering::Relaxed);
    if put(addr, site, weight) {
        let c = &tables().counters[site as usize % MAX_SITES];
        c.allocated.fetch_add(weight, Ordering::Relaxed);
        c.samples.fetch_add(1, Ordering::Relaxed);
    } else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

fn hash_stack(native: &[usize], java: &[JavaFrame]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
    };
    for pc in native {
        mix(*pc as u64);
    }
    for f in java {
        mix(f.method as u64);
        mix(f.bci as u64);
    }
    // 0 marks an empty index slot.
    h.max(1)
}

/// The site of a stack: looked up without a lock, added under one.
fn site_of(key: u64, native: &[usize], java: &[JavaFrame]) -> u32 {
    let t = tables();
    let mask = KEY_SLOTS - 1;
    let mut i = key as usize & mask;
    for _ in 0..KEY_SLOTS {
        match t.keys[i].load(Ordering::Acquire) {
            0 => break,
            k if k == key => return t.ids[i].load(Ordering::Relaxed),
            _ => i = (i + 1) & mask,
        }
    }
    let mut infos = INFOS.lock().unwrap_or_else(|p| p.into_inner());
    let mut i = key as usize & mask;
    for _ in 0..KEY_SLOTS {
        let k = t.keys[i].load(Ordering::Acquire);
        if k == key {
            return t.ids[i].load(Ordering::Relaxed);
        }
        if k == 0 {
            if infos.len() >= MAX_SITES {
                return 0;
            }
            let id = infos.len() as u32;
            infos.push(SiteInfo { native: native.to_vec(), java: java.to_vec(), thread: thread_name() });
            t.ids[i].store(id, Ordering::Relaxed);
            t.keys[i].store(key, Ordering::Release);
            return id;
        }
        i = (i + 1) & mask;
    }
    0
}

fn thread_name() -> String {
    let mut buf = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `buf`.
    if unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr() as libc::c_ulong, 0, 0, 0) } != 0 {
        return String::new();
    }
    CStr::from_bytes_until_nul(&buf).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn slot_hash(addr: usize) -> usize {
    // Blocks are 16-byte aligned: mix the high bits down before masking.
    let x = (addr as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 40) as usize & (LIVE_SLOTS - 1)
}

fn credit(site: u32, bytes: i64, samples: i64) {
    let c = &tables().counters[site as usize % MAX_SITES];
    c.live.fetch_add(bytes, Ordering::Relaxed);
    c.live_samples.fetch_add(samples, Ordering::Relaxed);
}

/// Adds a sampled block to the live set; false when its neighbourhood is full.
fn put(addr: usize, site: u32, weight: u64) -> bool {
    let t = tables();
    let mut i = slot_hash(addr);
    for _ in 0..MAX_PROBE {
        let s = &t.live[i];
        let cur = s.addr.load(Ordering::Relaxed);
        if (cur == EMPTY || cur == TOMBSTONE)
            && s.addr.compare_exchange(cur, addr, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            s.data.store((u64::from(site) << 48) | weight.min((1 << 48) - 1), Ordering::Release);
            LIVE_ENTRIES.fetch_add(1, Ordering::Relaxed);
            credit(site, weight as i64, 1);
            return true;
        }
        i = (i + 1) & (LIVE_SLOTS - 1);
    }
    false
}

/// Removes a block from the live set: its site and weight when it was sampled.
fn take(addr: usize) -> Option<(u32, u64)> {
    let t = tables();
    let mut i = slot_hash(addr);
    for _ in 0..MAX_PROBE {
        let s = &t.live[i];
        let cur = s.addr.load(Ordering::Acquire);
        if cur == EMPTY {
            return None;
        }
        if cur == addr {
            let data = s.data.load(Ordering::Acquire);
            if s.addr.compare_exchange(addr, TOMBSTONE, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                LIVE_ENTRIES.fetch_sub(1, Ordering::Relaxed);
                return Some(((data >> 48) as u32, data & ((1 << 48) - 1)));
            }
            return None;
        }
        i = (i + 1) & (LIVE_SLOTS - 1);
    }
    None
}

fn forget(addr: usize) {
    if let Some((site, weight)) = take(addr) {
        credit(site, -(weight as i64), -1);
    }
}

/// Turns tombstones that end a probe run back into empty slots, so that frees of unsampled
/// blocks keep stopping at the first slot. A tombstone followed by an empty slot ends every
/// run through it; going downwards lets whole tails empty in one pass.
fn sweep() {
    let t = tables();
    for i in (0..LIVE_SLOTS).rev() {
        let next = &t.live[(i + 1) & (LIVE_SLOTS - 1)];
        if t.live[i].addr.load(Ordering::Relaxed) == TOMBSTONE && next.addr.load(Ordering::Acquire) == EMPTY {
            let _ = t.live[i].addr.compare_exchange(TOMBSTONE, EMPTY, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

fn clear_tables() {
    let t = tables();
    for k in &t.keys {
        k.store(0, Ordering::Relaxed);
    }
    for c in &t.counters {
        c.live.store(0, Ordering::Relaxed);
        c.live_samples.store(0, Ordering::Relaxed);
        c.allocated.store(0, Ordering::Relaxed);
        c.samples.store(0, Ordering::Relaxed);
    }
    for s in &t.live {
        s.addr.store(EMPTY, Ordering::Relaxed);
    }
    LIVE_ENTRIES.store(0, Ordering::Relaxed);
    SAMPLED.store(0, Ordering::Relaxed);
    DROPPED.store(0, Ordering::Relaxed);
    let mut infos = INFOS.lock().unwrap_or_else(|p| p.into_inner());
    infos.clear();
    infos.reserve(MAX_SITES);
    // Site 0 is "other": the sites beyond the bound.
    infos.push(SiteInfo { native: Vec::new(), java: Vec::new(), thread: String::new() });
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping.

fn dlsym(name: &CStr) -> usize {
    // SAFETY: a NUL-terminated symbol name looked up in the global scope.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

fn targets() -> Vec<got::Target> {
    let list: [(&'static CStr, usize, &AtomicUsize); 7] = [
        (c"malloc", hook_malloc as *const () as usize, &REAL_MALLOC),
        (c"calloc", hook_calloc as *const () as usize, &REAL_CALLOC),
        (c"realloc", hook_realloc as *const () as usize, &REAL_REALLOC),
        (c"free", hook_free as *const () as usize, &REAL_FREE),
        (c"posix_memalign", hook_posix_memalign as *const () as usize, &REAL_POSIX_MEMALIGN),
        (c"aligned_alloc", hook_aligned_alloc as *const () as usize, &REAL_ALIGNED_ALLOC),
        (c"memalign", hook_memalign as *const () as usize, &REAL_MEMALIGN),
    ];
    let mut out = Vec::new();
    for (name, hook, real) in list {
        let r = dlsym(name);
        if r != 0 {
            real.store(r, Ordering::Relaxed);
            out.push(got::Target { name, hook, real: r });
        }
    }
    out
}

/// Objects never patched: the JVM (NMT's), allocators and the C library (they define malloc,
/// checked in [`got`]), the loader, the unwinder the sampler calls, and this library.
fn skipped(name: &str, bias: usize) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    let own = bias == own_base();
    own || file == "libjvm.so"
        || file.starts_with("ld-linux")
        || file.starts_with("ld64.so")
        || file.starts_with("linux-vdso")
        || file.starts_with("linux-gate")
        || file.starts_with("libgcc_s")
        || file.starts_with("libc.so")
        || file.starts_with("libjemalloc")
        || file.starts_with("libtcmalloc")
}

fn own_base() -> usize {
    static BASE: OnceLock<usize> = OnceLock::new();
    *BASE.get_or_init(|| {
        let mut info = libc::Dl_info {
            dli_fname: std::ptr::null(),
            dli_fbase: std::ptr::null_mut(),
            dli_sname: std::ptr::null(),
            dli_saddr: std::ptr::null_mut(),
        };
        // SAFETY: dladdr fills `info` for an address of this library's code.
        if unsafe { libc::dladdr(own_base as *const () as *const c_void, &mut info) } == 0 {
            return 0;
        }
        info.dli_fbase as usize
    })
}

/// This library's mapped range, for telling the sampler's own frames apart.
fn own_range() -> (usize, usize) {
    let base = own_base();
    let mut hi = base;
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        let mut path = None;
        for line in maps.lines() {
            let mut parts = line.split_whitespace();
            let (Some(range), Some(_), Some(offset)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let Some((lo, h)) = range.split_once('-') else { continue };
            let (Ok(lo), Ok(h)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(h, 16)) else { continue };
            let file = parts.nth(2).map(str::to_string);
            if lo == base && offset.trim_start_matches('0').is_empty() {
                path = file.clone();
            }
            if path.is_some() && file == path {
                hi = hi.max(h);
            }
        }
    }
    (base, hi)
}

/// Starts sampling: one sample per `sample_bytes` allocated on average. From a Java thread.
pub fn start(env: *mut JNIEnv, sample_bytes: u64) -> Result<(), String> {
    let mut control = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    if ACTIVE.load(Ordering::Acquire) {
        return Err("native call sites are already on".into());
    }
    if !(4096..=1 << 30).contains(&sample_bytes) {
        return Err(format!("a sample every {sample_bytes} bytes is outside 4k..1g"));
    }
    let targets = targets();
    if !targets.iter().any(|t| t.name == c"malloc") || !targets.iter().any(|t| t.name == c"free") {
        return Err("malloc or free cannot be found in this process".into());
    }
    let (lo, hi) = own_range();
    SELF_LO.store(lo, Ordering::Relaxed);
    SELF_HI.store(hi, Ordering::Relaxed);
    // The first backtrace loads the unwinder: here, not inside a hook.
    let mut warm = [std::ptr::null_mut::<c_void>(); 4];
    // SAFETY: at most 4 addresses into a 4-entry buffer.
    unsafe { libc::backtrace(warm.as_mut_ptr(), 4) };
    let java_problem = if env.is_null() { Some("no JVM".to_string()) } else { java::enable(env).err() };
    SAMPLE_BYTES.store(sample_bytes, Ordering::Relaxed);
    // Each run draws its own gaps: repeated runs of one workload are independent estimates.
    SEED.store((crate::timefmt::now_millis() << 20) ^ u64::from(std::process::id()) | 1, Ordering::Relaxed);
    clear_tables();
    ACTIVE.store(true, Ordering::Release);
    let mut patches = got::Patches::default();
    got::patch_new(&mut patches, &targets, &skipped);
    *control = Some(Control {
        patches,
        targets,
        since_ms: crate::timefmt::now_millis(),
        baseline: None,
        baseline_total: None,
        java_problem,
        problem: None,
        resolved: HashMap::new(),
    });
    Ok(())
}

/// Puts every slot back and ends the report of sites until the next start.
pub fn stop() -> Result<(), String> {
    let mut control = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    if !ACTIVE.load(Ordering::Acquire) {
        return Err("native call sites are not on".into());
    }
    if let Some(c) = control.as_mut() {
        got::restore(&mut c.patches);
    }
    java::disable();
    ACTIVE.store(false, Ordering::Release);
    *control = None;
    Ok(())
}

/// Whether the sampler is on.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

/// Patches the libraries loaded since the last pass.
pub fn rescan() {
    if !active() {
        return;
    }
    let mut control = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = control.as_mut() {
        let targets = c.targets.clone();
        got::patch_new(&mut c.patches, &targets, &skipped);
    }
}

/// Records why the sampler is off although asked for (shown in the report).
pub fn failed(why: &str) {
    let mut control = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    if control.is_none() {
        *FAILED.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
    } else if let Some(c) = control.as_mut() {
        c.problem = Some(why.to_string());
    }
}

static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// The next snapshot becomes the baseline of the growth figures.
pub fn reset_baseline() {
    if let Some(c) = CONTROL.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        c.baseline = None;
        c.baseline_total = None;
    }
}

// ---------------------------------------------------------------------------------------------
// Reading back.

/// Allocation wrappers: a site's label names the function that called them instead.
const WRAPPERS: [&str; 8] = [
    "zcalloc",
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "g_malloc",
];

fn is_jdk_class(frame: &str) -> bool {
    ["java.", "javax.", "jdk.", "sun.", "com.sun."].iter().any(|p| frame.starts_with(p))
}

/// `libleak.so leak_into_cache <- LeakyCache.put`.
fn label(native: &[symbols::Frame], java: &[String]) -> String {
    let named = native
        .iter()
        .find(|f| f.symbol.as_deref().is_some_and(|s| !WRAPPERS.contains(&s)))
        .or_else(|| native.iter().find(|f| f.symbol.is_some()))
        .or_else(|| native.first());
    let mut out = match named {
        Some(f) => match &f.symbol {
            Some(s) => format!("{} {}", f.library, s),
            None => format!("{}+{:#x}", f.library, f.offset),
        },
        None => "?".to_string(),
    };
    // The application's Java method that called into native code: past the JNI method itself.
    let app = java
        .iter()
        .find(|f| !is_jdk_class(f) && !f.ends_with("(Native Method)"))
        .or_else(|| java.iter().find(|f| !is_jdk_class(f)))
        .or_else(|| java.first());
    if let Some(j) = app {
        let method = j.split('(').next().unwrap_or(j);
        out.push_str(" <- ");
        out.push_str(method);
    }
    out
}

/// The stacks of one label, summed.
#[derive(Default)]
struct Group {
    id: u32,
    label: String,
    native: Vec<symbols::Frame>,
    java: Vec<String>,
    thread: String,
    top_live: i64,
    live: i64,
    base: i64,
    samples: i64,
    allocated: u64,
    stacks: usize,
}

impl Group {
    fn add(&mut self, id: u32, live: i64, samples: i64, allocated: u64, base: i64) {
        if self.stacks == 0 || id < self.id {
            self.id = id;
        }
        self.live += live;
        self.base += base;
        self.samples += samples;
        self.allocated += allocated;
        self.stacks += 1;
    }
}

fn frame_json(f: &symbols::Frame) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("library".into(), json!(f.library));
    if let Some(s) = &f.symbol {
        m.insert("symbol".into(), json!(s));
    }
    m.insert("offset".into(), json!(f.offset));
    Value::Object(m)
}

/// The `native_sites` part of a sample (see docs/native-sites.md).
pub fn snapshot(env: *mut JNIEnv) -> Value {
    let mut control = CONTROL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(c) = control.as_mut().filter(|_| active()) else {
        return match FAILED.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(why) => json!({"status": "unavailable", "problem": why}),
            None => json!({"status": "off"}),
        };
    };
    sweep();
    let infos = INFOS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let t = tables();
    let rows: Vec<(u32, i64, i64, u64)> = (0..infos.len())
        .map(|id| {
            let k = &t.counters[id];
            (
                id as u32,
                k.live.load(Ordering::Relaxed).max(0),
                k.live_samples.load(Ordering::Relaxed).max(0),
                k.allocated.load(Ordering::Relaxed),
            )
        })
        .collect();
    let total: i64 = rows.iter().map(|r| r.1).sum();
    let first = c.baseline.is_none();
    let baseline = c.baseline.get_or_insert_with(HashMap::new);
    if first {
        for r in &rows {
            baseline.insert(r.0, r.1);
        }
    }
    let base_total = *c.baseline_total.get_or_insert(total);
    // Sites are stacks; a report groups the stacks of one label (the same allocating function
    // reached along different paths), shows the stack that holds the most, and keeps the
    // group's smallest id, which stays the same while the sampler runs.
    let mut groups: Vec<Group> = Vec::new();
    let mut by_label: HashMap<String, usize> = HashMap::new();
    let mut other = Group::default();
    for (id, live, samples, allocated) in rows {
        let base = baseline.get(&id).copied().unwrap_or(0);
        let Some(info) = infos.get(id as usize).filter(|_| id != 0) else {
            other.add(id, live, samples, allocated, base);
            continue;
        };
        if live <= 0 && base <= 0 {
            continue;
        }
        let (native, java, l) = c
            .resolved
            .entry(id)
            .or_insert_with(|| {
                // Return addresses: the call is the byte before.
                let pcs: Vec<usize> = info.native.iter().map(|pc| pc.saturating_sub(1)).collect();
                let native = symbols::frames(&pcs);
                let java = java::resolve(env, &info.java);
                let l = label(&native, &java);
                (native, java, l)
            })
            .clone();
        let g = *by_label.entry(l.clone()).or_insert_with(|| {
            groups.push(Group { label: l, ..Group::default() });
            groups.len() - 1
        });
        let g = &mut groups[g];
        if live > g.top_live || g.native.is_empty() {
            g.top_live = live;
            g.native = native;
            g.java = java;
            g.thread = info.thread.clone();
        }
        g.add(id, live, samples, allocated, base);
    }
    groups.sort_by_key(|g| (-g.live, g.id));
    let rest = if groups.len() > TOP_SITES { groups.split_off(TOP_SITES) } else { Vec::new() };
    for g in rest {
        other.add(g.id, g.live, g.samples, g.allocated, g.base);
        other.stacks += g.stacks.saturating_sub(1);
    }
    let mut sites = Vec::new();
    for g in groups.iter().filter(|g| g.live > 0 || g.base > 0) {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), json!(g.id));
        m.insert("label".into(), json!(g.label));
        m.insert("native".into(), Value::Array(g.native.iter().map(frame_json).collect()));
        if !g.java.is_empty() {
            m.insert("java".into(), json!(g.java));
        }
        m.insert("thread".into(), json!(g.thread));
        m.insert("live_bytes".into(), json!(g.live));
        m.insert("growth_bytes".into(), json!(g.live - g.base));
        m.insert("live_samples".into(), json!(g.samples));
        m.insert("allocated_bytes".into(), json!(g.allocated));
        m.insert("stacks".into(), json!(g.stacks));
        sites.push(Value::Object(m));
    }
    if other.live > 0 || other.base > 0 {
        sites.push(json!({"site": "other", "sites": other.stacks, "live_bytes": other.live, "growth_bytes": other.live - other.base}));
    }
    let mut out = json!({
        "status": "on",
        "sample_bytes": SAMPLE_BYTES.load(Ordering::Relaxed),
        "since_ms": c.since_ms,
        "libraries": c.patches.libraries(),
        "slots": c.patches.slots(),
        "sampled": SAMPLED.load(Ordering::Relaxed),
        "dropped": DROPPED.load(Ordering::Relaxed),
        "java_frames": c.java_problem.is_none(),
        "live_bytes": total,
        "growth_bytes": total - base_total,
        "sites": sites,
    });
    if let Some(p) = &c.java_problem {
        out["java_problem"] = json!(p);
    }
    if let Some(p) = &c.problem {
        out["problem"] = json!(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_stands_for_its_size_over_its_chance() {
        // Far larger than the mean: always sampled, stands for itself.
        assert_eq!(weight_of(64 << 20, 512 << 10), 64 << 20);
        // Far smaller: sampled with chance ~size/mean, stands for ~mean.
        let w = weight_of(64, 512 << 10);
        assert!((w as f64 - (512 << 10) as f64).abs() < 64.0, "{w}");
    }

    #[test]
    fn labels_name_the_caller_of_the_allocation_wrapper_and_the_application_frame() {
        let f = |lib: &str, s: Option<&str>| symbols::Frame { library: lib.into(), symbol: s.map(str::to_string), offset: 3 };
        let native = [f("libz.so.1", Some("zcalloc")), f("libz.so.1", Some("inflateInit2_")), f("libzip.so", None)];
        let java = ["java.util.zip.Inflater.init(Native Method)".to_string(), "com.acme.Ingest.read(Ingest.java:8)".to_string()];
        assert_eq!(label(&native, &java), "libz.so.1 inflateInit2_ <- com.acme.Ingest.read");
        let jni = ["com.acme.Cache.put0(Native Method)".to_string(), "com.acme.Cache.put(Cache.java:3)".to_string()];
        assert_eq!(label(&native[2..], &jni), "libzip.so+0x3 <- com.acme.Cache.put");
        assert_eq!(label(&[f("libfoo.so", None)], &[]), "libfoo.so+0x3");
    }

    #[test]
    fn the_live_set_finds_what_it_holds_and_forgets_what_is_freed() {
        // Addresses far from anything the other tests or the allocator use.
        let base = 0x7f00_dead_0000usize;
        for i in 0..1000 {
            assert!(put(base + i * 16, 5, 100));
        }
        for i in 0..1000 {
            assert_eq!(take(base + i * 16), Some((5, 100)));
        }
        assert_eq!(take(base), None);
        let marked = |v: usize| tables().live.iter().filter(|s| s.addr.load(Ordering::Relaxed) == v).count();
        assert!(marked(TOMBSTONE) >= 1000);
        // Every run of tombstones ends in an empty slot: the sweep empties them all.
        sweep();
        assert_eq!(marked(TOMBSTONE), 0);
    }
}
