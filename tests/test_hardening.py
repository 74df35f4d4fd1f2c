"""Hardening: whatever goes wrong around the agent (a bad option, a missing or garbled /proc or
cgroup file, a noexec temp directory, a broken native library, a SecurityManager, JDK internals
it cannot reach, the JVM ending at any moment), the application prints the same, exits the same,
and the agent says what happened in one line on stderr."""

import os
import random
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness import AGENT_JAR, PREFIX, command, observe, read_report, run_jvm
from jdks import ALL, MAIN, ROOT

OPTIONS_JAVA = ROOT / "agent" / "src" / "main" / "java" / "io" / "offheapdoctor" / "Options.java"

# The application every fault runs under: fixed output around some zlib work and a pause long
# enough for several samples, and an exit code of its own.
APP = ("Steady", ["1500", "3"])
# What Steady prints; the compressed size and its CRC depend on the zlib the JDK carries, so the
# agent's run is compared with a plain run on the same JDK, and only the shape is fixed here.
STEADY_OUT = r"start\ndeflated [1-9][0-9]* crc [0-9a-f]+\nend\n"

# A finding the agent logs at info level ("[warning] zip-unclosed: ..."), or its start line: not
# the agent's word about the fault under test.
FINDING = re.compile(r"^\[offheap-doctor\] \[\w+\] [a-z0-9-]+: ")
ROUTINE = ("started: sampling", "attached: sampling", "samples complete again")


def jdk_args(jdk):
    # JDK 24+ print a restricted-method warning (and the agent a line announcing it) unless native
    # access is enabled: that notice has its own tests; here it would only blur the count.
    return ["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else []


def run(cmd, cwd=None, env=None, timeout=60):
    full_env = dict(os.environ)
    for k in ("OFFHEAP_DOCTOR_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"):
        full_env.pop(k, None)
    full_env.update(env or {})
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"hung for {timeout}s: {' '.join(map(str, cmd))}\nstderr: {e.stderr}") from e
    observe(cmd, p.stdout, p.stderr)
    return p.returncode, p.stdout, p.stderr


def problem_lines(stderr):
    """The agent's lines about trouble: every line with its prefix but the start line and findings."""
    lines = [l for l in stderr.splitlines() if l.startswith(PREFIX)]
    return [l for l in lines if not FINDING.match(l) and not any(r in l for r in ROUTINE)]


def assert_quiet_host(stderr):
    """Nothing but the agent's lines and the JVM's own warnings: no stack trace, no crash."""
    assert "\tat " not in stderr and "Exception in thread" not in stderr, stderr
    assert "A fatal error has been detected" not in stderr, stderr


_plain = {}


def plain_run(jdk, workloads, main=APP[0], args=APP[1], jvm_args=(), wrap=None):
    key = (jdk, main, tuple(args), tuple(jvm_args), tuple(wrap or ()))
    if key not in _plain:
        cmd = command(jdk, main, args, None, list(jvm_args) + jdk_args(jdk), workloads, xcheck=False)
        _plain[key] = run(wrap_cmd(wrap, cmd))
    return _plain[key]


def wrap_cmd(wrap, cmd):
    """Runs `cmd` after the shell lines in `wrap` (mounts in a private mount namespace)."""
    if not wrap:
        return cmd
    script = " && ".join(list(wrap) + ['exec "$@"'])
    return ["unshare", "-m", "sh", "-c", script, "sh", *map(str, cmd)]


def run_with_agent(jdk, workloads, opts, jvm_args=(), wrap=None, env=None, xcheck=True):
    cmd = command(jdk, APP[0], APP[1], opts, list(jvm_args) + jdk_args(jdk), workloads, xcheck=xcheck)
    return run(wrap_cmd(wrap, cmd), env=env)


def assert_app_unchanged(jdk, workloads, rc, out, err, jvm_args=(), wrap=None):
    prc, pout, _ = plain_run(jdk, workloads, jvm_args=jvm_args, wrap=wrap)
    assert (rc, out) == (prc, pout), err
    assert re.fullmatch(STEADY_OUT, out), out
    assert_quiet_host(err)


