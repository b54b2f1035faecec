"""Flag parsing in runc's (urfave/cli) style, without argparse on the hot path.

`--name value`, `--name=value`, `-name value` and short aliases (`-d`) all work; boolean
flags take no value (or `=true`/`=false`); repeatable flags collect a list; `--` ends the
flags. Verbs whose trailing arguments are a command (exec) stop at the first positional.
"""

from __future__ import annotations

from cove.errors import InvalidArgument
from cove.oci.data import Data


class Flag(Data):
    __slots__ = ("aliases", "help", "name", "repeat", "takes_value")

    def __init__(
        self,
        name: str,
        takes_value: bool = False,
        repeat: bool = False,
        aliases: tuple[str, ...] = (),
        help: str = "",
    ) -> None:
        self.name = name
        self.takes_value = takes_value
        self.repeat = repeat
        self.aliases = aliases
        self.help = help


class Parsed(Data):
    __slots__ = ("positional", "values")

    def __init__(
        self,
        values: dict[str, object] | None = None,
        positional: list[str] | None = None,
    ) -> None:
        self.values = {} if values is None else values
        self.positional = [] if positional is None else positional

    def text(self, name: str, default: str = "") -> str:
        value = self.values.get(name, default)
        assert isinstance(value, str)
        return value

    def switch(self, name: str) -> bool:
        return bool(self.values.get(name, False))

    def many(self, name: str) -> list[str]:
        value = self.values.get(name, [])
        assert isinstance(value, list)
        return value

    def number(self, name: str, default: int = 0) -> int:
        text = self.values.get(name)
        if text is None:
            return default
        try:
            return int(str(text))
        except ValueError:
            raise InvalidArgument(f"--{name}: expected a number, got {text!r}") from None


def parse(args: list[str], flags: list[Flag], stop_at_positional: bool = False) -> Parsed:
    by_name: dict[str, Flag] = {}
    for flag in flags:
        for name in (flag.name, *flag.aliases):
            by_name[name] = flag
    parsed = Parsed()
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            parsed.positional.extend(args[index:])
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positional.append(arg)
            if stop_at_positional:
                parsed.positional.extend(args[index:])
                break
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        found = by_name.get(name)
        if found is None:
            raise InvalidArgument(f"unknown flag {arg!r}")
        flag = found
        if flag.takes_value:
            if not has_value:
                if index >= len(args):
                    raise InvalidArgument(f"flag {arg!r} needs a value")
                value = args[index]
                index += 1
            if flag.repeat:
                existing = parsed.values.setdefault(flag.name, [])
                assert isinstance(existing, list)
                existing.append(value)
            else:
                parsed.values[flag.name] = value
        else:
            if has_value and value not in ("true", "false"):
                raise InvalidArgument(f"flag --{name} is a switch: use true or false")
            parsed.values[flag.name] = not has_value or value == "true"
    return parsed


def usage(verb: str, synopsis: str, flags: list[Flag]) -> str:
    lines = [f"usage: cove-runtime {verb} {synopsis}", ""]
    for flag in flags:
        names = ", ".join(f"-{a}" if len(a) == 1 else f"--{a}" for a in (*flag.aliases, flag.name))
        lines.append(f"  {names + (' VALUE' if flag.takes_value else ''):<32} {flag.help}")
    return "\n".join(lines) + "\n"
