//! The JNI surface: one trampoline per native method of `io.offheapdoctor.NativeCore`, each a
//! few lines that hand off to plain Rust returning `Result`. Every trampoline goes through
//! [`EnvUnowned::with_env`] (which catches panics) and [`ErrorPolicy`] [`ThrowMapped`], so an
//! error or a panic reaches Java as an exception and never unwinds into the JVM.

use std::cell::RefCell;
use std::sync::{Mutex, Once};

use jni::errors::ErrorPolicy;
use jni::objects::{JClass, JString};
use jni::sys::jlong;
use jni::strings::JNIString;
use jni::{Env, EnvUnowned};

use crate::error::{Error, Result};
use crate::sample::{Core, CoreConfig};

const EX_ILLEGAL_ARGUMENT: &str = "java/lang/IllegalArgumentException";
const EX_UNSUPPORTED: &str = "java/lang/UnsupportedOperationException";
const EX_NATIVE_IO: &str = "io/offheapdoctor/NativeIoException";
const EX_NATIVE: &str = "io/offheapdoctor/NativeException";
const EX_PANIC: &str = "io/offheapdoctor/NativePanicException";

static CORE: Mutex<Option<Core>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

thread_local! {
    /// Where the last panic on this thread happened, recorded by our hook so the Java exception
    /// can carry it (the payload alone has no location).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the default hook (which would print to the application's stderr) with one that
/// remembers message and location for the exception.
pub(crate) fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                (*s).to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "panic with a non-string payload".to_string()
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
        }));
    });
}

/// The one error policy of every native method.
pub struct ThrowMapped;

fn throw(env: &mut Env<'_>, class: &str, msg: &str) {
    let class = JNIString::from(class);
    let msg = JNIString::from(msg);
    // `throw_new` reports the thrown exception as `Err(JavaException)`: that is the success case.
    if env.throw_new(&class, &msg).is_err() && !env.exception_check() {
        let _ = env.throw_new(JNIString::from("java/lang/RuntimeException"), &msg);
    }
}

impl<T: Default> ErrorPolicy<T, Error> for ThrowMapped {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        err: Error,
    ) -> jni::errors::Result<T> {
        if env.exception_check() {
            // A Java exception raised inside the call already says what went wrong.
            return Ok(T::default());
        }
        let class = match &err {
            Error::InvalidArgument(_) => EX_ILLEGAL_ARGUMENT,
            Error::Unsupported(_) => EX_UNSUPPORTED,
            Error::Io { .. } => EX_NATIVE_IO,
            Error::Parse { .. } | Error::Jni(_) => EX_NATIVE,
        };
        throw(env, class, &err.to_string());
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut Self::Captures<'unowned_env_local, 'native_method>,
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
        let msg = recorded.unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".into())
        });
        // Dropping a payload can itself panic; leak it instead of risking an abort.
        std::mem::forget(payload);
        if env.exception_check() {
            env.exception_clear();
        }
        throw(env, EX_PANIC, &format!("native core panicked: {msg}"));
        Ok(T::default())
    }
}

fn jstring_arg(env: &Env<'_>, s: &JString<'_>, name: &str) -> Result<String> {
    if s.is_null() {
        return Err(Error::invalid(format!("{name} is null")));
    }
    Ok(s.try_to_string(env)?)
}

fn with_core<R>(f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
    // A panic while the lock was held poisons it; the state is plain data, so carry on with it.
    let mut guard = CORE.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Core::new(&CoreConfig::default())?);
    }
    match guard.as_mut() {
        Some(core) => f(core),
        None => Err(Error::Unsupported("the native core has no state".into())),
    }
}

fn intern_init(config_json: &str) -> Result<()> {
    let (config, problems) = CoreConfig::from_json(config_json);
    for p in problems {
        crate::notices::push(p);
    }
    let mut guard = CORE.lock().unwrap_or_else(|p| p.into_inner());
    *guard = Some(Core::new(&config)?);
    Ok(())
}

fn intern_trim(timeout_ms: jlong) -> Result<String> {
    let ms = u64::try_from(timeout_ms)
        .map_err(|_| Error::invalid(format!("timeout {timeout_ms} ms is negative")))?;
    let outcome = crate::trim_worker::trim_now(std::time::Duration::from_millis(ms.min(600_000)))?;
    Ok(serde_json::to_string(&outcome)?)
}

