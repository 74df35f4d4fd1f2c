"""The Kubernetes recipe (docs/kubernetes.md, docs/kubernetes/*.yaml): its YAML parses into the
objects it claims, its names agree (port, volume, annotations), and its exact JAVA_TOOL_OPTIONS
line starts a JVM with the agent and its native core on a tree the JVM's user cannot write except
the emptyDir stand-in: in a private mount namespace, a tmpfs for the emptyDir (world-writable, as
kubelet makes it) prepared by the init container's own script, every world-writable directory
(/tmp, /var/tmp, /run/lock) and the checkout bound read-only, the JVM run as the pod's uid."""

import json
import os
import re
import shutil
import subprocess

import pytest

from harness import AGENT_JAR, PREFIX, prerequisite_missing
from jdks import ROOT, java

try:
    import yaml
except ImportError:
    prerequisite_missing("PyYAML (scripts/install-deps.sh installs it into .venv)", module=True)

RECIPE = ROOT / "docs" / "kubernetes"
UID = 10001
IMAGE_JAR = "/offheap-doctor.jar"


def load(name):
    return [d for d in yaml.safe_load_all((RECIPE / name).read_text()) if d is not None]


def env_line(container):
    return next(e["value"] for e in container["env"] if e["name"] == "JAVA_TOOL_OPTIONS")


def agent_options(line):
    m = re.search(r"-javaagent:\S+?\.jar=(\S+)", line)
    return dict(kv.split("=", 1) for kv in m.group(1).split(","))


def test_the_recipe_yaml_parses_and_its_names_agree():
    (deployment,) = load("deployment.yaml")
    assert deployment["kind"] == "Deployment" and deployment["apiVersion"] == "apps/v1"
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (init,), (app,) = spec["initContainers"], spec["containers"]
    volume = spec["volumes"][0]
    assert "emptyDir" in volume
    for c in (init, app):
        assert c["volumeMounts"] == [{"name": volume["name"], "mountPath": "/opt/offheap-doctor"}]
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsUser"] == UID and f"-o {UID} -g {UID}" in init["command"][2]
    line = env_line(app)
    opts = agent_options(line)
    assert opts["extractDir"].startswith("/opt/offheap-doctor/")
    assert opts["report"].startswith("/opt/offheap-doctor/")
    port = int(opts["prometheus"].rsplit(":", 1)[1])
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    (container_port,) = app["ports"]
    assert container_port["containerPort"] == port
    assert app["resources"]["limits"]["memory"]
    # The ServiceMonitor selects the Service, which names the container's port.
    service, monitor = load("servicemonitor.yaml")
    assert service["kind"] == "Service" and monitor["kind"] == "ServiceMonitor"
    assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # The -agentpath variant names the library its init container extracts.
    variant = load("agentpath.yaml")[0]
    vline = env_line(variant["containers"][0])
    lib = re.match(r"-agentpath:(\S+?)=", vline).group(1)
    assert f"> {lib}" in variant["initContainers"][0]["command"][2]
    # The docs show the same lines as the files.
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    assert line in doc and vline in doc


SCRIPT = r"""
set -eu
mount -t tmpfs -o mode=0755 image /opt
mkdir /opt/offheap-doctor /opt/app /opt/image
# The emptyDir: a fresh writable directory, world-writable as kubelet makes it.
mount -t tmpfs -o mode=0777 emptydir /opt/offheap-doctor
cp "$APP_CLASS" /opt/app/
cp "$JAR" /opt/image/offheap-doctor.jar
# The init container's script, the jar at its place in the init image.
sh -c "$INIT"
# The image: read-only from here on; so is every directory the pod's user could write.
mount -o remount,ro /opt
for d in /tmp /var/tmp /run/lock "$CHECKOUT"; do
  [ -d "$d" ] || continue
  mount --bind "$d" "$d"
  mount -o remount,bind,ro "$d"
done
ip link set lo up
as_pod() { setpriv --reuid=$POD_UID --regid=$POD_UID --clear-groups "$@"; }
for d in /tmp /var/tmp /opt /opt/app "$CHECKOUT" /; do
  if as_pod sh -c "echo x > $d/.probe" 2>/dev/null; then echo "WRITABLE $d"; fi
done
run() {
  as_pod env -i PATH=/usr/bin:/bin JAVA_TOOL_OPTIONS="$1" "$JAVA" -Xmx64m -cp /opt/app Idle 3 &
  pid=$!
  sleep 2.5
  echo "== scrape"
  python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:9404/metrics", timeout=5).read().decode())' || true
  wait $pid || echo "JVM exit $?"
}
echo "== run"
run "$LINE" 2>&1
echo "== native"
ls -l /opt/offheap-doctor/native
echo "== report"
cat "$REPORT" 2>/dev/null || true
echo "== control"
run "$CONTROL" 2>&1
echo "== end"
"""


