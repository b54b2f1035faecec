"""Images made from the host itself: the seed's chroot recipe as one command.

The seed copies /usr, /etc and /var/lib into a folder, links bin, sbin and lib into usr,
and creates dev home proc run sys var root tmp (tmp mode 1777). `bootstrap_from_host`
builds that tree as an image without copying gigabytes: the image has one small real
layer, the skeleton (the links, the empty folders, mount points for the host's folders),
and its config records the host folders (label HOST_BINDS_LABEL). A container gets each as
a copy-on-write overlay of its own over the host's folder (`cove.engine.host_dirs`: apt-get
inside never changes the host); `cove image mount` binds them read-only. With `copy=True`
the host's folders go into a real layer instead, and the image is portable.

Both kinds, and `bootstrap_debian`'s images, have Debian's /usr/sbin/policy-rc.d that
exits 101 (POLICY_RC_D), as Debian's own container images do: package scripts then start
no service on install (invoke-rc.d asks it), so `apt-get install -y nginx && nginx -g
"daemon off;"` runs the one nginx in the foreground. In a --from-host image it is in the
skeleton's /usr, which the container's /usr overlay puts over the host's.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from typing import Any

from cove.errors import InvalidArgument
from cove.image.manifest import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical_json
from cove.image.reference import parse_reference
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord

HOST_BINDS_LABEL = "io.cove.image.host-binds"
HOST_DIRS = ("usr", "etc", "var/lib")
EMPTY_DIRS = ("dev", "home", "proc", "run", "sys", "var", "root", "tmp", "var/cache", "var/log")
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POLICY_RC_D_PATH = "usr/sbin/policy-rc.d"
POLICY_RC_D = b"""#!/bin/sh
# A container: package scripts start no service (invoke-rc.d: 101, action forbidden).
# Start what the container runs in its command; remove this file to allow it.
exit 101
"""


def bootstrap_from_host(
    store: ImageStore, name: str, host_root: str = "/", copy: bool = False
) -> ImageRecord:
    reference = parse_reference(name)
    host_root = os.path.abspath(host_root)
    missing = [d for d in HOST_DIRS[:1] if not os.path.isdir(os.path.join(host_root, d))]
    if missing:
        raise InvalidArgument(f"--from-host: {host_root} has no {missing[0]} folder to use")
    host_dirs = [d for d in HOST_DIRS if os.path.isdir(os.path.join(host_root, d))]
    # A host without merged /usr has real /bin, /lib...: those are host folders too.
    for link in ROOT_LINKS:
        path = os.path.join(host_root, link)
        if os.path.isdir(path) and not os.path.islink(path):
            host_dirs.append(link)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    layers = [store.put_blob(_skeleton(host_root, host_dirs))]
    history = [{"created": created, "created_by": "cove image bootstrap: the chroot skeleton"}]
    labels = {}
    if copy:
        layers.append(store.put_blob(_host_dirs_tar(host_root, host_dirs)))
        copied = ", ".join(host_dirs)
        history.append({"created": created, "created_by": f"cove image bootstrap --copy: {copied}"})
    else:
        labels[HOST_BINDS_LABEL] = json.dumps(
            [{"source": os.path.join(host_root, d), "destination": "/" + d} for d in host_dirs]
        )
    config = {
        "architecture": _architecture(),
        "os": "linux",
        "created": created,
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["/bin/sh"], "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]},
        "history": history,
    }
    return _register(store, reference, config, layers)


def bootstrap_debian(
    store: ImageStore,
    name: str,
    suite: str,
    mirror: str | None = None,
    include: tuple[str, ...] = (),
    work_dir: str | None = None,
) -> ImageRecord:
    """A Debian image made with debootstrap (variant minbase) from `mirror` (default: the
    one this machine's apt uses)."""
    import shutil
    import subprocess
    import tempfile

    reference = parse_reference(name)
    debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
    if debootstrap is None:
        raise InvalidArgument("--debootstrap: debootstrap is not installed (Debian package)")
    if not suite or "/" in suite or suite.startswith("-"):
        raise InvalidArgument(f"--debootstrap: invalid suite {suite!r}")
    mirror = mirror or apt_mirror()
    target = tempfile.mkdtemp(prefix="debootstrap-", dir=work_dir)
    try:
        command = [debootstrap, "--variant=minbase"]
        if include:
            command.append("--include=" + ",".join(include))
        command += [suite, target, mirror]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise InvalidArgument(f"--debootstrap {suite} from {mirror} failed: {' / '.join(tail)}")
        write_policy_rc_d(target)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = sorted(os.listdir(target))
        layer = store.put_blob(_host_dirs_tar(target, entries))
        config = {
            "architecture": _architecture(),
            "os": "linux",
            "created": created,
            "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["/bin/bash"]},
            "rootfs": {"type": "layers", "diff_ids": [str(layer.digest)]},
            "history": [{"created": created,
                         "created_by": f"debootstrap --variant=minbase {suite} {mirror}"}],
        }  # fmt: skip
        return _register(store, reference, config, [layer])
    finally:
        shutil.rmtree(target, ignore_errors=True)


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses, or deb.debian.org."""
    candidates = []
    sources_dir = "/etc/apt/sources.list.d"
    try:
        for name in sorted(os.listdir(sources_dir)):
            if name.endswith(".sources"):
                with open(os.path.join(sources_dir, name)) as sources:
                    for line in sources:
                        if line.startswith("URIs:"):
                            candidates.extend(line.split()[1:])
    except OSError:
        pass
    try:
        with open("/etc/apt/sources.list") as sources:
            for line in sources:
                words = line.split()
                if len(words) >= 3 and words[0] == "deb":
                    candidates.append(next(w for w in words[1:] if not w.startswith("[")))
    except OSError:
        pass
    for uri in candidates:
        if "debian" in uri and "security" not in uri:
            return uri
    return "http://deb.debian.org/debian"


def _register(
    store: ImageStore, reference: Any, config: dict[str, Any], layers: list[Any]
) -> ImageRecord:
    config_info = store.put_blob(canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(config_info.digest),
                   "size": config_info.size},
        "layers": [{"mediaType": OCI_LAYER, "digest": str(layer.digest), "size": layer.size}
                   for layer in layers],
    }  # fmt: skip
    manifest_info = store.put_blob(canonical_json(manifest))
    return store.add_image(manifest_info.digest, names=[reference])


def host_binds(labels: dict[str, str]) -> list[tuple[str, str]]:
    """The (host source, container destination) pairs an image records, if any."""
    raw = labels.get(HOST_BINDS_LABEL)
    if not raw:
        return []
    try:
        entries = json.loads(raw)
        return [(str(e["source"]), str(e["destination"])) for e in entries]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(f"label {HOST_BINDS_LABEL}: malformed: {raw!r}") from None


def write_policy_rc_d(root: str) -> None:
    """POLICY_RC_D into the tree at `root` (a debootstrap target), unless it has one."""
    path = os.path.join(root, POLICY_RC_D_PATH)
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "wb") as out:
        out.write(POLICY_RC_D)
    os.chmod(path, 0o755)


def _skeleton(host_root: str, host_dirs: list[str]) -> bytes:
    import tarfile  # (not at the top: every run of a bootstrap image reads host_binds)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        names = sorted({*EMPTY_DIRS, *host_dirs, "var", "usr", os.path.dirname(POLICY_RC_D_PATH)})
        for name in names:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(POLICY_RC_D_PATH)
        info.size = len(POLICY_RC_D)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(POLICY_RC_D))
        for link in ROOT_LINKS:
            path = os.path.join(host_root, link)
            if os.path.islink(path):
                info = tarfile.TarInfo(link)
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
    return buffer.getvalue()


def _host_dirs_tar(host_root: str, host_dirs: list[str]) -> _PipeReader:
    """A tar of the host's folders, produced by a thread into a pipe (no temporary copy)."""
    import tarfile

    read_end, write_end = os.pipe()
    reader = os.fdopen(read_end, "rb")
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_end, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                for name in host_dirs:
                    tar.add(os.path.join(host_root, name), arcname=name, recursive=True)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=produce, name="cove-bootstrap-tar", daemon=True)
    thread.start()
    return _PipeReader(reader, thread, failure)


class _PipeReader(io.RawIOBase):
    def __init__(
        self, reader: io.BufferedReader, thread: threading.Thread, failure: list[BaseException]
    ) -> None:
        self.reader = reader
        self.thread = thread
        self.failure = failure

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.reader.read(size)
        if not data:
            self.thread.join()
            if self.failure:
                raise InvalidArgument(f"--copy: cannot read the host: {self.failure[0]}")
        return data


def _architecture() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
