"""Headless runs: parameters checked, a record claimed, the notebook executed, the verdict kept.

The contract with the notebooks (``notebooks/<section>.ipynb``): the ``parameters`` cell holds plain
literals; the runner always injects ``site_file``, ``run_id``, ``verdict_path`` and
``headless = True`` next to the operator's own parameters; the notebook's last cell writes
``Verdict.to_json()`` to ``verdict_path``.

What :func:`run_runbook` does, in order:

1. refuse what must not run, before anything is started or contacted: an unknown section, a
   parameter the notebook does not declare or whose value does not fit its declared type
   (:mod:`runbook_lib.parameters`), a secret-looking parameter holding a literal instead of a
   reference (parameters end up in the record; credentials must not), a site file that fails
   validation;
2. claim the run's record (:class:`runbook_lib.record.Record`): its run id, its hidden staging
   directory, its private 0700 work directory;
3. execute the notebook (:func:`runbook_lib.execute.execute`) on this interpreter's kernel over
   Unix sockets in that directory; the kernel reports every secret it resolves over a socket
   (:mod:`runbook_lib.secret_channel`), and the executed notebook is kept in memory;
4. read the verdict the notebook wrote, complete it (run id, times, parameters, the site's
   warnings, provenance) and scrub it with a :class:`~runbook_lib.redact.Redactor` built from
   those values, the site's own secrets and what this process registered;
5. ask the record to publish itself (it scrubs the notebook with the same redactor, writes its
   files and renames its directory into place) and to index itself; the exit code follows the
   verdict. The record removes what was not published, and the work directory, whatever happened.

A cell that fails, a cell that times out, a kernel that dies: the record is still written, with
the failure in ``error`` and exit code 3. Outputs that cannot be written: the verdict is returned
all the same, with the failure in ``error``. A ``KeyboardInterrupt`` (SIGINT; the command line
turns SIGTERM and SIGHUP into one too) stops the kernel, keeps the partial record marked
interrupted, and is raised again.

Runs in separate processes may happen at the same time (each claims its own record and appends to
the index under a lock); within one process they are serialised (:mod:`runbook_lib.execute`).
Several runs can share one kernel through a :class:`KernelSession`: the runs of ``runbook check``
in a test, say, pay for one kernel start.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import redact, secret_channel
from .errors import RunbookError, RunFailed, SiteError
from .evidence import EVIDENCE_FILE
from .execute import Execution, execute, skip_slow_optional_imports
from .kernel_session import KernelSession
from .record import Record, iso, utc_now
from .records import EVIDENCE_SUFFIX
from .site import load_site, resolve_secret, secret_refs
from .verdict import Verdict

NOTEBOOKS_ENV = "RUNBOOK_NOTEBOOKS"
INJECTED = ("site_file", "run_id", "verdict_path", "headless")


@dataclass
class RunResult:
    """How a run ended: the (scrubbed) verdict, its exit code and where the record is."""

    verdict: Verdict
    exit_code: int
    record_dir: Path | None
    paths: dict[str, Path]  # notebook, verdict, html; empty when no record could be kept


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


# --- parameters -------------------------------------------------------------------------------

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
        if name in INJECTED or name not in declared:
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
    session: "KernelSession | None" = None,
) -> RunResult:
    """Run one runbook headless and keep its record; see the module docstring.

    ``timeout`` bounds each cell (seconds; ``None``: no bound beyond the sources' own deadlines).
    ``run_id`` names the run instead of drawing an id (it must not be taken). ``session`` runs the
    notebook on a kernel shared with other runs.

    Raises :class:`RunbookError` (``SiteError`` included) when the run cannot start; once the
    notebook has started, failures end up in the verdict's ``error`` instead (a record that cannot
    be written too: the verdict is returned all the same, with ``record_dir`` None). A
    ``KeyboardInterrupt`` (SIGINT, or SIGTERM/SIGHUP as the command line maps them) stops the
    kernel, keeps the partial record marked interrupted, and is raised again with the
    :class:`RunResult` as its ``result`` attribute.
    """
    skip_slow_optional_imports()
    nb_path, parameters, _ = prepare(section, parameters)
    site_path = Path(site_file).expanduser().resolve()
    site = load_site(site_path)

    started, clock = utc_now(), time.monotonic()
    with Record.claim(outputs_dir, section, run_id, started=started) as record, \
            _kernel(session, record) as session:
        source = nb_path.read_bytes()  # the bytes hashed are the bytes run
        verdict_file = record.workdir / "verdict.json"
        injected = {**parameters, "site_file": str(site_path), "run_id": record.run_id,
                    "verdict_path": str(verdict_file), "headless": True}
        run = execute(source, injected, session=session, cwd=nb_path.parent, progress=progress, timeout=timeout)
        finished = utc_now()

        verdict = _verdict_of(section, run, verdict_file)
        verdict.run_id = record.run_id
        verdict.runbook = section
        verdict.site = verdict.site or site.name
        verdict.started = verdict.started or iso(started)
        verdict.finished = verdict.finished or iso(finished)
        verdict.parameters = {"site_file": str(site_path), **parameters}
        for w in site.insecure_settings():
            if w not in verdict.warnings:
                verdict.warnings.append(w)

        # parameters under secret-looking names are references or switches (check_parameters);
        # Redactor.obj masks whatever else sits under such a name in metadata and verdict
        redactor = redact.Redactor(secret_values(site_path, session.sink))
        verdict = Verdict.from_dict(redactor.obj(verdict.to_dict()))
        verdict.provenance = provenance(section, nb_path, source, record.run_id)
        verdict.provenance["seconds"] = round(time.monotonic() - clock, 3)  # the stamps are whole seconds
        run.notebook.metadata.setdefault("papermill", {})
        run.notebook.metadata.papermill["input_path"] = str(nb_path)

        result = _keep(record, run, verdict, redactor, _evidence_of(verdict_file, redactor, verdict))
        if run.interrupt is not None:
            run.interrupt.result = result  # type: ignore[attr-defined]
            raise run.interrupt
        return result


@contextmanager
def _kernel(session: KernelSession | None, record: Record) -> Iterator[KernelSession]:
    """``session``, or a kernel of this run's own (its sockets in the record's work directory),
    shut down when the run ends."""
    if session is not None:
        yield session
        return
    with KernelSession(record.outputs, work=record.workdir) as own:
        yield own


def _evidence_of(verdict_file: Path, redactor: redact.Redactor, verdict: Verdict) -> dict[str, str]:
    """The evidence the notebook wrote beside its verdict, scrubbed, as the record's attachment
    (``<runbook>.evidence.json``); none when the run stopped before judging. Evidence that does not
    parse costs a warning, never the record."""
    path = verdict_file.with_name(EVIDENCE_FILE)
    if not path.exists():
        return {}
    try:
        doc = redactor.obj(_read_json(path))
    except (OSError, ValueError) as exc:
        verdict.warnings.append(f"the evidence the notebook wrote could not be kept: {exc}")
        return {}
    return {f"{verdict.runbook}{EVIDENCE_SUFFIX}": json.dumps(doc, indent=1) + "\n"}


def _keep(record: Record, run: Execution, verdict: Verdict, redactor: redact.Redactor,
          attachments: dict[str, str]) -> RunResult:
    """Publish and index the record. A record that cannot be written makes the run fail (exit 3),
    but the verdict is returned all the same."""
    try:
        record.publish(run.notebook, verdict, redactor, interrupted=run.interrupt is not None,
                       attachments=attachments)
        record.index()
    except RunFailed as exc:
        verdict.error = "; ".join(filter(None, [verdict.error, f"the record could not be written: {exc}"]))
        verdict.record = ""
        return RunResult(verdict=verdict, exit_code=verdict.exit_code(), record_dir=None, paths={})
    return RunResult(verdict=verdict, exit_code=verdict.exit_code(), record_dir=record.paths.dir,
                     paths=record.paths.as_dict())


def project_version() -> str:
    """The installed distribution's version, else the package's own."""
    try:
        from importlib.metadata import version

        return version("omni-runbooks")
    except Exception:  # not installed (a checkout on sys.path)
        import runbook_lib

        return runbook_lib.__version__


def provenance(section: str, nb_path: Path, source: bytes, run_id: str) -> dict:
    """What proves what ran: the input notebook and its hash, the versions, the run id.

    ``checksums`` (the record's files) is added when the record is written; ``indexed`` says this
    verdict is the one its record's index line is made from.
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
        "input_sha256": hashlib.sha256(source).hexdigest(),
        "project_version": project_version(),
        "python": sys.version.split()[0],
        "papermill": papermill.__version__,
        "indexed": True,
    }


def _verdict_of(section: str, run: Execution, verdict_file: Path) -> Verdict:
    """The verdict the notebook wrote (none: an empty one), with what went wrong as its error."""
    error = run.error
    verdict = Verdict(runbook=section, findings=[])
    if verdict_file.exists():
        try:
            verdict = Verdict.from_dict(_read_json(verdict_file))
        except (ValueError, TypeError, KeyError) as exc:
            error = error or f"the notebook wrote a verdict that does not parse: {exc}"
    elif not error:
        error = "the notebook finished without writing its verdict"
    verdict.error = error
    return verdict


def _read_json(path: Path) -> dict:
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data
