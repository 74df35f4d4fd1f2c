"""Native call sites: the sampler interposes the allocation functions of the loaded libraries and
names the code behind what stays allocated. Checked against a JNI library the test builds with
cc (tests/native/leaky.c), whose leak the workload counts itself, against zlib's well-known
allocations behind an Inflater, and against the library's own GOT entry for malloc, which must
hold malloc again once the sampler stops.

The tests that need the sampler's natives in the core ask whether the built library has them
first: without them each is a skip naming what is missing (an error under CI=true)."""

import json
import re
import subprocess
import zipfile

import pytest

from harness import AGENT_JAR, PREFIX, Background, build_leaky_library, command, prerequisite_missing, run_jvm
from jdks import ALL, MAIN, java

MiB = 1 << 20
KiB = 1 << 10
DEFAULT_RATE = 512 * KiB
OPTS = "interval=500ms,log=info,nativeSites=on"
ZLIB = re.compile(r"^lib(z|zip)\.so")


@pytest.fixture(scope="session")
def leaky(tmp_path_factory):
    """libleaky.so, built once per session."""
    return build_leaky_library(tmp_path_factory.mktemp("leaky"))


@pytest.fixture(scope="session")
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


def sites_printed(stdout):
    return {l.split()[1]: l.split()[2] for l in stdout.splitlines() if l.startswith("site ")}


def slots(stdout_or_lines):
    text = stdout_or_lines if isinstance(stdout_or_lines, str) else "\n".join(stdout_or_lines)
    m = re.findall(r"malloc_slot=([0-9a-f]+) real_malloc=([0-9a-f]+)", text)
    assert m, text
    return [(int(a, 16), int(b, 16)) for a, b in m]


def native_part(sample):
    part = sample.get("native_sites")
    assert isinstance(part, dict), sorted(sample)
    return part


def real_sites(part):
    return [s for s in part.get("sites", []) if "label" in s]


def test_the_workload_counts_its_own_leak_and_reads_the_got_without_the_agent(leaky, workloads):
    # The truths the other tests compare with: the library's own count of what it keeps, and
    # its GOT entry for malloc, which without interposition is where malloc resolves to.
    r = run_jvm(17, "NativeLeak", ["slots", "leak 8388608 65536", "zip 20", "slots", "release", "leak 65536 4096"],
                jvm_args=jvm_args(17, leaky), classpath=workloads, timeout=60)
    assert r.rc == 0, r.stdout + r.stderr
    assert values(r.stdout, "leaked") == [str(8 * MiB), str(64 * KiB)], r.stdout
    assert values(r.stdout, "released") == [str(8 * MiB)], r.stdout
    assert values(r.stdout, "kept") == ["20"], r.stdout
    before, after = slots(r.stdout)
    assert before[0] == before[1] == after[0] == after[1] != 0, (before, after)
    printed = sites_printed(r.stdout)
    assert re.fullmatch(r"LeakyCache\.put\(NativeLeak\.java:\d+\)", printed["leak"]), printed
    assert re.fullmatch(r"ZipHold\.open\(NativeLeak\.java:\d+\)", printed["zip"]), printed
    assert r.jni_warnings() == [], r.stdout


def test_a_bad_native_sites_option_is_one_line_and_its_default(leaky, workloads):
    r = run_jvm(17, "NativeLeak", ["await", "ping"], agent_opts="log=info,nativeSites=maybe,nativeSitesRate=2g",
                jvm_args=jvm_args(17, leaky), classpath=workloads, timeout=60)
    assert r.rc == 0 and "pong" in r.stdout, r.stdout + r.stderr
    lines = r.agent_lines()
    assert [l for l in lines if "nativeSites" in l] == [
        f"{PREFIX} nativeSites='maybe' is not valid; choose on or off; keeping off",
        f"{PREFIX} nativeSitesRate='2g' is not a size from 4k to 1g (bytes or <n>k, <n>m, <n>g); keeping 512k"], lines
    # Off by default: no sampler line at all.
    assert not [l for l in lines if "native call sites" in l], lines


