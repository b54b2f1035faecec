"""cove.runtime.cgroups.v2.devices: the assembler, its programs run by a small eBPF
interpreter (below) against the rule semantics, and the bpf(2) calls against a fake."""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.errors import CgroupError
from cove.oci.resources import DeviceRule, LinuxResources
from cove.runtime.cgroups.v2 import devices

little_endian = pytest.mark.skipif(sys.byteorder != "little", reason="bytes written for LE")

BLOCK, CHAR = devices.DEV_BLOCK, devices.DEV_CHAR
M, R, W = devices.ACC_MKNOD, devices.ACC_READ, devices.ACC_WRITE


def rule(spec: str) -> DeviceRule:
    """ "allow c 1:3 rw" / "deny a *:* rwm" -> DeviceRule."""
    verdict, kind, numbers, access = spec.split()
    major, minor = numbers.split(":")
    return DeviceRule(
        allow=verdict == "allow",
        type=kind,
        major=None if major == "*" else int(major),
        minor=None if minor == "*" else int(minor),
        access=access,
    )


# --- a tiny eBPF interpreter for the instructions the assembler emits ----------------------

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
CTX = object()  # r1: the context pointer


def run(program: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Run a device program for one request, as the kernel would; returns r0."""
    assert len(program) % 8 == 0
    ctx = struct.pack("<III", access << 16 | dev_type, major, minor)
    regs: list[object] = [None] * 11
    regs[1] = CTX

    def value(reg: int) -> int:
        found = regs[reg]
        assert isinstance(found, int), f"r{reg} read before it is set (or is the ctx pointer)"
        return found

    pc = 0
    count = len(program) // 8
    while True:
        assert 0 <= pc < count, "fell off the program"
        code, reg_byte, off, imm = struct.unpack_from("<BBhi", program, pc * 8)
        dst, src = reg_byte & 0x0F, reg_byte >> 4
        pc += 1
        if code == 0x61:  # ldxw dst, [src + off]
            assert regs[src] is CTX and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0xB4:  # mov32 dst, imm
            regs[dst] = imm & MASK32
        elif code == 0xBC:  # mov32 dst, src
            regs[dst] = value(src) & MASK32
        elif code == 0x54:  # and32 dst, imm
            regs[dst] = value(dst) & imm & MASK32
        elif code == 0x74:  # rsh32 dst, imm
            regs[dst] = (value(dst) & MASK32) >> imm
        elif code == 0xB7:  # mov dst, imm (sign-extended)
            regs[dst] = imm & MASK64
        elif code in (0x15, 0x55):  # jeq / jne dst, imm, +off
            assert off >= 0, "backward jump"
            equal = value(dst) == imm & MASK64
            if equal == (code == 0x15):
                pc += off
        elif code == 0x95:  # exit
            return value(0)
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc - 1}")


def expected(
    rules: Sequence[DeviceRule], dev_type: int, major: int, minor: int, access: int
) -> int:
    """The semantics, written plainly: per access bit, the last matching rule naming it."""
    kind = {BLOCK: "b", CHAR: "c"}[dev_type]
    for bit, letter in ((M, "m"), (R, "r"), (W, "w")):
        if not access & bit:
            continue
        verdict = False
        for item in reversed(rules):
            if (
                item.type in ("a", kind)
                and item.major in (None, major)
                and item.minor in (None, minor)
                and letter in item.access
            ):
                verdict = item.allow
                break
        if not verdict:
            return 0
    return 1


MAJORS = (0, 1, 5, 136, 4095)
MINORS = (0, 1, 3, 5, 1048575)


def requests() -> Iterator[tuple[int, int, int, int]]:
    return itertools.product((BLOCK, CHAR), MAJORS, MINORS, range(1, 8))


def check_all(rules: Sequence[DeviceRule]) -> None:
    program = devices.assemble(list(rules))
    for request in requests():
        assert run(program, *request) == expected(rules, *request), (rules, request)


# --- instruction bytes ---------------------------------------------------------------------


def hexes(program: bytes) -> list[str]:
    return [program[i : i + 8].hex(" ", 1) for i in range(0, len(program), 8)]


PROLOGUE = [
    "61 12 00 00 00 00 00 00",  # r2 = *(u32 *)(r1 + 0)      access_type
    "bc 23 00 00 00 00 00 00",  # w3 = w2
    "54 03 00 00 ff ff 00 00",  # w3 &= 0xffff                device type
    "bc 24 00 00 00 00 00 00",  # w4 = w2
    "74 04 00 00 10 00 00 00",  # w4 >>= 16                   requested access
    "61 15 04 00 00 00 00 00",  # r5 = *(u32 *)(r1 + 4)      major
    "61 16 08 00 00 00 00 00",  # r6 = *(u32 *)(r1 + 8)      minor
]
EPILOGUE = [
    "b7 00 00 00 00 00 00 00",  # r0 = 0
    "95 00 00 00 00 00 00 00",  # exit
]


@little_endian
def test_bytes_of_an_allow_rule() -> None:
    assert hexes(devices.assemble([rule("allow c 1:3 rw")])) == [
        *PROLOGUE,
        "55 03 06 00 02 00 00 00",  # if r3 != 2 (char) goto next rule
        "55 05 05 00 01 00 00 00",  # if r5 != 1 goto next rule
        "55 06 04 00 03 00 00 00",  # if r6 != 3 goto next rule
        "54 04 00 00 f9 ff ff ff",  # w4 &= ~(r|w)               these bits are allowed
        "55 04 02 00 00 00 00 00",  # if r4 != 0 goto next rule   (m still undecided)
        "b7 00 00 00 01 00 00 00",  # r0 = 1
        "95 00 00 00 00 00 00 00",  # exit
        *EPILOGUE,
    ]


@little_endian
def test_bytes_of_a_deny_rule_and_a_wildcard() -> None:
    assert hexes(devices.assemble([rule("allow b 8:* rwm"), rule("deny c *:5 w")])) == [
        *PROLOGUE,
        # the last rule first
        "55 03 06 00 02 00 00 00",  # if r3 != 2 goto next rule
        "55 06 05 00 05 00 00 00",  # if r6 != 5 goto next rule
        "bc 47 00 00 00 00 00 00",  # w7 = w4
        "54 07 00 00 04 00 00 00",  # w7 &= w
        "15 07 02 00 00 00 00 00",  # if r7 == 0 goto next rule
        "b7 00 00 00 00 00 00 00",  # r0 = 0
        "95 00 00 00 00 00 00 00",  # exit
        "55 03 05 00 01 00 00 00",  # if r3 != 1 (block) goto next rule
        "55 05 04 00 08 00 00 00",  # if r5 != 8 goto next rule
        "54 04 00 00 f8 ff ff ff",  # w4 &= ~(m|r|w)
        "55 04 02 00 00 00 00 00",
        "b7 00 00 00 01 00 00 00",
        "95 00 00 00 00 00 00 00",
        *EPILOGUE,
    ]


def test_no_rules_denies_everything() -> None:
    program = devices.assemble([])
    assert hexes(program) == [*PROLOGUE, *EPILOGUE] or sys.byteorder == "big"
    assert all(run(program, *request) == 0 for request in requests())


def test_a_rule_deciding_everything_ends_the_program() -> None:
    everything = rule("allow a *:* rwm")
    short = devices.assemble([rule("deny c 1:3 rwm"), everything])
    assert len(short) == len(devices.assemble([everything]))
    assert all(run(short, *request) == 1 for request in requests())


def test_rules_that_match_nothing_are_left_out() -> None:
    base = devices.assemble([rule("allow c 1:3 r")])
    assert devices.assemble([rule("allow c 1:3 r"), rule("deny c 4096:1 rwm")]) == base
    assert devices.assemble([rule("allow c 1:3 r"), rule("deny c 1:1048576 r")]) == base
    assert devices.assemble([rule("allow c 1:3 r"), DeviceRule(allow=False, access="")]) == base


def test_bad_rules_are_refused() -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices: device rule type"):
        devices.assemble([DeviceRule(allow=True, type="x")])
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices: access must be"):
        devices.assemble([DeviceRule(allow=True, access="rx")])


# --- semantics, through the interpreter --------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        [],
        ["allow a *:* rwm"],
        ["deny a *:* rwm"],
        ["deny a *:* rwm", "allow c 1:3 rwm", "allow c 1:5 rwm"],
        ["allow c 1:3 rwm", "deny c 1:3 w"],  # a later deny of one bit
        ["deny c 1:3 w", "allow c 1:3 rwm"],  # overridden by a later allow
        ["allow c 1:3 r", "allow c 1:3 w"],  # allows add up: rw is granted
        ["allow c *:* rwm", "deny c 1:* rw", "allow c 1:5 r"],
        ["allow a *:* rwm", "deny b *:* rwm", "allow b 5:* m"],
        ["allow c 136:* rwm", "deny c *:0 m", "allow a 0:* r"],
        ["allow a 1:* rw", "deny c *:3 r", "allow b *:* w", "deny a *:1 m"],
    ],
)
def test_semantics(rules: list[str]) -> None:
    check_all([rule(spec) for spec in rules])


def test_examples_by_hand() -> None:
    program = devices.assemble([rule("allow c 1:3 rwm"), rule("deny c 1:3 w")])
    assert run(program, CHAR, 1, 3, R) == 1
    assert run(program, CHAR, 1, 3, M) == 1
    assert run(program, CHAR, 1, 3, W) == 0
    assert run(program, CHAR, 1, 3, R | W) == 0  # any denied bit denies
    assert run(program, BLOCK, 1, 3, R) == 0  # default deny
    added = devices.assemble([rule("allow c 1:3 r"), rule("allow c 1:3 w")])
    assert run(added, CHAR, 1, 3, R | W) == 1
    assert run(added, CHAR, 1, 3, R | W | M) == 0


_rules = st.builds(
    DeviceRule,
    allow=st.booleans(),
    type=st.sampled_from(["a", "b", "c"]),
    major=st.sampled_from([None, *MAJORS, 4096]),
    minor=st.sampled_from([None, *MINORS, 1 << 20]),
    access=st.sampled_from(["r", "w", "m", "rw", "rm", "wm", "rwm", "mwr"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_rules, max_size=7))
def test_semantics_of_random_rule_lists(rules: list[DeviceRule]) -> None:
    check_all(rules)


def test_defaults_always_win() -> None:
    spec = [rule("deny a *:* rwm"), rule("deny c 1:3 rwm"), rule("deny c *:* m")]
    program = devices.program_for(spec)
    allowed = [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 0), (136, 7)]
    for major, minor in allowed:
        assert run(program, CHAR, major, minor, R | W | M) == 1, (major, minor)
    assert run(program, CHAR, 1, 11, R) == 0  # /dev/kmsg
    assert run(program, CHAR, 10, 200, R | W) == 0  # /dev/net/tun
    assert run(program, BLOCK, 8, 0, R) == 0
    assert run(program, BLOCK, 8, 0, M) == 1  # mknod of anything (CAP_MKNOD decides)
    assert run(program, BLOCK, 8, 0, M | R) == 0
    assert program == devices.assemble([*spec, *devices.DEFAULT_RULES])


# --- the bpf(2) calls, against a fake kernel ------------------------------------------------


class FakeKernel:
    """Stands in for devices._bpf; records (command, attr bytes) and answers."""

    def __init__(self, attached: list[int]) -> None:
        self.attached = attached
        self.calls: list[tuple[str, bytes]] = []
        self.errno = 0
        self.refuse: dict[int, int] = {}  # command -> errno
        self.log = b""
        self.targets: list[int] = []

    def __call__(self, command: int, attr: devices._Buffer) -> int:
        names = {
            devices.BPF_PROG_LOAD: "load",
            devices.BPF_PROG_ATTACH: "attach",
            devices.BPF_PROG_DETACH: "detach",
            devices.BPF_PROG_GET_FD_BY_ID: "get_fd",
            devices.BPF_PROG_QUERY: "query",
        }
        self.calls.append((names[command], bytes(attr.data)))
        if command in (devices.BPF_PROG_ATTACH, devices.BPF_PROG_DETACH, devices.BPF_PROG_QUERY):
            target_fd = struct.unpack_from("=I", attr.data, 0)[0]
            self.targets.append(os.fstat(target_fd).st_ino)
        if command in self.refuse:
            self.errno = self.refuse[command]
            if command == devices.BPF_PROG_LOAD:
                level, size, address = struct.unpack_from("=IIQ", attr.data, 24)
                if level and self.log:
                    ctypes.memmove(address, self.log, min(len(self.log), size))
            return -1
        if command == devices.BPF_PROG_QUERY:
            address, capacity = struct.unpack_from("=QI", attr.data, 16)
            struct.pack_into("=I", attr.data, 24, len(self.attached))
            if capacity < len(self.attached):
                self.errno = errno.ENOSPC
                return -1
            ids = struct.pack(f"={len(self.attached)}I", *self.attached)
            ctypes.memmove(address, ids, len(ids))
            return 0
        if command in (devices.BPF_PROG_LOAD, devices.BPF_PROG_GET_FD_BY_ID):
            return os.open(os.devnull, os.O_RDONLY)
        return 0


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[int]], FakeKernel]:
    def make(attached: list[int]) -> FakeKernel:
        fake = FakeKernel(attached)
        monkeypatch.setattr(devices, "_bpf", fake)
        monkeypatch.setattr(devices, "errno", lambda: fake.errno)
        return fake

    return make


def test_install_attaches_the_new_program_then_detaches_the_old(
    tmp_path: Path, kernel: Callable[[list[int]], FakeKernel]
) -> None:
    fake = kernel([7, 9])
    devices.CONTROLLER.apply(str(tmp_path), LinuxResources(devices=(rule("deny a *:* rwm"),)))
    assert [name for name, _ in fake.calls] == [
        "query", "load", "attach", "get_fd", "detach", "get_fd", "detach",
    ]  # fmt: skip
    load = fake.calls[1][1]
    prog_type, count = struct.unpack_from("=II", load, 0)
    assert prog_type == devices.BPF_PROG_TYPE_CGROUP_DEVICE
    assert count == len(devices.program_for([rule("deny a *:* rwm")])) // 8
    assert load[48:64].rstrip(b"\0") == b"cove_devices"
    _, _, attach_type, flags = struct.unpack_from("=IIII", fake.calls[2][1], 0)
    assert (attach_type, flags) == (devices.BPF_CGROUP_DEVICE, devices.BPF_F_ALLOW_MULTI)
    # query, attach and both detaches name the cgroup directory by an fd open on it
    assert fake.targets == [tmp_path.stat().st_ino] * 4
    ids = [struct.unpack_from("=I", attr, 0)[0] for name, attr in fake.calls if name == "get_fd"]
    assert ids == [7, 9]


def test_no_rules_leaves_the_filter_alone(
    tmp_path: Path, kernel: Callable[[list[int]], FakeKernel]
) -> None:
    fake = kernel([7])
    devices.CONTROLLER.apply(str(tmp_path), LinuxResources())
    data: dict[str, object] = {}
    devices.CONTROLLER.stats(str(tmp_path), data)
    assert (fake.calls, data) == ([], {})


def test_query_grows_its_buffer(tmp_path: Path, kernel: Callable[[list[int]], FakeKernel]) -> None:
    fake = kernel(list(range(1, 101)))
    assert devices.attached(str(tmp_path)) == list(range(1, 101))
    assert [name for name, _ in fake.calls] == ["query", "query"]
    assert devices.detach_all(str(tmp_path)) == 100


def test_detach_skips_programs_gone_meanwhile(
    tmp_path: Path, kernel: Callable[[list[int]], FakeKernel]
) -> None:
    fake = kernel([3])
    fake.refuse[devices.BPF_PROG_GET_FD_BY_ID] = errno.ENOENT
    assert devices.detach_all(str(tmp_path)) == 0


def test_load_not_permitted(kernel: Callable[[list[int]], FakeKernel]) -> None:
    fake = kernel([])
    fake.refuse[devices.BPF_PROG_LOAD] = errno.EPERM
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices: cannot load .*CAP_BPF"):
        devices.load(devices.assemble([]))
    assert len(fake.calls) == 1


def test_verifier_refusal_quotes_the_log(kernel: Callable[[list[int]], FakeKernel]) -> None:
    fake = kernel([])
    fake.refuse[devices.BPF_PROG_LOAD] = errno.EACCES
    fake.log = b"0: R1=ctx() R10=fp0\n0: (61) r2 = *(u32 *)(r1 +12)\ninvalid bpf_context access\n\0"
    with pytest.raises(CgroupError) as info:
        devices.load(devices.assemble([]))
    assert str(info.value) == (
        "linux.resources.devices: the kernel rejected the device filter (Permission denied): "
        "0: R1=ctx() R10=fp0 | 0: (61) r2 = *(u32 *)(r1 +12) | invalid bpf_context access"
    )
    first, second = (struct.unpack_from("=IIQ", attr, 24) for _, attr in fake.calls)
    assert first == (0, 0, 0)  # no log the first time: cheaper
    assert second[0] == 1 and second[1] == 1 << 16


def test_attach_refused(tmp_path: Path, kernel: Callable[[list[int]], FakeKernel]) -> None:
    fake = kernel([])
    fake.refuse[devices.BPF_PROG_ATTACH] = errno.EBADF
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices: cannot attach .*Bad file"):
        devices.install(str(tmp_path), [rule("deny a *:* rwm")])


def test_missing_cgroup(tmp_path: Path, kernel: Callable[[list[int]], FakeKernel]) -> None:
    kernel([])
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices: cannot open cgroup "):
        devices.attached(str(tmp_path / "missing"))


def test_buffer_address_sees_the_bytes() -> None:
    buffer = devices._Buffer(b"abc")
    assert len(buffer.data) == 8  # padded to hold the address anchor
    assert ctypes.string_at(buffer.address, 3) == b"abc"
    buffer.data[0:3] = b"xyz"
    assert ctypes.string_at(buffer.address, 3) == b"xyz"