# ---------------------------------------------------------------------------------------------
# 1. Every option with a bad value.

def bad_values(tmp_path):
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("not a directory\n")
    return {
        "interval": ("fast", "interval='fast'"),
        "report": (str(tmp_path), "cannot open report file"),
        "reportMaxSize": ("1k", "reportMaxSize='1k'"),
        "reportFiles": ("0", "reportFiles='0'"),
        "log": ("loud", "log='loud'"),
        "extractDir": (str(not_a_dir / "sub"), "cannot extract the native library"),
        "library": ("/nonexistent/liboffheap_doctor.so", "does not exist"),
        "trim": ("sometimes", "trim='sometimes'"),
        "trimRetained": ("lots", "trimRetained='lots'"),
        "trimRetainedRss": ("150%", "trimRetainedRss='150%'"),
        "trimMinInterval": ("5ms", "trimMinInterval='5ms'"),
        "trimMaxBackoff": ("0", "trimMaxBackoff='0'"),
        "trimRegainWindow": ("soon", "trimRegainWindow='soon'"),
        "trimQuietWait": ("-1s", "trimQuietWait='-1s'"),
        "arenaMax": ("-1", "arenaMax='-1'"),
        "mmapThreshold": ("huge", "mmapThreshold='huge'"),
        "trimThreshold": ("1x", "trimThreshold='1x'"),
        "topPad": ("-5", "topPad='-5'"),
        "zipCensus": ("maybe", "zipCensus='maybe'"),
        "sites": ("maybe", "sites='maybe'"),
        "nativeSites": ("maybe", "nativeSites='maybe'"),
        "nativeSitesRate": ("1k", "nativeSitesRate='1k'"),
        "mbean": ("sometimes", "mbean='sometimes' is not valid; choose auto, on or off; keeping auto"),
        "zipInterval": ("soon", "zipInterval='soon'"),
        "procRoot": ("/nonexistent/proc", "/nonexistent/proc/smaps"),
        "prometheus": ("99999", "prometheus='99999'"),
    }


def option_keys():
    return re.findall(r'k\.put\("(\w+)"', OPTIONS_JAVA.read_text())


def test_the_bad_value_table_covers_every_option(tmp_path):
    assert option_keys() and sorted(bad_values(tmp_path)) == sorted(option_keys())


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("key", option_keys())
def test_a_bad_value_for_any_option_is_one_line_and_the_app_is_unchanged(jdk, key, workloads, tmp_path):
    value, said = bad_values(tmp_path)[key]
    report = tmp_path / "r.jsonl"
    # The bad value comes last, so it is the one that counts where a key repeats.
    opts = f"interval=200ms,log=quiet,report={report},{key}={value}"
    rc, out, err = run_with_agent(jdk, workloads, opts)
    assert_app_unchanged(jdk, workloads, rc, out, err)
    lines = problem_lines(err)
    assert len(lines) == 1 and said in lines[0], lines
    if key != "report":
        # The agent carried on: it sampled, with its defaults or with less.
        assert len(read_report(report)) >= (1 if key == "interval" else 2), err


# ---------------------------------------------------------------------------------------------
# 2. /proc files missing, replaced by directories, or garbage (tests run as root: chmod 000
#    would not stop a read).

GARBAGE = bytes(range(256)) * 8 + b"\n7f0000000000-zz rw-p\nRss: lots kB\nVmRSS:\t-12 kB\n\xff\xfe\n"


