"""`cove export`: a container's whole root filesystem (the merged view: image plus its
changes, without its volumes) as a tar stream, as `docker export` writes it."""

from __future__ import annotations

from typing import IO

from cove.engine.container_rootfs import container_root
from cove.engine.containers import ContainerService
from cove.engine.file_tree import TarWriter, TreeReader


def export(root: str, term: str, stream: IO[bytes]) -> int:
    """Write the tar; returns the number of entries."""
    service = ContainerService(root)
    record = service.get(term)
    count = 0
    with container_root(root, service.store, record, live=False) as view:
        writer = TarWriter(stream, "")
        try:
            for entry in TreeReader().entries(view.fd):
                writer.add(entry)
                count += 1
        finally:
            writer.close()
    return count
