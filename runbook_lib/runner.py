"""Headless runs: one runbook notebook, executed with papermill, kept as a scrubbed record.

The contract with the notebooks (``notebooks/<section>.ipynb``): the ``parameters`` cell holds plain
literals; the runner always injects ``site_file``, ``run_id``, ``verdict_path`` and
``headless = True`` next to the operator's own parameters; the notebook's last cell writes
``Verdict.to_json()`` to ``verdict_path``.

What a run does, in order:

1. refuse what must not run: an unknown section, a site file that fails validation, a parameter
   the notebook does not declare, a secret-looking parameter holding a literal instead of a
   reference (parameters end up in the record; credentials must not);
2. execute the notebook on this interpreter's kernel (:mod:`runbook_lib.kernel`) in a private
   temporary directory, with ``RUNBOOK_REDACT_FILE`` set in the kernel's environment so every
   secret the kernel resolves is reported back;
3. build a :class:`~runbook_lib.redact.Redactor` from those values, the site's own secrets and
   what this process registered, and scrub the whole notebook and the verdict with it;
4. write the record atomically (:mod:`runbook_lib.records`), append the index line, and delete the
   temporary directory whatever happened.

A cell that fails, a cell that times out, a kernel that dies: the record is still written, with
the failure in ``error`` and exit code 3.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import kernel, records, redact
from .errors import RunbookError, RunFailed, SiteError
from .site import load_site, resolve_secret, secret_refs
from .verdict import Verdict

NOTEBOOKS_ENV = "RUNBOOK_NOTEBOOKS"
INJECTED = ("site_file", "run_id", "verdict_path", "headless")

# papermill changes the process's working directory while a notebook runs: one run at a time
_RUN_LOCK = threading.Lock()
# a unix socket path is limited to 107 bytes; the kernel appends "-<port>" to the prefix
_MAX_SOCKET_PREFIX = 96


@dataclass
class RunResult:
    """How a run ended: the (scrubbed) verdict, its exit code and where the record is."""

    verdict: Verdict
    exit_code: int
    record_dir: Path
    paths: dict[str, Path]  # notebook, verdict, html


# --- which runbooks exist ---------------------------------------------------------------------

def notebooks_dir() -> Path:
    """The runbook notebooks: ``$RUNBOOK_NOTEBOOKS``, else the project's ``notebooks/`` folder."""
    override = os.environ.get(NOTEBOOKS_ENV)
    if override:
        return Path(override).expanduser().resolve()
    import runbook_lib

    return Path(runbook_lib.__file__).resolve().parent.parent / "notebooks"


def sections() -> list[str]:
    """The runbooks available: the notebooks present, by name."""
    folder = notebooks_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def notebook_path(section: str) -> Path:
    """The notebook of one runbook, or a :class:`RunbookError` listing the ones that exist."""
    available = sections()
    if section not in available:
        listing = ", ".join(available) if available else f"none (no notebooks in {notebooks_dir()})"
        raise RunbookError(f"unknown runbook '{section}'; available: {listing}")
    return notebooks_dir() / f"{section}.ipynb"


# --- run ids, times, parameters ---------------------------------------------------------------

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    """``2026-11-27T10:15:00Z``"""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(now: datetime | None = None) -> str:
    """``20261127T101500Z-3f9c``: sortable by time, unique enough for one site's runs."""
    now = now or utc_now()
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("env:", "file:"))


def _cannot_hold_a_secret(value: Any) -> bool:
    """References, switches and nulls: values a secret-looking parameter may hold."""
    return value is None or isinstance(value, bool) or is_reference(value)


def check_parameters(parameters: dict[str, Any], declared: set[str] | None = None) -> None:
    """Refuse parameters that would put a secret into the record, or that the runbook ignores.

    ``declared`` is the set of names in the notebook's ``parameters`` cell; ``None`` skips that
    check.
    """
    for name, value in parameters.items():
        if name in INJECTED:
            raise RunbookError(f"parameter '{name}' is set by the runner; it cannot be given with -p")
        if redact.looks_secret(name) and not _cannot_hold_a_secret(value):
            raise RunbookError(
                f"parameter '{name}' looks like a secret, and parameters are written to the record: "
                f"parameters hold references, not values (give env:VARIABLE or file:PATH)"
            )
        if declared is not None and name not in declared:
            own = sorted(declared - set(INJECTED))
            raise RunbookError(
                f"the runbook has no parameter '{name}' (its parameters: {', '.join(own) or 'none'})"
            )


