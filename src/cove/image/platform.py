"""Platforms (`os/architecture[/variant]`): parsing, normalisation as containerd does, the
host's platform, and how well an offered platform suits a wanted one (for
`cove.image.manifest.select_manifest`).
"""

from __future__ import annotations

import os as _os

from cove.errors import InvalidArgument
from cove.image.records import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_KNOWN_OS = frozenset(
    {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos"}
)
_ARCH_ALIASES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv5l": ("arm", "v5"),
    "armv6l": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv8l": ("arm", "v8"),
}


class Platform(FrozenRecord):
    """What an image runs on; `str()` is `os/architecture[/variant]` (`linux/arm64/v8`).
    Immutable and hashable."""

    __slots__ = ("architecture", "os", "os_features", "os_version", "variant")
    _field_order = ("os", "architecture", "variant", "os_version", "os_features")
    os: str
    architecture: str
    variant: str
    os_version: str
    os_features: tuple[str, ...]

    def __init__(
        self,
        os: str,
        architecture: str,
        variant: str = "",
        os_version: str = "",
        os_features: tuple[str, ...] = (),
    ) -> None:
        self._init(os, architecture, variant, os_version, os_features)

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        return parse_platform(text)

    def normalized(self) -> Platform:
        """Canonical spelling, as containerd normalises: `aarch64` is arm64/v8, `x86_64`
        is amd64 (whose variant is ignored), bare `arm` is arm/v7."""
        os_name = self.os.lower()
        if os_name == "macos":
            os_name = "darwin"
        arch, variant = self.architecture.lower(), self.variant.lower()
        if arch in _ARCH_ALIASES:
            arch, alias_variant = _ARCH_ALIASES[arch]
            variant = variant or alias_variant
        if variant.isdigit():
            variant = f"v{variant}"
        if arch == "arm64" and variant in ("", "v8"):
            variant = "v8"
        elif arch == "arm" and variant == "":
            variant = "v7"
        elif arch == "amd64":
            variant = ""
        return Platform(os_name, arch, variant, self.os_version, self.os_features)

    def matches(self, other: Platform) -> bool:
        """Same os, architecture and variant once both are normalised."""
        a, b = self.normalized(), other.normalized()
        return (a.os, a.architecture, a.variant) == (b.os, b.architecture, b.variant)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out


def host_platform() -> Platform:
    """The platform of this machine (linux/amd64 on an x86-64 host)."""
    uname = _os.uname()
    return Platform(uname.sysname.lower(), uname.machine).normalized()


def parse_platform(text: str) -> Platform:
    """`os/arch[/variant]`, or just `os` or `arch` (the rest from this host), normalised."""
    parts = text.strip().split("/")
    if not text.strip() or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/architecture[/variant]")
    if len(parts) == 1:
        host = host_platform()
        word = parts[0].lower()
        if word in _KNOWN_OS:
            return Platform(word, host.architecture, host.variant).normalized()
        return Platform(host.os, word).normalized()
    variant = parts[2] if len(parts) == 3 else ""
    return Platform(parts[0], parts[1], variant).normalized()


def _platform_rank(want: Platform, have: Platform) -> int | None:
    """0 for an exact match, higher for a compatible fallback, None when it cannot run.

    Fallbacks follow containerd: arm/vN also runs vN-1 down to v5, arm64 runs 32-bit arm,
    amd64 ignores the variant (preferring the baseline when both are offered).
    """
    raw_variant = have.variant.lower()
    have = have.normalized()
    if have.os != want.os:
        return None
    if want.architecture == "amd64":
        if have.architecture != "amd64":
            return None
        return 0 if raw_variant in ("", "v1", "1") else 1
    vector: list[tuple[str, str]] = [(want.architecture, want.variant)]
    if want.architecture == "arm64":
        if want.variant != "v8":
            vector.append(("arm64", "v8"))
        vector += [("arm", f"v{n}") for n in (8, 7, 6, 5)]
    elif want.architecture == "arm" and want.variant in ("v5", "v6", "v7", "v8"):
        top = int(want.variant[1:])
        vector += [("arm", f"v{n}") for n in range(top - 1, 4, -1)]
    try:
        return vector.index((have.architecture, have.variant))
    except ValueError:
        return None
