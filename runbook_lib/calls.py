"""Provenance: every call a source makes leaves one :class:`Call` in a :class:`CallLog`.

The log lands in the verdict JSON (``calls``) and is shown in the notebook, so a reader of the
record can see what was asked of which system, how long it took and what came back.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

OUTCOMES = ("ok", "error", "timeout")


@dataclass
class Call:
    target: str  # "ssh provider", "proxmox matrix 127.0.0.1:8006", "omnictl", "https://omni/healthz"
    action: str  # what was run: argv joined, "GET /nodes", ...
    seconds: float = 0.0
    outcome: str = "ok"  # one of OUTCOMES
    detail: str = ""  # rc, HTTP status, error reason
    bytes_in: int = 0  # bytes received from the system
    bytes_out: int = 0  # bytes sent to it
    truncated: bool = False  # the evidence kept is a bounded excerpt of what came back
    write: bool = False  # the call changes the system (only ever inside a guarded fix)
    error_kind: str = ""  # the SourceError's kind when the call failed ("unreachable", "host_key" ...)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CallLog:
    """A thread-safe, append-only list of calls."""

    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, call: Call) -> Call:
        with self._lock:
            self.calls.append(call)
        return call

    @contextmanager
    def record(self, target: str, action: str, *, write: bool = False) -> Iterator[Call]:
        """Time a call. The body fills ``detail``/byte counts; an exception marks it failed.

        ``TimedOut`` errors (and builtin ``TimeoutError``) give outcome ``timeout``.
        """
        from .errors import TimedOut

        call = Call(target=target, action=action, write=write)
        start = time.monotonic()
        try:
            yield call
        except (TimedOut, TimeoutError) as exc:
            call.outcome = "timeout"
            call.detail = call.detail or str(exc)
            raise
        except Exception as exc:
            call.outcome = "error"
            call.detail = call.detail or str(exc)
            call.error_kind = getattr(exc, "kind", "") if isinstance(getattr(exc, "kind", ""), str) else ""
            raise
        finally:
            call.seconds = round(time.monotonic() - start, 4)
            self.add(call)

    def to_list(self) -> list[dict]:
        with self._lock:
            return [c.to_dict() for c in self.calls]

    def frame(self):
        """The calls as a pandas DataFrame (for the notebook)."""
        import pandas as pd

        return pd.DataFrame(self.to_list(), columns=list(Call.__dataclass_fields__))
