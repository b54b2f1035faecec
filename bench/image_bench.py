#!/usr/bin/env python3
"""Image benchmark: cove's pull, layer unpack and import against skopeo, GNU tar and podman.

Scenarios (issue 4's targets):

* ``pull``: ``cove --root R pull 127.0.0.1:PORT/bench/img:1`` into a fresh root against
  ``skopeo copy docker://... oci:DIR:img`` into a fresh directory.  The image (5 layers
  of about 4 MB of random-ish files each) is built once as an OCI layout and pushed with
  skopeo to a docker-registry this script starts on 127.0.0.1.  Target: cove <= 1.0x.
* ``unpack``: ``cove.image.layer.apply_layer`` of one ~50 MB layer of many small files
  (a tar of /usr/lib/python3.11) into a fresh directory against ``tar -xf`` of the same
  tar, plain and gzip.  apply_layer runs in a fresh ``python -c`` per sample that reports
  the time spent inside the call.  Target: cove <= 1.5x GNU tar.
* ``import``: ``cove --root R import rootfs.tar`` of a busybox rootfs (about 2 MB) into a
  fresh root against ``podman import`` into a fresh --root/--runroot.  Target: cove <=
  podman.

The tools take turns within each round (interleaved), so slow drift of the machine affects
them alike.  Creating and deleting the fresh directories is not timed; ``sync`` runs before
every sample.  Network: loopback only.  Needs root.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = ("pull", "unpack", "import")
REPO_ROOT = Path(__file__).resolve().parent.parent
COVE_CANDIDATES = (Path("/usr/local/bin/cove"), Path("/opt/cove/venv/bin/cove"))
DEFAULT_PYTHON = Path("/opt/cove/venv/bin/python")
REGISTRY = Path("/usr/bin/docker-registry")
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


class BenchError(Exception):
    """A tool failed or a set-up step failed; the message says which and why."""


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Percentile with linear interpolation between closest ranks (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples_ns: Sequence[int]) -> dict[str, float]:
    """Median, p90, min and mean in milliseconds."""
    ms = [ns / 1e6 for ns in samples_ns]
    return {
        "median": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "min": min(ms),
        "mean": sum(ms) / len(ms),
        "n": len(ms),
    }


def median(stats: dict[str, float] | None) -> float | None:
    return None if stats is None else stats["median"]


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "met" if value <= limit else "not met"


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
        os.ftruncate(self._err, 0)
        actions = [
            (os.POSIX_SPAWN_DUP2, self._null, 0),
            (os.POSIX_SPAWN_DUP2, self._null, 1),
            (os.POSIX_SPAWN_DUP2, self._err, 2),
        ]
        start = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], list(argv), env or self.env, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter_ns() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            text = os.pread(self._err, 8192, 0).decode(errors="replace").strip()
            last = text.splitlines()[-1] if text else "(no stderr)"
            raise BenchError(f"{Path(argv[0]).name} exited {code}: {last}")
        return elapsed

    def close(self) -> None:
        os.close(self._null)
        os.close(self._err)


def run_checked(argv: Sequence[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """An untimed set-up or check command; BenchError with its stderr when it fails."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
            **kwargs,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise BenchError(f"{what}: exit {proc.returncode}: {lines[-1] if lines else ''}")
    return proc


