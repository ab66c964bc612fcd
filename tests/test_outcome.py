"""One outcome vocabulary (runbook_lib.outcome): the words stay those the evidence, the records and the
lab twin have always held, and every producer speaks it."""

from __future__ import annotations

import json

import pytest

from runbook_lib import errors
from runbook_lib.calls import OUTCOMES, CallLog
from runbook_lib.outcome import Outcome
from runbook_lib.sources import http, net
from runbook_lib.sources.proxmox import EndpointProbe

# the words as records written before the enum hold them: changing one would make old records lie
WORDS = {"OK": "ok", "DNS_FAILED": "dns", "REFUSED": "refused", "UNREACHABLE": "unreachable", "TIMED_OUT": "timeout",
         "NO_ANSWER": "no answer", "TLS_FAILED": "tls", "HOST_KEY": "host_key", "AUTH_FAILED": "auth",
         "PERMISSION_DENIED": "permission", "NOT_FOUND": "not_found", "HTTP_ERROR": "http_error",
         "COMMAND_FAILED": "command", "MALFORMED": "malformed", "ERROR": "error", "SKIPPED": "skipped"}


def test_the_words_are_unchanged():
    assert {o.name: o.value for o in Outcome} == WORDS


@pytest.mark.parametrize("cls, word", [
    (errors.SourceError, "error"), (errors.Unreachable, "unreachable"), (errors.TimedOut, "timeout"),
    (errors.AuthFailed, "auth"), (errors.PermissionDenied, "permission"), (errors.TLSFailed, "tls"),
    (errors.HostKeyMismatch, "host_key"), (errors.NotFound, "not_found"), (errors.CommandFailed, "command"),
    (errors.Malformed, "malformed"),
])
def test_every_source_error_kind_is_an_outcome(cls, word):
    assert isinstance(cls.kind, Outcome) and cls.kind == word


def test_every_producer_speaks_it():
    assert all(isinstance(k, Outcome) for k in http.KINDS)
    assert all(isinstance(k, Outcome) for k in net.CURL_OUTCOMES.values())
    assert all(isinstance(k, Outcome) for k in OUTCOMES) and set(OUTCOMES) == {"ok", "error", "timeout"}
    assert isinstance(EndpointProbe("u", True, 200, 0.1).kind, Outcome)


def test_evidence_json_and_records_read_the_same():
    ev = {"kind": Outcome.TIMED_OUT, "ports": {"50000": Outcome.NO_ANSWER}}
    assert json.dumps(ev) == '{"kind": "timeout", "ports": {"50000": "no answer"}}'
    assert f"{Outcome.TLS_FAILED} - bad" == "tls - bad" and str(Outcome.OK) == "ok"
    assert repr(ev) == "{'kind': 'timeout', 'ports': {'50000': 'no answer'}}"  # a notebook showing a dict
    back = json.loads(json.dumps(ev))  # a record read back holds plain strings: they still compare
    assert back["kind"] == Outcome.TIMED_OUT and back["kind"] in (Outcome.REFUSED, Outcome.TIMED_OUT)
    assert {Outcome.REFUSED: "x"}.get("refused") == "x"


def test_a_failed_call_keeps_the_errors_outcome():
    calls = CallLog()
    with pytest.raises(errors.HostKeyMismatch):
        with calls.record("ssh root@provider", "connect"):
            raise errors.HostKeyMismatch("ssh root@provider", "host key changed")
    call = calls.calls[0]
    assert call.error_kind is Outcome.HOST_KEY and call.outcome == "error"
    assert json.loads(json.dumps(call.to_dict()))["error_kind"] == "host_key"
