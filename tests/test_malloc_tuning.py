"""End to end: arenaMax, mmapThreshold, trimThreshold and topPad applied through mallopt
from premain, the environment winning, other allocators ignoring them, bad values refused.

arenaMax, measured here (glibc 2.36, 2 CPUs): the JVM's own threads have made 9 to 16 arenas
before premain runs (16 with G1 and the JIT on both JDKs; 9 with Serial GC and -Xint on JDK 17,
10 on JDK 25). glibc fixes its arena limit (8 x cores) the first time a thread looks for an
arena while more than 8 (arena_test) exist, and never reads M_ARENA_MAX again; arenas are never
freed. So mallopt from premain cannot bring the count down to 2: where at most 9 arenas existed
it stops all growth (the count stays what it was at premain), past that it changes nothing, and
the agent's line says so and points to -agentpath and MALLOC_ARENA_MAX.

-agentpath:<library>=arenaMax=2 loads the same native library as a JVMTI agent: the JVM calls its
Agent_OnLoad while creating itself, when only the main arena and the launcher's main thread's
arena exist (2 at that point on JDK 17 and 25), so the cap holds as MALLOC_ARENA_MAX's does.
"""

import os
import re
import stat
import subprocess

import pytest

from harness import AGENT_JAR, Background, command, run_jvm, wait_for_samples
from jdks import MAIN, java

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
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
        assert ("the cap limits only new arenas" in lines[0]
                and "start the JVM with -agentpath:<library>=arenaMax=2 or MALLOC_ARENA_MAX=2" in lines[0]), lines
        assert n <= count <= LIMIT
    # The sample lists the setting as the agent's, from premain, and repeats the note.
    t = r.samples[-1]["tuning"]
    assert t["in_force"] == [{"setting": "arenaMax", "value": "2", "source": "premain"}]
    assert t["arena_cap"] == 2 and t["arena_count"] == count
    assert t["note"] and "limits only new arenas" in t["note"] and "-agentpath" in t["note"]


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
    # Refused by the option parser, which knows what mallopt can take as the native core does ...
    assert "arenaMax='0' is not a whole number from 1 to 2147483647; ignored" in joined
    assert "topPad='lots' is not a size" in joined
    assert "mmapThreshold='64m' is not a size of at most 32m" in joined
    # ... each on its own line, the rest applied.
    assert re.search(r"\] trimThreshold=1048576: applied: ", joined), joined

    r = run(jdk, workloads, tmp_path, "trimThreshold=4g,arenaMax=3")
    lines = tuning_lines(r)
    assert len(lines) == 2, lines
    assert "trimThreshold='4g' is not a size of at most 2147483647 bytes" in lines[0], lines
    assert re.search(r"\] arenaMax=3: applied: at most 3 arena", lines[1]), lines
    assert r.samples[-1]["malloc"] is not None


