"""The omnictl stand-in, run as a program: omnictl's output shapes, error lines and the request log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from runbook_lab import omni_output, omni_resources
from runbook_lab.model import fill, healthy_state

NOW = 1795770000  # 2026-11-27T09:00:00Z
NOW_TEXT = "2026-11-27T09:00:00Z"
OMNI_URL = "https://127.0.0.1:40443"

MACHINES = {
    f"MachineStatuses.omni.sidero.dev/{uid}": {
        "metadata": {"labels": {"omni.sidero.dev/cluster": cluster, "omni.sidero.dev/connected": "",
                                "omni.sidero.dev/cores": cores}},
        "spec": {"talosversion": "v1.9.3", "connected": True, "network": {"hostname": uid[:8], "addresses": []}},
    }
    for uid, cluster, cores in (("aaaa-1", "homelab", 2), ("bbbb-2", "homelab", 4), ("cccc-3", "other", 4))
}


def state(**changes) -> dict:
    spec = fill(healthy_state()["omnictl"], {"now": NOW})
    # the healthy site's infra provider, and only the machines and clusters these tests define
    spec["resources"] = {k: v for k, v in spec["resources"].items() if k.startswith("InfraProvider")}
    spec["resources"].update(MACHINES)
    return {**spec, "now": NOW, "omni_url": OMNI_URL, **changes}


@pytest.fixture
def run(tmp_path):
    """Run the stand-in with a state; returns (rc, stdout, stderr)."""
    log = tmp_path / "requests.jsonl"

    def _run(*args, st=None, timeout=10):
        path = tmp_path / "state.json"
        path.write_text(json.dumps(st or state()))
        done = subprocess.run([sys.executable, "-m", "runbook_lab.omnictl", "--state", str(path),
                               "--log", str(log), *args], capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout, done.stderr

    _run.log = log
    return _run


def documents(text: str) -> list[dict]:
    """Concatenated JSON objects, as a streaming client must read them."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)
    return out


def assert_sorted_keys(text: str) -> None:
    def hook(pairs):
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys), keys
        return dict(pairs)

    decoder, i = json.JSONDecoder(object_pairs_hook=hook), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        _, i = decoder.raw_decode(text, i)


# ---------------------------------------------------------------------------------- JSON / YAML


def test_json_is_concatenated_sorted_and_indented(run):
    rc, out, err = run("get", "machinestatuses", "-o", "json")
    assert (rc, err) == (0, "")
    docs = documents(out)
    assert [d["metadata"]["id"] for d in docs] == ["aaaa-1", "bbbb-2", "cccc-3"]
    assert out.startswith('{\n    "metadata": {\n        "created": ')
    assert "}\n{\n" in out and not out.lstrip().startswith("[") and out.endswith("}\n")
    assert_sorted_keys(out)


def test_json_metadata_defaults_and_untyped_values(run):
    _, out, _ = run("get", "infraproviderhealthstatuses", "-o", "json")
    (doc,) = documents(out)
    assert doc["metadata"] == {
        "namespace": "infra-provider-ephemeral", "type": "InfraProviderHealthStatuses.omni.sidero.dev",
        "id": "proxmox", "version": 1, "owner": "proxmox.ProviderHealthStatusController", "phase": "running",
        "created": NOW_TEXT, "updated": NOW_TEXT,
    }
    assert doc["spec"] == {"lastheartbeattimestamp": {"seconds": NOW, "nanos": 0}, "error": ""}
    _, out, _ = run("get", "infraproviders", "-o", "json")
    assert documents(out)[0]["metadata"]["owner"] is None  # an empty owner is written untyped
    _, out, _ = run("get", "machinestatuses", "aaaa-1", "-o", "json")
    labels = documents(out)[0]["metadata"]["labels"]
    assert labels == {"omni.sidero.dev/cluster": "homelab", "omni.sidero.dev/connected": None,
                      "omni.sidero.dev/cores": 2}


