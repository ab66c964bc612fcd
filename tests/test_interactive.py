"""The runbook as an operator sees it in JupyterLab: the form, pandas tables, the verdict.

Interactive and headless runs are the same notebook and the same code; only the form differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

from runbook_lab.twin import Twin
from runbook_lib.kernel import ensure_kernel

pytestmark = pytest.mark.runbook
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "provider.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


def execute(site_file, out: Path, headless: bool) -> dict:
    verdict = out.with_suffix(".verdict.json")
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name=ensure_kernel(), progress_bar=False,
                               parameters={"site_file": str(site_file), "headless": headless,
                                           "verdict_path": str(verdict)},
                               cwd=str(NOTEBOOK.parent))
    nb = json.loads(out.read_text())
    nb["verdict"] = json.loads(verdict.read_text())
    return nb


def outputs(nb: dict, mime: str) -> list[int]:
    return [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
            for o in c.get("outputs", []) if mime in o.get("data", {})]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    out = tmp_path_factory.mktemp("interactive")
    with Twin("key-invalid") as twin:
        yield {mode: execute(twin.site_file, out / f"{mode}.ipynb", headless=(mode == "headless"))
               for mode in ("interactive", "headless")}


def test_interactive_shows_a_parameter_form(executed):
    assert outputs(executed["interactive"], WIDGET), "no ipywidgets form in the interactive run"
    assert not outputs(executed["headless"], WIDGET), "a headless run must not build widgets"


def test_evidence_and_verdict_are_tables(executed):
    nb = executed["interactive"]
    html = [o["data"]["text/html"] for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    html = ["".join(h) if isinstance(h, list) else h for h in html]
    assert len([h for h in html if "<table" in h]) >= 6  # site, calls, container, config, logs, omni, probes, verdict
    verdict = html[-1]
    assert "provider.key_invalid" in verdict and "problem" in verdict and "background-color" in verdict


def test_same_code_path_same_findings(executed):
    def findings(nb):
        return [(f["id"], f["status"], f["summary"]) for f in nb["verdict"]["findings"]]

    assert findings(executed["interactive"]) == findings(executed["headless"])
    assert ("provider.key_invalid", "problem") in [f[:2] for f in findings(executed["headless"])]


def test_the_forms_site_file_field_loads_that_site(tmp_path, monkeypatch, capsys):
    """Typing another site file into the form makes the cells below use that site."""
    from runbook_lib import notebook as nb

    site = ("name: {name}\nomni: {{url: 'https://127.0.0.1:8099'}}\n"
            "hosts: {{omni: {{host: 127.0.0.1}}, provider: {{host: 127.0.0.1}}}}\n"
            "proxmox: {{c1: {{endpoints: ['https://127.0.0.1:8006'], token_id: 'runbook@pve!audit',"
            " token_secret: 'env:UNSET_TOKEN_VAR'}}}}\nprovider: {{cluster: c1}}\n")
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(site.format(name="first"))
    second.write_text(site.format(name="second"))
    monkeypatch.setenv("RUNBOOK_SITE", str(first))
    run = nb.start("provider", nb.Parameters(site_file="", headless=False, run_id="", verdict_path=""))
    assert run.load_site().name == "first"
    form = run.params.form()  # what JupyterLab shows (start showed one too)
    (field,) = [c for c in form.children if getattr(c, "description", "") == "site_file"]
    field.value = str(second)
    assert run.site.name == "second" and run.params.site_file == str(second)
    field.value = str(tmp_path / "missing.yaml")  # a wrong path is said, the site in use stays
    assert run.site.name == "second"
