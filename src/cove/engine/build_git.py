"""Git repositories as build contexts, as the docker CLI takes them:
`cove build https://host/repo.git#REF:SUBDIR`, `git@host:repo.git`, `git://host/repo`,
`github.com/user/repo` (read as https).

What is a git URL (Docker's rule): a `git://`, `git@` or `github.com/` prefix, or an http(s)
URL whose path ends in `.git`. The fragment names the ref (a branch, a tag or a commit;
default: the remote's HEAD) and, after a colon, the folder of the repository that is the
context (default: its top).

`clone` runs the host's `git` (with the user's credentials, never prompting): a shallow
fetch of the ref, a full fetch when the server cannot fetch that ref shallowly (a commit
id), a checkout, and the submodules. The folder must stay inside the checkout: a `..` or a
link out of it is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from cove.errors import BuildError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

CLONE_TIMEOUT_S = 600


@dataclass(frozen=True)
class GitSource:
    url: str  # what git fetches
    ref: str  # "" for the remote's HEAD
    subdir: str  # "" for the top of the repository

    @property
    def host(self) -> str:
        """The server's name (for `git@host:path`, the part before the colon)."""
        if self.url.startswith("git@"):
            return self.url[4:].partition(":")[0]
        return urlsplit(self.url).hostname or ""


def parse_git_url(text: str) -> GitSource | None:
    """The repository `text` names, or None if it is not a git URL."""
    base, _, fragment = text.partition("#")
    lowered = base.lower()
    if lowered.startswith("github.com/"):
        base = "https://" + base
    elif not lowered.startswith(("git://", "git@")):
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.path.endswith(".git"):
            return None
    ref, _, subdir = fragment.partition(":")
    if ref.startswith("-") or base.startswith("-"):
        raise BuildError(f"invalid git context {text!r}: a ref or URL cannot start with '-'")
    return GitSource(base, ref, subdir.strip("/"))


def _git(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    import subprocess

    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PROTOCOL_FROM_USER": "0"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              env=environment, timeout=CLONE_TIMEOUT_S)  # fmt: skip
    except FileNotFoundError:
        raise BuildError("building from a git repository needs git: apt-get install git") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"git {args[0]} took more than {CLONE_TIMEOUT_S} s") from None


def _checked(args: list[str], cwd: str, source: GitSource) -> None:
    done = _git(args, cwd)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        raise BuildError(f"cannot fetch the git context {source.url}: {detail}")


def clone(source: GitSource, folder: str) -> str:
    """Check out `source` into the empty `folder`; the context's path inside it."""
    _checked(["init", "-q"], folder, source)
    _checked(["remote", "add", "origin", source.url], folder, source)
    ref = source.ref or "HEAD"
    shallow = _git(["fetch", "-q", "--depth", "1", "origin", "--", ref], folder)
    if shallow.returncode == 0:
        _checked(["checkout", "-q", "FETCH_HEAD", "--"], folder, source)
    elif source.ref:  # a commit id, or a server that cannot fetch shallowly
        _checked(["fetch", "-q", "--tags", "origin"], folder, source)
        for candidate in (source.ref, f"origin/{source.ref}"):
            found = _git(["rev-parse", "-q", "--verify", f"{candidate}^{{commit}}"], folder)
            if found.returncode == 0:
                _checked(["checkout", "-q", found.stdout.strip(), "--"], folder, source)
                break
        else:
            raise BuildError(f"cannot fetch the git context {source.url}: no ref {source.ref}")
    else:
        _checked(["fetch", "-q", "origin", "HEAD"], folder, source)
        _checked(["checkout", "-q", "FETCH_HEAD", "--"], folder, source)
    if os.path.exists(os.path.join(folder, ".gitmodules")):
        _checked(["submodule", "update", "-q", "--init", "--recursive", "--depth", "1"],
                 folder, source)  # fmt: skip
    return _context_in(folder, source)


def _context_in(folder: str, source: GitSource) -> str:
    top = os.path.realpath(folder)
    context = os.path.realpath(os.path.join(top, source.subdir))
    if context != top and not context.startswith(top + os.sep):
        raise BuildError(f"the git context's folder {source.subdir!r} is outside the repository")
    if not os.path.isdir(context):
        raise BuildError(f"the git context has no folder {source.subdir!r}")
    return context
