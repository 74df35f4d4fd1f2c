"""The zip census's per-stream estimate against real memory: a workload makes 2000 Inflaters and
2000 Deflaters fresh, then 2000 of each used, and after each step prints how much its anonymous
resident memory grew (RssAnon of /proc/self/status, the kernel's count) beside how much the
census's estimated_native_bytes grew. The estimate describes streams that have been used (the
usual case of a leak or a pool); a stream never used holds less, so for those it is an upper
bound. The heap is pre-touched and the JIT off, so the steps' RssAnon growth is zlib's."""

import pytest

from harness import run_jvm
from jdks import MAIN

KiB = 1 << 10
N = 2000
# The estimate of a used stream within this share of what it holds.
TOLERANCE = 0.15


def steps(stdout):
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2].startswith("rss_anon_delta="):
            out[parts[0]] = (int(parts[2].split("=")[1]) / int(parts[1]), int(parts[3].split("=")[1]) / int(parts[1]))
    return out


@pytest.mark.parametrize("jdk", MAIN)
def test_the_estimate_of_a_used_stream_matches_the_memory_it_holds(jdk, workloads):
    jvm_args = ["-Xms64m", "-XX:+AlwaysPreTouch", "-XX:+UseSerialGC", "-Xint"]
    if jdk >= 24:
        jvm_args.append("--enable-native-access=ALL-UNNAMED")
    # The agent loaded but not sampling during the steps: the workload runs the census itself.
    r = run_jvm(jdk, "ZipWorkload", ["estimate", str(N)], agent_opts="interval=1h,zipInterval=1h",
                jvm_args=jvm_args, classpath=workloads, timeout=180)
    assert r.rc == 0, r.stderr
    s = steps(r.stdout)
    assert set(s) == {"inflater_fresh", "deflater_fresh", "inflater_used", "deflater_used"}, r.stdout
    for name, (rss, est) in sorted(s.items()):
        print(f"JDK {jdk} {name}: {rss / KiB:.1f} KiB resident per stream, estimate {est / KiB:.1f} KiB")
    for kind in ("inflater", "deflater"):
        rss, est = s[f"{kind}_used"]
        assert abs(est - rss) <= TOLERANCE * rss, (kind, rss, est)
        fresh, fresh_est = s[f"{kind}_fresh"]
        assert fresh_est == est, "one figure per kind"
        # A stream never used has its zlib state but not its window touched: well under the estimate.
        assert 0 < fresh < est * 0.5, (kind, fresh, est)
