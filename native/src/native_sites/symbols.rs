//! Program counters of this process to frames: the loaded object that holds a pc (by file name)
//! and the function symbol that contains it.
//!
//! Objects come from `dl_iterate_phdr`: each one's load bias and the link-time ranges of its
//! `PT_LOAD` segments. The main program, whose loader name is empty, is read through
//! `/proc/self/exe`. An object's ELF file is read once, with positioned reads of the ELF header, the program and
//! section headers and one symbol table with its string table, into a compact address-sorted
//! table of function symbols; at most [`CACHE_OBJECTS`] tables are kept, keyed by path and bias.
//! `.symtab` is preferred because it also names static functions; `.dynsym` is the fallback for
//! stripped files. Symbol values are link-time addresses, so a pc compares as `pc - bias`.
//! When there is no file to trust (the vDSO, a library deleted after loading as some JNI loaders
//! do, a file replaced since), the exported symbols come from the object's dynamic section in
//! memory, read through `/proc/self/mem` so that a library unloaded meanwhile cannot fault.
//!
//! Invariants: ELF64 little-endian only. Every read is bounds-checked against the file and capped
//! in size, so a truncated, malformed or hostile file yields no symbols and never a panic. A file
//! whose `PT_LOAD` layout differs from the loaded one (replaced on disk since it was loaded) is
//! not trusted. Not for use inside a malloc hook: resolving allocates, reads files and locks.

use std::borrow::Cow;
use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::os::raw::{c_int, c_void};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

/// Symbol tables kept at most; the least recently used one is dropped beyond this.
pub const CACHE_OBJECTS: usize = 64;
/// Files larger than this are not read (no shared object of sane size comes near it).
const MAX_FILE_BYTES: u64 = 512 << 20;
/// Largest single read (a section header table, a symbol table or a string table).
const MAX_READ_BYTES: u64 = 256 << 20;
/// A symbol without size names a pc at most this far above its start: beyond it, the pc more
/// likely lies in an unnamed function than in a very large unsized one.
const UNSIZED_REACH: u64 = 64 << 10;
/// How many lower symbols are tried for one that encloses the pc (a sized symbol can be nested
/// inside a larger function, e.g. a local label or an alias with a smaller size).
const ENCLOSING_PROBES: usize = 8;
/// The library name of a pc that no loaded object holds (JIT code, anonymous mappings).
pub const UNKNOWN_LIBRARY: &str = "?";
const SELF_EXE: &str = "/proc/self/exe";

/// One resolved program counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// File name of the object holding the pc (`libz.so.1`, `libjvm.so`, `java`), or
    /// [`UNKNOWN_LIBRARY`].
    pub library: String,
    /// The function symbol containing the pc, as written in the file (not demangled).
    pub symbol: Option<String>,
    /// `pc - symbol start`; without a symbol, `pc - load bias` (the address `addr2line` takes),
    /// or the pc itself when no object holds it.
    pub offset: u64,
}

/// Resolves one pc of this process. Allocates, may read an ELF file and takes a lock.
pub fn frame(pc: usize) -> Frame {
    frames(&[pc]).pop().unwrap_or_else(|| unknown(pc))
}

/// Resolves many pcs with one walk of the loaded objects and one hold of the cache lock; the
/// result is in the order of `pcs`. Each pc is resolved as given: a return address taken from a
/// stack belongs one byte lower (inside the call) when the call ends its function.
pub fn frames(pcs: &[usize]) -> Vec<Frame> {
    if pcs.is_empty() {
        return Vec::new();
    }
    let objects = loaded_objects();
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    pcs.iter()
        .map(|&pc| resolve(&objects, &mut cache, pc))
        .collect()
}

/// The path and load bias of the object holding `pc` (for the main program, the path
/// `/proc/self/exe` links to).
pub fn object_of(pc: usize) -> Option<(String, usize)> {
    loaded_objects()
        .into_iter()
        .find(|o| o.contains(pc))
        .map(|o| (o.path, o.bias))
}

fn unknown(pc: usize) -> Frame {
    Frame {
        library: UNKNOWN_LIBRARY.to_owned(),
        symbol: None,
        offset: pc as u64,
    }
}

fn resolve(objects: &[LoadedObject], cache: &mut Cache, pc: usize) -> Frame {
    let Some(object) = objects.iter().find(|o| o.contains(pc)) else {
        return unknown(pc);
    };
    let relative = pc.wrapping_sub(object.bias) as u64;
    let library = object.library.clone();
    match cache.table(object).and_then(|t| t.lookup(relative)) {
        Some((name, offset)) => Frame {
            library,
            symbol: Some(name.to_owned()),
            offset,
        },
        None => Frame {
            library,
            symbol: None,
            offset: relative,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Loaded objects

/// A link-time address range of one `PT_LOAD` segment: start and size in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    vaddr: u64,
    memsz: u64,
}

#[derive(Debug)]
struct LoadedObject {
    /// The path the loader knows (for the main program, where `/proc/self/exe` points).
    path: String,
    /// The file to read symbols from; `None` when there is no file (the vDSO).
    file: Option<String>,
    library: String,
    bias: usize,
    loads: Vec<Segment>,
    /// The `PT_LOAD` segments holding code, for telling functions from data in memory.
    code: Vec<Segment>,
    /// The `PT_DYNAMIC` segment, read in memory when the file is gone or differs.
    dynamic: Option<Segment>,
}

impl LoadedObject {
    fn contains(&self, pc: usize) -> bool {
        let Some(relative) = pc.checked_sub(self.bias) else {
            return false;
        };
        let relative = relative as u64;
        self.loads
            .iter()
            .any(|s| relative >= s.vaddr && relative - s.vaddr < s.memsz)
    }
}

fn loaded_objects() -> Vec<LoadedObject> {
    let mut objects: Vec<LoadedObject> = Vec::new();
    // SAFETY: `collect_object` matches the callback signature dl_iterate_phdr expects and only
    // casts `data` back to the `Vec<LoadedObject>` passed here, which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect_object),
            (&mut objects as *mut Vec<LoadedObject>).cast::<c_void>(),
        );
    }
    let exe = std::fs::read_link(SELF_EXE).ok().map(|p| {
        p.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_owned()
    });
    for object in objects.iter_mut() {
        if object.path.is_empty() && object.file.as_deref() == Some(SELF_EXE) {
            if let Some(exe) = &exe {
                object.path.clone_from(exe);
                object.library = file_name(exe).to_owned();
            }
        }
    }
    objects
}

