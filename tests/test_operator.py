"""The operator's side: the MBean (attributes equal to the latest sample, operations), the
attach commands that load the agent and ask it over JMX, the Prometheus endpoint, and the
JSON reader they all read samples with."""

import base64
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import AGENT_JAR, Background, command, run_jvm, vm_rss, wait_for_samples
from jdks import ALL, MAIN, java

BREAKDOWN = {
    "JavaHeapRss": "java_heap", "MallocArenaRss": "malloc_arena", "MallocMmapRss": "malloc_mmap",
    "ThreadStackRss": "thread_stack", "JvmCodeRss": "jvm_code", "JvmMetaspaceRss": "jvm_metaspace",
    "JvmGcRss": "jvm_gc", "JvmOtherRss": "jvm_other", "MappedFileRss": "mapped_file",
    "OtherAnonRss": "other_anon", "KernelRss": "kernel",
}
INT_ATTRS = {"ArenaCount", "FindingsCount"}
DOUBLE_ATTRS = {"NmtCoverage"}
STRING_ATTRS = {"Allocator", "TrimPolicy", "MostSevereFinding", "LastSampleTime", "MallocSettings"}
LONG_ATTRS = {"Rss", "Pss", "Swap", "MallocRetained", "NmtCommitted", "ZipInflatersAlive", "ZipInflatersPending",
              "ZipDeflatersAlive", "ZipDeflatersPending", "ZipEstimatedNativeBytes", "TrimCount",
              "TrimReleasedBytes", "TrimLastReleasedBytes", "TrimTotalDurationNanos", "TrimP99DurationNanos",
              "TrimMaxDurationNanos", "SampleCount", *BREAKDOWN}
OPERATIONS = {"reportText() java.lang.String", "reportJson() java.lang.String", "sampleNow() java.lang.String",
              "trimNow() java.lang.String", "setBaseline() java.lang.String",
              "setTrimPolicy(java.lang.String) java.lang.String", "writeTimeline(java.lang.String) java.lang.String",
              "topSites(java.lang.String) java.lang.String", "startNativeSites() java.lang.String",
              "stopNativeSites() java.lang.String", "nativeSitesReport() java.lang.String"}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def get(d, *path):
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def num(d, *path):
    v = get(d, *path)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else -1


def malloc_settings(s):
    """`arenaMax=2 (-agentpath), mmapThreshold=131072 (MALLOC_MMAP_THRESHOLD_)`; empty when none."""
    names = {"agentpath": "-agentpath"}
    return ", ".join(f"{f['setting']}={f['value']} ("
                     + (f.get("variable") if f["source"] == "environment" else names.get(f["source"], f["source"])) + ")"
                     for f in get(s, "tuning", "in_force") or [])


def expected_attributes(s):
    """What each attribute must read for sample `s`: the MBean's contract in Python."""
    alloc = get(s, "allocator", "kind")
    version = get(s, "allocator", "version")
    findings = s.get("findings")
    if isinstance(findings, list):
        worst = min(findings, key=lambda f: SEVERITY_RANK.get(f.get("severity"), 3), default=None)
        most = "none" if worst is None else f"{worst.get('id')}: {worst.get('title')}"
    else:
        most = "unknown"

    def breakdown(cls):
        c = get(s, "breakdown", "classes", cls)
        return c if isinstance(c, int) else num(c, "rss")

    coverage = get(s, "nmt", "growth", "coverage")
    want = {
        "Rss": num(s, "totals", "rss"), "Pss": num(s, "totals", "pss"), "Swap": num(s, "totals", "swap"),
        "MallocRetained": num(s, "malloc", "retained"), "ArenaCount": num(s, "malloc", "arena_count"),
        "NmtCommitted": num(s, "nmt", "committed"),
        "NmtCoverage": float(coverage) if isinstance(coverage, (int, float)) else math.nan,
        "ZipInflatersAlive": num(s, "zip", "inflaters", "alive"),
        "ZipInflatersPending": num(s, "zip", "inflaters", "pending_cleanup"),
        "ZipDeflatersAlive": num(s, "zip", "deflaters", "alive"),
        "ZipDeflatersPending": num(s, "zip", "deflaters", "pending_cleanup"),
        "ZipEstimatedNativeBytes": num(s, "zip", "estimated_native_bytes"),
        "Allocator": "unknown" if alloc is None else (alloc if version is None else f"{alloc} {version}"),
        "TrimPolicy": get(s, "trim", "policy", "spec") or "unknown",
        "TrimCount": num(s, "trim", "count"), "TrimReleasedBytes": num(s, "trim", "released_total"),
        "TrimLastReleasedBytes": num(s, "trim", "last", "released"),
        "TrimTotalDurationNanos": num(s, "trim", "duration_total_ns"),
        "TrimP99DurationNanos": num(s, "trim", "duration", "p99_ns"),
        "TrimMaxDurationNanos": num(s, "trim", "duration", "max_ns"),
        "FindingsCount": len(findings) if isinstance(findings, list) else -1,
        "MostSevereFinding": most,
        "SampleCount": s["seq"], "LastSampleTime": s["time"],
        "MallocSettings": malloc_settings(s),
    }
    for attr, cls in BREAKDOWN.items():
        want[attr] = breakdown(cls)
    return want


def parse_attr(name, text):
    if name in DOUBLE_ATTRS:
        return float(text)
    if name in LONG_ATTRS or name in INT_ATTRS:
        return int(text)
    return text


def jmx_self(jdk, workloads, tmp_path, opts="", jvm_args=()):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "JmxSelf", [], agent_opts=f"interval=1h,report={report}" + opts, jvm_args=jvm_args,
                classpath=workloads, report=report, timeout=90)
    assert r.rc == 0, r.stdout + r.stderr
    out, text = parse_jmx_lines(r.stdout)
    return r, out, text


def check_top_sites(ops, sample):
    """topSites answers from the same sample as reportJson: "all" is its whole sites part, a kind
    that part's status with that kind's list, and an unknown kind is refused in one line."""
    part = sample["sites"]
    all_, zip_, direct, threads, unknown = ops["topSites"]
    assert json.loads(all_.removeprefix("returned ")) == part, all_
    for got, keys in ((zip_, ["zip"]), (direct, ["direct", "direct_sample_bytes"]),
                      (threads, ["threads", "threads_untracked"])):
        want = part if part["status"] != "on" else {"status": "on", **{k: part[k] for k in keys if k in part}}
        assert json.loads(got.removeprefix("returned ")) == want, got
    assert unknown == ("threw java.lang.IllegalArgumentException: unknown kind of call site 'heap':"
                       " zip, direct, threads or all"), unknown


def check_native_sites_off(ops):
    """Without nativeSites=on the sampler is not running: its report says so in its first line, and
    a stop answers in one line why it did nothing, without throwing."""
    report, = ops["nativeSitesReport"]
    assert report.startswith("returned Native call sites "), report
    stop, = ops["stopNativeSites"]
    assert stop.startswith("returned native call sites not stopped: "), stop


