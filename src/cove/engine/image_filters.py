"""Which images a listing or a prune takes: Docker's image filters.

    dangling=true|false      images without / with a name
    label=KEY, KEY=VALUE     the image config's labels (all given must match)
    label!=KEY[=VALUE]       none of these may match
    reference=PATTERN        a name matches the glob (path.Match's: `*` stops at `/`),
                             as `name:tag` or as the bare name
    before=IMAGE, since=IMAGE  created before / after that image
    until=TIMESTAMP          (prune) created before that time (a unix time, given here)

Values of one key are OR-ed (dangling, reference, before, since), except label's (AND).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cove.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.images import Removed
    from cove.image.reference import Reference
    from cove.image.store import ImageStore
    from cove.image.store_index import ImageRecord

LIST_FILTERS = ("dangling", "label", "label!", "before", "since", "reference", "until")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")


@dataclass(frozen=True)
class ImageSummary:
    """One image of a listing: `created` is a unix time."""

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    created: float
    size: int
    labels: dict[str, str] = field(default_factory=dict)


def check_filters(filters: Mapping[str, Sequence[str]], allowed: Sequence[str]) -> None:
    for key, values in filters.items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "dangling":
            for value in values:
                if value.lower() not in ("true", "1", "false", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={value}'")


def summaries(
    root: str, filters: Mapping[str, Sequence[str]] | None = None, until: float | None = None
) -> list[ImageSummary]:
    """The images (newest first) that `filters` take; `until` is the until filter as a
    unix time."""
    from cove.image.store import ImageStore

    filters = {key: list(values) for key, values in (filters or {}).items() if values}
    check_filters(filters, LIST_FILTERS)
    found = []
    with ImageStore(os.path.join(root, "images")) as store:
        bounds = _bounds(store, filters)
        for record in store.images():
            created = created_time(record)
            if not _dangling_matches(record, filters.get("dangling")):
                continue
            if until is not None and created >= until:
                continue
            if not _in_bounds(created, bounds):
                continue
            names = list(record.names)
            patterns = filters.get("reference")
            if patterns:
                # as dockerd: the image under the names that match, and only those
                names = [n for n in names if any(_name_matches(p, n) for p in patterns)]
                if not names:
                    continue
            labels = _labels(store, record)
            if not labels_match(labels, filters.get("label", []), filters.get("label!", [])):
                continue
            found.append(
                ImageSummary(
                    id=str(record.id),
                    repo_tags=[name.familiar() for name in names],
                    repo_digests=_digests(record, names),
                    created=created,
                    size=record.size,
                    labels=labels,
                )
            )
    return found


def prune(
    root: str, filters: Mapping[str, Sequence[str]] | None = None, until: float | None = None
) -> tuple[list[Removed], int]:
    """`docker image prune`: dangling images no container uses, or with dangling=false
    every unused image; label, label! and `until` (a unix time) narrow it."""
    from cove.engine.images import ImageService

    filters = {key: list(values) for key, values in (filters or {}).items() if values}
    check_filters(filters, PRUNE_FILTERS)
    dangling = filters.get("dangling", ["true"])
    all_unused = not any(value.lower() in ("true", "1") for value in dangling)
    wanted = filters.get("label", [])
    unwanted = filters.get("label!", [])

    def select(store: ImageStore, record: ImageRecord) -> bool:
        if until is not None and created_time(record) >= until:
            return False
        if wanted or unwanted:
            return labels_match(_labels(store, record), wanted, unwanted)
        return True

    return ImageService(root).prune(all_unused, select)


def created_time(record: ImageRecord) -> float:
    moment = record.created_time()
    return moment.timestamp() if moment is not None else float(record.added)


def labels_match(labels: Mapping[str, str], wanted: Sequence[str], unwanted: Sequence[str]) -> bool:
    def one(text: str) -> bool:
        key, eq, value = text.partition("=")
        return key in labels and (not eq or labels[key] == value)

    return all(one(text) for text in wanted) and not any(one(text) for text in unwanted)


def path_match(pattern: str, text: str) -> bool:
    """Go's path.Match: `*` and `?` never match `/`, `[...]` classes (`^` negates)."""
    return re.fullmatch(_glob_regex(pattern), text) is not None


def _glob_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise InvalidArgument(f"invalid reference filter {pattern!r}: syntax error")
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            escaped = re.sub(r"([\\\]\[^])", r"\\\1", body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _name_matches(pattern: str, name: Reference) -> bool:
    return path_match(pattern, name.familiar()) or path_match(pattern, name.familiar_name())


def _digests(record: ImageRecord, names: list[Reference]) -> list[str]:
    wanted = {name.familiar_name() for name in names}
    return [d for d in record.repo_digests() if d.split("@", 1)[0] in wanted]


def _dangling_matches(record: ImageRecord, values: Sequence[str] | None) -> bool:
    if not values:
        return True
    wanted = {value.lower() in ("true", "1") for value in values}
    return (not record.names) in wanted


def _bounds(store: ImageStore, filters: Mapping[str, Sequence[str]]) -> tuple[float, float]:
    """(created after, created before) from since= and before= (the images they name)."""
    low, high = float("-inf"), float("inf")
    for term in filters.get("since", []):
        low = max(low, created_time(store.resolve(term)))
    for term in filters.get("before", []):
        high = min(high, created_time(store.resolve(term)))
    return low, high


def _in_bounds(created: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] < created < bounds[1]


def _labels(store: ImageStore, record: ImageRecord) -> dict[str, str]:
    return dict(store.config(record).config.labels)
