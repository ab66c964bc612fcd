"""The kernel headless runs use: always the interpreter running this code, never a stray one.

``jupyter kernelspec list`` on an operator's machine can hold anything: a ``python3`` spec left by
another virtualenv, a conda kernel without this package installed. Papermill would happily start
any of them. So the runner writes its own kernelspec, whose ``argv`` starts with
:data:`sys.executable`, into a private directory under the state directory, and puts that
directory first on ``JUPYTER_PATH`` for this process. Its name is derived from the interpreter's
path, so two virtualenvs on one machine never overwrite each other's spec.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

DISPLAY_NAME = "runbook (this environment)"
STATE_ENV = "RUNBOOK_HOME"
_DEFAULT_STATE = "~/.local/state/runbook"


def state_dir() -> Path:
    """The project's private state directory (``$RUNBOOK_HOME``, default ~/.local/state/runbook)."""
    return Path(os.environ.get(STATE_ENV) or _DEFAULT_STATE).expanduser().resolve()


def kernel_name(executable: str | None = None) -> str:
    """``runbook-<12 hex>``: stable for one interpreter path, different for another."""
    exe = os.path.abspath(executable or sys.executable)
    return "runbook-" + hashlib.sha256(exe.encode()).hexdigest()[:12]


def kernelspec() -> dict:
    """The kernel.json content for the current interpreter."""
    return {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"runbook": {"executable": sys.executable}},
    }


def jupyter_dir() -> Path:
    """The private ``JUPYTER_PATH`` entry holding the runbook kernelspecs (``kernels/<name>``)."""
    return state_dir() / "jupyter"


def ensure_kernel() -> str:
    """Write (or refresh) this interpreter's kernelspec, make it findable, return its name.

    The spec is rewritten only when its content differs, atomically, so concurrent runs never
    see a half-written ``kernel.json``.
    """
    root = jupyter_dir()
    name = kernel_name()
    spec_dir = root / "kernels" / name
    state_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    root.mkdir(mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec_file = spec_dir / "kernel.json"
    wanted = json.dumps(kernelspec(), indent=2) + "\n"
    try:
        current = spec_file.read_text(encoding="utf-8")
    except OSError:
        current = None
    if current != wanted:
        tmp = spec_dir / f".kernel.json.{os.getpid()}.tmp"
        tmp.write_text(wanted, encoding="utf-8")
        os.replace(tmp, spec_file)
    _prepend_jupyter_path(root)
    return name


def _prepend_jupyter_path(root: Path) -> None:
    entries = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if entries[:1] != [str(root)]:
        entries = [str(root)] + [p for p in entries if p != str(root)]
        os.environ["JUPYTER_PATH"] = os.pathsep.join(entries)