def sections(out):
    parts = {}
    current = None
    for l in out.splitlines():
        if l.startswith("== "):
            # The control run has its own scrape: "scrape 2".
            current = l[3:] if l[3:] not in parts else f"{l[3:]} 2"
            parts[current] = []
        elif current:
            parts[current].append(l)
    return parts


@pytest.mark.parametrize("recipe", ["deployment.yaml", "agentpath.yaml"])
def test_the_recipe_line_runs_the_agent_on_a_read_only_tree(recipe, workloads, tmp_path):
    for tool in ("unshare", "setpriv", "ip"):
        if shutil.which(tool) is None:
            prerequisite_missing(tool)
    if os.geteuid() != 0:
        pytest.skip("needs root for a private mount namespace")
    doc = load(recipe)[0]
    spec = doc["spec"]["template"]["spec"] if "spec" in doc else doc
    init = re.sub(r"(?<=\s)" + re.escape(IMAGE_JAR) + r"(?=\s)", "/opt/image/offheap-doctor.jar",
                  spec["initContainers"][0]["command"][2])
    assert "/opt/image/" in init
    line = env_line(spec["containers"][0])
    opts = agent_options(line)
    # The same line without extractDir: the agent's default place, java.io.tmpdir, is read-only.
    # (Nor -agentpath, whose library the Java agent would find mapped and load as it is.)
    control = re.sub(r"-agentpath:\S+\s+", "", re.sub(r"extractDir=[^,\s]+,?", "", line))
    assert control != line
    env = {"PATH": os.environ["PATH"], "JAR": str(AGENT_JAR), "APP_CLASS": str(workloads / "Idle.class"),
           "INIT": init, "CHECKOUT": str(ROOT), "POD_UID": str(UID), "JAVA": java(17), "LINE": line,
           "CONTROL": control, "REPORT": opts.get("report", "/nonexistent")}
    p = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "bash", "-c", SCRIPT],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and "== end" in p.stdout, (p.stdout, p.stderr)
    assert "WRITABLE" not in p.stdout, p.stdout
    s = sections(p.stdout)
    run = "\n".join(s["run"])
    agent = [l for l in s["run"] if l.startswith(PREFIX)]
    assert any("started" in l for l in agent), run
    assert not [l for l in agent if "cannot extract" in l or "cannot load" in l or "Java-only" in l], agent
    # The library is where extractDir says, and it is what the JVM loaded.
    assert any("liboffheap_doctor" in l for l in s["native"]) or recipe == "agentpath.yaml", s["native"]
    scrape = "\n".join(s["scrape"])
    rss = re.search(r"^offheap_doctor_rss_bytes (\d+)", scrape, re.M)
    assert rss and int(rss.group(1)) > 10 << 20, p.stdout
    assert "offheap_doctor_malloc_arenas" in scrape, scrape
    if "report" in opts:
        samples = [json.loads(l) for l in s["report"] if l.strip()]
        assert samples, s["report"]
        last = samples[-1]
        assert last["totals"]["rss"] > 0 and last["breakdown"] is not None, last.get("problems")
        assert not [x for x in last["problems"] if x.get("source") == "native"], last["problems"]
    if recipe == "agentpath.yaml":
        assert any("-agentpath" in l and "applied" in l for l in agent), agent
    # The control: without extractDir the agent cannot extract on this tree and says so.
    control_out = "\n".join(s["control"] + s["scrape 2"])
    assert "cannot extract the native library" in control_out or "Java-only" in control_out, control_out
