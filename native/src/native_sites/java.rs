//! Java frames of a sampled native allocation, taken with HotSpot's `AsyncGetCallTrace` (ASGCT).
//!
//! Why ASGCT: the malloc hooks take the stack inside the allocation, on whatever thread made it
//! and in whatever state the JVM has that thread in. JVMTI `GetStackTrace` and every JNI call
//! that can transition the thread may take locks, allocate or stop at a safepoint, none of which
//! is allowed inside malloc. ASGCT is HotSpot's stack walker for signal handlers: no lock, no
//! allocation, no state change. It reads the thread's last Java frame and reports frames as
//! (jmethodID, bytecode index), innermost first. The thread's `JNIEnv` comes from the JavaVM's
//! `GetEnv`, which only reads thread-local storage; a thread the JVM does not know has no Java
//! frames and ASGCT is not called for it.
//!
//! Its preconditions (HotSpot's `forte.cpp`, JDK 11 to 25):
//! - it reports nothing unless some JVMTI environment has `ClassLoad` events on, so [`enable`]
//!   takes a JVMTI environment of its own (other modules keep their callbacks) and turns them on;
//! - it only looks jmethodIDs up and never makes one (that would take a lock), so a frame of a
//!   method without an id comes back without one: the `ClassPrepare` callback asks for every
//!   method of each new class (`GetClassMethods` makes their ids, as async-profiler does), and
//!   [`enable`] does so for the classes already loaded;
//! - the `ucontext` argument is read only for a thread in Java state whose last Java frame is
//!   not walkable. An allocation in a hooked library runs in native state (a JNI method) or VM
//!   state (the VM calling libzip or libjimage), where the context is not read; only a downcall
//!   that keeps the thread in Java state (a "critical" foreign function) could get here in that
//!   state. This module passes no context, which HotSpot takes as "nothing to walk from": such a
//!   sample has no Java frames rather than frames walked from a made-up context.
//!
//! Limits: HotSpot only (a JVM without the symbol, OpenJ9 say, makes [`enable`] fail and the
//! sites carry native frames only). At most [`MAX_JAVA_FRAMES`] frames, innermost first. A
//! frame whose method has no jmethodID (a class whose methods could not be listed) is left out.
//! ASGCT gives up (no frames) while a garbage collection runs, in a deoptimization handler, or
//! on a frame it cannot decode. On JDKs whose ASGCT finds its thread through the `JNIEnv` with
//! a VM-exit check, a daemon thread that allocates after the VM has exited would block there
//! (as it would on its way back to Java): the `VMDeath` event, posted before the VM marks its
//! threads exited, disarms [`capture`]; only a capture already past that check when the VM
//! dies is not covered.
//! A frame's method is named at [`resolve`] time; a method whose class was unloaded meanwhile no
//! longer resolves (JVMTI answers with an error code) and its frame is left out.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Mutex;

use jni::sys::{jclass, jint, jlong, jmethodID, jobject, JNIEnv, JavaVM};

use crate::jni_internals::{jni_call, Jni};

/// A `java.lang.Thread` reference, as JVMTI names it.
#[allow(non_camel_case_types)]
type jthread = jobject;

/// One Java frame as captured: the method's jmethodID and the bytecode index (`-3` for a native
/// method, `-1` when ASGCT could not tell).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JavaFrame {
    pub method: usize,
    pub bci: i32,
}

/// Java frames kept per sample.
pub const MAX_JAVA_FRAMES: usize = 16;

/// The bytecode index ASGCT gives a native method's frame.
const NATIVE_METHOD: i32 = -3;
/// Methods named and remembered by [`resolve`]; beyond, new ones are named each time.
const MAX_CACHED: usize = 64 * 1024;

/// The largest local reference capacity HotSpot grants by default (`MaxJNILocalCapacity`).
const MAX_LOCAL_CAPACITY: jint = 65_536;

const JVMTI_VERSION_1_2: jint = 0x3001_0200;
const JNI_VERSION_1_6: jint = 0x0001_0006;
const JVMTI_ENABLE: jint = 1;
const JVMTI_DISABLE: jint = 0;
const EVENT_VM_DEATH: jint = 51;
const EVENT_CLASS_LOAD: jint = 55;
const EVENT_CLASS_PREPARE: jint = 56;

