//! Parser of `/proc/PID/smaps`: one [`Mapping`] per VMA, with the sizes the breakdown needs.
//!
//! The text is read by the caller (a sample reads it into a reused buffer) and handed over as
//! bytes, so tests feed captured text and the parser never touches the file system. smaps of a
//! big JVM runs to a few thousand mappings and tens of thousands of lines per sample, so the
//! parser is a hand-written byte scanner: lines are found with `memchr`, known keys are matched
//! as byte slices and numbers are folded digit by digit; only a mapping's path is allocated.
//!
//! Anything it does not understand (an unknown key, a cut line, a value without digits) is
//! skipped rather than reported: the kernel adds keys over the years, and one odd line must not
//! cost the whole sample. Field lines met before any valid header, or after a malformed header,
//! are dropped so they cannot be credited to the wrong mapping.

use memchr::{memchr, memchr_iter};
use serde::Serialize;

use crate::rollup::MemTotals;

/// The four permission characters of a mapping (`rwxp`, `r--s`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// `s` (shared) rather than `p` (private, copy-on-write).
    pub shared: bool,
}

impl Perms {
    /// Reads `rwxp`-style permissions; `None` unless exactly four valid characters.
    pub fn parse(b: &[u8]) -> Option<Perms> {
        let [r, w, x, s] = *b else { return None };
        Some(Perms {
            read: flag(r, b'r')?,
            write: flag(w, b'w')?,
            exec: flag(x, b'x')?,
            shared: match s {
                b's' => true,
                b'p' => false,
                _ => return None,
            },
        })
    }

    /// `rw-p`: what malloc arenas and thread stacks are made of.
    pub fn is_rw_private(&self) -> bool {
        self.read && self.write && !self.exec && !self.shared
    }

    /// `---p`: reserved address space, as in arena reserves and stack guard pages.
    pub fn is_none_private(&self) -> bool {
        !self.read && !self.write && !self.exec && !self.shared
    }

    /// The permissions as the kernel prints them.
    pub fn as_str(&self) -> String {
        let mut s = String::with_capacity(4);
        s.push(if self.read { 'r' } else { '-' });
        s.push(if self.write { 'w' } else { '-' });
        s.push(if self.exec { 'x' } else { '-' });
        s.push(if self.shared { 's' } else { 'p' });
        s
    }
}

fn flag(b: u8, set: u8) -> Option<bool> {
    if b == set {
        Some(true)
    } else if b == b'-' {
        Some(false)
    } else {
        None
    }
}

/// What backs a mapping, from the last column of its header line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Backing {
    /// No name: anonymous memory (mmap without a file, or a file gone from the name space).
    #[default]
    Anonymous,
    /// `[heap]`: the program break area, glibc's main arena.
    Heap,
    /// `[stack]` (also the old per-thread `[stack:TID]`).
    Stack,
    /// `[vdso]`, `[vvar]`, `[vvar_vclock]`, `[vsyscall]`, `[uprobes]`: pages the kernel maps in.
    Kernel(String),
    /// `[anon:NAME]` set with `prctl(PR_SET_VMA_ANON_NAME)`; the name without the brackets and
    /// `anon:` prefix (glibc's `decorate_maps` names such as ` glibc: malloc arena` keep their
    /// leading space).
    AnonNamed(String),
    /// Any other bracketed pseudo-path, kept verbatim with its brackets.
    Pseudo(String),
    /// A path: a file, a device, `/memfd:NAME`, `/SYSV...`, possibly ending in ` (deleted)`.
    File(String),
}

impl Backing {
    fn from_bytes(b: &[u8]) -> Backing {
        if b.is_empty() {
            return Backing::Anonymous;
        }
        if b[0] == b'[' {
            match b {
                b"[heap]" => return Backing::Heap,
                b"[stack]" => return Backing::Stack,
                b"[vdso]" | b"[vvar]" | b"[vvar_vclock]" | b"[vsyscall]" | b"[uprobes]" => {
                    return Backing::Kernel(lossy(&b[1..b.len() - 1]))
                }
                _ => {}
            }
            if b.starts_with(b"[stack:") {
                return Backing::Stack;
            }
            if b.starts_with(b"[anon:") && b.ends_with(b"]") {
                return Backing::AnonNamed(lossy(&b[6..b.len() - 1]));
            }
            return Backing::Pseudo(lossy(b));
        }
        Backing::File(lossy(b))
    }

    /// True when the pages come from a file (or shared memory object) rather than anonymous
    /// memory. Kernel pseudo-mappings are neither.
    pub fn is_file(&self) -> bool {
        matches!(self, Backing::File(_))
    }

