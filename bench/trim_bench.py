#!/usr/bin/env python3
"""The trim benchmark: the fragmentation workload (bench/workloads/Fragmenter.java) under glibc
without the agent, with the agent and trim=off, trim=auto, trim=1s, the agent's malloc tuning
(arenaMax=2 alone, with mmapThreshold=128k, with trim=1s: from premain, too late to cap the
JVM's arenas), the same settings from -agentpath (the native library as a JVMTI agent, before
the JVM's threads exist) alone and with trim=auto, MALLOC_ARENA_MAX=2 and
MALLOC_MMAP_THRESHOLD_=131072 in the environment (with the agent's trim=off, so arenas are
reported and the agent costs the same as beside -agentpath), the JDK's own
-XX:TrimNativeHeapInterval=1000, MALLOC_ARENA_MAX=2 without the agent, jemalloc and tcmalloc, in
one run.

Prints a table per JDK with peak, mean and final RSS, ops/s, trims, total and p99 trim time and
the longest stall a worker saw, each with its ratio to glibc without the agent, and glibc's
arena count at the end where the agent reports it. Runs with the agent then linger after the load
and trim once by hand: a second table sets the agent's estimate of that trim's release against
the VmRSS it released, and RSS before it against after it; then the goals of trim=auto.
Usage: bench/trim_bench.py [--short] [--jdk 17 --jdk 25] [--seconds N] [--threads N] [--only NAME]
                          [--repeat N] [--json out] [--big KiB] [--throughput]
--throughput runs the question of tune=auto's fixed mmap threshold: glibc without the agent against
tune=auto (128k), tune=auto with 1m and 4m, the arena cap alone, jemalloc and tcmalloc, with one
direct buffer in 8 up to 1 MiB; use --repeat 5 or more on a quiet machine (medians of interleaved
runs).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR  # noqa: E402
from jdks import ROOT, java  # noqa: E402

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"

CONFIGS = [
    # name, agent options (None: no agent), extra JVM flags, environment
    ("glibc", None, [], {}),
    ("agent trim=off", "trim=off", [], {}),
    ("agent trim=auto", "trim=auto", [], {}),
    ("agent trim=1s", "trim=1s", [], {}),
    # Tuning beside trimming: glibc settings the agent applies through mallopt from premain.
    ("agent arenaMax=2", "arenaMax=2", [], {}),
    ("agent arenaMax=2,mmapThreshold=128k", "arenaMax=2,mmapThreshold=128k", [], {}),
    ("agent arenaMax=2,trim=1s", "arenaMax=2,trim=1s", [], {}),
    # The same settings from -agentpath ({agentpath} is the extracted library), with the Java
    # agent's trim=off so the arena count is reported; then beside trim=auto.
    ("agentpath arenaMax=2", "trim=off", ["{agentpath}=arenaMax=2"], {}),
    ("agentpath arenaMax=2,mmapThreshold=128k", "trim=off", ["{agentpath}=arenaMax=2,mmapThreshold=128k"], {}),
    ("agentpath arenaMax=2 + trim=auto", "trim=auto", ["{agentpath}=arenaMax=2"], {}),
    ("agentpath arenaMax=2,mmapThreshold=128k + trim=auto", "trim=auto",
     ["{agentpath}=arenaMax=2,mmapThreshold=128k"], {}),
    ("agentpath tune=auto + trim=auto", "trim=auto", ["{agentpath}=tune=auto"], {}),
    # What the fixed mmap threshold of tune=auto costs: none (the arena cap alone, as tune=auto
    # sets it on this machine's CPUs), or higher.
    ("agentpath tune=auto,mmapThreshold=1m + trim=auto", "trim=auto", ["{agentpath}=tune=auto,mmapThreshold=1m"], {}),
    ("agentpath tune=auto,mmapThreshold=4m + trim=auto", "trim=auto", ["{agentpath}=tune=auto,mmapThreshold=4m"], {}),
    ("agentpath arenaMax=<cpus> + trim=auto", "trim=auto", ["{agentpath}=arenaMax={cpus}"], {}),
    ("env MALLOC_ARENA_MAX=2 + agent trim=off", "trim=off", [], {"MALLOC_ARENA_MAX": "2"}),
    ("env ARENA_MAX=2,MMAP_THRESHOLD_=128k + agent trim=off", "trim=off", [],
     {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}),
    ("JDK TrimNativeHeapInterval=1000", None, ["-XX:TrimNativeHeapInterval=1000", "-Xlog:trimnative=debug:stdout"], {}),
    ("MALLOC_ARENA_MAX=2", None, [], {"MALLOC_ARENA_MAX": "2"}),
    ("jemalloc", None, [], {"LD_PRELOAD": JEMALLOC}),
    ("tcmalloc", None, [], {"LD_PRELOAD": TCMALLOC}),
]


# The configurations of --throughput.
THROUGHPUT = ["glibc", "agentpath tune=auto + trim=auto", "agentpath tune=auto,mmapThreshold=1m + trim=auto",
              "agentpath tune=auto,mmapThreshold=4m + trim=auto", "agentpath arenaMax=<cpus> + trim=auto",
              "jemalloc", "tcmalloc"]


def compile_workload(out):
    subprocess.run(["javac", "--release", "8", "-nowarn", "-d", str(out),
                    str(ROOT / "bench" / "workloads" / "Fragmenter.java")], check=True)


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


def run_one(jdk, classes, name, agent, flags, env, a, workdir):
    report = Path(workdir) / (re.sub(r"\W+", "_", name) + f"-{jdk}.jsonl")
    flags = [f.replace("{agentpath}", a.agentpath).replace("{cpus}", str(max(2, len(os.sched_getaffinity(0)))))
             for f in flags]
    cmd = [java(jdk), "-Xmx64m", f"-XX:MaxDirectMemorySize={a.direct}", *flags]
    if a.big:
        cmd.append(f"-Dfragmenter.big={a.big}")
    if agent is not None:
        cmd.append(f"-javaagent:{AGENT_JAR}=interval={a.interval},log=quiet,report={report},{agent}")
    cmd += ["-cp", str(classes), "Fragmenter", str(a.threads), str(a.seconds), str(a.seed),
            str(a.burst_ms), str(a.idle_ms)]
    if agent is not None and a.linger > 0:
        # After the load: the process lingers and trims once itself near the end, through the
        # agent, reading VmRSS around the trim: the check of the agent's estimate, and how far
        # trim=auto got by itself.
        cmd += [str(a.linger), str(a.linger - 1)]
    full_env = {k: v for k, v in __import__("os").environ.items() if k not in ("JAVA_TOOL_OPTIONS", "OFFHEAP_DOCTOR_OPTS")}
    full_env.update(env)
    p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=a.seconds + a.linger + 120)
    if p.returncode != 0:
        raise RuntimeError(f"{name} on JDK {jdk} failed: {p.stderr[-2000:]}")
    m = re.search(r"result ops=(\d+) ops_per_s=([\d.]+) max_stall_ms=([\d.]+) peak_rss=(\d+) mean_rss=(\d+) "
                  r"final_rss=(\d+)", p.stdout)
    row = {"name": name, "ops": int(m.group(1)), "ops_per_s": float(m.group(2)), "max_stall_ms": float(m.group(3)),
           "peak_rss": int(m.group(4)), "mean_rss": int(m.group(5)), "final_rss": int(m.group(6)),
           "trims": None, "trim_total_ms": None, "trim_p99_ms": None, "arenas": None}
    g = re.search(r"probe_max_gap_ms=([\d.]+)", p.stdout)
    row["probe_gap_ms"] = float(g.group(1)) if g else None
    row.update({"estimate": None, "manual_released": None, "rss_before_manual": None, "rss_after_manual": None})
    mt = re.search(r"manualtrim at_ms=(\d+) rss_before=(\d+) rss_after=(\d+)", p.stdout)
    if agent is not None and report.exists() and mt:
        at, before, after = (int(x) for x in mt.groups())
        samples = [json.loads(l) for l in report.read_text().splitlines() if l.strip()]
        prior = [s for s in samples if s.get("kind") == "sample" and s["epoch_ms"] < at and s.get("malloc")]
        if prior:
            row["estimate"] = prior[-1]["malloc"].get("trimmable_resident")
        row["manual_released"] = max(0, before - after)
        row["rss_before_manual"], row["rss_after_manual"] = before, after
    if agent is not None and report.exists():
        last = json.loads(report.read_text().splitlines()[-1])
        t = last["trim"]
        row["trims"] = t["count"]
        row["trim_total_ms"] = t["duration_total_ns"] / 1e6
        row["trim_p99_ms"] = t["duration"]["p99_ns"] / 1e6 if t["duration"] else None
        # Whether arenaMax took: glibc's arenas at the end (mallopt from premain comes too late
        # where the JVM's threads had already made more than 8 arenas).
        row["arenas"] = last["malloc"]["arena_count"] if last.get("malloc") else None
    if "-XX:TrimNativeHeapInterval=1000" in flags:
        # -Xlog:trimnative=debug prints one line per trim with its duration.
        # e.g. "Periodic Trim (2): 97604K->89212K (-8392K) 28.929ms"
        durations = [float(x) for x in re.findall(r"Periodic Trim \(\d+\): \S+ \(\S+\) ([\d.]+)ms", p.stdout)]
        row["trims"] = len(durations)
        row["trim_total_ms"] = sum(durations)
        row["trim_p99_ms"] = percentile(durations, 99)
    return row


def median_row(rows):
    """Each figure's median over the repeats (the median run of each column, not one run)."""
    if len(rows) == 1:
        return rows[0]
    out = {"name": rows[0]["name"], "repeats": len(rows)}
    for k, v in rows[0].items():
        if k == "name":
            continue
        vals = sorted(r[k] for r in rows if r[k] is not None)
        out[k] = vals[len(vals) // 2] if vals else None
    return out


def mib(b):
    return f"{b / 1048576:7.1f}"


def opt(v):
    return "-" if v is None else f"{v:.1f}"


def print_table(jdk, rows):
    base = rows[0]
    print(f"\nJDK {jdk}: {rows[0]['name']} is the baseline; (x) is the ratio to it")

    def cell(v, b, fmt):
        if v is None:
            return f"{'-':>16}"
        ratio = f"({v / b:.2f})" if b else "(-)"
        return f"{fmt(v):>9} {ratio:>6}"

    print(f"{'configuration':<54}{'peak MiB':>16}{'mean MiB':>16}{'final MiB':>16}{'ops/s':>16}"
          f"{'trims':>7}{'trim total ms':>14}{'trim p99 ms':>12}{'max stall ms':>16}{'probe gap ms':>16}{'arenas':>8}")
    for r in rows:
        print(f"{r['name']:<54}{cell(r['peak_rss'], base['peak_rss'], mib)}{cell(r['mean_rss'], base['mean_rss'], mib)}"
              f"{cell(r['final_rss'], base['final_rss'], mib)}{cell(r['ops_per_s'], base['ops_per_s'], lambda x: f'{x:.0f}')}"
              f"{r['trims'] if r['trims'] is not None else '-':>7}"
              f"{opt(r['trim_total_ms']):>14}{opt(r['trim_p99_ms']):>12}"
              f"{cell(r['max_stall_ms'], base['max_stall_ms'], lambda x: f'{x:.1f}')}"
              f"{cell(r['probe_gap_ms'], base['probe_gap_ms'], lambda x: f'{x:.1f}')}"
              f"{r['arenas'] if r['arenas'] is not None else '-':>8}")


def print_after_load(jdk, rows):
    """The estimate against the act, and how close each agent configuration got to one manual trim."""
    if not any(r.get("manual_released") is not None for r in rows):
        return
    print(f"\nJDK {jdk}, after the load: the agent's estimate before one manual trim against the VmRSS it "
          f"released, and RSS before that trim against after it (the policy's own work after the load)")
    print(f"{'configuration':<54}{'estimate MiB':>13}{'released MiB':>13}{'est/rel':>8}"
          f"{'RSS before MiB':>15}{'after MiB':>10}{'before/after':>13}")
    for r in rows:
        if r.get("manual_released") is None:
            continue
        est, rel = r["estimate"], r["manual_released"]
        ratio = f"{est / rel:.2f}" if est is not None and rel else "-"
        print(f"{r['name']:<54}{'-' if est is None else mib(est):>13}{mib(rel):>13}{ratio:>8}"
              f"{mib(r['rss_before_manual']):>15}{mib(r['rss_after_manual']):>10}"
              f"{r['rss_before_manual'] / max(1, r['rss_after_manual']):>13.2f}")


def print_goals(jdk, rows):
    by = {r["name"]: r for r in rows}
    auto, jdk_trim = by.get("agent trim=auto"), by.get("JDK TrimNativeHeapInterval=1000")
    if not auto:
        return
    print(f"\nJDK {jdk}, goals of trim=auto:")
    if jdk_trim:
        print(f"  mean RSS / JDK TrimNativeHeapInterval=1000: {auto['mean_rss'] / jdk_trim['mean_rss']:.2f} (goal <= 1.00)")
        if auto["trim_total_ms"] is not None and jdk_trim["trim_total_ms"]:
            print(f"  total trim time / the JDK's: {auto['trim_total_ms'] / jdk_trim['trim_total_ms']:.2f} (goal <= 0.50)")
    if auto.get("rss_after_manual"):
        print(f"  RSS after the load / after one manual trim: "
              f"{auto['rss_before_manual'] / auto['rss_after_manual']:.2f} (goal <= 1.10)")
    print(f"  trim p99: {opt(auto['trim_p99_ms'])} ms with {auto['arenas']} arenas (goal < 200 ms with 16)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="a run of well under a minute per JDK")
    ap.add_argument("--jdk", type=int, action="append")
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", action="append", help="run only configurations whose name contains this")
    ap.add_argument("--json", help="write the rows here as JSON")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the configurations this many times, interleaved, and print each one's median: "
                         "on a shared machine the load moves between consecutive runs")
    ap.add_argument("--big", type=int, default=0,
                    help="one direct buffer in 8 of 128 KiB to this many KiB (past the mmap threshold), e.g. 1024")
    ap.add_argument("--throughput", action="store_true",
                    help="the throughput question of tune=auto: glibc, tune=auto with its fixed 128k mmap threshold, "
                         "with 1m and 4m, the arena cap alone, jemalloc and tcmalloc, with big buffers (--big 1024)")
    ap.add_argument("--auto", default="", help="extra agent options for trim=auto, e.g. trimMinInterval=2s")
    a = ap.parse_args()
    a.seconds = a.seconds or (6 if a.short else 40)
    a.burst_ms, a.idle_ms = (1500, 1000) if a.short else (3000, 2000)
    a.interval = "500ms" if a.short else "1s"
    a.linger = 5 if a.short else 12
    jdks = a.jdk or ([17] if a.short else [17, 25])
    if a.throughput:
        a.big = a.big or 1024
        a.linger = 0  # throughput only: no trim after the load
    a.direct = "512m" if a.big else "64m"
    if a.throughput:
        configs = [c for c in CONFIGS if c[0] in THROUGHPUT]
    else:
        configs = [c for c in CONFIGS if not a.only or any(o in c[0] for o in a.only)]
    if a.auto:
        configs = [(n, (o + "," + a.auto) if o == "trim=auto" else o, f, e) for n, o, f, e in configs]
    results = {}
    with tempfile.TemporaryDirectory() as d:
        compile_workload(d)
        # The -agentpath flag, as `java -jar offheap-doctor.jar agentpath <dir>` prints it.
        flag = subprocess.run([java(jdks[0]), "-jar", str(AGENT_JAR), "agentpath", d], check=True,
                              capture_output=True, text=True).stdout.strip()
        a.agentpath = flag.split("=", 1)[0]
        for jdk in jdks:
            runs = [[run_one(jdk, d, name, agent, flags, env, a, d) for name, agent, flags, env in configs]
                    for _ in range(max(1, a.repeat))]
            rows = [median_row([r[i] for r in runs]) for i in range(len(configs))]
            results[jdk] = rows
            print_table(jdk, rows)
            print_after_load(jdk, rows)
            print_goals(jdk, rows)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
