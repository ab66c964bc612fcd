"""What the storage gathering makes of machine classes: their provider data, read as the provider reads it."""

from __future__ import annotations

import pytest

from runbook_lib.gather.storage import meant_key, summarize_class


def machine_class(cid: str, providerdata: str, provider: str = "proxmox") -> dict:
    return summarize_class({"metadata": {"id": cid, "namespace": "default"},
                            "spec": {"autoprovision": {"providerid": provider, "providerdata": providerdata}}})


@pytest.mark.parametrize("key, meant", [("storageSelector", "storage_selector"), ("diskSize", "disk_size"),
                                        ("storage_selecter", "storage_selector"), ("cores", None),
                                        ("colour", None)])
def test_meant_key(key, meant):
    assert meant_key(key) == meant


def test_summarize_class_reads_the_readme_manifest_and_go_scalars():
    c = summarize_class({"metadata": {"id": "k8s-style"}, "spec": {"autoprovision": {
        "providerid": "proxmox", "providerdata": 'config:\n  cpu: 2\n  storageSelector: name == "x"\n'}}})
    assert {i["key"] for i in c["ignored"]} >= {"config", "config.storageSelector"}
    assert not c["selectors"][0]["present"]
    c = machine_class("bool", "storage_selector: true\n")
    assert c["selectors"][0]["text"] == "true"  # go-yaml decodes a bool into a string field as "true"
    c = machine_class("broken", "storage_selector: [unclosed\n")
    assert c["error"].startswith("providerdata is not valid YAML")
