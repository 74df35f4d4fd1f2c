//! Native core of offheap-doctor. Everything here but [`jni_bridge`] is plain Rust, tested
//! without a JVM: the JNI module only moves strings across and maps errors to exceptions.

pub mod allocator;
pub mod breakdown;
pub mod cgroup;
pub mod error;
pub mod findings;
pub mod heap_info;
pub mod history;
pub mod jni_bridge;
pub mod jni_internals;
pub mod malloc_info;
pub mod native_sites;
pub mod nmt;
pub mod notices;
pub mod observation;
pub mod proc_fs;
pub mod retention;
pub mod rollup;
pub mod sample;
pub mod sites;
pub mod smaps;
pub mod timefmt;
pub mod timeline;
pub mod trim;
pub mod trim_policy;
pub mod trim_worker;
pub mod tuning;
pub mod units;
