"""Docker's word processing: quotes, escapes and `$` substitution, as the Dockerfile
frontend applies them to the words of the instructions that expand variables.

This is not a shell. It knows:

- single quotes (everything literal up to the next `'`), double quotes (literal except
  `$`, and the escape character before `"`, `$` or itself), the escape character outside
  quotes (the next character is taken literally; a trailing escape is dropped);
- `$NAME`, `${NAME}` and the modifiers `${NAME:-word}` / `${NAME-word}` (default),
  `${NAME:+word}` / `${NAME+word}` (alternative), `${NAME:?message}` / `${NAME?message}`
  (required), `${NAME#pattern}` / `##` / `%` / `%%` (trim a shortest/longest prefix or
  suffix matching a `*`/`?` pattern) and `${NAME/pattern/replacement}` / `//`;
  the colon forms treat an empty value as unset; `word` is processed recursively;
- a `$` not followed by a name is literal; names are letters, digits and `_`, or one
  digit run, or one special parameter (`@*#?-$!0`), which is never set here.

Results come as one string (`process_word`, whitespace kept) or split into words after
substitution (`process_words`: whitespace from substituted values splits, quoted text
does not). Options give the raw modes the parser needs for heredoc markers (quotes or
escapes kept in the output, unset variables left as written).

Errors are `BuildError`s whose message names the word; callers add the Dockerfile line.
"""

from __future__ import annotations

import re

from cove.errors import BuildError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class WordResult:
    """What processing one word gave: the text, the split words, and the variable names
    looked up (found and not found)."""

    __slots__ = ("matched", "text", "unmatched", "words")

    def __init__(self, text: str, words: list[str], matched: set[str], unmatched: set[str]) -> None:
        self.text = text
        self.words = words
        self.matched = matched
        self.unmatched = unmatched


