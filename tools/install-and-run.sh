#!/usr/bin/env bash
# The seed's chroot jail as one command, done properly: install cove, make an image of this
# host's own userland (no download), run a long-lived service in a container with limits,
# a read-only root and a tmpfs /tmp, look at it (ps, exec, stats, logs), stop and remove it,
# and show that nothing stays mounted. Every line starting with "$" is a command that ran.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/tools/install.sh"

root=${COVE_DEMO_ROOT:-/var/lib/cove}
name=seed-web
cove() { /usr/local/bin/cove --root "$root" "$@"; }
step() {
  printf '\n$ %s\n' "$*"
  "$@"
}
mounts() { findmnt -rn -o TARGET | sort; }

cove rm -f "$name" >/dev/null 2>&1 || true  # a previous demo interrupted half-way
before=$(mktemp)
trap 'rm -f "$before"' EXIT
mounts > "$before"

step cove image bootstrap --from-host host:seed
# --init: a PID 1 that passes `stop`'s SIGTERM on (python as PID 1 would not die of it)
step cove run -d --name "$name" --init --memory 256m --cpus 1 --pids-limit 64 --read-only \
  --tmpfs /tmp -p 127.0.0.1:${COVE_DEMO_PORT:-18080}:8000 host:seed \
  python3 -m http.server 8000 --directory /usr/share/doc
step cove ps
# Wait until it listens (a bare connection: the server logs no request for it).
listening='import socket; socket.create_connection(("127.0.0.1", 8000), 1).close()'
for _ in $(seq 50); do
  cove exec "$name" python3 -c "$listening" >/dev/null 2>&1 && break
  sleep 0.1
done
# From the host, through the published port (kernel NAT), as the seed fetched its nginx.
url="http://127.0.0.1:${COVE_DEMO_PORT:-18080}/"
fetch="import urllib.request as u; print(u.urlopen('$url', timeout=5).read().decode()[:300])"
step /usr/bin/python3 -c "$fetch"

step cove exec "$name" sh -c 'echo "hostname $(hostname), pid 1 is $(cat /proc/1/comm)";
  echo "memory limit $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null ||
        cat /sys/fs/cgroup/memory.max)";
  touch /usr/cove-test 2>&1 | sed "s/^/root is read-only: /"; touch /tmp/ok && echo "/tmp is writable"'
step cove stats --no-stream "$name"
step cove logs "$name"
step cove stop "$name"
step cove rm "$name"

after=$(mounts)
printf '\n$ findmnt (before and after)\n'
if [ "$after" = "$(cat "$before")" ]; then
  echo "the same $(wc -l < "$before") mounts before and after: nothing left mounted"
else
  echo "mounts differ:"
  diff <(cat "$before") <(echo "$after") || true
  exit 1
fi
