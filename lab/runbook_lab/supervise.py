"""Keep one lab twin running in the background: ``runbook lab up``, ``down``, ``site``, ``jupyter``.

The twin runs as ``python -m runbook_lab serve --dir DIR`` in a session of its own; DIR holds its
pid file, its log and, once it serves, ``ready`` (``{"site": ..., "pid": ...}``). A pid is taken
for the twin only while ``/proc`` shows a live process running this package, so a recycled pid is
never signalled. A drill's twin (``up(..., hidden=True)``) gets its scenario on standard input, not
on its command line, and its ready file says ``"hidden": true`` instead of naming the scenario.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from runbook_lib.errors import RunbookError

READY_TIMEOUT = 30.0
STOP_GRACE = 5.0


class LabBusy(RunbookError):
    """A twin is already running or starting in this directory."""


def _pid_file(d: Path) -> Path:
    return d / "pid"


def _alive(pid: int) -> bool:
    """True when ``pid`` runs and is a lab twin (guards against a recycled pid)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child that exited
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
        return state != "Z" and "runbook_lab" in cmdline
    return True


def running(d: Path) -> dict | None:
    """``{"site": ..., "pid": ...}`` of the twin ``lab up`` started, if it is still running."""
    try:
        info = json.loads((d / "ready").read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(pid) else None


def _starting_pid(d: Path) -> int | None:
    try:
        pid = int(_pid_file(d).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def up(d: Path, scenario: str | None = None, *, hidden: bool = False) -> dict:
    """Start ``python -m runbook_lab serve`` detached; wait for it to be ready. ``hidden``: a drill's
    twin, told its scenario through a pipe (see ``__main__``)."""
    twin = running(d)
    if twin is not None:
        if twin.get("hidden"):
            raise LabBusy(f"a drill's twin is running (pid {twin['pid']}); end the drill with `runbook drill stop`")
        raise LabBusy(f"a lab twin is already running (pid {twin['pid']}, site {twin['site']}); "
                         "stop it with `runbook lab down`")
    if _starting_pid(d) is not None:
        raise LabBusy(f"a lab twin is starting or stuck (pid {_starting_pid(d)}); "
                         "stop it with `runbook lab down`")
    _clear_state(d)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "runbook_lab", "serve", "--dir", str(d)]
    if hidden:
        argv.append("--hidden")
    elif scenario:
        argv += ["--scenario", scenario]
    log_path = d / "twin.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if hidden else subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    if hidden:
        try:
            with proc.stdin:
                proc.stdin.write(f"{scenario or ''}\n".encode())
        except BrokenPipeError:
            pass  # it exited at once: said below, with its log
    _pid_file(d).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        twin = running(d)
        if twin is not None:
            return twin
        if proc.poll() is not None:
            _clear_state(d, keep_log=True)
            raise RunbookError(f"the lab twin exited (status {proc.returncode}) before it was ready: "
                               f"{_tail(log_path)}")
        time.sleep(0.1)
    _stop_pid(proc.pid)
    proc.wait(timeout=STOP_GRACE)
    _clear_state(d, keep_log=True)
    raise RunbookError(f"the lab twin was not ready after {READY_TIMEOUT:g} s "
                       f"(log: {log_path}): {_tail(log_path)}")


def down(d: Path) -> bool:
    """Stop the background twin (SIGTERM, SIGKILL after 5 s) and remove its state.

    Returns False when no twin was running.
    """
    twin = running(d)
    pid = int(twin["pid"]) if twin else _starting_pid(d)
    if pid is not None:
        _stop_pid(pid)
    _clear_state(d)
    return pid is not None


def _stop_pid(pid: int) -> None:
    """SIGTERM the twin's process group, SIGKILL it if it is still there after the grace time."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # lab up starts the twin as the leader of a new session
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _clear_state(d: Path, *, keep_log: bool = False) -> None:
    if not d.exists():
        return
    for child in d.iterdir():
        if keep_log and child.name == "twin.log":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if not keep_log:
        try:
            d.rmdir()
        except OSError:
            pass


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"
