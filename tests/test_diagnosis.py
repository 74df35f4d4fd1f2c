"""Diagnosis end to end: findings raised from real behaviour, with evidence and remedies, logged
once; growth measured from a baseline the operator can move; the timeline page of a report."""

import os
import re
import subprocess
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from harness import (AGENT_JAR, Background, command, prerequisite_missing, read_report, run_jvm,
                     wait_for_samples)
from jdks import MAIN, java

MiB = 1 << 20


def finding(sample, fid):
    return next((f for f in sample["findings"] if f["id"] == fid), None)


@pytest.mark.parametrize("jdk", MAIN)
def test_unended_deflaters_raise_zip_unclosed_once_with_evidence(jdk, workloads, tmp_path):
    # 400 Deflaters made in a burst and kept: a population that holds steady afterwards, info
    # (tests/test_pool_vs_leak.py has the leak that keeps growing, the warning).
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=400", "await=+3"],
                agent_opts=f"interval=200ms,zipInterval=100ms,report={report}", classpath=workloads, report=report,
                heap="128m")
    assert r.rc == 0, r.stderr
    first = r.samples[0]
    assert finding(first, "zip-unclosed") is None
    last = r.samples[-1]
    f = finding(last, "zip-unclosed")
    assert f and f["severity"] == "info", f
    ev = {e["key"]: e for e in f["evidence"]}
    assert ev["deflaters_alive"]["raw"] >= 400
    # The census's constants (a used Deflater's 262 KiB) for the count, but never more in the
    # finding than the resident memory outside the heap (RSS less the heap's resident part).
    by_constants = ev.get("estimated_native_by_constants", ev["estimated_native"])["raw"]
    assert by_constants >= 400 * 262 * 1024
    outside_heap = last["totals"]["rss"] - last["breakdown"]["classes"]["java_heap"]["rss"]
    assert ev["estimated_native"]["raw"] == min(by_constants, outside_heap), (ev, outside_heap)
    assert f["title"].startswith(f"{ev['deflaters_alive']['raw'] + ev['inflaters_alive']['raw']:.0f} live Inflaters/Deflaters")
    assert "end()" in f["remedy"]
    raised = [s for s in r.samples if "zip-unclosed" in s["findings_new"]]
    assert len(raised) == 1 and raised[0]["epoch_ms"] == f["since_ms"]
    assert not any(s["findings_changed"] for s in r.samples)
    logged = [l for l in r.agent_lines() if "zip-unclosed" in l]
    assert len(logged) == 1 and logged[0].startswith("[offheap-doctor] [info] zip-unclosed: "), logged


@pytest.mark.parametrize("jdk", MAIN)
def test_zlib_growth_under_nmt_is_native_outside_nmt(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2", "deflaters=2000", "await=+3"],
                agent_opts=f"interval=200ms,report={report}", jvm_args=["-XX:NativeMemoryTracking=summary"],
                classpath=workloads, report=report, heap="128m", timeout=90)
    assert r.rc == 0, r.stderr
    last = r.samples[-1]
    assert last["growth"]["series"]["rss"]["delta"] >= 128 * MiB
    f = finding(last, "native-outside-nmt")
    assert f, [x["id"] for x in last["findings"]]
    assert finding(last, "nmt-off") is None
    assert last["nmt"]["growth"]["coverage"] < 0.3


@pytest.mark.parametrize("jdk", MAIN)
def test_without_nmt_the_finding_says_how_to_turn_it_on(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2"], agent_opts=f"interval=200ms,report={report}",
                classpath=workloads, report=report)
    f = finding(r.samples[-1], "nmt-off")
    assert f and f["severity"] == "info" and "-XX:NativeMemoryTracking=summary" in f["remedy"]


