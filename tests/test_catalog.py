"""The cause catalog (runbook_lib/catalog.yaml) is the one list of finding ids."""

from __future__ import annotations

import pytest

from runbook_lab.model import validate_scenario
from runbook_lib import catalog
from runbook_lib.checks import registered
from runbook_lib.errors import ScenarioError


@pytest.mark.parametrize("section", catalog.load().sections)
def test_every_catalog_id_has_exactly_one_check(section):
    assert list(registered(section)) and set(registered(section)) == set(catalog.load().ids(section))


def test_the_guides_causes_are_all_there():
    ids = set(catalog.load().ids())
    assert len(ids) == 60 and {"provisioning.firewall", "cluster.etcd_quorum", "argocd.stale_error_cache",
                                "health.clusters_healthy", "omnictl.missing", "storage.name_typo"} <= ids


@pytest.mark.parametrize("section", catalog.load().sections)
def test_each_runbook_page_carries_the_catalogs_table(section):
    page = (catalog.PAGES / f"{section}.md").read_text(encoding="utf-8")
    assert catalog.page_block(section) in page, "run `python -m runbook_lib.catalog` to refresh the page"


def doc(**findings) -> dict:
    return {"layers": ["proxmox", "omni"],
            "sections": {"a": {"guide": "A", "layer": "omni",
                               "findings": {k: {"means": "m", "decided_by": "d", **v} for k, v in findings.items()}}}}


def test_a_broken_catalog_is_refused_with_the_reason():
    assert catalog.parse(doc(**{"a.x": {"explains": ["a.y"]}, "a.y": {}}))["a.x"].explains == ("a.y",)
    with pytest.raises(catalog.CatalogError, match="a.x explains unknown id"):
        catalog.parse(doc(**{"a.x": {"explains": ["a.nope"]}}))
    with pytest.raises(catalog.CatalogError, match="a.x -> a.y -> a.x"):
        catalog.parse(doc(**{"a.x": {"explains": ["a.y"]}, "a.y": {"explains": ["a.x"]}}))
    with pytest.raises(catalog.CatalogError, match="layer 'sky'"):
        catalog.parse(doc(**{"a.x": {"layer": "sky"}}))
    with pytest.raises(catalog.CatalogError, match="b.x: listed under section a"):
        catalog.parse(doc(**{"b.x": {}}))


def test_a_scenario_may_only_expect_catalog_ids():
    good = {"name": "x", "summary": "s", "cause": "provider.key_invalid", "expect": ["provider.key_invalid"],
            "changes": {}}
    assert validate_scenario(good)["expect"] == ["provider.key_invalid"]
    with pytest.raises(ScenarioError, match="provider.key_invalidd"):
        validate_scenario({**good, "expect": ["provider.key_invalidd"]})


def test_a_scenario_names_its_cause_among_what_it_expects():
    base = {"name": "x", "summary": "s", "expect": ["provider.key_invalid", "provider.container_down"], "changes": {}}
    assert validate_scenario({**base, "cause": "provider.key_invalid"})["cause"] == "provider.key_invalid"
    for cause in (None, "provider.unhealthy"):
        with pytest.raises(ScenarioError, match="'cause' must name"):
            validate_scenario({**base, "cause": cause})
    with pytest.raises(ScenarioError, match="no 'cause'"):
        validate_scenario({**base, "expect": [], "cause": "provider.key_invalid"})


@pytest.mark.parametrize("section", catalog.load().sections)
def test_every_finding_answers_a_symptom_of_its_section(section):
    """The symptom map is complete: an operator who sees something reaches every finding from it."""
    symptoms = catalog.load().symptoms[section]
    assert symptoms, f"{section} lists no symptoms"
    answered = {fid for s in symptoms for fid in s.findings}
    assert set(catalog.load().ids(section)) - answered == set()


@pytest.mark.parametrize("section", catalog.load().sections)
def test_each_runbook_page_carries_its_symptoms(section):
    page = (catalog.PAGES / f"{section}.md").read_text(encoding="utf-8")
    assert catalog.page_symptoms_block(section) in page, "run `python -m runbook_lib.catalog` to refresh the page"


def symptoms(*entries) -> dict:
    d = doc(**{"a.x": {}, "a.y": {}})
    d["sections"]["b"] = {"guide": "B", "layer": "omni", "findings": {"b.z": {"means": "m", "decided_by": "d"}}}
    d["sections"]["a"]["symptoms"] = list(entries)
    return d


def test_a_broken_symptom_is_refused_with_the_reason():
    parsed = catalog.parse(symptoms({"symptom": "it hurts", "findings": ["a.x"], "elsewhere": ["b.z"]}))
    assert parsed.symptoms["a"][0].answers == ("a.x", "b.z") and parsed.symptoms["b"] == ()
    with pytest.raises(catalog.CatalogError, match="'it hurts' of section a names unknown id a.nope"):
        catalog.parse(symptoms({"symptom": "it hurts", "findings": ["a.nope"]}))
    with pytest.raises(catalog.CatalogError, match="b.z belongs to section b; list another section's ids under"):
        catalog.parse(symptoms({"symptom": "it hurts", "findings": ["b.z"]}))
    with pytest.raises(catalog.CatalogError, match="a.x is this section's own; list it under 'findings'"):
        catalog.parse(symptoms({"symptom": "it hurts", "elsewhere": ["a.x"]}))
    with pytest.raises(catalog.CatalogError, match="names no finding that answers it"):
        catalog.parse(symptoms({"symptom": "it hurts"}))
    with pytest.raises(catalog.CatalogError, match="has no text"):
        catalog.parse(symptoms({"findings": ["a.x"]}))
    with pytest.raises(catalog.CatalogError, match="unknown key"):
        catalog.parse(symptoms({"symptom": "it hurts", "finding": ["a.x"]}))


def test_the_symptom_tables_name_other_sections_runbooks():
    table = catalog.symptom_table("provider")
    assert table.startswith("| symptom | the findings that answer it |")
    assert "`health.omni_services` (runbook health)" in table
    overview = catalog.symptoms_block(catalog.TRIAGE)
    assert all(f"| {section} |" in overview for section in catalog.load().sections)


def test_the_symptoms_block_is_written_once_and_kept_current(tmp_path):
    import nbformat

    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Storage\n\nWhat it is for.\n\nHow it works.")])
    nbformat.write(nb, folder / "storage.ipynb")
    assert catalog.write_notebooks(folder) == [folder / "storage.ipynb"]
    first = nbformat.read(folder / "storage.ipynb", as_version=4).cells[0].source
    assert first.startswith("# Storage\n\n" + catalog.symptoms_block("storage")) and first.endswith("How it works.")
    assert catalog.write_notebooks(folder) == []  # current: nothing to write
