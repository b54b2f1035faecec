"""cgroup v2 controllers, one module each (see cove.runtime.cgroups.controller)."""
