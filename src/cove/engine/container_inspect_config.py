"""`docker inspect`'s Config of a container, and the Path and Args of what it runs
(`cove.engine.container_inspect`).

Where the inputs overlap, the most precise one wins: the engine's "*_resolved" keys in
`record.config`, then the OCI spec's process, then the create options over the image
config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cove.engine.container_inspect_values import as_int, list_or_none, string_map, strings
from cove.engine.state_records import ContainerRecord
from cove.errors import CoveError

INIT_PATH = "/dev/cove-init"  # cove.engine.specgen.INIT_PATH (not imported: it is heavy)

Json = dict[str, Any]


def image_exec(image_config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The execution part of an image config: `config` of an OCI image config, or the
    mapping itself when it already is that part."""
    if not isinstance(image_config, Mapping):
        return {}
    inner = image_config.get("config")
    if isinstance(inner, Mapping):
        return inner
    return image_config


def _spec_process(spec: Mapping[str, Any] | None) -> Mapping[str, Any]:
    process = spec.get("process") if isinstance(spec, Mapping) else None
    return process if isinstance(process, Mapping) else {}


def _entrypoint(options: Mapping[str, Any], image: Mapping[str, Any]) -> list[str] | None:
    if "entrypoint_resolved" in options:
        return list_or_none(options["entrypoint_resolved"])
    if options.get("entrypoint") is not None:
        return list_or_none(options["entrypoint"])
    return list_or_none(image.get("Entrypoint"))


def _spec_args(options: Mapping[str, Any], process: Mapping[str, Any]) -> list[str] | None:
    """The spec's process.args without the init cove put in front (--init)."""
    if "args" not in process:
        return None
    args = strings(process["args"])
    if options.get("init") and args[:1] == [INIT_PATH] and args[1:2] == ["--"]:
        return args[2:]
    return args


def _cmd(
    options: Mapping[str, Any],
    image: Mapping[str, Any],
    entrypoint: list[str] | None,
    args: list[str] | None,
) -> list[str] | None:
    """Docker's rules: arguments after the image replace its Cmd; --entrypoint drops it."""
    if "cmd_resolved" in options:
        return list_or_none(options["cmd_resolved"])
    prefix = entrypoint or []
    if args is not None and args[: len(prefix)] == prefix:
        return args[len(prefix) :] or None
    if options.get("cmd"):
        return strings(options["cmd"])
    if options.get("entrypoint") is not None:
        return None
    return list_or_none(image.get("Cmd"))


def _merge_env(env: list[str], entries: Sequence[str]) -> None:
    for entry in entries:
        name = entry.split("=", 1)[0]
        env[:] = [e for e in env if e.split("=", 1)[0] != name]
        if "=" in entry:
            env.append(entry)


def _env(
    options: Mapping[str, Any], image: Mapping[str, Any], process: Mapping[str, Any]
) -> list[str]:
    if "env_resolved" in options:
        return strings(options["env_resolved"])
    if "env" in process:
        return strings(process["env"])
    env = strings(image.get("Env"))
    _merge_env(env, strings(options.get("env_file")))
    _merge_env(env, strings(options.get("env")))
    return env


def _workdir(
    options: Mapping[str, Any], image: Mapping[str, Any], process: Mapping[str, Any]
) -> str:
    if "workdir_resolved" in options:
        return str(options["workdir_resolved"])
    if process.get("cwd"):
        return str(process["cwd"])
    return str(options.get("workdir") or image.get("WorkingDir") or "")


def _user(options: Mapping[str, Any], image: Mapping[str, Any], process: Mapping[str, Any]) -> str:
    if "user_resolved" in options:
        return str(options["user_resolved"])
    named = options.get("user") or image.get("User")
    if named:
        return str(named)
    ids = process.get("user")
    if isinstance(ids, Mapping) and (as_int(ids.get("uid")) or as_int(ids.get("gid"))):
        return f"{as_int(ids.get('uid'))}:{as_int(ids.get('gid'))}"
    return ""


def _hostname(record: ContainerRecord, spec: Mapping[str, Any] | None) -> str:
    if isinstance(spec, Mapping) and spec.get("hostname"):
        return str(spec["hostname"])
    return str(record.config.get("hostname") or record.id[:12])


def _attach(options: Mapping[str, Any], extra: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    """(stdin, stdout, stderr): `docker run` in the foreground attaches stdout and stderr,
    and stdin with -i; `extra` says otherwise (for example for `run -d`)."""
    stdin = bool(extra.get("attach_stdin", options.get("interactive", False)))
    stdout = bool(extra.get("attach_stdout", True))
    stderr = bool(extra.get("attach_stderr", True))
    return stdin, stdout, stderr


def config(
    record: ContainerRecord,
    spec: Mapping[str, Any] | None,
    image: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> Json:
    """Docker's Config: `image` is the image config's execution part (`image_exec`)."""
    options = record.config
    process = _spec_process(spec)
    entrypoint = _entrypoint(options, image)
    stdin, stdout, stderr = _attach(options, extra)
    interactive = bool(options.get("interactive"))
    volumes = image.get("Volumes")
    result: Json = {
        "Hostname": _hostname(record, spec),
        "Domainname": str(options.get("domainname") or ""),
        "User": _user(options, image, process),
        "AttachStdin": stdin,
        "AttachStdout": stdout,
        "AttachStderr": stderr,
        "Tty": bool(options.get("tty")),
        "OpenStdin": interactive,
        "StdinOnce": interactive and stdin,
        "Env": _env(options, image, process),
        "Cmd": _cmd(options, image, entrypoint, _spec_args(options, process)),
        "Image": record.image_name,
        "Volumes": dict(volumes) if isinstance(volumes, Mapping) and volumes else None,
        "WorkingDir": _workdir(options, image, process),
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": {**string_map(image.get("Labels")), **string_map(options.get("labels"))},
    }
    exposed = _exposed_ports(record, image)
    if exposed:
        result["ExposedPorts"] = exposed
    stop_signal = options.get("stop_signal") or image.get("StopSignal")
    if stop_signal:
        result["StopSignal"] = str(stop_signal)
    if extra.get("stop_timeout") is not None:
        result["StopTimeout"] = as_int(extra["stop_timeout"])
    if isinstance(extra.get("healthcheck"), Mapping):
        result["Healthcheck"] = dict(extra["healthcheck"])
    return result


def _exposed_ports(record: ContainerRecord, image: Mapping[str, Any]) -> Json:
    """Docker's Config.ExposedPorts: the image's, --expose's and the published ports'."""
    from cove.engine.network.ports import parse_expose

    keys: list[str] = list(image.get("ExposedPorts") or {})
    for spec in record.config.get("expose") or ():
        try:
            keys += parse_expose(str(spec))
        except CoveError:
            continue
    for binding in record.settings.get("port_bindings") or ():
        if isinstance(binding, Mapping):
            keys.append(f"{binding.get('container_port')}/{binding.get('protocol') or 'tcp'}")
    return {key: {} for key in sorted(set(keys), key=_port_order)}


def _port_order(key: str) -> tuple[int, str]:
    port, _, protocol = key.partition("/")
    return (int(port) if port.isdigit() else 0, protocol)


def path_args(record: ContainerRecord, spec: Mapping[str, Any] | None, config: Json) -> list[str]:
    """The command line the container runs: the spec's, else Entrypoint + Cmd."""
    args = _spec_args(record.config, _spec_process(spec))
    if args is None:
        args = (config["Entrypoint"] or []) + (config["Cmd"] or [])
    return args
