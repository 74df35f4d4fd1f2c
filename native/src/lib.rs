//! Native core of offheap-doctor. Everything here but [`jni_bridge`] is plain Rust, tested
//! without a JVM: the JNI module only moves strings across and maps errors to exceptions.

pub mod allocator;
pub mod error;
pub mod heap_info;
pub mod jni_bridge;
pub mod malloc_info;
pub mod nmt;
pub mod proc_fs;
pub mod rollup;
pub mod sample;
pub mod timefmt;
pub mod timeline;
pub mod trim;
