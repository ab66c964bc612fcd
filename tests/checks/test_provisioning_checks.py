"""The provisioning checks and what they derive, judged from evidence dicts alone (no servers)."""

from __future__ import annotations

import copy

import pytest

from runbook_lib.checks import run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.model.capacity import capacity
from runbook_lib.model.join import join_chain
from runbook_lib.model.machineclass import GIB, class_problems
from runbook_lib.model.network import probe_address, same_segment
from runbook_lib.model.privileges import effective_privileges, missing_privileges
from runbook_lib.model.storage import NO_MATCH, UNDECIDED, pick_pool

NOW = 1_800_000_000.0
CP, WK = "homelab-control-planes-pnsg8n", "homelab-workers-x7kq2m"
CP_ID, WK_ID = "9a41c2e7-6b3d-4f08-a5c1-2e7d9b0f4a63", "5d3c6f0e-8b1a-4f7e-9c2d-1a2b3c4d5e6f"
ALL_PRIVS = ["Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit", "SDN.Use", "Sys.Audit",
             "Sys.Modify", "VM.Allocate", "VM.Audit", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit",
             "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options",
             "VM.PowerMgmt"]


def storage(name, type_="rbd", content="images,rootdir", avail_gib=1500, enabled=1, active=1):
    return {"storage": name, "type": type_, "content": content, "enabled": enabled, "active": active,
            "total": 2048 * GIB, "avail": int(avail_gib * GIB)}


def node(cpus=16, cpu=0.2, mem_gib=64, used_gib=20):
    return {"cpus": cpus, "cpu": cpu, "mem_total": mem_gib * GIB, "mem_used": used_gib * GIB,
            "mem_available": (mem_gib - used_gib) * GIB}


def healthy() -> dict:
    storages = [storage("local", "dir", "iso,vztmpl,backup", 80), storage("local-lvm", "lvmthin", avail_gib=600),
                storage("vm_ssd")]
    request = lambda rid, rset, created: {"id": rid, "set": rset, "created": created, "phase": "running",  # noqa: E731
                                          "talosversion": "v1.9.3"}
    machine = lambda addr, role: {"connected": True, "talosversion": "v1.9.3", "addresses": [addr],  # noqa: E731
                                  "maintenance": False, "lasterror": "", "cluster": "homelab", "role": role}
    return {
        "expected": {"provider_id": "proxmox", "cluster": "matrix", "vm_grace": 120, "join_grace": 600,
                     "stuck_after": 900, "task_stuck_after": 600, "min_talos_version": "1.5.0"},
        "now": NOW,
        "machine_classes": [
            {"id": "proxmox-control-plane", "providerid": "proxmox",
             "providerdata": 'cores: 2\nsockets: 1\nmemory: 4096\ndisk_size: 20\nstorage_selector: name == "vm_ssd"\n'},
            {"id": "proxmox-worker", "providerid": "proxmox",
             "providerdata": 'cores: 4\nmemory: 8192\ndisk_size: 40\nstorage_selector: name == "vm_ssd"\n'
                             'additional_disks:\n  - disk_size: 100\n'
                             '    storage_selector: storageType == "lvmthin" && availableSpace > 100000000000u\n'},
        ],
        "infraproviders": ["proxmox"],
        "machine_requests": [request(CP, "homelab-control-planes", NOW - 90000),
                             request(WK, "homelab-workers", NOW - 86400)],
        "request_statuses": {
            CP: {"uuid": CP_ID, "stage": 2, "status": "Provision Complete", "error": "", "updated": NOW - 89700},
            WK: {"uuid": WK_ID, "stage": 2, "status": "Provision Complete", "error": "", "updated": NOW - 86100}},
        "cluster_request_statuses": {
            CP: {"stage": 3, "status": "Waiting for the machine to join Omni", "error": "", "machineuuid": CP_ID,
                 "updated": NOW - 89700},
            WK: {"stage": 3, "status": "Waiting for the machine to join Omni", "error": "", "machineuuid": WK_ID,
                 "updated": NOW - 86100}},
        "machine_statuses": {CP_ID: machine("192.168.3.52/24", 1), WK_ID: machine("192.168.3.51/24", 2)},
        "machines": {CP_ID: {"connected": True, "updated": None}, WK_ID: {"connected": True, "updated": None}},
        "links": {CP_ID: {"connected": True, "lastendpoint": "192.168.3.52:51820"},
                  WK_ID: {"connected": True, "lastendpoint": "192.168.3.51:51820"}},
        "cluster_machine_statuses": {i: {"stage": 4, "configapplystatus": 2, "lastconfigerror": "", "ready": True}
                                     for i in (CP_ID, WK_ID)},
        "pve_version": "9.0.10",
        "node_status": {"pve1": node(), "pve2": node(cpu=0.3), "pve3": node(cpus=8, mem_gib=32, used_gib=10)},
        "node_storage": {n: copy.deepcopy(storages) for n in ("pve1", "pve2", "pve3")},
        "vms": {WK: {"vmid": 1001, "node": "pve1", "status": "running", "lock": "", "uptime": 86000, "tags": ""},
                CP: {"vmid": 1002, "node": "pve2", "status": "running", "lock": "", "uptime": 89600, "tags": ""}},
        "tasks": [],
        "provider_user": "omni@pve!provider",
        "permissions": {"who": "omni@pve!provider", "via": "test", "paths": {"/": dict.fromkeys(ALL_PRIVS, 1)}},
        "provision_log": {"lines": 3, "starts": 1, "window": "test", "failures": [], "dropped": 0},
        "provider_addresses": ["192.168.3.10/24"],
        "agent_addresses": {},
        "talos_probes": {CP: {"address": "192.168.3.52", "ports": {"50000": "ok", "50001": "ok"}, "lines": []},
                         # a worker runs no trustd: 50001 refused is how Talos is built
                         WK: {"address": "192.168.3.51", "ports": {"50000": "ok", "50001": "refused"}, "lines": []}},
    }


