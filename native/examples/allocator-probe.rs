//! Prints what offheap-doctor sees of this process's allocator, as one JSON object:
//! `LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 cargo run --example allocator-probe`.

use offheap_doctor::allocator;
use offheap_doctor::malloc_info::{collect_mallinfo, collect_malloc_info};
use offheap_doctor::trim::trim;

fn main() {
    let outcome = |r: Result<String, offheap_doctor::error::Error>| match r {
        Ok(v) => serde_json::json!({ "ok": v }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let report = serde_json::json!({
        "allocator": allocator::detect(),
        "malloc_info": outcome(collect_malloc_info().map(|m| format!("{} arenas, retained {}", m.arenas.len(), m.totals.retained))),
        "mallinfo": outcome(collect_mallinfo().map(|m| format!("{m:?}"))),
        "trim": outcome(trim(0).map(|t| format!("released {} in {} ns", t.released, t.duration_ns))),
    });
    println!("{report}");
}
