//! Call sites: which code made the zip streams, direct buffers and threads alive now.
//!
//! The agent rewrites four JDK methods (the constructors of `Inflater`, `Deflater` and
//! `DirectByteBuffer`, and `Thread.start`) to call the static natives of a class this module
//! defines in the boot loader, `io.offheapdoctor.hooks.Sites`. Each call takes the caller's
//! stack with JVMTI `GetStackTrace`, maps it to a site (its first frame outside the JDK, with the
//! JDK method it called as context) and tags the object with the site (JVMTI `SetTag`). Tags die
//! with their objects, so a site's count falls when its objects are collected, at no cost to
//! the application; the sampler reads the tags back: the zip census per stream, the live
//! sampled direct buffers with `GetObjectsWithTags`, the live threads with `GetAllThreads`.
//!
//! Direct buffers are sampled by bytes (one sample per [`DIRECT_SAMPLE_BYTES`] on average, a
//! Poisson process per thread), each sample weighted by the inverse of its chance to be
//! sampled, so a site's estimate is unbiased whatever the buffer sizes. Threads are all
//! recorded; so are zip streams up to [`EXACT_PER_SECOND`] per thread, and beyond that one in
//! [`RATE_SAMPLE_EVERY`], weighted back (a stack costs about as much as a small stream).
//!
//! Nothing here throws into the application: a hook that cannot record drops the record.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use jni::sys::{jclass, jint, jlong, jmethodID, jobject, jvalue, JNIEnv, JNINativeMethod, JavaVM};
use serde_json::{json, Value};

use crate::jni_internals::{jni_call, Jni};

/// Mean bytes of direct buffer allocation between two samples.
pub const DIRECT_SAMPLE_BYTES: u64 = 256 * 1024;
/// Frames taken per record: enough to reach the application below the JDK's own layers.
const MAX_FRAMES: usize = 24;
/// Frames that identify a stack on the hot path.
const KEY_FRAMES: usize = 8;
/// Frames of the application kept per site for its stack, the site's own first.
const KEPT_FRAMES: usize = 6;
/// Distinct sites kept in all; later ones count as their kind's "other".
const MAX_SITES: usize = 2048;
/// Distinct raw stacks remembered; later ones are resolved each time they are met.
const MAX_KEYS: usize = 32 * 1024;
/// Sites shown per kind in a report; the rest are summed as "other".
pub const TOP_SITES: usize = 10;

const JVMTI_VERSION_1_2: jint = 0x3001_0200;
const HOOK_CLASS: &str = "io/offheapdoctor/hooks/Sites";

/// What a site made. The tag of an object is `kind << 56 | site`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Inflater = 1,
    Deflater = 2,
    Direct = 3,
    Thread = 4,
}

impl Kind {
    fn from_tag(tag: jlong) -> Option<Kind> {
        match (tag as u64) >> 56 {
            1 => Some(Kind::Inflater),
            2 => Some(Kind::Deflater),
            3 => Some(Kind::Direct),
            4 => Some(Kind::Thread),
            _ => None,
        }
    }
}

fn tag_of(kind: Kind, site: u32) -> jlong {
    (((kind as u64) << 56) | u64::from(site)) as jlong
}

/// A tag's kind and site, for a tag this module set.
pub fn decode(tag: jlong) -> Option<(Kind, u32)> {
    let kind = Kind::from_tag(tag)?;
    Some((kind, (tag as u64 & 0xffff_ffff) as u32))
}

/// How many objects a tagged one stands for past its byte sampling: 1, or more for a record
/// kept by chance while its thread made them too fast to keep each (see [`rate_weight`]).
pub fn weight(tag: jlong) -> u64 {
    ((tag as u64 >> 32) & 0xff_ffff).max(1)
}

fn weighted_tag(kind: Kind, site: u32, weight: u32) -> jlong {
    tag_of(kind, site) | ((u64::from(weight.min(0xff_ffff)) << 32) as jlong)
}

/// One call site as the reports show it.
#[derive(Clone, Debug)]
pub struct Site {
    pub kind: Kind,
    /// `com.acme.Ingest.read(Ingest.java:88)`, or "other" for the sites beyond the bound.
    pub site: String,
    /// The JDK method the site called, e.g. `java.util.zip.GZIPInputStream.<init>`; empty when
    /// the site called the hooked method itself.
    pub via: String,
    /// The site's frame then its callers, outermost last.
    pub frames: Vec<String>,
    /// No frame outside the JDK was on the stack (a JDK thread, say).
    pub jdk_only: bool,
}

// ---------------------------------------------------------------------------------------------
// The raw JVMTI interface: a `jvmtiEnv*` points at a pointer to the function table, whose slot
// n - 1 holds function n of the specification's numbering.

type Table = *const [*const c_void; 160];

#[repr(C)]
#[derive(Clone, Copy)]
struct FrameInfo {
    method: jmethodID,
    location: jlong,
}

#[repr(C)]
struct LineEntry {
    start_location: jlong,
    line_number: jint,
}

#[repr(C)]
struct ThreadInfo {
    name: *mut c_char,
    priority: jint,
    is_daemon: u8,
    thread_group: jobject,
    context_class_loader: jobject,
}

static JVMTI: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
static FAILED: Mutex<Option<String>> = Mutex::new(None);