def test_yaml_documents_and_indentation(run):
    rc, out, _ = run("get", "machinestatuses", "-o", "yaml")
    assert rc == 0
    docs = re.split(r"(?m)^---\n", out)
    assert len(docs) == 3 and not out.startswith("---")
    parsed = [yaml.safe_load(d) for d in docs]
    assert [d["metadata"]["id"] for d in parsed] == ["aaaa-1", "bbbb-2", "cccc-3"]
    assert docs[0].startswith("metadata:\n    namespace: default\n    type: MachineStatuses.omni.sidero.dev\n"
                              "    id: aaaa-1\n    version: 1\n    owner:\n    phase: running\n")
    assert "    labels:\n        omni.sidero.dev/cluster: homelab\n        omni.sidero.dev/connected:\n" in docs[0]
    assert "spec:\n    talosversion: v1.9.3\n    connected: true\n    network:\n        hostname: aaaa-1\n" \
           "        addresses: []\n" in docs[0]


def test_yaml_quotes_strings_that_would_read_back_as_something_else(run):
    rc, out, _ = run("get", "infraproviderstatuses", "proxmox", "-o", "yaml")
    assert rc == 0
    assert '    schema: ""\n    name: Proxmox\n' in out and 'icon: ""' in out


def test_table_has_the_types_columns(run):
    rc, out, _ = run("get", "infraprovidercombinedstatuses")
    assert rc == 0
    header, row = out.splitlines()
    assert header.split() == ["NAMESPACE", "TYPE", "ID", "VERSION", "NAME", "DESCRIPTION", "VERSION", "CONNECTED"]
    assert row.split()[:4] == ["ephemeral", "InfraProviderCombinedStatus", "proxmox", "1"]
    assert row.split()[-2:] == ["v0.3.0", "true"]
    assert header.index("CONNECTED") == row.index("true")  # columns line up


def test_empty_results(run):
    assert run("get", "clusters") == (0, "NAMESPACE   TYPE   ID   VERSION   TALOS VERSION   KUBERNETES VERSION\n", "")
    assert run("get", "clusters", "-o", "json") == (0, "", "")
    assert run("get", "clusters", "-o", "yaml") == (0, "", "")
    assert run("get", "infraproviders", "-n", "default", "-o", "json") == (0, "", "")


def test_type_names_and_namespaces(run):
    outputs = {run("get", name, "-o", "json")[1] for name in
               ("infraproviders", "InfraProvider", "INFRAPROVIDERS.omni.sidero.dev", "infraproviders.omni")}
    assert len(outputs) == 1 and documents(outputs.pop())[0]["metadata"]["id"] == "proxmox"
    rc, out, _ = run("get", "iphs", "proxmox", "-n", "infra-provider-ephemeral", "-ojson")
    assert rc == 0 and documents(out)[0]["metadata"]["type"] == "InfraProviderHealthStatuses.omni.sidero.dev"


# ---------------------------------------------------------------------------------- selection


def test_label_selector(run):
    def ids(*args):
        rc, out, err = run("get", "machinestatuses", "-o", "json", *args)
        assert (rc, err) == (0, ""), err
        return [d["metadata"]["id"] for d in documents(out)]

    assert ids("-l", "omni.sidero.dev/cluster=homelab") == ["aaaa-1", "bbbb-2"]
    assert ids("--selector=omni.sidero.dev/cluster==homelab,omni.sidero.dev/cores=4") == ["bbbb-2"]
    assert ids("-l", "omni.sidero.dev/cluster!=homelab") == ["cccc-3"]
    assert ids("-l", "omni.sidero.dev/connected") == ["aaaa-1", "bbbb-2", "cccc-3"]
    assert ids("-l", "!omni.sidero.dev/connected") == []
    assert ids("-l", "omni.sidero.dev/cluster in (other, nowhere)") == ["cccc-3"]
    assert ids("--id-match-regexp", "^[ab]") == ["aaaa-1", "bbbb-2"]


def test_selector_with_an_id_is_refused(run):
    assert run("get", "machinestatuses", "aaaa-1", "-l", "a=b") == (
        1, "", "Error: cannot specify both resource ID and selector\n")


# ---------------------------------------------------------------------------------- errors


def test_unknown_type(run):
    assert run("get", "events", "-o", "json") == (1, "", 'Error: resource "events" is not registered\n')


def test_ambiguous_alias(run):
    rc, _, err = run("get", "ms")
    assert rc == 1
    assert err == ('Error: resource type "ms" is ambiguous: '
                   "[MachineSets.omni.sidero.dev MachineStatuses.omni.sidero.dev]\n")


def test_missing_id(run):
    assert run("get", "machinestatuses", "nosuch", "-o", "json") == (
        1, "", "Error: rpc error: code = NotFound desc = resource MachineStatuses.omni.sidero.dev"
               "(default/nosuch@undefined) doesn't exist\n")


