"""The provider's Proxmox settings from its config file and its PROXMOX_* variables."""

from __future__ import annotations

from runbook_lib.model.provider import merged, proxmox_from_env


def test_env_variables_read_as_the_config_keys_with_quotes_stripped():
    env = {"PROXMOX_URL": '"https://pve.example.org:8006/api2/json"', "PROXMOX_TOKEN_ID": "omni@pve!p",
           "PROXMOX_TOKEN_SECRET": "'s3cr3t'", "PROXMOX_INSECURE_SKIP_VERIFY": "true", "PATH": "/bin",
           "PROXMOX_REALM": ""}
    assert proxmox_from_env(env) == {"url": "https://pve.example.org:8006/api2/json", "tokenID": "omni@pve!p",
                                     "tokenSecret": "s3cr3t", "insecureSkipVerify": True}
    assert proxmox_from_env({"PATH": "/bin"}) == {}
    assert proxmox_from_env({"PROXMOX_INSECURE_SKIP_VERIFY": "false"}) == {"insecureSkipVerify": False}


def test_the_file_wins_and_the_environment_fills_what_it_leaves_out():
    got = merged({"url": "https://a:8006", "tokenID": "", "insecureSkipVerify": False},
                 {"url": "https://b:8006", "tokenID": "t@pve!x"})
    assert got == {"url": "https://a:8006", "tokenID": "t@pve!x", "insecureSkipVerify": False}
    assert merged(None, {"url": "https://b:8006"}) == {"url": "https://b:8006"}
