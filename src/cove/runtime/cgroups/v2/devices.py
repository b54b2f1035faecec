"""Device access on cgroup v2: the rules compiled into an eBPF cgroup device program.

cgroup v2 has no devices.allow / devices.deny files. The kernel instead runs the eBPF
programs of type BPF_PROG_TYPE_CGROUP_DEVICE attached to a cgroup (BPF_CGROUP_DEVICE) on
every mknod and every open of a device node by its processes: the program reads
struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor} (access_type is
ACC_* << 16 | DEV_*) and returns 1 to allow, 0 to refuse with EPERM.

Semantics of the rule list (OCI order; cove's choice, written down here and tested):

  * Each rule matches a device by type ("a" any, "c", "b") and major/minor (None: any).
  * Last match wins, access bit by access bit: for each bit the request asks for (m, r,
    w), the last rule in the list that matches the device and names that bit decides it.
    The request is allowed when every bit it asks for is decided "allow"; a bit no rule
    names is denied (default deny).
  * So an allow rule grants a request whose bits it covers (a subset), several allow
    rules add up ("r" then "w" grant "rw", as v1's merged exceptions do), and a later deny
    rule refuses a request that asks for any bit it names (an overlap denies).
  * The defaults (DEFAULT_RULES: /dev/null, zero, full, random, urandom, tty, console,
    ptmx, pts/*, and mknod of any node, as runc allows) are appended after the spec's rules,
    so they always win, as in runc.

The program evaluates the rules from the last to the first, keeping in r4 the bits not
yet decided: an allow rule clears its bits and returns 1 once none are left; a deny rule
returns 0 when it names any undecided bit. It uses no helper and no map, so any license
string is accepted by the verifier.
"""

from __future__ import annotations

import _ctypes
import errno as errnos
import os
import struct
import sys

from cove.errors import CgroupError
from cove.oci.resources import DeviceRule
from cove.sys.libc import Long, call, errno

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

_FIELD = "linux.resources.devices"

# --- uapi values (include/uapi/linux/bpf.h) -----------------------------------------------

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # attach type
BPF_F_ALLOW_MULTI = 2

DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE

_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# The bpf(2) syscall number: x86_64 has its own table; the generic table (aarch64,
# riscv64, loongarch64) has 280.
_SYS_BPF = {
    "x86_64": 321,
    "i686": 357,
    "i386": 357,
    "aarch64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "armv7l": 386,
}.get(os.uname().machine)

# --- instructions (8 bytes: opcode, dst_reg:4 src_reg:4, s16 off, s32 imm) ---------------

LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
ALU32_MOV_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K: dst = (u32)imm
ALU32_MOV_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X: dst = (u32)src
ALU32_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: dst = (u32)(dst & imm)
ALU32_RSH_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm
ALU64_MOV_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm (sign-extended)
JMP_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: pc += off
JMP_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
JMP_EXIT = 0x95  # BPF_JMP | BPF_EXIT: return r0

# Registers: r1 the context; r3 device type, r4 access bits not decided yet, r5 major,
# r6 minor; r2 and r7 scratch; r0 the verdict.
_CTX, _TYPE, _UNDECIDED, _MAJOR, _MINOR, _SCRATCH = 1, 3, 4, 5, 6, 7

_BIG_ENDIAN = sys.byteorder == "big"
_INSN = struct.Struct("=BBhi")

# Majors and minors the kernel can give (MAJOR() is 12 bits, MINOR() 20): a rule beyond
# can match no device. Keeping below 2**31 also keeps every immediate a positive s32.
_MAX_MAJOR = (1 << 12) - 1
_MAX_MINOR = (1 << 20) - 1


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # The register byte is a C bitfield (dst_reg:4, src_reg:4): low nibble first on
    # little-endian machines, high nibble first on big-endian ones.
    regs = (dst << 4 | src) if _BIG_ENDIAN else (src << 4 | dst)
    return _INSN.pack(code, regs, off, imm)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def access_bits(access: str) -> int:
    bits = 0
    for letter in access:
        bits |= _ACCESS_BITS[letter]
    return bits


