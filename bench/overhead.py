#!/usr/bin/env python3
"""CPU time the agent costs per sample, and how long a sample takes.

Prints figures, not a verdict. For an idle JVM and one with 1000 extra idle threads, each run
without and with the agent (interval=1s by default), it measures over a window after a warm-up:
- the CPU time (user + system) of the whole process, from /proc/<pid>/stat;
- the CPU time of the agent's own threads (/proc/<pid>/task/*/comm starting "offheap-doctor":
  the sampler, which also gathers the JVM's facts and runs the zip census, and the trim worker);
- from the report, `sample_ns` (time inside the native core) and the zip census's `scan_ns`.
Usage: bench/overhead.py [--seconds 30] [--warmup 5] [--interval 1s] [--jdk 17]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR, command, read_report  # noqa: E402
from jdks import ROOT  # noqa: E402

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--jdk", type=int, default=17)
    a = ap.parse_args()
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


if __name__ == "__main__":
    main()
