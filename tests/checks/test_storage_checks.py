"""The storage-selector checks, judged from evidence dicts alone (no servers)."""

from __future__ import annotations

import copy

import pytest

from runbook_lib.checks import registered, run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.gather.storage import summarize_class
from runbook_lib.views import storage

GIB = 1024 ** 3


def pools(**changes) -> list[dict]:
    rows = [
        {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "enabled": 1, "active": 1, "shared": 0,
         "total": 100 * GIB, "avail": 80 * GIB},
        {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "enabled": 1, "active": 1,
         "shared": 0, "total": 900 * GIB, "avail": 600 * GIB},
        {"storage": "vm_ssd", "type": "rbd", "content": "images,rootdir", "enabled": 1, "active": 1, "shared": 1,
         "total": 2048 * GIB, "avail": 1500 * GIB},
    ]
    for row in rows:
        row.update(changes.get(row["storage"].replace("-", "_"), {}))
    return rows


def machine_class(cid: str, providerdata: str, provider: str = "proxmox") -> dict:
    return summarize_class({"metadata": {"id": cid, "namespace": "default"},
                            "spec": {"autoprovision": {"providerid": provider, "providerdata": providerdata}}})


HEALTHY_DATA = 'cores: 2\nmemory: 4096\ndisk_size: 20\nstorage_selector: name == "vm_ssd"\n'


def healthy() -> dict:
    return {
        "expected": {"provider_id": "proxmox", "cluster": "matrix", "candidate": None, "machine_class": None},
        "machineclasses": [machine_class("proxmox-control-plane", HEALTHY_DATA),
                           machine_class("proxmox-worker", HEALTHY_DATA + "additional_disks:\n  - disk_size: 100\n"
                                         "    storage_selector: storageType == \"lvmthin\"\n"),
                           machine_class("other-provider", "storage_selector: nonsense ==", provider="kubevirt")],
        "nodes": [{"node": n, "status": "online"} for n in ("pve1", "pve2", "pve3")],
        "storages": {n: pools() for n in ("pve1", "pve2", "pve3")},
        "storage_errors": {},
    }


def with_selector(items: dict, text: str, cid: str = "proxmox-worker") -> dict:
    items = copy.deepcopy(items)
    items["machineclasses"] = [c for c in items["machineclasses"] if c["id"] != cid]
    items["machineclasses"].append(machine_class(cid, f"cores: 4\nmemory: 8192\ndisk_size: 40\n"
                                                      f"storage_selector: {text}\n"))
    return items


def verdict(items: dict, errors: dict | None = None) -> dict[str, str]:
    return {f.id: f.status for f in run_checks("storage", Evidence(items, errors))}


def problems(items: dict, errors: dict | None = None) -> set[str]:
    return {i for i, s in verdict(items, errors).items() if s == "problem"}


def finding(items: dict, fid: str):
    return next(f for f in run_checks("storage", Evidence(items)) if f.id == fid)


def test_every_catalog_id_has_a_check():
    assert set(registered("storage")) == {
        "storage.selector_invalid", "storage.selector_type_keyword", "storage.selector_missing",
        "storage.selector_empty", "storage.selector_multiple", "storage.name_typo", "storage.pool_inactive",
        "storage.wrong_type"}


def test_healthy_site_is_all_ok():
    assert set(verdict(healthy()).values()) == {"ok"}


@pytest.mark.parametrize("selector, expected", [
    ('type == "rbd"', {"storage.selector_type_keyword"}),
    ("name == vm_ssd", {"storage.selector_invalid"}),
    ("availableSpace > 500000000000", {"storage.selector_invalid"}),
    ('"vm_ssd"', {"storage.selector_invalid"}),
    ("availableSpace > 500000000000u", {"storage.selector_multiple"}),
    ('name == "nvme"', {"storage.selector_empty"}),
    ('name == "VM_SSD"', {"storage.selector_empty", "storage.name_typo"}),
    ('name in ["vm-ssd", "local-lvm"]', {"storage.name_typo"}),  # silently picks local-lvm instead
    ('storageType == "lvm"', {"storage.selector_empty", "storage.wrong_type"}),
    ('name == "local"', {"storage.wrong_type"}),
    ('name.startsWith("VM")', {"storage.selector_empty", "storage.name_typo"}),
    ('name.startsWith("vm")', set()),
])
def test_each_selector_mistake_names_its_cause(selector, expected):
    assert problems(with_selector(healthy(), selector)) == expected


def test_type_keyword_fix_names_the_pool_the_corrected_selector_picks():
    f = finding(with_selector(healthy(), 'type == "rbd"'), "storage.selector_type_keyword")
    assert 'storage_selector: name == "vm_ssd"' in f.fix
    assert any("(type(type), string)" in line for line in f.evidence)
    assert finding(with_selector(healthy(), 'type == "rbd"'), "storage.selector_invalid").status == "skipped"


def test_type_together_with_another_error_is_both_causes():
    got = problems(with_selector(healthy(), 'type == "rbd" && enabled == 1'))
    assert got == {"storage.selector_type_keyword", "storage.selector_invalid"}


def test_invalid_selector_evidence_is_cel_go_error_and_a_hint():
    f = finding(with_selector(healthy(), "name == vm_ssd"), "storage.selector_invalid")
    assert "  ERROR: <input>:1:9: undeclared reference to 'vm_ssd' (in container '')" in f.evidence
    assert any("is a pool name" in line for line in f.evidence)