@pytest.fixture(scope="module")
def agentpath(tmp_path_factory):
    """The library, extracted as an operator would: `java -jar offheap-doctor.jar agentpath <dir>`."""
    d = tmp_path_factory.mktemp("agentpath")
    p = subprocess.run([java(MAIN[0]), "-jar", str(AGENT_JAR), "agentpath", str(d), "arenaMax=2,mmapThreshold=128k"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    flag = p.stdout.strip()
    m = re.fullmatch(r"-agentpath:(/\S+\.so)=arenaMax=2,mmapThreshold=128k", flag)
    assert m, flag
    lib = m.group(1)
    assert os.path.dirname(lib) == str(d)
    # Readable by the JVM's user whoever that is; writable by its owner only.
    assert stat.S_IMODE(os.stat(lib).st_mode) == 0o644
    return lib


def early_lines(r):
    return [l for l in r.agent_lines() if l.startswith("[offheap-doctor] -agentpath")]


@pytest.mark.parametrize("jdk", MAIN)
def test_agentpath_caps_the_arenas_of_32_zlib_threads(jdk, workloads, tmp_path, agentpath):
    without = run(jdk, workloads, tmp_path, args=("spread=32", "await=+2"))
    assert without.samples[-1]["malloc"]["arena_count"] >= 8

    # Both agents: the Java agent loads the library -agentpath loaded, so premain finds the cap
    # already applied and the report shows the early agent's settings.
    # zipInterval: the census of the last sample counts what the 32 threads made, not what a scan
    # that ran while they were still making them saw. A scan is also spaced by its own cost (see
    # *zip*): on a busy machine two samples can still carry the scan from before the threads
    # ended, so the workload waits for eight.
    r = run(jdk, workloads, tmp_path, "arenaMax=2,zipInterval=100ms", args=("spread=32", "await=+8"),
            jvm_args=[f"-agentpath:{agentpath}=arenaMax=2"])
    lines = early_lines(r)
    assert len(lines) == 1, r.agent_lines()
    m = re.fullmatch(r"\[offheap-doctor\] -agentpath arenaMax=2: applied: at most 2 arena\(s\) from now on; "
                     r"(\d+) existed already", lines[0])
    assert m and int(m.group(1)) <= 2, lines
    assert tuning_lines(r) == ["[offheap-doctor] arenaMax=2: skipped: -agentpath applied arenaMax=2 already"]
    s = r.samples[-1]
    # At most the cap plus the main arena, for 32 threads that each wanted one.
    assert s["malloc"]["arena_count"] <= 3, s["malloc"]["arena_count"]
    assert s["zip"]["deflaters"]["alive"] >= 32 * 30
    t = s["tuning"]
    assert t["in_force"] == [{"setting": "arenaMax", "value": "2", "source": "agentpath"}]
    assert t["note"] is None and t["arena_cap"] == 2
    assert [(q["setting"], q["by"], q["status"]) for q in t["requested"]] == [
        ("arenaMax", "agentpath", "applied"), ("arenaMax", "premain", "skipped")]


@pytest.mark.parametrize("jdk", MAIN)
def test_agentpath_mmap_threshold_alone_without_the_java_agent(jdk, workloads, tmp_path, agentpath):
    """-agentpath needs no -javaagent: the JVM runs, the line is said, nothing else is loaded."""
    cmd = command(jdk, "Idle", ["0"], jvm_args=[f"-agentpath:{agentpath}=mmapThreshold=128k"],
                  classpath=workloads, xcheck=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("[offheap-doctor]")]
    assert lines == ["[offheap-doctor] -agentpath mmapThreshold=131072: applied: chunks of 128.0 KiB and more that "
                     "free space cannot serve get their own mmap; the dynamic threshold is off"], p.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_environment_wins_over_agentpath(jdk, workloads, tmp_path, agentpath):
    r = run(jdk, workloads, tmp_path, args=("spread=16", "await=+2"), env={"MALLOC_ARENA_MAX": "4"},
            jvm_args=[f"-agentpath:{agentpath}=arenaMax=2,trimThreshold=1m"])
    lines = early_lines(r)
    assert lines[0] == "[offheap-doctor] -agentpath arenaMax=2: skipped: environment sets MALLOC_ARENA_MAX=4", lines
    assert lines[1].startswith("[offheap-doctor] -agentpath trimThreshold=1048576: applied: "), lines
    s = r.samples[-1]
    assert 2 < s["malloc"]["arena_count"] <= 4
    assert s["tuning"]["in_force"] == [
        {"setting": "arenaMax", "value": "4", "source": "environment", "variable": "MALLOC_ARENA_MAX"},
        {"setting": "trimThreshold", "value": "1048576", "source": "agentpath"}]
    assert s["tuning"]["arena_cap"] == 4


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("name,lib,says", [("jemalloc", JEMALLOC, "MALLOC_CONF"),
                                                  ("tcmalloc", TCMALLOC, "TCMALLOC_* variables")])
def test_other_allocators_leave_agentpath_settings_alone(jdk, workloads, tmp_path, agentpath, name, lib, says):
    r = run(jdk, workloads, tmp_path, args=("spread=4", "await=+2"), env={"LD_PRELOAD": lib},
            jvm_args=[f"-agentpath:{agentpath}=arenaMax=2,mmapThreshold=128k"])
    lines = early_lines(r)
    assert [l.split(":")[0] for l in lines] == ["[offheap-doctor] -agentpath arenaMax=2",
                                                "[offheap-doctor] -agentpath mmapThreshold=131072"], lines
    for l in lines:
        assert l.endswith(f"ignored: malloc is {name}, which takes its settings from {says}"), l
    s = r.samples[-1]
    assert s["allocator"]["kind"] == name and s["malloc"] is None
    assert s["tuning"]["in_force"] == [] and s["tuning"]["arena_cap"] is None


@pytest.mark.parametrize("jdk", MAIN)
def test_bad_agentpath_options_never_stop_the_jvm(jdk, workloads, tmp_path, agentpath):
    r = run(jdk, workloads, tmp_path, args=("await=+2",),
            jvm_args=[f"-agentpath:{agentpath}=arenaMax=0,bogus=1,mmapThreshold=64m,topPad=256k"])
    lines = early_lines(r)
    assert len(lines) == 4, lines
    assert lines[0].startswith("[offheap-doctor] -agentpath arenaMax=0: not applied: ") and \
        'arenaMax "0": a count, 1 or more' in lines[0], lines
    assert lines[1].startswith("[offheap-doctor] -agentpath bogus=1: not applied: ") and \
        'unknown malloc setting "bogus"' in lines[1], lines
    assert re.match(r"\[offheap-doctor\] -agentpath mmapThreshold=64m: not applied: .*at most 33554432", lines[2])
    assert lines[3].startswith("[offheap-doctor] -agentpath topPad=262144: applied: "), lines
    assert [f["setting"] for f in r.samples[-1]["tuning"]["in_force"]] == ["topPad"]

    # No options at all, and options that are not name=value: one line, and the JVM runs.
    for flag in (f"-agentpath:{agentpath}", f"-agentpath:{agentpath}=junk"):
        p = subprocess.run(command(jdk, "Idle", ["0"], jvm_args=[flag], classpath=workloads), capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        lines = [l for l in p.stderr.splitlines() if l.startswith("[offheap-doctor]")]
        assert len(lines) == 1 and ("nothing applied" in lines[0] or "not applied" in lines[0]), p.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_late_attach_says_the_cap_limits_only_new_arenas(jdk, workloads, tmp_path):
    report = tmp_path / "late.jsonl"
    cmd = command(jdk, "NativeGrowth", ["spread=16", "sleep=60000"], classpath=workloads, xcheck=False,
                  heap="128m")
    with Background(cmd) as app:
        app.wait_for_stdout("spread")
        a = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), "start",
                            f"arenaMax=2,interval=200ms,report={report}"], capture_output=True, text=True,
                           timeout=90)
        assert a.returncode == 0, a.stderr
        samples = wait_for_samples(report, 1)
        # The text report has the settings and the note too.
        text = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), "report"], capture_output=True,
                              text=True, timeout=90)
        assert text.returncode == 0, text.stderr
        assert re.search(r"^malloc settings\s+arenaMax=2 \(agentmain\)$", text.stdout, re.M), text.stdout
        assert re.search(r"^\s+arenaMax=2 limits only new arenas: ", text.stdout, re.M), text.stdout
        app.kill()
        _, _, err = app.finish()
    t = samples[-1]["tuning"]
    assert t["in_force"] == [{"setting": "arenaMax", "value": "2", "source": "agentmain"}]
    assert t["arena_count"] > 2
    assert t["note"].startswith(f"arenaMax=2 limits only new arenas: ") and "when agentmain applied it" in t["note"]
    assert "-agentpath:<library>=arenaMax=2" in t["note"] and "MALLOC_ARENA_MAX=2" in t["note"]
    lines = [l for l in err.splitlines() if l.startswith("[offheap-doctor] arenaMax=2")]
    assert len(lines) == 1 and "the cap limits only new arenas" in lines[0], err


