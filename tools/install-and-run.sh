#!/usr/bin/env bash
# Install cove-runtime, build a busybox root filesystem locally (no internet), make a bundle
# with `cove-runtime spec` and run a container that shows what it sees.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/tools/install.sh"

bundle=${COVE_DEMO_BUNDLE:-/var/lib/cove/demo}
if [ ! -x "$bundle/rootfs/bin/sh" ]; then
  "$repo/tools/build-busybox-rootfs.sh" "$bundle/rootfs"
fi
rm -f "$bundle/config.json"
cove-runtime spec --bundle "$bundle"
/opt/cove/venv/bin/python - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["hostname"] = "cove-demo"
config["process"]["args"] = ["sh", "-c",
    "echo \"hostname: $(hostname)\"; echo \"my pid: $$\"; echo 'processes:'; ps;"
    " echo 'network devices:'; ip -o link | cut -d' ' -f2; echo 'mounts:'; cat /proc/self/mounts"]
json.dump(config, open(path, "w"), indent=2)
PY
echo "--- cove-runtime run (bundle $bundle) ---"
cove-runtime run --bundle "$bundle" "demo-$$"
