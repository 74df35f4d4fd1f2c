#![no_main]
use libfuzzer_sys::fuzz_target;
use offheap_doctor::rollup::{parse_smaps_rollup, parse_status, status_threads};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Some(t) = parse_smaps_rollup(&s) {
        assert_eq!(t.anon + t.file, t.rss);
    }
    let _ = parse_status(&s);
    let _ = status_threads(&s);
});
