#!/usr/bin/env bash
# Proves docker/Dockerfile here, with podman (no Docker engine or registry needed):
# builds the image, runs it on the host network with a mounted config and HERALD_* env,
# and checks the healthcheck, a WebSocket echo, the JSON logs, the non-root user and the
# SIGTERM drain (exit 0 within the budget).
# Takes about 3-4 min the first time (base image, packages, compile), ~20 s once cached.
#   docker/build-and-smoke.sh [--tag herald:dev]
set -euo pipefail
cd "$(dirname "$0")/.."
. docker/podman-env.sh

tag=herald:dev
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    *) echo "usage: $0 [--tag IMAGE]" >&2; exit 2 ;;
  esac
done

podman_setup
ensure_base_image
ensure_node
ensure_npm_deps tests/integration

echo "==> podman build -t $tag"
start=$(date +%s)
# docker format: OCI images have no HEALTHCHECK.
podman build -q --format docker -f docker/Dockerfile -t "$tag" . >/dev/null
image_id=$(podman image inspect "$tag" --format '{{.Id}}')
echo "    built in $(( $(date +%s) - start )) s: $(podman image inspect "$tag" --format '{{.Size}}' | numfmt --to=iec) image"

# The image reads nothing under bench/ or tests/: from a copy of this tree where both are
# broken (a CMakeLists.txt that does not parse, a load tool that does not compile, a new file),
# the build must give the very same image, every layer from the cache.
echo "==> the image build does not read bench/ or tests/"
probe=$(mktemp -d)
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$probe" 2>/dev/null || true
echo 'this is not CMake (' > "$probe/tests/CMakeLists.txt"
echo 'int main( { this does not compile' > "$probe/bench/threading_model.cpp"
echo 'neither does this' > "$probe/bench/new_tool.cpp"
echo 'nor this' > "$probe/tests/unit/new_test.cpp"
probe_id=$(cd "$probe" && podman build -q --format docker -f docker/Dockerfile -t herald:probe .)
rm -rf "$probe"
podman rmi -f herald:probe >/dev/null 2>&1 || true
if [ "${probe_id#sha256:}" != "${image_id#sha256:}" ]; then
  echo "    FAILED: breaking bench/ and tests/ changed the image ($probe_id, not $image_id)" >&2
  exit 1
fi
echo "    ok: with bench/ and tests/ broken the build gives the same image ${image_id:0:12}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
client_port=$(free_port)
admin_port=$(free_port)
name=herald-smoke-$$
work=$(mktemp -d)
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# A mounted config file, overridden in part by environment variables.
cat > "$work/herald.json" <<CONF
{
  "listen": "127.0.0.1:$client_port",
  "log": { "level": "info", "format": "json" },
  "admin": { "enabled": true, "listen": "127.0.0.1:1" },
  "routes": { "\$default": { "integration": "echo", "response": true } },
  "shutdown": { "accept_delay": "500ms", "close_window": "1s", "drain_timeout": "4s" }
}
CONF
chmod 644 "$work/herald.json"

run_at=$(date +%s%3N)
podman run -d --name "$name" --network host --health-interval=disable \
  -v "$work/herald.json:/etc/herald/herald.json:ro" \
  -e HERALD_ADMIN_LISTEN="127.0.0.1:$admin_port" -e HERALD_NODE_ID=smoke-1 \
  -e HEALTHCHECK_URL="http://127.0.0.1:$client_port/healthz" \
  "$tag" >/dev/null

node docker/smoke.mjs "$client_port" "$admin_port" "$name" "$run_at"
echo "==> image smoke test passed"
