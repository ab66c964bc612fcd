"""Triage: the health checks, then every runbook the failing checks point to, as one incident.

An incident is one record directory holding the record of each runbook that ran (``health.*``,
``provider.*``, ``logs.*`` ...) and the summary notebook's record (``triage.*``), which links them
and lists every ``problem`` with its evidence. Only the summary is indexed, so the archive shows
one entry per incident.

Two ways in, one result:

* ``runbook triage`` (:func:`run_triage`): one kernel for the whole incident (a
  :class:`~runbook_lib.runner.KernelSession`): the health runbook, the runbooks it points to, then
  the summary notebook, which finds every record already there. A healthy site costs one kernel
  start plus the health checks' calls.
* ``notebooks/triage.ipynb`` run on its own (``runbook run triage``, JupyterLab): it finds no
  records yet and runs the missing ones itself, through the runner, into its own record directory.

Which runbooks a failing check points to is :data:`runbook_lib.checks.health.POINTS_TO`; a
runbook without a notebook (yet) is listed as not available rather than failing the triage.
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import records, runner
from .checks.health import ON_ANY_FAILURE, sections_for
from .errors import RunbookError
from .verdict import Finding, Verdict

SUMMARY = "triage"
FIRST = "health"


@dataclass
class Part:
    """One runbook's record inside the incident."""

    runbook: str
    verdict: Verdict

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code()

    @property
    def problems(self) -> list[Finding]:
        return self.verdict.problems

    def files(self) -> dict[str, str]:
        """Record file names by kind (relative to the incident directory)."""
        return {"notebook": f"{self.runbook}.ipynb", "html": f"{self.runbook}.html", "verdict": f"{self.runbook}.json"}


