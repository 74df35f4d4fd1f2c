//! Which `malloc` this process runs on, and the environment settings that shape it.
//!
//! Detection asks the dynamic linker, never the build: the same library runs in a glibc JVM, in
//! one started with `LD_PRELOAD=libjemalloc.so.2`, and on musl. The deciding fact is the object
//! that defines the `malloc` every caller gets (`dlsym(RTLD_DEFAULT, "malloc")`, then `dladdr`):
//! under a preloaded jemalloc glibc is still loaded and `gnu_get_libc_version` still resolves,
//! but its allocator is idle, so its numbers (`malloc_info`, `mallinfo2`) would describe nothing.
//! Every glibc-specific function is resolved with `dlsym` as well, so a musl build links.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use serde::Serialize;

/// The allocator family behind `malloc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocatorKind {
    Glibc,
    Jemalloc,
    Tcmalloc,
    Musl,
    Unknown,
}

impl AllocatorKind {
    /// The name used in JSON and messages.
    pub fn name(self) -> &'static str {
        match self {
            AllocatorKind::Glibc => "glibc",
            AllocatorKind::Jemalloc => "jemalloc",
            AllocatorKind::Tcmalloc => "tcmalloc",
            AllocatorKind::Musl => "musl",
            AllocatorKind::Unknown => "unknown",
        }
    }
}

/// Environment variables that change how the allocator behaves, as they are now. They are read
/// from the process environment, which is what the allocator read at start unless the program
/// changed it since (a JVM does not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AllocatorSettings {
    pub ld_preload: Option<String>,
    pub malloc_arena_max: Option<String>,
    pub malloc_arena_test: Option<String>,
    pub malloc_trim_threshold: Option<String>,
    pub malloc_mmap_threshold: Option<String>,
    pub malloc_top_pad: Option<String>,
    /// `GLIBC_TUNABLES` as given; `glibc_tunables` holds its `name=value` pairs.
    pub glibc_tunables_raw: Option<String>,
    pub glibc_tunables: BTreeMap<String, String>,
    /// jemalloc's `MALLOC_CONF` (only the unprefixed name; a jemalloc built with a prefix reads
    /// `<prefix>MALLOC_CONF` and is not the process `malloc` anyway).
    pub malloc_conf: Option<String>,
    /// Every `TCMALLOC_*` variable.
    pub tcmalloc: BTreeMap<String, String>,
}

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocatorInfo {
    pub kind: AllocatorKind,
    /// Version of the allocator behind `malloc`: glibc's `gnu_get_libc_version`, jemalloc's
    /// `mallctl("version")`, gperftools' `tc_version`. musl has no such call.
    pub version: Option<String>,
    /// The file that defines the `malloc` every caller gets (from `dladdr`).
    pub malloc_library: Option<String>,
    /// glibc's version when glibc is loaded at all, even if `malloc` is someone else's.
    pub glibc_version: Option<String>,
    /// The musl dynamic loader found in `/proc/self/maps`, if any.
    pub musl_loader: Option<String>,
    /// The marker symbols that resolved, each with the file that defines it: the evidence.
    pub symbols: BTreeMap<String, String>,
    pub settings: AllocatorSettings,
}

/// Symbols that tell allocators apart, in the order they are checked.
const JEMALLOC_SYMBOLS: &[&str] = &["mallctl"];
const TCMALLOC_SYMBOLS: &[&str] = &["MallocExtension_GetNumericProperty", "tc_malloc"];
const GLIBC_SYMBOL: &str = "gnu_get_libc_version";

