"""The recovery checks, their model and their plans, judged from evidence dicts alone (no servers)."""

from __future__ import annotations

import copy

import pytest

from runbook_lib.checks import run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.fixes import recovery as recovery_fixes
from runbook_lib.model.recovery import disks, node_in_error, recorded_node, request_set_of, smbios_uuid

NOW = 1_800_000_000.0
CP, WK = "homelab-control-planes-pnsg8n", "homelab-workers-x7kq2m"
CP_ID, WK_ID = "9a41c2e7-6b3d-4f08-a5c1-2e7d9b0f4a63", "5d3c6f0e-8b1a-4f7e-9c2d-1a2b3c4d5e6f"
ORPHAN_ID = "7c2e9b14-3a5d-4f60-8e1b-6d4c2a9f0b37"
IDS = ["recovery.teardown_vm_missing", "recovery.teardown_vm_moved", "recovery.teardown_stuck", "recovery.orphan_vm",
       "recovery.request_vm_missing", "recovery.link_orphan"]


def vm(vmid, name, node, tags, status="running"):
    return {"name": name, "vmid": vmid, "node": node, "status": status, "tags": tags, "maxmem": 8 << 30,
            "maxdisk": 40 << 30, "maxcpu": 4, "lock": ""}


def healthy() -> dict:
    meta = lambda created: {"phase": "running", "finalizers": [], "created": created, "updated": created}  # noqa: E731
    return {
        "expected": {"provider_id": "proxmox", "cluster": "matrix", "teardown_after": 900, "link_after": 600},
        "now": NOW,
        "machine_requests": [{"id": CP, "set": "homelab-control-planes", **meta(NOW - 90000)},
                             {"id": WK, "set": "homelab-workers", **meta(NOW - 86400)}],
        "request_statuses": {CP: {"uuid": CP_ID, "stage": 2, "status": "Provision Complete", "error": ""},
                             WK: {"uuid": WK_ID, "stage": 2, "status": "Provision Complete", "error": ""}},
        "cluster_request_statuses": {
            CP: {"stage": 3, "status": "Waiting for the machine to join Omni", "machineuuid": CP_ID, **meta(NOW - 89700)},
            WK: {"stage": 3, "status": "Waiting for the machine to join Omni", "machineuuid": WK_ID, **meta(NOW - 86100)}},
        "machines": {CP_ID: {"connected": True, **meta(NOW - 89650)}, WK_ID: {"connected": True, **meta(NOW - 86050)}},
        "links": {CP_ID: {"connected": True, "lastendpoint": "192.168.3.52:51820", **meta(NOW - 89650)},
                  WK_ID: {"connected": True, "lastendpoint": "192.168.3.51:51820", **meta(NOW - 86050)}},
        "machine_statuses": {CP_ID: {"connected": True, "cluster": "homelab", "request": CP, "hostname": CP},
                             WK_ID: {"connected": True, "cluster": "homelab", "request": WK, "hostname": WK}},
        "provider_status": {"proxmox": {"connected": True}},
        "nodes": ["pve1", "pve2", "pve3"],
        "all_vms": [vm(1001, WK, "pve1", "machine-request.homelab-workers"),
                    vm(1002, CP, "pve2", "machine-request.homelab-control-planes"),
                    vm(101, "holly", "pve3", "")],
        "vm_configs": {"1001": {"uuid": WK_ID, "disks": {"scsi0": "vm_ssd:vm-1001-disk-0,size=40G"}},
                       "1002": {"uuid": CP_ID, "disks": {"scsi0": "vm_ssd:vm-1002-disk-0,size=20G"}}},
        "tasks": [{"node": "pve1", "upid": "UPID:pve1:1", "type": "qmcreate", "id": "1001", "user": "omni@pve!provider",
                   "status": "OK", "starttime": NOW - 86300, "endtime": NOW - 86296}],
        "provider_log": {"lines": 3, "window": "tail 5000", "picks": {}, "failures": {}, "deprovisioned": []},
    }


def tearing_down(d: dict, since: float = 7200) -> dict:
    req = next(r for r in d["machine_requests"] if r["id"] == WK)
    req.update(phase="tearingDown", finalizers=["proxmox.ProvisionController"], updated=NOW - since)
    d["cluster_request_statuses"][WK].update(stage=4, status="Waiting for the infra provider to finish teardown",
                                             updated=NOW - since)
    d["provider_log"]["failures"][WK] = {"count": 60, "error": "500 Internal Server Error", "ago": 20}
    return d


def vm_deleted(d: dict) -> dict:
    d["all_vms"] = [v for v in d["all_vms"] if v["vmid"] != 1001]
    d["vm_configs"].pop("1001")
    return d


def vm_moved(d: dict) -> dict:
    next(v for v in d["all_vms"] if v["vmid"] == 1001)["node"] = "pve3"
    d["tasks"].append({"node": "pve1", "upid": "UPID:pve1:2", "type": "qmigrate", "id": "1001", "user": "root@pam",
                       "status": "OK", "starttime": NOW - 43200, "endtime": NOW - 43160})
    return d