def report_text(workloads, sample):
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck"], input=json.dumps(sample),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split("metrics\n")[0].splitlines()


def part_lines(lines):
    i = next(i for i, l in enumerate(lines) if l.startswith("Native call sites"))
    end = i + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[i:end]


def test_the_text_report_gives_the_native_sites_part(workloads):
    base = {"schema": 1, "kind": "sample", "seq": 3, "pid": 7, "time": "2026-12-04T00:00:00.000Z"}
    on = {"status": "on", "sample_bytes": 524288, "since_ms": 1, "libraries": 14, "slots": 37, "sampled": 1234,
          "dropped": 2, "java_frames": True, "live_bytes": 310 * MiB, "growth_bytes": 5 * MiB,
          "sites": [{"id": 3, "label": "libleaky.so leak_into_cache <- LeakyCache.put",
                     "native": [{"library": "libleaky.so", "symbol": "leak_into_cache", "offset": 42}],
                     "java": ["LeakyCache.put(NativeLeak.java:12)", "NativeLeak.main(NativeLeak.java:3)"],
                     "thread": "cache-filler", "live_bytes": 300 * MiB, "growth_bytes": 5 * MiB,
                     "live_samples": 600, "allocated_bytes": 900 * MiB}]
          + [{"id": 10 + i, "label": f"libevil.so f{i}\n[CRITICAL] forged\u001b[2J", "native": [],
              "thread": "w\u202e", "live_bytes": MiB - 1 - i, "growth_bytes": -KiB} for i in range(5)]
          + [{"site": "other", "sites": 12, "live_bytes": 4 * KiB, "growth_bytes": 0}]}
    lines = part_lines(report_text(workloads, {**base, "native_sites": on}))
    assert lines[0] == "Native call sites on: one sample per 512 KiB allocated on average; about 310.0 MiB live," \
                       " +5.0 MiB since the baseline", lines
    assert lines[1] == "  1234 samples through 37 entries of 14 libraries; 2 dropped (the sampler was full or busy)"
    assert lines[2] == '     300.0 MiB live,    +5.0 MiB  libleaky.so leak_into_cache <- LeakyCache.put, thread "cache-filler"'
    assert lines[3] == "        at LeakyCache.put(NativeLeak.java:12)"
    # Four more of the five, escaped to one line each; the fifth and "other" summed.
    assert lines[4] == ('    1024.0 KiB live,    -1.0 KiB  libevil.so f0\\u000a[CRITICAL] forged\\u001b[2J, '
                        'thread "w\\u202e"'), lines[4]
    assert len(lines) == 9 and lines[8] == f"    and 13 other sites: {(MiB - 5 + 4 * KiB) / MiB:.1f} MiB live, -1.0 KiB"
    # No Java frames: the reason in one line; no site live yet.
    bare = {**on, "java_frames": False, "java_problem": "AsyncGetCallTrace not found", "sites": [], "dropped": 0}
    lines = part_lines(report_text(workloads, {**base, "native_sites": bare}))
    assert lines[1:] == ["  1234 samples through 37 entries of 14 libraries", "  no Java frames: AsyncGetCallTrace not found",
                         "  no sampled allocation is live"], lines
    assert part_lines(report_text(workloads, {**base, "native_sites": {"status": "off"}})) == ["Native call sites off"]
    lines = report_text(workloads, {**base, "native_sites": {"status": "unavailable", "problem": "musl\nfake"}})
    assert part_lines(lines) == ["Native call sites unavailable: musl\\u000afake"]
    # A sample without the part (an older core) says nothing about it.
    assert not [l for l in report_text(workloads, base) if "Native call sites" in l]


