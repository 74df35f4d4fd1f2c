#!/usr/bin/env bash
# Builds everything, then runs the bundled demo workload under the agent and prints what the
# agent wrote to its report.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/build.sh"
jar="$root/agent/target/offheap-doctor.jar"
report="$(mktemp -d)/offheap-report.jsonl"
java -Xmx128m -javaagent:"$jar"=interval=1s,report="$report" -jar "$jar" demo 6
echo
echo "== the agent's report: $report"
python3 - "$report" <<'PY'
import json, sys
mib = lambda b: f"{b / 1048576:8.1f} MiB" if b is not None else "       -    "
print(f"{'seq':>3}  {'time':<24} {'RSS':>12} {'java heap':>12} {'malloc':>12} {'retained':>12} {'zlib est.':>12}")
last = None
for line in open(sys.argv[1]):
    s = json.loads(line)
    last = s
    t = s.get("totals") or {}
    c = (s.get("breakdown") or {}).get("classes", {})
    m = s.get("malloc") or {}
    z = s.get("zip") or {}
    print(f"{s['seq']:>3}  {s['time']:<24} {mib(t.get('rss'))} {mib(c.get('java_heap', {}).get('rss'))} "
          f"{mib(c.get('malloc_arena', {}).get('rss'))} {mib(m.get('retained'))} {mib(z.get('estimated_native_bytes'))}")
if last:
    print("\n== findings of the last sample")
    for f in last.get("findings", []):
        print(f"[{f['severity']}] {f['id']}: {f['title']}")
        print(f"    remedy: {f['remedy']}")
PY
java -jar "$jar" html "$report" -o "${report%.jsonl}.html"