def craft_proc(root, case):
    root.mkdir()
    real = Path("/proc/self")
    if case == "empty":
        return
    if case == "directories":
        for name in ("smaps", "smaps_rollup", "status"):
            (root / name).mkdir()
        return
    if case == "garbage":
        for name in ("smaps", "smaps_rollup", "status"):
            (root / name).write_bytes(GARBAGE)
        return
    if case == "status-only":
        (root / "status").write_text(real.joinpath("status").read_text())
        (root / "smaps_rollup").mkdir()
        return
    if case == "endless":
        # Files without end or too big (the real /proc has neither): refused or read up to a cap,
        # then one line.
        (root / "smaps").symlink_to("/dev/zero")
        with open(root / "status", "wb") as f:
            f.truncate(5 << 20)  # sparse, past the 4 MiB cap of small files
        (root / "smaps_rollup").write_text(real.joinpath("smaps_rollup").read_text())
        return
    if case == "truncated":
        smaps = real.joinpath("smaps").read_text()
        (root / "smaps").write_text(smaps[: len(smaps) // 2 + 7])
        (root / "smaps_rollup").write_text(real.joinpath("smaps_rollup").read_text()[:40])
        (root / "status").write_text(real.joinpath("status").read_text()[:200])
        return
    raise AssertionError(case)


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("case", ["empty", "directories", "garbage", "status-only", "truncated", "endless"])
def test_unreadable_or_garbled_proc_files_give_one_line_and_samples_go_on(jdk, case, workloads, tmp_path):
    proc = tmp_path / "proc"
    craft_proc(proc, case)
    report = tmp_path / "r.jsonl"
    rc, out, err = run_with_agent(jdk, workloads, f"procRoot={proc},interval=200ms,log=quiet,report={report}")
    assert_app_unchanged(jdk, workloads, rc, out, err)
    samples = read_report(report)
    assert len(samples) >= 2, err
    lines = problem_lines(err)
    # Every crafted root is broken, so every sample says so and the log says it once.
    assert all(s["problems"] for s in samples), [s["problems"] for s in samples]
    assert len(lines) == 1 and "sample incomplete" in lines[0], lines
    assert str(proc) in lines[0] or "status" in lines[0] or "smaps" in lines[0], lines
    for s in samples:
        t = s["totals"]
        if t is not None:
            assert t["rss"] >= 0 and t["anon"] + t["file"] + t["shmem"] == t["rss"], t
    if case == "status-only":
        assert samples[-1]["totals_source"] == "status" and samples[-1]["totals"]["rss"] > 0
    if case == "endless":
        assert "not a regular file" in lines[0] and "larger than 4 MiB" in lines[0], lines
        for s in samples:
            assert s["totals_source"] == "smaps_rollup" and s["totals"]["rss"] > 0, s["problems"]
            got = {p["source"]: p["message"] for p in s["problems"]}
            assert set(got) == {"smaps", "status"}, s["problems"]
            assert "not a regular file" in got["smaps"] and "larger than 4 MiB" in got["status"], got


def memory_cgroup_dir():
    """Where this process's memory cgroup files are (v1 memory controller, else v2)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    for l in lines:
        _, controllers, path = l.split(":", 2)
        if "memory" in controllers.split(","):
            mp = next(m.split()[4] for m in mounts if " - cgroup " in m and "memory" in m.split()[-1].split(","))
            return Path(mp), path
    path = next(l.split(":", 2)[2] for l in lines if l.startswith("0::"))
    mp = next(m.split()[4] for m in mounts if " - cgroup2 " in m)
    return Path(mp), path


@pytest.mark.parametrize("jdk", MAIN)
def test_garbled_cgroup_files_give_one_line_and_samples_go_on(jdk, workloads, tmp_path):
    mount_point, path = memory_cgroup_dir()
    # A private mount namespace hides the real hierarchy behind a tmpfs holding garbage where the
    # limit and usage files are expected (and a directory in place of one).
    crafted = tmp_path / "cgroup"
    leaf = crafted / path.lstrip("/")
    leaf.mkdir(parents=True)
    for name in ("memory.usage_in_bytes", "memory.max", "memory.current", "memory.stat"):
        (leaf / name).write_bytes(GARBAGE)
    (leaf / "memory.limit_in_bytes").mkdir()
    (leaf / "memory.events").mkdir()
    wrap = [f"mount -t tmpfs tmpfs {mount_point}", f"cp -a {crafted}/. {mount_point}/"]
    report = tmp_path / "r.jsonl"
    rc, out, err = run_with_agent(jdk, workloads, f"interval=200ms,log=quiet,report={report}", wrap=wrap)
    assert "unshare" not in err and "mount:" not in err, f"cannot build the mount namespace: {err}"
    assert_app_unchanged(jdk, workloads, rc, out, err, wrap=wrap)
    samples = read_report(report)
    assert len(samples) >= 2, err
    assert all(s["totals"]["rss"] > 0 for s in samples)
    assert any(p["source"] == "cgroup" for p in samples[-1]["problems"]), samples[-1]["problems"]
    lines = problem_lines(err)
    assert len(lines) == 1 and "cgroup" in lines[0], lines


# ---------------------------------------------------------------------------------------------
# 3. A noexec temp directory.

def test_mount_namespaces_work_here(tmp_path):
    """The noexec and cgroup tests need `unshare -m` and `mount`: fail loudly where they cannot."""
    d = tmp_path / "nx"
    d.mkdir()
    rc, out, err = run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o noexec tmpfs {d} && grep ' {d} ' /proc/self/mounts"])
    assert rc == 0 and "noexec" in out, f"unshare/mount not permitted here: {err}"


@pytest.mark.parametrize("jdk", MAIN)
def test_a_noexec_temp_directory_leaves_a_java_only_agent_with_one_line(jdk, workloads, tmp_path):
    d = tmp_path / "tmp"
    d.mkdir()
    wrap = [f"mount -t tmpfs -o noexec tmpfs {d}"]
    report = tmp_path / "r.jsonl"
    jvm_args = [f"-Djava.io.tmpdir={d}"]
    cmd = command(jdk, APP[0], APP[1], f"interval=200ms,log=quiet,report={report}", jvm_args + jdk_args(jdk),
                  workloads)
    rc, out, err = run(wrap_cmd(wrap, cmd))
    assert_app_unchanged(jdk, workloads, rc, out, err, jvm_args=jvm_args, wrap=wrap)
    lines = problem_lines(err)
    assert len(lines) == 1 and "noexec" in lines[0] and "extractDir" in lines[0], lines
    samples = read_report(report)
    assert samples and samples[0]["totals"] is None and samples[0]["problems"][0]["source"] == "native"
    # The remedy the line names works: an extractDir on an exec mount.
    exec_dir = tmp_path / "exec"
    cmd = command(jdk, APP[0], APP[1], f"extractDir={exec_dir},interval=200ms,log=quiet,report={report}.2",
                  jvm_args + jdk_args(jdk), workloads)
    rc, out, err = run(wrap_cmd(wrap, cmd))
    assert_app_unchanged(jdk, workloads, rc, out, err, jvm_args=jvm_args, wrap=wrap)
    assert problem_lines(err) == []
    assert read_report(f"{report}.2")[0]["totals"]["rss"] > 0


# ---------------------------------------------------------------------------------------------
# 4. Broken native libraries (missing and 32-bit ARM are in test_foundation.py).

def broken_library(tmp_path, kind):
    p = tmp_path / "liboffheap_doctor.so"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        # The first 4 KiB of the real library, as a copy cut short leaves it: dlopen itself would
        # die of SIGBUS on it, so the agent must refuse it first.
        with zipfile.ZipFile(AGENT_JAR) as jar:
            real = jar.read("io/offheapdoctor/native/linux-x86_64/liboffheap_doctor.so")
        p.write_bytes(real[:4096])
    elif kind == "directory":
        p.mkdir()
    elif kind == "foreign":
        # A real x86-64 shared library that is not ours: it loads, but has none of our natives.
        libz = next(l for l in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")
                    if Path(l).exists())
        shutil.copy(libz, p)
    return p


@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("kind", ["empty", "truncated", "directory", "foreign"])
def test_a_broken_native_library_is_one_line_and_a_java_only_agent(jdk, kind, workloads, tmp_path):
    lib = broken_library(tmp_path, kind)
    report = tmp_path / "r.jsonl"
    rc, out, err = run_with_agent(jdk, workloads, f"library={lib},interval=200ms,log=quiet,report={report}")
    assert_app_unchanged(jdk, workloads, rc, out, err)
    lines = problem_lines(err)
    assert len(lines) == 1 and str(lib) in lines[0] and "without the native core" in lines[0], lines
    samples = read_report(report)
    assert len(samples) >= 2 and all(s["totals"] is None for s in samples)


# ---------------------------------------------------------------------------------------------
# 5. A SecurityManager (JDK 17: the last LTS where it can be switched on from the command line).

def policy_file(tmp_path, workloads, agent_grants):
    p = tmp_path / "app.policy"
    text = f'grant codeBase "file:{workloads}/-" {{\n  permission java.lang.RuntimePermission "exitVM.*";\n}};\n'
    if agent_grants:
        text += f'grant codeBase "file:{AGENT_JAR}" {{\n' + "".join(f"  permission {g};\n" for g in agent_grants) + "};\n"
    p.write_text(text)
    return p


# Enough for the agent to start and sample, but no reflection into the JDK and no native code.
PARTIAL_GRANTS = [
    'java.lang.RuntimePermission "getenv.OFFHEAP_DOCTOR_OPTS"',
    'java.util.PropertyPermission "*", "read"',
    'java.lang.RuntimePermission "shutdownHooks"',
    'java.lang.RuntimePermission "accessUserInformation"',
    'java.lang.RuntimePermission "modifyThread"',
    'java.lang.management.ManagementPermission "monitor"',
    'javax.management.MBeanServerPermission "*"',
    'javax.management.MBeanPermission "*", "*"',
    'javax.management.MBeanTrustPermission "register"',
    'java.io.FilePermission "<<ALL FILES>>", "read,write"',
]


# All the agent needs, but no shutdown hook.
NO_HOOK_GRANTS = [g for g in PARTIAL_GRANTS if "shutdownHooks" not in g] + [
    'java.lang.RuntimePermission "loadLibrary.*"',
    'java.lang.reflect.ReflectPermission "suppressAccessChecks"',
    'java.lang.RuntimePermission "accessClassInPackage.*"',
    'java.lang.RuntimePermission "accessDeclaredMembers"',
    'java.io.FilePermission "<<ALL FILES>>", "delete"',
]


@pytest.mark.parametrize("grants", ["none", "partial", "no-hook"])
def test_a_restrictive_security_manager_never_stops_the_app(grants, workloads, tmp_path):
    jdk = 17
    policy = policy_file(tmp_path, workloads, {"none": [], "partial": PARTIAL_GRANTS, "no-hook": NO_HOOK_GRANTS}[grants])
    report = tmp_path / "r.jsonl"
    jvm_args = ["-Djava.security.manager", f"-Djava.security.policy=={policy}"]
    rc, out, err = run_with_agent(jdk, workloads, f"interval=200ms,log=quiet,report={report}", jvm_args=jvm_args)
    prc, pout, perr = plain_run(jdk, workloads, jvm_args=jvm_args)
    assert prc == 3 and re.fullmatch(STEADY_OUT, pout), (prc, pout, perr)
    assert (rc, out) == (prc, pout), err
    assert_quiet_host(err)
    lines = problem_lines(err)
    if grants == "no-hook":
        # Nothing is lost without the hook (report lines are flushed as written): nothing to say.
        assert lines == [], lines
        samples = read_report(report)
        assert len(samples) >= 2 and samples[-1]["totals"]["rss"] > 0, err
        return
    assert len(lines) == 1, lines
    if grants == "none":
        assert "disabled itself" in lines[0] and "AccessControlException" in lines[0], lines
    else:
        assert "without the native core" in lines[0] and "loadLibrary" in lines[0], lines
        samples = read_report(report)
        assert len(samples) >= 2 and samples[-1]["jvm"]["heap"]["max"] > 0, err


# ---------------------------------------------------------------------------------------------
# 6. The JDK internals the zip census reads made unreachable: redefineModule refuses to open them.

@pytest.mark.parametrize("jdk", MAIN)
def test_zip_census_without_jdk_internals_falls_back_in_one_line(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    jvm_args = ["-Doffheap.doctor.test.zipCensusOpenFails=true"]
    rc, out, err = run_with_agent(jdk, workloads, f"interval=200ms,report={report}", jvm_args=jvm_args)
    assert_app_unchanged(jdk, workloads, rc, out, err)
    lines = problem_lines(err)
    assert len(lines) == 1 and "zip census" in lines[0] and "redefineModule" in lines[0], lines
    zips = [s["zip"] for s in read_report(report)]
    assert len(zips) >= 2 and all(z["method"] == "histogram" for z in zips), zips
    # The fallback still counts: the JVM read the agent's own classes out of its jar through
    # Inflaters, so the heap holds at least one, reachable or not, and the histogram sees it.
    # (Exact counts through this route are test_zip_census's histogram test.)
    assert all(z["inflaters"]["instances"] >= 1 for z in zips), zips


@pytest.mark.parametrize("jdk", [j for j in ALL if j >= 17])
def test_the_agent_opens_no_jdk_package_to_the_class_path(jdk, workloads):
    # The census and the diagnostic commands read JDK internals through JNI: after samples and
    # census scans, the application's class path still cannot reach them. (JDK 11 opens java.base
    # to it anyway: --illegal-access=permit is its default.)
    r = run_jvm(jdk, "OpensCheck", ["1.5"], agent_opts="log=quiet,interval=200ms,zipInterval=200ms",
                classpath=workloads)
    assert r.rc == 0, r.stderr
    assert r.stdout.strip().endswith("jdk.internal.ref closed, java.util.zip closed"), r.stdout
    assert problem_lines(r.stderr) == []


@pytest.mark.parametrize("jdk", MAIN)
def test_without_the_native_core_the_census_reads_by_reflection(jdk, workloads, tmp_path):
    # The other route: no native core, so the census and the diagnostic commands use reflection,
    # after opening the packages they read (to the class path too, as the README says).
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "OpensCheck", ["1.5"], agent_opts=f"log=quiet,interval=200ms,report={report}",
                jvm_args=["-Doffheap.doctor.library=/nonexistent/liboffheap_doctor.so"], classpath=workloads,
                report=report)
    assert r.rc == 0, r.stderr
    assert r.stdout.strip().endswith("jdk.internal.ref open, java.util.zip open"), r.stdout
    jvm = r.samples[-1]["jvm"]
    assert jvm["zip"]["method"] == "cleaner" and jvm["zip"]["inflaters"]["alive"] is not None, jvm["zip"]
    assert "garbage-first heap" in jvm["heap_info"]


# ---------------------------------------------------------------------------------------------
# 7. Shutdown at any moment: System.exit and SIGTERM while samples, trims and census scans run,
#    with the native call sites sampler interposed in zlib's calls.

EXIT_RUNS = 200
TERM_RUNS = 50
PARALLEL = 4
HARD_TIMEOUT = 60


def read_until_ready(p, timeout):
    """ExitChurn's stdout up to its "ready" line (the agent and the churn are running by then)."""
    # Raw reads of the descriptor: nothing stays in a Python buffer that communicate() would miss.
    deadline = time.monotonic() + timeout
    seen = b""
    fd = p.stdout.fileno()
    while time.monotonic() < deadline and b"ready\n" not in seen:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")


def churn_once(jdk, workloads, delay_ms, code, term_after_ms):
    """One JVM of ExitChurn in its own cwd; returns (problem or None, how it ended).
    term_after_ms: None (no signal), ms after the start, or (True, ms) for ms after "ready"."""
    cwd = tempfile.mkdtemp(prefix="od-exit-")
    try:
        cmd = command(jdk, "ExitChurn", [delay_ms, code],
                      f"interval=100ms,trim=100ms,log=quiet,report={cwd}/r.jsonl,prometheus=127.0.0.1:0,sites=on,"
                      "nativeSites=on",
                      jdk_args(jdk), workloads,
                      xcheck=False)
        env = dict(os.environ)
        for k in ("OFFHEAP_DOCTOR_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"):
            env.pop(k, None)
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        seen = ""
        if term_after_ms is not None:
            after_ready, ms = term_after_ms if isinstance(term_after_ms, tuple) else (False, term_after_ms)
            if after_ready:
                seen = read_until_ready(p, HARD_TIMEOUT)
            time.sleep(ms / 1000)
            p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=HARD_TIMEOUT)
            out = seen + out
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            observe(cmd, out, err)
            return f"hang (> {HARD_TIMEOUT}s): {err[-2000:]}", "hang"
        observe(cmd, out, err)
        crashes = list(Path(cwd).glob("hs_err_pid*.log")) + list(Path(cwd).glob("core*"))
        if crashes:
            return f"crash: {crashes[0].read_text(errors='replace')[:3000]}", "crash"
        if "A fatal error has been detected" in out + err or "\tat " in err:
            return f"error output: {err[-2000:]}", "crash"
        if term_after_ms is None:
            if p.returncode != code or not out.endswith(f"exiting {code}\n"):
                return f"exit code {p.returncode} (want {code}), stdout {out!r}, stderr {err[-2000:]}", "wrong"
            return None, "exit"
        if p.returncode == 128 + signal.SIGTERM:
            return None, "sigterm-143"
        if p.returncode == -signal.SIGTERM and "ready" not in out:
            # The signal came before the JVM installed its handlers: the default action, as
            # without the agent.
            return None, "sigterm-before-handlers"
        if p.returncode == 1 and out.startswith("Error occurred during initialization of VM") and "ready" not in out:
            # The signal came while java.base initialises (System.initPhase2, before any agent
            # loads): the JDK's own "Bad level" InternalError, with or without the agent.
            return None, "sigterm-during-vm-init"
        return f"SIGTERM ended it with {p.returncode}, stdout {out!r}, stderr {err[-2000:]}", "wrong"
    finally:
        shutil.rmtree(cwd, ignore_errors=True)


def storm(workloads, runs):
    problems = []
    counts = {}
    with ThreadPoolExecutor(PARALLEL) as pool:
        for problem, how in pool.map(lambda a: churn_once(*a), [(r[0], workloads, *r[1:]) for r in runs]):
            counts[how] = counts.get(how, 0) + 1
            if problem:
                problems.append(problem)
    return counts, problems


def test_system_exit_at_any_moment_never_crashes_or_hangs(workloads):
    rnd = random.Random(10)
    runs = [(MAIN[i % 2], rnd.randint(0, 1500), rnd.choice([0, 1, 3, 42, 125]), None) for i in range(EXIT_RUNS)]
    t0 = time.monotonic()
    counts, problems = storm(workloads, runs)
    print(f"\n{EXIT_RUNS} System.exit runs in {time.monotonic() - t0:.0f}s: {counts}; problems: {len(problems)}")
    assert problems == [], problems[:3]
    assert counts == {"exit": EXIT_RUNS}


def test_sigterm_at_any_moment_never_crashes_or_hangs(workloads):
    # Half the signals land at a random moment from the start, start-up included (how long that
    # takes depends on the machine's load); the other half at a random moment after "ready", while
    # the agent samples, trims and scans: each of those must end as SIGTERM without the agent does.
    rnd = random.Random(11)
    runs = [(MAIN[i % 2], -1, 0, rnd.randint(0, 1500) if i % 2 else (True, rnd.randint(0, 1000)))
            for i in range(TERM_RUNS)]
    t0 = time.monotonic()
    counts, problems = storm(workloads, runs)
    print(f"\n{TERM_RUNS} SIGTERM runs in {time.monotonic() - t0:.0f}s: {counts}; problems: {len(problems)}")
    assert problems == [], problems[:3]
    assert counts.get("sigterm-143", 0) >= TERM_RUNS // 2, counts