fn intern_set_trim_policy(text: &str) -> Result<String> {
    let status = with_core(|core| core.set_trim_policy(text))?;
    Ok(serde_json::to_string(&status)?)
}

/// Renders a report and the files rotated out of it into one HTML page written to `out` (a fresh
/// file of the caller's, which renames it into place); says how many samples from how many files.
fn intern_render_timeline(report: &str, out: &str) -> Result<String> {
    let (t, files) = crate::timeline::report_files::read_rotated(std::path::Path::new(report))?;
    let title = std::path::Path::new(report).file_name().map_or("offheap-doctor report".into(), |n| n.to_string_lossy().into_owned());
    let html = t.render(&format!("offheap-doctor: {title}"))?;
    std::fs::write(out, html).map_err(|e| Error::io(out, e))?;
    let from = if files > 1 { format!(" from {files} files") } else { String::new() };
    Ok(format!("{} samples{from}", t.sample_count()))
}

fn intern_live_timeline(out: &str) -> Result<String> {
    let html = with_core(|core| core.live_timeline(&format!("offheap-doctor: live history of pid {}", std::process::id())))?;
    std::fs::write(out, html).map_err(|e| Error::io(out, e))?;
    Ok(out.to_string())
}

fn intern_tune(text: &str, by: &str) -> Result<String> {
    let by = crate::tuning::AppliedBy::parse(by)?;
    // Each setting on its own: one bad value gets its own line and does not keep the others
    // from applying.
    let mut tunings = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match crate::tuning::parse_tunings(part) {
            Ok(t) => tunings.extend(t),
            Err(e) => crate::notices::push(format!("{part}: not applied: {e}")),
        }
    }
    let outcomes = crate::tuning::apply_as(&tunings, by);
    for o in &outcomes {
        crate::notices::push(format!("{}={}: {}", o.setting.option_name(), o.requested, o.message));
    }
    Ok(serde_json::to_string(&outcomes)?)
}

fn intern_sample(facts_json: &str, sites: serde_json::Value, native_sites: serde_json::Value) -> Result<String> {
    let mut facts: serde_json::Value = if facts_json.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(facts_json)?
    };
    if let Some(o) = facts.as_object_mut() {
        o.insert("sites".into(), sites);
        o.insert("native_sites".into(), native_sites);
    }
    with_core(|core| core.sample_line(facts))
}

/// Exercises the error policy from Java: `ok`, `io`, `argument`, `unsupported`, `panic`.
fn intern_self_test(what: &str) -> Result<String> {
    match what {
        "ok" => Ok("ok".into()),
        "io" => {
            let missing = with_core(|core| Ok(core.proc_root().path("offheap-doctor-self-test")))?;
            std::fs::read_to_string(&missing).map_err(|e| Error::io(missing, e))
        }
        "argument" => Err(Error::invalid("self-test of an invalid argument")),
        "unsupported" => Err(Error::Unsupported("self-test of an unsupported call".into())),
        "panic" => panic!("self-test panic"),
        other => Err(Error::invalid(format!(
            "unknown self-test '{other}' (valid: ok, io, argument, unsupported, panic)"
        ))),
    }
}