/// dl_iterate_phdr callback: copies one object's name, bias and loadable ranges.
unsafe extern "C" fn collect_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    if info.is_null() || data.is_null() {
        return 0;
    }
    // SAFETY: `data` is the `&mut Vec<LoadedObject>` given by `loaded_objects`, alive and not
    // otherwise borrowed during the walk; `info` points to the loader's record for this callback.
    let (objects, info) = unsafe { (&mut *data.cast::<Vec<LoadedObject>>(), &*info) };
    // A panic must not unwind into the loader; losing one object is harmless.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null dlpi_name is a NUL-terminated string owned by the loader for
            // the duration of the callback.
            unsafe { CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: the loader hands `dlpi_phnum` program headers at `dlpi_phdr`, mapped
            // while the object is loaded, which it stays for the whole callback.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let segment = |p: &libc::Elf64_Phdr| Segment {
            vaddr: p.p_vaddr,
            memsz: p.p_memsz,
        };
        let loads = phdrs
            .iter()
            .filter(|p| p.p_type == libc::PT_LOAD)
            .map(segment)
            .collect();
        let code = phdrs
            .iter()
            .filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_X != 0)
            .map(segment)
            .collect();
        let dynamic = phdrs
            .iter()
            .find(|p| p.p_type == libc::PT_DYNAMIC)
            .map(segment);
        let main_program = objects.is_empty() && name.is_empty();
        // Only a name with a slash is a path; the loader names the vDSO by its soname.
        let file = if main_program {
            Some(SELF_EXE.to_owned())
        } else if name.contains('/') {
            Some(name.clone())
        } else {
            None
        };
        let library = if name.is_empty() {
            UNKNOWN_LIBRARY.to_owned()
        } else {
            file_name(&name).to_owned()
        };
        objects.push(LoadedObject {
            path: name,
            file,
            library,
            bias: info.dlpi_addr as usize,
            loads,
            code,
            dynamic,
        });
    }));
    0
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

// ---------------------------------------------------------------------------------------------
// Cache

struct CacheEntry {
    path: String,
    bias: usize,
    /// `None` when the file could not be read or trusted: remembered so it is not retried.
    table: Option<SymbolTable>,
    last_used: u64,
}

struct Cache {
    entries: Vec<CacheEntry>,
    clock: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    clock: 0,
});

impl Cache {
    fn table(&mut self, object: &LoadedObject) -> Option<&SymbolTable> {
        self.clock += 1;
        let clock = self.clock;
        let index = match self
            .entries
            .iter()
            .position(|e| e.bias == object.bias && e.path == object.path)
        {
            Some(index) => index,
            None => {
                if self.entries.len() >= CACHE_OBJECTS {
                    if let Some(oldest) = self
                        .entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.last_used)
                        .map(|(i, _)| i)
                    {
                        self.entries.swap_remove(oldest);
                    }
                }
                self.entries.push(CacheEntry {
                    path: object.path.clone(),
                    bias: object.bias,
                    table: load_table(object),
                    last_used: clock,
                });
                self.entries.len() - 1
            }
        };
        let entry = self.entries.get_mut(index)?;
        entry.last_used = clock;
        entry.table.as_ref()
    }
}

/// The object's symbols from its file, else (no file, file gone as with libraries deleted after
/// loading, or replaced) its exported symbols from the dynamic table in memory.
fn load_table(object: &LoadedObject) -> Option<SymbolTable> {
    file_table(object)
        .or_else(|| memory_table(object))
        .filter(|t| !t.is_empty())
}

fn file_table(object: &LoadedObject) -> Option<SymbolTable> {
    let path = object.file.as_deref()?;
    // O_NONBLOCK: a FIFO planted at the path must not block the open; only regular files pass.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let source = FileSource {
        file,
        size: meta.len(),
    };
    let elf = read_elf(&source).ok()?;
    // A file replaced on disk since it was loaded would name the wrong functions.
    if !object.loads.is_empty() && elf.loads != object.loads {
        return None;
    }
    Some(elf.symbols)
}

// ---------------------------------------------------------------------------------------------
// Dynamic symbols in memory

const DYN_SIZE: u64 = 16;
const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const MAX_DYNAMIC_ENTRIES: u64 = 4096;
const MAX_DYNAMIC_SYMBOLS: u64 = 1 << 22;

/// This process's memory by address, read through `/proc/self/mem` so that an address unmapped
/// meanwhile (a library closed) is a failed read rather than a fault.
struct MemorySource {
    mem: File,
}

impl Source for MemorySource {
    fn size(&self) -> u64 {
        u64::MAX
    }

    fn read(&self, offset: u64, len: u64) -> Option<Cow<'_, [u8]>> {
        if len > MAX_READ_BYTES {
            return None;
        }
        offset.checked_add(len)?;
        let len = usize::try_from(len).ok()?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).ok()?;
        buf.resize(len, 0);
        self.mem.read_exact_at(&mut buf, offset).ok()?;
        Some(Cow::Owned(buf))
    }
}