#[repr(C)]
#[derive(Clone, Copy)]
struct CallFrame {
    lineno: jint,
    method_id: jmethodID,
}

#[repr(C)]
struct CallTrace {
    env_id: *mut JNIEnv,
    num_frames: jint,
    frames: *mut CallFrame,
}

type AsyncGetCallTraceFn = unsafe extern "C" fn(*mut CallTrace, jint, *mut c_void);

// ---------------------------------------------------------------------------------------------
// The raw JVMTI interface: a `jvmtiEnv*` points at a pointer to the function table, whose slot
// n - 1 holds function n of the specification's numbering.

type Table = *const [*const c_void; 160];

#[repr(C)]
struct LineEntry {
    start_location: jlong,
    line_number: jint,
}

macro_rules! jvmti_fn {
    ($env:expr, $n:expr, $t:ty) => {{
        let env: *mut Table = $env;
        // SAFETY: `env` is the live jvmtiEnv this module obtained with GetEnv (never disposed
        // once stored); slot $n - 1 of its table is function $n of the JVMTI specification,
        // whose C signature is the one named here.
        unsafe {
            let table = *env;
            std::mem::transmute::<*const c_void, $t>((*table)[$n - 1])
        }
    }};
}

type SetEventNotificationModeFn = unsafe extern "C" fn(*mut Table, jint, jint, jthread, ...) -> jint;
type DeallocateFn = unsafe extern "system" fn(*mut Table, *mut u8) -> jint;
type GetClassSignatureFn = unsafe extern "system" fn(*mut Table, jclass, *mut *mut c_char, *mut *mut c_char) -> jint;
type GetSourceFileNameFn = unsafe extern "system" fn(*mut Table, jclass, *mut *mut c_char) -> jint;
type GetClassMethodsFn = unsafe extern "system" fn(*mut Table, jclass, *mut jint, *mut *mut jmethodID) -> jint;
type GetMethodNameFn =
    unsafe extern "system" fn(*mut Table, jmethodID, *mut *mut c_char, *mut *mut c_char, *mut *mut c_char) -> jint;
type GetMethodDeclaringClassFn = unsafe extern "system" fn(*mut Table, jmethodID, *mut jclass) -> jint;
type GetLineNumberTableFn = unsafe extern "system" fn(*mut Table, jmethodID, *mut jint, *mut *mut LineEntry) -> jint;
type GetLoadedClassesFn = unsafe extern "system" fn(*mut Table, *mut jint, *mut *mut jclass) -> jint;
type SetEventCallbacksFn = unsafe extern "system" fn(*mut Table, *const Callbacks, jint) -> jint;
type DisposeEnvironmentFn = unsafe extern "system" fn(*mut Table) -> jint;
type AddCapabilitiesFn = unsafe extern "system" fn(*mut Table, *const [u32; 4]) -> jint;

type ClassEventFn = extern "system" fn(*mut Table, *mut JNIEnv, jthread, jclass);
type VmDeathFn = extern "system" fn(*mut Table, *mut JNIEnv);

/// The head of `jvmtiEventCallbacks`, events 50 (VMInit) to 57 (VMStart); JVMTI copies as many
/// bytes as it is told and clears the rest.
#[repr(C)]
struct Callbacks {
    vm_init: *const c_void,
    vm_death: Option<VmDeathFn>,
    thread_start: *const c_void,
    thread_end: *const c_void,
    class_file_load_hook: *const c_void,
    class_load: Option<ClassEventFn>,
    class_prepare: Option<ClassEventFn>,
    vm_start: *const c_void,
}

/// `AsyncGetCallTrace` of this JVM, once found.
static ASGCT: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static VM: AtomicPtr<JavaVM> = AtomicPtr::new(std::ptr::null_mut());
static JVMTI: AtomicPtr<Table> = AtomicPtr::new(std::ptr::null_mut());
/// Whether [`capture`] walks: the events are on and the VM is not going away.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The VM posted its death: never walk again.
static DYING: AtomicBool = AtomicBool::new(false);
/// Serializes [`enable`] and [`disable`].
static SWITCH: Mutex<()> = Mutex::new(());
/// jmethodIDs already named; `None` for an id that no longer resolves (ids are never reused).
static METHODS: Mutex<Option<HashMap<usize, Option<Method>>>> = Mutex::new(None);

