"""The scenarios of `image_bench.py`: pull (against a local docker-registry), layer unpack
and import, each tool as a probe, with the JSON entries of the report.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_image_setup import (
    APPLY_CODE,
    APPLY_IMPORT,
    DEFAULT_PYTHON,
    FILE_SIZE,
    FILES_PER_LAYER,
    IMAGE_REPO,
    IMAGE_TAG,
    LAYERS,
    MB,
    REPO_ROOT,
    TARGET_IMPORT,
    TARGET_PULL,
    TARGET_UNPACK,
    Probe,
    Spawner,
    build_oci_layout,
    build_rootfs,
    measure,
    tree_listing,
)
from benchlib import (
    REGISTRY,
    BenchError,
    Registry,
    first_line,
    fmt_ratio,
    median,
    ratio,
    remove_tree,
    run_checked,
    summarize,
    table,
    verdict,
)

# --------------------------------------------------------------------------- scenarios

#: What each side of the pull scenario does, so that the comparison stays honest (printed
#: and kept in the JSON report). Neither unpacks the layers.
PULL_SIDES = {
    "cove pull": (
        "GET the manifest by tag; config and layers over up to 6 parallel connections, "
        "sha256 checked while written, each blob fsynced and renamed into <root>/images "
        "(an OCI layout); manifest stored; image registered in the store's SQLite index "
        "(WAL, created on this first pull) and index.json; layers not unpacked"
    ),
    "skopeo copy": (
        "GET /v2/ and the manifest by tag; config and layers in parallel, digests checked "
        "while written, each blob fsynced and renamed into DIR (an OCI layout); index.json "
        "written; its blob-info cache (boltdb) updated; layers not unpacked"
    ),
}


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
    result["sides"] = PULL_SIDES
    for side, what in PULL_SIDES.items():
        print(f"  {side}: {what}")

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
