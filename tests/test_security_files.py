"""Files another local user can plant: each test runs the attack as a second uid (setpriv, as root
in CI) against a JVM running as root, or runs the JVM as a uid without a passwd entry, and
asserts the attack fails while the application prints the same and exits the same.

- a library with the right name (and the bundled library's size and CRC-32) in a shared or
  foreign extract directory is never loaded: its constructor would leave a marker file;
- `agentpath <dir>` never prints a path to such a library;
- an extract directory that a passwd-less uid owns is that uid's own: no fresh copy per start;
- the timeline is never written through a link to a root-owned file;
- a report path that is a FIFO, another uid's file, a second name of a root file, or under a
  link another uid owns gets one line and no write.
"""

import ctypes
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from harness import AGENT_JAR, PREFIX, Background, command, read_report, wait_for_samples
from jdks import MAIN, java

ATTACKER = 12345
JDK = 17
LIB_ENTRY = "io/offheapdoctor/native/linux-x86_64/liboffheap_doctor.so"
# The application: fixed output around some zlib work, a pause long enough for samples, exit 3.
APP = ("Steady", ["1500", "3"])
APP_OUT = "start\ndeflated 1342 crc 12893114\nend\n"
FINDING = re.compile(r"^\[offheap-doctor\] \[\w+\] [a-z0-9-]+: ")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("cc"),
                                reason="needs root, setpriv and a C compiler to run the attacks")


def as_uid(uid, cmd):
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *map(str, cmd)]


def run(cmd, timeout=60):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OFFHEAP_DOCTOR_OPTS", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS")}
    try:
        p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"hung for {timeout}s: {' '.join(map(str, cmd))}\nstderr: {e.stderr}") from e
    return p.returncode, p.stdout, p.stderr


def attacker(*cmd):
    rc, out, err = run(as_uid(ATTACKER, cmd))
    assert rc == 0, f"the attacker's {cmd} failed: {err}"


def problem_lines(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith(PREFIX)]
    return [l for l in lines if not FINDING.match(l) and "started: sampling" not in l]


def start_line(stderr):
    lines = [l for l in stderr.splitlines() if "started: sampling" in l]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_app_unchanged(rc, out, err):
    assert (rc, out) == (3, APP_OUT), err
    assert "\tat " not in err and "A fatal error" not in err and "Exception in thread" not in err, err


def bundled_library():
    with zipfile.ZipFile(AGENT_JAR) as jar:
        return jar.read(LIB_ENTRY), jar.read(LIB_ENTRY + ".sha256").decode().split()[0]


def library_name():
    """The name the loader gives the bundled library: it carries the build-time SHA-256."""
    real, recorded = bundled_library()
    assert hashlib.sha256(real).hexdigest() == recorded, "the jar's recorded SHA-256 is not its library's"
    return f"liboffheap_doctor-{recorded[:16]}.so"


def forge_crc(data, target):
    """Four bytes that, appended to `data`, make its CRC-32 `target` (CRC-32 is linear)."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    by_top = {t >> 24: i for i, t in enumerate(table)}
    reg = target ^ 0xFFFFFFFF
    indices = []
    for _ in range(4):
        i = by_top[reg >> 24]
        indices.append(i)
        reg = ((reg ^ table[i]) << 8) & 0xFFFFFFFF
    reg = zlib.crc32(data) ^ 0xFFFFFFFF
    patch = bytearray()
    for i in reversed(indices):
        patch.append((reg ^ i) & 0xFF)
        reg = (reg >> 8) ^ table[i]
    forged = data + bytes(patch)
    assert zlib.crc32(forged) == target
    return forged


@pytest.fixture
def world():
    """A directory under /tmp every uid can reach (pytest's own is root's alone); removed after."""
    d = Path(tempfile.mkdtemp(prefix="offheap-sec-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def planted(world):
    """A library whose constructor leaves a marker: proof of a load, whoever loaded it. Padded to
    the bundled library's size with its CRC-32 forged, as the old reuse check compared them."""
    marker = world / "marker"
    src = world / "planted.c"
    src.write_text('#include <fcntl.h>\n#include <unistd.h>\n'
                   '__attribute__((constructor)) static void planted(void) {\n'
                   f'  int fd = open("{marker}", O_CREAT | O_WRONLY, 0644);\n'
                   '  if (fd >= 0) close(fd);\n}\n')
    so = world / "planted.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    real, _ = bundled_library()
    body = so.read_bytes()
    body += b"\0" * (len(real) - 4 - len(body))
    so.write_bytes(forge_crc(body, zlib.crc32(real)))
    so.chmod(0o755)
    # The marker works: loading the planted file leaves it.
    ctypes.CDLL(str(so))
    assert marker.exists()
    marker.unlink()
    assert len(so.read_bytes()) == len(real) and zlib.crc32(so.read_bytes()) == zlib.crc32(real)
    return so, marker