def declared_parameters(nb_path: Path) -> set[str]:
    """The names in a notebook's ``parameters`` cell (read without a kernel)."""
    import papermill

    return set(papermill.inspect_notebook(str(nb_path)))


# --- secrets ------------------------------------------------------------------------------------

def secret_values(site_file: Path | None, redact_file: Path | None) -> set[str]:
    """Every secret value a record must not contain.

    The values the kernel resolved (``redact_file``), the site's secret references that resolve
    here (those that do not are skipped: the kernel could not have read them either), and
    everything registered in this process.
    """
    values: set[str] = set()
    if redact_file is not None:
        values |= redact.load_file(redact_file)
    if site_file is not None:
        try:
            site = load_site(site_file)
        except SiteError:
            site = None
        if site is not None:
            for field, ref in secret_refs(site).items():
                try:
                    values.add(resolve_secret(ref, field=field))
                except SiteError:
                    continue
    return values | redact.known_values()


# --- the run ------------------------------------------------------------------------------------

def run_runbook(
    section: str,
    *,
    site_file: str | os.PathLike,
    parameters: dict[str, Any] | None = None,
    outputs_dir: str | os.PathLike | None = None,
    run_id: str | None = None,
    progress: bool = False,
    timeout: float | None = None,
) -> RunResult:
    """Run one runbook headless and keep its record; see the module docstring.

    ``timeout`` bounds each cell (seconds; ``None``: no bound beyond the sources' own deadlines).
    Raises :class:`RunbookError` (``SiteError`` included) when the run cannot start; once the
    notebook has started, failures end up in the verdict's ``error`` instead.
    """
    parameters = dict(parameters or {})
    nb_path = notebook_path(section)
    site_path = Path(site_file).expanduser().resolve()
    site = load_site(site_path)
    check_parameters(parameters, declared_parameters(nb_path))

    started = utc_now()
    run_id = run_id or new_run_id(started)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id):
        raise RunbookError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-'")
    outputs = records.outputs_dir(outputs_dir)
    paths = records.record_paths(outputs, run_id, section, started.strftime("%Y-%m-%d"))

    work = _private_tmpdir(outputs)
    try:
        redact_file = work / "redact"
        redact_file.touch(mode=0o600)
        verdict_file = work / "verdict.json"
        executed = work / f"{section}.ipynb"
        injected = {**parameters, "site_file": str(site_path), "run_id": run_id,
                    "verdict_path": str(verdict_file), "headless": True}

        threading.Thread(target=records.warm_html, name="warm-html", daemon=True).start()
        error = _execute(nb_path, executed, injected, redact_file, progress=progress, timeout=timeout)
        finished = utc_now()

        verdict, nb = _collect(section, nb_path, executed, verdict_file, error)
        verdict.run_id = run_id
        verdict.runbook = section
        verdict.site = verdict.site or site.name
        verdict.started = verdict.started or iso(started)
        verdict.finished = verdict.finished or iso(finished)
        verdict.parameters = {"site_file": str(site_path), **parameters}
        verdict.record = paths.relative(paths.notebook)
        for w in site.insecure_settings():
            if w not in verdict.warnings:
                verdict.warnings.append(w)

        # parameters under secret-looking names are references or switches (check_parameters);
        # Redactor.obj masks whatever else sits under such a name in metadata and verdict
        redactor = redact.Redactor(secret_values(site_path, redact_file))

        nb.metadata.setdefault("papermill", {})
        nb.metadata.papermill["input_path"] = str(nb_path)
        nb.metadata.papermill["output_path"] = str(paths.notebook)
        clean_nb = records.scrub_notebook(nb, redactor)
        verdict = Verdict.from_dict(redactor.obj(verdict.to_dict()))

        _write_record(paths, clean_nb, verdict)
        exit_code = verdict.exit_code()
        records.append_index(outputs, records.index_entry(verdict, paths, exit_code))
        return RunResult(verdict=verdict, exit_code=exit_code, record_dir=paths.dir,
                         paths=paths.as_dict())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _private_tmpdir(outputs: Path) -> Path:
    """A 0700 directory for the unscrubbed notebook; never inside the outputs folder."""
    work = Path(tempfile.mkdtemp(prefix="runbook-"))
    if work.resolve().is_relative_to(outputs):
        shutil.rmtree(work, ignore_errors=True)
        parent = kernel.state_dir() / "tmp"
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="runbook-", dir=parent))
    os.chmod(work, 0o700)
    return work


