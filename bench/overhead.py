#!/usr/bin/env python3
"""CPU time the agent costs per sample, and how long a sample takes.

Prints figures, not a verdict. For an idle JVM and one with 1000 extra idle threads, each run
without and with the agent (interval=1s by default), it measures over a window after a warm-up:
- the CPU time (user + system) of the whole process, from /proc/<pid>/stat;
- the CPU time of the agent's own threads (/proc/<pid>/task/*/comm starting "offheap-doctor":
  the sampler, which also gathers the JVM's facts and runs the zip census, and the trim worker);
- from the report, `sample_ns` (time inside the native core) and the zip census's `scan_ns`.

Then (skip with --only cpu):
- memory: an idle JVM (-Xmx64m, NMT summary) without and with the agent (interval=10s; and with mbean=on) at steady
  state, after its first sample and the MXBean's registration: RSS and PSS from smaps_rollup, the
  difference split by where it lives (Java heap pages, the agent's library, other file mappings,
  anonymous memory, from smaps and the heap's range) and by NMT category, loaded classes, threads;
  and the RSS with an agent jar whose premain does nothing (what being a -javaagent costs by itself).
- throughput: the fragmentation workload (bench/workloads/Fragmenter.java, continuous work on 2
  threads) without the agent and with interval=10s and interval=1s, interleaved repetitions; ops/s
  as ratios to the runs without the agent, and the noise: the spread of the runs without it.
Usage: bench/overhead.py [--seconds 30] [--warmup 5] [--interval 1s] [--jdk 17]
                         [--only cpu|memory|throughput] [--reps 4] [--run-seconds 12]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR, command, read_report  # noqa: E402
from jdks import ROOT, java  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def compile_workloads(out):
    sources = [str(p) for p in (ROOT / "tests" / "workloads").glob("*.java")]
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", str(out), *sources],
                   check=True)


def cpu_seconds(stat_path):
    """utime + stime of a /proc stat file, in seconds (fields after the parenthesised comm)."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def agent_thread_cpu(pid):
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if task.joinpath("comm").read_text().startswith("offheap-doctor"):
                total += cpu_seconds(task / "stat")
        except OSError:
            pass  # the thread ended between listing and reading
    return total


def measure(jdk, classpath, threads, agent, a, report):
    args = ([f"threads={threads}"] if threads else []) + [f"sleep={int((a.warmup + a.seconds + 30) * 1000)}"]
    opts = f"interval={a.interval},log=quiet,report={report}" if agent else None
    cmd = command(jdk, "NativeGrowth", args, opts, classpath=classpath, xcheck=False)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(a.warmup)
        seq0 = len(read_report(report)) if agent else 0
        cpu0, agent0 = cpu_seconds(f"/proc/{p.pid}/stat"), agent_thread_cpu(p.pid) if agent else 0.0
        time.sleep(a.seconds)
        cpu1, agent1 = cpu_seconds(f"/proc/{p.pid}/stat"), agent_thread_cpu(p.pid) if agent else 0.0
        samples = read_report(report)[seq0:] if agent else []
    finally:
        p.kill()
        p.wait()
    return {"cpu": cpu1 - cpu0, "agent_cpu": agent1 - agent0, "samples": samples}


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


MiB = 1 << 20


def smaps_split(pid, heap_lo, heap_hi):
    """Resident KiB of /proc/<pid>/smaps by where it lives."""
    out = {}
    cur = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
        if m:
            start, name = int(m.group(1), 16), m.group(4)
            if heap_lo <= start < heap_hi:
                cur = "java heap pages"
            elif "liboffheap_doctor" in name:
                cur = "agent library (mapped)"
            elif name.startswith("/"):
                cur = "other file mappings"
            else:
                cur = "anonymous (malloc, metaspace, code, stacks)"
        elif line.startswith("Rss:") and cur:
            out[cur] = out.get(cur, 0) + int(line.split()[1])
    return out


def jcmd(jdk, pid, *args):
    tool = str(Path(java(jdk)).parent / "jcmd")
    return subprocess.run([tool, str(pid), *args], capture_output=True, text=True, timeout=60).stdout


AGENT_MEMORY_OPTS = "interval=10s,log=quiet"
# The same with the platform MBeanServer created for the MXBean at start-up (the default waits
# for a JMX user to create it).
EAGER_MBEAN_OPTS = AGENT_MEMORY_OPTS + ",mbean=on"


def empty_agent_jar(workdir):
    """An agent jar whose premain does nothing: what being a -javaagent at all costs."""
    src = Path(workdir) / "empty" / "EmptyAgent.java"
    src.parent.mkdir(exist_ok=True)
    src.write_text("public class EmptyAgent { public static void premain(String a,"
                   " java.lang.instrument.Instrumentation i) {} }\n")
    subprocess.run(["javac", "--release", "8", "-nowarn", "-d", str(src.parent), str(src)], check=True)
    (src.parent / "manifest.txt").write_text("Premain-Class: EmptyAgent\n")
    jar = Path(workdir) / "empty-agent.jar"
    subprocess.run(["jar", "cfm", str(jar), str(src.parent / "manifest.txt"), "-C", str(src.parent),
                    "EmptyAgent.class"], check=True)
    return jar


