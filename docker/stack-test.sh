#!/usr/bin/env bash
# Brings up docker/compose.yaml (Redis, three Herald nodes, HAProxy) with podman-compose, then
# docker/stack-test.mjs: clients connect through HAProxy, publications through every node reach
# every client exactly once; one node is stopped (SIGTERM drain) and its clients reconnect
# through HAProxy to the others and resume from their offsets without losing a message.
# About 5 min cold (base image, three images), 1-2 min once images are cached.
#   docker/stack-test.sh [--keep]     (--keep: leave the stack running afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
. docker/podman-env.sh

keep=0
[ "${1:-}" = --keep ] && keep=1

podman_setup
ensure_base_image
ensure_node
ensure_npm_deps tests/integration

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export HERALD_ADMIN_API_KEY=stack-test-$RANDOM-$RANDOM-admin-key
export HERALD_LB_PORT=$(free_port) HERALD_LB_ADMIN_PORT=$(free_port)
export HERALD1_ADMIN_PORT=$(free_port) HERALD2_ADMIN_PORT=$(free_port) HERALD3_ADMIN_PORT=$(free_port)
project=heraldstack$$
compose() { podman-compose -p "$project" -f docker/compose.yaml "$@"; }
cleanup() {
  if [ "$keep" = 1 ]; then
    echo "==> stack left running: project $project, ws://127.0.0.1:$HERALD_LB_PORT/"
    return
  fi
  compose down -v -t 2 >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "==> building images"
start=$(date +%s)
podman build -q --format docker -f docker/Dockerfile -t localhost/herald:dev . >/dev/null
podman build -q -f docker/redis/Dockerfile -t localhost/herald-redis:dev . >/dev/null
podman build -q -f docker/haproxy/Dockerfile -t localhost/herald-haproxy:dev . >/dev/null
echo "    $(( $(date +%s) - start )) s"
echo "==> podman-compose up (project $project, HAProxy on 127.0.0.1:$HERALD_LB_PORT)"
compose up -d >/dev/null 2>&1 || { compose logs 2>&1 | tail -50; exit 1; }
# podman-compose exits 0 even when a container failed: the test checks everything itself.
if ! node docker/stack-test.mjs "$project"; then
  # What the containers said: a node that never became ready tells why in its log.
  echo "==> the stack test failed; containers:"
  podman ps -a --filter "name=${project}_" --format '{{.Names}} {{.Status}}' || true
  for service in redis herald1 herald2 herald3 haproxy; do
    echo "==> ${service}: last lines of its log"
    podman logs --tail 20 "${project}_${service}_1" 2>&1 || true
  done
  exit 1
fi
echo "==> stack test passed"
