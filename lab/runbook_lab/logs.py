"""A container's log, rendered from the lab model the way the real process printed it.

The model describes a log as a short list of *entries*, oldest first. An entry is either a zap
line (``level``, ``caller``, ``msg``, ``context``, ``fields``) rendered the way
``zap.NewProductionConfig()`` writes it, or a ``raw`` line kept as is (cobra's ``Error: ...``,
another program's output). ``repeat: N`` stands for N copies spaced ``every`` seconds (default 60)
and ending ``ago`` seconds before the twin started, so one entry can describe a crash loop that
logged two million lines.

:class:`ContainerLog` is a lazy sequence over the expanded lines: its length, the line at an index
and the index of a point in time are computed, never materialised, so ``docker logs --tail 50`` of
a ten-million-line log costs fifty renders. Timestamps never go backwards: a copy that would come
before the previous entry's last line is moved up to it.
"""

from __future__ import annotations

import bisect
import json
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterator, Sequence

NS = 1_000_000_000
DEFAULT_EVERY = 60
STACKTRACE_LEVELS = {"error", "dpanic", "panic", "fatal"}  # zap production: stack traces from error up

# the controller context cosi-runtime adds to every line a controller logs
CONTROLLER_CONTEXT = {
    "controller": "proxmox.ProvisionController",
    "namespace": "infra-provider",
    "type": "MachineRequests.omni.sidero.dev",
}

# first frames of a stack trace, by the caller's file (what the provider's real traces start with)
_FRAMES = {
    "controllers/provision.go": (
        "github.com/siderolabs/omni/client/pkg/infra/controllers.(*ProvisionController[...]).reconcileRunning",
        "/go/pkg/mod/github.com/siderolabs/omni/client@v1.3.0/pkg/infra/controllers/provision.go",
    ),
    "qruntime/qruntime.go": (
        "github.com/cosi-project/runtime/pkg/controller/runtime/internal/qruntime.(*Adapter).runOnce",
        "/go/pkg/mod/github.com/cosi-project/runtime@v1.10.1/pkg/controller/runtime/internal/qruntime/qruntime.go",
    ),
    "rruntime/run.go": (
        "github.com/cosi-project/runtime/pkg/controller/runtime/internal/rruntime.(*Adapter).Run",
        "/go/pkg/mod/github.com/cosi-project/runtime@v1.10.1/pkg/controller/runtime/internal/rruntime/run.go",
    ),
}
_OUTER_FRAME = (
    "github.com/cosi-project/runtime/pkg/controller/runtime/internal/qruntime.(*Adapter).Run.func1\n"
    "\t/go/pkg/mod/github.com/cosi-project/runtime@v1.10.1/pkg/controller/runtime/internal/qruntime/qruntime.go:142"
)


def to_ns(seconds: float) -> int:
    """Seconds to integer nanoseconds, exact to the microsecond (a float cannot hold more)."""
    return int(round(float(seconds) * 1_000_000)) * 1000


@dataclass(frozen=True)
class LogLine:
    ts_ns: int  # when the line was written, Unix nanoseconds
    stream: str  # "stdout" | "stderr"
    text: str  # the line, without its newline


# --- zap's JSON encoding ---------------------------------------------------------------------

_ZAP_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def zap_string(s: str) -> str:
    """A JSON string the way zap's encoder writes it (no HTML escaping, ``\\u00XX`` for controls)."""
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ZAP_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), s) + '"'


def go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'f', -1, 64): the shortest decimal that round-trips, never exponent form."""
    if f != f or f in (float("inf"), float("-inf")):
        return '"NaN"' if f != f else ('"+Inf"' if f > 0 else '"-Inf"')
    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def zap_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if v is None:
        return "null"
    if isinstance(v, str):
        return zap_string(v)
    # zap.Any of a map or slice goes through encoding/json, which escapes <, > and &
    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def stacktrace(caller: str) -> str:
    """A short Go stack trace whose first frame is the caller's."""
    file, _, line = (caller or "main.go:1").rpartition(":")
    func, path = _FRAMES.get(file, (f"main.{file.rsplit('/', 1)[-1].removesuffix('.go')}", f"/src/{file}"))
    return f"{func}\n\t{path}:{line}\n{_OUTER_FRAME}"


def _context_fields(context: dict | None) -> dict:
    if context is None:
        return {}
    fields = dict(CONTROLLER_CONTEXT)
    if "id" in context:
        fields["id"] = context["id"]
    fields["job"] = "reconcile"
    fields.update(context)
    return fields


def render_zap(entry: dict) -> tuple[str, str]:
    """The text before and after the ``ts`` value of a zap entry's JSON line."""
    level = str(entry.get("level", "info"))
    head = '{"level":' + zap_string(level) + ',"ts":'
    parts = []
    if entry.get("caller"):
        parts.append('"caller":' + zap_string(str(entry["caller"])))
    parts.append('"msg":' + zap_string(str(entry.get("msg", ""))))
    for fields in (_context_fields(entry.get("context")), entry.get("fields") or {}):
        for key, value in fields.items():
            parts.append(zap_string(str(key)) + ":" + zap_value(value))
    if "stacktrace" in entry or level in STACKTRACE_LEVELS:
        trace = entry.get("stacktrace") or stacktrace(str(entry.get("caller", "")))
        parts.append('"stacktrace":' + zap_string(trace))
    return head, "," + ",".join(parts) + "}"


