"""What every command shares: the one-line argument parser and whole-number options.

Imports only the standard library: ``--help`` and argument errors must answer at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["Parser", "int_at_least"]


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (argparse prints the whole usage first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= low, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small; it must be >= {low}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse
