"""The kernel a headless run talks to, and the private directory it lives in.

:class:`KernelSession` holds one kernel for one run, or for several runs that share it.
The kernel is this interpreter's (:mod:`runbook_lib.kernel`), started by an ``AsyncKernelManager``
that talks to it over Unix sockets (``transport="ipc"``) in a private 0700 directory instead of
loopback TCP ports any local user could reach, puts the secret channel's socket
(:mod:`runbook_lib.secret_channel`) into its environment, sends its own output to a log file,
and deletes the connection file (it holds the kernel's HMAC key) as soon as the kernel has read
it. A run killed with SIGKILL leaves its private directory; the next run removes it
(:func:`sweep_stale_workdirs`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

from . import kernel, records, secret_channel

# a unix socket path is limited to 107 bytes; the kernel appends "-<port>" to the prefix
_MAX_SOCKET_PREFIX = 96


_WORKDIR_PREFIX = "runbook-"


def private_tmpdir(outputs: Path) -> Path:
    """A 0700 directory for the kernel's sockets and log; never inside the outputs folder.

    Its name carries this process's id, so that a later run can remove what a run killed with
    SIGKILL left (:func:`sweep_stale_workdirs`). Nothing in it is a secret in clear: the kernel
    passes secret values over a socket, and the executed notebook stays in memory.
    """
    prefix = f"{_WORKDIR_PREFIX}{os.getpid()}-"
    for parent in _workdir_parents():
        try:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        except OSError:
            continue
        if not work.resolve().is_relative_to(outputs) and len(str(work)) <= _MAX_SOCKET_PREFIX - 16:
            os.chmod(work, 0o700)
            return work
        shutil.rmtree(work, ignore_errors=True)
    raise OSError(f"no directory short enough for the kernel's sockets (tried {', '.join(map(str, _workdir_parents()))})")


def _workdir_parents() -> list[Path]:
    """Where a private directory may go, in order: $TMPDIR, the state directory, /tmp (a Unix
    socket's path must stay short, and a deep $TMPDIR or state directory can make it too long)."""
    return [Path(tempfile.gettempdir()), kernel.state_dir() / "tmp", Path("/tmp")]


def sweep_stale_workdirs() -> None:
    """Remove the private directories of runs whose process is gone (killed with SIGKILL)."""
    for parent in dict.fromkeys(_workdir_parents()):
        try:
            candidates = list(parent.glob(f"{_WORKDIR_PREFIX}*-*"))
        except OSError:
            continue
        for d in candidates:
            m = re.fullmatch(rf"{_WORKDIR_PREFIX}(\d+)-\w+", d.name)
            if not m or not d.is_dir() or d.is_symlink():
                continue
            try:
                if d.stat().st_uid != os.getuid():
                    continue
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                shutil.rmtree(d, ignore_errors=True)
            except OSError:
                continue


@functools.cache
def _kernel_manager_class():
    """An ``AsyncKernelManager`` that adds ``extra_env`` to the kernel's environment, sends the
    kernel process's own output (its log, not the cells') to ``log_file``, and removes the
    connection file (it holds the kernel's HMAC key) as soon as the kernel has read it."""
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Dict, Unicode

    class RunbookKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout=None):
            await super().wait_for_ready(timeout=timeout)
            if self.connection_file:  # read by the kernel at start; every party keeps the key in memory
                Path(self.connection_file).unlink(missing_ok=True)

    class RunbookKernelManager(AsyncKernelManager):
        extra_env = Dict(config=True, help="variables added to the kernel's environment")
        log_file = Unicode("", config=True, help="where the kernel process's stdout/stderr go")

        def client(self, **kw):
            kw.setdefault("parent", self)
            info = self.get_connection_info(session=True)
            info.update(kw)
            info["connection_file"] = self.connection_file
            return RunbookKernelClient(**info)

        async def start_kernel(self, **kw):
            from . import interrupts

            env = dict(kw.pop("env", None) or os.environ)
            env.update(self.extra_env)
            if not self.log_file:
                await super().start_kernel(env=env, **kw)
            else:
                with open(self.log_file, "ab") as log:  # the child keeps its own copy of the fd
                    await super().start_kernel(env=env, stdout=log, stderr=log, **kw)
            if interrupts.pending() is not None:  # a signal came while it started: it must not run
                self.kill_now()

        def kill_now(self) -> None:
            """SIGKILL the kernel's process group, without the event loop (after an interrupt)."""
            process = getattr(self.provisioner, "process", None) if self.provisioner else None
            if process is None:
                return
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the launcher starts it in a session of its own
            except (ProcessLookupError, PermissionError):
                try:
                    process.kill()
                except OSError:
                    pass
            try:
                process.wait(timeout=5)
            except Exception:
                pass

    return RunbookKernelManager


