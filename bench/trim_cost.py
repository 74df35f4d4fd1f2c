#!/usr/bin/env python3
"""What trims cost.

One trim: duration and bytes released as a function of the bytes glibc retains (about 100 MiB,
500 MiB, 1 GiB), with 0 and 16 threads allocating meanwhile, and the longest stall those threads
saw during the trim against their longest stall in the second before it.

Under load (--load): the fragmentation workload (bench/workloads/Fragmenter.java, 16 threads,
16 arenas) with trim=off, trim=auto and trim=1s, and with -agentpath tune=auto beside trim=auto;
a probe thread mallocs and frees in a loop and reports the longest time one round took, so the
cost of trims to the application is the probe's gap with trims against without. Prints the trims'
p50, p99 and max duration too, per JDK, medians of interleaved repeats.
Usage: bench/trim_cost.py [--jdk 17 [--jdk 25]] [--repeat 3] [--load [--seconds 20]]
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR  # noqa: E402
from jdks import ROOT, java  # noqa: E402


LOAD_CONFIGS = [
    # name, agent options, extra JVM flags ({agentpath}: the extracted library)
    ("trim=off", "trim=off", []),
    ("trim=auto", "trim=auto", []),
    ("trim=1s", "trim=1s", []),
    ("agentpath tune=auto + trim=auto", "trim=auto", ["{agentpath}=tune=auto"]),
]


def under_load(a, jdk, d, agentpath):
    import json
    rows = {name: [] for name, _, _ in LOAD_CONFIGS}
    for _ in range(a.repeat):
        for name, opts, flags in LOAD_CONFIGS:
            report = Path(d) / f"load-{jdk}.jsonl"
            if report.exists():
                report.unlink()
            cmd = [java(jdk), "-Xmx64m", "-XX:MaxDirectMemorySize=64m",
                   *[f.replace("{agentpath}", agentpath) for f in flags],
                   f"-javaagent:{AGENT_JAR}=interval=500ms,log=quiet,report={report},{opts}",
                   "-cp", d, "Fragmenter", "16", str(a.seconds), "42", "3000", "2000"]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 120)
            m = re.search(r"probe_max_gap_ms=([\d.]+)", p.stdout)
            if p.returncode != 0 or not m:
                raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])
            last = json.loads(report.read_text().splitlines()[-1])
            durations = [e["duration_ns"] / 1e6 for s in (json.loads(l) for l in report.read_text().splitlines())
                         for e in s.get("trim", {}).get("events", [])]
            rows[name].append((float(m.group(1)), durations, last["malloc"]["arena_count"]))
    print(f"\nunder load, JDK {jdk}, 16 threads, {a.seconds} s, median of {a.repeat} interleaved runs")
    print(f"{'configuration':<34}{'arenas':>7}{'trims':>7}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'probe gap ms':>14}")
    for name, runs in rows.items():
        gap = statistics.median(r[0] for r in runs)
        all_d = sorted(x for r in runs for x in r[1])
        pct = lambda q: all_d[min(len(all_d) - 1, int(q * len(all_d)))] if all_d else float("nan")  # noqa: E731
        trims = statistics.median(len(r[1]) for r in runs)
        arenas = statistics.median(r[2] for r in runs)
        print(f"{name:<34}{arenas:>7.0f}{trims:>7.0f}{pct(0.5):>8.1f}{pct(0.99):>8.1f}"
              f"{(all_d[-1] if all_d else float('nan')):>8.1f}{gap:>14.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jdk", type=int, action="append")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--load", action="store_true", help="measure trims under the fragmentation workload instead")
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args()
    jdks = a.jdk or [17]
    if a.load:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["javac", "--release", "8", "-nowarn", "-d", d,
                            str(ROOT / "bench" / "workloads" / "Fragmenter.java")], check=True)
            flag = subprocess.run([java(jdks[0]), "-jar", str(AGENT_JAR), "agentpath", d], check=True,
                                  capture_output=True, text=True).stdout.strip()
            for jdk in jdks:
                under_load(a, jdk, d, flag.split("=", 1)[0])
        return
    a.jdk = jdks[0]
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", d,
                        str(ROOT / "bench" / "workloads" / "TrimCost.java")], check=True)
        print(f"one malloc_trim, JDK {a.jdk}, median of {a.repeat} runs")
        print(f"{'retained':>9}{'churn':>7}{'released MiB':>14}{'trim ms':>10}{'stall ms':>10}{'stall before ms':>17}")
        for mib in (100, 500, 1024):
            for churn in (0, 16):
                rows = []
                for _ in range(a.repeat):
                    p = subprocess.run([java(a.jdk), "-Xmx64m", f"-javaagent:{AGENT_JAR}=log=quiet,interval=1h",
                                        "-cp", d, "TrimCost", str(mib), str(churn)],
                                       capture_output=True, text=True, timeout=600)
                    m = re.search(r"released=(\d+) duration_ms=([\d.]+) max_stall_ms=([\d.]+) base_stall_ms=([\d.]+)",
                                  p.stdout)
                    if not m:
                        raise RuntimeError(p.stdout + p.stderr)
                    rows.append([float(x) for x in m.groups()])
                med = [statistics.median(r[i] for r in rows) for i in range(4)]
                print(f"{mib:>6}MiB{churn:>7}{med[0] / 1048576:>14.1f}{med[1]:>10.1f}"
                      f"{(med[2] if churn else float('nan')):>10.1f}{(med[3] if churn else float('nan')):>17.1f}")


if __name__ == "__main__":
    main()
