"""Set-up and measuring for `image_bench.py`: the benchmark's settings, timed spawning, the
synthetic OCI image (random layers, an OCI layout), the busybox rootfs, and interleaved
measuring of the probes.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import BenchError, run_checked, spawn_timed, summarize

SCENARIOS = ("pull", "unpack", "import")
REPO_ROOT = Path(__file__).resolve().parent.parent
COVE_CANDIDATES = (Path("/usr/local/bin/cove"), Path("/opt/cove/venv/bin/cove"))
DEFAULT_PYTHON = Path("/opt/cove/venv/bin/python")


MB = 1_000_000

TARGET_PULL = 1.0  # cove pull median / skopeo copy median
TARGET_UNPACK = 1.5  # apply_layer median / tar -xf median
TARGET_IMPORT = 1.0  # cove import median / podman import median

# The pulled image: LAYERS layers of FILES_PER_LAYER files of FILE_SIZE bytes each.
LAYERS = 5
FILES_PER_LAYER = 40
FILE_SIZE = 100_000
IMAGE_REPO = "bench/img"
IMAGE_TAG = "1"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# Run in a fresh interpreter per sample: times apply_layer alone and writes the ns to argv[3].
APPLY_CODE = """
import sys, time
sys.path.insert(0, {src!r})
from cove.image.layer import apply_layer
source, dest, out, diff_id = sys.argv[1:5]
with open(source, "rb") as f:
    start = time.perf_counter_ns()
    apply_layer(f, dest, diff_id=diff_id)
    elapsed = time.perf_counter_ns() - start
with open(out, "w") as f:
    f.write(str(elapsed))
"""
APPLY_IMPORT = "import sys; sys.path.insert(0, {src!r}); import cove.image.layer"


# --------------------------------------------------------------------------- processes


class Spawner:
    """Spawns a command with posix_spawn and times it until it is reaped.

    stdin and stdout go to /dev/null, stderr to a scratch file (its last line is the
    error message when the command fails).
    """

    def __init__(self, workdir: Path) -> None:
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._err = os.open(workdir / "stderr.log", flags, 0o600)
        self.env = dict(os.environ)

    def timed(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Run ``argv`` (argv[0] absolute); return the elapsed ns, or raise BenchError."""
        elapsed, code = spawn_timed(argv, env or self.env, self._null, self._err)
        if code != 0:
            text = os.pread(self._err, 8192, 0).decode(errors="replace").strip()
            last = text.splitlines()[-1] if text else "(no stderr)"
            raise BenchError(f"{Path(argv[0]).name} exited {code}: {last}")
        return elapsed

    def close(self) -> None:
        os.close(self._null)
        os.close(self._err)


def find_cove(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for path in COVE_CANDIDATES:
        if os.access(path, os.X_OK):
            return str(path)
    return shutil.which("cove")


# --------------------------------------------------------------------------- measuring


@dataclass
class Probe:
    """One tool in one scenario.  ``once(i)`` runs a timed sample and returns its metrics
    in ns ("wall", and for apply_layer "in-call"); ``cleanup(i)`` is untimed."""

    name: str
    once: Callable[[int], dict[str, int]]
    cleanup: Callable[[int], None]
    samples: dict[str, list[int]] = field(default_factory=dict)
    error: str | None = None

    def stats(self, metric: str = "wall") -> dict[str, float] | None:
        values = self.samples.get(metric)
        return summarize(values) if values and self.error is None else None


def measure(probes: list[Probe], runs: int, warmup: int, title: str) -> None:
    """Interleaved rounds: every live probe once per round; warm-up rounds are dropped."""
    total = warmup + runs
    gc.disable()
    try:
        for i in range(total):
            for probe in probes:
                if probe.error is not None:
                    continue
                os.sync()
                try:
                    metrics = probe.once(i)
                except (BenchError, OSError) as exc:
                    probe.error = str(exc)
                    print(f"\n  {probe.name}: failed: {exc}", file=sys.stderr)
                    continue
                finally:
                    probe.cleanup(i)
                if i >= warmup:
                    for key, value in metrics.items():
                        probe.samples.setdefault(key, []).append(value)
            print(f"\r  {title}: round {i + 1}/{total}", end="", file=sys.stderr)
    finally:
        gc.enable()
        print(file=sys.stderr)


# --------------------------------------------------------------------------- image building


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def random_file(rng: random.Random, size: int) -> bytes:
    """Half random bytes, half text of random words: gzip shrinks it to about 60 %."""
    words = [rng.randbytes(rng.randint(2, 8)).hex() for _ in range(200)]
    text = bytearray()
    while len(text) < size - size // 2:
        text += (" ".join(rng.choices(words, k=12)) + "\n").encode()
    return rng.randbytes(size // 2) + bytes(text[: size - size // 2])


def layer_tar(rng: random.Random, index: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        top = tarfile.TarInfo(f"layer{index}")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
        tar.addfile(top)
        for n in range(FILES_PER_LAYER):
            data = random_file(rng, FILE_SIZE)
            info = tarfile.TarInfo(f"layer{index}/file{n:03d}.dat")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_oci_layout(layout: Path) -> dict[str, Any]:
    """The multi-layer image as an OCI layout with the ref name "img"; returns its facts."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        hexdigest = hashlib.sha256(data).hexdigest()
        (blobs / hexdigest).write_bytes(data)
        return f"sha256:{hexdigest}"

    rng = random.Random(4)
    layers, diff_ids, raw_total = [], [], 0
    for index in range(LAYERS):
        raw = layer_tar(rng, index)
        raw_total += len(raw)
        diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
        blob = gzip.compress(raw, compresslevel=6, mtime=0)
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": put(blob), "size": len(blob)})
    config = canonical({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })  # fmt: skip
    manifest = canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
        "layers": layers,
    })  # fmt: skip
    manifest_digest = put(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layout_index: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": "img"},
        }],
    }  # fmt: skip
    (layout / "index.json").write_text(json.dumps(layout_index))
    return {
        "layers": LAYERS,
        "files_per_layer": FILES_PER_LAYER,
        "file_size": FILE_SIZE,
        "uncompressed_bytes": raw_total,
        "compressed_bytes": sum(layer["size"] for layer in layers),
        "manifest_digest": manifest_digest,
    }


def build_rootfs(dest: Path, busybox: Path) -> None:
    """A busybox rootfs: /bin/busybox plus its applet symlinks, made inside a chroot."""
    for sub in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    (dest / "bin" / "busybox").chmod(0o755)
    run_checked(["chroot", str(dest), "/bin/busybox", "--install", "-s", "/bin"], "busybox")
    if not (dest / "bin" / "true").is_symlink():
        raise BenchError("busybox --install -s /bin made no applet links")


def tree_listing(root: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (kind, size) of everything below ``root``."""
    found: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "l" if path.is_symlink() else "d" if path.is_dir() else "f"
            found[str(path.relative_to(root))] = (kind, st.st_size if kind == "f" else 0)
    return found