@pytest.mark.parametrize("jdk", MAIN)
def test_baseline_moves_when_the_operator_sets_it(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "Baseline", [], agent_opts=f"interval=200ms,report={report}", classpath=workloads,
                report=report, heap="128m")
    assert r.rc == 0, r.stderr
    marks = {l.split()[0]: int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith(("grown", "reset"))}
    before = [s for s in r.samples if s["epoch_ms"] <= marks["reset"]]
    after = [s for s in r.samples if s["epoch_ms"] > marks["reset"]]
    assert before[-1]["growth"]["series"]["rss"]["delta"] >= 60 * MiB
    # The latest sample at the time of the reset becomes the baseline.
    assert after[-1]["growth"]["baseline_ms"] == before[-1]["epoch_ms"]
    assert abs(after[-1]["growth"]["series"]["rss"]["delta"]) < 30 * MiB


@pytest.mark.parametrize("jdk", MAIN)
def test_timeline_page_of_a_report_is_self_contained(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=300", "await=+3"],
                agent_opts=f"interval=200ms,zipInterval=100ms,report={report}", classpath=workloads, report=report)
    assert r.rc == 0
    with report.open("a") as f:
        f.write("not json\n")
    out = tmp_path / "page.html"
    p = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), "html", str(report), "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # The jar's Enable-Native-Access attribute covers `java -jar`: no JDK warning there.
    assert "WARNING" not in p.stderr, p.stderr
    assert f"{len(r.samples)} samples -> {out}" in p.stdout
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in html
    assert "src=\"http" not in html and "href=\"http" not in html
    assert "zip-unclosed" in html and "Skipped 1 line" in html
    missing = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), "html", str(tmp_path / "none.jsonl")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "none.jsonl" in missing.stderr and len(missing.stderr.splitlines()) <= 5


# --- Scenarios: one workload per finding, the evidence checked against what the workload did ---

KiB = 1 << 10
NMT = "-XX:NativeMemoryTracking=summary"
# A rate needs samples spanning rateMinSpan (1 min by default) inside rateWindow (30 min). The
# scenarios grow for a few seconds, so they lower both; the rule thresholds stay at their defaults
# unless a test says otherwise.
FAST_RATE = "threshold.rateMinSpan=2s,threshold.rateWindow=20s"


def evidence(f):
    return {e["key"]: e for e in f["evidence"]}


def phase_ms(stdout, name):
    return next(int(l.split()[1]) for l in stdout.splitlines() if l.startswith(name + " "))


@pytest.mark.parametrize("jdk", MAIN)
def test_zlib_burst_then_freed_is_malloc_retention(jdk, workloads, tmp_path):
    # 32 threads each make 40 level-9 Deflaters (about 262 KiB of zlib state each: 328 MiB in all,
    # not all alive at once), end them and exit: glibc keeps a good part of it in the arenas
    # (measured here: 60-136 MiB, glibc gives back some arena tops by itself). That is under the
    # default retentionMin of 256m, so this scenario lowers it to 32m; retentionMinRss stays 10%.
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2", "burst=32", "gc", "await=+4"],
                agent_opts=f"interval=250ms,report={report},threshold.retentionMin=32m", classpath=workloads,
                report=report, heap="128m", timeout=90)
    assert r.rc == 0, r.stderr
    first, last = r.samples[0], r.samples[-1]
    assert finding(first, "malloc-retention") is None and finding(first, "arena-sprawl") is None
    f = finding(last, "malloc-retention")
    assert f and f["severity"] in ("warning", "critical"), [x["id"] for x in last["findings"]]
    ev, m = evidence(f), last["malloc"]
    burst = 32 * 40 * 262 * KiB
    # The finding speaks of the resident part of glibc's free memory; the upper bound is beside it.
    assert ev["retained"]["raw"] == m["retained_resident"] <= m["retained_max"] == ev["retained_max"]["raw"]
    assert 32 * MiB <= m["retained"] <= first["malloc"]["retained"] + burst, (m["retained"], burst)
    assert m["retained"] - first["malloc"]["retained"] >= 24 * MiB
    # No trim ran: the freed burst is still resident, nearly all of it.
    assert m["retained_resident"] >= 0.75 * m["retained_max"], m
    assert ev["retained_share_of_rss"]["raw"] == pytest.approx(m["retained_resident"] / last["totals"]["rss"], rel=1e-6)
    assert ev["trimmable_now"]["raw"] == m["trimmable_resident"] and ev["malloc_in_use"]["raw"] == m["in_use"]
    assert ev["arenas"]["raw"] == m["arena_count"]
    assert "trim=auto" in f["remedy"] and "LD_PRELOAD=" in f["remedy"]
    # The burst spread over arenas: past 8 of them holding at least 32 MiB free (the default
    # arenaSprawlRetainedMin), arena-sprawl says so, with the same count. Before the burst the
    # JVM's own arenas hold a few MiB: no finding.
    sprawl = finding(last, "arena-sprawl")
    if m["arena_count"] >= 9:
        assert sprawl and evidence(sprawl)["arenas"]["raw"] == m["arena_count"]
        # Many arenas that hold retentionMin or more free: a warning, no longer information.
        assert sprawl["severity"] == "warning" and evidence(sprawl)["retained"]["raw"] == m["retained_resident"]
        assert "MALLOC_ARENA_MAX=2" in sprawl["remedy"]
    else:
        assert sprawl is None
    assert any("malloc-retention" in l for l in r.agent_lines()), r.agent_lines()


