//! Where the core reads the process's own `/proc` files. The root can be moved so tests can point
//! the core at a directory of crafted or unreadable files, as the `procfs` crate allows.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The most of `smaps` a sample reads: about 700 bytes per mapping, so 64 MiB holds the 65530
/// mappings of Linux's default `vm.max_map_count` with room to spare. A file past the cap (a
/// procRoot file linked to `/dev/zero`, say) is an error, not a read without end.
pub const SMAPS_CAP: u64 = 64 << 20;
/// The most of any other file the core reads (`status`, `smaps_rollup`, `statm`, cgroup files):
/// they are a few KiB.
pub const SMALL_FILE_CAP: u64 = 4 << 20;

/// Reads at most `cap` bytes of `p` into `buf` (cleared first). A file with more is an error
/// naming the file and the cap; `buf` then gives its memory back so an endless file costs
/// nothing between samples. Only regular files are read (`/proc` files are): a device such as
/// `/dev/zero` or a FIFO is refused at once (opened non-blocking, so a FIFO cannot hang it).
pub fn read_capped(p: &Path, cap: u64, buf: &mut Vec<u8>) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    buf.clear();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    if !f.metadata().map_err(|e| Error::io(p, e))?.file_type().is_file() {
        return Err(Error::io(
            p,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file, not read"),
        ));
    }
    let n = f.take(cap.saturating_add(1)).read_to_end(buf).map_err(|e| Error::io(p, e))?;
    if u64::try_from(n).unwrap_or(u64::MAX) > cap {
        buf.clear();
        buf.shrink_to_fit();
        return Err(Error::io(p, too_big(cap)));
    }
    Ok(())
}

/// Reads at most `cap` bytes of `p` as text (invalid UTF-8 is an error, as with `read_to_string`).
pub fn read_string_capped(p: &Path, cap: u64) -> Result<String> {
    let mut buf = Vec::new();
    read_capped(p, cap, &mut buf)?;
    String::from_utf8(buf)
        .map_err(|_| Error::io(p, std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8")))
}

fn too_big(cap: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("larger than {} MiB, read stopped there", cap >> 20),
    )
}

#[derive(Debug, Clone)]
pub struct ProcRoot {
    root: PathBuf,
}

impl Default for ProcRoot {
    fn default() -> Self {
        ProcRoot { root: PathBuf::from("/proc/self") }
    }
}

impl ProcRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcRoot { root: root.into() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads a whole small file (at most [`SMALL_FILE_CAP`]); the error names the file.
    pub fn read(&self, name: &str) -> Result<String> {
        read_string_capped(&self.path(name), SMALL_FILE_CAP)
    }

    /// Reads a whole file of at most `cap` bytes into `buf`, reusing its capacity across samples.
    pub fn read_into(&self, name: &str, cap: u64, buf: &mut Vec<u8>) -> Result<()> {
        read_capped(&self.path(name), cap, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("offheap-doctor-procfs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn a_huge_file_is_cut_at_the_cap_with_an_error_naming_it() {
        let d = dir("huge");
        // Sparse: 65 MiB of zeros that take no disk.
        std::fs::File::create(d.join("smaps")).and_then(|f| f.set_len(SMAPS_CAP + (1 << 20))).expect("sparse");
        std::fs::File::create(d.join("status")).and_then(|f| f.set_len(SMALL_FILE_CAP + 1)).expect("sparse");
        let proc = ProcRoot::new(&d);
        let mut buf = Vec::new();
        let e = proc.read_into("smaps", SMAPS_CAP, &mut buf).expect_err("huge");
        let msg = e.to_string();
        assert!(msg.contains("smaps") && msg.contains("larger than 64 MiB"), "{msg}");
        assert!(buf.is_empty() && buf.capacity() == 0, "the buffer keeps {} bytes", buf.capacity());
        let e = proc.read("status").expect_err("huge");
        assert!(e.to_string().contains("larger than 4 MiB"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn devices_and_fifos_are_refused_without_reading_or_blocking() {
        let d = dir("devices");
        std::os::unix::fs::symlink("/dev/zero", d.join("smaps")).expect("link");
        let fifo = std::ffi::CString::new(d.join("status").into_os_string().into_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let proc = ProcRoot::new(&d);
        let mut buf = Vec::new();
        let e = proc.read_into("smaps", SMAPS_CAP, &mut buf).expect_err("device");
        assert!(e.to_string().contains("smaps") && e.to_string().contains("not a regular file"), "{e}");
        let e = proc.read("status").expect_err("fifo");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_at_the_cap_is_read_whole_and_one_byte_more_is_not() {
        let d = dir("edge");
        std::fs::write(d.join("a"), vec![b'x'; 4096]).expect("write");
        std::fs::write(d.join("b"), vec![b'x'; 4097]).expect("write");
        let mut buf = Vec::new();
        read_capped(&d.join("a"), 4096, &mut buf).expect("at the cap");
        assert_eq!(buf.len(), 4096);
        assert!(read_capped(&d.join("b"), 4096, &mut buf).is_err());
        assert!(read_capped(&d.join("missing"), 4096, &mut buf).is_err());
        std::fs::write(d.join("c"), [0xff, 0xfe]).expect("write");
        assert!(read_string_capped(&d.join("c"), 4096).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_real_files_fit_their_caps() {
        let proc = ProcRoot::default();
        let mut buf = Vec::new();
        proc.read_into("smaps", SMAPS_CAP, &mut buf).expect("smaps");
        assert!(!buf.is_empty());
        assert!(proc.read("status").expect("status").contains("VmRSS"));
    }
}
