"""What every runbook notebook shares: parameters and their form, the run, the display helpers.

A notebook's ``parameters`` cell is the one declaration of its parameters: :func:`start` takes
the names from it and their values from the notebook's namespace, and :meth:`Run.options` fills a
section's gather ``Options`` from the same-named ones. The cells below call the library and hold
no logic of their own (``tests/test_notebooks.py`` holds them to that).

The same code path runs headless (papermill, ``headless=True``) and interactive (JupyterLab): the
form only *changes* the parameter values that the following cells read (through ``run.params``),
so nothing branches on the mode except whether the form is shown.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from . import parameters, redact
from .calls import CallLog
from .errors import RunbookError, SiteError
from .evidence import EVIDENCE_FILE, Evidence, to_document
from .record import iso, new_run_id
from .site import SITE_ENV, Site, load_site
from .verdict import Finding, Verdict

if TYPE_CHECKING:
    from .fixes import Change, FixRecord, Plan

T = TypeVar("T")
# what the runner sets: not shown in the form
RUNNER_PARAMETERS = ("headless", "run_id", "verdict_path", "record_dir")
# the calls table every notebook shows
CALL_COLUMNS = ["target", "action", "outcome", "seconds", "bytes_in", "truncated", "detail"]


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class Parameters:
    """The notebook's parameters as attributes; :meth:`form` edits them with ipywidgets."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)
        self.__dict__["_observers"] = {}

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def on_change(self, name: str, callback) -> None:
        """Call ``callback(new_value)`` whenever the form changes ``name``."""
        self._observers.setdefault(name, []).append(callback)

    def set(self, name: str, value: Any) -> None:
        """Change one value (what the form does) and tell whoever observes it."""
        setattr(self, name, value)
        for callback in self._observers.get(name, []):
            callback(value)

    def form(self, *, skip: tuple[str, ...] = RUNNER_PARAMETERS):
        """Show a form bound to the values (interactive use only; returns the widget)."""
        import ipywidgets as w
        from IPython.display import display

        rows = []
        for name, value in self.as_dict().items():
            if name in skip:
                continue
            if isinstance(value, bool):
                widget = w.Checkbox(value=value, description=name, indent=False)
            elif isinstance(value, int):
                widget = w.IntText(value=value, description=name)
            elif isinstance(value, float):
                widget = w.FloatText(value=value, description=name)
            else:
                widget = w.Text(value=str(value), description=name, layout=w.Layout(width="60%"))
            widget.style.description_width = "14em"
            widget.observe(lambda change, n=name: self._from_form(n, change["new"]), names="value")
            rows.append(widget)
        self.__dict__["_messages"] = w.Output()
        box = w.VBox([w.HTML("<b>Parameters</b> (edit, then run the cells below)"), *rows, self._messages])
        display(box)
        return box

    def _from_form(self, name: str, value: Any) -> None:
        messages = self.__dict__.get("_messages")
        if messages is None:
            return self.set(name, value)
        with messages:  # what a callback prints shows under the form, not in the log console
            messages.clear_output()
            self.set(name, value)


def resolve_site_file(site_file: str = "") -> Path:
    """The site file to use: the parameter, else ``$RUNBOOK_SITE`` (``runbook lab jupyter`` sets it)."""
    if site_file:
        return Path(site_file).expanduser()
    if os.environ.get(SITE_ENV):
        return Path(os.environ[SITE_ENV]).expanduser()
    raise SiteError(f"no site file: set the site_file parameter or {SITE_ENV} (`export {SITE_ENV}=$(runbook lab "
                    "site)` after `runbook lab up`), or open JupyterLab with `runbook lab jupyter`")


