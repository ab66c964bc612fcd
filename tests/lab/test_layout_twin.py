"""A whole twin seen the way the runbooks see it: the site file follows the scenario's layout, and
``nc`` on the provider host answers the Talos ports by the role Omni gives each machine."""

from __future__ import annotations

import json

import pytest
import yaml

from runbook_lab.model import load_scenario, scenario_state
from runbook_lab.talos_nodes import talos_addresses
from runbook_lab.twin import Twin
from runbook_lib.calls import CallLog
from runbook_lib.site import load_site
from runbook_lib.sources.ssh import SSHHost


def nc(host: SSHHost, address: str) -> list[str]:
    return host.run(["nc", "-z", "-v", "-w", "1", address, "50000", "50001"], timeout=10).stderr.splitlines()


def test_the_site_file_follows_another_layout():
    with Twin("layout-pve-prod") as twin:
        doc = yaml.safe_load(twin.site_file.read_text())
        site = load_site(twin.site_file)
        host = SSHHost(site.hosts.provider, CallLog())
        try:
            rows = [json.loads(line) for line in
                    host.run(["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"]).stdout.splitlines()]
            worker = nc(host, "192.168.3.51")
        finally:
            host.close()
    assert doc["provider"] == {"id": "pve-prod", "cluster": "matrix"}
    assert "container" not in doc["hosts"]["provider"]  # the runbooks must find it by image
    assert doc["hosts"]["omni"]["compose_dir"] == "/srv/sidero"
    assert doc["proxmox"]["matrix"]["guests"] == {"provider_lxc": 210}
    assert [r["Names"] for r in rows] == ["infra-omni-provider-1"]
    assert "com.docker.compose.project=infra" in rows[0]["Labels"]
    assert worker == ["Connection to 192.168.3.51 50000 port [tcp/*] succeeded!",
                      "nc: connect to 192.168.3.51 port 50001 (tcp) failed: Connection refused"]


def test_the_guides_layout_is_still_the_default():
    with Twin("healthy") as twin:
        doc = yaml.safe_load(twin.site_file.read_text())
    assert doc["provider"] == {"id": "proxmox", "cluster": "matrix"}
    assert doc["hosts"]["provider"]["container"] == "omni-provider-proxmox-provider-1"
    assert doc["hosts"]["omni"]["compose_dir"] == "/opt/omni"
    assert doc["proxmox"]["quantum"]["guests"] == {"omni_vm": 101}


def test_nc_over_ssh_answers_by_role_and_finds_nobody_behind_a_stopped_vm():
    with Twin("vm-off") as twin:
        site = load_site(twin.site_file)
        host = SSHHost(site.hosts.provider, CallLog())
        try:
            control_plane, stopped = nc(host, "192.168.3.52"), nc(host, "192.168.3.53")
        finally:
            host.close()
    assert control_plane == ["Connection to 192.168.3.52 50000 port [tcp/*] succeeded!",
                             "Connection to 192.168.3.52 50001 port [tcp/*] succeeded!"]
    assert stopped == ["nc: connect to 192.168.3.53 port 50000 (tcp) failed: No route to host",
                       "nc: connect to 192.168.3.53 port 50001 (tcp) failed: No route to host"]


@pytest.mark.parametrize("name, roles", [
    ("workers-no-trustd", {"192.168.3.51": "worker", "192.168.3.52": "controlplane", "192.168.3.53": "worker",
                           "192.168.3.54": "worker"}),
    ("never-joined", {"192.168.3.51": "worker", "192.168.3.52": "controlplane", "192.168.3.57": "none"}),
    ("lost-connection-quorum", {"192.168.3.51": "worker", "192.168.3.52": "controlplane",
                                "192.168.3.55": "controlplane", "192.168.3.56": "controlplane"}),
])
def test_roles_of_the_new_scenarios(name, roles):
    assert talos_addresses(scenario_state(load_scenario(name))) == roles