def test_missing_id_in_a_table_still_prints_the_header(run):
    # the table writer is created before the lookup and flushed when the command returns
    rc, out, err = run("get", "machinestatuses", "nosuch")
    assert (rc, out) == (1, "NAMESPACE   TYPE   ID   VERSION\n") and "code = NotFound" in err


def test_flag_and_argument_errors(run):
    assert run("get", "machines", "--cluster", "homelab") == (1, "", "Error: unknown flag: --cluster\n")
    assert run("get") == (1, "", "Error: accepts between 1 and 2 arg(s), received 0\n")
    assert run("get", "machines", "-o") == (1, "", "Error: flag needs an argument: 'o' in -o\n")
    assert run("get", "machines", "-o", "xml") == (1, "", 'Error: output format "xml" is not supported\n')
    rc, _, err = run("frobnicate")
    assert rc == 1 and err.startswith('Error: unknown command "frobnicate" for "omnictl"\n')


ERRORS = {
    "unauthenticated": "Error: rpc error: code = Unauthenticated desc = invalid signature\n",
    "permission_denied": 'Error: rpc error: code = PermissionDenied desc = unauthorized: access denied: '
                         'insufficient role: "Reader"\n',
    "unavailable": 'Error: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while '
                   'dialing: dial tcp 127.0.0.1:40443: connect: connection refused"\n',
    "x509": 'Error: rpc error: code = Unavailable desc = connection error: desc = "transport: authentication '
            'handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"\n',
    "no_context": 'Error: context "default" has not been configured, you will need to set it manually\n',
}


@pytest.mark.parametrize("mode", sorted(ERRORS))
def test_error_modes(run, mode):
    assert run("get", "infraproviders", "-o", "json", st=state(error=mode)) == (1, "", ERRORS[mode])


@pytest.mark.parametrize("mode, text", [("too_old", "omnictl is too old for this Omni instance, please update "
                                                    "omnictl"),
                                        ("too_new", "omnictl is newer than this Omni instance")])
def test_version_skew(run, mode, text):
    rc, out, err = run("get", "infraproviders", st=state(error=mode))
    assert (rc, out) == (1, "") and err.startswith("Error: " + text)


def test_global_flags_anywhere(run):
    st = state(error="x509")
    assert run("--insecure-skip-tls-verify", "get", "infraproviders", "-o", "json", st=st)[0] == 0
    assert run("get", "--context", "lab", "infraproviders", "--omniconfig", "/dev/null", "-o", "json")[0] == 0
    assert run("get", "infraproviders", "--context=prod", st=state(error="no_context")) == (
        1, "", 'Error: context "prod" has not been configured, you will need to set it manually\n')


def test_hang_never_returns(run):
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run("get", "infraproviders", st=state(hang=True), timeout=1)
    assert time.monotonic() - began < 3
    assert json.loads(run.log.read_text().splitlines()[-1])["action"] == "get infraproviders"


def test_version(run):
    for args in (("--version",), ("version",)):
        rc, out, _ = run(*args, st=state(error="unavailable"))  # a local command: no connection
        assert rc == 0 and re.fullmatch(r"omnictl version v\d+\.\d+\.\d+\n", out)


# ---------------------------------------------------------------------------------- request log


def test_every_invocation_is_logged_and_writes_are_marked(run):
    run("get", "infraproviders", "-o", "json")
    run("get", "machinestatuses", "-l", "omni.sidero.dev/cluster=homelab")
    rc, _, err = run("apply", "-f", "cluster.yaml")
    assert rc == 1 and "not simulated" in err
    run("infraprovider", "create", "proxmox")
    run("ip", "list")
    run("delete", "link", "abc")
    entries = [json.loads(line) for line in run.log.read_text().splitlines()]
    assert [(e["kind"], e["target"], e["action"], e["write"]) for e in entries] == [
        ("omnictl", "omnictl", "get infraproviders -o json", False),
        ("omnictl", "omnictl", "get machinestatuses -l omni.sidero.dev/cluster=homelab", False),
        ("omnictl", "omnictl", "apply -f cluster.yaml", True),
        ("omnictl", "omnictl", "infraprovider create proxmox", True),
        ("omnictl", "omnictl", "ip list", False),
        ("omnictl", "omnictl", "delete link abc", True),
    ]