def leak_run(jdk, leaky, workloads, tmp_path, steps, extra=""):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeLeak", steps, agent_opts=f"{OPTS},report={report}{extra}", jvm_args=jvm_args(jdk, leaky),
                classpath=workloads, report=report, timeout=120, heap="64m")
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.jni_warnings() == [], r.jni_warnings()
    assert r.samples, r.stderr
    return r


@pytest.mark.parametrize("jdk", ALL)
def test_a_native_leak_is_named_by_its_function_and_java_method_with_its_live_bytes(
        jdk, leaky, workloads, tmp_path, sampler_built):
    r = leak_run(jdk, leaky, workloads, tmp_path, ["await", "leak 134217728 65536", "slots", "sleep 1500"])
    assert f"{PREFIX} native call sites on: one sample per 512 KiB" in r.agent_lines(), r.agent_lines()
    leaked = int(values(r.stdout, "leaked")[0])
    assert leaked == 128 * MiB
    put = sites_printed(r.stdout)["leak"]
    # The library was loaded before the sampler's first pass or interposed at the next one.
    (slot, real), = slots(r.stdout)
    assert slot != real, "libleaky.so's calls to malloc were not interposed"
    part = native_part(r.samples[-1])
    assert part["status"] == "on" and part["sample_bytes"] == DEFAULT_RATE, part
    top = real_sites(part)[0]
    assert top["native"][0]["library"] == "libleaky.so" and top["native"][0]["symbol"] == "leak_into_cache", top
    assert top["label"] == "libleaky.so leak_into_cache <- LeakyCache.put", top
    assert put in top["java"], (put, top)
    assert top["thread"] == "cache-filler", top
    # Sampled by bytes and weighted back: within 25% of what the library says it keeps.
    assert abs(top["live_bytes"] - leaked) <= 0.25 * leaked, (top["live_bytes"], leaked)
    assert abs(top["growth_bytes"] - leaked) <= 0.25 * leaked, (top["growth_bytes"], leaked)
    assert part["live_bytes"] >= top["live_bytes"]
    # The churn freed what it allocated: its site, if sampled at all, holds next to nothing.
    churn = [s for s in real_sites(part) if any(f.get("symbol") == "churn_buffers" for f in s["native"][:1])]
    assert all(s["live_bytes"] <= 0.05 * leaked for s in churn), churn


@pytest.mark.parametrize("jdk", MAIN)
def test_zlib_behind_an_inflater_shows_under_libz_with_the_java_frames_of_the_stream(
        jdk, leaky, workloads, tmp_path, sampler_built):
    n = 1500
    r = leak_run(jdk, leaky, workloads, tmp_path, ["await", f"zip {n}", "sleep 1500"])
    opened = sites_printed(r.stdout)["zip"]
    part = native_part(r.samples[-1])
    zlib = [s for s in real_sites(part) if s["native"] and ZLIB.match(s["native"][0]["library"])]
    assert zlib, [s["label"] for s in real_sites(part)]
    # The streams' zlib memory, reached through the JDK's Inflater from ZipHold.open; the JVM's
    # own reading of jars may hold zlib memory too, under other frames.
    ours = [s for s in zlib if any(f.startswith("ZipHold.open(") for f in s.get("java", []))]
    assert ours, [(s["label"], s.get("java")) for s in zlib]
    for s in ours:
        assert any(f.startswith("java.util.zip.Inflater.") for f in s["java"]), s
    assert any(opened in s["java"] for s in ours), (opened, ours)
    # Each kept stream holds zlib's 32 KiB window (wbits 15) and its inflate state, a few KiB.
    live = sum(s["live_bytes"] for s in ours)
    assert 0.6 * n * 32 * KiB <= live <= 1.4 * n * 48 * KiB, (live, n)