@pytest.mark.parametrize("jdk", MAIN)
def test_direct_buffer_growth_is_direct_buffers_on_default_thresholds(jdk, workloads, tmp_path):
    # Default thresholds: 272 MiB of touched direct buffers is over directMin (256m) and over 25%
    # of RSS.
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2", "direct=272", "await=+3"],
                agent_opts=f"interval=250ms,report={report}", jvm_args=["-XX:MaxDirectMemorySize=320m"],
                classpath=workloads, report=report, timeout=90)
    assert r.rc == 0, r.stderr
    first, last = r.samples[0], r.samples[-1]
    assert finding(first, "direct-buffers") is None
    f = finding(last, "direct-buffers")
    assert f, [x["id"] for x in last["findings"]]
    ev = evidence(f)
    # The workload's 272 buffers of 1 MiB on top of what the JDK had at the baseline.
    before = next(p for p in first["jvm"]["buffer_pools"] if p["name"] == "direct")
    assert 272 * MiB <= ev["direct_growth"]["raw"] <= 273 * MiB, ev["direct_growth"]
    assert ev["direct_used"]["raw"] == before["used"] + ev["direct_growth"]["raw"], (ev, before)
    assert 272 + before["count"] <= ev["direct_count"]["raw"] <= 272 + before["count"] + 4
    assert ev["share_of_rss"]["raw"] == pytest.approx(ev["direct_used"]["raw"] / last["totals"]["rss"], rel=1e-6)
    # 1.5 times what is used, rounded up to 64 MiB.
    used = int(ev["direct_used"]["raw"])
    cap = -(-(used + used // 2) // (64 * MiB)) * 64
    assert cap == 448 and f"-XX:MaxDirectMemorySize={cap}m" in f["remedy"], f["remedy"]


def thread_leak(jdk, workloads, tmp_path, extra=""):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2", "threadleak=120", "await=+2"],
                agent_opts=f"interval=250ms,report={report},{FAST_RATE}{extra}", classpath=workloads,
                report=report, timeout=90)
    assert r.rc == 0, r.stderr
    return r


@pytest.mark.parametrize("jdk", MAIN)
def test_a_thread_leak_is_thread_growth(jdk, workloads, tmp_path):
    # 120 threads started one every 50 ms and never ended; threadGrowthMin stays at 100.
    r = thread_leak(jdk, workloads, tmp_path)
    last = r.samples[-1]
    f = finding(last, "thread-growth")
    assert f, [x["id"] for x in last["findings"]]
    ev, s = evidence(f), last["growth"]["series"]["threads.java"]
    # The agent may start a thread or two of its own after the baseline.
    assert 120 <= s["delta"] <= 126, s
    assert ev["java_threads"]["raw"] == s["latest"] and ev["java_threads"]["value"] == f"{s['baseline']} -> {s['latest']}"
    # 20 threads a second at most (72000/h); slower when the machine is busy.
    assert 72000 * 0.2 <= ev["thread_rate"]["raw"] <= 72000 * 1.5, ev["thread_rate"]
    assert ev["os_threads"]["raw"] >= s["latest"]
    assert "Thread.print" in f["remedy"]


@pytest.mark.parametrize("jdk", MAIN)
def test_a_raised_threshold_silences_the_thread_leak(jdk, workloads, tmp_path):
    # The same leak as above with threshold.threadGrowthMin=200: 120 threads are under it.
    r = thread_leak(jdk, workloads, tmp_path, ",threshold.threadGrowthMin=200")
    assert r.samples[-1]["growth"]["series"]["threads.java"]["delta"] >= 120
    assert all(finding(s, "thread-growth") is None for s in r.samples)
    assert not [l for l in r.agent_lines() if "threshold." in l], r.agent_lines()


@pytest.mark.parametrize("jdk", MAIN)
def test_a_class_loader_leak_is_metaspace_growth(jdk, workloads, tmp_path):
    # 64 classes generated as bytes at run time, 8 methods of 32000 bytes of bytecode each (16 MiB
    # that metaspace must hold), one every 50 ms, each in its own class loader kept reachable.
    # Metaspace is read from NMT, so NMT is on; metaspaceGrowthMin is lowered from 64m to 8m.
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2", "classes=64", "await=+3"],
                agent_opts=f"interval=250ms,report={report},{FAST_RATE},threshold.metaspaceGrowthMin=8m",
                jvm_args=[NMT], classpath=workloads, report=report, heap="128m", timeout=90)
    assert r.rc == 0, r.stderr
    defined = phase_ms(r.stdout, "classbytes")
    assert defined == 64 * 8 * 32000
    last = r.samples[-1]
    f = finding(last, "metaspace-growth")
    assert f, ([x["id"] for x in last["findings"]], last["growth"]["series"].get("metaspace"))
    ev = evidence(f)
    grown = ev["metaspace_growth"]["raw"]
    assert defined * 0.9 <= grown <= defined * 1.5 + 8 * MiB, (grown, defined)
    assert ev["metaspace"]["raw"] == last["growth"]["series"]["metaspace"]["latest"]
    assert ev["metaspace_rate"]["raw"] >= 16 * MiB
    assert "VM.classloader_stats" in f["remedy"] and "-XX:MaxMetaspaceSize=" in f["remedy"]


