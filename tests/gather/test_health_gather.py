"""What the health gathering makes of Proxmox's and Omni's listings."""

from __future__ import annotations

from runbook_lib.gather.health import find_guest, summarize_cluster, summarize_request


def test_guest_lookup_matches_id_and_type():
    listing = [{"vmid": 200, "type": "qemu", "name": "other", "node": "pve1", "status": "running"},
               {"vmid": 200, "type": "lxc", "name": "foxtrot", "node": "pve3", "status": "stopped"}]
    assert find_guest(listing, 200, "lxc")["name"] == "foxtrot"
    assert find_guest(listing, 201, "lxc") is None


def test_resource_summaries_read_omnis_fields():
    r = summarize_request({"metadata": {"id": "r", "created": "2026-02-14T10:00:00Z"},
                           "spec": {"stage": 1, "status": "s", "error": ""}}, 1771063200.0 + 60)
    assert r == {"id": "r", "stage": 1, "status": "s", "error": "", "uuid": "", "age": 60.0}
    c = summarize_cluster({"metadata": {"id": "homelab"},
                           "spec": {"ready": True, "available": True, "phase": 3,
                                    "machines": {"total": 3, "healthy": 2, "connected": 3}}})
    assert (c["total"], c["healthy"], c["phase"]) == (3, 2, 3)
