"""The zip census counts Inflaters and Deflaters holding native zlib memory: alive and unended,
and unreachable but still waiting for their Cleaner, on every JDK."""

import json
import re

import pytest

from harness import AGENT_JAR, run_jvm
from jdks import ALL, MAIN

INFLATER_BYTES, DEFLATER_BYTES = 40 * 1024, 262 * 1024
# ZipWorkload holds the common Cleaner through jdk.internal.ref itself: the agent opens nothing to
# the class path (it reads the JDK's lists through JNI).
WL = ["--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED"]


def steps(stdout):
    out = {}
    for line in stdout.splitlines():
        step, _, rest = line.partition(" ")
        if rest.startswith("{"):
            out.setdefault(step, []).append(json.loads(rest))
    return out


@pytest.mark.parametrize("jdk", ALL)
def test_census_counts_alive_pending_and_ended_streams_exactly(jdk, workloads):
    r = run_jvm(jdk, "ZipWorkload", ["counts"], agent_opts="log=quiet,interval=1h", jvm_args=WL, classpath=workloads, timeout=90)
    assert r.rc == 0, r.stderr
    assert "WARNING: Illegal" not in r.stderr and r.jni_warnings() == []
    s = steps(r.stdout)
    base = s["baseline"][0]
    assert base["method"] == "cleaner", base
    expected = {"live": (300, 0, 200, 0), "blocked": (300, 150, 200, 50),
                "drained": (300, 0, 200, 0), "ended": (0, 0, 0, 0)}
    for step, want in expected.items():
        x = s[step][0]
        got = (x["inflaters"]["alive"] - base["inflaters"]["alive"], x["inflaters"]["pending_cleanup"],
               x["deflaters"]["alive"] - base["deflaters"]["alive"], x["deflaters"]["pending_cleanup"])
        assert got == want, (step, got, x)
        assert x["method"] == "cleaner" and not x["truncated"]
        assert x["estimated_native_bytes"] == (
            (x["inflaters"]["alive"] + x["inflaters"]["pending_cleanup"]) * INFLATER_BYTES
            + (x["deflaters"]["alive"] + x["deflaters"]["pending_cleanup"]) * DEFLATER_BYTES)


@pytest.mark.parametrize("jdk", MAIN)
def test_histogram_fallback_counts_instances(jdk, workloads):
    # zipCensus=off: the agent's own census would leave a probe Inflater behind as garbage.
    r = run_jvm(jdk, "ZipWorkload", ["histogram"], agent_opts="log=quiet,interval=1h,zipCensus=off",
                jvm_args=WL + ["-Doffheap.doctor.test.zipHistogram=true"], classpath=workloads, timeout=90)
    assert r.rc == 0, r.stderr
    s = steps(r.stdout)
    b, live = s["baseline"][0], s["live"][0]
    assert live["method"] == "histogram"
    assert live["inflaters"]["instances"] - b["inflaters"]["instances"] == 400
    assert live["deflaters"]["instances"] - b["deflaters"]["instances"] == 250


@pytest.mark.parametrize("jdk", MAIN)
def test_samples_carry_the_census(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["deflaters=120", "await=+2"], agent_opts=f"interval=200ms,zipInterval=100ms,report={report}",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    z = r.samples[-1]["zip"]
    assert z["method"] == "cleaner"
    assert z["deflaters"]["alive"] >= 120
    assert z["estimated_native_bytes"] >= 120 * DEFLATER_BYTES
    off = tmp_path / "off.jsonl"
    r2 = run_jvm(jdk, "NativeGrowth", ["await=1"], agent_opts=f"interval=200ms,zipCensus=off,report={off}",
                 classpath=workloads, report=off)
    assert r2.rc == 0 and r2.samples[-1]["zip"] is None
    # By default a cheap census keeps up with the samples: 120 Deflaters made after the first
    # sample are in the last one.
    paced = tmp_path / "paced.jsonl"
    r3 = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=120", "await=+2"], agent_opts=f"interval=200ms,report={paced}",
                 classpath=workloads, report=paced)
    assert r3.rc == 0
    assert r3.samples[0]["zip"]["deflaters"]["alive"] < 120
    assert r3.samples[-1]["zip"]["deflaters"]["alive"] >= 120
    # With zipInterval, the census of the first sample is reused.
    slow = tmp_path / "slow.jsonl"
    r4 = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=120", "await=+2"],
                 agent_opts=f"interval=200ms,zipInterval=30s,report={slow}", classpath=workloads, report=slow)
    assert r4.rc == 0
    assert r4.samples[-1]["zip"] == r4.samples[0]["zip"]
    assert r4.samples[-1]["zip"]["deflaters"]["alive"] < 120


