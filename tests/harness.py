"""Launches a fresh JVM per test with the built agent jar, a per-test report file and a hard
timeout, and hands back what the process printed and the parsed report lines."""

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jdks import ROOT, java

AGENT_JAR = Path(os.environ.get("OFFHEAP_DOCTOR_JAR", ROOT / "agent" / "target" / "offheap-doctor.jar"))
PREFIX = "[offheap-doctor]"
JNI_COMPLAINTS = ("WARNING in native method", "FATAL ERROR in native method")

# What every JVM started through this module printed during the current test; conftest.py fails
# the test when any of it is a -Xcheck:jni complaint. Tests that start a JVM themselves hand its
# output to observe().
_observed = []


def observe(cmd, stdout, stderr):
    """Records a finished JVM's output for the -Xcheck:jni check of the current test."""
    _observed.append((" ".join(str(c) for c in cmd), stdout or "", stderr or ""))


def take_jni_complaints():
    """The -Xcheck:jni complaints seen since the last call, each with the command that printed it,
    and forgets what was observed."""
    found = []
    for cmd, out, err in _observed:
        lines = [l for l in (out + "\n" + err).splitlines() if any(c in l for c in JNI_COMPLAINTS)]
        if lines:
            found.append((cmd, lines))
    _observed.clear()
    return found


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    report: Path | None
    elapsed: float
    samples: list = field(default_factory=list)

    def agent_lines(self):
        return [l for l in self.stderr.splitlines() if l.startswith(PREFIX)]

    def jni_warnings(self):
        """What -Xcheck:jni complains about, on either stream."""
        text = self.stdout + "\n" + self.stderr
        return [l for l in text.splitlines() if any(c in l for c in JNI_COMPLAINTS)]


