"""The flags `cove run` and `cove create` share (docker's names), and their translation to
`CreateOptions` + `RunSettings`. Values are checked by the engine (specgen), so the CLI
and the API give the same one-line errors."""

from __future__ import annotations

import argparse

from cove.engine.container_create import RunSettings
from cove.engine.create_options import CreateOptions
from cove.errors import InvalidArgument


def add_create_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("image", metavar="IMAGE")
    add("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    add("--name", default="", help="the container's name")
    add("--rm", action="store_true", help="remove the container when it exits")
    add("-i", "--interactive", action="store_true", help="keep stdin open")
    add("-t", "--tty", action="store_true", help="give the container a terminal")
    add("-e", "--env", action="append", default=[], help="set NAME=value")
    add("--env-file", action="append", default=[], help="read NAME=value lines from a file")
    add("-w", "--workdir", default="", help="working directory inside")
    add("-u", "--user", default="", help="user[:group] or uid[:gid]")
    add("--entrypoint", default=None, help="override the image's entrypoint")
    add("--hostname", default="", help="the container's hostname")
    add("-l", "--label", action="append", default=[], help="KEY=VALUE metadata")
    add("--read-only", action="store_true", help="a read-only root filesystem")
    add("--network", "--net", action="append", default=[],
        help="bridge (default), a network's name, host, none, or container:NAME; again for "
             "more user networks")  # fmt: skip
    add("-p", "--publish", action="append", default=[],
        help="[IP:][HOSTPORT:]PORT[/PROTO]: publish a container port on the host")  # fmt: skip
    add("-P", "--publish-all", action="store_true", help="publish every EXPOSEd port")
    add("--expose", action="append", default=[], help="PORT[-PORT][/PROTO]: expose a port")
    add("--ip", default="", help="IPv4 address on a user network")
    add("--dns", action="append", default=[], help="a DNS server")
    add("--dns-search", action="append", default=[], help="a DNS search domain")
    add("--dns-option", action="append", default=[], help="a resolv.conf option")
    add("--add-host", action="append", default=[], help="NAME:IP line of /etc/hosts")
    add("--network-alias", action="append", default=[], help="a DNS alias on the network")
    add("-v", "--volume", action="append", default=[], help="SRC:DST[:ro] (SRC: path or volume)")
    add("--mount", action="append", default=[], help="type=bind|tmpfs|volume,source=,target=,...")
    add("--tmpfs", action="append", default=[], help="/path[:options]")
    add("-m", "--memory", default=None, help="memory limit (100m, 1g)")
    add("--memory-swap", default=None, help="memory + swap limit (-1: unlimited)")
    add("--memory-reservation", default=None, help="memory soft limit")
    add("--oom-kill-disable", action="store_true", help="do not OOM-kill the container")
    add("--cpus", default=None, help="number of CPUs (0.5)")
    add("-c", "--cpu-shares", type=int, default=None, help="relative CPU weight")
    add("--cpu-quota", type=int, default=None, help="CFS quota (microseconds per period)")
    add("--cpu-period", type=int, default=None, help="CFS period (microseconds)")
    add("--cpuset-cpus", default="", help="CPUs allowed (0-3, 0,1)")
    add("--cpuset-mems", default="", help="memory nodes allowed")
    add("--pids-limit", type=int, default=None, help="process limit (-1: unlimited)")
    add("--blkio-weight", type=int, default=None, help="block IO weight (10-1000)")
    for flag in ("read-bps", "write-bps", "read-iops", "write-iops"):
        add(f"--device-{flag}", action="append", default=[], help=f"DEVICE:RATE ({flag})")
    add("--device", action="append", default=[], help="/dev/x[:/dev/y][:rwm]")
    add("--cap-add", action="append", default=[], help="add a capability")
    add("--cap-drop", action="append", default=[], help="drop a capability")
    add("--privileged", action="store_true", help="every capability and device")
    add("--security-opt", action="append", default=[],
        help="seccomp=FILE|unconfined, no-new-privileges")  # fmt: skip
    add("--ulimit", action="append", default=[], help="NAME=SOFT[:HARD]")
    add("--sysctl", action="append", default=[], help="NAME=VALUE")
    add("--shm-size", default=None, help="size of /dev/shm (64m)")
    add("--stop-signal", default="", help="signal that stops the container")
    add("--stop-timeout", type=int, default=None, help="seconds before SIGKILL on stop")
    add("--init", action="store_true", help="run a minimal init as PID 1")
    add("--log-driver", default="json-file", help="json-file (the only one)")
    add("--log-opt", action="append", default=[], help="max-size=SIZE, max-file=N")
    add("--runtime", default="cove", help="cove, runc, crun, or a path")
    add("--restart", default="no", help="no, always, unless-stopped, on-failure[:max-retries]")
    add("--health-cmd", default=None, help="command that checks the container's health")
    add("--health-interval", default=None, help="time between checks (30s)")
    add("--health-timeout", default=None, help="time a check may take (30s)")
    add("--health-retries", type=int, default=None, help="failures in a row for unhealthy (3)")
    add("--health-start-period", default=None, help="time before failures count (0s)")
    add("--no-healthcheck", action="store_true", help="disable the image's healthcheck")
    add("--domainname", default="", help="the container's NIS domain name")
    add("--group-add", action="append", default=[], help="another group of the process")
    add("--label-file", action="append", default=[], help="read KEY=VALUE labels from a file")
    add("--annotation", action="append", default=[], help="KEY=VALUE of the OCI spec")
    add("--pid", default="", help="host, or container:NAME (default: its own)")
    add("--ipc", default="", help="private, shareable, host, none, or container:NAME")
    add("--uts", default="", help="host (default: its own)")
    add("--cgroupns", default="", help="private or host")
    add("--cgroup-parent", default="", help="the cgroup the container's goes under")
    add("--oom-score-adj", type=int, default=None, help="-1000 to 1000")
    add("--memory-swappiness", type=int, default=None, help="0 to 100 (cgroup v1)")
    add("--cpu-rt-period", type=int, default=None, help="real-time period (microseconds)")
    add("--cpu-rt-runtime", type=int, default=None, help="real-time runtime (microseconds)")
    add("--blkio-weight-device", action="append", default=[], help="DEVICE:WEIGHT")
    add("--device-cgroup-rule", action="append", default=[], help="'c 1:3 rwm'")
    add("--volumes-from", action="append", default=[], help="CONTAINER[:ro|:rw]")
    add("--mac-address", default="", help="the MAC address on the first network")
    add("--userns", default="", help="host (the only mode: cove maps no users)")
    add("--isolation", default="", help="default (the only one on Linux)")
    add("--kernel-memory", default=None, help="deprecated: ignored")
    add("--storage-opt", action="append", default=[], help="not supported")
    from cove.cli.engine.run_image import add_image_arguments

    add_image_arguments(add)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid value '{item}' for flag {flag}: want KEY=VALUE")
        result[key] = value
    return result


def read_env_files(paths: list[str]) -> list[str]:
    """--env-file: docker reads each file on the client: NAME=value lines; a bare NAME takes
    the value this environment has (and is left out when it has none); # comments and blank
    lines are skipped."""
    import os

    entries: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    text = line.lstrip().rstrip("\r\n")
                    if not text or text.startswith("#"):
                        continue
                    name, sep, _ = text.partition("=")
                    if not name.strip() or any(c.isspace() for c in name):
                        raise InvalidArgument(f"--env-file {path}: variable '{name}' contains "
                                              "whitespaces")  # fmt: skip
                    if sep:
                        entries.append(text)
                    elif name in os.environ:
                        entries.append(f"{name}={os.environ[name]}")
        except OSError as exc:
            raise InvalidArgument(f"--env-file {path}: {exc.strerror}") from None
    return entries


def _label_files(paths: list[str]) -> dict[str, str]:
    """--label-file: KEY=VALUE lines (# comments and blank lines skipped), as docker reads."""
    labels: dict[str, str] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    text = line.strip()
                    if text and not text.startswith("#"):
                        key, _, value = text.partition("=")
                        labels[key] = value
        except OSError as exc:
            raise InvalidArgument(f"--label-file {path}: {exc.strerror}") from None
    return labels


def _refuse_unsupported(args: argparse.Namespace) -> None:
    """Docker flags with one value cove can run; others are an error naming the flag."""
    from cove.cli.engine import run_image

    run_image.check(args)
    if args.userns not in ("", "host"):
        raise InvalidArgument(f"invalid value '{args.userns}' for flag --userns: cove runs "
                              "containers without user namespaces (only 'host')")  # fmt: skip
    if args.isolation not in ("", "default"):
        raise InvalidArgument(f"invalid value '{args.isolation}' for flag --isolation: only "
                              "'default' exists on Linux")  # fmt: skip
    if args.storage_opt:
        raise InvalidArgument("--storage-opt is not supported: cove's overlay snapshots have "
                              "no size option")  # fmt: skip


def kernel_memory_warning(args: argparse.Namespace) -> list[str]:
    """docker's warning for the deprecated --kernel-memory."""
    if args.kernel_memory in (None, "", "0"):
        return []
    return ["--kernel-memory is deprecated (kernel memory limits are ignored)"]


def options_from(args: argparse.Namespace) -> tuple[CreateOptions, RunSettings]:
    if args.log_driver != "json-file":
        raise InvalidArgument(
            f"invalid value '{args.log_driver}' for flag --log-driver: only json-file is supported"
        )
    _refuse_unsupported(args)
    labels = _label_files(args.label_file)
    for item in args.label:
        key, _, value = item.partition("=")
        labels[key] = value
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = [args.entrypoint] if args.entrypoint else []
    options = CreateOptions(
        cmd=list(args.command) or None, entrypoint=entrypoint,
        env=list(args.env), env_file=read_env_files(args.env_file), workdir=args.workdir,
        user=args.user, hostname=args.hostname, labels=labels, read_only=args.read_only,
        tmpfs=list(args.tmpfs), volumes=list(args.volume), mounts=list(args.mount),
        memory=args.memory, memory_swap=args.memory_swap,
        memory_reservation=args.memory_reservation, oom_kill_disable=args.oom_kill_disable,
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpu_quota=args.cpu_quota,
        cpu_period=args.cpu_period, cpuset_cpus=args.cpuset_cpus,
        cpuset_mems=args.cpuset_mems, pids_limit=args.pids_limit,
        blkio_weight=args.blkio_weight, device_read_bps=list(args.device_read_bps),
        device_write_bps=list(args.device_write_bps),
        device_read_iops=list(args.device_read_iops),
        device_write_iops=list(args.device_write_iops), devices=list(args.device),
        cap_add=list(args.cap_add), cap_drop=list(args.cap_drop), privileged=args.privileged,
        security_opt=list(args.security_opt), ulimits=list(args.ulimit),
        sysctls=_pairs(args.sysctl, "--sysctl"), shm_size=args.shm_size,
        stop_signal=args.stop_signal, init=args.init, tty=args.tty,
        interactive=args.interactive, network=(args.network or ["bridge"])[0],
        connect=[{"network": name, "aliases": []} for name in args.network[1:]],
        publish=list(args.publish), expose=list(args.expose),
        publish_all=args.publish_all, ip=args.ip, dns=list(args.dns),
        dns_search=list(args.dns_search), dns_options=list(args.dns_option),
        add_hosts=list(args.add_host), network_aliases=list(args.network_alias),
        domainname=args.domainname, group_add=list(args.group_add),
        annotations=_pairs(args.annotation, "--annotation"), pid=args.pid, ipc=args.ipc,
        uts=args.uts, cgroupns=args.cgroupns, cgroup_parent=args.cgroup_parent,
        oom_score_adj=args.oom_score_adj, memory_swappiness=args.memory_swappiness,
        cpu_rt_period=args.cpu_rt_period, cpu_rt_runtime=args.cpu_rt_runtime,
        blkio_weight_device=list(args.blkio_weight_device),
        device_cgroup_rules=list(args.device_cgroup_rule),
        volumes_from=list(args.volumes_from), mac_address=args.mac_address,
    )  # fmt: skip
    from cove.engine.healthcheck import health_options
    from cove.engine.restart_policy import check_restart_policy, parse_restart_policy

    restart_policy = parse_restart_policy(args.restart)
    check_restart_policy(restart_policy, auto_remove=args.rm)
    healthcheck = health_options(
        cmd=args.health_cmd, interval=args.health_interval, timeout=args.health_timeout,
        retries=args.health_retries, start_period=args.health_start_period,
        disabled=args.no_healthcheck,
    )  # fmt: skip
    settings = RunSettings(
        auto_remove=args.rm, tty=args.tty, stdin=args.interactive,
        log_opts=_pairs(args.log_opt, "--log-opt"), stop_timeout=args.stop_timeout,
        restart_policy=restart_policy, healthcheck=healthcheck,
    )  # fmt: skip
    return options, settings
