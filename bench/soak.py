#!/usr/bin/env python3
"""Soak: the agent under everything at once, for minutes, and its memory over time.

One JVM (the `Soak` workload: zlib churn on two threads, the agent's MBean called in-process every
50 ms with trimNow) runs with interval=100ms, trim=100ms, zipInterval=100ms, NMT summary and a
remote JMX connector on loopback, while a second JVM (`SoakJmxClient`) reads the MBean, trims and
samples over remote JMX. Both trimNow callers keep still in every third 10 s window of the wall
clock (`Soak.trimQuiet`). Meanwhile this script reads the process's RSS and its private memory
(USS: `Private_Clean` + `Private_Dirty`) once a second.

Checks: the JVM beats once a second to the end (a gap above `MAX_BEAT_GAP_S` is a hang), exits 0,
leaves no hs_err file and no -Xcheck:jni warning, the agent prints no problem line, both JMX
callers see no error, every report line is JSON with `seq` 1, 2, 3, ... (none lost), trim=100ms
trims on its own clock (in the quiet windows, trims whose only requester was the interval, with a
median gap near 100 ms: `INTERVAL_TRIMS_PER_S`), and memory does not grow: over the window from
`WARMUP_S` to the end, the Theil-Sen slope (the median of the slopes between all pairs of points,
which a spike lasting under a quarter of the window barely moves) times the window's length, for
the process's RSS and USS, glibc's malloc in use, NMT's committed bytes and the Java heap after a
GC. The first and last thirds' medians are reported beside it.
Native memory that is not the agent's is taken out: the JIT compilers' scratch arenas (NMT's
`Arena Chunk`, malloc'd and freed back seconds after a compilation ends) out of malloc in use and
NMT, and NMT's `Java Heap` (fixed, `-Xms` = `-Xmx`; the heap's own use is the heap-after-GC check)
and `Code` (the code cache fills while the JIT still compiles). malloc in use saws by megabytes
with the churn's unended zlib streams, which the Cleaner frees after the workload's System.gc()
every 5 s, so its growth is taken from the floor (minimum) of each 5 s period. The figures hold
each NMT category's growth, so a failure names what grew.

Tolerance: the agent keeps by design a bounded history (the growth series, 8640 points, and the
live timeline, 4000 points before it thins itself) of under 1 KiB per sample, so until they are
full (at 10 samples a second, 7 and 14 minutes) memory may rise by that much per sample in the
window (`DESIGNED_BYTES_PER_SAMPLE`); on top of it RSS may move by `RSS_SLACK` (the JIT still
compiles, glibc arenas fragment under the churn, and the trims make RSS move by megabytes between
readings), malloc in use and NMT by `NATIVE_SLACK`, the heap after GC by `HEAP_SLACK`. A leak of
15 KiB per sample (`--leak 15360`: the workload leaks that much touched malloc every 100 ms) adds
about 7 MiB over the 45-50 s window of the one-minute run, twice the native allowance, and fails
both native checks.

Usage: bench/soak.py [--minutes 10] [--jdk 17]   (tests/test_soak.py runs it for about a minute)
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import AGENT_JAR, PREFIX, command  # noqa: E402
from jdks import ROOT, java  # noqa: E402

MiB = 1 << 20
WARMUP_S = 10
MAX_BEAT_GAP_S = 15
DESIGNED_BYTES_PER_SAMPLE = 1024
RSS_SLACK = 24 * MiB
NATIVE_SLACK = 3 * MiB
HEAP_SLACK = 8 * MiB
# trim=100ms asks for 10 trims a second. The trimNow callers keep still a third of the time
# (Soak.trimQuiet), so a minute holds about 200 trims the interval made alone; a third of that,
# one per second of the run, is asked for, and a median gap between them of 80-250 ms.
INTERVAL_TRIMS_PER_S = 1
# The churn leaves unended zlib streams to the Cleaner, which frees them after the workload's
# System.gc() every 5 s: malloc in use saws by megabytes at that period, so its growth is taken
# from the floor of each period (its minimum), which a leak lifts and the sawtooth does not.
FLOOR_PERIOD_S = 5
# A finding the agent logs when first raised: not a problem line.
FINDING = re.compile(r"^\[offheap-doctor\] \[\w+\] [a-z0-9-]+: ")
OPTS = "interval=100ms,trim=100ms,zipInterval=100ms,log=quiet"


def compile_workloads(out):
    sources = [str(p) for p in (ROOT / "tests" / "workloads").glob("*.java")]
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", str(out), *sources],
                   check=True, capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_cpu_seconds(pid):
    """CPU time (user + system) of the agent's own threads (named offheap-doctor-*)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if task.joinpath("comm").read_text().startswith("offheap-doctor"):
                f = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
        except OSError:
            pass  # the thread ended between listing and reading
    return total / os.sysconf("SC_CLK_TCK")


