#!/usr/bin/env python3
"""What a zip census scan costs at 1k, 10k and 100k registered cleanables (live Inflaters), on
JDK 17 and 25: the scan's time and how long it held the common Cleaner's lock (median and max of
30 scans, the first, cold, scan, and the longest of the census' whole life: its start-up
check and warm-up scans included), and what the
application sees: the time one create+end of an Inflater takes (it takes the Cleaner's lock twice)
while a thread scans back to back, 20 ms apart, against the same with no census, in alternating
phases of the same JVM (ratio on/off).
Usage: bench/zip_census_bench.py [--jdk 17 --jdk 25] [--sizes 1000,10000,100000]
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR  # noqa: E402
from jdks import ROOT, java  # noqa: E402


def fields(line):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def ratio(on, off):
    return on / off if off else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jdk", type=int, action="append")
    ap.add_argument("--sizes", default="1000,10000,100000")
    a = ap.parse_args()
    jdks = a.jdk or [17, 25]
    sizes = [int(s) for s in a.sizes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", d,
                        str(ROOT / "bench" / "workloads" / "ZipCensusBench.java")], check=True)
        print("zip census: scan cost (30 scans) and the application's create+end of an Inflater, "
              "census scanning every 20 ms (on) against no census (off), same JVM")
        print(f"{'JDK':>3}{'cleanables':>11}{'scan med':>10}{'scan max':>10}{'lock med':>10}{'lock max':>10}"
              f"{'first':>10}{'life max':>10}{'op mean off/on ns':>19}{'ratio':>7}{'p99.9 off/on ns':>17}{'ratio':>7}"
              f"{'max off/on ms':>15}")
        print(f"{'':>14}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}{'ms':>10}")
        for jdk in jdks:
            for n in sizes:
                p = subprocess.run([java(jdk), "-Xmx256m",
                                    f"-javaagent:{AGENT_JAR}=log=quiet,interval=1h,zipCensus=off",
                                    "-cp", d, "ZipCensusBench", str(n)],
                                   capture_output=True, text=True, timeout=600)
                scan = [l for l in p.stdout.splitlines() if l.startswith("scan ")]
                app = [l for l in p.stdout.splitlines() if l.startswith("app ")]
                if p.returncode != 0 or not scan or not app:
                    raise RuntimeError(p.stdout + p.stderr)
                s, o = fields(scan[0]), fields(app[0])
                ms = lambda ns: ns / 1e6  # noqa: E731
                print(f"{jdk:>3}{s['cleanables']:>11}{ms(s['scan_median_ns']):>10.2f}{ms(s['scan_max_ns']):>10.2f}"
                      f"{ms(s['lock_median_ns']):>10.2f}{ms(s['lock_max_ns']):>10.2f}"
                      f"{ms(s['first_lock_ns']):>10.2f}{ms(s['census_lock_held_max_ns']):>10.2f}"
                      f"{o['off_mean_ns']:>10}/{o['on_mean_ns']:<8}{ratio(o['on_mean_ns'], o['off_mean_ns']):>7.2f}"
                      f"{o['off_p999_ns']:>9}/{o['on_p999_ns']:<7}{ratio(o['on_p999_ns'], o['off_p999_ns']):>7.2f}"
                      f"{ms(o['off_max_ns']):>8.1f}/{ms(o['on_max_ns']):<6.1f}", flush=True)


if __name__ == "__main__":
    main()
