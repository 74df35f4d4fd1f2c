"""Option values at and beyond their bounds: the Java side and the native core take the same
grammar and the same limits (sizes up to 1024t, durations up to 8760h, `5min` as `5m`), so a value
out of bounds is one line on stderr and its option's default, and the native core stays on."""

import subprocess

from harness import AGENT_JAR, PREFIX, Background, command, run_jvm, wait_for_samples
from jdks import ROOT, java

MIB = 1 << 20
PIB = 1 << 50
YEAR_MS = 365 * 24 * 3_600_000

# Every size and duration option, each with a value far beyond its bound.
OVERSIZED = {
    "trimRetained": "999999999999999t",
    "trimMinInterval": "99999999999h",
    "trimRetainedRss": "1e1%",
    "mmapThreshold": "999999999999999t",
    "trimThreshold": "999999999999999t",
    "topPad": "999999999999999t",
    "zipInterval": "99999999999h",
    "trimRegainWindow": "99999999999h",
    "trimQuietWait": "99999999999h",
    "interval": "99999999999h",
    "threshold.retentionMin": "999999999999999t",
    "threshold.directRateMin": "999999999999999t/h",
    "threshold.oomRiskWarning": "99999999999h",
    "threshold.rateWindow": "99999999999h",
}


def native_active(sample):
    """The parts only the native core writes: /proc totals, the breakdown, the allocator."""
    return (sample.get("totals") or {}).get("rss", 0) > 0 and sample.get("breakdown") is not None \
        and sample.get("schema") == 1 and "native" not in {p.get("source") for p in sample.get("problems", [])}


def auto_policy(sample):
    """The settings these tests set; the mode carries others (the regain window, the quiet wait)."""
    mode = sample["trim"]["policy"]["mode"]
    keys = ("mode", "retained_bytes", "retained_rss_fraction", "min_interval_ms", "max_backoff")
    return {k: mode.get(k) for k in keys}


def test_each_oversized_value_is_one_line_and_its_default_with_the_native_core_on(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    opts = ",".join(f"{k}={v}" for k, v in OVERSIZED.items())
    r = run_jvm(17, "Idle", ["2"], agent_opts=f"{opts},trim=auto,report={report}", classpath=workloads,
                report=report)
    assert r.rc == 0, r.stderr
    lines = r.agent_lines()
    for key, value in OVERSIZED.items():
        mine = [l for l in lines if f"{key}='{value}'" in l]
        assert len(mine) == 1, (key, lines)
    assert not [l for l in lines if "Java-only" in l or "refused its configuration" in l], lines
    assert r.samples and all(native_active(s) for s in r.samples), r.samples[-1].get("problems")
    # The defaults stand: interval 10s (one sample in 2 s), the auto policy's own settings.
    assert "sampling every 10s" in r.stderr
    policy = auto_policy(r.samples[-1])
    assert policy == {"mode": "auto", "retained_bytes": 32 * MIB, "retained_rss_fraction": 0.05,
                      "min_interval_ms": 2000, "max_backoff": 16}, policy
    # The malloc settings were refused before reaching mallopt.
    assert r.samples[-1]["tuning"]["requested"] == [], r.samples[-1]["tuning"]


def test_java_and_the_native_core_agree_at_the_bounds(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    # At the bounds: taken by Java, passed on and taken by the core as given.
    opts = f"trim=auto,trimRetained=1024t,trimMinInterval=8760h,trimRetainedRss=100%,report={report},interval=500ms"
    cmd = command(17, "Idle", ["60"], agent_opts=opts, classpath=workloads)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        samples = wait_for_samples(report, 1)
        assert native_active(samples[-1])
        assert auto_policy(samples[-1]) == {"mode": "auto", "retained_bytes": PIB, "retained_rss_fraction": 1.0,
                                            "min_interval_ms": YEAR_MS, "max_backoff": 16}
        # Straight to the core (the attach command's policy text is not checked by Java): the
        # same values pass, one past the bound is refused with the same limit named.
        def policy(text):
            return subprocess.run([java(17), "-jar", str(AGENT_JAR), str(app.pid), "policy", text],
                                  capture_output=True, text=True, timeout=90)
        ok = policy("auto,retained=1024t,minInterval=8760h")
        assert ok.returncode == 0 and "retained=1125899906842624" in ok.stdout, (ok.stdout, ok.stderr)
        over = policy("auto,retained=1025t")
        assert over.returncode == 1 and "largest size, 1024t" in over.stderr, (over.stdout, over.stderr)
        over = policy("auto,minInterval=8761h")
        assert over.returncode == 1 and "longest duration, 8760h" in over.stderr, (over.stdout, over.stderr)
        five = policy("auto,minInterval=5min")
        assert five.returncode == 0 and "minInterval=300000ms" in five.stdout, (five.stdout, five.stderr)
        app.kill()
        _, _, err = app.finish()
    assert not [l for l in err.splitlines() if l.startswith(PREFIX) and "is not" in l], err
    # And one past the bound from the agent's options: one line each, from Java.
    r = run_jvm(17, "Idle", ["1"], agent_opts="trim=auto,trimRetained=1025t,trimMinInterval=8761h,"
                "threshold.retentionMin=1025t,threshold.oomRiskWarning=8761h", classpath=workloads)
    bad = [l for l in r.agent_lines() if "is not" in l]
    assert len(bad) == 4 and all("keeping the default" in l for l in bad), r.stderr


def test_five_min_means_five_minutes_on_both_sides(workloads, tmp_path):
    report = tmp_path / "r.jsonl"
    r = run_jvm(17, "Idle", ["1.5"],
                agent_opts=f"interval=500ms,zipInterval=5min,trim=auto,trimMinInterval=5min,"
                           f"threshold.rateMinSpan=5min,report={report}", classpath=workloads, report=report)
    assert r.rc == 0, r.stderr
    assert not [l for l in r.agent_lines() if "is not" in l or "not valid" in l], r.stderr
    assert r.samples and native_active(r.samples[-1])
    assert auto_policy(r.samples[-1])["min_interval_ms"] == 300_000
    # The Java side took zipInterval=5min: one census at the start, carried by the later samples
    # (the default 30s would also hold within 1.5 s: the line-free stderr above is the check).
    assert len(r.samples) >= 2
    assert len({s["zip"]["scan_ns"] for s in r.samples}) == 1, [s["zip"]["scan_ns"] for s in r.samples]
    # A unit the two sides never took is refused by both.
    bad = run_jvm(17, "Idle", ["0.5"], agent_opts="zipInterval=5mins,trim=auto,trimMinInterval=5mn",
                  classpath=workloads)
    assert len([l for l in bad.agent_lines() if "is not" in l]) == 2, bad.stderr


def test_the_java_side_gives_the_shared_table_what_the_native_side_gives_it(workloads):
    # The same rows run through units.rs in `cargo test` (the_shared_table_of_option_values).
    table = ROOT / "native" / "tests" / "fixtures" / "units" / "option_values.tsv"
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "OptionValuesCheck", str(table)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = [l.split("\t") for l in table.read_text(encoding="utf-8").splitlines()
            if l.strip() and not l.startswith("#")]
    got = [l.split("\t") for l in p.stdout.splitlines()]
    assert len(got) == len(rows) > 40
    for (kind, text, want), (gkind, gtext, value) in zip(rows, got):
        assert (gkind, gtext) == (kind, text)
        if want == "error":
            assert value == "error", (kind, text, value)
        else:
            assert value != "error" and abs(float(value) - float(want)) <= abs(float(want)) * 1e-12, \
                (kind, text, value, want)
