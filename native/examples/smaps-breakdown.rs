//! Prints the breakdown of a smaps file as JSON: `smaps-breakdown SMAPS [HEAP_START HEAP_END]`
//! (addresses in hex), for looking at captured fixtures or at `/proc/PID/smaps` by hand.

use offheap_doctor::breakdown::{classify, ClassifyInput, Range};
use offheap_doctor::smaps;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        return Err("usage: smaps-breakdown SMAPS [HEAP_START HEAP_END]".into());
    };
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16);
    let mut input = ClassifyInput::default();
    if let [_, start, end] = args.as_slice() {
        input.heap.push(Range::new(hex(start)?, hex(end)?));
    }
    let text = std::fs::read(path)?;
    let b = classify(&smaps::parse(&text), &input);
    b.check_sums()?;
    println!("{}", serde_json::to_string_pretty(&b)?);
    Ok(())
}