# --- the lazy log ----------------------------------------------------------------------------


class _Entry:
    """One model entry expanded to ``count`` copies; rendering happens on first use."""

    __slots__ = ("spec", "count", "every_ns", "end_ns", "floor_ns", "stream", "_parts")

    def __init__(self, spec: dict, now_ns: int, floor_ns: int | None):
        self.spec = spec
        self.count = max(0, int(spec.get("repeat", 1)))
        self.every_ns = to_ns(spec.get("every", DEFAULT_EVERY))
        self.end_ns = now_ns - to_ns(spec.get("ago", 0))
        self.floor_ns = floor_ns  # the previous entry's last timestamp: nothing here is older
        self.stream = spec.get("stream", "stderr")
        if self.stream not in ("stdout", "stderr"):
            raise ValueError(f"log entry stream must be stdout or stderr, not {self.stream!r}")
        self._parts: tuple[str, str] | None = None

    def ts(self, k: int) -> int:
        raw = self.end_ns - (self.count - 1 - k) * self.every_ns
        return raw if self.floor_ns is None or raw > self.floor_ns else self.floor_ns

    @property
    def last_ns(self) -> int:
        return self.ts(self.count - 1)

    def first_at_or_after(self, t: int) -> int:
        """The first copy whose timestamp is >= t (``count`` when none is)."""
        if self.count == 0 or self.last_ns < t:
            return self.count
        if self.floor_ns is not None and self.floor_ns >= t:
            return 0
        if self.every_ns <= 0:
            return 0
        behind = (self.end_ns - t) // self.every_ns  # copies that may stand before the last one
        return max(0, self.count - 1 - behind)

    def text(self, ts_ns: int) -> str:
        if "raw" in self.spec:
            return str(self.spec["raw"])
        if self._parts is None:
            self._parts = render_zap(self.spec)
        head, tail = self._parts
        return head + go_float(float(ts_ns) / 1e9) + tail  # zap: float64(t.UnixNano()) / float64(time.Second)


class ContainerLog(Sequence[LogLine]):
    """The lines of one container's log, computed by index."""

    def __init__(self, entries: list[dict] | None, now: float):
        self.now_ns = to_ns(now)
        self._entries: list[_Entry] = []
        self._starts: list[int] = []  # global index of each entry's first copy
        self._lasts: list[int] = []  # each entry's last timestamp (non-decreasing)
        total, floor = 0, None
        for spec in entries or []:
            entry = _Entry(spec, self.now_ns, floor)
            if entry.count == 0:
                continue
            self._entries.append(entry)
            self._starts.append(total)
            self._lasts.append(entry.last_ns)
            total += entry.count
            floor = entry.last_ns
        self._len = total

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("log line index out of range")
        e = bisect.bisect_right(self._starts, index) - 1
        entry = self._entries[e]
        k = index - self._starts[e]
        ts = entry.ts(k)
        return LogLine(ts, entry.stream, entry.text(ts))

    def index_at(self, ts_ns: int) -> int:
        """The index of the first line written at or after ``ts_ns`` (``len`` when none was)."""
        e = bisect.bisect_left(self._lasts, ts_ns)
        if e == len(self._entries):
            return self._len
        return self._starts[e] + self._entries[e].first_at_or_after(ts_ns)

    def window(self, *, tail: int | None = None, since_ns: int | None = None,
               until_ns: int | None = None) -> range:
        """The indexes ``docker logs`` prints: the last ``tail`` lines, then those in [since, until].

        That is the json-file driver's order: the tail is taken from the whole file first.
        """
        start, stop = 0, self._len
        if tail is not None and tail >= 0:
            start = max(0, self._len - tail)
        if since_ns is not None:
            start = max(start, self.index_at(since_ns))
        if until_ns is not None:
            stop = min(stop, self.index_at(until_ns + 1))
        return range(start, max(start, stop))

    def lines(self, indexes: range | None = None) -> Iterator[LogLine]:
        """The lines at ``indexes`` in order, walking entries instead of searching for each."""
        r = indexes if indexes is not None else range(self._len)
        if not r:
            return
        index, stop = r.start, r.stop
        e = bisect.bisect_right(self._starts, index) - 1
        while index < stop:
            entry = self._entries[e]
            k = index - self._starts[e]
            end_k = min(entry.count, stop - self._starts[e])
            raw = "raw" in entry.spec
            for kk in range(k, end_k):
                ts = entry.ts(kk)
                yield LogLine(ts, entry.stream, entry.spec["raw"] if raw else entry.text(ts))
            index = self._starts[e] + end_k
            e += 1


def rfc3339_nano_fixed(ts_ns: int) -> str:
    """Docker's ``RFC3339NanoFixed`` in UTC: always nine fractional digits (the ``-t`` prefix)."""
    secs, frac = divmod(ts_ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
