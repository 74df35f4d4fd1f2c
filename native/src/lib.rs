//! Native core of offheap-doctor. Everything here but [`jni_bridge`] is plain Rust, tested
//! without a JVM: the JNI module only moves strings across and maps errors to exceptions.

pub mod breakdown;
pub mod error;
pub mod jni_bridge;
pub mod proc_fs;
pub mod rollup;
pub mod sample;
pub mod smaps;
pub mod timefmt;
