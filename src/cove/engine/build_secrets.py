"""`RUN --mount=type=secret` and `RUN --mount=type=ssh`: what `cove build --secret` and
`--ssh` hand to one RUN step, never to a layer, the image's config or the step cache.

- secret: the value given for the mount's id (default: the target's base name) is written
  to a file in a private folder on tmpfs (/dev/shm: it never reaches a disk), with the
  mount's mode (default 0400) and owner (default 0:0), and bind-mounted read-only at the
  target (default /run/secrets/ID). With `env=NAME` it is also (or, without a target, only)
  the step's environment variable NAME. The folder goes when the step ends; a build killed
  meanwhile leaves one named after its pid, which `cove system check --repair` removes.
- ssh: the agent socket given for the id (default "default": `--ssh default` is
  $SSH_AUTH_SOCK) is bind-mounted at the target (default /run/buildkit/ssh_agent.N) and
  SSH_AUTH_SOCK points at it.

A missing id is an error with `required=true`; otherwise the step runs without the mount,
as BuildKit does. The values are not part of the cache key (BuildKit's rule too): changing
a secret does not rebuild a cached step.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cove.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.create_options import MountOption
    from cove.image.build.instructions import Mount

SECRETS_PREFIX = "cove-build-secrets-"
SECRETS_PARENT = "/dev/shm"
SSH_SOCKET_ENV = "SSH_AUTH_SOCK"


@dataclass(frozen=True)
class BuildSecrets:
    """What the command line gave: secret values and ssh agent sockets, by id."""

    secrets: Mapping[str, bytes] = field(default_factory=dict)
    ssh: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResources:
    """What docker build's --add-host, --shm-size and --ulimit give every RUN container."""

    add_hosts: tuple[str, ...] = ()
    shm_size: str = ""
    ulimits: tuple[str, ...] = ()

    def check(self) -> None:
        """Each value as `docker run` would take it (InvalidArgument naming the flag)."""
        if not (self.add_hosts or self.shm_size or self.ulimits):
            return  # (nothing to load the parsers for)
        from cove.engine.create_options import parse_bytes
        from cove.engine.network.hosts import parse_add_host
        from cove.engine.spec_resources import parse_ulimit

        for text in self.add_hosts:
            parse_add_host(text, "0.0.0.0")  # (host-gateway: the step's gateway, later)
        if self.shm_size:
            parse_bytes(self.shm_size, "--shm-size")
        for text in self.ulimits:
            parse_ulimit(text)


@dataclass
class StepSecrets:
    """One step's secret and ssh mounts: container mounts and environment entries."""

    mounts: list[MountOption] = field(default_factory=list)
    env: list[str] = field(default_factory=list)


class MissingSecret(Exception):
    """A `required=true` secret or ssh id that the build was not given."""


# --- the command line ------------------------------------------------------------------


