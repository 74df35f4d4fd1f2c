#!/usr/bin/env python3
"""How long `java -jar offheap-doctor.jar <pid> report` takes against an idle JVM, next to
`jcmd <pid> VM.version` against the same kind of JVM, measured in the same run.

Prints figures, not a verdict: medians of N interleaved repeats. Each repeat starts fresh idle
JVMs and times, in turn: the first `report` into a JVM without the agent (attach, the target's JMX
connector, loading the agent, its first sample, the call), the first `report` into a JVM started
with -javaagent, and the first `jcmd VM.version` into a third JVM (each the first attach to its
JVM, which starts the target's attach listener); then a second `report` and a second `jcmd` into
the same JVMs (everything already up). CPU is the command's own plus what the target spent meanwhile.
Usage: bench/attach.py [--runs 5] [--jdk 17] [--jar other.jar]
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

from harness import AGENT_JAR, Background, command  # noqa: E402
from jdks import ROOT, java  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def timed(cmd, target):
    """Wall ms of cmd, and CPU ms of cmd plus the target's CPU meanwhile."""
    before = cpu_s(target)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {r.stderr.strip()}")
    return wall, (cpu_s(target) - before) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jdk", type=int, default=17)
    ap.add_argument("--jar", default=str(AGENT_JAR))
    a = ap.parse_args()
    jv = java(a.jdk)
    jcmd = str(Path(jv).resolve().parent / "jcmd")
    names = ["report, agent not loaded", "report, started with -javaagent", "jcmd VM.version",
             "report again", "jcmd again"]
    wall = {n: [] for n in names}
    target_cpu = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["javac", "--release", "8", "-nowarn", "-d", d, str(ROOT / "tests" / "workloads" / "Idle.java")],
                       check=True)
        for i in range(a.runs + 1):  # the first repeat warms the page cache and is not counted
            plain = command(a.jdk, "Idle", ["600"], classpath=d, xcheck=False)
            with_agent = command(a.jdk, "Idle", ["600"], agent_opts="log=quiet", classpath=d, xcheck=False)
            with Background(plain) as p, Background(with_agent) as q, Background(plain) as j:
                for b in (p, q, j):
                    b.wait_for_stdout("ready")
                time.sleep(1.5)  # past start-up, and past the -javaagent's first sample
                report = lambda pid: [jv, "-jar", a.jar, str(pid), "report"]  # noqa: E731
                runs = [("report, agent not loaded", report(p.pid), p.pid),
                        ("report, started with -javaagent", report(q.pid), q.pid),
                        ("jcmd VM.version", [jcmd, str(j.pid), "VM.version"], j.pid),
                        ("report again", report(p.pid), p.pid),
                        ("jcmd again", [jcmd, str(j.pid), "VM.version"], j.pid)]
                for name, cmd, pid in runs:
                    w, c = timed(cmd, pid)
                    if i:
                        wall[name].append(w)
                        target_cpu[name].append(c)
    print(f"attach commands against idle JVMs, JDK {a.jdk}, {a.runs} interleaved repeats, {a.jar}")
    print(f"  {'':<34}{'median ms':>10}{'min ms':>10}{'target CPU ms':>15}")
    for n in names:
        print(f"  {n:<34}{statistics.median(wall[n]):>10.0f}{min(wall[n]):>10.0f}"
              f"{statistics.median(target_cpu[n]):>15.0f}")
    base = statistics.median(wall["jcmd VM.version"])
    for n in names[:2]:
        print(f"  {n} / jcmd VM.version: {statistics.median(wall[n]) / base:.2f}x")
    print(f"  report again / jcmd again: "
          f"{statistics.median(wall['report again']) / statistics.median(wall['jcmd again']):.2f}x")
    print(f"  load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    java(17)
    main()
