"""Headless runs: one runbook notebook, executed with papermill, kept as a scrubbed record.

The contract with the notebooks (``notebooks/<section>.ipynb``): the ``parameters`` cell holds plain
literals; the runner always injects ``site_file``, ``run_id``, ``verdict_path`` and
``headless = True`` next to the operator's own parameters; the notebook's last cell writes
``Verdict.to_json()`` to ``verdict_path``.

What a run does, in order:

1. refuse what must not run, before anything is started or contacted: an unknown section, a
   parameter the notebook does not declare or whose value does not fit its declared type
   (:mod:`runbook_lib.parameters`), a secret-looking parameter holding a literal instead of a
   reference (parameters end up in the record; credentials must not), a site file that fails
   validation;
2. execute the notebook on this interpreter's kernel (:mod:`runbook_lib.kernel`), talking to it
   over Unix sockets (``transport="ipc"``) in a private 0700 temporary directory, never a TCP
   port; the kernel's environment names a socket (:mod:`runbook_lib.secret_channel`) over which
   every secret the kernel resolves is reported back. The executed notebook is kept in memory
   (a papermill I/O handler), never written unscrubbed;
3. build a :class:`~runbook_lib.redact.Redactor` from those values, the site's own secrets and
   what this process registered, and scrub the whole notebook and the verdict with it;
4. write the record into a hidden staging directory and publish it with one rename
   (:class:`runbook_lib.records.RecordTarget`), with its provenance (the input notebook's
   SHA-256, the project's version, the checksums of the record's files, the measured duration),
   append the hash-chained index line, apply the retention setting, and delete the temporary
   directory whatever happened.

A cell that fails, a cell that times out, a kernel that dies: the record is still written, with
the failure in ``error`` and exit code 3. Outputs that cannot be written: the verdict is returned
all the same, with the failure in ``error``. A ``KeyboardInterrupt`` (SIGINT; the command line
turns SIGTERM and SIGHUP into one too) stops the kernel, keeps the partial record marked
interrupted, and is raised again.

Runs in separate processes may happen at the same time (each claims its own record directory and
appends to the index under a lock). Within one process they are serialised, because papermill
changes the working directory while it runs. Several runs can share one kernel through a
:class:`KernelSession`: a triage incident pays for one kernel start, not one per runbook.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import archive, interrupts, kernel, records, redact, secret_channel
from .errors import RunbookError, SiteError
from .kernel_session import KernelSession, private_tmpdir, sweep_stale_workdirs
from .site import load_site, resolve_secret, secret_refs
from .verdict import Verdict

NOTEBOOKS_ENV = "RUNBOOK_NOTEBOOKS"
INJECTED = ("site_file", "run_id", "verdict_path", "headless")
# injected only into the notebooks that declare it: the record directory of the run (triage keeps
# the records of the runbooks it runs there)
INJECTED_IF_DECLARED = ("record_dir",)
_CLAIM_TRIES = 8
# an interrupted run keeps its record without HTML rather than wait longer for the renderer
INTERRUPTED_HTML_WAIT = 5.0

# papermill changes the process's working directory while a notebook runs: one run at a time
_RUN_LOCK = threading.Lock()


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


# --- secrets ------------------------------------------------------------------------------------

def secret_values(site_file: Path | None, sink: "secret_channel.SecretSink | None" = None) -> set[str]:
    """Every secret value a record must not contain.

    The values the kernel resolved (sent over ``sink``), the site's secret references that
    resolve here (those that do not are skipped: the kernel could not have read them either), and
    everything registered in this process.
    """
    values: set[str] = set()
    if sink is not None:
        values |= sink.values()
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

def prepare(section: str, parameters: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any], set[str]]:
    """The notebook of ``section`` and the operator's parameters checked and converted to the types
    its ``parameters`` cell declares (:mod:`runbook_lib.parameters`). Raises :class:`RunbookError`
    before anything is started or contacted."""
    from . import parameters as typed

    nb_path = notebook_path(section)
    given = dict(parameters or {})
    declared = typed.declared(nb_path)
    for name in given:  # names first: a misspelt one is named as such, not as a bad value
        if name in INJECTED or name in INJECTED_IF_DECLARED or name not in declared:
            check_parameters({name: given[name]}, set(declared))
    converted = typed.convert(given, declared)
    check_parameters(converted, set(declared))
    return nb_path, converted, set(declared)


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
    notebook has started, failures end up in the verdict's ``error`` instead (a record that cannot
    be written too: the verdict is returned all the same, with ``record_dir`` None). A
    ``KeyboardInterrupt`` (SIGINT, or SIGTERM/SIGHUP as the command line maps them) stops the
    kernel, keeps the partial record marked interrupted, and is raised again with the
    :class:`RunResult` as its ``result`` attribute.
    """
    records.skip_slow_optional_imports()
    nb_path, parameters, declared = prepare(section, parameters)
    site_path = Path(site_file).expanduser().resolve()
    site = load_site(site_path)

    started, clock = utc_now(), time.monotonic()
    outputs = records.outputs_dir(outputs_dir)
    sweep_stale_workdirs()
    records.sweep_stale_partials(outputs)
    target = _claim_record(outputs, section, run_id, started, record_dir, incident="record_dir" in declared)
    run_id = target.final.dir.name if record_dir is None else (run_id or target.final.dir.name)

    own_session = session is None
    work: Path | None = None
    interrupt: BaseException | None = None
    try:
        work = private_tmpdir(outputs)
        session = session or KernelSession(outputs, work=work)
        source = nb_path.read_bytes()  # the bytes hashed are the bytes run
        verdict_file = work / "verdict.json"
        injected = {**parameters, "site_file": str(site_path), "run_id": run_id,
                    "verdict_path": str(verdict_file), "headless": True}
        if "record_dir" in declared:
            injected["record_dir"] = str(target.final.dir)

        threading.Thread(target=records.warm_html, name="warm-html", daemon=True).start()
        store = _MemoryNotebooks.new()
        try:
            interrupts.raise_if_pending()
            with interrupts.while_running(session.signal_kernel):
                error = _execute(source, store, injected, cwd=nb_path.parent, progress=progress,
                                 timeout=timeout, session=session)
            interrupts.raise_if_pending()  # a signal that stopped the kernel without raising
        except KeyboardInterrupt as exc:
            interrupt = exc
            session.kill()  # the event loop was interrupted mid-call: stop the kernel the hard way
            error = f"interrupted by {interrupts.signal_name(exc)} before the run finished"
        finished = utc_now()

        verdict, nb = _collect(section, source, _MemoryNotebooks.pop(store), verdict_file, error)
        verdict.run_id = run_id
        verdict.runbook = section
        verdict.site = verdict.site or site.name
        verdict.started = verdict.started or iso(started)
        verdict.finished = verdict.finished or iso(finished)
        verdict.parameters = {"site_file": str(site_path), **parameters}
        verdict.record = target.final.relative(target.final.notebook)
        for w in site.insecure_settings():
            if w not in verdict.warnings:
                verdict.warnings.append(w)

        # parameters under secret-looking names are references or switches (check_parameters);
        # Redactor.obj masks whatever else sits under such a name in metadata and verdict
        redactor = redact.Redactor(secret_values(site_path, session.sink))

        nb.metadata.setdefault("papermill", {})
        nb.metadata.papermill["input_path"] = str(nb_path)
        nb.metadata.papermill["output_path"] = str(target.final.notebook)
        verdict = Verdict.from_dict(redactor.obj(verdict.to_dict()))
        verdict.provenance = provenance(section, nb_path, source, run_id, indexed=index)
        verdict.provenance["seconds"] = round(time.monotonic() - clock, 3)  # the stamps are whole seconds
        nb.metadata["runbook"] = {"provenance": dict(verdict.provenance)}
        clean_nb = records.scrub_notebook(nb, redactor)

        result = _keep_record(target, clean_nb, verdict, outputs, section, index=index,
                              html_wait=INTERRUPTED_HTML_WAIT if interrupt is not None else None)
        if interrupt is not None:
            interrupt.result = result  # type: ignore[attr-defined]
            raise interrupt
        return result
    finally:
        if own_session and session is not None:
            session.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        target.abandon()  # a record directory claimed for nothing goes again