    /// True for memory with no file behind it (including `[heap]`, `[stack]` and named anon).
    pub fn is_anonymous(&self) -> bool {
        matches!(
            self,
            Backing::Anonymous | Backing::Heap | Backing::Stack | Backing::AnonNamed(_)
        )
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The bit of a [`VmFlags`] code, in the order of the kernel's `show_smap_vma_flags`. A `match`
/// rather than a table search: this runs for every flag of every mapping.
fn vm_flag_bit(code: &[u8; 2]) -> Option<u32> {
    Some(match code {
        b"rd" => 0,
        b"wr" => 1,
        b"ex" => 2,
        b"sh" => 3,
        b"mr" => 4,
        b"mw" => 5,
        b"me" => 6,
        b"ms" => 7,
        b"gd" => 8,
        b"pf" => 9,
        b"dw" => 10,
        b"lo" => 11,
        b"io" => 12,
        b"sr" => 13,
        b"rr" => 14,
        b"dc" => 15,
        b"de" => 16,
        b"ac" => 17,
        b"nr" => 18,
        b"ht" => 19,
        b"sf" => 20,
        b"nl" => 21,
        b"ar" => 22,
        b"wf" => 23,
        b"dd" => 24,
        b"sd" => 25,
        b"mm" => 26,
        b"hg" => 27,
        b"nh" => 28,
        b"mg" => 29,
        b"um" => 30,
        b"uw" => 31,
        b"ss" => 32,
        b"sl" => 33,
        b"bt" => 34,
        b"mt" => 35,
        b"ui" => 36,
        b"lf" => 37,
        b"gu" => 38,
        b"ov" => 39,
        _ => return None,
    })
}

/// The `VmFlags:` line as a bit set; unknown codes are ignored. Kept because a few flags tell
/// what a mapping is for (`gd` grows down: a stack; `ht` hugetlb; `hg`/`nh` THP advice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct VmFlags(pub u64);

impl VmFlags {
    /// True when the two-letter code (e.g. `b"gd"`) was on the line.
    pub fn has(&self, code: &[u8; 2]) -> bool {
        vm_flag_bit(code).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    fn parse(rest: &[u8]) -> VmFlags {
        let mut bits = 0u64;
        for word in rest.split(|&b| b == b' ') {
            if let Ok(code) = <&[u8; 2]>::try_from(word) {
                if let Some(i) = vm_flag_bit(code) {
                    bits |= 1 << i;
                }
            }
        }
        VmFlags(bits)
    }
}

/// One mapping (VMA) of `/proc/PID/smaps`. Sizes are in bytes (the kernel prints kB).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mapping {
    pub start: u64,
    /// Exclusive end address.
    pub end: u64,
    pub perms: Perms,
    pub offset: u64,
    /// Device as `(major, minor)`; `(0, 0)` for anonymous memory.
    pub dev: (u32, u32),
    pub inode: u64,
    pub backing: Backing,
    pub size: u64,
    pub rss: u64,
    pub pss: u64,
    pub pss_dirty: u64,
    pub shared_clean: u64,
    pub shared_dirty: u64,
    pub private_clean: u64,
    pub private_dirty: u64,
    pub referenced: u64,
    pub anonymous: u64,
    pub lazy_free: u64,
    pub anon_huge_pages: u64,
    pub swap: u64,
    pub swap_pss: u64,
    pub locked: u64,
    /// `THPeligible:`; `None` on kernels that do not print it.
    pub thp_eligible: Option<bool>,
    pub vm_flags: VmFlags,
}

impl Mapping {
    /// Address span `end - start` (0 for a malformed header with `end < start`).
    pub fn span(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// Parses the whole text of `/proc/PID/smaps` (also accepts `/proc/PID/maps`, whose mappings
/// then carry no sizes). Never fails: what cannot be read is skipped, see the module docs.
pub fn parse(text: &[u8]) -> Vec<Mapping> {
    let mut out = Vec::new();
    parse_into(text, &mut out);
    out
}

/// As [`parse`], into `out` (cleared first) so a sampler can reuse the allocation.
pub fn parse_into(text: &[u8], out: &mut Vec<Mapping>) {
    out.clear();
    // Whether field lines belong to `out.last()`: false before the first header and after a
    // header that did not parse.
    let mut in_mapping = false;
    let mut pos = 0;
    let ends = memchr_iter(b'\n', text).chain(std::iter::once(text.len()));
    for line_end in ends {
        if pos > line_end {
            break;
        }
        let line = &text[pos..line_end];
        pos = line_end + 1;
        let Some(&first) = line.first() else { continue };
        if first.is_ascii_uppercase() {
            if in_mapping {
                if let Some(m) = out.last_mut() {
                    apply_field(m, line);
                }
            }
        } else if first.is_ascii_hexdigit() {
            match parse_header(line) {
                Some(m) => {
                    out.push(m);
                    in_mapping = true;
                }
                None => in_mapping = false,
            }
        }
    }
}

/// Reads a hexadecimal number at the start of `b`; returns it and the rest.
fn hex(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        v = v.checked_mul(16)?.checked_add(u64::from(d))?;
        n += 1;
    }
    (n > 0).then(|| (v, &b[n..]))
}

fn dec(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        n += 1;
    }
    (n > 0).then(|| (v, &b[n..]))
}

fn skip_spaces(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &b[n..]
}

fn expect(b: &[u8], c: u8) -> Option<&[u8]> {
    match b.split_first() {
        Some((&f, rest)) if f == c => Some(rest),
        _ => None,
    }
}

/// `start-end perms offset major:minor inode   [path]`
fn parse_header(line: &[u8]) -> Option<Mapping> {
    let (start, r) = hex(line)?;
    let (end, r) = hex(expect(r, b'-')?)?;
    let r = expect(r, b' ')?;
    let perms = Perms::parse(r.get(..4)?)?;
    let r = expect(&r[4..], b' ')?;
    let (offset, r) = hex(r)?;
    let (major, r) = hex(expect(r, b' ')?)?;
    let (minor, r) = hex(expect(r, b':')?)?;
    let (inode, r) = dec(expect(r, b' ')?)?;
    let path = skip_spaces(r);
    let path = path.strip_suffix(b"\r").unwrap_or(path);
    Some(Mapping {
        start,
        end,
        perms,
        offset,
        dev: (u32::try_from(major).ok()?, u32::try_from(minor).ok()?),
        inode,
        backing: Backing::from_bytes(path),
        ..Mapping::default()
    })
}

/// `Key:   123 kB`; unknown keys and unreadable values leave the mapping unchanged.
fn apply_field(m: &mut Mapping, line: &[u8]) {
    let Some(colon) = memchr(b':', line) else {
        return;
    };
    let key = &line[..colon];
    let rest = skip_spaces(&line[colon + 1..]);
    if key == b"VmFlags" {
        m.vm_flags = VmFlags::parse(rest);
        return;
    }
    let Some((value, unit)) = dec(rest) else {
        return;
    };
    if key == b"THPeligible" {
        m.thp_eligible = Some(value != 0);
        return;
    }
    // Sizes are printed in kB; a value with another unit is not one this parser knows.
    let unit = skip_spaces(unit);
    if !(unit.starts_with(b"kB") || unit.is_empty() || unit == b"\r") {
        return;
    }
    let bytes = value.saturating_mul(1024);
    let slot = match key {
        b"Size" => &mut m.size,
        b"Rss" => &mut m.rss,
        b"Pss" => &mut m.pss,
        b"Pss_Dirty" => &mut m.pss_dirty,
        b"Shared_Clean" => &mut m.shared_clean,
        b"Shared_Dirty" => &mut m.shared_dirty,
        b"Private_Clean" => &mut m.private_clean,
        b"Private_Dirty" => &mut m.private_dirty,
        b"Referenced" => &mut m.referenced,
        b"Anonymous" => &mut m.anonymous,
        b"LazyFree" => &mut m.lazy_free,
        b"AnonHugePages" => &mut m.anon_huge_pages,
        b"Swap" => &mut m.swap,
        b"SwapPss" => &mut m.swap_pss,
        b"Locked" => &mut m.locked,
        _ => return,
    };
    *slot = bytes;
}

/// Sums over all mappings of one parse, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SmapsTotals {
    pub mappings: u64,
    pub size: u64,
    pub rss: u64,
    pub pss: u64,
    pub swap: u64,
    pub swap_pss: u64,
    /// `Anonymous:` summed: private anonymous pages, wherever they sit.
    pub anonymous: u64,
    /// Resident bytes of file-backed mappings.
    pub file_rss: u64,
    /// Resident bytes of shared-memory mappings (`s` mappings of no file, `/memfd:`, `/SYSV`,
    /// `/dev/shm/`, `/dev/zero`); an estimate of the kernel's `RssShmem`.
    pub shmem_rss: u64,
    pub private_dirty: u64,
}

impl SmapsTotals {
    /// Adds up `mappings`. Saturates rather than overflows on absurd input.
    pub fn of(mappings: &[Mapping]) -> SmapsTotals {
        let mut t = SmapsTotals::default();
        for m in mappings {
            t.mappings += 1;
            t.size = t.size.saturating_add(m.size);
            t.rss = t.rss.saturating_add(m.rss);
            t.pss = t.pss.saturating_add(m.pss);
            t.swap = t.swap.saturating_add(m.swap);
            t.swap_pss = t.swap_pss.saturating_add(m.swap_pss);
            t.anonymous = t.anonymous.saturating_add(m.anonymous);
            t.private_dirty = t.private_dirty.saturating_add(m.private_dirty);
            if m.backing.is_file() {
                t.file_rss = t.file_rss.saturating_add(m.rss);
            }
            if is_shmem(m) {
                t.shmem_rss = t.shmem_rss.saturating_add(m.rss);
            }
        }
        t
    }

