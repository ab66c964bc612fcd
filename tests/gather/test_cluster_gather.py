"""What the cluster gathering reads: Omni's JSON reduced, and against the twin, which reads it makes."""

from __future__ import annotations

import copy

from runbook_lib.checks import run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.gather.cluster import reduce_cluster_machines, reduce_machine_sets, reduce_machine_statuses


def statuses(items: dict) -> dict[str, str]:
    return {f.id: f.status for f in run_checks("cluster", Evidence(items))}


def test_reducers_read_omnictl_json_where_empty_labels_are_null():
    raw_set = {"metadata": {"id": "homelab-control-planes", "labels": {"omni.sidero.dev/cluster": "homelab",
                                                                      "omni.sidero.dev/role-controlplane": None}},
               "spec": {"phase": 3, "ready": True, "error": "",
                        "machines": {"total": 1, "healthy": 1, "connected": 1, "requested": 1},
                        "machineallocation": {"name": "proxmox-control-plane", "machinecount": 1,
                                              "allocationtype": 0}}}
    ms = reduce_machine_sets([raw_set])["homelab-control-planes"]
    assert ms["role"] == "controlplane" and ms["allocation"]["name"] == "proxmox-control-plane"
    raw_cm = {"metadata": {"id": "5d3c", "labels": {"omni.sidero.dev/cluster": "homelab",
                                                    "omni.sidero.dev/machine-set": "homelab-workers",
                                                    "omni.sidero.dev/role-worker": None,
                                                    "omni.sidero.dev/connected": None}},
              "spec": {"ready": True, "stage": 4, "provisionstatus": {"requestid": "homelab-workers-x7kq2m"}}}
    cm = reduce_cluster_machines([raw_cm])["5d3c"]
    assert cm["connected"] and cm["role"] == "worker" and cm["request"] == "homelab-workers-x7kq2m"
    raw_ms = {"metadata": {"id": "m", "labels": {"omni.sidero.dev/available": None, "hw": "nuc"}},
              "spec": {"talosversion": "v1.9.3", "connected": True}}
    assert reduce_machine_statuses([raw_ms])["m"]["labels"] == {"omni.sidero.dev/available": "", "hw": "nuc"}
    no_class = copy.deepcopy(raw_set)
    no_class["spec"]["machineallocation"] = None
    assert reduce_machine_sets([no_class])["homelab-control-planes"]["allocation"] is None


def test_gathering_reads_supply_only_when_machines_are_waited_for():
    from runbook_lab.twin import Twin
    from runbook_lib.calls import CallLog
    from runbook_lib.gather.cluster import gather
    from runbook_lib.site import load_site

    with Twin() as twin:
        calls = CallLog()
        ev = gather(load_site(twin.site_file), calls)
    assert {c.target for c in calls.calls} == {"omnictl"} and len(calls.calls) == 7
    assert ev.get("machine_statuses") is None and ev.get("proxmox_nodes") is None
    assert set(statuses(ev.to_dict()["items"]).values()) == {"ok"}

    with Twin("cluster-rate-limited") as twin:
        calls = CallLog()
        ev = gather(load_site(twin.site_file), calls)
        writes = twin.writes()
    targets = {c.target.split()[0] for c in calls.calls}
    assert {"omnictl", "proxmox", "ssh"} <= targets and writes == []
    assert sum(r["stage"] == 1 for r in ev.get("request_statuses").values()) == 6
    assert set(ev.get("proxmox_storage")) == {"pve1", "pve2", "pve3"}
    assert ev.get("provider_log")["categories"]["rate_limited"]["count"] == 6
