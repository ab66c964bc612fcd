"""The recovery notebook end to end through papermill: its verdict, and each guarded plan before,
applied and after (no write without apply_fix, a wrong id refused, exactly the planned writes with
it, the finding checked again). tests/test_runbooks.py checks every scenario's verdict."""

from __future__ import annotations

import json

import pytest

from runbook_lab.twin import Twin
from runbook_lib.runner import run_runbook

pytestmark = pytest.mark.runbook


def plan_id(result, finding: str) -> str:
    f = next(f for f in result.verdict.problems if f.id == finding)
    return f.fix.split("apply_fix ")[1].split("`")[0]


PLANS = {  # scenario: (finding, the writes the twin must see, exactly)
    "recovery-teardown-vm-moved": ("recovery.teardown_vm_moved", [("proxmox", "POST /nodes/pve3/qemu/1001/migrate")]),
    "recovery-orphan-vm": ("recovery.orphan_vm", [("proxmox", "POST /nodes/pve3/qemu/1003/status/stop"),
                                                  ("proxmox", "DELETE /nodes/pve3/qemu/1003")]),
    "recovery-link-orphan": ("recovery.link_orphan",
                             [("omnictl", "delete link 5d3c6f0e-8b1a-4f7e-9c2d-1a2b3c4d5e6f")]),
}


@pytest.mark.parametrize("scenario", sorted(PLANS))
def test_plan_shown_refused_then_applied_and_rechecked(scenario, tmp_path):
    finding, expected_writes = PLANS[scenario]
    out = tmp_path / "outputs"
    with Twin(scenario) as twin:
        shown = run_runbook("recovery", site_file=twin.site_file, outputs_dir=out)
        assert shown.exit_code == 2 and twin.writes() == []
        pid = plan_id(shown, finding)
        notebook = shown.paths["notebook"].read_text()
        assert f"plan {pid}:" in notebook and "to apply it, run again with" in notebook

        refused = run_runbook("recovery", site_file=twin.site_file, outputs_dir=out,
                              parameters={"apply_fix": pid[:-1] + ("0" if pid[-1] != "0" else "1")})
        assert refused.exit_code == 3 and "names no plan of this run" in refused.verdict.error
        assert refused.verdict.status_of(finding) == "problem" and twin.writes() == []

        applied = run_runbook("recovery", site_file=twin.site_file, outputs_dir=out,
                              parameters={"apply_fix": pid, "recheck_timeout": 5})
        writes = twin.writes()
        after = run_runbook("recovery", site_file=twin.site_file, outputs_dir=out)
    assert [(w["kind"], w["action"]) for w in writes] == expected_writes
    fixed = next(f for f in applied.verdict.findings if f.id == finding)
    assert fixed.status == "ok", applied.verdict.text()
    assert fixed.evidence[0].startswith(f"fix plan {pid} applied ({len(expected_writes)}/{len(expected_writes)}")
    recorded = [c for c in applied.verdict.calls if c["write"]]
    assert len(recorded) == len(expected_writes) and all(c["outcome"] == "ok" for c in recorded)
    assert after.verdict.status_of(finding) == "ok"  # a fresh run agrees
    text = json.dumps(json.loads(applied.paths["notebook"].read_text()))
    assert "before" in text and "after" in text


def test_teardown_vm_missing_verdict_and_no_plan_for_the_missing_vm(tmp_path):
    with Twin("recovery-teardown-vm-missing") as twin:
        res = run_runbook("recovery", site_file=twin.site_file, outputs_dir=tmp_path)
        assert twin.writes() == []
    assert res.exit_code == 2
    assert {f.id for f in res.verdict.problems} == {"recovery.teardown_vm_missing", "recovery.teardown_stuck",
                                                    "recovery.link_orphan"}
    assert res.verdict.root_causes[0] == "recovery.teardown_vm_missing"
    missing = next(f for f in res.verdict.problems if f.id == "recovery.teardown_vm_missing")
    assert "apply_fix" not in missing.fix and "InfraProvider" in missing.fix
    link = next(f for f in res.verdict.problems if f.id == "recovery.link_orphan")
    assert "apply_fix link_orphan-" in link.fix
