#!/usr/bin/env python3
"""Start-up cost and resident memory the agent adds to a hello-world JVM.

Prints figures, not a verdict: median of N runs with and without the agent, measured in the same
run of this script, as added milliseconds and as a ratio; then the VmRSS of an idle JVM after the
agent's first sample against the same JVM without the agent.
Usage: bench/startup.py [--runs 20] [--jdk 17]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR, Background, command, vm_rss  # noqa: E402
from jdks import ROOT, java  # noqa: E402


def compile_workloads(out):
    sources = [str(p) for p in (ROOT / "tests" / "workloads").glob("*.java")]
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", str(out), *sources],
                   check=True)


def time_run(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--jdk", type=int, default=17)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        compile_workloads(d)
        base = command(a.jdk, "Hello", [], classpath=d, xcheck=False)
        agent = command(a.jdk, "Hello", [], agent_opts="log=quiet", classpath=d, xcheck=False)
        # Warm the page cache and the extraction directory first.
        time_run(base)
        time_run(agent)
        without, with_ = [], []
        for _ in range(a.runs):  # interleaved so drift hits both alike
            without.append(time_run(base))
            with_.append(time_run(agent))
        mw, ma = statistics.median(without), statistics.median(with_)
        print(f"start-up, hello world, JDK {a.jdk}, {a.runs} runs each")
        print(f"  {'':<14}{'median ms':>10}{'min ms':>10}")
        print(f"  {'without agent':<14}{mw:>10.1f}{min(without):>10.1f}")
        print(f"  {'with agent':<14}{ma:>10.1f}{min(with_):>10.1f}")
        print(f"  added: {ma - mw:.1f} ms, ratio {ma / mw:.3f}")

        rss = {"without agent": [], "with agent": []}
        for _ in range(5):
            for label, opts in (("without agent", None), ("with agent", "interval=1h,log=quiet")):
                cmd = command(a.jdk, "Idle", ["5"], agent_opts=opts, classpath=d, xcheck=False)
                with Background(cmd) as app:
                    app.wait_for_stdout("ready")
                    time.sleep(1.5)  # past the agent's first sample
                    rss[label].append(vm_rss(app.pid))
        rw, ra = statistics.median(rss["without agent"]), statistics.median(rss["with agent"])
        print(f"resident memory of an idle JVM 1.5 s after start, median of 5 (JDK {a.jdk})")
        print(f"  without agent {rw / 1048576:8.1f} MiB")
        print(f"  with agent    {ra / 1048576:8.1f} MiB")
        print(f"  added: {(ra - rw) / 1048576:.1f} MiB, ratio {ra / rw:.3f}")


if __name__ == "__main__":
    java(17)
    main()
