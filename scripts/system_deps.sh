#!/usr/bin/env bash
# System packages the test suite needs beyond Python (Debian): headless Chromium for the browser test,
# PostgreSQL for the cluster-topology rehearsal, docker-compose (the Python v1 CLI; only its `config` check and its
# Compose-spec JSON schema are used, no engine) for the compose-file validation. Skipped where already present;
# needs root.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
have_pg=0
for p in /usr/lib/postgresql/*/bin/postgres; do
  [ -x "$p" ] && have_pg=1
done
[ "$have_pg" = 1 ] || need+=(postgresql)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "warning: missing system packages: ${need[*]} (run as root to install)" >&2
  fi
fi
