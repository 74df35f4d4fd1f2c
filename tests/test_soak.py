"""Soak, short: a minute of everything at once (samples every 100 ms, trims every 50 ms between
the policy and the MBean, census scans every 100 ms under zlib churn, JMX from a thread inside the
JVM and from another process over loopback). The JVM stays responsive and exits 0 without a crash
file or a -Xcheck:jni warning, every report line is whole with contiguous `seq`, trim=100ms trims
on its own clock (trims it alone asked for), and memory does not grow over the run beyond what
bench/soak.py allows (a leak of 15 KiB per sample fails it). The long run:
`bench/soak.py --minutes 10`; `--leak 15360` shows the leak failing."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from jdks import MAIN  # noqa: E402
from soak import soak  # noqa: E402

SECONDS = int(os.environ.get("OFFHEAP_DOCTOR_SOAK_SECONDS", "60"))


@pytest.mark.parametrize("jdk", MAIN)
def test_a_minute_of_everything_at_once_loses_nothing_and_memory_stays_flat(jdk, workloads, tmp_path):
    figures, failures = soak(jdk, SECONDS, tmp_path, workloads)
    print(figures)
    assert failures == [], (failures, figures)
    # The figures the checks rest on were really there.
    assert figures["report_lines"] >= SECONDS * 5 and figures["trims"] >= SECONDS * 5, figures
    assert figures["interval_trims_in_quiet_windows"] >= SECONDS, figures
    assert set(figures["memory"]) == {"rss", "uss", "malloc_floor_less_jit_arenas", "nmt_less_heap_jit",
                                      "heap_after_gc"}, figures
