//! Renders a report stream as one HTML page:
//! `cargo run --release --example timeline -- report.jsonl [-o out.html]`.
//! Without `-o` the page goes next to the report, as `report.html`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use offheap_doctor::timeline::Timeline;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("timeline: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: timeline <report.jsonl> [-o out.html]";
    let mut input = None;
    let mut output = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => output = Some(PathBuf::from(it.next().ok_or(usage)?)),
            "-h" | "--help" => return Err(usage.into()),
            _ if input.is_none() => input = Some(PathBuf::from(a)),
            _ => return Err(usage.into()),
        }
    }
    let input = input.ok_or(usage)?;
    let output = output.unwrap_or_else(|| input.with_extension("html"));

    let start = Instant::now();
    let file = File::open(&input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let mut timeline = Timeline::default();
    // Streamed line by line: a week of samples is a few hundred MiB of text.
    // Invalid UTF-8 (a torn write) is replaced, not fatal: the line then parses or is counted.
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| format!("cannot read {}: {e}", input.display()))?;
        timeline.push_line(&String::from_utf8_lossy(&line));
    }
    let title = title_of(&input);
    let page = timeline.render(&title).map_err(|e| e.to_string())?;
    std::fs::write(&output, &page).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    eprintln!(
        "{} samples, {} lines skipped -> {} ({} KiB) in {:.2?}",
        timeline.sample_count(),
        timeline.skipped().total(),
        output.display(),
        page.len() / 1024,
        start.elapsed()
    );
    Ok(())
}

fn title_of(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("offheap-doctor: {name}")
}
