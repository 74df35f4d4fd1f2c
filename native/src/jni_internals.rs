//! Reads JDK-internal fields and calls JDK-internal methods for the Java side (the zip census's
//! walk of the Cleaner and Finalizer lists, the diagnostic commands' direct route) through JNI.
//!
//! Why not core reflection: JNI does no access check, so no JDK package has to be opened to the
//! agent; and from JDK 18 on every reflective field or method use is backed by method handles
//! whose first use generates classes. On JDK 25 that generation (and the JIT compiling the
//! class-file library it runs) leaves about 8 MiB of glibc heap behind in a JVM that uses no
//! reflection of its own. Java's `io.offheapdoctor.Internals` keeps core reflection as the route
//! when this library is not loaded.
//!
//! Every id comes from a `java.lang.reflect.Field` or `Method` (`FromReflectedField`,
//! `FromReflectedMethod`), and the Java side checks the kind of value and the shape of the
//! method before it calls here. What can still be wrong at run time, an object that is not an
//! instance of the member's class or a null target, is checked here and thrown as
//! `IllegalArgumentException`, as core reflection would.

use jni::objects::{JClass, JObject};
use jni::sys::{jboolean, jint, jlong, jobject, jvalue};
use jni::{Env, EnvUnowned};

use super::jni_bridge::{install_panic_hook, ThrowMapped};
use crate::error::{Error, Result};

/// The raw interface, for the JNI functions the `jni` crate does not wrap (`FromReflected*`) or
/// wraps only with a signature string (`Get*Field`, `Call*MethodA` by id).
fn raw(env: &Env<'_>) -> *mut jni::sys::JNIEnv {
    env.get_raw()
}

/// Fails when a Java exception is pending: JNI functions must not be called then, and the
/// exception reaches the caller as it is.
fn no_pending(env: &Env<'_>) -> Result<()> {
    if env.exception_check() {
        return Err(Error::Jni(jni::errors::Error::JavaException));
    }
    Ok(())
}

fn non_null(obj: &JObject<'_>, what: &str) -> Result<jobject> {
    if obj.is_null() {
        return Err(Error::invalid(format!("{what} is null")));
    }
    Ok(obj.as_raw())
}

fn id_of(id: jlong, what: &str) -> Result<*mut std::ffi::c_void> {
    if id == 0 {
        return Err(Error::invalid(format!("{what} id is 0")));
    }
    Ok(id as usize as *mut std::ffi::c_void)
}

/// One use of a field or method: the class that declares it, its id, whether it is static, and
/// the object it is used on (ignored for a static member).
struct Member<'a, 'l> {
    owner: &'a JClass<'l>,
    target: &'a JObject<'l>,
    id: jlong,
    is_static: bool,
}

/// The member's target: null for a static member; otherwise an instance of `owner`.
fn target_of(env: &Env<'_>, m: &Member<'_, '_>) -> Result<Option<jobject>> {
    let owner = m.owner;
    non_null(owner, "owner")?;
    if m.is_static {
        return Ok(None);
    }
    let t = non_null(m.target, "target of an instance member")?;
    let e = raw(env);
    // SAFETY: `e` is this thread's JNIEnv, no exception is pending (checked by the callers), and
    // both references are live locals of this native call.
    let is = unsafe { ((**e).v1_1.IsInstanceOf)(e, t, owner.as_raw()) };
    if !is {
        return Err(Error::invalid("the target is not an instance of the member's class"));
    }
    Ok(Some(t))
}

/// What `get0` reads: chosen by the Java side from `Field.getType()`.
#[derive(Clone, Copy)]
enum Kind {
    Object,
    Long,
    Int,
    Boolean,
}

impl Kind {
    fn of(code: jint) -> Result<Kind> {
        Ok(match code {
            0 => Kind::Object,
            1 => Kind::Long,
            2 => Kind::Int,
            3 => Kind::Boolean,
            other => return Err(Error::invalid(format!("unknown field kind {other}"))),
        })
    }
}

/// A field's value: an object (a local reference) or a primitive widened to a long.
enum Value {
    Object(jobject),
    Primitive(jlong),
}

fn read(env: &Env<'_>, m: &Member<'_, '_>, kind: Kind) -> Result<Value> {
    no_pending(env)?;
    let fid = id_of(m.id, "field")? as jni::sys::jfieldID;
    let t = target_of(env, m)?;
    let e = raw(env);
    let c = m.owner.as_raw();
    // SAFETY: `fid` came from FromReflectedField of a field of `owner` (or a superclass), whose
    // static-ness is `is_static` and whose type is `kind` (both taken from the same Field by the
    // Java side); an instance target was checked to be an instance of `owner`. No exception is
    // pending.
    let v = unsafe {
        let f = &(**e).v1_1;
        match (t, kind) {
            (None, Kind::Object) => Value::Object((f.GetStaticObjectField)(e, c, fid)),
            (None, Kind::Long) => Value::Primitive((f.GetStaticLongField)(e, c, fid)),
            (None, Kind::Int) => Value::Primitive(jlong::from((f.GetStaticIntField)(e, c, fid))),
            (None, Kind::Boolean) => Value::Primitive(jlong::from((f.GetStaticBooleanField)(e, c, fid))),
            (Some(o), Kind::Object) => Value::Object((f.GetObjectField)(e, o, fid)),
            (Some(o), Kind::Long) => Value::Primitive((f.GetLongField)(e, o, fid)),
            (Some(o), Kind::Int) => Value::Primitive(jlong::from((f.GetIntField)(e, o, fid))),
            (Some(o), Kind::Boolean) => Value::Primitive(jlong::from((f.GetBooleanField)(e, o, fid))),
        }
    };
    Ok(v)
}