def memory_state(jdk, classpath, agent_opts, settle, empty_jar=None):
    flags = ["-XX:NativeMemoryTracking=summary"] + (["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else [])
    if empty_jar:
        flags.append(f"-javaagent:{empty_jar}")
    cmd = command(jdk, "Idle", [str(settle + 60)], agent_opts, flags, classpath=classpath, xcheck=False)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        roll = {}
        for line in Path(f"/proc/{p.pid}/smaps_rollup").read_text().splitlines():
            f = line.split()
            if len(f) >= 3 and f[0].endswith(":"):
                roll[f[0][:-1]] = int(f[1])
        m = re.search(r"\[(0x[0-9a-f]+), (0x[0-9a-f]+)\)", jcmd(jdk, p.pid, "GC.heap_info"))
        split = smaps_split(p.pid, int(m.group(1), 16), int(m.group(2), 16)) if m else {}
        nmt_text = jcmd(jdk, p.pid, "VM.native_memory", "summary", "scale=KB")
        nmt = {n.strip(): int(c) for n, c in
               re.findall(r"^-\s+(.+?) \(reserved=\d+KB, committed=(\d+)KB\)", nmt_text, re.M)}
        classes = re.search(r"classes #(\d+)", nmt_text)
        threads = len(os.listdir(f"/proc/{p.pid}/task"))
    finally:
        p.kill()
        p.wait()
    return {"roll": roll, "split": split, "nmt": nmt, "classes": int(classes.group(1)) if classes else -1,
            "threads": threads}


def memory_section(a, classpath):
    configs = (None, AGENT_MEMORY_OPTS, EAGER_MBEAN_OPTS)
    runs = {c: [] for c in configs}
    empty_jar = empty_agent_jar(classpath)
    empty = []
    for _ in range(a.mem_reps):
        for c in configs:
            runs[c].append(memory_state(a.jdk, classpath, c, a.settle))
        empty.append(memory_state(a.jdk, classpath, None, a.settle, empty_jar))

    def med(c, f):
        return statistics.median(f(r) for r in runs[c])

    def row(label, f, always=True):
        w, x, e = (med(c, f) / 1024 for c in configs)
        if always or abs(x - w) >= 0.1 or abs(e - w) >= 0.1:
            print(f"{label:<46}{w:>9.1f}{x:>9.1f}{x - w:>+9.1f}{e:>11.1f}{e - w:>+9.1f}")

    print(f"\nresident memory, JDK {a.jdk}: idle JVM -Xmx64m, NMT summary, interval=10s, after {a.settle:.0f} s,"
          f" medians of {a.mem_reps} runs each (MiB)")
    print(f"{'':<46}{'without':>9}{'with':>9}{'cost':>9}{'mbean=on':>11}{'cost':>9}")
    for key in ("Rss", "Pss", "Anonymous"):
        row(key + " (smaps_rollup)", lambda r, k=key: r["roll"][k])
    names = sorted({k for rs in runs.values() for r in rs for k in r["split"]})
    for k in names:
        row("  " + k, lambda r, k=k: r["split"].get(k, 0))
    cats = sorted({k for rs in runs.values() for r in rs for k in r["nmt"]} - {"Java Heap"},
                  key=lambda k: -(med(AGENT_MEMORY_OPTS, lambda r: r["nmt"].get(k, 0))
                                  - med(None, lambda r: r["nmt"].get(k, 0))))
    for k in cats:
        row(f"  NMT committed {k}", lambda r, k=k: r["nmt"].get(k, 0), always=False)
    e = statistics.median(r["roll"]["Rss"] for r in empty) / 1024
    print(f"{'Rss with an agent whose premain does nothing':<46}{med(None, lambda r: r['roll']['Rss']) / 1024:>9.1f}"
          f"{e:>9.1f}{e - med(None, lambda r: r['roll']['Rss']) / 1024:>+9.1f}")
    counts = [med(c, lambda r: r["classes"]) for c in configs]
    print(f"{'classes loaded':<46}{counts[0]:>9.0f}{counts[1]:>9.0f}{'':>9}{counts[2]:>11.0f}")
    counts = [med(c, lambda r: r["threads"]) for c in configs]
    print(f"{'threads':<46}{counts[0]:>9.0f}{counts[1]:>9.0f}{'':>9}{counts[2]:>11.0f}")
    print("with: the defaults (mbean=auto: no platform MBeanServer until a JMX user makes one); mbean=on: the"
          " server made at start-up for the MXBean. java heap pages: young-generation pages the agent's start-up"
          " garbage touched (an application that allocates at all touches them too); anonymous minus the NMT"
          " rows: malloc outside NMT (the native core, zlib, glibc arena for the agent's thread) and what"
          " glibc keeps free after the JIT's and class loading's start-up arenas.")


def throughput_run(jdk, classes, interval, seconds, workdir):
    cmd = [java(jdk), "-Xmx64m", "-XX:MaxDirectMemorySize=64m"]
    if interval:
        cmd.append(f"-javaagent:{AGENT_JAR}=interval={interval},log=quiet,report={workdir}/tp-{interval}.jsonl")
    cmd += ["-cp", str(classes), "Fragmenter", "2", str(seconds), "7", str(seconds * 1000 + 1000), "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "OFFHEAP_DOCTOR_OPTS")}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    m = re.search(r"ops_per_s=([\d.]+)", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"Fragmenter failed ({interval}): {p.stderr[-1000:]}")
    return float(m.group(1))


def throughput_section(a, workdir):
    classes = Path(workdir) / "frag"
    classes.mkdir(exist_ok=True)
    subprocess.run(["javac", "--release", "8", "-nowarn", "-d", str(classes),
                    str(ROOT / "bench" / "workloads" / "Fragmenter.java")], check=True)
    configs = [None, "10s", "1s"]
    ops = {c: [] for c in configs}
    for rep in range(a.reps):
        order = configs if rep % 2 == 0 else configs[::-1]  # interleaved, alternating order
        for c in order:
            ops[c].append(throughput_run(a.jdk, classes, c, a.run_seconds, workdir))
    base = statistics.mean(ops[None])
    spread = (max(ops[None]) - min(ops[None])) / base
    sd = statistics.stdev(ops[None]) / base if len(ops[None]) > 1 else float("nan")
    print(f"\nthroughput, JDK {a.jdk}: Fragmenter, 2 threads continuous, {a.run_seconds} s per run,"
          f" {a.reps} interleaved runs each (ops/s)")
    print(f"{'':<22}{'mean':>10}{'min':>10}{'max':>10}{'ratio':>8}")
    for c in configs:
        v = ops[c]
        print(f"{'no agent' if c is None else 'agent interval=' + c:<22}{statistics.mean(v):>10.0f}{min(v):>10.0f}"
              f"{max(v):>10.0f}{statistics.mean(v) / base:>8.3f}")
    print(f"noise without the agent: stdev {100 * sd:.1f}% of the mean, max-min spread {100 * spread:.1f}%;"
          " a ratio within that is no measurable loss.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--jdk", type=int, default=17)
    ap.add_argument("--only", choices=["cpu", "memory", "throughput"])
    ap.add_argument("--settle", type=float, default=15, help="memory: seconds before reading")
    ap.add_argument("--mem-reps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=4, help="throughput: runs per configuration")
    ap.add_argument("--run-seconds", type=int, default=12, help="throughput: seconds per run")
    a = ap.parse_args()
    if a.only in ("memory", "throughput"):
        with tempfile.TemporaryDirectory() as d:
            if a.only == "memory":
                compile_workloads(d)
                memory_section(a, d)
            else:
                throughput_section(a, d)
        return
    rows = []
    with tempfile.TemporaryDirectory() as d:
        compile_workloads(d)
        for threads in (0, 1000):
            plain = measure(a.jdk, d, threads, False, a, None)
            with_ = measure(a.jdk, d, threads, True, a, Path(d) / f"r{threads}.jsonl")
            n = len(with_["samples"])
            native_ms = [s["sample_ns"] / 1e6 for s in with_["samples"] if s.get("sample_ns") is not None]
            census_ms = [s["zip"]["scan_ns"] / 1e6 for s in with_["samples"]
                         if isinstance(s.get("zip"), dict) and s["zip"].get("scan_ns") is not None]
            rows.append((threads, plain, with_, n, native_ms, census_ms))
    print(f"agent overhead, JDK {a.jdk}, interval={a.interval}, {a.seconds:.0f} s window after {a.warmup:.0f} s warm-up")
    print(f"{'JVM':<18}{'samples':>8}{'proc CPU ms':>13}{'  (no agent)':>13}{'agent thr ms':>14}"
          f"{'ms/sample':>11}{'CPU %':>7}{'native p50':>12}{'p95':>7}{'max':>7}{'census p50':>12}")
    for threads, plain, with_, n, native_ms, census_ms in rows:
        per = with_["agent_cpu"] * 1000 / n if n else float("nan")
        print(f"{('idle' if not threads else f'{threads} threads'):<18}{n:>8}{with_['cpu'] * 1000:>13.0f}"
              f"{plain['cpu'] * 1000:>13.0f}{with_['agent_cpu'] * 1000:>14.0f}{per:>11.1f}"
              f"{100 * with_['agent_cpu'] / a.seconds:>7.2f}"
              f"{pct(native_ms, 0.5):>12.2f}{pct(native_ms, 0.95):>7.2f}{max(native_ms, default=float('nan')):>7.2f}"
              f"{pct(census_ms, 0.5):>12.2f}")
    print("proc CPU: the whole JVM over the window, with the agent and (no agent) without; agent thr: its"
          " own threads; native p50/p95/max: sample_ns in ms; census: zip census scan in ms."
          f" CPU times have a resolution of {1000 / TICK:.0f} ms.")
    if a.only is None:
        with tempfile.TemporaryDirectory() as d:
            compile_workloads(d)
            memory_section(a, d)
            throughput_section(a, d)


if __name__ == "__main__":
    main()
