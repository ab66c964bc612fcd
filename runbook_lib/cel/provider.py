"""The provider's ``pickStorage`` loop for one node, and why each storage matched or not."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import go_quote
from .selector import EvalError, Selector, Term, compile_selector

NO_MATCH = "failed to pick the disk: no matches for the condition {quoted}"


def no_match_error(text: str) -> str:
    return NO_MATCH.format(quoted=go_quote(text))


@dataclass
class Row:
    """One storage of one node, as the provider's loop sees it, and what the selector made of it."""

    storage: str
    storage_type: str
    available: int
    matched: bool | None = None  # None: not evaluated (the selector does not compile) or failed
    error: str = ""
    first: bool = False
    extra: dict = field(default_factory=dict)  # content, enabled, active, shared, total as the API gave them


@dataclass
class Pick:
    """What the provider does on one node: the storage it takes, or the error it fails with."""

    node: str
    selector: str
    rows: list[Row]
    winner: str | None = None
    error: str = ""

    @property
    def matched(self) -> list[str]:
        return [r.storage for r in self.rows if r.matched]

    @property
    def shadowed(self) -> list[str]:
        return [r.storage for r in self.rows if r.matched and not r.first]


def storage_values(node: str, row: dict) -> dict[str, Any]:
    """The CEL variables the provider binds for one ``/nodes/{node}/storage`` entry."""
    return {"name": str(row.get("storage", "")), "node": node, "storageType": str(row.get("type", "")),
            "availableSpace": int(row.get("avail") or 0)}


def pick(selector: Selector, node: str, storages: list[dict]) -> Pick:
    """The provider's ``pickStorage`` for one node, plus a verdict on every storage after the winner.

    The provider stops at the first match (or at the first evaluation error); the rows after that
    are still evaluated here so the operator can see what the selector would shadow.
    """
    rows = [Row(str(s.get("storage", "")), str(s.get("type", "")), int(s.get("avail") or 0),
                extra={k: s.get(k) for k in ("content", "enabled", "active", "shared", "total") if k in s})
            for s in storages]
    result = Pick(node, selector.text, rows)
    if not rows:  # the loop never runs, so not even a compile error surfaces
        result.error = no_match_error(selector.text)
        return result
    if not selector.ok:
        result.error = selector.error
        return result
    for row, raw in zip(rows, storages):
        try:
            row.matched = selector.evaluate(storage_values(node, raw))
        except EvalError as exc:
            row.error = str(exc)
        if result.winner is None and not result.error:
            if row.error:
                result.error = row.error
            elif row.matched:
                result.winner = row.storage
                row.first = True
    if result.winner is None and not result.error:
        result.error = no_match_error(selector.text)
    return result


def explain(selector: Selector, node: str, raw: dict) -> str:
    """Why the selector matches one storage or not, term by term of its top-level chain."""
    if not selector.ok:
        return "the selector does not compile"
    values = storage_values(node, raw)
    try:
        whole = selector.evaluate(values)
    except EvalError as exc:
        return f"evaluation fails: {exc}"
    parts = []
    for term, sub in selector.terms():
        try:
            value = sub.evaluate(values)
        except EvalError as exc:
            parts.append((term, None, str(exc)))
            continue
        parts.append((term, value, ""))
    chain = selector.chain
    if chain == "&&":
        deciding = [p for p in parts if p[1] is not True] if not whole else parts
    elif chain == "||":
        deciding = [p for p in parts if p[1] is True][:1] if whole else parts
    else:
        deciding = parts
    shown = "; ".join(_term_text(term, value, err, values) for term, value, err in deciding)
    return f"{'matches' if whole else 'no match'}: {shown}"


def _term_text(term: Term, value: bool | None, err: str, values: dict[str, Any]) -> str:
    result = f"fails ({err})" if value is None else str(value).lower()
    reads = ", ".join(f"{v} = {_show(values[v])}" for v in term.variables)
    return f"{term.text} is {result}" + (f" ({reads})" if reads else "")


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}u ({value / 1024 ** 3:.1f} GiB)"
    return go_quote(str(value))


_NAME_EQUALS = re.compile(r'^\s*name\s*==\s*"([^"\\]*)"\s*$')


def first_match(selector: str, node: str, storages: list[dict]) -> tuple[dict | None, str]:
    """The storage row the provider takes on ``node`` and ``""``, or ``None`` and the provider's error
    (:func:`no_match_error` when nothing matches, the compile or evaluation error otherwise)."""
    m = _NAME_EQUALS.match(selector)
    if m:  # the guide's recommended form, decided without building CEL's parser
        row = next((s for s in storages if str(s.get("storage", "")) == m.group(1)), None)
        return row, "" if row is not None else no_match_error(selector)
    result = pick(compile_selector(selector), node, storages)
    if result.winner is None:
        return None, result.error
    return next(s for s in storages if str(s.get("storage", "")) == result.winner), ""
