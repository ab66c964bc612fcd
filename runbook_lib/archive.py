"""The archive of incident records: list, show, render, compare, verify, rebuild, prune.

Everything here reads what :mod:`runbook_lib.records` wrote: the index (``index.jsonl``) for
listing and finding runs, and the record directories themselves for the rest. The index is a
convenience: :func:`rebuild` writes it again from the records alone.

Retention: with ``RUNBOOK_RETENTION_DAYS=N`` set (or ``runbook records prune --days N``), records
older than N days are deleted, except the last healthy run (exit status 0) of each runbook, which
:func:`diff` needs as its reference.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable

from . import index_chain, records
from .errors import RunbookError
from .record import iso, utc_now
from .verdict import EXIT_OK, EXIT_PROBLEM, EXIT_RUN_FAILED, EXIT_UNKNOWN

RETENTION_ENV = "RUNBOOK_RETENTION_DAYS"
# a run's status, from its exit code
RUN_STATUSES = {EXIT_OK: "ok", EXIT_UNKNOWN: "unknown", EXIT_PROBLEM: "problem", EXIT_RUN_FAILED: "failed"}


class RecordNotFound(RunbookError):
    """No record matches the run id (or prefix) given."""


def run_status(entry: dict) -> str:
    """``ok``, ``unknown``, ``problem`` or ``failed`` (exit status 0, 1, 2, 3)."""
    code = entry.get("exit_code")
    return RUN_STATUSES.get(code, RUN_STATUSES[EXIT_RUN_FAILED]) if isinstance(code, int) else "failed"


# --- listing ------------------------------------------------------------------------------------

@dataclass
class Filters:
    """What ``runbook records list`` narrows the index to; ``None`` means any."""

    runbook: str | None = None
    status: str | None = None  # one of RUN_STATUSES' values
    since: str | None = None  # YYYY-MM-DD or an ISO time, compared with `started`
    until: str | None = None
    finding: str | None = None  # runs where this finding id was `problem` or `unknown`
    site: str | None = None
    kind: str | None = None  # `incident` (a line without `kind`) or `drill` (runbook_lib/drill.py)

    def match(self, e: dict) -> bool:
        started = e.get("started") or ""
        return ((self.runbook is None or e.get("runbook") == self.runbook or self.runbook in (e.get("parts") or []))
                and (self.status is None or run_status(e) == self.status)
                and (self.site is None or e.get("site") == self.site)
                and (self.kind is None or (e.get("kind") or "incident") == self.kind)
                and (self.since is None or started >= self.since)
                and (self.until is None or started[:len(self.until)] <= self.until)
                and (self.finding is None or self.finding in (e.get("problems") or [])
                     or self.finding in (e.get("unknown") or [])))


def list_runs(outputs: Path, filters: Filters | None = None, limit: int | None = None) -> list[dict]:
    """Index entries matching ``filters``, oldest first; with ``limit``, the newest ``limit``."""
    wanted = filters or Filters()
    found = [e for e in records.read_index(outputs) if wanted.match(e)]
    return found[-limit:] if limit else found


def format_row(e: dict) -> str:
    """One line of ``runbook records list``: the cause to fix first, then the other failing ids."""
    if e.get("kind") == "drill":
        from .drill import format_row as drill_row

        return drill_row(e)
    roots = e.get("root_causes") or []
    failing = roots[:1] + [i for i in (e.get("problems") or e.get("unknown") or []) if i not in roots[:1]]
    shown = ", ".join(failing[:3]) + (f" +{len(failing) - 3}" if len(failing) > 3 else "")
    if roots:
        shown = "fix first " + shown
    writes = e.get("writes") or 0
    marks = (["TAMPERED"] if e.get("tampered") else []) + \
        ([f"CHANGED({writes} write{'s' if writes != 1 else ''})"] if writes else [])
    if marks:
        shown = " ".join(marks) + (f" {shown}" if shown else "")
    return f"{e.get('run_id', '?'):<22} {e.get('runbook', '?'):<12} {e.get('started', ''):<20} " \
           f"{run_status(e):<8} {shown}"


# --- finding one run -----------------------------------------------------------------------------

def find(outputs: Path, ref: str) -> dict:
    """The index entry of a run: its id, a unique prefix of it, or ``last``."""
    entries = records.read_index(outputs)
    if ref in ("last", "latest"):
        if not entries:
            raise RecordNotFound(f"no runs in {records.index_path(outputs)}")
        return entries[-1]
    exact = [e for e in entries if e.get("run_id") == ref]
    if exact:
        return exact[-1]
    prefixed = {e.get("run_id"): e for e in entries if str(e.get("run_id", "")).startswith(ref)}
    if len(prefixed) == 1:
        return next(iter(prefixed.values()))
    if prefixed:
        shown = ", ".join(sorted(prefixed)[:5]) + (", ..." if len(prefixed) > 5 else "")
        raise RecordNotFound(f"'{ref}' matches {len(prefixed)} runs: {shown}")
    raise RecordNotFound(f"no run '{ref}' in {records.index_path(outputs)} (try `runbook records list`, "
                         "or `runbook records rebuild` if records were copied in)")


def record_dir(outputs: Path, entry: dict) -> Path:
    return (outputs / entry["record"]["verdict"]).parent


def load_verdict(outputs: Path, entry: dict, runbook: str | None = None) -> dict:
    """The verdict JSON of a run (or of one of the runbooks recorded with it, for an incident)."""
    name = runbook or entry["runbook"]
    path = record_dir(outputs, entry) / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordNotFound(f"run {entry.get('run_id')} has no {name} record ({path})") from None
    except ValueError as exc:
        raise RunbookError(f"{path} is not valid JSON: {exc}") from None


def show(outputs: Path, entry: dict) -> str:
    """The verdict as text, then provenance, the calls that failed, the files and their check."""
    from .verdict import Verdict

    if entry.get("kind") == "drill":
        from .drill import show_record

        return show_record(outputs, entry)
    doc = load_verdict(outputs, entry)
    verdict = Verdict.from_dict(doc)
    prov = doc.get("provenance") or {}
    out = [verdict.text(evidence_lines=6), "", "provenance:"]
    for key in ("input_notebook", "input_sha256", "project_version", "python", "papermill"):
        if prov.get(key):
            out.append(f"  {key:<16} {prov[key]}")
    calls = doc.get("calls") or []
    failed = [c for c in calls if c.get("outcome") != "ok"]
    out.append(f"  calls            {len(calls)} ({len(failed)} failed)")
    for c in failed[:10]:
        out.append(f"    {c.get('outcome')}: {c.get('target')}: {c.get('action')} ({c.get('detail')})")
    if entry.get("parts"):
        out.append(f"  also recorded    {', '.join(entry['parts'])}")
    writes = verdict.writes
    out.append(f"  writes           {len(writes)}"
               + (" (this run changed a system: see the first line)" if writes else ""))
    check = verify_entry(outputs, entry)
    out.append(f"  files            {record_dir(outputs, entry)}")
    out.append("  checksums        " + ("valid" if check.ok else "MISMATCH: " + "; ".join(check.problems)))
    return "\n".join(out)


# --- HTML -------------------------------------------------------------------------------------------

def html(outputs: Path, entry: dict, runbook: str | None = None) -> str:
    """A record rendered again with nbconvert: code hidden, the verdict table first."""
    import nbformat

    if entry.get("kind") == "drill":
        raise RunbookError(f"{entry['run_id']} is a drill: it has no notebook to render (records show it)")
    name = runbook or entry["runbook"]
    folder = record_dir(outputs, entry)
    nb_path = folder / f"{name}.ipynb"
    if not nb_path.is_file():
        raise RecordNotFound(f"run {entry.get('run_id')} has no {name} notebook ({nb_path})")
    nb = nbformat.read(nb_path, as_version=4)
    return records.render_html(nb, load_verdict(outputs, entry, name))


# --- comparing two runs ----------------------------------------------------------------------------

@dataclass
class Change:
    id: str
    before: str | None  # status, None when the finding is new
    after: str | None  # status, None when the finding is gone
    removed: list[str] = field(default_factory=list)  # evidence lines only in the earlier run
    added: list[str] = field(default_factory=list)  # evidence lines only in the later run


@dataclass
class Diff:
    base: dict  # index entries
    other: dict
    status_changes: list[Change]
    evidence_changes: list[Change]  # same status, different evidence
    only_checked_in_one: list[Change] = field(default_factory=list)  # absent in one run, ok/skipped in the other

    def text(self) -> str:
        out = [f"{self.other['runbook']} {self.other['run_id']} ({run_status(self.other)}) compared with "
               f"{self.base['run_id']} ({run_status(self.base)})"]
        if not self.status_changes and not self.evidence_changes:
            out.append("  no finding changed")
        for title, changes in (("findings that changed status", self.status_changes),
                               ("evidence that changed (same status)", self.evidence_changes)):
            if not changes:
                continue
            out.append(f"  {title}:")
            for c in changes:
                arrow = f"{c.before or '(absent)'} -> {c.after or '(absent)'}"
                out.append(f"    {c.id}: {arrow}" if c.before != c.after else f"    {c.id} ({c.after})")
                out += [f"      - {line}" for line in c.removed] + [f"      + {line}" for line in c.added]
        for when, side in (("earlier", "before"), ("later", "after")):
            quiet = [c.id for c in self.only_checked_in_one if getattr(c, side) is not None]
            if quiet:
                out.append(f"  checked only in the {when} run, all ok or skipped: {', '.join(quiet)}")
        return "\n".join(out)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"base": self.base["run_id"], "other": self.other["run_id"],
                "status_changes": [asdict(c) for c in self.status_changes],
                "evidence_changes": [asdict(c) for c in self.evidence_changes],
                "only_checked_in_one": [asdict(c) for c in self.only_checked_in_one]}


def last_healthy(outputs: Path, runbook: str, before: str | None = None, exclude: str | None = None) -> dict | None:
    """The most recent run of ``runbook`` where every finding was ``ok`` (or ``skipped``)."""
    best = None
    for e in records.read_index(outputs):
        if (e.get("runbook") == runbook and e.get("exit_code") == EXIT_OK and e.get("run_id") != exclude
                and not e.get("tampered") and (before is None or (e.get("started") or "") <= before)):
            best = e
    return best


def diff(outputs: Path, ref: str, other_ref: str | None = None) -> Diff:
    """What changed from the earlier run to the later: ``ref`` against ``other_ref``, by default
    against the last healthy run of the same runbook before it."""
    target = find(outputs, ref)
    if target.get("kind") == "drill":
        raise RunbookError(f"{target['run_id']} is a drill: it has no findings to compare (records show it)")
    if other_ref is None:
        base = last_healthy(outputs, target["runbook"], before=target.get("started"), exclude=target["run_id"])
        if base is None:
            raise RecordNotFound(f"no earlier run of {target['runbook']} where everything was ok; "
                                 f"name the run to compare with: runbook records diff {ref} OTHER")
    else:
        base = find(outputs, other_ref)
    if (base.get("started") or "") > (target.get("started") or ""):
        base, target = target, base
    return compare(base, target, load_verdict(outputs, base), load_verdict(outputs, target))


def compare(base_entry: dict, other_entry: dict, before: dict, after: dict) -> Diff:
    """The findings of two verdicts side by side: status changes, then evidence-only changes.

    A finding only one run has (a triage incident runs more runbooks when something fails) counts
    as a change when it is ``problem`` or ``unknown``; when it is ``ok`` or ``skipped`` it is only
    named, without its evidence.
    """
    old = {f["id"]: f for f in before.get("findings", [])}
    new = {f["id"]: f for f in after.get("findings", [])}
    status, evidence, quiet = [], [], []
    for fid in sorted(set(old) | set(new)):
        a, b = old.get(fid), new.get(fid)
        if (a is None or b is None) and (a or b)["status"] in ("ok", "skipped"):
            quiet.append(Change(fid, a and a["status"], b and b["status"]))
            continue
        removed, added = _line_diff((a or {}).get("evidence", []), (b or {}).get("evidence", []))
        change = Change(fid, a and a["status"], b and b["status"], removed, added)
        if change.before != change.after:
            status.append(change)
        elif removed or added:
            evidence.append(change)
    return Diff(base_entry, other_entry, status, evidence, quiet)


def _line_diff(a: list[str], b: list[str]) -> tuple[list[str], list[str]]:
    removed, added = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op != "equal":
            removed += a[i1:i2]
            added += b[j1:j2]
    return removed, added


# --- verification, rebuild, retention ---------------------------------------------------------------

def verify_entry(outputs: Path, entry: dict) -> records.Verification:
    """One run's record against what was written at run time: the verdict JSON's digest and the
    record's manifest kept in the index, and the checksums in the verdict's provenance. A record
    ``rebuild`` found changed stays changed."""
    folder = record_dir(outputs, entry)
    out = records.verify(folder, entry.get("verdict_sha256", ""), entry["runbook"])
    want = entry.get("manifest_sha256")
    if want and folder.is_dir() and out.ok and records.record_manifest_sha256(folder) != want:
        out.add("changed", "manifest")
    for problem in entry.get("tampered") or []:
        if problem not in out.problems:
            out.problems.append(problem)
            out.ok = False
    return out


def verify_all(outputs: Path, entries: Iterable[dict] | None = None) -> dict[str, records.Verification]:
    """Run id -> what :func:`verify_entry` found, for the given entries (default: the whole index)."""
    return {e["run_id"]: verify_entry(outputs, e)
            for e in (records.read_index(outputs) if entries is None else entries)}


def verify_chain(outputs: Path) -> list[str]:
    """Where the index's hash chain is broken (an entry changed, removed or inserted by hand)."""
    with records.index_lock(outputs, exclusive=False):
        return index_chain.verify_chain(records.index_lines(outputs))