macro_rules! jvmti_fn {
    ($env:expr, $n:expr, $t:ty) => {{
        let env: *mut Table = $env;
        // SAFETY: `env` is the live jvmtiEnv this module obtained with GetEnv (never disposed);
        // slot $n - 1 of its table is function $n of the JVMTI specification, whose C signature
        // is the one named here.
        unsafe {
            let table = *env;
            std::mem::transmute::<*const c_void, $t>((*table)[$n - 1])
        }
    }};
}

type GetStackTraceFn = unsafe extern "system" fn(*mut Table, jobject, jint, jint, *mut FrameInfo, *mut jint) -> jint;
type SetTagFn = unsafe extern "system" fn(*mut Table, jobject, jlong) -> jint;
type GetTagFn = unsafe extern "system" fn(*mut Table, jobject, *mut jlong) -> jint;
type DeallocateFn = unsafe extern "system" fn(*mut Table, *mut u8) -> jint;
type GetMethodNameFn =
    unsafe extern "system" fn(*mut Table, jmethodID, *mut *mut c_char, *mut *mut c_char, *mut *mut c_char) -> jint;
type GetMethodDeclaringClassFn = unsafe extern "system" fn(*mut Table, jmethodID, *mut jclass) -> jint;
type GetClassSignatureFn = unsafe extern "system" fn(*mut Table, jclass, *mut *mut c_char, *mut *mut c_char) -> jint;
type GetSourceFileNameFn = unsafe extern "system" fn(*mut Table, jclass, *mut *mut c_char) -> jint;
type GetLineNumberTableFn = unsafe extern "system" fn(*mut Table, jmethodID, *mut jint, *mut *mut LineEntry) -> jint;
type AddCapabilitiesFn = unsafe extern "system" fn(*mut Table, *const [u32; 4]) -> jint;
type GetObjectsWithTagsFn =
    unsafe extern "system" fn(*mut Table, jint, *const jlong, *mut jint, *mut *mut jobject, *mut *mut jlong) -> jint;
type GetAllThreadsFn = unsafe extern "system" fn(*mut Table, *mut jint, *mut *mut jobject) -> jint;
type GetThreadInfoFn = unsafe extern "system" fn(*mut Table, jobject, *mut ThreadInfo) -> jint;
type AddModuleReadsFn = unsafe extern "system" fn(*mut Table, jobject, jobject) -> jint;
type GetVersionNumberFn = unsafe extern "system" fn(*mut Table, *mut jint) -> jint;

