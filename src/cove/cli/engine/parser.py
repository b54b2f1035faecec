"""argparse with docker's manners: a usage error is one line and exit status 125.

`argparse` is loaded only when a command line needs it. Building an ArgumentParser imports
argparse, gettext, locale and shutil (with bz2 and lzma), and formats every argument once:
about 6 ms of a short command such as `cove pull`. `CommandParser` records the arguments
a command declares; when they are all of the plain kinds below and the command line uses
only exact flags, it parses by itself, with argparse's results:

- positionals without nargs, type, choices or default (one value each, in order);
- flags with action store_true, or store (one value, `--flag VALUE` or `--flag=VALUE`,
  converted by `type` when given; a str default is converted too, as argparse does);
- a store flag with nargs="?" and a const, as long as the command line does not use it.

Anything else (help, `--`, combined short flags, a value that starts with "-",
a missing or extra argument, a type that refuses its value, any other kind of argument
or parser call) goes to a real `argparse.ArgumentParser` built from the same declarations,
which also gives the usage errors. A declaration outside that subset builds the real
parser at once, so argparse still checks declarations where they are made.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

#: argparse.SUPPRESS (help=SUPPRESS hides a flag from --help)
SUPPRESS = "==SUPPRESS=="


class UsageError(Exception):
    pass


def parse_bool(text: str) -> bool:
    """A boolean flag's value as docker takes it (`--sig-proxy=false`)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    import argparse  # (only for the error: argparse words it)

    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class Namespace:
    """argparse.Namespace without argparse: attributes, equality, `in`."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Namespace):
            return NotImplemented
        return vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"Namespace({fields})"


class _Simple:
    """One argument declaration that `CommandParser` parses by itself."""

    __slots__ = ("const", "default", "dest", "flag", "nargs", "options", "type")

    def __init__(
        self,
        dest: str,
        options: tuple[str, ...],
        *,
        flag: bool = False,
        default: Any = None,
        type: Callable[[str], Any] | None = None,
        nargs: str | None = None,
        const: Any = None,
    ) -> None:
        self.dest = dest
        self.options = options
        self.flag = flag  # store_true
        self.default = default
        self.type = type
        self.nargs = nargs
        self.const = const


REMAINDER = "..."  # argparse.REMAINDER
APPEND = "append"  # marks an action="append" flag (not an argparse nargs)


class _Fallback(Exception):
    """The command line needs argparse."""


_STORE_KEYS = frozenset({"action", "default", "help", "metavar", "type", "dest"})
_FLAG_KEYS = frozenset({"action", "default", "help", "dest"})
_POSITIONAL_KEYS = frozenset({"help", "metavar"})


def _simple(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Simple | None:
    """The declaration as a `_Simple`, or None when it is of another kind."""
    if not args or not all(isinstance(a, str) and a for a in args):
        return None
    if not args[0].startswith("-"):
        if len(args) == 1 and set(kwargs) - _POSITIONAL_KEYS == {"nargs"}:
            if kwargs["nargs"] == REMAINDER:  # the rest of the line, flags and all
                return _Simple(args[0], (), default=[], nargs=REMAINDER)
            return None
        if len(args) != 1 or set(kwargs) - _POSITIONAL_KEYS:
            return None
        return _Simple(args[0], ())
    if not all(a.startswith("-") and a not in ("-", "--") for a in args):
        return None
    if any(a.startswith("-") and not a.startswith("--") and len(a) != 2 for a in args):
        return None  # -abc: argparse reads that as -a with a value
    longs = [a for a in args if a.startswith("--")]
    dest = kwargs.get("dest") or (longs[0] if longs else args[0]).lstrip("-").replace("-", "_")
    if not isinstance(dest, str) or not dest:
        return None
    action = kwargs.get("action", "store")
    if action == "store_true":
        if set(kwargs) - _FLAG_KEYS or kwargs.get("default", False) is not False:
            return None
        return _Simple(dest, tuple(args), flag=True, default=False)
    if action == "append":
        default = kwargs.get("default")
        if set(kwargs) - _STORE_KEYS or not (default is None or isinstance(default, list)):
            return None
        type_ = kwargs.get("type")
        if type_ is not None and not callable(type_):
            return None
        return _Simple(dest, tuple(args), default=default, type=type_, nargs=APPEND)
    if action != "store":
        return None
    default = kwargs.get("default")
    type_ = kwargs.get("type")
    if _suppressed(default) or (type_ is not None and not callable(type_)):
        return None
    if set(kwargs) - _STORE_KEYS:
        if set(kwargs) - _STORE_KEYS != {"nargs", "const"} or kwargs["nargs"] != "?":
            return None
        return _Simple(dest, tuple(args), default=default, type=type_, nargs="?",
                       const=kwargs["const"])  # fmt: skip
    return _Simple(dest, tuple(args), default=default, type=type_)


class CommandParser:
    """An argument parser for one command; see the module's docstring."""

    def __init__(self, prog: str | None = None, **kwargs: Any) -> None:
        self.prog = prog
        self._kwargs = kwargs
        self._calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._simple: list[_Simple] = []
        self._options: dict[str, _Simple] = {}
        self._real: argparse.ArgumentParser | None = None
        if prog is None or set(kwargs) - {"description"}:
            self._materialize()

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        if self._real is None:
            spec = _simple(args, kwargs)
            taken = spec is not None and (
                any(o in self._options or o in ("-h", "--help") for o in spec.options)
                or any(s.dest == spec.dest for s in self._simple)
            )
            if spec is not None and not taken:
                self._calls.append((args, kwargs))
                self._simple.append(spec)
                self._options.update(dict.fromkeys(spec.options, spec))
                return None
            self._materialize()
        assert self._real is not None
        return self._real.add_argument(*args, **_for_argparse(kwargs))

    def error(self, message: str) -> None:
        raise UsageError(f"{self.prog}: {message}")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        if self._real is None and args is not None and namespace is None:
            try:
                return self._parse(list(args))
            except _Fallback:
                pass
        return self._argparse().parse_args(args, namespace)

    def __getattr__(self, name: str) -> Any:
        # Anything else argparse offers (print_help, set_defaults, groups, subparsers...).
        if name.startswith("__") or name in ("_real", "_calls", "_kwargs"):
            raise AttributeError(name)
        return getattr(self._argparse(), name)

    # --- internals -------------------------------------------------------------------------

    def _argparse(self) -> argparse.ArgumentParser:
        if self._real is None:
            self._materialize()
        assert self._real is not None
        return self._real

    def _materialize(self) -> None:
        """Build the real parser from the declarations so far; it takes every later one."""
        # Docker takes no abbreviated flags: `--pid` must never be read as `--pids-limit`.
        self._real = _argparse_class()(prog=self.prog, **{"allow_abbrev": False, **self._kwargs})
        if self.prog is None:
            self.prog = self._real.prog
        for args, kwargs in self._calls:
            self._real.add_argument(*args, **_for_argparse(kwargs))

    def _parse(self, args: list[str]) -> Namespace:
        values: dict[str, Any] = {spec.dest: spec.default for spec in self._simple}
        seen: set[str] = set()
        positionals = [spec for spec in self._simple if not spec.options]
        for spec in positionals:
            if spec.nargs == REMAINDER:
                values[spec.dest] = []
        if any(s.nargs == REMAINDER for s in positionals[:-1]):
            raise _Fallback  # only a last REMAINDER is simple
        index = 0
        while index < len(args):
            arg = args[index]
            index += 1
            if not arg.startswith("-"):
                if not positionals or positionals[0].nargs == REMAINDER:
                    raise _Fallback  # argparse: unrecognized arguments, or its REMAINDER rules
                values[positionals.pop(0).dest] = arg
                if positionals and positionals[0].nargs == REMAINDER:
                    values[positionals.pop(0).dest] = args[index:]
                    break
                continue
            name, equals, value = arg.partition("=")
            found = self._options.get(name if equals and name.startswith("--") else arg)
            if found is None or found.nargs not in (None, APPEND):
                raise _Fallback
            spec = found
            if spec.flag:
                if equals:
                    raise _Fallback  # argparse: ignored explicit argument
                values[spec.dest] = True
            else:
                if not equals:
                    if index >= len(args) or args[index].startswith("-"):
                        raise _Fallback  # argparse: expected one argument
                    value = args[index]
                    index += 1
                if spec.nargs == APPEND:  # argparse copies the default, then appends
                    values[spec.dest] = [*(values[spec.dest] or []), _convert(spec, value)]
                else:
                    values[spec.dest] = _convert(spec, value)
            seen.add(spec.dest)
        if positionals and not (len(positionals) == 1 and positionals[0].nargs == REMAINDER):
            raise _Fallback  # argparse: the following arguments are required
        for spec in self._simple:
            if spec.dest not in seen and isinstance(spec.default, str) and spec.options:
                values[spec.dest] = _convert(spec, spec.default)
        return Namespace(**values)


def _suppressed(value: object) -> bool:
    return isinstance(value, str) and value == SUPPRESS


def _for_argparse(kwargs: dict[str, Any]) -> dict[str, Any]:
    """argparse tells SUPPRESS by identity: pass its own string object."""
    if not any(_suppressed(value) for value in kwargs.values()):
        return kwargs
    import argparse

    return {key: argparse.SUPPRESS if _suppressed(v) else v for key, v in kwargs.items()}


def _convert(spec: _Simple, value: str) -> Any:
    if spec.type is None:
        return value
    try:
        return spec.type(value)
    except Exception:
        raise _Fallback from None  # argparse words the error


def _argparse_class() -> type[argparse.ArgumentParser]:
    import argparse

    class ArgumentParser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]  # raises instead
            raise UsageError(f"{self.prog}: {message}")

    return ArgumentParser
