"""The native call sites sampler never harms the process it watches. Real JVMs run an application
that allocates through a JNI library built by the test (tests/native/leaky.c) and through zlib,
and checks its own results: inflated bytes against the input, the library's own counts of what
it keeps and frees. Against them: jemalloc and tcmalloc preloaded in place of glibc's malloc, the
sampler started and stopped 30 times under 8 busy threads, frees of blocks the sampler never saw,
a library loaded after the start, libraries loaded while the sampler looks for new ones, child
processes started through fork and vfork, and -Xcheck:jni on every JDK.

Every test needs the sampler's natives in the core: without them each is a skip naming what is
missing (an error under CI=true)."""

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from harness import AGENT_JAR, Background, build_leaky_library, command, prerequisite_missing, read_report, run_jvm
from jdks import ALL, MAIN, java

MiB = 1 << 20
# The rate of the tests that compare an estimate with the truth: with 64 KiB pieces nearly two in
# three are sampled, so a 25% bound holds with a wide margin even for a leak of 16 MiB.
RATE = "nativeSitesRate=64k"
ZLIB = re.compile(r"^lib(z|zip)\.so")
# What glibc prints when it aborts on a free it cannot make sense of.
HEAP_ABORTS = ("free(): invalid", "double free", "munmap_chunk(): invalid pointer", "corrupted", "malloc(): ",
               "realloc(): invalid", "A fatal error has been detected", "SIGSEGV (0x", "SIGABRT (0x")
ALLOCATORS = {
    "jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
}


@pytest.fixture(scope="session")
def leaky(tmp_path_factory):
    """libleaky.so, built once per session."""
    return build_leaky_library(tmp_path_factory.mktemp("leaky-harm"))


@pytest.fixture(scope="session", autouse=True)
def sampler_built(agent_jar):
    """The core in the jar has the sampler's natives (the symbol names are in its dynamic table)."""
    with zipfile.ZipFile(agent_jar) as z:
        libs = [n for n in z.namelist() if n.endswith("/liboffheap_doctor.so")]
        if not libs or b"nativeSitesStart0" not in z.read(libs[0]):
            prerequisite_missing("a native core with the native call sites (Java_..._nativeSitesStart0)")


