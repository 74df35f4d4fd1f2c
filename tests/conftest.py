import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import AGENT_JAR  # noqa: E402

WORKLOADS = Path(__file__).resolve().parent / "workloads"


def pytest_sessionstart(session):
    # Sockets of JVMs killed in earlier runs: a JVM of this run that gets the same pid would
    # otherwise meet one on its first attach (the stale-socket test makes its own).
    for sock in Path("/tmp").glob(".java_pid*"):
        pid = sock.name[len(".java_pid"):]
        if pid.isdigit():
            harness.forget_attach_socket(int(pid))


@pytest.fixture(scope="session")
def agent_jar():
    if not AGENT_JAR.exists():
        pytest.fail(f"{AGENT_JAR} is missing: build it with 'mvn -f agent/pom.xml package' (scripts/test.sh does)")
    return AGENT_JAR


@pytest.fixture(scope="session")
def workloads(tmp_path_factory, agent_jar):
    """The test workloads, compiled once to Java 8 bytecode against the agent jar."""
    out = tmp_path_factory.mktemp("workloads")
    sources = sorted(str(p) for p in WORKLOADS.glob("*.java"))
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(agent_jar), "-d", str(out), *sources],
                   check=True, capture_output=True, text=True)
    return out


def _jni_failure(found):
    return "-Xcheck:jni complained about a JVM this test started:\n" + "\n".join(
        f"  {cmd}\n    " + "\n    ".join(lines[:5]) for cmd, lines in found)


@pytest.fixture(autouse=True)
def no_jni_complaints():
    """Fails the test when a JVM it started through the harness printed a -Xcheck:jni warning;
    JVMs still running when the test body ends (fixtures') are checked at teardown."""
    harness.take_jni_complaints()
    yield
    found = harness.take_jni_complaints()
    if found:
        pytest.fail(_jni_failure(found), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    # Checked here too so the complaint fails the test itself, not only its teardown.
    result = yield
    found = harness.take_jni_complaints()
    if found:
        pytest.fail(_jni_failure(found), pytrace=False)
    return result
