//! The few JDK internals the agent reads, resolved and used here, behind natives that each do a
//! whole job and return counts, strings or the JDK's own public beans.
//!
//! The allow-list is [`MEMBERS`]: class, member name, JNI signature and shape of every field and
//! method this module touches, resolved with `FindClass`/`Get*ID` on first use (members a JDK
//! lacks stay unresolved, and the job that needs them says so). Java names a job by a small
//! number, never a member, an id or an object to read; every instance read or call checks first
//! that its receiver is an instance of the member's class (`IsInstanceOf`), so a wrong-typed
//! object never reaches a raw read. The one exception is a list's `next` read from an entry that
//! itself came from a `next` field: its declared type is the member's class, which the JVM
//! guarantees. What goes back to Java is what the JDK gives class-path code
//! anyway: numbers, diagnostic command output, a VM option's value, the platform management beans.
//!
//! Why JNI and not core reflection: JNI does no access check, so no JDK package has to be opened
//! to the agent (and through it to the class path); and from JDK 18 on every reflective use is
//! backed by method handles whose first use generates classes, which on JDK 25 leaves megabytes
//! of glibc heap behind in a JVM that uses no reflection of its own.
//!
//! The zip census copies the common Cleaner's list (and the Finalizer's) into a Java array while
//! it holds the list's lock, and classifies the copy after releasing it: the lock, which every
//! `new Inflater()` and `end()` takes, is held only for the copy.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use jni::objects::{JClass, JObject, JString};
use jni::sys::{jboolean, jclass, jint, jlong, jobject, jvalue};
use jni::{Env, EnvUnowned};

use super::jni_bridge::{install_panic_hook, ThrowMapped};
use crate::error::{Error, Result};

/// What a member of the allow-list is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Field,
    StaticField,
    Method,
    StaticMethod,
}

/// One allow-listed member of a JDK class.
struct Spec {
    class: &'static str,
    name: &'static str,
    sig: &'static str,
    shape: Shape,
}

const fn spec(class: &'static str, name: &'static str, sig: &'static str, shape: Shape) -> Spec {
    Spec { class, name, sig, shape }
}

/// Indices into [`MEMBERS`].
#[derive(Clone, Copy, Debug)]
enum M {
    CleanerFactoryCleaner,
    GetCleanerImpl,
    ActiveList,
    ListHead,
    NodeArr,
    NodeSize,
    NodeNext,
    PhantomCleanableList,
    CleanableNext,
    Action,
    InflaterAddress,
    DeflaterAddress,
    RefersTo,
    Referent,
    ReferenceQueue,
    FinalizerLock,
    Unfinalized,
    FinalizerNext,
    FinalizerQueue,
    FinalizerEnabled,
    InflaterZsRef,
    DeflaterZsRef,
    Arraycopy,
    IdentityHashCode,
    ProviderInit,
    DcmdBean,
    DcmdExecute,
    FlagGet,
    FlagVmOption,
    VmOptionValue,
    HelperRuntime,
    HelperMemory,
    HelperThreads,
    HelperBufferPoolBeans,
    VmBufferPools,
    HelperCreateBufferPool,
    ListToArray,
}

const IMPL: &str = "jdk/internal/ref/CleanerImpl";
const LIST: &str = "jdk/internal/ref/CleanerImpl$CleanableList";
const NODE: &str = "jdk/internal/ref/CleanerImpl$CleanableList$Node";
const CLEANABLE: &str = "jdk/internal/ref/PhantomCleanable";
const CLEANABLE_REF: &str = "jdk/internal/ref/CleanerImpl$PhantomCleanableRef";
const INFLATER_REF: &str = "java/util/zip/Inflater$InflaterZStreamRef";
const DEFLATER_REF: &str = "java/util/zip/Deflater$DeflaterZStreamRef";
const REFERENCE: &str = "java/lang/ref/Reference";
const FINALIZER: &str = "java/lang/ref/Finalizer";
const DCMD: &str = "com/sun/management/internal/DiagnosticCommandImpl";
const FLAG: &str = "com/sun/management/internal/Flag";
const HELPER: &str = "sun/management/ManagementFactoryHelper";

use Shape::{Field, Method, StaticField, StaticMethod};

/// The allow-list, in the order of [`M`].
const MEMBERS: [Spec; 37] = [
    spec("jdk/internal/ref/CleanerFactory", "cleaner", "()Ljava/lang/ref/Cleaner;", StaticMethod),
    spec(IMPL, "getCleanerImpl", "(Ljava/lang/ref/Cleaner;)Ljdk/internal/ref/CleanerImpl;", StaticMethod),
    spec(IMPL, "activeList", "Ljdk/internal/ref/CleanerImpl$CleanableList;", Field),
    spec(LIST, "head", "Ljdk/internal/ref/CleanerImpl$CleanableList$Node;", Field),
    spec(NODE, "arr", "[Ljdk/internal/ref/PhantomCleanable;", Field),
    spec(NODE, "size", "I", Field),
    spec(NODE, "next", "Ljdk/internal/ref/CleanerImpl$CleanableList$Node;", Field),
    spec(IMPL, "phantomCleanableList", "Ljdk/internal/ref/PhantomCleanable;", Field),
    spec(CLEANABLE, "next", "Ljdk/internal/ref/PhantomCleanable;", Field),
    spec(CLEANABLE_REF, "action", "Ljava/lang/Runnable;", Field),
    spec(INFLATER_REF, "address", "J", Field),
    spec(DEFLATER_REF, "address", "J", Field),
    spec(REFERENCE, "refersTo", "(Ljava/lang/Object;)Z", Method),
    spec(REFERENCE, "referent", "Ljava/lang/Object;", Field),
    spec(REFERENCE, "queue", "Ljava/lang/ref/ReferenceQueue;", Field),
    spec(FINALIZER, "lock", "Ljava/lang/Object;", StaticField),
    spec(FINALIZER, "unfinalized", "Ljava/lang/ref/Finalizer;", StaticField),
    spec(FINALIZER, "next", "Ljava/lang/ref/Finalizer;", Field),
    spec(FINALIZER, "queue", "Ljava/lang/ref/ReferenceQueue;", StaticField),
    spec(FINALIZER, "ENABLED", "Z", StaticField),
    spec("java/util/zip/Inflater", "zsRef", "Ljava/util/zip/Inflater$InflaterZStreamRef;", Field),
    spec("java/util/zip/Deflater", "zsRef", "Ljava/util/zip/Deflater$DeflaterZStreamRef;", Field),
    spec("java/lang/System", "arraycopy", "(Ljava/lang/Object;ILjava/lang/Object;II)V", StaticMethod),
    spec("java/lang/System", "identityHashCode", "(Ljava/lang/Object;)I", StaticMethod),
    // Never read: looking it up initializes the provider, which loads the library (management_ext)
    // that the commands' and flags' natives live in, as ManagementFactory would.
    spec(
        "com/sun/management/internal/PlatformMBeanProviderImpl",
        "DIAGNOSTIC_COMMAND_MBEAN_NAME",
        "Ljava/lang/String;",
        StaticField,
    ),
    spec(DCMD, "getDiagnosticCommandMBean", "()Lcom/sun/management/DiagnosticCommandMBean;", StaticMethod),
    spec(DCMD, "executeDiagnosticCommand", "(Ljava/lang/String;)Ljava/lang/String;", Method),
    spec(FLAG, "getFlag", "(Ljava/lang/String;)Lcom/sun/management/internal/Flag;", StaticMethod),
    spec(FLAG, "getVMOption", "()Lcom/sun/management/VMOption;", Method),
    spec("com/sun/management/VMOption", "getValue", "()Ljava/lang/String;", Method),
    spec(HELPER, "getRuntimeMXBean", "()Ljava/lang/management/RuntimeMXBean;", StaticMethod),
    spec(HELPER, "getMemoryMXBean", "()Ljava/lang/management/MemoryMXBean;", StaticMethod),
    spec(HELPER, "getThreadMXBean", "()Ljava/lang/management/ThreadMXBean;", StaticMethod),
    spec(HELPER, "getBufferPoolMXBeans", "()Ljava/util/List;", StaticMethod),
    spec("jdk/internal/misc/VM", "getBufferPools", "()Ljava/util/List;", StaticMethod),
    spec(
        HELPER,
        "createBufferPoolMXBean",
        "(Ljdk/internal/misc/VM$BufferPool;)Ljava/lang/management/BufferPoolMXBean;",
        StaticMethod,
    ),
    spec("java/util/List", "toArray", "()[Ljava/lang/Object;", Method),
];

