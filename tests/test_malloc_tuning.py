"""Issue 12 end to end: arenaMax, mmapThreshold, trimThreshold and topPad applied through mallopt
from premain, the environment winning, other allocators ignoring them, bad values refused.

arenaMax, measured here (glibc 2.36, 2 CPUs): the JVM's own threads have made 9 to 16 arenas
before premain runs (16 with G1 and the JIT on both JDKs; 9 with Serial GC and -Xint on JDK 17,
10 on JDK 25). glibc fixes its arena limit (8 x cores) the first time a thread looks for an
arena while more than 8 (arena_test) exist, and never reads M_ARENA_MAX again; arenas are never
freed. So mallopt from premain cannot bring the count down to 2: where at most 9 arenas existed
it stops all growth (the count stays what it was at premain), past that it changes nothing, and
the agent's line says so and points to MALLOC_ARENA_MAX. Only the environment caps the count.
"""

import os
import re

import pytest

from harness import run_jvm
from jdks import MAIN

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
LIMIT = 8 * os.cpu_count()


def run(jdk, workloads, tmp_path, opts="", args=("spread=16", "await=+2"), main="NativeGrowth", jvm_args=(),
        env=None):
    report = tmp_path / "tuning.jsonl"
    r = run_jvm(jdk, main, args=args, agent_opts=f"interval=200ms,report={report}" + (f",{opts}" if opts else ""),
                jvm_args=jvm_args, classpath=workloads, report=report, env=env, heap="256m", xcheck=False,
                timeout=120)
    assert r.rc == 0, r.stderr
    assert r.samples, r.stderr
    return r


def tuning_lines(r, name=None):
    names = ("arenaMax", "mmapThreshold", "trimThreshold", "topPad")
    lines = [l for l in r.agent_lines() if re.match(r"\[offheap-doctor\] (" + "|".join(names) + ")[=']", l)
             or "malloc settings" in l]
    return [l for l in lines if name is None or f"] {name}" in l]


def existed(line):
    m = re.search(r"(\d+) existed already", line)
    assert m, line
    return int(m.group(1))


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("lean", [False, True], ids=["g1-jit", "serial-xint"])
def test_arena_max_stops_new_arenas_only_if_set_before_glibc_fixes_its_limit(jdk, lean, workloads, tmp_path):
    jvm_args = ["-XX:+UseSerialGC", "-Xint"] if lean else []
    without = run(jdk, workloads, tmp_path, jvm_args=jvm_args)
    assert without.samples[-1]["malloc"]["arena_count"] >= 8

    r = run(jdk, workloads, tmp_path, "arenaMax=2", jvm_args=jvm_args)
    lines = tuning_lines(r)
    assert len(lines) == 1 and lines[0].startswith("[offheap-doctor] arenaMax=2: applied: at most 2 arena(s)"), lines
    n = existed(lines[0])
    count = r.samples[-1]["malloc"]["arena_count"]
    if n <= 9:
        # glibc had not fixed its limit: not one arena after premain, for 16 threads that wanted one.
        assert count == n, (n, count)
        assert count < without.samples[-1]["malloc"]["arena_count"]
    else:
        # Too late: glibc's limit (8 x cores) holds, and the line says to use the environment.
        assert "set MALLOC_ARENA_MAX in the environment" in lines[0], lines
        assert n <= count <= LIMIT


@pytest.mark.parametrize("jdk", MAIN)
def test_environment_wins_over_arena_max(jdk, workloads, tmp_path):
    r = run(jdk, workloads, tmp_path, "arenaMax=2", env={"MALLOC_ARENA_MAX": "4"})
    assert tuning_lines(r) == ["[offheap-doctor] arenaMax=2: skipped: environment sets MALLOC_ARENA_MAX=4"]
    s = r.samples[-1]
    assert s["malloc"]["arena_count"] <= 4
    # The map agrees: the main arena and at most three secondary arena heaps of 64 MiB each hold
    # the 16 threads' 480 Deflaters (~96 MiB), so some arena spans several heaps.
    assert s["breakdown"]["arenas"][0]["main"]
    assert len(s["breakdown"]["arenas"]) >= s["malloc"]["arena_count"]


