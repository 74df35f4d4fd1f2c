#![no_main]
use libfuzzer_sys::fuzz_target;
use offheap_doctor::breakdown::{classify, ClassifyInput};
use offheap_doctor::smaps::{self, SmapsTotals};

fuzz_target!(|data: &[u8]| {
    let m = smaps::parse(data);
    assert_eq!(m, smaps::parse(data));
    let t = SmapsTotals::of(&m);
    let _ = t.to_mem_totals();
    let input = ClassifyInput { heap: Vec::new(), nmt_regions: Vec::new(), jvm_thread_count: None, thread_stack_size: Some(1 << 20) };
    let b = classify(&m, &input);
    if t.rss < u64::MAX / 2 && t.pss < u64::MAX / 2 && t.swap < u64::MAX / 2 {
        assert!(b.check_sums().is_ok());
    }
});
