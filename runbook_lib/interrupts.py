"""Signals a scheduler sends: SIGTERM and SIGHUP are handled like SIGINT.

systemd, Kubernetes and ``timeout`` stop a run with SIGTERM; a closed terminal sends SIGHUP.
While the ``runbook`` command runs, all three raise :class:`Interrupted` (a ``KeyboardInterrupt``)
in the main thread, so the run takes the same path as Ctrl-C: the kernel is stopped, the partial
record kept, temporary files removed (:func:`runbook_lib.runner.run_runbook`), and the command
exits 128 + the signal. After the first signal the others are ignored, so that they cannot break
the cleanup the first one started.
"""

from __future__ import annotations

import signal
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def install() -> dict:
    """Route the three signals to :class:`Interrupted`; returns the handlers replaced (none when
    not called from the main thread, where Python cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _on_signal) for sig in HANDLED}


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def signal_name(exc: BaseException) -> str:
    """``SIGTERM`` for an :class:`Interrupted` by it; ``SIGINT`` for a plain ``KeyboardInterrupt``."""
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


def exit_code(exc: BaseException) -> int:
    """128 + the signal, as a shell reports a process the signal ended."""
    return 128 + getattr(exc, "signum", signal.SIGINT)
