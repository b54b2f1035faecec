"""Docker's detach keys (`--detach-keys`, default ctrl-p,ctrl-q): their syntax, and the
escape proxy that finds them in a terminal's input. Used by `cove run/attach` and by the
API's attach and exec."""

from __future__ import annotations

from cove.errors import InvalidArgument

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(text: str) -> bytes:
    """Docker's detach key syntax: comma-separated keys, each a single character or
    `ctrl-<a-z, @, [, \\, ], ^, _>` ("ctrl-p,ctrl-q" is ^P ^Q). InvalidArgument otherwise."""
    keys = bytearray()
    for key in text.split(","):
        lowered = key.lower()
        if len(key) == 1 and key.isascii():
            keys.append(ord(key))
        elif lowered.startswith("ctrl-") and len(key) == 6:
            char = lowered[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in _CTRL_SPECIAL:
                keys.append(_CTRL_SPECIAL[char])
            else:
                raise InvalidArgument(f"Invalid escape keys ({text}) provided")
        else:
            raise InvalidArgument(f"Invalid escape keys ({text}) provided")
    if not keys:
        raise InvalidArgument(f"Invalid escape keys ({text}) provided")
    return bytes(keys)


class EscapeProxy:
    """Watches input for the detach sequence (Docker's escape proxy): bytes that may start
    it are held back until the sequence completes (detach: they are dropped) or breaks
    (they go on with the rest)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = 0  # how many bytes of `keys` the input has matched so far

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to pass on, whether the sequence completed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self._held]:
                self._held += 1
                if self._held == len(self.keys):
                    self._held = 0
                    return bytes(out), True
                continue
            if self._held:
                out += self.keys[: self._held]
                self._held = 0
                if byte == self.keys[0]:
                    self._held = 1
                    continue
            out.append(byte)
        return bytes(out), False
