//! The Global Offset Table entries through which a loaded library reaches `malloc` and its
//! kin, and their replacement by the sampler's hooks.
//!
//! A shared library calls an outside function through its GOT: the dynamic linker writes the
//! function's address into a slot named by a relocation (`JUMP_SLOT` for calls through the PLT,
//! `GLOB_DAT` for calls and address-takes through the GOT itself). Writing another address into
//! that slot sends that library's calls, and only that library's, to it. Nothing is rewritten
//! in code, no signal is needed, and putting the old address back undoes it exactly.
//!
//! Every walk runs inside `dl_iterate_phdr`'s callback, which holds the loader's lock: a library
//! cannot be unloaded while its slots are read or written. `dl_iterate_phdr` also lists a library
//! another thread is still loading, whose slots the loader is still writing: a new library is
//! first opened again with `RTLD_NOLOAD` (outside the walk), which waits for any load in progress
//! to finish, and is patched only in the walk after that. A slot is replaced only while it
//! still holds the function the process resolves globally (or the library's own lazy-binding
//! stub), so a library bound to an allocator of its own keeps it; a library that defines the
//! function itself (an allocator, the C library) is left alone.

use std::collections::HashSet;
use std::ffi::{c_int, c_void, CStr};

/// One function to interpose: its name, the hook's address and the global function's address.
#[derive(Clone, Copy)]
pub struct Target {
    pub name: &'static CStr,
    pub hook: usize,
    pub real: usize,
}

/// A slot written, with what it held before.
#[derive(Clone, Copy, Debug)]
struct Written {
    object: usize,
    slot: usize,
    original: usize,
    hook: usize,
}

/// The slots this process has replaced, and the objects already walked.
#[derive(Default)]
pub struct Patches {
    written: Vec<Written>,
    seen: HashSet<(String, usize)>,
    /// Libraries met but not yet known to be fully loaded.
    pending: Vec<(String, usize)>,
    /// Libraries known to be fully loaded, for the next walk to patch.
    ready: HashSet<(String, usize)>,
    libraries: usize,
}

impl Patches {
    /// Libraries with at least one replaced slot.
    pub fn libraries(&self) -> usize {
        self.libraries
    }

    /// Slots replaced.
    pub fn slots(&self) -> usize {
        self.written.len()
    }
}

/// Decides which loaded objects are never touched: by file name and load address.
pub type Skip<'a> = &'a dyn Fn(&str, usize) -> bool;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_STRSZ: i64 = 10;
const DT_JMPREL: i64 = 23;
/// At most this many dynamic entries are read (a real object has a few dozen).
const MAX_DYN: usize = 4096;

#[cfg(target_arch = "x86_64")]
const SLOT_RELOCATIONS: [u32; 2] = [6, 7]; // R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT
#[cfg(target_arch = "aarch64")]
const SLOT_RELOCATIONS: [u32; 2] = [1025, 1026]; // R_AARCH64_GLOB_DAT, R_AARCH64_JUMP_SLOT

#[repr(C)]
struct Dyn {
    tag: i64,
    val: u64,
}

#[repr(C)]
struct Rela {
    offset: u64,
    info: u64,
    addend: i64,
}

#[repr(C)]
struct Sym {
    name: u32,
    info: u8,
    other: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// What one object's dynamic section says about its relocations.
#[derive(Default)]
struct Dynamic {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    tables: [(usize, usize); 2],
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
}

/// The phdrs of an object, as a slice.
///
/// # Safety
/// `info` must come from `dl_iterate_phdr`'s callback, which is still running.
unsafe fn phdrs(info: &libc::dl_phdr_info) -> &[libc::Elf64_Phdr] {
    if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
        return &[];
    }
    // SAFETY: the loader's phdr table of this object, dlpi_phnum entries, alive during the callback.
    unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
}

fn object_name(info: &libc::dl_phdr_info) -> String {
    if info.dlpi_name.is_null() {
        return String::new();
    }
    // SAFETY: the loader's NUL-terminated name of this object, alive during the callback.
    unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy().into_owned()
}

