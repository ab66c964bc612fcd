"""Triage: every section of the guide at once, as one incident, causes before symptoms.

``runbook triage`` runs ``notebooks/triage.ipynb``, which calls :func:`run`: every section's
evidence is gathered at the same time (independent systems in parallel, each read made once and
shared between the sections that need it: :class:`runbook_lib.calls.Shared`), every section's
checks judge it, and the findings become one verdict whose ``root_causes`` say what to fix first
(:mod:`runbook_lib.rootcause`). When something is wrong, every component's logs are collected into
the same record. One kernel, one record, one index entry.
"""

from __future__ import annotations

import html
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from . import catalog
from .calls import CallLog, Shared
from .checks import run_checks
from .errors import RunbookError
from .evidence import Evidence
from .gather import section as gather_section
from .gather.logs import component_rows
from .site import Site
from .verdict import Finding, Verdict

LOGS = "logs"


class UnknownSection(RunbookError):
    """The ``sections`` parameter names a section the catalog does not have."""


def sections(wanted: str | list[str] = "") -> list[str]:
    """The sections to run: ``"a,b"`` (or a list) in catalog order; empty: every section."""
    names = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted) if w.strip()]
    known = catalog.load().sections
    bad = [n for n in names if n not in known]
    if bad:
        raise UnknownSection(f"sections: {', '.join(bad)} is not a section (known: {', '.join(known)})")
    return [s for s in known if not names or s in names]


@dataclass
class Incident:
    """What one triage gathered and found, per section."""

    evidence: dict[str, Evidence]
    findings: dict[str, list[Finding]]
    logs: Evidence | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def all_findings(self) -> list[Finding]:
        return [f for fs in self.findings.values() for f in fs]

    def needs_logs(self) -> bool:
        return any(f.status in ("problem", "unknown") for f in self.all_findings())

    def overview(self) -> list[dict]:
        """One row per section: how many findings of each status, and its problems."""
        rows = []
        for name, found in self.findings.items():
            counts = {s: sum(f.status == s for f in found) for s in ("problem", "unknown", "ok", "skipped")}
            rows.append({"section": name, **counts, "problems": ", ".join(f.id for f in found if f.status == "problem"),
                         "seconds": round(self.seconds.get(name, 0.0), 2)})
        return rows

    def summary_html(self) -> str:
        """Root causes first (the first is the one to fix first), each with its fix, the evidence that
        decided it and the knock-ons it explains."""
        found = Verdict("triage", self.all_findings())
        if not found.root_causes:
            return "<p><b>No problem found</b> in " + html.escape(", ".join(self.findings)) + ".</p>"
        return found.causes_html(evidence=True)


def gather_all(site: Site, calls: CallLog, names: list[str],
               progress: Callable[[str], None] | None = None) -> tuple[dict[str, Evidence], dict[str, float]]:
    """Every section's evidence, gathered at the same time, reads shared (``calls.shared`` is set
    when it is not yet). A section whose gathering fails as a whole is evidence of that failure."""
    import time

    if calls.shared is None:
        calls.shared = Shared()
    seconds: dict[str, float] = {}

    def one(name: str) -> tuple[str, Evidence]:
        t0 = time.monotonic()
        try:
            ev = gather_section(name, site, calls)
        except Exception as exc:  # one section's bug must not hide the others
            ev = Evidence(errors={"gathering": f"{type(exc).__name__}: {exc}"})
        seconds[name] = time.monotonic() - t0
        if progress is not None:
            progress(name)
        return name, ev

    with ThreadPoolExecutor(max_workers=max(1, len(names)), thread_name_prefix="triage") as pool:
        return dict(pool.map(one, names)), seconds


def run(site: Site, calls: CallLog, wanted: str | list[str] = "", *, collect_logs: bool = True,
        progress: Callable[[str], None] | None = None) -> Incident:
    """Gather and judge the sections asked for (all by default); collect the logs if anything is wrong."""
    evidence, seconds = gather_all(site, calls, sections(wanted), progress)
    incident = Incident(evidence, {name: run_checks(name, ev) for name, ev in evidence.items()}, seconds=seconds)
    if collect_logs and incident.needs_logs():
        incident.logs = gather_section(LOGS, site, calls)
        if progress is not None:
            progress(LOGS)
    return incident


def log_rows(incident: Incident) -> list[dict]:
    """The logs collected for the incident, one row per component (or why none were collected)."""
    if incident.logs is None:
        why = "nothing is wrong" if not incident.needs_logs() else "log collection is off (collect_logs)"
        return [{"component": "-", "source": f"not collected: {why}"}]
    return component_rows(incident.logs)