@pytest.fixture
def shared_workloads(world, workloads):
    out = world / "wl"
    shutil.copytree(workloads, out)
    for p in [out, *out.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return out


def mkdir(path, mode, uid=0):
    path.mkdir()
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def steady(workloads, opts, jvm_args=(), uid=None, jdk=JDK):
    cmd = command(jdk, APP[0], APP[1], opts, ["-XX:-UsePerfData", *jvm_args], workloads)
    return run(as_uid(uid, cmd) if uid is not None else cmd)


# ---------------------------------------------------------------------------------------------
# The native library.

@pytest.mark.parametrize("jdk", MAIN)
@pytest.mark.parametrize("where", ["sticky-shared", "another-uids", "ours-but-forged", "ours-changed-in-place"])
def test_a_planted_library_with_the_right_name_size_and_crc_is_never_loaded(jdk, where, world, planted,
                                                                            shared_workloads):
    so, marker = planted
    name = library_name()
    jtmp = mkdir(world / "jtmp", 0o700)
    if where == "sticky-shared":
        # /var/tmp or /dev/shm, as the noexec hint suggests: anybody may add a file.
        ext = mkdir(world / "ext", 0o1777)
        attacker("cp", so, ext / name)
    elif where == "another-uids":
        ext = mkdir(world / "ext", 0o755, ATTACKER)
        attacker("cp", so, ext / name)
    elif where == "ours-but-forged":
        # A directory of our own with a copy of our own whose bytes are not the build's.
        ext = mkdir(world / "ext", 0o700)
        shutil.copy(so, ext / name)
        (ext / name).chmod(0o600)
    else:
        # A copy the agent extracted and sealed as checked, then rewritten in place (same inode,
        # same size): the seal must not vouch for it.
        ext = mkdir(world / "ext", 0o700)
        rc, out, err = steady(shared_workloads, f"interval=200ms,log=quiet,extractDir={ext}", jdk=jdk)
        assert_app_unchanged(rc, out, err)
        assert sorted(p.name for p in ext.iterdir()) == [name, name + ".sha256"], list(ext.iterdir())
        ino = (ext / name).stat().st_ino
        with open(ext / name, "r+b") as f:
            f.write(so.read_bytes())
        assert (ext / name).stat().st_ino == ino
    before = (ext / name).read_bytes()
    report = world / "r.jsonl"
    rc, out, err = steady(shared_workloads, f"interval=200ms,log=quiet,extractDir={ext},report={report}",
                          [f"-Djava.io.tmpdir={jtmp}"] + (["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else []),
                          jdk=jdk)
    assert_app_unchanged(rc, out, err)
    assert not marker.exists(), "the planted library ran its constructor"
    samples = read_report(report)
    assert len(samples) >= 2 and samples[0]["totals"]["rss"] > 0, err  # the real core answered
    lines = problem_lines(err)
    if where.startswith("ours"):
        assert lines == []
        # Replaced by the real library (the name only says which build it should be).
        assert (ext / name).read_bytes() == bundled_library()[0]
    else:
        assert len(lines) == 1 and f"cannot extract the native library to {ext}" in lines[0] \
            and "fresh private directory" in lines[0], lines
        assert (ext / name).read_bytes() == before  # left alone, not loaded
        # The fresh directory went with the JVM: nothing piles up per start.
        assert list(jtmp.iterdir()) == []


def test_agentpath_prints_only_a_library_that_passed_the_rule(world, planted, shared_workloads):
    so, marker = planted
    name = library_name()
    ext = mkdir(world / "ext", 0o1777)
    attacker("cp", so, ext / name)
    jtmp = mkdir(world / "jtmp", 0o700)
    rc, out, err = run([java(JDK), f"-Djava.io.tmpdir={jtmp}", "-jar", AGENT_JAR, "agentpath", ext])
    assert rc == 0, err
    m = re.fullmatch(r"-agentpath:(\S+)=tune=auto\n", out)
    assert m, out
    lib = Path(m.group(1))
    assert lib.parent.parent == jtmp and lib.name == name, lib
    assert lib.read_bytes() == bundled_library()[0]
    lines = problem_lines(err)
    assert len(lines) == 1 and f"cannot extract the native library to {ext}" in lines[0], err
    # The printed flag loads the real library into a JVM; the planted one never runs.
    cmd = command(JDK, APP[0], APP[1], "interval=200ms,log=quiet", [out.strip(), "-XX:-UsePerfData"],
                  shared_workloads)
    rc, out, err = run(cmd)
    assert_app_unchanged(rc, out, err)
    assert not marker.exists()
    # A directory of the operator's own is used as given, the copy readable by all.
    mine = mkdir(world / "mine", 0o755)
    rc, out, err = run([java(JDK), "-jar", AGENT_JAR, "agentpath", mine, "arenaMax=2"])
    assert rc == 0 and out == f"-agentpath:{mine / name}=arenaMax=2\n" and err == "", err
    assert stat.S_IMODE((mine / name).stat().st_mode) == 0o644


def test_an_extract_dir_of_a_uid_without_a_passwd_entry_is_its_own(world, shared_workloads):
    with pytest.raises(KeyError):
        pwd.getpwuid(ATTACKER)
    jtmp = mkdir(world / "jtmp", 0o1777)  # the shared temp directory, like /tmp
    ext = mkdir(world / "ext", 0o700, ATTACKER)
    out_dir = mkdir(world / "out", 0o700, ATTACKER)
    inodes = {}
    for i, given in enumerate([f"extractDir={ext},", f"extractDir={ext},", "", ""]):
        report = out_dir / f"r{i}.jsonl"
        rc, out, err = steady(shared_workloads, f"{given}interval=200ms,log=quiet,report={report}",
                              [f"-Djava.io.tmpdir={jtmp}"], uid=ATTACKER)
        assert_app_unchanged(rc, out, err)
        assert problem_lines(err) == [], err
        assert read_report(report)[0]["totals"]["rss"] > 0, err
        where = ext if given else jtmp / f"offheap-doctor-{ATTACKER}"
        # The copy and its seal (the identity of the copy whose SHA-256 was checked), both 0600.
        files = sorted(where.iterdir())
        assert [f.name for f in files] == [library_name(), library_name() + ".sha256"], files
        assert all(f.stat().st_uid == ATTACKER and stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        inodes.setdefault(where, set()).add(files[0].stat().st_ino)
    # One copy each, reused at the second start; nothing else left in the temp directory.
    assert [len(v) for v in inodes.values()] == [1, 1], inodes
    # Without its seal, the copy is hashed: equal to the build's SHA-256, it is kept and sealed again.
    seal = ext / (library_name() + ".sha256")
    seal.unlink()
    rc, out, err = steady(shared_workloads, f"extractDir={ext},interval=200ms,log=quiet",
                          [f"-Djava.io.tmpdir={jtmp}"], uid=ATTACKER)
    assert_app_unchanged(rc, out, err)
    assert problem_lines(err) == [], err
    assert {(ext / library_name()).stat().st_ino} == inodes[ext]
    assert seal.read_text().split()[0] == bundled_library()[1]
    assert [p.name for p in jtmp.iterdir()] == [f"offheap-doctor-{ATTACKER}"]


# ---------------------------------------------------------------------------------------------
# The timeline and the report file.

def attach(pid, *args):
    return subprocess.run([java(JDK), "-jar", str(AGENT_JAR), str(pid), *args], capture_output=True, text=True,
                          timeout=90)


def test_the_timeline_is_never_written_through_a_planted_link(world, workloads):
    secret = world / "secret"
    secret.write_text("root's own\n")
    secret.chmod(0o600)
    sticky = mkdir(world / "sticky", 0o1777)
    foreign = mkdir(world / "foreign", 0o755, ATTACKER)
    attacker("ln", "-s", secret, sticky / "live.html")
    attacker("ln", "-s", secret, foreign / "live.html")
    mine = mkdir(world / "mine", 0o700)
    report = mine / "r.jsonl"
    cmd = command(JDK, "Idle", ["25"], f"interval=200ms,log=quiet,report={report}", ["-XX:-UsePerfData"],
                  workloads, xcheck=False)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 2)
        for target, why in ((sticky / "live.html", "is a symbolic link"),
                            (foreign / "live.html", f"which uid {ATTACKER} owns")):
            h = attach(app.pid, f"html={target}")
            assert h.returncode == 1 and h.stdout == "", h
            assert len(h.stderr.splitlines()) == 1 and why in h.stderr, h.stderr
        assert secret.read_text() == "root's own\n" and stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert [p.name for p in sticky.iterdir()] == ["live.html"]  # no temp file left behind
        # A page of our own is written, 0600, and a second write replaces it by rename.
        page = mine / "live.html"
        inodes = []
        for _ in range(2):
            h = attach(app.pid, f"html={page}")
            assert h.returncode == 0, h.stderr
            assert page.read_text().startswith("<!DOCTYPE html>")
            assert stat.S_IMODE(page.stat().st_mode) == 0o600
            inodes.append(page.stat().st_ino)
        assert inodes[0] != inodes[1]
        rc, out, err = app.finish(timeout=60)
    assert rc == 0 and out.startswith("VmRSS="), (out, err)
    assert [l for l in problem_lines(err)] == [], err


@pytest.mark.parametrize("case", ["fifo", "another-uids-file", "second-name-of-a-root-file", "linked-parent"])
def test_a_report_path_another_user_controls_is_one_line_and_no_write(case, world, shared_workloads):
    sticky = mkdir(world / "sticky", 0o1777)
    private = mkdir(world / "private", 0o700)
    report = sticky / "r.jsonl"
    untouched = None
    if case == "fifo":
        attacker("mkfifo", "-m", "666", report)
    elif case == "another-uids-file":
        attacker("sh", "-c", f"echo theirs > {report} && chmod 666 {report}")
        untouched = report
    elif case == "second-name-of-a-root-file":
        # What another uid does where fs.protected_hardlinks is 0 (here root makes the link).
        untouched = private / "shadow"
        untouched.write_text("root's own\n")
        untouched.chmod(0o600)
        os.link(untouched, report)
    else:
        attacker("ln", "-s", private, sticky / "dir")
        report = sticky / "dir" / "r.jsonl"
    before = untouched.read_bytes() if untouched else None
    start = time.monotonic()
    rc, out, err = steady(shared_workloads, f"interval=200ms,report={report}")
    assert time.monotonic() - start < 30
    assert_app_unchanged(rc, out, err)
    lines = problem_lines(err)
    assert len(lines) == 1 and f"cannot open report file {report}" in lines[0], lines
    assert "report" not in start_line(err).split("sampling")[1], err  # named only once it is open
    if untouched:
        assert untouched.read_bytes() == before
    if case == "fifo":
        assert stat.S_ISFIFO(os.lstat(report).st_mode)
    if case == "linked-parent":
        assert f"{sticky / 'dir'} is a symbolic link of uid {ATTACKER}" in lines[0], lines
        assert list(private.iterdir()) == []


def test_a_report_of_our_own_is_appended_and_named(world, shared_workloads):
    """The control: the same sticky directory, a path nobody planted."""
    sticky = mkdir(world / "sticky", 0o1777)
    report = sticky / "r.jsonl"
    for runs in (1, 2):
        rc, out, err = steady(shared_workloads, f"interval=200ms,report={report}")
        assert_app_unchanged(rc, out, err)
        assert problem_lines(err) == [] and start_line(err).endswith(f"report {report}"), err
        seqs = [s["seq"] for s in read_report(report)]
        assert seqs.count(1) == runs, seqs
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
