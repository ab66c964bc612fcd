"""The cluster checks, judged from evidence dicts alone (no servers), plus the pieces they rest on:
Omni's JSON reduced to evidence, label queries, the capacity arithmetic and the log categories."""

from __future__ import annotations

import copy
import re

import pytest

from runbook_lib.checks import registered, run_checks
from runbook_lib.checks.cluster import autoprovisioned_waiting, manually_waiting
from runbook_lib.evidence import Evidence
from runbook_lib.logscan import LogScan
from runbook_lib.model.capacity import headroom
from runbook_lib.model.labels import label_query_matches, parse_label_query
from runbook_lib.model.machineclass import GIB, class_needs
from runbook_lib.model.provider_log import SUPPLY_CATEGORIES as LOG_CATEGORIES
from runbook_lib.model.provider_log import SUPPLY_TRIGGERS as LOG_TRIGGERS
from runbook_lib.model.storage import NO_MATCH, UNDECIDED, pick_pool

WORKER_DATA = ("cores: 4\nsockets: 1\nmemory: 8192\ndisk_size: 40\nstorage_selector: name == \"vm_ssd\"\n"
               "additional_disks:\n  - disk_size: 100\n    storage_selector: storageType == \"lvmthin\"\n")
CP_DATA = "cores: 2\nmemory: 4096\ndisk_size: 20\nstorage_selector: name == \"vm_ssd\"\n"
LOCK = ('{"level":"error","ts":1795770000.1,"caller":"controllers/provision.go:335",'
        '"msg":"machine provision failed",'
        '"id":"homelab-workers-d8m3kt","error":"500 can\'t lock file \'/var/lock/qemu-server/lock-1004.conf\' - got '
        'timeout","step":"syncVM"}')
START = '{"level":"info","ts":1795500000.0,"caller":"omni-infra-provider-proxmox/main.go:117","msg":"starting infra provider"}'  # noqa: E501  (a real line, as it is)


def machine_set(cluster="homelab", role="worker", cls="proxmox-worker", count=1, total=1, healthy=1, phase=3):
    return {"cluster": cluster, "role": role, "phase": phase, "ready": healthy >= count, "error": "",
            "machines": {"total": total, "healthy": healthy, "connected": healthy, "requested": count},
            "allocation": {"name": cls, "machinecount": count, "allocationtype": 0} if cls else None}


def cluster_machine(ms: str, role="worker", ready=True, connected=True, hostname="", stage=4):
    return {"cluster": "homelab", "machine_set": ms, "role": role, "connected": connected, "hostname": hostname,
            "ready": ready, "stage": stage, "configapplystatus": 2, "lastconfigerror": "", "request": hostname}


def node(online=True, cpus=16, mem_gib=64, used_gib=22):
    return {"online": online, "cpus": cpus, "mem_total": mem_gib * GIB, "mem_used": used_gib * GIB}


def storage_rows():
    return [{"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "enabled": 1, "active": 1, "shared": 0,
             "avail": 80 * GIB, "total": 100 * GIB},
            {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "enabled": 1, "active": 1,
             "shared": 0, "avail": 600 * GIB, "total": 900 * GIB},
            {"storage": "vm_ssd", "type": "rbd", "content": "images,rootdir", "enabled": 1, "active": 1, "shared": 1,
             "avail": 1500 * GIB, "total": 2048 * GIB}]