fn deallocate<T>(env: *mut Table, p: *mut T) {
    if !p.is_null() {
        let f = jvmti_fn!(env, 47, DeallocateFn);
        // SAFETY: `p` was allocated by this JVMTI env for a result and is freed once.
        unsafe { f(env, p.cast()) };
    }
}

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
// Enabling.

/// From a Java thread with a JNIEnv (a native call), once per start of the sampler: finds
/// `AsyncGetCallTrace`, takes this module's JVMTI environment on first use, turns the
/// `ClassLoad`/`ClassPrepare` events on and makes the jmethodIDs of every loaded class. Calling
/// it again while enabled makes ids for nothing new but is harmless.
pub fn enable(env: *mut JNIEnv) -> Result<(), String> {
    let _switch = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    if DYING.load(Ordering::Acquire) {
        return Err("the JVM is shutting down".into());
    }
    let jni = Jni::from_raw(env);
    if ASGCT.load(Ordering::Acquire).is_null() {
        ASGCT.store(find_asgct(env)?, Ordering::Release);
    }
    let jv = match JVMTI.load(Ordering::Acquire) {
        p if p.is_null() => take_jvmti(&jni)?,
        p => p,
    };
    set_events(jv, JVMTI_ENABLE)?;
    make_all_method_ids(jv, &jni);
    ARMED.store(!DYING.load(Ordering::Acquire), Ordering::Release);
    Ok(())
}

/// Stops [`capture`] and turns the events off again (the environment stays, without cost).
pub fn disable() {
    let _switch = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
    ARMED.store(false, Ordering::Release);
    if let Some(jv) = jvmti() {
        let _ = set_events(jv, JVMTI_DISABLE);
    }
}

