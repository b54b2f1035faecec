"""cgroup v1 controllers, one module each (see cove.runtime.cgroups.controller)."""