def jvm_args(jdk, leaky):
    return [f"-Dnativeleak.lib={leaky}"] + (["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else [])


def values(stdout, key):
    """The values of `key=<value>` tokens in the workload's output, in order."""
    return [m.group(1) for m in re.finditer(rf"\b{key}=(\S+)", stdout)]


def fields(line):
    """`a=1 b=x` as a dict, the numbers as ints."""
    out = {}
    for k, v in re.findall(r"(\w+)=(\S+)", line):
        out[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return out


def line_of(stdout, prefix):
    found = [l for l in stdout.splitlines() if l.startswith(prefix)]
    assert found, f"no '{prefix}' line in: {stdout[-3000:]}"
    return found[-1]


def slots(text):
    m = re.findall(r"malloc_slot=([0-9a-f]+) real_malloc=([0-9a-f]+)", text)
    assert m, text
    return [(int(a, 16), int(b, 16)) for a, b in m]


def sites_parts(stdout):
    """Each `sites` command's native_sites part, in order."""
    return [json.loads(l[len("sites "):]) for l in stdout.splitlines() if l.startswith("sites {")]


def real_sites(part):
    return [s for s in part.get("sites", []) if "label" in s]


def leak_live(part):
    """The live bytes of the sites whose allocating function is leak_into_cache."""
    return sum(s["live_bytes"] for s in real_sites(part)
               if s["native"] and s["native"][0].get("symbol") == "leak_into_cache")


def no_heap_abort(text):
    bad = [l for l in text.splitlines() if any(a in l for a in HEAP_ABORTS)]
    assert bad == [], bad[:5]


def mapping_of(pid, address):
    """The file /proc/<pid>/maps names for the mapping that holds `address` (None: anonymous or none)."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lo <= address < hi:
            return parts[5].strip() if len(parts) == 6 else None
    return None


@pytest.mark.parametrize("name", sorted(ALLOCATORS))
def test_a_preloaded_allocator_keeps_working_and_its_leak_is_still_found(name, leaky, workloads, tmp_path):
    lib = ALLOCATORS[name]
    if not Path(lib).exists():
        prerequisite_missing(f"{name} at {lib} (Debian: apt-get install "
                             f"{'libjemalloc2' if name == 'jemalloc' else 'libtcmalloc-minimal4'})")
    jdk = 17
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "NativeLeak", ["stdin"],
                  agent_opts=f"interval=500ms,log=info,nativeSites=on,{RATE},report={report}",
                  jvm_args=jvm_args(jdk, leaky), classpath=workloads)
    with Background(cmd, env={"LD_PRELOAD": lib}, stdin=True) as app:
        app.wait_for_stdout("ready")
        app.send("await")
        app.read_until("ok await")
        app.send("slots")
        (slot, real), = slots("\n".join(app.read_until("ok slots")))
        # The process's malloc is the preloaded allocator's, and the library's calls go to the hook.
        assert mapping_of(app.pid, real) == os.path.realpath(lib), (hex(real), mapping_of(app.pid, real))
        assert slot != real, "libleaky.so's calls to malloc were not interposed"
        app.send("leak 67108864 65536")
        leaked = int(values("\n".join(app.read_until("ok leak")), "leaked")[0])
        assert leaked == 64 * MiB
        app.send("zip 200")
        assert "zip kept=200" in app.read_until("ok zip")
        app.send("sleep 1500")
        app.read_until("ok sleep")
        samples = read_report(report)
        # Frees of sampled and unsampled blocks alike, through the hook, into the allocator.
        app.send("release")
        assert values("\n".join(app.read_until("ok release")), "released") == [str(leaked)]
        app.send("leak 8388608 65536")
        assert values("\n".join(app.read_until("ok leak")), "leaked") == [str(8 * MiB)]
        app.send("exit")
        rc, out, err = app.finish(timeout=60)
    assert rc == 0, err[-3000:]
    no_heap_abort(out + err)
    assert samples, err
    part = samples[-1]["native_sites"]
    assert part["status"] == "on", part
    live = leak_live(part)
    assert abs(live - leaked) <= 0.25 * leaked, (live, leaked, [s["label"] for s in real_sites(part)])
    zlib = [s for s in real_sites(part) if s["native"] and ZLIB.match(s["native"][0]["library"])
            and any(f.startswith("ZipHold.open(") for f in s.get("java", []))]
    assert zlib, [s["label"] for s in real_sites(part)]


@pytest.mark.parametrize("jdk", MAIN)
def test_thirty_starts_and_stops_under_eight_busy_threads_change_no_result(jdk, leaky, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "SamplerHarm", ["load", "slots", "storm 8 30", "slots", "exit"],
                agent_opts=f"interval=100ms,log=quiet,mbean=on,report={report}", jvm_args=jvm_args(jdk, leaky),
                classpath=workloads, report=report, timeout=150)
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    no_heap_abort(r.stdout + r.stderr)
    storm = fields(line_of(r.stdout, "storm "))
    unexpected = [l for l in r.stdout.splitlines() if l.startswith("unexpected ")]
    assert unexpected == [], unexpected[:5]
    assert storm["started"] == storm["stopped"] == 30, storm
    # Every start interposed the library, every stop put malloc back.
    assert storm["hooked"] == 30, storm
    (before, after) = slots(r.stdout)
    assert before[0] == before[1] and after[0] == after[1], (before, after)
    # The application's own computation: every round trip exact, every JNI count as asked.
    assert storm["wrong"] == 0, storm
    assert storm["rounds"] >= 8 * 10, storm
    assert storm["kept"] == storm["released"] > 0, storm
    assert storm["reports"] > 0
    # The samples in between saw the sampler both ways, and sampling while on.
    parts = [s["native_sites"] for s in r.samples]
    assert any(p["status"] == "on" and p["sampled"] > 0 for p in parts), parts[-3:]
    assert any(p["status"] == "off" for p in parts)


@pytest.mark.parametrize("jdk", MAIN)
def test_frees_of_blocks_from_before_the_start_and_after_the_stop_are_harmless(jdk, leaky, workloads, tmp_path):
    steps = ["load", "leak 33554432 4096", "zip 100",
             # Something sampled first, so that each free below looks the live set up.
             "start", "leak 16777216 65536",
             # Blocks allocated before the start, freed under the hooks: lookups that find nothing.
             "zipclose", "sites",
             # The same, with the sampled blocks among them.
             "release", "sites",
             # Allocated under the hooks (some sampled), freed after the stop by the real free.
             "leak 16777216 65536", "zip 100", "stop", "release", "zipclose", "slots", "exit"]
    r = run_jvm(jdk, "SamplerHarm", steps, agent_opts=f"interval=200ms,log=quiet,mbean=on,{RATE}",
                jvm_args=jvm_args(jdk, leaky), classpath=workloads, timeout=90)
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    no_heap_abort(r.stdout + r.stderr)
    assert values(r.stdout, "released") == [str(48 * MiB), str(16 * MiB)], r.stdout
    assert values(r.stdout, "closed") == ["100", "100"], r.stdout
    answers = [l for l in r.stdout.splitlines() if l.startswith("mbean ")]
    assert [a.split(":")[0] for a in answers] == ["mbean native call sites on", "mbean native call sites off"], answers
    (slot, real), = slots(r.stdout)
    assert slot == real
    first, second = sites_parts(r.stdout)
    # The frees of blocks it never sampled took nothing off the estimate of the sampled leak...
    live = leak_live(first)
    assert first["live_bytes"] > 0 and abs(live - 16 * MiB) <= 0.25 * 16 * MiB, \
        (live, [s["label"] for s in real_sites(first)])
    # ...and the frees of the sampled blocks took them all off.
    assert leak_live(second) <= 0.05 * 16 * MiB, real_sites(second)


def test_a_library_loaded_after_the_start_is_interposed_at_the_next_sample_and_its_leak_found(
        leaky, workloads, tmp_path):
    jdk = 17
    # Samples far apart: the slot read right after the load comes before the next rescan.
    cmd = command(jdk, "SamplerHarm", ["stdin"], agent_opts=f"interval=1s,log=quiet,mbean=on,{RATE}",
                  jvm_args=jvm_args(jdk, leaky), classpath=workloads)
    with Background(cmd, stdin=True) as app:
        app.wait_for_stdout("ready")
        a = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), "sites", "start"], capture_output=True,
                           text=True, timeout=120)
        assert a.returncode == 0 and a.stdout.startswith("native call sites on"), (a.stdout, a.stderr)
        app.send("latecheck")
        late = fields(line_of("\n".join(app.read_until("ok latecheck")), "late "))
        if late["sampled_between"] == "false":
            assert late["slot"] == late["real"], "interposed before any sample followed the load"
        # A sample may have begun before the load and ended after it: wait for two.
        app.send("await")
        app.read_until("ok await")
        app.send("await")
        app.read_until("ok await")
        app.send("slots")
        (slot, real), = slots("\n".join(app.read_until("ok slots")))
        assert slot != real, "the library loaded after the start was not interposed at the next sample"
        app.send("leak 33554432 65536")
        leaked = int(values("\n".join(app.read_until("ok leak")), "leaked")[0])
        app.send("sites")
        part, = sites_parts("\n".join(app.read_until("ok sites")))
        app.send("exit")
        rc, out, err = app.finish(timeout=60)
    assert rc == 0, err[-3000:]
    no_heap_abort(out + err)
    assert leaked == 32 * MiB
    top = real_sites(part)[0]
    assert top["label"].startswith("libleaky.so leak_into_cache"), top
    assert abs(top["live_bytes"] - leaked) <= 0.25 * leaked, (top["live_bytes"], leaked)


@pytest.mark.parametrize("jdk", ALL)
def test_zlib_and_jni_work_under_the_sampler_are_exact_and_xcheck_jni_clean(jdk, leaky, workloads, tmp_path):
    # The harness runs every JVM with -Xcheck:jni and fails the test on any complaint.
    r = run_jvm(jdk, "SamplerHarm", ["load", "await", "work 4 1500", "sites", "exit"],
                agent_opts=f"interval=200ms,log=quiet,nativeSites=on,{RATE}",
                jvm_args=jvm_args(jdk, leaky), classpath=workloads, timeout=90)
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.jni_warnings() == []
    no_heap_abort(r.stdout + r.stderr)
    work = fields(line_of(r.stdout, "work "))
    assert work["wrong"] == 0 and work["rounds"] >= 4 * 5, work
    assert work["kept"] == work["released"] > 0, work
    part, = sites_parts(r.stdout)
    assert part["status"] == "on" and part["sampled"] > 0, part
    assert part["slots"] > 0 and part["libraries"] > 0, part



@pytest.mark.parametrize("jdk,mechanism", [(11, "VFORK"), (17, "FORK"), (25, None)])
def test_child_processes_start_and_run_under_the_hooks(jdk, mechanism, leaky, workloads, tmp_path):
    # libjava's child-process code runs in the child between fork (or vfork: the parent's memory
    # and thread-local state, shared) and exec, through libjava's interposed slots.
    args = [f"-Djdk.lang.Process.launchMechanism={mechanism}"] if mechanism else []
    r = run_jvm(jdk, "SamplerHarm", ["await", "spawn 4 50", "sites", "exit"],
                agent_opts="interval=100ms,log=quiet,nativeSites=on,nativeSitesRate=4k",
                jvm_args=jvm_args(jdk, leaky) + args, classpath=workloads, timeout=90)
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    no_heap_abort(r.stdout + r.stderr)
    assert fields(line_of(r.stdout, "spawn ")) == {"ok": 200, "wrong": 0}, r.stdout[-2000:]
    part, = sites_parts(r.stdout)
    assert part["status"] == "on" and part["sampled"] > 0, part

def build_race_libraries(out_dir, n):
    """n copies (distinct files, so n distinct objects for the loader) of a library whose load
    takes a while: fully RELRO and bound at load (-z now, -fno-plt: malloc's slot is written by
    the loader, then made read-only), with a thousand symbol relocations to resolve first. Its
    constructor mallocs and reallocs."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        prerequisite_missing("a C compiler (cc) to build the libraries loaded in a race")
    source = Path(out_dir) / "race.c"
    funcs = "\n".join(f"void race_f{i}(void) {{ }}" for i in range(1000))
    table = ",".join(f"race_f{i % 1000}" for i in range(2000))
    source.write_text("#include <stdlib.h>\n" + funcs + "\nvoid (* const race_table[])(void) = {" + table + "};\n"
                      "void *race_kept;\n__attribute__((constructor)) static void race_init(void) {\n"
                      "    race_kept = realloc(malloc(100), 200);\n}\n")
    first = Path(out_dir) / "race1.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-fno-plt", "-Wl,-z,now", "-Wl,-z,relro", "-o", str(first),
                    str(source)], check=True, capture_output=True, text=True, timeout=120)
    for i in range(2, n + 1):
        shutil.copyfile(first, Path(out_dir) / f"race{i}.so")
    return Path(out_dir).resolve()


@pytest.fixture(scope="module")
def load_race(tmp_path_factory, leaky, workloads):
    """One JVM loading 200 libraries on two threads while two others make the sampler look for
    new libraries without pause; its run, with the native_sites parts before the loads, after
    them, and after a stop and a fresh start (a walk of every library, none of them loading)."""
    n = 200
    lib_dir = build_race_libraries(tmp_path_factory.mktemp("race"), n)
    jdk = 17
    r = run_jvm(jdk, "SamplerHarm", ["start", "sites", f"loadmany {lib_dir} {n}", "sites", "stop",
                                        "start", "sites", "stop", "exit"],
                agent_opts="interval=100ms,log=quiet,mbean=on", jvm_args=jvm_args(jdk, leaky), classpath=workloads,
                timeout=120)
    return n, r


def test_libraries_loaded_while_the_sampler_looks_for_new_ones_never_crash_the_loader(load_race):
    # A rescan meets libraries the loader is still relocating: their slots are not written yet,
    # and their RELRO pages not yet read-only.
    n, r = load_race
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    no_heap_abort(r.stdout + r.stderr)
    assert fields(line_of(r.stdout, "loadmany "))["loaded"] == n
    assert fields(line_of(r.stdout, "loadmany "))["looks"] > 0
    answers = [l.split(":")[0] for l in r.stdout.splitlines() if l.startswith("mbean ")]
    assert answers == ["mbean native call sites on", "mbean native call sites off"] * 2, answers
    # Each library has slots to patch: a fresh start finds every one of them.
    before, _, fresh = sites_parts(r.stdout)
    assert fresh["libraries"] - before["libraries"] == n, (before["libraries"], fresh["libraries"])


def test_every_library_loaded_while_the_sampler_looks_for_new_ones_is_interposed(load_race):
    n, r = load_race
    assert r.rc == 0, r.stderr[-3000:]
    before, after, fresh = sites_parts(r.stdout)
    # The last look came after every load had returned: it should have patched what a fresh
    # start patches.
    assert after["libraries"] - before["libraries"] == n, (before["libraries"], after["libraries"], fresh["libraries"])
