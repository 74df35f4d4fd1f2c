#!/usr/bin/env python3
"""What call sites cost: a zlib-heavy and a direct-buffer-heavy workload
(bench/workloads/SitesBench.java) with the agent's sites=on against sites=off, JDK 17 and 25.

Figures, not a verdict. Per JDK and workload: the median over interleaved repeats (on and off
alternate, the first of each pair swapping) of the operations per second, their ratio on/off, the
VmRSS after the load, a System.gc and the agent's trimNow (the workload reads its own
/proc/self/status: what the load leaves resident, without the garbage glibc keeps free) and its
difference, and the sites status the agent's last sample gave (on, off, unavailable, or "-" without a sites
part). Then start-up: the time from just before the JVM is started to main's first line
(System.nanoTime there against the script's CLOCK_MONOTONIC), median of the repeats, and its
difference. The goals to set these against: throughput at least 99% of off, at most 2 MiB more
resident memory, start-up at most 10 ms more.
Usage: bench/sites_bench.py [--short] [--jdk 17 --jdk 25] [--repeat 5] [--seconds 10] [--threads 2]
                           [--interval 10s] [--jar other.jar]
--short: one repeat of 2 s per run (three of start-up), for a smoke test of the script (under 60 s
for one JDK).
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR  # noqa: E402
from jdks import ROOT, java  # noqa: E402

WORKLOADS = {"zlib": "zip", "direct": "direct"}
MODES = ("off", "on")


def jvm(jdk, jar, mode, classes, args, report, interval):
    opts = f"sites={mode},log=quiet,report={report}" + (f",interval={interval}" if interval else "")
    return [java(jdk), "-Xmx64m", "-XX:MaxDirectMemorySize=256m", f"-javaagent:{jar}={opts}",
            "-cp", str(classes), "SitesBench", *args]


def run(cmd, timeout):
    """The workload's output fields, and the monotonic ns just before its JVM was started."""
    t0 = time.monotonic_ns()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    out = {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", p.stdout)}
    if out.get("trim_failed"):
        raise SystemExit(f"the workload could not trim through the agent's MBean:\n{p.stdout}")
    return out, t0


def sites_status(report):
    """The sites status of the report's last sample; "-" when it has none."""
    try:
        lines = Path(report).read_text().splitlines()
    except OSError:
        return "-"
    for line in reversed(lines):
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        sites = sample.get("sites")
        return sites.get("status", "?") if isinstance(sites, dict) else "-"
    return "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--jdk", type=int, action="append")
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--interval", help="the agent's sampling interval (default: the agent's own)")
    ap.add_argument("--jar", default=str(AGENT_JAR))
    a = ap.parse_args()
    jdks = a.jdk or [17, 25]
    repeat = a.repeat or (1 if a.short else 5)
    seconds = a.seconds or (2 if a.short else 10)
    startups = max(repeat, 3) if a.short else repeat
    warmup_ms, measure_ms = int(seconds * 1000 / 4), int(seconds * 1000)
    with tempfile.TemporaryDirectory() as d:
        classes = Path(d) / "classes"
        subprocess.run(["javac", "--release", "8", "-nowarn", "-d", str(classes),
                        str(ROOT / "bench" / "workloads" / "SitesBench.java")], check=True)
        print(f"call sites: sites=on against sites=off, {repeat} interleaved repeats of {seconds:g} s"
              f" ({a.threads} threads), medians; start-up median of {startups}; {a.jar}")
        print(f"{'JDK':<4}{'workload':<10}{'ops/s off':>12}{'ops/s on':>12}{'ratio':>8}"
              f"{'RSS off MiB':>13}{'RSS on MiB':>12}{'diff MiB':>10}  sites off/on")
        for jdk in jdks:
            for name, arg in WORKLOADS.items():
                rate = {m: [] for m in MODES}
                rss = {m: [] for m in MODES}
                status = {m: set() for m in MODES}
                for i in range(repeat):
                    for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                        report = Path(d) / f"{jdk}-{name}-{mode}-{i}.jsonl"
                        cmd = jvm(jdk, a.jar, mode, classes,
                                  [arg, str(a.threads), str(warmup_ms), str(measure_ms)], report, a.interval)
                        out, _ = run(cmd, timeout=seconds * 3 + 60)
                        rate[mode].append(out["ops"] / (out["ns"] / 1e9))
                        rss[mode].append(out["rss"] / 2**20)
                        status[mode].add(sites_status(report))
                off, on = statistics.median(rate["off"]), statistics.median(rate["on"])
                roff, ron = statistics.median(rss["off"]), statistics.median(rss["on"])
                said = "/".join(",".join(sorted(status[m])) for m in MODES)
                print(f"{jdk:<4}{name:<10}{off:>12.0f}{on:>12.0f}{on / off if off else float('nan'):>8.3f}"
                      f"{roff:>13.1f}{ron:>12.1f}{ron - roff:>+10.1f}  {said}", flush=True)
            ms = {m: [] for m in MODES}
            for i in range(startups):
                for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                    report = Path(d) / f"{jdk}-hello-{mode}-{i}.jsonl"
                    out, t0 = run(jvm(jdk, a.jar, mode, classes, ["hello"], report, a.interval), timeout=60)
                    ms[mode].append((out["main_ns"] - t0) / 1e6)
            off, on = statistics.median(ms["off"]), statistics.median(ms["on"])
            print(f"{jdk:<4}{'start-up':<10}{off:>10.1f}ms{on:>10.1f}ms{'':>8}{'':>13}{'':>12}{on - off:>+8.1f}ms",
                  flush=True)


if __name__ == "__main__":
    main()