fn u32_in(src: &MemorySource, addr: u64) -> Option<u32> {
    u32_at(&src.read(addr, 4)?, 0)
}

/// The exported function symbols of a loaded object, from its dynamic section in memory.
fn memory_table(object: &LoadedObject) -> Option<SymbolTable> {
    let dynamic = object.dynamic?;
    let mem = MemorySource {
        mem: File::open("/proc/self/mem").ok()?,
    };
    let bias = object.bias as u64;
    let entries = mem.read(
        bias.checked_add(dynamic.vaddr)?,
        dynamic.memsz.min(MAX_DYNAMIC_ENTRIES * DYN_SIZE),
    )?;
    let (mut hash, mut gnu_hash, mut symtab, mut strtab, mut strsz) =
        (None, None, None, None, None);
    for entry in entries.chunks_exact(DYN_SIZE as usize) {
        let (tag, value) = (u64_at(entry, 0)?, u64_at(entry, 8)?);
        match tag {
            DT_NULL => break,
            DT_HASH => hash = Some(value),
            DT_GNU_HASH => gnu_hash = Some(value),
            DT_SYMTAB => symtab = Some(value),
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            DT_SYMENT if value != SYM_SIZE => return None,
            _ => {}
        }
    }
    // The loader rewrites these to run-time addresses where the dynamic section is writable; a
    // read-only one (the vDSO's) keeps link-time values, which lie below the bias.
    let absolute = |v: u64| {
        if v < bias {
            v.checked_add(bias)
        } else {
            Some(v)
        }
    };
    let count = match (hash, gnu_hash) {
        (Some(h), _) => u32_in(&mem, absolute(h)?.checked_add(4)?).map(u64::from),
        (None, Some(g)) => gnu_hash_symbols(&mem, absolute(g)?),
        (None, None) => None,
    }?;
    let symbols = mem.read(
        absolute(symtab?)?,
        count.min(MAX_DYNAMIC_SYMBOLS) * SYM_SIZE,
    )?;
    let names = mem.read(absolute(strtab?)?, strsz?.min(MAX_READ_BYTES))?;
    let in_code = |_shndx: u16, addr: u64| {
        object
            .code
            .iter()
            .any(|s| addr >= s.vaddr && addr - s.vaddr < s.memsz)
    };
    Some(SymbolTable::build(&symbols, &names, in_code))
}

/// The number of dynamic symbols, from a GNU hash table: one past the last entry of the
/// highest bucket's chain (the table holds no count of its own).
fn gnu_hash_symbols(mem: &MemorySource, table: u64) -> Option<u64> {
    let header = mem.read(table, 16)?;
    let buckets = u64::from(u32_at(&header, 0)?);
    let first = u64::from(u32_at(&header, 4)?);
    let bloom_words = u64::from(u32_at(&header, 8)?);
    if buckets > MAX_DYNAMIC_SYMBOLS || bloom_words > MAX_DYNAMIC_SYMBOLS {
        return None;
    }
    let buckets_at = table.checked_add(16)?.checked_add(bloom_words * 8)?;
    let bucket_bytes = mem.read(buckets_at, buckets * 4)?;
    let last = bucket_bytes
        .chunks_exact(4)
        .filter_map(|b| u32_at(b, 0))
        .max()
        .map(u64::from)
        .unwrap_or(0);
    if last < first {
        return Some(first);
    }
    let chains_at = buckets_at.checked_add(buckets * 4)?;
    // A chain ends at the entry whose low bit is set.
    for index in last..first.checked_add(MAX_DYNAMIC_SYMBOLS)? {
        let hash = u32_in(mem, chains_at.checked_add((index - first) * 4)?)?;
        if hash & 1 != 0 {
            return Some(index + 1);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// ELF64 little-endian reading

/// Bytes of an ELF image by offset, from memory or by positioned reads of a file.
trait Source {
    fn size(&self) -> u64;
    /// `len` bytes at `offset`, or `None` when out of bounds, too large or unreadable.
    fn read(&self, offset: u64, len: u64) -> Option<Cow<'_, [u8]>>;
}

impl Source for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, offset: u64, len: u64) -> Option<Cow<'_, [u8]>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.get(start..end).map(Cow::Borrowed)
    }
}

struct FileSource {
    file: File,
    size: u64,
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, len: u64) -> Option<Cow<'_, [u8]>> {
        if len > MAX_READ_BYTES || offset.checked_add(len)? > self.size {
            return None;
        }
        let len = usize::try_from(len).ok()?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).ok()?;
        buf.resize(len, 0);
        self.file.read_exact_at(&mut buf, offset).ok()?;
        Some(Cow::Owned(buf))
    }
}

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const SHDR_SIZE: u64 = 64;
const SYM_SIZE: u64 = 24;
const PN_XNUM: u16 = 0xffff;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_DYNSYM: u32 = 11;
const SHF_EXECINSTR: u64 = 0x4;
const SHN_UNDEF: u16 = 0;
const SHN_LORESERVE: u16 = 0xff00;
const SHN_XINDEX: u16 = 0xffff;
const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
/// More sections than this is not a real object (extended numbering allows 2^32).
const MAX_SECTIONS: u64 = 1 << 20;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)?
        .try_into()
        .ok()
        .map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

struct Header {
    phoff: u64,
    phnum: u16,
    shoff: u64,
    shnum: u16,
}

fn parse_header(b: &[u8]) -> Result<Header, &'static str> {
    if b.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file");
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not ELF64 little-endian");
    }
    let field16 = |at| u16_at(b, at).ok_or("truncated ELF header");
    let field64 = |at| u64_at(b, at).ok_or("truncated ELF header");
    let header = Header {
        phoff: field64(32)?,
        phnum: field16(56)?,
        shoff: field64(40)?,
        shnum: field16(60)?,
    };
    if header.phnum != 0 && u64::from(field16(54)?) != PHDR_SIZE {
        return Err("unexpected program header size");
    }
    if header.shoff != 0 && u64::from(field16(58)?) != SHDR_SIZE {
        return Err("unexpected section header size");
    }
    Ok(header)
}

