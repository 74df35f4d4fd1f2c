//! Cost of reading and understanding a JVM's smaps, against `smaps_rollup` and `pmap -X`.
//!
//! Starts a JVM (`-Xms2g -Xmx2g`, 200 idle threads) from `native/bench/IdleThreads.java`,
//! compiled into a temporary directory, once as is and once with `-XX:+AlwaysPreTouch`, and
//! times each step over N runs (default 20; first argument). The goal it checks: parsing and
//! classifying adds at most 25% to the raw read, which is the kernel walking page tables.
//!
//! Environment: `JAVA_HOME` picks the JDK (default: `java`/`javac`/`jcmd` on the `PATH`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use offheap_doctor::breakdown::{self, ClassifyInput, Range};
use offheap_doctor::proc_fs::ProcRoot;
use offheap_doctor::smaps;

const SOURCE: &str = include_str!("../../bench/IdleThreads.java");
const THREADS: u32 = 200;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn tool(name: &str) -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) => Path::new(&home).join("bin").join(name),
        None => PathBuf::from(name),
    }
}

fn compile(dir: &Path) -> Res<()> {
    std::fs::write(dir.join("IdleThreads.java"), SOURCE)?;
    let st = Command::new(tool("javac"))
        .arg("-d")
        .arg(dir)
        .arg(dir.join("IdleThreads.java"))
        .status()?;
    if !st.success() {
        return Err(format!("javac failed: {st}").into());
    }
    Ok(())
}

/// The JVM under test; closing its stdin (on drop) lets it exit, kill is the fallback.
struct Jvm {
    child: Child,
    pid: u32,
}

impl Drop for Jvm {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_jvm(dir: &Path, pretouch: bool) -> Res<Jvm> {
    let mut cmd = Command::new(tool("java"));
    cmd.args(["-Xms2g", "-Xmx2g"]);
    if pretouch {
        cmd.arg("-XX:+AlwaysPreTouch");
    }
    cmd.arg("-cp")
        .arg(dir)
        .arg("IdleThreads")
        .arg(THREADS.to_string());
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let pid = child.id();
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut jvm = Jvm { child, pid };
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    if !line.starts_with("READY") {
        let _ = jvm.child.kill();
        return Err(format!("JVM did not start: {line:?}").into());
    }
    Ok(jvm)
}

/// The heap's reserved range from `jcmd PID GC.heap_info` (`[0x..., 0x...)`).
fn heap_range(pid: u32) -> Option<Range> {
    let out = Command::new(tool("jcmd"))
        .arg(pid.to_string())
        .arg("GC.heap_info")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = &text[text.find("[0x")? + 1..];
    let (a, b) = rest[..rest.find(')')?].split_once(", ")?;
    let hex = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok();
    Some(Range::new(hex(a)?, hex(b)?))
}

struct Stats {
    min: Duration,
    median: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        min: v[0],
        median: v[v.len() / 2],
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(dir: &Path, pretouch: bool, runs: usize) -> Res<()> {
    let jvm = start_jvm(dir, pretouch)?;
    let proc = ProcRoot::new(format!("/proc/{}", jvm.pid));
    let input = ClassifyInput {
        heap: heap_range(jvm.pid).into_iter().collect(),
        ..ClassifyInput::default()
    };
    let mut buf = Vec::with_capacity(1 << 20);
    let mut mappings = Vec::new();
    let (mut raw, mut parse, mut classify) = (vec![], vec![], vec![]);
    let (mut rollup, mut pmap) = (vec![], vec![]);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        proc.read_into("smaps", offheap_doctor::proc_fs::SMAPS_CAP, &mut buf)?;
        raw.push(t.elapsed());

        let t = Instant::now();
        smaps::parse_into(&buf, &mut mappings);
        parse.push(t.elapsed());
        let t = Instant::now();
        let b = breakdown::classify(&mappings, &input);
        classify.push(t.elapsed());
        b.check_sums()?;
        last = Some(b);

        let t = Instant::now();
        let text = proc.read("smaps_rollup")?;
        rollup.push(t.elapsed());
        std::hint::black_box(text);

        let t = Instant::now();
        let out = Command::new("pmap")
            .arg("-X")
            .arg(jvm.pid.to_string())
            .output()?;
        pmap.push(t.elapsed());
        if !out.status.success() {
            return Err(format!("pmap failed: {}", out.status).into());
        }
    }
    let both: Vec<Duration> = parse.iter().zip(&classify).map(|(p, c)| *p + *c).collect();
    let (raw, parse, classify) = (stats(raw), stats(parse), stats(classify));
    let (both, rollup, pmap) = (stats(both), stats(rollup), stats(pmap));
    let b = last.ok_or("no runs")?;
    println!(
        "\nJVM -Xms2g -Xmx2g, {THREADS} idle threads{}: {} mappings, {} KiB of smaps text, RSS {} MiB",
        if pretouch { ", -XX:+AlwaysPreTouch" } else { "" },
        mappings.len(),
        buf.len() / 1024,
        b.totals.rss >> 20
    );
    println!("{:<34} {:>12} {:>12}", "step", "min (us)", "median (us)");
    for (name, s) in [
        ("read /proc/PID/smaps (raw)", &raw),
        ("  parse", &parse),
        ("  classify", &classify),
        ("parse + classify", &both),
        ("read /proc/PID/smaps_rollup", &rollup),
        ("pmap -X PID", &pmap),
    ] {
        println!("{:<34} {:>12.1} {:>12.1}", name, us(s.min), us(s.median));
    }
    println!(
        "(raw + parse + classify) / raw: {:.3} (median), {:.3} (min)",
        (us(raw.median) + us(both.median)) / us(raw.median),
        (us(raw.min) + us(both.min)) / us(raw.min)
    );
    println!(
        "breakdown: heap {} MiB, arenas {} (secondary heaps {}), stacks {} ({} MiB), other_anon {} MiB, files {} MiB",
        b.classes.java_heap.rss >> 20,
        b.arenas.len(),
        b.secondary_arena_heaps,
        b.thread_stacks,
        b.classes.thread_stack.rss >> 20,
        b.classes.other_anon.rss >> 20,
        b.classes.mapped_file.rss >> 20
    );
    Ok(())
}

fn main() -> Res<()> {
    let runs: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 20,
    };
    if runs == 0 {
        return Err("runs must be at least 1".into());
    }
    let dir = std::env::temp_dir().join(format!("smaps-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = compile(&dir)
        .and_then(|()| bench(&dir, false, runs))
        .and_then(|()| bench(&dir, true, runs));
    let _ = std::fs::remove_dir_all(&dir);
    result
}
