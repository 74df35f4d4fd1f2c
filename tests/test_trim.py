"""Trimming in-process: a manual trim gives back what glibc retains after a zlib burst, jemalloc
and tcmalloc release through their own calls, trims survive a storm of concurrent allocation,
and the trim policy keeps RSS down or steps aside where it must."""

import json
import re

import pytest

from harness import run_jvm
from jdks import MAIN

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
MiB = 1 << 20


def trim_result(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("trimresult "))
    return json.loads(line.split(" ", 1)[1])


def phase_end(stdout, index):
    times = [int(l.split()[1]) for l in stdout.splitlines() if len(l.split()) == 2 and l.split()[1].isdigit()]
    return times[index]


@pytest.mark.parametrize("jdk", MAIN)
def test_trim_releases_what_glibc_retains_after_a_zlib_burst(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    # 32 threads on the 16 arenas: 16 left JDK 25 retaining 28-58 MiB, too near the 32 MiB floor
    # below; 32 leave 100-150 MiB.
    r = run_jvm(jdk, "NativeGrowth", ["await=1", "burst=32", "gc", "await=+2", "trim", "await=+1"],
                agent_opts=f"interval=200ms,report={report}", classpath=workloads, report=report,
                heap="128m", timeout=90)
    assert r.rc == 0, r.stderr
    res = trim_result(r.stdout)
    assert res["status"] == "done" and res["reason"] == "manual"
    before = [s for s in r.samples if s["epoch_ms"] <= phase_end(r.stdout, 4)][-1]
    m = before["malloc"]
    assert m["retained"] >= 32 * MiB, m["retained"]
    assert sum(1 for a in m["arenas"] if a["retained"] >= MiB) >= 4, m["arenas"]
    # trimmable_max is an upper bound: it counts free pages whether resident or not, and glibc
    # frees part of the burst by itself before the trim. Measured here: 68-85% of it comes back.
    assert res["released"] >= 8 * MiB, res
    assert res["released"] >= 0.3 * m["trimmable_max"], (res["released"], m["trimmable_max"])
    # The release against the process's own VmRSS read around the call by the workload: the
    # agent's figure may differ by what the JVM allocated or freed meanwhile, not by more.
    vm = re.search(r"trimvmrss (\d+) (\d+)", r.stdout)
    vm_drop = int(vm.group(1)) - int(vm.group(2))
    assert abs(res["released"] - vm_drop) <= max(4 * MiB, 0.15 * vm_drop), (res["released"], vm_drop)
    after = r.samples[-1]
    assert after["trim"]["count"] == 1 and after["trim"]["released_total"] == res["released"]
    assert after["trim"]["last"]["seq"] == res["seq"]


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("lib,kind", [(JEMALLOC, "jemalloc"), (TCMALLOC, "tcmalloc")])
def test_other_allocators_release_through_their_own_calls(jdk, lib, kind, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    env = {"LD_PRELOAD": lib}
    if kind == "jemalloc":
        env["MALLOC_CONF"] = "dirty_decay_ms:-1,muzzy_decay_ms:-1"  # keep freed pages until purged
    else:
        env["TCMALLOC_RELEASE_RATE"] = "0"  # never release on its own
    r = run_jvm(jdk, "NativeGrowth", ["await=1", "burst=16", "gc", "trim"], agent_opts=f"interval=200ms,report={report}",
                env=env, classpath=workloads, report=report, heap="128m", timeout=90)
    assert r.rc == 0, r.stderr
    res = trim_result(r.stdout)
    assert res["status"] == "done"
    assert res["released"] >= 16 * MiB, res
    assert r.samples[-1]["allocator"]["kind"] == kind and r.samples[-1]["malloc"] is None


@pytest.mark.parametrize("jdk,seconds", [(17, 60), (25, 20)])
def test_trims_every_10ms_under_allocation_storm_lose_nothing(jdk, seconds, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", [f"stress={seconds}", "await=+1"], agent_opts=f"interval=500ms,report={report}",
                jvm_args=["-XX:MaxDirectMemorySize=64m"], classpath=workloads, report=report, heap="128m",
                timeout=seconds + 60)
    assert r.rc == 0, r.stderr
    assert "stresserror" not in r.stdout
    m = re.search(r"stressresult trims=(\d+) failures=(\d+) max_ms=([\d.]+)", r.stdout)
    trims, failures, max_ms = int(m.group(1)), int(m.group(2)), float(m.group(3))
    print(f"JDK {jdk}: {trims} trims in {seconds} s under 16 allocating threads, longest {max_ms:.1f} ms")
    assert failures == 0
    # The workload asks every 10 ms; how many land depends on the machine's load (two busy cores
    # gave 7-10 a second). What the test proves is that none fails and none goes unrecorded.
    assert trims >= seconds * 2
    # Every trim the workload saw is in the agent's record: none lost.
    assert r.samples[-1]["trim"]["count"] == trims
    assert r.samples[-1]["trim"]["failures"] == 0