#[derive(Clone, Copy)]
struct Section {
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    entsize: u64,
}

fn parse_section(b: &[u8]) -> Option<Section> {
    Some(Section {
        kind: u32_at(b, 4)?,
        flags: u64_at(b, 8)?,
        offset: u64_at(b, 24)?,
        size: u64_at(b, 32)?,
        link: u32_at(b, 40)?,
        entsize: u64_at(b, 56)?,
    })
}

/// What symbol resolution needs from one ELF file.
struct ElfImage {
    loads: Vec<Segment>,
    symbols: SymbolTable,
}

fn read_elf<S: Source + ?Sized>(src: &S) -> Result<ElfImage, &'static str> {
    if src.size() > MAX_FILE_BYTES {
        return Err("file too large");
    }
    let header = parse_header(&src.read(0, EHDR_SIZE).ok_or("truncated ELF header")?)?;

    let mut loads = Vec::new();
    if header.phnum != 0 && header.phnum != PN_XNUM {
        let len = u64::from(header.phnum) * PHDR_SIZE;
        let table = src
            .read(header.phoff, len)
            .ok_or("program headers out of bounds")?;
        for ph in table.chunks_exact(PHDR_SIZE as usize) {
            if u32_at(ph, 0) == Some(libc::PT_LOAD) {
                loads.push(Segment {
                    vaddr: u64_at(ph, 16).ok_or("truncated program header")?,
                    memsz: u64_at(ph, 40).ok_or("truncated program header")?,
                });
            }
        }
    }

    if header.shoff == 0 {
        return Err("no section headers");
    }
    let mut count = u64::from(header.shnum);
    if count == 0 {
        // Extended numbering: the real count sits in section 0's size.
        let first = src
            .read(header.shoff, SHDR_SIZE)
            .ok_or("section headers out of bounds")?;
        count = parse_section(&first)
            .ok_or("truncated section header")?
            .size;
    }
    if count == 0 || count > MAX_SECTIONS {
        return Err("implausible section count");
    }
    let table = src
        .read(header.shoff, count * SHDR_SIZE)
        .ok_or("section headers out of bounds")?;
    let sections: Vec<Section> = table
        .chunks_exact(SHDR_SIZE as usize)
        .filter_map(parse_section)
        .collect();

    let mut problem = "no symbol table";
    for kind in [SHT_SYMTAB, SHT_DYNSYM] {
        let Some(section) = sections.iter().find(|s| s.kind == kind) else {
            continue;
        };
        match read_symbols(src, section, &sections) {
            Ok(symbols) if !symbols.is_empty() => return Ok(ElfImage { loads, symbols }),
            Ok(_) => problem = "no function symbols",
            Err(e) => problem = e,
        }
    }
    Err(problem)
}

fn read_symbols<S: Source + ?Sized>(
    src: &S,
    symtab: &Section,
    sections: &[Section],
) -> Result<SymbolTable, &'static str> {
    if symtab.entsize != SYM_SIZE && symtab.entsize != 0 {
        return Err("unexpected symbol size");
    }
    let strtab = usize::try_from(symtab.link)
        .ok()
        .and_then(|i| sections.get(i))
        .filter(|s| s.kind == SHT_STRTAB)
        .ok_or("symbol table without string table")?;
    let names = src
        .read(strtab.offset, strtab.size)
        .ok_or("string table out of bounds")?;
    let symbols = src
        .read(symtab.offset, symtab.size)
        .ok_or("symbol table out of bounds")?;
    let in_code = |shndx: u16, _addr: u64| {
        sections
            .get(usize::from(shndx))
            .is_some_and(|s| s.flags & SHF_EXECINSTR != 0)
    };
    Ok(SymbolTable::build(&symbols, &names, in_code))
}

/// The function symbols of one object, by link-time address. Each address holds one name.
#[derive(Debug, Default)]
pub struct SymbolTable {
    entries: Vec<Entry>,
    /// All names, each followed by a NUL.
    names: String,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: u64,
    size: u32,
    name: u32,
}

