//! A mutation fuzzer for the parsers of text the core reads (smaps, smaps_rollup, status, NMT
//! summary, summary.diff and detail, malloc_info), seeded with the real fixtures under
//! `tests/fixtures`. No coverage feedback (libFuzzer's needs a nightly toolchain; `native/fuzz/`
//! has cargo-fuzz targets for where one is installed): each round takes a seed, applies a few
//! random edits (bit and byte flips, truncation, lines spliced from other seeds, repeated or
//! dropped lines, huge or negative numbers, bytes that are not UTF-8) and runs the parser under
//! `catch_unwind`, checking that it does not panic, that it gives the same answer twice and that
//! its sums hold (totals are the saturated sums of their parts, classes add up to the totals).
//!
//! The suite runs each target for a couple of seconds; a longer run:
//! `OFFHEAP_DOCTOR_FUZZ_SECONDS=300 cargo test --release --test fuzz_parsers -- --nocapture`.
//! Without `--release`, arithmetic overflow panics too, so a debug run also finds sums that
//! would wrap. A failing input is written to `target/fuzz-failures/` and the test fails.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use offheap_doctor::breakdown::{classify, ClassifyInput, Range};
use offheap_doctor::malloc_info::{parse_malloc_info, trimmable_upper_bound};
use offheap_doctor::nmt;
use offheap_doctor::rollup::{parse_smaps_rollup, parse_status, status_threads};
use offheap_doctor::smaps::{self, SmapsTotals};

/// xorshift64*: reproducible from the seed printed with a failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}

const NUMBERS: &[&[u8]] = &[
    b"18446744073709551615",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"9223372036854775807",
    b"-1",
    b"-9223372036854775808",
    b"0",
    b"4294967296",
    b"0x7fffffffffffffff",
    b"1e308",
    b"",
];

const JUNK: &[&[u8]] = &[b"\xff\xfe", b"\xc3", b"\0", b"\t", b" kB", b"KB", b"=", b"\"", b"<", b"/>", b"-", b"(", b")"];

fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split_inclusive(|&c| c == b'\n').collect()
}

/// One to four random edits of `input`, some of them taking lines from `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(10) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                // Splice a run of lines from the other seed at a line boundary.
                let theirs = lines(other);
                let mut mine: Vec<Vec<u8>> = lines(&v).into_iter().map(<[u8]>::to_vec).collect();
                if !theirs.is_empty() {
                    let from = rng.below(theirs.len());
                    let n = 1 + rng.below(8);
                    let at = rng.below(mine.len() + 1);
                    let run: Vec<Vec<u8>> = theirs[from..(from + n).min(theirs.len())].iter().map(|l| l.to_vec()).collect();
                    mine.splice(at..at, run);
                    v = mine.concat();
                }
            }
            4 => {
                // Repeat a line, up to many times.
                let mut mine: Vec<Vec<u8>> = lines(&v).into_iter().map(<[u8]>::to_vec).collect();
                if !mine.is_empty() {
                    let i = rng.below(mine.len());
                    let times = if rng.chance(8) { 2000 } else { 1 + rng.below(4) };
                    let l = mine[i].clone();
                    // At most 1 MiB more per repeat: a last line without '\n' joins its copies into
                    // one line, which a later repeat would copy 2000 times again (2000^2 copies of
                    // a 6 KB line took 24 GB).
                    let times = times.min(((1 << 20) / l.len().max(1)).max(1));
                    for _ in 0..times {
                        mine.insert(i, l.clone());
                    }
                    v = mine.concat();
                }
            }
            5 => {
                // Drop a run of lines.
                let mut mine: Vec<Vec<u8>> = lines(&v).into_iter().map(<[u8]>::to_vec).collect();
                if !mine.is_empty() {
                    let i = rng.below(mine.len());
                    let n = 1 + rng.below(6);
                    mine.drain(i..(i + n).min(mine.len()));
                    v = mine.concat();
                }
            }
            6 | 7 => {
                // Replace a run of digits (a number) with a huge, negative or empty one.
                let digits: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_ascii_digit()).collect();
                if !digits.is_empty() {
                    let s = digits[rng.below(digits.len())];
                    let mut e = s;
                    while e < v.len() && v[e].is_ascii_digit() {
                        e += 1;
                    }
                    let n = NUMBERS[rng.below(NUMBERS.len())];
                    v.splice(s..e, n.iter().copied());
                }
            }
            8 => {
                let at = rng.below(v.len() + 1);
                let j = JUNK[rng.below(JUNK.len())];
                v.splice(at..at, j.iter().copied());
            }
            _ => {
                // Swap two lines.
                let mut mine: Vec<Vec<u8>> = lines(&v).into_iter().map(<[u8]>::to_vec).collect();
                if mine.len() > 1 {
                    let a = rng.below(mine.len());
                    let b = rng.below(mine.len());
                    mine.swap(a, b);
                    v = mine.concat();
                }
            }
        }
    }
    v
}

