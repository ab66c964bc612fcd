"""`runbook triage`: every section at once on one kernel, one record, the root cause first.

Triage of the shipped `key-invalid` scenario must put `provider.key_invalid` first, with the
container that crashes because of it (and the registration that goes stale) as its knock-ons, in
the terminal, the verdict JSON and the HTML record; the re-run command it suggests carries the
same `--lab`. `-p sections` narrows the run; an unknown section is refused by name.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from runbook_lab.twin import Twin
from runbook_lib import catalog, cli, records, runner

pytestmark = pytest.mark.runbook


@pytest.fixture(scope="module")
def key_invalid(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("triage") / "outputs"
    captured = tmp_path_factory.mktemp("stdout") / "out.txt"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["triage", "--lab", "key-invalid", "--outputs", str(outputs)])
    captured.write_text(buf.getvalue())
    [entry] = records.read_index(outputs)
    return code, buf.getvalue(), outputs, entry


def verdict_of(outputs) -> dict:
    [path] = list(outputs.rglob("triage.json"))
    return json.loads(path.read_text())


def test_the_terminal_starts_with_the_cause_to_fix_first(key_invalid):
    code, text, _, _ = key_invalid
    assert code == 2
    lines = text.splitlines()
    assert lines[1].startswith("  Fix first: provider.key_invalid: ")
    fix_at = next(i for i, line in enumerate(lines) if "fix: Regenerate the key" in line)
    knock_ons = text[text.index("explains"):]
    assert fix_at < lines.index(next(line for line in lines if "explains" in line))
    for fid in ("provider.container_down", "provider.unhealthy", "health.provider_running",
                "health.provider_registered"):
        assert fid in knock_ons
    assert "after a fix, run it again: runbook triage --lab key-invalid" in text


def test_the_verdict_json_carries_root_causes_and_explained_by(key_invalid):
    _, _, outputs, entry = key_invalid
    doc = verdict_of(outputs)
    assert doc["root_causes"] == ["provider.key_invalid"]
    by_id = {f["id"]: f for f in doc["findings"]}
    assert by_id["provider.key_invalid"]["explained_by"] == []
    assert "provider.key_invalid" in by_id["provider.container_down"]["explained_by"]
    assert "explained_by" not in by_id["storage.selector_invalid"]  # only problems carry it
    sections = {f["id"].split(".")[0] for f in doc["findings"]}
    assert sections == set(catalog.load().sections) >= {"provider", "storage", "provisioning", "cluster", "recovery",
                                                        "omnictl", "argocd", "health"}
    assert entry["runbook"] == "triage" and "provider.key_invalid" in entry["problems"]


def test_one_incident_is_one_record_with_the_cause_first_and_the_logs(key_invalid):
    _, _, outputs, entry = key_invalid
    [directory] = {p.parent for p in outputs.rglob("triage.json")}
    assert sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")) == \
        ["triage.evidence.json", "triage.html", "triage.ipynb", "triage.json"]
    page = (directory / "triage.html").read_text()
    assert page.index("Fix first") < page.index("provider.container_down")
    assert "omni-provider-proxmox-provider-1" in page  # the provider's log was collected: something is wrong
    assert records.verify(directory, entry["verdict_sha256"], "triage").ok


def test_sections_narrow_the_run_and_a_healthy_site_has_no_root_cause(tmp_path):
    with Twin() as twin:
        result = runner.run_runbook("triage", site_file=twin.site_file, outputs_dir=tmp_path,
                                    parameters={"sections": "provider,storage"})
    assert result.exit_code == 0, result.verdict.text()
    assert {f.id.split(".")[0] for f in result.verdict.findings} == {"provider", "storage"}
    assert result.verdict.root_causes == []
    assert "not collected: nothing is wrong" in result.paths["notebook"].read_text()


def test_an_unknown_section_is_refused_by_name(tmp_path):
    with Twin() as twin:
        result = runner.run_runbook("triage", site_file=twin.site_file, outputs_dir=tmp_path,
                                    parameters={"sections": "provider,storage-typo"})
    assert result.exit_code == 3
    assert "storage-typo is not a section" in result.verdict.error
