"""Call sites: the report names the code that made the unended zip streams, the live direct
buffers and the threads, checked against the workload's own stack (a Throwable made on the same
line as each allocation) and its own counts, on every JDK at hand."""

import json

import pytest

from harness import run_jvm
from jdks import ALL, MAIN

MiB = 1 << 20
OPTS = "interval=500ms,zipInterval=500ms,log=quiet,sites=on"


def jvm_args(jdk):
    # The JVM does not verify rewritten JDK classes unless asked: these runs ask.
    verify = ["-XX:+UnlockDiagnosticVMOptions", "-XX:+BytecodeVerificationLocal"]
    return verify + (["--enable-native-access=ALL-UNNAMED"] if jdk >= 24 else [])


def run(jdk, workloads, tmp_path, args, extra=""):
    report = tmp_path / "r.jsonl"
    r = run_jvm(jdk, "SiteLeaks", args, agent_opts=f"{OPTS},report={report}{extra}", jvm_args=jvm_args(jdk),
                classpath=workloads, report=report, timeout=120)
    assert r.rc == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "done" in r.stdout.splitlines(), r.stdout
    sites = {l.split()[1]: l.split()[2] for l in r.stdout.splitlines() if l.startswith("site ")}
    kept = int(next(l.split()[1] for l in r.stdout.splitlines() if l.startswith("kept ")))
    assert r.samples, r.stderr
    if "sites=off" not in extra:
        assert "hooks present" in r.stdout.splitlines(), r.stdout
    return r, sites, kept


def finding(sample, fid):
    return next((f for f in sample["findings"] if f["id"] == fid), None)


def mentions(f, text):
    return text in json.dumps(f)


@pytest.mark.parametrize("jdk", ALL)
def test_unclosed_gzip_streams_are_named_by_the_method_that_made_them(jdk, workloads, tmp_path):
    r, sites, kept = run(jdk, workloads, tmp_path, ["gzip", "300", "4"])
    last = r.samples[-1]
    assert last["sites"]["status"] == "on", last["sites"]
    top = last["sites"]["zip"][0]
    assert top["site"] == sites["inflater"], (top, sites)
    assert top["via"] == "java.util.zip.GZIPInputStream.<init>", top
    assert top["kind"] == "inflater" and top["alive"] == kept == 300 and top["pending"] == 0, top
    assert top["frames"][0] == top["site"] and top["frames"][1].startswith("SiteLeaks.main(SiteLeaks.java:"), top
    f = finding(last, "zip-unclosed")
    assert f is not None and mentions(f, sites["inflater"]), f


@pytest.mark.parametrize("jdk", ALL)
def test_a_direct_buffer_cache_is_named_with_its_live_bytes(jdk, workloads, tmp_path):
    r, sites, kept = run(jdk, workloads, tmp_path, ["direct", "48", "4"],
                         ",threshold.directMin=16m,threshold.directMinRss=0.05")
    last = r.samples[-1]
    direct = last["sites"]["direct"]
    top = direct[0]
    assert top["site"] == sites["direct"], (direct, sites)
    assert top["via"] == "java.nio.ByteBuffer.allocateDirect", top
    # Sampled by bytes: 1 MiB buffers are each sampled with a chance of 98%, weighted by its inverse.
    truth = kept * MiB
    assert abs(top["live_bytes"] - truth) <= 0.15 * truth, (top, truth)
    assert top["growth_bytes"] >= 0.8 * truth, top
    # The churned scratch buffers are another site, and never the top one.
    assert all(d["site"] != top["site"] for d in direct[1:])
    f = finding(last, "direct-buffers")
    assert f is not None and mentions(f, sites["direct"]), f


@pytest.mark.parametrize("jdk", ALL)
def test_a_thread_per_request_leak_is_named_with_its_name_pattern(jdk, workloads, tmp_path):
    r, sites, kept = run(jdk, workloads, tmp_path, ["threads", "80", "4"], ",threshold.threadGrowthMin=40")
    last = r.samples[-1]
    top = last["sites"]["threads"][0]
    assert top["site"] == sites["thread"], (top, sites)
    assert top["alive"] == kept == 80 and top["growth"] == 80, top
    assert top["names"][0] == {"pattern": "request-*", "alive": 80}, top
    # Threads started before the agent (the JVM's own, main) are counted apart, not as a site.
    assert last["sites"]["threads_untracked"] >= 1
    f = finding(last, "thread-growth")
    assert f is not None and mentions(f, sites["thread"]), f


@pytest.mark.parametrize("jdk", MAIN)
def test_a_steady_pool_names_its_site_but_raises_no_warning(jdk, workloads, tmp_path):
    r, sites, kept = run(jdk, workloads, tmp_path, ["pool", "200", "4"])
    last = r.samples[-1]
    pool = next(z for z in last["sites"]["zip"] if z["site"] == sites["pool"])
    # Ended when replaced: only the current 200 are unended.
    assert pool["alive"] == kept == 200 and "via" not in pool, pool
    for s in r.samples:
        f = finding(s, "zip-unclosed")
        assert f is None or f["severity"] == "info", f


@pytest.mark.parametrize("jdk", MAIN)
def test_sites_off_shows_none_and_rewrites_nothing(jdk, workloads, tmp_path):
    r, sites, kept = run(jdk, workloads, tmp_path, ["gzip", "50", "1"], ",sites=off")
    # Off is also the default.
    report = tmp_path / "default.jsonl"
    d = run_jvm(jdk, "SiteLeaks", ["gzip", "50", "1"], agent_opts=f"interval=500ms,log=quiet,report={report}",
                jvm_args=jvm_args(jdk), classpath=workloads, report=report, timeout=120)
    assert d.rc == 0 and "hooks absent" in d.stdout.splitlines(), d.stdout
    assert all(s["sites"] == {"status": "off"} for s in d.samples)
    assert all(s["sites"] == {"status": "off"} for s in r.samples), r.samples[-1]["sites"]
    # No hook class in the boot loader: no JDK method was rewritten to call one.
    assert "hooks absent" in r.stdout.splitlines(), r.stdout
    f = finding(r.samples[-1], "zip-unclosed")
    assert f is None or not mentions(f, sites["inflater"])


@pytest.mark.parametrize("jdk", MAIN)
def test_streams_made_too_fast_to_record_each_are_sampled_and_weighted_back(jdk, workloads, tmp_path):
    r, sites, kept = run(jdk, workloads, tmp_path, ["churn", "200000", "0"])
    last = r.samples[-1]
    churn = next(z for z in last["sites"]["zip"] if z["site"] == sites["churn"])
    # Beyond 256 a second per thread, one stream in 16 is recorded and stands for 16.
    assert churn["estimated"] is True, churn
    assert abs(churn["alive"] - kept) <= 0.25 * kept, (churn, kept)