@pytest.mark.parametrize("jdk", MAIN)
def test_jemalloc_ignores_each_setting(jdk, workloads, tmp_path):
    r = run(jdk, workloads, tmp_path, "arenaMax=2,mmapThreshold=64k,trimThreshold=1m,topPad=1m",
            env={"LD_PRELOAD": JEMALLOC})
    lines = tuning_lines(r)
    assert [l.split(":")[0] for l in lines] == [
        "[offheap-doctor] arenaMax=2", "[offheap-doctor] mmapThreshold=65536",
        "[offheap-doctor] trimThreshold=1048576", "[offheap-doctor] topPad=1048576"], lines
    for l in lines:
        assert l.endswith("ignored: malloc is jemalloc, which takes its settings from MALLOC_CONF"), l
    s = r.samples[-1]
    assert s["allocator"]["kind"] == "jemalloc"
    assert s["malloc"] is None


@pytest.mark.parametrize("jdk", MAIN)
def test_mmap_threshold_mmaps_100k_allocations(jdk, workloads, tmp_path):
    """ByteBuffer.allocateDirect(100 KiB) is malloc(100 KiB): below glibc's default 128 KiB
    threshold it comes from an arena; with mmapThreshold=64k each one is its own mmapped chunk."""
    counts = {}
    for opts in ("", "mmapThreshold=64k"):
        r = run(jdk, workloads, tmp_path, opts, args=("mark", "small=50"), main="Placement")
        at = {name: int(seq) for name, seq in re.findall(r"^(\w+) seq=(\d+)$", r.stdout, re.M)}
        by_seq = {s["seq"]: s for s in r.samples}
        counts[opts] = by_seq[at["small"]]["malloc"]["mmapped_count"] - by_seq[at["mark"]]["malloc"]["mmapped_count"]
        if opts:
            assert tuning_lines(r) == ["[offheap-doctor] mmapThreshold=65536: applied: chunks of 64.0 KiB and more "
                                       "that free space cannot serve get their own mmap; the dynamic threshold is off"]
    assert counts["mmapThreshold=64k"] >= 50, counts
    assert counts[""] < 10, counts


@pytest.mark.parametrize("jdk", MAIN)
def test_trim_threshold_and_top_pad_apply(jdk, workloads, tmp_path):
    r = run(jdk, workloads, tmp_path, "trimThreshold=1m,topPad=256k")
    lines = tuning_lines(r)
    assert len(lines) == 2, lines
    assert lines[0].startswith("[offheap-doctor] trimThreshold=1048576: applied: ")
    assert lines[1].startswith("[offheap-doctor] topPad=262144: applied: ")


@pytest.mark.parametrize("jdk", MAIN)
def test_bad_values_give_one_line_each_and_the_good_ones_apply(jdk, workloads, tmp_path):
    r = run(jdk, workloads, tmp_path, "arenaMax=0,topPad=lots,mmapThreshold=64m,trimThreshold=1m")
    lines = tuning_lines(r)
    assert len(lines) == 4, lines
    joined = "\n".join(lines)
    # Refused by the option parser (its own syntax) ...
    assert "arenaMax='0' is not a whole number from 1 to 1048576; ignored" in joined
    assert "topPad='lots' is not a size" in joined
    # ... and by the native core (what mallopt can take), each on its own line, the rest applied.
    assert re.search(r"\] mmapThreshold=64m: not applied: .*at most 33554432", joined), joined
    assert re.search(r"\] trimThreshold=1048576: applied: ", joined), joined

    r = run(jdk, workloads, tmp_path, "trimThreshold=4g,arenaMax=3")
    lines = tuning_lines(r)
    assert len(lines) == 2, lines
    assert re.search(r"\] trimThreshold=4g: not applied: .*at most 2147483647", lines[0]), lines
    assert re.search(r"\] arenaMax=3: applied: at most 3 arena", lines[1]), lines
    assert r.samples[-1]["malloc"] is not None
