"""Class-path code gets nothing from the agent's JNI route to JDK internals: no field of a JDK
object, no internal object, no address, and the JVM lives (JDK 17 and 25, no --add-opens)."""

import subprocess
import zipfile

import pytest

from harness import AGENT_JAR, run_jvm

SNEAK = """package io.offheapdoctor;

public class Sneak {
    public static Object run() {
        return java.util.Arrays.toString(NativeCore.zipCensus(1, 10, 1000)) + NativeCore.vmOption("MaxHeapSize");
    }
}
"""

ALLOWED_THROWN = {"IllegalArgumentException", "UnsupportedOperationException", "NativeException",
                  "NativeIoException", "NullPointerException"}


@pytest.fixture(scope="module")
def sneak(tmp_path_factory):
    """A class of the application's own in the agent's package, compiled against the jar."""
    d = tmp_path_factory.mktemp("sneak")
    src = d / "io" / "offheapdoctor" / "Sneak.java"
    src.parent.mkdir(parents=True)
    src.write_text(SNEAK)
    subprocess.run(["javac", "--release", "8", "-nowarn", "-cp", str(AGENT_JAR), "-d", str(d), str(src)], check=True)
    return d


def test_the_agent_package_is_sealed():
    with zipfile.ZipFile(AGENT_JAR) as z:
        manifest = z.read("META-INF/MANIFEST.MF").decode()
    assert "Sealed: true" in manifest.splitlines(), manifest


@pytest.mark.parametrize("jdk", [17, 25])
def test_class_path_code_gets_no_jdk_internals_from_the_agent(jdk, workloads, sneak, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "InternalsAbuse", ["io.offheapdoctor.Sneak"], agent_opts=f"log=quiet,interval=200ms,report={report}",
                classpath=f"{sneak}:{workloads}", report=report, timeout=240)
    assert r.rc == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout.splitlines()
    assert out[-1] == "abuse done", r.stdout[-3000:]
    assert "leaks none" in out, r.stdout[-3000:]
    assert "raw-id natives absent" in out
    natives = next(l for l in out if l.startswith("natives "))
    n_natives, n_calls = (int(x.split()[-1]) for x in natives.split(", "))
    assert n_natives >= 6 and n_calls > 500, natives
    thrown = next(l for l in out if l.startswith("thrown "))
    kinds = set(thrown[len("thrown ["):-1].split(", "))
    assert kinds <= ALLOWED_THROWN, kinds
    # The reflection helpers open nothing: the JDK refuses them as it refuses the application.
    for line in ("String.value", "Thread.eetop", "Unsafe.getUnsafe"):
        got = next(l for l in out if l.startswith(line + " "))
        assert got.split()[-1] in ("InaccessibleObjectException", "NoSuchFieldException"), got
    # The sealed package refuses a class of the application's own.
    sneak_line = next(l for l in out if l.startswith("sneak "))
    assert sneak_line.startswith("sneak SecurityException: sealing violation"), sneak_line
    assert r.jni_warnings() == []
    assert "# A fatal error" not in r.stdout + r.stderr
    # The agent went on sampling, its census included, through all of it.
    assert len(r.samples) >= 2 and r.samples[-1]["zip"]["method"] == "cleaner", r.samples[-1:]
