"""Report rotation: with `reportMaxSize` and `reportFiles` the report is a bounded set of files,
`<report>`, `<report>.1`, ... (oldest in the highest number), each of whole JSON lines; rotation
happens between samples, so the sequence numbers and times run on across file boundaries with
nothing lost. The `html` command reads the set in order given the current file, and writes its
page as the agent writes its files (a link at `-o` is refused, never followed)."""

import json
import os
import subprocess

from harness import AGENT_JAR, Background, command, run_jvm
from jdks import java

KIB = 1 << 10


def rotated_set(report):
    """The files of the set, oldest first, as the agent names them (counted here, not by it)."""
    older = []
    n = 1
    while report.with_name(f"{report.name}.{n}").exists():
        older.append(report.with_name(f"{report.name}.{n}"))
        n += 1
    return list(reversed(older)) + [report]


def lines_of(files):
    out = []
    for f in files:
        raw = f.read_bytes()
        assert raw.endswith(b"\n"), f"{f} ends in half a line"
        for line in raw.decode("utf-8").splitlines():
            out.append((f, json.loads(line)))
    return out


def assert_continuous(samples):
    seqs = [s["seq"] for _, s in samples]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    times = [s["epoch_ms"] for _, s in samples]
    assert times == sorted(times)
    # A sample every 100 ms: no hole of seconds between neighbours, across file boundaries too
    # (loose: a loaded machine delays samples, and seq above is the exact check).
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 5000, gaps


def test_rotation_over_many_files_loses_no_line_and_splits_none(workloads, tmp_path):
    # Two JVMs side by side: one keeps every file (nothing lost anywhere), one keeps four (the
    # oldest go).
    every = tmp_path / "all" / "r.jsonl"
    four = tmp_path / "four" / "r.jsonl"
    every.parent.mkdir()
    four.parent.mkdir()
    opts = "interval=100ms,zipInterval=100ms,reportMaxSize=64k,report="
    apps = [Background(command(17, "Idle", ["7"], agent_opts=f"{opts}{every},reportFiles=1000", classpath=workloads)),
            Background(command(17, "Idle", ["7"], agent_opts=f"{opts}{four},reportFiles=4", classpath=workloads))]
    try:
        for app in apps:
            app.wait_for_stdout("ready")
        for app in apps:
            rc, _, err = app.finish(timeout=90)
            assert rc == 0, err
            assert "report file" not in err, err
    finally:
        for app in apps:
            app.__exit__(None, None, None)

    files = rotated_set(every)
    assert len(files) >= 8, files
    samples = lines_of(files)
    assert samples[0][1]["seq"] == 1
    assert_continuous(samples)
    for f in files:
        size = f.stat().st_size
        assert 0 < size <= 64 * KIB, (f, size)
        assert f.stat().st_mode & 0o777 == 0o600, f
    # Each rotated file was full: the next line would not have fitted.
    longest = max(len(l) for f in files for l in f.read_bytes().splitlines(keepends=True))
    for f in files[:-1]:
        assert f.stat().st_size > 64 * KIB - longest, f
    # No file outside the set either (no .0, no stray temporary).
    assert sorted(p.name for p in every.parent.iterdir()) == sorted(f.name for f in files)

    kept = rotated_set(four)
    assert [f.name for f in kept] == ["r.jsonl.3", "r.jsonl.2", "r.jsonl.1", "r.jsonl"]
    assert not four.with_name("r.jsonl.4").exists()
    samples4 = lines_of(kept)
    assert samples4[0][1]["seq"] > 1, "the oldest files should have gone"
    assert_continuous(samples4)

    # html given the current file reads the whole set, oldest first.
    out = tmp_path / "page.html"
    p = subprocess.run([java(17), "-jar", str(AGENT_JAR), "html", str(four), "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"{len(samples4)} samples from 4 files -> {out}" in p.stdout, p.stdout
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert out.stat().st_mode & 0o777 == 0o600


def test_a_report_already_past_its_size_rotates_at_the_first_sample(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    old = json.dumps({"schema": 1, "kind": "sample", "seq": 7, "epoch_ms": 1, "time": "old"}) + "\n"
    report.write_text(old * (80 * KIB // len(old) + 1))
    os.chmod(report, 0o600)
    before = report.read_bytes()
    r = run_jvm(17, "Idle", ["0.5"], agent_opts=f"interval=100ms,report={report},reportMaxSize=64k,reportFiles=2",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    assert report.with_name("r.jsonl.1").read_bytes() == before
    assert r.samples and r.samples[0]["seq"] == 1 and r.samples[0]["kind"] == "sample"


def test_bad_rotation_values_are_one_line_each_and_the_defaults(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(17, "Idle", ["0.3"], agent_opts=f"reportMaxSize=1k,reportFiles=0,interval=100ms,report={report}",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    lines = r.agent_lines()
    size = [l for l in lines if "reportMaxSize='1k'" in l]
    files = [l for l in lines if "reportFiles='0'" in l]
    assert len(size) == 1 and "keeping 64m" in size[0], lines
    assert len(files) == 1 and "keeping 4" in files[0], lines
    # The defaults: a few samples of a few KiB stay in one file.
    assert r.samples and not report.with_name("r.jsonl.1").exists()


def test_a_rotated_name_that_is_not_ours_stops_the_report_untouched(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o600)
    # A link where the rotation would move the current file: neither followed nor replaced.
    report.with_name("r.jsonl.1").symlink_to(victim)
    r = run_jvm(17, "Idle", ["2"], agent_opts=f"interval=100ms,report={report},reportMaxSize=16k,reportFiles=3",
                classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    stopped = [l for l in r.agent_lines() if "cannot rotate report file" in l]
    assert len(stopped) == 1 and "symbolic link" in stopped[0], r.agent_lines()
    assert victim.read_text() == "precious\n"
    assert report.with_name("r.jsonl.1").is_symlink()
    assert r.samples and report.stat().st_size <= 16 * KIB


def test_html_refuses_a_link_at_its_output(tmp_path):
    # Given the agent's own fixture report; the output is a link to a root 0600 file.
    report = tmp_path / "r.jsonl"
    report.write_text(json.dumps({"schema": 1, "kind": "sample", "seq": 1, "epoch_ms": 1000,
                                  "time": "2026-01-01T00:00:01.000Z"}) + "\n")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o600)
    out = tmp_path / "page.html"
    out.symlink_to(victim)
    p = subprocess.run([java(17), "-jar", str(AGENT_JAR), "html", str(report), "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "symbolic link" in p.stderr and str(out) in p.stderr, p.stderr
    assert victim.read_text() == "precious\n"
    assert out.is_symlink()
    # And no temporary file is left behind.
    assert sorted(x.name for x in tmp_path.iterdir()) == ["page.html", "r.jsonl", "victim"]
