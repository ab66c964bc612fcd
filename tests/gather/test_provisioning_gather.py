"""What the provisioning gathering parses: the provider's log, addresses, Omni's and Proxmox's listings."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from provider_lines import NOT_AUTHORIZED, START

from runbook_lib.gather.provisioning import (
    ProvisionLog,
    agent_addresses,
    parse_ip_addr,
    provider_user,
    summarize_node_status,
    summarize_omni,
    summarize_task,
)


def test_provision_log_counts_failures_since_the_last_start():
    failed = json.loads(NOT_AUTHORIZED)
    line = lambda **kw: json.dumps({**failed, **kw}, separators=(",", ":"))  # noqa: E731
    log = ProvisionLog(now=failed["ts"] + 100)
    log.feed_lines("stderr", [line(step="syncVM"), START, line(step="pickNode"), line(step="pickNode", ts=failed["ts"] + 40),
                              '{"level":"info","msg":"reconcile succeeded"}', "not json at all"])
    summary = log.summary("tail 10")
    assert summary["lines"] == 6 and summary["starts"] == 1
    assert summary["failures"] == [{"request": "outghost-prime-workers-6g7cgc", "step": "pickNode", "count": 2,
                                    "error": "not authorized to access endpoint", "ago": pytest.approx(60.0)}]


def test_provision_log_memory_is_bounded():
    log = ProvisionLog(now=0, max_pairs=3)
    failed = json.loads(NOT_AUTHORIZED)
    log.feed_lines("stderr", [json.dumps({**failed, "id": f"req-{i}"}) for i in range(10)])
    assert len(log.summary("")["failures"]) == 3 and log.summary("")["dropped"] == 7


def test_addresses_from_ip_and_the_guest_agent():
    ip = [{"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host"}]},
          {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.168.3.10", "prefixlen": 24, "scope": "global"},
                                           {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]}]
    assert parse_ip_addr(json.dumps(ip)) == ["192.168.3.10/24"]
    agent = {"result": [{"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "prefix": 8}]},
                        {"name": "eth0", "ip-addresses": [{"ip-address": "192.168.3.53", "prefix": 24}]}]}
    assert agent_addresses(agent) == ["192.168.3.53/24"]


def test_omni_and_proxmox_summaries():
    cls = {"metadata": {"id": "manual"}, "spec": {"matchlabels": ["a"], "autoprovision": None}}
    auto = {"metadata": {"id": "auto"}, "spec": {"autoprovision": {"providerid": "proxmox", "providerdata": "cores: 1"}}}
    assert summarize_omni("machine_classes", [cls, auto], "proxmox") == [
        {"id": "auto", "providerid": "proxmox", "providerdata": "cores: 1"}]
    mine = {"metadata": {"id": "a-1", "created": "2026-11-27T10:00:00Z", "phase": "running",
                         "labels": {"omni.sidero.dev/infra-provider-id": "proxmox"}}, "spec": {"talosversion": "v1.9.3"}}
    other = {"metadata": {"id": "b-1", "labels": {"omni.sidero.dev/infra-provider-id": "kubevirt"}}, "spec": {}}
    reqs = summarize_omni("machine_requests", [mine, other], "proxmox")
    assert [r["id"] for r in reqs] == ["a-1"]
    assert reqs[0]["created"] == datetime(2026, 11, 27, 10, tzinfo=timezone.utc).timestamp()
    status = {"metadata": {"id": "a-1", "updated": "2026-11-27T10:01:00Z"},
              "spec": {"id": "uuid-1", "stage": 1, "status": "Running Step", "error": ""}}
    assert summarize_omni("request_statuses", [status], "proxmox")["a-1"]["uuid"] == "uuid-1"
    assert summarize_node_status({"cpu": 0.5, "cpuinfo": {"cpus": 8}, "memory": {"total": 10, "used": 4, "free": 6}}) == {
        "cpus": 8, "cpu": 0.5, "mem_total": 10, "mem_used": 4, "mem_available": 6}
    assert summarize_task({"upid": "U", "node": "pve1", "type": "qmcreate", "id": "1003", "user": "u",
                           "starttime": 1})["status"] == "running"
    assert summarize_task({"upid": "U", "status": "OK", "endtime": 2, "starttime": 1})["status"] == "OK"
    assert provider_user({"tokenID": "omni@pve!provider"}) == "omni@pve!provider"
    assert provider_user({"username": "omni", "realm": "pve"}) == "omni@pve"
    assert provider_user({"username": "root"}) == "root@pam"