def healthy() -> dict:
    return {
        "expected": {"cluster": "", "provider_id": "proxmox", "proxmox_cluster": "matrix",
                     "max_parallel_provisions": 4},
        "clusters": {"homelab": {"talosversion": "1.9.3", "kubernetesversion": "1.32.0", "phase": "running"}},
        "cluster_statuses": {"homelab": {
            "phase": 3, "ready": True, "available": True, "controlplaneready": True, "kubernetesapiready": True,
            "hasconnectedcontrolplanes": True, "updated": "",
            "machines": {"total": 2, "healthy": 2, "connected": 2, "requested": 2}}},
        "machine_sets": {"homelab-control-planes": machine_set(role="controlplane",
                                                               cls="proxmox-control-plane"),
                         "homelab-workers": machine_set()},
        "controlplane_statuses": {"homelab-control-planes": {"cluster": "homelab", "conditions": [
            {"type": 2, "status": 1, "severity": 0, "reason": ""},
            {"type": 1, "status": 1, "severity": 0, "reason": ""}]}},
        "cluster_machines": {
            "9a41c2e7": cluster_machine("homelab-control-planes", "controlplane",
                                        hostname="homelab-control-planes-pnsg8n"),
            "5d3c6f0e": cluster_machine("homelab-workers", hostname="homelab-workers-x7kq2m")},
        "machine_classes": {
            "proxmox-control-plane": {"matchlabels": [],
                                      "autoprovision": {"providerid": "proxmox", "providerdata": CP_DATA}},
            "proxmox-worker": {"matchlabels": [],
                               "autoprovision": {"providerid": "proxmox", "providerdata": WORKER_DATA}}},
        "cluster_request_statuses": {},
        # read only when a machine set waits for machines (None: this run had no reason to)
        "machine_statuses": None, "request_sets": None, "request_statuses": None,
        "proxmox_nodes": None, "proxmox_storage": None, "provider_log": None,
    }


def scaled_workers(count: int, ev: dict | None = None) -> dict:
    """Workers asked to grow to ``count`` with one machine, and what gathering then reads."""
    ev = ev or healthy()
    ev["machine_sets"]["homelab-workers"] = machine_set(count=count)
    ev["cluster_statuses"]["homelab"].update(phase=1, ready=False)
    ev["proxmox_nodes"] = {"pve1": node(), "pve2": node(used_gib=27), "pve3": node(cpus=8, mem_gib=32, used_gib=10)}
    ev["proxmox_storage"] = {n: storage_rows() for n in ev["proxmox_nodes"]}
    ev["provider_log"] = scan(START)
    ev["request_sets"] = {"homelab-workers": {"providerid": "proxmox", "machinecount": count}}
    ev["request_statuses"] = {"homelab-workers-x7kq2m": {"set": "homelab-workers", "provider": "proxmox",
                                                         "stage": 2, "status": "Provision Complete", "error": ""}}
    return ev


def scan(*lines: str) -> dict:
    s = LogScan(LOG_CATEGORIES, triggers=LOG_TRIGGERS, reset='"msg":"starting infra provider"')
    for line in lines:
        s.feed("stderr", line)
    out = s.summary()
    out["window"] = "test"
    return out


def findings(items: dict, errors: dict | None = None):
    return {f.id: f for f in run_checks("cluster", Evidence(items, errors))}


def statuses(items: dict, errors: dict | None = None) -> dict[str, str]:
    return {i: f.status for i, f in findings(items, errors).items()}


def problems(items: dict, errors: dict | None = None) -> set[str]:
    return {i for i, s in statuses(items, errors).items() if s == "problem"}


# ---------------------------------------------------------------------------------- the catalog


def test_every_catalog_id_has_a_check():
    assert set(registered("cluster")) == {
        "cluster.unhealthy", "cluster.machineclass_missing", "cluster.insufficient_machines", "cluster.etcd_quorum",
        "cluster.machineclass_exhausted", "cluster.provider_capacity", "cluster.rate_limited"}


def test_healthy_evidence_is_all_ok():
    assert set(statuses(healthy()).values()) == {"ok"}


def test_omnictl_failure_makes_every_check_unknown_with_its_reason():
    reason = "omnictl: rpc error: code = Unauthenticated desc = invalid signature (run `runbook run omnictl`)"
    names = [n for n in healthy() if n not in ("expected", "proxmox_nodes", "proxmox_storage", "provider_log")]
    items = {k: v for k, v in healthy().items() if k not in names}
    got = findings(items, {n: reason for n in names})
    assert {f.status for f in got.values()} == {"unknown"}
    assert all(reason in f.evidence for f in got.values())


# ---------------------------------------------------------------------------- creation and health


