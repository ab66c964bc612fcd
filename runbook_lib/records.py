"""The record on disk: its layout, how its files are written, scrubbed, rendered and checked, the index.

One run leaves one directory::

    <outputs>/<YYYY-MM-DD>/<run_id>/<section>.ipynb   the executed notebook, scrubbed
                                   <section>.json    the verdict JSON (design.md's contract)
                                   <section>.html    the notebook rendered, inputs hidden
    <outputs>/index.jsonl                            one line per run, appended under a lock

(Records written before triage became one notebook may hold several runbooks' files, ``health.*``,
``provider.*`` ..., plus the summary, ``triage.*``; only the summary is indexed.)

How one run's record comes to be (claimed, staged, published whole, indexed) is
:class:`runbook_lib.record.Record`'s business; this module holds what it is made of. Every file
is written atomically (a temporary file in the same directory, fsync, rename). Files are created
``0600``: a record describes infrastructure even when its secrets are masked.

**Provenance.** Each verdict JSON carries ``provenance``: the run id, the SHA-256 of the input
notebook, the project's version, and ``checksums``: the SHA-256 of every other file of its
directory when it was written. The JSON is written last; its own digest goes into the index
line (``verdict_sha256``). :func:`verify` recomputes both, so a record changed afterwards is
found. Index lines are chained (:mod:`runbook_lib.index_chain`): each carries the digest of the
line before it and of its record's manifest. The index can be rebuilt from the records
(:func:`entry_from_record`; :func:`runbook_lib.archive.rebuild` never approves a changed record).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import html as html_lib
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .index_chain import chain, entry_line, link, manifest_sha256
from .redact import Redactor

OUTPUTS_ENV = "RUNBOOK_OUTPUTS"
EVIDENCE_SUFFIX = ".evidence.json"  # <runbook>.evidence.json beside <runbook>.json
INDEX_NAME = "index.jsonl"
LOCK_NAME = ".index.lock"


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
    evidence: Path  # what the verdict was decided on (runbook_lib.evidence); absent in older records

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
    return paths_in(outputs, d, section)


def paths_in(outputs: Path, directory: Path, section: str) -> RecordPaths:
    """The files one runbook leaves in a record directory (its own, or a triage incident's)."""
    d = directory
    return RecordPaths(outputs, d, d / f"{section}.ipynb", d / f"{section}.json", d / f"{section}.html",
                       d / f"{section}{EVIDENCE_SUFFIX}")


def verdict_files(directory: Path) -> list[Path]:
    """The verdict JSONs of a record directory (its evidence files are JSON too, and are not)."""
    return sorted(p for p in directory.glob("*.json") if not p.name.endswith(EVIDENCE_SUFFIX))


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
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
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


def write_record(paths: RecordPaths, nb: Any, verdict, *, html_wait: float | None = None,
                 attachments: dict[str, str | bytes] | None = None) -> str:
    """Write one runbook's record: notebook, HTML (verdict first), ``attachments`` (more files, by
    name), verdict JSON, in that order.

    The JSON comes last, once the others exist, and carries in ``provenance.checksums`` the
    SHA-256 of every other file of the directory. Returns the JSON's own SHA-256 (for the index).
    A failure to render the HTML costs a warning, not the record.
    """
    from .errors import RunFailed

    try:
        paths.dir.mkdir(parents=True, exist_ok=True)
        files = {paths.notebook.name: notebook_text(nb).encode("utf-8")}
        try:
            files[paths.html.name] = render_html(nb, verdict, wait=html_wait).encode("utf-8")
        except Exception as exc:  # a rendering bug must not cost the record
            verdict.warnings.append(f"the HTML rendering of the record failed: {type(exc).__name__}")
        for name, data in (attachments or {}).items():
            own = (paths.notebook.name, paths.html.name, paths.verdict.name)
            if name in own or Path(name).name != name or name.startswith("."):
                raise ValueError(f"attachment {name!r} is not a free file name in the record")
            files[name] = data.encode("utf-8") if isinstance(data, str) else data
        for name, data in files.items():
            write_atomic(paths.dir / name, data)
        written = {name: sha256_bytes(data) for name, data in files.items()}
        verdict.provenance["checksums"] = checksums(paths.dir, exclude=(paths.verdict.name,), known=written)
        body = (verdict.to_json() + "\n").encode("utf-8")
        write_atomic(paths.verdict, body)
        return sha256_bytes(body)
    except OSError as exc:
        raise RunFailed(f"cannot write the record under {paths.dir}: {exc.strerror or exc}") from None


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


TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def _html_exporter():
    """nbconvert's lab HTML without any script from the network (``templates/runbook_record``)."""
    from nbconvert import HTMLExporter

    return HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                        extra_template_basedirs=[str(TEMPLATES)], template_name="runbook_record")


