"""What the runbook notebooks show, one module per runbook: evidence laid out as table rows and
lines of text, so that a notebook cell is a call and holds no logic of its own.

A view never judges (the checks do) and never asks a system anything (gather does). A piece of
evidence that could not be gathered becomes one row, or one line, that says why.
"""

from __future__ import annotations

from ..evidence import Evidence


def or_reason(rows: list[dict], ev: Evidence, piece: str, column: str, empty: str = "none") -> list[dict]:
    """``rows``, or when there are none, one row whose ``column`` says why: the reason ``piece``
    could not be gathered, else ``empty``."""
    return rows or [{column: ev.error(piece) or empty}]