def _c(major: int, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule(allow=True, type="c", major=major, minor=minor, access=access)


# Always allowed, after the spec's rules (so they win), as runc does.
DEFAULT_RULES: tuple[DeviceRule, ...] = (
    DeviceRule(allow=True, type="c", access="m"),  # mknod of any node (CAP_MKNOD decides)
    DeviceRule(allow=True, type="b", access="m"),
    _c(1, 3),  # /dev/null
    _c(1, 5),  # /dev/zero
    _c(1, 7),  # /dev/full
    _c(1, 8),  # /dev/random
    _c(1, 9),  # /dev/urandom
    _c(5, 0),  # /dev/tty
    _c(5, 1),  # /dev/console
    _c(5, 2),  # /dev/ptmx
    _c(136, None),  # /dev/pts/*
)


def _rule_block(rule: DeviceRule) -> list[bytes] | None:
    """The instructions of one rule, falling through to the next rule on no match."""
    if rule.type not in ("a", "b", "c"):
        raise CgroupError(f"{_FIELD}: device rule type must be a, b or c, got {rule.type!r}")
    if set(rule.access) - set(_ACCESS_BITS):
        raise CgroupError(f"{_FIELD}: access must be made of r, w and m, got {rule.access!r}")
    bits = access_bits(rule.access)
    if not bits:
        return None  # names no access: decides nothing
    if (rule.major is not None and not 0 <= rule.major <= _MAX_MAJOR) or (
        rule.minor is not None and not 0 <= rule.minor <= _MAX_MINOR
    ):
        return None  # no device has such a number
    # (opcode, dst, src, imm, jumps-to-next-rule)
    parts: list[tuple[int, int, int, int, bool]] = []
    if rule.type != "a":
        parts.append((JMP_JNE_K, _TYPE, 0, _TYPES[rule.type], True))
    if rule.major is not None:
        parts.append((JMP_JNE_K, _MAJOR, 0, rule.major, True))
    if rule.minor is not None:
        parts.append((JMP_JNE_K, _MINOR, 0, rule.minor, True))
    if rule.allow:
        parts += [
            (ALU32_AND_K, _UNDECIDED, 0, _s32(~bits), False),  # these bits are allowed
            (JMP_JNE_K, _UNDECIDED, 0, 0, True),  # some still undecided: go on
            (ALU64_MOV_K, 0, 0, 1, False),
            (JMP_EXIT, 0, 0, 0, False),
        ]
    else:
        parts += [
            (ALU32_MOV_X, _SCRATCH, _UNDECIDED, 0, False),
            (ALU32_AND_K, _SCRATCH, 0, bits, False),
            (JMP_JEQ_K, _SCRATCH, 0, 0, True),  # asks for none of these bits: go on
            (ALU64_MOV_K, 0, 0, 0, False),
            (JMP_EXIT, 0, 0, 0, False),
        ]
    count = len(parts)
    return [
        insn(code, dst, src, count - index - 1 if to_next else 0, imm)
        for index, (code, dst, src, imm, to_next) in enumerate(parts)
    ]


def assemble(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> bytes:
    """The device program for `rules` exactly as given (see the module docstring)."""
    program = [
        insn(LDX_MEM_W, 2, _CTX, 0),  # r2 = ctx->access_type
        insn(ALU32_MOV_X, _TYPE, 2),
        insn(ALU32_AND_K, _TYPE, 0, 0, 0xFFFF),  # r3 = device type
        insn(ALU32_MOV_X, _UNDECIDED, 2),
        insn(ALU32_RSH_K, _UNDECIDED, 0, 0, 16),  # r4 = requested access bits
        insn(LDX_MEM_W, _MAJOR, _CTX, 4),  # r5 = ctx->major
        insn(LDX_MEM_W, _MINOR, _CTX, 8),  # r6 = ctx->minor
    ]
    for rule in reversed(rules):
        block = _rule_block(rule)
        if block is None:
            continue
        program += block
        if (
            rule.type == "a"
            and rule.major is None
            and rule.minor is None
            and access_bits(rule.access) == ACC_ALL
        ):
            break  # decides every request: the rules before it are never reached
    program += [insn(ALU64_MOV_K, 0, 0, 0, 0), insn(JMP_EXIT)]  # default: deny
    return b"".join(program)


def program_for(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> bytes:
    """The program cove attaches: the spec's rules, then DEFAULT_RULES."""
    return assemble((*rules, *DEFAULT_RULES))


# --- the bpf(2) system call ---------------------------------------------------------------

_ATTR_SIZE = 128  # bytes of union bpf_attr we pass; the rest of it stays zero
_LICENSE = b"Apache-2.0\0"
_PROG_NAME = b"cove_devices"
_LOG_SIZE = 1 << 16


class _Buffer:
    """A bytearray with a stable address to put into a bpf_attr (kept alive by `self`)."""

    def __init__(self, data: bytes | int) -> None:
        self.data = bytearray(data)
        if len(self.data) < 8:
            self.data.extend(bytes(8 - len(self.data)))
        # from_buffer shares the bytearray's memory (and pins it: no resize while held).
        self._anchor = Long.from_buffer(self.data)
        self.address = _ctypes.addressof(self._anchor)


def _bpf(command: int, attr: _Buffer) -> int:
    """bpf(command, attr, size): the result, or -1 with errno set."""
    if _SYS_BPF is None:
        raise CgroupError(f"{_FIELD}: no bpf syscall number known for {os.uname().machine}")
    return call("syscall", Long(_SYS_BPF), Long(command), Long(attr.address), Long(_ATTR_SIZE))


def _load_attr(insns: _Buffer, count: int, license: _Buffer, log: _Buffer | None) -> _Buffer:
    attr = _Buffer(_ATTR_SIZE)
    struct.pack_into(
        "=IIQQIIQII16s",
        attr.data,
        0,
        BPF_PROG_TYPE_CGROUP_DEVICE,
        count,
        insns.address,
        license.address,
        0 if log is None else 1,  # log_level
        0 if log is None else len(log.data),
        0 if log is None else log.address,
        0,  # kern_version
        0,  # prog_flags
        _PROG_NAME,
    )
    return attr


def load(program: bytes) -> int:
    """Load a device program; returns its fd. A verifier refusal quotes the verifier."""
    if not program or len(program) % 8:
        raise CgroupError(f"{_FIELD}: a device program is a whole number of 8-byte insns")
    insns = _Buffer(program)
    license = _Buffer(_LICENSE)
    count = len(program) // 8
    fd = _bpf(BPF_PROG_LOAD, _load_attr(insns, count, license, None))
    if fd >= 0:
        return fd
    number = errno()
    if number == errnos.EPERM:
        raise CgroupError(
            f"{_FIELD}: cannot load the device filter: {os.strerror(number)} "
            "(bpf needs CAP_BPF or CAP_SYS_ADMIN)"
        )
    if number not in (errnos.EACCES, errnos.EINVAL):
        raise CgroupError(f"{_FIELD}: cannot load the device filter: {os.strerror(number)}")
    # The verifier refused it: load again with a log to say why.
    log = _Buffer(_LOG_SIZE)
    fd = _bpf(BPF_PROG_LOAD, _load_attr(insns, count, license, log))
    if fd >= 0:  # accepted the second time: nothing to report after all
        return fd
    text = bytes(log.data).split(b"\0", 1)[0].decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()][:6]
    detail = " | ".join(lines) if lines else "no verifier log"
    raise CgroupError(
        f"{_FIELD}: the kernel rejected the device filter ({os.strerror(number)}): {detail}"
    )


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"{_FIELD}: cannot open cgroup {path}: {exc.strerror}") from None


def attach(path: str, prog_fd: int) -> None:
    """Attach a loaded device program to the cgroup directory (BPF_F_ALLOW_MULTI)."""
    dirfd = _open_dir(path)
    try:
        attr = _Buffer(_ATTR_SIZE)
        struct.pack_into("=IIII", attr.data, 0, dirfd, prog_fd, BPF_CGROUP_DEVICE,
                         BPF_F_ALLOW_MULTI)  # fmt: skip
        if _bpf(BPF_PROG_ATTACH, attr) < 0:
            raise CgroupError(
                f"{_FIELD}: cannot attach the device filter to {path}: {os.strerror(errno())}"
            )
    finally:
        os.close(dirfd)


def attached(path: str) -> list[int]:
    """The ids of the device programs attached to the cgroup directory itself."""
    dirfd = _open_dir(path)
    try:
        capacity = 64
        while True:
            ids = _Buffer(4 * capacity)
            attr = _Buffer(_ATTR_SIZE)
            # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
            struct.pack_into("=IIIIQI", attr.data, 0, dirfd, BPF_CGROUP_DEVICE, 0, 0,
                             ids.address, capacity)  # fmt: skip
            result = _bpf(BPF_PROG_QUERY, attr)
            count: int = struct.unpack_from("=I", attr.data, 24)[0]
            if result < 0 and errno() == errnos.ENOSPC and count > capacity:
                capacity = count
                continue
            if result < 0:
                raise CgroupError(
                    f"{_FIELD}: cannot list the device filters of {path}: {os.strerror(errno())}"
                )
            return list(struct.unpack_from(f"={count}I", ids.data, 0))
    finally:
        os.close(dirfd)


def _detach(path: str, dirfd: int, prog_id: int) -> bool:
    attr = _Buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr.data, 0, prog_id)
    prog_fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr)
    if prog_fd < 0:
        if errno() == errnos.ENOENT:
            return False  # gone meanwhile
        raise CgroupError(
            f"{_FIELD}: cannot open device filter {prog_id} of {path}: {os.strerror(errno())}"
        )
    try:
        attr = _Buffer(_ATTR_SIZE)
        struct.pack_into("=III", attr.data, 0, dirfd, prog_fd, BPF_CGROUP_DEVICE)
        if _bpf(BPF_PROG_DETACH, attr) < 0:
            if errno() == errnos.ENOENT:
                return False
            raise CgroupError(
                f"{_FIELD}: cannot detach device filter {prog_id} from {path}: "
                f"{os.strerror(errno())}"
            )
        return True
    finally:
        os.close(prog_fd)


def detach(path: str, prog_ids: list[int]) -> int:
    """Detach these device programs from the cgroup; returns how many were detached."""
    dirfd = _open_dir(path)
    try:
        return sum(_detach(path, dirfd, prog_id) for prog_id in prog_ids)
    finally:
        os.close(dirfd)


def detach_all(path: str) -> int:
    """Detach every device program attached to the cgroup directory; returns the count."""
    return detach(path, attached(path))


def install(path: str, rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> None:
    """Make `rules` (plus the defaults) the cgroup's device filter, replacing any other.

    The new program is attached before the old ones are detached: with several programs
    attached, a device is allowed only if all of them allow it, so there is no moment
    with no filter (everything allowed), only one with both (the stricter of the two)."""
    program = program_for(rules)
    old = attached(path)
    prog_fd = load(program)
    try:
        attach(path, prog_fd)
    finally:
        os.close(prog_fd)
    detach(path, old)


class _DevicesController:
    name = "devices"

    def apply(self, path: str, resources: LinuxResources) -> None:
        # No rules means "not set" (an update that does not touch devices): the filter in
        # place stays. A spec that wants the defaults only lists a deny-all rule.
        if resources.devices:
            install(path, resources.devices)

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None


CONTROLLER = _DevicesController()