def test_cluster_status_not_running_is_the_symptom():
    ev = healthy()
    ev["cluster_statuses"]["homelab"].update(phase=1, ready=False)
    f = findings(ev)["cluster.unhealthy"]
    assert f.status == "problem" and "phase SCALING_UP, ready=false" in f.evidence[0]
    assert "omnictl get events" in f.fix and "omnictl cluster status" in f.fix


def test_a_named_cluster_that_does_not_exist_is_reported_with_a_suggestion():
    ev = healthy()
    ev["expected"]["cluster"] = "homelb"
    f = findings(ev)["cluster.unhealthy"]
    assert f.status == "problem" and f.summary == "Omni has no cluster 'homelb'" and "homelab" in f.fix


def test_no_clusters_at_all_is_skipped():
    ev = healthy()
    ev["clusters"], ev["cluster_statuses"], ev["machine_sets"] = {}, {}, {}
    assert statuses(ev)["cluster.unhealthy"] == "skipped"


def test_scope_limits_the_verdict_to_the_named_cluster():
    ev = healthy()
    ev["clusters"]["staging"] = {"talosversion": "1.9.3", "kubernetesversion": "1.32.0", "phase": "running"}
    ev["cluster_statuses"]["staging"] = copy.deepcopy(ev["cluster_statuses"]["homelab"]) | {"ready": False}
    ev["machine_sets"]["staging-workers"] = machine_set(cluster="staging", cls="nosuch")
    assert problems(ev) == {"cluster.unhealthy", "cluster.machineclass_missing"}
    ev["expected"]["cluster"] = "homelab"
    assert problems(ev) == set()


def test_missing_machine_class_names_the_set_and_a_close_match():
    ev = healthy()
    ev["machine_sets"]["homelab-workers"] = machine_set(cls="proxmox-workers", count=2, total=0, healthy=0, phase=1)
    f = findings(ev)["cluster.machineclass_missing"]
    assert f.status == "problem" and "did you mean proxmox-worker?" in " ".join(f.evidence)
    # the set waits for machines only because the class is missing: it is not an exhausted class
    assert statuses(ev)["cluster.machineclass_exhausted"] == "ok"


def test_sets_without_a_class_are_fine_for_the_class_checks():
    ev = healthy()
    for ms in ev["machine_sets"].values():
        ms["allocation"] = None
    assert statuses(ev)["cluster.machineclass_missing"] == "ok"


def test_disconnected_machine_is_listed_under_insufficient_machines():
    ev = healthy()
    ev["machine_sets"]["homelab-workers"] = machine_set(count=2, total=2, healthy=1)
    ev["cluster_machines"]["3e7a1c92"] = cluster_machine("homelab-workers", ready=False, connected=False,
                                                         hostname="homelab-workers-m2q8vt")
    f = findings(ev)["cluster.insufficient_machines"]
    assert f.status == "problem"
    assert any("homelab-workers-m2q8vt (3e7a1c92): stage RUNNING, ready=false, DISCONNECTED" in e for e in f.evidence)


# ------------------------------------------------------------------------------------------ etcd


def control_planes(total: int, healthy_count: int, etcd=(1, 0, "")) -> dict:
    ev = healthy()
    ev["machine_sets"]["homelab-control-planes"] = machine_set(role="controlplane", cls="proxmox-control-plane",
                                                               count=total, total=total, healthy=healthy_count)
    ev["cluster_machines"] = {k: v for k, v in ev["cluster_machines"].items() if v["role"] != "controlplane"}
    for i in range(total):
        ev["cluster_machines"][f"cp{i}"] = cluster_machine("homelab-control-planes", "controlplane",
                                                           ready=i < healthy_count, connected=i < healthy_count)
    status, severity, reason = etcd
    ev["controlplane_statuses"]["homelab-control-planes"]["conditions"][1].update(
        status=status, severity=severity, reason=reason)
    return ev


@pytest.mark.parametrize("total, healthy_count, status, words", [
    (3, 3, "ok", "tolerates 1 more failure"),
    (5, 4, "ok", "tolerates 1 more failure"),
    (1, 1, "ok", "tolerates 0 more failure"),
    (3, 2, "problem", "one more failed control plane ends quorum"),
    (3, 1, "problem", "quorum is lost (1 of 3, needs 2)"),
    (2, 2, "problem", "2 members tolerate no more failures than 1"),
])
def test_quorum_from_the_control_plane_machines(total, healthy_count, status, words):
    f = findings(control_planes(total, healthy_count))["cluster.etcd_quorum"]
    assert f.status == status and words in f.summary


