"""The Prometheus alert rules shipped in docs/prometheus-alerts.yml: promtool accepts them, their
unit tests (tests/fixtures/prometheus/alerts_test.yml: synthetic series in, alerts out) pass, a
changed threshold makes those tests fail, and every summary names the finding whose remedy
applies."""

import re
import shutil
import subprocess

import pytest

from harness import prerequisite_missing
from jdks import ROOT

RULES = ROOT / "docs" / "prometheus-alerts.yml"
UNIT = ROOT / "tests" / "fixtures" / "prometheus" / "alerts_test.yml"
FINDINGS_RS = ROOT / "native" / "src" / "findings.rs"
PROMTOOL = shutil.which("promtool")


@pytest.fixture(autouse=True)
def _promtool():
    if PROMTOOL is None:
        prerequisite_missing("promtool (Debian package prometheus; scripts/install-deps.sh installs it)")


def promtool(*args, cwd=None):
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_checks_the_rules():
    p = promtool("check", "rules", RULES)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: 6 rules found" in p.stdout, p.stdout


def test_the_rules_unit_tests_pass():
    p = promtool("test", "rules", UNIT.name, cwd=UNIT.parent)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("old,new", [
    ("offheap_doctor_time_to_limit_seconds < 3600", "offheap_doctor_time_to_limit_seconds < 600"),
    ("> 0.25", "> 0.5"),
    ("offheap_doctor_nmt_coverage_ratio < 0.3", "offheap_doctor_nmt_coverage_ratio < 0.05"),
    ("* 3600 > 60", "* 3600 > 600"),
    ("offheap_doctor_last_sample_timestamp_seconds > 300", "offheap_doctor_last_sample_timestamp_seconds > 3000"),
])
def test_the_unit_tests_catch_a_changed_threshold(tmp_path, old, new):
    # The same unit tests against rules with one threshold moved: they must fail.
    text = RULES.read_text()
    assert text.count(old) == 1, old
    rules = tmp_path / "docs" / "prometheus-alerts.yml"
    rules.parent.mkdir()
    rules.write_text(text.replace(old, new))
    unit = tmp_path / "tests" / "fixtures" / "prometheus" / UNIT.name
    unit.parent.mkdir(parents=True)
    unit.write_text(UNIT.read_text())
    p = promtool("test", "rules", unit.name, cwd=unit.parent)
    assert p.returncode != 0 and "FAILED" in p.stdout + p.stderr, (old, new, p.stdout)


def test_every_summary_names_a_finding_the_agent_raises():
    ids = set(re.findall(r'pub const [A-Z_]+: &str = "([a-z-]+)";', FINDINGS_RS.read_text()))
    assert "oom-risk" in ids and "malloc-retention" in ids, ids
    summaries = re.findall(r'^\s+summary: "(.*)"$', RULES.read_text(), re.M)
    assert len(summaries) == 6, summaries
    for s in summaries:
        named = re.search(r"\((?:finding ([a-z-]+)|no finding: [^)]+)\)$", s)
        assert named, s
        if named.group(1):
            assert named.group(1) in ids, s