def verdict(items: dict, errors: dict | None = None) -> dict[str, str]:
    return {f.id: f.status for f in run_checks("provisioning", Evidence(items, errors))}


def problems(items: dict, errors: dict | None = None) -> set[str]:
    return {i for i, s in verdict(items, errors).items() if s == "problem"}


def finding(items: dict, fid: str):
    return next(f for f in run_checks("provisioning", Evidence(items)) if f.id == fid)


def test_healthy_evidence_is_all_ok():
    assert set(verdict(healthy()).values()) == {"ok"}


# --- each cause, from the smallest change to the healthy evidence ------------------------------

def new_request(ev: dict, rid: str, age: float, stage=None, status="", error="", uuid="", cluster_stage=None):
    ev["machine_requests"].append({"id": rid, "set": "homelab-workers", "created": NOW - age, "phase": "running",
                                   "talosversion": "v1.9.3"})
    if stage is not None:
        ev["request_statuses"][rid] = {"uuid": uuid, "stage": stage, "status": status, "error": error,
                                       "updated": NOW - age + 30}
    if cluster_stage is not None:
        ev["cluster_request_statuses"][rid] = {"stage": cluster_stage, "status": status, "error": "",
                                               "machineuuid": uuid, "updated": NOW - age + 30}
    return ev


def new_vm(ev: dict, name: str, status="running", node_="pve3", lock="", uptime=1800):
    ev["vms"][name] = {"vmid": 1003, "node": node_, "status": status, "lock": lock, "uptime": uptime, "tags": ""}
    return ev


def failures(*items) -> dict:
    return {"lines": 20, "starts": 1, "window": "test", "dropped": 0,
            "failures": [{"request": r, "step": s, "count": n, "error": e, "ago": 30.0} for r, s, n, e in items]}


def case_node_full():
    ev = healthy()
    for status in ev["node_status"].values():
        status["mem_available"] = 1 * GIB
    return ev


def case_no_vm_allocate():
    ev = new_request(healthy(), "homelab-workers-r2n6tq", 420, 1, 'Running Step: "syncVM" (4/5)', cluster_stage=2)
    ev["permissions"]["paths"] = {"/": dict.fromkeys([p for p in ALL_PRIVS if p != "VM.Allocate"], 1)}
    ev["provision_log"] = failures(("homelab-workers-r2n6tq", "syncVM", 7, "not authorized to access endpoint"))
    return ev


def case_no_iso():
    ev = healthy()
    for rows in ev["node_storage"].values():
        rows[0]["content"] = "vztmpl,backup"
    return ev


