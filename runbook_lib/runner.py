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
4. write the record atomically (:mod:`runbook_lib.records`) with its provenance (the input
   notebook's SHA-256, the project's version, the checksums of the record's files), append the
   index line, apply the retention setting, and delete the temporary directory whatever happened.

A cell that fails, a cell that times out, a kernel that dies: the record is still written, with
the failure in ``error`` and exit code 3.

Runs in separate processes may happen at the same time (each claims its own record directory and
appends to the index under a lock). Within one process they are serialised, because papermill
changes the working directory while it runs. Several runs can share one kernel through a
:class:`KernelSession`: a triage incident pays for one kernel start, not one per runbook.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import kernel, records, redact
from .errors import RunbookError, SiteError
from .site import load_site, resolve_secret, secret_refs
from .verdict import Verdict

NOTEBOOKS_ENV = "RUNBOOK_NOTEBOOKS"
INJECTED = ("site_file", "run_id", "verdict_path", "headless")
# injected only into the notebooks that declare it: the record directory of the run (triage keeps
# the records of the runbooks it runs there)
INJECTED_IF_DECLARED = ("record_dir",)
_CLAIM_TRIES = 8

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
        if name in INJECTED or name in INJECTED_IF_DECLARED:
            raise RunbookError(f"parameter '{name}' is set by the runner; it cannot be given with -p")
        if redact.looks_secret(name) and not _cannot_hold_a_secret(value):
            raise RunbookError(
                f"parameter '{name}' looks like a secret, and parameters are written to the record: "
                f"parameters hold references, not values (give env:VARIABLE or file:PATH)"
            )
        if declared is not None and name not in declared:
            own = sorted(declared - set(INJECTED) - set(INJECTED_IF_DECLARED))
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
    record_dir: str | os.PathLike | None = None,
    index: bool = True,
    session: "KernelSession | None" = None,
) -> RunResult:
    """Run one runbook headless and keep its record; see the module docstring.

    ``timeout`` bounds each cell (seconds; ``None``: no bound beyond the sources' own deadlines).
    ``record_dir`` puts the record into an existing directory (a triage incident's; ``run_id``
    should then be the incident's) instead of a new one; ``index=False`` leaves the index alone
    (the incident is indexed once, by its summary). ``session`` runs the notebook on a kernel
    shared with other runs.

    Raises :class:`RunbookError` (``SiteError`` included) when the run cannot start; once the
    notebook has started, failures end up in the verdict's ``error`` instead.
    """
    records.skip_slow_optional_imports()
    parameters = dict(parameters or {})
    nb_path = notebook_path(section)
    site_path = Path(site_file).expanduser().resolve()
    site = load_site(site_path)
    declared = declared_parameters(nb_path)
    check_parameters(parameters, declared)

    started = utc_now()
    outputs = records.outputs_dir(outputs_dir)
    paths = _claim_record(outputs, section, run_id, started, record_dir)
    run_id = paths.dir.name if record_dir is None else (run_id or paths.dir.name)

    work = _private_tmpdir(outputs)
    try:
        source = nb_path.read_bytes()
        executed_input = work / f"input-{section}.ipynb"
        executed_input.write_bytes(source)  # the bytes hashed are the bytes run
        redact_file = session.redact_file if session is not None else work / "redact"
        redact_file.touch(mode=0o600)
        verdict_file = work / "verdict.json"
        executed = work / f"{section}.ipynb"
        injected = {**parameters, "site_file": str(site_path), "run_id": run_id,
                    "verdict_path": str(verdict_file), "headless": True}
        if "record_dir" in declared:
            injected["record_dir"] = str(paths.dir)

        threading.Thread(target=records.warm_html, name="warm-html", daemon=True).start()
        error = _execute(executed_input, executed, injected, redact_file, cwd=nb_path.parent,
                         progress=progress, timeout=timeout, session=session)
        finished = utc_now()

        verdict, nb = _collect(section, executed_input, executed, verdict_file, error)
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
        verdict = Verdict.from_dict(redactor.obj(verdict.to_dict()))
        verdict.provenance = provenance(section, nb_path, source, run_id, indexed=index)
        nb.metadata["runbook"] = {"provenance": dict(verdict.provenance)}
        clean_nb = records.scrub_notebook(nb, redactor)

        digest = records.write_record(paths, clean_nb, verdict)
        exit_code = verdict.exit_code()
        if index:
            parts = sorted(p.stem for p in paths.dir.glob("*.json") if p.stem != section)
            records.append_index(outputs, records.index_entry(verdict, paths, exit_code,
                                                              verdict_sha256=digest, parts=parts))
            _apply_retention(outputs, run_id)
        return RunResult(verdict=verdict, exit_code=exit_code, record_dir=paths.dir,
                         paths=paths.as_dict())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _claim_record(outputs: Path, section: str, run_id: str | None, started: datetime,
                  record_dir: str | os.PathLike | None) -> records.RecordPaths:
    """The record's files: in ``record_dir`` (which must exist and not hold this runbook's record
    yet), or in a new directory claimed exclusively (a drawn run id that is taken is drawn again;
    a given one that is taken is an error)."""
    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id):
        raise RunbookError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-'")
    if record_dir is not None:
        directory = Path(record_dir).expanduser().resolve()
        if not directory.is_dir():
            raise RunbookError(f"record directory {directory} does not exist")
        paths = records.paths_in(outputs, directory, section)
        if paths.verdict.exists() or paths.notebook.exists():
            raise RunbookError(f"{directory} already holds a {section} record")
        return paths
    directory = claim_record_dir(outputs, run_id=run_id, started=started)
    return records.paths_in(outputs, directory, section)


