"""Plain data for the OCI documents cove reads and writes.

Only `json` and `dataclasses` are imported here: the runtime's hot path loads this package.
"""