fn call(env: &Env<'_>, m: &Member<'_, '_>, arg: &JObject<'_>, argc: jint, boolean: bool) -> Result<Value> {
    no_pending(env)?;
    let mid = id_of(m.id, "method")? as jni::sys::jmethodID;
    if !(0..=1).contains(&argc) {
        return Err(Error::invalid(format!("{argc} arguments (0 or 1 supported)")));
    }
    let t = target_of(env, m)?;
    let args = [jvalue { l: arg.as_raw() }];
    let e = raw(env);
    let c = m.owner.as_raw();
    // SAFETY: `mid` came from FromReflectedMethod of a method of `owner` whose static-ness is
    // `is_static`, which takes `argc` reference parameters (0 or 1; `args` holds one, null
    // allowed) and returns a reference, or a boolean when `boolean` (checked by the Java side
    // on the same Method). An instance target was checked to be an instance of `owner`.
    let v = unsafe {
        let f = &(**e).v1_1;
        match (t, boolean) {
            (None, false) => Value::Object((f.CallStaticObjectMethodA)(e, c, mid, args.as_ptr())),
            (None, true) => Value::Primitive(jlong::from((f.CallStaticBooleanMethodA)(e, c, mid, args.as_ptr()))),
            (Some(o), false) => Value::Object((f.CallObjectMethodA)(e, o, mid, args.as_ptr())),
            (Some(o), true) => Value::Primitive(jlong::from((f.CallBooleanMethodA)(e, o, mid, args.as_ptr()))),
        }
    };
    // An exception thrown by the method stays pending and reaches the Java caller.
    no_pending(env)?;
    Ok(v)
}

fn object<'l>(env: &Env<'l>, v: Value) -> Result<JObject<'l>> {
    match v {
        // SAFETY: a local reference just returned by a JNI function of this frame (or null).
        Value::Object(o) => Ok(unsafe { JObject::from_raw(env, o) }),
        Value::Primitive(_) => Err(Error::invalid("not a reference")),
    }
}

fn primitive(v: Value) -> Result<jlong> {
    match v {
        Value::Primitive(p) => Ok(p),
        Value::Object(_) => Err(Error::invalid("not a primitive")),
    }
}

/// The JNI id of a reflected field or method: `from` is `FromReflectedField` or
/// `FromReflectedMethod`, `what` its name for the error.
fn reflected_id(
    env: &Env<'_>,
    member: &JObject<'_>,
    what: &str,
    from: impl FnOnce(*mut jni::sys::JNIEnv, jobject) -> *mut std::ffi::c_void,
) -> Result<jlong> {
    no_pending(env)?;
    let m = non_null(member, "member")?;
    let id = from(raw(env), m);
    no_pending(env)?;
    if id.is_null() {
        return Err(Error::invalid(format!("{what} gave no id")));
    }
    Ok(id as usize as jlong)
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_fieldId0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    field: JObject<'l>,
) -> jlong {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        // SAFETY: `f` is a live local reference, which the Java side got as a java.lang.reflect.Field.
        reflected_id(env, &field, "FromReflectedField", |e, f| unsafe { ((**e).v1_2.FromReflectedField)(e, f) }.cast())
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_methodId0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    method: JObject<'l>,
) -> jlong {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        // SAFETY: `m` is a live local reference, which the Java side got as a java.lang.reflect.Method.
        reflected_id(env, &method, "FromReflectedMethod", |e, m| unsafe { ((**e).v1_2.FromReflectedMethod)(e, m) }.cast())
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_getObject0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    owner: JClass<'l>,
    target: JObject<'l>,
    id: jlong,
    is_static: jboolean,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let v = read(env, &Member { owner: &owner, target: &target, id, is_static }, Kind::Object)?;
        object(env, v)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_getPrimitive0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    owner: JClass<'l>,
    target: JObject<'l>,
    id: jlong,
    is_static: jboolean,
    kind: jint,
) -> jlong {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let kind = Kind::of(kind)?;
        if matches!(kind, Kind::Object) {
            return Err(Error::invalid("getPrimitive0 of an object field"));
        }
        primitive(read(env, &Member { owner: &owner, target: &target, id, is_static }, kind)?)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_callObject0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    owner: JClass<'l>,
    target: JObject<'l>,
    id: jlong,
    is_static: jboolean,
    arg: JObject<'l>,
    argc: jint,
) -> JObject<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let v = call(env, &Member { owner: &owner, target: &target, id, is_static }, &arg, argc, false)?;
        object(env, v)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_callBoolean0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    owner: JClass<'l>,
    target: JObject<'l>,
    id: jlong,
    is_static: jboolean,
    arg: JObject<'l>,
    argc: jint,
) -> jboolean {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let m = Member { owner: &owner, target: &target, id, is_static };
        Ok(primitive(call(env, &m, &arg, argc, true)?)? != 0)
    })
    .resolve::<ThrowMapped>()
}
