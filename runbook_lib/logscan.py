"""Streaming log classification with bounded memory.

A :class:`LogScan` is fed lines (or whole chunks) as they arrive over SSH and keeps, per category,
a count and the first and last few matching lines, plus a short tail and counts of error messages.
It never holds the log: memory is bounded by ``keep`` and ``tail`` whatever the log's size.

Zap JSON lines (the provider's format) are shown compactly: time, level, message, then the fields
that matter (``error``, ``step``, ``id``); other lines are shown as they are.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import redact

_MAX_SHOWN = 400  # characters of one line kept as evidence
_MSG = re.compile(r'"msg":"((?:[^"\\]|\\.)*)"')


def _line_from(block: str, begin: int) -> str:
    end = block.find("\n", begin)
    return block[begin:] if end < 0 else block[begin:end]


def _line_starts(block: str, needles: list[str], start: int) -> list[int]:
    """Offsets, in order, of the lines at or after ``start`` (a line start) containing any needle."""
    found = set()
    for needle in needles:
        at = block.find(needle, start)
        while at >= 0:
            found.add(block.rfind("\n", 0, at) + 1)
            end = block.find("\n", at)
            if end < 0:
                break
            at = block.find(needle, end)
    return sorted(found)


@dataclass
class _Hits:
    count: int = 0
    first: list[str] = field(default_factory=list)
    last: deque = field(default_factory=lambda: deque(maxlen=3))


class LogScan:
    """Classify lines by the first category regex that matches.

    ``categories`` maps a name to a regex; order matters (first match wins). ``triggers``, when
    given, are plain substrings of which every line a category matches contains at least one: the
    block is then searched for those with ``str.find``, far faster than a regex alternation. A
    line containing ``reset`` (a plain substring, e.g. the program's start-up message) starts a
    new epoch: the counts so far are dropped, so a verdict speaks about the process that runs
    now, not one that was restarted long ago.
    """

    def __init__(self, categories: dict[str, str], *, triggers: list[str] | None = None, keep: int = 3,
                 tail: int = 30, reset: str | None = None):
        self._cats = [(name, re.compile(rx)) for name, rx in categories.items()]
        self._any = re.compile("|".join(f"(?:{rx})" for rx in categories.values())) if categories else None
        self._hits = {name: _Hits(last=deque(maxlen=keep)) for name in categories}
        self._keep = keep
        self.lines = 0
        self.bytes = 0
        self.replaced = 0
        self.tail: deque[str] = deque(maxlen=tail)
        self.errors = Counter()  # message of error-level lines -> count
        self._triggers = list(triggers) if triggers is not None else None
        self._reset = reset or None
        self.restarts = 0  # how many times the reset line was seen
        self._redactor = redact.default()

    def feed(self, stream: str, line: str) -> None:
        """One line without its newline (``stream`` is ``stdout`` or ``stderr``)."""
        self.feed_lines(stream, [line])

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        """A batch of lines, scanned as one block: the block is searched at C speed (``str.find``
        for the triggers, or the categories' regex) and only the lines found are looked at one by
        one. Same result as feeding the lines one at a time."""
        if not lines:
            return
        block = "\n".join(lines)
        self.lines += len(lines)
        self.bytes += len(block) + 1
        self.tail.extend(lines[-self.tail.maxlen:])
        for begin in _line_starts(block, ['"level":"error"', "Error:"], 0):
            line = _line_from(block, begin)
            if line.startswith("Error:") or '"level":"error"' in line:
                self._count_error(line)
        start = 0
        if self._reset is not None:
            at = block.rfind(self._reset)
            if at >= 0:
                self.restarts += block.count(self._reset)
                self._hits = {name: _Hits(last=deque(maxlen=self._keep)) for name in self._hits}
                end = block.find("\n", at)
                start = len(block) if end < 0 else end + 1
        if self._triggers is not None:
            for begin in _line_starts(block, self._triggers, start):
                self._classify(_line_from(block, begin))
            return
        pos = start
        while self._any is not None and (m := self._any.search(block, pos)) is not None:
            begin = block.rfind("\n", 0, m.start()) + 1
            line = _line_from(block, begin)
            self._classify(line)
            pos = begin + len(line) + 1

    def _classify(self, line: str) -> None:
        for name, rx in self._cats:
            if rx.search(line):
                hits = self._hits[name]
                hits.count += 1
                shown = self.render(line)
                if len(hits.first) < self._keep:
                    hits.first.append(shown)
                else:
                    hits.last.append(shown)
                return

    def _count_error(self, line: str) -> None:
        if line.startswith("Error:"):
            self.errors[line[:120]] += 1
            return
        m = _MSG.search(line)
        if m:
            self.errors[m.group(1)] += 1

    def count(self, name: str) -> int:
        return self._hits[name].count

    def examples(self, name: str) -> list[str]:
        h = self._hits[name]
        return [*h.first, *h.last]

    def render(self, line: str) -> str:
        """A compact, redacted form of one log line."""
        shown = line
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "msg" in obj:
                ts = obj.get("ts")
                when = (
                    datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    if isinstance(ts, (int, float)) else str(ts or "")
                )
                extra = " ".join(
                    f"{k}={obj[k]}" for k in ("id", "step", "error") if k in obj and obj[k] not in ("", None)
                )
                shown = f"{when} {obj.get('level', '?')} {obj['msg']}" + (f" {extra}" if extra else "")
        shown = self._redactor.text(shown)
        return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 1] + "…"

    def summary(self) -> dict:
        return {
            "lines": self.lines,
            "bytes": self.bytes,
            "replaced": self.replaced,
            "restarts": self.restarts,
            "categories": {n: {"count": h.count, "examples": self.examples(n)} for n, h in self._hits.items()},
            "errors": dict(self.errors.most_common(20)),
            "tail": [self.render(line) for line in self.tail],
        }
