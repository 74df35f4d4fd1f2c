#!/usr/bin/env python3
"""What one trim costs: duration and bytes released as a function of the bytes glibc retains
(about 100 MiB, 500 MiB, 1 GiB), with 0 and 16 threads allocating meanwhile, and the longest
stall those threads saw during the trim against their longest stall in the second before it.
Usage: bench/trim_cost.py [--jdk 17] [--repeat 3]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jdk", type=int, default=17)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
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