def _keep_record(target: "records.RecordTarget", nb, verdict: Verdict, outputs: Path, section: str, *,
                 index: bool, html_wait: float | None = None) -> RunResult:
    """Write the record (whole or not at all), index it, apply retention. A record that cannot be
    written makes the run fail (exit 3), but the verdict is returned all the same."""
    from .errors import RunFailed

    paths = target.final
    try:
        target.ensure()
        digest = records.write_record(target.staging, nb, verdict, html_wait=html_wait)
        target.publish()
        exit_code = verdict.exit_code()
        if index:
            parts = sorted(p.stem for p in paths.dir.glob("*.json") if p.stem != section)
            records.index_run(outputs, verdict, paths, exit_code, verdict_sha256=digest, parts=parts)
    except (RunFailed, OSError) as exc:
        target.abandon(force=True)
        reason = str(exc) if isinstance(exc, RunFailed) else f"{exc.strerror or exc}"
        verdict.error = "; ".join(filter(None, [verdict.error, f"the record could not be written: {reason}"]))
        verdict.record = ""
        return RunResult(verdict=verdict, exit_code=verdict.exit_code(), record_dir=None, paths={})
    if index:
        _apply_retention(outputs, verdict.run_id)
    return RunResult(verdict=verdict, exit_code=exit_code, record_dir=paths.dir, paths=paths.as_dict())


