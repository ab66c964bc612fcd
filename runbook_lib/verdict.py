"""Findings and the verdict: ids and statuses from the cause catalog, three renderings.

A :class:`Finding` is one cause of the catalog with a status. A :class:`Verdict` is the findings
of one run plus what the run did (calls) and how it was configured (parameters); it knows which
of its problems are root causes and which are knock-ons (:mod:`runbook_lib.rootcause`). It renders
as a pandas table (notebook), as text (terminal) and as the verdict JSON contract.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Iterable

from .outcome import Outcome
from .rootcause import Attribution, attribute

STATUSES = ("problem", "unknown", "ok", "skipped")  # most to least severe
_SEVERITY = {s: i for i, s in enumerate(STATUSES)}

EXIT_OK, EXIT_UNKNOWN, EXIT_PROBLEM, EXIT_RUN_FAILED = 0, 1, 2, 3
LIST_ALL_UP_TO = 16  # a longer verdict (triage's) shows its ok and skipped findings as counts per section


@dataclass
class Finding:
    id: str  # section.name, exactly as in causes.md
    status: str  # problem | ok | unknown | skipped
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: str = ""
    explained_by: list[str] = field(default_factory=list)  # problems of the same run that explain this one

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"finding {self.id}: status must be one of {STATUSES}, got {self.status!r}")
        if "." not in self.id:
            raise ValueError(f"finding id {self.id!r} must look like section.name")

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.status != "problem":
            del d["explained_by"]
        return d


def exit_code(findings: Iterable[Finding | dict]) -> int:
    """0 nothing wrong, 2 any problem, 1 only unknowns (design.md's contract)."""
    statuses = {f["status"] if isinstance(f, dict) else f.status for f in findings}
    if "problem" in statuses:
        return EXIT_PROBLEM
    if "unknown" in statuses:
        return EXIT_UNKNOWN
    return EXIT_OK


HOST_KEY_MISMATCH = "security.host_key_mismatch"
SECURITY_PREFIX = "security."


def with_security_events(findings: list[Finding], calls: list[dict]) -> list[Finding]:
    """The findings with the run's security events raised once, at the top.

    An SSH host key that does not match known_hosts (the calls' ``error_kind`` ``host_key``) is
    possible interception: it becomes one ``problem`` finding, :data:`HOST_KEY_MISMATCH`, naming
    each host and key once (so the run exits 2), and the findings it left unchecked say so in one
    short line instead of repeating the reason.
    """
    mismatches = [c for c in calls if isinstance(c, dict) and c.get("error_kind") == Outcome.HOST_KEY]
    if not mismatches:
        return findings
    reasons: dict[str, str] = {}
    for c in mismatches:
        target, detail = str(c.get("target", "?")), str(c.get("detail") or "")
        reasons.setdefault(target, detail.removeprefix(f"{target}: "))
    hosts = ", ".join(reasons)
    security = Finding(
        HOST_KEY_MISMATCH, "problem",
        f"the SSH host key of {hosts} does not match known_hosts: possible interception; nothing was sent to it",
        evidence=[f"{t}: {r}" for t, r in reasons.items()],
        fix="Check the host's key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and "
            "compare with the fingerprint above. Only if the host was reinstalled, replace its line in "
            "known_hosts (ssh-keygen -R HOST, then add the verified key); otherwise treat it as an incident.")
    pointer = f"not checked: see {HOST_KEY_MISMATCH}"
    out = [security]
    for f in findings:
        if f.id == HOST_KEY_MISMATCH:
            continue
        evidence, pointed = [], False
        for line in f.evidence:
            if any(r and r in line for r in reasons.values()):
                if not pointed:
                    evidence.append(pointer)
                    pointed = True
            else:
                evidence.append(line)
        out.append(Finding(f.id, f.status, f.summary, evidence, f.fix) if pointed else f)
    return out


@dataclass
class Verdict:
    runbook: str
    findings: list[Finding]
    run_id: str = ""
    site: str = ""
    started: str = ""
    finished: str = ""
    parameters: dict = field(default_factory=dict)
    calls: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. verification switched off
    record: str = ""
    error: str = ""  # set when the run itself failed
    provenance: dict = field(default_factory=dict)  # what ran: input hash, version, checksums (runner)
    root_causes: list[str] = field(default_factory=list)  # derived from the findings: the one to fix first first
    attribution: Attribution | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.attribute()

    def attribute(self) -> None:
        """Mark each problem with the problems that explain it; list the root causes in fix order."""
        self.attribution = attribute([f.id for f in self.findings if f.status == "problem"])
        self.root_causes = self.attribution.root_causes
        for f in self.findings:
            f.explained_by = self.attribution.explained_by.get(f.id, []) if f.status == "problem" else []

    def sorted_findings(self) -> list[Finding]:
        """Security events first, then root causes in fix order, then the other problems, then
        unknown, ok, skipped."""
        roots = {fid: i for i, fid in enumerate(self.root_causes)}
        return sorted(self.findings, key=lambda f: (not f.id.startswith(SECURITY_PREFIX), _SEVERITY[f.status],
                                                    roots.get(f.id, len(roots)), f.id))

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "problem"]

    def status_of(self, finding_id: str) -> str | None:
        return next((f.status for f in self.findings if f.id == finding_id), None)

    def exit_code(self) -> int:
        return EXIT_RUN_FAILED if self.error else exit_code(self.findings)

    @property
    def writes(self) -> list[dict]:
        """The calls that changed a system (only ever made by a guarded fix)."""
        return [c for c in self.calls if isinstance(c, dict) and c.get("write")]

    def changed_line(self) -> str:
        """``CHANGED: <plan>: <write calls>`` when the run wrote to a system, else ""."""
        writes = self.writes
        if not writes:
            return ""
        plan = str((self.parameters or {}).get("apply_fix") or "(no plan id)")
        calls = "; ".join(f"{c.get('action')} on {c.get('target')}"
                          + ("" if c.get("outcome", "ok") == "ok" else f" ({c.get('outcome')})") for c in writes)
        return f"CHANGED: {plan}: {calls}"

    def to_dict(self) -> dict:
        return {
            "runbook": self.runbook,
            "run_id": self.run_id,
            "site": self.site,
            "started": self.started,
            "finished": self.finished,
            "parameters": self.parameters,
            "findings": [f.to_dict() for f in self.sorted_findings()],
            "root_causes": list(self.root_causes),
            "calls": self.calls,
            "warnings": self.warnings,
            "record": self.record,
            "error": self.error,
            "provenance": self.provenance,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        return cls(
            runbook=d["runbook"],
            findings=[Finding(**f) for f in d.get("findings", [])],
            **{k: d[k] for k in ("run_id", "site", "started", "finished", "parameters", "calls",
                                 "warnings", "record", "error", "provenance") if k in d},
        )

    def frame(self):
        """The findings as a pandas DataFrame, most severe first."""
        import pandas as pd

        rows = [
            {"status": f.status, "id": f.id, "summary": f.summary,
             "evidence": "\n".join(f.evidence), "fix": f.fix if f.status == "problem" else ""}
            for f in self.sorted_findings()
        ]
        return pd.DataFrame(rows, columns=["status", "id", "summary", "evidence", "fix"])

    def styled(self):
        """The findings table with status colours, for the notebook."""
        colours = {"problem": "#f8d7da", "unknown": "#fff3cd", "ok": "#d1e7dd", "skipped": "#e2e3e5"}
        counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(f.status == s for f in self.findings)))
        return (
            self.frame().style
            .apply(lambda row: [f"background-color: {colours[row['status']]}"] * len(row), axis=1)
            .set_properties(**{"white-space": "pre-wrap", "text-align": "left"})
            .hide(axis="index")
            .set_caption(f"{self.runbook} runbook, site {self.site}: {counts or 'no findings'}")
        )

    def causes_html(self, *, evidence: bool = False) -> str:
        """The root causes as HTML, the one to fix first first, each with its fix (and, with
        ``evidence``, the lines that decided it) and the knock-ons it explains under it."""
        import html

        esc = html.escape
        by_id = {f.id: f for f in self.findings}
        out = []
        for n, root in enumerate(self.root_causes):
            f = by_id[root]
            title = "Fix first" if n == 0 else "Also a root cause"
            out.append(f"<div class='root-cause'><h3>{title}: <code>{esc(f.id)}</code>: {esc(f.summary)}</h3>")
            if f.fix:
                out.append(f"<p><b>Fix:</b> {esc(f.fix)}</p>")
            if evidence:
                out.append("<pre>" + esc("\n".join(f.evidence) or "(no evidence lines)") + "</pre>")
            knock_ons = self.attribution.knock_ons(root)
            if knock_ons:
                out.append(f"<p>It explains {len(knock_ons)} more problem(s):</p><ul>")
                out += [f"<li><code>{esc(k)}</code>: {esc(by_id[k].summary)}</li>" for k in knock_ons]
                out.append("</ul>")
            out.append("</div>")
        return "\n".join(out)

    def text(self, *, evidence_lines: int = 4, width: int = 110) -> str:
        """A terminal rendering: the cause to fix first, the other root causes, the knock-ons grouped
        under the cause that explains them, then every other finding."""
        import textwrap

        marks = {"problem": "PROBLEM", "unknown": "UNKNOWN", "ok": "ok", "skipped": "skipped"}
        pad = " " * 11

        def wrap(text: str, first: str, rest: str) -> list[str]:
            return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                                 break_on_hyphens=False) or [first.rstrip()]

        def details(f: Finding, with_fix: bool) -> list[str]:
            lines = []
            for line in f.evidence[:evidence_lines]:
                lines += wrap(line, pad + "| ", pad + "|   ")
            if len(f.evidence) > evidence_lines:
                lines.append(f"{pad}| ... {len(f.evidence) - evidence_lines} more in the record")
            if with_fix and f.fix:
                lines += wrap(f"fix: {f.fix}", pad, pad + "     ")
            return lines

        by_id = {f.id: f for f in self.findings}
        out = [self.changed_line()] if self.writes else []
        out.append(f"{self.runbook} runbook, site {self.site or '?'}, run {self.run_id or '?'}")
        if self.error:
            out += wrap(f"RUN FAILED: {self.error}", "  ", "    ")
        for w in self.warnings:
            out += wrap(f"warning: {w}", "  ", "    ")
        shown: set[str] = set()
        for n, root in enumerate(self.root_causes):
            f = by_id[root]
            head = "Fix first: " if n == 0 else "Also a root cause: "
            out += wrap(f"{head}{f.id}: {f.summary}", "  ", "    ")
            out += details(f, with_fix=True)
            shown.add(root)
            knock_ons = self.attribution.knock_ons(root)
            if knock_ons:
                out.append(f"    explains {len(knock_ons)} more problem(s):")
                for kid in knock_ons:
                    out += wrap(by_id[kid].summary, f"      {kid:<40} ", " " * 47)
                    shown.add(kid)
        rest = [f for f in self.sorted_findings() if f.id not in shown]
        quiet = [f for f in rest if f.status in ("ok", "skipped")] if len(self.findings) > LIST_ALL_UP_TO else []
        for f in rest:
            if f in quiet:
                continue
            out += wrap(f.summary, f"  {marks[f.status]:<8} {f.id:<36} ", " " * 48)
            if f.status in ("problem", "unknown"):
                out += details(f, with_fix=f.status == "problem")
        for status in ("ok", "skipped"):
            sections: dict[str, int] = {}
            for f in quiet:
                if f.status == status:
                    sections[f.id.split(".")[0]] = sections.get(f.id.split(".")[0], 0) + 1
            if sections:
                out += wrap(", ".join(f"{name} {n}" for name, n in sections.items()), f"  {marks[status]:<8} ", " " * 11)
        counts = {s: sum(f.status == s for f in self.findings) for s in STATUSES}
        out.append("  " + (", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"))
        if self.record:
            out.append(f"  record: {self.record}")
        return "\n".join(out)