def rebuild(outputs: Path) -> list[dict]:
    """Write the index again from the record directories; returns the entries, oldest first.

    Entries are derived from the records again, but a record whose files no longer match what was
    written at run time (the digests the old index kept, or the checksums of its own provenance)
    is never approved again: its entry keeps what the run recorded (status included) and is
    marked ``tampered`` with what changed, so ``verify`` keeps failing and ``list``, ``diff`` and
    ``prune`` never take it for a healthy run. The chain is written again over the result.

    The index lock is held throughout, so a run that finishes meanwhile appends after the rebuild
    instead of into a file about to be replaced.
    """
    with records.index_lock(outputs, exclusive=True):
        before = {e.get("run_id"): e for e in records.read_index_unlocked(outputs)}
        entries = []
        for d in records.record_dirs(outputs):
            entry = records.entry_from_record(outputs, d)
            if entry is None:
                continue
            known = before.get(entry["run_id"])
            check = records.verify(d, (known or {}).get("verdict_sha256", ""), entry["runbook"])
            if known and known.get("manifest_sha256") and known["manifest_sha256"] != entry["manifest_sha256"]:
                if check.ok:
                    check.add("changed", "manifest")
            problems = sorted(set(check.problems) | set((known or {}).get("tampered") or []))
            if problems:
                entry = {k: v for k, v in (known or entry).items() if k != "prev_sha256"}
                entry["tampered"] = problems
            entries.append(entry)
        entries.sort(key=lambda e: (e.get("started") or "", e.get("run_id") or ""))
        entries = index_chain.chain(entries)
        records.write_atomic(records.index_path(outputs), records.index_text(entries))
    return entries