fn jvmti() -> Option<*mut Table> {
    let p = JVMTI.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// HotSpot's `AsyncGetCallTrace`: from the global scope, else from the library that holds the
/// JNI functions (libjvm, when the launcher loaded it without `RTLD_GLOBAL`).
fn find_asgct(env: *mut JNIEnv) -> Result<*mut c_void, String> {
    // SAFETY: looks a symbol up in the global scope; the name is NUL-terminated.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"AsyncGetCallTrace".as_ptr()) };
    if !p.is_null() {
        return Ok(p);
    }
    // SAFETY: `env` is the JNIEnv of the current native call; its table's functions live in
    // the JVM's library.
    let jni_fn = unsafe { (**env).v1_2.GetVersion } as *const c_void;
    // SAFETY: `info` is written by dladdr; its file name points into the loader's own data.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::dladdr(jni_fn, &mut info) } != 0 && !info.dli_fname.is_null() {
        // SAFETY: RTLD_NOLOAD only takes a handle on a library already loaded (never unloaded:
        // it is the running JVM), by the name the loader itself gave.
        let handle = unsafe { libc::dlopen(info.dli_fname, libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if !handle.is_null() {
            // SAFETY: a symbol lookup in a live handle.
            let p = unsafe { libc::dlsym(handle, c"AsyncGetCallTrace".as_ptr()) };
            if !p.is_null() {
                return Ok(p);
            }
        }
    }
    Err("this JVM has no AsyncGetCallTrace (not HotSpot)".into())
}

/// A JVMTI environment of this module's own, with its callbacks and the capabilities to name
/// frames (source file, line numbers: missing ones only shorten the names).
fn take_jvmti(jni: &Jni) -> Result<*mut Table, String> {
    let mut vm: *mut JavaVM = std::ptr::null_mut();
    if jni_call!(jni, GetJavaVM, &mut vm) != 0 || vm.is_null() {
        return Err("no JavaVM".into());
    }
    let mut table: *mut c_void = std::ptr::null_mut();
    // SAFETY: `vm` is the live JavaVM; GetEnv writes a new jvmtiEnv* into `table`.
    let rc = unsafe { ((**vm).v1_4.GetEnv)(vm, &mut table, JVMTI_VERSION_1_2) };
    if rc != 0 || table.is_null() {
        return Err(format!("this JVM offers no JVMTI environment (GetEnv: {rc})"));
    }
    let jv: *mut Table = table.cast();
    // can_get_source_file_name (bit 11), can_get_line_numbers (bit 12).
    let caps: [u32; 4] = [(1 << 11) | (1 << 12), 0, 0, 0];
    let f = jvmti_fn!(jv, 142, AddCapabilitiesFn);
    // SAFETY: `caps` is a jvmtiCapabilities (128 bits) the call only reads.
    unsafe { f(jv, &caps) };
    let callbacks = Callbacks {
        vm_init: std::ptr::null(),
        vm_death: Some(on_vm_death),
        thread_start: std::ptr::null(),
        thread_end: std::ptr::null(),
        class_file_load_hook: std::ptr::null(),
        // An event is on only with a callback; this one has nothing to do.
        class_load: Some(on_class_load),
        class_prepare: Some(on_class_prepare),
        vm_start: std::ptr::null(),
    };
    let f = jvmti_fn!(jv, 122, SetEventCallbacksFn);
    // SAFETY: JVMTI copies `callbacks` (its size given) before returning.
    let rc = unsafe { f(jv, &callbacks, std::mem::size_of::<Callbacks>() as jint) };
    if rc != 0 {
        let f = jvmti_fn!(jv, 127, DisposeEnvironmentFn);
        // SAFETY: the environment was never published; nothing else uses it.
        unsafe { f(jv) };
        return Err(format!("JVMTI refused the class event callbacks (error {rc})"));
    }
    VM.store(vm, Ordering::Release);
    JVMTI.store(jv, Ordering::Release);
    Ok(jv)
}

fn set_events(jv: *mut Table, mode: jint) -> Result<(), String> {
    let f = jvmti_fn!(jv, 2, SetEventNotificationModeFn);
    for event in [EVENT_VM_DEATH, EVENT_CLASS_LOAD, EVENT_CLASS_PREPARE] {
        // SAFETY: a global (null thread) switch of an event this environment has a callback for.
        let rc = unsafe { f(jv, mode, event, std::ptr::null_mut()) };
        if rc != 0 && mode == JVMTI_ENABLE {
            return Err(format!("JVMTI refused the class events (event {event}, error {rc})"));
        }
    }
    Ok(())
}

/// Makes the jmethodIDs of a class's methods (errors, e.g. a class not prepared yet, leave it
/// to its `ClassPrepare` event).
fn make_method_ids(jv: *mut Table, class: jclass) {
    let mut n: jint = 0;
    let mut methods: *mut jmethodID = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 52, GetClassMethodsFn);
    // SAFETY: `class` is a live reference; the array is JVMTI-allocated and freed below.
    if unsafe { f(jv, class, &mut n, &mut methods) } == 0 {
        deallocate(jv, methods);
    }
}

fn make_all_method_ids(jv: *mut Table, jni: &Jni) {
    let mut n: jint = 0;
    let mut classes: *mut jclass = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 78, GetLoadedClassesFn);
    // SAFETY: the result is a JVMTI-allocated array of n local references, freed below.
    if unsafe { f(jv, &mut n, &mut classes) } != 0 || classes.is_null() {
        return;
    }
    // The n references already exist; saying so keeps -Xcheck:jni from warning about them
    // (JNI caps a declared capacity at 64k by default: past that it warns once, harmlessly).
    jni_call!(jni, EnsureLocalCapacity, n.min(MAX_LOCAL_CAPACITY));
    jni.clear();
    for i in 0..usize::try_from(n).unwrap_or(0) {
        // SAFETY: i < n entries.
        let class = unsafe { *classes.add(i) };
        make_method_ids(jv, class);
        jni.delete(class);
    }
    deallocate(jv, classes);
}

extern "system" fn on_class_load(_jv: *mut Table, _jni: *mut JNIEnv, _thread: jthread, _class: jclass) {}

extern "system" fn on_class_prepare(jv: *mut Table, _jni: *mut JNIEnv, _thread: jthread, class: jclass) {
    let _ = std::panic::catch_unwind(|| make_method_ids(jv, class));
}

extern "system" fn on_vm_death(_jv: *mut Table, _jni: *mut JNIEnv) {
    DYING.store(true, Ordering::Release);
    ARMED.store(false, Ordering::Release);
}

// ---------------------------------------------------------------------------------------------
// Capturing.

