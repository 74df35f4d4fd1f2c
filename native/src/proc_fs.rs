//! Where the core reads the process's own `/proc` files. The root can be moved so tests can point
//! the core at a directory of crafted or unreadable files, as the `procfs` crate allows.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

    /// Reads a whole file; the error names the file.
    pub fn read(&self, name: &str) -> Result<String> {
        let p = self.path(name);
        std::fs::read_to_string(&p).map_err(|e| Error::io(p, e))
    }

    /// Reads a whole file into `buf`, reusing its capacity across samples.
    pub fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> Result<()> {
        use std::io::Read;
        let p = self.path(name);
        buf.clear();
        let mut f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        f.read_to_end(buf).map_err(|e| Error::io(&p, e))?;
        Ok(())
    }
}
