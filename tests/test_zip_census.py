"""The zip census counts Inflaters and Deflaters holding native zlib memory: alive and unended,
and unreachable but still waiting for their Cleaner, on every JDK."""

import json

import pytest

from harness import run_jvm
from jdks import ALL, MAIN

INFLATER_BYTES, DEFLATER_BYTES = 40 * 1024, 262 * 1024


def steps(stdout):
    out = {}
    for line in stdout.splitlines():
        step, _, rest = line.partition(" ")
        if rest.startswith("{"):
            out.setdefault(step, []).append(json.loads(rest))
    return out


@pytest.mark.parametrize("jdk", ALL)
def test_census_counts_alive_pending_and_ended_streams_exactly(jdk, workloads):
    r = run_jvm(jdk, "ZipWorkload", ["counts"], agent_opts="log=quiet,interval=1h", classpath=workloads, timeout=90)
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
                jvm_args=["-Doffheap.doctor.test.zipHistogram=true"], classpath=workloads, timeout=90)
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
    # At its own pace (the default 30s here), the census of the first sample is reused.
    slow = tmp_path / "slow.jsonl"
    r3 = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=120", "await=+2"], agent_opts=f"interval=200ms,report={slow}",
                 classpath=workloads, report=slow)
    assert r3.rc == 0
    assert r3.samples[-1]["zip"] == r3.samples[0]["zip"]
    assert r3.samples[-1]["zip"]["deflaters"]["alive"] < 120