@pytest.mark.parametrize("jdk", MAIN)
def test_a_steady_service_raises_no_finding(jdk, workloads, tmp_path):
    # 60 s of requests (heap garbage, closed GZIP streams, ended Deflaters, dropped direct
    # buffers) on 4 fixed threads. NMT is on (without it nmt-off, an info finding, is raised by
    # design), and the thresholds the scenarios above lower are lowered here too, so none of those
    # settings fires on the noise of a steady process either.
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "SteadyService", ["60"],
                agent_opts=f"interval=250ms,zipInterval=1s,report={report},{FAST_RATE},"
                           "threshold.retentionMin=32m,threshold.metaspaceGrowthMin=8m",
                jvm_args=[NMT], classpath=workloads, report=report, heap="128m", timeout=150)
    assert r.rc == 0, r.stderr
    assert int(next(l for l in r.stdout.splitlines() if l.startswith("requests")).split()[1]) > 1000
    assert len(r.samples) >= 150, len(r.samples)
    raised = {(s["seq"], f["id"], f["title"]) for s in r.samples for f in s["findings"]}
    assert not raised, sorted(raised)[:5]
    assert not any(s["findings_new"] for s in r.samples)
    # The rates were computed, so the rules had what they needed to fire.
    assert r.samples[-1]["growth"]["series"]["threads.java"]["rate_per_hour"] is not None


def readme_thresholds():
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("### Thresholds", 1)[1].split("\n## ", 1)[0]
    return {m[0]: m[1] for m in re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, re.M)}


