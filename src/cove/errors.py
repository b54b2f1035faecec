"""The one exception hierarchy of cove.

The rule, written once and followed everywhere:
- Every failure is an exception derived from `CoveError`; nothing returns an error value.
- Messages are lowercase, one line, and name the id, field or path involved.
- Exceptions become exit codes only in `cove.cli`, HTTP statuses only in `cove.api`.
- A low-level `OSError` is wrapped where it crosses a module boundary, with the path or
  operation that failed, so the user never sees a bare errno or a traceback.

This module imports nothing from cove.
"""

from __future__ import annotations


class CoveError(Exception):
    """Root of every error cove raises on purpose."""


# --- OCI documents -----------------------------------------------------------------------


class InvalidSpec(CoveError):
    """config.json (or another OCI document) is missing, malformed or unsupported."""


class InvalidArgument(CoveError):
    """A command-line argument or option value is wrong."""


# --- runtime state -----------------------------------------------------------------------


class NoSuchContainer(CoveError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} does not exist")
        self.container_id = container_id


class ContainerExists(CoveError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists")
        self.container_id = container_id


class InvalidState(CoveError):
    """The verb does not apply to the container in its current status."""


class StateCorrupt(CoveError):
    """A state file under the runtime root cannot be read."""


# --- setting a container up --------------------------------------------------------------


class RootfsError(CoveError):
    """The root filesystem or a mount inside it cannot be set up."""


class PathEscapesRoot(RootfsError):
    """A path given for inside the container resolves outside its root."""


class NamespaceError(CoveError):
    """A namespace cannot be created or joined."""


class CgroupError(CoveError):
    """A control group cannot be created, joined or removed."""


class ProcessSetupError(CoveError):
    """The container process cannot be started (user, cwd, rlimits, executable...)."""


class ExecutableNotFound(ProcessSetupError):
    pass


class HookFailed(CoveError):
    """An OCI hook exited non-zero, was killed, timed out or could not be executed."""

    def __init__(self, phase: str, index: int, path: str, reason: str) -> None:
        super().__init__(f"{phase} hook #{index} ({path}): {reason}")
        self.phase = phase
        self.index = index
        self.path = path
        self.reason = reason


class TerminalError(CoveError):
    """The pseudo-terminal or the console socket failed."""


class SyscallFailed(CoveError):
    """A system call failed; carries the errno for callers that branch on it."""

    def __init__(self, what: str, errno: int, strerror: str) -> None:
        super().__init__(f"{what}: {strerror}")
        self.errno = errno
        self.strerror = strerror


# --- images ------------------------------------------------------------------------------


class InvalidReference(CoveError):
    """An image reference (name[:tag][@digest]) does not follow Docker's grammar."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"invalid reference {text!r}: {problem}")
        self.text = text
        self.problem = problem


class InvalidDigest(CoveError):
    """A content digest (algorithm:hex) is malformed or uses an unsupported algorithm."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(f"invalid digest {text!r}: {problem}")
        self.text = text
        self.problem = problem


class DigestMismatch(CoveError):
    """Content does not hash to the digest it was announced with."""

    def __init__(self, expected: object, actual: object, subject: str = "") -> None:
        where = f" for {subject}" if subject else ""
        super().__init__(f"digest mismatch{where}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual
        self.subject = subject


class SizeMismatch(CoveError):
    """Content is longer or shorter than the size it was announced with."""

    def __init__(self, expected: int, actual: int, subject: str = "") -> None:
        where = f" for {subject}" if subject else ""
        super().__init__(f"size mismatch{where}: expected {expected} bytes, got {actual}")
        self.expected = expected
        self.actual = actual
        self.subject = subject


class InvalidManifest(CoveError):
    """An image manifest, index or image config is malformed or unsupported."""


class NoMatchingPlatform(CoveError):
    """An image index has no manifest for the wanted platform."""


class NoSuchImage(CoveError):
    def __init__(self, term: str) -> None:
        super().__init__(f"no such image: {term}")
        self.term = term


class AmbiguousImage(CoveError):
    """A short image id matches more than one image."""

    def __init__(self, term: str, candidates: list[str]) -> None:
        super().__init__(
            f"image id prefix {term!r} is ambiguous: it matches {', '.join(candidates)}"
        )
        self.term = term
        self.candidates = candidates


class ImageInUse(CoveError):
    """An image cannot be removed: a container uses it, it is mounted, or it has several
    names and was given by id without force (Docker's conflict; HTTP 409)."""


class NoSuchBlob(CoveError):
    def __init__(self, digest: object, where: str) -> None:
        super().__init__(f"blob {digest} does not exist in {where}")
        self.digest = digest
        self.where = where


class ImageStoreError(CoveError):
    """The image store on disk cannot be read or written (names the path)."""


# --- layers ------------------------------------------------------------------------------


class LayerError(CoveError):
    """An image layer cannot be applied or produced (corrupt stream, i/o failure...)."""


class LayerRejected(LayerError):
    """A layer entry is hostile or malformed (escapes the layer, goes through a symlink...)."""


class LayerDigestMismatch(LayerError):
    """The compressed digest or the diff_id of a layer is not the expected one."""

    def __init__(self, layer: str, what: str, expected: str, actual: str) -> None:
        super().__init__(f"layer {layer}: {what} mismatch: expected {expected}, got {actual}")
        self.layer = layer
        self.what = what
        self.expected = expected
        self.actual = actual


class SnapshotError(CoveError):
    """A container root filesystem snapshot cannot be prepared, mounted or removed."""


# --- registry ------------------------------------------------------------------------------


class RegistryError(CoveError):
    """A registry request failed; the message names the registry and what was asked."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryUnreachable(RegistryError):
    """The registry (or its token server) cannot be connected to."""


class RegistryUnauthorized(RegistryError):
    """The registry refused the credentials (or wants some we do not have)."""


class RegistryNotFound(RegistryError):
    """The registry has no such repository, manifest or blob."""


class CredentialsError(CoveError):
    """The Docker-compatible credentials file cannot be read or written (names the path)."""


# --- archives ------------------------------------------------------------------------------


class ArchiveError(CoveError):
    """An image archive (docker-archive, oci-archive) cannot be read or written."""


class ArchiveRejected(ArchiveError):
    """An archive entry is hostile or malformed (escapes the archive, is a device, is
    missing or listed twice...); the message names the archive entry."""

    def __init__(self, entry: str, why: str) -> None:
        super().__init__(f"archive entry {entry!r}: {why}")
        self.entry = entry
        self.why = why


# --- engine --------------------------------------------------------------------------------


class RuntimeNotFound(CoveError):
    """The OCI runtime asked for (`--runtime NAME|PATH`) cannot be found or run."""

    def __init__(self, runtime: str, why: str) -> None:
        super().__init__(f"oci runtime {runtime!r} not available: {why}")
        self.runtime = runtime
        self.why = why


class RuntimeFailed(CoveError):
    """An OCI runtime verb failed; `message` is the runtime's own error text."""

    def __init__(self, runtime: str, verb: str, container_id: str, message: str) -> None:
        super().__init__(f"{runtime} {verb} {container_id}: {message}")
        self.runtime = runtime
        self.verb = verb
        self.container_id = container_id
        self.message = message


class RuntimeTimedOut(RuntimeFailed):
    """An OCI runtime verb did not finish in time; the runtime has been killed."""


class RuntimeNoSuchContainer(RuntimeFailed):
    """A runtime verb failed and the runtime holds no state for the container."""


class ContainerStoreError(CoveError):
    """The engine's container database cannot be read or written (names the path)."""


class NameConflict(CoveError):
    """A container name is already taken (docker's wording, which clients match on)."""

    def __init__(self, name: str, holder_id: str) -> None:
        super().__init__(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{holder_id[:12]}". You have to remove (or rename) that container to be able '
            "to reuse that name."
        )
        self.name = name
        self.holder_id = holder_id


class AmbiguousContainer(CoveError):
    """A short container id matches more than one container."""

    def __init__(self, term: str, candidates: list[str]) -> None:
        shown = ", ".join(c[:12] for c in candidates)
        super().__init__(f"container id prefix {term!r} is ambiguous: it matches {shown}")
        self.term = term
        self.candidates = candidates


class ContainerBusy(CoveError):
    """Another cove command holds the container's lock longer than we may wait."""

    def __init__(self, container_id: str, waited: float) -> None:
        super().__init__(
            f"container {container_id[:12]} is busy: another command holds its lock "
            f"(waited {waited:g}s)"
        )
        self.container_id = container_id
        self.waited = waited


class MonitorError(CoveError):
    """The per-container monitor (cove-monitor) cannot be found, started or reached."""


class ContainerLost(CoveError):
    """A container's monitor died while the container ran: its exit status is unknown."""


# --- volumes -------------------------------------------------------------------------------


class VolumeError(CoveError):
    """A volume cannot be created, mounted, copied into or removed (names the volume)."""


class NoSuchVolume(VolumeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no such volume: {name}")
        self.name = name


class VolumeInUse(VolumeError):
    """A volume that a container uses cannot be removed (Docker's wording, then the users)."""

    def __init__(self, name: str, users: list[tuple[str, str]]) -> None:
        shown = ", ".join(f"{container_id} ({container_name})" for container_id, container_name
                          in users)  # fmt: skip
        super().__init__(f"remove {name}: volume is in use - [{shown}]")
        self.name = name
        self.users = users


# --- networks ------------------------------------------------------------------------------


class NetworkError(CoveError):
    """A network cannot be created, read, connected to or removed (names the network)."""


class NoSuchNetwork(NetworkError):
    def __init__(self, term: str) -> None:
        super().__init__(f"network {term} not found")
        self.term = term


class AmbiguousNetwork(NetworkError):
    """A short network id matches more than one network (Docker's wording)."""

    def __init__(self, term: str, candidates: list[str]) -> None:
        super().__init__(
            f"network {term} is ambiguous ({len(candidates)} matches found based on ID prefix)"
        )
        self.term = term
        self.candidates = candidates


class NetworkConflict(NetworkError):
    """A network name is taken, a subnet overlaps another network's, or a container is
    already connected (Docker's wording; HTTP 409)."""


class NetworkInUse(NetworkError):
    """A network that containers are connected to cannot be removed (Docker's wording, then
    the containers)."""

    def __init__(self, name: str, network_id: str, containers: list[str]) -> None:
        super().__init__(
            f"error while removing network: network {name} id {network_id[:12]} has active "
            f"endpoints (containers: {', '.join(containers)})"
        )
        self.name = name
        self.network_id = network_id
        self.containers = containers


class PredefinedNetwork(NetworkError):
    """An operation that the pre-defined networks (bridge, host, none) refuse (Docker's
    wording; HTTP 403)."""


class IPAMError(NetworkError):
    """An address cannot be given out: none free, or the one asked for is not on the
    network; no free subnet for a new network."""


class AddressInUse(IPAMError):
    """The address asked for is already another container's, or the gateway's."""

    def __init__(self, ip: str, network: str) -> None:
        super().__init__(f"address already in use: {ip} on network {network}")
        self.ip = ip
        self.network = network


class InvalidPort(InvalidArgument):
    """A port specification (`-p`, `--expose`, `cove port`) is malformed."""


class PortNotPublished(NetworkError):
    """`cove port CONTAINER PORT`: the container publishes no such port."""

    def __init__(self, port: str, container: str) -> None:
        super().__init__(f"no public port '{port}' published for {container}")
        self.port = port
        self.container = container


# --- build ---------------------------------------------------------------------------------


class BuildError(CoveError):
    """`cove build` cannot go on: a bad build context, build argument, target or ignore
    file, or a step that failed."""


class DockerfileError(BuildError):
    """The Dockerfile (Containerfile) is malformed or refers to something that does not
    exist; the message names the file and the line: `Dockerfile:7: unknown instruction:
    FORM`."""

    def __init__(self, reason: str, *, file: str = "Dockerfile", line: int | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.file = file
        self.line = line


class StepFailed(DockerfileError):
    """A RUN step exited non-zero: `command` is the argv it ran, `exit_code` its status
    (the API words it as dockerd does: "The command '...' returned a non-zero code: N")."""

    def __init__(
        self, reason: str, *, command: list[str], exit_code: int, file: str = "Dockerfile",
        line: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(reason, file=file, line=line)
        self.command = list(command)
        self.exit_code = exit_code
