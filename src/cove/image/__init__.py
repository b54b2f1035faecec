"""Images: references, digests, manifests, the blob store and the image index.

This package never imports `cove.runtime`. On disk, under the engine root (default
/var/lib/cove, `--root` / COVE_ROOT):

    <root>/images/              the image store (cove.image.store.ImageStore), an OCI image
                                layout that `skopeo copy oci:<root>/images:busybox:latest`
                                or `umoci` can read:
        oci-layout              {"imageLayoutVersion": "1.0.0"}
        index.json              one descriptor per image name, annotated with
                                org.opencontainers.image.ref.name (the tag) and
                                io.containerd.image.name (the full name); untagged images
                                without annotations; kept in step with images.db
        blobs/sha256/<hex>      manifests, configs, indexes, compressed layers (read-only)
        images.db               SQLite (WAL): images (manifest digest -> image id, created,
                                size, platform), names, and the blobs each image uses (for
                                reference-counted removal)
        tmp/                    partial blobs and files (`*.partial`), each locked by its
                                writer; debris from a killed writer is removed on open
    <root>/layers/              unpacked layers and snapshots: owned by cove.image.layer and
                                cove.image.snapshot, never written by the store

Modules: `reference` (docker's name grammar and normalisation), `digest` (Digest,
streaming verification), `manifest` (typed OCI/Docker documents, platform selection),
`store` (the blob store and image index).
"""
