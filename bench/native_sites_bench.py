#!/usr/bin/env python3
"""What the native call sites sampler costs and how close its estimate comes: nativeSites=on
against nativeSites=off, JDK 17 and 25.

Figures, not a verdict. Two parts (--only picks one):
- throughput and resident memory: the fragmentation workload (bench/workloads/Fragmenter.java:
  zlib streams and direct buffers, 16 threads by default, continuous work) with nativeSites=off and with
  nativeSites=on at each rate asked (--rate, repeatable; without it the agent's default rate, the
  option left out), interleaved repeats (the order of the configurations rotating and reversing
  from one repeat to the next), medians. Per JDK and rate: ops/s off and on and their ratio; the
  workload's own mean VmRSS over the run (read by it once a second, not the agent's figure) off
  and on and their difference; the native_sites status of each run's last sample (on, off,
  unavailable, or "-" without the part), so a run where the sampler did not start shows; and the
  sampler's `sampled` count in that sample (median of the on runs); last, the noise: the spread
  (max - min) of the off runs' ops/s as a share of their median, against which to read a ratio.
  The rate column is the `sample_bytes` the on runs' reports gave, not the one asked for.
- estimate error: tests/workloads/NativeLeak.java with tests/native/leaky.c (built with cc as the
  tests build it) keeps a known total (--leak, repeatable) in four piece sizes (a quarter each in
  blocks of 1000 B, 8 KiB, 64 KiB and 256 KiB) from leak_into_cache, while another thread mallocs
  and frees, under the sampler at each rate. The live_bytes of the sites whose innermost frame is
  leak_into_cache, from the last sample, against the library's own `leaked=` count: per JDK, rate
  and leak size, the mean and max of |estimate - leaked| / leaked over the repeats, the mean
  signed error (bias), the sampled allocations behind the estimate (median live_samples) and the
  statuses.
The goals to set these against: throughput at least 97% of off at the default rate, at most
8 MiB more resident memory; the leak tests hold the estimate to within 25%.

The agent samples every --interval (default 1s, the same with the sampler off and on) so each
run's last sample comes near its end; the sampler's own snapshot is part of what "on" costs.

Usage: bench/native_sites_bench.py [--short] [--jdk 17 --jdk 25] [--rate 128k --rate 512k ...]
           [--repeat 5] [--seconds 10] [--threads 16] [--leak 64m --leak 256m] [--leak-repeat 3]
           [--interval 1s] [--only throughput|error] [--jar other.jar]
The full run (both JDKs, three rates against off):
    bench/native_sites_bench.py --jdk 17 --jdk 25 --rate 128k --rate 512k --rate 2m
(about a quarter of an hour: 40 Fragmenter runs of 10 s per JDK, 18 leak runs per JDK.)
--short: one JDK (17 unless --jdk), one repeat of 3 s, one 64 MiB leak: a smoke test of the
script (under 30 s for one JDK on a quiet machine).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pytest  # noqa: E402  (build_leaky_library reports a missing compiler as a pytest skip)

from harness import AGENT_JAR, build_leaky_library  # noqa: E402
from jdks import ROOT, java  # noqa: E402

MiB = 1 << 20
SIZE = re.compile(r"^(\d+)([kmg]?)$")
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# A quarter of each leak in blocks of each size: small ones from glibc's bins, 256 KiB ones past
# its initial mmap threshold, so both the sampler's weighting of many small and of few large
# allocations count.
LEAK_PIECES = (1000, 8 << 10, 64 << 10, 256 << 10)
OFF = "off"


def size_arg(text):
    m = SIZE.match(text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (bytes or <n>k, <n>m, <n>g)")
    return m.group(1) + m.group(2)


def size_bytes(text):
    m = SIZE.match(text)
    return int(m.group(1)) * UNITS[m.group(2)]


def human(n):
    for unit, scale in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def agent_opts(config, report, interval):
    """`config` is OFF, "default" (on, no rate option) or a rate such as "512k"."""
    opts = f"log=quiet,interval={interval},report={report},nativeSites={OFF if config == OFF else 'on'}"
    return opts + (f",nativeSitesRate={config}" if config not in (OFF, "default") else "")


def native_access(jdk):
    # Without it JDK 24 and later warn on stderr when the agent (and NativeLeak) load a library.
    return ["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else []


def run(cmd, timeout):
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "OFFHEAP_DOCTOR_OPTS")}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout


def last_native_sites(report):
    """The native_sites part of the report's last sample: None without a sample, {} without the part."""
    try:
        lines = Path(report).read_text().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        part = sample.get("native_sites")
        return part if isinstance(part, dict) else {}
    return None