def test_omni_etcd_condition_alone_is_a_problem():
    ev = control_planes(3, 3, etcd=(2, 2, "Etcd members don't match on nodes a and b"))
    f = findings(ev)["cluster.etcd_quorum"]
    assert f.status == "problem" and "Etcd NotReady (Error): Etcd members don't match" in f.evidence[0]


# ------------------------------------------------------------------------------- label queries


@pytest.mark.parametrize("query, labels, want", [
    ("hw = nuc", {"hw": "nuc"}, True),
    ("hw == nuc, omni.sidero.dev/arch=amd64", {"hw": "nuc", "omni.sidero.dev/arch": "arm64"}, False),
    ("hw in (nuc, mini)", {"hw": "mini"}, True),
    ("hw notin (nuc)", {"hw": "nuc"}, False),
    ("hw notin (nuc)", {}, True),
    ("hw != nuc", {"hw": "big"}, True),
    ("omni.sidero.dev/available", {"omni.sidero.dev/available": ""}, True),
    ("!omni.sidero.dev/cluster", {"omni.sidero.dev/cluster": "homelab"}, False),
    ("mem > 16", {"mem": "32"}, True),
    ("mem > 16", {"mem": "lots"}, False),
])
def test_label_queries(query, labels, want):
    assert label_query_matches(labels, parse_label_query(query)) is want


def exhausted_class(free_machines: int) -> dict:
    ev = healthy()
    ev["machine_classes"]["nuc-worker"] = {"matchlabels": ["omni.sidero.dev/arch = amd64, hw = nuc"],
                                           "autoprovision": None}
    ev["machine_sets"]["homelab-nuc-workers"] = machine_set(cls="nuc-worker", count=3, total=1, healthy=1, phase=1)
    allocatable = {"omni.sidero.dev/available": "", "omni.sidero.dev/connected": "",
                   "omni.sidero.dev/reporting-events": ""}
    ev["machine_statuses"] = {
        "nuc-1": {"labels": {"omni.sidero.dev/arch": "amd64", "hw": "nuc", "omni.sidero.dev/cluster": "homelab"},
                  "talosversion": "v1.9.3", "connected": True, "cluster": "homelab"},
        "nuc-off": {"labels": {"omni.sidero.dev/arch": "amd64", "hw": "nuc", "omni.sidero.dev/available": ""},
                    "talosversion": "v1.9.3", "connected": False, "cluster": ""},
        "nuc-newer": {"labels": {"omni.sidero.dev/arch": "amd64", "hw": "nuc", **allocatable},
                      "talosversion": "v1.10.0", "connected": True, "cluster": ""},
        "other": {"labels": {"omni.sidero.dev/arch": "amd64", "hw": "mini", **allocatable},
                  "talosversion": "v1.9.3", "connected": True, "cluster": ""},
    }
    for i in range(free_machines):
        ev["machine_statuses"][f"nuc-free-{i}"] = {"labels": {"omni.sidero.dev/arch": "amd64", "hw": "nuc",
                                                              **allocatable},
                                                   "talosversion": "v1.9.2", "connected": True, "cluster": ""}
    return ev


def test_class_without_free_matching_machines_is_exhausted():
    f = findings(exhausted_class(0))["cluster.machineclass_exhausted"]
    assert f.status == "problem"
    assert "3 machine(s) match, 1 already in a cluster, 0 free to allocate" in f.evidence[0]
    assert any("nuc-off: not allocatable (not connected, not reporting-events)" in e for e in f.evidence)
    assert any("nuc-newer: not allocatable (runs Talos v1.10.0, newer than the cluster's 1.9)" in e for e in f.evidence)


def test_class_with_enough_free_machines_is_fine():
    assert statuses(exhausted_class(2))["cluster.machineclass_exhausted"] == "ok"
    assert statuses(exhausted_class(1))["cluster.machineclass_exhausted"] == "problem"


