"""Run a notebook on the project's own kernel and keep the executed notebook in memory.

:func:`execute` runs a notebook (its bytes) with papermill on a :class:`KernelSession`: this
interpreter's kernel (:mod:`runbook_lib.kernel`), Unix sockets in a private directory, the secret
channel in its environment. The executed notebook never touches a disk: papermill writes it to an
in-memory handler (``runbook-memory://``), because it is unscrubbed until the record scrubs it.

A cell that fails, a cell that runs over the timeout, a kernel that dies or never starts: the
:class:`Execution` says what went wrong instead of raising. A signal (``KeyboardInterrupt``;
:mod:`runbook_lib.interrupts` turns SIGTERM and SIGHUP into one) stops the kernel at once, and the
execution carries the exception for the caller to raise again once the partial record is kept.

Within one process runs are serialised: papermill changes the working directory while it runs.
"""

from __future__ import annotations

import secrets
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import interrupts, kernel
from .kernel_session import KernelSession

# papermill changes the process's working directory while a notebook runs: one run at a time
_RUN_LOCK = threading.Lock()


@dataclass
class Execution:
    """How a notebook ran: the notebook (executed as far as it went; as given when it never
    started), what went wrong ("" when nothing did, unscrubbed) and the interruption, if one
    stopped it."""

    notebook: Any  # nbformat.NotebookNode, unscrubbed
    error: str = ""
    interrupt: KeyboardInterrupt | None = None


def execute(source: bytes, parameters: dict, *, session: KernelSession, cwd: Path, progress: bool = False,
            timeout: float | None = None) -> Execution:
    """Run the notebook ``source`` with ``parameters`` injected, on ``session``'s kernel, in
    ``cwd``; ``timeout`` bounds each cell (seconds; None: no bound)."""
    import nbformat

    store = _MemoryNotebooks.new()
    interrupt = None
    try:
        interrupts.raise_if_pending()
        with interrupts.while_running(session.signal_kernel):
            error = _papermill(source, store, parameters, session=session, cwd=cwd, progress=progress,
                               timeout=timeout)
        interrupts.raise_if_pending()  # a signal that stopped the kernel without raising
    except KeyboardInterrupt as exc:
        interrupt = exc
        session.kill()  # the event loop was interrupted mid-call: stop the kernel the hard way
        error = f"interrupted by {interrupts.signal_name(exc)} before the run finished"
    executed = _MemoryNotebooks.pop(store)
    notebook = executed if executed is not None else nbformat.reads(source.decode("utf-8"), as_version=4)
    return Execution(notebook, error, interrupt)


def _papermill(source: bytes, out: str, parameters: dict, *, session: KernelSession, cwd: Path, progress: bool,
               timeout: float | None) -> str:
    """Run the notebook into the in-memory ``out``; return "" or what went wrong."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.reads(source.decode("utf-8"), as_version=4)
    log = session.work / "kernel.log"
    with _RUN_LOCK:
        try:
            papermill.execute_notebook(
                nb, out,
                parameters=parameters,
                kernel_name=kernel.ensure_kernel(),
                language="python",
                cwd=str(cwd),
                progress_bar=progress,
                log_output=False,
                request_save_on_cell_execute=True,  # in memory: an interrupted run keeps what ran
                execution_timeout=timeout,
                km=session.manager(),
            )
        except PapermillExecutionError as exc:
            return f"{exc.ename}: {exc.evalue} (in cell [{exc.exec_count}])"
        except Exception as exc:  # timeout, dead kernel, kernel that would not start
            from nbclient.exceptions import CellTimeoutError, DeadKernelError

            session.discard()  # the next run gets a fresh kernel
            if isinstance(exc, CellTimeoutError):
                return f"a cell ran longer than {timeout:g} s and was stopped"
            tail = _log_tail(log)
            tail = f"; kernel log: {tail}" if tail else ""
            if isinstance(exc, DeadKernelError):
                return f"the kernel died while running the notebook{tail}"
            return f"{type(exc).__name__}: {exc}{tail}"
    return ""


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in tail if line.strip())


class _MemoryNotebooks:
    """A papermill I/O handler keeping the executed notebook in memory (``runbook-memory://KEY``):
    the notebook is unscrubbed until the record scrubs it, so it is never written to disk."""

    SCHEME = "runbook-memory://"
    _store: dict[str, str] = {}
    _registered = False

    @classmethod
    def new(cls) -> str:
        if not cls._registered:
            from papermill.iorw import papermill_io

            papermill_io.register(cls.SCHEME, cls())
            cls._registered = True
        return f"{cls.SCHEME}{secrets.token_hex(8)}.ipynb"

    @classmethod
    def pop(cls, path: str):
        import nbformat

        text = cls._store.pop(path, None)
        return None if text is None else nbformat.reads(text, as_version=4)

    def read(self, path):
        return self._store[path]

    def write(self, buf, path):
        self._store[path] = buf

    def listdir(self, path):
        return []

    def pretty_path(self, path):
        return "(in memory)"


def skip_slow_optional_imports() -> None:
    """Keep jsonschema (imported with nbformat by every run) from loading ``rfc3987_syntax``.

    jsonschema loads that optional module, when it is installed, to check the ``iri`` string
    formats; it compiles a grammar at import, about two seconds per process. No notebook schema
    uses those formats. A ``None`` entry in ``sys.modules`` makes the import fail at once, which
    jsonschema takes as "not installed".
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
