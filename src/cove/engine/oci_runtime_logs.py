"""Reading what a runtime said (`cove.engine.oci_runtime`): its error message from a
`--log` file (JSON, logfmt or plain text lines) and its captured output.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import IO

_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})


# --- reading the runtime's error -----------------------------------------------------------

_LOGFMT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def _logfmt(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in _LOGFMT_FIELD.findall(line):
        if value.startswith('"'):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        fields[key] = value
    return fields


def error_from_log(text: str) -> str:
    """The runtime's error message from a `--log` file's content ("" when it holds none).

    JSON lines (`{"level": "error", "msg": ...}`) and logfmt lines (`level=error msg="..."`)
    count only at error level and above; other lines (plain text logs) all count. The last
    error wins: runtimes write the outermost, most complete message last.
    """
    errors: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                if str(entry.get("level", "error")).lower() in _ERROR_LEVELS:
                    errors.append(str(entry.get("msg", "")).strip() or line)
                continue
        fields = _logfmt(line)
        if "level" in fields and "msg" in fields:
            if fields["level"].lower() in _ERROR_LEVELS:
                errors.append(fields["msg"].strip())
            continue
        errors.append(line)
    return errors[-1] if errors else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _read_back(f: IO[bytes]) -> str:
    f.flush()
    f.seek(0)
    return f.read().decode(errors="replace")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
