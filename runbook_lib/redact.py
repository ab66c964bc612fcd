"""Secret redaction: one place that knows what a secret looks like.

Two kinds of knowledge:

* **values**: every secret the package resolves (a site reference, a credential read from the
  provider's config) is registered here. When the runner sets ``RUNBOOK_SECRET_SOCKET`` (it does,
  for every headless run) each registered value is also sent to it over that Unix socket
  (:mod:`runbook_lib.secret_channel`), so the runner, which scrubs the record in another
  process, knows what the kernel saw. No value is ever written to a file.
* **names and shapes**: values whose *name* looks secret (``password``, ``tokenSecret``,
  ``OMNI_SERVICE_ACCOUNT_KEY`` ...) and well-known credential syntaxes (``PVEAPIToken=...``) are
  masked even when their value was never registered.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, Iterable

from . import secret_channel

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words

_SECRET_NAME = re.compile(
    r"(pass(word|wd)?|secret|token(?!_?id$|name$)|(api|private|account)_?key|credential|"
    r"service_account_key|auth(orization)?$|cookie|ticket)",
    re.IGNORECASE,
)
# name=value, name: value, "name": "value" and --flag value forms for secret-looking names
_ASSIGNMENT = re.compile(
    r"""(?P<name>["']?(?:--?)?[A-Za-z_][A-Za-z0-9_.-]*["']?)(?P<sep>\s*[:=]\s*|\s+)(?P<q>["']?)(?P<value>[^\s"',}-][^\s"',}]*)"""
)
_PATTERNS = [
    # Proxmox API token header: PVEAPIToken=user@realm!id=SECRET
    re.compile(r"(PVEAPIToken=[^=\s]+=)([^\s\"',]+)"),
    # Proxmox ticket cookie
    re.compile(r"(PVEAuthCookie=)([^\s;\"',]+)"),
    # bearer tokens
    re.compile(r"((?i:bearer)\s+)([A-Za-z0-9._~+/=-]{8,})"),
]

_lock = threading.Lock()
_values: set[str] = set()


def looks_secret(name: str) -> bool:
    """True when a parameter, field, flag or variable name suggests it holds a secret."""
    bare = name.strip().strip("\"'").lstrip("-").replace("-", "_")
    if bare.lower() in {"tokenid", "token_id", "token_name", "tokenname", "key_file", "keyfile"}:
        return False
    return bool(_SECRET_NAME.search(bare))


def register(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it shows up later."""
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
    path = os.environ.get(secret_channel.SOCKET_ENV)
    if path:
        secret_channel.send(path, value)


def known_values() -> set[str]:
    with _lock:
        return set(_values)


class Redactor:
    """Masks a fixed set of secret values plus every secret-looking name and known syntax."""

    def __init__(self, values: Iterable[str] = ()):
        vals = {v for v in values if v and len(v) >= _MIN_SECRET_LEN}
        # longest first so a secret containing another is masked whole
        self._values = sorted(vals, key=len, reverse=True)
        self._value_re = (
            re.compile("|".join(re.escape(v) for v in self._values)) if self._values else None
        )

    def text(self, s: str) -> str:
        if not s:
            return s
        if self._value_re is not None:
            s = self._value_re.sub(MASK, s)
        for pat in _PATTERNS:
            s = pat.sub(lambda m: m.group(1) + MASK, s)
        return _ASSIGNMENT.sub(_mask_assignment, s)

    def obj(self, o: Any, key: str | None = None) -> Any:
        """Scrub a JSON-like structure. Values under secret-looking keys are masked whole."""
        if isinstance(o, dict):
            return {k: self.obj(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [self.obj(v) for v in o]
        if isinstance(o, str):
            if key is not None and looks_secret(key) and o and not _is_reference(o):
                return MASK
            return self.text(o)
        return o


def _is_reference(value: str) -> bool:
    return value.startswith(("env:", "file:")) or value == MASK


def _mask_assignment(m: re.Match) -> str:
    name = m.group("name")
    value = m.group("value")
    plain_words = m.group("sep").strip() == "" and not name.startswith("-")  # "word word" assigns nothing
    if not looks_secret(name) or _is_reference(value) or value == MASK or plain_words:
        # the value may itself hold an assignment: error=password=hunter2
        return f"{name}{m.group('sep')}{m.group('q')}{_ASSIGNMENT.sub(_mask_assignment, value)}"
    return f"{name}{m.group('sep')}{m.group('q')}{MASK}"


def default() -> Redactor:
    """A redactor over every value registered in this process."""
    return Redactor(known_values())


def mask_env(env: dict[str, str]) -> dict[str, str]:
    """Environment variables with secret-looking names masked (values registered first)."""
    out = {}
    for k, v in env.items():
        if looks_secret(k):
            register(v)
            out[k] = MASK
        else:
            out[k] = v
    return out


def mask_args(args: list[str]) -> list[str]:
    """A command line with the values of secret-looking flags masked (``--key X`` and ``--key=X``)."""
    out: list[str] = []
    hide_next = False
    for a in args:
        if hide_next:
            register(a)
            out.append(MASK)
            hide_next = False
            continue
        if a.startswith("-") and "=" in a:
            name, value = a.split("=", 1)
            if looks_secret(name):
                register(value)
                out.append(f"{name}={MASK}")
                continue
        elif a.startswith("-") and looks_secret(a):
            hide_next = True
        out.append(a)
    return out