/// The members each job resolves together (resolving initializes their classes, so a job
/// resolves only its own).
const ZIP: &[M] = &[
    M::CleanerFactoryCleaner,
    M::GetCleanerImpl,
    M::ActiveList,
    M::ListHead,
    M::NodeArr,
    M::NodeSize,
    M::NodeNext,
    M::PhantomCleanableList,
    M::CleanableNext,
    M::Action,
    M::InflaterAddress,
    M::DeflaterAddress,
    M::RefersTo,
    M::Referent,
    M::ReferenceQueue,
    M::FinalizerLock,
    M::Unfinalized,
    M::FinalizerNext,
    M::FinalizerQueue,
    M::FinalizerEnabled,
    M::InflaterZsRef,
    M::DeflaterZsRef,
    M::Arraycopy,
    M::IdentityHashCode,
];
const DCMDS: &[M] = &[M::ProviderInit, M::DcmdBean, M::DcmdExecute];
const FLAGS: &[M] = &[M::ProviderInit, M::FlagGet, M::FlagVmOption, M::VmOptionValue];
const BEANS: &[M] = &[
    M::HelperRuntime,
    M::HelperMemory,
    M::HelperThreads,
    M::HelperBufferPoolBeans,
    M::VmBufferPools,
    M::HelperCreateBufferPool,
    M::ListToArray,
];

/// A resolved member: its class (a global reference, never freed: JDK classes are never
/// unloaded) and its JNI id.
#[derive(Clone, Copy)]
struct Resolved {
    class: jclass,
    id: *mut std::ffi::c_void,
}

/// One job's members, by [`M`] index; `None` where this JDK lacks the member.
struct Table {
    members: [Option<Resolved>; MEMBERS.len()],
    /// Classes the jobs test receivers against without reading a member of them.
    classes: HashMap<&'static str, jclass>,
    /// The common Cleaner's list (global references: it is made once and never replaced), JDK
    /// 24+ (`activeList`, its lock) or before (`phantomCleanableList`, head and lock).
    active_list: Option<jobject>,
    linked_head: Option<jobject>,
    /// Why the Cleaner's list was not found.
    cleaner_problem: Option<String>,
}

// SAFETY: global references and JNI ids are valid on every thread of the JVM; the table is only
// read after it is built.
unsafe impl Send for Table {}
// SAFETY: as above; nothing in a Table is mutated after construction.
unsafe impl Sync for Table {}

impl Table {
    fn get(&self, m: M) -> Result<Resolved> {
        self.members[m as usize].ok_or_else(|| {
            let s = &MEMBERS[m as usize];
            Error::Unsupported(format!("this JDK has no {}.{} {}", s.class.replace('/', "."), s.name, s.sig))
        })
    }

    fn has(&self, m: M) -> bool {
        self.members[m as usize].is_some()
    }

    fn class(&self, name: &str) -> Result<jclass> {
        self.classes
            .get(name)
            .copied()
            .ok_or_else(|| Error::Unsupported(format!("this JDK has no {}", name.replace('/', "."))))
    }
}

/// The raw interface of the current native call: every JNI function this module (and the call
/// sites' hooks) uses, each checked for a pending exception where the function can throw.
pub(crate) struct Jni {
    pub(crate) e: *mut jni::sys::JNIEnv,
}

/// Calls one JNI function of this thread's interface.
macro_rules! jni_call {
    ($j:expr, $f:ident $(, $a:expr)*) => {{
        let e = $j.e;
        // SAFETY: `e` is the JNIEnv of the current native call on this thread (a `Jni` is made
        // only from the `Env` or the raw JNIEnv of a call and never outlives it); every reference passed is a live
        // local or global reference, every id was resolved from the class whose instance (checked
        // with IsInstanceOf by the callers) or class it is used with, and no exception is pending
        // (the callers check after every function that can throw).
        unsafe { ((**e).v1_2.$f)(e $(, $a)*) }
    }};
}
pub(crate) use jni_call;

impl Jni {
    fn of(env: &Env<'_>) -> Jni {
        Jni { e: env.get_raw() }
    }

    /// The interface of a native method bound by hand (the call sites' hooks), from the JNIEnv
    /// the JVM passed to it.
    pub(crate) fn from_raw(e: *mut jni::sys::JNIEnv) -> Jni {
        Jni { e }
    }

    fn pending(&self) -> bool {
        jni_call!(self, ExceptionCheck)
    }

    /// Fails when a Java exception is pending; it then reaches the Java caller as it is.
    fn check(&self) -> Result<()> {
        if self.pending() {
            return Err(Error::Jni(jni::errors::Error::JavaException));
        }
        Ok(())
    }

    /// Clears a pending exception: for lookups whose failure only means "not on this JDK".
    pub(crate) fn clear(&self) -> bool {
        let was = self.pending();
        if was {
            jni_call!(self, ExceptionClear);
        }
        was
    }