def rss_uss(pid):
    """RSS and USS (the private pages). PSS is not used: it rises when the JMX client JVM exits and
    stops sharing libjvm and the CDS archive, which says nothing of this process."""
    rss = private = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith(("Private_Clean:", "Private_Dirty:")):
            private += int(line.split()[1]) * 1024
    return rss, private


def nmt_committed(sample, category):
    """One NMT category's committed bytes in a sample (KeyError/TypeError when NMT is absent, so
    the sample is left out of the series rather than counted without it)."""
    return sum(c["committed"] for c in sample["nmt"]["categories"] if c["name"] == category)


def nmt_category_deltas(samples, series, start, end):
    """Each NMT category's committed growth (MiB) over the window, largest first."""
    names = {c["name"] for s in samples if isinstance(s.get("nmt"), dict) for c in s["nmt"].get("categories", [])}
    out = {}
    for name in names:
        # A category missing from a sample weighed under 1 KB (JDK 17+ leaves those out): 0.
        points = series(lambda s, n=name: nmt_committed(s, n))
        g = growth(points, start, end)
        if g:
            out[name] = round(g / MiB, 2)
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1])))


def growth(points, start, end):
    """How much the values in [start, end] ((time, value) pairs) rise over that window, from the
    Theil-Sen slope (the median of the slopes between every pair of points): a steady leak shows
    in full, while a spike or a dip that lasts under a quarter of the window barely moves it."""
    pts = [(t, v) for t, v in points if start <= t <= end and v is not None]
    if len(pts) < 6:
        return None
    step = max(1, len(pts) // 400)  # at most 400 points, about 80k pairs
    pts = pts[::step]
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(pts) for b in pts[i + 1:] if b[0] > a[0]]
    return statistics.median(slopes) * (end - start)