@pytest.mark.parametrize("jdk", MAIN)
def test_a_rate_option_is_the_sampling_rate(jdk, leaky, workloads, tmp_path, sampler_built):
    r = leak_run(jdk, leaky, workloads, tmp_path, ["await", "leak 16777216 16384", "sleep 1200"],
                 extra=",nativeSitesRate=64k")
    assert f"{PREFIX} native call sites on: one sample per 64 KiB" in r.agent_lines(), r.agent_lines()
    part = native_part(r.samples[-1])
    assert part["sample_bytes"] == 64 * KiB
    top = real_sites(part)[0]
    leaked = int(values(r.stdout, "leaked")[0])
    assert top["native"][0]["symbol"] == "leak_into_cache" and abs(top["live_bytes"] - leaked) <= 0.25 * leaked


def attach(jdk, pid, *args):
    return subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(pid), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("jdk", MAIN)
def test_start_and_stop_by_attach_leave_the_process_as_it_was(jdk, leaky, workloads, tmp_path, sampler_built):
    cmd = command(jdk, "NativeLeak", ["stdin"], jvm_args=jvm_args(jdk, leaky), classpath=workloads)
    with Background(cmd, stdin=True) as app:
        app.wait_for_stdout("ready")
        app.send("slots")
        (untouched, real), = slots(app.read_until("ok slots"))
        assert untouched == real
        a = attach(jdk, app.pid, "sites", "start", "interval=500ms")
        assert a.returncode == 0, a.stderr
        assert a.stdout == "native call sites on: one sample per 512 KiB\n", a.stdout
        app.send("leak 67108864 65536")
        leaked = int(values("\n".join(app.read_until("ok leak")), "leaked")[0])
        app.send("slots")
        (slot, _), = slots(app.read_until("ok slots"))
        assert slot != real, "libleaky.so's calls to malloc were not interposed"
        rep = attach(jdk, app.pid, "sites", "report")
        assert rep.returncode == 0, rep.stderr
        text = rep.stdout.splitlines()
        assert text[0].startswith("Native call sites on: one sample per 512 KiB"), text
        assert any("libleaky.so leak_into_cache <- LeakyCache.put," in l for l in text), text
        assert any(l.strip().startswith("at LeakyCache.put(") for l in text), text
        # The sample's part says the same.
        j = attach(jdk, app.pid, "sample")
        top = real_sites(native_part(json.loads(j.stdout)))[0]
        assert top["native"][0]["symbol"] == "leak_into_cache" and abs(top["live_bytes"] - leaked) <= 0.25 * leaked
        # Stop: every entry restored, this library's included.
        s = attach(jdk, app.pid, "sites", "stop")
        assert s.returncode == 0 and s.stdout.startswith("native call sites off"), (s.stdout, s.stderr)
        app.send("slots")
        assert slots(app.read_until("ok slots")) == [(real, real)]
        again = attach(jdk, app.pid, "sites", "stop")
        assert again.returncode == 1 and again.stdout == "", again.stdout
        assert len(again.stderr.splitlines()) == 1 and "native call sites not stopped: " in again.stderr, again.stderr
        off = attach(jdk, app.pid, "sites", "report")
        assert off.returncode == 0 and off.stdout.splitlines() == ["Native call sites off"], off.stdout
        assert native_part(json.loads(attach(jdk, app.pid, "sample").stdout)) == {"status": "off"}
        # The application goes on as before: memory allocated under the sampler frees, new
        # allocations and zlib work, and its counts are exact.
        app.send("release")
        assert values("\n".join(app.read_until("ok release")), "released") == [str(leaked)]
        app.send("leak 8388608 65536")
        assert values("\n".join(app.read_until("ok leak")), "leaked") == [str(8 * MiB)]
        app.send("zip 50")
        app.read_until("ok zip")
        # Started again, it samples again; stopped again, malloc is malloc.
        assert attach(jdk, app.pid, "sites", "start").returncode == 0
        app.send("leak 8388608 65536")
        app.read_until("ok leak")
        assert attach(jdk, app.pid, "sites", "stop").returncode == 0
        app.send("slots")
        assert slots(app.read_until("ok slots")) == [(real, real)]
        app.send("exit")
        rc, out, err = app.finish()
    assert rc == 0, err
    assert not [l for l in err.splitlines() if "FATAL" in l or "SIGSEGV" in l], err


