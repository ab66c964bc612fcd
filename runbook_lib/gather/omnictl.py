"""Evidence for the omnictl runbook: the binary, its configuration and key, one real call, and
the network path to Omni layer by layer.

Four independent groups run in parallel once the endpoint omnictl will use is known:

* **omnictl**: the binary is located (never run when missing), ``omnictl --version`` gives the
  client's version, and ``omnictl get clusters`` is the one real call; a failure is kept as its
  classified kind plus omnictl's own ``Error:`` line.
* **key**: what the credential says about itself, without ever printing it. A service-account key
  (base64 JSON holding an armored OpenPGP key, as Omni issues them) or the key a browser login
  saved (``<context>-<identity>.pgp``) is decoded in memory; its identity, creation and expiry
  come from the OpenPGP self-signature (:func:`runbook_lib.openpgp.read_key`). Anything else is
  "expiry not readable": a fact, not a failure. The omniconfig and the saved key are read by
  :mod:`runbook_lib.sources.omniconfig`.
* **probes**: DNS, then TCP (:mod:`runbook_lib.sources.net`), then TLS plus ``GET /healthz``
  (:func:`runbook_lib.sources.http.probe`), each with a deadline; which to make is decided here.

The names of what they gather are documented in :mod:`runbook_lib.checks.omnictl`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlsplit

from .. import openpgp, redact
from .. import site as site_model
from ..calls import CallLog
from ..errors import SourceError
from ..evidence import Evidence
from ..outcome import Outcome
from ..site import Site
from ..sources import http, net, omniconfig
from ..sources.omni import Omnictl, parse_objects
from . import in_parallel

TRY_COMMAND = ["get", "clusters", "-o", "json"]  # a read every Omni role may make


@dataclass
class Options:
    probe_timeout: float = 5.0


# ------------------------------------------------------------------------------ entry point


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = Evidence()
    spec = site.omni.omnictl
    config = omniconfig.read_config(spec.config, spec.context)
    ev.put("config", config)
    key_ref = spec.service_account_key
    endpoint = site.omni.url if key_ref or not config.get("url") else config["url"]
    ev.put("expected", {"omni_url": site.omni.url, "endpoint": endpoint, "binary": spec.binary,
                        "context": spec.context or config.get("current") or "",
                        "key": key_ref or "", "insecure": spec.insecure_skip_tls_verify,
                        "timeout": spec.timeout})
    omni = Omnictl(site.omni, calls)
    in_parallel(ev, {
        "omnictl": lambda e: _omnictl(e, omni),
        "key": lambda e: e.collect("key", key_facts, key_ref, config),
        "probes": lambda e: _probes(e, endpoint, site, calls, opts.probe_timeout),
    }, progress)
    return ev


# ---------------------------------------------------------------------------------- omnictl


def _omnictl(ev: Evidence, omni: Omnictl) -> None:
    try:
        path = omni.binary()
    except SourceError as exc:
        ev.put("binary", {"configured": omni.options.binary, "path": "", "found": False, "error": exc.reason,
                          "searched": os.environ.get("PATH", "") if os.sep not in omni.options.binary else ""})
        for name in ("client_version", "omnictl"):
            ev.fail(name, f"omnictl was not run: {exc.reason}")
        return
    ev.put("binary", {"configured": omni.options.binary, "path": path, "found": True, "error": "", "searched": ""})
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="omnictl") as pool:
        version = pool.submit(_client_version, omni)
        attempt = pool.submit(try_omnictl, omni)
        ev.collect("client_version", version.result)
        ev.put("omnictl", attempt.result())


def _client_version(omni: Omnictl) -> str:
    """``omnictl --version``: the client's own version (it does not contact Omni)."""
    out = omni.run(["--version"]).stdout.strip()
    return out.rsplit(" ", 1)[-1] if out else ""


def try_omnictl(omni: Omnictl, args: list[str] | None = None) -> dict:
    """Run one read through omnictl: ``{command, ok, kind, detail, line, count}``.

    ``kind`` is ``ok`` or the error family (``auth``, ``permission``, ``unreachable``, ``tls``,
    ``timeout``, ``not_found``, ``command``); ``detail`` refines it from omnictl's line:
    ``version_skew``, ``no_context``, ``proxy`` (a proxy answered gRPC with an HTTP error page).
    """
    args = args or TRY_COMMAND
    command = "omnictl " + " ".join(redact.mask_args([*omni.global_flags(), *args]))
    try:
        result = omni.run(args)
    except SourceError as exc:
        return {"command": command, "ok": False, "kind": exc.kind, "detail": error_detail(exc.reason),
                "line": exc.reason, "count": None}
    try:
        count = len(parse_objects(result.stdout))
    except SourceError:
        count = None
    return {"command": command, "ok": True, "kind": Outcome.OK, "detail": "", "line": "", "count": count}


