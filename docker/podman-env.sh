# Sourced by docker/*.sh: podman on a machine without a Docker engine or registry.
# - installs podman and friends from Debian if missing;
# - selects runc and capped ulimits through a private containers.conf (no /etc edits);
# - builds the debian:bookworm base image locally with mmdebstrap when it cannot be pulled.
# shellcheck shell=bash

HERALD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../scripts/lib/common.sh
. "$HERALD_ROOT/scripts/lib/common.sh"

CONTAINER_PACKAGES=(podman runc netavark aardvark-dns iptables mmdebstrap podman-compose curl ca-certificates)

podman_setup() {
  ensure_packages "${CONTAINER_PACKAGES[@]}"
  local conf_dir="${XDG_RUNTIME_DIR:-/tmp}/herald-podman"
  mkdir -p "$conf_dir"
  local nofile
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nofile" -gt 1048576 ] && nofile=1048576
  cat > "$conf_dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF="$conf_dir/containers.conf"
}

# The Dockerfile starts FROM debian:bookworm(-slim). Use the registry's when it can be pulled,
# else debootstrap one from the Debian mirror apt already uses (about 40 s, once).
ensure_base_image() {
  if podman image exists docker.io/library/debian:bookworm &&
     podman image exists docker.io/library/debian:bookworm-slim; then
    return 0
  fi
  if timeout 20 podman pull -q docker.io/library/debian:bookworm >/dev/null 2>&1 &&
     timeout 20 podman pull -q docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
    return 0
  fi
  local mirror
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  echo "==> building debian:bookworm base image from $mirror (no registry reachable)"
  as_root mmdebstrap --quiet --variant=minbase --mode=root bookworm - "$mirror" |
    podman import -q - localhost/debian:bookworm >/dev/null
  podman tag localhost/debian:bookworm docker.io/library/debian:bookworm
  podman tag localhost/debian:bookworm docker.io/library/debian:bookworm-slim
}
