"""The cgroup resources, devices and rlimits of a spec, from `docker run` flags.

Part of `cove.engine.specgen`: each function checks its flags (one-line `InvalidArgument`
naming the flag and the value) and returns spec fragments; warnings (a value adjusted to
what Docker or the host allows) are appended to the caller's list.
"""

from __future__ import annotations

import math
import os
import re
import stat
from typing import Any

from cove.engine.create_options import CreateOptions, parse_bytes
from cove.engine.host_info import RLIMITS, UNLIMITED, HostInfo, parse_id_list
from cove.errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024  # Docker's floor: below this a container cannot even start
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
CPU_PERIOD = 100000  # --cpus N becomes quota N * 100000 per period 100000 (microseconds)
DEFAULT_RLIMITS = {"nofile": (1048576, 1048576)}  # Docker's (dockerd runs with this)


def _bad(flag: str, value: object, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid value '{value}' for flag {flag}: {why}")


def _given(value: object) -> bool:
    return value is not None and value != "" and value != 0


def _size(value: str | int, flag: str) -> int:
    if isinstance(value, str) and value.strip() == "-1":
        return -1
    if isinstance(value, int) and value == -1:
        return -1
    return parse_bytes(value, flag)


def memory(options: CreateOptions, host: HostInfo, warnings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limit = 0
    if options.memory is not None and _given(options.memory):
        limit = parse_bytes(options.memory, "--memory")
    if limit and limit < MIN_MEMORY:
        raise _bad("--memory", options.memory, "the minimum memory limit allowed is 6MB")
    if limit:
        out["limit"] = limit
    swap: int | None = None
    if _given(options.memory_swap):
        assert options.memory_swap is not None
        swap = _size(options.memory_swap, "--memory-swap")
        if not limit:
            raise _bad("--memory-swap", options.memory_swap, "it needs --memory as well")
        if swap != -1 and swap < limit:
            raise _bad(
                "--memory-swap",
                options.memory_swap,
                "it must be at least --memory (it counts memory plus swap)",
            )
    elif limit:
        swap = 2 * limit  # Docker's default: as much swap as memory
    if swap is not None:
        if host.swap_limit:
            out["swap"] = swap
        elif _given(options.memory_swap):
            warnings.append(
                "this host does not account swap (no memory.memsw / memory.swap.max): "
                "--memory-swap is ignored, memory is limited without swap"
            )
    if _given(options.memory_reservation):
        assert options.memory_reservation is not None
        reservation = parse_bytes(options.memory_reservation, "--memory-reservation")
        if reservation < MIN_MEMORY:
            raise _bad(
                "--memory-reservation",
                options.memory_reservation,
                "the minimum memory reservation allowed is 6MB",
            )
        if limit and reservation > limit:
            raise _bad(
                "--memory-reservation",
                options.memory_reservation,
                "it must not be more than --memory",
            )
        out["reservation"] = reservation
    if options.memory_swappiness is not None and options.memory_swappiness != -1:
        swappiness = _int_flag(options.memory_swappiness, "--memory-swappiness")
        if not 0 <= swappiness <= 100:
            raise _bad("--memory-swappiness", swappiness, "the range is 0 to 100 (-1: the "
                       "kernel's)")  # fmt: skip
        if host.cgroup_v2:
            warnings.append("cgroup v2 has no memory swappiness: --memory-swappiness is ignored")
        else:
            out["swappiness"] = swappiness
    if options.oom_kill_disable:
        out["disableOOMKiller"] = True
        if not limit:
            warnings.append(
                "--oom-kill-disable without --memory: the container may exhaust the host's memory"
            )
    return out


def _int_flag(value: object, flag: str) -> int:
    if isinstance(value, bool):
        raise _bad(flag, value, "not a number")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise _bad(flag, value, "not a number") from None


def cpu(options: CreateOptions, host: HostInfo, warnings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if _given(options.cpus):
        try:
            cpus = float(str(options.cpus).strip())
        except ValueError:
            raise _bad("--cpus", options.cpus, "not a number") from None
        available = len(host.cpus_online)
        if not math.isfinite(cpus) or cpus < 0:
            raise _bad("--cpus", options.cpus, "it must be a positive number")
        if cpus > available or (0 < cpus < 0.01):
            raise _bad(
                "--cpus",
                options.cpus,
                f"the range is 0.01 to {available}.00: this host has {available} CPUs",
            )
        if _given(options.cpu_quota) or _given(options.cpu_period):
            raise _bad("--cpus", options.cpus, "conflicts with --cpu-quota and --cpu-period")
        if cpus:
            out["quota"] = round(cpus * CPU_PERIOD)
            out["period"] = CPU_PERIOD
    if _given(options.cpu_period):
        period = _int_flag(options.cpu_period, "--cpu-period")
        if not 1000 <= period <= 1000000:
            raise _bad("--cpu-period", period, "it must be 1000..1000000 microseconds")
        out["period"] = period
    if _given(options.cpu_quota):
        quota = _int_flag(options.cpu_quota, "--cpu-quota")
        if quota != -1 and quota < 1000:
            raise _bad("--cpu-quota", quota, "it must be -1 or at least 1000 microseconds")
        out["quota"] = quota
    if _given(options.cpu_shares):
        shares = _int_flag(options.cpu_shares, "--cpu-shares")
        if shares < 0:
            raise _bad("--cpu-shares", shares, "it must not be negative")
        if shares < MIN_CPU_SHARES or shares > MAX_CPU_SHARES:
            clamped = min(max(shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
            warnings.append(f"--cpu-shares {shares} is out of range: using {clamped}")
            shares = clamped
        out["shares"] = shares
    for flag, value, online, key, what in (
        ("--cpuset-cpus", options.cpuset_cpus, host.cpus_online, "cpus", "CPUs"),
        ("--cpuset-mems", options.cpuset_mems, host.mems_online, "mems", "memory nodes"),
    ):
        if not value:
            continue
        try:
            wanted = parse_id_list(value)
        except ValueError:
            raise _bad(flag, value, "expected a list such as 0-2,4") from None
        if not wanted:
            raise _bad(flag, value, "expected a list such as 0-2,4")
        missing = wanted - online
        if missing:
            have = ",".join(str(n) for n in sorted(online))
            raise _bad(flag, value, f"{what} {sorted(missing)} are not available (have {have})")
        out[key] = value.strip()
    realtime = (("--cpu-rt-period", options.cpu_rt_period, "realtimePeriod"),
                ("--cpu-rt-runtime", options.cpu_rt_runtime, "realtimeRuntime"))  # fmt: skip
    for flag, given, key in realtime:
        if not _given(given):
            continue
        number = _int_flag(given, flag)
        if number < 0:
            raise _bad(flag, number, "it must not be negative")
        if host.cgroup_v2:
            raise _bad(flag, number, "cgroup v2 has no real-time CPU limits")
        out[key] = number
    if "realtimeRuntime" in out and out["realtimeRuntime"] > out.get("realtimePeriod", 10**18):
        raise _bad("--cpu-rt-runtime", out["realtimeRuntime"], "it must not exceed --cpu-rt-period")
    return out


def pids(options: CreateOptions) -> dict[str, Any] | None:
    if options.pids_limit is None or options.pids_limit == 0:
        return None
    limit = _int_flag(options.pids_limit, "--pids-limit")
    return {"limit": -1 if limit < 0 else limit}


def _block_device(path: str, flag: str, host: HostInfo, text: str) -> tuple[int, int]:
    try:
        info = host.stat(path)
    except OSError as exc:
        raise _bad(flag, text, f"cannot stat {path}: {exc.strerror or exc}") from None
    if not stat.S_ISBLK(info.st_mode):
        raise _bad(flag, text, f"{path} is not a block device")
    return os.major(info.st_rdev), os.minor(info.st_rdev)


def block_io(options: CreateOptions, host: HostInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if _given(options.blkio_weight):
        weight = _int_flag(options.blkio_weight, "--blkio-weight")
        if not 10 <= weight <= 1000:
            raise _bad("--blkio-weight", weight, "the range is 10 to 1000")
        out["weight"] = weight
    for flag, entries, key, is_size in (
        ("--device-read-bps", options.device_read_bps, "throttleReadBpsDevice", True),
        ("--device-write-bps", options.device_write_bps, "throttleWriteBpsDevice", True),
        ("--device-read-iops", options.device_read_iops, "throttleReadIOPSDevice", False),
        ("--device-write-iops", options.device_write_iops, "throttleWriteIOPSDevice", False),
    ):
        rates = []
        for text in entries:
            path, sep, rate_text = text.rpartition(":")
            if not sep or not path.startswith("/") or not rate_text:
                raise _bad(flag, text, "expected /dev/PATH:RATE")
            if is_size:
                rate = parse_bytes(rate_text, flag)
            else:
                if not rate_text.isdigit():
                    raise _bad(flag, text, "the rate must be a whole number of operations")
                rate = int(rate_text)
            major, minor = _block_device(path, flag, host, text)
            rates.append({"major": major, "minor": minor, "rate": rate})
        if rates:
            out[key] = rates
    weights = []
    for text in options.blkio_weight_device:
        path, sep, weight_text = text.rpartition(":")
        if not sep or not path.startswith("/") or not weight_text.isdigit():
            raise _bad("--blkio-weight-device", text, "expected /dev/PATH:WEIGHT")
        weight = int(weight_text)
        if weight and not 10 <= weight <= 1000:
            raise _bad("--blkio-weight-device", text, "the range is 10 to 1000 (0: none)")
        major, minor = _block_device(path, "--blkio-weight-device", host, text)
        weights.append({"major": major, "minor": minor, "weight": weight})
    if weights:
        out["weightDevice"] = weights
    return out


_RULE = re.compile(r"([abc]) (\d+|\*):(\d+|\*) ([rwm]{1,3})")


def device_cgroup_rules(options: CreateOptions) -> list[dict[str, Any]]:
    """--device-cgroup-rule "c 1:3 rwm" ("*" for any major or minor): allow entries."""
    rules = []
    for text in options.device_cgroup_rules:
        match = _RULE.fullmatch(text.strip())
        if match is None or len(set(match.group(4))) != len(match.group(4)):
            raise _bad("--device-cgroup-rule", text, "expected TYPE MAJOR:MINOR ACCESS, such as "
                       "'c 1:3 rwm' (TYPE a, b or c; * for any number)")  # fmt: skip
        kind, major, minor, access = match.groups()
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major != "*":
            rule["major"] = int(major)
        if minor != "*":
            rule["minor"] = int(minor)
        rules.append(rule)
    return rules


_DEVICE_ACCESS = set("rwm")


def _device_entry(path: str, info: os.stat_result) -> dict[str, Any]:
    return {
        "path": path,
        "type": "b" if stat.S_ISBLK(info.st_mode) else "c",
        "major": os.major(info.st_rdev),
        "minor": os.minor(info.st_rdev),
        "fileMode": stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
    }


def parse_device(text: str) -> tuple[str, str, str]:
    """`--device SRC[:DST][:PERMS]` -> (source, destination, permissions)."""
    parts = text.split(":")
    source, destination, access = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if parts[1] and set(parts[1]) <= _DEVICE_ACCESS:
            access = parts[1]
        else:
            destination = parts[1]
    elif len(parts) == 3:
        destination, access = parts[1], parts[2]
    elif len(parts) > 3:
        raise _bad("--device", text, "expected SRC[:DST][:PERMISSIONS]")
    if not access or not set(access) <= _DEVICE_ACCESS:
        raise _bad("--device", text, "permissions must be made of r, w and m")
    if not source.startswith("/") or not destination.startswith("/"):
        raise _bad("--device", text, "device paths must be absolute")
    return source, destination, access


def devices(
    options: CreateOptions, host: HostInfo
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(linux.devices, the device cgroup rules to add) for --device and --privileged."""
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    if options.privileged:
        for path, info in host.devices():
            nodes.append(_device_entry(path, info))
        rules.append({"allow": True, "access": "rwm"})
    for text in options.devices:
        source, destination, access = parse_device(text)
        try:
            info = host.stat(source)
        except OSError as exc:
            raise _bad("--device", text, f"cannot stat {source}: {exc.strerror or exc}") from None
        found: list[tuple[str, os.stat_result]] = []
        if stat.S_ISDIR(info.st_mode):
            for folder, _dirs, files in os.walk(source):
                for name in sorted(files):
                    path = os.path.join(folder, name)
                    try:
                        child = host.stat(path)
                    except OSError:
                        continue
                    if stat.S_ISCHR(child.st_mode) or stat.S_ISBLK(child.st_mode):
                        inside = os.path.join(destination, os.path.relpath(path, source))
                        found.append((inside, child))
            if not found:
                raise _bad("--device", text, f"{source} holds no device")
        elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
            found.append((destination, info))
        else:
            raise _bad("--device", text, f"{source} is not a device")
        for path, child in found:
            entry = _device_entry(path, child)
            nodes = [n for n in nodes if n["path"] != path]
            nodes.append(entry)
            rule = {"allow": True, "type": entry["type"], "major": entry["major"],
                    "minor": entry["minor"], "access": access}  # fmt: skip
            rules.append(rule)
    return nodes, rules


# Docker's device cgroup rules: nothing but the standard character devices, and mknod of
# any device (creating a node is harmless when it cannot be opened).
def default_device_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "access": "m"},
        {"allow": True, "type": "b", "access": "m"},
    ]
    for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)):
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    rules.append({"allow": True, "type": "c", "major": 136, "access": "rwm"})  # /dev/pts/*
    return rules


# --- rlimits ---------------------------------------------------------------------------


def _limit_value(text: str, flag_value: str) -> int:
    text = text.strip()
    if text in ("-1", "unlimited"):
        return UNLIMITED
    if not text.isdigit():
        raise _bad("--ulimit", flag_value, f"{text!r} is not a number")
    return int(text)


def parse_ulimit(text: str) -> tuple[str, int, int]:
    """`name=soft[:hard]` -> (name, soft, hard)."""
    name, sep, values = text.partition("=")
    name = name.strip().lower()
    if not sep or not values:
        raise _bad("--ulimit", text, "expected NAME=SOFT[:HARD]")
    if name not in RLIMITS:
        raise _bad("--ulimit", text, f"unknown ulimit name {name!r}")
    soft_text, colon, hard_text = values.partition(":")
    soft = _limit_value(soft_text, text)
    hard = _limit_value(hard_text, text) if colon else soft
    if soft > hard:
        raise _bad("--ulimit", text, "the soft limit must not be above the hard limit")
    return name, soft, hard


def _show(value: int) -> str:
    return "unlimited" if value == UNLIMITED else str(value)


def rlimits(options: CreateOptions, host: HostInfo, warnings: list[str]) -> list[dict[str, Any]]:
    """process.rlimits: Docker's defaults and --ulimit, clamped to what the host allows.

    Without CAP_SYS_RESOURCE nobody may raise a hard limit above its own, so a value the
    engine could not set itself is lowered to the engine's hard limit (with a warning),
    instead of failing inside the runtime with "error setting rlimits".
    """
    wanted: dict[str, tuple[int, int, bool]] = {
        name: (soft, hard, False) for name, (soft, hard) in DEFAULT_RLIMITS.items()
    }
    for text in options.ulimits:
        name, soft, hard = parse_ulimit(text)
        wanted[name] = (soft, hard, True)
    out = []
    for name, (soft, hard, explicit) in wanted.items():
        ceiling = UNLIMITED
        if host.can_raise_rlimits:
            if name == "nofile":
                ceiling = host.nr_open
        else:
            ceiling = host.rlimit_hard.get(name, UNLIMITED)
            if name == "nofile":
                ceiling = min(ceiling, host.nr_open)
        if hard > ceiling:
            source = "--ulimit" if explicit else "the default"
            new_soft = min(soft, ceiling)
            why = (
                "the engine lacks CAP_SYS_RESOURCE" if not host.can_raise_rlimits else "fs.nr_open"
            )
            # A default the user did not ask for is clamped silently (docker run users
            # never see it); a limit they gave with --ulimit is clamped with a warning.
            if explicit:
                warnings.append(
                    f"ulimit {name}: {source} {_show(soft)}:{_show(hard)} lowered to "
                    f"{_show(new_soft)}:{_show(ceiling)}, the most this host allows ({why})"
                )
            soft, hard = new_soft, ceiling
        out.append({"type": "RLIMIT_" + name.upper(), "hard": hard, "soft": soft})
    return out
