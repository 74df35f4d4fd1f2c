"""The foundation: the agent jar loads into real JVMs 11 to 25, samples on its interval, and
never changes what the application prints or how it exits."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from harness import AGENT_JAR, Background, command, observe, run_jvm, wait_for_samples
from jdks import ALL, MAIN, java


@pytest.mark.parametrize("jdk", ALL)
def test_samples_arrive_at_the_interval_and_rss_matches_vmrss(jdk, workloads, tmp_path):
    report = tmp_path / "report.jsonl"
    r = run_jvm(jdk, "Idle", ["2.0", "700"], agent_opts=f"interval=200ms,report={report}",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    assert r.jni_warnings() == []
    samples = r.samples
    # 2.7 s at 200 ms: about 13 samples, fewer when the JVM starts slowly on a loaded machine;
    # the spacing below is what proves the interval.
    assert 5 <= len(samples) <= 16, [s["seq"] for s in samples]
    assert [s["seq"] for s in samples] == list(range(1, len(samples) + 1))
    gaps = [b["epoch_ms"] - a["epoch_ms"] for a, b in zip(samples, samples[1:])]
    # On two busy cores a gap stretches whenever the sampler thread waits for a CPU, so the interval
    # is proven by the median gap (200 ms within 25%) and by three gaps in four within 150-450 ms;
    # an interval of 100 ms or 400 ms fails both.
    median = sorted(gaps)[len(gaps) // 2]
    assert 150 <= median <= 250, gaps
    assert sum(150 <= g <= 450 for g in gaps) >= 0.75 * len(gaps), gaps
    for s in samples:
        assert s["schema"] == 1 and s["kind"] == "sample"
        assert s["totals_source"] == "smaps"
        assert s["problems"] == []
        t = s["totals"]
        assert t["anon"] + t["file"] + t["shmem"] == t["rss"]
        assert 0 < t["pss"] <= t["rss"]
        assert s["jvm"]["java_version"].split(".")[0] in (str(jdk), "1")
    vmrss = int(re.search(r"VmRSS=(\d+)", r.stdout).group(1))
    printed_at = samples[0]["epoch_ms"] + 2000
    nearest = min(samples, key=lambda s: abs(s["epoch_ms"] - printed_at))
    assert abs(nearest["totals"]["rss"] - vmrss) <= 0.05 * vmrss, (nearest["totals"]["rss"], vmrss)


@pytest.mark.parametrize("jdk", ALL)
def test_exit_code_and_stdout_are_unchanged_by_the_agent(jdk, workloads, tmp_path):
    plain = run_jvm(jdk, "Hello", ["3"], classpath=workloads, xcheck=False)
    report = tmp_path / "r.jsonl"
    with_agent = run_jvm(jdk, "Hello", ["3"], agent_opts=f"interval=100ms,report={report},log=quiet",
                         classpath=workloads, report=report, xcheck=False)
    assert plain.rc == 3 and with_agent.rc == 3
    assert with_agent.stdout == plain.stdout == "hello 0\nhello 1\nhello 2\n"
    assert with_agent.agent_lines() == []
    # The sampler thread is a daemon: the JVM exits as soon as main returns.
    quick = run_jvm(jdk, "Hello", [], agent_opts="interval=1h", classpath=workloads, timeout=20)
    assert quick.rc == 0 and quick.stdout == plain.stdout


@pytest.mark.parametrize("jdk", MAIN)
def test_bad_options_each_print_one_line_and_defaults_stay(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "Idle", ["0.8"], agent_opts=f"interval=fast,log=loud,colour=red,noequals,report={report}",
                classpath=workloads, report=report)
    assert r.rc == 0 and r.stdout.startswith("ready\nVmRSS=")
    lines = r.agent_lines()
    assert any("interval='fast'" in l and "10s" in l for l in lines), lines
    assert any("log='loud'" in l and "quiet, info or debug" in l for l in lines), lines
    assert any("unknown option 'colour'" in l and "interval" in l for l in lines), lines
    assert any("'noequals'" in l for l in lines), lines
    assert any("started: sampling every 10s" in l for l in lines), lines
    assert len(r.samples) == 1


@pytest.mark.parametrize("jdk", MAIN)
def test_environment_options_apply_and_the_command_line_wins(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=4"], agent_opts="interval=200ms", classpath=workloads, report=report,
                env={"OFFHEAP_DOCTOR_OPTS": f"interval=30s,report={report}"})
    assert r.rc == 0, r.stderr
    assert any("sampling every 200ms" in l for l in r.agent_lines()), r.stderr
    assert len(r.samples) >= 4


@pytest.mark.parametrize("jdk", MAIN)
def test_missing_library_leaves_a_java_only_agent(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    # Idle long enough for the first Java-only sample on a loaded machine.
    r = run_jvm(jdk, "Idle", ["3"], agent_opts=f"report={report},interval=100ms",
                jvm_args=["-Doffheap.doctor.library=/nonexistent/liboffheap_doctor.so"],
                classpath=workloads, report=report)
    assert r.rc == 0 and r.stdout.startswith("ready\nVmRSS=")
    lines = r.agent_lines()
    assert any("/nonexistent/liboffheap_doctor.so does not exist" in l and "without the native core" in l
               for l in lines), lines
    assert r.samples and r.samples[0]["totals"] is None
    assert r.samples[0]["problems"][0]["source"] == "native"
    assert r.samples[0]["jvm"]["heap"]["max"] > 0


@pytest.mark.parametrize("jdk", MAIN)
def test_a_library_for_another_platform_is_refused_in_one_line(jdk, workloads, tmp_path):
    fake = tmp_path / "liboffheap_doctor.so"
    # An ELF header for a 32-bit ARM object: the loader must refuse it, the agent must say so.
    fake.write_bytes(b"\x7fELF\x01\x01\x01" + b"\x00" * 9 + b"\x03\x00\x28\x00" + b"\x00" * 200)
    r = run_jvm(jdk, "Idle", ["0.5"], agent_opts=f"library={fake}", classpath=workloads)
    assert r.rc == 0 and r.stdout.startswith("ready\nVmRSS=")
    lines = [l for l in r.agent_lines() if "cannot load native library" in l]
    assert len(lines) == 1 and "without the native core" in lines[0], r.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_extraction_dir_is_private_and_reused(jdk, workloads, tmp_path):
    d = tmp_path / "extract"
    for _ in range(2):
        r = run_jvm(jdk, "Idle", ["0.5"], agent_opts=f"extractDir={d},log=debug", classpath=workloads)
        assert r.rc == 0, r.stderr
    libs = list(d.glob("liboffheap_doctor-*.so"))
    assert len(libs) == 1, libs
    assert not list(d.glob("*.tmp"))
    # A shared temp directory (sticky, like /tmp) where the default directory is not private.
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    insecure = shared / f"offheap-doctor-{os.geteuid()}"
    insecure.mkdir()
    os.chmod(insecure, 0o777)
    r = run_jvm(jdk, "Idle", ["0.5"], agent_opts="log=debug", jvm_args=[f"-Djava.io.tmpdir={shared}"],
                classpath=workloads)
    assert r.rc == 0
    loaded = [l for l in r.agent_lines() if "loaded from" in l]
    assert loaded and str(insecure) + "/" not in loaded[0], loaded
    said = [l for l in r.agent_lines() if "using the fresh private directory" in l]
    assert len(said) == 1 and str(insecure) in said[0], r.stderr
    # The fresh directory was this JVM's alone and went with it.
    assert [p for p in shared.iterdir() if p != insecure] == []


@pytest.mark.parametrize("jdk", MAIN)
def test_native_errors_and_panics_arrive_in_java_as_exceptions(jdk, workloads):
    r = run_jvm(jdk, "SelfTest", [], agent_opts="log=quiet", classpath=workloads)
    assert r.rc == 0, r.stderr
    out = dict(l.split(" -> ", 1) for l in r.stdout.splitlines() if " -> " in l)
    assert r.stdout.count("ok -> returned ok") == 2
    assert out["io"].startswith("io.offheapdoctor.NativeIoException: cannot read /proc/self/offheap-doctor-self-test")
    assert "No such file" in out["io"]
    assert out["argument"] == "java.lang.IllegalArgumentException: invalid argument: self-test of an invalid argument"
    assert out["unsupported"].startswith("java.lang.UnsupportedOperationException: unsupported:")
    assert re.match(r"io\.offheapdoctor\.NativePanicException: native core panicked: self-test panic "
                    r"at native/src/jni_bridge\.rs:\d+", out["panic"]), out["panic"]
    assert "ok, io, argument, unsupported, panic" in out["nonsense"]
    assert out["null"].startswith("java.lang.IllegalArgumentException: what must not be null")
    assert "version 0." in r.stdout and r.stdout.rstrip().endswith("alive")
    assert r.jni_warnings() == []
    assert "panicked at" not in r.stderr  # the panic is reported through Java, not printed by Rust


@pytest.mark.parametrize("jdk", ALL)
def test_jdk_internals_jobs_through_jni_work_and_refuse_misuse_as_exceptions(jdk, workloads):
    # The route the census, the diagnostic commands and the platform beans take with the native
    # core loaded: each job gives what the JDK's public API gives (checked against it), and an
    # unknown index, a null or a second command line end as Java exceptions; -Xcheck:jni finds nothing.
    flags = ["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else []
    p = subprocess.run([java(jdk), "-Xcheck:jni", *flags, "-cp", f"{workloads}:{AGENT_JAR}",
                        "InternalsCheck"], capture_output=True, text=True, timeout=60)
    observe(p.args, p.stdout, p.stderr)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-10:] == [
        "census 1 1 0 0", "command true", "option true null", "bean true", "pools true",
        "unknown command: IllegalArgumentException", "second command: IllegalArgumentException",
        "null option: IllegalArgumentException", "unknown bean: IllegalArgumentException",
        "unknown part: IllegalArgumentException"], p.stdout
    assert "WARNING in native method" not in p.stdout + p.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_agent_attaches_to_a_running_jvm(jdk, workloads, tmp_path):
    report = tmp_path / "attached.jsonl"
    # -Xcheck:jni on the target: the attached agent's JNI calls are checked like a premain's.
    cmd = command(jdk, "Idle", ["20"], classpath=workloads)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        a = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), f"interval=200ms,report={report}"],
                           capture_output=True, text=True, timeout=60)
        assert a.returncode == 0, a.stderr
        assert f"loaded into {app.pid}" in a.stdout
        samples = wait_for_samples(report, 3)
        assert samples[0]["pid"] == app.pid
        assert samples[0]["totals"]["rss"] > 0
        # A second attach is harmless and says the agent already runs.
        b = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(app.pid), "interval=5s"],
                           capture_output=True, text=True, timeout=60)
        assert b.returncode == 0, b.stderr
        app.kill()
        rc, out, err = app.finish()
    assert "[offheap-doctor] attached: sampling every 200ms" in err
    assert "already running" in err


def test_jdk25_denied_native_access_never_aborts(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(25, "Idle", ["0.5"], agent_opts=f"report={report}", jvm_args=["--illegal-native-access=deny"],
                classpath=workloads, report=report)
    assert r.rc == 0 and r.stdout.startswith("ready\nVmRSS=")
    lines = r.agent_lines()
    assert any("--illegal-native-access=deny" in l and "--enable-native-access=ALL-UNNAMED" in l for l in lines), lines
    assert r.samples and r.samples[0]["totals"] is None


def test_jdk25_native_access_notice(workloads):
    warned = run_jvm(25, "Idle", ["0.5"], agent_opts="", classpath=workloads)
    assert warned.rc == 0
    lines = warned.stderr.splitlines()
    ours = next(i for i, l in enumerate(lines) if "'restricted method' warning below is expected" in l)
    jdk = next(i for i, l in enumerate(lines) if "A restricted method in java.lang.System has been called" in l)
    assert ours < jdk
    enabled = run_jvm(25, "Idle", ["0.5"], agent_opts="", jvm_args=["--enable-native-access=ALL-UNNAMED"],
                      classpath=workloads)
    assert enabled.rc == 0
    assert "restricted method" not in enabled.stderr
    assert "Java-only" not in enabled.stderr


@pytest.mark.parametrize("jdk", MAIN)
def test_report_file_is_private_and_never_written_through_a_link(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=1"], agent_opts=f"report={report}", classpath=workloads, report=report)
    assert r.rc == 0 and r.samples
    assert (report.stat().st_mode & 0o777) == 0o600
    target = tmp_path / "elsewhere.txt"
    target.write_text("")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    r2 = run_jvm(jdk, "NativeGrowth", ["await=1"], agent_opts=f"report={link}", classpath=workloads)
    assert r2.rc == 0
    assert target.read_text() == ""
    lines = [l for l in r2.agent_lines() if "symbolic link" in l]
    assert len(lines) == 1 and "sampling without a report file" in lines[0], r2.agent_lines()