def parse_jmx_lines(stdout):
    """What JmxSelf and JmxRemote print, by kind of line; and the text report's lines."""
    lines = stdout.splitlines()
    text = lines[lines.index("text") + 1:lines.index("end")]
    out = {"type": {}, "operation": set(), "attr": {}, "single": {}, "op": {}}
    for l in lines:
        kind, _, rest = l.partition(" ")
        if kind == "type":
            n, t = rest.split(" ", 1)
            out["type"][n] = t
        elif kind == "operation":
            out["operation"].add(rest)
        elif kind in ("attr", "single"):
            n, v = rest.split("=", 1)
            out[kind][n] = v
        elif kind == "op":
            n, v = rest.split(" ", 1)
            out["op"].setdefault(n, []).append(v)
        elif kind in ("json", "sample", "count", "policy", "connected"):
            out[kind] = rest
    return out, text


@pytest.mark.parametrize("jdk", ALL)
def test_mbean_attributes_read_over_jmx_equal_the_latest_sample(jdk, workloads, tmp_path):
    r, out, text = jmx_self(jdk, workloads, tmp_path)
    assert r.jni_warnings() == []
    # The shape a console sees: read-only attributes of plain types, and every operation.
    types = out["type"]
    assert set(types) == LONG_ATTRS | INT_ATTRS | DOUBLE_ATTRS | STRING_ATTRS
    assert all(t == "long" for n, t in types.items() if n in LONG_ATTRS), types
    assert all(types[n] == "int" for n in INT_ATTRS) and types["NmtCoverage"] == "double"
    assert all(types[n] == "java.lang.String" for n in STRING_ATTRS)
    assert out["operation"] == OPERATIONS
    # The values: exactly the first (and at interval=1h, only) scheduled sample.
    first, second = r.samples[:2]
    assert out["json"] == json.dumps(first, separators=(",", ":")) or json.loads(out["json"]) == first
    got = {n: parse_attr(n, v) for n, v in out["attr"].items()}
    want = expected_attributes(first)
    assert math.isnan(got.pop("NmtCoverage")) and math.isnan(want.pop("NmtCoverage"))
    assert got == want
    assert got["Rss"] > 0 and got["SampleCount"] == 1 and got["ArenaCount"] > 0
    assert got["Allocator"].startswith("glibc 2.")
    # sampleNow is a sample like the scheduled ones: the report's next line, counted.
    assert json.loads(out["sample"]) == second and second["seq"] == 2 and out["count"] == "2"
    assert len(r.samples) == 2
    # The text report speaks in binary units about the same sample.
    assert text[0].startswith(f"offheap-doctor report: pid {first['pid']}, sample 1 at {first['time']}")
    rss_line = next(l for l in text if l.startswith("RSS"))
    assert re.search(r"RSS\s+\d+\.\d (MiB|GiB)\s+PSS \d+\.\d (KiB|MiB|GiB), swap 0 B", rss_line), rss_line
    mib = float(re.search(r"(\d+\.\d) MiB", rss_line).group(1))
    assert abs(mib - first["totals"]["rss"] / 2**20) <= 0.05
    assert any(l.startswith("malloc") and "arenas" in l for l in text), text
    assert any(l.startswith("NMT") and "NativeMemoryTracking=summary" in l for l in text), text
    assert any(l.startswith("Zip streams") for l in text), text
    # The actions answer in words (and the trim with its record as JSON).
    assert out["op"]["trimNow"][0].startswith("returned released "), out["op"]["trimNow"]
    assert out["op"]["setBaseline"][0].startswith("returned baseline set"), out["op"]["setBaseline"]
    assert out["op"]["setTrimPolicy"][0].startswith("returned trim policy set: "), out["op"]["setTrimPolicy"]
    assert out["op"]["setTrimPolicy"][1].startswith("threw java.lang.IllegalArgumentException: a trim policy is required")
    check_top_sites(out["op"], first)
    check_native_sites_off(out["op"])


@pytest.mark.parametrize("jdk", MAIN)
def test_mbean_reads_nmt_when_tracking_is_on(jdk, workloads, tmp_path):
    r, out, text = jmx_self(jdk, workloads, tmp_path, jvm_args=["-XX:NativeMemoryTracking=summary"])
    first = r.samples[0]
    got = {n: parse_attr(n, v) for n, v in out["attr"].items()}
    assert got["NmtCommitted"] == first["nmt"]["committed"] > 0
    want = expected_attributes(first)
    if math.isnan(want["NmtCoverage"]):
        assert math.isnan(got["NmtCoverage"])
    else:
        assert got["NmtCoverage"] == want["NmtCoverage"]
    assert any(l.startswith("NMT") and "summary: committed" in l for l in text), text


@pytest.mark.parametrize("jdk", [17, 25])
def test_a_second_jvm_reads_every_attribute_and_calls_every_operation_over_remote_jmx(jdk, workloads, tmp_path):
    port = free_port()
    report = tmp_path / "r.jsonl"
    page = tmp_path / "remote.html"
    jmx = [f"-Dcom.sun.management.jmxremote.port={port}", "-Dcom.sun.management.jmxremote.host=127.0.0.1",
           "-Dcom.sun.management.jmxremote.authenticate=false", "-Dcom.sun.management.jmxremote.ssl=false",
           "-Djava.rmi.server.hostname=127.0.0.1"]
    cmd = command(jdk, "Idle", ["90"], agent_opts=f"interval=1h,report={report}", jvm_args=jmx,
                  classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 1)
        # The client is a separate JVM without the agent: only the JMX API and the bean's name.
        c = subprocess.run([java(jdk), "-cp", str(workloads), "JmxRemote", str(port), str(page)],
                           capture_output=True, text=True, timeout=90)
        assert c.returncode == 0, c.stdout + c.stderr
        out, text = parse_jmx_lines(c.stdout)
        assert out["connected"].startswith("rmi://127.0.0.1")
        assert set(out["type"]) == LONG_ATTRS | INT_ATTRS | DOUBLE_ATTRS | STRING_ATTRS
        assert out["operation"] == OPERATIONS
        first, second = wait_for_samples(report, 2)[:2]
        assert json.loads(out["json"]) == first
        want = expected_attributes(first)
        for kind in ("attr", "single"):
            got = {n: parse_attr(n, v) for n, v in out[kind].items()}
            assert set(got) == set(want), kind
            for n in want:
                if isinstance(want[n], float) and math.isnan(want[n]):
                    assert math.isnan(got[n]), (kind, n)
                else:
                    assert got[n] == want[n], (kind, n, got[n], want[n])
        assert int(out["attr"]["Rss"]) > 0 and out["attr"]["SampleCount"] == "1"
        assert text[0].startswith(f"offheap-doctor report: pid {app.pid}, sample 1 at {first['time']}")
        assert json.loads(out["sample"]) == second and second["seq"] == 2 and out["count"] == "2"
        assert out["op"]["trimNow"][0].startswith("returned released "), out["op"]
        assert out["op"]["setBaseline"][0].startswith("returned baseline set"), out["op"]
        assert out["op"]["setTrimPolicy"][0].startswith("returned trim policy set: "), out["op"]
        assert out["op"]["setTrimPolicy"][1].startswith(
            "threw java.lang.IllegalArgumentException: a trim policy is required"), out["op"]
        assert out["op"]["writeTimeline"][0].startswith("returned "), out["op"]
        check_top_sites(out["op"], first)
        check_native_sites_off(out["op"])
        assert page.read_text().startswith("<!DOCTYPE html>")
        app.kill()
        app.finish()