def status_of(part):
    return "-" if not part else str(part.get("status", "?"))


def orders(configs, repeat):
    """Each repeat's order: reversed every other repeat and rotated by one more every two, so no
    configuration always runs first or always follows the same one."""
    for i in range(repeat):
        k = (i // 2) % len(configs)
        order = configs[k:] + configs[:k]
        yield order if i % 2 == 0 else order[::-1]


def throughput(a, jdks, configs, d):
    classes = Path(d) / "frag"
    subprocess.run(["javac", "--release", "8", "-nowarn", "-d", str(classes),
                    str(ROOT / "bench" / "workloads" / "Fragmenter.java")], check=True)
    print(f"throughput and resident memory: Fragmenter, {a.threads} threads continuous, {a.repeat} interleaved"
          f" repeats of {a.seconds} s, medians; agent interval={a.interval}; {a.jar}")
    print(f"{'JDK':<4}{'rate':<7}{'ops/s off':>11}{'ops/s on':>11}{'ratio':>8}{'RSS off MiB':>13}{'RSS on MiB':>12}"
          f"{'diff MiB':>10}  {'status off/on':<15}{'sampled':>9}{'off spread %':>14}")
    for jdk in jdks:
        ops = {c: [] for c in configs}
        rss = {c: [] for c in configs}
        status = {c: set() for c in configs}
        sampled = {c: [] for c in configs}
        rate = {c: set() for c in configs}
        for i, order in enumerate(orders(configs, a.repeat)):
            for c in order:
                report = Path(d) / f"frag-{jdk}-{c}-{i}.jsonl"
                # Bursts longer than the run: continuous work, no idle gaps.
                cmd = [java(jdk), "-Xmx64m", "-XX:MaxDirectMemorySize=256m", *native_access(jdk),
                       f"-javaagent:{a.jar}={agent_opts(c, report, a.interval)}", "-cp", str(classes),
                       "Fragmenter", str(a.threads), str(a.seconds), "7", str(a.seconds * 1000 + 1000), "0"]
                out = run(cmd, timeout=a.seconds * 4 + 90)
                m = re.search(r"^result ops=(\d+) ops_per_s=([\d.]+) .*\bmean_rss=(\d+)", out, re.M)
                if not m:
                    raise SystemExit(f"no result line from {' '.join(cmd)}:\n{out[-2000:]}")
                ops[c].append(float(m.group(2)))
                rss[c].append(int(m.group(3)) / MiB)
                part = last_native_sites(report)
                status[c].add(status_of(part))
                if part and isinstance(part.get("sampled"), int):
                    sampled[c].append(part["sampled"])
                if part and isinstance(part.get("sample_bytes"), int):
                    rate[c].add(part["sample_bytes"])
        off, roff = statistics.median(ops[OFF]), statistics.median(rss[OFF])
        spread = 100 * (max(ops[OFF]) - min(ops[OFF])) / off if off else float("nan")
        for c in configs[1:]:
            on, ron = statistics.median(ops[c]), statistics.median(rss[c])
            seen = ",".join(human(r) for r in sorted(rate[c])) or "-"
            said = ",".join(sorted(status[OFF])) + "/" + ",".join(sorted(status[c]))
            count = f"{statistics.median(sampled[c]):.0f}" if sampled[c] else "-"
            print(f"{jdk:<4}{seen:<7}{off:>11.0f}{on:>11.0f}{on / off if off else float('nan'):>8.3f}"
                  f"{roff:>13.1f}{ron:>12.1f}{ron - roff:>+10.1f}  {said:<15}{count:>9}{spread:>14.1f}", flush=True)


def leak_steps(total):
    quarter = total // len(LEAK_PIECES)
    # await: the library, loaded by main, is interposed from the first sample begun after it; the
    # sleep leaves time for a sample after the leak.
    return ["await", *(f"leak {quarter} {piece}" for piece in LEAK_PIECES), "sleep 1500"]


def estimate_error(a, jdks, configs, d):
    classes = Path(d) / "leak"
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(a.jar), "-sourcepath",
                    str(ROOT / "tests" / "workloads"), "-d", str(classes),
                    str(ROOT / "tests" / "workloads" / "NativeLeak.java")], check=True)
    try:
        lib = build_leaky_library(Path(d))
    except pytest.skip.Exception as e:
        raise SystemExit(str(e)) from None
    pieces = ", ".join(f"{p >> 10} KiB" if p % 1024 == 0 else f"{p} B" for p in LEAK_PIECES)
    print(f"\nestimate error: NativeLeak keeps each total in blocks of {pieces} (a quarter each) while a"
          f" thread mallocs and frees; live_bytes of the leak_into_cache sites against the library's own"
          f" count, {a.leak_repeat} runs each; agent interval=500ms")
    print(f"{'JDK':<4}{'rate':<7}{'leak MiB':>9}{'runs':>6}{'mean err %':>12}{'max err %':>11}{'bias %':>9}"
          f"{'samples':>9}  status")
    for jdk in jdks:
        for c in configs[1:]:
            for total in a.leak:
                errors, samples, status, rate = [], [], set(), set()
                for i in range(a.leak_repeat):
                    report = Path(d) / f"leak-{jdk}-{c}-{total}-{i}.jsonl"
                    cmd = [java(jdk), "-Xmx64m", f"-Dnativeleak.lib={lib}", *native_access(jdk),
                           f"-javaagent:{a.jar}={agent_opts(c, report, '500ms')}", "-cp", str(classes),
                           "NativeLeak", *leak_steps(size_bytes(total))]
                    out = run(cmd, timeout=180)
                    leaked = [int(v) for v in re.findall(r"\bleaked=(-?\d+)", out)]
                    if not leaked or leaked[-1] <= 0:
                        raise SystemExit(f"no leaked= count from {' '.join(cmd)}:\n{out[-2000:]}")
                    part = last_native_sites(report)
                    status.add(status_of(part))
                    if part and isinstance(part.get("sample_bytes"), int):
                        rate.add(part["sample_bytes"])
                    ours = [s for s in (part or {}).get("sites", []) if s.get("native")
                            and s["native"][0].get("symbol") == "leak_into_cache"]
                    estimate = sum(s.get("live_bytes", 0) for s in ours)
                    errors.append((estimate - leaked[-1]) / leaked[-1])
                    samples.append(sum(s.get("live_samples", 0) for s in ours))
                seen = ",".join(human(r) for r in sorted(rate)) or "-"
                absolute = [abs(e) for e in errors]
                print(f"{jdk:<4}{seen:<7}{size_bytes(total) / MiB:>9.1f}{len(errors):>6}"
                      f"{100 * statistics.mean(absolute):>12.1f}{100 * max(absolute):>11.1f}"
                      f"{100 * statistics.mean(errors):>+9.1f}{statistics.median(samples):>9.0f}"
                      f"  {','.join(sorted(status))}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--jdk", type=int, action="append")
    ap.add_argument("--rate", type=size_arg, action="append",
                    help="nativeSitesRate to compare with off (repeatable; default: the agent's own)")
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--leak", type=size_arg, action="append", help="a total to leak (repeatable)")
    ap.add_argument("--leak-repeat", type=int)
    ap.add_argument("--interval", default="1s", help="the agent's sampling interval in the throughput runs")
    ap.add_argument("--only", choices=["throughput", "error"])
    ap.add_argument("--jar", default=str(AGENT_JAR))
    a = ap.parse_args()
    jdks = a.jdk or ([17] if a.short else [17, 25])
    a.repeat = a.repeat or (1 if a.short else 5)
    a.seconds = a.seconds or (3 if a.short else 10)
    a.leak = a.leak or (["64m"] if a.short else ["64m", "256m"])
    a.leak_repeat = a.leak_repeat or (1 if a.short else 3)
    configs = [OFF, *dict.fromkeys(a.rate or ["default"])]
    print(f"native call sites: nativeSites=on against off, JDK {', '.join(map(str, jdks))}")
    with tempfile.TemporaryDirectory() as d:
        if a.only in (None, "throughput"):
            throughput(a, jdks, configs, d)
        if a.only in (None, "error"):
            estimate_error(a, jdks, configs, d)


if __name__ == "__main__":
    main()