@dataclass
class Incident:
    """The record directory of one triage and the runbook records it holds."""

    directory: Path
    site_file: Path
    run_id: str
    timeout: float | None = None
    session: Any = None  # a runner.KernelSession shared by the runs, or None (a kernel each)
    unavailable: list[str] = field(default_factory=list)  # runbooks pointed to that have no notebook

    @property
    def outputs(self) -> Path:
        return self.directory.parent.parent

    # --- reading what is there -------------------------------------------------------------
    def part(self, runbook: str) -> Part | None:
        path = self.directory / f"{runbook}.json"
        if not path.is_file():
            return None
        try:
            return Part(runbook, Verdict.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RunbookError(f"the {runbook} record of this incident cannot be read ({path}): {exc}") from None

    def parts(self) -> list[Part]:
        """Every runbook record present, health first and the logs last, the summary excluded."""
        names = sorted((p.stem for p in self.directory.glob("*.json") if p.stem != SUMMARY),
                       key=lambda n: (n != FIRST, n in ON_ANY_FAILURE, n))
        return [p for n in names if (p := self.part(n)) is not None]

    # --- running what is missing ----------------------------------------------------------------
    def ensure(self, runbook: str, progress: Callable[[str], None] | None = None) -> Part:
        """The runbook's record, run now into this incident if it is not there yet."""
        found = self.part(runbook)
        if found is not None:
            return found
        if progress is not None:
            progress(runbook)
        runner.run_runbook(runbook, site_file=self.site_file, outputs_dir=self.outputs, run_id=self.run_id,
                           record_dir=self.directory, index=False, session=self.session, timeout=self.timeout)
        return self.part(runbook)

    def pointed_to(self) -> list[str]:
        """The runbooks the failing health checks point to that exist here, in order."""
        health = self.part(FIRST)
        if health is None:
            return []
        wanted = sections_for(health.verdict.findings)
        available = set(runner.sections())
        self.unavailable = [s for s in wanted if s not in available]
        return [s for s in wanted if s in available and s != SUMMARY]

    def run_all(self, progress: Callable[[str], None] | None = None) -> list[Part]:
        """Health, then every runbook it points to; records already present are kept as they are."""
        self.ensure(FIRST, progress)
        for runbook in self.pointed_to():
            self.ensure(runbook, progress)
        return self.parts()

    # --- the summary ------------------------------------------------------------------------------
    def findings(self) -> list[Finding]:
        """Every finding of every record, each id once (the first record that has it wins)."""
        seen: dict[str, Finding] = {}
        for part in self.parts():
            for f in part.verdict.findings:
                seen.setdefault(f.id, f)
        return list(seen.values())

    def problems(self) -> list[tuple[str, Finding]]:
        """(runbook, finding) for every ``problem``, health first."""
        return [(p.runbook, f) for p in self.parts() for f in p.verdict.sorted_findings() if f.status == "problem"]

    def failed_runs(self) -> list[str]:
        """One line per record whose run failed as a whole."""
        return [f"the {p.runbook} runbook failed: {p.verdict.error}" for p in self.parts() if p.verdict.error]

    def raise_for_failed_runs(self) -> None:
        """Fail the summary (exit 3) when a runbook of the incident failed, after its verdict is written."""
        failed = self.failed_runs()
        if failed:
            raise RunbookError("; ".join(failed))

    def overview(self) -> list[dict]:
        """One row per record: runbook, outcome, problems, links (relative to the incident)."""
        words = {0: "ok", 1: "unknown", 2: "problem", 3: "failed"}
        rows = [{"runbook": p.runbook, "outcome": words.get(p.exit_code, "failed"),
                 "problems": ", ".join(f.id for f in p.problems), "record": p.files()["html"]}
                for p in self.parts()]
        rows += [{"runbook": s, "outcome": "not available", "problems": "", "record": "(no notebook yet)"}
                 for s in self.unavailable]
        return rows

    def html_summary(self) -> str:
        """The records as links and every problem with its evidence, as HTML for the notebook."""
        import html

        esc = html.escape
        out = ["<h3>Records of this incident</h3><ul>"]
        for row in self.overview():
            link = (f"<a href='{esc(row['record'])}'>{esc(row['record'])}</a>" if row["record"].endswith(".html")
                    else esc(row["record"]))
            out.append(f"<li><b>{esc(row['runbook'])}</b>: {esc(row['outcome'])}"
                       + (f" ({esc(row['problems'])})" if row["problems"] else "") + f": {link}</li>")
        out.append("</ul>")
        problems = self.problems()
        out.append(f"<h3>Every problem found ({len(problems)})</h3>")
        if not problems:
            out.append("<p>No runbook found a problem.</p>")
        for runbook, f in problems:
            out.append(f"<h4><code>{esc(f.id)}</code> ({esc(runbook)} runbook): {esc(f.summary)}</h4>")
            out.append("<pre>" + esc("\n".join(f.evidence) or "(no evidence lines)") + "</pre>")
            if f.fix:
                out.append(f"<p><b>Fix:</b> {esc(f.fix)}</p>")
        for line in self.failed_runs():
            out.append(f"<p style='background:#f8d7da'>{esc(line)}</p>")
        return "\n".join(out)


def open_incident(record_dir: str | os.PathLike | None, site_file: str | os.PathLike, run_id: str = "",
                  outputs_dir: str | os.PathLike | None = None, **kw) -> Incident:
    """The incident a triage notebook works in: the runner's record directory when headless, else a
    new directory under the outputs folder (interactive use).

    The runbooks it still has to run share one kernel of their own, shut down when this process
    exits (with ``runbook triage`` they have all run already, and none is started).
    """
    if record_dir:
        directory = Path(record_dir)
        run_id = run_id or directory.name
    else:
        directory = runner.claim_record_dir(records.outputs_dir(outputs_dir))
        run_id = directory.name
    if kw.get("session") is None:
        session = runner.KernelSession(directory.parent.parent)
        atexit.register(session.close)
        kw["session"] = session
    return Incident(directory, Path(site_file), run_id, **kw)


def run_triage(site_file: str | os.PathLike, *, outputs_dir: str | os.PathLike | None = None,
               timeout: float | None = None, progress: bool = False,
               on_step: Callable[[str], None] | None = None, session=None) -> runner.RunResult:
    """``runbook triage``: the whole incident on one kernel; returns the summary's run result.

    ``session`` is the kernel to use (the caller closes it); by default one is made for the triage.
    """
    outputs = records.outputs_dir(outputs_dir)
    site_path = Path(site_file).expanduser().resolve()
    own = session is None
    session = session or runner.KernelSession(outputs)
    try:
        directory = runner.claim_record_dir(outputs)
        incident = Incident(directory, site_path, directory.name, timeout=timeout, session=session)
        try:
            incident.run_all(on_step)
        except RunbookError:
            if incident.part(FIRST) is None:  # nothing recorded: leave no empty incident behind
                _remove_empty(directory)
            raise
        return runner.run_runbook(SUMMARY, site_file=site_path, outputs_dir=outputs, run_id=directory.name,
                                  record_dir=directory, index=True, session=session, timeout=timeout,
                                  progress=progress)
    finally:
        if own:
            session.close()


def _remove_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass
