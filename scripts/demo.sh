#!/usr/bin/env bash
# Builds everything, then runs the bundled demo workload under the agent and prints what the
# agent wrote to its report.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh"
jar="$root/agent/target/offheap-doctor.jar"
report="$(mktemp -d)/offheap-report.jsonl"
out="${report%.jsonl}.out"
java -Xmx128m -javaagent:"$jar"=interval=1s,threshold.rateMinSpan=2s,threshold.rateWindow=20s,report="$report" -jar "$jar" demo 6 | tee "$out"
echo
echo "== the agent's report: $report"
python3 - "$report" "$out" <<'PY'
import json, re, sys
mib = lambda b: f"{b / 1048576:8.1f} MiB" if b is not None else "       -    "
print(f"{'seq':>3}  {'time':<24} {'RSS':>12} {'java heap':>12} {'malloc':>12} {'free, resident':>14} {'zlib est.':>12}")
last = None
for line in open(sys.argv[1]):
    s = json.loads(line)
    last = s
    t = s.get("totals") or {}
    c = (s.get("breakdown") or {}).get("classes", {})
    m = s.get("malloc") or {}
    z = s.get("zip") or {}
    print(f"{s['seq']:>3}  {s['time']:<24} {mib(t.get('rss'))} {mib(c.get('java_heap', {}).get('rss'))} "
          f"{mib(c.get('malloc_arena', {}).get('rss'))} {mib(m.get('retained_resident')):>14} {mib(z.get('estimated_native_bytes'))}")
if last:
    print("\n== findings of the last sample")
    for f in last.get("findings", []):
        print(f"[{f['severity']}] {f['id']}: {f['title']}")
        print(f"    remedy: {f['remedy']}")
# The census must agree with the workload's own count of the Deflaters it never ended.
said = [int(m.group(1)) for m in re.finditer(r"demo: done, unended Deflaters=(\d+)", open(sys.argv[2]).read())]
d = ((last or {}).get("zip") or {}).get("deflaters") or {}
seen = sum(d.get(k) or 0 for k in ("alive", "pending_cleanup", "finalizable_alive", "finalizable_pending"))
if not said or seen != said[-1]:
    print(f"\n== census check FAILED: the workload left {said[-1] if said else '?'} Deflaters unended, "
          f"the last sample counted {seen}")
    sys.exit(1)
print(f"\n== census check: the last sample counted {seen} unended Deflaters, as the workload did")
PY
java -jar "$jar" html "$report" -o "${report%.jsonl}.html"
