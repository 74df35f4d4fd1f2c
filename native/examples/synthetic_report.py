#!/usr/bin/env python3
"""Writes a synthetic report stream (schema 1) for trying the timeline page:

    python3 native/examples/synthetic_report.py --samples 2000 --interval 10 > /tmp/r.jsonl
    cargo run --release --example timeline -- /tmp/r.jsonl -o /tmp/r.html

The story it tells: glibc arenas multiply and retain freed memory, an auto trim policy gives some
of it back now and then, Inflaters leak until a fix is deployed, RSS creeps toward the cgroup
limit, and the findings a user would expect appear along the way. One sample carries a short
spike of large malloc chunks, and one line is torn, as after a crash mid-write.
"""

import argparse
import json
import math
import random
import sys

MIB = 1 << 20
GIB = 1 << 30
NMT_CATEGORIES = [
    ("Java Heap", 0), ("Class", 90), ("Thread", 40), ("Code", 60), ("GC", 120), ("Compiler", 4),
    ("Internal", 3), ("Other", 30), ("Symbol", 25), ("Native Memory Tracking", 6),
    ("Shared class space", 13), ("Arena Chunk", 2), ("Module", 1), ("Synchronizer", 1),
    ("Safepoint", 1), ("Serviceability", 1), ("Metaspace", 1), ("String Deduplication", 1),
    ("Object Monitors", 1), ("Logging", 1),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--start-ms", type=int, default=1795737600000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    out = sys.stdout

    n = args.samples
    limit = 4 * GIB
    retained = 20 * MIB
    in_use = 60 * MIB
    arenas = 4
    inflaters = 3
    pending = 0
    trims = []
    trim_count = 0
    released_total = 0
    findings_since = {}
    last_trim_i = -10**9
    fixed_zip_at = int(n * 0.7)
    spike_at = int(n * 0.42)
    torn_at = int(n * 0.55)

    for i in range(n):
        frac = i / max(1, n - 1)
        t = args.start_ms + int(i * args.interval * 1000) + rnd.randint(0, 40)
        # Heap warms up over the first tenth, then breathes.
        heap_rss = int(GIB * (0.6 + 0.6 * min(1.0, frac * 10)) + 40 * MIB * math.sin(i / 37.0))
        heap_committed = 1536 * MIB
        # Arenas multiply early; each holds retained memory that churn keeps growing.
        arenas = min(40, 4 + int(36 * min(1.0, frac * 3)))
        in_use = int(60 * MIB + 140 * MIB * frac + 10 * MIB * rnd.random())
        retained += int(rnd.uniform(0.0, 2.0) * MIB * (arenas / 20.0) * 1000 / max(n, 1000) * 3)
        trim_events = []
        if retained > 400 * MIB and i - last_trim_i > max(1, n // 12):
            released = int(retained * rnd.uniform(0.6, 0.8))
            rss_before = heap_rss + in_use + retained + 500 * MIB
            trims.append({"epoch_ms": t - 500, "released": released, "rss_before": rss_before,
                          "rss_after": rss_before - released, "duration_ns": rnd.randint(2, 40) * 1_000_000,
                          "reason": "auto: retained above threshold"})
            trims = trims[-8:]
            retained -= released
            trim_count += 1
            released_total += released
            last_trim_i = i
        arena_rss = in_use + retained
        mmap = 24 * MIB + (380 * MIB if i == spike_at else 0)
        threads = 60 + int(20 * math.sin(i / 200.0) ** 2)
        stack = threads * 300 * 1024
        # Inflaters leak until the fix is deployed; the Cleaner catches up in waves.
        if i < fixed_zip_at:
            # About 1500 leaked over the leaking part of the report, whatever its length.
            if rnd.random() < 2200.0 / n:
                inflaters += 1
            pending = (pending + rnd.choice([0, 1, 2])) % 40
        else:
            inflaters = max(3, int(inflaters * 0.9))
            pending = 0
        zip_bytes = inflaters * 48 * 1024
        classes = {
            "java_heap": heap_rss,
            "malloc_arena": arena_rss,
            "malloc_mmap": mmap,
            "thread_stack": stack,
            "jvm_code": 48 * MIB + int(12 * MIB * frac),
            "jvm_metaspace": 90 * MIB + int(8 * MIB * frac),
            "jvm_gc": 120 * MIB,
            "jvm_other": 30 * MIB,
            "mapped_file": 70 * MIB,
            "other_anon": zip_bytes + 6 * MIB,
            "kernel": 2 * MIB,
        }
        rss = sum(classes.values())
        breakdown = {k: {"rss": v, "pss": v, "swap": 0, "size": v + v // 3, "mappings": 1} for k, v in classes.items()}
        cats = []
        nmt_total = 0
        for name, mib in NMT_CATEGORIES:
            committed = heap_committed if name == "Java Heap" else int(mib * MIB * (1 + 0.3 * frac))
            if name == "Thread":
                committed = stack + 2 * MIB
            if name == "Other":
                committed = 30 * MIB + zip_bytes
            cats.append({"name": name, "reserved": committed * 2, "committed": committed})
            nmt_total += committed

        findings = []

        def finding(fid, severity, title, evidence, remedy):
            since = findings_since.setdefault(fid, t)
            findings.append({"id": fid, "severity": severity, "title": title, "evidence": evidence,
                             "remedy": remedy, "since_ms": since})

        if arenas > 16:
            finding("arena-sprawl", "warning", "glibc created %d malloc arenas" % arenas,
                    ["%d arenas for %d threads" % (arenas, threads), "arenas hold %d MiB" % (arena_rss // MIB)],
                    "Set MALLOC_ARENA_MAX=2 in the JVM's environment")
        if retained > 250 * MIB:
            finding("malloc-retention", "warning", "glibc keeps %d MiB of freed memory" % (retained // MIB),
                    ["retained %d MiB in %d arenas" % (retained // MIB, arenas),
                     "trimmable now: %d MiB" % (retained * 8 // 10 // MIB)],
                    "Enable trim=auto, or preload jemalloc: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
        else:
            findings_since.pop("malloc-retention", None)
        if i < fixed_zip_at and inflaters > 300:
            finding("zip-unclosed", "warning", "%d Inflaters alive, %d waiting for cleanup" % (inflaters, pending),
                    ["%d Inflaters hold about %d MiB of zlib memory" % (inflaters, zip_bytes // MIB),
                     "created by java.util.zip.GZIPInputStream.<init>"],
                    "Close GZIPInputStream (try-with-resources)")
        if rss > 0.8 * limit:
            finding("oom-risk", "critical", "RSS at %d%% of the container limit" % (100 * rss // limit),
                    ["RSS %d MiB of %d MiB" % (rss // MIB, limit // MIB), "growing about 30 MiB/h"],
                    "Raise the limit or fix the growth above; about 6 h left at this rate")
        finding("nmt-summary-only", "info", "NMT runs in summary mode </script> <b>not bold</b>",
                ["detail mode would show call sites"], "-XX:NativeMemoryTracking=detail")

        sample = {
            "schema": 1, "kind": "sample", "seq": i + 1,
            "time": "%s" % t, "epoch_ms": t, "pid": 31337,
            "totals": {"rss": rss, "pss": rss - 10 * MIB, "swap": 0, "anon": rss - 72 * MIB, "file": 70 * MIB, "shmem": 2 * MIB},
            "breakdown": {"classes": breakdown, "totals": {"rss": rss}},
            "malloc": {"arena_count": arenas, "retained": retained, "in_use": in_use, "mmapped": mmap,
                       "trimmable_max": retained * 8 // 10},
            "nmt": {"mode": "summary", "committed": nmt_total, "categories": cats, "growth": None},
            "zip": {"inflaters": {"alive": inflaters, "pending_cleanup": pending},
                    "deflaters": {"alive": 2 + i % 3, "pending_cleanup": 0},
                    "estimated_native_bytes": zip_bytes},
            "cgroup": {"limit": limit, "usage": rss + 200 * MIB, "oom_kills": 0},
            "trim": {"events": trims, "count": trim_count, "released_total": released_total},
            "findings": findings,
            "jvm": {"heap": {"used": heap_rss // 2, "committed": heap_committed, "max": 2 * GIB}, "threads": {"live": threads}},
        }
        line = json.dumps(sample, separators=(",", ":"))
        if i == torn_at:
            line = line[: len(line) // 2]
        out.write(line + "\n")


if __name__ == "__main__":
    main()