impl SymbolTable {
    /// Parses the symbols of a whole ELF64 little-endian image held in memory (`.symtab`, else
    /// `.dynsym`). Never panics, whatever the bytes.
    pub fn parse(image: &[u8]) -> Result<SymbolTable, &'static str> {
        read_elf(image).map(|elf| elf.symbols)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The symbol containing link-time address `addr` and the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let below = self.entries.partition_point(|e| e.addr <= addr);
        let lower = self.entries.get(..below)?;
        for e in lower.iter().rev().take(ENCLOSING_PROBES) {
            if e.size != 0 && addr - e.addr < u64::from(e.size) {
                return Some((self.name(e)?, addr - e.addr));
            }
        }
        let nearest = lower.last()?;
        if nearest.size == 0 && addr - nearest.addr <= UNSIZED_REACH {
            return Some((self.name(nearest)?, addr - nearest.addr));
        }
        None
    }

    fn name(&self, e: &Entry) -> Option<&str> {
        let start = usize::try_from(e.name).ok()?;
        let rest = self.names.get(start..)?;
        rest.split('\0').next()
    }

    /// `is_code(section index, address)` tells whether a symbol lies in code.
    fn build(symbols: &[u8], strtab: &[u8], is_code: impl Fn(u16, u64) -> bool) -> SymbolTable {
        struct Candidate<'a> {
            addr: u64,
            size: u64,
            /// Lower is preferred among aliases at one address: sized, fewer leading
            /// underscores (`malloc` over `__libc_malloc`), global over weak over local, shorter.
            rank: (bool, usize, u8, usize),
            name: &'a [u8],
        }
        let mut candidates = Vec::new();
        for sym in symbols.chunks_exact(SYM_SIZE as usize) {
            let (Some(name_at), Some(&info), Some(shndx), Some(addr), Some(size)) = (
                u32_at(sym, 0),
                sym.get(4),
                u16_at(sym, 6),
                u64_at(sym, 8),
                u64_at(sym, 16),
            ) else {
                continue;
            };
            let kind = info & 0xf;
            let binding = info >> 4;
            let function = match kind {
                STT_FUNC | STT_GNU_IFUNC => true,
                STT_NOTYPE => size > 0,
                _ => false,
            };
            if !function || shndx == SHN_UNDEF || addr == 0 {
                continue;
            }
            if shndx >= SHN_LORESERVE {
                // Absolute and common symbols are not code; an index too large for the field
                // (in SHT_SYMTAB_SHNDX) is not worth reading for functions.
                if shndx != SHN_XINDEX {
                    continue;
                }
            } else {
                if !is_code(shndx, addr) {
                    continue;
                }
            }
            let Some(name) = c_string_at(strtab, name_at) else {
                continue;
            };
            let underscores = name.iter().take_while(|&&c| c == b'_').count();
            let binding_rank = match binding {
                STB_GLOBAL => 0,
                STB_LOCAL => 2,
                _ => 1,
            };
            candidates.push(Candidate {
                addr,
                size,
                rank: (size == 0, underscores, binding_rank, name.len()),
                name,
            });
        }
        candidates.sort_unstable_by(|a, b| a.addr.cmp(&b.addr).then(a.rank.cmp(&b.rank)));
        candidates.dedup_by_key(|c| c.addr);

        let mut table = SymbolTable {
            entries: Vec::with_capacity(candidates.len()),
            names: String::new(),
        };
        for c in candidates {
            let Ok(name) = u32::try_from(table.names.len()) else {
                break;
            };
            table.names.push_str(&String::from_utf8_lossy(c.name));
            table.names.push('\0');
            table.entries.push(Entry {
                addr: c.addr,
                size: u32::try_from(c.size).unwrap_or(u32::MAX),
                name,
            });
        }
        table.names.shrink_to_fit();
        table
    }
}

