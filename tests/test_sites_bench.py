"""The call sites benchmark's plumbing: its short mode runs both workloads with sites on and off
and prints every figure line. Figures, not a verdict: the goals are read by people."""

import re
import subprocess
import sys

import pytest

from harness import AGENT_JAR
from jdks import ROOT, java


def jar_has_sites_option():
    """Whether the jar's usage lists the `sites` option (the benchmark compares its values)."""
    p = subprocess.run([java(17), "-jar", str(AGENT_JAR), "help"], capture_output=True, text=True, timeout=60)
    options = next((l for l in p.stdout.splitlines() if l.startswith("options: ")), "")
    return re.search(r"\bsites\b", options) is not None


def test_sites_benchmark_short_mode_runs():
    if not jar_has_sites_option():
        pytest.skip("this jar has no sites option to compare")
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "sites_bench.py"), "--short", "--jdk", "17"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    print(p.stdout)
    for name in ("zlib", "direct"):
        m = re.search(rf"^17\s+{name}\s+(\d+)\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d)\s+(\d+\.\d)\s+([-+]\d+\.\d)\s+(\S+)/(\S+)$",
                      p.stdout, re.M)
        assert m, (name, p.stdout)
        assert int(m.group(1)) > 0 and int(m.group(2)) > 0, m.group(0)
        # The agent did what each run asked: no call sites with sites=off, call sites with on.
        assert (m.group(7), m.group(8)) == ("off", "on"), m.group(0)
    assert re.search(r"^17\s+start-up\s+\d+\.\dms\s+\d+\.\dms\s+[-+]\d+\.\dms$", p.stdout, re.M), p.stdout