/// The dynamic section's pointers, made absolute (glibc relocates them in place on most
/// targets; where it does not, they are below the load address).
///
/// # Safety
/// `dynamic` must point at the object's mapped `PT_DYNAMIC`, during the callback.
unsafe fn read_dynamic(dynamic: *const Dyn, bias: usize) -> Dynamic {
    let abs = |v: u64| -> usize {
        let v = v as usize;
        if v < bias {
            v.wrapping_add(bias)
        } else {
            v
        }
    };
    let mut d = Dynamic::default();
    let (mut jmprel, mut pltrelsz, mut rela, mut relasz) = (0, 0, 0, 0);
    for i in 0..MAX_DYN {
        // SAFETY: the dynamic array ends with DT_NULL, read no further than it.
        let e = unsafe { &*dynamic.add(i) };
        match e.tag {
            DT_NULL => break,
            DT_SYMTAB => d.symtab = abs(e.val),
            DT_STRTAB => d.strtab = abs(e.val),
            DT_STRSZ => d.strsz = e.val as usize,
            DT_JMPREL => jmprel = abs(e.val),
            DT_PLTRELSZ => pltrelsz = e.val as usize,
            DT_RELA => rela = abs(e.val),
            DT_RELASZ => relasz = e.val as usize,
            _ => {}
        }
    }
    d.tables = [(jmprel, pltrelsz), (rela, relasz)];
    d
}

/// The name of relocation `r`'s symbol, and whether this object defines that symbol itself.
///
/// # Safety
/// `d` must describe the mapped object of the running callback.
unsafe fn symbol_of(d: &Dynamic, r: &Rela) -> Option<(&'static CStr, bool)> {
    let index = (r.info >> 32) as usize;
    if index == 0 || d.symtab == 0 || d.strtab == 0 {
        return None;
    }
    // SAFETY: the relocation names an entry of the object's dynamic symbol table.
    let sym = unsafe { &*(d.symtab as *const Sym).add(index) };
    let at = sym.name as usize;
    if d.strsz != 0 && at >= d.strsz {
        return None;
    }
    // SAFETY: a NUL-terminated name inside the object's dynamic string table.
    let name = unsafe { CStr::from_ptr((d.strtab + at) as *const libc::c_char) };
    Some((name, sym.shndx != 0))
}

/// Writes `value` into `slot`, making its page writable for the moment when it lies in the
/// object's read-only-after-relocation part.
///
/// # Safety
/// `slot` must be a GOT slot of an object mapped for the running callback.
unsafe fn write_slot(slot: usize, value: usize, relro: Option<(usize, usize)>) -> bool {
    let page = page_size();
    let start = slot & !(page - 1);
    let read_only = relro.is_some_and(|(lo, hi)| {
        // The loader protects whole pages: from the page of the region's start up to the last
        // page boundary within it.
        slot >= (lo & !(page - 1)) && slot < (hi & !(page - 1))
    });
    if read_only {
        // SAFETY: a page of this object's own mapping; only its protection changes.
        if unsafe { libc::mprotect(start as *mut c_void, page, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return false;
        }
    }
    // SAFETY: an aligned, pointer-sized slot, now writable; other threads read it whole.
    unsafe { (*(slot as *const std::sync::atomic::AtomicUsize)).store(value, std::sync::atomic::Ordering::SeqCst) };
    if read_only {
        // SAFETY: as above, back to what the loader made it.
        unsafe { libc::mprotect(start as *mut c_void, page, libc::PROT_READ) };
    }
    true
}

struct Walk<'a> {
    targets: &'a [Target],
    skip: Skip<'a>,
    patches: &'a mut Patches,
    restore: bool,
}