def first_line(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else "unknown"


def find_cove(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for path in COVE_CANDIDATES:
        if os.access(path, os.X_OK):
            return str(path)
    return shutil.which("cove")


def remove_tree(path: Path) -> None:
    """Delete a fresh directory, unmounting anything a tool left mounted below it."""
    if not path.exists():
        return
    prefix = str(path) + "/"
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


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


def table(title: str, rows: list[tuple[str, dict[str, float] | None, str | None]],
          mbytes: float | None = None) -> None:  # fmt: skip
    """rows: (label, stats, error); with ``mbytes`` a MB/s column (size / median)."""
    print(f"\n== {title}")
    header = f"{'tool':<40}{'median':>10}{'p90':>10}{'min':>10}"
    header += f"{'MB/s':>9}" if mbytes is not None else ""
    print(header + "   (ms)")
    print("-" * len(header))
    for label, st, error in rows:
        if st is None:
            print(f"{label:<40}{error or 'not measured'}")
            continue
        line = f"{label:<40}{st['median']:>10.1f}{st['p90']:>10.1f}{st['min']:>10.1f}"
        if mbytes is not None:
            line += f"{mbytes / (st['median'] / 1000):>9.1f}"
        print(line)


# --------------------------------------------------------------------------- registry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Registry:
    """Debian's docker-registry on 127.0.0.1, with its own storage; stopped by PID."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = folder / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {folder / 'data'}\nhttp:\n  addr: {self.address}\n"
        )
        self.log_path = folder / "registry.log"
        self.log = open(self.log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [str(REGISTRY), "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise BenchError(f"docker-registry did not start: {self.log_path.read_text().strip()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


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


# --------------------------------------------------------------------------- scenarios


@dataclass
class Context:
    args: argparse.Namespace
    workdir: Path
    spawner: Spawner
    cove: str
    report: dict[str, Any]
    registries: list[Registry] = field(default_factory=list)


def fresh(ctx: Context, name: str, i: int) -> Path:
    return ctx.workdir / "fresh" / f"{name}-{i}"


def simple_probe(ctx: Context, name: str, argv_for: Callable[[Path], list[str]],
                 env: dict[str, str] | None = None,
                 prepare: Callable[[Path], None] | None = None) -> Probe:  # fmt: skip
    """A probe timing one command that writes into a fresh directory per sample."""

    def once(i: int) -> dict[str, int]:
        target = fresh(ctx, name, i)
        if prepare is not None:
            prepare(target)
        return {"wall": ctx.spawner.timed(argv_for(target), env)}

    return Probe(name, once, lambda i: remove_tree(fresh(ctx, name, i)))


def scenario_pull(ctx: Context) -> dict[str, Any]:
    result: dict[str, Any] = {"target": f"cove <= {TARGET_PULL}x skopeo copy"}
    skopeo = shutil.which("skopeo")
    if skopeo is None or not REGISTRY.exists():
        missing = "skopeo" if skopeo is None else str(REGISTRY)
        print(f"\n== pull: {missing}: not available; scenario skipped")
        result["error"] = f"{missing} not available"
        return result
    layout = ctx.workdir / "oci-src"
    image = build_oci_layout(layout)
    registry = Registry(ctx.workdir / "registry")
    ctx.registries.append(registry)
    ref = f"{registry.address}/{IMAGE_REPO}:{IMAGE_TAG}"
    run_checked(
        [skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:img", f"docker://{ref}"],
        "skopeo copy to the registry",
    )
    image.update(reference=ref, skopeo=first_line([skopeo, "--version"]))
    result["image"] = image
    print(
        f"\npull: {ref}, {LAYERS} gzip layers of {FILES_PER_LAYER} files x {FILE_SIZE} B, "
        f"{image['compressed_bytes'] / MB:.1f} MB compressed "
        f"({image['uncompressed_bytes'] / MB:.1f} MB uncompressed), "
        f"manifest {image['manifest_digest'][:19]}..."
    )

    # Untimed check: both end up with the image, manifest digest and all.
    check = ctx.workdir / "check-pull"
    proc = run_checked([ctx.cove, "--root", str(check / "cove"), "pull", ref], "cove pull")
    cove_ok = f"Digest: {image['manifest_digest']}" in proc.stdout
    run_checked(
        [skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{check / 'sk'}:img"],
        "skopeo copy from the registry",
    )
    skopeo_ok = image["manifest_digest"] in (check / "sk" / "index.json").read_text()
    remove_tree(check)
    result["check"] = {"cove": cove_ok, "skopeo": skopeo_ok}
    print(f"  check: cove {'ok' if cove_ok else 'wrong digest'}, "
          f"skopeo {'ok' if skopeo_ok else 'wrong digest'}")  # fmt: skip

    probes = [
        simple_probe(ctx, "cove pull", lambda d: [ctx.cove, "--root", str(d), "pull", ref]),
        simple_probe(
            ctx,
            "skopeo copy",
            lambda d: [skopeo, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{d}:img"],
        ),
    ]
    measure(probes, ctx.args.runs, ctx.args.warmup, "pull")
    cove, sk = probes[0].stats(), probes[1].stats()
    table(
        f"pull of {ref} into a fresh root/dir ({ctx.args.runs} runs)",
        [(f"cove pull ({ctx.cove})", cove, probes[0].error),
         ("skopeo copy docker:// oci:", sk, probes[1].error)],
    )  # fmt: skip
    value = ratio(median(cove), median(sk))
    result.update(
        results={p.name: result_entry(p) for p in probes},
        ratios={"cove/skopeo": value},
        targets={"cove pull median <= 1.0x skopeo copy": target_entry(value, TARGET_PULL)},
    )
    print(f"ratio cove/skopeo {fmt_ratio(value):>7}  target <= {TARGET_PULL}x: "
          f"{verdict(value, TARGET_PULL)}")  # fmt: skip
    return result


def scenario_unpack(ctx: Context) -> dict[str, Any]:
    source = Path(ctx.args.unpack_source).resolve()
    result: dict[str, Any] = {"target": f"apply_layer <= {TARGET_UNPACK}x GNU tar -xf"}
    tar = shutil.which("tar")
    python = ctx.args.python or (str(DEFAULT_PYTHON) if DEFAULT_PYTHON.exists() else sys.executable)
    src = str(REPO_ROOT / "src")
    if tar is None or not source.is_dir():
        why = "tar not found" if tar is None else f"{source} is not a directory"
        print(f"\n== unpack: {why}; scenario skipped")
        result["error"] = why
        return result
    run_checked([python, "-I", "-c", APPLY_IMPORT.format(src=src)], "import cove.image.layer")

    layers = ctx.workdir / "layers"
    layers.mkdir()
    plain = layers / "layer.tar"
    run_checked([tar, "-cf", str(plain), "-C", str(source.parent), source.name], "tar -cf")
    data = plain.read_bytes()
    diff_id = f"sha256:{hashlib.sha256(data).hexdigest()}"
    compressed = layers / "layer.tar.gz"
    compressed.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
    with tarfile.open(plain) as archive:
        entries = sum(1 for _ in archive)
    size = len(data)
    del data
    layer: dict[str, Any] = {
        "source": str(source),
        "tar_bytes": size,
        "gzip_bytes": compressed.stat().st_size,
        "entries": entries,
        "diff_id": diff_id,
        "python": python,
        "tar": first_line([tar, "--version"]),
    }
    result["layer"] = layer
    print(
        f"\nunpack: tar of {source}: {size / MB:.1f} MB, {entries} entries; gzip -6 "
        f"{layer['gzip_bytes'] / MB:.1f} MB; {layer['tar']}; apply_layer in {python} -I"
    )
    code = APPLY_CODE.format(src=src)
    times = ctx.workdir / "apply-ns"

    def cove_probe(kind: str, path: Path) -> Probe:
        name = f"apply_layer {kind}"

        def once(i: int) -> dict[str, int]:
            dest = fresh(ctx, name.replace(" ", "-"), i)
            wall = ctx.spawner.timed(
                [python, "-I", "-c", code, str(path), str(dest), str(times), diff_id]
            )
            return {"in-call": int(times.read_text()), "wall": wall}

        return Probe(name, once, lambda i: remove_tree(fresh(ctx, name.replace(" ", "-"), i)))

    def tar_probe(kind: str, path: Path, flags: str) -> Probe:
        def argv(dest: Path) -> list[str]:
            return [tar, flags, str(path), "-C", str(dest)]

        return simple_probe(
            ctx, f"tar {flags} {kind}", argv, prepare=lambda d: d.mkdir(parents=True)
        )

    probes = [
        cove_probe("plain", plain),
        tar_probe("plain", plain, "-xf"),
        cove_probe("gzip", compressed),
        tar_probe("gzip", compressed, "-xzf"),
    ]
    by_name = {p.name: p for p in probes}

    # Untimed check: apply_layer and tar make the same tree (paths, kinds, file sizes).
    check = ctx.workdir / "check-unpack"
    run_checked([python, "-I", "-c", code, str(plain), str(check / "cove"), str(times), diff_id],
                "apply_layer")  # fmt: skip
    (check / "tar").mkdir()
    run_checked([tar, "-xf", str(plain), "-C", str(check / "tar")], "tar -xf")
    same = tree_listing(check / "cove") == tree_listing(check / "tar")
    remove_tree(check)
    result["check"] = {"same_tree_as_tar": same}
    print(f"  check: apply_layer and tar -xf give {'the same tree' if same else 'DIFFERENT trees'}")

    measure(probes, ctx.args.runs, ctx.args.warmup, "unpack")
    rows: list[tuple[str, dict[str, float] | None, str | None]] = []
    for kind, flags in (("plain", "-xf"), ("gzip", "-xzf")):
        cove, tar_p = by_name[f"apply_layer {kind}"], by_name[f"tar {flags} {kind}"]
        rows += [
            (f"apply_layer {kind}, in the call", cove.stats("in-call"), cove.error),
            (f"apply_layer {kind}, python -c wall", cove.stats("wall"), cove.error),
            (f"tar {flags} ({kind})", tar_p.stats(), tar_p.error),
        ]
    table(
        f"layer unpack into a fresh dir ({ctx.args.runs} runs; MB/s = uncompressed tar "
        "size / median)",
        rows,
        mbytes=size / MB,
    )
    result["results"] = {p.name: result_entry(p) for p in probes}
    result["ratios"], result["targets"] = {}, {}
    for kind, flags in (("plain", "-xf"), ("gzip", "-xzf")):
        cove, tar_p = by_name[f"apply_layer {kind}"], by_name[f"tar {flags} {kind}"]
        cs, cw, ts = cove.stats("in-call"), cove.stats("wall"), tar_p.stats()
        value = ratio(median(cs), median(ts))
        wall = ratio(median(cw), median(ts))
        result["ratios"][kind] = {"apply_layer/tar": value, "python wall/tar": wall}
        target = f"apply_layer {kind} median <= {TARGET_UNPACK}x tar {flags}"
        result["targets"][target] = target_entry(value, TARGET_UNPACK)
        print(
            f"ratio {kind:<6} apply_layer/tar {fmt_ratio(value):>7}  target <= "
            f"{TARGET_UNPACK}x: {verdict(value, TARGET_UNPACK):<8} "
            f"(with python start-up: {fmt_ratio(wall)})"
        )
    return result


def podman_argv(podman: str, base: Path, driver: str, tarball: Path) -> list[str]:
    return [
        podman, "--root", str(base / "root"), "--runroot", str(base / "run"),
        "--tmpdir", str(base / "libpod"), "--storage-driver", driver,
        "--cgroup-manager", "cgroupfs", "--events-backend", "file",
        "import", str(tarball), "bench/bb:1",
    ]  # fmt: skip


def podman_env(base: Path) -> dict[str, str]:
    # podman import copies the tarball below $TMPDIR (default /var/tmp): keep it here.
    return {**os.environ, "TMPDIR": str(base / "tmp")}


def scenario_import(ctx: Context) -> dict[str, Any]:
    result: dict[str, Any] = {"target": "cove import <= podman import"}
    rootfs = ctx.workdir / "rootfs"
    build_rootfs(rootfs, Path(ctx.args.busybox))
    tarball = ctx.workdir / "rootfs.tar"
    run_checked(["tar", "-cf", str(tarball), "-C", str(rootfs), "."], "tar -cf rootfs")
    podman = shutil.which("podman")
    driver: str | None = None
    podman_note = "podman: not available"
    if podman is not None:
        # Untimed probe: the first driver that works (overlay is podman's default).
        for candidate in dict.fromkeys((ctx.args.podman_driver, "overlay", "vfs")):
            base = ctx.workdir / f"pp{candidate[0]}"  # short: --runroot must be < 50 chars
            (base / "tmp").mkdir(parents=True)
            try:
                run_checked(podman_argv(podman, base, candidate, tarball), "podman import",
                            env=podman_env(base))  # fmt: skip
                driver = candidate
                break
            except BenchError as exc:
                podman_note = f"podman: failed with every storage driver ({exc})"
            finally:
                remove_tree(base)
        if driver is not None:
            podman_note = f"{first_line([podman, '--version'])}, --storage-driver {driver}"
    result["rootfs_tar_bytes"] = tarball.stat().st_size
    result["podman"] = podman_note
    print(f"\nimport: busybox rootfs tar {tarball.stat().st_size / MB:.2f} MB; {podman_note}")
    run_checked([ctx.cove, "--root", str(ctx.workdir / "check-import"), "import",
                 str(tarball), "bench/bb:1"], "cove import")  # fmt: skip
    remove_tree(ctx.workdir / "check-import")

    probes = [
        simple_probe(ctx, "cove import",
                     lambda d: [ctx.cove, "--root", str(d), "import", str(tarball), "bench/bb:1"]),
    ]  # fmt: skip
    if podman is not None and driver is not None:
        pd = driver

        def podman_base(i: int) -> Path:
            return ctx.workdir / f"p{i}"  # short: podman wants a --runroot under 50 chars

        def prepare(base: Path) -> None:
            (base / "tmp").mkdir(parents=True)

        def once(i: int) -> dict[str, int]:
            base = podman_base(i)
            prepare(base)
            return {"wall": ctx.spawner.timed(podman_argv(podman, base, pd, tarball),
                                              podman_env(base))}  # fmt: skip

        probes.append(Probe("podman import", once, lambda i: remove_tree(podman_base(i))))
    measure(probes, ctx.args.runs, ctx.args.warmup, "import")
    rows = [(f"cove import ({ctx.cove})", probes[0].stats(), probes[0].error)]
    if len(probes) > 1:
        rows.append((f"podman import ({driver})", probes[1].stats(), probes[1].error))
    else:
        rows.append(("podman import", None, podman_note))
    table(f"import of a busybox rootfs tar into a fresh root ({ctx.args.runs} runs)", rows)
    cove = probes[0].stats()
    pod = probes[1].stats() if len(probes) > 1 else None
    value = ratio(median(cove), median(pod))
    result.update(
        results={p.name: result_entry(p) for p in probes},
        ratios={"cove/podman": value},
        targets={"cove import median <= podman import": target_entry(value, TARGET_IMPORT)},
    )
    print(f"ratio cove/podman {fmt_ratio(value):>7}  target <= {TARGET_IMPORT}x: "
          f"{verdict(value, TARGET_IMPORT)}")  # fmt: skip
    return result


def result_entry(probe: Probe) -> dict[str, Any]:
    if probe.error is not None:
        return {"status": "failed", "error": probe.error}
    return {
        "status": "ok",
        "stats_ms": {metric: summarize(values) for metric, values in probe.samples.items()},
        "samples_ms": {m: [ns / 1e6 for ns in values] for m, values in probe.samples.items()},
    }


def target_entry(value: float | None, limit: float) -> dict[str, Any]:
    return {"ratio": value, "limit": limit, "verdict": verdict(value, limit)}


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Image benchmark: cove pull/unpack/import against skopeo, tar, podman."
    )
    parser.add_argument("--runs", type=int, default=10, help="measured runs (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs (default 1)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma list from pull,unpack,import"
    )
    parser.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    parser.add_argument(
        "--cove", metavar="PATH", help="cove launcher (default /usr/local/bin/cove)"
    )
    parser.add_argument("--python", metavar="PATH", help="python for apply_layer (default venv)")
    parser.add_argument("--unpack-source", default="/usr/lib/python3.11",
                        help="directory tarred into the unpack layer")  # fmt: skip
    parser.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    parser.add_argument("--podman-driver", default="overlay", help="tried first (then vfs)")
    args = parser.parse_args(argv)
    picked = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in picked if n not in SCENARIOS]
    if unknown or not picked:
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}; got {unknown}")
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if os.geteuid() != 0:
        print("image_bench: must run as root", file=sys.stderr)
        return 1
    cove = find_cove(args.cove)
    if cove is None:
        print("image_bench: no cove launcher found", file=sys.stderr)
        return 1
    scenarios = [sc for sc in SCENARIOS if sc in picked]

    workdir = Path(tempfile.mkdtemp(prefix="cove-image-bench-"))
    spawner = Spawner(workdir)
    report: dict[str, Any] = {
        "config": {
            "runs": args.runs,
            "warmup": args.warmup,
            "scenarios": scenarios,
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "cove": cove,
            "cove_version": first_line([cove, "version"]),
            "timer": "time.perf_counter_ns around posix_spawn + waitpid; os.sync() before each",
        },
        "scenarios": {},
    }
    ctx = Context(args, workdir, spawner, cove, report)
    print(
        f"image benchmark: {args.runs} runs after {args.warmup} warm-up, kernel "
        f"{platform.release()}, {os.cpu_count()} CPUs, workdir {workdir}\n"
        f"  cove: {cove} ({report['config']['cove_version']})"
    )
    steps = {"pull": scenario_pull, "unpack": scenario_unpack, "import": scenario_import}
    failed = 0
    try:
        for scenario in scenarios:
            try:
                report["scenarios"][scenario] = steps[scenario](ctx)
            except BenchError as exc:
                failed += 1
                print(f"\n== {scenario}: set-up failed: {exc}")
                report["scenarios"][scenario] = {"error": str(exc)}
            finally:
                for registry in ctx.registries:
                    registry.stop()
                ctx.registries.clear()
    finally:
        for registry in ctx.registries:
            registry.stop()
        spawner.close()
        remove_tree(workdir)

    print("\ntargets:")
    for scenario in scenarios:
        for target, entry in report["scenarios"][scenario].get("targets", {}).items():
            print(f"  {target:<44}{fmt_ratio(entry['ratio']):>8}  {entry['verdict']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 1 if failed == len(scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
