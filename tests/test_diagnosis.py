"""Diagnosis end to end: findings raised from real behaviour, with evidence and remedies, logged
once; growth measured from a baseline the operator can move; the timeline page of a report."""

import subprocess
from pathlib import Path

import pytest

from harness import AGENT_JAR, run_jvm
from jdks import MAIN, java

MiB = 1 << 20


def finding(sample, fid):
    return next((f for f in sample["findings"] if f["id"] == fid), None)


@pytest.mark.parametrize("jdk", MAIN)
def test_unclosed_deflaters_raise_zip_unclosed_once_with_evidence(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=400", "await=+3"],
                agent_opts=f"interval=200ms,zipInterval=100ms,report={report}", classpath=workloads, report=report,
                heap="128m")
    assert r.rc == 0, r.stderr
    first = r.samples[0]
    assert finding(first, "zip-unclosed") is None
    last = r.samples[-1]
    f = finding(last, "zip-unclosed")
    assert f and f["severity"] in ("warning", "critical")
    ev = {e["key"]: e for e in f["evidence"]}
    assert ev["deflaters_alive"]["raw"] >= 400
    assert ev["estimated_native"]["raw"] >= 400 * 262 * 1024
    assert "try-with-resources" in f["remedy"] and "end()" in f["remedy"]
    raised = [s for s in r.samples if "zip-unclosed" in s["findings_new"]]
    assert len(raised) == 1 and raised[0]["epoch_ms"] == f["since_ms"]
    logged = [l for l in r.agent_lines() if "zip-unclosed" in l]
    assert len(logged) == 1 and "[warning]" in logged[0] or "[critical]" in logged[0], logged


@pytest.mark.parametrize("jdk", MAIN)
def test_zlib_growth_under_nmt_is_native_outside_nmt(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2", "deflaters=2000", "await=+3"],
                agent_opts=f"interval=200ms,report={report}", jvm_args=["-XX:NativeMemoryTracking=summary"],
                classpath=workloads, report=report, heap="128m", timeout=90)
    assert r.rc == 0, r.stderr
    last = r.samples[-1]
    assert last["growth"]["series"]["rss"]["delta"] >= 128 * MiB
    f = finding(last, "native-outside-nmt")
    assert f, [x["id"] for x in last["findings"]]
    assert finding(last, "nmt-off") is None
    assert last["nmt"]["growth"]["coverage"] < 0.3


@pytest.mark.parametrize("jdk", MAIN)
def test_without_nmt_the_finding_says_how_to_turn_it_on(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=2"], agent_opts=f"interval=200ms,report={report}",
                classpath=workloads, report=report)
    f = finding(r.samples[-1], "nmt-off")
    assert f and f["severity"] == "info" and "-XX:NativeMemoryTracking=summary" in f["remedy"]


@pytest.mark.parametrize("jdk", MAIN)
def test_baseline_moves_when_the_operator_sets_it(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "Baseline", [], agent_opts=f"interval=200ms,report={report}", classpath=workloads,
                report=report, heap="128m")
    assert r.rc == 0, r.stderr
    marks = {l.split()[0]: int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith(("grown", "reset"))}
    before = [s for s in r.samples if s["epoch_ms"] <= marks["reset"]]
    after = [s for s in r.samples if s["epoch_ms"] > marks["reset"]]
    assert before[-1]["growth"]["series"]["rss"]["delta"] >= 60 * MiB
    # The latest sample at the time of the reset becomes the baseline.
    assert after[-1]["growth"]["baseline_ms"] == before[-1]["epoch_ms"]
    assert abs(after[-1]["growth"]["series"]["rss"]["delta"]) < 30 * MiB


@pytest.mark.parametrize("jdk", MAIN)
def test_timeline_page_of_a_report_is_self_contained(jdk, workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "NativeGrowth", ["await=1", "deflaters=300", "await=+3"],
                agent_opts=f"interval=200ms,zipInterval=100ms,report={report}", classpath=workloads, report=report)
    assert r.rc == 0
    with report.open("a") as f:
        f.write("not json\n")
    out = tmp_path / "page.html"
    p = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), "html", str(report), "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # The jar's Enable-Native-Access attribute covers `java -jar`: no JDK warning there.
    assert "WARNING" not in p.stderr, p.stderr
    assert f"{len(r.samples)} samples -> {out}" in p.stdout
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in html
    assert "src=\"http" not in html and "href=\"http" not in html
    assert "zip-unclosed" in html and "Skipped 1 line" in html
    missing = subprocess.run([java(jdk), "-jar", str(AGENT_JAR), "html", str(tmp_path / "none.jsonl")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "none.jsonl" in missing.stderr and len(missing.stderr.splitlines()) <= 5