    fn find_class(&self, name: &str) -> Option<jclass> {
        let c = CString::new(name).ok()?;
        let local = jni_call!(self, FindClass, c.as_ptr());
        if self.clear() || local.is_null() {
            return None;
        }
        let global = jni_call!(self, NewGlobalRef, local);
        self.delete(local);
        (!global.is_null()).then_some(global)
    }

    fn member_id(&self, class: jclass, s: &Spec) -> Option<*mut std::ffi::c_void> {
        let name = CString::new(s.name).ok()?;
        let sig = CString::new(s.sig).ok()?;
        let (n, g) = (name.as_ptr(), sig.as_ptr());
        let id: *mut std::ffi::c_void = match s.shape {
            Shape::Field => jni_call!(self, GetFieldID, class, n, g).cast(),
            Shape::StaticField => jni_call!(self, GetStaticFieldID, class, n, g).cast(),
            Shape::Method => jni_call!(self, GetMethodID, class, n, g).cast(),
            Shape::StaticMethod => jni_call!(self, GetStaticMethodID, class, n, g).cast(),
        };
        if self.clear() || id.is_null() {
            return None;
        }
        Some(id)
    }

    pub(crate) fn delete(&self, local: jobject) {
        if !local.is_null() {
            jni_call!(self, DeleteLocalRef, local);
        }
    }

    fn global(&self, local: jobject) -> Result<jobject> {
        let g = jni_call!(self, NewGlobalRef, local);
        if g.is_null() {
            return Err(Error::invalid("no global reference (out of memory)"));
        }
        Ok(g)
    }

    fn is_instance(&self, obj: jobject, class: jclass) -> bool {
        !obj.is_null() && jni_call!(self, IsInstanceOf, obj, class)
    }

    fn same(&self, a: jobject, b: jobject) -> bool {
        jni_call!(self, IsSameObject, a, b)
    }

    /// `obj` when it is an instance of `m`'s class; the check every instance use goes through.
    fn receiver(&self, obj: jobject, m: Resolved) -> Result<jobject> {
        if !self.is_instance(obj, m.class) {
            return Err(Error::invalid("the object is not of the member's class"));
        }
        Ok(obj)
    }

    fn object_field(&self, obj: jobject, m: Resolved) -> Result<jobject> {
        let o = self.receiver(obj, m)?;
        Ok(jni_call!(self, GetObjectField, o, m.id.cast()))
    }

    /// A field of an object that came from a field whose declared type is `m`'s class (or a
    /// subclass): the JVM's type safety stands in for the IsInstanceOf check.
    fn typed_object_field(&self, obj: jobject, m: Resolved) -> jobject {
        jni_call!(self, GetObjectField, obj, m.id.cast())
    }

    fn long_field(&self, obj: jobject, m: Resolved) -> Result<jlong> {
        let o = self.receiver(obj, m)?;
        Ok(jni_call!(self, GetLongField, o, m.id.cast()))
    }

    fn int_field(&self, obj: jobject, m: Resolved) -> Result<jint> {
        let o = self.receiver(obj, m)?;
        Ok(jni_call!(self, GetIntField, o, m.id.cast()))
    }

    fn static_object(&self, m: Resolved) -> jobject {
        jni_call!(self, GetStaticObjectField, m.class, m.id.cast())
    }

    fn static_boolean(&self, m: Resolved) -> jboolean {
        jni_call!(self, GetStaticBooleanField, m.class, m.id.cast())
    }

    fn call_static_object(&self, m: Resolved, args: &[jvalue]) -> Result<jobject> {
        let r = jni_call!(self, CallStaticObjectMethodA, m.class, m.id.cast(), args.as_ptr());
        self.check()?;
        Ok(r)
    }

    fn call_object(&self, obj: jobject, m: Resolved, args: &[jvalue]) -> Result<jobject> {
        let o = self.receiver(obj, m)?;
        let r = jni_call!(self, CallObjectMethodA, o, m.id.cast(), args.as_ptr());
        self.check()?;
        Ok(r)
    }

    fn call_boolean(&self, obj: jobject, m: Resolved, args: &[jvalue]) -> Result<bool> {
        let o = self.receiver(obj, m)?;
        let r = jni_call!(self, CallBooleanMethodA, o, m.id.cast(), args.as_ptr());
        self.check()?;
        Ok(r)
    }

    fn call_static_int(&self, m: Resolved, args: &[jvalue]) -> Result<jint> {
        let r = jni_call!(self, CallStaticIntMethodA, m.class, m.id.cast(), args.as_ptr());
        self.check()?;
        Ok(r)
    }

    fn call_static_void(&self, m: Resolved, args: &[jvalue]) -> Result<()> {
        jni_call!(self, CallStaticVoidMethodA, m.class, m.id.cast(), args.as_ptr());
        self.check()
    }

    fn new_object_array(&self, len: usize, element: jclass) -> Result<jobject> {
        let n = jint::try_from(len).map_err(|_| Error::invalid("array too long"))?;
        let a = jni_call!(self, NewObjectArray, n, element, std::ptr::null_mut());
        self.check()?;
        Ok(a)
    }

    fn array_len(&self, a: jobject) -> usize {
        usize::try_from(jni_call!(self, GetArrayLength, a)).unwrap_or(0)
    }

    /// Element `i` of an array this module made (or checked) and whose length it knows.
    fn element(&self, a: jobject, i: usize) -> Result<jobject> {
        let i = jint::try_from(i).map_err(|_| Error::invalid("index too large"))?;
        let x = jni_call!(self, GetObjectArrayElement, a, i);
        self.check()?;
        Ok(x)
    }

    fn set_element(&self, a: jobject, i: usize, x: jobject) -> Result<()> {
        let i = jint::try_from(i).map_err(|_| Error::invalid("index too large"))?;
        jni_call!(self, SetObjectArrayElement, a, i, x);
        self.check()
    }

    fn push_frame(&self, capacity: jint) -> Result<()> {
        if jni_call!(self, PushLocalFrame, capacity) != 0 {
            self.check()?;
            return Err(Error::invalid("no local frame (out of memory)"));
        }
        Ok(())
    }

    fn pop_frame(&self, keep: jobject) -> jobject {
        jni_call!(self, PopLocalFrame, keep)
    }

    fn string(&self, s: &str) -> Result<jobject> {
        let c = CString::new(s).map_err(|_| Error::invalid("a NUL in the string"))?;
        let r = jni_call!(self, NewStringUTF, c.as_ptr());
        self.check()?;
        Ok(r)
    }

    fn long_array(&self, values: &[jlong]) -> Result<jobject> {
        let n = jint::try_from(values.len()).map_err(|_| Error::invalid("array too long"))?;
        let a = jni_call!(self, NewLongArray, n);
        self.check()?;
        jni_call!(self, SetLongArrayRegion, a, 0, n, values.as_ptr());
        self.check()?;
        Ok(a)
    }
}