def render_html(nb: Any, verdict: Any = None, *, wait: float | None = None) -> str:
    """The notebook as a standalone HTML page with code inputs and prompts hidden.

    With ``verdict`` (a :class:`~runbook_lib.verdict.Verdict` or its dict), the page opens with
    the verdict table, so a reader sees the outcome before the evidence.
    """
    if verdict is not None:
        import nbformat

        nb = nbformat.from_dict(json.loads(json.dumps(nb)))
        banner = nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": verdict_table_html(verdict)})])
        banner.metadata["tags"] = ["verdict-banner"]
        nb.cells.insert(0, banner)
    # ``wait``: how long to wait for the renderer (a run interrupted in the middle of an import
    # can leave the thread warming it up blocked for good; the record then goes without HTML)
    if not _html_lock.acquire(timeout=-1 if wait is None else wait):
        raise TimeoutError(f"the HTML renderer was not free within {wait:g} s")
    try:
        body, _ = _html_exporter().from_notebook_node(nb)
    finally:
        _html_lock.release()
    return body


STATUS_COLOURS = {"problem": "#f8d7da", "unknown": "#fff3cd", "ok": "#d1e7dd", "skipped": "#e2e3e5"}


def verdict_table_html(verdict: Any) -> str:
    """The verdict as an HTML table: one row per finding, most severe first, coloured by status."""
    from .verdict import Verdict

    v = verdict if isinstance(verdict, Verdict) else Verdict.from_dict(verdict)
    esc = html_lib.escape
    counts = ", ".join(f"{n} {s}" for s in STATUS_COLOURS if (n := sum(f.status == s for f in v.findings)))
    head = (f"<h2 id='verdict'>Verdict: {esc(v.runbook)} runbook, site {esc(v.site or '?')}</h2>"
            f"<p>run {esc(v.run_id or '?')}, {esc(v.started or '?')} to {esc(v.finished or '?')}: "
            f"{esc(counts or 'no findings')}</p>")
    if v.error:
        head += f"<p style='background:#f8d7da;padding:4px'><b>The run failed:</b> {esc(v.error)}</p>"
    for w in v.warnings:
        head += f"<p style='background:#fff3cd;padding:4px'>warning: {esc(w)}</p>"
    head += v.causes_html()
    cell = "style='text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #bbb'"
    rows = "".join(
        f"<tr class='finding-{esc(f.status)}' style='background:{STATUS_COLOURS[f.status]}'>"
        f"<td {cell}><b>{esc(f.status)}</b></td><td {cell}><code>{esc(f.id)}</code></td>"
        f"<td {cell}>{esc(f.summary)}</td><td {cell}>{esc(f.fix) if f.status == 'problem' else ''}</td></tr>"
        for f in v.sorted_findings())
    if not v.findings:
        return head
    header = "".join(f"<th {cell}>{h}</th>" for h in ("status", "finding", "summary", "fix"))
    return (head + "<table class='verdict-table' style='border-collapse:collapse;width:100%'>"
            f"<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>")


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


