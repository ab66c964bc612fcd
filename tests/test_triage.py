"""`runbook triage`: health, then the runbooks it points to, kept as one incident.

A provider fault (the shipped `container-down` scenario) must give one incident folder holding
the health record and the provider record (and the logs), one index entry, and a summary that
names the provider's finding with its evidence. The healthy twin costs one kernel start and
leaves only the health record and the summary. The triage notebook run on its own (as
`runbook run triage` does) must build the same incident.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from runbook_lib import archive, records, runner
from runbook_lib.lab.twin import Twin
from runbook_lib.triage import run_triage

pytestmark = pytest.mark.runbook


def notebook_text(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


@pytest.fixture(scope="module")
def provider_fault(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("triage") / "outputs"
    with Twin("container-down") as twin, runner.KernelSession(outputs) as session:
        result = run_triage(twin.site_file, outputs_dir=outputs, session=session)
        starts = session.starts
    return result, outputs, starts


def test_the_incident_holds_the_health_and_provider_records(provider_fault):
    result, outputs, starts = provider_fault
    assert result.exit_code == 2
    names = sorted(p.name for p in result.record_dir.iterdir())
    for runbook in ("health", "provider", "logs", "triage"):
        assert {f"{runbook}.ipynb", f"{runbook}.json", f"{runbook}.html"} <= set(names)
    health = json.loads((result.record_dir / "health.json").read_text())
    provider = json.loads((result.record_dir / "provider.json").read_text())
    assert {f["id"] for f in health["findings"] if f["status"] == "problem"} == \
        {"health.provider_running", "health.provider_registered"}
    assert {f["id"] for f in provider["findings"] if f["status"] == "problem"} == \
        {"provider.container_down", "provider.unhealthy"}
    assert health["run_id"] == provider["run_id"] == result.verdict.run_id
    assert starts == 1  # every runbook of the incident ran on one kernel


def test_the_summary_names_the_provider_finding_with_its_evidence(provider_fault):
    result, _, _ = provider_fault
    assert {"provider.container_down", "health.provider_running"} <= {f.id for f in result.verdict.problems}
    text = notebook_text(result.paths["notebook"])
    assert "provider.container_down" in text and "docker inspect omni-provider-proxmox-provider-1" in text
    page = result.paths["html"].read_text()
    assert 'href="provider.html"' in page and 'href="health.html"' in page
    assert page.index("verdict-table") < page.index("Every problem found")  # the verdict comes first


def test_one_incident_is_one_index_entry_with_valid_checksums(provider_fault):
    result, outputs, _ = provider_fault
    entries = records.read_index(outputs)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["runbook"] == "triage" and entry["parts"] == ["health", "logs", "provider"]
    assert "provider.container_down" in entry["problems"]
    check = records.verify(result.record_dir, entry["verdict_sha256"], "triage")
    assert check.ok, check.problems
    listed = json.loads(result.paths["verdict"].read_text())["provenance"]["checksums"]
    assert {"health.json", "provider.ipynb", "logs.html"} <= set(listed)
    assert archive.list_runs(outputs, archive.Filters(runbook="provider")) == entries  # found by its parts


def test_a_healthy_twin_is_one_kernel_and_no_other_runbook(tmp_path):
    outputs = tmp_path / "outputs"
    with Twin() as twin, runner.KernelSession(outputs) as session:
        result = run_triage(twin.site_file, outputs_dir=outputs, session=session)
        assert session.starts == 1
    assert result.exit_code == 0, result.verdict.text()
    assert sorted(p.stem for p in result.record_dir.glob("*.json")) == ["health", "triage"]
    assert {f.id for f in result.verdict.findings} >= {"health.omni_reachable", "health.proxmox_api"}
    assert "No runbook found a problem" in notebook_text(result.paths["notebook"])


def test_the_notebook_alone_builds_the_same_incident(tmp_path):
    outputs = tmp_path / "outputs"
    with Twin("container-down") as twin:
        result = runner.run_runbook("triage", site_file=twin.site_file, outputs_dir=outputs)
    assert result.exit_code == 2, result.verdict.text()
    assert sorted(p.stem for p in result.record_dir.glob("*.json")) == ["health", "logs", "provider", "triage"]
    assert "provider.container_down" in {f.id for f in result.verdict.problems}
    [entry] = records.read_index(outputs)
    assert entry["parts"] == ["health", "logs", "provider"]
    assert records.verify(result.record_dir, entry["verdict_sha256"], "triage").ok