def claim_record_dir(outputs: Path, *, run_id: str | None = None, started: datetime | None = None) -> Path:
    """Create a new run's directory, ``<outputs>/<YYYY-MM-DD>/<run_id>``, for this run alone.

    A drawn run id that another run already took is drawn again; a given one is an error.
    """
    started = started or utc_now()
    day = started.strftime("%Y-%m-%d")
    for _ in range(_CLAIM_TRIES):
        chosen = run_id or new_run_id(started)
        directory = outputs / day / chosen
        try:
            records.claim_dir(directory)
            return directory
        except FileExistsError:
            if run_id is not None:
                raise RunbookError(f"run id {run_id} is already taken ({directory})") from None
    raise RunbookError(f"could not claim a new record directory under {outputs / day}")


def project_version() -> str:
    """The installed distribution's version, else the package's own."""
    try:
        from importlib.metadata import version

        return version("omni-runbooks")
    except Exception:  # not installed (a checkout on sys.path)
        import runbook_lib

        return runbook_lib.__version__


def provenance(section: str, nb_path: Path, source: bytes, run_id: str, *, indexed: bool) -> dict:
    """What proves what ran: the input notebook and its hash, the versions, the run id.

    ``checksums`` (the record's files) is added when the record is written.
    """
    import papermill

    try:
        shown = str(nb_path.relative_to(notebooks_dir().parent))
    except ValueError:
        shown = str(nb_path)
    return {
        "run_id": run_id,
        "runbook": section,
        "input_notebook": shown,
        "input_sha256": records.sha256_bytes(source),
        "project_version": project_version(),
        "python": sys.version.split()[0],
        "papermill": papermill.__version__,
        "indexed": indexed,
    }


def _apply_retention(outputs: Path, run_id: str) -> None:
    """Prune old records when ``RUNBOOK_RETENTION_DAYS`` is set (see :mod:`runbook_lib.archive`),
    never the run that just finished."""
    from . import archive

    try:
        archive.apply_retention(outputs, keep=[run_id])
    except (OSError, RunbookError) as exc:  # retention must never cost a run its result
        print(f"runbook: warning: retention: {exc}", file=sys.stderr)


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


def _execute(nb_path: Path, out: Path, parameters: dict, redact_file: Path, *, cwd: Path,
             progress: bool, timeout: float | None, session: "KernelSession | None" = None) -> str:
    """Run the notebook into ``out``; return "" or what went wrong (unscrubbed: the caller scrubs)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    work = out.parent
    if session is not None:
        engine = {"km": session.manager()}
        log = session.work / "kernel.log"
    else:
        engine = {"kernel_manager_class": _kernel_manager_class(),
                  "config": _kernel_config(work, redact_file)}
        log = work / "kernel.log"
    with _RUN_LOCK:
        try:
            papermill.execute_notebook(
                str(nb_path), str(out),
                parameters=parameters,
                kernel_name=kernel.ensure_kernel(),
                language="python",
                cwd=str(cwd),
                progress_bar=progress,
                log_output=False,
                request_save_on_cell_execute=False,  # saved once at the end (also when a cell fails)
                execution_timeout=timeout,
                **engine,
            )
        except PapermillExecutionError as exc:
            return f"{exc.ename}: {exc.evalue} (in cell [{exc.exec_count}])"
        except Exception as exc:  # timeout, dead kernel, kernel that would not start
            from nbclient.exceptions import CellTimeoutError, DeadKernelError

            if session is not None:
                session.discard()  # the next run gets a fresh kernel
            if isinstance(exc, CellTimeoutError):
                return f"a cell ran longer than {timeout:g} s and was stopped"
            tail = _log_tail(log)
            tail = f"; kernel log: {tail}" if tail else ""
            if isinstance(exc, DeadKernelError):
                return f"the kernel died while running the notebook{tail}"
            return f"{type(exc).__name__}: {exc}{tail}"
    return ""


def _kernel_config(work: Path, redact_file: Path):
    """The kernel manager's settings: the redact file in its environment, its log in ``work``,
    and unix sockets in ``work`` instead of loopback ports other users could reach."""
    from traitlets.config import Config

    settings = {"extra_env": {redact.REDACT_FILE_ENV: str(redact_file)}, "log_file": str(work / "kernel.log")}
    sockets = work / "kernel"
    if len(str(sockets)) < _MAX_SOCKET_PREFIX:
        settings.update(transport="ipc", ip=str(sockets))
    return Config({_kernel_manager_class().__name__: settings})


class KernelSession:
    """One kernel for several runs (the runbooks of one triage incident).

    The kernel starts with the first run and is shut down by :meth:`close` (or when the session
    is used as a context manager). Its environment carries one redact file for all the runs. A
    run that times out or kills the kernel discards it; the next run starts a new one. Runs in a
    session share the kernel's namespace; every runbook notebook assigns what it reads.
    """

    def __init__(self, outputs_dir: str | os.PathLike | None = None):
        self.work = _private_tmpdir(records.outputs_dir(outputs_dir))
        self.redact_file = self.work / "redact"
        self.redact_file.touch(mode=0o600)
        self._km = None
        self.starts = 0  # kernels started (the benchmark and tests read it)

    def manager(self):
        """The kernel manager the next run uses (papermill starts the kernel when it has none)."""
        if self._km is None:
            cls = _kernel_manager_class()
            self._km = cls(kernel_name=kernel.ensure_kernel(), config=_kernel_config(self.work, self.redact_file))
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
                pass

    def close(self) -> None:
        self.discard()
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> "KernelSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
