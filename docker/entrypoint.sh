#!/usr/bin/env bash
# Roles of the sdze image (the first argument):
#   head    start a Ray head here, then run `sdze serve` attached to its own GCS (docker compose, plain VMs)
#   worker  join the Ray cluster at RAY_HEAD_ADDRESS and block (docker compose, plain VMs)
#   serve   wait for the Ray cluster at RAY_ADDRESS, then run `sdze serve` (KubeRay head, after the operator's
#           generated `ray start`)
#   other   run the arguments as a command (e.g. `sdze solve ...`, `bash`)
# Settings of `sdze serve` come from SDZE_* variables (docs/api.md); Ray token auth from RAY_AUTH_MODE and
# RAY_AUTH_TOKEN, which every node and the service must share. Extra `ray start` flags: RAY_START_ARGS.
set -euo pipefail

role="${1:-head}"
ray_port="${RAY_PORT:-6379}"

wait_for_ray() {
  local address="$1" deadline=$((SECONDS + ${RAY_WAIT_S:-180}))
  until ray health-check --address "$address" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "sdze-entrypoint: Ray at $address not healthy after ${RAY_WAIT_S:-180}s" >&2
      return 1
    fi
    sleep 2
  done
}

case "$role" in
  head)
    shift || true
    # shellcheck disable=SC2086  # RAY_START_ARGS is a list of flags
    ray start --head --port="$ray_port" --dashboard-host=0.0.0.0 --disable-usage-stats ${RAY_START_ARGS:-}
    export RAY_ADDRESS="${RAY_ADDRESS:-127.0.0.1:$ray_port}"
    wait_for_ray "$RAY_ADDRESS"
    exec sdze serve "$@"
    ;;
  worker)
    shift || true
    : "${RAY_HEAD_ADDRESS:?set RAY_HEAD_ADDRESS=host:port of the Ray head}"
    wait_for_ray "$RAY_HEAD_ADDRESS"
    # shellcheck disable=SC2086
    exec ray start --address="$RAY_HEAD_ADDRESS" --block --disable-usage-stats ${RAY_START_ARGS:-} "$@"
    ;;
  serve)
    shift || true
    if [[ -n "${RAY_ADDRESS:-}" && "${RAY_ADDRESS}" != "auto" ]]; then
      wait_for_ray "$RAY_ADDRESS"
    fi
    exec sdze serve "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