def test_multiple_says_which_pool_wins_and_which_are_shadowed():
    f = finding(with_selector(healthy(), "availableSpace > 500000000000u"), "storage.selector_multiple")
    assert "the provider takes local-lvm (first in API order) and never considers vm_ssd" in f.evidence[0]
    assert "pve1, pve2, pve3" in f.evidence[0]
    assert 'name == "local-lvm"' in f.fix


def test_api_order_decides_the_winner():
    items = with_selector(healthy(), "availableSpace > 500000000000u")
    items["storages"]["pve2"] = list(reversed(pools()))
    rows = storage.outcomes(Evidence(items))
    takes = {r["node"]: r["takes"] for r in rows if r["selector"] == "machineclass proxmox-worker"}
    assert takes == {"pve1": "local-lvm", "pve2": "vm_ssd", "pve3": "local-lvm"}


def test_camel_case_provider_data_is_a_missing_selector():
    items = healthy()
    items["machineclasses"][1] = machine_class("proxmox-worker", 'cores: 4\nmemory: 8192\ndiskSize: 40\n'
                                                                 'storageSelector: name == "vm_ssd"\n')
    f = finding(items, "storage.selector_missing")
    assert f.status == "problem"
    assert "  `storageSelector` is ignored: the provider reads `storage_selector`" in f.evidence
    assert "  `diskSize` is ignored: the provider reads `disk_size`" in f.evidence
    assert any("1:0: Syntax error: mismatched input '<EOF>'" in line for line in f.evidence)
    assert problems(items) == {"storage.selector_missing"}  # the other class is still judged, and fine


def test_an_empty_selector_or_an_additional_disk_without_one_is_missing():
    items = with_selector(healthy(), '""')
    assert problems(items) == {"storage.selector_missing"}
    items = healthy()
    items["machineclasses"][1] = machine_class("proxmox-worker", HEALTHY_DATA + "additional_disks:\n  - disk_size: 9\n")
    f = finding(items, "storage.selector_missing")
    assert f.status == "problem" and "additional_disks[0] has no storage_selector" in f.evidence[0]


def test_classes_of_other_providers_are_not_judged():
    items = healthy()
    items["machineclasses"] = [c for c in items["machineclasses"] if c["provider"] != "proxmox"]
    assert set(verdict(items).values()) == {"skipped"}


def test_pool_disabled_on_one_node_is_inactive_there():
    items = healthy()
    items["storages"]["pve3"] = pools(vm_ssd={"enabled": 0, "active": 0, "avail": 0, "total": 0})
    f = finding(items, "storage.pool_inactive")
    assert f.status == "problem"
    assert all("on pve3" in line for line in f.evidence) and "disabled there" in f.evidence[0]
    assert problems(items) == {"storage.pool_inactive"}


def test_named_pool_inactive_explains_an_empty_selector():
    items = with_selector(healthy(), 'name == "vm_ssd" && availableSpace > 1000u')
    items["storages"]["pve2"] = pools(vm_ssd={"active": 0, "avail": 0, "total": 0})
    assert problems(items) == {"storage.selector_empty", "storage.pool_inactive"}


def test_a_pinned_node_is_the_only_node_judged():
    items = with_selector(healthy(), 'name == "vm_ssd"')
    items["machineclasses"][-1]["node"] = "pve1"
    items["storages"]["pve3"] = pools(vm_ssd={"enabled": 0, "active": 0, "avail": 0})
    assert finding(items, "storage.pool_inactive").evidence  # the control plane still lands on pve3
    items["machineclasses"] = [items["machineclasses"][-1]]
    assert problems(items) == set()


def test_a_node_that_could_not_be_read_makes_ok_unknown():
    items = healthy()
    del items["storages"]["pve2"]
    items["storage_errors"] = {"pve2": "proxmox matrix 127.0.0.1:1: connection refused"}
    v = verdict(items)
    assert v["storage.selector_empty"] == "unknown" and v["storage.selector_missing"] == "ok"
    items = with_selector(items, 'name == "nvme"')
    assert verdict(items)["storage.selector_empty"] == "problem"  # a problem elsewhere still shows


def test_missing_evidence_is_unknown_not_a_crash():
    items = healthy()
    del items["storages"]
    v = verdict(items, {"storages": "proxmox matrix: auth failed"})
    assert v["storage.selector_empty"] == "unknown" and v["storage.name_typo"] == "unknown"
    assert v["storage.selector_invalid"] == "ok"  # compiling needs no Proxmox
    items = healthy()
    del items["machineclasses"]
    assert set(verdict(items, {"machineclasses": "omnictl: unauthenticated"}).values()) == {"unknown"}


def test_a_candidate_selector_replaces_the_classes():
    items = healthy()
    del items["machineclasses"]  # Omni need not even answer
    items["expected"]["candidate"] = 'name in ["vm-ssd", "local-lvm"]'
    v = verdict(items)
    assert v["storage.selector_missing"] == "skipped"
    assert {i for i, s in v.items() if s == "problem"} == {"storage.name_typo"}


def test_pick_table_shows_every_storage_with_first_and_why():
    rows = storage.pick_table("availableSpace > 500000000000u", {"pve1": pools()})
    assert [(r["storage"], r["matched"], r["first"]) for r in rows] == [
        ("local", False, False), ("local-lvm", True, True), ("vm_ssd", True, False)]
    assert rows[0]["why"].startswith("no match: availableSpace > 500000000000u is false")
    failing = storage.pick_table('name == "nvme"', {"pve1": pools()})
    assert failing[-1]["why"].startswith("the provider fails: failed to pick the disk: no matches")
    broken = storage.pick_table('type == "rbd"', {"pve1": pools()})
    assert {r["matched"] for r in broken} == {None} and "type(type)" in broken[-1]["why"]


