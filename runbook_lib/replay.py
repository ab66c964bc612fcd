"""Replay: today's checks over the evidence a record kept, and what changed against its verdict.

A record keeps the evidence its verdict was decided on (``evidence.json``, see
:mod:`runbook_lib.evidence`). Judging that evidence again with the checks of today contacts no
system, so a team that improved the checks after a postmortem can ask of every past incident
whether they would now name its cause, and the site's own history becomes a regression suite.

The verdict a record holds is taken *as it was written*: its findings, its ``root_causes`` and
each problem's ``explained_by``, not recomputed with today's catalog, or a change of the causal
links would hide itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import archive, catalog, records
from .checks import run_checks
from .errors import RunbookError
from .evidence import Evidence, EvidenceFormatError, from_document
from .verdict import SECURITY_PREFIX, Finding, Verdict, with_security_events

ADDED, GONE, STATUS, ROLE, FIX_FIRST = "added", "gone", "status", "root cause", "fix first"


class NoEvidence(RunbookError):
    """The record keeps no evidence to judge again (a drill, a record older than evidence, or a run
    that failed before it judged anything)."""


@dataclass(frozen=True)
class Change:
    """One way today's verdict differs from the recorded one."""

    kind: str  # added | gone | status | root cause | fix first
    id: str
    before: str
    after: str

    def text(self) -> str:
        if self.kind == ADDED:
            return f"+ {self.id}: {self.after} (not in the record)"
        if self.kind == GONE:
            return f"- {self.id}: was {self.before}, no check reports it today"
        if self.kind == FIX_FIRST:
            return f"~ fix first: {self.before or '(nothing)'} -> {self.after or '(nothing)'}"
        return f"~ {self.id}: {self.kind} {self.before} -> {self.after}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "before": self.before, "after": self.after}


@dataclass
class Replay:
    """A record judged again: today's verdict and how it differs from the one recorded."""

    run_id: str
    verdict: Verdict
    changes: list[Change]

    @property
    def same(self) -> bool:
        return not self.changes

    def line(self) -> str:
        """One line for ``runbook replay --all``."""
        if self.same:
            return f"{self.run_id}  same verdict"
        return f"{self.run_id}  {len(self.changes)} change(s): " + "; ".join(c.text() for c in self.changes)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "same": self.same, "changes": [c.to_dict() for c in self.changes],
                "verdict": self.verdict.to_dict()}


def judge(sections: dict[str, Evidence], calls: list[dict] | None = None) -> list[Finding]:
    """Today's findings over saved evidence: every catalog section the evidence has, then the run's
    security events (an SSH host key that did not match) raised from its recorded calls."""
    known = set(catalog.load().sections)
    findings = [f for name, ev in sections.items() if name in known for f in run_checks(name, ev)]
    return with_security_events(findings, list(calls or []))


def replay(recorded: dict, sections: dict[str, Evidence]) -> Replay:
    """Judge a record's evidence with today's checks and compare with its verdict (``verdict.json``
    as a dict). The new verdict keeps the record's run, site, times, parameters and calls."""
    keep = {k: recorded[k] for k in ("run_id", "site", "started", "finished", "parameters", "calls", "warnings",
                                     "record") if k in recorded}
    today = Verdict(runbook=recorded.get("runbook", ""), findings=judge(sections, recorded.get("calls")), **keep)
    return Replay(str(recorded.get("run_id", "")), today, compare(recorded, today))


def _role(finding: dict, roots: list[str]) -> str:
    """What a problem is in its run: ``root cause`` or ``explained by a, b``."""
    if finding.get("id") in roots or not finding.get("explained_by"):
        return "root cause"
    return "explained by " + ", ".join(finding["explained_by"])


def compare(recorded: dict, today: Verdict) -> list[Change]:
    """Findings added, gone, whose status changed, and problems whose place in the causal order
    changed (root cause or knock-on, and of what), then a different cause to fix first."""
    before: dict[str, dict] = {f["id"]: f for f in recorded.get("findings", []) if isinstance(f, dict) and "id" in f}
    after = {f.id: f.to_dict() | {"explained_by": list(f.explained_by)} for f in today.findings}
    old_roots = list(recorded.get("root_causes") or Verdict.from_dict(recorded).root_causes)
    changes: list[Change] = []
    for fid in sorted(set(before) | set(after), key=_order):
        b, a = before.get(fid), after.get(fid)
        if b is None:
            changes.append(Change(ADDED, fid, "", a["status"]))
        elif a is None:
            changes.append(Change(GONE, fid, b.get("status", "?"), ""))
        elif b.get("status") != a["status"]:
            changes.append(Change(STATUS, fid, str(b.get("status")), a["status"]))
        elif a["status"] == "problem" and _role(b, old_roots) != _role(a, today.root_causes):
            changes.append(Change(ROLE, fid, _role(b, old_roots), _role(a, today.root_causes)))
    first_before, first_after = (old_roots or [""])[0], (today.root_causes or [""])[0]
    if first_before != first_after:
        changes.append(Change(FIX_FIRST, "", first_before, first_after))
    return changes