/// Detects the allocator and reads its settings. Cheap (a few `dlsym` calls, and a read of
/// `/proc/self/maps` only when glibc is absent), but [`current_kind`] caches the kind.
pub fn detect() -> AllocatorInfo {
    let malloc_library = symbol("malloc").and_then(object_of);
    let mut symbols = BTreeMap::new();
    if let Some(lib) = &malloc_library {
        symbols.insert("malloc".to_string(), lib.clone());
    }
    let mut first_object = |names: &[&str]| {
        let mut found = None;
        for name in names {
            if let Some(obj) = symbol(name).and_then(object_of) {
                symbols.insert((*name).to_string(), obj.clone());
                found.get_or_insert(obj);
            }
        }
        found
    };
    let jemalloc_object = first_object(JEMALLOC_SYMBOLS);
    let tcmalloc_object = first_object(TCMALLOC_SYMBOLS);
    let glibc_object = first_object(&[GLIBC_SYMBOL]);
    let glibc_version = glibc_version();
    let musl_loader = if glibc_object.is_none() {
        std::fs::read_to_string("/proc/self/maps").ok().and_then(|m| musl_loader_in_maps(&m))
    } else {
        None
    };
    let probe = Probe {
        malloc_object: malloc_library.clone(),
        jemalloc_object,
        tcmalloc_object,
        glibc_object,
        musl_loader: musl_loader.clone(),
    };
    let kind = classify(&probe);
    let version = match kind {
        AllocatorKind::Glibc => glibc_version.clone(),
        AllocatorKind::Jemalloc => jemalloc_version(),
        AllocatorKind::Tcmalloc => tcmalloc_version(),
        AllocatorKind::Musl | AllocatorKind::Unknown => None,
    };
    AllocatorInfo {
        kind,
        version,
        malloc_library,
        glibc_version,
        musl_loader,
        symbols,
        settings: settings_from(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        ),
    }
}

/// The allocator kind, detected once: `malloc` cannot change under a running process.
pub fn current_kind() -> AllocatorKind {
    static KIND: OnceLock<AllocatorKind> = OnceLock::new();
    *KIND.get_or_init(|| detect().kind)
}

/// The facts detection decides on; split out so the decision is tested without a loader.
#[derive(Debug, Clone, Default)]
struct Probe {
    malloc_object: Option<String>,
    jemalloc_object: Option<String>,
    tcmalloc_object: Option<String>,
    glibc_object: Option<String>,
    musl_loader: Option<String>,
}