def case_unknown_provider():
    ev = healthy()
    ev["machine_classes"].append({"id": "gpu", "providerid": "promox", "providerdata": "cores: 2\n"})
    return ev


def case_stuck():
    ev = new_request(healthy(), "homelab-workers-k7wq2p", 7200, 1, 'Running Step: "syncVM" (4/5)', cluster_stage=2)
    return new_vm(ev, "homelab-workers-k7wq2p", status="stopped", lock="create")


def case_waiting_task():
    ev = case_stuck()
    ev["vms"]["homelab-workers-k7wq2p"]["lock"] = ""
    ev["tasks"] = [{"node": "pve3", "upid": "UPID:pve3:x", "type": "qmcreate", "id": "1003",
                    "user": "omni@pve!provider", "status": "running", "starttime": NOW - 3000, "endtime": None}]
    return ev


def case_vm_stopped():
    ev = healthy()
    ev["vms"][WK]["status"] = "stopped"
    ev["machine_statuses"][WK_ID]["connected"] = False
    ev["machines"][WK_ID]["connected"] = False
    ev["links"][WK_ID]["connected"] = False
    return ev


def case_other_vlan():
    ev = new_request(healthy(), "homelab-workers-z4bq9h", 1900, 2, "Provision Complete", uuid="0b8e", cluster_stage=3)
    ev = new_vm(ev, "homelab-workers-z4bq9h")
    ev["agent_addresses"] = {"homelab-workers-z4bq9h": ["192.168.20.51/24"]}
    return ev


def case_never_joined():
    ev = case_other_vlan()
    ev["agent_addresses"] = {"homelab-workers-z4bq9h": ["192.168.3.53/24"]}
    return ev


def case_old_talos():
    ev = healthy()
    ev["machine_statuses"][WK_ID]["talosversion"] = "v1.4.8"
    return ev


def case_wrong_iso():
    ev = healthy()
    ev["machine_statuses"][WK_ID]["talosversion"] = "v1.8.4"
    return ev


def case_firewall():
    ev = healthy()
    ev["talos_probes"][WK]["ports"] = {"50000": "timeout", "50001": "timeout"}
    return ev


def case_bootstrap():
    ev = healthy()
    ev["cluster_machine_statuses"][WK_ID].update(stage=2, configapplystatus=3, lastconfigerror="install disk missing")
    return ev


def case_machine_error():
    ev = healthy()
    ev["machine_statuses"][CP_ID]["lasterror"] = "failed to get machine config: rpc error: code = Unavailable"
    return ev


def case_request_failed():
    ev = new_request(healthy(), "homelab-workers-m8tx4c", 500, 3, "", "failed to create schematic", cluster_stage=5)
    return ev


@pytest.mark.parametrize("make, expected", [
    pytest.param(case_node_full, {"provisioning.insufficient_resources"}, id="node-full"),
    pytest.param(case_no_vm_allocate, {"provisioning.permission_denied", "provisioning.step_failed",
                                       "provisioning.no_vms"}, id="no-vm-allocate"),
    pytest.param(case_no_iso, {"provisioning.no_iso_storage"}, id="no-iso-storage"),
    pytest.param(case_unknown_provider, {"provisioning.machineclass_invalid"}, id="unknown-provider"),
    pytest.param(case_stuck, {"provisioning.stuck", "provisioning.waiting_resources"}, id="stuck-locked"),
    pytest.param(case_waiting_task, {"provisioning.stuck", "provisioning.waiting_resources",
                                     "provisioning.vm_not_running"}, id="long-task"),
    pytest.param(case_vm_stopped, {"provisioning.vm_not_running"}, id="vm-stopped"),
    pytest.param(case_other_vlan, {"provisioning.l2_adjacency", "provisioning.vm_cannot_reach_omni",
                                   "provisioning.stuck"}, id="other-vlan"),
    pytest.param(case_never_joined, {"provisioning.vm_cannot_reach_omni", "provisioning.stuck"}, id="never-joined"),
    pytest.param(case_old_talos, {"provisioning.talos_version"}, id="talos-too-old"),
    pytest.param(case_wrong_iso, {"provisioning.talos_version"}, id="talos-not-requested"),
    pytest.param(case_firewall, {"provisioning.firewall"}, id="firewall"),
    pytest.param(case_bootstrap, {"provisioning.bootstrap_failed"}, id="config-apply-failed"),
    pytest.param(case_machine_error, {"provisioning.bootstrap_failed"}, id="machine-lasterror"),
    pytest.param(case_request_failed, {"provisioning.step_failed", "provisioning.no_vms"}, id="request-failed"),
])
def test_each_cause_is_found(make, expected):
    assert problems(make()) == expected


