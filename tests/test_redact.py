"""What a secret looks like, and that masking finds it in every shape it takes."""

from __future__ import annotations

import pytest

from runbook_lib import redact
from runbook_lib.redact import MASK, Redactor


@pytest.mark.parametrize("text, hidden", [
    ("tokenSecret: abcd-1234", "abcd-1234"),
    ('{"password": "hunter22"}', "hunter22"),
    ("OMNI_SERVICE_ACCOUNT_KEY=eyJrZXkiOiJ2YWx1ZSJ9", "eyJrZXkiOiJ2YWx1ZSJ9"),
    ("--omni-service-account-key eyJrZXkiOiJ2YWx1ZSJ9 --id proxmox", "eyJrZXkiOiJ2YWx1ZSJ9"),
    ("Authorization: PVEAPIToken=omni@pve!provider=5f0c-77aa", "5f0c-77aa"),
    ("Cookie: PVEAuthCookie=PVE:root@pam:6B0954B5::sig", "PVE:root@pam:6B0954B5::sig"),
])
def test_known_shapes_are_masked(text, hidden):
    out = Redactor().text(text)
    assert hidden not in out and MASK in out


@pytest.mark.parametrize("text", [
    "tokenID: omni@pve!provider",
    "the password is wrong",
    "key_file: ~/.ssh/id_ed25519",
    "token_secret: env:PVE_TOKEN",
])
def test_ordinary_text_is_kept(text):
    assert Redactor().text(text) == text


def test_registered_values_are_masked_anywhere(tmp_path, monkeypatch):
    from runbook_lib import secret_channel

    sink = secret_channel.SecretSink(tmp_path)
    monkeypatch.setenv(secret_channel.SOCKET_ENV, str(sink.path))
    redact.register("CANARY-zz-0042")
    sink.close()
    assert "CANARY-zz-0042" in sink.values()
    assert not any(tmp_path.iterdir())  # the value went over the socket, never into a file
    out = Redactor(sink.values()).obj(
        {"note": "saw CANARY-zz-0042 in a log", "list": ["x CANARY-zz-0042"]})
    assert "CANARY-zz-0042" not in str(out)


def test_secret_keys_are_masked_whole_but_references_stay():
    out = Redactor().obj({"tokenSecret": "abc def", "token_id": "a@b!c", "password": "env:PW", "nested": {"apiKey": "k1"}})
    assert out == {"tokenSecret": MASK, "token_id": "a@b!c", "password": "env:PW", "nested": {"apiKey": MASK}}


def test_env_and_args_masking_registers_the_values():
    env = redact.mask_env({"OMNI_SERVICE_ACCOUNT_KEY": "value-one-1", "PATH": "/bin"})
    args = redact.mask_args(["--id", "proxmox", "--omni-service-account-key=value-two-2"])
    assert env == {"OMNI_SERVICE_ACCOUNT_KEY": MASK, "PATH": "/bin"}
    assert args == ["--id", "proxmox", f"--omni-service-account-key={MASK}"]
    assert {"value-one-1", "value-two-2"} <= redact.known_values()