def test_every_documented_threshold_is_accepted_and_bad_ones_say_so(workloads, tmp_path):
    table = readme_thresholds()
    assert len(table) == 30 and table["threadGrowthMin"] == "100"
    report = tmp_path / "r.jsonl"
    opts = ",".join(f"threshold.{k}={v}" for k, v in table.items())
    r = run_jvm(17, "NativeGrowth", ["await=2"], agent_opts=f"interval=200ms,report={report},{opts}",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    assert not [l for l in r.agent_lines() if "threshold." in l or "refused" in l], r.agent_lines()
    assert r.samples[-1]["totals"]["rss"] > 0
    bad = "threshold.nope=1,threshold.threadGrowthMin=lots,threshold.retentionMinRss=120%,threshold.rateWindow=10s"
    r = run_jvm(17, "NativeGrowth", ["await=2"], agent_opts=f"interval=200ms,report={report},{bad}",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    lines = [l for l in r.agent_lines() if "threshold." in l]
    assert len(lines) == 4, lines
    assert any("unknown threshold 'threshold.nope'; valid names: [retentionMin, " in l for l in lines), lines
    assert any("threshold.threadGrowthMin='lots' is not a whole number; keeping the default" in l for l in lines)
    assert any("threshold.retentionMinRss='120%' is not a percentage" in l for l in lines)
    assert any("threshold.rateWindow (10s) is shorter than threshold.rateMinSpan (1m)" in l for l in lines)
    assert not [l for l in r.agent_lines() if "refused" in l]


# --- A memory cgroup with a limit: oom-risk with the time left ---

def _cgroup_mounts():
    """(version, mount point, mount root, super options) of each cgroup mount of this process."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if rest and rest[0] in ("cgroup", "cgroup2"):
            out.append((1 if rest[0] == "cgroup" else 2, fields[4], fields[3], rest[2] if len(rest) > 2 else ""))
    return out


def make_memory_cgroup(name, limit):
    """Creates a child of this process's memory cgroup with `limit`: (dir, version), or a reason
    why it cannot be made here. v1 first, then v2 (whose memory controller must be enabled in
    the parent's subtree_control)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        own[hid if hid == "0" else ctrls] = path
    reasons = []
    for version, mount, root, opts in _cgroup_mounts():
        if version == 1:
            if "memory" not in opts.split(","):
                continue
            path = next((p for c, p in own.items() if "memory" in c.split(",")), None)
            limit_file = "memory.limit_in_bytes"
        else:
            path = own.get("0")
            limit_file = "memory.max"
            controllers = Path(mount, "cgroup.controllers")
            if not controllers.exists() or "memory" not in controllers.read_text().split():
                reasons.append(f"the cgroup v2 mount {mount} has no memory controller")
                continue
        if path is None:
            continue
        rel = path[len(root):] if root != "/" and path.startswith(root) else path
        parent = Path(mount) / rel.lstrip("/")
        child = parent / name
        try:
            if version == 2:
                sub = parent / "cgroup.subtree_control"
                if "memory" not in sub.read_text().split():
                    sub.write_text("+memory")
            child.mkdir()
            try:
                (child / limit_file).write_text(str(limit))
            except OSError:
                child.rmdir()
                raise
        except OSError as e:
            reasons.append(f"cannot make a v{version} memory cgroup under {parent}: {e}")
            continue
        return child, version
    return None, "; ".join(reasons) or "no memory cgroup hierarchy is mounted"


def remove_cgroup(d):
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    d.rmdir()


@pytest.mark.parametrize("jdk", MAIN)
def test_growth_under_a_memory_limit_is_oom_risk_with_the_time_left(jdk, workloads, tmp_path):
    limit = 512 * MiB
    group, version = make_memory_cgroup(f"offheap-doctor-test-{os.getpid()}-{jdk}", limit)
    if group is None:
        prerequisite_missing(f"a memory cgroup with a limit (v1 or v2): {version}")
    report = tmp_path / "r.jsonl"
    try:
        # 1 MiB of touched direct memory every 100 ms (at most 10 MiB/s) for 15 s, from about
        # 50-200 MiB of usage towards the 512 MiB limit: critical, well under an hour left.
        cmd = command(jdk, "NativeGrowth", ["await=2", "drip=150", "await=+1"],
                      agent_opts=f"interval=250ms,report={report},{FAST_RATE}", classpath=workloads, heap="64m",
                      jvm_args=["-XX:MaxDirectMemorySize=200m"])
        env = {k: v for k, v in os.environ.items() if k not in ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS",
                                                                  "OFFHEAP_DOCTOR_OPTS")}
        p = subprocess.run(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *cmd],
                           capture_output=True, text=True, timeout=120, env=env)
    finally:
        remove_cgroup(group)
    assert p.returncode == 0, p.stderr
    samples = read_report(report)
    last = samples[-1]
    c = last["cgroup"]
    assert c["version"] == f"v{version}" and c["limit"] == limit, c
    assert c["path"].endswith(group.name), c
    f = finding(last, "oom-risk")
    assert f and f["severity"] == "critical", [x["id"] for x in last["findings"]]
    ev = evidence(f)
    assert ev["limit"]["raw"] == limit
    current = ev["working_set"]["raw"] if "working_set" in ev else ev["rss"]["raw"]
    rate = ev["rate"]["raw"]
    # The drip's rate (36000 MiB/h at most) as the history measured it, and the time left at it.
    assert 36000 * MiB * 0.2 <= rate <= 36000 * MiB * 1.5, rate
    ttl = ev["time_to_limit"]["raw"]
    assert ttl == pytest.approx((limit - current) / rate * 3600, abs=1.5), (ttl, limit, current, rate)
    assert 1 <= ttl <= 300, ttl
    assert "512.0 MiB limit in" in f["title"], f["title"]


# --- The human report's growth table ---

UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]