/// What a target checks on one input: `Err` with a message when an invariant does not hold.
type Check = fn(&[u8]) -> Result<(), String>;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check_smaps(b: &[u8]) -> Result<(), String> {
    let m = smaps::parse(b);
    if m != smaps::parse(b) {
        return Err("smaps parse is not deterministic".into());
    }
    let t = SmapsTotals::of(&m);
    let sum = |f: fn(&smaps::Mapping) -> u64| m.iter().map(|x| u128::from(f(x))).sum::<u128>().min(u128::from(u64::MAX));
    if u128::from(t.rss) != sum(|x| x.rss) || u128::from(t.pss) != sum(|x| x.pss) || u128::from(t.swap) != sum(|x| x.swap) {
        return Err(format!("totals are not the saturated sums: {t:?}"));
    }
    if t.mappings != m.len() as u64 {
        return Err("mapping count".into());
    }
    let mt = t.to_mem_totals();
    if mt.anon > mt.rss {
        return Err(format!("anon above rss: {mt:?}"));
    }
    let span = m.iter().map(|x| x.start).min().zip(m.iter().map(|x| x.end).max());
    let heap = span.map(|(a, b)| vec![Range::new(a, a + (b.saturating_sub(a)) / 3)]).unwrap_or_default();
    let input = ClassifyInput { heap, nmt_regions: Vec::new(), jvm_thread_count: Some(7), thread_stack_size: Some(1 << 20) };
    let bd = classify(&m, &input);
    // Classes add up to the totals unless the input's own sums saturated.
    if t.rss < u64::MAX / 2 && t.pss < u64::MAX / 2 && t.swap < u64::MAX / 2 {
        bd.check_sums().map_err(|e| format!("breakdown: {e}"))?;
    }
    Ok(())
}

fn check_rollup(b: &[u8]) -> Result<(), String> {
    let s = text(b);
    let r = parse_smaps_rollup(&s);
    if r != parse_smaps_rollup(&s) {
        return Err("rollup parse is not deterministic".into());
    }
    if let Some(t) = &r {
        if t.anon + t.file != t.rss {
            return Err(format!("rollup anon + file != rss: {t:?}"));
        }
    }
    let st = parse_status(&s);
    if st != parse_status(&s) || status_threads(&s) != status_threads(&s) {
        return Err("status parse is not deterministic".into());
    }
    Ok(())
}

fn check_nmt(b: &[u8]) -> Result<(), String> {
    let s = text(b);
    let a = nmt::parse_summary(&s).map_err(|e| e.to_string());
    let again = nmt::parse_summary(&s).map_err(|e| e.to_string());
    if a != again {
        return Err("NMT summary parse is not deterministic".into());
    }
    if let Ok(sum) = &a {
        let g = nmt::explain_growth(sum, sum, 0);
        if g.committed_delta != 0 {
            return Err(format!("growth against itself is not 0: {g:?}"));
        }
        let _ = nmt::explain_growth(sum, sum, i64::MAX);
        let _ = nmt::explain_growth(sum, sum, i64::MIN);
    }
    if let Ok(d) = nmt::parse_summary_diff(&s) {
        let _ = nmt::explain_diff(&d, i64::MIN);
        let _ = nmt::explain_diff(&d, i64::MAX);
    }
    let _ = nmt::nmt_disabled(&s);
    let regions = nmt::parse_virtual_memory_map(&s).map_err(|e| e.to_string());
    if regions != nmt::parse_virtual_memory_map(&s).map_err(|e| e.to_string()) {
        return Err("NMT detail parse is not deterministic".into());
    }
    Ok(())
}

