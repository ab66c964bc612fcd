"""Label and field selectors as the kube-apiserver parses them (for the twin's list calls).

Label selectors: comma-separated requirements ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``,
``k notin (a,b)``, ``k`` (exists) and ``!k`` (does not exist). Field selectors: ``path=v``,
``path==v`` and ``path!=v`` over the fields each resource supports; any other field is refused
with the apiserver's ``field label not supported`` error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# fields each kind accepts in a fieldSelector (metadata.name and metadata.namespace always work)
FIELD_LABELS: dict[str, set[str]] = {
    "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"},
    "Pod": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
    "Namespace": {"status.phase"},
}


class SelectorError(ValueError):
    """The selector does not parse, or names a field the resource does not support."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


_SET = re.compile(r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_labels(selector: str | None) -> list[Requirement]:
    reqs: list[Requirement] = []
    for part in _split(selector or ""):
        m = _EQ.match(part)
        if m:
            reqs.append(Requirement(m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
            continue
        m = _SET.match(part)
        if not m or (m.group(1) and m.group(3)):
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        if m.group(3):
            values = tuple(v.strip() for v in m.group(4).split(",") if v.strip())
            reqs.append(Requirement(m.group(2), m.group(3), values))
        else:
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    return all(r.matches(labels or {}) for r in reqs)


def parse_fields(selector: str | None, kind: str) -> Callable[[dict], bool]:
    """A predicate over objects of ``kind``; :class:`SelectorError` for an unsupported field."""
    terms: list[tuple[str, bool, str]] = []
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(kind, set())
    for part in _split(selector or ""):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: {part.strip()!r}; can't understand {part.strip()!r}")
        if m.group(1) not in allowed:
            raise SelectorError(f'field label not supported: {m.group(1)}')
        terms.append((m.group(1), m.group(2) != "!=", m.group(3)))

    def predicate(obj: dict) -> bool:
        return all((field_value(obj, path) == want) == equal for path, equal, want in terms)

    return predicate


def field_value(obj: dict, path: str) -> str:
    """A field as the apiserver compares it: a string (``source`` is ``source.component``)."""
    if path == "source":
        path = "source.component"
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)