def error_detail(reason: str) -> str:
    """What omnictl's error line says beyond its gRPC code."""
    if "versions do not match" in reason or "is too old" in reason or "is newer than this Omni" in reason:
        return "version_skew"
    if "has not been configured" in reason or "no omnictl context" in reason:
        return "no_context"
    if "unexpected HTTP status code" in reason or "unexpected content-type" in reason:
        return "proxy"
    return ""


# -------------------------------------------------------------------------------------- key


def key_facts(ref: str | None, config: dict, now: float | None = None) -> dict:
    """What omnictl's credential says about itself: kind, identity, created, expires, days_left.

    With a service-account key (``ref``) the key is resolved (which registers it for redaction)
    and decoded in memory. Without one, the key a browser login saved for the config's context
    and identity is read when it exists. ``readable`` is False when the expiry cannot be read;
    ``note`` then says why, in words that never include the key.
    """
    now = time.time() if now is None else now
    if ref:
        value = site_model.resolve_secret(ref, field="omni.omnictl.service_account_key")
        facts = {"kind": "service account key", "where": ref}
        try:
            name, armored = decode_service_account_key(value)
        except ValueError as exc:
            return {**facts, "readable": False, "identity": "", "note": f"expiry not readable: {exc}"}
        facts["identity"] = name
    else:
        identity, context = config.get("identity"), config.get("current")
        if not (identity and context):
            return {"kind": "none", "where": "", "readable": False, "identity": "",
                    "note": "no service account key in the site file and no login identity in the omniconfig"}
        path = omniconfig.saved_login_key(context, identity)
        facts = {"kind": "saved login key", "identity": identity, "where": str(path or "")}
        if path is None:
            return {**facts, "readable": False,
                    "note": f"no saved login key for {context}/{identity} (omnictl will ask for a browser login)"}
        try:
            armored = omniconfig.read_saved_key(path)
        except SourceError as exc:
            return {**facts, "readable": False, "note": f"expiry not readable: {exc.reason}"}
    try:
        pgp = openpgp.read_key(armored)
    except ValueError as exc:
        return {**facts, "readable": False, "note": f"expiry not readable: {exc}"}
    expires = pgp.expires
    days_left = None if expires is None else round((expires - now) / 86400, 2)
    return {**facts, "readable": True, "user_id": pgp.user_id, "created": _iso(pgp.created),
            "expires": _iso(expires) if expires is not None else "never", "days_left": days_left, "note": ""}


def decode_service_account_key(value: str) -> tuple[str, str]:
    """(identity, armored OpenPGP key) of an Omni service-account key (base64 of JSON)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not base64 JSON (an Omni service account key is)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pgp_key"), str):
        raise ValueError("the decoded key has no 'pgp_key' field") from None
    redact.register(doc["pgp_key"])
    return str(doc.get("name") or ""), doc["pgp_key"]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------- probes


def _probes(ev: Evidence, endpoint: str, site: Site, calls: CallLog, timeout: float) -> None:
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ev.put("endpoint", {"url": endpoint, "host": host, "port": port})
    dns = net.resolve(host, port, calls, timeout)
    ev.put("dns", dns)
    if not dns["addresses"]:
        ev.put("tcp", {"address": "", "ok": False, "kind": Outcome.SKIPPED, "error": "no address to connect to",
                       "seconds": 0.0})
    else:
        ev.put("tcp", net.connect(dns["addresses"][0], port, calls, timeout))
    verify = site.omni.verify_tls and not site.omni.omnictl.insecure_skip_tls_verify
    healthz = endpoint.rstrip("/") + "/healthz"
    ev.put("healthz", http.probe(healthz, calls, ca_file=site.omni.ca_file, verify=verify,
                                 timeout=timeout).to_dict())


__all__ = ["Options", "gather", "try_omnictl", "error_detail", "key_facts", "decode_service_account_key"]
