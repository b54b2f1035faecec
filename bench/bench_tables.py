"""Tables, ratios and verdicts shared by the engine benchmarks (`engine_bench.py`,
`network_bench.py`, `api_bench.py`): per-sample statistics with a maximum, the statistics
table, the summary line of a scenario (cove, the other engine, ratio, target, verdict)
and the closing list of problems.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchlib import ratio, summarize


def stats(samples_ns: Sequence[int]) -> dict[str, float] | None:
    """``benchlib.summarize`` plus the maximum, in ms; None without samples."""
    if not samples_ns:
        return None
    st = summarize(samples_ns)
    st["max"] = max(samples_ns) / 1e6
    return st


def in_ms(samples: dict[str, list[int]]) -> dict[str, list[float]]:
    return {name: [ns / 1e6 for ns in values] for name, values in samples.items()}


def target_verdict(value: float | None, limit: float, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= limit if at_least else value <= limit) else "NOT met"


def cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def stats_rows(
    title: str,
    rows: Sequence[tuple[str, dict[str, float] | None, str | None]],
    head: str = "engine",
    width: int = 34,
    column: int = 10,
) -> None:
    """``title``, then median, p90, min, max and n (ms) of each row; a row without
    statistics shows its note (or "not measured")."""
    header = f"{head:<{width}}"
    header += "".join(f"{name:>{column}}" for name in ("median", "p90", "min", "max"))
    header += f"{'n':>5}   (ms)"
    print(f"\n{title}")
    print(header)
    print("-" * len(header))
    for label, st, note in rows:
        if st is None:
            print(f"{label:<{width}}{note or 'not measured'}")
        else:
            line = f"{label:<{width}}"
            line += "".join(f"{st[k]:>{column}.1f}" for k in ("median", "p90", "min", "max"))
            print(f"{line}{int(st['n']):>5}")


def figures_table(
    metric: str,
    cove: float | None,
    podman: float | None,
    fmt: str,
    target: str,
    limit: float,
    at_least: bool = False,
    value: float | None = None,
) -> tuple[float | None, str]:
    """The summary line of a scenario: cove, podman, ratio, target, verdict.  ``value``
    is what the target is checked against (default: the ratio cove / podman)."""
    r = ratio(cove, podman)
    checked = r if value is None else value
    v = target_verdict(checked, limit, at_least)
    header = f"{'':<34}{'cove':>11}{'podman':>11}{'ratio':>9}   {'target':<26}"
    print(header + "verdict")
    print("-" * (len(header) + 8))
    print(
        f"{metric:<34}{cell(cove, fmt):>11}{cell(podman, fmt):>11}"
        f"{cell(r, '.2f') + ('x' if r is not None else ''):>9}   {target:<26}{v}"
    )
    return checked, v


def print_problems(problems: Sequence[str]) -> None:
    if problems:
        print("\nproblems seen:")
        for text in problems:
            print(f"  {text}")