# ------------------------------------------------------------------------------------ capacity


def test_class_needs_reads_provider_data():
    needs = class_needs(WORKER_DATA)
    assert needs["cores"] == 4 and needs["memory"] == 8192 * 1024 ** 2
    assert needs["disks"] == [('name == "vm_ssd"', 40 * GIB), ('storageType == "lvmthin"', 100 * GIB)]
    assert class_needs("cores: [") is None and class_needs("cores: 2\n") is None


def test_selector_takes_the_first_match_in_api_order_and_evaluates_cel():
    rows = storage_rows()
    assert pick_pool('name == "vm_ssd"', rows, "pve1")[0]["storage"] == "vm_ssd"
    assert pick_pool('storageType == "lvmthin" && availableSpace > 100000000000u', rows, "pve1")[0]["storage"] \
        == "local-lvm"
    assert pick_pool('name.startsWith("local")', rows, "pve1")[0]["storage"] == "local"
    assert pick_pool('name == "nvme"', rows, "pve1") == (None, NO_MATCH)
    assert pick_pool("type == 'lvmthin'", rows, "pve1") == (None, UNDECIDED)  # cel-go rejects it; celpy would not


def test_headroom_counts_memory_per_node_and_shared_storage_once():
    needs = {"cores": 4, "memory": 8 * GIB, "disks": [('name == "vm_ssd"', 400 * GIB)], "node": ""}
    nodes = {"a": node(mem_gib=64, used_gib=0), "b": node(mem_gib=64, used_gib=0)}
    rows = storage_rows()  # vm_ssd is shared with 1500 GiB: three 400 GiB disks, whatever the node
    room, per_node, _ = headroom(needs, nodes, {"a": rows, "b": rows}, 10)
    assert room == 3 and sum(per_node.values()) == 3
    needs["disks"] = [('name == "local-lvm"', 400 * GIB)]  # local: 600 GiB on each node, one disk each
    assert headroom(needs, nodes, {"a": rows, "b": rows}, 10)[0] == 2
    needs["disks"] = [('name == "vm_ssd"', 10 * GIB)]
    tight = {"a": node(mem_gib=64, used_gib=47), "b": node(mem_gib=64, used_gib=60)}
    assert headroom(needs, tight, {"a": rows, "b": rows}, 10)[:2] == (2, {"a": 2, "b": 0})


def test_headroom_skips_offline_small_and_other_nodes():
    needs = {"cores": 12, "memory": GIB, "disks": [('name == "vm_ssd"', GIB)], "node": ""}
    nodes = {"big": node(cpus=16), "small": node(cpus=8), "down": node(online=False)}
    rows = storage_rows()
    room, per_node, notes = headroom(needs, nodes, {"big": rows, "small": rows}, 2)
    assert room == 2 and per_node == {"big": 2}
    assert "down is offline" in notes and any("small has 8 CPUs" in n for n in notes)
    needs.update(cores=2, node="small")
    assert headroom(needs, nodes, {"big": rows, "small": rows}, 5)[1] == {"small": 5}
    needs.update(disks=[('name == "local"', GIB)], node="")  # dir storage without `images`: no VM disks there
    room, _, notes = headroom(needs, nodes, {"big": rows, "small": rows}, 5)
    assert room == 0 and any("cannot hold VM disks" in n for n in notes)


def test_what_is_waited_for_decides_what_gathering_reads():
    ev = scaled_workers(4)
    assert [w[0] for w in autoprovisioned_waiting(Evidence(ev))] == ["homelab-workers"]
    assert manually_waiting(Evidence(ev)) == []
    ev["machine_classes"]["proxmox-worker"]["autoprovision"]["providerid"] = "kubevirt"
    assert autoprovisioned_waiting(Evidence(ev)) == []
    assert autoprovisioned_waiting(Evidence(healthy())) == manually_waiting(Evidence(healthy())) == []
    assert [w[0] for w in manually_waiting(Evidence(exhausted_class(0)))] == ["homelab-nuc-workers"]
    assert autoprovisioned_waiting(Evidence({}, {"clusters": "omnictl failed"})) == []