fn classify(p: &Probe) -> AllocatorKind {
    // A marker symbol counts when it lives in the object that defines `malloc`: a jemalloc that
    // some library loaded for itself does not make the process a jemalloc process. When `malloc`
    // could not be placed (no dladdr), the marker alone decides.
    let owns_malloc = |obj: &Option<String>| match (obj, &p.malloc_object) {
        (Some(o), Some(m)) => o == m,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let malloc_file = p.malloc_object.as_deref().map(file_name).unwrap_or_default();
    if owns_malloc(&p.jemalloc_object) || malloc_file.contains("jemalloc") {
        return AllocatorKind::Jemalloc;
    }
    if owns_malloc(&p.tcmalloc_object) || malloc_file.contains("tcmalloc") {
        return AllocatorKind::Tcmalloc;
    }
    if owns_malloc(&p.glibc_object) {
        return AllocatorKind::Glibc;
    }
    if malloc_file.contains("musl")
        || (p.glibc_object.is_none() && p.musl_loader.is_some() && is_libc_name(malloc_file))
    {
        return AllocatorKind::Musl;
    }
    if p.malloc_object.is_none() && p.glibc_object.is_none() && p.musl_loader.is_some() {
        return AllocatorKind::Musl;
    }
    AllocatorKind::Unknown
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_libc_name(file: &str) -> bool {
    file.starts_with("libc.") || file.starts_with("ld-musl")
}

/// The path of musl's loader (`ld-musl-<arch>.so.1`, which is also its libc) in a maps text.
fn musl_loader_in_maps(maps: &str) -> Option<String> {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|path| {
            let f = file_name(path);
            f.starts_with("ld-musl") || f.starts_with("libc.musl")
        })
        .map(str::to_string)
}

/// Collects the allocator settings from `(name, value)` pairs.
fn settings_from(vars: impl IntoIterator<Item = (String, String)>) -> AllocatorSettings {
    let mut s = AllocatorSettings::default();
    for (k, v) in vars {
        match k.as_str() {
            "LD_PRELOAD" => s.ld_preload = Some(v),
            "MALLOC_ARENA_MAX" => s.malloc_arena_max = Some(v),
            "MALLOC_ARENA_TEST" => s.malloc_arena_test = Some(v),
            "MALLOC_TRIM_THRESHOLD_" => s.malloc_trim_threshold = Some(v),
            "MALLOC_MMAP_THRESHOLD_" => s.malloc_mmap_threshold = Some(v),
            "MALLOC_TOP_PAD_" => s.malloc_top_pad = Some(v),
            "GLIBC_TUNABLES" => {
                s.glibc_tunables = parse_glibc_tunables(&v);
                s.glibc_tunables_raw = Some(v);
            }
            "MALLOC_CONF" => s.malloc_conf = Some(v),
            _ if k.starts_with("TCMALLOC_") => {
                s.tcmalloc.insert(k, v);
            }
            _ => {}
        }
    }
    s
}

/// `GLIBC_TUNABLES` is `name=value` pairs separated by `:` (e.g.
/// `glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072`). Malformed parts are skipped,
/// as glibc skips them.
pub fn parse_glibc_tunables(text: &str) -> BTreeMap<String, String> {
    text.split(':')
        .filter_map(|part| part.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Looks a symbol up in the global scope, as an unqualified call from the process would.
pub(crate) fn symbol(name: &str) -> Option<*mut c_void> {
    let cname = CString::new(name).ok()?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call; RTLD_DEFAULT is a
    // pseudo-handle dlsym accepts, and dlsym only reads the loader's tables.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The file of the loaded object that contains `addr`.
fn object_of(addr: *mut c_void) -> Option<String> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: `info` is a writable, properly aligned Dl_info; dladdr only writes into it and
    // does not dereference `addr`.
    let found = unsafe { libc::dladdr(addr, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so it filled `info` (it was zeroed before in any case).
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader, alive while the object
    // stays loaded; it is copied at once.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    Some(name.to_string_lossy().into_owned())
}

fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: callers pass a pointer that the allocator documents as a static NUL-terminated
    // version string.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// glibc's run-time version, or `None` where glibc is not loaded (musl).
pub fn glibc_version() -> Option<String> {
    let f = symbol(GLIBC_SYMBOL)?;
    // SAFETY: the symbol is glibc's `const char *gnu_get_libc_version(void)`; the name cannot be
    // bound to anything else in a glibc process.
    let f: extern "C" fn() -> *const c_char = unsafe { std::mem::transmute(f) };
    c_string(f())
}

fn jemalloc_version() -> Option<String> {
    let f = symbol("mallctl")?;
    type Mallctl =
        extern "C" fn(*const c_char, *mut c_void, *mut usize, *mut c_void, usize) -> c_int;
    // SAFETY: `mallctl` is jemalloc's documented entry point with this signature.
    let mallctl: Mallctl = unsafe { std::mem::transmute(f) };
    let mut version: *const c_char = std::ptr::null();
    let mut len = std::mem::size_of::<*const c_char>();
    let rc = mallctl(
        c"version".as_ptr(),
        (&mut version as *mut *const c_char).cast(),
        &mut len,
        std::ptr::null_mut(),
        0,
    );
    if rc != 0 {
        return None;
    }
    c_string(version)
}

fn tcmalloc_version() -> Option<String> {
    let f = symbol("tc_version")?;
    // SAFETY: gperftools' `const char *tc_version(int *major, int *minor, const char **patch)`;
    // it checks each out-pointer for NULL before writing.
    let f: extern "C" fn(*mut c_int, *mut c_int, *mut *const c_char) -> *const c_char =
        unsafe { std::mem::transmute(f) };
    c_string(f(std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
    const JEMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";
    const TCMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn plain_glibc_process_is_glibc() {
        let p = Probe { malloc_object: s(LIBC), glibc_object: s(LIBC), ..Probe::default() };
        assert_eq!(classify(&p), AllocatorKind::Glibc);
    }

    #[test]
    fn preloaded_jemalloc_wins_although_glibc_is_loaded() {
        let p = Probe {
            malloc_object: s(JEMALLOC),
            jemalloc_object: s(JEMALLOC),
            glibc_object: s(LIBC),
            ..Probe::default()
        };
        assert_eq!(classify(&p), AllocatorKind::Jemalloc);
    }

    #[test]
    fn preloaded_tcmalloc_wins_although_glibc_is_loaded() {
        let p = Probe {
            malloc_object: s(TCMALLOC),
            tcmalloc_object: s(TCMALLOC),
            glibc_object: s(LIBC),
            ..Probe::default()
        };
        assert_eq!(classify(&p), AllocatorKind::Tcmalloc);
    }

    #[test]
    fn jemalloc_loaded_beside_glibc_malloc_does_not_count() {
        // A library brought its own jemalloc but `malloc` still resolves into libc.
        let p = Probe {
            malloc_object: s(LIBC),
            jemalloc_object: s("/opt/app/lib/libfoo.so"),
            glibc_object: s(LIBC),
            ..Probe::default()
        };
        assert_eq!(classify(&p), AllocatorKind::Glibc);
    }

    #[test]
    fn allocator_linked_into_the_executable_is_found_by_its_marker() {
        let exe = "/usr/local/bin/server";
        let p = Probe {
            malloc_object: s(exe),
            jemalloc_object: s(exe),
            glibc_object: s(LIBC),
            ..Probe::default()
        };
        assert_eq!(classify(&p), AllocatorKind::Jemalloc);
    }

    #[test]
    fn musl_is_recognised_by_its_loader() {
        let p = Probe {
            malloc_object: s("/lib/ld-musl-x86_64.so.1"),
            musl_loader: s("/lib/ld-musl-x86_64.so.1"),
            ..Probe::default()
        };
        assert_eq!(classify(&p), AllocatorKind::Musl);
        let p = Probe { musl_loader: s("/lib/ld-musl-x86_64.so.1"), ..Probe::default() };
        assert_eq!(classify(&p), AllocatorKind::Musl);
    }

    #[test]
    fn unknown_allocator_in_the_executable_is_unknown() {
        let p = Probe {
            malloc_object: s("/usr/local/bin/server"),
            glibc_object: s(LIBC),
            ..Probe::default()
        };
        assert_eq!(classify(&p), AllocatorKind::Unknown);
    }

    #[test]
    fn musl_loader_is_found_in_maps() {
        let maps = "\
7f1c2a000000-7f1c2a014000 r--p 00000000 08:01 1234 /lib/ld-musl-x86_64.so.1
7f1c2a100000-7f1c2a200000 rw-p 00000000 00:00 0
7ffd1a000000-7ffd1a021000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(musl_loader_in_maps(maps).as_deref(), Some("/lib/ld-musl-x86_64.so.1"));
        let glibc = "7f00-7f10 r-xp 00000000 08:01 99 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n";
        assert_eq!(musl_loader_in_maps(glibc), None);
    }

    #[test]
    fn settings_pick_the_allocator_variables_only() {
        let vars = [
            ("MALLOC_ARENA_MAX", "2"),
            ("MALLOC_TRIM_THRESHOLD_", "131072"),
            ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0:junk"),
            ("TCMALLOC_RELEASE_RATE", "10"),
            ("MALLOC_CONF", "background_thread:true"),
            ("LD_PRELOAD", JEMALLOC),
            ("PATH", "/usr/bin"),
        ];
        let s = settings_from(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(s.malloc_arena_max.as_deref(), Some("2"));
        assert_eq!(s.malloc_trim_threshold.as_deref(), Some("131072"));
        assert_eq!(s.glibc_tunables.get("glibc.malloc.arena_max").map(String::as_str), Some("4"));
        assert_eq!(s.glibc_tunables.len(), 2);
        assert_eq!(s.tcmalloc.get("TCMALLOC_RELEASE_RATE").map(String::as_str), Some("10"));
        assert_eq!(s.malloc_conf.as_deref(), Some("background_thread:true"));
        assert_eq!(s.ld_preload.as_deref(), Some(JEMALLOC));
        assert_eq!(s.malloc_arena_test, None);
    }

    #[test]
    fn kind_names_match_their_json() {
        for k in [
            AllocatorKind::Glibc,
            AllocatorKind::Jemalloc,
            AllocatorKind::Tcmalloc,
            AllocatorKind::Musl,
            AllocatorKind::Unknown,
        ] {
            assert_eq!(serde_json::to_value(k).ok(), Some(serde_json::Value::from(k.name())));
        }
    }

    #[test]
    fn this_test_process_resolves_malloc_somewhere() {
        let info = detect();
        assert!(info.malloc_library.is_some(), "dladdr placed malloc: {info:?}");
        assert_ne!(info.kind, AllocatorKind::Unknown, "{info:?}");
    }
}