@functools.cache
def _kernel_manager_class():
    """An ``AsyncKernelManager`` that adds ``extra_env`` to the kernel's environment and sends the
    kernel process's own output (its log, not the cells') to ``log_file``."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Dict, Unicode

    class RunbookKernelManager(AsyncKernelManager):
        extra_env = Dict(config=True, help="variables added to the kernel's environment")
        log_file = Unicode("", config=True, help="where the kernel process's stdout/stderr go")

        async def start_kernel(self, **kw):
            env = dict(kw.pop("env", None) or os.environ)
            env.update(self.extra_env)
            if not self.log_file:
                return await super().start_kernel(env=env, **kw)
            with open(self.log_file, "ab") as log:  # the child keeps its own copy of the fd
                return await super().start_kernel(env=env, stdout=log, stderr=log, **kw)

    return RunbookKernelManager


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in tail if line.strip())


def _execute(nb_path: Path, out: Path, parameters: dict, redact_file: Path, *,
             progress: bool, timeout: float | None) -> str:
    """Run the notebook into ``out``; return "" or what went wrong (unscrubbed: the caller scrubs)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    work = out.parent
    manager = _kernel_manager_class()
    settings = {"extra_env": {redact.REDACT_FILE_ENV: str(redact_file)},
                "log_file": str(work / "kernel.log")}
    sockets = work / "kernel"
    if len(str(sockets)) < _MAX_SOCKET_PREFIX:
        # unix sockets in the private work dir instead of loopback ports other users can reach
        settings.update(transport="ipc", ip=str(sockets))
    config = Config({manager.__name__: settings})
    with _RUN_LOCK:
        try:
            papermill.execute_notebook(
                str(nb_path), str(out),
                parameters=parameters,
                kernel_name=kernel.ensure_kernel(),
                language="python",
                cwd=str(nb_path.parent),
                progress_bar=progress,
                log_output=False,
                request_save_on_cell_execute=False,  # saved once at the end (also when a cell fails)
                execution_timeout=timeout,
                kernel_manager_class=manager,
                config=config,
            )
        except PapermillExecutionError as exc:
            return f"{exc.ename}: {exc.evalue} (in cell [{exc.exec_count}])"
        except Exception as exc:  # timeout, dead kernel, kernel that would not start
            from nbclient.exceptions import CellTimeoutError, DeadKernelError

            if isinstance(exc, CellTimeoutError):
                return f"a cell ran longer than {timeout:g} s and was stopped"
            tail = _log_tail(work / "kernel.log")
            tail = f"; kernel log: {tail}" if tail else ""
            if isinstance(exc, DeadKernelError):
                return f"the kernel died while running the notebook{tail}"
            return f"{type(exc).__name__}: {exc}{tail}"
    return ""


def _collect(section: str, nb_path: Path, executed: Path, verdict_file: Path, error: str):
    """The executed notebook (or the template, if execution never started) and its verdict."""
    import nbformat

    source = executed if executed.exists() else nb_path
    nb = nbformat.read(source, as_version=4)
    verdict = Verdict(runbook=section, findings=[])
    if verdict_file.exists():
        try:
            verdict = Verdict.from_dict(_read_json(verdict_file))
        except (ValueError, TypeError, KeyError) as exc:
            error = error or f"the notebook wrote a verdict that does not parse: {exc}"
    elif not error:
        error = "the notebook finished without writing its verdict"
    verdict.error = error
    return verdict, nb


def _read_json(path: Path) -> dict:
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _write_record(paths: records.RecordPaths, nb, verdict: Verdict) -> None:
    """Notebook, HTML, verdict JSON, in that order: the JSON last, once the others exist."""
    try:
        paths.dir.mkdir(parents=True, exist_ok=True)
        records.write_atomic(paths.notebook, records.notebook_text(nb))
        try:
            html = records.render_html(nb)
        except Exception as exc:  # a rendering bug must not cost the record
            verdict.warnings.append(f"the HTML rendering of the record failed: {type(exc).__name__}")
            html = None
        if html is not None:
            records.write_atomic(paths.html, html)
        records.write_atomic(paths.verdict, verdict.to_json() + "\n")
    except OSError as exc:
        raise RunFailed(f"cannot write the record under {paths.dir}: {exc.strerror or exc}") from None
