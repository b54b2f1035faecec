"""Shared helpers for cove's tests: runtime drivers, bundles, probe parsing."""
