#!/usr/bin/env bash
# Install cove and what it needs on Debian 12, as root. Idempotent.
#   tools/install.sh          the runtime and what the demo needs
#   tools/install.sh --test   also the reference runtimes and the test tools
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${COVE_VENV:-/opt/cove/venv}
bindir=${COVE_BINDIR:-/usr/local/bin}
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (containers need it)" >&2
  exit 1
fi

packages=(python3 python3-venv busybox-static libseccomp2 gcc libc6-dev nftables iproute2)
if [ "$with_tests" = 1 ]; then
  # docker.io: dockerd and the docker client, which the tests start privately themselves;
  # docker-compose (v1, Python): a client of cove serve in tests/compat/test_compose.py
  packages+=(runc crun procps util-linux iproute2 skopeo umoci docker-registry apache2-utils debootstrap
             docker.io iperf3 docker-compose git)
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # No package may start its service here (docker, docker-registry): the tests start private
  # instances on their own sockets and ports. policy-rc.d is Debian's switch for that.
  blocker=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    blocker=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$blocker"
    chmod 755 "$blocker"
    trap 'rm -f "$blocker"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$blocker" ]; then
    rm -f "$blocker"
    trap - EXIT
  fi
fi

# The seed's nginx test (tests/integration/engine/test_seed_nginx.py) installs nginx in a
# container from a local apt repository (no internet in tests): the .debs of nginx and of
# whatever of it this host lacks (what `apt-get -s install nginx` would install), once.
if [ "$with_tests" = 1 ]; then
  debs=${COVE_TEST_DEBS:-/var/cache/cove-tests/debs}
  if ! compgen -G "$debs/nginx_*.deb" >/dev/null || ! compgen -G "$debs/nginx-common_*.deb" >/dev/null; then
    apt-cache show nginx >/dev/null 2>&1 || apt-get update -qq
    wanted=$(apt-get -s install nginx 2>/dev/null | awk '/^Inst /{print $2}')
    mkdir -p "$debs.partial"
    (cd "$debs.partial" && apt-get download -qq -o APT::Sandbox::User=root \
      $(printf '%s\n' nginx nginx-common $wanted | sort -u))
    mkdir -p "$debs" && mv "$debs.partial"/*.deb "$debs"/ && rmdir "$debs.partial"
    echo "test packages: $(ls "$debs")"
  fi
fi

# Debian's python3 in a venv: PEP 668 keeps the system site-packages for apt.
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
extras=""
[ "$with_tests" = 1 ] && extras="[test]"
"$venv/bin/pip" install -q --disable-pip-version-check -e "$repo$extras"
# Bytecode is written now, once: every cove-runtime call starts a fresh interpreter, and an
# environment with PYTHONDONTWRITEBYTECODE would otherwise recompile each module each time.
"$venv/bin/python" -m compileall -q "$repo/src/cove"

# The launcher runs python with -I -S: no site-packages scan and no .pth hooks at each start
# (a few milliseconds of every runtime call); cove's own path is fixed here instead.
src=$("$venv/bin/python" -c 'import cove, os; print(os.path.dirname(os.path.dirname(cove.__file__)))')
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$bindir"
write_launcher() {
  local name=$1 module=$2 target="$bindir/$1"
  cat > "$target.tmp" <<LAUNCHER
#!$venv/bin/python -IS
import sys
sys.path.insert(0, "$src")
sys.path.append("$site")  # dependencies (pyseccomp), found after cove's own modules
from $module import main
main()
LAUNCHER
  chmod 755 "$target.tmp"
  mv "$target.tmp" "$target"
}
# The per-container monitor and --init's init are small C programs (native/), built here.
libexec=${COVE_LIBEXECDIR:-/usr/local/libexec/cove}
"$repo/tools/build-native.sh" "$libexec"
write_launcher cove-runtime cove.cli.runtime
write_launcher cove cove.cli.engine
echo "cove installed: $bindir/cove-runtime ($("$bindir/cove-runtime" --version | head -1))"

# The API server's systemd units (tools/systemd/cove.socket, cove.service): installed where
# systemd is, never enabled or started here (`systemctl enable --now cove.socket` does that).
if [ -d /etc/systemd/system ]; then
  for unit in cove.socket cove.service; do
    sed "s#/usr/local/bin/cove #$bindir/cove #" "$repo/tools/systemd/$unit" > "/etc/systemd/system/$unit.tmp"
    chmod 644 "/etc/systemd/system/$unit.tmp"
    mv "/etc/systemd/system/$unit.tmp" "/etc/systemd/system/$unit"
  done
  [ -d /run/systemd/system ] && systemctl daemon-reload || true
  echo "systemd units: /etc/systemd/system/cove.socket, cove.service (not enabled)"
fi
