"""Provenance: every call a source makes leaves one :class:`Call` in a :class:`CallLog`.

The log lands in the verdict JSON (``calls``) and is shown in the notebook, so a reader of the
record can see what was asked of which system, how long it took and what came back.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Hashable, Iterator

from .outcome import Outcome

OUTCOMES = (Outcome.OK, Outcome.ERROR, Outcome.TIMED_OUT)  # a call's outcome


@dataclass
class Call:
    target: str  # "ssh provider", "proxmox matrix 127.0.0.1:8006", "omnictl", "https://omni/healthz"
    action: str  # what was run: argv joined, "GET /nodes", ...
    seconds: float = 0.0
    outcome: str = Outcome.OK  # one of OUTCOMES
    detail: str = ""  # rc, HTTP status, error reason
    bytes_in: int = 0  # bytes received from the system
    bytes_out: int = 0  # bytes sent to it
    truncated: bool = False  # the evidence kept is a bounded excerpt of what came back
    write: bool = False  # the call changes the system (only ever inside a guarded fix)
    error_kind: str = ""  # the SourceError's kind (an Outcome) when the call failed ("unreachable", "host_key" ...)

    def to_dict(self) -> dict:
        return asdict(self)


class Shared:
    """Read calls made once for a whole run: the first caller of a key makes the call, callers that
    ask for the same key meanwhile or later get its result (or its error) without asking again.

    Triage gathers every section at once; several sections read the same Omni resources, the same
    ``docker inspect`` and the same provider log. Only reads go through here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[Hashable, Future] = {}
        self.hits = 0

    def once(self, key: Hashable, fn: Callable[[], Any]) -> tuple[Any, bool]:
        """(the result of ``fn`` for ``key``, whether this caller made the call)."""
        with self._lock:
            fut = self._futures.get(key)
            owner = fut is None
            if owner:
                fut = self._futures[key] = Future()
            else:
                self.hits += 1
        if owner:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
        return fut.result(), owner


@dataclass
class CallLog:
    """A thread-safe, append-only list of calls; with ``shared``, reads made once (:class:`Shared`)."""

    calls: list[Call] = field(default_factory=list)
    shared: Shared | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def once(self, key: Hashable, fn: Callable[[], Any]) -> Any:
        """``fn()``, or the result an earlier identical read of this run had (when reads are shared)."""
        return fn() if self.shared is None else self.shared.once(key, fn)[0]

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
            call.outcome = Outcome.TIMED_OUT
            call.detail = call.detail or str(exc)
            raise
        except Exception as exc:
            call.outcome = Outcome.ERROR
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