@pytest.mark.parametrize("jdk", MAIN)
def test_the_mbean_answers_each_native_sites_operation_in_one_line(jdk, leaky, workloads, tmp_path):
    # Runs with or without the sampler in the core: either way each answer is one line or the
    # report text, and none throws into the caller.
    cmd = command(jdk, "NativeLeak", ["stdin"], agent_opts="interval=500ms,log=quiet,mbean=on",
                  jvm_args=jvm_args(jdk, leaky), classpath=workloads)
    with Background(cmd, stdin=True) as app:
        app.wait_for_stdout("ready")
        report = attach(jdk, app.pid, "sites", "report")
        assert report.returncode == 0, report.stderr
        assert report.stdout.startswith("Native call sites "), report.stdout
        stop = attach(jdk, app.pid, "sites", "stop")
        assert stop.returncode == 1 and stop.stdout == "", stop.stdout
        assert stop.stderr.startswith("offheap-doctor: native call sites not stopped: ") \
            and len(stop.stderr.splitlines()) == 1, stop.stderr
        bad = attach(jdk, app.pid, "sites", "pause")
        assert bad.returncode == 2 and bad.stderr == "offheap-doctor: sites needs start, stop or report\n", bad.stderr
        app.send("ping")
        app.read_until("pong")
        app.send("exit")
        rc, _, err = app.finish()
    assert rc == 0, err


def evidence(f):
    return {e["key"]: e for e in f["evidence"]}


@pytest.mark.parametrize("jdk", [17, 25])
def test_native_growth_outside_nmt_names_the_leaking_site_with_its_live_bytes_and_rate(
        jdk, leaky, workloads, tmp_path, sampler_built):
    # 192 MiB kept by the JNI library over about 4 s, under NMT: NMT sees none of it, so the
    # finding must say who holds it, and how fast that grows.
    steps = ["await"] + ["leak 25165824 65536", "sleep 500"] * 8 + ["sleep 1000"]
    report = tmp_path / "r.jsonl"
    opts = "interval=200ms,log=info,nativeSites=on,threshold.rateMinSpan=2s,threshold.rateWindow=5s"
    r = run_jvm(jdk, "NativeLeak", steps, agent_opts=f"{opts},report={report}",
                jvm_args=jvm_args(jdk, leaky) + ["-XX:NativeMemoryTracking=summary"], classpath=workloads,
                report=report, timeout=120, heap="64m")
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    leaked = int(values(r.stdout, "leaked")[-1])  # the library's running total
    assert leaked == 192 * MiB
    last = r.samples[-1]
    f = next((x for x in last["findings"] if x["id"] == "native-outside-nmt"), None)
    assert f, [x["id"] for x in last["findings"]]
    ev = evidence(f)
    label = "libleaky.so leak_into_cache <- LeakyCache.put"
    assert ev["site_1"]["value"].startswith(label + ": "), ev["site_1"]
    # The site's live bytes against the library's own count, within the sampler's precision.
    assert abs(ev["site_1_live"]["raw"] - leaked) <= 0.25 * leaked, (ev["site_1_live"], leaked)
    assert ev["site_1_thread"]["value"] == "cache-filler", ev["site_1_thread"]
    # Leaked at about 40 MiB/s: the site's rate is read over the finding's 5 s window, which
    # includes the quiet end; it must be a growth rate in MiB per second.
    m = re.search(r"live, \+(\d+(?:\.\d+)?) MiB/s$", ev["site_1"]["value"])
    assert m and 4 <= float(m.group(1)) <= 64, ev["site_1"]
    assert f["remedy"].startswith(f"The malloc call site that grows most: {label}, "), f["remedy"]
    assert "LeakyCache.put(NativeLeak.java:" in f["remedy"], f["remedy"]
    assert r.jni_warnings() == [], r.jni_warnings()