    /// The same totals in the shape `smaps_rollup` gives, so a sample can take them from full
    /// smaps. As with the rollup, `file` is what is resident and not anonymous.
    pub fn to_mem_totals(&self) -> MemTotals {
        let anon = self.anonymous.min(self.rss);
        MemTotals {
            rss: self.rss,
            pss: Some(self.pss),
            swap: self.swap,
            anon,
            file: self.rss - anon,
            shmem: self.shmem_rss,
        }
    }
}

fn is_shmem(m: &Mapping) -> bool {
    match &m.backing {
        Backing::Anonymous | Backing::AnonNamed(_) => m.perms.shared,
        Backing::File(p) => {
            p.starts_with("/memfd:")
                || p.starts_with("/SYSV")
                || p.starts_with("/dev/shm/")
                || p.starts_with("/dev/zero")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
7f803be7a000-7f803be7e000 r--p 00000000 00:00 0                          [vvar]
Size:                 16 kB
Rss:                   0 kB
VmFlags: rd mr pf io de dd sd 
7f803be82000-7f803be83000 r--p 00000000 fe:00 325835                     /usr/lib/x86_64-linux-gnu/ld linux.so
Size:                  4 kB
KernelPageSize:        4 kB
Rss:                   4 kB
Pss:                   2 kB
Shared_Clean:          4 kB
Anonymous:             0 kB
Swap:                  8 kB
SwapPss:               1 kB
Locked:                0 kB
THPeligible:    0
ProtectionKey:         0
VmFlags: rd mr mw me dw sd 
";

    #[test]
    fn reads_headers_fields_and_paths_with_spaces() {
        let ms = parse(TWO.as_bytes());
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].backing, Backing::Kernel("vvar".into()));
        assert_eq!(ms[0].size, 16 * 1024);
        let m = &ms[1];
        assert_eq!((m.start, m.end), (0x7f80_3be8_2000, 0x7f80_3be8_3000));
        assert_eq!(m.perms.as_str(), "r--p");
        assert_eq!(m.dev, (0xfe, 0));
        assert_eq!(m.inode, 325_835);
        assert_eq!(
            m.backing,
            Backing::File("/usr/lib/x86_64-linux-gnu/ld linux.so".into())
        );
        assert_eq!((m.rss, m.pss, m.shared_clean), (4096, 2048, 4096));
        assert_eq!((m.swap, m.swap_pss), (8192, 1024));
        assert_eq!(m.thp_eligible, Some(false));
        assert!(m.vm_flags.has(b"dw") && !m.vm_flags.has(b"wr"));
    }

    #[test]
    fn names_pseudo_paths() {
        let b = |s: &str| Backing::from_bytes(s.as_bytes());
        assert_eq!(b(""), Backing::Anonymous);
        assert_eq!(b("[heap]"), Backing::Heap);
        assert_eq!(b("[stack:1234]"), Backing::Stack);
        assert_eq!(
            b("[anon: glibc: malloc arena]"),
            Backing::AnonNamed(" glibc: malloc arena".into())
        );
        assert_eq!(b("[vsyscall]"), Backing::Kernel("vsyscall".into()));
        assert_eq!(b("[weird]"), Backing::Pseudo("[weird]".into()));
        assert_eq!(
            b("/memfd:jit (deleted)"),
            Backing::File("/memfd:jit (deleted)".into())
        );
    }

    #[test]
    fn drops_fields_after_a_broken_header() {
        let text = "zz-00 rw-p 0 00:00 0\nRss: 4 kB\n1000-2000 rw-p 00000000 00:00 0 \nRss: 4 kB\n";
        let ms = parse(text.as_bytes());
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].rss, 4096);
        assert_eq!(ms[0].backing, Backing::Anonymous);
    }

    #[test]
    fn skips_malformed_values() {
        let text = "1000-2000 rw-p 00000000 00:00 0\nRss: lots\nPss: 99999999999999999999999 kB\nSize: 4 MB\nSwap:\nNoColon\nAnonymous: 4 kB";
        let ms = parse(text.as_bytes());
        assert_eq!(ms.len(), 1);
        assert_eq!((ms[0].rss, ms[0].pss, ms[0].size, ms[0].swap), (0, 0, 0, 0));
        assert_eq!(ms[0].anonymous, 4096);
    }

    #[test]
    fn totals_add_up() {
        let t = SmapsTotals::of(&parse(TWO.as_bytes()));
        assert_eq!(t.mappings, 2);
        assert_eq!(t.rss, 4096);
        assert_eq!(t.file_rss, 4096);
        let mt = t.to_mem_totals();
        assert_eq!((mt.anon, mt.file, mt.pss), (0, 4096, Some(2048)));
    }
}
