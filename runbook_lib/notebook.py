"""What every runbook notebook shares: parameters and their form, the run, the display helpers.

The same code path runs headless (papermill, ``headless=True``) and interactive (JupyterLab): the
form only *changes* the parameter values that the following cells read, so nothing branches on
the mode except whether the form is shown.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import redact
from .calls import CallLog
from .errors import SiteError
from .record import iso, new_run_id
from .site import SITE_ENV, Site, load_site
from .verdict import Finding, Verdict


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

    def form(self, *, skip: tuple[str, ...] = ("headless", "run_id", "verdict_path")):
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

    def finish(self, findings: list[Finding]) -> Verdict:
        """Build the verdict and, when the runner asked for it, write the verdict JSON."""
        v = self.verdict(findings)
        path = getattr(self.params, "verdict_path", "")
        if path:
            tmp = Path(path).with_suffix(".tmp")
            tmp.write_text(json.dumps(redact.default().obj(v.to_dict()), indent=2), encoding="utf-8")
            os.replace(tmp, path)
        return v


def start(runbook: str, params: Parameters) -> Run:
    """Begin a run; shows the parameter form unless headless.

    pandas (0.4 s to import) is loaded in the background meanwhile: the tables need it only after
    the evidence is in, and gathering mostly waits on the network.
    """
    threading.Thread(target=importlib.import_module, args=("pandas",), name="import-pandas", daemon=True).start()
    if not getattr(params, "headless", True):
        params.form()
    return Run(runbook, params)


def frame(rows: list[dict] | dict, columns: list[str] | None = None):
    """A pandas DataFrame from rows (or one mapping shown as field/value)."""
    import pandas as pd

    pd.set_option("display.max_colwidth", 200)
    if isinstance(rows, dict):
        rows = [{"field": k, "value": v} for k, v in rows.items()]
        columns = ["field", "value"]
    return pd.DataFrame(rows, columns=columns).convert_dtypes()


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
