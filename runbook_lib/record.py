"""One run's record, owned by one object from its claim to its index line: :class:`Record`.

::

    with Record.claim(outputs, "provider") as record:   # <day>/.<run_id>.<pid>.partial, exclusively
        record.workdir                                  # the run's private 0700 directory
        ...                                             # the notebook runs (runbook_lib.execute)
        record.publish(notebook, verdict, redactor)     # scrubbed, written, renamed to <day>/<run_id>
        record.index()                                  # the hash-chained index line, then retention
    # leaving the block, however: what was not published is removed, and the private directory

A record is *claimed* (its run id, a hidden staging directory beside its final place, created
exclusively so that two runs never share one), *published* whole (its files written into the
staging directory, the verdict JSON last with the checksums of the others, then one rename to
``<day>/<run_id>``) and *indexed* (one line appended to ``index.jsonl``, chained to the line before
it; the retention setting applied, never to this run). :meth:`Record.discard` removes what was
claimed and not published, and the private directory; the context manager calls it on every way
out (an exception, a signal turned into ``KeyboardInterrupt``). A run killed with SIGKILL leaves
its staging and private directories; the next claim removes them.

Outputs that cannot be written do not stop a run: the claim still gives a run id and a private
directory, and :meth:`Record.publish` then fails with :class:`~runbook_lib.errors.RunFailed`
naming why, so the verdict can say the record could not be kept.

The record never calls the runner. Run ids and the UTC stamps records carry are defined here,
once: :func:`new_run_id`, :func:`iso`, :func:`utc_now`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import kernel_session, records
from .errors import RunbookError, RunFailed
from .redact import Redactor

KIND = "incident"  # what a record of a runbook run is (not in the index line yet; see Record.kind)
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # what a run id given by the caller may hold
CLAIM_TRIES = 8
# an interrupted run keeps its record without HTML rather than wait longer for the renderer
INTERRUPTED_HTML_WAIT = 5.0
_PARTIAL = re.compile(r"\.(.+)\.(\d+)\.partial")  # <day>/.<run_id>.<pid>.partial


# --- run ids and stamps -------------------------------------------------------------------------

def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime | None = None) -> str:
    """``2026-11-27T10:15:00Z`` (default: now), as the verdict's ``started`` and ``finished``."""
    return (t or utc_now()).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(now: datetime | None = None) -> str:
    """``20261127T101500Z-3f9c``: sortable by time, unique enough for one site's runs (a claim
    that meets a taken one draws again)."""
    now = now or utc_now()
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def day_of(t: datetime) -> str:
    """The record's day folder, ``YYYY-MM-DD`` (UTC)."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d")


# --- one record -----------------------------------------------------------------------------------

class Record:
    """One run's record from claim to index; see the module docstring. Made by :meth:`claim`.

    ``paths`` are where the record's files will be once published; ``kind`` says what the record
    is (``incident``: a runbook run), kept for the index line that will carry it.
    """

    def __init__(self, outputs: Path, runbook: str, run_id: str, started: datetime, *,
                 staging: Path | None, claim_error: OSError | None = None, kind: str = KIND):
        self.outputs = outputs
        self.runbook = runbook
        self.run_id = run_id
        self.started = started
        self.kind = kind
        self.paths = records.paths_in(outputs, outputs / day_of(started) / run_id, runbook)
        self._staging = staging
        self._claim_error = claim_error
        self._workdir: Path | None = None
        self._verdict = None  # the verdict published, for the index line
        self.verdict_sha256 = ""  # the digest of the verdict JSON as published
        self.published = False
        self.entry: dict | None = None  # the index line, once indexed

    @classmethod
    def claim(cls, outputs: str | os.PathLike | None, runbook: str, run_id: str | None = None, *,
              started: datetime | None = None, kind: str = KIND) -> "Record":
        """Claim a new record under ``outputs`` (default: ``$RUNBOOK_OUTPUTS``, else ./outputs).

        A drawn run id that is taken (by a record, or by a run still writing one) is drawn again;
        a given one that is taken is a :class:`RunbookError`. What runs killed with SIGKILL left
        behind is removed first. Outputs that cannot be written are not an error here (see the
        module docstring). Starts loading the HTML renderer while the notebook runs.
        """
        if run_id is not None and not RUN_ID.fullmatch(run_id):
            raise RunbookError(f"run id {run_id!r} may hold only letters, digits, '.', '_' and '-'")
        started = started or utc_now()
        outputs = records.outputs_dir(outputs)
        kernel_session.sweep_stale_workdirs()
        sweep_stale_partials(outputs)
        day = outputs / day_of(started)
        for _ in range(CLAIM_TRIES):
            chosen = run_id or new_run_id(started)
            try:
                staging = _claim_staging(day, chosen)
            except FileExistsError:
                if run_id is not None:
                    raise RunbookError(f"run id {run_id} is already taken ({day / run_id})") from None
                continue
            except OSError as exc:
                return cls(outputs, runbook, chosen, started, staging=None, claim_error=exc, kind=kind)
            threading.Thread(target=records.warm_html, name="warm-html", daemon=True).start()
            return cls(outputs, runbook, chosen, started, staging=staging, kind=kind)
        raise RunbookError(f"could not claim a new record directory under {day}")

    # --- while the run goes on ----------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The run's private directory (0700, never under the outputs folder): the kernel's sockets
        and log, the verdict JSON the notebook writes (scrubbed in the kernel). Made on first use,
        removed by :meth:`discard`."""
        if self._workdir is None:
            self._workdir = kernel_session.private_tmpdir(self.outputs)
        return self._workdir

    def relative(self, path: Path | None = None) -> str:
        """``path`` (default: the notebook) as the verdict's ``record`` shows it: relative to the
        outputs folder's parent."""
        return self.paths.relative(self.paths.notebook if path is None else path)

    # --- publishing -----------------------------------------------------------------------------

    def publish(self, notebook: Any, verdict, redactor: Redactor, *, interrupted: bool = False,
                attachments: dict[str, str | bytes] | None = None) -> None:
        """Scrub ``notebook`` with ``redactor``, write the record and publish it whole.

        ``verdict`` is already scrubbed (it is shown too, record or not); it gets its ``record``
        path and its ``provenance.checksums`` here. ``attachments`` are more files of the record
        (name: content), checksummed like the others. An ``interrupted`` run waits only briefly
        for the HTML renderer. Raises :class:`RunFailed` when the record cannot be written; nothing
        of it is left then.
        """
        verdict.record = self.relative()

        def write(staged: records.RecordPaths) -> str:
            notebook.metadata.setdefault("papermill", {})
            notebook.metadata.papermill["output_path"] = str(self.paths.notebook)
            notebook.metadata["runbook"] = {"provenance": dict(verdict.provenance)}
            return records.write_record(staged, records.scrub_notebook(notebook, redactor), verdict,
                                        html_wait=INTERRUPTED_HTML_WAIT if interrupted else None,
                                        attachments=attachments)
        try:
            self._publish(write)
        except RunFailed:
            verdict.record = ""
            raise
        self._verdict = verdict

    def publish_document(self, doc: dict) -> None:
        """Publish a record that is one JSON document (a drill: no notebook, no site observed) at
        ``paths.verdict``, whole, like :meth:`publish`."""
        body = (json.dumps(doc, indent=1) + "\n").encode("utf-8")

        def write(staged: records.RecordPaths) -> str:
            records.write_atomic(staged.verdict, body)
            return records.sha256_bytes(body)
        self._publish(write)

    def _publish(self, write: Callable[[records.RecordPaths], str]) -> None:
        """``write`` the files into the staging directory (it returns the main JSON's digest), then
        rename it into place in one step; on failure nothing of the record is left."""
        if self.published:
            raise RunbookError(f"record {self.run_id} is already published")
        try:
            if self._claim_error is not None:
                raise RunFailed(f"cannot create the record directory under {self.paths.dir.parent}: "
                                f"{self._claim_error.strerror or self._claim_error}")
            self.verdict_sha256 = write(records.paths_in(self.outputs, self._staging, self.runbook))
            try:
                os.rename(self._staging, self.paths.dir)
            except OSError as exc:
                raise RunFailed(f"cannot publish the record as {self.paths.dir}: {exc.strerror or exc}") from None
            records.fsync_dir(self.paths.dir.parent)
        except RunFailed:
            self._remove_staging()
            raise
        self.published = True

    def index(self, entry: dict | None = None) -> dict:
        """Append the record's index line (hash-chained, its manifest taken from the files now),
        then apply the retention setting to the others. ``entry`` is the line of a record that is
        not a runbook's verdict (a drill's); its checksums are filled in here. Raises
        :class:`RunFailed` when the index cannot be written; a retention failure is only a warning."""
        if not self.published:
            raise RunbookError(f"record {self.run_id} is not published")
        try:
            if entry is None:
                self.entry = records.index_run(self.outputs, self._verdict, self.paths, self._verdict.exit_code(),
                                               verdict_sha256=self.verdict_sha256, parts=[])
            else:
                self.entry = {**entry, "kind": self.kind, "verdict_sha256": self.verdict_sha256,
                              "manifest_sha256": records.record_manifest_sha256(self.paths.dir)}
                records.append_index(self.outputs, self.entry)
        except OSError as exc:
            raise RunFailed(f"{exc.strerror or exc}") from None
        self._apply_retention()
        return self.entry

    def _apply_retention(self) -> None:
        """Prune old records when ``RUNBOOK_RETENTION_DAYS`` is set (:mod:`runbook_lib.archive`),
        never this one."""
        import sys

        from . import archive  # archive reads the stamps defined here

        try:
            archive.apply_retention(self.outputs, keep=[self.run_id])
        except (OSError, RunbookError) as exc:  # retention must never cost a run its result
            print(f"runbook: warning: retention: {exc}", file=sys.stderr)

    # --- the end, whichever it is ---------------------------------------------------------------

    def discard(self) -> None:
        """Remove what this run made and did not publish (the staging directory, and its day
        folder when that is left empty) and the private directory. Safe to call more than once;
        a published record stays."""
        if not self.published:
            self._remove_staging()
        work, self._workdir = self._workdir, None
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)

    def _remove_staging(self) -> None:
        staging, self._staging = self._staging, None
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_empty(staging.parent)

    def __enter__(self) -> "Record":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def __repr__(self) -> str:
        state = "indexed" if self.entry else "published" if self.published else "claimed"
        return f"<Record {self.kind} {self.runbook} {self.run_id} {state}>"


def _claim_staging(day: Path, run_id: str) -> Path:
    """Create ``<day>/.<run_id>.<pid>.partial`` for this run alone; ``FileExistsError`` when the
    run id is taken (by a record already there, or by a run still writing it)."""
    staging = day / f".{run_id}.{os.getpid()}.partial"
    day.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging.mkdir(mode=0o700)
    # checked after claiming: of two runs that drew the same id, at least one sees the other
    rivals = [p for p in day.glob(f".{run_id}.*.partial") if p != staging]
    if (day / run_id).exists() or rivals:
        staging.rmdir()
        raise FileExistsError(str(day / run_id))
    return staging


def sweep_stale_partials(outputs: Path) -> None:
    """Remove the staging directories of runs whose process is gone (killed with SIGKILL before
    their record was published): never a record, only what was being written."""
    if not outputs.is_dir():
        return
    for partial in outputs.glob("*/.*.partial"):
        m = _PARTIAL.fullmatch(partial.name)
        if not m or not partial.is_dir() or partial.is_symlink():
            continue
        try:
            os.kill(int(m.group(2)), 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
            _remove_empty(partial.parent)
        except OSError:
            continue


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass  # not empty, or already gone