def test_infraprovider_list(run):
    rc, out, _ = run("infraprovider", "list")
    assert rc == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "NAME", "VERSION", "DESCRIPTION", "CONNECTED", "ERROR"]
    assert row.split() == ["proxmox", "Proxmox", "v0.3.0", "Proxmox", "infrastructure", "provider", "true"]


# ---------------------------------------------------------------------------------- formatting (in-process)


def test_yaml_scalars_as_go_yaml_writes_them():
    res = omni_resources.Resource(omni_resources.Registry().resolve("machineclasses"), "c", {
        "metadata": {"labels": {"weird": "a: b", "num": "12"}},
        "spec": {"yes": "yes", "n": "123", "ts": "2026-01-01T00:00:00Z", "f": 1e6, "q": "it's: here",
                 "text": "cores: 2\nmemory: 4096\n", "nested": [{"a": 1, "b": [True, None]}, []]},
    }, NOW)
    out = omni_output.to_yaml(res)
    assert "        num: 12\n        weird: 'a: b'\n" in out
    assert '    "yes": "yes"\n    "n": "123"\n    ts: "2026-01-01T00:00:00Z"\n    f: 1e+06\n' in out
    assert "    q: 'it''s: here'\n    text: |\n        cores: 2\n        memory: 4096\n" in out
    assert ("    nested:\n        - a: 1\n          b:\n              - true\n              - null\n"
            "        - []\n") in out
    assert yaml.safe_load(out)["spec"]["text"] == "cores: 2\nmemory: 4096\n"
    doc = json.loads(omni_output.to_json(res))
    assert doc["metadata"]["labels"] == {"num": 12, "weird": "a: b"}
    assert doc["spec"]["f"] == 1000000 and '"f": 1000000,' in omni_output.to_json(res)


# --- delete (the recovery runbook's guarded Link plan) ----------------------------------------------

def with_link(connected_provider: bool = True, finalizers=None) -> dict:
    st = state()
    mid = "aaaa-1"
    st["resources"][f"Links.omni.sidero.dev/{mid}"] = {"metadata": {"finalizers": finalizers or []},
                                                       "spec": {"connected": False, "lastendpoint": "192.0.2.9:51820"}}
    st["resources"][f"Machines.omni.sidero.dev/{mid}"] = {"metadata": {"phase": "tearingDown"},
                                                          "spec": {"connected": False}}
    health = st["resources"]["InfraProviderCombinedStatuses.omni.sidero.dev/proxmox"]["spec"]["health"]
    health["connected"] = connected_provider
    return st


def test_delete_link_prints_as_delete_go_and_takes_the_machine_along(run, tmp_path):
    rc, out, err = run("delete", "link", "aaaa-1", st=with_link())
    assert (rc, err) == (0, "")
    assert out == "torn down Links.omni.sidero.dev aaaa-1\ndestroyed Links.omni.sidero.dev aaaa-1\n"
    left = json.loads((tmp_path / "state.json").read_text())["resources"]
    assert not any(k.endswith("/aaaa-1") for k in left)  # Link, Machine and (provider connected) MachineStatus
    entry = json.loads(run.log.read_text().splitlines()[-1])
    assert entry["action"] == "delete link aaaa-1" and entry["write"] is True


def test_delete_link_with_the_provider_down_leaves_the_machine_status(run, tmp_path):
    rc, _, _ = run("delete", "link", "aaaa-1", st=with_link(connected_provider=False))
    left = json.loads((tmp_path / "state.json").read_text())["resources"]
    assert rc == 0 and "MachineStatuses.omni.sidero.dev/aaaa-1" in left and "Machines.omni.sidero.dev/aaaa-1" not in left


def test_delete_of_a_missing_resource_and_without_an_id(run, tmp_path):
    rc, out, err = run("delete", "link", "nope", st=with_link())
    assert rc == 1 and err == ("Error: rpc error: code = NotFound desc = resource Links.omni.sidero.dev"
                               "(default/nope@undefined) doesn't exist\n")
    rc, _, err = run("delete", "link", st=with_link())
    assert rc == 1 and "either resource ID or one of --all or --selector" in err


def test_delete_waits_while_a_finalizer_holds_the_resource(run):
    with pytest.raises(subprocess.TimeoutExpired):
        run("delete", "link", "aaaa-1", st=with_link(finalizers=["SomeController"]), timeout=2)