/// Holds an object's monitor (JNI `MonitorEnter`, the monitor `synchronized` takes) until dropped.
struct Monitor<'a> {
    jni: &'a Jni,
    obj: jobject,
}

impl<'a> Monitor<'a> {
    fn enter(jni: &'a Jni, obj: jobject) -> Result<Monitor<'a>> {
        if jni_call!(jni, MonitorEnter, obj) != 0 {
            jni.check()?;
            return Err(Error::invalid("MonitorEnter failed"));
        }
        Ok(Monitor { jni, obj })
    }
}

impl Drop for Monitor<'_> {
    fn drop(&mut self) {
        // MonitorExit must run even with an exception pending (JNI allows it then).
        jni_call!(self.jni, MonitorExit, self.obj);
    }
}

/// Resolves `members` of the allow-list, and the classes in `classes`.
fn resolve(jni: &Jni, members: &[M], classes: &[&'static str]) -> Table {
    let mut class_refs: HashMap<&'static str, jclass> = HashMap::new();
    let mut t = Table {
        members: [None; MEMBERS.len()],
        classes: HashMap::new(),
        active_list: None,
        linked_head: None,
        cleaner_problem: None,
    };
    let mut class_of = |name: &'static str| -> Option<jclass> {
        if let Some(c) = class_refs.get(name) {
            return Some(*c);
        }
        let c = jni.find_class(name)?;
        class_refs.insert(name, c);
        Some(c)
    };
    for &m in members {
        let s = &MEMBERS[m as usize];
        if let Some(class) = class_of(s.class) {
            t.members[m as usize] = jni.member_id(class, s).map(|id| Resolved { class, id });
        }
    }
    for &name in classes {
        if let Some(c) = class_of(name) {
            t.classes.insert(name, c);
        }
    }
    t
}

type Job = std::result::Result<Table, String>;

static ZIP_TABLE: OnceLock<Job> = OnceLock::new();
static DCMD_TABLE: OnceLock<Job> = OnceLock::new();
static FLAG_TABLE: OnceLock<Job> = OnceLock::new();
static BEANS_TABLE: OnceLock<Job> = OnceLock::new();

fn table<'t>(cell: &'t OnceLock<Job>, jni: &Jni, build: impl FnOnce(&Jni) -> Result<Table>) -> Result<&'t Table> {
    let job = cell.get_or_init(|| build(jni).map_err(|e| e.to_string()));
    // A Java exception raised while building (an initializer that failed) is said in the message.
    jni.clear();
    job.as_ref().map_err(|m| Error::Unsupported(m.clone()))
}

// ---------------------------------------------------------------------------------------------
// The zip census.

/// Which parts [`census`] counts (Java's `parts` bits).
const PART_CLEANER: jint = 1;
const PART_FINALIZER: jint = 2;

/// The longest a census holds either list's lock, whatever Java asks.
const MAX_BUDGET_NS: jlong = 200_000_000;

/// Slots of the array a census returns: per part, 8 numbers.
const SLOT_STATE: usize = 0;
const SLOT_COUNTS: usize = 1; // inflaters alive, pending, deflaters alive, pending
const SLOT_SEEN: usize = 5;
const SLOT_TRUNCATED: usize = 6;
const SLOT_LOCK_NS: usize = 7;
const PART_SLOTS: usize = 8;

/// A part's state in slot 0: counted, or finalization disabled (`--finalization=disabled`).
const STATE_READ: jlong = 1;
const STATE_DISABLED: jlong = 2;

fn zip_table(jni: &Jni) -> Result<&'static Table> {
    table(&ZIP_TABLE, jni, |jni| {
        let mut t = resolve(
            jni,
            ZIP,
            &[CLEANABLE_REF, INFLATER_REF, DEFLATER_REF, "java/util/zip/Inflater", "java/util/zip/Deflater", "java/lang/Object"],
        );
        jni.push_frame(8)?;
        let found = find_cleaner_list(jni, &mut t);
        jni.pop_frame(std::ptr::null_mut());
        if let Err(e) = found {
            jni.clear();
            t.cleaner_problem = Some(e.to_string());
        }
        Ok(t)
    })
}

/// The common Cleaner's list, kept in `t`.
fn find_cleaner_list(jni: &Jni, t: &mut Table) -> Result<()> {
    let c = jni.call_static_object(t.get(M::CleanerFactoryCleaner)?, &[])?;
    let imp = jni.call_static_object(t.get(M::GetCleanerImpl)?, &[jvalue { l: c }])?;
    if imp.is_null() {
        return Err(Error::Unsupported("the common Cleaner has no CleanerImpl".into()));
    }
    let active = t.get(M::ActiveList);
    let member = match active {
        Ok(list) => list,
        Err(_) => t.get(M::PhantomCleanableList)?,
    };
    let list = jni.object_field(imp, member)?;
    if list.is_null() {
        return Err(Error::Unsupported("the common Cleaner's list is null".into()));
    }
    let g = jni.global(list)?;
    if active.is_ok() {
        t.active_list = Some(g);
    } else {
        t.linked_head = Some(g);
    }
    Ok(())
}

/// Whether the Cleaner part can run on this JDK; why not otherwise.
fn cleaner_ready(t: &Table) -> Result<()> {
    if let Some(p) = &t.cleaner_problem {
        return Err(Error::Unsupported(p.clone()));
    }
    for m in [M::Action, M::InflaterAddress, M::DeflaterAddress, M::Arraycopy] {
        t.get(m)?;
    }
    if !t.has(M::RefersTo) {
        t.get(M::Referent)?;
    }
    if t.active_list.is_some() {
        for m in [M::ListHead, M::NodeArr, M::NodeSize, M::NodeNext] {
            t.get(m)?;
        }
    } else if t.linked_head.is_some() {
        t.get(M::CleanableNext)?;
    } else {
        return Err(Error::Unsupported("the common Cleaner's list was not found".into()));
    }
    for c in [CLEANABLE_REF, INFLATER_REF, DEFLATER_REF, "java/lang/Object"] {
        t.class(c)?;
    }
    Ok(())
}

fn finalizer_ready(t: &Table) -> Result<()> {
    for m in [
        M::FinalizerLock,
        M::Unfinalized,
        M::FinalizerNext,
        M::FinalizerQueue,
        M::Referent,
        M::ReferenceQueue,
        M::InflaterZsRef,
        M::DeflaterZsRef,
        M::InflaterAddress,
        M::DeflaterAddress,
        M::Arraycopy,
        M::IdentityHashCode,
    ] {
        t.get(m)?;
    }
    for c in ["java/util/zip/Inflater", "java/util/zip/Deflater", "java/lang/Object"] {
        t.class(c)?;
    }
    Ok(())
}

/// A copy of a list, made under its lock: an `Object[]` and how many of its slots are used.
struct Snapshot {
    array: jobject,
    len: usize,
    truncated: bool,
    lock_ns: jlong,
}