def _claim_record(outputs: Path, section: str, run_id: str | None, started: datetime,
                  record_dir: str | os.PathLike | None, *, incident: bool = False) -> records.RecordTarget:
    """Where the record goes: into ``record_dir`` (which must exist and not hold this runbook's
    record yet), or into a new directory published whole at the end (a drawn run id that is taken
    is drawn again; a given one that is taken is an error). A notebook that keeps an incident in
    its record directory (``incident``) gets that directory now. Outputs that cannot be written
    are not an error yet: the run goes on and its verdict says the record could not be kept."""
    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id):
        raise RunbookError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-'")
    if record_dir is not None:
        directory = Path(record_dir).expanduser().resolve()
        if not directory.is_dir():
            raise RunbookError(f"record directory {directory} does not exist")
        paths = records.paths_in(outputs, directory, section)
        if paths.verdict.exists() or paths.notebook.exists():
            raise RunbookError(f"{directory} already holds a {section} record")
        return records.RecordTarget(paths)
    day = started.strftime("%Y-%m-%d")
    if incident:
        try:
            directory = claim_record_dir(outputs, run_id=run_id, started=started)
        except OSError as exc:
            return records.RecordTarget(records.paths_in(outputs, outputs / day / (run_id or new_run_id(started)),
                                                         section), claim_error=exc)
        return records.RecordTarget(records.paths_in(outputs, directory, section), owns_dir=True)
    for _ in range(_CLAIM_TRIES):
        chosen = run_id or new_run_id(started)
        try:
            return records.claim_staging(outputs, day, chosen, section)
        except FileExistsError:
            if run_id is not None:
                raise RunbookError(f"run id {run_id} is already taken ({outputs / day / run_id})") from None
        except OSError as exc:
            return records.RecordTarget(records.paths_in(outputs, outputs / day / chosen, section), claim_error=exc)
    raise RunbookError(f"could not claim a new record directory under {outputs / day}")


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
    try:
        archive.apply_retention(outputs, keep=[run_id])
    except (OSError, RunbookError) as exc:  # retention must never cost a run its result
        print(f"runbook: warning: retention: {exc}", file=sys.stderr)


class _MemoryNotebooks:
    """A papermill I/O handler keeping the executed notebook in memory (``runbook-memory://KEY``):
    the notebook is unscrubbed until the runner scrubs it, so it is never written to disk."""

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


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in tail if line.strip())


def _execute(source: bytes, out: str, parameters: dict, *, cwd: Path, progress: bool,
             timeout: float | None, session: "KernelSession") -> str:
    """Run the notebook (its bytes) into the in-memory ``out``; return "" or what went wrong
    (unscrubbed: the caller scrubs)."""
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


def _collect(section: str, source: bytes, executed, verdict_file: Path, error: str):
    """The executed notebook (or the template, if execution never started) and its verdict."""
    import nbformat

    nb = executed if executed is not None else nbformat.reads(source.decode("utf-8"), as_version=4)
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
