"""The site file: validation names the field and never echoes a secret; references resolve late."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runbook_lib.errors import SecretRefError, SiteError
from runbook_lib.site import load_site, resolve_secret, secret_refs

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "site.yaml"


def write(tmp_path: Path, doc) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_example_is_valid_and_describes_the_guide_layout():
    site = load_site(EXAMPLE)
    assert len(site.proxmox["matrix"].endpoints) == 3
    assert site.cluster_hosting("omni_vm") == ("quantum", 101)
    assert site.cluster_hosting("provider_lxc") == ("matrix", 200)
    assert site.insecure_settings() == []


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["proxmox"]["matrix"].update(token_secret="s3cr3t-literal"), "proxmox.matrix.token_secret",
     "secret reference"),
    (lambda d: d["proxmox"]["matrix"]["endpoints"].__setitem__(1, "not a url"), "proxmox.matrix.endpoints[1]", "URL"),
    (lambda d: d["hosts"]["provider"].update(port=70000), "hosts.provider.port", "65535"),
    (lambda d: d["hosts"]["provider"].update(contianer="x"), "hosts.provider.contianer", "unknown field"),
    (lambda d: d.pop("provider"), "provider", "missing"),
    (lambda d: d["provider"].update(cluster="nosuch"), "(top level)", "nosuch"),
    (lambda d: d["proxmox"]["quantum"].update(token_id="a@b!c", token_secret="env:X"), "proxmox.quantum", "not both"),
])
def test_errors_name_the_field(tmp_path, change, field, words):
    doc = example()
    change(doc)
    with pytest.raises(SiteError) as exc:
        load_site(write(tmp_path, doc))
    msg = str(exc.value)
    assert f"{field}:" in msg and words in msg
    assert "s3cr3t-literal" not in msg


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(SiteError, match=r"not valid YAML at line 4, column 6"):
        load_site(write(tmp_path, "name: x\nomni:\n  url: [unclosed\nhosts: {}\n"))


def test_missing_file_is_a_site_error(tmp_path):
    with pytest.raises(SiteError, match="cannot read"):
        load_site(tmp_path / "nope.yaml")


def test_relative_paths_are_relative_to_the_site_file(tmp_path):
    doc = example()
    doc["proxmox"]["matrix"]["ca_file"] = "pki/ca.pem"
    doc["proxmox"]["matrix"]["token_secret"] = "file:secrets/token"
    site = load_site(write(tmp_path, doc))
    assert site.proxmox["matrix"].ca_file == str(tmp_path / "pki" / "ca.pem")
    assert site.proxmox["matrix"].token_secret == f"file:{tmp_path / 'secrets' / 'token'}"


def test_secret_references_resolve_late_and_name_the_field(tmp_path, monkeypatch):
    site = load_site(EXAMPLE)
    refs = secret_refs(site)
    assert refs["proxmox.matrix.token_secret"] == "env:PVE_MATRIX_TOKEN"
    monkeypatch.delenv("PVE_MATRIX_TOKEN", raising=False)
    with pytest.raises(SecretRefError, match="proxmox.matrix.token_secret: environment variable PVE_MATRIX_TOKEN"):
        resolve_secret(refs["proxmox.matrix.token_secret"], field="proxmox.matrix.token_secret")
    monkeypatch.setenv("PVE_MATRIX_TOKEN", "canary-value-1")
    assert resolve_secret("env:PVE_MATRIX_TOKEN") == "canary-value-1"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretRefError, match="is empty"):
        resolve_secret(f"file:{tmp_path / 'empty'}", field="x")


def test_switched_off_verification_is_reported(tmp_path):
    doc = example()
    doc["proxmox"]["quantum"]["verify_tls"] = False
    doc["hosts"]["omni"]["strict_host_keys"] = False
    site = load_site(write(tmp_path, doc))
    assert site.insecure_settings() == ["TLS verification of Proxmox cluster 'quantum' is off",
                                        "SSH host-key checking for the omni host is off"]


def test_a_fix_token_is_optional_complete_and_never_the_diagnostic_one(tmp_path):
    from runbook_lib.calls import CallLog
    from runbook_lib.errors import AuthFailed
    from runbook_lib.gather.recovery import fix_cluster

    site = load_site(EXAMPLE)
    with pytest.raises(AuthFailed, match="no fix_token_id"):
        fix_cluster(site, "matrix", CallLog())  # the read-only token is never used to write
    doc = example()
    doc["proxmox"]["matrix"].update(fix_token_id="recovery@pve!fix")
    with pytest.raises(SiteError, match="fix_token_id and fix_token_secret"):
        load_site(write(tmp_path, doc))
    doc["proxmox"]["matrix"].update(fix_token_secret="s3cr3t-literal")
    with pytest.raises(SiteError, match="secret reference"):
        load_site(write(tmp_path, doc))
    doc["proxmox"]["matrix"].update(fix_token_secret="env:PVE_FIX_TOKEN")
    assert load_site(write(tmp_path, doc)).proxmox["matrix"].fix_token_id == "recovery@pve!fix"