@contextmanager
def index_lock(outputs: Path, *, exclusive: bool) -> Iterator[None]:
    """The lock every index reader and writer takes: a separate file, so that replacing the index
    (rebuild, prune) and appending to it can never race: an appender opens the index only once it
    holds the lock, and so always writes to the current file."""
    outputs.mkdir(parents=True, exist_ok=True)
    fd = os.open(outputs / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_index(outputs: Path, entry: dict) -> None:
    """Append one JSON line to ``<outputs>/index.jsonl`` under the index lock, chained to the line
    before it (``prev_sha256``, see :func:`chain`).

    The line is written with a single ``write`` while the lock is held, so concurrent runs
    (threads or processes) never interleave or tear lines.
    """
    with index_lock(outputs, exclusive=True):
        fd = os.open(index_path(outputs), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            entry = {**entry, "prev_sha256": link(_last_line(fd))}
            line = (json.dumps(entry, sort_keys=False, separators=(",", ":")) + "\n").encode("utf-8")
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)


def _last_line(fd: int) -> str:
    """The last non-empty line of the open index (read from its end)."""
    size = os.fstat(fd).st_size
    block, data = 1 << 16, b""
    pos = size
    while pos > 0:
        step = min(block, pos)
        pos -= step
        data = os.pread(fd, step, pos) + data
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        if len(lines) > 1 or (lines and pos == 0):
            return lines[-1].decode("utf-8", errors="replace")
    return ""


def index_lines(outputs: Path) -> list[str]:
    """The index's non-empty lines as written."""
    try:
        text = index_path(outputs).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()]


def record_manifest_sha256(directory: Path) -> str:
    """:func:`manifest_sha256` of the files a record directory holds now."""
    return manifest_sha256(checksums(directory))


def index_run(outputs: Path, verdict, paths: RecordPaths, exit_code: int, *, verdict_sha256: str,
              parts: list[str] | None = None) -> dict:
    """Append the index line of a record just written (its manifest taken from the files now)."""
    entry = index_entry(verdict, paths, exit_code, verdict_sha256=verdict_sha256, parts=parts,
                        manifest_sha256=record_manifest_sha256(paths.dir))
    append_index(outputs, entry)
    return entry


def read_index(outputs: Path) -> list[dict]:
    """Every run in the index, oldest first. Lines that do not parse are skipped."""
    if not index_path(outputs).exists():
        return []
    with index_lock(outputs, exclusive=False):
        return read_index_unlocked(outputs)


def read_index_unlocked(outputs: Path) -> list[dict]:
    """:func:`read_index` for a caller that already holds :func:`index_lock`."""
    try:
        with open(index_path(outputs), encoding="utf-8") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    entries = []
    loads = json.loads
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            entries.append(loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def index_text(entries: list[dict]) -> str:
    """Index lines as :func:`append_index` writes them, chained again (:func:`chain`)."""
    return "".join(entry_line(e) + "\n" for e in chain(entries))


def write_index(outputs: Path, entries: list[dict]) -> None:
    """Replace the whole index atomically, under the index lock."""
    with index_lock(outputs, exclusive=True):
        write_atomic(index_path(outputs), index_text(entries))


def index_entry(verdict, paths: RecordPaths, exit_code: int, *, verdict_sha256: str = "",
                parts: list[str] | None = None, manifest_sha256: str = "") -> dict:
    """The index line for one run: who, when, how it ended, where its record is.

    ``verdict_sha256`` is the digest of the verdict JSON as written; ``manifest_sha256`` the
    digest of every file of the record directory when it was written (:func:`manifest_sha256`);
    ``parts`` the other runbooks whose records share the directory (a triage incident's).
    ``writes`` counts the calls that changed a system.
    """
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
        "root_causes": list(verdict.root_causes),
        "unknown": sorted(f.id for f in verdict.findings if f.status == "unknown"),
        "error": verdict.error,
        "record": {k: paths.relative(p, to=paths.outputs) for k, p in paths.as_dict().items()},
        "parts": list(parts or []),
        "writes": len(verdict.writes),
        "verdict_sha256": verdict_sha256,
        "manifest_sha256": manifest_sha256,
    }