@dataclass
class Run:
    """One execution of a runbook: its calls, timing and the verdict it ends with."""

    runbook: str
    params: Parameters
    site: Site | None = None
    calls: CallLog = field(default_factory=CallLog)
    started: str = field(default_factory=iso)
    t0: float = field(default_factory=time.monotonic)
    to_close: list = field(default_factory=list)

    def options(self, cls: type[T]) -> T:
        """The section's gather ``Options`` from this run's parameters of the same names (as the
        form has left them): :func:`runbook_lib.gather.options`."""
        from .gather import options

        return options(cls, self.params.as_dict())

    def closing(self, resource: Any) -> Any:
        """Close ``resource`` (e.g. an API client) when the run finishes; ``None`` is let through."""
        if resource is not None:
            self.to_close.append(resource)
        return resource

    def calls_table(self, *, writes: bool = False):
        """Every call of the run (or only its writes) with its outcome and duration."""
        calls = self.calls.frame()
        return (calls[calls["write"]] if writes else calls)[CALL_COLUMNS]

    def show_calls(self, *, writes: bool = False) -> None:
        """Display :meth:`calls_table`."""
        from IPython.display import display

        display(self.calls_table(writes=writes))

    def load_site(self) -> Site:
        """Load the site the parameters name. In JupyterLab, a site file typed into the form later
        loads that site instead (and rebinds the notebook's ``site``), so the cells below use it."""
        self.site = load_site(resolve_site_file(getattr(self.params, "site_file", "")))
        self._describe_site()
        if not getattr(self.params, "headless", True) and "site_file" in self.params.as_dict():
            self.params.on_change("site_file", self._site_file_changed)
        return self.site

    def _describe_site(self) -> None:
        print(f"site {self.site.name}: Omni {self.site.omni.url}, Proxmox clusters "
              f"{', '.join(self.site.proxmox)}, provider host {self.site.hosts.provider.label}")
        for warning in self.site.insecure_settings():
            print(f"WARNING: {warning}")

    def _site_file_changed(self, value: str) -> None:
        try:
            new = load_site(resolve_site_file(value))
        except SiteError as exc:
            print(f"site file not loaded: {exc}")
            return
        old, self.site = self.site, new
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is not None and shell.user_ns.get("site") is old:
            shell.user_ns["site"] = new  # the cells below read `site`
        self._describe_site()

    def progress(self, step: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] gathered: {step}", flush=True)

    def verdict(self, findings: list[Finding]) -> Verdict:
        from .verdict import with_security_events

        params = redact.default().obj(self.params.as_dict())
        for k in ("headless", "verdict_path"):
            params.pop(k, None)
        calls = redact.default().obj(self.calls.to_list())
        return Verdict(
            runbook=self.runbook,
            findings=with_security_events(findings, calls),
            run_id=getattr(self.params, "run_id", "") or new_run_id(),
            site=self.site.name if self.site else "",
            started=self.started,
            finished=iso(),
            parameters=params,
            calls=calls,
            warnings=self.site.insecure_settings() if self.site else [],
        )

    def finish(self, findings: list[Finding], *, evidence: Evidence | dict[str, Evidence] | None = None,
               plans: Iterable[Plan] = (), record: FixRecord | None = None) -> Verdict:
        """Build the verdict and, when the runner asked for it, write the verdict JSON and, beside
        it, the ``evidence`` the findings were judged on (this runbook's, or each section's), which
        the record keeps for ``runbook replay``.

        With a fix ``record``, the re-checked findings replace the ones from before the fix (the
        evidence kept is the one from before the fix); with ``plans``, the fix of each problem a
        plan addresses says how to apply it. What the run opened (:meth:`closing`) is closed first.
        """
        from . import fixes

        for resource in self.to_close:
            resource.close()
        self.to_close.clear()
        if record is not None:
            findings = record.findings(findings)
        plans = list(plans)
        if plans:
            findings = fixes.offer(findings, plans, f"runbook run {self.runbook}")
        v = self.verdict(findings)
        path = getattr(self.params, "verdict_path", "")
        if path:
            if evidence is not None:
                sections = {self.runbook: evidence} if isinstance(evidence, Evidence) else evidence
                doc = to_document(sections, runbook=self.runbook, run_id=v.run_id, gathered=v.finished)
                _write_json(Path(path).with_name(EVIDENCE_FILE), redact.default().obj(doc))
            _write_json(Path(path), redact.default().obj(v.to_dict()))
        return v

    def show_plans(self, plans: list[Plan]) -> None:
        """Each fix plan with its exact changes and the id that applies it."""
        from IPython.display import display

        for plan in plans:
            print(plan.text())
            display(plan.frame())
        if not plans:
            print("No fix plan: nothing this runbook can safely change would help.")

    def apply_fix(self, plans: list[Plan], findings: list[Finding], *, execute: Callable[[Change], str],
                  gather_again: Callable[[], Evidence]) -> FixRecord:
        """Apply the plan the ``apply_fix`` parameter names (none when it is empty), then check its
        findings again on fresh evidence from ``gather_again()`` until they clear or
        ``recheck_timeout`` passes; shows what was done and every write."""
        from IPython.display import display

        from . import fixes
        from .checks import run_checks

        record = fixes.run(plans, self.params.apply_fix, execute=execute,
                           recheck=lambda ids: run_checks(self.runbook, gather_again(), only=list(ids)),
                           findings=findings, wait=float(self.params.recheck_timeout))
        print(record.reason)
        if record.plan is not None:
            display(record.steps_frame())
            display(record.frame())
            self.show_calls(writes=True)
        return record

    def show_next_steps(self, verdict: Verdict, plans: Iterable[Plan] = ()) -> None:
        """Print :func:`next_steps` for this runbook."""
        print("\n".join(next_steps(verdict, plans, f"runbook run {self.runbook}")))

    def fail_if_refused(self, record: FixRecord) -> None:
        """End the run as failed when ``apply_fix`` named no plan of this run (call it after the
        verdict is written: the findings are kept)."""
        from .fixes import FixRefused

        if record.refused:
            raise FixRefused(record.reason)


