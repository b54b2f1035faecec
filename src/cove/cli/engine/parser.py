"""argparse with docker's manners: a usage error is one line and exit status 125."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    pass


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raises instead
        raise UsageError(f"{self.prog}: {message}")