/// Replaces the slots of one object (or puts back what was replaced in it).
///
/// # Safety
/// `info` must come from the running `dl_iterate_phdr` callback.
unsafe fn visit(info: &libc::dl_phdr_info, walk: &mut Walk<'_>) {
    let bias = info.dlpi_addr as usize;
    let name = object_name(info);
    // SAFETY: the running callback's object.
    let phdrs = unsafe { phdrs(info) };
    let mut dynamic = None;
    let mut relro = None;
    let mut ranges = Vec::new();
    for p in phdrs {
        let lo = bias.wrapping_add(p.p_vaddr as usize);
        let hi = lo.wrapping_add(p.p_memsz as usize);
        match p.p_type {
            PT_LOAD => ranges.push((lo, hi)),
            PT_DYNAMIC => dynamic = Some(lo as *const Dyn),
            PT_GNU_RELRO => relro = Some((lo, hi)),
            _ => {}
        }
    }
    if walk.restore {
        let relro_of = relro;
        let mine: Vec<Written> = walk.patches.written.iter().copied().filter(|w| w.object == bias).collect();
        for w in mine {
            if !ranges.iter().any(|(lo, hi)| w.slot >= *lo && w.slot + 8 <= *hi) {
                continue;
            }
            // SAFETY: a slot inside this object's mapping.
            let now = unsafe { *(w.slot as *const usize) };
            if now == w.hook {
                // SAFETY: as above.
                unsafe { write_slot(w.slot, w.original, relro_of) };
            }
        }
        return;
    }
    let key = (name.clone(), bias);
    if walk.patches.seen.contains(&key) {
        return;
    }
    // The main program (no name) is loaded before anything runs; any other library waits for
    // proof that its load has finished.
    if !name.is_empty() && !walk.patches.ready.remove(&key) {
        walk.patches.pending.push(key);
        return;
    }
    walk.patches.seen.insert(key);
    let Some(dynamic) = dynamic else { return };
    if (walk.skip)(&name, bias) {
        return;
    }
    // SAFETY: the object's mapped dynamic section.
    let d = unsafe { read_dynamic(dynamic, bias) };
    let mut found: Vec<(usize, usize)> = Vec::new();
    for (table, size) in d.tables {
        if table == 0 || size == 0 {
            continue;
        }
        let n = size / std::mem::size_of::<Rela>();
        for i in 0..n {
            // SAFETY: `n` relocations of the object's table.
            let r = unsafe { &*(table as *const Rela).add(i) };
            if !SLOT_RELOCATIONS.contains(&((r.info & 0xffff_ffff) as u32)) {
                continue;
            }
            // SAFETY: the same object.
            let Some((sym, defined)) = (unsafe { symbol_of(&d, r) }) else { continue };
            let Some(t) = walk.targets.iter().position(|t| t.name == sym) else { continue };
            if defined {
                // The object provides the function itself: an allocator, not a user of one.
                return;
            }
            found.push((bias.wrapping_add(r.offset as usize), t));
        }
    }
    let mut any = false;
    for (slot, t) in found {
        let target = walk.targets[t];
        if !ranges.iter().any(|(lo, hi)| slot >= *lo && slot + 8 <= *hi) || slot % 8 != 0 {
            continue;
        }
        // SAFETY: a slot inside this object's mapping.
        let now = unsafe { *(slot as *const usize) };
        let lazy = ranges.iter().any(|(lo, hi)| now >= *lo && now < *hi);
        if now != target.real && !lazy {
            continue;
        }
        // SAFETY: as above.
        if unsafe { write_slot(slot, target.hook, relro) } {
            walk.patches.written.push(Written { object: bias, slot, original: now, hook: target.hook });
            any = true;
        }
    }
    if any {
        walk.patches.libraries += 1;
    }
}

unsafe extern "C" fn callback(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> c_int {
    if info.is_null() || data.is_null() {
        return 0;
    }
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `data` is the `Walk` passed by `walk` below, alive for the whole iteration.
        let walk = unsafe { &mut *(data as *mut Walk<'_>) };
        // SAFETY: `info` is the loader's record of the object being visited.
        unsafe { visit(&*info, walk) };
    }));
    0
}

fn walk(w: &mut Walk<'_>) {
    // SAFETY: the callback only touches the object it is given and `w`, under the loader's lock.
    unsafe { libc::dl_iterate_phdr(Some(callback), (w as *mut Walk<'_>).cast()) };
}

/// Replaces the targets' slots in every loaded object not seen before and not skipped.
pub fn patch_new(patches: &mut Patches, targets: &[Target], skip: Skip<'_>) {
    walk(&mut Walk { targets, skip, patches, restore: false });
    let pending = std::mem::take(&mut patches.pending);
    if pending.is_empty() {
        return;
    }
    // Opening a loaded library again with RTLD_NOLOAD takes the loader's lock, so it returns
    // only once a load in progress has finished (relocated and protected). The handles keep
    // the libraries loaded until the walk that patches them is over.
    let mut handles = Vec::new();
    for (name, bias) in pending {
        if (skip)(&name, bias) {
            patches.seen.insert((name, bias));
            continue;
        }
        let Ok(path) = std::ffi::CString::new(name.as_bytes()) else { continue };
        // SAFETY: a NUL-terminated path; RTLD_NOLOAD never loads anything new.
        let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if h.is_null() {
            // Unloaded meanwhile, or a name the loader does not match: met again next time.
            continue;
        }
        patches.ready.insert((name, bias));
        handles.push(h);
    }
    walk(&mut Walk { targets, skip, patches, restore: false });
    patches.pending.clear();
    patches.ready.clear();
    for h in handles {
        // SAFETY: each handle came from the dlopen above and is closed once.
        unsafe { libc::dlclose(h) };
    }
}

/// Puts back every replaced slot of the objects still loaded whose slot still holds the hook,
/// and forgets them all.
pub fn restore(patches: &mut Patches) {
    walk(&mut Walk { targets: &[], skip: &|_, _| true, patches, restore: true });
    *patches = Patches::default();
}