def _kernel_config(work: Path, sink: secret_channel.SecretSink):
    """The kernel manager's settings: the secret channel in its environment, its log in ``work``,
    and unix sockets in ``work`` instead of loopback ports other users could reach."""
    from traitlets.config import Config

    settings = {"extra_env": {secret_channel.SOCKET_ENV: str(sink.path)}, "log_file": str(work / "kernel.log"),
                "connection_file": str(work / "kernel.json")}
    sockets = work / "kernel"
    if len(str(sockets)) < _MAX_SOCKET_PREFIX:
        settings.update(transport="ipc", ip=str(sockets))
    return Config({_kernel_manager_class().__name__: settings})


class KernelSession:
    """One kernel for one or several runs (``runbook check`` runs in a test, say).

    The kernel starts with the first run and is shut down by :meth:`close` (or when the session
    is used as a context manager). Its environment carries one secret channel for all the runs. A
    run that times out or kills the kernel discards it; the next run starts a new one. Runs in a
    session share the kernel's namespace; every runbook notebook assigns what it reads.
    """

    def __init__(self, outputs_dir: str | os.PathLike | None = None, *, work: Path | None = None):
        self._outputs = records.outputs_dir(outputs_dir)
        self._own_work = work is None
        self._work = work
        self._sink: secret_channel.SecretSink | None = None
        self._km = None
        self.starts = 0  # kernels started (the benchmark and tests read it)

    # the private directory and the secret channel are made when a run first needs them: a session
    # that never runs anything leaves nothing behind
    @property
    def work(self) -> Path:
        if self._work is None:
            self._work = private_tmpdir(self._outputs)
        return self._work

    @property
    def sink(self) -> secret_channel.SecretSink:
        if self._sink is None:
            self._sink = secret_channel.SecretSink(self.work)
        return self._sink

    def manager(self):
        """The kernel manager the next run uses (papermill starts the kernel when it has none)."""
        if self._km is None:
            cls = _kernel_manager_class()
            self._km = cls(kernel_name=kernel.ensure_kernel(), config=_kernel_config(self.work, self.sink))
            self.starts += 1
        return self._km

    def discard(self) -> None:
        """Shut the kernel down (if it runs); the next run starts another."""
        km, self._km = self._km, None
        if km is not None and km.has_kernel:
            from jupyter_core.utils import run_sync

            try:
                run_sync(km.shutdown_kernel)(now=True)
            except Exception:  # already dead: nothing to shut down
                km.kill_now()

    def signal_kernel(self) -> None:
        """SIGKILL the kernel's process group and nothing else (safe inside a signal handler): the
        notebook being run then ends with a dead kernel."""
        km = self._km
        process = getattr(km.provisioner, "process", None) if km is not None and km.provisioner else None
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass

    def kill(self) -> None:
        """Stop the kernel at once, without its event loop (after an interrupt)."""
        km, self._km = self._km, None
        if km is not None:
            km.kill_now()
            try:  # what shutdown_kernel would have removed (the directory goes anyway)
                km.cleanup_connection_file()
                km.cleanup_ipc_files()
            except Exception:
                pass

    def close(self) -> None:
        self.discard()
        if self._sink is not None:
            self._sink.close()
        if self._own_work and self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> "KernelSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
