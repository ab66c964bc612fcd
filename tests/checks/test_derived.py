"""What the checks of a section share (@derive) is built once per run and kept nowhere else.

The provisioning join chain, the storage selectors run on every node and the recovery drift used
to sit in module-level caches keyed by the Evidence object; now run_checks builds each once per
run and hands it to the checks that ask. A failure to build it reaches every check that asks,
as if each had built it itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib import checks
from runbook_lib.checks import Derived, derive, provisioning, registered, run_checks
from runbook_lib.evidence import Evidence, MissingEvidence

CHECKS = Path(checks.__file__).parent
for _section in ("provisioning", "recovery", "storage"):
    registered(_section)  # the check modules bind what they import now, before any test patches it

calls: list[str] = []


@derive("storage")
def counted(ev: Evidence) -> int:
    calls.append("built")
    return ev.get("n") + 1


def test_a_derived_value_is_built_once_and_kept_for_the_run():
    calls.clear()
    derived = Derived(Evidence({"n": 1}))
    assert derived(counted) == 2 and derived(counted) == 2
    assert calls == ["built"]
    assert Derived(Evidence({"n": 5}))(counted) == 6  # another run builds its own
    assert calls == ["built", "built"]


def test_a_failure_is_built_once_and_raised_to_every_asker():
    calls.clear()
    derived = Derived(Evidence({}, {"n": "ssh: timed out"}))
    for _ in range(2):
        with pytest.raises(MissingEvidence) as exc:
            derived(counted)
        assert exc.value.name == "n" and exc.value.reason == "ssh: timed out"
    assert calls == ["built"]  # tried once; the second asker gets the same failure


def test_only_registered_derivations_can_be_asked_for():
    with pytest.raises(KeyError, match="not registered with @derive"):
        Derived(Evidence({}))(lambda ev: 1)


def test_derive_names_a_section_of_the_catalog():
    with pytest.raises(KeyError):
        derive("no-such-section")


def count_calls(monkeypatch, module, name: str) -> list:
    seen = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return seen


def test_run_checks_builds_the_provisioning_join_chain_once(monkeypatch):
    seen = count_calls(monkeypatch, provisioning, "join_chain")
    ev = Evidence({"machine_requests": [], "vms": {}, "machine_statuses": {}, "links": {}, "tasks": [], "now": 0.0,
                   "provider_addresses": [], "talos_probes": {}})
    found = run_checks("provisioning", ev)
    users = [c for c in registered("provisioning").values() if c.derived]
    assert len(users) >= 5 and len(found) == len(registered("provisioning"))
    assert len(seen) == 1
    run_checks("provisioning", ev)
    assert len(seen) == 2  # a second run builds it again: nothing is kept between runs


def test_run_checks_runs_the_storage_selectors_once(monkeypatch):
    from runbook_lib.model import storage_selectors

    # the checks imported subjects before this patch; analyze() looks it up in its module, once per build
    seen = count_calls(monkeypatch, storage_selectors, "subjects")
    ev = Evidence({"expected": {"provider_id": "proxmox", "candidate": 'name == "local-lvm"', "machine_class": None},
                   "machineclasses": [], "nodes": [{"node": "pve1", "status": "online"}],
                   "storages": {"pve1": [{"storage": "local-lvm", "type": "lvmthin", "content": "images",
                                          "enabled": 1, "active": 1, "avail": 1 << 40}]}})
    assert {f.status for f in run_checks("storage", ev)} <= {"ok", "skipped"}
    assert len(seen) == 1


def test_run_checks_follows_the_recovery_requests_once(monkeypatch):
    from runbook_lib.model import drift

    seen = count_calls(monkeypatch, drift, "vm_uuids")  # drift() calls it once per build, nothing else does
    ev = Evidence({"machine_requests": [], "all_vms": [], "links": {}, "machines": {}, "now": 0.0,
                   "expected": {"provider_id": "proxmox", "cluster": "lab"}})
    run_checks("recovery", ev)
    assert len(seen) == 1


def test_no_check_module_keeps_state_between_runs():
    text = {p.name: p.read_text(encoding="utf-8") for p in CHECKS.glob("*.py")}
    assert [name for name, t in text.items() if "weakref" in t or "lru_cache" in t or "functools.cache" in t] == []
