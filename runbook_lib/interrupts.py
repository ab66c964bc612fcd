"""Signals a scheduler sends: SIGTERM and SIGHUP are handled like SIGINT.

systemd, Kubernetes and ``timeout`` stop a run with SIGTERM; a closed terminal sends SIGHUP.
While the ``runbook`` command runs, all three raise :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread, so the run takes the same path as Ctrl-C: the kernel is stopped, the partial
record kept, temporary files removed (:func:`runbook_lib.execute.execute` stops the kernel, the
:class:`~runbook_lib.record.Record` is published and removes the rest), and the command
exits 128 + the signal. After the first signal the others are ignored, so that they cannot break
the cleanup the first one started.

An exception raised from a signal handler lands wherever the main thread is. Inside Python's
import machinery (a module lock's weakref callback, say) it is swallowed and leaves the import
lock held, which later deadlocks any thread that imports. So when the signal arrives there, the
handler does not raise: it records the signal (:func:`pending`) and calls the hooks registered
with :func:`while_running` (:func:`runbook_lib.execute.execute`'s stops the kernel, so the notebook
ends at once); the execution and the command check :func:`pending` at their next step and stop there.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_pending: int | None = None
_hooks: list[Callable[[], None]] = []


def pending() -> int | None:
    """The signal that arrived and has not been acted on by an exception, if any."""
    return _pending


def clear() -> None:
    global _pending
    _pending = None


@contextmanager
def while_running(hook: Callable[[], None]) -> Iterator[None]:
    """Call ``hook`` (which must only send signals: it runs inside the handler) when a signal
    arrives while the block runs."""
    _hooks.append(hook)
    try:
        yield
    finally:
        _hooks.remove(hook)


def _in_import_machinery(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _on_signal(signum, frame) -> None:
    global _pending
    if _pending is not None:
        return  # one interruption is enough: the others must not break its cleanup
    _pending = signum
    for hook in list(_hooks):
        try:
            hook()
        except Exception:
            pass
    if not _in_import_machinery(frame):
        raise Interrupted(signum)


def install() -> dict:
    """Route the three signals to :class:`Interrupted`; returns the handlers replaced (none when
    not called from the main thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    clear()
    return {sig: signal.signal(sig, _on_signal) for sig in HANDLED}


def restore(previous: dict) -> None:
    clear()
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def signal_name(exc: BaseException) -> str:
    """``SIGTERM`` for an :class:`Interrupted` by it; ``SIGINT`` for a plain ``KeyboardInterrupt``."""
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


def raise_if_pending() -> None:
    """Raise the :class:`Interrupted` a signal could not raise where it arrived."""
    if _pending is not None:
        raise Interrupted(_pending)


def exit_code(exc: BaseException) -> int:
    """128 + the signal, as a shell reports a process the signal ended."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