def test_every_problem_names_evidence_and_a_fix():
    for make in (case_node_full, case_no_vm_allocate, case_no_iso, case_other_vlan, case_stuck, case_firewall):
        for f in run_checks("provisioning", Evidence(make())):
            if f.status == "problem":
                assert f.evidence and f.fix, f


def test_the_evidence_names_the_cause():
    f = finding(case_no_vm_allocate(), "provisioning.permission_denied")
    assert any("missing VM.Allocate on /vms" in line for line in f.evidence)
    f = finding(case_node_full(), "provisioning.insufficient_resources")
    assert "pve3 short of" in f.evidence[0] and "memory (1.0 GiB free" in f.evidence[0]
    f = finding(case_other_vlan(), "provisioning.l2_adjacency")
    assert any("192.168.20.51/24 (from guest agent): another segment" in line for line in f.evidence)


# --- the limits ---------------------------------------------------------------------------------

def test_young_requests_and_vms_get_their_grace():
    ev = new_request(healthy(), "homelab-workers-new", 60, 1, 'Running Step: "pickNode" (1/5)', cluster_stage=2)
    assert problems(ev) == set()  # no VM yet, but only a minute old
    ev = new_request(healthy(), "homelab-workers-new", 800, 1, 'Running Step: "syncVM" (4/5)', cluster_stage=2)
    assert problems(ev) == {"provisioning.no_vms"}  # no VM after 13 min, not yet stuck (15 min)
    ev = case_never_joined()
    ev["vms"]["homelab-workers-z4bq9h"]["uptime"] = 120
    ev["machine_requests"][-1]["created"] = NOW - 600
    assert problems(ev) == set()  # requested ten minutes ago, booted two minutes ago: still joining
    ev["machine_requests"][-1]["created"] = NOW - 1900
    assert problems(ev) == {"provisioning.stuck"}  # still joining, but requested half an hour ago


def test_one_failure_is_a_retry_not_a_failing_step():
    ev = healthy()
    ev["provision_log"] = failures((WK, "syncVM", 1, "transient"))
    assert "provisioning.step_failed" not in problems(ev)
    ev["provision_log"] = failures((WK, "syncVM", 2, "transient"))
    assert "provisioning.step_failed" in problems(ev)


def test_torn_down_requests_are_left_alone():
    ev = new_request(healthy(), "homelab-workers-gone", 9000, 1, "", cluster_stage=4)
    ev["machine_requests"][-1]["phase"] = "tearingDown"
    assert problems(ev) == set()


def test_a_vm_still_being_created_is_not_reported_as_stopped():
    assert "provisioning.vm_not_running" not in problems(case_stuck())


# --- Talos ports by role ---------------------------------------------------------------------------

@pytest.mark.parametrize("role, ports, blocked", [
    pytest.param(2, {"50000": "ok", "50001": "refused"}, False, id="worker-without-trustd"),
    pytest.param(2, {"50000": "ok", "50001": "timeout"}, False, id="worker-50001-dropped-is-not-served-anyway"),
    pytest.param(2, {"50000": "timeout", "50001": "timeout"}, True, id="worker-dropped"),
    pytest.param(2, {"50000": "refused", "50001": "refused"}, True, id="worker-rejected"),
    pytest.param(2, {"50000": "unreachable", "50001": "unreachable"}, True, id="worker-no-route"),
    pytest.param(1, {"50000": "ok", "50001": "refused"}, True, id="control-plane-without-trustd"),
    pytest.param(1, {"50000": "ok", "50001": "timeout"}, True, id="control-plane-50001-dropped"),
    pytest.param(0, {"50000": "ok", "50001": "refused"}, False, id="role-unknown-judged-on-apid"),
])
def test_firewall_judges_each_node_by_its_role(role, ports, blocked):
    ev = healthy()
    ev["machine_statuses"][WK_ID]["role"] = role
    ev["talos_probes"][WK]["ports"] = ports
    f = finding(ev, "provisioning.firewall")
    assert f.status == ("problem" if blocked else "ok"), f.evidence
    if blocked:
        assert any(WK in line and "timed out" in line or "refused" in line or "no route" in line for line in f.evidence)


