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
_ERROR_LINE = re.compile(r'^Error:|"level":"error"', re.MULTILINE)  # zap error lines and cobra's exit line
_MSG = re.compile(r'"msg":"((?:[^"\\]|\\.)*)"')


def _line_at(block: str, pos: int) -> str:
    begin = block.rfind("\n", 0, pos) + 1
    end = block.find("\n", pos)
    return block[begin:] if end < 0 else block[begin:end]


@dataclass
class _Hits:
    count: int = 0
    first: list[str] = field(default_factory=list)
    last: deque = field(default_factory=lambda: deque(maxlen=3))


class LogScan:
    """Classify lines by the first category regex that matches.

    ``categories`` maps a name to a regex; order matters (first match wins). A line matching
    ``reset`` (e.g. the program's start-up line) starts a new epoch: the counts so far are dropped,
    so a verdict speaks about the process that runs now, not one that was restarted long ago.
    """

    def __init__(self, categories: dict[str, str], *, keep: int = 3, tail: int = 30, reset: str | None = None):
        self._cats = [(name, re.compile(rx)) for name, rx in categories.items()]
        self._any = re.compile("|".join(f"(?:{rx})" for rx in categories.values())) if categories else None
        self._hits = {name: _Hits(last=deque(maxlen=keep)) for name in categories}
        self._keep = keep
        self.lines = 0
        self.bytes = 0
        self.replaced = 0
        self.tail: deque[str] = deque(maxlen=tail)
        self.errors = Counter()  # message of error-level lines -> count
        self._reset = re.compile(reset) if reset else None
        self.restarts = 0  # how many times the reset line was seen
        self._redactor = redact.default()

    def feed(self, stream: str, line: str) -> None:
        """One line without its newline (``stream`` is ``stdout`` or ``stderr``)."""
        self.feed_lines(stream, [line])

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        """A batch of lines, scanned as one block: the regexes run over the block at C speed and
        only the lines they hit are looked at one by one. Same result as feeding line by line."""
        if not lines:
            return
        block = "\n".join(lines)
        self.lines += len(lines)
        self.bytes += len(block) + 1
        self.tail.extend(lines[-self.tail.maxlen:])
        for m in _ERROR_LINE.finditer(block):
            self._count_error(_line_at(block, m.start()))
        start = 0
        if self._reset is not None:
            last = None
            for last in self._reset.finditer(block):
                self.restarts += 1
            if last is not None:
                self._hits = {name: _Hits(last=deque(maxlen=self._keep)) for name in self._hits}
                end = block.find("\n", last.end())
                start = len(block) if end < 0 else end + 1
        if self._any is None:
            return
        pos = start
        while True:
            m = self._any.search(block, pos)
            if m is None:
                return
            begin = block.rfind("\n", 0, m.start()) + 1
            end = block.find("\n", m.end())
            end = len(block) if end < 0 else end
            self._classify(block[begin:end])
            pos = end + 1

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
