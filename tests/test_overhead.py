"""The agent's resident-memory cost, as a regression check with a generous bound: an idle JVM
(-Xmx64m) with and without the agent, three pairs started side by side, VmRSS read by the JVM
itself from /proc after the same wait. The goal is 10 MiB added (bench/overhead.py measures it
precisely); the bound is twice that, so a doubling fails and noise does not."""

import re
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import command, observe
from jdks import MAIN

MiB = 1 << 20
GOAL = 10 * MiB
PAIRS = 3
# Long enough for start-up to end and the agent's first samples to be taken at interval=1s.
SETTLE_S = 5


def idle_rss(jdk, workloads, agent_opts, report):
    """VmRSS of an idle JVM after SETTLE_S, as it printed it."""
    opts = None if agent_opts is None else f"{agent_opts},report={report}"
    cmd = command(jdk, "Idle", [SETTLE_S], agent_opts=opts, classpath=workloads, xcheck=False)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    observe(cmd, p.stdout, p.stderr)
    assert p.returncode == 0, p.stderr
    m = re.search(r"^VmRSS=(\d+)$", p.stdout, re.M)
    assert m, p.stdout
    return int(m.group(1))


@pytest.mark.parametrize("jdk", MAIN)
def test_the_agent_adds_less_than_twice_its_resident_memory_goal(jdk, workloads, tmp_path):
    without, with_agent = [], []
    # Each pair starts together, so both see the same machine; the pairs run one after another.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(PAIRS):
            a = pool.submit(idle_rss, jdk, workloads, None, None)
            b = pool.submit(idle_rss, jdk, workloads, "interval=1s", tmp_path / f"r{i}.jsonl")
            without.append(a.result())
            with_agent.append(b.result())
    # The agent ran: it sampled during the wait.
    assert all(len((tmp_path / f"r{i}.jsonl").read_text().splitlines()) >= 3 for i in range(PAIRS))
    added = statistics.median(with_agent) - statistics.median(without)
    print(f"JDK {jdk}: without {[w / MiB for w in without]} MiB, with {[w / MiB for w in with_agent]} MiB, "
          f"added {added / MiB:.1f} MiB")
    assert added < 2 * GOAL, (added / MiB, without, with_agent)
    # And the comparison measures something: the agent's JVM is the larger.
    assert added > 0, (without, with_agent)