def prerequisite_missing(what, module=False):
    """Something a test needs is absent: under CI=true an error naming it, elsewhere a skip naming
    it (scripts/install-deps.sh installs what can be installed)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"missing prerequisite (CI=true makes this an error): {what}", pytrace=False)
    pytest.skip(f"missing prerequisite: {what}", allow_module_level=module)


def read_report(path):
    if path is None or not Path(path).exists():
        return []
    lines = Path(path).read_text().splitlines()
    return [json.loads(l) for l in lines if l.strip()]


def agent_arg(opts):
    if opts is None:
        return []
    return [f"-javaagent:{AGENT_JAR}" + (f"={opts}" if opts else "")]


def command(jdk, main, args=(), agent_opts=None, jvm_args=(), classpath=None, xcheck=True, heap="64m"):
    cmd = [java(jdk), f"-Xmx{heap}", "-Xshare:auto"]
    if xcheck:
        cmd.append("-Xcheck:jni")
    cmd += list(jvm_args)
    cmd += agent_arg(agent_opts)
    if classpath:
        cmd += ["-cp", str(classpath)]
    cmd.append(main)
    cmd += [str(a) for a in args]
    return cmd


def run_jvm(jdk, main, args=(), agent_opts=None, jvm_args=(), classpath=None, env=None,
            timeout=60, report=None, xcheck=True, heap="64m"):
    """Runs a JVM to completion (killed at `timeout`, which fails the test)."""
    cmd = command(jdk, main, args, agent_opts, jvm_args, classpath, xcheck, heap)
    full_env = dict(os.environ)
    full_env.pop("OFFHEAP_DOCTOR_OPTS", None)
    full_env.pop("JAVA_TOOL_OPTIONS", None)
    full_env.pop("JDK_JAVA_OPTIONS", None)
    if env:
        full_env.update(env)
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"JVM did not finish within {timeout}s: {' '.join(cmd)}\n"
                             f"stdout: {e.stdout}\nstderr: {e.stderr}") from e
    observe(cmd, p.stdout, p.stderr)
    r = Run(p.returncode, p.stdout, p.stderr, Path(report) if report else None, time.monotonic() - start)
    r.samples = read_report(report)
    return r


def forget_attach_socket(pid):
    """Removes the attach socket a JVM killed with SIGKILL leaves in /tmp, once it is dead: a
    later process with the same pid would find it and fail to attach ("Connection refused")."""
    try:
        os.kill(pid, 0)
        return
    except ProcessLookupError:
        pass
    except PermissionError:
        return
    sock = Path(f"/tmp/.java_pid{pid}")
    try:
        if stat.S_ISSOCK(sock.lstat().st_mode):
            sock.unlink()
    except OSError:
        pass


def jni_include_dir(jdk=17):
    """The include directory (with jni.h) of the JDK whose `java` the suite runs as `jdk`, found
    through its links (/usr/bin/java is a link into the JDK); None when that JDK ships no headers
    (a jlinked runtime)."""
    home = Path(os.path.realpath(java(jdk))).parent.parent
    include = home / "include"
    return include if (include / "jni.h").exists() and (include / "linux" / "jni_md.h").exists() else None


def build_leaky_library(out_dir, jdk=17):
    """tests/native/leaky.c built with cc into `out_dir` as libleaky.so (JNI headers of `jdk`);
    its absolute path. The JNI ABI is the same on every JDK, so one build serves them all."""
    include = jni_include_dir(jdk)
    if include is None:
        prerequisite_missing(f"the JNI headers of JDK {jdk} (include/jni.h next to {java(jdk)})")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        prerequisite_missing("a C compiler (cc) to build tests/native/leaky.c")
    lib = Path(out_dir).resolve() / "libleaky.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-g", "-Wall", "-Werror", f"-I{include}", f"-I{include / 'linux'}",
                    "-o", str(lib), str(ROOT / "tests" / "native" / "leaky.c")],
                   check=True, capture_output=True, text=True, timeout=120)
    return lib


class Background:
    """A JVM left running while the test does something to it; always killed at the end. With
    `stdin=True` its standard input is a pipe that send() writes lines to."""

    def __init__(self, cmd, env=None, stdin=False):
        self.cmd = cmd
        # Lines wait_for_stdout consumed: -Xcheck:jni writes its complaints to stdout.
        self._stdout_seen = []
        self._observed = False
        full_env = dict(os.environ)
        full_env.pop("JAVA_TOOL_OPTIONS", None)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def wait_for_stdout(self, marker, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            self._stdout_seen.append(line)
            if marker in line:
                return line
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError(f"no '{marker}' on stdout within {timeout}s")

    def send(self, line):
        """Writes one line to the JVM's standard input (started with stdin=True)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read_until(self, marker, timeout=30):
        """The stdout lines up to and including the first one holding `marker`."""
        start = len(self._stdout_seen)
        self.wait_for_stdout(marker, timeout)
        return [l.rstrip("\n") for l in self._stdout_seen[start:]]

    def finish(self, timeout=30):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            self._observe(out, err)
            raise AssertionError(f"background JVM did not finish within {timeout}s; stderr: {err}")
        self._observe(out, err)
        return self.proc.returncode, out, err

    def _observe(self, out, err):
        if not self._observed:
            self._observed = True
            observe(self.cmd, "".join(self._stdout_seen) + (out or ""), err)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        forget_attach_socket(self.proc.pid)
        if not self._observed:
            # Dead after the kill, so reading each stream to its end cannot block; read() also
            # returns what readline() buffered and communicate() would not see.
            try:
                self.proc.wait(timeout=10)
                out = self.proc.stdout.read() if self.proc.stdout else ""
                err = self.proc.stderr.read() if self.proc.stderr else ""
            except (subprocess.TimeoutExpired, ValueError, OSError):
                out, err = "", ""
            self._observe(out, err)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.stdout:
            self.proc.stdout.close()
        if self.proc.stderr:
            self.proc.stderr.close()


def wait_for_samples(report, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = read_report(report)
        if len(s) >= count:
            return s
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} samples in {report} after {timeout}s: {read_report(report)}")


def vm_rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