def delta(x, base, kind, key):
    return x[kind][key] - base[kind][key]


@pytest.mark.parametrize("jdk", ALL)
def test_census_counts_real_gzip_streams(jdk, workloads):
    r = run_jvm(jdk, "ZipWorkload", ["gzip"], agent_opts="log=quiet,interval=1h", jvm_args=WL, classpath=workloads,
                timeout=90, heap="128m")
    assert r.rc == 0, r.stderr
    assert r.jni_warnings() == []
    s = steps(r.stdout)
    base = s["baseline"][0]

    def got(step):
        x = s[step][0]
        assert x["method"] == "cleaner" and not x["truncated"], x
        assert x["finalizer"]["state"] == "read", x
        return (delta(x, base, "inflaters", "alive"), x["inflaters"]["pending_cleanup"],
                delta(x, base, "deflaters", "alive"), x["deflaters"]["pending_cleanup"])

    # 200 GZIPInputStreams; 100 GZIPOutputStreams + 50 DeflaterOutputStreams, kept open.
    assert got("open") == (200, 0, 150, 0)
    # Streams closed properly end the zlib state they made: nothing more.
    assert got("closed") == (200, 0, 150, 0)
    # InflaterInputStream over the caller's own Inflater: close() does not end it.
    assert got("closed_own") == (240, 0, 150, 0)
    # The open ones dropped and collected while the Cleaner's thread is held: pending.
    assert got("blocked") == (40, 200, 0, 150)
    assert got("drained") == (40, 0, 0, 0)
    b = s["blocked"][0]
    assert b["estimated_native_bytes"] == (
        (b["inflaters"]["alive"] + 200) * INFLATER_BYTES + 150 * DEFLATER_BYTES)


