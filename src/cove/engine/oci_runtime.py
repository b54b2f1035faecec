"""How the engine drives an OCI runtime: `OCIRuntime`, and `SubprocessRuntime` for any
runc-compatible binary (cove-runtime, runc, crun, or a path given to `--runtime`).

Every call runs

    [argv_prefix...] BINARY --root <engine root>/runtime/<name> --log <file> \
        [--log-format json] VERB [flags...] ID [args...]

- `--root` is private to the engine (and to the runtime name), so two engines, or the same
  engine with two runtimes, never see each other's containers.
- `--log` is a fresh file per call, read back when the call fails, so `RuntimeFailed`
  carries the runtime's own message (JSON log lines when the runtime supports
  `--log-format json`, else text; the captured stderr when the log is empty).
- `--systemd-cgroup` is never passed: cove manages cgroups through cgroupfs.
- Every call has a timeout. The runtime runs in its own session; on a timeout (or any
  exception while waiting) the whole process group is killed with SIGKILL and reaped, and
  `RuntimeTimedOut` is raised. Output is captured through temporary files, never pipes, so
  a container that inherits the runtime's stdio cannot block the caller; `create` and
  `exec` give the runtime (hence the container) the caller's stdio, /dev/null by default.

What differs between runtimes is described by `RuntimeTraits`, one record per runtime, not by
special cases in the calls:

- `log_format`: "json" or "text".
- `has_events`: whether `events --stats` exists (crun 1.8 has no `events` verb). Without it
  `events_stats` reads the container's cgroup files itself and returns the same shape as
  runc's `events --stats` data (cpu.usage, memory.usage, pids).
- `refuses_hybrid_cgroups`: the runtime will not run on a "hybrid" cgroup host (cgroup v1
  controllers plus an empty cgroup2 mount at /sys/fs/cgroup/unified, Ubuntu 20.04's
  default): crun says "cgroups in hybrid mode not supported". The *hybrid workaround*
  (`hybrid_workaround_prefix`) runs such a runtime as
  `unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec
  "$0" "$@"' BINARY ...`: in a private mount namespace where the cgroup2 mount is hidden the
  host looks like plain cgroup v1, which the runtime supports. `runtime_for` applies it
  whenever the traits say so and `is_cgroup_hybrid()` is true; nothing else knows about it.

Traits are known for cove, runc and crun (by the binary's name); for any other binary they
are probed once from its `--help` output.
"""

from __future__ import annotations

from cove.engine.oci_runtime_api import CGROUP_ROOT as CGROUP_ROOT
from cove.engine.oci_runtime_api import COVE_RUNTIME_PATH as COVE_RUNTIME_PATH
from cove.engine.oci_runtime_api import DEFAULT_RUNTIME as DEFAULT_RUNTIME
from cove.engine.oci_runtime_api import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from cove.engine.oci_runtime_api import LOG_DIR_NAME as LOG_DIR_NAME
from cove.engine.oci_runtime_api import UNIFIED_MOUNT as UNIFIED_MOUNT
from cove.engine.oci_runtime_api import OCIRuntime as OCIRuntime
from cove.engine.oci_runtime_api import RuntimeState as RuntimeState
from cove.engine.oci_runtime_api import Stdio as Stdio
from cove.engine.oci_runtime_cgroups import _read_int as _read_int
from cove.engine.oci_runtime_cgroups import _read_keyed as _read_keyed
from cove.engine.oci_runtime_cgroups import cgroup_stats as cgroup_stats
from cove.engine.oci_runtime_logs import _ERROR_LEVELS as _ERROR_LEVELS
from cove.engine.oci_runtime_logs import _LOGFMT_FIELD as _LOGFMT_FIELD
from cove.engine.oci_runtime_logs import _last_line as _last_line
from cove.engine.oci_runtime_logs import _logfmt as _logfmt
from cove.engine.oci_runtime_logs import _read_back as _read_back
from cove.engine.oci_runtime_logs import _read_text as _read_text
from cove.engine.oci_runtime_logs import error_from_log as error_from_log
from cove.engine.oci_runtime_select import _find_binary as _find_binary
from cove.engine.oci_runtime_select import runtime_for as runtime_for
from cove.engine.oci_runtime_subprocess import SubprocessRuntime as SubprocessRuntime
from cove.engine.oci_runtime_subprocess import _Outcome as _Outcome
from cove.engine.oci_runtime_traits import KNOWN_TRAITS as KNOWN_TRAITS
from cove.engine.oci_runtime_traits import RuntimeTraits as RuntimeTraits
from cove.engine.oci_runtime_traits import _probe_traits as _probe_traits
from cove.engine.oci_runtime_traits import cgroup_mounts as cgroup_mounts
from cove.engine.oci_runtime_traits import hybrid_workaround_prefix as hybrid_workaround_prefix
from cove.engine.oci_runtime_traits import is_cgroup_hybrid as is_cgroup_hybrid
from cove.engine.oci_runtime_traits import traits_for as traits_for