fn jvmti() -> Option<*mut Table> {
    let p = JVMTI.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// Frees memory JVMTI allocated for a result.
fn deallocate<T>(env: *mut Table, p: *mut T) {
    if !p.is_null() {
        let f = jvmti_fn!(env, 47, DeallocateFn);
        // SAFETY: `p` was allocated by this JVMTI env for a result and is freed once.
        unsafe { f(env, p.cast()) };
    }
}

/// A JVMTI-allocated C string as a Rust string, freed.
fn take_string(env: *mut Table, p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: JVMTI returns NUL-terminated modified UTF-8 strings it allocated.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    deallocate(env, p);
    s
}

// ---------------------------------------------------------------------------------------------
// Installation.

/// The hook class: public, final, no constructor, three `public static native` methods. Built
/// here so that nothing from Java decides what enters the boot loader.
fn hook_class_bytes() -> Vec<u8> {
    fn utf8(out: &mut Vec<u8>, s: &str) {
        out.push(1);
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut b = vec![0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 52];
    b.extend_from_slice(&11u16.to_be_bytes());
    utf8(&mut b, HOOK_CLASS); // 1
    b.extend_from_slice(&[7, 0, 1]); // 2: Class #1
    utf8(&mut b, "java/lang/Object"); // 3
    b.extend_from_slice(&[7, 0, 3]); // 4: Class #3
    utf8(&mut b, "zip"); // 5
    utf8(&mut b, "(Ljava/lang/Object;I)V"); // 6
    utf8(&mut b, "direct"); // 7
    utf8(&mut b, "(Ljava/lang/Object;J)V"); // 8
    utf8(&mut b, "thread"); // 9
    utf8(&mut b, "(Ljava/lang/Thread;)V"); // 10
    b.extend_from_slice(&0x0031u16.to_be_bytes()); // public final super
    b.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0]); // this, super, no interfaces, no fields
    b.extend_from_slice(&3u16.to_be_bytes());
    for (name, desc) in [(5u16, 6u16), (7, 8), (9, 10)] {
        b.extend_from_slice(&0x0109u16.to_be_bytes()); // public static native
        b.extend_from_slice(&name.to_be_bytes());
        b.extend_from_slice(&desc.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
    }
    b.extend_from_slice(&[0, 0]);
    b
}

/// Defines the hook class in the boot loader, binds its natives, takes a JVMTI env with the
/// capabilities to tag objects and name frames, and on JDK 9+ lets `java.base` read the hook's
/// module. Once per process; later calls return the first outcome.
pub fn install(env: *mut JNIEnv) -> Result<(), String> {
    INSTALLED.get_or_init(|| install_once(&Jni::from_raw(env))).clone()
}

fn install_once(jni: &Jni) -> Result<(), String> {
    let mut vm: *mut JavaVM = std::ptr::null_mut();
    if jni_call!(jni, GetJavaVM, &mut vm) != 0 || vm.is_null() {
        return Err("no JavaVM".into());
    }
    let mut table: *mut c_void = std::ptr::null_mut();
    // SAFETY: `vm` is the live JavaVM; GetEnv writes a jvmtiEnv* into `table`.
    let rc = unsafe { ((**vm).v1_4.GetEnv)(vm, &mut table, JVMTI_VERSION_1_2) };
    if rc != 0 || table.is_null() {
        return Err(format!("this JVM offers no JVMTI environment (GetEnv: {rc})"));
    }
    let jv: *mut Table = table.cast();
    // can_tag_objects (bit 0), can_get_source_file_name (bit 11), can_get_line_numbers (bit 12).
    let caps: [u32; 4] = [1 | (1 << 11) | (1 << 12), 0, 0, 0];
    let rc = {
        let f = jvmti_fn!(jv, 142, AddCapabilitiesFn);
        // SAFETY: `caps` is a jvmtiCapabilities (128 bits) the call only reads.
        unsafe { f(jv, &caps) }
    };
    if rc != 0 {
        return Err(format!("JVMTI refused the capability to tag objects (error {rc})"));
    }
    let bytes = hook_class_bytes();
    let name = std::ffi::CString::new(HOOK_CLASS).map_err(|e| e.to_string())?;
    let class = jni_call!(jni,
        DefineClass,
        name.as_ptr(),
        std::ptr::null_mut(),
        bytes.as_ptr().cast(),
        bytes.len() as jint
    );
    if jni.clear() || class.is_null() {
        return Err("could not define the hook class in the boot loader".into());
    }
    let methods = [
        native(c"zip", c"(Ljava/lang/Object;I)V", hook_zip as *mut c_void),
        native(c"direct", c"(Ljava/lang/Object;J)V", hook_direct as *mut c_void),
        native(c"thread", c"(Ljava/lang/Thread;)V", hook_thread as *mut c_void),
    ];
    let rc = jni_call!(jni, RegisterNatives, class, methods.as_ptr(), methods.len() as jint);
    if jni.clear() || rc != 0 {
        jni.delete(class);
        return Err("could not bind the hook class's natives".into());
    }
    let read = let_java_base_read(jni, jv, class);
    jni.delete(class);
    read?;
    JVMTI.store(jv, Ordering::Release);
    Ok(())
}

fn native(name: &'static CStr, sig: &'static CStr, f: *mut c_void) -> JNINativeMethod {
    JNINativeMethod { name: name.as_ptr() as *mut c_char, signature: sig.as_ptr() as *mut c_char, fnPtr: f }
}

/// `java.base` reads the boot loader's unnamed module, where the hook class lives, so the
/// rewritten JDK methods may call it. Nothing to do before JDK 9.
fn let_java_base_read(jni: &Jni, jv: *mut Table, hooks: jclass) -> Result<(), String> {
    let mut version: jint = 0;
    {
        let f = jvmti_fn!(jv, 88, GetVersionNumberFn);
        // SAFETY: writes the version into `version`.
        unsafe { f(jv, &mut version) };
    }
    if ((version >> 16) & 0x0fff) < 9 {
        return Ok(());
    }
    let class_class = jni_call!(jni, FindClass, c"java/lang/Class".as_ptr());
    if jni.clear() || class_class.is_null() {
        return Err("no java.lang.Class".into());
    }
    let get_module = jni_call!(jni, GetMethodID, class_class, c"getModule".as_ptr(), c"()Ljava/lang/Module;".as_ptr());
    let no_method = jni.clear();
    let object_class = jni_call!(jni, FindClass, c"java/lang/Object".as_ptr());
    if jni.clear() || no_method || get_module.is_null() || object_class.is_null() {
        jni.delete(class_class);
        return Err("no Class.getModule on a JDK of version 9 or later".into());
    }
    let no_args: [jvalue; 0] = [];
    let base = jni_call!(jni, CallObjectMethodA, object_class, get_module, no_args.as_ptr());
    let base_failed = jni.clear();
    let ours = jni_call!(jni, CallObjectMethodA, hooks, get_module, no_args.as_ptr());
    let failed = jni.clear() || base_failed || base.is_null() || ours.is_null();
    let rc = if failed {
        -1
    } else {
        let f = jvmti_fn!(jv, 94, AddModuleReadsFn);
        // SAFETY: both are live local references to java.lang.Module objects.
        unsafe { f(jv, base, ours) }
    };
    for o in [base, ours, object_class, class_class] {
        jni.delete(o);
    }
    if rc != 0 {
        return Err(format!("java.base cannot be made to read the hook class's module (error {rc})"));
    }
    Ok(())
}

/// Records why sites are off although asked for (shown in the report).
pub fn failed(why: &str) {
    *FAILED.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
}

// ---------------------------------------------------------------------------------------------
// Recording.

/// Raw stacks (a hash of their innermost frames) to the site they resolved to.
static KEYS: RwLock<Option<HashMap<u64, u32>>> = RwLock::new(None);
static SITES: Mutex<Vec<Site>> = Mutex::new(Vec::new());
static METHODS: Mutex<Option<HashMap<usize, MethodInfo>>> = Mutex::new(None);
static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

#[derive(Clone)]
struct MethodInfo {
    class: String,
    name: String,
    file: String,
    lines: Vec<(jlong, jint)>,
}

impl MethodInfo {
    fn line(&self, location: jlong) -> Option<jint> {
        self.lines.iter().filter(|(start, _)| *start <= location).max_by_key(|(start, _)| *start).map(|(_, l)| *l)
    }

    fn is_jdk(&self) -> bool {
        ["java.", "javax.", "jdk.", "sun.", "com.sun.", "io.offheapdoctor.hooks."]
            .iter()
            .any(|p| self.class.starts_with(p))
    }

    fn render(&self, location: jlong) -> String {
        match (self.line(location), self.file.is_empty()) {
            (Some(l), false) => format!("{}.{}({}:{l})", self.class, self.name, self.file),
            (None, false) => format!("{}.{}({})", self.class, self.name, self.file),
            _ => format!("{}.{}", self.class, self.name),
        }
    }
}

fn hash_frames(kind: Kind, frames: &[FrameInfo]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ kind as u64;
    for f in frames {
        for v in [f.method as u64, f.location as u64] {
            h ^= v;
            h = h.wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
        }
    }
    h
}

/// Frames of the calling thread's stack, innermost first, at most `N`.
fn stack<const N: usize>(jv: *mut Table) -> Option<([FrameInfo; N], usize)> {
    let mut frames = [FrameInfo { method: std::ptr::null_mut(), location: 0 }; N];
    let mut count: jint = 0;
    let f = jvmti_fn!(jv, 104, GetStackTraceFn);
    // SAFETY: the current thread (null), into a buffer of N frames.
    let rc = unsafe { f(jv, std::ptr::null_mut(), 0, N as jint, frames.as_mut_ptr(), &mut count) };
    if rc != 0 || count <= 0 {
        return None;
    }
    Some((frames, (count as usize).min(N)))
}

/// The site of the calling thread's stack, or `None` when it cannot be taken. The innermost
/// [`KEY_FRAMES`] frames are the key: walking them is most of a record's cost, and the site's
/// own frame is nearly always among them. A new key is resolved from a deeper walk.
fn capture(jv: *mut Table, jni: &Jni, kind: Kind) -> Option<u32> {
    let (frames, n) = stack::<KEY_FRAMES>(jv)?;
    let key = hash_frames(kind, &frames[..n]);
    if let Some(t) = KEYS.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if let Some(id) = t.get(&key) {
            return Some(*id);
        }
    }
    let (deep, m) = stack::<MAX_FRAMES>(jv)?;
    let site = resolve(jv, jni, kind, &deep[..m])?;
    let id = intern(site);
    let mut guard = KEYS.write().unwrap_or_else(|p| p.into_inner());
    let t = guard.get_or_insert_with(HashMap::new);
    if t.len() < MAX_KEYS {
        t.insert(key, id);
    }
    Some(id)
}

