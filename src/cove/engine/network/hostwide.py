"""What cove's networks share with every other engine root on the host, and how each root
marks what is its own.

    /run/cove/network.lock          flock(2): held while host-wide state changes (the nft
                                    table `inet cove`, bridges, veths, the claims below) or
                                    is read to be repaired; a subnet is chosen under it too
    /run/cove/network-claims.json   the subnets engine roots hold (written atomically):
                                    {"claims": [{"subnet", "root", "network", "bridge"}]}

Roots. A root's id is 12 hex digits of sha256(its real path) (`root_id`). What a root puts
into the host's shared data plane says whose it is:

    bridge           alias "cove:<made at, unix time>:<root id>" (`bridge.py`); its name is
                     "cv-" + 12 digits of the network id ("cove0" for /var/lib/cove's
                     default network), so the root's network records name it too
    set element      comment "cove-root:<root id>" (`firewall.network_script`): in `bridges`,
                     `internal_bridges`, `hairpin` (by bridge name) and `nat_subnets`
    port rule        comment "cove:<container id>" (the container is the root's)
    veth             alias "cove:<container id>:<network id>:<init pid>"

`cove system check` of a root looks only at what is its own by these marks, plus what
belongs to nothing alive on the host (a set element or port rule of no existing bridge: all
changes to the data plane happen under the lock, a bridge and its entries in one go, so
under the lock such an entry is garbage whoever made it). Another root's live bridges,
their entries and their containers' rules are never touched.

Claims. Two roots choosing a subnet at the same moment (`NetworkService.default`,
`create`) would both see the host's routes without the other's bridge, which does not
exist yet. So a subnet is chosen under the lock, avoiding the host's routes and addresses
(other roots' bridges that are up among them) and the subnets other roots claim, and
claimed at once. A claim holds while its root's network record is there with that subnet:
until the network's bridge is made, for CLAIM_TTL seconds at most; once the bridge is made
(the claim is then `placed`), while the bridge exists (its address and route say the same).
So roots that are idle or gone (tests' temporary roots) do not use up the pools. Before a
network's bridge is made, its subnet is claimed again (`NetworkService.settle`), and the
default network moves to a free subnet if another root's bridge or claim has taken its own
since it was chosen (two roots whose records were made apart, or before a reboot, which
empties /run).

Unprivileged callers (unit tests, `cove network ls` as a user) cannot open the lock: they
make no bridges, so they go on without (`optional_lock` yields -1).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network

HOST_DIR = "/run/cove"
HOST_LOCK = f"{HOST_DIR}/network.lock"
CLAIMS = f"{HOST_DIR}/network-claims.json"
ROOT_TAG = "cove-root:"
CLAIM_TTL = 120.0  # seconds a chosen subnet is held before its bridge is made


def root_id(root: str | os.PathLike[str]) -> str:
    """12 hex digits of sha256(the root's real path)."""
    return hashlib.sha256(os.path.realpath(os.fspath(root)).encode()).hexdigest()[:12]


def root_tag(root: str | os.PathLike[str]) -> str:
    """The comment of the root's set elements: "cove-root:<root id>"."""
    return ROOT_TAG + root_id(root)


def tag_owner(comment: str) -> str:
    """The root id a set element's comment names ("" for none)."""
    return comment[len(ROOT_TAG) :] if comment.startswith(ROOT_TAG) else ""


# --- the lock ------------------------------------------------------------------------------


@contextlib.contextmanager
def host_lock() -> Iterator[int]:
    """flock(2) of HOST_LOCK; yields the descriptor (a child given it holds the lock too)."""
    fd = _open_lock()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def optional_lock() -> Iterator[int]:
    """`host_lock`, or -1 for a caller that may not take it (no permission on /run/cove:
    such a caller makes no bridges, so there is nothing to agree on)."""
    try:
        fd = _open_lock()
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        yield -1
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _open_lock() -> int:
    os.makedirs(os.path.dirname(HOST_LOCK), mode=0o755, exist_ok=True)
    return os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


# --- claims --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A root's network holds `subnet`: chosen at `made` (valid for CLAIM_TTL seconds), or,
    `placed`, with its bridge made (valid while the bridge exists); either way only while
    the root's network record is there with that subnet."""

    subnet: str
    root: str  # real path
    network: str  # id
    bridge: str = ""
    made: float = 0.0
    placed: bool = False

    def valid(self, now: float | None = None) -> bool:
        if self.placed:
            if not self.bridge or not os.path.exists(f"/sys/class/net/{self.bridge}"):
                return False
        elif (time.time() if now is None else now) - self.made >= CLAIM_TTL:
            return False
        path = os.path.join(self.root, "networks", f"{self.network}.json")
        try:
            with open(path) as file:
                return str(json.load(file).get("subnet")) == self.subnet
        except (OSError, ValueError, AttributeError):
            return False


def claims(path: str = "") -> list[Claim]:
    """Every claim in the file (valid or not); [] when there is none or it is unreadable.
    The caller holds the lock."""
    try:
        with open(path or CLAIMS) as file:
            data = json.load(file)
    except (OSError, ValueError):
        return []
    found = []
    for entry in data.get("claims", []) if isinstance(data, dict) else []:
        if not isinstance(entry, dict):
            continue
        if not all(isinstance(entry.get(k), str) for k in ("subnet", "root", "network")):
            continue
        try:
            made = float(entry.get("made") or 0)
        except (TypeError, ValueError):
            made = 0.0
        found.append(Claim(entry["subnet"], entry["root"], entry["network"],
                           str(entry.get("bridge") or ""), made,
                           entry.get("placed") is True))  # fmt: skip
    return found


def claimed_by_others(
    root: str | os.PathLike[str], path: str = "", *, placed: bool | None = None
) -> list[IPv4Network]:
    """The subnets other roots hold (valid claims only; `placed` True: only those whose
    bridge is made, False: only those whose bridge is not). The caller holds the lock."""
    mine = os.path.realpath(os.fspath(root))
    found = []
    for claim in claims(path):
        if placed is not None and claim.placed != placed:
            continue
        if claim.root != mine and claim.valid():
            with contextlib.suppress(ValueError):
                found.append(IPv4Network(claim.subnet))
    return found


def claim(
    root: str | os.PathLike[str],
    network: str,
    subnet: str,
    bridge: str = "",
    *,
    placed: bool = False,
    path: str = "",
) -> None:
    """Record that `root`'s network `network` holds `subnet` (replacing its former claim;
    `placed`: its bridge is made now); invalid claims are dropped on the way. The caller
    holds the lock; OSError when the file cannot be written."""
    mine = os.path.realpath(os.fspath(root))
    now = time.time()
    present = claims(path)
    kept = [c for c in present if (c.root, c.network) != (mine, network) and c.valid(now)]
    _write([*kept, Claim(subnet, mine, network, bridge, now, placed)], path or CLAIMS)


def release(root: str | os.PathLike[str], network: str, path: str = "") -> None:
    """Drop the claim of `root`'s network `network` (and invalid ones). The caller holds
    the lock."""
    mine = os.path.realpath(os.fspath(root))
    present = claims(path)
    kept = [c for c in present if (c.root, c.network) != (mine, network) and c.valid()]
    if kept != present:
        _write(kept, path or CLAIMS)


def _write(entries: list[Claim], path: str) -> None:
    data = {"claims": [{"subnet": c.subnet, "root": c.root, "network": c.network,
                        "bridge": c.bridge, "made": round(c.made, 3), "placed": c.placed}
                       for c in entries]}  # fmt: skip
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as file:
            file.write(json.dumps(data, indent=1) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