def floors(points, period=FLOOR_PERIOD_S):
    """The minimum of each `period` of (time, value) pairs, at the period's middle."""
    buckets = {}
    for t, v in points:
        if v is not None:
            k = int(t // period)
            buckets[k] = min(v, buckets.get(k, v))
    return [((k + 0.5) * period, v) for k, v in sorted(buckets.items())]


def thirds(points, start, end):
    """Medians of the values in the first and last third of [start, end] ((time, value) pairs)."""
    span = (end - start) / 3
    first = [v for t, v in points if start <= t < start + span and v is not None]
    last = [v for t, v in points if end - span <= t <= end and v is not None]
    if not first or not last:
        return None
    return statistics.median(first), statistics.median(last)


def soak(jdk, seconds, workdir, classpath, say=print, leak_bytes=0):
    """Runs the soak; returns a dict of figures and a list of failures (empty when all held).
    leak_bytes: the workload itself leaks that much malloc every 100 ms (one sample's time), to
    show the memory checks catch a leak of that size per sample."""
    workdir = Path(workdir)
    report = workdir / "soak.jsonl"
    port = free_port()
    jvm_args = [f"-Dcom.sun.management.jmxremote.port={port}", "-Dcom.sun.management.jmxremote.host=127.0.0.1",
                "-Dcom.sun.management.jmxremote.authenticate=false", "-Dcom.sun.management.jmxremote.ssl=false",
                "-Djava.rmi.server.hostname=127.0.0.1", "-XX:NativeMemoryTracking=summary", "-Xms128m",
                f"-XX:ErrorFile={workdir}/hs_err_pid%p.log"]
    if jdk >= 24:
        jvm_args.append("--enable-native-access=ALL-UNNAMED")
    cmd = command(jdk, "Soak", [seconds] + ([leak_bytes] if leak_bytes else []), f"{OPTS},report={report}",
                  jvm_args, classpath, xcheck=True, heap="128m")
    env = {k: v for k, v in os.environ.items() if k not in ("OFFHEAP_DOCTOR_OPTS", "JAVA_TOOL_OPTIONS",
                                                             "JDK_JAVA_OPTIONS")}
    failures = []
    beats, out_lines = [], []
    stderr_file = workdir / "soak.stderr"
    with open(stderr_file, "w") as err:
        app = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=workdir)

        def read_stdout():
            for line in app.stdout:
                out_lines.append(line.rstrip("\n"))
                if line.startswith("beat "):
                    beats.append((time.monotonic(), int(line.split()[2])))

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        t0 = time.monotonic()
        mem = []  # (t, rss, uss)
        agent_cpu = 0.0
        client = None
        try:
            while time.monotonic() - t0 < 30 and "ready" not in out_lines and app.poll() is None:
                time.sleep(0.1)
            client_seconds = max(5, int(seconds) - 10)
            client = subprocess.Popen([java(jdk), "-cp", str(classpath), "SoakJmxClient", str(port),
                                       str(client_seconds)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env)
            deadline = t0 + seconds + 90
            while app.poll() is None and time.monotonic() < deadline:
                try:
                    rss, uss = rss_uss(app.pid)
                    mem.append((time.monotonic() - t0, rss, uss))
                    agent_cpu = max(agent_cpu, agent_cpu_seconds(app.pid))
                except (OSError, ValueError):
                    pass  # the JVM is ending
                time.sleep(1)
            if app.poll() is None:
                failures.append(f"the JVM did not end within {seconds + 90} s (hang)")
                app.kill()
            app.wait()
            reader.join(10)
            client_out, _ = client.communicate(timeout=60)
        finally:
            for p in (app, client):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
    elapsed = time.monotonic() - t0
    stderr = stderr_file.read_text()
    figures = {"jdk": jdk, "seconds": seconds, "elapsed_s": round(elapsed, 1), "rc": app.returncode}

    # Process health.
    if app.returncode != 0:
        failures.append(f"exit code {app.returncode}")
    hs_err = list(workdir.glob("hs_err*")) + list(workdir.glob("core*"))
    if hs_err:
        failures.append(f"crash files: {hs_err}")
    jni = [l for l in stderr.splitlines() if "WARNING in native method" in l or "FATAL ERROR" in l]
    if jni:
        failures.append(f"-Xcheck:jni: {jni[:3]}")
    problems = [l for l in stderr.splitlines() if l.startswith(PREFIX) and not FINDING.match(l)
                and "started: sampling" not in l]
    if problems:
        failures.append(f"agent problem lines: {problems[:5]}")
    if "Exception in thread" in stderr or "\tat " in stderr:
        failures.append("a stack trace on stderr")
    gaps = [b - a for (a, _), (b, _) in zip(beats, beats[1:])]
    figures["beats"] = len(beats)
    figures["max_beat_gap_s"] = round(max(gaps), 2) if gaps else None
    if len(beats) < seconds * 0.8 or (gaps and max(gaps) > MAX_BEAT_GAP_S):
        failures.append(f"unresponsive: {len(beats)} beats in {seconds} s, longest gap {figures['max_beat_gap_s']} s")
    done = next((l for l in out_lines if l.startswith("done ")), None)
    figures["app"] = done
    m = re.match(r"done churn=(\d+) jmx=(\d+) errors=(\d+)", done or "")
    if not m or int(m.group(3)) != 0 or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        failures.append(f"in-process JMX or churn: {done} {[l for l in out_lines if l.startswith('first error')]}")
    figures["remote"] = client_out.strip()
    m = re.search(r"remote calls=(\d+) errors=(\d+)", client_out)
    if client.returncode != 0 or not m or int(m.group(2)) != 0 or int(m.group(1)) == 0:
        failures.append(f"remote JMX client (exit {client.returncode}): {client_out.strip()[:500]}")

    # The report: every line whole, none lost.
    raw = report.read_text().split("\n") if report.exists() else []
    if raw and raw[-1] == "":
        raw.pop()
    samples, malformed = [], 0
    for line in raw:
        try:
            s = json.loads(line)
            assert s["kind"] == "sample" and s["schema"] == 1
            samples.append(s)
        except (ValueError, KeyError, AssertionError):
            malformed += 1
    seqs = [s["seq"] for s in samples]
    figures["report_lines"] = len(raw)
    figures["malformed"] = malformed
    figures["seq_gaps"] = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
    if malformed or not seqs or seqs[0] != 1 or figures["seq_gaps"]:
        failures.append(f"report: {malformed} malformed lines, seq from {seqs[:1]}, {figures['seq_gaps']} gaps")
    if len(samples) < seconds * 5:
        failures.append(f"only {len(samples)} samples in {seconds} s at interval=100ms")
    trims = samples[-1]["trim"]["count"] if samples else 0
    figures["trims"] = trims
    # trim=100ms must trim on its own clock: the trims whose only requester was the interval, as
    # against trimNow from the two JMX callers (a trim coalescing both counts as manual).
    events = {}
    for s in samples:
        for e in (s.get("trim") or {}).get("events") or []:
            events[e["seq"]] = e
    reasons = {}
    for e in events.values():
        reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
    alone = sorted(e["at_ms"] for e in events.values() if e["reason"] == "interval" and e["requests"] == 1)
    # Soak.trimQuiet: every third 10 s window of the wall clock, no trimNow from anyone.
    quiet = [t for t in alone if (t // 10_000) % 3 == 2]
    gaps = [b - a for a, b in zip(quiet, quiet[1:]) if a // 10_000 == b // 10_000]
    figures["trim_events_by_reason"] = reasons
    figures["interval_trims_alone"] = len(alone)
    figures["interval_trims_in_quiet_windows"] = len(quiet)
    figures["interval_trim_gap_ms_p50"] = statistics.median(gaps) if gaps else None
    if len(quiet) < seconds * INTERVAL_TRIMS_PER_S or not gaps or not 80 <= statistics.median(gaps) <= 250:
        failures.append(f"trim=100ms alone: {len(quiet)} trims in the quiet windows of {seconds} s, median gap "
                        f"{figures['interval_trim_gap_ms_p50']} ms; all trims by reason {reasons}")
    figures["census_scans"] = len({s["zip"].get("scan_ns") for s in samples if isinstance(s.get("zip"), dict)})
    figures["sample_ms_p50"] = round(statistics.median([s["sample_ns"] for s in samples]) / 1e6, 2) if samples else None
    if trims < seconds * 5:
        failures.append(f"only {trims} trims in {seconds} s")

    # Memory over time: first third against last third, after the warm-up.
    start, end = WARMUP_S, max(WARMUP_S + 3, elapsed - 5)
    t_first = samples[0]["epoch_ms"] / 1000 if samples else 0

    def series(f):
        out = []
        for s in samples:
            try:
                out.append((s["epoch_ms"] / 1000 - t_first + 1, f(s)))
            except (KeyError, TypeError):
                pass
        return out

    within = sum(1 for s in samples if start <= s["epoch_ms"] / 1000 - t_first + 1 <= end)
    designed = within * DESIGNED_BYTES_PER_SAMPLE
    checks = {
        "rss": ([(t, r) for t, r, _ in mem], RSS_SLACK),
        "uss": ([(t, u) for t, _, u in mem], RSS_SLACK),
        "malloc_floor_less_jit_arenas": (floors(series(lambda s: s["malloc"]["in_use"]
                                                       - nmt_committed(s, "Arena Chunk"))), NATIVE_SLACK),
        "nmt_less_heap_jit": (series(lambda s: s["nmt"]["committed"] - nmt_committed(s, "Java Heap")
                                     - nmt_committed(s, "Arena Chunk") - nmt_committed(s, "Code")), NATIVE_SLACK),
        "heap_after_gc": ([(t - t0, h) for t, h in beats if h >= 0], HEAP_SLACK),
    }
    figures["memory"] = {}
    figures["window_s"] = round(end - start, 1)
    for name, (points, slack) in checks.items():
        r = thirds(points, start, end)
        g = growth(points, start, end)
        if r is None or g is None:
            failures.append(f"{name}: no figures")
            continue
        first, last = r
        allowed = slack + (designed if name != "heap_after_gc" else 0)
        figures["memory"][name] = {"first_mib": round(first / MiB, 2), "last_mib": round(last / MiB, 2),
                                   "growth_mib": round(g / MiB, 2), "allowed_mib": round(allowed / MiB, 2)}
        if g > allowed:
            failures.append(f"{name} grew {g / MiB:.1f} MiB over {end - start:.0f} s (allowed {allowed / MiB:.1f})")
    figures["nmt_categories_delta_mib"] = nmt_category_deltas(samples, series, start, end)
    if any(f.startswith(("nmt", "malloc")) for f in failures):
        failures.append(f"NMT categories, growth over the window (MiB): {figures['nmt_categories_delta_mib']}")
    figures["agent_threads_cpu_s"] = round(agent_cpu, 2)
    return figures, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--jdk", type=int, default=17)
    ap.add_argument("--leak", type=int, default=0, help="bytes the workload leaks every 100 ms")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cp = Path(d) / "classes"
        cp.mkdir()
        compile_workloads(cp)
        figures, failures = soak(a.jdk, int(a.minutes * 60), d, cp, leak_bytes=a.leak)
    print(json.dumps(figures, indent=1))
    print("memory, medians of the first and last third of the run after a "
          f"{WARMUP_S} s warm-up, and the growth over the window (MiB): ")
    for name, m in figures.get("memory", {}).items():
        print(f"  {name:<24} {m['first_mib']:>9.1f} -> {m['last_mib']:>9.1f}  growth {m['growth_mib']:>+7.2f}"
              f"  (allowed {m['allowed_mib']:.1f})")
    print("FAILURES:" if failures else "all checks held", *failures, sep="\n  ")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