def _order(fid: str) -> tuple:
    causes = catalog.load().causes
    return (not fid.startswith(SECURITY_PREFIX), list(causes).index(fid) if fid in causes else len(causes), fid)


def fixture(recorded: dict, evidence_doc: dict, name: str) -> dict[str, Any]:
    """A regression fixture from a record (``runbook records export``): the evidence it kept and,
    as the expected outcome, the problems its verdict found and the root causes it named."""
    problems = sorted(f["id"] for f in recorded.get("findings", []) if f.get("status") == "problem")
    roots = list(recorded.get("root_causes") or Verdict.from_dict(recorded).root_causes)
    return {
        "name": name,
        "summary": f"exported from run {recorded.get('run_id', '?')} ({recorded.get('runbook', '?')}) of site "
                   f"{recorded.get('site') or '?'}, started {recorded.get('started') or '?'}",
        "cause": roots[0] if roots else None,
        "expect": problems,
        "root_causes": roots,
        "statuses": {f["id"]: f["status"] for f in recorded.get("findings", []) if "id" in f},
        "record": {k: recorded.get(k) for k in ("runbook", "run_id", "site", "started", "finished", "calls")},
        "evidence": evidence_doc,
    }


def fixture_mismatches(fx: dict, where: str = "fixture") -> list[str]:
    """How today's checks disagree with a fixture's expected outcome (empty: they agree): the same
    problems, and the same root causes in the same fix order. Findings that are ok, unknown or
    skipped may change (a new check, a source read better) without failing the fixture."""
    record = fx.get("record") or {}
    today = Verdict(runbook=record.get("runbook", ""), findings=judge(from_document(fx.get("evidence"), where),
                                                                      record.get("calls")))
    problems = sorted(f.id for f in today.problems)
    out = []
    if problems != sorted(fx.get("expect") or []):
        missing = sorted(set(fx.get("expect") or []) - set(problems))
        extra = sorted(set(problems) - set(fx.get("expect") or []))
        out.append(f"{where}: problems differ: missing {missing or 'none'}, not expected {extra or 'none'}")
    if list(today.root_causes) != list(fx.get("root_causes") or []):
        out.append(f"{where}: root causes {today.root_causes} instead of {fx.get('root_causes')}")
    return out


# --- records on disk -----------------------------------------------------------------------------

def saved(outputs: Path, entry: dict) -> tuple[dict, dict]:
    """A record's verdict as written and its evidence document (checked, not yet read)."""
    run = entry.get("run_id", "?")
    if entry.get("kind", "incident") != "incident":
        raise NoEvidence(f"run {run} is a {entry.get('kind')}, not an incident: there is nothing to judge again")
    if entry.get("tampered"):
        changed = ", ".join(map(str, entry["tampered"]))
        raise NoEvidence(f"run {run}: its files changed after it was written ({changed}; see `runbook records "
                         "verify`): its evidence is not what the run decided on")
    recorded = archive.load_verdict(outputs, entry)
    path = records.paths_in(outputs, archive.record_dir(outputs, entry), entry["runbook"]).evidence
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoEvidence(f"run {run} keeps no evidence ({path.name}): it was recorded before records kept "
                         "their evidence, or stopped before it judged anything") from None
    except (OSError, ValueError) as exc:
        raise EvidenceFormatError(f"run {run}: {path.name} cannot be read: {exc}") from None
    from_document(doc, where=f"run {run}")  # refuse a version this code would misread, now
    return recorded, doc


def replay_run(outputs: Path, entry: dict) -> Replay:
    """``runbook replay RUN``: today's checks over what the record kept; contacts nothing."""
    recorded, doc = saved(outputs, entry)
    return replay(recorded, from_document(doc, where=f"run {entry.get('run_id')}"))


def replay_all(outputs: Path, since: str | None = None) -> Iterator[tuple[dict, Replay | RunbookError]]:
    """``runbook replay --all``: every incident record (started at ``since`` or later), replayed,
    or why it could not be."""
    for entry in archive.list_runs(outputs, archive.Filters(since=since, kind="incident")):
        try:
            yield entry, replay_run(outputs, entry)
        except RunbookError as exc:
            yield entry, exc


def export(outputs: Path, entry: dict, target: Path) -> dict:
    """``runbook records export RUN --scenario FILE``: the record as a regression fixture (see
    tests/incidents/README.md), written to a new file (an existing one is never replaced)."""
    recorded, doc = saved(outputs, entry)
    fx = fixture(recorded, doc, target.stem)
    try:
        with open(target, "x", encoding="utf-8") as fh:
            json.dump(fx, fh, indent=1)
            fh.write("\n")
    except FileExistsError:
        raise RunbookError(f"{target} exists already: choose another name, or remove it first") from None
    except OSError as exc:
        raise RunbookError(f"cannot write {target}: {exc.strerror or exc}") from None
    return fx