def orphan(d: dict) -> dict:
    d["all_vms"].append(vm(1003, "homelab-workers-b4c9zd", "pve3", "machine-request.homelab-workers"))
    d["vm_configs"]["1003"] = {"uuid": ORPHAN_ID, "disks": {"scsi0": "vm_ssd:vm-1003-disk-0,size=40G"}}
    return d


def machine_stuck(d: dict, since: float = 5400) -> dict:
    d["machines"][WK_ID].update(phase="tearingDown", finalizers=["MachineStatusController"], updated=NOW - since,
                                connected=False)
    return d


def link_without_machine(d: dict) -> dict:
    d["machines"].pop(WK_ID)
    return d


def problems(d: dict) -> set[str]:
    return {f.id for f in run_checks("recovery", Evidence(d)) if f.status == "problem"}


CASES = {
    "healthy": (lambda d: d, set()),
    "teardown in progress, under the limit": (lambda d: tearing_down(d, since=300), set()),
    "teardown stuck, VM still where recorded": (tearing_down, {"recovery.teardown_stuck"}),
    "teardown stuck, VM deleted": (lambda d: vm_deleted(tearing_down(d)),
                                   {"recovery.teardown_stuck", "recovery.teardown_vm_missing"}),
    "teardown stuck, VM migrated": (lambda d: vm_moved(tearing_down(d)),
                                    {"recovery.teardown_stuck", "recovery.teardown_vm_moved"}),
    "VM migrated, no teardown": (vm_moved, set()),
    "orphan VM": (orphan, {"recovery.orphan_vm"}),
    "provisioned request, VM deleted": (vm_deleted, {"recovery.request_vm_missing"}),
    "Machine stuck tearing down": (machine_stuck, {"recovery.link_orphan"}),
    "Machine tearing down, under the limit": (lambda d: machine_stuck(d, since=60), set()),
    "Link without Machine, its VM gone": (lambda d: vm_deleted(link_without_machine(d)),
                                          {"recovery.link_orphan", "recovery.request_vm_missing"}),
    "Link without Machine, still joining": (link_without_machine, set()),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_state_gives_exactly_its_findings(name):
    change, expected = CASES[name]
    assert problems(change(copy.deepcopy(healthy()))) == expected


def test_every_recovery_id_is_decided_by_a_case():
    decided = set().union(*(expected for _, expected in CASES.values()))
    assert decided == set(IDS)


def test_a_moved_vm_names_both_nodes_and_the_migration():
    found = {f.id: f for f in run_checks("recovery", Evidence(vm_moved(tearing_down(healthy()))))}
    text = "\n".join(found["recovery.teardown_vm_moved"].evidence)
    assert "is on pve3" in text and "recorded pve1" in text and "/nodes/pve1/qemu/1001" in text
    assert "qmigrate of VM 1001 on pve1 by root@pam" in text and "500 Internal Server Error" in text


def test_the_recorded_node_unknown_is_said_not_guessed():
    d = vm_moved(tearing_down(healthy()))
    d["tasks"] = []  # no qmcreate, no qmigrate, no node-pick line, an error without a path
    found = {f.id: f for f in run_checks("recovery", Evidence(d))}
    assert found["recovery.teardown_vm_moved"].status == "ok"
    assert any("not known" in e for e in found["recovery.teardown_vm_moved"].evidence)


def test_unreadable_proxmox_makes_vm_checks_unknown_but_still_sees_the_stuck_teardown():
    d = tearing_down(healthy())
    del d["all_vms"]
    findings = {f.id: f for f in run_checks("recovery", Evidence(d, {"all_vms": "proxmox matrix: refused"}))}
    found = {i: f.status for i, f in findings.items()}
    assert found["recovery.teardown_stuck"] == "problem"
    assert "its VM was not looked up" in findings["recovery.teardown_stuck"].evidence[0]
    assert "only the provider's teardown releases proxmox.ProvisionController" in \
        findings["recovery.teardown_stuck"].evidence[0]
    assert {found[i] for i in ("recovery.teardown_vm_missing", "recovery.teardown_vm_moved", "recovery.orphan_vm",
                               "recovery.request_vm_missing")} == {"unknown"}


def test_an_orphan_vm_shows_name_vmid_node_and_disk_sizes():
    found = {f.id: f for f in run_checks("recovery", Evidence(orphan(healthy())))}
    line = found["recovery.orphan_vm"].evidence[-1]
    assert "VM 1003 homelab-workers-b4c9zd on pve3" in line and "vm_ssd:vm-1003-disk-0 40 GiB" in line


# ------------------------------------------------------------------------------------- the model

@pytest.mark.parametrize("smbios, uuid", [("uuid=5D3C6F0E-8B1A-4f7e-9c2d-1a2b3c4d5e6f", WK_ID),
                                          ("manufacturer=x,uuid=abc", "abc"), ("", "")])
def test_smbios_uuid(smbios, uuid):
    assert smbios_uuid(smbios) == uuid


@pytest.mark.parametrize("tags, want", [("machine-request.homelab-workers", "homelab-workers"),
                                        ("talos;machine-request.a-b", "a-b"), ("x,y", ""), (None, "")])
def test_request_set_of(tags, want):
    assert request_set_of(tags) == want


def test_node_in_error_and_disks():
    assert node_in_error("500 Configuration file 'nodes/pve1/qemu-server/1001.conf' does not exist") == ("pve1", 1001)
    assert node_in_error("500 Internal Server Error") == ("", None)
    got = disks({"scsi0": "vm_ssd:vm-1-disk-0,size=40G", "ide2": "local:iso/talos.iso,media=cdrom",
                 "scsi1": "local-lvm:vm-1-disk-1,size=512M", "net0": "virtio=x"})
    assert got == [{"key": "scsi0", "volume": "vm_ssd:vm-1-disk-0", "bytes": 40 << 30},
                   {"key": "scsi1", "volume": "local-lvm:vm-1-disk-1", "bytes": 512 << 20}]


def test_recorded_node_prefers_the_log_then_the_create_task_then_the_error_then_the_first_migration():
    created = {"type": "qmcreate", "id": "7", "node": "pve1", "starttime": 1}
    moved = {"type": "qmigrate", "id": "7", "node": "pve2", "starttime": 2}
    assert recorded_node("r", 7, {"r": "pve9"}, [created], {})[0] == "pve9"
    assert recorded_node("r", 7, {}, [created, moved], {})[0] == "pve1"
    err = {"r": "500 Configuration file 'nodes/pve4/qemu-server/7.conf' does not exist"}
    assert recorded_node("r", 7, {}, [moved], err)[0] == "pve4"
    assert recorded_node("r", 7, {}, [moved], {})[0] == "pve2"
    assert recorded_node("r", None, {}, [created], {}) == ("", "")


# ------------------------------------------------------------------------------------- the plans

def plans_for(d: dict):
    ev = Evidence(d)
    return {p.finding: p for p in recovery_fixes.plans(ev, run_checks("recovery", ev))}


def test_no_problem_no_plan():
    assert plans_for(healthy()) == {}


def test_the_migrate_back_plan_is_exactly_one_live_migration():
    plan = plans_for(vm_moved(tearing_down(healthy())))["recovery.teardown_vm_moved"]
    assert [c.describe() for c in plan.changes] == ['POST /nodes/pve3/qemu/1001/migrate {"online": 1, "target": "pve1"}']
    assert plan.recheck == ("recovery.teardown_vm_moved",) and plan.changes[0].target == "proxmox matrix"


def test_a_stopped_vm_migrates_offline():
    d = vm_moved(tearing_down(healthy()))
    next(v for v in d["all_vms"] if v["vmid"] == 1001)["status"] = "stopped"
    plan = plans_for(d)["recovery.teardown_vm_moved"]
    assert plan.changes[0].body == {"target": "pve1"}


def test_the_orphan_plan_stops_then_destroys_with_disks_and_shows_them():
    plan = plans_for(orphan(healthy()))["recovery.orphan_vm"]
    assert [c.describe() for c in plan.changes] == [
        "POST /nodes/pve3/qemu/1003/status/stop",
        'DELETE /nodes/pve3/qemu/1003 {"destroy-unreferenced-disks": 1, "purge": 1}']
    assert "homelab-workers-b4c9zd" in plan.changes[0].why and "40 GiB" in plan.changes[1].why
    assert "irreversible" in plan.note


def test_a_stopped_orphan_is_only_destroyed():
    d = orphan(healthy())
    d["all_vms"][-1]["status"] = "stopped"
    assert [c.verb for c in plans_for(d)["recovery.orphan_vm"].changes] == ["delete"]


def test_the_link_plan_only_while_the_provider_is_connected():
    plan = plans_for(machine_stuck(healthy()))["recovery.link_orphan"]
    assert [c.describe() for c in plan.changes] == [f"DELETE Link {WK_ID}"] and plan.changes[0].target == "omni"
    d = machine_stuck(healthy())
    d["provider_status"]["proxmox"]["connected"] = False
    assert "recovery.link_orphan" not in plans_for(d)
    found = {f.id: f for f in run_checks("recovery", Evidence(d))}
    assert any("no plan is offered" in e for e in found["recovery.link_orphan"].evidence)


def test_a_missing_vm_gets_no_plan():
    assert "recovery.teardown_vm_missing" not in plans_for(vm_deleted(tearing_down(healthy())))


def test_plan_ids_follow_the_exact_changes():
    a = plans_for(orphan(healthy()))["recovery.orphan_vm"].id
    d = orphan(healthy())
    d["all_vms"][-1]["node"] = "pve2"
    assert plans_for(d)["recovery.orphan_vm"].id != a
    assert plans_for(orphan(healthy()))["recovery.orphan_vm"].id == a