def test_a_node_that_answers_nothing_while_omni_lost_it_too_is_down_not_filtered():
    ev = lost_connection(healthy(), CP_ID)
    ev["talos_probes"][CP]["ports"] = {"50000": "unreachable", "50001": "unreachable"}
    f = finding(ev, "provisioning.firewall")
    assert f.status == "ok" and "answer nothing at all" in f.summary, f
    ev = healthy()  # the same answers from a machine Omni still hears from: a REJECT rule
    ev["talos_probes"][CP]["ports"] = {"50000": "unreachable", "50001": "unreachable"}
    assert finding(ev, "provisioning.firewall").status == "problem"


def test_firewall_names_what_each_answer_means():
    ev = healthy()
    ev["talos_probes"][WK]["ports"] = {"50000": "timeout", "50001": "timeout"}
    f = finding(ev, "provisioning.firewall")
    assert "drops the packets" in f.evidence[0] and "(worker)" in f.evidence[0]


# --- never, and stuck: evidence of exactly that -----------------------------------------------------

def lost_connection(ev: dict, uuid: str) -> dict:
    ev["machine_statuses"][uuid]["connected"] = False
    ev["machines"][uuid]["connected"] = False
    ev["links"][uuid]["connected"] = False
    return ev


def test_a_machine_that_lost_its_connection_never_reads_as_never_connected():
    ev = lost_connection(lost_connection(healthy(), CP_ID), WK_ID)
    assert problems(ev) == set()  # the cluster and health findings report a lost connection
    f = finding(ev, "provisioning.vm_cannot_reach_omni")
    assert any("a lost connection" in line and "192.168.3.52:51820" in line for line in f.evidence)


def test_only_the_link_history_is_enough_to_know_it_joined():
    ev = lost_connection(healthy(), WK_ID)
    del ev["machine_statuses"][WK_ID], ev["cluster_machine_statuses"][WK_ID]
    assert "provisioning.vm_cannot_reach_omni" not in problems(ev)
    ev["links"][WK_ID]["lastendpoint"] = ""
    assert {"provisioning.vm_cannot_reach_omni", "provisioning.stuck"} <= problems(ev)


def test_a_provisioned_request_whose_machine_never_joined_is_stuck():
    ev = new_request(healthy(), "homelab-workers-p2x9", 2400, 2, "Provision Complete", uuid="feed", cluster_stage=3)
    ev = new_vm(ev, "homelab-workers-p2x9", uptime=2300)
    ev["links"]["feed"] = {"connected": False, "lastendpoint": ""}
    f = finding(ev, "provisioning.stuck")
    assert f.status == "problem" and "request status PROVISIONED" in f.evidence[0], f.evidence
    assert "its machine never joined Omni" in f.evidence[0]


def test_a_failed_request_past_the_limit_is_stuck_as_well():
    ev = new_request(healthy(), "homelab-workers-m8tx4c", 1800, 3, "", "failed to create schematic", cluster_stage=5)
    assert {"provisioning.stuck", "provisioning.step_failed", "provisioning.no_vms"} == problems(ev)


# --- missing evidence -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, affected", [
    ("permissions", {"provisioning.permission_denied"}),
    ("node_status", {"provisioning.insufficient_resources"}),
    ("talos_probes", {"provisioning.firewall"}),
    ("machine_requests", {"provisioning.no_vms", "provisioning.stuck", "provisioning.vm_not_running",
                          "provisioning.l2_adjacency", "provisioning.vm_cannot_reach_omni",
                          "provisioning.talos_version", "provisioning.bootstrap_failed",
                          "provisioning.waiting_resources"}),
])
def test_missing_evidence_makes_its_checks_unknown(name, affected):
    items = healthy()
    del items[name]
    got = verdict(items, {name: "ssh root@host: connection refused"})
    assert {i for i, s in got.items() if s == "unknown"} == affected
    assert not {i for i, s in got.items() if s == "problem"}


