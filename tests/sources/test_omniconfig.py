"""omnictl's local files: the omniconfig's contexts and the key a browser login saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib import redact
from runbook_lib.errors import SourceError
from runbook_lib.sources.omniconfig import config_path, read_config, read_saved_key, saved_login_key


def test_omniconfig_contexts_are_read(tmp_path):
    path = tmp_path / "config"
    path.write_text("contexts:\n  default:\n    url: https://omni.example.org\n    auth:\n      siderov1:\n"
                    "        identity: op@example.org\n  lab:\n    url: https://127.0.0.1:8443\ncontext: default\n")
    cfg = read_config(str(path))
    assert cfg["contexts"] == ["default", "lab"] and cfg["url"] == "https://omni.example.org"
    assert cfg["identity"] == "op@example.org" and cfg["source"].startswith("site file")
    assert read_config(str(path), "lab")["url"] == "https://127.0.0.1:8443"
    assert read_config(str(path), "nosuch")["error"] == "context 'nosuch' is not in the file"
    assert not read_config(str(tmp_path / "absent"))["exists"]


@pytest.mark.parametrize("text, error", [("contexts: [a, b]\n", "it has no 'contexts:' mapping"),
                                         ("contexts: {a: [unclosed\n", "cannot read it: ")])
def test_an_omniconfig_that_cannot_be_used_says_why(tmp_path, text, error):
    path = tmp_path / "config"
    path.write_text(text)
    assert read_config(str(path))["error"].startswith(error)


def test_which_omniconfig_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNICONFIG", str(tmp_path / "from-env"))
    assert config_path("/etc/omni/config") == (Path("/etc/omni/config"), "site file (omni.omnictl.config)")
    assert config_path(None) == (tmp_path / "from-env", "$OMNICONFIG")
    monkeypatch.delenv("OMNICONFIG")
    assert config_path(None)[1] == "default" and str(config_path(None)[0]).endswith(".talos/omni/config")


def test_a_saved_login_key_is_found_by_context_and_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("SIDEROV1_KEYS_DIR", str(tmp_path))
    (tmp_path / "default-op@example.org.pgp").write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\nsecret-canary\n")
    path = saved_login_key("default", "op@example.org")
    assert path == tmp_path / "default-op@example.org.pgp"
    assert saved_login_key("default", "other@example.org") is None
    text = read_saved_key(path)
    assert "secret-canary" in text and text in redact.known_values()  # registered before anything shows it


def test_a_key_that_cannot_be_read_is_a_source_error(tmp_path):
    with pytest.raises(SourceError) as err:
        read_saved_key(tmp_path / "gone.pgp")
    assert err.value.reason == "cannot read it (No such file or directory)"
