"""Output as docker prints it: tables, human sizes and ages, --format templates."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cove.errors import CoveError

_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([\w.]*)\s*\}\}")


def human_size(size: float) -> str:
    """Decimal units with 3 significant digits, as docker: 1.24MB, 4.26kB, 512B."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{size:.3g}PB"


def human_since(created: str, now: float | None = None) -> str:
    """ "2 weeks ago", "About an hour ago", "Less than a second ago"."""
    moment = parse_time(created)
    if moment is None:
        return "N/A"
    seconds = (time.time() if now is None else now) - moment
    return _duration(seconds) + " ago"


def parse_time(text: str) -> float | None:
    if not text:
        return None
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(cleaned).timestamp()
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds" if seconds >= 2 else "1 second"
    minutes = seconds / 60
    if minutes < 60:
        return "About a minute" if int(minutes) == 1 else f"{int(minutes)} minutes"
    hours = minutes / 60
    if hours < 48:
        return "About an hour" if int(hours) == 1 else f"{int(hours)} hours"
    days = hours / 24
    if days < 14:
        return f"{int(days)} days"
    if days < 60:
        return f"{int(days / 7)} weeks"
    if days < 365 * 2:
        return f"{int(days / 30)} months"
    return f"{int(days / 365)} years"


def render(template: str, fields: dict[str, object]) -> str:
    """Go-template-like: {{.Field}}, {{.Field.Sub}}, {{json .Field}}, {{json .}}, and \\t
    \\n escapes."""
    if template == "json":
        return json.dumps(fields)

    def field(match: re.Match[str]) -> str:
        as_json, name = match.group(1), match.group(2)
        value: object = fields
        for part in name.split(".") if name else []:
            value = value.get(part, "") if isinstance(value, dict) else ""
        if as_json:
            return json.dumps(value)
        if isinstance(value, bool):
            return "true" if value else "false"  # Go prints booleans in lower case
        return "<no value>" if value is None else str(value)

    return _FIELD.sub(field, template.replace("\\t", "\t").replace("\\n", "\n"))


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Columns padded as docker's tabwriter: at least three spaces between them."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        sys.stdout.write("   ".join(cells).rstrip() + "\n")


def print_documents(terms: list[str], inspect: Callable[[str], Any], template: str) -> int:
    """What every `inspect` verb prints: the documents of `terms` as one JSON list, or each
    through `template`; a term that fails is one "Error:" line and exit status 1."""
    documents = []
    status = 0
    for term in terms:
        try:
            documents.append(inspect(term))
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = 1
    if template:
        for document in documents:
            sys.stdout.write(render(template, document) + "\n")
    else:
        sys.stdout.write(json.dumps(documents, indent=4) + "\n")
    return status
