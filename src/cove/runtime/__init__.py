"""The OCI low-level runtime: one lifecycle verb per module (container_*.py).

The init path (process/, rootfs, devices, config) imports only the standard library,
`cove.errors`, `cove.oci` and `cove.sys`: it must start fast and never start threads.
"""