fn method_info(jv: *mut Table, jni: &Jni, m: jmethodID) -> Option<MethodInfo> {
    let mut cache = METHODS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(i) = cache.get(&(m as usize)) {
        return Some(i.clone());
    }
    let mut name: *mut c_char = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 64, GetMethodNameFn);
    // SAFETY: `m` came from GetStackTrace of this thread just now; outputs are ours to free.
    if unsafe { f(jv, m, &mut name, std::ptr::null_mut(), std::ptr::null_mut()) } != 0 {
        return None;
    }
    let name = take_string(jv, name);
    let mut class: jclass = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 65, GetMethodDeclaringClassFn);
    // SAFETY: as above; `class` becomes a local reference of this call, deleted below.
    if unsafe { f(jv, m, &mut class) } != 0 || class.is_null() {
        return None;
    }
    let mut sig: *mut c_char = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 48, GetClassSignatureFn);
    // SAFETY: `class` is a live local reference.
    let sig_rc = unsafe { f(jv, class, &mut sig, std::ptr::null_mut()) };
    let sig = take_string(jv, sig);
    let mut file: *mut c_char = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 50, GetSourceFileNameFn);
    // SAFETY: as above; a class without a SourceFile attribute returns an error and no string.
    let file = if unsafe { f(jv, class, &mut file) } == 0 { take_string(jv, file) } else { String::new() };
    jni.delete(class);
    if sig_rc != 0 {
        return None;
    }
    let mut lines = Vec::new();
    let mut n: jint = 0;
    let mut table: *mut LineEntry = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 70, GetLineNumberTableFn);
    // SAFETY: `table` receives `n` entries JVMTI allocated, freed below.
    if unsafe { f(jv, m, &mut n, &mut table) } == 0 && !table.is_null() {
        for i in 0..usize::try_from(n).unwrap_or(0) {
            // SAFETY: i < n entries.
            let e = unsafe { &*table.add(i) };
            lines.push((e.start_location, e.line_number));
        }
        deallocate(jv, table);
    }
    // `Lcom/acme/Ingest;` -> `com.acme.Ingest`.
    let class = sig.trim_start_matches('L').trim_end_matches(';').replace('/', ".");
    let info = MethodInfo { class, name, file, lines };
    if cache.len() < 4 * MAX_KEYS {
        cache.insert(m as usize, info.clone());
    }
    Some(info)
}