def attach_cmd(client, pid, *args):
    return subprocess.run([java(client), "-jar", str(AGENT_JAR), str(pid), *args],
                          capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize("client,target", [(17, 17), (25, 25), (25, 17), (17, 25)])
def test_report_and_json_commands_load_the_agent_into_a_plain_jvm(client, target, workloads):
    cmd = command(target, "Idle", ["60"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        a = attach_cmd(client, app.pid, "report", "interval=1h")
        assert a.returncode == 0, a.stderr
        assert a.stderr.splitlines() == [f"offheap-doctor: loaded the agent into {app.pid} with interval=1h",
                                         *dynamic_agent_note(target, app.pid)], a.stderr
        lines = a.stdout.splitlines()
        assert lines[0].startswith(f"offheap-doctor report: pid {app.pid}, sample 1 at ")
        assert f"(Java {target}." in lines[0]
        rss = next(l for l in lines if l.startswith("RSS"))
        assert re.match(r"RSS\s+\d+\.\d MiB\s+PSS", rss), rss
        assert any(l.startswith("Java heap") and "max" in l for l in lines), lines
        # The agent is running now: json answers at once with the same sample, loads nothing.
        j = attach_cmd(client, app.pid, "json")
        assert j.returncode == 0 and j.stderr == "", j.stderr
        sample = json.loads(j.stdout)
        assert sample["pid"] == app.pid and sample["seq"] == 1
        s = attach_cmd(client, app.pid, "sample", "interval=5s")
        vmrss = vm_rss(app.pid)
        assert s.returncode == 0
        fresh = json.loads(s.stdout)
        assert fresh["seq"] == 2
        assert abs(fresh["totals"]["rss"] - vmrss) <= 0.05 * vmrss, (fresh["totals"]["rss"], vmrss)
        assert s.stderr.strip() == f"offheap-doctor: the agent already runs in {app.pid}; options ignored: interval=5s"
        app.kill()
        rc, out, err = app.finish()
    assert "[offheap-doctor] attached: sampling every 1h" in err


@pytest.mark.parametrize("jdk", MAIN)
def test_the_first_report_into_a_plain_jvm_starts_no_jmx_connector(jdk, workloads):
    jcmd = str(Path(java(jdk)).resolve().parent / "jcmd")
    cmd = command(jdk, "Idle", ["60"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        a = attach_cmd(jdk, app.pid, "json", "interval=1h")
        assert a.returncode == 0, a.stderr
        first = json.loads(a.stdout)
        assert first["pid"] == app.pid and first["seq"] == 1
        # The answer came over the attach connection: the JDK's management agent never started.
        status = subprocess.run([jcmd, str(app.pid), "ManagementAgent.status"], capture_output=True, text=True).stdout
        assert "Agent: disabled" in status, status
        props = subprocess.run([jcmd, str(app.pid), "VM.system_properties"], capture_output=True, text=True).stdout
        assert "offheap.doctor.running=true" in props, props
        # The agent runs now: the next command asks its MBean over JMX, and it is the same sample.
        b = attach_cmd(jdk, app.pid, "json")
        assert b.returncode == 0 and b.stderr == "", b.stderr
        assert json.loads(b.stdout) == first
        status = subprocess.run([jcmd, str(app.pid), "ManagementAgent.status"], capture_output=True, text=True).stdout
        assert "Agent: enabled" in status and "local" in status, status
        app.kill()
        app.finish()


@pytest.mark.parametrize("jdk", MAIN)
def test_commands_reach_an_agent_started_with_javaagent(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], agent_opts=f"interval=300ms,report={report}", classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 2)
        j = attach_cmd(jdk, app.pid, "json")
        assert j.returncode == 0 and j.stderr == "", j.stderr
        printed = json.loads(j.stdout)
        assert printed["seq"] >= 2
        assert printed in wait_for_samples(report, printed["seq"])
        t = attach_cmd(jdk, app.pid, "report")
        assert t.returncode == 0 and t.stdout.startswith(f"offheap-doctor report: pid {app.pid}, sample ")
        # Actions answer on stdout; a bad policy is one clear line on stderr and exit code 1.
        for c, answer in ((["trim"], "released "), (["baseline"], "baseline set"),
                          (["policy=auto"], "trim policy set: "), (["policy", "30s"], "trim policy set: ")):
            a = attach_cmd(jdk, app.pid, *c)
            assert a.returncode == 0 and a.stdout.startswith(answer), (c, a.stdout, a.stderr)
        bad = attach_cmd(jdk, app.pid, "policy=sometimes")
        assert bad.returncode == 1 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert "sometimes" in bad.stderr and "Exception" not in bad.stderr, bad.stderr
        bad = attach_cmd(jdk, app.pid, "policy", "sometimes")
        assert bad.returncode == 1 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert "sometimes" in bad.stderr and "Exception" not in bad.stderr, bad.stderr
        bare = attach_cmd(jdk, app.pid, "policy")
        assert bare.returncode == 2 and bare.stderr.startswith("offheap-doctor: policy needs a value"), bare.stderr
        page = tmp_path / "live.html"
        h = attach_cmd(jdk, app.pid, f"html={page}")
        assert h.returncode == 0 and page.exists(), h.stderr
        html = page.read_text()
        assert html.startswith("<!DOCTYPE html>") and "http://" not in html.replace("http://www.w3.org", "")
        app.kill()
        rc, out, err = app.finish()
    assert "already running" not in err


@pytest.mark.parametrize("jdk", MAIN)
def test_start_command_only_loads_the_agent(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        a = attach_cmd(jdk, app.pid, "start", f"interval=200ms,report={report}")
        assert a.returncode == 0 and f"loaded into {app.pid}" in a.stdout, a.stderr
        assert wait_for_samples(report, 2)[0]["pid"] == app.pid
        j = attach_cmd(jdk, app.pid, "json")
        assert j.returncode == 0 and j.stderr == "" and json.loads(j.stdout)["pid"] == app.pid


def platform_server_exists(jdk, pid):
    """Whether the JVM holds a JMX MBeanServer (the platform one: nothing else here makes one)."""
    jcmd = str(Path(java(jdk)).parent / "jcmd")
    out = subprocess.run([jcmd, str(pid), "GC.class_histogram"], capture_output=True, text=True, timeout=60).stdout
    assert "java.lang.String " in out, out[-2000:]
    return " com.sun.jmx.mbeanserver.JmxMBeanServer " in out


@pytest.mark.parametrize("jdk", ALL)
def test_the_agent_makes_no_mbean_server_and_registers_in_the_one_jmx_users_make(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["90"], agent_opts=f"interval=300ms,report={report}", classpath=workloads,
                  jvm_args=["-XX:NativeMemoryTracking=summary"], xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        samples = wait_for_samples(report, 4)
        # GC.heap_info and NMT ran through the JVM's diagnostic commands without the server.
        assert samples[-1]["heap"]["ranges"], samples[-1]["heap"]
        assert samples[-1]["nmt"]["committed"] > 0, samples[-1]["nmt"]
        assert not platform_server_exists(jdk, app.pid)
        # The attach command starts the JVM's management agent, which creates the server: the
        # agent already running registers its bean there, and is not loaded a second time.
        j = attach_cmd(jdk, app.pid, "json")
        assert j.returncode == 0 and j.stderr == "", j.stderr
        assert json.loads(j.stdout)["pid"] == app.pid
        assert platform_server_exists(jdk, app.pid)
        app.kill()
        rc, out, err = app.finish()
    assert "MBean" not in err and "already running" not in err, err


@pytest.mark.parametrize("jdk", MAIN)
def test_mbean_on_creates_the_server_and_off_registers_nothing(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["90"], agent_opts=f"interval=300ms,mbean=on,report={report}", classpath=workloads,
                  xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 2)
        deadline = time.monotonic() + 20
        while not (exists := platform_server_exists(jdk, app.pid)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert exists
        app.kill()
        app.finish()
    # The application makes the server and waits for the bean, which never comes.
    report.unlink()
    r = run_jvm(jdk, "JmxSelf", [], agent_opts=f"interval=1h,mbean=off,report={report}", classpath=workloads,
                jvm_args=["-Dmbeanwalk.timeoutSeconds=5"], report=report, timeout=90)
    assert r.rc == 3 and "timeout: registered=false" in r.stdout, r.stdout + r.stderr
    assert "MBean" not in r.stderr, r.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_command_errors_are_one_line_and_exit_code(jdk, workloads):
    for args in (["report"], [], ["watch"]):
        gone = attach_cmd(jdk, 2**22 + 12345, *args)
        assert gone.returncode == 1 and gone.stdout == ""
        assert gone.stderr == f"offheap-doctor: cannot attach to {2**22 + 12345}: no such process\n", gone.stderr
    bad = attach_cmd(jdk, 1, "frobnicate")
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr
    extra = attach_cmd(jdk, 1, "report", "interval=1s", "more")
    assert extra.returncode == 2 and "too many arguments" in extra.stderr
    w = attach_cmd(jdk, 1, "watch", "soon")
    assert w.returncode == 2 and "watch interval 'soon'" in w.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_a_process_that_is_not_a_jvm_is_named_and_left_alive(jdk):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for args in (["report"], []):
            a = attach_cmd(jdk, sleeper.pid, *args)
            assert a.returncode == 1 and a.stdout == ""
            assert a.stderr == (f"offheap-doctor: cannot attach to {sleeper.pid}: not a Java process (sleep):"
                                " it has no libjvm.so mapped\n"), a.stderr
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("jdk", MAIN)
def test_a_jvm_with_attach_disabled_is_one_line(jdk, workloads):
    cmd = command(jdk, "Idle", ["60"], jvm_args=["-XX:+DisableAttachMechanism"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        for args in (["report"], ["interval=1s"]):
            a = attach_cmd(jdk, app.pid, *args)
            assert a.returncode == 1 and a.stdout == "", a.stdout
            assert a.stderr == (f"offheap-doctor: cannot attach to {app.pid}: attach is disabled in that JVM (it was"
                                " started with -XX:+DisableAttachMechanism); start it with -javaagent instead\n"), a.stderr
        assert app.proc.poll() is None


def stale_socket(path, age):
    """A socket file nobody listens on, as a JVM killed with SIGKILL leaves it, `age` seconds old."""
    if path.exists():
        path.unlink()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    path.chmod(0o600)
    t = time.time() - age
    os.utime(path, (t, t))


@pytest.mark.parametrize("jdk", MAIN)
def test_a_stale_attach_socket_of_an_earlier_process_is_removed_and_the_attach_goes_on(jdk, workloads):
    cmd = command(jdk, "Idle", ["60"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        path = Path(f"/tmp/.java_pid{app.pid}")
        # Made after the JVM started: it could be the JVM's own, so it stays, and the JDK's own
        # error stands.
        stale_socket(path, 0)
        a = attach_cmd(jdk, app.pid, "json", "interval=1h")
        assert a.returncode == 1 and a.stdout == "", a.stdout
        assert a.stderr == f"offheap-doctor: cannot attach to {app.pid}: IOException: Connection refused\n", a.stderr
        assert path.exists()
        # Older than the process: left by an earlier one with the same pid.
        stale_socket(path, 3600)
        a = attach_cmd(jdk, app.pid, "json", "interval=1h")
        assert a.returncode == 0, a.stderr
        assert a.stderr.splitlines()[:2] == [
            f"offheap-doctor: removed /proc/{app.pid}/root/tmp/.java_pid{app.pid}, a stale attach socket left by an"
            f" earlier process with pid {app.pid}",
            f"offheap-doctor: loaded the agent into {app.pid} with interval=1h"], a.stderr
        assert json.loads(a.stdout)["pid"] == app.pid
        # The JVM's own socket replaced it and answers.
        assert stat.S_ISSOCK(path.lstat().st_mode) and path.lstat().st_mtime > time.time() - 600
        app.kill()
        app.finish()


@pytest.mark.parametrize("jdk", MAIN)
def test_a_jvm_of_another_user_is_named_with_the_user_to_run_as(jdk, workloads):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        from harness import prerequisite_missing
        prerequisite_missing("root and setpriv, to run the command as another user")
    # The command runs as nobody against this (root's) JVM, with a copy of the jar nobody can read.
    shared = Path(tempfile.mkdtemp(prefix="offheap-doctor-jar-"))
    try:
        shared.chmod(0o755)
        jar = shared / "offheap-doctor.jar"
        shutil.copy(AGENT_JAR, jar)
        jar.chmod(0o644)
        cmd = command(jdk, "Idle", ["60"], classpath=workloads, xcheck=False)
        with Background(cmd) as app:
            app.wait_for_stdout("ready")
            a = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", java(jdk), "-jar",
                                str(jar), str(app.pid), "report"], capture_output=True, text=True, timeout=90, cwd="/")
            assert a.returncode == 1 and a.stdout == "", (a.stdout, a.stderr)
            assert a.stderr == (f"offheap-doctor: cannot attach to {app.pid}: it runs as root (uid 0) and this command"
                                " as nobody (uid 65534); a JVM accepts only its own user or root: run the command as"
                                f" that user (sudo -u root java -jar offheap-doctor.jar {app.pid} ...)\n"), a.stderr
            assert app.proc.poll() is None
            # The JVM is left alone and still answers its own user.
            assert attach_cmd(jdk, app.pid, "json").returncode == 0
    finally:
        shutil.rmtree(shared)


def dynamic_agent_note(target, pid):
    """The line the command adds after loading the agent into a JVM that warns about it (JEP 451)."""
    return [f"offheap-doctor: note: Java {target} in {pid} printed a warning on its stderr about a dynamically"
            " loaded agent (JEP 451); start it with -XX:+EnableDynamicAgentLoading, or with -javaagent, to avoid it"
            ] if target >= 21 else []


@pytest.mark.parametrize("jdk", MAIN)
def test_dynamic_agent_loading_warning_is_explained_and_refusal_is_one_line(jdk, workloads):
    jep451 = "WARNING: A Java agent has been loaded dynamically"
    for flag in ([], ["-XX:+EnableDynamicAgentLoading"]):
        cmd = command(jdk, "Idle", ["60"], jvm_args=flag, classpath=workloads, xcheck=False)
        with Background(cmd) as app:
            app.wait_for_stdout("ready")
            a = attach_cmd(jdk, app.pid, "json")
            assert a.returncode == 0 and json.loads(a.stdout)["pid"] == app.pid, a.stderr
            note = [] if flag else dynamic_agent_note(jdk, app.pid)
            assert a.stderr.splitlines() == [f"offheap-doctor: loaded the agent into {app.pid}", *note], (flag, a.stderr)
            app.kill()
            _, out, err = app.finish()
        # The note is there exactly when the JVM printed the warning.
        assert (jep451 in err) == bool(note), (flag, err)
    cmd = command(jdk, "Idle", ["60"], jvm_args=["-XX:-EnableDynamicAgentLoading"], classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        a = attach_cmd(jdk, app.pid, "report")
        assert a.returncode == 1 and a.stdout == "", a.stdout
        assert a.stderr == (f"offheap-doctor: cannot load the agent into {app.pid}: that JVM refuses dynamically"
                            " loaded agents (it was started with -XX:-EnableDynamicAgentLoading); start it with"
                            " -XX:+EnableDynamicAgentLoading, or with -javaagent\n"), a.stderr
        assert app.proc.poll() is None


@pytest.mark.parametrize("jdk", MAIN)
def test_watch_prints_a_block_per_interval_until_interrupted(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], agent_opts=f"interval=1h,report={report}", classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 1)
        # Ctrl-C as in a terminal: SIGINT at its default even when this run inherited it ignored
        # (a background job), since the JVM leaves an ignored SIGINT ignored.
        w = subprocess.Popen([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), "watch", "1s"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(wait_for_samples(report, 1)) < 4:
                time.sleep(0.1)
            time.sleep(0.3)
            w.send_signal(signal.SIGINT)
            out, err = w.communicate(timeout=20)
        finally:
            if w.poll() is None:
                w.kill()
        assert w.returncode in (0, 130), (w.returncode, err)
        assert err == "", err
        lines = out.splitlines()
        assert lines[0] == f"offheap-doctor: watching {app.pid} every 1s; Ctrl-C to stop"
        assert lines[-1] == f"offheap-doctor: watch of {app.pid} stopped"
        starts = [i for i, l in enumerate(lines) if l.startswith("-- ")]
        assert len(starts) >= 3, out
        samples = {s["seq"]: s for s in wait_for_samples(report, 1)}
        for i in starts:
            block = lines[i:i + 6]
            m = re.fullmatch(r"-- (\S+)  sample (\d+)", block[0])
            assert m, block
            s = samples[int(m.group(2))]
            assert m.group(1) == s["time"] and int(m.group(2)) >= 2
            assert re.fullmatch(r"RSS \d+\.\d (MiB|GiB)  PSS .+  swap .+", block[1]), block
            assert block[2].startswith("top java_heap ") or block[2].startswith("top "), block
            assert len(block[2].split(", ")) == 4, block
            assert re.fullmatch(r"malloc retained .+ in \d+ arenas", block[3]), block
            assert re.fullmatch(r"zip inflaters \d+ alive/\d+ pending, deflaters \d+ alive/\d+ pending", block[4]), block
            ids = [f["id"] for f in s["findings"]]
            assert block[5] == "findings " + (", ".join(f"{f['id']} ({f['severity']})" for f in s["findings"])
                                              if ids else "none"), block
        # Each block is a fresh sample, not the latest one read again.
        seqs = [int(lines[i].split()[-1]) for i in starts]
        assert seqs == sorted(set(seqs))
        assert app.proc.poll() is None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_tcp(pid):
    """(address, port) of every TCP socket the process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                addr, port = f[1].split(":")
                if addr.startswith("0000000000000000FFFF0000"):  # an IPv4 address on a dual-stack socket
                    addr = addr[24:]
                found.append((addr, int(port, 16)))
    return found


def scrape(port, path="/metrics", method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type"), resp.read().decode()


def parse_metrics(text):
    """{(name, frozenset(labels)): value}, and the declared type of each family."""
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)', line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        values[(m.group(1), labels)] = float(m.group(3))
    return values, types


@pytest.mark.parametrize("jdk", MAIN)
def test_prometheus_endpoint_serves_metrics_close_to_vmrss(jdk, workloads, tmp_path):
    port = free_port()
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], agent_opts=f"interval=200ms,prometheus={port},report={report}",
                  classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 3)
        # The first request loads the HTTP server's classes: let a sample see the JVM after it.
        scrape(port)
        seen = len(wait_for_samples(report, 1))
        wait_for_samples(report, seen + 1)
        # The served figure is a sample's, taken after `before` and before `after`: VmRSS of an
        # idle JVM still drifts by megabytes a second under load, so the truth is that bracket.
        before = vm_rss(app.pid)
        wait_for_samples(report, seen + 2)
        status, ctype, body = scrape(port)
        after = vm_rss(app.pid)
        assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
        values, types = parse_metrics(body)
        assert all(n.startswith("offheap_doctor_") for n, _ in values)
        assert all(types[n] == ("counter" if n.endswith("_total") else "gauge") for n, _ in values)
        rss = values[("offheap_doctor_rss_bytes", frozenset())]
        assert 0.97 * min(before, after) <= rss <= 1.03 * max(before, after), (rss, before, after)
        assert values[("offheap_doctor_samples_total", frozenset())] >= 3
        assert values[("offheap_doctor_malloc_arenas", frozenset())] >= 1
        assert values[("offheap_doctor_malloc_retained_bytes", frozenset())] >= 0
        zip_series = {dict(l)["kind"] + "/" + dict(l)["state"] for n, l in values if n == "offheap_doctor_zip_streams"}
        cleaner = {"inflater/alive", "inflater/pending", "deflater/alive", "deflater/pending"}
        finalizer = {k + "/finalizable_" + s for k in ("inflater", "deflater") for s in ("alive", "pending")}
        assert cleaner <= zip_series <= cleaner | finalizer, zip_series
        # NMT is off: no NMT series rather than a -1.
        assert not any(n.startswith("offheap_doctor_nmt_") for n, _ in values)
        # Only /metrics, only GET and HEAD; and only on the loopback interface by default.
        assert scrape(port, method="HEAD")[0] == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            scrape(port, "/")
        assert e.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as e:
            scrape(port, method="POST")
        assert e.value.code == 405
        assert listening_tcp(app.pid) == [("0100007F", port)]
        app.kill()
        rc, out, err = app.finish()
    assert f"[offheap-doctor] Prometheus metrics at http://127.0.0.1:{port}/metrics" in err


@pytest.mark.parametrize("jdk", MAIN)
def test_no_port_is_opened_without_the_option(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], agent_opts=f"interval=200ms,report={report}", classpath=workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 3)
        assert listening_tcp(app.pid) == []
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 9404), timeout=2).close()


@pytest.mark.parametrize("jdk", MAIN)
def test_prometheus_option_problems_are_one_line_and_never_stop_the_jvm(jdk, workloads, tmp_path):
    # A bad value: one line, no endpoint.
    r = run_jvm(jdk, "Idle", ["0.5"], agent_opts="prometheus=nine", classpath=workloads)
    assert r.rc == 0
    assert [l for l in r.agent_lines() if "prometheus" in l] == [
        "[offheap-doctor] prometheus='nine' is not <port> or <host>:<port> (port 0-65535); the endpoint stays off"]
    # A port in use: one line, sampling goes on.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        report = tmp_path / "r.jsonl"
        r = run_jvm(jdk, "Idle", ["3"], agent_opts=f"prometheus=127.0.0.1:{port},interval=100ms,report={report}",
                    classpath=workloads, report=report)
    assert r.rc == 0 and len(r.samples) >= 2
    lines = [l for l in r.agent_lines() if "Prometheus" in l]
    assert len(lines) == 1 and f"cannot serve Prometheus metrics on 127.0.0.1:{port}" in lines[0], lines
    # The endpoint never keeps a JVM alive whose main method returned.
    # (Long enough for the endpoint to be up before main returns, even on a loaded machine.)
    quick = run_jvm(jdk, "Idle", ["3"], agent_opts=f"prometheus={free_port()}", classpath=workloads, timeout=20)
    assert quick.rc == 0 and any("Prometheus metrics at" in l for l in quick.agent_lines()), quick.stderr


def run_reader(jdk, workloads, cases):
    stdin = "".join(base64.b64encode(c.encode("utf-8", "surrogatepass")).decode() + "\n" for c in cases)
    p = subprocess.run([java(jdk), "-cp", f"{workloads}:{AGENT_JAR}", "JsonReaderCheck"], input=stdin,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert len(out) == len(cases)
    return out


def same(a, b):
    """Equal values with equal JSON types (1 and 1.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("jdk", [17])
def test_json_reader_agrees_with_python_and_refuses_bad_input_with_iae_only(jdk, workloads, tmp_path):
    valid = ['{}', '[]', '0', '-0', '12', '-9223372036854775808', '9223372036854775807', '1.5', '-2.5e-3', '1E+2',
             '"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"', '"\u00e9\u4e2d"', 'true', 'false', 'null',
             ' \t\r\n{"a" : [1, 2.0, {"b": null}], "a": "dup"} ', '{"x":{"y":{"z":[[[]]]}}}']
    invalid = ['', ' ', '{', '}', '[1,]', '{"a":1,}', '{a:1}', "{'a':1}", '01', '1.', '.5', '-', '+1', '1e', '1e+',
               'tru', 'nul', 'NaN', 'Infinity', '"abc', '"\\x"', '"\\u12"', '"\\u12g4"', '"a\nb"', '[1 2]',
               '{"a" 1}', '{"a":1 "b":2}', '1 2', '{} x', '[' * 300 + ']' * 300, '{"a":' * 300 + '1' + '}' * 300]
    out = run_reader(jdk, workloads, valid + invalid)
    for case, line in zip(valid, out[:len(valid)]):
        assert line.startswith("ok "), (case, line)
        assert same(json.loads(line[3:]), json.loads(case)), (case, line)
    for case, line in zip(invalid, out[len(valid):]):
        assert line.startswith("iae bad JSON at offset ") or line.startswith("iae no JSON"), (case, line)
    # Mutations of a real report line: a value or IllegalArgumentException, never anything else,
    # and whatever Python accepts the reader reads the same.
    report = tmp_path / "r.jsonl"
    run_jvm(jdk, "Idle", ["2"], agent_opts=f"interval=100ms,report={report}", classpath=workloads,
            jvm_args=["-XX:NativeMemoryTracking=summary"], report=report)
    line = report.read_text().splitlines()[-1]
    rnd = random.Random(9)
    alphabet = '{}[]:,"\\0123456789.eE+-truefalsn \n\t\u00e9'
    cases = [line]
    for _ in range(1500):
        s = list(line)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(s))
            op = rnd.random()
            if op < 0.4:
                s[i] = rnd.choice(alphabet)
            elif op < 0.7:
                del s[i]
            else:
                s.insert(i, rnd.choice(alphabet))
        cases.append("".join(s))
    cases += [line[:n] for n in range(0, len(line), max(1, len(line) // 200))]
    out = run_reader(jdk, workloads, cases)
    assert out[0].startswith("ok ") and same(json.loads(out[0][3:]), json.loads(line))
    accepted = 0
    for case, got in zip(cases, out):
        assert got.startswith("ok ") or got.startswith("iae "), (case, got)
        try:
            py = json.loads(case)
        except (ValueError, RecursionError):
            py = ValueError
        if py is ValueError:
            assert got.startswith("iae "), (case, got)
        else:
            accepted += 1
            assert got.startswith("ok ") and same(json.loads(got[3:]), py), (case, got)
    assert accepted >= 10


FULL_SAMPLE = {
    "schema": 1, "kind": "sample", "seq": 7, "time": "2026-11-27T08:00:00.000Z", "epoch_ms": 1795766400000,
    "pid": 4242,
    "totals": {"rss": 3 * 2**30, "pss": 3 * 2**30 - 5 * 2**20, "swap": 0, "anon": 2 * 2**30, "file": 2**30, "shmem": 0},
    "breakdown": {"classes": {"java_heap": {"rss": 2**31}, "malloc_arena": {"rss": 600 * 2**20},
                              "malloc_mmap": {"rss": 0}, "thread_stack": {"rss": 24 * 2**20},
                              "jvm_code": {"rss": 30 * 2**20}, "jvm_metaspace": {"rss": 80 * 2**20},
                              "jvm_gc": {"rss": 100 * 2**20}, "jvm_other": {"rss": 10 * 2**20},
                              "mapped_file": {"rss": 50 * 2**20}, "other_anon": {"rss": 130 * 2**20},
                              "kernel": {"rss": 0}}},
    "allocator": {"kind": "glibc", "version": "2.36"},
    "malloc": {"arena_count": 64, "retained": 512 * 2**20, "in_use": 88 * 2**20, "mmapped": 0, "trimmable_max": 400 * 2**20},
    "nmt": {"mode": "summary", "committed": 2400 * 2**20,
            "growth": {"rss_delta": 700 * 2**20, "committed_delta": 70 * 2**20, "coverage": 0.1}},
    "zip": {"method": "cleaner", "inflaters": {"alive": 3, "pending_cleanup": 1000},
            "deflaters": {"alive": 0, "pending_cleanup": 2}, "estimated_native_bytes": 41 * 2**20},
    "trim": {"policy": {"spec": "auto"}, "count": 4, "released_total": 900 * 2**20,
             "last": {"epoch_ms": 1795766300000, "released": 300 * 2**20, "duration_ns": 12_500_000}},
    "findings": [
        {"id": "nmt-off", "severity": "info", "title": "NMT is off", "evidence": [], "remedy": None, "since_ms": 1},
        {"id": "malloc-retention", "severity": "warning", "title": "glibc retains 512 MiB free",
         "evidence": ["retained 512 MiB in 64 arenas"], "remedy": "MALLOC_ARENA_MAX=2", "since_ms": 2},
        {"id": "oom-risk", "severity": "critical", "title": "limit in 40 min",
         "evidence": ["growth 100 MiB/h", {"limit": 4 * 2**30}], "remedy": "raise the limit", "since_ms": 3},
    ],
    "cgroup": {"limit": 4 * 2**30, "usage": 3 * 2**30 + 2**29, "oom_kills": 1},
    "jvm": {"java_version": "21.0.2", "vm_name": "OpenJDK 64-Bit Server VM",
            "heap": {"used": 2**30, "committed": 2**31, "max": 2**31}},
    "sites": {
        "status": "on", "direct_sample_bytes": 262144,
        "zip": [{"site": "com.acme.Ingest.read(Ingest.java:88)", "via": "java.util.zip.GZIPInputStream.<init>",
                 "frames": ["com.acme.Ingest.read(Ingest.java:88)"], "kind": "inflater", "alive": 1412, "pending": 3},
                {"site": "com.acme.Pack.write(Pack.java:12)", "frames": [], "kind": "deflater", "alive": 2,
                 "pending": 0},
                {"site": "other", "sites": 4, "alive": 9, "pending": 1}],
        # Names the application chose: a class whose name carries a line break and an escape
        # sequence, a thread name with a bidirectional override.
        "direct": [{"site": "com.acme.Cache.fill(Cache.java:41)", "via": "java.nio.ByteBuffer.allocateDirect",
                    "frames": [], "live_bytes": 12 * 2**20, "growth_bytes": 3 * 2**20, "sampled_buffers": 40}]
        + [{"site": f"com.acme.Evil{i}\n  [CRITICAL] forged\u001b[2J.run(Evil.java:{i})", "frames": [],
            "live_bytes": 2**20 - 1 - i, "growth_bytes": -1024, "sampled_buffers": 1} for i in range(6)]
        + [{"site": "other", "sites": 3, "live_bytes": 5000, "sampled_buffers": 2}],
        "threads": [{"site": "com.acme.Server.accept(Server.java:77)", "via": "java.util.concurrent.ThreadPoolExecutor.execute",
                     "frames": [], "alive": 120, "growth": 110,
                     "names": [{"pattern": "worker-*\u202e", "alive": 119}, {"pattern": "main", "alive": 1}]},
                    {"site": "java.lang.ref.Reference.<clinit>(Reference.java:1)", "frames": [], "jdk_only": True,
                     "alive": 1, "growth": 0, "names": []}],
        "threads_untracked": 14,
    },
    "problems": [],
}


def test_text_report_and_metrics_of_a_sample_with_every_part(workloads):
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck"], input=json.dumps(FULL_SAMPLE),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text, metrics = p.stdout.split("metrics\n")
    lines = text.splitlines()
    assert lines[0] == ("offheap-doctor report: pid 4242, sample 7 at 2026-11-27T08:00:00.000Z "
                        "(Java 21.0.2, OpenJDK 64-Bit Server VM)")
    assert re.search(r"^RSS\s+3\.0 GiB\s+PSS 3\.0 GiB, swap 0 B$", text, re.M), text
    assert "\nBreakdown\n" in text
    assert re.search(r"^  java_heap\s+2\.0 GiB\s+66\.7%$", text, re.M), text
    assert re.search(r"^  malloc_arena\s+600\.0 MiB\s+19\.5%$", text, re.M), text
    assert "64 arenas; in use 88.0 MiB, retained free 512.0 MiB (trimmable at most 400.0 MiB)" in text
    assert "summary: committed 2.3 GiB; since the baseline RSS +700.0 MiB, NMT +70.0 MiB, NMT explains 10% of the growth" in text
    assert "inflaters 3 alive, 1000 awaiting cleanup; deflaters 0 alive, 2 awaiting cleanup; about 41.0 MiB native" in text
    assert "policy auto; 4 trims released 900.0 MiB; the last released 300.0 MiB in 12.5 ms" in text
    assert re.search(r"^cgroup\s+limit 4\.0 GiB, usage 3\.5 GiB, OOM kills 1$", text, re.M), text
    # Call sites: per kind the largest first, five at most, the rest counted; the application's
    # names kept to one line with their controls escaped.
    sites = lines[lines.index("Call sites"):lines.index("Call sites") + 14]
    assert sites[1:4] == [
        "  zip streams",
        "    inflater     1412 unended,      3 pending  com.acme.Ingest.read(Ingest.java:88)"
        " (via java.util.zip.GZIPInputStream.<init>)",
        "    deflater        2 unended,      0 pending  com.acme.Pack.write(Pack.java:12)"], text
    assert sites[4] == "    and 4 other sites: 9 unended, 1 pending"
    assert sites[5] == "  direct buffers (sampled by bytes, one per 256.0 KiB on average)"
    assert sites[6] == ("      12.0 MiB live,    +3.0 MiB  com.acme.Cache.fill(Cache.java:41)"
                        " (via java.nio.ByteBuffer.allocateDirect)")
    assert sites[7] == ("    1024.0 KiB live,    -1.0 KiB  com.acme.Evil0\\u000a  [CRITICAL] forged\\u001b[2J"
                        ".run(Evil.java:0)"), sites[7]
    assert all(l.startswith("    1024.0 KiB live,") for l in sites[8:11]), sites
    # Two of the six beyond the first five, and "other"'s three.
    assert sites[11] == f"    and 5 other sites: {(2**20 - 1 - 4 + 2**20 - 1 - 5 + 5000) / 2**20:.1f} MiB live"
    assert sites[12] == "  threads (and 14 started before the agent or by the JVM)"
    assert sites[13] == ('       120 alive,   +110, "worker-*\\u202e"  com.acme.Server.accept(Server.java:77)'
                         " (via java.util.concurrent.ThreadPoolExecutor.execute)")
    assert lines[lines.index("Call sites") + 14] == ("         1 alive,     +0  java.lang.ref.Reference.<clinit>"
                                                     "(Reference.java:1) [JDK only]")
    assert not any("\x1b" in l or "\u202e" in l or l.startswith("  [CRITICAL] forged") for l in lines), text
    # Findings, most severe first, each with its evidence and remedy.
    f = lines[lines.index("Findings (3)"):]
    assert f[1] == "  [CRITICAL] oom-risk: limit in 40 min"
    assert f[2:5] == ["      - growth 100 MiB/h", f"      - limit {4 * 2**30}", "      remedy: raise the limit"]
    assert f[5] == "  [WARNING] malloc-retention: glibc retains 512 MiB free"
    assert f[7] == "      remedy: MALLOC_ARENA_MAX=2"
    assert f[8] == "  [INFO] nmt-off: NMT is off" and len(f) == 9
    values, types = parse_metrics(metrics)
    assert values[("offheap_doctor_rss_bytes", frozenset())] == 3 * 2**30
    classes = {dict(l)["class"]: v for (n, l), v in values.items() if n == "offheap_doctor_region_resident_bytes"}
    assert classes == {k: v["rss"] for k, v in FULL_SAMPLE["breakdown"]["classes"].items()}
    assert sum(classes.values()) == 3 * 2**30
    sev = {dict(l)["severity"]: v for (n, l), v in values.items() if n == "offheap_doctor_findings"}
    assert sev == {"critical": 1, "warning": 1, "info": 1}
    # One series per current finding, 1, labelled with its id and severity.
    found = {(dict(l)["id"], dict(l)["severity"]): v for (n, l), v in values.items() if n == "offheap_doctor_finding"}
    assert found == {("nmt-off", "info"): 1, ("malloc-retention", "warning"): 1, ("oom-risk", "critical"): 1}
    assert 'offheap_doctor_finding{id="malloc-retention",severity="warning"} 1' in metrics.splitlines()
    assert 'offheap_doctor_region_resident_bytes{class="malloc_arena"} 629145600' in metrics.splitlines()
    for name, kind in (("region_resident_bytes", "gauge"), ("trims_total", "counter"),
                       ("trim_released_bytes_total", "counter"), ("finding", "gauge")):
        assert f"# TYPE offheap_doctor_{name} {kind}" in metrics.splitlines(), name
        assert any(l.startswith(f"# HELP offheap_doctor_{name} ") for l in metrics.splitlines()), name
    assert not any("breakdown_rss_bytes" in l or "offheap_doctor_trim_total" in l for l in metrics.splitlines())
    assert values[("offheap_doctor_trims_total", frozenset())] == 4 and types["offheap_doctor_trims_total"] == "counter"
    assert values[("offheap_doctor_trim_released_bytes_total", frozenset())] == 900 * 2**20
    assert values[("offheap_doctor_nmt_coverage_ratio", frozenset())] == 0.1
    assert values[("offheap_doctor_nmt_committed_bytes", frozenset())] == 2400 * 2**20
    assert values[("offheap_doctor_zip_streams", frozenset({("kind", "inflater"), ("state", "pending")}))] == 1000
    assert values[("offheap_doctor_cgroup_limit_bytes", frozenset())] == 4 * 2**30


def test_top_sites_answers_the_list_of_a_kind_with_the_status(workloads):
    def top_sites(sample, *kinds):
        p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck", "sites", *kinds],
                           input=json.dumps(sample), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return {l.split(" ", 1)[0]: json.loads(l.split(" ", 1)[1]) for l in p.stdout.splitlines()}

    part = FULL_SAMPLE["sites"]
    got = top_sites(FULL_SAMPLE, "all", "zip", "direct", "threads")
    assert got["all"] == part
    assert got["zip"] == {"status": "on", "zip": part["zip"]}
    assert got["direct"] == {"status": "on", "direct": part["direct"], "direct_sample_bytes": 262144}
    assert got["threads"] == {"status": "on", "threads": part["threads"], "threads_untracked": 14}
    # The application's names come back as they were, escaped only as JSON escapes them.
    assert got["direct"]["direct"][1]["site"].startswith("com.acme.Evil0\n  [CRITICAL] forged\x1b[2J")
    # Before the first zip census the zip list is absent, not empty.
    no_zip = json.loads(json.dumps(FULL_SAMPLE))
    del no_zip["sites"]["zip"]
    assert top_sites(no_zip, "zip")["zip"] == {"status": "on"}
    # Off or unavailable, each kind answers with the status alone.
    off = json.loads(json.dumps(FULL_SAMPLE))
    off["sites"] = {"status": "unavailable", "problem": "no JVMTI"}
    assert top_sites(off, "all", "threads") == {"all": off["sites"], "threads": off["sites"]}


@pytest.mark.parametrize("sites,want", [
    ({"status": "off"}, ["Call sites      off"]),
    ({"status": "unavailable", "problem": "the JDK refused to retransform java.util.zip.Inflater\nfake line"},
     ["Call sites      unavailable: the JDK refused to retransform java.util.zip.Inflater\\u000afake line"]),
    (None, []),  # a report line of an agent that had no call sites
])
def test_text_report_says_in_one_line_why_it_has_no_call_sites(workloads, sites, want):
    sample = json.loads(json.dumps(FULL_SAMPLE))
    if sites is None:
        del sample["sites"]
    else:
        sample["sites"] = sites
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck"], input=json.dumps(sample),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = p.stdout.split("metrics\n")[0]
    assert [l for l in text.splitlines() if "Call sites" in l or "fake line" in l] == want, text
    assert re.search(r"^cgroup\s+limit", text, re.M), text


def test_text_report_and_metrics_give_resident_retention_beside_the_upper_bound(workloads):
    sample = json.loads(json.dumps(FULL_SAMPLE))
    sample["malloc"].update({"retained_max": 512 * 2**20, "retained_resident": 120 * 2**20,
                             "trimmable_resident": 100 * 2**20})
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck"], input=json.dumps(sample),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text, metrics = p.stdout.split("metrics\n")
    assert ("64 arenas; in use 88.0 MiB, free and resident 120.0 MiB (a trim would release about 100.0 MiB), "
            "free at most 512.0 MiB") in text, text
    values, _ = parse_metrics(metrics)
    assert values[("offheap_doctor_malloc_retained_bytes", frozenset())] == 512 * 2**20
    assert values[("offheap_doctor_malloc_retained_resident_bytes", frozenset())] == 120 * 2**20


def test_grafana_dashboard_queries_only_metrics_the_endpoint_serves(workloads):
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck"], input=json.dumps(FULL_SAMPLE),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    values, types = parse_metrics(p.stdout.split("metrics\n")[1])
    served = {n for n, _ in values}
    labels = {n: {k for k, _ in l} for n, l in values}
    dashboard = json.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        for t in panel["targets"]:
            for name in re.findall(r"offheap_doctor_[a-z_]+", t["expr"]):
                assert name in served, (panel["title"], name)
                queried.add(name)
            for by in re.findall(r"by \(([^)]*)\)", t["expr"]):
                name = re.search(r"offheap_doctor_[a-z_]+", t["expr"]).group(0)
                assert {b.strip() for b in by.split(",")} <= labels[name], t["expr"]
    assert {"offheap_doctor_rss_bytes", "offheap_doctor_region_resident_bytes", "offheap_doctor_malloc_retained_bytes",
            "offheap_doctor_malloc_arenas", "offheap_doctor_nmt_coverage_ratio", "offheap_doctor_zip_streams",
            "offheap_doctor_trims_total", "offheap_doctor_trim_released_bytes_total"} <= queried
