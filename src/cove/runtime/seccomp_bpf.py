"""Seccomp filters as raw BPF: cached by profile, loaded with the seccomp() syscall.

Building a filter with libseccomp costs ~35 ms per container (importing the binding,
compiling the rules, generating the program). A profile always compiles to the same BPF
on a given host, so the first container with a profile builds it through
cove.runtime.seccomp and leaves the program in a cache; later ones read those bytes and
hand them to the kernel directly. The cache lives on tmpfs (/run for root, the user's
runtime directory otherwise), so it is empty after each boot; the key includes cove's
version and the machine type. COVE_SECCOMP_CACHE sets another place.
"""

from __future__ import annotations

import os
import struct

from cove import __version__
from cove.errors import ProcessSetupError
from cove.sys.libc import Long, call, errno, pin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.oci.seccomp import SeccompProfile

_SYS_SECCOMP = 317 if os.uname().machine == "x86_64" else 277
_SECCOMP_SET_MODE_FILTER = 1
# SECCOMP_FILTER_FLAG_* as the kernel numbers them
_KERNEL_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class BpfFilter:
    """A compiled program (struct sock_filter array) and the seccomp() flags to load it."""

    __slots__ = ("flags", "program")

    def __init__(self, program: bytes, flags: int) -> None:
        if not program or len(program) % _INSTRUCTION_SIZE:
            raise ProcessSetupError("linux.seccomp: the compiled filter is malformed")
        self.program = program
        self.flags = flags

    def load(self) -> None:
        buffer, address = pin(self.program)
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        fprog = struct.pack("=H6xQ", len(self.program) // _INSTRUCTION_SIZE, address)
        result = call(
            "syscall", Long(_SYS_SECCOMP), Long(_SECCOMP_SET_MODE_FILTER), Long(self.flags), fprog
        )
        del buffer  # kept alive until the kernel has copied the program
        if result != 0:
            number = errno()
            hint = ""
            if number == 13:  # EACCES
                hint = (
                    " (without no_new_privileges the kernel wants CAP_SYS_ADMIN: load the"
                    " filter before dropping capabilities)"
                )
            raise ProcessSetupError(
                f"linux.seccomp: cannot load the filter: {os.strerror(number)}{hint}"
            )


def cache_dir() -> str:
    configured = os.environ.get("COVE_SECCOMP_CACHE")
    if configured:
        return configured
    if os.geteuid() == 0:
        return "/run/cove-seccomp-cache"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    if os.path.isdir(runtime_dir):
        return os.path.join(runtime_dir, "cove-seccomp-cache")
    return f"/tmp/cove-seccomp-cache-{os.geteuid()}"


def filter_for(profile: SeccompProfile) -> BpfFilter:
    """The profile's program: from the cache, or built with libseccomp and cached."""
    flags = sum(_KERNEL_FLAGS.get(flag, 0) for flag in profile.flags)
    path = os.path.join(cache_dir(), _key(profile) + ".bpf")
    try:
        with open(path, "rb") as cached:
            return BpfFilter(cached.read(), flags)
    except (OSError, ProcessSetupError):
        pass
    from cove.runtime.seccomp import compile_filter

    program = compile_filter(profile).export_bpf()
    _store(path, program)
    return BpfFilter(program, flags)


def _key(profile: SeccompProfile) -> str:
    described = f"{__version__}\n{os.uname().machine}\n{profile!r}".encode()
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # hashlib's C core
    except ImportError:  # another Python implementation
        from hashlib import sha256
    digest: str = sha256(described).hexdigest()
    return digest


def _store(path: str, program: bytes) -> None:
    """Atomically; a cache that cannot be written only costs the next container time."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temp = f"{path}.{os.getpid()}.tmp"
        with open(temp, "wb") as out:
            out.write(program)
        os.replace(temp, path)
    except OSError:
        pass