fn check_malloc_info(b: &[u8]) -> Result<(), String> {
    let s = text(b);
    let a = parse_malloc_info(&s, 4096).map_err(|e| e.to_string());
    if a != parse_malloc_info(&s, 4096).map_err(|e| e.to_string()) {
        return Err("malloc_info parse is not deterministic".into());
    }
    if let Ok(mi) = &a {
        for arena in &mi.arenas {
            let _ = trimmable_upper_bound(arena, 4096);
            let _ = trimmable_upper_bound(arena, 0);
            if arena.in_use > arena.system_current && arena.retained <= arena.system_current {
                // in_use is system_current - retained; neither may wrap.
                return Err(format!("arena {} in_use above system_current", arena.nr));
            }
        }
        let _ = mi.totals_match_arenas();
    }
    Ok(())
}

fn fixtures(dir: &str, keep: fn(&Path) -> bool) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                if let Ok(b) = std::fs::read(&p) {
                    out.push((p, b));
                }
            }
        }
    }
    out.sort();
    out
}

fn name_is(p: &Path, n: &str) -> bool {
    p.file_name().is_some_and(|f| f == n)
}

fn seconds_per_target() -> f64 {
    std::env::var("OFFHEAP_DOCTOR_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0)
}

struct Outcome {
    execs: u64,
    failures: Vec<String>,
}

fn fuzz(target: &str, seeds: &[(PathBuf, Vec<u8>)], check: Check) -> Outcome {
    assert!(!seeds.is_empty(), "{target}: no seed fixtures found");
    let seed = std::env::var("OFFHEAP_DOCTOR_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    }) | 1;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds_per_target());
    let mut out = Outcome { execs: 0, failures: Vec::new() };
    // The seeds themselves first, then mutants until the deadline (mutants of mutants too: a
    // small pool of recent inputs that did not fail).
    let mut pool: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    let base = pool.len();
    // Mutants that keep growing (repeated lines) would slow every later round: keep them near
    // the seeds' size.
    let max_len = pool.iter().map(Vec::len).max().unwrap_or(0) * 2 + 4096;
    let mut queue: Vec<Vec<u8>> = pool.clone();
    while out.failures.len() < 5 {
        let input = match queue.pop() {
            Some(i) => i,
            None if Instant::now() < deadline => {
                let a = rng.below(pool.len());
                let b = rng.below(pool.len());
                mutate(&mut rng, &pool[a], &pool[b])
            }
            None => break,
        };
        out.execs += 1;
        let r = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let problem = match r {
            Ok(Ok(())) => None,
            Ok(Err(msg)) => Some(msg),
            Err(p) => Some(format!(
                "panic: {}",
                p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
            )),
        };
        match problem {
            Some(msg) => {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("{target}-{seed}-{}.bin", out.execs));
                let _ = std::fs::write(&file, &input);
                out.failures.push(format!("{target}: {msg} (input {})", file.display()));
            }
            None if input.len() <= max_len => {
                if pool.len() < base + 64 {
                    pool.push(input);
                } else {
                    let i = base + rng.below(64);
                    pool[i] = input;
                }
            }
            None => {}
        }
    }
    println!(
        "fuzz {target}: {} executions in {:.1} s, {} seeds, {} failures (seed {seed})",
        out.execs,
        seconds_per_target(),
        seeds.len(),
        out.failures.len()
    );
    out
}

fn run(target: &str, seeds: Vec<(PathBuf, Vec<u8>)>, check: Check) {
    // A panic inside the parser is caught and counted; keep the default hook from printing each.
    let o = fuzz(target, &seeds, check);
    assert!(o.execs > seeds.len() as u64, "{target}: no mutant ran");
    assert!(o.failures.is_empty(), "{}", o.failures.join("\n"));
}

#[test]
fn fuzz_smaps() {
    run("smaps", fixtures("smaps", |p| name_is(p, "smaps")), check_smaps);
}

#[test]
fn fuzz_smaps_rollup_and_status() {
    let mut seeds = fixtures("smaps", |p| name_is(p, "smaps_rollup"));
    if let Ok(b) = std::fs::read("/proc/self/status") {
        seeds.push((PathBuf::from("/proc/self/status"), b));
    }
    run("rollup", seeds, check_rollup);
}

#[test]
fn fuzz_nmt_summary_and_detail() {
    let mut seeds = fixtures("nmt", |p| p.extension().is_some_and(|e| e == "txt"));
    seeds.extend(fixtures("smaps", |p| name_is(p, "nmt_detail.txt")));
    run("nmt", seeds, check_nmt);
}

#[test]
fn fuzz_malloc_info() {
    run("malloc_info", fixtures("malloc_info", |p| p.extension().is_some_and(|e| e == "xml")), check_malloc_info);
}
