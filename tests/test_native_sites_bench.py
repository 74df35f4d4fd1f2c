"""The native call sites benchmark's plumbing: its short mode runs the fragmentation workload with
the sampler off and on, and a known leak under the sampler, and prints every figure line.
Figures, not a verdict: the goals are read by people."""

import re
import shutil
import subprocess
import sys
import zipfile

from harness import AGENT_JAR, jni_include_dir, prerequisite_missing
from jdks import ROOT

RATE = 512 * 1024


def test_native_sites_benchmark_short_mode_prints_every_figure():
    with zipfile.ZipFile(AGENT_JAR) as z:
        libs = [n for n in z.namelist() if n.endswith("/liboffheap_doctor.so")]
        if not libs or b"nativeSitesStart0" not in z.read(libs[0]):
            prerequisite_missing("a native core with the native call sites (Java_..._nativeSitesStart0)")
    if jni_include_dir(17) is None or not (shutil.which("cc") or shutil.which("gcc")):
        prerequisite_missing("a C compiler and the JNI headers of JDK 17 to build tests/native/leaky.c")
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "native_sites_bench.py"), "--short", "--jdk", "17"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    print(p.stdout)
    rows = re.findall(r"^17\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+\.\d{3})\s+(\d+\.\d)\s+(\d+\.\d)\s+([-+]\d+\.\d)"
                      r"\s+(\S+)/(\S+)\s+(\d+|-)\s+(\d+\.\d)$", p.stdout, re.M)
    assert len(rows) == 1, p.stdout
    rate, off, on, ratio, rss_off, rss_on, diff, status_off, status_on, sampled, spread = rows[0]
    # The agent's default rate, as the on run's report gave it.
    assert rate == "512k", rows
    assert int(off) > 0 and int(on) > 0, rows
    assert abs(float(ratio) - int(on) / int(off)) < 0.01, rows
    # Resident memory the JVM read itself: a 64 MiB heap and 16 threads' zlib streams leave more
    # than 32 MiB resident, and the difference is on minus off.
    assert float(rss_off) > 32 and float(rss_on) > 32, rows
    assert abs(float(diff) - (float(rss_on) - float(rss_off))) < 0.11, rows
    # Each run did what it asked: no sampler with off, a sampler that took samples with on.
    assert (status_off, status_on) == ("off", "on"), rows
    assert sampled != "-" and int(sampled) > 0, rows
    # One off run: no spread to measure yet.
    assert spread == "0.0", rows
    errors = re.findall(r"^17\s+(\S+)\s+(\d+\.\d)\s+(\d+)\s+(\d+\.\d)\s+(\d+\.\d)\s+([-+]\d+\.\d)\s+(\d+)\s+(\S+)$",
                        p.stdout, re.M)
    assert len(errors) == 1, p.stdout
    rate, leak, runs, mean, worst, bias, samples, status = errors[0]
    assert (rate, leak, runs, status) == ("512k", "64.0", "1", "on"), errors
    # One run: its mean error is its max, and the bias the same error signed. The leak's site was
    # found (sampled allocations behind it), so the figure is an estimate's error, not a miss.
    assert mean == worst and abs(float(bias)) == float(mean), errors
    assert int(samples) >= 64 * 1024 * 1024 // RATE // 4, errors
