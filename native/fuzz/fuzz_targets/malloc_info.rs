#![no_main]
use libfuzzer_sys::fuzz_target;
use offheap_doctor::malloc_info::{parse_malloc_info, trimmable_upper_bound};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(mi) = parse_malloc_info(&s, 4096) {
        for a in &mi.arenas {
            let _ = trimmable_upper_bound(a, 4096);
            let _ = trimmable_upper_bound(a, 0);
        }
        let _ = mi.totals_match_arenas();
    }
});
