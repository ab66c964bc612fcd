"""Incident records: where they go, how they are written, scrubbed, rendered and indexed.

One run leaves one directory::

    <outputs>/<YYYY-MM-DD>/<run_id>/<section>.ipynb   the executed notebook, scrubbed
                                   <section>.json    the verdict JSON (design.md's contract)
                                   <section>.html    the notebook rendered, inputs hidden
    <outputs>/index.jsonl                            one line per run, appended under a lock

Every file is written atomically (a temporary file in the same directory, fsync, rename), so a
reader, or a crash, never sees half a record. Files are created ``0600``: a record describes
infrastructure even when its secrets are masked.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .redact import Redactor

OUTPUTS_ENV = "RUNBOOK_OUTPUTS"
INDEX_NAME = "index.jsonl"


def outputs_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where records go: ``explicit``, else ``$RUNBOOK_OUTPUTS``, else ``./outputs`` (absolute)."""
    chosen = explicit or os.environ.get(OUTPUTS_ENV) or "outputs"
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class RecordPaths:
    """The files of one run's record."""

    outputs: Path
    dir: Path
    notebook: Path
    verdict: Path
    html: Path

    def as_dict(self) -> dict[str, Path]:
        return {"notebook": self.notebook, "verdict": self.verdict, "html": self.html}

    def relative(self, path: Path, *, to: Path | None = None) -> str:
        """``path`` relative to ``to`` (default: the outputs folder's parent), else absolute."""
        base = to if to is not None else self.outputs.parent
        try:
            return str(path.relative_to(base))
        except ValueError:
            return str(path)


def record_paths(outputs: Path, run_id: str, section: str, day: str) -> RecordPaths:
    """The record layout for one run; ``day`` is the run's UTC date, ``YYYY-MM-DD``."""
    d = outputs / day / run_id
    return RecordPaths(outputs, d, d / f"{section}.ipynb", d / f"{section}.json", d / f"{section}.html")


# --- writing --------------------------------------------------------------------------------

def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one step: temp file alongside, fsync, ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still done
    finally:
        os.close(fd)


# --- scrubbing ------------------------------------------------------------------------------

def _is_binary(mime: str) -> bool:
    """Base64 payloads: no secret is readable in them, and masking would corrupt them."""
    return mime.startswith(("image/", "audio/", "video/")) and mime != "image/svg+xml"


def _binary_slots(nb: dict) -> Iterator[dict]:
    """Every mime bundle of the notebook that may hold base64 payloads."""
    for cell in nb.get("cells", []):
        attachments = cell.get("attachments") or {}
        yield from (b for b in attachments.values() if isinstance(b, dict))
        for out in cell.get("outputs", []) or []:
            if isinstance(out.get("data"), dict):
                yield out["data"]


def scrub_notebook(nb: Any, redactor: Redactor):
    """A scrubbed copy of a notebook: every source, output, traceback and metadata value.

    The whole document goes through :meth:`Redactor.obj`, so values under secret-looking keys
    (``metadata.papermill.parameters.password``) are masked whole and every string is searched
    for known secret values and credential syntaxes. Binary payloads (PNG, JPEG ...) are left
    untouched. Returns an ``nbformat.NotebookNode``.
    """
    import nbformat

    doc = json.loads(json.dumps(nb))  # a deep copy made of plain dicts and lists
    removed = [{m: bundle.pop(m) for m in list(bundle) if _is_binary(m)} for bundle in _binary_slots(doc)]
    clean = redactor.obj(doc)
    for bundle, payloads in zip(_binary_slots(clean), removed):
        bundle.update(payloads)
    return nbformat.from_dict(clean)


# --- rendering ------------------------------------------------------------------------------

_html_lock = threading.Lock()


@functools.cache
def _html_exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)


def render_html(nb: Any) -> str:
    """The notebook as a standalone HTML page with code inputs and prompts hidden."""
    with _html_lock:
        body, _ = _html_exporter().from_notebook_node(nb)
    return body


def warm_html() -> None:
    """Load nbconvert and compile its templates (half a second) while a notebook still runs."""
    import nbformat

    render_html(nbformat.v4.new_notebook())


def notebook_text(nb: Any) -> str:
    """The notebook serialised as .ipynb JSON."""
    import nbformat

    return nbformat.writes(nb)


# --- the index ------------------------------------------------------------------------------

def index_path(outputs: Path) -> Path:
    return outputs / INDEX_NAME


def append_index(outputs: Path, entry: dict) -> None:
    """Append one JSON line to ``<outputs>/index.jsonl`` under an exclusive ``flock``.

    The line is written with a single ``write`` while the lock is held, so concurrent runs
    (threads or processes) never interleave or tear lines.
    """
    outputs.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=False, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(index_path(outputs), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_index(outputs: Path) -> list[dict]:
    """Every run in the index, oldest first. Lines that do not parse are skipped."""
    try:
        fh = open(index_path(outputs), encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def index_entry(verdict, paths: RecordPaths, exit_code: int) -> dict:
    """The index line for one run: who, when, how it ended, where its record is."""
    from .verdict import STATUSES

    counts = {s: sum(1 for f in verdict.findings if f.status == s) for s in STATUSES}
    return {
        "run_id": verdict.run_id,
        "runbook": verdict.runbook,
        "site": verdict.site,
        "started": verdict.started,
        "finished": verdict.finished,
        "exit_code": exit_code,
        "counts": counts,
        "problems": sorted(f.id for f in verdict.findings if f.status == "problem"),
        "error": verdict.error,
        "record": {k: paths.relative(p, to=paths.outputs) for k, p in paths.as_dict().items()},
    }
