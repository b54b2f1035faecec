"""Set-up and clean-up for `network_bench.py`: the settings, the run's context, the
iperf3 image (busybox plus iperf3 and its libraries), both engines on their default
bridge networks (podman with netavark and a private network_config_dir), and the
clean-up of the engines and of the host's network.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_engine_setup import (
    CALL_TIMEOUT_S,
    Engine,
    make_cove,
    make_podman,
    remove_all,
    teardown,
    untimed,
)
from bench_network_host import HostNet, output_lines, restore_host_net
from bench_procs import Spawner, reap_orphans
from benchlib import BenchError, build_image_tar, run_checked

DNS_UPSTREAMS = "127.0.0.1:9"  # cove's DNS responder never forwards beyond loopback
IPERF = "/usr/bin/iperf3"
IPERF_PORT = 5201
IPERF_IMAGE = "ip3:1"
PODMAN_NETWORK_CONF = """\
[network]
network_backend = "netavark"
network_config_dir = "{folder}"
"""
MAX_FAILURES = 3  # a variant that fails this often is given up; fewer are noted, skipped


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    spawner: Spawner
    cove: Engine | None = None
    podman: Engine | None = None
    podman_note: str = ""
    cove_bridge: str | None = None
    cove_subnet: str = ""
    problems: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=lambda: {"scenarios": {}})

    @property
    def engines(self) -> list[Engine]:
        return [e for e in (self.cove, self.podman) if e is not None]

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  problem: {text}")


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    out = untimed(engine, ["inspect", ref], f"inspect {ref[:12]}", CALL_TIMEOUT_S).stdout
    data = json.loads(out)
    if isinstance(data, list):
        if not data:
            raise BenchError(f"{engine.name} inspect {ref[:12]}: empty answer")
        data = data[0]
    return dict(data)


def run_detached(b: Bench, engine: Engine, *args: str) -> str:
    """`run -d ARGS...`: the full id (remembered in engine.ids for the leak checks)."""
    try:
        out = b.spawner.run(engine.run_argv("-d", *args), engine.env, CALL_TIMEOUT_S)
    finally:
        reap_orphans()
    lines = out.stdout.strip().splitlines()
    cid = lines[-1].strip() if lines else ""
    if len(cid) == 64:
        engine.ids.add(cid)
    if out.code != 0:
        raise BenchError(f"{engine.name} run -d {' '.join(args)}: exit {out.code}: "
                         f"{out.last_error()}")  # fmt: skip
    if len(cid) != 64:
        raise BenchError(f"{engine.name} run -d printed no container id: {out.stdout!r}")
    return cid


# --------------------------------------------------------------------------- set-up


def build_iperf_tar(folder: Path, busybox: Path) -> tuple[Path, list[str]]:
    """The busybox rootfs plus /usr/bin/iperf3 and the libraries ldd names (copied to the
    same paths): one image both engines can run `iperf3 -s` from."""
    folder.mkdir()
    base = build_image_tar(folder, busybox)
    rootfs = folder / "rootfs"
    rootfs.mkdir()
    run_checked(["tar", "-xf", str(base), "-C", str(rootfs)], "tar -xf busybox rootfs")
    base.unlink()
    files = [IPERF]
    for line in output_lines(["ldd", IPERF]):
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1:
            path = parts[parts.index("=>") + 1]
            if path.startswith("/"):
                files.append(path)
        elif parts and parts[0].startswith("/"):
            files.append(parts[0])  # the ELF interpreter
    if len(files) < 3:
        raise BenchError(f"ldd {IPERF} named no libraries")
    for path in files:
        dest = rootfs / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)  # follows symlinks: the file itself, under its ldd name
    tarball = folder / "iperf3.tar"
    run_checked(["tar", "-cf", str(tarball), "-C", str(rootfs), "."], "tar -cf iperf3 rootfs")
    shutil.rmtree(rootfs)
    return tarball, files


def setup(b: Bench, cove_path: str, bb_tar: Path, ip3_tar: Path | None) -> None:
    b.cove = make_cove(cove_path, b.workdir)
    b.cove.env["COVE_DNS_UPSTREAMS"] = DNS_UPSTREAMS
    untimed(b.cove, ["version"], f"{cove_path} version (does the launcher find cove?)")
    untimed(b.cove, ["import", str(bb_tar), b.cove.image], "import", CALL_TIMEOUT_S)
    if ip3_tar is not None:
        untimed(b.cove, ["import", str(ip3_tar), IPERF_IMAGE], "import iperf3", CALL_TIMEOUT_S)
    out = untimed(b.cove, ["network", "inspect", "bridge"], "network inspect bridge").stdout
    data = json.loads(out)
    data = data[0] if isinstance(data, list) else data
    b.cove_bridge = data.get("Options", {}).get("com.docker.network.bridge.name")
    ipam_config = (data.get("IPAM") or {}).get("Config") or [{}]
    b.cove_subnet = ipam_config[0].get("Subnet", "")
    podman = shutil.which("podman")
    if podman is None:
        b.podman_note = "podman not found on PATH: podman columns are skipped"
        return
    if shutil.which("conmon") is None and not Path("/usr/libexec/podman/conmon").exists():
        b.podman_note = "conmon not found: podman columns are skipped"
        return
    engine = make_podman(podman, b.workdir)
    b.podman = engine  # cleaned up even if a step below fails
    netconf = b.workdir / "pnet"
    netconf.mkdir()
    engine.dirs.append(netconf)
    with open(engine.env["CONTAINERS_CONF"], "a") as f:
        f.write(PODMAN_NETWORK_CONF.format(folder=netconf))
    engine.run_flags = []  # podman's default network: "podman", bridge podman0, 10.88.0.0/16
    try:
        backend = untimed(engine, ["info", "--format", "{{.Host.NetworkBackend}}"], "info")
        if backend.stdout.strip() != "netavark":
            raise BenchError(f"network backend is {backend.stdout.strip()!r}, not netavark")
        untimed(engine, ["import", str(bb_tar), engine.image], "import", CALL_TIMEOUT_S * 2)
        if ip3_tar is not None:
            untimed(engine, ["import", str(ip3_tar), f"localhost/{IPERF_IMAGE}"], "import iperf3")
        # One untimed container proves the configuration works on this host.
        untimed(engine, ["run", "--rm", engine.image, "true"], "run probe", CALL_TIMEOUT_S)
    except BenchError as exc:
        b.podman_note = f"podman set-up failed, podman columns are skipped: {exc}"
        b.problems.append(b.podman_note)
        b.podman = None
        b.problems.extend(teardown([engine], None))


# --------------------------------------------------------------------------- clean-up


def cleanup(b: Bench, before: HostNet) -> list[str]:
    """Containers, cove's own check of its root, the engines' storage, then the host's
    network (bridges, namespaces, netavark's rules and state).  Returns problems."""
    problems: list[str] = []
    if b.cove is not None:
        problems += remove_all(b.cove)
        try:
            check = untimed(b.cove, ["system", "check"], "system check", check=False)
            text = (check.stdout + check.stderr).strip()
            if check.returncode != 0 or text != "nothing to repair":
                problems.append(f"cove system check: {text.splitlines()[:3]}")
                untimed(b.cove, ["system", "check", "--repair"], "system check --repair",
                        check=False)  # fmt: skip
        except BenchError as exc:
            problems.append(str(exc))
    podman_used = b.podman is not None or "pnet" in {d.name for d in b.workdir.iterdir()}
    marker = str(b.workdir)
    problems += teardown(b.engines, b.workdir)
    notes, host_problems = restore_host_net(
        before, b.cove_bridge, b.cove_subnet, podman_used, marker
    )
    for note in notes:
        print(f"  clean-up: {note}")
    b.report["cleanup_notes"] = notes
    return problems + host_problems