/// Grows a snapshot array by doubling (System.arraycopy into a new one).
fn grow(jni: &Jni, t: &Table, a: jobject, len: usize) -> Result<jobject> {
    let b = jni.new_object_array(len.saturating_mul(2).max(1024), t.class("java/lang/Object")?)?;
    copy(jni, t, a, b, 0, len)?;
    jni.delete(a);
    Ok(b)
}

fn copy(jni: &Jni, t: &Table, from: jobject, to: jobject, at: usize, len: usize) -> Result<()> {
    let (at, len) = (
        jint::try_from(at).map_err(|_| Error::invalid("too many entries"))?,
        jint::try_from(len).map_err(|_| Error::invalid("too many entries"))?,
    );
    jni.call_static_void(
        t.get(M::Arraycopy)?,
        &[jvalue { l: from }, jvalue { i: 0 }, jvalue { l: to }, jvalue { i: at }, jvalue { i: len }],
    )
}

/// How long each linked list was at its last copy.
static CLEANER_LEN: AtomicUsize = AtomicUsize::new(0);
static FINALIZER_LEN: AtomicUsize = AtomicUsize::new(0);

/// The longest one hold of a linked list's lock lasts: the copy lets waiting threads in between.
const HOLD_SLICE: std::time::Duration = std::time::Duration::from_micros(500);

/// Copies a linked list (from `first()`, read under `lock`, to null or back at `stop`) into a new
/// array, until `limit` entries or the deadline, holding `lock` in slices of [`HOLD_SLICE`].
/// Between slices the entry reached stays valid: inserts go in at the head, behind the copy,
/// and a removed entry's `next` points at itself, which ends the copy (truncated). Entries
/// after the first come from the list's own `next` field, whose declared type is the member's
/// class: the JVM guarantees their class, so they are read without another IsInstanceOf.
#[allow(clippy::too_many_arguments)]
fn copy_linked(
    jni: &Jni,
    t: &Table,
    lock: jobject,
    first: &dyn Fn() -> Result<jobject>,
    stop: jobject,
    next: Resolved,
    limit: usize,
    deadline: Instant,
    last_len: &AtomicUsize,
) -> Result<Snapshot> {
    // Sized from the last copy, outside the lock: growing it under the lock allocates there, and
    // a GC that allocation starts would lengthen the hold.
    let hint = last_len.load(Ordering::Relaxed);
    let mut cap = hint.saturating_add(hint / 4).saturating_add(4096).min(limit.saturating_add(256));
    let mut array = jni.new_object_array(cap, t.class("java/lang/Object")?)?;
    let mut len = 0;
    let mut truncated = false;
    let mut guard = Monitor::enter(jni, lock)?;
    let mut hold = Instant::now();
    let mut longest = 0;
    let mut e = first()?;
    if !e.is_null() {
        jni.receiver(e, next)?;
    }
    while !e.is_null() && (stop.is_null() || !jni.same(e, stop)) {
        if len == cap {
            array = grow(jni, t, array, len)?;
            cap = jni.array_len(array);
        }
        if (len & 255) == 255 {
            if len >= limit || Instant::now() > deadline {
                truncated = true;
                break;
            }
            if hold.elapsed() > HOLD_SLICE {
                longest = longest.max(elapsed_ns(hold));
                drop(guard);
                std::thread::yield_now();
                guard = Monitor::enter(jni, lock)?;
                hold = Instant::now();
                let n = jni.typed_object_field(e, next);
                let removed = jni.same(n, e);
                jni.delete(n);
                if removed {
                    truncated = true;
                    break;
                }
            }
        }
        jni.set_element(array, len, e)?;
        len += 1;
        let n = jni.typed_object_field(e, next);
        jni.delete(e);
        e = n;
    }
    longest = longest.max(elapsed_ns(hold));
    drop(guard);
    jni.delete(e);
    last_len.store(len, Ordering::Relaxed);
    Ok(Snapshot { array, len, truncated, lock_ns: longest })
}

/// Copies the Cleaner's list under its lock.
fn copy_cleaner(jni: &Jni, t: &Table, limit: usize, deadline: Instant) -> Result<Snapshot> {
    if let Some(list) = t.active_list {
        let (head, arr, size, next) = (t.get(M::ListHead)?, t.get(M::NodeArr)?, t.get(M::NodeSize)?, t.get(M::NodeNext)?);
        let guard = Monitor::enter(jni, list)?;
        let start = Instant::now();
        // Nodes change only under this lock: count first, then copy each node's array.
        let mut total = 0usize;
        let mut node = jni.object_field(list, head)?;
        while !node.is_null() {
            total += usize::try_from(jni.int_field(node, size)?).unwrap_or(0);
            let n = jni.object_field(node, next)?;
            jni.delete(node);
            node = n;
        }
        let want = total.min(limit);
        let array = jni.new_object_array(want, t.class("java/lang/Object")?)?;
        let mut at = 0;
        let mut node = jni.object_field(list, head)?;
        while !node.is_null() && at < want {
            let a = jni.object_field(node, arr)?;
            let n = usize::try_from(jni.int_field(node, size)?).unwrap_or(0).min(jni.array_len(a)).min(want - at);
            if n > 0 {
                copy(jni, t, a, array, at, n)?;
            }
            at += n;
            jni.delete(a);
            let next_node = jni.object_field(node, next)?;
            jni.delete(node);
            node = next_node;
        }
        jni.delete(node);
        let lock_ns = elapsed_ns(start);
        drop(guard);
        return Ok(Snapshot { array, len: at, truncated: total > want, lock_ns });
    }
    let head = t.linked_head.ok_or_else(|| Error::Unsupported("the common Cleaner's list was not found".into()))?;
    let next = t.get(M::CleanableNext)?;
    copy_linked(jni, t, head, &|| jni.object_field(head, next), head, next, limit, deadline, &CLEANER_LEN)
}

fn elapsed_ns(since: Instant) -> jlong {
    jlong::try_from(since.elapsed().as_nanos()).unwrap_or(jlong::MAX)
}

/// The identity hashes of the streams the Finalizer part counted, to leave them out of the
/// Cleaner's counts: each hash to the indices of `array` holding a stream with it.
struct Counted {
    array: jobject,
    by_hash: HashMap<jint, Vec<usize>>,
}

impl Counted {
    fn contains(&self, jni: &Jni, t: &Table, zs: jobject) -> Result<bool> {
        if self.by_hash.is_empty() {
            return Ok(false);
        }
        let h = jni.call_static_int(t.get(M::IdentityHashCode)?, &[jvalue { l: zs }])?;
        self.contains_hashed(jni, h, zs)
    }

