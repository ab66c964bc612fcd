"""Go's standard text formatting, as the programs the lab twin imitates (docker, omnictl) print it.

``encoding/json``'s escaping, ``strconv.Quote`` and ``strconv.FormatFloat``, ``fmt.Sprint`` of
maps and slices, and ``text/tabwriter``'s column layout. Only the standard library's lightest
modules are imported here: the omnictl stand-in loads this module on every call.
"""

from __future__ import annotations

import json
from typing import Any

_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def go_json(obj: Any, indent: int | None = None) -> str:
    """encoding/json output: HTML characters escaped, non-ASCII kept, MarshalIndent's spacing."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent,
                      separators=(",", ":") if indent is None else (",", ": "))
    for ch, esc in _JSON_ESCAPES:
        text = text.replace(ch, esc)
    return text


def go_quote(s: str) -> str:
    """strconv.Quote for the characters container commands contain."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def format_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64): the shortest digits, exponent form outside [1e-4, 1e6)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    from decimal import Decimal  # only reached for floats, which the lab's state rarely holds

    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp10 = len(text) + exponent - 1
    minus = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return minus + format(abs(Decimal(repr(f))).normalize(), "f")


def go_sprint(value: Any) -> str:
    """fmt.Sprint of a value decoded from JSON or YAML: ``map[k:v]`` (keys sorted), ``[a b]``, ``<nil>``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def tabwriter(rows: list[list[str]], minwidth: int = 0, padding: int = 3) -> str:
    """text/tabwriter: each column as wide as its widest cell plus ``padding`` (at least ``minwidth``);
    the last cell of a line is never padded."""
    ncols = max((len(r) for r in rows), default=0)
    widths = [max(minwidth, max((len(r[c]) for r in rows if c < len(r) - 1), default=0) + padding)
              for c in range(ncols)]
    return "".join("".join(cell.ljust(widths[c]) for c, cell in enumerate(r[:-1])) + "".join(r[-1:]) + "\n"
                   for r in rows)
