"""The twin's model: the merge rule, scenario validation and placeholders."""

from __future__ import annotations

import pytest
import yaml

from runbook_lab.model import fill, list_scenarios, load_scenario, merge, scenario_state
from runbook_lib import catalog
from runbook_lib.errors import ScenarioError


def test_merge_rule():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 4}
    assert merge(base, {"a": {"b": 2, "c": [3]}, "d": None, "e": 5}) == {"a": {"b": 2, "c": [3]}, "e": 5}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 4}  # untouched


def test_every_shipped_scenario_loads_and_expects_catalog_ids():
    scenarios = list_scenarios()
    assert "healthy" in scenarios and len(scenarios) >= 12
    for name in scenarios:
        s = load_scenario(name)
        assert s["name"] == name
        assert all(i.split(".")[0] in set(catalog.load().sections) for i in s["expect"])


def test_a_typo_in_a_scenario_is_rejected(tmp_path):
    p = tmp_path / "typo.yaml"
    p.write_text(yaml.safe_dump({"name": "typo", "summary": "x", "expect": [],
                                 "changes": {"hosts": {"provider": {"dokcer": "down"}}}}))
    with pytest.raises(ScenarioError, match=r"changes.hosts.provider.dokcer: not a field"):
        load_scenario(p)


def test_unknown_scenario_lists_the_shipped_ones():
    with pytest.raises(ScenarioError, match="key-invalid"):
        load_scenario("no-such-scenario")


def test_new_names_are_allowed_inside_open_mappings():
    s = {"name": "x", "summary": "x", "changes": {"hosts": {"provider": {"containers": {"other": {"state": "running"}}}}}}
    assert "other" in scenario_state(s)["hosts"]["provider"]["containers"]


def test_placeholders():
    values = {"now": 1000, "omni_url": "https://127.0.0.1:1"}
    doc = fill({"a": "${omni_url}/healthz", "b": "${now}", "c": "${ago:100}", "d": "${secret:x}", "e": "${secret:x}"},
               values)
    assert doc["a"] == "https://127.0.0.1:1/healthz" and doc["b"] == 1000 and doc["c"] == 900
    assert doc["d"] == doc["e"] and doc["d"].startswith("CANARY-x-")
    with pytest.raises(ScenarioError, match="pve_url:nosuch"):
        fill("${pve_url:nosuch}", values, strict=True)