def _fields(text: str, flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid value '{text}' for flag {flag}: want KEY=VALUE pairs")
        found[key.strip()] = value
    return found


def parse_secret(text: str, environ: Mapping[str, str]) -> tuple[str, bytes]:
    """`--secret id=ID[,src=PATH | ,env=VAR][,type=file|env]` (buildx's syntax): (id, value).
    With neither src nor env, the variable named ID if it is set, else the file ID."""
    given = _fields(text, "--secret")
    secret_id = given.pop("id", "")
    if not secret_id:
        raise InvalidArgument(f"invalid value '{text}' for flag --secret: it needs id=ID")
    kind = given.pop("type", "")
    source = given.pop("src", None) or given.pop("source", None)
    env = given.pop("env", None)
    if given:
        raise InvalidArgument(f"invalid value '{text}' for flag --secret: "
                              f"unknown key {sorted(given)[0]!r}")  # fmt: skip
    if kind not in ("", "file", "env"):
        raise InvalidArgument(f"invalid value '{text}' for flag --secret: type is file or env")
    if kind == "env" or env is not None:
        name = env or source or secret_id
        if name not in environ:
            raise InvalidArgument(f"--secret {secret_id}: the variable {name} is not set")
        return secret_id, environ[name].encode("utf-8", "surrogateescape")
    if source is None and kind == "" and secret_id in environ:
        return secret_id, environ[secret_id].encode("utf-8", "surrogateescape")
    path = source or secret_id
    try:
        with open(path, "rb") as secret_file:
            return secret_id, secret_file.read()
    except OSError as exc:
        raise InvalidArgument(f"--secret {secret_id}: cannot read {path}: {exc.strerror}") from None


def parse_ssh(text: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """`--ssh ID[=SOCKET]`: (id, the agent's socket); without a socket, $SSH_AUTH_SOCK."""
    ssh_id, sep, path = text.partition("=")
    if not ssh_id:
        raise InvalidArgument(f"invalid value '{text}' for flag --ssh: want ID[=SOCKET]")
    if not sep:
        path = environ.get(SSH_SOCKET_ENV, "")
        if not path:
            raise InvalidArgument(f"--ssh {ssh_id}: no socket given and {SSH_SOCKET_ENV} is "
                                  "not set")  # fmt: skip
    import stat

    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError as exc:
        raise InvalidArgument(f"--ssh {ssh_id}: {path}: {exc.strerror}") from None
    if not is_socket:
        raise InvalidArgument(f"--ssh {ssh_id}: {path} is not an agent's socket (key files "
                              "are not supported: start ssh-agent and add them)")  # fmt: skip
    return ssh_id, os.path.abspath(path)


# --- one step --------------------------------------------------------------------------


def step_secrets(
    mounts: Sequence[Mount], given: BuildSecrets, workdir: str, stack: contextlib.ExitStack
) -> StepSecrets:
    """The secret and ssh mounts among `mounts` (expanded) for one step; what they need on
    the host is undone by `stack`."""
    from cove.engine.create_options import MountOption

    step = StepSecrets()
    folder = ""
    ssh_index = 0
    for mount in mounts:
        if mount.type == "secret":
            secret_id = mount.id or posixpath.basename(mount.target.rstrip("/"))
            if not secret_id:
                raise MissingSecret("RUN --mount=type=secret needs id= or target=")
            value = given.secrets.get(secret_id)
            if value is None:
                if mount.required:
                    raise MissingSecret(f"secret {secret_id} is required: give it with "
                                        f"--secret id={secret_id},src=PATH")  # fmt: skip
                continue
            if mount.env:
                step.env.append(f"{mount.env}={value.decode('utf-8', 'surrogateescape')}")
                if not mount.target:
                    continue
            if not folder:
                folder = _private_folder()
                stack.callback(shutil.rmtree, folder, True)
            path = os.path.join(folder, f"{len(step.mounts)}")
            _write_secret(path, value, mount)
            target = _absolute(mount.target or f"/run/secrets/{secret_id}", workdir)
            step.mounts.append(MountOption(type="bind", source=path, target=target,
                                           read_only=True))  # fmt: skip
        elif mount.type == "ssh":
            ssh_id = mount.id or "default"
            socket = given.ssh.get(ssh_id)
            if socket is None:
                if mount.required:
                    raise MissingSecret(f"ssh {ssh_id} is required: give it with --ssh {ssh_id}")
                continue
            target = _absolute(mount.target or f"/run/buildkit/ssh_agent.{ssh_index}", workdir)
            ssh_index += 1
            step.mounts.append(MountOption(type="bind", source=socket, target=target))
            if ssh_index == 1:
                step.env.append(f"{SSH_SOCKET_ENV}={target}")
    return step


def _absolute(target: str, workdir: str) -> str:
    return posixpath.normpath(posixpath.join(workdir or "/", target))


def _private_folder() -> str:
    parent = SECRETS_PARENT if os.path.isdir(SECRETS_PARENT) else None
    return tempfile.mkdtemp(prefix=f"{SECRETS_PREFIX}{os.getpid()}-", dir=parent)


def _write_secret(path: str, value: bytes, mount: Mount) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    with os.fdopen(fd, "wb") as out:
        out.write(value)
        out.flush()
        os.fchown(fd, mount.uid or 0, mount.gid or 0)
        os.fchmod(fd, 0o400 if mount.mode is None else mount.mode)


# --- what a killed build left ------------------------------------------------------------


def stale_secret_folders() -> list[str]:
    """The secret folders of builds that are gone (the pid in the name no longer runs)."""
    try:
        names = os.listdir(SECRETS_PARENT)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.startswith(SECRETS_PREFIX):
            continue
        pid_text = name[len(SECRETS_PREFIX) :].partition("-")[0]
        if pid_text.isdigit() and not os.path.exists(f"/proc/{pid_text}"):
            found.append(os.path.join(SECRETS_PARENT, name))
    return sorted(found)
