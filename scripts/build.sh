#!/usr/bin/env bash
# Builds both halves: Maven compiles the agent and drives cargo for the native core, and packs
# them into agent/target/offheap-doctor.jar.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mvn -q -B -f "$root/agent/pom.xml" package
echo "built $root/agent/target/offheap-doctor.jar"
