"""Findings and options end to end, each held against a truth the agent did not compute: the heap
findings against the workload's own MemoryMXBean and VmRSS and a memory cgroup the test made;
topPad and trimThreshold against the [heap] mapping as the kernel shows it; a trim policy and a
baseline changed over JMX (the attach CLI) read back from the report."""

import os
import re
import subprocess
import time

import pytest

from harness import (AGENT_JAR, Background, command, observe, prerequisite_missing, read_report, run_jvm,
                     wait_for_samples)
from jdks import MAIN, java
from test_diagnosis import make_memory_cgroup, remove_cgroup

MiB = 1 << 20


def finding(sample, fid):
    return next((f for f in sample["findings"] if f["id"] == fid), None)


def evidence(f):
    return {e["key"]: e["raw"] for e in f["evidence"]}


def truths(stdout):
    """HeapTruth's "truth <phase> k=v ..." lines, by phase."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("truth "):
            _, phase, *kv = line.split()
            out[phase] = {k: int(v) for k, v in (p.split("=") for p in kv)}
    return out


# --- heap-not-the-problem: RSS grew, and the heap's part of it is small ---

@pytest.mark.parametrize("jdk", MAIN)
def test_rss_growth_outside_the_heap_is_heap_not_the_problem(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "HeapTruth", ["direct", "300", "3"], agent_opts=f"interval=250ms,report={report}",
                jvm_args=["-Xms64m", "-XX:MaxDirectMemorySize=400m"], classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    t = truths(r.stdout)
    # The workload's own account: the process grew by the 300 MiB, the heap did not.
    rss_truth = t["end"]["vmrss"] - t["before"]["vmrss"]
    heap_truth = t["end"]["heap_committed"] - t["before"]["heap_committed"]
    assert rss_truth >= 300 * MiB and heap_truth < 0.1 * rss_truth, t
    last = r.samples[-1]
    f = finding(last, "heap-not-the-problem")
    assert f and f["severity"] == "info", [x["id"] for x in last["findings"]]
    ev = evidence(f)
    # Growth since the baseline (the first sample, before the workload's "before" line).
    assert rss_truth - 8 * MiB <= ev["rss_growth"] <= rss_truth + 16 * MiB, (ev, t)
    assert ev["heap_growth"] < 16 * MiB, ev
    assert ev["heap_share_of_growth"] < 0.1
    assert "-Xmx" in f["remedy"]
    assert [s["seq"] for s in r.samples if "heap-not-the-problem" in s["findings_new"]] != []


@pytest.mark.parametrize("jdk", MAIN)
def test_rss_growth_in_the_heap_is_not_heap_not_the_problem(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "HeapTruth", ["heap", "300", "3"], agent_opts=f"interval=250ms,report={report}",
                jvm_args=["-Xms16m"], classpath=workloads, report=report, heap="768m")
    assert r.rc == 0, r.stderr
    t = truths(r.stdout)
    rss_truth = t["end"]["vmrss"] - t["before"]["vmrss"]
    heap_truth = t["end"]["heap_committed"] - t["before"]["heap_committed"]
    # Past the rule's 256 MiB, and the heap is most of it.
    assert rss_truth >= 280 * MiB and heap_truth >= 0.5 * rss_truth, t
    last = r.samples[-1]
    assert last["growth"]["series"]["rss"]["delta"] >= 256 * MiB
    assert finding(last, "heap-not-the-problem") is None, [x["title"] for x in last["findings"]]
    assert not any("heap-not-the-problem" in s["findings_new"] for s in r.samples)


# --- heap-headroom: the maximum heap plus what is outside it, against a cgroup's limit ---

LIMIT = 1 << 30


def run_in_memory_cgroup(jdk, workloads, tmp_path, xmx):
    group, why = make_memory_cgroup(f"offheap-doctor-headroom-{os.getpid()}-{jdk}-{xmx}", LIMIT)
    if group is None:
        prerequisite_missing(f"a memory cgroup with a limit (v1 or v2): {why}")
    report = tmp_path / "r.jsonl"
    try:
        cmd = command(jdk, "HeapTruth", ["none", "0", "3"], agent_opts=f"interval=250ms,report={report}",
                      classpath=workloads, heap=xmx, jvm_args=["-Xms16m"])
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS",
                                                                  "OFFHEAP_DOCTOR_OPTS")}
        p = subprocess.run(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *cmd],
                           capture_output=True, text=True, timeout=90, env=env)
        observe(cmd, p.stdout, p.stderr)
    finally:
        remove_cgroup(group)
    assert p.returncode == 0, p.stderr
    samples = read_report(report)
    assert samples[-1]["cgroup"]["limit"] == LIMIT, samples[-1]["cgroup"]
    return samples, truths(p.stdout)


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("xmx,severity", [("1200m", "critical"), ("960m", "warning"), ("64m", None)])
def test_a_maximum_heap_that_leaves_no_room_under_the_limit_is_heap_headroom(jdk, xmx, severity, workloads,
                                                                           tmp_path):
    samples, t = run_in_memory_cgroup(jdk, workloads, tmp_path, xmx)
    last, end = samples[-1], t["end"]
    heap_max = end["heap_max"]
    # The JVM's maximum is -Xmx less what its collector keeps back (a survivor space, alignment).
    assert 0.9 * int(xmx[:-1]) * MiB <= heap_max <= int(xmx[:-1]) * MiB, heap_max
    # The truth by the rule's arithmetic: what is outside the heap is at most VmRSS, and at least
    # VmRSS less the whole committed heap.
    outside_hi, outside_lo = end["vmrss"], end["vmrss"] - end["heap_committed"]
    f = finding(last, "heap-headroom")
    if severity is None:
        assert heap_max + outside_hi < 0.9 * LIMIT, t
        assert f is None, f
        return
    if severity == "critical":
        assert heap_max >= LIMIT
    else:
        assert 0.9 * LIMIT <= heap_max + outside_lo and heap_max + outside_hi < LIMIT, t
    assert f and f["severity"] == severity, (f, [x["id"] for x in last["findings"]])
    ev = evidence(f)
    assert ev["limit"] == LIMIT and ev["heap_max"] == heap_max
    assert outside_lo - 8 * MiB <= ev["non_heap_rss"] <= outside_hi + 8 * MiB, (ev, end)
    assert ev["free_at_full_heap"] == pytest.approx(max(0.0, 1 - (heap_max + ev["non_heap_rss"]) / LIMIT), abs=1e-3)
    m = re.search(r"Lower -Xmx to at most (\d+\.\d) MiB", f["remedy"])
    assert m and float(m.group(1)) * MiB <= 0.9 * (LIMIT - ev["non_heap_rss"]) + 0.1 * MiB, f["remedy"]


# --- topPad and trimThreshold through -agentpath, seen in the main arena's [heap] ---

@pytest.fixture(scope="module")
def agentpath(tmp_path_factory):
    d = tmp_path_factory.mktemp("agentpath")
    p = subprocess.run([java(MAIN[0]), "-jar", str(AGENT_JAR), "agentpath", str(d), "topPad=1m"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    m = re.fullmatch(r"-agentpath:(/\S+\.so)=topPad=1m", p.stdout.strip())
    assert m, p.stdout
    return m.group(1)


def malloc_top(jdk, workloads, agentpath, tune):
    """MallocTop's rounds: [heap] Size and Rss by phase, with every thread on the main arena and
    the JIT off (its compilers' malloc would land above the measured blocks)."""
    jvm_args = ["-Xint", "-XX:MaxDirectMemorySize=256m"]
    if tune:
        jvm_args.append(f"-agentpath:{agentpath}={tune}")
    r = run_jvm(jdk, "MallocTop", ["512"], jvm_args=jvm_args, classpath=workloads, env={"MALLOC_ARENA_MAX": "1"})
    assert r.rc == 0, r.stderr
    rounds = {}
    for line in r.stdout.splitlines():
        m = re.fullmatch(r"phase (\w+) cycle=(\d+) size=(\d+) rss=(\d+)", line)
        if m:
            rounds.setdefault(int(m.group(2)), {})[m.group(1)] = {"size": int(m.group(3)), "rss": int(m.group(4))}
    assert len(rounds) == 3 and all(set(p) == {"start", "allocated", "freed"} for p in rounds.values()), r.stdout
    # Every block was freed, and the first round's 32 MiB came from [heap]: the main arena, where
    # the settings must act (a later round reuses what an earlier one left resident).
    assert r.stdout.count("direct count 0 of 0 before") == 3, r.stdout
    assert rounds[0]["allocated"]["rss"] - rounds[0]["start"]["rss"] >= 30 * MiB, rounds
    return r, [rounds[i] for i in sorted(rounds)]


def given_back(rounds):
    """The median round's resident [heap] given back by free(), and whether [heap] shrank."""
    backs = sorted((p["allocated"]["rss"] - p["freed"]["rss"], p["freed"]["size"] < p["allocated"]["size"])
                   for p in rounds)
    return backs[len(backs) // 2]


@pytest.mark.parametrize("jdk", MAIN)
def test_top_pad_makes_each_growth_of_the_main_arena_ask_for_the_pad(jdk, workloads, agentpath):
    r, padded = malloc_top(jdk, workloads, agentpath, "topPad=256m")
    assert [l for l in r.agent_lines() if "topPad" in l][0].startswith(
        "[offheap-doctor] -agentpath topPad=268435456: applied: ")
    # Once the arena has grown after the setting, [heap] spans at least the pad, which is address
    # space: the pages are not touched, so resident memory is what the blocks need.
    for p in (p for rnd in padded for p in rnd.values()):
        assert p["size"] >= 256 * MiB, padded
        assert p["rss"] < 64 * MiB, padded
    _, plain = malloc_top(jdk, workloads, agentpath, None)
    assert all(p["size"] < 128 * MiB for rnd in plain for p in rnd.values()), plain


@pytest.mark.parametrize("jdk", MAIN)
def test_trim_threshold_decides_whether_free_gives_the_top_back(jdk, workloads, agentpath):
    r, high = malloc_top(jdk, workloads, agentpath, "trimThreshold=1g")
    assert [l for l in r.agent_lines() if "trimThreshold" in l][0].startswith(
        "[offheap-doctor] -agentpath trimThreshold=1073741824: applied: ")
    # 32 MiB free at the top is below a 1 GiB threshold: free() keeps it all resident, every round.
    for p in high:
        assert p["freed"]["rss"] >= p["allocated"]["rss"] - MiB, high
        assert p["freed"]["size"] >= p["allocated"]["size"], high
    _, low = malloc_top(jdk, workloads, agentpath, "trimThreshold=1m")
    # ... and above a 1 MiB one: free() shrinks [heap] and gives back nearly all of the blocks.
    back, shrank = given_back(low)
    assert back >= 28 * MiB and shrank, low


# --- A trim policy and a baseline changed over JMX, read back from the report ---

def attach_cmd(jdk, pid, *args):
    return subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(pid), *args], capture_output=True, text=True,
                          timeout=90)