def next_steps(verdict: Verdict, plans: Iterable[Plan] = (), command: str = "runbook run SECTION") -> list[str]:
    """What to do about each problem: its fix, and the plan that makes it when there is one."""
    plans = list(plans)
    lines = []
    for f in verdict.problems:
        lines.append(f"{f.id}: {f.fix}")
        lines += [f"  or apply plan {p.id}: {command} -p apply_fix {p.id}" for p in plans if p.finding == f.id]
    return lines or ["Nothing to fix."]


def start(runbook: str, namespace: Mapping[str, Any]) -> Run:
    """Begin a run of ``runbook``; shows the parameter form unless headless.

    The parameters are the names the notebook's ``parameters`` cell declares, valued from
    ``namespace``: the notebook passes ``globals()``, where that cell (and the one papermill injects
    after it) has just run. pandas (0.4 s to import) is loaded in the background meanwhile: the
    tables need it only after the evidence is in, and gathering mostly waits on the network.
    """
    threading.Thread(target=importlib.import_module, args=("pandas",), name="import-pandas", daemon=True).start()
    params = Parameters(**declared_values(runbook, namespace))
    if not getattr(params, "headless", True):
        params.form()
    return Run(runbook, params)


def declared_values(runbook: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The runbook's declared parameters with their values in ``namespace``."""
    from .runner import notebook_path

    names = parameters.names(notebook_path(runbook))
    missing = [name for name in names if name not in namespace]
    if missing:
        raise RunbookError(f"run the parameters cell first: {', '.join(missing)} not set")
    return {name: namespace[name] for name in names}


def frame(rows: list[dict] | dict, columns: list[str] | None = None):
    """A pandas DataFrame from rows (or one mapping shown as field/value)."""
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)
    if isinstance(rows, dict):
        rows = [{"field": k, "value": v} for k, v in rows.items()]
        columns = ["field", "value"]
    return pd.DataFrame(rows, columns=columns).convert_dtypes()


def findings_frame(findings: list[Finding]):
    """The findings as they stand before any fix: status, id, summary."""
    return frame([{"status": f.status, "id": f.id, "summary": f.summary} for f in findings],
                 ["status", "id", "summary"])


def show_gather_errors(ev: Evidence) -> None:
    """One line for each piece of evidence that could not be gathered, with the reason."""
    for name, reason in ev.errors.items():
        print(f"could not gather {name}: {reason}")


def show_tables(tables: Iterable[tuple[str, list[dict]]]) -> None:
    """Several tables, each under its title line."""
    from IPython.display import display

    for title, rows in tables:
        print(title)
        display(frame(rows))


def show_figure(figure) -> None:
    """A matplotlib figure as a PNG in the record (nothing for ``None``); the figure is closed, so
    the inline backend does not show it a second time."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    if figure is None:
        return
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    display(Image(data=buffer.getvalue(), format="png"))


def site_summary(site: Site):
    rows = [
        {"what": "Omni", "where": site.omni.url, "how": f"omnictl {site.omni.omnictl.binary}"},
        {"what": "provider host", "where": site.hosts.provider.label,
         "how": f"ssh, container {site.hosts.provider.container or '(by image)'}"},
        {"what": "Omni host", "where": site.hosts.omni.label, "how": f"ssh, compose in {site.hosts.omni.compose_dir}"},
    ]
    for name, c in site.proxmox.items():
        rows.append({"what": f"Proxmox {name}", "where": ", ".join(c.endpoints),
                     "how": f"API token {c.token_id}" if c.token_id else f"user {c.user}"})
    for w in site.insecure_settings():
        rows.append({"what": "WARNING", "where": w, "how": ""})
    return frame(rows, ["what", "where", "how"])