# --- provenance and checksums -------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_files(directory: Path) -> list[Path]:
    """The files of a record directory, by name (temporary files of a write in progress excluded)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def checksums(directory: Path, *, exclude: tuple[str, ...] = (), known: dict[str, str] | None = None) -> dict:
    """``{file name: sha256}`` for every file of ``directory`` but ``exclude``; ``known`` digests
    (of bytes just written) are taken as they are instead of reading the file back."""
    known = known or {}
    return {p.name: known.get(p.name) or sha256_file(p) for p in record_files(directory) if p.name not in exclude}


@dataclass
class Verification:
    """What :func:`verify` found for one record directory."""

    ok: bool = True
    changed: list[str] = field(default_factory=list)  # files whose content differs from the manifest
    missing: list[str] = field(default_factory=list)  # files the manifest lists that are gone
    unlisted: list[str] = field(default_factory=list)  # files no manifest covers
    problems: list[str] = field(default_factory=list)  # everything above, and JSON that does not parse

    def add(self, kind: str, name: str) -> None:
        getattr(self, kind).append(name)
        self.problems.append(f"{name}: {kind}")
        self.ok = False


def verify(directory: Path, verdict_sha256: str = "", main: str | None = None) -> Verification:
    """Check a record directory against the manifests of its verdict JSONs (and, when given, the
    main verdict JSON against the digest the index keeps)."""
    out = Verification()
    covered: set[str] = set()
    if not directory.is_dir():
        out.add("missing", str(directory))
        return out
    for doc_path in verdict_files(directory):
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.add("changed", doc_path.name)
            continue
        listed = (doc.get("provenance") or {}).get("checksums") or {}
        covered |= set(listed) | {doc_path.name}
        for name, digest in listed.items():
            target = directory / name
            if not target.is_file():
                out.add("missing", name)
            elif sha256_file(target) != digest:
                out.add("changed", name)
    if verdict_sha256 and main:
        path = directory / f"{main}.json"
        if not path.is_file():
            out.add("missing", path.name)
        elif sha256_file(path) != verdict_sha256:
            out.add("changed", path.name)
    for p in record_files(directory):
        if p.name not in covered:
            out.add("unlisted", p.name)
    for kind in ("changed", "missing", "unlisted"):
        setattr(out, kind, sorted(set(getattr(out, kind))))
    return out


def entry_from_record(outputs: Path, directory: Path) -> dict | None:
    """The index line a record directory stands for, rebuilt from its own files.

    The main verdict is the one the runner indexed (``provenance.indexed``), else, for records
    written before provenance existed, the only one. None when there is nothing to index: no
    verdict JSON, or only the parts of an incident still running.
    """
    from .verdict import Verdict

    docs = {}
    for path in verdict_files(directory):
        try:
            docs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    if not docs:
        return None
    main = next((n for n, d in docs.items() if (d.get("provenance") or {}).get("indexed")), None)
    if main is None:
        if any(d.get("provenance") for d in docs.values()):
            return None  # only parts of an incident whose summary is not written (yet)
        main = sorted(docs)[0]  # a record from before provenance: one runbook per directory
    if docs[main].get("kind") == "drill":  # a drill's record (runbook_lib/drill.py), not a runbook's verdict
        from .drill import index_entry as drill_entry

        return {**drill_entry(outputs, directory / f"{main}.json", docs[main]), "kind": "drill",
                "verdict_sha256": sha256_file(directory / f"{main}.json"),
                "manifest_sha256": record_manifest_sha256(directory)}
    verdict = Verdict.from_dict(docs[main])
    paths = paths_in(outputs, directory, main)
    return index_entry(verdict, paths, verdict.exit_code(), verdict_sha256=sha256_file(paths.verdict),
                       parts=sorted(n for n in docs if n != main),
                       manifest_sha256=record_manifest_sha256(directory))


def record_dirs(outputs: Path) -> Iterator[Path]:
    """Every run directory under ``outputs`` (``<YYYY-MM-DD>/<run_id>/``), oldest day first."""
    if not outputs.is_dir():
        return
    for day in sorted(outputs.iterdir()):
        if day.is_dir() and len(day.name) == 10 and day.name[4] == "-" and day.name[7] == "-":
            for run in sorted(day.iterdir()):
                if run.is_dir() and not run.name.startswith("."):  # .<run_id>.partial: not published
                    yield run
