"""What the omnictl gathering makes of omnictl's credential, and against the twin, what it runs."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from runbook_lib.checks import run_checks
from runbook_lib.evidence import Evidence
from runbook_lib.gather.omnictl import decode_service_account_key, key_facts

CANARY = "CANARY-not-a-real-key-5b1f0c"
KEYS = Path(__file__).resolve().parents[1] / "data" / "openpgp"


@pytest.fixture
def gpg_key():
    """A key gpg made (tests/data/openpgp): its armored text, creation and expiry as gpg reads them."""
    name = "gpg-ed25519-3d.sec.asc"
    want = json.loads((KEYS / "expected.json").read_text())[name]
    return (KEYS / name).read_text(), want["created"], want["expires"]


def test_service_account_key_facts_without_revealing_the_key(gpg_key, monkeypatch):
    armored, created, expires = gpg_key
    value = base64.b64encode(json.dumps({"name": "runbook", "pgp_key": armored}).encode()).decode()
    monkeypatch.setenv("OMNI_KEY_UNDER_TEST", value)
    facts = key_facts("env:OMNI_KEY_UNDER_TEST", {}, now=created + 86400)
    assert facts["readable"] and facts["identity"] == "runbook"
    assert facts["days_left"] == pytest.approx((expires - created - 86400) / 86400, abs=0.01)
    assert facts["expires"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    assert value not in json.dumps(facts) and armored.splitlines()[2] not in json.dumps(facts)
    later = key_facts("env:OMNI_KEY_UNDER_TEST", {}, now=expires + 3600)
    assert later["days_left"] < 0


def test_saved_login_key_is_found_by_context_and_identity(gpg_key, tmp_path, monkeypatch):
    armored, _, expires = gpg_key
    monkeypatch.setenv("SIDEROV1_KEYS_DIR", str(tmp_path))
    (tmp_path / "default-op@example.org.pgp").write_text(armored)
    facts = key_facts(None, {"identity": "op@example.org", "current": "default"})
    assert facts["kind"] == "saved login key" and facts["readable"]
    assert facts["expires"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    missing = key_facts(None, {"identity": "other@example.org", "current": "default"})
    assert not missing["readable"] and "browser login" in missing["note"]


@pytest.mark.parametrize("value", [CANARY, base64.b64encode(b'{"name": "x"}').decode(),
                                   base64.b64encode(json.dumps({"name": "x", "pgp_key": CANARY}).encode()).decode()])
def test_unreadable_keys_say_why_and_never_echo_the_value(value, monkeypatch):
    monkeypatch.setenv("OMNI_KEY_UNDER_TEST", value)
    facts = key_facts("env:OMNI_KEY_UNDER_TEST", {})
    assert not facts["readable"] and facts["note"].startswith("expiry not readable")
    assert CANARY not in json.dumps(facts) and value not in json.dumps(facts)


def test_decode_rejects_json_without_a_pgp_key():
    with pytest.raises(ValueError, match="pgp_key"):
        decode_service_account_key(base64.b64encode(b'{"name": "svc"}').decode())


def test_gathering_without_a_binary_runs_nothing_and_keeps_the_key_private():
    from runbook_lab.twin import Twin
    from runbook_lib.calls import CallLog
    from runbook_lib.gather.omnictl import gather
    from runbook_lib.site import load_site

    with Twin("omnictl-missing") as twin:
        calls = CallLog()
        ev = gather(load_site(twin.site_file), calls)
        secrets = list(twin.secrets.values())
        requests = [r for r in twin.requests() if r.get("kind") == "omnictl"]
    assert not ev.get("binary")["found"] and requests == []
    assert {c.target.split()[0] for c in calls.calls} == {"dns", "tcp", ev.get("healthz")["url"]}
    assert ev.get("key")["note"].startswith("expiry not readable")
    dumped = json.dumps(ev.to_dict(), default=str)
    assert secrets and not any(s in dumped for s in secrets)
    found = {f.id: f.status for f in run_checks("omnictl", Evidence(ev.to_dict()["items"], ev.errors))}
    assert found["omnictl.missing"] == "problem"
