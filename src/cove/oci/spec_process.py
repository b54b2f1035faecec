"""The `process` section of the OCI runtime spec: the records (`Process`, `User`,
`Capabilities`, `Rlimit`, `ConsoleSize`) and `parse_process`, which converts the
section's JSON (config.json's `process`, or a process.json for `exec --process`).
"""

from __future__ import annotations

from cove.errors import InvalidSpec
from cove.oci.data import Data
from cove.oci.reader import Field, opt_bool, opt_int, opt_str, opt_strs


class User(Data):
    __slots__ = ("additional_gids", "gid", "uid", "umask")

    def __init__(
        self,
        uid: int = 0,
        gid: int = 0,
        umask: int | None = None,
        additional_gids: tuple[int, ...] = (),
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additional_gids = additional_gids


class Rlimit(Data):
    __slots__ = ("hard", "soft", "type")

    def __init__(
        self,
        type: str,
        soft: int,
        hard: int,
    ) -> None:
        self.type = type
        self.soft = soft
        self.hard = hard


class Capabilities(Data):
    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(
        self,
        bounding: tuple[str, ...] = (),
        effective: tuple[str, ...] = (),
        inheritable: tuple[str, ...] = (),
        permitted: tuple[str, ...] = (),
        ambient: tuple[str, ...] = (),
    ) -> None:
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient


class ConsoleSize(Data):
    __slots__ = ("height", "width")

    def __init__(
        self,
        height: int,
        width: int,
    ) -> None:
        self.height = height
        self.width = width


class Process(Data):
    __slots__ = (
        "apparmor_profile",
        "args",
        "capabilities",
        "console_size",
        "cwd",
        "env",
        "no_new_privileges",
        "oom_score_adj",
        "rlimits",
        "selinux_label",
        "terminal",
        "user",
    )

    def __init__(
        self,
        args: tuple[str, ...],
        cwd: str = "/",
        env: tuple[str, ...] = (),
        terminal: bool = False,
        console_size: ConsoleSize | None = None,
        user: User | None = None,
        capabilities: Capabilities | None = None,
        rlimits: tuple[Rlimit, ...] = (),
        no_new_privileges: bool = False,
        oom_score_adj: int | None = None,
        apparmor_profile: str = "",
        selinux_label: str = "",
    ) -> None:
        self.args = args
        self.cwd = cwd
        self.env = env
        self.terminal = terminal
        self.console_size = console_size
        self.user = User() if user is None else user
        self.capabilities = capabilities
        self.rlimits = rlimits
        self.no_new_privileges = no_new_privileges
        self.oom_score_adj = oom_score_adj
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label


def parse_process(node: Field) -> Process:
    args = node.need("args").strs()
    if not args:
        raise node.need("args").fail("must name at least the program to run")
    cwd = opt_str(node, "cwd", "/")
    if not cwd.startswith("/"):
        raise node.need("cwd").fail(f"must be an absolute path, got {cwd!r}")
    env = opt_strs(node, "env")
    for index, entry in enumerate(env):
        if "=" not in entry:
            raise InvalidSpec(f"process.env[{index}]: expected KEY=VALUE, got {entry!r}")
    user = node.get("user")
    console = node.get("consoleSize")
    caps = node.get("capabilities")
    rlimits = node.get("rlimits")
    return Process(
        args=args,
        cwd=cwd,
        env=env,
        terminal=opt_bool(node, "terminal"),
        console_size=None
        if console is None
        else ConsoleSize(console.need("height").as_int(), console.need("width").as_int()),
        user=User() if user is None else _user(user),
        capabilities=None if caps is None else _capabilities(caps),
        rlimits=() if rlimits is None else tuple(_rlimit(item) for item in rlimits.items()),
        no_new_privileges=opt_bool(node, "noNewPrivileges"),
        oom_score_adj=opt_int(node, "oomScoreAdj"),
        apparmor_profile=opt_str(node, "apparmorProfile"),
        selinux_label=opt_str(node, "selinuxLabel"),
    )


def _user(node: Field) -> User:
    gids = node.get("additionalGids")
    return User(
        uid=_id_value(node, "uid"),
        gid=_id_value(node, "gid"),
        umask=opt_int(node, "umask"),
        additional_gids=() if gids is None else gids.ints(),
    )


def _id_value(node: Field, key: str) -> int:
    child = node.get(key)
    if child is None:
        return 0
    value = child.as_int()
    if not 0 <= value < 2**32 - 1:
        raise child.fail(f"out of range: {value}")
    return value


def _capabilities(node: Field) -> Capabilities:
    return Capabilities(
        bounding=opt_strs(node, "bounding"),
        effective=opt_strs(node, "effective"),
        inheritable=opt_strs(node, "inheritable"),
        permitted=opt_strs(node, "permitted"),
        ambient=opt_strs(node, "ambient"),
    )


def _rlimit(node: Field) -> Rlimit:
    rtype = node.need("type").as_str()
    soft, hard = node.need("soft").as_int(), node.need("hard").as_int()
    if soft < 0 or hard < 0:
        raise node.fail(f"{rtype}: limits must not be negative")
    if soft > hard:
        raise node.fail(f"{rtype}: soft limit {soft} exceeds hard limit {hard}")
    return Rlimit(type=rtype, soft=soft, hard=hard)