fn new_jstring<'l>(env: &mut Env<'l>, s: &str) -> Result<JString<'l>> {
    Ok(JString::new(env, s)?)
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_version0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> { new_jstring(env, env!("CARGO_PKG_VERSION")) })
        .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_init0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    config: JString<'l>,
) {
    install_panic_hook();
    env.with_env(|env| -> Result<_> { intern_init(&jstring_arg(env, &config, "config")?) })
        .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_sample0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    facts: JString<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let facts = jstring_arg(env, &facts, "facts")?;
        let sites = crate::sites::snapshot(env.get_raw());
        crate::native_sites::rescan();
        let native_sites = crate::native_sites::snapshot(env.get_raw());
        let out = intern_sample(&facts, sites, native_sites)?;
        new_jstring(env, &out)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_trim0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    timeout_ms: jlong,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let out = intern_trim(timeout_ms)?;
        new_jstring(env, &out)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_setTrimPolicy0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    policy: JString<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let out = intern_set_trim_policy(&jstring_arg(env, &policy, "policy")?)?;
        new_jstring(env, &out)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_setBaseline0<'l>(mut env: EnvUnowned<'l>, _class: JClass<'l>) {
    install_panic_hook();
    env.with_env(|_env| -> Result<_> {
        with_core(|core| {
            core.reset_baseline();
            crate::sites::reset_baseline();
            crate::native_sites::reset_baseline();
            Ok(())
        })
    })
        .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_renderTimeline0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    report: JString<'l>,
    out: JString<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let r = intern_render_timeline(&jstring_arg(env, &report, "report")?, &jstring_arg(env, &out, "out")?)?;
        new_jstring(env, &r)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_liveTimeline0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    out: JString<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let r = intern_live_timeline(&jstring_arg(env, &out, "out")?)?;
        new_jstring(env, &r)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_takeNotices0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> { new_jstring(env, &crate::notices::take().join("\n")) })
        .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_tune0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    settings: JString<'l>,
    by: JString<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let out = intern_tune(&jstring_arg(env, &settings, "settings")?, &jstring_arg(env, &by, "by")?)?;
        new_jstring(env, &out)
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_selfTest0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    what: JString<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let out = intern_self_test(&jstring_arg(env, &what, "what")?)?;
        new_jstring(env, &out)
    })
    .resolve::<ThrowMapped>()
}

/// The library as a JVMTI agent: `-agentpath:<library>=arenaMax=2,mmapThreshold=128k`. The JVM
/// calls this early in its creation, before its VM thread, GC and compiler threads exist, so
/// `mallopt(M_ARENA_MAX)` here has `MALLOC_ARENA_MAX`'s effect. It makes no JVMTI or JNI call.
/// A non-zero return would abort the JVM's start: it returns 0 whatever happens, after one
/// line on stderr per setting (and per bad part of the options).
///
/// # Safety
/// Called by the JVM with `options` null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn Agent_OnLoad(
    _vm: *mut std::ffi::c_void,
    options: *const std::ffi::c_char,
    _reserved: *mut std::ffi::c_void,
) -> jni::sys::jint {
    install_panic_hook();
    let text = if options.is_null() {
        None
    } else {
        // SAFETY: the JVM passes a NUL-terminated string that lives through this call.
        Some(unsafe { std::ffi::CStr::from_ptr(options) }.to_string_lossy().into_owned())
    };
    let lines = std::panic::catch_unwind(|| crate::tuning::agent_onload(text.as_deref())).unwrap_or_else(|payload| {
        let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
        std::mem::forget(payload);
        vec![format!(
            "-agentpath: settings not applied, internal error: {}",
            recorded.unwrap_or_else(|| "panic".into())
        )]
    });
    let mut err = std::io::stderr().lock();
    for line in lines {
        let _ = std::io::Write::write_all(&mut err, format!("[offheap-doctor] {line}\n").as_bytes());
    }
    0
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_sitesInstall0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        match crate::sites::install(env.get_raw()) {
            Ok(()) => Ok(JString::null()),
            Err(why) => new_jstring(env, &why),
        }
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_nativeSitesStart0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    sample_bytes: jlong,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        let bytes = u64::try_from(sample_bytes).unwrap_or(0);
        match crate::native_sites::start(env.get_raw(), bytes) {
            Ok(()) => Ok(JString::null()),
            Err(why) => new_jstring(env, &why),
        }
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_nativeSitesStop0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        match crate::native_sites::stop() {
            Ok(()) => Ok(JString::null()),
            Err(why) => new_jstring(env, &why),
        }
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_nativeSitesJson0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
) -> JString<'l> {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        crate::native_sites::rescan();
        let v = crate::native_sites::snapshot(env.get_raw());
        new_jstring(env, &v.to_string())
    })
    .resolve::<ThrowMapped>()
}

#[unsafe(no_mangle)]
pub extern "system" fn Java_io_offheapdoctor_NativeCore_sitesFailed0<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    why: JString<'l>,
) {
    install_panic_hook();
    env.with_env(|env| -> Result<_> {
        crate::sites::failed(&jstring_arg(env, &why, "why")?);
        Ok(())
    })
    .resolve::<ThrowMapped>()
}
