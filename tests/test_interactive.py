"""The runbook as an operator sees it in JupyterLab: the form, pandas tables, the verdict.

Interactive and headless runs are the same notebook and the same code; only the form differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

from runbook_lab.twin import Twin
from runbook_lib import fixes, parameters, runner
from runbook_lib.errors import RunbookError
from runbook_lib.kernel import ensure_kernel
from runbook_lib.verdict import Finding, Verdict

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


def defaults(runbook: str) -> dict:
    """What a notebook's namespace holds after its parameters cell ran unchanged."""
    return {name: p.default for name, p in parameters.declared(runner.notebook_path(runbook)).items()}


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
    run = nb.start("provider", {**defaults("provider"), "headless": False})
    assert run.load_site().name == "first"
    form = run.params.form()  # what JupyterLab shows (start showed one too)
    (field,) = [c for c in form.children if getattr(c, "description", "") == "site_file"]
    field.value = str(second)
    assert run.site.name == "second" and run.params.site_file == str(second)
    field.value = str(tmp_path / "missing.yaml")  # a wrong path is said, the site in use stays
    assert run.site.name == "second"


# --- the notebook API (runbook_lib/notebook.py) -----------------------------------------------------

def headless_run(runbook: str, **values):
    from runbook_lib import notebook as nb

    return nb.start(runbook, {**defaults(runbook), "headless": True, **values})


def test_a_run_takes_the_declared_parameters_from_the_notebooks_namespace():
    from runbook_lib import notebook as nb

    leftovers = {"sections": "provider", "In": [], "get_ipython": print}  # a shared kernel ran triage before
    run = nb.start("provider", {**defaults("provider"), **leftovers, "log_tail": 200, "headless": True})
    assert list(run.params.as_dict()) == parameters.names(runner.notebook_path("provider"))
    assert run.params.log_tail == 200
    with pytest.raises(RunbookError, match="run the parameters cell first: log_tail, log_since"):
        nb.start("provider", {"site_file": "", "headless": True})


def test_the_gather_options_follow_the_form():
    from runbook_lib.gather import provider

    run = headless_run("provider", log_tail=300)
    assert run.options(provider.Options).log_tail == 300
    run.params.set("log_tail", 0)  # what the form does
    run.params.set("try_provider_login", False)
    opts = run.options(provider.Options)
    assert opts.log_tail is None and opts.try_provider_login is False


def test_the_calls_table_has_the_same_columns_everywhere():
    from runbook_lib import notebook as nb
    from runbook_lib.calls import Call

    run = headless_run("omnictl")
    run.calls.add(Call("omnictl", "get clusters", write=False))
    run.calls.add(Call("kubernetes homelab", "DELETE NetworkPolicy argocd/deny", write=True))
    assert list(run.calls_table().columns) == nb.CALL_COLUMNS and len(run.calls_table()) == 2
    assert list(run.calls_table(writes=True)["action"]) == ["DELETE NetworkPolicy argocd/deny"]


def test_next_steps_name_the_fix_and_the_plan():
    from runbook_lib import notebook as nb

    plan = fixes.Plan("argocd.stale_error_cache", "Restart", (fixes.Change("kubernetes homelab", "restart",
                                                                             "StatefulSet", "c", "argocd"),),
                      ("argocd.stale_error_cache",))
    verdict = Verdict("argocd", [Finding("argocd.stale_error_cache", "problem", "cached", fix="Restart it."),
                                 Finding("argocd.endpoints_none", "ok", "fine")])
    assert nb.next_steps(verdict, [plan], "runbook run argocd") == [
        "argocd.stale_error_cache: Restart it.",
        f"  or apply plan {plan.id}: runbook run argocd -p apply_fix {plan.id}"]
    assert nb.next_steps(Verdict("argocd", [])) == ["Nothing to fix."]


def test_finish_closes_what_the_run_opened_and_offers_the_plans(tmp_path):
    class Client:
        closed = False

        def close(self):
            self.closed = True

    run = headless_run("argocd", verdict_path=str(tmp_path / "v.json"))
    client = run.closing(Client())
    assert run.closing(None) is None
    plan = fixes.Plan("argocd.stale_error_cache", "Restart", (fixes.Change("kubernetes homelab", "restart",
                                                                             "StatefulSet", "c", "argocd"),),
                      ("argocd.stale_error_cache",))
    findings = [Finding("argocd.stale_error_cache", "problem", "cached", fix="Restart it.")]
    record = fixes.FixRecord(requested="", reason="no fix requested")
    verdict = run.finish(findings, plans=[plan], record=record)
    assert client.closed
    assert f"runbook run argocd -p apply_fix {plan.id}" in verdict.findings[0].fix
    assert (tmp_path / "v.json").is_file()


def test_a_refused_fix_fails_the_run_after_the_verdict():
    run = headless_run("recovery")
    run.fail_if_refused(fixes.FixRecord(requested=""))
    with pytest.raises(fixes.FixRefused, match="names no plan"):
        run.fail_if_refused(fixes.FixRecord(requested="x-1", refused=True, reason="apply_fix=x-1 names no plan"))


def test_a_figure_is_shown_once_and_closed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runbook_lib import notebook as nb

    figure, _ = plt.subplots()
    nb.show_figure(figure)
    nb.show_figure(None)
    assert plt.get_fignums() == []