@pytest.mark.parametrize("jdk", ALL)
def test_census_counts_finalizable_subclasses(jdk, workloads):
    r = run_jvm(jdk, "ZipWorkload", ["finalizable"], agent_opts="log=quiet,interval=1h", jvm_args=WL, classpath=workloads,
                timeout=90, heap="128m")
    assert r.rc == 0, r.stderr
    assert r.jni_warnings() == []
    s = steps(r.stdout)
    base = s["baseline"][0]
    # 120 Inflaters and 40 Deflaters with finalize(); 30 Inflaters overriding end(), which JDK 11
    # releases through a finalizable ZStreamRef and later JDKs through the Cleaner.
    ending_fin = 30 if jdk == 11 else 0
    ending_clean = 30 - ending_fin

    def got(step):
        x = s[step][0]
        assert x["method"] == "cleaner" and not x["truncated"], x
        assert x["finalizer"]["state"] == "read", x
        assert x["estimated_native_bytes"] == (
            sum(x["inflaters"][k] for k in ("alive", "pending_cleanup", "finalizable_alive", "finalizable_pending"))
            * INFLATER_BYTES
            + sum(x["deflaters"][k] for k in ("alive", "pending_cleanup", "finalizable_alive", "finalizable_pending"))
            * DEFLATER_BYTES)
        return (x["inflaters"]["finalizable_alive"], x["inflaters"]["finalizable_pending"],
                x["deflaters"]["finalizable_alive"], x["deflaters"]["finalizable_pending"],
                delta(x, base, "inflaters", "alive"), x["inflaters"]["pending_cleanup"],
                delta(x, base, "deflaters", "alive"))

    assert (base["inflaters"]["finalizable_alive"], base["deflaters"]["finalizable_alive"]) == (0, 0)
    # Each counted once: a subclass with finalize() is in the Cleaner's list too, but not counted there.
    assert got("live") == (120 + ending_fin, 0, 40, 0, ending_clean, 0, 0)
    # Half dropped while the finalizer thread is held in a blocking finalize(): pending finalization.
    assert got("blocked") == (60 + ending_fin * 2 // 3, 60 + ending_fin // 3, 20, 20, ending_clean * 2 // 3, 0, 0)
    # Released: their finalize() ends them.
    assert got("drained") == (60 + ending_fin * 2 // 3, 0, 20, 0, ending_clean * 2 // 3, 0, 0)
    assert got("ended") == (0, 0, 0, 0, 0, 0, 0)


def test_census_with_finalization_disabled(workloads):
    r = run_jvm(25, "ZipWorkload", ["finalizable-live"], agent_opts="log=quiet,interval=1h",
                jvm_args=WL + ["--finalization=disabled"], classpath=workloads, timeout=90, heap="128m")
    assert r.rc == 0, r.stderr
    s = steps(r.stdout)
    base, live = s["baseline"][0], s["live"][0]
    assert live["finalizer"]["state"] == "disabled" and "disabled" in live["finalizer"]["reason"]
    # Nothing is registered for finalization: the Cleaner has them all.
    assert live["inflaters"]["finalizable_alive"] == 0 and live["deflaters"]["finalizable_alive"] == 0
    assert delta(live, base, "inflaters", "alive") == 150 and delta(live, base, "deflaters", "alive") == 40


@pytest.mark.parametrize("jdk", MAIN)
def test_finalizer_part_unavailable_leaves_the_cleaner_census(jdk, workloads):
    r = run_jvm(jdk, "ZipWorkload", ["finalizable-live"], agent_opts="log=quiet,interval=1h",
                jvm_args=WL + ["-Doffheap.doctor.test.zipFinalizerOpenFails=true"], classpath=workloads,
                timeout=90, heap="128m")
    assert r.rc == 0, r.stderr
    assert r.agent_lines() == []
    s = steps(r.stdout)
    base, live = s["baseline"][0], s["live"][0]
    assert live["method"] == "cleaner"
    assert live["finalizer"]["state"] == "unavailable" and "redefineModule" in live["finalizer"]["reason"]
    assert live["inflaters"]["finalizable_alive"] is None and live["deflaters"]["finalizable_pending"] is None
    # Without the Finalizer part the subclasses are still in the Cleaner's list (all are on 17+).
    assert delta(live, base, "inflaters", "alive") == 150 and delta(live, base, "deflaters", "alive") == 40


@pytest.mark.parametrize("jdk", MAIN)
def test_census_reports_how_long_it_held_the_cleaner_lock(jdk, workloads):
    r = run_jvm(jdk, "ZipWorkload", ["perf", "20000"], agent_opts="log=quiet,interval=1h", jvm_args=WL, classpath=workloads,
                timeout=120, heap="128m")
    assert r.rc == 0, r.stderr
    perf = steps(r.stdout)["perf"]
    for x in perf:
        assert x["inflaters"]["alive"] >= 20000 and x["cleanables"] >= 20000
        assert 0 < x["lock_held_last_ns"] <= x["scan_ns"]
        assert x["lock_held_last_ns"] <= x["lock_held_max_ns"]
    # The maximum covers every scan of the census (its start-up check too).
    assert perf[-1]["lock_held_max_ns"] >= max(x["lock_held_last_ns"] for x in perf)


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("fallback", [False, True])
def test_census_never_collects_the_heap(jdk, fallback, workloads, tmp_path):
    # A scan every 100 ms (and, with the fallback, GC.class_histogram -all): no GC of its making.
    report = tmp_path / "r.jsonl"
    jvm_args = ["-Xlog:gc:stdout"] + (["-Doffheap.doctor.test.zipCensusOpenFails=true"] if fallback else [])
    r = run_jvm(jdk, "Idle", ["2.0"], agent_opts=f"log=quiet,interval=200ms,zipInterval=100ms,report={report}",
                jvm_args=jvm_args, classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    zips = [s["zip"] for s in r.samples]
    assert len(zips) >= 3 and all(z["method"] == ("histogram" if fallback else "cleaner") for z in zips), zips
    assert len({z["scan_ns"] for z in zips}) >= 3, "the census ran at each sample"
    gcs = [l for l in r.stdout.splitlines() if "[gc" in l and "Pause" in l]
    forced = [l for l in gcs if any(c in l for c in ("System.gc", "Diagnostic Command", "Heap Inspection", "Heap Dump"))]
    assert forced == [], forced


@pytest.mark.parametrize("jdk", MAIN)
def test_the_demo_census_equals_the_workloads_own_count(jdk, tmp_path):
    # The bundled demo leaks Deflaters from 8 threads; with the default pacing the census keeps
    # up, so the last sample counts exactly what the workload says it left unended.
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "-jar", [AGENT_JAR, "demo", "3"], agent_opts=f"log=quiet,interval=200ms,report={report}",
                report=report, heap="128m", timeout=120)
    assert r.rc == 0, r.stderr
    said = [int(m) for m in re.findall(r"demo: done, unended Deflaters=(\d+)", r.stdout)]
    assert said and said[-1] > 100, r.stdout
    z = r.samples[-1]["zip"]
    assert z["method"] == "cleaner" and not z["truncated"], z
    d = z["deflaters"]
    unended = d["alive"] + d["pending_cleanup"] + (d["finalizable_alive"] or 0) + (d["finalizable_pending"] or 0)
    assert unended == said[-1], (unended, said, z)
    # The census ran again and again, not once (it used to run once in 30 s); how often depends
    # on its measured cost, which a loaded machine inflates.
    scans = {s["zip"]["scan_ns"] for s in r.samples}
    assert len(scans) >= 3, (len(scans), len(r.samples))
