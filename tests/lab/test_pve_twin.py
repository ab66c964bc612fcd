"""The twin's Proxmox clusters, seen through proxmoxer as the runbooks see them."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from runbook_lab.certs import CA
from runbook_lab.loop import BackgroundLoop
from runbook_lab.model import RequestLog, fill, healthy_state
from runbook_lab.pve import GIB, seed, start_cluster

TOKEN_ID, TOKEN_SECRET = "runbook@pve!audit", "s3cret-audit-token"

MODEL = {
    "endpoints": 3,
    "down_endpoints": [],
    "hang": False,
    "nodes": ["pve1", "pve2", "pve3"],
    "offline_nodes": [],
    "tokens": {TOKEN_ID: TOKEN_SECRET, "omni@pve!provider": "provider-secret"},
    "storages": {
        "local": {"type": "dir", "content": "iso,vztmpl,backup", "total_gib": 100, "avail_gib": 80},
        "local-lvm": {"type": "lvmthin", "content": "images,rootdir", "total_gib": 900, "avail_gib": 600},
        "vm_ssd": {"type": "rbd", "content": "images,rootdir", "shared": 1, "total_gib": 2048, "avail_gib": 1500},
        "old-nfs": {"type": "nfs", "content": "backup", "enabled": False, "total_gib": 10, "avail_gib": 10},
        "flaky": {"type": "dir", "content": "images", "active": False, "total_gib": 10, "avail_gib": 5},
    },
    "guests": {
        "vms": [
            {"vmid": 1001, "name": "homelab-workers-x7kq2m", "node": "pve1", "status": "running", "cores": 2,
             "memory": 4096, "tags": "machine-request.homelab-workers", "smbios1": "uuid=5d3c6f0e-8b1a"},
            {"vmid": 1002, "name": "homelab-control-planes-pnsg8n", "node": "pve2", "status": "stopped",
             "cores": 4, "memory": 8192, "lock": "backup"},
        ],
        "cts": [{"vmid": 200, "name": "foxtrot", "node": "pve3", "status": "running"}],
    },
}



@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("pve")
    loop = BackgroundLoop("test")
    yield loop, CA.create(base / "pki"), RequestLog(base / "requests.jsonl")
    loop.close()


@pytest.fixture
def start(env):
    """Start a cluster from a model (changes merged into MODEL); stopped after the test."""
    loop, ca, log = env
    started = []

    def _start(name="matrix", **changes):
        cluster = loop.run(start_cluster(name, {**MODEL, **changes}, ca=ca, log=log))
        started.append(cluster)
        return cluster

    yield _start
    for cluster in started:
        loop.run(cluster.stop())


def api(env, url: str, token=(TOKEN_ID, TOKEN_SECRET)) -> ProxmoxAPI:
    _, ca, _ = env
    user, _, name = token[0].partition("!")
    return ProxmoxAPI(url[len("https://"):], user=user, token_name=name, token_value=token[1],
                      verify_ssl=str(ca.cert_path), timeout=(2, 5))


def test_nodes_over_verified_tls_with_a_token(env, start):
    cluster = start()
    nodes = api(env, cluster.endpoints[0]).nodes.get()
    assert {n["node"]: n["status"] for n in nodes} == {"pve1": "online", "pve2": "online", "pve3": "online"}


def test_default_node_and_storages_are_gone_unless_listed(env, start):
    cluster = start("quantum", endpoints=1, nodes=["holly-host"],
                    storages={"local-lvm": {"type": "lvmthin", "total_gib": 500, "avail_gib": 300}},
                    guests={"vms": [{"vmid": 101, "name": "holly", "node": "holly-host", "status": "running"}]})
    px = api(env, cluster.endpoints[0])
    assert [n["node"] for n in px.nodes.get()] == ["holly-host"]
    assert [s["storage"] for s in px.storage.get()] == ["local-lvm"]


def test_storage_space_is_consistent(env, start):
    cluster = start()
    rows = {s["storage"]: s for s in api(env, cluster.endpoints[0]).nodes("pve1").storage.get()}
    assert set(rows) == set(MODEL["storages"])
    for name in ("local", "local-lvm", "vm_ssd"):
        spec, row = MODEL["storages"][name], rows[name]
        assert row["type"] == spec["type"] and row["content"] == spec["content"]
        assert (row["enabled"], row["active"]) == (1, 1)
        assert row["total"] == spec["total_gib"] * GIB
        assert row["avail"] == spec["avail_gib"] * GIB
        assert row["used"] + row["avail"] == row["total"]
        assert row["used_fraction"] == pytest.approx(1 - spec["avail_gib"] / spec["total_gib"])
    assert rows["vm_ssd"]["shared"] == 1 and rows["local"]["shared"] == 0
    assert rows["old-nfs"]["enabled"] == 0
    assert rows["flaky"]["active"] == 0


def test_the_space_filler_is_not_listed_as_content(env, start):
    cluster = start()
    px = api(env, cluster.endpoints[0])
    volids = [v["volid"] for v in px.nodes("pve1").storage("local-lvm").content.get()]
    assert volids == ["local-lvm:vm-200-disk-0"]  # the container's root disk; the used space is not a volume


def test_guests_are_listed_with_their_config(env, start):
    cluster = start()
    px = api(env, cluster.endpoints[0])
    vms = {g["vmid"]: g for g in px.cluster.resources.get(type="vm")}
    assert set(vms) == {1001, 1002, 200}
    assert (vms[1001]["name"], vms[1001]["node"], vms[1001]["status"]) == ("homelab-workers-x7kq2m", "pve1", "running")
    assert vms[1002]["status"] == "stopped" and vms[1002]["lock"] == "backup"
    assert vms[200]["type"] == "lxc" and vms[200]["node"] == "pve3"
    config = px.nodes("pve1").qemu(1001).config.get()
    assert config["tags"] == "machine-request.homelab-workers"
    assert config["smbios1"] == "uuid=5d3c6f0e-8b1a"
    assert int(config["cores"]) == 2 and int(config["memory"]) == 4096
    assert [c["vmid"] for c in px.nodes("pve3").lxc.get()] == [200]


def test_every_endpoint_fronts_the_same_cluster(env, start):
    cluster = start()
    assert len(cluster.endpoints) == 3 and len(set(cluster.endpoints)) == 3
    for url in cluster.endpoints:
        px = api(env, url)
        assert px.version.get()["repoid"] == "fakepve"
        assert [v["vmid"] for v in px.nodes("pve1").qemu.get()] == [1001]


def test_down_endpoint_refuses_and_keeps_its_port(env, start):
    cluster = start(down_endpoints=[1])
    down = cluster.endpoints[1]
    port = int(down.rsplit(":", 1)[1])
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection refused"):
        requests.get(down + "/api2/json/version", timeout=2)
    with socket.socket() as sock, pytest.raises(OSError):
        sock.bind(("127.0.0.1", port))  # still reserved
    assert api(env, cluster.endpoints[0]).version.get()
    assert api(env, cluster.endpoints[2]).version.get()


def test_first_endpoint_can_be_the_down_one(env, start):
    cluster = start(down_endpoints=[0])
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(cluster.endpoints[0] + "/api2/json/version", timeout=2)
    assert api(env, cluster.endpoints[1]).version.get()


def test_hanging_cluster_accepts_and_never_answers(env, start):
    _, ca, _ = env
    cluster = start(endpoints=2, hang=True)

    def attempt(url):
        began = time.monotonic()
        try:
            requests.get(url + "/api2/json/version", verify=str(ca.cert_path), timeout=(1, 1))
        except requests.exceptions.RequestException as exc:
            return type(exc), time.monotonic() - began
        return None, time.monotonic() - began

    with ThreadPoolExecutor(2) as pool:  # both at once: each takes the full second
        outcomes = list(pool.map(attempt, cluster.endpoints))
    for error, seconds in outcomes:
        assert error is requests.exceptions.ReadTimeout
        assert 0.9 < seconds < 1.5


def test_offline_node_answers_595(env, start):
    cluster = start(offline_nodes=["pve2"])
    px = api(env, cluster.endpoints[0])
    assert {n["node"]: n["status"] for n in px.nodes.get()}["pve2"] == "offline"
    with pytest.raises(ResourceException) as err:
        px.nodes("pve2").storage.get()
    assert err.value.status_code == 595


def test_wrong_token_is_refused(env, start):
    cluster = start()
    with pytest.raises(ResourceException) as err:
        api(env, cluster.endpoints[0], token=(TOKEN_ID, "not-the-secret")).nodes.get()
    assert err.value.status_code == 401
    with pytest.raises(ResourceException):
        api(env, cluster.endpoints[0], token=("nobody@pve!x", TOKEN_SECRET)).nodes.get()


def test_requests_are_recorded_and_logged(env, start):
    _, ca, log = env
    cluster = start("logged")
    px = api(env, cluster.endpoints[1])  # through a forwarder
    px.nodes.get()
    px.nodes("pve1").storage.get()
    requests.post(cluster.endpoints[0] + "/api2/json/access/ticket", data={"username": "root@pam", "password": "x"},
                  verify=str(ca.cert_path), timeout=5)
    px.nodes("pve1").qemu(1001).status.shutdown.post()
    assert cluster.requests() == [
        {"method": "GET", "path": "/nodes", "write": False},
        {"method": "GET", "path": "/nodes/pve1/storage", "write": False},
        {"method": "POST", "path": "/access/ticket", "write": False},
        {"method": "POST", "path": "/nodes/pve1/qemu/1001/status/shutdown", "write": True},
    ]
    lines = [e for e in log.entries() if e["target"] == "logged"]
    assert [(e["kind"], e["action"], e["write"]) for e in lines] == [
        ("proxmox", "GET /nodes", False),
        ("proxmox", "GET /nodes/pve1/storage", False),
        ("proxmox", "POST /access/ticket", False),
        ("proxmox", "POST /nodes/pve1/qemu/1001/status/shutdown", True),
    ]
    assert all(set(e) == {"t", "kind", "target", "action", "write"} for e in lines)  # no bodies, no passwords


def test_seed_rejects_inconsistent_models():
    from fakepve import FakePve

    with pytest.raises(ValueError, match="used twice"):
        seed(FakePve(host="127.0.0.1"), {**MODEL, "guests": {"vms": [{"vmid": 7}, {"vmid": 7}]}})
    with pytest.raises(ValueError, match="more than total"):
        seed(FakePve(host="127.0.0.1"), {**MODEL, "storages": {"s": {"total_gib": 1, "avail_gib": 2}}})
    with pytest.raises(ValueError, match="user@realm!id"):
        seed(FakePve(host="127.0.0.1"), {**MODEL, "tokens": {"no-separator": "x"}})


def test_the_healthy_model_serves_both_clusters(env):
    loop, ca, log = env
    clusters = fill(healthy_state()["proxmox"]["clusters"], {})
    started = {name: loop.run(start_cluster(name, model, ca=ca, log=log)) for name, model in clusters.items()}
    try:
        secret = clusters["matrix"]["tokens"]["omni@pve!provider"]
        px = api(env, started["matrix"].endpoints[2], token=("omni@pve!provider", secret))
        assert sorted(s["storage"] for s in px.nodes("pve1").storage.get()) == ["local", "local-lvm", "vm_ssd"]
        quantum = api(env, started["quantum"].endpoints[0], token=(TOKEN_ID, clusters["quantum"]["tokens"][TOKEN_ID]))
        assert [v["name"] for v in quantum.nodes("holly-host").qemu.get()] == ["holly"]
    finally:
        for cluster in started.values():
            loop.run(cluster.stop())


def test_migrate_moves_a_vm_and_leaves_a_qmigrate_task_on_the_source(env, start):
    cluster = start()
    px = api(env, cluster.endpoints[0], token=("omni@pve!provider", "provider-secret"))
    with pytest.raises(ResourceException) as running:
        px.nodes("pve1").qemu(1001).migrate.post(target="pve3")
    assert running.value.status_code == 500 and "without --online" in str(running.value)
    with pytest.raises(ResourceException) as local:
        px.nodes("pve1").qemu(1001).migrate.post(target="pve1", online=1)
    assert local.value.status_code == 400
    with pytest.raises(ResourceException) as elsewhere:
        px.nodes("pve2").qemu(1001).migrate.post(target="pve3", online=1)
    assert "does not exist" in str(elsewhere.value)
    upid = px.nodes("pve1").qemu(1001).migrate.post(target="pve3", online=1)
    assert upid.startswith("UPID:pve1:") and ":qmigrate:1001:" in upid
    vms = {v["vmid"]: v["node"] for v in px.cluster.resources.get(type="vm")}
    assert vms[1001] == "pve3"
    assert px.nodes("pve1").tasks(upid).status.get()["exitstatus"] == "OK"
