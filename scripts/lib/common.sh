# Shared by scripts/run and scripts/test: installing what is missing from Debian's packages.
# Idempotent and quick when everything is present (no apt-get update unless something is missing).

BUILD_PACKAGES=(g++ cmake ninja-build pkg-config libboost1.81-dev nlohmann-json3-dev libspdlog-dev
                libhiredis-dev libssl-dev libgtest-dev libyaml-cpp-dev zlib1g-dev)
# chromium: the demo page's browser test (driven by npm playwright-core).
TEST_PACKAGES=(redis-server openssl chromium python3-websockets)
FUZZ_PACKAGES=(clang-14 libclang-rt-14-dev)

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_packages PKG...: apt-get install the ones that are not installed.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Node.js >= 20.10 and npm: the integration tests, herald-cli and the README's quick tour
# (`node --experimental-websocket`, the WebSocket client built into Node 20.10 and later).
# The node already there, else the distribution's; Debian 12's is 18, which is too old: then
# this says so and how to get a newer one, instead of failing later in a test or the tour.
node_recent_enough() {
  command -v node >/dev/null && command -v npm >/dev/null &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)'
}

ensure_node() {
  node_recent_enough && return 0
  ensure_packages nodejs npm
  node_recent_enough && return 0
  echo "Herald's tests and tools need Node.js 20.10 or later; this machine has $(node --version 2>/dev/null || echo none)." >&2
  echo "Install a current one (for example from https://nodesource.com or the nodejs.org binaries), then run this again." >&2
  return 1
}

# npm ci in DIR, skipped when node_modules already matches package-lock.json.
ensure_npm_deps() {
  local dir=$1 stamp hash
  stamp="$dir/node_modules/.herald-lock-hash"
  hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then return 0; fi
  echo "==> npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$hash" > "$stamp"
}