fn resolve(jv: *mut Table, jni: &Jni, kind: Kind, frames: &[FrameInfo]) -> Option<Site> {
    let infos: Vec<(MethodInfo, jlong)> =
        frames.iter().filter_map(|f| method_info(jv, jni, f.method).map(|i| (i, f.location))).collect();
    let app = infos.iter().position(|(i, _)| !i.is_jdk());
    let (at, jdk_only) = match app {
        Some(i) => (i, false),
        None => (infos.len().checked_sub(1)?, true),
    };
    // The JDK method the application called: the frame just above the site, unless that is
    // the hooked method itself (the application called it directly) or the hook.
    let hooked = match kind {
        Kind::Inflater => "java.util.zip.Inflater.<init>",
        Kind::Deflater => "java.util.zip.Deflater.<init>",
        Kind::Direct => "java.nio.DirectByteBuffer.<init>",
        Kind::Thread => "java.lang.Thread.start",
    };
    let via = if at >= 1 && !jdk_only {
        let (i, _) = &infos[at - 1];
        let name = format!("{}.{}", i.class, i.name);
        if name == hooked || i.class.starts_with("io.offheapdoctor.hooks.") {
            String::new()
        } else {
            name
        }
    } else {
        String::new()
    };
    let kept: Vec<String> = infos[at..].iter().take(KEPT_FRAMES).map(|(i, l)| i.render(*l)).collect();
    Some(Site { kind, site: kept.first()?.clone(), via, frames: kept, jdk_only })
}

/// The id of a site, the same for the same site and via; the kind's "other" past the bound.
fn intern(site: Site) -> u32 {
    let mut sites = SITES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = sites.iter().position(|s| s.kind == site.kind && s.site == site.site && s.via == site.via) {
        return i as u32;
    }
    if sites.len() >= MAX_SITES {
        if let Some(i) = sites.iter().position(|s| s.kind == site.kind && s.site == "other") {
            return i as u32;
        }
        sites.push(Site { kind: site.kind, site: "other".into(), via: String::new(), frames: Vec::new(), jdk_only: false });
        return (sites.len() - 1) as u32;
    }
    sites.push(site);
    (sites.len() - 1) as u32
}

/// A site by id.
pub fn site(id: u32) -> Option<Site> {
    SITES.lock().unwrap_or_else(|p| p.into_inner()).get(id as usize).cloned()
}

fn set_tag(jv: *mut Table, obj: jobject, tag: jlong) {
    let f = jvmti_fn!(jv, 107, SetTagFn);
    // SAFETY: `obj` is a live reference passed to the hook.
    unsafe { f(jv, obj, tag) };
}

/// The tag this module set on `obj`, if any (see [`decode`], [`weight`]): for the zip census.
///
/// # Safety
/// `obj` must be null or a live reference of the caller's current native call.
pub unsafe fn tag(obj: jobject) -> Option<jlong> {
    let jv = jvmti()?;
    if obj.is_null() {
        return None;
    }
    let mut t: jlong = 0;
    let f = jvmti_fn!(jv, 106, GetTagFn);
    // SAFETY: `obj` is a live reference of the caller's native call.
    if unsafe { f(jv, obj, &mut t) } != 0 || decode(t).is_none() {
        return None;
    }
    Some(t)
}

fn record(env: *mut JNIEnv, obj: jobject, kind: Kind, weight: u32) {
    let Some(jv) = jvmti() else { return };
    if obj.is_null() {
        return;
    }
    if let Some(id) = capture(jv, &Jni::from_raw(env), kind) {
        set_tag(jv, obj, if weight > 1 { weighted_tag(kind, id, weight) } else { tag_of(kind, id) });
    }
}

/// Records a thread makes each per second, of zip streams and of sampled direct buffers apiece;
/// beyond, one in [`RATE_SAMPLE_EVERY`].
pub const EXACT_PER_SECOND: u32 = 256;
/// The chance of a record beyond the exact ones to be kept is one in this.
pub const RATE_SAMPLE_EVERY: u32 = 16;

thread_local! {
    /// The second this thread's records are counted in, and how many it made in it: zip
    /// streams, then sampled direct buffers.
    static ZIP_WINDOW: Cell<(u64, u32)> = const { Cell::new((0, 0)) };
    static DIRECT_WINDOW: Cell<(u64, u32)> = const { Cell::new((0, 0)) };
}

fn coarse_seconds() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes the coarse monotonic clock into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0)
}

/// Whether to keep this thread's next record, and how many it stands for. A stack costs about
/// as much as making a small Inflater: a thread that makes thousands of streams (or large direct
/// buffers) a second would pay for its sites in throughput. Keeping each record past the rate
/// with a chance and weighting it by the inverse keeps every site's figure unbiased (exact below
/// the rate), and a leak, which piles objects up, still shows at its site.
fn rate_weight(window: &'static std::thread::LocalKey<Cell<(u64, u32)>>) -> Option<u32> {
    let now = coarse_seconds();
    let n = window.with(|w| {
        let (at, n) = w.get();
        let n = if at == now { n.saturating_add(1) } else { 1 };
        w.set((now, n));
        n
    });
    if n <= EXACT_PER_SECOND {
        return Some(1);
    }
    next_random().is_multiple_of(u64::from(RATE_SAMPLE_EVERY)).then_some(RATE_SAMPLE_EVERY)
}

fn zip_weight() -> Option<u32> {
    rate_weight(&ZIP_WINDOW)
}

extern "system" fn hook_zip(env: *mut JNIEnv, _class: jclass, zs_ref: jobject, kind: jint) {
    let kind = match kind {
        1 => Kind::Inflater,
        2 => Kind::Deflater,
        _ => return,
    };
    let _ = std::panic::catch_unwind(|| {
        if jvmti().is_none() {
            return;
        }
        if let Some(w) = zip_weight() {
            record(env, zs_ref, kind, w);
        }
    });
}

