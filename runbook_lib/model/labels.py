"""Omni label queries, as a MachineClass's ``matchlabels`` writes them.

A query is terms joined by commas, all of which must hold: ``key`` (exists), ``!key``, ``k=v`` /
``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``, and numeric ``k<n``, ``k<=n``, ``k>n``, ``k>=n``.
"""

from __future__ import annotations

import re

_TERM = re.compile(r"^\s*(?P<neg>!)?\s*(?P<key>[^\s=!<>(),]+)\s*"
                   r"(?:(?P<op>==|!=|=|>=|<=|>|<|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[^\s,]*))?\s*$")


def parse_label_query(text: str) -> list[tuple[str, str, list[str], bool]]:
    """One Omni label query (``key``, ``!key``, ``k=v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``,
    ``k<n`` ...), terms joined by commas, as (key, op, values, negated) terms."""
    terms, depth, current = [], 0, ""
    parts = []
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for part in parts:
        if not part.strip():
            continue
        m = _TERM.match(part)
        if not m:
            raise ValueError(f"cannot read the label query term {part.strip()!r}")
        op = (m.group("op") or "").strip()
        value = m.group("value") or ""
        values = [v.strip() for v in value.strip("()").split(",") if v.strip()] if value.startswith("(") else [value]
        if not op:
            terms.append((m.group("key"), "exists", [], bool(m.group("neg"))))
        elif op in ("=", "=="):
            terms.append((m.group("key"), "in", values, False))
        elif op == "!=":
            terms.append((m.group("key"), "in", values, True))
        elif op in ("in", "notin"):
            terms.append((m.group("key"), "in", values, op == "notin"))
        else:
            terms.append((m.group("key"), op, values, False))
    return terms


def label_query_matches(labels: dict[str, str], terms) -> bool:
    for key, op, values, negated in terms:
        have = labels.get(key)
        if op == "exists":
            hit = key in labels
        elif op == "in":
            hit = key in labels and (have or "") in values
        else:
            try:
                a, b = float(have or ""), float(values[0])
                hit = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            except (ValueError, IndexError):
                hit = False
        if hit == negated:
            return False
    return True
