"""Every shipped scenario, run headless through papermill exactly as `runbook run --lab` does.

For each scenario: the findings that come out as `problem` are exactly the ones it expects, the
run made no write call against the twin, and no canary secret of the twin appears in any file of
the record (notebook, verdict JSON, HTML, index).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lab.model import list_scenarios, load_scenario
from runbook_lab.twin import Twin
from runbook_lib.runner import run_runbook

pytestmark = pytest.mark.runbook
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SECTIONS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def sections_for(scenario: dict) -> list[str]:
    wanted = sorted({i.split(".")[0] for i in scenario["expect"]}) or SECTIONS
    return [s for s in wanted if s in SECTIONS]


@pytest.mark.parametrize("name", sorted(list_scenarios()))
def test_scenario_verdict(name, tmp_path):
    scenario = load_scenario(name)
    sections = sections_for(scenario)
    if not sections:
        pytest.skip(f"no runbook yet for {scenario['expect']}")
    outputs = tmp_path / "outputs"
    with Twin(name) as twin:
        results = {s: run_runbook(s, site_file=twin.site_file, outputs_dir=outputs) for s in sections}
        writes = twin.writes()
        canaries = list(twin.secrets.values())
    for section, res in results.items():
        got = {f.id for f in res.verdict.findings if f.status == "problem"}
        want = {i for i in scenario["expect"] if i.startswith(section + ".")}
        assert got == want, res.verdict.text()
        unknown = [f.id for f in res.verdict.findings if f.status == "unknown"]
        assert res.exit_code == (2 if want else 1 if unknown else 0)
        if not want:
            assert not unknown, res.verdict.text()
        for f in res.verdict.problems:
            assert f.evidence and f.fix, f
    assert writes == [], "a diagnostic run wrote to the twin"
    files = [p for p in outputs.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".ipynb", ".json", ".html", ".jsonl"}
    assert canaries and all(c.startswith("CANARY-") for c in canaries)
    for path in files:
        text = path.read_text(errors="replace")
        leaked = [c for c in canaries if c in text]
        assert not leaked, f"{path.name} contains a twin secret"
