"""The Prometheus endpoint read by the real thing: Debian's `prometheus` scrapes a JVM with the
agent and answers, over its HTTP API, the values the agent wrote in its report; `promtool check
metrics` accepts what the endpoint serves, lint included. Both come from Debian's `prometheus`
package, which scripts/install-deps.sh installs."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from harness import AGENT_JAR, Background, command, read_report, vm_rss, wait_for_samples
from jdks import MAIN, ROOT, java
from test_operator import FULL_SAMPLE

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
if PROMETHEUS is None or PROMTOOL is None:
    from harness import prerequisite_missing
    prerequisite_missing("prometheus and promtool (scripts/install-deps.sh installs Debian's prometheus package)",
                         module=True)

JOB = "offheap-doctor"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def metric_value(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    return None


def attach_cmd(client, pid, *args):
    return subprocess.run([java(client), "-jar", str(AGENT_JAR), str(pid), *args],
                          capture_output=True, text=True, timeout=90)


def wait_until(what, check, timeout=60, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout}s (last: {last})")


class Prometheus:
    """A real Prometheus server on a free loopback port, scraping `target` every second, with its
    data in a temporary directory; always killed at the end."""

    def __init__(self, tmp_path, target):
        self.port = free_port()
        self.log = tmp_path / "prometheus.log"
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), start_new_session=True)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, q):
        return self.api("query", query=q)["result"]

    def target_up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        try:
            targets = self.api("targets")["activeTargets"]
        except OSError:
            return None
        return [t for t in targets if t["labels"].get("job") == JOB and t["health"] == "up"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def breakdown_rss(sample, cls):
    c = (sample.get("breakdown") or {}).get("classes", {}).get(cls)
    return c if isinstance(c, int) else (c or {}).get("rss")


def own_labels(metric):
    return frozenset((k, v) for k, v in metric.items() if k not in ("__name__", "job", "instance"))


@pytest.mark.parametrize("jdk", MAIN)
def test_a_real_prometheus_scrapes_the_values_the_agent_reported(jdk, workloads, tmp_path):
    agent_port = free_port()
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["120"], agent_opts=f"interval=500ms,prometheus=127.0.0.1:{agent_port},report={report}",
                  classpath=workloads)
    with Background(cmd) as app, Prometheus(tmp_path, f"127.0.0.1:{agent_port}") as prom:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 2)
        wait_until("the agent's target up in Prometheus", prom.target_up)
        # Two trims through the attach command: the counter must reach exactly 2, from 0.
        for _ in range(2):
            t = attach_cmd(jdk, app.pid, "trim")
            assert t.returncode == 0 and t.stdout.startswith("released "), (t.stdout, t.stderr)
        wait_until("trims_total 2 at /metrics", lambda: metric_value(scrape(agent_port), "offheap_doctor_trims_total") == 2)
        wait_until("trims_total 2 in Prometheus",
                   lambda: [r for r in prom.query(f'offheap_doctor_trims_total{{job="{JOB}"}}') if r["value"][1] == "2"])
        wait_until("five scrapes stored", lambda: [
            r for r in prom.query(f'count_over_time(offheap_doctor_samples_total{{job="{JOB}"}}[10m])')
            if float(r["value"][1]) >= 5])
        # The RSS Prometheus holds now is the process's (the same check as the endpoint's own test).
        rss_now = float(prom.query("offheap_doctor_rss_bytes")[0]["value"][1])
        vmrss = vm_rss(app.pid)
        assert abs(rss_now - vmrss) <= 0.10 * vmrss, (rss_now, vmrss)
        up = prom.query(f'up{{job="{JOB}"}}')
        assert [r["value"][1] for r in up] == ["1"], up
        # Every raw sample Prometheus stored, by series; a scrape's samples share its timestamp.
        stored = prom.query(f'{{__name__=~"offheap_doctor_.+",job="{JOB}"}}[10m]')
        # Every query of the Grafana dashboard is valid PromQL, and answers when its series are served.
        body = scrape(agent_port)
        served = {l.split(" ")[2] for l in body.splitlines() if l.startswith("# TYPE ")}
        dashboard = json.loads((Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        assert len(exprs) >= 9
        for expr in exprs:
            got = prom.query(expr.replace("$instance", ".*").replace("$__rate_interval", "1m"))
            if set(re.findall(r"offheap_doctor_[a-z_]+", expr)) <= served:
                assert got, expr
        app.kill()
        _, out, err = app.finish()
    assert not [l for l in (out + err).splitlines() if "in native method" in l], err

    series = {}
    for r in stored:
        name = r["metric"]["__name__"]
        for ts, value in r["values"]:
            series.setdefault(ts, {})[(name, own_labels(r["metric"]))] = float(value)
    samples = {s["seq"]: s for s in read_report(report)}
    scrapes = [(ts, got) for ts, got in sorted(series.items()) if ("offheap_doctor_samples_total", frozenset()) in got]
    assert len(scrapes) >= 5, sorted(series)
    assert len({got[("offheap_doctor_samples_total", frozenset())] for _, got in scrapes}) >= 3, scrapes
    trims, finding_ids = [], set()
    for ts, got in scrapes:
        seq = int(got[("offheap_doctor_samples_total", frozenset())])
        s = samples[seq]
        where = f"scrape at {ts}, sample {seq}"
        assert got[("offheap_doctor_rss_bytes", frozenset())] == s["totals"]["rss"], where
        assert got[("offheap_doctor_pss_bytes", frozenset())] == s["totals"]["pss"], where
        for cls in ("java_heap", "malloc_arena", "thread_stack", "jvm_metaspace", "mapped_file"):
            assert got[("offheap_doctor_region_resident_bytes", frozenset({("class", cls)}))] == breakdown_rss(s, cls), \
                (where, cls)
        assert got[("offheap_doctor_malloc_retained_bytes", frozenset())] == s["malloc"]["retained"], where
        assert got[("offheap_doctor_malloc_retained_resident_bytes", frozenset())] == \
            s["malloc"]["retained_resident"], where
        assert got[("offheap_doctor_malloc_arenas", frozenset())] == s["malloc"]["arena_count"], where
        assert got[("offheap_doctor_trims_total", frozenset())] == s["trim"]["count"], where
        assert got[("offheap_doctor_trim_released_bytes_total", frozenset())] == s["trim"]["released_total"], where
        trims.append(s["trim"]["count"])
        alloc = {n: dict(l) for n, l in got if n == "offheap_doctor_allocator_info"}
        assert alloc == {"offheap_doctor_allocator_info": {
            "allocator": s["allocator"]["kind"], "version": s["allocator"]["version"] or ""}}, (where, alloc)
        assert got[("offheap_doctor_trim_policy_info", frozenset({("mode", "off"), ("spec", "off")}))] == 1, where
        findings = {(dict(l)["id"], dict(l)["severity"]) for n, l in got if n == "offheap_doctor_finding"}
        assert findings == {(f["id"], f["severity"]) for f in s["findings"]}, where
        for severity in ("critical", "warning", "info"):
            assert got[("offheap_doctor_findings", frozenset({("severity", severity)}))] == \
                sum(1 for f in s["findings"] if f["severity"] == severity), (where, severity)
        finding_ids |= {i for i, _ in findings}
    assert trims == sorted(trims) and trims[0] == 0 and trims[-1] == 2, trims
    # NMT is off in this JVM: Prometheus holds the finding that says so.
    assert "nmt-off" in finding_ids, finding_ids
    # And promtool accepts what the endpoint served to it.
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", (check.stdout, check.stderr, body)


@pytest.mark.parametrize("jdk", MAIN)
def test_promtool_accepts_every_family_with_nmt_and_trimming_on(jdk, workloads, tmp_path):
    port = free_port()
    report = tmp_path / "r.jsonl"
    cmd = command(jdk, "Idle", ["60"], agent_opts=f"interval=300ms,trim=auto,prometheus={port},report={report}",
                  jvm_args=["-XX:NativeMemoryTracking=summary"], classpath=workloads)
    with Background(cmd) as app:
        app.wait_for_stdout("ready")
        wait_for_samples(report, 3)
        body = scrape(port)
        app.kill()
        _, out, err = app.finish()
    assert not [l for l in (out + err).splitlines() if "in native method" in l], err
    families = {l.split(" ")[2]: l.split(" ")[3] for l in body.splitlines() if l.startswith("# TYPE ")}
    for name in ("rss_bytes", "pss_bytes", "region_resident_bytes", "malloc_retained_bytes", "malloc_arenas",
                 "nmt_committed_bytes", "nmt_coverage_ratio", "zip_streams", "trims_total", "trim_policy_info",
                 "allocator_info", "findings", "samples_total", "last_sample_timestamp_seconds"):
        assert "offheap_doctor_" + name in families, (name, body)
    assert 'mode="auto"' in next(l for l in body.splitlines() if l.startswith("offheap_doctor_trim_policy_info{"))
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", (check.stdout, check.stderr, body)
    # The check can fail: the same text with a counter that lacks its _total suffix does not pass.
    broken = body.replace("offheap_doctor_trims_total", "offheap_doctor_trims")
    bad = subprocess.run([PROMTOOL, "check", "metrics"], input=broken, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "_total" in bad.stdout + bad.stderr, (bad.stdout, bad.stderr)


def test_promtool_accepts_the_metrics_of_a_sample_with_every_part(workloads):
    # A sample with every part, findings of each severity and a cgroup limit (test_operator's).
    p = subprocess.run([java(17), "-cp", f"{workloads}:{AGENT_JAR}", "RenderCheck"], input=json.dumps(FULL_SAMPLE),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    body = p.stdout.split("metrics\n")[1]
    assert 'offheap_doctor_finding{id="malloc-retention",severity="warning"} 1' in body.splitlines()
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", (check.stdout, check.stderr, body)


# --- The Grafana dashboard and the alert rules against what the endpoint serves ---

DOCS = ROOT / "docs"
DASHBOARD = DOCS / "grafana-dashboard.json"
ALERTS = DOCS / "prometheus-alerts.yml"
ENDPOINT_SOURCE = ROOT / "agent" / "src" / "main" / "java" / "io" / "offheapdoctor" \
    / "PrometheusEndpoint.java"
METRIC = re.compile(r"\boffheap_doctor_[a-z_]+")


def dashboard_queries(d):
    """Every PromQL text of the dashboard: panel targets and query variables."""
    out = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def test_the_dashboard_is_a_grafana_dashboard_model():
    d = json.loads(DASHBOARD.read_text())
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 36, d["schemaVersion"]
    assert d["title"] and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", d["uid"]), d["uid"]
    assert "id" not in d or d["id"] is None, "an exported dashboard carries no database id"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    assert d["panels"], "no panels"
    ids = [p["id"] for p in d["panels"]]
    assert len(set(ids)) == len(ids), ids
    for p in d["panels"]:
        assert p["type"] in ("timeseries", "table", "stat", "gauge", "row"), p["type"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")) and g["x"] + g["w"] <= 24, (p["title"], g)
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), (p["title"], refs)
        for t in p["targets"]:
            assert METRIC.search(t["expr"]), (p["title"], t["expr"])
            assert t.get("datasource", p["datasource"]) == p["datasource"], p["title"]
    # Every query names $instance, so the variable filters every panel.
    assert all("$instance" in q for q in dashboard_queries(d)[:-1]), dashboard_queries(d)


def test_every_metric_the_dashboard_and_the_alerts_name_is_served_and_linted_clean(workloads, tmp_path):
    """A JVM under a memory limit with a native drip, NMT, trims and zip streams: every family the
    dashboard or the alert rules query is on its scrape, and promtool lints it clean."""
    from test_diagnosis import FAST_RATE, make_memory_cgroup, remove_cgroup

    limit = 512 << 20
    group, why = make_memory_cgroup(f"offheap-doctor-dash-{os.getpid()}", limit)
    if group is None:
        pytest.skip(f"no memory cgroup with a limit can be made here: {why}")
    port = free_port()
    report = tmp_path / "r.jsonl"
    cmd = command(17, "NativeGrowth", ["deflaters=100", "await=2", "drip=150", "sleep=30000"],
                  agent_opts=f"interval=250ms,zipInterval=250ms,trim=auto,prometheus={port},report={report},{FAST_RATE}",
                  jvm_args=["-XX:NativeMemoryTracking=summary", "-XX:MaxDirectMemorySize=200m"], classpath=workloads)
    try:
        with Background(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *cmd]) as app:
            def with_time_to_limit():
                try:
                    b = scrape(port)
                except OSError:
                    return None  # not listening yet
                return b if "offheap_doctor_time_to_limit_seconds " in b else None

            body = wait_until("the oom-risk time to limit on the scrape", with_time_to_limit, timeout=60)
            app.kill()
    finally:
        remove_cgroup(group)
    served = {l.split(" ")[2] for l in body.splitlines() if l.startswith("# TYPE ")}
    # The dashboard's every query.
    named = {m for q in dashboard_queries(json.loads(DASHBOARD.read_text())) for m in METRIC.findall(q)}
    assert named and not named - served, (named - served, sorted(served))
    # The alert rules' every expression.
    rules = {m for m in METRIC.findall(ALERTS.read_text())}
    missing = rules - served
    # Resident retention comes with the endpoint that serves it; once its source names it, it must
    # be on the scrape like the rest.
    if "offheap_doctor_malloc_retained_resident_bytes" in missing \
            and "malloc_retained_resident_bytes" not in ENDPOINT_SOURCE.read_text():
        missing.discard("offheap_doctor_malloc_retained_resident_bytes")
    assert not missing, (missing, sorted(served))
    # The time left is the oom-risk finding's own, from the sample the scrape shows.
    when = metric_value(body, "offheap_doctor_last_sample_timestamp_seconds")
    sample = next(s for s in read_report(report) if abs(s["epoch_ms"] / 1000 - when) < 0.0005)
    oom = next(f for f in sample["findings"] if f["id"] == "oom-risk")
    ttl = next(e["raw"] for e in oom["evidence"] if e["key"] == "time_to_limit")
    assert abs(metric_value(body, "offheap_doctor_time_to_limit_seconds") - ttl) <= 0.5, ttl
    assert metric_value(body, "offheap_doctor_cgroup_limit_bytes") == limit
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", (check.stdout, check.stderr, body)
