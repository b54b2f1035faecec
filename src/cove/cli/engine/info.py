"""cove info [--format json]: the engine and the host, as docker info shows them."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

from cove import __version__
from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", "-f", default="", help="json")


def gather(root: str) -> dict[str, Any]:
    from cove.engine.host_info import HostInfo
    from cove.engine.state import ContainerStore

    with ContainerStore(root) as store:
        records = store.list(all=True)
    counts = {s: sum(1 for r in records if r.status == s) for s in ("running", "paused")}
    images = 0
    if os.path.isdir(os.path.join(root, "images")):
        from cove.image.store import ImageStore

        with ImageStore(os.path.join(root, "images")) as image_store:
            images = len(image_store.images())
    host = HostInfo.probe()
    memory = 0
    try:
        with open("/proc/meminfo") as f:
            memory = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "Containers": len(records), "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": len(records) - counts["running"] - counts["paused"],
        "Images": images, "Driver": "overlay", "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if host.cgroup_v2 else "1",
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSType": "linux",
        "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1, "MemTotal": memory,
        "DockerRootDir": root, "Name": platform.node(), "ServerVersion": __version__,
        "DefaultRuntime": "cove", "Runtimes": {"cove": {}, "runc": {}, "crun": {}},
        "InitBinary": "cove-init", "SecurityOptions": ["name=seccomp,profile=builtin"],
    }  # fmt: skip


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def run(args: argparse.Namespace, context: Context) -> int:
    info = gather(context.root)
    if args.format == "json":
        sys.stdout.write(json.dumps(info) + "\n")
        return 0
    for key, value in info.items():
        sys.stdout.write(f" {key}: {value}\n")
    return 0