/// The calling thread's Java frames, innermost first, into `out`; returns how many (0: none,
/// not a Java thread, not enabled, or ASGCT could not walk). Safe inside a malloc hook on any
/// thread: no allocation, no lock, no JNI or JVMTI call that transitions the thread.
pub fn capture(out: &mut [JavaFrame; MAX_JAVA_FRAMES]) -> usize {
    if !ARMED.load(Ordering::Acquire) {
        return 0;
    }
    let (asgct, vm) = (ASGCT.load(Ordering::Acquire), VM.load(Ordering::Acquire));
    if asgct.is_null() || vm.is_null() {
        return 0;
    }
    let mut env: *mut c_void = std::ptr::null_mut();
    // SAFETY: `vm` is the process's JavaVM. GetEnv for a JNI version reads the current thread
    // from thread-local storage: no lock, allocation or transition; a thread the JVM does not
    // know gets JNI_EDETACHED.
    if unsafe { ((**vm).v1_4.GetEnv)(vm, &mut env, JNI_VERSION_1_6) } != 0 || env.is_null() {
        return 0;
    }
    let mut frames = [CallFrame { lineno: 0, method_id: std::ptr::null_mut() }; MAX_JAVA_FRAMES];
    let mut trace = CallTrace { env_id: env.cast(), num_frames: 0, frames: frames.as_mut_ptr() };
    // SAFETY: `asgct` is HotSpot's AsyncGetCallTrace (found by name in the running JVM).
    let asgct = unsafe { std::mem::transmute::<*mut c_void, AsyncGetCallTraceFn>(asgct) };
    // SAFETY: `trace` names this thread's own JNIEnv and a buffer of MAX_JAVA_FRAMES frames;
    // no ucontext: see the module doc.
    unsafe { asgct(&mut trace, MAX_JAVA_FRAMES as jint, std::ptr::null_mut()) };
    let n = usize::try_from(trace.num_frames).unwrap_or(0).min(MAX_JAVA_FRAMES);
    let mut kept = 0;
    for f in frames[..n].iter().filter(|f| !f.method_id.is_null()) {
        out[kept] = JavaFrame { method: f.method_id as usize, bci: f.lineno };
        kept += 1;
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Naming.

#[derive(Clone, Debug)]
struct Method {
    class: String,
    name: String,
    file: String,
    lines: Vec<(jlong, jint)>,
}

impl Method {
    fn line(&self, bci: i32) -> Option<jint> {
        if bci < 0 {
            return None;
        }
        let bci = jlong::from(bci);
        self.lines.iter().filter(|(start, _)| *start <= bci).max_by_key(|(start, _)| *start).map(|(_, l)| *l)
    }

    /// `com.acme.Cache.put(Cache.java:42)`, as a Java stack trace prints it.
    fn render(&self, bci: i32) -> String {
        let (class, name) = (&self.class, &self.name);
        if bci == NATIVE_METHOD {
            return format!("{class}.{name}(Native Method)");
        }
        match (self.line(bci), self.file.is_empty()) {
            (Some(l), false) => format!("{class}.{name}({}:{l})", self.file),
            (None, false) => format!("{class}.{name}({})", self.file),
            _ => format!("{class}.{name}"),
        }
    }
}

/// Names a jmethodID, or `None` when JVMTI no longer knows it (its class was unloaded).
fn method(jv: *mut Table, jni: &Jni, m: jmethodID) -> Option<Method> {
    let mut name: *mut c_char = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 64, GetMethodNameFn);
    // SAFETY: JVMTI checks the id and answers JVMTI_ERROR_INVALID_METHODID for a stale one;
    // the string is ours to free.
    if unsafe { f(jv, m, &mut name, std::ptr::null_mut(), std::ptr::null_mut()) } != 0 {
        return None;
    }
    let name = take_string(jv, name);
    let mut class: jclass = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 65, GetMethodDeclaringClassFn);
    // SAFETY: as above; `class` becomes a local reference, deleted below.
    if unsafe { f(jv, m, &mut class) } != 0 || class.is_null() {
        return None;
    }
    let mut sig: *mut c_char = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 48, GetClassSignatureFn);
    // SAFETY: `class` is a live local reference; the string is ours to free.
    let sig_rc = unsafe { f(jv, class, &mut sig, std::ptr::null_mut()) };
    let sig = take_string(jv, sig);
    let mut file: *mut c_char = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 50, GetSourceFileNameFn);
    // SAFETY: as above; a class without a SourceFile attribute answers an error and no string.
    let file = if unsafe { f(jv, class, &mut file) } == 0 { take_string(jv, file) } else { String::new() };
    jni.delete(class);
    if sig_rc != 0 {
        return None;
    }
    let mut lines = Vec::new();
    let mut n: jint = 0;
    let mut table: *mut LineEntry = std::ptr::null_mut();
    let f = jvmti_fn!(jv, 70, GetLineNumberTableFn);
    // SAFETY: `table` receives `n` entries JVMTI allocated, freed below; a native or abstract
    // method answers an error.
    if unsafe { f(jv, m, &mut n, &mut table) } == 0 && !table.is_null() {
        for i in 0..usize::try_from(n).unwrap_or(0) {
            // SAFETY: i < n entries.
            let e = unsafe { &*table.add(i) };
            lines.push((e.start_location, e.line_number));
        }
        deallocate(jv, table);
    }
    Some(Method { class: class_name(&sig), name, file, lines })
}