/// The non-empty NUL-terminated string at `at` in a string table.
fn c_string_at(strtab: &[u8], at: u32) -> Option<&[u8]> {
    let rest = strtab.get(usize::try_from(at).ok()?..)?;
    let end = memchr::memchr(0, rest)?;
    rest.get(..end).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::ffi::CString;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const STB_WEAK: u8 = 2;
    const STT_OBJECT: u8 = 1;
    const TEXT: u16 = 1;
    const DATA: u16 = 2;

    struct Sym {
        name: &'static str,
        addr: u64,
        size: u64,
        kind: u8,
        binding: u8,
        shndx: u16,
    }

    fn func(name: &'static str, addr: u64, size: u64) -> Sym {
        Sym {
            name,
            addr,
            size,
            kind: STT_FUNC,
            binding: STB_GLOBAL,
            shndx: TEXT,
        }
    }

    fn put_u16(b: &mut Vec<u8>, v: u16) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(b: &mut Vec<u8>, v: u32) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(b: &mut Vec<u8>, v: u64) {
        b.extend_from_slice(&v.to_le_bytes());
    }

    /// A minimal ELF64 shared object image: one PT_LOAD, sections null, .text (executable),
    /// .data, then per table a symbol section of `kind` and its string table.
    fn synthetic_elf(tables: &[(u32, &[Sym])]) -> Vec<u8> {
        let mut blobs: Vec<(u32, u32, Vec<u8>)> = Vec::new(); // (kind, link, bytes)
        for (kind, syms) in tables {
            let mut strtab = vec![0u8];
            let mut symtab = vec![0u8; SYM_SIZE as usize];
            for s in syms.iter() {
                let name_at = strtab.len() as u32;
                strtab.extend_from_slice(s.name.as_bytes());
                strtab.push(0);
                put_u32(&mut symtab, name_at);
                symtab.push((s.binding << 4) | s.kind);
                symtab.push(0);
                put_u16(&mut symtab, s.shndx);
                put_u64(&mut symtab, s.addr);
                put_u64(&mut symtab, s.size);
            }
            let strtab_index = 3 + blobs.len() as u32 + 1;
            blobs.push((*kind, strtab_index, symtab));
            blobs.push((SHT_STRTAB, 0, strtab));
        }
        let mut out = vec![0u8; (EHDR_SIZE + PHDR_SIZE) as usize];
        let mut placed = Vec::new();
        for (_, _, bytes) in &blobs {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            placed.push(out.len() as u64);
            out.extend_from_slice(bytes);
        }
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        let section = |out: &mut Vec<u8>,
                       kind: u32,
                       flags: u64,
                       off: u64,
                       size: u64,
                       link: u32,
                       entsize: u64| {
            put_u32(out, 0);
            put_u32(out, kind);
            put_u64(out, flags);
            put_u64(out, 0);
            put_u64(out, off);
            put_u64(out, size);
            put_u32(out, link);
            put_u32(out, 0);
            put_u64(out, 8);
            put_u64(out, entsize);
        };
        section(&mut out, 0, 0, 0, 0, 0, 0);
        section(&mut out, 1, 0x6, 0, 0, 0, 0);
        section(&mut out, 1, 0x3, 0, 0, 0, 0);
        for ((kind, link, bytes), off) in blobs.iter().zip(&placed) {
            let entsize = if *kind == SHT_STRTAB { 0 } else { SYM_SIZE };
            section(&mut out, *kind, 0, *off, bytes.len() as u64, *link, entsize);
        }
        let shnum = 3 + blobs.len() as u16;
        let mut header = Vec::new();
        header.extend_from_slice(b"\x7fELF\x02\x01\x01");
        header.resize(16, 0);
        put_u16(&mut header, 3); // ET_DYN
        put_u16(&mut header, 62); // x86-64
        put_u32(&mut header, 1);
        put_u64(&mut header, 0);
        put_u64(&mut header, EHDR_SIZE); // phoff
        put_u64(&mut header, shoff);
        put_u32(&mut header, 0);
        put_u16(&mut header, EHDR_SIZE as u16);
        put_u16(&mut header, PHDR_SIZE as u16);
        put_u16(&mut header, 1);
        put_u16(&mut header, SHDR_SIZE as u16);
        put_u16(&mut header, shnum);
        put_u16(&mut header, 0);
        let mut phdr = Vec::new();
        put_u32(&mut phdr, libc::PT_LOAD);
        put_u32(&mut phdr, 5);
        put_u64(&mut phdr, 0);
        put_u64(&mut phdr, 0);
        put_u64(&mut phdr, 0);
        put_u64(&mut phdr, 0x100000);
        put_u64(&mut phdr, 0x100000);
        put_u64(&mut phdr, 0x1000);
        header.extend_from_slice(&phdr);
        out[..header.len()].copy_from_slice(&header);
        out
    }

    fn lookup(table: &SymbolTable, addr: u64) -> Option<(String, u64)> {
        table.lookup(addr).map(|(n, o)| (n.to_owned(), o))
    }

    fn some(name: &str, offset: u64) -> Option<(String, u64)> {
        Some((name.to_owned(), offset))
    }

    #[test]
    fn picks_the_enclosing_function_and_applies_the_rules() {
        let syms = [
            func("sized", 0x1000, 0x100),
            Sym {
                binding: STB_GLOBAL,
                ..func("__libc_thing", 0x2000, 0x40)
            },
            Sym {
                binding: STB_WEAK,
                ..func("thing", 0x2000, 0x40)
            },
            Sym {
                kind: STT_NOTYPE,
                shndx: DATA,
                ..func("data_blob", 0x3000, 0x10)
            },
            Sym {
                kind: STT_OBJECT,
                ..func("object_in_text", 0x3800, 0x10)
            },
            Sym {
                shndx: SHN_UNDEF,
                ..func("undefined", 0x4000, 0x10)
            },
            func("outer", 0x5000, 0x1000),
            func("inner", 0x5100, 0x10),
            Sym {
                kind: STT_GNU_IFUNC,
                ..func("resolver_chosen", 0x7000, 0x10)
            },
            Sym {
                kind: STT_NOTYPE,
                ..func("asm_sized", 0x8000, 0x20)
            },
            Sym {
                kind: STT_NOTYPE,
                ..func("asm_unsized", 0x9000, 0)
            },
            func("unsized", 0x10000, 0),
        ];
        let image = synthetic_elf(&[(SHT_SYMTAB, &syms)]);
        let table = SymbolTable::parse(&image).expect("parses");
        assert_eq!(lookup(&table, 0x1010), some("sized", 0x10));
        assert_eq!(lookup(&table, 0x10ff), some("sized", 0xff));
        assert_eq!(lookup(&table, 0x1100), None, "just past a sized function");
        assert_eq!(lookup(&table, 0x10), None, "below every symbol");
        assert_eq!(
            lookup(&table, 0x2008),
            some("thing", 8),
            "alias without underscores wins"
        );
        assert_eq!(
            lookup(&table, 0x3004),
            None,
            "NOTYPE in a data section is no function"
        );
        assert_eq!(lookup(&table, 0x3804), None, "objects are no functions");
        assert_eq!(
            lookup(&table, 0x4004),
            None,
            "undefined symbols name nothing"
        );
        assert_eq!(lookup(&table, 0x5108), some("inner", 8));
        assert_eq!(
            lookup(&table, 0x5200),
            some("outer", 0x200),
            "enclosing after a nested one"
        );
        assert_eq!(lookup(&table, 0x7001), some("resolver_chosen", 1));
        assert_eq!(lookup(&table, 0x8001), some("asm_sized", 1));
        assert_eq!(
            lookup(&table, 0x9001),
            None,
            "NOTYPE without size is a label, not a function"
        );
        assert_eq!(lookup(&table, 0x10800), some("unsized", 0x800));
        assert_eq!(
            lookup(&table, 0x10000 + UNSIZED_REACH),
            some("unsized", UNSIZED_REACH)
        );
        assert_eq!(
            lookup(&table, 0x10001 + UNSIZED_REACH),
            None,
            "too far from an unsized one"
        );
    }

    #[test]
    fn prefers_symtab_and_falls_back_to_dynsym() {
        let full = [
            func("exported", 0x1000, 0x10),
            func("local_only", 0x2000, 0x10),
        ];
        let dynamic = [func("exported", 0x1000, 0x10)];
        let both = synthetic_elf(&[(SHT_DYNSYM, &dynamic), (SHT_SYMTAB, &full)]);
        let table = SymbolTable::parse(&both).expect("parses");
        assert_eq!(lookup(&table, 0x2004), some("local_only", 4));
        let stripped = synthetic_elf(&[(SHT_DYNSYM, &dynamic)]);
        let table = SymbolTable::parse(&stripped).expect("parses");
        assert_eq!(lookup(&table, 0x1004), some("exported", 4));
        assert_eq!(lookup(&table, 0x2004), None);
        let useless_symtab = [Sym {
            kind: STT_OBJECT,
            ..func("a_variable", 0x3000, 8)
        }];
        let image = synthetic_elf(&[(SHT_SYMTAB, &useless_symtab), (SHT_DYNSYM, &dynamic)]);
        let table = SymbolTable::parse(&image).expect("parses");
        assert_eq!(lookup(&table, 0x1004), some("exported", 4));
    }

    #[test]
    fn hostile_headers_are_refused() {
        let syms = [func("f", 0x1000, 0x10)];
        let good = synthetic_elf(&[(SHT_SYMTAB, &syms)]);
        let patched = |at: usize, bytes: &[u8]| {
            let mut image = good.clone();
            image[at..at + bytes.len()].copy_from_slice(bytes);
            SymbolTable::parse(&image).map(|t| t.len())
        };
        assert_eq!(patched(0, b"\x7fELG"), Err("not an ELF file"));
        assert_eq!(patched(4, &[1]), Err("not ELF64 little-endian"));
        assert_eq!(patched(5, &[2]), Err("not ELF64 little-endian"));
        assert!(
            patched(40, &u64::MAX.to_le_bytes()).is_err(),
            "shoff at the end of the space"
        );
        assert!(
            patched(32, &(u64::MAX - 8).to_le_bytes()).is_err(),
            "phoff overflowing"
        );
        assert!(
            patched(60, &0u16.to_le_bytes()).is_err(),
            "extended count of zero"
        );
        assert!(
            patched(58, &40u16.to_le_bytes()).is_err(),
            "odd section header size"
        );
        assert_eq!(patched(0, b"\x7fELF"), Ok(1));
        for len in 0..good.len() {
            let _ = SymbolTable::parse(&good[..len]);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = SymbolTable::parse(&bytes);
            let mut with_magic = b"\x7fELF\x02\x01\x01".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = SymbolTable::parse(&with_magic);
        }

        #[test]
        fn garbled_elf_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
            cut in any::<prop::sample::Index>(),
        ) {
            let syms = [func("a", 0x1000, 0x10), func("b", 0x1010, 0), func("c", 0x2000, 0x100)];
            let mut image = synthetic_elf(&[(SHT_DYNSYM, &syms[..1]), (SHT_SYMTAB, &syms)]);
            for (at, value) in &edits {
                let i = at.index(image.len());
                image[i] = *value;
            }
            if let Ok(table) = SymbolTable::parse(&image) {
                for addr in [0, 0x1000, 0x1011, 0x2050, u64::MAX] {
                    let _ = table.lookup(addr);
                }
            }
            let keep = cut.index(image.len() + 1);
            let _ = SymbolTable::parse(&image[..keep]);
        }
    }

    #[test]
    fn resolves_malloc_in_libc() {
        let malloc = libc::malloc as *const () as usize;
        let f = frame(malloc + 4);
        assert!(f.library.starts_with("libc.so"), "{f:?}");
        assert_eq!(f.offset, 4, "{f:?}");
        let name = f.symbol.clone().expect("malloc has a symbol");
        // glibc gives malloc aliases; any name bound to malloc's address is right.
        let c_name = CString::new(name.clone()).expect("no NUL");
        // SAFETY: dlsym with RTLD_DEFAULT and a valid C string only looks the name up.
        let same = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c_name.as_ptr()) } as usize;
        assert!(
            name == "malloc" || same == malloc,
            "{name} is not malloc ({same:#x} vs {malloc:#x})"
        );
        let (path, bias) = object_of(malloc).expect("libc is loaded");
        assert!(path.contains("libc.so"), "{path}");
        assert!(bias > 0 && bias < malloc);
    }

    #[inline(never)]
    extern "C" fn nsyms_probe_target(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(31) ^ 7
    }

    #[test]
    fn resolves_a_function_of_the_test_binary_from_symtab() {
        assert_eq!(nsyms_probe_target(1), 24);
        let pc = nsyms_probe_target as *const () as usize + 1;
        let f = frame(pc);
        let exe = std::env::current_exe().expect("current exe");
        let exe_name = exe.file_name().and_then(|n| n.to_str()).expect("exe name");
        assert_eq!(f.library, exe_name, "{f:?}");
        assert!(
            f.symbol
                .as_deref()
                .is_some_and(|s| s.contains("nsyms_probe_target")),
            "{f:?}"
        );
        assert_eq!(f.offset, 1, "{f:?}");
    }

    #[test]
    fn resolves_many_in_order_and_unknown_pcs() {
        let pcs = [
            0usize,
            libc::free as *const () as usize,
            nsyms_probe_target as *const () as usize,
            1,
        ];
        let got = frames(&pcs);
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            Frame {
                library: UNKNOWN_LIBRARY.to_owned(),
                symbol: None,
                offset: 0
            }
        );
        assert!(got[1].library.starts_with("libc.so"), "{:?}", got[1]);
        assert!(got[2]
            .symbol
            .as_deref()
            .is_some_and(|s| s.contains("nsyms_probe_target")));
        assert_eq!(got[3].library, UNKNOWN_LIBRARY);
        assert!(frames(&[]).is_empty());
        // Heap memory is no loaded object.
        let heap = Box::new(7u64);
        assert_eq!(
            frame(&*heap as *const u64 as usize).library,
            UNKNOWN_LIBRARY
        );
    }

    #[test]
    fn names_functions_of_the_vdso_from_memory() {
        // SAFETY: getauxval only reads the auxiliary vector.
        let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        assert_ne!(base, 0, "no vDSO");
        let pcs: Vec<usize> = (0..0x4000).step_by(4).map(|o| base + o).collect();
        let got = frames(&pcs);
        assert!(
            got.iter().any(|f| f.library == "linux-vdso.so.1"
                && f.symbol
                    .as_deref()
                    .is_some_and(|s| s.ends_with("clock_gettime"))),
            "no clock_gettime in the vDSO"
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = Cache {
            entries: Vec::new(),
            clock: 0,
        };
        for i in 0..(CACHE_OBJECTS * 3) {
            let object = LoadedObject {
                path: format!("/nonexistent/lib{i}.so"),
                file: Some(format!("/nonexistent/lib{i}.so")),
                library: format!("lib{i}.so"),
                bias: i * 0x1000,
                loads: Vec::new(),
                code: Vec::new(),
                dynamic: None,
            };
            assert!(cache.table(&object).is_none());
            assert!(cache.entries.len() <= CACHE_OBJECTS);
        }
        assert_eq!(cache.entries.len(), CACHE_OBJECTS);
    }

    const C_SOURCE: &str = r#"
static __attribute__((noinline)) int nsyms_hidden_static(int x) { return x * 3 + 1; }
int nsyms_exported(int x) { return nsyms_hidden_static(x) + 2; }
void *nsyms_static_address(void) { return (void *)&nsyms_hidden_static; }
"#;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("nsyms-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn compile(dir: &Path, name: &str, source: &str) -> PathBuf {
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, source).expect("write source");
        let lib = dir.join(format!("{name}.so"));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-g", "-o"])
            .arg(&lib)
            .arg(&c)
            .status()
            .expect("cc runs");
        assert!(status.success(), "cc failed for {name}");
        lib
    }

    /// dlopens `lib` (never closed: other tests may resolve concurrently) and returns the
    /// addresses of the exported and of the static function.
    fn open(lib: &Path) -> (usize, usize) {
        let path = CString::new(lib.to_str().expect("utf-8 path")).expect("no NUL");
        // SAFETY: a valid path to a library built above, whose constructors are empty.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "dlopen {lib:?}");
        let sym = |name: &str| {
            let c = CString::new(name).expect("no NUL");
            // SAFETY: the handle is open and the name a valid C string.
            let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
            assert!(!p.is_null(), "dlsym {name}");
            p as usize
        };
        let exported = sym("nsyms_exported");
        let getter = sym("nsyms_static_address");
        // SAFETY: the symbol is `void *nsyms_static_address(void)` from C_SOURCE.
        let getter: extern "C" fn() -> usize = unsafe { std::mem::transmute(getter) };
        (exported, getter())
    }

    #[test]
    fn resolves_static_and_exported_functions_of_a_dlopened_library() {
        let dir = TempDir::new("symtab");
        let lib = compile(&dir.0, "libnsymsfull", C_SOURCE);
        let (exported, hidden) = open(&lib);
        let got = frames(&[exported + 1, hidden + 1]);
        let want = |symbol: &str| Frame {
            library: "libnsymsfull.so".to_owned(),
            symbol: Some(symbol.to_owned()),
            offset: 1,
        };
        assert_eq!(
            got,
            vec![want("nsyms_exported"), want("nsyms_hidden_static")]
        );
    }

    #[test]
    fn a_stripped_library_names_its_exports_from_dynsym() {
        let dir = TempDir::new("dynsym");
        let lib = compile(&dir.0, "libnsymsstripped", C_SOURCE);
        let status = Command::new("strip")
            .arg("--strip-all")
            .arg(&lib)
            .status()
            .expect("strip runs");
        assert!(status.success());
        let (exported, hidden) = open(&lib);
        let (_, bias) = object_of(hidden).expect("loaded");
        let got = frames(&[exported + 1, hidden + 1]);
        assert_eq!(got[0].symbol.as_deref(), Some("nsyms_exported"), "{got:?}");
        assert_eq!(got[1].library, "libnsymsstripped.so");
        assert_eq!(
            got[1].symbol, None,
            "a static function has no dynamic symbol: {got:?}"
        );
        assert_eq!(got[1].offset, (hidden + 1 - bias) as u64);
    }

    #[test]
    fn a_library_deleted_after_loading_names_its_exports_from_memory() {
        let dir = TempDir::new("deleted");
        let lib = compile(&dir.0, "libnsymsdeleted", C_SOURCE);
        let (exported, hidden) = open(&lib);
        std::fs::remove_file(&lib).expect("delete");
        let (_, bias) = object_of(hidden).expect("loaded");
        let got = frames(&[exported + 1, hidden + 1]);
        assert_eq!(got[0].library, "libnsymsdeleted.so");
        assert_eq!(got[0].symbol.as_deref(), Some("nsyms_exported"), "{got:?}");
        assert_eq!(got[0].offset, 1);
        assert_eq!(
            got[1].symbol, None,
            "a static function has no dynamic symbol: {got:?}"
        );
        assert_eq!(got[1].offset, (hidden + 1 - bias) as u64);
    }

    #[test]
    fn a_library_replaced_on_disk_is_not_trusted() {
        let dir = TempDir::new("replaced");
        let lib = compile(&dir.0, "libnsymsreplaced", C_SOURCE);
        let (exported, _) = open(&lib);
        // Another build with a different layout takes the path; the loaded mapping keeps the
        // old inode, so the file now describes code that is not in memory.
        // Code placed first shifts every function of the original.
        let bigger = format!(
            "char nsyms_padding[1 << 20] = {{1}};\n\
             int nsyms_first(int x) {{ return nsyms_padding[x] * 5 + nsyms_padding[x + 1]; }}\n\
             {C_SOURCE}"
        );
        let other = compile(&dir.0, "libnsymsother", &bigger);
        std::fs::rename(&other, &lib).expect("replace");
        // The file is not read; memory still holds the exported names of what runs.
        let f = frame(exported + 1);
        assert_eq!(
            f,
            Frame {
                library: "libnsymsreplaced.so".to_owned(),
                symbol: Some("nsyms_exported".to_owned()),
                offset: 1
            }
        );
    }
}
