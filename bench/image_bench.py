#!/usr/bin/env python3
"""Image benchmark: cove's pull, layer unpack and import against skopeo, GNU tar and podman.

Scenarios (issue 4's targets):

* ``pull``: ``cove --root R pull 127.0.0.1:PORT/bench/img:1`` into a fresh root against
  ``skopeo copy docker://... oci:DIR:img`` into a fresh directory.  The image (5 layers
  of about 4 MB of random-ish files each) is built once as an OCI layout and pushed with
  skopeo to a docker-registry this script starts on 127.0.0.1.  Both check digests, fsync
  each blob and write an OCI layout; neither unpacks layers; cove also creates its SQLite
  index (the report prints what each side does).  Target: cove <= 1.0x.
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
import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_image_scenarios import Context as Context
from bench_image_scenarios import fresh as fresh
from bench_image_scenarios import podman_argv as podman_argv
from bench_image_scenarios import podman_env as podman_env
from bench_image_scenarios import result_entry as result_entry
from bench_image_scenarios import scenario_import as scenario_import
from bench_image_scenarios import scenario_pull as scenario_pull
from bench_image_scenarios import scenario_unpack as scenario_unpack
from bench_image_scenarios import simple_probe as simple_probe
from bench_image_scenarios import target_entry as target_entry
from bench_image_setup import APPLY_CODE as APPLY_CODE
from bench_image_setup import APPLY_IMPORT as APPLY_IMPORT
from bench_image_setup import COVE_CANDIDATES as COVE_CANDIDATES
from bench_image_setup import DEFAULT_PYTHON as DEFAULT_PYTHON
from bench_image_setup import FILE_SIZE as FILE_SIZE
from bench_image_setup import FILES_PER_LAYER as FILES_PER_LAYER
from bench_image_setup import IMAGE_REPO as IMAGE_REPO
from bench_image_setup import IMAGE_TAG as IMAGE_TAG
from bench_image_setup import LAYERS as LAYERS
from bench_image_setup import MB as MB
from bench_image_setup import OCI_CONFIG as OCI_CONFIG
from bench_image_setup import OCI_LAYER_GZIP as OCI_LAYER_GZIP
from bench_image_setup import OCI_MANIFEST as OCI_MANIFEST
from bench_image_setup import REPO_ROOT as REPO_ROOT
from bench_image_setup import SCENARIOS as SCENARIOS
from bench_image_setup import TARGET_IMPORT as TARGET_IMPORT
from bench_image_setup import TARGET_PULL as TARGET_PULL
from bench_image_setup import TARGET_UNPACK as TARGET_UNPACK
from bench_image_setup import Probe as Probe
from bench_image_setup import Spawner as Spawner
from bench_image_setup import build_oci_layout as build_oci_layout
from bench_image_setup import build_rootfs as build_rootfs
from bench_image_setup import canonical as canonical
from bench_image_setup import find_cove as find_cove
from bench_image_setup import layer_tar as layer_tar
from bench_image_setup import measure as measure
from bench_image_setup import random_file as random_file
from bench_image_setup import tree_listing as tree_listing
from benchlib import REGISTRY as REGISTRY
from benchlib import BenchError as BenchError
from benchlib import Registry as Registry
from benchlib import first_line as first_line
from benchlib import fmt_ratio as fmt_ratio
from benchlib import free_port as free_port
from benchlib import median as median
from benchlib import percentile as percentile
from benchlib import ratio as ratio
from benchlib import remove_tree as remove_tree
from benchlib import run_checked as run_checked
from benchlib import summarize as summarize
from benchlib import table as table
from benchlib import verdict as verdict

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