    fn contains_hashed(&self, jni: &Jni, h: jint, zs: jobject) -> Result<bool> {
        for &i in self.by_hash.get(&h).map(Vec::as_slice).unwrap_or(&[]) {
            let x = jni.element(self.array, i)?;
            let same = jni.same(x, zs);
            jni.delete(x);
            if same {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// One part's numbers.
#[derive(Default)]
struct Tally {
    counts: [jlong; 4],
    seen: jlong,
    /// Alive and pending by call site, for the streams whose making was recorded.
    by_site: HashMap<u32, crate::sites::ZipCount>,
}

impl Tally {
    /// Counts one unended stream; `zs` is its ZStreamRef, tagged with its site when recorded.
    fn add(&mut self, inflater: bool, pending: bool, zs: jobject) {
        self.counts[usize::from(!inflater) * 2 + usize::from(pending)] += 1;
        // SAFETY: `zs` is a live local reference of this native call.
        if let Some(tag) = unsafe { crate::sites::tag(zs) } {
            let Some((_, site)) = crate::sites::decode(tag) else { return };
            let w = crate::sites::weight(tag);
            let e = self.by_site.entry(site).or_default();
            if pending {
                e.pending += w;
            } else {
                e.alive += w;
            }
            e.estimated |= w > 1;
        }
    }
}

/// Classifies the Cleaner's copied entries.
fn tally_cleaner(jni: &Jni, t: &Table, s: &Snapshot, skip: &Counted) -> Result<Tally> {
    let (cref, iref, dref) = (t.class(CLEANABLE_REF)?, t.class(INFLATER_REF)?, t.class(DEFLATER_REF)?);
    let action = t.get(M::Action)?;
    let (iaddr, daddr) = (t.get(M::InflaterAddress)?, t.get(M::DeflaterAddress)?);
    let refers_to = t.get(M::RefersTo).ok();
    let mut tally = Tally::default();
    for i in 0..s.len {
        let c = jni.element(s.array, i)?;
        tally.seen += 1;
        if jni.is_instance(c, cref) {
            let a = jni.object_field(c, action)?;
            let inflater = jni.is_instance(a, iref);
            if inflater || jni.is_instance(a, dref) {
                // Racy by design: end() on another thread may zero it now; it is then ended.
                let address = jni.long_field(a, if inflater { iaddr } else { daddr })?;
                if address != 0 && !skip.contains(jni, t, a)? {
                    tally.add(inflater, cleared(jni, t, c, refers_to)?, a);
                }
            }
            jni.delete(a);
        }
        jni.delete(c);
    }
    Ok(tally)
}

/// Whether a reference's referent has been cleared by the GC (it then awaits its cleanup).
fn cleared(jni: &Jni, t: &Table, reference: jobject, refers_to: Option<Resolved>) -> Result<bool> {
    if let Some(m) = refers_to {
        return jni.call_boolean(reference, m, &[jvalue { l: std::ptr::null_mut() }]);
    }
    let r = jni.object_field(reference, t.get(M::Referent)?)?;
    let gone = r.is_null();
    jni.delete(r);
    Ok(gone)
}

/// Classifies the Finalizer's copied entries; collects the streams it counted into `counted`.
fn tally_finalizer(jni: &Jni, t: &Table, s: &Snapshot, queue: jobject) -> Result<(Tally, Counted)> {
    let (inf, def) = (t.class("java/util/zip/Inflater")?, t.class("java/util/zip/Deflater")?);
    let (iref, dref) = (t.class(INFLATER_REF)?, t.class(DEFLATER_REF)?);
    let (referent, rqueue) = (t.get(M::Referent)?, t.get(M::ReferenceQueue)?);
    let (izs, dzs) = (t.get(M::InflaterZsRef)?, t.get(M::DeflaterZsRef)?);
    let (iaddr, daddr) = (t.get(M::InflaterAddress)?, t.get(M::DeflaterAddress)?);
    let hash = t.get(M::IdentityHashCode)?;
    let mut tally = Tally::default();
    let mut counted = Counted { array: std::ptr::null_mut(), by_hash: HashMap::new() };
    let mut n = 0usize;
    for i in 0..s.len {
        let f = jni.element(s.array, i)?;
        tally.seen += 1;
        let r = jni.object_field(f, referent)?;
        let (zs, inflater) = if jni.is_instance(r, inf) {
            (jni.object_field(r, izs)?, true) // a subclass with finalize(), or JDK 8's Inflater
        } else if jni.is_instance(r, def) {
            (jni.object_field(r, dzs)?, false)
        } else if jni.is_instance(r, iref) {
            (jni.new_local(r)?, true) // JDK 9-17: FinalizableZStreamRef of a subclass overriding end()
        } else if jni.is_instance(r, dref) {
            (jni.new_local(r)?, false)
        } else {
            (std::ptr::null_mut(), false)
        };
        if !zs.is_null() {
            let address = jni.long_field(zs, if inflater { iaddr } else { daddr })?;
            if address != 0 {
                let h = jni.call_static_int(hash, &[jvalue { l: zs }])?;
                // JDK 11: a subclass overriding both finalize() and end() has two Finalizers.
                if !counted.contains_hashed(jni, h, zs)? {
                    if counted.array.is_null() {
                        counted.array = jni.new_object_array(s.len.max(1), t.class("java/lang/Object")?)?;
                    }
                    jni.set_element(counted.array, n, zs)?;
                    counted.by_hash.entry(h).or_default().push(n);
                    n += 1;
                    // Registered: Reference.queue is Finalizer.queue; enqueued or taken by the
                    // finalizer thread: no longer. Not yet enqueued: still alive.
                    let q = jni.object_field(f, rqueue)?;
                    tally.add(inflater, !jni.same(q, queue), zs);
                    jni.delete(q);
                }
            }
        }
        jni.delete(zs);
        jni.delete(r);
        jni.delete(f);
    }
    Ok((tally, counted))
}

impl Jni {
    /// A second local reference to `obj`, so each branch above owns one to delete.
    fn new_local(&self, obj: jobject) -> Result<jobject> {
        let l = jni_call!(self, NewLocalRef, obj);
        self.check()?;
        Ok(l)
    }
}

fn put(out: &mut [jlong], part: usize, state: jlong, tally: &Tally, truncated: bool, lock_ns: jlong) {
    let base = part * PART_SLOTS;
    out[base + SLOT_STATE] = state;
    out[base + SLOT_COUNTS..base + SLOT_COUNTS + 4].copy_from_slice(&tally.counts);
    out[base + SLOT_SEEN] = tally.seen;
    out[base + SLOT_TRUNCATED] = jlong::from(truncated);
    out[base + SLOT_LOCK_NS] = lock_ns;
}

/// One census: the Finalizer part first (its streams are left out of the Cleaner's counts), then
/// the Cleaner part. Returns 16 numbers, 8 per part (Cleaner, Finalizer): state (0 not asked,
/// 1 read, 2 disabled), inflaters alive and pending, deflaters alive and pending, entries seen,
/// truncated (0/1), lock held ns.
fn census(jni: &Jni, parts: jint, limit: jlong, budget_ns: jlong) -> Result<jobject> {
    if parts & !(PART_CLEANER | PART_FINALIZER) != 0 || parts == 0 {
        return Err(Error::invalid(format!("unknown census parts {parts}")));
    }
    if limit < 1 || budget_ns < 1 {
        return Err(Error::invalid("limit and budget must be positive"));
    }
    let t = zip_table(jni)?;
    if parts & PART_CLEANER != 0 {
        cleaner_ready(t)?;
    }
    if parts & PART_FINALIZER != 0 {
        finalizer_ready(t)?;
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let budget = std::time::Duration::from_nanos(u64::try_from(budget_ns.min(MAX_BUDGET_NS)).unwrap_or(0));
    let mut out = [0 as jlong; 2 * PART_SLOTS];
    jni.push_frame(32)?;
    let r = (|| -> Result<jobject> {
        let mut skip = Counted { array: std::ptr::null_mut(), by_hash: HashMap::new() };
        let mut split: HashMap<u32, crate::sites::ZipCount> = HashMap::new();
        if parts & PART_FINALIZER != 0 {
            let enabled = t.get(M::FinalizerEnabled).map(|m| jni.static_boolean(m)).unwrap_or(true);
            if enabled {
                let lock = jni.static_object(t.get(M::FinalizerLock)?);
                let queue = jni.static_object(t.get(M::FinalizerQueue)?);
                if lock.is_null() {
                    return Err(Error::Unsupported("Finalizer.lock is null".into()));
                }
                let unfinalized = t.get(M::Unfinalized)?;
                let next = t.get(M::FinalizerNext)?;
                let first = || Ok(jni.static_object(unfinalized));
                let s = copy_linked(
                    jni,
                    t,
                    lock,
                    &first,
                    std::ptr::null_mut(),
                    next,
                    limit,
                    Instant::now() + budget,
                    &FINALIZER_LEN,
                )?;
                let (tally, counted) = tally_finalizer(jni, t, &s, queue)?;
                put(&mut out, 1, STATE_READ, &tally, s.truncated, s.lock_ns);
                split = tally.by_site;
                skip = counted;
            } else {
                put(&mut out, 1, STATE_DISABLED, &Tally::default(), false, 0);
            }
        }
        if parts & PART_CLEANER != 0 {
            let s = copy_cleaner(jni, t, limit, Instant::now() + budget)?;
            let tally = tally_cleaner(jni, t, &s, &skip)?;
            put(&mut out, 0, STATE_READ, &tally, s.truncated, s.lock_ns);
            for (site, c) in tally.by_site {
                let e = split.entry(site).or_default();
                e.alive += c.alive;
                e.pending += c.pending;
                e.estimated |= c.estimated;
            }
            crate::sites::set_zip_split(std::mem::take(&mut split));
        }
        jni.long_array(&out)
    })();
    match r {
        Ok(a) => Ok(jni.pop_frame(a)),
        Err(e) => {
            jni.pop_frame(std::ptr::null_mut());
            Err(e)
        }
    }
}

/// Why the census cannot read `part` (1 the Cleaner, 2 the Finalizer) on this JDK, or null.
fn census_problem(jni: &Jni, part: jint) -> Result<Option<String>> {
    let t = zip_table(jni)?;
    let ready = match part {
        PART_CLEANER => cleaner_ready(t),
        PART_FINALIZER => finalizer_ready(t),
        other => return Err(Error::invalid(format!("unknown census part {other}"))),
    };
    Ok(ready.err().map(|e| e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Diagnostic commands, VM options, management beans.

/// The diagnostic commands the agent runs, by Java's index.
const COMMANDS: [&str; 3] = ["GC.heap_info", "VM.native_memory", "GC.class_histogram"];

fn diagnostic_command(jni: &Jni, command: jint, args: &str) -> Result<jobject> {
    let name = usize::try_from(command)
        .ok()
        .and_then(|i| COMMANDS.get(i))
        .ok_or_else(|| Error::invalid(format!("unknown diagnostic command {command}")))?;
    // A line break would start another command of the same call.
    if args.chars().any(char::is_control) {
        return Err(Error::invalid("control characters in the command's arguments"));
    }
    let t = table(&DCMD_TABLE, jni, |jni| Ok(resolve(jni, DCMDS, &[])))?;
    let line = if args.is_empty() { (*name).to_string() } else { format!("{name} {args}") };
    let (bean, exec) = (t.get(M::DcmdBean)?, t.get(M::DcmdExecute)?);
    let b = jni.call_static_object(bean, &[])?;
    if b.is_null() {
        return Err(Error::Unsupported("the JVM has no diagnostic command bean".into()));
    }
    let s = jni.string(&line)?;
    let out = jni.call_object(b, exec, &[jvalue { l: s }])?;
    jni.delete(s);
    jni.delete(b);
    Ok(out)
}

fn vm_option(jni: &Jni, name: &str) -> Result<jobject> {
    let t = table(&FLAG_TABLE, jni, |jni| Ok(resolve(jni, FLAGS, &[])))?;
    let (get, option, value) = (t.get(M::FlagGet)?, t.get(M::FlagVmOption)?, t.get(M::VmOptionValue)?);
    let n = jni.string(name)?;
    let flag = jni.call_static_object(get, &[jvalue { l: n }])?;
    jni.delete(n);
    if flag.is_null() {
        return Ok(std::ptr::null_mut());
    }
    let o = jni.call_object(flag, option, &[])?;
    jni.delete(flag);
    if o.is_null() {
        return Ok(std::ptr::null_mut());
    }
    let v = jni.call_object(o, value, &[])?;
    jni.delete(o);
    Ok(v)
}

const BEAN_TYPES: [&str; 3] =
    ["java/lang/management/RuntimeMXBean", "java/lang/management/MemoryMXBean", "java/lang/management/ThreadMXBean"];
const BUFFER_POOL_TYPE: &str = "java/lang/management/BufferPoolMXBean";

fn beans_table(jni: &Jni) -> Result<&'static Table> {
    table(&BEANS_TABLE, jni, |jni| {
        let mut classes: Vec<&'static str> = BEAN_TYPES.to_vec();
        classes.push(BUFFER_POOL_TYPE);
        classes.push("java/lang/Object");
        Ok(resolve(jni, BEANS, &classes))
    })
}

/// One of the platform beans ManagementFactory hands out: 0 runtime, 1 memory, 2 threads.
fn platform_bean(jni: &Jni, which: jint) -> Result<jobject> {
    let i = usize::try_from(which)
        .ok()
        .filter(|&i| i < BEAN_TYPES.len())
        .ok_or_else(|| Error::invalid(format!("unknown platform bean {which}")))?;
    let t = beans_table(jni)?;
    let m = [M::HelperRuntime, M::HelperMemory, M::HelperThreads][i];
    let b = jni.call_static_object(t.get(m)?, &[])?;
    if !jni.is_instance(b, t.class(BEAN_TYPES[i])?) {
        jni.delete(b);
        return Err(Error::Unsupported(format!("ManagementFactoryHelper gave no {}", BEAN_TYPES[i])));
    }
    Ok(b)
}

/// The buffer pool beans, made as the JDK's helper makes them (JDK 16+: one per
/// `VM.getBufferPools()` entry, whose own method maps them with a stream), as an array.
fn buffer_pool_beans(jni: &Jni) -> Result<jobject> {
    let t = beans_table(jni)?;
    let to_array = t.get(M::ListToArray)?;
    let object = t.class("java/lang/Object")?;
    let pool_type = t.class(BUFFER_POOL_TYPE)?;
    let list_class_check = |list: jobject| -> Result<jobject> {
        let a = jni.call_object(list, to_array, &[])?;
        jni.delete(list);
        Ok(a)
    };
    let (Ok(pools), Ok(create)) = (t.get(M::VmBufferPools), t.get(M::HelperCreateBufferPool)) else {
        let list = jni.call_static_object(t.get(M::HelperBufferPoolBeans)?, &[])?;
        let a = list_class_check(list)?;
        return only(jni, a, pool_type);
    };
    let raw = list_class_check(jni.call_static_object(pools, &[])?)?;
    let n = jni.array_len(raw);
    let out = jni.new_object_array(n, object)?;
    for i in 0..n {
        let p = jni.element(raw, i)?;
        // `create`'s parameter type is checked by the JVM's call: a wrong one would throw.
        let b = jni.call_static_object(create, &[jvalue { l: p }])?;
        jni.set_element(out, i, b)?;
        jni.delete(b);
        jni.delete(p);
    }
    jni.delete(raw);
    only(jni, out, pool_type)
}

/// `a` when every element is a `class`: what goes back to Java is only the public bean type.
fn only(jni: &Jni, a: jobject, class: jclass) -> Result<jobject> {
    for i in 0..jni.array_len(a) {
        let x = jni.element(a, i)?;
        let ok = jni.is_instance(x, class);
        jni.delete(x);
        if !ok {
            jni.delete(a);
            return Err(Error::Unsupported("a buffer pool that is not a BufferPoolMXBean".into()));
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Trampolines.

fn object<'l>(env: &Env<'l>, o: jobject) -> JObject<'l> {
    // SAFETY: a local reference (or null) made by a JNI function in this native call's frame.
    unsafe { JObject::from_raw(env, o) }
}

fn java_string(env: &Env<'_>, s: &JString<'_>, what: &str) -> Result<String> {
    if s.is_null() {
        return Err(Error::invalid(format!("{what} is null")));
    }
    Ok(s.try_to_string(env)?)
}

fn no_pending(jni: &Jni) -> Result<()> {
    jni.check()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_zipCensus0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    parts: jint,
    limit: jlong,
    budget_ns: jlong,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let jni = Jni::of(env);
        no_pending(&jni)?;
        Ok(object(env, census(&jni, parts, limit, budget_ns)?))
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_zipCensusProblem0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    part: jint,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let jni = Jni::of(env);
        no_pending(&jni)?;
        match census_problem(&jni, part)? {
            Some(p) => Ok(object(env, jni.string(&p)?)),
            None => Ok(JObject::null()),
        }
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_diagnosticCommand0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    command: jint,
    args: JString<'l>,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let jni = Jni::of(env);
        no_pending(&jni)?;
        let args = java_string(env, &args, "args")?;
        Ok(object(env, diagnostic_command(&jni, command, &args)?))
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_vmOption0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    name: JString<'l>,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let jni = Jni::of(env);
        no_pending(&jni)?;
        let name = java_string(env, &name, "name")?;
        Ok(object(env, vm_option(&jni, &name)?))
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_platformBean0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    which: jint,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let jni = Jni::of(env);
        no_pending(&jni)?;
        Ok(object(env, platform_bean(&jni, which)?))
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_bufferPoolBeans0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let jni = Jni::of(env);
        no_pending(&jni)?;
        Ok(object(env, buffer_pool_beans(&jni)?))
    })
    .resolve::<ThrowMapped>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_is_well_formed() {
        for s in &MEMBERS {
            assert!(!s.class.contains('.'), "{} uses slashes", s.class);
            let is_method = matches!(s.shape, Method | StaticMethod);
            assert_eq!(s.sig.starts_with('('), is_method, "{}.{}", s.class, s.name);
            let ty = if is_method { s.sig.rsplit(')').next().unwrap_or("") } else { s.sig };
            assert!(
                ty.len() == 1 && "ZBCSIJFDV".contains(ty) || ty.starts_with('L') && ty.ends_with(';') || ty.starts_with('['),
                "{}.{} {}",
                s.class,
                s.name,
                s.sig
            );
        }
    }

    #[test]
    fn indices_name_their_member() {
        let names = [
            (M::CleanerFactoryCleaner, "cleaner"),
            (M::ActiveList, "activeList"),
            (M::NodeSize, "size"),
            (M::PhantomCleanableList, "phantomCleanableList"),
            (M::RefersTo, "refersTo"),
            (M::FinalizerEnabled, "ENABLED"),
            (M::DeflaterZsRef, "zsRef"),
            (M::IdentityHashCode, "identityHashCode"),
            (M::DcmdExecute, "executeDiagnosticCommand"),
            (M::VmOptionValue, "getValue"),
            (M::HelperCreateBufferPool, "createBufferPoolMXBean"),
            (M::ListToArray, "toArray"),
        ];
        for (m, name) in names {
            assert_eq!(MEMBERS[m as usize].name, name, "{m:?}");
        }
        let mut all: Vec<usize> = ZIP.iter().chain(DCMDS).chain(FLAGS).chain(BEANS).map(|&m| m as usize).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all, (0..MEMBERS.len()).collect::<Vec<_>>(), "every member belongs to one job");
    }

    #[test]
    fn tallies_go_to_their_slots() {
        let mut t = Tally::default();
        t.add(true, false, std::ptr::null_mut());
        t.add(true, true, std::ptr::null_mut());
        t.add(true, true, std::ptr::null_mut());
        t.add(false, false, std::ptr::null_mut());
        t.add(false, true, std::ptr::null_mut());
        t.add(false, true, std::ptr::null_mut());
        t.add(false, true, std::ptr::null_mut());
        assert_eq!(t.counts, [1, 2, 1, 3]);
        let mut out = [0; 16];
        put(&mut out, 1, STATE_READ, &t, true, 9);
        assert_eq!(&out[8..], &[1, 1, 2, 1, 3, 0, 1, 9]);
    }
}