@pytest.mark.parametrize("jdk", MAIN)
def test_tune_auto_caps_arenas_at_the_cpus_and_fixes_the_mmap_threshold(jdk, workloads, tmp_path, agentpath):
    r = run(jdk, workloads, tmp_path, "trim=auto", args=("spread=32", "await=+2"),
            jvm_args=[f"-agentpath:{agentpath}=tune=auto"])
    lines = early_lines(r)
    m = re.fullmatch(r"\[offheap-doctor\] -agentpath tune=auto: arenaMax=(\d+) \((\d+) CPUs\), mmapThreshold=128k",
                     lines[0])
    assert m, lines
    cap, cpus = int(m.group(1)), int(m.group(2))
    assert 1 <= cpus <= len(os.sched_getaffinity(0)) and cap == max(2, cpus)
    assert lines[1].startswith(f"[offheap-doctor] -agentpath arenaMax={cap}: applied: "), lines
    assert lines[2].startswith("[offheap-doctor] -agentpath mmapThreshold=131072: applied: "), lines
    s = r.samples[-1]
    assert s["malloc"]["arena_count"] <= cap + 1
    assert [(f["setting"], f["source"]) for f in s["tuning"]["in_force"]] == [
        ("arenaMax", "agentpath"), ("mmapThreshold", "agentpath")]
    assert s["trim"]["policy"]["spec"].startswith("auto")


def test_agentpath_command_refuses_other_options_in_one_line(tmp_path):
    for bad, says in (("interval=1s", "'interval=1s': -agentpath takes only tune=auto, arenaMax"),
                      ("arenaMax=0", "arenaMax='0' is not a whole number")):
        p = subprocess.run([java(MAIN[0]), "-jar", str(AGENT_JAR), "agentpath", str(tmp_path), bad],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and p.stdout == "", p
        assert p.stderr.count("\n") == 1 and says in p.stderr, p.stderr
        assert "ignored" not in p.stderr, p.stderr  # the command refuses: nothing goes on without it
        assert not list(tmp_path.iterdir())
    p = subprocess.run([java(MAIN[0]), "-jar", str(AGENT_JAR), "agentpath", str(tmp_path), "tune=auto,topPad=1m"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and re.fullmatch(r"-agentpath:/\S+\.so=tune=auto,topPad=1m\n", p.stdout), p
    # No settings: the flag carries tune=auto, the measured best with trim=auto (see README).
    p = subprocess.run([java(MAIN[0]), "-jar", str(AGENT_JAR), "agentpath", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and re.fullmatch(r"-agentpath:/\S+\.so=tune=auto\n", p.stdout), p