class _Words:
    """Collects the words of a processed string (moby's rules for word splitting)."""

    __slots__ = ("in_word", "word", "words")

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class ShellLex:
    """A word processor for one escape character and one set of options (see the module
    docstring). Instances are reusable; they are not thread-safe while processing."""

    __slots__ = (
        "_env",
        "_matched",
        "_n",
        "_pos",
        "_raw_escapes_now",
        "_text",
        "_unmatched",
        "escape",
        "raw_escapes",
        "raw_quotes",
        "skip_quotes",
        "skip_unset",
    )

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_quotes: bool = False,
        skip_unset: bool = False,
    ) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes  # keep the quote characters in the result
        self.raw_escapes = raw_escapes  # keep the escape characters in the result
        self.skip_quotes = skip_quotes  # quotes are ordinary characters (heredoc bodies)
        self.skip_unset = skip_unset  # leave unset variables as written
        self._text = ""
        self._pos = 0
        self._n = 0
        self._env: Mapping[str, str] = {}
        self._matched: set[str] = set()
        self._unmatched: set[str] = set()
        self._raw_escapes_now = raw_escapes

    # --- public ---------------------------------------------------------------------------

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self.process(word, env).text

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self.process(word, env).words

    def process(self, word: str, env: Mapping[str, str]) -> WordResult:
        self._text, self._pos, self._n = word, 0, len(word)
        self._env = env
        self._matched, self._unmatched = set(), set()
        self._raw_escapes_now = self.raw_escapes
        try:
            text, words = self._process_until(None, self.raw_escapes)
        except _WordError as exc:
            raise BuildError(f"failed to process {word!r}: {exc}") from None
        return WordResult(text, words, self._matched, self._unmatched)

    # --- scanner --------------------------------------------------------------------------

    def _peek(self) -> str:
        return self._text[self._pos] if self._pos < self._n else ""

    def _next(self) -> str:
        if self._pos >= self._n:
            return ""
        ch = self._text[self._pos]
        self._pos += 1
        return ch

    def _process_until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self._raw_escapes_now
        self._raw_escapes_now = raw_escapes
        try:
            return self._scan(stop)
        finally:
            self._raw_escapes_now = saved

    def _scan(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        quotes = not self.skip_quotes
        while self._pos < self._n:
            ch = self._text[self._pos]
            if stop is not None and ch == stop:
                self._pos += 1
                return "".join(out), words.result()
            if ch == "$":
                value = self._dollar()
                out.append(value)
                words.add_string(value)
            elif quotes and ch == "'":
                value = self._single_quote()
                out.append(value)
                words.add_raw_string(value)
            elif quotes and ch == '"':
                value = self._double_quote()
                out.append(value)
                words.add_raw_string(value)
            else:
                self._pos += 1
                if ch == self.escape:
                    if self._raw_escapes_now:
                        words.add_raw_char(ch)
                        out.append(ch)
                    if self._pos >= self._n:
                        break  # an escape at the end of the word is dropped
                    ch = self._text[self._pos]
                    self._pos += 1
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                out.append(ch)
        if stop is not None:
            raise _WordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.result()

    def _single_quote(self) -> str:
        start = self._pos
        self._pos += 1  # the opening quote
        end = self._text.find("'", self._pos)
        if end < 0:
            raise _WordError("unexpected end of statement while looking for matching single-quote")
        self._pos = end + 1
        if self.raw_quotes:
            return self._text[start : end + 1]
        return self._text[start + 1 : end]

    def _double_quote(self) -> str:
        out: list[str] = []
        self._pos += 1  # the opening quote
        if self.raw_quotes:
            out.append('"')
        while True:
            if self._pos >= self._n:
                raise _WordError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            ch = self._text[self._pos]
            if ch == '"':
                self._pos += 1
                if self.raw_quotes:
                    out.append('"')
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self._pos += 1
            if ch == self.escape:
                if self._raw_escapes_now:
                    out.append(ch)
                following = self._peek()
                if following == "":
                    continue
                if following in ('"', "$", self.escape):
                    self._pos += 1
                    out.append(following)
                    continue
                if self._raw_escapes_now:
                    continue  # already written once
            out.append(ch)

    def _lookup(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None:
            self._unmatched.add(name)
        else:
            self._matched.add(name)
        return value

    def _name(self) -> str:
        text, pos, n = self._text, self._pos, self._n
        if pos >= n:
            return ""
        ch = text[pos]
        if ch.isdecimal():
            end = pos
            while end < n and text[end].isdecimal():
                end += 1
            self._pos = end
            return text[pos:end]
        if ch in _SPECIAL_PARAMS:
            self._pos += 1
            return ch
        end = pos
        while end < n and (text[end].isalpha() or text[end].isdecimal() or text[end] == "_"):
            end += 1
        self._pos = end
        return text[pos:end]

    def _dollar(self) -> str:
        self._pos += 1  # the "$"
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._lookup(name)
            if value is None:
                return f"${name}" if self.skip_unset else ""
            return value
        self._pos += 1  # the "{"
        first = self._peek()
        if first == "":
            raise _WordError("syntax error: missing '}'")
        if first in "{}:":
            raise _WordError("syntax error: bad substitution")
        name = self._name()
        op = self._next()
        if op == "":
            raise _WordError("syntax error: missing '}'")
        if op == "}":
            value = self._lookup(name)
            if value is None:
                return f"${{{name}}}" if self.skip_unset else ""
            return value
        if op == "/":
            return self._replace(name)
        colon = op == ":"
        if colon:
            op = self._next()
        spelled = (":" if colon else "") + op
        if op not in ("-", "+", "?", "#", "%") or (colon and op in "#%"):
            raise _WordError(f"unsupported modifier ({spelled}) in substitution")
        try:
            word, _ = self._process_until("}", op in "#%")
        except _WordError:
            if self._pos >= self._n:
                raise _WordError("syntax error: missing '}'") from None
            raise
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return f"${{{name}{spelled}{word}}}"
        is_set = value is not None and not (colon and value == "")
        if op == "-":
            return value if is_set and value is not None else word
        if op == "+":
            return word if is_set else ""
        if op == "?":
            if value is None:
                raise _WordError(f"{name}: {word or 'is not allowed to be unset'}")
            if colon and value == "":
                raise _WordError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        current = value or ""
        greedy = word.startswith(op)
        if greedy:
            word = word[1:]
        if op == "#":
            return _trim_prefix(word, current, greedy)
        return _trim_suffix(word, current, greedy)

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._pos += 1
        try:
            pattern, _ = self._process_until("/", True)
        except _WordError:
            if self._pos >= self._n:
                raise _WordError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self._process_until("}", True)
        except _WordError:
            if self._pos >= self._n:
                raise _WordError("syntax error: missing '}'") from None
            raise
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return f"${{{name}/{pattern}/{replacement}}}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _m: replacement, value or "", count=0 if replace_all else 1)


class _WordError(Exception):
    """Internal: a syntax error inside a word; `ShellLex.process` turns it into a
    BuildError naming the word."""


def _pattern_units(pattern: str) -> list[str]:
    """The pattern as units: one character, or an escape with the character it escapes."""
    units: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            units.append(pattern[i : i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return units


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A `*`/`?` shell pattern (no bracket expressions) as a regular expression."""
    star = ".*" if greedy else ".*?"
    parts = ["^"] if anchored else []
    for unit in _pattern_units(pattern):
        if unit == "*":
            parts.append(star)
        elif unit == "?":
            parts.append(".")
        elif len(unit) == 2:
            escaped = unit[1]
            if escaped in "}/":
                parts.append(re.escape(escaped))
            elif escaped in "*?\\":
                parts.append(re.escape(escaped))
            else:
                raise _WordError(f"invalid pattern ({pattern}) in substitution: invalid escape")
        else:
            parts.append(re.escape(unit))
    return re.compile("".join(parts), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).match(value)
    return value[match.end() :] if match else value


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    reversed_pattern = "".join(reversed(_pattern_units(pattern)))
    return _trim_prefix(reversed_pattern, value[::-1], greedy)[::-1]


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """`word` with quotes and escapes processed and variables substituted from `env`."""
    return ShellLex(escape).process_word(word, env)


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """`text` processed as `expand_word` does, then split into words (whitespace from
    substituted values splits; quoted or escaped whitespace does not)."""
    return ShellLex(escape).process_words(text, env)