/// `Lcom/acme/Cache;` -> `com.acme.Cache`.
fn class_name(signature: &str) -> String {
    signature.strip_prefix('L').and_then(|s| s.strip_suffix(';')).unwrap_or(signature).replace('/', ".")
}

/// At snapshot time, from a Java thread in a native call: the frames as
/// `com.acme.Cache.put(Cache.java:42)` strings, innermost first. Frames whose method no longer
/// resolves are left out; nothing when [`enable`] never succeeded.
pub fn resolve(env: *mut JNIEnv, frames: &[JavaFrame]) -> Vec<String> {
    let Some(jv) = jvmti() else { return Vec::new() };
    let jni = Jni::from_raw(env);
    let mut guard = METHODS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    let mut out = Vec::with_capacity(frames.len());
    for f in frames.iter().filter(|f| f.method != 0) {
        let named = match cache.get(&f.method) {
            Some(m) => m.as_ref().map(|m| m.render(f.bci)),
            None => {
                let m = method(jv, &jni, f.method as jmethodID);
                let named = m.as_ref().map(|m| m.render(f.bci));
                if cache.len() < MAX_CACHED {
                    cache.insert(f.method, m);
                }
                named
            }
        };
        out.extend(named);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_put() -> Method {
        Method {
            class: "com.acme.Cache".into(),
            name: "put".into(),
            file: "Cache.java".into(),
            lines: vec![(0, 40), (5, 41), (12, 42)],
        }
    }

    #[test]
    fn a_frame_names_the_line_its_bytecode_index_falls_in() {
        let m = cache_put();
        assert_eq!(m.render(0), "com.acme.Cache.put(Cache.java:40)");
        assert_eq!(m.render(11), "com.acme.Cache.put(Cache.java:41)");
        assert_eq!(m.render(30), "com.acme.Cache.put(Cache.java:42)");
    }

    #[test]
    fn native_unknown_and_fileless_frames_read_as_java_prints_them() {
        let m = cache_put();
        assert_eq!(m.render(NATIVE_METHOD), "com.acme.Cache.put(Native Method)");
        assert_eq!(m.render(-1), "com.acme.Cache.put(Cache.java)");
        let bare = Method { file: String::new(), lines: Vec::new(), ..cache_put() };
        assert_eq!(bare.render(3), "com.acme.Cache.put");
    }

    #[test]
    fn class_signatures_become_dotted_names() {
        assert_eq!(class_name("Lcom/acme/Cache;"), "com.acme.Cache");
        assert_eq!(class_name("Lcom/acme/Cache$Entry;"), "com.acme.Cache$Entry");
        assert_eq!(class_name("odd"), "odd");
    }

    #[test]
    fn nothing_is_captured_or_resolved_before_enable() {
        let mut out = [JavaFrame::default(); MAX_JAVA_FRAMES];
        assert_eq!(capture(&mut out), 0);
        assert!(resolve(std::ptr::null_mut(), &[JavaFrame { method: 8, bci: 0 }]).is_empty());
    }
}
