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
print(f"{'seq':>3}  {'time':<24} {'RSS':>12} {'anon':>12} {'file':>12} {'heap used':>12}")
for line in open(sys.argv[1]):
    s = json.loads(line)
    t = s.get("totals") or {}
    print(f"{s['seq']:>3}  {s['time']:<24} {mib(t.get('rss'))} {mib(t.get('anon'))} {mib(t.get('file'))} "
          f"{mib(s['jvm']['heap']['used'])}")
PY
