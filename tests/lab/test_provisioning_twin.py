"""What the lab twin adds for the provisioning runbook: node figures, permissions, tasks, guest
agent addresses (fakepve through proxmoxer), and ``nc -z`` port probes from a host's shell."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from runbook_lab import shell
from runbook_lab.certs import CA
from runbook_lab.loop import BackgroundLoop
from runbook_lab.model import RequestLog, TwinContext, load_scenario, scenario_state, validate_scenario
from runbook_lab.netcat import mode_for, parse
from runbook_lab.pve import GIB, NODE_DEFAULTS, node_models, start_cluster
from runbook_lab.talos_nodes import talos_addresses

AUDIT, PROVIDER = ("runbook@pve!audit", "audit-secret"), ("omni@pve!provider", "provider-secret")
MODEL = {
    "endpoints": 1,
    "nodes": {"pve1": {"cpus": 16, "cpu": 0.25, "mem_gib": 64, "mem_used_gib": 40, "rootfs_gib": 100,
                       "rootfs_used_gib": 10, "uptime": 5000},
              "pve2": {}},
    "tokens": dict([AUDIT, PROVIDER]),
    "storages": {"local": {"type": "dir", "content": "iso,backup", "total_gib": 100, "avail_gib": 80}},
    "acl": {"runbook@pve": {"/": "PVEAuditor"}, "omni@pve": {"/vms": ["VM.Audit", "VM.PowerMgmt"]}},
    "tasks": [{"node": "pve1", "type": "qmcreate", "id": "1003", "user": "omni@pve!provider", "ago": 3600},
              {"node": "pve1", "type": "qmstart", "id": "1001", "user": "omni@pve!provider", "ago": 120,
               "duration": 3, "status": "start failed: QEMU exited with code 1", "log": ["kvm: out of memory"]}],
    "guests": {"vms": [{"vmid": 1001, "name": "w-1", "node": "pve1", "status": "running", "uptime": 700,
                        "agent_addresses": ["192.168.3.51/24", "fd00::51/64"]},
                       {"vmid": 1002, "name": "w-2", "node": "pve2", "status": "running"}]},
}



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("pve-provisioning")
    loop, ca = BackgroundLoop("test"), CA.create(base / "pki")
    started = loop.run(start_cluster("matrix", MODEL, ca=ca, log=RequestLog(base / "requests.jsonl")))
    yield started, ca
    loop.run(started.stop())
    loop.close()


def api(cluster, token=AUDIT) -> ProxmoxAPI:
    started, ca = cluster
    user, _, name = token[0].partition("!")
    return ProxmoxAPI(started.endpoints[0][len("https://"):], user=user, token_name=name, token_value=token[1],
                      verify_ssl=str(ca.cert_path), timeout=(2, 5))


# --- node figures -----------------------------------------------------------------------------------

def test_nodes_report_the_models_figures(cluster):
    nodes = {n["node"]: n for n in api(cluster).nodes.get()}
    assert (nodes["pve1"]["maxcpu"], nodes["pve1"]["cpu"], nodes["pve1"]["mem"], nodes["pve1"]["maxmem"]) == (
        16, 0.25, 40 * GIB, 64 * GIB)
    assert nodes["pve2"]["maxcpu"] == NODE_DEFAULTS["cpus"]  # no figures: fakepve's defaults
    rows = [r for r in api(cluster).cluster.resources.get() if r["type"] == "node"]
    assert {r["node"]: r["maxmem"] for r in rows} == {"pve1": 64 * GIB, "pve2": NODE_DEFAULTS["mem_gib"] * GIB}
    assert all(r["type"] == "qemu" for r in api(cluster).cluster.resources.get(type="vm"))


def test_node_status_has_pves_shape(cluster):
    status = api(cluster).nodes("pve1").status.get()
    assert status["cpuinfo"]["cpus"] == 16 and status["cpu"] == 0.25
    assert status["memory"] == {"total": 64 * GIB, "used": 40 * GIB, "free": 24 * GIB, "available": 24 * GIB}
    assert status["rootfs"]["avail"] == 90 * GIB and status["uptime"] == 5000
    assert [float(x) for x in status["loadavg"]] == [4.0, 3.6, 3.2]  # strings, as PVE sends them
    with pytest.raises(ResourceException) as err:
        api(cluster).nodes("pve9").status.get()
    assert err.value.status_code == 500 and "hostname lookup 'pve9' failed" in str(err.value)


def test_node_status_needs_sys_audit(cluster):
    with pytest.raises(ResourceException) as err:
        api(cluster, PROVIDER).nodes("pve1").status.get()
    assert err.value.status_code == 403 and "/nodes/pve1, Sys.Audit" in str(err.value)


def test_node_list_forms():
    assert node_models(["pve1", "pve2"]) == {"pve1": {}, "pve2": {}}
    mixed = node_models(["pve1", {"name": "pve2", "cpus": 8}])
    assert mixed["pve1"] == {} and mixed["pve2"]["cpus"] == 8 and mixed["pve2"]["mem_gib"] == NODE_DEFAULTS["mem_gib"]
    with pytest.raises(ValueError, match="unknown field"):
        node_models({"pve1": {"memory": 4}})
    with pytest.raises(ValueError, match="uses more than it has"):
        node_models({"pve1": {"mem_gib": 8, "mem_used_gib": 9}})


# --- permissions, tasks, guest agent ------------------------------------------------------------------

def test_permissions_follow_the_acl(cluster):
    assert api(cluster, PROVIDER).access.permissions.get() == {"/vms": {"VM.Audit": 1, "VM.PowerMgmt": 1}}
    auditor = api(cluster).access.permissions.get()["/"]
    assert "Sys.Audit" in auditor and "VM.Allocate" not in auditor
    with pytest.raises(ResourceException) as err:  # creating a VM needs VM.Allocate
        api(cluster, PROVIDER).nodes("pve1").qemu.post(vmid=150, name="x")
    assert err.value.status_code == 403


def test_tasks_are_seeded(cluster):
    tasks = {t["type"]: t for t in api(cluster).nodes("pve1").tasks.get(source="all")}
    assert "status" not in tasks["qmcreate"] and "endtime" not in tasks["qmcreate"]  # still running
    assert time.time() - tasks["qmcreate"]["starttime"] == pytest.approx(3600, abs=5)
    assert tasks["qmstart"]["status"] == "start failed: QEMU exited with code 1"
    log = api(cluster).nodes("pve1").tasks(tasks["qmstart"]["upid"]).log.get()
    assert [line["t"] for line in log] == ["kvm: out of memory", "TASK ERROR: start failed: QEMU exited with code 1"]


def test_guest_agent_addresses_and_uptime(cluster):
    result = api(cluster).nodes("pve1").qemu(1001)("agent")("network-get-interfaces").get()["result"]
    eth = next(i for i in result if i["name"] == "eth0")
    assert [(a["ip-address"], a["prefix"]) for a in eth["ip-addresses"]] == [("192.168.3.51", 24), ("fd00::51", 64)]
    with pytest.raises(ResourceException, match="guest agent is not running"):
        api(cluster).nodes("pve2").qemu(1002)("agent")("network-get-interfaces").get()
    vm = next(v for v in api(cluster).cluster.resources.get(type="vm") if v["vmid"] == 1001)
    assert vm["uptime"] == pytest.approx(700, abs=5)


def test_the_healthy_site_and_a_scenario_still_load():
    matrix = scenario_state(load_scenario("healthy"))["proxmox"]["clusters"]["matrix"]
    assert set(node_models(matrix["nodes"])) == {"pve1", "pve2", "pve3"}
    doc = validate_scenario({"name": "x", "summary": "x", "expect": [], "changes": {"proxmox": {"clusters": {"matrix": {
        "nodes": {"pve2": {"mem_used_gib": 63}}, "acl": {"someone@pve": {"/": ["VM.Audit"]}}}}}}})
    state = scenario_state(doc)["proxmox"]["clusters"]["matrix"]
    assert state["nodes"]["pve2"]["mem_used_gib"] == 63 and state["nodes"]["pve1"]["cpus"] == 16


# --- nc -z ------------------------------------------------------------------------------------------

CP, WORKER, NEW, OFF = "192.168.3.52", "192.168.3.51", "192.168.3.53", "192.168.3.54"
ROLES = {CP: "controlplane", WORKER: "worker", NEW: "none", OFF: "stopped"}


def run_nc(command: str, probes: dict | None = None, timeout: float = 10, talos: dict | None = None,
           addresses: list | None = None) -> tuple[int, str, str]:
    host = {"probes": probes or {}, "addresses": addresses or ["192.168.3.10/24"]}
    ctx = TwinContext(now=time.time(), ca_file=None, talos=ROLES if talos is None else talos)
    return asyncio.run(asyncio.wait_for(shell.capture(command, name="provider", host=host, ctx=ctx), timeout))


def test_nc_answers_the_talos_ports_as_talos_serves_them():
    rc, _, err = run_nc(f"nc -z -v -w 1 {CP} 50000-50001", {"talos": "pass"})
    assert rc == 0 and err.splitlines() == [f"Connection to {CP} 50000 port [tcp/*] succeeded!",
                                            f"Connection to {CP} 50001 port [tcp/*] succeeded!"]
    for address in (WORKER, NEW):  # trustd runs on control planes only; maintenance mode serves apid only
        rc, _, err = run_nc(f"nc -z -v -w 1 {address} 50000 50001")
        assert rc == 0 and err.splitlines() == [
            f"Connection to {address} 50000 port [tcp/*] succeeded!",
            f"nc: connect to {address} port 50001 (tcp) failed: Connection refused"]


def test_nc_finds_nobody_behind_a_stopped_vm_or_a_free_address():
    for address in (OFF, "192.168.3.99"):  # on the provider host's segment: ARP gets no answer
        rc, _, err = run_nc(f"nc -z -v -w 1 {address} 50000")
        assert rc == 1 and err == f"nc: connect to {address} port 50000 (tcp) failed: No route to host\n"
    start = time.monotonic()  # beyond the host's subnets: the router forwards, nobody answers
    rc, _, err = run_nc("nc -z -v -w 0.3 10.20.0.5 50000")
    assert rc == 1 and "timed out" in err and time.monotonic() - start >= 0.25


def test_nc_firewall_modes_apply_to_every_talos_port():
    rc, _, err = run_nc(f"nc -z -v -w 1 {CP} 50000 50001", {"talos": "reject"})
    assert rc == 1 and err.splitlines() == [f"nc: connect to {CP} port 50000 (tcp) failed: Connection refused",
                                            f"nc: connect to {CP} port 50001 (tcp) failed: Connection refused"]
    start = time.monotonic()
    rc, _, err = run_nc(f"nc -z -v -w 0.2 {CP} 50000 50001", {"talos": "drop"})
    assert rc == 1 and time.monotonic() - start >= 0.35  # each port waits for -w
    assert err.count("timed out: Operation now in progress") == 2
    rc, _, err = run_nc(f"nc -z -v -w 1 {OFF} 50000", {"talos": "drop"})  # a firewall rule wins over the VM state
    rc2, _, _ = run_nc(f"nc -z -w 0.2 {CP} 50000", {"talos": "timeout"})
    assert (rc, rc2) == (1, 1) and "timed out" in err
    rc, _, err = run_nc(f"nc -z -v -w 1 {WORKER} 50000 50001", {"talos": "unreachable"})
    assert rc == 1 and err.count("No route to host") == 2


def test_nc_per_address_overrides():
    probes = {"talos": "reject", CP: "pass", f"{WORKER}:50001": "pass"}
    rc, _, err = run_nc(f"nc -z -v -w 1 {CP} 50000 50001", probes)  # an address given `pass`: as Talos serves
    assert rc == 0 and "Connection refused" not in err
    rc, out, err = run_nc(f"nc -zv -w1 {WORKER} 50000 50001", probes)  # address:port `pass`: that port accepts
    assert rc == 0 and out == ""
    assert err.splitlines() == [f"nc: connect to {WORKER} port 50000 (tcp) failed: Connection refused",
                                f"Connection to {WORKER} 50001 port [tcp/*] succeeded!"]
    rc, _, err = run_nc(f"nc -z -w 1 {CP} 50000", {CP: "unreachable"})
    assert (rc, err) == (1, "")  # without -v a failed connection prints nothing
    rc, _, err = run_nc(f"nc -z -v -w 1 {CP} 50000", {CP: "sideways"})
    assert rc == 2 and "unknown mode 'sideways'" in err


def test_roles_come_from_omni_and_the_vms():
    state = scenario_state(load_scenario("healthy"))
    assert talos_addresses(state) == {"192.168.3.51": "worker", "192.168.3.52": "controlplane"}
    resources = state["omnictl"]["resources"]
    status = resources["MachineStatuses.omni.sidero.dev/9a41c2e7-6b3d-4f08-a5c1-2e7d9b0f4a63"]
    status["spec"]["network"]["addresses"] = ["192.168.3.62/24"]  # the VM's guest agent still says .52
    vms = state["proxmox"]["clusters"]["matrix"]["guests"]["vms"]
    vms[0]["status"] = "stopped"
    vms.append({"vmid": 1009, "name": "fresh", "status": "running", "agent_addresses": ["192.168.3.70/24"]})
    del resources["MachineRequestStatuses.omni.sidero.dev/homelab-control-planes-pnsg8n"]  # found by smbios1
    roles = talos_addresses(state)
    assert roles == {"192.168.3.51": "stopped", "192.168.3.52": "controlplane", "192.168.3.62": "controlplane",
                     "192.168.3.70": "none"}
    status["spec"]["maintenance"] = True
    assert talos_addresses(state)["192.168.3.52"] == "none"


def test_nc_timeout_waits_for_w():
    start = time.monotonic()
    rc, _, err = run_nc("nc -z -v -w 0.3 10.9.9.9 50000", {"talos": "timeout"})
    assert rc == 1 and 0.25 < time.monotonic() - start < 3
    assert err == "nc: connect to 10.9.9.9 port 50000 (tcp) timed out: Operation now in progress\n"
    rc, _, _ = run_nc("timeout 0.3 nc -z 10.9.9.9 50000", {"talos": "timeout"})  # no -w: only timeout ends it
    assert rc == 124


def test_nc_really_connects_on_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert run_nc(f"nc -z -w 1 127.0.0.1 {port}")[0] == 0
    finally:
        listener.close()
    rc, _, err = run_nc(f"nc -z -v -w 1 127.0.0.1 {port}")
    assert rc == 1 and "Connection refused" in err


def test_nc_command_line_errors():
    assert run_nc("nc -z -v nosuch.example 50000")[2] == \
        'nc: getaddrinfo for host "nosuch.example" port 50000: Name or service not known\n'
    assert run_nc("nc -l 50000")[0] == 1
    assert "not simulated" in run_nc("nc -z -e /bin/sh 10.0.0.1 1")[2]
    assert "port number invalid" in run_nc("nc -z 10.0.0.1 http")[2]
    assert parse(["-zvw", "3", "h", "1-3"]) == ({"z", "v"}, 3.0, "h", [1, 2, 3])
    assert mode_for({}, "10.0.0.1", 22) == "timeout" and mode_for({}, "10.0.0.1", 50001, {"10.0.0.1": "worker"}) == "refused"
    assert mode_for({}, "127.0.0.1", 50000) is None and mode_for({"talos": "drop"}, "10.0.0.1", 50000) == "timeout"
