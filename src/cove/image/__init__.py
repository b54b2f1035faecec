"""Image management: references, blob store, layers, snapshots."""