thread_local! {
    /// Bytes of direct buffers this thread may still allocate before its next sample.
    static UNTIL_SAMPLE: Cell<i64> = const { Cell::new(i64::MIN) };
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// An exponentially distributed gap with mean [`DIRECT_SAMPLE_BYTES`] (a Poisson process over bytes).
fn next_gap() -> i64 {
    let x = next_random();
    let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (-(u.ln()) * DIRECT_SAMPLE_BYTES as f64) as i64 + 1
}

/// This thread's next pseudo-random number (xorshift, seeded apart per thread).
fn next_random() -> u64 {
    RNG.with(|r| {
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
}

/// The bytes one sampled buffer of `capacity` stands for: its size over its chance to be sampled.
pub fn direct_weight(capacity: u64) -> f64 {
    let c = capacity.max(1) as f64;
    c / (1.0 - (-c / DIRECT_SAMPLE_BYTES as f64).exp())
}

extern "system" fn hook_direct(env: *mut JNIEnv, _class: jclass, buffer: jobject, capacity: jlong) {
    let _ = std::panic::catch_unwind(|| {
        if capacity <= 0 || buffer.is_null() || jvmti().is_none() {
            return;
        }
        let sample = UNTIL_SAMPLE.with(|u| {
            let mut left = u.get();
            if left == i64::MIN {
                left = next_gap();
            }
            left = left.saturating_sub(capacity);
            if left <= 0 {
                u.set(next_gap());
                true
            } else {
                u.set(left);
                false
            }
        });
        if sample {
            if let Some(w) = rate_weight(&DIRECT_WINDOW) {
                record(env, buffer, Kind::Direct, w);
            }
        }
    });
}

extern "system" fn hook_thread(env: *mut JNIEnv, _class: jclass, thread: jobject) {
    let _ = std::panic::catch_unwind(|| record(env, thread, Kind::Thread, 1));
}

// ---------------------------------------------------------------------------------------------
// Reading back.

/// Per-site figures of the zip census, filled by the census walk.
static ZIP: Mutex<Option<HashMap<u32, ZipCount>>> = Mutex::new(None);

/// One site's unended streams in a census; `estimated` when some were recorded by chance.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZipCount {
    pub alive: u64,
    pub pending: u64,
    pub estimated: bool,
}
static BASELINE: Mutex<Option<HashMap<u32, i64>>> = Mutex::new(None);

/// The census's split by site, replacing the previous one.
pub fn set_zip_split(split: HashMap<u32, ZipCount>) {
    *ZIP.lock().unwrap_or_else(|p| p.into_inner()) = Some(split);
}

/// The next snapshot becomes the baseline of the growth figures.
pub fn reset_baseline() {
    *BASELINE.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

fn site_json(s: &Site) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("site".into(), json!(s.site));
    if !s.via.is_empty() {
        m.insert("via".into(), json!(s.via));
    }
    m.insert("frames".into(), json!(s.frames));
    if s.jdk_only {
        m.insert("jdk_only".into(), json!(true));
    }
    m
}

/// Live sampled direct buffers by site: (estimated bytes, sampled buffers).
fn direct_by_site(jv: *mut Table, jni: &Jni, ids: &[u32]) -> HashMap<u32, (f64, u64)> {
    let mut out = HashMap::new();
    if ids.is_empty() {
        return out;
    }
    let tags: Vec<jlong> = ids
        .iter()
        .flat_map(|id| [tag_of(Kind::Direct, *id), weighted_tag(Kind::Direct, *id, RATE_SAMPLE_EVERY)])
        .collect();
    let buffer = jni_call!(jni, FindClass, c"java/nio/Buffer".as_ptr());
    if jni.clear() || buffer.is_null() {
        return out;
    }
    let capacity = jni_call!(jni, GetMethodID, buffer, c"capacity".as_ptr(), c"()I".as_ptr());
    if jni.clear() || capacity.is_null() {
        jni.delete(buffer);
        return out;
    }
    let mut n: jint = 0;
    let mut objects: *mut jobject = std::ptr::null_mut();
    let mut found: *mut jlong = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 114, GetObjectsWithTagsFn);
    // SAFETY: `tags` holds tags.len() tags; the results are JVMTI-allocated arrays of n entries
    // (local references and tags), freed below.
    let rc = unsafe { f(jv, tags.len() as jint, tags.as_ptr(), &mut n, &mut objects, &mut found) };
    if rc == 0 {
        let no_args: [jvalue; 0] = [];
        for i in 0..usize::try_from(n).unwrap_or(0) {
            // SAFETY: i < n entries of both arrays.
            let (o, t) = unsafe { (*objects.add(i), *found.add(i)) };
            let cap = jni_call!(jni, CallIntMethodA, o, capacity, no_args.as_ptr());
            let bad = jni.clear();
            jni.delete(o);
            if let (false, Some((_, id))) = (bad, decode(t)) {
                let e = out.entry(id).or_insert((0.0, 0));
                e.0 += direct_weight(u64::try_from(cap).unwrap_or(0)) * weight(t) as f64;
                e.1 += 1;
            }
        }
        deallocate(jv, objects);
        deallocate(jv, found);
    }
    jni.delete(buffer);
    out
}

/// `pool-12-thread-3` -> `pool-*-thread-*`.
pub fn name_pattern(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('*');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Live threads by site with their name patterns; the threads without a tag (started before
/// the agent, or by the JVM itself) under `u32::MAX`.
fn threads_by_site(jv: *mut Table, jni: &Jni) -> HashMap<u32, HashMap<String, u64>> {
    let mut out: HashMap<u32, HashMap<String, u64>> = HashMap::new();
    let mut n: jint = 0;
    let mut threads: *mut jobject = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 4, GetAllThreadsFn);
    // SAFETY: the result is a JVMTI-allocated array of n local references, freed below.
    if unsafe { f(jv, &mut n, &mut threads) } != 0 {
        return out;
    }
    for i in 0..usize::try_from(n).unwrap_or(0) {
        // SAFETY: i < n entries.
        let t = unsafe { *threads.add(i) };
        let mut tag: jlong = 0;
        let g = jvmti_fn!(jv, 106, GetTagFn);
        // SAFETY: `t` is a live local reference to a thread.
        let id = if unsafe { g(jv, t, &mut tag) } == 0 {
            decode(tag).filter(|(k, _)| *k == Kind::Thread).map_or(u32::MAX, |(_, id)| id)
        } else {
            u32::MAX
        };
        let mut info = ThreadInfo {
            name: std::ptr::null_mut(),
            priority: 0,
            is_daemon: 0,
            thread_group: std::ptr::null_mut(),
            context_class_loader: std::ptr::null_mut(),
        };
        let h = jvmti_fn!(jv, 9, GetThreadInfoFn);
        // SAFETY: fills `info`; its string is ours to free and its references are locals.
        let name = if unsafe { h(jv, t, &mut info) } == 0 {
            jni.delete(info.thread_group);
            jni.delete(info.context_class_loader);
            take_string(jv, info.name)
        } else {
            String::new()
        };
        jni.delete(t);
        *out.entry(id).or_default().entry(name_pattern(&name)).or_default() += 1;
    }
    deallocate(jv, threads);
    out
}

type Rows<T> = Vec<(u32, T)>;

fn top<T>(mut rows: Rows<T>, key: impl Fn(&T) -> i64) -> (Rows<T>, Rows<T>) {
    rows.sort_by_key(|(id, t)| (-key(t), *id));
    let rest = if rows.len() > TOP_SITES { rows.split_off(TOP_SITES) } else { Vec::new() };
    (rows, rest)
}

/// The `sites` part of a sample: by kind, the top sites with their live figures and growth
/// since the baseline, the rest summed as "other". `{"status":"off"}` when never installed.
pub fn snapshot(env: *mut JNIEnv) -> Value {
    let Some(jv) = jvmti() else {
        let failed = FAILED.lock().unwrap_or_else(|p| p.into_inner()).clone();
        return match failed {
            Some(why) => json!({"status": "unavailable", "problem": why}),
            None => json!({"status": "off"}),
        };
    };
    let sites = SITES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let direct_ids: Vec<u32> =
        sites.iter().enumerate().filter(|(_, s)| s.kind == Kind::Direct).map(|(i, _)| i as u32).collect();
    let jni = Jni::from_raw(env);
    let direct = direct_by_site(jv, &jni, &direct_ids);
    let threads = threads_by_site(jv, &jni);
    let zip = ZIP.lock().unwrap_or_else(|p| p.into_inner()).clone();

    let mut baseline_guard = BASELINE.lock().unwrap_or_else(|p| p.into_inner());
    let first = baseline_guard.is_none();
    let baseline = baseline_guard.get_or_insert_with(HashMap::new);
    let mut base = |key: u32, now: i64| -> i64 {
        if first {
            baseline.insert(key, now);
        }
        *baseline.get(&key).unwrap_or(&0)
    };

    // Direct buffers: live bytes by site.
    let rows: Vec<(u32, (f64, u64))> = direct.into_iter().collect();
    let (shown, rest) = top(rows, |(b, _)| *b as i64);
    let mut direct_out = Vec::new();
    for (id, (bytes, n)) in shown {
        let Some(s) = sites.get(id as usize) else { continue };
        let live = bytes.round() as i64;
        let b = base(id, live);
        let mut m = site_json(s);
        m.insert("live_bytes".into(), json!(live));
        m.insert("growth_bytes".into(), json!(live - b));
        m.insert("sampled_buffers".into(), json!(n));
        direct_out.push(Value::Object(m));
    }
    if !rest.is_empty() {
        let live: f64 = rest.iter().map(|(_, (b, _))| b).sum();
        let n: u64 = rest.iter().map(|(_, (_, n))| n).sum();
        direct_out.push(json!({"site": "other", "sites": rest.len(), "live_bytes": live.round() as i64, "sampled_buffers": n}));
    }

    // Threads: alive by site.
    let untracked: u64 = threads.get(&u32::MAX).map_or(0, |m| m.values().sum());
    let rows: Vec<(u32, HashMap<String, u64>)> = threads.into_iter().filter(|(id, _)| *id != u32::MAX).collect();
    let (shown, rest) = top(rows, |m| m.values().sum::<u64>() as i64);
    let mut thread_out = Vec::new();
    for (id, names) in shown {
        let Some(s) = sites.get(id as usize) else { continue };
        let alive = names.values().sum::<u64>() as i64;
        let b = base((1 << 31) | id, alive);
        let mut names: Vec<(String, u64)> = names.into_iter().collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(5);
        let mut m = site_json(s);
        m.insert("alive".into(), json!(alive));
        m.insert("growth".into(), json!(alive - b));
        m.insert("names".into(), json!(names.iter().map(|(p, n)| json!({"pattern": p, "alive": n})).collect::<Vec<_>>()));
        thread_out.push(Value::Object(m));
    }
    if !rest.is_empty() {
        let alive: u64 = rest.iter().map(|(_, m)| m.values().sum::<u64>()).sum();
        thread_out.push(json!({"site": "other", "sites": rest.len(), "alive": alive}));
    }

    let mut out = json!({
        "status": "on",
        "direct_sample_bytes": DIRECT_SAMPLE_BYTES,
        "direct": direct_out,
        "threads": thread_out,
        "threads_untracked": untracked,
    });
    if let Some(zip) = zip {
        out["zip"] = zip_json(&sites, zip);
    }
    out
}

fn zip_json(sites: &[Site], split: HashMap<u32, ZipCount>) -> Value {
    let rows: Vec<(u32, ZipCount)> = split.into_iter().collect();
    let (shown, rest) = top(rows, |c| (c.alive + c.pending) as i64);
    let mut out = Vec::new();
    for (id, c) in shown {
        let Some(s) = sites.get(id as usize) else { continue };
        let mut m = site_json(s);
        m.insert("kind".into(), json!(if s.kind == Kind::Deflater { "deflater" } else { "inflater" }));
        m.insert("alive".into(), json!(c.alive));
        m.insert("pending".into(), json!(c.pending));
        if c.estimated {
            m.insert("estimated".into(), json!(true));
        }
        out.push(Value::Object(m));
    }
    if !rest.is_empty() {
        let alive: u64 = rest.iter().map(|(_, c)| c.alive).sum();
        let pending: u64 = rest.iter().map(|(_, c)| c.pending).sum();
        out.push(json!({"site": "other", "sites": rest.len(), "alive": alive, "pending": pending}));
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_foreign_tags_are_not_ours() {
        for kind in [Kind::Inflater, Kind::Deflater, Kind::Direct, Kind::Thread] {
            assert_eq!(decode(tag_of(kind, 77)), Some((kind, 77)));
        }
        assert_eq!(decode(0), None);
        assert_eq!(decode(12345), None);
    }

    #[test]
    fn a_weighted_tag_keeps_its_site_and_says_its_weight() {
        let t = weighted_tag(Kind::Deflater, 9, RATE_SAMPLE_EVERY);
        assert_eq!(decode(t), Some((Kind::Deflater, 9)));
        assert_eq!(weight(t), u64::from(RATE_SAMPLE_EVERY));
        assert_eq!(weight(tag_of(Kind::Inflater, 9)), 1);
    }

    #[test]
    fn zip_streams_are_each_recorded_up_to_the_rate_then_by_chance() {
        let (mut recorded, mut weighted) = (0u32, 0u64);
        for _ in 0..EXACT_PER_SECOND {
            assert_eq!(zip_weight(), Some(1));
        }
        let n = 160_000u64;
        for _ in 0..n {
            if let Some(w) = zip_weight() {
                recorded += 1;
                weighted += u64::from(w);
            }
        }
        // Unless the second turned meanwhile, the rest are one in RATE_SAMPLE_EVERY, weighted back.
        if recorded < n as u32 / 2 {
            assert!((weighted as f64 - n as f64).abs() < 0.05 * n as f64, "{weighted}");
        }
    }

    #[test]
    fn thread_names_collapse_their_numbers() {
        assert_eq!(name_pattern("pool-12-thread-3"), "pool-*-thread-*");
        assert_eq!(name_pattern("worker"), "worker");
        assert_eq!(name_pattern("42"), "*");
    }

    #[test]
    fn a_sampled_buffer_stands_for_its_size_over_its_chance() {
        // A buffer far larger than the interval is always sampled: it stands for itself.
        let big = 64 * DIRECT_SAMPLE_BYTES;
        assert!((direct_weight(big) - big as f64).abs() < 1.0);
        // A small one stands for about the interval.
        let w = direct_weight(1024);
        assert!(w > DIRECT_SAMPLE_BYTES as f64 && w < 1.01 * DIRECT_SAMPLE_BYTES as f64, "{w}");
    }

    #[test]
    fn gaps_average_the_interval() {
        let n = 200_000;
        let mean = (0..n).map(|_| next_gap() as f64).sum::<f64>() / n as f64;
        let want = DIRECT_SAMPLE_BYTES as f64;
        assert!((mean - want).abs() < 0.02 * want, "{mean}");
    }

    #[test]
    fn the_hook_class_is_a_well_formed_class_file() {
        let b = hook_class_bytes();
        assert_eq!(&b[..4], &[0xCA, 0xFE, 0xBA, 0xBE]);
        let dir = std::env::temp_dir().join(format!("offheap-doctor-hooks-{}", std::process::id()));
        let class = dir.join("io/offheapdoctor/hooks/Sites.class");
        std::fs::create_dir_all(class.parent().expect("parent")).expect("dir");
        std::fs::write(&class, &b).expect("write");
        // javap, when there is one, reads it back as the three natives.
        if let Ok(out) = std::process::Command::new("javap").arg("-cp").arg(&dir).arg("io.offheapdoctor.hooks.Sites").output() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            for m in [
                "public static native void zip(java.lang.Object, int);",
                "public static native void direct(java.lang.Object, long);",
                "public static native void thread(java.lang.Thread);",
            ] {
                assert!(text.contains(m), "{text}");
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
