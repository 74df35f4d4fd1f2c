#!/usr/bin/env python3
"""Start-up cost and resident memory the agent adds to a hello-world JVM.

Prints figures, not a verdict: median of N interleaved runs without an agent, with an empty
-javaagent (what any Java agent costs: the JVM then resolves java.instrument and gives up part of
its CDS archive) and with this agent, measured in the same run of this script, as added
milliseconds; the classes each loads before main; then the VmRSS of an idle JVM after the agent's
first sample against the same JVM without the agent.
Usage: bench/startup.py [--runs 20] [--jdk 17] [--jar other.jar]
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

from harness import AGENT_JAR, Background, command, vm_rss  # noqa: E402
from jdks import ROOT, java  # noqa: E402


def compile_workloads(out):
    sources = [str(p) for p in (ROOT / "tests" / "workloads").glob("*.java")]
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", str(out), *sources],
                   check=True)


def time_run(cmd):
    """Wall ms and CPU ms (user + system) of one run; CPU varies less with the machine's load."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    if status != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: status {status}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def empty_agent(out):
    """A jar whose premain does nothing."""
    src = Path(out) / "EmptyAgent.java"
    src.write_text("public class EmptyAgent { public static void premain(String a,"
                   " java.lang.instrument.Instrumentation i) {} }\n")
    subprocess.run(["javac", "--release", "8", "-d", str(out), str(src)], check=True)
    (Path(out) / "manifest.txt").write_text("Premain-Class: EmptyAgent\n")
    jar = Path(out) / "empty-agent.jar"
    subprocess.run(["jar", "cfm", str(jar), str(Path(out) / "manifest.txt"), "-C", str(out), "EmptyAgent.class"],
                   check=True)
    return jar


def classes_before_main(cmd, main, jar):
    """(classes loaded before main's class, of those from outside the CDS archive, from the jar)."""
    i = cmd.index(main)
    out = subprocess.run(cmd[:i] + ["-Xlog:class+load:stdout"] + cmd[i:], capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if "class,load" in l]
    before = []
    for l in lines:
        if f" {main} source:" in l:
            break
        before.append(l)
    return (len(before), sum("shared objects file" not in l for l in before),
            sum(str(jar) in l for l in before))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--jdk", type=int, default=17)
    ap.add_argument("--jar", default=str(AGENT_JAR))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        compile_workloads(d)
        empty = empty_agent(d)
        base = command(a.jdk, "Hello", [], classpath=d, xcheck=False)
        variants = {
            "without agent": base,
            "empty agent": base[:1] + [f"-javaagent:{empty}"] + base[1:],
            "with agent": base[:1] + [f"-javaagent:{a.jar}=log=quiet"] + base[1:],
        }
        # Warm the page cache and the extraction directory first.
        for cmd in variants.values():
            time_run(cmd)
        ms = {k: [] for k in variants}
        cpu = {k: [] for k in variants}
        for _ in range(a.runs):  # interleaved so drift hits all alike
            for k, cmd in variants.items():
                w, c = time_run(cmd)
                ms[k].append(w)
                cpu[k].append(c)
        mw = statistics.median(ms["without agent"])
        me = statistics.median(ms["empty agent"])
        cw = statistics.median(cpu["without agent"])
        print(f"start-up, hello world, JDK {a.jdk}, {a.runs} interleaved runs each, {a.jar}")
        print(f"  {'':<14}{'median ms':>10}{'min ms':>10}{'added ms':>10}{'CPU ms':>8}{'added':>7}"
              f"{'classes':>9}{'not CDS':>9}{'jar':>5}")
        for k, cmd in variants.items():
            m = statistics.median(ms[k])
            c = statistics.median(cpu[k])
            n, fresh, own = classes_before_main(cmd, "Hello", a.jar if k == "with agent" else empty)
            print(f"  {k:<14}{m:>10.1f}{min(ms[k]):>10.1f}{m - mw:>10.1f}{c:>8.1f}{c - cw:>7.1f}"
                  f"{n:>9}{fresh:>9}{own:>5}")
        ma = statistics.median(ms["with agent"])
        print(f"  added by the agent: {ma - mw:.1f} ms, of which an empty -javaagent {me - mw:.1f} ms;"
              f" load average {os.getloadavg()[0]:.1f}")

        rss = {"without agent": [], "with agent": []}
        for _ in range(5):
            for label, opts in (("without agent", None), ("with agent", "interval=1h,log=quiet")):
                cmd = command(a.jdk, "Idle", ["5"], classpath=d, xcheck=False)
                if opts:
                    cmd = cmd[:1] + [f"-javaagent:{a.jar}={opts}"] + cmd[1:]
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