@dataclass
class PrunePlan:
    delete: list[dict]  # index entries whose records go
    kept_healthy: list[dict]  # old entries kept because each is its runbook's last healthy run


def plan_prune(entries: list[dict], days: float, now: datetime | None = None,
               keep: Iterable[str] = ()) -> PrunePlan:
    """Which runs are older than ``days`` and may go: all but the last healthy run of each runbook
    (and the run ids in ``keep``)."""
    cutoff = iso((now or utc_now()) - timedelta(days=days))
    keep_ids = {}
    for e in entries:
        if e.get("exit_code") == EXIT_OK and not e.get("tampered") and e.get("kind") != "drill":
            keep_ids[e.get("runbook")] = e.get("run_id")
    spared = set(keep)
    old = [e for e in entries if (e.get("started") or "") < cutoff and e.get("run_id") not in spared]
    kept = [e for e in old if keep_ids.get(e.get("runbook")) == e.get("run_id")]
    return PrunePlan(delete=[e for e in old if e not in kept], kept_healthy=kept)


def prune(outputs: Path, days: float, *, dry_run: bool = False, now: datetime | None = None,
          keep: Iterable[str] = ()) -> PrunePlan:
    """Delete the records :func:`plan_prune` picks and drop them from the index (under its lock)."""
    if days < 0:
        raise RunbookError("retention days must be zero or more")
    with records.index_lock(outputs, exclusive=True):
        entries = records.read_index_unlocked(outputs)
        plan = plan_prune(entries, days, now, keep)
        if dry_run or not plan.delete:
            return plan
        gone = {e["run_id"] for e in plan.delete}
        for e in plan.delete:
            folder = record_dir(outputs, e)
            if folder.resolve().is_relative_to(outputs.resolve()):
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    folder.parent.rmdir()  # the day folder, once empty
                except OSError:
                    pass
        records.write_atomic(records.index_path(outputs),
                             records.index_text([e for e in entries if e["run_id"] not in gone]))
    return plan


def retention_days() -> float | None:
    """The retention setting (``RUNBOOK_RETENTION_DAYS``), or None when records are kept forever."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        raise RunbookError(f"{RETENTION_ENV}={raw!r} is not a number of days") from None
    if days < 0:
        raise RunbookError(f"{RETENTION_ENV} must be zero or more")
    return days


def apply_retention(outputs: Path, keep: Iterable[str] = ()) -> PrunePlan | None:
    """Prune by the retention setting, if there is one (never the runs in ``keep``: the one that
    just finished)."""
    days = retention_days()
    return None if days is None else prune(outputs, days, keep=keep)