def test_no_room_for_the_workers_asked_for():
    ev = scaled_workers(4)
    ev["proxmox_nodes"] = {"pve1": node(used_gib=52), "pve2": node(used_gib=60), "pve3": node(cpus=8, mem_gib=32,
                                                                                             used_gib=28)}
    f = findings(ev)["cluster.provider_capacity"]
    assert f.status == "problem" and "room for 1 of 3 (pve1 1, pve2 0, pve3 0)" in f.evidence[1]
    assert statuses(scaled_workers(4))["cluster.provider_capacity"] == "ok"


def test_capacity_errors_in_the_log_are_a_problem_even_with_room():
    ev = scaled_workers(2)
    ev["provider_log"] = scan(START, '{"level":"error","msg":"machine provision failed","error":"no online nodes '
                                     'available for provisioning","step":"pickNode"}')
    f = findings(ev)["cluster.provider_capacity"]
    assert f.status == "problem" and any("no online nodes available" in e for e in f.evidence)


def test_undecidable_selector_makes_capacity_unknown():
    ev = scaled_workers(2)
    ev["machine_classes"]["proxmox-worker"]["autoprovision"]["providerdata"] = WORKER_DATA.replace(
        'name == "vm_ssd"', 'type == "rbd"')
    assert statuses(ev)["cluster.provider_capacity"] == "unknown"


# --------------------------------------------------------------------------------- rate limits


def in_flight(ev: dict, n: int, error: str = "") -> dict:
    for i in range(n):
        ev["request_statuses"][f"homelab-workers-r{i}"] = {"set": "homelab-workers", "provider": "proxmox",
                                                           "stage": 1, "status": "Running Step", "error": error}
    return ev


def test_more_provisions_than_the_limit_are_rate_limited():
    assert statuses(in_flight(scaled_workers(6), 5))["cluster.rate_limited"] == "problem"
    assert statuses(in_flight(scaled_workers(6), 4))["cluster.rate_limited"] == "ok"
    ev = in_flight(scaled_workers(6), 5)
    ev["expected"]["max_parallel_provisions"] = 8
    assert statuses(ev)["cluster.rate_limited"] == "ok"


def test_lock_timeouts_in_the_log_are_rate_limiting():
    ev = in_flight(scaled_workers(3), 2)
    ev["provider_log"] = scan(START, LOCK)
    f = findings(ev)["cluster.rate_limited"]
    assert f.status == "problem" and any("lock-1004.conf" in e for e in f.evidence)
    ev["provider_log"] = scan(LOCK, START)  # before the last start: an earlier process, decides nothing
    assert statuses(ev)["cluster.rate_limited"] == "ok"


def test_every_categorised_line_contains_a_trigger():
    samples = [LOCK, "rpc error: code = ResourceExhausted desc = too many requests", "429 Too Many Requests",
               "no nodes available", "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory",
               "rbd: create error: (28) No space left on device",
               'Volume group "pve" has insufficient free space (1023 extents): 5120 required.',
               "cfs-lock 'storage-vm_ssd' error: got lock request timeout"]
    for line in samples:
        assert any(re.search(rx, line) for rx in LOG_CATEGORIES.values()), line
        assert any(t in line for t in LOG_TRIGGERS), line


# ------------------------------------------------------------------------------ Omni's JSON


def test_waiting_sets_show_their_requests_that_are_not_provisioned():
    ev = scaled_workers(3)
    ev["cluster_request_statuses"] = {
        "homelab-workers-x7kq2m": {"cluster": "homelab", "machine_set": "homelab-workers", "stage": 3,
                                   "status": "Waiting for the machine to join Omni", "error": ""},
        "homelab-workers-b4k9zq": {"cluster": "homelab", "machine_set": "homelab-workers", "stage": 5,
                                   "status": "Provision Failed: stopped", "error": "stopped"}}
    f = findings(ev)["cluster.insufficient_machines"]
    assert "  request homelab-workers-b4k9zq: FAILED, Provision Failed: stopped, error: stopped" in f.evidence
    assert not any("x7kq2m" in e for e in f.evidence)