@pytest.mark.parametrize("jdk", MAIN)
def test_policy_and_baseline_set_over_jmx_show_in_the_report(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    go = tmp_path / "go"
    before, after = 80, 40
    cmd = command(jdk, "AfterBaseline", [before, after, go, 4], agent_opts=f"interval=250ms,report={report}",
                  jvm_args=["-XX:MaxDirectMemorySize=256m"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("grown")
        first = read_report(report)
        assert all(s["trim"]["policy"]["mode"] == {"mode": "off"} for s in first), first[0]["trim"]
        assert {s["growth"]["baseline_ms"] for s in first} == {first[0]["growth"]["baseline_ms"]}
        assert first[-1]["growth"]["series"]["rss"]["delta"] >= before * MiB * 0.9

        p = attach_cmd(jdk, app.pid, "policy=30s")
        assert p.returncode == 0 and p.stdout.startswith("trim policy set: "), (p.stdout, p.stderr)
        set_at = int(time.time() * 1000)
        b = attach_cmd(jdk, app.pid, "baseline")
        assert b.returncode == 0 and b.stdout.startswith("baseline set"), (b.stdout, b.stderr)
        go.touch()
        app.wait_for_stdout("allocated")
        rc, out, err = app.finish(timeout=60)
    assert rc == 0, err
    samples = read_report(report)
    later = [s for s in samples if s["epoch_ms"] > set_at]
    assert len(later) >= 4, len(later)
    # The policy the CLI set is the policy every later sample reports.
    assert all(s["trim"]["policy"]["mode"] == {"mode": "interval", "every_ms": 30000} for s in later), later[0]["trim"]
    assert all(s["trim"]["policy"]["effective_interval_ms"] == 30000 for s in later)
    # The baseline moved to when the CLI said so, and growth counts only what came after it.
    new_base = later[-1]["growth"]["baseline_ms"]
    assert first[0]["growth"]["baseline_ms"] < new_base <= int(time.time() * 1000)
    assert set_at - 1000 <= new_base, (set_at, new_base)
    series = later[-1]["growth"]["series"]
    # Exactly the workload's buffers, give or take the few bytes of the JDK's own.
    assert abs(series["direct.used"]["delta"] - after * MiB) <= 64 * 1024, series["direct.used"]
    assert after * MiB * 0.9 <= series["rss"]["delta"] <= (after + 16) * MiB, series["rss"]
    # The same process measured from the first baseline has both growths in it.
    assert later[-1]["totals"]["rss"] - first[0]["totals"]["rss"] >= (before + after) * MiB * 0.9