def text_bytes(n):
    """ReportText.bytes: binary units, one decimal rounded half up."""
    if n < 1024:
        return f"{n} B"
    d, u = float(n), 0
    while d >= 1024 and u < len(UNITS) - 1:
        d /= 1024
        u += 1
    return f"{Decimal(d).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} {UNITS[u]}"


def text_delta(n):
    return ("-" if n < 0 else "+") + text_bytes(abs(n))


@pytest.mark.parametrize("jdk", MAIN)
def test_report_command_shows_growth_since_the_baseline_and_the_rate(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "NativeGrowth", ["await=2", "direct=40", "await=+12", "sleep=60000"],
                  agent_opts=f"interval=250ms,report={report},{FAST_RATE}", classpath=workloads, heap="64m")
    with Background(cmd) as app:
        app.wait_for_stdout("direct ")
        app.wait_for_stdout("await ")
        p = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), "report"], capture_output=True,
                           text=True, timeout=90)
        assert p.returncode == 0, p.stderr
        seq = int(re.search(r", sample (\d+) at ", p.stdout.splitlines()[0]).group(1))
        sample = next(s for s in wait_for_samples(report, seq) if s["seq"] == seq)
    lines = p.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Growth (baseline "))
    g = sample["growth"]
    assert lines[start].startswith(f"Growth (baseline {time.strftime('%Y-%m-%dT', time.gmtime(g['baseline_ms'] / 1000))}")
    assert lines[start + 1].split() == ["part", "now", "since", "baseline", "rate"]
    rows = {l.split()[0]: l for l in lines[start + 2:] if l.startswith("  ")}
    series = {"rss": g["series"]["rss"]}
    series.update({k[len("part."):]: v for k, v in g["series"].items() if k.startswith("part.")})
    assert set(series) <= set(rows) | {k for k, v in series.items() if v["latest"] is None}, (series.keys(), rows)
    for name, s in series.items():
        rate = s["rate_per_hour"]
        want = (f"  {name:<16}{text_bytes(s['latest']) if s['latest'] is not None else '-':>12} "
                f"{text_delta(s['delta']) if s['delta'] is not None else '-':>14} "
                f"{text_delta(int(Decimal(rate).to_integral_value(rounding=ROUND_HALF_UP))) + '/h' if rate is not None else '-':>16}")
        assert rows[name] == want, (rows[name], want)
    # 40 MiB of direct buffers since the baseline (under -Xmx64m, their default cap), the rates
    # measured over the last seconds.
    assert g["series"]["rss"]["delta"] >= 36 * MiB
    assert g["series"]["rss"]["rate_per_hour"] is not None