def test_nothing_requested_is_fine():
    ev = healthy()
    ev.update(machine_requests=[], request_statuses={}, cluster_request_statuses={}, vms={}, talos_probes={})
    got = verdict(ev)
    assert got["provisioning.no_vms"] == "ok"
    assert got["provisioning.firewall"] == got["provisioning.vm_not_running"] == "skipped"


# --- derivations ----------------------------------------------------------------------------------

def test_join_chain_ties_request_vm_and_machine():
    ev = healthy()
    rows = {r.request: r for r in join_chain(Evidence(ev).optional)}
    wk = rows[WK]
    assert (wk.uuid, wk.vmid, wk.node, wk.vm_status, wk.stage, wk.cluster_stage) == (
        WK_ID, 1001, "pve1", "running", "PROVISIONED", "PROVISIONED")
    assert wk.connected and wk.addresses == ["192.168.3.51/24"] and wk.address_source == "omni"
    assert wk.age == 86400


def test_capacity_counts_sockets_and_every_disk():
    ev = healthy()
    fits = capacity(ev["machine_classes"], ev["node_status"], ev["node_storage"])
    worker = {f.node: f for f in fits["proxmox-worker"]}
    assert worker["pve1"].cpu_need == 4 and worker["pve1"].mem_need == 8 * GIB
    assert worker["pve1"].pool == "vm_ssd" and worker["pve1"].disk_need == 40 * GIB
    assert worker["pve3"].cpu_free == pytest.approx(8 * 0.8)
    assert all(f.fits for f in worker.values())
    ev["node_storage"]["pve2"][1]["avail"] = 95 * GIB  # still matches "> 100 GB", but the 100 GiB disk does not fit
    worker = {f.node: f for f in capacity(ev["machine_classes"], ev["node_status"], ev["node_storage"])["proxmox-worker"]}
    assert worker["pve2"].fits is False and "space on" in worker["pve2"].short[0]
    assert worker["pve1"].fits


def test_capacity_honours_a_pinned_node_and_skips_unreadable_nodes():
    ev = healthy()
    cls = [{"id": "pinned", "providerid": "proxmox",
            "providerdata": 'cores: 2\nmemory: 2048\ndisk_size: 10\nstorage_selector: name == "vm_ssd"\nnode: pve2\n'}]
    ev["node_status"]["pve3"] = {"error": "595 No route to host"}
    assert [f.node for f in capacity(cls, ev["node_status"], ev["node_storage"])["pinned"]] == ["pve2"]


def test_a_pool_that_cannot_hold_disks_leaves_space_undecided():
    rows = [storage("local", "dir", "iso,vztmpl", 5)]
    ev = healthy()
    cls = [{"id": "c", "providerid": "proxmox", "providerdata": 'cores: 1\nmemory: 2048\ndisk_size: 500\n'
                                                             'storage_selector: name == "local"\n'}]
    fit = capacity(cls, {"pve1": ev["node_status"]["pve1"]}, {"pve1": rows})["c"][0]
    assert fit.fits and fit.disk_free is None and "cannot hold VM disks" in fit.notes[0]


def test_selector_evaluation():
    lvm = storage("local-lvm", "lvmthin", avail_gib=600)
    assert pick_pool('name == "local-lvm"', [lvm], "pve1")[0] is lvm
    assert pick_pool('storageType == "lvmthin" && availableSpace > 100000000000u', [lvm], "pve1")[0] is lvm
    assert pick_pool('storageType == "lvmthin" && availableSpace > 1000000000000u', [lvm], "pve1") == (None, NO_MATCH)
    assert pick_pool('node == "pve2"', [lvm], "pve1") == (None, NO_MATCH)
    assert pick_pool("", [lvm], "pve1") == (None, UNDECIDED)
    picked, _ = pick_pool('storageType == "rbd" || name.startsWith("local")',
                          [storage("local", "dir"), storage("vm_ssd")], "pve1")
    assert picked["storage"] == "local"  # first match in API order wins


