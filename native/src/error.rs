//! The one error type of the native core. Each variant maps to one Java exception class in
//! `jni_bridge`, so the Java side can tell a bad argument from an unreadable file.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// The caller handed the core something it cannot use (bad JSON, an unknown command).
    InvalidArgument(String),
    /// A file the core needed could not be read; the path travels with the cause.
    Io { path: PathBuf, source: std::io::Error },
    /// Text the core read did not have the shape it expects.
    Parse { what: &'static str, detail: String },
    /// The operation is not possible in this process (for example glibc calls under jemalloc).
    Unsupported(String),
    /// A call into the JVM through JNI failed.
    Jni(jni::errors::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Parse { what, detail } => write!(f, "cannot parse {what}: {detail}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Jni(e) => write!(f, "JNI: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Jni(e) => Some(e),
            _ => None,
        }
    }
}

impl From<jni::errors::Error> for Error {
    fn from(e: jni::errors::Error) -> Self {
        Error::Jni(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidArgument(format!("JSON: {e}"))
    }
}
