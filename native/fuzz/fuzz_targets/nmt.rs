#![no_main]
use libfuzzer_sys::fuzz_target;
use offheap_doctor::nmt;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(sum) = nmt::parse_summary(&s) {
        assert_eq!(nmt::explain_growth(&sum, &sum, 0).committed_delta, 0);
        let _ = nmt::explain_growth(&sum, &sum, i64::MIN);
        let _ = nmt::explain_growth(&sum, &sum, i64::MAX);
    }
    if let Ok(d) = nmt::parse_summary_diff(&s) {
        let _ = nmt::explain_diff(&d, i64::MIN);
        let _ = nmt::explain_diff(&d, i64::MAX);
    }
    let _ = nmt::nmt_disabled(&s);
    let _ = nmt::parse_virtual_memory_map(&s);
});