def test_class_problems():
    assert class_problems({"providerid": "proxmox", "providerdata": "cores: 2\nmemory: 4096\ndisk_size: 20\n"
                                                                    "storage_selector: name == \"x\"\n"}, ["proxmox"]) == []
    readme = class_problems({"providerid": "proxmox", "providerdata": "cpu: 4\nmemory: 8192\ndiskSize: 40\n"},
                            ["proxmox"])
    assert "lacks required key(s) cores, disk_size, storage_selector" in readme[0]
    assert "diskSize (the provider reads disk_size)" in readme[1]
    small = class_problems({"providerid": "proxmox", "providerdata": "cores: 0\nmemory: 1024\ndisk_size: '20'\n"
                                                                     "storage_selector: x\n"}, ["proxmox"])
    assert small == ["providerdata cores is 0, below the minimum 1", "providerdata memory is 1024, below the minimum 2048",
                     "providerdata disk_size is '20', not a whole number"]
    assert "not valid YAML" in class_problems({"providerid": "proxmox", "providerdata": "cores: [2"}, ["proxmox"])[0]


def test_privileges_from_pves_answer_and_fakepves():
    # PVE lists every default path with what applies there; a 0 is a privilege that does not propagate
    pve = {"/": {"Sys.Audit": 0}, "/vms": dict.fromkeys(["VM.Allocate", "VM.Audit"], 1),
           "/nodes": {"Sys.Audit": 1}, "/storage": {"Datastore.Audit": 1}}
    assert effective_privileges(pve, "/vms/100") == {"VM.Allocate", "VM.Audit"}
    assert "Sys.Audit" not in effective_privileges(pve, "/storage")  # not propagated from /
    assert effective_privileges(pve, "/nodes") == {"Sys.Audit"}
    # fakepve lists the granting path only
    fake = {"/": {"Sys.Audit": 1, "Datastore.Audit": 1}, "/vms": {"VM.Allocate": 1}}
    assert effective_privileges(fake, "/vms") == {"Sys.Audit", "Datastore.Audit", "VM.Allocate"}
    missing = {privs for _, privs, _ in missing_privileges(fake, "9.0.10")}
    assert ("VM.Allocate",) not in missing and ("VM.PowerMgmt",) in missing and ("SDN.Use",) in missing
    assert ("SDN.Use",) not in {p for _, p, _ in missing_privileges(fake, "7.4-3")}
    # either of two alternatives satisfies a need
    assert ("Sys.AccessNetwork", "Sys.Modify") not in {p for _, p, _ in missing_privileges(
        {"/": {"Sys.AccessNetwork": 1}}, "9.0")}


def test_networks():
    assert same_segment(["192.168.3.10/24"], ["192.168.3.51/24", "fdae:41e4:649b:9303::5/64"]) is True
    assert same_segment(["192.168.3.10/24"], ["192.168.20.51/24"]) is False
    assert same_segment(["192.168.3.10/24"], ["fe80::1/64"]) is None
    assert probe_address(["fe80::1/64", "2001:db8::5/64", "10.0.0.5/24"]) == "10.0.0.5"


def test_a_host_without_nc_leaves_the_firewall_unknown():
    ev = healthy()
    for probe in ev["talos_probes"].values():
        probe.pop("ports")
        probe["error"] = "nc is not installed on the provider host (netcat-openbsd)"
    f = finding(ev, "provisioning.firewall")
    assert f.status == "unknown" and "not installed" in f.evidence[0]


def test_the_notebook_tables_and_plot():
    import matplotlib.pyplot as plt

    from runbook_lib.views import provisioning as views

    ev = Evidence(case_node_full())
    joined = {r["request"]: r for r in views.join_rows(ev)}
    assert joined[WK]["machine id (SMBIOS UUID)"] == WK_ID and joined[WK]["VM"] == 1001 and joined[WK]["connected"]
    capacity = views.capacity_rows(ev, "proxmox")
    assert len(capacity) == 6 and not any(r["fits"] for r in capacity)
    assert all(r["held"] for r in views.privilege_rows(ev))
    assert {r["tcp 50000"] for r in views.registration_rows(ev)} == {"ok"}
    figure = views.capacity_figure(ev, "proxmox")
    assert figure.axes[1].get_title() == "proxmox-control-plane: free memory (GiB)"
    assert [p.get_facecolor()[:3] for p in figure.axes[1].patches[:3]] == [(0xc6 / 255, 0x28 / 255, 0x28 / 255)] * 3
    plt.close(figure)
    assert views.capacity_figure(Evidence({**healthy(), "machine_classes": []}), "proxmox") is None
