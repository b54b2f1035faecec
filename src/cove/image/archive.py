"""Image archives: `docker save` / `docker load` tarballs and OCI image layout tarballs.

Two formats are written by `save`:

- ``docker-archive``, as `docker save` (25 and later) writes it: ``manifest.json``
  (``[{"Config": "blobs/sha256/<hex>", "RepoTags": [...], "Layers": [...]}]``),
  ``repositories`` (``{"busybox": {"latest": "<hex of the top layer>"}}``), each config and
  each layer as an *uncompressed* tar named by its digest (so a layer's digest is its
  diff_id; layers the store keeps compressed are decompressed and checked against the
  diff_id on the way). The archive is also an OCI image layout (``oci-layout``,
  ``index.json``, one OCI manifest per image listing the uncompressed layers), as
  docker's is, so OCI tools read it too. `docker load` and `skopeo copy docker-archive:`
  read it.
- ``oci-archive``: a tar of an OCI image layout holding the images exactly as stored
  (manifest bytes, configs, layers as they are compressed in the store). ``index.json``
  has one entry per name, annotated with ``org.opencontainers.image.ref.name`` (the tag)
  and ``io.containerd.image.name`` (the full name), as containerd and docker write it;
  an image saved without a name gets an entry without annotations.

`load` reads either (and the same compressed with gzip, zstd, bzip2 or xz, as
`docker save | gzip`). It streams the tar once and never extracts it: each member is
spooled (in memory when small, else into an anonymous temp file in the store's ``tmp/``,
which disappears with the process even on kill -9) because a docker-archive may list its
files in any order. Then it decides the format: ``manifest.json`` makes it a
docker-archive (even when an OCI layout is there too: its RepoTags are the names docker
would use), else ``oci-layout`` an OCI archive. Every blob is verified against its
digest while it is copied into the store.

docker-archive images become OCI images: the config as it is (its digest is the image
id), the layers uncompressed (``OCI_LAYER``, digest = diff_id; a compressed layer tar in
the archive is decompressed and must match the diff_id), a canonical OCI manifest. Names
come from RepoTags.

OCI archive names: ``io.containerd.image.name`` (a full reference) when present; else
``org.opencontainers.image.ref.name`` when it is a full reference itself (it contains a
``:`` or a ``/``, as `skopeo copy ... oci-archive:FILE:busybox:latest` writes it); a
bare ref.name (``latest``) is only a tag without a repository, so that image is loaded
without a name (reported by its id, as docker reports an untagged image). A nested index
(multi-platform image) loads the manifest for this host.

Hostile archives are refused before anything is registered: absolute names, ``..``,
devices and FIFOs, a name listed twice, a symbolic link leaving the archive, a hard link
to an entry not seen before, ``manifest.json`` or ``index.json`` naming an entry that is
not there or a path outside the archive, content that does not match its digest. Links
are never followed on disk (nothing is extracted): one that stays inside the archive is
an alias for its target, as docker's own archives use them (``<id>/layer.tar ->
../blobs/sha256/<hex>``). On any failure the images this load registered are removed
and the blobs it added are deleted again (unless another image uses them by then).

A kill -9 during load leaves the store's own ``*.partial`` temp files (cleaned when the
store is next opened); a blob completely written in the short window before its image is
registered can stay behind, as with any pull (the store has no blob garbage collector).
"""

from __future__ import annotations

from cove.image.archive_entries import _BZIP2_MAGIC as _BZIP2_MAGIC
from cove.image.archive_entries import _DOCUMENT_MAX as _DOCUMENT_MAX
from cove.image.archive_entries import _GZIP_MAGIC as _GZIP_MAGIC
from cove.image.archive_entries import _HEX64_RE as _HEX64_RE
from cove.image.archive_entries import _IN_MEMORY as _IN_MEMORY
from cove.image.archive_entries import _LINK_HOPS as _LINK_HOPS
from cove.image.archive_entries import _MEMORY_MAX as _MEMORY_MAX
from cove.image.archive_entries import _XZ_MAGIC as _XZ_MAGIC
from cove.image.archive_entries import _ZSTD_MAGIC as _ZSTD_MAGIC
from cove.image.archive_entries import DOCKER_ARCHIVE as DOCKER_ARCHIVE
from cove.image.archive_entries import FORMATS as FORMATS
from cove.image.archive_entries import INDEX_JSON as INDEX_JSON
from cove.image.archive_entries import LAYOUT_VERSION as LAYOUT_VERSION
from cove.image.archive_entries import MANIFEST_JSON as MANIFEST_JSON
from cove.image.archive_entries import OCI_ARCHIVE as OCI_ARCHIVE
from cove.image.archive_entries import OCI_LAYOUT as OCI_LAYOUT
from cove.image.archive_entries import REPOSITORIES as REPOSITORIES
from cove.image.archive_entries import _blob_name as _blob_name
from cove.image.archive_entries import _compression_of as _compression_of
from cove.image.archive_entries import _decompress as _decompress
from cove.image.archive_entries import _decompression_errors as _decompression_errors
from cove.image.archive_entries import _entry_name as _entry_name
from cove.image.archive_entries import _join_inside as _join_inside
from cove.image.archive_entries import _Member as _Member
from cove.image.archive_entries import _Peek as _Peek
from cove.image.archive_entries import _read_archive as _read_archive
from cove.image.archive_entries import _Spool as _Spool
from cove.image.archive_entries import _TarWriter as _TarWriter
from cove.image.archive_load import LoadedImage as LoadedImage
from cove.image.archive_load import _blob_plan as _blob_plan
from cove.image.archive_load import _BlobPlan as _BlobPlan
from cove.image.archive_load import _check_named_digest as _check_named_digest
from cove.image.archive_load import _commit as _commit
from cove.image.archive_load import _config_of as _config_of
from cove.image.archive_load import _docker_manifest as _docker_manifest
from cove.image.archive_load import _docker_plans as _docker_plans
from cove.image.archive_load import _ImagePlan as _ImagePlan
from cove.image.archive_load import _json as _json
from cove.image.archive_load import _layer_plan as _layer_plan
from cove.image.archive_load import _oci_names as _oci_names
from cove.image.archive_load import _oci_plans as _oci_plans
from cove.image.archive_load import _repo_tag as _repo_tag
from cove.image.archive_load import load as load
from cove.image.archive_save import _image_documents as _image_documents
from cove.image.archive_save import _index_entries as _index_entries
from cove.image.archive_save import _name_of as _name_of
from cove.image.archive_save import _save_docker as _save_docker
from cove.image.archive_save import _save_oci as _save_oci
from cove.image.archive_save import _write_plain_layer as _write_plain_layer
from cove.image.archive_save import save as save
from cove.image.archive_save import select_images as select_images
