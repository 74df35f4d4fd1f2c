"""The Prometheus endpoint and the attach CLI against clients and targets that do not play fair.

The endpoint: a request head that never ends does not delay another scrape; 2000 connections
opened at once neither take the application's file descriptors (it opens 600 files meanwhile,
under `ulimit -n 1024`) nor grow its RSS; only GET/HEAD of /metrics is served, a request head
is capped in size; binding beyond loopback is said on stderr.

The CLI: a target that registers its own bean under the agent's name gets its escape sequences
stripped from what the CLI prints and its unexpected classes refused by the deserialization
filter; root attaching to another uid's JVM is warned."""

import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import AGENT_JAR, PREFIX, Background, command, run_jvm, vm_rss, wait_for_samples
from jdks import MAIN, java

WORKERS = 4
HEAD_TIMEOUT_S = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, request, timeout=10):
    """Sends raw bytes, returns (seconds until the answer was complete, the answer)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return time.monotonic() - start, b"".join(chunks)


def scrape(port, timeout=10):
    return http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", timeout)


def first_scrape(port, timeout=30):
    """The first answer: the endpoint starts after the agent's first sample, so wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port)[1]
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def status_of(answer):
    return int(answer.split(b" ", 2)[1])


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("jdk", MAIN)
def test_a_half_sent_request_does_not_delay_another_scrape(jdk, workloads, tmp_path):
    port = free_port()
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], agent_opts=f"interval=500ms,prometheus={port},report={report}",
                  classpath=workloads)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 1)
        first = first_scrape(port)
        assert status_of(first) == 200 and b"offheap_doctor_rss_bytes" in first, first[:300]
        # One client per worker sends a request head without its end and keeps its socket open.
        stalled = []
        for _ in range(WORKERS - 1):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            stalled.append(s)
        opened = time.monotonic()
        took, answer = scrape(port)
        assert status_of(answer) == 200 and b"offheap_doctor_rss_bytes" in answer, answer[:300]
        assert took < 2, f"a scrape took {took:.2f}s while {len(stalled)} half-sent requests were open"
        print(f"scrape with {len(stalled)} half-sent requests open: {took * 1000:.0f} ms")
        # The server gives up on each after its head timeout: it closes them, nothing answers.
        for s in stalled:
            s.settimeout(HEAD_TIMEOUT_S + 5)
            assert s.recv(1024) == b""
            s.close()
        waited = time.monotonic() - opened
        assert HEAD_TIMEOUT_S - 0.5 <= waited <= HEAD_TIMEOUT_S + 3, waited
        # A head that trickles in a byte at a time gets no longer than a silent one.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            start = time.monotonic()
            closed = False
            for b in b"GET /metrics HTTP/1.1\r\nHost: " + b"x" * 200:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.05)
                if time.monotonic() - start > HEAD_TIMEOUT_S + 3:
                    break
            if not closed:
                s.settimeout(5)
                try:
                    closed = s.recv(1024) == b""
                except ConnectionResetError:
                    closed = True
            assert closed and time.monotonic() - start <= HEAD_TIMEOUT_S + 3
        # Only GET and HEAD of /metrics; a head larger than 8 KiB is refused.
        _, head = http(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(head) == 200 and head.endswith(b"\r\n\r\n") and b"Content-Length: " in head, head
        _, post = http(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert status_of(post) == 405 and b"Allow: GET, HEAD" in post, post
        _, other = http(port, b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(other) == 404 and b"root:" not in other, other
        _, big = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert status_of(big) == 431, big[:200]
        _, garbage = http(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
        assert status_of(garbage) == 400, garbage[:200]
        took, answer = scrape(port)
        assert status_of(answer) == 200 and took < 2, took
        app.kill()
        _, _, err = app.finish()
    # Loopback: no line about listening beyond it.
    assert "beyond loopback" not in err, err


@pytest.mark.parametrize("jdk", MAIN)
def test_two_thousand_connections_neither_starve_the_application_of_files_nor_grow_its_rss(jdk, workloads, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2100, "the test client needs 2100 descriptors"
    port = free_port()
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "FdChurn", agent_opts=f"interval=1s,prometheus={port},report={report}", classpath=workloads)
    # The application's own limit stays at 1024, as on many hosts.
    limited = ["sh", "-c", 'ulimit -n 1024 && exec "$@"', "sh", *cmd]
    with Interactive(limited) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 2)
        assert "1024" in [l.split()[3] for l in Path(f"/proc/{app.pid}/limits").read_text().splitlines()
                          if l.startswith("Max open files")]
        assert status_of(first_scrape(port)) == 200
        time.sleep(1)
        rss_before = vm_rss(app.pid)
        fds_before = open_fds(app.pid)
        cpu_before = cpu_seconds(app.pid)
        storm = []
        for _ in range(2000):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            storm.append(s)
        time.sleep(2)
        fds_during = open_fds(app.pid)
        rss_during = vm_rss(app.pid)
        # The application opens 600 files at once while the 2000 connections are open.
        line = ask(app, "open 600")
        assert line == "opened 600", line
        fds_late = open_fds(app.pid)
        for s in storm:
            s.close()
        cpu_storm = cpu_seconds(app.pid) - cpu_before
        # Once the clients are gone, a scrape is answered again within the head timeout or so.
        deadline = time.monotonic() + HEAD_TIMEOUT_S * 3
        while True:
            try:
                took, answer = scrape(port, timeout=HEAD_TIMEOUT_S * 3)
                if status_of(answer) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no scrape answered after the storm"
        rss_after = vm_rss(app.pid)
        app.kill()
        app.finish()
    mib = 1 << 20
    print(f"fds before {fds_before} during {fds_during} late {fds_late}; rss before {rss_before / mib:.1f} MiB"
          f" during {rss_during / mib:.1f} after {rss_after / mib:.1f}; cpu during the storm {cpu_storm:.2f}s")
    assert fds_during <= fds_before + WORKERS + 2, (fds_before, fds_during)
    assert fds_late <= fds_before + WORKERS + 2, (fds_before, fds_late)
    assert rss_during - rss_before <= 4 * mib, (rss_before, rss_during)
    # After: the young generation has taken the garbage of 2000 accepted sockets; heap pages count too.
    assert rss_after - rss_before <= 6 * mib, (rss_before, rss_after)
    assert cpu_storm < 3, cpu_storm


class Interactive(Background):
    """A Background JVM whose stdin the test writes to."""

    def __init__(self, cmd):
        env = dict(os.environ)
        for k in ("JAVA_TOOL_OPTIONS", "OFFHEAP_DOCTOR_OPTS", "JDK_JAVA_OPTIONS"):
            env.pop(k, None)
        # The harness's bookkeeping (its -Xcheck:jni check reads what the JVM printed).
        self.cmd = cmd
        self._stdout_seen = []
        self._observed = False
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True)

    def __exit__(self, *exc):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        super().__exit__(*exc)


def ask(app, line, timeout=30):
    app.proc.stdin.write(line + "\n")
    app.proc.stdin.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = app.proc.stdout.readline()
        if out:
            return out.strip()
    raise AssertionError(f"no answer to {line!r}")


def test_binding_beyond_loopback_is_said_on_stderr(workloads):
    r = run_jvm(17, "Idle", ["1.5"], agent_opts="interval=300ms,log=quiet,prometheus=0.0.0.0:0", classpath=workloads)
    assert r.rc == 0, r.stderr
    lines = [l for l in r.agent_lines() if "beyond loopback" in l]
    assert len(lines) == 1, r.stderr
    assert "prometheus=0.0.0.0:" in lines[0] and ":0/" not in lines[0], lines


HOSTILE_BYTES = [b"\x1b", b"\x07", b"\r", b"\x7f", "\u009b".encode(), "\u202e".encode(), "\u202c".encode()]


def cli(jdk, pid, *args):
    return subprocess.run([java(jdk), "-jar", str(AGENT_JAR), str(pid), *args], capture_output=True, timeout=90)


def assert_printable(out):
    for b in HOSTILE_BYTES:
        assert b not in out, (b, out)


@pytest.mark.parametrize("jdk", MAIN)
def test_the_cli_prints_no_control_characters_and_deserializes_no_stray_class_from_the_target(jdk, workloads):
    # A target whose bean, registered under the agent's name, answers with escape sequences.
    with Background(command(jdk, "FakeDoctor", ["60"], classpath=workloads)) as app:
        app.wait_for_stdout("ready")
        r = cli(jdk, app.pid, "report")
        assert r.returncode == 0, r.stderr
        assert_printable(r.stdout)
        assert_printable(r.stderr)
        # What is text stays, escape sequences go whole (no "[2J" or "]0;pwned" left behind).
        assert r.stdout.decode() == "title clear redREDRED cr".replace("REDRED", "RED") + \
            "OVER c1 bidievil bell del keep\ttab\nline2 caf\u00e9\n", r.stdout
        # Its JSON answer is an object no JMX client needs: the filter refuses it unread.
        j = cli(jdk, app.pid, "json")
        assert j.returncode == 1 and j.stdout == b"", (j.stdout, j.stderr)
        assert b"REJECTED" in j.stderr and b"deserialization filter refused it unread" in j.stderr, j.stderr
        assert b"service:jmx" not in j.stderr and b"/stub/" not in j.stderr, j.stderr
        app.kill()
        app.finish()


def test_root_attaching_to_another_users_jvm_is_warned(workloads):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    # The classes where uid 12345 can read them.
    classes = Path(tempfile.mkdtemp(prefix="offheap-doctor-other-"))
    classes.chmod(0o755)
    for c in workloads.glob("FakeDoctor*.class"):
        shutil.copy(c, classes / c.name)
        (classes / c.name).chmod(0o644)
    try:
        cmd = ["setpriv", "--reuid=12345", "--regid=12345", "--clear-groups",
               *command(17, "FakeDoctor", ["60"], classpath=classes, xcheck=False)]
        with Background(cmd) as app:
            app.wait_for_stdout("ready")
            uid = [l.split()[2] for l in Path(f"/proc/{app.pid}/status").read_text().splitlines()
                   if l.startswith("Uid:")]
            assert uid == ["12345"], uid
            r = cli(17, app.pid, "report")
            err = r.stderr.decode()
            warning = [l for l in err.splitlines() if "warning: running as root against" in l]
            assert len(warning) == 1 and f"{app.pid}, a JVM of uid 12345" in warning[0], err
            assert "sudo -u '#12345'" in warning[0], warning
            # The attach itself works as root, and the answer is stripped as for any target.
            assert r.returncode == 0 and b"RED" in r.stdout, (r.stdout, err)
            assert_printable(r.stdout)
            app.kill()
            app.finish()
        # Root against root's own JVM: no warning.
        with Background(command(17, "FakeDoctor", ["60"], classpath=workloads)) as own:
            own.wait_for_stdout("ready")
            r = cli(17, own.pid, "report")
            assert r.returncode == 0 and b"warning" not in r.stderr, r.stderr
            own.kill()
            own.finish()
    finally:
        shutil.rmtree(classes, ignore_errors=True)
